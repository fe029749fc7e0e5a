//! `wazo-auth import-original`: takes over a database made by the original wazo-auth.
//!
//! The source is only read, in one read-only snapshot. Everything is written to the target in
//! one transaction (rolled back for a dry run). The target then holds every source row, with
//! these differences of form:
//! - refresh tokens: stored as a hash, their value sealed with the keyring (the original keeps
//!   them in clear); they keep working;
//! - external-auth data and configuration: sealed with the keyring;
//! - policies: their accesses as the policy's ACL;
//! - tokens and sessions: tokens already expired are left out, and so are sessions with no live
//!   token;
//! - the per-tenant LDAP configuration: its bind password sealed with the keyring;
//! - the per-tenant SAML configuration and the SAML login state: kept whole in
//!   `auth_imported_row`, until this server serves them.
//!
//! Each imported row's source digest is kept in `auth_import_state`. A later run rewrites only
//! the rows that changed in the source since, removes those that the source no longer has, and
//! leaves alone the rows this server made or changed by itself (a password upgraded to
//! argon2id, a login's token) unless the source changed the same row.
//!
//! A source row that cannot be imported (malformed, or depending on such a row) is skipped
//! whole and reported with its kind, its key and the reason; the rest goes on.

mod engine;

use std::collections::{HashMap, HashSet, VecDeque};

use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::Error;
use crate::external;
use crate::keys::Keyring;
use crate::refresh_tokens;
use crate::sql::Db;
use crate::storage::Storage;
use crate::tokens;
use engine::{col, col_as, digest, Cell, Col, Row, Spec, Ty};

/// The only revision of the original's schema this importer reads (`alembic_version_auth`).
pub const SUPPORTED_REVISION: &str = "1c862ebfbb3a";

/// The kinds of rows, in the order they are written.
pub const KINDS: &[&str] = &[
    "tenants",
    "tenant_domains",
    "addresses",
    "users",
    "emails",
    "groups",
    "policies",
    "user_groups",
    "user_policies",
    "group_policies",
    "external_auth_types",
    "external_auth_configs",
    "user_external_auths",
    "refresh_tokens",
    "sessions",
    "tokens",
    "ldap_configs",
    "saml_configs",
    "saml_sessions",
    "saml_caches",
];

/// What happened to the rows of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Rows read from the source.
    pub source: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Rows already in the target as in the source (or unchanged in the source since the last
    /// import).
    pub unchanged: u64,
    /// Rows imported earlier that the source no longer has, deleted from the target.
    pub removed: u64,
    /// Rows not imported, each listed in [`Report::skipped`].
    pub skipped: u64,
    /// Tokens (and sessions without a live token) already expired: not imported.
    pub expired: u64,
}

/// A source row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub kind: String,
    pub key: String,
    pub reason: String,
}

impl Skipped {
    fn new(kind: &str, key: &str, reason: &str) -> Skipped {
        Skipped {
            kind: kind.to_string(),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub source_revision: String,
    pub dry_run: bool,
    pub committed: bool,
    /// Per kind, in [`KINDS`] order.
    #[serde(serialize_with = "kinds_as_object")]
    pub kinds: Vec<(String, Counts)>,
    pub skipped: Vec<Skipped>,
    pub notes: Vec<String>,
}

fn kinds_as_object<S: serde::Serializer>(
    kinds: &[(String, Counts)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(kinds.len()))?;
    for (k, c) in kinds {
        m.serialize_entry(k, c)?;
    }
    m.end()
}

/// Why nothing was imported.
#[derive(Debug)]
pub enum ImportError {
    /// The source or the target is not what the import can take (the reason, for the operator).
    Refused(String),
    /// A database failed.
    Failed(Error),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Refused(why) => write!(f, "{why}"),
            ImportError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for ImportError {
    fn from(e: Error) -> Self {
        ImportError::Failed(e)
    }
}

impl From<tokio_postgres::Error> for ImportError {
    fn from(e: tokio_postgres::Error) -> Self {
        ImportError::Failed(e.into())
    }
}

type Result<T> = std::result::Result<T, ImportError>;

/// A source row, every column as text.
type SrcRow = Vec<Option<String>>;

/// The keyring purpose of secrets of side rows (`auth_imported_row.sealed`).
pub(crate) const SIDE_PURPOSE: &str = "imported-row";

/// The associated data of a side row's sealed secret.
pub fn side_row_aad(kind: &str, key: &str) -> String {
    format!("imported|{kind}|{key}")
}

/// Imports `source` into `target`. `dry_run` rolls the target transaction back.
pub async fn run(
    source: &Storage,
    target: &Storage,
    keyring: &Keyring,
    dry_run: bool,
) -> Result<Report> {
    let mut src_client = source.client().await?;
    let src = src_client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let revision = source_revision(&src).await?;
    let read = read_source(&src).await?;
    src.rollback().await?;
    drop(src_client);

    let mut report = Report {
        source_revision: revision,
        dry_run,
        committed: false,
        kinds: KINDS
            .iter()
            .map(|k| (k.to_string(), Counts::default()))
            .collect(),
        skipped: Vec::new(),
        notes: Vec::new(),
    };
    for (kind, rows) in &read.rows {
        report.counts(kind).source = rows.len() as u64;
    }
    let mut client = target.client().await?;
    let mut tx = client.transaction().await?;
    // One import at a time.
    tx.exec(
        "SELECT pg_advisory_xact_lock(hashtextextended('wazo-auth import', 0))",
        &[],
    )
    .await?;
    take_over_master(&tx, &read.master, &mut report).await?;
    Importer {
        keyring,
        report: &mut report,
        now: tokens::now(),
    }
    .import(&mut tx, read)
    .await?;
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
        report.committed = true;
    }
    Ok(report)
}

impl Report {
    fn counts(&mut self, kind: &str) -> &mut Counts {
        let i = self
            .kinds
            .iter()
            .position(|(k, _)| k == kind)
            .unwrap_or_else(|| {
                self.kinds.push((kind.to_string(), Counts::default()));
                self.kinds.len() - 1
            });
        &mut self.kinds[i].1
    }

    fn skip(&mut self, kind: &str, key: &str, reason: &str) {
        self.counts(kind).skipped += 1;
        self.skipped.push(Skipped::new(kind, key, reason));
    }
}

async fn source_revision(src: &deadpool_postgres::Transaction<'_>) -> Result<String> {
    let exists: bool = src
        .fetch_one(
            "SELECT to_regclass('alembic_version_auth') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Err(ImportError::Refused(format!(
            "the source has no alembic_version_auth table: it is not a database of the original \
             wazo-auth (revision {SUPPORTED_REVISION} is supported)"
        )));
    }
    let found: Vec<String> = src
        .fetch("SELECT version_num::text FROM alembic_version_auth", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    match found.as_slice() {
        [one] if one == SUPPORTED_REVISION => Ok(one.clone()),
        [] => Err(ImportError::Refused(format!(
            "the source's alembic_version_auth is empty; revision {SUPPORTED_REVISION} is supported"
        ))),
        _ => Err(ImportError::Refused(format!(
            "the source's schema is at revision {}; only revision {SUPPORTED_REVISION} (the \
             original's latest) is supported: upgrade the original (wazo-auth-upgrade-db) first",
            found.join(", ")
        ))),
    }
}

