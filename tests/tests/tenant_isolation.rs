//! Tenant isolation (issue 17): a cross-tenant matrix generated from the API description.
//!
//! Tenants `master → {A → A1, B}`. `aadmin`, a user of A, holds an A policy `["auth.#"]`: a
//! sub-tenant administrator. Each of master, A, A1 and B holds a user (with an e-mail), a group
//! (with the user as member), a policy (linked to the user and to the group), a session and a
//! refresh token of the user, external-auth data of the user, an external-auth configuration and
//! a domain name.
//!
//! The matrix: every operation of the API description served by the server under test
//! (`GET /0.1/api/openapi.yml`, kept equal to the route table by the host unit test
//! `routes_match_the_api_description` and by tests/api_spec.rs) is read for its inputs that name a resource: path parameters, body fields, the
//! `Wazo-Tenant` header and the `tenant` query parameter. Each such input needs a row of [`ROWS`]
//! (or, for the header, the generated rows) saying how to fill it and what must come back, or an
//! exemption with its reason in [`EXEMPT`]; an input without either fails the test, so the
//! matrix cannot fall behind the API. A parameter or field name the test does not know fails it
//! too: it must be classified first.
//!
//! Each row is sent with `aadmin`'s token three times: the input names B's resource (a
//! sibling's), master's (the parent's), then an unknown one; every other input names a resource
//! of A's own tree. The answer must be the row's refusal (404 with the resource's error kind,
//! 401 for a `Wazo-Tenant` outside the tree...). The tables that hold tenants' data are read
//! straight from PostgreSQL before the matrix and after every request: nothing may change.
//!
//! Then the controls, so that the matrix cannot pass by refusing everything: `aadmin` acts inside
//! its own tree, and the master administrator acts in B (with and without `Wazo-Tenant`).

use std::collections::{BTreeMap, BTreeSet};

use wazo_auth_tests::serde_json::{json, Map, Value};
use wazo_auth_tests::*;

// ------------------------------------------------------------------------------------------------
// The matrix
// ------------------------------------------------------------------------------------------------

/// The kind of resource id an input receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Id {
    User,
    Group,
    /// A policy by uuid.
    Policy,
    /// A policy by slug.
    PolicySlug,
    Tenant,
    Session,
    /// The client id of a refresh token.
    Client,
    /// An e-mail address of a user.
    Email,
}

/// What a refused request must answer.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// 404 `unknown-<kind>` (shape B), naming the id.
    Unknown(&'static str),
    /// 404 in the policies' legacy shape: `{"reason": ["No such policy ..."]}`.
    NoSuchPolicy,
    /// 404 `cannot-find-refresh-token-matching-client-id`, naming the client id.
    NoRefreshToken,
    /// 401 `unauthorized-tenant`, naming the tenant (a `Wazo-Tenant` outside the caller's tree).
    UnauthorizedTenant,
    /// 403 of a token check (shape A): the token cannot reach the tenant.
    TokenForbidden,
    /// 204: the original answers 204 whether or not something was deleted; the snapshot shows
    /// that nothing was.
    NoContent,
}

/// One way to aim a route at a foreign resource: `input` (`path:<name>`, `body:<field>`,
/// `query:<name>`) receives the target's id of kind `id`; every other input names a resource of
/// the caller's own tree (see [`Fixture::own`]).
struct Row {
    method: &'static str,
    path: &'static str,
    input: &'static str,
    id: Id,
    expect: Expect,
}

const fn row(
    method: &'static str,
    path: &'static str,
    input: &'static str,
    id: Id,
    expect: Expect,
) -> Row {
    Row {
        method,
        path,
        input,
        id,
        expect,
    }
}

use Expect::*;

const USER: Expect = Unknown("user");
const GROUP: Expect = Unknown("group");
const TENANT: Expect = Unknown("tenant");
const EMAIL: Expect = Unknown("email");

