//! Plugin discovery and loading, the host-services object handed to plugins, and time-bounded
//! calls into plugins.
//!
//! Every `.so` of the plugin directory is opened on its own (not through abi_stable's
//! `RootModule::load_from_*`, which caches one module per type and would silently hand back the
//! first library for every later path). A file that is not a plugin, was built against an
//! incompatible plugin-api, panics while declaring or loading its plugins, or declares a name that
//! is already taken, is skipped with one log line naming the file and the reason; the server keeps
//! starting.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RStr, RString, RVec};
use tokio::sync::Semaphore;
use wazo_auth_plugin_api::ffi::{
    BackendBox, ExternalAuthBox, HostServicesBox, HostServicesFfi, HostServicesFfi_TO, IdpBox,
    LogLevelCode, MetadataBox, PluginModuleRef,
};
use wazo_auth_plugin_api::{ErrorKind, PluginError};

use crate::services::{AuthError, CallScope, HostContext};

/// Entry-point group of authentication backends.
pub const GROUP_BACKENDS: &str = "wazo_auth.backends";
/// Entry-point group of external-auth plugins.
pub const GROUP_EXTERNAL_AUTH: &str = "wazo_auth.external_auth";
/// Entry-point group of metadata plugins (since plugin-api 1.3).
pub const GROUP_METADATA: &str = "wazo_auth.metadata";
/// Entry-point group of IdP plugins (since plugin-api 1.3).
pub const GROUP_IDP: &str = "wazo_auth.idp";
/// Metadata plugin names built into the host: a library declaring one is refused.
pub const BUILTIN_METADATA: &[&str] = &[
    "default_user",
    "default_internal",
    "default_external_api",
    "user_admin_status",
];
/// IdP names built into the host: a library declaring one is refused.
pub const BUILTIN_IDPS: &[&str] = &["native", "refresh_token"];

/// How many calls may be running at once in one plugin. When a plugin hangs, its calls time out
/// but the threads running them cannot be killed; this bound keeps a hung plugin from eating the
/// whole blocking pool: further calls fail at once instead of queueing.
const MAX_INFLIGHT_CALLS_PER_PLUGIN: usize = 64;

/// The host-services object given to one plugin.
#[derive(Clone)]
struct HostServicesImpl {
    plugin: Arc<str>,
    config_json: Arc<str>,
    context: Option<Arc<HostContext>>,
    /// For external-auth plugins: the only auth type whose data they may reach.
    auth_type: Option<Arc<str>>,
}

impl HostServicesImpl {
    fn context(&self, service: &str) -> Result<&HostContext, PluginError> {
        self.context.as_deref().ok_or_else(|| {
            PluginError::new(
                ErrorKind::UNAVAILABLE,
                format!("{service} is not available in this context"),
            )
        })
    }
}

fn parse_data(data_json: RStr<'_>) -> Result<serde_json::Value, PluginError> {
    serde_json::from_str(data_json.as_str()).map_err(|e| {
        PluginError::new(
            ErrorKind::INVALID_INPUT,
            format!("data is not valid JSON: {e}"),
        )
    })
}

impl HostServicesImpl {
    /// Runs an external-store service for this plugin's own auth type only.
    fn external<T>(
        &self,
        f: impl FnOnce(&HostContext, &str) -> Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        let Some(auth_type) = self.auth_type.as_deref() else {
            return Err(PluginError::new(
                ErrorKind::UNSUPPORTED,
                "the external-auth store is only offered to external-auth plugins",
            ));
        };
        f(self.context("the external-auth store")?, auth_type)
    }
}

fn service_error(service: &str, e: wazo_auth_core::Error) -> PluginError {
    log::error!("host service {service} failed: {e}");
    PluginError::unavailable(format!(
        "{service} failed: the user database is unavailable"
    ))
}

impl HostServicesFfi for HostServicesImpl {
    fn plugin_name(&self) -> RString {
        RString::from(&*self.plugin)
    }

    fn config_json(&self) -> RString {
        RString::from(&*self.config_json)
    }

    fn log(&self, level: LogLevelCode, target: RStr<'_>, message: RStr<'_>) {
        let level = match level {
            1 => log::Level::Error,
            2 => log::Level::Warn,
            3 => log::Level::Info,
            4 => log::Level::Debug,
            _ => log::Level::Trace,
        };
        let tag = format!("plugin::{}", self.plugin);
        if log::log_enabled!(target: &tag, level) {
            log::logger().log(
                &log::Record::builder()
                    .level(level)
                    .target(&tag)
                    .args(format_args!("[{}] {}", target.as_str(), message.as_str()))
                    .build(),
            );
        }
    }

    fn max_log_level(&self) -> LogLevelCode {
        log::max_level() as usize as u8
    }

    fn authenticate_user(
        &self,
        login: RStr<'_>,
        password: RStr<'_>,
    ) -> RResult<ROption<RString>, PluginError> {
        let outcome = self.context("authenticate_user").and_then(|c| {
            c.authenticate(login.as_str(), password.as_str())
                .map_err(|e| match e {
                    AuthError::Store(e) => service_error("authenticate_user", e),
                    AuthError::Abandoned => PluginError::unavailable(
                        "authenticate_user: the login was abandoned before its password was checked",
                    ),
                })
        });
        match outcome {
            Ok(user) => RResult::ROk(
                user.map(|u| RString::from(crate::services::user_json(&u)))
                    .into(),
            ),
            Err(e) => RResult::RErr(e),
        }
    }

    fn find_user(&self, login: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        let outcome = self.context("find_user").and_then(|c| {
            c.find_user(login.as_str())
                .map_err(|e| service_error("find_user", e))
        });
        match outcome {
            Ok(user) => RResult::ROk(
                user.map(|u| RString::from(crate::services::user_json(&u)))
                    .into(),
            ),
            Err(e) => RResult::RErr(e),
        }
    }

