//! The per-tenant LDAP configuration (`auth_ldap_config`, migrations/V11; spec management §13):
//! what `/backends/ldap` reads and writes and what the `ldap_user` backend binds with.
//!
//! The bind password is write-only and sealed with the keyring (ChaCha20-Poly1305, key id kept
//! with the value), bound to its tenant: a value copied to another tenant's row, or altered,
//! fails to open. Configurations imported by an earlier importer keep the seal they were made
//! with (`sealed_as = 'imported-row'`, see [`crate::import::side_row_aad`]).

use crate::sql::Db;
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::keys::Keyring;

/// The keyring purpose of bind passwords.
const PURPOSE: &str = "ldap-bind-password";

/// The associated data of a tenant's bind password.
fn aad(tenant_uuid: &str) -> String {
    format!("ldap-config|{tenant_uuid}")
}

/// Seals a bind password for `tenant_uuid`'s configuration.
pub fn seal_password(keyring: &Keyring, tenant_uuid: &str, password: &str) -> Result<String> {
    keyring
        .seal(PURPOSE, &aad(tenant_uuid), password)
        .map_err(Error::Corrupt)
}

/// Opens the sealed bind password of `tenant_uuid`'s configuration, as `sealed_as` says it was
/// sealed.
fn open_password(
    keyring: &Keyring,
    tenant_uuid: &str,
    sealed_as: &str,
    stored: &str,
) -> Result<String> {
    let opened = match sealed_as {
        "imported-row" => keyring.open(
            crate::import::SIDE_PURPOSE,
            &crate::import::side_row_aad("ldap_configs", tenant_uuid),
            stored,
        ),
        _ => keyring.open(PURPOSE, &aad(tenant_uuid), stored),
    };
    opened.map_err(|why| {
        Error::Corrupt(format!(
            "the LDAP bind password of tenant {tenant_uuid} cannot be decrypted: {why}"
        ))
    })
}

/// A stored configuration, without its bind password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    pub tenant_uuid: String,
    pub host: String,
    pub port: i32,
    pub protocol_version: Option<i16>,
    pub protocol_security: Option<String>,
    pub bind_dn: Option<String>,
    pub user_base_dn: String,
    pub user_login_attribute: String,
    pub user_email_attribute: String,
    pub search_filters: Option<String>,
}

/// A configuration as written by `PUT /backends/ldap`. An optional field that is `None` keeps
/// its stored value (the configuration's, or null when there is none yet); `Some(None)` clears
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfigChange {
    pub host: String,
    pub port: i32,
    pub protocol_version: i16,
    pub protocol_security: Option<Option<String>>,
    pub bind_dn: Option<Option<String>>,
    pub bind_password: Option<Option<String>>,
    pub user_base_dn: String,
    pub user_login_attribute: String,
    pub user_email_attribute: String,
    pub search_filters: Option<Option<String>>,
}

const COLUMNS: &str = "tenant_uuid, host, port, protocol_version, protocol_security, bind_dn, \
                       user_base_dn, user_login_attribute, user_email_attribute, search_filters, \
                       bind_password_sealed, sealed_as";

fn config_of(row: &Row) -> LdapConfig {
    LdapConfig {
        tenant_uuid: row.get(0),
        host: row.get(1),
        port: row.get(2),
        protocol_version: row.get(3),
        protocol_security: row.get(4),
        bind_dn: row.get(5),
        user_base_dn: row.get(6),
        user_login_attribute: row.get(7),
        user_email_attribute: row.get(8),
        search_filters: row.get(9),
    }
}

/// The configuration of `tenant_uuid`, if any (without its bind password).
pub async fn get<C: Db>(client: &C, tenant_uuid: &str) -> Result<Option<LdapConfig>> {
    let row = client
        .fetch_opt(
            &format!("SELECT {COLUMNS} FROM auth_ldap_config WHERE tenant_uuid = $1"),
            &[&tenant_uuid],
        )
        .await?;
    Ok(row.as_ref().map(config_of))
}

/// The configuration of `tenant_uuid` with its bind password opened, for a login. Never
/// returned by the API.
pub async fn get_with_password<C: Db>(
    client: &C,
    keyring: &Keyring,
    tenant_uuid: &str,
) -> Result<Option<(LdapConfig, Option<String>)>> {
    let Some(row) = client
        .fetch_opt(
            &format!("SELECT {COLUMNS} FROM auth_ldap_config WHERE tenant_uuid = $1"),
            &[&tenant_uuid],
        )
        .await?
    else {
        return Ok(None);
    };
    let config = config_of(&row);
    let sealed: Option<String> = row.get(10);
    let sealed_as: String = row.get(11);
    let password = match sealed {
        Some(s) => Some(open_password(keyring, tenant_uuid, &sealed_as, &s)?),
        None => None,
    };
    Ok(Some((config, password)))
}

