//! Command line and configuration file handling.
//!
//! Compatible with the original wazo-auth (`wazo_auth/config.py` + xivo's
//! `read_config_file_hierarchy_accumulating_list`):
//!
//! * sources, highest priority first: command-line arguments, the files of
//!   `extra_config_files` (only `*.yml`, no dot-files, alphabetical order, the
//!   EARLIER file wins), the main file (`-c`, default
//!   `/etc/wazo-auth/config.yml`), built-in defaults;
//! * mappings are deep-merged (a source never replaces a whole mapping of a
//!   lower-priority source); lists found in several files accumulate (the
//!   higher-priority file's items first), while a file's list replaces the
//!   built-in default list;
//! * YAML merge keys (`<<`) and xivo's `!exec {command: "..."}` tag are
//!   supported.
//!
//! Differences: unknown keys and mistyped values are startup errors (naming
//! the file and the dotted key), instead of being ignored; so is an extra
//! file that is not valid YAML (the original skips it with a message); keys of the
//! original that this server does not interpret are accepted unchanged so
//! that an existing configuration loads; `--listen-port` sets
//! `rest_api.port` (the original sets `rest_api.listen`, a bug); a relative
//! `extra_config_files` is relative to the main file's directory.
//!
//! One module per job: `cli` (the command line), `schema` (the typed configuration and its
//! defaults; bounded values and closed sets are typed by `values`), `layering` (the sources and
//! how they merge), `validate` (error messages, cross-field rules), `describe` (the redacted
//! description) and `live` (what `/0.1/config` shows and changes at run time).

mod cli;
mod describe;
mod layering;
mod live;
mod schema;
#[cfg(test)]
mod test_support;
mod validate;
mod values;

use std::fmt;

pub use cli::{BootstrapArgs, Cli, Command, ImportArgs};
pub use describe::REDACTED;
pub use live::{LiveConfig, Switch};
pub use schema::{Amqp, Bus, Config, Cors, DbPooler, LoginThrottle, ManagedDb, RestApi};
pub use values::{
    BodyLimit, CallTimeout, CleanupInterval, Count, DbTimeout, LogLevel, OutboxMaxAge,
    OutboxMaxRows, Port, Purpose, RefreshTokenLifetime, RetryTimeout, TokenLifetime, Workers,
};

/// Main configuration file used when `-c` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/wazo-auth/config.yml";
/// Default value of `extra_config_files`.
pub const DEFAULT_EXTRA_CONFIG_FILES: &str = "/etc/wazo-auth/conf.d";

/// A configuration error; the message names the source (file or command
/// line) and the dotted key when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    fn new(source: Option<&str>, detail: impl fmt::Display) -> Self {
        let message = match source {
            Some(source) => format!("configuration error in {source}: {detail}"),
            None => format!("configuration error: {detail}"),
        };
        ConfigError { message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Loads the configuration: built-in defaults, the main file, the extra
/// files, then the command-line overrides; checks types, unknown keys and
/// ranges. `uuid` falls back to the `XIVO_UUID` environment variable.
pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
    let env_uuid = std::env::var("XIVO_UUID").ok().filter(|u| !u.is_empty());
    load_with_env_uuid(cli, env_uuid)
}

fn load_with_env_uuid(cli: &Cli, env_uuid: Option<String>) -> Result<Config, ConfigError> {
    let layering::Layers {
        main_path,
        files,
        sources,
        mut merged,
    } = layering::read(cli)?;
    let obsolete_keys = schema::strip_obsolete(&mut merged);
    let mut config = validate::typed(&merged).map_err(|detail| {
        // The files were checked one by one already: this is a value of the command line (or
        // of a file, should a combination fail); name whoever set it.
        let origin = layering::origin_of(&sources, &detail.path);
        ConfigError::new(origin, detail.message)
    })?;

    config.config_file = Some(main_path.display().to_string());
    config.obsolete_keys = obsolete_keys;
    config.loaded_files = files;
    if config.uuid.is_none() {
        config.uuid = env_uuid;
    }
    validate::validate(&config, &sources)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    #[test]
    fn config_uuid_from_environment_when_unset() {
        let dir = dir_with_main("");
        let main = dir.path("config.yml");
        let args = cli(&["-c", main.to_str().unwrap()]);
        let c = load_with_env_uuid(&args, Some("env-uuid".into())).unwrap();
        assert_eq!(c.uuid.as_deref(), Some("env-uuid"));
        let dir = dir_with_main("uuid: file-uuid\n");
        let main = dir.path("config.yml");
        let args = cli(&["-c", main.to_str().unwrap()]);
        let c = load_with_env_uuid(&args, Some("env-uuid".into())).unwrap();
        assert_eq!(c.uuid.as_deref(), Some("file-uuid"));
    }
}
