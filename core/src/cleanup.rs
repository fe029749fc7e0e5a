//! The periodic cleanup (expired-token purge, expire-soon notices, login-throttle purge) runs in
//! one server process at a time for the whole database, and once per interval rather than once
//! per process and interval.
//!
//! A process that wants to run it takes the cleanup turn ([`Storage::cleanup_turn`]): a
//! transaction-scoped advisory lock, on a connection of its own, held for the whole run. A
//! transaction lock rather than a session lock, so that the turn also holds through PgBouncer in
//! transaction pooling mode. The transaction writes nothing until the run is over (no
//! transaction id is held during the purge). When another process holds the turn, or ran the
//! cleanup less than an interval ago (`auth_cleanup_state.last_run_at`, migration V14), the run
//! is skipped: the other process did or does the work.
//!
//! The expire-soon notices follow a window kept in the same row (`expire_soon_until`), so each
//! session is announced once whichever process runs ([`Storage::notify_expire_soon`]).

use crate::error::Result;
use crate::sql::{first_row, Db};
use crate::storage::Storage;

/// The advisory lock of the cleanup turn ("wazoclen").
pub const CLEANUP_LOCK_KEY: i64 = 0x7761_7a6f_636c_656e;

/// This process's turn at the cleanup; no other process runs one while it is held. Released by
/// [`CleanupTurn::finish`], or when dropped (its connection is then closed, which ends the
/// transaction and the lock).
pub struct CleanupTurn {
    client: deadpool_postgres::ClientWrapper,
    started: f64,
    /// `auth_cleanup_state.expire_soon_until` when the turn was taken.
    announced_until: Option<f64>,
}

impl Storage {
    /// Takes the cleanup turn at `now` (epoch seconds), unless another process holds it or
    /// started a complete run less than `min_gap` seconds ago: `None` then.
    pub async fn cleanup_turn(&self, now: f64, min_gap: f64) -> Result<Option<CleanupTurn>> {
        // Detached from the pool: a run cut short (the task aborted at shutdown) closes the
        // connection, and with it the transaction, instead of handing it to a request.
        let client = deadpool_postgres::Object::take(self.client().await?);
        client.batch_execute("BEGIN").await?;
        // By the simple query protocol: a statement of the extended protocol leaves its portal
        // open, and the portal's snapshot held back the xmin horizon for the whole run (the
        // turn's transaction stays open): neither vacuum nor the purge's own index scans could
        // skip the rows already purged, and every batch read them all again (a purge of 250 k
        // sessions slowed down to 1,800/s). The key is a constant.
        let locked = first_row(
            &client
                .simple_query(&format!(
                    "SELECT pg_try_advisory_xact_lock({CLEANUP_LOCK_KEY})"
                ))
                .await?,
        )
        .and_then(|r| r.get(0))
            == Some("t");
        if !locked {
            client.batch_execute("ROLLBACK").await?;
            return Ok(None);
        }
        // Read once the lock is held (a statement's snapshot taken before the lock could miss
        // the run another process committed just before), for the whole run.
        let state = client
            .simple_query("SELECT last_run_at, expire_soon_until FROM auth_cleanup_state")
            .await?;
        let value = |i: usize| -> Option<f64> {
            first_row(&state)
                .and_then(|r| r.get(i))
                .and_then(|v| v.parse().ok())
        };
        let (last_run, announced_until) = (value(0), value(1));
        if last_run.is_some_and(|last| now - last < min_gap && last <= now) {
            client.batch_execute("ROLLBACK").await?;
            return Ok(None);
        }
        Ok(Some(CleanupTurn {
            client,
            started: now,
            announced_until,
        }))
    }
}

impl CleanupTurn {
    /// Where this run's purge stops ([`crate::tokens::purge_cutoff`]), from the expire-soon
    /// window read when the turn was taken (no other process changes it while the turn is
    /// held).
    pub fn purge_cutoff(&self, now: f64, max_lag: f64) -> f64 {
        crate::tokens::purge_cutoff(now, self.announced_until, max_lag)
    }

    /// Ends the turn; `complete` records the run's start as the last run (a run that failed is
    /// not recorded, so that another process may retry before the interval is over).
    pub async fn finish(self, complete: bool) -> Result<()> {
        if complete {
            self.client
                .exec(
                    "UPDATE auth_cleanup_state SET last_run_at = $1",
                    &[&self.started],
                )
                .await?;
        }
        self.client.batch_execute("COMMIT").await?;
        Ok(())
    }
}
