//! Bus events in the transactional outbox (issue 13): each event is triggered over HTTP and read
//! back from `auth_event_outbox`, where the change's transaction wrote it (no publisher runs
//! here, so rows stay). Names, routing keys, headers and data are those of wazo-bus; a change
//! that rolls back writes nothing.

use std::time::{Duration, Instant};

use wazo_auth_core::events::Event;
use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

/// One outbox row.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    name: String,
    key: String,
    headers: Value,
    data: Value,
}

/// The id of the last outbox row (0 when empty): rows written later have larger ids (in both
/// tables, `auth_event_outbox` and the purge's `auth_event_outbox_batch`: one sequence).
fn mark(db: &str) -> i64 {
    sql(
        db,
        "SELECT GREATEST((SELECT max(id) FROM auth_event_outbox),
                         (SELECT max(id) FROM auth_event_outbox_batch), 0)",
    )[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// The outbox's events after `mark`, in order: those of the rows of `auth_event_outbox`, and
/// each event of the batch rows of `auth_event_outbox_batch` (migrations/V17).
fn rows_after(db: &str, mark: i64) -> Vec<Row> {
    sql(
        db,
        &format!(
            "SELECT name, routing_key, headers::text, data::text FROM (
                 SELECT id, 0 AS n, name, routing_key, headers, data FROM auth_event_outbox
                 WHERE id > {mark}
                 UNION ALL
                 SELECT b.id, e.n, b.name, e.ev->>'routing_key', e.ev->'headers', e.ev->'data'
                 FROM auth_event_outbox_batch b,
                      jsonb_array_elements(b.events) WITH ORDINALITY AS e(ev, n)
                 WHERE b.id > {mark}) o
             ORDER BY id, n"
        ),
    )
    .into_iter()
    .map(|r| Row {
        name: r[0].clone().unwrap(),
        key: r[1].clone().unwrap(),
        headers: serde_json::from_str(r[2].as_deref().unwrap()).unwrap(),
        data: serde_json::from_str(r[3].as_deref().unwrap()).unwrap(),
    })
    .collect()
}

/// The same rows without the logins' `auth_session_created` (administrator tokens...).
fn changes_after(db: &str, mark: i64) -> Vec<Row> {
    rows_after(db, mark)
        .into_iter()
        .filter(|r| r.name != "auth_session_created")
        .collect()
}

fn row(e: Event) -> Row {
    Row {
        name: e.name.to_string(),
        key: e.routing_key,
        headers: Value::Object(e.headers),
        data: e.data,
    }
}

fn top_tenant(db: &str) -> String {
    sql(db, "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid")[0][0]
        .clone()
        .unwrap()
}

/// The headers wazo-bus writes for a user's event (`user`: its uuid when known).
fn user_headers(
    name: &str,
    key: &str,
    tenant: &str,
    user: Option<&str>,
    session: Option<&str>,
) -> Value {
    let mut h = json!({
        "name": name,
        "tenant_uuid": tenant,
        "required_access": format!("event.{name}"),
        "required_acl": format!("events.{key}"),
    });
    if let Some(u) = user {
        h[format!("user_uuid:{u}")] = json!(true);
    }
    if let Some(s) = session {
        h["session_uuid"] = json!(s);
    }
    h
}

fn tenant_headers(name: &str, key: &str, tenant: &str) -> Value {
    json!({
        "name": name,
        "tenant_uuid": tenant,
        "user_uuid:*": true,
        "required_access": format!("event.{name}"),
        "required_acl": format!("events.{key}"),
    })
}

fn session_deleted(session: &str, tenant: &str, user: &str) -> Row {
    let key = format!("auth.sessions.{session}.deleted");
    Row {
        name: "auth_session_deleted".into(),
        headers: user_headers(
            "auth_session_deleted",
            &key,
            tenant,
            Some(user),
            Some(session),
        ),
        key,
        data: json!({"uuid": session, "user_uuid": user, "tenant_uuid": tenant}),
    }
}

