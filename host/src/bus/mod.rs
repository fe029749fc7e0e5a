//! The bus publisher: sends the events of the transactional outbox (`auth_event_outbox`, see
//! `wazo_auth_core::outbox`) to the AMQP exchange, as wazo-bus would have published them.
//!
//! - Requests never wait for the broker: they only write outbox rows, in their own
//!   transactions. This task reads them afterwards.
//! - One process of those sharing a database publishes: the one holding the outbox's advisory
//!   lock on its dedicated connection. The others wait for the lock (a publisher that dies or
//!   loses its database connection releases it).
//! - The publisher takes the rows in order ([`OutboxConnection::ready_rows`]), publishes a
//!   batch with publisher confirms, and deletes the rows the broker confirmed. Delivery is at
//!   least once: a row published but not yet deleted when the publisher stops (process killed,
//!   database or broker connection lost between the confirm and the delete) is published again
//!   by the next publisher.
//! - The broker unreachable, it reconnects with a doubling delay (0.5 s up to 30 s), logging a
//!   warning at the first failure and when the broker is back.
//! - Every process bounds the outbox ([`bound_loop`]: `bus.outbox_max_age`,
//!   `bus.outbox_max_rows`) and reports its backlog as metrics.
//!
//! The message of a row: the AMQP headers are the row's headers plus `name`, `origin_uuid`
//! (`uuid`, else `XIVO_UUID`) and `timestamp` (the event's time, local, as Python's
//! `datetime.isoformat()`); the body is the JSON object of those headers plus `"data"`;
//! `application/json`, `utf-8`, persistent (delivery mode 2), as kombu sends a dict. The
//! exchange is declared durable, not auto-deleted, of type `amqp.exchange_type`, as kombu
//! declares wazo-bus's exchange (the default exchange, named "", is not declared).

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Local, Timelike, Utc};
use futures_util::future::{maybe_done, MaybeDone};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use wazo_auth_core::lull::Lull;
use wazo_auth_core::outbox::{self, OutboxConnection, OutboxRow};
use wazo_auth_core::Storage;

use crate::telemetry::metrics;

/// Rows published per batch (then confirmed, then deleted).
const BATCH: i64 = 500;
/// Pause between two looks at an empty outbox.
const POLL: Duration = Duration::from_millis(100);
/// Pause between two attempts to take the publisher lock.
const LEAD_RETRY: Duration = Duration::from_secs(1);
/// Period of the bound and of the backlog metrics.
const BOUND_PERIOD: Duration = Duration::from_secs(2);
/// Bound of a connection to the broker, and of a batch's publishing and confirms.
const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

/// What the publisher needs (from `amqp`, `uuid`, `bus`, `db_listen_uri` or `db_uri`, and
/// `db_timeout`).
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// `None`: no bus (`amqp.uri: null`); the outbox is still bounded.
    pub uri: Option<AMQPUri>,
    pub exchange_name: String,
    pub exchange_type: String,
    pub origin_uuid: Option<String>,
    pub max_age: Duration,
    pub max_rows: i64,
    pub db_uri: String,
    pub db_timeout: Duration,
}

/// Parses `amqp.uri`: an `amqp://[user[:password]@]host[:port][/vhost][?options]` URI. The
/// message never repeats the URI (it may hold a password).
pub fn parse_uri(text: &str) -> Result<AMQPUri, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a valid URI ({e})"))?;
    match url.scheme() {
        "amqp" => {}
        "amqps" => {
            return Err(
                "amqps:// (TLS) is not supported, use amqp:// (e.g. through a local TLS tunnel)"
                    .into(),
            )
        }
        other => return Err(format!("unknown scheme {other:?}, expected amqp://")),
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err("no host (expected amqp://user:password@host:port/vhost)".into());
    };
    let mut uri = AMQPUri::from_str(text).map_err(|e| format!("invalid AMQP URI ({e})"))?;
    // The URI crate reads domain names only: keep IP addresses too.
    uri.authority.host = host.trim_start_matches('[').trim_end_matches(']').into();
    // `amqp://host/` and `amqp://host` mean the default virtual host, as for kombu.
    if uri.vhost.is_empty() {
        uri.vhost = "/".into();
    }
    Ok(uri)
}

