# Shared by the bench scripts (source it): helpers for their tables.

# the median of the numbers on stdin, one per line
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
