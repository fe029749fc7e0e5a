//! The bus events' transactional outbox (`auth_event_outbox`, migrations/V9): the SQL of the
//! publisher that sends its rows to the AMQP exchange (host/src/bus) and of the bound that keeps
//! it from growing without end. The rows themselves are written by the changes that cause them,
//! in their own transactions.
//!
//! The purge writes the events of each of its batches as rows of `auth_event_outbox_batch` of
//! at most 500 events each (migrations/V17), whose ids come from the same sequence: the
//! publisher reads both tables as one sequence of events.
//!
//! - One process publishes at a time: the one holding the session advisory lock
//!   [`PUBLISHER_LOCK_KEY`] on its dedicated connection ([`OutboxConnection`]). It reads and
//!   deletes rows on that same connection, so a publisher that loses its connection loses the
//!   lock and can delete nothing more; another process takes over from the rows left.
//! - Rows are taken in `id` order, and only up to the first row whose writing transaction is
//!   not older than every running one (`xid < pg_snapshot_xmin(pg_current_snapshot())`): a
//!   row is never sent while a row before it may still be committed, so the events go out in
//!   the order their changes were made (two changes of one entity are serialised by its row
//!   lock, so the later one's outbox row has the larger id).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_postgres::types::Json;
use tokio_postgres::Client;

use crate::lull::Lull;
use crate::sql::Db;
use crate::Result;

/// Arbitrary but fixed key of the session advisory lock held by the one publishing process.
pub const PUBLISHER_LOCK_KEY: i64 = 0x7761_7a6f_6275_7321; // "wazobus!"

static BUS_ENABLED: AtomicBool = AtomicBool::new(true);

