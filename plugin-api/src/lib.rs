//! # wazo-auth plugin API
//!
//! The one crate a third-party plugin depends on. A plugin is a `cdylib` that implements a plain
//! Rust trait ([`Backend`]) and exports it with one macro line ([`export_plugins!`]):
//!
//! ```ignore
//! use wazo_auth_plugin_api::{export_plugins, Args, Backend, Host, PluginError};
//!
//! struct Static;
//! impl Backend for Static {
//!     fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> { Ok(Static) }
//!     fn verify_password(&self, login: &str, password: &str, _args: &mut Args) -> Result<bool, PluginError> {
//!         Ok(login == "alice" && password == "secret")
//!     }
//! }
//! export_plugins! { backends: ["static_users" => Static] }
//! ```
//!
//! Build the plugin with `crate-type = ["cdylib"]` and `panic = "unwind"` (the default for
//! the dev and release profiles; never set `panic = "abort"`): every call is wrapped in
//! `catch_unwind` and a panic becomes a [`PluginError`] of kind [`ErrorKind::PANICKED`]. With
//! `panic = "abort"` a panic would kill the whole server.
//!
//! The binary interface itself lives in [`ffi`]; see its documentation for the compatibility rules.

pub mod ffi;
mod logging;

#[doc(hidden)]
pub mod abi_history;

#[doc(hidden)]
pub mod __private;

pub use abi_stable;
pub use ffi::{ErrorKind, PluginError};
pub use log;
pub use serde;
pub use serde_json;

mod helpers;
pub use helpers::{ArgsExt, Metadata};

use abi_stable::std_types::RString;
use ffi::HostServicesBox;
#[allow(unused_imports)]
use ffi::HostServicesFfi as _;

/// Arguments of one login, as a JSON object: `login`, `mobile`, `user_agent`, `remote_addr`,
/// body fields such as `backend`, `tenant_id`, `domain_name`, and `acl` (default-policy ACL) for
/// `get_acl`. A backend may add values in `verify_password`; they are visible to later calls of
/// the same login.
pub type Args = serde_json::Map<String, serde_json::Value>;

/// Convenience constructors for [`PluginError`].
impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: RString::from(message.into()),
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FAILED, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CONFIG, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UNAVAILABLE, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CONFLICT, message)
    }
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_INPUT, message)
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for PluginError {}

/// The host services handed to a plugin at load. Cheap to clone; keep it if you need it later.
#[derive(Clone)]
pub struct Host {
    inner: HostServicesBox,
}

impl Host {
    #[doc(hidden)]
    pub fn from_ffi(inner: HostServicesBox) -> Self {
        Host { inner }
    }

    /// The name this plugin was enabled under.
    pub fn plugin_name(&self) -> String {
        self.inner.plugin_name().into()
    }

    /// The plugin's configuration section (a JSON object, `{}` when absent).
    pub fn config(&self) -> serde_json::Value {
        serde_json::from_str(self.inner.config_json().as_str())
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
    }

    /// Writes a record into the host log directly. Plugins normally just use the `log` macros,
    /// which the export macro bridges here.
    pub fn log(&self, level: log::Level, message: &str) {
        self.inner.log(
            level as u8,
            self.plugin_name().as_str().into(),
            message.into(),
        );
    }

    /// Since 1.2: checks a login and password against the users of wazo-auth (see
    /// [`HostServicesFfi::authenticate_user`]). `Ok(None)` for wrong credentials.
    pub fn authenticate_user(
        &self,
        login: &str,
        password: &str,
    ) -> Result<Option<User>, PluginError> {
        let found = self
            .inner
            .authenticate_user(login.into(), password.into())
            .into_result()?;
        found
            .into_option()
            .map(|t| User::from_json(t.as_str()))
            .transpose()
    }

    /// Since 1.2: the enabled user with this login (username or confirmed e-mail).
    pub fn find_user(&self, login: &str) -> Result<Option<User>, PluginError> {
        let found = self.inner.find_user(login.into()).into_result()?;
        found
            .into_option()
            .map(|t| User::from_json(t.as_str()))
            .transpose()
    }

