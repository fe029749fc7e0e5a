//! `google`: the built-in external-auth plugin linking a wazo-auth user to a Google account
//! through OAuth2 (address-book and calendar integrations read the token with
//! `GET /0.1/users/{user_uuid}/external/google`). The flow is `wazo_auth_oauth2_flow`'s; Google
//! adds `access_type=offline` and `prompt=consent` to the authorization URL, so that every
//! authorization gives a refresh token.

use wazo_auth_oauth2_flow::{OAuth2, Provider};
use wazo_auth_plugin_api::export_plugins;

pub struct Google;

impl Provider for Google {
    const AUTH_TYPE: &'static str = "google";
    const NAME: &'static str = "Google";
    const AUTHORIZATION_BASE_URL: &'static str = "https://accounts.google.com/o/oauth2/v2/auth";
    const REDIRECT_URI: &'static str = "https://oauth.wazo.io/google/authorize";
    const TOKEN_URL: &'static str = "https://www.googleapis.com/oauth2/v4/token";
    const SCOPE: &'static [&'static str] = &[
        "https://www.googleapis.com/auth/userinfo.profile",
        "https://www.googleapis.com/auth/contacts",
    ];
    const AUTHORIZATION_PARAMS: &'static [(&'static str, &'static str)] =
        &[("access_type", "offline"), ("prompt", "consent")];
}

export_plugins! { external_auths: ["google" => OAuth2<Google>] }
