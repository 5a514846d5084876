#!/usr/bin/env bash
# Both wolfSSL builds side by side, in one run: otpca-bench-crypto built
# against the SP ECC source build and against the packaged library.
#
#   bench/crypto.sh [--seconds S] [--rounds N] [--runs R] [--json] [--help]
#
# Configures (a no-op when nothing changed; it also picks up a new
# .deps/wolfssl) and builds only the otpca-bench-crypto target, with
# -j$(nproc), in two build directories:
#   build-bench-sp   the default wolfSSL: the SP ECC build in .deps/wolfssl
#                    (made by deploy/wolfssl.sh, which is run if it is missing)
#   build-bench-pkg  -DOTPCA_WOLFSSL_PACKAGED=ON: Debian's libwolfssl
# both with -DOTPCA_BUILD_TESTS=OFF; each binary must report the wolfSSL it
# is meant to have (SP ECC on / off), else the script stops.
# Then it runs the two binaries R times each (default 3) with --json and the
# same --seconds/--rounds (defaults 1 and 3), interleaved pair by pair in
# ABBA order (pkg sp, sp pkg, pkg sp, ...) so that a drift of the machine
# hits both builds alike, and takes per operation the median ops/s of each
# build's runs (robust against one run caught by a neighbour's load, or by
# a lucky quiet spell, in either direction).
# Every run makes and removes its own throw-away SoftHSM rig. Output: one
# table, operation, packaged ops/s, SP ops/s, speed-up (SP/packaged), the
# spread of the runs and the speed-up adjusted by the control (token_sign,
# SoftHSM's code in both builds: see the report section below); --json
# prints one combined JSON object instead (progress goes to stderr).
#
# Exit status: 0 done, 1 a run failed, 2 bad usage, 3 wolfSSL SP build,
# configure or build failed, 130 interrupted.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=1
rounds=3
runs=3
json=0
prog=crypto.sh

script=${BASH_SOURCE[0]}
usage_lines=5
help_lines=2,27
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_args "$@"
bench_tmp crypto-bench

# ---- the SP build of wolfSSL, configure and build --------------------------
bench_sp_wolfssl
bench_build_both otpca-bench-crypto "$root/build-bench" "$(nproc 2>/dev/null || echo 1)"

# ---- runs --------------------------------------------------------------------
# Every slice stops at 4x its CPU time in wall time.
bench_run_all "$(bench_limit 6 120)"

