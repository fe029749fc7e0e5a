//! Groups and user ↔ group memberships (spec management §7 and §9): storage queries only, no
//! HTTP. Every function takes a `Db` so that a handler can run several of them in one
//! transaction.

use crate::sql::Db;
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use crate::error::Error;
pub use crate::sql::Page;
use crate::sql::Where;

/// Longest accepted group name (characters).
pub const NAME_MAX_CHARS: usize = 128;
/// Longest slug (characters).
pub const SLUG_MAX_CHARS: usize = 80;
/// Length of a random slug, used when the slug derived from the name is taken.
pub const RANDOM_SLUG_CHARS: usize = 3;

const GROUP_COLUMNS: &str = "g.uuid, g.name, g.slug, g.tenant_uuid, g.system_managed";

/// A group row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    pub tenant_uuid: String,
    pub system_managed: bool,
}

impl Group {
    fn from_row(row: &Row) -> Group {
        Group {
            uuid: row.get(0),
            name: row.get(1),
            slug: row.get(2),
            tenant_uuid: row.get(3),
            system_managed: row.get(4),
        }
    }

    /// The API representation: `system_managed` is repeated as `read_only`.
    pub fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "name": self.name,
            "slug": self.slug,
            "tenant_uuid": self.tenant_uuid,
            "read_only": self.system_managed,
            "system_managed": self.system_managed,
        })
    }
}

/// What can go wrong while writing groups or memberships.
#[derive(Debug)]
pub enum GroupError {
    /// Name or slug already used in the tenant.
    Duplicate,
    /// The owner tenant vanished (foreign key).
    UnknownTenant,
    /// The group vanished (foreign key).
    UnknownGroup,
    /// The user vanished (foreign key).
    UnknownUser,
    Storage(Error),
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupError::Duplicate => write!(f, "duplicate group"),
            GroupError::UnknownTenant => write!(f, "unknown tenant"),
            GroupError::UnknownGroup => write!(f, "unknown group"),
            GroupError::UnknownUser => write!(f, "unknown user"),
            GroupError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GroupError {}

impl From<tokio_postgres::Error> for GroupError {
    fn from(e: tokio_postgres::Error) -> Self {
        let constraint = e
            .as_db_error()
            .and_then(|d| d.constraint())
            .unwrap_or("")
            .to_string();
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => GroupError::Duplicate,
            Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => {
                if constraint.contains("tenant_uuid") {
                    GroupError::UnknownTenant
                } else if constraint.contains("group_uuid") {
                    GroupError::UnknownGroup
                } else if constraint.contains("user_uuid") {
                    GroupError::UnknownUser
                } else {
                    GroupError::Storage(e.into())
                }
            }
            _ => GroupError::Storage(e.into()),
        }
    }
}

impl From<Error> for GroupError {
    fn from(e: Error) -> Self {
        GroupError::Storage(e)
    }
}

impl From<deadpool_postgres::PoolError> for GroupError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        GroupError::Storage(e.into())
    }
}

// ------------------------------------------------------------------------------------------------
// Slugs
// ------------------------------------------------------------------------------------------------

fn is_slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `s` matches `^[a-zA-Z0-9_-]+$` (no trailing newline allowed, unlike Python's `$`).
pub fn is_valid_slug(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_slug_char)
}

/// The slug derived from a name: the allowed characters only, cut to 80.
pub fn slug_from_name(name: &str) -> String {
    name.chars()
        .filter(|c| is_slug_char(*c))
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

async fn slug_taken<C: Db>(client: &C, tenant_uuid: &str, slug: &str) -> Result<bool, GroupError> {
    let row = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_group
                            WHERE tenant_uuid = $1 AND lower(slug) = lower($2))",
            &[&tenant_uuid, &slug],
        )
        .await?;
    Ok(row.get(0))
}

