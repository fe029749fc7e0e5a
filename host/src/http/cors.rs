//! CORS as the original's Flask-CORS answers it with the `rest_api.cors` configuration
//! (`CORS(app, **cors_config)`): a request from an allowed origin gets that origin in
//! `Access-Control-Allow-Origin` (with `Vary: Origin`), a pre-flight gets the allowed methods and
//! those of its requested headers that `allow_headers` allows. Flask-CORS never refuses a
//! request: an origin it does not allow only gets no CORS headers (the browser then refuses).
//!
//! Options read: `enabled`, `allow_headers`, `origins`, `methods`, `expose_headers`,
//! `supports_credentials`, `max_age`, `send_wildcard`, `vary_header`, `always_send`. Origins and
//! header names match case-insensitively; a pattern with a regular-expression character
//! (`*\]?$^[()`) is a regular expression matched from the start, `*` alone meaning any.
//! Unlike the original, `Wazo-Sessions-Revoked` is always exposed.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
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
        key: key.to_string(),
        detail: detail.to_string(),
    }
}

/// Flask-CORS's default `methods`.
const ALL_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"];
/// Exposed to browsers whatever the configuration (an extension of this server).
const ALWAYS_EXPOSED: &str = "Wazo-Sessions-Revoked";

/// An origin or header pattern.
#[derive(Debug, Clone)]
enum Pattern {
    /// Compared case-insensitively.
    Exact(String),
    /// Matched from the start, case-insensitively.
    Regex(Regex),
}

impl Pattern {
    fn new(key: &str, text: &str) -> Result<Pattern, CorsConfigError> {
        let text = if text == "*" { ".*" } else { text };
        if !probably_regex(text) {
            return Ok(Pattern::Exact(text.to_string()));
        }
        RegexBuilder::new(&format!("^(?:{text})"))
            .case_insensitive(true)
            .build()
            .map(Pattern::Regex)
            .map_err(|e| error(key, format!("invalid pattern {text:?}: {e}")))
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(p) => p.to_lowercase() == value.to_lowercase(),
            Pattern::Regex(r) => r.is_match(value),
        }
    }

    fn is_regex(&self) -> bool {
        matches!(self, Pattern::Regex(_))
    }
}

/// Flask-CORS's test for a regular expression.
fn probably_regex(text: &str) -> bool {
    text.contains(['*', '\\', ']', '?', '$', '^', '[', '(', ')'])
}

/// The CORS answers of the server, from `rest_api.cors`.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Vec<Pattern>,
    /// Whether `origins` allows any origin (`*`, or `.*`).
    wildcard: bool,
    /// The origins sent to a request without `Origin` (`always_send`, no wildcard).
    listed_origins: Vec<String>,
    allow_headers: Vec<Pattern>,
    methods: Vec<String>,
    allow_methods: HeaderValue,
    expose_headers: HeaderValue,
    supports_credentials: bool,
    max_age: Option<HeaderValue>,
    send_wildcard: bool,
    vary_header: bool,
    always_send: bool,
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

/// Flask-CORS's `flexible_str`: items sorted, joined with `, `.
fn joined(key: &str, mut items: Vec<String>) -> Result<HeaderValue, CorsConfigError> {
    items.sort();
    items.dedup();
    HeaderValue::from_str(&items.join(", ")).map_err(|e| error(key, e))
}

