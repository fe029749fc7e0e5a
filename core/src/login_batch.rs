//! Group commit of plain logins. Each login writes a session and its token; done one statement
//! per login, concurrent logins each pay a round trip, a transaction and a WAL flush. Here the
//! logins that arrive while a batch is being written wait for the next one, which writes them
//! all with one statement (one transaction): the database does a fraction of the per-login
//! work, and no login waits on purpose (a login arriving when nothing is in flight is written at
//! once, alone). A login is answered only after its batch has committed, so nothing
//! acknowledged is lost; a batch that fails for another reason than the database being
//! unreachable is retried row by row, so one bad row cannot fail the others.
//!
//! One writer task per [`Storage`] and its clones, started on first use on the runtime of that
//! first caller. The server's per-worker storages share one ([`Storage::share_batchers`]):
//! measured on two cores, one shared writer makes groups large enough to cut the database's CPU
//! per login by a quarter against one writer per worker, while a second batch in flight per
//! writer (smaller groups) cost more on both sides.

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::sql::Db;
use crate::storage::Storage;

/// The most logins written by one statement.
const MAX_BATCH: usize = 64;

/// One login's session and token.
pub(crate) struct Row {
    pub session_uuid: String,
    pub mobile: bool,
    /// Tenant of the session (the top tenant when `None` or unknown).
    pub tenant: Option<String>,
    pub token_hash: Vec<u8>,
    pub auth_id: String,
    pub pbx_user_uuid: Option<String>,
    pub xivo_uuid: Option<String>,
    pub issued_t: f64,
    pub expire_t: f64,
    pub metadata: Value,
    pub user_agent: String,
    pub remote_addr: String,
    pub acl: Vec<String>,
    pub refresh_token_uuid: Option<String>,
    /// The user of its `auth_session_created` event ([`crate::events::user_uuid_of`]).
    pub user_uuid: Option<String>,
}

pub(crate) type Job = (Row, oneshot::Sender<Result<()>>);

/// The `auth_session_created` outbox row of each session inserted by CTE `s` (which returns
/// `uuid`, `tenant_uuid` and `mobile`), `user` being the SQL expression of the event's user (a
/// text, NULL when unknown): the same row as [`crate::events::Event::session_created`] (checked
/// by tests/tests/events.rs). Session uuids are generated here (no routing-key escaping needed).
macro_rules! session_created_event {
    ($from:literal, $user:literal) => {
        concat!(
            "ev AS (
         INSERT INTO auth_event_outbox (name, routing_key, headers, data)
         SELECT 'auth_session_created', 'auth.sessions.' || s.uuid || '.created',
                jsonb_build_object('name', 'auth_session_created', 'tenant_uuid', s.tenant_uuid,
                    'session_uuid', s.uuid, 'required_access', 'event.auth_session_created',
                    'required_acl', 'events.auth.sessions.' || s.uuid || '.created')
                || CASE WHEN ",
            $user,
            " <> '' THEN jsonb_build_object('user_uuid:' || ",
            $user,
            ", true)
                        ELSE '{}'::jsonb END,
                jsonb_build_object('uuid', s.uuid, 'tenant_uuid', s.tenant_uuid,
                    'user_uuid', ",
            $user,
            ", 'mobile', s.mobile)
         FROM ",
            $from,
            ")"
        )
    };
}

/// The one-login statement (also the ceiling `bench/insert_token.sql` measures): the session,
/// its `auth_session_created` outbox row, and the token.
pub(crate) const INSERT_ONE: &str = concat!(
    "WITH t AS (
         SELECT COALESCE(
             (SELECT uuid FROM auth_tenant WHERE uuid = $3::text),
             (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1)) AS uuid),
     s AS (
         INSERT INTO auth_session (uuid, mobile, tenant_uuid)
         SELECT $1, $2, uuid FROM t RETURNING uuid, tenant_uuid, mobile),
     ",
    session_created_event!("s", "$15::text"),
    "
     INSERT INTO auth_token (token_hash, auth_id, pbx_user_uuid, xivo_uuid, issued_t,
         expire_t, metadata, session_uuid, user_agent, remote_addr, acl,
         refresh_token_uuid)
     SELECT $4, $5, $6, $7, $8, $9, $10, s.uuid, $11, $12, $13, $14 FROM s"
);

