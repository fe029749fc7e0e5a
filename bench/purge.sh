#!/usr/bin/env bash
# The purge of expired tokens at scale (issue 20): a server with the bus up (private RabbitMQ),
# $live live tokens, then CYCLES cycles of "seed $expired expired tokens (their expiries spread
# over an hour), let the server's purge remove them". The purge waits while a cycle's tokens are seeded (the script holds the cleanup
# turn), and starts once the seeding's pages are written and vacuumed: what is measured is a
# backlog's purge, not the seeding's aftermath. Each cycle prints:
#   - the purge time and rate (sessions per second), from its start until the server's
#     wazo_auth_purged_total counts them all (then no expired token may be left);
#   - the purge's batches (the server's wazo_auth_purge_batch_duration_seconds histogram): each
#     is one transaction holding its rows' locks until it commits; how many took over 100 ms;
#   - with PURGE_SAMPLER=1, also the longest writing transaction of any server connection
#     (one with a transaction id: it holds row locks, and holds back vacuum), and its statement,
#     sampled every 10 ms inside PostgreSQL (the cleanup turn's own transaction, which writes one
#     row at its very end, is not counted). The sampler costs PostgreSQL a tenth of a core and
#     moves the checks' p99 by itself, so it is off by default; when on, it also runs during the
#     measurement without purge;
#   - the token-check p50/p99 while it ran (wrk, GET of a cached token, CHECK_SECONDS from the
#     purge's start), against the same just before the purge (the cycle's tokens seeded, the
#     purge held back): two measurements seconds apart, so that the machine's drift between
#     cycles (the p99 of a full-rate check moves 2x from one run to the next) stays out of the
#     ratio;
#   - with PURGE_WRITES pairs per second (50 by default; 0: none), writes through the server in
#     each check window (bench/purge_writer.py: a login by refresh token and its logout, on the
#     tables the purge deletes from), their p50/p99, and the waits for a lock that lasted over
#     100 ms during the purge, from PostgreSQL's own log (log_lock_waits, deadlock_timeout
#     100 ms): a purge batch holds the locks of the rows it deletes until it commits, and this is
#     whether any other statement had to wait for them that long;
#   - the CPU time taken meanwhile by the server, PostgreSQL, the broker and the rest (wrk);
#   - that every purged session's auth_session_deleted event was published (the bus counter);
#   - the database size once the outbox is empty, and the last cycle's against the first;
#   - with PURGE_SCHED=1, a scheduler trace of each of the two check windows (see sched_start):
#     who ran on the checks' cores while they waited.
# At the end, the lock-wait count checks itself: a wait of about 0.3 s made on purpose must be
# counted, or the script fails.
#
#   SCALE=0.1 bench/purge.sh        # 1 M live tokens, 500 k expired per cycle (default)
#   SCALE=1 bench/purge.sh          # 10 M live, 5 M expired per cycle (the issue's sizes)
#   CYCLES=5 SCALE_BUILD=debug bench/purge.sh
#   PURGE_MAX_RATE=2000 bench/purge.sh   # the server's token_cleanup_max_rate (default 0, none)
#   PURGE_SETTLE=0 bench/purge.sh   # seed each cycle at once, without waiting for autovacuum
#   PURGE_SETTLE=autovacuum bench/purge.sh   # wait for autovacuum only (no VACUUM; see settle)
#   PURGE_PIN=1 bench/purge.sh      # PostgreSQL and the broker on a core of their own (see pin_cpus)
#   PURGE_WRITES=0 bench/purge.sh   # no writes during the check windows
#   PURGE_SERVER=path bench/purge.sh   # another build's server (nothing built but the plugin)
#   PURGE_SCHED=1 bench/purge.sh    # scheduler traces of the check windows (needs perf, as root)
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
if [[ ${PURGE_SCHED:-0} != 0 ]]; then
    if ! perf sched record -a -o /dev/null -- true >/dev/null 2>&1; then
        echo "purge: PURGE_SCHED=1 needs perf with its sched tracepoints (Debian: linux-perf; as root)" >&2
        exit 2
    fi
    if (( ${CHECK_SECONDS:-10} < 4 )); then
        echo "purge: PURGE_SCHED=1 needs check windows of 4 s or more (CHECK_SECONDS)" >&2
        exit 2
    fi
fi
case $build in
    release) flag=--release ;;
    debug) flag= ;;
    *) echo "purge: SCALE_BUILD must be release or debug" >&2; exit 2 ;;
