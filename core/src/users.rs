//! Users (spec management §2, core §3.4): storage of users and their e-mail addresses, the login
//! look-up used by the `wazo_user` backend, password storage, and the login-uniqueness rule
//! (usernames and e-mail addresses are unique case-insensitively across all tenants, usernames
//! and addresses included together).
//!
//! Login uniqueness spans two tables (a username must not equal another user's address), which no
//! index can enforce; every transaction that writes a login therefore first takes
//! [`lock_logins`] on the lower-cased login, then checks [`login_in_use`], then writes.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::sql::Db;
use regex::Regex;
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::defaults::all_users_group_slug;
use crate::error::{Error, Result};
use crate::events::{self, Event};
use crate::password::StoredPassword;
use crate::scope::Listed;

/// The purposes a user may have.
pub const PURPOSES: [&str; 3] = ["user", "internal", "external_api"];

/// Authentication methods whose passwords are managed outside wazo-auth.
pub const EXTERNAL_AUTH_METHODS: [&str; 2] = ["saml", "ldap"];

/// Namespace (first key) of the advisory locks taken on logins.
const LOGIN_LOCK_NAMESPACE: i32 = 0x6c6f_6769; // "logi"

/// An e-mail address of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub uuid: String,
    pub address: String,
    pub main: bool,
    pub confirmed: bool,
}

impl Email {
    pub fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "address": self.address,
            "main": self.main,
            "confirmed": self.confirmed,
        })
    }
}

/// A user as the API shows it (never with its password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uuid: String,
    pub username: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub purpose: String,
    pub enabled: bool,
    pub tenant_uuid: String,
    pub authentication_method: String,
    pub emails: Vec<Email>,
}

impl User {
    /// The user object of the API.
    pub fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "username": self.username,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "purpose": self.purpose,
            "enabled": self.enabled,
            "tenant_uuid": self.tenant_uuid,
            "authentication_method": self.authentication_method,
            "emails": self.emails.iter().map(Email::to_json).collect::<Vec<_>>(),
        })
    }

    /// The login of the user for a password change: its username, else its main confirmed
    /// address.
    pub fn login(&self) -> Option<&str> {
        if let Some(u) = self.username.as_deref().filter(|u| !u.is_empty()) {
            return Some(u);
        }
        self.emails
            .iter()
            .find(|e| e.main && e.confirmed)
            .map(|e| e.address.as_str())
    }
}

/// What the login look-up of the `wazo_user` backend needs about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub uuid: String,
    pub username: Option<String>,
    pub tenant_uuid: String,
    pub purpose: String,
    pub enabled: bool,
    pub authentication_method: String,
    /// `default_authentication_method` of the user's tenant.
    pub tenant_default_authentication_method: String,
    /// `None` when the user has no (usable) password.
    pub password: Option<StoredPassword>,
}

impl UserRecord {
    /// The method that applies: the user's own, or its tenant's when it is `default`.
    pub fn effective_authentication_method(&self) -> &str {
        effective_method(
            &self.authentication_method,
            &self.tenant_default_authentication_method,
        )
    }
}

/// The method that applies to a user: its own, or its tenant's when it is `default`.
pub fn effective_method<'a>(user_method: &'a str, tenant_default: &'a str) -> &'a str {
    if user_method == "default" {
        tenant_default
    } else {
        user_method
    }
}

/// Whether the password of a user with this effective method is managed externally.
pub fn is_external_method(method: &str) -> bool {
    EXTERNAL_AUTH_METHODS.contains(&method)
}

/// The user of a password login ([`find_enabled_user_by_login`]): a user with that confirmed
/// e-mail first, else a user with that username. One statement, as it runs at every password
/// login; its columns are read by `record_from_row`. Each way of matching is its own index
/// look-up (`lower(address)`, `lower(username)`, both unique): one condition `EXISTS (e-mail)
/// OR username` could use neither index, and scanned every user (about 100 ms at a million).
pub const LOGIN_USER_SQL: &str = "SELECT u.uuid, u.username, u.tenant_uuid, u.purpose, u.enabled,
        u.authentication_method, t.default_authentication_method,
        u.password_scheme, u.password_hash, u.password_salt
     FROM (SELECT e.user_uuid AS uuid, 0 AS rank FROM auth_email e
           WHERE e.confirmed AND lower(e.address) = lower($1)
           UNION ALL
           SELECT n.uuid, 1 FROM auth_user n WHERE lower(n.username) = lower($1)) m
     JOIN auth_user u ON u.uuid = m.uuid
     JOIN auth_tenant t ON t.uuid = u.tenant_uuid
     WHERE u.enabled
     ORDER BY m.rank
     LIMIT 1";

