-- The purge of expired tokens at scale (issue 20).
--
-- 1. A token deleted more than a minute after its expiry is not announced to the other server
--    processes: every cache refuses a token past its expiry on its own (core/src/cache/tokens.rs),
--    so the announcement of a purged token only cost each process a notification to read, and
--    the purge one trigger call per token. A minute of margin covers clocks that differ between
--    the server hosts and PostgreSQL's. Revocations (logout, session and user deletions) are of
--    live tokens and still announced.
DROP TRIGGER auth_token_revoked ON auth_token;
CREATE TRIGGER auth_token_revoked
    AFTER DELETE OR UPDATE ON auth_token
    FOR EACH ROW
    WHEN (OLD.expire_t >= extract(epoch FROM now()) - 60)
    EXECUTE FUNCTION wazo_auth_notify_token_revoked();

-- 2. Autovacuum of the tables that the purge and the bus empty in bulk. PostgreSQL's defaults
--    vacuum a table once a fifth of it is dead: with millions of live tokens, the space of a
--    day's purged tokens would wait for it, and the next day's tokens would grow the files
--    instead of reusing it. Here a table is vacuumed after 2 % of dead rows (at least 10,000),
--    without the cost-based throttling that makes a vacuum of millions of rows take longer than
--    the next purge cycle; the outbox, a queue, is vacuumed after 1,000 dead rows.
ALTER TABLE auth_token SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE auth_session SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE auth_event_outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
