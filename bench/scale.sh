#!/usr/bin/env bash
# Cost against data size (issue 20), skeleton: starts the server on its own PostgreSQL, seeds it
# at SCALE with set-based SQL and prints the seeding time of each kind of row and the database
# size per row. The measurements at 1 k rows and at SCALE rows (token checks, listings, purge,
# cold start, memory) and their ratios are not written yet; neither is the write-up in
# docs/benchmarks.md. Not part of .ci/run.
#
#   SCALE=0.01 bench/scale.sh          # 100 k live tokens, 10 k users, 100 tenants...
#   SCALE=1 bench/scale.sh             # 10 M live tokens, 5 M expired, 1 M users, 10 k tenants
#                                      # 10 deep, 100 k policies (the issue's sizes)
#   SCALE_BUILD=debug bench/scale.sh   # the debug build (default: release)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-0.1}
build=${SCALE_BUILD:-release}
port=${BENCH_PORT:-9598}

count() { # base count at SCALE=1 -> the count at $scale (at least 1)
    python3 -c 'import sys; print(max(1, int(round(float(sys.argv[1]) * float(sys.argv[2])))))' "$1" "$scale"
}
live_tokens=$(count 10000000)
expired_tokens=$(count 5000000)
users=$(count 1000000)
# Chains 10 deep under the top tenant: a multiple of 10.
tenants=$(( ( $(count 10000) + 9 ) / 10 * 10 ))
policies=$(count 100000)

scripts/install-deps.sh >/dev/null
case $build in
    release) flag=--release ;;
    debug) flag= ;;
    *) echo "scale: SCALE_BUILD must be release or debug" >&2; exit 2 ;;
esac
echo "scale: building ($build)"
cargo build $flag --locked -q -p wazo-auth -p example-backend

source scripts/throwaway-server.sh
server_workdir scale "target/$build/libwazo_auth_example_backend.so"
{
    server_config "$port"
    cat <<YAML
extra_config_files: $work/conf.d
enabled_backend_plugins: {wazo_user: false, example_static: true, ldap_user: false}
enabled_external_auth_plugins: {google: false, microsoft: false, mobile: false}
token_cleanup_interval: 0
YAML
} > "$work/config.yml"
base="http://127.0.0.1:$port"
server_start "$base/0.1/status" "target/$build/wazo-auth" -c "$work/config.yml"

socket=$work/pg/socket
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_user_run() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_scale() { pg_user_run "$pgbin/psql" -qtA -v ON_ERROR_STOP=1 -h "$socket" -U postgres -d wazo_auth "$@"; }
seed() { # what, SQL
    local started ended
    started=$(date +%s.%N)
    psql_scale -c "$2" >/dev/null
    ended=$(date +%s.%N)
    printf 'seeded %-28s %8.1f s\n' "$1" "$(echo "$ended - $started" | bc)"
}

echo "scale: SCALE=$scale: $tenants tenants, $users users, $policies policies," \
    "$live_tokens live and $expired_tokens expired tokens"
# Tenant i (0-based) is under tenant i-1, or under the top tenant for every tenth: chains 10
# deep. Deterministic uuids (md5 of a name), as bench/run.sh's.
seed "tenants ($tenants)" "
    INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
    SELECT md5('scale-t' || i)::uuid::text, 'scale-t' || i, 's' || i,
           CASE WHEN i % 10 = 0 THEN (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
                ELSE md5('scale-t' || (i - 1))::uuid::text END
    FROM generate_series(0, $tenants - 1) AS i ORDER BY i"
seed "users ($users)" "
    INSERT INTO auth_user (uuid, username, firstname, lastname, tenant_uuid)
    SELECT md5('scale-u' || i)::uuid::text, 'user' || i, 'First' || i, 'Last' || i,
           md5('scale-t' || (i % $tenants))::uuid::text
    FROM generate_series(0, $users - 1) AS i"
seed "policies ($policies)" "
    INSERT INTO auth_policy (name, slug, tenant_uuid, acl)
    SELECT 'policy-' || i, 'policy-' || i, md5('scale-t' || (i % $tenants))::uuid::text,
           ARRAY['confd.users.me.read', 'calld.users.me.#', 'auth.users.me.#', 'p' || i || '.#']
    FROM generate_series(0, $policies - 1) AS i"
# One session per token, of tenant i % tenants; tokens of user i % users. Token i's id is
# md5('scale-k' || i) as a uuid (stored, as the server does, as the SHA-256 of its text), so
# that the measurements can use known tokens.
seed_tokens() { # what, count, first i, expiry (SQL, epoch seconds)
    seed "$1" "
        INSERT INTO auth_session (uuid, tenant_uuid)
        SELECT md5('scale-s' || i)::uuid::text, md5('scale-t' || (i % $tenants))::uuid::text
        FROM generate_series($3, $3 + $2 - 1) AS i;
        INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, metadata, session_uuid,
                                user_agent, remote_addr, acl)
        SELECT sha256(convert_to(md5('scale-k' || i)::uuid::text, 'UTF8')), u.uuid,
               extract(epoch FROM now()), $4,
               jsonb_build_object('auth_id', u.uuid, 'uuid', u.uuid, 'purpose', 'user'),
               md5('scale-s' || i)::uuid::text, 'scale', '127.0.0.1',
               ARRAY['confd.users.me.read', 'calld.users.me.#', 'auth.users.me.#']
        FROM generate_series($3, $3 + $2 - 1) AS i,
             LATERAL (SELECT md5('scale-u' || (i % $users))::uuid::text AS uuid) AS u"
}
seed_tokens "live tokens ($live_tokens)" "$live_tokens" 0 "extract(epoch FROM now()) + 86400"
seed_tokens "expired tokens ($expired_tokens)" "$expired_tokens" "$live_tokens" \
    "extract(epoch FROM now()) - 60"
seed "VACUUM ANALYZE" "VACUUM ANALYZE"

psql_scale -F '|' <<SQL | while IFS='|' read -r what bytes; do printf '%-26s %12s bytes\n' "$what" "$bytes"; done
SELECT 'database', pg_database_size('wazo_auth');
SELECT 'per token (with session)',
       (pg_total_relation_size('auth_token') + pg_total_relation_size('auth_session'))
       / greatest(1, $live_tokens + $expired_tokens);
SELECT 'per user', pg_total_relation_size('auth_user') / greatest(1, $users);
SQL
echo "scale: the measurements at SCALE are not written yet (issue 20)"
