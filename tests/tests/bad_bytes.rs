//! Bad bytes, generated from the API description (host/src/http/api.yml): every documented
//! route gets NUL, other control characters and invalid UTF-8 in every string field of its JSON
//! body (nested objects and lists included), in every query parameter (and, on list routes, in
//! every field of the listed items as an exact filter) and in every path parameter, with a
//! master administrator's token; the login route also gets them in its Basic credentials.
//!
//! The properties:
//! - never a 5xx, and no `ERROR` in the server's log or in PostgreSQL's (a NUL reaching the
//!   database is refused there with an ERROR line);
//! - every 4xx body is one of the error shapes of the API (`TokenError`, `ApiError`,
//!   `PlainError`);
//! - a body field holding NUL answers 400 naming the field, except the few that are looked up
//!   rather than stored ([`LOOKUPS`]: a refresh token, the scopes and the tenant of a scope
//!   check), which answer as a value matching nothing does, and the free properties of the
//!   plugins' bodies (the server names no field there; the plugins' data is stored encrypted);
//! - `?tenant=` holding NUL answers as an unknown tenant does.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{Read, Write};

use serde_yaml_ng::Value as Yaml;
use wazo_auth_tests::api_yml::{self, get, resolve, str_of};
use wazo_auth_tests::serde_json::{json, Map, Value};
use wazo_auth_tests::*;

const METHODS: [&str; 5] = ["get", "head", "post", "put", "delete"];

/// Bad path segments and query values (percent-encoded).
const BAD_ENCODED: &[&str] = &["%00", "a%00b", "%01", "%1F", "%7F", "%FF", "%FF%FE"];

/// Bad JSON string values.
const BAD_STRINGS: &[&str] = &["\u{0}", "a\u{0}b", "\u{1}", "\u{1f}", "\u{7f}"];

/// Body fields whose value is looked up rather than stored: holding NUL, they answer as a value
/// that matches nothing does (the same status and body), not 400. (method, path, field, the
/// rest of the body.)
/// - a refresh token and its client id: a wrong credential, 401 (pinned by
///   tests/tests/policies.rs);
/// - the scopes of a scope check: a scope nothing grants (`false`), as `?scope=` is;
/// - the tenant of a scope check: an unknown tenant, 403 (pinned by tests/tests/token_api.rs),
///   as `?tenant=` is.
const LOOKUPS: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/token",
        "refresh_token",
        r#"{"client_id": "bad-bytes-client"}"#,
    ),
    ("POST", "/token/{token}/scopes/check", "scopes", "{}"),
    ("POST", "/token/{token}/scopes/check", "tenant_uuid", "{}"),
];

/// Routes whose 400 does not name the field, as the original's (method, path): the password
/// reset answers resource `reset` with `details` `{}` and the field's message alone.
const UNNAMED: &[(&str, &str)] = &[("POST", "/users/password/reset")];

/// The PostgreSQL errors that are no bad byte: a unique violation is how a conflict is found
/// (answered 409; the probes give two resources the same control character as a name).
const EXPECTED_DATABASE_ERRORS: &[&str] = &["duplicate key value violates unique constraint"];

/// One documented operation.
struct Op {
    method: String,
    path: String,
    /// (name, location, schema) of each parameter.
    params: Vec<(String, String, Yaml)>,
    body: Option<Yaml>,
    /// The item schema of a list answer (its fields are exact filters).
    list_item: Option<Yaml>,
}

fn operations(root: &Yaml) -> Vec<Op> {
    let paths = get(root, "paths").and_then(Yaml::as_mapping).unwrap();
    let mut out = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap().to_string();
        for method in METHODS {
            let Some(op) = get(item, method) else {
                continue;
            };
            let mut params = Vec::new();
            for holder in [item, op] {
                for p in get(holder, "parameters")
                    .and_then(Yaml::as_sequence)
                    .into_iter()
                    .flatten()
                {
                    let p = resolve(root, p);
                    params.push((
                        str_of(p, "name").unwrap().to_string(),
                        str_of(p, "in").unwrap().to_string(),
                        get(p, "schema").cloned().unwrap_or(Yaml::Null),
                    ));
                }
            }
            let body = get(op, "requestBody")
                .and_then(|b| get(resolve(root, b), "content"))
                .and_then(|c| get(c, "application/json"))
                .and_then(|c| get(c, "schema"))
                .map(|s| resolve(root, s).clone());
            let list_item = get(op, "responses")
                .and_then(|r| get(r, "200"))
                .map(|r| resolve(root, r))
                .and_then(|r| get(r, "content"))
                .and_then(|c| get(c, "application/json"))
                .and_then(|c| get(c, "schema"))
                .and_then(|s| property(root, resolve(root, s), "items"))
                .and_then(|items| get(&items, "items").map(|i| resolve(root, i).clone()));
            out.push(Op {
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                params,
                body,
                list_item,
            });
        }
    }
    out
}

