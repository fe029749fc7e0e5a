//! The login use case (`POST /0.1/token`, spec core §1.2-§1.3), free of HTTP: choose the
//! credentials, choose the backend, run the backend's calls, build the token and store it. The
//! handler (`http/token.rs`) only parses the request, holds the throttle attempt and renders.
//!
//! The steps, each a function below:
//! 1. [`credentials`]: a refresh token (looked up) or Basic credentials;
//! 2. [`backend`]: the backend that issued the refresh token, or the one the body names, else
//!    the default one;
//! 3. [`plugin_args`] and [`default_acl`]: what the backend's calls receive;
//! 4. [`LoginSteps::run`]: `verify_password` (not for a refresh token), `get_metadata`,
//!    `get_acl` and, for an offline login, `get_persistent_metadata`, in one trip to the
//!    plugin's thread, under the call time-out;
//! 5. [`new_token`]: the token's identity, metadata, ACL, session limit and refresh token;
//! 6. `Storage::create_token`.

use std::sync::Arc;

use abi_stable::std_types::{RResult, RStr, RString};
use serde_json::{Map, Value};
use wazo_auth_core::refresh_tokens::{OfflineRequest, RefreshToken};
use wazo_auth_core::tokens::{self, Created as CreatedToken, NewToken};
use wazo_auth_plugin_api::{ErrorKind, PluginError};

use crate::http::request::BasicAuth;
use crate::http::token_request::TokenRequest;
use crate::http::AppState;
use crate::plugins::{CallError, LoadedBackend};
use crate::telemetry::metrics::{self, LoginOutcome, PluginFailure};

/// Who is logging in, as the request says.
pub struct LoginRequest {
    pub body: TokenRequest,
    pub basic: BasicAuth,
    /// `Wazo-Session-Type: mobile`.
    pub mobile: bool,
    pub user_agent: String,
    pub remote_addr: String,
}

/// Why a login did not produce a token.
#[derive(Debug)]
pub enum LoginError {
    /// Wrong password or unknown refresh token: a failed attempt (counted by the throttle).
    Rejected,
    /// Nothing to check (no credentials, no usable backend, a refresh token now resolving to
    /// another user): refused without counting a failure.
    Refused,
    /// A backend call failed or answered something unusable (logged here).
    Backend(CallError),
    /// Offline access asked of a backend that does not identify its users, or for a user that is
    /// not a wazo-auth user.
    OfflineUnavailable(&'static str),
    /// The user has the maximum number of live sessions.
    SessionLimit { auth_id: String },
    /// The database failed.
    Storage(wazo_auth_core::Error),
}

impl From<wazo_auth_core::Error> for LoginError {
    fn from(e: wazo_auth_core::Error) -> Self {
        LoginError::Storage(e)
    }
}

impl LoginError {
    /// Whether the attempt counts as a failed password guess.
    pub fn is_failed_guess(&self) -> bool {
        matches!(self, LoginError::Rejected)
    }

