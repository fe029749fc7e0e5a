//! The `ldap_user` backend (group `wazo_auth.backends`) and the `ldap` IdP (group
//! `wazo_auth.idp`): logins checked against the LDAP directory of the login's tenant (spec core
//! §1.3, §3.3), on the public plugin ABI (1.3).
//!
//! A login names its tenant with `domain_name` (the tenant whose domain list holds it) or the
//! deprecated `tenant_id` (uuid or slug). The tenant's configuration (`/backends/ldap`, its bind
//! password decrypted by the host for these plugins only) says how to reach the directory:
//! - with `bind_dn` and `bind_password`, a service bind, then a subtree search under
//!   `user_base_dn` with `search_filters` (default `{user_login_attribute}={username}`, the
//!   placeholders LDAP-filter-escaped); anything but exactly one entry is no login;
//! - without them, the DN `<user_login_attribute>=<login, DN-escaped>,<user_base_dn>`;
//! - then a bind as that DN with the password (an empty password is refused before the
//!   directory: it would be an anonymous bind), the e-mail attribute read (lower-cased), and the
//!   wazo-auth user of that tenant whose confirmed e-mail or username is that address, enabled.
//!
//! Connections: the service bind and search run on a connection taken from a pool of idle
//! connections already bound as the service account ([`Pool`]), keyed by the tenant and
//! everything that decides whom the connection is bound as (host, port, security, bind DN and a
//! hash of the bind password: a changed configuration never reuses an old connection). A
//! connection goes back to the pool only when every operation on it succeeded; a pooled one that
//! fails (a restarted directory) is dropped and the search retried once on a new connection,
//! within the same deadline. The user bind always runs on a connection of its own, unbound and
//! closed after it: no user bind ever stays on a pooled connection; direct binds are never
//! pooled. Each connection has a connection time-out and each operation a time-out (`timeout`,
//! default 2 s), the whole login bounded at twice that. A directory that is down, slow, refuses
//! the connection or fails the TLS checks is no login (the host answers 401), logged with the
//! tenant and the host, never with the password.
//!
//! Settings (`plugin_config.ldap` for the IdP, `plugin_config.ldap_user` for the backend):
//! `timeout` (seconds, default 2.0), `ca_file` (PEM file of the CAs that may issue the
//! directories' certificates; default: the system's trusted CAs; certificates are always
//! verified, host name included), `pool_size` (idle service connections kept per directory,
//! default 4, 0: none) and `pool_idle_timeout` (seconds an idle one is kept, default 60).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{
    dn_escape, ldap_escape, LdapConn, LdapConnSettings, Scope, SearchEntry, SearchOptions,
};
use wazo_auth_plugin_api::serde_json::{self, json, Value};
use wazo_auth_plugin_api::{
    export_plugins, Args, ArgsExt, Authenticated, Backend, Host, Idp, PluginError,
};

/// The key of `args` under which a verified login hands its user to the backend's later calls.
const ARGS_KEY: &str = "ldap_user";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_FILTER: &str = "{user_login_attribute}={username}";
const DEFAULT_POOL_SIZE: usize = 4;
const DEFAULT_POOL_IDLE: Duration = Duration::from_secs(60);

/// How to reach the directories.
struct Settings {
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    pool_size: usize,
    pool_idle: Duration,
}

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, PluginError> {
        let timeout = match config.get("timeout") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT,
            Some(v) => match v.as_f64() {
                Some(s) if s > 0.0 && s <= 300.0 => Duration::from_secs_f64(s),
                _ => {
                    return Err(PluginError::config(
                        "timeout must be a number of seconds between 0 and 300",
                    ))
                }
            },
        };
        let ca_file = match config.get("ca_file") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(PathBuf::from(s)),
            Some(_) => return Err(PluginError::config("ca_file must be a file path")),
        };
        let pool_size = match config.get("pool_size") {
            None | Some(Value::Null) => DEFAULT_POOL_SIZE,
            Some(v) => match v.as_u64() {
                Some(n) if n <= 100 => n as usize,
                _ => {
                    return Err(PluginError::config(
                        "pool_size must be an integer between 0 and 100",
                    ))
                }
            },
        };
        let pool_idle = match config.get("pool_idle_timeout") {
            None | Some(Value::Null) => DEFAULT_POOL_IDLE,
            Some(v) => match v.as_f64() {
                Some(s) if s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
                _ => {
                    return Err(PluginError::config(
                        "pool_idle_timeout must be a number of seconds between 0 and 3600",
                    ))
                }
            },
        };
        Ok(Settings {
            timeout,
            tls: Arc::new(tls_config(ca_file)?),
            pool_size,
            pool_idle,
        })
    }
}

