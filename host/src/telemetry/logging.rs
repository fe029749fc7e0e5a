//! The process's log: one line per record, as env_logger wrote them before (and as the original
//! writes them), `<local time> [<pid>] (<LEVEL>) (<target>): <message>`, followed by the fields
//! of the spans the record was emitted in (` [request_id=… plugin=…]`).
//!
//! Both kinds of records end here: the `log` macros used throughout the server (and the plugins'
//! records, which the plugin host re-emits through `log`), through [`LogBridge`]; and `tracing`
//! events (actix, deadpool, and this server's spans), through [`SpanLayer`]. One filter decides
//! for both: the configured level (`log_level`, or debug with `debug: true`) refined by
//! `RUST_LOG`, with env_logger's syntax and semantics (it is env_logger's own filter crate).
//!
//! `debug` can be switched while the process runs (`PATCH /0.1/config`, through the
//! [`LogControl`] that [`init`] returns): both filters are built at startup, and a switch picks
//! one (an atomic flag read by every record) and has `log` and `tracing` recompute what they
//! skip.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, Registry, SpanRef};

use crate::config::Config;

/// The filter of every record: the configured level, `tokio_postgres::query` kept at info at
/// most, and `RUST_LOG` (`rust_log`) on top.
pub fn build_filter(level: log::LevelFilter, rust_log: Option<&str>) -> env_filter::Filter {
    let mut builder = env_filter::Builder::new();
    builder.filter_level(level);
    // tokio-postgres logs the parameters of every statement at debug level: password hashes and
    // salts (enough to guess passwords offline), token hashes, sealed data. Keep that module at
    // info even with `debug: true` or RUST_LOG=debug; only naming it exactly turns it on
    // (RUST_LOG=tokio_postgres::query=debug), the more specific directive winning.
    builder.filter_module("tokio_postgres::query", level.min(log::LevelFilter::Info));
    // RUST_LOG, when set, refines the configured level (e.g. RUST_LOG=actix_web=warn).
    if let Some(spec) = rust_log {
        builder.parse(spec);
    }
    builder.build()
}

/// Installs the process's logger (`log`) and `tracing` subscriber, writing to `log_filename`
/// when set (appending), else to stderr. The returned [`LogControl`] switches `debug` at run
/// time.
pub fn init(cfg: &Config) -> LogControl {
    let rust_log = std::env::var("RUST_LOG").ok();
    let levels = [
        Level::new(build_filter(cfg.log_level.filter(), rust_log.as_deref())),
        // As `Config::log_level_filter` with `debug: true`.
        Level::new(build_filter(log::LevelFilter::Debug, rust_log.as_deref())),
    ];
    let file = cfg.log_filename.as_ref().and_then(|path| {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => Some(Mutex::new(file)),
            Err(e) => {
                eprintln!("wazo-auth: cannot open log file {path}: {e}; logging to stderr");
                None
            }
        }
    });
    let sink = Arc::new(Sink {
        levels,
        debug: AtomicBool::new(cfg.debug),
        file,
        pid: std::process::id(),
    });
    log::set_max_level(sink.level().max_level);
    // Errors only when something else installed one first (never in this binary): then that
    // one stays.
    let _ = log::set_boxed_logger(Box::new(LogBridge(sink.clone())));
    let _ =
        tracing::subscriber::set_global_default(Registry::default().with(SpanLayer(sink.clone())));
    LogControl(Some(sink))
}

/// Switches the log between the configured level and debug while the process runs (the
/// original's `PATCH /0.1/config` of `/debug`; not persisted). `RUST_LOG` refines both levels.
#[derive(Clone, Default)]
pub struct LogControl(Option<Arc<Sink>>);

impl LogControl {
    /// A control of no logger (a process that installed none): switches nothing.
    pub fn detached() -> LogControl {
        LogControl(None)
    }

    /// Logs at debug level (`true`) or at the configured level (`false`) from now on.
    pub fn set_debug(&self, on: bool) {
        let Some(sink) = &self.0 else {
            return;
        };
        if sink.debug.swap(on, Ordering::SeqCst) == on {
            return;
        }
        log::set_max_level(sink.level().max_level);
        // The call sites' cached interest (`SpanLayer::register_callsite`) and the level hint
        // are asked again.
        tracing::callsite::rebuild_interest_cache();
    }
}

