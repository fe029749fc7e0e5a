//! CORS as the original's `rest_api.cors` (Flask-CORS), done by actix-cors: an allowed origin is
//! answered with itself, pre-flights allow the Wazo headers, `origins` restricts the origins, and
//! a configuration that cannot be used stops the server at startup. Where actix-cors answers
//! otherwise than Flask-CORS without a difference a browser sees (a pre-flight asking for a header
//! not allowed, lists in another order, a request without `Origin`), see the CORS section of
//! docs/compatibility.md.

use wazo_auth_tests::serde_json::json;
use wazo_auth_tests::*;

fn preflight(s: &Server, path: &str, origin: &str, headers: &str) -> Resp {
    s.request(
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", headers),
        ],
        None,
    )
}

fn lower(r: &Resp, name: &str) -> String {
    r.header(name).unwrap_or_default().to_ascii_lowercase()
}

/// A header's comma-separated items, lowercase and sorted (their order means nothing).
fn items(r: &Resp, name: &str) -> Vec<String> {
    let mut items: Vec<String> = lower(r, name)
        .split(',')
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .collect();
    items.sort();
    items
}

#[test]
fn an_allowed_origin_is_answered_with_itself_and_the_wazo_headers_are_allowed() {
    let s = ServerBuilder::new().start();
    let origin = "https://portal.example.com";
    let pre = preflight(
        &s,
        "/0.1/users/00000000-0000-4000-8000-000000000001",
        origin,
        "content-type,x-auth-token,wazo-tenant,wazo-session-type,authorization",
    );
    assert_eq!(pre.status, 200, "{pre:?}");
    assert!(pre.body.is_empty());
    assert_eq!(pre.header("Access-Control-Allow-Origin"), Some(origin));
    assert!(
        items(&pre, "Vary").contains(&"origin".to_string()),
        "{pre:?}"
    );
    assert_eq!(
        items(&pre, "Access-Control-Allow-Headers"),
        [
            "authorization",
            "content-type",
            "wazo-session-type",
            "wazo-tenant",
            "x-auth-token"
        ]
    );
    assert_eq!(
        items(&pre, "Access-Control-Allow-Methods"),
        ["delete", "get", "head", "options", "patch", "post", "put"]
    );
    assert_eq!(pre.header("Access-Control-Allow-Credentials"), None);
    // A header not allowed is not allowed (actix-cors fails the pre-flight, where Flask-CORS
    // allowed the others): the browser does not send the request.
    let pre = preflight(&s, "/0.1/users", origin, "x-auth-token,x-unknown");
    assert!(!items(&pre, "Access-Control-Allow-Headers").contains(&"x-unknown".to_string()));
    assert_eq!(pre.header("Access-Control-Allow-Origin"), None, "{pre:?}");

    // The answers themselves, errors included.
    for (method, path, status) in [("GET", "/0.1/backends", 200), ("GET", "/0.1/users", 401)] {
        let r = s.request(method, path, &[("Origin", origin)], None);
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some(origin),
            "{r:?}"
        );
        assert!(lower(&r, "Access-Control-Expose-Headers").contains("wazo-sessions-revoked"));
    }
    // Without `Origin` (never a browser's cross-origin request): no CORS answer, unlike
    // Flask-CORS's `always_send` (documented difference).
    let r = s.get("/0.1/backends");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

#[test]
fn origins_restrict_the_origins_answered() {
    let s = ServerBuilder::new()
        .config(json!({"rest_api": {"cors": {
            "origins": ["https://portal.example.com", "https://.*\\.wazo\\.example"],
            "allow_headers": ["X-Auth-Token", "Content-Type"],
            "max_age": 600,
            "supports_credentials": true,
        }}}))
        .start();
    for allowed in [
        "https://portal.example.com",
        "https://Portal.Example.com",
        "https://a.wazo.example",
    ] {
        let pre = preflight(&s, "/0.1/token", allowed, "X-Auth-Token");
        assert_eq!(pre.status, 200);
        assert_eq!(pre.header("Access-Control-Allow-Origin"), Some(allowed));
        assert_eq!(
            items(&pre, "Access-Control-Allow-Headers"),
            ["content-type", "x-auth-token"]
        );
        assert_eq!(pre.header("Access-Control-Max-Age"), Some("600"));
        assert_eq!(pre.header("Access-Control-Allow-Credentials"), Some("true"));
        // `Wazo-Tenant` is not in this `allow_headers`: never allowed.
        let pre = preflight(&s, "/0.1/token", allowed, "X-Auth-Token, Wazo-Tenant");
        assert!(!items(&pre, "Access-Control-Allow-Headers").contains(&"wazo-tenant".into()));
    }
    // Another origin gets no CORS header (the browser refuses); the request itself is served.
    let other = "https://evil.example.com";
    let pre = preflight(&s, "/0.1/token", other, "X-Auth-Token");
    assert_eq!(pre.header("Access-Control-Allow-Origin"), None, "{pre:?}");
    assert_eq!(pre.header("Access-Control-Allow-Headers"), None, "{pre:?}");
    let r = s.request("GET", "/0.1/backends", &[("Origin", other)], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

#[test]
fn an_unusable_cors_configuration_stops_the_server() {
    let err = ServerBuilder::new()
        .config(json!({"rest_api": {"cors": {"origins": ["https://(unclosed"]}}}))
        .try_start()
        .err()
        .expect("must not start");
    assert!(err.contains("rest_api.cors.origins"), "{err}");
    let err = ServerBuilder::new()
        .config(json!({"rest_api": {"cors": {"send_wildcard": "yes"}}}))
        .try_start()
        .err()
        .expect("must not start");
    assert!(err.contains("rest_api.cors.send_wildcard"), "{err}");
    // A pattern among the allowed headers: actix-cors only takes header names (or `*`).
    let err = ServerBuilder::new()
        .config(json!({"rest_api": {"cors": {"allow_headers": ["X-Wazo-.*"]}}}))
        .try_start()
        .err()
        .expect("must not start");
    assert!(err.contains("rest_api.cors.allow_headers"), "{err}");
}
