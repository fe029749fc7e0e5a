#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: unlike requests per second, the
# count does not move with whatever else the (virtual) machine is doing, so it shows the effect
# of a code change on the server's own CPU work exactly. Builds the `profiling` profile (release
# with line tables, so `callgrind_annotate` can name the code), starts the server under callgrind
# with its own PostgreSQL, sends N requests of each kind on one keep-alive connection, and prints
# the user-space instructions the server executed per request (kernel time is not counted).
#
#   bench/instructions.sh              # N=500 requests per kind
#   N=2000 KINDS="get login" bench/instructions.sh
#   KEEP=1 bench/instructions.sh       # keep the callgrind files (path printed) for annotation
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-500}
kinds=${KINDS:-ceiling get head_nomatch get_unknown login}
port=${BENCH_PORT:-9598}

scripts/install-deps.sh >/dev/null
command -v valgrind >/dev/null || {
    if [[ $(id -u) -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "instructions: valgrind is missing: apt-get install valgrind" >&2
        exit 1
    fi
}
echo "instructions: building (profiling profile)"
cargo build --profile profiling --locked -q -p wazo-auth -p example-backend

source scripts/throwaway-server.sh
server_workdir instructions target/profiling/libwazo_auth_example_backend.so
{
    server_config "$port"
    cat <<YAML
benchmark_route: true
enabled_backend_plugins: {example_static: true, wazo_user: false, ldap_user: false}
enabled_external_auth_plugins: {google: false, microsoft: false, mobile: false}
token_cleanup_interval: 0
plugin_config:
  example_static:
    users: [{login: alice, password: alice-secret, acl: ["confd.#", "auth.users.me.#"]}]
YAML
} > "$work/config.yml"
server_start "http://127.0.0.1:$port/0.1/_bench/ceiling" \
    valgrind --tool=callgrind -q --callgrind-out-file="$work/callgrind.out" \
    target/profiling/wazo-auth -c "$work/config.yml"

printf '%-14s %12s\n' kind "instr/req"
for kind in $kinds; do
    python3 bench/requests.py "$port" "$kind" 50       # warm-up (caches, prepared statements)
    callgrind_control -z "$server_pid" >/dev/null
    python3 bench/requests.py "$port" "$kind" "$n"
    callgrind_control -d "$kind" "$server_pid" >/dev/null
    file=$(ls -t "$work"/callgrind.out* | head -1)
    total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    printf '%-14s %12d\n' "$kind" $((total / n))
done