fn record_from_row(row: &Row) -> UserRecord {
    let scheme: Option<String> = row.get(7);
    UserRecord {
        uuid: row.get(0),
        username: row.get(1),
        tenant_uuid: row.get(2),
        purpose: row.get(3),
        enabled: row.get(4),
        authentication_method: row.get(5),
        tenant_default_authentication_method: row.get(6),
        password: StoredPassword::from_columns(scheme.as_deref(), row.get(8), row.get(9)),
    }
}

/// The enabled user whose login is `login` (spec core §3.4): first a user having a **confirmed**
/// address equal to it (case-insensitive), else a user whose username equals it
/// (case-insensitive). An empty login finds nobody. Not on behalf of a caller (no tenant
/// scope): for the logins (the password is the credential).
pub async fn find_enabled_user_by_login<C: Db>(
    client: &C,
    login: &str,
) -> Result<Option<UserRecord>> {
    if login.is_empty() || login.contains('\0') {
        return Ok(None);
    }
    let row = client.fetch_opt_cached(LOGIN_USER_SQL, &[&login]).await?;
    Ok(row.map(|r| record_from_row(&r)))
}

/// Stores a new password for a user (no-op for an unknown user).
pub(crate) async fn set_password<C: Db>(
    client: &C,
    user_uuid: &str,
    password: &StoredPassword,
) -> Result<()> {
    client
        .exec(
            "UPDATE auth_user
             SET password_hash = $2, password_salt = $3, password_scheme = $4
             WHERE uuid = $1",
            &[
                &user_uuid,
                &password.hash,
                &password.salt,
                &password.scheme.as_str(),
            ],
        )
        .await?;
    Ok(())
}

/// Deletes every session of a user (sessions having a token whose `auth_id` is the user uuid;
/// their tokens cascade) and every refresh token of the user, with their events
/// (`auth_session_deleted` for each session, `auth_refresh_token_deleted` for each refresh
/// token). Run it in the transaction of the change, before the user row is deleted. Returns the
/// deleted session uuids.
pub(crate) async fn delete_user_sessions<C: Db>(
    client: &C,
    user_uuid: &str,
) -> Result<Vec<String>> {
    let rows = client
        .fetch(
            "DELETE FROM auth_session
             WHERE uuid IN (SELECT session_uuid FROM auth_token WHERE auth_id = $1)
             RETURNING uuid, tenant_uuid",
            &[&user_uuid],
        )
        .await?;
    // Better than the original: the user's refresh tokens go too (a disabled user, or one whose
    // password changed, must not come back through an old refresh token).
    let tokens = client
        .fetch(
            "DELETE FROM auth_refresh_token r USING auth_user u
             WHERE r.user_uuid = $1 AND u.uuid = r.user_uuid
             RETURNING r.client_id, r.mobile, u.tenant_uuid",
            &[&user_uuid],
        )
        .await?;
    let ended: Vec<Event> = rows
        .iter()
        .map(|r| Event::session_deleted(r.get(0), r.get(1), Some(user_uuid)))
        .chain(
            tokens
                .iter()
                .map(|t| Event::refresh_token_deleted(t.get(0), t.get(1), t.get(2), user_uuid)),
        )
        .collect();
    events::record(client, &ended).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Serialises, until the end of the current transaction, every writer of one of `logins`
/// (compared lower-cased). Call it inside a transaction, before [`login_in_use`] and the write.
/// Locks are taken in a fixed order so that two writers cannot deadlock.
pub(crate) async fn lock_logins<C: Db>(client: &C, logins: &[&str]) -> Result<()> {
    let logins: Vec<&str> = logins
        .iter()
        .copied()
        .filter(|l| !l.is_empty() && !l.contains('\0'))
        .collect();
    if logins.is_empty() {
        return Ok(());
    }
    let rows = client
        .fetch(
            "SELECT DISTINCT hashtext(lower(x)) AS k FROM unnest($1::text[]) AS x ORDER BY k",
            &[&logins],
        )
        .await?;
    for row in rows {
        let key: i32 = row.get(0);
        client
            .exec(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&LOGIN_LOCK_NAMESPACE, &key],
            )
            .await?;
    }
    Ok(())
}

