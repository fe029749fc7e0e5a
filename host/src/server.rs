//! Startup, the serving loop and shutdown.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use wazo_auth_core::cache::Caches;
use wazo_auth_core::pg_cluster::{Cluster, ClusterOptions};
use wazo_auth_core::{tally, tokens, Storage};

use crate::config::Config;
use crate::http::{self, AppState, Settings};
use crate::plugins::{LoaderOptions, PluginRegistry};
use crate::services::HostContext;
use crate::telemetry;

/// Name of the database the server creates in its private cluster.
const MANAGED_DB_NAME: &str = "wazo_auth";

/// Runs the server until SIGINT/SIGTERM; `log` switches the log level at run time
/// (`PATCH /0.1/config`).
pub fn run(cfg: Config, log: telemetry::logging::LogControl) -> Result<(), String> {
    log::info!(
        "wazo-auth {} starting (configuration {})",
        env!("CARGO_PKG_VERSION"),
        cfg.config_file.as_deref().unwrap_or("built-in defaults")
    );
    log::debug!("effective configuration: {}", cfg.redacted_json());
    if !cfg.obsolete_keys.is_empty() {
        log::warn!(
            "ignoring configuration keys of older wazo-auth versions: {}",
            cfg.obsolete_keys.join(", ")
        );
    }

    // The TLS files are checked before anything else starts (database, plugins).
    let tls = match (&cfg.rest_api.certificate, &cfg.rest_api.private_key) {
        (Some(certificate), Some(private_key)) => {
            Some(crate::tls::load_server_config(certificate, private_key)?)
        }
        _ => None,
    };

    let keyring = wazo_auth_core::keys::Keyring::load_or_create(&cfg.secret_key_file)?;
    let (db_uri, cluster) = open_database(&cfg)?;

    let scheme = cfg.password_hash_scheme;
    let prepared = HostContext::new(&db_uri, scheme, keyring.clone()).and_then(|context| {
        context.block_on(async {
            let storage = context.storage();
            storage
                .wait_until_ready(cfg.db_connect_retry_timeout_seconds.duration())
                .await
                .map_err(|e| format!("the database is unreachable: {e}"))?;
            storage
                .migrate_direct(&session_uri(&cfg, &db_uri))
                .await
                .map_err(|e| format!("database migration failed: {e}"))?;
            crate::startup::apply(&cfg, storage, scheme).await
        })?;
        Ok(Arc::new(context))
    });
    let context = match prepared {
        Ok(c) => c,
        Err(e) => {
            stop_cluster(cluster);
            return Err(e);
        }
    };
    telemetry::metrics::watch_pool("host_services", context.storage().pool());

    let plugins = PluginRegistry::load(&LoaderOptions {
        plugin_dir: cfg.effective_plugin_dir(),
        allow_insecure: cfg.allow_insecure_plugin_dir,
        enabled_backends: &cfg.enabled_backend_plugins,
        enabled_externals: &cfg.enabled_external_auth_plugins,
        plugin_config: &cfg.plugin_configs(),
        enabled_metadata: &crate::login_plugins::enabled_metadata(&cfg.enabled_metadata_plugins),
        enabled_idps: &crate::login_plugins::enabled_idps(&cfg.idp_plugins),
        load_timeout: cfg
            .plugin_call_timeout
            .duration()
            .max(Duration::from_secs(1))
            .saturating_mul(2),
        context: Some(context.clone()),
    });
    log::info!(
        "plugins in {}:{}",
        cfg.effective_plugin_dir().display(),
        plugins.table()
    );
    // The auth types listed by `GET /users/{u}/external` are those of the loaded plugins.
    let types = plugins.external_types();
    if let Err(e) = context.block_on(async {
        let client = context.storage().client().await?;
        wazo_auth_core::external::set_enabled_types(&client, &types).await
    }) {
        stop_cluster(cluster);
        return Err(format!("recording the external auth types failed: {e}"));
    }

    let outcome =
        actix_web::rt::System::new().block_on(serve(cfg, db_uri, plugins, keyring, tls, log));
    // Plugins may still hold the context; its runtime stops with the process. Its idle
    // connections are closed first, so that stopping a private cluster ends none of them.
    context.storage().pool().close();
    drop(context);
    stop_cluster(cluster);
    outcome
}

