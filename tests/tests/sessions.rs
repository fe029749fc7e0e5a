//! Sessions and refresh tokens: offline logins, refresh-token logins, mobile rules, listings and
//! deletions, and what we do better than the original (hashed storage, revocation on delete,
//! optional lifetime).

use std::time::Duration;

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

fn one(db: &str, q: &str) -> String {
    sql(db, q)[0][0].clone().unwrap_or_default()
}

fn offline(s: &Server, user: &str, client_id: &str, mobile: bool) -> Resp {
    s.offline_login(user, client_id, mobile)
}

fn data(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"].clone()
}

#[test]
fn offline_and_refresh_token_logins() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "carl", "pw", None);

    let first = offline(&s, "carl", "my-app", false);
    assert_eq!(first.header("Wazo-Sessions-Revoked"), Some("0"));
    let first = data(&first);
    let rt = first["refresh_token"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&rt).is_ok(), "{rt}");
    // The same client gets the same refresh token again (non-mobile).
    let again = data(&offline(&s, "carl", "my-app", false));
    assert_eq!(again["refresh_token"], Value::from(rt.clone()));
    assert_eq!(one(&s.db, "SELECT count(*) FROM auth_refresh_token"), "1");
    // Never stored in clear.
    assert_eq!(
        one(
            &s.db,
            &format!("SELECT count(*) FROM auth_refresh_token r WHERE r::text LIKE '%{rt}%'")
        ),
        "0"
    );

    // Refresh-token login: no password, no refresh_token key in the answer.
    let r = s.refresh_login(&rt, "my-app");
    let d = data(&r);
    assert!(d.get("refresh_token").is_none());
    assert_eq!(d["auth_id"], Value::from(u.clone()));
    assert_eq!(d["metadata"]["uuid"], Value::from(u.clone()));
    assert_eq!(r.header("Wazo-Sessions-Revoked"), Some("0"));
    // Wrong client, unknown token, garbage: 401.
    assert_eq!(s.refresh_login(&rt, "other-app").status, 401);
    assert_eq!(
        s.refresh_login(&uuid::Uuid::new_v4().to_string(), "my-app")
            .status,
        401
    );
    assert_eq!(s.refresh_login("' OR 1=1 --", "my-app").status, 401);
    // A refresh token of another client of the same user is another token.
    let other = data(&offline(&s, "carl", "other-app", false));
    assert_ne!(other["refresh_token"], Value::from(rt.clone()));

    // Listing: the user's own view equals the admin's view of that user.
    let carl = s.user_token("carl", "pw");
    let mine = s.call("GET", "/0.1/users/me/tokens", &carl, None, None);
    assert_eq!(mine.status, 401, "carl's default policy does not grant it");
    let theirs = s.call("GET", &format!("/0.1/users/{u}/tokens"), &admin, None, None);
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    let body = theirs.json();
    assert_eq!(body["total"], 2);
    assert_eq!(body["filtered"], 2);
    let item = &body["items"][0];
    let mut keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "client_id",
            "created_at",
            "metadata",
            "mobile",
            "tenant_uuid",
            "user_uuid"
        ]
    );
    assert_eq!(item["client_id"], "my-app");
    assert!(item["created_at"].as_str().unwrap().ends_with("+00:00"));
    let searched = s
        .call(
            "GET",
            &format!("/0.1/users/{u}/tokens?search=other"),
            &admin,
            None,
            None,
        )
        .json();
    assert_eq!(
        (searched["total"].clone(), searched["filtered"].clone()),
        (json!(2), json!(1))
    );
    let ordered = s
        .call(
            "GET",
            &format!("/0.1/users/{u}/tokens?order=client_id&direction=desc&limit=1"),
            &admin,
            None,
            None,
        )
        .json();
    assert_eq!(ordered["items"][0]["client_id"], "other-app");
    assert_eq!(ordered["items"].as_array().unwrap().len(), 1);
    for bad in [
        "limit=x",
        "offset=-1",
        "direction=up",
        "order=lol",
        "mobile=maybe",
    ] {
        let r = s.call(
            "GET",
            &format!("/0.1/users/{u}/tokens?{bad}"),
            &admin,
            None,
            None,
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["error_id"], "invalid-list-param");
    }
    let all = s.call("GET", "/0.1/tokens", &admin, None, None).json();
    assert_eq!(all["total"], 2);
    assert_eq!(
        s.call(
            "GET",
            &format!("/0.1/users/{}/tokens", uuid::Uuid::new_v4()),
            &admin,
            None,
            None
        )
        .status,
        404
    );
}

