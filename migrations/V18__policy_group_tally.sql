-- The row tallies of V15, for two more tables: `auth_policy` and `auth_group` (issue 20).
--
-- `GET /policies` and `GET /groups` from the top tenant answer the number of every policy or
-- group. Counted, each is a scan of the whole table: 15-30 ms at 100 k rows, most of such a
-- listing's time. The same statement-level triggers as V15 keep their counts in `auth_tally`
-- (creations and deletions of policies and groups are rare: a row appended per statement costs
-- nothing that matters).
--
-- Re-running this migration is harmless (tests/tests/import.rs runs V11 and later again): the
-- tallies are recounted under locks that keep the tables' writers out.
--
-- Nodes of the previous version may be running. The locks are taken in the order in which a
-- tenant's deletion cascades to these tables (groups, then policies: the order their foreign
-- keys were created in V2), so that the two cannot deadlock; `auth_tally` itself is only
-- written (a row lock), as every login does.
LOCK TABLE auth_group, auth_policy IN SHARE ROW EXCLUSIVE MODE;

-- Tallies `t` from now on: V15's triggers, and its count. V15's own tables were set up by the
-- same steps, inline (a migration, once applied, does not change).
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
    DELETE FROM auth_tally WHERE tbl = t;
    EXECUTE format('INSERT INTO auth_tally (tbl, n) SELECT %L, count(*) FROM %I', t, t);
END;
$$ LANGUAGE plpgsql;

SELECT wazo_auth_tally_table('auth_group');
SELECT wazo_auth_tally_table('auth_policy');
