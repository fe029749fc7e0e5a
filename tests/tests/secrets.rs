//! Secrets never leak: a broad session against the real server with debug logging (every login
//! path, token checks, password changes, sessions, refresh tokens, external-auth data and
//! configuration, tenants, policies), then the whole server log is searched for every secret the
//! session used (passwords old and new, right and wrong, Basic credentials, token ids and their
//! other spellings, refresh tokens, external-auth secrets, the server's key material), and every
//! table of the database is dumped and searched for every secret that must not be stored in clear.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

/// Everything secret the session used, with a label saying what it is.
#[derive(Default)]
struct Secrets {
    /// Must appear neither in the log nor in the database.
    everywhere: Vec<(String, String)>,
    /// Must not appear in the log (token ids are stored as hashes, but their short forms are too
    /// short to search in hex dumps of the database).
    log_only: Vec<(String, String)>,
}

impl Secrets {
    /// A secret and the escaped spellings a log line might use for it (JSON, Rust `Debug`).
    fn spellings(value: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        out.insert(value.to_string());
        let json = Value::from(value).to_string();
        out.insert(json[1..json.len() - 1].to_string());
        let debug = format!("{value:?}");
        out.insert(debug[1..debug.len() - 1].to_string());
        out
    }

    fn add(&mut self, label: impl Into<String>, value: &str) {
        let label = label.into();
        assert!(
            value.len() >= 6,
            "{label}: {value:?} is too short to search"
        );
        for s in Self::spellings(value) {
            self.everywhere.push((label.clone(), s));
        }
    }

    /// A password used in Basic credentials: also the encoded header value.
    fn add_password(&mut self, label: &str, login: &str, password: &str) {
        self.add(format!("password ({label})"), password);
        let header = basic(login, password);
        let encoded = header.trim_start_matches("Basic ");
        self.add(format!("Basic credentials ({label})"), encoded);
    }

    /// A UUID-shaped secret (token id, refresh token): also its dash-less hex form, its upper-case
    /// form and (log only) its last 12 characters.
    fn add_uuid(&mut self, label: &str, value: &str) {
        assert!(
            uuid::Uuid::parse_str(value).is_ok(),
            "{label}: {value:?} is not UUID-shaped"
        );
        self.add(label, value);
        self.add(format!("{label} (upper case)"), &value.to_uppercase());
        self.add(format!("{label} (no dashes)"), &value.replace('-', ""));
        self.log_only.push((
            format!("{label} (last 12 characters)"),
            value[value.len() - 12..].to_string(),
        ));
    }

    /// The labels of the secrets found in `text`.
    fn found_in(&self, text: &str, with_log_only: bool) -> Vec<String> {
        let mut all: Vec<&(String, String)> = self.everywhere.iter().collect();
        if with_log_only {
            all.extend(self.log_only.iter());
        }
        let mut found: Vec<String> = all
            .into_iter()
            .filter(|(_, s)| text.contains(s.as_str()))
            .map(|(label, s)| format!("{label}: {s:?}"))
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Not secrets for the database, which holds them, but the log must not hand them out.
    fn add_log_only(&mut self, label: impl Into<String>, value: &str) {
        self.log_only.push((label.into(), value.to_string()));
    }

    fn count(&self) -> usize {
        self.everywhere.len() + self.log_only.len()
    }
}

fn ok(r: &Resp, status: u16, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&r.body).unwrap_or(Value::Null)
    }
}

fn login_with(s: &Server, auth: &str, body: Value, mobile: bool) -> Resp {
    let mut headers = vec![
        ("Authorization", auth),
        ("Content-Type", "application/json"),
        ("User-Agent", "secrets-test/1.0"),
    ];
    if mobile {
        headers.push(("Wazo-Session-Type", "mobile"));
    }
    s.request(
        "POST",
        "/0.1/token",
        &headers,
        Some(body.to_string().as_bytes()),
    )
}

