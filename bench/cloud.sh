#!/usr/bin/env bash
# The cloud registry on SQLite and on PostgreSQL in one run, side by side
# (issue #8): otpca-bench-cloud --store sqlite, then --store postgres (a
# throw-away cluster, deploy/postgres.sh), with the same arguments; each
# imports N devices, snapshot- and delta-syncs them, and measures the
# records ingested per second with 1, 2 and 4 `otpca-cloud serve` on the
# store. Prints one table (or --json: {"sqlite":{...},"postgres":{...}},
# each otpca-bench-cloud's own JSON).
#
#   bench/cloud.sh [--build DIR] [--json] [otpca-bench-cloud options: --devices N --changes C
#                  --instances LIST --records R]
#
# Defaults are otpca-bench-cloud's: 1,000,000 devices (about 4 minutes on
# SQLite and 4 on PostgreSQL here), 1,000 changes, 20,000 records per
# instance count. Exit status: 0 both ran, 1 one failed, 2 bad usage.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
json=0
args=()
prog=cloud.sh
say() { echo "$prog: $*" >&2; }
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=${2:-}; shift 2 || { say "--build wants a directory"; exit 2; } ;;
    --json) json=1; shift ;;
    --store) say "--store is this script's to set (it runs both)"; exit 2 ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
    esac
done
bin=$build/bin/otpca-bench-cloud
[ -x "$bin" ] || { say "$bin is missing: build first (deploy/test.sh, or cmake --build $build)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/otpca-cloud-both.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for store in sqlite postgres; do
    say "otpca-bench-cloud --store $store ${args[*]} ..."
    if ! "$bin" --store "$store" --json "${args[@]}" >"$tmp/$store.json" 2>"$tmp/$store.log"; then
        say "otpca-bench-cloud --store $store failed; the end of its output:"
        tail -15 "$tmp/$store.log" >&2
        exit 1
    fi
done

if [ "$json" = 1 ]; then
    printf '{"sqlite":%s,"postgres":%s}\n' "$(cat "$tmp/sqlite.json")" "$(cat "$tmp/postgres.json")"
    exit 0
fi

# Values out of otpca-bench-cloud's JSON (one object per line).
row() { grep -o "{\"name\":\"$1\"[^}]*}" "$2" | head -1; }
field() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1" | head -1; }
val() { field "$(row "$1" "$2")" "${3:-value}"; }
ingest() { # ingest FILE K: records/s with K instances
    grep -o "{\"instances\":$2,[^}]*}" "$1" | head -1 | sed -n 's/.*"records_per_s":\([0-9.eE+-]*\).*/\1/p'
}
S=$tmp/sqlite.json P=$tmp/postgres.json
devices=$(sed -n 's/.*"devices":\([0-9]*\).*/\1/p' "$S" | head -1)
changes=$(sed -n 's/.*"changes":\([0-9]*\).*/\1/p' "$S" | head -1)
fmt() { awk -v v="$1" 'BEGIN { if (v == "") print "-"; else if (v >= 100) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.3f", v }'; }
line() { printf '%-44s %12s %12s\n' "$1" "$(fmt "$2")" "$(fmt "$3")"; }
echo "The cloud registry on SQLite and on PostgreSQL, one run ($devices devices, $changes changes)"
echo
printf '%-44s %12s %12s\n' "measure" "SQLite" "PostgreSQL"
line "import (s)" "$(val import "$S")" "$(val import "$P")"
line "  baseline: plain-table load of the CSV (s)" "$(val import "$S" baseline_value)" "$(val import "$P" baseline_value)"
line "snapshot sync (s)" "$(val snapshot_sync "$S")" "$(val snapshot_sync "$P")"
line "delta sync, median (ms)" "$(val delta_sync "$S")" "$(val delta_sync "$P")"
line "server peak RSS (MiB)" "$(val server_peak_rss "$S")" "$(val server_peak_rss "$P")"
for k in $(grep -o '"instances":[0-9]*' "$S" | cut -d: -f2); do
    line "records ingested/s, $k instance(s)" "$(ingest "$S" "$k")" "$(ingest "$P" "$k")"
done
echo
echo "(each column is otpca-bench-cloud --store S ${args[*]}; its full table with --store S alone)"
