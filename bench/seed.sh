# Sourced (not run) by bench/scale.sh and bench/purge.sh: seeds a throw-away server's database
# with set-based SQL. Needs $work (scripts/throwaway-server.sh) and, for seed_tokens, $tenants
# and $users.
#
#   psql_seed ARGS...            # psql on the server's private PostgreSQL, as its owner
#   seed WHAT SQL                # runs SQL, prints how long it took
#   seed_tenants                 # $tenants tenants, chains 10 deep under the top tenant
#   seed_users                   # $users users, user i in tenant i % $tenants
#   seed_tokens WHAT COUNT FIRST EXPIRY
#                                # COUNT sessions and tokens, numbered from FIRST; EXPIRY is SQL
#                                # (epoch seconds)
#
# Rows have deterministic uuids, md5 sums of a name (as bench/run.sh's): token i's id is
# md5('scale-k' || i) as a uuid, stored as the server stores it (the SHA-256 of its text), so the
# measurements can use known tokens.

seed_socket() { echo "$work/pg/socket"; }
seed_pgbin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }
seed_as_owner() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_seed() {
    seed_as_owner "$(seed_pgbin)/psql" -qtA -v ON_ERROR_STOP=1 -h "$(seed_socket)" -U postgres \
        -d wazo_auth "$@"
}

seed() { # what, SQL
    local started ended
    started=$(date +%s.%N)
    psql_seed -c "$2" >/dev/null
    ended=$(date +%s.%N)
    printf 'seeded %-28s %8.1f s\n' "$1" "$(echo "$ended - $started" | bc)"
}

# Tenant i (0-based) is under tenant i-1, or under the top tenant for every tenth: chains 10
# deep.
seed_tenants() {
    seed "tenants ($tenants)" "
        INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
        SELECT md5('scale-t' || i)::uuid::text, 'scale-t' || i, 's' || i,
               CASE WHEN i % 10 = 0 THEN (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
                    ELSE md5('scale-t' || (i - 1))::uuid::text END
        FROM generate_series(0, $tenants - 1) AS i ORDER BY i"
}

seed_users() {
    seed "users ($users)" "
        INSERT INTO auth_user (uuid, username, firstname, lastname, tenant_uuid)
        SELECT md5('scale-u' || i)::uuid::text, 'user' || i, 'First' || i, 'Last' || i,
               md5('scale-t' || (i % $tenants))::uuid::text
        FROM generate_series(0, $users - 1) AS i"
}

# One session per token, of tenant i % tenants; tokens of user i % users.
seed_tokens() { # what, count, first i, expiry (SQL, epoch seconds)
    seed "$1" "
        INSERT INTO auth_session (uuid, tenant_uuid)
        SELECT md5('scale-s' || i)::uuid::text, md5('scale-t' || (i % $tenants))::uuid::text
        FROM generate_series($3, $3 + $2 - 1) AS i;
        INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, metadata, session_uuid,
                                user_agent, remote_addr, acl)
        SELECT sha256(convert_to(md5('scale-k' || i)::uuid::text, 'UTF8')), u.uuid,
               extract(epoch FROM now()), $4,
               jsonb_build_object('auth_id', u.uuid, 'uuid', u.uuid, 'purpose', 'user'),
               md5('scale-s' || i)::uuid::text, 'scale', '127.0.0.1',
               ARRAY['confd.users.me.read', 'calld.users.me.#', 'auth.users.me.#']
        FROM generate_series($3, $3 + $2 - 1) AS i,
             LATERAL (SELECT md5('scale-u' || (i % $users))::uuid::text AS uuid) AS u"
}

# The id of seeded token i.
seed_token_id() { python3 -c 'import hashlib, sys, uuid; print(uuid.UUID(hashlib.md5(("scale-k" + sys.argv[1]).encode()).hexdigest()))' "$1"; }