    fn external_get(&self, user_uuid: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        match self.external(|c, t| c.external_get(user_uuid.as_str(), t)) {
            Ok(v) => RResult::ROk(v.map(|d| RString::from(d.to_string())).into()),
            Err(e) => RResult::RErr(e),
        }
    }

    fn external_create(
        &self,
        user_uuid: RStr<'_>,
        data_json: RStr<'_>,
    ) -> RResult<(), PluginError> {
        let data = match parse_data(data_json) {
            Ok(d) => d,
            Err(e) => return RResult::RErr(e),
        };
        self.external(|c, t| c.external_create(user_uuid.as_str(), t, &data))
            .into()
    }

    fn external_update(
        &self,
        user_uuid: RStr<'_>,
        data_json: RStr<'_>,
    ) -> RResult<(), PluginError> {
        let data = match parse_data(data_json) {
            Ok(d) => d,
            Err(e) => return RResult::RErr(e),
        };
        self.external(|c, t| c.external_update(user_uuid.as_str(), t, &data))
            .into()
    }

    fn external_delete(&self, user_uuid: RStr<'_>) -> RResult<(), PluginError> {
        self.external(|c, t| c.external_delete(user_uuid.as_str(), t))
            .into()
    }

    fn external_config(&self, user_uuid: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        match self.external(|c, t| c.external_config(user_uuid.as_str(), t)) {
            Ok(v) => RResult::ROk(v.map(|d| RString::from(d.to_string())).into()),
            Err(e) => RResult::RErr(e),
        }
    }

    fn publish_authorized(&self, user_uuid: RStr<'_>) -> RResult<(), PluginError> {
        self.external(|c, t| c.external_authorized(user_uuid.as_str(), t))
            .into()
    }

    fn external_tenant_config(
        &self,
        tenant_uuid: RStr<'_>,
    ) -> RResult<ROption<RString>, PluginError> {
        match self.external(|c, t| c.external_tenant_config(tenant_uuid.as_str(), t)) {
            Ok(v) => RResult::ROk(v.map(|d| RString::from(d.to_string())).into()),
            Err(e) => RResult::RErr(e),
        }
    }

    fn tenant_by_domain_name(
        &self,
        domain_name: RStr<'_>,
    ) -> RResult<ROption<RString>, PluginError> {
        let outcome = self.context("tenant_by_domain_name").and_then(|c| {
            c.tenant_by_domain_name(domain_name.as_str())
                .map_err(|e| service_error("tenant_by_domain_name", e))
        });
        match outcome {
            Ok(t) => RResult::ROk(t.map(|t| RString::from(t.to_string())).into()),
            Err(e) => RResult::RErr(e),
        }
    }

    fn tenant_by_id(&self, tenant_id: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        let outcome = self.context("tenant_by_id").and_then(|c| {
            c.tenant_by_id(tenant_id.as_str())
                .map_err(|e| service_error("tenant_by_id", e))
        });
        match outcome {
            Ok(t) => RResult::ROk(t.map(|t| RString::from(t.to_string())).into()),
            Err(e) => RResult::RErr(e),
        }
    }

    fn ldap_config(&self, tenant_uuid: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        // Only the built-in LDAP plugins get a bind password: their names are reserved to the
        // built-in library (see `BUILT_IN`), and external-auth plugins never.
        if self.auth_type.is_some() || !LDAP_PLUGINS.contains(&&*self.plugin) {
            return RResult::RErr(PluginError::new(
                ErrorKind::UNSUPPORTED,
                "ldap_config is only offered to the built-in LDAP plugins",
            ));
        }
        let outcome = self.context("ldap_config").and_then(|c| {
            c.ldap_config(tenant_uuid.as_str())
                .map_err(|e| service_error("ldap_config", e))
        });
        match outcome {
            Ok(t) => RResult::ROk(t.map(|t| RString::from(t.to_string())).into()),
            Err(e) => RResult::RErr(e),
        }
    }

    fn user_acl(&self, user_uuid: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        let outcome = self.context("user_acl").and_then(|c| {
            c.user_acl(user_uuid.as_str())
                .map_err(|e| service_error("user_acl", e))
        });
        match outcome {
            Ok(acl) => RResult::ROk(acl.into_iter().map(RString::from).collect()),
            Err(e) => RResult::RErr(e),
        }
    }
}

/// One row of the startup table.
#[derive(Debug, Clone)]
pub struct PluginReport {
    pub name: String,
    pub group: &'static str,
    pub file: PathBuf,
    pub api_version: String,
    pub status: String,
}

/// A plugin instance that was loaded and can be called.
pub struct Loaded<T> {
    pub name: String,
    pub file: PathBuf,
    inner: Arc<T>,
    inflight: Arc<Semaphore>,
}

/// A loaded backend.
pub type LoadedBackend = Loaded<BackendBox>;

/// A loaded metadata plugin.
pub type LoadedMetadata = Loaded<MetadataBox>;

/// A loaded IdP plugin and the authentication method it stands for.
pub struct LoadedIdp {
    pub plugin: Loaded<IdpBox>,
    pub authentication_method: String,
}

/// A loaded external-auth plugin and its `plugin_info`.
pub struct LoadedExternal {
    pub plugin: Loaded<ExternalAuthBox>,
    pub plugin_info: serde_json::Value,
    /// Since 1.3: its sub-routes and their OpenAPI fragment (read once at load).
    pub declared: crate::sub_routes::Declared,
}

impl<T> Loaded<T> {
    fn new(name: &str, file: &Path, inner: T) -> Self {
        Loaded {
            name: name.to_string(),
            file: file.to_path_buf(),
            inner: Arc::new(inner),
            inflight: Arc::new(Semaphore::new(MAX_INFLIGHT_CALLS_PER_PLUGIN)),
        }
    }
}