/// The rows for path, body and query inputs. The rows for `Wazo-Tenant` are generated: every
/// operation that takes the header answers [`Expect::UnauthorizedTenant`] to a tenant outside
/// the caller's tree, its other inputs naming the caller's own resources.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    // Token checks: the caller's own token, a foreign tenant.
    row("GET", "/token/{token}", "query:tenant", Id::Tenant, TokenForbidden),
    row("HEAD", "/token/{token}", "query:tenant", Id::Tenant, TokenForbidden),
    row("POST", "/token/{token}/scopes/check", "body:tenant_uuid", Id::Tenant, TokenForbidden),
    // Users.
    row("GET", "/users/{user_uuid}", "path:user_uuid", Id::User, USER),
    row("HEAD", "/users/{user_uuid}", "path:user_uuid", Id::User, USER),
    row("PUT", "/users/{user_uuid}", "path:user_uuid", Id::User, USER),
    row("DELETE", "/users/{user_uuid}", "path:user_uuid", Id::User, USER),
    row("PUT", "/users/{user_uuid}/password", "path:user_uuid", Id::User, USER),
    row("GET", "/users/{user_uuid}/groups", "path:user_uuid", Id::User, USER),
    row("HEAD", "/users/{user_uuid}/groups", "path:user_uuid", Id::User, USER),
    row("GET", "/users/{user_uuid}/policies", "path:user_uuid", Id::User, USER),
    row("HEAD", "/users/{user_uuid}/policies", "path:user_uuid", Id::User, USER),
    row("PUT", "/users/{user_uuid}/policies/{policy}", "path:user_uuid", Id::User, USER),
    row("PUT", "/users/{user_uuid}/policies/{policy}", "path:policy", Id::Policy, NoSuchPolicy),
    row("PUT", "/users/{user_uuid}/policies/{policy}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    row("DELETE", "/users/{user_uuid}/policies/{policy}", "path:user_uuid", Id::User, USER),
    row("DELETE", "/users/{user_uuid}/policies/{policy}", "path:policy", Id::Policy, NoSuchPolicy),
    row("DELETE", "/users/{user_uuid}/policies/{policy}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    row("GET", "/users/{user_uuid}/sessions", "path:user_uuid", Id::User, USER),
    row("DELETE", "/users/{user_uuid}/sessions/{session_uuid}", "path:user_uuid", Id::User, USER),
    row("DELETE", "/users/{user_uuid}/sessions/{session_uuid}", "path:session_uuid", Id::Session, NoContent),
    row("GET", "/users/{user_uuid}/tokens", "path:user_uuid", Id::User, USER),
    row("DELETE", "/users/{user_uuid}/tokens/{client_id}", "path:user_uuid", Id::User, USER),
    row("DELETE", "/users/{user_uuid}/tokens/{client_id}", "path:client_id", Id::Client, NoRefreshToken),
    row("DELETE", "/users/me/tokens/{client_id}", "path:client_id", Id::Client, NoRefreshToken),
    // Password reset.
    row("POST", "/users/password/reset", "query:user_uuid", Id::User, USER),
    // E-mail addresses.
    row("PUT", "/users/{user_uuid}/emails", "path:user_uuid", Id::User, USER),
    row("PUT", "/admin/users/{user_uuid}/emails", "path:user_uuid", Id::User, USER),
    row("GET", "/users/{user_uuid}/emails/{email_uuid}/confirm", "path:user_uuid", Id::User, USER),
    row("GET", "/users/{user_uuid}/emails/{email_uuid}/confirm", "path:email_uuid", Id::Email, EMAIL),
    row("HEAD", "/users/{user_uuid}/emails/{email_uuid}/confirm", "path:user_uuid", Id::User, USER),
    row("HEAD", "/users/{user_uuid}/emails/{email_uuid}/confirm", "path:email_uuid", Id::Email, EMAIL),
    row("PUT", "/emails/{email_uuid}/confirm", "path:email_uuid", Id::Email, EMAIL),
    row("GET", "/emails/{email_uuid}/confirm", "path:email_uuid", Id::Email, EMAIL),
    row("HEAD", "/emails/{email_uuid}/confirm", "path:email_uuid", Id::Email, EMAIL),
    // External authentication.
    row("GET", "/users/{user_uuid}/external", "path:user_uuid", Id::User, USER),
    row("GET", "/users/{user_uuid}/external/{auth_type}", "path:user_uuid", Id::User, USER),
    row("POST", "/users/{user_uuid}/external/{auth_type}", "path:user_uuid", Id::User, USER),
    row("PUT", "/users/{user_uuid}/external/{auth_type}", "path:user_uuid", Id::User, USER),
    row("DELETE", "/users/{user_uuid}/external/{auth_type}", "path:user_uuid", Id::User, USER),
    // Tenants.
    row("POST", "/tenants", "body:contact", Id::User, USER),
    row("GET", "/tenants/{tenant_uuid}", "path:tenant_uuid", Id::Tenant, TENANT),
    row("HEAD", "/tenants/{tenant_uuid}", "path:tenant_uuid", Id::Tenant, TENANT),
    row("PUT", "/tenants/{tenant_uuid}", "path:tenant_uuid", Id::Tenant, TENANT),
    row("PUT", "/tenants/{tenant_uuid}", "body:contact", Id::User, USER),
    row("DELETE", "/tenants/{tenant_uuid}", "path:tenant_uuid", Id::Tenant, TENANT),
    row("GET", "/tenants/{tenant_uuid}/domains", "path:tenant_uuid", Id::Tenant, TENANT),
    row("HEAD", "/tenants/{tenant_uuid}/domains", "path:tenant_uuid", Id::Tenant, TENANT),
    row("PUT", "/tenants/{tenant_uuid}/parent/{parent_tenant_uuid}", "path:tenant_uuid", Id::Tenant, TENANT),
    row("PUT", "/tenants/{tenant_uuid}/parent/{parent_tenant_uuid}", "path:parent_tenant_uuid", Id::Tenant, TENANT),
    // Groups.
    row("GET", "/groups/{group_uuid}", "path:group_uuid", Id::Group, GROUP),
    row("HEAD", "/groups/{group_uuid}", "path:group_uuid", Id::Group, GROUP),
    row("PUT", "/groups/{group_uuid}", "path:group_uuid", Id::Group, GROUP),
    row("DELETE", "/groups/{group_uuid}", "path:group_uuid", Id::Group, GROUP),
    row("GET", "/groups/{group_uuid}/users", "path:group_uuid", Id::Group, GROUP),
    row("HEAD", "/groups/{group_uuid}/users", "path:group_uuid", Id::Group, GROUP),
    row("PUT", "/groups/{group_uuid}/users/{user_uuid}", "path:group_uuid", Id::Group, GROUP),
    row("PUT", "/groups/{group_uuid}/users/{user_uuid}", "path:user_uuid", Id::User, USER),
    row("DELETE", "/groups/{group_uuid}/users/{user_uuid}", "path:group_uuid", Id::Group, GROUP),
    row("DELETE", "/groups/{group_uuid}/users/{user_uuid}", "path:user_uuid", Id::User, USER),
    row("GET", "/groups/{group_uuid}/policies", "path:group_uuid", Id::Group, GROUP),
    row("HEAD", "/groups/{group_uuid}/policies", "path:group_uuid", Id::Group, GROUP),
    row("PUT", "/groups/{group_uuid}/policies/{policy}", "path:group_uuid", Id::Group, GROUP),
    row("PUT", "/groups/{group_uuid}/policies/{policy}", "path:policy", Id::Policy, NoSuchPolicy),
    row("PUT", "/groups/{group_uuid}/policies/{policy}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    row("DELETE", "/groups/{group_uuid}/policies/{policy}", "path:group_uuid", Id::Group, GROUP),
    row("DELETE", "/groups/{group_uuid}/policies/{policy}", "path:policy", Id::Policy, NoSuchPolicy),
    row("DELETE", "/groups/{group_uuid}/policies/{policy}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    // Policies.
    row("GET", "/policies/{policy}", "path:policy", Id::Policy, NoSuchPolicy),
    row("GET", "/policies/{policy}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    row("HEAD", "/policies/{policy}", "path:policy", Id::Policy, NoSuchPolicy),
    row("HEAD", "/policies/{policy}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    row("PUT", "/policies/{policy}", "path:policy", Id::Policy, NoSuchPolicy),
    row("PUT", "/policies/{policy}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    row("DELETE", "/policies/{policy}", "path:policy", Id::Policy, NoSuchPolicy),
    row("DELETE", "/policies/{policy}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    row("PUT", "/policies/{policy}/acl/{access}", "path:policy", Id::Policy, NoSuchPolicy),
    row("PUT", "/policies/{policy}/acl/{access}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    row("DELETE", "/policies/{policy}/acl/{access}", "path:policy", Id::Policy, NoSuchPolicy),
    row("DELETE", "/policies/{policy}/acl/{access}", "path:policy", Id::PolicySlug, NoSuchPolicy),
    // Sessions.
    row("DELETE", "/sessions/{session_uuid}", "path:session_uuid", Id::Session, NoContent),
    // Identity providers.
    row("PUT", "/idp/{idp_type}/users/{user_uuid}", "path:user_uuid", Id::User, USER),
    row("DELETE", "/idp/{idp_type}/users/{user_uuid}", "path:user_uuid", Id::User, USER),
];

/// Inputs that name a resource but have no row, with the reason (`*`: every input of the
/// operation).
const EXEMPT: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/token",
        "*",
        "a login: its body carries credentials (a refresh token and its client id) and hints \
         for the backend (tenant_id), checked by the backend, not references made by a token \
         holder",
    ),
    (
        "POST",
        "/users",
        "body:uuid",
        "the id of the user being created, not a reference",
    ),
    (
        "POST",
        "/tenants",
        "body:uuid",
        "the id of the tenant being created, not a reference",
    ),
    (
        "PUT",
        "/idp/{idp_type}/users",
        "body:users",
        "a list of {uuid} objects, which a row cannot fill: tests/tests/idp.rs checks that a \
         foreign or unknown user in it is 404 and changes nobody",
    ),
];

/// Path parameters that name a resource of a tenant.
const PATH_IDS: &[&str] = &[
    "user_uuid",
    "group_uuid",
    "policy",
    "session_uuid",
    "client_id",
    "tenant_uuid",
    "parent_tenant_uuid",
    "email_uuid",
];
/// Path parameters that name none.
const PATH_OTHERS: &[(&str, &str)] = &[
    ("access", "an ACL text"),
    (
        "auth_type",
        "the name of an external-auth plugin, the same in every tenant",
    ),
    (
        "idp_type",
        "an identity-provider type, the same in every tenant",
    ),
    (
        "token",
        "a bearer secret: whoever holds a token may check or revoke it",
    ),
];
/// Query parameters that name a resource.
const QUERY_IDS: &[&str] = &["tenant", "user_uuid"];
/// Query parameters that name none.
const QUERY_OTHERS: &[&str] = &[
    "direction",
    "limit",
    "offset",
    "order",
    "recurse",
    "scope",
    "search",
    // A bearer secret (the token of a mailed link), as the `token` path parameter.
    "token",
    // The names of an anonymous password reset request (it answers 204 whatever they name).
    "username",
    "email",
    "login",
];
/// Headers that name a resource.
const HEADER_IDS: &[&str] = &["Wazo-Tenant"];
/// Headers that carry no id (a reverse proxy's path prefix).
const HEADER_OTHERS: &[&str] = &["X-Script-Name"];
/// Body fields that name a resource.
const BODY_IDS: &[&str] = &[
    "uuid",
    "contact",
    "tenant_uuid",
    "tenant_id",
    "client_id",
    "refresh_token",
    "user_uuid",
    "group_uuid",
    "policy_uuid",
    "session_uuid",
    "parent_uuid",
    "users",
];
/// Body fields that name none. (Domain names are unique across tenants: a used one answers 409
/// wherever it is, as the original does.)
const BODY_OTHERS: &[&str] = &[
    "access_type",
    "acl",
    "address",
    "authentication_method",
    "backend",
    // The LDAP configuration's fields: a directory's coordinates, not references.
    "bind_dn",
    "bind_password",
    "default_authentication_method",
    "description",
    "domain_name",
    "domain_names",
    "email_address",
    // Addresses to set, not references.
    "emails",
    "enabled",
    "expiration",
    "firstname",
    "host",
    "lastname",
    "name",
    "new_password",
    "old_password",
    "password",
    "phone",
    "port",
    "protocol_security",
    "protocol_version",
    "purpose",
    "scopes",
    "search_filters",
    "shared",
    "slug",
    "user_base_dn",
    "user_email_attribute",
    "user_login_attribute",
    "username",
];

const METHODS: [&str; 5] = ["get", "head", "post", "put", "delete"];

// ------------------------------------------------------------------------------------------------
// Reading the API description
// ------------------------------------------------------------------------------------------------

/// One operation of the description and the inputs that name a resource (`path:user_uuid`,
/// `body:contact`, `header:Wazo-Tenant`, `query:tenant`).
struct Operation {
    method: String,
    path: String,
    inputs: BTreeSet<String>,
}

/// Follows `$ref`s (`#/components/...`) from `node`.
fn resolve<'a>(spec: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let mut target = spec;
        for part in r.trim_start_matches("#/").split('/') {
            target = &target[part];
        }
        assert!(!target.is_null(), "dangling $ref {r}");
        node = target;
    }
    node
}

/// The property names of a schema (through `$ref` and `allOf`).
fn properties(spec: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    let schema = resolve(spec, schema);
    for part in schema["allOf"].as_array().into_iter().flatten() {
        properties(spec, part, out);
    }
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.keys().cloned());
    }
}

/// The operations of the description, with the resource inputs of each; `problems` receives
/// every name the test does not know how to classify.
fn operations(spec: &Value, problems: &mut Vec<String>) -> Vec<Operation> {
    let mut ops = Vec::new();
    let paths = spec["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let method = method.to_ascii_uppercase();
            let mut inputs = BTreeSet::new();
            let mut classify = |kind: &str, name: &str, ids: &[&str], others: &[&str]| {
                if ids.contains(&name) {
                    inputs.insert(format!("{kind}:{name}"));
                } else if !others.contains(&name) {
                    problems.push(format!(
                        "{method} {path}: {kind} input {name:?} is not classified: add it to \
                         the ids or the others of tenant_isolation.rs"
                    ));
                }
            };
            let path_others: Vec<&str> = PATH_OTHERS.iter().map(|(n, _)| *n).collect();
            for segment in path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    classify("path", name, PATH_IDS, &path_others);
                }
            }
            let declared = item["parameters"]
                .as_array()
                .into_iter()
                .chain(op["parameters"].as_array())
                .flatten();
            for param in declared {
                let param = resolve(spec, param);
                let name = param["name"].as_str().expect("parameter name");
                match param["in"].as_str() {
                    Some("query") => classify("query", name, QUERY_IDS, QUERY_OTHERS),
                    Some("header") => classify("header", name, HEADER_IDS, HEADER_OTHERS),
                    // Path parameters are read from the template above.
                    Some("path") => {}
                    // Neither an id nor another kind of input: unclassified.
                    _ => classify("unknown-location", name, &[], &[]),
                }
            }
            if !op["requestBody"].is_null() {
                let body = resolve(spec, &op["requestBody"]);
                let mut fields = BTreeSet::new();
                for media in body["content"].as_object().into_iter().flatten() {
                    properties(spec, &media.1["schema"], &mut fields);
                }
                for field in fields {
                    classify("body", &field, BODY_IDS, BODY_OTHERS);
                }
            }
            ops.push(Operation {
                method,
                path: path.clone(),
                inputs,
            });
        }
    }
    ops
}

