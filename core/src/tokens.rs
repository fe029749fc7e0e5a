//! Tokens and their sessions.

use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::events::{self, Event};
use crate::sql::Db;
use crate::storage::Storage;

/// A token as stored and returned by the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token id (a random UUIDv4: 122 bits from the OS CSPRNG).
    pub token: Uuid,
    pub auth_id: String,
    pub pbx_user_uuid: Option<String>,
    pub xivo_uuid: Option<String>,
    /// Epoch seconds (with microseconds).
    pub issued_t: f64,
    pub expire_t: f64,
    pub metadata: Metadata,
    pub session_uuid: String,
    pub user_agent: String,
    pub remote_addr: String,
    /// Shared with the other cached tokens of the same ACL ([`crate::acl::AclInterner`]).
    pub acl: Arc<[String]>,
    pub refresh_token_uuid: Option<String>,
}

/// A token's metadata (a JSON object), kept as its compact JSON text, keys sorted: the bytes the
/// token's rendering writes. A cached token keeps it for its whole life and it is only ever
/// rendered or asked for a key or two, so this is about a fifth of the memory of a parsed map
/// (whose B-tree node alone is 640 bytes); a key is read by parsing the text.
#[derive(Debug, Clone)]
pub struct Metadata(Box<serde_json::value::RawValue>);

impl Metadata {
    /// `map`'s JSON.
    pub fn from_map(map: &serde_json::Map<String, Value>) -> Metadata {
        // Writing a map of JSON values does not fail.
        match serde_json::value::to_raw_value(map) {
            Ok(raw) => Metadata(raw),
            Err(_) => Metadata::default(),
        }
    }

    /// The value of `key`, if the metadata has it. Only that value is built: the other keys are
    /// compared in place and their values skipped, so a `?tenant=` check reading `tenant_uuid`
    /// allocates one string, not the whole map.
    pub fn get(&self, key: &str) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_str(self.0.get());
        serde::de::DeserializeSeed::deserialize(FindKey(key), &mut de)
            .ok()
            .flatten()
    }

    /// The metadata, parsed.
    pub fn to_map(&self) -> serde_json::Map<String, Value> {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// Its JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }
}

/// Reads one key's value out of a JSON object (the last one, if the key is repeated, as a parsed
/// map would keep).
struct FindKey<'k>(&'k str);

impl<'de> serde::de::DeserializeSeed<'de> for FindKey<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Option<Value>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FindKey<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Option<Value>, A::Error> {
        let mut found = None;
        while let Some(is_key) = map.next_key_seed(KeyIs(self.0))? {
            if is_key {
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Whether a JSON object's key is the one sought, compared without copying it.
struct KeyIs<'k>(&'k str);

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<bool, E> {
        Ok(v == self.0)
    }
}

impl Default for Metadata {
    fn default() -> Metadata {
        Metadata(serde_json::value::RawValue::from_string("{}".to_owned()).unwrap_or_default())
    }
}

impl From<serde_json::Map<String, Value>> for Metadata {
    fn from(map: serde_json::Map<String, Value>) -> Metadata {
        Metadata::from_map(&map)
    }
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Metadata) -> bool {
        self.0.get() == other.0.get()
    }
}

impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// What a login asks to be stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub auth_id: String,
    pub pbx_user_uuid: Option<String>,
    pub xivo_uuid: Option<String>,
    pub issued_t: f64,
    pub expire_t: f64,
    pub metadata: serde_json::Map<String, Value>,
    pub user_agent: String,
    pub remote_addr: String,
    pub acl: Vec<String>,
    pub mobile: bool,
    /// Session tenant; `None` = the top tenant.
    pub tenant_uuid: Option<String>,
    /// When set, the login is refused with [`Error::SessionLimit`] if `auth_id` already has that
    /// many live (unexpired) tokens. Checked and inserted under a per-`auth_id` lock, so
    /// concurrent logins can never exceed it.
    pub session_limit: Option<u32>,
    /// An offline login: issue (or reuse) a refresh token in the same transaction.
    pub offline: Option<crate::refresh_tokens::OfflineRequest>,
    /// A refresh-token login: the refresh token row used.
    pub refresh_token_uuid: Option<String>,
}