/// Why a plugin call produced no result.
#[derive(Debug)]
pub enum CallError {
    /// The plugin returned an error (or panicked: kind `PANICKED`).
    Plugin(PluginError),
    /// The call did not finish within the configured timeout.
    Timeout(Duration),
    /// Too many calls already running in this plugin (it is probably hung).
    Busy,
    /// The worker thread died.
    Crashed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Plugin(e) => f.write_str(&explain(e)),
            CallError::Timeout(d) => write!(
                f,
                "timed out after {:.3}s: give the plugin's own network and database calls \
                 shorter time-outs than plugin_call_timeout",
                d.as_secs_f64()
            ),
            CallError::Busy => write!(
                f,
                "too many calls in progress ({MAX_INFLIGHT_CALLS_PER_PLUGIN}): the plugin \
                 looks hung; restart the server and fix the call that never returns"
            ),
            CallError::Crashed(m) => write!(f, "the thread running the call died: {m}"),
        }
    }
}

impl<P: Send + Sync + 'static> Loaded<P> {
    /// Runs `f` against the plugin on the blocking pool, bounded by `timeout`.
    pub async fn call<T, F>(&self, timeout: Duration, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&P) -> RResult<T, PluginError> + Send + 'static,
    {
        use crate::telemetry::metrics::{self, PluginFailure};
        let Ok(permit) = self.inflight.clone().try_acquire_owned() else {
            metrics::plugin_failure(&self.name, PluginFailure::Busy);
            return Err(CallError::Busy);
        };
        let plugin = self.inner.clone();
        // Cancelled when this future ends: answered, timed out, or dropped because the client
        // went away. Host services the plugin calls back into see it and skip work nobody
        // waits for (a queued password hash).
        let call = tokio_util::sync::CancellationToken::new();
        let _abandon_on_exit = call.clone().drop_guard();
        // The call's span, entered on the blocking thread too: the plugin's log records (and
        // the host services it calls back into) carry the request id.
        let span =
            tracing::info_span!(target: "wazo_auth::plugins", "plugin_call", plugin = %self.name);
        let in_call = span.clone();
        let started = std::time::Instant::now();
        let handle = tokio::task::spawn_blocking(move || {
            let _entered = in_call.enter();
            let _permit = permit;
            let _scope = CallScope::enter(call);
            f(&plugin)
        });
        let outcome = {
            use tracing::Instrument;
            tokio::time::timeout(timeout, handle).instrument(span).await
        };
        metrics::plugin_call(&self.name, started.elapsed());
        match outcome {
            Err(_) => {
                metrics::plugin_failure(&self.name, PluginFailure::Timeout);
                Err(CallError::Timeout(timeout))
            }
            Ok(Err(join)) => {
                metrics::plugin_failure(&self.name, PluginFailure::Panic);
                Err(CallError::Crashed(join.to_string()))
            }
            Ok(Ok(RResult::ROk(v))) => Ok(v),
            Ok(Ok(RResult::RErr(e))) => {
                if e.kind == ErrorKind::PANICKED {
                    metrics::plugin_failure(&self.name, PluginFailure::Panic);
                }
                Err(CallError::Plugin(e))
            }
        }
    }
}

/// All plugins found at startup.
#[derive(Default)]
pub struct PluginRegistry {
    backends: BTreeMap<String, Arc<LoadedBackend>>,
    externals: BTreeMap<String, Arc<LoadedExternal>>,
    metadata: BTreeMap<String, Arc<LoadedMetadata>>,
    idps: BTreeMap<String, Arc<LoadedIdp>>,
    /// Enabled backends that were declared by a valid library (loaded or failed in `load`).
    enabled_backend_names: BTreeSet<String>,
    /// Enabled backends declared by a valid library whose `load` failed, with the reason.
    failed_backends: BTreeMap<String, String>,
    /// Files refused as a whole (not opened, or not usable), with the reason.
    refused_files: Vec<(PathBuf, String)>,
    pub report: Vec<PluginReport>,
}

/// Settings of the loader.
pub struct LoaderOptions<'a> {
    pub plugin_dir: PathBuf,
    pub allow_insecure: bool,
    pub enabled_backends: &'a BTreeMap<String, bool>,
    pub enabled_externals: &'a BTreeMap<String, bool>,
    pub plugin_config: &'a BTreeMap<String, serde_json::Value>,
    /// Since plugin-api 1.3: `enabled_metadata_plugins` and the enabled `idp_plugins`.
    pub enabled_metadata: &'a BTreeMap<String, bool>,
    pub enabled_idps: &'a BTreeMap<String, bool>,
    pub load_timeout: Duration,
    /// Backs the user services offered to plugins.
    pub context: Option<Arc<HostContext>>,
}

impl PluginRegistry {
    pub fn backend(&self, name: &str) -> Option<Arc<LoadedBackend>> {
        self.backends.get(name).cloned()
    }

    pub fn loaded_backends(&self) -> impl Iterator<Item = &Arc<LoadedBackend>> {
        self.backends.values()
    }

    /// The loaded external-auth plugin of `auth_type`.
    pub fn external(&self, auth_type: &str) -> Option<Arc<LoadedExternal>> {
        self.externals.get(auth_type).cloned()
    }

    /// The loaded metadata plugin `name`.
    pub fn metadata_plugin(&self, name: &str) -> Option<Arc<LoadedMetadata>> {
        self.metadata.get(name).cloned()
    }

    /// The loaded IdP plugin `name`.
    pub fn idp(&self, name: &str) -> Option<Arc<LoadedIdp>> {
        self.idps.get(name).cloned()
    }

    /// The OpenAPI `paths` documenting the sub-routes of the loaded external-auth plugins.
    pub fn sub_route_paths(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        for e in self.externals.values() {
            out.extend(e.declared.api_spec.clone());
        }
        out
    }

    /// Auth types of the loaded external-auth plugins.
    pub fn external_types(&self) -> Vec<String> {
        self.externals.keys().cloned().collect()
    }

    /// Names reported by `GET /0.1/backends`: every enabled backend declared by a valid
    /// library, including one whose `load` failed (as the original does).
    pub fn enabled_backend_names(&self) -> Vec<String> {
        self.enabled_backend_names.iter().cloned().collect()
    }