/// The database URI: the configured one, or a private cluster managed by this process.
pub(crate) fn open_database(cfg: &Config) -> Result<(String, Option<Cluster>), String> {
    // Bounds every pool of the process, including the host-services one (`db_timeout`).
    wazo_auth_core::storage::set_default_db_timeout(cfg.db_timeout.duration());
    // Behind a transaction pooler, no statement is prepared by name.
    wazo_auth_core::sql::set_transaction_pooler(
        cfg.db_pooler == crate::config::DbPooler::Transaction,
    );
    match &cfg.db_uri {
        Some(uri) => Ok((uri.clone(), None)),
        None => {
            let opts = ClusterOptions {
                data_dir: cfg.managed_db.data_dir.clone(),
                bin_dir: cfg.managed_db.bin_dir.clone(),
                os_user: cfg.managed_db.os_user.clone(),
            };
            log::info!(
                "no db_uri configured: using a private PostgreSQL in {}",
                opts.data_dir.display()
            );
            let cluster = Cluster::start(&opts)
                .map_err(|e| format!("cannot start the private PostgreSQL: {e}"))?;
            if let Err(e) = cluster.ensure_database(MANAGED_DB_NAME) {
                stop_cluster(Some(cluster));
                return Err(format!("cannot create the database: {e}"));
            }
            Ok((cluster.connection_string(MANAGED_DB_NAME), Some(cluster)))
        }
    }
}

/// The connection for what needs a session of its own (LISTEN, the bus publisher's and the
/// migrations' advisory locks): `db_listen_uri`, else the database itself. Only with `db_uri`
/// set (the configuration refuses `db_listen_uri` without it).
pub(crate) fn session_uri(cfg: &Config, db_uri: &str) -> String {
    match (&cfg.db_uri, &cfg.db_listen_uri) {
        (Some(_), Some(listen)) => listen.clone(),
        _ => db_uri.to_string(),
    }
}

/// `wazo-auth bootstrap`: creates the initial user and prints how to log in.
pub fn bootstrap(cfg: Config, args: crate::config::BootstrapArgs) -> Result<(), String> {
    let (db_uri, cluster) = open_database(&cfg)?;
    let scheme = cfg.password_hash_scheme;
    let generated = args.password.is_none();
    let password = args
        .password
        .clone()
        .unwrap_or_else(|| wazo_auth_core::password::random_alphanumeric(28));
    let keyring = wazo_auth_core::keys::Keyring::load_or_create(&cfg.secret_key_file)?;
    let outcome = HostContext::new(&db_uri, scheme, keyring).and_then(|context| {
        context.block_on(async {
            let storage = context.storage();
            storage
                .wait_until_ready(cfg.db_connect_retry_timeout_seconds.duration())
                .await
                .map_err(|e| format!("the database is unreachable: {e}"))?;
            storage
                .migrate_direct(&session_uri(&cfg, &db_uri))
                .await
                .map_err(|e| format!("database migration failed: {e}"))?;
            crate::startup::bootstrap_user(
                storage,
                &crate::startup::BootstrapRequest {
                    username: args.username.clone(),
                    password: password.clone(),
                    purpose: args.purpose.clone(),
                    policy_slug: args.policy_slug.clone(),
                },
                scheme,
            )
            .await
        })
    });
    stop_cluster(cluster);
    let outcome = outcome?;
    println!("initial user {:?}: {outcome}", args.username);
    if generated && outcome.starts_with("created") {
        println!("password: {password}");
    }
    Ok(())
}

