-- Baseline of wazo-auth (Rust): the top tenant, sessions and tokens.
-- Later migrations add users, groups, policies, refresh tokens and external auth.

CREATE TABLE auth_tenant (
    uuid varchar(38) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name text,
    phone text,
    contact_uuid varchar(38),
    parent_uuid varchar(38) NOT NULL REFERENCES auth_tenant (uuid),
    slug varchar(10) NOT NULL,
    default_authentication_method text NOT NULL DEFAULT 'native',
    CONSTRAINT auth_tenant_slug_key UNIQUE (slug)
);
CREATE INDEX auth_tenant__idx__parent_uuid ON auth_tenant (parent_uuid);

-- The top ("master") tenant is its own parent.
WITH new_master AS (SELECT gen_random_uuid()::text AS id)
INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
SELECT id, 'master', 'master', id FROM new_master;

CREATE TABLE auth_session (
    uuid varchar(36) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    mobile boolean NOT NULL DEFAULT false,
    tenant_uuid varchar(38) NOT NULL REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_session__idx__tenant_uuid ON auth_session (tenant_uuid);

-- Tokens are stored by the SHA-256 of their id, never in clear: a copy of the database does not
-- yield usable tokens. Times are epoch seconds with microseconds (the original truncates them to
-- integers in the database).
CREATE TABLE auth_token (
    token_hash bytea PRIMARY KEY,
    auth_id text NOT NULL,
    pbx_user_uuid varchar(36),
    xivo_uuid varchar(38),
    issued_t double precision NOT NULL,
    expire_t double precision NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    session_uuid varchar(36) NOT NULL REFERENCES auth_session (uuid) ON DELETE CASCADE,
    user_agent text NOT NULL DEFAULT '',
    remote_addr text NOT NULL DEFAULT '',
    acl text[] NOT NULL DEFAULT '{}',
    refresh_token_uuid varchar(36)
);
CREATE INDEX auth_token__idx__session_uuid ON auth_token (session_uuid);
CREATE INDEX auth_token__idx__expire_t ON auth_token (expire_t);
CREATE INDEX auth_token__idx__auth_id ON auth_token (auth_id);
