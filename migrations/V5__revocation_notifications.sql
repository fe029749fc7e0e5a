-- Every server process caches valid tokens; any deletion (or change) of a token, whatever its
-- cause (logout, session delete, purge, cascades from users, tenants and refresh tokens), is
-- announced to all of them at commit time so that they drop it from their caches.

CREATE FUNCTION wazo_auth_notify_token_revoked() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('wazo_auth_revoked', encode(OLD.token_hash, 'hex'));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auth_token_revoked
    AFTER DELETE OR UPDATE ON auth_token
    FOR EACH ROW EXECUTE FUNCTION wazo_auth_notify_token_revoked();