    /// Since 1.2: the ACL of the user's group policies, then of the user's own policies.
    pub fn user_acl(&self, user_uuid: &str) -> Result<Vec<String>, PluginError> {
        let acl = self.inner.user_acl(user_uuid.into()).into_result()?;
        Ok(acl.into_iter().map(Into::into).collect())
    }

    /// Since 1.2, external-auth plugins: this plugin's stored data for a user.
    pub fn external_get(&self, user_uuid: &str) -> Result<Option<serde_json::Value>, PluginError> {
        let found = self.inner.external_get(user_uuid.into()).into_result()?;
        found
            .into_option()
            .map(|t| {
                serde_json::from_str(t.as_str())
                    .map_err(|e| PluginError::failed(format!("host returned invalid JSON: {e}")))
            })
            .transpose()
    }

    /// Since 1.2, external-auth plugins: stores data for a user (`CONFLICT` if present).
    pub fn external_create(
        &self,
        user_uuid: &str,
        data: &serde_json::Value,
    ) -> Result<(), PluginError> {
        self.inner
            .external_create(user_uuid.into(), data.to_string().as_str().into())
            .into_result()
    }

    /// Since 1.2, external-auth plugins: replaces a user's data (`NOT_FOUND` if absent).
    pub fn external_update(
        &self,
        user_uuid: &str,
        data: &serde_json::Value,
    ) -> Result<(), PluginError> {
        self.inner
            .external_update(user_uuid.into(), data.to_string().as_str().into())
            .into_result()
    }

    /// Since 1.2, external-auth plugins: deletes a user's data (`NOT_FOUND` if absent).
    pub fn external_delete(&self, user_uuid: &str) -> Result<(), PluginError> {
        self.inner.external_delete(user_uuid.into()).into_result()
    }

    /// Since 1.2, external-auth plugins: this auth type's configuration for the user's tenant.
    pub fn external_config(
        &self,
        user_uuid: &str,
    ) -> Result<Option<serde_json::Value>, PluginError> {
        let found = self.inner.external_config(user_uuid.into()).into_result()?;
        found
            .into_option()
            .map(|t| {
                serde_json::from_str(t.as_str())
                    .map_err(|e| PluginError::failed(format!("host returned invalid JSON: {e}")))
            })
            .transpose()
    }

    /// Since 1.3, external-auth plugins: publishes `auth_user_external_auth_authorized` for the
    /// user and this plugin's auth type on the bus (through the host's outbox), e.g. when an
    /// OAuth2 flow completed. `NOT_FOUND` for an unknown user.
    pub fn publish_authorized(&self, user_uuid: &str) -> Result<(), PluginError> {
        self.inner
            .publish_authorized(user_uuid.into())
            .into_result()
    }

    /// Since 1.3, external-auth plugins: this auth type's configuration for a tenant.
    pub fn external_tenant_config(
        &self,
        tenant_uuid: &str,
    ) -> Result<Option<serde_json::Value>, PluginError> {
        let found = self
            .inner
            .external_tenant_config(tenant_uuid.into())
            .into_result()?;
        found
            .into_option()
            .map(|t| host_json(t.as_str()))
            .transpose()
    }

    /// Since 1.3: the tenant owning a domain name (compared without case), if any.
    pub fn tenant_by_domain_name(&self, domain_name: &str) -> Result<Option<Tenant>, PluginError> {
        let found = self
            .inner
            .tenant_by_domain_name(domain_name.into())
            .into_result()?;
        found
            .into_option()
            .map(|t| Tenant::from_json(t.as_str()))
            .transpose()
    }

    /// Since 1.3: the tenant whose uuid or slug is `tenant_id`, if any.
    pub fn tenant_by_id(&self, tenant_id: &str) -> Result<Option<Tenant>, PluginError> {
        let found = self.inner.tenant_by_id(tenant_id.into()).into_result()?;
        found
            .into_option()
            .map(|t| Tenant::from_json(t.as_str()))
            .transpose()
    }