/// The result of a login.
#[derive(Debug, Clone)]
pub struct Created {
    pub token: Token,
    /// The refresh token value of an offline login.
    pub refresh_token: Option<String>,
    /// Sessions ended by this login (mobile refresh-token rules).
    pub sessions_revoked: u64,
}

/// The database key of a token id: SHA-256 of its canonical text form.
pub fn token_hash(token: &Uuid) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(token.hyphenated().to_string().as_bytes());
    h.finalize().to_vec()
}

/// A log-safe form of a token id: its first 8 characters.
pub fn redact(token: &str) -> String {
    let visible: String = token.chars().take(8).collect();
    format!("{visible}-XXXX-XXXX-XXXX-XXXXXXXXXXXX")
}

/// The current time as epoch seconds.
pub fn now() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() as f64 + f64::from(d.subsec_micros()) / 1e6
}

/// The uuid of a new session: a version 7 uuid (RFC 9562), which begins with the time of its
/// creation, so that sessions sort by age. A login then adds its session at the end of the
/// indexes on session uuids (`auth_session`'s key, `auth_token (session_uuid)`) instead of in a
/// random page of them, and the purge removes sessions that sit together: on a big database
/// (docs/benchmarks.md, "Issue 20: session 15"), a login reads and writes one page at random
/// (its token's hash) instead of three. Clients see a uuid like any other (the original makes
/// version 4 ones; both kinds live side by side in an imported database). A session uuid is
/// not a secret, and its time is already the session's `created_at`; tokens stay version 4,
/// wholly random.
pub fn new_session_uuid() -> String {
    Uuid::now_v7().hyphenated().to_string()
}

fn is_uuid_text(s: &str) -> bool {
    Uuid::parse_str(s).is_ok()
}

impl Storage {
    /// Creates a session and its token (and, for an offline login, the refresh token)
    /// atomically: a plain login in the worker's next grouped write (`crate::login_batch`), a
    /// session-limited or offline one in its own transaction.
    pub async fn create_token(
        &self,
        new: NewToken,
        keyring: &crate::keys::Keyring,
    ) -> Result<Created> {
        let token = Uuid::new_v4();
        let session_uuid = new_session_uuid();
        // The common login (no session limit, no refresh token) is one statement, atomic on
        // its own; the others need a transaction.
        let simple = new.session_limit.is_none() && new.offline.is_none();
        let mut refresh_value = None;
        let mut sessions_revoked = 0;
        let mut refresh_token_uuid = new.refresh_token_uuid.clone();
        // A tenant that does not exist (e.g. a plugin's metadata naming an unknown tenant) falls
        // back to the top tenant rather than failing the login with a foreign-key error.
        let tenant = new
            .tenant_uuid
            .as_deref()
            .filter(|t| is_uuid_text(t))
            .map(String::from);
        let mut row = crate::login_batch::Row {
            session_uuid: session_uuid.clone(),
            mobile: new.mobile,
            tenant,
            token_hash: token_hash(&token),
            auth_id: new.auth_id.clone(),
            pbx_user_uuid: new.pbx_user_uuid.clone(),
            xivo_uuid: new.xivo_uuid.clone(),
            issued_t: new.issued_t,
            expire_t: new.expire_t,
            metadata: Value::Object(new.metadata.clone()),
            user_agent: new.user_agent.clone(),
            remote_addr: new.remote_addr.clone(),
            acl: new.acl.clone(),
            refresh_token_uuid: refresh_token_uuid.clone(),
            user_uuid: crate::events::user_uuid_of(&new.auth_id).map(String::from),
        };
        if simple {
            // Grouped with the other logins in flight (group commit, `crate::login_batch`).
            self.insert_login(row).await?;
        } else {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if let Some(limit) = new.session_limit {
                tx.exec(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
                    &[&new.auth_id],
                )
                .await?;
                let live: i64 = tx
                    .fetch_one(
                        "SELECT count(*) FROM auth_token WHERE auth_id = $1 AND expire_t >= $2",
                        &[&new.auth_id, &new.issued_t],
                    )
                    .await?
                    .get(0);
                if live >= i64::from(limit) {
                    return Err(Error::SessionLimit);
                }
            }
            if let Some(offline) = &new.offline {
                let (uuid, value, revoked) =
                    crate::refresh_tokens::issue(&tx, keyring, offline).await?;
                row.refresh_token_uuid = Some(uuid.clone());
                refresh_token_uuid = Some(uuid);
                refresh_value = Some(value);
                sessions_revoked = revoked;
            }
            crate::login_batch::insert_row(&tx, &row).await?;
            tx.commit().await?;
        }
        let token = Token {
            token,
            auth_id: new.auth_id,
            pbx_user_uuid: new.pbx_user_uuid,
            xivo_uuid: new.xivo_uuid,
            issued_t: new.issued_t,
            expire_t: new.expire_t,
            metadata: Metadata::from_map(&new.metadata),
            session_uuid,
            user_agent: new.user_agent,
            remote_addr: new.remote_addr,
            acl: new.acl.into(),
            refresh_token_uuid,
        };
        Ok(Created {
            token,
            refresh_token: refresh_value,
            sessions_revoked,
        })
    }