/// One of the two filters: the configured level, or debug.
struct Level {
    filter: env_filter::Filter,
    max_level: log::LevelFilter,
}

impl Level {
    fn new(filter: env_filter::Filter) -> Level {
        Level {
            max_level: filter.filter(),
            filter,
        }
    }
}

/// Where the lines go, and which.
struct Sink {
    /// The filter of the configured level, and the filter of debug.
    levels: [Level; 2],
    /// Which of `levels` applies.
    debug: AtomicBool,
    /// The log file; stderr when `None`.
    file: Option<Mutex<std::fs::File>>,
    pid: u32,
}

thread_local! {
    /// The line being written (one allocation per thread, not per line).
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
}

impl Sink {
    /// The filter in force.
    fn level(&self) -> &Level {
        &self.levels[usize::from(self.debug.load(Ordering::Relaxed))]
    }

    fn enabled(&self, level: log::Level, target: &str) -> bool {
        let current = self.level();
        level <= current.max_level
            && current
                .filter
                .enabled(&log::Metadata::builder().level(level).target(target).build())
    }

    /// Spans carry the context of the lines written inside them (the request id): the spans of
    /// info level and above are kept whenever anything is logged at all, so that a warning
    /// written under `log_level: warning` still names its request. Finer spans follow the
    /// filter.
    fn span_enabled(&self, meta: &Metadata<'_>) -> bool {
        let level = log_level(*meta.level());
        if level <= log::Level::Info {
            self.level().max_level > log::LevelFilter::Off
        } else {
            self.enabled(level, meta.target())
        }
    }

    /// Writes one line: `write_message` appends the message, `context` the spans' fields.
    fn write_line(
        &self,
        level: log::Level,
        target: &str,
        write_message: impl FnOnce(&mut String),
        context: impl FnOnce(&mut String),
    ) {
        let compose = |line: &mut String| {
            line.clear();
            write_local_time(line);
            let _ = write!(line, " [{}] ({}) ({}): ", self.pid, level, target);
            write_message(line);
            context(line);
            line.push('\n');
            self.output(line.as_bytes());
        };
        // A message whose formatting logs (re-entering here), or a line written while the
        // thread ends, gets a line buffer of its own.
        let mut compose = Some(compose);
        let _ = LINE.try_with(|cell| {
            if let Ok(mut line) = cell.try_borrow_mut() {
                if let Some(compose) = compose.take() {
                    compose(&mut line);
                }
            }
        });
        if let Some(compose) = compose {
            compose(&mut String::with_capacity(256));
        }
    }

    /// One write per line (stderr is unbuffered; the file is shared by the threads).
    fn output(&self, bytes: &[u8]) {
        match &self.file {
            Some(file) => {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                let _ = file.write_all(bytes);
            }
            None => {
                let _ = std::io::stderr().lock().write_all(bytes);
            }
        }
    }
}

/// Appends the local time, `YYYY-MM-DD HH:MM:SS.mmm`. The date and time of a second are
/// formatted once per thread and second: the local offset and the calendar cost more than the
/// rest of a line, and the access log writes a line per request.
fn write_local_time(line: &mut String) {
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let format_second = |second: i64| {
        use chrono::TimeZone;
        match chrono::Local.timestamp_opt(second, 0) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            }
            chrono::LocalResult::None => String::new(),
        }
    };
    let cached = SECOND.try_with(|cell| {
        let Ok(mut cached) = cell.try_borrow_mut() else {
            return false;
        };
        if cached.0 != second {
            *cached = (second, format_second(second));
        }
        line.push_str(&cached.1);
        true
    });
    if !cached.unwrap_or(false) {
        line.push_str(&format_second(second));
    }
    let millis = since_epoch.subsec_millis();
    line.push('.');
    for digit in [millis / 100, millis / 10 % 10, millis % 10] {
        line.push(char::from(b'0' + digit as u8));
    }
}

