//! The LDAP configuration of the scoping tenant (spec management §13): `GET`, `PUT` and
//! `DELETE /backends/ldap`.
//!
//! Differences with the original, on purpose:
//! * `bind_password` is write-only: never in an answer, and stored sealed with the keyring (the
//!   original keeps it in clear);
//! * a string holding NUL, and a `port` outside PostgreSQL's `integer`, are a 400 naming the
//!   field instead of a database error (500).

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};
use wazo_auth_core::ldap::{LdapConfig, LdapConfigChange};
use wazo_auth_core::services::ldap as service;

use super::error::ApiError;
use super::extract::{Caller, RawBody};
use super::routes::{acl, Router};
use super::validate::{self, Invalid, Presence, Raw};
use super::State;

pub fn routes(r: &mut Router) {
    r.resource("/backends/ldap")
        .get(acl("auth.backends.ldap.read"), get)
        .put(acl("auth.backends.ldap.update"), put)
        .delete(acl("auth.backends.ldap.delete"), delete);
}

const SECURITY_CHOICES: &[&str] = &["ldaps", "tls"];

/// The answer: every field of a configuration, all null when there is none.
fn render(config: Option<&LdapConfig>) -> Value {
    match config {
        None => json!({
            "tenant_uuid": null, "host": null, "port": null, "protocol_version": null,
            "protocol_security": null, "bind_dn": null, "user_base_dn": null,
            "user_login_attribute": null, "user_email_attribute": null, "search_filters": null,
        }),
        Some(c) => json!({
            "tenant_uuid": c.tenant_uuid,
            "host": c.host,
            "port": c.port,
            "protocol_version": c.protocol_version,
            "protocol_security": c.protocol_security,
            "bind_dn": c.bind_dn,
            "user_base_dn": c.user_base_dn,
            "user_login_attribute": c.user_login_attribute,
            "user_email_attribute": c.user_email_attribute,
            "search_filters": c.search_filters,
        }),
    }
}

/// An optional, nullable string field of the update: missing keeps the stored value (`None`).
fn kept_or(
    body: &Map<String, Value>,
    field: &str,
    max: Option<usize>,
) -> Result<Option<Option<String>>, Invalid> {
    let value = validate::string(body, field, Presence::Nullable, 0, max)?;
    Ok(match validate::raw(body, field) {
        Raw::Missing => None,
        _ => Some(value),
    })
}

/// The fields of a `PUT` body, checked in the original schema's order (its first failing field
/// is the one named).
fn fields(body: &Map<String, Value>) -> Result<LdapConfigChange, Invalid> {
    let host = validate::string(body, "host", Presence::Required, 0, Some(512))?;
    let port = validate::integer(body, "port", Presence::Required)?;
    let port = match port.map(i32::try_from) {
        Some(Ok(p)) => p,
        _ => return Err(Invalid::new("port", "Out of range.", "range", json!({}))),
    };
    let protocol_version = match validate::integer(body, "protocol_version", Presence::Optional)? {
        None => 3,
        Some(v @ 2..=3) => v as i16,
        Some(_) => {
            return Err(Invalid::new(
                "protocol_version",
                "Must be greater than or equal to 2 and less than or equal to 3.",
                "range",
                json!({"min": 2, "max": 3}),
            ))
        }
    };
    let protocol_security = kept_or(body, "protocol_security", None)?;
    if let Some(Some(s)) = &protocol_security {
        if !SECURITY_CHOICES.contains(&s.as_str()) {
            return Err(Invalid::one_of("protocol_security", SECURITY_CHOICES));
        }
    }
    let bind_dn = kept_or(body, "bind_dn", Some(256))?;
    let user_base_dn = validate::string(body, "user_base_dn", Presence::Required, 0, Some(256))?;
    let user_login_attribute = validate::string(
        body,
        "user_login_attribute",
        Presence::Required,
        0,
        Some(64),
    )?;
    let user_email_attribute = validate::string(
        body,
        "user_email_attribute",
        Presence::Required,
        0,
        Some(64),
    )?;
    let search_filters = kept_or(body, "search_filters", None)?;
    let bind_password = kept_or(body, "bind_password", None)?;
    Ok(LdapConfigChange {
        host: host.unwrap_or_default(),
        port,
        protocol_version,
        protocol_security,
        bind_dn,
        bind_password,
        user_base_dn: user_base_dn.unwrap_or_default(),
        user_login_attribute: user_login_attribute.unwrap_or_default(),
        user_email_attribute: user_email_attribute.unwrap_or_default(),
        search_filters,
    })
}

/// Decodes and validates a `PUT` body: the decode error of the original (400
/// `{"message": "Failed to decode JSON object: ..."}`), a non-object body (`_schema`), then the
/// first failing field, in the legacy shape.
fn config_body(raw: &[u8]) -> Result<LdapConfigChange, ApiError> {
    let body = validate::decode(raw)?.ok_or_else(|| validate::field_error("_schema"))?;
    fields(&body).map_err(Invalid::into_field_error)
}

/// [`config_body`] without its result (for the fuzz targets, through [`super::body_check`]).
pub(super) fn check_body(body: &[u8]) -> Result<(), ApiError> {
    config_body(body).map(drop)
}

/// `GET /backends/ldap`: scoping tenant (401) → 200, all fields null without a configuration.
async fn get(state: State, caller: Caller) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    let config = service::get(&state.storage, &scope).await?;
    Ok(HttpResponse::Ok().json(render(config.as_ref())))
}

/// `PUT /backends/ldap`: body (413) → scoping tenant (401) → body validation (400) → created or
/// updated, 200 as stored (optional fields omitted keep their value, `protocol_version` reverts
/// to 3).
async fn put(state: State, caller: Caller, body: RawBody) -> Result<HttpResponse, ApiError> {
    let raw = body.read().await?;
    let scope = caller.scope().await?;
    let change = config_body(&raw)?;
    let config = service::put(&state.storage, &state.keyring, &scope, &change).await?;
    Ok(HttpResponse::Ok().json(render(Some(&config))))
}

/// `DELETE /backends/ldap`: scoping tenant (401) → 204, whether there was a configuration or not.
async fn delete(state: State, caller: Caller) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    service::delete(&state.storage, &scope).await?;
    Ok(HttpResponse::NoContent().finish())
}