/// The source, read.
struct SourceData {
    master: String,
    rows: Vec<(&'static str, Vec<SrcRow>)>,
    /// Policy accesses naming a policy or an access that does not exist.
    dangling_accesses: Vec<(String, String)>,
}

impl SourceData {
    fn take(&mut self, kind: &str) -> Vec<SrcRow> {
        self.rows
            .iter_mut()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| std::mem::take(v))
            .unwrap_or_default()
    }
}

/// The query reading each kind, every column as text.
const READERS: &[(&str, &str)] = &[
    (
        "tenants",
        "SELECT uuid::text, name, phone, contact_uuid::text, parent_uuid::text, slug::text,
                default_authentication_method
         FROM auth_tenant ORDER BY uuid",
    ),
    (
        "tenant_domains",
        "SELECT uuid::text, tenant_uuid::text, name::text FROM auth_tenant_domain ORDER BY uuid",
    ),
    (
        "addresses",
        "SELECT tenant_uuid::text, line_1, line_2, city, state, zip_code, country
         FROM auth_address ORDER BY id",
    ),
    (
        "users",
        "SELECT uuid::text, username::text, password_hash, password_salt::text, firstname,
                lastname, enabled::text, tenant_uuid::text, purpose, authentication_method
         FROM auth_user ORDER BY uuid",
    ),
    (
        "emails",
        "SELECT uuid::text, address, confirmed::text, main::text, user_uuid::text
         FROM auth_email ORDER BY uuid",
    ),
    (
        "groups",
        "SELECT uuid::text, name, slug::text, tenant_uuid::text, system_managed::text
         FROM auth_group ORDER BY uuid",
    ),
    (
        "policies",
        "SELECT p.uuid::text, p.name::text, p.slug::text, p.description, p.tenant_uuid::text,
                p.config_managed::text, p.shared::text,
                to_json(ARRAY(SELECT a.access FROM auth_policy_access pa
                              JOIN auth_access a ON a.id = pa.access_id
                              WHERE pa.policy_uuid = p.uuid ORDER BY a.id))::text
         FROM auth_policy p ORDER BY p.uuid",
    ),
    (
        "user_groups",
        "SELECT group_uuid::text, user_uuid::text FROM auth_user_group ORDER BY 1, 2",
    ),
    (
        "user_policies",
        "SELECT user_uuid::text, policy_uuid::text FROM auth_user_policy ORDER BY 1, 2",
    ),
    (
        "group_policies",
        "SELECT group_uuid::text, policy_uuid::text FROM auth_group_policy ORDER BY 1, 2",
    ),
    (
        "external_auth_types",
        "SELECT uuid::text, name FROM auth_external_auth_type ORDER BY name",
    ),
    (
        "external_auth_configs",
        "SELECT t.name, c.tenant_uuid::text, c.data, c.type_uuid::text
         FROM auth_external_auth_config c
         LEFT JOIN auth_external_auth_type t ON t.uuid = c.type_uuid
         ORDER BY 2, 1",
    ),
    (
        "user_external_auths",
        "SELECT t.name, e.user_uuid::text, e.data, e.external_auth_type_uuid::text
         FROM auth_user_external_auth e
         LEFT JOIN auth_external_auth_type t ON t.uuid = e.external_auth_type_uuid
         ORDER BY 2, 1",
    ),
    (
        "refresh_tokens",
        "SELECT uuid::text, client_id, user_uuid::text, backend, login, user_agent, remote_addr,
                created_at::text, mobile::text, metadata::text
         FROM auth_refresh_token ORDER BY created_at, uuid",
    ),
    (
        "sessions",
        "SELECT s.uuid::text, s.mobile::text, s.tenant_uuid::text,
                (SELECT min(t.issued_t) FROM auth_token t WHERE t.session_uuid = s.uuid)::text,
                (SELECT max(t.expire_t) FROM auth_token t WHERE t.session_uuid = s.uuid)::text
         FROM auth_session s ORDER BY s.uuid",
    ),
    (
        "tokens",
        "SELECT uuid::text, auth_id, pbx_user_uuid::text, xivo_uuid::text, issued_t::text,
                expire_t::text, metadata, session_uuid::text, user_agent, remote_addr,
                to_json(acl)::text, refresh_token_uuid::text
         FROM auth_token ORDER BY issued_t, uuid",
    ),
    (
        "ldap_configs",
        "SELECT tenant_uuid::text, tenant_uuid::text, (to_jsonb(c) - 'bind_password')::text,
                bind_password
         FROM auth_ldap_config c ORDER BY 1",
    ),
    (
        "saml_configs",
        "SELECT tenant_uuid::text, tenant_uuid::text, to_jsonb(c)::text, NULL::text
         FROM auth_saml_config c ORDER BY 1",
    ),
    (
        "saml_sessions",
        "SELECT request_id::text, NULL::text, to_jsonb(s)::text, NULL::text
         FROM auth_saml_session s ORDER BY 1",
    ),
    (
        "saml_caches",
        "SELECT name_id::text || '|' || entity_id::text, NULL::text, to_jsonb(c)::text, NULL::text
         FROM auth_saml_pysaml2_cache c ORDER BY 1",
    ),
];

async fn read_source(src: &deadpool_postgres::Transaction<'_>) -> Result<SourceData> {
    let masters: Vec<String> = src
        .fetch(
            "SELECT uuid::text FROM auth_tenant WHERE uuid = parent_uuid",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let master = match masters.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(ImportError::Refused(format!(
                "the source has {} master tenants (tenants that are their own parent); exactly \
                 one is expected",
                masters.len()
            )))
        }
    };
    let mut rows = Vec::with_capacity(READERS.len());
    for (kind, sql) in READERS {
        // Streamed: each row's wire buffer is dropped once its text is kept.
        let stream = src
            .query_typed_raw(
                sql,
                std::iter::empty::<(
                    &(dyn tokio_postgres::types::ToSql + Sync),
                    tokio_postgres::types::Type,
                )>(),
            )
            .await?;
        futures_util::pin_mut!(stream);
        let mut rows_of_kind: Vec<SrcRow> = Vec::new();
        while let Some(r) = stream.try_next().await? {
            rows_of_kind.push(
                (0..r.len())
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect(),
            );
        }
        rows.push((*kind, rows_of_kind));
    }
    let dangling_accesses = src
        .fetch(
            "SELECT pa.policy_uuid::text, pa.access_id::text FROM auth_policy_access pa
             LEFT JOIN auth_access a ON a.id = pa.access_id
             LEFT JOIN auth_policy p ON p.uuid = pa.policy_uuid
             WHERE a.id IS NULL OR p.uuid IS NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(SourceData {
        master,
        rows,
        dangling_accesses,
    })
}

