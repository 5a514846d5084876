# Shared helpers for integration scripts (sourced, not run by ctest).
# ctest sets OTPCA_BIN, OTPCA_TEST_RIG and SOFTHSM2_CONF.
set -euo pipefail
: "${OTPCA_BIN:?run through ctest}" "${OTPCA_TEST_RIG:?run through ctest}"
T="$OTPCA_BIN/otpca-token"
RIG="$OTPCA_TEST_RIG"
MODULE="${OTPCA_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
WORK=$(mktemp -d)
# Background processes a script starts go into pids: stopped at exit.
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if declare -F at_exit >/dev/null; then at_exit || true; fi
    [ -n "${OTPCA_TEST_KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
failures=0
checks=0

uri() { # uri TOKEN [OBJECT] -> URI with the rig's pin-source
    local u="pkcs11:token=$1"
    [ -n "${2:-}" ] && u="$u;object=$2"
    printf '%s?pin-source=file:%s/pins/%s.pin' "$u" "$RIG" "$1"
}

seed_of() { awk -F, -v s="$1" '$1 == s { print $4 }' "$RIG/manifest.csv"; }

# first_line FILE: polls (at most 30 s) until a process printed its first line.
first_line() {
    for _ in $(seq 300); do
        if [ -s "$1" ] && [ "$(wc -l <"$1")" -ge 1 ]; then head -1 "$1"; return 0; fi
        sleep 0.1
    done
    return 1
}

# cloud_conf FILE [LINE...]: otpca-cloud's configuration on the rig's cloud
# token, store $STORE (default $WORK/cloud.db), endpoints on loopback ports
# of its choice, and each further argument as a line ("sign_key = x").
cloud_conf() {
    local f=$1
    shift
    printf '%s\n' "store = ${STORE:-$WORK/cloud.db}" \
        "token = pkcs11:token=otpca-cloud?pin-source=file:$RIG/pins/otpca-cloud.pin" \
        "listen = tcp://127.0.0.1:*" "notices = tcp://127.0.0.1:*" "workers = 2" "$@" >"$f"
}

# manager_conf FILE ID CLOUD NOTICES CURVE SIGN: a window's configuration
# for the rig's first manager token (certificate $WORK/ID.pem, store
# $WORK/manager.db, network key $WORK/netkey.hex, made here).
manager_conf() {
    [ -f "$WORK/netkey.hex" ] || { echo 00112233445566778899aabbccddeeff >"$WORK/netkey.hex"; chmod 600 "$WORK/netkey.hex"; }
    cat >"$1" <<END
id = $2
token = pkcs11:token=otpca-mgr-01?pin-source=file:$RIG/pins/otpca-mgr-01.pin
ca_cert = $WORK/$2.pem
store = $WORK/manager.db
cloud = $3
cloud_notices = $4
cloud_curve_key = $5
cloud_sign_key = $6
listen = tcp://127.0.0.1:*
operator = otpca-op-01
operator_token = $(uri otpca-op-01 op-totp)
netkey_file = $WORK/netkey.hex
window_seconds = 600
workers = 2
END
}

# next_step: waits for the next 30 s TOTP step (a code is accepted once).
next_step() {
    local step=$(($(date +%s) / 30))
    while [ $(($(date +%s) / 30)) -eq "$step" ]; do sleep 0.2; done
}

ok() { checks=$((checks + 1)); echo "ok   $*"; }
bad() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL $*"; }

expect_eq() { # expect_eq WHAT GOT WANT
    if [ "$2" == "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi
}

# expect_fail WHAT EXIT-CODE STDERR-REGEX -- CMD...: the command must exit
# with that code (not a crash) and say something matching the regex.
expect_fail() {
    local what=$1 want=$2 re=$3; shift 4
    local rc=0
    "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    if [ "$rc" -ne "$want" ]; then
        bad "$what: exit $rc, want $want; stderr: $(head -c 300 "$WORK/err")"
    elif ! grep -Eq -- "$re" "$WORK/err"; then
        bad "$what: stderr does not match /$re/: $(head -c 300 "$WORK/err")"
    else
        ok "$what"
    fi
}

finish() {
    echo "$((checks - failures)) passed, $failures failed"
    [ "$failures" -eq 0 ]
}
