-- The periodic cleanup (expired-token purge, expire-soon notices, login-throttle purge) is run by
-- one server process at a time for the whole database (see core/src/cleanup.rs): this one row is
-- what they share.
--   last_run_at        epoch seconds of the start of the last complete run, by any process: a
--                      process skips its run when another one ran within its interval;
--   expire_soon_until  the end of the last window of auth_session_expire_soon notices written:
--                      the next window starts there, so that each session is announced once.
CREATE TABLE IF NOT EXISTS auth_cleanup_state (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_run_at double precision,
    expire_soon_until double precision
);
INSERT INTO auth_cleanup_state (id) VALUES (true) ON CONFLICT DO NOTHING;