/// Makes the source's master tenant the target's. A fresh target's own master tenant (made by
/// the migrations, with what this server bootstrapped in it) is replaced; a target holding more
/// is refused.
async fn take_over_master(
    tx: &deadpool_postgres::Transaction<'_>,
    source_master: &str,
    report: &mut Report,
) -> Result<()> {
    let masters: Vec<String> = tx
        .fetch("SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let target_master = match masters.as_slice() {
        [] => return Ok(()),
        [one] => one.clone(),
        _ => {
            return Err(ImportError::Refused(format!(
                "the target has {} master tenants; it is not a database of this server",
                masters.len()
            )))
        }
    };
    if target_master == source_master {
        return Ok(());
    }
    let row = tx
        .fetch_one(
            "SELECT (SELECT count(*) FROM auth_tenant),
                    (SELECT count(*) FROM auth_user),
                    (SELECT count(*) FROM auth_import_state)",
            &[],
        )
        .await?;
    let (tenants, users, imported): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if tenants > 1 || imported > 0 {
        return Err(ImportError::Refused(format!(
            "the target already holds data of its own: its master tenant {target_master} is not \
             the source's ({source_master}) and it has {tenants} tenants; import into a new, \
             empty database (or the database of an earlier import from this source)"
        )));
    }
    tx.exec("DELETE FROM auth_tenant WHERE uuid = $1", &[&target_master])
        .await?;
    report.notes.push(format!(
        "the target's own master tenant {target_master} was replaced by the source's \
         {source_master}, with the {users} user(s) this server had made in it (such as a \
         bootstrapped administrator); the source's users take their place"
    ));
    Ok(())
}

/// Whether `s` is a UUID in its canonical form (lowercase, hyphenated).
fn is_uuid(s: &str) -> bool {
    Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

fn text(row: &SrcRow, i: usize) -> Option<String> {
    row.get(i).cloned().flatten()
}

fn flag(row: &SrcRow, i: usize) -> Option<bool> {
    match row.get(i).and_then(|v| v.as_deref()) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

/// A required UUID column, or the reason why the row is skipped.
fn uuid_col(row: &SrcRow, i: usize, what: &str) -> std::result::Result<String, String> {
    match text(row, i) {
        Some(s) if is_uuid(&s) => Ok(s),
        Some(s) => Err(format!("its {what} {s:?} is not a UUID")),
        None => Err(format!("its {what} is empty")),
    }
}

/// Parses JSON text of the source; refuses what this server cannot store or serve (NUL in a
/// string, which PostgreSQL's jsonb refuses).
fn json_of(text: &str, what: &str) -> std::result::Result<Value, String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("its {what} is not valid JSON ({e})"))?;
    if holds_nul(&v) {
        return Err(format!(
            "its {what} holds a NUL character, which this server cannot store"
        ));
    }
    Ok(v)
}

fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(holds_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// An ACL entry this server can hold: no control character.
fn acl_of(text: &str) -> std::result::Result<Vec<String>, String> {
    let v: Vec<String> =
        serde_json::from_str(text).map_err(|e| format!("its ACL cannot be read ({e})"))?;
    if let Some(bad) = v.iter().find(|a| a.chars().any(char::is_control)) {
        return Err(format!("its ACL entry {bad:?} holds a control character"));
    }
    Ok(v)
}

fn t(v: Option<String>) -> Cell {
    Cell::Text(v)
}

struct Importer<'a> {
    keyring: &'a Keyring,
    report: &'a mut Report,
    now: f64,
}

/// The rows of one kind, ready to write, and the keys of the source rows that are still there
/// (written, unchanged or skipped): the others, imported before, are removed.
struct Prepared {
    rows: Vec<Row>,
    present: HashSet<String>,
}

impl Prepared {
    fn new() -> Prepared {
        Prepared {
            rows: Vec::new(),
            present: HashSet::new(),
        }
    }

    fn push(&mut self, row: Row) {
        self.present.insert(row.key.clone());
        self.rows.push(row);
    }
}