impl CorsPolicy {
    /// The policy of `rest_api.cors`; `Err` names the key of a value it cannot use.
    pub fn from_config(cors: &Cors) -> Result<CorsPolicy, CorsConfigError> {
        const K: &str = "rest_api.cors";
        let origins_text = strings(&format!("{K}.origins"), cors.origins.as_ref())?
            .unwrap_or_else(|| vec!["*".into()]);
        let origins = origins_text
            .iter()
            .map(|o| Pattern::new(&format!("{K}.origins"), o))
            .collect::<Result<Vec<_>, _>>()?;
        let wildcard = origins_text.iter().any(|o| o == "*" || o == ".*");
        let allow_headers = cors
            .allow_headers
            .iter()
            .map(|h| Pattern::new(&format!("{K}.allow_headers"), h))
            .collect::<Result<Vec<_>, _>>()?;
        let methods: Vec<String> = strings(&format!("{K}.methods"), cors.methods.as_ref())?
            .unwrap_or_else(|| ALL_METHODS.iter().map(|m| m.to_string()).collect())
            .into_iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        let mut expose = strings(&format!("{K}.expose_headers"), cors.expose_headers.as_ref())?
            .unwrap_or_default();
        expose.push(ALWAYS_EXPOSED.into());
        let max_age = match &cors.max_age {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(error(
                    &format!("{K}.max_age"),
                    format!("expected seconds, got {other}"),
                ))
            }
        };
        let max_age = max_age
            .map(|m| HeaderValue::from_str(&m).map_err(|e| error(&format!("{K}.max_age"), e)))
            .transpose()?;
        Ok(CorsPolicy {
            listed_origins: {
                let mut listed: Vec<String> = origins_text
                    .iter()
                    .filter(|o| !probably_regex(o))
                    .cloned()
                    .collect();
                listed.sort();
                listed
            },
            origins,
            wildcard,
            allow_headers,
            allow_methods: joined(&format!("{K}.methods"), methods.clone())?,
            methods,
            expose_headers: joined(&format!("{K}.expose_headers"), expose)?,
            supports_credentials: boolean(
                &format!("{K}.supports_credentials"),
                cors.supports_credentials.as_ref(),
                false,
            )?,
            max_age,
            send_wildcard: boolean(
                &format!("{K}.send_wildcard"),
                cors.send_wildcard.as_ref(),
                false,
            )?,
            vary_header: boolean(&format!("{K}.vary_header"), cors.vary_header.as_ref(), true)?,
            always_send: boolean(&format!("{K}.always_send"), cors.always_send.as_ref(), true)?,
        })
    }

    /// The `Access-Control-Allow-Origin` values for a request's `Origin` (none: no CORS
    /// headers at all).
    fn allowed_origins(&self, origin: Option<&str>) -> Vec<String> {
        match origin {
            Some(_) if self.wildcard && self.send_wildcard => vec!["*".into()],
            Some(origin) if self.origins.iter().any(|p| p.matches(origin)) => {
                vec![origin.to_string()]
            }
            Some(_) => Vec::new(),
            None if !self.always_send => Vec::new(),
            None if self.wildcard => {
                if self.supports_credentials {
                    Vec::new()
                } else {
                    vec!["*".into()]
                }
            }
            None => self.listed_origins.clone(),
        }
    }

    /// The CORS headers of the answer to a request (`method`, `request` its headers).
    pub fn headers(&self, method: &Method, request: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        let text = |name: &HeaderName| request.get(name).and_then(|v| v.to_str().ok());
        let origins = self.allowed_origins(text(&header::ORIGIN));
        let mut out = Vec::new();
        for origin in &origins {
            if let Ok(v) = HeaderValue::from_str(origin) {
                out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, v));
            }
        }
        if out.is_empty() {
            return out;
        }
        out.push((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            self.expose_headers.clone(),
        ));
        if self.supports_credentials {
            out.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        let requested_method = text(&header::ACCESS_CONTROL_REQUEST_METHOD)
            .map(str::to_ascii_uppercase)
            .filter(|m| !m.is_empty());
        if *method == Method::OPTIONS && requested_method.is_some_and(|m| self.methods.contains(&m))
        {
            if let Some(allowed) = text(&header::ACCESS_CONTROL_REQUEST_HEADERS)
                .map(|requested| self.allowed_request_headers(requested))
                .filter(|a| !a.is_empty())
                .and_then(|a| HeaderValue::from_str(&a).ok())
            {
                out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, allowed));
            }
            if let Some(max_age) = &self.max_age {
                out.push((header::ACCESS_CONTROL_MAX_AGE, max_age.clone()));
            }
            out.push((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                self.allow_methods.clone(),
            ));
        }
        let echoed = origins.iter().all(|o| o != "*");
        let varies = self.origins.len() > 1
            || origins.len() > 1
            || self.origins.iter().any(Pattern::is_regex);
        if self.vary_header && echoed && varies {
            out.push((header::VARY, HeaderValue::from_static("Origin")));
        }
        out
    }

    /// The requested headers (`Access-Control-Request-Headers`) that `allow_headers` allows,
    /// sorted, as requested.
    fn allowed_request_headers(&self, requested: &str) -> String {
        let mut allowed: Vec<&str> = requested
            .split(',')
            .map(str::trim)
            .filter(|h| self.allow_headers.iter().any(|p| p.matches(h)))
            .collect();
        allowed.sort_unstable();
        allowed.join(", ")
    }
}

