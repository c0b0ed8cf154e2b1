# Build, test and benchmark the trainer.
#   make            build ./train
#   make test       build and run the test suite (ends with "N passed, N failed")
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      build the benchmark programs (run bench/*.sh)
#   make setup      install packages and fetch assets (scripts/setup.sh)

CC      ?= gcc
OPT     ?= -O2 -march=native
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-format-truncation -ffp-contract=fast \
           -fopenmp $(OPT) -g
LDLIBS  += -lpcre2-8 -ljansson -linih -lz -lm
BUILD   ?= build

ifeq ($(SAN),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD   := build-san
endif

LIB_SRC := common/err.c tokenizer/bpe.c data/shard.c data/sources.c data/prepare.c data/loader.c \
           model/matmul.c model/ops.c model/gpt2.c model/optim.c model/config.c model/safetensors.c \
           model/checkpoint.c model/sampler.c model/trainer.c model/generate.c attention/attention.c attention/softmax.c attention/polynomial.c attention/polysketch.c attention/sketch_net.c
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TESTS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
HEADERS := $(wildcard */*.h)

.PHONY: all test bench setup clean
all: train

train: $(BUILD)/train
	cp $< $@

$(BUILD)/train: $(BUILD)/train.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/test.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

test: $(BUILD)/train $(TESTS)
	@BUILD=$(BUILD) tests/run.sh

# benchmark programs; the scripts in bench/ run them beside their references
bench: train $(BUILD)/bench_tokenizer

$(BUILD)/bench_%: bench/bench_%.c $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

setup:
	scripts/setup.sh

clean:
	rm -rf build build-san train
