//! Policies and their associations to users and groups (spec management §8, §9; core §2.3).
//!
//! A policy's ACL lives, in order and without duplicates, in `auth_policy.acl`.
//!
//! Visibility, as the original: seen from a requested tenant R with a tenant list L (R first; L is
//! `[R]` or R and its descendants), the visible policies are those owned by a tenant of L, every
//! config-managed policy, and the shared policies owned by R, one of its ancestors or the top
//! tenant. A config-managed or shared policy owned outside L is presented with R as its
//! `tenant_uuid`, `shared = false` and `read_only = true`.

use crate::sql::Db;
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::{Error, Result};

const UNIQUE_VIOLATION: &str = "23505";
const FK_VIOLATION: &str = "23503";

/// The longest policy name, in characters.
pub const NAME_MAX_CHARS: usize = 80;
/// The longest policy slug, in characters.
pub const SLUG_MAX_CHARS: usize = 80;

const COLUMNS: &str =
    "p.uuid, p.tenant_uuid, p.name, p.slug, p.description, p.acl, p.config_managed, p.shared";

/// The statement of [`user_acl`] (public for the statement-cost measurement of
/// tests/tests/pgbouncer.rs).
pub const USER_ACL_SQL: &str = "SELECT acl FROM (
     SELECT 0 AS src, g.name AS gname, g.uuid AS guuid, p.name AS pname,
            p.uuid AS puuid, p.acl
     FROM auth_user_group ug
     JOIN auth_group g ON g.uuid = ug.group_uuid
     JOIN auth_group_policy gp ON gp.group_uuid = g.uuid
     JOIN auth_policy p ON p.uuid = gp.policy_uuid
     WHERE ug.user_uuid = $1
     UNION ALL
     SELECT 1, '', '', p.name, p.uuid, p.acl
     FROM auth_user_policy up JOIN auth_policy p ON p.uuid = up.policy_uuid
     WHERE up.user_uuid = $1
 ) s
 ORDER BY src, gname, guuid, pname, puuid";

/// The ACL granted to a user through policies: the ACL of every policy of every group of the
/// user, then of every policy attached to the user directly. Order kept, duplicates kept (as the
/// original concatenates them); groups and policies are taken in name order. Not on behalf of a
/// caller (no tenant scope): for the logins, which grant the user its own ACL.
pub async fn user_acl<C: Db>(client: &C, user_uuid: &str) -> Result<Vec<String>> {
    // One statement (this runs at every login): group policies (groups by name, then
    // policies by name), then the user's own policies (by name).
    let rows = client.fetch_cached(USER_ACL_SQL, &[&user_uuid]).await?;
    let mut acl = Vec::new();
    for row in rows {
        acl.extend(row.get::<_, Vec<String>>(0));
    }
    Ok(acl)
}

/// The ACL of the first policy named `name` in any tenant (the top tenant's first, then
/// config-managed ones); empty when there is none.
pub async fn acl_of_policy_named<C: Db>(client: &C, name: &str) -> Result<Vec<String>> {
    let stmt = "SELECT p.acl FROM auth_policy p
             JOIN auth_tenant t ON t.uuid = p.tenant_uuid
             WHERE p.name = $1
             ORDER BY (t.uuid = t.parent_uuid) DESC, p.config_managed DESC, p.uuid
             LIMIT 1";
    let row = client.fetch_opt_cached(stmt, &[&name]).await?;
    Ok(row.map(|r| r.get(0)).unwrap_or_default())
}

/// A policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub uuid: String,
    /// The owner tenant.
    pub tenant_uuid: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub acl: Vec<String>,
    pub config_managed: bool,
    pub shared: bool,
}

impl Policy {
    fn from_row(row: &Row) -> Policy {
        Policy {
            uuid: row.get(0),
            tenant_uuid: row.get(1),
            name: row.get(2),
            slug: row.get(3),
            description: row.get(4),
            acl: row.get(5),
            config_managed: row.get(6),
            shared: row.get(7),
        }
    }