impl Importer<'_> {
    async fn import(
        &mut self,
        tx: &mut deadpool_postgres::Transaction<'_>,
        mut src: SourceData,
    ) -> Result<()> {
        // Prepare every kind first: removals (children first) come before the writes (parents
        // first), so that a name freed in the source can be taken by another row.
        let mut prepared: Vec<(Spec, Prepared)> = Vec::new();
        let tenants = src.take("tenants");
        let contacts = self.contacts_of(&tenants);
        prepared.push((spec_tenants(), self.tenants(tenants, &src.master)));
        prepared.push((spec_domains(), self.domains(src.take("tenant_domains"))));
        prepared.push((spec_addresses(), self.addresses(src.take("addresses"))));
        prepared.push((spec_users(), self.users(src.take("users"))));
        prepared.push((spec_emails(), self.emails(src.take("emails"))));
        prepared.push((spec_groups(), self.groups(src.take("groups"))));
        for (policy, access) in std::mem::take(&mut src.dangling_accesses) {
            self.report.notes.push(format!(
                "policy {policy}: its access entry {access} names a policy or an access that does \
                 not exist in the source; left out"
            ));
        }
        prepared.push((spec_policies(), self.policies(src.take("policies"))));
        for (kind, table, a, b) in [
            ("user_groups", "auth_user_group", "group_uuid", "user_uuid"),
            (
                "user_policies",
                "auth_user_policy",
                "user_uuid",
                "policy_uuid",
            ),
            (
                "group_policies",
                "auth_group_policy",
                "group_uuid",
                "policy_uuid",
            ),
        ] {
            let rows = src.take(kind);
            prepared.push((
                spec_association(kind, table, a, b),
                self.associations(kind, rows, a, b),
            ));
        }
        let types = src.take("external_auth_types");
        let ext_configs = src.take("external_auth_configs");
        let user_ext = src.take("user_external_auths");
        let refresh = src.take("refresh_tokens");
        let sessions = src.take("sessions");
        let tokens = src.take("tokens");
        let ldap = src.take("ldap_configs");
        let mut side = vec![(spec_ldap_configs(), self.ldap_configs(ldap)?)];
        for kind in ["saml_configs", "saml_sessions", "saml_caches"] {
            let rows = src.take(kind);
            side.push((spec_side(kind), self.side_rows(kind, rows)?));
        }

        // External auth needs the target's type uuids; refresh tokens need their source
        // uuids kept aside; tokens need the refresh tokens' target uuids. Their removals are
        // computed from keys, which do not depend on those.
        self.ensure_types(tx, &types).await?;
        prepared.push((
            spec_ext_configs(),
            self.external(tx, "external_auth_configs", ext_configs, true)
                .await?,
        ));
        prepared.push((
            spec_user_ext(),
            self.external(tx, "user_external_auths", user_ext, false)
                .await?,
        ));
        let (refresh_prepared, refresh_keys) = self.refresh_tokens(refresh)?;
        prepared.push((spec_refresh_tokens(), refresh_prepared));
        prepared.push((spec_sessions(), self.sessions(sessions)));
        // Tokens: prepared after the refresh tokens are written (below).
        let token_keys = self.token_keys(&tokens);
        prepared.push((
            spec_tokens(),
            Prepared {
                rows: Vec::new(),
                present: token_keys,
            },
        ));
        prepared.extend(side);

        // Removals, children first.
        for (spec, p) in prepared.iter().rev() {
            let state = engine::load_state(tx, spec.kind).await?;
            let gone: Vec<String> = state
                .keys()
                .filter(|k| !p.present.contains(*k))
                .cloned()
                .collect();
            if !gone.is_empty() {
                match engine::remove(tx, spec, &gone).await? {
                    Ok(removed) => self.report.counts(spec.kind).removed += removed,
                    Err(why) => self.report.notes.push(format!(
                        "{}: {} row(s) gone from the source were kept, because {why}",
                        spec.kind,
                        gone.len()
                    )),
                }
            }
        }

        // Writes, parents first.
        let mut contact_rows = Vec::new();
        for (spec, p) in prepared.iter_mut() {
            if spec.kind == "tokens" {
                let map = refresh_token_uuids(tx, &refresh_keys).await?;
                p.rows = self.token_rows(&tokens, &map);
            }
            let state = engine::load_state(tx, spec.kind).await?;
            let mut counts = Counts::default();
            let mut skipped = Vec::new();
            let written =
                engine::write(tx, spec, &p.rows, &state, &mut counts, &mut skipped).await?;
            engine::save_state(tx, spec.kind, &written).await?;
            if spec.kind == "tenants" {
                contact_rows = written.iter().map(|(k, _)| k.clone()).collect();
            }
            let c = self.report.counts(spec.kind);
            c.inserted += counts.inserted;
            c.updated += counts.updated;
            c.unchanged += counts.unchanged;
            c.skipped += counts.skipped;
            self.report.skipped.extend(skipped);
            if spec.kind == "users" {
                self.set_contacts(tx, &contacts, &contact_rows).await?;
            }
        }
        Ok(())
    }

    fn contacts_of(&self, tenants: &[SrcRow]) -> HashMap<String, Option<String>> {
        tenants
            .iter()
            .filter_map(|r| Some((text(r, 0)?, text(r, 3))))
            .collect()
    }

    /// Sets the contact of the tenants written in this run (users exist by now).
    async fn set_contacts(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
        contacts: &HashMap<String, Option<String>>,
        written: &[String],
    ) -> Result<()> {
        let (mut tenants, mut users) = (Vec::new(), Vec::new());
        for t in written {
            if let Some(c) = contacts.get(t) {
                tenants.push(t.clone());
                users.push(c.clone());
            }
        }
        let missing = tx
            .fetch(
                "UPDATE auth_tenant t SET contact_uuid = CASE
                     WHEN x.c IS NULL OR EXISTS (SELECT 1 FROM auth_user u WHERE u.uuid = x.c)
                     THEN x.c END
                 FROM unnest($1::text[], $2::text[]) AS x(u, c)
                 WHERE t.uuid = x.u
                 RETURNING t.uuid, x.c, t.contact_uuid IS NULL AND x.c IS NOT NULL",
                &[&tenants, &users],
            )
            .await?;
        for r in missing {
            if r.get::<_, bool>(2) {
                let (tenant, contact): (String, String) = (r.get(0), r.get(1));
                self.report.notes.push(format!(
                    "tenant {tenant}: its contact user {contact} was not imported; the contact is \
                     left empty"
                ));
            }
        }
        Ok(())
    }

    fn tenants(&mut self, rows: Vec<SrcRow>, master: &str) -> Prepared {
        // Parents before children, from the master tenant down.
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_uuid: HashMap<String, usize> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            if let Some(u) = text(r, 0) {
                by_uuid.insert(u.clone(), i);
                if let Some(p) = text(r, 4) {
                    if p != u {
                        children.entry(p).or_default().push(i);
                    }
                }
            }
        }
        let mut order = Vec::with_capacity(rows.len());
        let mut reached = vec![false; rows.len()];
        let mut queue = VecDeque::new();
        if let Some(&m) = by_uuid.get(master) {
            queue.push_back(m);
            reached[m] = true;
        }
        while let Some(i) = queue.pop_front() {
            order.push(i);
            if let Some(kids) = text(&rows[i], 0).and_then(|u| children.get(&u)) {
                for &k in kids {
                    if !reached[k] {
                        reached[k] = true;
                        queue.push_back(k);
                    }
                }
            }
        }
        let mut out = Prepared::new();
        let mut bad: HashSet<usize> = HashSet::new();
        for i in order {
            let r = &rows[i];
            let label = text(r, 0).unwrap_or_default();
            let parent_ok = text(r, 4).is_some_and(|p| {
                p == label || by_uuid.get(&p).is_some_and(|&pi| !bad.contains(&pi))
            });
            let check = uuid_col(r, 0, "uuid").and_then(|u| {
                uuid_col(r, 4, "parent uuid")?;
                if text(r, 5).is_none() {
                    return Err("its slug is empty".to_string());
                }
                Ok(u)
            });
            match check {
                Ok(uuid) if parent_ok => out.push(Row {
                    key: uuid.clone(),
                    label,
                    digest: digest(r),
                    cells: vec![
                        t(Some(uuid)),
                        t(text(r, 1)),
                        t(text(r, 2)),
                        t(text(r, 4)),
                        t(text(r, 5)),
                        t(Some(text(r, 6).unwrap_or_else(|| "native".into()))),
                    ],
                }),
                Ok(_) => {
                    bad.insert(i);
                    out.present.insert(label.clone());
                    self.report
                        .skip("tenants", &label, "its parent tenant was not imported");
                }
                Err(why) => {
                    bad.insert(i);
                    out.present.insert(label.clone());
                    self.report.skip("tenants", &label, &why);
                }
            }
        }
        for (i, r) in rows.iter().enumerate() {
            if !reached[i] {
                let label = text(r, 0).unwrap_or_default();
                out.present.insert(label.clone());
                let parent = text(r, 4).unwrap_or_default();
                let why = if by_uuid.contains_key(&parent) {
                    format!("it is not under the master tenant (its parent {parent} is in a cycle)")
                } else {
                    format!("its parent tenant {parent} is not in the source")
                };
                self.report.skip("tenants", &label, &why);
            }
        }
        out
    }

    /// Rows whose cells are the source's columns, after a check of each.
    fn simple(
        &mut self,
        kind: &str,
        rows: Vec<SrcRow>,
        label_cols: usize,
        mut build: impl FnMut(&SrcRow) -> std::result::Result<(String, Vec<Cell>), String>,
    ) -> Prepared {
        let mut out = Prepared::new();
        for r in rows {
            let label: Vec<String> = (0..label_cols)
                .map(|i| text(&r, i).unwrap_or_default())
                .collect();
            let label = label.join("|");
            match build(&r) {
                Ok((key, cells)) => out.push(Row {
                    label: key.clone(),
                    key,
                    digest: digest(&r),
                    cells,
                }),
                Err(why) => {
                    out.present.insert(label.clone());
                    self.report.skip(kind, &label, &why);
                }
            }
        }
        out
    }

    fn domains(&mut self, rows: Vec<SrcRow>) -> Prepared {
        self.simple("tenant_domains", rows, 1, |r| {
            let uuid = uuid_col(r, 0, "uuid")?;
            let tenant = uuid_col(r, 1, "tenant uuid")?;
            let name = text(r, 2).ok_or("its name is empty")?;
            Ok((
                uuid.clone(),
                vec![t(Some(uuid)), t(Some(tenant)), t(Some(name))],
            ))
        })
    }

    fn addresses(&mut self, rows: Vec<SrcRow>) -> Prepared {
        self.simple("addresses", rows, 1, |r| {
            let tenant = uuid_col(r, 0, "tenant uuid")?;
            let mut cells = vec![t(Some(tenant.clone()))];
            cells.extend((1..=6).map(|i| t(text(r, i))));
            Ok((tenant, cells))
        })
    }

    fn users(&mut self, rows: Vec<SrcRow>) -> Prepared {
        self.simple("users", rows, 1, |r| {
            let uuid = uuid_col(r, 0, "uuid")?;
            let tenant = uuid_col(r, 7, "tenant uuid")?;
            let (hash, salt) = match (text(r, 2), text(r, 3)) {
                (None, None) => (None, None),
                (Some(hash), Some(salt)) => {
                    let salt = salt
                        .strip_prefix("\\x")
                        .and_then(|h| hex::decode(h).ok())
                        .filter(|s| !s.is_empty())
                        .ok_or("its password salt is malformed")?;
                    if hash.len() != 128 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err("its password hash is malformed (not a PBKDF2-SHA512 hex \
                                    digest of 128 digits)"
                            .into());
                    }
                    (Some(hash.to_ascii_lowercase()), Some(salt))
                }
                (Some(_), None) => return Err("its password hash has no salt".into()),
                (None, Some(_)) => return Err("its password salt has no hash".into()),
            };
            let purpose = text(r, 8).unwrap_or_default();
            if !matches!(purpose.as_str(), "user" | "internal" | "external_api") {
                return Err(format!("its purpose {purpose:?} is unknown"));
            }
            let scheme = hash.as_ref().map(|_| "pbkdf2_sha512".to_string());
            Ok((
                uuid.clone(),
                vec![
                    t(Some(uuid)),
                    t(text(r, 1)),
                    t(hash),
                    Cell::Bytes(salt),
                    t(scheme),
                    t(text(r, 4)),
                    t(text(r, 5)),
                    // NULL is false for the original (it tests the value's truth).
                    Cell::Bool(flag(r, 6).unwrap_or(false)),
                    t(Some(tenant)),
                    t(Some(purpose)),
                    t(Some(text(r, 9).unwrap_or_else(|| "default".into()))),
                ],
            ))
        })
    }

    fn emails(&mut self, rows: Vec<SrcRow>) -> Prepared {
        self.simple("emails", rows, 1, |r| {
            let uuid = uuid_col(r, 0, "uuid")?;
            let address = text(r, 1).ok_or("its address is empty")?;
            let user = uuid_col(r, 4, "user uuid")?;
            Ok((
                uuid.clone(),
                vec![
                    t(Some(uuid)),
                    t(Some(address)),
                    Cell::Bool(flag(r, 2).unwrap_or(false)),
                    Cell::Bool(flag(r, 3).unwrap_or(false)),
                    t(Some(user)),
                ],
            ))
        })
    }

    fn groups(&mut self, rows: Vec<SrcRow>) -> Prepared {
        self.simple("groups", rows, 1, |r| {
            let uuid = uuid_col(r, 0, "uuid")?;
            let name = text(r, 1).ok_or("its name is empty")?;
            let slug = text(r, 2).ok_or("its slug is empty")?;
            let tenant = uuid_col(r, 3, "tenant uuid")?;
            Ok((
                uuid.clone(),
                vec![
                    t(Some(uuid)),
                    t(Some(name)),
                    t(Some(slug)),
                    t(Some(tenant)),
                    Cell::Bool(flag(r, 4).unwrap_or(false)),
                ],
            ))
        })
    }

    fn policies(&mut self, rows: Vec<SrcRow>) -> Prepared {
        self.simple("policies", rows, 1, |r| {
            let uuid = uuid_col(r, 0, "uuid")?;
            let name = text(r, 1).ok_or("its name is empty")?;
            let slug = text(r, 2).ok_or("its slug is empty")?;
            let tenant = uuid_col(r, 4, "tenant uuid")?;
            let acl = acl_of(&text(r, 7).unwrap_or_else(|| "[]".into()))?;
            Ok((
                uuid.clone(),
                vec![
                    t(Some(uuid)),
                    t(Some(name)),
                    t(Some(slug)),
                    t(text(r, 3)),
                    t(Some(tenant)),
                    Cell::Bool(flag(r, 5).unwrap_or(false)),
                    Cell::Bool(flag(r, 6).unwrap_or(false)),
                    Cell::Json(Value::from(acl)),
                ],
            ))
        })
    }

    fn associations(&mut self, kind: &str, rows: Vec<SrcRow>, a: &str, b: &str) -> Prepared {
        self.simple(kind, rows, 2, |r| {
            let x = uuid_col(r, 0, a)?;
            let y = uuid_col(r, 1, b)?;
            Ok((format!("{x}|{y}"), vec![t(Some(x)), t(Some(y))]))
        })
    }

    /// Makes sure the target knows every auth type of the source (by name; this server sets
    /// their `enabled` flag from the plugins it loads).
    async fn ensure_types(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
        rows: &[SrcRow],
    ) -> Result<()> {
        for r in rows {
            let Some(name) = text(r, 1) else {
                continue;
            };
            let created = tx
                .exec(
                    "INSERT INTO auth_external_auth_type (name, enabled) VALUES ($1, NULL)
                     ON CONFLICT (name) DO NOTHING",
                    &[&name],
                )
                .await?;
            let c = self.report.counts("external_auth_types");
            if created == 1 {
                c.inserted += 1;
            } else {
                c.unchanged += 1;
            }
        }
        Ok(())
    }

    /// External-auth configuration (`per_tenant`) or user data, sealed on the way in.
    async fn external(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
        kind: &str,
        rows: Vec<SrcRow>,
        per_tenant: bool,
    ) -> Result<Prepared> {
        let target_types: HashMap<String, String> = tx
            .fetch("SELECT name, uuid FROM auth_external_auth_type", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let keyring = self.keyring;
        let owner = if per_tenant {
            "tenant uuid"
        } else {
            "user uuid"
        };
        let mut failed = None;
        let prepared = self.simple(kind, rows, 2, |r| {
            let name = text(r, 0).ok_or_else(|| {
                format!(
                    "its auth type {} does not exist in the source",
                    text(r, 3).unwrap_or_default()
                )
            })?;
            let owner_uuid = uuid_col(r, 1, owner)?;
            let data = text(r, 2).ok_or("its data is empty")?;
            serde_json::from_str::<Value>(&data)
                .map_err(|e| format!("its data is not valid JSON ({e})"))?;
            let type_uuid = target_types
                .get(&name)
                .cloned()
                .ok_or_else(|| format!("its auth type {name} is unknown"))?;
            let aad = if per_tenant {
                external::config_aad(&owner_uuid, &name)
            } else {
                external::user_aad(&owner_uuid, &name)
            };
            let sealed = match external::seal(keyring, &aad, &data) {
                Ok(s) => s,
                Err(e) => {
                    failed = Some(e.to_string());
                    return Err("it could not be encrypted".into());
                }
            };
            let key = format!("{name}|{owner_uuid}");
            let cells = if per_tenant {
                vec![t(Some(type_uuid)), t(Some(owner_uuid)), t(Some(sealed))]
            } else {
                vec![t(Some(owner_uuid)), t(Some(type_uuid)), t(Some(sealed))]
            };
            Ok((key, cells))
        });
        if let Some(e) = failed {
            return Err(ImportError::Failed(Error::Corrupt(e)));
        }
        Ok(prepared)
    }

    /// Refresh tokens, keyed by user and client (their value is a secret). Returns also the
    /// source uuid (value) → key map, for the tokens issued from them.
    fn refresh_tokens(&mut self, rows: Vec<SrcRow>) -> Result<(Prepared, HashMap<String, String>)> {
        let keyring = self.keyring;
        let mut keys = HashMap::new();
        let mut out = Prepared::new();
        for r in rows {
            let user = text(&r, 2).unwrap_or_default();
            let client = text(&r, 1).unwrap_or_default();
            let label = format!("user {user}, client {client}");
            let built = (|| {
                let value = text(&r, 0).unwrap_or_default();
                let value = Uuid::parse_str(&value)
                    .map_err(|_| "its value is not a UUID".to_string())?
                    .hyphenated()
                    .to_string();
                let user = uuid_col(&r, 2, "user uuid")?;
                if client.is_empty() {
                    return Err("its client id is empty".to_string());
                }
                let metadata = json_of(&text(&r, 9).unwrap_or_else(|| "{}".into()), "metadata")?;
                let sealed = refresh_tokens::seal_value(keyring, &client, &user, &value)
                    .map_err(|e| format!("it could not be encrypted: {e}"))?;
                Ok((value, user, metadata, sealed))
            })();
            let key = format!("{user}|{client}");
            match built {
                Ok((value, user, metadata, sealed)) => {
                    keys.insert(value.clone(), key.clone());
                    out.push(Row {
                        key,
                        label,
                        digest: digest(&r),
                        cells: vec![
                            t(Some(Uuid::new_v4().hyphenated().to_string())),
                            Cell::Bytes(Some(refresh_tokens::value_hash(&value))),
                            t(Some(refresh_tokens::IMPORTED_KEY_ID.to_string())),
                            t(Some(sealed)),
                            t(Some(client.clone())),
                            t(Some(user)),
                            t(text(&r, 3)),
                            t(text(&r, 4)),
                            t(Some(text(&r, 5).unwrap_or_default())),
                            t(Some(text(&r, 6).unwrap_or_default())),
                            t(text(&r, 7)),
                            Cell::Bool(flag(&r, 8).unwrap_or(false)),
                            Cell::Json(metadata),
                        ],
                    });
                }
                Err(why) => {
                    out.present.insert(key);
                    self.report.skip("refresh_tokens", &label, &why);
                }
            }
        }
        Ok((out, keys))
    }

    fn sessions(&mut self, rows: Vec<SrcRow>) -> Prepared {
        let now = self.now;
        let mut out = Prepared::new();
        for r in rows {
            let label = text(&r, 0).unwrap_or_default();
            let live = text(&r, 4)
                .and_then(|e| e.parse::<f64>().ok())
                .is_some_and(|e| e > now);
            if !live {
                self.report.counts("sessions").expired += 1;
                continue;
            }
            let built = (|| {
                let uuid = uuid_col(&r, 0, "uuid")?;
                let tenant = uuid_col(&r, 2, "tenant uuid")?;
                Ok::<_, String>((uuid, tenant))
            })();
            match built {
                Ok((uuid, tenant)) => out.push(Row {
                    key: uuid.clone(),
                    label,
                    // The creation time is derived from its tokens: not part of the row.
                    digest: digest(&r[..3]),
                    cells: vec![
                        t(Some(uuid)),
                        Cell::Bool(flag(&r, 1).unwrap_or(false)),
                        t(Some(tenant)),
                        t(text(&r, 3)),
                    ],
                }),
                Err(why) => {
                    out.present.insert(label.clone());
                    self.report.skip("sessions", &label, &why);
                }
            }
        }
        out
    }

    /// The keys of the source's live tokens (SHA-256 of the token, as stored here).
    fn token_keys(&self, rows: &[SrcRow]) -> HashSet<String> {
        rows.iter()
            .filter(|r| {
                text(r, 5)
                    .and_then(|e| e.parse::<f64>().ok())
                    .is_some_and(|e| e > self.now)
            })
            .map(|r| token_key(&text(r, 0).unwrap_or_default()))
            .collect()
    }

    fn token_rows(&mut self, rows: &[SrcRow], refresh: &HashMap<String, String>) -> Vec<Row> {
        let now = self.now;
        let mut xivo_uuids: Vec<String> = rows.iter().filter_map(|r| text(r, 3)).collect();
        xivo_uuids.sort();
        xivo_uuids.dedup();
        if !xivo_uuids.is_empty() {
            self.report.notes.push(format!(
                "the source's tokens carry the xivo_uuid {}: set this server's `uuid` to it (the \
                 original's XIVO_UUID) so that new tokens carry it too",
                xivo_uuids.join(", ")
            ));
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let raw = text(r, 0).unwrap_or_default();
            let label = tokens::redact(&raw);
            let expire = text(r, 5).and_then(|e| e.parse::<f64>().ok());
            if expire.is_some_and(|e| e <= now) {
                self.report.counts("tokens").expired += 1;
                continue;
            }
            let built = (|| {
                let token = Uuid::parse_str(&raw).map_err(|_| "it is not a UUID".to_string())?;
                let expire = expire.ok_or("it has no expiry")?;
                let issued = text(r, 4)
                    .and_then(|e| e.parse::<f64>().ok())
                    .unwrap_or(now);
                let metadata = match text(r, 6) {
                    None => Value::Object(Map::new()),
                    Some(m) => match json_of(&m, "metadata")? {
                        Value::Object(o) => Value::Object(o),
                        _ => return Err("its metadata is not a JSON object".to_string()),
                    },
                };
                let session = uuid_col(r, 7, "session uuid")?;
                let acl = acl_of(&text(r, 10).unwrap_or_else(|| "[]".into()))?;
                let refresh_uuid = match text(r, 11) {
                    None => None,
                    Some(v) => Some(
                        refresh
                            .get(&v.to_ascii_lowercase())
                            .cloned()
                            .ok_or("the refresh token it was issued from was not imported")?,
                    ),
                };
                Ok((token, issued, expire, metadata, session, acl, refresh_uuid))
            })();
            match built {
                Ok((token, issued, expire, metadata, session, acl, refresh_uuid)) => {
                    out.push(Row {
                        key: hex::encode(tokens::token_hash(&token)),
                        label,
                        digest: digest(r),
                        cells: vec![
                            Cell::Bytes(Some(tokens::token_hash(&token))),
                            t(text(r, 1)),
                            t(text(r, 2)),
                            t(text(r, 3)),
                            Cell::Float(issued),
                            Cell::Float(expire),
                            Cell::Json(metadata),
                            t(Some(session)),
                            t(Some(text(r, 8).unwrap_or_default())),
                            t(Some(text(r, 9).unwrap_or_default())),
                            Cell::Json(Value::from(acl)),
                            t(refresh_uuid),
                        ],
                    })
                }
                Err(why) => self.report.skip("tokens", &label, &why),
            }
        }
        out
    }

    /// The LDAP configurations, into `auth_ldap_config`: the source's columns (read from the
    /// row's JSON), the bind password sealed as the API seals it.
    fn ldap_configs(&mut self, rows: Vec<SrcRow>) -> Result<Prepared> {
        let keyring = self.keyring;
        let mut failed = None;
        let prepared = self.simple("ldap_configs", rows, 1, |r| {
            let tenant = uuid_col(r, 1, "tenant")?;
            let data = json_of(&text(r, 2).unwrap_or_else(|| "{}".into()), "row")?;
            let field = |name: &str| -> Option<String> {
                match data.get(name) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(v) => Some(v.to_string()),
                }
            };
            let required = |name: &str| field(name).ok_or(format!("its {name} is empty"));
            let sealed = match text(r, 3) {
                None => None,
                Some(secret) => match crate::ldap::seal_password(keyring, &tenant, &secret) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        failed = Some(e);
                        return Err("it could not be encrypted".into());
                    }
                },
            };
            Ok((
                tenant.clone(),
                vec![
                    t(Some(tenant)),
                    t(Some(required("host")?)),
                    t(Some(required("port")?)),
                    t(field("protocol_version")),
                    t(field("protocol_security")),
                    t(field("bind_dn")),
                    t(sealed),
                    t(Some(required("user_base_dn")?)),
                    t(Some(required("user_login_attribute")?)),
                    t(Some(required("user_email_attribute")?)),
                    t(field("search_filters")),
                    t(Some("ldap-config".into())),
                ],
            ))
        });
        if let Some(e) = failed {
            return Err(ImportError::Failed(e));
        }
        Ok(prepared)
    }

    fn side_rows(&mut self, kind: &str, rows: Vec<SrcRow>) -> Result<Prepared> {
        let keyring = self.keyring;
        let mut failed = None;
        let prepared = self.simple(kind, rows, 1, |r| {
            let key = text(r, 0).ok_or("its key is empty")?;
            let tenant = text(r, 1);
            let data = json_of(&text(r, 2).unwrap_or_else(|| "{}".into()), "row")?;
            let sealed = match text(r, 3) {
                None => None,
                Some(secret) => {
                    match keyring.seal(SIDE_PURPOSE, &side_row_aad(kind, &key), &secret) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            failed = Some(e);
                            return Err("it could not be encrypted".into());
                        }
                    }
                }
            };
            Ok((
                key.clone(),
                vec![
                    t(Some(kind.to_string())),
                    t(Some(key)),
                    t(tenant),
                    Cell::Json(data),
                    t(sealed),
                ],
            ))
        });
        if let Some(e) = failed {
            return Err(ImportError::Failed(Error::Corrupt(e)));
        }
        Ok(prepared)
    }
}

