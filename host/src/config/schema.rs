//! The typed configuration: one struct per section, with the built-in defaults, and what the
//! server derives from it. The values with a closed set of names or a range are typed (see
//! `values`), so a configuration that deserializes is valid except for the few cross-field
//! rules of `validate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use wazo_auth_core::password::Scheme;

use super::values::{
    password_scheme, BodyLimit, CallTimeout, CleanupInterval, Count, DbTimeout, LogLevel,
    OutboxMaxAge, OutboxMaxRows, Port, ProxyNet, PurgeRate, Purpose, ReadTimeout,
    RefreshTokenLifetime, RetryTimeout, ShutdownDrain, ShutdownTimeout, TokenLifetime, Workers,
};
use super::DEFAULT_EXTRA_CONFIG_FILES;

/// The effective configuration.
///
/// Keys of the original that this server does not interpret are kept as
/// loose JSON values (with the original's defaults) so that existing files
/// load and `GET /0.1/config` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    // ----- general -----
    /// The main configuration file actually used (set by [`load`](super::load)).
    pub config_file: Option<String>,
    /// Directory of extra configuration files (`*.yml`); relative to the main
    /// file's directory when relative. Only read from the main file.
    pub extra_config_files: String,
    pub debug: bool,
    /// critical, error, warning, info, debug (trace: extension).
    pub log_level: LogLevel,
    /// `None` = log to stderr. (The original's default is
    /// `/var/log/wazo-auth.log`; its packaged config.yml sets it too.)
    pub log_filename: Option<String>,
    /// New: the level of the access log's line per request (`off` for none); see
    /// `crate::telemetry`.
    pub access_log_level: crate::telemetry::AccessLogLevel,
    /// New: Prometheus metrics (`GET /0.1/metrics`, and an optional listener of their own).
    pub metrics: crate::telemetry::MetricsConfig,
    /// Accepted and exposed through `/0.1/config` (patchable there).
    pub profiling_enabled: bool,
    /// The original drops privileges to this system user. Not interpreted.
    pub user: Value,
    /// The xivo/wazo uuid (tokens' `xivo_uuid`, bus origin). From the
    /// `XIVO_UUID` environment variable when not set in the configuration.
    pub uuid: Option<String>,

    // ----- tokens and sessions -----
    /// Seconds, 1..=315360000.
    pub default_token_lifetime: TokenLifetime,
    /// Seconds between purges of expired tokens; 0 disables the purge. (The
    /// original rejects values in (0, 1); they are accepted here.)
    pub token_cleanup_interval: CleanupInterval,
    pub token_cleanup_batch_size: Count,
    /// New: the most expired sessions the purge removes per second (0: no limit). A backlog
    /// (after an outage, or a mass expiry) is then purged over several runs, each taking at most
    /// 80 % of `token_cleanup_interval`, without taking the database's CPU from the checks.
    pub token_cleanup_max_rate: PurgeRate,
    pub max_user_concurrent_sessions: Count,
    /// New: how new passwords are hashed: `pbkdf2_sha512` (the original's scheme, default) or
    /// `argon2id`. Existing hashes of the other scheme are upgraded at the next successful login.
    #[serde(with = "password_scheme")]
    pub password_hash_scheme: Scheme,
    /// New: the file holding the server's secret keys (refresh tokens, encrypted data); created
    /// with a fresh key when missing. Relative to the current directory.
    pub secret_key_file: PathBuf,
    /// New: lifetime of refresh tokens in seconds; 0 = they never expire (the original).
    pub refresh_token_lifetime: RefreshTokenLifetime,
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
    /// New: the connection for what needs a session of its own: LISTEN (the caches'
    /// invalidations), the bus publisher's advisory lock and the migrations' lock. `None` =
    /// `db_uri`. Set it to the database itself when `db_uri` points at a transaction pooler
    /// (PgBouncer `pool_mode = transaction`), through which neither passes.
    pub db_listen_uri: Option<String>,
    /// New: what `db_uri` points at: `none` (the database, or a session pooler) or
    /// `transaction` (a transaction pooler such as PgBouncer `pool_mode = transaction`: no
    /// statement is then prepared by name, see core/src/sql.rs; needs `db_listen_uri`).
    pub db_pooler: DbPooler,
    pub db_connect_retry_timeout_seconds: RetryTimeout,
    /// New: seconds (> 0) a request may wait for the database: getting a connection (waiting
    /// for a free one, connecting) and each statement (`statement_timeout`). When it is
    /// exceeded or the database is down, the request answers 503.
    pub db_timeout: DbTimeout,
    /// Accepted for compatibility; migrations always run at startup.
    pub db_upgrade_on_startup: bool,
    /// New: the private PostgreSQL used when `db_uri` is unset.
    pub managed_db: ManagedDb,

    // ----- policies and groups -----
    pub update_policy_on_startup: bool,
    /// Deprecated since 21.14 in the original: backend name -> policy slug.
    pub backend_policies: BTreeMap<String, String>,
    pub default_user_policy: Option<String>,
    /// slug -> {acl, description, ...}
    pub default_policies: Map<String, Value>,
    /// slug -> bool
    pub all_users_policies: Map<String, Value>,
    /// slug -> {policies: {slug: bool}, ...}
    pub tenant_default_groups: Map<String, Value>,

    // ----- bootstrap user -----
    pub bootstrap_user_on_startup: bool,
    pub bootstrap_user_username: Option<String>,
    pub bootstrap_user_password: Option<String>,
    pub bootstrap_user_purpose: Purpose,
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
    pub plugin_call_timeout: CallTimeout,
    /// New: each plugin's own configuration, by plugin name.
    pub plugin_config: BTreeMap<String, Value>,

    // ----- bus -----
    /// The AMQP broker and exchange the bus events are published to (see `crate::bus`).
    pub amqp: Amqp,
    /// New: the bound of the events' outbox.
    pub bus: Bus,

    // ----- kept as given, read where they are used (mail, plugins, IdP chain, metadata), or
    // accepted and not interpreted (consul, service_discovery, saml, oauth2_*) -----
    pub enabled_http_plugins: Value,
    pub enabled_metadata_plugins: Value,
    pub purpose_metadata_mapping: Value,
    pub idp_plugins: Value,
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
    /// The configuration files read, highest priority first (set by [`load`](super::load)).
    #[serde(skip)]
    pub loaded_files: Vec<PathBuf>,
}

