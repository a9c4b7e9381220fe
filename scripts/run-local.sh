#!/usr/bin/env bash
# `make run`: sets up and runs BigBrotr on this machine.
#
# Without BROTR_CONFIG: starts (or reuses) a PostgreSQL cluster under .data/pg on a Unix socket,
# creates the `bigbrotr` database, writes .data/config/{brotr.yaml,services/*.yaml}, applies the
# migrations, runs the seeder once with the default seed file, then the continuous daemons that
# exist today (finder, validator, monitor, synchronizer, refresher, api, dvm) until Ctrl-C. With ONCE=1 each
# daemon runs one cycle and exits. They run side by side: on a fresh database the monitor's and the
# synchronizer's first cycles find few or no relays (only those the validator has promoted by
# then); with many relays the synchronizer's cycle may last up to timeouts.max_duration (4 h).
# The monitor signs with a throwaway key of its own (.data/monitor.key, made once from
# /dev/urandom; NOSTR_PRIVATE_KEY is not used for it) and publishes nothing: its checks, and their
# RTT write probes, still reach the relays, and with MAXMIND_ACCOUNT_ID and MAXMIND_LICENSE_KEY in
# the environment it downloads the GeoLite2 databases from MaxMind into .data/geoip/ (without
# them, or when a download fails, only a warning: the Geo and Net checks are skipped). The refresher refreshes the analytics at start
# (then every minute), as role refresher on the local cluster (as the configured user with
# BROTR_CONFIG). The API serves every table read-only on http://127.0.0.1:${API_PORT:-8080} (as
# role reader on the local cluster).
# With BROTR_CONFIG=path/to/brotr.yaml: uses that database instead of a local cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo build --release -q -p bigbrotr-migrate -p bigbrotr-seeder -p bigbrotr-finder -p bigbrotr-validator \
    -p bigbrotr-monitor -p bigbrotr-synchronizer -p bigbrotr-refresher -p bigbrotr-api -p bigbrotr-dvm
bin="$root/target/release"

config_dir="$root/.data/config"
refresher_user=()
reader_user=()
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
    # The refresher logs in as its own role, as in the deployments (trust auth: no password).
    refresher_user=(BIGBROTR_SERVICE__POOL__USER=refresher)
    reader_user=(BIGBROTR_SERVICE__POOL__USER=reader)
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

cat >"$config_dir/services/finder.yaml" <<YAML
# Written by scripts/run-local.sh: metrics on 127.0.0.1:8001.
metrics:
  enabled: true
  port: 8001
YAML
cat >"$config_dir/services/validator.yaml" <<YAML
# Written by scripts/run-local.sh: metrics on 127.0.0.1:8002; clearnet only (no Tor here).
metrics:
  enabled: true
  port: 8002
YAML
cat >"$config_dir/services/monitor.yaml" <<YAML
# Written by scripts/run-local.sh: metrics on 127.0.0.1:8003; clearnet only (no Tor here).
# Checks every relay (NIP-11, RTT, SSL, DNS, Geo, Net, HTTP) and stores the results, but publishes
# nothing: a throwaway key's profile, relay list and NIP-66 events do not belong on public relays.
metrics:
  enabled: true
  port: 8003
geo:
  city_database_path: $root/.data/geoip/GeoLite2-City.mmdb
  asn_database_path: $root/.data/geoip/GeoLite2-ASN.mmdb
discovery:
  enabled: false
announcement:
  enabled: false
profile:
  enabled: false
relay_list:
  enabled: false
YAML
# The monitor's signing key (required): a throwaway one, kept for the next runs. 32 random bytes
# are a valid secp256k1 secret key but for a chance of about 2^-128.
monitor_key_file="$root/.data/monitor.key"
if [ ! -s "$monitor_key_file" ]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$monitor_key_file")
fi
monitor_key=$(<"$monitor_key_file")
# The DVM's, likewise (a key of its own).
dvm_key_file="$root/.data/dvm.key"
if [ ! -s "$dvm_key_file" ]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dvm_key_file")
fi
dvm_key=$(<"$dvm_key_file")

cat >"$config_dir/services/synchronizer.yaml" <<YAML
# Written by scripts/run-local.sh: metrics on 127.0.0.1:8004; clearnet only (no Tor here).
# Defaults otherwise: every event up to a day ago; NIP-42 AUTH when NOSTR_PRIVATE_KEY is set.
metrics:
  enabled: true
  port: 8004