/// The properties of an object schema (through `$ref` and `allOf`; later ones win).
fn properties(root: &Yaml, schema: &Yaml) -> Vec<(String, Yaml)> {
    let schema = resolve(root, schema);
    let mut out: Vec<(String, Yaml)> = Vec::new();
    for sub in get(schema, "allOf")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
    {
        for (k, v) in properties(root, sub) {
            out.retain(|(n, _)| *n != k);
            out.push((k, v));
        }
    }
    for (k, v) in get(schema, "properties")
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten()
    {
        let k = k.as_str().unwrap().to_string();
        out.retain(|(n, _)| *n != k);
        out.push((k, resolve(root, v).clone()));
    }
    out
}

fn property(root: &Yaml, schema: &Yaml, name: &str) -> Option<Yaml> {
    properties(root, schema)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn required(root: &Yaml, schema: &Yaml) -> Vec<String> {
    let schema = resolve(root, schema);
    let mut out: Vec<String> = get(schema, "required")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    for sub in get(schema, "allOf")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
    {
        out.extend(required(root, sub));
    }
    out
}

/// A step of the path to a string inside a body.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Item,
    /// A property of an object whose properties are free (`additionalProperties`: read by a
    /// plugin, not by the server): no field the server could name.
    Free,
}

/// The paths of every string inside a value of `schema` (an object whose other properties are
/// free gets one, `probe`).
fn string_leaves(root: &Yaml, schema: &Yaml, at: Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let schema = resolve(root, schema);
    let is_object = str_of(schema, "type") == Some("object")
        || get(schema, "properties").is_some()
        || get(schema, "allOf").is_some();
    match str_of(schema, "type") {
        Some("string") => out.push(at),
        Some("array") => {
            if let Some(items) = get(schema, "items") {
                let mut p = at;
                p.push(Step::Item);
                string_leaves(root, items, p, out);
            }
        }
        _ if is_object => {
            for (name, sub) in properties(root, schema) {
                let mut p = at.clone();
                p.push(Step::Key(name));
                string_leaves(root, &sub, p, out);
            }
            if get(schema, "additionalProperties").and_then(Yaml::as_bool) == Some(true) {
                let mut p = at;
                p.push(Step::Free);
                out.push(p);
            }
        }
        _ => {}
    }
}

/// The name of the field a path ends in (its last key).
fn field_name(path: &[Step]) -> String {
    path.iter()
        .rev()
        .find_map(|s| match s {
            Step::Key(k) => Some(k.clone()),
            Step::Item | Step::Free => None,
        })
        .unwrap_or_default()
}

