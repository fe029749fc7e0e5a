//! The tenant resources (spec management §6, §1.5, §1.6; core §2.4, §2.5):
//! `GET|POST /tenants`, `GET|PUT|DELETE /tenants/{tenant_uuid}`,
//! `GET /tenants/{tenant_uuid}/domains`, `PUT /tenants/{tenant_uuid}/parent/{parent_tenant_uuid}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::tenants::{
    self, Address, ListQuery, NewTenant, Order, TenantError, TenantFields, DOMAIN_RE, SLUG_RE,
};

use super::auth::{authorize, required_acl, scoping_tenant};
use super::errors::{api_error, storage_unavailable, unknown_resource};
use super::listing;
use super::request::{path_uuid, read_body};
use super::State;

const RESOURCE: &str = "tenants";
/// Most values accepted by the `uuids` list filter.
const MAX_UUIDS: usize = 25;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(create))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/tenants/{tenant_uuid}")
            .route(web::get().to(get_one))
            .route(web::head().to(get_one))
            .route(web::put().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(uuid_route_not_allowed)),
    )
    .service(
        web::resource("/tenants/{tenant_uuid}/domains")
            .route(web::get().to(domains))
            .route(web::head().to(domains))
            .default_service(web::to(uuid_route_not_allowed)),
    )
    .service(
        web::resource("/tenants/{tenant_uuid}/parent/{parent_tenant_uuid}")
            .route(web::put().to(update_parent))
            .default_service(web::to(uuid_route_not_allowed)),
    );
}

type Answer = Result<HttpResponse, HttpResponse>;

fn finish(a: Answer) -> HttpResponse {
    a.unwrap_or_else(|e| e)
}

/// The uuid path parameters of the request, canonical (lower-case, hyphenated), in route order;
/// `None` when one of them is not a UUID (the original's router does not match then: 404).
fn path_uuids(req: &HttpRequest) -> Option<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for name in ["tenant_uuid", "parent_tenant_uuid"] {
        if let Some(segment) = req.match_info().get(name) {
            out.push((name, path_uuid(segment)?.hyphenated().to_string()));
        }
    }
    Some(out)
}

async fn url_not_found(_req: &HttpRequest) -> HttpResponse {
    super::errors::route_not_found()
}

/// 405 on a route with uuid parameters, but 404 when a parameter is not a UUID (no route).
async fn uuid_route_not_allowed(req: HttpRequest) -> HttpResponse {
    if path_uuids(&req).is_none() {
        return url_not_found(&req).await;
    }
    super::method_not_allowed().await
}

fn storage_error(e: impl std::fmt::Display) -> HttpResponse {
    storage_unavailable("tenant storage failed", e)
}