    /// Since 1.3, the built-in LDAP plugins only: the tenant's LDAP configuration, its
    /// `bind_password` decrypted (never log it).
    pub fn ldap_config(&self, tenant_uuid: &str) -> Result<Option<serde_json::Value>, PluginError> {
        let found = self.inner.ldap_config(tenant_uuid.into()).into_result()?;
        found
            .into_option()
            .map(|t| host_json(t.as_str()))
            .transpose()
    }

    pub(crate) fn ffi(&self) -> &HostServicesBox {
        &self.inner
    }
}

/// A wazo-auth user, as the host services return it (since 1.2).
///
/// Fields may be added in later 1.x versions (it is `#[non_exhaustive]`): read them, never build
/// a `User` yourself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    pub uuid: String,
    pub username: Option<String>,
    pub tenant_uuid: String,
    /// `user`, `internal` or `external_api`.
    pub purpose: String,
    pub enabled: bool,
    /// `native`, `default`, or an IdP's method.
    pub authentication_method: String,
    /// The tenant's method, which applies when `authentication_method` is `default`.
    pub tenant_default_authentication_method: String,
}

impl User {
    /// The method that applies to this user (`default` resolved through the tenant).
    pub fn effective_authentication_method(&self) -> &str {
        if self.authentication_method == "default" {
            &self.tenant_default_authentication_method
        } else {
            &self.authentication_method
        }
    }

    fn from_json(text: &str) -> Result<User, PluginError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| PluginError::failed(format!("host returned an invalid user: {e}")))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        let need = |k: &str| {
            s(k).ok_or_else(|| PluginError::failed(format!("host returned a user without {k}")))
        };
        Ok(User {
            uuid: need("uuid")?,
            username: s("username"),
            tenant_uuid: need("tenant_uuid")?,
            purpose: need("purpose")?,
            enabled: v.get("enabled").and_then(|x| x.as_bool()).unwrap_or(false),
            authentication_method: need("authentication_method")?,
            tenant_default_authentication_method: s("tenant_default_authentication_method")
                .unwrap_or_else(|| "native".to_string()),
        })
    }
}

fn host_json(text: &str) -> Result<serde_json::Value, PluginError> {
    serde_json::from_str(text)
        .map_err(|e| PluginError::failed(format!("host returned invalid JSON: {e}")))
}

/// A tenant, as [`Host::tenant_by_domain_name`] returns it (since 1.3). Fields may be added in
/// later 1.x versions (`#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tenant {
    pub uuid: String,
    pub name: Option<String>,
    pub slug: String,
    pub parent_uuid: String,
    pub domain_names: Vec<String>,
}

