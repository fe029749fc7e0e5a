#!/usr/bin/env bash
# Installs what wazo-auth needs on a Debian machine, if missing:
#   - the PostgreSQL server binaries (initdb, pg_ctl, postgres): package `postgresql`;
#   - a C++ compiler, for libFuzzer in scripts/fuzz.sh: package `g++`;
#   - RabbitMQ (`rabbitmq-server`), the AMQP broker the tests start privately
#     (tests/src/rabbitmq.rs) and a development broker for the bus events;
#   - aiosmtpd (`python3-aiosmtpd`), the SMTP server the tests start privately
#     (tests/src/smtp.rs) to receive the mails the server sends;
#   - OpenLDAP (`slapd`, `ldap-utils`), the directory the LDAP login tests start privately
#     (tests/src/slapd.rs); the package is asked not to configure a directory of its own;
#   - HAProxy (`haproxy`), the balancer the multi-node tests start privately in front of several
#     servers (tests/src/haproxy.rs); the package's own service is neither started nor enabled.
#   - PgBouncer (`pgbouncer`), the connection pooler the tests start privately in transaction
#     pooling mode (tests/src/pgbouncer.rs); the package's own service is not started.
#
# wazo-auth runs its own private PostgreSQL cluster (see pg-cluster/src/lib.rs),
# so the Debian package's default cluster is not needed: this script asks the
# package not to create it and does not start any service (neither PostgreSQL's
# nor RabbitMQ's, HAProxy's nor PgBouncer's: the tests run their own broker, balancer and
# pooler as plain processes).
#
# Usage: scripts/install-deps.sh        (as root; otherwise prints what to run)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

log() { printf 'install-deps: %s\n' "$*"; }

# True if PostgreSQL server binaries are installed.
have_pg_server() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
            return 0
        fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            return 0
        fi
    fi
    return 1
}

# True if the RabbitMQ server is installed (the Debian package puts it in /usr/sbin, which a
# non-root PATH may lack).
have_rabbitmq() {
    command -v rabbitmq-server >/dev/null 2>&1 || [[ -x /usr/sbin/rabbitmq-server ]] \
        || [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]
}

# True if OpenLDAP's server and its command-line tools are installed.
have_slapd() {
    { command -v slapd >/dev/null 2>&1 || [[ -x /usr/sbin/slapd ]]; } \
        && command -v ldapadd >/dev/null 2>&1
}

# True if HAProxy is installed (in /usr/sbin, which a non-root PATH may lack).
have_haproxy() {
    command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]]
}

# True if PgBouncer is installed (in /usr/sbin, which a non-root PATH may lack).
have_pgbouncer() {
    command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]]
}

missing=()
have_pg_server || missing+=(postgresql)
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || missing+=(g++)
have_rabbitmq || missing+=(rabbitmq-server)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || missing+=(python3-aiosmtpd)
have_slapd || missing+=(slapd ldap-utils)
have_haproxy || missing+=(haproxy)
have_pgbouncer || missing+=(pgbouncer)

if [[ ${#missing[@]} -eq 0 ]]; then
    log "all dependencies are installed"
    exit 0
fi

if [[ "$EUID" -ne 0 ]]; then
    log "missing: ${missing[*]}" >&2
    log "run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    log "(or run this script as root: sudo $0)" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${missing[*]}, and apt-get is not available (not Debian?): install the" >&2
    log "PostgreSQL server binaries (initdb, pg_ctl, postgres) and RabbitMQ (rabbitmq-server)" >&2
    log "with your package manager" >&2
    exit 1
fi

# Clusters existing before the installation (to tell apart the one the package may create).
clusters_before="$(ls -d /etc/postgresql/*/*/ 2>/dev/null || true)"

# Ask postgresql-common not to create its "main" cluster (read through the
# include_dir of /etc/postgresql-common/createcluster.conf).
createcluster_dropin=/etc/postgresql-common/createcluster.d/wazo-auth.conf
if [[ ! -e "$createcluster_dropin" ]]; then
    mkdir -p "$(dirname "$createcluster_dropin")"
    cat >"$createcluster_dropin" <<'EOF'
# Written by wazo-auth scripts/install-deps.sh: wazo-auth runs its own private
# PostgreSQL cluster, the package's default "main" cluster is not needed.
create_main_cluster = false
EOF
fi

# Do not start any service during the installation (policy-rc.d exit 101 =
# "action forbidden"); keep an existing policy (e.g. Docker images have one).
policy=/usr/sbin/policy-rc.d
our_policy=0
apt_log="$(mktemp)"
cleanup() {
    if [[ "$our_policy" -eq 1 ]]; then
        rm -f "$policy"
    fi
    rm -f "$apt_log"
}
trap cleanup EXIT
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# temporary, from wazo-auth scripts/install-deps.sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    our_policy=1
fi

# Quiet: the apt output is shown only if something fails.
apt_quiet() {
    if ! "$@" >>"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        log "failed: $*" >&2
        exit 1
    fi
}

# slapd: no directory of the package's own (the tests configure theirs).
if command -v debconf-set-selections >/dev/null 2>&1; then
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
fi

log "installing: ${missing[*]}"
apt_quiet apt-get update -qq
apt_quiet apt-get install -y -qq --no-install-recommends "${missing[@]}"

if ! have_pg_server; then
    log "PostgreSQL server binaries still not found after installing ${missing[*]}" >&2
    exit 1
fi
if ! have_rabbitmq; then
    log "rabbitmq-server still not found after installing ${missing[*]}" >&2
    exit 1
fi
if ! have_slapd; then
    log "slapd or ldapadd still not found after installing ${missing[*]}" >&2
    exit 1
fi

if ! have_haproxy; then
    log "haproxy still not found after installing ${missing[*]}" >&2
    exit 1
fi
# The package enables its service for the next boot (policy-rc.d only kept it from starting
# now); the tests run their own HAProxy, so the system one stays off.
if [[ " ${missing[*]} " == *" haproxy "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable haproxy >/dev/null 2>&1 || true
fi
# Likewise PgBouncer: the tests run their own, the system one stays off.
if [[ " ${missing[*]} " == *" pgbouncer "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable pgbouncer >/dev/null 2>&1 || true
fi
if ! have_pgbouncer; then
    log "pgbouncer still not found after installing ${missing[*]}" >&2
    exit 1
fi

clusters_after="$(ls -d /etc/postgresql/*/*/ 2>/dev/null || true)"
if [[ "$clusters_after" != "$clusters_before" ]]; then
    log "note: the postgresql package created a default cluster, which wazo-auth does not need;"
    log "it was not started. Remove it with: pg_dropcluster <version> main"
fi

log "done"
