//! Mail: the confirmation and password-reset messages, rendered from the operator's Jinja
//! templates ([`templates`]) and sent to the configured SMTP server ([`queue`]).
//!
//! A request never waits for the SMTP server: it hands its message to a bounded queue, drained by
//! one task that retries with exponential back-off until the message is delivered, refused for
//! good, or older than `smtp.retry_max_age`. The one exception is the registration, which must
//! know that its confirmation mail was accepted before it commits the new user
//! ([`Mailer::send_now`], bounded by `smtp.timeout`).
//!
//! Nothing here logs a secret or a whole address: a failure names the recipient's domain only.

pub mod limits;
pub mod queue;
pub mod templates;

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::Config;
pub use queue::{Mailer, Outgoing};
pub use templates::{TemplateKind, Templates};

/// Default seconds an SMTP exchange may take (connection, each command).
const DEFAULT_TIMEOUT: f64 = 10.0;
/// Default seconds a message may wait for the SMTP server before it is dropped.
const DEFAULT_RETRY_MAX_AGE: f64 = 3600.0;
/// Default number of messages waiting (queued or between retries).
const DEFAULT_QUEUE_SIZE: usize = 1000;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP (the original).
    None,
    /// `smtp.starttls: true`: STARTTLS required.
    StartTls,
    /// `smtp.tls: true`: TLS from the first byte (e.g. port 465).
    Tls,
}

/// The `smtp` section.
#[derive(Clone, PartialEq)]
pub struct SmtpSettings {
    pub hostname: String,
    pub port: u16,
    pub security: Security,
    /// `smtp.username` / `smtp.password`: authenticate when both are set.
    pub credentials: Option<(String, String)>,
    /// `smtp.timeout`: one SMTP exchange.
    pub timeout: Duration,
    /// `smtp.retry_max_age`: how long a message may be retried.
    pub retry_max_age: Duration,
    /// `smtp.queue_size`: how many messages may wait.
    pub queue_size: usize,
}

impl std::fmt::Debug for SmtpSettings {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("hostname", &self.hostname)
            .field("port", &self.port)
            .field("security", &self.security)
            .field(
                "username",
                &self.credentials.as_ref().map(|(user, _)| user.as_str()),
            )
            .field("timeout", &self.timeout)
            .field("retry_max_age", &self.retry_max_age)
            .field("queue_size", &self.queue_size)
            .finish()
    }
}

/// A sender or recipient: display name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub name: Option<String>,
    pub address: String,
}

/// Everything the mail features read from the configuration.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp: SmtpSettings,
    pub templates: Templates,
    pub confirmation_from: Party,
    pub reset_from: Party,
    /// Seconds a confirmation token is valid (`email_confirmation_expiration`).
    pub confirmation_expiration: i64,
    /// Seconds a reset token is valid (`password_reset_expiration`).
    pub reset_expiration: i64,
    /// `Content-Type` of `GET /emails/{uuid}/confirm` (`email_confirmation_get_mimetype`).
    pub confirmation_get_mimetype: String,
}

fn string(value: &Value, key: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("\"{key}\" must be a string")),
    }
}

fn seconds(value: &Value, key: &str) -> Result<i64, String> {
    match value.as_f64() {
        Some(s) if (1.0..=315_360_000.0).contains(&s) => Ok(s as i64),
        _ => Err(format!(
            "\"{key}\" must be a number of seconds between 1 and 315360000"
        )),
    }
}

fn bool_key(smtp: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match smtp.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("\"smtp.{key}\" must be a boolean")),
    }
}

fn positive(smtp: &Map<String, Value>, key: &str, default: f64) -> Result<Duration, String> {
    match smtp.get(key) {
        None | Some(Value::Null) => Ok(Duration::from_secs_f64(default)),
        Some(v) => match v.as_f64() {
            Some(s) if s > 0.0 && s <= 31_536_000.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(format!(
                "\"smtp.{key}\" must be a number of seconds (> 0, at most a year)"
            )),
        },
    }
}

