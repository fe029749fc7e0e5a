//! The REST API (prefix `/0.1`).

mod api;
mod config;
pub mod cors;
pub mod deadline;
mod emails;
pub mod error;
mod external;
pub mod extract;
mod groups;
mod idp;
mod ldap_config;
pub mod listing;
mod password_reset;
mod policies;
mod registration;
pub mod request;
pub mod routes;
mod sessions;
mod status;
mod swagger;
mod tenants;
pub mod throttle;
mod token;
pub mod token_request;
mod users;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use wazo_auth_core::cache::Caches;
use wazo_auth_core::Storage;

use crate::plugins::PluginRegistry;

/// Everything a request handler needs.
pub struct AppState {
    pub storage: Storage,
    pub keyring: wazo_auth_core::keys::Keyring,
    pub plugins: Arc<PluginRegistry>,
    pub tokens: Arc<Caches>,
    pub settings: Settings,
    /// Password attempts under way, per throttle key and per process (`throttle::AttemptTurns`,
    /// the burst bound).
    pub attempts: Arc<throttle::AttemptTurns>,
    /// The configuration `/config` shows and changes (one for the process).
    pub config: Arc<crate::config::LiveConfig>,
    /// Mail: templates, settings and the sender (`crate::mail`).
    pub mail: Arc<crate::mail::MailService>,
    /// Metadata plugins by purpose and the IdP chain (plugin-api 1.3).
    pub login_plugins: Arc<crate::login_plugins::LoginPlugins>,
    /// Set on SIGTERM during `rest_api.shutdown_drain`: `HEAD /status` answers 503 so that a
    /// balancer takes this node out before it stops listening (see `crate::server`).
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// The part of the configuration the HTTP layer reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub default_token_lifetime: i64,
    pub plugin_call_timeout: Duration,
    /// Whose `X-Forwarded-For` is read (`rest_api.num_proxies`, `rest_api.trusted_proxies`).
    pub proxies: request::ProxyTrust,
    pub xivo_uuid: Option<String>,
    pub max_body_bytes: usize,
    /// Backend used when the request names none (or names one that is not enabled).
    pub default_backend: String,
    /// The IdP types: the valid authentication methods (`native`, `default`, enabled IdPs),
    /// listed by `GET /0.1/idp`.
    pub idp_types: wazo_auth_core::idp::IdpTypes,
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
    /// Failed-login throttling.
    pub throttle: wazo_auth_core::throttle::ThrottleConfig,
}

pub type State = web::Data<Arc<AppState>>;

/// Registers every route (and the benchmark ceiling route when asked; `POST /users/register`
/// when `user_registration`, `enabled_http_plugins.user_registration`, is set).
pub fn configure(cfg: &mut web::ServiceConfig, benchmark_route: bool, user_registration: bool) {
    if benchmark_route {
        cfg.route(
            "/0.1/_bench/ceiling",
            web::get().to(|| async {
                HttpResponse::Ok().json(serde_json::json!({"status": "ok", "bench": true}))
            }),
        );
    }
    cfg.service(
        web::scope("/0.1")
            // The hot paths first: actix tries resources in registration order (each dynamic one
            // with a regular expression), and every request to a Wazo service is a token check.
            // `/token` is a static prefix, its paths split by hand (`token::dispatch`).
            .service(web::scope("/token").default_service(web::to(token::dispatch)))
            .configure(|cfg| api::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| sessions::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| external::routes(&mut routes::Router::new(cfg)))
            .configure(external::sub_routes)
            // Before the users' routes: `/users/password/reset` and `/users/register` would
            // otherwise match `/users/{user_uuid}...`.
            .configure(|cfg| {
                if user_registration {
                    registration::routes(&mut routes::Router::new(cfg))
                }
            })
            .configure(|cfg| emails::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| password_reset::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| users::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| tenants::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| groups::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| policies::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| status::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| config::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| idp::routes(&mut routes::Router::new(cfg)))
            .configure(|cfg| ldap_config::routes(&mut routes::Router::new(cfg))),
    )
    .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    error::ApiError::route_not_found().into()
}

/// Middleware: after a successful request that may have revoked tokens (any write, except a
/// login that revoked nothing and a scope check), wait until this process has received the
/// revocation notifications it caused, so that its token cache forgets them before the client
/// hears back (revocation takes effect at once on the node that handled it).
pub async fn revocation_barrier(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::Method;
    // A path segment holding NUL (`%00`) names nothing: PostgreSQL text cannot hold NUL, so no
    // user, policy, slug, client id or auth type can match it. Answered as an unknown route
    // before any handler sends it to the database (which would refuse the parameter).
    if req.uri().path().contains("%00") {
        return Ok(req
            .into_response(HttpResponse::from(error::ApiError::route_not_found()))
            .map_into_right_body());
    }
    // Reads (the token-check hot path) pass straight through.
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    let path = req.path().to_string();
    let state = req.app_data::<State>().cloned();
    let res = next.call(req).await?.map_into_left_body();
    if !res.status().is_success() || path.ends_with("/scopes/check") {
        return Ok(res);
    }
    let quiet_login = path.trim_end_matches('/') == "/0.1/token"
        && res
            .headers()
            .get("Wazo-Sessions-Revoked")
            .is_some_and(|v| v.as_bytes() == b"0");
    if !quiet_login {
        if let Some(state) = state {
            state
                .tokens
                .sync(&state.storage, Duration::from_millis(250))
                .await;
        }
    }
    Ok(res)
}

