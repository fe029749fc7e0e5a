//! Black-box tests of the tenant resources (spec management §6, §1.5, §1.6, checklist items
//! 41–55; core §2.4, §2.5): the real binary on a fresh database per server.
//!
//! Most tests use an administrator of the example backend (ACL `#`, no user, so its tenant is
//! the top tenant) and select sub-tenants with `Wazo-Tenant`; the last ones use real users of
//! sub-tenants through the `wazo_user` backend.

use wazo_auth_core::password::{self, Scheme};
use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

const SQL_INJECTION: &str = "'; DROP TABLE auth_tenant; --";
const DOMAIN_RE: &str =
    r"^(?=.{1,253}\.?$)(?:(?!(-|_)|[^.]+_)[A-Za-z0-9-_]{1,}(?<!-)(?:\.|$)){2,63}$";
const VALID_DOMAIN_NAMES_1: [&str; 2] = ["wazo.io", "shopify.ca"];
const VALID_DOMAIN_NAMES_2: [&str; 3] = ["gmail.com", "yahoo.com", "google.ca"];
const VALID_DOMAIN_NAMES_3: [&str; 2] = ["outlook.fr", "mail.yahoo.fr"];

fn address_1() -> Value {
    json!({"line_1": "Here", "city": "Québec", "state": "Québec", "country": "Canada", "zip_code": "H0H 0H0"})
}

fn address_1_full() -> Value {
    json!({"line_1": "Here", "line_2": null, "city": "Québec", "state": "Québec", "country": "Canada", "zip_code": "H0H 0H0"})
}

fn address_null() -> Value {
    json!({"line_1": null, "line_2": null, "city": null, "state": null, "country": null, "zip_code": null})
}

// ------------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------------

struct Ctx {
    s: Server,
    /// Token of the bootstrap administrator (`wazo_user`, ACL `#`, top tenant).
    token: String,
    top: String,
}

fn base_config() -> Value {
    json!({
        "plugin_config": {"example_static": {"users": [
            {"login": "alice", "password": "alice-secret", "acl": ["confd.#"]},
        ]}},
        "default_policies": {
            "wazo-all-users-policy": {"acl": ["integration_tests.access"]},
            "wazo_default_admin_policy": {"acl": ["integration_tests.admin"]},
        },
        "all_users_policies": {"wazo-all-users-policy": true},
        "tenant_default_groups": {
            "wazo_default_admin_group": {"policies": {"wazo_default_admin_policy": true}},
        },
    })
}

fn alice_token(s: &Server) -> String {
    let r = s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    );
    assert_eq!(r.status, 200, "login failed: {}", r.body);
    r.json()["data"]["token"].as_str().unwrap().to_string()
}

fn ctx() -> Ctx {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(base_config())
        .start();
    let token = s.admin_token();
    let top = one(&s, "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid");
    Ctx { s, token, top }
}

/// Creates, through SQL, a `wazo_user` user of `tenant` with a policy granting `acl`, and logs
/// it in.
fn user_with_acl(s: &Server, tenant: &str, username: &str, acl: &[&str]) -> String {
    let user = random_uuid();
    let policy = random_uuid();
    let stored = password::hash("secre7", Scheme::Argon2id);
    let acl: Vec<String> = acl.iter().map(|a| format!("'{a}'")).collect();
    sql(
        &s.db,
        &format!(
            "INSERT INTO auth_user (uuid, username, password_hash, password_scheme, tenant_uuid, purpose)
             VALUES ('{user}', '{username}', '{}', 'argon2id', '{tenant}', 'user');
             INSERT INTO auth_policy (uuid, name, slug, tenant_uuid, acl)
             VALUES ('{policy}', '{username}-acl', '{username}-acl', '{tenant}', ARRAY[{}]::text[]);
             INSERT INTO auth_user_policy (user_uuid, policy_uuid) VALUES ('{user}', '{policy}');",
            stored.hash,
            acl.join(", ")
        ),
    );
    s.user_token(username, "secre7")
}

/// The single value of a one-row, one-column query.
fn one(s: &Server, query: &str) -> String {
    let rows = sql(&s.db, query);
    assert_eq!(rows.len(), 1, "{query}: {rows:?}");
    rows[0][0].clone().unwrap_or_default()
}

fn count(s: &Server, query: &str) -> i64 {
    one(s, query).parse().unwrap()
}

impl Ctx {
    /// A request as the administrator, with optional `Wazo-Tenant` and raw body.
    fn raw(&self, method: &str, path: &str, tenant: Option<&str>, body: Option<&[u8]>) -> Resp {
        raw_as(&self.s, &self.token, method, path, tenant, body)
    }

    fn call(&self, method: &str, path: &str, tenant: Option<&str>, body: Option<Value>) -> Resp {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, tenant, bytes.as_deref())
    }

    fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None, None)
    }

    fn post(&self, body: Value) -> Resp {
        self.call("POST", "/tenants", None, Some(body))
    }

    fn put(&self, uuid: &str, body: Value) -> Resp {
        self.call("PUT", &format!("/tenants/{uuid}"), None, Some(body))
    }

    /// Creates a tenant (child of `parent`, default: the top tenant) and returns it.
    fn create_in(&self, parent: Option<&str>, body: Value) -> Value {
        let r = self.call("POST", "/tenants", parent, Some(body));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    fn create(&self, body: Value) -> Value {
        self.create_in(None, body)
    }

    fn list(&self, query: &str, tenant: Option<&str>) -> Value {
        let r = self.call("GET", &format!("/tenants{query}"), tenant, None);
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        r.json()
    }

    fn tenant_count(&self) -> i64 {
        count(&self.s, "SELECT count(*) FROM auth_tenant")
    }
}

fn raw_as(
    s: &Server,
    token: &str,
    method: &str,
    path: &str,
    tenant: Option<&str>,
    body: Option<&[u8]>,
) -> Resp {
    let mut headers: Vec<(&str, &str)> = vec![("X-Auth-Token", token)];
    if let Some(t) = tenant {
        headers.push(("Wazo-Tenant", t));
    }
    s.request(method, &format!("/0.1{path}"), &headers, body)
}

fn call_as(
    s: &Server,
    token: &str,
    method: &str,
    path: &str,
    tenant: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let bytes = body.map(|b| b.to_string().into_bytes());
    raw_as(s, token, method, path, tenant, bytes.as_deref())
}

/// Asserts an APIException body exactly (`timestamp` must be a number).
fn assert_error(r: &Resp, status: u16, expected: Value) {
    assert_eq!(r.status, status, "unexpected status; body: {}", r.body);
    let mut v = r.json();
    let ts = v
        .as_object_mut()
        .and_then(|o| o.remove("timestamp"))
        .unwrap_or_else(|| panic!("no timestamp in {}", r.body));
    assert!(ts.is_number(), "timestamp {ts}");
    assert_eq!(v, expected, "body: {}", r.body);
}

/// Asserts a `400 invalid-data` of resource tenants for one field.
fn assert_invalid(r: &Resp, message: &str, details: Value) {
    assert_error(
        r,
        400,
        json!({"message": message, "error_id": "invalid-data", "details": details, "resource": "tenants"}),
    );
}

fn unknown_tenant(uuid: &str) -> Value {
    json!({
        "message": format!("No such tenant: \"{uuid}\""),
        "error_id": "unknown-tenant",
        "details": {"uuid": uuid},
        "resource": "tenants",
    })
}

