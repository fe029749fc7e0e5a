//! Black-box tests of the groups area (spec management §7, §9 group/user rows, §1.4–1.6,
//! checklist items 56–62 and 75–78): `/0.1/groups`, `/0.1/groups/{g}`,
//! `/0.1/groups/{g}/users[/{u}]`, `/0.1/users/{u}/groups`.
//!
//! Tenants and users are inserted with SQL (the tenants and users endpoints belong to other
//! areas); tokens come from the `wazo_user` backend.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";
const NO_ROUTE: &str = "The requested URL was not found on the server. If you entered the URL \
                        manually please check your spelling and try again.";

/// PBKDF2 hash and salt of the password "secret" (the original's test vector).
const SECRET_HASH: &str = "b640077187de88c62a80c9aaeac5322f7786c473126922f665b782ee65d1768498db295b28c75bd5359f7475368f0d8b97f21ac993bbb6dff2297adeb7f9e203";
const SECRET_SALT: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

struct Env {
    s: Server,
    /// Token of the bootstrap admin (top tenant, ACL `#`).
    token: String,
    top: String,
}

/// The original's packaged defaults: one default group per tenant, with a default policy.
fn builder() -> ServerBuilder {
    ServerBuilder::new().with_wazo_user().config(json!({
        "default_policies": {"wazo_default_admin_policy": {"acl": ["admin.#"]}},
        "tenant_default_groups": {
            "wazo_default_admin_group": {"policies": {"wazo_default_admin_policy": true}}
        },
    }))
}

fn env() -> Env {
    let s = builder().start();
    let token = s.admin_token();
    let top = one(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    );
    Env { s, token, top }
}

fn one(db: &str, q: &str) -> String {
    sql(db, q)[0][0].clone().unwrap_or_default()
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

impl Env {
    fn call(&self, method: &str, path: &str, tenant: Option<&str>, body: Option<Value>) -> Resp {
        self.s
            .call(method, path, &self.token, tenant, body.as_ref())
    }

    fn as_(&self, token: &str, method: &str, path: &str, tenant: Option<&str>) -> Resp {
        self.s.call(method, path, token, tenant, None)
    }

    fn raw(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        self.s
            .request(method, path, &[("X-Auth-Token", &self.token)], Some(body))
    }

    /// A tenant inserted with SQL, with its all-users group (system-managed).
    fn tenant(&self, parent: &str) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let slug = &uuid.replace('-', "")[..10];
        sql(
            &self.s.db,
            &format!(
                "INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
                 VALUES ('{uuid}', 'tenant-{slug}', '{slug}', '{parent}');
                 INSERT INTO auth_group (name, slug, tenant_uuid, system_managed)
                 VALUES ('wazo-all-users-tenant-{uuid}', 'wazo-all-users-tenant-{uuid}',
                         '{uuid}', true)"
            ),
        );
        uuid
    }

    /// A user (password "secret") inserted with SQL, member of its tenant's all-users group.
    fn user(&self, tenant: &str, username: &str) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        sql(
            &self.s.db,
            &format!(
                "INSERT INTO auth_user (uuid, username, tenant_uuid, purpose, password_hash,
                                        password_salt)
                 VALUES ('{uuid}', '{username}', '{tenant}', 'user', '{SECRET_HASH}',
                         decode('{SECRET_SALT}', 'hex'));
                 INSERT INTO auth_user_group (group_uuid, user_uuid)
                 SELECT uuid, '{uuid}' FROM auth_group
                 WHERE slug = 'wazo-all-users-tenant-{tenant}'"
            ),
        );
        uuid
    }

    fn all_users_group(&self, tenant: &str) -> String {
        one(
            &self.s.db,
            &format!("SELECT uuid FROM auth_group WHERE slug = 'wazo-all-users-tenant-{tenant}'"),
        )
    }

    /// `POST /groups` that must succeed; returns the group.
    fn group(&self, tenant: Option<&str>, body: Value) -> Value {
        let r = self.call("POST", "/0.1/groups", tenant, Some(body));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    fn group_count(&self) -> String {
        one(&self.s.db, "SELECT count(*) FROM auth_group")
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Asserts an API error body (`message`, `error_id`, `details`, `timestamp`[, `resource`]).
fn assert_api(
    r: &Resp,
    status: u16,
    message: Value,
    error_id: &str,
    details: Value,
    resource: Option<&str>,
) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    let mut expected = set(&["message", "error_id", "details", "timestamp"]);
    if resource.is_some() {
        expected.insert("resource".into());
    }
    assert_eq!(keys(&v), expected, "{}", r.body);
    assert_eq!(v["message"], message, "{}", r.body);
    assert_eq!(v["error_id"], error_id, "{}", r.body);
    assert_eq!(v["details"], details, "{}", r.body);
    let t = v["timestamp"].as_f64().expect("timestamp is a number");
    assert!((t - epoch_now()).abs() < 300.0, "{}", r.body);
    if let Some(res) = resource {
        assert_eq!(v["resource"], res, "{}", r.body);
    }
}

/// Asserts a legacy error body `{"reason": [msg], "timestamp": [t], "status_code": n}`.
fn assert_legacy(r: &Resp, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(
        keys(&v),
        set(&["reason", "timestamp", "status_code"]),
        "{}",
        r.body
    );
    assert_eq!(v["reason"], json!([reason]), "{}", r.body);
    assert_eq!(v["status_code"], json!(status), "{}", r.body);
    let t = v["timestamp"][0]
        .as_f64()
        .expect("timestamp[0] is a number");
    assert!((t - epoch_now()).abs() < 300.0, "{}", r.body);
    assert_eq!(v["timestamp"].as_array().unwrap().len(), 1);
}

fn assert_no_route(r: &Resp) {
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json(), json!({ "message": NO_ROUTE }));
}

fn assert_unknown_group(r: &Resp, uuid: &str) {
    assert_api(
        r,
        404,
        json!(format!("No such group: \"{uuid}\"")),
        "unknown-group",
        json!({ "uuid": uuid }),
        Some("groups"),
    );
}

fn assert_unknown_user(r: &Resp, uuid: &str) {
    assert_api(
        r,
        404,
        json!(format!("No such user: \"{uuid}\"")),
        "unknown-user",
        json!({ "uuid": uuid }),
        Some("users"),
    );
}

fn assert_forbidden(r: &Resp, uuid: &str) {
    assert_api(
        r,
        403,
        json!(format!("Forbidden group modification: \"{uuid}\"")),
        "forbidden-group",
        json!({ "uuid": uuid }),
        Some("groups"),
    );
}

