//! Refresh tokens (spec core §1.3 step 3h, §1.8): created by offline logins, used to log in
//! without a password, listed and deleted by their owners and administrators.
//!
//! Better than the original: the value is never stored (only its SHA-256, and a server key id
//! from which the value is recomputed when an offline login must hand the same refresh token
//! back); deleting a refresh token also ends the sessions issued from it; an optional lifetime.

use crate::sql::Db;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Result;
use crate::events::{self, Event};
use crate::keys::Keyring;
use crate::scope::Listed;
use crate::storage::Storage;

const PURPOSE: &str = "refresh-token";

/// What an offline login asks for.
#[derive(Debug, Clone)]
pub struct OfflineRequest {
    pub client_id: String,
    pub user_uuid: String,
    pub backend: String,
    pub login: String,
    pub user_agent: String,
    pub remote_addr: String,
    pub mobile: bool,
    /// Persistent metadata (from the backend's `get_persistent_metadata`).
    pub metadata: Map<String, Value>,
    /// Lifetime of a new refresh token; `None` = never expires.
    pub lifetime_seconds: Option<i64>,
}

/// A refresh token row (never its value).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub uuid: String,
    pub client_id: String,
    pub user_uuid: String,
    pub tenant_uuid: String,
    pub backend: Option<String>,
    pub login: Option<String>,
    pub mobile: bool,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// The value of the refresh token of row `row_uuid`, derived with key `key_id`: a UUID-shaped
/// string (122 bits of an HMAC).
pub fn token_value(keyring: &Keyring, key_id: &str, row_uuid: &str) -> Option<String> {
    let mac = keyring.mac(key_id, PURPOSE, row_uuid.as_bytes())?;
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&mac[..16]);
    Some(
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string(),
    )
}

/// The `key_id` of a refresh token imported from the original: its value is its own (the
/// original's row uuid), kept sealed in `value_sealed` instead of derived.
pub const IMPORTED_KEY_ID: &str = "original";

/// The keyring purpose of imported refresh token values.
const SEALED_PURPOSE: &str = "refresh-token-value";

/// Seals the value of an imported refresh token for the row of `(client_id, user_uuid)`.
pub fn seal_value(
    keyring: &Keyring,
    client_id: &str,
    user_uuid: &str,
    value: &str,
) -> Result<String> {
    keyring
        .seal(SEALED_PURPOSE, &sealed_aad(client_id, user_uuid), value)
        .map_err(crate::Error::Corrupt)
}

fn sealed_aad(client_id: &str, user_uuid: &str) -> String {
    format!("refresh-token|{user_uuid}|{client_id}")
}

/// The value of a stored refresh token: derived from its row, or unsealed when imported.
/// `None` when it cannot be had (its key left the keyring, or the sealed value is damaged).
fn stored_value(
    keyring: &Keyring,
    row_uuid: &str,
    key_id: &str,
    sealed: Option<&str>,
    client_id: &str,
    user_uuid: &str,
) -> Option<String> {
    match (key_id, sealed) {
        (IMPORTED_KEY_ID, Some(sealed)) => keyring
            .open(SEALED_PURPOSE, &sealed_aad(client_id, user_uuid), sealed)
            .ok(),
        (IMPORTED_KEY_ID, None) => None,
        _ => token_value(keyring, key_id, row_uuid),
    }
}

/// The database key of a refresh token value.
pub fn value_hash(value: &str) -> Vec<u8> {
    Sha256::digest(value.trim().to_ascii_lowercase().as_bytes()).to_vec()
}