/// Records whether this process has a bus (`amqp.uri` set); set once at startup by the host.
pub fn set_bus_enabled(enabled: bool) {
    BUS_ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether this process has a bus. Writers of outbox rows may skip them when it has none (no
/// process would ever publish them; the bound would only drop them later).
pub fn bus_enabled() -> bool {
    BUS_ENABLED.load(Ordering::Relaxed)
}

/// One event waiting to be published.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub name: String,
    pub routing_key: String,
    /// The event's own headers (a JSON object).
    pub headers: Value,
    /// The event's content (the body's `data`), as its JSON text: the publisher copies it into
    /// the body as it is, without decoding it into values and writing them again.
    pub data: Box<RawValue>,
    pub created_at: DateTime<Utc>,
}

/// The publisher's own database connection (outside every pool): it holds the advisory lock
/// that makes this process the publisher, and reads and deletes the rows.
pub struct OutboxConnection {
    client: Client,
    driver: tokio::task::JoinHandle<()>,
    leader: bool,
}

impl OutboxConnection {
    /// Connects to `db_uri`; connecting and every statement are bounded by `timeout`.
    pub async fn connect(db_uri: &str, timeout: Duration) -> Result<OutboxConnection> {
        // Named, so that operators (and tests) can tell it from the pooled connections.
        let (client, connection) =
            crate::storage::connect_direct(db_uri, "wazo-auth-bus-publisher", timeout).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("bus publisher database connection ended: {e}");
            }
        });
        let ms = i64::try_from(timeout.as_millis().max(1)).unwrap_or(i64::MAX);
        client
            .batch_execute(&format!("SET statement_timeout = {ms}"))
            .await?;
        Ok(OutboxConnection {
            client,
            driver,
            leader: false,
        })
    }

    /// Whether the connection is gone (the lock with it).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Takes the publisher lock if no other connection holds it; true once this connection
    /// holds it (until it closes).
    pub async fn try_lead(&mut self) -> Result<bool> {
        if !self.leader {
            let row = self
                .client
                .fetch_one("SELECT pg_try_advisory_lock($1)", &[&PUBLISHER_LOCK_KEY])
                .await?;
            self.leader = row.get(0);
        }
        Ok(self.leader)
    }

    /// The events ready to be published, in order, about `limit` of them: those of the rows
    /// of both tables (`auth_event_outbox` and `auth_event_outbox_batch`, one sequence of ids)
    /// in `id` order up to the first one whose writing transaction may be younger than a running
    /// one. The events of one batch row share its id and are all returned (so there may be up
    /// to a batch row's length more than `limit`); the rows after `limit` events are left for the
    /// next call.
    pub async fn ready_rows(&self, limit: i64) -> Result<Vec<OutboxRow>> {
        // Each table's first `limit` rows, the batch rows only as far as they start before
        // `limit` events; a batch row's events are one row each (its array unnested for the rows
        // returned only), in its order, so that they are decoded one at a time (with pauses,
        // `Lull`: a batch of 500 events is milliseconds of CPU).
        let rows = self
            .client
            .fetch(
                "SELECT id, name, routing_key, headers, data, created_at, ready, 0::bigint AS n
                 FROM (SELECT o.id, o.name, o.routing_key, o.headers, o.data, o.created_at,
                              o.xid < pg_snapshot_xmin(pg_current_snapshot()) AS ready
                       FROM auth_event_outbox o ORDER BY o.id LIMIT $1) o
                 UNION ALL
                 SELECT b.id, b.name,
                        CASE WHEN jsonb_typeof(e.event->'routing_key') = 'string'
                             THEN e.event->>'routing_key' ELSE '' END,
                        coalesce(e.event->'headers', 'null'::jsonb),
                        coalesce(e.event->'data', 'null'::jsonb), b.created_at, b.ready, e.n
                 FROM (SELECT b.id, b.name, b.created_at, b.events,
                              b.xid < pg_snapshot_xmin(pg_current_snapshot()) AS ready,
                              sum(b.event_count) OVER (ORDER BY b.id) - b.event_count AS before
                       FROM (SELECT * FROM auth_event_outbox_batch ORDER BY id LIMIT $1) b) b,
                      jsonb_array_elements(b.events) WITH ORDINALITY AS e(event, n)
                 WHERE b.before < $1
                 ORDER BY 1, 8",
                &[&limit],
            )
            .await?;
        let mut lull = Lull::new();
        let mut events = Vec::new();
        let mut last_id = None;
        for r in rows.iter().take_while(|r| r.get::<_, bool>(6)) {
            let id: i64 = r.get(0);
            // Whole rows only: a batch row's events all, or none.
            if last_id != Some(id) && events.len() as i64 >= limit {
                break;
            }
            last_id = Some(id);
            lull.breathe();
            events.push(OutboxRow {
                id,
                name: r.get(1),
                routing_key: r.get(2),
                headers: r.get(3),
                data: r.get::<_, Json<Box<RawValue>>>(4).0,
                created_at: r.get(5),
            });
        }
        Ok(events)
    }

    /// Deletes the rows `ids` (all their events published and confirmed), of either table; the
    /// number of rows deleted.
    pub async fn delete(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let row = self
            .client
            .fetch_one(
                "WITH o AS (DELETE FROM auth_event_outbox WHERE id = ANY($1) RETURNING 1),
                      b AS (DELETE FROM auth_event_outbox_batch WHERE id = ANY($1) RETURNING 1)
                 SELECT (SELECT count(*) FROM o) + (SELECT count(*) FROM b)",
                &[&ids],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}

impl Drop for OutboxConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The outbox's size, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Events waiting: rows counted exactly up to [`EXACT_COUNT_UP_TO`] ids; above, the span
    /// of their ids (ids burnt by rolled-back transactions count too), which costs no scan;
    /// plus the events of the batch rows beyond their first.
    pub rows: i64,
    /// Age in seconds of the oldest row (0 when empty).
    pub oldest_age: f64,
}

/// Below this span of ids the backlog is counted row by row.
pub const EXACT_COUNT_UP_TO: i64 = 10_000;

/// What [`enforce_bounds`] dropped.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Dropped {
    /// Events of the rows older than the age bound.
    pub too_old: u64,
    /// Events of the oldest rows beyond the bound on rows.
    pub too_many: u64,
}

