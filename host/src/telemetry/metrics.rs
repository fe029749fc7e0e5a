//! Prometheus metrics: the families (names below, documented in docs/configuration.md), the
//! recorder (`metrics` with `metrics-exporter-prometheus`'s recorder, rendered by our own
//! handlers: `GET /0.1/metrics` on the API port under the ACL [`REQUIRED_ACL`], and `GET
//! /metrics` on the optional listener of its own), and the helpers the server calls where things
//! happen.
//!
//! Nothing is recorded until [`install`] ran (`metrics.enabled`): the `metrics` macros are no-ops
//! before, so the helpers below cost nothing when metrics are off.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use wazo_auth_core::cache::Caches;

use crate::http::error::ApiError;
use crate::http::extract::Caller;

/// HTTP answers, by `method`, `route` (the route template) and `status`.
pub const HTTP_REQUESTS: &str = "wazo_auth_http_requests_total";
/// Time from the request's arrival to its answer, by `method` and `route`.
pub const HTTP_DURATION: &str = "wazo_auth_http_request_duration_seconds";
/// Logins (`POST /0.1/token` with a readable body), by `backend` and `outcome` (success,
/// failure, error, throttled).
pub const LOGINS: &str = "wazo_auth_logins_total";
/// Password attempts refused by the brute-force throttle (429), by `route`.
pub const THROTTLE_BLOCKS: &str = "wazo_auth_throttle_blocks_total";
/// Calls into plugins, by `plugin`.
pub const PLUGIN_CALLS: &str = "wazo_auth_plugin_calls_total";
/// Duration of the calls into plugins, by `plugin`.
pub const PLUGIN_CALL_DURATION: &str = "wazo_auth_plugin_call_duration_seconds";
/// Plugin calls that failed by no fault of the request, by `plugin` and `reason` (timeout,
/// panic, busy).
pub const PLUGIN_CALL_FAILURES: &str = "wazo_auth_plugin_call_failures_total";
/// Token look-ups answered from this process's cache.
pub const TOKEN_CACHE_HITS: &str = "wazo_auth_token_cache_hits_total";
/// Token look-ups that went to the database.
pub const TOKEN_CACHE_MISSES: &str = "wazo_auth_token_cache_misses_total";
/// Tokens (and unknown ids) held by this process's cache.
pub const TOKEN_CACHE_ENTRIES: &str = "wazo_auth_token_cache_entries";
/// Database connection pools, by `pool` (api, host_services): the bound, the open connections,
/// the idle ones, and the tasks waiting for one.
pub const DB_POOL_MAX: &str = "wazo_auth_db_pool_max_connections";
pub const DB_POOL_OPEN: &str = "wazo_auth_db_pool_connections";
pub const DB_POOL_IDLE: &str = "wazo_auth_db_pool_idle_connections";
pub const DB_POOL_WAITING: &str = "wazo_auth_db_pool_waiting";
/// Runs of the expired-token purge, by `outcome` (ok, error).
pub const PURGE_RUNS: &str = "wazo_auth_purge_runs_total";
/// Rows removed by the purge, by `kind` (sessions, throttle).
pub const PURGED: &str = "wazo_auth_purged_total";
/// Duration of the purge's batches, each one transaction holding its rows' locks until it
/// commits (from the statement's sending to its answer, commit included).
pub const PURGE_BATCH_DURATION: &str = "wazo_auth_purge_batch_duration_seconds";
/// Bus events waiting in the outbox (see `crate::bus`): exact up to 10 000, above the span of
/// their ids.
pub const BUS_OUTBOX_EVENTS: &str = "wazo_auth_bus_outbox_events";
/// Age in seconds of the oldest event of the outbox (0 when empty).
pub const BUS_OUTBOX_OLDEST: &str = "wazo_auth_bus_outbox_oldest_seconds";
/// Events dropped from the outbox unpublished, by `reason` (age: `bus.outbox_max_age`, rows:
/// `bus.outbox_max_rows`).
pub const BUS_DROPPED: &str = "wazo_auth_bus_outbox_dropped_total";
/// Events this process published (confirmed by the broker).
pub const BUS_PUBLISHED: &str = "wazo_auth_bus_published_total";
/// 1 when this process is the one publishing the bus events (of those sharing the database).
pub const BUS_PUBLISHER: &str = "wazo_auth_bus_publisher";
/// 1 when this process is connected to the AMQP broker (only the publisher connects).
pub const BUS_CONNECTED: &str = "wazo_auth_bus_connected";
/// Always 1, labelled with the server's `version`.
pub const BUILD_INFO: &str = "wazo_auth_build_info";

