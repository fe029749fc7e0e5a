//! The external-auth store (spec core §4.3, §4.4): per-user data and per-tenant configuration of
//! each auth type, encrypted at rest with ChaCha20-Poly1305 under a key of the keyring (the key
//! id is stored with each value, so data stays readable after a new primary key is added). The
//! associated data binds each value to its row (user or tenant, and auth type): a value copied
//! to another row, or altered, fails to open and is reported as an error, never returned.

use crate::sql::Db;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::events::{self, Event};
use crate::keys::Keyring;

const PURPOSE: &str = "external-auth-data";

/// Encrypts `plaintext` for the row described by `aad` with the primary key.
pub fn seal(keyring: &Keyring, aad: &str, plaintext: &str) -> Result<String> {
    keyring
        .seal(PURPOSE, aad, plaintext)
        .map_err(Error::Corrupt)
}

/// Decrypts a value sealed by [`seal`] for the same `aad`. Tampering, a wrong row or an unknown
/// key is an error.
pub fn open(keyring: &Keyring, aad: &str, stored: &str) -> Result<String> {
    keyring
        .open(PURPOSE, aad, stored)
        .map_err(|why| Error::Corrupt(format!("external-auth data cannot be decrypted: {why}")))
}

pub(crate) fn user_aad(user_uuid: &str, auth_type: &str) -> String {
    format!("user-data|{user_uuid}|{auth_type}")
}

pub(crate) fn config_aad(tenant_uuid: &str, auth_type: &str) -> String {
    format!("tenant-config|{tenant_uuid}|{auth_type}")
}

/// Why a store operation did not happen.
#[derive(Debug)]
pub enum StoreError {
    UnknownUser,
    UnknownType,
    UnknownTenant,
    /// No data (or configuration) to read, replace or delete.
    NotFound,
    /// Data (or configuration) already exists.
    Conflict,
    Other(Error),
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        StoreError::Other(e)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Other(e.into())
    }
}

pub type StoreResult<T> = std::result::Result<T, StoreError>;

fn parse_json(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Other(Error::Corrupt(format!("stored JSON is invalid: {e}"))))
}

/// The uuid of an auth type, created when missing.
pub async fn ensure_type<C: Db>(client: &C, name: &str) -> Result<String> {
    client
        .exec(
            "INSERT INTO auth_external_auth_type (name, enabled) VALUES ($1, NULL)
             ON CONFLICT (name) DO NOTHING",
            &[&name],
        )
        .await?;
    Ok(client
        .fetch_one(
            "SELECT uuid FROM auth_external_auth_type WHERE name = $1",
            &[&name],
        )
        .await?
        .get(0))
}

/// Marks exactly `names` as the enabled auth types (others disabled).
pub async fn set_enabled_types<C: Db>(client: &C, names: &[String]) -> Result<()> {
    for n in names {
        ensure_type(client, n).await?;
    }
    client
        .exec(
            "UPDATE auth_external_auth_type SET enabled = (name = ANY($1))",
            &[&names],
        )
        .await?;
    Ok(())
}

