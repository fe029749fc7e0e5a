//! The description of this API: `GET /0.1/api/api.yml` in Swagger 2.0, as the original serves it
//! (with a reverse proxy's `X-Script-Name` prefix in `basePath`), and `GET /0.1/api/openapi.yml`
//! in OpenAPI 3.0, the form it is written in.

use std::sync::OnceLock;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};
use serde_yaml_ng::Value;

use super::routes::{Acl, Router};
use super::swagger;

/// The description, kept in step with the routes by `routes_match_the_api_description` (in
/// http/mod.rs) and tests/tests/api_spec.rs.
const API_YML: &str = include_str!("api.yml");

pub fn routes(r: &mut Router) {
    r.resource("/api/api.yml")
        .route(Method::GET, Acl::Public, swagger_spec)
        .without_default();
    r.resource("/api/openapi.yml")
        .route(Method::GET, Acl::Public, openapi_spec)
        .without_default();
}

/// The OpenAPI 3.0 description, parsed once.
fn openapi() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| serde_yaml_ng::from_str(API_YML).unwrap_or(Value::Null))
}

fn yaml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/x-yaml")
        .body(body)
}

/// The description with the plugins' sub-routes (plugin-api 1.3) merged into `paths`; `None`
/// when no loaded plugin documents any (the description as written).
fn with_plugin_paths(req: &HttpRequest) -> Option<Value> {
    let state = req.app_data::<super::State>()?;
    let fragments = state.plugins.sub_route_paths();
    if fragments.is_empty() {
        return None;
    }
    let mut doc = openapi().clone();
    let paths = doc.get_mut("paths").and_then(Value::as_mapping_mut)?;
    for (path, item) in fragments {
        match serde_yaml_ng::to_value(&item) {
            // A plugin never replaces a path of the server's own description.
            Ok(v) if !paths.contains_key(path.as_str()) => {
                paths.insert(Value::String(path), v);
            }
            Ok(_) => log::warn!("API description: plugin path {path} already documented"),
            Err(e) => log::error!("API description: plugin path {path} left out: {e}"),
        }
    }
    Some(doc)
}

fn render(doc: &Value) -> HttpResponse {
    match serde_yaml_ng::to_string(doc) {
        Ok(body) => yaml(body),
        Err(e) => {
            log::error!("cannot render the API description: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn swagger_spec(req: HttpRequest) -> HttpResponse {
    let prefix = req
        .headers()
        .get("X-Script-Name")
        .and_then(|v| v.to_str().ok());
    let merged = with_plugin_paths(&req);
    render(&swagger::convert(
        merged.as_ref().unwrap_or(openapi()),
        prefix,
    ))
}

async fn openapi_spec(req: HttpRequest) -> HttpResponse {
    match with_plugin_paths(&req) {
        Some(doc) => render(&doc),
        None => yaml(API_YML.to_string()),
    }
}
