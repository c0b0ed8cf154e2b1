# Shared by the shell tests: the binary under test, a temporary directory
# removed on exit, and PASS/FAIL reporting. Source it from the repo root.
export TRAIN_ASSETS=${TRAIN_ASSETS:-$PWD/assets}
TRAIN="./${BUILD:-build}/train"
T=$(mktemp -d "/tmp/${TEST_NAME:-test}_XXXXXX")
trap 'rm -rf "$T"' EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
# expect_error NAME "EXPECTED TEXT" COMMAND...: exit status 1 and the text on stderr
expect_error() {
    local name=$1 want=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc -ne 1 ]; then fail "$name" "exit status $rc, expected 1 ($(head -c 200 "$T/err"))"
    elif ! grep -qF -- "$want" "$T/err"; then fail "$name" "stderr lacks '$want': $(head -c 300 "$T/err")"
    else pass "$name"; fi
}

# tiny_setup BYTES: the first BYTES of Moby-Dick as shards in $T/data, and
# $T/tiny.cfg for a 2-layer, 32-wide model on them (tests append their keys),
# with out_dir in $T: a test never touches the user's runs/default.
tiny_setup() {
    head -c "$1" assets/moby_dick.txt >"$T/book.txt"
    $TRAIN prepare --source pg19 "$T/book.txt" --out "$T/data" --val-fraction 0.1 >/dev/null 2>&1
    cat >"$T/tiny.cfg" <<CFG
n_layer = 2
n_head = 2
n_embd = 32   # a comment after the value
block_size = 64
batch_size = 4
seq_len = 32
train_data = $T/data/train_*.bin
val_data = $T/data/val_*.bin
threads = 2
out_dir = $T/run
CFG
}

# resume_setup: tiny_setup's model on 300 KB for 60 steps, a checkpoint every
# 2, the run that test_resume.sh and kill_stress.sh interrupt; losses DIR:
# the step, loss, val_loss, lr and grad_norm columns of its metrics.csv
resume_setup() {
    tiny_setup 300000
    cat >>"$T/tiny.cfg" <<CFG
lr = 3e-3
warmup_steps = 5
max_steps = 60
eval_interval = 20
eval_steps = 2
checkpoint_interval = 2
keep_checkpoints = 2
CFG
}
losses() { cut -d, -f1-5 "$1/metrics.csv"; }
