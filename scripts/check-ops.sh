#!/usr/bin/env bash
# Checks the operational files (part of .ci/run): both compose files, the Prometheus
# configuration, alert rules and their unit tests, the Alertmanager configuration, the systemd
# units, the GitHub workflow's action pins, every shell script, the Dockerfile, and the
# dependency policy (deny.toml).
# Installs the tools it needs when they are missing (scripts/ensure-tools.sh ops).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh ops

step() { echo "== $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for variant in bigbrotr lilbrotr; do
    dir=deployments/$variant
    step "compose config: $variant"
    # As shipped, .env.example leaves the required secrets empty: compose must refuse it ...
    if (cd "$dir" && docker-compose --env-file .env.example config -q) >"$tmp/out" 2>&1; then
        echo "$dir: compose accepted .env.example with empty required secrets" >&2
        exit 1
    fi
    grep -q "must be set in .env" "$tmp/out" || { cat "$tmp/out" >&2; exit 1; }
    # ... and accept it once every required value is filled in.
    sed -E 's/^([A-Z_]*PASSWORD|[A-Z_]*PRIVATE_KEY)=$/\1=ci-placeholder/' "$dir/.env.example" >"$tmp/env"
    (cd "$dir" && docker-compose --env-file "$tmp/env" config -q)
    # ... with the optional services too (profile "standby": BigBrotr's postgres-standby).
    (cd "$dir" && docker-compose --env-file "$tmp/env" --profile standby config -q)
    # Every published port is bound to loopback (compose v1 prints them as HOST_IP:HOST:CONTAINER).
    (cd "$dir" && docker-compose --env-file "$tmp/env" --profile standby config) \
        | grep -E '^\s+- ([0-9.]+:)?[0-9]+:[0-9]+(/[a-z]+)?$' | grep -v -- '- 127\.0\.0\.1:' >"$tmp/ports" || true
    if [ -s "$tmp/ports" ]; then
        echo "$dir: ports not bound to 127.0.0.1:" >&2
        cat "$tmp/ports" >&2
        exit 1
    fi
done

monitoring=deployments/bigbrotr/monitoring
step "promtool check config / check rules / test rules"
promtool check config --syntax-only "$monitoring/prometheus/prometheus.yml"
promtool check rules "$monitoring"/prometheus/rules/*.yml
promtool test rules "$monitoring"/prometheus/tests/*.yml

step "amtool check-config"
amtool check-config "$monitoring/alertmanager/alertmanager.yml"

step "Grafana dashboards are valid JSON"
for dashboard in "$monitoring"/grafana/dashboards/*.json; do
    python3 -m json.tool "$dashboard" >/dev/null
done

step "systemd-analyze verify (stub binaries)"
# The units name /usr/local/bin/bigbrotr-*, the bigbrotr user and /etc/bigbrotr; verify them in a
# root of their own with stub executables, so nothing is installed on this machine.
units=$tmp/units
mkdir -p "$units"
cp deployments/systemd/*.service deployments/systemd/*.target "$units/"
for dropin in deployments/systemd/*.service.d; do
    cp -r "$dropin" "$units/"
done
# The restart backoff drop-in uses keys of systemd 254 and newer (the install guide copies it only
# there): verify it where they exist, else check it holds nothing else.
systemd_version=$(systemd-analyze --version | awk 'NR == 1 { print $2 }')
backoff="bigbrotr@.service.d/20-restart-backoff.conf"
if [ "$systemd_version" -lt 254 ]; then
    if grep -vE '^(#.*|\[Service\]|RestartSteps=[0-9]+|RestartMaxDelaySec=[0-9a-z]+|)$' \
        "deployments/systemd/$backoff"; then
        echo "$backoff: only RestartSteps= and RestartMaxDelaySec= (systemd 254) belong there" >&2
        exit 1
    fi
    echo "systemd $systemd_version: $backoff not verified (its keys need 254)"
    rm "$units/$backoff"
fi
stubs=$tmp/bin
mkdir -p "$stubs"
for daemon in migrate seeder finder validator monitor synchronizer refresher api dvm; do
    printf '#!/bin/sh\nexit 0\n' >"$stubs/bigbrotr-$daemon"
    chmod +x "$stubs/bigbrotr-$daemon"
done
for unit in "$units"/*.service "$units"/*.target; do
    sed -i "s#/usr/local/bin/#$stubs/#g" "$unit"
done
daemons=(finder validator monitor synchronizer refresher api dvm)
for daemon in "${daemons[@]}"; do
    cp "$units/bigbrotr@.service" "$units/bigbrotr@$daemon.service"
done
rm "$units/bigbrotr@.service"
verify_units=("$units"/bigbrotr-migrate.service "$units"/bigbrotr-seeder.service "$units"/bigbrotr.target)
for daemon in "${daemons[@]}"; do
    verify_units+=("$units/bigbrotr@$daemon.service")
done
# Unknown users, missing EnvironmentFile= and WorkingDirectory= are facts of this machine, not of
# the units: syntax and semantic errors and warnings (an unknown key is only a warning, and with
# systemd's default log target the messages of the loaded drop-ins do not reach stderr) fail it.
SYSTEMD_LOG_TARGET=console SYSTEMD_UNIT_PATH="$units:" \
    systemd-analyze verify --man=no "${verify_units[@]}" 2>&1 \
    | grep -vE "Failed to resolve user|No such file or directory|WorkingDirectory|Failed to load environment files|bigbrotr.target" >"$tmp/verify" || true
if [ -s "$tmp/verify" ]; then
    cat "$tmp/verify" >&2
    exit 1
fi

step "GitHub workflows: actions pinned by commit SHA"
# A tag can be moved to other code; a commit cannot. The comment names the release.
grep -nE '^[[:space:]-]*uses:' .github/workflows/*.yml \
    | grep -vE 'uses: [A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40} # v[0-9]+\.[0-9]+\.[0-9]+$' >"$tmp/unpinned" || true
if [ -s "$tmp/unpinned" ]; then
    echo "actions not pinned by commit SHA (uses: owner/name@<40 hex> # vX.Y.Z):" >&2
    cat "$tmp/unpinned" >&2
    exit 1
fi

step "shellcheck"
mapfile -t scripts < <(git ls-files '*.sh' .ci/run deployments/*/pgbouncer/entrypoint.sh | sort -u)
shellcheck "${scripts[@]}"

step "hadolint"
hadolint deployments/Dockerfile

step "cargo deny (licenses, bans, sources; offline)"
# The advisory database is fetched from GitHub, which this CI cannot reach: advisories are not
# checked here (run `cargo deny check advisories` where GitHub is reachable).
cargo deny --offline check licenses bans sources
echo "operational checks passed"
