-- One trigram index for the user search (issue 20), instead of one per searched column (V12,
-- V16). A search matches users by firstname, lastname, username or address: with an index per
-- column, each search scanned four indexes, and a common part of the search (`ser` in every
-- `user…` name and address) was read from two of them. This index holds the four texts of each
-- user on one line each; a search reads it once, and the four columns are then checked row by row
-- (the index finds a superset: a pattern may match across two lines, never miss a row that one
-- column matches). The expression is `users::SEARCH_TEXT` in core/src/users.rs: the two must
-- stay the same, or the search no longer uses the index (tests/tests/users.rs checks the plan).
--
-- Runs again harmlessly (IF NOT EXISTS / IF EXISTS), as V12 and V16.
CREATE INDEX IF NOT EXISTS auth_user__idx__search_trgm ON auth_user USING gin (
    (coalesce(firstname, '') || E'\n' || coalesce(lastname, '') || E'\n'
     || coalesce(username, '') || E'\n' || email_search) gin_trgm_ops);

DROP INDEX IF EXISTS auth_user__idx__firstname_trgm;
DROP INDEX IF EXISTS auth_user__idx__lastname_trgm;
DROP INDEX IF EXISTS auth_user__idx__username_trgm;
DROP INDEX IF EXISTS auth_user__idx__email_search_trgm;