// ------------------------------------------------------------------------------------------------
// Fixture
// ------------------------------------------------------------------------------------------------

/// The resources of one tenant that requests point at.
#[derive(Clone, Debug)]
struct Res {
    label: &'static str,
    tenant: String,
    user: String,
    group: String,
    policy: String,
    policy_slug: String,
    session: String,
    client_id: String,
    /// The user's address.
    email: String,
}

impl Res {
    fn id(&self, id: Id) -> &str {
        match id {
            Id::User => &self.user,
            Id::Group => &self.group,
            Id::Policy => &self.policy,
            Id::PolicySlug => &self.policy_slug,
            Id::Tenant => &self.tenant,
            Id::Session => &self.session,
            Id::Client => &self.client_id,
            Id::Email => &self.email,
        }
    }

    fn unknown() -> Res {
        Res {
            label: "unknown",
            tenant: "6d1b0f7e-0000-4000-8000-00000000000a".into(),
            user: "6d1b0f7e-0000-4000-8000-00000000000b".into(),
            group: "6d1b0f7e-0000-4000-8000-00000000000c".into(),
            policy: "6d1b0f7e-0000-4000-8000-00000000000d".into(),
            policy_slug: "no-such-policy".into(),
            session: "6d1b0f7e-0000-4000-8000-00000000000e".into(),
            client_id: "no-such-client".into(),
            email: "6d1b0f7e-0000-4000-8000-00000000000f".into(),
        }
    }
}

