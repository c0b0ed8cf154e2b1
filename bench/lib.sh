# Shared by the bench scripts (source it): helpers for their tables.

# the median of the numbers on stdin, one per line
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# the median ms of the last N step lines of a ./train log: step_ms_median LOG N
step_ms_median() { grep -E '^step +[0-9]+/' "$1" | tail -n "$2" | sed -E 's/.*\| ([0-9]+) ms \|.*/\1/' | median; }

# the medians of two columns of times, A and B (one round a line), and
# their ratio: ab_summary FILE
ab_summary() {
    local ma mb
    ma=$(awk '{print $1}' "$1" | median)
    mb=$(awk '{print $2}' "$1" | median)
    awk -v a="$ma" -v b="$mb" 'BEGIN { printf "medians: A %s, B %s: B takes %.3fx A'"'"'s time\n", a, b, b / a }'
}