fn metadata_of(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Deletes the sessions issued from refresh token `uuid` (their tokens cascade), then the row,
/// with their events (`auth_session_deleted` for each session, then
/// `auth_refresh_token_deleted`). Returns the number of sessions deleted.
pub async fn purge<C: Db>(client: &C, uuid: &str) -> Result<u64> {
    let sessions = client
        .fetch(
            "DELETE FROM auth_session WHERE uuid IN (
                 SELECT session_uuid FROM auth_token WHERE refresh_token_uuid = $1)
             RETURNING uuid, tenant_uuid",
            &[&uuid],
        )
        .await?;
    let token = client
        .fetch_opt(
            "DELETE FROM auth_refresh_token r USING auth_user u
             WHERE r.uuid = $1 AND u.uuid = r.user_uuid
             RETURNING r.client_id, r.mobile, r.user_uuid, u.tenant_uuid",
            &[&uuid],
        )
        .await?;
    let mut ended = Vec::with_capacity(sessions.len() + 1);
    if let Some(t) = &token {
        let user: &str = t.get(2);
        for s in &sessions {
            ended.push(Event::session_deleted(s.get(0), s.get(1), Some(user)));
        }
        ended.push(Event::refresh_token_deleted(
            t.get(0),
            t.get(1),
            t.get(3),
            user,
        ));
    }
    events::record(client, &ended).await?;
    Ok(sessions.len() as u64)
}

/// Issues (or reuses) the refresh token of an offline login inside the login's transaction.
/// Returns `(row uuid, value, sessions revoked)`.
pub async fn issue<C: Db>(
    client: &C,
    keyring: &Keyring,
    req: &OfflineRequest,
) -> Result<(String, String, u64)> {
    // Serialise logins of one (user, client): exactly one refresh token results.
    client
        .exec(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 11))",
            &[&req.user_uuid, &req.client_id],
        )
        .await?;
    let mut revoked = 0;
    let existing = client
        .fetch_opt(
            "SELECT uuid, key_id, expires_at IS NOT NULL AND expires_at <= now(), value_sealed
             FROM auth_refresh_token WHERE client_id = $1 AND user_uuid = $2",
            &[&req.client_id, &req.user_uuid],
        )
        .await?;
    let mut reused = None;
    if let Some(row) = existing {
        let uuid: String = row.get(0);
        let key_id: String = row.get(1);
        let expired: bool = row.get(2);
        let sealed: Option<String> = row.get(3);
        let value = stored_value(
            keyring,
            &uuid,
            &key_id,
            sealed.as_deref(),
            &req.client_id,
            &req.user_uuid,
        );
        if req.mobile || expired || value.is_none() {
            // A mobile login replaces its refresh token (and ends the sessions it issued); an
            // expired one, or one whose key is gone, is replaced too.
            revoked += purge(client, &uuid).await?;
        } else {
            reused = value.map(|v| (uuid, v));
        }
    }
    let (uuid, value) = match reused {
        Some(r) => r,
        None => {
            let uuid = Uuid::new_v4().hyphenated().to_string();
            let key_id = keyring.primary_id().to_string();
            let value = token_value(keyring, &key_id, &uuid)
                .ok_or_else(|| crate::Error::Corrupt("primary key missing".into()))?;
            let expires: Option<DateTime<Utc>> = req
                .lifetime_seconds
                .map(|s| Utc::now() + chrono::Duration::seconds(s));
            let created = client
                .fetch_one(
                    "INSERT INTO auth_refresh_token (uuid, token_hash, key_id, client_id, user_uuid,
                         backend, login, user_agent, remote_addr, mobile, metadata, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     RETURNING (SELECT tenant_uuid FROM auth_user WHERE uuid = $5)",
                    &[
                        &uuid,
                        &value_hash(&value),
                        &key_id,
                        &req.client_id,
                        &req.user_uuid,
                        &req.backend,
                        &req.login,
                        &req.user_agent,
                        &req.remote_addr,
                        &req.mobile,
                        &Value::Object(req.metadata.clone()),
                        &expires,
                    ],
                )
                .await?;
            let tenant: String = created.get(0);
            let event =
                Event::refresh_token_created(&req.client_id, req.mobile, &tenant, &req.user_uuid);
            events::record(client, &[event]).await?;
            (uuid, value)
        }
    };
    if req.mobile {
        // One active mobile client per user: the user's other mobile refresh tokens go.
        let others = client
            .fetch(
                "SELECT uuid FROM auth_refresh_token
                 WHERE user_uuid = $1 AND mobile AND uuid <> $2",
                &[&req.user_uuid, &uuid],
            )
            .await?;
        for row in others {
            let other: String = row.get(0);
            revoked += purge(client, &other).await?;
        }
    }
    Ok((uuid, value, revoked))
}

