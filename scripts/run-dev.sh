#!/usr/bin/env bash
# Builds and starts wazo-auth on its development defaults: a private PostgreSQL cluster under
# ./var/postgres (created on first run) and the example backend plugin (user alice /
# alice-secret). Stop it with Ctrl-C. Extra arguments are passed to wazo-auth.
# On a fresh Debian machine as root it first installs what is missing (PostgreSQL server).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --locked -p wazo-auth -p example-backend

cat <<'MSG'

wazo-auth is starting on http://127.0.0.1:9497 (development configuration host/dev/config.yml).
Get a token, then check it:

  curl -s -u alice:alice-secret -H 'Content-Type: application/json' \
       -d '{"backend": "example_static"}' http://127.0.0.1:9497/0.1/token
  curl -s -I "http://127.0.0.1:9497/0.1/token/<token>?scope=confd.users.read"

MSG
exec target/debug/wazo-auth -c host/dev/config.yml "$@"
