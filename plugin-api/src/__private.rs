//! Support code for the export macro. Not part of the stable API.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RErr, ROk, ROption, RResult, RStr, RString, RVec},
};

use crate::ffi::{
    BackendBox, BackendDecl, BackendFfi, BackendFfi_TO, ErrorKind, ExternalAuthBox,
    ExternalAuthDecl, ExternalAuthFfi, ExternalAuthFfi_TO, HostServicesBox, HttpReply, IdpBox,
    IdpDecl, IdpFfi, IdpFfi_TO, IdpOutcome, MetadataBox, MetadataDecl, MetadataFfi, MetadataFfi_TO,
    PluginModule, PluginModuleRef, VerifyOutcome,
};
use crate::{
    logging, parse_args, Backend, ExternalAuth, ExternalRequest, Host, Idp, MetadataPlugin,
    PluginError, Reply, Status, SubRequest,
};

/// Runs `f` with panics caught (turned into a `PANICKED` error) and, when a host is given, with
/// log records of this thread routed to that host.
pub fn guard<T>(
    host: Option<&Host>,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> RResult<T, PluginError> {
    let run = || catch_unwind(AssertUnwindSafe(f));
    let outcome = match host {
        Some(h) => logging::with_current_host(h, run),
        None => run(),
    };
    match outcome {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(e),
        Err(payload) => {
            let msg = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_string()
            };
            RErr(PluginError::new(
                ErrorKind::PANICKED,
                format!("plugin panicked: {msg}"),
            ))
        }
    }
}

/// The root module of a library without metadata and IdP plugins; `panic_unwind` is
/// `cfg!(panic = "unwind")` as seen by the plugin's crate.
pub fn root_module(
    backends: extern "C" fn() -> RResult<RVec<BackendDecl>, PluginError>,
    external_auths: extern "C" fn() -> RResult<RVec<ExternalAuthDecl>, PluginError>,
    panic_unwind: bool,
) -> PluginModuleRef {
    extern "C" fn no_metadata() -> RResult<RVec<MetadataDecl>, PluginError> {
        ROk(RVec::new())
    }
    extern "C" fn no_idps() -> RResult<RVec<IdpDecl>, PluginError> {
        ROk(RVec::new())
    }
    root_module_v1_3(backends, external_auths, panic_unwind, no_metadata, no_idps)
}

/// The root module with every group of plugin-api 1.3 (what `export_plugins!` builds).
pub fn root_module_v1_3(
    backends: extern "C" fn() -> RResult<RVec<BackendDecl>, PluginError>,
    external_auths: extern "C" fn() -> RResult<RVec<ExternalAuthDecl>, PluginError>,
    panic_unwind: bool,
    metadata_plugins: extern "C" fn() -> RResult<RVec<MetadataDecl>, PluginError>,
    idps: extern "C" fn() -> RResult<RVec<IdpDecl>, PluginError>,
) -> PluginModuleRef {
    PluginModule {
        backends,
        external_auths,
        panic_unwind,
        metadata_plugins,
        idps,
    }
    .leak_into_prefix()
}

/// The configuration JSON text handed to `load`, parsed (`{}` when empty).
fn load_config(config_json: RStr<'_>) -> Result<serde_json::Value, PluginError> {
    if config_json.is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_str(config_json.as_str())
        .map_err(|e| PluginError::config(format!("configuration is not valid JSON: {e}")))
}

pub fn metadata_decl<M: MetadataPlugin>(name: &str) -> MetadataDecl {
    MetadataDecl {
        name: RString::from(name),
        load: load_metadata::<M>,
    }
}

extern "C" fn load_metadata<M: MetadataPlugin>(
    host: HostServicesBox,
    config_json: RStr<'_>,
) -> RResult<MetadataBox, PluginError> {
    let host = Host::from_ffi(host);
    logging::install(&host);
    let config = match load_config(config_json) {
        Ok(c) => c,
        Err(e) => return RErr(e),
    };
    guard(Some(&host), || {
        let inner = M::load(&host, config)?;
        Ok(MetadataFfi_TO::from_value(
            MetadataAdapter {
                inner,
                host: host.clone(),
            },
            TD_Opaque,
        ))
    })
}

struct MetadataAdapter<M> {
    inner: M,
    host: Host,
}

impl<M: MetadataPlugin> MetadataFfi for MetadataAdapter<M> {
    fn get_token_metadata(
        &self,
        login: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            let args = parse_args(args_json.as_str())?;
            Ok(to_json_text(
                &self.inner.get_token_metadata(login.as_str(), &args)?,
            ))
        })
    }

    fn get_persistent_metadata(
        &self,
        login: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            let args = parse_args(args_json.as_str())?;
            Ok(to_json_text(
                &self.inner.get_persistent_metadata(login.as_str(), &args)?,
            ))
        })
    }
}