    /// A backend failure that says the service it depends on is unavailable (answered 503,
    /// where other backend failures are a failed login).
    pub fn is_backend_unavailable(&self) -> bool {
        matches!(self, LoginError::Backend(CallError::Plugin(e)) if e.kind == ErrorKind::UNAVAILABLE)
    }
}

/// How a login is authenticated.
enum Credentials {
    /// Basic credentials, checked by the backend's `verify_password`.
    Password { login: String, password: String },
    /// A refresh token: no password; its stored login and persistent metadata are used.
    Refresh(RefreshToken),
    /// Verified by an IdP plugin of the chain (plugin-api 1.3): its backend builds the token,
    /// without `verify_password`; its `args` complete the host's.
    Verified {
        login: String,
        backend: String,
        args: Map<String, Value>,
    },
}

/// Runs a login to its stored token, and counts it (`wazo_auth_logins_total`) under the backend
/// that handled it (the one it asked for when refused before one was chosen).
pub async fn login(state: &AppState, request: LoginRequest) -> Result<CreatedToken, LoginError> {
    let mut handled_by = asked_backend(state, &request.body);
    let outcome = run(state, request, &mut handled_by).await;
    metrics::login(
        &handled_by,
        match &outcome {
            Ok(_) => LoginOutcome::Success,
            Err(LoginError::Backend(_) | LoginError::Storage(_)) => LoginOutcome::Error,
            Err(
                LoginError::Rejected
                | LoginError::Refused
                | LoginError::OfflineUnavailable(_)
                | LoginError::SessionLimit { .. },
            ) => LoginOutcome::Failure,
        },
    );
    outcome
}

/// The backend a login asks for: the one its body names when loaded, else the default one (the
/// label of a login refused before its backend is chosen).
pub fn asked_backend(state: &AppState, body: &TokenRequest) -> String {
    body.backend
        .as_deref()
        .filter(|name| state.plugins.backend(name).is_some())
        .unwrap_or(&state.settings.default_backend)
        .to_string()
}

/// The steps of [`login`]; `handled_by` becomes the chosen backend's name.
async fn run(
    state: &AppState,
    request: LoginRequest,
    handled_by: &mut String,
) -> Result<CreatedToken, LoginError> {
    let LoginRequest {
        body,
        basic,
        mobile,
        user_agent,
        remote_addr,
    } = request;
    let credentials =
        match idp_credentials(state, &body, &basic, mobile, &user_agent, &remote_addr).await? {
            Some(verified) => verified,
            None => credentials(state, &body, basic).await?,
        };
    let (backend, wanted) = backend(state, &credentials, &body)?;
    handled_by.clone_from(&backend.name);
    let login = match &credentials {
        Credentials::Password { login, .. } => login.clone(),
        Credentials::Refresh(row) => row.login.clone().unwrap_or_default(),
        Credentials::Verified { login, .. } => login.clone(),
    };
    let mut args = plugin_args(
        state,
        &body,
        &login,
        &backend,
        wanted,
        mobile,
        &user_agent,
        &remote_addr,
    );
    if let Credentials::Verified { args: extra, .. } = &credentials {
        // The IdP's values complete the host's (which win).
        for (k, v) in extra {
            args.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let backend_arg = args
        .get("backend")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let default_acl = default_acl(state, &backend_arg).await?;

    let (password, refresh) = match credentials {
        Credentials::Password { password, .. } => (Some(password), None),
        Credentials::Refresh(row) => {
            args.insert(
                "persistent_metadata".into(),
                Value::Object(row.metadata.clone()),
            );
            (None, Some(row))
        }
        Credentials::Verified { .. } => (None, None),
    };
    let steps = LoginSteps {
        login: login.clone(),
        password,
        args,
        default_acl,
        offline: body.offline,
    };
    let done = run_steps(state, &backend, steps).await?;
    check_tenant(state, &backend, &done.metadata).await?;
    let done = with_metadata_plugins(state, &login, done).await?;
    let token = new_token(
        state,
        NewTokenInput {
            body: &body,
            login,
            backend_arg,
            done,
            refresh,
            mobile,
            user_agent,
            remote_addr,
        },
    )
    .await?;
    let auth_id = token.auth_id.clone();
    let created = match state.storage.create_token(token, &state.keyring).await {
        Ok(created) => created,
        Err(wazo_auth_core::Error::SessionLimit) => {
            return Err(LoginError::SessionLimit { auth_id })
        }
        Err(e) => return Err(e.into()),
    };
    log::info!(
        "token {} created for auth_id {} (backend {}, session {})",
        tokens::redact(&created.token.token.hyphenated().to_string()),
        created.token.auth_id,
        backend.name,
        created.token.session_uuid
    );
    Ok(created)
}

/// Step 1: a refresh token first (with its client id), then Basic credentials.
async fn credentials(
    state: &AppState,
    body: &TokenRequest,
    basic: BasicAuth,
) -> Result<Credentials, LoginError> {
    if let (Some(value), Some(client_id)) = (&body.refresh_token, &body.client_id) {
        return match state.storage.find_refresh_token(value, client_id).await? {
            Some((row, method)) => {
                refresh_method_allowed(state, &row, &method)?;
                Ok(Credentials::Refresh(row))
            }
            None => {
                log::info!("POST /token: unknown or expired refresh token");
                Err(LoginError::Rejected)
            }
        };
    }
    if body.saml_session_id.is_some() {
        // No SAML identity provider in this version: the session look-up misses (401).
        return Err(LoginError::Refused);
    }
    match basic {
        BasicAuth::Credentials { login, password } => Ok(Credentials::Password { login, password }),
        BasicAuth::Missing => Err(LoginError::Refused),
        BasicAuth::Invalid => {
            log::info!("POST /token: invalid base64 in Authorization header");
            Err(LoginError::Refused)
        }
    }
}

/// Step 2: for a refresh token the backend that issued it; else the one named in the body; in
/// both cases the default one when that one is not loaded. Also returns the name asked for.
fn backend(
    state: &AppState,
    credentials: &Credentials,
    body: &TokenRequest,
) -> Result<(Arc<LoadedBackend>, Option<String>), LoginError> {
    let wanted = match credentials {
        Credentials::Refresh(row) => row.backend.clone(),
        Credentials::Password { .. } => body.backend.clone(),
        Credentials::Verified { backend, .. } => {
            // The IdP named it: no fallback to the default backend.
            return match state.plugins.backend(backend) {
                Some(b) => Ok((b, Some(backend.clone()))),
                None => {
                    log::error!(
                        "POST /token: the IdP chose the backend {backend:?}, which is not loaded"
                    );
                    Err(LoginError::Refused)
                }
            };
        }
    };
    if let Some(name) = wanted.as_deref() {
        refuse_failed_backend(state, name)?;
    }
    let named = wanted
        .as_deref()
        .and_then(|name| state.plugins.backend(name));
    match named.or_else(|| state.plugins.backend(&state.settings.default_backend)) {
        Some(backend) => Ok((backend, wanted)),
        None => {
            log::info!(
                "POST /token: no usable backend (asked {:?}, default {:?}): the login is \
                 refused; install and enable the backend (enabled_backend_plugins), see the \
                 startup table",
                wanted,
                state.settings.default_backend
            );
            Err(LoginError::Refused)
        }
    }
}

/// A login naming a backend that is enabled but failed to load is refused (401), never handed
/// to the default backend: its users are not the default backend's.
fn refuse_failed_backend(state: &AppState, name: &str) -> Result<(), LoginError> {
    let Some(why) = state.plugins.failed_backend(name) else {
        return Ok(());
    };
    crate::plugins::warn_rate_limited(
        &format!("failed-backend:{name}"),
        format_args!(
            "POST /token: login refused: it names backend {name:?}, which is enabled but failed \
             to load at startup ({why}); fix it and restart the server"
        ),
    );
    Err(LoginError::Refused)
}

/// Step 3: the `args` every backend call receives.
#[allow(clippy::too_many_arguments)]
fn plugin_args(
    state: &AppState,
    body: &TokenRequest,
    login: &str,
    backend: &LoadedBackend,
    wanted: Option<String>,
    mobile: bool,
    user_agent: &str,
    remote_addr: &str,
) -> Map<String, Value> {
    let mut args = Map::new();
    args.insert("login".into(), Value::from(login));
    args.insert(
        "backend".into(),
        Value::from(wanted.unwrap_or_else(|| backend.name.clone())),
    );
    request_args(&mut args, state, body, mobile, user_agent, remote_addr);
    args
}

/// What every login plugin's `args` hold of the request: its context, the body's
/// `access_type`, `client_id`, `tenant_id`, `domain_name` and `expiration`, and `xivo_uuid`.
fn request_args(
    args: &mut Map<String, Value>,
    state: &AppState,
    body: &TokenRequest,
    mobile: bool,
    user_agent: &str,
    remote_addr: &str,
) {
    args.insert("mobile".into(), Value::from(mobile));
    args.insert("user_agent".into(), Value::from(user_agent));
    args.insert("remote_addr".into(), Value::from(remote_addr));
    args.insert(
        "access_type".into(),
        Value::from(if body.offline { "offline" } else { "online" }),
    );
    for (k, v) in [
        ("client_id", &body.client_id),
        ("tenant_id", &body.tenant_id),
        ("domain_name", &body.domain_name),
    ] {
        if let Some(v) = v {
            args.insert(k.into(), Value::from(v.clone()));
        }
    }
    if let Some(e) = body.expiration {
        args.insert("expiration".into(), Value::from(e));
    }
    if let Some(x) = &state.settings.xivo_uuid {
        args.insert("xivo_uuid".into(), Value::from(x.clone()));
    }
}

/// Step 3: the default user policy's ACL, handed to `get_acl` in `args.acl` (the deprecated
/// `backend_policies[backend]` wins when configured).
async fn default_acl(state: &AppState, backend: &str) -> Result<Arc<Vec<String>>, LoginError> {
    let policy = state
        .settings
        .backend_policies
        .get(backend)
        .or(state.settings.default_user_policy.as_ref());
    Ok(match policy {
        Some(name) => state.tokens.policy_acl(&state.storage, name).await?,
        None => Arc::default(),
    })
}

/// The plugin calls of one login, run in order on the plugin's thread.
struct LoginSteps {
    login: String,
    /// `None` for a refresh-token login (no password check).
    password: Option<String>,
    args: Map<String, Value>,
    default_acl: Arc<Vec<String>>,
    offline: bool,
}

/// What the plugin calls produced.
struct LoginDone {
    args: Map<String, Value>,
    metadata: Map<String, Value>,
    /// `metadata.auth_id`.
    auth_id: String,
    acl: Vec<String>,
    persistent: Option<Map<String, Value>>,
}

enum StepError {
    /// `verify_password` said no.
    Rejected,
    /// A call failed (or returned something unusable).
    Failed(&'static str, PluginError),
}

fn json_object(method: &'static str, text: &str) -> Result<Map<String, Value>, StepError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StepError::Failed(
            method,
            PluginError::failed(format!(
                "returned something that is not a JSON object: make Backend::{method} return \
                 an Args map"
            )),
        )),
    }
}

impl LoginSteps {
    fn run(
        mut self,
        backend: &wazo_auth_plugin_api::ffi::BackendBox,
    ) -> Result<LoginDone, StepError> {
        let login = RStr::from_str(&self.login);
        let failed = |method| move |e| StepError::Failed(method, e);
        let mut args = serde_json::to_string(&self.args).unwrap_or_default();
        if let Some(password) = &self.password {
            let outcome = backend
                .verify_password(login, RStr::from_str(password), RStr::from_str(&args))
                .into_result()
                .map_err(failed("verify_password"))?;
            if !outcome.accepted {
                return Err(StepError::Rejected);
            }
            // Most backends hand the arguments back unchanged: no need to parse them again.
            if outcome.args_json.as_str() != args {
                self.args = json_object("verify_password", outcome.args_json.as_str())?;
                args = outcome.args_json.into_string();
            }
        }
        let metadata = backend
            .get_metadata(login, RStr::from_str(&args))
            .into_result()
            .map_err(failed("get_metadata"))?;
        let metadata = json_object("get_metadata", metadata.as_str())?;
        let Some(auth_id) = metadata
            .get("auth_id")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return Err(StepError::Failed(
                "get_metadata",
                PluginError::failed(
                    "returned no string auth_id: override Backend::get_metadata and put the \
                     user's identity (a string) under auth_id",
                ),
            ));
        };
        self.args.insert(
            "acl".into(),
            Value::Array(self.default_acl.iter().cloned().map(Value::from).collect()),
        );
        let args = serde_json::to_string(&self.args).unwrap_or_default();
        let acl = backend
            .get_acl(login, RStr::from_str(&args))
            .into_result()
            .map_err(failed("get_acl"))?
            .into_iter()
            .map(RString::into_string)
            .collect();
        let persistent = if self.offline {
            let p = backend
                .get_persistent_metadata(login, RStr::from_str(&args))
                .into_result()
                .map_err(failed("get_persistent_metadata"))?;
            Some(json_object("get_persistent_metadata", p.as_str())?)
        } else {
            None
        };
        Ok(LoginDone {
            args: self.args,
            metadata,
            auth_id,
            acl,
            persistent,
        })
    }
}

