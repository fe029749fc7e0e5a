# Sourced by bench/scale.sh: the token-check and login measurements of one data set (issue 20).
# Needs from scale.sh: $base, $port, $work, $admin_token (a token of the top tenant), $pgbin,
# $socket, pg_user_run, psql_scale, $server_pid and $miss_requests (the misses per measurement);
# the data set's tokens are md5('PREFIX-k' || i) as uuids, its tenants md5('PREFIX-t' || i)
# (tenant 9 is 10 levels down).
#
#   checks_phase PREFIX LABEL LIVE   # measures; results in $work/checks-LABEL.txt
#   checks_fill PREFIX FROM COUNT    # caches COUNT more tokens; prints the RSS per token
#   checks_compare SMALL BIG         # prints the two sets side by side, with the ratios
#   cold_start PREFIX                # restarts the server: time to the port, to a first check

check_seconds=${CHECK_SECONDS:-5}
check_repeats=${CHECK_REPEATS:-3}
if ! [[ $check_repeats =~ ^[1-9][0-9]*$ ]]; then
    echo "scale: CHECK_REPEATS must be a whole number >= 1" >&2
    exit 2
fi
each_once=$work/each_once
rustc -O --edition 2021 -D warnings bench/each_once.rs -o "$each_once"

uuid_of() { python3 -c 'import hashlib, sys, uuid; print(uuid.UUID(hashlib.md5(sys.argv[1].encode()).hexdigest()))' "$1"; }

# Paths of the checks of tokens FROM..FROM+COUNT-1 of set PREFIX, into FILE.
token_paths() { # prefix, from, count, file
    python3 - "$@" <<'PY'
import hashlib, sys, uuid
prefix, start, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(path, "w") as f:
    for i in range(start, start + count):
        f.write("/0.1/token/%s\n" % uuid.UUID(hashlib.md5(("%s-k%d" % (prefix, i)).encode()).hexdigest()))
PY
}

# Reads the database pages (index and table) of tokens FROM..FROM+COUNT-1 of set PREFIX into
# PostgreSQL's buffers, without the server: one primary-key probe per token (the other plans off)
# that reads a column of the table, as the server's look-up and pgbench's do.
warm_tokens() { # prefix, from, count
    psql_scale -c "SET enable_seqscan = off; SET enable_bitmapscan = off;
        SET enable_hashjoin = off; SET enable_mergejoin = off;
        SELECT sum(length(session_uuid)) FROM auth_token WHERE token_hash IN
            (SELECT sha256(convert_to(md5('$1-k' || i)::uuid::text, 'UTF8'))
             FROM generate_series($2, $2 + $3 - 1) AS i)" >/dev/null
}