/// Whom a pooled connection is bound as, and where: a connection is only reused for the same
/// tenant, address, security, bind DN and bind password (kept as a keyed hash, not in clear).
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    tenant: String,
    host: String,
    port: i64,
    security: Option<String>,
    bind_dn: String,
    password_hash: u64,
}

/// Idle connections bound as a service account, by [`PoolKey`]: at most `size` per key, each
/// kept at most `idle`. The lock is only held to take or put a connection, never during network
/// I/O; expired connections are closed (dropped) after it is released.
struct Pool<C> {
    size: usize,
    idle: Duration,
    /// Hashes the bind passwords with keys random to this process.
    hasher: RandomState,
    conns: Mutex<HashMap<PoolKey, Vec<(C, Instant)>>>,
}

impl<C> Pool<C> {
    fn new(size: usize, idle: Duration) -> Pool<C> {
        Pool {
            size,
            idle,
            hasher: RandomState::new(),
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn key(
        &self,
        tenant: &str,
        config: &DirectoryConfig,
        bind_dn: &str,
        password: &str,
    ) -> PoolKey {
        PoolKey {
            tenant: tenant.to_string(),
            host: config.host.clone(),
            port: config.port,
            security: config.security.clone(),
            bind_dn: bind_dn.to_string(),
            password_hash: self.hasher.hash_one(password),
        }
    }

    /// Removes the connections idle for longer than `idle` (of every key: a changed
    /// configuration's connections go too); the caller drops them after the lock.
    fn expire(&self, conns: &mut HashMap<PoolKey, Vec<(C, Instant)>>) -> Vec<C> {
        let mut expired = Vec::new();
        for idle in conns.values_mut() {
            let mut i = 0;
            while i < idle.len() {
                if idle[i].1.elapsed() >= self.idle {
                    expired.push(idle.swap_remove(i).0);
                } else {
                    i += 1;
                }
            }
        }
        conns.retain(|_, idle| !idle.is_empty());
        expired
    }

    /// An idle connection of `key`, the most recently used one, if any.
    fn take(&self, key: &PoolKey) -> Option<C> {
        if self.size == 0 {
            return None;
        }
        let (taken, expired) = {
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            let expired = self.expire(&mut conns);
            let taken = conns.get_mut(key).and_then(|idle| {
                let newest = (0..idle.len()).max_by_key(|&i| idle[i].1)?;
                Some(idle.swap_remove(newest).0)
            });
            (taken, expired)
        };
        drop(expired);
        taken
    }

    /// Keeps `conn` (every operation on it succeeded) for `key`; gives it back when the pool
    /// is off or full, for the caller to close.
    fn put(&self, key: PoolKey, conn: C) -> Option<C> {
        if self.size == 0 {
            return Some(conn);
        }
        let (refused, expired) = {
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            let expired = self.expire(&mut conns);
            let idle = conns.entry(key).or_default();
            let refused = if idle.len() < self.size {
                idle.push((conn, Instant::now()));
                None
            } else {
                Some(conn)
            };
            (refused, expired)
        };
        drop(expired);
        refused
    }
}

/// Why a search on a service connection failed: the connection itself (worth a retry on a new
/// one when it came from the pool), or an answer of the directory (not).
enum Failure {
    Connection(String),
    Answer(String),
}

impl Failure {
    fn why(self) -> String {
        match self {
            Failure::Connection(why) | Failure::Answer(why) => why,
        }
    }
}

/// The TLS client configuration: the CAs of `ca_file`, else the system's.
fn tls_config(ca_file: Option<PathBuf>) -> Result<rustls::ClientConfig, PluginError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(&path)
                .map_err(|e| PluginError::config(format!("ca_file {}: {e}", path.display())))?;
            let mut reader = std::io::BufReader::new(pem.as_slice());
            for cert in rustls_pemfile::certs(&mut reader) {
                let cert = cert
                    .map_err(|e| PluginError::config(format!("ca_file {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| PluginError::config(format!("ca_file {}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(PluginError::config(format!(
                    "ca_file {}: no certificate in it",
                    path.display()
                )));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system certificate rustls cannot use is skipped.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PluginError::config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A tenant's directory, from its configuration (`/backends/ldap`).
struct DirectoryConfig {
    host: String,
    port: i64,
    /// `ldaps`, `tls` (StartTLS) or none.
    security: Option<String>,
    bind_dn: Option<String>,
    bind_password: Option<String>,
    user_base_dn: String,
    user_login_attribute: String,
    user_email_attribute: String,
    search_filters: Option<String>,
}

impl DirectoryConfig {
    fn from_json(v: &Value) -> Option<DirectoryConfig> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        let non_empty = |k: &str| s(k).filter(|x| !x.is_empty());
        Some(DirectoryConfig {
            host: s("host")?,
            port: v.get("port").and_then(Value::as_i64)?,
            security: s("protocol_security"),
            bind_dn: non_empty("bind_dn"),
            bind_password: non_empty("bind_password"),
            user_base_dn: s("user_base_dn")?,
            user_login_attribute: s("user_login_attribute")?,
            user_email_attribute: s("user_email_attribute")?,
            search_filters: non_empty("search_filters"),
        })
    }

    /// `ldap[s]://host:port` (an IPv6 address in brackets).
    fn url(&self) -> String {
        let scheme = if self.security.as_deref() == Some("ldaps") {
            "ldaps"
        } else {
            "ldap"
        };
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}", self.port)
    }
}

/// `search_filters` with its placeholders filled, each value LDAP-filter-escaped, as Python's
/// `str.format` (`{{` and `}}` are braces); `None` for another placeholder or a lone brace.
fn fill_filter(template: &str, values: &[(&str, &str)]) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return None;
        }
        let end = tail.find('}')?;
        let name = &tail[1..end];
        let (_, value) = values.iter().find(|(k, _)| *k == name)?;
        out.push_str(&ldap_escape(*value));
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    // A bare `attr=value` item is a filter too (libldap accepts it).
    if !out.starts_with('(') {
        out = format!("({out})");
    }
    Some(out)
}

/// The first value of `attr` (compared without case) of an entry.
fn attribute(entry: &SearchEntry, attr: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first().cloned())
        .filter(|v| !v.is_empty())
}

/// The wazo-auth user a login found.
struct Found {
    uuid: String,
    tenant_uuid: String,
    purpose: String,
    email: String,
}

/// The work shared by the backend and the IdP.
struct Directory {
    host: Host,
    settings: Settings,
    /// Idle connections bound as the tenants' service accounts.
    pool: Pool<LdapConn>,
}

impl Directory {
    fn load(host: &Host, config: &Value) -> Result<Directory, PluginError> {
        let settings = Settings::from_config(config)?;
        Ok(Directory {
            host: host.clone(),
            pool: Pool::new(settings.pool_size, settings.pool_idle),
            settings,
        })
    }

