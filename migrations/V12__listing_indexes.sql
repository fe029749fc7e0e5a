-- Indexes of the listings (issue 20): a page of 100 rows costs the same with a thousand rows or
-- millions.
--
-- Substring searches (`ILIKE '%w1%w2%'`) are answered by trigram GIN indexes (pg_trgm, a trusted
-- extension since PostgreSQL 13: the database owner may create it). Each searched column has its
-- own index, so that an OR of searched columns is a BitmapOr of index scans.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- IF NOT EXISTS: a database whose history lost this version (tests/tests/import.rs rewinds one
-- to the previous version's) runs it again harmlessly.

CREATE INDEX IF NOT EXISTS auth_user__idx__username_trgm ON auth_user USING gin (username gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_user__idx__firstname_trgm ON auth_user USING gin (firstname gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_user__idx__lastname_trgm ON auth_user USING gin (lastname gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_email__idx__address_trgm ON auth_email USING gin (address gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_policy__idx__name_trgm ON auth_policy USING gin (name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_policy__idx__description_trgm ON auth_policy USING gin (description gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_group__idx__name_trgm ON auth_group USING gin (name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_tenant__idx__name_trgm ON auth_tenant USING gin (name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_tenant__idx__slug_trgm ON auth_tenant USING gin (slug gin_trgm_ops);
CREATE INDEX IF NOT EXISTS auth_tenant_domain__idx__name_trgm ON auth_tenant_domain USING gin (name gin_trgm_ops);

-- Pages in the listings' orders (the sort column, then the uuid as the tie-break, as the
-- statements order them): the first rows of a page are read from the index in order, with no
-- sort of the whole table. Scanned backwards for `direction=desc`.
CREATE INDEX IF NOT EXISTS auth_user__idx__username_uuid ON auth_user (username, uuid);
CREATE INDEX IF NOT EXISTS auth_user__idx__firstname_uuid ON auth_user (firstname, uuid);
CREATE INDEX IF NOT EXISTS auth_user__idx__lastname_uuid ON auth_user (lastname, uuid);
CREATE INDEX IF NOT EXISTS auth_policy__idx__name_uuid ON auth_policy (name, uuid);
CREATE INDEX IF NOT EXISTS auth_group__idx__name_uuid ON auth_group (name, uuid);
CREATE INDEX IF NOT EXISTS auth_tenant__idx__name_uuid ON auth_tenant (name, uuid);
CREATE INDEX IF NOT EXISTS auth_session__idx__created_at_uuid ON auth_session (created_at, uuid);
CREATE INDEX IF NOT EXISTS auth_refresh_token__idx__created_at_uuid ON auth_refresh_token (created_at, uuid);