fn length(min: u32, max: u32) -> Value {
    json!({
        "message": format!("Length must be between {min} and {max}."),
        "constraint_id": "length",
        "constraint": {"min": min, "max": max},
    })
}

fn not_string() -> Value {
    json!({"message": "Not a valid string.", "constraint_id": "type", "constraint": "string"})
}

fn not_null() -> Value {
    json!({"message": "Field may not be null.", "constraint_id": "not_null", "constraint": "not_null"})
}

fn not_list() -> Value {
    json!({"message": "Not a valid list.", "constraint_id": "type", "constraint": "list"})
}

fn bad_domain() -> Value {
    json!({"message": "String does not match expected pattern.", "constraint_id": "regex", "constraint": DOMAIN_RE})
}

fn uuids_of(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uuid"].as_str().unwrap().to_string())
        .collect()
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap().to_string()
}

fn random_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

fn is_canonical_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

// ------------------------------------------------------------------------------------------------
// POST /tenants
// ------------------------------------------------------------------------------------------------

#[test]
fn create_returns_the_tenant_with_its_defaults_and_groups() {
    let c = ctx();

    // Full body: domains deduplicated and sorted, unknown keys and parent_uuid ignored.
    let r = c.post(json!({
        "name": "foobar",
        "slug": "slug1",
        "phone": "555-555-5555",
        "address": address_1(),
        "domain_names": ["wazo.io", "shopify.ca", "wazo.io"],
        "parent_uuid": random_uuid(),
        "tenant_uuid": random_uuid(),
        "unknown": 1,
    }));
    assert_eq!(r.status, 200, "{}", r.body);
    let foobar = r.json();
    let uuid = str_of(&foobar["uuid"]);
    assert!(is_canonical_uuid(&uuid), "{uuid}");
    assert_eq!(
        foobar,
        json!({
            "uuid": uuid,
            "parent_uuid": c.top,
            "name": "foobar",
            "slug": "slug1",
            "contact": null,
            "phone": "555-555-5555",
            "default_authentication_method": "native",
            "domain_names": ["shopify.ca", "wazo.io"],
            "address": address_1_full(),
        })
    );
    // GET answers the creation response exactly.
    let r = c.get(&format!("/tenants/{uuid}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), foobar);

    // Given uuid (any case / Python's accepted forms), auth method from the enabled IdPs.
    let foobaz = c.create(json!({
        "uuid": "{6668CA15-6D9E-4000-B2EC-731BC7316767}",
        "name": "foobaz",
        "slug": "slug2",
        "domain_names": VALID_DOMAIN_NAMES_2,
        "default_authentication_method": "ldap",
    }));
    assert_eq!(foobaz["uuid"], "6668ca15-6d9e-4000-b2ec-731bc7316767");
    assert_eq!(foobaz["parent_uuid"], json!(c.top));
    assert_eq!(foobaz["address"], address_null());
    assert_eq!(
        foobaz["domain_names"],
        json!(["gmail.com", "google.ca", "yahoo.com"])
    );
    assert_eq!(foobaz["default_authentication_method"], "ldap");

    // Minimal bodies: `{}`, and the falsy bodies the original reads as `{}`.
    let other = c.create(json!({"slug": "slug3", "default_authentication_method": "saml"}));
    assert_eq!(
        other,
        json!({
            "uuid": other["uuid"], "parent_uuid": c.top, "name": null, "slug": "slug3",
            "contact": null, "phone": null, "default_authentication_method": "saml",
            "domain_names": [], "address": address_null(),
        })
    );
    for body in ["{}", "null", "[]", "0", "false", "\"\""] {
        let r = c.raw("POST", "/tenants", None, Some(body.as_bytes()));
        assert_eq!(r.status, 200, "{body}: {}", r.body);
        let t = r.json();
        assert_eq!(t["default_authentication_method"], "native", "{body}");
        assert_eq!(t["name"], Value::Null);
        let slug = str_of(&t["slug"]);
        assert!(
            slug.len() == 3
                && slug
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit()),
            "random slug {slug}"
        );
    }

    // Every new tenant has its system-managed all-users group holding the all-users policy,
    // and the configured default groups (created in the same transaction).
    for t in [&foobar, &foobaz, &other] {
        let u = str_of(&t["uuid"]);
        let groups = sql(
            &c.s.db,
            &format!(
                "SELECT name, slug, system_managed::text FROM auth_group WHERE tenant_uuid = '{u}' ORDER BY name"
            ),
        );
        let all_users = format!("wazo-all-users-tenant-{u}");
        assert_eq!(
            groups,
            vec![
                vec![
                    Some(all_users.clone()),
                    Some(all_users.clone()),
                    Some("true".into())
                ],
                vec![
                    Some("wazo_default_admin_group".into()),
                    Some("wazo_default_admin_group".into()),
                    Some("false".into())
                ],
            ],
            "groups of {u}"
        );
        let policies = sql(
            &c.s.db,
            &format!(
                "SELECT g.name, p.slug FROM auth_group_policy gp
                 JOIN auth_group g ON g.uuid = gp.group_uuid
                 JOIN auth_policy p ON p.uuid = gp.policy_uuid
                 WHERE g.tenant_uuid = '{u}' ORDER BY g.name"
            ),
        );
        assert_eq!(
            policies,
            vec![
                vec![Some(all_users), Some("wazo-all-users-policy".into())],
                vec![
                    Some("wazo_default_admin_group".into()),
                    Some("wazo_default_admin_policy".into())
                ],
            ]
        );
        assert_eq!(
            count(
                &c.s,
                &format!("SELECT count(*) FROM auth_address WHERE tenant_uuid = '{u}'")
            ),
            1
        );
    }
    let addr = sql(
        &c.s.db,
        &format!(
            "SELECT line_1, line_2, city, zip_code FROM auth_address WHERE tenant_uuid = '{uuid}'"
        ),
    );
    assert_eq!(
        addr,
        vec![vec![
            Some("Here".into()),
            None,
            Some("Québec".into()),
            Some("H0H 0H0".into())
        ]]
    );

    // A child of a sub-tenant: Wazo-Tenant selects the parent.
    let sub = c.create_in(Some(&uuid), json!({"name": "subtenant"}));
    assert_eq!(sub["parent_uuid"], json!(uuid));
    assert_eq!(sub["slug"], "subtenant");

    // A contact must be an existing user (of any tenant).
    let user = random_uuid();
    sql(
        &c.s.db,
        &format!("INSERT INTO auth_user (uuid, username, tenant_uuid) VALUES ('{user}', 'contact-user', '{uuid}')"),
    );
    let t = c.create(json!({"contact": user.to_uppercase()}));
    assert_eq!(t["contact"], json!(user));
    let unknown = random_uuid();
    let before = c.tenant_count();
    assert_error(
        &c.post(json!({"contact": unknown, "slug": "nocontact"})),
        404,
        json!({"message": format!("No such user: \"{unknown}\""), "error_id": "unknown-user",
               "details": {"uuid": unknown}, "resource": "users"}),
    );
    assert_eq!(c.tenant_count(), before, "nothing left behind");

    // SQL metacharacters are data.
    let t = c.create(json!({"name": SQL_INJECTION, "phone": "' OR 1=1 --"}));
    assert_eq!(t["name"], SQL_INJECTION);
    assert_eq!(t["slug"], "DROPTABLEa");
    assert_eq!(
        count(
            &c.s,
            "SELECT count(*) FROM auth_tenant WHERE name LIKE '%DROP TABLE%'"
        ),
        1
    );
}

#[test]
fn create_generates_slugs_from_names() {
    let c = ctx();
    assert_eq!(c.create(json!({"name": "My tenant!"}))["slug"], "Mytenant");
    // Taken: 3 random characters.
    let s = str_of(&c.create(json!({"name": "My tenant!"}))["slug"]);
    assert!(s.len() == 3 && s != "Myt", "{s}");
    assert_eq!(
        c.create(json!({"name": "abcdefghijklmnop"}))["slug"],
        "abcdefghij"
    );
    // Nothing usable left of the name: random too (the original stores an empty slug).
    let s = str_of(&c.create(json!({"name": "!!! ---"}))["slug"]);
    assert_eq!(s.len(), 3, "{s}");
    assert!(s
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit()));
    // Slugs are case-sensitive, as the original's unique constraint.
    c.create(json!({"slug": "Case"}));
    assert_eq!(c.create(json!({"slug": "case"}))["slug"], "case");
    // A name of exactly 128 characters is fine; so is a 10-character slug.
    c.create(json!({"name": "n".repeat(128), "slug": "jihgfedcba", "phone": "9".repeat(32)}));
}

