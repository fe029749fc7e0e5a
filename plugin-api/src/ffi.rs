#![allow(non_local_definitions)] // emitted by abi_stable's sabi_trait macro
//! The binary interface between the `wazo-auth` host and plugin libraries.
//!
//! Everything in this module crosses the `.so` boundary and is checked by `abi_stable` when a
//! library is loaded. Rules for changing it within major version 1:
//! - never change, reorder or remove an existing field, method or argument;
//! - new methods go at the END of a `#[sabi_trait]`, with a default body (the default is what the
//!   host runs for a plugin built against an older 1.x);
//! - new root-module fields go at the END of [`PluginModule`] (they read as `None` for older
//!   plugins).
//!
//! History: 1.0.0 first release; 1.1.0 added [`BackendFfi::status`]; 1.2.0 added the user
//! services of [`HostServicesFfi`] (`authenticate_user`, `find_user`, `user_acl`), the
//! external-auth store services, and the `wazo_auth.external_auth` group ([`ExternalAuthFfi`]);
//! 1.3.0 added the root-module field `panic_unwind` (see [`PluginModule`]) and the host services
//! `publish_authorized`, `external_tenant_config`, `tenant_by_domain_name`, `tenant_by_id` and
//! `ldap_config`, the root-module
//! fields `metadata_plugins` ([`MetadataFfi`]) and `idps` ([`IdpFfi`]), and the sub-route
//! methods of [`ExternalAuthFfi`] (`routes_json`, `api_spec_json`, `handle`).
//!
//! Before changing this file after a release, freeze the released version into
//! `abi_history/` (see its documentation).

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, RErr, ROk, ROption, RResult, RStr, RString, RVec},
    StableAbi,
};

/// What went wrong in a plugin call. A plain integer so that later versions can add kinds without
/// changing the layout; unknown kinds must be treated like [`ErrorKind::FAILED`].
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub struct ErrorKind(pub u32);

impl ErrorKind {
    /// The call failed (generic).
    pub const FAILED: Self = Self(0);
    /// The plugin panicked; the panic was caught at the boundary.
    pub const PANICKED: Self = Self(1);
    /// The plugin was given input it cannot use.
    pub const INVALID_INPUT: Self = Self(2);
    /// A service the plugin depends on (directory, database, ...) is unreachable.
    pub const UNAVAILABLE: Self = Self(3);
    /// The plugin's configuration is wrong.
    pub const CONFIG: Self = Self(4);
    /// The host does not provide the requested service.
    pub const UNSUPPORTED: Self = Self(5);
    /// The thing asked for does not exist (answered 404 by the host).
    pub const NOT_FOUND: Self = Self(6);
    /// The thing to create already exists (answered 409 by the host).
    pub const CONFLICT: Self = Self(7);

    /// A short, stable name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::FAILED => "failed",
            Self::PANICKED => "panicked",
            Self::INVALID_INPUT => "invalid-input",
            Self::UNAVAILABLE => "unavailable",
            Self::CONFIG => "config",
            Self::UNSUPPORTED => "unsupported",
            Self::NOT_FOUND => "not-found",
            Self::CONFLICT => "conflict",
            _ => "unknown",
        }
    }
}

/// An error crossing the boundary: a kind and a human-readable message. The host never parses the
/// message.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: RString,
}

/// Log levels as small integers (1 = error ... 5 = trace), like `log::Level as usize`.
pub type LogLevelCode = u8;

/// Services the host hands to each plugin when it is loaded. Implemented by the host.
///
/// Later 1.x versions add methods at the end (with defaults answering `UNSUPPORTED`), e.g. access
/// to users and to the external-auth store.
#[sabi_trait]
pub trait HostServicesFfi: Clone + Send + Sync {
    /// The name under which this plugin was declared and enabled.
    fn plugin_name(&self) -> RString;

    /// The plugin's own configuration section, as JSON text (`{}` when absent).
    fn config_json(&self) -> RString;

    /// Writes one record into the host's log, tagged with the plugin's name.
    fn log(&self, level: LogLevelCode, target: RStr<'_>, message: RStr<'_>);

