#!/usr/bin/env bash
# The p99 of cached token checks at full rate (wrk, 2 threads, 16 connections) while one other
# thread of the machine runs now and then: a Python busy loop, BUSY ms of CPU every PERIOD ms
# (2 every 100, 5 every 50, 20 every 200), against none; twice. It shows what any background work
# (the purge's PostgreSQL backend, the bus publisher, the broker) costs the checks' p99 on a
# machine whose cores the checks already fill (docs/benchmarks.md, "Issue 20: session 15").
#
#   bench/cpu_hog.sh      # the release build (cargo builds what is stale)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p wazo-auth -p example-backend
source scripts/throwaway-server.sh
need_wrk
server_workdir hog target/release/libwazo_auth_example_backend.so
port=${BENCH_PORT:-9596}
{ server_config $port; cat <<YAML
enabled_backend_plugins: {example_static: true}
token_cleanup_interval: 0
plugin_config:
  example_static:
    users:
      - {login: admin, password: admin-secret, acl: ["auth.#"]}
YAML
} > $work/config.yml
server_start "http://127.0.0.1:$port/0.1/status" target/release/wazo-auth -c $work/config.yml
tok=$(curl -sf -u admin:admin-secret -H 'Content-Type: application/json' -d '{"backend": "example_static", "expiration": 3600}' http://127.0.0.1:$port/0.1/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
run() { wrk -t2 -c16 -d1s http://127.0.0.1:$port/0.1/token/$tok >/dev/null; wrk -t2 -c16 -d5s --latency http://127.0.0.1:$port/0.1/token/$tok | grep -E " 50%| 99%|Requests/sec" | tr -s ' ' | tr '\n' ' '; echo; }
hog() { python3 -c '
import time,sys
busy,period=float(sys.argv[1])/1000,float(sys.argv[2])/1000
end=time.time()+8
while time.time()<end:
    t=time.time()
    while time.time()-t<busy: pass
    time.sleep(max(0,period-busy))' "$1" "$2" & }
for round in 1 2; do
echo -n "no hog:                 "; run
for spec in "2 100" "5 50" "20 200"; do
  hog $spec; h=$!; echo -n "hog ${spec% *} ms every ${spec#* } ms: "; run; wait $h
done
done