    /// Why the enabled backend `name` is not loaded, when a valid library declares it but its
    /// `load` failed (a login naming it is refused, never handed to another backend).
    pub fn failed_backend(&self, name: &str) -> Option<&str> {
        self.failed_backends.get(name).map(String::as_str)
    }

    /// The enabled backends whose `load` failed, with the reasons (`HEAD /0.1/status` answers
    /// 503 while there is one).
    pub fn failed_backends(&self) -> impl Iterator<Item = (&str, &str)> {
        self.failed_backends
            .iter()
            .map(|(n, r)| (n.as_str(), r.as_str()))
    }

    /// The startup table, one line per plugin.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "name".to_string(),
            "group".to_string(),
            "file".to_string(),
            "plugin-api".to_string(),
            "status".to_string(),
        ]];
        for r in &self.report {
            rows.push([
                r.name.clone(),
                r.group.to_string(),
                r.file.display().to_string(),
                r.api_version.clone(),
                r.status.clone(),
            ]);
        }
        let mut widths = [0usize; 5];
        for row in &rows {
            for (i, c) in row.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for row in &rows {
            out.push('\n');
            for (i, c) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    out.push_str(c);
                } else {
                    out.push_str(&format!("{:<w$}  ", c, w = widths[i]));
                }
            }
        }
        out.push_str(&self.table_footer());
        out
    }

    /// The lines under the startup table: what is not available, and what it means.
    fn table_footer(&self) -> String {
        let mut out = String::new();
        if !self.failed_backends.is_empty() {
            let names: Vec<&str> = self.failed_backends.keys().map(String::as_str).collect();
            out.push_str(&format!(
                "\nenabled backends that failed to load: {}; logins naming them answer 401 and \
                 HEAD /0.1/status answers 503 until they load (see their rows above)",
                names.join(", ")
            ));
        }
        if self.backends.is_empty() {
            out.push_str(
                "\nno backend is loaded: every login answers 401 and HEAD /0.1/status answers \
                 503; install a backend's file and enable it in enabled_backend_plugins",
            );
        }
        out
    }

    /// Discovers and loads plugins. Never fails: problems are logged and reported.
    pub fn load(opts: &LoaderOptions<'_>) -> PluginRegistry {
        let mut reg = PluginRegistry::default();
        let dir = &opts.plugin_dir;
        if let Err(reason) = check_permissions(dir, true, opts.allow_insecure) {
            log::error!(
                "plugin directory {}: {reason}; no plugin loaded{}",
                dir.display(),
                missing_because_of_dir(opts)
            );
            return reg;
        }
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "so"))
                .collect(),
            Err(e) => {
                log::error!(
                    "plugin directory {}: cannot be read: {e}; no plugin loaded{}",
                    dir.display(),
                    missing_because_of_dir(opts)
                );
                return reg;
            }
        };
        files.sort();
        let mut owners: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in files {
            reg.load_file(&file, opts, &mut owners);
        }
        for (name, enabled) in opts.enabled_backends {
            if *enabled && !owners.contains_key(name) {
                reg.warn_undeclared(GROUP_BACKENDS, name, dir);
            }
        }
        for (name, enabled) in opts.enabled_externals {
            if *enabled && !owners.contains_key(&format!("{GROUP_EXTERNAL_AUTH}:{name}")) {
                reg.warn_undeclared(GROUP_EXTERNAL_AUTH, name, dir);
            }
        }
        reg
    }

    /// The warning for an enabled backend or external auth that no accepted file declares:
    /// names the refused files that may declare it (what they declare cannot be known without
    /// running them).
    fn warn_undeclared(&self, group: &str, name: &str, dir: &Path) {
        let (kind, key) = if group == GROUP_EXTERNAL_AUTH {
            ("external auth", "enabled_external_auth_plugins")
        } else {
            ("backend", "enabled_backend_plugins")
        };
        let fix = format!("or set {key}.{name}: false");
        let built_in = built_in_file(group, name);
        let refused: Vec<String> = self
            .refused_files
            .iter()
            .filter(|(f, _)| {
                built_in.is_none_or(|b| f.file_name().is_some_and(|n| n == std::ffi::OsStr::new(b)))
            })
            .map(|(f, reason)| format!("{} ({reason})", f.display()))
            .collect();
        if refused.is_empty() {
            log::warn!(
                "{kind} {name:?} is enabled but no plugin file in {} declares it: install the \
                 file that declares it {fix}",
                dir.display()
            );
        } else if built_in.is_some() {
            log::warn!(
                "{kind} {name:?} is enabled but missing: it is declared by a refused file: {}; \
                 fix that file and restart {fix}",
                refused.join("; ")
            );
        } else {
            log::warn!(
                "{kind} {name:?} is enabled but no accepted plugin file in {} declares it; it \
                 may be declared by a refused file: {}; fix that file and restart {fix}",
                dir.display(),
                refused.join("; ")
            );
        }
    }

    fn refuse_file(&mut self, file: &Path, api_version: &str, reason: String) {
        log::error!("plugin file {}: refused: {reason}", file.display());
        self.refused_files
            .push((file.to_path_buf(), reason.clone()));
        self.report.push(PluginReport {
            name: "-".into(),
            group: "-",
            file: file.to_path_buf(),
            api_version: api_version.to_string(),
            status: format!("refused: {reason}"),
        });
    }

    fn load_externals(
        &mut self,
        file: &Path,
        module: &PluginModuleRef,
        api_version: &str,
        opts: &LoaderOptions<'_>,
        owners: &mut BTreeMap<String, PathBuf>,
    ) {
        // Libraries built before plugin-api 1.2 have no external-auth group.
        let Some(declare) = module.external_auths() else {
            return;
        };
        let decls = match declare() {
            RResult::ROk(d) => d,
            RResult::RErr(e) => {
                return self.refuse_file(
                    file,
                    api_version,
                    format!(
                        "declaring its external-auth plugins failed: {}",
                        explain(&e)
                    ),
                )
            }
        };
        for decl in decls {
            let name = decl.auth_type.to_string();
            let key = format!("{GROUP_EXTERNAL_AUTH}:{name}");
            let mut row = PluginReport {
                name: name.clone(),
                group: GROUP_EXTERNAL_AUTH,
                file: file.to_path_buf(),
                api_version: api_version.to_string(),
                status: String::new(),
            };
            if let Some(reason) = reserved_name(GROUP_EXTERNAL_AUTH, &name, file) {
                row.status = format!("refused: {reason}");
                log::error!(
                    "plugin file {}: refused external auth {name:?}: {reason}",
                    file.display()
                );
                self.report.push(row);
                continue;
            }
            if let Some(first) = owners.get(&key) {
                row.status = format!("refused: name already declared by {}", first.display());
                log::error!(
                    "plugin file {}: refused external auth {name:?}: name already declared by {} \
                     (the first file in name order keeps it); rename it in this file's \
                     export_plugins!",
                    file.display(),
                    first.display()
                );
                self.report.push(row);
                continue;
            }
            owners.insert(key, file.to_path_buf());
            if !opts.enabled_externals.get(&name).copied().unwrap_or(false) {
                row.status = "disabled".into();
                self.report.push(row);
                continue;
            }
            let plugin_info =
                match serde_json::from_str::<serde_json::Value>(decl.plugin_info_json.as_str()) {
                    Ok(v @ serde_json::Value::Object(_)) => v,
                    _ => serde_json::json!({}),
                };
            let config = opts
                .plugin_config
                .get(&name)
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            let config_json: Arc<str> = Arc::from(config.to_string());
            let host: HostServicesBox = HostServicesFfi_TO::from_ptr(
                RArc::new(HostServicesImpl {
                    plugin: Arc::from(name.as_str()),
                    config_json: config_json.clone(),
                    context: opts.context.clone(),
                    auth_type: Some(Arc::from(name.as_str())),
                }),
                TD_Opaque,
            );
            let load = decl.load;
            let auth_type = name.clone();
            match run_with_timeout(opts.load_timeout, move || {
                load(host, RStr::from_str(&config_json)).map(|plugin| {
                    let declared = crate::sub_routes::declared(&auth_type, &plugin);
                    (plugin, declared)
                })
            }) {
                Ok(RResult::ROk((plugin, declared))) => {
                    row.status = "loaded".into();
                    self.externals.insert(
                        name.clone(),
                        Arc::new(LoadedExternal {
                            plugin: Loaded::new(&name, file, plugin),
                            plugin_info,
                            declared,
                        }),
                    );
                }
                Ok(RResult::RErr(e)) => {
                    let why = explain_load(&e, &name);
                    row.status = format!("refused: load failed: {why}");
                    log::error!(
                        "plugin file {}: external auth {name:?} failed to load: {why}",
                        file.display()
                    );
                }
                Err(reason) => {
                    row.status = format!("refused: load {reason}");
                    log::error!(
                        "plugin file {}: external auth {name:?} load {reason}: \
                         {LOAD_TIMEOUT_ADVICE}",
                        file.display()
                    );
                }
            }
            self.report.push(row);
        }
    }

    fn load_file(
        &mut self,
        file: &Path,
        opts: &LoaderOptions<'_>,
        owners: &mut BTreeMap<String, PathBuf>,
    ) {
        if let Err(reason) = check_permissions(file, false, opts.allow_insecure) {
            return self.refuse_file(file, "?", reason);
        }
        let header = match lib_header_from_path(file) {
            Ok(h) => h,
            Err(e) => return self.refuse_file(file, "?", summarize_library_error(&e)),
        };
        let api_version = header.version_strings().version.to_string();
        if let Err(reason) = check_abi(header, file) {
            return self.refuse_file(file, &api_version, reason);
        }
        // SAFETY: `check_abi` verified the root module's layout against the layout of the minor
        // version the plugin declares, of which the current ABI is a checked extension.
        let module =
            match unsafe { header.init_root_module_with_unchecked_layout::<PluginModuleRef>() } {
                Ok(m) => m,
                Err(e) => {
                    log::debug!("plugin file {}: full loader error: {e}", file.display());
                    return self.refuse_file(file, &api_version, summarize_library_error(&e));
                }
            };
        // 1.3+: a library built with panic = "abort" cannot have its panics caught at the
        // boundary; one would kill the server. Older libraries do not say (not checked).
        if module.panic_unwind() == Some(false) {
            return self.refuse_file(
                file,
                &api_version,
                "was built with panic = \"abort\": one panic in it would kill the server; \
                 rebuild it with panic = \"unwind\" (the default of Cargo's profiles)"
                    .into(),
            );
        }
        let decls = match (module.backends())() {
            RResult::ROk(d) => d,
            RResult::RErr(e) => {
                return self.refuse_file(
                    file,
                    &api_version,
                    format!("declaring its plugins failed: {}", explain(&e)),
                )
            }
        };
        for decl in decls {
            let name = decl.name.to_string();
            let mut row = PluginReport {
                name: name.clone(),
                group: GROUP_BACKENDS,
                file: file.to_path_buf(),
                api_version: api_version.clone(),
                status: String::new(),
            };
            if let Some(reason) = reserved_name(GROUP_BACKENDS, &name, file) {
                row.status = format!("refused: {reason}");
                log::error!(
                    "plugin file {}: refused backend {name:?}: {reason}",
                    file.display()
                );
                self.report.push(row);
                continue;
            }
            if let Some(first) = owners.get(&name) {
                row.status = format!("refused: name already declared by {}", first.display());
                log::error!(
                    "plugin file {}: refused backend {name:?}: name already declared by {} (the \
                     first file in name order keeps it); rename it in this file's \
                     export_plugins!",
                    file.display(),
                    first.display()
                );
                self.report.push(row);
                continue;
            }
            owners.insert(name.clone(), file.to_path_buf());
            if !opts.enabled_backends.get(&name).copied().unwrap_or(false) {
                row.status = "disabled".into();
                self.report.push(row);
                continue;
            }
            self.enabled_backend_names.insert(name.clone());
            let config = opts
                .plugin_config
                .get(&name)
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            let config_json: Arc<str> = Arc::from(config.to_string());
            let host: HostServicesBox = HostServicesFfi_TO::from_ptr(
                RArc::new(HostServicesImpl {
                    plugin: Arc::from(name.as_str()),
                    config_json: config_json.clone(),
                    context: opts.context.clone(),
                    auth_type: None,
                }),
                TD_Opaque,
            );
            let load = decl.load;
            match run_with_timeout(opts.load_timeout, move || {
                load(host, RStr::from_str(&config_json))
            }) {
                Ok(RResult::ROk(backend)) => {
                    row.status = "loaded".into();
                    self.backends
                        .insert(name.clone(), Arc::new(Loaded::new(&name, file, backend)));
                }
                Ok(RResult::RErr(e)) => {
                    let why = explain_load(&e, &name);
                    row.status = format!("refused: load failed: {why}");
                    log::error!(
                        "plugin file {}: backend {name:?} failed to load: {why}",
                        file.display()
                    );
                    self.failed_backends
                        .insert(name.clone(), format!("load failed: {why}"));
                }
                Err(reason) => {
                    row.status = format!("refused: load {reason}");
                    let why = format!("load {reason}: {LOAD_TIMEOUT_ADVICE}");
                    log::error!("plugin file {}: backend {name:?} {why}", file.display());
                    self.failed_backends.insert(name.clone(), why);
                }
            }
            self.report.push(row);
        }
        self.load_externals(file, &module, &api_version, opts, owners);
        self.load_metadata_plugins(file, &module, &api_version, opts, owners);
        self.load_idps(file, &module, &api_version, opts, owners);
    }

    /// Since 1.3: the library's metadata plugins (group `wazo_auth.metadata`).
    fn load_metadata_plugins(
        &mut self,
        file: &Path,
        module: &PluginModuleRef,
        api_version: &str,
        opts: &LoaderOptions<'_>,
        owners: &mut BTreeMap<String, PathBuf>,
    ) {
        let Some(declare) = module.metadata_plugins() else {
            return;
        };
        let decls = match declare() {
            RResult::ROk(d) => d,
            RResult::RErr(e) => {
                return self.refuse_file(
                    file,
                    api_version,
                    format!("declaring its metadata plugins failed: {e}"),
                )
            }
        };
        for decl in decls {
            let name = decl.name.to_string();
            let load = decl.load;
            let enabled = opts.enabled_metadata.get(&name).copied().unwrap_or(false);
            let slot = Slot {
                file,
                api_version,
                group: GROUP_METADATA,
                name: &name,
                builtin: BUILTIN_METADATA.contains(&name.as_str()),
                enabled,
            };
            if let Some(plugin) =
                self.load_slot(slot, opts, owners, move |host, config| load(host, config))
            {
                self.metadata
                    .insert(name.clone(), Arc::new(Loaded::new(&name, file, plugin)));
            }
        }
    }

    /// Since 1.3: the library's IdP plugins (group `wazo_auth.idp`). Each one's authentication
    /// method is read once, right after its `load`, under the same time-out.
    fn load_idps(
        &mut self,
        file: &Path,
        module: &PluginModuleRef,
        api_version: &str,
        opts: &LoaderOptions<'_>,
        owners: &mut BTreeMap<String, PathBuf>,
    ) {
        let Some(declare) = module.idps() else {
            return;
        };
        let decls = match declare() {
            RResult::ROk(d) => d,
            RResult::RErr(e) => {
                return self.refuse_file(
                    file,
                    api_version,
                    format!("declaring its IdP plugins failed: {e}"),
                )
            }
        };
        for decl in decls {
            let name = decl.name.to_string();
            let load = decl.load;
            let enabled = opts.enabled_idps.get(&name).copied().unwrap_or(false);
            let slot = Slot {
                file,
                api_version,
                group: GROUP_IDP,
                name: &name,
                builtin: BUILTIN_IDPS.contains(&name.as_str()),
                enabled,
            };
            let loaded = self.load_slot(slot, opts, owners, move |host, config| {
                let idp = match load(host, config) {
                    RResult::ROk(idp) => idp,
                    RResult::RErr(e) => return RResult::RErr(e),
                };
                match idp.authentication_method() {
                    RResult::ROk(m) if !m.trim().is_empty() => RResult::ROk((idp, m.into_string())),
                    RResult::ROk(_) => RResult::RErr(PluginError::config(
                        "authentication_method() returned an empty name: return the method \
                         this IdP stands for (e.g. \"ldap\")",
                    )),
                    RResult::RErr(e) => RResult::RErr(e),
                }
            });
            if let Some((plugin, method)) = loaded {
                self.idps.insert(
                    name.clone(),
                    Arc::new(LoadedIdp {
                        plugin: Loaded::new(&name, file, plugin),
                        authentication_method: method,
                    }),
                );
            }
        }
    }

    /// Loads one declared plugin of a 1.3 group: refused when its name is built in or already
    /// declared, skipped when disabled, else `load`ed under the load time-out. One report row
    /// either way; `None` unless it loaded.
    fn load_slot<T: Send + 'static>(
        &mut self,
        slot: Slot<'_>,
        opts: &LoaderOptions<'_>,
        owners: &mut BTreeMap<String, PathBuf>,
        load: impl FnOnce(HostServicesBox, RStr<'_>) -> RResult<T, PluginError> + Send + 'static,
    ) -> Option<T> {
        let Slot {
            file,
            api_version,
            group,
            name,
            builtin,
            enabled,
        } = slot;
        let mut row = PluginReport {
            name: name.to_string(),
            group,
            file: file.to_path_buf(),
            api_version: api_version.to_string(),
            status: String::new(),
        };
        let key = format!("{group}:{name}");
        let refused = if builtin {
            Some("the name is built into the server; rename the plugin".to_string())
        } else if let Some(reason) = reserved_name(group, name, file) {
            Some(reason)
        } else {
            owners
                .get(&key)
                .map(|first| format!("name already declared by {}", first.display()))
        };
        if let Some(reason) = refused {
            log::error!(
                "plugin file {}: refused {group} {name:?}: {reason}",
                file.display()
            );
            row.status = format!("refused: {reason}");
            self.report.push(row);
            return None;
        }
        owners.insert(key, file.to_path_buf());
        if !enabled {
            row.status = "disabled".into();
            self.report.push(row);
            return None;
        }
        let config = opts
            .plugin_config
            .get(name)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        let config_json: Arc<str> = Arc::from(config.to_string());
        let host: HostServicesBox = HostServicesFfi_TO::from_ptr(
            RArc::new(HostServicesImpl {
                plugin: Arc::from(name),
                config_json: config_json.clone(),
                context: opts.context.clone(),
                auth_type: None,
            }),
            TD_Opaque,
        );
        let outcome = run_with_timeout(opts.load_timeout, move || {
            load(host, RStr::from_str(&config_json))
        });
        let loaded = match outcome {
            Ok(RResult::ROk(plugin)) => {
                row.status = "loaded".into();
                Some(plugin)
            }
            Ok(RResult::RErr(e)) => {
                row.status = format!("refused: load failed: {e}");
                log::error!(
                    "plugin file {}: {group} {name:?} failed to load: {e}",
                    file.display()
                );
                None
            }
            Err(reason) => {
                row.status = format!("refused: load {reason}");
                log::error!(
                    "plugin file {}: {group} {name:?} load {reason}",
                    file.display()
                );
                None
            }
        };
        self.report.push(row);
        loaded
    }
}

