//! Telemetry: the log (and the request id every line of a request carries), the access log,
//! the spans, and the Prometheus metrics. See docs/configuration.md, "Telemetry".

pub mod logging;
pub mod metrics;
pub mod middleware;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::LogLevel;

/// The `metrics` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Record metrics and serve them at `GET /0.1/metrics` on the API port, to tokens granting
    /// `auth.metrics.read`.
    pub enabled: bool,
    /// Also serve them, without a token, at `GET /metrics` on this address and port (plain
    /// HTTP; meant for a local or private address). `None`: no listener of their own.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: None,
        }
    }
}

/// `access_log_level`: the level of the access log's line per request (a `log_level` name), or
/// `off` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLogLevel(pub Option<LogLevel>);

impl Default for AccessLogLevel {
    fn default() -> Self {
        AccessLogLevel(Some(LogLevel::Info))
    }
}

impl AccessLogLevel {
    /// The `log` level of the lines (`None`: no line).
    pub fn level(self) -> Option<log::Level> {
        self.0.and_then(|level| level.filter().to_level())
    }
}

impl Serialize for AccessLogLevel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.map_or("off", LogLevel::as_str))
    }
}

impl<'de> Deserialize<'de> for AccessLogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let level = String::deserialize(deserializer)?;
        if level.eq_ignore_ascii_case("off") {
            return Ok(AccessLogLevel(None));
        }
        LogLevel::parse(&level)
            .map(|level| AccessLogLevel(Some(level)))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "must be off, critical, error, warning, info, debug (or trace), got {level:?}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_log_levels_parse_as_log_levels_do() {
        for (text, level) in [
            ("off", None),
            ("OFF", None),
            ("CRITICAL", Some(log::Level::Error)),
            ("warn", Some(log::Level::Warn)),
            ("info", Some(log::Level::Info)),
            ("Debug", Some(log::Level::Debug)),
        ] {
            let parsed: AccessLogLevel = serde_json::from_value(json!(text)).unwrap();
            assert_eq!(parsed.level(), level, "{text}");
            let again: AccessLogLevel =
                serde_json::from_value(serde_json::to_value(parsed).unwrap()).unwrap();
            assert_eq!(again, parsed);
        }
        assert!(serde_json::from_value::<AccessLogLevel>(json!("verbose")).is_err());
        assert_eq!(AccessLogLevel::default().level(), Some(log::Level::Info));
    }
}