/// Stops the private PostgreSQL if this process started it, or adopted it from a wazo-auth
/// process that died without stopping it.
pub(crate) fn stop_cluster(cluster: Option<Cluster>) {
    if let Some(cluster) = cluster.filter(|c| c.stops_at_exit()) {
        log::info!("stopping the private PostgreSQL");
        if let Err(e) = cluster.stop() {
            log::error!("stopping the private PostgreSQL failed: {e}");
        }
    }
}

async fn serve(
    cfg: Config,
    db_uri: String,
    plugins: PluginRegistry,
    keyring: wazo_auth_core::keys::Keyring,
    tls: Option<rustls::ServerConfig>,
    log: telemetry::logging::LogControl,
) -> Result<(), String> {
    let pool_size = (cfg.rest_api.max_threads.get() as usize).clamp(4, 64);
    let workers = cfg
        .rest_api
        .worker_count(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let db_timeout = cfg.db_timeout.duration();
    let storage =
        Storage::with_timeout(&db_uri, pool_size, db_timeout).map_err(|e| e.to_string())?;
    storage
        .wait_until_ready(cfg.db_connect_retry_timeout_seconds.duration())
        .await
        .map_err(|e| format!("the database is unreachable: {e}"))?;

    let login_plugins = Arc::new(crate::login_plugins::LoginPlugins::build(
        &cfg.enabled_metadata_plugins,
        &cfg.purpose_metadata_mapping,
        &cfg.idp_plugins,
        &plugins,
    ));
    log::info!("login plugins: {}", login_plugins.describe());
    let mut settings = Settings {
        default_token_lifetime: cfg.default_token_lifetime.seconds(),
        plugin_call_timeout: cfg.plugin_call_timeout.duration(),
        proxies: cfg.rest_api.proxy_trust(),
        xivo_uuid: cfg.uuid.clone(),
        max_body_bytes: cfg.rest_api.max_body_bytes.get(),
        default_backend: "wazo_user".to_string(),
        idp_types: cfg.idp_types(),
        tenant_defaults: cfg.tenant_defaults(),
        password_scheme: cfg.password_hash_scheme,
        max_user_concurrent_sessions: cfg.max_user_concurrent_sessions.get(),
        default_user_policy: cfg.default_user_policy.clone(),
        backend_policies: cfg.backend_policies.clone(),
        throttle: cfg.login_throttle.to_core(),
        refresh_token_lifetime: cfg.refresh_token_lifetime.seconds(),
    };
    // The IdP plugins of the chain are IdP types (listed by `GET /0.1/idp`).
    for idp in login_plugins.idps() {
        settings
            .idp_types
            .register(idp.authentication_method.clone());
    }
    let tokens = Arc::new(Caches::new(
        cfg.token_cache_size,
        (cfg.rest_api.max_threads.get() as usize).clamp(2, 16),
    ));
    // Every storage of the process decides tenant scopes from the one tree the listener feeds.
    let storage = storage.with_tenant_tree(tokens.tenants.clone());
    // LISTEN needs a session of its own: `db_listen_uri`, not a transaction pooler.
    let session_uri = session_uri(&cfg, &db_uri);
    let listener = actix_web::rt::spawn(tokens.clone().listen(session_uri.clone(), db_timeout));
    let plugins = Arc::new(plugins);

    // Metrics: the recorder, the histograms drained every few seconds, the pools watched.
    let scrape = cfg
        .metrics
        .enabled
        .then(telemetry::metrics::install)
        .flatten()
        .map(|handle| Arc::new(telemetry::metrics::Scrape::new(handle, tokens.clone())));
    let upkeep = scrape.clone().map(|scrape| {
        actix_web::rt::spawn(async move {
            loop {
                actix_web::rt::time::sleep(Duration::from_secs(5)).await;
                scrape.upkeep();
            }
        })
    });
    telemetry::metrics::watch_pool("api", storage.pool());
    let telemetry_options = telemetry::middleware::Options {
        access_log: cfg.access_log_level.level(),
        metrics: scrape.is_some(),
        proxies: cfg.rest_api.proxy_trust(),
    };
    let scrape_data = scrape.clone().map(web::Data::from);

    // The bus: the outbox's publisher and bound (`crate::bus`). The URI was checked with the
    // configuration.
    let bus = crate::bus::start(
        crate::bus::BusSettings {
            uri: cfg
                .amqp
                .uri
                .as_deref()
                .map(crate::bus::parse_uri)
                .transpose()
                .map_err(|e| format!("configuration error: \"amqp.uri\": {e}"))?,
            exchange_name: cfg.amqp.exchange_name.clone(),
            exchange_type: cfg.amqp.exchange_type.clone(),
            origin_uuid: cfg.uuid.clone(),
            max_age: cfg.bus.outbox_max_age.duration(),
            max_rows: cfg.bus.outbox_max_rows.rows(),
            // The publisher's session advisory lock: `db_listen_uri` too.
            db_uri: session_uri,
            db_timeout,
        },
        storage.clone(),
        Arc::new(crate::bus::BusState::default()),
    );

    // Mail: the settings were checked with the configuration; the sender's task runs here.
    let mail = Arc::new(
        crate::mail::MailSettings::from_config(&cfg)
            .and_then(crate::mail::MailService::start)
            .map_err(|e| format!("configuration error: {e}"))?,
    );

    // Whatever the cleanup's settings: the listings' totals read the tallies.
    let tally_fold = actix_web::rt::spawn(tally_fold_loop(storage.clone()));
    let purge = cfg.token_cleanup_interval.period().map(|interval| {
        let storage = storage.clone();
        let batch = i64::from(cfg.token_cleanup_batch_size.get());
        let forget_after = cfg.login_throttle.to_core().forget_after;
        let max_rate = cfg.token_cleanup_max_rate.rate();
        actix_web::rt::spawn(purge_loop(storage, interval, batch, max_rate, forget_after))
    });

    // Each worker thread gets its own connection pool: a connection's I/O task then runs on the
    // thread that uses it, instead of bouncing every query between workers.
    let per_worker_pool = (pool_size / workers).max(2);
    let db_uri_for_workers = db_uri.clone();
    let shared_storage = storage.clone();
    // On this runtime, which outlives the workers (see `Storage::start_batchers`).
    shared_storage.start_batchers();
    let attempts = Arc::new(http::throttle::AttemptTurns::default());
    let live_config = Arc::new(crate::config::LiveConfig::new(&cfg, log));
    let benchmark_route = cfg.benchmark_route;
    // Off by default, as the original's `user_registration` HTTP plugin.
    let user_registration = cfg
        .enabled_http_plugins
        .get("user_registration")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let addr = (cfg.rest_api.listen.clone(), cfg.rest_api.port.get());
    // Set on SIGTERM: `HEAD /status` then answers 503 for `rest_api.shutdown_drain` seconds
    // before the listener closes (see `shutdown_on_signal`).
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let draining_for_workers = draining.clone();
    let read_timeout = cfg.rest_api.request_read_timeout.duration();
    // CORS (`rest_api.cors`, by actix-cors; checked with the configuration).
    let cors = if cfg.rest_api.cors.enabled {
        Some(
            http::cors::CorsPolicy::from_config(&cfg.rest_api.cors)
                .map_err(|e| format!("configuration error: {e}"))?,
        )
    } else {
        None
    };
    let server = HttpServer::new(move || {
        let storage = Storage::with_timeout(&db_uri_for_workers, per_worker_pool, db_timeout)
            // One login writer and one token reader for all workers: larger groups (see
            // `login_batch`, `lookup_batch`).
            .map(|s| {
                telemetry::metrics::watch_pool("api", s.pool());
                s.share_batchers(&shared_storage)
                    .with_tenant_tree(tokens.tenants.clone())
            })
            .unwrap_or_else(|_| shared_storage.clone());
        let data = web::Data::new(Arc::new(AppState {
            storage,
            keyring: keyring.clone(),
            plugins: plugins.clone(),
            tokens: tokens.clone(),
            settings: settings.clone(),
            attempts: attempts.clone(),
            config: live_config.clone(),
            mail: mail.clone(),
            login_plugins: login_plugins.clone(),
            draining: draining_for_workers.clone(),
        }));
        let mut app = App::new()
            .wrap(actix_web::middleware::from_fn(http::revocation_barrier))
            // CORS headers (and pre-flight answers) when `rest_api.cors.enabled`.
            .wrap(http::cors::middleware(cors.as_ref()))
            // Outermost but for the read deadline: every answer (CORS pre-flights and router
            // errors included) gets its request id, its count and its access log line.
            .wrap(telemetry::middleware::Telemetry::new(
                telemetry_options.clone(),
            ))
            // Around everything: the request's body is bounded by the read deadline, and held
            // until the answer is sent (see `http::deadline`).
            .wrap(http::deadline::ReadDeadline::new(read_timeout))
            .app_data(data.clone());
        if let Some(scrape) = &scrape_data {
            app = app.app_data(scrape.clone());
        }
        app.configure(|c| http::configure(c, benchmark_route, user_registration))
    })
    // Requests in flight at shutdown have `rest_api.shutdown_timeout` seconds to finish; the
    // signals are handled by `shutdown_on_signal` (the drain comes first).
    .shutdown_timeout(cfg.rest_api.shutdown_timeout.whole_seconds())
    .disable_signals()
    // The read deadline (`rest_api.request_read_timeout`): the first request's head within it
    // (and within actix's own 5 s), its body within it from the connection's start (the next
    // requests' bodies: from the end of their head). See `http::deadline`.
    .client_request_timeout(read_timeout.min(Duration::from_secs(5)))
    .on_connect(http::deadline::on_connect)
    // A client that closes its side of the connection has given up on its answer: the request
    // is dropped at once (as Go's net/http or nginx do) instead of being worked to the end, so
    // abandoned logins release their place in the password-hash queue.
    .h1_allow_half_closed(false)
    .workers(workers);
    // The API's only listener: plain HTTP by default, HTTPS when a certificate is configured.
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(addr.clone(), tls),
        None => server.bind(addr.clone()),
    }
    .map_err(|e| format!("cannot listen on {}:{}: {e}", addr.0, addr.1))?;
    // The addresses actually bound: with `rest_api.port: 0` the system picks the port.
    let bound = server.addrs();
    let urls: Vec<String> = bound.iter().map(|a| format!("{scheme}://{a}")).collect();
    log::info!("listening on {}", urls.join(", "));
    let metrics_server = match (&scrape, cfg.metrics.listen) {
        (Some(scrape), Some(listen)) => Some(metrics_listener(scrape.clone(), listen)?),
        _ => None,
    };
    if let Some(file) = &cfg.rest_api.bound_address_file {
        write_bound_addresses(std::path::Path::new(file), &bound)?;
    }
    let server = server.run();
    let signals = actix_web::rt::spawn(shutdown_on_signal(
        server.handle(),
        draining,
        cfg.rest_api.shutdown_drain.duration(),
    ));
    let result = server.await;
    signals.abort();
    if let Some(file) = &cfg.rest_api.bound_address_file {
        let _ = std::fs::remove_file(file);
    }

    if let Some(metrics_server) = metrics_server {
        metrics_server.stop(true).await;
    }
    if let Some(task) = upkeep {
        task.abort();
    }
    if let Some(task) = purge {
        task.abort();
    }
    tally_fold.abort();
    for task in bus {
        task.abort();
    }
    listener.abort();
    // The workers' pools went with the workers; idle connections of the shared one are closed
    // now rather than at exit.
    storage.pool().close();
    log::info!("HTTP server stopped");
    result.map_err(|e| format!("HTTP server error: {e}"))
}

