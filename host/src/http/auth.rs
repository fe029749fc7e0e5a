//! Authentication of protected resources (spec core §0.2, management §1.2, §1.5): the
//! `X-Auth-Token` check against the route's required ACL, and the scoping tenant
//! (`Wazo-Tenant`).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};
use wazo_auth_core::acl::CompiledAcl;
use wazo_auth_core::tokens::{self, Token};

use super::errors::{api_error, storage_unavailable, unknown_resource};
use super::request::path_uuid;
use super::State;

/// A caller whose token grants the route's ACL.
pub struct Caller {
    pub token: Token,
    /// The token id as sent (echoed in error details, never logged).
    pub token_id: String,
    pub acl: Arc<CompiledAcl>,
}

impl Caller {
    /// The user uuid of the token (`metadata.uuid`), if it is a user token.
    pub fn user_uuid(&self) -> Option<&str> {
        self.token.metadata.get("uuid").and_then(Value::as_str)
    }
}

/// Formats a required-ACL template with path values: every `.` in a value becomes `_`.
pub fn required_acl(template: &str, params: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in params {
        out = out.replace(&format!("{{{name}}}"), &value.replace('.', "_"));
    }
    out
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `X-Auth-Token` header (empty when absent).
pub fn token_header(req: &HttpRequest) -> String {
    header_str(req, "X-Auth-Token").unwrap_or("").to_string()
}

fn unauthorized(details: Value) -> HttpResponse {
    api_error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "unauthorized",
        details,
        None,
    )
}

/// Checks the token of `req` against `required` (already formatted). 401 shape B otherwise.
pub async fn authorize(
    state: &State,
    req: &HttpRequest,
    required: &str,
) -> Result<Caller, HttpResponse> {
    let token_id = token_header(req);
    let found = match path_uuid(&token_id) {
        Some(id) => state
            .tokens
            .get(&state.storage, &id, tokens::now())
            .await
            .map_err(|e| storage_unavailable("token look-up failed", e))?,
        None => None,
    };
    let Some(entry) = found else {
        let mut details = json!({"invalid_token": token_id, "reason": "not_found_or_expired"});
        if !required.is_empty() {
            details["required_access"] = Value::from(required);
        }
        return Err(unauthorized(details));
    };
    let acl = entry.acl.clone();
    let token = entry.token.clone();
    if !acl.matches(required) {
        return Err(unauthorized(json!({
            "invalid_token": token_id,
            "reason": "missing_permission_or_invalid_tenant",
            "required_access": required,
            "tenant_uuid": header_str(req, "Wazo-Tenant"),
        })));
    }
    Ok(Caller {
        token,
        token_id,
        acl,
    })
}

/// The tenant the caller's token belongs to: its user's tenant (re-read), else
/// `metadata.tenant_uuid`, else the top tenant.
pub async fn token_tenant(state: &State, caller: &Caller) -> Result<String, HttpResponse> {
    // Only a UUID can name a wazo-auth user (other backends may put anything in `uuid`).
    if let Some(user) = caller.user_uuid().filter(|u| path_uuid(u).is_some()) {
        match state.storage.user_tenant(user).await {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => {
                // A token whose user was deleted: the original answers unknown-user.
                if caller.token.auth_id == user {
                    return Err(unknown_resource("user", "users", user));
                }
            }
            Err(e) => return Err(storage_unavailable("user look-up failed", e)),
        }
    }
    if let Some(t) = caller
        .token
        .metadata
        .get("tenant_uuid")
        .and_then(Value::as_str)
    {
        return Ok(t.to_string());
    }
    state
        .storage
        .top_tenant_uuid()
        .await
        .map_err(|e| storage_unavailable("tenant look-up failed", e))
}

/// `Tenant.autodetect()`: the scoping tenant of the request. A `Wazo-Tenant` header must name the
/// caller's tenant or one of its descendants, else 401 `unauthorized-tenant`.
pub async fn scoping_tenant(
    state: &State,
    req: &HttpRequest,
    caller: &Caller,
) -> Result<String, HttpResponse> {
    let own = token_tenant(state, caller).await?;
    let Some(header) = header_str(req, "Wazo-Tenant").map(str::to_string) else {
        return Ok(own);
    };
    if header == own {
        return Ok(own);
    }
    let allowed = state
        .storage
        .is_subtenant(&header, &own)
        .await
        .map_err(|e| storage_unavailable("tenant look-up failed", e))?;
    if allowed {
        Ok(header)
    } else {
        Err(api_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized tenant",
            "unauthorized-tenant",
            json!({ "tenant_uuid": header }),
            None,
        ))
    }
}

/// The scoping tenant and every descendant (the visible tenants).
pub async fn visible_tenants(state: &State, tenant: &str) -> Result<Vec<String>, HttpResponse> {
    state
        .storage
        .tenant_and_descendants(tenant)
        .await
        .map_err(|e| storage_unavailable("tenant look-up failed", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_acl_replaces_dots_in_values() {
        assert_eq!(
            required_acl("auth.users.{user_uuid}.read", &[("user_uuid", "a.b")]),
            "auth.users.a_b.read"
        );
        assert_eq!(
            required_acl(
                "auth.policies.{p}.acl.{a}",
                &[("p", "x"), ("a", "confd.users.read")]
            ),
            "auth.policies.x.acl.confd_users_read"
        );
    }
}
