# Sourced (not run) by bench/scale.sh and bench/purge.sh: seeds a throw-away server's database
# with set-based SQL. Needs $work (scripts/throwaway-server.sh).
#
#   psql_seed ARGS...            # psql on the server's private PostgreSQL, as its owner
#   seed WHAT SQL                # runs SQL, prints how long it took
#   seed_set PREFIX TENANTS USERS POLICIES GROUPS LIVE EXPIRED
#                                # one data set (see below)
#   seed_tokens PREFIX TENANTS USERS WHAT COUNT FIRST EXPIRY
#                                # COUNT more sessions and tokens of a set; EXPIRY is SQL
#
# Every uuid is md5(PREFIX-kind || i) (as bench/run.sh's; a session's begins with its time, see
# seed_tokens): the measurements can name known rows, and PREFIX keeps two sets apart.

seed_socket() { echo "$work/pg/socket"; }
seed_pgbin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }
seed_as_owner() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_seed() {
    seed_as_owner "$(seed_pgbin)/psql" -qtA -v ON_ERROR_STOP=1 -h "$(seed_socket)" -U postgres \
        -d wazo_auth "$@"
}

# Arithmetic on decimals (awk: no bc needed): calc '1.5 * 2'.
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# The server runs meanwhile (its cleanup turn among others): a statement that PostgreSQL ends as
# one side of a deadlock (each is one transaction, so nothing of it stays) is run again, twice
# at most.
seed() { # what, SQL
    local started ended attempt
    started=$(date +%s.%N)
    for attempt in 1 2 3; do
        if psql_seed -c "$2" >/dev/null 2>"$work/seed-error.txt"; then
            break
        fi
        cat "$work/seed-error.txt" >&2
        if [[ $attempt == 3 ]] || ! grep -q "deadlock detected" "$work/seed-error.txt"; then
            return 1
        fi
        echo "seed: $1: deadlock, run again" >&2
    done
    ended=$(date +%s.%N)
    printf 'seeded %-28s %8.1f s\n' "$1" "$(calc "$ended - $started")"
}

# SQL around a bulk insert into TABLES (a quoted, comma-separated list): their trigram (GIN)
# indexes are dropped before (gin_off) and built again from their own definitions after
# (gin_on), in the same transaction. A million rows inserted one by one into four GIN indexes
# took more than 5 minutes; a build takes seconds.
gin_off() { # tables
    echo "CREATE TEMP TABLE seed_gin AS
              SELECT indexname, indexdef FROM pg_indexes
              WHERE tablename IN ($1) AND indexdef LIKE '% USING gin %';
          DO \$\$ DECLARE r record; BEGIN
              FOR r IN SELECT indexname FROM seed_gin LOOP
                  EXECUTE format('DROP INDEX %I', r.indexname);
              END LOOP;
          END \$\$;"
}
gin_on() {
    echo "SET LOCAL maintenance_work_mem = '512MB';
          DO \$\$ DECLARE r record; BEGIN
              FOR r IN SELECT indexdef FROM seed_gin LOOP EXECUTE r.indexdef; END LOOP;
          END \$\$;
          DROP TABLE seed_gin;"
}

# The same for every index and key of TABLES: their indexes, primary keys, unique constraints and
# the foreign keys from or to them are dropped before a bulk insert (indexes_off) and made again
# after (indexes_on: sorted index builds, then one check of each foreign key), in the same
# transaction. Rows inserted one by one into indexes keyed by random uuids and hashes each land
# on another leaf page.
indexes_off() { # tables
    echo "CREATE TEMP TABLE seed_idx AS
              WITH t AS (SELECT oid FROM pg_class WHERE relname IN ($1)
                             AND relnamespace = 'public'::regnamespace)
              SELECT 1 AS step, format('ALTER TABLE %s DROP CONSTRAINT %I',
                                       c.conrelid::regclass, c.conname) AS off,
                     format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass,
                            c.conname, pg_get_constraintdef(c.oid)) AS on_, 3 AS on_step
              FROM pg_constraint c
              WHERE c.contype = 'f' AND (c.conrelid IN (SELECT oid FROM t)
                                         OR c.confrelid IN (SELECT oid FROM t))
              UNION ALL
              SELECT 2, format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass,
                               c.conname),
                     format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass,
                            c.conname, pg_get_constraintdef(c.oid)), 1
              FROM pg_constraint c
              WHERE c.contype IN ('p', 'u') AND c.conrelid IN (SELECT oid FROM t)
              UNION ALL
              SELECT 2, format('DROP INDEX %s', i.indexrelid::regclass),
                     pg_get_indexdef(i.indexrelid), 2
              FROM pg_index i
              WHERE i.indrelid IN (SELECT oid FROM t)
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
          DO \$\$ DECLARE r record; BEGIN
              FOR r IN SELECT off FROM seed_idx ORDER BY step LOOP EXECUTE r.off; END LOOP;
          END \$\$;"
}
indexes_on() {
    echo "SET LOCAL maintenance_work_mem = '1GB';
          DO \$\$ DECLARE r record; BEGIN
              FOR r IN SELECT on_ FROM seed_idx ORDER BY on_step LOOP EXECUTE r.on_; END LOOP;
          END \$\$;
          DROP TABLE seed_idx;"
}

