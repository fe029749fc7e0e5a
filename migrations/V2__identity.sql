-- Identity model: tenants' details, users, e-mails, groups, policies and their associations.

CREATE TABLE auth_tenant_domain (
    uuid varchar(36) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    tenant_uuid varchar(38) NOT NULL REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    name varchar(253) NOT NULL,
    CONSTRAINT auth_tenant_domain_name_key UNIQUE (name)
);
CREATE INDEX auth_tenant_domain__idx__tenant_uuid ON auth_tenant_domain (tenant_uuid);

CREATE TABLE auth_address (
    id serial PRIMARY KEY,
    line_1 text,
    line_2 text,
    city text,
    state text,
    zip_code text,
    country text,
    tenant_uuid varchar(38) NOT NULL REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    CONSTRAINT auth_address_tenant_uuid_key UNIQUE (tenant_uuid)
);

CREATE TABLE auth_user (
    uuid varchar(38) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    username varchar(256),
    -- Password: PBKDF2-HMAC-SHA512 hex digest + raw salt as the original (scheme
    -- 'pbkdf2_sha512'), or a PHC string with a NULL salt (scheme 'argon2id').
    password_hash text,
    password_salt bytea,
    password_scheme text,
    firstname text,
    lastname text,
    enabled boolean NOT NULL DEFAULT true,
    tenant_uuid varchar(38) NOT NULL REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    purpose text NOT NULL DEFAULT 'user'
        CONSTRAINT auth_user_purpose_check CHECK (purpose IN ('user', 'internal', 'external_api')),
    authentication_method text NOT NULL DEFAULT 'default',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX auth_user__idx__username_lower ON auth_user (lower(username));
CREATE INDEX auth_user__idx__tenant_uuid ON auth_user (tenant_uuid);

ALTER TABLE auth_tenant
    ADD CONSTRAINT auth_tenant_contact_uuid_fkey
    FOREIGN KEY (contact_uuid) REFERENCES auth_user (uuid) ON DELETE SET NULL;
CREATE INDEX auth_tenant__idx__contact_uuid ON auth_tenant (contact_uuid);

CREATE TABLE auth_email (
    uuid varchar(38) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    address text NOT NULL,
    confirmed boolean NOT NULL DEFAULT false,
    main boolean NOT NULL DEFAULT false,
    user_uuid varchar(38) NOT NULL REFERENCES auth_user (uuid) ON DELETE CASCADE
);
CREATE UNIQUE INDEX auth_email__idx__address_lower ON auth_email (lower(address));
CREATE INDEX auth_email__idx__user_uuid ON auth_email (user_uuid);

CREATE TABLE auth_group (
    uuid varchar(38) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name text NOT NULL,
    slug varchar(80) NOT NULL,
    tenant_uuid varchar(38) NOT NULL REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    system_managed boolean NOT NULL DEFAULT false,
    CONSTRAINT auth_group_name_tenant UNIQUE (name, tenant_uuid)
);
CREATE UNIQUE INDEX auth_group__idx__slug_lower_tenant ON auth_group (lower(slug), tenant_uuid);
CREATE INDEX auth_group__idx__tenant_uuid ON auth_group (tenant_uuid);

-- A policy's ACL is kept in order, without duplicates, in `acl`.
CREATE TABLE auth_policy (
    uuid varchar(38) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name varchar(80) NOT NULL,
    slug varchar(80) NOT NULL,
    description text,
    tenant_uuid varchar(38) NOT NULL REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    config_managed boolean NOT NULL DEFAULT false,
    shared boolean NOT NULL DEFAULT false,
    acl text[] NOT NULL DEFAULT '{}',
    CONSTRAINT auth_policy_name_tenant UNIQUE (name, tenant_uuid)
);
CREATE UNIQUE INDEX auth_policy__idx__slug_lower_tenant ON auth_policy (lower(slug), tenant_uuid);
CREATE INDEX auth_policy__idx__tenant_uuid ON auth_policy (tenant_uuid);

CREATE TABLE auth_group_policy (
    group_uuid varchar(38) NOT NULL REFERENCES auth_group (uuid) ON DELETE CASCADE,
    policy_uuid varchar(38) NOT NULL REFERENCES auth_policy (uuid) ON DELETE CASCADE,
    PRIMARY KEY (group_uuid, policy_uuid)
);
CREATE INDEX auth_group_policy__idx__policy_uuid ON auth_group_policy (policy_uuid);

CREATE TABLE auth_user_group (
    group_uuid varchar(38) NOT NULL REFERENCES auth_group (uuid) ON DELETE CASCADE,
    user_uuid varchar(38) NOT NULL REFERENCES auth_user (uuid) ON DELETE CASCADE,
    PRIMARY KEY (group_uuid, user_uuid)
);
CREATE INDEX auth_user_group__idx__user_uuid ON auth_user_group (user_uuid);

CREATE TABLE auth_user_policy (
    user_uuid varchar(38) NOT NULL REFERENCES auth_user (uuid) ON DELETE CASCADE,
    policy_uuid varchar(38) NOT NULL REFERENCES auth_policy (uuid) ON DELETE CASCADE,
    PRIMARY KEY (user_uuid, policy_uuid)
);
CREATE INDEX auth_user_policy__idx__policy_uuid ON auth_user_policy (policy_uuid);

-- Seed of the top tenant: its all-users group and the master user policy (ACL '#').
INSERT INTO auth_address (tenant_uuid)
SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid;

INSERT INTO auth_group (name, slug, tenant_uuid, system_managed)
SELECT 'wazo-all-users-tenant-' || uuid, 'wazo-all-users-tenant-' || uuid, uuid, true
FROM auth_tenant WHERE uuid = parent_uuid;

INSERT INTO auth_policy (name, slug, description, tenant_uuid, config_managed, shared, acl)
SELECT 'wazo_default_master_user_policy', 'wazo_default_master_user_policy',
       'Policy of the initial (bootstrap) administrator; grants every access. Do not modify.',
       uuid, false, false, ARRAY['#']
FROM auth_tenant WHERE uuid = parent_uuid;
