#!/usr/bin/env bash
# Our SGEMM (fp32, and bf16 where the CPU has it) beside OpenBLAS's
# cblas_sgemm on GPT-2 124M's products, 2 threads, OpenBLAS's AVX-512
# kernels (OPENBLAS_CORETYPE=SkylakeX, its OpenMP build).
# Needs: apt-get install libopenblas-dev libopenblas0-openmp
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ] ||
    { echo "bench/sgemm.sh: needs libopenblas-dev (apt-get install libopenblas-dev libopenblas0-openmp)" >&2; exit 1; }
build=build coretype=SkylakeX
case ${ISA:-} in # ISA=avx2: ours as built for a CPU without AVX-512, OpenBLAS's Haswell kernels
    "") ;;
    avx2) build=build-avx2 coretype=Haswell; export TRAIN_SIMD=avx2 ;;
    *) echo "bench/sgemm.sh: ISA=$ISA: expected avx2" >&2; exit 1 ;;
esac
make -s ${ISA:+ISA=$ISA} $build/bench_sgemm
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OPENBLAS_CORETYPE=$coretype OMP_NUM_THREADS=2 \
    OPENBLAS_NUM_THREADS=2 $build/bench_sgemm "${REPEATS:-5}" "$@"
