#!/usr/bin/env bash
# Fuzzing benchmark for the decoders of libotpca-proto (tests/fuzz/).
#
#   bench/fuzz.sh [--seconds N] [--json] [--targets "cbor cose msg ecies seedbox"]
#                 [--build-dir DIR] [--jobs N] [--help]
#
# Configures (once) and builds the clang libFuzzer build in build-fuzz/
# (ASan+UBSan; CC=clang cmake -S . -B build-fuzz -DOTPCA_FUZZ=ON
# -DOTPCA_BUILD_BENCH=OFF), then fuzzes each target for N seconds (default
# 60) from a temporary copy of its seed corpus tests/fuzz/corpus/<name>/,
# one target after the other, and prints one table: target, executions,
# exec/s, crashes, coverage. Crash, leak, timeout and OOM inputs go to
# build-fuzz/artifacts/<name>/; libFuzzer stops a target at its first one.
# The goal (issue): >= 1,000,000 executions per decoder and no crash; the
# execution count is reported (ok / BELOW), crashes set the exit status.
#
# Exit status: 0 no crash, 1 a target crashed (or its fuzzer failed),
# 2 bad usage, 3 configure or build failed, 130 interrupted.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=60
json=0
targets="cbor cose msg ecies seedbox"
build="$root/build-fuzz"
jobs=1
goal=1000000

usage() { sed -n '4,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,3\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --json) json=1; shift ;;
    --targets) targets=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --build-dir) build=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --jobs) jobs=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fuzz.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
case $seconds in '' | *[!0-9]* | 0) echo "fuzz.sh: --seconds needs a positive integer" >&2; exit 2 ;; esac
case $jobs in '' | *[!0-9]* | 0) echo "fuzz.sh: --jobs needs a positive integer" >&2; exit 2 ;; esac
for t in $targets; do
    [ -d "$root/tests/fuzz/corpus/$t" ] || { echo "fuzz.sh: unknown target: $t" >&2; exit 2; }
done
[ -n "$targets" ] || { echo "fuzz.sh: no targets" >&2; exit 2; }