fn refresh_token_row(action: &str, client_id: &str, mobile: bool, tenant: &str, user: &str) -> Row {
    let name = format!("auth_refresh_token_{action}");
    let key = format!("auth.users.{user}.tokens.{client_id}.{action}");
    Row {
        headers: user_headers(&name, &key, tenant, Some(user), None),
        name,
        key,
        data: json!({"client_id": client_id, "mobile": mobile, "user_uuid": user, "tenant_uuid": tenant}),
    }
}

fn login_data(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"].clone()
}

fn offline(s: &Server, user: &str, client_id: &str, mobile: bool) -> Value {
    login_data(&s.offline_login(user, client_id, mobile))
}

fn session_of(login: &Value) -> String {
    login["session_uuid"].as_str().unwrap().to_string()
}

#[test]
fn tenant_events_and_a_rolled_back_creation_writes_nothing() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let m = mark(&s.db);
    let r = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "Acme", "slug": "acme", "domain_names": ["b.example.com", "a.example.com"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json()["uuid"].as_str().unwrap().to_string();
    let key = format!("auth.tenants.{t}.created");
    let added = Row {
        name: "auth_tenant_added".into(),
        headers: tenant_headers("auth_tenant_added", &key, &t),
        key,
        data: json!({"uuid": t, "name": "Acme", "slug": "acme",
                     "domain_names": ["a.example.com", "b.example.com"]}),
    };
    assert_eq!(changes_after(&s.db, m), vec![added]);

    // A duplicate slug answers 409: its transaction rolled back, no event.
    let m = mark(&s.db);
    let dup = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "Other", "slug": "acme"})),
    );
    assert_eq!(dup.status, 409, "{}", dup.body);
    assert_eq!(rows_after(&s.db, m), vec![]);

    let m = mark(&s.db);
    let r = s.call(
        "PUT",
        &format!("/0.1/tenants/{t}"),
        &admin,
        None,
        Some(&json!({"name": "Acme 2"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let key = format!("auth.tenants.{t}.updated");
    let updated = Row {
        name: "auth_tenant_updated".into(),
        headers: tenant_headers("auth_tenant_updated", &key, &t),
        key,
        data: json!({"uuid": t, "name": "Acme 2"}),
    };
    assert_eq!(changes_after(&s.db, m), vec![updated]);

    // An update of an unknown tenant (404) writes nothing.
    let m = mark(&s.db);
    let unknown = uuid::Uuid::new_v4();
    let r = s.call(
        "PUT",
        &format!("/0.1/tenants/{unknown}"),
        &admin,
        None,
        Some(&json!({"name": "x"})),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(rows_after(&s.db, m), vec![]);

    let m = mark(&s.db);
    let r = s.call("DELETE", &format!("/0.1/tenants/{t}"), &admin, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    let key = format!("auth.tenants.{t}.deleted");
    let deleted = Row {
        name: "auth_tenant_deleted".into(),
        headers: tenant_headers("auth_tenant_deleted", &key, &t),
        key,
        data: json!({"uuid": t}),
    };
    assert_eq!(changes_after(&s.db, m), vec![deleted]);
}

#[test]
fn every_login_writes_session_created_and_a_failed_one_nothing() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let top = top_tenant(&s.db);
    let u = s.create_user(&admin, "sam", "pw", None);

    // A user's login (the grouped statement): the user, not mobile.
    let m = mark(&s.db);
    let login = login_data(&s.login("sam", "pw", json!({})));
    let session = session_of(&login);
    let key = format!("auth.sessions.{session}.created");
    let expected = Row {
        name: "auth_session_created".into(),
        headers: user_headers("auth_session_created", &key, &top, Some(&u), Some(&session)),
        key,
        data: json!({"uuid": session, "tenant_uuid": top, "user_uuid": u, "mobile": false}),
    };
    assert_eq!(rows_after(&s.db, m), vec![expected.clone()]);
    // The row built by the grouped statement is the core's event.
    assert_eq!(
        expected,
        row(Event::session_created(&session, false, &top, Some(&u)))
    );

    // A mobile login.
    let m = mark(&s.db);
    let auth = basic("sam", "pw");
    let r = s.request(
        "POST",
        "/0.1/token",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Wazo-Session-Type", "mobile"),
        ],
        Some(b"{}"),
    );
    let session = session_of(&login_data(&r));
    assert_eq!(
        rows_after(&s.db, m),
        vec![row(Event::session_created(&session, true, &top, Some(&u)))]
    );
    assert_eq!(rows_after(&s.db, m)[0].data["mobile"], json!(true));

    // An auth id that is not a UUID: a null user and no user header.
    let m = mark(&s.db);
    let r = s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    );
    let session = session_of(&login_data(&r));
    let key = format!("auth.sessions.{session}.created");
    assert_eq!(
        rows_after(&s.db, m),
        vec![Row {
            name: "auth_session_created".into(),
            headers: user_headers("auth_session_created", &key, &top, None, Some(&session)),
            key,
            data: json!({"uuid": session, "tenant_uuid": top, "user_uuid": null, "mobile": false}),
        }]
    );

    // A failed login writes nothing.
    let m = mark(&s.db);
    assert_eq!(s.login("sam", "wrong", json!({})).status, 401);
    assert_eq!(rows_after(&s.db, m), vec![]);

    // Concurrent logins (grouped into shared statements; a backend without password hashing,
    // so that they arrive together): one row per session, each its own.
    let m = mark(&s.db);
    let sessions: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                scope.spawn(|| {
                    let body = json!({"backend": "example_static"});
                    session_of(&login_data(&s.login("alice", "alice-secret", body)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut written = rows_after(&s.db, m);
    assert_eq!(written.len(), sessions.len());
    written.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected: Vec<Row> = sessions
        .iter()
        .map(|session| row(Event::session_created(session, false, &top, None)))
        .collect();
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(written, expected);
}

#[test]
fn session_deleted_on_token_and_session_deletes() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let top = top_tenant(&s.db);
    let u = s.create_user(&admin, "dan", "pw", None);

    // DELETE /token/{token}.
    let login = login_data(&s.login("dan", "pw", json!({})));
    let token = login["token"].as_str().unwrap();
    let m = mark(&s.db);
    assert_eq!(
        s.request("DELETE", &format!("/0.1/token/{token}"), &[], None)
            .status,
        200
    );
    assert_eq!(
        rows_after(&s.db, m),
        vec![session_deleted(&session_of(&login), &top, &u)]
    );
    // Deleting it again ends nothing.
    let m = mark(&s.db);
    s.request("DELETE", &format!("/0.1/token/{token}"), &[], None);
    assert_eq!(rows_after(&s.db, m), vec![]);

    // The session's user is the token's auth id as it is, even when not a UUID.
    let alice = login_data(&s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    ));
    let token = alice["token"].as_str().unwrap();
    let m = mark(&s.db);
    s.request("DELETE", &format!("/0.1/token/{token}"), &[], None);
    assert_eq!(
        rows_after(&s.db, m),
        vec![session_deleted(&session_of(&alice), &top, "alice")]
    );

    // DELETE /sessions/{session}.
    let session = session_of(&login_data(&s.login("dan", "pw", json!({}))));
    let m = mark(&s.db);
    let r = s.call(
        "DELETE",
        &format!("/0.1/sessions/{session}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        changes_after(&s.db, m),
        vec![session_deleted(&session, &top, &u)]
    );

    // DELETE /users/{user}/sessions/{session}.
    let session = session_of(&login_data(&s.login("dan", "pw", json!({}))));
    let m = mark(&s.db);
    let r = s.call(
        "DELETE",
        &format!("/0.1/users/{u}/sessions/{session}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        changes_after(&s.db, m),
        vec![session_deleted(&session, &top, &u)]
    );
}

#[test]
fn user_changes_end_sessions_and_refresh_tokens_with_events() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let top = top_tenant(&s.db);
    let u = s.create_user(&admin, "eve", "pw", None);

    // Password change: the session and the refresh token end.
    let login = offline(&s, "eve", "app", false);
    let m = mark(&s.db);
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{u}/password"),
        &admin,
        None,
        Some(&json!({"old_password": "pw", "new_password": "pw2"})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        changes_after(&s.db, m),
        vec![
            session_deleted(&session_of(&login), &top, &u),
            refresh_token_row("deleted", "app", false, &top, &u),
        ]
    );
    // A refused password change writes nothing.
    let m = mark(&s.db);
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{u}/password"),
        &admin,
        None,
        Some(&json!({"old_password": "wrong", "new_password": "pw3"})),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(changes_after(&s.db, m), vec![]);

    // Disabling.
    let login = login_data(&s.login("eve", "pw2", json!({})));
    let m = mark(&s.db);
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{u}"),
        &admin,
        None,
        Some(&json!({"username": "eve", "enabled": false})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        changes_after(&s.db, m),
        vec![session_deleted(&session_of(&login), &top, &u)]
    );

    // Deleting.
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{u}"),
        &admin,
        None,
        Some(&json!({"username": "eve", "enabled": true})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let login = login_data(&s.login("eve", "pw2", json!({})));
    let m = mark(&s.db);
    let r = s.call("DELETE", &format!("/0.1/users/{u}"), &admin, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        changes_after(&s.db, m),
        vec![session_deleted(&session_of(&login), &top, &u)]
    );
}

#[test]
fn refresh_token_events() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let top = top_tenant(&s.db);
    let u = s.create_user(&admin, "fay", "pw", None);

    // An offline login that creates the refresh token: created, then the session.
    let m = mark(&s.db);
    let first = offline(&s, "fay", "my.app", false);
    let created = refresh_token_row("created", "my__DOT__app", false, &top, &u);
    let created = Row {
        data: json!({"client_id": "my.app", "mobile": false, "user_uuid": u, "tenant_uuid": top}),
        ..created
    };
    assert_eq!(
        rows_after(&s.db, m),
        vec![
            created.clone(),
            row(Event::session_created(
                &session_of(&first),
                false,
                &top,
                Some(&u)
            )),
        ]
    );
    // One that reuses it: the session only.
    let m = mark(&s.db);
    let second = offline(&s, "fay", "my.app", false);
    assert_eq!(
        rows_after(&s.db, m),
        vec![row(Event::session_created(
            &session_of(&second),
            false,
            &top,
            Some(&u)
        ))]
    );

    // Its deletion ends the sessions issued from it.
    let m = mark(&s.db);
    let r = s.call(
        "DELETE",
        &format!("/0.1/users/{u}/tokens/my.app"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let deleted = Row {
        name: "auth_refresh_token_deleted".into(),
        key: created.key.replace(".created", ".deleted"),
        headers: user_headers(
            "auth_refresh_token_deleted",
            &created.key.replace(".created", ".deleted"),
            &top,
            Some(&u),
            None,
        ),
        data: created.data.clone(),
    };
    let mut ended = changes_after(&s.db, m);
    let last = ended.pop();
    assert_eq!(last, Some(deleted));
    ended.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected = vec![
        session_deleted(&session_of(&first), &top, &u),
        session_deleted(&session_of(&second), &top, &u),
    ];
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(ended, expected);
    // Unknown now: 404, nothing written.
    let m = mark(&s.db);
    let r = s.call(
        "DELETE",
        &format!("/0.1/users/{u}/tokens/my.app"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(changes_after(&s.db, m), vec![]);

    // Mobile re-login: the previous refresh token and its session end, a new one is created.
    let mobile = offline(&s, "fay", "phone", true);
    let m = mark(&s.db);
    let again = offline(&s, "fay", "phone", true);
    assert_eq!(
        rows_after(&s.db, m),
        vec![
            session_deleted(&session_of(&mobile), &top, &u),
            refresh_token_row("deleted", "phone", true, &top, &u),
            refresh_token_row("created", "phone", true, &top, &u),
            row(Event::session_created(
                &session_of(&again),
                true,
                &top,
                Some(&u)
            )),
        ]
    );
    // Another mobile client replaces it.
    let m = mark(&s.db);
    let other = offline(&s, "fay", "tablet", true);
    assert_eq!(
        rows_after(&s.db, m),
        vec![
            refresh_token_row("created", "tablet", true, &top, &u),
            session_deleted(&session_of(&again), &top, &u),
            refresh_token_row("deleted", "phone", true, &top, &u),
            row(Event::session_created(
                &session_of(&other),
                true,
                &top,
                Some(&u)
            )),
        ]
    );
}

#[test]
fn external_auth_events() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(BAR))
        .config(json!({"enabled_external_auth_plugins": {"bar": true}}))
        .start();
    let admin = s.admin_token();
    let top = top_tenant(&s.db);
    let u = s.create_user(&admin, "gus", "pw", None);
    let path = format!("/0.1/users/{u}/external/bar");
    let expected = |e: Event| vec![row(e)];

    let m = mark(&s.db);
    let r = s.call("POST", &path, &admin, None, Some(&json!({"scope": ["a"]})));
    assert_eq!(r.status, 200, "{}", r.body);
    let added = changes_after(&s.db, m);
    assert_eq!(added, expected(Event::external_auth_added("bar", &top, &u)));
    let key = format!("auth.users.{u}.external.bar.created");
    assert_eq!(
        added[0],
        Row {
            name: "auth_user_external_auth_added".into(),
            headers: user_headers("auth_user_external_auth_added", &key, &top, Some(&u), None),
            key,
            data: json!({"user_uuid": u, "external_auth_name": "bar"}),
        }
    );
    // A conflict (409) writes nothing.
    let m = mark(&s.db);
    let r = s.call("POST", &path, &admin, None, Some(&json!({"scope": ["a"]})));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(changes_after(&s.db, m), vec![]);

    let m = mark(&s.db);
    let r = s.call("PUT", &path, &admin, None, Some(&json!({"scope": ["b"]})));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        changes_after(&s.db, m),
        expected(Event::external_auth_updated("bar", &top, &u))
    );
    assert_eq!(
        changes_after(&s.db, m)[0].key,
        format!("auth.users.{u}.external.bar.updated")
    );

    let m = mark(&s.db);
    let r = s.call("DELETE", &path, &admin, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    let deleted = changes_after(&s.db, m);
    assert_eq!(
        deleted,
        expected(Event::external_auth_deleted("bar", &top, &u))
    );
    assert_eq!(
        deleted[0].key,
        format!("auth.users.{u}.external.bar.deleted")
    );
    // Nothing left to delete: 404, nothing written.
    let m = mark(&s.db);
    assert_eq!(s.call("DELETE", &path, &admin, None, None).status, 404);
    assert_eq!(changes_after(&s.db, m), vec![]);
}

#[test]
fn expire_soon_then_purge_events() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"token_cleanup_interval": 0.5}))
        .start();
    let admin = s.admin_token();
    let top = top_tenant(&s.db);
    let u = s.create_user(&admin, "hal", "pw", None);
    let m = mark(&s.db);
    let short = login_data(&s.login("hal", "pw", json!({"expiration": 2})));
    let long = login_data(&s.login("hal", "pw", json!({"expiration": 3600})));
    let session = session_of(&short);

    let deadline = Instant::now() + Duration::from_secs(20);
    let written = loop {
        let written = changes_after(&s.db, m);
        if written.iter().any(|r| r.name == "auth_session_deleted") {
            break written;
        }
        assert!(Instant::now() < deadline, "no purge event: {written:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let key = format!("auth.users.{u}.sessions.{session}.expire_soon");
    let soon = Row {
        name: "auth_session_expire_soon".into(),
        headers: user_headers(
            "auth_session_expire_soon",
            &key,
            &top,
            Some(&u),
            Some(&session),
        ),
        key,
        data: json!({"uuid": session, "user_uuid": u, "tenant_uuid": top}),
    };
    // Announced (once: the next run purges it), then purged; the long-lived session is neither.
    assert_eq!(written, vec![soon, session_deleted(&session, &top, &u)]);
    assert!(!format!("{written:?}").contains(&session_of(&long)));
}

/// The purge's events name the token's auth id as the user whatever it is (here the example
/// backend's login, not a uuid), as [`Event::session_deleted`] does, one event per session.
#[test]
fn purge_events_of_an_auth_id_that_is_not_a_uuid() {
    let s = ServerBuilder::new()
        .config(json!({"token_cleanup_interval": 0.5}))
        .start();
    let top = top_tenant(&s.db);
    let m = mark(&s.db);
    let sessions: Vec<String> = (0..3)
        .map(|_| {
            let r = s.login(
                "alice",
                "alice-secret",
                json!({"backend": "example_static", "expiration": 1}),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            session_of(&login_data(&r))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let deleted = loop {
        let deleted: Vec<Row> = changes_after(&s.db, m)
            .into_iter()
            .filter(|r| r.name == "auth_session_deleted")
            .collect();
        if deleted.len() >= sessions.len() {
            break deleted;
        }
        assert!(Instant::now() < deadline, "purge events: {deleted:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut expected: Vec<Row> = sessions
        .iter()
        .map(|session| row(Event::session_deleted(session, &top, Some("alice"))))
        .collect();
    let mut deleted = deleted;
    deleted.sort_by(|a, b| a.key.cmp(&b.key));
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(deleted, expected);
    assert_eq!(
        sql(&s.db, "SELECT count(*) FROM auth_session")[0][0].as_deref(),
        Some("0")
    );
}

/// One purge batch's statement (`PURGE_BATCH_SQL`, run here by hand on 1,200 expired sessions)
/// writes their events as rows of at most 500 (`OUTBOX_BATCH_EVENTS`), in the order of the
/// tokens' expiry, each session's event once, and answers each session ended.
#[test]
fn a_purge_batch_writes_its_events_in_rows_of_at_most_500() {
    use wazo_auth_core::tokens::{OUTBOX_BATCH_EVENTS, PURGE_BATCH_SQL};
    let db = fresh_database();
    let top = top_tenant(&db);
    sql(
        &db,
        "INSERT INTO auth_session (uuid, tenant_uuid)
         SELECT md5('chunk-' || i)::uuid::text, (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
         FROM generate_series(1, 1200) AS i;
         INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, metadata, session_uuid, acl)
         SELECT sha256(convert_to('chunk-' || i, 'UTF8')), 'someone', 0,
                extract(epoch FROM now()) - 7200 + i, '{}', md5('chunk-' || i)::uuid::text, '{}'
         FROM generate_series(1, 1200) AS i",
    );
    let statement = PURGE_BATCH_SQL
        .replace("$1", "extract(epoch FROM now())::float8")
        .replace("$2", "5000::int8")
        .replace("$3", "0::float8");
    assert_eq!(sql(&db, &statement).len(), 1200, "every session ended");
    let counts: Vec<i64> = sql(
        &db,
        "SELECT event_count FROM auth_event_outbox_batch ORDER BY id",
    )
    .into_iter()
    .map(|r| r[0].as_deref().unwrap().parse().unwrap())
    .collect();
    assert_eq!(counts, vec![OUTBOX_BATCH_EVENTS, OUTBOX_BATCH_EVENTS, 200]);
    // In the tokens' expiry order (session i expired at i), across the rows.
    let order: Vec<String> = sql(
        &db,
        "SELECT e->'data'->>'uuid' FROM auth_event_outbox_batch b,
                jsonb_array_elements(b.events) WITH ORDINALITY AS a(e, n)
         ORDER BY b.id, a.n",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect();
    let expected: Vec<String> = sql(
        &db,
        "SELECT md5('chunk-' || i)::uuid::text FROM generate_series(1, 1200) AS i ORDER BY i",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect();
    assert_eq!(order, expected);
    // Each event as `Event::session_deleted` makes it.
    let last = rows_after(&db, 0).pop().unwrap();
    assert_eq!(
        last,
        row(Event::session_deleted(
            expected.last().unwrap(),
            &top,
            Some("someone")
        ))
    );
    assert_eq!(
        sql(&db, "SELECT count(*) FROM auth_session")[0][0].as_deref(),
        Some("0")
    );
}

#[test]
fn the_benchmark_login_statement_writes_the_same_outbox_row() {
    // bench/insert_token.sql measures the login's statement: it must stay the server's.
    let db = fresh_database();
    let top = top_tenant(&db);
    let statement =
        std::fs::read_to_string(workspace_root().join("bench/insert_token.sql")).unwrap();
    sql(&db, &statement);
    let written = rows_after(&db, 0);
    let session = sql(&db, "SELECT uuid FROM auth_session")[0][0]
        .clone()
        .unwrap();
    assert_eq!(
        written,
        vec![row(Event::session_created(&session, false, &top, None))]
    );
}