/// The import-state key of a token: the hex SHA-256 under which it is stored (its value, a
/// secret, is never a key).
fn token_key(raw: &str) -> String {
    match Uuid::parse_str(raw) {
        Ok(u) => hex::encode(tokens::token_hash(&u)),
        Err(_) => format!("unparsable:{}", tokens::redact(raw)),
    }
}

/// Source refresh token value → target row uuid, through their key (user and client).
async fn refresh_token_uuids(
    tx: &deadpool_postgres::Transaction<'_>,
    keys: &HashMap<String, String>,
) -> Result<HashMap<String, String>> {
    let by_key: HashMap<String, String> = tx
        .fetch(
            "SELECT user_uuid || '|' || client_id, uuid FROM auth_refresh_token",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(keys
        .iter()
        .filter_map(|(value, key)| Some((value.clone(), by_key.get(key)?.clone())))
        .collect())
}

/// A kind keyed by its `uuid` column, deleted by it.
fn by_uuid(kind: &'static str, table: &'static str, cols: Vec<Col>) -> Spec {
    Spec {
        kind,
        table,
        cols,
        conflict: &["uuid"],
        insert_only: &[],
        delete: format!("DELETE FROM {table} WHERE uuid = ANY($1)"),
    }
}

fn spec_tenants() -> Spec {
    Spec {
        kind: "tenants",
        table: "auth_tenant",
        cols: vec![
            col("uuid", Ty::Text),
            col("name", Ty::Text),
            col("phone", Ty::Text),
            col("parent_uuid", Ty::Text),
            col("slug", Ty::Text),
            col("default_authentication_method", Ty::Text),
        ],
        conflict: &["uuid"],
        insert_only: &[],
        delete: "DELETE FROM auth_tenant WHERE uuid = ANY($1) AND uuid <> parent_uuid".into(),
    }
}

fn spec_domains() -> Spec {
    by_uuid(
        "tenant_domains",
        "auth_tenant_domain",
        vec![
            col("uuid", Ty::Text),
            col("tenant_uuid", Ty::Text),
            col("name", Ty::Text),
        ],
    )
}

fn spec_addresses() -> Spec {
    Spec {
        kind: "addresses",
        table: "auth_address",
        cols: vec![
            col("tenant_uuid", Ty::Text),
            col("line_1", Ty::Text),
            col("line_2", Ty::Text),
            col("city", Ty::Text),
            col("state", Ty::Text),
            col("zip_code", Ty::Text),
            col("country", Ty::Text),
        ],
        conflict: &["tenant_uuid"],
        insert_only: &[],
        delete: "DELETE FROM auth_address WHERE tenant_uuid = ANY($1)".into(),
    }
}

fn spec_users() -> Spec {
    by_uuid(
        "users",
        "auth_user",
        vec![
            col("uuid", Ty::Text),
            col("username", Ty::Text),
            col("password_hash", Ty::Text),
            col("password_salt", Ty::Bytes),
            col("password_scheme", Ty::Text),
            col("firstname", Ty::Text),
            col("lastname", Ty::Text),
            col("enabled", Ty::Bool),
            col("tenant_uuid", Ty::Text),
            col("purpose", Ty::Text),
            col("authentication_method", Ty::Text),
        ],
    )
}

fn spec_emails() -> Spec {
    by_uuid(
        "emails",
        "auth_email",
        vec![
            col("uuid", Ty::Text),
            col("address", Ty::Text),
            col("confirmed", Ty::Bool),
            col("main", Ty::Bool),
            col("user_uuid", Ty::Text),
        ],
    )
}

fn spec_groups() -> Spec {
    by_uuid(
        "groups",
        "auth_group",
        vec![
            col("uuid", Ty::Text),
            col("name", Ty::Text),
            col("slug", Ty::Text),
            col("tenant_uuid", Ty::Text),
            col("system_managed", Ty::Bool),
        ],
    )
}

fn spec_policies() -> Spec {
    by_uuid(
        "policies",
        "auth_policy",
        vec![
            col("uuid", Ty::Text),
            col("name", Ty::Text),
            col("slug", Ty::Text),
            col("description", Ty::Text),
            col("tenant_uuid", Ty::Text),
            col("config_managed", Ty::Bool),
            col("shared", Ty::Bool),
            col_as(
                "acl",
                Ty::Json,
                "ARRAY(SELECT jsonb_array_elements_text(x.acl))",
            ),
        ],
    )
}

fn spec_association(
    kind: &'static str,
    table: &'static str,
    a: &'static str,
    b: &'static str,
) -> Spec {
    let conflict: &'static [&'static str] = match kind {
        "user_groups" => &["group_uuid", "user_uuid"],
        "user_policies" => &["user_uuid", "policy_uuid"],
        _ => &["group_uuid", "policy_uuid"],
    };
    Spec {
        kind,
        table,
        cols: vec![col(a, Ty::Text), col(b, Ty::Text)],
        conflict,
        insert_only: &[],
        delete: format!("DELETE FROM {table} WHERE ({a} || '|' || {b}) = ANY($1)"),
    }
}

