-- Refresh tokens. The token value is never stored: `token_hash` is its SHA-256 (for look-ups) and
-- the value itself is recomputed from the row uuid with a server key (`key_id` names it), so that
-- a second offline login of the same client can be answered with the same refresh token.

CREATE TABLE auth_refresh_token (
    uuid varchar(36) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    token_hash bytea NOT NULL,
    key_id text NOT NULL,
    client_id text NOT NULL,
    user_uuid varchar(38) NOT NULL REFERENCES auth_user (uuid) ON DELETE CASCADE,
    backend text,
    login text,
    user_agent text NOT NULL DEFAULT '',
    remote_addr text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    -- NULL: never expires (the original's behaviour; see refresh_token_lifetime).
    expires_at timestamptz,
    mobile boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT auth_refresh_token_token_hash_key UNIQUE (token_hash),
    CONSTRAINT auth_refresh_token_client_id_user_uuid UNIQUE (client_id, user_uuid)
);
CREATE INDEX auth_refresh_token__idx__user_uuid ON auth_refresh_token (user_uuid);

-- Tokens issued from a refresh token go away with it (their sessions are deleted explicitly).
ALTER TABLE auth_token
    ADD CONSTRAINT auth_token_refresh_token_uuid_fkey
    FOREIGN KEY (refresh_token_uuid) REFERENCES auth_refresh_token (uuid) ON DELETE CASCADE;
CREATE INDEX auth_token__idx__refresh_token_uuid ON auth_token (refresh_token_uuid);
