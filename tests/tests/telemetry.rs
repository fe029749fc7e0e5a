//! Telemetry, black box: the request id (`X-Request-ID`, answered on every answer and carried by
//! the log lines of its request), the access log, the log options, and the Prometheus metrics
//! at `GET /0.1/metrics` (and on a listener of their own), whose families move under load.

use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// One sample of the text exposition: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the Prometheus text format (version 0.0.4), panicking on any malformed line.
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let kind = rest.split(' ').nth(1).unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "bad TYPE line {line:?}"
                );
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name in {line:?}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let end = loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("open labels: {line:?}"));
                match c {
                    '}' if key.is_empty() => break i,
                    ',' if key.is_empty() => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
                        let mut value = String::new();
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('"') => break,
                                Some('\\') => value.push(chars.next().unwrap().1),
                                Some(c) => value.push(c),
                                None => panic!("open label value: {line:?}"),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                    }
                    c => key.push(c),
                }
            };
            rest = &body[end + 1..];
        }
        let value = rest.trim();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// The sum of the samples named `name` whose labels include `labels`.
fn total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}

/// `GET /0.1/metrics` with `token`: 200 in the text format.
fn scrape(s: &Server, token: &str) -> String {
    let r = s.call("GET", "/0.1/metrics", token, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let ct = r.header("Content-Type").unwrap_or_default();
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "Content-Type: {ct}"
    );
    samples(&r.body);
    r.body
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

fn access_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("(wazo_auth::access)"))
        .collect()
}

/// Waits until `pred(log)` holds (log lines are written as the answer leaves).
fn wait_for_log(s: &Server, pred: impl Fn(&str) -> bool) {
    s.wait_log(Duration::from_secs(10), pred);
}

// ------------------------------------------------------------------------------------------------
// Request ids and the log
// ------------------------------------------------------------------------------------------------

#[test]
fn request_ids_are_echoed_or_generated_on_every_answer() {
    let s = ServerBuilder::new().start();
    let unknown = uuid::Uuid::new_v4().to_string();

    // Given: echoed, on an error answer too.
    let r = s.request(
        "GET",
        &format!("/0.1/token/{unknown}"),
        &[("X-Request-ID", "given-id_1.a")],
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("X-Request-ID"), Some("given-id_1.a"));

    // Absent: a new UUID each time.
    let a = s.get("/0.1/backends");
    let b = s.get("/0.1/backends");
    let (a, b) = (
        a.header("X-Request-ID").unwrap().to_string(),
        b.header("X-Request-ID").unwrap().to_string(),
    );
    assert!(is_uuid(&a) && is_uuid(&b), "{a} {b}");
    assert_ne!(a, b);

    // Not sane (spaces, too long): replaced by a new one.
    for insane in ["two words".to_string(), "x".repeat(129)] {
        let r = s.request("GET", "/0.1/backends", &[("X-Request-ID", &insane)], None);
        let id = r.header("X-Request-ID").unwrap();
        assert!(is_uuid(id), "{insane:?} answered as {id:?}");
    }
    let longest = "y".repeat(128);
    let r = s.request("GET", "/0.1/backends", &[("X-Request-ID", &longest)], None);
    assert_eq!(r.header("X-Request-ID"), Some(longest.as_str()));

    // Every kind of answer carries one: router 404 and 405, login failure and success, token
    // check (HEAD, no body), CORS pre-flight, a protected route without a token.
    let token = s.alice_token(json!({}));
    let answers = [
        s.get("/0.1/no/such/route"),
        s.request("PUT", "/0.1/backends", &[], None),
        s.request("POST", "/0.1/token", &[], Some(b"{}")),
        s.login(
            "alice",
            "alice-secret",
            json!({"backend": "example_static"}),
        ),
        s.login("alice", "wrong", json!({"backend": "example_static"})),
        s.request("HEAD", &format!("/0.1/token/{token}"), &[], None),
        s.request(
            "OPTIONS",
            "/0.1/token",
            &[
                ("Origin", "https://app.example.com"),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        ),
        s.get("/0.1/users"),
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 405, 401, 200, 401, 204, 200, 401]);
    for r in &answers {
        let id = r.header("X-Request-ID").unwrap_or_else(|| panic!("{r:?}"));
        assert!(is_uuid(id), "{r:?}");
    }
}

