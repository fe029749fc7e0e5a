//! `GET /0.1/backends` and `HEAD /0.1/status`.

use actix_web::HttpResponse;
use serde_json::json;

use super::State;

pub async fn backends(state: State) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": state.plugins.enabled_backend_names() }))
}

/// 200 when the database answers and every loaded backend reports ok; 503 otherwise (the
/// reasons are logged, never sent).
pub async fn status(state: State) -> HttpResponse {
    let mut healthy = true;
    if let Err(e) = state.storage.ping().await {
        log::warn!("status: database unavailable: {e}");
        healthy = false;
    }
    for backend in state.plugins.loaded_backends() {
        let outcome = backend
            .call(state.settings.plugin_call_timeout, |b| b.status())
            .await;
        match outcome {
            Ok(text) => {
                let v: serde_json::Value =
                    serde_json::from_str(text.as_str()).unwrap_or(json!({"status": "fail"}));
                if v.get("status").and_then(|s| s.as_str()) != Some("ok") {
                    log::warn!("status: backend {} reports {}", backend.name, v);
                    healthy = false;
                }
            }
            Err(e) => {
                log::warn!("status: backend {} status call failed: {e}", backend.name);
                healthy = false;
            }
        }
    }
    if healthy {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::ServiceUnavailable().finish()
    }
}
