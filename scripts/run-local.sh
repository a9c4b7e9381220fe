#!/usr/bin/env bash
# `make run`: sets up and runs BigBrotr on this machine.
#
# Without BROTR_CONFIG: starts (or reuses) a PostgreSQL cluster under .data/pg on a Unix socket,
# creates the `bigbrotr` database, writes .data/config/{brotr.yaml,services/*.yaml}, applies the
# migrations and runs the daemons that exist today (the seeder, once, with the default seed file).
# With BROTR_CONFIG=path/to/brotr.yaml: uses that database instead of a local cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo build --release -q -p bigbrotr-migrate -p bigbrotr-seeder
bin="$root/target/release"

config_dir="$root/.data/config"
mkdir -p "$config_dir/services"
if [ -z "${BROTR_CONFIG:-}" ]; then
    pg_dir="$root/.data/pg"
    tests/pg-cluster.sh start "$pg_dir" >/dev/null
    psql_cmd=(psql -h "$pg_dir" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
    if [ "$("${psql_cmd[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'bigbrotr'")" != 1 ]; then
        "${psql_cmd[@]}" -c "CREATE DATABASE bigbrotr"
    fi
    cat >"$config_dir/brotr.yaml" <<YAML
# Written by scripts/run-local.sh: the local cluster under .data/pg (Unix socket, trust auth).
pool:
  database:
    host: $pg_dir
    database: bigbrotr
    user: postgres
YAML
    BROTR_CONFIG="$config_dir/brotr.yaml"
    # The local cluster trusts local users; the daemons still expect the variable to be set.
    export DB_ADMIN_PASSWORD="${DB_ADMIN_PASSWORD:-local-cluster-uses-trust-auth}"
    echo "local PostgreSQL cluster: $pg_dir (stop it with: make clean-data)"
fi

cat >"$config_dir/services/seeder.yaml" <<YAML
# Written by scripts/run-local.sh.
seed:
  file_path: $root/deployments/bigbrotr/static/seed_relays.txt
  to_validate: true
YAML

"$bin/bigbrotr-migrate" --brotr-config "$BROTR_CONFIG"
"$bin/bigbrotr-seeder" --once --brotr-config "$BROTR_CONFIG" --config "$config_dir/services/seeder.yaml"