    /// The representation of the policy seen from `scope` (`None`: as stored).
    pub fn to_json(&self, scope: Option<&View>) -> Value {
        let exposed = match scope {
            Some(s)
                if (self.config_managed || self.shared)
                    && !s.tenants.contains(&self.tenant_uuid) =>
            {
                s.requested.as_str()
            }
            _ => self.tenant_uuid.as_str(),
        };
        let foreign_shared = self.shared && exposed != self.tenant_uuid;
        json!({
            "uuid": self.uuid,
            "tenant_uuid": exposed,
            "name": self.name,
            "slug": self.slug,
            "description": self.description,
            "acl": self.acl,
            "read_only": self.config_managed || foreign_shared,
            "shared": self.shared && !foreign_shared,
        })
    }

    /// Whether the policy may not be edited or deleted from `tenants`: config-managed, or shared
    /// by a tenant outside them.
    pub fn is_read_only_for(&self, tenants: &[String]) -> bool {
        self.config_managed || (self.shared && !tenants.contains(&self.tenant_uuid))
    }
}

/// Where a request looks at policies from: the requested (scoping) tenant and the tenant list,
/// which starts with it (`[requested]`, or `requested` and its descendants). Built in this crate
/// only, from a request's [`crate::scope::Scope`] (`crate::services::policies::view`) or from a
/// user's own tenant.
#[derive(Debug, Clone)]
pub struct View {
    pub(crate) requested: String,
    pub(crate) tenants: Vec<String>,
    /// `tenants` are every tenant (a recursive view from the top tenant): every policy is
    /// visible, and a listing needs no visibility condition.
    pub(crate) every: bool,
}

impl View {
    /// What `tenant` alone sees: its own policies, config-managed ones, and those shared by
    /// itself, one of its ancestors or the top tenant.
    pub(crate) fn of_tenant(tenant: &str) -> View {
        View {
            requested: tenant.to_string(),
            tenants: vec![tenant.to_string()],
            every: false,
        }
    }

    /// The scoping tenant.
    pub fn requested(&self) -> &str {
        &self.requested
    }
}

/// Failures of policy operations that the API reports.
#[derive(Debug)]
pub enum PolicyError {
    /// A name or slug conflict: carries the policy name.
    Duplicate(String),
    /// The access is already in the policy's ACL.
    DuplicateAccess(String),
    /// No such policy: carries the uuid.
    UnknownPolicy(String),
    UnknownUser(String),
    UnknownGroup(String),
    Db(Error),
}

impl From<Error> for PolicyError {
    fn from(e: Error) -> Self {
        PolicyError::Db(e)
    }
}

impl From<tokio_postgres::Error> for PolicyError {
    fn from(e: tokio_postgres::Error) -> Self {
        PolicyError::Db(e.into())
    }
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Collects SQL parameters and hands out their `$n` placeholders.
#[derive(Default)]
struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    fn push<T: ToSql + Sync + Send + 'static>(&mut self, v: T) -> String {
        self.values.push(Box::new(v));
        format!("${}", self.values.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The tenants whose shared policies are visible from `$requested`: itself, its ancestors and
/// the top tenant.
fn shared_owners_sql(requested: &str) -> String {
    format!(
        "(WITH RECURSIVE up(uuid, parent_uuid, depth) AS (
              SELECT uuid, parent_uuid, 0 FROM auth_tenant WHERE uuid = {requested}
              UNION ALL
              SELECT t.uuid, t.parent_uuid, up.depth + 1
              FROM auth_tenant t JOIN up ON t.uuid = up.parent_uuid
              WHERE up.uuid <> up.parent_uuid AND up.depth < 1000
          )
          SELECT uuid FROM up
          UNION SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)"
    )
}

/// SQL condition: `p` is visible from `scope`.
fn visible_sql(params: &mut Params, scope: &View) -> String {
    let tenants = params.push(scope.tenants.clone());
    let requested = params.push(scope.requested.clone());
    format!(
        "(p.tenant_uuid = ANY({tenants}) OR p.config_managed
          OR (p.shared AND p.tenant_uuid IN {}))",
        shared_owners_sql(&requested)
    )
}