/// The error answer of a storage-level tenant error.
fn tenant_error(e: TenantError) -> HttpResponse {
    match e {
        TenantError::NotFound(uuid) => unknown_resource("tenant", RESOURCE, &uuid),
        TenantError::SlugConflict(slug) => api_error(
            StatusCode::CONFLICT,
            "Conflict detected",
            "conflict",
            json!({"slug": {
                "constraint_id": "unique",
                "message": format!("The slug \"{slug}\" is already used"),
            }}),
            Some(RESOURCE),
        ),
        TenantError::DomainConflict(names) => api_error(
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
        TenantError::UuidConflict(uuid) => api_error(
            StatusCode::CONFLICT,
            "Tenant Conflict detected",
            "tenant-identity-conflict",
            json!({"uuid": {
                "constraint_id": "unique",
                "message": format!("A tenant with identity uuid=\"{uuid}\" already exists"),
            }}),
            Some(RESOURCE),
        ),
        TenantError::MasterConflict => api_error(
            StatusCode::FORBIDDEN,
            "Conflict detected",
            "conflict",
            json!({"parent_uuid": {
                "constraint_id": "unique",
                "msg": "A master tenant already exist",
            }}),
            Some(RESOURCE),
        ),
        TenantError::UnknownContact(uuid) => unknown_resource("user", "users", &uuid),
        // The original builds this error with its arguments shifted (error_id = the details
        // object, details = "tenants"); this is the well-formed version.
        TenantError::HasChildren(uuid) => api_error(
            StatusCode::BAD_REQUEST,
            format!("Unauthorized delete of tenant : \"{uuid}\" ; since it has at least one child"),
            "tenant-has-children",
            json!({ "uuid": uuid }),
            Some(RESOURCE),
        ),
        TenantError::ParentIsDescendant { uuid, parent_uuid } => api_error(
            StatusCode::CONFLICT,
            format!("Parent ({parent_uuid}) is a descendent of tenant: \"{uuid}\""),
            "conflict",
            json!({ "uuid": uuid, "parent_uuid": parent_uuid }),
            Some(RESOURCE),
        ),
        TenantError::Storage(e) => storage_error(e),
    }
}

// ------------------------------------------------------------------------------------------------
// Body validation (the original's TenantFullSchema / TenantPUTSchema, first failing field only)
// ------------------------------------------------------------------------------------------------

/// A failing field: `path` is dotted for nested fields (`address.state`, `domain_names.0`).
#[derive(Debug)]
struct FieldError {
    path: String,
    message: String,
    detail: Value,
}

impl FieldError {
    fn new(path: &str, message: &str, constraint_id: &str, constraint: Value) -> FieldError {
        FieldError {
            path: path.to_string(),
            message: message.to_string(),
            detail: json!({
                "message": message,
                "constraint_id": constraint_id,
                "constraint": constraint,
            }),
        }
    }

    fn null(path: &str) -> FieldError {
        FieldError::new(
            path,
            "Field may not be null.",
            "not_null",
            json!("not_null"),
        )
    }

    fn not_string(path: &str) -> FieldError {
        FieldError::new(path, "Not a valid string.", "type", json!("string"))
    }

    fn length(path: &str, min: usize, max: usize) -> FieldError {
        FieldError::new(
            path,
            &format!("Length must be between {min} and {max}."),
            "length",
            json!({"min": min, "max": max}),
        )
    }

    fn regex(path: &str, pattern: &str) -> FieldError {
        FieldError::new(
            path,
            "String does not match expected pattern.",
            "regex",
            json!(pattern),
        )
    }

    /// A non-object value where an object is expected (`_schema` error of a nested schema).
    fn invalid_input_type(path: &str) -> FieldError {
        let path = if path.is_empty() {
            "_schema".to_string()
        } else {
            format!("{path}._schema")
        };
        FieldError {
            path,
            message: "Invalid input type.".to_string(),
            detail: json!({"message": "Invalid input type."}),
        }
    }

    /// `400 invalid-data` with `details = {field: {sub_field: {...}}}`.
    fn response(self) -> HttpResponse {
        let parts: Vec<&str> = self.path.split('.').collect();
        let mut detail = self.detail;
        for part in parts[1..].iter().rev() {
            detail = json!({ *part: detail });
        }
        api_error(
            StatusCode::BAD_REQUEST,
            self.message,
            "invalid-data",
            json!({ parts[0]: detail }),
            Some(RESOURCE),
        )
    }
}

/// Python truthiness of a JSON value (the original's schemas turn falsy bodies into `{}`).
fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Decodes the body as the original ("force JSON"): bad JSON → 400 `{"message"}`, falsy → `{}`,
/// other non-objects → 400 invalid-data `_schema`.
fn decode_body(body: &[u8]) -> Result<Map<String, Value>, HttpResponse> {
    super::request::decode_json_body(body)?
        .ok_or_else(|| FieldError::invalid_input_type("").response())
}

/// A nullable string of `min..=max` characters.
fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    min: usize,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n < min || n > max {
                return Err(FieldError::length(path, min, max));
            }
            if s.contains('\0') {
                // PostgreSQL text cannot hold NUL (the original answers 500).
                return Err(FieldError::new(
                    path,
                    "String must not contain NUL characters.",
                    "type",
                    json!("string"),
                ));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(FieldError::not_string(path)),
    }
}

/// Python's `uuid.UUID(text)`: `urn:`/`uuid:` prefixes, braces and hyphens are ignored, then 32
/// hex digits. Returns the canonical form.
fn python_uuid(text: &str) -> Option<String> {
    let t = text.replace("urn:", "").replace("uuid:", "");
    let t = t.trim_matches(|c| c == '{' || c == '}').replace('-', "");
    if t.len() != 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    uuid::Uuid::parse_str(&t)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// A nullable UUID field.
fn opt_uuid(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => python_uuid(s)
            .map(Some)
            .ok_or_else(|| FieldError::new(key, "Not a valid UUID.", "type", json!("uuid"))),
        Some(_) => Err(FieldError::new(
            key,
            "Not a valid UUID.",
            "type",
            json!("uuid"),
        )),
    }
}

