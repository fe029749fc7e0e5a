//! Errors of the core crate.

use std::fmt;

/// A storage or domain error. Messages are safe to log (no secrets, no whole tokens).
#[derive(Debug)]
pub enum Error {
    /// The database is unreachable or a query failed.
    Database(String),
    /// A migration failed.
    Migration(String),
    /// A value read from the database is not what the schema promises.
    Corrupt(String),
    /// The user already has the maximum number of live sessions.
    SessionLimit,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database(m) => write!(f, "database error: {m}"),
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
            Some(db) => Error::Database(format!(
                "{} (SQLSTATE {}){}",
                db.message(),
                db.code().code(),
                db.detail().map(|d| format!(": {d}")).unwrap_or_default()
            )),
            None => Error::Database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::Database(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