/// A visible policy by uuid.
pub(crate) async fn get_visible<C: Db>(
    client: &C,
    uuid: &str,
    scope: &View,
) -> Result<Option<Policy>> {
    let mut params = Params::default();
    let visible = visible_sql(&mut params, scope);
    let id = params.push(uuid.to_string());
    let sql = format!("SELECT {COLUMNS} FROM auth_policy p WHERE p.uuid = {id} AND {visible}");
    let row = client.fetch_opt(sql.as_str(), &params.refs()).await?;
    Ok(row.as_ref().map(Policy::from_row))
}

/// A visible policy by slug (exact, case-sensitive, as the original's filter). When several
/// match, the one owned by a tenant of the scope wins, then a config-managed one.
pub(crate) async fn get_visible_by_slug<C: Db>(
    client: &C,
    slug: &str,
    scope: &View,
) -> Result<Option<Policy>> {
    let mut params = Params::default();
    let visible = visible_sql(&mut params, scope);
    let s = params.push(slug.to_string());
    let sql = format!(
        "SELECT {COLUMNS} FROM auth_policy p WHERE p.slug = {s} AND {visible}
         ORDER BY (p.tenant_uuid = ANY($1)) DESC, p.config_managed DESC, p.uuid LIMIT 1"
    );
    let row = client.fetch_opt(sql.as_str(), &params.refs()).await?;
    Ok(row.as_ref().map(Policy::from_row))
}

/// A policy by uuid, whatever its tenant.
pub(crate) async fn find<C: Db>(client: &C, uuid: &str) -> Result<Option<Policy>> {
    let sql = format!("SELECT {COLUMNS} FROM auth_policy p WHERE p.uuid = $1");
    let row = client.fetch_opt(sql.as_str(), &[&uuid]).await?;
    Ok(row.as_ref().map(Policy::from_row))
}

/// Like [`find`], locking the row until the end of the transaction.
pub(crate) async fn find_for_update<C: Db>(client: &C, uuid: &str) -> Result<Option<Policy>> {
    let sql = format!("SELECT {COLUMNS} FROM auth_policy p WHERE p.uuid = $1 FOR UPDATE");
    let row = client.fetch_opt(sql.as_str(), &[&uuid]).await?;
    Ok(row.as_ref().map(Policy::from_row))
}

/// `acl` without duplicates, first occurrences kept in order.
pub fn dedup_acl(acl: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    acl.iter()
        .filter(|a| seen.insert(a.as_str()))
        .cloned()
        .collect()
}

fn is_slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `s` matches `^[a-zA-Z0-9_-]+$` (no trailing newline allowed, unlike Python's `$`).
pub fn is_valid_slug(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_slug_char)
}

/// The slug the original derives from a name: the allowed characters only, at most 80.
pub fn slug_from_name(name: &str) -> String {
    name.chars()
        .filter(|c| is_slug_char(*c))
        .take(SLUG_MAX_CHARS)
        .collect()
}

fn random_slug() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    uuid::Uuid::new_v4().as_bytes()[..3]
        .iter()
        .map(|b| CHARS[*b as usize % CHARS.len()] as char)
        .collect()
}

async fn slug_taken<C: Db>(client: &C, slug: &str, tenant: &str) -> Result<bool> {
    let row = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_policy
                            WHERE lower(slug) = lower($1) AND tenant_uuid = $2)",
            &[&slug, &tenant],
        )
        .await?;
    Ok(row.get(0))
}

/// What a new policy is made of.
#[derive(Debug, Clone)]
pub struct NewPolicy {
    pub tenant_uuid: String,
    pub name: String,
    /// Generated from the name when `None`.
    pub slug: Option<String>,
    pub description: Option<String>,
    pub acl: Vec<String>,
    pub shared: bool,
    pub config_managed: bool,
}