pub fn idp_decl<I: Idp>(name: &str) -> IdpDecl {
    IdpDecl {
        name: RString::from(name),
        load: load_idp::<I>,
    }
}

extern "C" fn load_idp<I: Idp>(
    host: HostServicesBox,
    config_json: RStr<'_>,
) -> RResult<IdpBox, PluginError> {
    let host = Host::from_ffi(host);
    logging::install(&host);
    let config = match load_config(config_json) {
        Ok(c) => c,
        Err(e) => return RErr(e),
    };
    guard(Some(&host), || {
        let inner = I::load(&host, config)?;
        Ok(IdpFfi_TO::from_value(
            IdpAdapter {
                inner,
                host: host.clone(),
            },
            TD_Opaque,
        ))
    })
}

struct IdpAdapter<I> {
    inner: I,
    host: Host,
}

impl<I: Idp> IdpFfi for IdpAdapter<I> {
    fn authentication_method(&self) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            Ok(RString::from(self.inner.authentication_method()))
        })
    }

    fn can_authenticate(&self, args_json: RStr<'_>) -> RResult<bool, PluginError> {
        guard(Some(&self.host), || {
            let args = parse_args(args_json.as_str())?;
            Ok(self.inner.can_authenticate(&args))
        })
    }

    fn verify_auth(&self, args_json: RStr<'_>) -> RResult<IdpOutcome, PluginError> {
        guard(Some(&self.host), || {
            let mut args = parse_args(args_json.as_str())?;
            let outcome = self.inner.verify_auth(&mut args)?;
            let (accepted, backend, login) = match outcome {
                Some(a) => (true, a.backend, a.login),
                None => (false, String::new(), String::new()),
            };
            Ok(IdpOutcome {
                accepted,
                backend: RString::from(backend),
                login: RString::from(login),
                args_json: to_json_text(&args),
            })
        })
    }
}

pub fn external_auth_decl<E: ExternalAuth>(auth_type: &str) -> ExternalAuthDecl {
    ExternalAuthDecl {
        auth_type: RString::from(auth_type),
        plugin_info_json: RString::from(E::plugin_info().to_string()),
        load: load_external::<E>,
    }
}

extern "C" fn load_external<E: ExternalAuth>(
    host: HostServicesBox,
    config_json: RStr<'_>,
) -> RResult<ExternalAuthBox, PluginError> {
    let host = Host::from_ffi(host);
    logging::install(&host);
    let config: serde_json::Value = if config_json.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        match serde_json::from_str(config_json.as_str()) {
            Ok(v) => v,
            Err(e) => {
                return RErr(PluginError::config(format!(
                    "configuration is not valid JSON: {e}"
                )))
            }
        }
    };
    guard(Some(&host), || {
        let inner = E::load(&host, config)?;
        Ok(ExternalAuthFfi_TO::from_value(
            ExternalAdapter {
                inner,
                host: host.clone(),
            },
            TD_Opaque,
        ))
    })
}

struct ExternalAdapter<E> {
    inner: E,
    host: Host,
}

fn request(
    user_uuid: RStr<'_>,
    body_json: Option<RStr<'_>>,
    query_json: RStr<'_>,
) -> Result<ExternalRequest, PluginError> {
    let body = match body_json {
        Some(b) if !b.is_empty() => serde_json::from_str(b.as_str()).map_err(|e| {
            PluginError::new(
                ErrorKind::INVALID_INPUT,
                format!("body is not valid JSON: {e}"),
            )
        })?,
        _ => serde_json::Value::Object(Default::default()),
    };
    Ok(ExternalRequest {
        user_uuid: user_uuid.to_string(),
        body,
        query: parse_args(query_json.as_str())?,
    })
}

fn reply(r: Reply) -> HttpReply {
    HttpReply {
        status: r.status,
        body_json: RString::from(r.body.map(|b| b.to_string()).unwrap_or_default()),
    }
}

impl<E: ExternalAuth> ExternalAuthFfi for ExternalAdapter<E> {
    fn create(
        &self,
        user_uuid: RStr<'_>,
        body_json: RStr<'_>,
        query_json: RStr<'_>,
    ) -> RResult<HttpReply, PluginError> {
        guard(Some(&self.host), || {
            let req = request(user_uuid, Some(body_json), query_json)?;
            self.inner.create(&req).map(reply)
        })
    }

    fn get(&self, user_uuid: RStr<'_>, query_json: RStr<'_>) -> RResult<HttpReply, PluginError> {
        guard(Some(&self.host), || {
            let req = request(user_uuid, None, query_json)?;
            self.inner.get(&req).map(reply)
        })
    }

    fn update(
        &self,
        user_uuid: RStr<'_>,
        body_json: RStr<'_>,
        query_json: RStr<'_>,
    ) -> RResult<HttpReply, PluginError> {
        guard(Some(&self.host), || {
            let req = request(user_uuid, Some(body_json), query_json)?;
            self.inner.update(&req).map(reply)
        })
    }