fn row_to_refresh(r: &tokio_postgres::Row) -> RefreshToken {
    RefreshToken {
        uuid: r.get("uuid"),
        client_id: r.get("client_id"),
        user_uuid: r.get("user_uuid"),
        tenant_uuid: r.get("tenant_uuid"),
        backend: r.get("backend"),
        login: r.get("login"),
        mobile: r.get("mobile"),
        metadata: metadata_of(r.get("metadata")),
        created_at: r.get("created_at"),
    }
}

const SELECT: &str = "SELECT r.uuid, r.client_id, r.user_uuid, u.tenant_uuid, r.backend, r.login,
                             r.mobile, r.metadata, r.created_at
                      FROM auth_refresh_token r JOIN auth_user u ON u.uuid = r.user_uuid";

/// Filters of a refresh-token listing.
#[derive(Debug, Clone, Default)]
pub struct RefreshTokenQuery {
    /// Only tokens of users in these tenants.
    pub tenants: Listed,
    pub user_uuid: Option<String>,
    /// ILIKE pattern on client_id.
    pub search: Option<String>,
    pub client_id: Option<String>,
    pub mobile: Option<bool>,
    /// Exact `created_at` filter as sent (compared as text in ISO form).
    pub created_at: Option<String>,
    /// One of `created_at`, `client_id`, `mobile`.
    pub order: String,
    pub descending: bool,
    pub limit: Option<i64>,
    pub offset: i64,
}