#[test]
fn log_lines_of_a_request_carry_its_id_and_the_access_log_never_the_token() {
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(MULTI))
        .config(json!({"enabled_backend_plugins": {"multi_a": true}}))
        .start();

    // A line of the server's own code, inside the request.
    let auth = basic("alice", "wrong");
    let r = s.request(
        "POST",
        "/0.1/token",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("X-Request-ID", "failed-login-7"),
        ],
        Some(br#"{"backend": "example_static"}"#),
    );
    assert_eq!(r.status, 401);
    wait_for_log(&s, |log| {
        log.lines().any(|l| {
            l.contains("authentication failed") && l.ends_with(" [request_id=failed-login-7]")
        })
    });

    // A plugin's log record, written on the thread that runs the plugin call.
    let auth = basic("a", "pw-a");
    let r = s.request(
        "POST",
        "/0.1/token",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("X-Request-ID", "plugin-call-8"),
        ],
        Some(br#"{"backend": "multi_a"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for_log(&s, |log| {
        log.lines().any(|l| {
            l.contains("plugin::multi_a")
                && l.contains("MULTI-A-LOG-MARKER")
                && l.contains("[request_id=plugin-call-8 plugin=multi_a]")
        })
    });

    // The access log: method, route template, status, duration; with the request id; never
    // the token nor the query string.
    let token = s.alice_token(json!({}));
    let r = s.request(
        "GET",
        &format!("/0.1/token/{token}?scope=confd.users.read"),
        &[("X-Request-ID", "check-9")],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        s.request("DELETE", &format!("/0.1/token/{token}/nope"), &[], None)
            .status,
        404
    );
    wait_for_log(&s, |log| {
        access_lines(log)
            .iter()
            .any(|l| l.contains(" GET /0.1/token/{token} 200 ") && l.contains("check-9"))
    });
    let log = s.log();
    let line = access_lines(&log)
        .into_iter()
        .find(|l| l.contains("request_id=check-9"))
        .unwrap()
        .to_string();
    assert!(line.contains("(INFO) (wazo_auth::access): 127.0.0.1 GET /0.1/token/{token} 200 "));
    let duration = line
        .split(" 200 ")
        .nth(1)
        .and_then(|rest| rest.split("ms").next())
        .and_then(|ms| ms.parse::<f64>().ok());
    assert!(duration.is_some_and(|ms| ms >= 0.0), "{line}");
    assert!(access_lines(&log)
        .iter()
        .any(|l| l.contains(" DELETE unmatched 404 ")));
    assert!(access_lines(&log)
        .iter()
        .any(|l| l.contains(" POST /0.1/token 200 ")));
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    for l in access_lines(&log) {
        assert!(
            !l.contains("scope="),
            "a query string is in the access log: {l}"
        );
    }
}