# Progress goes to stderr, so that --json leaves only JSON on stdout.
say() { echo "fuzz.sh: $*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/otpca-fuzz-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'say interrupted; exit 130' INT TERM

# ---- build ---------------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
    say "configuring $build (clang, libFuzzer, ASan+UBSan)"
    if ! CC=clang cmake -S "$root" -B "$build" -DOTPCA_FUZZ=ON -DOTPCA_BUILD_BENCH=OFF \
        >"$tmp/configure.log" 2>&1; then
        cat "$tmp/configure.log" >&2
        say "configure failed"
        exit 3
    fi
fi
if ! grep -q '^CMAKE_C_COMPILER:[A-Z]*=.*clang' "$build/CMakeCache.txt"; then
    say "$build is not a clang build; remove it or pass --build-dir"
    exit 3
fi
say "building $(for t in $targets; do printf 'fuzz_%s ' "$t"; done)in $build"
if ! cmake --build "$build" -j"$jobs" --target $(for t in $targets; do echo "fuzz_$t"; done) \
    >"$tmp/build.log" 2>&1; then
    cat "$tmp/build.log" >&2
    say "build failed"
    exit 3
fi
for t in $targets; do
    help=$("$build/tests/fuzz/fuzz_$t" -help=1 2>&1)
    if [[ $help != *max_total_time* ]]; then
        say "$build/tests/fuzz/fuzz_$t is not a libFuzzer executable (built with gcc?)"
        exit 3
    fi
done

# ---- runs ----------------------------------------------------------------
mkdir -p "$build/artifacts" "$build/fuzz-logs"
declare -A execs rate crashes cov corp rc arts
any_crash=0
for t in $targets; do
    art="$build/artifacts/$t"
    log="$build/fuzz-logs/$t.log"
    mkdir -p "$art" "$tmp/corpus-$t"
    cp "$root/tests/fuzz/corpus/$t"/* "$tmp/corpus-$t/"
    touch "$tmp/start-$t"
    sleep 1 # artifacts of this run are strictly newer than the marker
    say "fuzzing $t for ${seconds}s (log: $log)"
    "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$art/" "$tmp/corpus-$t" >"$log" 2>&1
    rc[$t]=$?
    execs[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate[$t]=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov[$t]=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp[$t]=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    arts[$t]=$(find "$art" -maxdepth 1 -type f -newer "$tmp/start-$t" \
        \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
    n=0
    [ -n "${arts[$t]}" ] && n=$(printf '%s\n' "${arts[$t]}" | wc -l)
    # A failing exit without an artifact (a fuzzer that could not run) counts too.
    [ "${rc[$t]}" -ne 0 ] && [ "$n" -eq 0 ] && n=1
    crashes[$t]=$n
    [ "$n" -gt 0 ] && any_crash=1
    [ -n "${execs[$t]}" ] || execs[$t]=0
    [ -n "${rate[$t]}" ] || rate[$t]=0
    [ -n "${cov[$t]}" ] || cov[$t]=0
    [ -n "${corp[$t]}" ] || corp[$t]=0
done

# ---- report --------------------------------------------------------------
clang_version=$(clang --version 2>/dev/null | head -1)
cores=$(nproc 2>/dev/null || echo 0)
if [ "$json" = 1 ]; then
    printf '{"benchmark":"fuzz","compiler":"%s","sanitizers":"address,undefined",' \
        "${clang_version//\"/}"
    printf '"cores":%s,"seconds":%s,"target_executions":%s,"results":[' "$cores" "$seconds" "$goal"
    sep=
    for t in $targets; do
        pass=false
        [ "${crashes[$t]}" -eq 0 ] && [ "${execs[$t]}" -ge "$goal" ] && pass=true
        printf '%s{"target":"%s","executions":%s,"exec_per_s":%s,"crashes":%s,"cov":%s,' \
            "$sep" "$t" "${execs[$t]}" "${rate[$t]}" "${crashes[$t]}" "${cov[$t]}"
        printf '"corpus":%s,"exit":%s,"artifacts":[' "${corp[$t]}" "${rc[$t]}"
        asep=
        while IFS= read -r a; do
            [ -n "$a" ] || continue
            printf '%s"%s"' "$asep" "$a"
            asep=,
        done <<<"${arts[$t]}"
        printf '],"pass":%s}' "$pass"
        sep=,
    done
    all=true
    for t in $targets; do
        { [ "${crashes[$t]}" -eq 0 ] && [ "${execs[$t]}" -ge "$goal" ]; } || all=false
    done
    printf '],"crashes":%s,"pass":%s}\n' "$any_crash" "$all"
else
    echo "otpca fuzz benchmark: $clang_version, ASan+UBSan, ${seconds}s per target, $cores cores"
    echo "build: $build; artifacts: $build/artifacts/<target>/"
    echo
    printf '%-8s %12s %9s %8s %6s %7s  %s\n' target executions exec/s crashes cov corpus ">=1M execs"
    for t in $targets; do
        verdict=ok
        [ "${execs[$t]}" -ge "$goal" ] || verdict=BELOW
        printf '%-8s %12s %9s %8s %6s %7s  %s\n' "$t" "${execs[$t]}" "${rate[$t]}" \
            "${crashes[$t]}" "${cov[$t]}" "${corp[$t]}" "$verdict"
    done
    for t in $targets; do
        if [ "${crashes[$t]}" -gt 0 ]; then
            echo
            echo "$t crashed (exit ${rc[$t]}); log: $build/fuzz-logs/$t.log"
            [ -n "${arts[$t]}" ] && printf '  reproduce: %s %s\n' "$build/tests/fuzz/fuzz_$t" ${arts[$t]}
        fi
    done
fi
exit "$any_crash"
