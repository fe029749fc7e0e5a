-- The e-mail addresses of each user, on the user's row, for `GET /users?search=` (issue 20).
--
-- A search matches a user by first name, last name, user name, or one of its addresses. The
-- first three are trigram-indexed columns of auth_user (V12), so that their matches are one
-- BitmapOr over the user table; the addresses are rows of auth_email, whose matches had to be
-- looked up in the user table one by one (6-7 ms for 1,111 users at a million users, a third of
-- the search). Here each user row also holds its addresses, one per line in `email_search`,
-- trigram-indexed like the names, so that the four arms are one BitmapOr. The listing still
-- checks the address itself (a pattern could match across two lines), so the column only has to
-- hold every address: it is kept so by statement-level triggers on auth_email, in the same
-- transaction as the change.
--
-- Two transactions changing the addresses of one user at once: each trigger first locks the
-- user's row, then reads the addresses in a statement of its own (a new snapshot under READ
-- COMMITTED), so that the second one to lock sees the first one's committed addresses.
--
-- On a large database, this migration rewrites every user row that has addresses and builds the
-- index while holding the table (about a minute per million users on two cores).
--
-- Re-running this migration is harmless: the column is filled again from auth_email.
ALTER TABLE auth_user ADD COLUMN IF NOT EXISTS email_search text NOT NULL DEFAULT '';

CREATE OR REPLACE FUNCTION wazo_auth_email_search() RETURNS trigger AS $$
DECLARE
    users text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT user_uuid) INTO users FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT user_uuid) INTO users FROM old_rows;
    ELSE
        -- Only the users whose addresses changed: a confirmation (an UPDATE of another column)
        -- locks no user row. It locks the address before the user, where the replacement of a
        -- user's addresses and the deletion of a user lock the user first.
        SELECT array_agg(DISTINCT user_uuid) INTO users
            FROM ((SELECT uuid, address, user_uuid FROM new_rows
                   EXCEPT SELECT uuid, address, user_uuid FROM old_rows)
                  UNION ALL
                  (SELECT uuid, address, user_uuid FROM old_rows
                   EXCEPT SELECT uuid, address, user_uuid FROM new_rows)) c;
    END IF;
    IF users IS NULL THEN
        RETURN NULL;
    END IF;
    -- NO KEY UPDATE, as the user services lock a user: it does not conflict with the KEY SHARE
    -- locks of the rows that reference the user (its addresses, groups, policies).
    PERFORM 1 FROM auth_user u WHERE u.uuid IN (SELECT unnest(users))
        ORDER BY u.uuid FOR NO KEY UPDATE;
    UPDATE auth_user u SET email_search = x.addresses
        FROM (SELECT c.user_uuid,
                     coalesce((SELECT string_agg(e.address, E'\n' ORDER BY e.address)
                               FROM auth_email e WHERE e.user_uuid = c.user_uuid), '')
                         AS addresses
              FROM unnest(users) AS c(user_uuid)) x
        WHERE u.uuid = x.user_uuid AND u.email_search <> x.addresses;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS auth_email_search_insert ON auth_email;
DROP TRIGGER IF EXISTS auth_email_search_update ON auth_email;
DROP TRIGGER IF EXISTS auth_email_search_delete ON auth_email;
CREATE TRIGGER auth_email_search_insert AFTER INSERT ON auth_email
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION wazo_auth_email_search();
CREATE TRIGGER auth_email_search_update AFTER UPDATE ON auth_email
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION wazo_auth_email_search();
CREATE TRIGGER auth_email_search_delete AFTER DELETE ON auth_email
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION wazo_auth_email_search();

-- Every user (one without addresses gets an empty line, whatever it held).
UPDATE auth_user u SET email_search = x.addresses
    FROM (SELECT v.uuid, coalesce(string_agg(e.address, E'\n' ORDER BY e.address), '') AS addresses
          FROM auth_user v LEFT JOIN auth_email e ON e.user_uuid = v.uuid
          GROUP BY v.uuid) x
    WHERE u.uuid = x.uuid AND u.email_search <> x.addresses;

CREATE INDEX IF NOT EXISTS auth_user__idx__email_search_trgm
    ON auth_user USING gin (email_search gin_trgm_ops);