fn spec_ext_configs() -> Spec {
    Spec {
        kind: "external_auth_configs",
        table: "auth_external_auth_config",
        cols: vec![
            col("type_uuid", Ty::Text),
            col("tenant_uuid", Ty::Text),
            col("data", Ty::Text),
        ],
        conflict: &["type_uuid", "tenant_uuid"],
        insert_only: &[],
        delete: "DELETE FROM auth_external_auth_config c USING auth_external_auth_type t
                 WHERE t.uuid = c.type_uuid AND (t.name || '|' || c.tenant_uuid) = ANY($1)"
            .into(),
    }
}

fn spec_user_ext() -> Spec {
    Spec {
        kind: "user_external_auths",
        table: "auth_user_external_auth",
        cols: vec![
            col("user_uuid", Ty::Text),
            col("external_auth_type_uuid", Ty::Text),
            col("data", Ty::Text),
        ],
        conflict: &["user_uuid", "external_auth_type_uuid"],
        insert_only: &[],
        delete: "DELETE FROM auth_user_external_auth e USING auth_external_auth_type t
                 WHERE t.uuid = e.external_auth_type_uuid
                   AND (t.name || '|' || e.user_uuid) = ANY($1)"
            .into(),
    }
}

fn spec_refresh_tokens() -> Spec {
    Spec {
        kind: "refresh_tokens",
        table: "auth_refresh_token",
        cols: vec![
            col("uuid", Ty::Text),
            col("token_hash", Ty::Bytes),
            col("key_id", Ty::Text),
            col("value_sealed", Ty::Text),
            col("client_id", Ty::Text),
            col("user_uuid", Ty::Text),
            col("backend", Ty::Text),
            col("login", Ty::Text),
            col("user_agent", Ty::Text),
            col("remote_addr", Ty::Text),
            col_as(
                "created_at",
                Ty::Text,
                "COALESCE(x.created_at::timestamptz, now())",
            ),
            col("mobile", Ty::Bool),
            col("metadata", Ty::Json),
        ],
        conflict: &["client_id", "user_uuid"],
        insert_only: &["uuid"],
        delete: "DELETE FROM auth_refresh_token WHERE (user_uuid || '|' || client_id) = ANY($1)"
            .into(),
    }
}

