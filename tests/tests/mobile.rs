//! The built-in `mobile` external-auth plugin (`plugins/mobile`, `libwazo_auth_mobile.so`),
//! black-box as the original's `integration_tests/suite/test_mobile.py` drives it: device tokens
//! with the original's schema, answers and errors, the `sender_id` sub-route reading the scoping
//! tenant's configuration, ACLs, tenant scoping, the safe view of the listing and bus events.

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

fn server() -> Server {
    ServerBuilder::new()
        .with_wazo_user()
        .with_mobile()
        .config(json!({
            "default_user_policy": "wazo_default_user_policy",
            "default_policies": {"wazo_default_user_policy": {"acl": ["auth.users.me.external.#"]}},
        }))
        .start()
}

fn one(db: &str, q: &str) -> String {
    sql(db, q)[0][0].clone().unwrap_or_default()
}

fn mobile(s: &Server, method: &str, user: &str, token: &str, body: Option<&Value>) -> Resp {
    s.call(
        method,
        &format!("/0.1/users/{user}/external/mobile"),
        token,
        None,
        body,
    )
}

fn sender_id(s: &Server, user: &str, token: &str, tenant: Option<&str>) -> Resp {
    s.call(
        "GET",
        &format!("/0.1/users/{user}/external/mobile/sender_id"),
        token,
        tenant,
        None,
    )
}