impl Tenant {
    fn from_json(text: &str) -> Result<Tenant, PluginError> {
        let v = host_json(text)?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        let need = |k: &str| {
            s(k).ok_or_else(|| PluginError::failed(format!("host returned a tenant without {k}")))
        };
        Ok(Tenant {
            uuid: need("uuid")?,
            name: s("name"),
            slug: need("slug")?,
            parent_uuid: need("parent_uuid")?,
            domain_names: v
                .get("domain_names")
                .and_then(|x| x.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Health reported by [`Backend::status`]. Later 1.x versions may add variants
/// (`#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    Ok,
    Fail(String),
}

/// An authentication backend (entry-point group `wazo_auth.backends`), mirroring the original's
/// `BaseAuthenticationBackend`. Only `load` and `verify_password` are required: with the
/// provided methods alone, a backend logs its users in with `auth_id` = the login and an empty
/// ACL. New methods of later 1.x versions always come with a default, so existing sources keep
/// compiling.
pub trait Backend: Send + Sync + 'static {
    /// Called once at startup when the plugin is enabled, with its configuration section.
    fn load(host: &Host, config: serde_json::Value) -> Result<Self, PluginError>
    where
        Self: Sized;

    /// Checks the credentials. May insert values into `args` for later calls of this login.
    fn verify_password(
        &self,
        login: &str,
        password: &str,
        args: &mut Args,
    ) -> Result<bool, PluginError>;

    /// Token metadata, a JSON object (build it with [`Metadata`]). The host requires a string
    /// `auth_id` (the token's identity); it also reads `tenant_uuid`, `uuid`, `purpose`,
    /// `pbx_user_uuid` and `xivo_uuid` when present (see docs/plugins.md, "Metadata: what the
    /// host reads"). `xivo_uuid` is optional: the host uses its own `uuid` setting when it is
    /// absent.
    ///
    /// The default is the original's default completed with a usable identity:
    /// `{"auth_id": login, "username": login, "xivo_uuid": get_xivo_uuid(args),
    /// "pbx_user_uuid": null}`. Override it when your users have a stable id other than their
    /// login, or belong to a tenant (set `tenant_uuid`).
    fn get_metadata(&self, login: &str, args: &Args) -> Result<Args, PluginError> {
        Ok(Metadata::new(login)
            .field("username", login)
            .xivo_uuid(self.get_xivo_uuid(args))
            .pbx_user_uuid(None)
            .into_args())
    }

    /// The token's ACL. `args["acl"]` holds the default user policy's ACL. Default: empty.
    fn get_acl(&self, _login: &str, _args: &Args) -> Result<Vec<String>, PluginError> {
        Ok(Vec::new())
    }

    /// Metadata stored with a refresh token (offline logins only). Default: empty.
    fn get_persistent_metadata(&self, _login: &str, _args: &Args) -> Result<Args, PluginError> {
        Ok(Args::new())
    }

    /// The installation uuid put into the default metadata. Default: the host's `uuid` setting
    /// (`args["xivo_uuid"]`, see [`ArgsExt::xivo_uuid`]), else the `XIVO_UUID` environment
    /// variable. The host never calls it itself.
    fn get_xivo_uuid(&self, args: &Args) -> Option<String> {
        args.xivo_uuid()
            .map(String::from)
            .or_else(|| std::env::var("XIVO_UUID").ok())
    }

    /// Since 1.1. Health of the backend, reported by `HEAD /0.1/status`. Default: ok.
    fn status(&self) -> Result<Status, PluginError> {
        Ok(Status::Ok)
    }
}

/// A request to an external-auth plugin's resource `/0.1/users/{user_uuid}/external/{auth_type}`.
/// The host has already checked the caller's ACL and that the user is visible to the caller.
/// Fields may be added in later 1.x versions (`#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExternalRequest {
    pub user_uuid: String,
    /// The JSON body (`{}` for GET/DELETE or an empty body).
    pub body: serde_json::Value,
    /// The query string parameters.
    pub query: Args,
}

/// Since 1.3. A sub-route of an external-auth plugin, under
/// `/0.1/users/{user_uuid}/external/{auth_type}/`: the host registers it, checks its ACL and the
/// caller's tenant scope, then calls [`ExternalAuth::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRoute {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE` (a `GET` route also answers `HEAD`).
    pub method: String,
    /// The path after `/external/{auth_type}/`, literal segments only, e.g. `sender_id`.
    pub path: String,
    /// The ACL the caller's token must grant; `{user_uuid}` is filled in.
    pub acl: String,
}

impl SubRoute {
    pub fn new(method: &str, path: &str, acl: &str) -> SubRoute {
        SubRoute {
            method: method.to_string(),
            path: path.to_string(),
            acl: acl.to_string(),
        }
    }
}

/// Since 1.3. A request to a [`SubRoute`]. Fields may be added in later 1.x versions
/// (`#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SubRequest {
    pub method: String,
    /// The declared path that matched (e.g. `sender_id`).
    pub path: String,
    pub user_uuid: String,
    /// The caller's scoping tenant (its token's tenant, or the one `Wazo-Tenant` selects): the
    /// user is in it or below it.
    pub tenant_uuid: String,
    pub query: Args,
    /// The JSON body (`{}` for GET/DELETE or an empty body).
    pub body: serde_json::Value,
}

