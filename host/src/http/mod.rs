//! The REST API (prefix `/0.1`).

// Handlers return ready-made error responses in `Err`; boxing them would only add noise.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod errors;
mod external;
mod groups;
pub mod listing;
mod policies;
pub mod request;
mod sessions;
mod status;
mod tenants;
mod token;
pub mod token_request;
mod users;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use wazo_auth_core::acl_cache::AclCache;
use wazo_auth_core::Storage;

use crate::plugins::PluginRegistry;

/// Everything a request handler needs.
pub struct AppState {
    pub storage: Storage,
    pub keyring: wazo_auth_core::keys::Keyring,
    pub plugins: PluginRegistry,
    pub acl_cache: AclCache,
    pub settings: Settings,
}

/// The part of the configuration the HTTP layer reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub default_token_lifetime: i64,
    pub plugin_call_timeout: Duration,
    pub num_proxies: u32,
    pub xivo_uuid: Option<String>,
    pub max_body_bytes: usize,
    /// Backend used when the request names none (or names one that is not enabled).
    pub default_backend: String,
    /// Valid authentication methods (`native`, `default`, enabled IdPs).
    pub auth_methods: Vec<String>,
    /// Per-tenant defaults applied to every new tenant.
    pub tenant_defaults: wazo_auth_core::defaults::TenantDefaults,
    /// Scheme of newly hashed passwords.
    pub password_scheme: wazo_auth_core::password::Scheme,
    pub max_user_concurrent_sessions: u32,
    /// Policy (by name) whose ACL every `wazo_user` login gets first.
    pub default_user_policy: Option<String>,
    /// Deprecated `backend_policies`: backend name → policy name, overrides the default policy.
    pub backend_policies: std::collections::BTreeMap<String, String>,
    /// Lifetime of new refresh tokens in seconds (`None`: never expire).
    pub refresh_token_lifetime: Option<i64>,
}

pub type State = web::Data<Arc<AppState>>;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    let _ = max_body_bytes;
    cfg.service(
        web::scope("/0.1")
            .configure(sessions::routes)
            .configure(external::routes)
            .configure(users::routes)
            .configure(tenants::routes)
            .configure(groups::routes)
            .configure(policies::routes)
            .service(
                web::resource("/token")
                    .route(web::post().to(token::create))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/token/{token}")
                    .route(web::get().to(token::get))
                    .route(web::head().to(token::head))
                    .route(web::delete().to(token::delete))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/token/{token}/scopes/check")
                    .route(web::post().to(token::check_scopes))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/backends")
                    .route(web::get().to(status::backends))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/status")
                    .route(web::head().to(status::status))
                    .default_service(web::to(method_not_allowed)),
            ),
    )
    .default_service(web::to(not_found));
}

async fn method_not_allowed() -> HttpResponse {
    errors::plain_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for the requested URL.",
    )
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let _ = req;
    errors::plain_error(
        StatusCode::NOT_FOUND,
        "The requested URL was not found on the server. If you entered the URL manually please \
         check your spelling and try again.",
    )
}