    /// The tenant a login names (`domain_name`, else `tenant_id`), if it exists.
    fn tenant_of(&self, args: &Args) -> Result<Option<String>, PluginError> {
        if let Some(domain) = args.get("domain_name").and_then(Value::as_str) {
            let tenant = self.host.tenant_by_domain_name(domain)?;
            if tenant.is_none() {
                log::warn!("LDAP login refused: no tenant has the domain name {domain:?}");
            }
            return Ok(tenant.map(|t| t.uuid));
        }
        if let Some(id) = args.get("tenant_id").and_then(Value::as_str) {
            log::warn!(
                "LDAP login using the deprecated \"tenant_id\": use \"domain_name\" instead"
            );
            let tenant = self.host.tenant_by_id(id)?;
            if tenant.is_none() {
                log::warn!("LDAP login refused: no tenant has the uuid or slug {id:?}");
            }
            return Ok(tenant.map(|t| t.uuid));
        }
        Ok(None)
    }

    /// Checks `login` and `password` against the directory of the tenant `args` names; the
    /// wazo-auth user found, if any. Directory failures are no login (logged), never an error.
    fn verify(
        &self,
        login: &str,
        password: &str,
        args: &Args,
    ) -> Result<Option<Found>, PluginError> {
        if login.is_empty() || password.is_empty() {
            // An empty password would be an anonymous bind, which directories accept.
            return Ok(None);
        }
        let Some(tenant) = self.tenant_of(args)? else {
            return Ok(None);
        };
        let Some(config) = self.host.ldap_config(&tenant)? else {
            log::warn!("LDAP login refused: tenant {tenant} has no LDAP configuration");
            return Ok(None);
        };
        let Some(config) = DirectoryConfig::from_json(&config) else {
            log::error!(
                "LDAP login refused: the LDAP configuration of tenant {tenant} is incomplete"
            );
            return Ok(None);
        };
        let email = match self.directory_email(&tenant, &config, login, password) {
            Ok(Some(email)) => email,
            Ok(None) => return Ok(None),
            Err(why) => {
                log::warn!(
                    "LDAP login refused: the directory of tenant {tenant} ({}:{}) failed: {why}",
                    config.host,
                    config.port
                );
                return Ok(None);
            }
        };
        let Some(user) = self.host.find_user(&email)? else {
            log::info!(
                "LDAP login refused: no enabled wazo-auth user has the e-mail of the directory \
                 entry (tenant {tenant})"
            );
            return Ok(None);
        };
        if user.tenant_uuid != tenant {
            log::info!(
                "LDAP login refused: the wazo-auth user {} with the directory entry's e-mail is \
                 not of tenant {tenant}",
                user.uuid
            );
            return Ok(None);
        }
        Ok(Some(Found {
            uuid: user.uuid,
            tenant_uuid: user.tenant_uuid,
            purpose: user.purpose,
            email,
        }))
    }

