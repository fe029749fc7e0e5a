//! Tenants (spec management §6, §1.5, §1.6): storage queries only, no HTTP. Every function takes
//! a `Db` so that a handler can run several of them in one transaction.
//!
//! The tree: the top tenant is its own parent; every other tenant has a parent. Visibility of a
//! tenant T = T and all its descendants (the top tenant sees every tenant).

use crate::sql::Db;
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use crate::error::Error;
use crate::scope::Listed;
use crate::sql::{Page, Where};

/// Longest slug (characters), as the `varchar(10)` column.
pub const SLUG_MAX_CHARS: usize = 10;
/// Length of a random slug, used when the slug derived from the name is empty or taken.
pub const RANDOM_SLUG_CHARS: usize = 3;
/// Longest domain name (the `varchar(253)` column).
pub const DOMAIN_MAX_CHARS: usize = 253;
/// The original's domain-name regular expression (reported as the `constraint` of a `regex`
/// validation error; [`is_valid_domain_name`] implements it).
pub const DOMAIN_RE: &str =
    r"^(?=.{1,253}\.?$)(?:(?!(-|_)|[^.]+_)[A-Za-z0-9-_]{1,}(?<!-)(?:\.|$)){2,63}$";
/// The original's tenant slug regular expression.
pub const SLUG_RE: &str = "^[a-zA-Z0-9_]+$";

/// A tenant's postal address (every field nullable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub line_1: Option<String>,
    pub line_2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub zip_code: Option<String>,
}

impl Address {
    pub fn to_json(&self) -> Value {
        json!({
            "line_1": self.line_1,
            "line_2": self.line_2,
            "city": self.city,
            "state": self.state,
            "country": self.country,
            "zip_code": self.zip_code,
        })
    }
}

/// A tenant as returned by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub uuid: String,
    pub parent_uuid: String,
    pub name: Option<String>,
    pub slug: String,
    /// Uuid of the contact user.
    pub contact: Option<String>,
    pub phone: Option<String>,
    pub default_authentication_method: String,
    /// Sorted.
    pub domain_names: Vec<String>,
    pub address: Address,
}

impl Tenant {
    fn from_row(row: &Row) -> Tenant {
        Tenant {
            uuid: row.get(0),
            parent_uuid: row.get(1),
            name: row.get(2),
            slug: row.get(3),
            contact: row.get(4),
            phone: row.get(5),
            default_authentication_method: row.get(6),
            address: Address {
                line_1: row.get(7),
                line_2: row.get(8),
                city: row.get(9),
                state: row.get(10),
                country: row.get(11),
                zip_code: row.get(12),
            },
            domain_names: row.get(13),
        }
    }

    /// The API representation.
    pub fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "parent_uuid": self.parent_uuid,
            "name": self.name,
            "slug": self.slug,
            "contact": self.contact,
            "phone": self.phone,
            "default_authentication_method": self.default_authentication_method,
            "domain_names": self.domain_names,
            "address": self.address.to_json(),
        })
    }
}

const TENANT_SELECT: &str = "SELECT t.uuid, t.parent_uuid, t.name, t.slug, t.contact_uuid, t.phone,
        t.default_authentication_method,
        a.line_1, a.line_2, a.city, a.state, a.country, a.zip_code,
        ARRAY(SELECT d.name::text FROM auth_tenant_domain d WHERE d.tenant_uuid = t.uuid
              ORDER BY d.name COLLATE \"C\")
 FROM auth_tenant t LEFT JOIN auth_address a ON a.tenant_uuid = t.uuid";

/// The writable fields of a tenant (POST and PUT; PUT replaces all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantFields {
    pub name: Option<String>,
    pub contact: Option<String>,
    pub phone: Option<String>,
    pub default_authentication_method: String,
    /// Deduplicated and sorted by the caller (see [`normalize_domain_names`]).
    pub domain_names: Vec<String>,
    pub address: Address,
}

impl Default for TenantFields {
    fn default() -> Self {
        TenantFields {
            name: None,
            contact: None,
            phone: None,
            default_authentication_method: "native".to_string(),
            domain_names: Vec::new(),
            address: Address::default(),
        }
    }
}

/// A tenant to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTenant {
    /// Canonical lower-case hyphenated uuid; generated when `None`.
    pub uuid: Option<String>,
    /// Generated from the name when `None`.
    pub slug: Option<String>,
    pub fields: TenantFields,
}

