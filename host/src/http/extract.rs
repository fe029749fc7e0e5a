//! Request extractors shared by the resources: the authorized caller ([`Caller`], whose required
//! ACL is declared next to its route, see [`super::routes`]), typed path ids ([`Id`]) and the
//! raw body under the size limit ([`RawBody`]).
//!
//! Extractors run in the order of the handler's arguments, and the first refusal answers: put
//! the path ids first (a malformed id is the router's 404), then the caller (401), then the body
//! (413). Decoding and validating the body, and the caller's tenant scope ([`Caller::scope`]), come
//! inside the handler, at the step where the original checks them.
//!
//! actix polls a handler's extractors together, in argument order, and answers the first
//! refusal it meets: an extractor that refuses at once (a malformed [`Id`]) answers before a
//! [`Caller`] still waiting for its token, wherever it stands. Where the original checks the
//! token before the path, read the ids in the handler ([`Id::from_path`]) once the caller is
//! known.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde_json::{json, Value};
use wazo_auth_core::acl::CompiledAcl;
use wazo_auth_core::ids;
use wazo_auth_core::scope::{self, Scope, ScopeError};
use wazo_auth_core::tokens::{self, Token};

use super::error::ApiError;
use super::routes::{Acl, RouteAcls};
use super::State;

// ------------------------------------------------------------------------------------------------
// Path ids
// ------------------------------------------------------------------------------------------------

/// A typed id that can be read from its route parameter.
pub trait PathId: From<uuid::Uuid> {
    /// The parameter's name in route paths.
    const PARAM: &'static str;
}

macro_rules! path_ids {
    ($($t:ident),*) => {$(
        impl PathId for ids::$t {
            const PARAM: &'static str = ids::$t::PATH_PARAM;
        }
    )*};
}
path_ids!(
    UserUuid,
    TenantUuid,
    PolicyUuid,
    GroupUuid,
    SessionUuid,
    EmailUuid
);

/// A UUID path parameter: a canonical hyphenated UUID (any case), as the original's `uuid`
/// converter accepts; anything else is the router's 404 (no route matches).
pub struct Id<T>(pub T);

impl<T> Deref for Id<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: PathId> Id<T> {
    /// Reads the id from the request's path, in a handler: for the routes whose original checks
    /// the token before the path (an extractor refusing at once would answer before a `Caller`
    /// still waiting for its token, see the module's documentation).
    pub fn from_path(req: &HttpRequest) -> Result<Id<T>, ApiError> {
        req.match_info()
            .get(T::PARAM)
            .and_then(ids::parse_canonical)
            .map(|u| Id(T::from(u)))
            .ok_or_else(ApiError::route_not_found)
    }
}

impl<T: PathId> FromRequest for Id<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Id::from_path(req))
    }
}

// ------------------------------------------------------------------------------------------------
// Body
// ------------------------------------------------------------------------------------------------

/// The request body, read when the handler asks ([`RawBody::read`]): whole, up to
/// `max_body_bytes` (a larger one is a 413). Reading it is a step of the handler, at the place
/// the original reads it, so that a 401 or 404 found before still answers first (extractors are
/// polled together: a body read by an extractor could answer 413 before the caller's 401).
pub struct RawBody {
    payload: Payload,
    limit: usize,
}

impl RawBody {
    pub async fn read(self) -> Result<Vec<u8>, ApiError> {
        read_limited(self.payload, self.limit).await
    }
}

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<State>()
            .map(|s| s.settings.max_body_bytes)
            .unwrap_or(0);
        std::future::ready(Ok(RawBody {
            payload: payload.take(),
            limit,
        }))
    }
}

