# Sourced (not run) by the scripts that start a throw-away server: bench/run.sh,
# bench/instructions.sh, scripts/api-check.sh. Each gets a private work directory with its own
# plugins, PostgreSQL and key file, removed on exit (kept when KEEP is set).
#
#   server_workdir NAME PLUGIN.so...   # sets $work, copies the plugins into $work/plugins
#   server_config PORT >"$work/config.yml"  # the common configuration; append the rest
#   server_start URL CMD...            # runs CMD in the background, waits until URL answers
#
#   broker_start                       # a private RabbitMQ broker under $work; sets $broker_uri
#   need_wrk                           # installs wrk if missing (as root), or exits
#
# server_start sets $server_pid; the server (and the broker) are stopped on exit.

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
    # The broker runs in its own process group (its Erlang VM and helpers): stopped as a whole.
    if [[ -n ${broker_pid:-} ]]; then
        kill -TERM -- "-$broker_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 -- "-$broker_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$broker_pid" 2>/dev/null || true
    fi
    if [[ -n ${epmd_pid:-} ]]; then
        kill -TERM "$epmd_pid" 2>/dev/null || true
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

free_tcp_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

broker_pid=
epmd_pid=
broker_uri=

# The Erlang schedulers do not spin while idle (`+sbwt none`, RabbitMQ's advice for a broker that
# shares its host): the broker shares the machine with the server, PostgreSQL and the load.
broker_start() { # a private RabbitMQ broker (Debian's rabbitmq-server) under $work/rabbitmq
    local d=$work/rabbitmq amqp_port dist_port epmd_port
    amqp_port=$(free_tcp_port)
    dist_port=$(free_tcp_port)
    epmd_port=$(free_tcp_port)
    mkdir -p "$d/home" "$d/mnesia" "$d/log" "$d/plugins-expand"
    printf 'disk_free_limit.absolute = 1MB\nlog.console = false\n' > "$d/rabbitmq.conf"
    echo '[].' > "$d/enabled_plugins"
    : > "$d/rabbitmq-env.conf"
    # Our own epmd, on its own port, so that the broker starts none and leaves nothing behind.
    epmd -port "$epmd_port" -address 127.0.0.1 > "$d/epmd.log" 2>&1 &
    epmd_pid=$!
    local script=/usr/lib/rabbitmq/bin/rabbitmq-server
    [[ -x $script ]] || script=/usr/sbin/rabbitmq-server
    (cd "$d" && exec env HOME="$d/home" RABBITMQ_NODENAME="wazo-auth-bench-$$@localhost" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$amqp_port" \
        RABBITMQ_DIST_PORT="$dist_port" ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
        RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
        RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
        RABBITMQ_PLUGINS_EXPAND_DIR="$d/plugins-expand" RABBITMQ_PID_FILE="$d/rabbitmq.pid" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none" \
        setsid "$script") > "$d/startup.log" 2>&1 &
    broker_pid=$!
    broker_uri="amqp://guest:guest@127.0.0.1:$amqp_port/"
    # The AMQP port opens once the broker has booted.
    for _ in $(seq 1 1200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "the broker never opened port $amqp_port; its log:" >&2
    cat "$d/startup.log" >&2
    exit 1
}

need_wrk() {
    command -v wrk >/dev/null && return 0
    if [[ $(id -u) -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
    else
        echo "wrk is missing: apt-get install wrk" >&2
        exit 1
    fi
}
