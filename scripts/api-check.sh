#!/usr/bin/env bash
# Property-based API check: runs schemathesis (from PyPI) against a live server, driven by the
# server's own OpenAPI description (GET /0.1/api/api.yml), for a bounded number of examples per
# operation, and fails on any 5xx answer. Installs schemathesis into a private virtualenv under
# target/ when missing; when it cannot be installed (no network), says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${API_CHECK_EXAMPLES:-15}
port=${API_CHECK_PORT:-9611}

venv=target/schemathesis-venv
if [[ ! -x $venv/bin/st ]]; then
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q schemathesis; } >/dev/null 2>&1; then
        echo "api-check: schemathesis could not be installed; skipped"
        exit 0
    fi
fi
scripts/install-deps.sh >/dev/null
cargo build --locked -q -p wazo-auth -p wazo-user-backend -p wazo-auth-external-bar

work=$(mktemp -d /tmp/wazo-auth-api-check.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/plugins"
cp target/debug/libwazo_auth_wazo_user.so target/debug/libwazo_auth_external_bar.so "$work/plugins/"
chmod 755 "$work/plugins" "$work/plugins"/*.so
cat > "$work/config.yml" <<YAML
log_level: warning
rest_api: {listen: 127.0.0.1, port: $port}
managed_db: {data_dir: $work/pg}
secret_key_file: $work/secret.keys
plugin_dir: $work/plugins
enabled_backend_plugins: {wazo_user: true, ldap_user: false}
enabled_external_auth_plugins: {bar: true, google: false, microsoft: false, mobile: false}
bootstrap_user_on_startup: true
bootstrap_user_username: admin
bootstrap_user_password: api-check-password
login_throttle: {enabled: false}
YAML
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
target/debug/wazo-auth -c "$work/config.yml" > "$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port/0.1"
for _ in $(seq 1 300); do
    curl -s -o /dev/null -I "$base/status" && break
    sleep 0.1
done
token=$(curl -sf -u admin:api-check-password -H 'Content-Type: application/json' \
    -d '{"expiration": 3600}' "$base/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
echo "api-check: schemathesis, $examples examples per operation, no 5xx allowed"
"$venv/bin/st" run "$base/api/api.yml" --url "$base" -H "X-Auth-Token: $token" \
    --max-examples "$examples" --checks not_a_server_error -w 2 --seed 1 > "$work/st.log" 2>&1 \
    || { cat "$work/st.log"; grep -i panicked "$work/server.log" || true; exit 1; }
grep -E 'generated|passed|failed' "$work/st.log" | tail -3
if grep -q "panicked" "$work/server.log"; then
    echo "api-check: the server panicked"
    exit 1
fi
