#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for tests and demos: `start DIR` makes a
# fresh cluster in DIR (initdb as an unprivileged user: the `postgres`
# system user when run as root), listening only on 127.0.0.1 (a free port,
# or --port N) and on a unix socket in DIR, trust authentication on those
# two only, with a database `otpca`; it prints the cloud store URL
# (postgresql://otpca@127.0.0.1:PORT/otpca) and writes it to DIR/url.
# Running start again on a running cluster prints its URL; a cluster found
# stopped is wiped and made afresh. When the postgres user cannot reach DIR
# (a clone under /root) or DIR is too long a path for a unix socket, the
# cluster lives in a fresh directory under /tmp instead, DIR/home pointing
# to it. `stop DIR` stops it (fast shutdown)
# and does nothing if it is not running; `stop DIR --remove` also deletes
# DIR. Nothing is left running if start fails.
#
#   deploy/postgres.sh start DIR [--port N]
#   deploy/postgres.sh stop DIR [--remove]
set -euo pipefail

usage() {
    echo "usage: $0 start DIR [--port N] | stop DIR [--remove]" >&2
    exit 2
}

[ $# -ge 2 ] || usage
verb=$1
dir=$2
shift 2
port=
remove=0
while [ $# -gt 0 ]; do
    case $1 in
    --port) [ $# -ge 2 ] || usage; port=$2; shift 2 ;;
    --remove) remove=1; shift ;;
    *) usage ;;
    esac
done
[ -z "$port" ] || [[ $port =~ ^[0-9]+$ && $port -ge 1024 && $port -le 65535 ]] || {
    echo "postgres.sh: --port wants a number in 1024-65535" >&2
    exit 2
}

# The newest server installed (Debian: /usr/lib/postgresql/<major>/bin).
# Glob order is lexical (10 before 9): pick the highest major explicitly.
bindir=${OTPCA_PG_BINDIR:-}
if [ -z "$bindir" ]; then
    best=
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] || continue
        v=$(basename "$(dirname "$d")")
        if [ -z "$best" ] || [ "${v%%.*}" -gt "${best%%.*}" ] 2>/dev/null; then
            best=$v
            bindir=$d
        fi
    done
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
    echo "postgres.sh: no PostgreSQL server binaries under /usr/lib/postgresql (install postgresql; deploy/deps.sh does)" >&2
    exit 1
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Where the cluster lives: DIR, or the directory DIR/home points to.
home=$dir
[ -L "$dir/home" ] && home=$(readlink "$dir/home")
data=$home/data

# Everything the cluster runs runs as an unprivileged user.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [ -f "$data/PG_VERSION" ] && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

stop_cluster() {
    if running; then
        as_owner "$bindir/pg_ctl" -D "$data" stop -m fast -w -t 60 >/dev/null
    fi
}

case $verb in
stop)
    [ -d "$home" ] && stop_cluster
    if [ $remove -eq 1 ]; then
        [ "$home" = "$dir" ] || rm -rf "$home"
        rm -rf "$dir"
    fi
    exit 0
    ;;
start) ;;
*) usage ;;
esac

if running && [ -s "$dir/url" ]; then
    cat "$dir/url"
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "postgres.sh: running as root needs the 'postgres' system user (the postgresql package makes it)" >&2
    exit 1
fi
stop_cluster || true
# A fresh home: DIR itself if the cluster's user can write there and the
# socket path fits (at most 107 bytes), else a new directory under /tmp.
if [ "$home" != "$dir" ]; then
    rm -rf "$home"
    rm -f "$dir/home"
    home=$dir
fi
reachable=1
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir" && chmod 700 "$dir"
    runuser -u postgres -- test -w "$dir" || reachable=0
fi
if [ $reachable -eq 0 ] || [ ${#dir} -gt 80 ]; then
    home=$(mktemp -d /tmp/otpca-pg-XXXXXX)
    [ "$(id -u)" -ne 0 ] || chown postgres: "$home"
    ln -sfn "$home" "$dir/home"
fi
data=$home/data

# A fresh cluster: whatever a stopped one left is thrown away.
rm -rf "$data" "$dir/url" "$home/log"
as_owner "$bindir/initdb" -D "$data" -U otpca --auth=trust --encoding=UTF8 --no-locale --no-sync \
    >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    echo "postgres.sh: initdb failed" >&2
    exit 1
}
# Trust only on the unix socket in DIR and on 127.0.0.1.
cat >"$data/pg_hba.conf" <<'EOF'
# deploy/postgres.sh: a throw-away test cluster, loopback only
local all all trust
host  all all 127.0.0.1/32 trust
EOF
cat >>"$data/postgresql.conf" <<EOF
# deploy/postgres.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$home'
max_connections = 100
EOF
[ "$(id -u)" -ne 0 ] || chown postgres: "$data/pg_hba.conf"

started=0
cleanup() {
    if [ $started -eq 0 ]; then
        stop_cluster || true
    fi
}
trap cleanup EXIT

# A free port: the server itself says whether it could bind; a few tries.
tries=0
while :; do
    p=${port:-$((20000 + RANDOM % 40000))}
    if as_owner "$bindir/pg_ctl" -D "$data" -l "$home/log" -w -t 60 -o "-p $p" start >/dev/null 2>&1; then
        port=$p
        break
    fi
    tries=$((tries + 1))
    if [ -n "$port" ] || [ $tries -ge 10 ]; then
        tail -n 20 "$home/log" >&2 || true
        echo "postgres.sh: the server did not start" >&2
        exit 1
    fi
done

as_owner "$bindir/psql" -X -q -h "$home" -p "$port" -U otpca -d postgres -v ON_ERROR_STOP=1 \
    -c 'CREATE DATABASE otpca' >/dev/null
url="postgresql://otpca@127.0.0.1:$port/otpca"
echo "$url" >"$dir/url"
started=1
echo "$url"
