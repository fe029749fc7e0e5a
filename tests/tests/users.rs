//! Black-box tests of the users area (spec management §2, §4 password change, §1.4–1.6,
//! checklist items 1–26 that do not involve events, e-mail confirmation, reset or registration;
//! core §2.4, §2.5, §3.4): `/0.1/users`, `/0.1/users/{uuid}`, `/0.1/users/{uuid}/password`.

use std::collections::BTreeSet;
use std::sync::Barrier;

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

// ------------------------------------------------------------------------------------------------
// Local helpers
// ------------------------------------------------------------------------------------------------

const USER_KEYS: [&str; 9] = [
    "authentication_method",
    "emails",
    "enabled",
    "firstname",
    "lastname",
    "purpose",
    "tenant_uuid",
    "username",
    "uuid",
];
const UNKNOWN_UUID: &str = "00000000-0000-4000-8000-000000000000";

/// A server (backends `wazo_user` and `example_static`) plus a token with ACL `#` of the
/// bootstrap administrator of the top tenant.
struct Env {
    s: Server,
    root: String,
    top: String,
}

fn env() -> Env {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"plugin_config": {"example_static": {"users": [
            {"login": "alice", "password": "alice-secret", "acl": ["confd.#", "auth.users.me.#"]},
        ]}}}))
        .start();
    let root = s.admin_token();
    let top = sql(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0][0]
        .clone()
        .unwrap();
    Env { s, root, top }
}

impl Env {
    /// A request with the root token.
    fn call(&self, method: &str, path: &str, tenant: Option<&str>, body: Option<Value>) -> Resp {
        self.s.call(method, path, &self.root, tenant, body.as_ref())
    }

    fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.s.call(method, path, token, tenant, body.as_ref())
    }

    /// POST /users that must succeed; returns the user object.
    fn new_user(&self, tenant: Option<&str>, body: Value) -> Value {
        let r = self.call("POST", "/0.1/users", tenant, Some(body.clone()));
        assert_eq!(r.status, 200, "POST /users {body}: {}", r.body);
        let user = r.json();
        assert_user_shape(&user);
        user
    }

    /// POST /tenants (child of `parent`, else of the top tenant); returns the tenant uuid.
    fn new_tenant(&self, parent: Option<&str>, name: &str) -> String {
        let r = self.call(
            "POST",
            "/0.1/tenants",
            parent,
            Some(json!({ "name": name })),
        );
        assert_eq!(r.status, 200, "POST /tenants: {}", r.body);
        r.json()["uuid"].as_str().unwrap().to_string()
    }

    /// A policy of `tenant` granting `acl`, attached directly to `user`.
    fn grant(&self, tenant: &str, user: &str, name: &str, acl: &[&str]) -> String {
        let r = self.call(
            "POST",
            "/0.1/policies",
            Some(tenant),
            Some(json!({"name": name, "acl": acl})),
        );
        assert_eq!(r.status, 200, "POST /policies: {}", r.body);
        let policy = r.json()["uuid"].as_str().unwrap().to_string();
        let r = self.call(
            "PUT",
            &format!("/0.1/users/{user}/policies/{policy}"),
            None,
            None,
        );
        assert_eq!(r.status, 204, "PUT /users/{{u}}/policies/{{p}}: {}", r.body);
        policy
    }

    fn user_count(&self) -> i64 {
        sql(&self.s.db, "SELECT count(*) FROM auth_user")[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn sessions_of(&self, user: &str) -> i64 {
        sql(
            &self.s.db,
            &format!(
                "SELECT count(*) FROM auth_session s
                 WHERE s.uuid IN (SELECT session_uuid FROM auth_token WHERE auth_id = '{user}')"
            ),
        )[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn token_is_valid(&self, token: &str) -> bool {
        let r = self.s.get(&format!("/0.1/token/{token}"));
        assert!(r.status == 200 || r.status == 404, "{}", r.body);
        r.status == 200
    }
}

fn uuid_of(v: &Value) -> String {
    v["uuid"].as_str().unwrap().to_string()
}

/// A user object has exactly the documented keys (never a password) and well-formed e-mails.
fn assert_user_shape(user: &Value) {
    let keys: BTreeSet<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(USER_KEYS), "{user}");
    assert!(uuid::Uuid::parse_str(user["uuid"].as_str().unwrap()).is_ok());
    for e in user["emails"].as_array().unwrap() {
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["address", "confirmed", "main", "uuid"]),
            "{user}"
        );
    }
}

/// Asserts an APIException body exactly, apart from its (numeric) timestamp.
fn assert_api_error(r: &Resp, status: u16, expected: Value) {
    assert_eq!(r.status, status, "body: {}", r.body);
    let mut v = r.json();
    let obj = v.as_object_mut().unwrap();
    let ts = obj
        .remove("timestamp")
        .unwrap_or_else(|| panic!("no timestamp: {}", r.body));
    assert!(ts.is_f64() || ts.is_i64() || ts.is_u64(), "{}", r.body);
    assert_eq!(v, expected, "body: {}", r.body);
}

/// Asserts a legacy body `{"reason": [msg], "timestamp": [t], "status_code": n}`.
fn assert_legacy_error(r: &Resp, status: u16, reason: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    let v = r.json();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["reason", "status_code", "timestamp"]),
        "{}",
        r.body
    );
    assert_eq!(v["reason"], json!([reason]), "{}", r.body);
    assert_eq!(v["status_code"], json!(status));
    assert!(v["timestamp"][0].is_number(), "{}", r.body);
}

fn invalid_data(field: &str, message: &str, constraint_id: &str, constraint: Value) -> Value {
    json!({
        "message": message,
        "error_id": "invalid-data",
        "details": {field: {"message": message, "constraint_id": constraint_id, "constraint": constraint}},
        "resource": "users",
    })
}

fn conflict(field: &str, value: &str) -> Value {
    let message = if field == "uuid" {
        format!("The uuid \"{value}\" is already used")
    } else {
        format!("The login \"{value}\" is already used")
    };
    json!({
        "message": "Conflict detected",
        "error_id": "conflict",
        "details": {field: {"constraint_id": "unique", "message": message}},
        "resource": "users",
    })
}

fn unknown_user(uuid: &str) -> Value {
    json!({
        "message": format!("No such user: \"{uuid}\""),
        "error_id": "unknown-user",
        "details": {"uuid": uuid},
        "resource": "users",
    })
}

fn not_a_route(r: &Resp) {
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.json()["message"].as_str().unwrap().contains("not found"),
        "{}",
        r.body
    );
}

