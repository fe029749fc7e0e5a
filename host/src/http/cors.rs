//! CORS by the `actix-cors` crate, set up from `rest_api.cors` (the original's Flask-CORS
//! options). This module only reads and checks the configuration; the protocol (pre-flights,
//! response headers) is the crate's. Where it differs from Flask-CORS, see the CORS section of
//! docs/compatibility.md.
//!
//! Origins match as Flask-CORS matches them: `*` (or `.*`) is any origin, an entry with a
//! regular-expression character (`*\]?$^[()`) is a regular expression matched from the start,
//! case-insensitively, and the others compare case-insensitively. A request from another origin
//! is served, without `Access-Control-Allow-Origin` (its browser then refuses the answer).
//! `Wazo-Sessions-Revoked` is always exposed (an extension of this server).

use std::sync::Arc;

use actix_web::http::header::HeaderName;
use actix_web::http::Method;
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
const ALL_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"];
/// Exposed to browsers whatever the configuration (an extension of this server).
const ALWAYS_EXPOSED: &str = "Wazo-Sessions-Revoked";

/// An allowed origin.
#[derive(Debug)]
enum Pattern {
    /// Compared case-insensitively.
    Exact(String),
    /// Matched from the start, case-insensitively.
    Regex(Regex),
}

impl Pattern {
    fn new(text: &str) -> Result<Pattern, CorsConfigError> {
        if !probably_regex(text) {
            return Ok(Pattern::Exact(text.to_string()));
        }
        RegexBuilder::new(&format!("^(?:{text})"))
            .case_insensitive(true)
            .build()
            .map(Pattern::Regex)
            .map_err(|e| error("origins", format!("invalid pattern {text:?}: {e}")))
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(p) => p.eq_ignore_ascii_case(value),
            Pattern::Regex(r) => r.is_match(value),
        }
    }
}

/// Flask-CORS's test for a regular expression.
fn probably_regex(text: &str) -> bool {
    text.contains(['*', '\\', ']', '?', '$', '^', '[', '(', ')'])
}

/// Flask-CORS's "any": `*`, which it rewrites to `.*`.
fn is_any(text: &str) -> bool {
    text == "*" || text == ".*"
}

/// A string or a list of strings (Flask-CORS accepts both); `None` when absent.
fn strings(key: &str, value: Option<&Value>) -> Result<Option<Vec<String>>, CorsConfigError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(error(key, format!("expected strings, got {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(error(
            key,
            format!("expected a string or a list of strings, got {other}"),
        )),
    }
}

fn boolean(key: &str, value: Option<&Value>, default: bool) -> Result<bool, CorsConfigError> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(error(key, format!("expected a boolean, got {other}"))),
    }
}

fn header_names(key: &str, names: &[String]) -> Result<Vec<HeaderName>, CorsConfigError> {
    names
        .iter()
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| error(key, format!("{h:?} is not a header name")))
        })
        .collect()
}

/// The checked `rest_api.cors` configuration, from which each worker builds its middleware.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// `None`: any origin.
    origins: Option<Arc<[Pattern]>>,
    /// `None`: any header.
    allow_headers: Option<Vec<HeaderName>>,
    methods: Vec<Method>,
    expose_headers: Vec<HeaderName>,
    supports_credentials: bool,
    max_age: Option<usize>,
    send_wildcard: bool,
    vary_header: bool,
}