fn assert_invalid(r: &Resp, field: &str, message: &str, constraint_id: &str, constraint: Value) {
    assert_api(
        r,
        400,
        json!(message),
        "invalid-data",
        json!({ field: {"message": message, "constraint_id": constraint_id, "constraint": constraint} }),
        Some("groups"),
    );
}

fn assert_list_param(r: &Resp, message: Value) {
    assert_api(
        r,
        400,
        message,
        "invalid-list-param",
        json!({}),
        Some("users"),
    );
}

fn names(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect()
}

fn usernames(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

fn counts(r: &Resp) -> (i64, i64) {
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(keys(&v), set(&["total", "filtered", "items"]), "{}", r.body);
    (
        v["total"].as_i64().unwrap(),
        v["filtered"].as_i64().unwrap(),
    )
}

fn expected_group(uuid: &str, name: &str, slug: &str, tenant: &str, read_only: bool) -> Value {
    json!({"uuid": uuid, "name": name, "slug": slug, "tenant_uuid": tenant,
           "read_only": read_only, "system_managed": read_only})
}

// ------------------------------------------------------------------------------------------------
// /groups and /groups/{g}
// ------------------------------------------------------------------------------------------------

#[test]
fn create_read_update_delete() {
    let e = env();
    let sub = e.tenant(&e.top);

    // Creation: 200 (not 201), exactly the six fields, owner = scoping tenant, slug from name.
    let foobar = e.group(
        None,
        json!({"name": "foobar", "tenant_uuid": sub, "read_only": true}),
    );
    let uuid = foobar["uuid"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&uuid).is_ok());
    assert_eq!(
        foobar,
        expected_group(&uuid, "foobar", "foobar", &e.top, false)
    );
    let r = e.call("GET", &format!("/0.1/groups/{uuid}"), None, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), foobar);
    // Upper-case UUIDs reach the same group.
    let r = e.call(
        "GET",
        &format!("/0.1/groups/{}", uuid.to_uppercase()),
        None,
        None,
    );
    assert_eq!(r.json(), foobar);

    // Slug: disallowed characters stripped, cut to 80; explicit slugs kept as given.
    let g = e.group(None, json!({"name": "Été: my group #1!", "slug": null}));
    assert_eq!(g["slug"], "tmygroup1");
    let long = "x".repeat(128);
    let g = e.group(None, json!({ "name": long }));
    assert_eq!(g["slug"], Value::from("x".repeat(80)));
    let g = e.group(None, json!({"name": "explicit", "slug": "My-Slug_9"}));
    assert_eq!(g["slug"], "My-Slug_9");
    // Nothing left of the name, or the derived slug taken (any case): 3 random [a-z0-9].
    for (name, expect_random) in [("!!!", true), ("FOOBAR", true), ("foo bar", true)] {
        let g = e.group(None, json!({ "name": name }));
        let slug = g["slug"].as_str().unwrap();
        assert_eq!(expect_random, slug.len() == 3, "{name}: {slug}");
        assert!(
            slug.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{slug}"
        );
    }
    // Same slug in another tenant is fine; Wazo-Tenant picks the owner.
    let in_sub = e.group(Some(&sub), json!({"name": "foobar"}));
    assert_eq!(in_sub["slug"], "foobar");
    assert_eq!(in_sub["tenant_uuid"], Value::from(sub.clone()));
    e.group(Some(&sub), json!({"name": "first", "slug": "first"}));
    assert_eq!(e.group(None, json!({"name": "first"}))["slug"], "first");

    // Duplicates: name (case-sensitive) or slug (case-insensitive) in the tenant → 409, nothing
    // written.
    let before = e.group_count();
    let r = e.call("POST", "/0.1/groups", None, Some(json!({"name": "foobar"})));
    assert_legacy(&r, 409, "Group \"foobar\" already exists");
    let r = e.call(
        "POST",
        "/0.1/groups",
        None,
        Some(json!({"name": "another", "slug": "FooBar"})),
    );
    assert_legacy(&r, 409, "Group \"another\" already exists");
    assert_eq!(e.group_count(), before);
    assert_eq!(
        e.group(None, json!({"name": "FOOBAR2", "slug": "x1"}))["name"],
        "FOOBAR2"
    );

    // Invalid bodies (first failing field, name before slug).
    let cases: Vec<(Value, &str, &str, &str, Value)> = vec![
        (
            json!({}),
            "name",
            "Missing data for required field.",
            "required",
            json!("required"),
        ),
        (
            json!({"not name": "foobar"}),
            "name",
            "Missing data for required field.",
            "required",
            json!("required"),
        ),
        (
            json!({"name": null}),
            "name",
            "Field may not be null.",
            "not_null",
            json!("not_null"),
        ),
        (
            json!({"name": 42}),
            "name",
            "Not a valid string.",
            "type",
            json!("string"),
        ),
        (
            json!({"name": ["a"]}),
            "name",
            "Not a valid string.",
            "type",
            json!("string"),
        ),
        (
            json!({"name": ""}),
            "name",
            "Length must be between 1 and 128.",
            "length",
            json!({"min": 1, "max": 128}),
        ),
        (
            json!({ "name": "y".repeat(129) }),
            "name",
            "Length must be between 1 and 128.",
            "length",
            json!({"min": 1, "max": 128}),
        ),
        (
            json!({"name": 1, "slug": "a b"}),
            "name",
            "Not a valid string.",
            "type",
            json!("string"),
        ),
        (
            json!({"name": "ok", "slug": ""}),
            "slug",
            "Length must be between 1 and 80.",
            "length",
            json!({"min": 1, "max": 80}),
        ),
        (
            json!({"name": "ok", "slug": "s".repeat(81)}),
            "slug",
            "Length must be between 1 and 80.",
            "length",
            json!({"min": 1, "max": 80}),
        ),
        (
            json!({"name": "ok", "slug": "a b"}),
            "slug",
            "String does not match expected pattern.",
            "regex",
            json!("^[a-zA-Z0-9_-]+$"),
        ),
        (
            json!({"name": "ok", "slug": "abc\n"}),
            "slug",
            "String does not match expected pattern.",
            "regex",
            json!("^[a-zA-Z0-9_-]+$"),
        ),
        (
            json!({"name": "ok", "slug": 7}),
            "slug",
            "Not a valid string.",
            "type",
            json!("string"),
        ),
        (
            json!({"name": "nul\u{0}"}),
            "name",
            "Not a valid string.",
            "type",
            json!("string"),
        ),
    ];
    for (body, field, message, cid, constraint) in &cases {
        let r = e.call("POST", "/0.1/groups", None, Some(body.clone()));
        assert_invalid(&r, field, message, cid, constraint.clone());
    }
    // Undecodable and non-object bodies.
    for raw in [&b""[..], b"{not json", b"\xff\xfe"] {
        let r = e.raw("POST", "/0.1/groups", raw);
        assert_eq!(r.status, 400, "{}", r.body);
        let v = r.json();
        assert_eq!(keys(&v), set(&["message"]));
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to decode JSON object"));
    }
    for raw in [&b"[1]"[..], b"42", b"\"name\""] {
        let r = e.raw("POST", "/0.1/groups", raw);
        assert_api(
            &r,
            400,
            json!("Invalid input type."),
            "invalid-data",
            json!({"_schema": {"message": "Invalid input type."}}),
            Some("groups"),
        );
    }
    // Falsy bodies are an empty object.
    let r = e.raw("POST", "/0.1/groups", b"null");
    assert_invalid(
        &r,
        "name",
        "Missing data for required field.",
        "required",
        json!("required"),
    );
    assert_eq!(
        e.group_count(),
        (before.parse::<i32>().unwrap() + 1).to_string()
    );

    // SQL metacharacters and unicode are data.
    let g = e.group(None, json!({"name": "'; DROP TABLE auth_group; --"}));
    assert_eq!(g["slug"], "DROPTABLEauth_group--");
    let g = e.group(None, json!({"name": "日本語"}));
    assert_eq!(g["name"], "日本語");
    assert_eq!(g["slug"].as_str().unwrap().len(), 3);

    // GET: unknown → 404; non-UUID → the router's 404 (before authentication).
    assert_unknown_group(
        &e.call("GET", &format!("/0.1/groups/{UNKNOWN}"), None, None),
        UNKNOWN,
    );
    assert_no_route(&e.call("GET", "/0.1/groups/not-a-uuid", None, None));
    assert_no_route(&e.s.request("GET", "/0.1/groups/1234", &[], None));
    assert_no_route(&e.call(
        "PUT",
        "/0.1/groups/' OR 1=1 --",
        None,
        Some(json!({"name": "x"})),
    ));

    // PUT: only the name changes (slug ignored, even invalid); response = the full group.
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{uuid}"),
        None,
        Some(json!({"name": "foobaz", "slug": "DEF", "tenant_uuid": sub})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        expected_group(&uuid, "foobaz", "foobar", &e.top, false)
    );
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{uuid}"),
        None,
        Some(json!({"name": "foobaz", "slug": 42})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = e.call("GET", &format!("/0.1/groups/{uuid}"), None, None);
    assert_eq!(
        r.json(),
        expected_group(&uuid, "foobaz", "foobar", &e.top, false)
    );
    // Renaming to another group's name → 409; to the name it has → 200.
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{uuid}"),
        None,
        Some(json!({"name": "first"})),
    );
    assert_legacy(&r, 409, "Group \"first\" already exists");
    // A name used in another tenant only is fine.
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{uuid}"),
        None,
        Some(json!({"name": "foobar"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for (body, field, message, cid, constraint) in &cases[..7] {
        let r = e.call(
            "PUT",
            &format!("/0.1/groups/{uuid}"),
            None,
            Some(body.clone()),
        );
        assert_invalid(&r, field, message, cid, constraint.clone());
    }
    let r = e.raw("PUT", &format!("/0.1/groups/{uuid}"), b"[1, 2]");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["details"],
        json!({"_schema": {"message": "Invalid input type."}})
    );
    // Unknown group: 404 before validating the body.
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{UNKNOWN}"),
        None,
        Some(json!({"name": 42})),
    );
    assert_unknown_group(&r, UNKNOWN);
    let r = e.raw("PUT", &format!("/0.1/groups/{UNKNOWN}"), b"");
    assert_unknown_group(&r, UNKNOWN);

    // System-managed (all-users) group: PUT and DELETE → 403, even with an invalid PUT body
    // the body is checked first.
    let all_users = e.all_users_group(&e.top);
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{all_users}"),
        None,
        Some(json!({"name": "x"})),
    );
    assert_forbidden(&r, &all_users);
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{all_users}"),
        None,
        Some(json!({"name": 42})),
    );
    assert_eq!(r.status, 400);
    let r = e.call("DELETE", &format!("/0.1/groups/{all_users}"), None, None);
    assert_forbidden(&r, &all_users);
    let r = e.call("GET", &format!("/0.1/groups/{all_users}"), None, None);
    let name = format!("wazo-all-users-tenant-{}", e.top);
    assert_eq!(
        r.json(),
        expected_group(&all_users, &name, &name, &e.top, true)
    );

    // DELETE: 204 with no body, then 404; memberships go with the group.
    let victim = e.group(None, json!({"name": "victim"}));
    let victim = victim["uuid"].as_str().unwrap();
    let admin = one(
        &e.s.db,
        "SELECT uuid FROM auth_user WHERE username = 'admin'",
    );
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{victim}/users/{admin}"),
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = e.call("DELETE", &format!("/0.1/groups/{victim}"), None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, "");
    assert_unknown_group(
        &e.call("DELETE", &format!("/0.1/groups/{victim}"), None, None),
        victim,
    );
    assert_unknown_group(
        &e.call("GET", &format!("/0.1/groups/{victim}"), None, None),
        victim,
    );
    assert_eq!(
        one(
            &e.s.db,
            &format!("SELECT count(*) FROM auth_user_group WHERE group_uuid = '{victim}'")
        ),
        "0"
    );
    // A group of a sub-tenant is visible from the top tenant (no header needed).
    let sub_uuid = in_sub["uuid"].as_str().unwrap();
    let r = e.call("GET", &format!("/0.1/groups/{sub_uuid}"), None, None);
    assert_eq!(r.json(), in_sub);
    let r = e.call("DELETE", &format!("/0.1/groups/{sub_uuid}"), None, None);
    assert_eq!(r.status, 204);

    // Method not allowed on known routes.
    let r = e.call("PATCH", "/0.1/groups", None, None);
    assert_eq!(r.status, 405);
    assert_eq!(
        r.json(),
        json!({"message": "The method is not allowed for the requested URL."})
    );
    assert_eq!(
        e.call("POST", &format!("/0.1/groups/{uuid}"), None, None)
            .status,
        405
    );
    assert_no_route(&e.call("POST", "/0.1/groups/nope", None, None));
}

