#!/usr/bin/env bash
# The wazo-auth benchmark: builds in release mode, starts the server with its own PostgreSQL,
# and measures in one run, at 16 concurrent connections, token checks, logins and their
# ceilings, then prints requests/s, p50, p99 and the ratio to each ceiling. Exits non-zero when
# a ratio misses its target (see docs/benchmarks.md). Needs wrk (installed if missing, as root).
# The database holds 10 000 tenants (a hundred under the top tenant, 99 under each of those).
#
#   bench/run.sh            # BENCH_DURATION=8 seconds per measurement by default
#   BENCH_BUS=down bench/run.sh   # the bus enabled, its broker unreachable (default: up, a
#                                 # private RabbitMQ broker receiving every event)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration=${BENCH_DURATION:-8}
conns=16
port=${BENCH_PORT:-9599}

scripts/install-deps.sh >/dev/null
echo "bench: building (release)"
cargo build --release --locked -q -p wazo-auth -p wazo-user-backend -p example-backend
cargo bench --locked -q -p wazo-auth --bench hash_rate --no-run 2>/dev/null

source scripts/throwaway-server.sh
need_wrk
# The tenants created below are named after md5 sums, as PostgreSQL's md5(text)::uuid.
md5_uuid() { python3 -c 'import hashlib, sys, uuid; print(uuid.UUID(hashlib.md5(sys.argv[1].encode()).hexdigest()))' "$1"; }
bob_tenant=$(md5_uuid bench-r0)
# A tenant under bob's: the `?tenant=` of bob's token checks.
bob_subtenant=$(md5_uuid bench-c98)
server_workdir bench target/release/libwazo_auth_wazo_user.so target/release/libwazo_auth_example_backend.so
case ${BENCH_BUS:-up} in
    up)
        echo "bench: starting a private RabbitMQ broker (the bus is up)"
        broker_start
        amqp_uri=$broker_uri
        ;;
    down)
        echo "bench: the bus enabled, its broker unreachable"
        amqp_uri="amqp://guest:guest@127.0.0.1:$(free_tcp_port)/"
        ;;
    *)
        echo "bench: BENCH_BUS must be up or down" >&2
        exit 2
        ;;
esac
{
    server_config "$port"
    echo "amqp: {uri: \"$amqp_uri\"}"
    cat <<YAML
extra_config_files: $work/conf.d
benchmark_route: true
enabled_backend_plugins: {wazo_user: true, example_static: true, ldap_user: false}
enabled_external_auth_plugins: {google: false, microsoft: false, mobile: false}
bootstrap_user_on_startup: true
bootstrap_user_username: bench
bootstrap_user_password: bench-password
token_cleanup_interval: 0
plugin_config:
  example_static:
    users:
      - {login: alice, password: alice-secret, acl: ["confd.#", "auth.users.me.#"]}
      # A user of one of the 100 middle tenants (the token of a Wazo tenant's service).
      - {login: bob, password: bob-secret, acl: ["confd.#"], tenant_uuid: $bob_tenant}
      # A user of the top tenant who lists the users of every tenant.
      - {login: carol, password: carol-secret, acl: ["auth.users.read"]}
YAML
} > "$work/config.yml"
base="http://127.0.0.1:$port"
server_start "$base/0.1/_bench/ceiling" target/release/wazo-auth -c "$work/config.yml"
sleep 2
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
rss_idle=$(rss)