/// `rest_api` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestApi {
    pub listen: String,
    pub port: Port,
    pub max_threads: Count,
    /// New: HTTP worker threads; 0 (the default) means two per CPU, at most 16 (see
    /// [`RestApi::worker_count`]).
    pub workers: Workers,
    pub num_proxies: u32,
    /// New: the peers whose `X-Forwarded-For` is read (see `http::request::ProxyTrust`); from
    /// any other peer the header is ignored and the client is the peer.
    pub trusted_proxies: Vec<ProxyNet>,
    /// PEM certificate chain; with `private_key`, the API is served over HTTPS (see
    /// `crate::tls`). Deprecated in the original (TLS is done by a reverse proxy).
    pub certificate: Option<String>,
    /// PEM private key of `certificate` (PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<String>,
    pub cors: Cors,
    /// New: maximum size of a request body, in bytes (default 1 MiB).
    pub max_body_bytes: BodyLimit,
    /// New: seconds a client has to send a whole request, head and body (see
    /// `http::deadline`); past it the answer is 408 and the connection is closed.
    pub request_read_timeout: ReadTimeout,
    /// New: seconds, on SIGTERM, during which `HEAD /status` answers 503 while every other
    /// request is still served, so that a balancer's health check takes the node out before its
    /// listener closes (see `docs/scaling.md`). 0 (the default): the listener closes at once.
    pub shutdown_drain: ShutdownDrain,
    /// New: seconds, on SIGTERM after the drain, that requests in flight have to finish before
    /// their connections are closed.
    pub shutdown_timeout: ShutdownTimeout,
    /// New: file where the server writes the address(es) it bound, once it listens (see
    /// `docs/configuration.md`); useful with `port: 0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_address_file: Option<String>,
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

/// `db_pooler` (new): what `db_uri` points at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbPooler {
    /// The database itself, or a pooler in session mode: the hot statements are prepared once
    /// per connection.
    #[default]
    None,
    /// A pooler in transaction mode: every statement runs unnamed.
    Transaction,
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

/// `amqp` section: where the bus events go (`crate::bus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Amqp {
    /// `amqp://user:password@host:port/vhost`, the original's default
    /// `amqp://guest:guest@localhost:5672/`. New: `null` = no bus (nothing is published; see
    /// `wazo_auth_core::outbox::bus_enabled`).
    pub uri: Option<String>,
    pub exchange_name: String,
    pub exchange_type: String,
}

impl Default for Amqp {
    fn default() -> Self {
        Amqp {
            uri: Some("amqp://guest:guest@localhost:5672/".into()),
            exchange_name: "xivo".into(),
            exchange_type: "topic".into(),
        }
    }
}

