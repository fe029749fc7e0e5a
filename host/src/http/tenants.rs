//! The tenant resources (spec management §6, §1.5, §1.6; core §2.4, §2.5):
//! `GET|POST /tenants`, `GET|PUT|DELETE /tenants/{tenant_uuid}`,
//! `GET /tenants/{tenant_uuid}/domains`, `PUT /tenants/{tenant_uuid}/parent/{parent_tenant_uuid}`.
//! Each handler extracts, calls one service of `wazo_auth_core::services::tenants`, and renders.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::ids::TenantUuid;
use wazo_auth_core::services::tenants as service;
use wazo_auth_core::services::tenants::DeleteError;
use wazo_auth_core::tenants::{
    self, Address, ListQuery, NewTenant, Order, TenantError, TenantFields, DOMAIN_RE, SLUG_RE,
};

use super::error::ApiError;
use super::extract::{Caller, Id, PathId, RawBody};
use super::listing;
use super::routes::{acl, Router};
use super::validate::{self, Invalid, Nul, Presence};
use super::State;

const RESOURCE: &str = "tenants";
/// Most values accepted by the `uuids` list filter.
const MAX_UUIDS: usize = 25;

pub fn routes(r: &mut Router) {
    r.resource("/tenants")
        .get(acl("auth.tenants.read"), list)
        .post(acl("auth.tenants.create"), create);
    r.resource("/tenants/{tenant_uuid}")
        .get(acl("auth.tenants.{tenant_uuid}.read"), get)
        .put(acl("auth.tenants.{tenant_uuid}.update"), update)
        .delete(acl("auth.tenants.{tenant_uuid}.delete"), delete);
    r.resource("/tenants/{tenant_uuid}/domains")
        .get(acl("auth.tenants.{tenant_uuid}.domains.read"), domains);
    r.resource("/tenants/{tenant_uuid}/parent/{parent_tenant_uuid}")
        .put(
            acl("auth.tenants.{tenant_uuid}.parent.{parent_tenant_uuid}.update"),
            update_parent,
        );
}

/// The `{parent_tenant_uuid}` path parameter.
struct ParentTenant(TenantUuid);

impl From<uuid::Uuid> for ParentTenant {
    fn from(u: uuid::Uuid) -> Self {
        ParentTenant(TenantUuid::from(u))
    }
}

impl PathId for ParentTenant {
    const PARAM: &'static str = "parent_tenant_uuid";
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

fn unknown_tenant(uuid: &str) -> ApiError {
    ApiError::unknown("tenant", RESOURCE, uuid)
}

/// The answer to a storage-level tenant error.
impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> ApiError {
        match e {
            TenantError::NotFound(uuid) => unknown_tenant(&uuid),
            TenantError::SlugConflict(slug) => ApiError::api(
                StatusCode::CONFLICT,
                "Conflict detected",
                "conflict",
                json!({"slug": {
                    "constraint_id": "unique",
                    "message": format!("The slug \"{slug}\" is already used"),
                }}),
                Some(RESOURCE),
            ),
            TenantError::DomainConflict(names) => ApiError::api(
                StatusCode::CONFLICT,
                "Conflict detected",
                "conflict",
                // Hyphenated "constraint-id", as the original.
                json!({"domain_names": {
                    "constraint-id": "unique",
                    "message": format!(
                        "Domain name : \"{}\" is already in use, no duplicates allowed",
                        tenants::python_list_repr(&names)
                    ),
                }}),
                Some(RESOURCE),
            ),
            TenantError::UuidConflict(uuid) => ApiError::api(
                StatusCode::CONFLICT,
                "Tenant Conflict detected",
                "tenant-identity-conflict",
                json!({"uuid": {
                    "constraint_id": "unique",
                    "message": format!("A tenant with identity uuid=\"{uuid}\" already exists"),
                }}),
                Some(RESOURCE),
            ),
            TenantError::MasterConflict => ApiError::api(
                StatusCode::FORBIDDEN,
                "Conflict detected",
                "conflict",
                json!({"parent_uuid": {
                    "constraint_id": "unique",
                    "msg": "A master tenant already exist",
                }}),
                Some(RESOURCE),
            ),
            TenantError::UnknownContact(uuid) => ApiError::unknown("user", "users", &uuid),
            // The original builds this error with its arguments shifted (error_id = the details
            // object, details = "tenants"); this is the well-formed version.
            TenantError::HasChildren(uuid) => ApiError::api(
                StatusCode::BAD_REQUEST,
                format!(
                    "Unauthorized delete of tenant : \"{uuid}\" ; since it has at least one child"
                ),
                "tenant-has-children",
                json!({ "uuid": uuid }),
                Some(RESOURCE),
            ),
            TenantError::ParentIsDescendant { uuid, parent_uuid } => ApiError::api(
                StatusCode::CONFLICT,
                format!("Parent ({parent_uuid}) is a descendent of tenant: \"{uuid}\""),
                "conflict",
                json!({ "uuid": uuid, "parent_uuid": parent_uuid }),
                Some(RESOURCE),
            ),
            TenantError::Storage(e) => e.into(),
        }
    }
}

