//! `GET /0.1/api/api.yml`: the OpenAPI description of this API.

use actix_web::http::Method;
use actix_web::HttpResponse;

use super::routes::{Acl, Router};

/// The description, kept in step with the routes by `routes_match_the_api_description` (in
/// http/mod.rs) and tests/tests/api_spec.rs.
const API_YML: &str = include_str!("api.yml");

pub fn routes(r: &mut Router) {
    r.resource("/api/api.yml")
        .route(Method::GET, Acl::Public, spec)
        .without_default();
}

async fn spec() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/x-yaml")
        .body(API_YML)
}
