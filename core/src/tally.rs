//! Exact row counts of the biggest tables without a scan (migration V15): statement-level
//! triggers append the number of rows each statement inserted or deleted to `auth_tally`, in
//! the statement's transaction, so the sum that a snapshot sees is what `count(*)` would see.
//! The cleanup turn folds the appended rows into one per table ([`Storage::fold_tallies`]).

use crate::error::Result;
use crate::sql::Db;
use crate::storage::Storage;

/// A table whose rows are tallied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tallied {
    /// `auth_token`: also the number of (session, token) pairs, as every token has a session.
    Tokens,
    /// `auth_user`.
    Users,
    /// `auth_refresh_token`.
    RefreshTokens,
    /// `auth_policy` (migration V18).
    Policies,
    /// `auth_group` (migration V18).
    Groups,
}

impl Tallied {
    fn table(self) -> &'static str {
        match self {
            Tallied::Tokens => "auth_token",
            Tallied::Users => "auth_user",
            Tallied::RefreshTokens => "auth_refresh_token",
            Tallied::Policies => "auth_policy",
            Tallied::Groups => "auth_group",
        }
    }
}

/// Appended rows past which a reader should fold the tallies (the cleanup turn folds them at
/// every run; with the cleanup disabled, nothing else would).
pub const FOLD_ROWS: i64 = 10_000;

/// The number of rows of `table` in `client`'s snapshot, and whether the tally should be folded
/// (more than [`FOLD_ROWS`] rows appended to it).
pub async fn count<C: Db>(client: &C, table: Tallied) -> Result<(i64, bool)> {
    let row = client
        .fetch_one_cached(
            "SELECT coalesce(sum(n), 0)::bigint, count(*) FROM auth_tally WHERE tbl = $1",
            &[&table.table()],
        )
        .await?;
    Ok((row.get(0), row.get::<_, i64>(1) > FOLD_ROWS))
}

impl Storage {
    /// Folds the rows appended to the tallies into one per table, which keeps their sums. Exact
    /// while the tables are written: rows appended by transactions that commit later are left
    /// for the next fold. Returns the number of rows folded.
    pub async fn fold_tallies(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .fetch_one(
                "WITH folded AS (DELETE FROM auth_tally RETURNING tbl, n),
                      kept AS (INSERT INTO auth_tally (tbl, n)
                               SELECT tbl, sum(n) FROM folded GROUP BY tbl)
                 SELECT count(*) FROM folded",
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}