fn usernames(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap_or("<null>").to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// POST /users, GET /users/{uuid}
// ------------------------------------------------------------------------------------------------

#[test]
fn create_and_read_users() {
    let e = env();

    // No token → 401 (checklist 1), before anything else (even an invalid body).
    let r = e.s.request("POST", "/0.1/users", &[], Some(b"not json"));
    assert_api_error(
        &r,
        401,
        json!({"message": "Unauthorized", "error_id": "unauthorized", "details": {
            "invalid_token": "", "reason": "not_found_or_expired", "required_access": "auth.users.create"}}),
    );

    // Creation by the top-tenant admin (checklist 2).
    let user = e.new_user(
        None,
        json!({"username": "foobar", "firstname": "Alice", "email_address": "foobar@example.com",
               "password": "s3cr37", "tenant_uuid": UNKNOWN_UUID, "unknown": 1}),
    );
    assert_eq!(user["username"], "foobar");
    assert_eq!(user["firstname"], "Alice");
    assert_eq!(user["lastname"], Value::Null);
    assert_eq!(user["purpose"], "user");
    assert_eq!(user["enabled"], true);
    assert_eq!(user["authentication_method"], "default");
    assert_eq!(
        user["tenant_uuid"],
        e.top.as_str(),
        "tenant_uuid in a body is ignored"
    );
    let emails = user["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["address"], "foobar@example.com");
    assert_eq!(emails[0]["main"], true);
    assert_eq!(emails[0]["confirmed"], true);
    assert!(uuid::Uuid::parse_str(emails[0]["uuid"].as_str().unwrap()).is_ok());
    let uuid = uuid_of(&user);

    // The password is stored hashed (PBKDF2 as the original by default), never in clear.
    let row = &sql(
        &e.s.db,
        &format!(
            "SELECT password_scheme, length(password_hash), length(password_salt),
                    position('s3cr37' in password_hash)
             FROM auth_user WHERE uuid = '{uuid}'"
        ),
    )[0];
    assert_eq!(row[0].as_deref(), Some("pbkdf2_sha512"));
    assert_eq!(row[1].as_deref(), Some("128"));
    assert_eq!(row[2].as_deref(), Some("64"));
    assert_eq!(row[3].as_deref(), Some("0"));
    assert!(
        !e.s.log().contains("s3cr37"),
        "the password must not be logged"
    );

    // Member of its tenant's all-users group (checklist 4).
    let members = sql(
        &e.s.db,
        &format!(
            "SELECT count(*) FROM auth_user_group ug JOIN auth_group g ON g.uuid = ug.group_uuid
             WHERE ug.user_uuid = '{uuid}' AND g.slug = 'wazo-all-users-tenant-{}'",
            e.top
        ),
    );
    assert_eq!(members[0][0].as_deref(), Some("1"));
    let r = e.call(
        "GET",
        &format!("/0.1/groups?name=wazo-all-users-tenant-{}", e.top),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let group = uuid_of(&r.json()["items"][0]);
    let r = e.call("GET", &format!("/0.1/groups/{group}/users"), None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = r.json();
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["uuid"] == uuid.as_str()),
        "{}",
        r.body
    );

    // GET returns the same object.
    let r = e.call("GET", &format!("/0.1/users/{uuid}"), None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), user);
    let r = e.call("HEAD", &format!("/0.1/users/{uuid}"), None, None);
    assert_eq!(r.status, 200);
    // Upper-case uuids in the path are the same user.
    let r = e.call(
        "GET",
        &format!("/0.1/users/{}", uuid.to_uppercase()),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // GET unknown / not a uuid (checklist 12).
    let r = e.call("GET", &format!("/0.1/users/{UNKNOWN_UUID}"), None, None);
    assert_api_error(&r, 404, unknown_user(UNKNOWN_UUID));
    not_a_route(&e.call("GET", "/0.1/users/not-a-uuid", None, None));
    not_a_route(&e.call("PUT", "/0.1/users/1234", None, Some(json!({}))));
    not_a_route(&e.call("DELETE", "/0.1/users/me", None, None));
    not_a_route(&e.call("PUT", "/0.1/users/x/password", None, Some(json!({}))));

    // Known route, other method → 405.
    let r = e.call(
        "PATCH",
        &format!("/0.1/users/{uuid}"),
        None,
        Some(json!({})),
    );
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"message": "The method is not allowed for the requested URL."})
    );
    assert_eq!(e.call("DELETE", "/0.1/users", None, None).status, 405);

    // A given uuid is kept (any form Python's UUID accepts, canonicalised); reused → 409.
    let given = "fcf9724a-15aa-4dc5-af3c-a9acdb6a2ab9";
    let user = e.new_user(
        None,
        json!({"uuid": "{FCF9724A15AA4DC5AF3CA9ACDB6A2AB9}", "username": "alice",
               "email_address": "alice@example.com"}),
    );
    assert_eq!(user["uuid"], given);
    let before = e.user_count();
    let r = e.call(
        "POST",
        "/0.1/users",
        None,
        Some(json!({"uuid": given, "username": "other"})),
    );
    assert_api_error(&r, 409, conflict("uuid", given));
    let r = e.call(
        "POST",
        "/0.1/users",
        None,
        Some(json!({"uuid": given, "username": "alice", "email_address": "alice@example.com"})),
    );
    assert_api_error(&r, 409, conflict("username", "alice"));
    assert_eq!(
        e.user_count(),
        before,
        "a refused creation leaves nothing behind"
    );

    // Username length 1..256 (checklist 6).
    let r = e.call(
        "POST",
        "/0.1/users",
        None,
        Some(json!({"username": "a".repeat(257)})),
    );
    let msg = "Length must be between 1 and 256.";
    assert_api_error(
        &r,
        400,
        invalid_data("username", msg, "length", json!({"min": 1, "max": 256})),
    );
    let r = e.call("POST", "/0.1/users", None, Some(json!({"username": ""})));
    assert_api_error(
        &r,
        400,
        invalid_data("username", msg, "length", json!({"min": 1, "max": 256})),
    );
    let long = "é".repeat(256);
    let user = e.new_user(None, json!({"username": long}));
    assert_eq!(user["username"], long.as_str());

    // No e-mail, or a null one → emails [] (checklist 7); purpose defaults.
    let user = e.new_user(None, json!({"username": "bob"}));
    assert_eq!(user["emails"], json!([]));
    let user = e.new_user(None, json!({"username": "bob2", "email_address": null}));
    assert_eq!(user["emails"], json!([]));
    let user = e.new_user(None, json!({"purpose": "internal"}));
    assert_eq!(user["authentication_method"], "native");
    assert_eq!(user["username"], Value::Null);
    let user = e.new_user(
        None,
        json!({"purpose": "external_api", "authentication_method": "saml"}),
    );
    assert_eq!(user["authentication_method"], "saml");
    let user = e.new_user(None, json!({"enabled": false, "username": "disabled"}));
    assert_eq!(user["enabled"], false);

    // Falsy bodies are {}: a user with nothing set.
    for body in ["null", "{}", "[]", "0", "\"\"", "false"] {
        let r = e.s.request(
            "POST",
            "/0.1/users",
            &[("X-Auth-Token", &e.root)],
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 200, "{body}: {}", r.body);
        let u = r.json();
        assert_user_shape(&u);
        assert_eq!(
            (
                &u["username"],
                &u["purpose"],
                &u["enabled"],
                &u["authentication_method"]
            ),
            (
                &Value::Null,
                &json!("user"),
                &json!(true),
                &json!("default")
            )
        );
    }
    // Other non-objects → 400 _schema; undecodable → 400 {"message"}.
    for body in ["[1]", "42", "\"x\"", "true"] {
        let r = e.s.request(
            "POST",
            "/0.1/users",
            &[("X-Auth-Token", &e.root)],
            Some(body.as_bytes()),
        );
        assert_api_error(
            &r,
            400,
            json!({"message": "Invalid input type.", "error_id": "invalid-data",
                   "details": {"_schema": {"message": "Invalid input type."}}, "resource": "users"}),
        );
    }
    for body in [&b""[..], b"{", b"\xff\xfe", b"{\"username\": \"a\xff\"}"] {
        let r = e.s.request(
            "POST",
            "/0.1/users",
            &[("X-Auth-Token", &e.root)],
            Some(body),
        );
        assert_eq!(r.status, 400, "{}", r.body);
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

    // authentication_method: null/bool/number/list → schema errors, unknown strings → 400
    // "Invalid authentication method" (checklist 9).
    let r = e.call(
        "POST",
        "/0.1/users",
        None,
        Some(json!({"authentication_method": null})),
    );
    assert_api_error(
        &r,
        400,
        invalid_data(
            "authentication_method",
            "Field may not be null.",
            "not_null",
            json!("not_null"),
        ),
    );
    for bad in [json!(false), json!(true), json!(42), json!(["native"])] {
        let r = e.call(
            "POST",
            "/0.1/users",
            None,
            Some(json!({"authentication_method": bad})),
        );
        assert_api_error(
            &r,
            400,
            invalid_data(
                "authentication_method",
                "Not a valid string.",
                "type",
                json!("string"),
            ),
        );
    }
    for bad in ["not-native", "", "NATIVE", "' OR 1=1 --"] {
        let r = e.call(
            "POST",
            "/0.1/users",
            None,
            Some(json!({"authentication_method": bad})),
        );
        assert_api_error(
            &r,
            400,
            json!({"message": format!("Invalid authentication method {bad}"), "error_id": "invalid-data",
                   "details": {"authentication_method": bad}, "resource": "users"}),
        );
    }

    // Other field errors: the first failing field in the schema's order is reported.
    let cases = [
        (
            json!({"purpose": "boss"}),
            invalid_data(
                "purpose",
                "Must be one of: user, internal, external_api.",
                "enum",
                json!({"choices": ["user", "internal", "external_api"]}),
            ),
        ),
        (
            json!({"purpose": null}),
            invalid_data(
                "purpose",
                "Field may not be null.",
                "not_null",
                json!("not_null"),
            ),
        ),
        (
            json!({"enabled": "maybe"}),
            invalid_data("enabled", "Not a valid boolean.", "type", json!("boolean")),
        ),
        (
            json!({"enabled": null}),
            invalid_data(
                "enabled",
                "Field may not be null.",
                "not_null",
                json!("not_null"),
            ),
        ),
        (
            json!({"firstname": 42}),
            invalid_data("firstname", "Not a valid string.", "type", json!("string")),
        ),
        (
            json!({"lastname": "nul\u{0}byte"}),
            invalid_data("lastname", "Not a valid string.", "type", json!("string")),
        ),
        (
            json!({"uuid": "not-a-uuid"}),
            invalid_data("uuid", "Not a valid UUID.", "type", json!("uuid")),
        ),
        (
            json!({"uuid": null}),
            invalid_data(
                "uuid",
                "Field may not be null.",
                "not_null",
                json!("not_null"),
            ),
        ),
        (
            json!({"uuid": 42}),
            invalid_data("uuid", "Not a valid UUID.", "type", json!("uuid")),
        ),
        (
            json!({"password": ""}),
            invalid_data(
                "password",
                "Shorter than minimum length 1.",
                "length",
                json!({"min": 1, "max": null}),
            ),
        ),
        (
            json!({"password": ["x"]}),
            invalid_data("password", "Not a valid string.", "type", json!("string")),
        ),
        (
            json!({"email_address": "not-an-email"}),
            invalid_data(
                "email_address",
                "Not a valid email address.",
                "type",
                json!("email"),
            ),
        ),
        (
            json!({"email_address": ""}),
            invalid_data(
                "email_address",
                "Not a valid email address.",
                "type",
                json!("email"),
            ),
        ),
        (
            json!({"email_address": 42}),
            invalid_data(
                "email_address",
                "Not a valid email address.",
                "type",
                json!("email"),
            ),
        ),
        (
            json!({"email_address": "x", "username": 1, "purpose": "x"}),
            invalid_data("username", "Not a valid string.", "type", json!("string")),
        ),
        (
            json!({"enabled": "x", "purpose": "x"}),
            invalid_data(
                "purpose",
                "Must be one of: user, internal, external_api.",
                "enum",
                json!({"choices": ["user", "internal", "external_api"]}),
            ),
        ),
    ];
    let before = e.user_count();
    for (body, expected) in cases {
        let r = e.call("POST", "/0.1/users", None, Some(body.clone()));
        assert_api_error(&r, 400, expected);
    }
    assert_eq!(e.user_count(), before);

    // SQL metacharacters and unusual text are stored verbatim.
    let nasty = "x'); DROP TABLE auth_user; -- %_\\";
    let user = e.new_user(
        None,
        json!({"username": nasty, "firstname": "O'Brien \"quoted\"", "lastname": "ünïcødé 🎉",
               "email_address": "o'brien+tag@example.com"}),
    );
    assert_eq!(user["username"], nasty);
    assert_eq!(user["firstname"], "O'Brien \"quoted\"");
    assert_eq!(user["lastname"], "ünïcødé 🎉");
    let r = e.call("GET", &format!("/0.1/users/{}", uuid_of(&user)), None, None);
    assert_eq!(r.json(), user);

    // A body over the size limit is refused.
    let huge = json!({"firstname": "x".repeat(1_100_000)});
    let r = e.call("POST", "/0.1/users", None, Some(huge));
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(
        e.s.log().lines().all(|l| !l.contains("panicked")),
        "{}",
        e.s.log()
    );
}

