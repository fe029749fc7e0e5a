#!/usr/bin/env bash
# Cost against data size (issue 20): starts the server on its own PostgreSQL, seeds it with
# set-based SQL (bench/seed.sh) and prints the seeding time of each kind of row and the database
# size per row. Then, at 1 k rows (a small set, measured, then deleted) and at SCALE rows, with
# the ratios:
#   - the listings of issue 20 (limit=100), LISTING_REQUESTS times each (500), p50/p99;
#   - the token checks (bench/checks.sh): cached GET and HEAD, `?tenant=` 10 levels down against
#     the plain check, cache misses (each token once, MISS_REQUESTS of them, their database
#     pages read first; and, shown only, as many whose pages were not) against pgbench's
#     primary-key select of the same tokens, example-backend and wazo_user logins; at SCALE,
#     misses with a full cache against misses with one that is not, and the RSS per cached token;
#   - a cold start on the full database: the time to an open port and to a first check;
#   - the plans (auto_explain, ANALYZE and BUFFERS) of every statement of each listing;
#   - the purge: PURGE_CYCLES (5) cycles of bench/purge.sh at the same SCALE.
# Not part of .ci/run, except a smoke run at SCALE=0.01 (see there).
#
#   SCALE=0.01 bench/scale.sh          # 100 k live tokens, 10 k users, 100 tenants...
#   SCALE=1 bench/scale.sh             # 10 M live tokens, 5 M expired, 1 M users, 10 k tenants
#                                      # 10 deep, 100 k policies (the issue's sizes)
#   SCALE_BUILD=debug bench/scale.sh   # the debug build (default: release)
#   TENANTS=10000 SCALE=0.1 ...        # another number of tenants (a multiple of 10)
#   LIVE_TOKENS=200000 EXPIRED_TOKENS=0 SCALE=1 ...
#                                      # other numbers of tokens (quicker; not the issue's sizes)
#   SCALE_PLANS=0 PURGE_CYCLES=0 ...   # without the plans, without the purge
#   CHECK_SECONDS=5 CHECK_REPEATS=3    # each wrk measurement's length, and how many of them
#                                      # (their medians are reported)
#   MISS_REQUESTS=50000                # the misses per measurement (default: 50,000, fewer
#                                      # when the live tokens are too few)
#   SCALE_DOCS=0 ...                   # without writing the results into docs/benchmarks.md
#   SCALE_SERVER=path SCALE_PLUGIN=path SCALE_WAZO_USER_PLUGIN=path
#                                      # another build's server and plugins (nothing built)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-0.1}
build=${SCALE_BUILD:-release}
port=${BENCH_PORT:-9598}

count() { # base count at SCALE=1 -> the count at $scale (at least 1)
    python3 -c 'import sys; print(max(1, int(round(float(sys.argv[1]) * float(sys.argv[2])))))' "$1" "$scale"
}
# LIVE_TOKENS and EXPIRED_TOKENS: other numbers of tokens (e.g. the other sizes of SCALE=1
# without waiting for 15 M tokens; the figures of such a run are not the issue's).
live_tokens=${LIVE_TOKENS:-$(count 10000000)}
expired_tokens=${EXPIRED_TOKENS:-$(count 5000000)}
users=$(count 1000000)
# Chains 10 deep under the top tenant: a multiple of 10.
tenants=$(( ( ${TENANTS:-$(count 10000)} + 9 ) / 10 * 10 ))
policies=$(count 100000)
# The cache is filled to the brim by the full-cache measurement: at most the default size.
cache_size=$(( live_tokens / 2 < 100000 ? live_tokens / 2 : 100000 ))
# The token checks use distinct live tokens: cold and warm misses, the cache's fill, then the
# misses with a full cache (bench/checks.sh). By default, 50,000 misses per measurement (2 s at
# SCALE=1), or fewer when the set has fewer live tokens for them.
default_misses=$(( (live_tokens - cache_size) / 3 ))
miss_requests=${MISS_REQUESTS:-$(( default_misses < 50000 ? default_misses : 50000 ))}
if (( miss_requests < 1 || live_tokens < 3 * miss_requests + cache_size )); then
    echo "scale: $live_tokens live tokens are too few for MISS_REQUESTS=$miss_requests" \
        "(3 x MISS_REQUESTS + $cache_size needed)" >&2
    exit 2
fi

scripts/install-deps.sh >/dev/null
# Everything printed is also kept, and written into docs/benchmarks.md at the end (between the
# "bench/scale.sh results" markers, by bench/scale_report.py) with the date, the machine, the
# SCALE and the commit.
report=$(mktemp /tmp/wazo-auth-scale-report.XXXXXX)
exec > >(tee "$report") 2>&1
case $build in
    release) flag=--release ;;
    debug) flag= ;;
    *) echo "scale: SCALE_BUILD must be release or debug" >&2; exit 2 ;;