    fn delete(&self, user_uuid: RStr<'_>, query_json: RStr<'_>) -> RResult<HttpReply, PluginError> {
        guard(Some(&self.host), || {
            let req = request(user_uuid, None, query_json)?;
            self.inner.delete(&req).map(reply)
        })
    }

    fn safe_view(&self, data_json: RStr<'_>) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            let data: serde_json::Value = serde_json::from_str(data_json.as_str())
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
            Ok(RString::from(self.inner.safe_view(&data).to_string()))
        })
    }

    fn routes_json(&self) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            let routes: Vec<serde_json::Value> = E::routes()
                .into_iter()
                .map(|r| serde_json::json!({"method": r.method, "path": r.path, "acl": r.acl}))
                .collect();
            Ok(RString::from(serde_json::Value::Array(routes).to_string()))
        })
    }

    fn api_spec_json(&self) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            Ok(RString::from(E::api_spec().to_string()))
        })
    }

    fn handle(
        &self,
        method: RStr<'_>,
        suffix: RStr<'_>,
        user_uuid: RStr<'_>,
        tenant_uuid: RStr<'_>,
        query_json: RStr<'_>,
        body_json: RStr<'_>,
    ) -> RResult<HttpReply, PluginError> {
        guard(Some(&self.host), || {
            let base = request(user_uuid, Some(body_json), query_json)?;
            let req = SubRequest {
                method: method.to_string(),
                path: suffix.to_string(),
                user_uuid: base.user_uuid,
                tenant_uuid: tenant_uuid.to_string(),
                query: base.query,
                body: base.body,
            };
            self.inner.handle(&req).map(reply)
        })
    }
}

pub fn backend_decl<B: Backend>(name: &str) -> BackendDecl {
    BackendDecl {
        name: RString::from(name),
        load: load_backend::<B>,
    }
}

extern "C" fn load_backend<B: Backend>(
    host: HostServicesBox,
    config_json: RStr<'_>,
) -> RResult<BackendBox, PluginError> {
    let host = Host::from_ffi(host);
    logging::install(&host);
    let config: serde_json::Value = if config_json.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        match serde_json::from_str(config_json.as_str()) {
            Ok(v) => v,
            Err(e) => {
                return RErr(PluginError::config(format!(
                    "configuration is not valid JSON: {e}"
                )))
            }
        }
    };
    guard(Some(&host), || {
        let inner = B::load(&host, config)?;
        Ok(BackendFfi_TO::from_value(
            Adapter {
                inner,
                host: host.clone(),
            },
            TD_Opaque,
        ))
    })
}

struct Adapter<B> {
    inner: B,
    host: Host,
}

fn to_json_text(m: &crate::Args) -> RString {
    RString::from(serde_json::to_string(m).unwrap_or_else(|_| "{}".into()))
}

impl<B: Backend> BackendFfi for Adapter<B> {
    fn verify_password(
        &self,
        login: RStr<'_>,
        password: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<VerifyOutcome, PluginError> {
        guard(Some(&self.host), || {
            let mut args = parse_args(args_json.as_str())?;
            let accepted =
                self.inner
                    .verify_password(login.as_str(), password.as_str(), &mut args)?;
            Ok(VerifyOutcome {
                accepted,
                args_json: to_json_text(&args),
            })
        })
    }

    fn get_metadata(&self, login: RStr<'_>, args_json: RStr<'_>) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            let args = parse_args(args_json.as_str())?;
            Ok(to_json_text(
                &self.inner.get_metadata(login.as_str(), &args)?,
            ))
        })
    }

    fn get_acl(&self, login: RStr<'_>, args_json: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        guard(Some(&self.host), || {
            let args = parse_args(args_json.as_str())?;
            let acl = self.inner.get_acl(login.as_str(), &args)?;
            Ok(acl.into_iter().map(RString::from).collect())
        })
    }

    fn get_persistent_metadata(
        &self,
        login: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            let args = parse_args(args_json.as_str())?;
            Ok(to_json_text(
                &self.inner.get_persistent_metadata(login.as_str(), &args)?,
            ))
        })
    }

    fn get_xivo_uuid(&self, args_json: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        guard(Some(&self.host), || {
            let args = parse_args(args_json.as_str())?;
            Ok(self.inner.get_xivo_uuid(&args).map(RString::from).into())
        })
    }

    fn status(&self) -> RResult<RString, PluginError> {
        guard(Some(&self.host), || {
            let v = match self.inner.status()? {
                Status::Ok => serde_json::json!({"status": "ok"}),
                Status::Fail(reason) => serde_json::json!({"status": "fail", "reason": reason}),
            };
            Ok(RString::from(v.to_string()))
        })
    }
}

// Keep `RBox` in scope for the type alias used by the macro-generated code.
#[allow(dead_code)]
type _KeepRBox = RBox<()>;
