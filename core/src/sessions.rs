//! Sessions: one per token, listed and deleted by administrators and their owners.

use crate::error::Result;
use crate::events::{self, Event};
use crate::storage::Storage;

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
        tenants: &[String],
        user_uuid: Option<&str>,
        order_mobile: Option<bool>,
        limit: Option<i64>,
        offset: i64,
    ) -> Result<(i64, Vec<Session>)> {
        let client = self.client().await?;
        let filter = "s.tenant_uuid = ANY($1) AND ($2::text IS NULL OR t.auth_id = $2)";
        let total: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM auth_session s JOIN auth_token t ON t.session_uuid = s.uuid
                     WHERE {filter}"
                ),
                &[&tenants, &user_uuid],
            )
            .await?
            .get(0);
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
            .query(
                &format!(
                    "SELECT s.uuid, s.mobile, s.tenant_uuid,
                            CASE WHEN t.auth_id ~ '^[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$'
                                 THEN t.auth_id END
                     FROM auth_session s JOIN auth_token t ON t.session_uuid = s.uuid
                     WHERE {filter} {order} {page}"
                ),
                &[&tenants, &user_uuid],
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
            .query_opt(
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