/// The ids and creation times of the rows of both outbox tables, for [`backlog`] and
/// [`enforce_bounds`] (a union whose `min`, `max` and first row are index look-ups).
const BOTH_TABLES: &str = "(SELECT id, created_at FROM auth_event_outbox
                             UNION ALL SELECT id, created_at FROM auth_event_outbox_batch)";

/// The outbox's backlog in events (index look-ups, a count of at most [`EXACT_COUNT_UP_TO`]
/// rows, and the sum of the batch rows' counts: a few rows, at most 500 events each).
pub async fn backlog(client: &Client) -> Result<Backlog> {
    let row = client
        .fetch_one(
            &format!(
                "SELECT (SELECT min(id) FROM {BOTH_TABLES} o), (SELECT max(id) FROM {BOTH_TABLES} o),
                        coalesce(extract(epoch FROM clock_timestamp() -
                            (SELECT created_at FROM {BOTH_TABLES} o ORDER BY id LIMIT 1))::float8, 0),
                        (SELECT coalesce(sum(event_count - 1), 0)::int8
                         FROM auth_event_outbox_batch)"
            ),
            &[],
        )
        .await?;
    let oldest_age = row.get::<_, f64>(2).max(0.0);
    // Each batch row is counted as one row below: add its other events.
    let more = row.get::<_, i64>(3).max(0);
    let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
    else {
        return Ok(Backlog {
            rows: 0,
            oldest_age,
        });
    };
    let span = max - min + 1;
    let rows = if span <= EXACT_COUNT_UP_TO {
        client
            .fetch_one(&format!("SELECT count(*) FROM {BOTH_TABLES} o"), &[])
            .await?
            .get(0)
    } else {
        span
    };
    Ok(Backlog {
        rows: rows.saturating_add(more),
        oldest_age,
    })
}

/// Drops the rows older than `max_age`, and the oldest rows so that the newest ids span at most
/// `max_rows` (so at most `max_rows` rows stay; a batch row counts as one). Index look-ups when
/// nothing is to be dropped. Counts what it dropped in events.
pub async fn enforce_bounds(client: &Client, max_age: Duration, max_rows: i64) -> Result<Dropped> {
    let mut dropped = Dropped::default();
    let seconds = max_age.as_secs_f64();
    let row = client
        .fetch_one(
            &format!(
                "SELECT coalesce((SELECT created_at FROM {BOTH_TABLES} o ORDER BY id LIMIT 1)
                        < clock_timestamp() - make_interval(secs => $1), false),
                        (SELECT min(id) FROM {BOTH_TABLES} o), (SELECT max(id) FROM {BOTH_TABLES} o)"
            ),
            &[&seconds],
        )
        .await?;
    // The events of the rows deleted by `condition` ($1), in both tables.
    let drop = |condition: &'static str| {
        format!(
            "WITH o AS (DELETE FROM auth_event_outbox WHERE {condition} RETURNING 1 AS n),
                  b AS (DELETE FROM auth_event_outbox_batch WHERE {condition}
                        RETURNING event_count AS n)
             SELECT coalesce((SELECT sum(n) FROM o), 0)::int8
                    + coalesce((SELECT sum(n) FROM b), 0)::int8"
        )
    };
    if row.get::<_, bool>(0) {
        let events: i64 = client
            .fetch_one(
                &drop("created_at < clock_timestamp() - make_interval(secs => $1)"),
                &[&seconds],
            )
            .await?
            .get(0);
        dropped.too_old = events.max(0) as u64;
    }
    if let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(1), row.get::<_, Option<i64>>(2)) {
        // Keep the ids (max - max_rows, max]: at most max_rows rows.
        let keep_from = max.saturating_sub(max_rows).saturating_add(1);
        if min < keep_from {
            let events: i64 = client
                .fetch_one(&drop("id < $1"), &[&keep_from])
                .await?
                .get(0);
            dropped.too_many = events.max(0) as u64;
        }
    }
    Ok(dropped)
}
