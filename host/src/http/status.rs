//! `GET /0.1/backends` and `HEAD /0.1/status` (public), and `GET /0.1/metrics` (see
//! `crate::telemetry::metrics`). Other methods are a JSON 405.

use actix_web::http::Method;
use actix_web::HttpResponse;
use serde_json::json;

use super::routes::{acl, Acl, Router};
use super::State;

pub fn routes(r: &mut Router) {
    r.resource("/backends")
        .route(Method::GET, Acl::Public, backends);
    r.resource("/status")
        .route(Method::HEAD, Acl::Public, status);
    r.resource("/metrics").route(
        Method::GET,
        acl(crate::telemetry::metrics::REQUIRED_ACL),
        crate::telemetry::metrics::api_metrics,
    );
}

/// The enabled backends' names.
async fn backends(state: State) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": state.plugins.enabled_backend_names() }))
}

/// 200 when the database answers, at least one backend is loaded, no enabled backend failed to
/// load, and every loaded backend reports ok; 503 otherwise, as the original answers when one of
/// its components fails (the reasons are logged, never sent). The database check is bounded by
/// `db_timeout` and each backend's by `plugin_call_timeout`; they run concurrently, so the answer
/// comes within the larger of the two even while the database is down.
///
/// During the shutdown drain (`rest_api.shutdown_drain`, on SIGTERM) the answer is 503 at once:
/// the node still serves every other request, but asks its balancer to take it out.
async fn status(state: State) -> HttpResponse {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let plugins_ok = plugins_loaded(&state);
    let database = async {
        match state.storage.ping().await {
            Ok(()) => true,
            Err(e) => {
                log::warn!("status: database unavailable: {e}");
                false
            }
        }
    };
    let backends = futures_util::future::join_all(state.plugins.loaded_backends().map(|backend| {
        let timeout = state.settings.plugin_call_timeout;
        async move {
            match backend.call(timeout, |b| b.status()).await {
                Ok(text) => {
                    let v: serde_json::Value =
                        serde_json::from_str(text.as_str()).unwrap_or(json!({"status": "fail"}));
                    if v.get("status").and_then(|s| s.as_str()) == Some("ok") {
                        true
                    } else {
                        log::warn!("status: backend {} reports {}", backend.name, v);
                        false
                    }
                }
                Err(e) => {
                    log::warn!("status: backend {} status call failed: {e}", backend.name);
                    false
                }
            }
        }
    }));
    let (database_ok, backends_ok) = futures_util::future::join(database, backends).await;
    if plugins_ok && database_ok && backends_ok.into_iter().all(|ok| ok) {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::ServiceUnavailable().finish()
    }
}

/// Whether the backends came up as configured: none failed to load, and at least one is loaded.
/// Otherwise logs why (rate-limited: health checks poll this route), in the documented form
/// `status: backend "<name>" failed to load at startup: <reason>`.
fn plugins_loaded(state: &State) -> bool {
    let mut ok = true;
    for (name, why) in state.plugins.failed_backends() {
        ok = false;
        crate::plugins::warn_rate_limited(
            &format!("status-failed:{name}"),
            format_args!("status: backend {name:?} failed to load at startup: {why}"),
        );
    }
    if state.plugins.loaded_backends().next().is_none() {
        ok = false;
        crate::plugins::warn_rate_limited(
            "status-no-backend",
            format_args!(
                "status: no backend is loaded, so no login can succeed; see the startup table"
            ),
        );
    }
    ok
}
