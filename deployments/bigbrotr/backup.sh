#!/usr/bin/env bash
# backup.sh - compressed logical dump of this compose deployment's database, newest 7 kept.
#
# Writes dumps/<database>_YYYYmmdd_HHMMSS.sql.gz next to this script with
# `pg_dump -Z 6 --no-owner --no-privileges`, run inside the postgres container (as BigBrotr 6.6.9).
# The database name, user and password are taken from the container's own POSTGRES_* variables,
# so the same script serves bigbrotr and lilbrotr (deployments/lilbrotr/backup.sh is a symlink)
# and any copied deployment directory.
#
# Usage:   ./backup.sh                      (cron: 0 3 * * * /path/to/deployments/bigbrotr/backup.sh)
# Env:     BACKUP_DIR  (default: <this directory>/dumps)
#          BACKUP_KEEP (default: 7 newest dumps of this database are kept)
# Restore: gunzip -c dumps/<file>.sql.gz | docker compose exec -T postgres psql -U admin -d <database>
#          into an empty database, then `docker compose run --rm migrate`: the dump carries no
#          owners or grants (--no-owner --no-privileges), the schema step re-applies them.

set -euo pipefail

# The directory the script was invoked from (for the lilbrotr symlink: deployments/lilbrotr).
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BACKUP_DIR="${BACKUP_DIR:-${SCRIPT_DIR}/dumps}"
BACKUP_KEEP="${BACKUP_KEEP:-7}"

cd "$SCRIPT_DIR"

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "backup.sh: neither 'docker compose' nor 'docker-compose' is available" >&2
    exit 1
fi

db="$("${compose[@]}" exec -T postgres printenv POSTGRES_DB)"
db="${db%$'\r'}"
if [[ ! "$db" =~ ^[A-Za-z0-9_]+$ ]]; then
    echo "backup.sh: unexpected database name '${db}' from the postgres container" >&2
    exit 1
fi

mkdir -p "$BACKUP_DIR"
timestamp="$(date +%Y%m%d_%H%M%S)"
dump_file="${BACKUP_DIR}/${db}_${timestamp}.sql.gz"
partial="${dump_file}.partial"
trap 'rm -f "$partial"' EXIT

# Single quotes on purpose: the variables are expanded by the shell inside the container.
# shellcheck disable=SC2016
"${compose[@]}" exec -T postgres sh -c \
    'PGPASSWORD="$POSTGRES_PASSWORD" exec pg_dump -U "$POSTGRES_USER" -d "$POSTGRES_DB" --no-owner --no-privileges -Z 6' \
    > "$partial"

# Only a complete dump gets its final name, so retention never counts a broken file.
mv "$partial" "$dump_file"
trap - EXIT

# Retention: names sort chronologically; delete all but the newest BACKUP_KEEP.
find "$BACKUP_DIR" -maxdepth 1 -type f -name "${db}_*.sql.gz" -printf '%f\n' \
    | sort -r \
    | tail -n +"$((BACKUP_KEEP + 1))" \
    | while IFS= read -r old; do
        rm -f -- "${BACKUP_DIR}/${old}"
    done

echo "[$(date)] Backup completed: ${dump_file} ($(du -h "$dump_file" | cut -f1))"
