//! The redacted description of the configuration: the effective configuration as JSON with its
//! secrets masked, for the startup log and `GET /0.1/config` (one rule for both,
//! [`Config::redacted_json`]).

use serde_json::Value;

use super::schema::Config;

/// Replacement text of secrets in [`Config::redacted_json`].
pub const REDACTED: &str = "********";

impl Config {
    /// The configuration as JSON with secrets replaced by [`REDACTED`]: the
    /// values of keys whose name contains `password`, `passwd`, `secret`, `key` or
    /// `credential`, or is (or ends with) `token` (at any depth: `smtp.password`,
    /// a plugin's `client_secret`), and the passwords inside URIs / DSNs (such as
    /// `db_uri` and `amqp.uri`). Paths to files and templates are not secrets
    /// (`secret_key_file`, `saml.key_file`). Null values are left as they are.
    pub fn redacted_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        redact(&mut value);
        value
    }
}

/// Whether values under `key` are secrets: names containing `password`,
/// `passwd`, `secret` or `key`, or `token` / `*_token`, except settings
/// that merely mention them (`password_reset_email_template`, `key_file`...).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let named = ["password", "passwd", "secret", "key", "credential"]
        .iter()
        .any(|word| key.contains(word))
        || key == "token"
        || key.ends_with("_token");
    let not_a_secret = [
        "_template",
        "_expiration",
        "_from_name",
        "_from_address",
        "_file",
        "_dir",
    ]
    .iter()
    .any(|suffix| key.ends_with(suffix));
    named && !not_a_secret
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if is_secret_key(key) {
                    redact_secret(child);
                } else {
                    redact(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(s) => {
            if let Some(redacted) = redact_uri(s) {
                *s = redacted;
            }
        }
        _ => {}
    }
}

/// Masks a value stored under a secret-named key: strings and numbers are
/// replaced; booleans and null (e.g. `broken_verify_password: true`, an unset
/// password) are kept; lists and mappings are walked, every string and number
/// in them masked (`credentials: {user, pass}`).
fn redact_secret(value: &mut Value) {
    match value {
        Value::String(_) | Value::Number(_) => *value = Value::String(REDACTED.into()),
        Value::Array(items) => items.iter_mut().for_each(redact_secret),
        Value::Object(map) => map.values_mut().for_each(redact_secret),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Hides the password of `scheme://user:password@host/...` and the values of
/// `password=...` parameters (URI query or libpq key/value form). `None` when
/// there is nothing to hide.
pub(super) fn redact_uri(s: &str) -> Option<String> {
    let mut out = s.to_string();
    if let Some(scheme_end) = s.find("://") {
        let start = scheme_end + 3;
        let rest = &s[start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                out = format!(
                    "{}{}{}",
                    &s[..start + colon + 1],
                    REDACTED,
                    &s[start + at..]
                );
            }
        }
    }
    let mut search_from = 0;
    loop {
        let lower = out.to_ascii_lowercase();
        let Some(found) = lower[search_from..].find("password=") else {
            break;
        };
        let value_start = search_from + found + "password=".len();
        let preceded_ok = search_from + found == 0
            || matches!(
                out.as_bytes()[search_from + found - 1],
                b'?' | b'&' | b' ' | b'\t' | b';'
            );
        if !preceded_ok {
            search_from = value_start;
            continue;
        }
        let tail = &out[value_start..];
        let value_len = if let Some(quoted) = tail.strip_prefix('\'') {
            quoted.find('\'').map(|end| end + 2).unwrap_or(tail.len())
        } else {
            tail.find(['&', ' ', '\t', ';', '#']).unwrap_or(tail.len())
        };
        if value_len > 0 && &tail[..value_len] != REDACTED {
            out.replace_range(value_start..value_start + value_len, REDACTED);
        }
        search_from = value_start + REDACTED.len().min(out.len() - value_start);
    }
    (out != s).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    #[test]
    fn config_redaction() {
        let mut c = Config {
            db_uri: Some(
                "postgresql://asterisk:proformatique@localhost/asterisk?application_name=x".into(),
            ),
            bootstrap_user_username: Some("admin".into()),
            bootstrap_user_password: Some("s3cre7".into()),
            ..Config::default()
        };
        c.rest_api.private_key = Some("/etc/key.pem".into());
        c.plugin_config.insert(
            "example_static".into(),
            json!({"users": [{"login": "alice", "password": "alice-secret"}],
                   "client_secret": "xyz", "api_key": "k", "nested": {"token": "t"}}),
        );
        c.consul = json!({"token": "the_one_ring", "port": 8500});
        c.enabled_backend_plugins
            .insert("broken_verify_password".into(), true);
        c.saml["private_keys"] = json!(["k1", 5]);
        c.smtp = json!({"hostname": "mail", "port": 587, "username": "mailer",
                        "password": "smtp-pw", "credentials": {"user": "u", "pass": "p"}});
        let r = c.redacted_json();
        assert_eq!(
            r["db_uri"],
            "postgresql://asterisk:********@localhost/asterisk?application_name=x"
        );
        assert_eq!(r["bootstrap_user_password"], REDACTED);
        assert_eq!(r["bootstrap_user_username"], "admin");
        assert_eq!(r["rest_api"]["private_key"], REDACTED);
        assert_eq!(r["rest_api"]["certificate"], Value::Null);
        assert_eq!(r["amqp"]["uri"], "amqp://guest:********@localhost:5672/");
        let p = &r["plugin_config"]["example_static"];
        assert_eq!(p["users"][0]["password"], REDACTED);
        assert_eq!(p["users"][0]["login"], "alice");
        assert_eq!(p["client_secret"], REDACTED);
        assert_eq!(p["api_key"], REDACTED);
        assert_eq!(p["nested"]["token"], REDACTED);
        assert_eq!(r["consul"]["token"], REDACTED);
        assert_eq!(r["consul"]["port"], 8500);
        assert_eq!(r["default_token_lifetime"], 7200);
        assert_eq!(r["enabled_backend_plugins"]["broken_verify_password"], true);
        assert_eq!(r["saml"]["private_keys"], json!([REDACTED, REDACTED]));
        assert_eq!(r["saml"]["key_file"], "/var/lib/wazo-auth/saml/server.key");
        assert_eq!(r["password_reset_expiration"], 172800);
        assert_eq!(r["smtp"]["password"], REDACTED);
        assert_eq!(r["smtp"]["username"], "mailer");
        assert_eq!(r["smtp"]["port"], 587);
        assert_eq!(
            r["smtp"]["credentials"],
            json!({"user": REDACTED, "pass": REDACTED})
        );
        assert_eq!(
            r["secret_key_file"],
            c.secret_key_file.display().to_string()
        );
        assert!(!r.to_string().contains("s3cre7"));
        assert!(!r.to_string().contains("smtp-pw"));
        assert!(!r.to_string().contains("proformatique"));

        assert_eq!(
            redact_uri("host=db user=u password=secret dbname=x").as_deref(),
            Some("host=db user=u password=******** dbname=x")
        );
        assert_eq!(
            redact_uri("postgresql:///db?host=/run&password=p&user=u").as_deref(),
            Some("postgresql:///db?host=/run&password=********&user=u")
        );
        assert_eq!(redact_uri("postgresql://u@h/db"), None);
        assert_eq!(redact_uri("plain"), None);
        c.bootstrap_user_password = None;
        assert_eq!(c.redacted_json()["bootstrap_user_password"], Value::Null);
    }
}
