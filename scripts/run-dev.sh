#!/usr/bin/env bash
# Builds and starts wazo-auth on its development defaults: a private PostgreSQL cluster under
# ./var/postgres (created on first run), the built-in wazo_user backend with an administrator
# (created on first run, credentials kept in ./var/admin-credentials), the built-in mobile
# external-auth plugin and the example backend (user alice / alice-secret). Stop it with Ctrl-C. Extra arguments are passed to wazo-auth.
# On a fresh Debian machine as root it first installs what is missing (PostgreSQL server).
set -euo pipefail
cd "$(dirname "$0")/.."

# The main file is given here: a second -c would be refused by the server, so say what to do.
for arg in "$@"; do
    case "$arg" in
        -c|--config-file|--config-file=*)
            echo "run-dev.sh already passes -c host/dev/config.yml: put your settings in" \
                 "host/dev/conf.d/*.yml, or in a directory named by WAZO_AUTH_DEV_CONF_D" >&2
            exit 2 ;;
    esac
done

scripts/install-deps.sh
cargo build --locked -p wazo-auth -p wazo-user-backend -p example-backend -p wazo-auth-external-bar \
    -p wazo-auth-mobile -p wazo-auth-google -p wazo-auth-microsoft

mkdir -p var
credentials=var/admin-credentials
if [[ ! -s "$credentials" ]]; then
    (umask 077; printf 'admin %s\n' "$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)" > "$credentials")
fi
read -r admin_user admin_password < "$credentials"

# WAZO_AUTH_DEV_CONF_D: read local settings from that directory instead of host/dev/conf.d.
config=host/dev/config.yml
if [[ -n "${WAZO_AUTH_DEV_CONF_D:-}" ]]; then
    conf_d=$(cd "$WAZO_AUTH_DEV_CONF_D" && pwd)
    config=var/dev-config.yml
    sed "s|^extra_config_files:.*|extra_config_files: '$conf_d'|" host/dev/config.yml > "$config"
fi
target/debug/wazo-auth -c "$config" bootstrap \
    --username "$admin_user" --password "$admin_password"

cat <<MSG

wazo-auth is starting on http://127.0.0.1:9497, unless your settings change it (development configuration $config).
Administrator: $admin_user / $admin_password   (kept in $credentials)

  # an admin token
  TOKEN=\$(curl -s -u '$admin_user:$admin_password' -H 'Content-Type: application/json' -d '{}' \\
          http://127.0.0.1:9497/0.1/token | sed 's/.*"token": *"\\([^"]*\\)".*/\\1/')
  # create a user, then log in as that user
  curl -s -H "X-Auth-Token: \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"username": "bob", "password": "bob-secret"}' http://127.0.0.1:9497/0.1/users
  curl -s -u bob:bob-secret -H 'Content-Type: application/json' -d '{}' http://127.0.0.1:9497/0.1/token

MSG
exec target/debug/wazo-auth -c "$config" "$@"
