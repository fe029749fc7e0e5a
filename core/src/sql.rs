//! SQL shared by the whole crate:
//! - [`Db`]: how every statement runs, without named prepared statements (see below);
//! - the list queries' building: one WHERE builder (with the rule for NUL in text filters, once)
//!   and the ORDER BY / LIMIT / OFFSET of a page. Column names only ever come from the callers'
//!   whitelists; values are always parameters.
//!
//! ## Statements, behind a transaction pooler or not
//!
//! `db_uri` may point at PgBouncer in transaction pooling mode, which hands each transaction (or
//! each statement outside one) whichever server connection is free. A named prepared statement
//! lives on one server connection: prepared in one transaction, it is missing (or another
//! client's statement of the same name is found) when the next one runs elsewhere. PgBouncer
//! 1.21 and later can track them (`max_prepared_statements`); Debian 12's 1.18 cannot.
//!
//! So statements run as PostgreSQL's unnamed statement, in one round trip (Parse, Bind,
//! Describe, Execute, Sync: tokio-postgres' `query_typed`). That needs each parameter's type:
//! each SQL text's types are asked of the server once per process ([`describe`]: a `PREPARE` of
//! the text, a read of `pg_prepared_statements` and a `DEALLOCATE`, in one simple query, so one
//! server connection whatever the pooler) and kept in a process-wide map. Asking the server, not
//! declaring them at each call site, keeps the types exactly those the server infers, as
//! tokio-postgres' own `prepare` would have.
//!
//! An unnamed statement is parsed and planned at each run. On the hot statements (a token
//! check's cache miss, a login's reads and writes) that costs the server 2 to 8 times the CPU
//! of a statement prepared once (docs/scaling.md, "PgBouncer"). Those call the `*_cached`
//! methods: prepared once per pooled connection (deadpool's statement cache), unless the
//! process runs behind a transaction pooler ([`set_transaction_pooler`], the `db_pooler:
//! transaction` setting), where they run unnamed too. Clippy's `disallowed-methods`
//! (core/clippy.toml) keeps every other way of running statements out of this crate.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, SimpleQueryMessage};

/// Whether `db_uri` is a transaction pooler (set once at startup by the host).
static TRANSACTION_POOLER: AtomicBool = AtomicBool::new(false);

/// Tells this process whether its `db_uri` is a transaction pooler (`db_pooler: transaction`):
/// then no statement is prepared by name, the `*_cached` ones included.
pub fn set_transaction_pooler(pooler: bool) {
    TRANSACTION_POOLER.store(pooler, Ordering::Relaxed);
}

/// See [`set_transaction_pooler`].
pub fn transaction_pooler() -> bool {
    TRANSACTION_POOLER.load(Ordering::Relaxed)
}

/// A connection or a transaction to run statements on.
pub enum Conn<'a> {
    Client(&'a tokio_postgres::Client),
    Transaction(&'a tokio_postgres::Transaction<'a>),
    /// A pooled connection, with its statement cache.
    Pooled(&'a deadpool_postgres::ClientWrapper),
    /// A transaction of a pooled connection, with the connection's statement cache.
    PooledTransaction(&'a deadpool_postgres::Transaction<'a>),
}

/// A parameter of a statement.
pub type Param<'a> = &'a (dyn ToSql + Sync);

/// What runs statements: pooled connections, transactions (deadpool's and tokio-postgres') and
/// plain connections. The methods are tokio-postgres' `query`, `query_one`, `query_opt` and
/// `execute`, with the same arguments and errors, run unnamed in one round trip; the `*_cached`
/// ones are for the hot statements (see the module's documentation).
pub trait Db: Sync {
    fn conn(&self) -> Conn<'_>;

    /// The rows of `sql` (as `query`).
    fn fetch(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        async move { fetch(self.conn(), sql, params, false).await }
    }

    /// The one row of `sql`; an error if it returns none or several (as `query_one`).
    fn fetch_one(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
        async move { fetch_one(self.conn(), sql, params, false).await }
    }

    /// The row of `sql` if any; an error if several (as `query_opt`).
    fn fetch_opt(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
        async move { fetch_opt(self.conn(), sql, params, false).await }
    }

    /// Runs `sql`; the number of rows it changed (as `execute`).
    fn exec(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send {
        async move { exec(self.conn(), sql, params, false).await }
    }

    /// [`Db::fetch`] of a hot statement: prepared once per pooled connection, unless behind a
    /// transaction pooler. `sql` must be one of a few fixed texts (each stays prepared on each
    /// connection).
    fn fetch_cached(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        async move { fetch(self.conn(), sql, params, true).await }
    }

    /// [`Db::fetch_one`] of a hot statement (see [`Db::fetch_cached`]).
    fn fetch_one_cached(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
        async move { fetch_one(self.conn(), sql, params, true).await }
    }

    /// [`Db::fetch_opt`] of a hot statement (see [`Db::fetch_cached`]).
    fn fetch_opt_cached(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
        async move { fetch_opt(self.conn(), sql, params, true).await }
    }

    /// [`Db::exec`] of a hot statement (see [`Db::fetch_cached`]).
    fn exec_cached(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send {
        async move { exec(self.conn(), sql, params, true).await }
    }
}

impl Db for tokio_postgres::Client {
    fn conn(&self) -> Conn<'_> {
        Conn::Client(self)
    }
}

impl Db for tokio_postgres::Transaction<'_> {
    fn conn(&self) -> Conn<'_> {
        Conn::Transaction(self)
    }
}