/// Middleware: a pre-flight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
/// answered here, 200 without a body, as Flask answers `OPTIONS` itself; every other answer
/// gets its CORS headers. Without a [`CorsPolicy`] in the application's data (`enabled: false`),
/// nothing is added.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(policy) = req.app_data::<web::Data<CorsPolicy>>().cloned() else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let headers = policy.headers(req.method(), req.headers());
    let preflight = *req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if preflight {
        let mut answer = HttpResponse::Ok();
        answer.insert_header((header::ALLOW, policy.allow_methods.clone()));
        req.into_response(answer.finish()).map_into_right_body()
    } else {
        next.call(req).await?.map_into_left_body()
    };
    let response_headers = res.headers_mut();
    for (name, value) in headers {
        response_headers.append(name, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(patch: Value) -> CorsPolicy {
        let mut cors = Cors::default();
        for (k, v) in patch.as_object().unwrap() {
            match k.as_str() {
                "origins" => cors.origins = Some(v.clone()),
                "send_wildcard" => cors.send_wildcard = Some(v.clone()),
                "supports_credentials" => cors.supports_credentials = Some(v.clone()),
                "max_age" => cors.max_age = Some(v.clone()),
                "expose_headers" => cors.expose_headers = Some(v.clone()),
                "methods" => cors.methods = Some(v.clone()),
                "allow_headers" => cors.allow_headers = serde_json::from_value(v.clone()).unwrap(),
                other => panic!("{other}"),
            }
        }
        CorsPolicy::from_config(&cors).unwrap()
    }

    fn answer(p: &CorsPolicy, method: Method, headers: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        p.headers(&method, &map)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_default_echoes_any_origin_and_allows_the_wazo_headers() {
        let p = policy(json!({}));
        let pre = answer(
            &p,
            Method::OPTIONS,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "post"),
                (
                    "access-control-request-headers",
                    "X-Auth-Token, content-type, X-Other, Wazo-Tenant",
                ),
            ],
        );
        assert_eq!(
            get(&pre, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            get(&pre, "access-control-allow-headers"),
            Some("Wazo-Tenant, X-Auth-Token, content-type")
        );
        assert_eq!(
            get(&pre, "access-control-allow-methods"),
            Some("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT")
        );
        assert_eq!(get(&pre, "vary"), Some("Origin"));
        assert_eq!(get(&pre, "access-control-max-age"), None);
        assert_eq!(get(&pre, "access-control-allow-credentials"), None);
        let simple = answer(&p, Method::GET, &[("origin", "http://x")]);
        assert_eq!(
            get(&simple, "access-control-allow-origin"),
            Some("http://x")
        );
        assert_eq!(
            get(&simple, "access-control-expose-headers"),
            Some("Wazo-Sessions-Revoked")
        );
        assert_eq!(get(&simple, "access-control-allow-methods"), None);
        // No Origin: `*` (always_send).
        let none = answer(&p, Method::GET, &[]);
        assert_eq!(get(&none, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&none, "vary"), None);
        // A method not allowed: no pre-flight headers.
        let p = policy(json!({"methods": ["GET"]}));
        let pre = answer(
            &p,
            Method::OPTIONS,
            &[
                ("origin", "http://x"),
                ("access-control-request-method", "PUT"),
            ],
        );
        assert_eq!(get(&pre, "access-control-allow-origin"), Some("http://x"));
        assert_eq!(get(&pre, "access-control-allow-methods"), None);
    }

    #[test]
    fn listed_origins_patterns_and_options() {
        let p = policy(json!({"origins": ["https://Good.example", "https://.*\\.wazo\\.io"]}));
        let allowed = answer(&p, Method::GET, &[("origin", "https://good.example")]);
        assert_eq!(
            get(&allowed, "access-control-allow-origin"),
            Some("https://good.example")
        );
        assert_eq!(get(&allowed, "vary"), Some("Origin"));
        let pattern = answer(&p, Method::GET, &[("origin", "https://a.wazo.io")]);
        assert_eq!(
            get(&pattern, "access-control-allow-origin"),
            Some("https://a.wazo.io")
        );
        assert!(answer(&p, Method::GET, &[("origin", "https://evil.example")]).is_empty());
        assert!(answer(&p, Method::GET, &[("origin", "https://good.example.evil")]).is_empty());
        let none = answer(&p, Method::GET, &[]);
        assert_eq!(
            get(&none, "access-control-allow-origin"),
            Some("https://Good.example")
        );

        let p = policy(json!({"origins": "https://one.example"}));
        let one = answer(&p, Method::GET, &[("origin", "https://one.example")]);
        assert_eq!(get(&one, "vary"), None);

        let p = policy(json!({"send_wildcard": true, "supports_credentials": true,
                              "max_age": 600, "expose_headers": ["X-A"]}));
        let pre = answer(
            &p,
            Method::OPTIONS,
            &[
                ("origin", "http://x"),
                ("access-control-request-method", "GET"),
            ],
        );
        assert_eq!(get(&pre, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&pre, "access-control-allow-credentials"), Some("true"));
        assert_eq!(get(&pre, "access-control-max-age"), Some("600"));
        assert_eq!(
            get(&pre, "access-control-expose-headers"),
            Some("Wazo-Sessions-Revoked, X-A")
        );
        assert_eq!(get(&pre, "access-control-allow-headers"), None);
        assert_eq!(get(&pre, "vary"), None);

        let mut bad = Cors {
            origins: Some(json!(["(unclosed"])),
            ..Cors::default()
        };
        assert_eq!(
            CorsPolicy::from_config(&bad).unwrap_err().key,
            "rest_api.cors.origins"
        );
        bad.origins = Some(json!(5));
        assert!(CorsPolicy::from_config(&bad).is_err());
    }
}
