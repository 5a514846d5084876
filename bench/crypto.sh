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

usage() { sed -n '5p' "${BASH_SOURCE[0]}" | sed 's/^# *//'; }
help() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
say() { echo "$prog: $*" >&2; }
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --rounds) rounds=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --runs) runs=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --json) json=1; shift ;;
    -h | --help) help; exit 0 ;;
    *) say "unknown argument: $1"; usage >&2; exit 2 ;;
    esac
done
# The benchmark's own limits (bench/benchutil.h), checked before building.
if ! [[ $seconds =~ ^[0-9]+([.][0-9]+)?$ ]] ||
    ! awk -v s="$seconds" 'BEGIN { exit !(s >= 0.05 && s <= 3600) }'; then
    say "--seconds wants 0.05..3600"
    exit 2
fi
if ! [[ $rounds =~ ^[1-9][0-9]{0,3}$ ]] || [ "$rounds" -gt 1000 ]; then
    say "--rounds wants 1..1000"
    exit 2
fi
if ! [[ $runs =~ ^[1-9][0-9]?$ ]] || [ "$runs" -gt 20 ]; then
    say "--runs wants 1..20"
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/otpca-crypto-bench.XXXXXX")
child=
cleanup() {
    if [ -n "$child" ]; then # a benchmark still running: stop it, it removes its rig
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM

# run_child OUT ERR CMD...: run CMD as a child the traps can stop, its
# stdout to OUT and stderr to ERR; its exit status in $rc. (Redirecting the
# call instead would also redirect the traps' own messages.)
run_child() {
    local out=$1 err=$2
    shift 2
    # exec: the child is CMD itself, not a subshell around it, so that the
    # traps' kill reaches it.
    if [ "$out" = "$err" ]; then
        exec "$@" >"$out" 2>&1 &
    else
        exec "$@" >"$out" 2>"$err" &
    fi
    child=$!
    wait "$child"
    rc=$?
    child=
}

# ---- the SP build of wolfSSL -----------------------------------------------
sp_prefix="$root/.deps/wolfssl"
# deploy/wolfssl.sh works in .deps/build-KEY and removes it when done; two
# of them at once would remove each other's files.
busy=$(find "$root/.deps" -mindepth 1 -maxdepth 1 -type d -name 'build-*' 2>/dev/null | head -1)
if [ -n "$busy" ]; then
    say "a wolfSSL build is under way ($busy exists: deploy/wolfssl.sh is running, or was"
    say "killed; then remove that directory); try again when it is done"
    exit 3
fi
if [ ! -f "$sp_prefix/lib/libwolfssl.a" ] || [ ! -f "$sp_prefix/include/wolfssl/options.h" ]; then
    say "no SP ECC build of wolfSSL in .deps/wolfssl; running deploy/wolfssl.sh" \
        "(Debian's source package, about a minute)"
    run_child /dev/stderr /dev/stderr "$root/deploy/wolfssl.sh"
    if [ "$rc" -ne 0 ] || [ ! -f "$sp_prefix/lib/libwolfssl.a" ]; then
        say "deploy/wolfssl.sh failed (exit $rc): there is no SP ECC build to compare with;" \
            "see its messages above"
        exit 3
    fi
fi

# ---- configure and build -----------------------------------------------------
jobs=$(nproc 2>/dev/null || echo 1)
declare -A dir bin want
dir[pkg]="$root/build-bench-pkg"
dir[sp]="$root/build-bench-sp"
want[pkg]="packaged, SP ECC off"
want[sp]="source build, SP ECC on"
for b in pkg sp; do bin[$b]="${dir[$b]}/bin/otpca-bench-crypto"; done

configure() { # $1 = pkg | sp
    local packaged=OFF
    [ "$1" = pkg ] && packaged=ON
    say "configuring ${dir[$1]} (OTPCA_WOLFSSL_PACKAGED=$packaged)"
    run_child "$tmp/configure-$1.log" "$tmp/configure-$1.log" \
        cmake -S "$root" -B "${dir[$1]}" -DOTPCA_BUILD_TESTS=OFF -DOTPCA_WOLFSSL_PACKAGED=$packaged
    if [ "$rc" -ne 0 ]; then
        cat "$tmp/configure-$1.log" >&2
        say "configure of ${dir[$1]} failed"
        exit 3
    fi
}

build() {
    say "building otpca-bench-crypto in ${dir[$1]} (-j$jobs)"
    run_child "$tmp/build-$1.log" "$tmp/build-$1.log" \
        cmake --build "${dir[$1]}" -j"$jobs" --target otpca-bench-crypto
    if [ "$rc" -ne 0 ]; then
        tail -40 "$tmp/build-$1.log" >&2
        say "build in ${dir[$1]} failed"
        exit 3
    fi
}

# What the binary says it was built against (from CMake, see --help).
built_with() { "${bin[$1]}" --help 2>/dev/null | sed -n 's/^ *Built against wolfSSL [^,]*, \(.*\)\.$/\1/p'; }

# Configure every time: the SP prefix is looked for (and its real path,
# .deps/wolfssl-KEY, fixed) at configure time only, and deploy/wolfssl.sh may
# have moved .deps/wolfssl since the last run. With nothing changed it takes
# about a second and the build then only checks its files.
for b in pkg sp; do
    configure "$b"
    build "$b"
    got=$(built_with "$b")
    if [ "$got" != "${want[$b]}" ]; then
        say "${bin[$b]} is built with '${got:-?}', not '${want[$b]}'"
        exit 3
    fi
done

# ---- runs --------------------------------------------------------------------
# Each run is bounded by the benchmark itself (every slice stops at 4x its
# CPU time in wall time); timeout is only the safety net behind that.
limit=$(awk -v s="$seconds" 'BEGIN { w = s / 4; if (w > 0.5) w = 0.5; printf "%d", 6 * (s + w) * 4 + 120 }')
order=()
for ((p = 1; p <= runs; p++)); do
    if ((p % 2)); then order+=(pkg sp); else order+=(sp pkg); fi
done
declare -A count=([pkg]=0 [sp]=0)
n=0
for b in "${order[@]}"; do
    n=$((n + 1))
    count[$b]=$((count[$b] + 1))
    out="$tmp/$b-${count[$b]}.json"
    say "run $n/${#order[@]}: $b (${want[$b]}), --seconds $seconds --rounds $rounds"
    run_child "$out" "$tmp/$b-${count[$b]}.err" timeout --signal=TERM --kill-after=30 "$limit" \
        "${bin[$b]}" --json --seconds "$seconds" --rounds "$rounds"
    if [ "$rc" -ne 0 ]; then
        cat "$tmp/$b-${count[$b]}.err" >&2
        [ "$rc" -eq 124 ] && say "run $n ($b) took longer than ${limit}s and was stopped"
        [ "$rc" -eq 2 ] && exit 2
        [ "$rc" -eq 130 ] && exit 130
        say "run $n ($b) failed (exit $rc)"
        exit 1
    fi
    sp_flag=false
    [ "$b" = sp ] && sp_flag=true
    if ! grep -q "\"sp_ecc\":$sp_flag" "$out"; then
        say "run $n ($b) did not report SP ECC $sp_flag"
        exit 1
    fi
done

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

field() { # a top-level string field of a run's JSON
    sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" "$1" | head -1
}
first_pkg="$tmp/pkg-1.json"
first_sp="$tmp/sp-1.json"
cpu=$(field "$first_sp" cpu)
os=$(field "$first_sp" os)
cores=$(sed -n 's/.*"cores":\([0-9]*\).*/\1/p' "$first_sp" | head -1)
ver_pkg=$(field "$first_pkg" version)
ver_sp=$(field "$first_sp" version)
ecc_pkg=$(field "$first_pkg" ecc)
ecc_sp=$(field "$first_sp" ecc)

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
awk -v control=token_sign '
    function median(s,    c, i, j, t, v) {
        c = split(s, v, ",")
        for (i = 2; i <= c; i++)         # insertion sort, c <= 20
            for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        lo = v[1]; hi = v[c]
        return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    function stats(b, m,    med) {
        med = median(list[b SUBSEP m])
        return sprintf("%.1f %.1f %.1f", med, lo, hi)
    }
    function append(a, key, x) { a[key] = a[key] (a[key] == "" ? "" : ",") x }
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

order_json=$(printf '"%s",' "${order[@]}")
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
    printf '],"runs":{"packaged":['
    sep=
    for ((k = 1; k <= runs; k++)); do printf '%s' "$sep"; tr -d '\n' <"$tmp/pkg-$k.json"; sep=,; done
    printf '],"sp":['
    sep=
    for ((k = 1; k <= runs; k++)); do printf '%s' "$sep"; tr -d '\n' <"$tmp/sp-$k.json"; sep=,; done
    printf ']}}\n'
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