/// The URI without its credentials, for the log.
fn display_uri(uri: &AMQPUri) -> String {
    let scheme = match uri.scheme {
        AMQPScheme::AMQP => "amqp",
        AMQPScheme::AMQPS => "amqps",
    };
    format!(
        "{scheme}://{}:{}/{}",
        uri.authority.host,
        uri.authority.port,
        url::form_urlencoded::byte_serialize(uri.vhost.as_bytes()).collect::<String>()
    )
}

/// `ts` in local time as Python's `datetime.isoformat()` writes a naive datetime:
/// `2024-05-01T12:34:56.123456`, without the fraction when the microseconds are 0.
pub fn python_isoformat(ts: DateTime<Utc>) -> String {
    let local = ts.with_timezone(&Local).naive_local();
    let micros = local.nanosecond() / 1_000 % 1_000_000;
    let base = local.format("%Y-%m-%dT%H:%M:%S");
    if micros == 0 {
        base.to_string()
    } else {
        format!("{base}.{micros:06}")
    }
}

/// A JSON value as an AMQP header value, typed as py-amqp types Python values: strings as long
/// strings, integers as 32-bit when they fit (else 64-bit), floats as doubles, `null` as void.
fn amqp_value(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => match i32::try_from(i) {
                Ok(small) => AMQPValue::LongInt(small),
                Err(_) => AMQPValue::LongLongInt(i),
            },
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(amqp_value).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(field_table(map)),
    }
}

fn field_table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in map {
        table.insert(ShortString::from(key.as_str()), amqp_value(value));
    }
    table
}

/// A row's message: its AMQP headers and its body, the row consumed (nothing of it copied but
/// its data's JSON text, as it is). `stamp` keeps the last timestamp written (the events of a
/// batch row share theirs).
pub fn message_parts(
    row: OutboxRow,
    origin_uuid: Option<&str>,
    stamp: &mut Stamp,
) -> (FieldTable, Vec<u8>) {
    let mut headers = match row.headers {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    headers.insert("name".into(), Value::String(row.name));
    headers.insert(
        "origin_uuid".into(),
        origin_uuid.map_or(Value::Null, |u| Value::String(u.to_string())),
    );
    headers.insert(
        "timestamp".into(),
        Value::String(stamp.isoformat(row.created_at).to_string()),
    );
    let table = field_table(&headers);
    // The body: the headers, and the data (its key last; a header named "data" gives way).
    headers.remove("data");
    #[derive(serde::Serialize)]
    struct Body<'a> {
        #[serde(flatten)]
        headers: &'a Map<String, Value>,
        data: &'a RawValue,
    }
    let body = serde_json::to_vec(&Body {
        headers: &headers,
        data: &row.data,
    })
    .unwrap_or_default();
    (table, body)
}

/// The last timestamp written by [`python_isoformat`], kept.
#[derive(Default)]
pub struct Stamp {
    last: Option<(DateTime<Utc>, String)>,
}

impl Stamp {
    fn isoformat(&mut self, ts: DateTime<Utc>) -> &str {
        if !matches!(&self.last, Some((last, _)) if *last == ts) {
            self.last = Some((ts, python_isoformat(ts)));
        }
        self.last.as_ref().map_or("", |(_, text)| text.as_str())
    }
}

fn properties(headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// Whether this process publishes, and whether it is connected to the broker (metrics).
#[derive(Debug, Default)]
pub struct BusState {
    pub publisher: AtomicBool,
    pub connected: AtomicBool,
}

impl BusState {
    fn set(&self, publisher: bool, connected: bool) {
        self.publisher.store(publisher, Ordering::Relaxed);
        self.connected.store(connected, Ordering::Relaxed);
        metrics::bus_state(publisher, connected);
    }
}

/// Starts the publisher (when `amqp.uri` is set) and the bound of the outbox; the tasks run
/// until aborted.
pub fn start(
    settings: BusSettings,
    storage: Storage,
    state: Arc<BusState>,
) -> Vec<tokio::task::JoinHandle<()>> {
    outbox::set_bus_enabled(settings.uri.is_some());
    state.set(false, false);
    let settings = Arc::new(settings);
    let mut tasks = vec![tokio::spawn(bound_loop(settings.clone(), storage))];
    if settings.uri.is_some() {
        tasks.push(tokio::spawn(publisher_loop(settings, state)));
    } else {
        log::info!("no amqp.uri: bus events are not published");
    }
    tasks
}

/// A doubling delay between attempts.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max,
            failures: 0,
        }
    }

    /// The delay before the next attempt.
    fn failed(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        self.failures += 1;
        delay
    }

    /// The attempt succeeded; the number of failures before it.
    fn succeeded(&mut self) -> u32 {
        self.next = self.min;
        std::mem::take(&mut self.failures)
    }
}

