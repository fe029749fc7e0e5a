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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Main configuration file used when `-c` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/wazo-auth/config.yml";
/// Default value of `extra_config_files`.
pub const DEFAULT_EXTRA_CONFIG_FILES: &str = "/etc/wazo-auth/conf.d";
/// Replacement text of secrets in [`Config::redacted_json`].
pub const REDACTED: &str = "********";

/// Upper bound of `default_token_lifetime` (10 years, in seconds).
const MAX_TOKEN_LIFETIME: u64 = 315_360_000;

/// Label of the command line as a configuration source, in error messages.
const CLI_SOURCE: &str = "command-line arguments";

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

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
    fn overrides(&self) -> Value {
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

// ---------------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------------

/// The effective configuration.
///
/// Keys of the original that this server does not interpret are kept as
/// loose JSON values (with the original's defaults) so that existing files
/// load and `GET /0.1/config` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    // ----- general -----
    /// The main configuration file actually used (set by [`load`]).
    pub config_file: Option<String>,
    /// Directory of extra configuration files (`*.yml`); relative to the main
    /// file's directory when relative. Only read from the main file.
    pub extra_config_files: String,
    pub debug: bool,
    /// critical, error, warning, info, debug (trace: extension).
    pub log_level: String,
    /// `None` = log to stderr. (The original's default is
    /// `/var/log/wazo-auth.log`; its packaged config.yml sets it too.)
    pub log_filename: Option<String>,
    /// Accepted and exposed through `/0.1/config` (patchable there).
    pub profiling_enabled: bool,
    /// The original drops privileges to this system user. Not interpreted.
    pub user: Value,
    /// The xivo/wazo uuid (tokens' `xivo_uuid`, bus origin). From the
    /// `XIVO_UUID` environment variable when not set in the configuration.
    pub uuid: Option<String>,

    // ----- tokens and sessions -----
    /// Seconds, 1..=315360000.
    pub default_token_lifetime: u64,
    /// Seconds between purges of expired tokens; 0 disables the purge. (The
    /// original rejects values in (0, 1); they are accepted here.)
    pub token_cleanup_interval: f64,
    pub token_cleanup_batch_size: u32,
    pub max_user_concurrent_sessions: u32,
    /// New: how new passwords are hashed: `pbkdf2_sha512` (the original's scheme, default) or
    /// `argon2id`. Existing hashes of the other scheme are upgraded at the next successful login.
    pub password_hash_scheme: String,
    /// New: the file holding the server's secret keys (refresh tokens, encrypted data); created
    /// with a fresh key when missing. Relative to the current directory.
    pub secret_key_file: PathBuf,
    /// New: lifetime of refresh tokens in seconds; 0 = they never expire (the original).
    pub refresh_token_lifetime: u64,
    /// New: how many valid tokens each process keeps in memory (and as many unknown ids).
    pub token_cache_size: usize,
    /// New: failed-login throttling.
    pub login_throttle: LoginThrottle,
    /// New, for bench/run.sh only: serve `GET /0.1/_bench/ceiling`, a trivial handler giving the
    /// throughput ceiling of the HTTP stack.
    pub benchmark_route: bool,

    // ----- database -----
    /// `None` = the server runs and manages a private PostgreSQL cluster (see
    /// `managed_db`). (The original's default is the fixed URI
    /// `postgresql://asterisk:proformatique@localhost/asterisk`.)
    pub db_uri: Option<String>,
    pub db_connect_retry_timeout_seconds: f64,
    /// New: seconds (> 0) a request may wait for the database: getting a connection (waiting
    /// for a free one, connecting) and each statement (`statement_timeout`). When it is
    /// exceeded or the database is down, the request answers 503.
    pub db_timeout: f64,
    /// Accepted for compatibility; migrations always run at startup.
    pub db_upgrade_on_startup: bool,
    /// New: the private PostgreSQL used when `db_uri` is unset.
    pub managed_db: ManagedDb,

    // ----- policies and groups -----
    pub update_policy_on_startup: bool,
    /// Deprecated since 21.14 in the original: backend name -> policy slug.
    pub backend_policies: BTreeMap<String, String>,
    pub default_user_policy: Option<String>,
    /// slug -> {acl, description, ...} (a mapping)
    pub default_policies: Value,
    /// slug -> bool (a mapping)
    pub all_users_policies: Value,
    /// slug -> {policies: {slug: bool}, ...} (a mapping)
    pub tenant_default_groups: Value,

    // ----- bootstrap user -----
    pub bootstrap_user_on_startup: bool,
    pub bootstrap_user_username: Option<String>,
    pub bootstrap_user_password: Option<String>,
    pub bootstrap_user_purpose: String,
    pub bootstrap_user_policy_slug: String,

    // ----- REST API -----
    pub rest_api: RestApi,

    // ----- plugins -----
    pub enabled_backend_plugins: BTreeMap<String, bool>,
    pub enabled_external_auth_plugins: BTreeMap<String, bool>,
    /// New: where plugin libraries are looked up; see
    /// [`Config::effective_plugin_dir`]. Relative to the current directory.
    pub plugin_dir: Option<PathBuf>,
    /// New: load plugins even from a directory writable by other users.
    pub allow_insecure_plugin_dir: bool,
    /// New: seconds a plugin call may take (> 0).
    pub plugin_call_timeout: f64,
    /// New: each plugin's own configuration, by plugin name.
    pub plugin_config: BTreeMap<String, Value>,

    // ----- accepted, not interpreted (yet) -----
    pub enabled_http_plugins: Value,
    pub enabled_metadata_plugins: Value,
    pub purpose_metadata_mapping: Value,
    pub idp_plugins: Value,
    pub amqp: Value,
    pub consul: Value,
    pub service_discovery: Value,
    pub smtp: Value,
    pub email_notification_plugin: Value,
    pub password_reset_expiration: Value,
    pub password_reset_from_name: Value,
    pub password_reset_from_address: Value,
    pub password_reset_email_template: Value,
    pub password_reset_email_subject_template: Value,
    pub email_confirmation_expiration: Value,
    pub email_confirmation_template: Value,
    pub email_confirmation_subject_template: Value,
    pub email_confirmation_from_name: Value,
    pub email_confirmation_from_address: Value,
    pub email_confirmation_get_response_body_template: Value,
    pub email_confirmation_get_mimetype: Value,
    pub oauth2_synchronization_ws_url_template: Value,
    pub oauth2_synchronization_redirect_url_template: Value,
    pub saml: Value,
    /// OAuth settings of the `google` external plugin (packaged config.yml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google: Option<Value>,
    /// OAuth settings of the `microsoft` external plugin (packaged config.yml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub microsoft: Option<Value>,

    /// Top-level keys of earlier wazo-auth/xivo-auth versions found in the
    /// configuration (see `OBSOLETE_KEYS`): accepted and ignored; the caller
    /// may warn about them.
    #[serde(skip)]
    pub obsolete_keys: Vec<String>,
    /// The configuration files read, highest priority first (set by [`load`]).
    #[serde(skip)]
    pub loaded_files: Vec<PathBuf>,
}

