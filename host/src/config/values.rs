//! Typed configuration values: closed sets of names as enums, bounded numbers as range-checked
//! newtypes.
//!
//! Each type checks itself while it is deserialized, so a bad value is reported like a value of
//! the wrong type, naming the file (or the command line) and the dotted key; for example
//! `"db_timeout": must be a number of seconds > 0 (at most 86400), got 0`. The value is first
//! read as its plain type (a string, an integer, a number), so wrong types keep serde's messages
//! (rewritten by `validate::describe_serde_error`). Values serialize as that plain type.

use std::fmt;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Upper bound of `default_token_lifetime` (10 years, in seconds).
const MAX_TOKEN_LIFETIME: u64 = 315_360_000;

/// Upper bound of `db_timeout`: a day. A larger value is a mistake.
const MAX_DB_TIMEOUT: f64 = 86_400.0;

/// Upper bound of `rest_api.request_read_timeout`: an hour. A larger value is a mistake.
const MAX_READ_TIMEOUT: f64 = 3_600.0;

/// `seconds` as a duration; huge values saturate instead of panicking.
fn duration_of(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

// ---------------------------------------------------------------------------
// Closed sets
// ---------------------------------------------------------------------------

/// `log_level`: critical, error, warning (or warn), info, debug or trace, in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Logs like `Error` (the original's `CRITICAL` level).
    Critical,
    Error,
    Warning,
    Info,
    Debug,
    /// An extension of this server.
    Trace,
}