fn domain_names(obj: &Map<String, Value>) -> Result<Vec<String>, FieldError> {
    let key = "domain_names";
    let items = match obj.get(key) {
        None => return Ok(Vec::new()),
        Some(Value::Null) => return Err(FieldError::null(key)),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(FieldError::new(
                key,
                "Not a valid list.",
                "type",
                json!("list"),
            ))
        }
    };
    let mut names = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{key}.{i}");
        match item {
            Value::Null => return Err(FieldError::null(&path)),
            Value::String(s) if tenants::is_valid_domain_name(s) => names.push(s.clone()),
            Value::String(_) => return Err(FieldError::regex(&path, DOMAIN_RE)),
            _ => return Err(FieldError::not_string(&path)),
        }
    }
    Ok(tenants::normalize_domain_names(names))
}

fn address(obj: &Map<String, Value>) -> Result<Address, FieldError> {
    let key = "address";
    let fields = match obj.get(key) {
        None => return Ok(Address::default()),
        Some(Value::Null) => return Err(FieldError::null(key)),
        Some(Value::Object(m)) => m,
        Some(v) if is_falsy(v) => return Ok(Address::default()),
        Some(_) => return Err(FieldError::invalid_input_type(key)),
    };
    let field = |name: &str, max: usize| opt_string(fields, name, &format!("{key}.{name}"), 1, max);
    Ok(Address {
        line_1: field("line_1", 256)?,
        line_2: field("line_2", 256)?,
        city: field("city", 128)?,
        state: field("state", 128)?,
        country: field("country", 128)?,
        zip_code: field("zip_code", 16)?,
    })
}

/// The loaded body: `(uuid, slug, fields)`; `slug` is only read on POST (PUT ignores it), `uuid`
/// is validated on both but only used on POST.
fn load_body(
    obj: &Map<String, Value>,
    with_slug: bool,
) -> Result<(Option<String>, Option<String>, TenantFields), FieldError> {
    let uuid = opt_uuid(obj, "uuid")?;
    let name = opt_string(obj, "name", "name", 1, 128)?;
    let slug = if with_slug {
        match obj.get("slug") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if !(1..=tenants::SLUG_MAX_CHARS).contains(&n) {
                    return Err(FieldError::length("slug", 1, tenants::SLUG_MAX_CHARS));
                }
                if !tenants::is_valid_slug(s) {
                    return Err(FieldError::regex("slug", SLUG_RE));
                }
                Some(s.clone())
            }
            Some(_) => return Err(FieldError::not_string("slug")),
        }
    } else {
        None
    };
    let contact = opt_uuid(obj, "contact")?;
    let phone = opt_string(obj, "phone", "phone", 1, 32)?;
    let default_authentication_method = match obj.get("default_authentication_method") {
        None => "native".to_string(),
        Some(Value::Null) => return Err(FieldError::null("default_authentication_method")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(FieldError::not_string("default_authentication_method")),
    };
    let domain_names = domain_names(obj)?;
    let address = address(obj)?;
    Ok((
        uuid,
        slug,
        TenantFields {
            name,
            contact,
            phone,
            default_authentication_method,
            domain_names,
            address,
        },
    ))
}

/// Decodes and validates a POST (`with_slug`) or PUT body as `read_tenant_body` does, short of
/// the configured authentication methods (for the fuzz targets, through [`super::body_check`]).
pub(super) fn check_body(body: &[u8], with_slug: bool) -> Result<(), HttpResponse> {
    load_body(&decode_body(body)?, with_slug)
        .map(drop)
        .map_err(FieldError::response)
}

/// Reads and validates a POST/PUT body, including the authentication method.
async fn read_tenant_body(
    state: &State,
    payload: web::Payload,
    with_slug: bool,
) -> Result<(Option<String>, Option<String>, TenantFields), HttpResponse> {
    let bytes = read_body(payload, state.settings.max_body_bytes).await?;
    let obj = decode_body(&bytes)?;
    let loaded = load_body(&obj, with_slug).map_err(FieldError::response)?;
    let method = &loaded.2.default_authentication_method;
    if !state.settings.auth_methods.iter().any(|m| m == method) {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("Invalid default authentication method {method}"),
            "invalid-data",
            json!({ "default_authentication_method": method }),
            Some(RESOURCE),
        ));
    }
    Ok(loaded)
}

// ------------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------------

/// `GET /0.1/tenants`: the whole subtree of the scoping tenant.
async fn list(state: State, req: HttpRequest) -> HttpResponse {
    finish(list_inner(&state, &req).await)
}