/// The ACL a token needs to read `GET /0.1/metrics`.
pub const REQUIRED_ACL: &str = "auth.metrics.read";

/// Upper bounds of the HTTP latency buckets, in seconds: token checks answer in tens of
/// microseconds, logins in hundreds of milliseconds.
const HTTP_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
const PLUGIN_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Purge batches are sized for 20 ms (`wazo_auth_core::tokens::PURGE_BATCH_TARGET`).
const PURGE_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). `None` when
/// another recorder is already installed.
pub fn install() -> Option<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Some(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(PLUGIN_CALL_DURATION.into()), PLUGIN_BUCKETS)
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(PURGE_BATCH_DURATION.into()), PURGE_BUCKETS)
        });
    let builder = match builder {
        Ok(b) => b,
        Err(e) => {
            log::error!("metrics are off: {e}");
            return None;
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        log::error!("metrics are off: {e}");
        return None;
    }
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Some(HANDLE.get_or_init(|| handle).clone())
}

/// Whether metrics are recorded in this process.
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP answers by method, route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its answer, by method and route template"
    );
    describe_counter!(
        LOGINS,
        "Logins (POST /0.1/token) by backend and outcome (success, failure, error, throttled)"
    );
    describe_counter!(
        THROTTLE_BLOCKS,
        "Password attempts refused by the brute-force throttle, by route"
    );
    describe_counter!(PLUGIN_CALLS, "Calls into plugins, by plugin");
    describe_histogram!(
        PLUGIN_CALL_DURATION,
        Unit::Seconds,
        "Duration of the calls into plugins, by plugin"
    );
    describe_counter!(
        PLUGIN_CALL_FAILURES,
        "Plugin calls that timed out, panicked or were refused because too many were running"
    );
    describe_counter!(
        TOKEN_CACHE_HITS,
        "Token look-ups answered from this process's cache"
    );
    describe_counter!(
        TOKEN_CACHE_MISSES,
        "Token look-ups that went to the database"
    );
    describe_gauge!(TOKEN_CACHE_ENTRIES, "Entries of this process's token cache");
    describe_gauge!(
        DB_POOL_MAX,
        "Bound of the database connection pools, by pool"
    );
    describe_gauge!(DB_POOL_OPEN, "Open database connections, by pool");
    describe_gauge!(DB_POOL_IDLE, "Idle database connections, by pool");
    describe_gauge!(
        DB_POOL_WAITING,
        "Tasks waiting for a database connection, by pool"
    );
    describe_counter!(PURGE_RUNS, "Runs of the expired-token purge, by outcome");
    describe_counter!(PURGED, "Rows removed by the purge, by kind");
    describe_histogram!(
        PURGE_BATCH_DURATION,
        Unit::Seconds,
        "Duration of the expired-token purge's batches (one transaction each, commit included)"
    );
    describe_gauge!(
        BUS_OUTBOX_EVENTS,
        "Bus events waiting in the outbox for the broker"
    );
    describe_gauge!(
        BUS_OUTBOX_OLDEST,
        Unit::Seconds,
        "Age of the oldest bus event waiting in the outbox"
    );
    describe_counter!(
        BUS_DROPPED,
        "Bus events dropped unpublished by the outbox bound, by reason (age, rows)"
    );
    describe_counter!(
        BUS_PUBLISHED,
        "Bus events published by this process and confirmed by the broker"
    );
    describe_gauge!(
        BUS_PUBLISHER,
        "1 when this process publishes the bus events of the database"
    );
    describe_gauge!(
        BUS_CONNECTED,
        "1 when this process is connected to the AMQP broker"
    );
    describe_gauge!(BUILD_INFO, "Always 1, labelled with the server's version");
}

// ------------------------------------------------------------------------------------------------
// HTTP answers (called by the telemetry middleware for every request)
// ------------------------------------------------------------------------------------------------

/// A hasher for the handle cache's keys (two addresses and a status): a multiply-and-rotate,
/// which is all such keys need.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type HandleCache =
    HashMap<(usize, usize, u16), (Counter, Histogram), BuildHasherDefault<KeyHasher>>;

thread_local! {
    /// Each worker's handles of the HTTP families, by (method, route, status): the registry
    /// (a hashed, locked map) is asked once per key and thread, not once per request. Keys are
    /// the addresses of interned `'static` labels, so the cache stays as small as the set of
    /// routes.
    static HTTP_HANDLES: RefCell<HandleCache> = RefCell::default();
}