/// Step 4: every plugin call of the login in one trip, under the call time-out.
async fn run_steps(
    state: &AppState,
    backend: &LoadedBackend,
    steps: LoginSteps,
) -> Result<LoginDone, LoginError> {
    let outcome = backend
        .call(state.settings.plugin_call_timeout, move |b| {
            RResult::ROk(steps.run(b))
        })
        .await;
    let (method, error) = match outcome {
        Ok(Ok(done)) => return Ok(done),
        Ok(Err(StepError::Rejected)) => {
            log::info!(
                "POST /token: authentication failed for a login on backend {}",
                backend.name
            );
            return Err(LoginError::Rejected);
        }
        Ok(Err(StepError::Failed(method, e))) => {
            // A step that panicked inside the call (`Loaded::call` counts the panics of whole
            // calls; this one returned).
            if e.kind == ErrorKind::PANICKED {
                metrics::plugin_failure(&backend.name, PluginFailure::Panic);
            }
            (method, CallError::Plugin(e))
        }
        Err(e) => ("a login call", e),
    };
    log::error!(
        "backend {} ({}): {method} failed: {error}",
        backend.name,
        backend.file.display()
    );
    Err(LoginError::Backend(error))
}

/// Step 4b, the tenant rule (docs/plugins.md, "tenant_uuid"): the metadata's `tenant_uuid`
/// never widens what the token may reach.
/// - the uuid of an existing tenant: the token's tenant;
/// - `null`: the top tenant, as the author asked;
/// - absent: the token belongs to no tenant and passes no tenant check (its session is recorded
///   under the top tenant, as the original does); a warning says so;
/// - anything else (not a string, not a tenant uuid, no such tenant): the login is refused
///   (401), with a warning.
///
/// The warnings name the backend and are rate-limited (a client can trigger them at will).
async fn check_tenant(
    state: &AppState,
    backend: &LoadedBackend,
    metadata: &Map<String, Value>,
) -> Result<(), LoginError> {
    let refused = |case: &str, problem: String| {
        crate::plugins::warn_rate_limited(
            &format!("tenant:{case}:{}", backend.name),
            format_args!(
                "backend {} ({}): get_metadata returned {problem}; login refused (401): put the \
                 uuid of the user's tenant under tenant_uuid, or null for the top tenant",
                backend.name,
                backend.file.display()
            ),
        );
        LoginError::Backend(CallError::Plugin(PluginError::failed(format!(
            "get_metadata returned {problem}"
        ))))
    };
    match metadata.get("tenant_uuid") {
        None => {
            crate::plugins::warn_rate_limited(
                &format!("tenant:missing:{}", backend.name),
                format_args!(
                    "backend {} ({}): get_metadata returned no tenant_uuid: the token belongs to \
                     no tenant and passes no tenant check; put the uuid of the user's tenant \
                     under tenant_uuid, or null for the top tenant",
                    backend.name,
                    backend.file.display()
                ),
            );
            Ok(())
        }
        Some(Value::Null) => Ok(()),
        Some(Value::String(t)) if wazo_auth_core::ids::parse_canonical(t).is_none() => {
            Err(refused(
                "malformed",
                format!("a tenant_uuid that is not a hyphenated uuid: {t:?}"),
            ))
        }
        Some(Value::String(t)) => {
            if state.storage.is_subtenant(t, t).await? {
                Ok(())
            } else {
                Err(refused("unknown", format!("the tenant_uuid {t}, which names no existing tenant (tenant uuids are lower-case)")))
            }
        }
        Some(other) => Err(refused(
            "malformed",
            format!("a tenant_uuid that is not a string: {other}"),
        )),
    }
}

