//! `GET /0.1/api/api.yml`: the OpenAPI description of this API.

use actix_web::{web, HttpResponse};

/// The description, kept in step with the routes by tests/tests/api_spec.rs.
const API_YML: &str = include_str!("api.yml");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/api.yml").route(web::get().to(spec)));
}

async fn spec() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/x-yaml")
        .body(API_YML)
}
