#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate and the black-box tests (the real
# wazo-auth binary, real plugin .so files, a throw-away PostgreSQL cluster).
# On a fresh Debian machine as root it first installs what is missing (PostgreSQL server).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# The black-box tests start target/debug/wazo-auth and load the plugins built here.
cargo build --workspace --locked
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line with the totals of every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
