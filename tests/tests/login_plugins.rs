//! Black-box tests of the login plugins of plugin-api 1.3: metadata plugins by purpose
//! (`enabled_metadata_plugins`, `purpose_metadata_mapping`, the built-in `user_admin_status`)
//! and the IdP chain (`idp_plugins.*.priority`), with real `.so` files, including plugins that
//! panic or hang (the login fails closed, the server keeps serving).

use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

/// A `wazo_user` user of `purpose` (password `pw`); returns its uuid.
fn user(s: &Server, admin: &str, username: &str, purpose: &str) -> String {
    let r = s.call(
        "POST",
        "/0.1/users",
        admin,
        None,
        Some(&json!({"username": username, "password": "pw", "purpose": purpose})),
    );
    assert_eq!(r.status, 200, "creating {username}: {}", r.body);
    r.json()["uuid"].as_str().unwrap().to_string()
}

fn top_tenant(s: &Server) -> String {
    sql(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0][0]
        .clone()
        .unwrap()
}

fn metadata(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"]["metadata"].clone()
}

fn set_method(s: &Server, user: &str, method: &str) {
    sql(
        &s.db,
        &format!("UPDATE auth_user SET authentication_method = '{method}' WHERE uuid = '{user}'"),
    );
}

#[test]
fn default_configuration_keeps_the_metadata_of_every_purpose_exactly() {
    // The plugins are present, but nothing is enabled or mapped: the default configuration.
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(LOGIN_PLUGINS))
        .start();
    let admin = s.admin_token();
    let top = top_tenant(&s);
    for purpose in ["user", "internal", "external_api"] {
        let name = format!("u-{purpose}");
        let uuid = user(&s, &admin, &name, purpose);
        let r = s.login(&name, "pw", json!({}));
        let pbx = if purpose == "user" {
            Value::from(uuid.clone())
        } else {
            Value::Null
        };
        assert_eq!(
            metadata(&r),
            json!({"uuid": uuid, "tenant_uuid": top, "auth_id": uuid, "pbx_user_uuid": pbx,
                   "xivo_uuid": null, "purpose": purpose}),
            "{purpose}"
        );
        // The very text too: same keys, same order, nothing added.
        let text = r.body.clone();
        let start = text.find("\"metadata\":").unwrap();
        let expected = format!(
            "\"metadata\":{}",
            wazo_auth_tests::serde_json::to_string(&metadata(&r)).unwrap()
        );
        assert!(text[start..].starts_with(&expected), "{text}");
    }
    // No IdP plugin is enabled by default: an IdP-looking login goes the native way.
    assert_eq!(s.login("u-user@ldap", "ldap-pass", json!({})).status, 401);
    let log = s.log();
    assert!(log.contains("IdP chain: refresh_token, native"), "{log}");
    let idp = s.call("GET", "/0.1/idp", &admin, None, None).json();
    assert_eq!(idp["items"], json!(["native", "default", "ldap", "saml"]));
}