/// The slug of a new group without one: derived from the name, else (empty or taken in the
/// tenant, compared case-insensitively) random.
pub(crate) async fn generate_slug<C: Db>(
    client: &C,
    tenant_uuid: &str,
    name: &str,
) -> Result<String, GroupError> {
    let derived = slug_from_name(name);
    if !derived.is_empty() && !slug_taken(client, tenant_uuid, &derived).await? {
        return Ok(derived);
    }
    // 36^3 = 46 656 possibilities: give up (409) only if the tenant is practically full.
    for _ in 0..1000 {
        let candidate = random_slug(RANDOM_SLUG_CHARS);
        if !slug_taken(client, tenant_uuid, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(GroupError::Duplicate)
}

// ------------------------------------------------------------------------------------------------
// Groups
// ------------------------------------------------------------------------------------------------

/// Creates a group in `tenant_uuid`; the slug is generated when `slug` is `None`.
pub(crate) async fn create<C: Db>(
    client: &C,
    tenant_uuid: &str,
    name: &str,
    slug: Option<&str>,
    system_managed: bool,
) -> Result<Group, GroupError> {
    let slug = match slug {
        Some(s) => s.to_string(),
        None => generate_slug(client, tenant_uuid, name).await?,
    };
    let row = client
        .fetch_one(
            "INSERT INTO auth_group AS g (name, slug, tenant_uuid, system_managed)
             VALUES ($1, $2, $3, $4)
             RETURNING g.uuid, g.name, g.slug, g.tenant_uuid, g.system_managed",
            &[&name, &slug, &tenant_uuid, &system_managed],
        )
        .await?;
    Ok(Group::from_row(&row))
}

/// A group by uuid if it belongs to one of `tenants`. With `lock`, the row is locked
/// (`FOR UPDATE`) until the end of the transaction.
pub(crate) async fn find_in_tenants<C: Db>(
    client: &C,
    uuid: &str,
    tenants: &[String],
    lock: bool,
) -> Result<Option<Group>, GroupError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = client
        .fetch_opt(
            &format!(
                "SELECT {GROUP_COLUMNS} FROM auth_group g
                 WHERE g.uuid = $1 AND g.tenant_uuid = ANY($2){lock}"
            ),
            &[&uuid, &tenants],
        )
        .await?;
    Ok(row.as_ref().map(Group::from_row))
}

/// Renames a group (the slug never changes). `None` when the group is not in `tenants`.
pub(crate) async fn rename<C: Db>(
    client: &C,
    uuid: &str,
    name: &str,
    tenants: &[String],
) -> Result<Option<Group>, GroupError> {
    let row = client
        .fetch_opt(
            "UPDATE auth_group AS g SET name = $2
             WHERE g.uuid = $1 AND g.tenant_uuid = ANY($3)
             RETURNING g.uuid, g.name, g.slug, g.tenant_uuid, g.system_managed",
            &[&uuid, &name, &tenants],
        )
        .await?;
    Ok(row.as_ref().map(Group::from_row))
}

/// Deletes a group (memberships and policy associations go with it). Returns whether it existed.
pub(crate) async fn delete<C: Db>(client: &C, uuid: &str) -> Result<bool, GroupError> {
    let n = client
        .exec("DELETE FROM auth_group WHERE uuid = $1", &[&uuid])
        .await?;
    Ok(n > 0)
}

// ------------------------------------------------------------------------------------------------
// Memberships
// ------------------------------------------------------------------------------------------------

/// The tenant of a user, when the user belongs to one of `tenants` (`None` for all tenants).
pub(crate) async fn user_tenant<C: Db>(
    client: &C,
    user_uuid: &str,
    tenants: Option<&[String]>,
) -> Result<Option<String>, GroupError> {
    let row =
        match tenants {
            Some(t) => client
                .fetch_opt(
                    "SELECT tenant_uuid FROM auth_user WHERE uuid = $1 AND tenant_uuid = ANY($2)",
                    &[&user_uuid, &t],
                )
                .await?,
            None => {
                client
                    .fetch_opt(
                        "SELECT tenant_uuid FROM auth_user WHERE uuid = $1",
                        &[&user_uuid],
                    )
                    .await?
            }
        };
    Ok(row.map(|r| r.get(0)))
}

/// Adds a user to a group; already a member is fine.
pub(crate) async fn add_user<C: Db>(
    client: &C,
    group_uuid: &str,
    user_uuid: &str,
) -> Result<(), GroupError> {
    client
        .exec(
            "INSERT INTO auth_user_group (group_uuid, user_uuid) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&group_uuid, &user_uuid],
        )
        .await?;
    Ok(())
}

/// Removes a user from a group. Returns whether the membership existed.
pub(crate) async fn remove_user<C: Db>(
    client: &C,
    group_uuid: &str,
    user_uuid: &str,
) -> Result<bool, GroupError> {
    let n = client
        .exec(
            "DELETE FROM auth_user_group WHERE group_uuid = $1 AND user_uuid = $2",
            &[&group_uuid, &user_uuid],
        )
        .await?;
    Ok(n > 0)
}

// ------------------------------------------------------------------------------------------------
// Listing
// ------------------------------------------------------------------------------------------------

/// Which groups a list covers before filters (what `total` counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GroupScope {
    /// Owner tenants (`None`: any tenant).
    pub tenants: Option<Vec<String>>,
    /// Only the groups this user belongs to.
    pub member: Option<String>,
}

