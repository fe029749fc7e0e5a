//! The per-tenant LDAP configuration (spec management §13): `GET`, `PUT` and
//! `DELETE /0.1/backends/ldap`, its validation, its tenant scoping, and the bind password:
//! write-only, encrypted at rest.

use wazo_auth_tests::serde_json::{json, Map, Value};
use wazo_auth_tests::*;

const PATH: &str = "/0.1/backends/ldap";
const UNKNOWN_TENANT: &str = "00000000-0000-4000-8000-0000000000ff";
const SECRET: &str = "super-secret-bind-pw";

struct Fixture {
    s: Server,
    admin: String,
    /// Two sibling sub-tenants, each with an administrator (a policy `["auth.#"]` there).
    a: String,
    a_admin: String,
    b: String,
}

fn sub_tenant(s: &Server, admin: &str, name: &str) -> (String, String) {
    let r = s.call(
        "POST",
        "/0.1/tenants",
        admin,
        None,
        Some(&json!({ "name": name })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let tenant = r.json()["uuid"].as_str().unwrap().to_string();
    let username = format!("{name}-admin");
    let user = s.create_user(admin, &username, "pw", Some(&tenant));
    let r = s.call(
        "POST",
        "/0.1/policies",
        admin,
        Some(&tenant),
        Some(&json!({"name": format!("{name}-all"), "acl": ["auth.#"]})),
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
    (tenant, s.user_token(&username, "pw"))
}

fn fixture() -> Fixture {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let (a, a_admin) = sub_tenant(&s, &admin, "a");
    let (b, _) = sub_tenant(&s, &admin, "b");
    Fixture {
        s,
        admin,
        a,
        a_admin,
        b,
    }
}

fn full_body() -> Value {
    json!({
        "host": "localhost",
        "port": 389,
        "protocol_version": 3,
        "protocol_security": null,
        "bind_dn": "uid=admin,ou=people,dc=wazo-platform,dc=io",
        "bind_password": SECRET,
        "user_base_dn": "ou=people,dc=wazo-platform,dc=io",
        "user_login_attribute": "uid",
        "user_email_attribute": "mail",
        "search_filters": "(&({user_login_attribute}={username})(objectClass=inetOrgPerson))",
    })
}

const FIELDS: [&str; 10] = [
    "tenant_uuid",
    "host",
    "port",
    "protocol_version",
    "protocol_security",
    "bind_dn",
    "user_base_dn",
    "user_login_attribute",
    "user_email_attribute",
    "search_filters",
];

/// The answer has exactly the configuration's fields: never `bind_password`.
fn assert_shape(v: &Value) {
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = FIELDS.to_vec();
    expected.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, expected, "{v}");
    assert!(!v.to_string().contains(SECRET), "{v}");
}

fn put(f: &Fixture, token: &str, tenant: Option<&str>, body: &Value) -> Resp {
    f.s.call("PUT", PATH, token, tenant, Some(body))
}

#[test]
fn get_without_configuration_answers_every_field_null() {
    let f = fixture();
    let r = f.s.call("GET", PATH, &f.admin, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_shape(&r.json());
    for field in FIELDS {
        assert!(r.json()[field].is_null(), "{field}: {}", r.body);
    }
    let r = f.s.call("GET", PATH, &f.admin, Some(UNKNOWN_TENANT), None);
    assert_eq!(r.status, 401, "{}", r.body);
    let r = f.s.call("GET", PATH, "not-a-token", None, None);
    assert_eq!(r.status, 401, "{}", r.body);
    // DELETE without a configuration: 204 all the same.
    let r = f.s.call("DELETE", PATH, &f.admin, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
}

#[test]
fn put_creates_then_updates_and_never_returns_the_password() {
    let f = fixture();
    let r = put(&f, &f.admin, Some(&f.a), &full_body());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_shape(&r.json());
    let mut expected = full_body();
    expected.as_object_mut().unwrap().remove("bind_password");
    expected["tenant_uuid"] = json!(f.a);
    assert_eq!(r.json(), expected);
    let got = f.s.call("GET", PATH, &f.admin, Some(&f.a), None);
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json(), expected);

    // An update of every field.
    let new = json!({
        "host": "patate", "port": 689, "protocol_version": 2, "protocol_security": "ldaps",
        "bind_dn": "uid=root,ou=people,dc=wazo-platform,dc=io",
        "bind_password": "not-so-super-secret",
        "user_base_dn": "ou=genses,dc=wazo-platform,dc=io",
        "user_login_attribute": "cn", "user_email_attribute": "email",
        "search_filters": "{user_login_attribute}={username}",
    });
    let r = put(&f, &f.admin, Some(&f.a), &new);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_shape(&r.json());
    assert_eq!(r.json()["host"], "patate");
    assert_eq!(r.json()["port"], 689);
    assert_eq!(r.json()["protocol_version"], 2);
    assert_eq!(r.json()["protocol_security"], "ldaps");
    assert!(!r.body.contains("not-so-super-secret"));

    // The minimal body: protocol_version back to 3, the optional fields left as they were.
    let minimal = json!({
        "host": "h", "port": "636", "user_base_dn": "dc=x",
        "user_login_attribute": "uid", "user_email_attribute": "mail",
    });
    let r = put(&f, &f.admin, Some(&f.a), &minimal);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["port"], 636);
    assert_eq!(v["protocol_version"], 3);
    assert_eq!(v["protocol_security"], "ldaps");
    assert_eq!(v["bind_dn"], "uid=root,ou=people,dc=wazo-platform,dc=io");
    assert_eq!(v["search_filters"], "{user_login_attribute}={username}");
    // The password is kept too: still sealed in the row.
    let sealed = sql(
        &f.s.db,
        &format!(
            "SELECT bind_password_sealed FROM auth_ldap_config WHERE tenant_uuid = '{}'",
            f.a
        ),
    );
    assert!(sealed[0][0].is_some(), "{sealed:?}");

    // Explicit nulls clear them.
    let mut cleared = minimal.clone();
    for k in [
        "protocol_security",
        "bind_dn",
        "bind_password",
        "search_filters",
    ] {
        cleared[k] = Value::Null;
    }
    let r = put(&f, &f.admin, Some(&f.a), &cleared);
    assert_eq!(r.status, 200, "{}", r.body);
    for k in ["protocol_security", "bind_dn", "search_filters"] {
        assert!(r.json()[k].is_null(), "{k}: {}", r.body);
    }
    let sealed = sql(
        &f.s.db,
        &format!(
            "SELECT bind_password_sealed FROM auth_ldap_config WHERE tenant_uuid = '{}'",
            f.a
        ),
    );
    assert_eq!(sealed[0][0], None);

    // A minimal body for a tenant without configuration: the optional fields are null.
    let r = put(&f, &f.admin, None, &minimal);
    assert_eq!(r.status, 200, "{}", r.body);
    for k in ["protocol_security", "bind_dn", "search_filters"] {
        assert!(r.json()[k].is_null(), "{k}: {}", r.body);
    }

    let r = f.s.call("DELETE", PATH, &f.admin, Some(&f.a), None);
    assert_eq!(r.status, 204, "{}", r.body);
    let r = f.s.call("GET", PATH, &f.admin, Some(&f.a), None);
    assert!(r.json()["host"].is_null(), "{}", r.body);
}

#[test]
fn the_bind_password_is_never_stored_in_clear() {
    let f = fixture();
    let r = put(&f, &f.admin, Some(&f.a), &full_body());
    assert_eq!(r.status, 200, "{}", r.body);
    let dump = sql(
        &f.s.db,
        "SELECT coalesce(json_agg(r)::text, '') FROM auth_ldap_config r",
    );
    let text = dump[0][0].clone().unwrap();
    assert!(
        text.contains("ldaps") || text.contains("localhost"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&hex), "{text}");
    assert!(text.contains("v1:"), "a keyring envelope: {text}");
    // Nor in the server's log.
    assert!(!f.s.log().contains(SECRET));
    // A sealed value moved to another tenant's row does not open there: the login of that
    // tenant would fail, never use it. (Checked at the storage level by the login tests.)
}

#[test]
fn invalid_bodies_answer_400_naming_the_field() {
    let f = fixture();
    let long = |n: usize| Value::String("a".repeat(n));
    let cases: Vec<(&str, Value)> = vec![
        ("host", json!(1)),
        ("host", json!(true)),
        ("host", long(513)),
        ("host", json!([])),
        ("host", json!({})),
        ("host", Value::Null),
        ("host", json!("a\u{0}b")),
        ("port", json!(true)),
        ("port", long(513)),
        ("port", json!([])),
        ("port", json!({})),
        ("port", Value::Null),
        ("port", json!(3_000_000_000_i64)),
        ("protocol_version", json!("patate")),
        ("protocol_version", json!(true)),
        ("protocol_version", json!([])),
        ("protocol_version", json!({})),
        ("protocol_version", json!(4)),
        ("protocol_version", json!(1)),
        ("protocol_security", json!("patate")),
        ("protocol_security", json!("")),
        ("protocol_security", json!(true)),
        ("protocol_security", json!([])),
        ("protocol_security", json!({})),
        ("bind_dn", json!(1)),
        ("bind_dn", json!(true)),
        ("bind_dn", long(257)),
        ("bind_dn", json!([])),
        ("bind_dn", json!({})),
        ("bind_password", json!(1)),
        ("bind_password", json!(true)),
        ("bind_password", json!([])),
        ("bind_password", json!({})),
        ("user_base_dn", json!(1)),
        ("user_base_dn", long(257)),
        ("user_base_dn", json!(true)),
        ("user_base_dn", json!([])),
        ("user_base_dn", json!({})),
        ("user_login_attribute", json!(1)),
        ("user_login_attribute", json!(true)),
        ("user_login_attribute", long(65)),
        ("user_login_attribute", json!([])),
        ("user_login_attribute", json!({})),
        ("user_email_attribute", json!(1)),
        ("user_email_attribute", json!(true)),
        ("user_email_attribute", long(65)),
        ("user_email_attribute", json!([])),
        ("user_email_attribute", json!({})),
        ("search_filters", json!(1)),
        ("search_filters", json!(true)),
        ("search_filters", json!([])),
        ("search_filters", json!({})),
    ];
    for (field, value) in cases {
        let mut body = full_body();
        body[field] = value.clone();
        let r = put(&f, &f.admin, None, &body);
        assert_eq!(r.status, 400, "{field} = {value}: {}", r.body);
        assert_eq!(
            r.json()["reason"],
            json!([format!("Invalid value supplied for field: {field}")]),
            "{field} = {value}"
        );
    }
    // Each required field missing.
    for field in [
        "host",
        "port",
        "user_base_dn",
        "user_login_attribute",
        "user_email_attribute",
    ] {
        let mut body = full_body();
        body.as_object_mut().unwrap().remove(field);
        let r = put(&f, &f.admin, None, &body);
        assert_eq!(r.status, 400, "{field} missing: {}", r.body);
        assert_eq!(
            r.json()["reason"],
            json!([format!("Invalid value supplied for field: {field}")])
        );
    }
    // Several invalid fields: the first in the schema's order is named.
    let mut body = full_body();
    body["search_filters"] = json!(1);
    body["port"] = json!("x");
    let r = put(&f, &f.admin, None, &body);
    assert_eq!(
        r.json()["reason"],
        json!(["Invalid value supplied for field: port"])
    );
    // An empty body, a non-object, a body that is not JSON.
    let r = put(&f, &f.admin, None, &Value::Object(Map::new()));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json()["reason"],
        json!(["Invalid value supplied for field: host"])
    );
    let r = put(&f, &f.admin, None, &json!([1]));
    assert_eq!(
        r.json()["reason"],
        json!(["Invalid value supplied for field: _schema"])
    );
    let r = f.s.request(
        "PUT",
        PATH,
        &[("X-Auth-Token", &f.admin)],
        Some(b"{not json"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Nothing was stored.
    let r = f.s.call("GET", PATH, &f.admin, None, None);
    assert!(r.json()["host"].is_null(), "{}", r.body);
}

#[test]
fn a_sub_tenant_administrator_sees_and_changes_only_its_own_configuration() {
    let f = fixture();
    let r = put(&f, &f.admin, Some(&f.b), &full_body());
    assert_eq!(r.status, 200, "{}", r.body);

    // The sibling's configuration is out of reach: 401 for each method, and nothing changes.
    for (method, body) in [
        ("GET", None),
        (
            "PUT",
            Some(json!({"host": "evil", "port": 1, "user_base_dn": "x",
                             "user_login_attribute": "x", "user_email_attribute": "x"})),
        ),
        ("DELETE", None),
    ] {
        let r =
            f.s.call(method, PATH, &f.a_admin, Some(&f.b), body.as_ref());
        assert_eq!(r.status, 401, "{method}: {}", r.body);
    }
    let r = f.s.call("GET", PATH, &f.admin, Some(&f.b), None);
    assert_eq!(r.json()["host"], "localhost", "{}", r.body);

    // Its own tenant (the default scope): its own configuration, with its tenant.
    let r = f.s.call("GET", PATH, &f.a_admin, None, None);
    assert!(r.json()["host"].is_null(), "{}", r.body);
    let r = put(&f, &f.a_admin, None, &full_body());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tenant_uuid"], json!(f.a));
    let r = f.s.call("DELETE", PATH, &f.a_admin, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    // B's is still there.
    let r = f.s.call("GET", PATH, &f.admin, Some(&f.b), None);
    assert_eq!(r.json()["host"], "localhost", "{}", r.body);

    // A user without the ACL: 401.
    f.s.create_user(&f.admin, "plain", "pw", None);
    let plain = f.s.user_token("plain", "pw");
    for method in ["GET", "PUT", "DELETE"] {
        let r = f.s.call(method, PATH, &plain, None, Some(&full_body()));
        assert_eq!(r.status, 401, "{method}: {}", r.body);
    }

    // Deleting the tenant deletes its configuration (the cascade).
    let r = f.s.call(
        "DELETE",
        &format!("/0.1/tenants/{}", f.b),
        &f.admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let n = sql(&f.s.db, "SELECT count(*) FROM auth_ldap_config");
    assert_eq!(n[0][0].as_deref(), Some("0"));
}
