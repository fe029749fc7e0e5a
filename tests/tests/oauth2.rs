//! The built-in `google` and `microsoft` external auths, black-box: the real plugin `.so` files
//! in the real server, configured (through the top-level `google:` / `microsoft:` sections) to
//! use a local OAuth2 token endpoint and synchronization websocket (tests/src/oauth2.rs), and
//! publishing on a real broker.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wazo_auth_tests::oauth2::{Mode, Provider, SyncService};
use wazo_auth_tests::rabbitmq::{Consumer, Received};
use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

const CLIENT_ID: &str = "the-client-id";
const CLIENT_SECRET: &str = "the-client-secret";

/// A server with both plugins, pointed at `provider` and `sync`; `extra` is merged into the
/// configuration.
fn server(provider: &Provider, sync: &SyncService, extra: Value) -> ServerBuilder {
    let section = |kind: &str| {
        json!({
            "authorization_base_url": format!("https://accounts.example.com/{kind}/auth"),
            "redirect_uri": format!("https://sync.example.com/{kind}/authorize"),
            "token_url": provider.token_url(),
            "websocket_host": sync.websocket_host(),
            "token_request_timeout": 1.0,
        })
    };
    ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(GOOGLE))
        .plugin(workspace_plugin(MICROSOFT))
        .config(json!({
            "enabled_external_auth_plugins": {"google": true, "microsoft": true},
            "google": section("google"),
            "microsoft": section("microsoft"),
            // Above token_request_timeout (the plugin's own 503 when the provider hangs), and
            // above the password logins' hash on a slow, loaded machine (the harness's 5 s).
            "plugin_call_timeout": 5.0,
        }))
        .config(extra)
}

fn ext(
    s: &Server,
    method: &str,
    user: &str,
    kind: &str,
    token: &str,
    body: Option<&Value>,
) -> Resp {
    s.call(
        method,
        &format!("/0.1/users/{user}/external/{kind}"),
        token,
        None,
        body,
    )
}