/// Creates a policy (spec §8): slug generated when absent; a name or slug equal to a shared
/// policy of the tenant or of an ancestor, or (for a shared policy) to any policy of the tenant
/// or a descendant, is a conflict, as is a duplicate in the tenant.
pub(crate) async fn create<C: Db>(
    client: &C,
    new: &NewPolicy,
) -> std::result::Result<Policy, PolicyError> {
    let tenant = new.tenant_uuid.as_str();
    let slug = match &new.slug {
        Some(s) => s.clone(),
        None => {
            let from_name = slug_from_name(&new.name);
            if !from_name.is_empty() && !slug_taken(client, &from_name, tenant).await? {
                from_name
            } else {
                let mut found = None;
                for _ in 0..1000 {
                    let candidate = random_slug();
                    if !slug_taken(client, &candidate, tenant).await? {
                        found = Some(candidate);
                        break;
                    }
                }
                found.ok_or_else(|| PolicyError::Duplicate(new.name.clone()))?
            }
        }
    };
    let conflict_above = format!(
        "SELECT EXISTS (SELECT 1 FROM auth_policy p
                        WHERE p.shared AND (p.slug = $2 OR p.name = $3)
                          AND p.tenant_uuid IN {})",
        shared_owners_sql("$1")
    );
    let row = client
        .fetch_one(conflict_above.as_str(), &[&tenant, &slug, &new.name])
        .await?;
    if row.get::<_, bool>(0) {
        return Err(PolicyError::Duplicate(new.name.clone()));
    }
    if new.shared {
        let row = client
            .fetch_one(
                "WITH RECURSIVE down(uuid) AS (
                     SELECT uuid FROM auth_tenant WHERE uuid = $1
                     UNION
                     SELECT t.uuid FROM auth_tenant t JOIN down d ON t.parent_uuid = d.uuid
                 )
                 SELECT EXISTS (SELECT 1 FROM auth_policy p
                                WHERE (p.slug = $2 OR p.name = $3)
                                  AND p.tenant_uuid IN (SELECT uuid FROM down))",
                &[&tenant, &slug, &new.name],
            )
            .await?;
        if row.get::<_, bool>(0) {
            return Err(PolicyError::Duplicate(new.name.clone()));
        }
    }
    let acl = dedup_acl(&new.acl);
    let sql = format!(
        "INSERT INTO auth_policy AS p
             (name, slug, description, tenant_uuid, config_managed, shared, acl)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING {COLUMNS}"
    );
    match client
        .fetch_one(
            sql.as_str(),
            &[
                &new.name,
                &slug,
                &new.description,
                &tenant,
                &new.config_managed,
                &new.shared,
                &acl,
            ],
        )
        .await
    {
        Ok(row) => Ok(Policy::from_row(&row)),
        Err(e) if sqlstate(&e) == Some(UNIQUE_VIOLATION) => {
            Err(PolicyError::Duplicate(new.name.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Replaces name, description and ACL of a policy owned by one of `tenants`.
pub(crate) async fn update<C: Db>(
    client: &C,
    uuid: &str,
    tenants: &[String],
    name: &str,
    description: Option<&str>,
    acl: &[String],
) -> std::result::Result<Policy, PolicyError> {
    let acl = dedup_acl(acl);
    let sql = format!(
        "UPDATE auth_policy AS p SET name = $3, description = $4, acl = $5
         WHERE p.uuid = $1 AND p.tenant_uuid = ANY($2)
         RETURNING {COLUMNS}"
    );
    match client
        .fetch_opt(sql.as_str(), &[&uuid, &tenants, &name, &description, &acl])
        .await
    {
        Ok(Some(row)) => Ok(Policy::from_row(&row)),
        Ok(None) => Err(PolicyError::UnknownPolicy(uuid.to_string())),
        Err(e) if sqlstate(&e) == Some(UNIQUE_VIOLATION) => {
            Err(PolicyError::Duplicate(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes a policy owned by one of `tenants` (its associations go with it).
pub(crate) async fn delete<C: Db>(
    client: &C,
    uuid: &str,
    tenants: &[String],
) -> std::result::Result<(), PolicyError> {
    let n = client
        .exec(
            "DELETE FROM auth_policy WHERE uuid = $1 AND tenant_uuid = ANY($2)",
            &[&uuid, &tenants],
        )
        .await?;
    if n == 0 {
        return Err(PolicyError::UnknownPolicy(uuid.to_string()));
    }
    Ok(())
}

/// Appends `access` to the policy's ACL; already there → `DuplicateAccess`.
pub(crate) async fn add_access<C: Db>(
    client: &C,
    uuid: &str,
    access: &str,
) -> std::result::Result<(), PolicyError> {
    let n = client
        .exec(
            "UPDATE auth_policy SET acl = array_append(acl, $2::text)
             WHERE uuid = $1 AND NOT ($2::text = ANY(acl))",
            &[&uuid, &access],
        )
        .await?;
    if n > 0 {
        return Ok(());
    }
    if find(client, uuid).await?.is_some() {
        Err(PolicyError::DuplicateAccess(access.to_string()))
    } else {
        Err(PolicyError::UnknownPolicy(uuid.to_string()))
    }
}

/// Removes `access` from the policy's ACL (absent: nothing happens).
pub(crate) async fn remove_access<C: Db>(client: &C, uuid: &str, access: &str) -> Result<()> {
    client
        .exec(
            "UPDATE auth_policy SET acl = array_remove(acl, $2::text) WHERE uuid = $1",
            &[&uuid, &access],
        )
        .await?;
    Ok(())
}

/// Sort columns of the policy lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Name,
    Slug,
    Description,
    Uuid,
}

impl Order {
    fn column(self) -> &'static str {
        match self {
            Order::Name => "p.name",
            Order::Slug => "p.slug",
            Order::Description => "p.description",
            Order::Uuid => "p.uuid",
        }
    }
}

/// Parameters of a policy list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub order: Order,
    pub descending: bool,
    pub limit: Option<i64>,
    pub offset: i64,
    /// An `ILIKE` pattern matched against name and description.
    pub search: Option<String>,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub slug: Option<String>,
    pub user_uuid: Option<String>,
    pub group_uuid: Option<String>,
    pub tenant_uuid: Option<String>,
    /// `GET /policies` only: keep policies presented read-only (or not).
    pub read_only: Option<bool>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            order: Order::Name,
            descending: false,
            limit: None,
            offset: 0,
            search: None,
            uuid: None,
            name: None,
            slug: None,
            user_uuid: None,
            group_uuid: None,
            tenant_uuid: None,
            read_only: None,
        }
    }
}

/// Exact filters and search of `q`, ANDed. A value holding NUL can match nothing stored
/// (PostgreSQL text never holds NUL, and would refuse the parameter): the filter is FALSE.
fn filters_sql(params: &mut Params, q: &ListQuery) -> String {
    let values = [
        &q.uuid,
        &q.name,
        &q.slug,
        &q.user_uuid,
        &q.group_uuid,
        &q.tenant_uuid,
        &q.search,
    ];
    if values
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| v.contains('\0')))
    {
        return "FALSE".to_string();
    }
    let mut conds = Vec::new();
    if let Some(v) = &q.uuid {
        conds.push(format!("p.uuid = {}", params.push(v.clone())));
    }
    if let Some(v) = &q.name {
        conds.push(format!("p.name = {}", params.push(v.clone())));
    }
    if let Some(v) = &q.slug {
        conds.push(format!("p.slug = {}", params.push(v.clone())));
    }
    if let Some(v) = &q.user_uuid {
        conds.push(format!(
            "EXISTS (SELECT 1 FROM auth_user_policy f
                     WHERE f.policy_uuid = p.uuid AND f.user_uuid = {})",
            params.push(v.clone())
        ));
    }
    if let Some(v) = &q.group_uuid {
        conds.push(format!(
            "EXISTS (SELECT 1 FROM auth_group_policy f
                     WHERE f.policy_uuid = p.uuid AND f.group_uuid = {})",
            params.push(v.clone())
        ));
    }
    if let Some(v) = &q.tenant_uuid {
        conds.push(format!("p.tenant_uuid = {}", params.push(v.clone())));
    }
    if let Some(pattern) = &q.search {
        let s = params.push(pattern.clone());
        conds.push(format!("(p.name ILIKE {s} OR p.description ILIKE {s})"));
    }
    if conds.is_empty() {
        "TRUE".to_string()
    } else {
        conds.join(" AND ")
    }
}