#[test]
fn mapped_metadata_plugins_add_their_keys_by_purpose() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(LOGIN_PLUGINS))
        .config(json!({
            "enabled_metadata_plugins": {"tagger": true, "user_admin_status": true},
            "purpose_metadata_mapping": {"user": ["default_user", "user_admin_status", "tagger"],
                                         "internal": ["tagger"], "external_api": []},
            "plugin_config": {"tagger": {"tag": "t1"}},
        }))
        .start();
    let admin = s.admin_token();
    let top = top_tenant(&s);
    let alice = user(&s, &admin, "alice-u", "user");
    let bob = user(&s, &admin, "bob-u", "user");
    let carl = user(&s, &admin, "carl-i", "internal");
    let dora = user(&s, &admin, "dora-e", "external_api");

    let m = metadata(&s.login("alice-u", "pw", json!({})));
    assert_eq!(
        m,
        json!({"uuid": alice, "tenant_uuid": top, "auth_id": alice, "pbx_user_uuid": alice,
               "xivo_uuid": null, "purpose": "user", "admin": false, "tag": "t1",
               "seen_purpose": "user"}),
        "the plugin cannot change auth_id"
    );
    let m = metadata(&s.login("carl-i", "pw", json!({})));
    assert_eq!(m["tag"], "t1");
    assert_eq!(m["seen_purpose"], "internal");
    assert_eq!(m["auth_id"], Value::from(carl.clone()));
    assert!(m.get("admin").is_none(), "{m}");
    let m = metadata(&s.login("dora-e", "pw", json!({})));
    assert_eq!(
        m,
        json!({"uuid": dora, "tenant_uuid": top, "auth_id": dora, "pbx_user_uuid": null,
               "xivo_uuid": null, "purpose": "external_api"})
    );

    // user_admin_status: the policy wazo_default_admin_policy held directly, or membership of
    // the group wazo_default_admin_group.
    sql(
        &s.db,
        &format!(
            "INSERT INTO auth_policy (name, slug, tenant_uuid, acl)
               SELECT 'admin-pol', 'wazo_default_admin_policy', '{top}', ARRAY['x']
               WHERE NOT EXISTS (SELECT 1 FROM auth_policy WHERE tenant_uuid = '{top}'
                                 AND slug = 'wazo_default_admin_policy');
             INSERT INTO auth_user_policy SELECT '{alice}', uuid FROM auth_policy
               WHERE tenant_uuid = '{top}' AND slug = 'wazo_default_admin_policy';
             INSERT INTO auth_group (name, slug, tenant_uuid)
               SELECT 'admins', 'wazo_default_admin_group', '{top}'
               WHERE NOT EXISTS (SELECT 1 FROM auth_group WHERE tenant_uuid = '{top}'
                                 AND slug = 'wazo_default_admin_group');
             INSERT INTO auth_user_group SELECT uuid, '{bob}' FROM auth_group
               WHERE tenant_uuid = '{top}' AND slug = 'wazo_default_admin_group';"
        ),
    );
    assert_eq!(
        metadata(&s.login("alice-u", "pw", json!({})))["admin"],
        true
    );
    assert_eq!(metadata(&s.login("bob-u", "pw", json!({})))["admin"], true);

    // Offline: the persistent metadata of the plugins goes with the refresh token.
    let r = s.offline_login("alice-u", "cid", false);
    let m = metadata(&r);
    assert_eq!(m["persisted"], true, "{m}");
    let refresh = r.json()["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let m = metadata(&s.refresh_login(&refresh, "cid"));
    assert_eq!(m["persisted"], true, "{m}");
    assert_eq!(m["tag"], "t1");
    assert_eq!(m["admin"], true);

    let log = s.log();
    assert!(
        log.contains("metadata plugin tagger: tried to change auth_id"),
        "{log}"
    );
    assert!(log.contains("user: user_admin_status, tagger"), "{log}");
}

#[test]
fn panicking_or_hanging_metadata_plugins_fail_the_login_closed() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(LOGIN_PLUGINS))
        .config(json!({
            "enabled_metadata_plugins": {"metapanic": true, "metasleep": true},
            "purpose_metadata_mapping": {"user": ["metapanic"], "external_api": ["metasleep"]},
        }))
        .start();
    let admin = s.admin_token();
    user(&s, &admin, "pan", "user");
    user(&s, &admin, "slp", "external_api");
    let r = s.login("pan", "pw", json!({}));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.json().get("data").is_none());
    let started = Instant::now();
    let r = s.login("slp", "pw", json!({}));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(10));
    // The server keeps serving (the administrator's purpose maps nothing).
    assert_eq!(s.login(ADMIN.0, ADMIN.1, json!({})).status, 200);
    let log = s.log();
    assert!(
        log.contains("metadata plugin metapanic") && log.contains("metapanic get_token_metadata"),
        "{log}"
    );
    assert!(
        log.contains("metadata plugin metasleep") && log.contains("timed out"),
        "{log}"
    );
}

