//! The built-in `wazo_user` backend: bootstrap, login by username or e-mail, ACL composition,
//! metadata, disabled users, session limit, password hash compatibility and upgrade.

use std::time::Duration;

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

fn one(db: &str, q: &str) -> String {
    sql(db, q)[0][0].clone().unwrap_or_default()
}

#[test]
fn bootstrap_admin_logs_in_with_the_master_policy() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let r = s.login(ADMIN.0, ADMIN.1, json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.json()["data"].clone();
    let uuid = one(&s.db, "SELECT uuid FROM auth_user WHERE username = 'admin'");
    let top = one(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    );
    assert_eq!(data["auth_id"], Value::from(uuid.clone()));
    assert_eq!(data["acl"], json!(["#"]));
    assert_eq!(
        data["metadata"],
        json!({"uuid": uuid, "tenant_uuid": top, "auth_id": uuid, "pbx_user_uuid": null,
               "xivo_uuid": null, "purpose": "internal"})
    );
    assert_eq!(data["xivo_user_uuid"], Value::Null);
    // Wrong password, unknown user.
    assert_eq!(s.login(ADMIN.0, "nope", json!({})).status, 401);
    assert_eq!(s.login("nobody", ADMIN.1, json!({})).status, 401);
    // Case-insensitive login.
    assert_eq!(s.login("ADMIN", ADMIN.1, json!({})).status, 200);
    // The admin belongs to the top tenant's all-users group.
    let groups = one(
        &s.db,
        &format!("SELECT count(*) FROM auth_user_group ug JOIN auth_group g ON g.uuid = ug.group_uuid WHERE ug.user_uuid = '{uuid}' AND g.slug = 'wazo-all-users-tenant-{top}'"),
    );
    assert_eq!(groups, "1");
}

#[test]
fn bootstrap_is_idempotent_and_refuses_another_password() {
    let mut s = ServerBuilder::new().with_wazo_user().start();
    let db = s.db.clone();
    s.stop();
    // Same credentials: starts again, one admin.
    let mut s = ServerBuilder::new().with_wazo_user().database(&db).start();
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM auth_user WHERE username = 'admin'"
        ),
        "1"
    );
    s.stop();
    // Another password for an existing username: startup fails with a clear message.
    let err = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"bootstrap_user_password": "other"}))
        .database(&db)
        .try_start()
        .err()
        .expect("must refuse");
    assert!(
        err.contains("already exists with another password"),
        "{err}"
    );
    drop(s);
}

fn insert_user(db: &str, username: &str, tenant: &str, purpose: &str, extra: &str) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    // Password "secret" with salt 00..3f: the original's test vector.
    sql(
        db,
        &format!(
            "INSERT INTO auth_user (uuid, username, tenant_uuid, purpose, authentication_method,
                                    password_hash, password_salt {extra_cols})
             VALUES ('{uuid}', '{username}', '{tenant}', '{purpose}', 'default',
                     'b640077187de88c62a80c9aaeac5322f7786c473126922f665b782ee65d1768498db295b28c75bd5359f7475368f0d8b97f21ac993bbb6dff2297adeb7f9e203',
                     decode('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f', 'hex') {extra_vals})",
            extra_cols = if extra.is_empty() { "" } else { ", enabled" },
            extra_vals = if extra.is_empty() { String::new() } else { format!(", {extra}") },
        ),
    );
    sql(
        db,
        &format!(
            "INSERT INTO auth_user_group (group_uuid, user_uuid)
             SELECT uuid, '{uuid}' FROM auth_group WHERE slug = 'wazo-all-users-tenant-{tenant}'"
        ),
    );
    uuid
}

