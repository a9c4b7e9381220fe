# BigBrotr in Rust — developer entry points.
#
#   make run     local PostgreSQL cluster under .data/ (unless BROTR_CONFIG names a config),
#                migrations, the seeder once, then finder, validator, monitor, synchronizer and
#                refresher until Ctrl-C (ONCE=1: one cycle each); see scripts/run-local.sh
#   make test    throwaway PostgreSQL cluster + the whole test suite (what CI runs)
#   make lint    rustfmt check + clippy with warnings as errors + layering + unused dependencies
#   make bench   benchmarks on a throwaway cluster (release build); see docs/benchmarks.md
#                (make bench-refresher / bench-api / bench-dvm: only the refresher's / the API's /
#                the DVM's)
#   make migrate apply migrations to the database of BROTR_CONFIG (default config/brotr.yaml)

SHELL := /bin/bash
CARGO ?= cargo
PG_TEST_DIR ?= $(CURDIR)/target/pg-test
PG_BENCH_DIR ?= $(CURDIR)/target/pg-bench
BROTR_CONFIG ?=

.PHONY: all build test lint fmt bench bench-refresher bench-api bench-dvm run migrate clean-data

all: lint test

build:
	$(CARGO) build --workspace --bins

# One throwaway cluster per run (unless BIGBROTR_TEST_DATABASE_URL names a server); every test
# gets its own database cloned from a migrated template. nextest when available, else cargo test.
test:
	tests/pg-cluster.sh with "$(PG_TEST_DIR)" -- tests/run-tests.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/check-layering.sh
	scripts/ensure-tools.sh machete
	$(CARGO) machete

fmt:
	$(CARGO) fmt --all

# The refresher part runs on its own cluster with the deployments' memory and planner settings
# (deployments/*/postgres/postgresql.conf): its figures are about an archive that does not fit
# the test cluster's 256 MB of shared buffers.
PG_DEPLOYMENT_OPTS ?= -c shared_buffers=1GB -c effective_cache_size=3GB -c work_mem=8MB \
	-c maintenance_work_mem=256MB -c random_page_cost=1.1 -c max_wal_size=4GB

bench: bench-refresher bench-api bench-dvm
	tests/pg-cluster.sh with "$(PG_BENCH_DIR)" -- $(CARGO) bench -p bigbrotr-tests --bench ingest --bench discovery --bench sync --bench monitor

bench-refresher:
	PG_SERVER_OPTS="$(PG_DEPLOYMENT_OPTS)" tests/pg-cluster.sh with "$(PG_BENCH_DIR)-refresher" -- $(CARGO) bench -p bigbrotr-tests --bench refresher

# The API part runs the real bigbrotr-api binary (release build) against a 1M-event archive on
# its own cluster with the deployments' settings, like the refresher's.
bench-api:
	$(CARGO) build --release -p bigbrotr-api
	PG_SERVER_OPTS="$(PG_DEPLOYMENT_OPTS)" tests/pg-cluster.sh with "$(PG_BENCH_DIR)-api" -- $(CARGO) bench -p bigbrotr-tests --bench api

# The DVM part runs the real bigbrotr-dvm binary (release build) with the deployment's dvm.yaml
# against the same 1M-event archive and an in-process relay, on its own cluster like the API's.
bench-dvm:
	$(CARGO) build --release -p bigbrotr-dvm
	PG_SERVER_OPTS="$(PG_DEPLOYMENT_OPTS)" tests/pg-cluster.sh with "$(PG_BENCH_DIR)-dvm" -- $(CARGO) bench -p bigbrotr-tests --bench dvm

run:
	@BROTR_CONFIG="$(BROTR_CONFIG)" ONCE="$(ONCE)" scripts/run-local.sh

migrate:
	$(CARGO) run --release -q -p bigbrotr-migrate -- --brotr-config "$(or $(BROTR_CONFIG),config/brotr.yaml)"

# Stops the local cluster of `make run` and deletes its data (and the monitor's throwaway key).
clean-data:
	tests/pg-cluster.sh stop "$(CURDIR)/.data/pg"
	rm -rf .data