struct Fixture {
    s: Server,
    /// The master administrator's token (ACL `#`).
    root: String,
    /// The sub-tenant administrator's token (user of A, ACL `auth.#`).
    aadmin: String,
    master: Res,
    a: Res,
    a1: Res,
    b: Res,
    /// A policy of master, shared: visible from A.
    shared: String,
}

/// Requests of the set-up, with the master administrator's token, that must succeed.
struct Setup<'a> {
    s: &'a Server,
    root: &'a str,
}

impl Setup<'_> {
    /// `method path` (in `tenant` when given) must answer `status`; returns the body as JSON
    /// (`null` when empty).
    fn must(
        &self,
        method: &str,
        path: &str,
        tenant: Option<&str>,
        body: Value,
        status: u16,
    ) -> Value {
        let body = (!body.is_null()).then_some(body);
        let r = self.s.call(
            method,
            &format!("/0.1{path}"),
            self.root,
            tenant,
            body.as_ref(),
        );
        assert_eq!(r.status, status, "set-up: {method} {path}: {}", r.body);
        if r.body.trim().is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// `POST path` (in `tenant`) must answer 200; returns the new resource's `uuid`.
    fn create(&self, path: &str, tenant: Option<&str>, body: Value) -> String {
        text(&self.must("POST", path, tenant, body, 200)["uuid"])
    }

    /// Fills `tenant` (labelled `label`) with a user (with an e-mail), a group (the user is a
    /// member), a policy (linked to both), a session and a refresh token of the user (an offline
    /// login), external-auth data of the user and an external-auth configuration.
    fn populate(&self, label: &'static str, tenant: &str) -> Res {
        let t = Some(tenant);
        let username = format!("{label}plain");
        let created = self.must(
            "POST",
            "/users",
            t,
            json!({"username": username, "password": "pw",
                   "email_address": format!("{username}@{label}.example")}),
            200,
        );
        let (user, email) = (text(&created["uuid"]), text(&created["emails"][0]["uuid"]));
        let group = self.create("/groups", t, json!({"name": format!("{label}-group")}));
        let policy = self.must(
            "POST",
            "/policies",
            t,
            json!({"name": format!("{label}-policy"), "acl": ["auth.users.read"]}),
            200,
        );
        let (policy, policy_slug) = (text(&policy["uuid"]), text(&policy["slug"]));
        for link in [
            format!("/groups/{group}/users/{user}"),
            format!("/users/{user}/policies/{policy}"),
            format!("/groups/{group}/policies/{policy}"),
        ] {
            self.must("PUT", &link, t, Value::Null, 204);
        }
        let client_id = format!("{label}-client");
        let offline = json!({"access_type": "offline", "client_id": client_id});
        let login = self.s.login(&username, "pw", offline);
        assert_eq!(
            login.status, 200,
            "offline login of {username}: {}",
            login.body
        );
        let session = text(&login.json()["data"]["session_uuid"]);
        let stored = json!({"scope": [label], "access_token": format!("{label}-secret")});
        self.must(
            "POST",
            &format!("/users/{user}/external/bar"),
            None,
            stored,
            200,
        );
        let config = json!({"client_id": label});
        self.must("POST", "/external/bar/config", t, config, 201);
        Res {
            label,
            tenant: tenant.to_string(),
            user,
            group,
            policy,
            policy_slug,
            session,
            client_id,
            email,
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn server() -> Server {
    ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(BAR))
        .config(json!({"enabled_external_auth_plugins": {"bar": true}}))
        .start()
}

fn fixture(s: Server) -> Fixture {
    let root = s.admin_token();
    let setup = Setup { s: &s, root: &root };
    let master = sql(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0][0]
        .clone()
        .unwrap();
    let domain = json!({"name": "master", "domain_names": ["master.example"]});
    setup.must("PUT", &format!("/tenants/{master}"), None, domain, 200);
    let tenant = |parent: Option<&str>, name: &str| {
        let body = json!({"name": name, "slug": name, "domain_names": [format!("{name}.example")]});
        setup.create("/tenants", parent, body)
    };
    let (ta, tb) = (tenant(None, "tena"), tenant(None, "tenb"));
    let ta1 = tenant(Some(&ta), "tena1");
    let (m, a, a1, b) = (
        setup.populate("m", &master),
        setup.populate("a", &ta),
        setup.populate("a1", &ta1),
        setup.populate("b", &tb),
    );
    // aadmin: a user of A holding an A policy ["auth.#"].
    let a_admin = json!({"username": "aadmin", "password": "pw"});
    let aadmin = setup.create("/users", Some(&ta), a_admin);
    let pa = json!({"name": "a-admin", "acl": ["auth.#"]});
    let pa = setup.create("/policies", Some(&ta), pa);
    let grant = format!("/users/{aadmin}/policies/{pa}");
    setup.must("PUT", &grant, Some(&ta), Value::Null, 204);
    let shared = json!({"name": "m-shared", "acl": ["auth.users.read"], "shared": true});
    let shared = setup.create("/policies", None, shared);
    let aadmin = s.user_token("aadmin", "pw");
    Fixture {
        s,
        root,
        aadmin,
        master: m,
        a,
        a1,
        b,
        shared,
    }
}

impl Fixture {
    /// The caller's own resource for a path parameter (its tree: A, A1 for the tenant acted
    /// upon, so that A is never asked to act on itself).
    fn own(&self, param: &str) -> String {
        match param {
            "user_uuid" => self.a.user.clone(),
            "group_uuid" => self.a.group.clone(),
            "policy" => self.a.policy.clone(),
            "session_uuid" => self.a.session.clone(),
            "client_id" => self.a.client_id.clone(),
            "email_uuid" => self.a.email.clone(),
            "tenant_uuid" => self.a1.tenant.clone(),
            "parent_tenant_uuid" => self.a.tenant.clone(),
            "auth_type" => "bar".into(),
            "idp_type" => "native".into(),
            "access" => "auth.users.read".into(),
            "token" => self.aadmin.clone(),
            other => panic!("no own value for path parameter {other:?}"),
        }
    }
}

/// A valid body for an operation (so that the refusal cannot come from body validation); `n`
/// keeps names unique.
fn body_for(method: &str, path: &str, n: usize) -> Option<Value> {
    let name = format!("matrix-{n}");
    Some(match (method, path) {
        ("POST", "/users") => json!({"username": name, "password": "pw"}),
        ("PUT", "/users/{user_uuid}") => json!({"username": name, "firstname": "matrix"}),
        ("PUT", "/users/{user_uuid}/password") => {
            json!({"old_password": "wrong", "new_password": "matrix"})
        }
        ("POST" | "PUT", "/users/{user_uuid}/external/{auth_type}") => {
            json!({"scope": ["matrix"], "access_token": "matrix"})
        }
        ("POST" | "PUT", "/external/{auth_type}/config") => json!({"client_id": "matrix"}),
        ("POST", "/tenants") | ("PUT", "/tenants/{tenant_uuid}") => json!({"name": name}),
        ("POST", "/groups") | ("PUT", "/groups/{group_uuid}") => json!({"name": name}),
        ("POST", "/policies") | ("PUT", "/policies/{policy}") => {
            json!({"name": name, "acl": ["auth.users.read"]})
        }
        ("POST", "/token/{token}/scopes/check") => json!({"scopes": ["auth.users.read"]}),
        ("PUT", "/backends/ldap") => json!({
            "host": "ldap.matrix.example", "port": 389, "user_base_dn": "ou=people,dc=matrix",
            "user_login_attribute": "uid", "user_email_attribute": "mail",
            "bind_password": name,
        }),
        ("POST", "/users/password/reset") => json!({"password": "matrix"}),
        ("PUT", "/users/{user_uuid}/emails" | "/admin/users/{user_uuid}/emails") => {
            json!({"emails": [{"address": format!("{name}@matrix.example"), "main": true}]})
        }
        _ => return None,
    })
}

// ------------------------------------------------------------------------------------------------
// Snapshot of the tenants' data
// ------------------------------------------------------------------------------------------------

/// Every table that holds tenants' data; not `auth_token` (logins change it) nor the throttle.
const TABLES: &[&str] = &[
    "auth_tenant",
    "auth_tenant_domain",
    "auth_address",
    "auth_user",
    "auth_email",
    "auth_group",
    "auth_policy",
    "auth_group_policy",
    "auth_user_group",
    "auth_user_policy",
    "auth_session",
    "auth_refresh_token",
    "auth_external_auth_type",
    "auth_external_auth_config",
    "auth_user_external_auth",
    "auth_ldap_config",
];

/// Each table's rows, as text, in one query.
fn snapshot(db: &str) -> BTreeMap<String, BTreeSet<String>> {
    let parts: Vec<String> = TABLES
        .iter()
        .map(|t| format!("'{t}', (SELECT coalesce(json_agg(r::text), '[]') FROM {t} r)"))
        .collect();
    let rows = sql(
        db,
        &format!("SELECT json_build_object({})::text", parts.join(", ")),
    );
    let all: Value = serde_json::from_str(rows[0][0].as_deref().unwrap()).unwrap();
    all.as_object()
        .unwrap()
        .iter()
        .map(|(table, rows)| {
            let rows = rows.as_array().unwrap().iter().map(text).collect();
            (table.clone(), rows)
        })
        .collect()
}

/// What changed between two snapshots (empty when nothing did).
fn diff(
    before: &BTreeMap<String, BTreeSet<String>>,
    after: &BTreeMap<String, BTreeSet<String>>,
) -> String {
    let mut out = Vec::new();
    for (table, rows) in before {
        for gone in rows.difference(&after[table]) {
            out.push(format!("{table}: - {gone}"));
        }
        for new in after[table].difference(rows) {
            out.push(format!("{table}: + {new}"));
        }
    }
    out.join("; ")
}

// ------------------------------------------------------------------------------------------------
// Running a request and judging its answer
// ------------------------------------------------------------------------------------------------

/// A request aimed at one target.
struct Probe {
    method: String,
    /// The path under `/0.1`, query included.
    path: String,
    tenant: Option<String>,
    body: Option<Value>,
}

fn short(body: &str) -> String {
    let one_line = body.replace('\n', " ");
    if one_line.chars().count() > 240 {
        format!("{}…", one_line.chars().take(240).collect::<String>())
    } else {
        one_line
    }
}

/// `Ok` when the answer is the refusal `expect` of `value`, else what is wrong.
fn judge(expect: Expect, method: &str, value: &str, r: &Resp) -> Result<(), String> {
    let status = match expect {
        Unknown(_) | NoSuchPolicy | NoRefreshToken => 404,
        UnauthorizedTenant => 401,
        TokenForbidden => 403,
        NoContent => 204,
    };
    let got = || format!("{} {}", r.status, short(&r.body));
    if r.status != status {
        return Err(format!("expected {status} ({expect:?}), got {}", got()));
    }
    if method == "HEAD" || matches!(expect, NoContent) {
        return if r.body.is_empty() {
            Ok(())
        } else {
            Err(format!("expected no body, got {}", got()))
        };
    }
    let Ok(body) = serde_json::from_str::<Value>(&r.body) else {
        return Err(format!("expected a JSON error ({expect:?}), got {}", got()));
    };
    let ok = match expect {
        Unknown(kind) => {
            body["error_id"] == format!("unknown-{kind}").as_str() && r.body.contains(value)
        }
        NoSuchPolicy => body["reason"][0]
            .as_str()
            .is_some_and(|m| m.starts_with("No such policy")),
        NoRefreshToken => {
            body["error_id"] == "cannot-find-refresh-token-matching-client-id"
                && body["details"]["client_id"] == value
        }
        UnauthorizedTenant => {
            body["error_id"] == "unauthorized-tenant" && body["details"]["tenant_uuid"] == value
        }
        TokenForbidden => body["reason"][0].is_string(),
        NoContent => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected the error body of {expect:?} naming {value:?}, got {}",
            got()
        ))
    }
}