#[test]
fn users_of_an_existing_database_log_in_and_get_their_acl_and_metadata() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"default_user_policy": "wazo_default_user_policy",
                       "default_policies": {"wazo_default_user_policy": {"acl": ["default.user.policy"]}},
                       "all_users_policies": {"all-users-pol": true}}))
        .start();
    let top = one(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    );
    // A hash as the original stores it (no scheme column): PBKDF2 vector for "secret".
    let alice = insert_user(&s.db, "alice", &top, "user", "");
    sql(&s.db, &format!("INSERT INTO auth_email (address, confirmed, main, user_uuid) VALUES ('Alice@Example.com', true, true, '{alice}')"));
    sql(&s.db, &format!(
        "INSERT INTO auth_policy (name, slug, tenant_uuid, acl) VALUES ('grp-pol', 'grp-pol', '{top}', ARRAY['group.one', 'group.two']);
         INSERT INTO auth_policy (name, slug, tenant_uuid, acl) VALUES ('usr-pol', 'usr-pol', '{top}', ARRAY['user.own.#']);
         INSERT INTO auth_group (name, slug, tenant_uuid) VALUES ('g1', 'g1', '{top}');
         INSERT INTO auth_group_policy SELECT g.uuid, p.uuid FROM auth_group g, auth_policy p WHERE g.slug = 'g1' AND p.slug = 'grp-pol';
         INSERT INTO auth_user_group SELECT g.uuid, '{alice}' FROM auth_group g WHERE g.slug = 'g1';
         INSERT INTO auth_user_policy SELECT '{alice}', p.uuid FROM auth_policy p WHERE p.slug = 'usr-pol';"
    ));
    for login in ["alice", "ALICE", "alice@example.com"] {
        let r = s.login(login, "secret", json!({}));
        assert_eq!(r.status, 200, "{login}: {}", r.body);
        let data = r.json()["data"].clone();
        assert_eq!(
            data["acl"],
            json!([
                "default.user.policy",
                "group.one",
                "group.two",
                "user.own.#"
            ]),
            "{login}"
        );
        assert_eq!(
            data["metadata"],
            json!({"uuid": alice, "tenant_uuid": top, "auth_id": alice, "pbx_user_uuid": alice,
                   "xivo_uuid": null, "purpose": "user"})
        );
        assert_eq!(data["xivo_user_uuid"], Value::from(alice.clone()));
    }
    assert_eq!(s.login("alice", "Secret", json!({})).status, 401);

    // An unconfirmed e-mail is not a login.
    let bob = insert_user(&s.db, "bob", &top, "external_api", "");
    sql(&s.db, &format!("INSERT INTO auth_email (address, confirmed, main, user_uuid) VALUES ('bob@example.com', false, true, '{bob}')"));
    assert_eq!(s.login("bob@example.com", "secret", json!({})).status, 401);
    let r = s.login("bob", "secret", json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["metadata"]["pbx_user_uuid"], Value::Null);
    assert_eq!(r.json()["data"]["metadata"]["purpose"], "external_api");

    // Disabled users cannot log in.
    insert_user(&s.db, "carol", &top, "user", "false");
    assert_eq!(s.login("carol", "secret", json!({})).status, 401);

    // Users whose method is not native cannot log in with a password.
    let dave = insert_user(&s.db, "dave", &top, "user", "");
    sql(
        &s.db,
        &format!("UPDATE auth_user SET authentication_method = 'ldap' WHERE uuid = '{dave}'"),
    );
    assert_eq!(s.login("dave", "secret", json!({})).status, 401);
    sql(
        &s.db,
        &format!("UPDATE auth_user SET authentication_method = 'default' WHERE uuid = '{dave}'"),
    );
    sql(
        &s.db,
        &format!(
            "UPDATE auth_tenant SET default_authentication_method = 'saml' WHERE uuid = '{top}'"
        ),
    );
    assert_eq!(s.login("dave", "secret", json!({})).status, 401);
    sql(
        &s.db,
        &format!(
            "UPDATE auth_tenant SET default_authentication_method = 'native' WHERE uuid = '{top}'"
        ),
    );
    assert_eq!(s.login("dave", "secret", json!({})).status, 200);

    // A user without a password cannot log in.
    sql(
        &s.db,
        &format!(
            "UPDATE auth_user SET password_hash = NULL, password_salt = NULL WHERE uuid = '{dave}'"
        ),
    );
    assert_eq!(s.login("dave", "", json!({})).status, 401);
    assert_eq!(s.login("dave", "secret", json!({})).status, 401);
}

