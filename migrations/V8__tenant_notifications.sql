-- Every server process keeps the tenant tree (each tenant's parent) in memory for its scope
-- decisions; any change to the tree (API, bootstrap, direct SQL) is announced to all of them at
-- commit time so that they read it again. Updates of other columns (name, phone...) leave the
-- tree as it was and announce nothing.

CREATE FUNCTION wazo_auth_notify_tenants_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('wazo_auth_revoked', 'tenants');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auth_tenant_changed
    AFTER INSERT OR UPDATE OF uuid, parent_uuid OR DELETE OR TRUNCATE ON auth_tenant
    FOR EACH STATEMENT EXECUTE FUNCTION wazo_auth_notify_tenants_changed();