# COUNT sessions and tokens of set PREFIX (of TENANTS tenants and USERS users), numbered from
# FIRST: one session per token, of tenant i % tenants; tokens of user i % users. Token i's id is
# md5('PREFIX-k' || i) as a uuid (stored, as the server does, as the SHA-256 of its text), so that
# the measurements can use known tokens. Sessions are created a millisecond apart.
seed_tokens() { # prefix, tenants, users, what, count, first i, expiry (SQL, epoch seconds)
    local p=$1 tenants=$2 users=$3 sessions
    # Session i's uuid: a version 7 one, as the server makes (core's `new_session_uuid`): its
    # time (created_at, in milliseconds) first, then md5('PREFIX-s' || i).
    sessions="overlay(overlay(overlay(md5('$p-s' || i)
                  placing lpad(to_hex(floor(extract(epoch FROM now()) * 1000)::bigint - i), 12, '0')
                  from 1 for 12) placing '7' from 13 for 1) placing '8' from 17 for 1)::uuid::text"
    # Inserted with their indexes and keys in place, each row landed on another leaf page of
    # each index (random uuids and hashes) and was checked by the foreign keys' triggers: 20-23
    # minutes for the 15 M tokens of SCALE=1, 4 times what the sorted builds after the insert take
    # (indexes_off / indexes_on). SEED_IN_PLACE=1 keeps them in place (bench/purge.sh's cycles:
    # the indexes then grow as a server's do, not rebuilt compact at each cycle). The tables' own
    # triggers are off for these statements: the token tally's (migration V15) would keep every
    # inserted row in a transition table; the tally gets the count in the same transaction.
    # Everything is one transaction.
    local off on triggers=ALL
    if [[ ${SEED_IN_PLACE:-0} == 0 && $5 -gt 0 ]]; then
        off=$(indexes_off "'auth_token', 'auth_session'") on=$(indexes_on)
    else
        off= on= triggers=auth_token_tally_insert
    fi
    # Both tables are locked first, tokens then sessions, as the server's purge takes them.
    # (Dropping the keys locks them one at a time in another order: a deadlock with the
    # server's purge, seen in CI.)
    seed "$4" "
        LOCK TABLE auth_token, auth_session IN ACCESS EXCLUSIVE MODE;
        $off
        ALTER TABLE auth_token DISABLE TRIGGER $triggers;
        ALTER TABLE auth_session DISABLE TRIGGER ALL;
        INSERT INTO auth_session (uuid, tenant_uuid, created_at)
        SELECT $sessions, md5('$p-t' || (i % $tenants))::uuid::text,
               now() - i * interval '1 millisecond'
        FROM generate_series($6, $6 + $5 - 1) AS i;
        INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, metadata, session_uuid,
                                user_agent, remote_addr, acl)
        SELECT sha256(convert_to(md5('$p-k' || i)::uuid::text, 'UTF8')), u.uuid,
               extract(epoch FROM now()), $7,
               jsonb_build_object('auth_id', u.uuid, 'uuid', u.uuid, 'purpose', 'user'),
               $sessions, 'scale', '127.0.0.1',
               ARRAY['confd.users.me.read', 'calld.users.me.#', 'auth.users.me.#']
        FROM generate_series($6, $6 + $5 - 1) AS i,
             LATERAL (SELECT md5('$p-u' || (i % $users))::uuid::text AS uuid) AS u;
        INSERT INTO auth_tally (tbl, n) VALUES ('auth_token', $5);
        ALTER TABLE auth_token ENABLE TRIGGER $triggers;
        ALTER TABLE auth_session ENABLE TRIGGER ALL;
        $on"
}

