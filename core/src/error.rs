//! Errors of the core crate.

use std::fmt;

pub use tokio_postgres::error::SqlState;

/// A storage or domain error. Messages are safe to log (no secrets, no whole tokens).
#[derive(Debug, Clone)]
pub enum Error {
    /// The database is unreachable or a query failed. `code` is the server's SQLSTATE when the
    /// server answered with an error; `None` when no answer came (no connection, pool time-out,
    /// client-side error).
    Database {
        code: Option<SqlState>,
        message: String,
    },
    /// A migration failed.
    Migration(String),
    /// A value read from the database is not what the schema promises.
    Corrupt(String),
    /// The user already has the maximum number of live sessions.
    SessionLimit,
}

impl Error {
    /// A database error without a server answer (configuration, pool, closed writer).
    pub fn database(message: impl Into<String>) -> Error {
        Error::Database {
            code: None,
            message: message.into(),
        }
    }

    /// The SQLSTATE of a database error the server answered with.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            Error::Database { code, .. } => code.as_ref(),
            _ => None,
        }
    }

    /// True for a unique-constraint violation (SQLSTATE 23505).
    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate() == Some(&SqlState::UNIQUE_VIOLATION)
    }

    /// True when the error is about the database server rather than the statement: no answer
    /// (no connection, pool time-out), or a class about the server (08 connection, 53
    /// resources, 57 operator intervention and statement time-outs). Retrying the same work
    /// another way would fail the same way.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Database { code: None, .. } => true,
            Error::Database {
                code: Some(code), ..
            } => ["08", "53", "57"]
                .iter()
                .any(|class| code.code().starts_with(class)),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database {
                code: Some(code),
                message,
            } => write!(f, "database error: {message} (SQLSTATE {})", code.code()),
            Error::Database {
                code: None,
                message,
            } => write!(f, "database error: {message}"),
            Error::Migration(m) => write!(f, "migration error: {m}"),
            Error::Corrupt(m) => write!(f, "corrupt data: {m}"),
            Error::SessionLimit => write!(f, "maximum number of active sessions reached"),
        }
    }
}

impl std::error::Error for Error {}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // `Display` of a server error is just "db error": keep the server's message and code.
        match e.as_db_error() {
            Some(db) => Error::Database {
                code: Some(db.code().clone()),
                message: match db.detail() {
                    Some(d) => format!("{}: {d}", db.message()),
                    None => db.message().to_string(),
                },
            },
            None => Error::database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::database(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_about_the_server_are_unreachable() {
        let with = |code: SqlState| Error::Database {
            code: Some(code),
            message: "m".into(),
        };
        assert!(Error::database("pool timed out").is_unreachable());
        assert!(with(SqlState::CONNECTION_FAILURE).is_unreachable());
        assert!(with(SqlState::TOO_MANY_CONNECTIONS).is_unreachable());
        assert!(with(SqlState::QUERY_CANCELED).is_unreachable());
        assert!(!with(SqlState::UNIQUE_VIOLATION).is_unreachable());
        assert!(with(SqlState::UNIQUE_VIOLATION).is_unique_violation());
        assert!(!Error::SessionLimit.is_unreachable());
        assert_eq!(
            with(SqlState::UNIQUE_VIOLATION).to_string(),
            "database error: m (SQLSTATE 23505)"
        );
    }
}
