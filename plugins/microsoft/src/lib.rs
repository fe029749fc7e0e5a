//! `microsoft`: the built-in external-auth plugin linking a wazo-auth user to a Microsoft
//! account through OAuth2 (address-book and calendar integrations read the token with
//! `GET /0.1/users/{user_uuid}/external/microsoft`). The flow is `wazo_auth_oauth2_flow`'s;
//! Microsoft gives refresh tokens for the `offline_access` scope, requested by default.

use wazo_auth_oauth2_flow::{OAuth2, Provider};
use wazo_auth_plugin_api::export_plugins;

pub struct Microsoft;

impl Provider for Microsoft {
    const AUTH_TYPE: &'static str = "microsoft";
    const NAME: &'static str = "Microsoft";
    const AUTHORIZATION_BASE_URL: &'static str =
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize";
    const REDIRECT_URI: &'static str = "https://oauth.wazo.io/microsoft/authorize";
    const TOKEN_URL: &'static str = "https://login.microsoftonline.com/common/oauth2/v2.0/token";
    const SCOPE: &'static [&'static str] = &["offline_access", "Contacts.Read"];
    const AUTHORIZATION_PARAMS: &'static [(&'static str, &'static str)] = &[];
}

export_plugins! { external_auths: ["microsoft" => OAuth2<Microsoft>] }