/// Fills an operation's path: `target` (a path parameter name) gets `value`, the others the
/// caller's own resources.
fn fill_path(f: &Fixture, template: &str, target: Option<&str>, value: &str) -> String {
    template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if Some(name) == target => value.to_string(),
                Some(name) => f.own(name),
                None => segment.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The request of `method path` with `input` set to `value` (`header:Wazo-Tenant`, `path:...`,
/// `body:...`, `query:...`) and everything else the caller's own.
fn probe(f: &Fixture, method: &str, path: &str, input: &str, value: &str, n: usize) -> Probe {
    let (kind, name) = input.split_once(':').expect("kind:name");
    let mut full = fill_path(f, path, (kind == "path").then_some(name), value);
    let mut body = body_for(method, path, n);
    let mut tenant = None;
    match kind {
        "path" => {}
        "header" => tenant = Some(value.to_string()),
        "query" => full = format!("{full}?{name}={value}"),
        "body" => {
            let object = body
                .get_or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("an object body");
            object.insert(name.to_string(), Value::from(value));
        }
        other => panic!("unknown input kind {other}"),
    }
    Probe {
        method: method.to_string(),
        path: full,
        tenant,
        body,
    }
}

fn send(f: &Fixture, token: &str, p: &Probe) -> Resp {
    f.s.call(
        &p.method,
        &format!("/0.1{}", p.path),
        token,
        p.tenant.as_deref(),
        p.body.as_ref(),
    )
}

// ------------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------------

#[test]
fn a_sub_tenant_administrator_reaches_nothing_outside_its_tree() {
    let s = server();
    let spec_text = s.get("/0.1/api/openapi.yml");
    assert_eq!(spec_text.status, 200);
    let spec: Value = serde_yaml_ng::from_str(&spec_text.body).expect("api.yml parses");

    // Coverage: every resource input of every operation has a row, or an exemption.
    let mut problems = Vec::new();
    let ops = operations(&spec, &mut problems);
    let mut covered: BTreeSet<(String, String, String)> = BTreeSet::new();
    for r in ROWS {
        covered.insert((r.method.into(), r.path.into(), r.input.into()));
    }
    for (method, path, input, _why) in EXEMPT {
        covered.insert((method.to_string(), path.to_string(), input.to_string()));
    }
    let mut header_ops = Vec::new();
    for op in &ops {
        let exempt_all = covered.contains(&(op.method.clone(), op.path.clone(), "*".into()));
        for input in &op.inputs {
            if input == "header:Wazo-Tenant" {
                header_ops.push((op.method.clone(), op.path.clone()));
                continue;
            }
            if !exempt_all
                && !covered.contains(&(op.method.clone(), op.path.clone(), input.clone()))
            {
                problems.push(format!(
                    "{} {}: {input} names a resource and has no row in ROWS (nor an exemption \
                     in EXEMPT)",
                    op.method, op.path
                ));
            }
        }
    }
    // A row or exemption for an input the description does not have is stale.
    for (method, path, input) in &covered {
        let known = ops.iter().any(|op| {
            &op.method == method && &op.path == path && (input == "*" || op.inputs.contains(input))
        });
        if !known {
            problems.push(format!(
                "{method} {path}: {input} is not in the API description (stale row)"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the matrix does not match the API description:\n{}",
        problems.join("\n")
    );

    let f = fixture(s);

    // The probes: each row, then each operation taking Wazo-Tenant, against B, master and an
    // unknown resource.
    let unknown = Res::unknown();
    let targets = [&f.b, &f.master, &unknown];
    let mut plan: Vec<(String, Expect, Probe, String)> = Vec::new();
    let mut n = 0;
    for r in ROWS {
        for t in targets {
            n += 1;
            let value = t.id(r.id);
            let label = format!(
                "{} {} [{} = {}'s {:?}]",
                r.method, r.path, r.input, t.label, r.id
            );
            plan.push((
                label,
                r.expect,
                probe(&f, r.method, r.path, r.input, value, n),
                value.to_string(),
            ));
        }
    }
    for (method, path) in &header_ops {
        for t in targets {
            n += 1;
            let label = format!("{method} {path} [Wazo-Tenant = {}'s tenant]", t.label);
            let p = probe(&f, method, path, "header:Wazo-Tenant", &t.tenant, n);
            plan.push((label, UnauthorizedTenant, p, t.tenant.clone()));
        }
    }

    let mut refused = controls(&f);
    let start = snapshot(&f.s.db);
    let mut last = start.clone();
    let mut failures = Vec::new();
    for (label, expect, p, value) in &plan {
        let r = send(&f, &f.aadmin, p);
        if let Err(e) = judge(*expect, &p.method, value, &r) {
            failures.push(format!("{label}: {e}"));
        }
        let now = snapshot(&f.s.db);
        let changed = diff(&last, &now);
        if !changed.is_empty() {
            failures.push(format!(
                "{label}: changed the database: {}",
                short(&changed)
            ));
            last = now;
        }
    }
    let end = snapshot(&f.s.db);
    let whole = diff(&start, &end);
    eprintln!(
        "{} cross-tenant requests sent, {} failures",
        plan.len(),
        failures.len()
    );

    refused.extend(deletions(&f));

    let mut report = Vec::new();
    if !failures.is_empty() || !whole.is_empty() {
        report.push(format!(
            "{} failures in {} cross-tenant requests (sub-tenant administrator; targets: b = \
             sibling, m = parent, unknown):\n{}\nthe whole matrix changed: {}",
            failures.len(),
            plan.len(),
            numbered(&failures),
            if whole.is_empty() {
                "nothing".into()
            } else {
                short(&whole)
            },
        ));
    }
    if !refused.is_empty() {
        report.push(format!(
            "legitimate requests refused:\n{}",
            numbered(&refused)
        ));
    }
    assert!(report.is_empty(), "{}", report.join("\n\n"));
}

fn numbered(lines: &[String]) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{:>3}. {e}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `method path` with `token` (and `Wazo-Tenant`) must answer `status` with a body containing
/// `contains`; else a line in `failures`.
#[allow(clippy::too_many_arguments)]
fn control(
    f: &Fixture,
    failures: &mut Vec<String>,
    who: &str,
    token: &str,
    method: &str,
    path: &str,
    tenant: Option<&str>,
    (status, contains): (u16, &str),
) {
    let r =
        f.s.call(method, &format!("/0.1{path}"), token, tenant, None);
    if r.status != status || !r.body.contains(contains) {
        failures.push(format!(
            "{who}: {method} {path} (Wazo-Tenant {tenant:?}): expected {status} containing \
             {contains:?}, got {} {}",
            r.status,
            short(&r.body)
        ));
    }
}

/// What must keep working (run before the matrix, whose failures may damage the fixture): the
/// sub-tenant administrator reads and grants inside its tree, the master administrator does in
/// B (with and without `Wazo-Tenant`). Grants are undone. Returns what failed.
fn controls(f: &Fixture) -> Vec<String> {
    let mut failures = Vec::new();
    let (a, a1, b) = (&f.a, &f.a1, &f.b);
    let mut aadmin = |method: &str, path: &str, tenant: Option<&str>, want: (u16, &str)| {
        control(
            f,
            &mut failures,
            "aadmin",
            &f.aadmin,
            method,
            path,
            tenant,
            want,
        );
    };
    // Inside its own tree: A and its child A1.
    aadmin("GET", &format!("/users/{}", a1.user), None, (200, &a1.user));
    aadmin("GET", "/users", Some(&a1.tenant), (200, &a1.user));
    aadmin(
        "GET",
        &format!("/groups/{}/users", a.group),
        None,
        (200, &a.user),
    );
    aadmin(
        "GET",
        &format!("/groups/{}/users", a1.group),
        None,
        (200, &a1.user),
    );
    aadmin(
        "GET",
        &format!("/users/{}/policies", a1.user),
        None,
        (200, &a1.policy),
    );
    aadmin(
        "GET",
        &format!("/users/{}/groups", a1.user),
        None,
        (200, &a1.group),
    );
    aadmin(
        "GET",
        &format!("/tenants/{}/domains", a1.tenant),
        None,
        (200, "tena1.example"),
    );
    aadmin(
        "GET",
        &format!("/users/{}/external", a1.user),
        None,
        (200, "bar"),
    );
    aadmin(
        "GET",
        &format!("/users/{}/sessions", a1.user),
        None,
        (200, &a1.session),
    );
    aadmin(
        "GET",
        &format!("/users/{}/tokens", a1.user),
        None,
        (200, &a1.client_id),
    );
    aadmin(
        "GET",
        &format!("/policies/{}", a1.policy_slug),
        Some(&a1.tenant),
        (200, &a1.policy),
    );
    aadmin(
        "GET",
        &format!("/tenants/{}", a1.tenant),
        None,
        (200, &a1.tenant),
    );
    // Its users' addresses (already confirmed: reached, then refused for that).
    aadmin(
        "GET",
        &format!("/users/{}/emails/{}/confirm", a1.user, a1.email),
        None,
        (409, "already confirmed"),
    );
    aadmin(
        "PUT",
        &format!("/emails/{}/confirm", a1.email),
        None,
        (204, ""),
    );
    // Grants inside the tree: a tenant's own policies, and a policy shared by an ancestor. A
    // policy of A that is not shared is not visible from A1: not attachable to A1's users.
    let grant = format!("/users/{}/policies/{}", a1.user, a1.policy);
    aadmin("DELETE", &grant, None, (204, ""));
    aadmin("PUT", &grant, None, (204, ""));
    aadmin(
        "GET",
        &format!("/users/{}/policies", a1.user),
        None,
        (200, &a1.policy),
    );
    let private = format!("/users/{}/policies/{}", a1.user, a.policy);
    aadmin("PUT", &private, None, (404, "No such policy"));
    let grant = format!("/users/{}/policies/{}", a.user, f.shared);
    aadmin("PUT", &grant, None, (204, ""));
    aadmin("DELETE", &grant, None, (204, ""));
    let member = format!("/groups/{}/users/{}", a1.group, a1.user);
    aadmin("DELETE", &member, None, (204, ""));
    aadmin("PUT", &member, None, (204, ""));
    aadmin(
        "PUT",
        &format!("/tenants/{}/parent/{}", a1.tenant, a.tenant),
        None,
        (204, ""),
    );

    // The master administrator in B, without and with Wazo-Tenant.
    for hdr in [None, Some(b.tenant.as_str())] {
        let mut root = |method: &str, path: &str, want: (u16, &str)| {
            control(
                f,
                &mut failures,
                "master admin",
                &f.root,
                method,
                path,
                hdr,
                want,
            );
        };
        root("GET", &format!("/users/{}", b.user), (200, &b.user));
        root("GET", &format!("/groups/{}/users", b.group), (200, &b.user));
        root(
            "GET",
            &format!("/users/{}/policies", b.user),
            (200, &b.policy),
        );
        root("GET", &format!("/users/{}/external", b.user), (200, "bar"));
        root("GET", &format!("/tenants/{}", b.tenant), (200, &b.tenant));
        let grant = format!("/users/{}/policies/{}", b.user, f.shared);
        root("PUT", &grant, (204, ""));
        root(
            "GET",
            &format!("/users/{}/policies", b.user),
            (200, &f.shared),
        );
        root("DELETE", &grant, (204, ""));
        let grant = format!("/users/{}/policies/{}", b.user, b.policy);
        root("DELETE", &grant, (204, ""));
        root("PUT", &grant, (204, ""));
    }
    let mut root = |method: &str, path: &str, tenant: Option<&str>, want: (u16, &str)| {
        control(
            f,
            &mut failures,
            "master admin",
            &f.root,
            method,
            path,
            tenant,
            want,
        );
    };
    root(
        "GET",
        &format!("/tenants/{}/domains", b.tenant),
        None,
        (200, "tenb.example"),
    );
    root("GET", "/users", Some(&b.tenant), (200, &b.user));
    let links = format!(
        "SELECT count(*) FROM auth_user_policy WHERE user_uuid = '{}' AND policy_uuid = '{}'",
        b.user, b.policy
    );
    if sql(&f.s.db, &links)[0][0].as_deref() != Some("1") {
        failures.push("master admin: B's policy link was not put back".into());
    }
    failures
}

/// Deletions inside the tree, and by the master administrator in B, do delete (run after the
/// matrix: they change what it targets). Returns what failed.
fn deletions(f: &Fixture) -> Vec<String> {
    let mut failures = Vec::new();
    let (a1, b) = (&f.a1, &f.b);
    let path = format!("/users/{}/sessions/{}", a1.user, a1.session);
    control(
        f,
        &mut failures,
        "aadmin",
        &f.aadmin,
        "DELETE",
        &path,
        None,
        (204, ""),
    );
    let path = format!("/users/{}/tokens/{}", a1.user, a1.client_id);
    control(
        f,
        &mut failures,
        "aadmin",
        &f.aadmin,
        "DELETE",
        &path,
        None,
        (204, ""),
    );
    let path = format!("/sessions/{}", b.session);
    control(
        f,
        &mut failures,
        "master admin",
        &f.root,
        "DELETE",
        &path,
        None,
        (204, ""),
    );
    for (what, q) in [
        (
            "aadmin's deletion of A1's session",
            format!(
                "SELECT count(*) FROM auth_session WHERE uuid = '{}'",
                a1.session
            ),
        ),
        (
            "aadmin's deletion of A1's refresh token",
            format!(
                "SELECT count(*) FROM auth_refresh_token WHERE user_uuid = '{}'",
                a1.user
            ),
        ),
        (
            "the master administrator's deletion of B's session",
            format!(
                "SELECT count(*) FROM auth_session WHERE uuid = '{}'",
                b.session
            ),
        ),
    ] {
        let got = sql(&f.s.db, &q)[0][0].clone().unwrap_or_default();
        if got != "0" {
            failures.push(format!("{what}: {got} rows left"));
        }
    }
    failures
}