impl Db for deadpool_postgres::Object {
    fn conn(&self) -> Conn<'_> {
        Conn::Pooled(self)
    }
}

impl Db for deadpool_postgres::ClientWrapper {
    fn conn(&self) -> Conn<'_> {
        Conn::Pooled(self)
    }
}

impl Db for deadpool_postgres::Transaction<'_> {
    fn conn(&self) -> Conn<'_> {
        Conn::PooledTransaction(self)
    }
}

impl<T: Db + ?Sized> Db for &T {
    fn conn(&self) -> Conn<'_> {
        (**self).conn()
    }
}

/// The body of [`fetch`] and its kin: `$typed` runs the statement unnamed with its typed
/// parameters, `$named` prepared by name (the statement itself, or its text).
macro_rules! run {
    ($conn:ident, $sql:ident, $params:ident, $cached:ident, $typed:ident, $named:ident) => {{
        if $cached && !transaction_pooler() {
            match $conn {
                Conn::Pooled(c) => {
                    let statement = named::prepare_cached_on_client(c, $sql).await?;
                    return named::$named(&Conn::Client(c), &statement, $params).await;
                }
                Conn::PooledTransaction(t) => {
                    let statement = named::prepare_cached_in_transaction(t, $sql).await?;
                    return named::$named(&Conn::Transaction(t), &statement, $params).await;
                }
                Conn::Client(_) | Conn::Transaction(_) => {}
            }
        }
        match typed(&$conn, $sql, $params).await? {
            Some(typed) => match $conn {
                Conn::Client(c) => c.$typed($sql, &typed).await,
                Conn::Transaction(t) => t.$typed($sql, &typed).await,
                Conn::Pooled(c) => c.$typed($sql, &typed).await,
                Conn::PooledTransaction(t) => t.$typed($sql, &typed).await,
            },
            None => named::$named(&$conn, $sql, $params).await,
        }
    }};
}