# wrk $check_repeats times for $check_seconds each (after one uncounted second): "rate p50 p99"
# (ms), each the median of the runs'. One 5 s run's p99 of a cached check moves by 2-5x on a
# small virtual machine (docs/benchmarks.md), with what else the machine runs.
wrk_line() { # wrk args...
    local runs=() i
    wrk -t2 -c16 -d1s "$@" >/dev/null 2>&1
    for ((i = 0; i < check_repeats; i++)); do
        runs+=("$(wrk -t2 -c16 -d"${check_seconds}s" --latency "$@" 2>&1 | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(p):
    m = re.search(r"^\s*" + p + r"%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
if bad:
    sys.exit("wrk: %s answers were not 2xx" % bad.group(1))
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print("%.0f %.3f %.3f" % (rate, ms("50"), ms("99")))')") || return 1
    done
    python3 -c '
import statistics, sys
runs = [[float(x) for x in r.split()] for r in sys.argv[1:]]
rate, p50, p99 = (statistics.median(col) for col in zip(*runs))
print("%.0f %.3f %.3f" % (rate, p50, p99))' "${runs[@]}"
}

# each_once over FILE: "rate p50 p99" (ms); fails on an error answer.
each_once_line() { # method, file
    local out
    out=$("$each_once" "127.0.0.1:$port" "$1" "$2" 16)
    python3 -c '
import sys
f = sys.argv[1].split()
v = dict(zip(f[0::2], f[1::2]))
if v["errors"] != "0":
    sys.exit("each_once: %s errors" % v["errors"])
print(v["rate"].rstrip("/s"), v["p50"], v["p99"])' "$out"
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }

checks_phase() { # prefix, label, live tokens
    local p=$1 label=$2 live=$3 out=$work/checks-$2.txt deep paths misses
    deep=$(uuid_of "$p-t9")
    : > "$out"
    echo "scale: token checks at $label"
    echo "get_cached $(wrk_line "$base/0.1/token/$admin_token")" >> "$out"
    echo "head_cached $(wrk_line -s bench/head.lua "$base/0.1/token/$admin_token")" >> "$out"
    echo "get_plain $(wrk_line "$base/0.1/token/$admin_token")" >> "$out"
    echo "get_tenant_10_deep $(wrk_line "$base/0.1/token/$admin_token?tenant=$deep")" >> "$out"
    # Each token once: all misses. Fewer when the set has fewer live tokens.
    misses=$(( miss_requests < live ? miss_requests : live ))
    paths=$work/miss-$label.txt
    # When the set has the tokens for it: first MISS_REQUESTS other tokens whose database pages
    # nothing has read since the seeding (`head_miss_cold`, shown, not a target: on a big set,
    # those pages come from the disk or the kernel's cache, as the bulk seeding left them).
    if (( live >= 2 * misses )); then
        token_paths "$p" "$misses" "$misses" "$paths"
        echo "head_miss_cold $(each_once_line HEAD "$paths")" >> "$out"
    fi
    # The misses measured: their tokens' database pages read once first, as pgbench's first
    # pass over the same tokens reads them (below), so that both measure the same warm look-up.
    warm_tokens "$p" 0 "$misses"
    token_paths "$p" 0 "$misses" "$paths"
    echo "head_miss $(each_once_line HEAD "$paths")" >> "$out"
    echo "login_example $(BENCH_BASIC=$(printf 'admin:admin-secret' | base64) \
        BENCH_BODY='{"backend": "example_static", "expiration": 600}' \
        wrk_line -s bench/login.lua "$base/0.1/token")" >> "$out"
    # wazo_user logins of a user of the set's top tenant (created here), among the set's users.
    curl -sf -o /dev/null -H "X-Auth-Token: $admin_token" -H 'Content-Type: application/json' \
        -d "{\"username\": \"$p-login\", \"password\": \"login-secret\"}" "$base/0.1/users"
    echo "login_wazo_user $(BENCH_BASIC=$(printf '%s:login-secret' "$p-login" | base64 -w0) \
        BENCH_BODY='{"backend": "wazo_user", "expiration": 600}' \
        wrk_line -s bench/login.lua "$base/0.1/token")" >> "$out"
    # The database alone: the same primary-key look-up of the same tokens as the misses, by
    # pgbench (over every live token, its reads would leave the cache: 9.5 k/s at SCALE=1).
    cat > "$work/pk.sql" <<SQL
\\set i random(0, $((misses - 1)))
SELECT session_uuid, expire_t FROM auth_token
WHERE token_hash = sha256(convert_to(md5('$p-k' || :i)::uuid::text, 'UTF8'));
SQL
    chmod 644 "$work/pk.sql"
    echo "pgbench_pk $(pg_user_run "$pgbin/pgbench" -n -h "$socket" -U postgres -M prepared -c 16 -j 2 \
        -T "$check_seconds" -f "$work/pk.sql" wazo_auth 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}') 0 0" >> "$out"
    sed "s/^/  $label /" "$out"
}

# Misses with a full cache against misses with one that is not: COUNT tokens from FROM fill the
# cache first (its RSS growth per token printed), then MISS_REQUESTS more are checked.
checks_fill() { # prefix, label, from, fill count
    local p=$1 label=$2 from=$3 fill=$4 warm before after paths=$work/fill.txt
    # The first hundredth of the fill, and a second of cached checks, before the RSS is read:
    # the connections, buffers and allocator arenas of a freshly started server (the cold start
    # restarts it) are then in place, and only the cache grows after.
    warm=$(( fill / 100 ))
    token_paths "$p" "$from" "$warm" "$paths"
    "$each_once" "127.0.0.1:$port" GET "$paths" 16 >/dev/null
    wrk -t2 -c16 -d1s "$base/0.1/token/$admin_token" >/dev/null 2>&1
    before=$(rss_kb)
    token_paths "$p" $((from + warm)) $((fill - warm)) "$paths"
    "$each_once" "127.0.0.1:$port" GET "$paths" 16 >/dev/null
    after=$(rss_kb)
    echo "rss_per_cached_token $(( (after - before) * 1024 / (fill - warm) )) 0 0" >> "$work/checks-$label.txt"
    echo "scale: RSS $((before / 1024)) MB -> $((after / 1024)) MB after caching $((fill - warm)) more tokens (GET)"
    paths=$work/miss-full.txt
    warm_tokens "$p" $((from + fill)) "$miss_requests"
    token_paths "$p" $((from + fill)) "$miss_requests" "$paths"
    echo "head_miss_full_cache $(each_once_line HEAD "$paths")" >> "$work/checks-$label.txt"
}

checks_compare() { # small label, big label
    python3 - "$work/checks-$1.txt" "$work/checks-$2.txt" <<'PY'
import sys
failed = []
def load(path):
    rows = {}
    for line in open(path):
        name, *values = line.split()
        if len(values) == 3:
            rows[name] = [float(v) for v in values]
        else:
            failed.append("%s: %s" % (path.rsplit("/", 1)[-1], name))
    return rows
small, big = load(sys.argv[1]), load(sys.argv[2])
print("%-22s %9s %8s %8s %9s %8s %8s %8s %8s" % ("check", "rate 1k", "p50 1k", "p99 1k", "rate BIG", "p50 BIG", "p99 BIG", "p50 x", "p99 x"))
for name, (rate, p50, p99) in big.items():
    if name not in small:
        print("%-22s %9s %8s %8s %9.0f %8.3f %8.3f" % (name, "", "", "", rate, p50, p99))
        continue
    r, s50, s99 = small[name]
    x50 = p50 / s50 if s50 else float("nan")
    x99 = p99 / s99 if s99 else float("nan")
    print("%-22s %9.0f %8.3f %8.3f %9.0f %8.3f %8.3f %8.2f %8.2f" % (name, r, s50, s99, rate, p50, p99, x50, x99))
for label, rows in (("1k", small), ("BIG", big)):
    plain, tenant = rows["get_plain"][0], rows["get_tenant_10_deep"][0]
    print("%s: ?tenant= (10 deep) at %.1f %% of the plain check's rate" % (label, 100 * tenant / plain))
    print("%s: cache misses at %.1f %% of pgbench's primary-key select" % (label, 100 * rows["head_miss"][0] / rows["pgbench_pk"][0]))
if "head_miss_full_cache" in big:
    print("BIG: miss p99 with a full cache %.2fx the p99 with one not full"
          % (big["head_miss_full_cache"][2] / big["head_miss"][2]))
if "rss_per_cached_token" in big:
    print("BIG: %d bytes of RSS per cached token (GET)" % big["rss_per_cached_token"][0])
# A measurement that failed (an error answer: see above) fails the run, after the comparison.
if failed:
    sys.exit("failed measurements: " + ", ".join(failed))
PY
}

# Restarts the server on the data as it is: the time to an open port and to the first answered
# check of one of the set's tokens.
cold_start() { # prefix
    local token started opened checked
    token=$(uuid_of "$1-k1")
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    started=$(date +%s.%N)
    "${SCALE_SERVER:-target/$build/wazo-auth}" -c "$work/config.yml" >> "$work/server.log" 2>&1 &
    server_pid=$!
    until curl -s -o /dev/null "$base/0.1/status"; do sleep 0.01; done
    opened=$(date +%s.%N)
    until [[ $(curl -s -o /dev/null -w '%{http_code}' -I "$base/0.1/token/$token") == 204 ]]; do sleep 0.01; done
    checked=$(date +%s.%N)
    printf 'cold start: port open after %.2f s, first check answered after %.2f s\n' \
        "$(calc "$opened - $started")" "$(calc "$checked - $started")"
}