/// Where a declared plugin of a 1.3 group comes from, for [`PluginRegistry::load_slot`].
struct Slot<'a> {
    file: &'a Path,
    api_version: &'a str,
    group: &'static str,
    name: &'a str,
    /// The name is one of the host's built-in plugins (refused).
    builtin: bool,
    enabled: bool,
}

/// What to do when `load` times out.
const LOAD_TIMEOUT_ADVICE: &str = "load gets twice plugin_call_timeout: do slow work lazily, or \
     give the plugin's own connections shorter time-outs";

/// Built-in plugins, shipped with the server: `(group, name, file name)`. Only that file may
/// declare that name in that group; any other file declaring it is refused, wherever it sorts.
const BUILT_IN: &[(&str, &str, &str)] = &[
    (GROUP_BACKENDS, "wazo_user", "libwazo_auth_wazo_user.so"),
    (GROUP_EXTERNAL_AUTH, "mobile", "libwazo_auth_mobile.so"),
    (GROUP_EXTERNAL_AUTH, "google", "libwazo_auth_google.so"),
    (
        GROUP_EXTERNAL_AUTH,
        "microsoft",
        "libwazo_auth_microsoft.so",
    ),
    (GROUP_BACKENDS, "ldap_user", LDAP_FILE),
    (GROUP_IDP, "ldap", LDAP_FILE),
];