fn delete_error(e: DeleteError, uuid: &TenantUuid) -> ApiError {
    match e {
        DeleteError::OwnTenant => ApiError::api(
            StatusCode::FORBIDDEN,
            format!("Deleting its own tenant is forbidden: \"{uuid}\""),
            "deleting-own-tenant-forbidden",
            json!({ "tenant_uuid": uuid }),
            Some(RESOURCE),
        ),
        DeleteError::Tenant(e) => e.into(),
    }
}

// ------------------------------------------------------------------------------------------------
// Body validation (the original's TenantFullSchema / TenantPUTSchema, first failing field only)
// ------------------------------------------------------------------------------------------------

/// A nullable string of `min..=max` characters (NUL refused with the tenants' message).
fn opt_string(
    body: &Map<String, Value>,
    field: &str,
    min: usize,
    max: usize,
) -> Result<Option<String>, Invalid> {
    validate::string_with(
        body,
        field,
        Presence::Nullable,
        min,
        Some(max),
        Nul::Refused,
    )
}

/// A nullable UUID, canonical.
fn opt_uuid(body: &Map<String, Value>, field: &str) -> Result<Option<String>, Invalid> {
    Ok(validate::uuid(body, field, Presence::Nullable)?.map(|u| u.hyphenated().to_string()))
}

/// `domain_names`: missing is empty; each item a valid domain name; deduplicated and sorted.
fn domain_names(body: &Map<String, Value>) -> Result<Vec<String>, Invalid> {
    let field = "domain_names";
    let Some(items) = validate::list(body, field, Presence::Optional)? else {
        return Ok(Vec::new());
    };
    let mut names = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}.{i}");
        match item {
            Value::Null => return Err(Invalid::not_null(path)),
            Value::String(s) if tenants::is_valid_domain_name(s) => names.push(s.clone()),
            Value::String(_) => return Err(Invalid::regex(path, DOMAIN_RE)),
            _ => return Err(Invalid::not_string(path)),
        }
    }
    Ok(tenants::normalize_domain_names(names))
}

/// `address`: missing or Python-falsy is the empty address.
fn address(body: &Map<String, Value>) -> Result<Address, Invalid> {
    let field = "address";
    let Some(fields) = validate::nested(body, field, Presence::Optional)? else {
        return Ok(Address::default());
    };
    let line =
        |name: &str, max: usize| opt_string(&fields, name, 1, max).map_err(|e| e.under(field));
    Ok(Address {
        line_1: line("line_1", 256)?,
        line_2: line("line_2", 256)?,
        city: line("city", 128)?,
        state: line("state", 128)?,
        country: line("country", 128)?,
        zip_code: line("zip_code", 16)?,
    })
}