#[test]
fn authentication_and_tenant_header() {
    let e = env();
    let g = e.group(None, json!({"name": "g"}));
    let g = g["uuid"].as_str().unwrap();
    let user = e.user(&e.top, "someone");

    // No token: 401 with the required access of each route (path values lower-cased).
    let cases = [
        (
            "GET",
            "/0.1/groups".to_string(),
            "auth.groups.read".to_string(),
        ),
        (
            "POST",
            "/0.1/groups".to_string(),
            "auth.groups.create".to_string(),
        ),
        (
            "GET",
            format!("/0.1/groups/{g}"),
            format!("auth.groups.{g}.read"),
        ),
        (
            "PUT",
            format!("/0.1/groups/{}", g.to_uppercase()),
            format!("auth.groups.{g}.update"),
        ),
        (
            "DELETE",
            format!("/0.1/groups/{g}"),
            format!("auth.groups.{g}.delete"),
        ),
        (
            "GET",
            format!("/0.1/groups/{g}/users"),
            format!("auth.groups.{g}.users.read"),
        ),
        (
            "PUT",
            format!("/0.1/groups/{g}/users/{user}"),
            format!("auth.groups.{g}.users.{user}.create"),
        ),
        (
            "DELETE",
            format!("/0.1/groups/{g}/users/{user}"),
            format!("auth.groups.{g}.users.{user}.delete"),
        ),
        (
            "GET",
            format!("/0.1/users/{user}/groups"),
            format!("auth.users.{user}.groups.read"),
        ),
    ];
    for (method, path, acl) in &cases {
        let r = e.s.request(method, path, &[], Some(b"{\"name\": \"x\"}"));
        assert_api(
            &r,
            401,
            json!("Unauthorized"),
            "unauthorized",
            json!({"invalid_token": "", "reason": "not_found_or_expired", "required_access": acl}),
            None,
        );
    }
    // A token without the access: 401 missing_permission_or_invalid_tenant.
    let alice = e.s.alice_token(json!({}));
    for (method, path, acl) in &cases {
        let r = e.s.call(
            method,
            path,
            &alice,
            Some(&e.top),
            Some(&json!({"name": "x"})),
        );
        assert_api(
            &r,
            401,
            json!("Unauthorized"),
            "unauthorized",
            json!({"invalid_token": alice, "reason": "missing_permission_or_invalid_tenant",
                   "required_access": acl, "tenant_uuid": e.top}),
            None,
        );
    }
    // A token granting exactly one group's read.
    let r = e.call("GET", &format!("/0.1/groups/{g}"), None, None);
    assert_eq!(r.status, 200);

    // Wazo-Tenant naming an unknown tenant: 401 unauthorized-tenant (scoped routes only).
    let unauthorized_tenant = |r: &Resp, t: &str| {
        assert_api(
            r,
            401,
            json!("Unauthorized tenant"),
            "unauthorized-tenant",
            json!({ "tenant_uuid": t }),
            None,
        )
    };
    for (method, path, _) in &cases {
        let r = e.call(method, path, Some(UNKNOWN), Some(json!({"name": "y"})));
        // GET /groups/{g}/users is scoped too (issue 17; the original ignores the header there).
        unauthorized_tenant(&r, UNKNOWN);
    }
    unauthorized_tenant(
        &e.call("GET", "/0.1/groups", Some("garbage"), None),
        "garbage",
    );
    // POST validates the body before looking at the tenant.
    let r = e.call("POST", "/0.1/groups", Some(UNKNOWN), Some(json!({})));
    assert_eq!(r.status, 400);
}