/// `rest_api` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestApi {
    pub listen: String,
    pub port: u16,
    pub max_threads: u32,
    /// New: HTTP worker threads; 0 (the default) means two per CPU, at most 16 (see
    /// [`RestApi::worker_count`]).
    pub workers: u32,
    pub num_proxies: u32,
    /// PEM certificate chain; with `private_key`, the API is served over HTTPS (see
    /// `crate::tls`). Deprecated in the original (TLS is done by a reverse proxy).
    pub certificate: Option<String>,
    /// PEM private key of `certificate` (PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<String>,
    pub cors: Cors,
    /// New: maximum size of a request body, in bytes.
    pub max_body_bytes: usize,
    /// Obsolete (`rest_api.https` of old versions): accepted, ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https: Option<Value>,
    /// Obsolete: accepted, ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphers: Option<Value>,
}

/// `rest_api.cors` section. Besides `enabled` and `allow_headers`, the
/// original passes every key to Flask-CORS; those are accepted here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cors {
    pub enabled: bool,
    pub allow_headers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origins: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supports_credentials: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_wildcard: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vary_header: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always_send: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intercept_exceptions: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_private_network: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
}

/// `managed_db` section (new): the private PostgreSQL cluster used when
/// `db_uri` is not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagedDb {
    /// Cluster directory; relative to the current directory when relative.
    pub data_dir: PathBuf,
    /// Directory of the PostgreSQL server programs (`initdb`, `postgres`);
    /// `None` = look them up.
    pub bin_dir: Option<PathBuf>,
    /// System user running PostgreSQL when the server runs as root.
    pub os_user: Option<String>,
}

/// `login_throttle` section (new): failed-login throttling, shared by every process through the
/// database. After the free failures, each failure blocks the login (or client address) for a
/// delay doubling from `base_delay` up to `max_delay` seconds; keys left alone `forget_after`
/// seconds start again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginThrottle {
    pub enabled: bool,
    pub free_attempts_per_login: u32,
    pub free_attempts_per_address: u32,
    pub base_delay: f64,
    pub max_delay: f64,
    pub forget_after: f64,
    /// Client addresses never throttled by address (local services); their logins still are.
    pub exempt_addresses: Vec<String>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let d = wazo_auth_core::throttle::ThrottleConfig::default();
        LoginThrottle {
            enabled: d.enabled,
            free_attempts_per_login: d.free_per_login as u32,
            free_attempts_per_address: d.free_per_address as u32,
            base_delay: d.base_delay,
            max_delay: d.max_delay,
            forget_after: d.forget_after,
            exempt_addresses: d.exempt_addresses,
        }
    }
}

impl LoginThrottle {
    pub fn to_core(&self) -> wazo_auth_core::throttle::ThrottleConfig {
        wazo_auth_core::throttle::ThrottleConfig {
            enabled: self.enabled,
            free_per_login: i32::try_from(self.free_attempts_per_login).unwrap_or(i32::MAX),
            free_per_address: i32::try_from(self.free_attempts_per_address).unwrap_or(i32::MAX),
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            forget_after: self.forget_after,
            exempt_addresses: self.exempt_addresses.clone(),
        }
    }
}

/// Top-level keys of earlier versions, accepted and ignored. (Includes the
/// keys with a stray trailing quote found in the original's packaged
/// config.yml.)
const OBSOLETE_KEYS: &[&str] = &[
    "confd",
    "confd_db_uri",
    "email_confirmation_get_reponse_body_template",
    "email_confirmation_get_reponse_body_template'",
    "email_confirmation_get_response_body_template'",
    "email_confirmation_get_mimetype'",
    "enabled_idp_plugins",
    "enabled_plugins",
    "enabled_service_plugins",
    "foreground",
    "init_key_filename",
    "init_policy_name",
    "ldap",
    "pid_filename",
    "service_config_dir",
    "session_cleanup_interval",
];

/// Mapping-typed sections (serde would otherwise accept a list for them).
const STRUCT_SECTIONS: &[&[&str]] = &[&["rest_api"], &["rest_api", "cors"], &["managed_db"]];

impl RestApi {
    /// The number of HTTP workers: `workers` when set, else two per CPU (at most 16). One
    /// worker per CPU leaves a worker's connections waiting a whole scheduler time slice
    /// whenever another busy thread (a co-located service, or a load generator) takes its CPU;
    /// measured on two CPUs, the p99 of token checks fell from 4-7 ms to under 0.5 ms with
    /// four workers at the same check throughput, while logins (which cross more threads) lost
    /// about a fifth (docs/benchmarks.md, item 10).
    pub fn worker_count(&self, cpus: usize) -> usize {
        match self.workers {
            0 => (2 * cpus).clamp(2, 16),
            n => n as usize,
        }
    }
}

impl Default for RestApi {
    fn default() -> Self {
        RestApi {
            listen: "127.0.0.1".into(),
            port: 9497,
            max_threads: 25,
            workers: 0,
            num_proxies: 1,
            certificate: None,
            private_key: None,
            cors: Cors::default(),
            max_body_bytes: 64 * 1024,
            https: None,
            ciphers: None,
        }
    }
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            enabled: true,
            allow_headers: [
                "Content-Type",
                "Authorization",
                "X-Auth-Token",
                "Wazo-Tenant",
                "Wazo-Session-Type",
            ]
            .iter()
            .map(|h| h.to_string())
            .collect(),
            origins: None,
            methods: None,
            expose_headers: None,
            supports_credentials: None,
            max_age: None,
            send_wildcard: None,
            vary_header: None,
            automatic_options: None,
            always_send: None,
            intercept_exceptions: None,
            allow_private_network: None,
            resources: None,
        }
    }
}

impl Default for ManagedDb {
    fn default() -> Self {
        ManagedDb {
            data_dir: PathBuf::from("var/postgres"),
            bin_dir: None,
            os_user: None,
        }
    }
}