struct NewTokenInput<'a> {
    body: &'a TokenRequest,
    login: String,
    backend_arg: String,
    done: LoginDone,
    refresh: Option<RefreshToken>,
    mobile: bool,
    user_agent: String,
    remote_addr: String,
}

/// Step 5: the token to store. Its metadata is the persistent metadata (of the refresh token or
/// of an offline login) under the backend's; an offline login also asks for a refresh token.
async fn new_token(state: &AppState, input: NewTokenInput<'_>) -> Result<NewToken, LoginError> {
    let NewTokenInput {
        body,
        login,
        backend_arg,
        done,
        refresh,
        mobile,
        user_agent,
        remote_addr,
    } = input;
    let LoginDone {
        args,
        metadata,
        auth_id,
        acl,
        persistent,
    } = done;
    if let Some(row) = &refresh {
        // A refresh token belongs to one user: refuse if the backend now maps its login to
        // someone else.
        if metadata.get("uuid").and_then(Value::as_str) != Some(row.user_uuid.as_str()) {
            log::warn!("POST /token: refresh token login resolved to another user; refused");
            return Err(LoginError::Refused);
        }
    }
    let mut token_metadata = refresh
        .as_ref()
        .map(|r| r.metadata.clone())
        .unwrap_or_default();
    let mut offline = None;
    if body.offline {
        let Some(user_uuid) = metadata
            .get("uuid")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return Err(LoginError::OfflineUnavailable(
                "offline access needs a backend that identifies users (metadata uuid)",
            ));
        };
        if !state.storage.is_wazo_auth_user(&user_uuid).await? {
            return Err(LoginError::OfflineUnavailable(
                "offline access is only available to wazo-auth users",
            ));
        }
        let persistent = persistent.unwrap_or_default();
        token_metadata.extend(persistent.clone());
        let real_login = args
            .get("real_login")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or(login);
        offline = Some(OfflineRequest {
            client_id: body.client_id.clone().unwrap_or_default(),
            user_uuid,
            backend: backend_arg,
            login: real_login,
            user_agent: user_agent.clone(),
            remote_addr: remote_addr.clone(),
            mobile,
            metadata: persistent,
            lifetime_seconds: state.settings.refresh_token_lifetime,
        });
    }
    token_metadata.extend(metadata.clone());

    let str_field = |k: &str| metadata.get(k).and_then(Value::as_str).map(String::from);
    // Session limit for user and external_api logins whose auth_id is a user uuid.
    let purpose = metadata
        .get("purpose")
        .and_then(Value::as_str)
        .unwrap_or("");
    let session_limit = (matches!(purpose, "user" | "external_api")
        && uuid::Uuid::parse_str(&auth_id)
            .is_ok_and(|u| u.get_version_num() == 4 && u.hyphenated().to_string() == auth_id))
    .then_some(state.settings.max_user_concurrent_sessions);
    let issued_t = tokens::now();
    let lifetime = body
        .expiration
        .unwrap_or(state.settings.default_token_lifetime);
    Ok(NewToken {
        auth_id,
        pbx_user_uuid: str_field("pbx_user_uuid"),
        xivo_uuid: str_field("xivo_uuid").or_else(|| state.settings.xivo_uuid.clone()),
        issued_t,
        expire_t: issued_t + lifetime as f64,
        tenant_uuid: str_field("tenant_uuid"),
        metadata: token_metadata,
        user_agent,
        remote_addr,
        acl,
        mobile,
        session_limit,
        offline,
        refresh_token_uuid: refresh.map(|r| r.uuid),
    })
}

