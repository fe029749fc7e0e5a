//! A PostgreSQL primary with a synchronous streaming standby, each a private cluster with its
//! own data directory and unix socket, for the failover tests (issue 20). Both are stopped, and
//! their directories removed, when the pair is dropped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wazo_auth_core::pg_cluster::{Cluster, ClusterOptions};

use crate::{sql, unique};

pub struct Replicated {
    root: PathBuf,
    pub primary: Cluster,
    pub standby: Cluster,
}

impl Replicated {
    /// A primary holding the (empty) database `db`, and a standby of it that every commit
    /// waits for (`synchronous_standby_names = '*'`, `synchronous_commit = on`), streaming
    /// when this returns.
    pub fn start(db: &str) -> Replicated {
        let root = std::env::temp_dir().join(unique("wazo-auth-failover"));
        std::fs::create_dir_all(&root).unwrap();
        // Whatever fails half-way, the clusters started so far are stopped.
        let mut started = Started {
            root: Some(root.clone()),
            clusters: Vec::new(),
        };
        started.clusters.push(
            Cluster::start(&ClusterOptions::new(root.join("primary")))
                .unwrap_or_else(|e| panic!("cannot start the primary: {e}")),
        );
        let primary = &started.clusters[0];
        primary.ensure_database(db).unwrap();
        primary
            .base_backup(&root.join("standby"))
            .unwrap_or_else(|e| panic!("cannot make the standby: {e}"));
        let admin = primary.connection_string("postgres");
        started.clusters.push(
            Cluster::start(&ClusterOptions::new(root.join("standby")))
                .unwrap_or_else(|e| panic!("cannot start the standby: {e}")),
        );
        sql(&admin, "ALTER SYSTEM SET synchronous_standby_names = '*'");
        sql(&admin, "SELECT pg_reload_conf()");
        let deadline = Instant::now() + Duration::from_secs(30);
        while sql(
            &admin,
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'",
        )[0][0]
            .as_deref()
            != Some("1")
        {
            assert!(Instant::now() < deadline, "the standby never became synchronous");
            std::thread::sleep(Duration::from_millis(100));
        }
        // From here on, the pair stops them.
        started.root = None;
        let standby = started.clusters.pop().unwrap();
        let primary = started.clusters.pop().unwrap();
        Replicated {
            root,
            primary,
            standby,
        }
    }

    /// A connection string naming both servers, for the one that accepts writes
    /// (`target_session_attrs=read-write`): the primary, then the standby once promoted.
    pub fn uri(&self, db: &str) -> String {
        format!(
            "host={},{} port={},{} user=postgres dbname={db} target_session_attrs=read-write",
            self.primary.socket_dir().display(),
            self.standby.socket_dir().display(),
            self.primary.port(),
            self.standby.port()
        )
    }

    /// Stops the primary as a crash would, then promotes the standby.
    pub fn fail_over(&self) {
        self.primary
            .crash()
            .unwrap_or_else(|e| panic!("cannot stop the primary: {e}"));
        self.standby
            .promote()
            .unwrap_or_else(|e| panic!("cannot promote the standby: {e}"));
    }
}

/// The clusters [`Replicated::start`] has started so far, stopped (and their directory removed)
/// if it fails before the pair exists.
struct Started {
    root: Option<PathBuf>,
    clusters: Vec<Cluster>,
}

impl Drop for Started {
    fn drop(&mut self) {
        for c in self.clusters.iter().rev() {
            let _ = c.crash();
        }
        if let Some(root) = &self.root {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

impl Drop for Replicated {
    fn drop(&mut self) {
        let _ = self.standby.stop();
        let _ = self.primary.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