async fn type_uuid<C: Db>(client: &C, name: &str) -> StoreResult<String> {
    client
        .fetch_opt(
            "SELECT uuid FROM auth_external_auth_type WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or(StoreError::UnknownType)
}

async fn user_exists<C: Db>(client: &C, user_uuid: &str) -> StoreResult<()> {
    let found = client
        .fetch_opt("SELECT 1 FROM auth_user WHERE uuid = $1", &[&user_uuid])
        .await?;
    found.map(|_| ()).ok_or(StoreError::UnknownUser)
}

/// The data of (user, type).
///
/// Not on behalf of a caller (no tenant scope): for the plugins' host services, which act
/// for the user a plugin route was called for (the route checked the scope).
pub async fn get_user_data<C: Db>(
    client: &C,
    keyring: &Keyring,
    user_uuid: &str,
    auth_type: &str,
) -> StoreResult<Value> {
    user_exists(client, user_uuid).await?;
    let t = type_uuid(client, auth_type).await?;
    let row = client
        .fetch_opt(
            "SELECT data FROM auth_user_external_auth
             WHERE user_uuid = $1 AND external_auth_type_uuid = $2",
            &[&user_uuid, &t],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let sealed: String = row.get(0);
    parse_json(&open(keyring, &user_aad(user_uuid, auth_type), &sealed)?)
}

/// Stores the data of (user, type); the type is created when missing. The same statement writes
/// its `auth_user_external_auth_added` event.
///
/// Not on behalf of a caller (no tenant scope): for the plugins' host services, which act
/// for the user a plugin route was called for (the route checked the scope).
pub async fn create_user_data<C: Db>(
    client: &C,
    keyring: &Keyring,
    user_uuid: &str,
    auth_type: &str,
    data: &Value,
) -> StoreResult<()> {
    let tenant = user_tenant(client, user_uuid).await?;
    let t = ensure_type(client, auth_type).await?;
    let sealed = seal(keyring, &user_aad(user_uuid, auth_type), &data.to_string())?;
    let event = Event::external_auth_added(auth_type, &tenant, user_uuid);
    let (name, key, headers, body) = event.params();
    let n: i64 = client
        .fetch_one(
            &format!(
                "WITH changed AS (
                     INSERT INTO auth_user_external_auth (user_uuid, external_auth_type_uuid, data)
                     VALUES ($1, $2, $3)
                     ON CONFLICT ON CONSTRAINT auth_external_user_type_auth_constraint DO NOTHING
                     RETURNING 1),
                 {}
                 SELECT count(*) FROM changed",
                events::cte_per_row("changed", 4)
            ),
            &[&user_uuid, &t, &sealed, &name, &key, &headers, body],
        )
        .await?
        .get(0);
    if n == 0 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// Replaces the data of (user, type). The same statement writes its
/// `auth_user_external_auth_updated` event.
///
/// Not on behalf of a caller (no tenant scope): for the plugins' host services, which act
/// for the user a plugin route was called for (the route checked the scope).
pub async fn update_user_data<C: Db>(
    client: &C,
    keyring: &Keyring,
    user_uuid: &str,
    auth_type: &str,
    data: &Value,
) -> StoreResult<()> {
    let tenant = user_tenant(client, user_uuid).await?;
    let t = type_uuid(client, auth_type).await?;
    let sealed = seal(keyring, &user_aad(user_uuid, auth_type), &data.to_string())?;
    let event = Event::external_auth_updated(auth_type, &tenant, user_uuid);
    let (name, key, headers, body) = event.params();
    let n: i64 = client
        .fetch_one(
            &format!(
                "WITH changed AS (
                     UPDATE auth_user_external_auth SET data = $3
                     WHERE user_uuid = $1 AND external_auth_type_uuid = $2
                     RETURNING 1),
                 {}
                 SELECT count(*) FROM changed",
                events::cte_per_row("changed", 4)
            ),
            &[&user_uuid, &t, &sealed, &name, &key, &headers, body],
        )
        .await?
        .get(0);
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Deletes the data of (user, type). The same statement writes its
/// `auth_user_external_auth_deleted` event.
///
/// Not on behalf of a caller (no tenant scope): for the plugins' host services, which act
/// for the user a plugin route was called for (the route checked the scope).
pub async fn delete_user_data<C: Db>(
    client: &C,
    user_uuid: &str,
    auth_type: &str,
) -> StoreResult<()> {
    let tenant = user_tenant(client, user_uuid).await?;
    let t = type_uuid(client, auth_type).await?;
    let event = Event::external_auth_deleted(auth_type, &tenant, user_uuid);
    let (name, key, headers, body) = event.params();
    let n: i64 = client
        .fetch_one(
            &format!(
                "WITH changed AS (
                     DELETE FROM auth_user_external_auth
                     WHERE user_uuid = $1 AND external_auth_type_uuid = $2
                     RETURNING 1),
                 {}
                 SELECT count(*) FROM changed",
                events::cte_per_row("changed", 3)
            ),
            &[&user_uuid, &t, &name, &key, &headers, body],
        )
        .await?
        .get(0);
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// One row of `GET /users/{u}/external`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserExternal {
    pub auth_type: String,
    /// Decrypted data when the user has some.
    pub data: Option<Value>,
}

/// Every enabled type (by name) with the user's data for it, if any.
pub(crate) async fn list_user_data<C: Db>(
    client: &C,
    keyring: &Keyring,
    user_uuid: &str,
) -> StoreResult<Vec<UserExternal>> {
    let rows = client
        .fetch(
            "SELECT t.name, d.data FROM auth_external_auth_type t
             LEFT JOIN auth_user_external_auth d
                    ON d.external_auth_type_uuid = t.uuid AND d.user_uuid = $1
             WHERE t.enabled ORDER BY t.name",
            &[&user_uuid],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let auth_type: String = r.get(0);
        let sealed: Option<String> = r.get(1);
        let data = match sealed {
            Some(s) => Some(parse_json(&open(
                keyring,
                &user_aad(user_uuid, &auth_type),
                &s,
            )?)?),
            None => None,
        };
        out.push(UserExternal { auth_type, data });
    }
    Ok(out)
}

/// The configuration of a type for a tenant.
///
/// Not on behalf of a caller (no tenant scope): for the plugins' host services, which act
/// for the user a plugin route was called for (the route checked the scope).
pub async fn get_config<C: Db>(
    client: &C,
    keyring: &Keyring,
    auth_type: &str,
    tenant_uuid: &str,
) -> StoreResult<Value> {
    let t = type_uuid(client, auth_type).await?;
    let row = client
        .fetch_opt(
            "SELECT data FROM auth_external_auth_config WHERE type_uuid = $1 AND tenant_uuid = $2",
            &[&t, &tenant_uuid],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let sealed: String = row.get(0);
    parse_json(&open(
        keyring,
        &config_aad(tenant_uuid, auth_type),
        &sealed,
    )?)
}

/// Stores the configuration of a type for a tenant (type created when missing).
pub(crate) async fn create_config<C: Db>(
    client: &C,
    keyring: &Keyring,
    auth_type: &str,
    tenant_uuid: &str,
    data: &Value,
) -> StoreResult<()> {
    let exists = client
        .fetch_opt("SELECT 1 FROM auth_tenant WHERE uuid = $1", &[&tenant_uuid])
        .await?;
    if exists.is_none() {
        return Err(StoreError::UnknownTenant);
    }
    let t = ensure_type(client, auth_type).await?;
    let sealed = seal(
        keyring,
        &config_aad(tenant_uuid, auth_type),
        &data.to_string(),
    )?;
    let n = client
        .exec(
            "INSERT INTO auth_external_auth_config (type_uuid, tenant_uuid, data) VALUES ($1, $2, $3)
             ON CONFLICT (type_uuid, tenant_uuid) DO NOTHING",
            &[&t, &tenant_uuid, &sealed],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// Replaces the configuration of a type for a tenant.
pub(crate) async fn update_config<C: Db>(
    client: &C,
    keyring: &Keyring,
    auth_type: &str,
    tenant_uuid: &str,
    data: &Value,
) -> StoreResult<()> {
    let t = type_uuid(client, auth_type).await?;
    let sealed = seal(
        keyring,
        &config_aad(tenant_uuid, auth_type),
        &data.to_string(),
    )?;
    let n = client
        .exec(
            "UPDATE auth_external_auth_config SET data = $3 WHERE type_uuid = $1 AND tenant_uuid = $2",
            &[&t, &tenant_uuid, &sealed],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Deletes the configuration of a type for a tenant.
pub(crate) async fn delete_config<C: Db>(
    client: &C,
    auth_type: &str,
    tenant_uuid: &str,
) -> StoreResult<()> {
    let t = type_uuid(client, auth_type).await?;
    let n = client
        .exec(
            "DELETE FROM auth_external_auth_config WHERE type_uuid = $1 AND tenant_uuid = $2",
            &[&t, &tenant_uuid],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Users of `tenants` having data for an enabled type: `(count, page of uuids)`.
pub(crate) async fn connected_users<C: Db>(
    client: &C,
    auth_type: &str,
    tenants: &[String],
    limit: Option<i64>,
    offset: i64,
) -> StoreResult<(i64, Vec<String>)> {
    let t = client
        .fetch_opt(
            "SELECT uuid FROM auth_external_auth_type WHERE name = $1 AND enabled",
            &[&auth_type],
        )
        .await?
        .map(|r| r.get::<_, String>(0))
        .ok_or(StoreError::UnknownType)?;
    let count: i64 = client
        .fetch_one(
            "SELECT count(*) FROM auth_user_external_auth d JOIN auth_user u ON u.uuid = d.user_uuid
             WHERE d.external_auth_type_uuid = $1 AND u.tenant_uuid = ANY($2)",
            &[&t, &tenants],
        )
        .await?
        .get(0);
    let page = match limit {
        Some(l) => format!("LIMIT {l} OFFSET {offset}"),
        None => format!("OFFSET {offset}"),
    };
    let rows = client
        .fetch(
            &format!(
                "SELECT u.uuid FROM auth_user_external_auth d JOIN auth_user u ON u.uuid = d.user_uuid
                 WHERE d.external_auth_type_uuid = $1 AND u.tenant_uuid = ANY($2)
                 ORDER BY u.uuid {page}"
            ),
            &[&t, &tenants],
        )
        .await?;
    Ok((count, rows.iter().map(|r| r.get(0)).collect()))
}

/// Records `auth_user_external_auth_authorized` for a user's data of `auth_type` (an external
/// flow completed, e.g. an OAuth2 authorization), in the outbox, in one transaction with the
/// look-up of the user's tenant. For the plugins' host services (no tenant scope).
pub async fn record_authorized(
    client: &mut deadpool_postgres::Object,
    auth_type: &str,
    user_uuid: &str,
) -> StoreResult<()> {
    let tx = client.transaction().await?;
    let tenant = user_tenant(&tx, user_uuid).await?;
    events::record(
        &tx,
        &[Event::external_auth_authorized(
            auth_type, &tenant, user_uuid,
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The tenant of a user.
///
/// Not on behalf of a caller (no tenant scope): for the plugins' host services, which act
/// for the user a plugin route was called for (the route checked the scope).
pub async fn user_tenant<C: Db>(client: &C, user_uuid: &str) -> StoreResult<String> {
    client
        .fetch_opt(
            "SELECT tenant_uuid FROM auth_user WHERE uuid = $1",
            &[&user_uuid],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or(StoreError::UnknownUser)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> Keyring {
        Keyring::parse(text).unwrap()
    }

    fn key(b: u8) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([b; 32])
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let r = ring(&format!("a {}", key(1)));
        let s = seal(&r, "row-1", "{\"x\":1}").unwrap();
        assert!(s.starts_with("v1:a:"));
        assert!(!s.contains("\"x\""));
        assert_eq!(open(&r, "row-1", &s).unwrap(), "{\"x\":1}");
        // Another row's associated data: refused.
        assert!(open(&r, "row-2", &s).is_err());
        // Any altered byte: refused.
        let mut bytes = s.clone().into_bytes();
        let i = bytes.len() - 3;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        assert!(open(&r, "row-1", &String::from_utf8(bytes).unwrap()).is_err());
        assert!(open(&r, "row-1", "v1:a:").is_err());
        assert!(open(&r, "row-1", "{\"x\":1}").is_err());
        // Two seals of the same value differ (random nonce).
        assert_ne!(s, seal(&r, "row-1", "{\"x\":1}").unwrap());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = ring(&format!("a {}", key(1)));
        let sealed_old = seal(&old, "r", "old").unwrap();
        let rotated = ring(&format!("b {}\na {}", key(2), key(1)));
        assert_eq!(open(&rotated, "r", &sealed_old).unwrap(), "old");
        let sealed_new = seal(&rotated, "r", "new").unwrap();
        assert!(sealed_new.starts_with("v1:b:"));
        // Dropping the old key makes its values unreadable (an error, not garbage).
        let only_new = ring(&format!("b {}", key(2)));
        assert!(open(&only_new, "r", &sealed_old).is_err());
        assert_eq!(open(&only_new, "r", &sealed_new).unwrap(), "new");
    }
}