/// Connects to the database, waits to be the publisher, publishes; again on failure.
async fn publisher_loop(settings: Arc<BusSettings>, state: Arc<BusState>) {
    let mut db_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let mut db = match OutboxConnection::connect(&settings.db_uri, settings.db_timeout).await {
            Ok(db) => db,
            Err(e) => {
                let delay = db_backoff.failed();
                if db_backoff.failures == 1 {
                    log::warn!("bus publisher: cannot reach the database ({e}); retrying");
                }
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        db_backoff.succeeded();
        // Wait for the lock: another process may be publishing.
        let leading = loop {
            match db.try_lead().await {
                Ok(true) => break true,
                Ok(false) => tokio::time::sleep(LEAD_RETRY).await,
                Err(e) => {
                    log::warn!("bus publisher: database error ({e}); reconnecting");
                    break false;
                }
            }
        };
        if !leading {
            continue;
        }
        log::info!("this process publishes the bus events");
        state.set(true, false);
        let e = lead(&db, &settings, &state).await;
        state.set(false, false);
        log::warn!(
            "bus publisher: database connection lost ({e}); publishing stops until it is back"
        );
        drop(db);
        tokio::time::sleep(db_backoff.failed()).await;
    }
}

/// An open channel to the broker, in confirm mode, the exchange declared.
struct Broker {
    connection: Connection,
    channel: lapin::Channel,
}

impl Broker {
    async fn connect(settings: &BusSettings, uri: &AMQPUri) -> Result<Broker, String> {
        let connecting = async {
            let props = ConnectionProperties::default().with_connection_name("wazo-auth".into());
            let connection = Connection::connect_uri(uri.clone(), props)
                .await
                .map_err(|e| format!("cannot connect ({e})"))?;
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| format!("cannot open a channel ({e})"))?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| format!("cannot enable publisher confirms ({e})"))?;
            if !settings.exchange_name.is_empty() {
                channel
                    .exchange_declare(
                        settings.exchange_name.as_str().into(),
                        ExchangeKind::Custom(settings.exchange_type.clone()),
                        ExchangeDeclareOptions {
                            durable: true,
                            ..ExchangeDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot declare the exchange {:?} of type {:?} \
                             (amqp.exchange_name, amqp.exchange_type): {e}",
                            settings.exchange_name, settings.exchange_type
                        )
                    })?;
            }
            Ok(Broker {
                connection,
                channel,
            })
        };
        tokio::time::timeout(BROKER_TIMEOUT, connecting)
            .await
            .map_err(|_| "no answer from the broker".to_string())?
    }

    /// Publishes the events `rows` and waits for their confirms: the ids of the rows whose
    /// events the broker all confirmed (the events of a batch row share its id), or why the
    /// connection is to be dropped.
    async fn publish(
        &self,
        rows: Vec<OutboxRow>,
        settings: &BusSettings,
    ) -> Result<Confirmed, String> {
        let publishing = async {
            // Up to 500 messages built and handed over: milliseconds of CPU, with pauses.
            let mut lull = Lull::new();
            let mut stamp = Stamp::default();
            let mut messages = Vec::with_capacity(rows.len());
            for mut row in rows {
                lull.breathe();
                let (id, routing_key) = (row.id, std::mem::take(&mut row.routing_key));
                let (headers, body) =
                    message_parts(row, settings.origin_uuid.as_deref(), &mut stamp);
                messages.push((id, routing_key, headers, body));
            }
            let publishes = messages.iter_mut().map(|(_, routing_key, headers, body)| {
                self.channel.basic_publish(
                    settings.exchange_name.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    properties(std::mem::take(headers)),
                )
            });
            let published = join_in_order(publishes, &mut lull).await;
            let mut pending = Vec::with_capacity(messages.len());
            for ((id, ..), published) in messages.iter().zip(published) {
                let confirm = published.map_err(|e| format!("publishing failed ({e})"))?;
                pending.push((*id, confirm));
            }
            // Each row's id and its events' count (a batch row's events are contiguous).
            let mut rows_sent: Vec<(i64, u64)> = Vec::new();
            let mut refused = Vec::new();
            for (id, confirm) in pending {
                lull.breathe();
                match rows_sent.last_mut() {
                    Some((last, n)) if *last == id => *n += 1,
                    _ => rows_sent.push((id, 1)),
                }
                match confirm
                    .await
                    .map_err(|e| format!("no confirm from the broker ({e})"))?
                {
                    Confirmation::Ack(_) | Confirmation::NotRequested => {}
                    Confirmation::Nack(_) => {
                        log::warn!(
                            "bus publisher: the broker refused event {id}; it will be sent again"
                        );
                        refused.push(id);
                    }
                }
            }
            // A row is deleted only once all its events are confirmed: a row with a refused
            // event goes again whole (at most 500 events, tokens::OUTBOX_BATCH_EVENTS), and its
            // events are counted when it is deleted.
            rows_sent.retain(|(id, _)| !refused.contains(id));
            Ok(Confirmed {
                ids: rows_sent.iter().map(|(id, _)| *id).collect(),
                events: rows_sent.iter().map(|(_, n)| n).sum(),
                complete: refused.is_empty(),
            })
        };
        tokio::time::timeout(BROKER_TIMEOUT, publishing)
            .await
            .map_err(|_| "no confirm from the broker in time".to_string())?
    }

    async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.connection.close(200, "bye".into()),
        )
        .await;
    }
}

