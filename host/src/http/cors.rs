//! CORS by the `actix-cors` crate, set up from `rest_api.cors` (the original's Flask-CORS
//! options): this module only reads and checks the configuration, the protocol is the crate's.
//! Origins match as Flask-CORS matches them: `*` (or `.*`) is any origin, an entry with a
//! regular-expression character (`*\]?$^[()`) is a pattern matched from the start, the others
//! are compared; case-insensitively. Another origin is served, without CORS headers (its
//! browser refuses the answer). `Wazo-Sessions-Revoked` is always exposed. The differences from
//! Flask-CORS are listed in the CORS section of docs/compatibility.md.

use std::sync::Arc;

use actix_web::http::{header::HeaderName, Method};
use actix_web::middleware::Condition;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::config::Cors;

/// A value of `rest_api.cors` the server cannot use: its dotted key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfigError {
    pub key: String,
    pub detail: String,
}

impl std::fmt::Display for CorsConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\": {}", self.key, self.detail)
    }
}

fn error(key: &str, detail: impl std::fmt::Display) -> CorsConfigError {
    CorsConfigError {
        key: format!("rest_api.cors.{key}"),
        detail: detail.to_string(),
    }
}

/// Flask-CORS's default `methods`.
const ALL_METHODS: &str = "GET HEAD POST OPTIONS PUT PATCH DELETE";

/// Flask-CORS's "any" (it rewrites `*` to `.*`).
fn is_any(text: &str) -> bool {
    text == "*" || text == ".*"
}

/// Flask-CORS's test for a regular expression.
fn probably_regex(text: &str) -> bool {
    text.contains(['*', '\\', ']', '?', '$', '^', '[', '(', ')'])
}

/// An entry of `origins` as a case-insensitive regular expression matching what it allows.
fn origin_pattern(entry: &str) -> Result<Regex, CorsConfigError> {
    let pattern = if probably_regex(entry) {
        format!("^(?:{entry})")
    } else {
        format!("^{}$", regex::escape(entry))
    };
    RegexBuilder::new(&pattern)
        .case_insensitive(true)
        .build()
        .map_err(|e| error("origins", format!("invalid pattern {entry:?}: {e}")))
}

/// A string or a list of strings (Flask-CORS accepts both); `None` when absent.
fn strings(key: &str, value: &Option<Value>) -> Result<Option<Vec<String>>, CorsConfigError> {
    let expected = |v: &Value| error(key, format!("expected a string or strings, got {v}"));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| expected(v)))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(expected(other)),
    }
}

fn boolean(key: &str, value: &Option<Value>, default: bool) -> Result<bool, CorsConfigError> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(error(key, format!("expected a boolean, got {other}"))),
    }
}

/// `items` parsed by `parse` (header names, methods); `Err` names an unusable one.
fn parse_all<T, E>(
    key: &str,
    items: &[String],
    parse: impl Fn(&[u8]) -> Result<T, E>,
) -> Result<Vec<T>, CorsConfigError> {
    let unusable = |i: &String| error(key, format!("{i:?} is not a valid name"));
    items
        .iter()
        .map(|i| parse(i.as_bytes()).map_err(|_| unusable(i)))
        .collect()
}

/// The checked `rest_api.cors`: it builds each worker's middleware (which cannot be shared
/// between threads).
#[derive(Clone)]
pub struct CorsPolicy(Arc<dyn Fn() -> actix_cors::Cors + Send + Sync>);

impl CorsPolicy {
    /// The policy of `rest_api.cors`; `Err` names the key of a value it cannot use. Whatever
    /// the crate's builder would refuse is refused here, at startup.
    pub fn from_config(c: &Cors) -> Result<CorsPolicy, CorsConfigError> {
        let origins = strings("origins", &c.origins)?.unwrap_or_else(|| vec!["*".into()]);
        let origins: Option<Vec<Regex>> = if origins.iter().any(|o| is_any(o)) {
            None
        } else {
            Some(
                origins
                    .iter()
                    .map(|o| origin_pattern(o))
                    .collect::<Result<_, _>>()?,
            )
        };
        let headers = if c.allow_headers.iter().any(|h| is_any(h)) {
            None
        } else if let Some(h) = c.allow_headers.iter().find(|h| probably_regex(h)) {
            let detail = format!("{h:?}: only header names, or \"*\" for any, are supported");
            return Err(error("allow_headers", detail));
        } else {
            Some(parse_all(
                "allow_headers",
                &c.allow_headers,
                HeaderName::from_bytes,
            )?)
        };
        let methods = strings("methods", &c.methods)?
            .unwrap_or_else(|| ALL_METHODS.split(' ').map(String::from).collect());
        let methods = parse_all("methods", &methods, |m| {
            Method::from_bytes(&m.to_ascii_uppercase())
        })?;
        let mut expose = strings("expose_headers", &c.expose_headers)?.unwrap_or_default();
        expose.push("Wazo-Sessions-Revoked".into());
        let expose = parse_all("expose_headers", &expose, HeaderName::from_bytes)?;
        let max_age = match &c.max_age {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_str()?.trim().parse().ok())
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| error("max_age", format!("expected seconds, got {v}")))?,
            ),
        };
        let credentials = boolean("supports_credentials", &c.supports_credentials, false)?;
        let send_wildcard = boolean("send_wildcard", &c.send_wildcard, false)?;
        let vary = boolean("vary_header", &c.vary_header, true)?;
        // Type-checked only: actix-cors answers a request without `Origin` without CORS
        // headers, as Flask-CORS's `always_send: false` (docs/compatibility.md).
        boolean("always_send", &c.always_send, true)?;
        if credentials && send_wildcard && origins.is_none() {
            // Forbidden by the CORS specification; Flask-CORS refuses it too.
            let detail = "cannot be true with send_wildcard and any origin (\"*\")";
            return Err(error("supports_credentials", detail));
        }
        Ok(CorsPolicy(Arc::new(move || {
            // Flask-CORS never refuses a request: another origin only gets no CORS headers.
            let mut cors = actix_cors::Cors::default()
                .block_on_origin_mismatch(false)
                .allowed_methods(methods.clone())
                .expose_headers(expose.clone())
                .max_age(max_age);
            cors = match origins.clone() {
                None => cors.allow_any_origin(),
                Some(patterns) => cors.allowed_origin_fn(move |origin, _| {
                    (origin.to_str()).is_ok_and(|o| patterns.iter().any(|p| p.is_match(o)))
                }),
            };
            cors = match &headers {
                None => cors.allow_any_header(),
                Some(names) => cors.allowed_headers(names.clone()),
            };
            if credentials {
                cors = cors.supports_credentials();
            }
            if send_wildcard {
                cors = cors.send_wildcard();
            }
            if !vary {
                cors = cors.disable_vary_header();
            }
            cors
        })))
    }
}