/// Stops the API server on a signal, as actix does by itself, but with a drain first on SIGTERM:
/// - SIGTERM: `HEAD /status` answers 503 (`draining`) for `drain` while every other request is
///   still served, so that a balancer's health check takes this node out while it still
///   answers; then the listener closes, idle keep-alive connections are closed, and requests in
///   flight have `rest_api.shutdown_timeout` to finish (a graceful stop);
/// - SIGINT, SIGQUIT: an immediate stop, as before.
///
/// A second SIGTERM during the drain ends the drain at once.
async fn shutdown_on_signal(
    server: actix_web::dev::ServerHandle,
    draining: Arc<std::sync::atomic::AtomicBool>,
    drain: Duration,
) {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        log::error!("cannot handle signals: SIGTERM and SIGINT will not stop the server cleanly");
        return;
    };
    let graceful = tokio::select! {
        _ = term.recv() => true,
        _ = int.recv() => false,
        _ = quit.recv() => false,
    };
    if graceful {
        if !drain.is_zero() {
            log::info!(
                "SIGTERM received; draining for {:.1}s (HEAD /status answers 503) before stopping",
                drain.as_secs_f64()
            );
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            tokio::select! {
                _ = actix_web::rt::time::sleep(drain) => {}
                _ = term.recv() => log::info!("second SIGTERM: the drain ends now"),
                _ = int.recv() => {
                    log::info!("SIGINT received; stopping now");
                    server.stop(false).await;
                    return;
                }
                _ = quit.recv() => {
                    log::info!("SIGQUIT received; stopping now");
                    server.stop(false).await;
                    return;
                }
            }
        }
        log::info!("SIGTERM received; stopping: no new connection, requests in flight finish");
    } else {
        log::info!("SIGINT or SIGQUIT received; stopping now");
    }
    server.stop(graceful).await;
}