#[test]
fn access_log_level_and_log_options_keep_working() {
    // `access_log_level: off`: no access lines; the request id is still answered.
    let s = ServerBuilder::new()
        .config(json!({"access_log_level": "off"}))
        .start();
    let r = s.get("/0.1/backends");
    assert!(r.header("X-Request-ID").is_some());
    s.alice_token(json!({}));
    wait_for_log(&s, |log| log.contains("created for auth_id alice"));
    assert!(access_lines(&s.log()).is_empty(), "{}", s.log());
    drop(s);

    // `access_log_level: debug` under info logging: none either; RUST_LOG can turn them on.
    let s = ServerBuilder::new()
        .config(json!({"access_log_level": "debug"}))
        .start();
    s.get("/0.1/backends");
    s.alice_token(json!({}));
    wait_for_log(&s, |log| log.contains("created for auth_id alice"));
    assert!(access_lines(&s.log()).is_empty(), "{}", s.log());
    drop(s);
    let s = ServerBuilder::new()
        .config(json!({"access_log_level": "debug"}))
        .env("RUST_LOG", "info,wazo_auth::access=debug")
        .start();
    s.get("/0.1/backends");
    wait_for_log(&s, |log| {
        access_lines(log).iter().any(|l| {
            l.contains("(DEBUG) (wazo_auth::access)") && l.contains(" GET /0.1/backends 200 ")
        })
    });
    drop(s);

    // `log_filename` and `debug: true` (RUST_LOG unset so that the configuration decides): the
    // lines go to the file, in the usual format, debug lines included.
    let file = scratch_dir("telemetry-log").join("wazo-auth.log");
    let s = ServerBuilder::new()
        .config(json!({"log_filename": file, "debug": true}))
        .env("RUST_LOG", "")
        .start();
    s.request(
        "GET",
        "/0.1/backends",
        &[("X-Request-ID", "to-the-file")],
        None,
    );
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read().contains("request_id=to-the-file") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged = read();
    assert!(logged.contains("(DEBUG)"), "{logged}");
    let first = logged.lines().next().unwrap_or_default();
    let pid = s.pid().to_string();
    let shape = |l: &str| {
        // `YYYY-MM-DD HH:MM:SS.mmm [pid] (LEVEL) (target): message`
        l.len() > 24
            && l.as_bytes()[4] == b'-'
            && l.as_bytes()[10] == b' '
            && l.as_bytes()[19] == b'.'
            && l[24..].starts_with(&format!("[{pid}] ("))
    };
    assert!(shape(first), "{first}");
    assert!(
        first.contains("(INFO) (wazo_auth::server): wazo-auth "),
        "{first}"
    );
    let access = logged
        .lines()
        .find(|l| l.contains("request_id=to-the-file"))
        .unwrap();
    assert!(shape(access), "{access}");
    assert!(
        access.contains("(INFO) (wazo_auth::access): 127.0.0.1 GET /0.1/backends 200 "),
        "{access}"
    );
    assert!(!s.log().contains("to-the-file"), "also written to stderr");
    drop(s);

    // `log_level: warning`: no info lines at all.
    let s = ServerBuilder::new()
        .config(json!({"log_level": "warning"}))
        .env("RUST_LOG", "")
        .start();
    s.alice_token(json!({}));
    s.get("/0.1/backends");
    std::thread::sleep(Duration::from_millis(300));
    let log = s.log();
    assert!(!log.contains("(INFO)"), "{log}");
}

// ------------------------------------------------------------------------------------------------
// Metrics
// ------------------------------------------------------------------------------------------------

