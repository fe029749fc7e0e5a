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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database(m) => write!(f, "database error: {m}"),
            Error::Migration(m) => write!(f, "migration error: {m}"),
            Error::Corrupt(m) => write!(f, "corrupt data: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Database(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::Database(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