/// Serves `GET /metrics` (and `/0.1/metrics`), without a token, on `listen` (`metrics.listen`),
/// until the returned handle stops it. Signals are left to the API server, which stops this one
/// when it ends.
fn metrics_listener(
    scrape: Arc<telemetry::metrics::Scrape>,
    listen: std::net::SocketAddr,
) -> Result<actix_web::dev::ServerHandle, String> {
    let data = web::Data::from(scrape);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(telemetry::middleware::Telemetry::new(
                telemetry::middleware::Options {
                    access_log: None,
                    metrics: false,
                    proxies: http::request::ProxyTrust::default(),
                },
            ))
            .app_data(data.clone())
            .route("/metrics", web::get().to(telemetry::metrics::open_metrics))
            .route(
                "/0.1/metrics",
                web::get().to(telemetry::metrics::open_metrics),
            )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(listen)
    .map_err(|e| format!("cannot listen on {listen} (metrics.listen): {e}"))?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    log::info!("metrics on http://{listen}/metrics");
    Ok(handle)
}

/// Folds the row tallies (`wazo_auth_core::tally`) every [`tally::FOLD_PERIOD`] when they hold
/// more than [`tally::FOLD_ROWS`] rows, so that the listings' totals read a handful of rows.
async fn tally_fold_loop(storage: Storage) {
    let mut failing = false;
    loop {
        actix_web::rt::time::sleep(tally::FOLD_PERIOD).await;
        match storage.fold_tallies_over(tally::FOLD_ROWS).await {
            Ok(_) => failing = false,
            // Once per outage: the database's unavailability is logged elsewhere too.
            Err(e) if !failing => {
                failing = true;
                log::warn!("folding the row tallies failed (will retry every second): {e}");
            }
            Err(_) => {}
        }
    }
}