esac
echo "purge: building ($build)"
# PURGE_SERVER: another build's server (e.g. a copy of the previous commit's, for a before/after
# comparison); the plugin is still this tree's.
server_bin=${PURGE_SERVER:-target/$build/wazo-auth}
if [[ -n ${PURGE_SERVER:-} ]]; then
    cargo build $flag --locked -q -p wazo-user-backend
else
    cargo build $flag --locked -q -p wazo-auth -p wazo-user-backend
fi

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
token_cleanup_max_rate: ${PURGE_MAX_RATE:-0}
YAML
} > "$work/config.yml"
base="http://127.0.0.1:$port"
server_start "$base/0.1/status" "$server_bin" -c "$work/config.yml"
# PostgreSQL as bench/scale.sh sets it up (a production server's, not the managed cluster's
# small defaults: shared_buffers 32 MB): a quarter of the memory for shared buffers, room for the
# WAL of the seeding between checkpoints. With PURGE_STATEMENTS=1, pg_stat_statements too: each
# cycle then prints the statements that took PostgreSQL the most time during its purge. The
# settings take effect at the restart of the server, which restarts its cluster.
psql_seed -c "ALTER SYSTEM SET shared_buffers = '${SCALE_SHARED_BUFFERS:-$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 4096 ))MB}'" \
    -c "ALTER SYSTEM SET max_wal_size = '8GB'" -c "ALTER SYSTEM SET checkpoint_timeout = '15min'" >/dev/null
if [[ ${PURGE_STATEMENTS:-0} != 0 ]]; then
    psql_seed -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
fi
kill -TERM "$server_pid"
wait "$server_pid" || true
server_start "$base/0.1/status" "$server_bin" -c "$work/config.yml"
if [[ ${PURGE_STATEMENTS:-0} != 0 ]]; then
    # Its settings exist once it is loaded; statements run by triggers (the foreign keys'
    # cascades among them) are counted too.
    psql_seed -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
        -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" \
        -c "ALTER SYSTEM SET pg_stat_statements.track_planning = on" \
        -c "SELECT pg_reload_conf()" >/dev/null
fi
echo "purge: PostgreSQL shared_buffers $(psql_seed -c 'SHOW shared_buffers'), max_wal_size $(psql_seed -c 'SHOW max_wal_size')"