#[test]
fn create_validation_errors() {
    let c = ctx();
    let before = c.tenant_count();

    // Bodies that are not JSON objects.
    for body in ["", "{not json", "{\"name\": \"a\"", "\u{0}"] {
        let r = c.raw("POST", "/tenants", None, Some(body.as_bytes()));
        assert_eq!(r.status, 400, "{body:?}: {}", r.body);
        let v = r.json();
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("Failed to decode JSON object"),
            "{}",
            r.body
        );
    }
    let r = c.post(json!({"name": "x".repeat(1_100_000)}));
    assert_eq!(r.status, 413, "{}", r.body);
    let r = c.raw("POST", "/tenants", None, Some(b"{\"name\": \"\xff\xfe\"}"));
    assert_eq!(r.status, 400, "{}", r.body);
    for body in ["[1]", "\"x\"", "42", "true"] {
        assert_invalid(
            &c.raw("POST", "/tenants", None, Some(body.as_bytes())),
            "Invalid input type.",
            json!({"_schema": {"message": "Invalid input type."}}),
        );
    }

    // Field errors: exact bodies.
    let cases: Vec<(Value, &str, Value)> = vec![
        (
            json!({"uuid": "not-a-uuid"}),
            "Not a valid UUID.",
            json!({"uuid": {"message": "Not a valid UUID.", "constraint_id": "type", "constraint": "uuid"}}),
        ),
        (
            json!({"uuid": 42}),
            "Not a valid UUID.",
            json!({"uuid": {"message": "Not a valid UUID.", "constraint_id": "type", "constraint": "uuid"}}),
        ),
        (
            json!({"name": false}),
            "Not a valid string.",
            json!({"name": not_string()}),
        ),
        (
            json!({"name": ""}),
            "Length must be between 1 and 128.",
            json!({"name": length(1, 128)}),
        ),
        (
            json!({"name": "n".repeat(129)}),
            "Length must be between 1 and 128.",
            json!({"name": length(1, 128)}),
        ),
        (
            json!({"name": "x".repeat(60_000)}),
            "Length must be between 1 and 128.",
            json!({"name": length(1, 128)}),
        ),
        (
            json!({"slug": ""}),
            "Length must be between 1 and 10.",
            json!({"slug": length(1, 10)}),
        ),
        (
            json!({"slug": "abcdefghijk"}),
            "Length must be between 1 and 10.",
            json!({"slug": length(1, 10)}),
        ),
        (
            json!({"slug": "a-b"}),
            "String does not match expected pattern.",
            json!({"slug": {"message": "String does not match expected pattern.", "constraint_id": "regex", "constraint": "^[a-zA-Z0-9_]+$"}}),
        ),
        (
            json!({"slug": "a'b"}),
            "String does not match expected pattern.",
            json!({"slug": {"message": "String does not match expected pattern.", "constraint_id": "regex", "constraint": "^[a-zA-Z0-9_]+$"}}),
        ),
        (
            json!({"slug": "abc\n"}),
            "String does not match expected pattern.",
            json!({"slug": {"message": "String does not match expected pattern.", "constraint_id": "regex", "constraint": "^[a-zA-Z0-9_]+$"}}),
        ),
        (
            json!({"slug": 42}),
            "Not a valid string.",
            json!({"slug": not_string()}),
        ),
        (
            json!({"contact": "x"}),
            "Not a valid UUID.",
            json!({"contact": {"message": "Not a valid UUID.", "constraint_id": "type", "constraint": "uuid"}}),
        ),
        (
            json!({"phone": "5".repeat(33)}),
            "Length must be between 1 and 32.",
            json!({"phone": length(1, 32)}),
        ),
        (
            json!({"phone": ["5"]}),
            "Not a valid string.",
            json!({"phone": not_string()}),
        ),
        (
            json!({"address": {"state": ""}}),
            "Length must be between 1 and 128.",
            json!({"address": {"state": length(1, 128)}}),
        ),
        (
            json!({"address": {"line_1": "l".repeat(257)}}),
            "Length must be between 1 and 256.",
            json!({"address": {"line_1": length(1, 256)}}),
        ),
        (
            json!({"address": {"line_2": ""}}),
            "Length must be between 1 and 256.",
            json!({"address": {"line_2": length(1, 256)}}),
        ),
        (
            json!({"address": {"city": 1}}),
            "Not a valid string.",
            json!({"address": {"city": not_string()}}),
        ),
        (
            json!({"address": {"country": "c".repeat(129)}}),
            "Length must be between 1 and 128.",
            json!({"address": {"country": length(1, 128)}}),
        ),
        (
            json!({"address": {"zip_code": "z".repeat(17)}}),
            "Length must be between 1 and 16.",
            json!({"address": {"zip_code": length(1, 16)}}),
        ),
        (
            json!({"address": null}),
            "Field may not be null.",
            json!({"address": not_null()}),
        ),
        (
            json!({"address": "x"}),
            "Invalid input type.",
            json!({"address": {"_schema": {"message": "Invalid input type."}}}),
        ),
        // NUL cannot be stored (the original answers 500).
        (
            json!({"name": "a\u{0}b"}),
            "String must not contain NUL characters.",
            json!({"name": {"message": "String must not contain NUL characters.", "constraint_id": "type", "constraint": "string"}}),
        ),
        // First failing field in the schema's order.
        (
            json!({"address": {"state": ""}, "phone": "", "name": 1}),
            "Not a valid string.",
            json!({"name": not_string()}),
        ),
    ];
    for (body, message, details) in &cases {
        assert_invalid(&c.post(body.clone()), message, details.clone());
    }

    // Domain names (checklist 45).
    for value in [
        json!(["-wazo.io"]),
        json!([" wazo.io"]),
        json!(["#"]),
        json!(["123"]),
        json!(["wazo .io"]),
        json!(["wazo.io-"]),
        json!(["wazo"]),
        json!(["=wazo.io"]),
        json!(["+wazo.io"]),
        json!(["_wazo.io"]),
        json!(["wazo_io"]),
        json!(["wazo_io  "]),
        json!([SQL_INJECTION]),
    ] {
        assert_invalid(
            &c.post(json!({"domain_names": value})),
            "String does not match expected pattern.",
            json!({"domain_names": {"0": bad_domain()}}),
        );
    }
    assert_invalid(
        &c.post(json!({"domain_names": ["ok.io", "wazo"]})),
        "String does not match expected pattern.",
        json!({"domain_names": {"1": bad_domain()}}),
    );
    assert_invalid(
        &c.post(json!({"domain_names": ["ok.io", 123]})),
        "Not a valid string.",
        json!({"domain_names": {"1": not_string()}}),
    );
    assert_invalid(
        &c.post(json!({"domain_names": [null]})),
        "Field may not be null.",
        json!({"domain_names": {"0": not_null()}}),
    );
    assert_invalid(
        &c.post(json!({"domain_names": null})),
        "Field may not be null.",
        json!({"domain_names": not_null()}),
    );
    for value in [
        json!(true),
        json!(false),
        json!("wazo.community"),
        json!(42),
        json!({"name": "wazo.community"}),
    ] {
        assert_invalid(
            &c.post(json!({"domain_names": value})),
            "Not a valid list.",
            json!({"domain_names": not_list()}),
        );
    }
    // Longest accepted: 253 characters.
    let long = format!("{}.{}", "a".repeat(63), "b".repeat(189));
    assert_eq!(long.len(), 253);
    assert_eq!(
        c.create(json!({"domain_names": [long]}))["domain_names"],
        json!([long])
    );
    assert_invalid(
        &c.post(json!({"domain_names": [format!("{long}c")]})),
        "String does not match expected pattern.",
        json!({"domain_names": {"0": bad_domain()}}),
    );

    // Authentication method (checklist 46).
    assert_invalid(
        &c.post(json!({"default_authentication_method": null})),
        "Field may not be null.",
        json!({"default_authentication_method": not_null()}),
    );
    for value in [json!(false), json!(true), json!(42), json!(["native"])] {
        assert_invalid(
            &c.post(json!({"default_authentication_method": value})),
            "Not a valid string.",
            json!({"default_authentication_method": not_string()}),
        );
    }
    for value in ["not-native", "", "NATIVE", SQL_INJECTION] {
        assert_invalid(
            &c.post(json!({"default_authentication_method": value})),
            &format!("Invalid default authentication method {value}"),
            json!({"default_authentication_method": value}),
        );
    }

    assert_eq!(
        c.tenant_count(),
        before + 1,
        "only the 253-character domain tenant"
    );
}