    /// Binds as the login's entry and reads its e-mail (lower-cased): `Ok(None)` for no such
    /// entry (or several), wrong credentials or no e-mail; `Err` for a directory failure.
    fn directory_email(
        &self,
        tenant: &str,
        config: &DirectoryConfig,
        login: &str,
        password: &str,
    ) -> Result<Option<String>, String> {
        let timeout = self.settings.timeout;
        // The whole exchange (connections, up to four operations, unbinds) is bounded at twice
        // the per-operation time-out, so that a slow directory never outlasts the host's
        // plugin-call time-out (5 s by default) and never keeps this call's thread after it.
        let deadline = Instant::now() + timeout.saturating_mul(2);
        let (dn, email) = match (&config.bind_dn, &config.bind_password) {
            (Some(bind_dn), Some(bind_password)) => {
                let key = self.pool.key(tenant, config, bind_dn, bind_password);
                match self.find_entry(key, config, login, deadline)? {
                    Some(found) => found,
                    None => return Ok(None),
                }
            }
            _ => (
                format!(
                    "{}={},{}",
                    config.user_login_attribute,
                    dn_escape(login),
                    config.user_base_dn
                ),
                None,
            ),
        };
        // The user bind: on a connection of its own, closed after it, never pooled.
        let mut conn = self.open(config, deadline)?;
        let outcome = self.user_bind_and_read(&mut conn, config, &dn, password, email, deadline);
        self.close(conn, deadline);
        outcome
    }