/// The fields of a body in schema order; `slug` is only read on POST (`with_slug`; PUT ignores
/// it), `uuid` is validated on both but only used on POST.
fn fields(body: &Map<String, Value>, with_slug: bool) -> Result<NewTenant, Invalid> {
    let uuid = opt_uuid(body, "uuid")?;
    let name = opt_string(body, "name", 1, 128)?;
    let slug = if with_slug {
        // NUL fails the pattern.
        let slug = validate::string_with(
            body,
            "slug",
            Presence::Nullable,
            1,
            Some(tenants::SLUG_MAX_CHARS),
            Nul::Kept,
        )?;
        if slug.as_deref().is_some_and(|s| !tenants::is_valid_slug(s)) {
            return Err(Invalid::regex("slug", SLUG_RE));
        }
        slug
    } else {
        None
    };
    let contact = opt_uuid(body, "contact")?;
    let phone = opt_string(body, "phone", 1, 32)?;
    // Checked against the enabled methods afterwards (NUL never matches one).
    let default_authentication_method = validate::string_with(
        body,
        "default_authentication_method",
        Presence::Optional,
        0,
        None,
        Nul::Kept,
    )?
    .unwrap_or_else(|| "native".to_string());
    let domain_names = domain_names(body)?;
    let address = address(body)?;
    Ok(NewTenant {
        uuid,
        slug,
        fields: TenantFields {
            name,
            contact,
            phone,
            default_authentication_method,
            domain_names,
            address,
        },
    })
}

/// Decodes and validates a POST (`with_slug`) or PUT body: the decode error of the original
/// (400 `{"message": "Failed to decode JSON object: ..."}`), a non-object (400 invalid-data
/// `_schema`), then the first failing field. The authentication method is checked apart
/// ([`known_auth_method`]).
fn tenant_body(raw: &[u8], with_slug: bool) -> Result<NewTenant, ApiError> {
    fields(&validate::object(raw, RESOURCE)?, with_slug).map_err(|e| e.into_error(RESOURCE))
}

/// [`tenant_body`] without its result (for the fuzz targets, through [`super::body_check`]).
pub(super) fn check_body(body: &[u8], with_slug: bool) -> Result<(), ApiError> {
    tenant_body(body, with_slug).map(drop)
}

/// A valid body whose `default_authentication_method` is one of the configured methods.
fn known_auth_method(state: &State, raw: &[u8], with_slug: bool) -> Result<NewTenant, ApiError> {
    let body = tenant_body(raw, with_slug)?;
    let method = &body.fields.default_authentication_method;
    if !state.settings.idp_types.contains(method) {
        return Err(ApiError::api(
            StatusCode::BAD_REQUEST,
            format!("Invalid default authentication method {method}"),
            "invalid-data",
            json!({ "default_authentication_method": method }),
            Some(RESOURCE),
        ));
    }
    Ok(body)
}

// ------------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------------

/// `GET /tenants`: scoping tenant (401) → list params (400) → at most 25 `uuids` (400) → the
/// whole subtree of the scoping tenant, filtered.
async fn list(state: State, req: HttpRequest, caller: Caller) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    let params = listing::parse(&req, &["name", "slug"], "name")?;
    let uuids = params.all_values.get("uuids").cloned();
    if uuids.as_ref().is_some_and(|u| u.len() > MAX_UUIDS) {
        // The original's marshmallow error dict is the message.
        return Err(ApiError::api(
            StatusCode::BAD_REQUEST,
            json!({"uuids": [{
                "constraint_id": "length",
                "constraint": {"min": null, "max": MAX_UUIDS},
                "message": format!("Longer than maximum length {MAX_UUIDS}."),
            }]}),
            "invalid-list-param",
            json!({}),
            Some("users"),
        ));
    }
    let filter = |name: &str| params.filter(name).map(str::to_string);
    let query = ListQuery {
        search: params.search.clone(),
        uuid: filter("uuid"),
        uuids,
        name: filter("name"),
        slug: filter("slug"),
        domain_name: filter("domain_name"),
        order: if params.order == "slug" {
            Order::Slug
        } else {
            Order::Name
        },
        descending: params.descending,
        limit: params.limit,
        offset: params.offset,
    };
    let found = service::list(&state.storage, &scope, &query).await?;
    let items: Vec<Value> = found.items.iter().map(|t| t.to_json()).collect();
    Ok(HttpResponse::Ok().json(json!({
        "total": found.total,
        "filtered": found.filtered,
        "items": items,
    })))
}