/// See [`Db::fetch`] (`cached`: [`Db::fetch_cached`]).
pub async fn fetch(
    conn: Conn<'_>,
    sql: &str,
    params: &[Param<'_>],
    cached: bool,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    run!(conn, sql, params, cached, query_typed, fetch)
}

/// See [`Db::fetch_one`].
pub async fn fetch_one(
    conn: Conn<'_>,
    sql: &str,
    params: &[Param<'_>],
    cached: bool,
) -> Result<Row, tokio_postgres::Error> {
    run!(conn, sql, params, cached, query_typed_one, fetch_one)
}

/// See [`Db::fetch_opt`].
pub async fn fetch_opt(
    conn: Conn<'_>,
    sql: &str,
    params: &[Param<'_>],
    cached: bool,
) -> Result<Option<Row>, tokio_postgres::Error> {
    run!(conn, sql, params, cached, query_typed_opt, fetch_opt)
}

/// See [`Db::exec`].
pub async fn exec(
    conn: Conn<'_>,
    sql: &str,
    params: &[Param<'_>],
    cached: bool,
) -> Result<u64, tokio_postgres::Error> {
    run!(conn, sql, params, cached, execute_typed, exec)
}

/// The parameters with their types, or `None` when they cannot be given (a parameter count
/// that does not match the statement, or a type this crate does not know): the statement then
/// runs prepared by name, which reports the count mismatch as tokio-postgres does.
async fn typed<'p>(
    conn: &Conn<'_>,
    sql: &str,
    params: &[Param<'p>],
) -> Result<Option<Vec<(Param<'p>, Type)>>, tokio_postgres::Error> {
    let types = if params.is_empty() {
        // Nothing to ask: a statement that does take parameters fails at the server.
        return Ok(Some(Vec::new()));
    } else {
        match param_types(conn, sql).await? {
            Some(types) => types,
            None => return Ok(None),
        }
    };
    if types.len() != params.len() {
        return Ok(None);
    }
    Ok(Some(
        params.iter().copied().zip(types.iter().cloned()).collect(),
    ))
}

/// The most SQL texts whose parameter types are kept. The texts are the crate's constants and
/// the list queries' combinations of filters and pages, so the map stays far smaller; if it
/// fills up anyway (pages at many offsets), it is emptied and refilled as texts come back.
const MAX_KNOWN_TEXTS: usize = 4096;

type TypeMap = HashMap<Box<str>, Option<Arc<[Type]>>>;

/// The parameter types of each SQL text described so far in this process (`None`: a type this
/// crate does not know).
static KNOWN_TYPES: LazyLock<RwLock<TypeMap>> = LazyLock::new(Default::default);

/// The parameter types of `sql`: from the process's map, or asked of the server once.
async fn param_types(
    conn: &Conn<'_>,
    sql: &str,
) -> Result<Option<Arc<[Type]>>, tokio_postgres::Error> {
    if let Some(known) = KNOWN_TYPES
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(sql)
    {
        return Ok(known.clone());
    }
    let types = describe(conn, sql).await?;
    let mut map = KNOWN_TYPES
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if map.len() >= MAX_KNOWN_TEXTS {
        map.clear();
    }
    map.insert(sql.into(), types.clone());
    Ok(types)
}

/// Sequence of the names of [`describe`]'s statements, unique in the process.
static DESCRIBE_SEQ: AtomicU64 = AtomicU64::new(0);

/// Asks the server the parameter types of `sql` (`None` if one is not a type this crate knows).
///
/// One simple query, hence one server connection even behind a transaction pooler: `PREPARE` of
/// the text, the statement's `parameter_types` from `pg_prepared_statements`, `DEALLOCATE`.
/// The name holds the process id and a sequence number: should a statement ever be left
/// behind, no later describe (of this or another process) trips on it.
pub async fn describe(
    conn: &Conn<'_>,
    sql: &str,
) -> Result<Option<Arc<[Type]>>, tokio_postgres::Error> {
    let name = format!(
        "wazo_auth_describe_{}_{}",
        std::process::id(),
        DESCRIBE_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    // A newline after the text: a trailing `--` comment would otherwise swallow the rest.
    let batch = format!(
        "PREPARE {name} AS {sql}\n;\
         SELECT parameter_types::oid[]::text FROM pg_prepared_statements WHERE name = '{name}';\
         DEALLOCATE {name}"
    );
    let messages = match conn {
        Conn::Client(c) => c.simple_query(&batch).await?,
        Conn::Transaction(t) => t.simple_query(&batch).await?,
        Conn::Pooled(c) => c.simple_query(&batch).await?,
        Conn::PooledTransaction(t) => t.simple_query(&batch).await?,
    };
    let oids = first_row(&messages).and_then(|row| row.get(0));
    Ok(oids.and_then(parse_oids))
}

/// The types of a PostgreSQL `oid[]` in text form (`{25,1184}`); `None` if one is unknown.
fn parse_oids(text: &str) -> Option<Arc<[Type]>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    if inner.is_empty() {
        return Some(Arc::from(Vec::new()));
    }
    inner
        .split(',')
        .map(|oid| oid.trim().parse().ok().and_then(Type::from_oid))
        .collect::<Option<Vec<Type>>>()
        .map(Arc::from)
}

/// Statements prepared by name (tokio-postgres' own methods): the hot statements' cache when no
/// transaction pooler is in front, and the fallback of [`typed`]'s `None` (a wrong parameter
/// count, an error either way, or a parameter of a type unknown to tokio-postgres, which the
/// schema has none of).
#[allow(clippy::disallowed_methods)]
mod named {
    use super::{Conn, Param};
    use tokio_postgres::{Error, Row, Statement, ToStatement};

    pub(super) async fn prepare_cached_on_client(
        c: &deadpool_postgres::ClientWrapper,
        sql: &str,
    ) -> Result<Statement, Error> {
        c.prepare_cached(sql).await
    }

    pub(super) async fn prepare_cached_in_transaction(
        t: &deadpool_postgres::Transaction<'_>,
        sql: &str,
    ) -> Result<Statement, Error> {
        t.prepare_cached(sql).await
    }

    macro_rules! on {
        ($conn:expr, $method:ident, $sql:expr, $p:expr) => {
            match $conn {
                Conn::Client(c) => c.$method($sql, $p).await,
                Conn::Transaction(t) => t.$method($sql, $p).await,
                Conn::Pooled(c) => c.$method($sql, $p).await,
                Conn::PooledTransaction(t) => t.$method($sql, $p).await,
            }
        };
    }

    pub(super) async fn fetch<S: ToStatement + ?Sized>(
        conn: &Conn<'_>,
        sql: &S,
        p: &[Param<'_>],
    ) -> Result<Vec<Row>, Error> {
        on!(conn, query, sql, p)
    }

    pub(super) async fn fetch_one<S: ToStatement + ?Sized>(
        conn: &Conn<'_>,
        sql: &S,
        p: &[Param<'_>],
    ) -> Result<Row, Error> {
        on!(conn, query_one, sql, p)
    }

    pub(super) async fn fetch_opt<S: ToStatement + ?Sized>(
        conn: &Conn<'_>,
        sql: &S,
        p: &[Param<'_>],
    ) -> Result<Option<Row>, Error> {
        on!(conn, query_opt, sql, p)
    }

    pub(super) async fn exec<S: ToStatement + ?Sized>(
        conn: &Conn<'_>,
        sql: &S,
        p: &[Param<'_>],
    ) -> Result<u64, Error> {
        on!(conn, execute, sql, p)
    }
}

/// Ordering and pagination of a list. `order` must come from the endpoint's whitelist
/// (checked again here: anything else sorts by the default column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub order: String,
    pub descending: bool,
    pub limit: Option<i64>,
    pub offset: i64,
}

impl Page {
    pub fn sql(&self, columns: &[(&str, &str)], tie_break: &str) -> String {
        let column = columns
            .iter()
            .find(|(name, _)| *name == self.order)
            .unwrap_or(&columns[0])
            .1;
        let dir = if self.descending { "DESC" } else { "ASC" };
        let mut out = format!(" ORDER BY {column} {dir}, {tie_break} {dir}");
        if let Some(l) = self.limit {
            out.push_str(&format!(" LIMIT {}", l.max(0)));
        }
        out.push_str(&format!(" OFFSET {}", self.offset.max(0)));
        out
    }
}

/// A WHERE clause under construction, with its parameters.
#[derive(Default)]
pub struct Where {
    conds: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    pub fn param<T: ToSql + Sync + Send + 'static>(&mut self, v: T) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    /// Adds `template` with every `{}` replaced by a parameter holding `value`. A value holding
    /// NUL can match nothing stored (PostgreSQL text cannot contain it): the condition is FALSE.
    pub fn text(&mut self, template: &str, value: &str) {
        if value.contains('\0') {
            self.conds.push("FALSE".into());
        } else {
            let p = self.param(value.to_string());
            self.conds.push(template.replace("{}", &p));
        }
    }

    pub fn raw(&mut self, cond: String) {
        self.conds.push(cond);
    }

    pub fn sql(&self) -> String {
        if self.conds.is_empty() {
            "TRUE".into()
        } else {
            self.conds.join(" AND ")
        }
    }

    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The first row of a simple query's answer.
pub(crate) fn first_row(
    messages: &[SimpleQueryMessage],
) -> Option<&tokio_postgres::SimpleQueryRow> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_a_text_filter_matches_nothing() {
        let mut w = Where::default();
        w.text("a = {}", "x");
        w.text("b = {}", "y\0");
        assert_eq!(w.sql(), "a = $1 AND FALSE");
        assert_eq!(w.refs().len(), 1);
        assert_eq!(Where::default().sql(), "TRUE");
    }

    #[test]
    fn oid_arrays_read_as_types() {
        assert_eq!(parse_oids("{}").as_deref(), Some(&[][..]));
        assert_eq!(
            parse_oids("{25,1184,20}").as_deref(),
            Some(&[Type::TEXT, Type::TIMESTAMPTZ, Type::INT8][..])
        );
        // An oid tokio-postgres does not know (a type created by an extension): no types.
        assert_eq!(parse_oids("{25,987654}"), None);
        assert_eq!(parse_oids("25"), None);
    }
}
