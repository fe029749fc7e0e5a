//! A private PgBouncer (the Debian package's `pgbouncer`) in front of the test PostgreSQL
//! cluster, in transaction pooling mode: its own configuration, TCP port (on 127.0.0.1) and
//! unix socket directory, under a scratch directory; stopped by PID.
//!
//! - [`PgBouncer::start`]: one for a test (e.g. with a tiny server pool);
//! - with `WAZO_AUTH_TEST_PGBOUNCER=1`, every server the harness starts reaches its database
//!   (`db_uri`) through one PgBouncer shared by the test binary ([`shared`]), and LISTEN and the
//!   advisory locks directly (`db_listen_uri`): see [`crate::ServerBuilder::try_start`].
//!
//! PgBouncer refuses to run as root: when the tests run as root it runs as the owner of the
//! cluster's socket directory (the PostgreSQL user), which may also reach that socket.

use crate::free_port;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether the harness's servers go through PgBouncer (`WAZO_AUTH_TEST_PGBOUNCER=1`).
pub fn enabled() -> bool {
    std::env::var("WAZO_AUTH_TEST_PGBOUNCER").is_ok_and(|v| v == "1")
}

/// The server pool of the shared PgBouncer, per database (each test has its own database).
const SHARED_POOL_SIZE: u32 = 4;

static SHARED: OnceLock<PgBouncer> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    if let Some(p) = SHARED.get() {
        p.terminate();
    }
}

/// The PgBouncer shared by this test binary's servers (started on first use, stopped at exit).
pub fn shared() -> &'static PgBouncer {
    SHARED.get_or_init(|| {
        let bouncer = PgBouncer::start(SHARED_POOL_SIZE);
        unsafe {
            libc::atexit(stop_shared_at_exit);
        }
        bouncer
    })
}

/// The `pgbouncer` program (the Debian package puts it in /usr/sbin).
fn program() -> PathBuf {
    crate::sbin_program("pgbouncer")
}

/// A running PgBouncer.
pub struct PgBouncer {
    child: std::sync::Mutex<Option<Child>>,
    dir: PathBuf,
    pub port: u16,
    pub pool_size: u32,
}

impl PgBouncer {
    /// Starts a PgBouncer in transaction mode in front of the test cluster, with at most
    /// `pool_size` server connections per database; returns once it accepts connections.
    pub fn start(pool_size: u32) -> PgBouncer {
        let cluster = crate::test_cluster();
        let socket_dir = cluster.socket_dir();
        let owner = std::fs::metadata(socket_dir).expect("the cluster's socket directory");
        let dir = crate::scratch_dir("pgbouncer");
        std::os::unix::fs::chown(&dir, Some(owner.uid()), Some(owner.gid()))
            .expect("chown the PgBouncer directory");
        // trust: the user must still be listed in auth_file.
        std::fs::write(
            dir.join("users.txt"),
            format!("\"{}\" \"\"\n", cluster.superuser()),
        )
        .unwrap();
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let ini = format!(
                "[databases]\n\
                 * = host={socket} port={pg_port} user={user}\n\
                 \n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir = {dir}\n\
                 auth_type = trust\n\
                 auth_file = {dir}/users.txt\n\
                 admin_users = {user}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 min_pool_size = 0\n\
                 reserve_pool_size = 0\n\
                 max_client_conn = 2000\n\
                 ; the server's statement_timeout option cannot be passed per client\n\
                 ignore_startup_parameters = options, extra_float_digits\n\
                 query_wait_timeout = 30\n\
                 logfile = {dir}/pgbouncer.log\n\
                 log_connections = 0\n\
                 log_disconnections = 0\n",
                socket = socket_dir.display(),
                pg_port = cluster.port(),
                user = cluster.superuser(),
                dir = dir.display(),
            );
            let ini_path = dir.join("pgbouncer.ini");
            std::fs::write(&ini_path, ini).unwrap();
            let mut cmd = Command::new(program());
            cmd.arg(&ini_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if unsafe { libc::geteuid() } == 0 {
                cmd.uid(owner.uid()).gid(owner.gid());
            }
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run pgbouncer ({}): {e}", program().display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return PgBouncer {
                        child: std::sync::Mutex::new(Some(child)),
                        dir,
                        port,
                        pool_size,
                    };
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Most likely the port was taken in between: another one.
            last_log = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
        }
        panic!("pgbouncer did not start; its log:\n{last_log}");
    }

    /// The connection string of the test cluster's database `direct` (a connection string of
    /// the harness), through this PgBouncer.
    pub fn uri(&self, direct: &str) -> String {
        let dbname = direct
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("dbname="))
            .expect("a connection string with dbname=");
        format!(
            "host=127.0.0.1 port={} user={} dbname={dbname}",
            self.port,
            crate::test_cluster().superuser()
        )
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// `SHOW POOLS` of the admin console, as rows of column name to value, for database `db`.
    pub fn pools(&self, db: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-F",
                "\t",
                "-P",
                "footer=off",
                "-h",
                "127.0.0.1",
                "-p",
            ])
            .arg(self.port.to_string())
            .args(["-U", crate::test_cluster().superuser(), "-d", "pgbouncer"])
            .args(["-c", "SHOW POOLS"])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql SHOW POOLS: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split('\t')
            .map(String::from)
            .collect();
        lines
            .map(|l| {
                header
                    .iter()
                    .cloned()
                    .zip(l.split('\t').map(String::from))
                    .collect::<std::collections::BTreeMap<_, _>>()
            })
            .filter(|row| row.get("database").map(String::as_str) == Some(db))
            .collect()
    }

    /// Stops it (SIGTERM to its PID, then SIGKILL after 5 s).
    fn terminate(&self) {
        let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        crate::stop_child(&mut child, Duration::from_secs(5));
        if std::env::var_os("WAZO_AUTH_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.terminate();
    }
}
