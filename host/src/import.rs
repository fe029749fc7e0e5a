//! `wazo-auth import-original`: runs the core's importer ([`wazo_auth_core::import`]) on the
//! configured (or given) target, and prints its summary.

use std::time::Duration;

use wazo_auth_core::import::{self, ImportError, Report};
use wazo_auth_core::keys::Keyring;
use wazo_auth_core::storage::Storage;

use crate::config::{Config, ImportArgs};
use crate::server::{open_database, session_uri, stop_cluster};

/// The bound of each statement of an import: large sources take long single statements.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How a run ended.
pub enum Outcome {
    /// Imported (or dry run), the report to print.
    Done(Report),
    /// Refused before writing: the reason.
    Refused(String),
}

/// Runs the import. `Err` is a failure (nothing written).
pub fn run(cfg: &Config, args: &ImportArgs) -> Result<Outcome, String> {
    let (target_uri, session_uri, cluster) = match &args.to {
        Some(uri) => (uri.clone(), uri.clone(), None),
        None => {
            let (uri, cluster) = open_database(cfg)?;
            (uri.clone(), session_uri(cfg, &uri), cluster)
        }
    };
    let outcome = import_into(cfg, args, &target_uri, &session_uri);
    stop_cluster(cluster);
    outcome
}

fn import_into(
    cfg: &Config,
    args: &ImportArgs,
    target_uri: &str,
    session_uri: &str,
) -> Result<Outcome, String> {
    let keyring = Keyring::load_or_create(&cfg.secret_key_file)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let source = Storage::with_timeout(&args.from, 1, STATEMENT_TIMEOUT)
            .map_err(|e| format!("the source (--from): {e}"))?;
        let target = Storage::with_timeout(target_uri, 1, STATEMENT_TIMEOUT)
            .map_err(|e| format!("the target: {e}"))?;
        let wait = cfg.db_connect_retry_timeout_seconds.duration();
        source
            .wait_until_ready(wait)
            .await
            .map_err(|e| format!("the source database is unreachable: {e}"))?;
        target
            .wait_until_ready(wait)
            .await
            .map_err(|e| format!("the target database is unreachable: {e}"))?;
        target
            .migrate_direct(session_uri)
            .await
            .map_err(|e| format!("the target's migration failed: {e}"))?;
        match import::run(&source, &target, &keyring, args.dry_run).await {
            Ok(report) => Ok(Outcome::Done(report)),
            Err(ImportError::Refused(why)) => Ok(Outcome::Refused(why)),
            Err(ImportError::Failed(e)) => {
                Err(format!("the import failed, nothing was written: {e}"))
            }
        }
    })
}

/// The summary for a terminal: a table of counts, then each skipped row and each note.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "source: the original wazo-auth, schema revision {}\n\n",
        report.source_revision
    );
    out.push_str(&format!(
        "{:<22} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}\n",
        "kind", "source", "inserted", "updated", "unchanged", "removed", "skipped", "expired"
    ));
    for (kind, c) in &report.kinds {
        out.push_str(&format!(
            "{:<22} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}\n",
            kind, c.source, c.inserted, c.updated, c.unchanged, c.removed, c.skipped, c.expired
        ));
    }
    if !report.skipped.is_empty() {
        out.push_str(&format!("\nskipped ({}):\n", report.skipped.len()));
        for s in &report.skipped {
            out.push_str(&format!("  {} {}: {}\n", s.kind, s.key, s.reason));
        }
    }
    if !report.notes.is_empty() {
        out.push_str("\nnotes:\n");
        for n in &report.notes {
            out.push_str(&format!("  {n}\n"));
        }
    }
    out.push('\n');
    out.push_str(if report.committed {
        "committed.\n"
    } else {
        "dry run: rolled back, nothing was written.\n"
    });
    out
}
