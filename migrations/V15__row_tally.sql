-- The number of rows of the biggest tables, kept as they change (issue 20).
--
-- The listings from the top tenant answer exact totals: `GET /sessions` the number of tokens
-- (each token has its session), `GET /users` the number of users, `GET /tokens` the number of
-- refresh tokens. Counted, each is a scan of the whole table: half a second at 10 M tokens,
-- 40-50 ms at a million users or refresh tokens. They are kept here instead: statement-level
-- triggers append one row per statement that inserted or deleted rows of those tables, with the
-- number it added (or minus the number it removed), in the same transaction. The sum of `n` of a
-- table that a snapshot sees is exactly what `count(*)` of that table would be in that snapshot.
--
-- Appending takes no lock that another writer waits on (an update of a shared counter row would
-- make every login wait for the previous one's commit, and could deadlock with other locks).
-- The cleanup turn folds the appended rows into one per table (`Storage::fold_tallies`), so that
-- the sums stay over a few rows. A TRUNCATE empties the table's tally with the table.
--
-- Re-running this migration is harmless: the tallies are recounted under locks that keep the
-- tables' writers out.
CREATE TABLE IF NOT EXISTS auth_tally (tbl text NOT NULL, n bigint NOT NULL)
    WITH (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0,
          autovacuum_vacuum_insert_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0);

CREATE OR REPLACE FUNCTION wazo_auth_tally_insert() RETURNS trigger AS $$
BEGIN
    INSERT INTO auth_tally (tbl, n) SELECT TG_TABLE_NAME, count(*) FROM inserted HAVING count(*) > 0;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION wazo_auth_tally_delete() RETURNS trigger AS $$
BEGIN
    INSERT INTO auth_tally (tbl, n) SELECT TG_TABLE_NAME, -count(*) FROM deleted HAVING count(*) > 0;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION wazo_auth_tally_truncate() RETURNS trigger AS $$
BEGIN
    DELETE FROM auth_tally WHERE tbl = TG_TABLE_NAME;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

LOCK TABLE auth_token, auth_user, auth_refresh_token IN SHARE ROW EXCLUSIVE MODE;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['auth_token', 'auth_user', 'auth_refresh_token'] LOOP
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
        EXECUTE 'DELETE FROM auth_tally WHERE tbl = $1' USING t;
        EXECUTE format('INSERT INTO auth_tally (tbl, n) SELECT %L, count(*) FROM %I', t, t);
    END LOOP;
END $$;
