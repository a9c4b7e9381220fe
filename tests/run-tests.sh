#!/usr/bin/env bash
# Runs the whole test suite against the server in BIGBROTR_TEST_DATABASE_URL (see `make test`):
# provides a PgBouncer binary for the transaction-mode test, Prometheus, postgres-exporter and
# the daemon binaries for the monitoring test, then nextest (or cargo test).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BIGBROTR_TEST_DATABASE_URL:?set it, or run make test}"
if [ -z "${BIGBROTR_TEST_PGBOUNCER:-}" ]; then
    BIGBROTR_TEST_PGBOUNCER=$(tests/pg-cluster.sh ensure-pgbouncer "$PWD/target/tools/pgbouncer")
    export BIGBROTR_TEST_PGBOUNCER
fi
# End-to-end tests run the daemon binaries themselves (tests/it/api.rs; and
# tests/it/deployment_prometheus.rs, under a real Prometheus and postgres-exporter).
scripts/ensure-tools.sh prometheus
cargo build --workspace --bins
echo "test database server: $BIGBROTR_TEST_DATABASE_URL"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