    /// The most verbose level the host currently records (so plugins can skip formatting).
    #[sabi(last_prefix_field)]
    fn max_log_level(&self) -> LogLevelCode;

    /// Since 1.2.0. Finds the enabled user whose confirmed e-mail or username equals `login`
    /// (case-insensitive) and checks `password` against the stored hash. Costs the same for an
    /// unknown login as for a wrong password; upgrades the stored hash to the configured scheme
    /// after a success. Returns the user (JSON object text, see [`find_user`]) when the
    /// credentials are valid.
    ///
    /// [`find_user`]: HostServicesFfi::find_user
    fn authenticate_user(
        &self,
        login: RStr<'_>,
        password: RStr<'_>,
    ) -> RResult<ROption<RString>, PluginError> {
        let _ = (login, password);
        RErr(unsupported("authenticate_user"))
    }

    /// Since 1.2.0. The enabled user whose confirmed e-mail or username equals `login`, as a
    /// JSON object text: `uuid`, `username`, `tenant_uuid`, `purpose`, `enabled`,
    /// `authentication_method` and `tenant_default_authentication_method`.
    fn find_user(&self, login: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        let _ = login;
        RErr(unsupported("find_user"))
    }

    /// Since 1.2.0. The ACL of the user's group policies, then of the user's own policies.
    fn user_acl(&self, user_uuid: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        let _ = user_uuid;
        RErr(unsupported("user_acl"))
    }

    /// Since 1.2.0, external-auth plugins only. The data stored for `user_uuid` by this
    /// plugin's auth type (JSON text), `None` when there is none. `NOT_FOUND` for an unknown user.
    fn external_get(&self, user_uuid: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        let _ = user_uuid;
        RErr(unsupported("external_get"))
    }

    /// Since 1.2.0, external-auth plugins only. Stores data for `user_uuid` (encrypted at rest).
    /// `CONFLICT` when data exists, `NOT_FOUND` for an unknown user.
    fn external_create(
        &self,
        user_uuid: RStr<'_>,
        data_json: RStr<'_>,
    ) -> RResult<(), PluginError> {
        let _ = (user_uuid, data_json);
        RErr(unsupported("external_create"))
    }

    /// Since 1.2.0, external-auth plugins only. Replaces the data of `user_uuid`; `NOT_FOUND`
    /// when there is none.
    fn external_update(
        &self,
        user_uuid: RStr<'_>,
        data_json: RStr<'_>,
    ) -> RResult<(), PluginError> {
        let _ = (user_uuid, data_json);
        RErr(unsupported("external_update"))
    }

    /// Since 1.2.0, external-auth plugins only. Deletes the data of `user_uuid`; `NOT_FOUND`
    /// when there is none.
    fn external_delete(&self, user_uuid: RStr<'_>) -> RResult<(), PluginError> {
        let _ = user_uuid;
        RErr(unsupported("external_delete"))
    }

    /// Since 1.2.0, external-auth plugins only. This auth type's configuration for the tenant of
    /// `user_uuid` (JSON text), `None` when that tenant has none.
    fn external_config(&self, user_uuid: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        let _ = user_uuid;
        RErr(unsupported("external_config"))
    }

    /// Since 1.3.0, external-auth plugins only. Publishes the bus event
    /// `auth_user_external_auth_authorized` for `user_uuid` and this plugin's auth type (the
    /// external flow completed), through the host's outbox. `NOT_FOUND` for an unknown user.
    fn publish_authorized(&self, user_uuid: RStr<'_>) -> RResult<(), PluginError> {
        let _ = user_uuid;
        RErr(unsupported("publish_authorized"))
    }

    /// Since 1.3.0, external-auth plugins only. This auth type's configuration for the tenant
    /// `tenant_uuid` (JSON text), `None` when it has none.
    fn external_tenant_config(
        &self,
        tenant_uuid: RStr<'_>,
    ) -> RResult<ROption<RString>, PluginError> {
        let _ = tenant_uuid;
        RErr(unsupported("external_tenant_config"))
    }