esac
# SCALE_SERVER and SCALE_PLUGIN: another build's server and example-backend plugin (e.g. a
# copy of the previous commit's, for a before/after comparison); nothing is built then.
if [[ -z ${SCALE_SERVER:-} ]]; then
    echo "scale: building ($build)"
    cargo build $flag --locked -q -p wazo-auth -p wazo-user-backend -p example-backend
fi

source scripts/throwaway-server.sh
need_wrk
server_workdir scale "${SCALE_PLUGIN:-target/$build/libwazo_auth_example_backend.so}" \
    "${SCALE_WAZO_USER_PLUGIN:-target/$build/libwazo_auth_wazo_user.so}"
{
    server_config "$port"
    cat <<YAML
extra_config_files: $work/conf.d
enabled_backend_plugins: {wazo_user: true, example_static: true, ldap_user: false}
enabled_external_auth_plugins: {google: false, microsoft: false, mobile: false}
token_cleanup_interval: 0
token_cache_size: $cache_size
# The wazo_user logins measured make a few hundred sessions of one user.
max_user_concurrent_sessions: 1000000
plugin_config:
  example_static:
    users:
      - {login: admin, password: admin-secret, acl: ["auth.#"]}
YAML
} > "$work/config.yml"
base="http://127.0.0.1:$port"
server_start "$base/0.1/status" "${SCALE_SERVER:-target/$build/wazo-auth}" -c "$work/config.yml"

socket=$work/pg/socket
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_user_run() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_scale() { pg_user_run "$pgbin/psql" -qtA -v ON_ERROR_STOP=1 -h "$socket" -U postgres -d wazo_auth "$@"; }
source bench/seed.sh
# PostgreSQL as a production server would be set up, not the managed cluster's small defaults
# (shared_buffers 32 MB): a quarter of the memory for shared buffers (SCALE_SHARED_BUFFERS), and
# room for the WAL of the bulk seeding between checkpoints. The settings (postgresql.auto.conf)
# take effect at the restart of the server, which restarts its cluster.
psql_scale -c "ALTER SYSTEM SET shared_buffers = '${SCALE_SHARED_BUFFERS:-$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 4096 ))MB}'" \
    -c "ALTER SYSTEM SET max_wal_size = '8GB'" -c "ALTER SYSTEM SET checkpoint_timeout = '15min'" >/dev/null
kill -TERM "$server_pid"
wait "$server_pid" || true
server_start "$base/0.1/status" "${SCALE_SERVER:-target/$build/wazo-auth}" -c "$work/config.yml"
echo "scale: PostgreSQL shared_buffers $(psql_scale -c 'SHOW shared_buffers'), max_wal_size $(psql_scale -c 'SHOW max_wal_size')"
# The listings of issue 20, each with limit=100, from the top tenant (admin's token) unless
# said: `users_subtree` lists a chain of 10 tenants (Wazo-Tenant: its head).
listing_phase() { # prefix, label
    local p=$1 label=$2 user chain
    user=$(python3 -c 'import hashlib, sys, uuid; print(uuid.UUID(hashlib.md5(sys.argv[1].encode()).hexdigest()))' "$p-u7")
    chain=$(python3 -c 'import hashlib, sys, uuid; print(uuid.UUID(hashlib.md5(sys.argv[1].encode()).hexdigest()))' "$p-t0")
    echo "scale: listings at $label, $listing_requests requests each"
    python3 bench/listings.py "$base" "$admin_token" "$listing_requests" "$work/listings-$label.json" \
        "users_search=/0.1/users?recurse=true&limit=100&search=ser123" \
        "users_recurse=/0.1/users?recurse=true&limit=100" \
        "users_subtree=/0.1/users?recurse=true&limit=100|Wazo-Tenant: $chain" \
        "policies=/0.1/policies?recurse=true&limit=100" \
        "groups=/0.1/groups?recurse=true&limit=100" \
        "tenants=/0.1/tenants?limit=100" \
        "sessions=/0.1/sessions?recurse=true&limit=100" \
        "tokens=/0.1/tokens?recurse=true&limit=100" \
        "user_policies=/0.1/users/$user/policies?limit=100"
}