/// Whether `login` equals (case-insensitively) the username or any address of a user other than
/// `ignored_user`.
pub(crate) async fn login_in_use<C: Db>(
    client: &C,
    login: &str,
    ignored_user: Option<&str>,
) -> Result<bool> {
    if login.contains('\0') {
        return Ok(false);
    }
    let row = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_user
                            WHERE lower(username) = lower($1)
                              AND ($2::text IS NULL OR uuid <> $2))
                 OR EXISTS (SELECT 1 FROM auth_email
                            WHERE lower(address) = lower($1)
                              AND ($2::text IS NULL OR user_uuid <> $2))",
            &[&login, &ignored_user],
        )
        .await?;
    Ok(row.get(0))
}

/// Why a write was refused.
#[derive(Debug)]
pub enum WriteError {
    /// `field` (`uuid`, `username` or `email_address`) is already used by `value`.
    Conflict {
        field: &'static str,
        value: String,
    },
    Storage(Error),
}

impl From<Error> for WriteError {
    fn from(e: Error) -> Self {
        WriteError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError::Storage(e.into())
    }
}

/// Maps a unique violation of the user/e-mail constraints to the matching conflict.
fn unique_violation(
    e: tokio_postgres::Error,
    uuid: &str,
    username: Option<&str>,
    email: Option<&str>,
) -> WriteError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        let constraint = e
            .as_db_error()
            .and_then(|d| d.constraint())
            .unwrap_or_default();
        let conflict = match constraint {
            "auth_user_pkey" => Some(("uuid", uuid)),
            "auth_user__idx__username_lower" => username.map(|u| ("username", u)),
            "auth_email__idx__address_lower" => email.map(|a| ("email_address", a)),
            _ => None,
        };
        if let Some((field, value)) = conflict {
            return WriteError::Conflict {
                field,
                value: value.to_string(),
            };
        }
    }
    WriteError::Storage(e.into())
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Canonical lower-case hyphenated uuid, or `None` to generate one.
    pub uuid: Option<String>,
    pub username: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub purpose: String,
    pub enabled: bool,
    pub tenant_uuid: String,
    pub authentication_method: String,
    pub password: Option<StoredPassword>,
    pub email_address: Option<String>,
    /// Whether `email_address` is stored as confirmed.
    pub email_confirmed: bool,
}

/// Inserts the row of a new user under `uuid` (no address, no group): the caller holds the
/// login locks and has checked the logins (see [`crate::services::users::create_user_in`]).
pub(crate) async fn insert_user<C: Db>(
    client: &C,
    uuid: &str,
    new: &NewUser,
) -> std::result::Result<(), WriteError> {
    let username = new.username.as_deref();
    let (hash, salt, scheme) = match &new.password {
        Some(p) => (
            Some(p.hash.clone()),
            p.salt.clone(),
            Some(p.scheme.as_str()),
        ),
        None => (None, None, None),
    };
    client
        .exec(
            "INSERT INTO auth_user (uuid, username, firstname, lastname, purpose, enabled,
                                    tenant_uuid, authentication_method,
                                    password_hash, password_salt, password_scheme)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &uuid,
                &username,
                &new.firstname,
                &new.lastname,
                &new.purpose,
                &new.enabled,
                &new.tenant_uuid,
                &new.authentication_method,
                &hash,
                &salt,
                &scheme,
            ],
        )
        .await
        .map_err(|e| unique_violation(e, uuid, username, new.email_address.as_deref()))?;
    Ok(())
}

/// Inserts `address` as the main address of the new user `user_uuid` (`new` names the user's
/// other logins, for the conflict reported).
pub(crate) async fn insert_main_email<C: Db>(
    client: &C,
    user_uuid: &str,
    new: &NewUser,
    address: &str,
) -> std::result::Result<Email, WriteError> {
    let email_uuid = uuid::Uuid::new_v4().to_string();
    client
        .exec(
            "INSERT INTO auth_email (uuid, address, confirmed, main, user_uuid)
             VALUES ($1, $2, $3, true, $4)",
            &[&email_uuid, &address, &new.email_confirmed, &user_uuid],
        )
        .await
        .map_err(|e| unique_violation(e, user_uuid, new.username.as_deref(), Some(address)))?;
    Ok(Email {
        uuid: email_uuid,
        address: address.to_string(),
        main: true,
        confirmed: new.email_confirmed,
    })
}