    /// A new connection to the directory (StartTLS done when configured).
    fn open(&self, config: &DirectoryConfig, deadline: Instant) -> Result<LdapConn, String> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(time_left(deadline, self.settings.timeout)?)
            .set_starttls(config.security.as_deref() == Some("tls"))
            .set_config(self.settings.tls.clone());
        let url = url::Url::parse(&config.url()).map_err(|e| format!("bad address: {e}"))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("no host".into());
        }
        LdapConn::from_url_with_settings(settings, &url).map_err(|e| e.to_string())
    }

    /// Unbinds and closes `conn`, if there is time left.
    fn close(&self, mut conn: LdapConn, deadline: Instant) {
        if let Ok(left) = time_left(deadline, self.settings.timeout) {
            let _ = conn.with_timeout(left).unbind();
        }
    }

    /// Keeps `conn`, bound as the service account and every operation on it a success, in the
    /// pool (or closes it when the pool is off or full).
    fn release(&self, key: PoolKey, conn: LdapConn, deadline: Instant) {
        if let Some(conn) = self.pool.put(key, conn) {
            self.close(conn, deadline);
        }
    }

    /// The service bind and the search: the DN of the login's entry and the e-mail the search
    /// read, `None` for no entry or several. On a pooled connection when there is one; one
    /// that fails is dropped and the search retried once on a new connection.
    fn find_entry(
        &self,
        key: PoolKey,
        config: &DirectoryConfig,
        login: &str,
        deadline: Instant,
    ) -> Result<Option<(String, Option<String>)>, String> {
        if let Some(mut conn) = self.pool.take(&key) {
            match self.search(&mut conn, config, login, deadline) {
                Ok(found) => {
                    self.release(key, conn, deadline);
                    return Ok(found);
                }
                Err(Failure::Answer(why)) => {
                    self.close(conn, deadline);
                    return Err(why);
                }
                Err(Failure::Connection(why)) => {
                    // Its state is unknown (a restarted or hung directory): never reused.
                    drop(conn);
                    log::info!(
                        "LDAP: a pooled connection to {}:{} failed ({why}); trying a new one",
                        config.host,
                        config.port
                    );
                }
            }
        }
        let mut conn = self.open(config, deadline)?;
        let outcome = self
            .service_bind(&mut conn, config, deadline)
            .and_then(|()| self.search(&mut conn, config, login, deadline));
        match outcome {
            Ok(found) => {
                self.release(key, conn, deadline);
                Ok(found)
            }
            Err(failure) => {
                self.close(conn, deadline);
                Err(failure.why())
            }
        }
    }

    /// Binds `conn` as the service account.
    fn service_bind(
        &self,
        conn: &mut LdapConn,
        config: &DirectoryConfig,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let (Some(bind_dn), Some(bind_password)) = (&config.bind_dn, &config.bind_password) else {
            return Err(Failure::Answer("no service account".into()));
        };
        let left = time_left(deadline, self.settings.timeout).map_err(Failure::Connection)?;
        let bound = conn
            .with_timeout(left)
            .simple_bind(bind_dn, bind_password)
            .map_err(|e| Failure::Connection(e.to_string()))?;
        if bound.rc != 0 {
            return Err(Failure::Answer(format!(
                "the service bind as {bind_dn:?} failed ({})",
                bound.rc
            )));
        }
        Ok(())
    }

    /// The subtree search for the login's entry, on a connection bound as the service account.
    fn search(
        &self,
        conn: &mut LdapConn,
        config: &DirectoryConfig,
        login: &str,
        deadline: Instant,
    ) -> Result<Option<(String, Option<String>)>, Failure> {
        let email_attr = config.user_email_attribute.as_str();
        let template = config.search_filters.as_deref().unwrap_or(DEFAULT_FILTER);
        let Some(filter) = fill_filter(
            template,
            &[
                ("username", login),
                ("user_login_attribute", &config.user_login_attribute),
                ("user_email_attribute", email_attr),
            ],
        ) else {
            return Err(Failure::Answer(format!(
                "search_filters {template:?} cannot be filled"
            )));
        };
        let left = time_left(deadline, self.settings.timeout).map_err(Failure::Connection)?;
        let found = conn
            .with_timeout(left)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(
                &config.user_base_dn,
                Scope::Subtree,
                &filter,
                vec![email_attr],
            )
            .map_err(|e| Failure::Connection(e.to_string()))?;
        let (entries, result) = (found.0, found.1);
        // 4: sizeLimitExceeded (more than one entry).
        if result.rc != 0 && result.rc != 4 {
            return Err(Failure::Answer(format!(
                "the search failed ({}: {})",
                result.rc, result.text
            )));
        }
        if entries.len() != 1 || result.rc == 4 {
            log::info!(
                "LDAP login refused: {} entries match the login under {:?}",
                if result.rc == 4 {
                    "several".to_string()
                } else {
                    entries.len().to_string()
                },
                config.user_base_dn
            );
            return Ok(None);
        }
        let mut entries = entries;
        let Some(raw) = entries.pop() else {
            return Ok(None);
        };
        let entry = SearchEntry::construct(raw);
        let email = attribute(&entry, email_attr);
        Ok(Some((entry.dn, email)))
    }

    /// Binds `conn` as `dn` with the login's password and reads the entry's e-mail when the
    /// search did not.
    fn user_bind_and_read(
        &self,
        conn: &mut LdapConn,
        config: &DirectoryConfig,
        dn: &str,
        password: &str,
        mut email: Option<String>,
        deadline: Instant,
    ) -> Result<Option<String>, String> {
        let timeout = self.settings.timeout;
        let email_attr = config.user_email_attribute.as_str();
        let bound = conn
            .with_timeout(time_left(deadline, timeout)?)
            .simple_bind(dn, password)
            .map_err(|e| e.to_string())?;
        if bound.rc != 0 {
            // 49: invalidCredentials (a wrong password or no such entry).
            log::info!(
                "LDAP login refused: the bind as the user failed ({})",
                bound.rc
            );
            return Ok(None);
        }
        if email.is_none() {
            let read = conn
                .with_timeout(time_left(deadline, timeout)?)
                .search(dn, Scope::Base, "(objectClass=*)", vec![email_attr])
                .map_err(|e| e.to_string())?;
            email = read
                .0
                .into_iter()
                .next()
                .and_then(|raw| attribute(&SearchEntry::construct(raw), email_attr));
        }
        match email {
            Some(e) => Ok(Some(e.to_lowercase())),
            None => {
                log::info!("LDAP login refused: the directory entry has no {email_attr:?}");
                Ok(None)
            }
        }
    }
}