fn bool_map(names: &[&str]) -> BTreeMap<String, bool> {
    names.iter().map(|n| (n.to_string(), true)).collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            config_file: None,
            extra_config_files: DEFAULT_EXTRA_CONFIG_FILES.into(),
            debug: false,
            log_level: "info".into(),
            log_filename: None,
            profiling_enabled: false,
            user: json!("wazo-auth"),
            uuid: None,
            default_token_lifetime: 7200,
            token_cleanup_interval: 60.0,
            token_cleanup_batch_size: 5000,
            max_user_concurrent_sessions: 100,
            db_uri: None,
            db_connect_retry_timeout_seconds: 300.0,
            db_timeout: 5.0,
            db_upgrade_on_startup: false,
            managed_db: ManagedDb::default(),
            update_policy_on_startup: true,
            backend_policies: BTreeMap::new(),
            default_user_policy: None,
            default_policies: json!({}),
            all_users_policies: json!({}),
            tenant_default_groups: json!({}),
            bootstrap_user_on_startup: false,
            bootstrap_user_username: None,
            bootstrap_user_password: None,
            bootstrap_user_purpose: "internal".into(),
            bootstrap_user_policy_slug: "wazo_default_master_user_policy".into(),
            rest_api: RestApi::default(),
            enabled_backend_plugins: bool_map(&["ldap_user", "wazo_user"]),
            enabled_external_auth_plugins: bool_map(&["google", "microsoft", "mobile"]),
            plugin_dir: None,
            allow_insecure_plugin_dir: false,
            plugin_call_timeout: 5.0,
            password_hash_scheme: "pbkdf2_sha512".to_string(),
            secret_key_file: PathBuf::from("/var/lib/wazo-auth/secret.keys"),
            refresh_token_lifetime: 0,
            token_cache_size: 100_000,
            login_throttle: LoginThrottle::default(),
            benchmark_route: false,
            plugin_config: BTreeMap::new(),
            enabled_http_plugins: json!({
                "api": true, "idp": true, "backends": true, "config": true,
                "email_confirm": true, "external": true, "group_policy": true,
                "groups": true, "ldap_config": true, "password_reset": true,
                "policies": true, "sessions": true, "status": true, "tenants": true,
                "tokens": true, "user_email": true, "user_group": true,
                "user_policy": true, "user_registration": false, "user_session": true,
                "users": true, "saml": true, "saml_config": true,
            }),
            enabled_metadata_plugins: json!({
                "default_user": true, "default_internal": true, "default_external_api": true,
            }),
            purpose_metadata_mapping: json!({"user": [], "internal": [], "external_api": []}),
            idp_plugins: json!({
                "saml": {"enabled": true, "priority": 1},
                "ldap": {"enabled": true, "priority": 2},
            }),
            amqp: json!({
                "uri": "amqp://guest:guest@localhost:5672/",
                "exchange_name": "xivo",
                "exchange_type": "topic",
            }),
            consul: json!({"scheme": "http", "port": 8500}),
            service_discovery: json!({
                "enabled": false,
                "advertise_address": "auto",
                "advertise_address_interface": "eth0",
                "advertise_port": 9497,
                "ttl_interval": 30,
                "refresh_interval": 27,
                "retry_interval": 2,
                "extra_tags": [],
            }),
            smtp: json!({"hostname": "localhost", "port": 25}),
            email_notification_plugin: json!("smtp"),
            password_reset_expiration: json!(172800),
            password_reset_from_name: json!("wazo-auth"),
            password_reset_from_address: json!("noreply@wazo.community"),
            password_reset_email_template: json!(
                "/var/lib/wazo-auth/templates/password_reset_email.jinja"
            ),
            password_reset_email_subject_template: json!(
                "/var/lib/wazo-auth/templates/password_reset_email_subject.jinja"
            ),
            email_confirmation_expiration: json!(172800),
            email_confirmation_template: json!(
                "/var/lib/wazo-auth/templates/email_confirmation.jinja"
            ),
            email_confirmation_subject_template: json!(
                "/var/lib/wazo-auth/templates/email_confirmation_subject.jinja"
            ),
            email_confirmation_from_name: json!("wazo-auth"),
            email_confirmation_from_address: json!("noreply@wazo.community"),
            email_confirmation_get_response_body_template: json!(
                "/var/lib/wazo-auth/templates/email_confirmation_get_body.jinja"
            ),
            email_confirmation_get_mimetype: json!("text/html"),
            oauth2_synchronization_ws_url_template: json!("wss://oauth.wazo.io/ws/{state}"),
            oauth2_synchronization_redirect_url_template: json!(
                "https://oauth.wazo.io/{auth_type}/authorize"
            ),
            saml: json!({
                "domains": {},
                "acs_url_template": "https://{{STACK_URL}}/api/auth/0.1/saml/acs",
                "saml_login_timeout_seconds": 600,
                "saml_session_lifetime_seconds": 604800,
                "xmlsec_binary": "/usr/bin/xmlsec1",
                "key_file": "/var/lib/wazo-auth/saml/server.key",
                "cert_file": "/var/lib/wazo-auth/saml/server.crt",
                "xml_files_dir": "/var/lib/wazo-auth/saml/",
            }),
            google: None,
            microsoft: None,
            obsolete_keys: Vec::new(),
            loaded_files: Vec::new(),
        }
    }
}

impl Config {
    /// The plugin directory: `plugin_dir`, else the `plugins` folder next to
    /// the executable if it exists, else the executable's own folder.
    /// Valid values of users' `authentication_method` and tenants'
    /// `default_authentication_method`: `native`, `default` and every enabled IdP plugin.
    pub fn authentication_methods(&self) -> Vec<String> {
        let mut methods = vec!["native".to_string(), "default".to_string()];
        if let Some(idps) = self.idp_plugins.as_object() {
            for (name, v) in idps {
                let enabled = v.get("enabled").and_then(Value::as_bool).unwrap_or(false);
                if enabled && !methods.contains(name) {
                    methods.push(name.clone());
                }
            }
        }
        methods
    }

    /// `all_users_policies` and `tenant_default_groups` as per-tenant defaults.
    pub fn tenant_defaults(&self) -> wazo_auth_core::defaults::TenantDefaults {
        let enabled_slugs = |v: &Value| -> Vec<(String, bool)> {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_bool().unwrap_or(false)))
                        .collect()
                })
                .unwrap_or_default()
        };
        wazo_auth_core::defaults::TenantDefaults {
            all_users_policies: enabled_slugs(&self.all_users_policies)
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| k)
                .collect(),
            default_groups: self
                .tenant_default_groups
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(slug, g)| {
                            let policies = g.get("policies").map(enabled_slugs).unwrap_or_default();
                            (slug.clone(), policies)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn effective_plugin_dir(&self) -> PathBuf {
        if let Some(dir) = &self.plugin_dir {
            return dir.clone();
        }
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let plugins = exe_dir.join("plugins");
        if plugins.is_dir() {
            plugins
        } else {
            exe_dir
        }
    }

    /// The log filter: `Debug` when `debug` is set, else from `log_level`.
    #[allow(dead_code)] // API for main.rs
    pub fn log_level_filter(&self) -> log::LevelFilter {
        if self.debug {
            return log::LevelFilter::Debug;
        }
        parse_log_level(&self.log_level).unwrap_or(log::LevelFilter::Info)
    }

    /// The configuration as JSON with secrets replaced by [`REDACTED`]: the
    /// values of keys whose name contains `password`, `secret` or `key` or is
    /// (or ends with) `token`, and the passwords inside URIs / DSNs (such as
    /// `db_uri` and `amqp.uri`). Null values are left as they are.
    pub fn redacted_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        redact(&mut value);
        value
    }
}