#[test]
fn idp_chain_orders_plugins_and_enforces_the_authentication_method() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(LOGIN_PLUGINS))
        .config(json!({
            "enabled_backend_plugins": {"example_static": true},
            "idp_plugins": {
                "canpanic": {"enabled": true, "priority": 0},
                "idppanic": {"enabled": true, "priority": 1},
                "fakeldap": {"enabled": true, "priority": 5},
                "idpsleep": {"enabled": true},
                "wrongbackend": {"enabled": true, "priority": 7},
            },
        }))
        .start();
    let admin = s.admin_token();
    let idp = s.call("GET", "/0.1/idp", &admin, None, None).json();
    for m in ["native", "ldap", "panicky", "sleepy", "never", "ldap2"] {
        assert!(
            idp["items"].as_array().unwrap().contains(&json!(m)),
            "{m}: {idp}"
        );
    }
    let log = s.log();
    assert!(
        log.contains("IdP chain: refresh_token, canpanic (never), idppanic (panicky), fakeldap (ldap), wrongbackend (ldap2), idpsleep (sleepy), native"),
        "{log}"
    );

    let carol = user(&s, &admin, "carol", "user");
    // Native: canpanic's can_authenticate panics and is skipped; carol is native.
    assert_eq!(
        metadata(&s.login("carol", "pw", json!({})))["uuid"],
        Value::from(carol.clone())
    );
    // The IdP authenticates carol, but her method is native: refused.
    assert_eq!(s.login("carol@ldap", "ldap-pass", json!({})).status, 401);

    set_method(&s, &carol, "ldap");
    // An ldap user cannot log in natively.
    assert_eq!(s.login("carol", "pw", json!({})).status, 401);
    let r = s.login("carol@ldap", "ldap-pass", json!({}));
    let m = metadata(&r);
    assert_eq!(m["auth_id"], Value::from(carol.clone()));
    assert_eq!(m["purpose"], "user");
    assert_eq!(s.login("carol@ldap", "wrong", json!({})).status, 401);
    // Through the tenant's default method too.
    set_method(&s, &carol, "default");
    sql(
        &s.db,
        "UPDATE auth_tenant SET default_authentication_method = 'ldap'",
    );
    assert_eq!(s.login("carol@ldap", "ldap-pass", json!({})).status, 200);
    assert_eq!(s.login("carol", "pw", json!({})).status, 401);
    sql(
        &s.db,
        "UPDATE auth_tenant SET default_authentication_method = 'native'",
    );
    set_method(&s, &carol, "ldap");

    // Offline through the IdP: the refresh token works while carol stays ldap.
    let body = json!({"access_type": "offline", "client_id": "c1"});
    let r = s.login("carol@ldap", "ldap-pass", body);
    assert_eq!(r.status, 200, "{}", r.body);
    let refresh = r.json()["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.refresh_login(&refresh, "c1").status, 200);
    // Switched to a method no IdP of this server serves: the refresh token is refused.
    set_method(&s, &carol, "saml");
    assert_eq!(s.refresh_login(&refresh, "c1").status, 401);

    // An IdP naming a backend that is not loaded: refused, no fallback.
    assert_eq!(s.login("carol@nowhere", "x", json!({})).status, 401);

    // The `backend` field keeps working for native logins.
    let r = s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    );
    assert_eq!(r.json()["data"]["auth_id"], "alice", "{}", r.body);

    // A panicking and a hanging verify_auth: 401, the server keeps serving.
    let r = s.login("panic-me", "x", json!({}));
    assert_eq!(r.status, 401, "{}", r.body);
    let started = Instant::now();
    assert_eq!(s.login("sleep-me", "x", json!({})).status, 401);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(s.login(ADMIN.0, ADMIN.1, json!({})).status, 200);
    let log = s.log();
    assert!(
        log.contains("IdP plugin canpanic") && log.contains("skipped"),
        "{log}"
    );
    assert!(
        log.contains("IdP plugin idppanic") && log.contains("idppanic verify_auth"),
        "{log}"
    );
    assert!(
        log.contains("IdP plugin idpsleep") && log.contains("timed out"),
        "{log}"
    );
    assert!(
        log.contains("\"no_such_backend\", which is not loaded"),
        "{log}"
    );
}