// ------------------------------------------------------------------------------------------------
// Login uniqueness
// ------------------------------------------------------------------------------------------------

#[test]
fn logins_are_unique_case_insensitively_across_usernames_emails_and_tenants() {
    let e = env();
    let sub = e.new_tenant(None, "sub");
    let u1 = e.new_user(None, json!({"username": "user1@example.com"}));
    let u2 = e.new_user(None, json!({"email_address": "user2@example.com"}));
    let u3 = e.new_user(None, json!({"username": "Carol"}));
    let before = e.user_count();

    // POST (checklists 5, 10): username vs usernames and e-mails, e-mail vs both, any case,
    // in any tenant.
    let cases = [
        (
            json!({"username": "user1@example.com"}),
            "username",
            "user1@example.com",
        ),
        (
            json!({"username": "USER1@Example.com"}),
            "username",
            "USER1@Example.com",
        ),
        (
            json!({"username": "user2@EXAMPLE.com"}),
            "username",
            "user2@EXAMPLE.com",
        ),
        (json!({"username": "carol"}), "username", "carol"),
        (
            json!({"email_address": "User1@example.com"}),
            "email_address",
            "User1@example.com",
        ),
        (
            json!({"email_address": "user2@example.com"}),
            "email_address",
            "user2@example.com",
        ),
        (
            json!({"username": "fresh", "email_address": "USER2@example.com"}),
            "email_address",
            "USER2@example.com",
        ),
    ];
    for (body, field, value) in &cases {
        for tenant in [None, Some(sub.as_str())] {
            let r = e.call("POST", "/0.1/users", tenant, Some(body.clone()));
            assert_api_error(&r, 409, conflict(field, value));
        }
    }
    assert_eq!(
        e.user_count(),
        before,
        "refused creations leave nothing behind"
    );
    // The username is checked before the e-mail.
    let r = e.call(
        "POST",
        "/0.1/users",
        None,
        Some(json!({"username": "CAROL", "email_address": "user1@example.com"})),
    );
    assert_api_error(&r, 409, conflict("username", "CAROL"));
    // A user may use the same string as its own username and address.
    let own = e.new_user(
        Some(&sub),
        json!({"username": "same@example.com", "email_address": "Same@example.com"}),
    );
    assert_eq!(own["tenant_uuid"], sub.as_str());

    // PUT (checklist 15): another user's username or e-mail, any case → 409.
    let u1_uuid = uuid_of(&u1);
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{u1_uuid}"),
        None,
        Some(json!({"username": "u2"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for login in [
        "user2@example.com",
        "USER2@exAmple.com",
        "carol",
        "same@EXAMPLE.com",
    ] {
        let r = e.call(
            "PUT",
            &format!("/0.1/users/{u1_uuid}"),
            None,
            Some(json!({"username": login})),
        );
        assert_api_error(&r, 409, conflict("username", login));
    }
    assert_eq!(
        e.call("GET", &format!("/0.1/users/{u1_uuid}"), None, None)
            .json()["username"],
        "u2",
        "a refused PUT changes nothing"
    );
    // Its own login in another case is fine.
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{u1_uuid}"),
        None,
        Some(json!({"username": "U2"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["username"], "U2");
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{}", uuid_of(&own)),
        None,
        Some(json!({"username": "SAME@example.COM"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The freed username is available again.
    e.new_user(None, json!({"username": "user1@example.com"}));
    let _ = (u2, u3);
}

#[test]
fn concurrent_creations_of_one_login_let_exactly_one_through() {
    let e = env();
    const N: usize = 8;
    // Round 1: the same username in several cases. Round 2: a username against e-mail
    // addresses (no index can catch that one). Round 3: same e-mail.
    let rounds: [Vec<Value>; 3] = [
        (0..N)
            .map(|i| json!({"username": if i % 2 == 0 { "racer" } else { "RACER" }}))
            .collect(),
        (0..N)
            .map(|i| {
                if i % 2 == 0 {
                    json!({"username": "cross@example.com"})
                } else {
                    json!({"email_address": "Cross@Example.com"})
                }
            })
            .collect(),
        (0..N)
            .map(|i| json!({"username": format!("mail{i}"), "email_address": "shared@example.com"}))
            .collect(),
    ];
    for (round, bodies) in rounds.iter().enumerate() {
        let barrier = Barrier::new(N);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = bodies
                .iter()
                .map(|body| {
                    let barrier = &barrier;
                    let e = &e;
                    scope.spawn(move || {
                        barrier.wait();
                        e.call("POST", "/0.1/users", None, Some(body.clone()))
                            .status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let conflicts = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((ok, conflicts), (1, N - 1), "round {round}: {statuses:?}");
    }
    assert_eq!(
        e.user_count(),
        4,
        "the administrator and one user per round"
    );
}

// ------------------------------------------------------------------------------------------------
// PUT / DELETE
// ------------------------------------------------------------------------------------------------

#[test]
fn put_replaces_every_field_and_delete_removes() {
    let e = env();
    let user = e.new_user(
        None,
        json!({"username": "foobar", "firstname": "foo", "lastname": "bar", "purpose": "user",
               "email_address": "foobar@example.com", "password": "pw"}),
    );
    let uuid = uuid_of(&user);
    let path = format!("/0.1/users/{uuid}");
    let body = json!({"username": "foobaz", "firstname": "baz", "purpose": "external_api",
                      "enabled": false, "authentication_method": "native", "uuid": UNKNOWN_UUID,
                      "password": "ignored", "email_address": "ignored@example.com"});

    // Unknown user → 404; the body is validated first.
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{UNKNOWN_UUID}"),
        None,
        Some(body.clone()),
    );
    assert_api_error(&r, 404, unknown_user(UNKNOWN_UUID));
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{UNKNOWN_UUID}"),
        None,
        Some(json!({"enabled": 3})),
    );
    assert_api_error(
        &r,
        400,
        invalid_data("enabled", "Not a valid boolean.", "type", json!("boolean")),
    );
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{UNKNOWN_UUID}"),
        None,
        Some(json!({"authentication_method": "nope"})),
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // Invalid authentication methods (checklist 9, PUT).
    for bad in [
        json!(null),
        json!(false),
        json!(true),
        json!(42),
        json!(["native"]),
        json!("not-native"),
        json!(""),
    ] {
        let mut b = body.clone();
        b["authentication_method"] = bad;
        let r = e.call("PUT", &path, None, Some(b));
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["error_id"], "invalid-data");
    }
    let r = e.call("PUT", &path, None, Some(json!([1])));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["details"],
        json!({"_schema": {"message": "Invalid input type."}})
    );

    // Update (checklist 14): omitted lastname becomes null; uuid, password, e-mails unchanged.
    let r = e.call("PUT", &path, None, Some(body));
    assert_eq!(r.status, 200, "{}", r.body);
    let updated = r.json();
    assert_user_shape(&updated);
    assert_eq!(
        updated,
        json!({"uuid": uuid, "username": "foobaz", "firstname": "baz", "lastname": null,
               "purpose": "external_api", "enabled": false, "authentication_method": "native",
               "tenant_uuid": e.top, "emails": user["emails"]})
    );
    assert_eq!(e.call("GET", &path, None, None).json(), updated);
    let pw = sql(
        &e.s.db,
        &format!("SELECT password_hash IS NOT NULL FROM auth_user WHERE uuid = '{uuid}'"),
    );
    assert_eq!(
        pw[0][0].as_deref(),
        Some("t"),
        "PUT does not touch the password"
    );

    let r = e.call(
        "PUT",
        &path,
        None,
        Some(json!({"username": "foobaz", "firstname": null, "lastname": null})),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (&v["username"], &v["firstname"], &v["lastname"]),
        (&json!("foobaz"), &Value::Null, &Value::Null)
    );

    // {} resets everything to the defaults.
    let r = e.call("PUT", &path, None, Some(json!({})));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (
            &v["username"],
            &v["purpose"],
            &v["enabled"],
            &v["authentication_method"]
        ),
        (
            &Value::Null,
            &json!("user"),
            &json!(true),
            &json!("default")
        )
    );
    let r = e.call("PUT", &path, None, Some(json!({"purpose": "internal"})));
    assert_eq!(r.json()["authentication_method"], "native");
    let r = e.call(
        "PUT",
        &path,
        None,
        Some(json!({"username": "x'; DELETE FROM auth_user; --"})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["username"], "x'; DELETE FROM auth_user; --");

    // DELETE (checklist 17).
    let r = e.call("DELETE", &format!("/0.1/users/{UNKNOWN_UUID}"), None, None);
    assert_api_error(&r, 404, unknown_user(UNKNOWN_UUID));
    let r = e.call("DELETE", &path, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, "");
    let r = e.call("DELETE", &path, None, None);
    assert_api_error(&r, 404, unknown_user(&uuid));
    assert_api_error(&e.call("GET", &path, None, None), 404, unknown_user(&uuid));
    assert_api_error(
        &e.call("PUT", &path, None, Some(json!({}))),
        404,
        unknown_user(&uuid),
    );
    // Its address is free again, and nothing of it remains.
    let left = sql(
        &e.s.db,
        &format!(
            "SELECT (SELECT count(*) FROM auth_email WHERE user_uuid = '{uuid}')
                  + (SELECT count(*) FROM auth_user_group WHERE user_uuid = '{uuid}')"
        ),
    );
    assert_eq!(left[0][0].as_deref(), Some("0"));
    e.new_user(None, json!({"email_address": "FOOBAR@example.com"}));
}

// ------------------------------------------------------------------------------------------------
// ACLs
// ------------------------------------------------------------------------------------------------

#[test]
fn every_route_requires_its_acl() {
    let e = env();
    let user = e.new_user(None, json!({"username": "someone"}));
    let uuid = uuid_of(&user);
    let r = e.s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    );
    let alice = r.json()["data"]["token"].as_str().unwrap().to_string();
    let cases = [
        (
            "GET",
            "/0.1/users".to_string(),
            "auth.users.read".to_string(),
        ),
        (
            "POST",
            "/0.1/users".to_string(),
            "auth.users.create".to_string(),
        ),
        (
            "GET",
            format!("/0.1/users/{uuid}"),
            format!("auth.users.{uuid}.read"),
        ),
        (
            "PUT",
            format!("/0.1/users/{uuid}"),
            format!("auth.users.{uuid}.update"),
        ),
        (
            "DELETE",
            format!("/0.1/users/{uuid}"),
            format!("auth.users.{uuid}.delete"),
        ),
        (
            "PUT",
            format!("/0.1/users/{uuid}/password"),
            format!("auth.users.{uuid}.password.update"),
        ),
    ];
    for (method, path, acl) in &cases {
        let r = e.call_as(&alice, method, path, None, Some(json!({})));
        assert_api_error(
            &r,
            401,
            json!({"message": "Unauthorized", "error_id": "unauthorized", "details": {
                "invalid_token": alice, "reason": "missing_permission_or_invalid_tenant",
                "required_access": acl, "tenant_uuid": null}}),
        );
        let r = e.call_as(UNKNOWN_UUID, method, path, None, Some(json!({})));
        assert_api_error(
            &r,
            401,
            json!({"message": "Unauthorized", "error_id": "unauthorized", "details": {
                "invalid_token": UNKNOWN_UUID, "reason": "not_found_or_expired", "required_access": acl}}),
        );
    }
    assert_eq!(e.user_count(), 2, "nothing was created or deleted");
}

// ------------------------------------------------------------------------------------------------
// Tenant scoping
// ------------------------------------------------------------------------------------------------

#[test]
fn tenant_scoping() {
    let e = env();
    let a = e.new_tenant(None, "a");
    let b = e.new_tenant(Some(&a), "b");
    let other = e.new_tenant(None, "other");

    // Wazo-Tenant selects the owner (checklist 3); a body tenant_uuid is ignored.
    let in_a = e.new_user(Some(&a), json!({"username": "in-a", "tenant_uuid": other}));
    assert_eq!(in_a["tenant_uuid"], a.as_str());
    let a_group = sql(
        &e.s.db,
        &format!(
            "SELECT count(*) FROM auth_user_group ug JOIN auth_group g ON g.uuid = ug.group_uuid
             WHERE ug.user_uuid = '{}' AND g.tenant_uuid = '{a}' AND g.slug = 'wazo-all-users-tenant-{a}'",
            uuid_of(&in_a)
        ),
    );
    assert_eq!(
        a_group[0][0].as_deref(),
        Some("1"),
        "added to its own tenant's all-users group"
    );
    let in_top = e.new_user(None, json!({"username": "in-top"}));
    let in_other = e.new_user(Some(&other), json!({"username": "in-other"}));

    // Unknown / garbage Wazo-Tenant → 401 unauthorized-tenant.
    for bad in [UNKNOWN_UUID, "garbage", "' OR 1=1 --"] {
        let r = e.call(
            "POST",
            "/0.1/users",
            Some(bad),
            Some(json!({"username": "nope"})),
        );
        assert_api_error(
            &r,
            401,
            json!({"message": "Unauthorized tenant", "error_id": "unauthorized-tenant",
                   "details": {"tenant_uuid": bad}}),
        );
    }

    // Top admin reaches sub-tenant users without a header (checklist 13), not with a sibling's.
    let p = format!("/0.1/users/{}", uuid_of(&in_a));
    assert_eq!(e.call("GET", &p, None, None).status, 200);
    assert_eq!(e.call("GET", &p, Some(&a), None).status, 200);
    assert_api_error(
        &e.call("GET", &p, Some(&other), None),
        404,
        unknown_user(&uuid_of(&in_a)),
    );
    assert_api_error(
        &e.call("GET", &p, Some(&b), None),
        404,
        unknown_user(&uuid_of(&in_a)),
    );
    let r = e.call(
        "PUT",
        &p,
        None,
        Some(json!({"username": "in-a", "firstname": "A"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // A sub-tenant administrator (a real user of tenant a, logged in with wazo_user).
    let sub_admin = e.new_user(
        Some(&a),
        json!({"username": "sub-admin", "password": "sub-pw"}),
    );
    e.grant(&a, &uuid_of(&sub_admin), "sub-admin-policy", &["auth.#"]);
    let tok = e.s.user_token("sub-admin", "sub-pw");

    // Creates in its own tenant, in a descendant via Wazo-Tenant, never above (checklist 11).
    let r = e.call_as(
        &tok,
        "POST",
        "/0.1/users",
        None,
        Some(json!({"username": "made-by-sub"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tenant_uuid"], a.as_str());
    let r = e.call_as(
        &tok,
        "POST",
        "/0.1/users",
        Some(&b),
        Some(json!({"username": "made-in-b"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let in_b = r.json();
    assert_eq!(in_b["tenant_uuid"], b.as_str());
    for forbidden in [e.top.as_str(), other.as_str()] {
        let r = e.call_as(
            &tok,
            "POST",
            "/0.1/users",
            Some(forbidden),
            Some(json!({"username": "x"})),
        );
        assert_api_error(
            &r,
            401,
            json!({"message": "Unauthorized tenant", "error_id": "unauthorized-tenant",
                   "details": {"tenant_uuid": forbidden}}),
        );
    }

    // Reads/edits/deletes: users of its tree only; others are 404, Wazo-Tenant above is 401
    // (checklist 12).
    for outsider in [&in_top, &in_other] {
        let id = uuid_of(outsider);
        let p = format!("/0.1/users/{id}");
        assert_api_error(
            &e.call_as(&tok, "GET", &p, None, None),
            404,
            unknown_user(&id),
        );
        assert_api_error(
            &e.call_as(&tok, "PUT", &p, None, Some(json!({}))),
            404,
            unknown_user(&id),
        );
        assert_api_error(
            &e.call_as(&tok, "DELETE", &p, None, None),
            404,
            unknown_user(&id),
        );
        let r = e.call_as(&tok, "GET", &p, Some(&e.top), None);
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json()["error_id"], "unauthorized-tenant");
    }
    let untouched = e
        .call(
            "GET",
            &format!("/0.1/users/{}", uuid_of(&in_top)),
            None,
            None,
        )
        .json();
    assert_eq!(untouched, in_top, "a 404 PUT changed nothing");
    let p = format!("/0.1/users/{}", uuid_of(&in_b));
    assert_eq!(e.call_as(&tok, "GET", &p, None, None).status, 200);
    assert_eq!(
        e.call_as(
            &tok,
            "PUT",
            &p,
            None,
            Some(json!({"username": "renamed-b"}))
        )
        .status,
        200
    );
    assert_eq!(e.call_as(&tok, "DELETE", &p, Some(&b), None).status, 204);

    // Lists: the caller's tenant by default, the subtree with recurse.
    let r = e.call_as(&tok, "GET", "/0.1/users?recurse=true", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        sorted(usernames(&r.json())),
        strings(&["in-a", "made-by-sub", "sub-admin"])
    );
    let r = e.call_as(&tok, "GET", "/0.1/users", Some(&e.top), None);
    assert_eq!(r.status, 401);

    // Login uniqueness spans tenants the caller cannot see.
    let r = e.call_as(
        &tok,
        "POST",
        "/0.1/users",
        None,
        Some(json!({"username": "IN-OTHER"})),
    );
    assert_api_error(&r, 409, conflict("username", "IN-OTHER"));

    // The password change is scoped by the token's own tenant (issue 17; the original checks
    // the old password of any user): a user of another tree is unknown.
    let r = e.call_as(
        &tok,
        "PUT",
        &format!("/0.1/users/{}/password", uuid_of(&in_other)),
        None,
        Some(json!({"old_password": "x", "new_password": "y"})),
    );
    assert_api_error(&r, 404, unknown_user(&uuid_of(&in_other)));

    // A token whose user was deleted: unknown-user.
    let r = e.call(
        "DELETE",
        &format!("/0.1/users/{}", uuid_of(&sub_admin)),
        None,
        None,
    );
    assert_eq!(r.status, 204);
    assert!(
        !e.token_is_valid(&tok),
        "the sessions of a deleted user go with it"
    );
}

// ------------------------------------------------------------------------------------------------
// Sessions: disabling a user
// ------------------------------------------------------------------------------------------------

#[test]
fn disabling_a_user_deletes_its_sessions() {
    let e = env();
    let user = e.new_user(
        None,
        json!({"username": "foo", "password": "secret", "lastname": "l"}),
    );
    let uuid = uuid_of(&user);
    let path = format!("/0.1/users/{uuid}");
    let t1 = e.s.user_token("foo", "secret");
    let t2 = e.s.user_token("FOO", "secret");
    assert_eq!(e.sessions_of(&uuid), 2);
    // Another user's session must survive.
    let other = e.new_user(None, json!({"username": "other", "password": "pw"}));
    let t_other = e.s.user_token("other", "pw");

    // Edits that keep the user enabled keep its tokens (checklist 16).
    let r = e.call(
        "PUT",
        &path,
        None,
        Some(json!({"username": "foo", "enabled": true})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = e.call(
        "PUT",
        &path,
        None,
        Some(json!({"username": "foo", "lastname": "random-edit"})),
    );
    assert_eq!(r.status, 200);
    assert!(e.token_is_valid(&t1) && e.token_is_valid(&t2));
    assert_eq!(e.sessions_of(&uuid), 2);

    // A failed disabling (conflict) changes nothing.
    let r = e.call(
        "PUT",
        &path,
        None,
        Some(json!({"username": "OTHER", "enabled": false})),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(e.token_is_valid(&t1));

    let r = e.call(
        "PUT",
        &path,
        None,
        Some(json!({"username": "foo", "enabled": false})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["enabled"], false);
    assert!(!e.token_is_valid(&t1));
    assert!(!e.token_is_valid(&t2));
    assert_eq!(e.sessions_of(&uuid), 0);
    assert!(e.token_is_valid(&t_other));
    assert_eq!(e.sessions_of(&uuid_of(&other)), 1);

    // Disabled users cannot log in (checklist 8); re-enabled they can.
    let r = e.s.login("foo", "secret", json!({}));
    assert_eq!(r.status, 401, "{}", r.body);
    let r = e.call("PUT", &path, None, Some(json!({"username": "foo"})));
    assert_eq!(r.status, 200);
    e.s.user_token("foo", "secret");

    // Created disabled → cannot log in.
    e.new_user(
        None,
        json!({"username": "off", "password": "pw", "enabled": false}),
    );
    assert_eq!(e.s.login("off", "pw", json!({})).status, 401);
}

// ------------------------------------------------------------------------------------------------
// PUT /users/{uuid}/password
// ------------------------------------------------------------------------------------------------

#[test]
fn password_change() {
    let e = env();
    let user = e.new_user(
        None,
        json!({"username": "foo", "password": "foobar", "email_address": "foo@example.com"}),
    );
    let uuid = uuid_of(&user);
    let path = format!("/0.1/users/{uuid}/password");
    let unknown = format!("/0.1/users/{UNKNOWN_UUID}/password");

    // Body validated first, even for an unknown user (checklist 18).
    let r = e.call("PUT", &unknown, None, Some(json!({"new_password": "x"})));
    assert_api_error(
        &r,
        400,
        invalid_data(
            "old_password",
            "Missing data for required field.",
            "required",
            json!("required"),
        ),
    );
    let cases = [
        (
            json!({}),
            invalid_data(
                "old_password",
                "Missing data for required field.",
                "required",
                json!("required"),
            ),
        ),
        (
            json!({"old_password": "x"}),
            invalid_data(
                "new_password",
                "Missing data for required field.",
                "required",
                json!("required"),
            ),
        ),
        (
            json!({"old_password": null, "new_password": "x"}),
            invalid_data(
                "old_password",
                "Field may not be null.",
                "not_null",
                json!("not_null"),
            ),
        ),
        (
            json!({"old_password": "x", "new_password": ""}),
            invalid_data(
                "new_password",
                "Shorter than minimum length 1.",
                "length",
                json!({"min": 1, "max": null}),
            ),
        ),
        (
            json!({"old_password": 1, "new_password": "x"}),
            invalid_data(
                "old_password",
                "Not a valid string.",
                "type",
                json!("string"),
            ),
        ),
    ];
    for (body, expected) in cases {
        assert_api_error(&e.call("PUT", &path, None, Some(body)), 400, expected);
    }
    let r = e.call("PUT", &path, None, Some(json!([1])));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["details"],
        json!({"_schema": {"message": "Invalid input type."}})
    );
    let r = e.call(
        "PUT",
        &unknown,
        None,
        Some(json!({"old_password": "wrong", "new_password": "x"})),
    );
    assert_api_error(&r, 404, unknown_user(UNKNOWN_UUID));
    // Unscoped: Wazo-Tenant is not looked at.
    let r = e.call(
        "PUT",
        &unknown,
        Some("garbage"),
        Some(json!({"old_password": "wrong", "new_password": "x"})),
    );
    assert_api_error(&r, 404, unknown_user(UNKNOWN_UUID));

    // Wrong old password → 401 legacy body; nothing changes.
    let t_before = e.s.user_token("foo", "foobar");
    let r = e.call(
        "PUT",
        &path,
        None,
        Some(json!({"old_password": "wrong", "new_password": "foobaz"})),
    );
    assert_legacy_error(&r, 401, "Authentication Failed");
    assert!(e.token_is_valid(&t_before));

    // Correct → 204, the new password works, the old one no longer does, sessions are revoked
    // (checklists 18, 21).
    let r = e.call(
        "PUT",
        &path,
        None,
        Some(json!({"old_password": "foobar", "new_password": "foobaz"})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, "");
    assert!(!e.token_is_valid(&t_before));
    assert_eq!(e.sessions_of(&uuid), 0);
    assert_eq!(e.s.login("foo", "foobar", json!({})).status, 401);
    let t = e.s.user_token("foo", "foobaz");
    assert!(!e.s.log().contains("foobaz"), "passwords are never logged");

    // A user changing its own password with a token granting it.
    assert!(e.token_is_valid(&t));
    let own_acl = format!("auth.users.{uuid}.password.update");
    e.grant(&e.top, &uuid, "own-password", &[own_acl.as_str()]);
    let t = e.s.user_token("foo@example.com", "foobaz");
    let r = e.call_as(
        &t,
        "PUT",
        &path,
        None,
        Some(json!({"old_password": "foobaz", "new_password": "secret"})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(!e.token_is_valid(&t));
    e.s.user_token("foo", "secret");

    // Null username: works only with a main confirmed address (checklist 20).
    let no_name = e.new_user(
        None,
        json!({"email_address": "u1@example.com", "password": "p1"}),
    );
    let p = format!("/0.1/users/{}/password", uuid_of(&no_name));
    let r = e.call(
        "PUT",
        &p,
        None,
        Some(json!({"old_password": "p1", "new_password": "p2"})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    e.s.user_token("u1@example.com", "p2");
    let no_login = e.new_user(None, json!({"password": "p1"}));
    let p = format!("/0.1/users/{}/password", uuid_of(&no_login));
    let r = e.call(
        "PUT",
        &p,
        None,
        Some(json!({"old_password": "p1", "new_password": "p2"})),
    );
    assert_legacy_error(&r, 401, "Authentication Failed");
    sql(
        &e.s.db,
        &format!(
            "UPDATE auth_email SET confirmed = false WHERE user_uuid = '{}'",
            uuid_of(&no_name)
        ),
    );
    let p = format!("/0.1/users/{}/password", uuid_of(&no_name));
    let r = e.call(
        "PUT",
        &p,
        None,
        Some(json!({"old_password": "p2", "new_password": "p3"})),
    );
    assert_legacy_error(&r, 401, "Authentication Failed");

    // A user without a password, a disabled user → 401.
    let no_pw = e.new_user(None, json!({"username": "nopw"}));
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{}/password", uuid_of(&no_pw)),
        None,
        Some(json!({"old_password": "x", "new_password": "y"})),
    );
    assert_legacy_error(&r, 401, "Authentication Failed");
    let off = e.new_user(
        None,
        json!({"username": "off", "password": "pw", "enabled": false}),
    );
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{}/password", uuid_of(&off)),
        None,
        Some(json!({"old_password": "pw", "new_password": "y"})),
    );
    assert_legacy_error(&r, 401, "Authentication Failed");

    // Externally managed passwords → 405 (checklist 19), after the old password check.
    let saml = e.new_user(
        None,
        json!({"username": "saml_user", "password": "pw", "authentication_method": "saml"}),
    );
    let p = format!("/0.1/users/{}/password", uuid_of(&saml));
    let r = e.call(
        "PUT",
        &p,
        None,
        Some(json!({"old_password": "wrong", "new_password": "y"})),
    );
    assert_legacy_error(&r, 401, "Authentication Failed");
    let r = e.call(
        "PUT",
        &p,
        None,
        Some(json!({"old_password": "pw", "new_password": "y"})),
    );
    let external = |id: &str| {
        json!({"message": format!("Unable to update externally managed password for user : \"{id}\""),
               "error_id": "password-managed-externally", "details": {"uuid": id}, "resource": "users"})
    };
    assert_api_error(&r, 405, external(&uuid_of(&saml)));
    // `default` with an LDAP tenant → 405 as well; `native` in that tenant is fine.
    let ldap_tenant = e.new_tenant(None, "ldapco");
    let r = e.call(
        "PUT",
        &format!("/0.1/tenants/{ldap_tenant}"),
        None,
        Some(json!({"name": "ldapco", "default_authentication_method": "ldap"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let dflt = e.new_user(
        Some(&ldap_tenant),
        json!({"username": "ldap-default", "password": "pw"}),
    );
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{}/password", uuid_of(&dflt)),
        None,
        Some(json!({"old_password": "pw", "new_password": "y"})),
    );
    assert_api_error(&r, 405, external(&uuid_of(&dflt)));
    let native = e.new_user(
        Some(&ldap_tenant),
        json!({"username": "ldap-native", "password": "pw", "authentication_method": "native"}),
    );
    let r = e.call(
        "PUT",
        &format!("/0.1/users/{}/password", uuid_of(&native)),
        None,
        Some(json!({"old_password": "pw", "new_password": "y"})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

// ------------------------------------------------------------------------------------------------
// GET /users
// ------------------------------------------------------------------------------------------------

/// The usernames `GET /users?recurse=true&search=SEARCH` finds from tenant `t` (every match on
/// one page: `filtered` is the page's length).
fn searched(e: &Env, t: &str, search: &str) -> Vec<String> {
    let r = e.call(
        "GET",
        &format!("/0.1/users?recurse=true&search={}", pct(search)),
        Some(t),
        None,
    );
    assert_eq!(r.status, 200, "{search}: {}", r.body);
    let v = r.json();
    assert_eq!(
        v["filtered"],
        v["items"].as_array().unwrap().len(),
        "{search}"
    );
    usernames(&v)
}

/// The search by address reads each user's lines of addresses (`auth_user.email_search`, V16),
/// kept by triggers on the addresses: it follows every way addresses change, and a pattern that
/// matches across two addresses of one user matches neither.
#[test]
fn search_by_address_follows_every_change_of_the_addresses() {
    let e = env();
    let t = e.new_tenant(None, "addresses");
    let user = uuid_of(&e.new_user(
        Some(&t),
        json!({"username": "quill", "firstname": "Q", "lastname": "Q",
               "email_address": "alpha@north.example"}),
    ));
    let found = |search: &str| searched(&e, &t, search);
    let put = |addresses: &[&str]| {
        let emails: Vec<Value> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| json!({"address": a, "main": i == 0, "confirmed": true}))
            .collect();
        let r = e.call(
            "PUT",
            &format!("/0.1/admin/users/{user}/emails"),
            None,
            Some(json!({ "emails": emails })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let lines = || {
        sql(
            &e.s.db,
            &format!("SELECT email_search FROM auth_user WHERE uuid = '{user}'"),
        )[0][0]
            .clone()
            .unwrap()
    };
    assert_eq!(found("north"), strings(&["quill"]));
    assert_eq!(lines(), "alpha@north.example");

    // Two addresses: each found; a pattern across both (the end of one, the start of the
    // other) finds nothing, though the user's lines contain it.
    put(&["alpha@north.example", "beta@south.example"]);
    assert_eq!(lines(), "alpha@north.example\nbeta@south.example");
    assert_eq!(found("south"), strings(&["quill"]));
    assert_eq!(found("north"), strings(&["quill"]));
    assert_eq!(found("north.example beta"), Vec::<String>::new());
    assert_eq!(found("alpha north"), strings(&["quill"]));

    // Replaced: the old address is no longer found.
    put(&["gamma@east.example"]);
    assert_eq!(found("north"), Vec::<String>::new());
    assert_eq!(found("south"), Vec::<String>::new());
    assert_eq!(found("east"), strings(&["quill"]));

    // Changed in place (an UPDATE of the row), then removed.
    let changed = sql(
        &e.s.db,
        &format!(
            "UPDATE auth_email SET address = 'delta@west.example' WHERE user_uuid = '{user}'
             RETURNING address"
        ),
    );
    assert_eq!(changed.len(), 1);
    assert_eq!(found("east"), Vec::<String>::new());
    assert_eq!(found("west"), strings(&["quill"]));
    put(&[]);
    assert_eq!(lines(), "");
    assert_eq!(found("west"), Vec::<String>::new());
    // The names are still searched.
    assert_eq!(found("quil"), strings(&["quill"]));
}

/// The user search reads one trigram index over each user's searched texts, one per line
/// (migration V19, `users::SEARCH_TEXT`): each column is still matched alone (a pattern that
/// matches across two of them, as the index's lines hold them, finds nothing), and the
/// statement's condition is the index's expression (the plan reads the index).
#[test]
fn the_user_search_matches_each_column_alone_through_one_index() {
    let e = env();
    let t = e.new_tenant(None, "search-lines");
    e.new_user(
        Some(&t),
        json!({"username": "wren", "firstname": "Ada", "lastname": "Byron",
               "email_address": "countess@lovelace.example"}),
    );
    e.new_user(
        Some(&t),
        json!({"username": "ada-byron", "firstname": "X", "lastname": "Y"}),
    );
    let found = |search: &str| searched(&e, &t, search);
    // Each column, alone.
    assert_eq!(found("ada"), strings(&["ada-byron", "wren"]));
    assert_eq!(found("BYRON"), strings(&["ada-byron", "wren"]));
    assert_eq!(found("wre"), strings(&["wren"]));
    assert_eq!(found("lovelace"), strings(&["wren"]));
    // "ada" then "byron" in one column: only the username holds both. Across firstname and
    // lastname, or lastname and username, or username and address, nothing.
    assert_eq!(found("ada byron"), strings(&["ada-byron"]));
    assert_eq!(found("byron wren"), Vec::<String>::new());
    assert_eq!(found("wren countess"), Vec::<String>::new());
    // `_` is a wildcard, which could match a line's end in the index: not in a column.
    assert_eq!(found("ada_byron"), strings(&["ada-byron"]));
    assert_eq!(found("on_wr"), Vec::<String>::new());

    // The plan: the index answers the condition the search statements write.
    let plan = sql(
        &e.s.db,
        &format!(
            "SET enable_seqscan = off;
             EXPLAIN SELECT u.uuid FROM auth_user u
             WHERE {} ILIKE '%byron%' ESCAPE ''",
            wazo_auth_core::users::SEARCH_TEXT
        ),
    )
    .into_iter()
    .map(|row| row[0].clone().unwrap_or_default())
    .collect::<Vec<_>>()
    .join("\n");
    assert!(plan.contains("auth_user__idx__search_trgm"), "{plan}");
}

#[test]
fn list_scope_search_order_pagination_and_filters() {
    let e = env();
    let top_a = e.new_tenant(None, "top_a");
    let sub = e.new_tenant(Some(&top_a), "sub");
    let foo = e.new_user(
        Some(&top_a),
        json!({"username": "foo", "firstname": "Ferdinand", "lastname": "Zed",
                                              "email_address": "foo@example.com"}),
    );
    let bar = e.new_user(
        Some(&sub),
        json!({"username": "bar", "firstname": "Barbara", "lastname": "Young",
                                            "purpose": "internal"}),
    );
    let baz = e.new_user(
        Some(&sub),
        json!({"username": "baz", "firstname": "Albert", "lastname": "Xu",
                                            "email_address": "zzz@elsewhere.org"}),
    );
    let list = |tenant: Option<&str>, query: &str| -> Value {
        let r = e.call("GET", &format!("/0.1/users{query}"), tenant, None);
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let v = r.json();
        for u in v["items"].as_array().unwrap() {
            assert_user_shape(u);
        }
        v
    };
    let counts = |v: &Value| {
        (
            v["total"].as_i64().unwrap(),
            v["filtered"].as_i64().unwrap(),
        )
    };

    // Scope (checklist 22).
    let v = list(Some(&top_a), "");
    assert_eq!((counts(&v), usernames(&v)), ((1, 1), strings(&["foo"])));
    assert_eq!(v["items"][0], foo);
    let v = list(Some(&top_a), "?recurse=true");
    assert_eq!(
        (counts(&v), usernames(&v)),
        ((3, 3), strings(&["bar", "baz", "foo"]))
    );
    let v = list(Some(&sub), "");
    assert_eq!(
        (counts(&v), usernames(&v)),
        ((2, 2), strings(&["bar", "baz"]))
    );
    let v = list(None, "");
    assert_eq!((counts(&v), usernames(&v)), ((1, 1), strings(&["admin"])));
    let v = list(None, "?recurse=true");
    assert_eq!(counts(&v), (4, 4));

    // Search (checklist 23): firstname, lastname, username, any address; words joined with %.
    let cases: [(&str, &[&str]); 10] = [
        ("ba", &["bar", "baz"]),
        ("BA", &["bar", "baz"]),
        ("ferd", &["foo"]),
        ("young", &["bar"]),
        ("elsewhere", &["baz"]),
        ("al rt", &["baz"]),
        ("", &["bar", "baz", "foo"]),
        ("%", &["bar", "baz", "foo"]),
        ("rb_r", &["bar"]),
        ("nothing-matches", &[]),
    ];
    for (search, expected) in cases {
        let v = list(
            Some(&top_a),
            &format!("?recurse=true&search={}", pct(search)),
        );
        assert_eq!(v["total"], 3, "{search}");
        assert_eq!(v["filtered"], expected.len(), "{search}");
        assert_eq!(usernames(&v), strings(expected), "{search}");
    }
    for nasty in [
        "'",
        "\\",
        "' OR 1=1 --",
        "\"; DROP TABLE auth_user; --",
        "\u{0}",
        "a\\",
        "[a-z]",
    ] {
        let v = list(
            Some(&top_a),
            &format!("?recurse=true&search={}", pct(nasty)),
        );
        assert_eq!(counts(&v), (3, 0), "{nasty:?}");
    }

    // Exact filters.
    let filters: [(String, &[&str]); 14] = [
        ("username=bar".into(), &["bar"]),
        ("username=BAR".into(), &[]),
        ("username=".into(), &[]),
        ("firstname=Albert".into(), &["baz"]),
        ("lastname=Zed".into(), &["foo"]),
        ("purpose=internal".into(), &["bar"]),
        ("purpose=user".into(), &["baz", "foo"]),
        (format!("uuid={}", uuid_of(&baz)), &["baz"]),
        ("email_address=foo@example.com".into(), &["foo"]),
        ("email_address=FOO@example.com".into(), &[]),
        (format!("username={}", pct("' OR 1=1 --")), &[]),
        (format!("username={}", pct("a\u{0}b")), &[]),
        ("unknown_param=1".into(), &["bar", "baz", "foo"]),
        ("tenant_uuid=nope".into(), &["bar", "baz", "foo"]),
    ];
    for (q, expected) in &filters {
        let v = list(Some(&top_a), &format!("?recurse=true&{q}"));
        assert_eq!(v["total"], 3, "{q}");
        assert_eq!(usernames(&v), strings(expected), "{q}");
        assert_eq!(v["filtered"], expected.len(), "{q}");
    }

    // Order and pagination (checklist 24).
    let order_cases: [(&str, &[&str]); 6] = [
        ("order=username&direction=desc", &["foo", "baz", "bar"]),
        ("order=username&direction=asc", &["bar", "baz", "foo"]),
        ("order=firstname", &["baz", "bar", "foo"]),
        ("order=lastname&direction=desc", &["foo", "bar", "baz"]),
        ("order=username&limit=1", &["bar"]),
        ("order=username&offset=1", &["baz", "foo"]),
    ];
    for (q, expected) in order_cases {
        let v = list(Some(&top_a), &format!("?recurse=true&{q}"));
        assert_eq!(counts(&v), (3, 3), "{q}");
        assert_eq!(usernames(&v), strings(expected), "{q}");
    }
    let v = list(
        Some(&top_a),
        "?recurse=true&limit=1&offset=1&direction=desc",
    );
    assert_eq!((counts(&v), usernames(&v)), ((3, 3), strings(&["baz"])));
    let v = list(Some(&top_a), "?recurse=true&limit=0");
    assert_eq!((counts(&v), usernames(&v)), ((3, 3), vec![]));
    let v = list(
        Some(&top_a),
        "?recurse=true&limit=9223372036854775807&offset=2",
    );
    assert_eq!(usernames(&v), strings(&["foo"]));
    let v = list(Some(&top_a), "?recurse=true&offset=9223372036854775807");
    assert_eq!((counts(&v), usernames(&v)), ((3, 3), vec![]));

    // Invalid list parameters (checklist 25).
    let bad: [(&str, Value); 7] = [
        (
            "limit=not%20a%20number",
            json!({"limit": ["Not a valid integer."]}),
        ),
        (
            "limit=-1",
            json!({"limit": ["Must be greater than or equal to 0."]}),
        ),
        (
            "offset=-1",
            json!({"offset": ["Must be greater than or equal to 0."]}),
        ),
        ("offset=1e3", json!({"offset": ["Not a valid integer."]})),
        (
            "direction=up",
            json!({"direction": ["Must be one of: asc, desc."]}),
        ),
        (
            "order=lol",
            json!({"order": ["Must be one of: username, firstname, lastname."]}),
        ),
        (
            "order=uuid",
            json!({"order": ["Must be one of: username, firstname, lastname."]}),
        ),
    ];
    for (q, message) in bad {
        let r = e.call("GET", &format!("/0.1/users?{q}"), Some(&top_a), None);
        assert_api_error(
            &r,
            400,
            json!({"message": message, "error_id": "invalid-list-param", "details": {}, "resource": "users"}),
        );
    }
    let r = e.call(
        "GET",
        "/0.1/users?order=username%3B%20DROP%20TABLE%20auth_user",
        None,
        None,
    );
    assert_eq!(r.status, 400);

    // Group and policy filters (checklist 26): policy_* direct only, has_policy_* also through
    // groups.
    let group = {
        let r = e.call(
            "POST",
            "/0.1/groups",
            Some(&sub),
            Some(json!({"name": "g1"})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        uuid_of(&r.json())
    };
    let direct = e.grant(&sub, &uuid_of(&baz), "direct-policy", &[]);
    let r = e.call(
        "POST",
        "/0.1/policies",
        Some(&sub),
        Some(json!({"name": "group-policy"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let via_group = uuid_of(&r.json());
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{group}/policies/{via_group}"),
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = e.call(
        "PUT",
        &format!("/0.1/groups/{group}/users/{}", uuid_of(&bar)),
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let slug = |p: &str| {
        sql(
            &e.s.db,
            &format!("SELECT slug FROM auth_policy WHERE uuid = '{p}'"),
        )[0][0]
            .clone()
            .unwrap()
    };
    let (direct_slug, group_slug) = (slug(&direct), slug(&via_group));
    let policy_filters: [(String, &[&str]); 11] = [
        (format!("group_uuid={group}"), &["bar"]),
        (format!("policy_uuid={direct}"), &["baz"]),
        (format!("policy_slug={direct_slug}"), &["baz"]),
        (format!("policy_uuid={via_group}"), &[]),
        (format!("policy_slug={group_slug}"), &[]),
        (format!("has_policy_uuid={direct}"), &["baz"]),
        (format!("has_policy_slug={direct_slug}"), &["baz"]),
        (format!("has_policy_uuid={via_group}"), &["bar"]),
        (format!("has_policy_slug={group_slug}"), &["bar"]),
        (format!("has_policy_uuid={UNKNOWN_UUID}"), &[]),
        (
            "policy_uuid=&has_policy_slug=".into(),
            &["bar", "baz", "foo"],
        ),
    ];
    for (q, expected) in &policy_filters {
        let v = list(Some(&top_a), &format!("?recurse=true&{q}"));
        assert_eq!(v["total"], 3, "{q}");
        assert_eq!(usernames(&v), strings(expected), "{q}");
        assert_eq!(v["filtered"], expected.len(), "{q}");
    }
    let v = list(
        Some(&top_a),
        &format!("?recurse=true&has_policy_uuid={via_group}&search=bar"),
    );
    assert_eq!((counts(&v), usernames(&v)), ((3, 1), strings(&["bar"])));
    let v = list(Some(&top_a), &format!("?has_policy_uuid={via_group}"));
    assert_eq!((counts(&v), usernames(&v)), ((1, 0), vec![]));
    let v = list(Some(&sub), &format!("?has_policy_uuid={via_group}"));
    assert_eq!((counts(&v), usernames(&v)), ((2, 1), strings(&["bar"])));
}
