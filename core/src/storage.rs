//! PostgreSQL storage: connection pool and schema migrations.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::cache::tenants::TenantTree;
use crate::error::{Error, Result};
use crate::sql::Db;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Arbitrary but fixed key of the advisory lock that serialises migrations between several
/// server processes starting at once on one database.
const MIGRATION_LOCK_KEY: i64 = 0x7761_7a6f_6175_7468; // "wazoauth"

/// The default of the `db_timeout` setting.
pub const DEFAULT_DB_TIMEOUT: Duration = Duration::from_secs(5);

/// The process-wide `db_timeout` used by [`Storage::new`], in microseconds (0: the default).
static PROCESS_DB_TIMEOUT_US: AtomicU64 = AtomicU64::new(0);

/// Sets the timeout of every pool built afterwards by [`Storage::new`] in this process (the
/// server calls it once with its `db_timeout` setting, before building any pool).
pub fn set_default_db_timeout(timeout: Duration) {
    let us = u64::try_from(timeout.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    PROCESS_DB_TIMEOUT_US.store(us, Ordering::Relaxed);
}

/// The timeout used by [`Storage::new`]: the last [`set_default_db_timeout`], else
/// [`DEFAULT_DB_TIMEOUT`].
pub fn default_db_timeout() -> Duration {
    match PROCESS_DB_TIMEOUT_US.load(Ordering::Relaxed) {
        0 => DEFAULT_DB_TIMEOUT,
        us => Duration::from_micros(us),
    }
}

/// A pooled connection not handed out for this long is checked with an empty query before it is
/// handed out again (see [`verify_if_idle`]).
const VERIFY_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Recycling check of a pooled connection, after deadpool's own (which drops connections whose
/// connection task has ended: closed by the server, restart, outage). A connection idle for
/// [`VERIFY_IDLE_AFTER`] or more also makes a round trip (`""`, within `timeout`): a server that
/// stalls without closing connections (stopped process, storage hang) then costs a request its
/// `db_timeout` and a 503, not a hang. Connections in steady use (taken again within a second)
/// skip the round trip, so busy paths pay nothing; an idle pool pays one round trip per
/// connection and second at most.
async fn verify_if_idle(
    client: &mut deadpool_postgres::ClientWrapper,
    metrics: &deadpool_postgres::Metrics,
    timeout: Duration,
) -> std::result::Result<(), HookError> {
    if metrics.last_used() < VERIFY_IDLE_AFTER {
        return Ok(());
    }
    match tokio::time::timeout(timeout, client.simple_query("")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(HookError::Backend(e)),
        Err(_) => Err(HookError::message("no answer to the connection check")),
    }
}

/// The database handle shared by the whole server.
#[derive(Clone)]
pub struct Storage {
    pool: Pool,
    timeout: Duration,
    /// The group-commit writer of plain logins (`crate::login_batch`), started on first use.
    login_writer: std::sync::Arc<
        std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<crate::login_batch::Job>>,
    >,
    /// The grouped reader of the tokens the cache misses (`crate::lookup_batch`), started on
    /// first use.
    token_reader: std::sync::Arc<
        std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<crate::lookup_batch::Job>>,
    >,
    /// The process's tenant tree in memory, when the server set one
    /// ([`Storage::with_tenant_tree`]); without it, every scope decision is a query.
    tenant_tree: Option<std::sync::Arc<TenantTree>>,
}

impl Storage {
    /// Builds a pool for `uri` (a `postgresql://` URL or a `key=value` connection string) with
    /// the process-wide timeout ([`default_db_timeout`]). Does not connect yet.
    pub fn new(uri: &str, max_size: usize) -> Result<Storage> {
        Storage::with_timeout(uri, max_size, default_db_timeout())
    }

    /// Builds a pool for `uri` whose operations are bounded by `timeout` (the `db_timeout`
    /// setting). Does not connect yet.
    ///
    /// - Getting a connection ([`Storage::client`]: waiting for a free slot, connecting and
    ///   recycling together) fails after `timeout`.
    /// - Every statement is bounded by the server (`statement_timeout`, set at connection
    ///   start unless the URI's `options` set one) and by the kernel on TCP connections
    ///   (`tcp_user_timeout`: data left unacknowledged that long breaks the connection, so a
    ///   vanished server or a cut network cannot hang a request).
    /// - Connections the server closed (restart, `pg_terminate_backend`, outage) are noticed
    ///   by their connection task and dropped when next taken from the pool
    ///   (`RecyclingMethod::Fast` checks `is_closed`); connections idle for a second or more are
    ///   also checked with a round trip ([`verify_if_idle`]). New ones are created on demand, so
    ///   the pool recovers by itself when the database comes back.
    pub fn with_timeout(uri: &str, max_size: usize, timeout: Duration) -> Result<Storage> {
        if timeout.is_zero() {
            return Err(Error::database("db_timeout must be greater than 0"));
        }
        let mut pg_config = tokio_postgres::Config::from_str(uri)
            .map_err(|e| Error::database(format!("invalid db_uri: {e}")))?;
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("wazo-auth");
        }
        let connect_timeout = match pg_config.get_connect_timeout() {
            Some(t) if *t < timeout => *t,
            _ => timeout,
        };
        pg_config.connect_timeout(connect_timeout);
        if pg_config.get_tcp_user_timeout().is_none() {
            pg_config.tcp_user_timeout(timeout.max(Duration::from_secs(1)));
        }
        let options = pg_config.get_options().unwrap_or_default().to_string();
        if !options.contains("statement_timeout") {
            let ms = timeout.as_millis().max(1);
            pg_config.options(format!("-c statement_timeout={ms} {options}").trim_end());
        }
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .post_recycle(Hook::async_fn(move |client, metrics| {
                Box::pin(verify_if_idle(client, metrics, timeout))
            }))
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::database(e.to_string()))?;
        Ok(Storage {
            pool,
            timeout,
            login_writer: Default::default(),
            token_reader: Default::default(),
            tenant_tree: None,
        })
    }

    /// The bound of every database operation (`db_timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Waits until the database answers, retrying for at most `timeout`.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            match self.pool.get().await {
                Ok(client) => match client.simple_query("SELECT 1").await {
                    Ok(_) => return Ok(()),
                    Err(e) if start.elapsed() >= timeout => return Err(e.into()),
                    Err(_) => {}
                },
                Err(e) if start.elapsed() >= timeout => return Err(e.into()),
                Err(e) => log::info!("waiting for the database: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Applies pending migrations (idempotent; safe when several processes start at once), on
    /// a connection of the pool.
    pub async fn migrate(&self) -> Result<()> {
        // Detached from the pool: whatever happens below, this session (with no statement
        // timeout) is closed when done, never handed to a request.
        let mut obj = deadpool_postgres::Object::take(self.pool.get().await?);
        migrate_on(&mut obj).await
    }

    /// As [`Storage::migrate`], on a connection of its own to `session_uri` (the
    /// `db_listen_uri` setting): the migrations' advisory lock is a session lock, which a
    /// transaction pooler in front of the pool's `db_uri` would not keep.
    pub async fn migrate_direct(&self, session_uri: &str) -> Result<()> {
        let (mut client, connection) =
            connect_direct(session_uri, "wazo-auth-migrations", self.timeout).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("migration connection ended: {e}");
            }
        });
        let outcome = migrate_on(&mut client).await;
        drop(client);
        let _ = driver.await;
        outcome
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Makes this storage write its plain logins through `other`'s login writer, and read the
    /// tokens its cache misses through `other`'s token reader. One of each for the whole
    /// process groups more rows per statement than one per worker, and the larger the group,
    /// the less each row costs the database. They run on the runtime of their first use, with
    /// that storage's pool, unless started before ([`Storage::start_batchers`]); if that
    /// runtime stops first (a worker ending before the others at shutdown), the rows queued
    /// there get an error and later ones are written or read directly.
    pub fn share_batchers(mut self, other: &Storage) -> Storage {
        self.login_writer = other.login_writer.clone();
        self.token_reader = other.token_reader.clone();
        self
    }

    /// Starts the login writer and the token reader now, on the current runtime, with this
    /// storage's pool. The server starts them on its main runtime, which outlives the HTTP
    /// workers: a login still in flight on one worker while another stops (a graceful
    /// shutdown) is written.
    pub fn start_batchers(&self) {
        let _ = self.login_writer();
        let _ = self.token_reader();
    }

    /// Makes this storage decide tenant scopes from `tree` ([`Storage::is_subtenant`],
    /// [`Storage::tenant_and_descendants`], [`Storage::top_tenant_uuid`]) while it is live, and
    /// drop it at each of its own tenant writes ([`Storage::tenants_changed`]). Give every
    /// storage of a process the same tree, the one its listener feeds
    /// ([`crate::cache::Caches::tenants`]).
    pub fn with_tenant_tree(mut self, tree: std::sync::Arc<TenantTree>) -> Storage {
        self.tenant_tree = Some(tree);
        self
    }

    /// This process created, deleted or moved a tenant (committed): the tree in memory is
    /// dropped at once, so that the next decision of this process sees it (other processes
    /// drop theirs when the trigger's notification arrives).
    pub fn tenants_changed(&self) {
        if let Some(tree) = &self.tenant_tree {
            tree.invalidate();
        }
    }

    /// The tenant tree to decide from, if one is set and live (loaded when needed).
    async fn tenant_tree(&self) -> Result<Option<std::sync::Arc<crate::cache::tenants::Tree>>> {
        match &self.tenant_tree {
            Some(tree) => tree.get(self).await,
            None => Ok(None),
        }
    }

    /// The channel of this storage's login writer, starting the writer (on the current
    /// runtime) at the first call. The writer holds a handle on the pool only, so it ends when
    /// the last clone of this storage (and of the channel) is dropped.
    pub(crate) fn login_writer(
        &self,
    ) -> &tokio::sync::mpsc::UnboundedSender<crate::login_batch::Job> {
        self.login_writer.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(crate::login_batch::writer(self.detached(), rx));
            tx
        })
    }

    /// A storage on the same pool, with no writer or reader of its own (the one a writer or
    /// reader task holds: it must not keep its own channel alive).
    fn detached(&self) -> Storage {
        Storage {
            pool: self.pool.clone(),
            timeout: self.timeout,
            login_writer: Default::default(),
            token_reader: Default::default(),
            tenant_tree: self.tenant_tree.clone(),
        }
    }

    /// The channel of this storage's token reader, started (on the current runtime) at the
    /// first call, as the login writer ([`Storage::login_writer`]).
    pub(crate) fn token_reader(
        &self,
    ) -> &tokio::sync::mpsc::UnboundedSender<crate::lookup_batch::Job> {
        self.token_reader.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(crate::lookup_batch::reader(self.detached(), rx));
            tx
        })
    }

    /// A connection from the pool, within the `db_timeout` (waiting for a free slot,
    /// connecting and recycling together).
    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        use tracing::Instrument;
        // A debug-level span: free unless debug logging is on for this module.
        let checkout = tokio::time::timeout(self.timeout, self.pool.get())
            .instrument(tracing::debug_span!("db_checkout"));
        match checkout.await {
            Ok(got) => Ok(got?),
            Err(_) => Err(Error::database(format!(
                "no database connection within {:?}",
                self.timeout
            ))),
        }
    }

    /// The uuid of the top ("master") tenant, the one that is its own parent.
    pub async fn top_tenant_uuid(&self) -> Result<String> {
        if let Some(tree) = self.tenant_tree().await? {
            if let Some(top) = tree.top() {
                return Ok(top.to_string());
            }
        }
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1",
                &[],
            )
            .await?
            .ok_or_else(|| Error::Corrupt("no top tenant in auth_tenant".into()))?;
        Ok(row.get(0))
    }

    /// Cheap liveness check of the database, within the `db_timeout` as a whole (also when the
    /// server accepts connections but does not answer).
    pub async fn ping(&self) -> Result<()> {
        let check = async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        };
        match tokio::time::timeout(self.timeout, check).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::database(format!(
                "no answer from the database within {:?}",
                self.timeout
            ))),
        }
    }

    /// Whether `child` is `parent` or one of its descendants (the top tenant sees every existing
    /// tenant; a tenant that does not exist is never visible).
    pub async fn is_subtenant(&self, child: &str, parent: &str) -> Result<bool> {
        // No stored tenant uuid holds NUL (PostgreSQL text cannot), and the database would refuse
        // the parameter: such a tenant is nobody's subtenant.
        if child.contains('\0') || parent.contains('\0') {
            return Ok(false);
        }
        // From memory when both are in the tree; a tenant it does not hold may be newer than
        // it (created by another process, its notification not yet here): asked below.
        if let Some(tree) = self.tenant_tree().await? {
            if let Some(answer) = tree.is_subtenant(child, parent) {
                return Ok(answer);
            }
        }
        let client = self.client().await?;
        let row = client
            .fetch_one(
                "WITH RECURSIVE up(uuid, parent_uuid, depth) AS (
                     SELECT uuid, parent_uuid, 0 FROM auth_tenant WHERE uuid = $1
                     UNION ALL
                     SELECT t.uuid, t.parent_uuid, up.depth + 1
                     FROM auth_tenant t JOIN up ON t.uuid = up.parent_uuid
                     WHERE up.uuid <> up.parent_uuid AND up.depth < 1000
                 )
                 SELECT EXISTS (SELECT 1 FROM up WHERE uuid = $2)
                     OR (EXISTS (SELECT 1 FROM auth_tenant WHERE uuid = $1)
                         AND EXISTS (SELECT 1 FROM auth_tenant
                                     WHERE uuid = $2 AND uuid = parent_uuid))",
                &[&child, &parent],
            )
            .await?;
        Ok(row.get(0))
    }
}

