//! `example_department`: an example metadata plugin (plugin-api 1.3).
//!
//! It adds `department` to the token metadata of the logins whose purpose it is mapped to:
//!
//! ```yaml
//! enabled_metadata_plugins:
//!   example_department: true
//! purpose_metadata_mapping:
//!   user: [example_department]
//! plugin_config:
//!   example_department:
//!     departments: {alice: sales, bob: support}   # by username (the login)
//!     default: none
//! ```
//!
//! Persistent metadata (kept with the refresh token of an offline login) records the
//! department the user had when the refresh token was issued.

use wazo_auth_plugin_api::serde_json::{self, Value};
use wazo_auth_plugin_api::{export_plugins, log, Args, ArgsExt, Host, MetadataPlugin, PluginError};

pub struct Department {
    departments: serde_json::Map<String, Value>,
    default: String,
}

impl Department {
    fn of(&self, login: &str) -> String {
        self.departments
            .get(login)
            .and_then(Value::as_str)
            .unwrap_or(&self.default)
            .to_string()
    }
}

impl MetadataPlugin for Department {
    fn load(_host: &Host, config: Value) -> Result<Self, PluginError> {
        let departments = match config.get("departments") {
            None => serde_json::Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(PluginError::config(
                    "departments must be a mapping of login to department",
                ))
            }
        };
        let default = config
            .get("default")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string();
        Ok(Department {
            departments,
            default,
        })
    }

    fn get_token_metadata(&self, login: &str, args: &Args) -> Result<Args, PluginError> {
        // The metadata built so far says who logged in; the login is what the user typed.
        let purpose = args
            .token_metadata()
            .and_then(|m| m.get("purpose"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        log::debug!("department of a {purpose} login");
        let mut m = Args::new();
        m.insert("department".into(), self.of(login).into());
        Ok(m)
    }

    fn get_persistent_metadata(&self, login: &str, _args: &Args) -> Result<Args, PluginError> {
        let mut m = Args::new();
        m.insert("department_at_issue".into(), self.of(login).into());
        Ok(m)
    }
}

export_plugins! { metadata_plugins: ["example_department" => Department] }
