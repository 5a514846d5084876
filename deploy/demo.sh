#!/usr/bin/env bash
# The README's demo command: the whole enrollment story with the real
# binaries, on loopback, in build/demo.
#
# usage: deploy/demo.sh [--nodes N] [--store sqlite|postgres] [--keep] [--help]
#   --nodes N   node tokens in the rig, all of them enrolled (default 1000)
#   --store S   the cloud's store: SQLite (default) or a throw-away
#               PostgreSQL cluster on loopback (deploy/postgres.sh)
#   --keep      leave the rig, the cloud and the manager stores in build/demo
#               (the daemons are stopped) and print how to go on by hand
#
# Steps: Debian packages (deploy/deps.sh), build, a SoftHSM rig (root,
# cloud, manager mgr-01 with its operator token, N nodes), the root
# ceremony, the cloud (init, serve on SQLite, manifest import, approval,
# manager and operator registered), a manager window opened with the
# operator's TOTP computed in the operator token, all N nodes enrolled by
# `otpca-node sim`, the window closed, the summaries, `openssl verify` on a
# sample of the issued certificates, one mutual-TLS handshake (openssl
# s_server with a server certificate from the same root; s_client with a
# node's key inside its token, through the PKCS#11 engine), then
# everything stopped. A second run starts clean; no process is left behind,
# also on failure or Ctrl-C. Exit status: 0 done, 1 a step failed (with the
# end of its log), 2 bad usage, 130 interrupted.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nodes=1000
keep=0
store_kind=sqlite
usage() { sed -n '5p' "${BASH_SOURCE[0]}" | sed 's/^# *//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --nodes) nodes=${2:-}; shift 2 || { echo "demo: --nodes needs a number" >&2; usage >&2; exit 2; } ;;
    --keep) keep=1; shift ;;
    --store) store_kind=${2:-}; shift 2 || { echo "demo: --store needs sqlite or postgres" >&2; usage >&2; exit 2; } ;;
    -h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ "$store_kind" != sqlite ] && [ "$store_kind" != postgres ]; then
    echo "demo: --store is sqlite or postgres" >&2
    exit 2
fi
if ! [[ $nodes =~ ^[1-9][0-9]{0,5}$ ]] || [ "$nodes" -gt 100000 ]; then
    echo "demo: --nodes wants a number from 1 to 100000" >&2
    exit 2
fi
# Nodes enrolled at once by the simulator (worker threads, each with its
# own token session); the manager answers with 2 workers.
conc=16
[ "$nodes" -lt "$conc" ] && conc=$nodes

demo=$top/build/demo
B=$top/build/bin
rig=$demo/rig
logs=$demo/logs
tty=0
[ -t 1 ] && [ -t 2 ] && tty=1

now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
t_start=$(now_ms)
declare -A took # step timings, ms

# ---- processes: every one this script starts is tracked by its pid ----
made=0       # build/demo is this run's
cur=         # the foreground step (under timeout), stopped by the traps
daemons=()   # cloud, manager, s_server: started with setsid, so that a
             # Ctrl-C reaches only this script, which stops them in order