/// The same for many logins: one array per column (ACLs as JSON arrays: PostgreSQL arrays of
/// arrays must be rectangular). The outbox rows follow the order of the logins.
const INSERT_MANY: &str = concat!(
    "WITH i AS (
         SELECT * FROM unnest($1::text[], $2::bool[], $3::text[], $4::bytea[], $5::text[],
                              $6::text[], $7::text[], $8::float8[], $9::float8[], $10::jsonb[],
                              $11::text[], $12::text[], $13::jsonb[], $14::text[], $15::text[])
             WITH ORDINALITY
             AS i(session_uuid, mobile, tenant, token_hash, auth_id, pbx_user_uuid, xivo_uuid,
                  issued_t, expire_t, metadata, user_agent, remote_addr, acl,
                  refresh_token_uuid, user_uuid, n)),
     top AS (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1),
     s AS (
         INSERT INTO auth_session (uuid, mobile, tenant_uuid)
         SELECT i.session_uuid, i.mobile,
                COALESCE((SELECT t.uuid FROM auth_tenant t WHERE t.uuid = i.tenant),
                         (SELECT uuid FROM top))
         FROM i RETURNING uuid, tenant_uuid, mobile),
     ",
    session_created_event!(
        "s JOIN i ON i.session_uuid = s.uuid ORDER BY i.n",
        "i.user_uuid"
    ),
    "
     INSERT INTO auth_token (token_hash, auth_id, pbx_user_uuid, xivo_uuid, issued_t,
         expire_t, metadata, session_uuid, user_agent, remote_addr, acl,
         refresh_token_uuid)
     SELECT i.token_hash, i.auth_id, i.pbx_user_uuid, i.xivo_uuid, i.issued_t, i.expire_t,
            i.metadata, s.uuid, i.user_agent, i.remote_addr,
            ARRAY(SELECT jsonb_array_elements_text(i.acl)), i.refresh_token_uuid
     FROM i JOIN s ON s.uuid = i.session_uuid"
);

impl Storage {
    /// Writes one plain login (session and token), grouped with the logins in flight at the
    /// same time.
    pub(crate) async fn insert_login(&self, row: Row) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let sender = self.login_writer();
        if let Err(mpsc::error::SendError((row, _))) = sender.send((row, tx)) {
            // The writer's runtime is gone (shutdown): write directly.
            return self.insert_one(&row).await;
        }
        rx.await
            .unwrap_or_else(|_| Err(Error::database("the login writer stopped")))
    }

    pub(crate) async fn insert_one(&self, row: &Row) -> Result<()> {
        let client = self.client().await?;
        insert_row(&client, row).await
    }

    async fn insert_many(&self, rows: &[&Row]) -> Result<()> {
        let client = self.client().await?;
        let stmt = INSERT_MANY;
        macro_rules! column {
            ($f:expr) => {
                rows.iter().map($f).collect::<Vec<_>>()
            };
        }
        let session_uuid = column!(|r| r.session_uuid.as_str());
        let mobile = column!(|r| r.mobile);
        let tenant = column!(|r| r.tenant.as_deref());
        let token_hash = column!(|r| r.token_hash.as_slice());
        let auth_id = column!(|r| r.auth_id.as_str());
        let pbx = column!(|r| r.pbx_user_uuid.as_deref());
        let xivo = column!(|r| r.xivo_uuid.as_deref());
        let issued = column!(|r| r.issued_t);
        let expire = column!(|r| r.expire_t);
        let metadata = column!(|r| &r.metadata);
        let user_agent = column!(|r| r.user_agent.as_str());
        let remote_addr = column!(|r| r.remote_addr.as_str());
        let acl = column!(|r| Value::from(r.acl.clone()));
        let refresh = column!(|r| r.refresh_token_uuid.as_deref());
        let user_uuid = column!(|r| r.user_uuid.as_deref());
        client
            .exec_cached(
                stmt,
                &[
                    &session_uuid,
                    &mobile,
                    &tenant,
                    &token_hash,
                    &auth_id,
                    &pbx,
                    &xivo,
                    &issued,
                    &expire,
                    &metadata,
                    &user_agent,
                    &remote_addr,
                    &acl,
                    &refresh,
                    &user_uuid,
                ],
            )
            .await?;
        Ok(())
    }
}

/// Writes one login with [`INSERT_ONE`] on `client` (a connection, or a transaction).
pub(crate) async fn insert_row<C: Db>(client: &C, row: &Row) -> Result<()> {
    let stmt = INSERT_ONE;
    client
        .exec_cached(
            stmt,
            &[
                &row.session_uuid,
                &row.mobile,
                &row.tenant,
                &row.token_hash,
                &row.auth_id,
                &row.pbx_user_uuid,
                &row.xivo_uuid,
                &row.issued_t,
                &row.expire_t,
                &row.metadata,
                &row.user_agent,
                &row.remote_addr,
                &row.acl,
                &row.refresh_token_uuid,
                &row.user_uuid,
            ],
        )
        .await?;
    Ok(())
}

/// The writer task: takes the first waiting login, then every other already waiting (up to
/// [`MAX_BATCH`]), writes them, answers each, and starts over. Ends when its storage is gone.
pub(crate) async fn writer(storage: Storage, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Logins whose request went away need no answer, but are written all the same: they
        // may already be visible to nobody else, and writing costs nothing extra here.
        if batch.len() == 1 {
            let (row, reply) = batch.pop().expect("one job");
            let _ = reply.send(storage.insert_one(&row).await);
            continue;
        }
        let rows: Vec<&Row> = batch.iter().map(|(r, _)| r).collect();
        match storage.insert_many(&rows).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) if e.is_unreachable() => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                log::warn!("a grouped login write failed ({e}); writing its logins one by one");
                for (row, reply) in batch.drain(..) {
                    let _ = reply.send(storage.insert_one(&row).await);
                }
            }
        }
    }
}