    /// Since 1.3.0. The tenant owning the domain name (compared without case), as a JSON object
    /// text: `uuid`, `name`, `slug`, `parent_uuid`, `domain_names`; `None` when no tenant has it.
    fn tenant_by_domain_name(
        &self,
        domain_name: RStr<'_>,
    ) -> RResult<ROption<RString>, PluginError> {
        let _ = domain_name;
        RErr(unsupported("tenant_by_domain_name"))
    }

    /// Since 1.3.0. The tenant whose uuid or slug is `tenant_id` (the deprecated `tenant_id` of
    /// a login), as [`tenant_by_domain_name`] returns it; `None` when there is none.
    ///
    /// [`tenant_by_domain_name`]: HostServicesFfi::tenant_by_domain_name
    fn tenant_by_id(&self, tenant_id: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        let _ = tenant_id;
        RErr(unsupported("tenant_by_id"))
    }

    /// Since 1.3.0, the built-in LDAP plugins only (`ldap_user`, `ldap`): the LDAP
    /// configuration of the tenant (`/backends/ldap`) as a JSON object text, its
    /// `bind_password` decrypted; `None` when the tenant has none. Other plugins get
    /// `UNSUPPORTED`.
    fn ldap_config(&self, tenant_uuid: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        let _ = tenant_uuid;
        RErr(unsupported("ldap_config"))
    }
}

/// The error a host answers for a service it does not provide (an older host).
fn unsupported(service: &str) -> PluginError {
    PluginError {
        kind: ErrorKind::UNSUPPORTED,
        message: RString::from(format!("this wazo-auth host does not provide {service}")),
    }
}

/// The host-services object as passed to plugins.
pub type HostServicesBox = HostServicesFfi_TO<'static, RArc<()>>;

/// Result of `verify_password`: whether the credentials are accepted, and the (possibly updated)
/// `args` object as JSON text, so that a backend can hand values to its later calls.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct VerifyOutcome {
    pub accepted: bool,
    pub args_json: RString,
}