admin=$(curl -sf -u purge:purge-password -H 'Content-Type: application/json' \
    -d '{"expiration": 36000}' "$base/0.1/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')

# PostgreSQL logs every wait for a lock that lasts longer than deadlock_timeout (100 ms here,
# 1 s by default): "process N still waiting for ShareLock on transaction M after 100.1 ms".
psql_seed -c "ALTER SYSTEM SET log_lock_waits = on" -c "ALTER SYSTEM SET deadlock_timeout = '100ms'" \
    -c "SELECT pg_reload_conf()" >/dev/null
pg_log=$(dirname "$(find "$work/pg" -maxdepth 2 -name postmaster.pid | head -1)")/log/postgres.log
log_size() { stat -c %s "$pg_log"; }
# The waits logged between two sizes of the log: "N[ (the first: LINE)]".
lock_waits_between() { # from, to
    local text n
    text=$(tail -c +$(( $1 + 1 )) "$pg_log" | head -c $(( $2 - $1 )) | grep 'still waiting for' || true)
    n=$(grep -c . <<< "$text" || true)
    if (( n > 0 )); then
        echo "$n (the first: $(head -1 <<< "$text" | sed 's/^.*LOG: *//'))"
    else
        echo 0
    fi
}

# The writer (PURGE_WRITES pairs per second in each check window): its refresh token, from one
# password login.
writes=${PURGE_WRITES:-50}
if ! [[ $writes =~ ^[0-9]+$ ]]; then
    echo "purge: PURGE_WRITES must be a whole number of pairs per second (0: none)" >&2
    exit 2
fi
writer_refresh=
if (( writes > 0 )); then
    writer_refresh=$(curl -sf -u purge:purge-password -H 'Content-Type: application/json' \
        -d '{"access_type": "offline", "client_id": "purge-writer"}' "$base/0.1/token" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["refresh_token"])')
fi
writer_start() { # seconds
    writer=
    if (( writes > 0 )); then
        "${aux_pin[@]}" python3 bench/purge_writer.py "$base" "$writer_refresh" purge-writer "$writes" "$1" \
            > "$work/writer.txt" 2> "$work/writer.err" &
        writer=$!
    fi
}
# Waits for the writer; its line into $writer_line (empty without writes) and its pairs into
# $writer_pairs (each wrote two events: the session's creation and deletion), or fails the run on
# a refused write. (Not in a $(...): the writer is a child of this shell.)
writer_report() { # label
    writer_line=
    writer_pairs=0
    [[ -n $writer ]] || return 0
    if ! wait "$writer"; then
        echo "purge: writes refused $1:" >&2
        cat "$work/writer.txt" "$work/writer.err" >&2
        exit 1
    fi
    writer_line=$(python3 -c '
import sys
f = sys.argv[2].split()
v = dict(zip(f[0::2], f[1::2]))
print("  writes %s (%s login/logout pairs/s asked): %s pairs, %s/s, login p50 %s p99 %s ms (p99 from when due %s ms), logout p50 %s p99 %s ms" % (
    sys.argv[1], sys.argv[3], v["pairs"], v["rate"], v["login_p50"], v["login_p99"], v["due_p99"], v["logout_p50"], v["logout_p99"]))' \
        "$1" "$(cat "$work/writer.txt")" "$writes")
    writer_pairs=$(awk '{print $2}' "$work/writer.txt")
}
published() {
    curl -sf -H "X-Auth-Token: $admin" "$base/0.1/metrics" \
        | awk '$1 == "wazo_auth_bus_published_total" {print $2}' | cut -d. -f1
}
# The server's histogram of its purge batches' durations (wazo_auth_purge_batch_duration_seconds:
# each batch is one transaction, holding its rows' locks until it commits), as "le=count ..."
# (cumulative counts by upper bound, +Inf last).
batch_histogram() {
    curl -sf -H "X-Auth-Token: $admin" "$base/0.1/metrics" | python3 -c '
import re, sys
buckets = {}
for line in sys.stdin:
    m = re.match(r"wazo_auth_purge_batch_duration_seconds_bucket\{le=\"([^\"]+)\"\} (\S+)", line)
    if m:
        buckets[m.group(1)] = int(float(m.group(2)))
print(" ".join("%s=%d" % kv for kv in sorted(buckets.items(), key=lambda kv: float(kv[0]))) or "none")'
}
# The batches between two readings of batch_histogram: "N batches, M over 100 ms, the longest
# under S s".
batches_between() { # before, after
    python3 -c '
import sys
def parse(s):
    return {} if s == "none" else {float(k): int(v) for k, v in (kv.split("=") for kv in s.split())}
a, b = parse(sys.argv[1]), parse(sys.argv[2])
d = {le: n - a.get(le, 0) for le, n in b.items()}
total = d.get(float("inf"), 0)
over = total - d.get(0.1, 0)
longest = min((le for le, n in d.items() if n == total), default=float("inf"))
print("%d batches, %d over 100 ms, the longest under %s s" % (total, over, "%g" % longest))' "$1" "$2"
}

echo "purge: SCALE=$scale: $live live tokens, $expired expired per cycle, $cycles cycles, token_cleanup_max_rate ${PURGE_MAX_RATE:-0}"
seed_set purge "$tenants" "$users" 10 10 "$live" 0
seed "VACUUM ANALYZE" "VACUUM ANALYZE"
seed "CHECKPOINT" "CHECKPOINT"
check_token=$(seed_token_id purge 1)

# wrk's p50 and p99 in ms.
check_latency() { # seconds
    "${wrk_pin[@]}" wrk -t1 -c8 -d"${1}s" --latency "$base/0.1/token/$check_token" 2>&1 | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(p):
    m = re.search(r"^\s*" + p + r"%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rate = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
print("%.2f %.2f %.0f" % (ms("50"), ms("99"), float(rate)))'
}
# CPU time used (in clock ticks, from /proc) by the server, by the PostgreSQL cluster (the
# postmaster and its children), by the broker (its process group), by everything else on the
# machine (wrk, mostly), and the time stolen by the hypervisor: "server postgres broker other
# steal". The difference of two readings tells
# who took the cores while the checks ran.
postmaster_pid=$(head -1 "$(find "$work/pg" -maxdepth 2 -name postmaster.pid | head -1)")

# PURGE_PIN=1: PostgreSQL and the broker on the last core, the server and wrk on the others, as
# when the database and the broker run on machines of their own (docs/scaling.md): what the
# checks then share their cores with is the server's own part of the purge (its publisher
# mostly), not PostgreSQL's and the broker's. Every thread of the postmaster, of its children and
# of the broker's processes is moved (taskset -a); the backends and workers started later are
# forked by the postmaster and inherit its affinity, and the server's threads its own.
wrk_pin=()
aux_pin=()
pin_cpus() {
    local cores last pid
    cores=$(nproc)
    if (( cores < 2 )); then
        echo "purge: PURGE_PIN=1 needs 2 cores or more" >&2
        exit 2
    fi
    last=$(( cores - 1 ))
    # A child may exit meanwhile (an autovacuum worker): its taskset fails, harmlessly.
    for pid in "$postmaster_pid" $(pgrep -P "$postmaster_pid"); do
        taskset -a -p -c "$last" "$pid" >/dev/null 2>&1 || true
    done
    for pid in $(pgrep -g "$broker_pid"); do
        taskset -a -p -c "$last" "$pid" >/dev/null 2>&1 || true
    done
    taskset -a -p -c "0-$(( last - 1 ))" "$server_pid" >/dev/null
    wrk_pin=(taskset -c "0-$(( last - 1 ))")
    # The script's own readings and writes during the checks: beside PostgreSQL.
    aux_pin=(taskset -c "$last")
    echo "purge: PostgreSQL and the broker on core $last, the server and wrk on cores 0-$(( last - 1 ))"
}
if [[ ${PURGE_PIN:-0} != 0 ]]; then
    pin_cpus
fi
cpu_ticks() {
    python3 - "$server_pid" "$postmaster_pid" "${broker_pid:-0}" <<'PY'
import os, sys
server, postmaster, broker = (int(a) for a in sys.argv[1:4])
procs = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        with open(f"/proc/{p}/stat") as f:
            s = f.read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    # utime + stime, and for the roots, the time of their children that have exited (the
    # autovacuum workers of the postmaster)
    procs[int(p)] = (int(f[1]), int(f[2]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))
def tree(root):
    return sum(t + c if p == root else t for p, (ppid, _, t, c) in procs.items()
               if p == root or (ppid == root and p != postmaster))
used = [tree(server), tree(postmaster), sum(t for _, pgid, t, _ in procs.values() if pgid == broker)]
with open("/proc/stat") as f:
    cpu = [int(x) for x in f.readline().split()[1:]]
# Busy time excludes idle, iowait and steal (the time a virtual machine's cores were given to
# other guests: reported apart, as it slows everything measured without being any of it).
busy = sum(cpu[:8]) - cpu[3] - cpu[4] - cpu[7]
print(*used, busy - sum(used), cpu[7])
PY
}
# "server S postgres P broker B other O steal T" in CPU seconds between two readings of cpu_ticks.
cpu_used() { # before, after
    python3 -c '
import os, sys
hz = os.sysconf("SC_CLK_TCK")
a, b = ([int(x) for x in s.split()] for s in sys.argv[1:3])
print("server %.1f s, postgres %.1f s, broker %.1f s, other %.1f s, stolen by the hypervisor %.1f s" % tuple((y - x) / hz for x, y in zip(a, b)))' "$1" "$2"
}


# The cleanup turn's advisory lock (core/src/cleanup.rs, CLEANUP_LOCK_KEY).
cleanup_key=8602291382082364782

# Inside PostgreSQL, every 10 ms until no expired token is left: the longest-running writing
# transaction of the server's connections, and its statement. Each sample is a transaction of its
# own (psql's \watch): one long-running watcher would hold back the xmin horizon, and then
# neither vacuum nor the purge's own index scans could skip the rows already purged (every batch
# read them all again: a purge of 500 k tokens took 475 s instead of 80).
# Prints "watch|SECONDS|LONGEST_MS|STATEMENT".
sampler_start() { # samples to FILE
    if [[ ${PURGE_SAMPLER:-0} == 0 ]]; then
        : > "$1"
        sampler=
        return
    fi
    printf '%s\n' "SELECT round(extract(epoch FROM clock_timestamp() - xact_start) * 1000),
               application_name || ' ' || state || ': '
               || left(regexp_replace(query, '\s+', ' ', 'g'), 90)
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND backend_type = 'client backend' AND xact_start IS NOT NULL
              AND state <> 'idle' AND backend_xid IS NOT NULL
              AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
                                  AND classid = $((cleanup_key >> 32))
                                  AND objid = $((cleanup_key & 0xffffffff)))
        ORDER BY xact_start LIMIT 1 \watch 0.01" > "$work/watch.sql"
    chmod 644 "$work/watch.sql"
    psql_seed -F '|' -f "$work/watch.sql" > "$1" 2>/dev/null &
    sampler=$!
}
sampler_stop() { # samples: prints "LONGEST_MS|STATEMENT"
    if [[ -z $sampler ]]; then
        echo "-|not sampled (PURGE_SAMPLER=1 samples)"
        return
    fi
    # The sampler is a subshell running psql (through runuser as root): its children first.
    pkill -TERM -P "$sampler" 2>/dev/null || true
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    awk -F '|' '$1 + 0 > longest { longest = $1 + 0; statement = $2 }
                END { printf "%d|%s\n", longest, statement }' "$1"
}
# Sessions purged so far, by the server's counter. (A query for what is left, as in session 10,
# walked the index entries of every row already purged, dead until a vacuum: 56 s of
# PostgreSQL's time in a purge of 112 s, by pg_stat_statements.)
purged_sessions() {
    curl -sf -H "X-Auth-Token: $admin" "$base/0.1/metrics" \
        | awk '$1 == "wazo_auth_purged_total{kind=\"sessions\"}" {n = $2} END {printf "%d\n", n}'
}
# The same count, every 0.2 s, by one process on one keep-alive connection: until it reaches
# TARGET (0: none), or for SECONDS (0: no limit); prints the seconds it took. Until session 17 a
# shell loop forked a curl and an awk at each reading, five times a second, and only during the
# purge's check window: the windows compared were not measured alike. This poller runs in every
# check window, so that each has the same readings beside it (with PURGE_PIN=1, on PostgreSQL's
# core).
poll_purged() { # target, seconds
    "${aux_pin[@]}" python3 - "$base" "$admin" "$1" "$2" <<'PY'
import http.client, sys, time, urllib.parse
base, token, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
url = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
def purged():
    conn.request("GET", "/0.1/metrics", headers={"X-Auth-Token": token})
    resp = conn.getresponse()
    for line in resp.read().decode().splitlines():
        if line.startswith('wazo_auth_purged_total{kind="sessions"} '):
            return int(float(line.split()[1]))
    return 0
start = time.monotonic()
while True:
    n = purged()
    if (target and n >= target) or (limit and time.monotonic() - start >= limit):
        break
    time.sleep(0.2)
print("%.3f" % (time.monotonic() - start))
PY
}
# A check window without a purge: the checks (their p50, p99 and rate into NAME_p50, NAME_p99 and
# NAME_rate), with the writer and the same readings beside them as during a purge (the writer's
# line is then reported by writer_report).
checks_without_purge() { # name
    local poller
    writer_start "${CHECK_SECONDS:-10}"
    poll_purged 0 "${CHECK_SECONDS:-10}" > /dev/null &
    poller=$!
    read -r "${1}_p50" "${1}_p99" "${1}_rate" < <(check_latency "${CHECK_SECONDS:-10}")
    wait "$poller"
}
# PURGE_SCHED=1: a scheduler trace (perf sched, every core, 2 s in the middle of the window) of
# the check windows just before and during each purge, read by bench/sched_blame.py: how many
# times the checks' threads (the server's HTTP workers and wrk) waited 0.2 ms or more for a core
# once woken, and which threads ran on that core meanwhile (the server's main thread runs the bus
# publisher and the purge's loop; lapin-io-loop is the publisher's AMQP I/O). perf takes part of
# a core while it records: compare the two windows of one run, not a p99 of such a run with
# another run's. The trace of the window during the purge is read once the purge has ended.
sched_start() { # name
    sched_pid=
    [[ ${PURGE_SCHED:-0} != 0 ]] || return 0
    local delay=$(( ${CHECK_SECONDS:-10} / 2 - 1 ))
    (sleep "$delay"; perf sched record -a -o "$work/sched-$1.data" -- sleep 2 \
        >"$work/sched-$1.log" 2>&1) &
    sched_pid=$!
}
sched_report() { # name, what the window is: sets sched_NAME ("" without PURGE_SCHED)
    printf -v "sched_$1" '%s' ""
    [[ -n $sched_pid ]] || return 0
    if ! wait "$sched_pid" || [[ ! -s $work/sched-$1.data ]]; then
        printf -v "sched_$1" '  scheduler, %s: the trace failed (%s)' "$2" "$work/sched-$1.log"
        return 0
    fi
    printf -v "sched_$1" '  scheduler, %s: %s' "$2" \
        "$(perf sched timehist -i "$work/sched-$1.data" 2>/dev/null | python3 bench/sched_blame.py)"
    rm -f "$work/sched-$1.data" "$work/sched-$1.log"
}
watch_purge() { # the count of purged sessions to wait for
    local seconds longest
    sampler_start "$work/watch-samples.txt"
    seconds=$(poll_purged "$1" 0)
    longest=$(sampler_stop "$work/watch-samples.txt")
    echo "watch|$seconds|$longest"
}

# Polls the query (a boolean) every 20 ms until it reads true: false after SECONDS.
wait_until_sql() { # seconds, query
    local _
    for _ in $(seq 1 $(( $1 * 50 ))); do
        [[ $(psql_seed -c "$2") == t ]] && return 0
        sleep 0.02
    done
    return 1
}

# While a cycle's expired tokens are seeded, the script holds the cleanup turn's advisory lock
# (core/src/cleanup.rs, CLEANUP_LOCK_KEY), so that the server's purge waits; then the seeding's
# aftermath is taken out of the measurement (CHECKPOINT: the writing of the seeded pages;
# VACUUM ANALYZE: the first vacuum of new rows and their statistics), and the lock is released:
# the purge starts on a backlog already there, as after an outage, and what is measured is the
# purge alone. (Until session 11 the purge started during the seeding's aftermath, and the
# checks' p99 of a cycle counted both.) The holder's session is idle while it holds the lock: it
# holds no snapshot.
hold_cleanup() {
    rm -f "$work/hold.fifo"
    mkfifo "$work/hold.fifo"
    psql_seed < "$work/hold.fifo" > /dev/null &
    holder=$!
    exec 7> "$work/hold.fifo"
    echo "SELECT pg_advisory_lock($cleanup_key);" >&7
    # A cleanup run of the server may hold it meanwhile: at most 5 minutes.
    wait_until_sql 300 "SELECT count(*) = 1 FROM pg_locks
                    WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
                      AND classid = $((cleanup_key >> 32))
                      AND objid = $((cleanup_key & 0xffffffff))" || {
        echo "purge: the cleanup turn's lock was not taken" >&2
        exit 1
    }
}
release_cleanup() {
    exec 7>&-
    wait "$holder"
}
checkpoint_and_vacuum() {
    local started
    started=$(date +%s.%N)
    psql_seed -c "CHECKPOINT" -c "VACUUM ANALYZE auth_token, auth_session" >/dev/null
    printf 'seeded %-28s %8.1f s\n' "CHECKPOINT, VACUUM ANALYZE" "$(calc "$(date +%s.%N) - $started")"
}

curl -sf -o /dev/null "$base/0.1/token/$check_token" || { echo "purge: the check token is refused" >&2; exit 1; }
# The sampler of the purge's transactions runs here too: both measurements pay for it.
sampler_start "$work/base-samples.txt"
cpu_before=$(cpu_ticks)
checks_without_purge base
cpu_base=$(cpu_used "$cpu_before" "$(cpu_ticks)")
IFS='|' read -r base_longest base_query < <(sampler_stop "$work/base-samples.txt")
printf 'checks, no purge:       p50 %6.2f ms  p99 %6.2f ms  %6s/s, longest transaction %s ms (%s)\n' \
    "$base_p50" "$base_p99" "$base_rate" "$base_longest" "$base_query"
printf '  CPU while the checks ran: %s\n' "$cpu_base"
writer_report "without a purge"
[[ -z $writer_line ]] || echo "$writer_line"

# Before each cycle's tokens are seeded, with PURGE_SETTLE=1 (the default), the script waits (at
# most 5 minutes) until autovacuum has caught up with the previous purge: until neither
# auth_token nor auth_session has more dead rows than its autovacuum threshold (V13: 2 % of
# the rows, plus 10,000). A server's tokens come over the hours between two purges, after that
# vacuum has made the purged rows' space reusable; seeded all at once, seconds after the purge,
# they find part of it not yet vacuumed and grow the files instead.
#
# That count is not enough to tell (session 16: 9 s of waiting, then the first cycle's space was
# not reused and the database grew 13.7 %): an autovacuum that starts during the purge and ends
# after it resets the table's dead-row count to what it saw, and the rows deleted behind it, on
# pages it had already passed, are counted nowhere until the next deletions. On a server the next
# purge runs (token_cleanup_interval) bring those, and the vacuum they trigger, long before a
# purge's worth of new tokens has come; here, the next cycle is seeded in seconds. So the script
# then runs one VACUUM of both tables itself, in place of the vacuums of those hours, and prints
# what it removed: 0 when autovacuum had done it all. PURGE_SETTLE=autovacuum only waits;
# PURGE_SETTLE=0 seeds at once.
settle() {
    local started waited out removed
    started=$(date +%s.%N)
    for _ in $(seq 1 600); do
        [[ $(psql_seed -c "SELECT count(*) FROM pg_stat_user_tables
                           WHERE relname IN ('auth_token', 'auth_session')
                             AND n_dead_tup > 0.02 * n_live_tup + 10000") == 0 ]] && break
        sleep 0.5
    done
    waited=$(calc "$(date +%s.%N) - $started")
    printf '  waited %.0f s for autovacuum before seeding the next cycle\n' "$waited"
    [[ ${PURGE_SETTLE:-1} == autovacuum ]] && return
    started=$(date +%s.%N)
    # VERBOSE's report goes to psql's standard error: for each table, and for its TOAST table,
    # a 'finished vacuuming "DB.SCHEMA.TABLE"' line, then a "tuples: N removed" line.
    out=$(psql_seed -c "VACUUM (VERBOSE) auth_token" -c "VACUUM (VERBOSE) auth_session" 2>&1)
    removed=$(awk 'match($0, /finished vacuuming "[^"]*"/) {
                       table = substr($0, RSTART + 20, RLENGTH - 21); sub(/.*\./, "", table) }
                   match($0, /tuples: [0-9]+ removed/) && table ~ /^auth_/ {
                       printf "%s%s %s", sep, table, substr($0, RSTART + 8, RLENGTH - 16); sep = ", " }' <<< "$out")
    printf '  then VACUUM in %.1f s, dead rows removed: %s\n' \
        "$(calc "$(date +%s.%N) - $started")" "${removed:-?}"
}

sizes=()
ratios=()
for cycle in $(seq 1 "$cycles"); do
    before=$(published)
    if (( cycle > 1 )) && [[ ${PURGE_SETTLE:-1} != 0 ]]; then
        settle
    fi
    hold_cleanup
    # With the indexes in place: they grow over the cycles as a server's do.
    SEED_IN_PLACE=1 seed_tokens purge "$tenants" "$users" "expired tokens, cycle $cycle" "$expired" \
        $((live + cycle * expired)) \
        "extract(epoch FROM now()) - 60 - (i % 3600)" >/dev/null
    checkpoint_and_vacuum > /dev/null
    # The checks just before the purge, its tokens seeded and the purge still held back.
    sched_start near
    checks_without_purge near
    sched_report near "checks just before the purge"
    writer_report "just before the purge"
    writer_near=$writer_line
    writer_events=$(( 2 * writer_pairs ))
    log_before=$(log_size)
    release_cleanup
    histogram_before=$(batch_histogram)
    if [[ ${PURGE_STATEMENTS:-0} != 0 ]]; then
        psql_seed -c "SELECT pg_stat_statements_reset()" >/dev/null
    fi
    watch_purge $(( $(purged_sessions || echo 0) + expired )) > "$work/watch.txt" &
    watcher=$!
    cpu_before=$(cpu_ticks)
    writer_start "${CHECK_SECONDS:-10}"
    sched_start during
    read -r p50 p99 rate < <(check_latency "${CHECK_SECONDS:-10}")
    cpu_checks=$(cpu_used "$cpu_before" "$(cpu_ticks)")
    writer_report "during the purge"
    writer_during=$writer_line
    writer_events=$(( writer_events + 2 * writer_pairs ))
    wait "$watcher"
    lock_waits=$(lock_waits_between "$log_before" "$(log_size)")
    cpu_purge=$(cpu_used "$cpu_before" "$(cpu_ticks)")
    sched_report during "checks during the purge"
    batches=$(batches_between "$histogram_before" "$(batch_histogram)")
    IFS='|' read -r _ seconds longest query < <(grep -o 'watch|.*' "$work/watch.txt")
    left=$(psql_seed -c "SELECT count(*) FROM auth_token WHERE expire_t < extract(epoch FROM now()) - 60")
    if (( left > 0 )); then
        echo "purge: cycle $cycle left $left expired tokens" >&2
        exit 1
    fi
    # Every purged session's event published (the login of the admin is not in the cycle).
    for _ in $(seq 1 600); do
        [[ $(psql_seed -c "SELECT (SELECT count(*) FROM auth_event_outbox)
                                  + (SELECT count(*) FROM auth_event_outbox_batch)") == 0 ]] && break
        sleep 0.5
    done
    sent=$(( $(published) - before ))
    size=$(psql_seed -c "SELECT pg_database_size(current_database())")
    sizes+=("$size")
    printf 'cycle %d: purged %d in %6.1f s (%7.0f/s), longest transaction %5s ms (%s), checks p50 %6.2f ms p99 %6.2f ms (%4.2fx) %6s/s, events published %d, database %s MB\n' \
        "$cycle" "$expired" "$seconds" "$(calc "$expired / $seconds")" "$longest" "$query" \
        "$p50" "$p99" "$(calc "$p99 / $base_p99")" "$rate" "$sent" $((size / 1048576))
    printf '  checks just before the purge: p50 %6.2f ms p99 %6.2f ms %6s/s; the p99 during the purge: %4.2fx that\n' \
        "$near_p50" "$near_p99" "$near_rate" "$(calc "$p99 / $near_p99")"
    ratios+=("$(calc "$p99 / $near_p99")")
    [[ -z $writer_near ]] || printf '%s\n%s\n' "$writer_near" "$writer_during"
    printf '  purge batches: %s; waits for a lock over 100 ms during the purge: %s\n' "$batches" "$lock_waits"
    [[ -z $sched_near ]] || printf '%s\n%s\n' "$sched_near" "$sched_during"
    printf '  tables: %s\n' "$(psql_seed -F ' ' -c "SELECT string_agg(relname || ' ' ||
            pg_total_relation_size(relid) / 1048576 || ' MB', ', ' ORDER BY relname)
        FROM pg_stat_user_tables WHERE relname IN ('auth_token', 'auth_session',
            'auth_event_outbox', 'auth_event_outbox_batch')")"
    if [[ ${PURGE_STATEMENTS:-0} != 0 ]]; then
        psql_seed -F ' | ' -c "SELECT round(total_exec_time + total_plan_time) || ' ms', calls,
                                      left(regexp_replace(query, '\s+', ' ', 'g'), 100)
                               FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC
                               LIMIT 8" | sed 's/^/  statement: /'
    fi
    printf '  CPU while the checks ran: %s\n  CPU from the purge'"'"'s start to its end: %s\n' \
        "$cpu_checks" "$cpu_purge"
    # Every purged session's event, and the writer's (the admin's login came before): none
    # missing. More would be events sent twice, which at-least-once delivery allows.
    if (( sent < expired + writer_events )); then
        echo "purge: cycle $cycle published $sent events for $expired purged sessions and $writer_events of the writer's" >&2
        exit 1
    fi
done
# The lock-wait count's own check: a wait made on purpose, on a table of its own, must be counted.
# One session takes the table's lock and keeps it until another asks for it, then 0.3 s more;
# the other waits that long. Only the log lines naming that table count. With none, every "0"
# printed above would mean nothing: the script fails. Each step is bounded (10 s).
lock_probe() { # prints the count of the probe's logged waits
    local oid from holder waiter ok=1
    psql_seed -c "CREATE TABLE IF NOT EXISTS purge_lock_probe ()" >/dev/null || return 1
    oid=$(psql_seed -c "SELECT 'purge_lock_probe'::regclass::oid") || return 1
    from=$(log_size)
    psql_seed -c "SET statement_timeout = '15s'" -c "BEGIN" -c "LOCK TABLE purge_lock_probe" \
        -c "DO \$\$ BEGIN
                FOR i IN 1..1000 LOOP
                    EXIT WHEN EXISTS (SELECT 1 FROM pg_locks
                                      WHERE relation = $oid AND NOT granted);
                    PERFORM pg_sleep(0.01);
                END LOOP;
                PERFORM pg_sleep(0.3);
            END \$\$" -c "COMMIT" >/dev/null &
    holder=$!
    wait_until_sql 10 "SELECT count(*) = 1 FROM pg_locks WHERE relation = $oid AND granted" || ok=0
    psql_seed -c "SET statement_timeout = '15s'" -c "BEGIN" -c "LOCK TABLE purge_lock_probe" \
        -c "COMMIT" >/dev/null &
    waiter=$!
    wait "$holder" || ok=0
    wait "$waiter" || ok=0
    psql_seed -c "DROP TABLE purge_lock_probe" >/dev/null || ok=0
    (( ok )) || return 1
    tail -c +$(( from + 1 )) "$pg_log" | grep 'still waiting for' | grep -c "on relation $oid of" || true
}
if ! probe=$(lock_probe) || [[ $probe == 0 ]]; then
    echo "purge: a lock wait made on purpose was not counted (${probe:-the probe failed}): the counts above are not measured" >&2
    exit 1
fi
echo "the lock-wait count's own check: a wait of about 0.3 s made on purpose was counted ($probe)"
psql_seed -F ' ' -c "SELECT relname, pg_total_relation_size(relid) / 1048576 || ' MB', n_dead_tup,
                            last_autovacuum IS NOT NULL
                     FROM pg_stat_user_tables
                     WHERE relname IN ('auth_token', 'auth_session', 'auth_event_outbox',
                                       'auth_event_outbox_batch')
                     ORDER BY relname" | sed 's/^/table /'
(( cycles > 0 )) || exit 0
printf 'check p99 during each purge against just before it: %s\n' "$(printf '%.2fx ' "${ratios[@]}")"
printf 'database size: cycle 1 %d MB, cycle %d %d MB (%+.1f %%)\n' $((sizes[0] / 1048576)) "$cycles" \
    $((sizes[-1] / 1048576)) "$(calc "(${sizes[-1]} - ${sizes[0]}) * 100 / ${sizes[0]}")"