#[test]
fn deleting_a_refresh_token_revokes_its_sessions() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "dora", "pw", None);
    let rt = data(&offline(&s, "dora", "app", false))["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let from_refresh = data(&s.refresh_login(&rt, "app"))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let unrelated = s.user_token("dora", "pw");
    let r = s.call(
        "DELETE",
        &format!("/0.1/users/{u}/tokens/app"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(s.get(&format!("/0.1/token/{from_refresh}")).status, 404);
    assert_eq!(s.get(&format!("/0.1/token/{unrelated}")).status, 200);
    assert_eq!(s.refresh_login(&rt, "app").status, 401);
    let again = s.call(
        "DELETE",
        &format!("/0.1/users/{u}/tokens/app"),
        &admin,
        None,
        None,
    );
    assert_eq!(again.status, 404);
    let body = again.json();
    assert_eq!(
        body["error_id"],
        "cannot-find-refresh-token-matching-client-id"
    );
    assert_eq!(body["resource"], "tokens");
    assert_eq!(body["details"], json!({"client_id": "app"}));
    assert_eq!(
        body["message"],
        "unknown refresh_token for client_id \"app\""
    );
    let unknown = s.call(
        "DELETE",
        &format!("/0.1/users/{}/tokens/app", uuid::Uuid::new_v4()),
        &admin,
        None,
        None,
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error_id"], "unknown-user");
}

#[test]
fn mobile_logins_keep_one_mobile_client_per_user() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    s.create_user(&admin, "mo", "pw", None);
    s.create_user(&admin, "other", "pw", None);
    let desktop = data(&offline(&s, "mo", "desktop", false));
    let phone1 = data(&offline(&s, "mo", "phone-1", true));
    let other = data(&offline(&s, "other", "phone-1", true));
    // Another mobile client replaces the first: its refresh token and session go.
    let r = offline(&s, "mo", "phone-2", true);
    assert_eq!(r.header("Wazo-Sessions-Revoked"), Some("1"));
    assert_eq!(
        s.get(&format!("/0.1/token/{}", phone1["token"].as_str().unwrap()))
            .status,
        404
    );
    assert_eq!(
        s.refresh_login(phone1["refresh_token"].as_str().unwrap(), "phone-1")
            .status,
        401
    );
    // The desktop refresh token and the other user's are untouched.
    assert_eq!(
        s.refresh_login(desktop["refresh_token"].as_str().unwrap(), "desktop")
            .status,
        200
    );
    assert_eq!(
        s.refresh_login(other["refresh_token"].as_str().unwrap(), "phone-1")
            .status,
        200
    );
    // The same mobile client again: a new refresh token, the previous session ended.
    let phone2 = data(&r);
    let r = offline(&s, "mo", "phone-2", true);
    assert_eq!(r.header("Wazo-Sessions-Revoked"), Some("1"));
    let phone2b = data(&r);
    assert_ne!(phone2b["refresh_token"], phone2["refresh_token"]);
    assert_ne!(phone2b["session_uuid"], phone2["session_uuid"]);
    let mobile_flags = sql(&s.db, "SELECT r.client_id, r.mobile FROM auth_refresh_token r JOIN auth_user u ON u.uuid = r.user_uuid WHERE u.username = 'mo' ORDER BY r.client_id");
    assert_eq!(
        mobile_flags,
        vec![
            vec![Some("desktop".into()), Some("f".into())],
            vec![Some("phone-2".into()), Some("t".into())],
        ]
    );
}

#[test]
fn concurrent_offline_logins_make_exactly_one_refresh_token() {
    // The 8 logins queue for the password-hash slots: on a loaded machine the last ones outlast
    // the harness's plugin timeout, which this test is not about.
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"plugin_call_timeout": 20.0}))
        .start();
    let admin = s.admin_token();
    s.create_user(&admin, "racer", "pw", None);
    let values: Vec<String> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    data(&offline(&s, "racer", "same-client", false))["refresh_token"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    assert_eq!(one(&s.db, "SELECT count(*) FROM auth_refresh_token"), "1");
}