#[test]
fn a_library_cannot_take_a_built_in_metadata_or_idp_name() {
    // The test library declares no built-in name; the refusal is checked on the table of a
    // server whose configuration enables everything it declares.
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(LOGIN_PLUGINS))
        .config(json!({
            "enabled_metadata_plugins": {"tagger": true},
            "idp_plugins": {"fakeldap": {"enabled": true}},
        }))
        .start();
    let log = s.log();
    for name in ["tagger", "fakeldap"] {
        let row = log
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{log}"));
        assert!(row.trim_end().ends_with("loaded"), "{row}");
    }
    let row = log.lines().find(|l| l.starts_with("metapanic")).unwrap();
    assert!(
        row.contains("wazo_auth.metadata") && row.trim_end().ends_with("disabled"),
        "{row}"
    );
    let row = log.lines().find(|l| l.starts_with("idpsleep")).unwrap();
    assert!(
        row.contains("wazo_auth.idp") && row.trim_end().ends_with("disabled"),
        "{row}"
    );
}

#[test]
fn example_metadata_plugin_adds_a_department_to_mapped_purposes() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(EXAMPLE_METADATA))
        .config(json!({
            "enabled_metadata_plugins": {"example_department": true},
            "purpose_metadata_mapping": {"user": ["example_department"]},
            "plugin_config": {"example_department": {"departments": {"alice": "sales"}}},
        }))
        .start();
    let admin = s.admin_token();
    user(&s, &admin, "alice", "user");
    user(&s, &admin, "bob", "user");
    assert_eq!(
        metadata(&s.login("alice", "pw", json!({})))["department"],
        "sales"
    );
    assert_eq!(
        metadata(&s.login("bob", "pw", json!({})))["department"],
        "none"
    );
    // The administrator is `internal`: nothing mapped.
    let m = metadata(&s.login(ADMIN.0, ADMIN.1, json!({})));
    assert!(m.get("department").is_none(), "{m}");
    let m = metadata(&s.offline_login("alice", "cid", false));
    assert_eq!(m["department_at_issue"], "sales");
}

#[test]
fn example_idp_plugin_logs_its_users_in_with_their_code_only() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(EXAMPLE_IDP))
        .config(json!({
            "idp_plugins": {"example_code": {"enabled": true, "priority": 10}},
            "plugin_config": {"example_code": {"codes": {"alice": "424242"}}},
        }))
        .start();
    let admin = s.admin_token();
    let idp = s.call("GET", "/0.1/idp", &admin, None, None).json();
    assert!(
        idp["items"]
            .as_array()
            .unwrap()
            .contains(&json!("example_code")),
        "{idp}"
    );
    let alice = user(&s, &admin, "alice", "user");
    // Still native: the code is not her password.
    assert_eq!(s.login("alice", "424242", json!({})).status, 401);
    assert_eq!(s.login("alice", "pw", json!({})).status, 200);
    let r = s.call(
        "PUT",
        &format!("/0.1/idp/example_code/users/{alice}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let m = metadata(&s.login("alice", "424242", json!({})));
    assert_eq!(m["auth_id"], Value::from(alice));
    assert_eq!(s.login("alice", "000000", json!({})).status, 401);
    assert_eq!(s.login("alice", "pw", json!({})).status, 401);
}

#[test]
fn the_metadata_and_idp_examples_build_alone_outside_the_repository() {
    fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_tree(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("wazo-auth-examples-alone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = workspace_root();
    for part in ["plugin-api", "examples/metadata", "examples/idp"] {
        let to = dir.join(part);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(root.join(part).join("Cargo.toml"), to.join("Cargo.toml")).unwrap();
        copy_tree(&root.join(part).join("src"), &to.join("src"));
    }
    for example in ["examples/metadata", "examples/idp"] {
        let manifest = dir.join(example).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(!text.contains(".workspace"), "{example}: {text}");
        // Versions pinned as in this repository, so the build works offline.
        std::fs::copy(
            root.join("Cargo.lock"),
            dir.join(example).join("Cargo.lock"),
        )
        .unwrap();
        let out =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--offline", "--quiet", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(target_dir().join("external"))
                .output()
                .expect("run cargo");
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