/// Counts an HTTP answer and records its duration. `method` and `route` are `'static` labels
/// (see [`route_label`]).
pub fn http_answered(method: &'static str, route: &'static str, status: u16, elapsed: Duration) {
    let record = |(requests, duration): &(Counter, Histogram)| {
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());
    };
    let key = (method.as_ptr() as usize, route.as_ptr() as usize, status);
    let cached = HTTP_HANDLES.try_with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return false;
        };
        record(
            cache
                .entry(key)
                .or_insert_with(|| http_handles(method, route, status)),
        );
        true
    });
    if !cached.unwrap_or(false) {
        record(&http_handles(method, route, status));
    }
}

fn http_handles(method: &'static str, route: &'static str, status: u16) -> (Counter, Histogram) {
    (
        counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status.to_string()),
        histogram!(HTTP_DURATION, "method" => method, "route" => route),
    )
}

/// The label of a route template: the same `'static` string for the same template (templates
/// are the patterns of registered routes, a fixed set: each is kept once for the process).
pub fn route_label(template: String) -> &'static str {
    thread_local! {
        static LOCAL: RefCell<HashMap<String, &'static str>> = RefCell::default();
    }
    static INTERNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let local = LOCAL.try_with(|local| {
        local
            .try_borrow()
            .ok()
            .and_then(|l| l.get(template.as_str()).copied())
    });
    if let Ok(Some(label)) = local {
        return label;
    }
    let label = {
        let mut interned = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
        match interned.iter().find(|l| **l == template) {
            Some(label) => *label,
            None => {
                let label: &'static str = Box::leak(template.clone().into_boxed_str());
                interned.push(label);
                label
            }
        }
    };
    let _ = LOCAL.try_with(|local| {
        if let Ok(mut local) = local.try_borrow_mut() {
            local.insert(template, label);
        }
    });
    label
}

// ------------------------------------------------------------------------------------------------
// Logins, throttle, plugins, purge
// ------------------------------------------------------------------------------------------------

/// How a login ended, for [`LOGINS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A token was issued.
    Success,
    /// Refused: wrong credentials, nothing to check, offline access unavailable, session limit.
    Failure,
    /// The server failed: a backend call that failed, panicked or timed out, or the database.
    Error,
    /// Refused by the brute-force throttle (429).
    Throttled,
}

/// A login handled (or, when refused before, asked for) by `backend` ended as `outcome`.
pub fn login(backend: &str, outcome: LoginOutcome) {
    if !enabled() {
        return;
    }
    let outcome = match outcome {
        LoginOutcome::Success => "success",
        LoginOutcome::Failure => "failure",
        LoginOutcome::Error => "error",
        LoginOutcome::Throttled => "throttled",
    };
    counter!(LOGINS, "backend" => backend.to_string(), "outcome" => outcome).increment(1);
}

/// A password attempt refused by the throttle on `route`.
pub fn throttle_block(route: &str) {
    counter!(THROTTLE_BLOCKS, "route" => route.to_string()).increment(1);
}

/// Why a plugin call gave no answer by no fault of the request.
#[derive(Debug, Clone, Copy)]
pub enum PluginFailure {
    Timeout,
    Panic,
    Busy,
}

/// A call into `plugin` that took `elapsed`.
pub fn plugin_call(plugin: &str, elapsed: Duration) {
    if enabled() {
        counter!(PLUGIN_CALLS, "plugin" => plugin.to_string()).increment(1);
        histogram!(PLUGIN_CALL_DURATION, "plugin" => plugin.to_string())
            .record(elapsed.as_secs_f64());
    }
}

/// A call into `plugin` that timed out, panicked or was refused.
pub fn plugin_failure(plugin: &str, failure: PluginFailure) {
    let reason = match failure {
        PluginFailure::Timeout => "timeout",
        PluginFailure::Panic => "panic",
        PluginFailure::Busy => "busy",
    };
    counter!(PLUGIN_CALL_FAILURES, "plugin" => plugin.to_string(), "reason" => reason).increment(1);
}

/// A run of the purge (`ok`: every step succeeded).
pub fn purge_run(ok: bool) {
    counter!(PURGE_RUNS, "outcome" => if ok { "ok" } else { "error" }).increment(1);
}

/// One purge batch took `took` (its transaction, from the statement's sending to its answer).
pub fn purge_batch(took: std::time::Duration) {
    histogram!(PURGE_BATCH_DURATION).record(took.as_secs_f64());
}

/// `rows` removed by the purge, of `kind` (sessions, throttle).
pub fn purged(kind: &'static str, rows: u64) {
    counter!(PURGED, "kind" => kind).increment(rows);
}