#[test]
fn create_conflicts() {
    let c = ctx();
    let a = c.create(json!({"slug": "dup", "domain_names": VALID_DOMAIN_NAMES_1}));
    let a_uuid = str_of(&a["uuid"]);
    let tenants = c.tenant_count();
    let groups = count(&c.s, "SELECT count(*) FROM auth_group");

    assert_error(
        &c.post(json!({"slug": "dup"})),
        409,
        json!({"message": "Conflict detected", "error_id": "conflict",
               "details": {"slug": {"constraint_id": "unique", "message": "The slug \"dup\" is already used"}},
               "resource": "tenants"}),
    );
    // Domain taken: the message holds the whole (sorted) list, "constraint-id" is hyphenated.
    assert_error(
        &c.post(json!({"slug": "newdom", "domain_names": ["wazo.io", "new.io"]})),
        409,
        json!({"message": "Conflict detected", "error_id": "conflict",
               "details": {"domain_names": {"constraint-id": "unique",
                   "message": "Domain name : \"['new.io', 'wazo.io']\" is already in use, no duplicates allowed"}},
               "resource": "tenants"}),
    );
    assert_error(
        &c.post(json!({"uuid": a_uuid.to_uppercase()})),
        409,
        json!({"message": "Tenant Conflict detected", "error_id": "tenant-identity-conflict",
               "details": {"uuid": {"constraint_id": "unique",
                   "message": format!("A tenant with identity uuid=\"{a_uuid}\" already exists")}},
               "resource": "tenants"}),
    );
    // The uuid of the scoping tenant: there is only one master tenant.
    let master_conflict = json!({"message": "Conflict detected", "error_id": "conflict",
        "details": {"parent_uuid": {"constraint_id": "unique", "msg": "A master tenant already exist"}},
        "resource": "tenants"});
    assert_error(
        &c.post(json!({"uuid": c.top})),
        403,
        master_conflict.clone(),
    );
    assert_error(
        &c.call(
            "POST",
            "/tenants",
            Some(&a_uuid),
            Some(json!({"uuid": a_uuid})),
        ),
        403,
        master_conflict,
    );
    // The top tenant's uuid under another parent is a plain identity conflict.
    assert_eq!(
        c.call(
            "POST",
            "/tenants",
            Some(&a_uuid),
            Some(json!({"uuid": c.top}))
        )
        .status,
        409
    );

    // Nothing left behind by the failed requests.
    assert_eq!(c.tenant_count(), tenants);
    assert_eq!(count(&c.s, "SELECT count(*) FROM auth_group"), groups);
    assert_eq!(
        count(
            &c.s,
            "SELECT count(*) FROM auth_tenant_domain WHERE name = 'new.io'"
        ),
        0
    );

    // Concurrent creations of one slug: exactly one wins, the others get 409 (never 5xx).
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    c.post(json!({"slug": "race", "domain_names": ["race.io"]}))
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
}

// ------------------------------------------------------------------------------------------------
// GET /tenants
// ------------------------------------------------------------------------------------------------