/// Exact filters and search of group lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub slug: Option<String>,
    pub user_uuid: Option<String>,
    pub read_only: Option<bool>,
    /// Ignored when empty, as the original.
    pub policy_uuid: Option<String>,
    /// Ignored when empty, as the original.
    pub policy_slug: Option<String>,
    /// An `ILIKE` pattern on the name.
    pub search: Option<String>,
}

fn group_where(scope: &GroupScope, filter: Option<&GroupFilter>) -> Where {
    let mut w = Where::default();
    if let Some(t) = &scope.tenants {
        let p = w.param(t.clone());
        w.raw(format!("g.tenant_uuid = ANY({p})"));
    }
    if let Some(m) = &scope.member {
        w.text(
            "EXISTS (SELECT 1 FROM auth_user_group ug
                     WHERE ug.group_uuid = g.uuid AND ug.user_uuid = {})",
            m,
        );
    }
    let Some(f) = filter else {
        return w;
    };
    if let Some(v) = &f.uuid {
        w.text("g.uuid = {}", v);
    }
    if let Some(v) = &f.name {
        w.text("g.name = {}", v);
    }
    if let Some(v) = &f.slug {
        w.text("g.slug = {}", v);
    }
    if let Some(v) = &f.user_uuid {
        w.text(
            "EXISTS (SELECT 1 FROM auth_user_group ug
                     WHERE ug.group_uuid = g.uuid AND ug.user_uuid = {})",
            v,
        );
    }
    if let Some(b) = f.read_only {
        let p = w.param(b);
        w.raw(format!("g.system_managed = {p}"));
    }
    if let Some(v) = f.policy_uuid.as_deref().filter(|v| !v.is_empty()) {
        w.text(
            "EXISTS (SELECT 1 FROM auth_group_policy gp
                     WHERE gp.group_uuid = g.uuid AND gp.policy_uuid = {})",
            v,
        );
    }
    if let Some(v) = f.policy_slug.as_deref().filter(|v| !v.is_empty()) {
        w.text(
            "EXISTS (SELECT 1 FROM auth_group_policy gp
                     JOIN auth_policy p ON p.uuid = gp.policy_uuid
                     WHERE gp.group_uuid = g.uuid AND p.slug = {})",
            v,
        );
    }
    if let Some(v) = &f.search {
        w.text("g.name ILIKE {}", v);
    }
    w
}

/// Sort columns of group lists.
pub const GROUP_SORT_COLUMNS: &[(&str, &str)] = &[("name", "g.name"), ("uuid", "g.uuid")];