/// The outbox's backlog: `events` waiting, the oldest `oldest_age` seconds old.
pub fn bus_backlog(events: i64, oldest_age: f64) {
    gauge!(BUS_OUTBOX_EVENTS).set(events as f64);
    gauge!(BUS_OUTBOX_OLDEST).set(oldest_age);
}

/// `events` dropped from the outbox by the bound `reason` (age, rows).
pub fn bus_dropped(reason: &'static str, events: u64) {
    counter!(BUS_DROPPED, "reason" => reason).increment(events);
}

/// `events` published and confirmed.
pub fn bus_published(events: u64) {
    counter!(BUS_PUBLISHED).increment(events);
}

/// Whether this process is the publisher, and connected to the broker.
pub fn bus_state(publisher: bool, connected: bool) {
    gauge!(BUS_PUBLISHER).set(if publisher { 1.0 } else { 0.0 });
    gauge!(BUS_CONNECTED).set(if connected { 1.0 } else { 0.0 });
}

// ------------------------------------------------------------------------------------------------
// Values read when scraped
// ------------------------------------------------------------------------------------------------

type PoolStatus = Box<dyn Fn() -> Option<deadpool_postgres::Status> + Send>;

/// The pools watched, by label; each held weakly (a pool dropped with its worker disappears).
static POOLS: Mutex<Vec<(&'static str, PoolStatus)>> = Mutex::new(Vec::new());

/// Watches `pool` under the `pool` label `label` (pools of one label are added up).
pub fn watch_pool(label: &'static str, pool: &deadpool_postgres::Pool) {
    let weak = pool.weak();
    POOLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((label, Box::new(move || weak.upgrade().map(|p| p.status()))));
}

fn record_pools() {
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let mut totals: Vec<(&'static str, [usize; 4])> = Vec::new();
    pools.retain(|(label, status)| {
        let Some(s) = status() else {
            return false;
        };
        let at = match totals.iter().position(|(l, _)| l == label) {
            Some(i) => i,
            None => {
                totals.push((label, [0; 4]));
                totals.len() - 1
            }
        };
        let sums = &mut totals[at].1;
        sums[0] += s.max_size;
        sums[1] += s.size;
        sums[2] += s.available;
        sums[3] += s.waiting;
        true
    });
    drop(pools);
    for (label, [max, open, idle, waiting]) in totals {
        gauge!(DB_POOL_MAX, "pool" => label).set(max as f64);
        gauge!(DB_POOL_OPEN, "pool" => label).set(open as f64);
        gauge!(DB_POOL_IDLE, "pool" => label).set(idle as f64);
        gauge!(DB_POOL_WAITING, "pool" => label).set(waiting as f64);
    }
}

/// What a scrape renders: the recorder's handle and the values read at scrape time.
pub struct Scrape {
    handle: PrometheusHandle,
    tokens: Arc<Caches>,
}

impl Scrape {
    pub fn new(handle: PrometheusHandle, tokens: Arc<Caches>) -> Scrape {
        Scrape { handle, tokens }
    }

    /// Drains the histograms' samples into their buckets (call it every few seconds: samples
    /// are kept until then).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let (hits, misses) = self.tokens.stats();
        counter!(TOKEN_CACHE_HITS).absolute(hits);
        counter!(TOKEN_CACHE_MISSES).absolute(misses);
        gauge!(TOKEN_CACHE_ENTRIES).set(self.tokens.len() as f64);
        record_pools();
        self.handle.render()
    }

    fn answer(&self) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(self.render())
    }
}

/// `GET /0.1/metrics` on the API port, to a caller whose token grants [`REQUIRED_ACL`] (declared
/// with the route); the router's 404 when metrics are off.
pub async fn api_metrics(_caller: Caller, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let scrape = req
        .app_data::<web::Data<Scrape>>()
        .ok_or_else(ApiError::route_not_found)?;
    Ok(scrape.answer())
}

/// `GET /metrics` on the metrics listener (`metrics.listen`): no token.
pub async fn open_metrics(scrape: web::Data<Scrape>) -> HttpResponse {
    scrape.answer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_label_per_template() {
        let a = route_label("/0.1/users/{user_uuid}".to_string());
        let b = route_label("/0.1/users/{user_uuid}".to_string());
        assert!(std::ptr::eq(a, b));
        let c = std::thread::spawn(|| route_label("/0.1/users/{user_uuid}".to_string()))
            .join()
            .unwrap();
        assert!(std::ptr::eq(a, c));
        assert_ne!(route_label("/0.1/users".to_string()), a);
    }
}
