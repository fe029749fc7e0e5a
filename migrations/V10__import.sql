-- The import of a database made by the original wazo-auth (`wazo-auth import-original`).

-- What each imported row looked like in the source when it was last imported: a re-import
-- rewrites only the rows that changed in the source since, and removes the rows that the source
-- no longer has. `key` is the row's key in the source (never a secret: tokens are keyed by
-- their SHA-256, refresh tokens by client and user).
CREATE TABLE auth_import_state (
    kind text NOT NULL,
    key text NOT NULL,
    digest bytea NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);

-- Source rows that this server has no table for yet (the per-tenant LDAP and SAML
-- configuration, SAML login state): kept whole, so that nothing is dropped. Secrets (the LDAP
-- bind password) are sealed with the keyring in `sealed`, never in `data`.
CREATE TABLE auth_imported_row (
    kind text NOT NULL,
    key text NOT NULL,
    tenant_uuid varchar(38) REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    data jsonb NOT NULL,
    sealed text,
    PRIMARY KEY (kind, key)
);

-- A refresh token made by the original has a value of its own, which cannot be derived from
-- the row (key_id 'original'): it is kept sealed with the keyring, so that an offline login can
-- hand it back as the original does.
ALTER TABLE auth_refresh_token ADD COLUMN value_sealed text;
