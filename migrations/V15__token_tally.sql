-- The number of tokens, kept as it changes (issue 20).
--
-- `GET /sessions?recurse=true` from the top tenant answers the exact number of (session, token)
-- pairs, which is the number of tokens. Counted, that is a scan of every token: about half a
-- second at 10 M tokens. It is kept here instead: statement-level triggers append one row per
-- statement that inserted or deleted tokens, with the number it added (or minus the number it
-- removed), in the same transaction. The sum of `n` that a snapshot sees is exactly what
-- `count(*) FROM auth_token` would be in that snapshot.
--
-- Appending takes no lock that another writer waits on (an update of a shared counter row would
-- make every login wait for the previous one's commit, and could deadlock with other locks).
-- The cleanup turn folds the appended rows into one (`tokens::fold_token_tally`), so that the
-- sum stays over a few rows. A TRUNCATE empties the tally with the table.
--
-- Re-running this migration is harmless: the tally is recounted under a lock that keeps token
-- writes out.
CREATE TABLE IF NOT EXISTS auth_token_tally (n bigint NOT NULL)
    WITH (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0,
          autovacuum_vacuum_insert_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0);

CREATE OR REPLACE FUNCTION wazo_auth_token_tally_insert() RETURNS trigger AS $$
BEGIN
    INSERT INTO auth_token_tally (n) SELECT count(*) FROM inserted HAVING count(*) > 0;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION wazo_auth_token_tally_delete() RETURNS trigger AS $$
BEGIN
    INSERT INTO auth_token_tally (n) SELECT -count(*) FROM deleted HAVING count(*) > 0;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION wazo_auth_token_tally_truncate() RETURNS trigger AS $$
BEGIN
    DELETE FROM auth_token_tally;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

LOCK TABLE auth_token IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS auth_token_tally_insert ON auth_token;
CREATE TRIGGER auth_token_tally_insert
    AFTER INSERT ON auth_token
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION wazo_auth_token_tally_insert();

DROP TRIGGER IF EXISTS auth_token_tally_delete ON auth_token;
CREATE TRIGGER auth_token_tally_delete
    AFTER DELETE ON auth_token
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT
    EXECUTE FUNCTION wazo_auth_token_tally_delete();

DROP TRIGGER IF EXISTS auth_token_tally_truncate ON auth_token;
CREATE TRIGGER auth_token_tally_truncate
    AFTER TRUNCATE ON auth_token
    FOR EACH STATEMENT
    EXECUTE FUNCTION wazo_auth_token_tally_truncate();

DELETE FROM auth_token_tally;
INSERT INTO auth_token_tally (n) SELECT count(*) FROM auth_token;