/// An HTTP answer of an external-auth handler. Build it with [`Reply::json`] or
/// [`Reply::no_content`]; these two fields are all the 1.x ABI carries, so the struct does not
/// grow within major version 1 (new features would come as new constructors).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<serde_json::Value>,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            body: Some(body),
        }
    }

    /// 204 without a body.
    pub fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
        }
    }
}

/// An external-auth plugin (entry-point group `wazo_auth.external_auth`): it links a wazo-auth
/// user to an external service and keeps the credentials, through the host's encrypted store
/// ([`Host::external_create`] and friends), which only ever gives it its own auth type's data.
///
/// Handlers answer a [`Reply`], or an error: `NOT_FOUND` becomes 404, `CONFLICT` 409,
/// `INVALID_INPUT` 400, anything else (and a panic, or a call running past the timeout) 503
/// `plugin-unavailable` with no details.
pub trait ExternalAuth: Send + Sync + 'static {
    /// Fields of the stored data that `GET /0.1/users/{user_uuid}/external` may show (the "safe
    /// model"). Used by the default [`ExternalAuth::safe_view`].
    const SAFE_FIELDS: &'static [&'static str] = &[];

    /// Information shown to user interfaces, e.g. `{"required_acl": [...]}`.
    fn plugin_info() -> serde_json::Value
    where
        Self: Sized,
    {
        serde_json::json!({})
    }

    fn load(host: &Host, config: serde_json::Value) -> Result<Self, PluginError>
    where
        Self: Sized;

    /// `POST`: set up the link with the external service.
    fn create(&self, req: &ExternalRequest) -> Result<Reply, PluginError>;

    /// `GET`: the stored credentials (refreshed when expired).
    fn get(&self, req: &ExternalRequest) -> Result<Reply, PluginError>;

    /// `PUT`: change the stored data. Default: 405.
    fn update(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        Ok(Reply::json(
            405,
            serde_json::json!({"message": "The method is not allowed for the requested URL."}),
        ))
    }

    /// `DELETE`: remove the stored data.
    fn delete(&self, req: &ExternalRequest) -> Result<Reply, PluginError>;

    /// Since 1.3: extra routes under `/users/{user_uuid}/external/{auth_type}/` (see
    /// [`SubRoute`]), served by [`ExternalAuth::handle`]. Default: none.
    fn routes() -> Vec<SubRoute>
    where
        Self: Sized,
    {
        Vec::new()
    }

    /// Since 1.3: the OpenAPI 3 `paths` object documenting [`ExternalAuth::routes`], keys
    /// relative to `/0.1` (e.g. `/users/{user_uuid}/external/mobile/sender_id`); merged into the
    /// server's `/api/openapi.yml` and `/api/api.yml`. Default: `{}`.
    fn api_spec() -> serde_json::Value
    where
        Self: Sized,
    {
        serde_json::json!({})
    }

    /// Since 1.3: serves a request to one of [`ExternalAuth::routes`]. Errors are answered as
    /// for the other handlers. Default: 404.
    fn handle(&self, _req: &SubRequest) -> Result<Reply, PluginError> {
        Ok(Reply::json(
            404,
            serde_json::json!({"message": "The requested URL was not found on the server."}),
        ))
    }

    /// The safe view of stored data: by default only [`ExternalAuth::SAFE_FIELDS`].
    fn safe_view(&self, data: &serde_json::Value) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        if let Some(obj) = data.as_object() {
            for field in Self::SAFE_FIELDS {
                if let Some(v) = obj.get(*field) {
                    out.insert((*field).to_string(), v.clone());
                }
            }
        }
        serde_json::Value::Object(out)
    }
}

