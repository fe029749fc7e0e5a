//! The use cases of the API, over the storage modules (`crate::groups`, `crate::users`, ...):
//! each public function is one request's work (or the command line's), in one transaction where
//! it writes (or joining the caller's), and returns a typed error that the HTTP layer maps to its
//! answer. No HTTP here, and the host runs no SQL of its own.

pub mod bootstrap;
pub mod emails;
pub mod external;
pub mod groups;
pub mod idp;
pub mod ldap;
pub mod password_reset;
pub mod policies;
pub mod registration;
pub mod sessions;
pub mod tenants;
pub mod users;

/// One page of a list, with the counts the list answers carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    /// Everything in scope.
    pub total: i64,
    /// What matches the filters.
    pub filtered: i64,
    /// The requested page.
    pub items: Vec<T>,
}

impl<T> Default for Listing<T> {
    /// An empty list.
    fn default() -> Self {
        Listing {
            total: 0,
            filtered: 0,
            items: Vec::new(),
        }
    }
}
