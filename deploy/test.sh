#!/usr/bin/env bash
# The README's test command: install dependencies, build, and run the whole
# suite with ctest twice — a normal build and an ASan+UBSan build.
# Exits non-zero on any failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
deploy/deps.sh

jobs=$(nproc)
run_suite() { # [exclude=REGEX] run_suite BUILD-DIR CMAKE-ARGS...
    local dir=$1; shift
    echo "== configure $dir"
    cmake -S . -B "$dir" "$@" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; return 1; }
    grep -E '^-- otpca:' "$dir.configure.log" || true
    echo "== build $dir"
    cmake --build "$dir" -j"$jobs"
    echo "== test $dir"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 600 ${exclude:+-E "$exclude"}
}

mkdir -p build
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DOTPCA_SANITIZE=ON -DOTPCA_BUILD_BENCH=OFF
# The core suite once more on Debian's packaged wolfSSL (no SP ECC), so that
# both builds stay correct; the fast build above is the default.
# (The PostgreSQL runs of the store and cloud suites do not depend on the
# wolfSSL build: they run in the two suites above.)
exclude='^pg\.|_pg$' run_suite build-pkgwolf -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOTPCA_WOLFSSL_PACKAGED=ON \
    -DOTPCA_BUILD_BENCH=OFF

# A short libFuzzer run of every protocol decoder (clang, ASan+UBSan, about
# 30 s in all); bench/fuzz.sh runs them for longer.
echo "== fuzz smoke (clang + libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOTPCA_FUZZ=ON \
    -DOTPCA_BUILD_BENCH=OFF >build-fuzz.configure.log 2>&1 || { cat build-fuzz.configure.log; exit 1; }
cmake --build build-fuzz -j"$jobs" --target fuzz_cbor fuzz_cose fuzz_msg fuzz_ecies fuzz_seedbox
ctest --test-dir build-fuzz --output-on-failure -R '^fuzz\.' --timeout 300
echo "deploy/test.sh: all suites passed"