#[test]
fn metrics_are_prometheus_text_and_their_families_move_under_load() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let before = scrape(&s, &admin);
    for family in [
        "# TYPE wazo_auth_http_requests_total counter",
        "# TYPE wazo_auth_http_request_duration_seconds histogram",
        "# TYPE wazo_auth_logins_total counter",
        "# TYPE wazo_auth_token_cache_hits_total counter",
        "# TYPE wazo_auth_token_cache_misses_total counter",
        "# TYPE wazo_auth_db_pool_connections gauge",
        "# TYPE wazo_auth_build_info gauge",
    ] {
        assert!(before.contains(family), "no {family:?} in\n{before}");
    }
    assert_eq!(total(&before, "wazo_auth_build_info", &[]), 1.0);

    const N: usize = 30;
    let alice = s.alice_token(json!({}));
    for _ in 0..N {
        assert_eq!(s.get(&format!("/0.1/token/{alice}")).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(
            s.login("alice", "wrong", json!({"backend": "example_static"}))
                .status,
            401
        );
    }
    let user = s.create_user(&admin, "metrics-user", "pw", None);
    assert_eq!(
        s.call("GET", &format!("/0.1/users/{user}"), &admin, None, None)
            .status,
        200
    );
    assert_eq!(s.get("/0.1/no/such/route").status, 404);
    let after = scrape(&s, &admin);

    let grew = |name: &str, labels: &[(&str, &str)]| {
        total(&after, name, labels) - total(&before, name, labels)
    };
    let check = [("method", "GET"), ("route", "/0.1/token/{token}")];
    assert!(
        grew(
            "wazo_auth_http_requests_total",
            &[check[0], check[1], ("status", "200")]
        ) >= N as f64,
        "{after}"
    );
    assert!(grew("wazo_auth_http_request_duration_seconds_count", &check) >= N as f64);
    assert!(
        total(
            &after,
            "wazo_auth_http_request_duration_seconds_bucket",
            &[check[0], check[1], ("le", "+Inf")]
        ) >= N as f64
    );
    assert!(grew("wazo_auth_http_request_duration_seconds_sum", &check) > 0.0);
    for (method, route, status) in [
        ("POST", "/0.1/users", "200"),
        ("GET", "/0.1/users/{user_uuid}", "200"),
        ("POST", "/0.1/token", "401"),
        ("GET", "unmatched", "404"),
        ("GET", "/0.1/metrics", "200"),
    ] {
        assert!(
            grew(
                "wazo_auth_http_requests_total",
                &[("method", method), ("route", route), ("status", status)]
            ) >= 1.0,
            "{method} {route} {status}:\n{after}"
        );
    }
    let logins = |outcome| [("backend", "example_static"), ("outcome", outcome)];
    assert!(grew("wazo_auth_logins_total", &logins("success")) >= 1.0);
    assert!(grew("wazo_auth_logins_total", &logins("failure")) >= 3.0);
    assert!(
        total(
            &after,
            "wazo_auth_logins_total",
            &[("backend", "wazo_user"), ("outcome", "success")]
        ) >= 1.0
    );
    // Every check after the first is answered from the cache.
    assert!(grew("wazo_auth_token_cache_hits_total", &[]) >= (N - 1) as f64);
    assert!(total(&after, "wazo_auth_token_cache_misses_total", &[]) >= 1.0);
    assert!(total(&after, "wazo_auth_token_cache_entries", &[]) >= 1.0);
    assert!(
        grew(
            "wazo_auth_plugin_calls_total",
            &[("plugin", "example_static")]
        ) >= 4.0
    );
    assert!(
        grew(
            "wazo_auth_plugin_call_duration_seconds_count",
            &[("plugin", "example_static")]
        ) >= 4.0
    );
    for pool in ["api", "host_services"] {
        assert!(
            total(
                &after,
                "wazo_auth_db_pool_max_connections",
                &[("pool", pool)]
            ) > 0.0,
            "{pool}:\n{after}"
        );
        assert!(total(&after, "wazo_auth_db_pool_connections", &[("pool", pool)]) >= 1.0);
    }
    // Neither the token, nor the user's uuid, nor any raw path is a label.
    assert!(!after.contains(&alice) && !after.contains(&user), "{after}");
    assert!(!after.contains("/no/such"), "{after}");

    // The purge runs every second in the tests.
    let runs = |text: &str| total(text, "wazo_auth_purge_runs_total", &[("outcome", "ok")]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = scrape(&s, &admin);
        if runs(&now) >= runs(&after) + 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no purge run counted:\n{now}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn throttle_blocks_and_plugin_failures_are_counted() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(PANIC_VERIFY))
        .plugin(workspace_plugin(SLOW))
        .config(json!({
            "enabled_backend_plugins": {"panic_verify": true, "slow": true},
            // Above the administrator's password login (a hash of about 0.3 s here, several
            // times that on a slow, loaded machine: 1 s was too close), well below the slow
            // backend's sleep, so that its call is the only one to time out.
            "plugin_call_timeout": 3.0,
            "plugin_config": {"slow": {"sleep_seconds": 10}},
            "login_throttle": {
                "enabled": true, "free_attempts_per_login": 1, "free_attempts_per_address": 1000,
                "base_delay": 60.0, "max_delay": 60.0, "forget_after": 600, "exempt_addresses": [],
            },
        }))
        .start();
    let admin = s.admin_token();
    let before = scrape(&s, &admin);

    // Throttled: after one free failure, the second blocks the login.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            s.login("bob", "wrong", json!({"backend": "example_static"}))
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 429, 429]);
    // A panicking plugin and a hung one: 401, counted as errors.
    assert_eq!(
        s.login("x", "y", json!({"backend": "panic_verify"})).status,
        401
    );
    assert_eq!(s.login("x", "y", json!({"backend": "slow"})).status, 401);

    let after = scrape(&s, &admin);
    let grew = |name: &str, labels: &[(&str, &str)]| {
        total(&after, name, labels) - total(&before, name, labels)
    };
    assert_eq!(
        grew(
            "wazo_auth_throttle_blocks_total",
            &[("route", "POST /token")]
        ),
        2.0,
        "{after}"
    );
    let logins = |backend, outcome| [("backend", backend), ("outcome", outcome)];
    assert_eq!(
        grew(
            "wazo_auth_logins_total",
            &logins("example_static", "throttled")
        ),
        2.0
    );
    assert_eq!(
        grew(
            "wazo_auth_logins_total",
            &logins("example_static", "failure")
        ),
        2.0
    );
    assert_eq!(
        grew("wazo_auth_logins_total", &logins("panic_verify", "error")),
        1.0
    );
    assert_eq!(
        grew("wazo_auth_logins_total", &logins("slow", "error")),
        1.0
    );
    assert_eq!(
        grew(
            "wazo_auth_plugin_call_failures_total",
            &[("plugin", "panic_verify"), ("reason", "panic")]
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        grew(
            "wazo_auth_plugin_call_failures_total",
            &[("plugin", "slow"), ("reason", "timeout")]
        ),
        1.0,
        "{after}"
    );
}