/// Removes expired tokens (with their `auth_session_deleted` events), writes the
/// `auth_session_expire_soon` events of the sessions expiring within the next `interval`, and
/// removes login-throttle records older than `forget_after` that no longer block, every
/// `interval`. Several server processes may share a database: one of them runs the cleanup at a
/// time, and only when no other one ran it within the interval (`wazo_auth_core::cleanup`); the
/// expire-soon windows are shared, so each session is announced once; purged rows are claimed
/// with `FOR UPDATE SKIP LOCKED`, so none is processed twice. The purge goes at most `max_rate`
/// sessions per second (`token_cleanup_max_rate`), and a run purges for at most 80 % of an
/// interval:
/// the rest of a backlog is left to the next runs, so that the expire-soon notices of each run
/// go out on time.
async fn purge_loop(
    storage: Storage,
    interval: Duration,
    batch: i64,
    max_rate: Option<f64>,
    forget_after: f64,
) {
    // The purge batches' size, kept from one run to the next (`Storage::purge_expired`); the
    // first run starts small and doubles while batches are quick.
    let mut purge_size = tokens::PURGE_BATCH_MIN.min(batch);
    let mut rest = interval;
    loop {
        actix_web::rt::time::sleep(rest).await;
        // As the original, one interval from the start of a run to the start of the next (at
        // once after a run that took longer), unless the run is skipped.
        rest = interval;
        let started = std::time::Instant::now();
        // A little less than the interval: this process's next run must not be skipped because
        // its own previous run started a few milliseconds less than an interval ago.
        let min_gap = interval.as_secs_f64() * 0.9;
        let turn = match storage.cleanup_turn(tokens::now(), min_gap).await {
            Ok(Some(turn)) => turn,
            Ok(None) => {
                log::debug!("cleanup: another process runs it or ran it within the interval");
                continue;
            }
            Err(e) => {
                log::warn!("cleanup: cannot take the cleanup turn (will retry): {e}");
                telemetry::metrics::purge_run(false);
                continue;
            }
        };
        let mut ok = true;
        // Sessions not announced yet (this run starts after the last expire-soon window ended)
        // are left for the next run, which announces them first; at most 10 intervals (or a
        // minute) behind.
        let max_lag = (interval.as_secs_f64() * 10.0).max(60.0);
        let cutoff = turn.purge_cutoff(tokens::now(), max_lag);
        // The purge takes at most 80 % of the interval: the rest of the run follows it.
        let pace = tokens::PurgePace {
            max_rate,
            until: started + interval.mul_f64(0.8),
        };
        match storage
            .purge_expired(
                cutoff,
                batch,
                &mut purge_size,
                pace,
                telemetry::metrics::purge_batch,
            )
            .await
        {
            Ok((0, _)) => {}
            Ok((n, rest_left)) => {
                telemetry::metrics::purged("sessions", n as u64);
                let more = if rest_left {
                    "; the next run goes on with the rest"
                } else {
                    ""
                };
                log::info!("purged {n} expired sessions{more}");
            }
            Err(e) => {
                ok = false;
                log::warn!("expired-token purge failed (will retry): {e}");
            }
        }
        // As the original, after the purge: the sessions expiring before the next run (from
        // where the previous run stopped, so that a late run skips none).
        let until = tokens::now() + interval.as_secs_f64();
        if let Err(e) = storage.notify_expire_soon(until, batch).await {
            ok = false;
            log::warn!("expire-soon notification failed (will retry): {e}");
        }
        match storage.purge_throttle(forget_after, batch).await {
            Ok(0) => {}
            Ok(n) => {
                telemetry::metrics::purged("throttle", n as u64);
                log::info!("purged {n} stale login-throttle records");
            }
            Err(e) => {
                ok = false;
                log::warn!("login-throttle purge failed (will retry): {e}");
            }
        }
        if let Err(e) = turn.finish(ok).await {
            ok = false;
            log::warn!("cleanup: ending the cleanup turn failed: {e}");
        }
        telemetry::metrics::purge_run(ok);
        rest = interval.saturating_sub(started.elapsed());
        if started.elapsed() > interval {
            log::warn!(
                "expired-token purge took {:.1}s, longer than token_cleanup_interval",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Writes `rest_api.bound_address_file`: one `address:port` line per bound address (IPv6 in
/// brackets). Written to a temporary file in the same directory, then renamed, so that a reader
/// never sees a partial file.
fn write_bound_addresses(
    file: &std::path::Path,
    addrs: &[std::net::SocketAddr],
) -> Result<(), String> {
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("rest_api.bound_address_file ({}): {e}", file.display())
        })
}
