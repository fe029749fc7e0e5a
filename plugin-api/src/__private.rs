//! Support code for the export macro. Not part of the stable API.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RErr, ROk, ROption, RResult, RStr, RString, RVec},
};

use crate::ffi::{
    BackendBox, BackendDecl, BackendFfi, BackendFfi_TO, ErrorKind, HostServicesBox, PluginModule,
    PluginModuleRef, VerifyOutcome,
};
use crate::{logging, parse_args, Backend, Host, PluginError, Status};

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

pub fn root_module(
    backends: extern "C" fn() -> RResult<RVec<BackendDecl>, PluginError>,
) -> PluginModuleRef {
    PluginModule { backends }.leak_into_prefix()
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