fn token_of(r: &Resp, what: &str) -> String {
    ok(r, 200, what)["data"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no token in {}", r.body))
        .to_string()
}

/// `(id, base64 key)` of every key line of a key file.
fn key_material(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the key file {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split_whitespace();
            (
                parts.next().unwrap().to_string(),
                parts.next().expect("key line without key").to_string(),
            )
        })
        .collect()
}

#[test]
fn no_secret_reaches_the_log_or_the_database_in_clear() {
    let mut secrets = Secrets::default();
    let scratch = scratch_dir("secrets");
    let key_file = scratch.join("keys").join("secret.keys");

    // Distinctive passwords of the example backend (configured in clear: the configuration dump
    // of the debug log must mask them).
    let example_pw = "Ex4mple-St4tic-Pässword-wq93";
    let mut s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(BAR))
        .config(json!({
            "enabled_external_auth_plugins": {"bar": true},
            "secret_key_file": key_file,
            "default_user_policy": "wazo_default_user_policy",
            // The throttle's table is dumped too (few failures per login: never throttled).
            "login_throttle": {"enabled": true, "exempt_addresses": []},
            "default_policies": {"wazo_default_user_policy": {"acl": ["auth.users.me.#"]}},
            "plugin_config": {"example_static": {"users": [
                {"login": "static-sam", "password": example_pw, "acl": ["static.#"]},
            ]}},
        }))
        .env("RUST_LOG", "debug")
        .start();
    secrets.add_password("bootstrap administrator", ADMIN.0, ADMIN.1);
    secrets.add_password("example backend user", "static-sam", example_pw);

    // The key file: created by the server, private, its key material secret.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file must be private");
    }
    let keys = key_material(&key_file);
    assert!(!keys.is_empty(), "the key file holds no key");
    for (id, material) in &keys {
        secrets.add(format!("key {id} (base64)"), material);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(material)
            .expect("key material is base64");
        assert_eq!(raw.len(), 32);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        secrets.add(format!("key {id} (hex)"), &hex);
    }

    // --- Administrator, tenant, policy -----------------------------------------------------
    let admin = s.admin_token();
    secrets.add_uuid("admin token", &admin);
    let tenant = ok(
        &s.call(
            "POST",
            "/0.1/tenants",
            &admin,
            None,
            Some(&json!({"name": "secrets-tenant", "slug": "sectenant"})),
        ),
        200,
        "tenant creation",
    )["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = ok(
        &s.call(
            "POST",
            "/0.1/policies",
            &admin,
            None,
            Some(&json!({
                "name": "secrets-policy",
                "acl": ["auth.users.me.#", "auth.tokens.read", "confd.#", "!confd.secret.#"],
            })),
        ),
        200,
        "policy creation",
    )["uuid"]
        .as_str()
        .unwrap()
        .to_string();

    // --- Users with distinctive passwords ---------------------------------------------------
    let users: [(&str, &str, Option<&str>); 4] = [
        ("sec-ada", "Ada-Pa55word-Qz7Kx2-distinctive", None),
        ("sec-börje", "pässwörd-Ωμέγα-秘密-Hq2x9", None),
        ("sec-colon", "col:on:Pass-Wk4tR9", None),
        (
            "sec-sub",
            "sp \"quote' \\back%20/sl&amp=1 Xy3",
            Some(tenant.as_str()),
        ),
    ];
    let mut uuids = Vec::new();
    for (login, password, in_tenant) in users {
        secrets.add_password(login, login, password);
        let r = s.call(
            "POST",
            "/0.1/users",
            &admin,
            in_tenant,
            Some(&json!({"username": login, "password": password, "firstname": "Secret"})),
        );
        let uuid = ok(&r, 200, "user creation")["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        if in_tenant.is_none() {
            let r = s.call(
                "PUT",
                &format!("/0.1/users/{uuid}/policies/{policy}"),
                &admin,
                None,
                None,
            );
            ok(&r, 204, "policy association");
        }
        uuids.push(uuid);
    }
    let (ada, borje, colon, sub) = (&uuids[0], &uuids[1], &uuids[2], &uuids[3]);

    // --- Logins: good and bad passwords, Basic credentials with special characters ----------
    let mut user_tokens = Vec::new();
    for (login, password, _) in users {
        let t = s.user_token(login, password);
        secrets.add_uuid(&format!("token of {login}"), &t);
        user_tokens.push(t);
    }
    let wrong = [
        ("sec-ada", "Ada-Pa55word-Qz7Kx2-WRONG-guess"),
        ("sec-börje", "pässwörd-Ωμέγα-秘密-WRÖNG"),
        ("sec-colon", "col:on:Pass-Wk4tR9:extra"),
        ("nobody-such-user", "Unknown-User-Pw-Lq5"),
    ];
    for (login, password) in wrong {
        secrets.add_password(&format!("wrong password of {login}"), login, password);
        ok(&s.login(login, password, json!({})), 401, "wrong password");
    }
    // Invalid Basic credentials: neither the header nor its content is logged.
    let garbage = "Basic !!Garbage-Not-Base64-Cred-Vv8";
    secrets.add("invalid Basic header", garbage.trim_start_matches("Basic "));
    ok(
        &login_with(&s, garbage, json!({}), false),
        401,
        "garbage Basic",
    );
    // Not UTF-8 (latin-1 bytes) in the credentials.
    let latin1_header = basic_bytes(b"sec-ada:Latin1-\xe9t\xe9-Pw-Mm4");
    secrets.add(
        "latin-1 Basic credentials",
        latin1_header.trim_start_matches("Basic "),
    );
    // The server reads undecodable bytes as latin-1.
    secrets.add("latin-1 password", "Latin1-\u{e9}t\u{e9}-Pw-Mm4");
    ok(
        &login_with(&s, &latin1_header, json!({}), false),
        401,
        "latin-1 credentials",
    );
    // The example backend (a plugin's verify_password).
    let static_token = token_of(
        &s.login(
            "static-sam",
            example_pw,
            json!({"backend": "example_static"}),
        ),
        "example backend login",
    );
    secrets.add_uuid("token of the example backend user", &static_token);
    ok(
        &s.login(
            "static-sam",
            "Ex4mple-St4tic-WRONG",
            json!({"backend": "example_static"}),
        ),
        401,
        "example backend wrong password",
    );
    secrets.add_password(
        "wrong example password",
        "static-sam",
        "Ex4mple-St4tic-WRONG",
    );

    // --- Offline logins and refresh-token logins --------------------------------------------
    let mut refresh_tokens = Vec::new();
    for (i, (login, password, _)) in users.iter().enumerate() {
        let r = login_with(
            &s,
            &basic(login, password),
            json!({"access_type": "offline", "client_id": "secrets-app"}),
            false,
        );
        let data = ok(&r, 200, "offline login")["data"].clone();
        let rt = data["refresh_token"].as_str().unwrap().to_string();
        secrets.add_uuid(&format!("refresh token of {login}"), &rt);
        secrets.add_uuid(
            &format!("offline token of {login}"),
            data["token"].as_str().unwrap(),
        );
        // A mobile one for the first user.
        if i == 0 {
            let r = login_with(
                &s,
                &basic(login, password),
                json!({"access_type": "offline", "client_id": "secrets-mobile"}),
                true,
            );
            let data = ok(&r, 200, "mobile offline login")["data"].clone();
            secrets.add_uuid(
                "mobile refresh token",
                data["refresh_token"].as_str().unwrap(),
            );
            secrets.add_uuid("mobile token", data["token"].as_str().unwrap());
        }
        refresh_tokens.push(rt);
    }
    let mut refreshed = Vec::new();
    for (i, rt) in refresh_tokens.iter().enumerate() {
        let r = s.request(
            "POST",
            "/0.1/token",
            &[("Content-Type", "application/json")],
            Some(
                json!({"refresh_token": rt, "client_id": "secrets-app", "expiration": 600})
                    .to_string()
                    .as_bytes(),
            ),
        );
        let t = token_of(&r, "refresh-token login");
        secrets.add_uuid(&format!("token from refresh token {i}"), &t);
        refreshed.push(t);
    }
    // A refresh token of another client, and an unknown one.
    let r = s.request(
        "POST",
        "/0.1/token",
        &[("Content-Type", "application/json")],
        Some(
            json!({"refresh_token": refresh_tokens[0], "client_id": "other-app"})
                .to_string()
                .as_bytes(),
        ),
    );
    ok(&r, 401, "refresh token of another client");
    let unknown_rt = uuid::Uuid::new_v4().to_string();
    secrets.add_uuid("unknown refresh token", &unknown_rt);
    let r = s.request(
        "POST",
        "/0.1/token",
        &[("Content-Type", "application/json")],
        Some(
            json!({"refresh_token": unknown_rt, "client_id": "secrets-app"})
                .to_string()
                .as_bytes(),
        ),
    );
    ok(&r, 401, "unknown refresh token");

    // --- Token checks -------------------------------------------------------------------------
    let all_tokens: Vec<String> = user_tokens
        .iter()
        .chain(refreshed.iter())
        .chain([&admin, &static_token])
        .cloned()
        .collect();
    for t in &all_tokens {
        ok(&s.get(&format!("/0.1/token/{t}")), 200, "GET token");
        let granted = s.get(&format!("/0.1/token/{t}?scope=auth.users.me.read"));
        assert!(
            [200, 403].contains(&granted.status),
            "GET token with scope: {}",
            granted.body
        );
        let head = s.request(
            "HEAD",
            &format!("/0.1/token/{t}?scope=confd.users.read&tenant={tenant}"),
            &[],
            None,
        );
        assert!([204, 403].contains(&head.status), "HEAD token: {head:?}");
        let r = s.request(
            "POST",
            &format!("/0.1/token/{t}/scopes/check"),
            &[("Content-Type", "application/json")],
            Some(
                json!({"scopes": ["confd.users.read", "confd.secret.x", "auth.tenants.read"]})
                    .to_string()
                    .as_bytes(),
            ),
        );
        ok(&r, 200, "scopes check");
    }
    let denied = s.get(&format!(
        "/0.1/token/{}?scope=confd.secret.read",
        user_tokens[0]
    ));
    ok(&denied, 403, "scope denied by a negative ACL");
    // Unknown token ids, in every place a token goes.
    let probe = uuid::Uuid::new_v4().to_string();
    secrets.add_uuid("unknown token id", &probe);
    ok(&s.get(&format!("/0.1/token/{probe}")), 404, "unknown token");
    ok(
        &s.call("GET", "/0.1/users", &probe, None, None),
        401,
        "unknown X-Auth-Token",
    );
    let not_uuid = "NotAUuid-Token-Value-Rr6";
    secrets.add("malformed token id", not_uuid);
    ok(
        &s.get(&format!("/0.1/token/{not_uuid}")),
        404,
        "malformed token",
    );
    ok(
        &s.call("GET", "/0.1/users", not_uuid, None, None),
        401,
        "malformed X-Auth-Token",
    );
    // A user token without the required ACL, and a foreign tenant.
    let r = s.call("GET", "/0.1/tenants", &user_tokens[3], None, None);
    ok(&r, 401, "missing permission");
    let r = s.call("GET", "/0.1/users", &admin, Some("not-a-tenant-uuid"), None);
    ok(&r, 401, "foreign tenant");

    // --- External auth: bar data with a secret, tenant configuration with a client_secret ----
    let bar_secret = "bar-Access-Token-Xq81-zz-distinctive";
    let bar_refresh = "bar-Refresh-Token-Pp07-yy-distinctive";
    secrets.add("bar access_token", bar_secret);
    secrets.add("bar refresh_token", bar_refresh);
    let stored = json!({"scope": ["contacts"], "access_token": bar_secret, "refresh": bar_refresh});
    let path = format!("/0.1/users/{ada}/external/bar");
    ok(
        &s.call("POST", &path, &admin, None, Some(&stored)),
        200,
        "bar create",
    );
    ok(&s.call("GET", &path, &admin, None, None), 200, "bar get");
    ok(
        &s.call(
            "PUT",
            &path,
            &admin,
            None,
            Some(&json!({"scope": ["contacts", "email"]})),
        ),
        200,
        "bar update",
    );
    let list = ok(
        &s.call(
            "GET",
            &format!("/0.1/users/{ada}/external"),
            &admin,
            None,
            None,
        ),
        200,
        "external listing",
    );
    assert!(
        !list.to_string().contains(bar_secret),
        "the safe view leaks: {list}"
    );
    ok(
        &s.call("GET", "/0.1/external/bar/users", &admin, None, None),
        200,
        "connected users",
    );
    // The user's own data through its own token (auth.users.me.#).
    let borje_bar = format!("/0.1/users/{borje}/external/bar");
    let own = s.call(
        "POST",
        &borje_bar,
        &user_tokens[1],
        None,
        Some(&json!({"scope": ["x"], "access_token": bar_secret})),
    );
    assert!(
        [200, 401].contains(&own.status),
        "own bar data: {}",
        own.body
    );
    let client_secret = "Client-Secret-Of-Bar-Jj52-distinctive";
    let new_client_secret = "Client-Secret-Rotated-Nn36-distinctive";
    secrets.add("external client_secret", client_secret);
    secrets.add("external client_secret (new)", new_client_secret);
    let cfg_path = "/0.1/external/bar/config";
    ok(
        &s.call(
            "POST",
            cfg_path,
            &admin,
            None,
            Some(&json!({"client_id": "bar-client", "client_secret": client_secret})),
        ),
        201,
        "external config create",
    );
    ok(
        &s.call("GET", cfg_path, &admin, None, None),
        200,
        "config get",
    );
    ok(
        &s.call(
            "PUT",
            cfg_path,
            &admin,
            None,
            Some(&json!({"client_id": "bar-client", "client_secret": new_client_secret})),
        ),
        204,
        "external config update",
    );
    ok(
        &s.call(
            "POST",
            cfg_path,
            &admin,
            Some(&tenant),
            Some(&json!({"client_id": "sub-client", "client_secret": client_secret})),
        ),
        201,
        "sub-tenant config",
    );

    // --- Sessions and refresh tokens: listings and deletions -------------------------------
    ok(
        &s.call("GET", "/0.1/sessions", &admin, None, None),
        200,
        "sessions",
    );
    let mine = ok(
        &s.call(
            "GET",
            &format!("/0.1/users/{ada}/sessions"),
            &admin,
            None,
            None,
        ),
        200,
        "user sessions",
    );
    assert!(
        !mine.to_string().contains(&user_tokens[0]),
        "a session listing shows a token id"
    );
    let session = mine["items"][0]["uuid"].as_str().unwrap().to_string();
    ok(
        &s.call(
            "DELETE",
            &format!("/0.1/users/{ada}/sessions/{session}"),
            &admin,
            None,
            None,
        ),
        204,
        "user session deletion",
    );
    let any = ok(
        &s.call(
            "GET",
            &format!("/0.1/users/{colon}/sessions"),
            &admin,
            None,
            None,
        ),
        200,
        "sessions of another user",
    );
    let session = any["items"][0]["uuid"].as_str().unwrap().to_string();
    ok(
        &s.call(
            "DELETE",
            &format!("/0.1/sessions/{session}"),
            &admin,
            None,
            None,
        ),
        204,
        "session deletion",
    );
    let listed = ok(
        &s.call("GET", "/0.1/tokens", &admin, None, None),
        200,
        "refresh tokens",
    );
    for rt in &refresh_tokens {
        assert!(
            !listed.to_string().contains(rt.as_str()),
            "a refresh-token listing shows a value"
        );
    }
    ok(
        &s.call(
            "GET",
            &format!("/0.1/users/{borje}/tokens"),
            &admin,
            None,
            None,
        ),
        200,
        "user refresh tokens",
    );
    ok(
        &s.call("GET", "/0.1/users/me/tokens", &user_tokens[1], None, None),
        200,
        "own refresh tokens",
    );
    ok(
        &s.call(
            "DELETE",
            &format!("/0.1/users/{borje}/tokens/secrets-app"),
            &admin,
            None,
            None,
        ),
        204,
        "refresh token deletion",
    );
    ok(
        &s.call(
            "DELETE",
            "/0.1/users/me/tokens/secrets-app",
            &refreshed[3],
            None,
            None,
        ),
        204,
        "own refresh token deletion",
    );

    // --- Password changes, user disabling, logout ---------------------------------------------
    let changes = [
        (ada, "sec-ada", users[0].1, "Ada-NEW-Pa55word-Tt3Hh8"),
        (colon, "sec-colon", users[2].1, "new:col:on:Pass-Gg6"),
        (sub, "sec-sub", users[3].1, "nëw \"quote' \\sub-Ff1"),
    ];
    for (uuid, login, old, new) in changes {
        secrets.add_password(&format!("new password of {login}"), login, new);
        let bad_old = format!("{old}-not-the-old-one");
        secrets.add_password(&format!("wrong old password of {login}"), login, &bad_old);
        let r = s.call(
            "PUT",
            &format!("/0.1/users/{uuid}/password"),
            &admin,
            None,
            Some(&json!({"old_password": bad_old, "new_password": new})),
        );
        assert!(
            r.status >= 400,
            "a wrong old password was accepted: {}",
            r.body
        );
        let r = s.call(
            "PUT",
            &format!("/0.1/users/{uuid}/password"),
            &admin,
            None,
            Some(&json!({"old_password": old, "new_password": new})),
        );
        ok(&r, 204, "password change");
        ok(
            &s.login(login, old, json!({})),
            401,
            "old password after change",
        );
        let t = s.user_token(login, new);
        secrets.add_uuid(&format!("token of {login} after password change"), &t);
    }
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{borje}"),
        &admin,
        None,
        Some(&json!({"username": "sec-börje", "enabled": false})),
    );
    ok(&r, 200, "user disable");
    ok(
        &s.login("sec-börje", users[1].1, json!({})),
        401,
        "disabled user",
    );
    let logout = s.user_token("sec-ada", "Ada-NEW-Pa55word-Tt3Hh8");
    secrets.add_uuid("token deleted by logout", &logout);
    ok(
        &s.request("DELETE", &format!("/0.1/token/{logout}"), &[], None),
        200,
        "logout",
    );
    ok(
        &s.get(&format!("/0.1/token/{logout}")),
        404,
        "token after logout",
    );
    // Password changes ended the refresh tokens above: one that stays in the database.
    let r = login_with(
        &s,
        &basic("sec-colon", "new:col:on:Pass-Gg6"),
        json!({"access_type": "offline", "client_id": "secrets-late"}),
        false,
    );
    let data = ok(&r, 200, "late offline login")["data"].clone();
    let late_rt = data["refresh_token"].as_str().unwrap().to_string();
    secrets.add_uuid("late refresh token", &late_rt);
    secrets.add_uuid("late offline token", data["token"].as_str().unwrap());
    let r = s.request(
        "POST",
        "/0.1/token",
        &[("Content-Type", "application/json")],
        Some(
            json!({"refresh_token": late_rt, "client_id": "secrets-late"})
                .to_string()
                .as_bytes(),
        ),
    );
    let t = token_of(&r, "late refresh-token login");
    secrets.add_uuid("token from the late refresh token", &t);

    // --- The database: nothing in clear -----------------------------------------------------
    let tables: Vec<String> = sql(
        &s.db,
        "SELECT table_name FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .into_iter()
    .filter_map(|row| row[0].clone())
    .collect();
    for expected in [
        "auth_user",
        "auth_token",
        "auth_session",
        "auth_refresh_token",
        "auth_user_external_auth",
        "auth_external_auth_config",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "table {expected} missing from {tables:?}"
        );
    }
    let mut dump = String::new();
    for table in &tables {
        dump.push_str(&format!("== {table}\n"));
        for row in sql(&s.db, &format!("SELECT t::text FROM \"{table}\" t")) {
            dump.push_str(row[0].as_deref().unwrap_or("NULL"));
            dump.push('\n');
        }
    }
    // The dump is real: it holds the users, hashed passwords, sealed data and live tokens.
    for (what, needle) in [
        ("a user uuid", ada.as_str()),
        ("a username", "sec-colon"),
        ("the policy", "secrets-policy"),
        ("a sealed value", "v1:"),
        ("the refresh token client", "secrets-late"),
    ] {
        assert!(dump.contains(needle), "the database dump lacks {what}");
    }
    let in_db = secrets.found_in(&dump, false);
    assert!(
        in_db.is_empty(),
        "secrets stored in clear in the database:\n  {}",
        in_db.join("\n  ")
    );

    // Password hashes and salts let whoever reads them guess passwords offline: the log must
    // not carry them either (in any spelling a debug line would use: hex, or a byte list).
    let stored = sql(
        &s.db,
        "SELECT username, password_hash, encode(password_salt, 'hex') FROM auth_user
         WHERE password_hash IS NOT NULL",
    );
    assert!(
        stored.len() > users.len(),
        "password hashes missing: {stored:?}"
    );
    for row in stored {
        let user = row[0].clone().unwrap_or_default();
        let hash = row[1].clone().unwrap();
        secrets.add_log_only(format!("password hash of {user}"), &hash);
        if let Some(salt) = &row[2] {
            let bytes: Vec<u8> = (0..salt.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&salt[i..i + 2], 16).unwrap())
                .collect();
            secrets.add_log_only(format!("password salt of {user} (hex)"), salt);
            secrets.add_log_only(
                format!("password salt of {user} (bytes)"),
                &format!("{bytes:?}"),
            );
        }
    }

    // --- The log: nothing at all ------------------------------------------------------------
    assert_eq!(s.stop(), Some(0), "the server did not stop cleanly");
    let log = s.log();
    let debug_lines = log.lines().filter(|l| l.contains("(DEBUG)")).count();
    assert!(
        debug_lines >= 20,
        "debug logging is not on ({debug_lines} debug lines); log:\n{log}"
    );
    assert!(
        log.contains("effective configuration"),
        "no configuration dump"
    );
    let created = log.matches("created for auth_id").count();
    assert!(
        created >= all_tokens.len() + refresh_tokens.len(),
        "only {created} logins logged"
    );
    for needle in [
        "authentication failed for a login",
        "invalid base64 in Authorization header",
        "unknown or expired refresh token",
        "session(s) deleted",
        "refresh token of user",
        "bar external auth plugin loaded",
        // The log names the things the secrets belong to...
        ada.as_str(),
        sub.as_str(),
        // ...and tokens in their redacted form only.
        &wazo_auth_core::tokens::redact(&logout),
    ] {
        assert!(
            log.contains(needle),
            "the log lacks {needle:?}; log:\n{log}"
        );
    }
    // The search itself works on this log: a value that is logged (a user uuid, searched in all
    // the spellings of a secret) is found.
    let mut canary = Secrets::default();
    canary.add_uuid("canary (a logged user uuid)", ada);
    assert!(
        !canary.found_in(&log, true).is_empty(),
        "the search misses a value that is in the log"
    );
    let in_log = secrets.found_in(&log, true);
    assert!(
        in_log.is_empty(),
        "secrets found in the server log ({} searched):\n  {}",
        secrets.count(),
        in_log.join("\n  ")
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn a_key_file_readable_by_others_stops_startup() {
    let dir = scratch_dir("secrets-keyfile");
    let key_file = dir.join("secret.keys");
    let material = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    std::fs::write(&key_file, format!("k1 {material}\n")).unwrap();
    set_mode(&key_file, 0o644);
    let err = match ServerBuilder::new()
        .config(json!({"secret_key_file": key_file}))
        .try_start()
    {
        Ok(_) => panic!("the server started with a key file readable by others"),
        Err(e) => e,
    };
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(&material), "the error shows the key: {err}");
    // Once private, the same file is accepted.
    set_mode(&key_file, 0o600);
    let s = ServerBuilder::new()
        .config(json!({"secret_key_file": key_file}))
        .start();
    assert_eq!(s.alice_token(json!({})).len(), 36);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
