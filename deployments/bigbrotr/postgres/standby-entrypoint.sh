#!/bin/sh
# Entrypoint of the optional `postgres-standby` service (compose profile "standby", README.md
# "Reads on a standby"): a hot standby streaming from `postgres`, for the API and the DVM.
#
# First start (no cluster in PGDATA): wait for the primary, make sure its physical replication
# slot exists (the WAL the standby still needs is kept while it is down, up to the primary's
# max_slot_wal_keep_size), and copy it with `pg_basebackup -R` as role `replicator`
# (DB_REPLICATION_PASSWORD, the role bigbrotr-migrate creates from the same variable). -R writes
# standby.signal and primary_conninfo (with the password) into the copy, so PostgreSQL starts as
# a standby. The copy goes to a side directory first: an interrupted copy never looks like a
# cluster. Every start then hands over to the image's own entrypoint, which fixes ownership,
# finds the cluster and starts PostgreSQL as user postgres.
set -eu

if [ -z "${DB_REPLICATION_PASSWORD:-}" ]; then
    echo "standby: DB_REPLICATION_PASSWORD must be set in .env (and bigbrotr-migrate run with it) to run the standby" >&2
    exit 1
fi
: "${PGDATA:?PGDATA is not set}"
primary_host=${PRIMARY_HOST:-postgres}
primary_port=${PRIMARY_PORT:-5432}
slot=${STANDBY_SLOT:-bigbrotr_standby}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    export PGPASSWORD="$DB_REPLICATION_PASSWORD"
    until pg_isready -q -h "$primary_host" -p "$primary_port"; do
        echo "standby: waiting for the primary at $primary_host:$primary_port" >&2
        sleep 2
    done
    pg_receivewal --create-slot --if-not-exists --slot="$slot" --no-password \
        -h "$primary_host" -p "$primary_port" -U replicator
    copy="$PGDATA.basebackup"
    rm -rf "$copy"
    mkdir -p "$(dirname "$PGDATA")"
    echo "standby: copying the primary with pg_basebackup" >&2
    pg_basebackup -h "$primary_host" -p "$primary_port" -U replicator --no-password \
        -D "$copy" -R -X stream -S "$slot" -c fast
    # An empty PGDATA (a fresh mount point) is replaced; a non-empty one stops here (rmdir fails).
    if [ -d "$PGDATA" ]; then
        rmdir "$PGDATA"
    fi
    mv "$copy" "$PGDATA"
    unset PGPASSWORD
    echo "standby: copied; starting as a hot standby" >&2
fi

exec docker-entrypoint.sh "$@"
