//! The OpenAPI description served at `GET /0.1/api/api.yml` (host/src/http/api.yml): it is
//! served as YAML, is a structurally sound OpenAPI 3.0 document, documents exactly the routes
//! the server registers, and every documented route exists on the running server.

use std::collections::BTreeSet;

use serde_yaml_ng::Value as Yaml;
use wazo_auth_tests::api_yml::{self, get, resolve, str_of};
use wazo_auth_tests::*;

const NO_ROUTE: &str = "The requested URL was not found on the server. If you entered the URL \
                        manually please check your spelling and try again.";

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Every route the server registers under `/0.1` (written from the `routes`/`configure`
/// functions of host/src/http/*.rs), without the benchmark-only `/0.1/_bench/ceiling`.
const REGISTERED: &[(&str, &str)] = &[
    // api.rs
    ("GET", "/api/api.yml"),
    ("GET", "/api/openapi.yml"),
    // mod.rs (token.rs, status.rs)
    ("POST", "/token"),
    ("GET", "/token/{token}"),
    ("HEAD", "/token/{token}"),
    ("DELETE", "/token/{token}"),
    ("POST", "/token/{token}/scopes/check"),
    ("GET", "/backends"),
    ("HEAD", "/status"),
    ("GET", "/metrics"),
    // registration.rs (served when enabled_http_plugins.user_registration is set)
    ("POST", "/users/register"),
    // password_reset.rs
    ("GET", "/users/password/reset"),
    ("HEAD", "/users/password/reset"),
    ("POST", "/users/password/reset"),
    // emails.rs
    ("PUT", "/users/{user_uuid}/emails"),
    ("PUT", "/admin/users/{user_uuid}/emails"),
    ("GET", "/users/{user_uuid}/emails/{email_uuid}/confirm"),
    ("HEAD", "/users/{user_uuid}/emails/{email_uuid}/confirm"),
    ("GET", "/emails/{email_uuid}/confirm"),
    ("HEAD", "/emails/{email_uuid}/confirm"),
    ("PUT", "/emails/{email_uuid}/confirm"),
    // sessions.rs
    ("GET", "/sessions"),
    ("DELETE", "/sessions/{session_uuid}"),
    ("GET", "/users/me/tokens"),
    ("DELETE", "/users/me/tokens/{client_id}"),
    ("GET", "/users/{user_uuid}/sessions"),
    ("DELETE", "/users/{user_uuid}/sessions/{session_uuid}"),
    ("GET", "/tokens"),
    ("GET", "/users/{user_uuid}/tokens"),
    ("DELETE", "/users/{user_uuid}/tokens/{client_id}"),
    // external.rs
    ("GET", "/users/{user_uuid}/external"),
    ("GET", "/users/{user_uuid}/external/{auth_type}"),
    ("POST", "/users/{user_uuid}/external/{auth_type}"),
    ("PUT", "/users/{user_uuid}/external/{auth_type}"),
    ("DELETE", "/users/{user_uuid}/external/{auth_type}"),
    ("GET", "/external/{auth_type}/config"),
    ("POST", "/external/{auth_type}/config"),
    ("PUT", "/external/{auth_type}/config"),
    ("DELETE", "/external/{auth_type}/config"),
    ("GET", "/external/{auth_type}/users"),
    // users.rs
    ("GET", "/users"),
    ("HEAD", "/users"),
    ("POST", "/users"),
    ("GET", "/users/{user_uuid}"),
    ("HEAD", "/users/{user_uuid}"),
    ("PUT", "/users/{user_uuid}"),
    ("DELETE", "/users/{user_uuid}"),
    ("PUT", "/users/{user_uuid}/password"),
    // tenants.rs
    ("GET", "/tenants"),
    ("HEAD", "/tenants"),
    ("POST", "/tenants"),
    ("GET", "/tenants/{tenant_uuid}"),
    ("HEAD", "/tenants/{tenant_uuid}"),
    ("PUT", "/tenants/{tenant_uuid}"),
    ("DELETE", "/tenants/{tenant_uuid}"),
    ("GET", "/tenants/{tenant_uuid}/domains"),
    ("HEAD", "/tenants/{tenant_uuid}/domains"),
    ("PUT", "/tenants/{tenant_uuid}/parent/{parent_tenant_uuid}"),
    // groups.rs
    ("GET", "/groups"),
    ("HEAD", "/groups"),
    ("POST", "/groups"),
    ("GET", "/groups/{group_uuid}"),
    ("HEAD", "/groups/{group_uuid}"),
    ("PUT", "/groups/{group_uuid}"),
    ("DELETE", "/groups/{group_uuid}"),
    ("GET", "/groups/{group_uuid}/users"),
    ("HEAD", "/groups/{group_uuid}/users"),
    ("PUT", "/groups/{group_uuid}/users/{user_uuid}"),
    ("DELETE", "/groups/{group_uuid}/users/{user_uuid}"),
    ("GET", "/users/{user_uuid}/groups"),
    ("HEAD", "/users/{user_uuid}/groups"),
    // policies.rs
    ("GET", "/policies"),
    ("HEAD", "/policies"),
    ("POST", "/policies"),
    ("GET", "/policies/{policy}"),
    ("HEAD", "/policies/{policy}"),
    ("PUT", "/policies/{policy}"),
    ("DELETE", "/policies/{policy}"),
    ("PUT", "/policies/{policy}/acl/{access}"),
    ("DELETE", "/policies/{policy}/acl/{access}"),
    ("GET", "/users/{user_uuid}/policies"),
    ("HEAD", "/users/{user_uuid}/policies"),
    ("PUT", "/users/{user_uuid}/policies/{policy}"),
    ("DELETE", "/users/{user_uuid}/policies/{policy}"),
    ("GET", "/groups/{group_uuid}/policies"),
    ("HEAD", "/groups/{group_uuid}/policies"),
    ("PUT", "/groups/{group_uuid}/policies/{policy}"),
    ("DELETE", "/groups/{group_uuid}/policies/{policy}"),
    // config.rs
    ("GET", "/config"),
    ("HEAD", "/config"),
    ("PATCH", "/config"),
    // idp.rs
    ("GET", "/idp"),
    ("HEAD", "/idp"),
    ("GET", "/backends/ldap"),
    ("HEAD", "/backends/ldap"),
    ("PUT", "/backends/ldap"),
    ("DELETE", "/backends/ldap"),
    ("PUT", "/idp/{idp_type}/users"),
    ("PUT", "/idp/{idp_type}/users/{user_uuid}"),
    ("DELETE", "/idp/{idp_type}/users/{user_uuid}"),
];

/// The routes that need no `X-Auth-Token`.
const PUBLIC: &[(&str, &str)] = &[
    ("POST", "/token"),
    ("GET", "/token/{token}"),
    ("HEAD", "/token/{token}"),
    ("DELETE", "/token/{token}"),
    ("POST", "/token/{token}/scopes/check"),
    ("GET", "/backends"),
    ("HEAD", "/status"),
    ("GET", "/api/api.yml"),
    ("GET", "/api/openapi.yml"),
    ("GET", "/users/password/reset"),
    ("HEAD", "/users/password/reset"),
    ("POST", "/users/register"),
];

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// Every `$ref` string of the document.
fn all_refs(v: &Yaml, out: &mut Vec<String>) {
    match v {
        Yaml::Mapping(m) => {
            for (k, val) in m {
                if k.as_str() == Some("$ref") {
                    if let Some(s) = val.as_str() {
                        out.push(s.to_string());
                    }
                }
                all_refs(val, out);
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|x| all_refs(x, out)),
        _ => {}
    }
}

/// The documented operations: (METHOD, path) → operation object.
fn operations(root: &Yaml) -> Vec<(String, String, &Yaml, &Yaml)> {
    let paths = get(root, "paths")
        .and_then(Yaml::as_mapping)
        .expect("paths is a mapping");
    let mut out = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings").to_string();
        let item_map = item.as_mapping().expect("a path item is a mapping");
        for (k, op) in item_map {
            let k = k.as_str().expect("path item keys are strings");
            match k {
                "parameters" | "summary" | "description" | "servers" => {}
                m if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
                    out.push((m.to_ascii_uppercase(), path.clone(), item, op));
                }
                other => panic!("{path}: unexpected path item key {other:?}"),
            }
        }
    }
    out
}