impl SmtpSettings {
    fn from_value(value: &Value) -> Result<SmtpSettings, String> {
        let Some(smtp) = value.as_object() else {
            return Err("\"smtp\" must be a mapping".into());
        };
        let hostname = match smtp.get("hostname") {
            None => "localhost".to_string(),
            Some(v) => string(v, "smtp.hostname")?,
        };
        if hostname.is_empty() {
            return Err("\"smtp.hostname\" must not be empty".into());
        }
        let port = match smtp.get("port") {
            None => 25,
            Some(v) => v
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or("\"smtp.port\" must be a port number (1-65535)")?,
        };
        let security = match (bool_key(smtp, "starttls")?, bool_key(smtp, "tls")?) {
            (true, true) => {
                return Err("\"smtp.starttls\" and \"smtp.tls\" exclude each other".into())
            }
            (true, false) => Security::StartTls,
            (false, true) => Security::Tls,
            (false, false) => Security::None,
        };
        let optional = |key: &str| -> Result<Option<String>, String> {
            match smtp.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => string(v, &format!("smtp.{key}")).map(Some),
            }
        };
        let credentials = match (optional("username")?, optional("password")?) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            _ => {
                return Err("\"smtp.username\" and \"smtp.password\" go together".into());
            }
        };
        let queue_size = match smtp.get("queue_size") {
            None | Some(Value::Null) => DEFAULT_QUEUE_SIZE,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=1_000_000).contains(n))
                .map(|n| n as usize)
                .ok_or("\"smtp.queue_size\" must be a number between 1 and 1000000")?,
        };
        Ok(SmtpSettings {
            hostname,
            port,
            security,
            credentials,
            timeout: positive(smtp, "timeout", DEFAULT_TIMEOUT)?,
            retry_max_age: positive(smtp, "retry_max_age", DEFAULT_RETRY_MAX_AGE)?,
            queue_size,
        })
    }
}

impl MailSettings {
    /// Reads and checks the mail keys of the configuration (a startup error when one is wrong).
    pub fn from_config(cfg: &Config) -> Result<MailSettings, String> {
        let party = |name: &Value, name_key: &str, address: &Value, address_key: &str| {
            Ok::<_, String>(Party {
                name: match name {
                    Value::Null => None,
                    v => Some(string(v, name_key)?),
                },
                address: string(address, address_key)?,
            })
        };
        Ok(MailSettings {
            smtp: SmtpSettings::from_value(&cfg.smtp)?,
            templates: Templates::from_config(cfg)?,
            confirmation_from: party(
                &cfg.email_confirmation_from_name,
                "email_confirmation_from_name",
                &cfg.email_confirmation_from_address,
                "email_confirmation_from_address",
            )?,
            reset_from: party(
                &cfg.password_reset_from_name,
                "password_reset_from_name",
                &cfg.password_reset_from_address,
                "password_reset_from_address",
            )?,
            confirmation_expiration: seconds(
                &cfg.email_confirmation_expiration,
                "email_confirmation_expiration",
            )?,
            reset_expiration: seconds(&cfg.password_reset_expiration, "password_reset_expiration")?,
            confirmation_get_mimetype: string(
                &cfg.email_confirmation_get_mimetype,
                "email_confirmation_get_mimetype",
            )?,
        })
    }
}

/// The mail features of a running server: the settings and the sender.
pub struct MailService {
    pub settings: MailSettings,
    pub mailer: Mailer,
    /// The bounds of the anonymous password-reset request.
    pub reset_limits: limits::ResetLimits,
}

impl MailService {
    /// Starts the sender's task on the current runtime.
    pub fn start(settings: MailSettings) -> Result<MailService, String> {
        let mailer = Mailer::start(&settings.smtp)?;
        Ok(MailService {
            settings,
            mailer,
            reset_limits: limits::ResetLimits::default(),
        })
    }

    fn compose(
        &self,
        from: &Party,
        body: TemplateKind,
        subject: TemplateKind,
        to: Party,
        context: &Map<String, Value>,
    ) -> Result<Outgoing, templates::TemplateError> {
        let templates = &self.settings.templates;
        Ok(Outgoing {
            from: from.clone(),
            to,
            subject: templates.render(subject, context)?,
            body: templates.render(body, context)?,
        })
    }