/// Records the user a login found in `args`, as the original: `user_email`, `real_login` (the
/// refresh token's login) and `pbx_user_uuid`; and the user for the backend's later calls.
fn record(found: &Found, args: &mut Args) {
    args.insert("user_email".into(), found.email.clone().into());
    args.insert("real_login".into(), found.email.clone().into());
    args.insert("pbx_user_uuid".into(), found.uuid.clone().into());
    args.insert(
        ARGS_KEY.into(),
        json!({"uuid": found.uuid, "tenant_uuid": found.tenant_uuid, "purpose": found.purpose}),
    );
}

fn str_arg<'a>(args: &'a Args, key: &str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The `ldap_user` backend.
pub struct LdapUser {
    directory: Directory,
}

impl LdapUser {
    /// The user of this login: from `args` when a verification ran, else looked up by login
    /// (a refresh-token login).
    fn user_of(&self, login: &str, args: &Args) -> Result<(String, String, String), PluginError> {
        if let Some(u) = args.get(ARGS_KEY) {
            let s = |k: &str| u.get(k).and_then(Value::as_str).map(String::from);
            if let (Some(uuid), Some(tenant), Some(purpose)) =
                (s("uuid"), s("tenant_uuid"), s("purpose"))
            {
                return Ok((uuid, tenant, purpose));
            }
        }
        let user = self
            .directory
            .host
            .find_user(login)?
            .ok_or_else(|| PluginError::failed("no enabled user with this login"))?;
        Ok((user.uuid, user.tenant_uuid, user.purpose))
    }
}

impl Backend for LdapUser {
    fn load(host: &Host, config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(LdapUser {
            directory: Directory::load(host, &config)?,
        })
    }