    /// Looks up a token that has not expired at `now`.
    pub async fn get_valid_token(&self, token: &Uuid, now: f64) -> Result<Option<Token>> {
        let client = self.client().await?;
        let row = client
            .fetch_opt_cached(VALID_TOKEN_SQL, &[&token_hash(token), &now])
            .await?;
        Ok(row.map(|row| token_of_row(token, &row)))
    }

    /// Looks up a token whatever its expiry (the cache's misses, so that an expired token is
    /// cached as such), grouped with the other look-ups in flight (`crate::lookup_batch`).
    pub async fn lookup_token(&self, token: &Uuid) -> Result<Option<Token>> {
        let row = self.lookup_token_row(token_hash(token)).await?;
        Ok(row.map(|row| token_of_row(token, &row)))
    }

    /// Deletes a token, and its session when no other token uses it (with its
    /// `auth_session_deleted` event). Returns whether a token was deleted.
    pub async fn delete_token(&self, token: &Uuid) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .fetch_opt(
                "DELETE FROM auth_token WHERE token_hash = $1 RETURNING session_uuid, auth_id",
                &[&token_hash(token)],
            )
            .await?;
        let Some(row) = deleted else {
            tx.commit().await?;
            return Ok(false);
        };
        let session: String = row.get(0);
        let auth_id: String = row.get(1);
        let ended = tx
            .fetch_opt(
                "DELETE FROM auth_session s WHERE s.uuid = $1
                   AND NOT EXISTS (SELECT 1 FROM auth_token t WHERE t.session_uuid = s.uuid)
                 RETURNING tenant_uuid",
                &[&session],
            )
            .await?;
        if let Some(ended) = ended {
            let tenant: String = ended.get(0);
            let event = Event::session_deleted(&session, &tenant, Some(&auth_id));
            events::record(&tx, &[event]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes up to `batch` expired tokens (and their sessions), with the sessions'
    /// `auth_session_deleted` events, in one statement ([`PURGE_BATCH_SQL`]): its transaction
    /// lasts the statement only, with no round trip inside it during which the batch's rows
    /// stay locked. Rows locked by another server process purging at the same time are
    /// skipped, never deleted twice. Only tokens that expired at `from` or later are looked at:
    /// the caller passes the latest expiry of its previous batch (see [`PurgedBatch::last`]).
    pub async fn purge_expired_batch(
        &self,
        now: f64,
        batch: i64,
        from: f64,
    ) -> Result<PurgedBatch> {
        let client = self.client().await?;
        let rows = client
            .fetch(PURGE_BATCH_SQL, &[&now, &batch, &from])
            .await?;
        Ok(PurgedBatch {
            sessions: rows.iter().map(|r| r.get(0)).collect(),
            last: rows.iter().map(|r| r.get::<_, f64>(1)).reduce(f64::max),
        })
    }

    /// Writes an `auth_session_expire_soon` event for every session whose token expires in
    /// `[since, until)`, in one transaction, `batch` sessions per statement. `since` is the
    /// `until` of the previous window, by whichever server process wrote it
    /// (`auth_cleanup_state.expire_soon_until`, locked for the transaction; none yet: from now,
    /// so that the expired sessions that a purge capped by time or rate left behind are not
    /// announced as expiring soon: the original purges them unannounced before its first
    /// announcement): the windows follow each other across processes, so a
    /// session is announced once, and none is skipped when a run starts late. A window that
    /// ends before the previous one writes nothing. Returns how many were written.
    pub async fn notify_expire_soon(&self, until: f64, batch: i64) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let since: Option<f64> = tx
            .fetch_one(
                "SELECT expire_soon_until FROM auth_cleanup_state FOR UPDATE",
                &[],
            )
            .await?
            .get(0);
        if since.is_some_and(|since| since >= until) {
            tx.commit().await?;
            return Ok(0);
        }
        let mut total = 0;
        // The scan starts at `since` (`t.expire_t >= $2`, which the index on `expire_t` takes,
        // unlike the row comparison across the join): below it lie the rows just purged, whose
        // dead index entries a scan from the start read one by one (4.2 s after a purge of
        // 500 k sessions).
        let mut after: (f64, String) = (since.unwrap_or_else(now), String::new());
        loop {
            let rows = tx
                .fetch(
                    "SELECT t.expire_t, s.uuid, s.tenant_uuid, t.auth_id
                     FROM auth_token t JOIN auth_session s ON s.uuid = t.session_uuid
                     WHERE t.expire_t < $1 AND t.expire_t >= $2
                       AND (t.expire_t, s.uuid) > ($2, $3)
                     ORDER BY t.expire_t, s.uuid
                     LIMIT $4",
                    &[&until, &after.0, &after.1, &batch],
                )
                .await?;
            let soon: Vec<Event> = rows
                .iter()
                .map(|r| Event::session_expire_soon(r.get(1), r.get(2), Some(r.get(3))))
                .collect();
            events::record(&tx, &soon).await?;
            total += rows.len();
            match rows.last() {
                Some(last) if (rows.len() as i64) >= batch => after = (last.get(0), last.get(1)),
                _ => break,
            }
        }
        tx.exec(
            "UPDATE auth_cleanup_state SET expire_soon_until = $1",
            &[&until],
        )
        .await?;
        tx.commit().await?;
        Ok(total)
    }

    /// Runs purge batches until a batch comes back smaller than asked, or until `pace.until`.
    /// Returns the number of sessions removed, and whether the purge stopped at `pace.until`
    /// with expired sessions left. A batch holds its rows' locks until it commits, so batches
    /// are sized by time: at most `batch` sessions, and fewer while batches take longer than
    /// [`PURGE_BATCH_TARGET`] (see [`next_purge_batch`]). `size` is the first batch's size, and
    /// is left at the size the next batch would have had: the caller hands it to its next run,
    /// which then starts at the size that this one found (a run that started at `batch` every
    /// time held its first batch's locks for seconds on a loaded server). With a `pace.max_rate`,
    /// batches are at most a tenth of a second's worth, and each is followed by a rest that
    /// keeps the purge at that many sessions per second ([`PurgePace`]). `on_batch` is told how
    /// long each batch took.
    pub async fn purge_expired(
        &self,
        now: f64,
        batch: i64,
        size: &mut i64,
        pace: PurgePace,
        mut on_batch: impl FnMut(std::time::Duration),
    ) -> Result<(usize, bool)> {
        let mut total = 0;
        let batch = pace.batch_cap(batch);
        *size = (*size).clamp(1, batch);
        // Each batch starts its scan of the `expire_t` index where the previous one ended:
        // below lie the entries of the tokens this run deleted, dead until a vacuum removes
        // them, which a scan from the start would walk again at every batch.
        let mut from = f64::NEG_INFINITY;
        loop {
            let started = std::time::Instant::now();
            let batch_rows = self.purge_expired_batch(now, *size, from).await?;
            let took = started.elapsed();
            on_batch(took);
            let removed = batch_rows.sessions;
            // At `from` or later, by the statement's own condition.
            from = batch_rows.last.unwrap_or(from);
            total += removed.len();
            let next = next_purge_batch(*size, batch, took);
            if (removed.len() as i64) < *size {
                // A batch that was not full says nothing of how long a full one takes: it
                // may cut the size, not grow it.
                *size = next.min(*size);
                return Ok((total, false));
            }
            *size = next;
            let next_start = pace.after(started, removed.len());
            if next_start.max(std::time::Instant::now()) >= pace.until {
                return Ok((total, true));
            }
            tokio::time::sleep_until(next_start.into()).await;
        }
    }
}

/// What one purge batch removed ([`Storage::purge_expired_batch`]).
#[derive(Debug, Clone, Default)]
pub struct PurgedBatch {
    /// The sessions ended.
    pub sessions: Vec<String>,
    /// The latest expiry of the batch's tokens. Tokens are taken in expiry order, so every
    /// expired token left that this batch did not skip (locked by another process) expires at
    /// this time or later.
    pub last: Option<f64>,
}

/// How fast a purge run may go ([`Storage::purge_expired`]).
#[derive(Debug, Clone, Copy)]
pub struct PurgePace {
    /// Sessions per second, on average over the run; `None`: as fast as the batches go.
    pub max_rate: Option<f64>,
    /// The run stops starting batches at this instant, and leaves the rest for the next run.
    pub until: std::time::Instant,
}

impl PurgePace {
    /// The largest batch under this pace: `batch`, or a tenth of a second's worth of sessions
    /// when that is smaller, so that the rests stay short and the rate even. Not less: small
    /// batches cost PostgreSQL more per session (planning at each batch, the statement's
    /// triggers, the commit): batches of a hundredth of a second's worth (5 sessions at 500 per
    /// second) took 550 us of PostgreSQL's time per session, batches of 50 about 250 us, an
    /// unbounded purge 60-90 us (docs/benchmarks.md, "The purge under load (session 11)" and
    /// "Issue 20: session 12").
    pub fn batch_cap(&self, batch: i64) -> i64 {
        let batch = batch.max(1);
        match self.max_rate {
            Some(rate) if rate > 0.0 => batch.min(((rate / 10.0).ceil() as i64).max(1)),
            _ => batch,
        }
    }