/// Adds a user to its tenant's all-users group; `false` when the tenant has none.
pub(crate) async fn join_all_users_group<C: Db>(
    client: &C,
    tenant_uuid: &str,
    user_uuid: &str,
) -> Result<bool> {
    let added = client
        .exec(
            "INSERT INTO auth_user_group (group_uuid, user_uuid)
             SELECT uuid, $2 FROM auth_group
             WHERE tenant_uuid = $1 AND lower(slug) = lower($3)
             ON CONFLICT DO NOTHING",
            &[&tenant_uuid, &user_uuid, &all_users_group_slug(tenant_uuid)],
        )
        .await?;
    Ok(added > 0)
}

/// A user holding a login, with its stored password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginHolder {
    pub uuid: String,
    /// `None` when the user has no (usable) password.
    pub password: Option<StoredPassword>,
}

/// A user, enabled or not, whose username or any address (confirmed or not) equals `login`
/// (case-insensitive). Call it under [`lock_logins`] for an answer that holds until the end of
/// the transaction.
pub(crate) async fn find_login_holder<C: Db>(
    client: &C,
    login: &str,
) -> Result<Option<LoginHolder>> {
    if login.contains('\0') {
        return Ok(None);
    }
    let row = client
        .fetch_opt(
            "SELECT u.uuid, u.password_scheme, u.password_hash, u.password_salt
             FROM auth_user u WHERE lower(u.username) = lower($1)
             UNION ALL
             SELECT u.uuid, u.password_scheme, u.password_hash, u.password_salt
             FROM auth_user u JOIN auth_email e ON e.user_uuid = u.uuid
             WHERE lower(e.address) = lower($1)
             LIMIT 1",
            &[&login],
        )
        .await?;
    Ok(row.map(|row| {
        let scheme: Option<String> = row.get(1);
        LoginHolder {
            uuid: row.get(0),
            password: StoredPassword::from_columns(scheme.as_deref(), row.get(2), row.get(3)),
        }
    }))
}