# ---- report --------------------------------------------------------------------
# One line per operation and run: build run name ops_per_s (the JSON is our
# own, one object per line; the results are the objects that carry a "name").
extract() {
    awk -v b="$1" -v r="$2" '{
        n = split($0, part, /\{"name":"/)
        for (k = 2; k <= n; k++) {
            name = substr(part[k], 1, index(part[k], "\"") - 1)
            if (match(part[k], /"ops_per_s":[0-9.]+/))
                print b, r, name, substr(part[k], RSTART + 12, RLENGTH - 12)
        }
    }' "$3"
}
for b in pkg sp; do
    for ((k = 1; k <= runs; k++)); do extract "$b" "$k" "$tmp/$b-$k.json"; done
done >"$tmp/rates"

bench_facts

# Per operation, in the order of the first run: name; for pkg and sp the
# median, min and max over the runs; the control-adjusted speed-up (0 when
# there is no control); the two lists of run rates.
#
# The control is token_sign: SoftHSM's crypto, the same code whatever
# wolfSSL the binary has, timed in the same rounds as the other operations.
# On this kind of machine (2 vCPUs that are hyperthreads of a shared host)
# whole runs come out 20-40 % faster or slower than others, every operation
# alike, and CPU time does not see it. Dividing each operation's rate by the
# control's rate of the same run takes that out: adjusted speed-up =
# median over SP runs of (op / control) / the same over the packaged runs.
awk -v control=token_sign "$bench_awk_lib"'
    function stats(b, m,    med) {
        med = median(list[b SUBSEP m])
        return sprintf("%.1f %.1f %.1f", med, lo, hi)
    }
    NR == FNR { if (!($3 in seen)) { seen[$3] = 1; names[++n] = $3 } next }
    { append(list, $1 SUBSEP $3, $4); rate[$1, $2, $3] = $4; run[$1, $2] = 1 }
    END {
        for (br in run) {
            split(br, p, SUBSEP)
            c = rate[p[1], p[2], control]
            for (i = 1; i <= n; i++)
                if (c > 0) append(norm, p[1] SUBSEP names[i], rate[p[1], p[2], names[i]] / c)
        }
        for (i = 1; i <= n; i++) {
            m = names[i]
            adj = 0
            if (norm["pkg" SUBSEP m] != "" && norm["sp" SUBSEP m] != "") {
                d = median(norm["pkg" SUBSEP m])
                if (d > 0) adj = median(norm["sp" SUBSEP m]) / d
            }
            print m, stats("pkg", m), stats("sp", m), (m == control ? -1 : adj), \
                  list["pkg" SUBSEP m], list["sp" SUBSEP m]
        }
    }' "$tmp/rates" "$tmp/rates" >"$tmp/table"

if [ "$json" = 1 ]; then
    printf '{"benchmark":"crypto-both","seconds":%s,"rounds":%s,"runs_per_build":%s,' \
        "$seconds" "$rounds" "$runs"
    printf '"order":[%s],"aggregate":"median","control":"token_sign","results":[' "${order_json%,}"
    awk '{
        up = ($2 > 0) ? $5 / $2 : 0
        printf "%s{\"name\":\"%s\",\"packaged_ops_per_s\":%.1f,\"sp_ops_per_s\":%.1f,\"speedup\":%.3f,", \
            (NR > 1 ? "," : ""), $1, $2, $5, up
        printf "\"speedup_control_adjusted\":%s,", ($8 < 0 ? "null" : sprintf("%.3f", $8))
        printf "\"control\":%s,", ($8 < 0 ? "true" : "false")
        printf "\"packaged_min\":%.1f,\"packaged_max\":%.1f,\"sp_min\":%.1f,\"sp_max\":%.1f,", $3, $4, $6, $7
        printf "\"packaged_runs\":[%s],\"sp_runs\":[%s]}", $9, $10
    }' "$tmp/table"
    bench_json_runs
else
    echo "otpca-bench-crypto, both wolfSSL builds: $cpu, $cores cores, $os"
    echo "  packaged      wolfSSL $ver_pkg, packaged, SP ECC off: $ecc_pkg"
    echo "  SP            wolfSSL $ver_sp, source build, SP ECC on: $ecc_sp"
    echo "  runs          ${order[*]} (ABBA), each --seconds $seconds --rounds $rounds," \
        "single-threaded, rates per CPU-second; median of $runs runs per build"
    echo
    printf '%-14s %13s %13s %9s %8s %9s\n' operation "packaged/s" "SP/s" speed-up spread adjusted
    awk '{
        up = ($2 > 0) ? $5 / $2 : 0
        s1 = ($2 > 0) ? 100 * ($4 - $3) / $2 : 0
        s2 = ($5 > 0) ? 100 * ($7 - $6) / $5 : 0
        adj = ($8 < 0) ? "control" : ($8 > 0 ? sprintf("%.2fx", $8) : "?")
        printf "%-14s %13.1f %13.1f %8.2fx %7.0f%% %9s\n", $1, $2, $5, up, (s1 > s2 ? s1 : s2), adj
    }' "$tmp/table"
    echo
    echo "speed-up: SP/packaged of the medians. spread: (max - min) / median over the runs of"
    echo "a build, the larger of the two. token_sign is SoftHSM's own crypto, the same code in"
    echo "both builds: its speed-up is the noise between the runs. adjusted: the speed-up with"
    echo "each run's rates divided by that run's token_sign rate, which takes out how fast the"
    echo "machine happened to be during the run."
fi
exit 0
