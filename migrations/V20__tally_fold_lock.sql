-- The row tallies (V15, V18) are folded by every server about every second (issue 20), no longer
-- by the cleanup turn alone. A fold deletes a table's appended rows and inserts their sum; a
-- TRUNCATE's trigger (or a recount by `wazo_auth_tally_table`) deletes the table's rows. Run at
-- the same time, the second could wait on the rows the first deletes, then skip them, and never
-- see the sum row the first inserted: that sum would outlive the truncated table. So they take
-- one advisory lock ("wazotaly"): the fold only when it is free (`pg_try_advisory_xact_lock`,
-- in `Storage::fold_tallies_over`: a busy fold is skipped, and folds of several servers never
-- queue), the others waiting for it, then deleting in a statement that sees the fold's rows.
--
-- Runs again harmlessly (CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION wazo_auth_tally_truncate() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(8602291382366858361);
    DELETE FROM auth_tally WHERE tbl = TG_TABLE_NAME;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION wazo_auth_tally_table(t text) RETURNS void AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_tally_insert', t);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS inserted
                    FOR EACH STATEMENT EXECUTE FUNCTION wazo_auth_tally_insert()',
                   t || '_tally_insert', t);
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_tally_delete', t);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS deleted
                    FOR EACH STATEMENT EXECUTE FUNCTION wazo_auth_tally_delete()',
                   t || '_tally_delete', t);
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_tally_truncate', t);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION wazo_auth_tally_truncate()',
                   t || '_tally_truncate', t);
    PERFORM pg_advisory_xact_lock(8602291382366858361);
    DELETE FROM auth_tally WHERE tbl = t;
    EXECUTE format('INSERT INTO auth_tally (tbl, n) SELECT %L, count(*) FROM %I', t, t);
END;
$$ LANGUAGE plpgsql;

-- Vacuum still truncates the table's empty end (its default): the listings' totals scan every
-- page of the table, and a high-water mark left by a burst of writes would cost each of them
-- (0.15-0.5 ms for 82 pages, seen with truncation off). The truncation's lock is taken only when
-- free, and given up as soon as a writer waits for it.