/// Replaces a user's password only if its stored hash is still `old`'s (a rehash after a login
/// must not undo a password change made meanwhile). Returns whether it was replaced. Not on
/// behalf of a caller (no tenant scope): for the rehash after a login.
pub async fn replace_password<C: Db>(
    client: &C,
    user_uuid: &str,
    old: &StoredPassword,
    new: &StoredPassword,
) -> Result<bool> {
    let n = client
        .exec(
            "UPDATE auth_user SET password_hash = $2, password_salt = $3, password_scheme = $4
             WHERE uuid = $1 AND password_hash = $5",
            &[
                &user_uuid,
                &new.hash,
                &new.salt,
                &new.scheme.as_str(),
                &old.hash,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// The editable fields of a user (a PUT replaces them all).
#[derive(Debug, Clone)]
pub struct UserUpdate {
    pub username: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub purpose: String,
    pub enabled: bool,
    pub authentication_method: String,
}

/// Replaces the editable fields of a user. Run it inside a transaction (login locks). Returns
/// `Ok(false)` when the user does not exist.
pub(crate) async fn update_user<C: Db>(
    client: &C,
    user_uuid: &str,
    update: &UserUpdate,
) -> std::result::Result<bool, WriteError> {
    let username = update.username.as_deref();
    if let Some(u) = username.filter(|u| !u.is_empty()) {
        lock_logins(client, &[u]).await?;
        if login_in_use(client, u, Some(user_uuid)).await? {
            return Err(WriteError::Conflict {
                field: "username",
                value: u.to_string(),
            });
        }
    }
    let n = client
        .exec(
            "UPDATE auth_user
             SET username = $2, firstname = $3, lastname = $4, purpose = $5, enabled = $6,
                 authentication_method = $7
             WHERE uuid = $1",
            &[
                &user_uuid,
                &username,
                &update.firstname,
                &update.lastname,
                &update.purpose,
                &update.enabled,
                &update.authentication_method,
            ],
        )
        .await
        .map_err(|e| unique_violation(e, user_uuid, username, None))?;
    Ok(n > 0)
}

/// Deletes a user (addresses and memberships cascade). Returns whether it existed.
pub(crate) async fn delete_user<C: Db>(client: &C, user_uuid: &str) -> Result<bool> {
    let n = client
        .exec("DELETE FROM auth_user WHERE uuid = $1", &[&user_uuid])
        .await?;
    Ok(n > 0)
}

/// Whether the user exists in one of `tenants`.
pub(crate) async fn user_in_tenants<C: Db>(
    client: &C,
    user_uuid: &str,
    tenants: &[String],
) -> Result<bool> {
    let row = client
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM auth_user WHERE uuid = $1 AND tenant_uuid = ANY($2))",
            &[&user_uuid, &tenants],
        )
        .await?;
    Ok(row.get(0))
}

/// Each user's searched texts, one per line: firstname, lastname, username and the addresses
/// (`email_search`). The expression of the user search's trigram index (migration V19), which a
/// condition must repeat exactly for the index to answer it.
pub const SEARCH_TEXT: &str =
    "(coalesce(u.firstname, '') || E'\\n' || coalesce(u.lastname, '') || E'\\n' \
     || coalesce(u.username, '') || E'\\n' || u.email_search)";

/// Whether `pattern` (an `ILIKE` pattern) matches any text that contains a match: it starts and
/// ends with `%`, as the HTTP layer builds search patterns. Such a pattern matches the search
/// lines ([`SEARCH_TEXT`]) of every user one of whose texts it matches, and may be looked up
/// there first.
pub(crate) fn matches_within(pattern: &str) -> bool {
    pattern.len() >= 2 && pattern.starts_with('%') && pattern.ends_with('%')
}

const USER_COLUMNS: &str = "u.uuid, u.username, u.firstname, u.lastname, u.purpose, u.enabled, \
     u.tenant_uuid, u.authentication_method";
/// The number of [`USER_COLUMNS`] (read by `user_from_row`).
const USER_COLUMN_COUNT: usize = 8;

fn user_from_row(row: &Row) -> User {
    User {
        uuid: row.get(0),
        username: row.get(1),
        firstname: row.get(2),
        lastname: row.get(3),
        purpose: row.get(4),
        enabled: row.get(5),
        tenant_uuid: row.get(6),
        authentication_method: row.get(7),
        emails: Vec::new(),
    }
}

async fn attach_emails<C: Db>(client: &C, users: &mut [User]) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let uuids: Vec<&str> = users.iter().map(|u| u.uuid.as_str()).collect();
    let rows = client
        .fetch(
            "SELECT user_uuid, uuid, address, main, confirmed FROM auth_email
             WHERE user_uuid = ANY($1)
             ORDER BY main DESC, address, uuid",
            &[&uuids],
        )
        .await?;
    let mut by_user: HashMap<String, Vec<Email>> = HashMap::new();
    for row in rows {
        by_user.entry(row.get(0)).or_default().push(Email {
            uuid: row.get(1),
            address: row.get(2),
            main: row.get(3),
            confirmed: row.get(4),
        });
    }
    for user in users.iter_mut() {
        user.emails = by_user.remove(&user.uuid).unwrap_or_default();
    }
    Ok(())
}

/// A user by uuid, with its addresses.
pub(crate) async fn get_user<C: Db>(client: &C, user_uuid: &str) -> Result<Option<User>> {
    let row = client
        .fetch_opt(
            &format!("SELECT {USER_COLUMNS} FROM auth_user u WHERE u.uuid = $1"),
            &[&user_uuid],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut users = vec![user_from_row(&row)];
    attach_emails(client, &mut users).await?;
    Ok(users.pop())
}

/// Sort columns of the user list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserOrder {
    Username,
    Firstname,
    Lastname,
}

impl UserOrder {
    pub fn parse(s: &str) -> Option<UserOrder> {
        match s {
            "username" => Some(UserOrder::Username),
            "firstname" => Some(UserOrder::Firstname),
            "lastname" => Some(UserOrder::Lastname),
            _ => None,
        }
    }

    fn column(self) -> &'static str {
        match self {
            UserOrder::Username => "u.username",
            UserOrder::Firstname => "u.firstname",
            UserOrder::Lastname => "u.lastname",
        }
    }
}

/// A user list request (spec management §1.6, GET /users).
#[derive(Debug, Clone)]
pub struct UserQuery {
    /// Owners in scope.
    pub tenants: Listed,
    /// An `ILIKE` pattern over firstname, lastname, username and every address.
    pub search: Option<String>,
    /// Exact filters (empty-string values are compared as such).
    pub uuid: Option<String>,
    pub username: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub purpose: Option<String>,
    pub email_address: Option<String>,
    pub group_uuid: Option<String>,
    /// Policy filters: empty values are ignored, as in the original.
    pub policy_uuid: Option<String>,
    pub policy_slug: Option<String>,
    pub has_policy_uuid: Option<String>,
    pub has_policy_slug: Option<String>,
    pub order: UserOrder,
    pub descending: bool,
    pub limit: Option<i64>,
    pub offset: i64,
}