fn page_sql(q: &ListQuery) -> String {
    let dir = if q.descending { "DESC" } else { "ASC" };
    let mut s = format!(" ORDER BY {} {dir}, p.uuid {dir}", q.order.column());
    if let Some(l) = q.limit {
        s.push_str(&format!(" LIMIT {l}"));
    }
    s.push_str(&format!(" OFFSET {}", q.offset));
    s
}

async fn count<C: Db>(client: &C, sql: &str, params: &Params) -> Result<i64> {
    let row = client.fetch_one(sql, &params.refs()).await?;
    Ok(row.get(0))
}

/// `GET /policies`: the visible policies matching `q`, and the number of visible policies
/// (ignoring filters and search).
pub(crate) async fn list<C: Db>(
    client: &C,
    scope: &View,
    q: &ListQuery,
) -> Result<(Vec<Policy>, i64)> {
    let mut params = Params::default();
    // Seeing every tenant, every policy is visible and none is shared from outside the view.
    let visible = if scope.every {
        "TRUE".to_string()
    } else {
        visible_sql(&mut params, scope)
    };
    let filters = filters_sql(&mut params, q);
    // $1 is the tenant list (see visible_sql).
    let read_only = match (q.read_only, scope.every) {
        (None, _) => "TRUE",
        (Some(true), false) => "(p.config_managed OR (p.shared AND NOT p.tenant_uuid = ANY($1)))",
        (Some(false), false) => "(p.tenant_uuid = ANY($1) AND NOT p.config_managed)",
        (Some(true), true) => "p.config_managed",
        (Some(false), true) => "NOT p.config_managed",
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM auth_policy p WHERE {visible} AND {filters} AND {read_only}{}",
        page_sql(q)
    );
    let rows = client.fetch(sql.as_str(), &params.refs()).await?;
    let items = rows.iter().map(Policy::from_row).collect();

    // Seeing every tenant, every policy: the tally (migration V18), not a scan of them all.
    let total = if scope.every {
        crate::tally::count(client, crate::tally::Tallied::Policies).await?
    } else {
        let mut params = Params::default();
        let visible = visible_sql(&mut params, scope);
        count(
            client,
            &format!("SELECT count(*) FROM auth_policy p WHERE {visible}"),
            &params,
        )
        .await?
    };
    Ok((items, total))
}

