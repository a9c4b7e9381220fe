#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for tests and local runs.
#
#   tests/pg-cluster.sh start DIR   initdb + start on a Unix socket in DIR (no TCP), fsync off;
#                                   prints the URL to export as BIGBROTR_TEST_DATABASE_URL
#                                   (PG_SERVER_OPTS: more "-c name=value" server settings)
#   tests/pg-cluster.sh stop DIR    immediate stop, then remove DIR (unless KEEP_PG=1)
#   tests/pg-cluster.sh with DIR -- CMD...   run CMD with BIGBROTR_TEST_DATABASE_URL pointing at a
#                                   fresh cluster in DIR, removed afterwards (an already set
#                                   BIGBROTR_TEST_DATABASE_URL is used as it is)
#   tests/pg-cluster.sh ensure-server   install the PostgreSQL server package when it is missing
#   tests/pg-cluster.sh ensure-pgbouncer DIR   print a PgBouncer binary: the installed one, or the
#                                   distribution package unpacked into DIR (no service is installed)
#
# initdb refuses to run as root: as root, the cluster is owned by the `postgres` user.
set -euo pipefail

find_bindir() {
    local dir
    # Newest major version first.
    # shellcheck disable=SC2012 # the paths are /usr/lib/postgresql/<version>/bin
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

ensure_server() {
    if find_bindir >/dev/null; then
        return 0
    fi
    echo "PostgreSQL server not found: installing it with apt-get" >&2
    if [ "$(id -u)" -ne 0 ]; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    find_bindir >/dev/null || { echo "PostgreSQL server still not found after install" >&2; exit 1; }
}

ensure_pgbouncer() {
    local dir=$1 bin
    if bin=$(command -v pgbouncer 2>/dev/null); then
        echo "$bin"
        return 0
    fi
    bin="$dir/usr/sbin/pgbouncer"
    if [ ! -x "$bin" ]; then
        mkdir -p "$dir"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        (cd "$dir" && { apt-get download pgbouncer >/dev/null 2>&1 \
            || { $sudo apt-get update -qq >/dev/null && apt-get download pgbouncer >/dev/null; }; }) \
            || { echo "cannot download the pgbouncer package" >&2; exit 1; }
        dpkg -x "$dir"/pgbouncer_*.deb "$dir"
        # Only the libraries it links to are installed, not the package and its service.
        local deps
        deps=$(apt-cache depends --no-recommends pgbouncer 2>/dev/null | awk '/Depends: lib/ {print $2}' | tr -d '<>')
        if [ -n "$deps" ] && ldd "$bin" | grep -q 'not found'; then
            # shellcheck disable=SC2086 # one package name per word
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $deps >/dev/null 2>&1
        fi
    fi
    if ldd "$bin" | grep -q 'not found'; then
        echo "pgbouncer at $bin is missing libraries:" >&2
        ldd "$bin" | grep 'not found' >&2
        exit 1
    fi
    echo "$bin"
}

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cmd=${1:-}
dir=${2:-}
case "$cmd" in
    with)
        if [ -z "$dir" ] || [ "${3:-}" != "--" ] || [ -z "${4:-}" ]; then
            echo "usage: $0 with DIR -- CMD..." >&2
            exit 2
        fi
        shift 3
        if [ -n "${BIGBROTR_TEST_DATABASE_URL:-}" ]; then
            exec "$@"
        fi
        "$0" stop "$dir"
        BIGBROTR_TEST_DATABASE_URL=$("$0" start "$dir")
        export BIGBROTR_TEST_DATABASE_URL
        trap '"$0" stop "$dir"' EXIT
        "$@"
        ;;
    ensure-server)
        ensure_server
        ;;
    ensure-pgbouncer)
        [ -n "$dir" ] || { echo "usage: $0 ensure-pgbouncer DIR" >&2; exit 2; }
        ensure_pgbouncer "$dir"
        ;;
    start)
        [ -n "$dir" ] || { echo "usage: $0 start DIR" >&2; exit 2; }
        ensure_server
        bindir=$(find_bindir)
        mkdir -p "$dir"
        dir=$(cd "$dir" && pwd)
        if [ "$(id -u)" -eq 0 ]; then
            chown postgres: "$dir"
            # The cluster owner must be able to reach DIR through its parents.
            chmod o+x "$(dirname "$dir")" 2>/dev/null || true
        fi
        if [ ! -f "$dir/data/PG_VERSION" ]; then
            as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync \
                -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
                || { cat "$dir/initdb.log" >&2; exit 1; }
        fi
        if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
            as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start -o \
                "-c listen_addresses= -c unix_socket_directories=$dir -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
                 -c shared_buffers=256MB ${PG_SERVER_OPTS:-}" >/dev/null \
                || { cat "$dir/postgres.log" >&2; exit 1; }
        fi
        echo "postgres://postgres@localhost/postgres?host=$dir"
        ;;
    stop)
        [ -n "$dir" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
        if [ -f "$dir/data/PG_VERSION" ]; then
            bindir=$(find_bindir)
            as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
        fi
        if [ "${KEEP_PG:-0}" != 1 ]; then
            rm -rf "$dir"
        fi
        ;;
    *)
        echo "usage: $0 start DIR | stop DIR | with DIR -- CMD... | ensure-server | ensure-pgbouncer DIR" >&2
        exit 2
        ;;
esac
