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
//! Each login has its own connection (no user bind ever stays on a shared one), with a
//! connection time-out and a time-out per operation (`timeout`, default 2 s). A directory that
//! is down, slow, refuses the connection or fails the TLS checks is no login (the host answers
//! 401), logged with the tenant and the host, never with the password.
//!
//! Settings (`plugin_config.ldap` for the IdP, `plugin_config.ldap_user` for the backend):
//! `timeout` (seconds, default 2.0) and `ca_file` (PEM file of the CAs that may issue the
//! directories' certificates; default: the system's trusted CAs). Certificates are always
//! verified, host name included.

use std::path::PathBuf;
use std::sync::Arc;
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

/// How to reach the directories.
struct Settings {
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
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
        Ok(Settings {
            timeout,
            tls: Arc::new(tls_config(ca_file)?),
        })
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
}

impl Directory {
    fn load(host: &Host, config: &Value) -> Result<Directory, PluginError> {
        Ok(Directory {
            host: host.clone(),
            settings: Settings::from_config(config)?,
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
        let email = match self.directory_email(&config, login, password) {
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
        config: &DirectoryConfig,
        login: &str,
        password: &str,
    ) -> Result<Option<String>, String> {
        let timeout = self.settings.timeout;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(config.security.as_deref() == Some("tls"))
            .set_config(self.settings.tls.clone());
        let url = url::Url::parse(&config.url()).map_err(|e| format!("bad address: {e}"))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("no host".into());
        }
        // The whole exchange (connection, up to four operations, unbind) is bounded at twice
        // the per-operation time-out, so that a slow directory never outlasts the host's
        // plugin-call time-out (5 s by default) and never keeps this call's thread after it.
        let deadline = Instant::now() + timeout.saturating_mul(2);
        let mut conn =
            LdapConn::from_url_with_settings(settings, &url).map_err(|e| e.to_string())?;
        let outcome = self.bind_and_read(&mut conn, config, login, password, deadline);
        if let Ok(left) = time_left(deadline, timeout) {
            let _ = conn.with_timeout(left).unbind();
        }
        outcome
    }

    fn bind_and_read(
        &self,
        conn: &mut LdapConn,
        config: &DirectoryConfig,
        login: &str,
        password: &str,
        deadline: Instant,
    ) -> Result<Option<String>, String> {
        let timeout = self.settings.timeout;
        let email_attr = config.user_email_attribute.as_str();
        let (dn, mut email) = match (&config.bind_dn, &config.bind_password) {
            (Some(bind_dn), Some(bind_password)) => {
                let bound = conn
                    .with_timeout(time_left(deadline, timeout)?)
                    .simple_bind(bind_dn, bind_password)
                    .map_err(|e| e.to_string())?;
                if bound.rc != 0 {
                    return Err(format!(
                        "the service bind as {bind_dn:?} failed ({})",
                        bound.rc
                    ));
                }
                let template = config.search_filters.as_deref().unwrap_or(DEFAULT_FILTER);
                let Some(filter) = fill_filter(
                    template,
                    &[
                        ("username", login),
                        ("user_login_attribute", &config.user_login_attribute),
                        ("user_email_attribute", email_attr),
                    ],
                ) else {
                    return Err(format!("search_filters {template:?} cannot be filled"));
                };
                let found = conn
                    .with_timeout(time_left(deadline, timeout)?)
                    .with_search_options(SearchOptions::new().sizelimit(2))
                    .search(
                        &config.user_base_dn,
                        Scope::Subtree,
                        &filter,
                        vec![email_attr],
                    )
                    .map_err(|e| e.to_string())?;
                let (entries, result) = (found.0, found.1);
                // 4: sizeLimitExceeded (more than one entry).
                if result.rc != 0 && result.rc != 4 {
                    return Err(format!(
                        "the search failed ({}: {})",
                        result.rc, result.text
                    ));
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
                (entry.dn, email)
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
        let bound = conn
            .with_timeout(time_left(deadline, timeout)?)
            .simple_bind(&dn, password)
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
                .search(&dn, Scope::Base, "(objectClass=*)", vec![email_attr])
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
}
