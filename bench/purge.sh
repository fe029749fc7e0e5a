#!/usr/bin/env bash
# The purge of expired tokens at scale (issue 20): a server with the bus up (private RabbitMQ),
# $live live tokens, then CYCLES cycles of "seed $expired expired tokens, let the server's purge
# remove them". Each cycle prints:
#   - the purge time and rate (sessions per second), from the seeding's commit until no expired
#     token is left;
#   - the longest writing transaction seen while it ran (one with a transaction id: it holds row
#     locks, and holds back vacuum), and its statement, sampled every 10 ms inside PostgreSQL.
#     The cleanup turn's own transaction (core/src/cleanup.rs, the holder of an advisory lock)
#     writes one row at its very end (when it last ran) and is not counted;
#   - the token-check p50/p99 while it ran (wrk, GET of a cached token), against the same before
#     the cycles;
#   - that every purged session's auth_session_deleted event was published (the bus counter);
#   - the database size once the outbox is empty, and the last cycle's against the first.
#
#   SCALE=0.1 bench/purge.sh        # 1 M live tokens, 500 k expired per cycle (default)
#   SCALE=1 bench/purge.sh          # 10 M live, 5 M expired per cycle (the issue's sizes)
#   CYCLES=5 SCALE_BUILD=debug bench/purge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-0.1}
cycles=${CYCLES:-5}
build=${SCALE_BUILD:-release}
port=${BENCH_PORT:-9597}
count() { python3 -c 'import sys; print(max(1, int(round(float(sys.argv[1]) * float(sys.argv[2])))))' "$1" "$scale"; }
live=$(count 10000000)
expired=$(count 5000000)
tenants=100
users=1000

scripts/install-deps.sh >/dev/null
case $build in
    release) flag=--release ;;
    debug) flag= ;;
    *) echo "purge: SCALE_BUILD must be release or debug" >&2; exit 2 ;;
esac
echo "purge: building ($build)"
cargo build $flag --locked -q -p wazo-auth -p wazo-user-backend

source scripts/throwaway-server.sh
need_wrk
source bench/seed.sh
server_workdir purge "target/$build/libwazo_auth_wazo_user.so"
broker_start
{
    server_config "$port"
    cat <<YAML
amqp: {uri: "$broker_uri"}
extra_config_files: $work/conf.d
enabled_backend_plugins: {wazo_user: true, ldap_user: false}
enabled_external_auth_plugins: {google: false, microsoft: false, mobile: false}
bootstrap_user_on_startup: true
bootstrap_user_username: purge
bootstrap_user_password: purge-password
token_cleanup_interval: 1
YAML
} > "$work/config.yml"
base="http://127.0.0.1:$port"
server_start "$base/0.1/status" "target/$build/wazo-auth" -c "$work/config.yml"