/// `GET /users/{u}/policies`: the policies attached to the user (any tenant), the number of them
/// and the number matching the filters.
pub(crate) async fn list_user_policies<C: Db>(
    client: &C,
    user_uuid: &str,
    q: &ListQuery,
) -> Result<(Vec<Policy>, i64, i64)> {
    let q = ListQuery {
        user_uuid: None,
        slug: None,
        read_only: None,
        ..q.clone()
    };
    let mut params = Params::default();
    let user = params.push(user_uuid.to_string());
    let base = format!(
        "FROM auth_policy p JOIN auth_user_policy a ON a.policy_uuid = p.uuid
         WHERE a.user_uuid = {user}"
    );
    let total = count(client, &format!("SELECT count(*) {base}"), &params).await?;
    let filters = filters_sql(&mut params, &q);
    let filtered = count(
        client,
        &format!("SELECT count(*) {base} AND {filters}"),
        &params,
    )
    .await?;
    let sql = format!("SELECT {COLUMNS} {base} AND {filters}{}", page_sql(&q));
    let rows = client.fetch(sql.as_str(), &params.refs()).await?;
    Ok((rows.iter().map(Policy::from_row).collect(), total, filtered))
}

/// `GET /groups/{g}/policies`: the group's policies visible from `scope`, the number of the
/// group's policies and the number matching the filters (both ignoring visibility, as the
/// original).
pub(crate) async fn list_group_policies<C: Db>(
    client: &C,
    group_uuid: &str,
    scope: &View,
    q: &ListQuery,
) -> Result<(Vec<Policy>, i64, i64)> {
    let q = ListQuery {
        group_uuid: None,
        slug: None,
        read_only: None,
        ..q.clone()
    };
    let mut params = Params::default();
    let group = params.push(group_uuid.to_string());
    let base = format!(
        "FROM auth_policy p JOIN auth_group_policy a ON a.policy_uuid = p.uuid
         WHERE a.group_uuid = {group}"
    );
    let total = count(client, &format!("SELECT count(*) {base}"), &params).await?;
    let filters = filters_sql(&mut params, &q);
    let filtered = count(
        client,
        &format!("SELECT count(*) {base} AND {filters}"),
        &params,
    )
    .await?;
    let visible = visible_sql(&mut params, scope);
    let sql = format!(
        "SELECT {COLUMNS} {base} AND {filters} AND {visible}{}",
        page_sql(&q)
    );
    let rows = client.fetch(sql.as_str(), &params.refs()).await?;
    Ok((rows.iter().map(Policy::from_row).collect(), total, filtered))
}