    /// When the batch after one of `removed` sessions that started at `start` may start: at
    /// once without a rate, else `removed / max_rate` seconds after `start`.
    pub fn after(&self, start: std::time::Instant, removed: usize) -> std::time::Instant {
        match self.max_rate {
            Some(rate) if rate > 0.0 => {
                start + std::time::Duration::from_secs_f64((removed as f64 / rate).min(3600.0))
            }
            _ => start,
        }
    }
}

/// The token `token` from a row with the columns of [`VALID_TOKEN_SQL`].
fn token_of_row(token: &Uuid, row: &tokio_postgres::Row) -> Token {
    let metadata = match row.get::<_, Value>(5) {
        Value::Object(m) => Metadata::from_map(&m),
        _ => Metadata::default(),
    };
    Token {
        token: *token,
        auth_id: row.get(0),
        pbx_user_uuid: row.get(1),
        xivo_uuid: row.get(2),
        issued_t: row.get(3),
        expire_t: row.get(4),
        metadata,
        session_uuid: row.get(6),
        user_agent: row.get(7),
        remote_addr: row.get(8),
        acl: row.get::<_, Vec<String>>(9).into(),
        refresh_token_uuid: row.get(10),
    }
}

/// One purge batch ([`Storage::purge_expired_batch`]): the expired tokens (`$1` the cutoff,
/// `$2` the batch size, `$3` the earliest expiry looked at), their sessions, and the
/// `auth_session_deleted` event of each session ended, the same event as
/// [`Event::session_deleted`] with the token's auth id as the user (checked by
/// tests/tests/events.rs). Answers the uuids of the sessions ended and their tokens' expiry.
///
/// - The batch's events are rows of `auth_event_outbox_batch` (migrations/V17) of at most 500
///   events each ([`OUTBOX_BATCH_EVENTS`]), not one outbox row per session: a row per session
///   cost PostgreSQL an insert, a read, a delete and a vacuum each. 500, the publisher's own
///   batch, bounds what one row makes the publisher send in one go, and send again when the
///   broker refuses one of its events.
/// - The tokens are deleted by the statement itself, by the row addresses (`ctid`) of the rows
///   it has just locked, before their sessions: the cascade from each deleted session (one
///   query per session, run by PostgreSQL after the statement) then finds nothing left to
///   delete. Left to the cascade, their deletion took 37 us per session, 45 % of a batch; by
///   `ctid`, with the cascade's look-ups then finding nothing, 18 us (`EXPLAIN ANALYZE` of a
///   batch of 5,000).
/// - The sessions are found by their key, one index probe each, and joined back to their
///   tokens' auth ids by a hash join of the batch (a correlated subquery per session made a
///   batch quadratic: 5,000 sessions took 2 s).
/// - The batch's transaction commits without waiting for its WAL to reach the disk
///   (`synchronous_commit` off for this transaction alone): its locks are released as soon as
///   it commits, not after an `fsync` that a loaded disk made take up to a second. A crash
///   may then lose the last batches whole (their tokens, sessions and outbox rows together),
///   and the next purge deletes them again: no event is lost, and one may be published twice,
///   within the bus's at-least-once delivery.
pub const PURGE_BATCH_SQL: &str = "WITH expired AS (
         SELECT ctid, session_uuid, auth_id, expire_t FROM auth_token
         WHERE expire_t < $1 AND expire_t >= $3
           AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL
         ORDER BY expire_t
         LIMIT $2
         FOR UPDATE SKIP LOCKED),
     t AS (
         DELETE FROM auth_token WHERE ctid = ANY (ARRAY(SELECT ctid FROM expired))),
     d AS (
         DELETE FROM auth_session WHERE uuid IN (SELECT session_uuid FROM expired)
         RETURNING uuid, tenant_uuid),
     ended AS (
         SELECT DISTINCT ON (d.uuid) d.uuid, d.tenant_uuid, e.auth_id, e.expire_t,
                'auth.sessions.' || replace(replace(replace(d.uuid, '.', '__DOT__'),
                    '#', '__HASH__'), '*', '__STAR__') || '.deleted' AS routing_key
         FROM d JOIN expired e ON e.session_uuid = d.uuid),
     numbered AS (
         SELECT row_number() OVER (ORDER BY expire_t, uuid) - 1 AS n, jsonb_build_object(
                'routing_key', routing_key,
                'headers', jsonb_build_object('name', 'auth_session_deleted',
                    'tenant_uuid', tenant_uuid, 'required_access', 'event.auth_session_deleted',
                    'required_acl', 'events.' || routing_key, 'session_uuid', uuid)
                    || CASE WHEN auth_id <> ''
                            THEN jsonb_build_object('user_uuid:' || auth_id, true)
                            ELSE '{}'::jsonb END,
                'data', jsonb_build_object('uuid', uuid, 'user_uuid', auth_id,
                    'tenant_uuid', tenant_uuid)) AS event
         FROM ended),
     ev AS (
         INSERT INTO auth_event_outbox_batch (name, events, event_count)
         SELECT 'auth_session_deleted', jsonb_agg(event ORDER BY n), count(*)
         FROM numbered GROUP BY n / 500 ORDER BY n / 500)
     SELECT uuid, expire_t FROM ended";

