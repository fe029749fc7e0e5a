//! Mail (issue 15): e-mail addresses and their confirmation, password reset and registration,
//! through a real SMTP server (tests/src/smtp.rs): each test reads the delivered message,
//! follows its link or token and completes the flow over HTTP.

use std::time::Duration;

use serde_json::{json, Value};
use wazo_auth_tests::smtp::SmtpServer;
use wazo_auth_tests::{Server, ServerBuilder};

const MAIL_WAIT: Duration = Duration::from_secs(20);

#[test]
fn bad_smtp_settings_stop_the_server_at_startup_with_the_key_named() {
    for (smtp, key) in [
        (json!({"port": 0}), "smtp.port"),
        (json!({"starttls": true, "tls": true}), "smtp.starttls"),
        (json!({"username": "u"}), "smtp.username"),
    ] {
        let Err(log) = ServerBuilder::new()
            .config(json!({ "smtp": smtp }))
            .try_start()
        else {
            panic!("the server started with smtp {smtp}");
        };
        assert!(log.contains(key), "{key} not named: {log}");
    }
    let Err(log) = ServerBuilder::new()
        .config(json!({"email_confirmation_expiration": "soon"}))
        .try_start()
    else {
        panic!("the server started with a bad expiration");
    };
    assert!(log.contains("email_confirmation_expiration"), "{log}");
}

/// A server with the `wazo_user` backend and its administrator, mailing through `smtp`.
fn server(smtp: Value) -> Server {
    ServerBuilder::new()
        .with_wazo_user()
        .config(json!({ "smtp": smtp }))
        .start()
}

/// Creates a user (`POST /users`, its address confirmed) and returns its JSON.
fn user(s: &Server, admin: &str, body: Value) -> Value {
    let r = s.call("POST", "/0.1/users", admin, None, Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn put_emails(s: &Server, token: &str, admin: bool, user: &str, emails: Value) -> (u16, Value) {
    let path = if admin {
        format!("/0.1/admin/users/{user}/emails")
    } else {
        format!("/0.1/users/{user}/emails")
    };
    let r = s.call(
        "PUT",
        &path,
        token,
        None,
        Some(&json!({ "emails": emails })),
    );
    let body = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, body)
}

fn address_of<'a>(list: &'a Value, address: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == address)
        .unwrap_or_else(|| panic!("{address} not in {list}"))
}

