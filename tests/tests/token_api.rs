//! Black-box tests of the token API (spec core §0.1, §1.2–1.7, §1.10, §2.1, checklist items
//! 1–47 that apply without users, tenants and refresh tokens): the real binary, the example
//! backend plugin, a fresh PostgreSQL database per server.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

// ------------------------------------------------------------------------------------------------
// Local helpers
// ------------------------------------------------------------------------------------------------

const ALICE_ACL: [&str; 3] = ["confd.#", "auth.users.me.#", "!confd.secret.#"];
const SQL_INJECTION: &str = "' OR 1=1 --";

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Asserts an error body of shape A exactly (`{"reason": [msg], "timestamp": [t],
/// "status_code": n}`) and returns `reason[0]`.
fn shape_a(r: &Resp, status: u16) -> String {
    assert_eq!(r.status, status, "unexpected status; body: {}", r.body);
    let v = r.json();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {}", r.body));
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["reason", "status_code", "timestamp"]),
        "keys of {}",
        r.body
    );
    assert_eq!(v["status_code"], json!(status), "{}", r.body);
    let reason = v["reason"].as_array().expect("reason is a list");
    assert_eq!(reason.len(), 1, "{}", r.body);
    let ts = v["timestamp"].as_array().expect("timestamp is a list");
    assert_eq!(ts.len(), 1, "{}", r.body);
    let t = ts[0].as_f64().expect("timestamp[0] is a number");
    assert!(
        (t - epoch_now()).abs() < 300.0,
        "timestamp {t} is not the current time"
    );
    reason[0]
        .as_str()
        .expect("reason[0] is a string")
        .to_string()
}

/// Asserts an error of shape A with exactly this reason.
fn assert_a(r: &Resp, status: u16, reason: &str) {
    assert_eq!(shape_a(r, status), reason, "{}", r.body);
}

/// Asserts a 401 `Authentication Failed`.
fn assert_401(r: &Resp) {
    assert_a(r, 401, "Authentication Failed");
}

/// Asserts a shape C body `{"message": ...}` (only that key) and returns the message.
fn shape_c(r: &Resp, status: u16) -> String {
    assert_eq!(r.status, status, "unexpected status; body: {}", r.body);
    let v = r.json();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {}", r.body));
    assert_eq!(obj.len(), 1, "shape C has only `message`: {}", r.body);
    v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("message is not a string: {}", r.body))
        .to_string()
}

/// Asserts a 400 "Failed to decode JSON object: ..." (shape C).
fn assert_bad_json(r: &Resp) {
    let m = shape_c(r, 400);
    assert!(
        m.starts_with("Failed to decode JSON object: "),
        "message: {m:?}"
    );
}

/// `POST /0.1/token` with a raw body and alice's credentials.
fn post_token_raw(s: &Server, body: &[u8]) -> Resp {
    let auth = basic("alice", "alice-secret");
    s.request(
        "POST",
        "/0.1/token",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(body),
    )
}

/// `POST /0.1/token` with an arbitrary Authorization header value (or none).
fn post_token_auth(s: &Server, auth: Option<&str>, body: Value) -> Resp {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    s.request(
        "POST",
        "/0.1/token",
        &headers,
        Some(body.to_string().as_bytes()),
    )
}

fn example() -> Value {
    json!({"backend": "example_static"})
}

fn with_example(extra: Value) -> Value {
    let mut body = example();
    merge(&mut body, &extra);
    body
}

fn check_scopes(s: &Server, token: &str, body: &[u8]) -> Resp {
    s.request(
        "POST",
        &format!("/0.1/token/{token}/scopes/check"),
        &[("Content-Type", "application/json")],
        Some(body),
    )
}