/// The most events [`PURGE_BATCH_SQL`] writes in one `auth_event_outbox_batch` row (its
/// `GROUP BY n / 500`).
pub const OUTBOX_BATCH_EVENTS: i64 = 500;

/// The look-up of a token that has not expired ([`Storage::get_valid_token`]): its hash, then
/// the time.
pub const VALID_TOKEN_SQL: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM auth_token WHERE token_hash = $1 AND expire_t >= $2"
);

/// The columns of a token's row that [`token_of_row`] reads, in its order (one list for
/// [`VALID_TOKEN_SQL`] and the grouped look-ups of `crate::lookup_batch`).
macro_rules! token_columns {
    () => {
        "auth_id, pbx_user_uuid, xivo_uuid, issued_t, expire_t, metadata, session_uuid, \
         user_agent, remote_addr, acl, refresh_token_uuid"
    };
}
pub(crate) use token_columns;

/// Where the purge of `now` stops: tokens that expired before it are purged. That is `now`,
/// unless the expire-soon window (`announced_until`, `auth_cleanup_state.expire_soon_until`)
/// ends earlier: a session that expired after the last announced window has not been announced
/// yet, and is left for the run that announces it (the next one), so that a run starting late
/// does not purge sessions it never announced. Never more than `max_lag` seconds before `now`,
/// so that announcements that keep failing cannot hold the purge back for long. No window yet
/// (the first run on a database): `now`, as the original, which announces no backlog.
pub fn purge_cutoff(now: f64, announced_until: Option<f64>, max_lag: f64) -> f64 {
    match announced_until {
        Some(until) if until < now => until.max(now - max_lag.max(0.0)),
        _ => now,
    }
}