/// Creates or updates the configuration of `tenant_uuid` in one statement, the bind password
/// sealed; returns it as stored.
pub async fn upsert<C: Db>(
    client: &C,
    keyring: &Keyring,
    tenant_uuid: &str,
    change: &LdapConfigChange,
) -> Result<LdapConfig> {
    let sealed = match &change.bind_password {
        Some(Some(p)) => Some(seal_password(keyring, tenant_uuid, p)?),
        _ => None,
    };
    let keep_security = change.protocol_security.is_none();
    let keep_bind_dn = change.bind_dn.is_none();
    let keep_password = change.bind_password.is_none();
    let keep_filters = change.search_filters.is_none();
    let flat = |o: &Option<Option<String>>| o.clone().flatten();
    let row = client
        .fetch_one(
            &format!(
                "INSERT INTO auth_ldap_config AS c
                     (tenant_uuid, host, port, protocol_version, protocol_security, bind_dn,
                      bind_password_sealed, user_base_dn, user_login_attribute,
                      user_email_attribute, search_filters, sealed_as)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'ldap-config')
                 ON CONFLICT (tenant_uuid) DO UPDATE SET
                     host = EXCLUDED.host,
                     port = EXCLUDED.port,
                     protocol_version = EXCLUDED.protocol_version,
                     protocol_security = CASE WHEN $12 THEN c.protocol_security
                                              ELSE EXCLUDED.protocol_security END,
                     bind_dn = CASE WHEN $13 THEN c.bind_dn ELSE EXCLUDED.bind_dn END,
                     bind_password_sealed = CASE WHEN $14 THEN c.bind_password_sealed
                                                 ELSE EXCLUDED.bind_password_sealed END,
                     sealed_as = CASE WHEN $14 THEN c.sealed_as ELSE EXCLUDED.sealed_as END,
                     user_base_dn = EXCLUDED.user_base_dn,
                     user_login_attribute = EXCLUDED.user_login_attribute,
                     user_email_attribute = EXCLUDED.user_email_attribute,
                     search_filters = CASE WHEN $15 THEN c.search_filters
                                           ELSE EXCLUDED.search_filters END
                 RETURNING {COLUMNS}"
            ),
            &[
                &tenant_uuid,
                &change.host,
                &change.port,
                &change.protocol_version,
                &flat(&change.protocol_security),
                &flat(&change.bind_dn),
                &sealed,
                &change.user_base_dn,
                &change.user_login_attribute,
                &change.user_email_attribute,
                &flat(&change.search_filters),
                &keep_security,
                &keep_bind_dn,
                &keep_password,
                &keep_filters,
            ],
        )
        .await?;
    Ok(config_of(&row))
}

/// Deletes the configuration of `tenant_uuid` (nothing when there is none).
pub async fn delete<C: Db>(client: &C, tenant_uuid: &str) -> Result<()> {
    client
        .exec(
            "DELETE FROM auth_ldap_config WHERE tenant_uuid = $1",
            &[&tenant_uuid],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keyring() -> Keyring {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        Keyring::parse(&format!("k {key}")).unwrap()
    }

    #[test]
    fn bind_passwords_open_for_their_tenant_only() {
        let ring = keyring();
        let sealed = seal_password(&ring, "t1", "secret").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(
            open_password(&ring, "t1", "ldap-config", &sealed).unwrap(),
            "secret"
        );
        assert!(open_password(&ring, "t2", "ldap-config", &sealed).is_err());
        assert!(open_password(&ring, "t1", "imported-row", &sealed).is_err());
    }

    /// The bind passwords an earlier importer sealed as side rows (moved by migration V11).
    #[test]
    fn imported_side_row_passwords_still_open() {
        let ring = keyring();
        let sealed = ring
            .seal(
                crate::import::SIDE_PURPOSE,
                &crate::import::side_row_aad("ldap_configs", "t1"),
                "imported-secret",
            )
            .unwrap();
        assert_eq!(
            open_password(&ring, "t1", "imported-row", &sealed).unwrap(),
            "imported-secret"
        );
        assert!(open_password(&ring, "t1", "ldap-config", &sealed).is_err());
        assert!(open_password(&ring, "t2", "imported-row", &sealed).is_err());
    }
}