/// What can go wrong while reading or writing tenants.
#[derive(Debug)]
pub enum TenantError {
    /// The tenant (this uuid) does not exist or is not visible.
    NotFound(String),
    /// The slug is already used (by any tenant).
    SlugConflict(String),
    /// One of these domain names is already used (by any other tenant).
    DomainConflict(Vec<String>),
    /// A tenant with this uuid already exists.
    UuidConflict(String),
    /// The new tenant's uuid is its own parent's (there can be only one top tenant).
    MasterConflict,
    /// The contact user does not exist.
    UnknownContact(String),
    /// The tenant has children and cannot be deleted.
    HasChildren(String),
    /// The new parent is the tenant itself or one of its descendants.
    ParentIsDescendant {
        uuid: String,
        parent_uuid: String,
    },
    Storage(Error),
}

impl std::fmt::Display for TenantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantError::NotFound(u) => write!(f, "unknown tenant {u}"),
            TenantError::SlugConflict(s) => write!(f, "slug {s} already used"),
            TenantError::DomainConflict(d) => write!(f, "domain names {d:?} already used"),
            TenantError::UuidConflict(u) => write!(f, "tenant {u} already exists"),
            TenantError::MasterConflict => write!(f, "a master tenant already exists"),
            TenantError::UnknownContact(u) => write!(f, "unknown contact user {u}"),
            TenantError::HasChildren(u) => write!(f, "tenant {u} has children"),
            TenantError::ParentIsDescendant { uuid, parent_uuid } => {
                write!(f, "{parent_uuid} is a descendant of {uuid}")
            }
            TenantError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TenantError {}