/// How long one purge batch (one transaction) should take at most.
/// (50 ms until session 11: on two cores shared with a full check load, 7 % of the batches
/// then took more than 100 ms.)
pub const PURGE_BATCH_TARGET: std::time::Duration = std::time::Duration::from_millis(20);

/// The fewest sessions a purge batch is cut down to (unless the configured batch is smaller).
pub const PURGE_BATCH_MIN: i64 = 100;

/// The size of the next purge batch after one of `size` sessions that took `took`: halved when
/// it took longer than [`PURGE_BATCH_TARGET`] (down to [`PURGE_BATCH_MIN`]), doubled when it took
/// less than half of it, never more than the configured `max`.
pub fn next_purge_batch(size: i64, max: i64, took: std::time::Duration) -> i64 {
    let max = max.max(1);
    let next = if took > PURGE_BATCH_TARGET {
        (size / 2).max(PURGE_BATCH_MIN)
    } else if took < PURGE_BATCH_TARGET / 2 {
        size.saturating_mul(2)
    } else {
        size
    };
    next.clamp(1, max)
}

/// The `auth_id` of the tokens the server issues itself for mailed links (the original's).
pub const MAIL_TOKEN_AUTH_ID: &str = "wazo-auth";

/// Issues, inside the caller's transaction, a token granting `acl` alone for `lifetime` seconds:
/// the token of a mailed link (e-mail confirmation, password reset). Its session belongs to
/// `tenant` (the user's, also the token's `metadata.tenant_uuid`, so that the token's scope is
/// the user's tenant). As the original, no `auth_session_created` event is published for it.
pub(crate) async fn insert_mail_token<C: Db>(
    client: &C,
    acl: &str,
    lifetime: i64,
    tenant: &str,
) -> Result<Uuid> {
    let token = Uuid::new_v4();
    let session = new_session_uuid();
    let issued = now();
    let expire = issued + lifetime as f64;
    let metadata = serde_json::json!({ "tenant_uuid": tenant });
    let acl = vec![acl.to_string()];
    let inserted = client
        .exec(
            "WITH s AS (
                 INSERT INTO auth_session (uuid, mobile, tenant_uuid)
                 SELECT $1, false, uuid FROM auth_tenant WHERE uuid = $2
                 RETURNING uuid)
             INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, metadata,
                                     session_uuid, user_agent, remote_addr, acl)
             SELECT $3, $4, $5, $6, $7, s.uuid, 'wazo-auth-email-reset', '', $8 FROM s",
            &[
                &session,
                &tenant,
                &token_hash(&token),
                &MAIL_TOKEN_AUTH_ID,
                &issued,
                &expire,
                &metadata,
                &acl,
            ],
        )
        .await?;
    if inserted != 1 {
        return Err(Error::database(format!(
            "no tenant {tenant} for a mail token"
        )));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {

    #[test]
    fn metadata_get_reads_one_key_as_the_parsed_map_does() {
        let map: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"uuid": "u-1", "tenant_uuid": "t-1", "n": 3, "nested": {"tenant_uuid": "no"},
                "list": [1, {"a": "b"}], "esc\u0061ped": "yes", "null": null, "é": "accent"}"#,
        )
        .unwrap();
        let m = Metadata::from_map(&map);
        for key in [
            "uuid",
            "tenant_uuid",
            "n",
            "nested",
            "list",
            "escaped",
            "null",
            "é",
        ] {
            assert_eq!(m.get(key), map.get(key).cloned(), "{key}");
        }
        assert_eq!(m.get("absent"), None);
        assert_eq!(
            m.get("a"),
            None,
            "keys of nested objects are not the object's"
        );
        assert_eq!(Metadata::default().get("uuid"), None);
    }

    use super::*;

    #[test]
    fn the_purge_waits_for_sessions_not_announced_yet() {
        // No window yet: everything expired goes.
        assert_eq!(purge_cutoff(100.0, None, 30.0), 100.0);
        // The window ends in the future: everything expired goes.
        assert_eq!(purge_cutoff(100.0, Some(130.0), 30.0), 100.0);
        // It ended before now: what expired since is left for the run that announces it.
        assert_eq!(purge_cutoff(100.0, Some(95.0), 30.0), 95.0);
        // But never more than max_lag behind.
        assert_eq!(purge_cutoff(100.0, Some(10.0), 30.0), 70.0);
    }

    #[test]
    fn purge_batches_shrink_when_slow_and_grow_back_to_the_configured_size() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(next_purge_batch(5000, 5000, ms(300)), 2500);
        assert_eq!(next_purge_batch(150, 5000, ms(300)), PURGE_BATCH_MIN);
        assert_eq!(
            next_purge_batch(PURGE_BATCH_MIN, 5000, ms(900)),
            PURGE_BATCH_MIN
        );
        assert_eq!(next_purge_batch(1000, 5000, ms(40)), 500);
        assert_eq!(next_purge_batch(1000, 5000, ms(15)), 1000);
        assert_eq!(next_purge_batch(1000, 5000, ms(5)), 2000);
        assert_eq!(next_purge_batch(4000, 5000, ms(5)), 5000);
        // A configured batch under the minimum is kept as it is.
        assert_eq!(next_purge_batch(7, 7, ms(900)), 7);
        assert_eq!(next_purge_batch(7, 7, ms(1)), 7);
    }

    #[test]
    fn a_paced_purge_keeps_its_rate_with_batches_of_a_tenth_of_a_second() {
        let now = std::time::Instant::now();
        let free = PurgePace {
            max_rate: None,
            until: now,
        };
        assert_eq!(free.batch_cap(5000), 5000);
        assert_eq!(free.after(now, 5000), now);
        let paced = PurgePace {
            max_rate: Some(2000.0),
            ..free
        };
        assert_eq!(paced.batch_cap(5000), 200);
        assert_eq!(paced.batch_cap(50), 50);
        assert_eq!(
            paced.after(now, 200),
            now + std::time::Duration::from_millis(100)
        );
        // A rate under ten per second still purges one session per batch.
        let slow = PurgePace {
            max_rate: Some(0.5),
            ..free
        };
        assert_eq!(slow.batch_cap(5000), 1);
        assert_eq!(slow.after(now, 1), now + std::time::Duration::from_secs(2));
    }

    #[test]
    fn redact_keeps_only_a_prefix() {
        let t = "0123abcd-1111-2222-3333-444455556666";
        let r = redact(t);
        assert!(r.starts_with("0123abcd"));
        assert!(!r.contains("4444"));
    }

    #[test]
    fn hash_is_stable_and_distinct() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 32);
    }

    #[test]
    fn token_ids_are_random_v4() {
        let t = Uuid::new_v4();
        assert_eq!(t.get_version_num(), 4);
    }

    #[test]
    fn session_uuids_are_canonical_v7_and_sort_by_creation() {
        let made: Vec<String> = (0..1000).map(|_| new_session_uuid()).collect();
        for s in &made {
            let u = Uuid::parse_str(s).expect("a uuid");
            assert_eq!(u.get_version_num(), 7, "{s}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{s}");
            assert_eq!(&u.hyphenated().to_string(), s, "canonical text");
        }
        // As text (the column's type), each sorts after the one made before it: a login adds
        // its session at the end of the session indexes.
        assert!(made.windows(2).all(|w| w[0] < w[1]), "{made:?}");
        // Its time is now's (milliseconds since the epoch, the first 48 bits).
        let ms = Uuid::parse_str(&made[0]).expect("a uuid").as_u128() >> 80;
        assert!(((now() * 1000.0) as u128).abs_diff(ms) < 60_000, "{ms}");
    }
}