impl Storage {
    /// The unexpired refresh token with this value and client_id, and the effective
    /// authentication method of its user (read in the same query: the login checks it). Not on
    /// behalf of a caller (no tenant scope): for the login by refresh token, whose value is the
    /// credential.
    pub async fn find_refresh_token(
        &self,
        value: &str,
        client_id: &str,
    ) -> Result<Option<(RefreshToken, String)>> {
        // Nothing stored holds NUL (PostgreSQL text cannot), and the parameter would be refused.
        if value.contains('\0') || client_id.contains('\0') {
            return Ok(None);
        }
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT r.uuid, r.client_id, r.user_uuid, u.tenant_uuid, r.backend, r.login,
                        r.mobile, r.metadata, r.created_at,
                        u.authentication_method, t.default_authentication_method
                 FROM auth_refresh_token r JOIN auth_user u ON u.uuid = r.user_uuid
                 JOIN auth_tenant t ON t.uuid = u.tenant_uuid
                 WHERE r.token_hash = $1 AND r.client_id = $2
                   AND (r.expires_at IS NULL OR r.expires_at > now())",
                &[&value_hash(value), &client_id],
            )
            .await?;
        Ok(row.map(|r| {
            let own: String = r.get("authentication_method");
            let tenant: String = r.get("default_authentication_method");
            let method = crate::users::effective_method(&own, &tenant).to_string();
            (row_to_refresh(&r), method)
        }))
    }

    /// Lists refresh tokens: `(total, filtered, items)`; total ignores search and filters.
    pub(crate) async fn list_refresh_tokens(
        &self,
        q: &RefreshTokenQuery,
    ) -> Result<(i64, i64, Vec<RefreshToken>)> {
        let client = self.client().await?;
        // A filter holding NUL matches nothing stored (PostgreSQL text never holds NUL, and
        // would refuse the parameter).
        let has_nul = |v: &Option<String>| v.as_deref().is_some_and(|v| v.contains('\0'));
        if has_nul(&q.user_uuid) {
            return Ok((0, 0, Vec::new()));
        }
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        let mut base = Vec::new();
        if let Some(t) = q.tenants.tenants() {
            params.push(t);
            base.push(q.tenants.condition("u.tenant_uuid", "$1"));
        }
        if let Some(u) = &q.user_uuid {
            params.push(u);
            base.push(format!("r.user_uuid = ${}", params.len()));
        }
        // Every token has its user (a foreign key): the user is joined for its tenant only.
        let from = if q.tenants.tenants().is_some() {
            "FROM auth_refresh_token r JOIN auth_user u ON u.uuid = r.user_uuid"
        } else {
            "FROM auth_refresh_token r"
        };
        let base_sql = if base.is_empty() {
            "TRUE".to_string()
        } else {
            base.join(" AND ")
        };
        // From the top tenant and of no one user, every refresh token: the tally (migration
        // V15), not a scan of every token.
        let total: i64 = if base.is_empty() {
            crate::tally::count(&client, crate::tally::Tallied::RefreshTokens).await?
        } else {
            client
                .fetch_one(&format!("SELECT count(*) {from} WHERE {base_sql}"), &params)
                .await?
                .get(0)
        };
        if [&q.search, &q.client_id, &q.created_at]
            .into_iter()
            .any(has_nul)
        {
            return Ok((total, 0, Vec::new()));
        }
        let mut filters = Vec::new();
        if let Some(v) = &q.search {
            params.push(v);
            filters.push(format!("r.client_id ILIKE ${}", params.len()));
        }
        if let Some(v) = &q.client_id {
            params.push(v);
            filters.push(format!("r.client_id = ${}", params.len()));
        }
        if let Some(v) = &q.mobile {
            params.push(v);
            filters.push(format!("r.mobile = ${}", params.len()));
        }
        if let Some(v) = &q.created_at {
            params.push(v);
            filters.push(format!(
                "to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') LIKE ${}::text || '%'",
                params.len()
            ));
        }
        let mut conds = base;
        conds.extend(filters.iter().cloned());
        let where_sql = if conds.is_empty() {
            "TRUE".to_string()
        } else {
            conds.join(" AND ")
        };
        // Without filters, `filtered` is `total`.
        let filtered: i64 = if filters.is_empty() {
            total
        } else {
            client
                .fetch_one(
                    &format!("SELECT count(*) {from} WHERE {where_sql}"),
                    &params,
                )
                .await?
                .get(0)
        };
        let order = match q.order.as_str() {
            "client_id" => "r.client_id",
            "mobile" => "r.mobile",
            _ => "r.created_at",
        };
        let dir = if q.descending { "DESC" } else { "ASC" };
        let page = match q.limit {
            Some(l) => format!("LIMIT {l} OFFSET {}", q.offset),
            None => format!("OFFSET {}", q.offset),
        };
        let rows = client
            .fetch(
                &format!("{SELECT} WHERE {where_sql} ORDER BY {order} {dir}, r.uuid {dir} {page}"),
                &params,
            )
            .await?;
        Ok((total, filtered, rows.iter().map(row_to_refresh).collect()))
    }

    /// Deletes the refresh token of (user, client_id) among users of `tenants`, and the sessions
    /// issued from it. Returns whether one existed.
    pub(crate) async fn delete_refresh_token(
        &self,
        user_uuid: &str,
        client_id: &str,
        tenants: &[String],
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .fetch_opt(
                "SELECT r.uuid FROM auth_refresh_token r JOIN auth_user u ON u.uuid = r.user_uuid
                 WHERE r.user_uuid = $1 AND r.client_id = $2 AND u.tenant_uuid = ANY($3)
                 FOR UPDATE OF r",
                &[&user_uuid, &client_id, &tenants],
            )
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let uuid: String = row.get(0);
        purge(&tx, &uuid).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn values_are_stable_uuid_shaped_and_key_bound() {
        let k = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let k2 = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        let ring = Keyring::parse(&format!("a {k}\nb {k2}")).unwrap();
        let v = token_value(&ring, "a", "row-1").unwrap();
        assert_eq!(v, token_value(&ring, "a", "row-1").unwrap());
        assert_ne!(v, token_value(&ring, "b", "row-1").unwrap());
        assert_ne!(v, token_value(&ring, "a", "row-2").unwrap());
        let parsed = Uuid::parse_str(&v).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(value_hash(&v), value_hash(&v.to_uppercase()));
    }
}
