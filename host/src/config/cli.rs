//! The command line: `wazo-auth [serve | bootstrap] [options]`, and its options as the
//! highest-priority configuration layer.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

use super::DEFAULT_CONFIG_FILE;

/// Label of the command line as a configuration source, in error messages.
pub(super) const CLI_SOURCE: &str = "command-line arguments";

/// Command-line arguments of `wazo-auth`.
///
/// All options are global: they may be given before or after the subcommand.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "wazo-auth",
    version,
    about = "Wazo authentication server",
    long_about = None
)]
pub struct Cli {
    /// The path to the main configuration file [default: /etc/wazo-auth/config.yml]
    #[arg(
        short = 'c',
        long = "config-file",
        visible_alias = "config",
        value_name = "PATH",
        global = true
    )]
    pub config_file: Option<PathBuf>,

    /// Log debug messages (sets `debug: true`)
    #[arg(short = 'd', long = "debug", global = true)]
    pub debug: bool,

    /// Log level: critical, error, warning, info, debug (or trace)
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,

    /// The file to log to (sets `log_filename`)
    #[arg(long = "log-file", value_name = "PATH", global = true)]
    pub log_file: Option<String>,

    /// Port on which the REST API listens (sets `rest_api.port`)
    #[arg(
        long = "listen-port",
        value_name = "PORT",
        value_parser = clap::value_parser!(u16).range(1..),
        global = true
    )]
    pub listen_port: Option<u16>,

    /// Address on which the REST API listens (sets `rest_api.listen`)
    #[arg(long = "listen-address", value_name = "ADDRESS", global = true)]
    pub listen_address: Option<String>,

    /// Accepted for compatibility: database migrations always run at startup
    #[arg(long = "db-upgrade-on-startup", global = true)]
    pub db_upgrade_on_startup: bool,

    /// What to do; `serve` when absent
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands of `wazo-auth`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the authentication server (the default)
    Serve,
    /// Create the initial administrator in the top tenant (idempotent), like the original's
    /// `wazo-auth-bootstrap initial-user`
    #[command(alias = "initial-user")]
    Bootstrap(BootstrapArgs),
    /// Import a database made by the original wazo-auth (read only) into this server's
    /// database: tenants, users with their passwords, groups, policies, e-mails, external auth,
    /// refresh tokens and live tokens. Run it again to pick up later changes.
    ImportOriginal(ImportArgs),
}

/// Options of `wazo-auth import-original`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ImportArgs {
    /// The original's database (a PostgreSQL URI); it is only read
    #[arg(long, value_name = "URI")]
    pub from: String,
    /// The database to import into [default: the configured `db_uri`, or the private database]
    #[arg(long, value_name = "URI")]
    pub to: Option<String>,
    /// Do everything, then roll back: print what would change, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as one JSON object
    #[arg(long)]
    pub json: bool,
}

/// Options of `wazo-auth bootstrap`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct BootstrapArgs {
    /// Username of the initial user
    #[arg(
        long,
        env = "WAZO_AUTH_BOOTSTRAP_USERNAME",
        default_value = "wazo-auth-cli"
    )]
    pub username: String,
    /// Its password [default: 28 random characters, printed]
    #[arg(long, env = "WAZO_AUTH_BOOTSTRAP_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Its purpose: user, internal or external_api
    #[arg(long, env = "WAZO_AUTH_BOOTSTRAP_PURPOSE", default_value = "internal")]
    pub purpose: String,
    /// Slug of the policy it gets
    #[arg(
        long = "policy-slug",
        env = "WAZO_AUTH_BOOTSTRAP_POLICY_SLUG",
        default_value = "wazo_default_master_user_policy"
    )]
    pub policy_slug: String,
}

impl Cli {
    /// The subcommand to run, `Serve` when none was given.
    pub fn subcommand(&self) -> Command {
        self.command.clone().unwrap_or(Command::Serve)
    }

    /// The main configuration file: `-c` or [`DEFAULT_CONFIG_FILE`].
    pub fn config_file_path(&self) -> PathBuf {
        self.config_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE))
    }

    /// The overrides given on the command line, as a configuration layer.
    pub(super) fn overrides(&self) -> Value {
        let mut layer = Map::new();
        if self.debug {
            layer.insert("debug".into(), Value::Bool(true));
        }
        if let Some(level) = &self.log_level {
            layer.insert("log_level".into(), Value::String(level.clone()));
        }
        if let Some(file) = &self.log_file {
            layer.insert("log_filename".into(), Value::String(file.clone()));
        }
        if self.db_upgrade_on_startup {
            layer.insert("db_upgrade_on_startup".into(), Value::Bool(true));
        }
        let mut rest_api = Map::new();
        if let Some(port) = self.listen_port {
            rest_api.insert("port".into(), Value::from(port));
        }
        if let Some(address) = &self.listen_address {
            rest_api.insert("listen".into(), Value::String(address.clone()));
        }
        if !rest_api.is_empty() {
            layer.insert("rest_api".into(), Value::Object(rest_api));
        }
        Value::Object(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    #[test]
    fn config_cli_overrides() {
        let dir =
            dir_with_main("rest_api:\n  port: 1000\n  listen: 10.0.0.1\nlog_level: warning\n");
        dir.write("conf.d/a.yml", "debug: false\n");
        let c = load_dir(
            &dir,
            &[
                "-d",
                "-l",
                "error",
                "--listen-port",
                "2000",
                "--listen-address",
                "0.0.0.0",
                "--db-upgrade-on-startup",
                "--log-file",
                "/tmp/x.log",
            ],
        )
        .unwrap();
        assert!(c.debug);
        assert_eq!(c.log_level, "error");
        assert_eq!(c.rest_api.port, 2000);
        assert_eq!(c.rest_api.listen, "0.0.0.0");
        assert!(c.db_upgrade_on_startup);
        assert_eq!(c.log_filename.as_deref(), Some("/tmp/x.log"));
        assert_eq!(c.log_level_filter(), log::LevelFilter::Debug);

        let message = error_of(load_dir(&dir, &["-l", "loud"]));
        assert!(
            message.starts_with("configuration error in command-line arguments: \"log_level\""),
            "{message}"
        );

        // parsing details
        let parsed = cli(&["--config", "/x.yml", "serve", "--listen-port", "1"]);
        assert_eq!(parsed.config_file, Some(PathBuf::from("/x.yml")));
        assert_eq!(parsed.subcommand(), Command::Serve);
        assert_eq!(parsed.listen_port, Some(1));
        assert_eq!(cli(&[]).subcommand(), Command::Serve);
        assert!(Cli::try_parse_from(["wazo-auth", "--listen-port", "0"]).is_err());
        assert!(Cli::try_parse_from(["wazo-auth", "--bogus"]).is_err());
    }
}