fn new_tenant(s: &Server, admin: &str, name: &str) -> String {
    let r = s.call(
        "POST",
        "/0.1/tenants",
        admin,
        None,
        Some(&json!({ "name": name })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["uuid"].as_str().unwrap().to_string()
}

/// Gives `user` (of `tenant`) a new policy with `acl`.
fn grant(s: &Server, admin: &str, tenant: Option<&str>, user: &str, name: &str, acl: &[&str]) {
    let r = s.call(
        "POST",
        "/0.1/policies",
        admin,
        tenant,
        Some(&json!({"name": name, "acl": acl})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let policy = r.json()["uuid"].as_str().unwrap().to_string();
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{user}/policies/{policy}"),
        admin,
        tenant,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

fn device_tokens() -> Value {
    json!({
        "token": "TOKEN",
        "apns_token": "APNS_VOIP_TOKEN",
        "apns_voip_token": "APNS_VOIP_TOKEN",
        "apns_notification_token": "APNS_NOTIFICATION_TOKEN",
        "apns_call_topic": "com.example.app.voip",
        "apns_default_topic": "com.example.app",
    })
}

/// The original's 404 for a user without mobile data.
fn assert_no_data(r: &Resp) {
    assert_eq!(r.status, 404, "{}", r.body);
    let b = r.json();
    assert_eq!(b["message"], "No such external auth: \"mobile\"", "{b}");
    assert_eq!(b["error_id"], "unknown-external-auth", "{b}");
    assert_eq!(b["details"], json!({"type": "mobile"}), "{b}");
    assert_eq!(b["resource"], "mobile", "{b}");
    assert!(b["timestamp"].is_number(), "{b}");
}

/// The original's 400 for a refused field.
fn assert_invalid(r: &Resp, field: &str, message: &str, constraint_id: &str, constraint: Value) {
    assert_eq!(r.status, 400, "{}", r.body);
    let b = r.json();
    assert_eq!(b["message"], message, "{b}");
    assert_eq!(b["error_id"], "invalid-data", "{b}");
    assert_eq!(b["resource"], "users", "{b}");
    assert!(b["timestamp"].is_number(), "{b}");
    assert_eq!(
        b["details"],
        json!({ field: {"constraint_id": constraint_id, "constraint": constraint, "message": message} }),
        "{b}"
    );
}

/// The original's `test_mobile_workflow`, `test_update`, `test_update_when_missing_should_create`
/// and `test_backward_compatibility_without_topics`, by the user itself (its default policy
/// grants `auth.users.me.external.#`).
#[test]
fn device_tokens_lifecycle_as_the_original() {
    let s = server();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "one", "pass", None);
    let token = s.user_token("one", "pass");

    assert_no_data(&mobile(&s, "GET", &u, &token, None));
    let r = mobile(&s, "POST", &u, &token, Some(&device_tokens()));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json(), device_tokens());
    let r = mobile(&s, "GET", &u, &token, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), device_tokens());
    // Stored encrypted.
    assert_eq!(
        one(
            &s.db,
            "SELECT count(*) FROM auth_user_external_auth WHERE data LIKE '%TOKEN%'"
        ),
        "0"
    );

    // A second POST: 409, as the original's service answers.
    let r = mobile(&s, "POST", &u, &token, Some(&device_tokens()));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["error_id"], "conflict");
    assert_eq!(r.json()["resource"], "mobile");

    // PUT replaces.
    let new_tokens = json!({
        "token": "NEW_TOKEN",
        "apns_token": "NEW_APNS_VOIP_TOKEN",
        "apns_voip_token": "NEW_APNS_VOIP_TOKEN",
        "apns_notification_token": "NEW_APNS_NOTIFICATION_TOKEN",
        "apns_call_topic": "com.newexample.app.voip",
        "apns_default_topic": "com.newexample.app",
    });
    let r = mobile(&s, "PUT", &u, &token, Some(&new_tokens));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), new_tokens);
    assert_eq!(mobile(&s, "GET", &u, &token, None).json(), new_tokens);

    // DELETE: 204 without a body, then 404.
    let r = mobile(&s, "DELETE", &u, &token, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, "");
    assert_no_data(&mobile(&s, "GET", &u, &token, None));
    assert_no_data(&mobile(&s, "DELETE", &u, &token, None));

    // PUT without data creates it; absent fields are null, unknown ones dropped.
    let older = json!({
        "token": "TOKEN",
        "apns_token": "APNS_VOIP_TOKEN",
        "apns_voip_token": "APNS_VOIP_TOKEN",
        "apns_notification_token": "APNS_NOTIFICATION_TOKEN",
    });
    let mut with_unknown = older.clone();
    with_unknown["not_a_field"] = json!("dropped");
    let mut expected = older.clone();
    expected["apns_call_topic"] = Value::Null;
    expected["apns_default_topic"] = Value::Null;
    let r = mobile(&s, "PUT", &u, &token, Some(&with_unknown));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), expected);
    assert_eq!(mobile(&s, "GET", &u, &token, None).json(), expected);

    // Backward compatibility without topics, through POST.
    assert_eq!(mobile(&s, "DELETE", &u, &token, None).status, 204);
    let r = mobile(&s, "POST", &u, &token, Some(&older));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json(), expected);
    assert_eq!(mobile(&s, "GET", &u, &token, None).json(), expected);

    // An empty object (or no body) stores every field as null.
    assert_eq!(mobile(&s, "DELETE", &u, &token, None).status, 204);
    let nulls = json!({"token": null, "apns_token": null, "apns_voip_token": null,
                       "apns_notification_token": null, "apns_call_topic": null,
                       "apns_default_topic": null});
    let r = mobile(&s, "POST", &u, &token, None);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json(), nulls);
    assert_eq!(mobile(&s, "GET", &u, &token, None).json(), nulls);
}