/// Reads a body of at most `limit` bytes; a larger one is a 413, a broken one a 400, one not
/// received in time a 408 (see [`super::deadline`]).
pub async fn read_limited(
    mut payload: impl futures_util::Stream<Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>>
        + Unpin,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if super::deadline::passed(&e) {
                return super::deadline::request_timeout();
            }
            ApiError::plain(
                StatusCode::BAD_REQUEST,
                format!("Invalid request body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body too large (limit {limit} bytes)"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

// ------------------------------------------------------------------------------------------------
// The caller
// ------------------------------------------------------------------------------------------------

/// A caller whose token grants the route's required ACL (declared with the route; its
/// `{param}` placeholders are filled with the path values, every `.` in a value becoming `_`).
/// No token, an unknown or expired one, or a missing permission: 401 `unauthorized`.
pub struct Caller {
    pub token: Token,
    /// The token id as sent (echoed in error details, never logged).
    pub token_id: String,
    pub acl: Arc<CompiledAcl>,
    /// The `Wazo-Tenant` header, when sent.
    tenant_header: Option<String>,
    state: State,
}

/// Formats a required-ACL template with path values: every `.` in a value becomes `_`; a value
/// that is a UUID is written lower-case.
pub fn required_acl(template: &str, params: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in params {
        let placeholder = format!("{{{name}}}");
        if !out.contains(&placeholder) {
            continue;
        }
        let value = match ids::parse_canonical(value) {
            Some(u) => u.hyphenated().to_string(),
            None => value.replace('.', "_"),
        };
        out = out.replace(&placeholder, &value);
    }
    out
}

/// The first value of query parameter `name`, decoded.
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The ACL a declared route requires of `req` (`None`: a public route).
fn route_acl(acl: Acl, req: &HttpRequest) -> Option<String> {
    let mut params: Vec<(&str, &str)> = req.match_info().iter().collect();
    match acl {
        Acl::Public => None,
        Acl::Required(template) => Some(required_acl(template, &params)),
        Acl::QueryToken(template) => {
            let query: Vec<(String, String)> =
                form_urlencoded::parse(req.query_string().as_bytes())
                    .into_owned()
                    .collect();
            params.extend(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            Some(required_acl(template, &params))
        }
        Acl::UuidOrSlug {
            param,
            by_uuid,
            by_slug,
        } => {
            let value = decoded_param(req, param);
            let (template, name) = match ids::parse_canonical(&value) {
                Some(_) => (by_uuid, format!("{param}_uuid")),
                None => (by_slug, format!("{param}_slug")),
            };
            // Filled last, as the segment may hold anything (even `{...}`).
            params.push((&name, &value));
            Some(required_acl(template, &params))
        }
    }
}

/// A path parameter, fully percent-decoded (the router leaves `%25`, `%2F` and `%2B` encoded);
/// invalid UTF-8 is replaced.
pub fn decoded_param(req: &HttpRequest, name: &str) -> String {
    let raw = req.match_info().get(name).unwrap_or_default();
    if !raw.contains('%') {
        return raw.to_string();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<State>().cloned() else {
                return Err(ApiError::unavailable("no application state", "Caller"));
            };
            let method = if req.method() == Method::HEAD {
                Method::GET
            } else {
                req.method().clone()
            };
            let declared = req
                .app_data::<RouteAcls>()
                .and_then(|acls| acls.get(&method));
            let Some(required) = declared.and_then(|acl| route_acl(acl, &req)) else {
                // A route that takes a `Caller` without declaring its ACL: refuse, never open.
                return Err(ApiError::unavailable(
                    "a route declares no required ACL",
                    req.match_pattern().unwrap_or_default(),
                ));
            };
            let header = || header_str(&req, "X-Auth-Token").unwrap_or("").to_string();
            let token_id = match declared {
                Some(Acl::QueryToken(_)) => query_param(&req, "token")
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(header),
                _ => header(),
            };
            Caller::authorize_token(state, &req, &required, token_id).await
        })
    }
}

impl Caller {
    /// Checks the token of `req` against `required` (already formatted).
    pub async fn authorize(
        state: State,
        req: &HttpRequest,
        required: &str,
    ) -> Result<Caller, ApiError> {
        let token_id = header_str(req, "X-Auth-Token").unwrap_or("").to_string();
        Caller::authorize_token(state, req, required, token_id).await
    }

    /// Checks `token_id` against `required` (already formatted).
    pub async fn authorize_token(
        state: State,
        req: &HttpRequest,
        required: &str,
        token_id: String,
    ) -> Result<Caller, ApiError> {
        let found = match ids::parse_canonical(&token_id) {
            Some(id) => state.tokens.get(&state.storage, &id, tokens::now()).await?,
            None => None,
        };
        let tenant_header = header_str(req, "Wazo-Tenant").map(str::to_string);
        let Some(entry) = found else {
            let mut details = json!({"invalid_token": token_id, "reason": "not_found_or_expired"});
            if !required.is_empty() {
                details["required_access"] = Value::from(required);
            }
            return Err(ApiError::unauthorized(details));
        };
        if !entry.acl.matches(required) {
            return Err(ApiError::unauthorized(json!({
                "invalid_token": token_id,
                "reason": "missing_permission_or_invalid_tenant",
                "required_access": required,
                "tenant_uuid": tenant_header,
            })));
        }
        Ok(Caller {
            token: entry.token.clone(),
            token_id,
            acl: entry.acl.clone(),
            tenant_header,
            state,
        })
    }

    /// The user uuid of the token (`metadata.uuid`), if it is a user token.
    pub fn user_uuid(&self) -> Option<String> {
        match self.token.metadata.get("uuid") {
            Some(Value::String(uuid)) => Some(uuid),
            _ => None,
        }
    }

    /// The caller's tenant scope ([`scope::decide`], the one decision): the tenant of its token,
    /// or the one `Wazo-Tenant` selects among it and its descendants (401
    /// `unauthorized-tenant` otherwise); a token whose user was deleted is 404 unknown-user.
    pub async fn scope(&self) -> Result<Scope, ApiError> {
        scope::decide(
            &self.state.storage,
            &self.token,
            self.tenant_header.as_deref(),
        )
        .await
        .map_err(scope_error)
    }

    /// The original's `required_top_tenant` (`/config`): the token's own tenant
    /// (`metadata.tenant_uuid`, `Wazo-Tenant` ignored) must be the top tenant, else 401
    /// `unauthorized` with details `{"invalid_token"}`.
    pub async fn require_top_tenant(&self) -> Result<(), ApiError> {
        let own = self.token.metadata.get("tenant_uuid");
        let own = own.as_ref().and_then(Value::as_str);
        let top = self.state.storage.top_tenant_uuid().await?;
        match (
            own.and_then(ids::parse_canonical),
            ids::parse_canonical(&top),
        ) {
            (Some(own), Some(top)) if own == top => Ok(()),
            _ => Err(ApiError::unauthorized(
                json!({ "invalid_token": self.token_id }),
            )),
        }
    }

    /// [`Caller::scope`] without looking at `Wazo-Tenant`: the token's own tenant and its
    /// descendants, for the routes the original does not scope by the header (the password
    /// change, the tenant domains).
    pub async fn own_scope(&self) -> Result<Scope, ApiError> {
        scope::decide(&self.state.storage, &self.token, None)
            .await
            .map_err(scope_error)
    }
}

fn scope_error(e: ScopeError) -> ApiError {
    match e {
        ScopeError::UnknownUser(user) => ApiError::unknown("user", "users", &user),
        ScopeError::UnauthorizedTenant(tenant) => ApiError::api(
            StatusCode::UNAUTHORIZED,
            "Unauthorized tenant",
            "unauthorized-tenant",
            json!({ "tenant_uuid": tenant }),
            None,
        ),
        ScopeError::Storage(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_acl_replaces_dots_in_values_and_lowers_uuids() {
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
        assert_eq!(
            required_acl(
                "auth.groups.{group_uuid}.read",
                &[("group_uuid", "0123ABCD-1111-2222-3333-444455556666")]
            ),
            "auth.groups.0123abcd-1111-2222-3333-444455556666.read"
        );
    }

    #[test]
    fn uuid_or_slug_routes_require_the_acl_of_the_form_used() {
        let by_slug = Acl::UuidOrSlug {
            param: "policy",
            by_uuid: "auth.users.{user_uuid}.policies.{policy_uuid}.create",
            by_slug: "auth.users.{user_uuid}.policies.{policy_slug}.create",
        };
        let user = "0123ABCD-1111-2222-3333-444455556666";
        let required = |policy: &str| {
            let req = actix_web::test::TestRequest::default()
                .param("user_uuid", user)
                .param("policy", policy.to_string())
                .to_http_request();
            route_acl(by_slug, &req)
        };
        assert_eq!(
            required("AAAAAAAA-1111-2222-3333-444455556666").as_deref(),
            Some(
                "auth.users.0123abcd-1111-2222-3333-444455556666.policies.\
                 aaaaaaaa-1111-2222-3333-444455556666.create"
            )
        );
        assert_eq!(
            required("my.slug%2Fx").as_deref(),
            Some("auth.users.0123abcd-1111-2222-3333-444455556666.policies.my_slug/x.create")
        );
        // A slug that looks like a placeholder stays as it is.
        assert_eq!(
            required("{user_uuid}").as_deref(),
            Some("auth.users.0123abcd-1111-2222-3333-444455556666.policies.{user_uuid}.create")
        );
        let req = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(route_acl(Acl::Public, &req), None);
    }
}