fn parse_log_level(level: &str) -> Option<log::LevelFilter> {
    match level.to_ascii_lowercase().as_str() {
        "critical" | "error" => Some(log::LevelFilter::Error),
        "warning" | "warn" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Loads the configuration: built-in defaults, the main file, the extra
/// files, then the command-line overrides; checks types, unknown keys and
/// ranges. `uuid` falls back to the `XIVO_UUID` environment variable.
pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
    let env_uuid = std::env::var("XIVO_UUID").ok().filter(|u| !u.is_empty());
    load_with_env_uuid(cli, env_uuid)
}

/// One configuration source.
struct Source {
    label: String,
    value: Value,
}

fn load_with_env_uuid(cli: &Cli, env_uuid: Option<String>) -> Result<Config, ConfigError> {
    // --- main file
    let main_path = cli.config_file_path();
    let main_value = match std::fs::read_to_string(&main_path) {
        Ok(text) => Some(parse_file(&main_path, &text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cli.config_file.is_none() => None,
        Err(e) => {
            return Err(ConfigError::new(
                None,
                format!(
                    "cannot read configuration file {}: {e}",
                    main_path.display()
                ),
            ))
        }
    };

    // --- extra files
    let extra_setting = main_value
        .as_ref()
        .and_then(|v| v.get("extra_config_files"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_EXTRA_CONFIG_FILES);
    let extra_dir = resolve_extra_dir(&main_path, extra_setting);
    let mut files: Vec<(PathBuf, Value)> = Vec::new();
    for path in list_extra_files(&extra_dir)? {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(
                None,
                format!("cannot read configuration file {}: {e}", path.display()),
            )
        })?;
        let value = parse_file(&path, &text)?;
        files.push((path, value));
    }
    if let Some(main) = main_value {
        files.push((main_path.clone(), main));
    }

    // --- merge: files (lists accumulate), then command line over files over defaults
    let mut file_layer = Value::Object(Map::new());
    for (_, value) in &files {
        merge_under(&mut file_layer, value, true);
    }
    let defaults = serde_json::to_value(Config::default())
        .map_err(|e| ConfigError::new(None, format!("internal error: {e}")))?;
    let cli_layer = cli.overrides();
    let mut merged = cli_layer.clone();
    merge_under(&mut merged, &file_layer, false);
    merge_under(&mut merged, &defaults, false);

    let mut sources = vec![Source {
        label: CLI_SOURCE.into(),
        value: cli_layer,
    }];
    sources.extend(files.iter().map(|(path, value)| Source {
        label: path.display().to_string(),
        value: value.clone(),
    }));

    let obsolete_keys = strip_obsolete(&mut merged);
    let mut config: Config = typed(&merged).map_err(|detail| {
        // Should have been reported per source already; name whoever set it.
        let origin = origin_of(&sources, &detail.path);
        ConfigError::new(origin, detail.message)
    })?;

    config.config_file = Some(main_path.display().to_string());
    config.obsolete_keys = obsolete_keys;
    config.loaded_files = files.into_iter().map(|(path, _)| path).collect();
    if config.uuid.is_none() {
        config.uuid = env_uuid;
    }
    validate(&config, &sources)?;
    Ok(config)
}

fn resolve_extra_dir(main_path: &Path, setting: &str) -> PathBuf {
    let setting = Path::new(setting);
    if setting.is_absolute() {
        return setting.to_path_buf();
    }
    match main_path.parent() {
        Some(parent) => parent.join(setting),
        None => setting.to_path_buf(),
    }
}

/// `*.yml` files of `dir` (no dot-files), sorted by name. A missing directory
/// is empty.
fn list_extra_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::debug!("extra configuration directory {} not found", dir.display());
            return Ok(Vec::new());
        }
        Err(e) => {
            return Err(ConfigError::new(
                None,
                format!(
                    "cannot read extra configuration directory {}: {e}",
                    dir.display()
                ),
            ))
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            ConfigError::new(
                None,
                format!(
                    "cannot read extra configuration directory {}: {e}",
                    dir.display()
                ),
            )
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".yml") {
            continue;
        }
        names.push(name.to_string());
    }
    names.sort();
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// Parses one file into a JSON mapping and checks it alone against the schema
/// (so that errors name this file).
fn parse_file(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let label = path.display().to_string();
    let fail = |detail: String| ConfigError::new(Some(&label), detail);
    let value = yaml_to_json_document(text).map_err(fail)?;
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        Value::Object(map) => Value::Object(map),
        other => {
            return Err(fail(format!(
                "the file must contain a mapping of keys, got {}",
                describe_value(&other)
            )))
        }
    };
    let mut alone = value.clone();
    strip_obsolete(&mut alone);
    typed(&alone).map_err(|detail| fail(detail.message))?;
    Ok(value)
}

/// Parses a YAML document (empty = null), applying merge keys and `!exec`.
fn yaml_to_json_document(text: &str) -> Result<Value, String> {
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    yaml.apply_merge()
        .map_err(|e| format!("invalid YAML: {e}"))?;
    yaml_to_json(yaml, "")
}

fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn yaml_to_json(yaml: serde_yaml_ng::Value, path: &str) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    let at = |path: &str| {
        if path.is_empty() {
            String::new()
        } else {
            format!("\"{path}\": ")
        }
    };
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match serde_json::Number::from_f64(f) {
                    Some(number) => Value::Number(number),
                    None => return Err(format!("{}unsupported number {n}", at(path))),
                }
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_string(),
                    _ => return Err(format!("{}unsupported mapping key", at(path))),
                };
                let child = join_path(path, &key);
                let value = yaml_to_json(value, &child)?;
                map.insert(key, value);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => {
            if tagged.tag == "exec" {
                exec_tag(tagged.value, path)?
            } else {
                return Err(format!("{}unsupported YAML tag {}", at(path), tagged.tag));
            }
        }
    })
}

/// xivo's `!exec {command: "prog arg ..."}`: the command's standard output,
/// parsed as YAML (the command is split on spaces, not run by a shell).
fn exec_tag(value: serde_yaml_ng::Value, path: &str) -> Result<Value, String> {
    let command = value
        .get("command")
        .and_then(serde_yaml_ng::Value::as_str)
        .map(str::to_string);
    let Some(command) = command else {
        return Ok(Value::Null);
    };
    let mut words = command.split(' ');
    let program = words.next().unwrap_or_default();
    let output = std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("\"{path}\": !exec command {command:?} failed: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "\"{path}\": !exec command {command:?} failed: {}",
            output.status
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("\"{path}\": output of !exec command {command:?}: {e}"))?;
    yaml.apply_merge()
        .map_err(|e| format!("\"{path}\": output of !exec command {command:?}: {e}"))?;
    if contains_tag(&yaml) {
        return Err(format!(
            "\"{path}\": output of !exec command {command:?} contains a YAML tag"
        ));
    }
    yaml_to_json(yaml, path)
}

fn contains_tag(yaml: &serde_yaml_ng::Value) -> bool {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Tagged(_) => true,
        Y::Sequence(items) => items.iter().any(contains_tag),
        Y::Mapping(mapping) => mapping.values().any(contains_tag),
        _ => false,
    }
}

/// xivo's ChainMap: keys of `lower` missing from `higher` are added; mappings
/// present in both are merged recursively; with `accumulate_lists`, lists
/// present in both are concatenated (higher first); otherwise `higher` wins.
fn merge_under(higher: &mut Value, lower: &Value, accumulate_lists: bool) {
    let (Value::Object(high), Value::Object(low)) = (higher, lower) else {
        return;
    };
    for (key, low_value) in low {
        match high.get_mut(key) {
            None => {
                high.insert(key.clone(), low_value.clone());
            }
            Some(high_value @ Value::Object(_)) if low_value.is_object() => {
                merge_under(high_value, low_value, accumulate_lists);
            }
            Some(Value::Array(items)) if accumulate_lists => {
                if let Value::Array(low_items) = low_value {
                    items.extend(low_items.iter().cloned());
                }
            }
            Some(_) => {}
        }
    }
}

/// Removes the obsolete top-level keys, returning their names.
fn strip_obsolete(value: &mut Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Value::Object(map) = value {
        for key in OBSOLETE_KEYS {
            if map.remove(*key).is_some() {
                found.push(key.to_string());
            }
        }
    }
    found
}

fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = value;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The highest-priority source setting `path`.
fn origin_of<'a>(sources: &'a [Source], path: &[String]) -> Option<&'a str> {
    sources
        .iter()
        .find(|source| value_at(&source.value, path).is_some())
        .map(|source| source.label.as_str())
}

/// A problem found while typing a value, with the path of the key.
struct Detail {
    path: Vec<String>,
    message: String,
}

fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() && !out.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Deserializes `value` into [`Config`], with readable errors.
fn typed(value: &Value) -> Result<Config, Detail> {
    for section in STRUCT_SECTIONS {
        let path: Vec<String> = section.iter().map(|s| s.to_string()).collect();
        if let Some(found @ Value::Array(_)) = value_at(value, &path) {
            return Err(Detail {
                message: format!(
                    "\"{}\": expected a mapping, got {}",
                    dotted(&path),
                    describe_value(found)
                ),
                path,
            });
        }
    }
    serde_path_to_error::deserialize::<_, Config>(value).map_err(|error| {
        let path: Vec<String> = error
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => index.to_string(),
                serde_path_to_error::Segment::Map { key } => key.clone(),
                serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                serde_path_to_error::Segment::Unknown => "?".to_string(),
            })
            .collect();
        let inner = error.inner().to_string();
        let message = describe_serde_error(&inner, &path, value_at(value, &path));
        Detail { path, message }
    })
}

fn describe_serde_error(inner: &str, path: &[String], found: Option<&Value>) -> String {
    let key = dotted(path);
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let candidates: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let field = rest.split('`').next().unwrap_or_default();
        let mut message = format!("unknown key \"{key}\"");
        if let Some(best) = closest(field, &candidates) {
            message.push_str(&format!(" (did you mean \"{best}\"?)"));
        }
        return message;
    }
    let Some(position) = inner.rfind(", expected ") else {
        return format!("\"{key}\": {inner}");
    };
    let expected_raw = &inner[position + ", expected ".len()..];
    let (Some(found), Some(expected)) = (found, describe_expected(expected_raw)) else {
        return format!("\"{key}\": {inner}");
    };
    // an integer of the wrong range, e.g. a port of 70000 or a negative count
    if let (Some(range), Value::Number(number)) = (integer_range(expected_raw), found) {
        if number.is_i64() || number.is_u64() {
            return format!("\"{key}\": expected {range}, got {number}");
        }
    }
    format!(
        "\"{key}\": expected {expected}, got {}",
        describe_value(found)
    )
}

fn describe_expected(raw: &str) -> Option<&'static str> {
    Some(match raw {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" => "a boolean",
        "a string" | "a borrowed string" | "path string" | "a character" => "a string",
        "a sequence" => "a list",
        "a map" => "a mapping",
        _ if raw.starts_with("struct ") => "a mapping",
        _ => return None,
    })
}