async fn list_inner(state: &State, req: &HttpRequest) -> Answer {
    let caller = authorize(state, req, "auth.tenants.read").await?;
    let scope = scoping_tenant(state, req, &caller).await?;
    let params = listing::parse(req, &["name", "slug"], "name")?;
    let uuids = params.all_values.get("uuids").cloned();
    if let Some(u) = &uuids {
        if u.len() > MAX_UUIDS {
            // The original's marshmallow error dict is the message.
            return Err(api_error(
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
    }
    let query = ListQuery {
        search: params.search.clone(),
        uuid: params.filter("uuid").map(str::to_string),
        uuids,
        name: params.filter("name").map(str::to_string),
        slug: params.filter("slug").map(str::to_string),
        domain_name: params.filter("domain_name").map(str::to_string),
        order: if params.order == "slug" {
            Order::Slug
        } else {
            Order::Name
        },
        descending: params.descending,
        limit: params.limit,
        offset: params.offset,
    };
    let client = state.storage.client().await.map_err(storage_error)?;
    let result = tenants::list(&client, &scope, &query)
        .await
        .map_err(storage_error)?;
    let items: Vec<Value> = result.items.iter().map(|t| t.to_json()).collect();
    Ok(HttpResponse::Ok().json(json!({
        "total": result.total,
        "filtered": result.filtered,
        "items": items,
    })))
}

/// `POST /0.1/tenants`: a child of the scoping tenant, with its address row, its all-users
/// group and the default groups, in one transaction.
async fn create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    finish(create_inner(&state, &req, payload).await)
}

async fn create_inner(state: &State, req: &HttpRequest, payload: web::Payload) -> Answer {
    let caller = authorize(state, req, "auth.tenants.create").await?;
    let scope = scoping_tenant(state, req, &caller).await?;
    let (uuid, slug, fields) = read_tenant_body(state, payload, true).await?;
    let new = NewTenant { uuid, slug, fields };

    let mut client = state.storage.client().await.map_err(storage_error)?;
    let tx = client.transaction().await.map_err(storage_error)?;
    let uuid = tenants::create(&tx, &scope, &new)
        .await
        .map_err(tenant_error)?;
    wazo_auth_core::defaults::apply_tenant_defaults(&tx, &uuid, &state.settings.tenant_defaults)
        .await
        .map_err(storage_error)?;
    let tenant = tenants::get(&tx, &uuid)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| storage_error("created tenant not found"))?;
    tx.commit().await.map_err(|e| {
        // A unique violation can only be reported at commit with deferred constraints (none
        // here), so anything else is a storage failure.
        storage_error(e)
    })?;
    Ok(HttpResponse::Ok().json(tenant.to_json()))
}

/// `GET /0.1/tenants/{tenant_uuid}`.
async fn get_one(state: State, req: HttpRequest) -> HttpResponse {
    finish(get_one_inner(&state, &req).await)
}

async fn get_one_inner(state: &State, req: &HttpRequest) -> Answer {
    let Some(ids) = path_uuids(req) else {
        return Err(url_not_found(req).await);
    };
    let uuid = ids[0].1.clone();
    let acl = required_acl("auth.tenants.{tenant_uuid}.read", &[("tenant_uuid", &uuid)]);
    let caller = authorize(state, req, &acl).await?;
    let scope = scoping_tenant(state, req, &caller).await?;
    let client = state.storage.client().await.map_err(storage_error)?;
    let tenant = tenants::get_visible(&client, &scope, &uuid)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| unknown_resource("tenant", RESOURCE, &uuid))?;
    Ok(HttpResponse::Ok().json(tenant.to_json()))
}

/// `PUT /0.1/tenants/{tenant_uuid}`: full replacement (omitted fields take their defaults);
/// `slug` and `uuid` are ignored. The body is validated before the visibility check.
async fn update(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    finish(update_inner(&state, &req, payload).await)
}

async fn update_inner(state: &State, req: &HttpRequest, payload: web::Payload) -> Answer {
    let Some(ids) = path_uuids(req) else {
        return Err(url_not_found(req).await);
    };
    let uuid = ids[0].1.clone();
    let acl = required_acl(
        "auth.tenants.{tenant_uuid}.update",
        &[("tenant_uuid", &uuid)],
    );
    let caller = authorize(state, req, &acl).await?;
    let scope = scoping_tenant(state, req, &caller).await?;
    let (_, _, fields) = read_tenant_body(state, payload, false).await?;

    let mut client = state.storage.client().await.map_err(storage_error)?;
    let tx = client.transaction().await.map_err(storage_error)?;
    tenants::update(&tx, &scope, &uuid, &fields)
        .await
        .map_err(tenant_error)?;
    let tenant = tenants::get(&tx, &uuid)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| unknown_resource("tenant", RESOURCE, &uuid))?;
    tx.commit().await.map_err(storage_error)?;
    Ok(HttpResponse::Ok().json(tenant.to_json()))
}

/// `DELETE /0.1/tenants/{tenant_uuid}`: never the scoping tenant itself (403), never a tenant
/// with children (400).
async fn delete(state: State, req: HttpRequest) -> HttpResponse {
    finish(delete_inner(&state, &req).await)
}