# stop_pid PID SECONDS: SIGTERM, then SIGKILL if it is still there after
# SECONDS; reaps it; its exit status in $stopped_rc.
stopped_rc=0
stop_pid() {
    local p=$1 i
    if kill -0 "$p" 2>/dev/null; then
        kill -TERM "$p" 2>/dev/null
        for ((i = 0; i < $2 * 10; i++)); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
    stopped_rc=$?
    return 0
}
# demo_procs: pids of otpca and openssl processes whose command line names
# the demo directory or that run in it (the daemons of a --keep tour).
demo_procs() {
    local p cwd
    for p in $(pgrep -f -- 'otpca-|openssl s_'); do
        [ "$p" = "$$" ] && continue
        cwd=$(readlink "/proc/$p/cwd" 2>/dev/null) || continue
        if [[ $cwd == "$demo" || $cwd == "$demo"/* ]] || tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$demo/"; then
            printf '%s ' "$p"
        fi
    done
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$cur" ] && stop_pid "$cur" 10
    # The newest first: the manager uploads its records and closes its
    # lease while the cloud still answers.
    for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do stop_pid "${daemons[i]}" 20; done
    # The PostgreSQL cluster of --store postgres: kept with --keep (its
    # store is the tour's), else stopped and removed.
    if [ "$store_kind" = postgres ] && [ "$made" = 1 ] && { [ "$keep" = 0 ] || [ "$rc" -ne 0 ]; }; then
        "$top/deploy/postgres.sh" stop "$demo/pg" --remove >/dev/null 2>&1 || true
    fi
    if [ "$rc" -ne 0 ] && [ "$made" = 1 ]; then
        echo "demo: everything is stopped; what the run made is in $demo (logs: $demo/logs)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo >&2; echo "demo: interrupted" >&2; exit 130' INT
trap 'echo "demo: terminated" >&2; exit 143' TERM

# die MESSAGE [LOG...]: the message, the end of each log, exit 1.
die() {
    local f
    echo >&2
    echo "demo: FAILED: $1" >&2
    shift
    for f in "$@"; do
        [ -s "$f" ] || continue
        echo "---- last lines of $f" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}

# run LIMIT OUT ERR CMD...: CMD with stdout to OUT and stderr to ERR (and
# stdin from $run_in), stopped after LIMIT seconds; returns its exit status
# (124: too slow). In the background and waited for, so that Ctrl-C reaches
# the trap at once.
run_in=/dev/null
run() {
    local limit=$1 out=$2 err=$3 rc
    shift 3
    timeout -k 5 "$limit" "$@" <"$run_in" >"$out" 2>"$err" &
    cur=$!
    wait "$cur"
    rc=$?
    cur=
    if [ "$rc" -eq 124 ]; then
        echo "demo: $(basename "$1") took longer than ${limit}s and was stopped" >>"$err"
    fi
    return "$rc"
}
# must LIMIT NAME CMD...: run with output to logs/NAME.out and .log, or die.
must() {
    local limit=$1 name=$2
    shift 2
    local rc=0
    run "$limit" "$logs/$name.out" "$logs/$name.log" "$@" || rc=$?
    [ "$rc" -eq 0 ] || die "$(basename "$1") ${*:2} (exit $rc)" "$logs/$name.log" "$logs/$name.out"
}

# wait_for FILE REGEX PID SECONDS: until a line of FILE matches (printed),
# PID exits (1) or the time is up (1).
wait_for() {
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        if grep -Eq -- "$2" "$1" 2>/dev/null; then
            grep -E -m1 -- "$2" "$1"
            return 0
        fi
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# show_progress PID LOG: until PID exits, the last line of LOG on a terminal.
show_progress() {
    while kill -0 "$1" 2>/dev/null; do
        [ "$tty" = 1 ] && printf '\r\033[K   %s' "$(tail -n 1 "$2" 2>/dev/null | cut -c1-100)"
        sleep 0.5
    done
    [ "$tty" = 1 ] && printf '\r\033[K'
    return 0
}

section_t0=0
section_name=
section() {
    [ -n "$section_name" ] && took[$section_name]=$(($(now_ms) - section_t0))
    section_name=$1
    section_t0=$(now_ms)
    echo
    echo "== $2"
}
say() { echo "   $*"; }

uri() { # uri TOKEN [OBJECT]: the token's URI with the rig's pin-source
    local u="pkcs11:token=$1"
    [ -n "${2:-}" ] && u="$u;object=$2"
    printf '%s?pin-source=file:%s/pins/%s.pin' "$u" "$rig" "$1"
}

cd "$top" || exit 1

# A demo left running by hand (after --keep) keeps files open in build/demo.
busy=$(demo_procs)
busy=${busy% }
if [ -n "$busy" ]; then
    echo "demo: processes still use $demo (pids: $busy): stop them first, e.g." >&2
    echo "      build/bin/otpca-manager window close --config $demo/manager.conf; kill $busy" >&2
    exit 1
fi

# ---- 0. dependencies and build ----
echo "== 0. Debian packages and build"
deploy/deps.sh || { echo "demo: FAILED: deploy/deps.sh" >&2; exit 1; }
t0=$(now_ms)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.configure.log 2>&1 ||
    { tail -n 30 build.configure.log >&2; echo "demo: FAILED: cmake configure (build.configure.log)" >&2; exit 1; }
# A cluster a --store postgres --keep run left running.
[ -d "$demo/pg" ] && "$top/deploy/postgres.sh" stop "$demo/pg" --remove >/dev/null 2>&1
rm -rf "$demo"
mkdir -p "$logs"
made=1
say "cmake --build build -j$(nproc) (log: build/demo/logs/build.out)"
timeout -k 5 3600 cmake --build build -j"$(nproc)" >"$logs/build.out" 2>"$logs/build.log" &
cur=$!
show_progress "$cur" "$logs/build.out"
wait "$cur" || die "cmake --build build (exit $?)" "$logs/build.log" "$logs/build.out"
cur=
for b in otpca-token otpca-cloud otpca-manager otpca-node; do
    [ -x "$B/$b" ] || die "$B/$b is missing after the build" "$logs/build.out"
done
for t in openssl timeout pgrep; do
    command -v "$t" >/dev/null || die "$t is not installed (deploy/deps.sh should have installed it)"
done
engine_dir=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
[ -f "$engine_dir/pkcs11.so" ] ||
    die "the OpenSSL PKCS#11 engine ($engine_dir/pkcs11.so, package libengine-pkcs11-openssl) is missing"
took[build]=$(($(now_ms) - t0))
say "binaries in $B (build: $(secs "${took[build]}") s)"

# ---- 1. rig ----
section rig "1. SoftHSM rig: root, cloud, manager mgr-01 with operator token otpca-op-01, $nodes nodes"
export SOFTHSM2_CONF=$rig/softhsm2.conf
timeout -k 5 $((120 + nodes / 5)) "$B/otpca-token" rig create "$rig" --nodes "$nodes" --managers 1 \
    >"$logs/rig.out" 2>"$logs/rig.log" &
cur=$!
show_progress "$cur" "$logs/rig.log"
wait "$cur" || die "otpca-token rig create (exit $?)" "$logs/rig.log" "$logs/rig.out"
cur=
say "$(grep -m1 "^rig " "$logs/rig.out")"
say "every key and TOTP seed is generated inside its token, non-extractable; PINs in $rig/pins (0600)"

# ---- 2. ceremony ----
section ceremony "2. root ceremony (keys in the root and manager tokens)"
cd "$demo" || exit 1
must 60 init-root "$B/otpca-manager" ca init-root --key "$(uri otpca-root root-key)" --cn "otpca demo root" --out root
say "$(cat "$logs/init-root.out")"
must 60 certify "$B/otpca-manager" ca certify --root "$(uri otpca-root root-key)" --root-cert root.pem \
    --key "$(uri otpca-mgr-01 ca-key)" --id mgr-01 --out mgr-01
sed 's/^/   /' "$logs/certify.out"
mcurve=$(sed -n "s/.*--curve-key '\(.\{40\}\)'.*/\1/p" "$logs/certify.out")
[ -n "$mcurve" ] || die "ca certify printed no --curve-key line" "$logs/certify.out"

# ---- 3. cloud ----
section cloud "3. cloud: init, import the factory manifest, approve, register manager and operator"
store=$demo/cloud.db
if [ "$store_kind" = postgres ]; then
    must 120 postgres "$top/deploy/postgres.sh" start "$demo/pg"
    store=$(tail -n 1 "$logs/postgres.out")
    [[ $store == postgresql://* ]] || die "deploy/postgres.sh printed no store URL" "$logs/postgres.out" "$logs/postgres.log"
    say "PostgreSQL on loopback (deploy/postgres.sh): $store"
fi
cat >cloud.conf <<END
store = $store
token = $(uri otpca-cloud)
listen = tcp://127.0.0.1:*
notices = tcp://127.0.0.1:*
workers = 2
END
C=("$B/otpca-cloud" --config "$demo/cloud.conf")
must 60 cloud-init "${C[@]}" init
curve=$(sed -n 's/^cloud_curve_key = //p' "$logs/cloud-init.out")
sign=$(sed -n 's/^cloud_sign_key = //p' "$logs/cloud-init.out")
{ [ -n "$curve" ] && [ -n "$sign" ]; } || die "otpca-cloud init printed no identity" "$logs/cloud-init.out"
say "otpca-cloud init: store $store; keys in token otpca-cloud; managers pin:"
say "  cloud_curve_key = $curve"
say "  cloud_sign_key  = ${sign:0:24}..."
must 120 import "${C[@]}" device import "$rig/manifest.csv"
say "device import: $(tail -n 1 "$logs/import.out")"
must 60 list-pending "${C[@]}" device list --state pending --limit 1
say "  $(grep -m1 ' devices: ' "$logs/list-pending.log")"
must 60 approve "${C[@]}" device approve --all
say "device approve --all: $(tail -n 1 "$logs/approve.out")"
must 60 manager-add "${C[@]}" manager add mgr-01 --ca-cert mgr-01.pem --curve-key "$mcurve"
say "manager add mgr-01 --ca-cert mgr-01.pem --curve-key '$mcurve'"
(umask 077 && awk -F, '$1 == "otpca-op-01" { print $3 }' "$rig/operators.csv" >op.seed)
[ -s op.seed ] || die "no seed for otpca-op-01 in $rig/operators.csv"
must 60 operator-add "${C[@]}" operator add otpca-op-01 --seed-file op.seed
must 60 operator-allow "${C[@]}" operator allow otpca-op-01 --manager mgr-01
say "operator add otpca-op-01 --seed-file op.seed (0600; the seed the operator token holds)"
say "operator allow otpca-op-01 --manager mgr-01"

setsid "${C[@]}" serve >cloud.out 2>cloud.log &
cloud_pid=$!
daemons+=("$cloud_pid")
line=$(wait_for cloud.out '^listening ' "$cloud_pid" 30) ||
    die "otpca-cloud serve did not start within 30 s" cloud.log cloud.out
read -r _ listen _ notices <<<"$line"
say "otpca-cloud serve (pid $cloud_pid, SQLite): listening $listen notices $notices"

# ---- 4. window ----
section window "4. manager window: lease with the operator's TOTP (computed in token otpca-op-01), trust-list sync"
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >netkey.hex && echo >>netkey.hex)
cat >manager.conf <<END
id = mgr-01
token = $(uri otpca-mgr-01)
ca_cert = $demo/mgr-01.pem
store = $demo/manager.db
cloud = $listen
cloud_notices = $notices
cloud_curve_key = $curve
cloud_sign_key = $sign
listen = tcp://127.0.0.1:*
operator = otpca-op-01
operator_token = $(uri otpca-op-01 op-totp)
netkey_file = $demo/netkey.hex
window_seconds = 3600
workers = 2
log_level = info
END
t0=$(now_ms)
setsid "$B/otpca-manager" window open --config "$demo/manager.conf" >window.out 2>window.log &
mgr_pid=$!
daemons+=("$mgr_pid")
line=$(wait_for window.out '^serving ' "$mgr_pid" 60) ||
    die "the window did not open within 60 s" window.log window.out
ep=$(sed -n 's/^serving \([^ ]*\).*/\1/p' <<<"$line")
open_ms=$(($(now_ms) - t0))
say "otpca-manager window open (pid $mgr_pid): serving $ep after $open_ms ms"
say "  $(grep -m1 'trust list synced' window.log | sed 's/.*\] *//')"
say "  network key: netkey.hex ($(stat -c %a netkey.hex)), handed to every node sealed to its token key"

# ---- 5. enrollment ----
section enroll "5. otpca-node sim: $nodes nodes enroll, $conc at a time, each from its own token"
mkdir -p nodes
sim_err=$logs/sim.log
[ "$tty" = 1 ] && sim_err=/dev/stderr # the progress bar
timeout -k 5 $((60 + nodes / 2)) "$B/otpca-node" sim --rig "$rig" --manager "$ep" --root root.pem \
    --count "$nodes" --concurrency "$conc" --state nodes >"$logs/sim.out" 2>"$sim_err" &
cur=$!
# A node whose manager is gone waits 45 s (4 sends) before it gives up:
# stop the simulator at once if the manager or the cloud exits meanwhile.
while kill -0 "$cur" 2>/dev/null; do
    for p in "$mgr_pid" "$cloud_pid"; do
        kill -0 "$p" 2>/dev/null && continue
        stop_pid "$cur" 10
        cur=
        [ "$tty" = 1 ] && echo >&2
        wait "$p"
        prc=$?
        who="the cloud"
        [ "$p" = "$mgr_pid" ] && who="the manager"
        die "$who exited (status $prc) during the enrollment" \
            window.log cloud.log "$logs/sim.log"
    done
    sleep 0.2
done
wait "$cur"
sim_rc=$?
cur=
sed 's/^/   /' "$logs/sim.out"
[ "$sim_rc" -eq 0 ] || die "otpca-node sim (exit $sim_rc)" "$logs/sim.log" "$demo/window.log"
enrolled=$(sed -n 's/^enrolled *\([0-9]*\).*/\1/p' "$logs/sim.out")
rate=$(sed -n 's/^elapsed .*(\([0-9.]*\) enrollments\/s).*/\1/p' "$logs/sim.out")
sim_s=$(sed -n 's/^elapsed *\([0-9.]*\) s.*/\1/p' "$logs/sim.out")
latency=$(sed -n 's/^latency *//p' "$logs/sim.out")
[ "$enrolled" = "$nodes" ] || die "sim enrolled ${enrolled:-?} of $nodes" "$logs/sim.out"
say "(the simulator sets the pace: every node logs in to its own SoftHSM token, which SoftHSM"
say " serves from files; bench/window.sh measures the manager itself)"

# ---- 6. close ----
section close "6. window close: drain, upload the records, WindowClose; the manager's summary"
t0=$(now_ms)
must 30 window-close "$B/otpca-manager" window close --config "$demo/manager.conf"
i=0
while kill -0 "$mgr_pid" 2>/dev/null && [ "$i" -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -0 "$mgr_pid" 2>/dev/null && die "the manager did not exit within 60 s of window close" window.log
wait "$mgr_pid"
mgr_rc=$?
daemons=("$cloud_pid")
close_ms=$(($(now_ms) - t0))
[ "$mgr_rc" -eq 0 ] || die "otpca-manager window open exited $mgr_rc" window.log window.out
summary=$(grep -m1 '^window closed' window.out) || die "no summary from the manager" window.out window.log
say "$summary"
say "(closed and exited in $close_ms ms)"
grep -q " $nodes issued, $nodes confirmed, 0 rejected" <<<"$summary" ||
    die "the manager's summary does not show $nodes issued and confirmed" window.out window.log
grep -q " 0 pending" <<<"$summary" || die "records are still pending upload" window.out window.log
must 60 list-after "${C[@]}" device list --limit 1
cloud_counts=$(grep -m1 ' devices: ' "$logs/list-after.log")
say "cloud: $cloud_counts"
grep -q " $nodes enrolled" <<<"$cloud_counts" || die "the cloud does not count $nodes devices enrolled" "$logs/list-after.log"
must 60 audit "${C[@]}" audit verify
say "cloud: $(cat "$logs/audit.out")"

# ---- 7. verify a sample ----
section verify "7. openssl verify: root -> mgr-01 -> node, on a sample of the committed certificates"
mkdir -p certs
sample=()
for ((k = 0; k < 10; k++)); do
    i=$((1 + k * (nodes - 1) / 9))
    s=$(printf 'node-%06d' "$i")
    [[ " ${sample[*]} " == *" $s "* ]] || sample+=("$s")
done
verified=0
for s in "${sample[@]}"; do
    run 30 "$logs/show-$s.out" "$logs/show-$s.log" "$B/otpca-node" show --rig "$rig" --serial "$s" --state nodes \
        --cert-out "certs/$s.pem" || die "otpca-node show $s" "$logs/show-$s.log" "$logs/show-$s.out"
    grep -q "confirmed    yes" "$logs/show-$s.out" || die "$s: the flash image holds no confirmed credential" "$logs/show-$s.out"
    v=$(openssl verify -CAfile root.pem -untrusted mgr-01.pem "certs/$s.pem" 2>&1) || die "openssl verify $s: $v"
    cn=$(openssl x509 -in "certs/$s.pem" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p')
    [ "$cn" = "$s" ] || die "$s: the certificate names '$cn'"
    verified=$((verified + 1))
    say "$v   (CN $cn)"
done
s=${sample[0]}
tokkey=$("$B/otpca-token" pubkey "$(uri "$s" device-key)" 2>"$logs/pubkey.log") || die "otpca-token pubkey $s" "$logs/pubkey.log"
[ "$(openssl x509 -in "certs/$s.pem" -noout -pubkey)" = "$tokkey" ] ||
    die "$s: the certificate's key is not the one in its token"
say "$s's certificate holds the key inside its token; the profile:"
openssl x509 -in "certs/$s.pem" -noout -subject -issuer -enddate -ext subjectAltName,keyUsage,extendedKeyUsage |
    sed 's/^/     /'

# ---- 8. mutual TLS ----
section tls "8. one mutual-TLS handshake: node $s (key in its token) <-> openssl s_server"
mkdir -p tls
(umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out tls/server.key) 2>"$logs/tls.log" ||
    die "openssl ecparam" "$logs/tls.log"
openssl pkey -in tls/server.key -pubout -out tls/server.pub 2>>"$logs/tls.log" || die "openssl pkey" "$logs/tls.log"
# The root's key never leaves the root token: the token signs the server
# certificate (end entity: keyUsage digitalSignature+keyAgreement and no
# extendedKeyUsage, so any purpose, serverAuth included).
must 60 server-cert "$B/otpca-token" cert issue "$(uri otpca-root root-key)" --issuer root.pem \
    --pubkey tls/server.pub --cn localhost --days 30 --out tls/server.pem
v=$(openssl verify -purpose sslserver -CAfile root.pem tls/server.pem 2>&1) || die "server certificate: $v"
say "server certificate (CN localhost) signed in the root token by otpca-token cert issue;"
say "  no extendedKeyUsage (any purpose): openssl verify -purpose sslserver: $v"
# libp11's engine (0.4.12) reads a pin-source file whole, newline included:
# a copy of the node's PIN without it, 0600, beside the TLS files.
(umask 077 && printf '%s' "$(head -n 1 "$rig/pins/$s.pin")" >"tls/$s.pin")
setsid openssl s_server -accept 127.0.0.1:0 -naccept 1 -www -cert tls/server.pem -key tls/server.key \
    -CAfile root.pem -Verify 2 -verify_return_error >tls/s_server.out 2>tls/s_server.log &
srv_pid=$!
daemons+=("$srv_pid")
line=$(wait_for tls/s_server.out '^ACCEPT ' "$srv_pid" 20) || die "openssl s_server did not start" tls/s_server.log
port=${line##*:}
printf 'GET / HTTP/1.0\r\n\r\n' >tls/request
run_in=tls/request
run 30 tls/s_client.out tls/s_client.log env PKCS11_MODULE_PATH="${OTPCA_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}" \
    openssl s_client -connect "127.0.0.1:$port" -verify_hostname localhost -CAfile root.pem -verify_return_error \
    -engine pkcs11 -keyform engine -key "pkcs11:token=$s;object=device-key;type=private?pin-source=file:$demo/tls/$s.pin" \
    -cert "certs/$s.pem" -cert_chain mgr-01.pem -quiet -ign_eof ||
    die "openssl s_client with the node's token key (exit $?)" tls/s_client.log tls/s_server.log
run_in=/dev/null
stop_pid "$srv_pid" 10 # -naccept 1: it has ended already
daemons=("$cloud_pid")
# The server's answer (-www) shows the client certificate it verified.
sed -n '/^Client certificate/,/END CERTIFICATE/p' tls/s_client.out | sed -n '/BEGIN/,/END/p' >tls/peer.pem
peer=$(openssl x509 -in tls/peer.pem -noout -subject 2>/dev/null) ||
    die "the server saw no client certificate" tls/s_client.out tls/s_server.log
proto=$(sed -n 's/^ *Protocol *: *//p' tls/s_client.out | head -1)
cipher=$(sed -n 's/^ *Cipher *: *//p' tls/s_client.out | head -1)
cmp -s <(openssl x509 -in tls/peer.pem -outform der) <(openssl x509 -in "certs/$s.pem" -outform der) ||
    die "the server saw another client certificate: $peer"
say "s_client: key pkcs11:token=$s;object=device-key (OpenSSL PKCS#11 engine, SoftHSM), chain $s -> mgr-01"
say "s_server: verified the client chain up to root.pem: $(grep -c 'verify return:1' tls/s_server.log) certificates, $peer"
say "s_client: verified the server (localhost) up to root.pem; $proto, $cipher"

# ---- 9. stop ----
section stop "9. stop the cloud"
stop_pid "$cloud_pid" 20
daemons=()
[ "$stopped_rc" -eq 0 ] || die "otpca-cloud serve exited $stopped_rc on SIGTERM" cloud.log
left=$(demo_procs)
left=${left% }
[ -z "$left" ] || die "processes still use $demo: $left"
say "otpca-cloud serve stopped (exit 0); no process left running from $demo"
took[stop]=$(($(now_ms) - section_t0))
section_name=
total_ms=$(($(now_ms) - t_start))

if [ "$keep" = 0 ]; then
    # The tokens, stores and secrets go; the public results and logs stay.
    rm -rf "$rig" nodes cloud.db* manager.db* netkey.hex op.seed tls/server.key "tls/$s.pin" tls/request
fi

row() { printf '   %-13s %8s   %s\n' "$1" "$2" "$3"; }
echo
echo "== summary: $nodes nodes, $(secs "$total_ms") s in all"
row "step" "time" "result"
row "build" "$(secs "${took[build]}") s" "$B"
row "rig" "$(secs "${took[rig]}") s" "SoftHSM tokens: root, cloud, mgr-01, otpca-op-01 and $nodes nodes"
row "ceremony" "$(secs "${took[ceremony]}") s" "root.pem (key in otpca-root) -> mgr-01.pem (CA, pathLen 0, key in otpca-mgr-01)"
row "cloud" "$(secs "${took[cloud]}") s" "$nodes devices imported, approved; mgr-01 and otpca-op-01 registered; serving"
row "window open" "$(secs "$open_ms") s" "lease with otpca-op-01's TOTP (from its token), trust list of $nodes devices"
row "enrollment" "$sim_s s" "$enrolled enrolled, 0 failed: $rate enrollments/s, $conc in flight"
row "" "" "latency $latency"
row "window close" "$(secs "$close_ms") s" "${summary#window closed (signal): }"
row "cloud" "" "${cloud_counts}; $(cat "$logs/audit.out")"
row "verify" "$(secs "${took[verify]}") s" "$verified sample certificates: root -> mgr-01 -> node (openssl verify), keys in node tokens"
row "mutual TLS" "$(secs "${took[tls]}") s" "$s (token key, PKCS#11 engine) <-> s_server (root-issued, no EKU): $proto"
row "stop" "$(secs "${took[stop]}") s" "cloud, manager and s_server stopped; nothing left running"
echo
echo "   in $demo:"
echo "     root.pem mgr-01.pem      the chain          certs/          the sample's node certificates"
echo "     window.out window.log    the manager        cloud.log       the cloud"
echo "     tls/                     the handshake      logs/           every step's output"
if [ "$keep" = 1 ]; then
    echo "     rig/ nodes/ cloud.db manager.db cloud.conf manager.conf   kept (--keep)"
    [ "$store_kind" = postgres ] &&
        echo "     pg/   the PostgreSQL cluster, still running: deploy/postgres.sh stop $demo/pg --remove"
    cat <<END

== go on by hand (the daemons are stopped; the operator's code is good once, so open
   the next window at least 30 s after this one opened)
   cd $demo
   export SOFTHSM2_CONF=\$PWD/rig/softhsm2.conf B=$B
   \$B/otpca-cloud --config cloud.conf serve >tour-cloud.out 2>tour-cloud.log &
   timeout 20 sh -c 'until [ -s tour-cloud.out ]; do sleep 0.2; done'; read -r _ cloud _ notices <tour-cloud.out
   export OTPCA_MANAGER_CLOUD=\$cloud OTPCA_MANAGER_CLOUD_NOTICES=\$notices   # the cloud's new ports
   \$B/otpca-manager window open --config manager.conf >tour-window.out 2>tour-window.log &
   timeout 30 sh -c 'until [ -s tour-window.out ]; do sleep 0.2; done'; read -r _ ep <tour-window.out; echo \$ep
   \$B/otpca-node enroll --rig rig --serial node-000001 --manager \$ep --root root.pem \\
       --state tour --cert-out node-000001.pem
   openssl x509 -in node-000001.pem -noout -text
   openssl verify -CAfile root.pem -untrusted mgr-01.pem node-000001.pem
   \$B/otpca-cloud --config cloud.conf device revoke node-000001 --reason 1
   sleep 2; grep 'notice: node-000001' tour-window.log    # the revocation reached the manager
   \$B/otpca-manager window close --config manager.conf; sleep 1; tail -n 2 tour-window.out   # summary, CRL
   \$B/otpca-cloud --config cloud.conf crl get --manager mgr-01 --out mgr-01.crl.pem   # the manager's CRL
   openssl verify -crl_check -CAfile root.pem -untrusted mgr-01.pem -CRLfile mgr-01.crl.pem node-000001.pem
   kill %1                                              # the cloud
END
else
    echo "     (the rig, the stores and the secrets are removed; --keep leaves them)"
fi