#[test]
fn lengths_types_and_nulls_are_checked_as_the_original() {
    let s = server();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "lena", "pw", None);

    // A 600-character token: 400, nothing stored.
    let long = "x".repeat(600);
    let r = mobile(&s, "POST", &u, &admin, Some(&json!({ "token": long })));
    assert_invalid(
        &r,
        "token",
        "Length must be between 1 and 512.",
        "length",
        json!({"min": 1, "max": 512}),
    );
    assert_no_data(&mobile(&s, "GET", &u, &admin, None));
    let r = mobile(&s, "PUT", &u, &admin, Some(&json!({ "token": long })));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_no_data(&mobile(&s, "GET", &u, &admin, None));
    let r = mobile(&s, "POST", &u, &admin, Some(&json!({"token": ""})));
    assert_invalid(
        &r,
        "token",
        "Length must be between 1 and 512.",
        "length",
        json!({"min": 1, "max": 512}),
    );
    // The apns fields have no minimum.
    for field in [
        "apns_token",
        "apns_voip_token",
        "apns_notification_token",
        "apns_call_topic",
        "apns_default_topic",
    ] {
        let r = mobile(
            &s,
            "POST",
            &u,
            &admin,
            Some(&json!({ field: "y".repeat(513) })),
        );
        assert_invalid(
            &r,
            field,
            "Longer than maximum length 512.",
            "length",
            json!({"min": null, "max": 512}),
        );
    }
    // Not a string.
    let r = mobile(
        &s,
        "POST",
        &u,
        &admin,
        Some(&json!({"token": "t", "apns_voip_token": 42})),
    );
    assert_invalid(
        &r,
        "apns_voip_token",
        "Not a valid string.",
        "type",
        json!("string"),
    );
    // The first refused field in the schema's order is reported.
    let r = mobile(
        &s,
        "POST",
        &u,
        &admin,
        Some(&json!({"apns_default_topic": 1, "token": ""})),
    );
    assert_eq!(r.json()["details"].as_object().unwrap().len(), 1);
    assert!(r.json()["details"].get("token").is_some(), "{}", r.body);
    assert_no_data(&mobile(&s, "GET", &u, &admin, None));

    // At the limits (in characters, not bytes), and nulls everywhere.
    let body = json!({
        "token": "é".repeat(512),
        "apns_token": null,
        "apns_voip_token": "v".repeat(512),
        "apns_notification_token": null,
        "apns_call_topic": "",
        "apns_default_topic": null,
    });
    let r = mobile(&s, "POST", &u, &admin, Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json(), body);
    assert_eq!(mobile(&s, "GET", &u, &admin, None).json(), body);
    let r = mobile(&s, "PUT", &u, &admin, Some(&json!({"token": null})));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["token"], Value::Null);
    // A refused PUT leaves the data as it was.
    let before = mobile(&s, "GET", &u, &admin, None).json();
    let r = mobile(&s, "PUT", &u, &admin, Some(&json!({ "token": long })));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(mobile(&s, "GET", &u, &admin, None).json(), before);

    // A body that is not a JSON object is refused by the host, before the plugin.
    let r = s.request(
        "POST",
        &format!("/0.1/users/{u}/external/mobile"),
        &[
            ("X-Auth-Token", admin.as_str()),
            ("Content-Type", "application/json"),
        ],
        Some(b"[1]"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

/// `GET /users/{u}/external/mobile/sender_id`: the scoping tenant's `fcm_sender_id`.
#[test]
fn sender_id_reads_the_scoping_tenant_configuration() {
    let s = server();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "one", "pass", None);
    let token = s.user_token("one", "pass");

    // No configuration: the original's 404.
    let r = sender_id(&s, &u, &token, None);
    assert_eq!(r.status, 404, "{}", r.body);
    let b = r.json();
    assert_eq!(
        b["message"],
        "No config found for this external auth type: \"mobile\""
    );
    assert_eq!(b["error_id"], "unknown-external-auth");
    assert_eq!(b["details"], json!({"type": "mobile"}));
    assert_eq!(b["resource"], "mobile");

    // The configuration of the original's test, through /external/mobile/config.
    let secret = json!({
        "fcm_api_key": "fcm_api_key",
        "fcm_sender_id": "fcm_sender_id",
        "ios_apn_certificate": "ios_apn_private",
        "use_sandbox": true,
    });
    let path = "/0.1/external/mobile/config";
    let r = s.call("POST", path, &admin, None, Some(&secret));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(s.call("GET", path, &admin, None, None).json(), secret);
    assert_eq!(
        one(
            &s.db,
            "SELECT count(*) FROM auth_external_auth_config WHERE data LIKE '%fcm%'"
        ),
        "0"
    );
    let r = sender_id(&s, &u, &token, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"sender_id": "fcm_sender_id"}));
    assert_eq!(
        sender_id(&s, &u, &admin, None).json(),
        json!({"sender_id": "fcm_sender_id"})
    );

    // A configuration without fcm_sender_id: null.
    let r = s.call(
        "PUT",
        path,
        &admin,
        None,
        Some(&json!({"fcm_api_key": "k"})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        sender_id(&s, &u, &token, None).json(),
        json!({"sender_id": null})
    );

    // A sub-tenant has its own configuration (none inherited); its users read it, and so does
    // an administrator above it through Wazo-Tenant.
    let sub = new_tenant(&s, &admin, "sub");
    let v = s.create_user(&admin, "two", "pass", Some(&sub));
    let v_token = s.user_token("two", "pass");
    assert_eq!(sender_id(&s, &v, &v_token, None).status, 404);
    assert_eq!(sender_id(&s, &v, &admin, Some(&sub)).status, 404);
    let r = s.call(
        "POST",
        path,
        &admin,
        Some(&sub),
        Some(&json!({"fcm_sender_id": "sub-sender"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        sender_id(&s, &v, &v_token, None).json(),
        json!({"sender_id": "sub-sender"})
    );
    assert_eq!(
        sender_id(&s, &v, &admin, Some(&sub)).json(),
        json!({"sender_id": "sub-sender"})
    );
    // Without Wazo-Tenant the administrator's scoping tenant is the top one (as the original's
    // Tenant.autodetect), whose configuration has no sender id.
    assert_eq!(
        sender_id(&s, &v, &admin, None).json(),
        json!({"sender_id": null})
    );
    // Deleting the configuration: 404 again.
    assert_eq!(s.call("DELETE", path, &admin, Some(&sub), None).status, 204);
    assert_eq!(sender_id(&s, &v, &v_token, None).status, 404);
}

#[test]
fn acls_are_the_original_ones() {
    let s = server();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "one", "pass", None);
    let other = s.create_user(&admin, "other", "pass", None);
    let token = s.user_token("one", "pass");
    let routes = [
        ("POST", "create", Some(device_tokens())),
        ("GET", "read", None),
        ("PUT", "update", Some(device_tokens())),
        ("DELETE", "delete", None),
    ];

    // No token, or a token without the route's ACL (another user's data): 401 naming it.
    for (method, action, body) in &routes {
        let path = format!("/0.1/users/{other}/external/mobile");
        let r = s.request(method, &path, &[("Content-Type", "application/json")], None);
        assert_eq!(r.status, 401, "{method}: {}", r.body);
        let r = mobile(&s, method, &other, &token, body.as_ref());
        assert_eq!(r.status, 401, "{method}: {}", r.body);
        assert_eq!(
            r.json()["details"]["required_access"],
            json!(format!("auth.users.{other}.external.mobile.{action}")),
            "{method}: {}",
            r.body
        );
    }
    let r = sender_id(&s, &other, &token, None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json()["details"]["required_access"],
        json!(format!("auth.users.{other}.external.mobile.sender_id.read"))
    );
    assert_eq!(
        s.request(
            "GET",
            &format!("/0.1/users/{other}/external/mobile/sender_id"),
            &[],
            None
        )
        .status,
        401
    );

    // Each action needs its own ACL: a user granted only read on another user's data.
    let reader = s.create_user(&admin, "reader", "pass", None);
    grant(
        &s,
        &admin,
        None,
        &reader,
        "mobile-reader",
        &[&format!("auth.users.{u}.external.mobile.read")],
    );
    let reader_token = s.user_token("reader", "pass");
    assert_eq!(
        mobile(&s, "POST", &u, &token, Some(&device_tokens())).status,
        201
    );
    let r = mobile(&s, "GET", &u, &reader_token, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), device_tokens());
    for (method, _, body) in &routes {
        if *method != "GET" {
            let r = mobile(&s, method, &u, &reader_token, body.as_ref());
            assert_eq!(r.status, 401, "{method}: {}", r.body);
        }
    }
    assert_eq!(sender_id(&s, &u, &reader_token, None).status, 401);
    // Its own data (auth.users.me.external.#) stays reachable.
    assert_eq!(
        mobile(&s, "POST", &reader, &reader_token, Some(&device_tokens())).status,
        201
    );
    assert_eq!(sender_id(&s, &reader, &reader_token, None).status, 404);
}

#[test]
fn a_sub_tenant_administrator_reaches_its_tenant_users_only() {
    let s = server();
    let admin = s.admin_token();
    let top_user = s.create_user(&admin, "top", "pass", None);
    let sub = new_tenant(&s, &admin, "sub");
    let sub_user = s.create_user(&admin, "subuser", "pass", Some(&sub));
    let other_tenant = new_tenant(&s, &admin, "other");
    let other_user = s.create_user(&admin, "otheruser", "pass", Some(&other_tenant));
    let sub_admin = s.create_user(&admin, "subadmin", "pass", Some(&sub));
    grant(
        &s,
        &admin,
        Some(&sub),
        &sub_admin,
        "sub-admin",
        &["auth.users.#"],
    );
    let sub_token = s.user_token("subadmin", "pass");
    assert_eq!(
        mobile(&s, "POST", &top_user, &admin, Some(&device_tokens())).status,
        201
    );
    assert_eq!(
        mobile(&s, "POST", &other_user, &admin, Some(&device_tokens())).status,
        201
    );

    // Users of other tenants: 404 unknown-user, whatever the method; their data is untouched.
    for user in [&top_user, &other_user] {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            let body = (method == "POST" || method == "PUT").then(|| json!({"token": "stolen"}));
            let r = mobile(&s, method, user, &sub_token, body.as_ref());
            assert_eq!(r.status, 404, "{method} {user}: {}", r.body);
            assert_eq!(r.json()["error_id"], "unknown-user", "{}", r.body);
        }
        let r = sender_id(&s, user, &sub_token, None);
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.json()["error_id"], "unknown-user", "{}", r.body);
        assert_eq!(
            mobile(&s, "GET", user, &admin, None).json(),
            device_tokens()
        );
    }
    // Naming another tenant through Wazo-Tenant: 401.
    let r = s.call(
        "GET",
        &format!("/0.1/users/{other_user}/external/mobile"),
        &sub_token,
        Some(&other_tenant),
        None,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unauthorized-tenant");

    // Its own tenant's users: served.
    let r = mobile(&s, "PUT", &sub_user, &sub_token, Some(&device_tokens()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        mobile(&s, "GET", &sub_user, &sub_token, None).json(),
        device_tokens()
    );
    assert_eq!(sender_id(&s, &sub_user, &sub_token, None).status, 404);
    assert_eq!(
        mobile(&s, "DELETE", &sub_user, &sub_token, None).status,
        204
    );
}

/// The original registers no safe model for mobile: the listing shows `data: {}`.
#[test]
fn the_listing_shows_no_mobile_field() {
    let s = server();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "one", "pass", None);
    let list = |s: &Server| {
        let r = s.call(
            "GET",
            &format!("/0.1/users/{u}/external"),
            &admin,
            None,
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "mobile")
            .cloned()
            .unwrap_or_else(|| panic!("no mobile item: {}", r.body))
    };
    assert_eq!(
        list(&s),
        json!({"type": "mobile", "data": {}, "enabled": false, "plugin_info": {}})
    );
    assert_eq!(
        mobile(&s, "POST", &u, &admin, Some(&device_tokens())).status,
        201
    );
    let item = list(&s);
    assert_eq!(
        item,
        json!({"type": "mobile", "data": {}, "enabled": true, "plugin_info": {}})
    );
    assert!(!item.to_string().contains("TOKEN"));
}

