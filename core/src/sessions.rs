//! Sessions: one per token, listed and deleted by administrators and their owners.

use tokio_postgres::types::ToSql;

use crate::error::Result;
use crate::events::{self, Event};
use crate::scope::Listed;
use crate::sql::Db;
use crate::storage::Storage;
use crate::tally::{self, Tallied};

/// A session as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub uuid: String,
    pub mobile: bool,
    pub tenant_uuid: String,
    /// The token's auth_id when it is a UUID.
    pub user_uuid: Option<String>,
}

impl Storage {
    /// Sessions in `tenants` (of one user when given): `(total, page)`. With `order_mobile`
    /// (`Some(descending)`) they are ordered by `mobile`.
    pub(crate) async fn list_sessions(
        &self,
        tenants: &Listed,
        user_uuid: Option<&str>,
        order_mobile: Option<bool>,
        limit: Option<i64>,
        offset: i64,
    ) -> Result<(i64, Vec<Session>)> {
        let client = self.client().await?;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let mut conds = Vec::new();
        if let Some(t) = tenants.tenants() {
            params.push(t);
            conds.push(tenants.condition("s.tenant_uuid", &format!("${}", params.len())));
        }
        if let Some(u) = &user_uuid {
            params.push(u);
            conds.push(format!("t.auth_id = ${}", params.len()));
        }
        let filter = if conds.is_empty() {
            "TRUE".to_string()
        } else {
            conds.join(" AND ")
        };
        // Every token has a session (`session_uuid` is NOT NULL and a foreign key): without a
        // condition, the number of (session, token) pairs is the number of tokens, which the
        // tally keeps (migration V15) instead of a scan of every token.
        let total: i64 = if conds.is_empty() {
            tally::count(&*client, Tallied::Tokens).await?
        } else {
            let count_sql = format!(
                "SELECT count(*) FROM auth_session s JOIN auth_token t ON t.session_uuid = s.uuid
                 WHERE {filter}"
            );
            client.fetch_one(&count_sql, &params).await?.get(0)
        };
        let order = match order_mobile {
            Some(true) => "ORDER BY s.mobile DESC, s.created_at, s.uuid",
            Some(false) => "ORDER BY s.mobile ASC, s.created_at, s.uuid",
            None => "ORDER BY s.created_at, s.uuid",
        };
        let page = match limit {
            Some(l) => format!("LIMIT {l} OFFSET {offset}"),
            None => format!("OFFSET {offset}"),
        };
        let rows = client
            .fetch(
                &format!(
                    "SELECT s.uuid, s.mobile, s.tenant_uuid,
                            CASE WHEN t.auth_id ~ '^[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$'
                                 THEN t.auth_id END
                     FROM auth_session s JOIN auth_token t ON t.session_uuid = s.uuid
                     WHERE {filter} {order} {page}"
                ),
                &params,
            )
            .await?;
        Ok((
            total,
            rows.iter()
                .map(|r| Session {
                    uuid: r.get(0),
                    mobile: r.get(1),
                    tenant_uuid: r.get(2),
                    user_uuid: r.get(3),
                })
                .collect(),
        ))
    }

    /// Deletes a session (its tokens cascade) if it belongs to one of `tenants`, with its
    /// `auth_session_deleted` event (none for a session without a token, as the original).
    pub(crate) async fn delete_session(
        &self,
        session_uuid: &str,
        tenants: &[String],
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The statement's snapshot still sees the tokens the deletion cascades to.
        let row = tx
            .fetch_opt(
                "WITH d AS (
                     DELETE FROM auth_session WHERE uuid = $1 AND tenant_uuid = ANY($2)
                     RETURNING uuid, tenant_uuid)
                 SELECT d.tenant_uuid,
                        (SELECT t.auth_id FROM auth_token t WHERE t.session_uuid = d.uuid LIMIT 1)
                 FROM d",
                &[&session_uuid, &tenants],
            )
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        if let Some(auth_id) = row.get::<_, Option<&str>>(1) {
            let event = Event::session_deleted(session_uuid, row.get(0), Some(auth_id));
            events::record(&tx, &[event]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