/// Since 1.3. A metadata plugin (entry-point group `wazo_auth.metadata`), mirroring the
/// original's `BaseMetadata`: the host calls it for the logins whose purpose (`user`,
/// `internal`, `external_api`) lists it in `purpose_metadata_mapping`, and merges the keys it
/// returns into the token's metadata (see docs/plugins.md, "Metadata plugins").
///
/// `args` is the login's `args` object; the metadata built so far (by the backend, then by the
/// plugins before this one) is under `token_metadata` ([`ArgsExt::token_metadata`]).
pub trait MetadataPlugin: Send + Sync + 'static {
    /// Called once at startup when the plugin is enabled in `enabled_metadata_plugins`.
    fn load(host: &Host, config: serde_json::Value) -> Result<Self, PluginError>
    where
        Self: Sized;

    /// Keys to add to the token's metadata. The host keeps the identity keys of the backend
    /// (`auth_id`, `uuid`, `tenant_uuid`): a plugin cannot change whom a token belongs to.
    fn get_token_metadata(&self, login: &str, args: &Args) -> Result<Args, PluginError>;

    /// Keys to add to the persistent metadata of an offline login (kept with its refresh
    /// token). Default: none.
    fn get_persistent_metadata(&self, _login: &str, _args: &Args) -> Result<Args, PluginError> {
        Ok(Args::new())
    }
}

/// Since 1.3. Who an [`Idp`] authenticated: the backend that builds the token (its
/// `get_metadata`/`get_acl`; its `verify_password` is not called) and the login handed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub backend: String,
    pub login: String,
}

impl Authenticated {
    pub fn new(backend: impl Into<String>, login: impl Into<String>) -> Authenticated {
        Authenticated {
            backend: backend.into(),
            login: login.into(),
        }
    }
}

/// Since 1.3. An identity provider (entry-point group `wazo_auth.idp`), mirroring the
/// original's `IDPPlugin`. Enabled IdPs form a chain ordered by `idp_plugins.<name>.priority`:
/// for each login (other than a refresh-token one) the host asks them in order whether they
/// [`can_authenticate`](Idp::can_authenticate) it, and the first that says yes verifies it.
/// When none does, the built-in `native` IdP (the `backend` named by the request, else
/// `wazo_user`) handles it.
///
/// After a successful [`verify_auth`](Idp::verify_auth), the host checks that the wazo-auth
/// user of the returned login has this IdP's
/// [`authentication_method`](Idp::authentication_method) (its own, or its tenant's default):
/// otherwise the login is refused.
pub trait Idp: Send + Sync + 'static {
    /// Called once at startup when `idp_plugins.<name>.enabled` is true.
    fn load(host: &Host, config: serde_json::Value) -> Result<Self, PluginError>
    where
        Self: Sized;

    /// The method this IdP stands for, e.g. `ldap` or `saml`: the value of a user's
    /// `authentication_method` it authenticates (registered as an IdP type, listed by
    /// `GET /0.1/idp`).
    fn authentication_method(&self) -> String;

    /// Whether this IdP handles the login request `args` (e.g. it carries a `saml_session_id`,
    /// or a login of a domain it serves).
    fn can_authenticate(&self, args: &Args) -> bool;

    /// Verifies the request: `Ok(None)` for wrong credentials (a failed login, counted by the
    /// throttle), `Ok(Some(..))` with the backend and login of the token. May insert values
    /// into `args` for the backend's calls (the password is removed before them).
    fn verify_auth(&self, args: &mut Args) -> Result<Option<Authenticated>, PluginError>;
}

/// Parses the `args` JSON text handed over by the host.
pub fn parse_args(json: &str) -> Result<Args, PluginError> {
    if json.is_empty() {
        return Ok(Args::new());
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(PluginError::new(
            ErrorKind::INVALID_INPUT,
            "args must be a JSON object",
        )),
        Err(e) => Err(PluginError::new(
            ErrorKind::INVALID_INPUT,
            format!("args is not valid JSON: {e}"),
        )),
    }
}