#[test]
fn address_sets_follow_the_original_rules() {
    let s = server(json!({"hostname": "127.0.0.1", "port": 9}));
    let admin = s.admin_token();
    let foobar = user(&s, &admin, json!({"username": "foobar"}));
    let uuid = foobar["uuid"].as_str().unwrap();
    let one = json!({"address": "one@example.com", "main": true, "confirmed": true});
    let two = json!({"address": "two@example.com", "main": false, "confirmed": false});
    let three = json!({"address": "three@example.com", "main": false, "confirmed": true});

    let unknown = "6d1b0f7e-0000-4000-8000-000000000001";
    for admin_variant in [true, false] {
        let (status, body) = put_emails(&s, &admin, admin_variant, unknown, json!([]));
        assert_eq!(
            (status, &body["error_id"]),
            (404, &json!("unknown-user")),
            "{body}"
        );
        let (status, body) = put_emails(&s, &admin, admin_variant, uuid, json!([one, one]));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error_id"], "invalid-data");
        assert_eq!(body["resource"], "emails");
        assert_eq!(
            body["message"]["_schema"],
            json!([
                "Only one address should be main",
                "The same address can only be used once"
            ])
        );
    }

    // The admin variant honours `confirmed`; an address kept keeps its uuid.
    let (status, first) = put_emails(&s, &admin, true, uuid, json!([one, two]));
    assert_eq!(status, 200, "{first}");
    assert_eq!(first.as_array().unwrap().len(), 2);
    let one_uuid = address_of(&first, "one@example.com")["uuid"].clone();
    assert_eq!(address_of(&first, "one@example.com")["confirmed"], true);
    assert_eq!(address_of(&first, "two@example.com")["confirmed"], false);
    let (status, second) = put_emails(&s, &admin, true, uuid, json!([one, three]));
    assert_eq!(status, 200, "{second}");
    assert_eq!(address_of(&second, "one@example.com")["uuid"], one_uuid);
    assert_eq!(address_of(&second, "three@example.com")["confirmed"], true);
    // What the user then reads.
    let got = s
        .call("GET", &format!("/0.1/users/{uuid}"), &admin, None, None)
        .json();
    assert_eq!(got["emails"].as_array().unwrap().len(), 2);

    // The user variant ignores `confirmed`: a new address is unconfirmed, a kept one keeps its
    // flag; without `confirmed` the admin variant keeps it too.
    let four = json!({"address": "four@example.com", "main": false, "confirmed": true});
    let (status, third) = put_emails(&s, &admin, false, uuid, json!([one, four]));
    assert_eq!(status, 200, "{third}");
    assert_eq!(address_of(&third, "one@example.com")["confirmed"], true);
    assert_eq!(address_of(&third, "one@example.com")["uuid"], one_uuid);
    assert_eq!(address_of(&third, "four@example.com")["confirmed"], false);
    let (status, kept) = put_emails(
        &s,
        &admin,
        true,
        uuid,
        json!([{"address": "one@example.com", "main": true}]),
    );
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept[0]["confirmed"], true);
    let (status, none) = put_emails(&s, &admin, false, uuid, json!([]));
    assert_eq!((status, none), (200, json!([])));

    // Another user's login, as a username or an address, in any case: 409.
    user(&s, &admin, json!({"username": "u2@example.com"}));
    user(
        &s,
        &admin,
        json!({"username": "u3", "email_address": "u3@example.com"}),
    );
    for taken in [
        "u2@example.com",
        "U2@exAmple.com",
        "u3@example.com",
        "U3@EXAMPLE.com",
    ] {
        let (status, body) = put_emails(
            &s,
            &admin,
            false,
            uuid,
            json!([{"address": taken, "main": true}]),
        );
        assert_eq!(status, 409, "{taken}: {body}");
        assert_eq!(body["details"]["email_address"]["constraint_id"], "unique");
    }
    // Its own username is no conflict.
    let (status, _) = put_emails(
        &s,
        &admin,
        false,
        foobar["uuid"].as_str().unwrap(),
        json!([{"address": "foobar@example.com", "main": true}]),
    );
    assert_eq!(status, 200);
}

