//! Identity providers (spec management §12): the registry of IdP types a user's
//! `authentication_method` (and a tenant's `default_authentication_method`) may name, and the
//! storage of a user's assignment.
//!
//! The registry always holds `native` (the password stored here) and `default` (the tenant's
//! default method); the server registers the others at startup: today the `idp_plugins` entries
//! of the configuration with `enabled: true`, later the IdP plugins it loads (issues 18, 19).
//! `GET /0.1/idp` lists it, and every route that names an IdP type checks it here, so that a new
//! provider only needs to be registered.

use crate::sql::Db;

use crate::error::Result;

/// The method of the users whose password is stored here.
pub const NATIVE: &str = "native";
/// The method of the users who follow their tenant's `default_authentication_method`.
pub const DEFAULT: &str = "default";

/// The IdP types, in registration order (`native`, `default`, then the registered ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpTypes {
    names: Vec<String>,
}

impl Default for IdpTypes {
    /// `native` and `default` alone.
    fn default() -> Self {
        IdpTypes {
            names: vec![NATIVE.to_string(), DEFAULT.to_string()],
        }
    }
}

impl IdpTypes {
    /// Adds an IdP type; `false` when it was already there (it keeps its place).
    pub fn register(&mut self, name: impl Into<String>) -> bool {
        let name = name.into();
        if self.contains(&name) {
            return false;
        }
        self.names.push(name);
        true
    }

    /// Whether `name` is a known IdP type (case-sensitive, as the original).
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Every IdP type.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Sets the method of the users `user_uuids` (canonical uuids) that belong to one of `tenants`;
/// returns how many were found.
pub(crate) async fn set_method<C: Db>(
    client: &C,
    user_uuids: &[String],
    tenants: &[String],
    method: &str,
) -> Result<u64> {
    Ok(client
        .exec(
            "UPDATE auth_user SET authentication_method = $3
             WHERE uuid = ANY($1) AND tenant_uuid = ANY($2)",
            &[&user_uuids, &tenants, &method],
        )
        .await?)
}

/// Sets the method of a user of one of `tenants` back to `default` when it is `method`; returns
/// whether it was.
pub(crate) async fn reset_method<C: Db>(
    client: &C,
    user_uuid: &str,
    tenants: &[String],
    method: &str,
) -> Result<bool> {
    let n = client
        .exec(
            "UPDATE auth_user SET authentication_method = $3
             WHERE uuid = $1 AND tenant_uuid = ANY($2) AND authentication_method = $4",
            &[&user_uuid, &tenants, &DEFAULT, &method],
        )
        .await?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_and_default_are_always_there_and_the_others_are_registered_once() {
        let mut types = IdpTypes::default();
        assert_eq!(types.names(), ["native", "default"]);
        assert!(types.contains("native") && types.contains("default"));
        assert!(!types.contains("ldap"));
        assert!(types.register("ldap"));
        assert!(!types.register("ldap"));
        assert!(!types.register("native"));
        assert!(types.register("saml"));
        assert_eq!(types.names(), ["native", "default", "ldap", "saml"]);
        assert!(!types.contains("LDAP"));
    }
}