impl From<Error> for TenantError {
    fn from(e: Error) -> Self {
        TenantError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for TenantError {
    fn from(e: tokio_postgres::Error) -> Self {
        TenantError::Storage(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for TenantError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        TenantError::Storage(e.into())
    }
}

/// The SQLSTATE and constraint name of a database error.
fn violation(e: &tokio_postgres::Error) -> Option<(SqlState, String)> {
    let code = e.code()?.clone();
    let constraint = e
        .as_db_error()
        .and_then(|d| d.constraint())
        .unwrap_or("")
        .to_string();
    Some((code, constraint))
}

fn is_violation(e: &tokio_postgres::Error, code: &SqlState, constraint: &str) -> bool {
    matches!(violation(e), Some((c, n)) if c == *code && n == constraint)
}

// ------------------------------------------------------------------------------------------------
// Validation helpers (pure)
// ------------------------------------------------------------------------------------------------

fn is_tenant_slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `s` is a valid tenant slug: 1..10 characters of `[a-zA-Z0-9_]` (a trailing newline
/// is refused, unlike Python's `$`).
pub fn is_valid_slug(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= SLUG_MAX_CHARS && s.chars().all(is_tenant_slug_char)
}

/// The slug derived from a name: the allowed characters only, cut to 10.
pub fn slug_from_name(name: &str) -> String {
    name.chars()
        .filter(|c| is_tenant_slug_char(*c))
        .take(SLUG_MAX_CHARS)
        .collect()
}

/// `len` random characters from `[a-z0-9]`.
pub fn random_slug(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().as_bytes() {
            // 252 = 7 * 36: rejecting larger bytes keeps the choice uniform.
            if *b < 252 && out.len() < len {
                out.push(ALPHABET[(*b % 36) as usize] as char);
            }
        }
    }
    out
}

/// The original's `DOMAIN_RE`: at most 253 characters (plus an optional trailing dot), 2 to 63
/// dot-separated labels of `[A-Za-z0-9-]`, none starting or ending with `-`, no `_` anywhere.
/// Differences, deliberate: a trailing newline (accepted by Python's `$`) is refused, and so is
/// a 254-character name ending with a dot (it does not fit the column: the original fails).
pub fn is_valid_domain_name(s: &str) -> bool {
    if s.is_empty() || s.len() > DOMAIN_MAX_CHARS {
        return false;
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = body.split('.').collect();
    if !(2..=63).contains(&labels.len()) {
        return false;
    }
    labels.iter().all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// Domain names as the original stores them: deduplicated and sorted.
pub fn normalize_domain_names(names: Vec<String>) -> Vec<String> {
    let mut names = names;
    names.sort();
    names.dedup();
    names
}

/// Python's `repr()` of a list of strings, as the original writes in its domain-conflict message.
pub fn python_list_repr(items: &[String]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|s| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    format!("[{}]", inner.join(", "))
}

// ------------------------------------------------------------------------------------------------
// Tree
// ------------------------------------------------------------------------------------------------

/// The uuid of the top tenant (the one that is its own parent).
pub(crate) async fn top_tenant<C: Db>(client: &C) -> Result<Option<String>, Error> {
    let row = client
        .fetch_opt(
            "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Whether `child` exists and is `parent` or one of its descendants (the top tenant sees every
/// existing tenant).
pub(crate) async fn is_subtenant<C: Db>(
    client: &C,
    child: &str,
    parent: &str,
) -> Result<bool, Error> {
    let row = client
        .fetch_one(
            "WITH RECURSIVE up(uuid, parent_uuid, depth) AS (
                 SELECT uuid, parent_uuid, 0 FROM auth_tenant WHERE uuid = $1
                 UNION ALL
                 SELECT t.uuid, t.parent_uuid, up.depth + 1
                 FROM auth_tenant t JOIN up ON t.uuid = up.parent_uuid
                 WHERE up.uuid <> up.parent_uuid AND up.uuid <> $2 AND up.depth < 10000
             )
             SELECT EXISTS (SELECT 1 FROM up WHERE uuid = $2)",
            &[&child, &parent],
        )
        .await?;
    Ok(row.get(0))
}

// ------------------------------------------------------------------------------------------------
// Reads
// ------------------------------------------------------------------------------------------------

/// A tenant by uuid, regardless of visibility.
/// The tenant owning the domain name `name` (compared without case), if any. Not on behalf of
/// a caller (no tenant scope): for the plugins' host services.
pub async fn by_domain_name<C: Db>(client: &C, name: &str) -> Result<Option<Tenant>, Error> {
    let stmt = &format!(
        "{TENANT_SELECT} WHERE t.uuid = (SELECT d.tenant_uuid FROM auth_tenant_domain d
                                        WHERE lower(d.name) = lower($1) LIMIT 1)"
    );
    Ok(client
        .fetch_opt_cached(stmt, &[&name])
        .await?
        .map(|r| Tenant::from_row(&r)))
}

/// The tenant named by `id`: its uuid when `id` reads as one, else its slug (the deprecated
/// `tenant_id` of an LDAP login). Not on behalf of a caller: for the plugins' host services.
pub async fn by_uuid_or_slug<C: Db>(client: &C, id: &str) -> Result<Option<Tenant>, Error> {
    if id.contains('\0') {
        return Ok(None);
    }
    if let Ok(u) = uuid::Uuid::parse_str(id) {
        return get(client, &u.hyphenated().to_string()).await;
    }
    let sql = format!("{TENANT_SELECT} WHERE t.slug = $1 ORDER BY t.uuid LIMIT 1");
    let row = client.fetch_opt(sql.as_str(), &[&id]).await?;
    Ok(row.as_ref().map(Tenant::from_row))
}

pub(crate) async fn get<C: Db>(client: &C, uuid: &str) -> Result<Option<Tenant>, Error> {
    let sql = format!("{TENANT_SELECT} WHERE t.uuid = $1");
    let row = client.fetch_opt(sql.as_str(), &[&uuid]).await?;
    Ok(row.as_ref().map(Tenant::from_row))
}

/// A tenant by uuid if it is visible from `scope` (`scope` or one of its descendants).
pub(crate) async fn get_visible<C: Db>(
    client: &C,
    scope: &str,
    uuid: &str,
) -> Result<Option<Tenant>, Error> {
    if !is_subtenant(client, uuid, scope).await? {
        return Ok(None);
    }
    get(client, uuid).await
}

/// The domains of a tenant as `(name, uuid)`, sorted by name; `None` when the tenant does not
/// exist.
pub(crate) async fn domains<C: Db>(
    client: &C,
    uuid: &str,
) -> Result<Option<Vec<(String, String)>>, Error> {
    let exists: bool = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_tenant WHERE uuid = $1)",
            &[&uuid],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .fetch(
            "SELECT name::text, uuid::text FROM auth_tenant_domain WHERE tenant_uuid = $1
             ORDER BY name COLLATE \"C\"",
            &[&uuid],
        )
        .await?;
    Ok(Some(
        rows.iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect(),
    ))
}

/// Sort column of tenant lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Name,
    Slug,
}

impl Order {
    /// The sortable columns, by name.
    const COLUMNS: [(&'static str, &'static str); 2] = [("name", "t.name"), ("slug", "t.slug")];

    fn name(self) -> &'static str {
        match self {
            Order::Name => "name",
            Order::Slug => "slug",
        }
    }
}

/// A tenant list query (spec management §1.6, row GET /tenants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// `ILIKE` pattern matched against name, slug and any domain name.
    pub search: Option<String>,
    pub uuid: Option<String>,
    /// `uuids` filter: any of these.
    pub uuids: Option<Vec<String>>,
    pub name: Option<String>,
    pub slug: Option<String>,
    /// Ignored when empty, as the original.
    pub domain_name: Option<String>,
    pub order: Order,
    pub descending: bool,
    pub limit: Option<i64>,
    pub offset: i64,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            search: None,
            uuid: None,
            uuids: None,
            name: None,
            slug: None,
            domain_name: None,
            order: Order::Name,
            descending: false,
            limit: None,
            offset: 0,
        }
    }
}

