#!/usr/bin/env bash
# Property-based API check: runs schemathesis (from PyPI) against a live server, driven by the
# server's own OpenAPI description (GET /0.1/api/openapi.yml), for a bounded number of examples per
# operation (API_CHECK_EXAMPLES, default 15), and fails on any 5xx answer or any answer the
# description does not allow: an undocumented status code, content type or header, or a body
# that violates the documented schema (API_CHECK_CHECKS lists the schemathesis checks).
# Installs schemathesis into a private virtualenv under target/ when missing (pinned versions, so
# that a run depends on the seed and this script only); when it cannot be installed (no network),
# says so and skips. On failure, schemathesis's report is copied to
# target/api-check.log (and target/api-check-2.log for the second run).
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${API_CHECK_EXAMPLES:-15}
checks=${API_CHECK_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}
port=${API_CHECK_PORT:-9611}

# It also checks that the Swagger 2.0 form (GET /0.1/api/api.yml, the original's) is a valid
# Swagger 2.0 document (openapi-spec-validator), with and without a reverse proxy's prefix.
venv=target/schemathesis-venv
pins=(schemathesis==4.32.5 hypothesis==6.170.27 openapi-spec-validator==0.7.2)
if ! "$venv/bin/pip" freeze 2>/dev/null | grep -qxF "${pins[0]}" \
    || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qxF "${pins[1]}" \
    || ! "$venv/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q "${pins[@]}"; } >/dev/null 2>&1; then
        echo "api-check: schemathesis could not be installed; skipped"
        exit 0
    fi
fi
scripts/install-deps.sh >/dev/null
cargo build --locked -q -p wazo-auth -p wazo-user-backend -p wazo-auth-mobile -p wazo-auth-external-bar

source scripts/throwaway-server.sh
server_workdir api-check target/debug/libwazo_auth_wazo_user.so target/debug/libwazo_auth_mobile.so \
    target/debug/libwazo_auth_external_bar.so
{
    server_config "$port"
    cat <<YAML
enabled_backend_plugins: {wazo_user: true, ldap_user: false}
enabled_external_auth_plugins: {bar: true, google: false, microsoft: false, mobile: true}
bootstrap_user_on_startup: true
bootstrap_user_username: admin
bootstrap_user_password: api-check-password
login_throttle: {enabled: false}
YAML
} > "$work/config.yml"
base="http://127.0.0.1:$port/0.1"
server_start "$base/status" target/debug/wazo-auth -c "$work/config.yml"
login() {
    curl -sf -u admin:api-check-password -H 'Content-Type: application/json' \
        -d '{"expiration": 3600}' "$base/token" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])'
}

# The operations that can end the caller's own session (schemathesis reuses identifiers it saw in
# earlier answers: the admin's user and session uuids among them). Run in the main pass, they
# would leave every later test case an unauthenticated 401; so the main pass leaves them out and
# a second, short pass tests them (with the list operations that supply their identifiers) under
# a fresh token.
# (resetPasswordChange: the admin's token grants the reset of its own password, which ends its
# sessions and changes or removes the password the next login needs.)
caller_killers=(updateUser deleteUser deleteSession deleteUserSession resetPasswordChange)
exclude=() include=()
for op in "${caller_killers[@]}"; do
    exclude+=(--exclude-operation-id "$op")
    include+=(--include-operation-id "$op")
done
include+=(--include-operation-id listUsers --include-operation-id listSessions
          --include-operation-id listUserSessions)

# One worker: with two, hypothesis parses lambda sources (ast.parse) in two threads at once, and
# CPython 3.11's AST converter keeps its recursion depth per interpreter, not per thread, so a
# test case could fail with "AST constructor recursion depth mismatch" (CI, session 11).
# No cache of earlier runs (schemathesis replays stored failures first, hypothesis its examples
# database): each run depends on the seed only. Run from $work so nothing is written here.
printf '[cache]\nenabled = false\n' > "$work/schemathesis.toml"
root=$PWD
st_run() {
    local log=$1; shift
    (cd "$work" && "$root/$venv/bin/st" --config-file "$work/schemathesis.toml" run \
        "$base/api/openapi.yml" --url "$base" --max-examples "$examples" --checks "$checks" \
        -w 1 --seed 1 --generation-database none "$@") > "$work/$log" 2>&1
}
fail() {
    cp "$work/$1" "target/$2"
    cat "$work/$1"
    grep -i panicked "$work/server.log" || true
    exit 1
}
summary() {
    printf 'api-check: %s: %s operations, %s\n' "$2" \
        "$(sed -n 's/^ *Tested: *//p' "$work/$1" | tail -1)" \
        "$(grep -E '^ *[0-9]+ generated' "$work/$1" | tail -1 | sed 's/^ *//')"
}

for prefix in "" /proxied; do
    curl -sf -H "X-Script-Name: $prefix" "$base/api/api.yml" > "$work/swagger.yml"
    "$venv/bin/python" - "$work/swagger.yml" "$prefix" <<'PY' || exit 1
import sys, yaml
from openapi_spec_validator import OpenAPIV2SpecValidator
doc = yaml.safe_load(open(sys.argv[1]))
errors = list(OpenAPIV2SpecValidator(doc).iter_errors())
for e in errors[:20]:
    print("api-check: api.yml (Swagger 2.0):", str(e).splitlines()[0])
assert doc.get("basePath") == sys.argv[2] + "/0.1", doc.get("basePath")
print(f"api-check: api.yml is valid Swagger 2.0 ({len(doc['paths'])} paths, basePath {doc['basePath']})"
      if not errors else f"api-check: api.yml: {len(errors)} errors")
sys.exit(1 if errors else 0)
PY
done

echo "api-check: schemathesis, $examples examples per operation, checks: $checks"
token=$(login)
st_run st.log -H "X-Auth-Token: $token" "${exclude[@]}" || fail st.log api-check.log
summary st.log "main pass"
token=$(login)
st_run st-2.log -H "X-Auth-Token: $token" "${include[@]}" || fail st-2.log api-check-2.log
summary st-2.log "second pass"
if grep -q "panicked" "$work/server.log"; then
    echo "api-check: the server panicked"
    exit 1
fi
