//! Black-box tests of external-auth sub-routes (plugin-api 1.3) with real `.so` files: the
//! built-in `mobile` plugin declaring `GET /users/{user_uuid}/external/mobile/sender_id` as the
//! original's mobile plugin does, and a test plugin `subroutes` (tests/plugins/sub-routes) with
//! more routes. The host checks the declared ACL, then the tenant scope, then calls the plugin;
//! a panicking or hanging sub-route answers a 503 JSON error and the server keeps serving.

use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

fn server() -> Server {
    ServerBuilder::new()
        .with_wazo_user()
        .with_mobile()
        .plugin(workspace_plugin(SUB_ROUTES))
        .config(json!({"enabled_external_auth_plugins": {"subroutes": true}}))
        .start()
}

#[test]
fn mobile_sender_id_is_a_sub_route_checked_for_acl_and_tenant() {
    let s = server();
    let admin = s.admin_token();
    let top = sql(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0][0]
        .clone()
        .unwrap();
    let alice = s.create_user(&admin, "alice-m", "pw", None);
    let sender = format!("/0.1/users/{alice}/external/mobile/sender_id");

    // Alice's own token has no ACL for it: 401 naming the declared ACL.
    let alice_token = s.user_token("alice-m", "pw");
    let r = s.call("GET", &sender, &alice_token, None, None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json()["details"]["required_access"],
        Value::from(format!("auth.users.{alice}.external.mobile.sender_id.read"))
    );
    // No token at all: 401 too.
    assert_eq!(s.request("GET", &sender, &[], None).status, 401);

    // The scoping tenant has no mobile configuration yet: 404.
    let r = s.call("GET", &sender, &admin, None, None);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s.call(
        "POST",
        "/0.1/external/mobile/config",
        &admin,
        None,
        Some(&json!({"fcm_sender_id": "1234", "fcm_api_key": "k"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s.call("GET", &sender, &admin, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"sender_id": "1234"}));

    // Outside the caller's scoping tenant: 404 unknown user, the plugin is not called.
    let sub = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "sub"})),
    );
    assert_eq!(sub.status, 200, "{}", sub.body);
    let sub = sub.json()["uuid"].as_str().unwrap().to_string();
    let r = s.call("GET", &sender, &admin, Some(&sub), None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unknown-user");

    // Routing: another method 405, an undeclared or refused path and a user that is not a
    // uuid are the router's 404.
    assert_eq!(s.call("PUT", &sender, &admin, None, None).status, 405);
    for path in [
        format!("/0.1/users/{alice}/external/mobile/nothing"),
        format!("/0.1/users/{alice}/external/mobile/{{x}}"),
        format!("/0.1/users/{alice}/external/subroutes/{{x}}"),
        format!("/0.1/users/{alice}/external/mobile/sender_id/more"),
        format!("/0.1/users/{alice}/external/mobile/"),
        format!("/0.1/users/{alice}/external/unknown/sender_id"),
        "/0.1/users/not-a-uuid/external/mobile/sender_id".to_string(),
    ] {
        let r = s.call("GET", &path, &admin, None, None);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(
            r.body.contains("was not found on the server"),
            "{path}: {}",
            r.body
        );
    }

    // The plugin gets the method, the path, the user, the scoping tenant, query and body.
    let r = s.call(
        "POST",
        &format!("/0.1/users/{alice}/external/subroutes/echo?x=y"),
        &admin,
        None,
        Some(&json!({"a": 1})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"method": "POST", "path": "echo", "user_uuid": alice, "tenant_uuid": top,
               "query": {"x": "y"}, "body": {"a": 1}})
    );
    // A body that is not a JSON object: 400 before the plugin.
    let r = s.request(
        "POST",
        &format!("/0.1/users/{alice}/external/subroutes/echo"),
        &[
            ("X-Auth-Token", admin.as_str()),
            ("Content-Type", "application/json"),
        ],
        Some(b"[1]"),
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // The plugin's other routes are unchanged.
    let base = format!("/0.1/users/{alice}/external/subroutes");
    let r = s.call("POST", &base, &admin, None, Some(&json!({"token": "t"})));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        s.call("GET", &base, &admin, None, None).json(),
        json!({"token": "t"})
    );
}

#[test]
fn a_panicking_or_hanging_sub_route_answers_503_json_and_the_server_keeps_serving() {
    let s = server();
    let admin = s.admin_token();
    let alice = s.create_user(&admin, "alice-m", "pw", None);
    let r = s.call(
        "GET",
        &format!("/0.1/users/{alice}/external/subroutes/boom"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error_id"], "plugin-unavailable");
    assert!(!r.body.contains("boom sub-route"), "{}", r.body);
    let started = Instant::now();
    let r = s.call(
        "GET",
        &format!("/0.1/users/{alice}/external/subroutes/nap"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error_id"], "plugin-unavailable");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Still serving, logins included.
    let r = s.call(
        "POST",
        &format!("/0.1/users/{alice}/external/subroutes/echo"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.login(ADMIN.0, ADMIN.1, json!({})).status, 200);
    let log = s.log();
    assert!(
        log.contains("GET boom failed") && log.contains("boom sub-route"),
        "{log}"
    );
    assert!(
        log.contains("GET nap failed") && log.contains("timed out"),
        "{log}"
    );
    assert!(
        log.contains("sub-route") && log.contains("refused"),
        "{log}"
    );
}
