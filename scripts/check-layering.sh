#!/usr/bin/env bash
# Guards the crate layering (models → db → core → services; imports only go down):
#   - bigbrotr-models does no I/O: no sqlx, tokio, reqwest, axum among its dependencies;
#   - bigbrotr-db knows nothing of the runtime above it;
#   - bigbrotr-utils (the network layer, beside core) depends on neither core nor db;
#   - bigbrotr-nips (NIP-11/NIP-66 checks and events, above models and utils, below the services)
#     depends on neither core nor db;
#   - bigbrotr-catalog (the read side shared by api and dvm) holds no SQL and no runtime: not
#     sqlx, not axum, not core;
#   - no service depends on another service, and none lists sqlx directly (all SQL is in db).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

deps_of() { cargo tree -p "$1" -e normal --prefix none --format '{p}' 2>/dev/null | awk '{print $1}' | sort -u; }
direct_deps_of() { cargo tree -p "$1" -e normal --depth 1 --prefix none --format '{p}' 2>/dev/null | awk 'NR>1 {print $1}' | sort -u; }

models=$(deps_of bigbrotr-models)
for forbidden in sqlx tokio reqwest axum hyper; do
    if grep -qx "$forbidden" <<<"$models"; then
        echo "layering: bigbrotr-models must not depend on $forbidden" >&2
        fail=1
    fi
done
if grep -qx bigbrotr-core <<<"$(deps_of bigbrotr-db)"; then
    echo "layering: bigbrotr-db must not depend on bigbrotr-core" >&2
    fail=1
fi
utils=$(deps_of bigbrotr-utils)
for forbidden in bigbrotr-core bigbrotr-db sqlx; do
    if grep -qx "$forbidden" <<<"$utils"; then
        echo "layering: bigbrotr-utils must not depend on $forbidden" >&2
        fail=1
    fi
done
nips=$(deps_of bigbrotr-nips)
for forbidden in bigbrotr-core bigbrotr-db sqlx; do
    if grep -qx "$forbidden" <<<"$nips"; then
        echo "layering: bigbrotr-nips must not depend on $forbidden" >&2
        fail=1
    fi
done
catalog=$(deps_of bigbrotr-catalog)
catalog_direct=$(direct_deps_of bigbrotr-catalog)
for forbidden in bigbrotr-core sqlx axum; do
    if grep -qx "$forbidden" <<<"$catalog" && [ "$forbidden" = bigbrotr-core ] \
        || grep -qx "$forbidden" <<<"$catalog_direct"; then
        echo "layering: bigbrotr-catalog must not depend on $forbidden (its SQL is in db)" >&2
        fail=1
    fi
done
services=$(find crates -mindepth 1 -maxdepth 1 -type d -name 'bigbrotr-*' -printf '%f\n' | sort | grep -vE '^bigbrotr-(models|db|core|utils|nips|catalog|testkit)$')
for service in $services; do
    if grep -qx "$service" <<<"$nips"; then
        echo "layering: bigbrotr-nips depends on $service; it sits below the services" >&2
        fail=1
    fi
    direct=$(direct_deps_of "$service")
    if grep -qx sqlx <<<"$direct"; then
        echo "layering: $service lists sqlx directly; SQL belongs in bigbrotr-db" >&2
        fail=1
    fi
    for other in $services; do
        if [ "$other" != "$service" ] && grep -qx "$other" <<<"$direct"; then
            echo "layering: $service depends on $other; services are independent" >&2
            fail=1
        fi
    done
done
if [ "$fail" -eq 0 ]; then
    echo "layering: ok ($(wc -w <<<"$services") service crates checked)"
fi
exit "$fail"