/// Drives `futures` until all are done, and returns their outputs in the order given: each is
/// polled once, in that order, before any is waited for; then each is awaited in turn (a wake-up
/// polls only the one awaited).
///
/// A publish hands its frames to lapin's I/O thread, and takes the number of its confirm, at its
/// first poll, then waits for that thread to have written them. Awaited one after the other, each
/// event cost a round trip between the two threads: in a profile of the purge, a third of the
/// server's CPU went to the context switches. Polled together in order, a batch's events are
/// queued in the outbox's order (the broker keeps a channel's order) and written together, for a
/// few wake-ups per batch: 22 us of the server's CPU per purged session instead of 32, and 20 us
/// of the broker's instead of 28 (docs/benchmarks.md, "Issue 20: session 17").
///
/// `lull` pauses between two polls: the messages of 500 publishes are milliseconds of CPU.
async fn join_in_order<F: Future>(
    futures: impl IntoIterator<Item = F>,
    lull: &mut Lull,
) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<MaybeDone<F>>>> = futures
        .into_iter()
        .map(|f| Box::pin(maybe_done(f)))
        .collect();
    std::future::poll_fn(|cx| {
        for future in futures.iter_mut() {
            lull.breathe();
            // A future done at once keeps its output; the others are awaited below.
            let _ = future.as_mut().poll(cx);
        }
        Poll::Ready(())
    })
    .await;
    let mut outputs = Vec::with_capacity(futures.len());
    for mut future in futures {
        // Many are done by the time the first is: a pause between them too.
        lull.breathe();
        future.as_mut().await;
        // Done, awaited just above: its output is there.
        outputs.extend(future.as_mut().take_output());
    }
    outputs
}

/// Publishes while this process holds the lock; returns the database error that ended it.
async fn lead(
    db: &OutboxConnection,
    settings: &BusSettings,
    state: &BusState,
) -> wazo_auth_core::Error {
    let Some(uri) = &settings.uri else {
        return wazo_auth_core::Error::database("no amqp.uri");
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let broker = match Broker::connect(settings, uri).await {
            Ok(broker) => broker,
            Err(e) => {
                let delay = backoff.failed();
                if backoff.failures == 1 {
                    log::warn!(
                        "bus: the AMQP broker {} (amqp.uri) is unavailable: {e}; events wait in \
                         the outbox, retrying every {}s at most",
                        display_uri(uri),
                        backoff.max.as_secs()
                    );
                } else {
                    log::debug!("bus: broker still unavailable: {e}");
                }
                // Keep checking the database while waiting: the lock goes with it.
                tokio::time::sleep(delay).await;
                if db.is_closed() {
                    return wazo_auth_core::Error::database("connection closed");
                }
                continue;
            }
        };
        let failures = backoff.succeeded();
        if failures > 0 {
            log::warn!(
                "bus: connected to the AMQP broker {} again after {failures} failed attempts",
                display_uri(uri)
            );
        } else {
            log::info!("bus: connected to the AMQP broker {}", display_uri(uri));
        }
        state.set(true, true);
        let outcome = publish_until_failure(db, &broker, settings).await;
        state.set(true, false);
        broker.close().await;
        match outcome {
            Failure::Database(e) => return e,
            Failure::Broker(e) => {
                backoff.failed();
                log::warn!(
                    "bus: lost the AMQP broker {} (amqp.uri): {e}; reconnecting",
                    display_uri(uri)
                );
            }
        }
    }
}

