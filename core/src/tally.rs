//! Exact row counts of the biggest tables without a scan (migration V15): statement-level
//! triggers append the number of rows each statement inserted or deleted to `auth_tally`, in
//! the statement's transaction, so the sum that a snapshot sees is what `count(*)` would see.
//! A reader sums the table's rows: each server folds the appended rows into one per table
//! about every second ([`Storage::fold_tallies_over`], whatever the cleanup's settings), so that
//! a reader never scans more than about a second's worth of writes.

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

/// Rows in `auth_tally` past which the periodic fold folds them (one per tallied table, plus
/// the rows appended since): below it, a fold would cost more than the reads it saves.
pub const FOLD_ROWS: i64 = 100;

/// How often each server folds the tallies when they hold more than [`FOLD_ROWS`] rows.
pub const FOLD_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// The number of rows of `table` in `client`'s snapshot.
pub async fn count<C: Db>(client: &C, table: Tallied) -> Result<i64> {
    let row = client
        .fetch_one_cached(
            "SELECT coalesce(sum(n), 0)::bigint FROM auth_tally WHERE tbl = $1",
            &[&table.table()],
        )
        .await?;
    Ok(row.get(0))
}

/// The advisory lock that a fold takes when it is free, and that a `TRUNCATE`'s tally trigger
/// waits for (migration V20): "wazotaly".
pub const FOLD_LOCK_KEY: i64 = 0x7761_7a6f_7461_6c79;

impl Storage {
    /// Folds the rows appended to the tallies into one per table, which keeps their sums, when
    /// `auth_tally` holds more than `rows` rows. Returns the number of rows folded: 0 when they
    /// are fewer, or when another fold holds [`FOLD_LOCK_KEY`] (several servers fold: they skip
    /// rather than queue). Exact while the tables are written: rows appended by transactions
    /// that commit later are left for the next fold.
    pub async fn fold_tallies_over(&self, rows: i64) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .fetch_one_cached(
                "WITH locked AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($2) AS got),
                      folded AS (DELETE FROM auth_tally
                                 WHERE (SELECT got FROM locked)
                                   AND (SELECT count(*) FROM auth_tally) > $1
                                 RETURNING tbl, n),
                      kept AS (INSERT INTO auth_tally (tbl, n)
                               SELECT tbl, sum(n) FROM folded GROUP BY tbl)
                 SELECT count(*) FROM folded",
                &[&rows, &FOLD_LOCK_KEY],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}
