//! E-mail addresses of users (spec management §3): the whole-set replacement, the look-up of an
//! address by uuid and its confirmation. Addresses are logins: writers take
//! [`crate::users::lock_logins`] before they check and write (see `crate::users`).

use crate::sql::Db;

use crate::error::Result;
use crate::users::Email;

/// An address as a client sends it in a replacement set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailInput {
    pub address: String,
    pub main: bool,
    /// `None`: keep the stored flag of an address already there, else unconfirmed.
    pub confirmed: Option<bool>,
}

/// The addresses of a user, locked (`FOR UPDATE`) until the end of the transaction.
pub(crate) async fn lock_user_emails<C: Db>(client: &C, user_uuid: &str) -> Result<Vec<Email>> {
    let rows = client
        .fetch(
            "SELECT uuid, address, main, confirmed FROM auth_email
             WHERE user_uuid = $1 ORDER BY uuid FOR UPDATE",
            &[&user_uuid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Email {
            uuid: r.get(0),
            address: r.get(1),
            main: r.get(2),
            confirmed: r.get(3),
        })
        .collect())
}

/// Replaces the addresses of a user by `wanted` (in the caller's transaction): an address
/// already there (same text) keeps its uuid, and its confirmed flag unless `confirmed` is
/// given; a new one gets a new uuid and is unconfirmed unless `confirmed` says otherwise.
/// Returns the new set in the order of `wanted`.
pub(crate) async fn replace_user_emails<C: Db>(
    client: &C,
    user_uuid: &str,
    existing: &[Email],
    wanted: &[EmailInput],
) -> Result<Vec<Email>> {
    client
        .exec("DELETE FROM auth_email WHERE user_uuid = $1", &[&user_uuid])
        .await?;
    let mut stored = Vec::with_capacity(wanted.len());
    for input in wanted {
        let kept = existing.iter().find(|e| e.address == input.address);
        let email = Email {
            uuid: kept.map_or_else(|| uuid::Uuid::new_v4().to_string(), |e| e.uuid.clone()),
            address: input.address.clone(),
            main: input.main,
            confirmed: input
                .confirmed
                .or(kept.map(|e| e.confirmed))
                .unwrap_or(false),
        };
        client
            .exec(
                "INSERT INTO auth_email (uuid, address, confirmed, main, user_uuid)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &email.uuid,
                    &email.address,
                    &email.confirmed,
                    &email.main,
                    &user_uuid,
                ],
            )
            .await?;
        stored.push(email);
    }
    Ok(stored)
}

/// An address with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEmail {
    pub email: Email,
    pub user_uuid: String,
    pub tenant_uuid: String,
    pub username: Option<String>,
}

/// An address by uuid, with its user (not on behalf of a caller: the services check the scope).
pub(crate) async fn find_email<C: Db>(client: &C, email_uuid: &str) -> Result<Option<OwnedEmail>> {
    let row = client
        .fetch_opt(
            "SELECT e.uuid, e.address, e.main, e.confirmed, u.uuid, u.tenant_uuid, u.username
             FROM auth_email e JOIN auth_user u ON u.uuid = e.user_uuid
             WHERE e.uuid = $1",
            &[&email_uuid],
        )
        .await?;
    Ok(row.map(|r| OwnedEmail {
        email: Email {
            uuid: r.get(0),
            address: r.get(1),
            main: r.get(2),
            confirmed: r.get(3),
        },
        user_uuid: r.get(4),
        tenant_uuid: r.get(5),
        username: r.get(6),
    }))
}

/// Marks an address confirmed; `false` when it is gone.
pub(crate) async fn confirm_email<C: Db>(client: &C, email_uuid: &str) -> Result<bool> {
    let n = client
        .exec(
            "UPDATE auth_email SET confirmed = true WHERE uuid = $1",
            &[&email_uuid],
        )
        .await?;
    Ok(n > 0)
}