/// A page of tenants with the original's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Visible tenants, ignoring search and filters.
    pub total: i64,
    /// Visible tenants matching search and filters.
    pub filtered: i64,
    pub items: Vec<Tenant>,
}

/// The filters of a list query, after the condition of the listed tenants (`$1` when they are
/// not every tenant).
fn list_where(scope: &Listed, q: &ListQuery) -> Where {
    let mut w = Where::default();
    if let Some(tenants) = scope.tenants() {
        let p = w.param(tenants.clone());
        w.raw(scope.condition("t.uuid", &p));
    }
    if let Some(v) = &q.uuid {
        w.text("t.uuid = {}", v);
    }
    if let Some(list) = &q.uuids {
        let clean: Vec<String> = list.iter().filter(|s| !s.contains('\0')).cloned().collect();
        let p = w.param(clean);
        w.raw(format!("t.uuid = ANY({p}::text[])"));
    }
    if let Some(v) = &q.name {
        w.text("t.name = {}", v);
    }
    if let Some(v) = &q.slug {
        w.text("t.slug = {}", v);
    }
    if let Some(v) = q.domain_name.as_deref().filter(|v| !v.is_empty()) {
        w.text(
            "EXISTS (SELECT 1 FROM auth_tenant_domain d
                     WHERE d.tenant_uuid = t.uuid AND d.name = {})",
            v,
        );
    }
    if let Some(pattern) = &q.search {
        w.text(
            "(t.name ILIKE {} OR t.slug ILIKE {}
              OR t.uuid = ANY(ARRAY(SELECT d.tenant_uuid FROM auth_tenant_domain d
                                    WHERE d.name ILIKE {})))",
            pattern,
        );
    }
    w
}

/// The tenants visible from a scope (`scope`: itself and all its descendants, as
/// [`crate::scope::Scope::listing`] gives them), filtered, searched, sorted and paginated.
pub(crate) async fn list<C: Db>(
    client: &C,
    scope: &Listed,
    q: &ListQuery,
) -> Result<ListResult, Error> {
    // The listed tenants are known (from the tenant tree): counted without a query.
    let total: i64 = match scope.tenants() {
        Some(tenants) => i64::try_from(tenants.len()).unwrap_or(i64::MAX),
        None => client
            .fetch_one("SELECT count(*) FROM auth_tenant", &[])
            .await?
            .get(0),
    };

    let w = list_where(scope, q);
    let where_sql = format!(" WHERE {}", w.sql());
    // Without search or filters, `filtered` is `total`.
    let unfiltered = q.search.is_none()
        && q.uuid.is_none()
        && q.uuids.is_none()
        && q.name.is_none()
        && q.slug.is_none()
        && q.domain_name.as_deref().is_none_or(str::is_empty);
    let filtered: i64 = if unfiltered {
        total
    } else {
        client
            .fetch_one(
                format!("SELECT count(*) FROM auth_tenant t{where_sql}").as_str(),
                &w.refs(),
            )
            .await?
            .get(0)
    };

    let page = Page {
        order: q.order.name().to_string(),
        descending: q.descending,
        limit: q.limit,
        offset: q.offset,
    };
    let sql = format!(
        "{TENANT_SELECT}{where_sql}{}",
        page.sql(&Order::COLUMNS, "t.uuid")
    );
    let rows = client.fetch(sql.as_str(), &w.refs()).await?;
    Ok(ListResult {
        total,
        filtered,
        items: rows.iter().map(Tenant::from_row).collect(),
    })
}