/// The parameters of an operation (path-item level then operation level), resolved.
fn parameters<'a>(root: &'a Yaml, item: &'a Yaml, op: &'a Yaml) -> Vec<&'a Yaml> {
    let mut out = Vec::new();
    for holder in [item, op] {
        if let Some(seq) = get(holder, "parameters").and_then(Yaml::as_sequence) {
            out.extend(seq.iter().map(|p| resolve(root, p)));
        }
    }
    out
}

fn placeholders(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(String::from)
        .collect()
}

/// The path with its parameters replaced by plausible values.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if name.ends_with("_uuid") => uuid::Uuid::new_v4().to_string(),
                Some(_) => "x".to_string(),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn registered() -> BTreeSet<(String, String)> {
    let set: BTreeSet<(String, String)> = REGISTERED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(set.len(), REGISTERED.len(), "REGISTERED has duplicates");
    set
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

/// The document is a structurally sound OpenAPI 3.0 description.
#[test]
fn spec_is_structurally_valid_openapi_3() {
    let root = api_yml::load();
    let version = str_of(&root, "openapi").expect("openapi is a string");
    assert!(version.starts_with("3.0."), "openapi: {version}");
    let info = get(&root, "info").expect("info");
    assert!(str_of(info, "title").is_some(), "info.title");
    assert!(str_of(info, "version").is_some(), "info.version");
    let servers = get(&root, "servers")
        .and_then(Yaml::as_sequence)
        .expect("servers");
    assert_eq!(str_of(&servers[0], "url"), Some("/0.1"));

    // Every $ref resolves.
    let mut refs = Vec::new();
    all_refs(&root, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        let holder = Yaml::Mapping(
            [(Yaml::from("$ref"), Yaml::from(r.as_str()))]
                .into_iter()
                .collect(),
        );
        let _ = resolve(&root, &holder);
    }

    let schemes = get(&root, "components")
        .and_then(|c| get(c, "securitySchemes"))
        .expect("components.securitySchemes");
    let token_scheme = get(schemes, "XAuthToken").expect("XAuthToken scheme");
    assert_eq!(str_of(token_scheme, "type"), Some("apiKey"));
    assert_eq!(str_of(token_scheme, "in"), Some("header"));
    assert_eq!(str_of(token_scheme, "name"), Some("X-Auth-Token"));

    let public: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let mut operation_ids = BTreeSet::new();
    for (method, path, item, op) in operations(&root) {
        let at = format!("{method} {path}");
        assert!(path.starts_with('/'), "{at}: path must start with /");
        assert!(
            str_of(op, "summary").is_some_and(|s| !s.is_empty()),
            "{at}: summary"
        );
        if let Some(id) = str_of(op, "operationId") {
            assert!(
                operation_ids.insert(id.to_string()),
                "{at}: duplicate operationId {id}"
            );
        }

        // Responses: a mapping of status codes (or "default"), each with a description.
        let responses = get(op, "responses")
            .and_then(Yaml::as_mapping)
            .unwrap_or_else(|| panic!("{at}: responses"));
        assert!(!responses.is_empty(), "{at}: no responses");
        for (code, resp) in responses {
            let code = code
                .as_str()
                .unwrap_or_else(|| panic!("{at}: quote status codes"));
            assert!(
                code == "default" || (code.len() == 3 && code.parse::<u16>().is_ok()),
                "{at}: bad status code {code}"
            );
            let resp = resolve(&root, resp);
            assert!(
                str_of(resp, "description").is_some(),
                "{at} {code}: description"
            );
        }
        assert!(
            responses
                .keys()
                .any(|k| k.as_str().is_some_and(|c| c.starts_with('2'))),
            "{at}: no success response"
        );

        // Path parameters: exactly the placeholders, required, with a schema.
        let params = parameters(&root, item, op);
        let mut declared = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for p in &params {
            let name = str_of(p, "name").unwrap_or_else(|| panic!("{at}: parameter name"));
            let location = str_of(p, "in").unwrap_or_else(|| panic!("{at}: parameter in"));
            assert!(
                ["path", "query", "header", "cookie"].contains(&location),
                "{at}: parameter {name} in {location}"
            );
            assert!(
                seen.insert((name.to_string(), location.to_string())),
                "{at}: parameter {name} ({location}) declared twice"
            );
            assert!(get(p, "schema").is_some(), "{at}: parameter {name} schema");
            if location == "path" {
                assert_eq!(
                    get(p, "required").and_then(Yaml::as_bool),
                    Some(true),
                    "{at}: path parameter {name} must be required"
                );
                declared.insert(name.to_string());
            }
        }
        assert_eq!(declared, placeholders(&path), "{at}: path parameters");

        // Request bodies of POST/PUT: a content map with schemas.
        if let Some(body) = get(op, "requestBody") {
            let body = resolve(&root, body);
            let content = get(body, "content")
                .and_then(Yaml::as_mapping)
                .unwrap_or_else(|| panic!("{at}: requestBody.content"));
            for (_, media) in content {
                assert!(get(media, "schema").is_some(), "{at}: requestBody schema");
            }
        }

        // Security and ACL: protected routes carry the token scheme and their ACL.
        let security = get(op, "security")
            .or_else(|| get(&root, "security"))
            .and_then(Yaml::as_sequence);
        let uses_token =
            security.is_some_and(|s| s.iter().any(|req| get(req, "XAuthToken").is_some()));
        let acl = str_of(op, "x-required-acl");
        if public.contains(&(method.clone(), path.clone())) {
            assert!(
                !uses_token,
                "{at}: a public route must not require X-Auth-Token"
            );
            assert!(acl.is_none(), "{at}: a public route has no required ACL");
        } else {
            assert!(
                uses_token,
                "{at}: X-Auth-Token security requirement missing"
            );
            let acl = acl.unwrap_or_else(|| panic!("{at}: x-required-acl missing"));
            assert!(acl.starts_with("auth."), "{at}: x-required-acl {acl}");
        }
        if let Some(security) = security {
            for req in security {
                for (name, _) in req.as_mapping().expect("security requirement") {
                    let name = name.as_str().expect("scheme name");
                    assert!(get(schemes, name).is_some(), "{at}: unknown scheme {name}");
                }
            }
        }
    }
}

/// The error body shapes of host/src/http/error.rs, as named in `components.schemas`.
const ERROR_SCHEMAS: [&str; 3] = ["ApiError", "TokenError", "PlainError"];

/// The component schemas a response schema may be: a `$ref` to one, or a `oneOf` of them.
fn schema_names(schema: &Yaml) -> Vec<String> {
    if let Some(r) = str_of(schema, "$ref") {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected schema $ref {r}"));
        return vec![name.to_string()];
    }
    match get(schema, "oneOf").and_then(Yaml::as_sequence) {
        Some(alternatives) => alternatives.iter().flat_map(schema_names).collect(),
        None => Vec::new(),
    }
}

/// Responses are described as the server sends them: HEAD and 204 answers without a body, every
/// other answer with its media type and schema; every error in one of the server's three error
/// shapes; and the statuses every operation of a kind can answer (the router's 404 when a path
/// segment is not a UUID, 401 for a protected route, 400 and 413 for a body, 503 when the
/// database fails) are documented.
#[test]
fn responses_describe_what_the_server_sends() {
    let root = api_yml::load();
    let schemas = get(&root, "components")
        .and_then(|c| get(c, "schemas"))
        .expect("components.schemas");
    for name in ERROR_SCHEMAS {
        let schema = get(schemas, name).unwrap_or_else(|| panic!("schema {name}"));
        assert_eq!(
            get(schema, "additionalProperties").and_then(Yaml::as_bool),
            Some(false),
            "{name}: closed, so that the error shapes exclude each other in a oneOf"
        );
    }
    let public: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let mut failures = Vec::new();
    for (method, path, item, op) in operations(&root) {
        let at = format!("{method} {path}");
        let responses = get(op, "responses")
            .and_then(Yaml::as_mapping)
            .expect("responses");
        let codes: BTreeSet<&str> = responses.keys().filter_map(Yaml::as_str).collect();
        for (code, resp) in responses {
            let code = code.as_str().expect("status code");
            let resp = resolve(&root, resp);
            let content = get(resp, "content").and_then(Yaml::as_mapping);
            if method == "HEAD" || code == "204" {
                if content.is_some() {
                    failures.push(format!("{at} {code}: a body is documented"));
                }
                continue;
            }
            let Some(content) = content else {
                failures.push(format!("{at} {code}: no content"));
                continue;
            };
            let expected = if path.starts_with("/api/") {
                "application/x-yaml"
            } else if path == "/metrics" && code == "200" {
                "text/plain"
            } else if path == "/emails/{email_uuid}/confirm" && code == "200" {
                // The configured `email_confirmation_get_mimetype` (default text/html).
                "text/html"
            } else {
                "application/json"
            };
            let types: Vec<&str> = content.keys().filter_map(Yaml::as_str).collect();
            if types != [expected] {
                failures.push(format!("{at} {code}: media types {types:?}"));
            }
            let Some(schema) = content.values().next().and_then(|m| get(m, "schema")) else {
                failures.push(format!("{at} {code}: no schema"));
                continue;
            };
            if code.starts_with('4') || code.starts_with('5') {
                let names = schema_names(schema);
                let shapes = names.iter().all(|n| ERROR_SCHEMAS.contains(&n.as_str()));
                if names.is_empty() || !shapes {
                    failures.push(format!("{at} {code}: not an error shape: {names:?}"));
                }
            }
        }

        let mut required = Vec::new();
        let uuid_in_path = parameters(&root, item, op).iter().any(|p| {
            str_of(p, "in") == Some("path")
                && get(p, "schema").and_then(|s| str_of(s, "format")) == Some("uuid")
        });
        if uuid_in_path {
            required.push("404");
        }
        if !public.contains(&(method.clone(), path.clone())) {
            required.push("401");
        }
        if get(op, "requestBody").is_some() {
            required.extend(["400", "413"]);
        }
        if !["/api/api.yml", "/api/openapi.yml", "/backends"].contains(&path.as_str()) {
            required.push("503");
        }
        for code in required {
            if !codes.contains(code) {
                failures.push(format!("{at}: {code} is not documented"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Documented routes and registered routes are the same set.
#[test]
fn documented_routes_are_exactly_the_registered_routes() {
    let root = api_yml::load();
    let documented: BTreeSet<(String, String)> = operations(&root)
        .into_iter()
        .map(|(m, p, _, _)| (m, p))
        .collect();
    let registered = registered();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "registered but not documented: {undocumented:?}; documented but not registered: \
         {unknown:?}"
    );
    let public: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert!(
        public.is_subset(&registered),
        "PUBLIC lists an unknown route"
    );
}

/// The document is served as YAML, and every documented route exists on the server, while the
/// methods it does not document are refused.
#[test]
fn spec_is_served_and_documented_routes_exist() {
    // With the registration served (off by default).
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(serde_json::json!({"enabled_http_plugins": {"user_registration": true}}))
        .start();

    let r = s.get("/0.1/api/openapi.yml");
    assert_eq!(r.status, 200, "{}", r.body);
    let ct = r.header("Content-Type").unwrap_or_default();
    assert!(ct.starts_with("application/x-yaml"), "Content-Type: {ct}");
    let served: Yaml = serde_yaml_ng::from_str(&r.body).expect("served document is YAML");
    assert!(
        str_of(&served, "openapi").is_some_and(|v| v.starts_with("3.")),
        "openapi: {:?}",
        get(&served, "openapi")
    );
    assert!(
        get(&served, "info").and_then(Yaml::as_mapping).is_some(),
        "info"
    );
    assert!(
        get(&served, "paths").and_then(Yaml::as_mapping).is_some(),
        "paths"
    );
    assert_eq!(served, api_yml::load(), "the served document is api.yml");

    let token = s.admin_token();
    let headers = [
        ("X-Auth-Token", token.as_str()),
        ("Content-Type", "application/json"),
    ];

    // The router's 404, as a HEAD answer: same status and length (HEAD has no body).
    let missing_head = s.request("HEAD", "/0.1/no/such/route", &headers, None);
    assert_eq!(missing_head.status, 404);
    let missing_len = missing_head.header("Content-Length").map(str::to_string);

    let is_no_route = |method: &str, r: &Resp| match method {
        "HEAD" => r.status == 404 && r.header("Content-Length").map(str::to_string) == missing_len,
        _ => r.status == 404 && r.body.contains(NO_ROUTE),
    };
    let send = |method: &str, path: &str| {
        let body: Option<&[u8]> = match method {
            "POST" | "PUT" => Some(b"{}"),
            _ => None,
        };
        s.request(method, path, &headers, body)
    };

    let root = served;
    let documented: BTreeSet<(String, String)> = operations(&root)
        .into_iter()
        .map(|(m, p, _, _)| (m, p))
        .collect();
    let mut failures = Vec::new();
    for (method, path) in &documented {
        let url = format!("/0.1{}", concrete(path));
        let r = send(method, &url);
        if is_no_route(method, &r) || r.status == 405 {
            failures.push(format!("{method} {url}: {} {}", r.status, r.body));
        }
    }

    // The methods not documented for a documented path are not served (405, or the router's
    // 404 where the original's router matches no route either).
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in METHODS {
            if documented.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let url = format!("/0.1{}", concrete(path));
            let r = send(method, &url);
            if !(r.status == 405 || is_no_route(method, &r)) {
                failures.push(format!(
                    "undocumented {method} {url} is served: {} {}",
                    r.status, r.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every `$ref` of `v`, with where it is.
fn refs(v: &Yaml, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Yaml::Mapping(m) => {
            for (k, child) in m {
                let k = k.as_str().unwrap_or("?");
                if k == "$ref" {
                    out.push((at.to_string(), child.as_str().unwrap_or("").to_string()));
                } else {
                    refs(child, &format!("{at}/{k}"), out);
                }
            }
        }
        Yaml::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                refs(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Schema objects of a Swagger 2.0 document that hold an OpenAPI 3 keyword.
fn openapi3_keywords(v: &Yaml, at: &str, out: &mut Vec<String>) {
    const OAS3_ONLY: [&str; 6] = [
        "nullable",
        "oneOf",
        "anyOf",
        "requestBody",
        "components",
        "content",
    ];
    match v {
        Yaml::Mapping(m) => {
            for (k, child) in m {
                let k = k.as_str().unwrap_or("?");
                // Property names are data, not keywords.
                if OAS3_ONLY.contains(&k) && !at.ends_with("/properties") {
                    out.push(format!("{at}/{k}"));
                }
                openapi3_keywords(child, &format!("{at}/{k}"), out);
            }
        }
        Yaml::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                openapi3_keywords(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// `GET /0.1/api/api.yml` serves what the original serves: a Swagger 2.0 document of every
/// route (management routes included), with a reverse proxy's prefix in `basePath`.
#[test]
fn api_yml_is_a_swagger_2_document_of_every_route() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let r = s.get("/0.1/api/api.yml");
    assert_eq!(r.status, 200, "{}", r.body);
    let ct = r.header("Content-Type").unwrap_or_default();
    assert!(ct.starts_with("application/x-yaml"), "Content-Type: {ct}");
    let doc: Yaml = serde_yaml_ng::from_str(&r.body).expect("served document is YAML");
    assert_eq!(str_of(&doc, "swagger"), Some("2.0"));
    assert_eq!(str_of(&doc, "basePath"), Some("/0.1"));
    assert_eq!(
        get(&doc, "schemes"),
        Some(&serde_yaml_ng::from_str("[http]").unwrap())
    );
    assert!(get(&doc, "openapi").is_none() && get(&doc, "components").is_none());
    assert_eq!(
        get(&doc, "info").and_then(|i| str_of(i, "title")),
        Some("wazo-auth")
    );

    // The same operations as the OpenAPI 3.0 description, with the same required ACLs.
    let oas3 = api_yml::load();
    let methods = ["get", "put", "post", "delete", "head", "patch"];
    let ops = |doc: &Yaml| -> BTreeSet<(String, String, Option<String>)> {
        let mut out = BTreeSet::new();
        for (path, item) in get(doc, "paths")
            .and_then(Yaml::as_mapping)
            .into_iter()
            .flatten()
        {
            for (m, op) in item.as_mapping().into_iter().flatten() {
                let m = m.as_str().unwrap_or("");
                if methods.contains(&m) {
                    out.insert((
                        m.to_string(),
                        path.as_str().unwrap_or("").to_string(),
                        str_of(op, "x-required-acl").map(str::to_string),
                    ));
                }
            }
        }
        out
    };
    let served_ops = ops(&doc);
    assert_eq!(served_ops, ops(&oas3));
    for must in [
        ("put", "/users/{user_uuid}/policies/{policy}"),
        ("post", "/tenants"),
        ("get", "/groups/{group_uuid}/users"),
        ("post", "/token"),
    ] {
        assert!(
            served_ops
                .iter()
                .any(|(m, p, _)| (m.as_str(), p.as_str()) == must),
            "{must:?} is not in the Swagger document"
        );
    }

    // Every reference resolves inside the document, and no OpenAPI 3 keyword is left.
    let mut all = Vec::new();
    refs(&doc, "", &mut all);
    assert!(!all.is_empty());
    let mut broken = Vec::new();
    for (at, r) in &all {
        let mut parts = r.trim_start_matches("#/").split('/');
        let (Some(section), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            broken.push(format!("{at}: {r}"));
            continue;
        };
        if !["definitions", "parameters", "responses"].contains(&section)
            || get(&doc, section).and_then(|s| get(s, name)).is_none()
        {
            broken.push(format!("{at}: {r}"));
        }
    }
    assert!(broken.is_empty(), "unresolved references: {broken:?}");
    let mut leftovers = Vec::new();
    openapi3_keywords(&doc, "", &mut leftovers);
    assert!(leftovers.is_empty(), "OpenAPI 3 keywords: {leftovers:?}");

    // Each non-body parameter has a type; a body parameter has a schema.
    for (path, item) in get(&doc, "paths")
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten()
    {
        for (m, op) in item.as_mapping().into_iter().flatten() {
            for p in get(op, "parameters")
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
            {
                if get(p, "$ref").is_some() {
                    continue;
                }
                let ok = match str_of(p, "in") {
                    Some("body") => get(p, "schema").is_some(),
                    Some(_) => str_of(p, "type").is_some(),
                    None => false,
                };
                assert!(ok, "{m:?} {path:?}: parameter {p:?}");
            }
        }
    }

    // Behind a reverse proxy.
    let r = s.request("GET", "/0.1/api/api.yml", &[("X-Script-Name", "/p")], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let doc: Yaml = serde_yaml_ng::from_str(&r.body).expect("served document is YAML");
    assert_eq!(str_of(&doc, "basePath"), Some("/p/0.1"));
    assert_eq!(
        get(&doc, "schemes"),
        Some(&serde_yaml_ng::from_str("[https]").unwrap())
    );
}

/// Plugin sub-routes (plugin-api 1.3): the OpenAPI fragment of a loaded plugin is merged into
/// both served descriptions, its references resolve, and the documented route is served.
#[test]
fn plugin_sub_routes_are_documented_and_served() {
    let s = ServerBuilder::new().with_wazo_user().with_mobile().start();
    let path = "/users/{user_uuid}/external/mobile/sender_id";
    let acl = "auth.users.{user_uuid}.external.mobile.sender_id.read";

    let r = s.get("/0.1/api/openapi.yml");
    assert_eq!(r.status, 200, "{}", r.body);
    let mut served: Yaml = serde_yaml_ng::from_str(&r.body).expect("served document is YAML");
    let op = get(&served, "paths")
        .and_then(|p| get(p, path))
        .and_then(|i| get(i, "get"))
        .unwrap_or_else(|| panic!("{path} is not documented:\n{}", r.body))
        .clone();
    assert_eq!(str_of(&op, "x-required-acl"), Some(acl));
    let mut refs = Vec::new();
    all_refs(&op, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        let mut at = &served;
        for part in r.trim_start_matches("#/").split('/') {
            at = get(at, part).unwrap_or_else(|| panic!("unresolved $ref {r}"));
        }
    }
    // Nothing else changed.
    served
        .get_mut("paths")
        .and_then(Yaml::as_mapping_mut)
        .and_then(|p| p.remove(path))
        .expect("plugin path");
    assert_eq!(served, api_yml::load());

    let r = s.get("/0.1/api/api.yml");
    assert_eq!(r.status, 200, "{}", r.body);
    let swagger: Yaml = serde_yaml_ng::from_str(&r.body).expect("served document is YAML");
    let op = get(&swagger, "paths")
        .and_then(|p| get(p, path))
        .and_then(|i| get(i, "get"))
        .unwrap_or_else(|| panic!("{path} is not in the Swagger document"));
    assert_eq!(str_of(op, "x-required-acl"), Some(acl));

    // Documented and served: not the router's 404 nor a 405.
    let admin = s.admin_token();
    let alice = s.create_user(&admin, "alice-doc", "pw", None);
    let url = format!("/0.1{}", path.replace("{user_uuid}", &alice));
    let r = s.call("GET", &url, &admin, None, None);
    assert!(
        r.status != 405 && !r.body.contains(NO_ROUTE),
        "{url}: {} {}",
        r.status,
        r.body
    );
    assert_eq!(r.status, 404, "no configuration yet: {}", r.body);
    assert_eq!(r.json()["error_id"], "unknown-external-auth");
}