/// `POST /tenants`: scoping tenant (401) → body (400) → authentication method (400) → create
/// a child of the scoping tenant (403 own uuid, 404 unknown contact, 409) → 200.
async fn create(state: State, caller: Caller, body: RawBody) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    let new = known_auth_method(&state, &body.read().await?, true)?;
    let tenant = service::create(
        &state.storage,
        &scope,
        &new,
        &state.settings.tenant_defaults,
    )
    .await?;
    Ok(HttpResponse::Ok().json(tenant.to_json()))
}

/// `GET /tenants/{t}`: scoping tenant (401) → 404 unless visible from it.
async fn get(
    state: State,
    tenant: Id<TenantUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    match service::get(&state.storage, &scope, *tenant).await? {
        Some(t) => Ok(HttpResponse::Ok().json(t.to_json())),
        None => Err(unknown_tenant(&tenant.text())),
    }
}

/// `PUT /tenants/{t}`: scoping tenant (401) → body (400) → authentication method (400) →
/// visible (404) → unknown contact (404) → domain names used elsewhere (409) → 200. A full
/// replacement (omitted fields take their defaults); `slug` and `uuid` are ignored.
async fn update(
    state: State,
    tenant: Id<TenantUuid>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    let body = known_auth_method(&state, &body.read().await?, false)?;
    let updated = service::update(&state.storage, &scope, *tenant, &body.fields).await?;
    Ok(HttpResponse::Ok().json(updated.to_json()))
}

