//! The bus events' transactional outbox (`auth_event_outbox`, migrations/V9): the SQL of the
//! publisher that sends its rows to the AMQP exchange (host/src/bus) and of the bound that keeps
//! it from growing without end. The rows themselves are written by the changes that cause them,
//! in their own transactions.
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
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use crate::sql::Db;
use crate::{Error, Result};

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
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub name: String,
    pub routing_key: String,
    /// The event's own headers (a JSON object).
    pub headers: Value,
    /// The event's content (the body's `data`).
    pub data: Value,
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
        let mut config: tokio_postgres::Config = db_uri
            .parse()
            .map_err(|e| Error::database(format!("invalid db_uri: {e}")))?;
        // Named, so that operators (and tests) can tell it from the pooled connections.
        config.application_name("wazo-auth-bus-publisher");
        config.connect_timeout(timeout);
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(timeout.max(Duration::from_secs(1)));
        }
        let connecting = config.connect(NoTls);
        let (client, connection) = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| Error::database("no answer from the database"))??;
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

    /// At most `limit` rows ready to be published, in order: the rows in `id` order up to the
    /// first one whose writing transaction may be younger than a running one.
    pub async fn ready_rows(&self, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = self
            .client
            .fetch(
                "SELECT o.id, o.name, o.routing_key, o.headers, o.data, o.created_at,
                        o.xid < pg_snapshot_xmin(pg_current_snapshot())
                 FROM auth_event_outbox o ORDER BY o.id LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .take_while(|r| r.get::<_, bool>(6))
            .map(|r| OutboxRow {
                id: r.get(0),
                name: r.get(1),
                routing_key: r.get(2),
                headers: r.get(3),
                data: r.get(4),
                created_at: r.get(5),
            })
            .collect())
    }

    /// Deletes the rows `ids` (published and confirmed); the number deleted.
    pub async fn delete(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(self
            .client
            .exec("DELETE FROM auth_event_outbox WHERE id = ANY($1)", &[&ids])
            .await?)
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
    /// Rows waiting: counted exactly up to [`EXACT_COUNT_UP_TO`] ids; above, the span of their
    /// ids (ids burnt by rolled-back transactions count too), which costs no scan.
    pub rows: i64,
    /// Age in seconds of the oldest row (0 when empty).
    pub oldest_age: f64,
}

/// Below this span of ids the backlog is counted row by row.
pub const EXACT_COUNT_UP_TO: i64 = 10_000;

/// What [`enforce_bounds`] dropped.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Dropped {
    /// Rows older than the age bound.
    pub too_old: u64,
    /// Oldest rows beyond the bound on rows.
    pub too_many: u64,
}

/// The outbox's backlog (two index look-ups, and a count of at most [`EXACT_COUNT_UP_TO`]
/// rows).
pub async fn backlog(client: &Client) -> Result<Backlog> {
    let row = client
        .fetch_one(
            "SELECT (SELECT min(id) FROM auth_event_outbox), (SELECT max(id) FROM auth_event_outbox),
                    coalesce(extract(epoch FROM clock_timestamp() -
                        (SELECT created_at FROM auth_event_outbox ORDER BY id LIMIT 1))::float8, 0)",
            &[],
        )
        .await?;
    let oldest_age = row.get::<_, f64>(2).max(0.0);
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
            .fetch_one("SELECT count(*) FROM auth_event_outbox", &[])
            .await?
            .get(0)
    } else {
        span
    };
    Ok(Backlog { rows, oldest_age })
}

/// Drops the rows older than `max_age`, and the oldest rows so that the newest ids span at most
/// `max_rows` (so at most `max_rows` rows stay). Two index look-ups when nothing is to be
/// dropped.
pub async fn enforce_bounds(client: &Client, max_age: Duration, max_rows: i64) -> Result<Dropped> {
    let mut dropped = Dropped::default();
    let seconds = max_age.as_secs_f64();
    let row = client
        .fetch_one(
            "SELECT coalesce((SELECT created_at FROM auth_event_outbox ORDER BY id LIMIT 1)
                    < clock_timestamp() - make_interval(secs => $1), false),
                    (SELECT min(id) FROM auth_event_outbox), (SELECT max(id) FROM auth_event_outbox)",
            &[&seconds],
        )
        .await?;
    if row.get::<_, bool>(0) {
        dropped.too_old = client
            .exec(
                "DELETE FROM auth_event_outbox
                 WHERE created_at < clock_timestamp() - make_interval(secs => $1)",
                &[&seconds],
            )
            .await?;
    }
    if let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(1), row.get::<_, Option<i64>>(2)) {
        // Keep the ids (max - max_rows, max]: at most max_rows rows.
        let keep_from = max.saturating_sub(max_rows).saturating_add(1);
        if min < keep_from {
            dropped.too_many = client
                .exec("DELETE FROM auth_event_outbox WHERE id < $1", &[&keep_from])
                .await?;
        }
    }
    Ok(dropped)
}