fn integer_range(raw: &str) -> Option<&'static str> {
    Some(match raw {
        "u8" => "an integer between 0 and 255",
        "u16" => "an integer between 0 and 65535",
        "u32" => "an integer between 0 and 4294967295",
        "u64" | "u128" | "usize" => "a non-negative integer",
        _ => return None,
    })
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) if n.is_f64() => format!("a decimal number ({n})"),
        Value::Number(n) => format!("an integer ({n})"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// The candidate nearest to `word` (edit distance at most 2), if any.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------
// Range checks
// ---------------------------------------------------------------------------

fn validate(config: &Config, sources: &[Source]) -> Result<(), ConfigError> {
    let fail = |key: &str, detail: String| {
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        ConfigError::new(origin_of(sources, &path), format!("\"{key}\": {detail}"))
    };
    let c = config;

    if parse_log_level(&c.log_level).is_none() {
        return Err(fail(
            "log_level",
            format!(
                "must be one of critical, error, warning, info, debug (or trace), got {:?}",
                c.log_level
            ),
        ));
    }
    if !(1..=MAX_TOKEN_LIFETIME).contains(&c.default_token_lifetime) {
        return Err(fail(
            "default_token_lifetime",
            format!(
                "must be between 1 and {MAX_TOKEN_LIFETIME} seconds, got {}",
                c.default_token_lifetime
            ),
        ));
    }
    if !c.token_cleanup_interval.is_finite() || c.token_cleanup_interval < 0.0 {
        return Err(fail(
            "token_cleanup_interval",
            format!(
                "must be a number of seconds >= 0 (0 disables the cleanup), got {}",
                c.token_cleanup_interval
            ),
        ));
    }
    if c.token_cleanup_batch_size == 0 {
        return Err(fail(
            "token_cleanup_batch_size",
            "must be at least 1, got 0".into(),
        ));
    }
    if c.max_user_concurrent_sessions == 0 {
        return Err(fail(
            "max_user_concurrent_sessions",
            "must be at least 1, got 0".into(),
        ));
    }
    if !c.db_connect_retry_timeout_seconds.is_finite() || c.db_connect_retry_timeout_seconds < 0.0 {
        return Err(fail(
            "db_connect_retry_timeout_seconds",
            format!(
                "must be a number of seconds >= 0, got {}",
                c.db_connect_retry_timeout_seconds
            ),
        ));
    }
    // At most a day: a larger value is a mistake (and Duration::from_secs_f64 panics on
    // absurd ones).
    if !c.db_timeout.is_finite() || c.db_timeout <= 0.0 || c.db_timeout > 86400.0 {
        return Err(fail(
            "db_timeout",
            format!(
                "must be a number of seconds > 0 (at most 86400), got {}",
                c.db_timeout
            ),
        ));
    }
    if c.db_uri.as_deref().is_some_and(|uri| uri.trim().is_empty()) {
        return Err(fail(
            "db_uri",
            "must not be empty (remove it to use the managed database)".into(),
        ));
    }
    if c.rest_api.listen.trim().is_empty() {
        return Err(fail("rest_api.listen", "must not be empty".into()));
    }
    if c.rest_api.port == 0 {
        return Err(fail(
            "rest_api.port",
            "must be between 1 and 65535, got 0".into(),
        ));
    }
    if c.rest_api.max_threads == 0 {
        return Err(fail(
            "rest_api.max_threads",
            "must be at least 1, got 0".into(),
        ));
    }
    if c.rest_api.workers > 256 {
        return Err(fail(
            "rest_api.workers",
            format!(
                "must be between 0 (automatic) and 256, got {}",
                c.rest_api.workers
            ),
        ));
    }
    if c.rest_api.max_body_bytes < 1024 {
        return Err(fail(
            "rest_api.max_body_bytes",
            format!("must be at least 1024, got {}", c.rest_api.max_body_bytes),
        ));
    }
    match (&c.rest_api.certificate, &c.rest_api.private_key) {
        (Some(_), None) => {
            return Err(fail(
                "rest_api.certificate",
                "is set but rest_api.private_key is not".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(fail(
                "rest_api.private_key",
                "is set but rest_api.certificate is not".into(),
            ))
        }
        _ => {}
    }
    if !matches!(
        c.password_hash_scheme.as_str(),
        "pbkdf2_sha512" | "argon2id"
    ) {
        return Err(fail(
            "password_hash_scheme",
            format!(
                "must be pbkdf2_sha512 or argon2id, got {:?}",
                c.password_hash_scheme
            ),
        ));
    }
    if !c.plugin_call_timeout.is_finite() || c.plugin_call_timeout <= 0.0 {
        return Err(fail(
            "plugin_call_timeout",
            format!(
                "must be a number of seconds > 0, got {}",
                c.plugin_call_timeout
            ),
        ));
    }
    for key in [
        "default_policies",
        "all_users_policies",
        "tenant_default_groups",
    ] {
        let value = match key {
            "default_policies" => &c.default_policies,
            "all_users_policies" => &c.all_users_policies,
            _ => &c.tenant_default_groups,
        };
        if !value.is_object() {
            return Err(fail(
                key,
                format!("expected a mapping, got {}", describe_value(value)),
            ));
        }
    }
    if !["user", "internal", "external_api"].contains(&c.bootstrap_user_purpose.as_str()) {
        return Err(fail(
            "bootstrap_user_purpose",
            format!(
                "must be one of user, internal, external_api, got {:?}",
                c.bootstrap_user_purpose
            ),
        ));
    }
    if c.bootstrap_user_on_startup {
        for (key, value) in [
            ("bootstrap_user_username", &c.bootstrap_user_username),
            ("bootstrap_user_password", &c.bootstrap_user_password),
        ] {
            if value.as_deref().is_none_or(str::is_empty) {
                return Err(fail(
                    "bootstrap_user_on_startup",
                    format!("is true but {key} is not set"),
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------

/// Whether values under `key` are secrets: names containing `password`,
/// `passwd`, `secret` or `key`, or `token` / `*_token`, except settings
/// that merely mention them (`password_reset_email_template`, `key_file`...).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let named = ["password", "passwd", "secret", "key"]
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
/// password) are kept; lists and mappings are walked.
fn redact_secret(value: &mut Value) {
    match value {
        Value::String(_) | Value::Number(_) => *value = Value::String(REDACTED.into()),
        Value::Array(items) => items.iter_mut().for_each(redact_secret),
        Value::Object(_) => redact(value),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Hides the password of `scheme://user:password@host/...` and the values of
/// `password=...` parameters (URI query or libpq key/value form). `None` when
/// there is nothing to hide.
fn redact_uri(s: &str) -> Option<String> {
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

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!(
                "wazo-auth-config-test-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn cli(args: &[&str]) -> Cli {
        let mut argv = vec!["wazo-auth"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap()
    }

    /// Loads with `config.yml` of `dir` as main file (its conf.d relative).
    fn load_dir(dir: &TempDir, extra_args: &[&str]) -> Result<Config, ConfigError> {
        let main = dir.path("config.yml");
        let main = main.to_str().unwrap();
        let mut args = vec!["-c", main];
        args.extend_from_slice(extra_args);
        load_with_env_uuid(&cli(&args), None)
    }

    /// A directory with a main file using `conf.d` next to it.
    fn dir_with_main(main: &str) -> TempDir {
        let dir = TempDir::new();
        dir.write("config.yml", &format!("extra_config_files: conf.d\n{main}"));
        dir
    }

    fn error_of(result: Result<Config, ConfigError>) -> String {
        result
            .expect_err("expected a configuration error")
            .to_string()
    }

    #[test]
    fn config_defaults() {
        let c = Config::default();
        assert!(!c.debug);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.log_filename, None);
        assert_eq!(c.default_token_lifetime, 7200);
        assert_eq!(c.token_cleanup_interval, 60.0);
        assert_eq!(c.token_cleanup_batch_size, 5000);
        assert_eq!(c.max_user_concurrent_sessions, 100);
        assert!(c.update_policy_on_startup);
        assert_eq!(c.db_uri, None);
        assert_eq!(c.db_connect_retry_timeout_seconds, 300.0);
        assert_eq!(c.db_timeout, 5.0);
        assert_eq!(c.rest_api.listen, "127.0.0.1");
        assert_eq!(c.rest_api.port, 9497);
        assert_eq!(c.rest_api.max_threads, 25);
        assert_eq!(c.rest_api.num_proxies, 1);
        assert_eq!(c.rest_api.max_body_bytes, 65536);
        assert!(c.rest_api.cors.enabled);
        assert_eq!(c.rest_api.cors.allow_headers.len(), 5);
        assert_eq!(
            c.enabled_backend_plugins,
            bool_map(&["ldap_user", "wazo_user"])
        );
        assert_eq!(
            c.enabled_external_auth_plugins,
            bool_map(&["google", "microsoft", "mobile"])
        );
        assert_eq!(c.bootstrap_user_purpose, "internal");
        assert_eq!(
            c.bootstrap_user_policy_slug,
            "wazo_default_master_user_policy"
        );
        assert_eq!(c.plugin_call_timeout, 5.0);
        assert_eq!(c.managed_db.data_dir, PathBuf::from("var/postgres"));
        assert_eq!(c.extra_config_files, "/etc/wazo-auth/conf.d");
        assert_eq!(c.log_level_filter(), log::LevelFilter::Info);

        // loading an empty main file gives the defaults
        let dir = dir_with_main("");
        let loaded = load_dir(&dir, &[]).unwrap();
        let expected = Config {
            extra_config_files: "conf.d".into(),
            config_file: Some(dir.path("config.yml").display().to_string()),
            loaded_files: vec![dir.path("config.yml")],
            ..Config::default()
        };
        assert_eq!(loaded, expected);
        assert_eq!(loaded.redacted_json()["amqp"]["exchange_name"], "xivo");
    }

    #[test]
    fn config_default_main_file_may_be_missing_but_explicit_may_not() {
        let dir = TempDir::new();
        let missing = dir.path("nope.yml");
        let message = error_of(load_with_env_uuid(
            &cli(&["-c", missing.to_str().unwrap()]),
            None,
        ));
        assert!(message.contains(missing.to_str().unwrap()), "{message}");

        let parsed = cli(&[]);
        assert_eq!(
            parsed.config_file_path(),
            PathBuf::from(DEFAULT_CONFIG_FILE)
        );
        if !Path::new(DEFAULT_CONFIG_FILE).exists() {
            let loaded = load_with_env_uuid(&parsed, None).unwrap();
            assert_eq!(loaded.default_token_lifetime, 7200);
        }
    }

    #[test]
    fn config_main_file_overrides_defaults() {
        let dir = dir_with_main(
            "default_token_lifetime: 60\nrest_api:\n  port: 9000\ndb_uri: postgresql://u:p@h/db\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.default_token_lifetime, 60);
        assert_eq!(c.rest_api.port, 9000);
        assert_eq!(c.rest_api.listen, "127.0.0.1");
        assert_eq!(c.db_uri.as_deref(), Some("postgresql://u:p@h/db"));
    }

    #[test]
    fn config_earlier_extra_file_wins() {
        let dir = dir_with_main("default_token_lifetime: 10\nmax_user_concurrent_sessions: 3\n");
        dir.write("conf.d/10-a.yml", "default_token_lifetime: 20\n");
        dir.write(
            "conf.d/20-b.yml",
            "default_token_lifetime: 30\ntoken_cleanup_batch_size: 7\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.default_token_lifetime, 20);
        assert_eq!(c.token_cleanup_batch_size, 7);
        assert_eq!(c.max_user_concurrent_sessions, 3);
        assert_eq!(
            c.loaded_files,
            vec![
                dir.path("conf.d/10-a.yml"),
                dir.path("conf.d/20-b.yml"),
                dir.path("config.yml")
            ]
        );
    }

    #[test]
    fn workers_default_to_two_per_cpu_and_can_be_set() {
        let auto = RestApi::default();
        assert_eq!(auto.workers, 0);
        assert_eq!(auto.worker_count(1), 2);
        assert_eq!(auto.worker_count(2), 4);
        assert_eq!(auto.worker_count(64), 16);
        let set = RestApi {
            workers: 3,
            ..RestApi::default()
        };
        assert_eq!(set.worker_count(64), 3);
        let dir = dir_with_main("rest_api:\n  workers: 6\n");
        assert_eq!(load_dir(&dir, &[]).unwrap().rest_api.workers, 6);
        let dir = dir_with_main("rest_api:\n  workers: 1000\n");
        let e = load_dir(&dir, &[]).unwrap_err().to_string();
        assert!(e.contains("rest_api.workers"), "{e}");
    }

    #[test]
    fn config_deep_merge_keeps_siblings() {
        let dir = dir_with_main(
            "rest_api:\n  listen: 0.0.0.0\n  cors:\n    enabled: false\namqp:\n  uri: amqp://a:b@x/\n",
        );
        dir.write(
            "conf.d/50.yml",
            "rest_api:\n  port: 1234\nenabled_backend_plugins:\n  foo: true\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.rest_api.listen, "0.0.0.0");
        assert_eq!(c.rest_api.port, 1234);
        assert!(!c.rest_api.cors.enabled);
        assert_eq!(c.rest_api.cors.allow_headers.len(), 5);
        assert_eq!(c.rest_api.max_threads, 25);
        assert_eq!(
            c.enabled_backend_plugins,
            bool_map(&["foo", "ldap_user", "wazo_user"])
        );
        assert_eq!(c.amqp["uri"], "amqp://a:b@x/");
        assert_eq!(c.amqp["exchange_name"], "xivo");
    }

    #[test]
    fn config_lists_accumulate_across_files_and_replace_defaults() {
        let dir = dir_with_main("rest_api:\n  cors:\n    allow_headers: [A]\n");
        dir.write(
            "conf.d/a.yml",
            "rest_api:\n  cors:\n    allow_headers: [B]\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.rest_api.cors.allow_headers, vec!["B", "A"]);
    }

    #[test]
    fn config_ignores_dot_files_and_other_extensions() {
        let dir = dir_with_main("");
        dir.write("conf.d/.hidden.yml", "default_token_lifetime: 1\n");
        dir.write("conf.d/x.yaml", "default_token_lifetime: 2\n");
        dir.write("conf.d/y.yml.bak", "this is: [not yaml\n");
        dir.write("conf.d/z.yml", "default_token_lifetime: 3\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.default_token_lifetime, 3);
    }

    #[test]
    fn config_unknown_key_names_file_and_path() {
        let dir = dir_with_main("");
        let file = dir.write("conf.d/10-x.yml", "rest_api:\n  prot: 9000\n");
        let message = error_of(load_dir(&dir, &[]));
        assert_eq!(
            message,
            format!(
                "configuration error in {}: unknown key \"rest_api.prot\" (did you mean \"port\"?)",
                file.display()
            )
        );

        let dir = dir_with_main("frobnicate: true\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(message.contains("config.yml"), "{message}");
        assert!(message.ends_with("unknown key \"frobnicate\""), "{message}");

        let dir = dir_with_main("managed_db:\n  data_dirr: x\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.contains("unknown key \"managed_db.data_dirr\""),
            "{message}"
        );
    }

    #[test]
    fn config_wrong_type_names_file_and_path() {
        let dir = dir_with_main("");
        let file = dir.write("conf.d/10-x.yml", "default_token_lifetime: two hours\n");
        let message = error_of(load_dir(&dir, &[]));
        assert_eq!(
            message,
            format!(
                "configuration error in {}: \"default_token_lifetime\": expected an integer, got a string",
                file.display()
            )
        );

        // masked by a higher-priority file: still an error
        dir.write("conf.d/05-ok.yml", "default_token_lifetime: 100\n");
        assert!(error_of(load_dir(&dir, &[])).contains("10-x.yml"));

        let dir = dir_with_main("rest_api:\n  port: 70000\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message
                .ends_with("\"rest_api.port\": expected an integer between 0 and 65535, got 70000"),
            "{message}"
        );

        let dir = dir_with_main("enabled_backend_plugins:\n  wazo_user: maybe\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.ends_with(
                "\"enabled_backend_plugins.wazo_user\": expected a boolean, got a string"
            ),
            "{message}"
        );

        let dir = dir_with_main("rest_api: [1, 2]\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.ends_with("\"rest_api\": expected a mapping, got a list"),
            "{message}"
        );

        let dir = dir_with_main("rest_api:\n  cors:\n    allow_headers: [1]\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.ends_with(
                "\"rest_api.cors.allow_headers[0]\": expected a string, got an integer (1)"
            ),
            "{message}"
        );

        let dir = TempDir::new();
        dir.write("config.yml", "- a\n- b\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(message.contains("must contain a mapping"), "{message}");

        let dir = TempDir::new();
        dir.write("config.yml", "a: [1\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(message.contains("invalid YAML"), "{message}");
    }

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
            ("rest_api:\n  port: 0\n", "rest_api.port"),
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
    }

    #[test]
    fn config_original_keys_accepted() {
        let dir = dir_with_main(
            r#"
update_policy_on_startup: True
user: wazo-auth
config_file: /etc/wazo-auth/config.yml
log_filename: /var/log/wazo-auth.log
debug: False
profiling_enabled: false
default_token_lifetime: 7200
token_cleanup_interval: 60.0
token_cleanup_batch_size: 5000
max_user_concurrent_sessions: 100
email_confirmation_expiration: 172800
email_confirmation_template: '/var/lib/wazo-auth/templates/email_confirmation.jinja'
email_confirmation_subject_template: '/var/lib/wazo-auth/templates/email_confirmation_subject.jinja'
email_confirmation_from_name: 'wazo-auth'
email_confirmation_from_address: 'noreply@wazo.community'
email_confirmation_get_response_body_template': '/var/lib/wazo-auth/templates/email_confirmation_get_body.jinja'
email_confirmation_get_mimetype': 'text/html'
email_confirmation_get_response_body_template: '/x.jinja'
email_confirmation_get_mimetype: text/html
email_notification_plugin: smtp
password_reset_expiration: 172800
password_reset_from_name: 'wazo-auth'
password_reset_from_address: 'noreply@wazo.community'
password_reset_email_template: '/var/lib/wazo-auth/templates/password_reset_email.jinja'
password_reset_email_subject_template: '/var/lib/wazo-auth/templates/password_reset_email_subject.jinja'
oauth2_synchronization_ws_url_template: 'wss://oauth.wazo.io/ws/{state}'
oauth2_synchronization_redirect_url_template: 'https://oauth.wazo.io/{auth_type}/authorize'
rest_api:
  max_threads: 25
  num_proxies: 1
  listen: 127.0.0.1
  port: 9497
  certificate: null
  private_key: null
  cors:
    enabled: True
    allow_headers: [Content-Type, Authorization, X-Auth-Token, Wazo-Tenant, Wazo-Session-Type]
    origins: '*'
  https:
    listen: 0.0.0.0
    ciphers: 'ALL:!aNULL'
enabled_http_plugins:
  user_registration: false
enabled_backend_plugins:
  ldap_user: false
enabled_metadata_plugins:
  default_user: true
purpose_metadata_mapping: {user: [], internal: [], external_api: []}
enabled_external_auth_plugins:
  google: true
  microsoft: true
  mobile: true
idp_plugins:
  saml:
    enabled: true
    priority: 1
  ldap:
    enabled: true
    priority: 2
backend_policies:
  ldap_user: wazo_default_user_policy
  wazo_user: wazo_default_user_policy
microsoft:
  authorization_base_url: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize'
  redirect_uri: 'https://oauth.wazo.io/microsoft/authorize'
  scope: ['offline_access', 'Contacts.Read']
  token_url: 'https://login.microsoftonline.com/common/oauth2/v2.0/token'
  websocket_host: 'wss://oauth.wazo.io'
google:
  authorization_base_url: 'https://accounts.google.com/o/oauth2/v2/auth'
  redirect_uri: 'https://oauth.wazo.io/google/authorize'
  scope: ['https://www.googleapis.com/auth/userinfo.profile']
  token_url: 'https://www.googleapis.com/oauth2/v4/token'
  websocket_host: 'wss://oauth.wazo.io'
amqp:
  uri: amqp://guest:guest@localhost:5672/
  exchange_name: xivo
  exchange_type: topic
smtp:
  hostname: localhost
  port: 25
consul:
  scheme: http
  host: localhost
  port: 8500
  token: 'the_one_ring'
confd:
  host: 'localhost'
  port: 9486
confd_db_uri: postgresql://asterisk:proformatique@localhost/asterisk
db_uri: postgresql://asterisk:proformatique@localhost/asterisk?application_name=wazo-auth
db_connect_retry_timeout_seconds: 300
db_upgrade_on_startup: false
service_discovery:
  enabled: false
  advertise_address: auto
  advertise_address_interface: eth0
  advertise_port: 9497
  ttl_interval: 30
  refresh_interval: 27
  retry_interval: 2
  extra_tags: []
saml:
  domains: {}
  saml_session_lifetime_seconds: 604800
  xmlsec_binary: /usr/bin/xmlsec1
default_policies:
  wazo_default_user_policy:
    acl:
      - 'default.user.policy'
default_user_policy: wazo_default_user_policy
all_users_policies:
  wazo-all-users-policy: true
tenant_default_groups:
  wazo_default_admin_group:
    policies:
      wazo_default_admin_policy: true
bootstrap_user_on_startup: True
bootstrap_user_username: admin
bootstrap_user_password: s3cre7
bootstrap_user_purpose: internal
bootstrap_user_policy_slug: wazo_default_master_user_policy
uuid: the-predefined-xivo-uuid
pid_filename: /run/wazo-auth/wazo-auth.pid
"#,
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.uuid.as_deref(), Some("the-predefined-xivo-uuid"));
        assert_eq!(
            c.default_user_policy.as_deref(),
            Some("wazo_default_user_policy")
        );
        assert!(!c.enabled_backend_plugins["ldap_user"]);
        assert_eq!(c.enabled_http_plugins["users"], true);
        assert_eq!(c.enabled_http_plugins["user_registration"], false);
        assert_eq!(c.consul["token"], "the_one_ring");
        assert_eq!(c.saml["xml_files_dir"], "/var/lib/wazo-auth/saml/");
        assert_eq!(
            c.google.as_ref().unwrap()["token_url"],
            "https://www.googleapis.com/oauth2/v4/token"
        );
        assert_eq!(
            c.default_policies["wazo_default_user_policy"]["acl"][0],
            "default.user.policy"
        );
        assert!(c.bootstrap_user_on_startup);
        assert_eq!(
            c.obsolete_keys,
            vec![
                "confd",
                "confd_db_uri",
                "email_confirmation_get_response_body_template'",
                "email_confirmation_get_mimetype'",
                "pid_filename"
            ]
        );
        assert_eq!(
            c.config_file,
            Some(dir.path("config.yml").display().to_string())
        );
    }

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

    #[test]
    fn config_relative_and_absolute_extra_dirs() {
        let dir = TempDir::new();
        let other = TempDir::new();
        other.write("a.yml", "default_token_lifetime: 42\n");
        dir.write(
            "config.yml",
            &format!("extra_config_files: {}\n", other.0.display()),
        );
        assert_eq!(load_dir(&dir, &[]).unwrap().default_token_lifetime, 42);

        let dir = TempDir::new();
        dir.write("sub/config.yml", "extra_config_files: more\n");
        dir.write("sub/more/a.yml", "default_token_lifetime: 43\n");
        let main = dir.path("sub/config.yml");
        let c = load_with_env_uuid(&cli(&["-c", main.to_str().unwrap()]), None).unwrap();
        assert_eq!(c.default_token_lifetime, 43);
    }

    #[test]
    fn config_yaml_features() {
        let dir = dir_with_main(
            "base: &base\n  enabled: false\nrest_api:\n  cors:\n    <<: *base\n    allow_headers: [X]\n",
        );
        // `base` is an unknown key
        assert!(error_of(load_dir(&dir, &[])).contains("unknown key \"base\""));

        let dir = dir_with_main("plugin_config:\n  base: &base {a: 1}\n  p: {<<: *base, b: 2}\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.plugin_config["p"], json!({"a": 1, "b": 2}));

        let dir = dir_with_main("plugin_config:\n  p: !exec {command: 'echo x: 5'}\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.plugin_config["p"], json!({"x": 5}));

        let dir = dir_with_main("plugin_config:\n  p: !weird 3\n");
        assert!(error_of(load_dir(&dir, &[])).contains("unsupported YAML tag !weird"));
    }

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
        assert!(!r.to_string().contains("s3cre7"));
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

    #[test]
    fn config_dev_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dev/config.yml");
        let c = load_with_env_uuid(&cli(&["-c", path.to_str().unwrap()]), None).unwrap();
        assert_eq!(c.enabled_backend_plugins.get("example_static"), Some(&true));
        assert_eq!(c.enabled_backend_plugins.get("wazo_user"), Some(&true));
        assert_eq!(c.enabled_external_auth_plugins.get("bar"), Some(&true));
        assert_eq!(c.enabled_external_auth_plugins.get("google"), Some(&false));
        assert!(c.plugin_config.contains_key("example_static"));
        assert_eq!(c.db_uri, None);
    }

    #[test]
    fn config_effective_plugin_dir() {
        let c = Config {
            plugin_dir: Some(PathBuf::from("/opt/plugins")),
            ..Config::default()
        };
        assert_eq!(c.effective_plugin_dir(), PathBuf::from("/opt/plugins"));
        let exe_dir = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let found = Config::default().effective_plugin_dir();
        assert!(found == exe_dir || found == exe_dir.join("plugins"));
    }
}
