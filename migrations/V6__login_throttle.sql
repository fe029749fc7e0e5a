-- Failed-login throttling, shared by every server process. `key` is `login:<sha256 of the
-- lower-cased login>` (attempted logins are not kept in clear: users sometimes type their
-- password in the login field) or `addr:<client address>`.
CREATE TABLE auth_login_throttle (
    key text PRIMARY KEY,
    failures integer NOT NULL,
    blocked_until timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