/// `bus` section (new): the bound of the events' outbox, so that a broker gone for long cannot
/// fill the disk. Older rows are dropped, with a warning and a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bus {
    /// Seconds an event may wait for the broker (default 7 days).
    pub outbox_max_age: OutboxMaxAge,
    /// Events that may wait for the broker (default 1 000 000).
    pub outbox_max_rows: OutboxMaxRows,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            outbox_max_age: OutboxMaxAge(7.0 * 86_400.0),
            outbox_max_rows: OutboxMaxRows(1_000_000),
        }
    }
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
pub(super) const OBSOLETE_KEYS: &[&str] = &[
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
pub(super) const STRUCT_SECTIONS: &[&[&str]] = &[
    &["rest_api"],
    &["rest_api", "cors"],
    &["managed_db"],
    &["metrics"],
    &["amqp"],
    &["bus"],
];

impl RestApi {
    /// Whose `X-Forwarded-For` the HTTP layer reads.
    pub fn proxy_trust(&self) -> crate::http::request::ProxyTrust {
        crate::http::request::ProxyTrust {
            num_proxies: self.num_proxies,
            trusted: self.trusted_proxies.iter().map(|p| p.net()).collect(),
        }
    }

    /// The number of HTTP workers: `workers` when set, else two per CPU (at most 16). One
    /// worker per CPU leaves a worker's connections waiting a whole scheduler time slice
    /// whenever another busy thread (a co-located service, or a load generator) takes its CPU;
    /// measured on two CPUs, the p99 of token checks fell from 4-7 ms to under 0.5 ms with
    /// four workers at the same check throughput, while logins (which cross more threads) lost
    /// about a fifth (docs/benchmarks.md, item 10).
    pub fn worker_count(&self, cpus: usize) -> usize {
        match self.workers.get() {
            0 => (2 * cpus).clamp(2, 16),
            n => n as usize,
        }
    }
}

impl Default for RestApi {
    fn default() -> Self {
        RestApi {
            listen: "127.0.0.1".into(),
            port: Port(9497),
            max_threads: Count(25),
            workers: Workers(0),
            num_proxies: 1,
            trusted_proxies: ["127.0.0.0/8", "::1/128"]
                .into_iter()
                .filter_map(ProxyNet::parse)
                .collect(),
            certificate: None,
            private_key: None,
            cors: Cors::default(),
            // Large enough that a field far too long is refused by its own validation (400
            // naming it), as in the original, which sets no limit.
            max_body_bytes: BodyLimit(1024 * 1024),
            request_read_timeout: ReadTimeout(30.0),
            shutdown_drain: ShutdownDrain(0.0),
            shutdown_timeout: ShutdownTimeout(10.0),
            bound_address_file: None,
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

pub(super) fn bool_map(names: &[&str]) -> BTreeMap<String, bool> {
    names.iter().map(|n| (n.to_string(), true)).collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            config_file: None,
            extra_config_files: DEFAULT_EXTRA_CONFIG_FILES.into(),
            debug: false,
            log_level: LogLevel::Info,
            log_filename: None,
            access_log_level: Default::default(),
            metrics: Default::default(),
            profiling_enabled: false,
            user: json!("wazo-auth"),
            uuid: None,
            default_token_lifetime: TokenLifetime(7200),
            token_cleanup_interval: CleanupInterval(60.0),
            token_cleanup_batch_size: Count(5000),
            token_cleanup_max_rate: PurgeRate(0.0),
            max_user_concurrent_sessions: Count(100),
            db_uri: None,
            db_listen_uri: None,
            db_pooler: DbPooler::None,
            db_connect_retry_timeout_seconds: RetryTimeout(300.0),
            db_timeout: DbTimeout(5.0),
            db_upgrade_on_startup: false,
            managed_db: ManagedDb::default(),
            update_policy_on_startup: true,
            backend_policies: BTreeMap::new(),
            default_user_policy: None,
            default_policies: Map::new(),
            all_users_policies: Map::new(),
            tenant_default_groups: Map::new(),
            bootstrap_user_on_startup: false,
            bootstrap_user_username: None,
            bootstrap_user_password: None,
            bootstrap_user_purpose: Purpose::Internal,
            bootstrap_user_policy_slug: "wazo_default_master_user_policy".into(),
            rest_api: RestApi::default(),
            enabled_backend_plugins: bool_map(&["ldap_user", "wazo_user"]),
            enabled_external_auth_plugins: bool_map(&["google", "microsoft", "mobile"]),
            plugin_dir: None,
            allow_insecure_plugin_dir: false,
            plugin_call_timeout: CallTimeout(5.0),
            password_hash_scheme: Scheme::Pbkdf2Sha512,
            secret_key_file: PathBuf::from("/var/lib/wazo-auth/secret.keys"),
            refresh_token_lifetime: RefreshTokenLifetime(0),
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
            amqp: Amqp::default(),
            bus: Bus::default(),
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
    /// The IdP types, valid values of users' `authentication_method` and tenants'
    /// `default_authentication_method`: `native`, `default` and every enabled IdP plugin.
    pub fn idp_types(&self) -> wazo_auth_core::idp::IdpTypes {
        let mut types = wazo_auth_core::idp::IdpTypes::default();
        if let Some(idps) = self.idp_plugins.as_object() {
            for (name, v) in idps {
                if v.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
                    types.register(name.clone());
                }
            }
        }
        types
    }

    /// `all_users_policies` and `tenant_default_groups` as per-tenant defaults.
    pub fn tenant_defaults(&self) -> wazo_auth_core::defaults::TenantDefaults {
        let enabled_slugs = |m: &Map<String, Value>| -> Vec<(String, bool)> {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_bool().unwrap_or(false)))
                .collect()
        };
        wazo_auth_core::defaults::TenantDefaults {
            all_users_policies: enabled_slugs(&self.all_users_policies)
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| k)
                .collect(),
            default_groups: self
                .tenant_default_groups
                .iter()
                .map(|(slug, g)| {
                    let policies = g
                        .get("policies")
                        .and_then(Value::as_object)
                        .map(enabled_slugs)
                        .unwrap_or_default();
                    (slug.clone(), policies)
                })
                .collect(),
        }
    }

    /// Each plugin's configuration as handed to its `load`: `plugin_config.<name>`, except for
    /// the built-in `google` and `microsoft` external auths, which get their top-level section
    /// (as the original reads `config['google']`) with `oauth2_synchronization_ws_url_template`
    /// added, overlaid by `plugin_config.<name>` when both are given.
    pub fn plugin_configs(&self) -> BTreeMap<String, Value> {
        let mut all = self.plugin_config.clone();
        for (name, section) in [("google", &self.google), ("microsoft", &self.microsoft)] {
            let mut merged = Map::new();
            merged.insert(
                "oauth2_synchronization_ws_url_template".into(),
                self.oauth2_synchronization_ws_url_template.clone(),
            );
            if let Some(Value::Object(s)) = section {
                merged.extend(s.clone());
            }
            if let Some(Value::Object(own)) = all.get(name) {
                merged.extend(own.clone());
            }
            all.insert(name.to_string(), Value::Object(merged));
        }
        all
    }

    /// The plugin directory: `plugin_dir`, else the `plugins` folder next to
    /// the executable if it exists, else the executable's own folder.
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
    pub fn log_level_filter(&self) -> log::LevelFilter {
        if self.debug {
            return log::LevelFilter::Debug;
        }
        self.log_level.filter()
    }
}

