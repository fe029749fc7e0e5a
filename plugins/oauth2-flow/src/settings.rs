//! The plugin's configuration: the provider's endpoints (the `google:` / `microsoft:` section of
//! the server configuration, handed over by the host) and the bounds of the flows.

use std::time::Duration;

use wazo_auth_plugin_api::serde_json::{Map, Value};
use wazo_auth_plugin_api::PluginError;

use crate::Provider;

/// The host adds the server's `oauth2_synchronization_ws_url_template` under this key.
pub const WS_TEMPLATE_KEY: &str = "oauth2_synchronization_ws_url_template";

/// What the plugin reads from its configuration section.
#[derive(Debug, Clone)]
pub struct Settings {
    pub authorization_base_url: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub token_url: String,
    /// The synchronization websocket, `{state}` standing for the flow's state.
    pub ws_url_template: String,
    /// Flows waiting for their code at once; further `POST`s answer 503.
    pub max_pending_flows: usize,
    /// Bound of the websocket's TCP connection and handshake.
    pub websocket_connect_timeout: Duration,
    /// How long a flow waits for the user to authorize (then its websocket is closed).
    pub authorization_timeout: Duration,
    /// Bound of one request to the token endpoint (connection included).
    pub token_request_timeout: Duration,
}

fn string(section: &Map<String, Value>, key: &str, default: &str) -> Result<String, PluginError> {
    match section.get(key) {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(PluginError::config(format!(
            "{key} must be a non-empty string"
        ))),
    }
}

fn seconds(section: &Map<String, Value>, key: &str, default: f64) -> Result<Duration, PluginError> {
    let value = match section.get(key) {
        None | Some(Value::Null) => default,
        Some(v) => v.as_f64().unwrap_or(f64::NAN),
    };
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(PluginError::config(format!(
            "{key} must be a number of seconds in (0, 86400]"
        )))
    }
}

impl Settings {
    /// Reads the section; absent keys take the packaged `config.yml`'s values (see
    /// [`Provider`]) and the documented bounds.
    pub fn read<P: Provider>(config: &Value) -> Result<Settings, PluginError> {
        let empty = Map::new();
        let section = match config {
            Value::Object(m) => m,
            Value::Null => &empty,
            _ => {
                return Err(PluginError::config(format!(
                    "the {} section must be a mapping",
                    P::AUTH_TYPE
                )))
            }
        };
        let scope = match section.get("scope") {
            None | Some(Value::Null) => P::SCOPE.iter().map(|s| s.to_string()).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| PluginError::config("scope must be a list of strings"))?,
            Some(_) => return Err(PluginError::config("scope must be a list of strings")),
        };
        // The original's google and microsoft plugins listen on `<websocket_host>/ws/<state>`;
        // `oauth2_synchronization_ws_url_template` (the host hands it over) serves when the
        // section has no websocket_host. Both default to wss://oauth.wazo.io.
        let ws_url_template = match section.get("websocket_host") {
            Some(Value::String(host)) if !host.is_empty() => {
                format!("{}/ws/{{state}}", host.trim_end_matches('/'))
            }
            None | Some(Value::Null) => {
                let t = string(section, WS_TEMPLATE_KEY, "wss://oauth.wazo.io/ws/{state}")?;
                if !t.contains("{state}") {
                    return Err(PluginError::config(format!(
                        "{WS_TEMPLATE_KEY} must contain {{state}}"
                    )));
                }
                t
            }
            Some(_) => {
                return Err(PluginError::config(
                    "websocket_host must be a non-empty string",
                ))
            }
        };
        let max_pending_flows = match section.get("max_pending_flows") {
            None | Some(Value::Null) => 32,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=10_000) => n as usize,
                _ => {
                    return Err(PluginError::config(
                        "max_pending_flows must be an integer in [1, 10000]",
                    ))
                }
            },
        };
        Ok(Settings {
            authorization_base_url: string(
                section,
                "authorization_base_url",
                P::AUTHORIZATION_BASE_URL,
            )?,
            redirect_uri: string(section, "redirect_uri", P::REDIRECT_URI)?,
            scope,
            token_url: string(section, "token_url", P::TOKEN_URL)?,
            ws_url_template,
            max_pending_flows,
            websocket_connect_timeout: seconds(section, "websocket_connect_timeout", 10.0)?,
            authorization_timeout: seconds(section, "authorization_timeout", 600.0)?,
            token_request_timeout: seconds(section, "token_request_timeout", 3.0)?,
        })
    }

    /// The websocket URL of a flow.
    pub fn ws_url(&self, state: &str) -> String {
        self.ws_url_template.replace("{state}", state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazo_auth_plugin_api::serde_json::json;

    struct P;
    impl Provider for P {
        const AUTH_TYPE: &'static str = "p";
        const NAME: &'static str = "P";
        const AUTHORIZATION_BASE_URL: &'static str = "https://a";
        const REDIRECT_URI: &'static str = "https://r";
        const TOKEN_URL: &'static str = "https://t";
        const SCOPE: &'static [&'static str] = &["s"];
        const AUTHORIZATION_PARAMS: &'static [(&'static str, &'static str)] = &[];
    }

    #[test]
    fn absent_keys_take_the_packaged_values_and_the_bounds() {
        let s = Settings::read::<P>(&json!({})).unwrap();
        assert_eq!(s.token_url, "https://t");
        assert_eq!(s.scope, vec!["s".to_string()]);
        assert_eq!(s.ws_url("abc"), "wss://oauth.wazo.io/ws/abc");
        assert_eq!(s.max_pending_flows, 32);
        assert_eq!(s.token_request_timeout, Duration::from_secs(3));
        assert_eq!(s.authorization_timeout, Duration::from_secs(600));
    }

    #[test]
    fn websocket_host_wins_over_the_template() {
        let both = json!({"websocket_host": "ws://h:1/", WS_TEMPLATE_KEY: "ws://other/x/{state}"});
        assert_eq!(
            Settings::read::<P>(&both).unwrap().ws_url("s"),
            "ws://h:1/ws/s"
        );
        let template = json!({"websocket_host": null, WS_TEMPLATE_KEY: "ws://other/x/{state}"});
        assert_eq!(
            Settings::read::<P>(&template).unwrap().ws_url("s"),
            "ws://other/x/s"
        );
    }

    #[test]
    fn bad_values_are_configuration_errors() {
        for bad in [
            json!([]),
            json!({"token_url": 3}),
            json!({"scope": "a"}),
            json!({"websocket_host": ""}),
            json!({WS_TEMPLATE_KEY: "ws://no-state"}),
            json!({"max_pending_flows": 0}),
            json!({"token_request_timeout": -1}),
            json!({"authorization_timeout": "x"}),
        ] {
            let e = Settings::read::<P>(&bad).err().unwrap();
            assert_eq!(e.kind, wazo_auth_plugin_api::ErrorKind::CONFIG, "{bad}");
        }
    }
}
