-- Every server process caches the ACL of the default user policy read at each login; any change
-- to the policies (API, startup configuration, tenant deletion cascades, direct SQL) is announced
-- to all of them at commit time so that they read it again.

CREATE FUNCTION wazo_auth_notify_policies_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('wazo_auth_revoked', 'policies');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auth_policy_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON auth_policy
    FOR EACH STATEMENT EXECUTE FUNCTION wazo_auth_notify_policies_changed();