fn spec_sessions() -> Spec {
    Spec {
        kind: "sessions",
        table: "auth_session",
        cols: vec![
            col("uuid", Ty::Text),
            col("mobile", Ty::Bool),
            col("tenant_uuid", Ty::Text),
            col_as(
                "created_at",
                Ty::Text,
                "COALESCE(to_timestamp(x.created_at::float8), now())",
            ),
        ],
        conflict: &["uuid"],
        insert_only: &["created_at"],
        delete: "DELETE FROM auth_session WHERE uuid = ANY($1)".into(),
    }
}

fn spec_tokens() -> Spec {
    Spec {
        kind: "tokens",
        table: "auth_token",
        cols: vec![
            col("token_hash", Ty::Bytes),
            col("auth_id", Ty::Text),
            col("pbx_user_uuid", Ty::Text),
            col("xivo_uuid", Ty::Text),
            col("issued_t", Ty::Float),
            col("expire_t", Ty::Float),
            col("metadata", Ty::Json),
            col("session_uuid", Ty::Text),
            col("user_agent", Ty::Text),
            col("remote_addr", Ty::Text),
            col_as(
                "acl",
                Ty::Json,
                "ARRAY(SELECT jsonb_array_elements_text(x.acl))",
            ),
            col("refresh_token_uuid", Ty::Text),
        ],
        conflict: &["token_hash"],
        insert_only: &[],
        delete: "DELETE FROM auth_token
                 WHERE token_hash = ANY(ARRAY(SELECT decode(k, 'hex') FROM unnest($1::text[]) k
                                              WHERE k ~ '^[0-9a-f]{64}$'))"
            .into(),
    }
}

