//! External authentication: the `bar` example plugin through the host, ACLs, safe views, tenant
//! configuration, the encrypted store (tampering, key rotation), and misbehaving plugins.

use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

fn one(db: &str, q: &str) -> String {
    sql(db, q)[0][0].clone().unwrap_or_default()
}

fn server(extra: Value) -> Server {
    ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(BAR))
        .plugin(workspace_plugin(EXTERNAL_FAULTS))
        .config(json!({
            "enabled_external_auth_plugins": {"bar": true, "panicky": true, "sleepy": true, "nosy": true},
            // Above a password login (`admin_token`, `user_token`: a hash of about 0.3 s here,
            // several times that on a slow, loaded machine: 1 s failed them), below the 10 s
            // within which the hung `sleepy` handler must be cut off.
            "plugin_call_timeout": 5.0,
            "default_user_policy": "wazo_default_user_policy",
            "default_policies": {"wazo_default_user_policy": {"acl": ["auth.users.me.external.#"]}},
        }))
        .config(extra)
        .start()
}

fn ext(
    s: &Server,
    method: &str,
    user: &str,
    auth_type: &str,
    token: &str,
    body: Option<&Value>,
) -> Resp {
    s.call(
        method,
        &format!("/0.1/users/{user}/external/{auth_type}"),
        token,
        None,
        body,
    )
}

