#!/bin/sh
# Short libFuzzer run for ctest (fuzz.<name>):
#   run.sh FUZZER CORPUS_DIR ARTIFACT_DIR SECONDS [libFuzzer flags...]
# Fuzzes a temporary copy of CORPUS_DIR (the checked-in corpus is never
# written) for SECONDS seconds or 10,000,000 runs, whichever ends first;
# a crash, leak, timeout or OOM is written to ARTIFACT_DIR and fails the
# test (libFuzzer's exit status).
set -eu
[ $# -ge 4 ] || { echo "usage: $0 FUZZER CORPUS_DIR ARTIFACT_DIR SECONDS [flags...]" >&2; exit 2; }
fuzzer=$1 corpus=$2 artifacts=$3 seconds=$4
shift 4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/otpca-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
cp "$corpus"/* "$tmp"/
mkdir -p "$artifacts"
set +e
"$fuzzer" -max_total_time="$seconds" -runs=10000000 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$@" "$tmp"
rc=$?
set -e
exit $rc