#[test]
fn bad_input_is_refused_never_a_server_error() {
    let s = server(json!({"hostname": "127.0.0.1", "port": 9}));
    let admin = s.admin_token();
    let u = user(&s, &admin, json!({"username": "bad-input"}));
    let uuid = u["uuid"].as_str().unwrap();
    let long_local = format!("{}@example.com", "a".repeat(300));
    let long_domain = format!("a@{}.com", "b".repeat(60_000));
    for body in [
        json!({}),
        json!({"emails": null}),
        json!({"emails": "x"}),
        json!({"emails": [1]}),
        json!({"emails": [{"main": true}]}),
        json!({"emails": [{"address": "not-an-address", "main": true}]}),
        json!({"emails": [{"address": "nul\u{0}@example.com", "main": true}]}),
        json!({"emails": [{"address": long_local, "main": true}]}),
        json!({"emails": [{"address": long_domain, "main": true}]}),
        json!({"emails": [{"address": "a@example.com", "main": "maybe"}]}),
        json!({"emails": [{"address": "a@example.com"}]}),
        json!({"emails": [{"address": "a@example.com", "main": true},
                          {"address": "A@example.com", "main": false}]}),
    ] {
        for path in [
            format!("/0.1/users/{uuid}/emails"),
            format!("/0.1/admin/users/{uuid}/emails"),
        ] {
            let r = s.call("PUT", &path, &admin, None, Some(&body));
            assert!(
                r.status == 400 || r.status == 413,
                "{path} {}: {} {}",
                body.to_string().chars().take(80).collect::<String>(),
                r.status,
                r.body
            );
        }
    }
    // Not JSON, NUL bytes in the body.
    let r = s.request(
        "PUT",
        &format!("/0.1/users/{uuid}/emails"),
        &[("X-Auth-Token", &admin)],
        Some(b"{\"emails\": [\x00]}"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Paths that name no uuid, or hold NUL: no route.
    for path in [
        "/0.1/users/not-a-uuid/emails".to_string(),
        "/0.1/admin/users/%00/emails".to_string(),
        format!("/0.1/users/{uuid}/emails/nope/confirm"),
        "/0.1/emails/not-a-uuid/confirm".to_string(),
        "/0.1/emails/%00/confirm?token=x".to_string(),
    ] {
        for method in ["GET", "PUT"] {
            let r = s.call(method, &path, &admin, None, Some(&json!({"emails": []})));
            assert!(
                r.status == 404 || r.status == 405,
                "{method} {path}: {} {}",
                r.status,
                r.body
            );
        }
    }
    // A token that is not a uuid, or holds NUL, in the link: 401.
    let email = "6d1b0f7e-0000-4000-8000-000000000002";
    for token in ["x", "%00", &"t".repeat(10_000)] {
        let r = s.get(&format!("/0.1/emails/{email}/confirm?token={token}"));
        assert_eq!(r.status, 401, "{}", r.body);
    }
}

#[test]
fn a_confirmation_mail_confirms_its_address() {
    let smtp = SmtpServer::start();
    let s = server(smtp.config());
    let admin = s.admin_token();
    let u = user(&s, &admin, json!({"username": "carol"}));
    let uuid = u["uuid"].as_str().unwrap();
    let (status, set) = put_emails(
        &s,
        &admin,
        false,
        uuid,
        json!([{"address": "carol@example.com", "main": true}]),
    );
    assert_eq!(status, 200, "{set}");
    let email = set[0]["uuid"].as_str().unwrap().to_string();
    assert_eq!(set[0]["confirmed"], false);

    // Unknown user, unknown address, another user's address: 404.
    let unknown = "6d1b0f7e-0000-4000-8000-000000000003";
    let resend = |user: &str, email: &str| {
        s.request(
            "GET",
            &format!("/0.1/users/{user}/emails/{email}/confirm"),
            &[
                ("X-Auth-Token", &admin),
                ("Host", "pbx.example.com:8443"),
                ("X-Script-Name", "/api/auth"),
            ],
            None,
        )
    };
    let r = resend(unknown, &email);
    assert_eq!(
        (r.status, r.json()["error_id"].clone()),
        (404, json!("unknown-user"))
    );
    let r = resend(uuid, unknown);
    assert_eq!(
        (r.status, r.json()["error_id"].clone()),
        (404, json!("unknown-email"))
    );
    assert_eq!(r.json()["resource"], "emails");

    let r = resend(uuid, &email);
    assert_eq!(r.status, 204, "{}", r.body);
    let mail = smtp.wait_for("carol@example.com", 1, MAIL_WAIT).remove(0);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Confirm the e-mail address of carol")
    );
    let from = mail.header("From").unwrap();
    assert!(
        from.contains("noreply@wazo.community") && from.contains("wazo-auth"),
        "{from}"
    );
    assert!(mail.header("To").unwrap().contains("carol"), "{}", mail.raw);
    let link = mail.first_url().unwrap();
    let prefix = format!("https://pbx.example.com:8443/api/auth/0.1/emails/{email}/confirm?token=");
    assert!(link.starts_with(&prefix), "{link}");
    let token = mail.url_param("token").unwrap();

    // The mailed token confirms this address only, through the link.
    let other = user(
        &s,
        &admin,
        json!({"username": "dave", "email_address": "dave@example.com"}),
    );
    let other_email = other["emails"][0]["uuid"].as_str().unwrap();
    let r = s.get(&format!("/0.1/emails/{other_email}/confirm?token={token}"));
    assert_eq!(r.status, 401, "{}", r.body);
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{uuid}/emails"),
        &token,
        None,
        Some(&json!({"emails": []})),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let r = s.get(&format!("/0.1/emails/{email}/confirm?token={token}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "Email address confirmed");
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    let got = s
        .call("GET", &format!("/0.1/users/{uuid}"), &admin, None, None)
        .json();
    assert_eq!(got["emails"][0]["confirmed"], true);
    // Confirmed: no new mail (409).
    let r = resend(uuid, &email);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        format!("This email already confirmed: \"{email}\"")
    );

    // PUT: unknown 404, else 204 (with the token in the header).
    let r = s.call(
        "PUT",
        &format!("/0.1/emails/{unknown}/confirm"),
        &admin,
        None,
        None,
    );
    assert_eq!(
        (r.status, r.json()["error_id"].clone()),
        (404, json!("unknown-email"))
    );
    let (_, set) = put_emails(
        &s,
        &admin,
        true,
        uuid,
        json!([{"address": "carol@example.com", "main": true, "confirmed": false}]),
    );
    assert_eq!(set[0]["confirmed"], false);
    let r = s.call(
        "PUT",
        &format!("/0.1/emails/{email}/confirm"),
        &token,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let got = s
        .call("GET", &format!("/0.1/users/{uuid}"), &admin, None, None)
        .json();
    assert_eq!(got["emails"][0]["confirmed"], true);
    // Confirmed by mail, the address is a login.
    let r = s.call(
        "PUT",
        &format!("/0.1/users/{uuid}"),
        &admin,
        None,
        Some(&json!({})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(smtp.messages_to("carol@example.com").len(), 1);
}

#[test]
fn operators_templates_are_used() {
    let smtp = SmtpServer::start();
    let dir = wazo_auth_tests::scratch_dir("templates");
    let body = dir.join("confirm.jinja");
    std::fs::write(&body, "user={{ username }} host={{ hostname }}{% if port %} port={{ port }}{% endif %} uuid={{ email_uuid }} token={{ token }}\n").unwrap();
    let page = dir.join("page.jinja");
    std::fs::write(&page, "Custom template").unwrap();
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({
            "smtp": smtp.config(),
            "email_confirmation_template": body,
            "email_confirmation_get_response_body_template": page,
            "email_confirmation_get_mimetype": "text/plain",
            "email_confirmation_from_name": "PBX",
            "email_confirmation_from_address": "pbx@example.org",
        }))
        .start();
    let admin = s.admin_token();
    let u = user(&s, &admin, json!({"username": "erin"}));
    let uuid = u["uuid"].as_str().unwrap();
    let (_, set) = put_emails(
        &s,
        &admin,
        false,
        uuid,
        json!([{"address": "erin@example.net", "main": true}]),
    );
    let email = set[0]["uuid"].as_str().unwrap();
    let r = s.request(
        "GET",
        &format!("/0.1/users/{uuid}/emails/{email}/confirm"),
        &[("X-Auth-Token", &admin), ("Host", "Example.ORG")],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let mail = smtp.wait_for("erin@example.net", 1, MAIL_WAIT).remove(0);
    assert!(mail.header("From").unwrap().contains("pbx@example.org"));
    let text = mail.body();
    assert!(
        text.starts_with(&format!("user=erin host=example.org uuid={email} token=")),
        "{text}"
    );
    let token = text.trim().rsplit('=').next().unwrap().to_string();
    let r = s.get(&format!("/0.1/emails/{email}/confirm?token={token}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "Custom template");
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
}

#[test]
fn a_mail_server_that_is_down_costs_the_request_nothing() {
    // A port nobody listens on: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s =
        server(json!({"hostname": "127.0.0.1", "port": port, "timeout": 1, "retry_max_age": 2}));
    let admin = s.admin_token();
    let u = user(&s, &admin, json!({"username": "frank"}));
    let uuid = u["uuid"].as_str().unwrap();
    let (_, set) = put_emails(
        &s,
        &admin,
        false,
        uuid,
        json!([{"address": "frank.secret@example.com", "main": true}]),
    );
    let email = set[0]["uuid"].as_str().unwrap();
    let started = std::time::Instant::now();
    let r = s.call(
        "GET",
        &format!("/0.1/users/{uuid}/emails/{email}/confirm"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Retried, then dropped; the log names the domain, never the address.
    s.wait_log(Duration::from_secs(20), |log| {
        log.contains("mail to a recipient at example.com dropped after")
    });
    let log = s.log();
    assert!(
        log.contains("mail to a recipient at example.com not sent, retried in 1 s"),
        "{log}"
    );
    assert!(!log.contains("frank.secret"), "{log}");
}

#[test]
fn scope_a_sub_tenant_token_reaches_no_address_outside_its_tree() {
    let s = server(json!({"hostname": "127.0.0.1", "port": 9}));
    let admin = s.admin_token();
    let top_user = user(
        &s,
        &admin,
        json!({"username": "top", "email_address": "top@example.com"}),
    );
    let top_uuid = top_user["uuid"].as_str().unwrap();
    let top_email = top_user["emails"][0]["uuid"].as_str().unwrap();
    let r = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "sub"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sub = r.json()["uuid"].as_str().unwrap().to_string();
    let sub_admin = s
        .call(
            "POST",
            "/0.1/users",
            &admin,
            Some(&sub),
            Some(&json!({"username": "subadmin", "password": "pw"})),
        )
        .json();
    let policy = s
        .call(
            "POST",
            "/0.1/policies",
            &admin,
            Some(&sub),
            Some(&json!({"name": "sub-all", "acl": ["auth.#"]})),
        )
        .json();
    let r = s.call(
        "PUT",
        &format!(
            "/0.1/users/{}/policies/{}",
            sub_admin["uuid"].as_str().unwrap(),
            policy["uuid"].as_str().unwrap()
        ),
        &admin,
        Some(&sub),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let token = s.user_token("subadmin", "pw");
    for admin_variant in [true, false] {
        let (status, body) = put_emails(&s, &token, admin_variant, top_uuid, json!([]));
        assert_eq!(
            (status, &body["error_id"]),
            (404, &json!("unknown-user")),
            "{body}"
        );
    }
    let r = s.call(
        "GET",
        &format!("/0.1/users/{top_uuid}/emails/{top_email}/confirm"),
        &token,
        None,
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s.call(
        "PUT",
        &format!("/0.1/emails/{top_email}/confirm"),
        &token,
        None,
        None,
    );
    assert_eq!(
        (r.status, r.json()["error_id"].clone()),
        (404, json!("unknown-email"))
    );
    let got = s
        .call("GET", &format!("/0.1/users/{top_uuid}"), &admin, None, None)
        .json();
    assert_eq!(got["emails"][0]["address"], "top@example.com");
}

// ------------------------------------------------------------------------------------------------
// Password reset
// ------------------------------------------------------------------------------------------------

/// `GET /users/password/reset?<query>` from client `client` (read from `X-Forwarded-For`, the
/// harness's peer being a trusted proxy), with the link's host.
fn ask_reset(s: &Server, query: &str, client: &str) -> wazo_auth_tests::Resp {
    s.request(
        "GET",
        &format!("/0.1/users/password/reset?{query}"),
        &[("X-Forwarded-For", client), ("Host", "pbx.example.com")],
        None,
    )
}

fn post_reset(s: &Server, query: &str, token: Option<&str>, body: &[u8]) -> wazo_auth_tests::Resp {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = token {
        headers.push(("X-Auth-Token", t));
    }
    s.request(
        "POST",
        &format!("/0.1/users/password/reset?{query}"),
        &headers,
        Some(body),
    )
}

#[test]
fn a_reset_mail_sets_a_new_password_and_ends_the_sessions() {
    let smtp = SmtpServer::start();
    let s = server(smtp.config());
    let admin = s.admin_token();
    let gina = user(
        &s,
        &admin,
        json!({"username": "gina", "password": "old-pw", "email_address": "gina@example.com"}),
    );
    let uuid = gina["uuid"].as_str().unwrap();
    let session = s.user_token("gina", "old-pw");
    assert_eq!(s.get(&format!("/0.1/token/{session}")).status, 200);

    let r = ask_reset(&s, "username=gina", "10.1.0.1");
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_empty());
    let mail = smtp.wait_for("gina@example.com", 1, MAIL_WAIT).remove(0);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your new Wazo password")
    );
    let link = mail.first_url().unwrap();
    assert!(
        link.starts_with("https://app.wazo.io/reset-password?host=pbx.example.com&token="),
        "{link}"
    );
    assert_eq!(mail.url_param("user_uuid").as_deref(), Some(uuid));
    let token = mail.url_param("token").unwrap();

    // The token resets this user's password only.
    let other = user(&s, &admin, json!({"username": "other", "password": "pw"}));
    let r = post_reset(
        &s,
        &format!(
            "user_uuid={}&token={token}",
            other["uuid"].as_str().unwrap()
        ),
        None,
        br#"{"password": "x"}"#,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["details"], json!({ "invalid_token": token }));
    let r = post_reset(&s, &format!("user_uuid={uuid}"), Some(&token), b"{}");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["resource"], "reset");
    assert_eq!(r.json()["details"], json!({}));

    let r = post_reset(
        &s,
        &format!("user_uuid={uuid}&token={token}"),
        None,
        br#"{"password": "new-pw"}"#,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(s.get(&format!("/0.1/token/{session}")).status, 404);
    assert_eq!(s.login("gina", "old-pw", json!({})).status, 401);
    s.user_token("gina", "new-pw");
    // The session's end is announced (auth_session_deleted, in the change's transaction).
    let rows = wazo_auth_tests::sql(
        &s.db,
        &format!(
            "SELECT count(*) FROM auth_event_outbox WHERE name = 'auth_session_deleted' \
             AND data->>'user_uuid' = '{uuid}'"
        ),
    );
    assert_eq!(rows[0][0].as_deref(), Some("1"));

    // By address (to that address) and by login (any case).
    let r = ask_reset(&s, "email=gina@example.com", "10.1.0.2");
    assert_eq!(r.status, 204);
    smtp.wait_for("gina@example.com", 2, MAIL_WAIT);
    let r = ask_reset(&s, "login=GINA@Example.com", "10.1.0.3");
    assert_eq!(r.status, 204);
    let mails = smtp.wait_for("gina@example.com", 3, MAIL_WAIT);
    let token = mails[2].url_param("token").unwrap();
    // `null` removes the password: no more password login.
    let r = post_reset(
        &s,
        &format!("user_uuid={uuid}&token={token}"),
        None,
        br#"{"password": null}"#,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(s.login("gina", "new-pw", json!({})).status, 401);
}

#[test]
fn a_reset_request_answers_204_whatever_it_finds_and_is_bounded() {
    let smtp = SmtpServer::start();
    let s = server(smtp.config());
    let admin = s.admin_token();
    user(
        &s,
        &admin,
        json!({"username": "hank", "email_address": "hank@example.com"}),
    );
    user(&s, &admin, json!({"username": "nomail"}));
    user(
        &s,
        &admin,
        json!({"username": "ldapuser", "authentication_method": "ldap",
                            "email_address": "ldap@example.com"}),
    );
    let (_, unconfirmed) = {
        let u = user(&s, &admin, json!({"username": "unconf"}));
        put_emails(
            &s,
            &admin,
            false,
            u["uuid"].as_str().unwrap(),
            json!([{"address": "unconf@example.com", "main": true}]),
        )
    };
    assert_eq!(unconfirmed[0]["confirmed"], false);

    // Nobody, no address, an external password, an unconfirmed address: 204, no mail.
    for (i, query) in [
        "username=nobody",
        "email=nobody@example.com",
        "login=nobody",
        "username=nomail",
        "username=ldapuser",
        "username=unconf",
    ]
    .iter()
    .enumerate()
    {
        let started = std::time::Instant::now();
        let r = ask_reset(&s, query, &format!("10.2.0.{i}"));
        assert_eq!(r.status, 204, "{query}: {}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{query}: {:?}",
            started.elapsed()
        );
    }
    // Bad queries: 400, resource reset, details empty.
    for query in [
        "",
        "username=hank&login=hank",
        "username=",
        "email=not-an-address",
        "login=a%00b",
        &format!("username={}", "a".repeat(300)),
        "other=x",
    ] {
        let r = ask_reset(&s, query, "10.2.1.1");
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let body = r.json();
        assert_eq!(
            (body["resource"].as_str(), &body["details"]),
            (Some("reset"), &json!({})),
            "{body}"
        );
    }
    let r = ask_reset(&s, "username=hank&email=hank@example.com", "10.2.1.2");
    assert_eq!(
        r.json()["message"],
        json!(["\"username\" or \"email\" or \"login\" should be used"])
    );

    // A flood for one user: three mails at most (per name, then per user), still 204.
    for i in 0..6 {
        let query = if i % 2 == 0 {
            "username=hank"
        } else {
            "email=hank@example.com"
        };
        let r = ask_reset(&s, query, &format!("10.3.0.{i}"));
        assert_eq!(r.status, 204);
    }
    smtp.wait_for("hank@example.com", 3, MAIL_WAIT);
    // From one client: ten requests at most are looked at.
    for i in 0..12 {
        let r = ask_reset(&s, &format!("username=someone{i}"), "10.4.0.1");
        assert_eq!(r.status, 204);
    }
    s.wait_log(MAIL_WAIT, |log| {
        log.contains("too many from this client (10.4.0.1)")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.messages_to("hank@example.com").len(), 3);
    for address in [
        "ldap@example.com",
        "unconf@example.com",
        "nobody@example.com",
    ] {
        assert!(smtp.messages_to(address).is_empty(), "{address}");
    }
}

#[test]
fn a_reset_answers_as_the_original_where_it_refuses() {
    let s = server(json!({"hostname": "127.0.0.1", "port": 9}));
    let admin = s.admin_token();
    let unknown = "6d1b0f7e-0000-4000-8000-000000000004";
    let r = post_reset(
        &s,
        &format!("user_uuid={unknown}"),
        Some(&admin),
        br#"{"password": "x"}"#,
    );
    assert_eq!(
        (r.status, r.json()["error_id"].clone()),
        (404, json!("unknown-user"))
    );
    let r = post_reset(
        &s,
        &format!("user_uuid={unknown}"),
        Some(&admin),
        br#"{"password": null}"#,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["details"],
        json!({"uuid": unknown, "password": null})
    );
    for query in ["", "user_uuid=not-a-uuid", "user_uuid=%00"] {
        let r = post_reset(&s, query, Some(&admin), br#"{"password": "x"}"#);
        assert_eq!(r.status, 404, "{query}: {}", r.body);
    }
    let r = post_reset(
        &s,
        &format!("user_uuid={unknown}"),
        Some("nope"),
        br#"{"password": "x"}"#,
    );
    assert_eq!(
        (r.status, r.json()["details"].clone()),
        (401, json!({"invalid_token": "nope"}))
    );
    for body in [
        &b""[..],
        b"[1]",
        br#"{"password": ""}"#,
        br#"{"password": 1}"#,
        b"{\"password\": \"a\\u0000\"}",
    ] {
        let r = post_reset(&s, &format!("user_uuid={unknown}"), Some(&admin), body);
        assert_eq!(r.status, 400, "{}", r.body);
    }
    // An external password: 405; no login at all: 401 (the token-service shape).
    let ldap = user(
        &s,
        &admin,
        json!({"username": "ldap2", "authentication_method": "ldap"}),
    );
    let r = post_reset(
        &s,
        &format!("user_uuid={}", ldap["uuid"].as_str().unwrap()),
        Some(&admin),
        br#"{"password": "x"}"#,
    );
    assert_eq!(
        (r.status, r.json()["error_id"].clone()),
        (405, json!("password-managed-externally"))
    );
    let nologin = user(&s, &admin, json!({}));
    let r = post_reset(
        &s,
        &format!("user_uuid={}", nologin["uuid"].as_str().unwrap()),
        Some(&admin),
        br#"{"password": "x"}"#,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["reason"], json!(["Authentication Failed"]));
}

// ------------------------------------------------------------------------------------------------
// Registration
// ------------------------------------------------------------------------------------------------

fn registering_server(smtp: Value) -> Server {
    ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"smtp": smtp, "enabled_http_plugins": {"user_registration": true}}))
        .start()
}

fn register(s: &Server, body: &Value) -> wazo_auth_tests::Resp {
    s.request(
        "POST",
        "/0.1/users/register",
        &[
            ("Content-Type", "application/json"),
            ("Host", "pbx.example.com"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

fn count(s: &Server, table: &str) -> String {
    wazo_auth_tests::sql(&s.db, &format!("SELECT count(*) FROM {table}"))[0][0]
        .clone()
        .unwrap()
}

#[test]
fn registration_is_off_by_default() {
    let s = server(json!({"hostname": "127.0.0.1", "port": 9}));
    let body = json!({"username": "x", "password": "pw", "email_address": "x@example.com"});
    let r = register(&s, &body);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.body.contains("The requested URL was not found"),
        "{}",
        r.body
    );
}

#[test]
fn a_registered_user_confirms_its_address_through_the_mail() {
    let smtp = SmtpServer::start();
    let s = registering_server(smtp.config());
    let admin = s.admin_token();
    let top = wazo_auth_tests::sql(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0][0]
        .clone()
        .unwrap();
    let r = register(
        &s,
        &json!({"username": "ivy", "password": "ivy-pw", "email_address": "ivy@example.com",
                "firstname": "Ivy", "purpose": "internal", "tenant_uuid": top}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ivy = r.json();
    assert_eq!(
        (ivy["username"].as_str(), ivy["firstname"].as_str()),
        (Some("ivy"), Some("Ivy"))
    );
    assert_eq!(
        (
            ivy["purpose"].as_str(),
            ivy["authentication_method"].as_str()
        ),
        (Some("user"), Some("default"))
    );
    assert_eq!(ivy["emails"][0]["confirmed"], false);
    assert_eq!(ivy["emails"][0]["main"], true);
    let tenant = ivy["tenant_uuid"].as_str().unwrap();
    assert_ne!(tenant, top);
    let t = s
        .call("GET", &format!("/0.1/tenants/{tenant}"), &admin, None, None)
        .json();
    assert_eq!(
        (t["parent_uuid"].as_str(), t["name"].as_str()),
        (Some(top.as_str()), Some("ivy"))
    );
    // The tenant's creation is announced.
    let events = wazo_auth_tests::sql(
        &s.db,
        &format!("SELECT count(*) FROM auth_event_outbox WHERE name = 'auth_tenant_added' AND data->>'uuid' = '{tenant}'"),
    );
    assert_eq!(events[0][0].as_deref(), Some("1"));
    // Not confirmed yet: the address is no login; the username is.
    assert_eq!(s.login("ivy@example.com", "ivy-pw", json!({})).status, 401);
    s.user_token("ivy", "ivy-pw");

    let mail = smtp.wait_for("ivy@example.com", 1, MAIL_WAIT).remove(0);
    let link = mail.first_url().unwrap();
    let email = ivy["emails"][0]["uuid"].as_str().unwrap();
    assert!(
        link.starts_with(&format!(
            "https://pbx.example.com/0.1/emails/{email}/confirm?token="
        )),
        "{link}"
    );
    let token = mail.url_param("token").unwrap();
    let r = s.get(&format!("/0.1/emails/{email}/confirm?token={token}"));
    assert_eq!(r.status, 200, "{}", r.body);
    s.user_token("ivy@example.com", "ivy-pw");

    // The same login again: 409, and no second tenant.
    let tenants = count(&s, "auth_tenant");
    for body in [
        json!({"username": "IVY", "password": "pw", "email_address": "other@example.com"}),
        json!({"username": "other", "password": "pw", "email_address": "Ivy@example.com"}),
    ] {
        let r = register(&s, &body);
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.json()["resource"], "users");
    }
    assert_eq!(
        count(&s, "auth_tenant"),
        tenants,
        "a refused registration left a tenant"
    );
    // Bad bodies: 400 (resource users), nothing created.
    let long = "u".repeat(300);
    for body in [
        json!({}),
        json!({"password": "pw", "email_address": "a@example.com"}),
        json!({"username": long, "password": "pw", "email_address": "a@example.com"}),
        json!({"username": "a\u{0}", "password": "pw", "email_address": "a@example.com"}),
        json!({"username": "a", "password": "", "email_address": "a@example.com"}),
        json!({"username": "a", "password": "pw", "email_address": "nope"}),
        json!([1]),
    ] {
        let r = register(&s, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["error_id"], "invalid-data");
    }
    assert_eq!(count(&s, "auth_tenant"), tenants);
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn a_registration_whose_mail_cannot_be_sent_leaves_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = registering_server(json!({"hostname": "127.0.0.1", "port": port, "timeout": 2}));
    let (tenants, users, emails, tokens, outbox) = (
        count(&s, "auth_tenant"),
        count(&s, "auth_user"),
        count(&s, "auth_email"),
        count(&s, "auth_token"),
        count(&s, "auth_event_outbox"),
    );
    let started = std::time::Instant::now();
    let r = register(
        &s,
        &json!({"username": "jack", "password": "pw", "email_address": "jack@example.com"}),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let body = r.json();
    assert_eq!(
        (body["error_id"].as_str(), body["resource"].as_str()),
        (Some("email-not-sent"), Some("users"))
    );
    assert_eq!(count(&s, "auth_tenant"), tenants);
    assert_eq!(count(&s, "auth_user"), users);
    assert_eq!(count(&s, "auth_email"), emails);
    assert_eq!(count(&s, "auth_token"), tokens);
    assert_eq!(count(&s, "auth_event_outbox"), outbox);
    assert_eq!(s.login("jack", "pw", json!({})).status, 401);
    assert!(
        !s.log().contains("jack@example.com"),
        "the address was logged"
    );
}
