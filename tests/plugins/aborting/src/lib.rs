//! A backend (`aborting`, accepts `x` / `pw-x`) in a library built with panic = "abort".

use wazo_auth_plugin_api::{serde_json, Args, Backend, Host, PluginError};

pub struct Aborting;

impl Backend for Aborting {
    fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(Aborting)
    }

    fn verify_password(
        &self,
        login: &str,
        password: &str,
        _args: &mut Args,
    ) -> Result<bool, PluginError> {
        Ok(login == "x" && password == "pw-x")
    }
}

#[cfg(feature = "macro")]
wazo_auth_plugin_api::export_plugins! { backends: ["aborting" => Aborting] }

/// The root module the export macro would write, by hand (the macro refuses this profile).
#[cfg(not(feature = "macro"))]
mod by_hand {
    use abi_stable::{
        export_root_module,
        std_types::{RResult, RVec},
    };
    use wazo_auth_plugin_api::ffi::{BackendDecl, ExternalAuthDecl, PluginModuleRef};
    use wazo_auth_plugin_api::{PluginError, __private};

    extern "C" fn backends() -> RResult<RVec<BackendDecl>, PluginError> {
        RResult::ROk(RVec::from(vec![__private::backend_decl::<super::Aborting>(
            "aborting",
        )]))
    }

    extern "C" fn external_auths() -> RResult<RVec<ExternalAuthDecl>, PluginError> {
        RResult::ROk(RVec::new())
    }

    #[export_root_module]
    fn root_module() -> PluginModuleRef {
        __private::root_module(backends, external_auths, cfg!(panic = "unwind"))
    }
}