#[test]
fn list_filters_search_order_and_pagination() {
    let c = ctx();
    let foobar =
        c.create(json!({"name": "foobar", "slug": "aaa", "domain_names": VALID_DOMAIN_NAMES_1}));
    let foobaz =
        c.create(json!({"name": "foobaz", "slug": "bbb", "domain_names": VALID_DOMAIN_NAMES_2}));
    let foobarbaz =
        c.create(json!({"name": "foobarbaz", "slug": "ccc", "domain_names": VALID_DOMAIN_NAMES_3}));
    let top = c.get(&format!("/tenants/{}", c.top)).json();
    assert_eq!(top["name"], "master");
    assert_eq!(top["slug"], "master");
    assert_eq!(top["parent_uuid"], json!(c.top));
    assert_eq!(top["default_authentication_method"], "native");
    let (a, b, cc) = (
        str_of(&foobar["uuid"]),
        str_of(&foobaz["uuid"]),
        str_of(&foobarbaz["uuid"]),
    );

    let check = |query: &str, filtered: i64, expected: Vec<&Value>| {
        let r = c.list(query, None);
        assert_eq!(r["total"], 4, "{query}");
        assert_eq!(r["filtered"], filtered, "{query}");
        let expected: Vec<Value> = expected.into_iter().cloned().collect();
        assert_eq!(r["items"], json!(expected), "{query}");
    };
    // Default order: name ascending.
    check("", 4, vec![&foobar, &foobarbaz, &foobaz, &top]);
    check(&format!("?uuid={b}"), 1, vec![&foobaz]);
    check(&format!("?uuids={b}&uuids={a}"), 2, vec![&foobar, &foobaz]);
    check("?slug=ccc", 1, vec![&foobarbaz]);
    check("?name=foobar", 1, vec![&foobar]);
    check("?name=master", 1, vec![&top]);
    check("?domain_name=outlook.fr", 1, vec![&foobarbaz]);
    check("?domain_name=", 4, vec![&foobar, &foobarbaz, &foobaz, &top]);
    check("?search=yahoo", 2, vec![&foobarbaz, &foobaz]);
    check("?search=bar", 2, vec![&foobar, &foobarbaz]);
    check("?search=bbb", 1, vec![&foobaz]);
    check("?search=FOO%20%20BAZ", 2, vec![&foobarbaz, &foobaz]);
    check("?search=", 4, vec![&foobar, &foobarbaz, &foobaz, &top]);
    check("?limit=1&offset=1&order=name", 4, vec![&foobarbaz]);
    check("?offset=10", 4, vec![]);
    check("?limit=0", 4, vec![]);
    check("?order=slug", 4, vec![&foobar, &foobaz, &foobarbaz, &top]);
    check(
        "?order=name&direction=desc",
        4,
        vec![&top, &foobaz, &foobarbaz, &foobar],
    );
    check(
        "?order=slug&direction=desc&limit=2",
        4,
        vec![&top, &foobarbaz],
    );
    check("?search=yahoo&slug=bbb", 1, vec![&foobaz]);
    check("?unknown=1", 4, vec![&foobar, &foobarbaz, &foobaz, &top]);
    // Huge limit.
    check(
        "?limit=9223372036854775807",
        4,
        vec![&foobar, &foobarbaz, &foobaz, &top],
    );

    // SQL metacharacters are matched as data; `%` and `_` are LIKE wildcards as in the original.
    let inj = "%27%3B%20DROP%20TABLE%20auth_tenant%3B%20--";
    check(&format!("?search={inj}"), 0, vec![]);
    check(&format!("?name={inj}"), 0, vec![]);
    check(&format!("?uuid={inj}"), 0, vec![]);
    check(&format!("?uuids={inj}"), 0, vec![]);
    check(&format!("?domain_name={inj}"), 0, vec![]);
    check("?search=%25", 4, vec![&foobar, &foobarbaz, &foobaz, &top]);
    check("?search=_", 4, vec![&foobar, &foobarbaz, &foobaz, &top]);
    check("?search=%5C", 0, vec![]);
    check("?search=a%00b", 0, vec![]);
    check("?name=a%00b", 0, vec![]);
    check("?search=%FF%FE", 0, vec![]);
    assert_eq!(c.tenant_count(), 4);

    // 25 uuids are fine, 26 are not.
    let mut q: Vec<String> = (0..24)
        .map(|_| format!("uuids={}", random_uuid()))
        .collect();
    q.push(format!("uuids={cc}"));
    check(&format!("?{}", q.join("&")), 1, vec![&foobarbaz]);
    q.push(format!("uuids={}", random_uuid()));
    assert_error(
        &c.get(&format!("/tenants?{}", q.join("&"))),
        400,
        json!({"message": {"uuids": [{"constraint_id": "length", "constraint": {"min": null, "max": 25},
                                      "message": "Longer than maximum length 25."}]},
               "error_id": "invalid-list-param", "details": {}, "resource": "users"}),
    );

    for bad in [
        "limit=foo",
        "limit=-1",
        "offset=-1",
        "offset=1.5",
        "order=lol",
        "order=uuid",
        "direction=up",
        "limit=99999999999999999999999",
    ] {
        let r = c.get(&format!("/tenants?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error_id"], "invalid-list-param", "{bad}");
        assert_eq!(v["resource"], "users", "{bad}");
    }

    // Wazo-Tenant selects the root of the listed subtree (always recursive).
    let child = c.create_in(Some(&a), json!({"name": "child"}));
    let grandchild = c.create_in(Some(&str_of(&child["uuid"])), json!({"name": "grandchild"}));
    let r = c.list("", Some(&a));
    assert_eq!(r["total"], 3);
    assert_eq!(r["filtered"], 3);
    assert_eq!(r["items"], json!([child, foobar, grandchild]));
    let r = c.list("?search=foo", Some(&a));
    assert_eq!(
        (r["total"].clone(), r["filtered"].clone()),
        (json!(3), json!(1))
    );
    let r = c.list(&format!("?uuid={b}"), Some(&a));
    assert_eq!(r["items"], json!([]));
    let r = c.list("", Some(&b));
    assert_eq!(r["items"], json!([foobaz]));
    assert_eq!(c.list("", None)["total"], 6);
}

// ------------------------------------------------------------------------------------------------
// PUT /tenants/{uuid}
// ------------------------------------------------------------------------------------------------

