//! Policies and policy associations (spec management §8, §9, §1.2 escalation guard; core §2.1):
//! `/policies[/{uuid|slug}[/acl/{access}]]`, `/users/{u}/policies[/{p}]`,
//! `/groups/{g}/policies[/{p}]`.

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

const SUB: &str = "11111111-1111-4111-8111-111111111111";
const SUBSUB: &str = "22222222-2222-4222-8222-222222222222";
const SIBLING: &str = "33333333-3333-4333-8333-333333333333";
const UNKNOWN: &str = "00000000-0000-4000-8000-0000000000ff";
/// Users of the example backend, also created in `auth_user` (their tokens' tenant is their
/// user's tenant).
const ROOT_UUID: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const SUBADMIN_UUID: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const LIMITED_UUID: &str = "aaaaaaaa-0000-4000-8000-000000000003";
const READER_UUID: &str = "aaaaaaaa-0000-4000-8000-000000000004";
/// Config-managed policies of the test configuration.
const NB_DEFAULT_POLICIES: usize = 2;
const LIMITED_ACL: &[&str] = &[
    "auth.policies.#",
    "auth.users.#",
    "auth.groups.#",
    "confd.#",
    "authorized",
    "!unauthorized",
];

struct Env {
    s: Server,
    top: String,
    /// `#`, top tenant (example backend, no user).
    root: String,
    /// `#`, tenant SUB.
    subadmin: String,
    /// [`LIMITED_ACL`], top tenant.
    limited: String,
    /// `auth.policies.read` only.
    reader: String,
}

fn one(db: &str, q: &str) -> String {
    sql(db, q)[0][0].clone().unwrap_or_default()
}

fn env() -> Env {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({
            "default_policies": {
                "wazo-all-users-policy": {"acl": ["integration_tests.access"]},
                "wazo_default_admin_policy": {"acl": ["admin.#"], "description": "admins"},
            },
            "all_users_policies": {"wazo-all-users-policy": true},
            "plugin_config": {"example_static": {"users": [
                {"login": "root", "password": "rootpw", "acl": ["#"], "uuid": ROOT_UUID},
                {"login": "subadmin", "password": "subpw", "acl": ["#"], "tenant_uuid": SUB,
                 "uuid": SUBADMIN_UUID},
                {"login": "limited", "password": "limitedpw", "acl": LIMITED_ACL,
                 "uuid": LIMITED_UUID},
                {"login": "reader", "password": "readerpw", "acl": ["auth.policies.read"],
                 "uuid": READER_UUID},
            ]}},
        }))
        .start();
    let top = one(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    );
    sql(
        &s.db,
        &format!(
            "INSERT INTO auth_tenant (uuid, name, slug, parent_uuid) VALUES ('{SUB}', 'sub', 'sub', '{top}');
             INSERT INTO auth_tenant (uuid, name, slug, parent_uuid) VALUES ('{SUBSUB}', 'subsub', 'subsub', '{SUB}');
             INSERT INTO auth_tenant (uuid, name, slug, parent_uuid) VALUES ('{SIBLING}', 'sibling', 'sibling', '{top}');
             INSERT INTO auth_user (uuid, username, tenant_uuid) VALUES
                 ('{ROOT_UUID}', 'root', '{top}'), ('{SUBADMIN_UUID}', 'subadmin', '{SUB}'),
                 ('{LIMITED_UUID}', 'limited', '{top}'), ('{READER_UUID}', 'reader', '{top}');"
        ),
    );
    let login = |l: &str, p: &str| {
        let r = s.login(l, p, json!({"backend": "example_static"}));
        assert_eq!(r.status, 200, "login {l}: {}", r.body);
        r.json()["data"]["token"].as_str().unwrap().to_string()
    };
    Env {
        root: login("root", "rootpw"),
        subadmin: login("subadmin", "subpw"),
        limited: login("limited", "limitedpw"),
        reader: login("reader", "readerpw"),
        top,
        s,
    }
}

