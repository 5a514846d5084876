#!/usr/bin/env bash
# Both wolfSSL builds side by side, in one run: otpca-bench-enroll (the
# manager's enrollment engine against its crypto bound, 1 and 2 threads)
# built against the SP ECC source build and against the packaged library.
#
#   bench/enroll.sh [--seconds S] [--rounds N] [--runs R] [--json] [--help]
#
# Engine only: the window daemon, its journal and the node link are
# measured when they exist.
# Configures and builds only the otpca-bench-enroll target, with at most 2
# jobs, in two build directories:
#   build-bench-enroll-sp   the default wolfSSL: the SP ECC build in
#                           .deps/wolfssl (made by deploy/wolfssl.sh, which
#                           is run if it is missing)
#   build-bench-enroll-pkg  -DOTPCA_WOLFSSL_PACKAGED=ON: Debian's libwolfssl
# both with -DOTPCA_BUILD_TESTS=OFF; each binary must report the wolfSSL it
# is meant to have (SP ECC on / off), else the script stops.
# Then it runs the two binaries R times each (default 1) with --json and the
# same --seconds/--rounds (defaults 1.5 and 10), in ABBA order (pkg sp, sp
# pkg, ...), and reports per measure the median of each build's runs:
# enrollments/s of the engine and of the crypto bound with 1 and 2 threads,
# the ratio engine/bound (target >= 0.80), the same ratio per CPU-second,
# the CPU share, the machine's other load, and the speed-up SP/packaged,
# also adjusted by the control (token_sign of the same run and thread
# count: SoftHSM's code, the same in both builds). --json prints one
# combined JSON object instead (progress goes to stderr). A default run
# takes about 1.5 minutes after the first build.
#
# Exit status: 0 done, 1 a run failed, 2 bad usage, 3 wolfSSL SP build,
# configure or build failed, 130 interrupted.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=1.5
rounds=10
runs=1
json=0
prog=enroll.sh

script=${BASH_SOURCE[0]}
usage_lines=6
help_lines=2,30
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_args "$@"
bench_tmp enroll-bench

# ---- the SP build of wolfSSL, configure and build --------------------------
bench_sp_wolfssl
jobs=$(nproc 2>/dev/null || echo 1)
[ "$jobs" -gt 2 ] && jobs=2
bench_build_both otpca-bench-enroll "$root/build-bench-enroll" "$jobs"

# ---- runs --------------------------------------------------------------------
# Every phase ends at its wall time; the safety net: 9 operations x 2
# thread counts x (S + warm-up), 4x, plus the set-up.
bench_run_all "$(bench_limit 18 180)"

# ---- report ----------------------------------------------------------------------
# The flat "summary" object of each run: build run key value, one a line.
extract() {
    sed -n 's/.*"summary":{\([^}]*\)}.*/\1/p' "$3" | tr ',' '\n' |
        sed -n "s/^\"\([a-z0-9_]*\)\":\(-\{0,1\}[0-9.]*\)$/$1 $2 \1 \2/p"
}
for b in pkg sp; do
    for ((k = 1; k <= runs; k++)); do extract "$b" "$k" "$tmp/$b-$k.json"; done
done >"$tmp/values"

bench_facts

# Per key: the median over each build's runs, min and max; for the rates
# also the control-adjusted speed-up: median over SP runs of (value /
# token_sign of the same run and thread count) over the same for packaged.
awk "$bench_awk_lib"'
    { append(list, $1 SUBSEP $3, $4); val[$1, $2, $3] = $4; run[$1, $2] = 1; keys[$3] = 1 }
    END {
        for (br in run) {
            split(br, p, SUBSEP)
            for (k in keys) {
                t = substr(k, length(k))         # thread count: the last character
                c = val[p[1], p[2], "token_sign_" t]
                if (c > 0 && (k ~ /^(engine|bound)_[12]$/))
                    append(norm, p[1] SUBSEP k, val[p[1], p[2], k] / c)
            }
        }
        for (k in keys) {
            mp = median(list["pkg" SUBSEP k]); lp = lo; hp = hi
            ms = median(list["sp" SUBSEP k]); ls = lo; hs = hi
            adj = 0
            if (norm["pkg" SUBSEP k] != "" && norm["sp" SUBSEP k] != "") {
                d = median(norm["pkg" SUBSEP k])
                if (d > 0) adj = median(norm["sp" SUBSEP k]) / d
            }
            print k, mp, lp, hp, ms, ls, hs, adj, list["pkg" SUBSEP k], list["sp" SUBSEP k]
        }
    }' "$tmp/values" >"$tmp/table"

get() { awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$tmp/table"; }
rows="engine_1 engine_2 bound_1 bound_2 ratio_1 ratio_2 ratio_cpu_1 ratio_cpu_2 key3_extra_us_1 key3_extra_us_2 token_sign_1 token_sign_2 cpu_share_1 cpu_share_2 other_load_1 other_load_2"
if [ "$json" = 1 ]; then
    printf '{"benchmark":"enroll-both","scope":"engine only; the window daemon, its journal and the node link are measured when they exist",'
    printf '"seconds":%s,"rounds":%s,"runs_per_build":%s,"order":[%s],"aggregate":"median",' \
        "$seconds" "$rounds" "$runs" "${order_json%,}"
    printf '"control":"token_sign","target_ratio":0.80,"results":['
    sep=
    for k in $rows; do
        line=$(awk -v k="$k" '$1 == k' "$tmp/table")
        [ -n "$line" ] || continue
        echo "$line" | awk -v sep="$sep" '{
            up = ($2 > 0) ? $5 / $2 : 0
            printf "%s{\"name\":\"%s\",\"packaged\":%s,\"sp\":%s,\"speedup\":%.3f,", sep, $1, $2, $5, up
            printf "\"speedup_control_adjusted\":%s,", ($8 > 0 ? sprintf("%.3f", $8) : "null")
            printf "\"packaged_min\":%s,\"packaged_max\":%s,\"sp_min\":%s,\"sp_max\":%s,", $3, $4, $6, $7
            printf "\"packaged_runs\":[%s],\"sp_runs\":[%s]}", $9, $10
        }'
        sep=,
    done
    bench_json_runs
else
    echo "otpca-bench-enroll, both wolfSSL builds: $cpu, $cores cores, $os"
    echo "  scope         engine only; the window daemon, its journal and the node link are measured"
    echo "                when they exist"
    echo "  packaged      wolfSSL $ver_pkg, packaged, SP ECC off: $ecc_pkg"
    echo "  SP            wolfSSL $ver_sp, source build, SP ECC on: $ecc_sp"
    echo "  runs          ${order[*]}, each --seconds $seconds --rounds $rounds; median of $runs" \
        "run(s) per build"
    echo
    printf '%-36s %12s %12s %9s %9s\n' "measure" packaged SP speed-up adjusted
    row() { # key label format
        local line
        line=$(awk -v k="$1" '$1 == k' "$tmp/table")
        [ -n "$line" ] || return 0
        echo "$line" | awk -v label="$2" -v fmt="$3" -v kind="$4" '{
            up = ($2 > 0) ? sprintf("%.2fx", $5 / $2) : "-"
            adj = ($8 > 0) ? sprintf("%.2fx", $8) : "-"
            if (kind == "ratio") {
                a = sprintf(fmt " %s", $2, ($2 >= 0.8 ? "ok" : "BELOW"))
                b = sprintf(fmt " %s", $5, ($5 >= 0.8 ? "ok" : "BELOW"))
                up = "-"; adj = "-"
            } else if (kind == "plain") {
                a = sprintf(fmt, $2); b = sprintf(fmt, $5); up = "-"; adj = "-"
            } else { a = sprintf(fmt, $2); b = sprintf(fmt, $5) }
            printf "%-36s %12s %12s %9s %9s\n", label, a, b, up, adj
        }'
    }
    row engine_1 "engine, 1 thread (enrollments/s)" "%.1f" rate
    row engine_2 "engine, 2 threads" "%.1f" rate
    row bound_1 "crypto bound, 1 thread" "%.1f" rate
    row bound_2 "crypto bound, 2 threads" "%.1f" rate
    row ratio_1 "ratio engine/bound, 1 thread" "%.3f" ratio
    row ratio_2 "ratio engine/bound, 2 threads" "%.3f" ratio
    row ratio_cpu_1 "  per CPU-second, 1 thread" "%.3f" plain
    row ratio_cpu_2 "  per CPU-second, 2 threads" "%.3f" plain
    row key3_extra_us_1 "FP_ECC cost per device key, us (1 t)" "%.1f" plain
    row token_sign_1 "control: token_sign/s, 1 thread" "%.1f" rate
    row token_sign_2 "control: token_sign/s, 2 threads" "%.1f" rate
    row cpu_share_1 "CPU share, 1 thread" "%.3f" plain
    row cpu_share_2 "CPU share, 2 threads" "%.3f" plain
    row other_load_1 "other processes, cores (1 thread)" "%.2f" plain
    row other_load_2 "other processes, cores (2 threads)" "%.2f" plain
    echo
    echo "Rates by the wall clock, summed over the threads. bound: 1 / the sum of the per-enrollment"
    echo "seconds of 2 ECDSA verifies, 2 token signatures, 1 ephemeral ECDH and 3 TOTPs, each timed"
    echo "alone in the same run. FP_ECC cost: key_3uses (verify + ECDH + verify on one device key,"
    echo "the engine's order) minus the same on three different keys. adjusted: the speed-up with"
    echo "each run's rates divided by that run's token_sign rate (SoftHSM, the same code in both"
    echo "builds), which takes out how fast the machine happened to be. A CPU share well below 1"
    echo "or other processes using the cores make the wall-clock numbers noisy."
fi
exit 0