fn spec_ldap_configs() -> Spec {
    Spec {
        kind: "ldap_configs",
        table: "auth_ldap_config",
        cols: vec![
            col("tenant_uuid", Ty::Text),
            col("host", Ty::Text),
            col_as("port", Ty::Text, "x.port::integer"),
            col_as("protocol_version", Ty::Text, "x.protocol_version::smallint"),
            col("protocol_security", Ty::Text),
            col("bind_dn", Ty::Text),
            col("bind_password_sealed", Ty::Text),
            col("user_base_dn", Ty::Text),
            col("user_login_attribute", Ty::Text),
            col("user_email_attribute", Ty::Text),
            col("search_filters", Ty::Text),
            col("sealed_as", Ty::Text),
        ],
        conflict: &["tenant_uuid"],
        insert_only: &[],
        delete: "DELETE FROM auth_ldap_config WHERE tenant_uuid = ANY($1)".into(),
    }
}

fn spec_side(kind: &'static str) -> Spec {
    Spec {
        kind,
        table: "auth_imported_row",
        cols: vec![
            col("kind", Ty::Text),
            col("key", Ty::Text),
            col("tenant_uuid", Ty::Text),
            col("data", Ty::Json),
            col("sealed", Ty::Text),
        ],
        conflict: &["kind", "key"],
        insert_only: &[],
        delete: format!("DELETE FROM auth_imported_row WHERE kind = '{kind}' AND key = ANY($1)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_must_be_canonical() {
        assert!(is_uuid("5c51ad9d-3dca-4a80-b0c6-b288d7cd52fe"));
        assert!(!is_uuid("5C51AD9D-3DCA-4A80-B0C6-B288D7CD52FE"));
        assert!(!is_uuid("5c51ad9d3dca4a80b0c6b288d7cd52fe"));
        assert!(!is_uuid("not-a-uuid"));
    }

    #[test]
    fn json_with_nul_is_refused() {
        assert!(json_of(r#"{"a": "x\u0000y"}"#, "metadata").is_err());
        assert!(json_of(r#"{"a\u0000": 1}"#, "metadata").is_err());
        assert!(json_of("not json", "metadata").is_err());
        assert_eq!(
            json_of(r#"{"a": ["b"]}"#, "metadata").unwrap(),
            serde_json::json!({"a": ["b"]})
        );
    }

    #[test]
    fn acl_entries_with_control_characters_are_refused() {
        assert_eq!(acl_of(r#"["a.b", "!c.#"]"#).unwrap(), vec!["a.b", "!c.#"]);
        assert!(acl_of(r#"["a\u0001b"]"#).is_err());
        assert!(acl_of("{}").is_err());
    }

    #[test]
    fn every_kind_has_a_reader() {
        for kind in KINDS {
            assert!(
                READERS.iter().any(|(k, _)| k == kind),
                "no reader for {kind}"
            );
        }
    }
}