#[test]
fn stronger_scheme_is_applied_at_the_next_successful_login() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"password_hash_scheme": "argon2id"}))
        .start();
    let top = one(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    );
    let u = insert_user(&s.db, "legacy", &top, "user", "");
    // A failed login changes nothing.
    assert_eq!(s.login("legacy", "wrong", json!({})).status, 401);
    assert_eq!(
        one(
            &s.db,
            &format!("SELECT coalesce(password_scheme, 'null') FROM auth_user WHERE uuid = '{u}'")
        ),
        "null"
    );
    assert_eq!(s.login("legacy", "secret", json!({})).status, 200);
    let row = sql(&s.db, &format!("SELECT password_scheme, password_hash, password_salt IS NULL FROM auth_user WHERE uuid = '{u}'"));
    assert_eq!(row[0][0].as_deref(), Some("argon2id"));
    assert!(row[0][1].as_deref().unwrap().starts_with("$argon2id$"));
    assert_eq!(row[0][2].as_deref(), Some("t"));
    // The upgraded hash still verifies, the old password only.
    assert_eq!(s.login("legacy", "secret", json!({})).status, 200);
    assert_eq!(s.login("legacy", "wrong", json!({})).status, 401);
    // The bootstrap admin was hashed with argon2id directly.
    assert_eq!(
        one(
            &s.db,
            "SELECT password_scheme FROM auth_user WHERE username = 'admin'"
        ),
        "argon2id"
    );
}

#[test]
fn session_limit_is_enforced_under_concurrent_logins() {
    let limit = 3;
    let s = ServerBuilder::new()
        .with_wazo_user()
        // Concurrent logins queue for the password-hash slots: on a loaded machine the last
        // ones outlast the harness's plugin timeout, which this test is not about.
        .config(json!({"max_user_concurrent_sessions": limit, "plugin_call_timeout": 20.0}))
        .start();
    let top = one(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    );
    let u = insert_user(&s.db, "limited", &top, "user", "");
    let results: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| s.login("limited", "secret", json!({})).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|&&c| c == 200).count(),
        limit,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|&&c| c == 429).count(),
        8 - limit,
        "{results:?}"
    );
    let r = s.login("limited", "secret", json!({}));
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json()["reason"],
        json!([format!(
            "User {u} has exceeded the maximum number of active sessions"
        )])
    );
    assert_eq!(
        one(
            &s.db,
            &format!("SELECT count(*) FROM auth_token WHERE auth_id = '{u}'")
        ),
        "3"
    );
    // Expired sessions do not count (better than the original, which counts them until purged).
    sql(&s.db, "UPDATE auth_token SET expire_t = 1");
    assert_eq!(
        s.login("limited", "secret", json!({"expiration": 60}))
            .status,
        200
    );
    // internal users are not limited.
    insert_user(&s.db, "svc", &top, "internal", "");
    for _ in 0..5 {
        assert_eq!(s.login("svc", "secret", json!({})).status, 200);
    }
    std::thread::sleep(Duration::from_millis(10));
}

/// A client that disconnects while its login waits for a password-hash slot costs no hash: the
/// request is dropped, the queued call sees it and skips hashing, and the logins behind it are
/// not delayed by work nobody waits for.
#[test]
fn abandoned_logins_are_not_hashed() {
    use std::io::Write;
    use std::net::TcpStream;

    let s = ServerBuilder::new()
        .with_wazo_user()
        // The login sent after the abandoned ones waits for the hashes already under way (up to
        // two per core, 0.3 s each here): with the machine three times slower that outlasted a
        // 2 s plugin timeout (401). A time-out would also end queued calls unhashed, in place of
        // the client's departure this test is about.
        .config(json!({"plugin_call_timeout": 20.0}))
        .env(
            "RUST_LOG",
            "info,actix_server=warn,wazo_auth::services=debug",
        )
        .start();
    let addr = s.base.trim_start_matches("http://").to_string();
    let auth = basic(ADMIN.0, ADMIN.1);
    let body = "{}";
    let request = format!(
        "POST /0.1/token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Far more logins than there are cores: most of them queue for a hash slot.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let queued = 4 * cores + 8;
    let mut clients: Vec<TcpStream> = (0..queued)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).expect("connect");
            c.write_all(request.as_bytes()).expect("send");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    for c in &mut clients {
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
    drop(clients);
    // A login sent afterwards is served normally.
    assert_eq!(s.login(ADMIN.0, ADMIN.1, json!({})).status, 200);
    let skipped = |log: &str| log.matches("login abandoned by its client").count();
    // Each core had at most a couple of hashes under way or about to start when the clients
    // left; every other queued login must have been dropped unhashed.
    let expected = queued - 2 * cores;
    s.wait_log(Duration::from_secs(30), |log| skipped(log) >= expected);
    assert!(
        !s.log().contains(ADMIN.1),
        "the log must not hold the password"
    );
}
