//! Storage of the password reset (spec management §4): finding the user a reset request names,
//! its tenant's default authentication method, and removing a password.

use crate::sql::Db;

use crate::error::Result;

/// How a reset request names its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetLookup {
    /// The username, exactly (case-sensitive).
    Username(String),
    /// One of the user's addresses, exactly.
    Email(String),
    /// The username or an address, in any case.
    Login(String),
}

/// The user a reset request names (across all tenants; not on behalf of a caller: the request is
/// anonymous and its answer says nothing).
pub(crate) async fn find_user<C: Db>(client: &C, lookup: &ResetLookup) -> Result<Option<String>> {
    let (sql, value) = match lookup {
        ResetLookup::Username(v) => (
            "SELECT uuid FROM auth_user WHERE username = $1 ORDER BY uuid LIMIT 1",
            v,
        ),
        ResetLookup::Email(v) => (
            "SELECT user_uuid FROM auth_email WHERE address = $1 ORDER BY user_uuid LIMIT 1",
            v,
        ),
        ResetLookup::Login(v) => (
            // Two index look-ups (one condition `username OR EXISTS (e-mail)` scanned every
            // user).
            "SELECT uuid FROM (
                 SELECT uuid FROM auth_user WHERE lower(username) = lower($1)
                 UNION ALL
                 SELECT user_uuid FROM auth_email WHERE lower(address) = lower($1)) m
             ORDER BY uuid LIMIT 1",
            v,
        ),
    };
    if value.contains('\0') {
        return Ok(None);
    }
    let row = client.fetch_opt(sql, &[value]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// The default authentication method of a tenant (`None`: no such tenant).
pub(crate) async fn tenant_default_method<C: Db>(
    client: &C,
    tenant: &str,
) -> Result<Option<String>> {
    let row = client
        .fetch_opt(
            "SELECT default_authentication_method FROM auth_tenant WHERE uuid = $1",
            &[&tenant],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Removes the password of a user (it can no longer log in with one).
pub(crate) async fn clear_password<C: Db>(client: &C, user: &str) -> Result<()> {
    client
        .exec(
            "UPDATE auth_user SET password_hash = NULL, password_salt = NULL, password_scheme = NULL
             WHERE uuid = $1",
            &[&user],
        )
        .await?;
    Ok(())
}