/// The IdP chain (plugin-api 1.3) for a login that is not a refresh-token one: `None` when no
/// IdP plugin is loaded or none handles the request (the built-in `native` member, today's
/// path, then runs), else the login its IdP verified. The user of the verified login must have
/// that IdP's authentication method (its own, or its tenant's default), as the original checks.
async fn idp_credentials(
    state: &AppState,
    body: &TokenRequest,
    basic: &BasicAuth,
    mobile: bool,
    user_agent: &str,
    remote_addr: &str,
) -> Result<Option<Credentials>, LoginError> {
    use crate::login_plugins::{run_chain, IdpDecision};
    if state.login_plugins.idps().is_empty()
        || (body.refresh_token.is_some() && body.client_id.is_some())
    {
        return Ok(None);
    }
    let args = idp_args(state, body, basic, mobile, user_agent, remote_addr);
    let verified = match run_chain(state, &args).await {
        Ok(IdpDecision::Native) => return Ok(None),
        Ok(IdpDecision::Rejected { idp }) => {
            log::info!("POST /token: authentication failed for a login on IdP {idp}");
            return Err(LoginError::Rejected);
        }
        Ok(IdpDecision::Verified(v)) => v,
        Err(f) => {
            log::error!("{} failed: {}", f.context, f.error);
            return Err(LoginError::Backend(f.error));
        }
    };
    if state.plugins.backend(&verified.backend).is_none() {
        log::error!(
            "POST /token: IdP {} chose the backend {:?}, which is not loaded: refused",
            verified.idp.plugin.name,
            verified.backend
        );
        return Err(LoginError::Refused);
    }
    let client = state.storage.client().await?;
    let user = wazo_auth_core::users::find_enabled_user_by_login(&client, &verified.login).await?;
    let method = &verified.idp.authentication_method;
    match user {
        Some(u) if u.effective_authentication_method() == method => {}
        Some(u) => {
            log::info!(
                "POST /token: IdP {} ({method}) authenticated user {}, whose authentication \
                 method is {}: refused",
                verified.idp.plugin.name,
                u.uuid,
                u.effective_authentication_method()
            );
            return Err(LoginError::Refused);
        }
        None => {
            log::info!(
                "POST /token: IdP {} ({method}) authenticated a login of no enabled wazo-auth \
                 user: refused",
                verified.idp.plugin.name
            );
            return Err(LoginError::Refused);
        }
    }
    Ok(Some(Credentials::Verified {
        login: verified.login,
        backend: verified.backend,
        args: verified.args,
    }))
}