// ------------------------------------------------------------------------------------------------
// Writes
// ------------------------------------------------------------------------------------------------

async fn slug_taken<C: Db>(client: &C, slug: &str) -> Result<bool, Error> {
    let row = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_tenant WHERE slug = $1)",
            &[&slug],
        )
        .await?;
    Ok(row.get(0))
}

/// The slug of a new tenant without one: derived from the name, else (no name, nothing left of
/// it, or taken) 3 random characters.
pub(crate) async fn generate_slug<C: Db>(client: &C, name: Option<&str>) -> Result<String, Error> {
    if let Some(name) = name {
        let derived = slug_from_name(name);
        if !derived.is_empty() && !slug_taken(client, &derived).await? {
            return Ok(derived);
        }
    }
    // 36^3 = 46 656 possibilities; when practically all are taken use the whole column width.
    for _ in 0..200 {
        let candidate = random_slug(RANDOM_SLUG_CHARS);
        if !slug_taken(client, &candidate).await? {
            return Ok(candidate);
        }
    }
    loop {
        let candidate = random_slug(SLUG_MAX_CHARS);
        if !slug_taken(client, &candidate).await? {
            return Ok(candidate);
        }
    }
}

async fn write_domains<C: Db>(
    client: &C,
    uuid: &str,
    domain_names: &[String],
) -> Result<(), TenantError> {
    let names: Vec<String> = domain_names.to_vec();
    client
        .exec(
            "DELETE FROM auth_tenant_domain
             WHERE tenant_uuid = $1 AND NOT (name = ANY($2::text[]))",
            &[&uuid, &names],
        )
        .await?;
    client
        .exec(
            "INSERT INTO auth_tenant_domain (tenant_uuid, name)
             SELECT $1::text, n FROM unnest($2::text[]) AS n
             WHERE NOT EXISTS (SELECT 1 FROM auth_tenant_domain d
                               WHERE d.tenant_uuid = $1::text AND d.name = n)",
            &[&uuid, &names],
        )
        .await
        .map_err(|e| {
            if is_violation(
                &e,
                &SqlState::UNIQUE_VIOLATION,
                "auth_tenant_domain_name_key",
            ) {
                TenantError::DomainConflict(names.clone())
            } else {
                e.into()
            }
        })?;
    Ok(())
}

async fn write_address<C: Db>(client: &C, uuid: &str, a: &Address) -> Result<(), Error> {
    client
        .exec(
            "INSERT INTO auth_address (tenant_uuid, line_1, line_2, city, state, country, zip_code)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant_uuid) DO UPDATE SET
                 line_1 = EXCLUDED.line_1, line_2 = EXCLUDED.line_2, city = EXCLUDED.city,
                 state = EXCLUDED.state, country = EXCLUDED.country,
                 zip_code = EXCLUDED.zip_code",
            &[
                &uuid,
                &a.line_1,
                &a.line_2,
                &a.city,
                &a.state,
                &a.country,
                &a.zip_code,
            ],
        )
        .await?;
    Ok(())
}

/// Creates a child of `parent` with its domains and address row (run it in a transaction; the
/// caller then applies the tenant defaults). Returns the new tenant's uuid.
pub(crate) async fn create<C: Db>(
    client: &C,
    parent: &str,
    new: &NewTenant,
) -> Result<String, TenantError> {
    if new.uuid.as_deref() == Some(parent) {
        return Err(TenantError::MasterConflict);
    }
    let slug = match &new.slug {
        Some(s) => s.clone(),
        None => generate_slug(client, new.fields.name.as_deref()).await?,
    };
    let f = &new.fields;
    let row = client
        .fetch_one(
            "INSERT INTO auth_tenant
                 (uuid, name, slug, phone, contact_uuid, parent_uuid, default_authentication_method)
             VALUES (COALESCE($1, gen_random_uuid()::text), $2, $3, $4, $5, $6, $7)
             RETURNING uuid",
            &[
                &new.uuid,
                &f.name,
                &slug,
                &f.phone,
                &f.contact,
                &parent,
                &f.default_authentication_method,
            ],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some((c, n)) if c == SqlState::UNIQUE_VIOLATION && n == "auth_tenant_pkey" => {
                TenantError::UuidConflict(new.uuid.clone().unwrap_or_default())
            }
            Some((c, n)) if c == SqlState::UNIQUE_VIOLATION && n == "auth_tenant_slug_key" => {
                TenantError::SlugConflict(slug.clone())
            }
            Some((c, n))
                if c == SqlState::FOREIGN_KEY_VIOLATION && n == "auth_tenant_contact_uuid_fkey" =>
            {
                TenantError::UnknownContact(f.contact.clone().unwrap_or_default())
            }
            Some((c, n))
                if c == SqlState::FOREIGN_KEY_VIOLATION && n == "auth_tenant_parent_uuid_fkey" =>
            {
                TenantError::NotFound(parent.to_string())
            }
            _ => e.into(),
        })?;
    let uuid: String = row.get(0);
    write_domains(client, &uuid, &f.domain_names).await?;
    write_address(client, &uuid, &f.address).await?;
    Ok(uuid)
}