async fn delete_inner(state: &State, req: &HttpRequest) -> Answer {
    let Some(ids) = path_uuids(req) else {
        return Err(url_not_found(req).await);
    };
    let uuid = ids[0].1.clone();
    let acl = required_acl(
        "auth.tenants.{tenant_uuid}.delete",
        &[("tenant_uuid", &uuid)],
    );
    let caller = authorize(state, req, &acl).await?;
    let scope = scoping_tenant(state, req, &caller).await?;
    if scope == uuid {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            format!("Deleting its own tenant is forbidden: \"{uuid}\""),
            "deleting-own-tenant-forbidden",
            json!({ "tenant_uuid": uuid }),
            Some(RESOURCE),
        ));
    }
    let mut client = state.storage.client().await.map_err(storage_error)?;
    let tx = client.transaction().await.map_err(storage_error)?;
    tenants::delete(&tx, &scope, &uuid)
        .await
        .map_err(tenant_error)?;
    tx.commit().await.map_err(storage_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /0.1/tenants/{tenant_uuid}/domains`: unscoped (`Wazo-Tenant` is ignored), 404 only when
/// the tenant does not exist.
async fn domains(state: State, req: HttpRequest) -> HttpResponse {
    finish(domains_inner(&state, &req).await)
}

async fn domains_inner(state: &State, req: &HttpRequest) -> Answer {
    let Some(ids) = path_uuids(req) else {
        return Err(url_not_found(req).await);
    };
    let uuid = ids[0].1.clone();
    let acl = required_acl(
        "auth.tenants.{tenant_uuid}.domains.read",
        &[("tenant_uuid", &uuid)],
    );
    authorize(state, req, &acl).await?;
    let client = state.storage.client().await.map_err(storage_error)?;
    let domains = tenants::domains(&client, &uuid)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| unknown_resource("tenant", RESOURCE, &uuid))?;
    let items: Vec<Value> = domains
        .iter()
        .map(|(name, uuid)| json!({"name": name, "uuid": uuid}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"total": items.len(), "items": items})))
}

/// `PUT /0.1/tenants/{tenant_uuid}/parent/{parent_tenant_uuid}`: moves a tenant.
async fn update_parent(state: State, req: HttpRequest) -> HttpResponse {
    finish(update_parent_inner(&state, &req).await)
}

async fn update_parent_inner(state: &State, req: &HttpRequest) -> Answer {
    let Some(ids) = path_uuids(req) else {
        return Err(url_not_found(req).await);
    };
    let uuid = ids[0].1.clone();
    let parent = ids[1].1.clone();
    let acl = required_acl(
        "auth.tenants.{tenant_uuid}.parent.{parent_tenant_uuid}.update",
        &[("tenant_uuid", &uuid), ("parent_tenant_uuid", &parent)],
    );
    let caller = authorize(state, req, &acl).await?;
    let scope = scoping_tenant(state, req, &caller).await?;
    let mut client = state.storage.client().await.map_err(storage_error)?;
    let tx = client.transaction().await.map_err(storage_error)?;
    tenants::update_parent(&tx, &scope, &uuid, &parent)
        .await
        .map_err(tenant_error)?;
    tx.commit().await.map_err(storage_error)?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(v: Value, with_slug: bool) -> Result<TenantFields, FieldError> {
        load_body(v.as_object().unwrap(), with_slug).map(|(_, _, f)| f)
    }

    fn err_path(v: Value) -> String {
        load(v, true).unwrap_err().path
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
        let (uuid, slug, _) = load_body(
            json!({"uuid": "{6668CA15-6D9E-4000-B2EC-731BC7316767}", "slug": "a_B"})
                .as_object()
                .unwrap(),
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
            load(json!({"uuid": "nope"}), false).unwrap_err().path,
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

    #[test]
    fn python_uuids() {
        let c = "6668ca15-6d9e-4000-b2ec-731bc7316767";
        for ok in [
            c,
            "6668CA156D9E4000B2EC731BC7316767",
            "urn:uuid:6668ca15-6d9e-4000-b2ec-731bc7316767",
            "{6668ca15-6d9e-4000-b2ec-731bc7316767}",
        ] {
            assert_eq!(python_uuid(ok).as_deref(), Some(c), "{ok}");
        }
        for bad in [
            "",
            "x",
            "6668ca15-6d9e-4000-b2ec-731bc731676",
            "' OR 1=1 --",
        ] {
            assert!(python_uuid(bad).is_none(), "{bad}");
        }
    }
}