admin=$(curl -sf -u purge:purge-password -H 'Content-Type: application/json' \
    -d '{"expiration": 36000}' "$base/0.1/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
published() {
    curl -sf -H "X-Auth-Token: $admin" "$base/0.1/metrics" \
        | awk '$1 == "wazo_auth_bus_published_total" {print $2}' | cut -d. -f1
}

echo "purge: SCALE=$scale: $live live tokens, $expired expired per cycle, $cycles cycles"
seed_set purge "$tenants" "$users" 10 10 "$live" 0
seed "VACUUM ANALYZE" "VACUUM ANALYZE"
check_token=$(seed_token_id purge 1)

# wrk's p50 and p99 in ms.
check_latency() { # seconds
    wrk -t1 -c8 -d"${1}s" --latency "$base/0.1/token/$check_token" 2>&1 | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(p):
    m = re.search(r"^\s*" + p + r"%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rate = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
print("%.2f %.2f %.0f" % (ms("50"), ms("99"), float(rate)))'
}
curl -sf -o /dev/null "$base/0.1/token/$check_token" || { echo "purge: the check token is refused" >&2; exit 1; }
read -r base_p50 base_p99 base_rate < <(check_latency "${CHECK_SECONDS:-10}")
printf 'checks, no purge:       p50 %6.2f ms  p99 %6.2f ms  %6s/s\n' "$base_p50" "$base_p99" "$base_rate"

# Inside PostgreSQL, every 10 ms until no expired token is left: the longest-running writing
# transaction of the server's connections, and its statement. Each sample is a transaction of its
# own (psql's \watch): one long-running watcher would hold back the xmin horizon, and then
# neither vacuum nor the purge's own index scans could skip the rows already purged (every batch
# read them all again: a purge of 500 k tokens took 475 s instead of 80).
# Prints "watch|SECONDS|LONGEST_MS|STATEMENT".
watch_purge() {
    local samples=$work/watch-samples.txt sampler started ended
    printf '%s\n' "SELECT round(extract(epoch FROM clock_timestamp() - xact_start) * 1000),
               application_name || ' ' || state || ': '
               || left(regexp_replace(query, '\s+', ' ', 'g'), 90)
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND backend_type = 'client backend' AND xact_start IS NOT NULL
              AND state <> 'idle' AND backend_xid IS NOT NULL
              AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)
        ORDER BY xact_start LIMIT 1 \watch 0.01" > "$work/watch.sql"
    chmod 644 "$work/watch.sql"
    started=$(date +%s.%N)
    psql_seed -F '|' -f "$work/watch.sql" > "$samples" 2>/dev/null &
    sampler=$!
    until [[ $(psql_seed -c "SELECT NOT EXISTS (SELECT 1 FROM auth_token
                                                WHERE expire_t < extract(epoch FROM now()))") == t ]]; do
        sleep 0.2
    done
    ended=$(date +%s.%N)
    # The sampler is a subshell running psql (through runuser as root): its children first.
    pkill -TERM -P "$sampler" 2>/dev/null || true
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    awk -F '|' -v seconds="$(calc "$ended - $started")" '
        $1 + 0 > longest { longest = $1 + 0; statement = $2 }
        END { printf "watch|%s|%d|%s\n", seconds, longest, statement }' "$samples"
}

sizes=()
for cycle in $(seq 1 "$cycles"); do
    before=$(published)
    seed_tokens purge "$tenants" "$users" "expired tokens, cycle $cycle" "$expired" \
        $((live + cycle * expired)) \
        "extract(epoch FROM now()) - 60" >/dev/null
    watch_purge > "$work/watch.txt" &
    watcher=$!
    read -r p50 p99 rate < <(check_latency "${CHECK_SECONDS:-10}")
    wait "$watcher"
    IFS='|' read -r _ seconds longest query < <(grep -o 'watch|.*' "$work/watch.txt")
    # Every purged session's event published (the login of the admin is not in the cycle).
    for _ in $(seq 1 600); do
        [[ $(psql_seed -c "SELECT count(*) FROM auth_event_outbox") == 0 ]] && break
        sleep 0.5
    done
    sent=$(( $(published) - before ))
    size=$(psql_seed -c "SELECT pg_database_size(current_database())")
    sizes+=("$size")
    printf 'cycle %d: purged %d in %6.1f s (%7.0f/s), longest transaction %5s ms (%s), checks p50 %6.2f ms p99 %6.2f ms (%4.2fx) %6s/s, events published %d, database %s MB\n' \
        "$cycle" "$expired" "$seconds" "$(calc "$expired / $seconds")" "$longest" "$query" \
        "$p50" "$p99" "$(calc "$p99 / $base_p99")" "$rate" "$sent" $((size / 1048576))
    if (( sent < expired )); then
        echo "purge: cycle $cycle published $sent events for $expired purged sessions" >&2
        exit 1
    fi
done
psql_seed -F ' ' -c "SELECT relname, pg_total_relation_size(relid) / 1048576 || ' MB', n_dead_tup,
                            last_autovacuum IS NOT NULL
                     FROM pg_stat_user_tables
                     WHERE relname IN ('auth_token', 'auth_session', 'auth_event_outbox')
                     ORDER BY relname" | sed 's/^/table /'
printf 'database size: cycle 1 %d MB, cycle %d %d MB (%+.1f %%)\n' $((sizes[0] / 1048576)) "$cycles" \
    $((sizes[-1] / 1048576)) "$(calc "(${sizes[-1]} - ${sizes[0]}) * 100 / ${sizes[0]}")"
