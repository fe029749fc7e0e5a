//! `GET /0.1/config` and `PATCH /0.1/config` (spec management §15): the effective configuration
//! with its secrets redacted, to a token of the top tenant only; the run-time `debug` switch,
//! which changes what the server logs; and 400 answers to bad patch documents.

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

/// A token of a user of a new sub-tenant holding a policy `["auth.#"]` there.
fn sub_tenant_admin(s: &Server, admin: &str) -> String {
    let r = s.call(
        "POST",
        "/0.1/tenants",
        admin,
        None,
        Some(&json!({"name": "sub"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let tenant = r.json()["uuid"].as_str().unwrap().to_string();
    let user = s.create_user(admin, "subadmin", "pw", Some(&tenant));
    let r = s.call(
        "POST",
        "/0.1/policies",
        admin,
        Some(&tenant),
        Some(&json!({"name": "sub-admin", "acl": ["auth.#"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let policy = r.json()["uuid"].as_str().unwrap().to_string();
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{user}/policies/{policy}"),
        admin,
        Some(&tenant),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    s.user_token("subadmin", "pw")
}

fn patch(s: &Server, token: &str, body: &[u8]) -> Resp {
    s.request(
        "PATCH",
        "/0.1/config",
        &[
            ("X-Auth-Token", token),
            ("Content-Type", "application/json"),
        ],
        Some(body),
    )
}

#[test]
fn the_configuration_is_shown_to_the_top_tenant_with_its_secrets_redacted() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({
            "amqp": {"uri": "amqp://bus-user:bus-secret@127.0.0.1:1/"},
            "smtp": {"hostname": "mail.example", "port": 587,
                     "username": "mailer", "password": "smtp-secret"},
            "plugin_config": {"example_static": {"client_secret": "plugin-secret"}},
        }))
        .start();
    let admin = s.admin_token();

    let r = s.call("GET", "/0.1/config", &admin, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let config = r.json();
    assert!(config["rest_api"].is_object(), "{config}");
    assert_eq!(config["debug"], false);
    assert_eq!(config["profiling_enabled"], false);
    assert_eq!(config["smtp"]["hostname"], "mail.example");
    assert_eq!(config["smtp"]["username"], "mailer");
    assert_eq!(config["smtp"]["password"], "********");
    assert_eq!(
        config["amqp"]["uri"],
        "amqp://bus-user:********@127.0.0.1:1/"
    );
    assert_eq!(config["bootstrap_user_password"], "********");
    assert_eq!(
        config["plugin_config"]["example_static"]["users"][0]["password"],
        "********"
    );
    assert_eq!(
        config["plugin_config"]["example_static"]["users"][0]["login"],
        "alice"
    );
    for secret in [
        "bus-secret",
        "smtp-secret",
        "plugin-secret",
        "alice-secret",
        ADMIN.1,
    ] {
        assert!(!r.body.contains(secret), "{secret} shown: {}", r.body);
    }
    let head = s.request("HEAD", "/0.1/config", &[("X-Auth-Token", &admin)], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // No token, or a token without the ACL: 401 naming the required access.
    let r = s.get("/0.1/config");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["details"]["required_access"], "auth.config.read");
    let alice = s.alice_token(json!({}));
    let r = patch(
        &s,
        &alice,
        br#"[{"op": "replace", "path": "/debug", "value": true}]"#,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["details"]["required_access"], "auth.config.update");

    // A token of a sub-tenant, even one granting everything: 401, the original's body. Checked
    // before the body.
    let sub = sub_tenant_admin(&s, &admin);
    for r in [
        s.call("GET", "/0.1/config", &sub, None, None),
        patch(
            &s,
            &sub,
            br#"[{"op": "replace", "path": "/debug", "value": true}]"#,
        ),
        patch(&s, &sub, b"{}"),
    ] {
        assert_eq!(r.status, 401, "{}", r.body);
        let body = r.json();
        assert_eq!(body["error_id"], "unauthorized");
        assert_eq!(body["details"], json!({"invalid_token": sub}));
    }
    // Nor does `Wazo-Tenant` make the administrator's token a sub-tenant's, or the reverse.
    let tenant = s
        .call("GET", "/0.1/tenants?name=sub", &admin, None, None)
        .json()["items"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call("GET", "/0.1/config", &admin, Some(&tenant), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.call("GET", "/0.1/config", &sub, Some(&tenant), None)
            .status,
        401
    );
    // The sub-tenant could not change anything.
    assert_eq!(
        s.call("GET", "/0.1/config", &admin, None, None).json()["debug"],
        false
    );
}

#[test]
fn debug_is_switched_at_run_time_and_changes_what_is_logged() {
    // The access log at debug level: a line per request only while `debug` is on. RUST_LOG
    // without a level of its own, so that the configured level decides.
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"access_log_level": "debug", "log_level": "info"}))
        .env("RUST_LOG", "actix_server=warn")
        .start();
    let admin = s.admin_token();
    let marked = |marker: &str| {
        let r = s.request("GET", "/0.1/backends", &[("X-Request-ID", marker)], None);
        assert_eq!(r.status, 200);
    };
    let logged = |marker: &str| s.log().contains(&format!("request_id={marker}"));

    marked("marker-before-debug");
    assert!(!logged("marker-before-debug"), "{}", s.log());

    let on = br#"[{"op": "replace", "path": "/debug", "value": true}]"#;
    let r = patch(&s, &admin, on);
    assert_eq!(r.status, 200, "{}", r.body);
    let patched = r.json();
    assert_eq!(patched["debug"], true);
    assert_eq!(patched["profiling_enabled"], false);
    assert_eq!(
        patched,
        s.call("GET", "/0.1/config", &admin, None, None).json()
    );
    marked("marker-while-debug");
    s.wait_log(std::time::Duration::from_secs(5), |log| {
        log.contains("request_id=marker-while-debug")
    });

    // Several operations, applied in order; marshmallow's booleans.
    let r = patch(
        &s,
        &admin,
        br#"[{"op": "replace", "path": "/debug", "value": true},
             {"op": "replace", "path": "/profiling_enabled", "value": "true"},
             {"op": "replace", "path": "/debug", "value": 0}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["debug"], false);
    assert_eq!(r.json()["profiling_enabled"], true);
    marked("marker-after-debug");
    assert!(!logged("marker-after-debug"), "{}", s.log());

    // An empty patch changes nothing.
    let r = patch(&s, &admin, b"[]");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["debug"], false);
    assert_eq!(r.json()["profiling_enabled"], true);
}

#[test]
fn bad_patch_documents_are_400_and_change_nothing() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let invalid_data = |body: &str| -> Value {
        let r = patch(&s, &admin, body.as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let b = r.json();
        assert_eq!(b["error_id"], "invalid-data", "{body}: {b}");
        assert_eq!(b["resource"], "config", "{body}: {b}");
        assert!(b["message"].is_string(), "{body}: {b}");
        assert!(b["timestamp"].is_number(), "{body}: {b}");
        b["details"].clone()
    };
    let input_type = json!({"_schema": {"message": "Invalid input type."}});
    for not_a_list in [
        "{}",
        "null",
        r#"{"op": "replace", "path": "/debug", "value": true}"#,
        "true",
    ] {
        assert_eq!(invalid_data(not_a_list), input_type, "{not_a_list}");
    }
    let replace_debug = r#"{"op": "replace", "path": "/debug", "value": true}"#;
    let d = invalid_data(&format!(r#"[{replace_debug}, "x"]"#));
    assert_eq!(d, json!({"1": input_type}));
    let cases = [
        (
            r#"[{"op": "add", "path": "/debug", "value": true}]"#,
            "op",
            "equal",
        ),
        (r#"[{"op": "remove", "path": "/debug"}]"#, "op", "equal"),
        (r#"[{"path": "/debug", "value": true}]"#, "op", "required"),
        (
            r#"[{"op": "replace", "path": "/log_level", "value": true}]"#,
            "path",
            "enum",
        ),
        (
            r#"[{"op": "replace", "path": "/rest_api/port", "value": true}]"#,
            "path",
            "enum",
        ),
        (r#"[{"op": "replace", "value": true}]"#, "path", "required"),
        (
            r#"[{"op": "replace", "path": "/debug", "value": "sometimes"}]"#,
            "value",
            "type",
        ),
        (
            r#"[{"op": "replace", "path": "/debug", "value": {"on": true}}]"#,
            "value",
            "type",
        ),
        (
            r#"[{"op": "replace", "path": "/debug", "value": null}]"#,
            "value",
            "not_null",
        ),
        (
            r#"[{"op": "replace", "path": "/debug"}]"#,
            "value",
            "required",
        ),
    ];
    for (body, field, constraint_id) in cases {
        let d = invalid_data(body);
        assert_eq!(d["0"][field]["constraint_id"], constraint_id, "{body}: {d}");
    }
    // The first bad operation answers; the good ones before it are not applied.
    let d = invalid_data(&format!(
        r#"[{replace_debug}, {{"op": "replace", "path": "/debug", "value": "x"}}]"#
    ));
    assert_eq!(d["1"]["value"]["constraint_id"], "type", "{d}");
    // An empty or undecodable body: the decode error every body gets.
    for undecodable in [&b""[..], b"[{", b"\xff"] {
        let r = patch(&s, &admin, undecodable);
        assert_eq!(r.status, 400, "{}", r.body);
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.starts_with("Failed to decode JSON object"),
            "{message}"
        );
    }
    let config = s.call("GET", "/0.1/config", &admin, None, None).json();
    assert_eq!(config["debug"], false);
    assert_eq!(config["profiling_enabled"], false);
}