#[test]
fn update_replaces_every_field() {
    let c = ctx();
    let t = c.create(json!({
        "name": "before", "slug": "ABC", "phone": "555", "address": address_1(),
        "domain_names": VALID_DOMAIN_NAMES_1, "default_authentication_method": "saml",
    }));
    let u = str_of(&t["uuid"]);
    let other = c.create(json!({"domain_names": VALID_DOMAIN_NAMES_2}));
    let user = random_uuid();
    sql(
        &c.s.db,
        &format!(
            "INSERT INTO auth_user (uuid, username, tenant_uuid) VALUES ('{user}', 'u1', '{u}')"
        ),
    );
    let wazo_io_uuid = one(
        &c.s,
        "SELECT uuid FROM auth_tenant_domain WHERE name = 'wazo.io'",
    );

    // Full replacement: omitted fields take their defaults; slug and uuid are ignored.
    let r = c.put(
        &u,
        json!({"name": "foobar", "address": address_1(), "contact": user,
               "default_authentication_method": "ldap", "domain_names": ["wazo.io", "new.io"],
               "slug": "DEF", "uuid": random_uuid(), "parent_uuid": other["uuid"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let expected = json!({
        "uuid": u, "parent_uuid": c.top, "name": "foobar", "slug": "ABC", "contact": user,
        "phone": null, "default_authentication_method": "ldap",
        "domain_names": ["new.io", "wazo.io"], "address": address_1_full(),
    });
    assert_eq!(r.json(), expected);
    assert_eq!(c.get(&format!("/tenants/{u}")).json(), expected);
    // A kept domain keeps its identity.
    assert_eq!(
        one(
            &c.s,
            "SELECT uuid FROM auth_tenant_domain WHERE name = 'wazo.io'"
        ),
        wazo_io_uuid
    );
    assert_eq!(
        count(
            &c.s,
            "SELECT count(*) FROM auth_tenant_domain WHERE name = 'shopify.ca'"
        ),
        0
    );

    // Errors leave the tenant unchanged.
    let unknown = random_uuid();
    assert_error(
        &c.put(&u, json!({"name": "changed", "contact": unknown})),
        404,
        json!({"message": format!("No such user: \"{unknown}\""), "error_id": "unknown-user",
               "details": {"uuid": unknown}, "resource": "users"}),
    );
    assert_error(
        &c.put(
            &u,
            json!({"name": "changed", "domain_names": ["gmail.com"]}),
        ),
        409,
        json!({"message": "Conflict detected", "error_id": "conflict",
               "details": {"domain_names": {"constraint-id": "unique",
                   "message": "Domain name : \"['gmail.com']\" is already in use, no duplicates allowed"}},
               "resource": "tenants"}),
    );
    assert_invalid(
        &c.put(&u, json!({"name": false})),
        "Not a valid string.",
        json!({"name": not_string()}),
    );
    assert_invalid(
        &c.put(&u, json!({"uuid": "nope"})),
        "Not a valid UUID.",
        json!({"uuid": {"message": "Not a valid UUID.", "constraint_id": "type", "constraint": "uuid"}}),
    );
    assert_invalid(
        &c.put(&u, json!({"address": {"state": ""}})),
        "Length must be between 1 and 128.",
        json!({"address": {"state": length(1, 128)}}),
    );
    assert_invalid(
        &c.put(&u, json!({"default_authentication_method": null})),
        "Field may not be null.",
        json!({"default_authentication_method": not_null()}),
    );
    for value in [json!(false), json!(true), json!(42), json!(["native"])] {
        assert_invalid(
            &c.put(&u, json!({"default_authentication_method": value})),
            "Not a valid string.",
            json!({"default_authentication_method": not_string()}),
        );
    }
    for value in ["not-native", ""] {
        assert_invalid(
            &c.put(&u, json!({"default_authentication_method": value})),
            &format!("Invalid default authentication method {value}"),
            json!({"default_authentication_method": value}),
        );
    }
    let r = c.raw("PUT", &format!("/tenants/{u}"), None, Some(b""));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(c.get(&format!("/tenants/{u}")).json(), expected);

    // Unknown tenant: 404, but the body is validated first.
    let missing = random_uuid();
    assert_error(
        &c.put(&missing, json!({"name": "x"})),
        404,
        unknown_tenant(&missing),
    );
    assert_invalid(
        &c.put(&missing, json!({"name": false})),
        "Not a valid string.",
        json!({"name": not_string()}),
    );

    // `{}` resets everything but the identity.
    let r = c.put(&u, json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"uuid": u, "parent_uuid": c.top, "name": null, "slug": "ABC", "contact": null,
               "phone": null, "default_authentication_method": "native", "domain_names": [],
               "address": address_null()})
    );
    // The top tenant can be edited by its own administrator; a domain freed above can be reused.
    let r = c.put(
        &c.top,
        json!({"name": "master", "domain_names": ["wazo.io"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["domain_names"], json!(["wazo.io"]));
    // A tenant without an address row (created by other means) gets one.
    sql(
        &c.s.db,
        &format!("DELETE FROM auth_address WHERE tenant_uuid = '{u}'"),
    );
    assert_eq!(
        c.get(&format!("/tenants/{u}")).json()["address"],
        address_null()
    );
    let r = c.put(&u, json!({"address": {"city": "Montréal"}}));
    assert_eq!(r.json()["address"]["city"], "Montréal");
    assert_eq!(
        count(
            &c.s,
            &format!("SELECT count(*) FROM auth_address WHERE tenant_uuid = '{u}'")
        ),
        1
    );
}

// ------------------------------------------------------------------------------------------------
// Visibility, DELETE, parent moves, domains
// ------------------------------------------------------------------------------------------------

#[test]
fn scoping_visibility_delete_and_parent_moves() {
    let c = ctx();
    // top ─┬─ a ── b ── cc
    //      └─ d
    let a = str_of(&c.create(json!({"name": "a"}))["uuid"]);
    let b = str_of(&c.create_in(Some(&a), json!({"name": "b"}))["uuid"]);
    let cc = str_of(&c.create_in(Some(&b), json!({"name": "c"}))["uuid"]);
    let d = str_of(&c.create(json!({"name": "d", "domain_names": ["d.io"]}))["uuid"]);

    // Seen from a (Wazo-Tenant): a's subtree only, at any depth.
    let r = c.list("?order=name", Some(&a));
    assert_eq!(
        uuids_of(&r["items"]),
        vec![a.clone(), b.clone(), cc.clone()]
    );
    for (uuid, visible) in [
        (&a, true),
        (&b, true),
        (&cc, true),
        (&d, false),
        (&c.top, false),
    ] {
        let r = c.call("GET", &format!("/tenants/{uuid}"), Some(&a), None);
        if visible {
            assert_eq!(r.status, 200, "{uuid}: {}", r.body);
        } else {
            assert_error(&r, 404, unknown_tenant(uuid));
        }
    }
    assert_error(
        &c.call(
            "PUT",
            &format!("/tenants/{d}"),
            Some(&a),
            Some(json!({"name": "x"})),
        ),
        404,
        unknown_tenant(&d),
    );
    assert_error(
        &c.call("DELETE", &format!("/tenants/{d}"), Some(&a), None),
        404,
        unknown_tenant(&d),
    );
    assert_error(
        &c.call("DELETE", &format!("/tenants/{}", c.top), Some(&a), None),
        404,
        unknown_tenant(&c.top),
    );
    // Unknown, sibling or garbage Wazo-Tenant: 401 unauthorized-tenant.
    for hdr in [
        random_uuid(),
        "not-a-uuid".to_string(),
        SQL_INJECTION.to_string(),
    ] {
        assert_error(
            &c.call("GET", "/tenants", Some(&hdr), None),
            401,
            json!({"message": "Unauthorized tenant", "error_id": "unauthorized-tenant",
                   "details": {"tenant_uuid": hdr}}),
        );
    }
    assert_eq!(c.call("GET", "/tenants", Some(&d), None).json()["total"], 1);
    for (method, path) in [
        ("POST", "/tenants".to_string()),
        ("GET", format!("/tenants/{a}")),
        ("DELETE", format!("/tenants/{b}")),
        ("PUT", format!("/tenants/{b}/parent/{cc}")),
    ] {
        // Uuids are compared as stored (lower case), as the original.
        let body = (method == "POST").then(|| json!({}));
        let r = c.call(method, &path, Some(&d.to_uppercase()), body);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(r.json()["error_id"], "unauthorized-tenant");
    }

    // Deleting the scoping tenant itself: 403, checked before visibility.
    let own = |uuid: &str| {
        json!({"message": format!("Deleting its own tenant is forbidden: \"{uuid}\""),
               "error_id": "deleting-own-tenant-forbidden", "details": {"tenant_uuid": uuid},
               "resource": "tenants"})
    };
    assert_error(
        &c.call("DELETE", &format!("/tenants/{a}"), Some(&a), None),
        403,
        own(&a),
    );
    assert_error(
        &c.call("DELETE", &format!("/tenants/{}", c.top), None, None),
        403,
        own(&c.top),
    );

    // Parent moves: unknown or invisible tenant / parent → 404; loops → 409.
    let mv = |t: &str, p: &str, hdr: Option<&str>| {
        c.call("PUT", &format!("/tenants/{t}/parent/{p}"), hdr, None)
    };
    assert_error(&mv(&d, &b, Some(&a)), 404, unknown_tenant(&d));
    assert_error(&mv(&cc, &d, Some(&a)), 404, unknown_tenant(&d));
    let missing = random_uuid();
    assert_error(&mv(&missing, &a, None), 404, unknown_tenant(&missing));
    assert_error(&mv(&a, &missing, None), 404, unknown_tenant(&missing));
    let conflict = |t: &str, p: &str| {
        json!({"message": format!("Parent ({p}) is a descendent of tenant: \"{t}\""),
               "error_id": "conflict", "details": {"uuid": t, "parent_uuid": p}, "resource": "tenants"})
    };
    assert_error(&mv(&a, &cc, None), 409, conflict(&a, &cc));
    assert_error(&mv(&a, &a, None), 409, conflict(&a, &a));
    assert_error(&mv(&c.top, &a, None), 409, conflict(&c.top, &a));
    assert_error(&mv(&b, &cc, Some(&a)), 409, conflict(&b, &cc));
    assert_eq!(
        c.get(&format!("/tenants/{a}")).json()["parent_uuid"],
        json!(c.top)
    );

    // Delete with a child: 400 (well-formed body), nothing deleted.
    let has_children = |uuid: &str| {
        json!({"message": format!("Unauthorized delete of tenant : \"{uuid}\" ; since it has at least one child"),
               "error_id": "tenant-has-children", "details": {"uuid": uuid}, "resource": "tenants"})
    };
    assert_error(
        &c.call("DELETE", &format!("/tenants/{a}"), None, None),
        400,
        has_children(&a),
    );
    assert_error(
        &c.call("DELETE", &format!("/tenants/{b}"), Some(&a), None),
        400,
        has_children(&b),
    );
    assert_eq!(c.tenant_count(), 5);

    // Moves that work: from the top tenant and from within a subtree.
    let r = mv(&cc, &d, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, "");
    assert_eq!(
        c.get(&format!("/tenants/{cc}")).json()["parent_uuid"],
        json!(d)
    );
    assert_eq!(
        uuids_of(&c.list("?order=name", Some(&a))["items"]),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        uuids_of(&c.list("?order=name", Some(&d))["items"]),
        vec![cc.clone(), d.clone()]
    );
    assert_eq!(mv(&cc, &d, Some(&d)).status, 204, "same parent again");
    let b2 = str_of(&c.create_in(Some(&a), json!({"name": "b2"}))["uuid"]);
    assert_eq!(mv(&b2, &b, Some(&a)).status, 204);
    assert_eq!(
        c.get(&format!("/tenants/{b2}")).json()["parent_uuid"],
        json!(b)
    );
    assert_eq!(mv(&b2, &a, Some(&a)).status, 204);

    // Concurrent opposite moves never build a cycle.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let h1 = scope.spawn(|| mv(&b, &b2, None).status);
        let h2 = scope.spawn(|| mv(&b2, &b, None).status);
        vec![h1.join().unwrap(), h2.join().unwrap()]
    });
    assert!(
        statuses.contains(&204) && statuses.contains(&409),
        "{statuses:?}"
    );

    // Delete a leaf; twice → 404. Everything it owned goes with it.
    let user = random_uuid();
    sql(
        &c.s.db,
        &format!("INSERT INTO auth_user (uuid, username, tenant_uuid) VALUES ('{user}', 'doomed', '{cc}');
                  UPDATE auth_tenant SET contact_uuid = '{user}' WHERE uuid = '{d}'"),
    );
    let r = c.call("DELETE", &format!("/tenants/{cc}"), Some(&d), None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, "");
    assert_error(
        &c.call("DELETE", &format!("/tenants/{cc}"), None, None),
        404,
        unknown_tenant(&cc),
    );
    assert_error(&c.get(&format!("/tenants/{cc}")), 404, unknown_tenant(&cc));
    for table in [
        "auth_user",
        "auth_group",
        "auth_address",
        "auth_tenant_domain",
        "auth_policy",
    ] {
        assert_eq!(
            count(
                &c.s,
                &format!("SELECT count(*) FROM {table} WHERE tenant_uuid = '{cc}'")
            ),
            0,
            "{table}"
        );
    }
    assert_eq!(
        c.get(&format!("/tenants/{d}")).json()["contact"],
        Value::Null
    );
    // d (with its domain) can go now; so can the others, children first (b and b2 are in
    // either order after the race above).
    let b_parent = str_of(&c.get(&format!("/tenants/{b}")).json()["parent_uuid"]);
    let order = if b_parent == b2 {
        [&d, &b, &b2, &a]
    } else {
        [&d, &b2, &b, &a]
    };
    for t in order {
        let r = c.call("DELETE", &format!("/tenants/{t}"), None, None);
        assert_eq!(r.status, 204, "{t}: {}", r.body);
    }
    assert_eq!(c.tenant_count(), 1);
    assert_eq!(
        count(
            &c.s,
            "SELECT count(*) FROM auth_tenant_domain WHERE name = 'd.io'"
        ),
        0
    );
}

#[test]
fn domains_endpoint() {
    let c = ctx();
    let t1 = str_of(&c.create(json!({"domain_names": VALID_DOMAIN_NAMES_1}))["uuid"]);
    let t2 = str_of(&c.create(json!({"domain_names": []}))["uuid"]);
    let r = c.get(&format!("/tenants/{t1}/domains"));
    assert_eq!(r.status, 200, "{}", r.body);
    let shopify = one(
        &c.s,
        "SELECT uuid FROM auth_tenant_domain WHERE name = 'shopify.ca'",
    );
    let wazo = one(
        &c.s,
        "SELECT uuid FROM auth_tenant_domain WHERE name = 'wazo.io'",
    );
    assert_eq!(
        r.json(),
        json!({"total": 2, "items": [{"name": "shopify.ca", "uuid": shopify}, {"name": "wazo.io", "uuid": wazo}]})
    );
    assert_eq!(
        c.get(&format!("/tenants/{t2}/domains")).json(),
        json!({"total": 0, "items": []})
    );
    let missing = random_uuid();
    assert_error(
        &c.get(&format!("/tenants/{missing}/domains")),
        404,
        unknown_tenant(&missing),
    );
    // Unscoped: Wazo-Tenant is ignored, even when invalid or naming another subtree.
    let r = c.call(
        "GET",
        &format!("/tenants/{t1}/domains"),
        Some("garbage"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.call("GET", &format!("/tenants/{t1}/domains"), Some(&t2), None);
    assert_eq!(r.json()["total"], 2);
}

// ------------------------------------------------------------------------------------------------
// Authentication, ACLs and routing
// ------------------------------------------------------------------------------------------------

#[test]
fn authentication_acl_and_routing() {
    let c = ctx();
    let t = str_of(&c.create(json!({"name": "t"}))["uuid"]);
    let p = c.top.clone();
    let routes: Vec<(&str, String, String)> = vec![
        ("GET", "/tenants".into(), "auth.tenants.read".into()),
        ("POST", "/tenants".into(), "auth.tenants.create".into()),
        (
            "GET",
            format!("/tenants/{t}"),
            format!("auth.tenants.{t}.read"),
        ),
        (
            "PUT",
            format!("/tenants/{t}"),
            format!("auth.tenants.{t}.update"),
        ),
        (
            "DELETE",
            format!("/tenants/{t}"),
            format!("auth.tenants.{t}.delete"),
        ),
        (
            "GET",
            format!("/tenants/{t}/domains"),
            format!("auth.tenants.{t}.domains.read"),
        ),
        (
            "PUT",
            format!("/tenants/{t}/parent/{p}"),
            format!("auth.tenants.{t}.parent.{p}.update"),
        ),
    ];
    let alice = alice_token(&c.s);
    for (method, path, acl) in &routes {
        let body: Option<&[u8]> = matches!(*method, "POST" | "PUT").then_some(b"{}");
        let r = c.s.request(method, &format!("/0.1{path}"), &[], body);
        assert_error(
            &r,
            401,
            json!({"message": "Unauthorized", "error_id": "unauthorized",
                   "details": {"invalid_token": "", "reason": "not_found_or_expired", "required_access": acl}}),
        );
        // Uppercase uuids in the path: the required ACL uses the canonical form.
        let upper = path
            .to_uppercase()
            .replace("/TENANTS", "/tenants")
            .replace("/DOMAINS", "/domains")
            .replace("/PARENT", "/parent");
        let body = matches!(*method, "POST" | "PUT").then(|| json!({}));
        let r = call_as(&c.s, &alice, method, &upper, Some(&t), body);
        assert_error(
            &r,
            401,
            json!({"message": "Unauthorized", "error_id": "unauthorized",
                   "details": {"invalid_token": alice, "reason": "missing_permission_or_invalid_tenant",
                               "required_access": acl, "tenant_uuid": t}}),
        );
    }
    // A token granting only `auth.tenants.*.read` reads one tenant, not the list.
    let reader = user_with_acl(&c.s, &c.top, "reader", &["auth.tenants.*.read"]);
    assert_eq!(
        call_as(&c.s, &reader, "GET", &format!("/tenants/{t}"), None, None).status,
        200
    );
    assert_eq!(
        call_as(&c.s, &reader, "GET", "/tenants", None, None).status,
        401
    );
    assert_eq!(
        call_as(
            &c.s,
            &reader,
            "GET",
            &format!("/tenants/{t}/domains"),
            None,
            None
        )
        .status,
        401
    );

    // Non-UUID path parameters: no such route (404), before any token check.
    for path in [
        "/tenants/not-a-uuid".to_string(),
        format!("/tenants/{}", t.replace('-', "")),
        format!("/tenants/{{{t}}}"),
        "/tenants/%27%20OR%201%3D1%20--".to_string(),
        "/tenants/nope/domains".to_string(),
        format!("/tenants/{t}/parent/nope"),
        format!("/tenants/nope/parent/{t}"),
    ] {
        for method in ["GET", "PUT", "DELETE", "PATCH"] {
            let r = c.s.request(method, &format!("/0.1{path}"), &[], None);
            assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        }
    }
    // Uppercase uuids in the path are the same tenant; HEAD answers like GET without a body.
    let r = c.get(&format!("/tenants/{}", t.to_uppercase()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["uuid"], json!(t));
    for path in [
        "/tenants".to_string(),
        format!("/tenants/{t}"),
        format!("/tenants/{t}/domains"),
    ] {
        let r = c.raw("HEAD", &path, None, None);
        assert_eq!((r.status, r.body.as_str()), (200, ""), "HEAD {path}");
    }

    // Unsupported methods on existing routes: 405.
    for (method, path) in [
        ("PATCH", "/tenants".to_string()),
        ("DELETE", "/tenants".to_string()),
        ("POST", format!("/tenants/{t}")),
        ("PUT", format!("/tenants/{t}/domains")),
        ("GET", format!("/tenants/{t}/parent/{p}")),
    ] {
        let r = c.raw(method, &path, None, None);
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
        assert_eq!(
            r.json(),
            json!({"message": "The method is not allowed for the requested URL."})
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Real users of sub-tenants (wazo_user backend)
// ------------------------------------------------------------------------------------------------

#[test]
fn sub_tenant_administrators() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(base_config())
        .start();
    let admin = s.admin_token();
    let top = one(&s, "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid");
    let post = |token: &str, hdr: Option<&str>, body: Value| {
        let r = call_as(&s, token, "POST", "/tenants", hdr, Some(body));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    // top ─┬─ sub ── subsub
    //      └─ sibling
    let sub = post(
        &admin,
        None,
        json!({"name": "sub", "domain_names": ["sub.io"]}),
    );
    let sub_uuid = str_of(&sub["uuid"]);
    let sibling = post(
        &admin,
        None,
        json!({"name": "sibling", "domain_names": ["sibling.io"]}),
    );
    let sib = str_of(&sibling["uuid"]);
    let token = user_with_acl(&s, &sub_uuid, "subadmin", &["#"]);

    // Created by the sub-tenant administrator: a child of its own tenant.
    let subsub = post(&token, None, json!({"name": "subsub"}));
    let subsub_uuid = str_of(&subsub["uuid"]);
    assert_eq!(subsub["parent_uuid"], json!(sub_uuid));

    // It sees itself and its descendants only.
    let r = call_as(&s, &token, "GET", "/tenants", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"total": 2, "filtered": 2, "items": [sub, subsub]})
    );
    let r = call_as(
        &s,
        &token,
        "GET",
        &format!("/tenants/{sub_uuid}"),
        None,
        None,
    );
    assert_eq!(
        r.json(),
        sub,
        "own tenant identical to the creation response"
    );
    for hidden in [&sib, &top] {
        for (method, body) in [
            ("GET", None),
            ("PUT", Some(json!({"name": "x"}))),
            ("DELETE", None),
        ] {
            let r = call_as(
                &s,
                &token,
                method,
                &format!("/tenants/{hidden}"),
                None,
                body,
            );
            assert_error(&r, 404, unknown_tenant(hidden));
        }
    }
    // Its own tenant: readable, editable, not deletable.
    assert_eq!(
        call_as(
            &s,
            &token,
            "PUT",
            &format!("/tenants/{sub_uuid}"),
            None,
            Some(json!({"name": "sub2", "domain_names": ["sub.io"]}))
        )
        .status,
        200
    );
    assert_error(
        &call_as(
            &s,
            &token,
            "DELETE",
            &format!("/tenants/{sub_uuid}"),
            None,
            None,
        ),
        403,
        json!({"message": format!("Deleting its own tenant is forbidden: \"{sub_uuid}\""),
               "error_id": "deleting-own-tenant-forbidden", "details": {"tenant_uuid": sub_uuid},
               "resource": "tenants"}),
    );
    // Wazo-Tenant: its descendants only.
    for hdr in [&top, &sib] {
        assert_error(
            &call_as(&s, &token, "GET", "/tenants", Some(hdr), None),
            401,
            json!({"message": "Unauthorized tenant", "error_id": "unauthorized-tenant", "details": {"tenant_uuid": hdr}}),
        );
        assert_eq!(
            call_as(&s, &token, "POST", "/tenants", Some(hdr), Some(json!({}))).status,
            401
        );
    }
    let r = call_as(&s, &token, "GET", "/tenants", Some(&subsub_uuid), None);
    assert_eq!(r.json()["items"], json!([subsub]));
    // Moves across the boundary: 404 for what it cannot see.
    let mv = |t: &str, p: &str| {
        call_as(
            &s,
            &token,
            "PUT",
            &format!("/tenants/{t}/parent/{p}"),
            None,
            None,
        )
    };
    assert_error(&mv(&subsub_uuid, &sib), 404, unknown_tenant(&sib));
    assert_error(&mv(&sib, &sub_uuid), 404, unknown_tenant(&sib));
    assert_error(&mv(&sub_uuid, &top), 404, unknown_tenant(&top));
    // The domains route is scoped by the token's own tenant (issue 17; the original answers
    // for any existing tenant): a sibling is unknown, its own subtree is readable.
    let r = call_as(
        &s,
        &token,
        "GET",
        &format!("/tenants/{sib}/domains"),
        None,
        None,
    );
    assert_error(&r, 404, unknown_tenant(&sib));
    let r = call_as(
        &s,
        &token,
        "GET",
        &format!("/tenants/{subsub_uuid}/domains"),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // It can delete its descendants; the top administrator can delete it.
    assert_eq!(
        call_as(
            &s,
            &token,
            "DELETE",
            &format!("/tenants/{subsub_uuid}"),
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(
        call_as(
            &s,
            &admin,
            "DELETE",
            &format!("/tenants/{sub_uuid}"),
            None,
            None
        )
        .status,
        204
    );
    // Its token now belongs to a deleted user.
    assert_ne!(
        call_as(&s, &token, "GET", "/tenants", None, None).status,
        200
    );
}
