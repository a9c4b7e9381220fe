#!/bin/sh
# PgBouncer container entrypoint (BigBrotr / LilBrotr compose): writes the SCRAM user list from the
# DB_*_PASSWORD environment variables, then execs PgBouncer with the mounted pgbouncer.ini.
#
# Roles: admin (pool administration, migrations are NOT routed here) and the application roles
# writer, reader, refresher created by bigbrotr-migrate. A role whose password variable is empty is
# left out, so the deployment can start before e.g. the reader is used. admin is required.
# deployments/lilbrotr/pgbouncer/entrypoint.sh is a symlink to this file.

set -eu

USERLIST_DIR=/tmp/pgbouncer
USERLIST="${USERLIST_DIR}/userlist.txt"
PGBOUNCER_INI="${PGBOUNCER_INI:-/etc/pgbouncer/pgbouncer.ini}"

if [ -z "${DB_ADMIN_PASSWORD:-}" ]; then
    echo "entrypoint: DB_ADMIN_PASSWORD is required" >&2
    exit 1
fi

# userlist.txt format: "name" "password", with any double quote doubled.
quote() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"
}

entry() {
    # $1 = role, $2 = password (may be empty: the role is skipped)
    if [ -n "$2" ]; then
        printf '%s %s\n' "$(quote "$1")" "$(quote "$2")"
    else
        echo "entrypoint: no password for role $1, not adding it to the user list" >&2
    fi
}

umask 077
mkdir -p "$USERLIST_DIR"
{
    entry admin "${DB_ADMIN_PASSWORD}"
    entry writer "${DB_WRITER_PASSWORD:-}"
    entry reader "${DB_READER_PASSWORD:-}"
    entry refresher "${DB_REFRESHER_PASSWORD:-}"
} > "${USERLIST}.tmp"
chmod 600 "${USERLIST}.tmp"
mv "${USERLIST}.tmp" "$USERLIST"

exec pgbouncer "$PGBOUNCER_INI"
