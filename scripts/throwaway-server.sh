# Sourced (not run) by the scripts that start a throw-away server: bench/run.sh,
# bench/instructions.sh, scripts/api-check.sh. Each gets a private work directory with its own
# plugins, PostgreSQL and key file, removed on exit (kept when KEEP is set).
#
#   server_workdir NAME PLUGIN.so...   # sets $work, copies the plugins into $work/plugins
#   server_config PORT >"$work/config.yml"  # the common configuration; append the rest
#   server_start URL CMD...            # runs CMD in the background, waits until URL answers
#
# server_start sets $server_pid; the server is stopped on exit.

server_pid=
work=

server_workdir() { # name, plugin files...
    local name=$1
    shift
    work=$(mktemp -d "/tmp/wazo-auth-$name.XXXXXX")
    chmod 755 "$work"
    mkdir -p "$work/plugins"
    cp "$@" "$work/plugins/"
    chmod 755 "$work/plugins" "$work/plugins"/*.so
    trap server_cleanup EXIT
}

server_config() { # port
    cat <<YAML
log_level: warning
rest_api: {listen: 127.0.0.1, port: $1}
managed_db: {data_dir: $work/pg}
secret_key_file: $work/secret.keys
plugin_dir: $work/plugins
YAML
}

server_cleanup() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n ${KEEP:-} ]]; then
        echo "files kept in $work"
    elif [[ -n $work ]]; then
        rm -rf "$work"
    fi
}

server_start() { # url, command...
    local url=$1
    shift
    "$@" > "$work/server.log" 2>&1 &
    server_pid=$!
    # Two minutes: the first start creates the PostgreSQL cluster (slow under valgrind).
    for _ in $(seq 1 1200); do
        curl -s -o /dev/null "$url" && return 0
        sleep 0.1
    done
    echo "the server never answered on $url; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
}