fn shown(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => k.as_str(),
            Step::Item => "[]",
            Step::Free => "probe",
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn set_at(body: &mut Value, path: &[Step], v: Value) {
    match path.split_first() {
        None => *body = v,
        Some((step @ (Step::Key(_) | Step::Free), rest)) => {
            let k = match step {
                Step::Key(k) => k.clone(),
                _ => "probe".to_string(),
            };
            if !body.is_object() {
                *body = json!({});
            }
            let slot = body
                .as_object_mut()
                .unwrap()
                .entry(k)
                .or_insert(Value::Null);
            set_at(slot, rest, v)
        }
        Some((Step::Item, rest)) => {
            let mut item = Value::Null;
            set_at(&mut item, rest, v);
            *body = json!([item]);
        }
    }
}

/// What a probe needs from the running server.
struct Env {
    s: Server,
    admin: String,
    /// A path value that exists, per path parameter name.
    path_values: Vec<(&'static str, String)>,
    /// The password of the user whose password route is probed (it may change).
    password: RefCell<String>,
    counter: RefCell<u32>,
    violations: RefCell<Vec<String>>,
    probes: RefCell<u32>,
}

impl Env {
    fn unique(&self, prefix: &str) -> String {
        let mut c = self.counter.borrow_mut();
        *c += 1;
        format!("{prefix}-{}", *c)
    }

    fn fail(&self, what: String) {
        self.violations.borrow_mut().push(what);
    }

    fn path_value(&self, name: &str) -> String {
        self.path_values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no fixture for path parameter {name}"))
    }

    /// The path with every parameter replaced by its fixture, except `bad` (name, value).
    fn path(&self, template: &str, bad: Option<(&str, &str)>) -> String {
        let segs: Vec<String> = template
            .split('/')
            .map(
                |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => match bad {
                        Some((b, v)) if b == name => v.to_string(),
                        _ => self.path_value(name),
                    },
                    None => seg.to_string(),
                },
            )
            .collect();
        format!("/0.1{}", segs.join("/"))
    }

    /// A valid body for `schema`: its required fields, with plausible values.
    fn base_body(&self, root: &Yaml, schema: &Yaml) -> Value {
        let mut body = Map::new();
        let props = properties(root, schema);
        for name in required(root, schema) {
            let sub = props
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| s.clone())
                .unwrap_or(Yaml::Null);
            let v = match (name.as_str(), str_of(&sub, "type")) {
                ("old_password", _) => json!(self.password.borrow().clone()),
                (_, Some("array")) => json!([]),
                (_, Some("boolean")) => json!(false),
                (_, Some("integer")) => json!(1),
                (_, Some("object")) => json!({}),
                _ if str_of(&sub, "format") == Some("uuid") => json!(uuid::Uuid::new_v4()),
                _ => match get(&sub, "enum").and_then(Yaml::as_sequence) {
                    Some(e) => json!(e[0].as_str().unwrap()),
                    None => json!(self.unique("bad-bytes")),
                },
            };
            body.insert(name, v);
        }
        Value::Object(body)
    }

    /// Sends a request as the master administrator (or with `auth` as the Authorization).
    fn send(&self, method: &str, path: &str, body: Option<&[u8]>, auth: Option<&str>) -> Resp {
        *self.probes.borrow_mut() += 1;
        let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
        match auth {
            Some(a) => headers.push(("Authorization", a)),
            None => headers.push(("X-Auth-Token", &self.admin)),
        }
        self.s.request(method, path, &headers, body)
    }

    /// The properties every answer has: no 5xx, and an error shape for a 4xx.
    fn check(&self, what: &str, method: &str, r: &Resp) {
        if r.status >= 500 {
            self.fail(format!("{what}: {} {}", r.status, r.body));
            return;
        }
        if (400..500).contains(&r.status) && method != "HEAD" {
            if let Err(e) = error_shape(r) {
                self.fail(format!("{what}: {} with {e}: {}", r.status, r.body));
            }
        }
    }
}

/// Whether a 4xx body is one of the API's error shapes (api.yml `TokenError`, `ApiError`,
/// `PlainError`).
fn error_shape(r: &Resp) -> Result<(), String> {
    let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("a body not JSON ({e})"))?;
    let obj = v.as_object().ok_or("a body not an object")?;
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    let one = |k: &str, pred: fn(&Value) -> bool| {
        v[k].as_array()
            .is_some_and(|a| a.len() == 1 && a.iter().all(pred))
    };
    if keys == BTreeSet::from(["reason", "timestamp", "status_code"]) {
        if one("reason", Value::is_string)
            && one("timestamp", Value::is_number)
            && v["status_code"] == json!(r.status)
        {
            return Ok(());
        }
        return Err("a malformed TokenError".into());
    }
    if keys == BTreeSet::from(["message"]) {
        return if v["message"].is_string() {
            Ok(())
        } else {
            Err("a malformed PlainError".into())
        };
    }
    let api = BTreeSet::from(["message", "error_id", "details", "timestamp"]);
    if keys == api || keys == &api | &BTreeSet::from(["resource"]) {
        let ok = (v["message"].is_string() || v["message"].is_object())
            && v["error_id"].is_string()
            && v["details"].is_object()
            && v["timestamp"].is_number()
            && (v.get("resource").is_none() || v["resource"].is_string());
        return if ok {
            Ok(())
        } else {
            Err("a malformed ApiError".into())
        };
    }
    Err(format!("unknown keys {keys:?}"))
}

/// The answer's message (`reason[0]`, or `message` as text), for comparisons.
fn message(r: &Resp) -> String {
    let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    match (&v["reason"][0], &v["message"]) {
        (Value::String(s), _) | (_, Value::String(s)) => s.clone(),
        (_, m) => m.to_string(),
    }
}

