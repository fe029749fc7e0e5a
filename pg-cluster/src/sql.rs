//! Database creation (async, on a private runtime) and the quoting of connection strings,
//! identifiers and configuration values.

pub(crate) async fn create_database_if_missing(
    admin_conn: &str,
    dbname: &str,
) -> Result<bool, String> {
    let (client, connection) = tokio_postgres::connect(admin_conn, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let conn_task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("pg_cluster admin connection: {e}");
        }
    });
    let result = async {
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&dbname])
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if exists {
            return Ok(false);
        }
        let sql = format!("CREATE DATABASE {}", quote_ident(dbname));
        log::debug!("pg_cluster: {sql}");
        match client.batch_execute(&sql).await {
            Ok(()) => Ok(true),
            // Created concurrently by someone else.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {
                Ok(false)
            }
            Err(e) => Err(e.to_string()),
        }
    }
    .await;
    drop(client);
    let _ = conn_task.await;
    result
}

pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Value for a libpq-style `key=value` connection string.
pub(crate) fn conn_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_owned();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// A quoted string for postgresql.conf.
pub(crate) fn conf_string(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}
