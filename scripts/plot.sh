#!/usr/bin/env bash
# Plots a run's metrics.csv (train and val loss, learning rate) into a PNG.
# Usage: scripts/plot.sh OUT_DIR [PNG]   (default PNG: OUT_DIR/loss.png)
# Needs gnuplot (Debian: gnuplot-nox, installed by scripts/setup.sh).
set -euo pipefail
dir=${1:?usage: scripts/plot.sh OUT_DIR [PNG]}
csv="$dir/metrics.csv"
png=${2:-$dir/loss.png}
[ -f "$csv" ] || { echo "plot: $csv not found (is $dir a run's out_dir?)" >&2; exit 1; }
head -1 "$csv" | grep -q '^step,loss,val_loss,lr' || { echo "plot: $csv: unexpected header" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot: gnuplot not found: run scripts/setup.sh (or apt-get install gnuplot-nox)" >&2; exit 1; }
gnuplot <<GP
set terminal pngcairo size 1000,600 noenhanced
set output "$png"
set datafile separator ","
set key autotitle columnhead
set title "$dir"
set xlabel "step"
set ylabel "loss (nats)"
set y2label "learning rate"
set y2tics
set ytics nomirror
set grid
plot "$csv" using 1:2 with lines lw 1.5 title "train loss", \
     "" using 1:3 with linespoints pt 7 ps 0.8 lw 2 title "val loss", \
     "" using 1:4 axes x1y2 with lines dt 2 title "lr"
GP
echo "wrote $png"