/// A successful scopes check; returns the body.
fn scopes_ok(s: &Server, token: &str, body: Value) -> Value {
    let r = check_scopes(s, token, body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{body}: {}", r.body);
    r.json()
}

fn count(db: &str, query: &str) -> i64 {
    let rows = sql(db, query);
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

fn master_tenant(db: &str) -> String {
    let rows = sql(db, "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid");
    assert_eq!(rows.len(), 1, "exactly one top tenant");
    rows[0][0].clone().unwrap()
}

/// The server is still up and still issues tokens.
fn assert_alive(s: &mut Server) {
    assert!(s.is_running(), "server died; log:\n{}", s.log());
    let r = s.login("alice", "alice-secret", example());
    assert_eq!(r.status, 200, "login after bad input failed: {}", r.body);
}

/// Microseconds since the epoch of a naive `YYYY-MM-DDTHH:MM:SS[.ffffff]` timestamp; panics on
/// any other format.
fn parse_ts(s: &str) -> i64 {
    let b = s.as_bytes();
    assert!(
        b.len() == 19 || (b.len() == 26 && b[19] == b'.'),
        "bad timestamp format: {s:?}"
    );
    assert!(
        b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':',
        "bad timestamp format: {s:?}"
    );
    let num = |from: usize, to: usize| -> i64 {
        let part = &s[from..to];
        assert!(
            part.bytes().all(|c| c.is_ascii_digit()),
            "bad timestamp format: {s:?}"
        );
        part.parse().unwrap()
    };
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (hh, mm, ss) = (num(11, 13), num(14, 16), num(17, 19));
    let frac = if b.len() == 26 { num(20, 26) } else { 0 };
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    ((days * 86400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + frac
}

/// Asserts the exact key set of a token representation (spec §1.4, no `refresh_token`).
fn assert_token_keys(data: &Value) {
    let keys: BTreeSet<&str> = data
        .as_object()
        .expect("data is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "acl",
            "auth_id",
            "expires_at",
            "issued_at",
            "metadata",
            "remote_addr",
            "session_uuid",
            "token",
            "user_agent",
            "utc_expires_at",
            "utc_issued_at",
            "xivo_user_uuid",
            "xivo_uuid",
        ]),
        "token keys: {data}"
    );
}

/// utc_expires_at − utc_issued_at, in microseconds.
fn utc_lifetime_us(data: &Value) -> i64 {
    parse_ts(data["utc_expires_at"].as_str().unwrap())
        - parse_ts(data["utc_issued_at"].as_str().unwrap())
}

fn assert_lifetime(data: &Value, seconds: i64) {
    let got = utc_lifetime_us(data);
    assert!(
        (got - seconds * 1_000_000).abs() <= 2,
        "lifetime {got} µs, expected {seconds} s: {data}"
    );
    let local = parse_ts(data["expires_at"].as_str().unwrap())
        - parse_ts(data["issued_at"].as_str().unwrap());
    assert!(
        (local - seconds * 1_000_000).abs() <= 2,
        "local lifetime {local} µs, expected {seconds} s: {data}"
    );
}

/// A raw HTTP/1.1 exchange (for requests `ureq` cannot make, e.g. without a User-Agent).
fn raw_http(s: &Server, request: &[u8]) -> Resp {
    let addr = s.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = String::from_utf8_lossy(&raw[split + 4..]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body,
    }
}

// ------------------------------------------------------------------------------------------------
// POST /0.1/token: success
// ------------------------------------------------------------------------------------------------

#[test]
fn login_success_body_shape_lifetimes_and_client_info() {
    let s = ServerBuilder::new().start();

    // Shape of the response (spec §1.4) and headers (§1.3 step 5).
    let r = s.request(
        "POST",
        "/0.1/token",
        &[
            ("Authorization", &basic("alice", "alice-secret")),
            ("User-Agent", "token-api-test/1.0 (x; y)"),
        ],
        Some(br#"{"backend": "example_static"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Wazo-Sessions-Revoked"), Some("0"));
    let v = r.json();
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["data"]
    );
    let data = &v["data"];
    assert_token_keys(data);
    let token = data["token"].as_str().unwrap().to_string();
    let parsed = uuid::Uuid::parse_str(&token).expect("token is a UUID");
    assert_eq!(parsed.get_version_num(), 4, "token is a UUID v4");
    assert_eq!(
        parsed.hyphenated().to_string(),
        token,
        "canonical lower-case"
    );
    assert_eq!(data["auth_id"], "alice");
    assert_eq!(data["xivo_user_uuid"], Value::Null);
    if std::env::var_os("XIVO_UUID").is_none() {
        assert_eq!(data["xivo_uuid"], Value::Null);
    }
    assert_eq!(data["acl"], json!(ALICE_ACL));
    assert_eq!(data["metadata"]["auth_id"], "alice");
    assert_eq!(data["metadata"]["uuid"], "alice");
    assert_eq!(data["metadata"]["username"], "alice");
    assert_eq!(data["metadata"]["purpose"], "user");
    assert_eq!(data["remote_addr"], "127.0.0.1");
    assert_eq!(data["user_agent"], "token-api-test/1.0 (x; y)");
    let session = data["session_uuid"].as_str().unwrap().to_string();
    uuid::Uuid::parse_str(&session).expect("session_uuid is a UUID");
    assert_ne!(session, token);
    // The UTC fields always carry 6 fractional digits; issued_at is now.
    let utc_issued = data["utc_issued_at"].as_str().unwrap();
    assert_eq!(utc_issued.len(), 26, "{utc_issued}");
    assert_eq!(data["utc_expires_at"].as_str().unwrap().len(), 26);
    let issued_s = parse_ts(utc_issued) as f64 / 1e6;
    assert!((issued_s - epoch_now()).abs() < 60.0, "issued {issued_s}");
    // The harness runs the server with TZ=UTC: local = UTC.
    assert_eq!(
        parse_ts(data["issued_at"].as_str().unwrap()),
        parse_ts(utc_issued)
    );
    // Default lifetime 7200 s.
    assert_lifetime(data, 7200);
    // The session exists, is not mobile and belongs to the top tenant.
    let rows = sql(
        &s.db,
        &format!("SELECT mobile, tenant_uuid FROM auth_session WHERE uuid = '{session}'"),
    );
    assert_eq!(
        rows,
        vec![vec![Some("f".to_string()), Some(master_tenant(&s.db))]]
    );

    // GET returns the same representation, user agent included.
    let g = s.get(&format!("/0.1/token/{token}"));
    assert_eq!(g.status, 200, "{}", g.body);
    let gd = &g.json()["data"];
    assert_token_keys(gd);
    for k in [
        "token",
        "auth_id",
        "xivo_user_uuid",
        "xivo_uuid",
        "acl",
        "metadata",
        "session_uuid",
        "remote_addr",
        "user_agent",
    ] {
        assert_eq!(gd[k], data[k], "GET {k}");
    }
    assert_eq!(gd["user_agent"], "token-api-test/1.0 (x; y)");
    assert!(
        (utc_lifetime_us(gd) - 7200 * 1_000_000).abs() <= 1_000_000,
        "GET lifetime: {gd}"
    );

    // expiration: 2 ⇒ 2 s (checklist 8); "10" ⇒ 10 s; 1.5 ⇒ 1 s (truncated).
    for (exp, secs) in [(json!(2), 2), (json!("10"), 10), (json!(1.5), 1)] {
        let r = s.login(
            "alice",
            "alice-secret",
            with_example(json!({"expiration": exp})),
        );
        assert_eq!(r.status, 200, "expiration {exp}: {}", r.body);
        assert_lifetime(&r.json()["data"], secs);
    }

    // No User-Agent at all ⇒ "" (raw request: ureq always sends one).
    let body = br#"{"backend": "example_static"}"#;
    let mut req = format!(
        "POST /0.1/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        basic("alice", "alice-secret"),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let r = raw_http(&s, &req);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["user_agent"], "");

    // X-Forwarded-For with num_proxies 1 (default): the last hop is the client.
    for (xff, expected) in [
        ("203.0.113.5", "203.0.113.5"),
        ("10.0.0.1, 192.0.2.7", "192.0.2.7"),
        ("10.0.0.1,10.0.0.2,  198.51.100.9", "198.51.100.9"),
    ] {
        let r = s.request(
            "POST",
            "/0.1/token",
            &[
                ("Authorization", &basic("alice", "alice-secret")),
                ("X-Forwarded-For", xff),
            ],
            Some(body),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let d = &r.json()["data"];
        assert_eq!(d["remote_addr"], expected, "X-Forwarded-For: {xff}");
        let t = d["token"].as_str().unwrap();
        let g = s.get(&format!("/0.1/token/{t}"));
        assert_eq!(g.json()["data"]["remote_addr"], expected, "stored");
    }

    // Wazo-Session-Type compared case-insensitively to "mobile" (checklist 22).
    for (kind, mobile) in [("MoBiLe", "t"), ("mobile", "t"), ("desktop", "f")] {
        let r = s.request(
            "POST",
            "/0.1/token",
            &[
                ("Authorization", &basic("alice", "alice-secret")),
                ("Wazo-Session-Type", kind),
            ],
            Some(body),
        );
        assert_eq!(r.status, 200, "{kind}: {}", r.body);
        let sid = r.json()["data"]["session_uuid"]
            .as_str()
            .unwrap()
            .to_string();
        let rows = sql(
            &s.db,
            &format!("SELECT mobile FROM auth_session WHERE uuid = '{sid}'"),
        );
        assert_eq!(rows, vec![vec![Some(mobile.to_string())]], "{kind}");
    }

    // Every login made a distinct token and a distinct session.
    let tokens = count(&s.db, "SELECT count(*) FROM auth_token");
    let sessions = count(&s.db, "SELECT count(DISTINCT session_uuid) FROM auth_token");
    assert_eq!(tokens, 11);
    assert_eq!(sessions, 11);
}

#[test]
fn xivo_uuid_from_environment_timezone_and_num_proxies() {
    let xivo = "7d9f4a2e-1b3c-4d5e-8f60-718293a4b5c6";
    let s = ServerBuilder::new()
        .env("XIVO_UUID", xivo)
        // POSIX TZ: local time = UTC − 1 h (as the original's integration tests).
        .env("TZ", "UTC+1")
        .config(json!({"rest_api": {"num_proxies": 2, "max_body_bytes": 2048}}))
        .start();
    let r = s.request(
        "POST",
        "/0.1/token",
        &[
            ("Authorization", &basic("alice", "alice-secret")),
            ("X-Forwarded-For", "192.0.2.1, 192.0.2.2, 192.0.2.3"),
        ],
        Some(br#"{"backend": "example_static", "expiration": 2}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let data = &r.json()["data"];
    assert_eq!(data["xivo_uuid"], xivo, "checklist 9");
    // num_proxies 2: the second hop from the right.
    assert_eq!(data["remote_addr"], "192.0.2.2");
    // Checklist 8: both differences are 2 s, utc − local = the TZ offset (+1 h).
    assert_lifetime(data, 2);
    let offset = parse_ts(data["utc_issued_at"].as_str().unwrap())
        - parse_ts(data["issued_at"].as_str().unwrap());
    assert_eq!(offset, 3_600_000_000, "utc − local: {data}");
    let token = data["token"].as_str().unwrap();
    let g = s.get(&format!("/0.1/token/{token}"));
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.json()["data"]["xivo_uuid"], xivo);

    // rest_api.max_body_bytes is honoured: 2048 bytes pass, 2049 do not.
    let padded = |len: usize| {
        let mut body = br#"{"backend": "example_static", "pad": ""#.to_vec();
        body.extend(std::iter::repeat_n(b'a', len - body.len() - 2));
        body.extend_from_slice(b"\"}");
        assert_eq!(body.len(), len);
        body
    };
    let r = post_token_raw(&s, &padded(2048));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post_token_raw(&s, &padded(2049));
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["message"].is_string(), "{}", r.body);
    let r = check_scopes(&s, token, &padded(4096));
    assert_eq!(r.status, 413, "{}", r.body);
}

// ------------------------------------------------------------------------------------------------
// POST /0.1/token: authentication
// ------------------------------------------------------------------------------------------------

#[test]
fn authentication_failures_and_credential_encodings() {
    let mut s = ServerBuilder::new().start();
    let b = example();

    // Wrong password, unknown user (checklist 2, 3).
    assert_401(&s.login("alice", "wrong", b.clone()));
    assert_401(&s.login("alice", "Alice-secret", b.clone()));
    assert_401(&s.login("nobody", "alice-secret", b.clone()));
    // No Authorization header.
    assert_401(&post_token_auth(&s, None, b.clone()));
    // The prefix is the exact, case-sensitive `Basic `.
    let good = basic("alice", "alice-secret");
    let encoded = good.strip_prefix("Basic ").unwrap();
    for header in [
        format!("basic {encoded}"),
        format!("BASIC {encoded}"),
        format!("Bearer {encoded}"),
        encoded.to_string(),
    ] {
        assert_401(&post_token_auth(&s, Some(&header), b.clone()));
    }
    // Empty login or password, no colon at all.
    assert_401(&post_token_auth(
        &s,
        Some(&basic("", "alice-secret")),
        b.clone(),
    ));
    assert_401(&post_token_auth(&s, Some(&basic("alice", "")), b.clone()));
    assert_401(&post_token_auth(&s, Some(&basic_bytes(b":")), b.clone()));
    assert_401(&post_token_auth(
        &s,
        Some(&basic_bytes(b"alicealice-secret")),
        b.clone(),
    ));
    assert_401(&post_token_auth(&s, Some("Basic "), b.clone()));
    // Invalid base64 (the original answers 500: we 401).
    for header in ["Basic !!!notbase64", "Basic ====", "Basic ###"] {
        assert_401(&post_token_auth(&s, Some(header), b.clone()));
    }
    // Non-ASCII bytes in the header itself (raw request: ureq refuses to send them).
    for header in [&b"Basic \xe9\xe9\xe9\xe9"[..], "Basic é".as_bytes()] {
        let body = br#"{"backend": "example_static"}"#;
        let mut req = format!(
            "POST /0.1/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
             Connection: close\r\nAuthorization: ",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(header);
        req.extend_from_slice(b"\r\n\r\n");
        req.extend_from_slice(body);
        assert_401(&raw_http(&s, &req));
    }
    // SQL metacharacters never reach SQL unescaped: 401, never 500.
    assert_401(&s.login(SQL_INJECTION, SQL_INJECTION, b.clone()));
    assert_401(&s.login("alice", SQL_INJECTION, b.clone()));
    assert_401(&s.login("alice'; DROP TABLE auth_token; --", "x", b.clone()));
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_token"), 0);
    assert_alive(&mut s);

    // UTF-8 credentials (checklist 11).
    let r = s.login("éric", "pépé€", b.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["auth_id"], "éric");
    assert_eq!(r.json()["data"]["acl"], json!(["unicode.#"]));
    // Latin-1 bytes that are not UTF-8 decode as Latin-1.
    let r = post_token_auth(&s, Some(&basic_bytes(b"latin:p\xe9p\xe9")), b.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["auth_id"], "latin");
    // ...and the same password sent as UTF-8 works too.
    let r = s.login("latin", "pépé", b.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    // Latin-1 of a password that needs UTF-8 (€ is not Latin-1) does not match.
    assert_401(&post_token_auth(
        &s,
        Some(&basic_bytes(b"\xe9ric:p\xe9p\xe9")),
        b.clone(),
    ));
    // Split on the first colon: the password may contain colons and spaces.
    let r = s.login("bob", "bob pass:with colon", b.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["auth_id"], "bob");
    assert_eq!(r.json()["data"]["acl"], json!([]));
    assert_401(&s.login("bob", "bob pass", b.clone()));
    assert_401(&post_token_auth(
        &s,
        Some(&basic_bytes(b"bob pass:with colon")),
        b.clone(),
    ));
    // Credentials are never read from the JSON body.
    assert_401(&post_token_auth(
        &s,
        None,
        json!({"backend": "example_static", "login": "alice", "password": "alice-secret",
               "username": "alice"}),
    ));
    assert_alive(&mut s);
}

#[test]
fn backend_selection_and_service_routes() {
    let mut s = ServerBuilder::new().start();

    // `backend` omitted ⇒ the default backend `wazo_user`, which is not enabled here ⇒ 401.
    assert_401(&s.login("alice", "alice-secret", json!({})));
    assert_401(&s.login("alice", "alice-secret", json!({"expiration": 60})));
    // Named and enabled ⇒ that backend.
    assert_eq!(s.login("alice", "alice-secret", example()).status, 200);
    // An unknown backend name falls back to the default backend (checklist 30: with wazo_user
    // enabled this would be a 200); wazo_user is absent here, hence 401.
    assert_401(&s.login(
        "alice",
        "alice-secret",
        json!({"backend": "no_such_backend"}),
    ));
    // A disabled built-in backend is not used either.
    assert_401(&s.login("alice", "alice-secret", json!({"backend": "ldap_user"})));
    // SQL metacharacters in the backend name.
    assert_401(&s.login("alice", "alice-secret", json!({"backend": SQL_INJECTION})));
    // `backend` must be a string.
    let reason = shape_a(
        &s.login("alice", "alice-secret", json!({"backend": 3})),
        400,
    );
    assert!(reason.contains("'backend'"), "{reason}");

    // GET /0.1/backends (checklist 73).
    let r = s.get("/0.1/backends");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"data": ["example_static"]}));

    // HEAD /0.1/status ⇒ 200 (checklist 76); GET ⇒ 405 shape C.
    let r = s.request("HEAD", "/0.1/status", &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "");
    let m = shape_c(&s.get("/0.1/status"), 405);
    assert_eq!(m, "The method is not allowed for the requested URL.");
    // Other wrong methods on existing routes.
    let m = shape_c(&s.get("/0.1/token"), 405);
    assert_eq!(m, "The method is not allowed for the requested URL.");
    shape_c(&s.request("PUT", "/0.1/token", &[], Some(b"{}")), 405);
    shape_c(
        &s.request(
            "GET",
            "/0.1/token/0123abcd-1111-4222-8333-444455556666/scopes/check",
            &[],
            None,
        ),
        405,
    );
    shape_c(&s.request("POST", "/0.1/backends", &[], Some(b"{}")), 405);
    // Unknown URLs ⇒ 404 JSON.
    for path in ["/0.1/nope", "/0.2/token", "/", "/0.1/token/a/b/c"] {
        let r = s.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(r.json()["message"].is_string(), "{path}: {}", r.body);
    }
    assert_alive(&mut s);
}

// ------------------------------------------------------------------------------------------------
// POST /0.1/token: body validation
// ------------------------------------------------------------------------------------------------

#[test]
fn body_validation() {
    let mut s = ServerBuilder::new().start();

    // Empty, non-JSON and non-UTF-8 bodies ⇒ 400 shape C (checklist 6, 46).
    assert_bad_json(&post_token_raw(&s, b""));
    assert_bad_json(&s.request(
        "POST",
        "/0.1/token",
        &[("Authorization", &basic("alice", "alice-secret"))],
        None,
    ));
    assert_bad_json(&post_token_raw(&s, b"{not json"));
    assert_bad_json(&post_token_raw(&s, b"{\"backend\": \"example_static\""));
    assert_bad_json(&post_token_raw(&s, b"{\"backend\": \"ex\xffample\"}"));
    assert_bad_json(&post_token_raw(&s, b"\xff\xfe"));
    assert_alive(&mut s);

    // Non-object JSON ⇒ 400 shape A.
    for body in [&b"[1]"[..], b"\"x\"", b"42", b"true", b"[{}]"] {
        let reason = shape_a(&post_token_raw(&s, body), 400);
        assert!(
            reason.contains("_schema"),
            "{}: {reason}",
            String::from_utf8_lossy(body)
        );
    }
    // null / [] / {} are read as {} (⇒ default backend ⇒ 401 here, not 400).
    for body in [&b"null"[..], b"[]", b"{}"] {
        assert_401(&post_token_raw(&s, body));
    }
    assert_alive(&mut s);

    // expiration (checklist 7).
    for raw in [
        r#""string""#,
        "-1",
        "0",
        "0.5",
        "315360001",
        "9999999999999999999999",
        "1e300",
        "true",
        "false",
        r#""1.5""#,
        r#""""#,
        "null",
        "[10]",
        "{}",
    ] {
        let body = format!(r#"{{"backend": "example_static", "expiration": {raw}}}"#);
        let reason = shape_a(&post_token_raw(&s, body.as_bytes()), 400);
        assert!(reason.contains("'expiration'"), "{raw}: {reason}");
    }
    // Bounds: 1 and 315360000 (10 years) are accepted.
    for (raw, secs) in [("1", 1), ("315360000", 315_360_000), (r#""10""#, 10)] {
        let body = format!(r#"{{"backend": "example_static", "expiration": {raw}}}"#);
        let r = post_token_raw(&s, body.as_bytes());
        assert_eq!(r.status, 200, "{raw}: {}", r.body);
        assert_lifetime(&r.json()["data"], secs);
    }
    assert_alive(&mut s);

    // Other field types.
    for (body, field) in [
        (json!({"access_type": "sometimes"}), "'access_type'"),
        (json!({"access_type": 1}), "'access_type'"),
        (json!({"client_id": ""}), "'client_id'"),
        (json!({"client_id": "x".repeat(1025)}), "'client_id'"),
        (json!({"client_id": 5}), "'client_id'"),
        (json!({"saml_session_id": ""}), "'saml_session_id'"),
        (json!({"tenant_id": 5}), "'tenant_id'"),
        (json!({"domain_name": ["a"]}), "'domain_name'"),
        (json!({"refresh_token": null}), "'refresh_token'"),
    ] {
        let reason = shape_a(
            &s.login("alice", "alice-secret", with_example(body.clone())),
            400,
        );
        assert!(reason.contains(field), "{body}: {reason}");
    }

    // Cross-field rules (checklist 17): 400 shape A with a `_schema` error.
    for body in [
        json!({"access_type": "offline"}),
        json!({"refresh_token": "r"}),
        json!({"refresh_token": "r", "client_id": "c", "access_type": "offline"}),
        json!({"tenant_id": "t", "domain_name": "d"}),
        json!({"saml_session_id": "s", "refresh_token": "r", "client_id": "c"}),
    ] {
        let reason = shape_a(
            &s.login("alice", "alice-secret", with_example(body.clone())),
            400,
        );
        assert!(reason.starts_with("{'_schema': ["), "{body}: {reason}");
    }
    // Validation comes before authentication: same 400 without credentials.
    let reason = shape_a(
        &post_token_auth(&s, None, json!({"access_type": "offline"})),
        400,
    );
    assert!(reason.contains("_schema"), "{reason}");

    // Offline access with a client_id for a backend whose users are not wazo-auth users (the
    // example backend): refresh tokens need a user ⇒ 400, nothing stored.
    let sessions_before = count(&s.db, "SELECT count(*) FROM auth_session");
    let r = s.login(
        "alice",
        "alice-secret",
        with_example(json!({"access_type": "offline", "client_id": "my-client"})),
    );
    let reason = shape_a(&r, 400);
    assert!(reason.contains("offline access"), "{reason}");
    assert_eq!(
        count(&s.db, "SELECT count(*) FROM auth_session"),
        sessions_before
    );
    // access_type online is the default and explicit online is fine.
    let r = s.login(
        "alice",
        "alice-secret",
        with_example(json!({"access_type": "online"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["data"].get("refresh_token").is_none());

    // Unknown fields are ignored.
    let r = s.login(
        "alice",
        "alice-secret",
        with_example(json!({"whatever": [1, 2], "acl": ["#"], "auth_id": "root",
                            "metadata": {"x": 1}})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.json()["data"];
    assert_eq!(d["acl"], json!(ALICE_ACL));
    assert_eq!(d["auth_id"], "alice");
    assert!(d["metadata"].get("x").is_none());

    // SQL metacharacters in body strings.
    let r = s.login(
        "alice",
        "alice-secret",
        with_example(json!({"tenant_id": SQL_INJECTION})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_alive(&mut s);

    // Body over max_body_bytes (1 MiB) ⇒ 413 with a JSON body.
    let mut big = br#"{"backend": "example_static", "pad": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend_from_slice(b"\"}");
    let r = post_token_raw(&s, &big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["message"].is_string(), "{}", r.body);
    // Just under the limit is read (and here accepted).
    let mut under = br#"{"backend": "example_static", "pad": ""#.to_vec();
    under.extend(std::iter::repeat_n(b'a', 65536 - under.len() - 2));
    under.extend_from_slice(b"\"}");
    assert_eq!(under.len(), 65536);
    let r = post_token_raw(&s, &under);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_alive(&mut s);
}

// ------------------------------------------------------------------------------------------------
// GET / HEAD /0.1/token/{t}
// ------------------------------------------------------------------------------------------------

#[test]
fn token_read_scope_and_tenant_checks() {
    let mut s = ServerBuilder::new().start();
    let token = s.alice_token(json!({}));
    let path = format!("/0.1/token/{token}");
    let head = |p: &str| s.request("HEAD", p, &[], None);

    // Valid: GET 200 {"data": ...}, HEAD 204 with no body (checklist 31, 32).
    let g = s.get(&path);
    assert_eq!(g.status, 200, "{}", g.body);
    let v = g.json();
    assert_eq!(v.as_object().unwrap().len(), 1, "{}", g.body);
    assert_token_keys(&v["data"]);
    assert_eq!(v["data"]["token"], token.as_str());
    assert_eq!(v["data"]["auth_id"], "alice");
    assert_eq!(v["data"]["acl"], json!(ALICE_ACL));
    assert_eq!(v["data"]["metadata"]["pbx_user_uuid"], Value::Null);
    let h = head(&path);
    assert_eq!(h.status, 204);
    assert_eq!(h.body, "");

    // Upper-case UUID in the path.
    let upper = format!("/0.1/token/{}", token.to_uppercase());
    let g = s.get(&upper);
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.json()["data"]["token"], token.as_str(), "normalised");
    assert_eq!(head(&upper).status, 204);

    // Scopes (checklist 33, 34; ACL semantics §2.1).
    for scope in [
        "confd.users.read",
        "confd.",
        "auth.users.me.tokens.read",
        // `me` in a grant also matches the token's auth_id.
        "auth.users.alice.tokens.read",
        "auth.users.alice.x.y.z",
    ] {
        let q = format!("{path}?scope={scope}");
        assert_eq!(s.get(&q).status, 200, "GET {scope}");
        assert_eq!(head(&q).status, 204, "HEAD {scope}");
    }
    for scope in [
        "confd",
        "foo",
        // Negative entries win.
        "confd.secret.x",
        "confd.secret.",
        "auth.users.bob.x",
        "auth.users.alice",
        "Confd.users.read",
        "auth.users.me",
    ] {
        let q = format!("{path}?scope={scope}");
        assert_a(&s.get(&q), 403, &format!("Unauthorized for {scope}"));
        let h = head(&q);
        assert_eq!(h.status, 403, "HEAD {scope}");
    }
    // An empty scope is a scope (only an absent one is "no scope"): nothing grants "".
    assert_a(&s.get(&format!("{path}?scope=")), 403, "Unauthorized for ");
    // Only the first `scope` parameter counts.
    assert_eq!(
        s.get(&format!("{path}?scope=confd.x&scope=foo")).status,
        200
    );
    assert_a(
        &s.get(&format!("{path}?scope=foo&scope=confd.x")),
        403,
        "Unauthorized for foo",
    );
    // Transliteration to ASCII in the reason.
    assert_a(
        &s.get(&format!("{path}?scope=%C3%A9ric")),
        403,
        "Unauthorized for eric",
    );
    // The required string is literal: `#` / `*` in the scope have no wildcard meaning.
    assert_a(
        &s.get(&format!("{path}?scope=%23")),
        403,
        "Unauthorized for #",
    );
    // But `confd.#` does grant the literal `confd.#`.
    assert_eq!(s.get(&format!("{path}?scope=confd.%23")).status, 200);
    // SQL metacharacters in the scope.
    assert_a(
        &s.get(&format!("{path}?scope=%27%20OR%201%3D1%20--")),
        403,
        "Unauthorized for ' OR 1=1 --",
    );
    // A token without any ACL: no scope ⇒ valid, any scope ⇒ 403.
    let r = s.login("bob", "bob pass:with colon", example());
    let bob = r.json()["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(head(&format!("/0.1/token/{bob}")).status, 204);
    assert_a(
        &s.get(&format!("/0.1/token/{bob}?scope=confd")),
        403,
        "Unauthorized for confd",
    );

    // Unknown token ⇒ 404 shape A `No such token`.
    let unknown = format!("/0.1/token/{}", uuid::Uuid::new_v4());
    assert_a(&s.get(&unknown), 404, "No such token");
    let h = head(&unknown);
    assert_eq!(h.status, 404);
    assert_eq!(h.body, "");
    assert_a(
        &s.get(&format!("{unknown}?scope=confd.users.read")),
        404,
        "No such token",
    );
    // Non-UUID paths ⇒ 404 with a JSON body (the original: an HTML page).
    let dashless = token.replace('-', "");
    for segment in [
        "not-a-uuid".to_string(),
        dashless,
        format!("{{{token}}}"),
        format!("{token}0"),
        format!("urn:uuid:{token}"),
        format!("{}g", &token[..35]),
        "%27%20OR%201%3D1%20--".to_string(),
    ] {
        let r = s.get(&format!("/0.1/token/{segment}"));
        assert_eq!(r.status, 404, "{segment}: {}", r.body);
        assert!(r.json().is_object(), "{segment}: {}", r.body);
        assert_eq!(head(&format!("/0.1/token/{segment}")).status, 404);
    }

    // Tenants (checklist 35): the example backend's users live in the top tenant.
    let master = master_tenant(&s.db);
    let q = format!("{path}?tenant={master}");
    assert_eq!(s.get(&q).status, 200);
    assert_eq!(head(&q).status, 204);
    let other = uuid::Uuid::new_v4().to_string();
    let q = format!("{path}?tenant={other}");
    assert_a(&s.get(&q), 403, &format!("Unauthorized for tenant {other}"));
    assert_eq!(head(&q).status, 403);
    assert_a(
        &s.get(&format!("{path}?tenant=not-a-tenant")),
        403,
        "Unauthorized for tenant not-a-tenant",
    );
    // scope and tenant together: both must pass.
    assert_eq!(
        s.get(&format!("{path}?scope=confd.x&tenant={master}"))
            .status,
        200
    );
    assert_eq!(
        s.get(&format!("{path}?scope=foo&tenant={master}")).status,
        403
    );
    assert_eq!(
        s.get(&format!("{path}?scope=confd.x&tenant={other}"))
            .status,
        403
    );
    // Still valid after all that.
    assert_eq!(head(&path).status, 204);
    assert_alive(&mut s);
}

/// A NUL byte in a tenant or an offline client id never reaches PostgreSQL (which refuses it):
/// the tenant is nobody's (403), the client id is not a valid string (400); never a 503.
#[test]
fn nul_in_a_tenant_or_an_offline_client_id_is_refused_without_the_database() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let token = s.alice_token(json!({}));
    let path = format!("/0.1/token/{token}?tenant=%00");
    let g = s.get(&path);
    assert_eq!(g.status, 403, "{}", g.body);
    assert!(
        shape_a(&g, 403).starts_with("Unauthorized for tenant"),
        "{}",
        g.body
    );
    assert_eq!(s.request("HEAD", &path, &[], None).status, 403);
    let r = check_scopes(
        &s,
        &token,
        br#"{"scopes": ["confd.users.read"], "tenant_uuid": "\u0000"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let admin = s.admin_token();
    s.create_user(&admin, "nul-client", "pw", None);
    let r = s.login(
        "nul-client",
        "pw",
        json!({"access_type": "offline", "client_id": "a\u{0}"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(shape_a(&r, 400).contains("client_id"), "{}", r.body);
    // The same login without the NUL works (the server is fine).
    let r = s.login(
        "nul-client",
        "pw",
        json!({"access_type": "offline", "client_id": "a"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn expired_tokens_are_rejected_before_the_purge() {
    // Purge disabled: the rows stay, the API must still refuse them.
    let s = ServerBuilder::new()
        .config(json!({"token_cleanup_interval": 0}))
        .start();
    let expired = s.alice_token(json!({"expiration": 1}));
    let alive = s.alice_token(json!({"expiration": 3600}));
    std::thread::sleep(Duration::from_millis(1600));
    let path = format!("/0.1/token/{expired}");
    assert_a(&s.get(&path), 404, "No such token");
    let h = s.request("HEAD", &path, &[], None);
    assert_eq!(h.status, 404);
    assert_eq!(h.body, "");
    assert_a(
        &s.get(&format!("{path}?scope=confd.x")),
        404,
        "No such token",
    );
    assert_a(
        &check_scopes(&s, &expired, br#"{"scopes": ["confd.x"]}"#),
        404,
        "No such token",
    );
    // Not purged: it is still in the database.
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_token"), 2);
    assert_eq!(
        s.request("HEAD", &format!("/0.1/token/{alive}"), &[], None)
            .status,
        204
    );
    // Deleting an expired token is still a success, and removes it.
    let r = s.request("DELETE", &path, &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_token"), 1);
}

// ------------------------------------------------------------------------------------------------
// DELETE /0.1/token/{t}
// ------------------------------------------------------------------------------------------------

#[test]
fn delete_token() {
    let mut s = ServerBuilder::new().start();
    let token = s.alice_token(json!({}));
    let other = s.alice_token(json!({}));
    let path = format!("/0.1/token/{token}");
    let session = s.get(&path).json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let in_sessions = |sid: &str| {
        count(
            &s.db,
            &format!("SELECT count(*) FROM auth_session WHERE uuid = '{sid}'"),
        )
    };
    assert_eq!(in_sessions(&session), 1);

    // Checklist 36, 37.
    let r = s.request("DELETE", &path, &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"data": {"message": "success"}}));
    assert_a(&s.get(&path), 404, "No such token");
    assert_eq!(s.request("HEAD", &path, &[], None).status, 404);
    assert_eq!(in_sessions(&session), 0, "session removed");
    // Again, and an unknown uuid: still 200.
    let r = s.request("DELETE", &path, &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"data": {"message": "success"}}));
    let r = s.request(
        "DELETE",
        &format!("/0.1/token/{}", uuid::Uuid::new_v4()),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"data": {"message": "success"}}));
    // The other token is untouched.
    assert_eq!(
        s.request("HEAD", &format!("/0.1/token/{other}"), &[], None)
            .status,
        204
    );
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_token"), 1);
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_session"), 1);
    // Upper-case path deletes too.
    let r = s.request(
        "DELETE",
        &format!("/0.1/token/{}", other.to_uppercase()),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.request("HEAD", &format!("/0.1/token/{other}"), &[], None)
            .status,
        404
    );
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_token"), 0);
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_session"), 0);
    // A non-UUID path is not a token: 404 JSON.
    let r = s.request("DELETE", "/0.1/token/not-a-uuid", &[], None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.json().is_object());
    assert_alive(&mut s);
}

// ------------------------------------------------------------------------------------------------
// POST /0.1/token/{t}/scopes/check
// ------------------------------------------------------------------------------------------------

#[test]
fn scopes_check() {
    let mut s = ServerBuilder::new().start();
    let alice = s.alice_token(json!({}));
    let r = s.login("bob", "bob pass:with colon", example());
    let bob = r.json()["data"]["token"].as_str().unwrap().to_string();

    // Checklist 41: no grants.
    assert_eq!(
        scopes_ok(&s, &bob, json!({"scopes": ["confd", "foo", "bar"]})),
        json!({"scopes": {"confd": false, "foo": false, "bar": false}})
    );
    // Checklist 42 adapted: a grant for one of them.
    assert_eq!(
        scopes_ok(&s, &alice, json!({"scopes": ["confd.users.read", "bar"]})),
        json!({"scopes": {"confd.users.read": true, "bar": false}})
    );
    // Checklist 43 adapted (`auth.users.me.#`, auth_id alice) plus the negative entry.
    assert_eq!(
        scopes_ok(
            &s,
            &alice,
            json!({"scopes": [
                "auth.users.me.123",
                "auth.users.alice.some_resource",
                "auth.users.bob.some_resource",
                "fire.the.missiles",
                "confd.secret.x",
                "confd.public.x",
            ]})
        ),
        json!({"scopes": {
            "auth.users.me.123": true,
            "auth.users.alice.some_resource": true,
            "auth.users.bob.some_resource": false,
            "fire.the.missiles": false,
            "confd.secret.x": false,
            "confd.public.x": true,
        }})
    );
    // Duplicates collapse; `[]` ⇒ `{}` (checklist 44).
    assert_eq!(
        scopes_ok(&s, &alice, json!({"scopes": ["confd.a", "confd.a", "x"]})),
        json!({"scopes": {"confd.a": true, "x": false}})
    );
    assert_eq!(
        scopes_ok(&s, &alice, json!({"scopes": []})),
        json!({"scopes": {}})
    );
    // Unicode scopes are keys as given.
    assert_eq!(
        scopes_ok(&s, &alice, json!({"scopes": ["éric", "confd.é"]})),
        json!({"scopes": {"éric": false, "confd.é": true}})
    );
    // Unknown fields ignored; tenant_uuid null is "no tenant".
    assert_eq!(
        scopes_ok(
            &s,
            &alice,
            json!({"scopes": ["x"], "tenant_uuid": null, "other": 1})
        ),
        json!({"scopes": {"x": false}})
    );
    // Upper-case token in the path.
    assert_eq!(
        scopes_ok(&s, &alice.to_uppercase(), json!({"scopes": ["confd.x"]})),
        json!({"scopes": {"confd.x": true}})
    );

    // 400s: non-string items, not a list, missing scopes (the original 500s), bad bodies.
    for body in [
        json!({"scopes": [true]}),
        json!({"scopes": [1]}),
        json!({"scopes": ["a", null]}),
        json!({"scopes": "confd.x"}),
        json!({"scopes": null}),
        json!({}),
        json!({"scope": ["confd.x"]}),
        json!({"scopes": ["x"], "tenant_uuid": 5}),
    ] {
        let reason = shape_a(&check_scopes(&s, &alice, body.to_string().as_bytes()), 400);
        assert!(!reason.is_empty(), "{body}");
    }
    for body in [&b"[1]"[..], b"42", b"\"x\""] {
        shape_a(&check_scopes(&s, &alice, body), 400);
    }
    // null / [] read as {} ⇒ missing scopes ⇒ 400.
    for body in [&b"null"[..], b"[]"] {
        shape_a(&check_scopes(&s, &alice, body), 400);
    }
    assert_bad_json(&check_scopes(&s, &alice, b""));
    assert_bad_json(&check_scopes(&s, &alice, b"{\"scopes\": ["));
    assert_bad_json(&check_scopes(&s, &alice, b"{\"scopes\": [\"\xff\"]}"));
    assert_bad_json(&s.request(
        "POST",
        &format!("/0.1/token/{alice}/scopes/check"),
        &[],
        None,
    ));
    assert_alive(&mut s);

    // Unknown token ⇒ 404 shape A; non-UUID path ⇒ 404 JSON.
    assert_a(
        &check_scopes(
            &s,
            &uuid::Uuid::new_v4().to_string(),
            br#"{"scopes": ["x"]}"#,
        ),
        404,
        "No such token",
    );
    let r = check_scopes(&s, "not-a-uuid", br#"{"scopes": ["x"]}"#);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.json().is_object());

    // Tenants (checklist 45).
    let other = uuid::Uuid::new_v4().to_string();
    assert_a(
        &check_scopes(
            &s,
            &alice,
            json!({"scopes": ["confd.x"], "tenant_uuid": other})
                .to_string()
                .as_bytes(),
        ),
        403,
        &format!("Unauthorized for tenant {other}"),
    );
    let master = master_tenant(&s.db);
    assert_eq!(
        scopes_ok(
            &s,
            &alice,
            json!({"scopes": ["confd.x", "y"], "tenant_uuid": master})
        ),
        json!({"scopes": {"confd.x": true, "y": false}})
    );

    // Body over the limit ⇒ 413 JSON.
    let mut big = br#"{"scopes": [""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend_from_slice(b"\"]}");
    let r = check_scopes(&s, &alice, &big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["message"].is_string(), "{}", r.body);
    assert_alive(&mut s);
}

// ------------------------------------------------------------------------------------------------
// Purge, storage, logs
// ------------------------------------------------------------------------------------------------

#[test]
fn purge_removes_expired_tokens_and_their_sessions() {
    // The harness configures token_cleanup_interval: 1.
    let s = ServerBuilder::new().start();
    let r = s.login(
        "alice",
        "alice-secret",
        with_example(json!({"expiration": 1})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let short_session = r.json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.login(
        "alice",
        "alice-secret",
        with_example(json!({"expiration": 3600})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let long = r.json()["data"]["token"].as_str().unwrap().to_string();
    let long_session = r.json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_token"), 2);

    // Expired after 1 s, announced then purged by the next runs (every second): about 2 s, on
    // timers that a loaded machine may run late; a generous deadline costs nothing when it
    // passes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tokens = count(&s.db, "SELECT count(*) FROM auth_token");
        let sessions = count(
            &s.db,
            &format!("SELECT count(*) FROM auth_session WHERE uuid = '{short_session}'"),
        );
        if tokens == 1 && sessions == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired token not purged within 20 s (tokens {tokens}, session rows {sessions})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The long-lived token and its session stay.
    let rows = sql(&s.db, "SELECT session_uuid FROM auth_token");
    assert_eq!(rows, vec![vec![Some(long_session.clone())]]);
    assert_eq!(
        count(
            &s.db,
            &format!("SELECT count(*) FROM auth_session WHERE uuid = '{long_session}'"),
        ),
        1
    );
    assert_eq!(
        s.request("HEAD", &format!("/0.1/token/{long}"), &[], None)
            .status,
        204
    );
}

#[test]
fn token_ids_and_passwords_are_not_stored_or_logged_in_clear() {
    // Debug level: not even debug logs may hold secrets.
    let s = ServerBuilder::new()
        .env("RUST_LOG", "debug,actix_server=warn")
        .start();
    let distinctive = "Wr0ng-Pa55word-7f3e9c";
    assert_401(&s.login("alice", distinctive, example()));
    let r = s.login("alice", "alice-secret", example());
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["data"]["token"].as_str().unwrap().to_string();
    let r = s.login("bob", "bob pass:with colon", example());
    let bob = r.json()["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(s.get(&format!("/0.1/token/{token}")).status, 200);
    assert_eq!(s.get(&format!("/0.1/token/{token}?scope=foo")).status, 403);
    assert_eq!(
        check_scopes(&s, &token, br#"{"scopes": ["x"]}"#).status,
        200
    );
    assert_eq!(
        s.request("DELETE", &format!("/0.1/token/{bob}"), &[], None)
            .status,
        200
    );

    // Storage: a row exists for the token, keyed by a 32-byte hash; the id is nowhere in clear
    // (neither with dashes nor as the hex of its 16 raw bytes).
    assert_eq!(count(&s.db, "SELECT count(*) FROM auth_token"), 1);
    assert_eq!(
        count(
            &s.db,
            "SELECT count(*) FROM auth_token WHERE encode(token_hash, 'hex') LIKE '%' \
             AND length(token_hash) = 32"
        ),
        1
    );
    let dashless = token.replace('-', "");
    assert_eq!(
        count(
            &s.db,
            &format!(
                "SELECT count(*) FROM auth_token WHERE metadata::text LIKE '%{token}%' \
                 OR auth_id = '{token}'"
            ),
        ),
        0
    );
    for table in ["auth_token", "auth_session"] {
        assert_eq!(
            count(
                &s.db,
                &format!(
                    "SELECT count(*) FROM {table} t WHERE row_to_json(t)::text ILIKE '%{token}%' \
                     OR row_to_json(t)::text ILIKE '%{dashless}%'"
                ),
            ),
            0,
            "{table} holds the token id"
        );
    }
    // The token's uuid is not the session uuid either.
    assert_eq!(
        count(
            &s.db,
            &format!("SELECT count(*) FROM auth_token WHERE session_uuid = '{token}'"),
        ),
        0
    );

    // Logs: no password, no whole token id.
    let log = s.log();
    assert!(log.contains("(DEBUG)"), "debug logging is on:\n{log}");
    for secret in [
        distinctive,
        "alice-secret",
        "bob pass:with colon",
        &token,
        &dashless,
        &token.to_uppercase(),
        &bob,
        &token[9..],
    ] {
        assert!(!log.contains(secret), "log contains {secret:?}:\n{log}");
    }
}

// ------------------------------------------------------------------------------------------------
// Deviations from the original found while writing these tests
// ------------------------------------------------------------------------------------------------

/// The original skips the tenant check when the tenant is empty (`if not tenant: return` in
/// `TokenService.assert_has_tenant_permission`): `?tenant=` and `"tenant_uuid": ""` mean "no
/// tenant", like an absent one.
#[test]
fn empty_tenant_is_no_tenant() {
    let s = ServerBuilder::new().start();
    let token = s.alice_token(json!({}));
    let path = format!("/0.1/token/{token}");
    let g = s.get(&format!("{path}?tenant="));
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(
        s.request("HEAD", &format!("{path}?tenant="), &[], None)
            .status,
        204
    );
    assert_eq!(
        scopes_ok(
            &s,
            &token,
            json!({"scopes": ["confd.x"], "tenant_uuid": ""})
        ),
        json!({"scopes": {"confd.x": true}})
    );
}

/// The original decodes the Basic credentials with Python's `base64.b64decode` (non-validating):
/// characters outside the base64 alphabet and surplus padding are discarded, so these headers
/// carry `alice:alice-secret` there.
#[test]
fn basic_credentials_are_decoded_leniently_like_the_original() {
    let s = ServerBuilder::new().start();
    let encoded = basic("alice", "alice-secret");
    let encoded = encoded.strip_prefix("Basic ").unwrap();
    for header in [
        format!("Basic {encoded}="),
        format!("Basic {encoded}===="),
        format!("Basic {}*{}", &encoded[..4], &encoded[4..]),
        format!("Basic {encoded}!"),
    ] {
        let r = post_token_auth(&s, Some(&header), example());
        assert_eq!(r.status, 200, "{header}: {}", r.body);
    }
}