    /// The confirmation mail (variables `token`, `username`, `email_uuid`, `email_address`
    /// and the connection's `hostname`, `port`, `prefix`).
    pub fn confirmation(
        &self,
        to: Party,
        context: &Map<String, Value>,
    ) -> Result<Outgoing, templates::TemplateError> {
        self.compose(
            &self.settings.confirmation_from,
            TemplateKind::ConfirmationBody,
            TemplateKind::ConfirmationSubject,
            to,
            context,
        )
    }

    /// The password-reset mail (variables `token`, `username`, `user_uuid`, `email_address`
    /// and the connection's `hostname`, `port`, `prefix`).
    pub fn reset(
        &self,
        to: Party,
        context: &Map<String, Value>,
    ) -> Result<Outgoing, templates::TemplateError> {
        self.compose(
            &self.settings.reset_from,
            TemplateKind::ResetBody,
            TemplateKind::ResetSubject,
            to,
            context,
        )
    }
}

/// The domain of an address, the only part of it a log line shows.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("(no domain)", |(_, d)| d)
}

/// The template variables taken from the request as the original takes them: `hostname` and
/// `port` from the `Host` header, `prefix` from `X-Script-Name` (each only when present).
pub fn connection_params(host: Option<&str>, script_name: Option<&str>) -> Map<String, Value> {
    let mut params = Map::new();
    if let Some(host) = host {
        // The authority of `//<host>`: an optional port after the last `:` outside brackets.
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if !port.contains(']') => (name, Some(port)),
            _ => (host, None),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if !name.is_empty() {
            params.insert("hostname".into(), Value::from(name.to_ascii_lowercase()));
        }
        if let Some(port) = port.and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0) {
            params.insert("port".into(), Value::from(port));
        }
    }
    if let Some(prefix) = script_name.filter(|p| !p.is_empty()) {
        params.insert("prefix".into(), Value::from(prefix));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn smtp_defaults_and_extensions() {
        let s = SmtpSettings::from_value(&json!({"hostname": "localhost", "port": 25})).unwrap();
        assert_eq!(
            (s.hostname.as_str(), s.port, s.security),
            ("localhost", 25, Security::None)
        );
        assert_eq!(s.credentials, None);
        assert_eq!(s.timeout, Duration::from_secs(10));
        let s = SmtpSettings::from_value(&json!({
            "hostname": "mx", "port": 587, "starttls": true,
            "username": "u", "password": "secret-pw", "timeout": 2, "retry_max_age": 60,
            "queue_size": 5,
        }))
        .unwrap();
        assert_eq!(s.security, Security::StartTls);
        assert_eq!(s.queue_size, 5);
        assert!(!format!("{s:?}").contains("secret-pw"));
        for bad in [
            json!({"port": 0}),
            json!({"port": "x"}),
            json!({"starttls": true, "tls": true}),
            json!({"username": "u"}),
            json!({"tls": "yes"}),
            json!({"timeout": 0}),
            json!("smtp"),
        ] {
            assert!(SmtpSettings::from_value(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_params_as_the_original() {
        let p = connection_params(Some("Example.COM:8443"), Some("/api/auth"));
        assert_eq!(
            Value::Object(p),
            json!({"hostname": "example.com", "port": 8443, "prefix": "/api/auth"})
        );
        let p = connection_params(Some("example.com"), Some(""));
        assert_eq!(Value::Object(p), json!({"hostname": "example.com"}));
        let p = connection_params(Some("[::1]:9497"), None);
        assert_eq!(Value::Object(p), json!({"hostname": "::1", "port": 9497}));
        assert!(connection_params(None, None).is_empty());
    }

    #[test]
    fn only_the_domain_is_logged() {
        assert_eq!(domain_of("alice@example.com"), "example.com");
        assert_eq!(domain_of("nobody"), "(no domain)");
    }

    #[test]
    fn the_default_configuration_is_valid() {
        let s = MailSettings::from_config(&Config::default()).unwrap();
        assert_eq!(s.confirmation_expiration, 172_800);
        assert_eq!(s.reset_from.address, "noreply@wazo.community");
        assert_eq!(s.confirmation_get_mimetype, "text/html");
    }
}
