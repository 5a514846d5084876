#!/usr/bin/env bash
# shellcheck disable=SC2128 # bin is an array only inside lib.sh's bench_build_both (not called here)
# Full enrollments through a real window, against the crypto bound of the
# same run; window open and close times with many devices in scope.
#
#   bench/window.sh [--devices N] [--enroll K] [--concurrency C] [--build DIR] [--json] [--help]
#
# In a throw-away directory: a SoftHSM rig (root, cloud, one manager and
# its operator; no node tokens), N devices with software keys
# (otpca-bench-window gen; default 100,000) imported into a real
# `otpca-cloud serve` on loopback and approved, the root ceremony, then:
#   1. `otpca-manager window open`, timed until it serves (lease, snapshot
#      sync of N devices into an empty journal, seed-box keys);
#   2. K full enrollments (default 10,000) with C in flight (default 32):
#      request -> checks -> token-signed certificate -> ECIES -> journal
#      (group commit, fsync) -> EnrollResponse -> EnrollConfirm ->
#      ConfirmAck, by otpca-bench-window load (software node keys,
#      requests signed before the clock starts);
#   3. `window close` (SIGTERM), timed until the process exits (draining,
#      uploading the 2K records, WindowClose);
#   4. a second open (the journal already synced: a delta) and close, timed;
#   5. otpca-bench-enroll --json on the same rig: the crypto bound of one
#      enrollment with 2 threads (2 ECDSA verifies, 2 token signatures, 1
#      ECDH, 3 TOTPs), plus the ConfirmAck's token signature, which the
#      window does and the engine benchmark leaves out.
# Prints a table (or --json: one object) with enrollments/s, the bound, the
# ratio (target >= 0.80), latency percentiles, bytes per enrollment, the
# client's CPU share, the open/close times (target <= 1 s each), and the
# peak RSS (VmHWM from /proc) of the manager (window 1, read just before
# its close) and of the cloud (read after the second window).
# Also the manager's CPU during the load by thread (workers summed, the
# journal writer, the main loop, ZMQ's I/O thread, the uplink).
# The binaries come from --build DIR (default build/, made by
# deploy/test.sh; a Release build measures best). Takes about 1-2 minutes
# at the defaults. Exit status: 0 done, 1 a step failed, 2 bad usage.
# Environment: OTPCA_BENCH_WORKERS (the manager's workers, default 2);
# OTPCA_BENCH_PERF=FILE records the manager with perf during the load,
# with OTPCA_BENCH_PERF_OPTS (default -g).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
devices=100000
enroll=10000
conc=32
build=$root/build
json=0
prog=window.sh
say() { echo "$prog: $*" >&2; }
usage() { sed -n '6p' "${BASH_SOURCE[0]}" | sed 's/^# *//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --devices) devices=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --enroll) enroll=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --concurrency) conc=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --build) build=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --json) json=1; shift ;;
    -h | --help) sed -n '3,38p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown argument: $1"; usage >&2; exit 2 ;;
    esac
done
for v in devices enroll conc; do
    if ! [[ ${!v} =~ ^[1-9][0-9]{0,6}$ ]]; then
        say "--$v wants a number from 1 to 9999999"
        exit 2
    fi
done
[ "$enroll" -le "$devices" ] || { say "--enroll must not exceed --devices"; exit 2; }
[ "$conc" -le 256 ] || { say "--concurrency wants 1..256"; exit 2; }
bin=$build/bin
for b in otpca-token otpca-cloud otpca-manager otpca-bench-window otpca-bench-enroll; do
    [ -x "$bin/$b" ] || { say "$bin/$b is missing: build first (deploy/test.sh, or cmake --build $build)"; exit 1; }
done

# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh" # the window rig (wrig_*); say and usage are this script's own
say() { echo "$prog: $*" >&2; }
usage() { sed -n '6p' "${BASH_SOURCE[0]}" | sed 's/^# *//'; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/otpca-window-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ -n "${KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM
fail() { say "$*"; for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -5 "$f" >&2; }; done; exit 1; }
ms() { date +%s%3N; }

say "rig, $devices devices, cloud, ceremony ..."
wrig_setup "$devices"
wrig_cloud_start
wrig_manager_conf "$tmp/manager.db"

