//! Typed identifiers. A user uuid cannot be passed where a tenant uuid is expected, and every id
//! is a parsed UUID, rendered the one way the original renders it (lower-case, hyphenated).
//!
//! The identity tables keep their ids as text (`varchar`, as the original's schema does), so the
//! ids bind to SQL parameters as text.

use std::fmt;
use std::str::FromStr;

use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $param:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// The name this id has in route paths (`/groups/{group_uuid}`).
            pub const PATH_PARAM: &'static str = $param;

            pub fn new(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }

            /// A new random (version 4) id.
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4())
            }

            pub fn uuid(&self) -> uuid::Uuid {
                self.0
            }

            /// Lower-case hyphenated text, as stored and rendered.
            pub fn text(&self) -> String {
                self.0.hyphenated().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            /// Any UUID text `uuid` accepts; see [`parse_canonical`] for route segments.
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                uuid::Uuid::parse_str(s).map(Self).map_err(|_| InvalidId)
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(u: uuid::Uuid) -> Self {
                Self(u)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl ToSql for $name {
            fn to_sql(
                &self,
                ty: &Type,
                out: &mut bytes::BytesMut,
            ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
                let mut buf = uuid::Uuid::encode_buffer();
                let text: &str = self.0.hyphenated().encode_lower(&mut buf);
                text.to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }
    };
}

/// Text that is not a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidId;

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a UUID")
    }
}

impl std::error::Error for InvalidId {}

id_type!(
    /// A user (`auth_user.uuid`).
    UserUuid,
    "user_uuid"
);
id_type!(
    /// A tenant (`auth_tenant.uuid`).
    TenantUuid,
    "tenant_uuid"
);
id_type!(
    /// A policy (`auth_policy.uuid`).
    PolicyUuid,
    "policy_uuid"
);
id_type!(
    /// A group (`auth_group.uuid`).
    GroupUuid,
    "group_uuid"
);
id_type!(
    /// A session (`auth_session.uuid`).
    SessionUuid,
    "session_uuid"
);
id_type!(
    /// A token id (the secret a client sends in `X-Auth-Token`; never log it whole).
    TokenId,
    "token"
);
id_type!(
    /// A refresh token's row (`auth_refresh_token.uuid`).
    RefreshTokenUuid,
    "refresh_token_uuid"
);
id_type!(
    /// An e-mail address row (`auth_email.uuid`).
    EmailUuid,
    "email_uuid"
);

/// A route segment that must be a canonical hyphenated UUID (any case), as the original's
/// `uuid` path converter accepts: exactly 36 characters, dashes at 8, 13, 18 and 23.
pub fn parse_canonical(segment: &str) -> Option<uuid::Uuid> {
    if segment.len() != 36 {
        return None;
    }
    for (i, b) in segment.bytes().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (b == b'-') || (!dash && !b.is_ascii_hexdigit()) {
            return None;
        }
    }
    uuid::Uuid::parse_str(segment).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_render_lower_case_hyphenated() {
        let u: UserUuid = "0123ABCD-1111-2222-3333-444455556666".parse().unwrap();
        assert_eq!(u.to_string(), "0123abcd-1111-2222-3333-444455556666");
        assert_eq!(u.text(), u.to_string());
        assert_eq!(
            serde_json::to_value(u).unwrap(),
            serde_json::json!("0123abcd-1111-2222-3333-444455556666")
        );
        assert!("nope".parse::<GroupUuid>().is_err());
    }

    #[test]
    fn canonical_segments() {
        assert!(parse_canonical("0123abcd-1111-2222-3333-444455556666").is_some());
        assert!(parse_canonical("0123ABCD-1111-2222-3333-444455556666").is_some());
        assert!(parse_canonical("0123abcd111122223333444455556666").is_none());
        assert!(parse_canonical("{0123abcd-1111-2222-3333-444455556666}").is_none());
        assert!(parse_canonical("0123abcd-1111-2222-3333-44445555666g").is_none());
    }
}
