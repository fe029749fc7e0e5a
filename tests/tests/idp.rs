//! Identity providers (spec management §12): `GET /0.1/idp` and the assignment of users to an
//! IdP type (`PUT|DELETE /0.1/idp/{idp_type}/users/{user_uuid}`, `PUT /0.1/idp/{idp_type}/users`),
//! scoped to the caller's tenant tree.

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

const UNKNOWN_UUID: &str = "00000000-0000-4000-8000-0000000000ff";

struct Fixture {
    s: Server,
    admin: String,
    /// A sub-tenant, its administrator's token (a policy `["auth.#"]` there) and a user of it.
    sub_tenant: String,
    sub_admin: String,
    sub_user: String,
}

fn fixture(config: Value) -> Fixture {
    let s = ServerBuilder::new().with_wazo_user().config(config).start();
    let admin = s.admin_token();
    let r = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "sub"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sub_tenant = r.json()["uuid"].as_str().unwrap().to_string();
    let sub_admin_uuid = s.create_user(&admin, "subadmin", "pw", Some(&sub_tenant));
    let r = s.call(
        "POST",
        "/0.1/policies",
        &admin,
        Some(&sub_tenant),
        Some(&json!({"name": "sub-admin", "acl": ["auth.#"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let policy = r.json()["uuid"].as_str().unwrap().to_string();
    let grant = format!("/0.1/users/{sub_admin_uuid}/policies/{policy}");
    let r = s.call("PUT", &grant, &admin, Some(&sub_tenant), None);
    assert_eq!(r.status, 204, "{}", r.body);
    let sub_admin = s.user_token("subadmin", "pw");
    let sub_user = s.create_user(&admin, "subuser", "pw", Some(&sub_tenant));
    Fixture {
        s,
        admin,
        sub_tenant,
        sub_admin,
        sub_user,
    }
}

impl Fixture {
    /// A user of the top tenant with `method`.
    fn user(&self, username: &str, method: &str) -> String {
        let body = json!({"username": username, "password": "pw", "authentication_method": method});
        let r = self
            .s
            .call("POST", "/0.1/users", &self.admin, None, Some(&body));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["uuid"].as_str().unwrap().to_string()
    }

    fn method(&self, user: &str) -> String {
        let r = self.s.call(
            "GET",
            &format!("/0.1/users/{user}"),
            &self.admin,
            None,
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["authentication_method"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn one(&self, method: &str, token: &str, idp: &str, user: &str) -> Resp {
        let path = format!("/0.1/idp/{idp}/users/{user}");
        self.s.call(method, &path, token, None, None)
    }

    fn many(&self, token: &str, idp: &str, body: &Value) -> Resp {
        let path = format!("/0.1/idp/{idp}/users");
        self.s.call("PUT", &path, token, None, Some(body))
    }
}

fn assert_unknown_user(r: &Resp, user: &str) {
    assert_eq!(r.status, 404, "{}", r.body);
    let b = r.json();
    assert_eq!(b["error_id"], "unknown-user", "{b}");
    assert_eq!(b["details"], json!({ "uuid": user }), "{b}");
}

fn assert_unknown_idp(r: &Resp, idp: &str) {
    assert_eq!(r.status, 404, "{}", r.body);
    let b = r.json();
    assert_eq!(b["error_id"], "unknown-idp-type", "{b}");
    assert_eq!(b["resource"], "idp", "{b}");
    assert_eq!(b["details"], json!({ "idp_type": idp }), "{b}");
    assert_eq!(b["message"], format!("No such IDP type: \"{idp}\""));
}

#[test]
fn the_idp_types_are_native_default_and_the_enabled_ones() {
    let f = fixture(json!({}));
    let r = f.s.call("GET", "/0.1/idp", &f.admin, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let b = r.json();
    let mut items: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    items.sort();
    assert_eq!(items, ["default", "ldap", "native", "saml"]);
    assert_eq!(b["total"], 4);
    assert_eq!(b["filtered"], 4);
    // Unscoped: any token granting the ACL, whatever its tenant.
    let r = f.s.call("GET", "/0.1/idp", &f.sub_admin, None, None);
    assert_eq!(r.json(), b);
    let r = f.s.get("/0.1/idp");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["details"]["required_access"], "auth.idp.read");
    drop(f);

    let f = fixture(json!({"idp_plugins": {
        "saml": {"enabled": false},
        "ldap": {"enabled": true, "priority": 2},
        "custom": {"enabled": true},
    }}));
    let r = f.s.call("GET", "/0.1/idp", &f.admin, None, None);
    let mut items: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    items.sort();
    assert_eq!(items, ["custom", "default", "ldap", "native"]);
    // A disabled IdP is unknown to the routes too, and to the users' own method.
    let user = f.user("u1", "custom");
    assert_unknown_idp(&f.one("PUT", &f.admin, "saml", &user), "saml");
    assert_eq!(f.one("PUT", &f.admin, "ldap", &user).status, 204);
    assert_eq!(f.method(&user), "ldap");
    let body = json!({"username": "u2", "authentication_method": "saml"});
    let r = f.s.call("POST", "/0.1/users", &f.admin, None, Some(&body));
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn a_user_is_assigned_to_an_idp_type_within_the_callers_tree() {
    let f = fixture(json!({}));
    let user = f.user("user1", "default");

    assert_unknown_idp(&f.one("PUT", &f.admin, "unknown", &user), "unknown");
    // The type is checked before the user.
    assert_unknown_idp(&f.one("PUT", &f.admin, "unknown", UNKNOWN_UUID), "unknown");
    assert_unknown_user(
        &f.one("PUT", &f.admin, "native", UNKNOWN_UUID),
        UNKNOWN_UUID,
    );
    // A path segment that is not a UUID matches no route.
    assert_eq!(f.one("PUT", &f.admin, "native", "not-a-uuid").status, 404);

    assert_eq!(f.one("PUT", &f.admin, "native", &user).status, 204);
    assert_eq!(f.method(&user), "native");
    assert_eq!(f.one("PUT", &f.admin, "native", &user).status, 204);
    assert_eq!(f.method(&user), "native");

    // The sub-tenant's administrator cannot reach a user of the top tenant (404, unchanged)...
    assert_unknown_user(&f.one("PUT", &f.sub_admin, "saml", &user), &user);
    assert_eq!(f.method(&user), "native");
    // ... but reaches its own users; the top tenant's administrator reaches them too.
    assert_eq!(f.one("PUT", &f.sub_admin, "ldap", &f.sub_user).status, 204);
    assert_eq!(f.method(&f.sub_user), "ldap");
    assert_eq!(f.one("PUT", &f.admin, "native", &f.sub_user).status, 204);
    assert_eq!(f.method(&f.sub_user), "native");
    // Wazo-Tenant narrows the tree: the top tenant's user is outside the sub-tenant's.
    let path = format!("/0.1/idp/native/users/{user}");
    let r = f.s.call("PUT", &path, &f.admin, Some(&f.sub_tenant), None);
    assert_unknown_user(&r, &user);
    let r =
        f.s.call("PUT", &path, &f.sub_admin, Some(UNKNOWN_UUID), None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unauthorized-tenant");

    for idp in ["saml", "native", "default", "ldap"] {
        assert_eq!(f.one("PUT", &f.admin, idp, &user).status, 204);
        assert_eq!(f.method(&user), idp);
    }

    // The required ACL names the type and the user; a dot in the type becomes `_`.
    let alice = f.s.alice_token(json!({}));
    let r = f.one("PUT", &alice, "a.b", &user);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["details"]["required_access"],
        format!("auth.idp.a_b.users.{user}.create")
    );
}

#[test]
fn removing_a_user_from_its_idp_type_goes_back_to_default() {
    let f = fixture(json!({}));
    let user = f.user("user1", "saml");

    assert_unknown_idp(&f.one("DELETE", &f.admin, "unknown", &user), "unknown");
    assert_unknown_user(
        &f.one("DELETE", &f.admin, "native", UNKNOWN_UUID),
        UNKNOWN_UUID,
    );
    // Not its type: nothing changes.
    assert_eq!(f.one("DELETE", &f.admin, "native", &user).status, 204);
    assert_eq!(f.method(&user), "saml");
    // Outside the caller's tree: 404, even when the type matches.
    assert_unknown_user(&f.one("DELETE", &f.sub_admin, "saml", &user), &user);
    assert_eq!(f.method(&user), "saml");

    assert_eq!(
        f.one("PUT", &f.sub_admin, "native", &f.sub_user).status,
        204
    );
    assert_eq!(f.one("DELETE", &f.admin, "native", &f.sub_user).status, 204);
    assert_eq!(f.method(&f.sub_user), "default");

    for idp in ["saml", "native", "ldap"] {
        assert_eq!(f.one("PUT", &f.admin, idp, &user).status, 204);
        assert_eq!(f.one("DELETE", &f.admin, idp, &user).status, 204);
        assert_eq!(f.method(&user), "default");
    }
    // `default` removed from a `default` user: still `default`.
    assert_eq!(f.one("DELETE", &f.admin, "default", &user).status, 204);
    assert_eq!(f.method(&user), "default");
}

#[test]
fn several_users_are_assigned_at_once_or_none() {
    let f = fixture(json!({}));
    let (u1, u2) = (f.user("user1", "default"), f.user("user2", "default"));

    // Bodies: not a list of {uuid} objects, 400 invalid-list-param (resource `users`).
    for (body, message) in [
        (
            json!({"uuid": u1}),
            json!({"users": {"message": "Missing data for required field.", "constraint_id": "required", "constraint": "required"}}),
        ),
        (
            json!({"users": {"uuid": u1}}),
            json!({"users": {"_schema": ["Invalid input type."]}}),
        ),
        (
            json!({"users": [u1]}),
            json!({"users": {"0": {"_schema": ["Invalid input type."]}}}),
        ),
        (
            json!([{"uuid": u1}]),
            json!({"_schema": ["Invalid input type."]}),
        ),
        (
            json!({"users": [{"uuid": u1}, {"id": u2}]}),
            json!({"users": {"1": {"uuid": {"message": "Missing data for required field.", "constraint_id": "required", "constraint": "required"}}}}),
        ),
    ] {
        let r = f.many(&f.admin, "native", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let b = r.json();
        assert_eq!(b["error_id"], "invalid-list-param", "{b}");
        assert_eq!(b["resource"], "users", "{b}");
        assert_eq!(b["message"], message, "{body}");
    }
    let r = f.s.request(
        "PUT",
        "/0.1/idp/native/users",
        &[("X-Auth-Token", &f.admin)],
        Some(b""),
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // The type first, then the users, each in turn.
    assert_unknown_idp(
        &f.many(&f.admin, "unknown", &json!({"users": "garbage"})),
        "unknown",
    );
    let r = f.many(
        &f.admin,
        "native",
        &json!({"users": [{"uuid": u1}, {"uuid": UNKNOWN_UUID}]}),
    );
    assert_unknown_user(&r, UNKNOWN_UUID);
    let r = f.many(
        &f.admin,
        "native",
        &json!({"users": [{"uuid": u1}, {"uuid": "not-a-uuid"}]}),
    );
    assert_unknown_user(&r, "not-a-uuid");
    // Nobody changed, not even the users before the unknown one.
    assert_eq!(f.method(&u1), "default");

    let both = json!({"users": [{"uuid": u1}, {"uuid": u2}]});
    assert_eq!(f.many(&f.admin, "native", &both).status, 204);
    assert_eq!(f.method(&u1), "native");
    assert_eq!(f.method(&u2), "native");
    assert_eq!(
        f.many(&f.admin, "native", &json!({"users": []})).status,
        204
    );

    // The sub-tenant's administrator: a foreign user in the list is 404, and its own user in
    // the same list does not change either.
    let mixed = json!({"users": [{"uuid": f.sub_user}, {"uuid": u1}]});
    assert_unknown_user(&f.many(&f.sub_admin, "saml", &mixed), &u1);
    assert_eq!(f.method(&f.sub_user), "default");
    assert_eq!(f.method(&u1), "native");
    // The top tenant's administrator reaches both.
    assert_eq!(f.many(&f.admin, "saml", &mixed).status, 204);
    assert_eq!(f.method(&f.sub_user), "saml");
    assert_eq!(f.method(&u1), "saml");

    for idp in ["native", "default", "ldap", "saml"] {
        assert_eq!(f.many(&f.admin, idp, &both).status, 204);
        assert_eq!(f.method(&u2), idp);
    }
    let alice = f.s.alice_token(json!({}));
    let r = f.many(&alice, "ldap", &both);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["details"]["required_access"],
        "auth.idp.ldap.users.update"
    );
}