impl Storage {
    /// Whether a wazo-auth user has this uuid. Not on behalf of a caller (no tenant scope): for
    /// the login only (offline access needs a wazo-auth user).
    pub async fn is_wazo_auth_user(&self, user_uuid: &str) -> Result<bool> {
        Ok(self.user_tenant(user_uuid).await?.is_some())
    }

    /// The tenant of a user, if the user exists (unscoped: requests go through
    /// [`crate::scope`]).
    pub(crate) async fn user_tenant(&self, user_uuid: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT tenant_uuid FROM auth_user WHERE uuid = $1",
                &[&user_uuid],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// `tenant` and all its descendants, and whether they are every tenant (read from one
    /// snapshot: the tree in memory, or one statement).
    pub(crate) async fn subtree(&self, tenant: &str) -> Result<(Vec<String>, bool)> {
        if tenant.contains('\0') {
            return Ok((Vec::new(), false));
        }
        if let Some(tree) = self.tenant_tree().await? {
            if let Some(all) = tree.descendants(tenant) {
                let every = all.len() == tree.len();
                return Ok((all, every));
            }
        }
        let client = self.client().await?;
        let rows = client
            .fetch(
                "WITH RECURSIVE down(uuid) AS (
                     SELECT uuid FROM auth_tenant WHERE uuid = $1
                     UNION
                     SELECT t.uuid FROM auth_tenant t JOIN down d ON t.parent_uuid = d.uuid
                 )
                 SELECT uuid, (SELECT count(*) FROM auth_tenant) FROM down",
                &[&tenant],
            )
            .await?;
        let every = rows
            .first()
            .is_some_and(|r| usize::try_from(r.get::<_, i64>(1)).ok() == Some(rows.len()));
        Ok((rows.iter().map(|r| r.get(0)).collect(), every))
    }