#[test]
fn group_listing() {
    let e = env();
    let sub = e.tenant(&e.top);
    let subsub = e.tenant(&sub);
    let top_defaults = names(&e.call("GET", "/0.1/groups", None, None));
    let top_all_users = format!("wazo-all-users-tenant-{}", e.top);
    // The two default groups of every tenant existing at startup (checklist 60).
    assert_eq!(
        top_defaults.iter().cloned().collect::<BTreeSet<_>>(),
        set(&[top_all_users.as_str(), "wazo_default_admin_group"]),
    );
    let r = e.call("GET", "/0.1/groups?read_only=false", None, None);
    assert_eq!(names(&r), ["wazo_default_admin_group"]);
    let n_top = top_defaults.len() as i64;

    let one_ = e.group(Some(&sub), json!({"name": "group-12-one"}));
    let two = e.group(Some(&sub), json!({"name": "group-12-two"}));
    let three = e.group(Some(&sub), json!({"name": "three"}));
    let deep = e.group(Some(&subsub), json!({"name": "deep"}));
    let sub_all_users = format!("wazo-all-users-tenant-{sub}");
    let list = |q: &str| e.call("GET", &format!("/0.1/groups{q}"), Some(&sub), None);

    // Default scope: the scoping tenant only, sorted by name.
    let r = list("");
    assert_eq!(counts(&r), (4, 4));
    assert_eq!(
        names(&r),
        [
            "group-12-one",
            "group-12-two",
            "three",
            sub_all_users.as_str()
        ]
    );
    assert_eq!(r.json()["items"][2], three);
    let r = list("?order=name&direction=desc");
    assert_eq!(
        names(&r),
        [
            sub_all_users.as_str(),
            "three",
            "group-12-two",
            "group-12-one"
        ]
    );
    let r = list("?order=uuid");
    let mut by_uuid: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["uuid"].as_str().unwrap().to_string())
        .collect();
    let sorted = {
        let mut s = by_uuid.clone();
        s.sort();
        s
    };
    assert_eq!(by_uuid, sorted);
    by_uuid.clear();

    // recurse: the visible tenants; from the top without header, the whole tree.
    let r = list("?recurse=true");
    assert_eq!(counts(&r), (6, 6));
    assert!(names(&r).contains(&"deep".to_string()));
    let r = e.call("GET", "/0.1/groups?recurse=true&search=deep", None, None);
    assert_eq!(r.json()["items"], json!([deep]));
    let r = e.call("GET", "/0.1/groups", None, None);
    assert_eq!(counts(&r), (n_top, n_top));
    assert!(!names(&r).contains(&"three".to_string()));

    // Pagination keeps total/filtered.
    let r = list("?limit=1");
    assert_eq!(counts(&r), (4, 4));
    assert_eq!(names(&r), ["group-12-one"]);
    let r = list("?offset=1&limit=2");
    assert_eq!(names(&r), ["group-12-two", "three"]);
    let r = list("?offset=10");
    assert_eq!((counts(&r), names(&r).len()), ((4, 4), 0));
    let r = list("?limit=0");
    assert_eq!(names(&r).len(), 0);

    // Search on the name (words joined with %), case-insensitive; filters exact.
    let r = list("?search=group-12-one");
    assert_eq!(counts(&r), (4, 1));
    assert_eq!(r.json()["items"], json!([one_]));
    assert_eq!(
        names(&list("?search=GROUP-12")),
        ["group-12-one", "group-12-two"]
    );
    assert_eq!(names(&list("?search=grp%2012%20two")), Vec::<String>::new());
    assert_eq!(names(&list("?search=group%20two")), ["group-12-two"]);
    assert_eq!(counts(&list("?search=")), (4, 4));
    assert_eq!(names(&list("?name=three")), ["three"]);
    assert_eq!(names(&list("?name=Three")), Vec::<String>::new());
    assert_eq!(names(&list("?slug=group-12-two")), ["group-12-two"]);
    let uuid_two = two["uuid"].as_str().unwrap();
    assert_eq!(names(&list(&format!("?uuid={uuid_two}"))), ["group-12-two"]);
    assert_eq!(counts(&list("?uuid=not-a-uuid")), (4, 0));
    assert_eq!(names(&list("?read_only=true")), [sub_all_users.as_str()]);
    assert_eq!(
        names(&list("?read_only=false")),
        ["group-12-one", "group-12-two", "three"]
    );
    assert_eq!(counts(&list("?read_only=false")), (4, 3));
    // Unknown parameters are ignored; tenant_uuid is not a filter.
    assert_eq!(
        counts(&list(&format!("?foo=bar&tenant_uuid={}", e.top))),
        (4, 4)
    );

    // user_uuid: groups the user belongs to.
    let u = e.user(&sub, "member");
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{}/users/{u}", three["uuid"].as_str().unwrap()),
        None,
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        names(&list(&format!("?user_uuid={u}"))),
        ["three", sub_all_users.as_str()]
    );

    // policy_uuid / policy_slug: groups holding the policy (exact slug); empty = no filter.
    sql(
        &e.s.db,
        &format!(
            "INSERT INTO auth_policy (uuid, name, slug, tenant_uuid)
             VALUES ('11111111-2222-4333-8444-555555555555', 'Pol', 'Pol-Slug', '{sub}');
             INSERT INTO auth_group_policy (group_uuid, policy_uuid)
             VALUES ('{}', '11111111-2222-4333-8444-555555555555')",
            one_["uuid"].as_str().unwrap()
        ),
    );
    let r = list("?policy_uuid=11111111-2222-4333-8444-555555555555");
    assert_eq!(counts(&r), (4, 1));
    assert_eq!(r.json()["items"], json!([one_]));
    assert_eq!(names(&list("?policy_slug=Pol-Slug")), ["group-12-one"]);
    assert_eq!(names(&list("?policy_slug=pol-slug")), Vec::<String>::new());
    assert_eq!(counts(&list("?policy_slug=")), (4, 4));
    assert_eq!(counts(&list("?policy_uuid=&search=three")), (4, 1));

    // Hostile values are data.
    for q in [
        "?name=%27%3B%20DROP%20TABLE%20auth_group%3B%20--",
        "?search=%27%20OR%201%3D1%20--",
        "?name=%00",
        "?search=a%00b",
        "?user_uuid=%00",
        "?policy_slug=%00",
        "?slug=%FF%FE",
        "?search=%5C",
    ] {
        let r = list(q);
        assert_eq!(counts(&r), (4, 0), "{q}");
    }
    let r = list(&format!("?name={}", "a".repeat(5000)));
    assert_eq!(counts(&r), (4, 0));

    // Sort columns: slug and read_only pass the schema but not the storage → 400 legacy;
    // anything else → 400 invalid-list-param.
    assert_legacy(&list("?order=slug"), 400, "Invalid sort column: slug");
    assert_legacy(
        &list("?order=read_only&direction=desc"),
        400,
        "Invalid sort column: read_only",
    );
    assert_list_param(
        &list("?order=lol"),
        json!({"order": ["Must be one of: name, slug, uuid, read_only."]}),
    );
    assert_list_param(
        &list("?direction=up"),
        json!({"direction": ["Must be one of: asc, desc."]}),
    );
    assert_list_param(
        &list("?limit=not%20a%20number"),
        json!({"limit": ["Not a valid integer."]}),
    );
    assert_list_param(
        &list("?offset=-1"),
        json!({"offset": ["Must be greater than or equal to 0."]}),
    );
    assert_list_param(
        &list("?recurse=maybe"),
        json!({"recurse": ["Not a valid boolean."]}),
    );
    assert_list_param(
        &list("?read_only=maybe"),
        json!({"read_only": ["Not a valid boolean."]}),
    );
    // Order of checks: list params (400) → tenant (401) → sort column (400 legacy).
    let r = e.call("GET", "/0.1/groups?order=lol", Some(UNKNOWN), None);
    assert_eq!(r.status, 400);
    let r = e.call("GET", "/0.1/groups?order=slug", Some(UNKNOWN), None);
    assert_eq!(r.status, 401);
}