/// The built-in LDAP library: the `ldap_user` backend and the `ldap` IdP, the only plugins
/// given a tenant's LDAP bind password (`HostServicesFfi::ldap_config`).
const LDAP_FILE: &str = "libwazo_auth_ldap_user.so";
const LDAP_PLUGINS: &[&str] = &["ldap_user", "ldap"];

/// The file name of the built-in plugin `name` of `group`.
fn built_in_file(group: &str, name: &str) -> Option<&'static str> {
    BUILT_IN
        .iter()
        .find(|(g, n, _)| *g == group && *n == name)
        .map(|(_, _, f)| *f)
}

/// Why `file` may not declare `name` in `group`: the name is built in and `file` is not the
/// built-in file. Names both files.
fn reserved_name(group: &str, name: &str, file: &Path) -> Option<String> {
    let built_in = built_in_file(group, name)?;
    if file.file_name() == Some(std::ffi::OsStr::new(built_in)) {
        return None;
    }
    let dir = file.parent().unwrap_or(Path::new(""));
    let path = dir.join(built_in);
    let installed = if path.exists() { "" } else { ", not installed" };
    Some(format!(
        "{name:?} is a built-in name, reserved for {}{installed}; a third-party file can \
         never take it: rename the plugin in this file's export_plugins!",
        path.display()
    ))
}