fn configure_tenant(s: &Server, admin: &str, kind: &str, secret: &str) {
    let r = s.call(
        "POST",
        &format!("/0.1/external/{kind}/config"),
        admin,
        None,
        Some(&json!({"client_id": CLIENT_ID, "client_secret": secret})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn wait_until(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the consumer until a message with this routing key arrives.
fn wait_event(consumer: &Consumer, key: &str, limit: Duration) -> Received {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(m) = consumer.next(Duration::from_millis(500)) {
            if m.routing_key == key {
                return m;
            }
            seen.push(m.routing_key);
        }
    }
    panic!("no event {key} within {limit:?}; received {seen:?}")
}

/// Starts an authorization and returns its state, checking the answer and the URL.
fn start_authorization(s: &Server, kind: &str, user: &str, token: &str, body: &Value) -> String {
    let r = ext(s, "POST", user, kind, token, Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    let answer = r.json();
    let state = answer["state"].as_str().unwrap().to_string();
    assert_eq!(state.len(), 30);
    assert!(state.chars().all(|c| c.is_ascii_alphanumeric()), "{state}");
    let url = answer["authorization_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("https://accounts.example.com/{kind}/auth?response_type=code&client_id={CLIENT_ID}&redirect_uri=https%3A%2F%2Fsync.example.com%2F{kind}%2Fauthorize&scope=")),
        "{url}"
    );
    assert!(url.contains(&format!("&state={state}")), "{url}");
    assert_eq!(
        url.contains("&access_type=offline&prompt=consent"),
        kind == "google",
        "{url}"
    );
    assert!(!url.contains(CLIENT_SECRET));
    state
}

fn full_flow(kind: &str) {
    let broker = wazo_auth_tests::rabbitmq::shared_broker();
    let exchange = format!(
        "wazo-auth-test-oauth2-{kind}-{}-{}",
        std::process::id(),
        next_id()
    );
    let consumer = Consumer::bind(&broker.uri(), &exchange, "topic", "auth.users.#");
    let mut provider = Provider::start(CLIENT_ID, CLIENT_SECRET);
    provider.set_rotate_refresh_tokens(kind == "microsoft");
    let sync = SyncService::start();
    let s = server(
        &provider,
        &sync,
        json!({"amqp": {"uri": broker.uri(), "exchange_name": exchange, "exchange_type": "topic"}}),
    )
    .start();
    let admin = s.admin_token();
    let user = s.create_user(&admin, "uma", "uma-pw", None);
    let tenant = sql(
        &s.db,
        &format!("SELECT tenant_uuid FROM auth_user WHERE uuid = '{user}'"),
    )[0][0]
        .clone()
        .unwrap();

    // Without the tenant's client configuration: 404, and no flow starts.
    let r = ext(&s, "POST", &user, kind, &admin, Some(&json!({})));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error_id"], "unknown-external-auth");
    assert_eq!(
        r.json()["message"],
        format!("No config found for this external auth type: \"{kind}\"")
    );
    configure_tenant(&s, &admin, kind, CLIENT_SECRET);

    // The body is validated as the original's schema.
    let r = ext(
        &s,
        "POST",
        &user,
        kind,
        &admin,
        Some(&json!({"scope": "contacts"})),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error_id"], "invalid-data");
    assert_eq!(r.json()["details"]["scope"]["constraint_id"], "type");
    let r = ext(
        &s,
        "POST",
        &user,
        kind,
        &admin,
        Some(&json!({"scope": ["ok", ""]})),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["details"]["scope"]["1"]["constraint_id"], "length");
    assert!(sync.connections().is_empty(), "{:?}", sync.connections());

    // The flow: POST, the user authorizes, the code is exchanged, the token stored.
    let state = start_authorization(&s, kind, &user, &admin, &json!({}));
    assert!(sync.wait_client(&state, Duration::from_secs(5)));
    let r = ext(&s, "GET", &user, kind, &admin, None);
    assert_eq!(r.status, 404, "not authorized yet: {}", r.body);
    assert_eq!(r.json()["error_id"], "unknown-external-auth");
    assert!(sync.authorize(&state, "the-code-1"));
    let authorized = wait_event(
        &consumer,
        &format!("auth.users.{user}.external.{kind}.authorized"),
        Duration::from_secs(20),
    );
    assert_eq!(
        authorized.headers["name"],
        "auth_user_external_auth_authorized"
    );
    assert_eq!(authorized.headers["tenant_uuid"], tenant.as_str());
    assert_eq!(authorized.body["data"]["user_uuid"], user.as_str());
    let exchanged = provider.requests();
    assert_eq!(exchanged.len(), 1, "{exchanged:?}");
    assert_eq!(exchanged[0].grant_type, "authorization_code");
    assert_eq!(exchanged[0].code.as_deref(), Some("the-code-1"));
    assert_eq!(
        exchanged[0].redirect_uri.as_deref(),
        Some(format!("https://sync.example.com/{kind}/authorize").as_str())
    );
    assert_eq!(exchanged[0].client_secret.as_deref(), Some(CLIENT_SECRET));
    let r = ext(&s, "GET", &user, kind, &admin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let got = r.json();
    assert_eq!(got["access_token"], "access-token-1");
    assert_eq!(got["scope"], json!(["scope-a", "scope-b"]));
    let expiration = got["token_expiration"]
        .as_i64()
        .expect("an integer expiration");
    assert!((expiration - (now() + 3600)).abs() <= 5, "{got}");
    assert_eq!(
        got.as_object().unwrap().len(),
        3,
        "no refresh token shown: {got}"
    );
    // Not expired: the provider is not asked again.
    assert_eq!(ext(&s, "GET", &user, kind, &admin, None).json(), got);
    assert_eq!(provider.requests().len(), 1);

    // The listing shows no token (no safe model, as the original), nor the tenant's secret.
    let list = s.call(
        "GET",
        &format!("/0.1/users/{user}/external"),
        &admin,
        None,
        None,
    );
    assert_eq!(list.status, 200, "{}", list.body);
    let item = list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == kind)
        .cloned()
        .unwrap();
    assert_eq!(item["data"], json!({}));
    assert_eq!(item["enabled"], true);
    for secret in ["access-token", "refresh-token", CLIENT_SECRET] {
        assert!(!list.body.contains(secret), "{secret} in {}", list.body);
    }

    // A second authorization, with the caller's scope, replaces the token; this one expires
    // within the 30 s margin, so the next GET refreshes it.
    let state = start_authorization(
        &s,
        kind,
        &user,
        &admin,
        &json!({"scope": ["contacts.read"]}),
    );
    assert!(sync.wait_client(&state, Duration::from_secs(5)));
    provider.set_expires_in(10);
    assert!(sync.authorize(&state, "the-code-2"));
    wait_event(
        &consumer,
        &format!("auth.users.{user}.external.{kind}.authorized"),
        Duration::from_secs(20),
    );
    provider.set_expires_in(3600);
    let r = ext(&s, "GET", &user, kind, &admin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["access_token"], "access-token-3", "refreshed");
    assert!((r.json()["token_expiration"].as_i64().unwrap() - (now() + 3600)).abs() <= 5);
    let refresh = provider.requests().last().cloned().unwrap();
    assert_eq!(refresh.grant_type, "refresh_token");
    assert_eq!(refresh.refresh_token.as_deref(), Some("refresh-token-2"));
    assert_eq!(refresh.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(refresh.client_secret.as_deref(), Some(CLIENT_SECRET));
    assert_eq!(provider.count("refresh_token"), 1);
    // The refreshed token is stored: no new refresh.
    assert_eq!(
        ext(&s, "GET", &user, kind, &admin, None).json()["access_token"],
        "access-token-3"
    );
    assert_eq!(provider.count("refresh_token"), 1);

    // Once more, with a short-lived token: Microsoft rotated the refresh token, Google kept it.
    provider.set_expires_in(10);
    let state = start_authorization(&s, kind, &user, &admin, &json!({}));
    assert!(sync.wait_client(&state, Duration::from_secs(5)));
    assert!(sync.authorize(&state, "the-code-3"));
    wait_event(
        &consumer,
        &format!("auth.users.{user}.external.{kind}.authorized"),
        Duration::from_secs(20),
    );
    let r = ext(&s, "GET", &user, kind, &admin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["access_token"], "access-token-5");
    let r = ext(&s, "GET", &user, kind, &admin, None);
    assert_eq!(
        r.json()["access_token"],
        "access-token-6",
        "still short-lived: refreshed again"
    );
    let last = provider.requests().last().cloned().unwrap();
    let expected = if kind == "microsoft" {
        "refresh-token-5"
    } else {
        "refresh-token-4"
    };
    assert_eq!(last.refresh_token.as_deref(), Some(expected));

    // A provider that fails, answers garbage, hangs or is down: a bounded, clear error.
    for (mode, status, error_id) in [
        (
            Mode::Status(500, "<html>oops</html>".into()),
            502,
            "external-auth-provider-error",
        ),
        (
            Mode::Status(400, r#"{"error": "invalid_grant"}"#.into()),
            502,
            "external-auth-provider-error",
        ),
        (
            Mode::Status(200, "not json".into()),
            502,
            "external-auth-provider-error",
        ),
        (
            Mode::Status(200, r#"{"token_type": "Bearer"}"#.into()),
            502,
            "external-auth-provider-error",
        ),
        (Mode::Hang, 503, "external-auth-provider-unavailable"),
    ] {
        provider.set_mode(mode.clone());
        let started = Instant::now();
        let r = ext(&s, "GET", &user, kind, &admin, None);
        assert_eq!(r.status, status, "{mode:?}: {}", r.body);
        assert_eq!(r.json()["error_id"], error_id, "{mode:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{mode:?}: {:?}",
            started.elapsed()
        );
    }
    let r = {
        provider.set_mode(Mode::Status(400, r#"{"error": "invalid_grant"}"#.into()));
        ext(&s, "GET", &user, kind, &admin, None)
    };
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{}",
        r.body
    );
    provider.stop();
    let started = Instant::now();
    let r = ext(&s, "GET", &user, kind, &admin, None);
    assert_eq!(r.status, 503, "provider down: {}", r.body);
    assert_eq!(r.json()["error_id"], "external-auth-provider-unavailable");
    assert!(started.elapsed() < Duration::from_secs(2));

    // DELETE.
    assert_eq!(ext(&s, "DELETE", &user, kind, &admin, None).status, 204);
    assert_eq!(ext(&s, "GET", &user, kind, &admin, None).status, 404);
    assert_eq!(ext(&s, "DELETE", &user, kind, &admin, None).status, 404);

    // Nothing secret was logged.
    let log = s.log();
    for secret in [
        CLIENT_SECRET,
        "access-token-",
        "refresh-token-",
        "the-code-",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn google_authorizes_refreshes_fails_clearly_and_deletes() {
    full_flow("google");
}

#[test]
fn microsoft_authorizes_refreshes_fails_clearly_and_deletes() {
    full_flow("microsoft");
}

/// ACLs, a refused code, and the bounds of waiting flows.
fn acl_and_bounds(kind: &str) {
    let provider = Provider::start(CLIENT_ID, CLIENT_SECRET);
    let sync = SyncService::start();
    let mut extra = json!({
        "default_user_policy": "wazo_default_user_policy",
        "default_policies": {"wazo_default_user_policy": {"acl": [format!("auth.users.me.external.{kind}.read")]}},
    });
    extra[kind] = json!({"max_pending_flows": 1, "authorization_timeout": 1.5});
    if kind == "microsoft" {
        // Without websocket_host, the server's oauth2_synchronization_ws_url_template serves.
        extra[kind]["websocket_host"] = Value::Null;
        extra["oauth2_synchronization_ws_url_template"] =
            json!(format!("{}/ws/{{state}}", sync.websocket_host()));
    }
    let s = server(&provider, &sync, extra).start();
    let admin = s.admin_token();
    let user = s.create_user(&admin, "ulf", "ulf-pw", None);
    let token = s.user_token("ulf", "ulf-pw");
    // A tenant secret the provider does not know: the code exchange is refused.
    configure_tenant(&s, &admin, kind, "a-wrong-secret");

    // Read only: creating and deleting are refused before the plugin is called.
    assert_eq!(
        ext(&s, "POST", &user, kind, &token, Some(&json!({}))).status,
        401
    );
    assert_eq!(ext(&s, "DELETE", &user, kind, &token, None).status, 401);
    assert_eq!(ext(&s, "GET", &user, kind, &token, None).status, 404);
    assert!(sync.connections().is_empty());

    // One flow at a time (max_pending_flows: 1).
    let first = start_authorization(&s, kind, &user, &admin, &json!({}));
    assert!(sync.wait_client(&first, Duration::from_secs(5)));
    let r = ext(&s, "POST", &user, kind, &admin, Some(&json!({})));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error_id"], "too-many-pending-authorizations");
    // The flow gives up after authorization_timeout, and frees its place.
    wait_until("the first flow to give up", Duration::from_secs(10), || {
        !sync.is_waiting(&first)
    });
    wait_until("a free place", Duration::from_secs(5), || {
        ext(&s, "POST", &user, kind, &admin, Some(&json!({}))).status == 201
    });
    let second = sync.connections().last().cloned().unwrap();
    assert_ne!(second, first);
    assert!(sync.wait_client(&second, Duration::from_secs(5)));

    // The provider refuses the client: nothing is stored, the failure is logged without secrets.
    assert!(sync.authorize(&second, "the-code-x"));
    wait_until("the code exchange", Duration::from_secs(10), || {
        provider.count("authorization_code") == 1
    });
    s.wait_log(Duration::from_secs(10), |l| {
        l.contains("authorization failed")
    });
    assert_eq!(ext(&s, "GET", &user, kind, &admin, None).status, 404);
    let log = s.log();
    assert!(log.contains("invalid_client"), "{log}");
    for secret in ["a-wrong-secret", "the-code-x"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn google_acl_refused_code_and_pending_bound() {
    acl_and_bounds("google");
}

#[test]
fn microsoft_acl_refused_code_and_pending_bound() {
    acl_and_bounds("microsoft");
}