fn log_level(level: tracing::Level) -> log::Level {
    match level {
        tracing::Level::ERROR => log::Level::Error,
        tracing::Level::WARN => log::Level::Warn,
        tracing::Level::INFO => log::Level::Info,
        tracing::Level::DEBUG => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

fn tracing_level(level: log::LevelFilter) -> tracing::level_filters::LevelFilter {
    use tracing::level_filters::LevelFilter;
    match level {
        log::LevelFilter::Off => LevelFilter::OFF,
        log::LevelFilter::Error => LevelFilter::ERROR,
        log::LevelFilter::Warn => LevelFilter::WARN,
        log::LevelFilter::Info => LevelFilter::INFO,
        log::LevelFilter::Debug => LevelFilter::DEBUG,
        log::LevelFilter::Trace => LevelFilter::TRACE,
    }
}

/// The fields of a span, as ` name=value` pairs (its name when it has none), kept in the span's
/// extensions when it is created.
struct SpanFields(String);

/// Appends ` [fields of the outermost span … fields of the innermost]` for the spans of `span`'s
/// scope (nothing outside any span).
fn write_context<'a, R: LookupSpan<'a>>(line: &mut String, span: Option<SpanRef<'a, R>>) {
    let Some(span) = span else {
        return;
    };
    let mut first = true;
    for s in span.scope().from_root() {
        let extensions = s.extensions();
        let Some(SpanFields(fields)) = extensions.get::<SpanFields>() else {
            continue;
        };
        line.push_str(if first { " [" } else { " " });
        line.push_str(fields);
        first = false;
    }
    if !first {
        line.push(']');
    }
}

/// The `log` side: every `log` record of the process (the server's, its dependencies', and the
/// plugins' re-emitted ones), written with the fields of the current span.
struct LogBridge(Arc<Sink>);

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.level().filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.0.level().filter.matches(record) {
            return;
        }
        let message = |line: &mut String| {
            let _ = write!(line, "{}", record.args());
        };
        tracing::dispatcher::get_default(|dispatch| {
            let current = dispatch.current_span();
            let registry = dispatch.downcast_ref::<Registry>();
            let span = match (current.id(), registry) {
                (Some(id), Some(registry)) => registry.span(id),
                _ => None,
            };
            self.0
                .write_line(record.level(), record.target(), message, |line| {
                    write_context(line, span)
                });
        });
    }

    fn flush(&self) {
        if let Some(file) = &self.0.file {
            let _ = file.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }
}

/// Writes the fields of a span or event: `name=value` separated by spaces, an event's `message`
/// bare.
struct FieldWriter<'a> {
    out: &'a mut String,
    /// Whether a field was written (the next one needs a separator).
    written: bool,
}

impl FieldWriter<'_> {
    /// Starts a field: the separator, and `name=` unless it is the message.
    fn start(&mut self, field: &Field) {
        if self.written {
            self.out.push(' ');
        }
        self.written = true;
        if field.name() != "message" {
            self.out.push_str(field.name());
            self.out.push('=');
        }
    }
}

impl Visit for FieldWriter<'_> {
    // Strings (the request id) are copied as they are: this runs for every request.
    fn record_str(&mut self, field: &Field, value: &str) {
        self.start(field);
        self.out.push_str(value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.start(field);
        let _ = write!(self.out, "{value:?}");
    }
}

/// The `tracing` side: keeps the fields of spans (the request id, the plugin called) for the
/// lines written inside them, and writes `tracing` events (of actix, deadpool, …) as lines.
struct SpanLayer(Arc<Sink>);

