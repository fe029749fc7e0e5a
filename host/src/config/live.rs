//! The configuration as `GET /0.1/config` shows it, and the part `PATCH /0.1/config` changes
//! while the process runs (`debug`, `profiling_enabled`; not persisted, as in the original).

use std::sync::Mutex;

use serde_json::Value;

use super::schema::Config;
use crate::telemetry::logging::LogControl;

/// A setting that can be changed at run time (a JSON-Patch path of `PATCH /0.1/config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// `/debug`: logs at debug level, or at `log_level`.
    Debug,
    /// `/profiling_enabled`: accepted and shown, as in the original; this server has no
    /// profiler to turn on (see docs/compatibility.md).
    Profiling,
}

impl Switch {
    /// Every switch, by its JSON-Patch path.
    pub const PATHS: [(&'static str, Switch); 2] = [
        ("/debug", Switch::Debug),
        ("/profiling_enabled", Switch::Profiling),
    ];

    /// The switch at a JSON-Patch path.
    pub fn at(path: &str) -> Option<Switch> {
        Switch::PATHS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, s)| *s)
    }

    /// Its top-level key in the configuration.
    fn key(self) -> &'static str {
        match self {
            Switch::Debug => "debug",
            Switch::Profiling => "profiling_enabled",
        }
    }
}

/// The effective configuration, redacted once at startup ([`Config::redacted_json`]: no secret
/// ever leaves through the API), with the current value of its switches.
pub struct LiveConfig {
    described: Value,
    switches: Mutex<Switches>,
    log: LogControl,
}

#[derive(Debug, Clone, Copy)]
struct Switches {
    debug: bool,
    profiling: bool,
}

impl LiveConfig {
    /// `cfg` as loaded; `log` switches the level of the process's log.
    pub fn new(cfg: &Config, log: LogControl) -> LiveConfig {
        LiveConfig {
            described: cfg.redacted_json(),
            switches: Mutex::new(Switches {
                debug: cfg.debug,
                profiling: cfg.profiling_enabled,
            }),
            log,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Switches> {
        self.switches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration now.
    pub fn current(&self) -> Value {
        let switches = *self.lock();
        self.render(switches)
    }

    /// Applies `changes` in order, all of them (they are valid by construction), and returns
    /// the configuration after them.
    pub fn apply(&self, changes: &[(Switch, bool)]) -> Value {
        let mut switches = self.lock();
        for (switch, value) in changes {
            match switch {
                Switch::Debug => switches.debug = *value,
                Switch::Profiling => switches.profiling = *value,
            }
        }
        // Under the lock: concurrent patches leave the log level and the shown value agreeing.
        self.log.set_debug(switches.debug);
        if changes.iter().any(|(s, _)| *s == Switch::Debug) {
            log::info!(
                "debug logging turned {} through the API (until restart)",
                if switches.debug { "on" } else { "off" }
            );
        }
        self.render(*switches)
    }

    fn render(&self, switches: Switches) -> Value {
        let mut shown = self.described.clone();
        if let Value::Object(map) = &mut shown {
            map.insert(Switch::Debug.key().into(), Value::Bool(switches.debug));
            map.insert(
                Switch::Profiling.key().into(),
                Value::Bool(switches.profiling),
            );
        }
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_change_what_is_shown_and_secrets_stay_hidden() {
        let cfg = Config {
            db_uri: Some("postgresql://u:hunter2@localhost/db".into()),
            ..Config::default()
        };
        let live = LiveConfig::new(&cfg, LogControl::detached());
        let shown = live.current();
        assert_eq!(shown["debug"], false);
        assert_eq!(shown["profiling_enabled"], false);
        assert!(shown["rest_api"].is_object());
        assert!(!shown.to_string().contains("hunter2"));
        let after = live.apply(&[
            (Switch::Debug, true),
            (Switch::Profiling, true),
            (Switch::Debug, true),
        ]);
        assert_eq!(after["debug"], true);
        assert_eq!(after["profiling_enabled"], true);
        assert_eq!(after, live.current());
        assert_eq!(live.apply(&[(Switch::Debug, false)])["debug"], false);
        assert_eq!(live.apply(&[])["profiling_enabled"], true);
        assert_eq!(Switch::at("/debug"), Some(Switch::Debug));
        assert_eq!(Switch::at("/log_level"), None);
    }
}
