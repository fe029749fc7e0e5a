//! Grouped look-ups of the tokens the cache misses. Each miss alone costs the database a
//! statement (bind, execute, a round trip, a wake-up of the connection task): under a flood of
//! misses (a restart of the services that hold many tokens, a cache too small for the live set),
//! that per-statement cost is most of the work. Here the misses that arrive while a look-up is
//! in flight wait for the next one, which reads them all with one statement
//! ([`lookup_statement`]): a miss arriving when nothing is in flight is read at once, alone, so
//! that nobody waits on purpose.
//!
//! One reader task per [`Storage`] and its clones, started on first use on the runtime of that
//! first caller; the server's per-worker storages share one ([`Storage::share_batchers`]), as
//! they share the login writer (`crate::login_batch`). A failed statement fails the look-ups of
//! its group with the same error: a read has no row that could fail the others.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::sql::{Db, Param};
use crate::storage::Storage;

/// The most tokens read by one statement.
const MAX_BATCH: usize = 64;

/// One miss: the token's hash, and where its row (if any) goes. The row has the columns of
/// [`crate::tokens::VALID_TOKEN_SQL`], then the hash.
pub(crate) type Job = (Vec<u8>, oneshot::Sender<Result<Option<Arc<Row>>>>);

/// The statement that reads the rows of `len` hashes (1 to [`MAX_BATCH`]) whatever their expiry,
/// and its number of parameters: [`crate::tokens::VALID_TOKEN_SQL`]'s columns, then the hash (to
/// give each its own). There is one statement per size of [`SIZES`], each with that many
/// parameters; a group is read by the smallest that holds it, its last hash repeated in the
/// parameters left over (the index scan reads each hash once).
///
/// Not one statement with an array parameter (`token_hash = ANY($1)`): PostgreSQL then planned
/// every execution again, because its generic plan, which assumes ten elements, looked dearer
/// than the custom plans of the usual smaller groups. Planning was a fifth of its CPU per miss
/// at `SCALE=1` (docs/benchmarks.md, "Issue 20: session 15"). With a fixed number of
/// parameters, its generic plan costs what the custom ones do, and is kept from the sixth
/// execution on each connection. (Behind a transaction pooler, statements run unnamed and are
/// planned at each execution whatever their form.)
fn lookup_statement(len: usize) -> (&'static str, usize) {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        SIZES
            .iter()
            .map(|&n| {
                let params: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
                format!(
                    "SELECT {}, token_hash FROM auth_token WHERE token_hash IN ({})",
                    crate::tokens::token_columns!(),
                    params.join(", ")
                )
            })
            .collect()
    });
    // The smallest that holds `len` (the last holds MAX_BATCH).
    let at = SIZES
        .iter()
        .position(|&n| n >= len)
        .unwrap_or(SIZES.len() - 1);
    (texts[at].as_str(), SIZES[at])
}

/// The numbers of parameters of the look-up statements ([`lookup_statement`]); the last is
/// [`MAX_BATCH`].
const SIZES: [usize; 7] = [1, 2, 4, 8, 16, 32, MAX_BATCH];

/// The column of the hash in the look-up statements ([`lookup_statement`]).
const HASH_COLUMN: usize = 11;

impl Storage {
    /// The row of the token of `hash` whatever its expiry (columns of
    /// [`crate::tokens::VALID_TOKEN_SQL`]), read with the other misses in flight.
    pub(crate) async fn lookup_token_row(&self, hash: Vec<u8>) -> Result<Option<Arc<Row>>> {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError((hash, _))) = self.token_reader().send((hash, tx)) {
            // The reader's runtime is gone (shutdown): read directly.
            let mut rows = self.lookup_many(&[hash.as_slice()]).await?;
            return Ok(rows.pop().map(Arc::new));
        }
        rx.await
            .unwrap_or_else(|_| Err(Error::database("the token reader stopped")))
    }

    /// The rows of `hashes`, in one statement for each [`MAX_BATCH`] of them.
    async fn lookup_many(&self, hashes: &[&[u8]]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let mut rows = Vec::with_capacity(hashes.len());
        for group in hashes.chunks(MAX_BATCH) {
            let Some(last) = group.last() else {
                continue;
            };
            let (sql, size) = lookup_statement(group.len());
            let params: Vec<Param<'_>> = group
                .iter()
                .chain(std::iter::repeat(last))
                .take(size)
                .map(|h| h as Param<'_>)
                .collect();
            rows.extend(client.fetch_cached(sql, &params).await?);
        }
        Ok(rows)
    }
}

/// The reader task: takes the first waiting miss, then every other already waiting (up to
/// [`MAX_BATCH`]), reads them with one statement, answers each, and starts over. Ends when its
/// storage is gone.
pub(crate) async fn reader(storage: Storage, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let hashes: Vec<&[u8]> = batch.iter().map(|(h, _)| h.as_slice()).collect();
        match storage.lookup_many(&hashes).await {
            Ok(rows) => {
                // Two misses of one token in a group share its row. A row whose hash cannot be
                // read fails the group (it must not make a token look unknown).
                let found: std::result::Result<HashMap<Vec<u8>, Arc<Row>>, _> = rows
                    .into_iter()
                    .map(|row| {
                        let hash = row.try_get::<_, Vec<u8>>(HASH_COLUMN)?;
                        Ok::<_, tokio_postgres::Error>((hash, Arc::new(row)))
                    })
                    .collect();
                match found {
                    Ok(found) => {
                        for (hash, reply) in batch.drain(..) {
                            let _ = reply.send(Ok(found.get(&hash).cloned()));
                        }
                    }
                    Err(e) => {
                        let e = Error::from(e);
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
            Err(e) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