impl SpanLayer {
    fn wanted(&self, meta: &Metadata<'_>) -> bool {
        if meta.is_span() {
            self.0.span_enabled(meta)
        } else {
            self.0.enabled(log_level(*meta.level()), meta.target())
        }
    }
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Decided once per call site, and again when the level is switched
        // (`LogControl::set_debug` rebuilds the cache).
        if self.wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        self.wanted(meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        let max_level = self.0.level().max_level;
        let spans = if max_level > log::LevelFilter::Off {
            log::LevelFilter::Info
        } else {
            log::LevelFilter::Off
        };
        Some(tracing_level(max_level.max(spans)))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Room for the request id's field without growing.
        let mut fields = String::with_capacity(64);
        attrs.record(&mut FieldWriter {
            out: &mut fields,
            written: false,
        });
        if fields.is_empty() {
            fields.push_str(attrs.metadata().name());
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        self.0.write_line(
            log_level(*meta.level()),
            meta.target(),
            |line| {
                event.record(&mut FieldWriter {
                    out: line,
                    written: false,
                })
            },
            |line| write_context(line, ctx.event_span(event)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(filter: &env_filter::Filter, level: log::Level, target: &str) -> bool {
        filter.enabled(&log::Metadata::builder().level(level).target(target).build())
    }

    #[test]
    fn the_filter_keeps_the_configured_level_and_rust_log_refines_it() {
        let f = build_filter(log::LevelFilter::Info, None);
        assert!(enabled(&f, log::Level::Info, "wazo_auth::server"));
        assert!(!enabled(&f, log::Level::Debug, "wazo_auth::server"));

        let f = build_filter(
            log::LevelFilter::Info,
            Some("info,actix_server=warn,wazo_auth::services=debug"),
        );
        assert!(!enabled(&f, log::Level::Info, "actix_server::builder"));
        assert!(enabled(&f, log::Level::Debug, "wazo_auth::services"));
        assert!(!enabled(&f, log::Level::Debug, "wazo_auth::http"));
    }

    #[test]
    fn statement_parameters_stay_hidden_unless_named() {
        for rust_log in [None, Some("debug"), Some("trace")] {
            let f = build_filter(log::LevelFilter::Debug, rust_log);
            assert!(enabled(&f, log::Level::Debug, "wazo_auth::http"));
            assert!(!enabled(&f, log::Level::Debug, "tokio_postgres::query"));
        }
        let f = build_filter(
            log::LevelFilter::Debug,
            Some("debug,tokio_postgres::query=debug"),
        );
        assert!(enabled(&f, log::Level::Debug, "tokio_postgres::query"));
    }

    #[test]
    fn local_time_is_written_to_the_millisecond() {
        let mut line = String::new();
        write_local_time(&mut line);
        let first = line.clone();
        write_local_time(&mut line);
        assert_eq!(line.len(), 2 * "2026-11-28 14:20:34.089".len(), "{line}");
        let parsed =
            chrono::NaiveDateTime::parse_from_str(&first, "%Y-%m-%d %H:%M:%S%.3f").unwrap();
        let now = chrono::Local::now().naive_local();
        assert!((now - parsed).num_seconds().abs() <= 1, "{first} vs {now}");
    }

    #[test]
    fn the_debug_switch_changes_what_is_written() {
        let sink = Arc::new(Sink {
            levels: [
                Level::new(build_filter(
                    log::LevelFilter::Warn,
                    Some("actix_server=error"),
                )),
                Level::new(build_filter(
                    log::LevelFilter::Debug,
                    Some("actix_server=error"),
                )),
            ],
            debug: AtomicBool::new(false),
            file: None,
            pid: 1,
        });
        let control = LogControl(Some(sink.clone()));
        assert!(!sink.enabled(log::Level::Info, "wazo_auth::http"));
        control.set_debug(true);
        assert!(sink.enabled(log::Level::Debug, "wazo_auth::http"));
        // RUST_LOG still refines the debug level; statement parameters stay hidden.
        assert!(!sink.enabled(log::Level::Info, "actix_server::worker"));
        assert!(!sink.enabled(log::Level::Debug, "tokio_postgres::query"));
        control.set_debug(false);
        assert!(!sink.enabled(log::Level::Debug, "wazo_auth::http"));
        assert!(sink.enabled(log::Level::Warn, "wazo_auth::http"));
        LogControl::detached().set_debug(true);
    }

    #[test]
    fn span_fields_follow_the_message_outermost_first() {
        let sink = Arc::new(Sink {
            levels: [
                Level::new(build_filter(log::LevelFilter::Info, None)),
                Level::new(build_filter(log::LevelFilter::Debug, None)),
            ],
            debug: AtomicBool::new(false),
            file: None,
            pid: 1,
        });
        let subscriber = Registry::default().with(SpanLayer(sink));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("request", request_id = "r-1");
            let _outer = outer.enter();
            let inner = tracing::info_span!("plugin_call", plugin = %"wazo_user");
            let _inner = inner.enter();
            let mut line = String::new();
            tracing::dispatcher::get_default(|dispatch| {
                let registry = dispatch.downcast_ref::<Registry>().unwrap();
                let id = dispatch.current_span().id().cloned().unwrap();
                write_context(&mut line, registry.span(&id));
            });
            assert_eq!(line, " [request_id=r-1 plugin=wazo_user]");
        });
    }
}