# open_window N: starts window N; $endpoint, $mpid, $open_ms. The cloud
# takes an operator code once: window 2 types the next step's code (the
# ±1 tolerance), computed in the operator token before the clock starts.
open_window() {
    local code=
    if [ "$1" != 1 ]; then
        code=$("$bin/otpca-token" otp "pkcs11:token=otpca-op-01;object=op-totp?$(wrig_pin otpca-op-01)" \
            --time $(($(date +%s) + 30))) || fail "no operator code"
        wrig_open "$1" otpca-op-01 "$code"
    else
        wrig_open "$1"
    fi
    summary=$tmp/manager-$1.out
}
# close_window: SIGTERM, timed until the process is gone; $close_ms, and
# $mgr_hwm, the manager's VmHWM read just before the signal.
close_window() {
    mgr_hwm=$(wrig_vmhwm "$mpid")
    wrig_close
    [ "$close_rc" = 0 ] || fail "the window exited with status $close_rc"
}

say "window 1: open (snapshot of $devices devices), $enroll enrollments, close ..."
open_window 1
open1=$open_ms
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime
# thread_ticks PID: "name ticks" per thread of PID (the manager names its
# threads: mgr-worker-N, mgr-journal, mgr-uplink; ZMQ's I/O thread is
# ZMQbg/IO/N); the comm field may hold spaces, so it is cut at its parens.
thread_ticks() {
    local f line
    for f in /proc/"$1"/task/*/stat; do
        read -r line <"$f" 2>/dev/null || continue
        local name=${line#*(} rest=${line##*) }
        name=${name%)*}
        set -- $rest # fields from 3 on: utime is the 12th, stime the 13th
        echo "${name// /_} $((${12} + ${13}))"
    done
}
m0=$(cpu_ticks "$mpid"); c0=$(cpu_ticks "$cloudpid")
mt0=$(thread_ticks "$mpid")
# OTPCA_BENCH_PERF=FILE: perf record of the manager during the load.
if [ -n "${OTPCA_BENCH_PERF:-}" ]; then
    perf record ${OTPCA_BENCH_PERF_OPTS:--g} -p "$mpid" -o "$OTPCA_BENCH_PERF" >/dev/null 2>&1 &
    perfpid=$!
fi
"$bin/otpca-bench-window" load --endpoint "$endpoint" --devices "$tmp/devices.bin" --count "$enroll" \
    --concurrency "$conc" >"$tmp/load.json" 2>"$tmp/load.log" || fail "the load failed: $(cat "$tmp/load.log")"
[ -n "${OTPCA_BENCH_PERF:-}" ] && { kill -INT "$perfpid"; wait "$perfpid"; }
hz=$(getconf CLK_TCK)
mcpu=$(awk -v a="$m0" -v b="$(cpu_ticks "$mpid")" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
# The manager's CPU seconds during the load by thread, the workers summed:
# "main 0.21 mgr-journal 0.60 mgr-worker 3.10 ..."
mthreads=$( { echo "$mt0" | sed 's/^/a /'; thread_ticks "$mpid" | sed 's/^/b /'; } | awk -v hz="$hz" '
    { n = $2; sub(/-[0-9]+$/, "", n); if (n == "otpca-manager") n = "main"; sub(/\/[0-9]+$/, "", n)
      if ($1 == "a") t[n] -= $3; else t[n] += $3 }
    END { for (n in t) printf "%s %.2f\n", n, t[n] / hz }' | sort)
ccpu_cloud=$(awk -v a="$c0" -v b="$(cpu_ticks "$cloudpid")" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
close_window
close1=$close_ms
hwm_mgr=${mgr_hwm:-0}
grep -q " $enroll issued, $enroll confirmed" "$summary" ||
    fail "the summary does not show $enroll issued and confirmed: $(cat "$summary")"
pending=$(sed -n 's/.* \([0-9]*\) pending.*/\1/p' "$summary")
say "window 2: open (delta), close ..."
open_window 2
open2=$open_ms
close_window
close2=$close_ms
hwm_cloud=$(wrig_vmhwm "$cloudpid") # after both windows: the cloud's peak over the run
hwm_cloud=${hwm_cloud:-0}

say "crypto bound (otpca-bench-enroll, same rig) ..."
"$bin/otpca-bench-enroll" --json --rig "$rig" --seconds 1 --rounds 4 >"$tmp/bound.json" 2>"$tmp/bound.log" ||
    fail "otpca-bench-enroll failed"

num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2" | head -1; }
rate=$(num per_second "$tmp/load.json")
bound2=$(num bound_2 "$tmp/bound.json")
sign2=$(num token_sign_2 "$tmp/bound.json")
engine2=$(num engine_2 "$tmp/bound.json")
read -r bound ratio <<<"$(awk -v b="$bound2" -v s="$sign2" -v r="$rate" 'BEGIN {
    e = 1 / (1 / b + 1 / s); printf "%.1f %.3f\n", e, r / e }')"