impl LogLevel {
    pub fn parse(level: &str) -> Option<LogLevel> {
        Some(match level.to_ascii_lowercase().as_str() {
            "critical" => LogLevel::Critical,
            "error" => LogLevel::Error,
            "warning" | "warn" => LogLevel::Warning,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Critical => "critical",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The `log` filter of this level.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Critical | LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warning => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// A level equals the names that denote it (`Warning == "WARN"`).
impl PartialEq<&str> for LogLevel {
    fn eq(&self, other: &&str) -> bool {
        LogLevel::parse(other) == Some(*self)
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let level = String::deserialize(deserializer)?;
        LogLevel::parse(&level).ok_or_else(|| {
            D::Error::custom(format!(
                "must be one of critical, error, warning, info, debug (or trace), got {level:?}"
            ))
        })
    }
}

/// `bootstrap_user_purpose`: the purpose of the bootstrap user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    User,
    Internal,
    ExternalApi,
}

impl Purpose {
    pub fn parse(purpose: &str) -> Option<Purpose> {
        Some(match purpose {
            "user" => Purpose::User,
            "internal" => Purpose::Internal,
            "external_api" => Purpose::ExternalApi,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::User => "user",
            Purpose::Internal => "internal",
            Purpose::ExternalApi => "external_api",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Purpose {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Purpose {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let purpose = String::deserialize(deserializer)?;
        Purpose::parse(&purpose).ok_or_else(|| {
            D::Error::custom(format!(
                "must be one of user, internal, external_api, got {purpose:?}"
            ))
        })
    }
}

/// `password_hash_scheme` as the core's [`Scheme`](wazo_auth_core::password::Scheme), by name
/// (`#[serde(with = "password_scheme")]`).
pub(super) mod password_scheme {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use wazo_auth_core::password::Scheme;

    pub fn serialize<S: Serializer>(scheme: &Scheme, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(scheme.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Scheme, D::Error> {
        let name = String::deserialize(deserializer)?;
        Scheme::parse(&name).ok_or_else(|| {
            D::Error::custom(format!("must be pbkdf2_sha512 or argon2id, got {name:?}"))
        })
    }
}

// ---------------------------------------------------------------------------
// Bounded numbers
// ---------------------------------------------------------------------------

/// Declares a newtype over a number, checked by `$ok` when deserialized (or built with `new`);
/// a value out of range is refused with the message `"{$rule}, got {value}"`. Inside the
/// `config` module the field is reachable, for the built-in defaults (every load deserializes
/// them again, so a bad default fails every load and the tests).
macro_rules! bounded {
    ($(#[$meta:meta])* $name:ident($inner:ty): |$v:ident| $ok:expr, $rule:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
        pub struct $name(pub(super) $inner);

        impl $name {
            /// The value, when it is in range.
            pub fn new($v: $inner) -> Option<Self> {
                ($ok).then_some($name($v))
            }

            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl PartialEq<$inner> for $name {
            fn eq(&self, other: &$inner) -> bool {
                self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <$inner>::deserialize(deserializer)?;
                $name::new(value)
                    .ok_or_else(|| D::Error::custom(format!(concat!($rule, ", got {}"), value)))
            }
        }
    };
}

bounded! {
    /// `default_token_lifetime`: seconds, 1..=315360000.
    TokenLifetime(u64): |v| (1..=MAX_TOKEN_LIFETIME).contains(&v),
    "must be between 1 and 315360000 seconds"
}

impl TokenLifetime {
    pub fn seconds(self) -> i64 {
        // at most MAX_TOKEN_LIFETIME
        self.0 as i64
    }
}

bounded! {
    /// A count of at least 1 (`token_cleanup_batch_size`, `max_user_concurrent_sessions`,
    /// `rest_api.max_threads`).
    Count(u32): |v| v >= 1,
    "must be at least 1"
}

bounded! {
    /// `rest_api.port`: any; 0 lets the system pick a free port (reported in the log and in
    /// `rest_api.bound_address_file`). A number above 65535 is refused as not a `u16`.
    Port(u16): |_port| true,
    "must be between 0 and 65535"
}

bounded! {
    /// `rest_api.workers`: 0 (automatic, see `RestApi::worker_count`) to 256.
    Workers(u32): |v| v <= 256,
    "must be between 0 (automatic) and 256"
}

bounded! {
    /// `rest_api.max_body_bytes`: at least 1024.
    BodyLimit(usize): |v| v >= 1024,
    "must be at least 1024"
}

bounded! {
    /// `token_cleanup_interval`: seconds >= 0; 0 disables the purge of expired tokens.
    CleanupInterval(f64): |v| v.is_finite() && v >= 0.0,
    "must be a number of seconds >= 0 (0 disables the cleanup)"
}

impl CleanupInterval {
    /// The time between two purges, `None` when they are disabled.
    pub fn period(self) -> Option<Duration> {
        (self.0 > 0.0).then(|| duration_of(self.0))
    }
}

bounded! {
    /// `token_cleanup_max_rate`: sessions purged per second at most, >= 0; 0: no limit.
    PurgeRate(f64): |v| v.is_finite() && v >= 0.0,
    "must be a number of sessions per second >= 0 (0: no limit)"
}

impl PurgeRate {
    /// The limit, `None` when there is none.
    pub fn rate(self) -> Option<f64> {
        (self.0 > 0.0).then_some(self.0)
    }
}

bounded! {
    /// `db_connect_retry_timeout_seconds`: seconds >= 0.
    RetryTimeout(f64): |v| v.is_finite() && v >= 0.0,
    "must be a number of seconds >= 0"
}

impl RetryTimeout {
    pub fn duration(self) -> Duration {
        duration_of(self.0)
    }
}

bounded! {
    /// `db_timeout`: seconds, > 0 and at most a day.
    DbTimeout(f64): |v| v.is_finite() && v > 0.0 && v <= MAX_DB_TIMEOUT,
    "must be a number of seconds > 0 (at most 86400)"
}

impl DbTimeout {
    pub fn duration(self) -> Duration {
        duration_of(self.0)
    }
}

bounded! {
    /// `plugin_call_timeout`: seconds, > 0.
    CallTimeout(f64): |v| v.is_finite() && v > 0.0,
    "must be a number of seconds > 0"
}

impl CallTimeout {
    pub fn duration(self) -> Duration {
        duration_of(self.0)
    }
}

bounded! {
    /// `rest_api.request_read_timeout`: seconds, > 0 and at most an hour.
    ReadTimeout(f64): |v| v.is_finite() && v > 0.0 && v <= MAX_READ_TIMEOUT,
    "must be a number of seconds > 0 (at most 3600)"
}

impl ReadTimeout {
    pub fn duration(self) -> Duration {
        duration_of(self.0)
    }
}

bounded! {
    /// `rest_api.shutdown_drain`: seconds, 0 to an hour.
    ShutdownDrain(f64): |v| v.is_finite() && (0.0..=MAX_READ_TIMEOUT).contains(&v),
    "must be a number of seconds >= 0 (at most 3600)"
}

impl ShutdownDrain {
    pub fn duration(self) -> Duration {
        duration_of(self.0)
    }
}

bounded! {
    /// `rest_api.shutdown_timeout`: seconds, > 0 and at most an hour.
    ShutdownTimeout(f64): |v| v.is_finite() && v > 0.0 && v <= MAX_READ_TIMEOUT,
    "must be a number of seconds > 0 (at most 3600)"
}

impl ShutdownTimeout {
    /// Whole seconds, rounded up (what actix takes).
    pub fn whole_seconds(self) -> u64 {
        self.0.ceil() as u64
    }
}

bounded! {
    /// `bus.outbox_max_age`: seconds, > 0.
    OutboxMaxAge(f64): |v| v.is_finite() && v > 0.0,
    "must be a number of seconds > 0"
}

impl OutboxMaxAge {
    pub fn duration(self) -> Duration {
        duration_of(self.0)
    }
}

bounded! {
    /// `bus.outbox_max_rows`: at least 1 (and at most 2^62).
    OutboxMaxRows(u64): |v| (1..=1 << 62).contains(&v),
    "must be an integer between 1 and 4611686018427387904"
}

impl OutboxMaxRows {
    pub fn rows(self) -> i64 {
        // at most 2^62
        self.0 as i64
    }
}

/// One entry of `rest_api.trusted_proxies`: a network in CIDR form (`10.0.0.0/8`, `fd00::/8`),
/// or one address (`192.0.2.10`, the same as `/32`). Serialized in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet(ipnet::IpNet);

impl ProxyNet {
    pub fn parse(text: &str) -> Option<ProxyNet> {
        let net = match text.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => ipnet::IpNet::from(text.parse::<std::net::IpAddr>().ok()?),
        };
        Some(ProxyNet(net))
    }

    pub fn net(self) -> ipnet::IpNet {
        self.0
    }
}

impl Serialize for ProxyNet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProxyNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ProxyNet::parse(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "must be an IP network in CIDR form (such as 10.0.0.0/8 or fd00::/8) or an IP \
                 address, got {text:?}"
            ))
        })
    }
}

/// `refresh_token_lifetime`: seconds; 0 = refresh tokens never expire (the original).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RefreshTokenLifetime(pub(super) u64);

impl RefreshTokenLifetime {
    /// The lifetime in seconds, `None` when refresh tokens never expire.
    pub fn seconds(self) -> Option<i64> {
        (self.0 > 0).then(|| i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn config_out_of_range_values() {
        let dir = dir_with_main("");
        let file = dir.write("conf.d/10-x.yml", "default_token_lifetime: 0\n");
        let message = error_of(load_dir(&dir, &[]));
        assert_eq!(
            message,
            format!(
                "configuration error in {}: \"default_token_lifetime\": must be between 1 and 315360000 seconds, got 0",
                file.display()
            )
        );

        for (yaml, key) in [
            (
                "default_token_lifetime: 315360001\n",
                "default_token_lifetime",
            ),
            ("plugin_call_timeout: 0\n", "plugin_call_timeout"),
            ("db_timeout: 0\n", "db_timeout"),
            ("db_timeout: -1\n", "db_timeout"),
            ("token_cleanup_batch_size: 0\n", "token_cleanup_batch_size"),
            ("token_cleanup_interval: -1\n", "token_cleanup_interval"),
            ("log_level: verbose\n", "log_level"),
            (
                "bootstrap_user_on_startup: true\n",
                "bootstrap_user_on_startup",
            ),
            ("default_policies: [a]\n", "default_policies"),
        ] {
            let dir = dir_with_main(yaml);
            let message = error_of(load_dir(&dir, &[]));
            assert!(message.contains(&format!("\"{key}\"")), "{yaml}: {message}");
            assert!(message.contains("config.yml"), "{yaml}: {message}");
        }

        // accepted here, unlike the original
        let dir = dir_with_main("token_cleanup_interval: 0.5\n");
        assert_eq!(load_dir(&dir, &[]).unwrap().token_cleanup_interval, 0.5);
        // port 0: the system picks the port, reported in rest_api.bound_address_file
        let dir = dir_with_main("rest_api:\n  port: 0\n  bound_address_file: /run/a\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.rest_api.port, 0);
        assert_eq!(c.rest_api.bound_address_file.as_deref(), Some("/run/a"));
    }

    /// The message of every value refused by its type, whole (they were checks of `validate`
    /// before the values were typed; the wording is part of the interface).
    #[test]
    fn refused_values_are_described_as_before() {
        for (yaml, expected) in [
            (
                "log_level: verbose",
                r#""log_level": must be one of critical, error, warning, info, debug (or trace), got "verbose""#,
            ),
            (
                "default_token_lifetime: 315360001",
                r#""default_token_lifetime": must be between 1 and 315360000 seconds, got 315360001"#,
            ),
            (
                "token_cleanup_interval: -1",
                r#""token_cleanup_interval": must be a number of seconds >= 0 (0 disables the cleanup), got -1"#,
            ),
            (
                "token_cleanup_interval: -0.5",
                r#""token_cleanup_interval": must be a number of seconds >= 0 (0 disables the cleanup), got -0.5"#,
            ),
            (
                "token_cleanup_batch_size: 0",
                r#""token_cleanup_batch_size": must be at least 1, got 0"#,
            ),
            (
                "max_user_concurrent_sessions: 0",
                r#""max_user_concurrent_sessions": must be at least 1, got 0"#,
            ),
            (
                "db_connect_retry_timeout_seconds: -2",
                r#""db_connect_retry_timeout_seconds": must be a number of seconds >= 0, got -2"#,
            ),
            (
                "db_timeout: 0",
                r#""db_timeout": must be a number of seconds > 0 (at most 86400), got 0"#,
            ),
            (
                "db_timeout: 86400.5",
                r#""db_timeout": must be a number of seconds > 0 (at most 86400), got 86400.5"#,
            ),
            (
                "rest_api:\n  max_threads: 0",
                r#""rest_api.max_threads": must be at least 1, got 0"#,
            ),
            (
                "rest_api:\n  workers: 257",
                r#""rest_api.workers": must be between 0 (automatic) and 256, got 257"#,
            ),
            (
                "rest_api:\n  shutdown_drain: -1",
                r#""rest_api.shutdown_drain": must be a number of seconds >= 0 (at most 3600), got -1"#,
            ),
            (
                "rest_api:\n  shutdown_timeout: 0",
                r#""rest_api.shutdown_timeout": must be a number of seconds > 0 (at most 3600), got 0"#,
            ),
            (
                "rest_api:\n  max_body_bytes: 1023",
                r#""rest_api.max_body_bytes": must be at least 1024, got 1023"#,
            ),
            (
                "rest_api:\n  request_read_timeout: 0",
                r#""rest_api.request_read_timeout": must be a number of seconds > 0 (at most 3600), got 0"#,
            ),
            (
                "rest_api:\n  request_read_timeout: 3601",
                r#""rest_api.request_read_timeout": must be a number of seconds > 0 (at most 3600), got 3601"#,
            ),
            (
                "rest_api:\n  trusted_proxies: [127.0.0.0/8, 10.0.0.0/33]",
                r#""rest_api.trusted_proxies[1]": must be an IP network in CIDR form (such as 10.0.0.0/8 or fd00::/8) or an IP address, got "10.0.0.0/33""#,
            ),
            (
                "rest_api:\n  trusted_proxies: [localhost]",
                r#""rest_api.trusted_proxies[0]": must be an IP network in CIDR form (such as 10.0.0.0/8 or fd00::/8) or an IP address, got "localhost""#,
            ),
            (
                "rest_api:\n  trusted_proxies: ['10.0.0.0/8 ']",
                r#""rest_api.trusted_proxies[0]": must be an IP network in CIDR form (such as 10.0.0.0/8 or fd00::/8) or an IP address, got "10.0.0.0/8 ""#,
            ),
            (
                "rest_api:\n  trusted_proxies: 10.0.0.0/8",
                r#""rest_api.trusted_proxies": expected a list, got a string"#,
            ),
            (
                "rest_api:\n  trusted_proxies: [8]",
                r#""rest_api.trusted_proxies[0]": expected a string, got an integer (8)"#,
            ),
            (
                "password_hash_scheme: md5",
                r#""password_hash_scheme": must be pbkdf2_sha512 or argon2id, got "md5""#,
            ),
            (
                "plugin_call_timeout: 0",
                r#""plugin_call_timeout": must be a number of seconds > 0, got 0"#,
            ),
            (
                "default_policies: [a]",
                r#""default_policies": expected a mapping, got a list"#,
            ),
            (
                "all_users_policies: 3",
                r#""all_users_policies": expected a mapping, got an integer (3)"#,
            ),
            (
                "tenant_default_groups: null",
                r#""tenant_default_groups": expected a mapping, got null"#,
            ),
            (
                "bootstrap_user_purpose: admin",
                r#""bootstrap_user_purpose": must be one of user, internal, external_api, got "admin""#,
            ),
            // wrong types keep serde's descriptions
            (
                "log_level: 5",
                r#""log_level": expected a string, got an integer (5)"#,
            ),
            (
                "db_timeout: soon",
                r#""db_timeout": expected a number, got a string"#,
            ),
            (
                "rest_api:\n  workers: -1",
                r#""rest_api.workers": expected an integer between 0 and 4294967295, got -1"#,
            ),
            (
                "max_user_concurrent_sessions: 1.5",
                r#""max_user_concurrent_sessions": expected an integer, got a decimal number (1.5)"#,
            ),
        ] {
            let dir = dir_with_main(&format!("{yaml}\n"));
            let message = error_of(load_dir(&dir, &[]));
            let file = dir.path("config.yml");
            assert_eq!(
                message,
                format!("configuration error in {}: {expected}", file.display()),
                "{yaml}"
            );
        }
        // trusted proxies: networks, single addresses (either family), or none
        let dir = dir_with_main(
            "rest_api:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.10, 'fd00::/8', '::1', 10.1.2.3/16]\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        let nets: Vec<String> = c
            .rest_api
            .trusted_proxies
            .iter()
            .map(|n| n.net().to_string())
            .collect();
        assert_eq!(
            nets,
            [
                "10.0.0.0/8",
                "192.0.2.10/32",
                "fd00::/8",
                "::1/128",
                "10.1.2.3/16"
            ]
        );
        let trust = c.rest_api.proxy_trust();
        assert!(trust.trusts("10.1.200.3".parse().unwrap()));
        assert!(!trust.trusts("127.0.0.1".parse().unwrap()));
        assert_eq!(
            c.redacted_json()["rest_api"]["trusted_proxies"][1],
            "192.0.2.10/32"
        );
        let dir = dir_with_main("rest_api:\n  trusted_proxies: []\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert!(!c
            .rest_api
            .proxy_trust()
            .trusts("127.0.0.1".parse().unwrap()));
        let dir = dir_with_main("rest_api:\n  request_read_timeout: 2.5\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(
            c.rest_api.request_read_timeout.duration(),
            std::time::Duration::from_millis(2500)
        );
        // spellings of the log level
        for level in ["CRITICAL", "Warn", "warning", "trace"] {
            let dir = dir_with_main(&format!("log_level: {level}\n"));
            assert_eq!(load_dir(&dir, &[]).unwrap().log_level, level);
        }
    }
}
