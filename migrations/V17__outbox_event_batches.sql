-- Several events in one outbox row (issue 20): the events of a purge batch.
--
-- The purge of a backlog ends thousands of sessions a second, each with its
-- `auth_session_deleted` event. One outbox row per event cost PostgreSQL an insert, a read, a
-- delete and a vacuum per session, about as much as the deletion of the session itself, and
-- left millions of rows waiting at once. A purge batch now writes the events of all the sessions
-- it ended as rows of this table, of at most 500 events each:
--
--   id           from the sequence of auth_event_outbox's ids: the rows of both tables are one
--                sequence of events, published in id order;
--   created_at, xid, name   as in auth_event_outbox (V9), for every event of the row;
--   events       a JSON array of the events, in order, each an object {"routing_key", "headers",
--                "data"} with the meaning of auth_event_outbox's columns of those names;
--   event_count  the length of `events`, so that the publisher can bound what it reads without
--                reading the arrays.
--
-- The publisher sends a row's events in order and deletes the row once the broker has confirmed
-- them all; a row half sent when the publisher stops is sent again whole (at-least-once, as
-- before). The rows are in a table of their own so that a publisher of the previous version,
-- during a rolling upgrade, never sees them: they wait until a node of this version publishes.
--
-- Re-running this migration is harmless (tests/tests/import.rs runs V11 and later again).
CREATE TABLE IF NOT EXISTS auth_event_outbox_batch (
    id bigint PRIMARY KEY DEFAULT nextval('auth_event_outbox_id_seq'),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    name text NOT NULL,
    events jsonb NOT NULL,
    event_count integer NOT NULL,
    -- A row without events would never be confirmed, so never deleted.
    CHECK (event_count > 0 AND jsonb_typeof(events) = 'array'
           AND jsonb_array_length(events) = event_count)
);

-- A queue, as auth_event_outbox (V13).
ALTER TABLE auth_event_outbox_batch SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 100,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 100,
    autovacuum_vacuum_cost_delay = 0
);
