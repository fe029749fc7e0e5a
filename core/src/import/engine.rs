//! The writer of the import: one kind of row at a time, in batches, each batch under a savepoint.
//! A batch the target refuses is retried row by row, so that a bad row is reported alone and
//! never half-written, and the good rows around it still go in.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;

use super::{Counts, Skipped};
use crate::error::{Error, Result};
use crate::sql::Db;

/// Rows per statement.
const BATCH: usize = 1000;

/// The SQL type of a column, as sent (`unnest($n::<type>[])`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Text,
    Bool,
    Float,
    Json,
    Bytes,
}

impl Ty {
    fn sql(self) -> &'static str {
        match self {
            Ty::Text => "text",
            Ty::Bool => "bool",
            Ty::Float => "float8",
            Ty::Json => "jsonb",
            Ty::Bytes => "bytea",
        }
    }
}

/// A target column: its name, the type it is sent as, and the expression that turns the sent
/// value (`x.<name>`) into the stored one, when they differ.
#[derive(Debug, Clone, Copy)]
pub(super) struct Col {
    pub name: &'static str,
    pub ty: Ty,
    pub expr: Option<&'static str>,
}

pub(super) const fn col(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        expr: None,
    }
}

pub(super) const fn col_as(name: &'static str, ty: Ty, expr: &'static str) -> Col {
    Col {
        name,
        ty,
        expr: Some(expr),
    }
}

/// One value of a row, in the order of the kind's columns.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell {
    Text(Option<String>),
    Bool(bool),
    Float(f64),
    Json(Value),
    Bytes(Option<Vec<u8>>),
}

/// A row ready to write.
#[derive(Debug, Clone)]
pub(super) struct Row {
    /// Its key in the import state (never a secret).
    pub key: String,
    /// How the report names it.
    pub label: String,
    /// The digest of the source row it comes from.
    pub digest: [u8; 32],
    pub cells: Vec<Cell>,
}

/// The digest of a source row's fields.
pub(super) fn digest(fields: &[Option<String>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for f in fields {
        match f {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    h.finalize().into()
}

/// How one kind is written.
pub(super) struct Spec {
    pub kind: &'static str,
    pub table: &'static str,
    pub cols: Vec<Col>,
    /// The columns of the conflict target (a unique constraint of the table).
    pub conflict: &'static [&'static str],
    /// Columns written on insert only (e.g. a uuid made here).
    pub insert_only: &'static [&'static str],
    /// A statement deleting the rows whose keys are in `$1` (text[]).
    pub delete: String,
}

impl Spec {
    fn upsert_sql(&self) -> String {
        let names: Vec<&str> = self.cols.iter().map(|c| c.name).collect();
        let params: Vec<String> = self
            .cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}[]", i + 1, c.ty.sql()))
            .collect();
        let exprs: Vec<String> = self
            .cols
            .iter()
            .map(|c| c.expr.map_or(format!("x.{}", c.name), str::to_string))
            .collect();
        let updated: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !self.conflict.contains(n) && !self.insert_only.contains(n))
            .collect();
        let on_conflict = if updated.is_empty() {
            "DO NOTHING".to_string()
        } else {
            let set: Vec<String> = updated
                .iter()
                .map(|n| format!("{n} = EXCLUDED.{n}"))
                .collect();
            let old: Vec<String> = updated
                .iter()
                .map(|n| format!("{}.{n}", self.table))
                .collect();
            let new: Vec<String> = updated.iter().map(|n| format!("EXCLUDED.{n}")).collect();
            format!(
                "DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})",
                set.join(", "),
                old.join(", "),
                new.join(", ")
            )
        };
        format!(
            "INSERT INTO {table} ({names}) SELECT {exprs} FROM unnest({params}) AS x({names})
             ON CONFLICT ({conflict}) {on_conflict} RETURNING (xmax = 0)",
            table = self.table,
            names = names.join(", "),
            exprs = exprs.join(", "),
            params = params.join(", "),
            conflict = self.conflict.join(", "),
        )
    }
}

/// Column-wise values of a batch, as statement parameters.
enum Column {
    Text(Vec<Option<String>>),
    Bool(Vec<bool>),
    Float(Vec<f64>),
    Json(Vec<Value>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Column {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(v) => v,
            Column::Bool(v) => v,
            Column::Float(v) => v,
            Column::Json(v) => v,
            Column::Bytes(v) => v,
        }
    }
}

