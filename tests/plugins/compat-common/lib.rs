//! A backend written directly against a frozen ABI (no export macro, which 1.0 users would
//! have had in their own copy): accepts `old` / `pw-old`. Built three times: against the frozen
//! 1.0 ABI (`compat_v1_0`, must load), the frozen 1.1 ABI (`compat_v1_1`, must load) and a
//! deliberately broken copy (must be refused; it declares `compat_v1_0`).

use abi_stable::{
    export_root_module,
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROk, ROption, RResult, RStr, RString, RVec},
};
use wazo_auth_plugin_api::ffi::{
    BackendBox, BackendDecl, BackendFfi, BackendFfi_TO, HostServicesBox, PluginError,
    PluginModule, PluginModuleRef, VerifyOutcome,
};

struct Old;

impl BackendFfi for Old {
    fn verify_password(
        &self,
        login: RStr<'_>,
        password: RStr<'_>,
        args_json: RStr<'_>,
    ) -> RResult<VerifyOutcome, PluginError> {
        ROk(VerifyOutcome {
            accepted: login.as_str() == "old" && password.as_str() == "pw-old",
            args_json: RString::from(args_json.as_str()),
        })
    }

    fn get_metadata(&self, login: RStr<'_>, _args_json: RStr<'_>) -> RResult<RString, PluginError> {
        ROk(RString::from(format!(
            "{{\"auth_id\": \"{}\", \"xivo_uuid\": null, \"built_against\": \"{}\"}}",
            login.as_str(),
            built_against()
        )))
    }

    fn get_acl(&self, _login: RStr<'_>, _args_json: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        ROk(RVec::from(vec![RString::from("old.plugin.#")]))
    }

    fn get_persistent_metadata(
        &self,
        _login: RStr<'_>,
        _args_json: RStr<'_>,
    ) -> RResult<RString, PluginError> {
        ROk(RString::from("{}"))
    }

    fn get_xivo_uuid(&self, _args_json: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        ROk(ROption::RNone)
    }
}

extern "C" fn load(
    host: HostServicesBox,
    _config_json: RStr<'_>,
) -> RResult<BackendBox, PluginError> {
    host.log(3, "compat".into(), "backend built against plugin-api 1.0 loading".into());
    ROk(BackendFfi_TO::from_value(Old, TD_Opaque))
}

/// The ABI this copy is built against: `1.1` for the `compat-v1_1` crate, else `1.0` (the
/// broken copy claims 1.1 but has the 1.0 interface, and keeps declaring `compat_v1_0`).
fn built_against() -> &'static str {
    if env!("CARGO_PKG_NAME").ends_with("v1_1") {
        "1.1"
    } else {
        "1.0"
    }
}

extern "C" fn backends() -> RResult<RVec<BackendDecl>, PluginError> {
    ROk(RVec::from(vec![BackendDecl {
        name: RString::from(format!("compat_v1_{}", &built_against()[2..])),
        load,
    }]))
}

#[export_root_module]
fn root_module() -> PluginModuleRef {
    PluginModule { backends }.leak_into_prefix()
}