/// Declares the plugins of this library and exports its root module. Use it exactly once per
/// library; every list is optional, but they come in this order:
///
/// ```ignore
/// export_plugins! {
///     backends: ["my_backend" => MyBackend, "other" => Other],
///     external_auths: ["bar" => Bar],
///     metadata_plugins: ["my_metadata" => MyMetadata],   // since 1.3
///     idps: ["my_idp" => MyIdp],                         // since 1.3
/// }
/// ```
///
/// Every call into the plugin goes through an adapter that catches panics and bridges the `log`
/// crate's records into the host's log, tagged with the plugin's name.
///
/// The library must be built with `panic = "unwind"` (the default): under `panic = "abort"` a
/// panic cannot be caught and would kill the server, so the macro stops the build with a
/// `compile_error!`, and the library tells the host its panic strategy (the host refuses an
/// aborting library, whatever built it).
#[macro_export]
macro_rules! export_plugins {
    (
        $( backends: [ $( $bname:literal => $bty:ty ),* $(,)? ] $(,)? )?
        $( external_auths: [ $( $ename:literal => $ety:ty ),* $(,)? ] $(,)? )?
        $( metadata_plugins: [ $( $mname:literal => $mty:ty ),* $(,)? ] $(,)? )?
        $( idps: [ $( $iname:literal => $ity:ty ),* $(,)? ] $(,)? )?
    ) => {
        #[cfg(not(panic = "unwind"))]
        ::core::compile_error!(
            "wazo-auth plugins must be built with panic = \"unwind\": remove `panic = \"abort\"` \
             from your Cargo profile (a panic in an aborting plugin kills the whole wazo-auth server)"
        );

        /// Root module of this plugin library (read by the wazo-auth host).
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __WAZO_AUTH_PLUGIN_LIB_HEADER: $crate::abi_stable::library::LibHeader = {
            extern "C" fn __wazo_auth_erased_root() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(__wazo_auth_root_module)
            }
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::ffi::PluginModuleRef>(
                    __wazo_auth_erased_root,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };

        fn __wazo_auth_root_module() -> $crate::ffi::PluginModuleRef {
            $crate::__private::root_module_v1_3(
                __wazo_auth_backends,
                __wazo_auth_external_auths,
                ::core::cfg!(panic = "unwind"),
                __wazo_auth_metadata_plugins,
                __wazo_auth_idps,
            )
        }

        extern "C" fn __wazo_auth_metadata_plugins() -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RVec<$crate::ffi::MetadataDecl>,
            $crate::PluginError,
        > {
            $crate::__private::guard(None, || {
                Ok(::std::vec![ $( $( $crate::__private::metadata_decl::<$mty>($mname) ),* )? ].into())
            })
        }

        extern "C" fn __wazo_auth_idps() -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RVec<$crate::ffi::IdpDecl>,
            $crate::PluginError,
        > {
            $crate::__private::guard(None, || {
                Ok(::std::vec![ $( $( $crate::__private::idp_decl::<$ity>($iname) ),* )? ].into())
            })
        }

        extern "C" fn __wazo_auth_backends() -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RVec<$crate::ffi::BackendDecl>,
            $crate::PluginError,
        > {
            $crate::__private::guard(None, || {
                Ok(::std::vec![ $( $( $crate::__private::backend_decl::<$bty>($bname) ),* )? ].into())
            })
        }

        extern "C" fn __wazo_auth_external_auths() -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RVec<$crate::ffi::ExternalAuthDecl>,
            $crate::PluginError,
        > {
            $crate::__private::guard(None, || {
                Ok(::std::vec![ $( $( $crate::__private::external_auth_decl::<$ety>($ename) ),* )? ].into())
            })
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn exported_symbol_name_matches_abi_stable() {
        // The export macro hard-codes the symbol so that plugins need no direct abi_stable
        // dependency; this guards it against an abi_stable upgrade.
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
