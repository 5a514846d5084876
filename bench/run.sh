#!/usr/bin/env bash
# The benchmarks of issue #7 in one run, one table (or one JSON object).
#
#   bench/run.sh [--quick] [--json] [--out FILE] [--devices N] [--window-devices N] [--enroll K] [--build DIR]
#
# Runs, one after the other, each under a time limit:
#   1. bench/window.sh --json: full enrollments/s through a real window,
#      the crypto bound of the same run and their ratio, window open and
#      close times, bytes on the wire per enrollment, and the peak RSS
#      (VmHWM) of `otpca-manager window open` and `otpca-cloud serve`;
#      --window-devices N devices in scope (default 100,000), --enroll K
#      enrollments (default 10,000);
#   2. otpca-bench-cloud --json: import and snapshot sync of --devices N
#      devices (default 1,000,000), a delta of 1,000 changes, the server's
#      peak RSS;
#   3. otpca-proto sizes: the encoded size of each message of an
#      enrollment (request, response with and without x5chain, confirm,
#      ConfirmAck), the protocol's bytes per enrollment beside the
#      measured ones.
# --quick: 2,000 devices and 1,000 enrollments in the window, 20,000
# devices and 100 changes at the cloud (under 2 minutes; checks that the
# script and the benchmarks work, the numbers mean little). --json prints
# one object on stdout; --out FILE also writes the table or the object to
# FILE. Progress goes to stderr. The binaries come from --build DIR
# (default build/). Exit status: 0 every benchmark ran (a missed target is
# reported, not an error), 1 a benchmark failed or ran over its limit,
# 2 bad usage, 130 interrupted.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=run.sh
quick=0 json=0 out='' build=$root/build
devices='' wdevices='' enroll=''
say() { echo "$prog: $*" >&2; }
usage() { sed -n '4p' "${BASH_SOURCE[0]}" | sed 's/^# *//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1; shift ;;
    --json) json=1; shift ;;
    --out) out=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --devices) devices=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --window-devices) wdevices=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --enroll) enroll=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --build) build=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    -h | --help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown argument: $1"; usage >&2; exit 2 ;;
    esac
done
if [ "$quick" = 1 ]; then
    : "${devices:=20000}" "${wdevices:=2000}" "${enroll:=1000}"
    changes=100
else
    : "${devices:=1000000}" "${wdevices:=100000}" "${enroll:=10000}"
    changes=1000
fi
for v in devices wdevices enroll; do
    if ! [[ ${!v} =~ ^[1-9][0-9]{0,6}$ ]]; then
        say "--${v/wdevices/window-devices} wants a number from 1 to 9999999"
        exit 2
    fi
