-- The transactional outbox of bus events (issue 13). A change that causes an event writes its row
-- here in the same transaction, so an event is published if and only if its change commits, even
-- when the process dies right after the commit. A publisher task reads the rows, sends each to the
-- AMQP exchange and deletes it once the broker has confirmed it.
--
-- One row is one event as wazo-bus describes it, less what the publisher adds when it sends:
--   name         the event name (`auth_tenant_added`...), also the `name` header;
--   routing_key  the AMQP routing key (`auth.tenants.<uuid>.created`...);
--   headers      the event's own headers: name, tenant_uuid, user_uuid:<uuid> or user_uuid:*,
--                required_access, required_acl (and any other header of that event); the
--                publisher adds origin_uuid (the server's uuid) and timestamp (from created_at);
--   data         the event's content, sent as the body's `data`;
--   created_at   when the event happened;
--   xid          the writing transaction, so that the publisher can keep to commit order (a row
--                is only taken once no transaction older than it is still running).

CREATE TABLE auth_event_outbox (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    name text NOT NULL,
    routing_key text NOT NULL,
    headers jsonb NOT NULL,
    data jsonb NOT NULL
);