# Seeds one data set: tenants in chains 10 deep under the top tenant, users, policies, groups
# (each user in one group, with one policy of its own; each group with one policy), one refresh
# token per user, sessions and live and expired tokens. Every uuid is md5(PREFIX-kind || i), so
# that the measurements can name known rows, and `PREFIX` keeps two sets apart.
seed_set() { # prefix, tenants, users, policies, groups, live tokens, expired tokens
    local p=$1 tenants=$2 users=$3 policies=$4 groups=$5 live=$6 expired=$7
    echo "scale: seeding $p: $tenants tenants, $users users, $policies policies, $groups groups," \
        "$live live and $expired expired tokens"
    # Tenant i (0-based) is under tenant i-1, or under the top tenant for every tenth: chains 10
    # deep. Deterministic uuids (md5 of a name), as bench/run.sh's.
    seed "tenants ($tenants)" "
        INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
        SELECT md5('$p-t' || i)::uuid::text, '$p-t' || i, left('$p' || i, 10),
               CASE WHEN i % 10 = 0 THEN (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
                    ELSE md5('$p-t' || (i - 1))::uuid::text END
        FROM generate_series(0, $tenants - 1) AS i ORDER BY i"
    seed "users ($users)" "
        $(gin_off "'auth_user', 'auth_email'")
        INSERT INTO auth_user (uuid, username, firstname, lastname, tenant_uuid, email_search)
        SELECT md5('$p-u' || i)::uuid::text, '$p-user' || i, 'First' || i, 'Last' || i,
               md5('$p-t' || (i % $tenants))::uuid::text, '$p-user' || i || '@example.com'
        FROM generate_series(0, $users - 1) AS i;
        -- The users' address lines are written above (V16's trigger would rewrite every user).
        ALTER TABLE auth_email DISABLE TRIGGER auth_email_search_insert;
        INSERT INTO auth_email (address, confirmed, main, user_uuid)
        SELECT '$p-user' || i || '@example.com', true, true, md5('$p-u' || i)::uuid::text
        FROM generate_series(0, $users - 1) AS i;
        ALTER TABLE auth_email ENABLE TRIGGER auth_email_search_insert;
        $(gin_on)"
    seed "policies ($policies)" "
        INSERT INTO auth_policy (uuid, name, slug, tenant_uuid, acl)
        SELECT md5('$p-p' || i)::uuid::text, 'policy-' || i, 'policy-' || i,
               md5('$p-t' || (i % $tenants))::uuid::text,
               ARRAY['confd.users.me.read', 'calld.users.me.#', 'auth.users.me.#', 'p' || i || '.#']
        FROM generate_series(0, $policies - 1) AS i"
    seed "groups ($groups) and members" "
        INSERT INTO auth_group (uuid, name, slug, tenant_uuid)
        SELECT md5('$p-g' || i)::uuid::text, 'group-' || i, 'group-' || i,
               md5('$p-t' || (i % $tenants))::uuid::text
        FROM generate_series(0, $groups - 1) AS i;
        INSERT INTO auth_group_policy (group_uuid, policy_uuid)
        SELECT md5('$p-g' || i)::uuid::text, md5('$p-p' || (i % $policies))::uuid::text
        FROM generate_series(0, $groups - 1) AS i;
        INSERT INTO auth_user_group (group_uuid, user_uuid)
        SELECT md5('$p-g' || (i % $groups))::uuid::text, md5('$p-u' || i)::uuid::text
        FROM generate_series(0, $users - 1) AS i;
        INSERT INTO auth_user_policy (user_uuid, policy_uuid)
        SELECT md5('$p-u' || i)::uuid::text, md5('$p-p' || (i % $policies))::uuid::text
        FROM generate_series(0, $users - 1) AS i"
    seed "refresh tokens ($users)" "
        INSERT INTO auth_refresh_token (uuid, token_hash, key_id, client_id, user_uuid, backend,
                                        login, created_at)
        SELECT md5('$p-r' || i)::uuid::text, sha256(convert_to('$p-r' || i, 'UTF8')), 'scale',
               'client-' || (i % 7), md5('$p-u' || i)::uuid::text, 'wazo_user', '$p-user' || i,
               now() - i * interval '1 second'
        FROM generate_series(0, $users - 1) AS i"
    seed_tokens "$p" "$tenants" "$users" "live tokens ($live)" "$live" 0 \
        "extract(epoch FROM now()) + 86400"
    seed_tokens "$p" "$tenants" "$users" "expired tokens ($expired)" "$expired" "$live" \
        "extract(epoch FROM now()) - 60"
}

# The id of token i of set PREFIX.
seed_token_id() { python3 -c 'import hashlib, sys, uuid; print(uuid.UUID(hashlib.md5((sys.argv[1] + "-k" + sys.argv[2]).encode()).hexdigest()))' "$1" "$2"; }
