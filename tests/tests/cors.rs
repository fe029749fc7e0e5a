//! CORS as the original's `rest_api.cors` (Flask-CORS): an allowed origin is answered with
//! itself, pre-flights allow the Wazo headers, `origins` restricts the origins, and a
//! configuration that cannot be used stops the server at startup.

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

#[test]
fn an_allowed_origin_is_answered_with_itself_and_the_wazo_headers_are_allowed() {
    let s = ServerBuilder::new().start();
    let origin = "https://portal.example.com";
    let pre = preflight(
        &s,
        "/0.1/users/00000000-0000-4000-8000-000000000001",
        origin,
        "content-type,x-auth-token,wazo-tenant,wazo-session-type,authorization,x-unknown",
    );
    assert_eq!(pre.status, 200, "{pre:?}");
    assert!(pre.body.is_empty());
    assert_eq!(pre.header("Access-Control-Allow-Origin"), Some(origin));
    assert_eq!(lower(&pre, "Vary"), "origin");
    assert_eq!(
        pre.header("Access-Control-Allow-Headers"),
        Some("authorization, content-type, wazo-session-type, wazo-tenant, x-auth-token")
    );
    assert_eq!(
        pre.header("Access-Control-Allow-Methods"),
        Some("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT")
    );
    assert_eq!(pre.header("Access-Control-Allow-Credentials"), None);

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
    // Without `Origin`: `*`, as Flask-CORS's `always_send`.
    let r = s.get("/0.1/backends");
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
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
        let pre = preflight(&s, "/0.1/token", allowed, "X-Auth-Token, Wazo-Tenant");
        assert_eq!(pre.status, 200);
        assert_eq!(pre.header("Access-Control-Allow-Origin"), Some(allowed));
        assert_eq!(
            pre.header("Access-Control-Allow-Headers"),
            Some("X-Auth-Token")
        );
        assert_eq!(pre.header("Access-Control-Max-Age"), Some("600"));
        assert_eq!(pre.header("Access-Control-Allow-Credentials"), Some("true"));
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
}