/// An authentication backend (entry-point group `wazo_auth.backends`), as seen by the host.
///
/// `args` and metadata cross as JSON text (objects), so the ABI does not change when fields do.
#[sabi_trait]
pub trait BackendFfi: Send + Sync {
    fn verify_password(
        &self,
        login: RStr<'_>,
        password: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<VerifyOutcome, PluginError>;

    /// JSON object text.
    fn get_metadata(&self, login: RStr<'_>, args_json: RStr<'_>) -> RResult<RString, PluginError>;

    fn get_acl(&self, login: RStr<'_>, args_json: RStr<'_>) -> RResult<RVec<RString>, PluginError>;

    /// JSON object text.
    fn get_persistent_metadata(
        &self,
        login: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<RString, PluginError>;

    #[sabi(last_prefix_field)]
    fn get_xivo_uuid(&self, args_json: RStr<'_>) -> RResult<ROption<RString>, PluginError>;

    /// Since 1.1.0. Health of the backend as a JSON object text, `{"status": "ok"}` or
    /// `{"status": "fail", ...}`; reported by `HEAD /0.1/status`. Plugins built against 1.0 get
    /// this default, run by the host.
    fn status(&self) -> RResult<RString, PluginError> {
        ROk(RString::from("{\"status\":\"ok\"}"))
    }
}

/// A backend instance as held by the host.
pub type BackendBox = BackendFfi_TO<'static, RBox<()>>;

/// One backend declared by a library.
#[repr(C)]
#[derive(StableAbi)]
pub struct BackendDecl {
    /// Entry-point name (the key used in `enabled_backend_plugins`).
    pub name: RString,
    /// Loads (instantiates) the backend: receives the host services and the plugin's config
    /// section (JSON object text).
    pub load: extern "C" fn(
        host: HostServicesBox,
        config_json: RStr<'_>,
    ) -> RResult<BackendBox, PluginError>,
}

/// An HTTP answer of an external-auth handler. `body_json` empty = no body.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    pub body_json: RString,
}

/// An external-auth plugin (entry-point group `wazo_auth.external_auth`), serving
/// `/0.1/users/{user_uuid}/external/{auth_type}`. `query_json` is the query string as a JSON
/// object of strings; `body_json` the request body (JSON text, `{}` when empty).
#[sabi_trait]
pub trait ExternalAuthFfi: Send + Sync {
    /// `POST`: set up the link with the external service.
    fn create(
        &self,
        user_uuid: RStr<'_>,
        body_json: RStr<'_>,
        query_json: RStr<'_>,
    ) -> RResult<HttpReply, PluginError>;

    /// `GET`: the stored credentials (refreshed when expired).
    fn get(&self, user_uuid: RStr<'_>, query_json: RStr<'_>) -> RResult<HttpReply, PluginError>;

    /// `PUT`: change the stored data (e.g. the scope).
    fn update(
        &self,
        user_uuid: RStr<'_>,
        body_json: RStr<'_>,
        query_json: RStr<'_>,
    ) -> RResult<HttpReply, PluginError>;

    /// `DELETE`: remove the stored data.
    fn delete(&self, user_uuid: RStr<'_>, query_json: RStr<'_>) -> RResult<HttpReply, PluginError>;

    /// The "safe" view of stored data (JSON in, JSON out) shown by `GET /users/{u}/external`.
    #[sabi(last_prefix_field)]
    fn safe_view(&self, data_json: RStr<'_>) -> RResult<RString, PluginError>;

    /// Since 1.3.0. The plugin's sub-routes under `/users/{user_uuid}/external/{auth_type}/`,
    /// as a JSON array of `{"method": "GET", "path": "sender_id", "acl":
    /// "auth.users.{user_uuid}.external.<type>.sender_id.read"}` (`path` relative, literal
    /// segments; `{user_uuid}` in `acl` is filled by the host). Read once at load. Default:
    /// none.
    fn routes_json(&self) -> RResult<RString, PluginError> {
        ROk(RString::from("[]"))
    }

    /// Since 1.3.0. The OpenAPI 3 `paths` fragment documenting the sub-routes (JSON object
    /// text, keys relative to `/0.1`), merged into `/api/openapi.yml` and `/api/api.yml`. Read
    /// once at load. Default: `{}`.
    fn api_spec_json(&self) -> RResult<RString, PluginError> {
        ROk(RString::from("{}"))
    }

    /// Since 1.3.0. Serves a declared sub-route, after the host checked its ACL and that the
    /// user is visible from the caller's scoping tenant (`tenant_uuid`). `suffix` is the path
    /// after `/external/{auth_type}/`; `body_json` is `{}` for `GET` and `DELETE`. Default: 404.
    fn handle(
        &self,
        method: RStr<'_>,
        suffix: RStr<'_>,
        user_uuid: RStr<'_>,
        tenant_uuid: RStr<'_>,
        query_json: RStr<'_>,
        body_json: RStr<'_>,
    ) -> RResult<HttpReply, PluginError> {
        let _ = (
            method,
            suffix,
            user_uuid,
            tenant_uuid,
            query_json,
            body_json,
        );
        ROk(HttpReply {
            status: 404,
            body_json: RString::new(),
        })
    }
}

/// An external-auth plugin instance as held by the host.
pub type ExternalAuthBox = ExternalAuthFfi_TO<'static, RBox<()>>;

/// One external-auth plugin declared by a library.
#[repr(C)]
#[derive(StableAbi)]
pub struct ExternalAuthDecl {
    /// The auth type, also the name used in `enabled_external_auth_plugins`.
    pub auth_type: RString,
    /// `plugin_info` shown to user interfaces (JSON object text), e.g. `required_acl`.
    pub plugin_info_json: RString,
    pub load: extern "C" fn(
        host: HostServicesBox,
        config_json: RStr<'_>,
    ) -> RResult<ExternalAuthBox, PluginError>,
}

/// Since 1.3.0. A metadata plugin (entry-point group `wazo_auth.metadata`): adds keys to the
/// token metadata of the logins whose purpose it is mapped to (`purpose_metadata_mapping`).
/// `args_json` is the login's `args` object, with the metadata built so far under
/// `token_metadata`.
#[sabi_trait]
pub trait MetadataFfi: Send + Sync {
    /// JSON object text: keys merged into the token's metadata.
    fn get_token_metadata(
        &self,
        login: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<RString, PluginError>;

    /// JSON object text: keys merged into the persistent metadata of an offline login.
    #[sabi(last_prefix_field)]
    fn get_persistent_metadata(
        &self,
        login: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<RString, PluginError>;
}

/// A metadata plugin instance as held by the host.
pub type MetadataBox = MetadataFfi_TO<'static, RBox<()>>;

/// Since 1.3.0. One metadata plugin declared by a library.
#[repr(C)]
#[derive(StableAbi)]
pub struct MetadataDecl {
    /// The name used in `enabled_metadata_plugins` and `purpose_metadata_mapping`.
    pub name: RString,
    pub load: extern "C" fn(
        host: HostServicesBox,
        config_json: RStr<'_>,
    ) -> RResult<MetadataBox, PluginError>,
}

/// Since 1.3.0. What an IdP's `verify_auth` decided. When `accepted`, `backend` names the
/// backend whose `get_metadata`/`get_acl` build the token, `login` is the login handed to it,
/// and `args_json` the (possibly updated) `args` object.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct IdpOutcome {
    pub accepted: bool,
    pub backend: RString,
    pub login: RString,
    pub args_json: RString,
}

/// Since 1.3.0. An identity provider (entry-point group `wazo_auth.idp`): a member of the
/// ordered chain that picks who authenticates a login (`idp_plugins.<name>.priority`).
/// `args_json` is the login request as a JSON object (`login` and `password` when Basic
/// credentials were sent, the body fields, `mobile`, `user_agent`, `remote_addr`, ...).
#[sabi_trait]
pub trait IdpFfi: Send + Sync {
    /// The authentication method this IdP stands for (a user's `authentication_method`).
    fn authentication_method(&self) -> RResult<RString, PluginError>;

    /// Whether this IdP handles the request.
    fn can_authenticate(&self, args_json: RStr<'_>) -> RResult<bool, PluginError>;

    /// Authenticates the request.
    #[sabi(last_prefix_field)]
    fn verify_auth(&self, args_json: RStr<'_>) -> RResult<IdpOutcome, PluginError>;
}

/// An IdP instance as held by the host.
pub type IdpBox = IdpFfi_TO<'static, RBox<()>>;

/// Since 1.3.0. One IdP declared by a library.
#[repr(C)]
#[derive(StableAbi)]
pub struct IdpDecl {
    /// The name used in `idp_plugins`.
    pub name: RString,
    pub load:
        extern "C" fn(host: HostServicesBox, config_json: RStr<'_>) -> RResult<IdpBox, PluginError>,
}

/// The root module every plugin library exports (one per `.so`). Each field lists the plugins of
/// one entry-point group.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    /// Group `wazo_auth.backends`.
    #[sabi(last_prefix_field)]
    pub backends: extern "C" fn() -> RResult<RVec<BackendDecl>, PluginError>,
    /// Since 1.2.0. Group `wazo_auth.external_auth` (`None` for older plugins).
    pub external_auths: extern "C" fn() -> RResult<RVec<ExternalAuthDecl>, PluginError>,
    /// Since 1.3.0. Whether the library was built with `panic = "unwind"` (the export macro
    /// fills it in with `cfg!(panic = "unwind")`). The host refuses a library that says `false`:
    /// its panics cannot be caught at the boundary and would abort the whole server. `None` for
    /// older plugins (not checked).
    pub panic_unwind: bool,
    /// Since 1.3.0. Group `wazo_auth.metadata` (`None` for older plugins).
    pub metadata_plugins: extern "C" fn() -> RResult<RVec<MetadataDecl>, PluginError>,
    /// Since 1.3.0. Group `wazo_auth.idp` (`None` for older plugins).
    pub idps: extern "C" fn() -> RResult<RVec<IdpDecl>, PluginError>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "wazo_auth_plugin";
    const NAME: &'static str = "wazo_auth_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