/// Percent-encodes a path segment.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'!') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Env {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.s
            .call(method, &format!("/0.1{path}"), token, tenant, body.as_ref())
    }

    /// A request with a raw body.
    fn raw(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Resp {
        self.s.request(
            method,
            &format!("/0.1{path}"),
            &[
                ("X-Auth-Token", token),
                ("Content-Type", "application/json"),
            ],
            Some(body),
        )
    }

    /// Creates a policy as `token` (optionally in `tenant`) and returns it.
    fn create(&self, token: &str, tenant: Option<&str>, body: Value) -> Value {
        let r = self.call("POST", "/policies", token, tenant, Some(body.clone()));
        assert_eq!(r.status, 200, "create {body}: {}", r.body);
        r.json()
    }

    fn get(&self, token: &str, tenant: Option<&str>, id: &str) -> Resp {
        self.call(
            "GET",
            &format!("/policies/{}", enc(id)),
            token,
            tenant,
            None,
        )
    }

    fn list(&self, token: &str, tenant: Option<&str>, query: &str) -> Value {
        let r = self.call("GET", &format!("/policies?{query}"), token, tenant, None);
        assert_eq!(r.status, 200, "list {query}: {}", r.body);
        r.json()
    }

    fn names(&self, token: &str, tenant: Option<&str>, query: &str) -> Vec<String> {
        self.list(token, tenant, query)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn count(&self, q: &str) -> i64 {
        one(&self.s.db, q).parse().unwrap()
    }

    fn stored_acl(&self, uuid: &str) -> String {
        one(
            &self.s.db,
            &format!("SELECT acl::text FROM auth_policy WHERE uuid = '{uuid}'"),
        )
    }

    fn user(&self, tenant: &str, username: &str) -> String {
        one(
            &self.s.db,
            &format!(
                "INSERT INTO auth_user (username, tenant_uuid) VALUES ('{username}', '{tenant}') RETURNING uuid"
            ),
        )
    }

    fn group(&self, tenant: &str, name: &str) -> String {
        one(
            &self.s.db,
            &format!(
                "INSERT INTO auth_group (name, slug, tenant_uuid) VALUES ('{name}', '{name}', '{tenant}') RETURNING uuid"
            ),
        )
    }
}

/// A shape-A ("token-service") error with exactly this reason.
fn assert_reason(r: &Resp, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let b = r.json();
    assert_eq!(b["reason"], json!([reason]), "{}", r.body);
    assert_eq!(b["status_code"], json!(status));
    assert!(b["timestamp"][0].is_f64(), "{}", r.body);
    assert_eq!(b.as_object().unwrap().len(), 3, "{}", r.body);
}

/// The 401 of the escalation guard.
fn assert_escalation(r: &Resp, token: &str, access: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    let b = r.json();
    assert_eq!(b["message"], "Unauthorized");
    assert_eq!(b["error_id"], "unauthorized");
    assert_eq!(
        b["details"],
        json!({"invalid_token": token, "required_access": access})
    );
    assert!(b["timestamp"].is_f64());
    assert!(b.get("resource").is_none(), "{}", r.body);
}

fn assert_no_policy(r: &Resp, key: &str, value: &str) {
    assert_reason(r, 404, &format!("No such policy {{'{key}': '{value}'}}"));
}

fn assert_forbidden(r: &Resp, uuid: &str) {
    assert_reason(r, 403, &format!("Forbidden policy deletion: \"{uuid}\""));
}

fn policy_keys(p: &Value) -> Vec<String> {
    let mut k: Vec<String> = p.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn create_get_and_validate() {
    let e = env();
    let root = e.root.as_str();

    // Minimal body: slug from name, null description, empty ACL, not shared, scoping tenant.
    let foobaz = e.create(root, None, json!({"name": "foobaz"}));
    let uuid = foobaz["uuid"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36);
    assert_eq!(
        foobaz,
        json!({"uuid": uuid, "tenant_uuid": e.top, "name": "foobaz", "slug": "foobaz",
               "description": null, "acl": [], "read_only": false, "shared": false})
    );
    assert_eq!(
        policy_keys(&foobaz),
        [
            "acl",
            "description",
            "name",
            "read_only",
            "shared",
            "slug",
            "tenant_uuid",
            "uuid"
        ]
    );

    // Full body: tenant_uuid and unknown keys ignored, duplicate accesses dropped, order kept.
    let full = e.create(
        root,
        None,
        json!({"name": "foobar", "slug": "slug1", "description": "a test policy",
               "acl": ["dird.me.#", "ctid-ng.#", "dird.me.#"], "shared": false,
               "tenant_uuid": SUB, "whatever": 1}),
    );
    assert_eq!(full["tenant_uuid"], json!(e.top));
    assert_eq!(full["slug"], "slug1");
    assert_eq!(full["description"], "a test policy");
    assert_eq!(full["acl"], json!(["dird.me.#", "ctid-ng.#"]));
    let full_uuid = full["uuid"].as_str().unwrap();
    assert_eq!(e.stored_acl(full_uuid), "{dird.me.#,ctid-ng.#}");

    // GET by uuid (any case) and by slug.
    let r = e.get(root, None, full_uuid);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), full);
    assert_eq!(e.get(root, None, &full_uuid.to_uppercase()).json(), full);
    assert_eq!(e.get(root, None, "slug1").json(), full);
    // Slugs are matched exactly.
    assert_no_policy(&e.get(root, None, "SLUG1"), "slug", "SLUG1");
    assert_no_policy(&e.get(root, None, UNKNOWN), "uuid", UNKNOWN);
    assert_no_policy(&e.get(root, None, "unknown"), "slug", "unknown");
    assert_reason(
        &e.get(root, None, "it's"),
        404,
        "No such policy {'slug': \"it's\"}",
    );

    // Authentication and the required ACLs (dots of values become underscores).
    let r = e.call("GET", "/policies", "", None, None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["details"]["required_access"], "auth.policies.read");
    let r = e.call(
        "POST",
        "/policies",
        &e.reader,
        None,
        Some(json!({"name": "x"})),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["details"]["required_access"],
        "auth.policies.create"
    );
    assert_eq!(e.list(&e.reader, None, "")["total"], json!(5));
    let r = e.get(&e.reader, None, full_uuid);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["details"]["required_access"],
        json!(format!("auth.policies.{full_uuid}.read"))
    );
    let r = e.get(&e.reader, None, "my.slug");
    assert_eq!(
        r.json()["details"]["required_access"],
        "auth.policies.my_slug.read"
    );
    let r = e.call(
        "PUT",
        &format!("/policies/{full_uuid}/acl/a.b"),
        &e.reader,
        None,
        None,
    );
    assert_eq!(
        r.json()["details"]["required_access"],
        json!(format!("auth.policies.{full_uuid}.update"))
    );
    let r = e.call("DELETE", "/policies/slug1", &e.reader, None, None);
    assert_eq!(
        r.json()["details"]["required_access"],
        "auth.policies.slug1.delete"
    );

    // Methods.
    assert_eq!(e.call("PATCH", "/policies", root, None, None).status, 405);
    assert_eq!(
        e.call("POST", &format!("/policies/{full_uuid}"), root, None, None)
            .status,
        405
    );
    assert_eq!(
        e.call(
            "GET",
            &format!("/policies/{full_uuid}/acl/x"),
            root,
            None,
            None
        )
        .status,
        405
    );

    // Invalid bodies: shape A, first invalid field; non-objects → _schema; falsy → {}.
    let before = e.count("SELECT count(*) FROM auth_policy");
    for (body, field) in [
        (json!({"foo": "bar"}), "name"),
        (json!(42), "_schema"),
        (json!(true), "_schema"),
        (json!(false), "name"),
        (json!(null), "name"),
        (json!("string"), "_schema"),
        (json!([{"list": "dict"}]), "_schema"),
        (json!([42]), "_schema"),
        (json!(["#", false]), "_schema"),
        (json!([null]), "_schema"),
        (json!({"name": null}), "name"),
        (json!({"name": true}), "name"),
        (json!({"name": false}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": 42}), "name"),
        (json!({"name": "x".repeat(81)}), "name"),
        (json!({"name": "nul\u{0}"}), "name"),
        (json!({"name": 42, "description": 42}), "name"),
        (json!({"name": "n", "description": true}), "description"),
        (json!({"name": "n", "description": false}), "description"),
        (json!({"name": "n", "description": 42}), "description"),
        (json!({"name": "n", "slug": "a b"}), "slug"),
        (json!({"name": "n", "slug": ""}), "slug"),
        (json!({"name": "n", "slug": "x".repeat(81)}), "slug"),
        (json!({"name": "n", "slug": "é"}), "slug"),
        (json!({"name": "n", "slug": 1, "description": 2}), "slug"),
        (json!({"name": "n", "acl": null}), "acl"),
        (json!({"name": "n", "acl": "a.b"}), "acl"),
        (json!({"name": "n", "acl": ["a", 1]}), "acl"),
        (json!({"name": "n", "acl": {"a": 1}}), "acl"),
        (json!({"name": "n", "shared": null}), "shared"),
        (json!({"name": "n", "shared": "maybe"}), "shared"),
        (json!({"name": "n", "shared": 2}), "shared"),
    ] {
        let r = e.raw("POST", "/policies", root, body.to_string().as_bytes());
        assert_reason(
            &r,
            400,
            &format!("Invalid value supplied for field: {field}"),
        );
    }
    // Empty, invalid JSON, non-UTF-8: the framework's 400.
    for raw in [&b""[..], b"{not json", b"{\"name\": \"\xff\"}"] {
        let r = e.raw("POST", "/policies", root, raw);
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .starts_with("Failed to decode JSON object"),
            "{}",
            r.body
        );
    }
    // Too large (over the default 1 MiB).
    let big = json!({"name": "big", "description": "x".repeat(1_100_000)});
    assert_eq!(
        e.raw("POST", "/policies", root, big.to_string().as_bytes())
            .status,
        413
    );
    assert_eq!(e.count("SELECT count(*) FROM auth_policy"), before);

    // Limits: 80 characters (not bytes) for name and slug.
    let long = e.create(
        root,
        None,
        json!({"name": "é".repeat(80), "slug": "s".repeat(80)}),
    );
    assert_eq!(long["slug"], json!("s".repeat(80)));
    // Loose booleans as marshmallow.
    assert_eq!(
        e.create(root, None, json!({"name": "loose", "shared": "no"}))["shared"],
        false
    );
    // SQL metacharacters are data.
    let evil = "x'); DROP TABLE auth_policy; --";
    let p = e.create(
        root,
        None,
        json!({"name": evil, "description": "%_\\", "acl": ["a'b", "c\"d"]}),
    );
    assert_eq!(p["name"], evil);
    assert_eq!(p["slug"], "xDROPTABLEauth_policy--");
    assert_eq!(p["acl"], json!(["a'b", "c\"d"]));
    assert_eq!(e.get(root, None, p["uuid"].as_str().unwrap()).json(), p);

    // Conflicts: name, slug (case-insensitive); nothing left behind.
    e.create(root, None, json!({"name": "dup", "slug": "dup"}));
    let before = e.count("SELECT count(*) FROM auth_policy");
    for body in [
        json!({"name": "dup"}),
        json!({"name": "dup", "slug": "other"}),
        json!({"name": "dup2", "slug": "DUP"}),
    ] {
        let r = e.call("POST", "/policies", root, None, Some(body.clone()));
        let name = body["name"].as_str().unwrap();
        assert_reason(&r, 409, &format!("Policy \"{name}\" already exists"));
    }
    assert_eq!(e.count("SELECT count(*) FROM auth_policy"), before);

    // Slug generation: name taken as slug (any case) → 3 random characters; no usable
    // character → random too.
    e.create(root, None, json!({"name": "taken", "slug": "first"}));
    let g = e.create(root, None, json!({"name": "First"}));
    let slug = g["slug"].as_str().unwrap();
    assert_eq!(slug.len(), 3, "{g}");
    assert!(slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    let g = e.create(root, None, json!({"name": "ééé"}));
    assert_eq!(g["slug"].as_str().unwrap().len(), 3, "{g}");
    // Same slug in another tenant is fine; generated from the name there.
    let other = e.create(root, Some(SUB), json!({"name": "first"}));
    assert_eq!(other["slug"], "first");
    assert_eq!(other["tenant_uuid"], SUB);
    let other = e.create(root, Some(SUB), json!({"name": "dup", "slug": "dup"}));
    assert_eq!(other["tenant_uuid"], SUB);

    // Wazo-Tenant outside the caller's tree → 401 unauthorized-tenant, nothing created.
    let before = e.count("SELECT count(*) FROM auth_policy");
    for tenant in [e.top.as_str(), SIBLING, UNKNOWN, "garbage"] {
        let r = e.call(
            "POST",
            "/policies",
            &e.subadmin,
            Some(tenant),
            Some(json!({"name": "nope"})),
        );
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(
            r.json(),
            json!({"message": "Unauthorized tenant", "error_id": "unauthorized-tenant",
                   "details": {"tenant_uuid": tenant}, "timestamp": r.json()["timestamp"]})
        );
    }
    assert_eq!(e.count("SELECT count(*) FROM auth_policy"), before);
    // The sub-tenant administrator creates in its tenant or a descendant.
    assert_eq!(
        e.create(&e.subadmin, None, json!({"name": "mine"}))["tenant_uuid"],
        SUB
    );
    assert_eq!(
        e.create(&e.subadmin, Some(SUBSUB), json!({"name": "mine"}))["tenant_uuid"],
        SUBSUB
    );
}

#[test]
fn update_delete_and_accesses() {
    let e = env();
    let root = e.root.as_str();
    let p = e.create(
        root,
        None,
        json!({"name": "foobar", "slug": "ABC", "description": "a test policy",
               "acl": ["dird.me.#", "ctid-ng.#"]}),
    );
    let uuid = p["uuid"].as_str().unwrap().to_string();
    let other = e.create(root, None, json!({"name": "other"}));

    // Full replacement: description and ACL reset when omitted; slug and shared immutable.
    let r = e.call(
        "PUT",
        &format!("/policies/{uuid}"),
        root,
        None,
        Some(json!({"name": "foobaz", "slug": "DEF", "shared": true})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"uuid": uuid, "tenant_uuid": e.top, "name": "foobaz", "slug": "ABC",
               "description": null, "acl": [], "read_only": false, "shared": false})
    );
    // Putting back the whole representation is accepted.
    let mut again = r.json();
    again["acl"] = json!(["b", "a", "b"]);
    again["description"] = json!("d");
    let r = e.call("PUT", &format!("/policies/{uuid}"), root, None, Some(again));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["acl"], json!(["b", "a"]));
    assert_eq!(e.stored_acl(&uuid), "{b,a}");
    // By slug (exact).
    let r = e.call(
        "PUT",
        "/policies/ABC",
        root,
        None,
        Some(json!({"name": "by-slug", "acl": ["x"]})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.json()["name"].clone(), r.json()["acl"].clone()),
        (json!("by-slug"), json!(["x"]))
    );
    assert_no_policy(
        &e.call(
            "PUT",
            "/policies/abc",
            root,
            None,
            Some(json!({"name": "n"})),
        ),
        "slug",
        "abc",
    );
    assert_no_policy(
        &e.call(
            "PUT",
            &format!("/policies/{UNKNOWN}"),
            root,
            None,
            Some(json!({"name": "n"})),
        ),
        "uuid",
        UNKNOWN,
    );
    // 400 before 404 for a uuid.
    assert_reason(
        &e.call(
            "PUT",
            &format!("/policies/{UNKNOWN}"),
            root,
            None,
            Some(json!({"name": 42})),
        ),
        400,
        "Invalid value supplied for field: name",
    );
    assert_reason(
        &e.call(
            "PUT",
            &format!("/policies/{uuid}"),
            root,
            None,
            Some(json!({"name": "n", "acl": [1]})),
        ),
        400,
        "Invalid value supplied for field: acl",
    );
    assert_eq!(
        e.raw("PUT", &format!("/policies/{uuid}"), root, b"").status,
        400
    );
    // Name of another policy of the tenant → 409, unchanged.
    assert_reason(
        &e.call(
            "PUT",
            &format!("/policies/{uuid}"),
            root,
            None,
            Some(json!({"name": "other"})),
        ),
        409,
        "Policy \"other\" already exists",
    );
    assert_eq!(e.get(root, None, &uuid).json()["name"], "by-slug");

    // Accesses: PUT appends (percent-decoded segment), twice → 409; DELETE idempotent.
    let acl_path =
        |policy: &str, access: &str| format!("/policies/{}/acl/{}", enc(policy), enc(access));
    for access in ["new.access.#", "a/b", "100%", "sp ace+plus", "ünï"] {
        let r = e.call("PUT", &acl_path(&uuid, access), root, None, None);
        assert_eq!(r.status, 204, "{access}: {}", r.body);
        assert!(r.body.is_empty());
    }
    assert_eq!(
        e.get(root, None, &uuid).json()["acl"],
        json!(["x", "new.access.#", "a/b", "100%", "sp ace+plus", "ünï"])
    );
    assert_reason(
        &e.call("PUT", &acl_path(&uuid, "new.access.#"), root, None, None),
        409,
        "Policy already associated to new.access.#",
    );
    assert_eq!(
        e.call("DELETE", &acl_path(&uuid, "a/b"), root, None, None)
            .status,
        204
    );
    assert_eq!(
        e.call("DELETE", &acl_path(&uuid, "a/b"), root, None, None)
            .status,
        204
    );
    assert_eq!(
        e.call("DELETE", &acl_path(&uuid, "never"), root, None, None)
            .status,
        204
    );
    // By slug.
    assert_eq!(
        e.call("PUT", &acl_path("ABC", "by.slug"), root, None, None)
            .status,
        204
    );
    assert_eq!(
        e.call("DELETE", &acl_path("ABC", "x"), root, None, None)
            .status,
        204
    );
    assert_eq!(
        e.get(root, None, &uuid).json()["acl"],
        json!(["new.access.#", "100%", "sp ace+plus", "ünï", "by.slug"])
    );
    assert_eq!(
        e.stored_acl(&uuid),
        "{new.access.#,100%,\"sp ace+plus\",ünï,by.slug}"
    );
    for method in ["PUT", "DELETE"] {
        assert_no_policy(
            &e.call(method, &acl_path(UNKNOWN, "a"), root, None, None),
            "uuid",
            UNKNOWN,
        );
        assert_no_policy(
            &e.call(method, &acl_path("unknown", "a"), root, None, None),
            "slug",
            "unknown",
        );
    }

    // DELETE: associations go with the policy; second DELETE → 404.
    let user = e.user(&e.top, "u1");
    let group = e.group(&e.top, "g1");
    assert_eq!(
        e.call(
            "PUT",
            &format!("/users/{user}/policies/{uuid}"),
            root,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(
        e.call(
            "PUT",
            &format!("/groups/{group}/policies/{uuid}"),
            root,
            None,
            None
        )
        .status,
        204
    );
    let r = e.call("DELETE", &format!("/policies/{uuid}"), root, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_empty());
    assert_eq!(
        e.count(&format!(
            "SELECT count(*) FROM auth_user_policy WHERE policy_uuid = '{uuid}'"
        )),
        0
    );
    assert_eq!(
        e.count(&format!(
            "SELECT count(*) FROM auth_group_policy WHERE policy_uuid = '{uuid}'"
        )),
        0
    );
    assert_no_policy(
        &e.call("DELETE", &format!("/policies/{uuid}"), root, None, None),
        "uuid",
        &uuid,
    );
    assert_no_policy(
        &e.call("DELETE", "/policies/unknown", root, None, None),
        "slug",
        "unknown",
    );
    let r = e.call("DELETE", "/policies/other", root, None, None);
    assert_eq!(r.status, 204);
    assert_no_policy(
        &e.get(root, None, other["uuid"].as_str().unwrap()),
        "uuid",
        other["uuid"].as_str().unwrap(),
    );
}

#[test]
fn tenants_shared_and_read_only_policies() {
    let e = env();
    let (root, sub) = (e.root.as_str(), e.subadmin.as_str());

    // Config-managed policies: visible everywhere, presented in the viewer's tenant, read-only.
    let all_users = e.list(root, None, "slug=wazo-all-users-policy")["items"][0].clone();
    let all_users_uuid = all_users["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        all_users,
        json!({"uuid": all_users_uuid, "tenant_uuid": e.top, "name": "wazo-all-users-policy",
               "slug": "wazo-all-users-policy", "description": "Automatically created",
               "acl": ["integration_tests.access"], "read_only": true, "shared": false})
    );
    for (token, tenant, expected) in [
        (root, Some(SUB), SUB),
        (sub, None, SUB),
        (sub, Some(SUBSUB), SUBSUB),
        (root, Some(SIBLING), SIBLING),
    ] {
        let items = e.list(token, tenant, "")["items"].clone();
        let found = items
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["slug"] == "wazo-all-users-policy")
            .cloned()
            .unwrap_or_else(|| panic!("not listed from {tenant:?}: {items}"));
        assert_eq!(found["tenant_uuid"], json!(expected));
        assert_eq!(found["read_only"], true);
        let r = e.get(token, tenant, &all_users_uuid);
        assert_eq!(r.json()["tenant_uuid"], json!(expected));
        assert_eq!(
            e.get(token, tenant, "wazo-all-users-policy").json()["uuid"],
            json!(all_users_uuid)
        );
    }
    // Read-only: PUT, DELETE and the ACL endpoints → 403, unchanged.
    let path = format!("/policies/{all_users_uuid}");
    assert_forbidden(
        &e.call("PUT", &path, root, None, Some(json!({"name": "x"}))),
        &all_users_uuid,
    );
    assert_forbidden(&e.call("DELETE", &path, root, None, None), &all_users_uuid);
    assert_forbidden(
        &e.call(
            "DELETE",
            "/policies/wazo-all-users-policy",
            root,
            None,
            None,
        ),
        &all_users_uuid,
    );
    assert_forbidden(
        &e.call("PUT", &format!("{path}/acl/more"), root, None, None),
        &all_users_uuid,
    );
    assert_forbidden(
        &e.call(
            "DELETE",
            &format!("{path}/acl/integration_tests.access"),
            sub,
            None,
            None,
        ),
        &all_users_uuid,
    );
    assert_eq!(e.get(root, None, &all_users_uuid).json(), all_users);

    // A shared policy of the top tenant.
    let shared = e.create(
        root,
        None,
        json!({"name": "top-shared", "slug": "top", "shared": true, "acl": ["s"]}),
    );
    let shared_uuid = shared["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        (shared["shared"].clone(), shared["read_only"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(e.get(root, None, &shared_uuid).json(), shared);
    // Seen from below: the viewer's tenant, read-only, not shared.
    for (token, tenant, expected) in [
        (root, Some(SUB), SUB),
        (sub, None, SUB),
        (sub, Some(SUBSUB), SUBSUB),
    ] {
        let seen = e.get(token, tenant, &shared_uuid).json();
        let mut want = shared.clone();
        want["tenant_uuid"] = json!(expected);
        want["read_only"] = json!(true);
        want["shared"] = json!(false);
        assert_eq!(seen, want);
        assert_eq!(e.get(token, tenant, "top").json(), want);
        assert!(e.list(token, tenant, "")["items"]
            .as_array()
            .unwrap()
            .contains(&want));
    }
    // Not editable from below; editable by its owner.
    let spath = format!("/policies/{shared_uuid}");
    assert_forbidden(
        &e.call(
            "PUT",
            &spath,
            sub,
            None,
            Some(json!({"name": "x", "acl": ["s"]})),
        ),
        &shared_uuid,
    );
    assert_forbidden(&e.call("DELETE", &spath, sub, None, None), &shared_uuid);
    assert_forbidden(
        &e.call("DELETE", "/policies/top", sub, None, None),
        &shared_uuid,
    );
    assert_forbidden(
        &e.call("PUT", &format!("{spath}/acl/more"), sub, None, None),
        &shared_uuid,
    );
    let r = e.call(
        "PUT",
        &spath,
        root,
        None,
        Some(json!({"name": "top-shared", "acl": ["s", "t"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["shared"], true);

    // Conflicts with shared policies of the tenant or its ancestors.
    for body in [
        json!({"name": "top", "slug": "top"}),
        json!({"name": "top-shared", "slug": "zzz"}),
    ] {
        let r = e.call("POST", "/policies", sub, None, Some(body.clone()));
        assert_reason(
            &r,
            409,
            &format!(
                "Policy \"{}\" already exists",
                body["name"].as_str().unwrap()
            ),
        );
        let r = e.call("POST", "/policies", sub, Some(SUBSUB), Some(body.clone()));
        assert_eq!(r.status, 409);
    }
    // A shared policy conflicts with its tenant's descendants; non-shared does not.
    e.create(sub, Some(SUBSUB), json!({"name": "child", "slug": "child"}));
    let r = e.call(
        "POST",
        "/policies",
        root,
        None,
        Some(json!({"name": "child", "slug": "child", "shared": true})),
    );
    assert_reason(&r, 409, "Policy \"child\" already exists");
    let r = e.call(
        "POST",
        "/policies",
        sub,
        None,
        Some(json!({"name": "other-name", "slug": "child", "shared": true})),
    );
    assert_reason(&r, 409, "Policy \"other-name\" already exists");
    e.create(root, None, json!({"name": "child", "slug": "child"}));
    e.create(sub, None, json!({"name": "child", "slug": "child"}));

    // A sub-tenant's shared policy: visible below it, not from a sibling nor above as shared.
    let sub_shared = e.create(sub, None, json!({"name": "sub-shared", "shared": true}));
    let sub_shared_uuid = sub_shared["uuid"].as_str().unwrap();
    assert_eq!(
        e.get(sub, Some(SUBSUB), sub_shared_uuid).json()["read_only"],
        true
    );
    assert_no_policy(
        &e.get(root, Some(SIBLING), sub_shared_uuid),
        "uuid",
        sub_shared_uuid,
    );
    let from_top = e.get(root, None, sub_shared_uuid).json();
    assert_eq!(
        (
            from_top["tenant_uuid"].clone(),
            from_top["read_only"].clone(),
            from_top["shared"].clone()
        ),
        (json!(SUB), json!(false), json!(true))
    );

    // Sub-tenant administrator: top policies invisible (404), the top tenant forbidden (401).
    let private = e.create(root, None, json!({"name": "private", "slug": "private"}));
    let private_uuid = private["uuid"].as_str().unwrap();
    assert_no_policy(&e.get(sub, None, private_uuid), "uuid", private_uuid);
    assert_no_policy(&e.get(sub, None, "private"), "slug", "private");
    assert_no_policy(
        &e.call(
            "PUT",
            &format!("/policies/{private_uuid}"),
            sub,
            None,
            Some(json!({"name": "x"})),
        ),
        "uuid",
        private_uuid,
    );
    assert_no_policy(
        &e.call(
            "DELETE",
            &format!("/policies/{private_uuid}"),
            sub,
            None,
            None,
        ),
        "uuid",
        private_uuid,
    );
    assert_no_policy(
        &e.call(
            "PUT",
            &format!("/policies/{private_uuid}/acl/x"),
            sub,
            None,
            None,
        ),
        "uuid",
        private_uuid,
    );
    assert_no_policy(
        &e.call(
            "DELETE",
            &format!("/policies/{private_uuid}/acl/x"),
            sub,
            None,
            None,
        ),
        "uuid",
        private_uuid,
    );
    let r = e.get(sub, Some(&e.top), private_uuid);
    assert_eq!(
        (r.status, r.json()["error_id"].clone()),
        (401, json!("unauthorized-tenant"))
    );

    // Slugs resolve in the scoping tenant only; uuids in the visible tenants.
    let in_sub = e.create(
        sub,
        None,
        json!({"name": "in-sub", "slug": "slug_in_sub_tenant"}),
    );
    let in_sub_uuid = in_sub["uuid"].as_str().unwrap();
    assert_no_policy(
        &e.get(root, None, "slug_in_sub_tenant"),
        "slug",
        "slug_in_sub_tenant",
    );
    assert_eq!(e.get(root, Some(SUB), "slug_in_sub_tenant").json(), in_sub);
    assert_eq!(e.get(root, None, in_sub_uuid).json(), in_sub);
    assert_no_policy(
        &e.call(
            "PUT",
            "/policies/slug_in_sub_tenant",
            root,
            None,
            Some(json!({"name": "n"})),
        ),
        "slug",
        "slug_in_sub_tenant",
    );
    assert_no_policy(
        &e.call(
            "PUT",
            "/policies/slug_in_sub_tenant/acl/x",
            root,
            None,
            None,
        ),
        "slug",
        "slug_in_sub_tenant",
    );
    // The response shows the real owner.
    let r = e.call(
        "PUT",
        &format!("/policies/{in_sub_uuid}"),
        root,
        None,
        Some(json!({"name": "renamed"})),
    );
    assert_eq!(
        (r.status, r.json()["tenant_uuid"].clone()),
        (200, json!(SUB))
    );
    assert_eq!(
        e.call(
            "PUT",
            &format!("/policies/{in_sub_uuid}/acl/added"),
            root,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(
        e.get(sub, None, "slug_in_sub_tenant").json()["acl"],
        json!(["added"])
    );
    assert_eq!(
        e.call("DELETE", "/policies/slug_in_sub_tenant", sub, None, None)
            .status,
        204
    );
    assert_no_policy(&e.get(root, None, in_sub_uuid), "uuid", in_sub_uuid);
    // The top tenant deletes a sub-tenant policy by uuid.
    let r = e.call(
        "DELETE",
        &format!("/policies/{sub_shared_uuid}"),
        root,
        None,
        None,
    );
    assert_eq!(r.status, 204);
}

#[test]
fn listing() {
    let e = env();
    let root = e.root.as_str();
    let one_ = e.create(
        root,
        Some(SUB),
        json!({"name": "one", "description": "first policy"}),
    );
    let two = e.create(
        root,
        Some(SUB),
        json!({"name": "two", "description": "second"}),
    );
    let three = e.create(root, Some(SUB), json!({"name": "three", "slug": "trois"}));
    let defaults = ["wazo-all-users-policy", "wazo_default_admin_policy"];
    let nb = 3 + NB_DEFAULT_POLICIES;
    let s = Some(SUB);

    let all = e.list(root, s, "");
    assert_eq!(
        all.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["items", "total"]
    );
    assert_eq!(all["total"], json!(nb));
    assert_eq!(
        e.names(root, s, ""),
        ["one", "three", "two", defaults[0], defaults[1]]
    );
    assert_eq!(all["items"][0], one_);
    assert_eq!(
        e.names(root, s, "order=name&direction=desc"),
        [defaults[1], defaults[0], "two", "three", "one"]
    );
    assert_eq!(
        e.names(root, s, "order=slug&read_only=false"),
        ["one", "three", "two"]
    );
    assert_eq!(
        e.names(root, s, "order=description&read_only=false"),
        ["one", "two", "three"]
    );
    let mut by_uuid = [&one_, &two, &three];
    by_uuid.sort_by_key(|p| p["uuid"].as_str().unwrap().to_string());
    assert_eq!(
        e.names(root, s, "order=uuid&read_only=false"),
        by_uuid
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect::<Vec<_>>()
    );

    // Search (name, description); total stays the scope's count.
    let r = e.list(root, s, "search=one");
    assert_eq!(
        (r["total"].clone(), r["items"].clone()),
        (json!(nb), json!([one_]))
    );
    assert_eq!(e.names(root, s, "search=second"), ["two"]);
    assert_eq!(e.names(root, s, "search=FIRST%20pol"), ["one"]);
    assert_eq!(e.names(root, s, "search=admins"), [defaults[1]]);
    assert_eq!(
        e.names(
            root,
            s,
            "search=%27%3B%20DROP%20TABLE%20auth_policy%3B%20--"
        ),
        Vec::<String>::new()
    );
    // read_only.
    let r = e.list(root, s, "read_only=false");
    assert_eq!(r["total"], json!(nb));
    assert_eq!(e.names(root, s, "read_only=false"), ["one", "three", "two"]);
    assert_eq!(e.names(root, s, "read_only=true"), defaults);
    // Pagination.
    let r = e.list(root, s, "order=name&limit=1");
    assert_eq!(
        (r["total"].clone(), r["items"].clone()),
        (json!(nb), json!([one_]))
    );
    assert_eq!(
        e.names(root, s, "order=name&offset=1&read_only=false"),
        ["three", "two"]
    );
    assert_eq!(e.names(root, s, "limit=0"), Vec::<String>::new());
    assert_eq!(
        e.names(
            root,
            s,
            "limit=9223372036854775807&offset=9223372036854775807"
        ),
        Vec::<String>::new()
    );
    // Filters (exact).
    assert_eq!(e.names(root, s, "name=two"), ["two"]);
    assert_eq!(e.names(root, s, "name=Two"), Vec::<String>::new());
    assert_eq!(e.names(root, s, "slug=trois"), ["three"]);
    assert_eq!(
        e.names(root, s, &format!("uuid={}", two["uuid"].as_str().unwrap())),
        ["two"]
    );
    assert_eq!(
        e.names(root, s, &format!("tenant_uuid={SUB}")),
        ["one", "three", "two"]
    );
    assert_eq!(
        e.names(root, s, &format!("tenant_uuid={}", e.top)),
        defaults
    );
    let user = e.user(SUB, "lister");
    let group = e.group(SUB, "listers");
    let two_uuid = two["uuid"].as_str().unwrap();
    assert_eq!(
        e.call(
            "PUT",
            &format!("/users/{user}/policies/{two_uuid}"),
            root,
            s,
            None
        )
        .status,
        204
    );
    assert_eq!(
        e.call(
            "PUT",
            &format!("/groups/{group}/policies/trois"),
            root,
            s,
            None
        )
        .status,
        204
    );
    assert_eq!(e.names(root, s, &format!("user_uuid={user}")), ["two"]);
    assert_eq!(e.names(root, s, &format!("group_uuid={group}")), ["three"]);
    assert_eq!(e.names(root, s, "group_uuid=nope"), Vec::<String>::new());

    // Bad list parameters.
    let r = e.call("GET", "/policies?order=read_only", root, s, None);
    assert_reason(&r, 400, "Invalid sort column: read_only");
    for q in [
        "order=lol",
        "direction=up",
        "limit=-1",
        "limit=abc",
        "offset=-1",
        "limit=99999999999999999999",
        "read_only=maybe",
        "recurse=perhaps",
    ] {
        let r = e.call("GET", &format!("/policies?{q}"), root, s, None);
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert_eq!(r.json()["error_id"], "invalid-list-param", "{q}");
    }

    // recurse: from the top tenant, sub-tenant policies appear with their real owner.
    let top_names = e.names(root, None, "");
    assert_eq!(
        top_names,
        [defaults[0], defaults[1], "wazo_default_master_user_policy"]
    );
    assert_eq!(e.list(root, None, "")["total"], json!(3));
    let r = e.list(root, None, "recurse=true");
    assert_eq!(r["total"], json!(6));
    let items = r["items"].as_array().unwrap();
    assert!(items.contains(&one_), "{r}");
    assert_eq!(
        e.names(root, None, "recurse=true&read_only=false"),
        ["one", "three", "two", "wazo_default_master_user_policy"]
    );
    // From a sibling: defaults only.
    assert_eq!(e.names(root, Some(SIBLING), ""), defaults);
    // An unauthorized tenant.
    assert_eq!(
        e.call("GET", "/policies", &e.subadmin, Some(SIBLING), None)
            .status,
        401
    );
}

#[test]
fn escalation_guard() {
    let e = env();
    let (root, lim) = (e.root.as_str(), e.limited.as_str());
    let before = e.count("SELECT count(*) FROM auth_policy");

    // Create: every access must be granted to the caller; negatives are always allowed.
    let r = e.call(
        "POST",
        "/policies",
        lim,
        None,
        Some(json!({"name": "no", "acl": ["authorized", "auth.tenants.read"]})),
    );
    assert_escalation(&r, lim, "auth.tenants.read");
    let r = e.call(
        "POST",
        "/policies",
        lim,
        None,
        Some(json!({"name": "no", "acl": ["unauthorized"]})),
    );
    assert_escalation(&r, lim, "unauthorized");
    // An empty access is not granted either; the detail is then left out, as the original.
    let r = e.call(
        "POST",
        "/policies",
        lim,
        None,
        Some(json!({"name": "no", "acl": [""]})),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["details"], json!({"invalid_token": lim}));
    assert_eq!(e.count("SELECT count(*) FROM auth_policy"), before);
    let p = e.create(
        lim,
        None,
        json!({"name": "yes", "acl": ["authorized", "!x", "confd.users.read"]}),
    );
    assert_eq!(p["acl"], json!(["authorized", "!x", "confd.users.read"]));
    let uuid = p["uuid"].as_str().unwrap().to_string();
    let path = format!("/policies/{uuid}");

    // Update: added accesses must be granted (checked before the 404), removed ones too.
    let r = e.call(
        "PUT",
        &path,
        lim,
        None,
        Some(json!({"name": "yes", "acl": ["authorized", "!x", "auth.tenants.read"]})),
    );
    assert_escalation(&r, lim, "auth.tenants.read");
    let r = e.call(
        "PUT",
        &format!("/policies/{UNKNOWN}"),
        lim,
        None,
        Some(json!({"name": "yes", "acl": ["auth.tenants.read"]})),
    );
    assert_escalation(&r, lim, "auth.tenants.read");
    assert_no_policy(
        &e.call(
            "PUT",
            &format!("/policies/{UNKNOWN}"),
            lim,
            None,
            Some(json!({"name": "yes"})),
        ),
        "uuid",
        UNKNOWN,
    );
    let restrictive = e.create(
        root,
        None,
        json!({"name": "restrictive", "acl": ["authorized", "!anything", "!unauthorized"]}),
    );
    let rpath = format!("/policies/{}", restrictive["uuid"].as_str().unwrap());
    let r = e.call(
        "PUT",
        &rpath,
        lim,
        None,
        Some(json!({"name": "restrictive", "acl": ["authorized", "!anything"]})),
    );
    assert_escalation(&r, lim, "!unauthorized");
    let r = e.call(
        "PUT",
        &rpath,
        lim,
        None,
        Some(json!({"name": "restrictive", "acl": ["!unauthorized", "!anything"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["acl"], json!(["!unauthorized", "!anything"]));
    // Removing a negative access needs the positive one (`!x` while the token lacks `x`).
    let r = e.call(
        "PUT",
        &path,
        lim,
        None,
        Some(json!({"name": "yes", "acl": ["authorized"]})),
    );
    assert_escalation(&r, lim, "!x");
    let r = e.call(
        "PUT",
        &path,
        lim,
        None,
        Some(json!({"name": "yes", "acl": ["authorized", "!x"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["acl"], json!(["authorized", "!x"]));

    // Access endpoints.
    let r = e.call(
        "PUT",
        &format!("{path}/acl/auth.tenants.read"),
        lim,
        None,
        None,
    );
    assert_escalation(&r, lim, "auth.tenants.read");
    let r = e.call(
        "PUT",
        &format!("/policies/{UNKNOWN}/acl/auth.tenants.read"),
        lim,
        None,
        None,
    );
    assert_escalation(&r, lim, "auth.tenants.read");
    assert_eq!(
        e.call(
            "PUT",
            &format!("{path}/acl/confd.users.read"),
            lim,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(
        e.call(
            "PUT",
            &format!("{path}/acl/!forbid-access"),
            lim,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(
        e.call("PUT", &format!("{path}/acl/!unauthorized"), lim, None, None)
            .status,
        204
    );
    let r = e.call(
        "DELETE",
        &format!("{path}/acl/!unauthorized"),
        lim,
        None,
        None,
    );
    assert_escalation(&r, lim, "!unauthorized");
    let r = e.call(
        "DELETE",
        &format!("{path}/acl/!forbid-access"),
        lim,
        None,
        None,
    );
    assert_escalation(&r, lim, "!forbid-access");
    assert_eq!(
        e.call("DELETE", &format!("{path}/acl/authorized"), lim, None, None)
            .status,
        204
    );
    assert_eq!(
        e.get(root, None, &uuid).json()["acl"],
        json!(["!x", "confd.users.read", "!forbid-access", "!unauthorized"])
    );

    // Delete: every access must be removable.
    assert_escalation(&e.call("DELETE", &path, lim, None, None), lim, "!x");
    let powerful = e.create(
        root,
        None,
        json!({"name": "powerful", "acl": ["confd.#", "auth.tenants.read"]}),
    );
    let ppath = format!("/policies/{}", powerful["uuid"].as_str().unwrap());
    assert_escalation(
        &e.call("DELETE", &ppath, lim, None, None),
        lim,
        "auth.tenants.read",
    );
    assert_eq!(
        e.get(root, None, powerful["uuid"].as_str().unwrap()).status,
        200
    );
    for access in ["!x", "!forbid-access", "!unauthorized"] {
        assert_eq!(
            e.call("DELETE", &format!("{path}/acl/{access}"), root, None, None)
                .status,
            204
        );
    }
    assert_eq!(e.call("DELETE", &path, lim, None, None).status, 204);
    assert_no_policy(&e.get(root, None, &uuid), "uuid", &uuid);

    // Associations: the whole policy ACL must be granted (add) or removable (remove).
    let user = e.user(&e.top, "target");
    let group = e.group(&e.top, "targets");
    let fine = e.create(
        root,
        None,
        json!({"name": "fine", "acl": ["authorized", "confd.users.read", "!forbid-access"]}),
    );
    let fine_uuid = fine["uuid"].as_str().unwrap();
    let powerful_uuid = powerful["uuid"].as_str().unwrap();
    for owner in [format!("/users/{user}"), format!("/groups/{group}")] {
        assert_eq!(
            e.call(
                "PUT",
                &format!("{owner}/policies/{fine_uuid}"),
                lim,
                None,
                None
            )
            .status,
            204
        );
        let r = e.call(
            "PUT",
            &format!("{owner}/policies/{powerful_uuid}"),
            lim,
            None,
            None,
        );
        assert_escalation(&r, lim, "auth.tenants.read");
        let r = e.call(
            "PUT",
            &format!("{owner}/policies/powerful"),
            lim,
            None,
            None,
        );
        assert_escalation(&r, lim, "auth.tenants.read");
        assert_eq!(
            e.call(
                "PUT",
                &format!("{owner}/policies/{powerful_uuid}"),
                root,
                None,
                None
            )
            .status,
            204
        );
        let r = e.call(
            "DELETE",
            &format!("{owner}/policies/{powerful_uuid}"),
            lim,
            None,
            None,
        );
        assert_escalation(&r, lim, "auth.tenants.read");
        let restrictive_uuid = restrictive["uuid"].as_str().unwrap();
        assert_eq!(
            e.call(
                "PUT",
                &format!("{owner}/policies/{restrictive_uuid}"),
                lim,
                None,
                None
            )
            .status,
            204
        );
        let r = e.call(
            "DELETE",
            &format!("{owner}/policies/{restrictive_uuid}"),
            lim,
            None,
            None,
        );
        assert_escalation(&r, lim, "!unauthorized");
        let r = e.call(
            "DELETE",
            &format!("{owner}/policies/{fine_uuid}"),
            lim,
            None,
            None,
        );
        assert_escalation(&r, lim, "!forbid-access");
    }
    let r = e
        .call("GET", &format!("/users/{user}/policies"), root, None, None)
        .json();
    let names: Vec<&str> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fine", "powerful", "restrictive"]);
    let r = e
        .call(
            "GET",
            &format!("/groups/{group}/policies"),
            root,
            None,
            None,
        )
        .json();
    assert_eq!(r["total"], 3);
}

#[test]
fn user_and_group_associations() {
    let e = env();
    let (root, sub) = (e.root.as_str(), e.subadmin.as_str());
    let admin = one(
        &e.s.db,
        "SELECT uuid FROM auth_user WHERE username = 'admin'",
    );
    let p1 = e.create(
        root,
        None,
        json!({"name": "one", "acl": ["this.is.a.test.access"]}),
    );
    let p2 = e.create(
        root,
        None,
        json!({"name": "two", "acl": ["acl.one", "acl.two"], "description": "second"}),
    );
    let (u1, u2) = (p1["uuid"].as_str().unwrap(), p2["uuid"].as_str().unwrap());
    let user = e.user(&e.top, "foo");
    let up = |u: &str| format!("/users/{u}/policies");

    // User policies: the user must be in the caller's tree (issue 17: the original lists any
    // uuid's policies, an unknown one having none).
    let empty = json!({"items": [], "total": 0, "filtered": 0});
    assert_eq!(e.call("GET", &up(&user), root, None, None).json(), empty);
    assert_eq!(e.call("GET", &up(UNKNOWN), root, None, None).status, 404);
    assert_eq!(
        e.call("GET", "/users/not-a-uuid/policies", root, None, None)
            .status,
        404
    );
    assert_eq!(
        e.call(
            "PUT",
            &format!("/users/not-a-uuid/policies/{u1}"),
            root,
            None,
            None
        )
        .status,
        404
    );
    assert_eq!(
        e.call("DELETE", &format!("{}/{u1}", up(&user)), root, None, None)
            .status,
        204
    );
    for _ in 0..2 {
        assert_eq!(
            e.call("PUT", &format!("{}/{u1}", up(&user)), root, None, None)
                .status,
            204
        );
    }
    assert_eq!(
        e.call("PUT", &format!("{}/two", up(&user)), root, None, None)
            .status,
        204
    );
    let r = e.call("GET", &up(&user), root, None, None).json();
    assert_eq!(r, json!({"items": [p1, p2], "total": 2, "filtered": 2}));
    let r = e
        .call(
            "GET",
            &format!("{}?search=second", up(&user)),
            root,
            None,
            None,
        )
        .json();
    assert_eq!(r, json!({"items": [p2], "total": 2, "filtered": 1}));
    let r = e
        .call(
            "GET",
            &format!("{}?name=one&user_uuid={UNKNOWN}", up(&user)),
            root,
            None,
            None,
        )
        .json();
    assert_eq!(r, json!({"items": [p1], "total": 2, "filtered": 1}));
    let r = e
        .call(
            "GET",
            &format!("{}?order=name&direction=desc&limit=1", up(&user)),
            root,
            None,
            None,
        )
        .json();
    assert_eq!(r, json!({"items": [p2], "total": 2, "filtered": 2}));
    let r = e
        .call("GET", &format!("{}?offset=1", up(&user)), root, None, None)
        .json();
    assert_eq!(r["items"], json!([p2]));
    assert_eq!(
        e.call(
            "GET",
            &format!("{}?order=slug", up(&user)),
            root,
            None,
            None
        )
        .status,
        400
    );
    // Scoped (issue 17): a sub-tenant administrator does not see a user of the top tenant, and
    // Wazo-Tenant must name its tenant or a descendant.
    assert_eq!(e.call("GET", &up(&user), sub, None, None).status, 404);
    assert_eq!(
        e.call("GET", &up(&user), sub, Some(SIBLING), None).status,
        401
    );
    let r = e.call("GET", &up(&user), &e.reader, None, None);
    assert_eq!(
        r.json()["details"]["required_access"],
        json!(format!("auth.users.{user}.policies.read"))
    );
    // Unknown user / policy.
    let r = e.call("PUT", &format!("{}/{u1}", up(UNKNOWN)), root, None, None);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"message": format!("No such user: \"{UNKNOWN}\""), "error_id": "unknown-user",
               "details": {"uuid": UNKNOWN}, "resource": "users", "timestamp": r.json()["timestamp"]})
    );
    assert_no_policy(
        &e.call("PUT", &format!("{}/{UNKNOWN}", up(&user)), root, None, None),
        "uuid",
        UNKNOWN,
    );
    assert_no_policy(
        &e.call("PUT", &format!("{}/unknown", up(&user)), root, None, None),
        "slug",
        "unknown",
    );
    assert_no_policy(
        &e.call(
            "DELETE",
            &format!("{}/unknown", up(&user)),
            root,
            None,
            None,
        ),
        "slug",
        "unknown",
    );
    assert_eq!(
        e.call("DELETE", &format!("{}/{u1}", up(UNKNOWN)), root, None, None)
            .json()["error_id"],
        "unknown-user"
    );
    assert_eq!(
        e.call("DELETE", &format!("{}/one", up(UNKNOWN)), root, None, None)
            .status,
        404
    );
    // Remove, twice.
    for _ in 0..2 {
        assert_eq!(
            e.call("DELETE", &format!("{}/two", up(&user)), root, None, None)
                .status,
            204
        );
    }
    assert_eq!(
        e.call("GET", &up(&user), root, None, None).json()["items"],
        json!([p1])
    );

    // Both need the policy visible (issue 17: the original's PUT looks it up in every tenant,
    // granting the top tenant's private policy to a sub-tenant's user).
    let sub_user = e.user(SUB, "subuser");
    let private = e.create(root, None, json!({"name": "private"}));
    let private_uuid = private["uuid"].as_str().unwrap();
    assert_no_policy(
        &e.call(
            "PUT",
            &format!("{}/{private_uuid}", up(&sub_user)),
            sub,
            None,
            None,
        ),
        "uuid",
        private_uuid,
    );
    assert_no_policy(
        &e.call(
            "DELETE",
            &format!("{}/{private_uuid}", up(&sub_user)),
            sub,
            None,
            None,
        ),
        "uuid",
        private_uuid,
    );
    // Top shared policy from a sub-tenant: by uuid and by slug.
    let shared = e.create(
        root,
        None,
        json!({"name": "top_shared", "slug": "top_shared", "shared": true}),
    );
    let shared_uuid = shared["uuid"].as_str().unwrap();
    for id in [shared_uuid, "top_shared"] {
        assert_eq!(
            e.call(
                "PUT",
                &format!("{}/{id}", up(&sub_user)),
                root,
                Some(SUB),
                None
            )
            .status,
            204
        );
        assert_eq!(
            e.call(
                "DELETE",
                &format!("{}/{id}", up(&sub_user)),
                root,
                Some(SUB),
                None
            )
            .status,
            204
        );
    }
    // A sub-tenant slug is not resolved from the top tenant.
    e.create(
        sub,
        None,
        json!({"name": "policy_slug", "slug": "policy_slug"}),
    );
    assert_no_policy(
        &e.call(
            "PUT",
            &format!("{}/policy_slug", up(&user)),
            root,
            None,
            None,
        ),
        "slug",
        "policy_slug",
    );
    assert_eq!(
        e.call(
            "PUT",
            &format!("{}/policy_slug", up(&sub_user)),
            sub,
            None,
            None
        )
        .status,
        204
    );
    let listed = e.call("GET", &up(&sub_user), sub, None, None).json();
    assert_eq!(listed["items"][0]["tenant_uuid"], SUB, "{listed}");
    // The top tenant's private policy was not attached (issue 17).
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(
        e.call(
            "DELETE",
            &format!("{}/policy_slug", up(&sub_user)),
            sub,
            None,
            None
        )
        .status,
        204
    );

    // Group policies.
    let group = e.group(&e.top, "g");
    let gp = |g: &str| format!("/groups/{g}/policies");
    assert_eq!(e.call("GET", &gp(&group), root, None, None).json(), empty);
    for _ in 0..2 {
        assert_eq!(
            e.call("PUT", &format!("{}/{u1}", gp(&group)), root, None, None)
                .status,
            204
        );
    }
    assert_eq!(
        e.call("PUT", &format!("{}/two", gp(&group)), root, None, None)
            .status,
        204
    );
    let foo = e.create(root, None, json!({"name": "foo"}));
    assert_eq!(
        e.call("PUT", &format!("{}/foo", gp(&group)), root, None, None)
            .status,
        204
    );
    let r = e.call("GET", &gp(&group), root, None, None).json();
    assert_eq!(
        r,
        json!({"items": [foo, p1, p2], "total": 3, "filtered": 3})
    );
    let r = e
        .call("GET", &format!("{}?search=o", gp(&group)), root, None, None)
        .json();
    assert_eq!(
        r,
        json!({"items": [foo, p1, p2], "total": 3, "filtered": 3})
    );
    let r = e
        .call(
            "GET",
            &format!("{}?search=tw", gp(&group)),
            root,
            None,
            None,
        )
        .json();
    assert_eq!(r, json!({"items": [p2], "total": 3, "filtered": 1}));
    let r = e
        .call("GET", &format!("{}?name=foo", gp(&group)), root, None, None)
        .json();
    assert_eq!(r, json!({"items": [foo], "total": 3, "filtered": 1}));
    let r = e
        .call(
            "GET",
            &format!("{}?limit=1&offset=1", gp(&group)),
            root,
            None,
            None,
        )
        .json();
    assert_eq!(r, json!({"items": [p1], "total": 3, "filtered": 3}));
    let r = e
        .call(
            "GET",
            &format!("{}?order=name&direction=desc", gp(&group)),
            root,
            None,
            None,
        )
        .json();
    assert_eq!(r["items"], json!([p2, p1, foo]));
    assert_eq!(
        e.call("GET", &format!("{}?limit=x", gp(&group)), root, None, None)
            .status,
        400
    );
    for _ in 0..2 {
        assert_eq!(
            e.call("DELETE", &format!("{}/{u2}", gp(&group)), root, None, None)
                .status,
            204
        );
    }
    assert_eq!(
        e.call("DELETE", &format!("{}/foo", gp(&group)), root, None, None)
            .status,
        204
    );
    assert_eq!(
        e.call("GET", &gp(&group), root, None, None).json()["items"],
        json!([p1])
    );
    // Unknown group / policy; non-UUID group.
    for (method, path) in [
        ("PUT", format!("{}/{u1}", gp(UNKNOWN))),
        ("DELETE", format!("{}/{u1}", gp(UNKNOWN))),
        ("GET", gp(UNKNOWN)),
    ] {
        let r = e.call(method, &path, root, None, None);
        assert_eq!(r.status, 404, "{method} {path}");
        assert_eq!(
            r.json(),
            json!({"message": format!("No such group: \"{UNKNOWN}\""), "error_id": "unknown-group",
                   "details": {"uuid": UNKNOWN}, "resource": "groups", "timestamp": r.json()["timestamp"]})
        );
    }
    assert_no_policy(
        &e.call(
            "PUT",
            &format!("{}/{UNKNOWN}", gp(&group)),
            root,
            None,
            None,
        ),
        "uuid",
        UNKNOWN,
    );
    assert_no_policy(
        &e.call(
            "DELETE",
            &format!("{}/{UNKNOWN}", gp(&group)),
            root,
            None,
            None,
        ),
        "uuid",
        UNKNOWN,
    );
    assert_no_policy(
        &e.call("PUT", &format!("{}/unknown", gp(UNKNOWN)), root, None, None),
        "slug",
        "unknown",
    );
    assert_eq!(
        e.call("GET", "/groups/nope/policies", root, None, None)
            .status,
        404
    );
    assert_eq!(
        e.call("PUT", "/groups/nope/policies/x", root, None, None)
            .status,
        404
    );
    assert_eq!(e.call("POST", &gp(&group), root, None, None).status, 405);

    // Multi-tenant: a sub-tenant sees its groups and the policies visible from it.
    let sub_group = e.group(SUB, "group2");
    let sub_policy = e.create(sub, None, json!({"name": "policy3"}));
    let sp = sub_policy["uuid"].as_str().unwrap();
    assert_eq!(
        e.call("PUT", &format!("{}/{sp}", gp(&sub_group)), sub, None, None)
            .status,
        204
    );
    assert_eq!(
        e.call("GET", &gp(&group), sub, None, None).json()["error_id"],
        "unknown-group"
    );
    assert_eq!(
        e.call("PUT", &format!("{}/{sp}", gp(&group)), sub, None, None)
            .status,
        404
    );
    assert_no_policy(
        &e.call("PUT", &format!("{}/{u1}", gp(&sub_group)), sub, None, None),
        "uuid",
        u1,
    );
    assert_no_policy(
        &e.call("PUT", &format!("{}/one", gp(&sub_group)), sub, None, None),
        "slug",
        "one",
    );
    assert_eq!(
        e.call("PUT", &format!("{}/{sp}", gp(&group)), root, None, None)
            .status,
        204
    );
    assert_eq!(
        e.call("DELETE", &format!("{}/{sp}", gp(&group)), sub, None, None)
            .status,
        404
    );
    assert_eq!(
        e.call("GET", &gp(&sub_group), sub, None, None).json()["items"],
        json!([sub_policy])
    );
    // Shared and foreign policies in a sub-tenant group: presented from the viewer; invisible
    // ones counted but not listed.
    for id in [shared_uuid, "child"] {
        if id == "child" {
            e.create(sub, None, json!({"name": "child", "slug": "child"}));
        }
        assert_eq!(
            e.call(
                "PUT",
                &format!("{}/{id}", gp(&sub_group)),
                root,
                Some(SUB),
                None
            )
            .status,
            204,
            "{id}"
        );
    }
    sql(&e.s.db, &format!("INSERT INTO auth_group_policy (group_uuid, policy_uuid) VALUES ('{sub_group}', '{private_uuid}')"));
    let r = e.call("GET", &gp(&sub_group), sub, None, None).json();
    assert_eq!(
        (r["total"].clone(), r["filtered"].clone()),
        (json!(4), json!(4))
    );
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{r}");
    let summary: Vec<(String, Value, Value)> = items
        .iter()
        .map(|p| {
            (
                p["slug"].as_str().unwrap().to_string(),
                p["tenant_uuid"].clone(),
                p["read_only"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("child".to_string(), json!(SUB), json!(false)),
            ("policy3".to_string(), json!(SUB), json!(false)),
            ("top_shared".to_string(), json!(SUB), json!(true)),
        ]
    );
    for id in [shared_uuid, "top_shared"] {
        assert_eq!(
            e.call(
                "DELETE",
                &format!("{}/{id}", gp(&sub_group)),
                sub,
                None,
                None
            )
            .status,
            204
        );
        assert_eq!(
            e.call("PUT", &format!("{}/{id}", gp(&sub_group)), sub, None, None)
                .status,
            204
        );
    }

    // Policies of a member's groups and of the user reach the member's tokens.
    let tenant_group = e.group(&e.top, "members");
    sql(&e.s.db, &format!("INSERT INTO auth_user_group (group_uuid, user_uuid) VALUES ('{tenant_group}', '{admin}')"));
    let main = e.create(root, None, json!({"name": "main", "acl": ["foobar"]}));
    let direct = e.create(
        root,
        None,
        json!({"name": "direct", "acl": ["direct.access"]}),
    );
    assert_eq!(
        e.call(
            "PUT",
            &format!("{}/main", gp(&tenant_group)),
            root,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(
        e.call(
            "PUT",
            &format!("{}/{}", up(&admin), direct["uuid"].as_str().unwrap()),
            root,
            None,
            None
        )
        .status,
        204
    );
    let r = e.s.login(ADMIN.0, ADMIN.1, json!({}));
    let acl = r.json()["data"]["acl"].clone();
    let acl: Vec<&str> = acl
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in ["foobar", "direct.access", "#"] {
        assert!(acl.contains(&want), "{want} not in {acl:?}");
    }
    let _ = main;
}

/// NUL bytes (`%00`) in filters, searches and path segments match nothing: empty lists and
/// 404s, never a 503 from the database refusing the parameter, and nothing changed.
#[test]
fn nul_bytes_match_nothing_and_never_reach_the_database() {
    let e = env();
    let s = &e.s;
    let admin = s.admin_token();
    let r = s.call(
        "POST",
        "/0.1/policies",
        &admin,
        None,
        Some(&json!({"name": "nul-check", "acl": ["a.b"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let uuid = r.json()["uuid"].as_str().unwrap().to_string();
    for query in [
        "search=a%00",
        "name=x%00y",
        "slug=%00",
        "uuid=%00",
        "user_uuid=%00",
    ] {
        let r = s.call("GET", &format!("/0.1/policies?{query}"), &admin, None, None);
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        assert_eq!(r.json()["items"], json!([]), "{query}: {}", r.body);
        assert!(
            r.json()["total"].as_i64().unwrap() > 0,
            "{query}: {}",
            r.body
        );
    }
    for query in ["search=%00", "client_id=a%00", "created_at=%00"] {
        let r = s.call("GET", &format!("/0.1/tokens?{query}"), &admin, None, None);
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        assert_eq!(r.json()["items"], json!([]), "{query}: {}", r.body);
    }
    for (method, path) in [
        ("GET", "/0.1/policies/a%00b".to_string()),
        ("PUT", "/0.1/policies/a%00b".to_string()),
        ("DELETE", "/0.1/policies/a%00b".to_string()),
        ("PUT", format!("/0.1/policies/{uuid}/acl/a%00")),
        ("DELETE", format!("/0.1/policies/{uuid}/acl/a.b%00")),
        ("DELETE", "/0.1/users/me/tokens/a%00".to_string()),
        ("GET", "/0.1/external/a%00/users".to_string()),
        ("GET", "/0.1/token/%00".to_string()),
    ] {
        let r = s.call(method, &path, &admin, None, Some(&json!({"name": "x"})));
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }
    let r = s.call("GET", &format!("/0.1/policies/{uuid}"), &admin, None, None);
    assert_eq!(r.json()["acl"], json!(["a.b"]), "nothing changed");
    // A refresh token or client id holding NUL finds nothing: 401, not 503.
    let r = s.login(
        "root",
        "rootpw",
        json!({"refresh_token": "a\u{0}b", "client_id": "c\u{0}"}),
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

/// The escalation guard looks at the caller's negative entries: a caller holding `confd.#` and
/// `!confd.secret.#` may not add `confd.#` (or `confd.*.read`) to a policy, nor associate a
/// policy holding it, since that would grant others `confd.secret.read`, which it is denied
/// itself (better than the original, which compared literal strings only).
#[test]
fn escalation_guard_honours_negative_entries() {
    let e = env();
    let s = &e.s;
    let admin = s.admin_token();
    let call = |m: &str, p: &str, t: &str, b: Option<Value>| s.call(m, p, t, None, b.as_ref());
    let r = call(
        "POST",
        "/0.1/policies",
        &admin,
        Some(json!({"name": "almost-all-confd",
                    "acl": ["auth.#", "confd.#", "!confd.secret.#"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let caller_policy = r.json()["uuid"].as_str().unwrap().to_string();
    let editor = s.create_user(&admin, "editor", "editor-pw", None);
    let r = call(
        "PUT",
        &format!("/0.1/users/{editor}/policies/{caller_policy}"),
        &admin,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let token = s.user_token("editor", "editor-pw");

    for access in ["confd.#", "confd.*.read", "confd.secret.read"] {
        let r = call(
            "POST",
            "/0.1/policies",
            &token,
            Some(json!({"name": format!("p-{}", access.len()), "acl": [access]})),
        );
        assert_escalation(&r, &token, access);
    }
    // What the negative entry cannot reach is allowed.
    let r = call(
        "POST",
        "/0.1/policies",
        &token,
        Some(json!({"name": "ok", "acl": ["confd.users.#", "!confd.users.secret"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ok = r.json()["uuid"].as_str().unwrap().to_string();
    let r = call(
        "PUT",
        &format!("/0.1/policies/{ok}/acl/confd.*.read"),
        &token,
        None,
    );
    assert_escalation(&r, &token, "confd.*.read");
    // Associating a policy holding such an entry is refused the same way.
    let r = call(
        "POST",
        "/0.1/policies",
        &admin,
        Some(json!({"name": "wide", "acl": ["confd.#"]})),
    );
    let wide = r.json()["uuid"].as_str().unwrap().to_string();
    let r = call(
        "PUT",
        &format!("/0.1/users/{editor}/policies/{wide}"),
        &token,
        None,
    );
    assert_escalation(&r, &token, "confd.#");
    let r = call("GET", &format!("/0.1/policies/{ok}"), &admin, None);
    assert_eq!(
        r.json()["acl"],
        json!(["confd.users.#", "!confd.users.secret"])
    );
}

// ------------------------------------------------------------------------------------------------
// Tenant isolation of user-policy associations (issue 17, findings 1 and 2)
// ------------------------------------------------------------------------------------------------

/// master → {A, B}; `aadmin` (A) holds the A policy `pa` = `["auth.#"]`; `bplain` (B) holds
/// nothing; `mplain` (master) holds nothing.
struct Isolation {
    s: Server,
    /// The bootstrap administrator (master tenant, `#`).
    root: String,
    /// `aadmin`'s token.
    aadmin_token: String,
    a: String,
    b: String,
    aadmin: String,
    bplain: String,
    mplain: String,
    /// A's `["auth.#"]` policy.
    pa: String,
    /// A policy of B.
    pb: String,
}

fn isolation() -> Isolation {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"default_policies": {"iso-config-managed": {"acl": ["auth.users.read"]}}}))
        .start();
    let root = s.admin_token();
    let tenant = |name: &str| {
        let r = s.call(
            "POST",
            "/0.1/tenants",
            &root,
            None,
            Some(&json!({"name": name})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["uuid"].as_str().unwrap().to_string()
    };
    let (a, b) = (tenant("A"), tenant("B"));
    let policy = |tenant: &str, body: Value| {
        let r = s.call("POST", "/0.1/policies", &root, Some(tenant), Some(&body));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["uuid"].as_str().unwrap().to_string()
    };
    let pa = policy(&a, json!({"name": "pa", "acl": ["auth.#"]}));
    let pb = policy(&b, json!({"name": "pb", "acl": ["auth.users.read"]}));
    let aadmin = s.create_user(&root, "aadmin", "apw", Some(&a));
    let bplain = s.create_user(&root, "bplain", "bpw", Some(&b));
    let mplain = s.create_user(&root, "mplain", "mpw", None);
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{aadmin}/policies/{pa}"),
        &root,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let aadmin_token = s.user_token("aadmin", "apw");
    Isolation {
        s,
        root,
        aadmin_token,
        a,
        b,
        aadmin,
        bplain,
        mplain,
        pa,
        pb,
    }
}

impl Isolation {
    fn call(&self, token: &str, method: &str, path: &str, tenant: Option<&str>) -> Resp {
        self.s
            .call(method, &format!("/0.1{path}"), token, tenant, None)
    }

    fn aadmin(&self, method: &str, path: &str) -> Resp {
        self.call(&self.aadmin_token, method, path, None)
    }

    /// The policies attached to `user`, as stored.
    fn attached(&self, user: &str) -> Vec<String> {
        sql(
            &self.s.db,
            &format!(
                "SELECT policy_uuid FROM auth_user_policy WHERE user_uuid = '{user}'
                 ORDER BY policy_uuid"
            ),
        )
        .into_iter()
        .map(|row| row[0].clone().unwrap())
        .collect()
    }
}

fn assert_unknown(r: &Resp, kind: &str, resource: &str, uuid: &str) {
    assert_eq!(r.status, 404, "{}", r.body);
    let b = r.json();
    assert_eq!(
        b["error_id"],
        json!(format!("unknown-{kind}")),
        "{}",
        r.body
    );
    assert_eq!(b["details"], json!({ "uuid": uuid }), "{}", r.body);
    assert_eq!(b["resource"], json!(resource), "{}", r.body);
}

#[test]
fn a_sub_tenant_administrator_cannot_grant_across_the_tenant_boundary() {
    let e = isolation();
    let (mplain, bplain, pa, pb) = (&e.mplain, &e.bplain, &e.pa, &e.pb);
    // The master user is invisible to aadmin, and so not modifiable.
    assert_unknown(
        &e.aadmin("GET", &format!("/users/{mplain}")),
        "user",
        "users",
        mplain,
    );
    let r = e.aadmin("PUT", &format!("/users/{mplain}/policies/{pa}"));
    assert_unknown(&r, "user", "users", mplain);
    assert!(e.attached(mplain).is_empty());
    // mplain logs in again: still nothing over the master tenant.
    let mtoken = e.s.user_token("mplain", "mpw");
    assert_eq!(e.call(&mtoken, "GET", "/tenants", None).status, 401);
    assert_eq!(
        e.s.call(
            "POST",
            "/0.1/tenants",
            &mtoken,
            None,
            Some(&json!({"name": "x"}))
        )
        .status,
        401
    );
    // Siblings: neither a grant to B's user nor a grant of B's policy.
    let r = e.aadmin("PUT", &format!("/users/{bplain}/policies/{pa}"));
    assert_unknown(&r, "user", "users", bplain);
    assert!(e.attached(bplain).is_empty());
    let r = e.aadmin("PUT", &format!("/users/{}/policies/{pb}", e.aadmin));
    assert_no_policy(&r, "uuid", pb);
    assert_eq!(e.attached(&e.aadmin), vec![pa.clone()]);
    // By slug too: B's slug is unknown from A.
    let r = e.aadmin("PUT", &format!("/users/{}/policies/pb", e.aadmin));
    assert_no_policy(&r, "slug", "pb");
    // Nor through Wazo-Tenant.
    let r = e.call(
        &e.aadmin_token,
        "PUT",
        &format!("/users/{bplain}/policies/{pb}"),
        Some(&e.b),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unauthorized-tenant");
    // Removal answers the same for a user outside the tree, and changes nothing.
    let r = e.call(
        &e.root,
        "PUT",
        &format!("/users/{bplain}/policies/{pb}"),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = e.aadmin("DELETE", &format!("/users/{bplain}/policies/{pb}"));
    assert_no_policy(&r, "uuid", pb);
    let r = e.aadmin("DELETE", &format!("/users/{bplain}/policies/{pa}"));
    assert_unknown(&r, "user", "users", bplain);
    let r = e.aadmin("DELETE", &format!("/users/{mplain}/policies/{pa}"));
    assert_unknown(&r, "user", "users", mplain);
    assert_eq!(e.attached(bplain), vec![pb.clone()]);
}

#[test]
fn sub_resources_of_another_tenant_answer_404() {
    let e = isolation();
    let (bplain, mplain) = (&e.bplain, &e.mplain);
    let r = e.call(
        &e.root,
        "PUT",
        &format!("/users/{bplain}/policies/{}", e.pb),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let b_group = one(
        &e.s.db,
        &format!(
            "SELECT uuid FROM auth_group WHERE tenant_uuid = '{}' LIMIT 1",
            e.b
        ),
    );
    // Each parent answers 404, and so does each of its sub-resources.
    for user in [bplain, mplain] {
        for sub in ["policies", "groups", "external", "sessions", "tokens"] {
            let r = e.aadmin("GET", &format!("/users/{user}/{sub}"));
            assert_unknown(&r, "user", "users", user);
        }
    }
    assert_unknown(
        &e.aadmin("GET", &format!("/groups/{b_group}")),
        "group",
        "groups",
        &b_group,
    );
    let r = e.aadmin("GET", &format!("/groups/{b_group}/users"));
    assert_unknown(&r, "group", "groups", &b_group);
    let r = e.aadmin("GET", &format!("/tenants/{}/domains", e.b));
    assert_unknown(&r, "tenant", "tenants", &e.b);
    // An unknown parent answers the same.
    assert_unknown(
        &e.aadmin("GET", &format!("/users/{UNKNOWN}/policies")),
        "user",
        "users",
        UNKNOWN,
    );
    let r = e.aadmin("GET", &format!("/groups/{UNKNOWN}/users"));
    assert_unknown(&r, "group", "groups", UNKNOWN);
    // In its own tenant, aadmin reads all of them.
    let a_group = one(
        &e.s.db,
        &format!(
            "SELECT uuid FROM auth_group WHERE tenant_uuid = '{}' LIMIT 1",
            e.a
        ),
    );
    for sub in ["policies", "groups", "external", "sessions", "tokens"] {
        let r = e.aadmin("GET", &format!("/users/{}/{sub}", e.aadmin));
        assert_eq!(r.status, 200, "{sub}: {}", r.body);
    }
    let r = e.aadmin("GET", &format!("/users/{}/policies", e.aadmin));
    assert_eq!(r.json()["total"], 1);
    let r = e.aadmin("GET", &format!("/groups/{a_group}/users"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["items"][0]["uuid"], json!(e.aadmin));
    assert_eq!(
        e.aadmin("GET", &format!("/tenants/{}/domains", e.a)).status,
        200
    );
}

#[test]
fn a_master_administrator_acts_in_sub_tenants_and_shared_policies_stay_attachable() {
    let e = isolation();
    let (bplain, pb) = (&e.bplain, &e.pb);
    // The master administrator, without and with Wazo-Tenant.
    for tenant in [None, Some(e.b.as_str())] {
        let path = format!("/users/{bplain}/policies/{pb}");
        assert_eq!(e.call(&e.root, "PUT", &path, tenant).status, 204);
        let r = e.call(&e.root, "GET", &format!("/users/{bplain}/policies"), tenant);
        assert_eq!(r.json()["items"][0]["uuid"], json!(pb), "{}", r.body);
        assert_eq!(
            e.call(&e.root, "GET", &format!("/tenants/{}/domains", e.b), tenant)
                .status,
            200
        );
        assert_eq!(e.call(&e.root, "DELETE", &path, tenant).status, 204);
        assert!(e.attached(bplain).is_empty());
    }
    // By slug, in the tenant that owns it.
    let path = format!("/users/{bplain}/policies/pb");
    assert_eq!(e.call(&e.root, "PUT", &path, Some(&e.b)).status, 204);
    assert_eq!(e.attached(bplain), vec![pb.clone()]);
    assert_eq!(e.call(&e.root, "DELETE", &path, Some(&e.b)).status, 204);
    // Not even the master administrator grants a policy its user's tenant does not see.
    let r = e.call(
        &e.root,
        "PUT",
        &format!("/users/{bplain}/policies/{}", e.pa),
        None,
    );
    assert_no_policy(&r, "uuid", &e.pa);
    let mine = e.s.call(
        "POST",
        "/0.1/policies",
        &e.root,
        None,
        Some(&json!({"name": "master-own", "acl": ["auth.users.read"]})),
    );
    let mine = mine.json()["uuid"].as_str().unwrap().to_string();
    let r = e.call(
        &e.root,
        "PUT",
        &format!("/users/{bplain}/policies/{mine}"),
        None,
    );
    assert_no_policy(&r, "uuid", &mine);
    assert!(e.attached(bplain).is_empty());
    // Shared by the master tenant, or config-managed: attachable to users of the tenants that
    // see them, by their administrators too.
    let shared = e.s.call(
        "POST",
        "/0.1/policies",
        &e.root,
        None,
        Some(&json!({"name": "master-shared", "acl": ["auth.users.read"], "shared": true})),
    );
    let shared = shared.json()["uuid"].as_str().unwrap().to_string();
    let config = one(
        &e.s.db,
        "SELECT uuid FROM auth_policy WHERE name = 'iso-config-managed'",
    );
    let auser = e.s.create_user(&e.aadmin_token, "auser", "upw", None);
    for p in [&shared, &config] {
        let path = format!("/users/{auser}/policies/{p}");
        assert_eq!(e.aadmin("PUT", &path).status, 204);
        assert_eq!(
            e.call(
                &e.root,
                "PUT",
                &format!("/users/{bplain}/policies/{p}"),
                None
            )
            .status,
            204
        );
    }
    let mut expected = vec![shared.clone(), config.clone()];
    expected.sort();
    assert_eq!(e.attached(&auser), expected);
    assert_eq!(e.attached(bplain), expected);
    for p in [&shared, &config] {
        assert_eq!(
            e.aadmin("DELETE", &format!("/users/{auser}/policies/{p}"))
                .status,
            204
        );
    }
    assert!(e.attached(&auser).is_empty());
    // aadmin grants its own policy inside its tenant.
    assert_eq!(
        e.aadmin("PUT", &format!("/users/{auser}/policies/{}", e.pa))
            .status,
        204
    );
    assert_eq!(e.attached(&auser), vec![e.pa.clone()]);
    // An association made before these rules (the original's) can still be removed.
    sql(
        &e.s.db,
        &format!(
            "INSERT INTO auth_user_policy (user_uuid, policy_uuid) VALUES ('{auser}', '{pb}')"
        ),
    );
    assert_eq!(
        e.call(
            &e.root,
            "DELETE",
            &format!("/users/{auser}/policies/{pb}"),
            None
        )
        .status,
        204
    );
    assert_eq!(e.attached(&auser), vec![e.pa.clone()]);
}
