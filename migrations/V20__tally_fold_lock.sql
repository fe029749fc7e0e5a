-- The row tallies (V15, V18) are folded by every server about every second (issue 20), no longer
-- by the cleanup turn alone. A fold deletes a table's appended rows and inserts their sum; a
-- TRUNCATE's trigger deletes the table's rows. Run at the same time, the trigger could wait on
-- the rows the fold deletes, then skip them, and never see the sum row the fold inserted: that
-- sum would outlive the truncated table. So both take one advisory lock ("wazotaly"): the fold
-- only when it is free (`pg_try_advisory_xact_lock`, in `Storage::fold_tallies_over`: a busy
-- fold is skipped, and the folds of several servers never queue), the trigger waiting for it,
-- then deleting in a statement that sees the fold's rows.
--
-- A later migration that recounts a table with `wazo_auth_tally_table` (V18) takes the same lock
-- first (`SELECT pg_advisory_xact_lock(8602291382366858361)`), for the same reason.
--
-- Runs again harmlessly (CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION wazo_auth_tally_truncate() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(8602291382366858361);
    DELETE FROM auth_tally WHERE tbl = TG_TABLE_NAME;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Vacuum still truncates the table's empty end (its default): the listings' totals scan every
-- page of the table, and a high-water mark left by a burst of writes would cost each of them
-- (0.15-0.5 ms for 82 pages, seen with truncation off). The truncation's lock is taken only when
-- free, and given up as soon as a writer waits for it.
