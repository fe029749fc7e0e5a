-- The per-tenant LDAP configuration (`/backends/ldap`, the `ldap_user` backend). The bind
-- password is never stored in clear: `bind_password_sealed` holds a keyring envelope
-- (`v1:<key id>:<base64 nonce+ciphertext>`) bound to its tenant.

CREATE TABLE auth_ldap_config (
    tenant_uuid varchar(38) PRIMARY KEY REFERENCES auth_tenant (uuid) ON DELETE CASCADE,
    host varchar(512) NOT NULL,
    port integer NOT NULL,
    protocol_version smallint,
    protocol_security text CHECK (protocol_security IN ('ldaps', 'tls')),
    bind_dn varchar(256),
    bind_password_sealed text,
    user_base_dn varchar(256) NOT NULL,
    user_login_attribute varchar(64) NOT NULL,
    user_email_attribute varchar(64) NOT NULL,
    search_filters text,
    -- How `bind_password_sealed` was sealed: 'ldap-config' by this server, 'imported-row' by
    -- an importer of an earlier version (kept in `auth_imported_row` then, moved here below).
    sealed_as text NOT NULL DEFAULT 'ldap-config'
        CHECK (sealed_as IN ('ldap-config', 'imported-row'))
);

-- The LDAP configurations imported before this table existed, kept whole in
-- `auth_imported_row`: moved here, their sealed bind password as it is.
INSERT INTO auth_ldap_config (tenant_uuid, host, port, protocol_version, protocol_security,
                              bind_dn, bind_password_sealed, user_base_dn,
                              user_login_attribute, user_email_attribute, search_filters,
                              sealed_as)
SELECT r.tenant_uuid, r.data->>'host', (r.data->>'port')::integer,
       (r.data->>'protocol_version')::smallint, r.data->>'protocol_security',
       r.data->>'bind_dn', r.sealed, r.data->>'user_base_dn',
       r.data->>'user_login_attribute', r.data->>'user_email_attribute',
       r.data->>'search_filters', 'imported-row'
FROM auth_imported_row r
WHERE r.kind = 'ldap_configs' AND r.tenant_uuid IS NOT NULL;

DELETE FROM auth_imported_row WHERE kind = 'ldap_configs';