/// The answer's body without its timestamp, with `value` (as JSON writes it) replaced by `@`.
fn normalized(r: &Resp, value: &str) -> String {
    let mut v: Value = serde_json::from_str(&r.body).unwrap_or(json!(r.body));
    if let Some(o) = v.as_object_mut() {
        o.remove("timestamp");
    }
    let quoted = serde_json::to_string(value).unwrap();
    let inner = &quoted[1..quoted.len() - 1];
    v.to_string().replace(inner, "@")
}

/// Raw bytes of a JSON body whose string at `marker` is replaced by invalid UTF-8.
fn invalid_utf8(body: &Value, marker: &str) -> Vec<u8> {
    let text = body.to_string();
    let quoted = format!("\"{marker}\"");
    let at = text.find(&quoted).expect("the marker is in the body");
    let mut out = text.as_bytes()[..at + 1].to_vec();
    out.extend_from_slice(&[0xff, 0xfe]);
    out.extend_from_slice(&text.as_bytes()[at + quoted.len() - 1..]);
    out
}

/// Sends a request over a plain socket (for a header value `ureq` cannot carry); returns the
/// status and the body.
fn raw_request(base: &str, method: &str, path: &str, headers: &[(&str, &[u8])]) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    stream.write_all(&req).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn setup() -> Env {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(BAR))
        .config(json!({
            "enabled_external_auth_plugins": {"bar": true},
            "enabled_http_plugins": {"user_registration": true},
            // Nobody listens there: mails are queued, retried and dropped.
            "smtp": {"hostname": "127.0.0.1", "port": 9},
        }))
        .start();
    let admin = s.admin_token();
    let master = s.get(&format!("/0.1/token/{admin}")).json()["data"]["metadata"]["tenant_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let created = |path: &str, body: Value| -> String {
        let r = s.call("POST", path, &admin, None, Some(&body));
        assert_eq!(r.status, 200, "POST {path}: {}", r.body);
        r.json()["uuid"].as_str().unwrap().to_string()
    };
    let tenant = created("/0.1/tenants", json!({"name": "bad-bytes"}));
    let group = created("/0.1/groups", json!({"name": "bad-bytes"}));
    let policy = created(
        "/0.1/policies",
        json!({"name": "bad-bytes", "acl": ["a.b"]}),
    );
    let user = s.create_user(&admin, "bad-bytes", "bad-bytes-pw", None);
    let r = s.login(
        "bad-bytes",
        "bad-bytes-pw",
        json!({"access_type": "offline", "client_id": "bad-bytes-client"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["data"]["token"].as_str().unwrap().to_string();
    let session = r.json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let emails = s.call(
        "PUT",
        &format!("/0.1/admin/users/{user}/emails"),
        &admin,
        None,
        Some(&json!({"emails": [{"address": "bad-bytes@example.com", "main": true}]})),
    );
    assert_eq!(emails.status, 200, "{}", emails.body);
    let email = emails.json()[0]["uuid"].as_str().unwrap().to_string();
    let path_values = vec![
        ("email_uuid", email),
        ("token", token),
        ("user_uuid", user),
        ("tenant_uuid", tenant),
        ("parent_tenant_uuid", master),
        ("group_uuid", group),
        ("policy", policy),
        ("session_uuid", session),
        ("client_id", "bad-bytes-client".to_string()),
        ("auth_type", "bar".to_string()),
        ("access", "a.b".to_string()),
        ("idp_type", "native".to_string()),
    ];
    Env {
        s,
        admin,
        path_values,
        password: RefCell::new("bad-bytes-pw".into()),
        counter: RefCell::new(0),
        violations: RefCell::new(Vec::new()),
        probes: RefCell::new(0),
    }
}

/// Path and query parameters, and exact filters of list routes.
fn probe_parameters(e: &Env, root: &Yaml, op: &Op) {
    let body = op.body.as_ref().map(|b| e.base_body(root, b).to_string());
    let body = body.as_deref().map(str::as_bytes);
    let m = op.method.as_str();
    for (name, location, schema) in &op.params {
        match location.as_str() {
            "path" => {
                let mut values: Vec<String> = BAD_ENCODED.iter().map(|v| v.to_string()).collect();
                if str_of(schema, "format") == Some("uuid") {
                    values.push(format!("{}%00", e.path_value(name)));
                }
                for v in values {
                    let path = e.path(&op.path, Some((name, &v)));
                    let r = e.send(m, &path, body, None);
                    e.check(&format!("{m} {path} (path {name})"), m, &r);
                }
            }
            "query" => probe_query(e, op, name, body),
            _ => {}
        }
    }
    if let Some(item) = &op.list_item {
        let mut filters: Vec<String> = properties(root, item)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        // A bad parameter name too.
        filters.extend(["%00".to_string(), "%FF".to_string()]);
        for name in filters {
            probe_query(e, op, &name, body);
        }
    }
}

fn probe_query(e: &Env, op: &Op, name: &str, body: Option<&[u8]>) {
    let m = op.method.as_str();
    let base = e.path(&op.path, None);
    // `?tenant=` holding NUL answers as an unknown tenant does.
    let unknown = (name == "tenant").then(|| {
        let t = uuid::Uuid::new_v4().to_string();
        let r = e.send(m, &format!("{base}?tenant={t}"), body, None);
        (r.status, message(&r).replace(&t, ""))
    });
    for v in BAD_ENCODED {
        let path = format!("{base}?{name}={v}");
        let r = e.send(m, &path, body, None);
        let what = format!("{m} {path} (query {name})");
        e.check(&what, m, &r);
        if let Some((status, prefix)) = &unknown {
            if r.status != *status || (m != "HEAD" && !message(&r).starts_with(prefix.as_str())) {
                e.fail(format!(
                    "{what}: {} {} where an unknown tenant answers {status} {prefix:?}",
                    r.status, r.body
                ));
            }
        }
    }
}

/// Every string of the body.
fn probe_body(e: &Env, root: &Yaml, op: &Op) {
    let Some(schema) = &op.body else {
        return;
    };
    let m = op.method.as_str();
    let path = e.path(&op.path, None);
    let mut leaves = Vec::new();
    string_leaves(root, schema, Vec::new(), &mut leaves);
    assert!(
        !leaves.is_empty(),
        "{m} {}: a body without strings",
        op.path
    );
    // The login route needs credentials for its body to be read.
    let auth = (op.path == "/token").then(|| basic(ADMIN.0, ADMIN.1));
    for leaf in leaves {
        let field = field_name(&leaf);
        let free = matches!(leaf.last(), Some(Step::Free));
        let lookup = LOOKUPS
            .iter()
            .find(|(lm, lp, lf, _)| *lm == m && *lp == op.path && *lf == field);
        let body_with = |v: &str| {
            let mut body = e.base_body(root, schema);
            if let Some((_, _, _, rest)) = lookup {
                merge(&mut body, &serde_json::from_str(rest).unwrap());
            }
            set_at(&mut body, &leaf, json!(v));
            body.to_string().into_bytes()
        };
        // A value that matches nothing, to compare with.
        let nothing = lookup.map(|_| {
            let r = e.send(m, &path, Some(&body_with("nothing")), auth.as_deref());
            (r.status, normalized(&r, "nothing"))
        });
        for v in BAD_STRINGS {
            let what = format!("{m} {path} (body {} = {v:?})", shown(&leaf));
            let r = e.send(m, &path, Some(&body_with(v)), auth.as_deref());
            e.check(&what, m, &r);
            if field == "new_password" && r.status == 204 {
                *e.password.borrow_mut() = v.to_string();
            }
            if !v.contains('\0') || free {
                continue;
            }
            match &nothing {
                Some((status, expected)) => {
                    if r.status != *status || normalized(&r, v) != *expected {
                        e.fail(format!(
                            "{what}: {} {} where a {field} matching nothing answers {status} \
                             {expected}",
                            r.status, r.body
                        ));
                    }
                }
                None => {
                    let unnamed = UNNAMED.contains(&(m, op.path.as_str()));
                    if r.status != 400 || !(unnamed || r.body.contains(&field)) {
                        e.fail(format!(
                            "{what}: {} {}, not a 400 naming {field}",
                            r.status, r.body
                        ));
                    }
                }
            }
        }
        let marker = e.unique("invalid-utf8-marker");
        let mut body = e.base_body(root, schema);
        set_at(&mut body, &leaf, json!(marker));
        let bytes = invalid_utf8(&body, &marker);
        let r = e.send(m, &path, Some(&bytes), auth.as_deref());
        let what = format!("{m} {path} (body {} = b\"\\xff\\xfe\")", shown(&leaf));
        e.check(&what, m, &r);
        if r.status != 400 {
            e.fail(format!("{what}: {} {}, not a 400", r.status, r.body));
        }
    }
}

/// `Wazo-Tenant` holding bytes that are not UTF-8 (the header may carry them; NUL and other
/// control characters cannot be sent in a header).
fn probe_headers(e: &Env, op: &Op) {
    let m = op.method.as_str();
    // A delete of an existing fixture would succeed: the header is probed on the others.
    if m == "DELETE" || !op.params.iter().any(|(_, l, _)| l == "header") {
        return;
    }
    let path = e.path(&op.path, None);
    *e.probes.borrow_mut() += 1;
    let (status, body) = raw_request(
        &e.s.base,
        m,
        &path,
        &[
            ("X-Auth-Token", e.admin.as_bytes()),
            ("Wazo-Tenant", b"\xff\xfe"),
        ],
    );
    let r = Resp {
        status,
        headers: Vec::new(),
        body,
    };
    e.check(
        &format!("{m} {path} (Wazo-Tenant = b\"\\xff\\xfe\")"),
        m,
        &r,
    );
}

/// Basic credentials holding NUL, control characters or invalid UTF-8: a failed login (401).
fn probe_credentials(e: &Env) {
    let mut credentials: Vec<Vec<u8>> = Vec::new();
    for bad in BAD_STRINGS {
        credentials.push(format!("{}{bad}:{}", ADMIN.0, ADMIN.1).into_bytes());
        credentials.push(format!("{}:{}{bad}", ADMIN.0, ADMIN.1).into_bytes());
    }
    credentials.push(b"\xff\xfe:x".to_vec());
    credentials.push(format!("{}:\u{ff}", ADMIN.0).into_bytes());
    let mut latin = ADMIN.0.as_bytes().to_vec();
    latin.extend_from_slice(b":\xff\xfe");
    credentials.push(latin);
    credentials.push(b"\0:\0".to_vec());
    for raw in credentials {
        for body in [json!({}), json!({"backend": "wazo_user"})] {
            let auth = basic_bytes(&raw);
            let r = e.send(
                "POST",
                "/0.1/token",
                Some(body.to_string().as_bytes()),
                Some(&auth),
            );
            let what = format!("POST /0.1/token (Basic \"{}\", {body})", raw.escape_ascii());
            e.check(&what, "POST", &r);
            if r.status != 401 {
                e.fail(format!("{what}: {} {}, not a 401", r.status, r.body));
            }
        }
    }
}

#[test]
fn every_string_of_every_route_refuses_bad_bytes_without_a_5xx() {
    let root = api_yml::load();
    let ops = operations(&root);
    assert!(ops.len() > 60, "{} operations documented", ops.len());
    let e = setup();
    let pg_before = postgres_log_len();
    // Bodies first (a delete probed with a bad path segment changes nothing), then parameters.
    for op in &ops {
        probe_body(&e, &root, op);
    }
    for op in &ops {
        probe_parameters(&e, &root, op);
        probe_headers(&e, op);
    }
    probe_credentials(&e);

    // The fixtures are still there (no probe deleted one: the probes were really made).
    let admin = e.admin.clone();
    for (kind, name) in [("users", "user_uuid"), ("groups", "group_uuid")] {
        let r = e.s.call(
            "GET",
            &format!("/0.1/{kind}/{}", e.path_value(name)),
            &admin,
            None,
            None,
        );
        assert_eq!(r.status, 200, "{kind}: {}", r.body);
    }

    let server_errors: Vec<String> =
        e.s.log()
            .lines()
            .filter(|l| l.contains("ERROR"))
            .map(String::from)
            .collect();
    let pg = postgres_log();
    let pg_errors: Vec<String> = pg
        .get(pg_before..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains("ERROR") && !EXPECTED_DATABASE_ERRORS.iter().any(|x| l.contains(x)))
        .map(String::from)
        .collect();
    let violations = e.violations.borrow();
    let probes = *e.probes.borrow();
    assert!(probes > 1000, "only {probes} probes");
    assert!(
        violations.is_empty() && server_errors.is_empty() && pg_errors.is_empty(),
        "{} of {probes} probes failed:\n{}\n\nserver log errors:\n{}\n\nPostgreSQL errors:\n{}",
        violations.len(),
        violations.join("\n"),
        server_errors.join("\n"),
        pg_errors.join("\n"),
    );
}