/// The `args` of `can_authenticate` and `verify_auth`: the Basic credentials (`login`,
/// `password`) when sent, the body's fields, and the request's context.
fn idp_args(
    state: &AppState,
    body: &TokenRequest,
    basic: &BasicAuth,
    mobile: bool,
    user_agent: &str,
    remote_addr: &str,
) -> Map<String, Value> {
    let mut args = Map::new();
    if let BasicAuth::Credentials { login, password } = basic {
        args.insert("login".into(), Value::from(login.clone()));
        args.insert("password".into(), Value::from(password.clone()));
    }
    for (k, v) in [
        ("backend", &body.backend),
        ("saml_session_id", &body.saml_session_id),
    ] {
        if let Some(v) = v {
            args.insert(k.into(), Value::from(v.clone()));
        }
    }
    request_args(&mut args, state, body, mobile, user_agent, remote_addr);
    args
}

/// The built-in `refresh_token` member of the IdP chain: the refresh token's user must still
/// authenticate with a method of the chain (`native`, or a loaded IdP plugin's), as the
/// original checks; a user switched to `ldap` with no `ldap` IdP loaded cannot refresh.
fn refresh_method_allowed(
    state: &AppState,
    row: &RefreshToken,
    method: &str,
) -> Result<(), LoginError> {
    let served = method == wazo_auth_core::idp::NATIVE
        || state
            .login_plugins
            .idps()
            .iter()
            .any(|i| i.authentication_method == method);
    if served {
        Ok(())
    } else {
        log::info!(
            "POST /token: refresh token of user {}, whose authentication method {method} no \
             IdP of this server serves: refused",
            row.user_uuid
        );
        Err(LoginError::Refused)
    }
}

/// Step 4b: the metadata plugins mapped to the login's purpose (plugin-api 1.3; none with the
/// default configuration: nothing runs).
async fn with_metadata_plugins(
    state: &AppState,
    login: &str,
    mut done: LoginDone,
) -> Result<LoginDone, LoginError> {
    let LoginDone {
        args,
        metadata,
        persistent,
        ..
    } = &mut done;
    crate::login_plugins::apply_metadata(state, login, args, metadata, persistent.as_mut())
        .await
        .map_err(|f| {
            log::error!("{} failed: {}", f.context, f.error);
            LoginError::Backend(f.error)
        })?;
    Ok(done)
}