/// `auth_user_external_auth_added` / `_updated` / `_deleted` through the outbox, as the original's
/// service publishes them (PUT without data creates it: `added`).
#[test]
fn bus_events_of_the_device_tokens() {
    let s = server();
    let admin = s.admin_token();
    let top = one(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    );
    let u = s.create_user(&admin, "one", "pass", None);
    let mark = || one(&s.db, "SELECT COALESCE(max(id), 0) FROM auth_event_outbox");
    let rows_after = |m: &str| -> Vec<(String, String, String, Value)> {
        sql(
            &s.db,
            &format!(
                "SELECT name, routing_key, headers->>'tenant_uuid', data::text \
                 FROM auth_event_outbox WHERE id > {m} ORDER BY id"
            ),
        )
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].clone().unwrap(),
                r[2].clone().unwrap_or_default(),
                serde_json::from_str(r[3].as_deref().unwrap()).unwrap(),
            )
        })
        .collect()
    };
    let event = |name: &str, action: &str| {
        (
            name.to_string(),
            format!("auth.users.{u}.external.mobile.{action}"),
            top.clone(),
            json!({"user_uuid": u, "external_auth_name": "mobile"}),
        )
    };

    let m = mark();
    assert_eq!(
        mobile(&s, "POST", &u, &admin, Some(&device_tokens())).status,
        201
    );
    assert_eq!(
        rows_after(&m),
        vec![event("auth_user_external_auth_added", "created")]
    );
    // Refused (400) or conflicting (409) requests publish nothing.
    let m = mark();
    let long = json!({"token": "x".repeat(600)});
    assert_eq!(mobile(&s, "POST", &u, &admin, Some(&long)).status, 400);
    assert_eq!(mobile(&s, "PUT", &u, &admin, Some(&long)).status, 400);
    assert_eq!(
        mobile(&s, "POST", &u, &admin, Some(&device_tokens())).status,
        409
    );
    assert_eq!(rows_after(&m), vec![]);

    let m = mark();
    assert_eq!(
        mobile(&s, "PUT", &u, &admin, Some(&device_tokens())).status,
        200
    );
    assert_eq!(
        rows_after(&m),
        vec![event("auth_user_external_auth_updated", "updated")]
    );
    let m = mark();
    assert_eq!(mobile(&s, "DELETE", &u, &admin, None).status, 204);
    assert_eq!(
        rows_after(&m),
        vec![event("auth_user_external_auth_deleted", "deleted")]
    );
    let m = mark();
    assert_eq!(mobile(&s, "DELETE", &u, &admin, None).status, 404);
    assert_eq!(rows_after(&m), vec![]);
    // PUT without data: created, `added`.
    let m = mark();
    assert_eq!(
        mobile(&s, "PUT", &u, &admin, Some(&device_tokens())).status,
        200
    );
    assert_eq!(
        rows_after(&m),
        vec![event("auth_user_external_auth_added", "created")]
    );
}

/// Enabled by default: a configuration that does not mention `mobile` loads it (the harness's
/// builder disables it, so this server's configuration is written without that key).
#[test]
fn mobile_is_enabled_by_default() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(MOBILE))
        .unset(&["enabled_external_auth_plugins", "mobile"])
        .start();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "one", "pass", None);
    assert_no_data(&mobile(&s, "GET", &u, &admin, None));
    let log = s.log();
    assert!(
        log.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.first() == Some(&"mobile")
                && cols.get(1) == Some(&"wazo_auth.external_auth")
                && cols
                    .get(2)
                    .is_some_and(|f| f.ends_with("/libwazo_auth_mobile.so"))
                && cols.last() == Some(&"loaded")
        }),
        "{log}"
    );
}