/// The groups of `scope` matching `filter`, sorted and paginated.
pub(crate) async fn list<C: Db>(
    client: &C,
    scope: &GroupScope,
    filter: &GroupFilter,
    page: &Page,
) -> Result<Vec<Group>, GroupError> {
    let w = group_where(scope, Some(filter));
    let sql = format!(
        "SELECT {GROUP_COLUMNS} FROM auth_group g WHERE {}{}",
        w.sql(),
        page.sql(GROUP_SORT_COLUMNS, "g.uuid")
    );
    let rows = client.fetch(&sql, &w.refs()).await?;
    Ok(rows.iter().map(Group::from_row).collect())
}

/// How many groups `scope` holds (`filter` `None`) or how many of them match `filter`.
pub(crate) async fn count<C: Db>(
    client: &C,
    scope: &GroupScope,
    filter: Option<&GroupFilter>,
) -> Result<i64, GroupError> {
    // Every group (from the top tenant, no member, no filter): the tally (migration V18), not
    // a scan of them all.
    if scope.tenants.is_none() && scope.member.is_none() && filter.is_none() {
        return crate::tally::count(client, crate::tally::Tallied::Groups)
            .await
            .map_err(Into::into);
    }
    let w = group_where(scope, filter);
    let sql = format!("SELECT count(*) FROM auth_group g WHERE {}", w.sql());
    let row = client.fetch_one(&sql, &w.refs()).await?;
    Ok(row.get(0))
}

/// Exact filters and search of user lists (`GET /groups/{g}/users`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub uuid: Option<String>,
    pub username: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub purpose: Option<String>,
    pub email_address: Option<String>,
    pub group_uuid: Option<String>,
    /// An `ILIKE` pattern on firstname, lastname, username and any e-mail address.
    pub search: Option<String>,
}

fn member_where(group_uuid: &str, filter: Option<&UserFilter>) -> Where {
    let mut w = Where::default();
    w.text(
        "EXISTS (SELECT 1 FROM auth_user_group ug
                 WHERE ug.user_uuid = u.uuid AND ug.group_uuid = {})",
        group_uuid,
    );
    let Some(f) = filter else {
        return w;
    };
    if let Some(v) = &f.uuid {
        w.text("u.uuid = {}", v);
    }
    if let Some(v) = &f.username {
        w.text("u.username = {}", v);
    }
    if let Some(v) = &f.firstname {
        w.text("u.firstname = {}", v);
    }
    if let Some(v) = &f.lastname {
        w.text("u.lastname = {}", v);
    }
    if let Some(v) = &f.purpose {
        w.text("u.purpose = {}", v);
    }
    if let Some(v) = &f.email_address {
        w.text(
            "EXISTS (SELECT 1 FROM auth_email e WHERE e.user_uuid = u.uuid AND e.address = {})",
            v,
        );
    }
    if let Some(v) = &f.group_uuid {
        w.text(
            "EXISTS (SELECT 1 FROM auth_user_group ug2
                     WHERE ug2.user_uuid = u.uuid AND ug2.group_uuid = {})",
            v,
        );
    }
    if let Some(v) = &f.search {
        // The users' search lines first (one trigram index, as `GET /users?search=`: see
        // `users::SEARCH_TEXT`), for a pattern that matches any text containing a match: one
        // wrapped in `%`, and without a backslash (which escapes the next character here, as
        // in the original: `%a\%` must match a column that ends with `a%`, and a line that holds
        // it may not end there).
        if crate::users::matches_within(v) && !v.contains('\\') {
            w.text(&format!("{} ILIKE {{}}", crate::users::SEARCH_TEXT), v);
        }
        w.text(
            "(u.firstname ILIKE {p} OR u.lastname ILIKE {p} OR u.username ILIKE {p}
              OR EXISTS (SELECT 1 FROM auth_email e
                         WHERE e.user_uuid = u.uuid AND e.address ILIKE {p}))"
                .replace("{p}", "{}")
                .as_str(),
            v,
        );
    }
    w
}