/// The end of the "no plugin loaded" line: the enabled plugins that are therefore missing.
fn missing_because_of_dir(opts: &LoaderOptions<'_>) -> String {
    let enabled = |m: &BTreeMap<String, bool>| -> Vec<String> {
        m.iter()
            .filter(|(_, on)| **on)
            .map(|(n, _)| n.clone())
            .collect()
    };
    let (backends, externals) = (
        enabled(opts.enabled_backends),
        enabled(opts.enabled_externals),
    );
    let mut out = String::new();
    if !backends.is_empty() {
        out.push_str(&format!(
            ", so the enabled backends {} are missing",
            backends.join(", ")
        ));
    }
    if !externals.is_empty() {
        out.push_str(&format!(
            "{} the enabled external auths {} are missing",
            if backends.is_empty() { ", so" } else { " and" },
            externals.join(", ")
        ));
    }
    out
}

/// A plugin error in words that say what to do: `<kind>: <message>`, the boundary's
/// "plugin panicked: " prefix dropped, followed by advice for the kinds that call for one.
pub fn explain(e: &PluginError) -> String {
    let message = e.message.as_str();
    let advice = match e.kind {
        ErrorKind::PANICKED => {
            let message = message.strip_prefix("plugin panicked: ").unwrap_or(message);
            return format!(
                "panicked: {message} (the host caught the panic and kept serving: fix the \
                 plugin so that it returns an error instead)"
            );
        }
        ErrorKind::CONFIG => "fix the plugin's section of plugin_config",
        ErrorKind::UNAVAILABLE => "check the service the plugin depends on",
        ErrorKind::UNSUPPORTED => "the plugin needs a newer wazo-auth",
        _ => "",
    };
    if advice.is_empty() {
        format!("{}: {message}", e.kind.name())
    } else {
        format!("{}: {message} ({advice})", e.kind.name())
    }
}