/// What the broker confirmed of a publishing.
#[derive(Debug)]
struct Confirmed {
    /// The rows whose events were all confirmed, in order.
    ids: Vec<i64>,
    /// The events of those rows.
    events: u64,
    /// No event refused.
    complete: bool,
}

enum Failure {
    Database(wazo_auth_core::Error),
    Broker(String),
}

async fn publish_until_failure(
    db: &OutboxConnection,
    broker: &Broker,
    settings: &BusSettings,
) -> Failure {
    loop {
        let rows = match db.ready_rows(BATCH).await {
            Ok(rows) => rows,
            Err(e) => return Failure::Database(e),
        };
        if rows.is_empty() {
            if !broker.connection.status().connected() {
                return Failure::Broker("connection closed".into());
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        let confirmed = match broker.publish(rows, settings).await {
            Ok(confirmed) => confirmed,
            Err(e) => return Failure::Broker(e),
        };
        match db.delete(&confirmed.ids).await {
            Ok(_) => metrics::bus_published(confirmed.events),
            Err(e) => return Failure::Database(e),
        }
        if !confirmed.complete {
            // Refused by the broker: give it a moment before sending them again.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Every process: drops the rows beyond the bound, and records the backlog.
async fn bound_loop(settings: Arc<BusSettings>, storage: Storage) {
    let mut failing = false;
    loop {
        let outcome = async {
            let client = storage.client().await?;
            let dropped =
                outbox::enforce_bounds(&client, settings.max_age, settings.max_rows).await?;
            let backlog = outbox::backlog(&client).await?;
            Ok::<_, wazo_auth_core::Error>((dropped, backlog))
        }
        .await;
        match outcome {
            Ok((dropped, backlog)) => {
                failing = false;
                if dropped.too_old > 0 {
                    log::warn!(
                        "bus outbox: dropped {} events older than bus.outbox_max_age ({}s) \
                         that the broker never received",
                        dropped.too_old,
                        settings.max_age.as_secs_f64()
                    );
                    metrics::bus_dropped("age", dropped.too_old);
                }
                if dropped.too_many > 0 {
                    log::warn!(
                        "bus outbox: dropped the {} oldest events beyond bus.outbox_max_rows ({}) \
                         that the broker never received",
                        dropped.too_many,
                        settings.max_rows
                    );
                    metrics::bus_dropped("rows", dropped.too_many);
                }
                metrics::bus_backlog(backlog.rows, backlog.oldest_age);
            }
            Err(e) => {
                if !failing {
                    log::warn!("bus outbox: cannot check its bound ({e}); will retry");
                }
                failing = true;
            }
        }
        tokio::time::sleep(BOUND_PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn uri_parsing() {
        let u = parse_uri("amqp://guest:guest@localhost:5672/").unwrap();
        assert_eq!(u.authority.host, "localhost");
        assert_eq!(u.authority.port, 5672);
        assert_eq!(u.vhost, "/");
        assert_eq!(u.authority.userinfo.username, "guest");
        let u = parse_uri("amqp://u:p@127.0.0.1:5673/%2fv").unwrap();
        assert_eq!(u.authority.host, "127.0.0.1");
        assert_eq!(u.authority.port, 5673);
        assert_eq!(u.vhost, "/v");
        let u = parse_uri("amqp://[::1]").unwrap();
        assert_eq!(u.authority.host, "::1");
        assert_eq!(u.authority.port, 5672);
        assert_eq!(display_uri(&u), "amqp://::1:5672/%2F");
        for bad in [
            "",
            "localhost:5672",
            "http://localhost/",
            "amqps://localhost/",
            "amqp://",
            "amqp://localhost:99999/",
            "amqp://localhost/?heartbeat=x",
        ] {
            let e = parse_uri(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        let e = parse_uri("amqp://user:s3cret@:5672/").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }

    /// Every future is first polled in the order given, all of them before any is waited for,
    /// whatever order they finish in, and each one's output is kept.
    #[test]
    fn join_in_order_polls_first_in_the_order_given() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first_polls = std::sync::Mutex::new(Vec::new());
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..40)
            .map(|_| tokio::sync::oneshot::channel::<usize>())
            .unzip();
        let futures = receivers.into_iter().enumerate().map(|(i, receiver)| {
            let first_polls = &first_polls;
            async move {
                first_polls.lock().unwrap().push(i);
                // Every third one is done at once; the others wait for their sender.
                if i % 3 == 0 {
                    i * 10
                } else {
                    receiver.await.unwrap()
                }
            }
        });
        let outputs = runtime.block_on(async {
            let mut lull = Lull::new();
            let joined = join_in_order(futures, &mut lull);
            let finish = async {
                // The senders, last first, once every future has been polled once: all of them
                // by then (awaited one by one, only the first two would have been).
                tokio::task::yield_now().await;
                assert_eq!(first_polls.lock().unwrap().len(), 40);
                for (i, sender) in senders.into_iter().enumerate().rev() {
                    let _ = sender.send(i * 10);
                    tokio::task::yield_now().await;
                }
            };
            tokio::join!(joined, finish).0
        });
        assert_eq!(*first_polls.lock().unwrap(), (0..40).collect::<Vec<_>>());
        assert_eq!(outputs, (0..40).map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn a_stamp_is_written_again_for_another_time_only() {
        let mut stamp = Stamp::default();
        let t1 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 34, 56).unwrap();
        let t2 = t1 + chrono::Duration::microseconds(123_456);
        assert_eq!(stamp.isoformat(t1), python_isoformat(t1));
        assert_eq!(stamp.isoformat(t1), python_isoformat(t1));
        assert_eq!(stamp.isoformat(t2), python_isoformat(t2));
        assert_ne!(python_isoformat(t1), python_isoformat(t2));
        assert_eq!(stamp.isoformat(t1), python_isoformat(t1));
    }

    #[test]
    fn timestamps_as_python_isoformat() {
        let ts = Utc.with_ymd_and_hms(2024, 5, 1, 10, 2, 3).unwrap();
        let local = ts.with_timezone(&Local).naive_local();
        assert_eq!(
            python_isoformat(ts),
            local.format("%Y-%m-%dT%H:%M:%S").to_string()
        );
        let ts = ts + chrono::Duration::microseconds(1_250);
        assert!(python_isoformat(ts).ends_with(".001250"));
    }

    #[test]
    fn message_of_a_row() {
        let row = OutboxRow {
            id: 1,
            name: "auth_tenant_added".into(),
            routing_key: "auth.tenants.t1.created".into(),
            headers: json!({
                "name": "auth_tenant_added",
                "tenant_uuid": "t1",
                "user_uuid:*": true,
                "required_acl": "events.auth.tenants.t1.created",
                "n": 3_000_000_000i64,
                "data": "a header",
            }),
            data: RawValue::from_string(r#"{"uuid": "t1", "name": null}"#.into()).unwrap(),
            created_at: Utc::now(),
        };
        let (table, body) = message_parts(row.clone(), Some("origin"), &mut Stamp::default());
        // One "data" member (a parser would keep the last of two): the event's, not the header.
        let text = String::from_utf8(body.clone()).unwrap();
        assert_eq!(text.matches("\"data\":").count(), 1, "{text}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["data"], json!({"uuid": "t1", "name": null}));
        assert_eq!(body["origin_uuid"], "origin");
        assert_eq!(body["name"], "auth_tenant_added");
        assert_eq!(body["tenant_uuid"], "t1");
        assert_eq!(body["user_uuid:*"], true);
        assert_eq!(body["timestamp"], python_isoformat(row.created_at));
        // The headers: the body's members, and the header named "data" (the body's is the
        // event's data).
        let mut headers = body.as_object().unwrap().clone();
        headers.insert("data".into(), json!("a header"));
        assert_eq!(table, field_table(&headers));
        let inner = table.inner();
        assert_eq!(
            inner.get(&ShortString::from("user_uuid:*")),
            Some(&AMQPValue::Boolean(true))
        );
        assert_eq!(
            inner.get(&ShortString::from("n")),
            Some(&AMQPValue::LongLongInt(3_000_000_000))
        );
        assert_eq!(inner.len(), 8);
        let (table, _) = message_parts(row, None, &mut Stamp::default());
        assert_eq!(
            table.inner().get(&ShortString::from("origin_uuid")),
            Some(&AMQPValue::Void)
        );
    }
}