/// Sort columns of member lists.
pub const MEMBER_SORT_COLUMNS: &[(&str, &str)] = &[("username", "u.username")];

/// The members of a group (the user representation of the users resource).
pub(crate) async fn list_members<C: Db>(
    client: &C,
    group_uuid: &str,
    filter: &UserFilter,
    page: &Page,
) -> Result<Vec<Value>, GroupError> {
    let w = member_where(group_uuid, Some(filter));
    let sql = format!(
        "SELECT u.uuid, u.username, u.firstname, u.lastname, u.purpose, u.enabled,
                u.tenant_uuid, u.authentication_method,
                COALESCE((SELECT json_agg(json_build_object(
                                     'uuid', e.uuid, 'address', e.address,
                                     'main', e.main, 'confirmed', e.confirmed)
                                 ORDER BY e.main DESC, e.address, e.uuid)
                          FROM auth_email e WHERE e.user_uuid = u.uuid), '[]'::json)
         FROM auth_user u WHERE {}{}",
        w.sql(),
        page.sql(MEMBER_SORT_COLUMNS, "u.uuid")
    );
    let rows = client.fetch(&sql, &w.refs()).await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "uuid": r.get::<_, String>(0),
                "username": r.get::<_, Option<String>>(1),
                "firstname": r.get::<_, Option<String>>(2),
                "lastname": r.get::<_, Option<String>>(3),
                "purpose": r.get::<_, String>(4),
                "enabled": r.get::<_, bool>(5),
                "tenant_uuid": r.get::<_, String>(6),
                "authentication_method": r.get::<_, String>(7),
                "emails": r.get::<_, Value>(8),
            })
        })
        .collect())
}

/// How many members a group has (`filter` `None`) or how many of them match `filter`.
pub(crate) async fn count_members<C: Db>(
    client: &C,
    group_uuid: &str,
    filter: Option<&UserFilter>,
) -> Result<i64, GroupError> {
    let w = member_where(group_uuid, filter);
    let sql = format!("SELECT count(*) FROM auth_user u WHERE {}", w.sql());
    let row = client.fetch_one(&sql, &w.refs()).await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug_from_name("Hello World! été_x-1"), "HelloWorldt_x-1");
        assert_eq!(slug_from_name(&"a".repeat(100)).len(), 80);
        assert_eq!(slug_from_name("!!!"), "");
        assert!(is_valid_slug("a-B_9"));
        assert!(!is_valid_slug(""));
        assert!(!is_valid_slug("a b"));
        assert!(!is_valid_slug("abc\n"));
        for _ in 0..100 {
            let s = random_slug(3);
            assert_eq!(s.len(), 3);
            assert!(s
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }
    }

    #[test]
    fn page_sql_uses_the_whitelist() {
        let p = Page {
            order: "uuid; DROP TABLE x".into(),
            descending: true,
            limit: Some(2),
            offset: 1,
        };
        assert_eq!(
            p.sql(GROUP_SORT_COLUMNS, "g.uuid"),
            " ORDER BY g.name DESC, g.uuid DESC LIMIT 2 OFFSET 1"
        );
        let p = Page {
            order: "uuid".into(),
            descending: false,
            limit: None,
            offset: 0,
        };
        assert_eq!(
            p.sql(GROUP_SORT_COLUMNS, "g.uuid"),
            " ORDER BY g.uuid ASC, g.uuid ASC OFFSET 0"
        );
    }

    #[test]
    fn nul_filters_match_nothing() {
        let f = GroupFilter {
            name: Some("a\0b".into()),
            ..Default::default()
        };
        let w = group_where(&GroupScope::default(), Some(&f));
        assert_eq!(w.sql(), "FALSE");
        assert!(w.refs().is_empty());
    }
}