/// Replaces every writable field of `uuid` if it is visible from `scope` (run it in a
/// transaction).
pub(crate) async fn update<C: Db>(
    client: &C,
    scope: &str,
    uuid: &str,
    f: &TenantFields,
) -> Result<(), TenantError> {
    if !is_subtenant(client, uuid, scope).await? {
        return Err(TenantError::NotFound(uuid.to_string()));
    }
    let n = client
        .exec(
            "UPDATE auth_tenant SET name = $2, phone = $3, contact_uuid = $4,
                 default_authentication_method = $5
             WHERE uuid = $1",
            &[
                &uuid,
                &f.name,
                &f.phone,
                &f.contact,
                &f.default_authentication_method,
            ],
        )
        .await
        .map_err(|e| {
            if is_violation(
                &e,
                &SqlState::FOREIGN_KEY_VIOLATION,
                "auth_tenant_contact_uuid_fkey",
            ) {
                TenantError::UnknownContact(f.contact.clone().unwrap_or_default())
            } else {
                e.into()
            }
        })?;
    if n == 0 {
        return Err(TenantError::NotFound(uuid.to_string()));
    }
    write_domains(client, uuid, &f.domain_names).await?;
    write_address(client, uuid, &f.address).await?;
    Ok(())
}

/// Deletes `uuid` if it is visible from `scope` and has no children (run it in a transaction).
/// Everything it owns goes with it (users, groups, policies, sessions, domains, address...).
pub(crate) async fn delete<C: Db>(client: &C, scope: &str, uuid: &str) -> Result<(), TenantError> {
    if !is_subtenant(client, uuid, scope).await? {
        return Err(TenantError::NotFound(uuid.to_string()));
    }
    let has_children: bool = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_tenant WHERE parent_uuid = $1 AND uuid <> $1)",
            &[&uuid],
        )
        .await?
        .get(0);
    // The top tenant is its own parent: never deletable.
    let is_top: bool = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_tenant WHERE uuid = $1 AND uuid = parent_uuid)",
            &[&uuid],
        )
        .await?
        .get(0);
    if has_children || is_top {
        return Err(TenantError::HasChildren(uuid.to_string()));
    }
    let n = client
        .exec("DELETE FROM auth_tenant WHERE uuid = $1", &[&uuid])
        .await
        .map_err(|e| {
            if is_violation(
                &e,
                &SqlState::FOREIGN_KEY_VIOLATION,
                "auth_tenant_parent_uuid_fkey",
            ) {
                TenantError::HasChildren(uuid.to_string())
            } else {
                e.into()
            }
        })?;
    if n == 0 {
        return Err(TenantError::NotFound(uuid.to_string()));
    }
    Ok(())
}

/// Arbitrary but fixed advisory-lock key serialising parent moves (two concurrent moves could
/// otherwise build a cycle).
const PARENT_MOVE_LOCK_KEY: i64 = 0x7761_7a6f_7465_6e74; // "wazotent"