fn columns(spec: &Spec, rows: &[&Row]) -> std::result::Result<Vec<Column>, String> {
    let mut out: Vec<Column> = spec
        .cols
        .iter()
        .map(|c| match c.ty {
            Ty::Text => Column::Text(Vec::with_capacity(rows.len())),
            Ty::Bool => Column::Bool(Vec::with_capacity(rows.len())),
            Ty::Float => Column::Float(Vec::with_capacity(rows.len())),
            Ty::Json => Column::Json(Vec::with_capacity(rows.len())),
            Ty::Bytes => Column::Bytes(Vec::with_capacity(rows.len())),
        })
        .collect();
    for row in rows {
        if row.cells.len() != out.len() {
            return Err(format!(
                "{}: row {} has the wrong shape",
                spec.kind, row.label
            ));
        }
        for (cell, column) in row.cells.iter().zip(out.iter_mut()) {
            match (cell, column) {
                (Cell::Text(v), Column::Text(c)) => c.push(v.clone()),
                (Cell::Bool(v), Column::Bool(c)) => c.push(*v),
                (Cell::Float(v), Column::Float(c)) => c.push(*v),
                (Cell::Json(v), Column::Json(c)) => c.push(v.clone()),
                (Cell::Bytes(v), Column::Bytes(c)) => c.push(v.clone()),
                _ => {
                    return Err(format!(
                        "{}: row {} has the wrong shape",
                        spec.kind, row.label
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// Whether the target refused the data (the row is reported and skipped) rather than failed
/// (the import stops): integrity violations (class 23) and data exceptions (class 22).
fn refused_row(e: &tokio_postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    let code = db.code().code();
    if !(code.starts_with("23") || code.starts_with("22")) {
        return None;
    }
    let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
    Some(if code == "23503" {
        format!("it depends on a row that is not in the target{detail}")
    } else {
        format!("the target refused it: {}{detail}", db.message())
    })
}

/// Writes `rows` of `spec`: rows whose source is unchanged since the last import (same digest in
/// `state`) are left alone; the others are upserted. Returns the `(key, digest)` of the rows
/// written, for the import state.
pub(super) async fn write(
    tx: &mut Transaction<'_>,
    spec: &Spec,
    rows: &[Row],
    state: &HashMap<String, [u8; 32]>,
    counts: &mut Counts,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<(String, [u8; 32])>> {
    let sql = spec.upsert_sql();
    let statement = &sql;
    let mut seen = HashSet::new();
    let mut todo: Vec<&Row> = Vec::new();
    for row in rows {
        if !seen.insert(row.key.as_str()) {
            counts.skipped += 1;
            skipped.push(Skipped::new(
                spec.kind,
                &row.label,
                "the source holds another row with the same key; the first one is imported",
            ));
        } else if state.get(&row.key) == Some(&row.digest) {
            counts.unchanged += 1;
        } else {
            todo.push(row);
        }
    }
    let mut written = Vec::with_capacity(todo.len());
    for batch in todo.chunks(BATCH) {
        let cols = columns(spec, batch).map_err(Error::Corrupt)?;
        let params: Vec<&(dyn ToSql + Sync)> = cols.iter().map(Column::param).collect();
        let attempt = {
            let sp = tx.savepoint("import_batch").await?;
            match sp.fetch(statement, &params).await {
                Ok(result) => {
                    sp.commit().await?;
                    Ok(result)
                }
                Err(e) => {
                    sp.rollback().await?;
                    Err(e)
                }
            }
        };
        match attempt {
            Ok(result) => {
                tally(counts, batch.len(), &result);
                written.extend(batch.iter().map(|r| (r.key.clone(), r.digest)));
            }
            Err(e) => {
                if refused_row(&e).is_none() {
                    return Err(e.into());
                }
                // Find the rows the target refuses, one at a time.
                for row in batch {
                    let cols = columns(spec, std::slice::from_ref(row)).map_err(Error::Corrupt)?;
                    let params: Vec<&(dyn ToSql + Sync)> = cols.iter().map(Column::param).collect();
                    let sp = tx.savepoint("import_row").await?;
                    match sp.fetch(statement, &params).await {
                        Ok(result) => {
                            sp.commit().await?;
                            tally(counts, 1, &result);
                            written.push((row.key.clone(), row.digest));
                        }
                        Err(e) => {
                            sp.rollback().await?;
                            let Some(reason) = refused_row(&e) else {
                                return Err(e.into());
                            };
                            counts.skipped += 1;
                            skipped.push(Skipped::new(spec.kind, &row.label, &reason));
                        }
                    }
                }
            }
        }
    }
    Ok(written)
}

fn tally(counts: &mut Counts, sent: usize, result: &[tokio_postgres::Row]) {
    let inserted = result.iter().filter(|r| r.get::<_, bool>(0)).count();
    let updated = result.len() - inserted;
    counts.inserted += inserted as u64;
    counts.updated += updated as u64;
    counts.unchanged += (sent - result.len()) as u64;
}

/// Deletes the rows of `keys` (imported before, gone from the source). Returns how many were
/// still there, or why the target refused to delete them (e.g. a tenant made here since still
/// has a sub-tenant): then nothing of this kind is removed.
pub(super) async fn remove(
    tx: &mut Transaction<'_>,
    spec: &Spec,
    keys: &[String],
) -> Result<std::result::Result<u64, String>> {
    let sp = tx.savepoint("import_remove").await?;
    let mut removed = 0;
    for chunk in keys.chunks(BATCH * 10) {
        let chunk: Vec<String> = chunk.to_vec();
        let done = match sp.exec(spec.delete.as_str(), &[&chunk]).await {
            Ok(n) => sp
                .exec(
                    "DELETE FROM auth_import_state WHERE kind = $1 AND key = ANY($2)",
                    &[&spec.kind, &chunk],
                )
                .await
                .map(|_| n),
            Err(e) => Err(e),
        };
        match done {
            Ok(n) => removed += n,
            Err(e) => {
                sp.rollback().await?;
                return match refused_row(&e) {
                    Some(reason) => Ok(Err(reason)),
                    None => Err(e.into()),
                };
            }
        }
    }
    sp.commit().await?;
    Ok(Ok(removed))
}

/// Records the digests of the rows written.
pub(super) async fn save_state(
    tx: &Transaction<'_>,
    kind: &str,
    written: &[(String, [u8; 32])],
) -> Result<()> {
    for chunk in written.chunks(BATCH * 10) {
        let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let digests: Vec<&[u8]> = chunk.iter().map(|(_, d)| d.as_slice()).collect();
        tx.exec(
            "INSERT INTO auth_import_state (kind, key, digest)
             SELECT $1, k, d FROM unnest($2::text[], $3::bytea[]) AS x(k, d)
             ON CONFLICT (kind, key) DO UPDATE SET digest = EXCLUDED.digest, imported_at = now()",
            &[&kind, &keys, &digests],
        )
        .await?;
    }
    Ok(())
}

/// The import state of `kind`: key → digest of the source row last imported.
pub(super) async fn load_state(
    tx: &Transaction<'_>,
    kind: &str,
) -> Result<HashMap<String, [u8; 32]>> {
    let rows = tx
        .fetch(
            "SELECT key, digest FROM auth_import_state WHERE kind = $1",
            &[&kind],
        )
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let key: String = r.get(0);
        let d: Vec<u8> = r.get(1);
        if let Ok(d) = <[u8; 32]>::try_from(d.as_slice()) {
            out.insert(key, d);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_tell_fields_apart() {
        let a = digest(&[Some("ab".into()), Some("c".into())]);
        let b = digest(&[Some("a".into()), Some("bc".into())]);
        let c = digest(&[None, Some("abc".into())]);
        let d = digest(&[Some(String::new()), Some("abc".into())]);
        assert_ne!(a, b);
        assert_ne!(c, d);
        assert_eq!(a, digest(&[Some("ab".into()), Some("c".into())]));
    }

    #[test]
    fn upsert_statement_updates_only_what_changed() {
        let spec = Spec {
            kind: "groups",
            table: "auth_group",
            cols: vec![
                col("uuid", Ty::Text),
                col("name", Ty::Text),
                col_as(
                    "acl",
                    Ty::Json,
                    "ARRAY(SELECT jsonb_array_elements_text(x.acl))",
                ),
            ],
            conflict: &["uuid"],
            insert_only: &[],
            delete: String::new(),
        };
        let sql = spec.upsert_sql();
        assert!(sql.contains("unnest($1::text[], $2::text[], $3::jsonb[]) AS x(uuid, name, acl)"));
        assert!(sql
            .contains("ON CONFLICT (uuid) DO UPDATE SET name = EXCLUDED.name, acl = EXCLUDED.acl"));
        assert!(sql.contains("WHERE (auth_group.name, auth_group.acl) IS DISTINCT FROM"));
        let assoc = Spec {
            kind: "user_groups",
            table: "auth_user_group",
            cols: vec![col("group_uuid", Ty::Text), col("user_uuid", Ty::Text)],
            conflict: &["group_uuid", "user_uuid"],
            insert_only: &[],
            delete: String::new(),
        };
        assert!(assoc
            .upsert_sql()
            .contains("DO NOTHING RETURNING (xmax = 0)"));
    }
}