done
[ "$enroll" -le "$wdevices" ] || { say "--enroll must not exceed --window-devices"; exit 2; }
[ "$changes" -le "$devices" ] || changes=$devices
[ -z "$out" ] || : 2>/dev/null >>"$out" || { say "cannot write $out"; exit 2; }
bin=$build/bin
for b in otpca-proto otpca-bench-cloud otpca-bench-window otpca-bench-enroll otpca-manager otpca-cloud otpca-token; do
    [ -x "$bin/$b" ] || { say "$bin/$b is missing: build first (cmake --build $build)"; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/otpca-run.XXXXXX")
child=
cleanup() {
    # A benchmark still running: SIGTERM reaches it through timeout, and its
    # own traps stop its daemons and remove its directory.
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM

# bounded LIMIT NAME CMD...: CMD under timeout (SIGTERM at LIMIT seconds,
# SIGKILL 20 s later), stdout to $tmp/NAME.json, stderr to $tmp/NAME.log;
# its exit status in $rc.
bounded() {
    local limit=$1 name=$2
    shift 2
    timeout --signal=TERM --kill-after=20 "$limit" "$@" >"$tmp/$name.json" 2>"$tmp/$name.log" &
    child=$!
    wait "$child"
    rc=$?
    child=
}
failed=()
check() { # check NAME: a benchmark's exit status and its JSON
    if [ "$rc" -ne 0 ] || ! grep -q '^{.*}$' "$tmp/$1.json"; then
        [ "$rc" -eq 124 ] && say "$1 ran over its time limit and was stopped"
        say "$1 failed (exit $rc); the end of its output:"
        tail -15 "$tmp/$1.log" >&2
        failed+=("$1")
        return 1
    fi
}
num() { sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p" "$2" | head -1; }
row() { grep -o "{\"name\":\"$1\"[^}]*}" "$2" | head -1; } # one result of bench-cloud's JSON
rowval() { row "$1" "$2" | sed -n "s/.*\"$3\":\([0-9.eE+-]*\).*/\1/p"; }
t_start=$(date +%s)

say "1/3 window: $wdevices devices, $enroll enrollments (bench/window.sh) ..."
# Its own bounds: waits of 30-60 s each; the device generation and the
# snapshot grow with N.
bounded $((600 + wdevices / 200 + enroll / 20)) window \
    "$root/bench/window.sh" --build "$build" --devices "$wdevices" --enroll "$enroll" --json
check window && w_ok=1 || w_ok=0

say "2/3 cloud: $devices devices, $changes changes (otpca-bench-cloud) ..."
bounded $((300 + devices * 3 / 10000)) cloud "$bin/otpca-bench-cloud" --devices "$devices" --changes "$changes" --json
check cloud && c_ok=1 || c_ok=0

say "3/3 message sizes (otpca-proto sizes) ..."
bounded 60 sizes "$bin/otpca-proto" sizes
s_ok=1
size_of() { awk -v m="$1" -v k="${2:-1}" '$1 == m { if (++n == k) { print $2; exit } }' "$tmp/sizes.json"; }
if [ "$rc" -ne 0 ]; then
    say "otpca-proto sizes failed (exit $rc)"; failed+=(sizes); s_ok=0
else
    s_req=$(size_of EnrollRequest); s_resp=$(size_of EnrollResponse 1); s_respx=$(size_of EnrollResponse 2)
    s_conf=$(size_of EnrollConfirm); s_ack=$(size_of ConfirmAck)
    for v in s_req s_resp s_respx s_conf s_ack; do
        [[ ${!v} =~ ^[0-9]+$ ]] || { say "otpca-proto sizes: no $v in its output"; failed+=(sizes); s_ok=0; break; }
    done
fi
if [ "$s_ok" = 1 ]; then
    spec_kid=$((s_req + s_resp + s_conf + s_ack))
    spec_x5=$((s_req + s_respx + s_conf + s_ack))
else
    spec_kid=null spec_x5=null
fi

# ---- the numbers ----------------------------------------------------------
W=$tmp/window.json C=$tmp/cloud.json
jnum() { local v; v=$(num "$1" "$2"); echo "${v:-null}"; }
if [ "$w_ok" = 1 ]; then
    rate=$(jnum per_second "$W"); bound=$(jnum bound_per_second "$W"); ratio=$(jnum ratio "$W")
    ratio_cpu=$(jnum ratio_cpu "$W"); open1=$(jnum open_snapshot_ms "$W"); close1=$(jnum close_ms "$W")
    open2=$(jnum open_delta_ms "$W"); close2=$(jnum close_idle_ms "$W"); bytes=$(jnum bytes_per_enrollment "$W")
    hwm_m=$(jnum manager_vmhwm_kib "$W"); hwm_c=$(jnum cloud_vmhwm_kib "$W")
    p50=$(jnum p50 "$W"); p99=$(jnum p99 "$W")
else
    rate=null bound=null ratio=null ratio_cpu=null open1=null close1=null open2=null close2=null
    bytes=null hwm_m=null hwm_c=null p50=null p99=null
fi
if [ "$c_ok" = 1 ]; then
    imp=$(rowval import "$C" value); imp_t=$(rowval import "$C" target); imp_b=$(rowval import "$C" baseline_value)
    snap=$(rowval snapshot_sync "$C" value); snap_t=$(rowval snapshot_sync "$C" target)
    snap_b=$(rowval snapshot_sync "$C" baseline_value)
    delta=$(rowval delta_sync "$C" value); delta_t=$(rowval delta_sync "$C" target)
    hwm_cs=$(sed -n 's/.*"server":{"vmhwm_kib":\([0-9]*\).*/\1/p' "$C")
    for v in imp imp_t imp_b snap snap_t snap_b delta delta_t hwm_cs; do [ -n "${!v}" ] || printf -v "$v" null; done
else
    imp=null imp_t=null imp_b=null snap=null snap_t=null snap_b=null delta=null delta_t=null hwm_cs=null
fi
# met VALUE TARGET [ge]: true/false/null
met() {
    [ "$1" = null ] || [ "$2" = null ] && { echo null; return; }
    awk -v v="$1" -v t="$2" -v ge="${3:-}" 'BEGIN { r = ge ? v >= t : v <= t; print r ? "true" : "false" }'
}
verdict() { case $1 in true) echo ok ;; false) echo MISSED ;; *) echo - ;; esac; }
m_ratio=$(met "$ratio" 0.80 ge); m_open1=$(met "$open1" 1000); m_close1=$(met "$close1" 1000)
m_open2=$(met "$open2" 1000); m_close2=$(met "$close2" 1000)
m_imp=$(met "$imp" "$imp_t"); m_snap=$(met "$snap" "$snap_t"); m_delta=$(met "$delta" "$delta_t")
mib() { if [ "$1" = null ]; then echo "-"; else awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; fi; }
fmt() { if [ "$1" = null ]; then echo "-"; else echo "$1"; fi; }
fmt3() { if [ "$1" = null ]; then echo "-"; else awk -v v="$1" 'BEGIN { printf "%.3g", v }'; fi; }
secs=$(($(date +%s) - t_start))
pass=true
[ ${#failed[@]} -eq 0 ] || pass=false

emit() {
    if [ "$json" = 1 ]; then
        local cores kern
        cores=$(nproc); kern=$(uname -sr)
        printf '{"benchmark":"run","quick":%s,"cores":%s,"os":"%s","seconds":%s,' \
            "$([ "$quick" = 1 ] && echo true || echo false)" "$cores" "$kern" "$secs"
        printf '"enrollments_per_second":%s,"bound_per_second":%s,"ratio":%s,"ratio_target":0.80,"ratio_met":%s,' \
            "$rate" "$bound" "$ratio" "$m_ratio"
        printf '"ratio_cpu":%s,"latency_ms":{"p50":%s,"p99":%s},' "$ratio_cpu" "$p50" "$p99"
        printf '"window":{"devices":%s,"enrollments":%s,"open_snapshot_ms":%s,"close_ms":%s,"open_delta_ms":%s,' \
            "$wdevices" "$enroll" "$open1" "$close1" "$open2"
        printf '"close_idle_ms":%s,"target_ms":1000,"met":%s},' "$close2" \
            "$([ "$m_open1$m_close1$m_open2$m_close2" = truetruetruetrue ] && echo true || echo false)"
        printf '"cloud":{"devices":%s,"changes":%s,"import_s":%s,"import_target_s":%s,"import_baseline_s":%s,' \
            "$devices" "$changes" "$imp" "$imp_t" "$imp_b"
        printf '"snapshot_s":%s,"snapshot_target_s":%s,"snapshot_floor_s":%s,"delta_ms":%s,"delta_target_ms":%s,' \
            "$snap" "$snap_t" "$snap_b" "$delta" "$delta_t"
        printf '"import_met":%s,"snapshot_met":%s,"delta_met":%s},' "$m_imp" "$m_snap" "$m_delta"
        printf '"wire_bytes_per_enrollment":{"measured":%s,"spec_with_kid":%s,"spec_with_x5chain":%s},' \
            "$bytes" "$spec_kid" "$spec_x5"
        printf '"peak_rss_kib":{"manager_window":%s,"cloud_window":%s,"cloud_bench_cloud":%s},' \
            "$hwm_m" "$hwm_c" "$hwm_cs"
        printf '"failed":['
        local f sep=
        for f in "${failed[@]}"; do printf '%s"%s"' "$sep" "$f"; sep=,; done
        printf '],"runs":{"window":'
        if [ "$w_ok" = 1 ]; then tr -d '\n' <"$W"; else printf null; fi
        printf ',"cloud":'
        if [ "$c_ok" = 1 ]; then tr -d '\n' <"$C"; else printf null; fi
        printf '},"pass":%s}\n' "$pass"
    else
        cat <<END
otpca benchmarks (bench/run.sh$([ "$quick" = 1 ] && echo " --quick")), $(nproc) cores, $(uname -sr), ${secs} s

| measure | value | target | verdict | notes |
|---|---:|---:|---|---|
| full enrollments/s | $(fmt "$rate") | | | $enroll of $wdevices devices, 32 in flight; p50 / p99 $(fmt "$p50") / $(fmt "$p99") ms |
| ratio to the crypto bound | $(fmt "$ratio") | >= 0.80 | $(verdict "$m_ratio") | bound $(fmt "$bound")/s; per manager CPU-second $(fmt "$ratio_cpu") |
| window open (snapshot of $wdevices) | $(fmt "$open1") ms | <= 1000 ms | $(verdict "$m_open1") | |
| window close after the load | $(fmt "$close1") ms | <= 1000 ms | $(verdict "$m_close1") | drain, upload, WindowClose |
| window open again (delta) | $(fmt "$open2") ms | <= 1000 ms | $(verdict "$m_open2") | |
| window close, idle | $(fmt "$close2") ms | <= 1000 ms | $(verdict "$m_close2") | |
| import, $devices devices | $(fmt3 "$imp") s | <= $(fmt3 "$imp_t") s | $(verdict "$m_imp") | sqlite3 .import baseline $(fmt3 "$imp_b") s |
| snapshot sync, $devices devices | $(fmt3 "$snap") s | <= $(fmt3 "$snap_t") s | $(verdict "$m_snap") | crypto floor $(fmt3 "$snap_b") s |
| delta sync, $changes changes | $(fmt3 "$delta") ms | <= $(fmt3 "$delta_t") ms | $(verdict "$m_delta") | median of 5 |
| wire bytes per enrollment | $(fmt "$bytes") | | | measured; spec $(fmt "$spec_kid") (node names the manager's kid) / $(fmt "$spec_x5") (with x5chain) |
| peak RSS, otpca-manager window | $(mib "$hwm_m") | | | VmHWM before its close, window benchmark |
| peak RSS, otpca-cloud serve | $(mib "$hwm_c") | | | VmHWM, window benchmark ($wdevices devices) |
| peak RSS, otpca-cloud serve | $(mib "$hwm_cs") | | | VmHWM, cloud benchmark ($devices devices) |
END
        [ ${#failed[@]} -eq 0 ] || echo "FAILED: ${failed[*]}"
    fi
}
if [ -n "$out" ]; then
    emit | tee "$out"
else
    emit
fi
[ "$pass" = true ]