/// Moves `uuid` under `parent`; both must be visible from `scope`, and `parent` must not be
/// `uuid` or one of its descendants (run it in a transaction).
pub(crate) async fn update_parent<C: Db>(
    client: &C,
    scope: &str,
    uuid: &str,
    parent: &str,
) -> Result<(), TenantError> {
    client
        .exec("SELECT pg_advisory_xact_lock($1)", &[&PARENT_MOVE_LOCK_KEY])
        .await?;
    if !is_subtenant(client, uuid, scope).await? {
        return Err(TenantError::NotFound(uuid.to_string()));
    }
    if !is_subtenant(client, parent, scope).await? {
        return Err(TenantError::NotFound(parent.to_string()));
    }
    if is_subtenant(client, parent, uuid).await? {
        return Err(TenantError::ParentIsDescendant {
            uuid: uuid.to_string(),
            parent_uuid: parent.to_string(),
        });
    }
    client
        .exec(
            "UPDATE auth_tenant SET parent_uuid = $2 WHERE uuid = $1 AND uuid <> parent_uuid",
            &[&uuid, &parent],
        )
        .await
        .map_err(|e| {
            if is_violation(
                &e,
                &SqlState::FOREIGN_KEY_VIOLATION,
                "auth_tenant_parent_uuid_fkey",
            ) {
                TenantError::NotFound(parent.to_string())
            } else {
                e.into()
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names() {
        for ok in [
            "wazo.io",
            "shopify.ca",
            "mail.yahoo.fr",
            "a-b.c-d.e",
            "wazo.io.",
            "123.45",
            "xn--bcher-kva.example",
        ] {
            assert!(is_valid_domain_name(ok), "{ok}");
        }
        for bad in [
            "",
            "wazo",
            "wazo.",
            "-wazo.io",
            " wazo.io",
            "#",
            "123",
            "wazo .io",
            "wazo.io-",
            "=wazo.io",
            "+wazo.io",
            "_wazo.io",
            "wazo_io",
            "wazo_io  ",
            "wa_zo.io",
            "wazo..io",
            ".wazo.io",
            "wazo.io..",
            "wazo.io\n",
            "wazo.-io",
            "wazo.io-.",
            "wazö.io",
            "' OR 1=1 --",
        ] {
            assert!(!is_valid_domain_name(bad), "{bad:?}");
        }
        // 2..63 labels
        let labels63 = vec!["a"; 63].join(".");
        assert!(is_valid_domain_name(&labels63));
        let labels64 = vec!["a"; 64].join(".");
        assert!(!is_valid_domain_name(&labels64));
        // at most 253 characters
        let long = format!("{}.{}", "a".repeat(200), "b".repeat(52));
        assert_eq!(long.len(), 253);
        assert!(is_valid_domain_name(&long));
        let too_long = format!("{long}c");
        assert!(!is_valid_domain_name(&too_long));
        assert!(!is_valid_domain_name(&format!("{long}.")));
    }

    #[test]
    fn slugs() {
        assert!(is_valid_slug("abc_DEF_09"));
        assert!(!is_valid_slug(""));
        assert!(!is_valid_slug("abcdefghijk"));
        assert!(!is_valid_slug("a-b"));
        assert!(!is_valid_slug("abc\n"));
        assert!(!is_valid_slug("é"));
        assert_eq!(slug_from_name("My tenant!"), "Mytenant");
        assert_eq!(slug_from_name("a-b c_d éèà 0123456789"), "abc_d01234");
        assert_eq!(slug_from_name("!!!"), "");
        let r = random_slug(RANDOM_SLUG_CHARS);
        assert_eq!(r.len(), 3);
        assert!(r
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn list_filters_and_nul() {
        let q = ListQuery {
            name: Some("a\0b".into()),
            slug: Some("s".into()),
            uuids: Some(vec!["x".into(), "y\0".into()]),
            search: Some("%w%".into()),
            domain_name: Some(String::new()),
            ..ListQuery::default()
        };
        let w = list_where(&Listed::Only(vec!["scope".into()]), &q);
        let sql = w.sql();
        assert!(
            sql.starts_with(
                "t.uuid IN (SELECT unnest($1::text[])) AND t.uuid = ANY($2::text[]) AND FALSE \
                 AND t.slug = $3 AND (t.name ILIKE $4 OR t.slug ILIKE $4"
            ),
            "{sql}"
        );
        assert_eq!(sql.matches("$4").count(), 3, "{sql}");
        // No domain-name condition for an empty value.
        assert_eq!(sql.matches("d.name =").count(), 0, "{sql}");
        assert_eq!(w.refs().len(), 4);
    }

    #[test]
    fn domain_list_normalisation_and_repr() {
        let n = normalize_domain_names(vec!["b.io".into(), "a.io".into(), "b.io".into()]);
        assert_eq!(n, vec!["a.io".to_string(), "b.io".to_string()]);
        assert_eq!(python_list_repr(&n), "['a.io', 'b.io']");
        assert_eq!(python_list_repr(&[]), "[]");
    }
}