/// Every route declared through [`routes::Router`], with its method, path (under `/0.1`) and
/// required ACL: what `api.yml` is checked against.
pub fn route_table() -> Vec<routes::RouteSpec> {
    let mut router = routes::Router::table_only();
    api::routes(&mut router);
    sessions::routes(&mut router);
    external::routes(&mut router);
    emails::routes(&mut router);
    password_reset::routes(&mut router);
    registration::routes(&mut router);
    users::routes(&mut router);
    groups::routes(&mut router);
    policies::routes(&mut router);
    tenants::routes(&mut router);
    status::routes(&mut router);
    config::routes(&mut router);
    idp::routes(&mut router);
    ldap_config::routes(&mut router);
    router.into_table()
}

/// The resources' body validators, callable without a database or a request: what the
/// `request_body` fuzz target (`fuzz/`) drives. Each decodes a raw body as its resource does and
/// validates it; `Err` is the resource's error answer. Not an API.
#[doc(hidden)]
pub mod body_check {
    use super::error::ApiError;

    /// `POST /users` (`post`) or `PUT /users/{uuid}`.
    pub fn user(body: &[u8], post: bool) -> Result<(), ApiError> {
        super::users::check_body(body, post)
    }

    /// `PUT /users/{uuid}/password`.
    pub fn password_change(body: &[u8]) -> Result<(), ApiError> {
        super::users::check_password_change(body)
    }

    /// `PUT /admin/users/{uuid}/emails` (`admin`) or `PUT /users/{uuid}/emails`.
    pub fn emails(body: &[u8], admin: bool) -> Result<(), ApiError> {
        super::emails::check_body(body, admin)
    }

    /// `POST /policies` (`post`) or `PUT /policies/{id}`.
    pub fn policy(body: &[u8], post: bool) -> Result<(), ApiError> {
        super::policies::check_body(body, !post)
    }

    /// `POST /groups` (`post`) or `PUT /groups/{uuid}`.
    pub fn group(body: &[u8], post: bool) -> Result<(), ApiError> {
        super::groups::check_body(body, post)
    }

    /// `POST /tenants` (`post`) or `PUT /tenants/{uuid}`.
    pub fn tenant(body: &[u8], post: bool) -> Result<(), ApiError> {
        super::tenants::check_body(body, post)
    }

    /// `PUT /backends/ldap`.
    pub fn ldap_config(body: &[u8]) -> Result<(), ApiError> {
        super::ldap_config::check_body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::body_check;
    use super::routes::Acl;

    /// The declared routes and the API description cannot drift: every declared route is an
    /// operation of `api.yml` with the same required ACL (`x-required-acl`, absent for a public
    /// route; with `x-required-acl-by-slug` for a route naming its object by uuid or slug).
    #[test]
    fn routes_match_the_api_description() {
        let spec: serde_json::Value =
            serde_yaml_ng::from_str(include_str!("api.yml")).expect("api.yml parses");
        let table = super::route_table();
        assert!(!table.is_empty());
        let mut seen = std::collections::BTreeSet::new();
        for route in table {
            let method = route.method.as_str().to_ascii_lowercase();
            assert!(
                seen.insert((method.clone(), route.path)),
                "{method} {} declared twice",
                route.path
            );
            let operation = &spec["paths"][route.path][&method];
            assert!(
                operation.is_object(),
                "{method} {} is not described in api.yml",
                route.path
            );
            let described = (
                operation["x-required-acl"].as_str(),
                operation["x-required-acl-by-slug"].as_str(),
            );
            let declared = match route.acl {
                Acl::Public => (None, None),
                Acl::Required(t) | Acl::QueryToken(t) => (Some(t), None),
                Acl::UuidOrSlug {
                    param,
                    by_uuid,
                    by_slug,
                } => {
                    assert!(
                        route.path.contains(&format!("{{{param}}}")),
                        "{method} {}: no {{{param}}} segment",
                        route.path
                    );
                    (Some(by_uuid), Some(by_slug))
                }
            };
            assert_eq!(
                described, declared,
                "{method} {}: required ACL in api.yml differs from the route's",
                route.path
            );
        }
    }

    #[test]
    fn body_checks_accept_valid_bodies_and_answer_400_otherwise() {
        for post in [true, false] {
            assert!(body_check::user(br#"{"username": "bob", "password": "pw"}"#, post).is_ok());
            assert!(body_check::policy(br#"{"name": "p", "acl": ["a.#"]}"#, post).is_ok());
            assert!(body_check::group(br#"{"name": "g"}"#, post).is_ok());
            assert!(body_check::tenant(br#"{"name": "t"}"#, post).is_ok());
            for invalid in [&b"{"[..], b"[1]", br#"{"name": 3, "username": 3}"#] {
                for checked in [
                    body_check::user(invalid, post),
                    body_check::policy(invalid, post),
                    body_check::group(invalid, post),
                    body_check::tenant(invalid, post),
                ] {
                    assert_eq!(checked.unwrap_err().status().as_u16(), 400);
                }
            }
        }
    }
}