#[test]
fn metrics_are_protected_on_the_api_port_and_open_on_their_own_listener() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"metrics": {"listen": format!("127.0.0.1:{port}")}}))
        .start();

    // No token, or one without `auth.metrics.read`: 401 in the usual shape.
    let r = s.get("/0.1/metrics");
    assert_eq!(r.status, 401, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error_id"], "unauthorized");
    assert_eq!(body["details"]["required_access"], "auth.metrics.read");
    assert_eq!(body["details"]["reason"], "not_found_or_expired");
    assert!(r.header("X-Request-ID").is_some());
    let alice = s.alice_token(json!({}));
    let r = s.call("GET", "/0.1/metrics", &alice, None, None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json()["details"]["reason"],
        "missing_permission_or_invalid_tenant"
    );
    let admin = s.admin_token();
    scrape(&s, &admin);
    // GET only.
    for method in ["POST", "PUT", "DELETE"] {
        let r = s.request(
            method,
            "/0.1/metrics",
            &[("X-Auth-Token", &admin)],
            Some(b"{}"),
        );
        assert_eq!(r.status, 405, "{method}");
    }

    // Their own listener: no token, the same families.
    let url = format!("http://127.0.0.1:{port}/metrics");
    let r = ureq_get(&url);
    assert_eq!(r.0, 200);
    assert!(r.1.starts_with("text/plain"), "{}", r.1);
    samples(&r.2);
    assert!(r.2.contains("wazo_auth_http_requests_total{"), "{}", r.2);
    assert!(r.2.contains("wazo_auth_logins_total{"), "{}", r.2);
    let unknown = ureq_get(&format!("http://127.0.0.1:{port}/0.1/token"));
    assert_eq!(unknown.0, 404, "only the metrics are served there");
}

/// A GET outside the harness's base URL: (status, content type, body).
fn ureq_get(url: &str) -> (u16, String, String) {
    let r = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = r.status();
    let content_type = r.header("Content-Type").unwrap_or_default().to_string();
    (status, content_type, r.into_string().unwrap_or_default())
}

#[test]
fn metrics_can_be_turned_off() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"metrics": {"enabled": false}}))
        .start();
    let admin = s.admin_token();
    let r = s.call("GET", "/0.1/metrics", &admin, None, None);
    assert_eq!(r.status, 404, "{}", r.body);
    let body: Value = r.json();
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("The requested URL was not found")));
    assert!(r.header("X-Request-ID").is_some());
}
