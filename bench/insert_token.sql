-- pgbench: the database work of one login, the ceiling of logins that need no password hashing:
-- the same statement the server runs (a session, its auth_session_created outbox row and its
-- token, with the top tenant).
WITH t AS (
    SELECT COALESCE(NULL, (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1)) AS uuid),
 s AS (
    INSERT INTO auth_session (uuid, mobile, tenant_uuid)
    -- A version 7 uuid, as the server's (time first: appended to the session indexes).
    SELECT overlay(overlay(overlay(md5(random()::text)
               placing lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
               from 1 for 12) placing '7' from 13 for 1) placing '8' from 17 for 1)::uuid::text,
           false, uuid FROM t RETURNING uuid, tenant_uuid, mobile),
 ev AS (
    INSERT INTO auth_event_outbox (name, routing_key, headers, data)
    SELECT 'auth_session_created', 'auth.sessions.' || s.uuid || '.created',
           jsonb_build_object('name', 'auth_session_created', 'tenant_uuid', s.tenant_uuid,
               'session_uuid', s.uuid, 'required_access', 'event.auth_session_created',
               'required_acl', 'events.auth.sessions.' || s.uuid || '.created')
           || CASE WHEN NULL::text <> '' THEN jsonb_build_object('user_uuid:' || NULL::text, true)
                   ELSE '{}'::jsonb END,
           jsonb_build_object('uuid', s.uuid, 'tenant_uuid', s.tenant_uuid,
               'user_uuid', NULL::text, 'mobile', s.mobile)
    FROM s)
INSERT INTO auth_token (token_hash, auth_id, pbx_user_uuid, xivo_uuid, issued_t, expire_t,
                        metadata, session_uuid, user_agent, remote_addr, acl, refresh_token_uuid)
SELECT sha256(convert_to(gen_random_uuid()::text, 'UTF8')), 'alice', NULL, NULL,
       extract(epoch FROM clock_timestamp()), extract(epoch FROM clock_timestamp()) + 600,
       '{"auth_id": "alice", "uuid": "alice", "purpose": "user"}'::jsonb, s.uuid, 'wrk',
       '127.0.0.1', ARRAY['confd.#', 'auth.users.me.#'], NULL
FROM s;