impl UserQuery {
    /// A query listing every user of `tenant_uuids`.
    pub fn new(tenant_uuids: Vec<String>) -> UserQuery {
        UserQuery {
            tenants: Listed::Only(tenant_uuids),
            search: None,
            uuid: None,
            username: None,
            firstname: None,
            lastname: None,
            purpose: None,
            email_address: None,
            group_uuid: None,
            policy_uuid: None,
            policy_slug: None,
            has_policy_uuid: None,
            has_policy_slug: None,
            order: UserOrder::Username,
            descending: false,
            limit: None,
            offset: 0,
        }
    }
}

/// A page of users with the counts of the envelope.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// Users in scope, ignoring search and filters.
    pub total: i64,
    /// Users in scope matching search and filters.
    pub filtered: i64,
    pub items: Vec<User>,
}

/// Lists users. For consistent counts, run it in a repeatable-read transaction.
pub(crate) async fn list_users<C: Db>(client: &C, q: &UserQuery) -> Result<UserPage> {
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let in_scope = match q.tenants.tenants() {
        Some(tenants) => {
            params.push(tenants);
            q.tenants.condition("u.tenant_uuid", "$1")
        }
        None => q.tenants.condition("u.tenant_uuid", ""),
    };
    // From the top tenant, every user: the tally (migration V15), not a scan of every user.
    let total: i64 = if params.is_empty() {
        crate::tally::count(client, crate::tally::Tallied::Users).await?
    } else {
        client
            .fetch_one(
                &format!("SELECT count(*) FROM auth_user u WHERE {in_scope}"),
                &params,
            )
            .await?
            .get(0)
    };

    let mut conds: Vec<String> = vec![in_scope];
    // A value holding NUL can match nothing stored (PostgreSQL text never holds NUL) and
    // cannot be sent as a parameter.
    let mut impossible = false;

    type Cond = fn(usize) -> String;
    let strict: [(&Option<String>, Cond); 7] = [
        (&q.uuid, |n| format!("u.uuid = ${n}")),
        (&q.username, |n| format!("u.username = ${n}")),
        (&q.firstname, |n| format!("u.firstname = ${n}")),
        (&q.lastname, |n| format!("u.lastname = ${n}")),
        (&q.purpose, |n| format!("u.purpose = ${n}")),
        (&q.email_address, |n| {
            format!(
                "EXISTS (SELECT 1 FROM auth_email e
                         WHERE e.user_uuid = u.uuid AND e.address = ${n})"
            )
        }),
        (&q.group_uuid, |n| {
            format!(
                "EXISTS (SELECT 1 FROM auth_user_group ug
                         WHERE ug.user_uuid = u.uuid AND ug.group_uuid = ${n})"
            )
        }),
    ];
    for (value, make) in strict {
        if let Some(v) = value {
            if v.contains('\0') {
                impossible = true;
                continue;
            }
            conds.push(make(params.len() + 1));
            params.push(v);
        }
    }

    let direct = |col: &str, n: usize| {
        format!(
            "EXISTS (SELECT 1 FROM auth_user_policy up JOIN auth_policy p ON p.uuid = up.policy_uuid
                     WHERE up.user_uuid = u.uuid AND p.{col} = ${n})"
        )
    };
    let through_group = |col: &str, n: usize| {
        format!(
            "EXISTS (SELECT 1 FROM auth_user_group ug
                     JOIN auth_group_policy gp ON gp.group_uuid = ug.group_uuid
                     JOIN auth_policy p ON p.uuid = gp.policy_uuid
                     WHERE ug.user_uuid = u.uuid AND p.{col} = ${n})"
        )
    };
    let policy: [(&Option<String>, &'static str, bool); 4] = [
        (&q.policy_uuid, "uuid", false),
        (&q.policy_slug, "slug", false),
        (&q.has_policy_uuid, "uuid", true),
        (&q.has_policy_slug, "slug", true),
    ];
    for (value, col, inherited) in policy {
        let Some(v) = value.as_ref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if v.contains('\0') {
            impossible = true;
            continue;
        }
        let n = params.len() + 1;
        if inherited {
            conds.push(format!("({} OR {})", direct(col, n), through_group(col, n)));
        } else {
            conds.push(direct(col, n));
        }
        params.push(v);
    }

    if let Some(pattern) = &q.search {
        if pattern.contains('\0') {
            impossible = true;
        } else {
            let n = params.len() + 1;
            // ESCAPE '': `%` and `_` are wildcards as in the original, and a backslash is an
            // ordinary character (so no pattern can be malformed).
            //
            // A pattern that matches any text containing a match (one that starts and ends
            // with `%`, as the HTTP layer builds them) is first looked up in the users' search
            // lines ([`SEARCH_TEXT`], one trigram index, V19), which hold the four searched
            // texts: that finds every user one of them matches (and maybe a few more, matched
            // across two lines), in one index scan; the columns are then checked row by row.
            // The addresses are checked in the user's own lines of addresses (`email_search`,
            // V16), then one by one, since a pattern could match across two lines. Any other
            // pattern is compared with the columns and the addresses themselves.
            let addresses = if matches_within(pattern) {
                conds.push(format!("{SEARCH_TEXT} ILIKE ${n} ESCAPE ''"));
                format!(
                    "(u.email_search ILIKE ${n} ESCAPE ''
                      AND EXISTS (SELECT 1 FROM auth_email e
                                  WHERE e.user_uuid = u.uuid AND e.address ILIKE ${n} ESCAPE ''))"
                )
            } else {
                format!(
                    "u.uuid = ANY(ARRAY(SELECT e.user_uuid FROM auth_email e
                                   WHERE e.address ILIKE ${n} ESCAPE ''))"
                )
            };
            conds.push(format!(
                "(u.firstname ILIKE ${n} ESCAPE '' OR u.lastname ILIKE ${n} ESCAPE ''
                  OR u.username ILIKE ${n} ESCAPE '' OR {addresses})"
            ));
            params.push(pattern);
        }
    }
    if impossible {
        return Ok(UserPage {
            total,
            filtered: 0,
            items: Vec::new(),
        });
    }
    let where_sql = conds.join(" AND ");
    let direction = if q.descending { "DESC" } else { "ASC" };
    let limit = match q.limit {
        Some(l) => format!(" LIMIT {}", l.max(0)),
        None => String::new(),
    };
    let order = format!(
        "ORDER BY {} {direction}, u.uuid {direction}{limit} OFFSET {}",
        q.order.column(),
        q.offset.max(0)
    );
    // A search (answered by the trigram index of the search lines) is run once for the page
    // and its count (`count(*) OVER ()`), not once for each: at a million users, each run of
    // `search=` took 11 ms. The count comes from the page's rows; an empty page counts apart.
    let (rows, filtered) = if q.search.is_some() {
        let rows = client
            .fetch(
                &format!(
                    "SELECT {USER_COLUMNS}, count(*) OVER () FROM auth_user u
                     WHERE {where_sql} {order}"
                ),
                &params,
            )
            .await?;
        let filtered: i64 = match rows.first() {
            Some(r) => r.get(USER_COLUMN_COUNT),
            None => client
                .fetch_one(
                    &format!("SELECT count(*) FROM auth_user u WHERE {where_sql}"),
                    &params,
                )
                .await?
                .get(0),
        };
        (rows, filtered)
    } else {
        // Without search or filters, `filtered` is `total` (same snapshot: one repeatable-read
        // transaction, or the same statement's rows).
        let filtered: i64 = if conds.len() == 1 {
            total
        } else {
            client
                .fetch_one(
                    &format!("SELECT count(*) FROM auth_user u WHERE {where_sql}"),
                    &params,
                )
                .await?
                .get(0)
        };
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_user u WHERE {where_sql} {order}");
        (client.fetch(&sql, &params).await?, filtered)
    };
    let mut items: Vec<User> = rows.iter().map(user_from_row).collect();
    attach_emails(client, &mut items).await?;
    Ok(UserPage {
        total,
        filtered,
        items,
    })
}

