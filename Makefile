# Build, test and benchmark the trainer.
#   make            build ./train
#   make test       build and run the test suite (ends with "N passed, N failed")
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test ISA=avx2 (or sse2) the same as built for a CPU without AVX-512
#   make bench      build the benchmark programs (run bench/*.sh)
#   make fuzz SECONDS=N  run every libFuzzer target for N seconds
#   make setup      install packages and fetch assets (scripts/setup.sh)

CC      ?= gcc
# Off x86-64 (aarch64...) the SGEMM has its portable build only (see
# model/matmul.c), and GCC 12 for aarch64 crashes vectorising the tests'
# fmax reductions (an internal compiler error), so there the tests, not the
# library, are built without vectorisation.
# On x86-64 the loops the compiler vectorises itself (the attention
# backward's elementwise steps, the residual sums, the bias, AdamW...) use
# 512-bit vectors where the CPU has them: GCC's tuning for Intel's AVX-512
# CPUs prefers 256 bits, clang's too. The same bits (elementwise loops; no
# reduction is reordered); with GCC on x2 the steps took 0.979x and 0.984x
# their time at T=2048, 0.988x at GPT-2 124M, 0.977x at B8 T256 (ab_step,
# 5-6 rounds each).
ifneq ($(findstring x86_64,$(shell $(CC) -dumpmachine 2>/dev/null)),)
  X86_OPT     := -mprefer-vector-width=512
else
  TEST_CFLAGS := -fno-tree-vectorize
endif
# clang (make CC=clang; OpenMP from libomp-dev) vectorises at -O2 and lacks
# GCC's cost-model and format-truncation options
# make ISA=avx2 | ISA=sse2 (x86-64): the build that a CPU without AVX-512
# (x86-64-v3: AVX2 and FMA) or with only the x86-64 baseline (SSE2) makes
# with -march=native, in its own folder (./train stays the native build),
# with TRAIN_SIMD set to match for make test: what such a machine runs,
# checked on this one.
ARCH    ?= native
ifeq ($(ISA),avx2)
  ARCH  := x86-64-v3
  BUILD := build-avx2
  export TRAIN_SIMD := avx2
else ifeq ($(ISA),sse2)
  ARCH  := x86-64
  BUILD := build-sse2
  export TRAIN_SIMD := portable
else ifneq ($(ISA),)
  $(error ISA=$(ISA): expected avx2 or sse2)
endif
ifneq ($(shell $(CC) --version 2>/dev/null | grep -c clang),0)
  OPT   ?= -O2 -march=$(ARCH) $(X86_OPT) -fno-math-errno
  WARN  := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-psabi
else
  OPT   ?= -O2 -march=$(ARCH) $(X86_OPT) -ftree-vectorize -fvect-cost-model=dynamic -fno-math-errno
  WARN  := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-format-truncation -Wno-psabi
endif
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -ffp-contract=fast -fopenmp $(OPT) -g
LDLIBS  += -lpcre2-8 -ljansson -linih -lz -lm
BUILD   ?= build

ifeq ($(SAN),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD   := build-san
endif

LIB_SRC := common/err.c tokenizer/bpe.c data/shard.c data/sources.c data/prepare.c data/loader.c \
           model/matmul.c model/amx.c model/ops.c model/gpt2.c model/optim.c model/config.c model/safetensors.c \
           model/checkpoint.c model/sampler.c model/trainer.c model/generate.c attention/attention.c attention/softmax.c attention/polynomial.c attention/polysketch.c attention/sketch_net.c
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TESTS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
HEADERS := $(wildcard */*.h)

.PHONY: all test bench fuzz setup clean
ifeq ($(ISA),)
all: train
else # an ISA build stays in its folder: ./train is the native one, and a later make would not bring it back
all: $(BUILD)/train
endif

train: $(BUILD)/train
	cp $< $@

$(BUILD)/train: $(BUILD)/train.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/test.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

test: $(BUILD)/train $(TESTS) $(BUILD)/nodirect.so
	@BUILD=$(BUILD) tests/run.sh

# LD_PRELOAD shim for tests/test_nodirect.sh (never sanitized: it is preloaded)
$(BUILD)/nodirect.so: tests/shim/nodirect.c Makefile
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -O2 -shared -fPIC -o $@ $< -ldl

# benchmark programs; the scripts in bench/ run them beside their references
bench: train $(BUILD)/bench_tokenizer

$(BUILD)/bench_%: bench/bench_%.c $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

$(BUILD)/bench_sgemm: bench/bench_sgemm.c $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS) -lopenblas

# fuzzing: libFuzzer targets for every parser of outside input (clang,
# libclang-rt-14-dev, libomp-14-dev); each runs SECONDS seconds from the
# seeds in tests/fuzz/corpus/ (kept as they are) plus what it found before
# (build-fuzz/corpus/); crashes go to build-fuzz/crashes/.
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -fopenmp -ffp-contract=fast -march=native \
                -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := config safetensors checkpoint jsonl shard tokenizer
FUZZ_OBJ     := $(LIB_SRC:%.c=build-fuzz/%.o)
.SECONDARY: $(FUZZ_OBJ)
SECONDS      ?= 60

build-fuzz/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

fuzz: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@failed=""; for t in $(FUZZ_TARGETS); do \
	    mkdir -p build-fuzz/corpus/$$t build-fuzz/crashes; \
	    echo "== fuzz_$$t ($(SECONDS) s)"; \
	    TRAIN_ASSETS=$${TRAIN_ASSETS:-$$PWD/assets} build-fuzz/fuzz_$$t -max_total_time=$(SECONDS) -max_len=65536 \
	        -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/$$t- build-fuzz/corpus/$$t tests/fuzz/corpus/$$t \
	        2>build-fuzz/fuzz_$$t.log || failed="$$failed $$t"; \
	    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)" build-fuzz/fuzz_$$t.log | tail -3; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzzing found crashes in:$$failed (see build-fuzz/)"; exit 1; fi; \
	echo "fuzzing: no crashes in $(FUZZ_TARGETS)"

setup:
	scripts/setup.sh

clean:
	rm -rf build build-san build-fuzz train
