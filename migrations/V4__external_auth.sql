-- External authentication: auth types, per-tenant configuration and per-user data. `data` holds
-- an AEAD envelope (`v1:<key id>:<base64 nonce+ciphertext>`), never clear JSON.

CREATE TABLE auth_external_auth_type (
    uuid varchar(38) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name text NOT NULL,
    enabled boolean,
    CONSTRAINT auth_external_auth_type_name_key UNIQUE (name)
);

CREATE TABLE auth_external_auth_config (
    type_uuid varchar(38) NOT NULL REFERENCES auth_external_auth_type (uuid) ON DELETE CASCADE,
    tenant_uuid varchar(38) NOT NULL REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    data text NOT NULL,
    PRIMARY KEY (type_uuid, tenant_uuid)
);

CREATE TABLE auth_user_external_auth (
    user_uuid varchar(38) NOT NULL REFERENCES auth_user (uuid) ON DELETE CASCADE,
    external_auth_type_uuid varchar(38) NOT NULL
        REFERENCES auth_external_auth_type (uuid) ON DELETE CASCADE,
    data text NOT NULL,
    CONSTRAINT auth_external_user_type_auth_constraint UNIQUE (user_uuid, external_auth_type_uuid)
);
CREATE INDEX auth_user_external_auth__idx__type ON auth_user_external_auth (external_auth_type_uuid);
