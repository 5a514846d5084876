#!/usr/bin/env bash
# The cloud registry on SQLite and on PostgreSQL in one run, side by side
# (issue #8): otpca-bench-cloud --store both (SQLite first, then a
# throw-away cluster from deploy/postgres.sh); each imports N devices,
# snapshot- and delta-syncs them, and measures the records ingested per
# second with 1, 2 and 4 `otpca-cloud serve` on the store. Prints its
# tables and one side by side (or --json: SQLite's members at the top,
# PostgreSQL's under "postgres").
#
#   bench/cloud.sh [--build DIR] [otpca-bench-cloud options: --devices N --changes C
#                  --instances LIST --records R --json --keep]
#
# Defaults are otpca-bench-cloud's: 1,000,000 devices, 1,000 changes,
# 20,000 records per instance count. Exit status: otpca-bench-cloud's.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
args=()
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=${2:-}; shift 2 || { echo "cloud.sh: --build wants a directory" >&2; exit 2; } ;;
    --store) echo "cloud.sh: --store is this script's to set (it runs both)" >&2; exit 2 ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
    esac
done
bin=$build/bin/otpca-bench-cloud
[ -x "$bin" ] || { echo "cloud.sh: $bin is missing: build first (cmake --build $build)" >&2; exit 1; }
exec "$bin" --store both "${args[@]}"
