//! A backend written directly against the frozen 1.0 ABI (no export macro, which 1.0 users would
//! have had in their own copy): accepts `old` / `pw-old`. Built twice: against the frozen 1.0 ABI
//! (must load) and against a deliberately broken copy (must be refused).

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
            "{{\"auth_id\": \"{}\", \"xivo_uuid\": null, \"built_against\": \"1.0\"}}",
            login.as_str()
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

extern "C" fn backends() -> RResult<RVec<BackendDecl>, PluginError> {
    ROk(RVec::from(vec![BackendDecl {
        name: RString::from("compat_v1_0"),
        load,
    }]))
}

#[export_root_module]
fn root_module() -> PluginModuleRef {
    PluginModule { backends }.leak_into_prefix()
}
