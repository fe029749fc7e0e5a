#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate and the black-box tests (the real
# wazo-auth binary, real plugin .so files, a throw-away PostgreSQL cluster).
# On a fresh Debian machine as root it first installs what is missing (PostgreSQL server).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# The black-box tests start target/debug/wazo-auth and load the plugins built here.
cargo build --workspace --locked
cargo test --workspace --locked "$@"
