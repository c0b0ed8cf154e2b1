#!/bin/bash
# One fuzzing round on a many-core machine (the device this workplace lends):
# every target at once, -fork=N each, then a merge of what it found with the
# corpus it started from; all of it comes back as $OUT/fz.tgz. Run from the
# repository root with a ./fuzzpack/ that holds bin/fuzz_<target> (built here
# with `make FUZZ_CFLAGS=... build-fuzz/fuzz_<target>`, -march=x86-64-v3 in
# place of native), lib/ (libpcre2-8, libjansson, libinih, libomp .so files)
# and assets/ (encoder.json, vocab.bpe):  OUT=DIR tests/fuzz/device_round.sh SECONDS
set -u
R=$PWD; P=$PWD/fuzzpack; SECS=${1:-500}
export LD_LIBRARY_PATH=$P/lib TRAIN_ASSETS=$P/assets
W=/tmp/fz; rm -rf $W; mkdir -p $W
nproc; df -h /dev/shm /tmp | tail -2
declare -A FORK=([config]=2 [safetensors]=3 [checkpoint]=6 [jsonl]=1 [shard]=3 [tokenizer]=1)
for t in config safetensors checkpoint jsonl shard tokenizer; do
  mkdir -p $W/$t $W/crash-$t
  (cd $W && $P/bin/fuzz_$t -fork=${FORK[$t]} -ignore_crashes=1 -max_total_time=$SECS -max_len=65536 -print_final_stats=1 \
      -artifact_prefix=$W/crash-$t/ $W/$t $R/tests/fuzz/corpus/$t > $W/$t.log 2>&1; echo "rc=$?" >> $W/$t.log) &
done
wait
for t in config safetensors checkpoint jsonl shard tokenizer; do
  mkdir -p $W/merged/$t
  (cd $W && $P/bin/fuzz_$t -merge=1 -max_len=65536 $W/merged/$t $R/tests/fuzz/corpus/$t $W/$t > $W/merge-$t.log 2>&1)
  echo "== $t: $(grep -E 'rc=|#[0-9]+: cov' $W/$t.log | tail -2 | tr '\n' ' ') merged $(ls $W/merged/$t | wc -l) crashes $(ls $W/crash-$t | wc -l)"
done
df -h /dev/shm | tail -1
cd $W && tar czf $OUT/fz.tgz merged crash-* *.log
