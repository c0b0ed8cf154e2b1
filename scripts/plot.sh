#!/usr/bin/env bash
# Plots a run's metrics.csv (train and val loss, learning rate) into a PNG,
# or the validation curves of several runs together.
# Usage: scripts/plot.sh OUT_DIR [PNG]            (default PNG: OUT_DIR/loss.png)
#        scripts/plot.sh --compare PNG OUT_DIR...  (val loss of each run after step 0, named by its directory)
# Needs gnuplot (Debian: gnuplot-nox, installed by scripts/setup.sh).
set -euo pipefail
usage="usage: scripts/plot.sh OUT_DIR [PNG] | scripts/plot.sh --compare PNG OUT_DIR..."
[ $# -ge 1 ] || { echo "$usage" >&2; exit 1; }
compare=0
if [ "$1" = --compare ]; then
    [ $# -ge 3 ] || { echo "$usage" >&2; exit 1; }
    compare=1 png=$2
    shift 2
    dirs=("$@")
else
    dirs=("$1")
    png=${2:-$1/loss.png}
fi
for dir in "${dirs[@]}"; do
    csv="$dir/metrics.csv"
    [ -f "$csv" ] || { echo "plot: $csv not found (is $dir a run's out_dir?)" >&2; exit 1; }
    head -1 "$csv" | grep -q '^step,loss,val_loss,lr' || { echo "plot: $csv: unexpected header" >&2; exit 1; }
done
command -v gnuplot >/dev/null || { echo "plot: gnuplot not found: run scripts/setup.sh (or apt-get install gnuplot-nox)" >&2; exit 1; }
common="set terminal pngcairo size 1000,600 noenhanced
set output \"$png\"
set datafile separator \",\"
set xlabel \"step\"
set ylabel \"loss (nats)\"
set grid"
if [ $compare = 1 ]; then
    # rows without a validation loss are left out, so each curve joins its
    # evals; so is step 0's (ln V for every run), which would flatten the rest
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    plots="" i=0
    for dir in "${dirs[@]}"; do
        i=$((i + 1))
        awk -F, 'NR > 1 && $1 > 0 && $3 != ""' "$dir/metrics.csv" >"$tmp/$i.csv"
        plots+="${plots:+, }\"$tmp/$i.csv\" using 1:3 with linespoints pt 7 ps 0.8 lw 2 title \"$(basename "$dir")\""
    done
    gnuplot <<GP
$common
set title "validation loss"
plot $plots
GP
else
    csv="${dirs[0]}/metrics.csv"
    gnuplot <<GP
$common
set key autotitle columnhead
set title "${dirs[0]}"
set y2label "learning rate"
set y2tics
set ytics nomirror
plot "$csv" using 1:2 with lines lw 1.5 title "train loss", \
     "" using 1:3 with linespoints pt 7 ps 0.8 lw 2 title "val loss", \
     "" using 1:4 axes x1y2 with lines dt 2 title "lr"
GP
fi
echo "wrote $png"