/// The uuid of a policy by slug (any case): `preferred_tenant`'s own if it has one, else any
/// tenant's.
pub(crate) async fn uuid_by_slug<C: Db>(
    client: &C,
    slug: &str,
    preferred_tenant: &str,
) -> Result<Option<String>> {
    if slug.contains('\0') {
        return Ok(None);
    }
    let row = client
        .fetch_opt(
            "SELECT uuid FROM auth_policy WHERE lower(slug) = lower($1)
             ORDER BY (tenant_uuid = $2) DESC LIMIT 1",
            &[&slug, &preferred_tenant],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Attaches a policy to a user (idempotent).
pub(crate) async fn add_user_policy<C: Db>(
    client: &C,
    user_uuid: &str,
    policy_uuid: &str,
) -> std::result::Result<(), PolicyError> {
    let user = client
        .fetch_opt(
            "SELECT 1 FROM auth_user WHERE uuid = $1 FOR KEY SHARE",
            &[&user_uuid],
        )
        .await?;
    if user.is_none() {
        return Err(PolicyError::UnknownUser(user_uuid.to_string()));
    }
    match client
        .exec(
            "INSERT INTO auth_user_policy (user_uuid, policy_uuid) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&user_uuid, &policy_uuid],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if sqlstate(&e) == Some(FK_VIOLATION) => {
            let constraint = e
                .as_db_error()
                .and_then(|d| d.constraint())
                .unwrap_or_default();
            if constraint.contains("user_uuid") {
                Err(PolicyError::UnknownUser(user_uuid.to_string()))
            } else {
                Err(PolicyError::UnknownPolicy(policy_uuid.to_string()))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Detaches a policy from a user; the number of associations removed.
pub(crate) async fn remove_user_policy<C: Db>(
    client: &C,
    user_uuid: &str,
    policy_uuid: &str,
) -> Result<u64> {
    Ok(client
        .exec(
            "DELETE FROM auth_user_policy WHERE user_uuid = $1 AND policy_uuid = $2",
            &[&user_uuid, &policy_uuid],
        )
        .await?)
}

/// The tenant of a user that belongs to one of `tenants` (`None`: no such user there). With
/// `lock`, the user row is locked against deletion (`FOR KEY SHARE`) until the end of the
/// transaction.
pub(crate) async fn user_tenant_in<C: Db>(
    client: &C,
    user_uuid: &str,
    tenants: &[String],
    lock: bool,
) -> Result<Option<String>> {
    let lock = if lock { " FOR KEY SHARE" } else { "" };
    let row = client
        .fetch_opt(
            &format!(
                "SELECT tenant_uuid FROM auth_user WHERE uuid = $1 AND tenant_uuid = ANY($2){lock}"
            ),
            &[&user_uuid, &tenants],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Whether the policy is attached to the user.
pub(crate) async fn user_has_policy<C: Db>(
    client: &C,
    user_uuid: &str,
    policy_uuid: &str,
) -> Result<bool> {
    let row = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_user_policy
                            WHERE user_uuid = $1 AND policy_uuid = $2)",
            &[&user_uuid, &policy_uuid],
        )
        .await?;
    Ok(row.get(0))
}

/// Whether the group exists and belongs to one of `tenants`.
pub(crate) async fn group_in_tenants<C: Db>(
    client: &C,
    group_uuid: &str,
    tenants: &[String],
) -> Result<bool> {
    let row = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_group WHERE uuid = $1 AND tenant_uuid = ANY($2))",
            &[&group_uuid, &tenants],
        )
        .await?;
    Ok(row.get(0))
}

/// Attaches a policy to a group (idempotent).
pub(crate) async fn add_group_policy<C: Db>(
    client: &C,
    group_uuid: &str,
    policy_uuid: &str,
) -> std::result::Result<(), PolicyError> {
    match client
        .exec(
            "INSERT INTO auth_group_policy (group_uuid, policy_uuid) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&group_uuid, &policy_uuid],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if sqlstate(&e) == Some(FK_VIOLATION) => {
            let constraint = e
                .as_db_error()
                .and_then(|d| d.constraint())
                .unwrap_or_default();
            if constraint.contains("group_uuid") {
                Err(PolicyError::UnknownGroup(group_uuid.to_string()))
            } else {
                Err(PolicyError::UnknownPolicy(policy_uuid.to_string()))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Detaches a policy from a group; the number of associations removed.
pub(crate) async fn remove_group_policy<C: Db>(
    client: &C,
    group_uuid: &str,
    policy_uuid: &str,
) -> Result<u64> {
    Ok(client
        .exec(
            "DELETE FROM auth_group_policy WHERE group_uuid = $1 AND policy_uuid = $2",
            &[&group_uuid, &policy_uuid],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(tenant: &str, config_managed: bool, shared: bool) -> Policy {
        Policy {
            uuid: "p".into(),
            tenant_uuid: tenant.into(),
            name: "n".into(),
            slug: "s".into(),
            description: None,
            acl: vec!["a".into()],
            config_managed,
            shared,
        }
    }

    fn scope(requested: &str, tenants: &[&str]) -> View {
        View {
            requested: requested.into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            every: false,
        }
    }

    #[test]
    fn presentation() {
        let child = scope("child", &["child"]);
        let top = scope("top", &["top", "child"]);
        // Own policy: as stored.
        let v = policy("child", false, false).to_json(Some(&child));
        assert_eq!(
            (
                v["tenant_uuid"].clone(),
                v["read_only"].clone(),
                v["shared"].clone()
            ),
            (json!("child"), json!(false), json!(false))
        );
        // Inherited shared: viewer's tenant, read-only, not shared.
        let v = policy("top", false, true).to_json(Some(&child));
        assert_eq!(
            (
                v["tenant_uuid"].clone(),
                v["read_only"].clone(),
                v["shared"].clone()
            ),
            (json!("child"), json!(true), json!(false))
        );
        // Own shared.
        let v = policy("top", false, true).to_json(Some(&top));
        assert_eq!(
            (
                v["tenant_uuid"].clone(),
                v["read_only"].clone(),
                v["shared"].clone()
            ),
            (json!("top"), json!(false), json!(true))
        );
        // Config-managed: always read-only.
        let v = policy("top", true, false).to_json(Some(&child));
        assert_eq!(
            (v["tenant_uuid"].clone(), v["read_only"].clone()),
            (json!("child"), json!(true))
        );
        let v = policy("top", true, false).to_json(None);
        assert_eq!(v["tenant_uuid"], json!("top"));
        assert_eq!(
            v.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
            [
                "acl",
                "description",
                "name",
                "read_only",
                "shared",
                "slug",
                "tenant_uuid",
                "uuid"
            ]
        );
    }

    #[test]
    fn read_only_rules() {
        let tenants = vec!["child".to_string()];
        assert!(policy("child", true, false).is_read_only_for(&tenants));
        assert!(policy("top", false, true).is_read_only_for(&tenants));
        assert!(!policy("child", false, true).is_read_only_for(&tenants));
        assert!(!policy("child", false, false).is_read_only_for(&tenants));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug_from_name("My policy (v2)!"), "Mypolicyv2");
        assert_eq!(slug_from_name("a-b_c"), "a-b_c");
        assert_eq!(slug_from_name("ééé"), "");
        assert_eq!(slug_from_name(&"x".repeat(100)).len(), 80);
        let r = random_slug();
        assert_eq!(r.len(), 3);
        assert!(r
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn acl_dedup_keeps_first_occurrences() {
        let acl: Vec<String> = ["b", "a", "b", "c", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(dedup_acl(&acl), ["b", "a", "c"]);
    }
}