// ------------------------------------------------------------------------------------------------
// Memberships
// ------------------------------------------------------------------------------------------------

#[test]
fn memberships() {
    let e = env();
    let t1 = e.tenant(&e.top);
    let t2 = e.tenant(&e.top);
    let u1 = e.user(&t1, "user-one");
    let u2 = e.user(&t1, "user-two");
    let u3 = e.user(&t2, "user-three");
    let g = e.group(Some(&t1), json!({"name": "g"}));
    let g = g["uuid"].as_str().unwrap().to_string();
    let all_users_t2 = e.all_users_group(&t2);
    let member = |g: &str, u: &str| format!("/0.1/groups/{g}/users/{u}");
    let members = |g: &str| e.call("GET", &format!("/0.1/groups/{g}/users"), None, None);

    // PUT: idempotent 204 with no body.
    for _ in 0..2 {
        let r = e.call("PUT", &member(&g, &u1), None, None);
        assert_eq!((r.status, r.body.as_str()), (204, ""));
    }
    // The user representation of the users area.
    let r = members(&g);
    assert_eq!(counts(&r), (1, 1));
    assert_eq!(
        r.json()["items"],
        json!([{"uuid": u1, "username": "user-one", "firstname": null, "lastname": null,
                "purpose": "user", "enabled": true, "tenant_uuid": t1,
                "authentication_method": "default", "emails": []}])
    );

    // Unknown user (checked first), unknown group; upper-case path UUIDs are the same.
    assert_unknown_user(
        &e.call("PUT", &member(UNKNOWN, UNKNOWN), None, None),
        UNKNOWN,
    );
    assert_unknown_user(&e.call("PUT", &member(&g, UNKNOWN), None, None), UNKNOWN);
    assert_unknown_group(&e.call("PUT", &member(UNKNOWN, &u1), None, None), UNKNOWN);
    let r = e.call(
        "PUT",
        &member(&g.to_uppercase(), &u2.to_uppercase()),
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_no_route(&e.call("PUT", &member(&g, "not-a-uuid"), None, None));
    assert_no_route(&e.call("PUT", &member("not-a-uuid", &u1), None, None));

    // Users and groups of different tenants.
    let r = e.call("PUT", &member(&g, &u3), None, None);
    assert_api(
        &r,
        400,
        json!("Ressources are not in the same tenant"),
        "missmatching-tenant",
        json!({"user_tenant_uuid": t2, "group_tenant_uuid": t1}),
        Some("groups"),
    );
    // System-managed group: 403 (after the tenant check).
    assert_forbidden(
        &e.call("PUT", &member(&all_users_t2, &u3), None, None),
        &all_users_t2,
    );
    assert_eq!(
        e.call("PUT", &member(&all_users_t2, &u1), None, None)
            .status,
        400
    );
    assert_forbidden(
        &e.call("DELETE", &member(&all_users_t2, &u3), None, None),
        &all_users_t2,
    );
    assert_forbidden(
        &e.call("DELETE", &member(&all_users_t2, UNKNOWN), None, None),
        &all_users_t2,
    );
    assert_eq!(counts(&members(&all_users_t2)), (1, 1));

    // DELETE: idempotent; unknown group → 404; unknown user (not a member) → 404.
    for _ in 0..2 {
        let r = e.call("DELETE", &member(&g, &u2), None, None);
        assert_eq!((r.status, r.body.as_str()), (204, ""));
    }
    // A user of another tenant that is not a member: 204.
    assert_eq!(e.call("DELETE", &member(&g, &u3), None, None).status, 204);
    assert_unknown_user(&e.call("DELETE", &member(&g, UNKNOWN), None, None), UNKNOWN);
    assert_unknown_group(
        &e.call("DELETE", &member(UNKNOWN, &u1), None, None),
        UNKNOWN,
    );
    assert_unknown_group(
        &e.call("DELETE", &member(UNKNOWN, UNKNOWN), None, None),
        UNKNOWN,
    );
    let r = members(&g);
    assert_eq!(counts(&r), (1, 1));
    assert_eq!(r.json()["items"][0]["uuid"], Value::from(u1.clone()));

    // GET /groups/{unknown}/users: 404 unknown-group (issue 17; the original answers 200,
    // empty).
    assert_unknown_group(&members(UNKNOWN), UNKNOWN);
    assert_no_route(&e.call("GET", "/0.1/groups/xyz/users", None, None));

    // A deleted user leaves the group.
    sql(
        &e.s.db,
        &format!("DELETE FROM auth_user WHERE uuid = '{u1}'"),
    );
    assert_eq!(counts(&members(&g)), (0, 0));
    assert_unknown_user(&e.call("PUT", &member(&g, &u1), None, None), &u1);
}

#[test]
fn member_and_user_group_lists() {
    let e = env();
    let t = e.tenant(&e.top);
    let foo = e.user(&t, "foo");
    let bar = e.user(&t, "bar");
    let baz = e.user(&t, "baz");
    let ignored = e.user(&t, "ignored");
    sql(
        &e.s.db,
        &format!(
            "UPDATE auth_user SET firstname = 'Bob', lastname = 'Smith', purpose = 'internal',
                                  enabled = false WHERE uuid = '{bar}';
             INSERT INTO auth_email (uuid, address, main, confirmed, user_uuid)
             VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'bar@example.com', true, true, '{bar}'),
                    ('aaaaaaaa-0000-4000-8000-000000000002', 'other@site.org', false, false, '{bar}')"
        ),
    );
    let g = e.group(Some(&t), json!({"name": "mygroup"}));
    let g = g["uuid"].as_str().unwrap().to_string();
    for u in [&foo, &bar, &baz] {
        let r = e.call("PUT", &format!("/0.1/groups/{g}/users/{u}"), None, None);
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let list = |q: &str| e.call("GET", &format!("/0.1/groups/{g}/users{q}"), None, None);

    let r = list("");
    assert_eq!(counts(&r), (3, 3));
    assert_eq!(usernames(&r), ["bar", "baz", "foo"]);
    assert_eq!(
        r.json()["items"][0],
        json!({"uuid": bar, "username": "bar", "firstname": "Bob", "lastname": "Smith",
               "purpose": "internal", "enabled": false, "tenant_uuid": t,
               "authentication_method": "default",
               "emails": [
                   {"uuid": "aaaaaaaa-0000-4000-8000-000000000001", "address": "bar@example.com",
                    "main": true, "confirmed": true},
                   {"uuid": "aaaaaaaa-0000-4000-8000-000000000002", "address": "other@site.org",
                    "main": false, "confirmed": false}]})
    );
    assert_eq!(
        usernames(&list("?order=username&direction=desc")),
        ["foo", "baz", "bar"]
    );
    let r = list("?search=ba");
    assert_eq!(counts(&r), (3, 2));
    assert_eq!(usernames(&r), ["bar", "baz"]);
    assert_eq!(usernames(&list("?search=SMI")), ["bar"]);
    assert_eq!(usernames(&list("?search=site.org")), ["bar"]);
    // Each column alone: not across firstname and lastname ("Bob", "Smith").
    assert_eq!(usernames(&list("?search=bob%20smi")), Vec::<String>::new());
    assert_eq!(usernames(&list("?search=smi%20th")), ["bar"]);
    // A backslash escapes the next character (here `%`: a literal "%" at the end): a firstname
    // that ends with "ba%" is found (and the users' search lines, where the firstname is
    // followed by the other texts, are not read for such a pattern).
    assert_eq!(usernames(&list("?search=ba%5C")), Vec::<String>::new());
    sql(
        &e.s.db,
        &format!("UPDATE auth_user SET firstname = 'Rumba%' WHERE uuid = '{foo}'"),
    );
    assert_eq!(usernames(&list("?search=ba%5C")), ["foo"]);
    sql(
        &e.s.db,
        &format!("UPDATE auth_user SET firstname = NULL WHERE uuid = '{foo}'"),
    );
    assert_eq!(usernames(&list("?username=foo")), ["foo"]);
    assert_eq!(usernames(&list("?firstname=Bob")), ["bar"]);
    assert_eq!(
        usernames(&list("?lastname=Smith&purpose=internal")),
        ["bar"]
    );
    assert_eq!(usernames(&list("?purpose=user")), ["baz", "foo"]);
    assert_eq!(usernames(&list("?email_address=other@site.org")), ["bar"]);
    assert_eq!(
        usernames(&list("?email_address=OTHER@site.org")),
        Vec::<String>::new()
    );
    assert_eq!(usernames(&list(&format!("?uuid={foo}"))), ["foo"]);
    assert_eq!(
        usernames(&list(&format!("?uuid={ignored}"))),
        Vec::<String>::new()
    );
    // group_uuid narrows to members of that group too (the original fails with 500).
    let all_users = e.all_users_group(&t);
    assert_eq!(counts(&list(&format!("?group_uuid={all_users}"))), (3, 3));
    assert_eq!(counts(&list(&format!("?group_uuid={UNKNOWN}"))), (3, 0));
    let r = list("?order=username&offset=1");
    assert_eq!(
        (counts(&r), usernames(&r)),
        ((3, 3), vec!["baz".to_string(), "foo".to_string()])
    );
    assert_eq!(usernames(&list("?limit=2")), ["bar", "baz"]);
    assert_eq!(counts(&list("?recurse=true")), (3, 3));
    assert_eq!(counts(&list("?username=%00&search=%27")), (3, 0));
    assert_list_param(
        &list("?order=firstname"),
        json!({"order": ["Must be one of: username."]}),
    );
    assert_list_param(
        &list("?limit=-3"),
        json!({"limit": ["Must be greater than or equal to 0."]}),
    );
    // The all-users group lists every user of its tenant.
    let r = e.call("GET", &format!("/0.1/groups/{all_users}/users"), None, None);
    assert_eq!(usernames(&r), ["bar", "baz", "foo", "ignored"]);

    // Same representation as the users resource, for a user made through POST /users.
    let r = e.call(
        "POST",
        "/0.1/users",
        Some(&t),
        Some(json!({"username": "made", "firstname": "M", "email_address": "m@example.com"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let made = r.json();
    let made_uuid = made["uuid"].as_str().unwrap();
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{g}/users/{made_uuid}"),
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = list("?username=made");
    assert_eq!(r.json()["items"], json!([made]));
    let r = e.call("GET", &format!("/0.1/users/{made_uuid}"), None, None);
    assert_eq!(r.json(), made);
    let r = e.call(
        "DELETE",
        &format!("/0.1/groups/{g}/users/{made_uuid}"),
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);

    // GET /users/{u}/groups: the user's groups, the all-users group included.
    let mut groups = Vec::new();
    for name in ["group-foo", "group-bar", "group-baz", "ignored"] {
        groups.push(e.group(Some(&t), json!({ "name": name })));
    }
    for gr in &groups[..3] {
        let r = e.call(
            "PUT",
            &format!("/0.1/groups/{}/users/{foo}", gr["uuid"].as_str().unwrap()),
            None,
            None,
        );
        assert_eq!(r.status, 204);
    }
    let ul = |q: &str| e.call("GET", &format!("/0.1/users/{foo}/groups{q}"), None, None);
    let t_all = format!("wazo-all-users-tenant-{t}");
    let r = ul("");
    assert_eq!(counts(&r), (5, 5));
    assert_eq!(
        names(&r),
        [
            "group-bar",
            "group-baz",
            "group-foo",
            "mygroup",
            t_all.as_str()
        ]
    );
    assert_eq!(r.json()["items"][2], groups[0]);
    let r = ul("?search=group-ba");
    assert_eq!(
        (counts(&r), names(&r)),
        (
            (5, 2),
            vec!["group-bar".to_string(), "group-baz".to_string()]
        )
    );
    assert_eq!(names(&ul("?name=group-foo")), ["group-foo"]);
    assert_eq!(names(&ul(&format!("?uuid={g}"))), ["mygroup"]);
    assert_eq!(
        names(&ul("?order=name&direction=desc&limit=2")),
        [t_all.as_str(), "mygroup"]
    );
    let r = ul("?order=name&offset=3");
    assert_eq!(
        (counts(&r), names(&r)),
        ((5, 5), vec!["mygroup".to_string(), t_all.clone()])
    );
    assert_eq!(counts(&ul("?order=uuid")), (5, 5));
    // Filters the schema does not know are ignored; user_uuid narrows (the original 500s).
    assert_eq!(counts(&ul("?read_only=true&slug=x")), (5, 5));
    assert_eq!(
        names(&ul(&format!("?user_uuid={bar}"))),
        ["mygroup", t_all.as_str()]
    );
    assert_list_param(
        &ul("?order=slug"),
        json!({"order": ["Must be one of: name, uuid."]}),
    );
    assert_unknown_user(
        &e.call("GET", &format!("/0.1/users/{UNKNOWN}/groups"), None, None),
        UNKNOWN,
    );
    // Unknown user before invalid list params.
    assert_unknown_user(
        &e.call(
            "GET",
            &format!("/0.1/users/{UNKNOWN}/groups?limit=x"),
            None,
            None,
        ),
        UNKNOWN,
    );
    assert_no_route(&e.call("GET", "/0.1/users/me/groups", None, None));
    let r = e.call("GET", &format!("/0.1/users/{ignored}/groups"), None, None);
    assert_eq!(names(&r), [t_all.as_str()]);
}

// ------------------------------------------------------------------------------------------------
// Sub-tenant callers
// ------------------------------------------------------------------------------------------------

#[test]
fn subtenant_caller_sees_only_its_tree() {
    let e = env();
    let sub = e.tenant(&e.top);
    let subsub = e.tenant(&sub);
    let other = e.tenant(&e.top);
    // A sub-tenant administrator: a user of `sub` with the master policy (ACL '#').
    let sub_admin = e.user(&sub, "sub-admin");
    sql(
        &e.s.db,
        &format!(
            "INSERT INTO auth_user_policy (user_uuid, policy_uuid)
             SELECT '{sub_admin}', uuid FROM auth_policy
             WHERE slug = 'wazo_default_master_user_policy'"
        ),
    );
    let token = e.s.user_token("sub-admin", "secret");
    let top_user = e.user(&e.top, "top-user");
    let subsub_user = e.user(&subsub, "subsub-user");
    let other_user = e.user(&other, "other-user");

    let g_top = e.group(None, json!({"name": "top-group"}));
    let g_top = g_top["uuid"].as_str().unwrap();
    let g_other = e.group(Some(&other), json!({"name": "other-group"}));
    let g_other = g_other["uuid"].as_str().unwrap();
    let g_subsub = e.group(Some(&subsub), json!({"name": "subsub-group"}));
    let g_sub = e.group(Some(&sub), json!({"name": "sub-group"}));
    let g_sub = g_sub["uuid"].as_str().unwrap();
    let s = |m: &str, p: String, t: Option<&str>| e.as_(&token, m, &p, t);
    let sb = |m: &str, p: String, body: Value| e.s.call(m, &p, &token, None, Some(&body));

    // Not visible: 404 (never 403), also for an invalid PUT body.
    for g in [g_top, g_other] {
        assert_unknown_group(&s("GET", format!("/0.1/groups/{g}"), None), g);
        assert_unknown_group(
            &sb("PUT", format!("/0.1/groups/{g}"), json!({"name": "x"})),
            g,
        );
        assert_unknown_group(
            &sb("PUT", format!("/0.1/groups/{g}"), json!({"name": 42})),
            g,
        );
        assert_unknown_group(&s("DELETE", format!("/0.1/groups/{g}"), None), g);
    }
    let top_all_users = e.all_users_group(&e.top);
    assert_unknown_group(
        &s("DELETE", format!("/0.1/groups/{top_all_users}"), None),
        &top_all_users,
    );
    assert_eq!(
        e.call("GET", &format!("/0.1/groups/{g_top}"), None, None)
            .status,
        200
    );
    // Visible: own and descendants.
    let r = s(
        "GET",
        format!("/0.1/groups/{}", g_subsub["uuid"].as_str().unwrap()),
        None,
    );
    assert_eq!(r.json(), g_subsub);

    // Creation: in its own tenant, or a descendant with Wazo-Tenant; never an ancestor.
    let r = sb("POST", "/0.1/groups".into(), json!({"name": "mine"}));
    assert_eq!(r.json()["tenant_uuid"], Value::from(sub.clone()));
    let r = e.s.call(
        "POST",
        "/0.1/groups",
        &token,
        Some(&subsub),
        Some(&json!({"name": "mine"})),
    );
    assert_eq!(r.json()["tenant_uuid"], Value::from(subsub.clone()));
    for t in [&e.top, &other] {
        let r = e.s.call(
            "POST",
            "/0.1/groups",
            &token,
            Some(t),
            Some(&json!({"name": "n"})),
        );
        assert_api(
            &r,
            401,
            json!("Unauthorized tenant"),
            "unauthorized-tenant",
            json!({"tenant_uuid": t}),
            None,
        );
    }

    // Lists: own tenant; recurse adds descendants; never ancestors or siblings.
    let r = s("GET", "/0.1/groups".into(), None);
    let sub_all = format!("wazo-all-users-tenant-{sub}");
    assert_eq!(names(&r), ["mine", "sub-group", sub_all.as_str()]);
    let r = s("GET", "/0.1/groups?recurse=true".into(), None);
    assert_eq!(counts(&r), (6, 6));
    assert!(!names(&r)
        .iter()
        .any(|n| n == "top-group" || n == "other-group"));
    let r = s("GET", "/0.1/groups?recurse=true".into(), Some(&subsub));
    assert_eq!(counts(&r), (3, 3));

    // Memberships: the user must be visible (404 unknown-user) before the group (404).
    let member = |g: &str, u: &str| format!("/0.1/groups/{g}/users/{u}");
    assert_unknown_user(&s("PUT", member(g_sub, &top_user), None), &top_user);
    assert_unknown_user(&s("PUT", member(g_top, &top_user), None), &top_user);
    assert_unknown_group(&s("PUT", member(g_top, &sub_admin), None), g_top);
    assert_unknown_user(&s("PUT", member(g_other, &other_user), None), &other_user);
    // Visible but different tenants.
    assert_eq!(s("PUT", member(g_sub, &subsub_user), None).status, 400);
    assert_eq!(s("PUT", member(g_sub, &sub_admin), None).status, 204);
    // Removing: a non-visible non-member user is unknown, as an unknown one (issue 17; the
    // original answers 204).
    assert_unknown_user(&s("DELETE", member(g_sub, &top_user), None), &top_user);
    assert_unknown_group(&s("DELETE", member(g_top, &sub_admin), None), g_top);
    assert_eq!(s("DELETE", member(g_sub, &sub_admin), None).status, 204);

    // GET /users/{u}/groups: the user must be visible.
    assert_unknown_user(
        &s("GET", format!("/0.1/users/{top_user}/groups"), None),
        &top_user,
    );
    assert_unknown_user(
        &s("GET", format!("/0.1/users/{other_user}/groups"), None),
        &other_user,
    );
    let r = s("GET", format!("/0.1/users/{subsub_user}/groups"), None);
    assert_eq!(names(&r), [format!("wazo-all-users-tenant-{subsub}")]);
    let r = s(
        "GET",
        format!("/0.1/users/{subsub_user}/groups"),
        Some(&e.top),
    );
    assert_eq!(r.status, 401);
    // GET /groups/{g}/users is scoped (issue 17; the original lists any group's members).
    let r = s("GET", format!("/0.1/groups/{top_all_users}/users"), None);
    assert_unknown_group(&r, &top_all_users);
}

#[test]
fn default_groups_are_editable_and_restored_on_restart() {
    let mut e = env();
    let r = e.call(
        "GET",
        "/0.1/groups?slug=wazo_default_admin_group",
        None,
        None,
    );
    assert_eq!(counts(&r), (2, 1));
    let admin_group = r.json()["items"][0].clone();
    assert_eq!(admin_group["read_only"], false);
    let uuid = admin_group["uuid"].as_str().unwrap().to_string();
    // Not system-managed: members can be added, the group renamed and deleted.
    let admin = one(
        &e.s.db,
        "SELECT uuid FROM auth_user WHERE username = 'admin'",
    );
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{uuid}/users/{admin}"),
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{uuid}"),
        None,
        Some(json!({"name": "renamed"})),
    );
    assert_eq!(r.json()["slug"], "wazo_default_admin_group");
    let r = e.call("DELETE", &format!("/0.1/groups/{uuid}"), None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(counts(&e.call("GET", "/0.1/groups", None, None)), (1, 1));

    // Restart on the same database: the default group is back, with its policy.
    let db = e.s.db.clone();
    e.s.stop();
    e.s = builder().database(&db).start();
    e.token = e.s.admin_token();
    let r = e.call(
        "GET",
        "/0.1/groups?slug=wazo_default_admin_group",
        None,
        None,
    );
    assert_eq!(counts(&r), (2, 1));
    let restored = r.json()["items"][0].clone();
    assert_ne!(restored["uuid"], Value::from(uuid));
    let policies = one(
        &db,
        &format!(
            "SELECT string_agg(p.slug, ',') FROM auth_group_policy gp
             JOIN auth_policy p ON p.uuid = gp.policy_uuid WHERE gp.group_uuid = '{}'",
            restored["uuid"].as_str().unwrap()
        ),
    );
    assert_eq!(policies, "wazo_default_admin_policy");
}