/// `DELETE /tenants/{t}`: scoping tenant (401) → never the scoping tenant itself (403) →
/// visible (404) → never a tenant with children (400) → 204.
async fn delete(
    state: State,
    tenant: Id<TenantUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    service::delete(&state.storage, &scope, *tenant)
        .await
        .map_err(|e| delete_error(e, &tenant))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /tenants/{t}/domains`: the token's own scope (`Wazo-Tenant` is not looked at, as the
/// original, which does not scope this route at all) → 404 unless the tenant is in it.
async fn domains(
    state: State,
    tenant: Id<TenantUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.own_scope().await?;
    let Some(domains) = service::domains(&state.storage, &scope, *tenant).await? else {
        return Err(unknown_tenant(&tenant.text()));
    };
    let items: Vec<Value> = domains
        .iter()
        .map(|(name, uuid)| json!({"name": name, "uuid": uuid}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"total": items.len(), "items": items})))
}

/// `PUT /tenants/{t}/parent/{p}`: scoping tenant (401) → tenant visible (404) → parent visible
/// (404) → parent not the tenant or below it (409) → 204.
async fn update_parent(
    state: State,
    tenant: Id<TenantUuid>,
    parent: Id<ParentTenant>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    service::move_under(&state.storage, &scope, *tenant, parent.0 .0).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_body(v: Value, with_slug: bool) -> Result<NewTenant, Invalid> {
        fields(v.as_object().unwrap(), with_slug)
    }

    fn load(v: Value, with_slug: bool) -> Result<TenantFields, Invalid> {
        load_body(v, with_slug).map(|n| n.fields)
    }

    fn err_path(v: Value) -> String {
        load(v, true).unwrap_err().field
    }

    #[test]
    fn defaults_and_normalisation() {
        let f = load(json!({}), true).unwrap();
        assert_eq!(f, TenantFields::default());
        let f = load(
            json!({"domain_names": ["b.io", "a.io", "b.io"], "address": false, "name": null}),
            true,
        )
        .unwrap();
        assert_eq!(f.domain_names, vec!["a.io".to_string(), "b.io".to_string()]);
        assert_eq!(f.address, Address::default());
        let NewTenant { uuid, slug, .. } = load_body(
            json!({"uuid": "{6668CA15-6D9E-4000-B2EC-731BC7316767}", "slug": "a_B"}),
            true,
        )
        .unwrap();
        assert_eq!(
            uuid.as_deref(),
            Some("6668ca15-6d9e-4000-b2ec-731bc7316767")
        );
        assert_eq!(slug.as_deref(), Some("a_B"));
        // PUT ignores the slug (even an invalid one) but validates the uuid.
        assert!(load(json!({"slug": 42}), false).is_ok());
        assert_eq!(
            load(json!({"uuid": "nope"}), false).unwrap_err().field,
            "uuid"
        );
    }

    #[test]
    fn first_failing_field_in_schema_order() {
        assert_eq!(err_path(json!({"name": false, "uuid": 1})), "uuid");
        assert_eq!(err_path(json!({"phone": "", "name": ""})), "name");
        assert_eq!(err_path(json!({"slug": "", "contact": "x"})), "slug");
        assert_eq!(
            err_path(json!({"address": {"zip_code": "", "state": ""}})),
            "address.state"
        );
        assert_eq!(
            err_path(json!({"domain_names": ["a.io", "wazo"]})),
            "domain_names.1"
        );
        assert_eq!(err_path(json!({"domain_names": [null]})), "domain_names.0");
        assert_eq!(err_path(json!({"address": "x"})), "address._schema");
        assert_eq!(err_path(json!({"address": null})), "address");
        assert_eq!(
            err_path(json!({"default_authentication_method": null})),
            "default_authentication_method"
        );
        assert_eq!(err_path(json!({"name": "a\u{0}b"})), "name");
    }

    fn body_err(raw: &str, with_slug: bool) -> Value {
        let e = tenant_body(raw.as_bytes(), with_slug).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{raw}");
        e.body()
    }

    #[test]
    fn error_bodies() {
        let e = body_err(r#"{"name": "a\u0000b"}"#, true);
        assert_eq!(e["message"], "String must not contain NUL characters.");
        assert_eq!(
            e["details"]["name"],
            json!({
                "message": "String must not contain NUL characters.",
                "constraint_id": "type",
                "constraint": "string",
            })
        );
        assert_eq!(e["resource"], "tenants");
        let e = body_err(r#"{"address": {"city": "a\u0000b"}}"#, false);
        assert_eq!(
            e["details"]["address"]["city"]["message"],
            "String must not contain NUL characters."
        );
        let e = body_err(r#"{"address": {"zip_code": ""}}"#, false);
        assert_eq!(e["message"], "Length must be between 1 and 16.");
        assert_eq!(
            e["details"]["address"]["zip_code"]["constraint"],
            json!({"min": 1, "max": 16})
        );
        let e = body_err(r#"{"address": [1]}"#, true);
        assert_eq!(e["message"], "Invalid input type.");
        assert_eq!(
            e["details"],
            json!({"address": {"_schema": {"message": "Invalid input type."}}})
        );
        let e = body_err("[1]", true);
        assert_eq!(
            e["details"],
            json!({"_schema": {"message": "Invalid input type."}})
        );
        // NUL in a slug fails its pattern; in a domain name, the domain pattern.
        let e = body_err(r#"{"slug": "a\u0000b"}"#, true);
        assert_eq!(e["details"]["slug"]["constraint"], SLUG_RE);
        let e = body_err(r#"{"domain_names": ["a\u0000.io"]}"#, true);
        assert_eq!(e["details"]["domain_names"]["0"]["constraint"], DOMAIN_RE);
        let e = body_err(r#"{"domain_names": "a.io"}"#, true);
        assert_eq!(e["message"], "Not a valid list.");
        let e = body_err(r#"{"contact": 3}"#, true);
        assert_eq!(e["details"]["contact"]["constraint"], "uuid");
        // An authentication method holding NUL passes validation (no configured method
        // matches it later).
        assert!(tenant_body(br#"{"default_authentication_method": "a\u0000"}"#, true).is_ok());
    }
}