impl CorsPolicy {
    /// The policy of `rest_api.cors`; `Err` names the key of a value it cannot use. Every value
    /// the crate's builder could refuse is checked here, so the middleware always builds.
    pub fn from_config(cors: &Cors) -> Result<CorsPolicy, CorsConfigError> {
        let origins =
            strings("origins", cors.origins.as_ref())?.unwrap_or_else(|| vec!["*".into()]);
        let origins = if origins.iter().any(|o| is_any(o)) {
            None
        } else {
            Some(
                origins
                    .iter()
                    .map(|o| Pattern::new(o))
                    .collect::<Result<Arc<[_]>, _>>()?,
            )
        };
        let allow_headers = if cors.allow_headers.iter().any(|h| is_any(h)) {
            None
        } else if let Some(h) = cors.allow_headers.iter().find(|h| probably_regex(h)) {
            return Err(error(
                "allow_headers",
                format!("{h:?}: patterns are not supported, only header names or \"*\""),
            ));
        } else {
            Some(header_names("allow_headers", &cors.allow_headers)?)
        };
        let methods = strings("methods", cors.methods.as_ref())?
            .unwrap_or_else(|| ALL_METHODS.iter().map(|m| m.to_string()).collect())
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| error("methods", format!("{m:?} is not a method")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut expose =
            strings("expose_headers", cors.expose_headers.as_ref())?.unwrap_or_default();
        expose.push(ALWAYS_EXPOSED.into());
        let max_age = match &cors.max_age {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        if max_age.is_none() && !matches!(cors.max_age, None | Some(Value::Null)) {
            return Err(error("max_age", "expected a whole number of seconds"));
        }
        let supports_credentials = boolean(
            "supports_credentials",
            cors.supports_credentials.as_ref(),
            false,
        )?;
        let send_wildcard = boolean("send_wildcard", cors.send_wildcard.as_ref(), false)?;
        if supports_credentials && send_wildcard && origins.is_none() {
            // Forbidden by the CORS specification; Flask-CORS refuses it too.
            return Err(error(
                "supports_credentials",
                "cannot be true with send_wildcard and any origin (\"*\")",
            ));
        }
        // Type-checked only: `actix-cors` never answers a request without `Origin` with CORS
        // headers, as Flask-CORS's `always_send: false` (docs/compatibility.md).
        boolean("always_send", cors.always_send.as_ref(), true)?;
        Ok(CorsPolicy {
            origins,
            allow_headers,
            methods,
            expose_headers: header_names("expose_headers", &expose)?,
            supports_credentials,
            max_age,
            send_wildcard,
            vary_header: boolean("vary_header", cors.vary_header.as_ref(), true)?,
        })
    }

    fn build(&self) -> actix_cors::Cors {
        // Flask-CORS never refuses a request: another origin just gets no CORS headers.
        let mut cors = actix_cors::Cors::default()
            .block_on_origin_mismatch(false)
            .allowed_methods(self.methods.clone())
            .expose_headers(self.expose_headers.clone())
            .max_age(self.max_age);
        cors = match &self.origins {
            None => cors.allow_any_origin(),
            Some(patterns) => {
                let patterns = patterns.clone();
                cors.allowed_origin_fn(move |origin, _| {
                    origin
                        .to_str()
                        .is_ok_and(|o| patterns.iter().any(|p| p.matches(o)))
                })
            }
        };
        cors = match &self.allow_headers {
            None => cors.allow_any_header(),
            Some(names) => cors.allowed_headers(names.clone()),
        };
        if self.supports_credentials {
            cors = cors.supports_credentials();
        }
        if self.send_wildcard {
            cors = cors.send_wildcard();
        }
        if !self.vary_header {
            cors = cors.disable_vary_header();
        }
        cors
    }
}

/// The CORS middleware of a worker: `None` (`rest_api.cors.enabled: false`) adds nothing.
pub fn middleware(policy: Option<&CorsPolicy>) -> Condition<actix_cors::Cors> {
    Condition::new(
        policy.is_some(),
        policy.map_or_else(actix_cors::Cors::default, CorsPolicy::build),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderMap;
    use actix_web::test as web_test;
    use actix_web::{web, App, HttpResponse};
    use serde_json::json;

    fn config(patch: Value) -> Cors {
        let mut c = serde_json::to_value(Cors::default()).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    /// The answer's headers to `method /` with `headers`, and its status.
    async fn answer(patch: Value, method: Method, headers: &[(&str, &str)]) -> (u16, HeaderMap) {
        let policy = CorsPolicy::from_config(&config(patch)).unwrap();
        let app = web_test::init_service(
            App::new()
                .wrap(middleware(Some(&policy)))
                .route("/", web::to(HttpResponse::Ok)),
        )
        .await;
        let mut req = web_test::TestRequest::default().method(method);
        for h in headers {
            req = req.insert_header(*h);
        }
        let res = web_test::call_service(&app, req.to_request()).await;
        (res.status().as_u16(), res.headers().clone())
    }

    fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[actix_web::test]
    async fn origins_match_as_flask_cors_and_others_are_served_without_cors() {
        let origins = json!({"origins": ["https://Good.example", "https://.*\\.wazo\\.io"]});
        for origin in ["https://good.example", "https://a.WAZO.io"] {
            let (status, h) = answer(origins.clone(), Method::GET, &[("origin", origin)]).await;
            assert_eq!(status, 200);
            assert_eq!(get(&h, "access-control-allow-origin"), Some(origin));
            assert!(get(&h, "vary").unwrap().contains("Origin"));
            assert_eq!(
                get(&h, "access-control-expose-headers"),
                Some("wazo-sessions-revoked")
            );
        }
        for origin in ["https://evil.example", "https://good.example.evil"] {
            let (status, h) = answer(origins.clone(), Method::GET, &[("origin", origin)]).await;
            assert_eq!(status, 200);
            assert_eq!(get(&h, "access-control-allow-origin"), None);
        }
        let (status, h) = answer(json!({}), Method::GET, &[("origin", "http://x")]).await;
        assert_eq!(
            (status, get(&h, "access-control-allow-origin")),
            (200, Some("http://x"))
        );
    }

    #[actix_web::test]
    async fn preflights_and_options() {
        let pre = [
            ("origin", "http://x"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-auth-token"),
        ];
        let (status, h) = answer(
            json!({"send_wildcard": true, "max_age": "600", "expose_headers": ["X-A"],
                   "methods": ["get", "post"], "vary_header": false}),
            Method::OPTIONS,
            &pre,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&h, "access-control-max-age"), Some("600"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
        assert_eq!(get(&h, "vary"), None);
        let mut methods: Vec<&str> = get(&h, "access-control-allow-methods")
            .unwrap()
            .split(", ")
            .collect();
        methods.sort_unstable();
        assert_eq!(methods, ["GET", "POST"]);
        // Any header.
        let (status, h) = answer(json!({"allow_headers": ["*"]}), Method::OPTIONS, &pre).await;
        assert_eq!(status, 200);
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("x-auth-token")
        );
        // A header not allowed: the pre-flight fails.
        let (status, h) = answer(json!({"allow_headers": ["X-B"]}), Method::OPTIONS, &pre).await;
        assert_eq!(status, 400);
        assert_eq!(get(&h, "access-control-allow-origin"), None);
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
            let e = CorsPolicy::from_config(&config(patch.clone())).unwrap_err();
            assert_eq!(e.key, format!("rest_api.cors.{key}"), "{patch}");
        }
        let ok = json!({"send_wildcard": true, "supports_credentials": true,
                        "origins": "https://a.example"});
        assert!(CorsPolicy::from_config(&config(ok)).is_ok());
    }
}