YAML

cat >"$config_dir/services/refresher.yaml" <<YAML
# Written by scripts/run-local.sh: metrics on 127.0.0.1:8005; refreshes every analytics object
# at start, then every minute (a refresh costs what was written since the last one). Two
# connections: two refreshes at once, with no timeout.
interval: 60
metrics:
  enabled: true
  port: 8005
pool:
  max_size: 2
YAML

api_port="${API_PORT:-8080}"
cat >"$config_dir/services/api.yaml" <<YAML
# Written by scripts/run-local.sh: every table, read-only, on 127.0.0.1:8080 (API_PORT=... moves
# it); metrics on 127.0.0.1:8006.
host: 127.0.0.1
port: 8080
metrics:
  enabled: true
  port: 8006
pool:
  statement_cache_size: 100
tables:
  relay: {enabled: true}
  metadata: {enabled: true}
  relay_metadata: {enabled: true}
  event: {enabled: true}
  event_relay: {enabled: true}
  relay_metadata_latest: {enabled: true}
  event_stats: {enabled: true}
  relay_stats: {enabled: true}
  kind_counts: {enabled: true}
  kind_counts_by_relay: {enabled: true}
  pubkey_counts: {enabled: true}
  pubkey_counts_by_relay: {enabled: true}
  network_stats: {enabled: true}
  event_daily_counts: {enabled: true}
  events_replaceable_latest: {enabled: true}
  events_addressable_latest: {enabled: true}
  relay_software_counts: {enabled: true}
  supported_nip_counts: {enabled: true}
  relay_uptime_daily: {enabled: true}
  relay_uptime: {enabled: true}
YAML

cat >"$config_dir/services/dvm.yaml" <<YAML
# Written by scripts/run-local.sh: NIP-90 jobs on the default public relays (retried with backoff
# while unreachable) under a throwaway key (.data/dvm.key), every table; no announcement, so
# nobody is pointed at a local DVM; metrics on 127.0.0.1:8007.
announce: false
metrics:
  enabled: true
  port: 8007
pool:
  max_size: 3
  statement_cache_size: 100
tables:
  relay: {enabled: true}
  metadata: {enabled: true}
  relay_metadata: {enabled: true}
  event: {enabled: true}
  event_relay: {enabled: true}
  relay_metadata_latest: {enabled: true}
  event_stats: {enabled: true}
  relay_stats: {enabled: true}
  kind_counts: {enabled: true}
  kind_counts_by_relay: {enabled: true}
  pubkey_counts: {enabled: true}
  pubkey_counts_by_relay: {enabled: true}
  network_stats: {enabled: true}
  event_daily_counts: {enabled: true}
  events_replaceable_latest: {enabled: true}
  events_addressable_latest: {enabled: true}
  relay_software_counts: {enabled: true}
  supported_nip_counts: {enabled: true}
  relay_uptime_daily: {enabled: true}
  relay_uptime: {enabled: true}
YAML

once=()
if [ "${ONCE:-0}" = 1 ]; then
    once=(--once)
fi
pids=()
for daemon in finder validator monitor synchronizer refresher api dvm; do
    key=()
    if [ "$daemon" = monitor ]; then
        key=(NOSTR_PRIVATE_KEY="$monitor_key")
    elif [ "$daemon" = refresher ]; then
        key=("${refresher_user[@]}")
    elif [ "$daemon" = api ]; then
        key=("${reader_user[@]}" BIGBROTR_SERVICE__PORT="$api_port")
    elif [ "$daemon" = dvm ]; then
        key=("${reader_user[@]}" NOSTR_PRIVATE_KEY="$dvm_key")
    fi
    env "${key[@]}" "$bin/bigbrotr-$daemon" "${once[@]}" --brotr-config "$BROTR_CONFIG" \
        --config "$config_dir/services/$daemon.yaml" &
    pids+=("$!")
done
echo "API: http://127.0.0.1:$api_port/v1/schema (docs: http://127.0.0.1:$api_port/docs)"
trap 'kill -TERM "${pids[@]}" 2>/dev/null' INT TERM
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
exit "$status"