# Per CPU-second of the manager process: what the manager itself costs per
# enrollment, whatever the cloud and the client took of the machine; the
# bound per CPU-second likewise: bench/enroll's bound_cpu_1 (one thread,
# per CPU-second) and the token signature's CPU cost (its first row, the
# one-thread one).
boundcpu2=$(num bound_cpu_1 "$tmp/bound.json")
signcpu=$(grep -o '"name":"token_sign"[^}]*' "$tmp/bound.json" | head -1 | sed -n 's/.*"cpu_ops_per_s":\([0-9.]*\).*/\1/p')
read -r mrate boundcpu ratiocpu <<<"$(awk -v n="$enroll" -v c="$mcpu" -v b="$boundcpu2" -v s="${signcpu:-0}" 'BEGIN {
    r = (c > 0) ? n / c : 0; e = (s > 0) ? 1 / (1 / b + 1 / s) : b; q = (e > 0) ? r / e : 0
    printf "%.1f %.1f %.3f\n", r, e, q }')"
p50=$(num p50 "$tmp/load.json"); p95=$(num p95 "$tmp/load.json"); p99=$(num p99 "$tmp/load.json")
bytes=$(num bytes_per_enrollment "$tmp/load.json")
secs=$(num seconds "$tmp/load.json")
ccpu=$(num client_cpu_seconds "$tmp/load.json")

if [ "$json" = 1 ]; then
    printf '{"benchmark":"window","devices":%s,"enrollments":%s,"concurrency":%s,"per_second":%s,' \
        "$devices" "$enroll" "$conc" "$rate"
    printf '"bound_per_second":%s,"ratio":%s,"engine_per_second":%s,"latency_ms":{"p50":%s,"p95":%s,"p99":%s},' \
        "$bound" "$ratio" "$engine2" "$p50" "$p95" "$p99"
    printf '"bytes_per_enrollment":%s,"client_cpu_seconds":%s,"seconds":%s,' "$bytes" "$ccpu" "$secs"
    printf '"manager_cpu_seconds":%s,"cloud_cpu_seconds":%s,"per_manager_cpu_second":%s,' "$mcpu" "$ccpu_cloud" "$mrate"
    printf '"manager_cpu_by_thread":{%s},' "$(echo "$mthreads" | awk 'NF == 2 { printf "%s\"%s\":%s", (n++ ? "," : ""), $1, $2 }')"
    printf '"bound_per_cpu_second":%s,"ratio_cpu":%s,' "$boundcpu" "$ratiocpu"
    printf '"open_snapshot_ms":%s,"close_ms":%s,"open_delta_ms":%s,"close_idle_ms":%s,"pending_after_close":%s,' \
        "$open1" "$close1" "$open2" "$close2" "${pending:-null}"
    printf '"manager_vmhwm_kib":%s,"cloud_vmhwm_kib":%s}\n' "$hwm_mgr" "$hwm_cloud"
else
    cat <<END
Full enrollments through otpca-manager (2 workers, group-committed journal), $(nproc) cores,
$devices devices in scope, $enroll enrollments, $conc in flight:

  enrollments/s                 $rate   (engine alone, bench/enroll: $engine2)
  crypto bound/s                $bound   (2 verifies, 3 token signatures, 1 ECDH, 3 TOTPs; 2 threads)
  ratio                         $ratio   (target >= 0.80)
  latency p50 / p95 / p99 ms    $p50 / $p95 / $p99
  bytes per enrollment          $bytes
  per CPU-second of the manager  $mrate   (bound per CPU-second: $boundcpu, ratio $ratiocpu)
  CPU during the load           manager $mcpu s, cloud $ccpu_cloud s, client $ccpu s, of $secs s x $(nproc) cores
  manager CPU by thread         $(echo "$mthreads" | awk 'NF == 2 { printf "%s%s %s s", (n++ ? ", " : ""), $1, $2 }')
  window open, first (snapshot) $open1 ms
  window close after the load   $close1 ms (records uploaded; ${pending:-?} pending)
  window open, again (delta)    $open2 ms
  window close, idle            $close2 ms
  peak RSS (VmHWM)              manager $((hwm_mgr / 1024)) MiB (window 1, before its close), cloud $((hwm_cloud / 1024)) MiB (whole run)
END
fi