#[test]
fn refresh_tokens_can_expire() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"refresh_token_lifetime": 1}))
        .start();
    let admin = s.admin_token();
    s.create_user(&admin, "brief", "pw", None);
    let rt = data(&offline(&s, "brief", "app", false))["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.refresh_login(&rt, "app").status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(s.refresh_login(&rt, "app").status, 401);
    // A new offline login replaces the expired one.
    let rt2 = data(&offline(&s, "brief", "app", false))["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rt, rt2);
    assert_eq!(s.refresh_login(&rt2, "app").status, 200);
}

#[test]
fn sessions_are_listed_and_deleted() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "sam", "pw", None);
    let t1 = s.user_token("sam", "pw");
    let auth = basic("sam", "pw");
    let t2 = s.request(
        "POST",
        "/0.1/token",
        &[
            ("Authorization", auth.as_str()),
            ("Wazo-Session-Type", "mobile"),
        ],
        Some(b"{}"),
    );
    let t2 = data(&t2);
    let list = s.call(
        "GET",
        &format!("/0.1/users/{u}/sessions"),
        &admin,
        None,
        None,
    );
    assert_eq!(list.status, 200, "{}", list.body);
    let body = list.json();
    assert_eq!(body["total"], 2);
    assert_eq!(body["filtered"], 2);
    let top = one(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    );
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["user_uuid"], Value::from(u.clone()));
        assert_eq!(item["tenant_uuid"], Value::from(top.clone()));
    }
    let sorted = s
        .call(
            "GET",
            &format!("/0.1/users/{u}/sessions?order=mobile&direction=desc"),
            &admin,
            None,
            None,
        )
        .json();
    assert_eq!(sorted["items"][0]["mobile"], true);
    assert_eq!(sorted["items"][0]["uuid"], t2["session_uuid"]);
    let all = s.call("GET", "/0.1/sessions", &admin, None, None).json();
    assert_eq!(all["total"], 3, "admin's own session too");
    // Deleting a session revokes its token at once; deleting again is still 204.
    let session = t2["session_uuid"].as_str().unwrap();
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/0.1/sessions/{session}"),
            &admin,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(
        s.get(&format!("/0.1/token/{}", t2["token"].as_str().unwrap()))
            .status,
        404
    );
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/0.1/sessions/{session}"),
            &admin,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(s.get(&format!("/0.1/token/{t1}")).status, 200);
    // The user-scoped route.
    let s1 = s.get(&format!("/0.1/token/{t1}")).json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/0.1/users/{u}/sessions/{s1}"),
            &admin,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(s.get(&format!("/0.1/token/{t1}")).status, 404);
    assert_eq!(
        s.call(
            "GET",
            &format!("/0.1/users/{u}/sessions"),
            &admin,
            None,
            None
        )
        .json()["total"],
        0
    );
    // ACL and bad input.
    let nobody = s.call("GET", "/0.1/sessions", "not-a-token", None, None);
    assert_eq!(nobody.status, 401);
    assert_eq!(nobody.json()["details"]["reason"], "not_found_or_expired");
    assert_eq!(
        s.call(
            "GET",
            &format!("/0.1/users/{}/sessions", uuid::Uuid::new_v4()),
            &admin,
            None,
            None
        )
        .status,
        404
    );
    assert_eq!(
        s.call("GET", "/0.1/sessions?limit=-1", &admin, None, None)
            .status,
        400
    );
}