/// [`explain`] for an error of `load`, naming the configuration section of plugin `name`.
fn explain_load(e: &PluginError, name: &str) -> String {
    if e.kind == ErrorKind::CONFIG {
        format!(
            "config: {} (fix plugin_config.{name} and restart)",
            e.message.as_str()
        )
    } else {
        explain(e)
    }
}

/// Logs `message` at warning level at most once a minute per `key`, saying how many were
/// left out since the last one. For warnings a client can trigger at every request.
pub fn warn_rate_limited(key: &str, message: std::fmt::Arguments<'_>) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<HashMap<String, (Instant, u64)>>> = Mutex::new(None);
    const EVERY: Duration = Duration::from_secs(60);
    let mut guard = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let seen = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    match seen.get_mut(key) {
        Some((at, left_out)) if now.duration_since(*at) < EVERY => *left_out += 1,
        Some((at, left_out)) => {
            let n = std::mem::take(left_out);
            *at = now;
            drop(guard);
            if n > 0 {
                log::warn!("{message} ({n} more like this since the last one)");
            } else {
                log::warn!("{message}");
            }
        }
        None => {
            seen.insert(key.to_string(), (now, 0));
            drop(guard);
            log::warn!("{message}");
        }
    }
}

/// Checks the plugin's ABI against the frozen layout of the plugin-api minor version it declares
/// (`abi_stable` only accepts libraries at least as new as the loader's layout, so a 1.0 plugin
/// must be checked against the 1.0 layout, not the current one).
fn check_abi(header: &abi_stable::library::LibHeader, file: &Path) -> Result<(), String> {
    use wazo_auth_plugin_api::abi_history;
    let declared = header.version_strings();
    let version = abi_stable::sabi_types::VersionNumber::new(declared).map_err(|_| {
        "has an unreadable plugin-api version: rebuild it against wazo-auth-plugin-api 1.x"
            .to_string()
    })?;
    if u64::from(version.major) != abi_history::MAJOR {
        return Err(format!(
            "built against wazo-auth-plugin-api {}, this server accepts {}.x: rebuild it \
             against wazo-auth-plugin-api {}.x",
            declared.version,
            abi_history::MAJOR,
            abi_history::MAJOR
        ));
    }
    let Some(expected) = abi_history::root_layout_for_minor(u64::from(version.minor)) else {
        return Err(format!(
            "built against wazo-auth-plugin-api {}, a version this server does not know: \
             rebuild it against a released 1.x version",
            declared.version
        ));
    };
    let Some(actual) = header.layout() else {
        return Err(
            "was built without type-layout information: rebuild it with export_plugins!".into(),
        );
    };
    abi_history::check_layout(expected, actual).map_err(|e| {
        log::debug!("plugin file {}: full layout report: {e}", file.display());
        format!(
            "built against an incompatible wazo-auth-plugin-api (declares {}, but its types \
                 do not match that version's; rebuild it; details at debug level)",
            declared.version
        )
    })
}

/// Runs a blocking closure on its own thread and gives up waiting after `timeout` (the thread is
/// then left behind: a plugin's code cannot be interrupted).
fn run_with_timeout<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("plugin-load".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("could not start: {e}"))?;
    rx.recv_timeout(timeout).map_err(|e| match e {
        std::sync::mpsc::RecvTimeoutError::Timeout => {
            format!("timed out after {:.3}s", timeout.as_secs_f64())
        }
        std::sync::mpsc::RecvTimeoutError::Disconnected => "crashed".to_string(),
    })
}

/// Loading a `.so` runs its code: refuse files and directories that someone other than their
/// owner can write, unless explicitly allowed.
fn check_permissions(path: &Path, is_dir: bool, allow_insecure: bool) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if is_dir && !meta.is_dir() {
        return Err("is not a directory".into());
    }
    if !is_dir && !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 && !allow_insecure {
        return Err(format!(
            "is writable by users other than its owner (mode {:o}, owner uid {}); fix the \
             permissions or set allow_insecure_plugin_dir: true",
            mode & 0o7777,
            meta.uid()
        ));
    }
    Ok(())
}

/// One line instead of abi_stable's multi-hundred-line reports.
fn summarize_library_error(e: &LibraryError) -> String {
    match e {
        LibraryError::OpenError { err, .. } => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("").to_string();
            format!(
                "cannot be opened as a shared library: {first} (is it built for this machine, \
                 with its dependencies installed?)"
            )
        }
        LibraryError::GetSymbolError { .. } => {
            "not a wazo-auth plugin (it exports no wazo-auth root module): remove it from the \
             plugin directory, or give it an export_plugins! line"
                .into()
        }
        LibraryError::ParseVersionError(_) => {
            "has an unreadable plugin-api version: rebuild it against wazo-auth-plugin-api 1.x"
                .into()
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against wazo-auth-plugin-api {actual_version}, this server accepts {}.x: \
             rebuild it against that version",
            expected_version.major
        ),
        LibraryError::AbiInstability(_) => {
            "built against an incompatible wazo-auth-plugin-api (its types do not match this \
             server's; rebuild it against a compatible version; details at debug level)"
                .into()
        }
        LibraryError::InvalidAbiHeader(_) => {
            "built with an incompatible abi_stable version: rebuild it against \
             wazo-auth-plugin-api 1.x, which brings the right one"
                .into()
        }
        LibraryError::InvalidCAbi { .. } => {
            "has an invalid C ABI header: rebuild it against wazo-auth-plugin-api 1.x".into()
        }
        LibraryError::RootModule { err, .. } => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("").to_string();
            format!("its root module failed to initialise: {first} (fix the library's static initialisation)")
        }
        LibraryError::Many(errs) => errs
            .iter()
            .map(summarize_library_error)
            .collect::<Vec<_>>()
            .join("; "),
    }
}