# 500: each p99 is then above 5 answers, not 2 (of 200), and moves less between runs.
listing_requests=${LISTING_REQUESTS:-500}
admin_token=$(curl -sf -u admin:admin-secret -H 'Content-Type: application/json' \
    -d '{"backend": "example_static", "expiration": 36000}' "$base/0.1/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
source bench/checks.sh

# 1 k rows: a small set (1 k users, 10 tenants...), measured, then deleted (its tenants cascade).
seed_set small 10 1000 100 100 10000 5000
seed "VACUUM ANALYZE (small)" "VACUUM ANALYZE"
listing_phase small small
checks_phase small small 10000
seed "deleting the small set" "
    DELETE FROM auth_token WHERE session_uuid IN
        (SELECT uuid FROM auth_session WHERE tenant_uuid IN
            (SELECT uuid FROM auth_tenant WHERE name LIKE 'small-t%'));
    DELETE FROM auth_tenant WHERE name LIKE 'small-t%'"

echo "scale: SCALE=$scale: $tenants tenants, $users users, $policies policies," \
    "$live_tokens live and $expired_tokens expired tokens"
seed_set scale "$tenants" "$users" "$policies" "$policies" "$live_tokens" "$expired_tokens"
seed "VACUUM ANALYZE" "VACUUM ANALYZE"
# The seeding's pages written out before anything is measured (at SCALE=1, 14 GB of them were
# still being written while the first measurements ran, in session 12's run).
seed "CHECKPOINT" "CHECKPOINT"

psql_scale -F '|' <<SQL | while IFS='|' read -r what bytes; do printf '%-26s %12s bytes\n' "$what" "$bytes"; done
SELECT 'database', pg_database_size('wazo_auth');
SELECT 'per token (with session)',
       (pg_total_relation_size('auth_token') + pg_total_relation_size('auth_session'))
       / greatest(1, $live_tokens + $expired_tokens);
SELECT 'per user', pg_total_relation_size('auth_user') / greatest(1, $users);
SQL
listing_phase scale scale
python3 - "$work/listings-small.json" "$work/listings-scale.json" <<'PY'
import json, sys
small, big = (json.load(open(f)) for f in sys.argv[1:3])
print(f"{'listing':<16} {'p50 1k':>8} {'p99 1k':>8} {'p50 SCALE':>10} {'p99 SCALE':>10} {'p99 ratio':>9}")
for name, (p50, p99) in big.items():
    s50, s99 = small[name]
    print(f"{name:<16} {s50:8.2f} {s99:8.2f} {p50:10.2f} {p99:10.2f} {p99 / s99:9.2f}")
PY
checks_phase scale scale "$live_tokens"
# The cold start restarts the server: the cache is then empty, and the fill below measures the
# RSS of a cache filled from empty (the misses above filled it already: 2 x 50,000 by default).
cold_start scale
# After the tokens of the misses (warm and cold) measured by checks_phase.
checks_fill scale scale $((2 * miss_requests)) "$cache_size"
checks_compare small scale
# The plans of every statement of each listing at SCALE (auto_explain, ANALYZE and BUFFERS), from
# a restarted server whose new connections load auto_explain. SCALE_PLANS=0 skips them.
if [[ ${SCALE_PLANS:-1} != 0 ]]; then
    # LOAD first: ALTER SYSTEM refuses the settings of a module that is not loaded.
    psql_scale -c "LOAD 'auto_explain'" \
        -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
        -c "ALTER SYSTEM SET auto_explain.log_min_duration = 0" \
        -c "ALTER SYSTEM SET auto_explain.log_analyze = on" \
        -c "ALTER SYSTEM SET auto_explain.log_buffers = on" \
        -c "ALTER SYSTEM SET auto_explain.log_timing = on" \
        -c "SELECT pg_reload_conf()" >/dev/null
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_start "$base/0.1/status" "${SCALE_SERVER:-target/$build/wazo-auth}" -c "$work/config.yml"
    pglog=$work/pg/log/postgres.log
    user=$(python3 -c 'import hashlib, sys, uuid; print(uuid.UUID(hashlib.md5(sys.argv[1].encode()).hexdigest()))' scale-u7)
    for listing in "users?recurse=true&limit=100&search=ser123" "users?recurse=true&limit=100" \
        "policies?recurse=true&limit=100" "groups?recurse=true&limit=100" "tenants?limit=100" \
        "sessions?recurse=true&limit=100" "tokens?recurse=true&limit=100" \
        "users/$user/policies?limit=100"; do
        # Twice: the second request's plans (warm caches) are printed.
        curl -sf -o /dev/null -H "X-Auth-Token: $admin_token" "$base/0.1/$listing"
        sleep 0.5
        from=$(stat -c %s "$pglog")
        curl -sf -o /dev/null -H "X-Auth-Token: $admin_token" "$base/0.1/$listing"
        sleep 0.5
        echo "=== plans of GET /0.1/$listing"
        tail -c +"$((from + 1))" "$pglog" | sed -n '/duration: .* plan:/,$p' \
            | grep -v 'statement: \(BEGIN\|COMMIT\|START\|SET\)'
    done
fi

# The purge, on a server and database of its own with the bus up (bench/purge.sh, same SCALE):
# PURGE_CYCLES create-and-purge cycles (5; 0 skips them).
if [[ ${PURGE_CYCLES:-5} != 0 ]]; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=
    SCALE=$scale SCALE_BUILD=$build CYCLES=${PURGE_CYCLES:-5} bench/purge.sh
fi

# The issue's target for the whole run: 50 minutes at SCALE=1 on a 2-core machine.
echo "scale: the whole run took $((SECONDS / 60)) min $((SECONDS % 60)) s"
sleep 1 # tee writes what is still in its pipe
if [[ ${SCALE_DOCS:-1} != 0 ]]; then
    python3 bench/scale_report.py "$report" "$scale" "$build"
fi
rm -f "$report"