/// The CORS middleware of a worker: `None` (`rest_api.cors.enabled: false`) adds nothing.
pub fn middleware(policy: Option<&CorsPolicy>) -> Condition<actix_cors::Cors> {
    Condition::new(
        policy.is_some(),
        policy.map_or_else(actix_cors::Cors::default, |p| (p.0)()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as web_test, web, App, HttpResponse};
    use serde_json::json;

    fn config(patch: Value) -> Cors {
        let mut c = serde_json::to_value(Cors::default()).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    /// The status and CORS headers of the answer to `method /` from `origin`; a pre-flight
    /// (`OPTIONS`) asks for `GET` and `X-Auth-Token`.
    async fn answer(patch: Value, method: Method, origin: &str) -> (u16, Vec<String>) {
        let policy = CorsPolicy::from_config(&config(patch)).unwrap();
        let app = App::new().wrap(middleware(Some(&policy)));
        let app = web_test::init_service(app.route("/", web::to(HttpResponse::Ok))).await;
        let mut req = web_test::TestRequest::default().method(method.clone());
        req = req.insert_header(("origin", origin));
        if method == Method::OPTIONS {
            req = req.insert_header(("access-control-request-method", "GET"));
            req = req.insert_header(("access-control-request-headers", "X-Auth-Token"));
        }
        let res = web_test::call_service(&app, req.to_request()).await;
        let mut headers: Vec<String> = (res.headers().iter())
            .filter(|(k, _)| k.as_str().starts_with("access-control-") || *k == "vary")
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        headers.sort();
        (res.status().as_u16(), headers)
    }

    #[actix_web::test]
    async fn the_options_set_the_middleware() {
        let vary = "vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
        let listed = json!({"origins": ["https://Good.example", "https://.*\\.wazo\\.io"]});
        for origin in ["https://good.example", "https://a.WAZO.io"] {
            let (status, h) = answer(listed.clone(), Method::GET, origin).await;
            let allowed = format!("access-control-allow-origin: {origin}");
            let exposed = "access-control-expose-headers: wazo-sessions-revoked";
            assert_eq!(
                (status, h),
                (200, vec![allowed, exposed.into(), vary.into()])
            );
        }
        // Another origin is served, without `Access-Control-Allow-Origin`.
        for origin in ["https://evil.example", "https://good.example.evil"] {
            let (status, h) = answer(listed.clone(), Method::GET, origin).await;
            assert_eq!(status, 200);
            assert!(!h
                .iter()
                .any(|h| h.starts_with("access-control-allow-origin")));
        }
        let options = json!({"send_wildcard": true, "max_age": "600", "methods": ["get"],
                             "allow_headers": ["*"], "vary_header": false});
        let (status, h) = answer(options, Method::OPTIONS, "http://x").await;
        let expected = [
            "access-control-allow-headers: X-Auth-Token",
            "access-control-allow-methods: GET",
            "access-control-allow-origin: *",
            "access-control-max-age: 600",
        ];
        assert_eq!((status, h), (200, expected.map(String::from).to_vec()));
        // A header not allowed: the pre-flight fails.
        let (status, h) = answer(
            json!({"allow_headers": ["X-B"]}),
            Method::OPTIONS,
            "http://x",
        )
        .await;
        assert_eq!((status, h), (400, vec![]));
    }

    #[test]
    fn unusable_values_name_their_key() {
        for (patch, key) in [
            (json!({"origins": ["(unclosed"]}), "origins"),
            (json!({"origins": 5}), "origins"),
            (json!({"allow_headers": ["X-.*"]}), "allow_headers"),
            (json!({"allow_headers": ["a b"]}), "allow_headers"),
            (json!({"methods": ["G T"]}), "methods"),
            (json!({"expose_headers": ["a:b"]}), "expose_headers"),
            (json!({"max_age": -1}), "max_age"),
            (json!({"max_age": "soon"}), "max_age"),
            (json!({"always_send": "yes"}), "always_send"),
            (
                json!({"send_wildcard": true, "supports_credentials": true}),
                "supports_credentials",
            ),
        ] {
            let e = CorsPolicy::from_config(&config(patch.clone()))
                .err()
                .unwrap();
            assert_eq!(e.key, format!("rest_api.cors.{key}"), "{patch}");
        }
        let ok = json!({"send_wildcard": true, "supports_credentials": true,
                        "origins": "https://a.example"});
        assert!(CorsPolicy::from_config(&config(ok)).is_ok());
    }
}