#[test]
fn bar_lifecycle_safe_view_and_connected_users() {
    let s = server(json!({}));
    let admin = s.admin_token();
    let u = s.create_user(&admin, "ursula", "pw", None);
    let stored =
        json!({"scope": ["contacts"], "access_token": "very-secret", "refresh": "also-secret"});

    let r = ext(&s, "GET", &u, "bar", &admin, None);
    assert_eq!(r.status, 404);
    // The original's body: the auth type is the resource.
    assert_eq!(r.json()["error_id"], "unknown-external-auth", "{}", r.body);
    assert_eq!(r.json()["resource"], "bar", "{}", r.body);
    assert_eq!(r.json()["details"], json!({"type": "bar"}), "{}", r.body);
    let r = ext(&s, "POST", &u, "bar", &admin, Some(&stored));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), stored);
    let again = ext(&s, "POST", &u, "bar", &admin, Some(&stored));
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["error_id"], "conflict");
    assert_eq!(ext(&s, "GET", &u, "bar", &admin, None).json(), stored);

    // Encrypted at rest: no secret in the database.
    assert_eq!(
        one(&s.db, "SELECT count(*) FROM auth_user_external_auth WHERE data LIKE '%secret%' OR data LIKE '%contacts%'"),
        "0"
    );
    assert!(one(&s.db, "SELECT data FROM auth_user_external_auth").starts_with("v1:"));

    // The listing shows every enabled type, the safe view only, and plugin_info.
    let list = s.call(
        "GET",
        &format!("/0.1/users/{u}/external"),
        &admin,
        None,
        None,
    );
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    assert_eq!(list["total"], 4);
    let bar = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "bar")
        .unwrap()
        .clone();
    assert_eq!(
        bar,
        json!({"type": "bar", "data": {"scope": ["contacts"]}, "enabled": true,
               "plugin_info": {"required_acl": ["view-all-contacts", "list-email-addresses"]}})
    );
    assert!(!list.to_string().contains("secret"));
    let nosy = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "nosy")
        .unwrap()
        .clone();
    assert_eq!(
        nosy,
        json!({"type": "nosy", "data": {}, "enabled": false, "plugin_info": {"nosy": true}})
    );
    let only_bar = s
        .call(
            "GET",
            &format!("/0.1/users/{u}/external?type=bar"),
            &admin,
            None,
            None,
        )
        .json();
    assert_eq!(
        (only_bar["total"].clone(), only_bar["filtered"].clone()),
        (json!(4), json!(1))
    );
    let paged = s
        .call(
            "GET",
            &format!("/0.1/users/{u}/external?limit=1&offset=1&order=type"),
            &admin,
            None,
            None,
        )
        .json();
    assert_eq!(paged["items"].as_array().unwrap().len(), 1);
    assert_eq!(paged["items"][0]["type"], "nosy");

    // PUT replaces the scope.
    let r = ext(
        &s,
        "PUT",
        &u,
        "bar",
        &admin,
        Some(&json!({"scope": ["calendar"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scope"], json!(["calendar"]));
    assert_eq!(
        ext(&s, "GET", &u, "bar", &admin, None).json()["access_token"],
        "very-secret"
    );
    assert_eq!(
        ext(&s, "PUT", &u, "bar", &admin, Some(&json!({}))).status,
        400
    );

    // Connected users.
    let users = s.call("GET", "/0.1/external/bar/users", &admin, None, None);
    assert_eq!(users.status, 200, "{}", users.body);
    assert_eq!(
        users.json(),
        json!({"total": 1, "filtered": 1, "items": [{"uuid": u}]})
    );
    assert_eq!(
        s.call("GET", "/0.1/external/unknown/users", &admin, None, None)
            .status,
        404
    );

    // DELETE, then nothing is left.
    assert_eq!(ext(&s, "DELETE", &u, "bar", &admin, None).status, 204);
    assert_eq!(ext(&s, "DELETE", &u, "bar", &admin, None).status, 404);
    assert_eq!(ext(&s, "GET", &u, "bar", &admin, None).status, 404);
    assert_eq!(
        ext(&s, "PUT", &u, "bar", &admin, Some(&json!({"scope": []}))).status,
        404
    );
    assert_eq!(
        s.call("GET", "/0.1/external/bar/users", &admin, None, None)
            .json()["total"],
        0
    );

    // Unknown auth type and unknown user.
    let r = ext(&s, "GET", &u, "foo", &admin, None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error_id"], "unknown-external-auth-type");
    let nobody = uuid::Uuid::new_v4().to_string();
    let r = ext(&s, "POST", &nobody, "bar", &admin, Some(&stored));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error_id"], "unknown-user");
    assert_eq!(
        ext(&s, "GET", "not-a-uuid", "bar", &admin, None).status,
        404
    );
    // The list too: a user segment that is not a UUID matches no route (the original's `uuid`
    // converter), whatever it holds (a NUL byte never reaches the database).
    for user in ["not-a-uuid", "a%00b"] {
        let r = s.call(
            "GET",
            &format!("/0.1/users/{user}/external"),
            &admin,
            None,
            None,
        );
        assert_eq!(r.status, 404, "{user}: {}", r.body);
        assert!(r.json()["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("The requested URL was not found")));
    }
    // Bad bodies.
    assert_eq!(
        s.request(
            "POST",
            &format!("/0.1/users/{u}/external/bar"),
            &[("X-Auth-Token", &admin)],
            Some(b"{not json")
        )
        .status,
        400
    );
}

/// The check order: the plugin route exists (404 before the token), the token (401), the user
/// (404 unknown-user, also for a segment that is not a UUID), then the body (413, 400); on the
/// configuration routes the token comes before the type name (404), then the body.
#[test]
fn check_order() {
    let s = server(json!({"rest_api": {"max_body_bytes": 1024}}));
    let admin = s.admin_token();
    let u = s.create_user(&admin, "cleo", "pw", None);
    let r = s.request("GET", &format!("/0.1/users/{u}/external/foo"), &[], None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unknown-external-auth-type");
    let r = s.request("GET", "/0.1/users/not-a-uuid/external/bar", &[], None);
    assert_eq!(r.status, 401, "{}", r.body);
    // A well-formed unknown token is looked up before the user segment is read.
    for path in [
        "/0.1/users/not-a-uuid/external/bar",
        "/0.1/users/not-a-uuid/external",
    ] {
        let unknown = uuid::Uuid::new_v4().to_string();
        let r = s.call("GET", path, &unknown, None, None);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
    let r = ext(&s, "GET", "not-a-uuid", "bar", &admin, None);
    assert_eq!(r.json()["error_id"], "unknown-user", "{}", r.body);
    assert_eq!(r.json()["details"], json!({"uuid": "not-a-uuid"}));
    let big = vec![b' '; 2048];
    let nobody = uuid::Uuid::new_v4();
    let r = s.request(
        "POST",
        &format!("/0.1/users/{nobody}/external/bar"),
        &[("X-Auth-Token", &admin)],
        Some(&big),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unknown-user");
    let r = s.request(
        "POST",
        &format!("/0.1/users/{u}/external/bar"),
        &[("X-Auth-Token", &admin)],
        Some(&big),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    let r = s.request(
        "POST",
        &format!("/0.1/users/{u}/external/bar"),
        &[("X-Auth-Token", &admin)],
        Some(b"[1]"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json()["reason"],
        json!(["{'_schema': ['Invalid input type.']}"])
    );
    let r = s.request("GET", "/0.1/external/no.such/config", &[], None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json()["details"]["required_access"],
        "auth.no_such.external.config.read"
    );
    let r = s.call("GET", "/0.1/external/no.such/config", &admin, None, None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unknown-external-auth-type");
    let r = s.call(
        "PUT",
        "/0.1/external/bar/config",
        &admin,
        Some("00000000-0000-4000-8000-000000000000"),
        None,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unauthorized-tenant");
}

#[test]
fn acl_and_user_isolation() {
    let s = server(json!({}));
    let admin = s.admin_token();
    let a = s.create_user(&admin, "alma", "pw", None);
    let b = s.create_user(&admin, "bert", "pw", None);
    let ta = s.user_token("alma", "pw");
    // `auth.users.me.external.#` lets a user manage its own data...
    let r = ext(
        &s,
        "POST",
        &a,
        "bar",
        &ta,
        Some(&json!({"scope": ["x"], "token": "a-secret"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ext(&s, "GET", &a, "bar", &ta, None).status, 200);
    // ...but not another user's.
    let r = ext(&s, "GET", &b, "bar", &ta, None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["details"]["required_access"],
        format!("auth.users.{b}.external.bar.read")
    );
    assert_eq!(
        ext(&s, "POST", &b, "bar", &ta, Some(&json!({}))).status,
        401
    );
    assert_eq!(
        s.call("GET", "/0.1/external/bar/config", &ta, None, None)
            .status,
        401
    );
    // No token at all.
    assert_eq!(
        s.request("GET", &format!("/0.1/users/{a}/external/bar"), &[], None)
            .status,
        401
    );
    // One user's data is not another's.
    assert_eq!(ext(&s, "GET", &b, "bar", &admin, None).status, 404);
    // A plugin only reaches its own auth type: `nosy` sees nothing of bar's data.
    let r = ext(&s, "GET", &a, "nosy", &admin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"data": null, "config": null}));
}

#[test]
fn tenant_configuration_is_scoped() {
    let s = server(json!({}));
    let admin = s.admin_token();
    let sub = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "sub"})),
    );
    assert_eq!(sub.status, 200, "{}", sub.body);
    let sub = sub.json()["uuid"].as_str().unwrap().to_string();

    let cfg = json!({"client_id": "abc", "client_secret": "xyz"});
    let path = "/0.1/external/bar/config";
    let r = s.call("GET", path, &admin, None, None);
    assert_eq!(r.status, 404);
    let r = s.call("POST", path, &admin, None, Some(&cfg));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json(), json!(""));
    assert_eq!(s.call("GET", path, &admin, None, None).json(), cfg);
    assert_eq!(s.call("POST", path, &admin, None, Some(&cfg)).status, 409);
    assert_eq!(
        one(
            &s.db,
            "SELECT count(*) FROM auth_external_auth_config WHERE data LIKE '%xyz%'"
        ),
        "0"
    );
    let updated = json!({"client_id": "abc2"});
    assert_eq!(
        s.call("PUT", path, &admin, None, Some(&updated)).status,
        204
    );
    assert_eq!(s.call("GET", path, &admin, None, None).json(), updated);
    // A sub-tenant does not inherit the top tenant's configuration; the top tenant reaches the
    // sub-tenant's through Wazo-Tenant.
    assert_eq!(s.call("GET", path, &admin, Some(&sub), None).status, 404);
    assert_eq!(
        s.call("PUT", path, &admin, Some(&sub), Some(&cfg)).status,
        404
    );
    assert_eq!(
        s.call("POST", path, &admin, Some(&sub), Some(&json!({"k": "sub"})))
            .status,
        201
    );
    assert_eq!(
        s.call("GET", path, &admin, Some(&sub), None).json(),
        json!({"k": "sub"})
    );
    assert_eq!(s.call("GET", path, &admin, None, None).json(), updated);
    // A plugin reads the configuration of its user's tenant.
    let u = s.create_user(&admin, "subuser", "pw", Some(&sub));
    assert_eq!(
        ext(&s, "GET", &u, "nosy", &admin, None).json()["config"],
        Value::Null,
        "nosy has no configuration"
    );
    assert_eq!(
        s.call(
            "POST",
            "/0.1/external/nosy/config",
            &admin,
            Some(&sub),
            Some(&json!({"n": 1}))
        )
        .status,
        201
    );
    assert_eq!(
        ext(&s, "GET", &u, "nosy", &admin, None).json()["config"],
        json!({"n": 1})
    );
    // Foreign or garbage tenants.
    let r = s.call("GET", path, &admin, Some("not-a-tenant"), None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error_id"], "unauthorized-tenant");
    // Deletion.
    assert_eq!(s.call("DELETE", path, &admin, None, None).status, 204);
    assert_eq!(s.call("DELETE", path, &admin, None, None).status, 404);
    assert_eq!(s.call("GET", path, &admin, None, None).status, 404);
    assert_eq!(
        s.call(
            "DELETE",
            "/0.1/external/never-seen/config",
            &admin,
            None,
            None
        )
        .status,
        404
    );
    // Non-object bodies.
    assert_eq!(
        s.call("POST", path, &admin, None, Some(&json!([1, 2])))
            .status,
        400
    );
}

#[test]
fn tampered_or_moved_ciphertext_is_an_error_never_data() {
    let s = server(json!({}));
    let admin = s.admin_token();
    let a = s.create_user(&admin, "tam", "pw", None);
    let b = s.create_user(&admin, "per", "pw", None);
    assert_eq!(
        ext(
            &s,
            "POST",
            &a,
            "bar",
            &admin,
            Some(&json!({"scope": ["s"], "secret": "A"}))
        )
        .status,
        200
    );
    assert_eq!(
        ext(
            &s,
            "POST",
            &b,
            "bar",
            &admin,
            Some(&json!({"scope": ["s"], "secret": "B"}))
        )
        .status,
        200
    );
    // Copy A's ciphertext onto B's row: it does not open for B.
    sql(&s.db, &format!(
        "UPDATE auth_user_external_auth SET data = (SELECT data FROM auth_user_external_auth WHERE user_uuid = '{a}') WHERE user_uuid = '{b}'"
    ));
    let r = ext(&s, "GET", &b, "bar", &admin, None);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(!r.body.contains("\"A\""), "{}", r.body);
    let list = s.call(
        "GET",
        &format!("/0.1/users/{b}/external"),
        &admin,
        None,
        None,
    );
    assert_eq!(list.status, 500, "{}", list.body);
    assert!(!list.body.contains("secret"));
    // Flip one character of A's ciphertext.
    sql(&s.db, &format!(
        "UPDATE auth_user_external_auth SET data = overlay(data placing (CASE WHEN substr(data, 20, 1) = 'A' THEN 'B' ELSE 'A' END) from 20 for 1) WHERE user_uuid = '{a}'"
    ));
    let r = ext(&s, "GET", &a, "bar", &admin, None);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(
        s.log().contains("cannot be decrypted"),
        "the error is logged"
    );
    // The server still works.
    assert_eq!(s.get(&format!("/0.1/token/{admin}")).status, 200);
}

#[test]
fn key_rotation_keeps_old_data_readable() {
    let keys = scratch_dir("keys").join("secret.keys");
    let mut s = server(json!({"secret_key_file": keys}));
    let admin = s.admin_token();
    let u = s.create_user(&admin, "rot", "pw", None);
    let before = json!({"scope": ["old"], "token": "t1"});
    assert_eq!(
        ext(&s, "POST", &u, "bar", &admin, Some(&before)).status,
        200
    );
    let db = s.db.clone();
    let old_id = one(
        &db,
        "SELECT split_part(data, ':', 2) FROM auth_user_external_auth",
    );
    s.stop();
    // Rotate: a new primary key at the top, the old one kept below.
    let text = std::fs::read_to_string(&keys).unwrap();
    let new_key = base64_32(9);
    std::fs::write(&keys, format!("rotated {new_key}\n{text}")).unwrap();
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(BAR))
        .database(&db)
        .config(json!({"enabled_external_auth_plugins": {"bar": true}, "secret_key_file": keys}))
        .start();
    let admin = s.admin_token();
    assert_eq!(ext(&s, "GET", &u, "bar", &admin, None).json(), before);
    // New writes use the new key; old data stays readable until rewritten.
    assert_eq!(
        ext(
            &s,
            "PUT",
            &u,
            "bar",
            &admin,
            Some(&json!({"scope": ["new"]}))
        )
        .status,
        200
    );
    assert_eq!(
        one(
            &db,
            "SELECT split_part(data, ':', 2) FROM auth_user_external_auth"
        ),
        "rotated"
    );
    assert_ne!(old_id, "rotated");
    assert_eq!(
        ext(&s, "GET", &u, "bar", &admin, None).json()["token"],
        "t1"
    );
}

fn base64_32(b: u8) -> String {
    // 32 bytes of `b`, base64 (no external crate needed in tests).
    let bytes = [b; 32];
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn misbehaving_plugins_never_take_the_server_down() {
    let s = server(json!({}));
    let admin = s.admin_token();
    let u = s.create_user(&admin, "victim", "pw", None);
    // A panic in any handler: 503 without details, and the server goes on.
    for (method, body) in [
        ("POST", Some(json!({"k": "v"}))),
        ("GET", None),
        ("PUT", Some(json!({}))),
        ("DELETE", None),
    ] {
        let r = ext(&s, method, &u, "panicky", &admin, body.as_ref());
        assert_eq!(r.status, 503, "{method}: {}", r.body);
        assert!(!r.body.contains("panick"), "details leaked: {}", r.body);
    }
    // The panicking safe view shows nothing rather than the stored data.
    let list = s.call(
        "GET",
        &format!("/0.1/users/{u}/external"),
        &admin,
        None,
        None,
    );
    assert_eq!(list.status, 200, "{}", list.body);
    let panicky = list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "panicky")
        .unwrap()
        .clone();
    assert_eq!(panicky["data"], json!({}));
    assert_eq!(panicky["enabled"], true);
    // A hung handler is cut off at the timeout, and other requests are served meanwhile.
    std::thread::scope(|scope| {
        let hung = scope.spawn(|| {
            let started = Instant::now();
            let r = ext(&s, "GET", &u, "sleepy", &admin, None);
            (r.status, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            ext(&s, "POST", &u, "bar", &admin, Some(&json!({"scope": []}))).status,
            200
        );
        let (status, elapsed) = hung.join().unwrap();
        assert_eq!(status, 503);
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    });
    let log = s.log();
    assert!(log.contains("panicky") && log.contains("panicked"), "{log}");
    assert!(log.contains("timed out"), "{log}");
    assert_eq!(s.get(&format!("/0.1/token/{admin}")).status, 200);
}

#[test]
fn disabled_external_plugins_have_no_routes() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(BAR))
        .config(json!({"enabled_external_auth_plugins": {"bar": false}}))
        .start();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "off", "pw", None);
    assert_eq!(ext(&s, "GET", &u, "bar", &admin, None).status, 404);
    let list = s
        .call(
            "GET",
            &format!("/0.1/users/{u}/external"),
            &admin,
            None,
            None,
        )
        .json();
    assert_eq!(list["total"], 0);
    let row = s
        .log()
        .lines()
        .find(|l| l.starts_with("bar "))
        .unwrap()
        .to_string();
    assert!(
        row.contains("wazo_auth.external_auth") && row.trim_end().ends_with("disabled"),
        "{row}"
    );
}

#[test]
fn the_bar_example_copied_out_of_the_repository_builds_and_works() {
    // What a plugin author does: copy examples/bar elsewhere, rename it, point it at the
    // plugin-api crate, build it on its own, drop the .so in the plugin directory, enable it.
    let root = workspace_root();
    let dir = scratch_dir("qux-plugin");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = std::fs::read_to_string(root.join("examples/bar/Cargo.toml"))
        .unwrap()
        .replace("wazo-auth-external-bar", "wazo-auth-external-qux")
        .replace("wazo_auth_external_bar", "wazo_auth_external_qux")
        .replace(
            "path = \"../../plugin-api\"",
            &format!("path = {:?}", root.join("plugin-api").display().to_string()),
        );
    assert!(manifest.contains("wazo_auth_external_qux"));
    std::fs::write(dir.join("Cargo.toml"), format!("{manifest}\n[workspace]\n")).unwrap();
    let source = std::fs::read_to_string(root.join("examples/bar/src/lib.rs"))
        .unwrap()
        .replace("\"bar\" => Bar", "\"qux\" => Bar");
    assert!(source.contains("\"qux\" => Bar"));
    std::fs::write(dir.join("src/lib.rs"), source).unwrap();
    let target = target_dir().join("external");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .unwrap();
    assert!(status.success());
    let so = target.join("debug/libwazo_auth_external_qux.so");
    assert!(so.exists());

    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(so)
        .config(json!({"enabled_external_auth_plugins": {"qux": true}}))
        .start();
    let admin = s.admin_token();
    let u = s.create_user(&admin, "quxer", "pw", None);
    let data = json!({"scope": ["a"], "token": "t"});
    assert_eq!(ext(&s, "POST", &u, "qux", &admin, Some(&data)).status, 200);
    assert_eq!(ext(&s, "GET", &u, "qux", &admin, None).json(), data);
    let list = s
        .call(
            "GET",
            &format!("/0.1/users/{u}/external"),
            &admin,
            None,
            None,
        )
        .json();
    assert_eq!(list["items"][0]["type"], "qux");
    assert_eq!(list["items"][0]["data"], json!({"scope": ["a"]}));
}

#[test]
fn host_services_of_1_3_events_tenant_config_and_domains() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(EXTERNAL_FAULTS))
        .config(json!({"enabled_external_auth_plugins": {"hostsvc": true}}))
        .start();
    let admin = s.admin_token();
    let sub = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "sub", "domain_names": ["sub.example.com"]})),
    );
    assert_eq!(sub.status, 200, "{}", sub.body);
    let sub = sub.json()["uuid"].as_str().unwrap().to_string();
    let u = s.create_user(&admin, "svc-user", "pw", Some(&sub));
    let put = |body: Value| ext(&s, "PUT", &u, "hostsvc", &admin, Some(&body));

    // Publish: one outbox row, in the user's tenant, for this plugin's type.
    let r = put(json!({"op": "authorized"}));
    assert_eq!(r.status, 204, "{}", r.body);
    let rows = sql(
        &s.db,
        "SELECT routing_key, headers->>'tenant_uuid', data::text FROM auth_event_outbox
          WHERE name = 'auth_user_external_auth_authorized'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][0].as_deref(),
        Some(format!("auth.users.{u}.external.hostsvc.authorized").as_str())
    );
    assert_eq!(rows[0][1].as_deref(), Some(sub.as_str()));
    let data: Value = serde_json::from_str(rows[0][2].as_deref().unwrap()).unwrap();
    assert_eq!(
        data,
        json!({"user_uuid": u, "external_auth_name": "hostsvc"})
    );

    // The tenant's configuration of this type: none, then the one stored through the API.
    let r = put(json!({"op": "tenant_config", "tenant": sub}));
    assert_eq!(r.json(), json!({"config": null}), "{}", r.body);
    let cfg = json!({"sender": "42"});
    let c = s.call(
        "POST",
        "/0.1/external/hostsvc/config",
        &admin,
        Some(&sub),
        Some(&cfg),
    );
    assert_eq!(c.status, 201, "{}", c.body);
    let r = put(json!({"op": "tenant_config", "tenant": sub}));
    assert_eq!(r.json(), json!({"config": cfg}), "{}", r.body);

    // A tenant by domain name, without case; none for an unknown one.
    let r = put(json!({"op": "domain", "name": "SUB.example.com"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tenant"]["uuid"], json!(sub));
    assert_eq!(
        r.json()["tenant"]["domain_names"],
        json!(["sub.example.com"])
    );
    let r = put(json!({"op": "domain", "name": "nowhere.example.com"}));
    assert_eq!(r.json(), json!({"tenant": null}));
}