#[test]
fn disabling_a_user_or_changing_its_password_revokes_refresh_tokens() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "rev", "pw", None);
    // Password change.
    let rt = data(&offline(&s, "rev", "app", false))["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{u}/password"),
        &admin,
        None,
        Some(&json!({"old_password": "pw", "new_password": "pw2"})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(s.refresh_login(&rt, "app").status, 401);
    assert_eq!(one(&s.db, "SELECT count(*) FROM auth_refresh_token"), "0");
    // Disabling.
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{u}/password"),
        &admin,
        None,
        Some(&json!({"old_password": "pw2", "new_password": "pw"})),
    );
    assert_eq!(r.status, 204);
    let rt = data(&offline(&s, "rev", "app", false))["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{u}"),
        &admin,
        None,
        Some(&json!({"username": "rev", "enabled": false})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.refresh_login(&rt, "app").status, 401);
    // Re-enabled, the old refresh token stays dead.
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{u}"),
        &admin,
        None,
        Some(&json!({"username": "rev", "enabled": true})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(s.refresh_login(&rt, "app").status, 401);
}

/// The check order of these routes: the token first (401, even when a path segment is not a
/// UUID), then the path (the router's 404), then the user (404 unknown-user); the `me` routes
/// take the token's user as it is (a backend may put anything in `uuid`). GET routes do not
/// answer HEAD.
#[test]
fn the_token_is_checked_before_the_path_and_me_is_the_tokens_user() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let session = uuid::Uuid::new_v4();
    let user = uuid::Uuid::new_v4();
    for (method, path) in [
        ("GET", "/0.1/users/not-a-uuid/sessions".to_string()),
        ("DELETE", "/0.1/sessions/not-a-uuid".to_string()),
        (
            "DELETE",
            format!("/0.1/users/not-a-uuid/sessions/{session}"),
        ),
        ("DELETE", format!("/0.1/users/{user}/sessions/not-a-uuid")),
        ("GET", "/0.1/users/not-a-uuid/tokens".to_string()),
        ("DELETE", "/0.1/users/not-a-uuid/tokens/app".to_string()),
    ] {
        let r = s.request(method, &path, &[], None);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(r.json()["details"]["reason"], "not_found_or_expired");
        // A well-formed unknown token is looked up first: still 401.
        let unknown = uuid::Uuid::new_v4().to_string();
        let r = s.call(method, &path, &unknown, None, None);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(r.json()["details"]["reason"], "not_found_or_expired");
        let r = s.call(method, &path, &admin, None, None);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert!(
            r.json()["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("The requested URL was not found")),
            "{method} {path}: {}",
            r.body
        );
    }
    // A visible user is checked before the list parameters.
    let r = s.call(
        "GET",
        &format!("/0.1/users/{user}/sessions?limit=x"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unknown-user");
    let r = s.call(
        "DELETE",
        &format!("/0.1/users/{user}/sessions/{session}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["details"], json!({"uuid": user.to_string()}));
    // alice (example backend) has `auth.users.me.#` and the `uuid` "alice".
    let alice = s.alice_token(json!({}));
    let r = s.call("GET", "/0.1/users/me/tokens", &alice, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["total"], 0);
    let r = s.call("DELETE", "/0.1/users/me/tokens/app", &alice, None, None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.json()["error_id"],
        "cannot-find-refresh-token-matching-client-id"
    );
    for path in ["/0.1/sessions", "/0.1/tokens", "/0.1/users/me/tokens"] {
        let r = s.request("HEAD", path, &[("X-Auth-Token", admin.as_str())], None);
        assert_eq!(r.status, 405, "HEAD {path}");
    }
}

/// The totals of `GET /sessions`, `/users` and `/tokens` from the top tenant come from the row
/// tallies (migration V15), not from a count of every row: they must follow every way rows come
/// and go, and folding the tallies must keep them.
#[test]
fn the_listing_totals_follow_every_way_rows_come_and_go() {
    // No cleanup run: the periodic fold is what is tested below. The 6 concurrent logins
    // below queue for the password-hash slots (about 0.3 s a hash here, 1.2 s for the last one
    // with the machine idle; 401s with it twice as slow): a 20 s plugin timeout, as the other
    // concurrent-login tests, which are not about the timeout either.
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"token_cleanup_interval": 0, "plugin_call_timeout": 20.0}))
        .start();
    let admin = s.admin_token();
    let list_total = |path: &str| {
        let r = s.call("GET", path, &admin, None, None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["total"].as_i64().unwrap()
    };
    let total = || list_total("/0.1/sessions?recurse=true");
    let counted = || {
        one(&s.db, "SELECT count(*) FROM auth_token")
            .parse::<i64>()
            .unwrap()
    };
    assert_eq!(total(), counted());
    assert!(counted() >= 1, "admin's own token");

    s.create_user(&admin, "tally", "pw", None);
    let tokens: Vec<String> = (0..5).map(|_| s.user_token("tally", "pw")).collect();
    assert_eq!(total(), counted());
    // Logins on several connections at once (the tally takes no shared lock).
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                for _ in 0..3 {
                    s.user_token("tally", "pw");
                }
            });
        }
    });
    let before = counted();
    assert_eq!(total(), before);
    // A logout, a session deletion.
    let r = s.request("DELETE", &format!("/0.1/token/{}", tokens[0]), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let session = s.get(&format!("/0.1/token/{}", tokens[1])).json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call(
        "DELETE",
        &format!("/0.1/sessions/{session}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(counted(), before - 2);
    assert_eq!(total(), before - 2);
    // Rows written by SQL in bulk, as an import or an operator would: 300 inserted in one
    // statement, 120 of them deleted in another, and a session deletion that cascades.
    sql(
        &s.db,
        "INSERT INTO auth_session (uuid, tenant_uuid)
         SELECT md5('tally-s' || i)::uuid::text, (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
         FROM generate_series(1, 300) AS i;
         INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, metadata, session_uuid,
                                 user_agent, remote_addr, acl)
         SELECT sha256(convert_to('tally-k' || i, 'UTF8')), 'someone', 0, 4000000000, '{}',
                md5('tally-s' || i)::uuid::text, '', '', '{}'
         FROM generate_series(1, 300) AS i;
         DELETE FROM auth_token WHERE session_uuid IN
             (SELECT md5('tally-s' || i)::uuid::text FROM generate_series(1, 120) AS i);
         DELETE FROM auth_session WHERE uuid IN
             (SELECT md5('tally-s' || i)::uuid::text FROM generate_series(121, 130) AS i)",
    );
    assert_eq!(counted(), before - 2 + 300 - 120 - 10);
    assert_eq!(total(), counted());

    // The server folds the appended rows into one per table about every second, whatever the
    // cleanup's settings (disabled here), and the sums hold.
    sql(
        &s.db,
        "DO $$ BEGIN FOR i IN 1..500 LOOP
             INSERT INTO auth_tally (tbl, n) VALUES ('auth_token', 0);
         END LOOP; END $$",
    );
    assert_eq!(total(), counted());
    let appended = || {
        one(
            &s.db,
            "SELECT count(*) FROM auth_tally WHERE tbl = 'auth_token'",
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while appended() != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "the tally of auth_token still holds {} rows after 10 s",
            appended()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(total(), counted());

    // Users and refresh tokens: created, deleted (a user's deletion cascades to its refresh
    // tokens), listed.
    let users = || {
        one(&s.db, "SELECT count(*) FROM auth_user")
            .parse::<i64>()
            .unwrap()
    };
    let refresh = || {
        one(&s.db, "SELECT count(*) FROM auth_refresh_token")
            .parse::<i64>()
            .unwrap()
    };
    let gone = s.create_user(&admin, "tally-gone", "pw", None);
    s.create_user(&admin, "tally-kept", "pw", None);
    for client in ["a", "b", "c"] {
        data(&offline(&s, "tally-gone", client, false));
        data(&offline(&s, "tally-kept", client, false));
    }
    assert_eq!(refresh(), 6);
    assert_eq!(list_total("/0.1/users?recurse=true"), users());
    assert_eq!(list_total("/0.1/tokens?recurse=true"), refresh());
    let r = s.call("DELETE", &format!("/0.1/users/{gone}"), &admin, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(refresh(), 3);
    assert_eq!(list_total("/0.1/users?recurse=true"), users());
    assert_eq!(list_total("/0.1/tokens?recurse=true"), refresh());

    // A TRUNCATE empties the table's tally with the table.
    sql(&s.db, "TRUNCATE auth_token");
    assert_eq!(
        one(
            &s.db,
            "SELECT coalesce(sum(n), 0) FROM auth_tally WHERE tbl = 'auth_token'"
        ),
        "0"
    );
}

/// The totals of `GET /policies` and `GET /groups` from the top tenant come from the row tallies
/// too (migration V18): created and deleted through the API, in bulk by SQL, and with a deleted
/// tenant's, they stay the tables' counts. A sub-tenant's listing still counts its own.
#[test]
fn the_policy_and_group_totals_follow_their_rows() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let counted = |table: &str| {
        one(&s.db, &format!("SELECT count(*) FROM {table}"))
            .parse::<i64>()
            .unwrap()
    };
    let total = |path: &str, tenant: Option<&str>| {
        let r = s.call("GET", path, &admin, tenant, None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["total"].as_i64().unwrap()
    };
    let check = || {
        for (path, table) in [
            ("/0.1/policies?recurse=true", "auth_policy"),
            ("/0.1/groups?recurse=true", "auth_group"),
        ] {
            let tallied = one(
                &s.db,
                &format!("SELECT coalesce(sum(n), 0) FROM auth_tally WHERE tbl = '{table}'"),
            );
            assert_eq!(tallied, counted(table).to_string(), "{table}'s tally");
            assert_eq!(total(path, None), counted(table), "{path}");
        }
    };
    check();
    let r = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "tallied"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let tenant = r.json()["uuid"].as_str().unwrap().to_string();
    check();
    for i in 0..3 {
        for (path, body) in [
            (
                "/0.1/policies",
                json!({"name": format!("tally-p{i}"), "acl": []}),
            ),
            ("/0.1/groups", json!({"name": format!("tally-g{i}")})),
        ] {
            for owner in [None, Some(tenant.as_str())] {
                let r = s.call("POST", path, &admin, owner, Some(&body));
                assert_eq!(r.status, 200, "{path}: {}", r.body);
            }
        }
    }
    check();
    // The sub-tenant's own listing counts its rows (its default policies and groups included).
    let own = |table: &str| {
        one(
            &s.db,
            &format!("SELECT count(*) FROM {table} WHERE tenant_uuid = '{tenant}'"),
        )
        .parse::<i64>()
        .unwrap()
    };
    assert!(own("auth_policy") >= 3);
    assert_eq!(total("/0.1/groups", Some(&tenant)), own("auth_group"));
    // Deleted through the API.
    let policy = s.call("GET", "/0.1/policies?name=tally-p0", &admin, None, None);
    let policy = policy.json()["items"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call(
        "DELETE",
        &format!("/0.1/policies/{policy}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let group = s.call("GET", "/0.1/groups?name=tally-g0", &admin, None, None);
    let group = group.json()["items"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call(
        "DELETE",
        &format!("/0.1/groups/{group}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    check();
    // In bulk by SQL, as an import or an operator would.
    sql(
        &s.db,
        "INSERT INTO auth_policy (uuid, tenant_uuid, name, slug)
         SELECT md5('tally-p' || i)::uuid::text, (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid),
                'bulk-' || i, 'bulk_' || i
         FROM generate_series(1, 50) AS i;
         INSERT INTO auth_group (uuid, tenant_uuid, name, slug)
         SELECT md5('tally-g' || i)::uuid::text, (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid),
                'bulk-' || i, 'bulk_' || i
         FROM generate_series(1, 40) AS i;
         DELETE FROM auth_policy WHERE name IN ('bulk-1', 'bulk-2');
         DELETE FROM auth_group WHERE name LIKE 'bulk-1%'",
    );
    check();
    // A tenant's deletion takes its policies and groups with it.
    let before = (counted("auth_policy"), counted("auth_group"));
    let r = s.call(
        "DELETE",
        &format!("/0.1/tenants/{tenant}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(counted("auth_policy") < before.0);
    assert!(counted("auth_group") < before.1);
    check();
}