    /// `tenant` and all its descendants (the top tenant: every tenant). Empty when `tenant`
    /// does not exist.
    pub async fn tenant_and_descendants(&self, tenant: &str) -> Result<Vec<String>> {
        Ok(self.subtree(tenant).await?.0)
    }
}

/// A connection of its own to `uri`, outside every pool (the migrations' session, the bus
/// publisher's, the revocation listener's), named `application_name` for operators.
///
/// Each host of a multi-host URI is tried in turn within the URI's `connect_timeout` (`timeout`
/// without one), so that a first host gone silent (powered off, cut off) does not keep the
/// connection from the next one. The connection as a whole is bounded too (`connect_timeout`
/// covers the socket only, not a server that accepts it and then says nothing): every host's
/// timeout, plus `timeout` for the handshake. On TCP, data left unacknowledged for `timeout`
/// breaks the connection (`tcp_user_timeout`, as the pool's), unless the URI sets its own.
pub async fn connect_direct(
    uri: &str,
    application_name: &str,
    timeout: Duration,
) -> Result<(
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
)> {
    let mut config = tokio_postgres::Config::from_str(uri)
        .map_err(|e| Error::database(format!("invalid database URI: {e}")))?;
    config.application_name(application_name);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(timeout.max(Duration::from_secs(1)));
    }
    let per_host = config.get_connect_timeout().copied().unwrap_or(timeout);
    // A URI may list its hosts as `host`, as `hostaddr`, or both (then one per host).
    let hosts = config
        .get_hosts()
        .len()
        .max(config.get_hostaddrs().len())
        .max(1);
    let hosts = u32::try_from(hosts).unwrap_or(u32::MAX);
    let bound = per_host.saturating_mul(hosts).saturating_add(timeout);
    tokio::time::timeout(bound, config.connect(NoTls))
        .await
        .map_err(|_| Error::database(format!("no answer from the database within {bound:?}")))?
        .map_err(Error::from)
}

/// Runs the migrations on `client`, under the session advisory lock [`MIGRATION_LOCK_KEY`].
async fn migrate_on(client: &mut tokio_postgres::Client) -> Result<()> {
    // Migrations (and waiting for another process's) may take longer than a request: no
    // statement timeout on this session until they are done.
    client.batch_execute("SET statement_timeout = 0").await?;
    client
        .exec("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let outcome = embedded::migrations::runner()
        .set_migration_table_name("wazo_auth_schema_history")
        .run_async(client)
        .await;
    let unlock = client
        .exec("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let reset = client.batch_execute("RESET statement_timeout").await;
    let report = outcome.map_err(|e| Error::Migration(e.to_string()))?;
    unlock?;
    reset?;
    for m in report.applied_migrations() {
        log::info!("applied migration {}", m);
    }
    Ok(())
}
