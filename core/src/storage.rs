//! PostgreSQL storage: connection pool and schema migrations.

use std::str::FromStr;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::error::{Error, Result};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Arbitrary but fixed key of the advisory lock that serialises migrations between several
/// server processes starting at once on one database.
const MIGRATION_LOCK_KEY: i64 = 0x7761_7a6f_6175_7468; // "wazoauth"

/// The database handle shared by the whole server.
#[derive(Clone)]
pub struct Storage {
    pool: Pool,
}

impl Storage {
    /// Builds a pool for `uri` (a `postgresql://` URL or a `key=value` connection string).
    /// Does not connect yet.
    pub fn new(uri: &str, max_size: usize) -> Result<Storage> {
        let mut pg_config = tokio_postgres::Config::from_str(uri)
            .map_err(|e| Error::Database(format!("invalid db_uri: {e}")))?;
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("wazo-auth");
        }
        pg_config.connect_timeout(Duration::from_secs(5));
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Database(e.to_string()))?;
        Ok(Storage { pool })
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

    /// Applies pending migrations (idempotent; safe when several processes start at once).
    pub async fn migrate(&self) -> Result<()> {
        let mut obj = self.pool.get().await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        let outcome = embedded::migrations::runner()
            .set_migration_table_name("wazo_auth_schema_history")
            .run_async(client)
            .await;
        let unlock = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        let report = outcome.map_err(|e| Error::Migration(e.to_string()))?;
        unlock?;
        for m in report.applied_migrations() {
            log::info!("applied migration {}", m);
        }
        Ok(())
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// The uuid of the top ("master") tenant, the one that is its own parent.
    pub async fn top_tenant_uuid(&self) -> Result<String> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1",
                &[],
            )
            .await?
            .ok_or_else(|| Error::Corrupt("no top tenant in auth_tenant".into()))?;
        Ok(row.get(0))
    }

    /// Cheap liveness check of the database.
    pub async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Whether `child` is `parent` or one of its descendants (the top tenant sees every existing
    /// tenant; a tenant that does not exist is never visible).
    pub async fn is_subtenant(&self, child: &str, parent: &str) -> Result<bool> {
        let client = self.client().await?;
        let row = client
            .query_one(
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
    /// The tenant of a user, if the user exists.
    pub async fn user_tenant(&self, user_uuid: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT tenant_uuid FROM auth_user WHERE uuid = $1",
                &[&user_uuid],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// `tenant` and all its descendants (the top tenant: every tenant). Empty when `tenant`
    /// does not exist.
    pub async fn tenant_and_descendants(&self, tenant: &str) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "WITH RECURSIVE down(uuid) AS (
                     SELECT uuid FROM auth_tenant WHERE uuid = $1
                     UNION
                     SELECT t.uuid FROM auth_tenant t JOIN down d ON t.parent_uuid = d.uuid
                 )
                 SELECT uuid FROM down",
                &[&tenant],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