/// Removes the obsolete top-level keys, returning their names.
pub(super) fn strip_obsolete(value: &mut Value) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

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
        assert_eq!(c.rest_api.max_body_bytes, 1_048_576);
        assert_eq!(c.rest_api.request_read_timeout, 30.0);
        let trust = c.rest_api.proxy_trust();
        assert_eq!(trust.num_proxies, 1);
        assert_eq!(
            trust.trusted,
            ["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
        );
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
    fn workers_default_to_two_per_cpu_and_can_be_set() {
        let auto = RestApi::default();
        assert_eq!(auto.workers, 0);
        assert_eq!(auto.worker_count(1), 2);
        assert_eq!(auto.worker_count(2), 4);
        assert_eq!(auto.worker_count(64), 16);
        let set = RestApi {
            workers: Workers(3),
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
    fn config_dev_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dev/config.yml");
        let c = load_with_env_uuid(&cli(&["-c", path.to_str().unwrap()]), None).unwrap();
        assert_eq!(c.enabled_backend_plugins.get("example_static"), Some(&true));
        assert_eq!(c.enabled_backend_plugins.get("wazo_user"), Some(&true));
        assert_eq!(c.enabled_external_auth_plugins.get("bar"), Some(&true));
        assert_eq!(c.enabled_external_auth_plugins.get("google"), Some(&true));
        assert_eq!(
            c.enabled_external_auth_plugins.get("microsoft"),
            Some(&true)
        );
        assert_eq!(c.enabled_external_auth_plugins.get("mobile"), Some(&true));
        assert!(c.plugin_config.contains_key("example_static"));
        assert_eq!(c.db_uri, None);
    }

    #[test]
    fn google_and_microsoft_get_their_top_level_sections() {
        let mut c = Config {
            google: Some(json!({"token_url": "http://t", "scope": ["a"]})),
            ..Config::default()
        };
        c.plugin_config
            .insert("microsoft".into(), json!({"token_url": "http://m"}));
        c.plugin_config.insert("other".into(), json!({"x": 1}));
        let all = c.plugin_configs();
        assert_eq!(
            all["google"],
            json!({"token_url": "http://t", "scope": ["a"],
                   "oauth2_synchronization_ws_url_template": "wss://oauth.wazo.io/ws/{state}"})
        );
        assert_eq!(all["microsoft"]["token_url"], "http://m");
        assert_eq!(all["other"], json!({"x": 1}));
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