/// Whether `value` is an e-mail address as marshmallow's `Email` validator accepts it: a
/// dot-atom or quoted local part, and a domain of at least two labels (or `localhost`, or a
/// bracketed IPv4 literal). Internationalised domains are checked label by label (the original
/// converts them with the IDNA codec first).
pub fn is_valid_email(value: &str) -> bool {
    static USER: OnceLock<Regex> = OnceLock::new();
    static DOMAIN: OnceLock<Regex> = OnceLock::new();
    let user_re = USER.get_or_init(|| {
        Regex::new(
            r#"(?i)^(?:[-!#$%&'*+/=?^`{}|~\w]+(?:\.[-!#$%&'*+/=?^`{}|~\w]+)*|"(?:[\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*")\z"#,
        )
        .expect("valid regex")
    });
    let domain_re = DOMAIN.get_or_init(|| {
        Regex::new(
            r"(?i)^(?:(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+(?:[A-Z]{2,6}|[A-Z0-9-]+[A-Z0-9])|\[(?:25[0-5]|2[0-4]\d|[0-1]?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|[0-1]?\d?\d)){3}\])\z",
        )
        .expect("valid regex")
    });
    if value.is_empty() {
        return false;
    }
    let Some((user, domain)) = value.rsplit_once('@') else {
        return false;
    };
    if !user_re.is_match(user) {
        return false;
    }
    if domain == "localhost" || domain_re.is_match(domain) {
        return true;
    }
    if domain.is_ascii() {
        return false;
    }
    // Internationalised domain: every non-ASCII label becomes an `xn--` label of letters.
    let ascii: Vec<String> = domain
        .split('.')
        .map(|label| {
            if label.is_ascii() {
                return label.to_string();
            }
            let ok = label.chars().all(|c| c.is_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().count() <= 59;
            if ok {
                format!("xn--{}", "a".repeat(label.chars().count()))
            } else {
                "-".to_string()
            }
        })
        .collect();
    domain_re.is_match(&ascii.join("."))
}

/// The slug of the policy that makes its users administrators (built-in metadata plugin
/// `user_admin_status`).
pub const DEFAULT_ADMIN_POLICY: &str = "wazo_default_admin_policy";
/// The slug of the group that makes its members administrators (`user_admin_status`).
pub const DEFAULT_ADMIN_GROUP: &str = "wazo_default_admin_group";

/// Whether the user holds the policy [`DEFAULT_ADMIN_POLICY`] itself or belongs to a group with
/// the slug [`DEFAULT_ADMIN_GROUP`] (the original's `user_admin_status` rule; slugs compared
/// exactly). `false` for an unknown user or a login that is not a uuid.
pub async fn has_admin_status<C: Db>(client: &C, user_uuid: &str) -> Result<bool> {
    if crate::ids::parse_canonical(user_uuid).is_none() {
        return Ok(false);
    }
    let stmt = "SELECT EXISTS (SELECT 1 FROM auth_user_policy up
                            JOIN auth_policy p ON p.uuid = up.policy_uuid
                            WHERE up.user_uuid = $1 AND p.slug = $2)
                 OR EXISTS (SELECT 1 FROM auth_user_group ug
                            JOIN auth_group g ON g.uuid = ug.group_uuid
                            WHERE ug.user_uuid = $1 AND g.slug = $3)";
    let row = client
        .fetch_one_cached(
            stmt,
            &[&user_uuid, &DEFAULT_ADMIN_POLICY, &DEFAULT_ADMIN_GROUP],
        )
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_as_marshmallow() {
        for ok in [
            "foo@example.com",
            "Foo.Bar+x@sub.example.co.uk",
            "a@localhost",
            "a@[127.0.0.1]",
            "\"quoted\"@example.com",
            "é@example.com",
            "u@exämple.com",
            "user@x-y.example",
            "u@example.c0m",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "foo",
            "@example.com",
            "foo@",
            "foo@example",
            "foo@-example.com",
            "foo@example-.com",
            "foo@example.com-",
            "foo bar@example.com",
            "foo..bar@example.com",
            ".foo@example.com",
            "foo@exa mple.com",
            "foo@[300.0.0.1]",
            "foo@example.com\n",
            "foo@exam_ple.com",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn login_and_methods() {
        let mut u = User {
            uuid: "u".into(),
            username: None,
            firstname: None,
            lastname: None,
            purpose: "user".into(),
            enabled: true,
            tenant_uuid: "t".into(),
            authentication_method: "default".into(),
            emails: vec![Email {
                uuid: "e".into(),
                address: "a@b.c".into(),
                main: true,
                confirmed: false,
            }],
        };
        assert_eq!(u.login(), None);
        u.emails[0].confirmed = true;
        assert_eq!(u.login(), Some("a@b.c"));
        u.username = Some("bob".into());
        assert_eq!(u.login(), Some("bob"));
        assert_eq!(effective_method("default", "ldap"), "ldap");
        assert_eq!(effective_method("native", "ldap"), "native");
        assert!(is_external_method("saml"));
        assert!(!is_external_method("native"));
    }
}