    fn verify_password(
        &self,
        login: &str,
        password: &str,
        args: &mut Args,
    ) -> Result<bool, PluginError> {
        match self.directory.verify(login, password, args)? {
            Some(found) => {
                record(&found, args);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The original's default metadata (`username`: the login) completed by the default
    /// metadata of the user's purpose.
    fn get_metadata(&self, login: &str, args: &Args) -> Result<Args, PluginError> {
        let login = args
            .get("user_email")
            .and_then(Value::as_str)
            .unwrap_or(login);
        let (uuid, tenant_uuid, purpose) = self.user_of(login, args)?;
        let mut m = Args::new();
        m.insert("auth_id".into(), uuid.clone().into());
        m.insert("username".into(), login.into());
        m.insert(
            "xivo_uuid".into(),
            self.get_xivo_uuid(args).map_or(Value::Null, Value::from),
        );
        m.insert(
            "pbx_user_uuid".into(),
            if purpose == "user" {
                uuid.clone().into()
            } else {
                Value::Null
            },
        );
        m.insert("uuid".into(), uuid.into());
        m.insert("tenant_uuid".into(), tenant_uuid.into());
        m.insert("purpose".into(), purpose.into());
        Ok(m)
    }

    /// The default policy's ACL, then the user's group policies, then its own policies.
    fn get_acl(&self, login: &str, args: &Args) -> Result<Vec<String>, PluginError> {
        let login = args
            .get("user_email")
            .and_then(Value::as_str)
            .unwrap_or(login);
        let (uuid, _, _) = self.user_of(login, args)?;
        let mut acl: Vec<String> = match args.get("acl") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        acl.extend(self.directory.host.user_acl(&uuid)?);
        Ok(acl)
    }

    fn get_xivo_uuid(&self, args: &Args) -> Option<String> {
        args.xivo_uuid()
            .map(String::from)
            .or_else(|| std::env::var("XIVO_UUID").ok())
    }
}

/// The `ldap` IdP: handles the logins with credentials and a `domain_name` or `tenant_id`.
pub struct LdapIdp {
    directory: Directory,
}

impl Idp for LdapIdp {
    fn load(host: &Host, config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(LdapIdp {
            directory: Directory::load(host, &config)?,
        })
    }

    fn authentication_method(&self) -> String {
        "ldap".into()
    }

    fn can_authenticate(&self, args: &Args) -> bool {
        args.contains_key("login")
            && args.contains_key("password")
            && (args.contains_key("domain_name") || args.contains_key("tenant_id"))
    }

    fn verify_auth(&self, args: &mut Args) -> Result<Option<Authenticated>, PluginError> {
        let login = str_arg(args, "login").to_string();
        let password = str_arg(args, "password").to_string();
        match self.directory.verify(&login, &password, args)? {
            Some(found) => {
                record(&found, args);
                args.insert("login".into(), found.email.clone().into());
                Ok(Some(Authenticated::new("ldap_user", found.email)))
            }
            None => Ok(None),
        }
    }
}

export_plugins! {
    backends: ["ldap_user" => LdapUser],
    idps: ["ldap" => LdapIdp],
}

/// What is left of the exchange's time, at most `per_operation`; an error once it is spent.
fn time_left(deadline: Instant, per_operation: Duration) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("the directory exchange took longer than twice the LDAP timeout".into());
    }
    Ok(left.min(per_operation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_filled_with_escaped_values() {
        let v = [
            ("username", "a*b(c)\\d\0"),
            ("user_login_attribute", "uid"),
            ("user_email_attribute", "mail"),
        ];
        assert_eq!(
            fill_filter(DEFAULT_FILTER, &v).as_deref(),
            Some("(uid=a\\2ab\\28c\\29\\5cd\\00)")
        );
        assert_eq!(
            fill_filter("(&({user_login_attribute}={username})(objectClass=*))", &v).as_deref(),
            Some("(&(uid=a\\2ab\\28c\\29\\5cd\\00)(objectClass=*))")
        );
        assert_eq!(
            fill_filter("{{x}}={username}", &v[..1]).as_deref(),
            Some("({x}=a\\2ab\\28c\\29\\5cd\\00)")
        );
        assert_eq!(fill_filter("{unknown}", &v), None);
        assert_eq!(fill_filter("uid={username", &v), None);
        assert_eq!(fill_filter("uid=}", &v), None);
    }

    #[test]
    fn urls_name_the_scheme_and_bracket_ipv6() {
        let mut c = DirectoryConfig::from_json(&json!({
            "tenant_uuid": "t", "host": "ldap.example", "port": 636,
            "protocol_security": "ldaps", "user_base_dn": "dc=x",
            "user_login_attribute": "uid", "user_email_attribute": "mail",
        }))
        .unwrap();
        assert_eq!(c.url(), "ldaps://ldap.example:636");
        c.security = Some("tls".into());
        c.host = "::1".into();
        assert_eq!(c.url(), "ldap://[::1]:636");
    }

    #[test]
    fn the_time_left_is_bounded_by_the_operation_timeout_and_runs_out() {
        let op = Duration::from_secs(2);
        let left = time_left(Instant::now() + Duration::from_secs(4), op).unwrap();
        assert_eq!(left, op);
        let left = time_left(Instant::now() + Duration::from_millis(500), op).unwrap();
        assert!(left <= Duration::from_millis(500) && left > Duration::ZERO);
        assert!(time_left(Instant::now(), op).is_err());
    }

    fn config(host: &str) -> DirectoryConfig {
        DirectoryConfig::from_json(&json!({
            "host": host, "port": 389, "user_base_dn": "dc=x",
            "user_login_attribute": "uid", "user_email_attribute": "mail",
        }))
        .unwrap()
    }

    #[test]
    fn the_pool_reuses_a_connection_only_for_the_same_tenant_directory_and_credentials() {
        let pool: Pool<u32> = Pool::new(4, Duration::from_secs(60));
        let key = pool.key("t1", &config("ldap.a"), "cn=svc", "pw");
        assert!(pool.put(key.clone(), 1).is_none());
        for other in [
            pool.key("t2", &config("ldap.a"), "cn=svc", "pw"),
            pool.key("t1", &config("ldap.b"), "cn=svc", "pw"),
            pool.key("t1", &config("ldap.a"), "cn=other", "pw"),
            pool.key("t1", &config("ldap.a"), "cn=svc", "changed"),
        ] {
            assert!(pool.take(&other).is_none());
        }
        let mut tls = config("ldap.a");
        tls.security = Some("tls".into());
        assert!(pool.take(&pool.key("t1", &tls, "cn=svc", "pw")).is_none());
        assert_eq!(
            pool.take(&pool.key("t1", &config("ldap.a"), "cn=svc", "pw")),
            Some(1)
        );
        // Taken: not handed out twice.
        assert_eq!(pool.take(&key), None);
    }

    #[test]
    fn the_pool_is_bounded_per_key_and_can_be_off() {
        let pool: Pool<u32> = Pool::new(2, Duration::from_secs(60));
        let key = pool.key("t", &config("h"), "cn=svc", "pw");
        assert_eq!(pool.put(key.clone(), 1), None);
        assert_eq!(pool.put(key.clone(), 2), None);
        assert_eq!(pool.put(key.clone(), 3), Some(3));
        let other = pool.key("u", &config("h"), "cn=svc", "pw");
        assert_eq!(pool.put(other.clone(), 4), None);
        assert_eq!(pool.take(&key), Some(2));
        assert_eq!(pool.take(&key), Some(1));
        assert_eq!(pool.take(&key), None);
        assert_eq!(pool.take(&other), Some(4));

        let off: Pool<u32> = Pool::new(0, Duration::from_secs(60));
        assert_eq!(off.put(key.clone(), 1), Some(1));
        assert_eq!(off.take(&key), None);
    }

    #[test]
    fn idle_connections_expire() {
        let pool: Pool<u32> = Pool::new(4, Duration::from_millis(50));
        let key = pool.key("t", &config("h"), "cn=svc", "pw");
        let other = pool.key("u", &config("h"), "cn=svc", "pw");
        assert_eq!(pool.put(key.clone(), 1), None);
        assert_eq!(pool.put(other.clone(), 2), None);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(pool.put(key.clone(), 3), None);
        // Every key's expired connections go, not only the one asked for.
        assert_eq!(pool.conns.lock().unwrap().len(), 1);
        assert_eq!(pool.take(&key), Some(3));
        assert_eq!(pool.take(&key), None);
        assert_eq!(pool.take(&other), None);
    }

    #[test]
    fn pool_settings_are_validated() {
        let ok = Settings::from_config(&json!({})).unwrap();
        assert_eq!(ok.pool_size, 4);
        assert_eq!(ok.pool_idle, Duration::from_secs(60));
        let ok = Settings::from_config(&json!({"pool_size": 0, "pool_idle_timeout": 1.5})).unwrap();
        assert_eq!(ok.pool_size, 0);
        assert_eq!(ok.pool_idle, Duration::from_millis(1500));
        for bad in [
            json!({"pool_size": -1}),
            json!({"pool_size": 1.5}),
            json!({"pool_size": "4"}),
            json!({"pool_size": 101}),
            json!({"pool_idle_timeout": 0}),
            json!({"pool_idle_timeout": "60"}),
        ] {
            assert!(Settings::from_config(&bad).is_err(), "{bad}");
        }
    }
}