socket=$work/pg/socket
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_user_run() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_bench() { pg_user_run "$pgbin/psql" -q -v ON_ERROR_STOP=1 -h "$socket" -U postgres -d wazo_auth "$@"; }
echo "bench: creating 10 000 tenants"
psql_bench >/dev/null <<'SQL'
INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
SELECT md5('bench-r' || i)::uuid::text, 'bench-r' || i, 'r' || i,
       (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
FROM generate_series(0, 99) i;
INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
SELECT md5('bench-c' || i)::uuid::text, 'bench-c' || i, 'c' || i,
       md5('bench-r' || (i / 99))::uuid::text
FROM generate_series(0, 9899) i;
SQL

token=$(curl -sf -u alice:alice-secret -H 'Content-Type: application/json' \
    -d '{"backend": "example_static", "expiration": 3600}' "$base/0.1/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
unknown=$(python3 -c 'import uuid; print(uuid.uuid4())')
login_token() { # login, password
    curl -sf -u "$1:$2" -H 'Content-Type: application/json' \
        -d '{"backend": "example_static", "expiration": 3600}' "$base/0.1/token" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])'
}
tenant_token=$(login_token bob bob-secret)
lister_token=$(login_token carol carol-secret)
if [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/0.1/token/$tenant_token?tenant=$bob_subtenant") != 200 ]]; then
    echo "bench: the ?tenant= check of bob's token is not granted" >&2
    exit 1
fi
settle_database() {
    echo "bench: settling the database (VACUUM ANALYZE)"
    pg_user_run "$pgbin/psql" -q -h "$socket" -U postgres -d wazo_auth -c "VACUUM ANALYZE" >/dev/null
}

results="$work/results.txt"
: > "$results"
measure() { # name, seconds, wrk args...
    local name=$1 seconds=$2; shift 2
    echo "bench: $name"
    # One second of the same load first, not counted (connections, caches, allocator arenas).
    wrk -t2 -c"$conns" -d1s "$@" > /dev/null 2>&1
    wrk -t2 -c"$conns" -d"${seconds}s" --latency "$@" > "$work/$name.wrk" 2>&1
    python3 - "$name" "$work/$name.wrk" >> "$results" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
text = open(path).read()
def lat(label):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors:.*", text)
print(f"{name} {rps:.1f} {lat('50'):.3f} {lat('99'):.3f} {non2xx.group(1) if non2xx else 0} {1 if errors else 0}")
PY
}

measure ceiling "$duration" "$base/0.1/_bench/ceiling"
measure get_valid "$duration" "$base/0.1/token/$token"
# The check with `?tenant=` beside the plain check of the same token (same body), each twice,
# interleaved, so that both see the same machine; compared on their sums.
measure get_plain_user "$duration" "$base/0.1/token/$tenant_token"
measure get_tenant "$duration" "$base/0.1/token/$tenant_token?tenant=$bob_subtenant"
measure get_plain_user_2 "$duration" "$base/0.1/token/$tenant_token"
measure get_tenant_2 "$duration" "$base/0.1/token/$tenant_token?tenant=$bob_subtenant"
measure head_scope_match "$duration" -s bench/head.lua "$base/0.1/token/$token?scope=confd.users.read"
measure head_scope_nomatch "$duration" -s bench/head.lua "$base/0.1/token/$token?scope=auth.tenants.read"
measure get_unknown "$duration" "$base/0.1/token/$unknown"
# A listing scoped to the top tenant and its 10 000 descendants (reported, no target).
measure list_users_recurse "$duration" -H "X-Auth-Token: $lister_token" "$base/0.1/users?recurse=true"
# Logins write. A fresh cluster creates (zero-fills) its WAL files as it goes, which slows
# whatever writes first; so a discarded pgbench run first writes enough WAL for the rest to
# reuse. Then each write measurement starts from a settled database (vacuumed and analysed), so
# none leaves its vacuum work to the next; the ceiling runs last, on the largest table.
cp bench/insert_token.sql "$work/insert_token.sql"
chmod 644 "$work/insert_token.sql"
pgbench() { # seconds
    pg_user_run "$pgbin/pgbench" -n -h "$socket" -U postgres -M prepared -c "$conns" -j 2 -T "$1" \
        -f "$work/insert_token.sql" wazo_auth 2>/dev/null | awk '/^tps/ {print $3; exit}'
}
echo "bench: warming the database's WAL (pgbench, not counted)"
pgbench 12 >/dev/null
settle_database
BENCH_BASIC=$(printf 'alice:alice-secret' | base64) BENCH_BODY='{"backend": "example_static", "expiration": 600}' \
    measure login_example "$duration" -s bench/login.lua "$base/0.1/token"
settle_database
# The hash ceiling brackets the wazo_user logins: half of it just before, half just after (the
# server idle both times), so that a change of this (virtual) machine's speed during the run
# weighs on both sides of the ratio alike.
hash_ceiling() { # seconds
    cargo bench --locked -q -p wazo-auth --bench hash_rate -- "$1" 2>/dev/null | awk '/^hash_rate/ {print $2}'
}
half=$(python3 -c "print($duration / 2)")
echo "bench: hash ceiling (first half)"
hash_before=$(hash_ceiling "$half")
BENCH_BASIC=$(printf 'bench:bench-password' | base64) BENCH_BODY='{"expiration": 600}' \
    measure login_wazo_user "$((duration * 2))" -s bench/login.lua "$base/0.1/token"
rss_end=$(rss)
sleep 1 # hashes still under way when wrk stopped (at most one per core)
echo "bench: hash ceiling (second half)"
hash_after=$(hash_ceiling "$half")
hash_rate=$(python3 -c "print(($hash_before + $hash_after) / 2)")
echo "bench: hash ceiling $hash_before before, $hash_after after the wazo_user logins"
echo "bench: database ceiling (pgbench)"
settle_database
db_tps=$(pgbench "$duration")
sleep 2 # the publisher's last batches
outbox_left=$(pg_user_run "$pgbin/psql" -qtA -h "$socket" -U postgres -d wazo_auth \
    -c "SELECT (SELECT count(*) FROM auth_event_outbox) + (SELECT count(*) FROM auth_event_outbox_batch)")
echo "bench: bus ${BENCH_BUS:-up}: $outbox_left events left in the outbox"


python3 - "$results" "$db_tps" "$hash_rate" "$rss_idle" "$rss_end" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, non2xx, errs = line.split()
    rows[name] = (float(rps), float(p50), float(p99), int(non2xx))
# The interleaved halves of one measurement: mean rate, worst latencies.
for name in ("get_plain_user", "get_tenant"):
    a, b = rows[name], rows.pop(name + "_2")
    rows[name] = ((a[0] + b[0]) / 2, max(a[1], b[1]), max(a[2], b[2]), a[3] + b[3])
db_tps, hash_rate = float(sys.argv[2]), float(sys.argv[3])
rss_idle, rss_end = int(sys.argv[4]) / 1024, int(sys.argv[5]) / 1024
ceiling = rows["ceiling"][0]
checks = [
    # name, ceiling name, ceiling value, min ratio, max p99 (ms), expected non-2xx
    ("get_valid", "http", ceiling, 0.50, 5.0, False),
    # A user token's plain check (a larger body than alice's).
    ("get_plain_user", "http", ceiling, 0.50, 5.0, False),
    # The check with `?tenant=` (a subtenant of the token's tenant) against the plain check of
    # the same token, measured interleaved with it (see above).
    ("get_tenant", "plain", rows["get_plain_user"][0], 0.90, 5.0, False),
    ("head_scope_match", "http", ceiling, 0.50, 5.0, False),
    ("head_scope_nomatch", "http", ceiling, 0.50, 5.0, True),
    ("get_unknown", "http", ceiling, 0.40, None, True),
    ("login_example", "pgbench", db_tps, 0.60, None, False),
    ("login_wazo_user", "pbkdf2", hash_rate, 0.95, None, False),
]
ok = True
print(f"{'measurement':<20}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}  {'ceiling':<8}{'ceil/s':>10}{'ratio':>8}  target")
rps, p50, p99, _ = rows["ceiling"]
print(f"{'ceiling':<20}{rps:>10.1f}{p50:>9.3f}{p99:>9.3f}  {'-':<8}{'-':>10}{'-':>8}")
for name, cname, cval, target, max_p99, non2xx_expected in checks:
    rps, p50, p99, non2xx = rows[name]
    ratio = rps / cval if cval else 0.0
    good = ratio >= target and (max_p99 is None or p99 < max_p99)
    if not non2xx_expected and non2xx:
        good = False
    ok &= good
    goal = f">= {target:.0%}" + (f", p99 < {max_p99:g} ms" if max_p99 else "")
    print(f"{name:<20}{rps:>10.1f}{p50:>9.3f}{p99:>9.3f}  {cname:<8}{cval:>10.1f}{ratio:>8.1%}  {goal} {'ok' if good else 'MISSED'}")
rps, p50, p99, non2xx = rows["list_users_recurse"]
print(f"{'list_users_recurse':<20}{rps:>10.1f}{p50:>9.3f}{p99:>9.3f}  {'-':<8}{'-':>10}{'-':>8}  (reported){' non-2xx!' if non2xx else ''}")
mem_ok = rss_idle < 30 and rss_end < 80
ok &= mem_ok
print(f"resident memory: idle {rss_idle:.1f} MB (< 30), after load {rss_end:.1f} MB (< 80) {'ok' if mem_ok else 'MISSED'}")
sys.exit(0 if ok else 1)
PY
