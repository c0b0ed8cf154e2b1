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
