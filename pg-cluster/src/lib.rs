//! A private PostgreSQL cluster managed by wazo-auth itself.
//!
//! Used as the development default when no `db_uri` is configured, and by the
//! black-box test harness (one throw-away cluster per test run).
//!
//! The cluster listens ONLY on a unix socket in a directory inside the data
//! directory (`listen_addresses = ''`), so it never conflicts with another
//! PostgreSQL server running on the machine, and `trust` authentication is
//! safe: only the owner of the (mode 0700) socket directory and root can
//! connect.
//!
//! Everything here is blocking (it runs once at startup). When the process is
//! root, `initdb`/`pg_ctl`/`postgres` are run as an unprivileged system user
//! (PostgreSQL refuses to run as root).
//!
//! The wazo-auth core re-exports this crate as `wazo_auth_core::pg_cluster`.

mod binaries;
mod command;
mod files;
mod os_user;
mod procfs;
mod sql;

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use binaries::{binary_major_version, check_bin_dir, discover_bin_dir};
use command::{describe_output, log_tail, run};
use files::{
    absolute, check_traversable, ensure_private_dir, prepare_data_dir, socket_dir_for, write_owned,
};
use os_user::{current_user_name, is_root, resolve_os_user, OsUser};
use procfs::{processes_in_dir, read_pid_file};
use sql::{conf_string, conn_value, create_database_if_missing};

/// Superuser role created by `initdb`.
const SUPERUSER: &str = "postgres";
/// Port number: only used to name the unix socket (`.s.PGSQL.<port>`).
pub(crate) const PORT: u16 = 5432;
/// Our settings live in this file (inside the data directory), included from
/// `postgresql.conf`; it is rewritten at every start.
const CONF_FILE: &str = "wazo-auth.conf";
const CONF_INCLUDE_LINE: &str = "include_if_exists = 'wazo-auth.conf'";
/// Who started the running cluster (inside the data directory): `<pid> <start time> <postmaster
/// pid>` of the process responsible for stopping it. Lets a process adopt, and later stop, a
/// cluster whose starter died without stopping it (killed, or a plugin that aborted).
const OWNER_FILE: &str = "wazo-auth.owner";
/// Seconds `pg_ctl -w` waits for start/stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// Where and how to run the private cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Data directory (e.g. `./var/postgres`); created if missing.
    pub data_dir: PathBuf,
    /// Where `initdb`/`pg_ctl`/`postgres` live; `None` = discover.
    pub bin_dir: Option<PathBuf>,
    /// User to run postgres as when we are root; `None` = auto (`postgres`,
    /// else a `wazo-auth-pg` system user created on demand).
    pub os_user: Option<String>,
}

impl ClusterOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            data_dir: data_dir.into(),
            bin_dir: None,
            os_user: None,
        }
    }
}

/// Error starting/stopping/using the private cluster; the message says what to do.
#[derive(Debug)]
pub struct ClusterError(pub String);

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterError {}

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T, ClusterError> {
    Err(ClusterError(msg.into()))
}

/// A running private PostgreSQL cluster.
#[derive(Debug)]
pub struct Cluster {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    run_as: Option<OsUser>,
    /// Whether this process started the server (false when it reused a running one).
    started_here: bool,
    /// Whether this process reused a running server whose starter is gone, and so stops it.
    adopted: bool,
}

impl Cluster {
    /// `initdb` once (if `data_dir` has no `PG_VERSION`), then start the
    /// server if it is not already running (`pg_ctl -w`), listening only on a
    /// unix socket in a directory inside `data_dir`.
    pub fn start(opts: &ClusterOptions) -> Result<Cluster, ClusterError> {
        if opts.data_dir.as_os_str().is_empty() {
            return err(
                "no PostgreSQL data directory given: set data_dir to a path (e.g. ./var/postgres)",
            );
        }
        let data_dir = absolute(&opts.data_dir)?;
        let run_as = if is_root() {
            Some(resolve_os_user(opts.os_user.as_deref())?)
        } else {
            if let Some(name) = &opts.os_user {
                if current_user_name().as_deref() != Some(name.as_str()) {
                    log::warn!(
                        "postgres os_user {name:?} ignored: not running as root, \
                         the private PostgreSQL cluster runs as the current user"
                    );
                }
            }
            None
        };

        let bin_dir = match &opts.bin_dir {
            Some(dir) => {
                let dir = absolute(dir)?;
                check_bin_dir(&dir)?;
                dir
            }
            None => discover_bin_dir(&data_dir)?,
        };
        log::debug!("PostgreSQL binaries: {}", bin_dir.display());

        // Data directory: check reachability (before creating anything and
        // again after, for parents we created), create, fix ownership and mode.
        if let Some(user) = &run_as {
            check_traversable(&data_dir, user)?;
        }
        prepare_data_dir(&data_dir, run_as.as_ref())?;
        let data_dir = data_dir.canonicalize().unwrap_or(data_dir);

        let socket_dir = socket_dir_for(&data_dir);
        if let Some(user) = &run_as {
            check_traversable(&data_dir, user)?;
            check_traversable(&socket_dir, user)?;
        }

        let mut cluster = Cluster {
            data_dir,
            bin_dir,
            socket_dir,
            port: PORT,
            run_as,
            started_here: false,
            adopted: false,
        };

        if cluster.data_dir.join("PG_VERSION").exists() {
            cluster.check_version()?;
        } else {
            cluster.initdb()?;
        }
        cluster.prepare_runtime_dirs()?;
        cluster.write_config()?;

        match cluster.status()? {
            Status::Running(pid) if !cluster.stale_pid(pid) => {
                log::info!(
                    "reusing running PostgreSQL cluster in {} (pid {})",
                    cluster.data_dir.display(),
                    pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
                );
                cluster.adopt_running_socket();
                cluster.adopt_if_orphaned(pid)?;
            }
            Status::Running(pid) => {
                cluster.remove_stale_pid_file(pid)?;
                cluster.pg_ctl_start()?;
                cluster.started_here = true;
            }
            Status::Stopped => {
                cluster.pg_ctl_start()?;
                cluster.started_here = true;
            }
        }
        if cluster.started_here {
            cluster.write_owner()?;
        }
        Ok(cluster)
    }

    /// A connection string usable by `tokio_postgres::Config::from_str` for
    /// database `dbname`.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            conn_value(&self.socket_dir.to_string_lossy()),
            self.port,
            conn_value(SUPERUSER),
            conn_value(dbname)
        )
    }

    /// Creates the database if it does not exist.
    pub fn ensure_database(&self, dbname: &str) -> Result<(), ClusterError> {
        if dbname.is_empty() || dbname.contains('\0') {
            return err(format!("invalid database name {dbname:?}"));
        }
        let admin = self.connection_string("postgres");
        let dbname_owned = dbname.to_owned();
        // A dedicated thread with its own runtime: works whether or not the
        // caller is itself inside a tokio runtime.
        let handle = std::thread::Builder::new()
            .name("pg-cluster-createdb".into())
            .spawn(move || -> Result<bool, String> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot build tokio runtime: {e}"))?;
                rt.block_on(create_database_if_missing(&admin, &dbname_owned))
            })
            .map_err(|e| ClusterError(format!("cannot spawn thread: {e}")))?;
        match handle.join() {
            Ok(Ok(true)) => {
                log::info!("created PostgreSQL database {dbname:?}");
                Ok(())
            }
            Ok(Ok(false)) => {
                log::debug!("PostgreSQL database {dbname:?} already exists");
                Ok(())
            }
            Ok(Err(e)) => err(format!(
                "cannot create database {dbname:?} in the private PostgreSQL cluster \
                 (socket directory {}): {e}; see {}",
                self.socket_dir.display(),
                self.log_file().display()
            )),
            Err(_) => err(format!(
                "creating database {dbname:?} failed (thread panicked)"
            )),
        }
    }

    /// `pg_ctl stop -m fast`; idempotent.
    pub fn stop(&self) -> Result<(), ClusterError> {
        if let Status::Stopped = self.status()? {
            log::debug!(
                "PostgreSQL cluster in {} is not running",
                self.data_dir.display()
            );
            return Ok(());
        }
        log::info!("stopping PostgreSQL cluster in {}", self.data_dir.display());
        let mut cmd = self.command("pg_ctl");
        cmd.arg("stop").arg("-D").arg(&self.data_dir).args([
            "-m",
            "fast",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
        ]);
        let out = run(&mut cmd)?;
        if out.status.success() {
            self.remove_owner();
            return Ok(());
        }
        // Someone else may have stopped it in the meantime.
        if let Ok(Status::Stopped) = self.status() {
            self.remove_owner();
            return Ok(());
        }
        err(format!(
            "cannot stop PostgreSQL cluster in {}: {}",
            self.data_dir.display(),
            describe_output(&out)
        ))
    }

    /// Makes `standby_dir` a streaming standby of this (running) cluster: `pg_basebackup` of
    /// the whole cluster with its WAL, and the `standby.signal` and `primary_conninfo` that make
    /// it follow this one (over this cluster's unix socket). Start it with [`Cluster::start`] on
    /// `standby_dir`: it then listens on its own socket. Used by the failover tests.
    pub fn base_backup(&self, standby_dir: &Path) -> Result<(), ClusterError> {
        let standby_dir = absolute(standby_dir)?;
        if standby_dir.exists() {
            return err(format!(
                "cannot make a standby in {}: it exists",
                standby_dir.display()
            ));
        }
        prepare_data_dir(&standby_dir, self.run_as.as_ref())?;
        let mut cmd = self.command("pg_basebackup");
        cmd.arg("-D")
            .arg(&standby_dir)
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-X", "stream", "-R", "-c", "fast"]);
        let out = run(&mut cmd)?;
        if !out.status.success() {
            return err(format!(
                "pg_basebackup of {} into {} failed: {}",
                self.data_dir.display(),
                standby_dir.display(),
                describe_output(&out)
            ));
        }
        // What the copy took of this cluster's running state: whose cluster it is (decided
        // when it starts), the socket's lock file (which would stop it from starting) and the
        // log.
        let _ = fs::remove_file(standby_dir.join(OWNER_FILE));
        for dir in [socket_dir_for(&standby_dir), standby_dir.join("log")] {
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    /// Promotes this standby to a primary (`pg_ctl promote -w`: returns once it accepts
    /// writes).
    pub fn promote(&self) -> Result<(), ClusterError> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("promote")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
        let out = run(&mut cmd)?;
        if !out.status.success() {
            return err(format!(
                "cannot promote the PostgreSQL cluster in {}: {}",
                self.data_dir.display(),
                describe_output(&out)
            ));
        }
        Ok(())
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`: no checkpoint,
    /// every connection cut). Used by the failover tests.
    pub fn crash(&self) -> Result<(), ClusterError> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("stop").arg("-D").arg(&self.data_dir).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
        ]);
        let out = run(&mut cmd)?;
        if !out.status.success() {
            return err(format!(
                "cannot stop the PostgreSQL cluster in {}: {}",
                self.data_dir.display(),
                describe_output(&out)
            ));
        }
        self.remove_owner();
        Ok(())
    }

    /// Whether [`Cluster::start`] started the server (rather than reusing a running one):
    /// only then should this process stop it.
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Whether this process must stop the cluster when it exits: it started it, or it reused a
    /// cluster left running by a wazo-auth process that is gone (killed without stopping it).
    /// A cluster started by hand, or by a wazo-auth process still running, is left running.
    pub fn stops_at_exit(&self) -> bool {
        self.started_here || self.adopted
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Directory holding the unix socket (`host=` of the connection string).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PostgreSQL superuser role (trust authentication).
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// Server log file (`pg_ctl -l`).
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("log").join("postgres.log")
    }

    // ---- internals ------------------------------------------------------

    /// A command for a PostgreSQL binary, run as the unprivileged user if any.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        // The current directory may not be readable by the postgres user.
        cmd.current_dir("/");
        for var in [
            "PGDATA",
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGPASSFILE",
        ] {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null());
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid).gid(user.gid);
            cmd.env("HOME", &self.data_dir)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        cmd
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        log::info!(
            "initializing PostgreSQL cluster in {} (initdb)",
            self.data_dir.display()
        );
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("--auth=trust")
            .arg(format!("--username={SUPERUSER}"))
            .args(["-E", "UTF8", "--locale=C"]);
        let out = run(&mut cmd)?;
        if !out.status.success() {
            return err(format!(
                "initdb failed for {}: {}",
                self.data_dir.display(),
                describe_output(&out)
            ));
        }
        Ok(())
    }

    /// Refuses to start a cluster created by another major version.
    fn check_version(&self) -> Result<(), ClusterError> {
        let data_version = fs::read_to_string(self.data_dir.join("PG_VERSION"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let Some(bin_version) = binary_major_version(&self.bin_dir) else {
            return Ok(());
        };
        if !data_version.is_empty() && data_version != bin_version {
            return err(format!(
                "the PostgreSQL cluster in {} was created by PostgreSQL {data_version} but the \
                 binaries in {} are PostgreSQL {bin_version}: install the PostgreSQL \
                 {data_version} server (Debian: apt-get install postgresql-{data_version}) or \
                 point bin_dir at it, or delete {} to start from an empty database",
                self.data_dir.display(),
                self.bin_dir.display(),
                self.data_dir.display()
            ));
        }
        Ok(())
    }

    /// Log and socket directories, owned by the postgres user, mode 0700.
    fn prepare_runtime_dirs(&self) -> Result<(), ClusterError> {
        ensure_private_dir(&self.data_dir.join("log"), self.run_as.as_ref())?;
        ensure_private_dir(&self.socket_dir, self.run_as.as_ref())?;
        Ok(())
    }

    /// Writes our settings to `wazo-auth.conf` and includes it from
    /// `postgresql.conf` (so a cluster started by hand behaves the same).
    fn write_config(&self) -> Result<(), ClusterError> {
        let conf = self.data_dir.join("postgresql.conf");
        let content = fs::read_to_string(&conf).map_err(|e| {
            ClusterError(format!(
                "cannot read {}: {e}; the PostgreSQL cluster in {} looks damaged, \
                 delete that directory to re-create it",
                conf.display(),
                self.data_dir.display()
            ))
        })?;
        if !content.lines().any(|l| l.trim() == CONF_INCLUDE_LINE) {
            let mut new = content;
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str("\n# Settings managed by wazo-auth (rewritten at each start)\n");
            new.push_str(CONF_INCLUDE_LINE);
            new.push('\n');
            write_owned(&conf, &new, self.run_as.as_ref())?;
        }
        let ours = format!(
            "# Managed by wazo-auth: rewritten at each start, do not edit.\n\
             listen_addresses = ''\n\
             port = {}\n\
             unix_socket_directories = {}\n\
             unix_socket_permissions = 0700\n\
             max_connections = 100\n\
             shared_buffers = 32MB\n\
             logging_collector = off\n",
            self.port,
            conf_string(&self.socket_dir.to_string_lossy())
        );
        let path = self.data_dir.join(CONF_FILE);
        if fs::read_to_string(&path).ok().as_deref() != Some(ours.as_str()) {
            write_owned(&path, &ours, self.run_as.as_ref())?;
        }
        Ok(())
    }

    fn status(&self) -> Result<Status, ClusterError> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("status").arg("-D").arg(&self.data_dir);
        let out = run(&mut cmd)?;
        match out.status.code() {
            Some(0) => Ok(Status::Running(
                read_pid_file(&self.data_dir).map(|p| p.pid),
            )),
            Some(3) => Ok(Status::Stopped),
            _ => err(format!(
                "cannot get the status of the PostgreSQL cluster in {}: {}",
                self.data_dir.display(),
                describe_output(&out)
            )),
        }
    }

    /// `pg_ctl status` believes the pid in postmaster.pid is alive; make sure
    /// it is a postgres process and not an unrelated process that reused the
    /// pid (typical after a container restart).
    fn stale_pid(&self, pid: Option<i32>) -> bool {
        let Some(pid) = pid else { return false };
        // "<pid> (<comm>) <state> ..."; comm may itself contain ')'.
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            // No /proc (or the process is gone since): trust pg_ctl.
            return false;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            return false;
        };
        let comm = stat.get(open + 1..close).unwrap_or("");
        let state = stat
            .get(close + 1..)
            .unwrap_or("")
            .trim_start()
            .chars()
            .next();
        let why = if matches!(state, Some('Z') | Some('X')) {
            "has exited (zombie)"
        } else if comm != "postgres" && comm != "postmaster" {
            "is not PostgreSQL"
        } else {
            return false;
        };
        log::warn!(
            "{}/postmaster.pid names pid {pid} ({comm:?}), which {why}: treating it as stale",
            self.data_dir.display()
        );
        true
    }

    /// Removes postmaster.pid (and the socket lock file) left by a dead
    /// postmaster, once no process of the old cluster is left: a killed
    /// postmaster's backends may still be running for a moment, and starting
    /// a new server while they are alive would corrupt the data.
    fn remove_stale_pid_file(&self, stale_pid: Option<i32>) -> Result<(), ClusterError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let users: Vec<i32> = processes_in_dir(&self.data_dir)
                .into_iter()
                .filter(|p| Some(*p) != stale_pid)
                .collect();
            if users.is_empty() {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return err(format!(
                    "processes {users:?} of a previous PostgreSQL server still use {}: stop \
                     them (kill {}) and retry",
                    self.data_dir.display(),
                    users
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let mut socket_dirs = vec![self.socket_dir.clone()];
        if let Some(dir) = read_pid_file(&self.data_dir).and_then(|p| p.socket_dir) {
            socket_dirs.push(dir);
        }
        for dir in socket_dirs {
            let lock = dir.join(format!(".s.PGSQL.{}.lock", self.port));
            let owner = fs::read_to_string(&lock)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
            if owner.is_some() && owner == stale_pid {
                log::debug!("removing stale {}", lock.display());
                let _ = fs::remove_file(&lock);
            }
        }
        let path = self.data_dir.join("postmaster.pid");
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => err(format!("cannot remove stale {}: {e}", path.display())),
        }
    }

    /// Records this process as the one that stops the running cluster (see [`OWNER_FILE`]).
    fn write_owner(&self) -> Result<(), ClusterError> {
        let me = std::process::id() as i32;
        let postmaster = read_pid_file(&self.data_dir).map_or(0, |p| p.pid);
        let line = format!(
            "{me} {} {postmaster}\n",
            process_start_time(me).unwrap_or_default()
        );
        write_owned(&self.data_dir.join(OWNER_FILE), &line, self.run_as.as_ref())
    }

    fn remove_owner(&self) {
        let _ = fs::remove_file(self.data_dir.join(OWNER_FILE));
    }

    /// The running cluster (postmaster `pid`) was started by a wazo-auth process that is gone:
    /// nobody would stop it, so this process takes that over. One that is still running, or a
    /// cluster started by something else (no owner file, or one naming another postmaster),
    /// is left alone.
    fn adopt_if_orphaned(&mut self, pid: Option<i32>) -> Result<(), ClusterError> {
        let text = fs::read_to_string(self.data_dir.join(OWNER_FILE)).unwrap_or_default();
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [owner, started, postmaster] = fields[..] else {
            log::info!(
                "the PostgreSQL cluster in {} was not started by wazo-auth: it is left running \
                 at exit",
                self.data_dir.display()
            );
            return Ok(());
        };
        let (Ok(owner), Ok(postmaster)) = (owner.parse::<i32>(), postmaster.parse::<i32>()) else {
            return Ok(());
        };
        if pid != Some(postmaster) {
            log::info!(
                "the PostgreSQL cluster in {} was not started by wazo-auth: it is left running \
                 at exit",
                self.data_dir.display()
            );
            return Ok(());
        }
        let owner_alive = process_start_time(owner).is_some_and(|t| t.to_string() == started);
        if owner_alive {
            log::info!(
                "the PostgreSQL cluster in {} belongs to wazo-auth process {owner}, still \
                 running: that process stops it, this one leaves it running at exit",
                self.data_dir.display()
            );
            return Ok(());
        }
        log::warn!(
            "the PostgreSQL cluster in {} was left running by wazo-auth process {owner}, which \
             is gone (killed, or aborted by a plugin): this process adopts it and stops it at \
             exit",
            self.data_dir.display()
        );
        self.adopted = true;
        self.write_owner()
    }

    /// A cluster started by someone else may use another socket dir/port:
    /// postmaster.pid tells where it actually listens.
    fn adopt_running_socket(&mut self) {
        if let Some(info) = read_pid_file(&self.data_dir) {
            if let Some(port) = info.port {
                self.port = port;
            }
            match info.socket_dir {
                Some(dir) => {
                    if dir != self.socket_dir {
                        log::info!(
                            "running PostgreSQL cluster listens in {} (not {})",
                            dir.display(),
                            self.socket_dir.display()
                        );
                        self.socket_dir = dir;
                    }
                }
                None => log::warn!(
                    "running PostgreSQL cluster in {} reports no unix socket; \
                     restart it (stop it with: pg_ctl stop -D {})",
                    self.data_dir.display(),
                    self.data_dir.display()
                ),
            }
        }
    }

    fn pg_ctl_start(&mut self) -> Result<(), ClusterError> {
        log::info!(
            "starting PostgreSQL cluster in {} (socket in {})",
            self.data_dir.display(),
            self.socket_dir.display()
        );
        let mut cmd = self.command("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
        let out = run(&mut cmd)?;
        if out.status.success() {
            return Ok(());
        }
        // Another process may have started it concurrently.
        if let Ok(Status::Running(pid)) = self.status() {
            if !self.stale_pid(pid) {
                log::info!(
                    "PostgreSQL cluster in {} was started concurrently; reusing it",
                    self.data_dir.display()
                );
                self.adopt_running_socket();
                return Ok(());
            }
        }
        err(format!(
            "cannot start PostgreSQL in {}: {}{}",
            self.data_dir.display(),
            describe_output(&out),
            log_tail(&self.log_file(), 15)
        ))
    }
}

enum Status {
    Running(Option<i32>),
    Stopped,
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`, in clock ticks since boot):
/// with the pid, it names one process, even after the pid is reused. `None` when the process
/// does not exist, is a zombie, or there is no /proc.
fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binaries::parse_version;
    use crate::sql::quote_ident;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh directory under the system temp dir, traversable by the
    /// postgres user (mode 0755); the data dir itself is created by `start`.
    fn temp_base(tag: &str) -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "wazo-auth-pgtest-{tag}-{}-{n}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    /// Stops the cluster even if the test fails half-way.
    struct Guard(Option<Cluster>, PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(c) = self.0.take() {
                let _ = c.stop();
                if !c.socket_dir().starts_with(&self.1) {
                    let _ = fs::remove_dir_all(c.socket_dir());
                }
            }
            let _ = fs::remove_dir_all(&self.1);
        }
    }

    fn query_i32(rt: &tokio::runtime::Runtime, conn: &str, sql: &str) -> Vec<i32> {
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls)
                .await
                .expect("connect");
            let task = tokio::spawn(connection);
            let rows = client.query(sql, &[]).await.expect("query");
            drop(client);
            let _ = task.await;
            rows.iter().map(|r| r.get::<_, i32>(0)).collect()
        })
    }

    fn exec(rt: &tokio::runtime::Runtime, conn: &str, sql: &str) {
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls)
                .await
                .expect("connect");
            let task = tokio::spawn(connection);
            client.batch_execute(sql).await.expect("exec");
            drop(client);
            let _ = task.await;
        })
    }

    #[test]
    fn start_stop_restart_keeps_data() {
        let base = temp_base("basic");
        let mut guard = Guard(None, base.clone());
        let opts = ClusterOptions::new(base.join("var").join("postgres"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();

        let cluster = Cluster::start(&opts).expect("start");
        assert_eq!(cluster.socket_dir(), cluster.data_dir().join("socket"));
        let mode = fs::metadata(cluster.data_dir())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(cluster.log_file().exists());
        cluster
            .ensure_database("wazo-auth test")
            .expect("ensure_database");
        // Idempotent.
        cluster
            .ensure_database("wazo-auth test")
            .expect("ensure_database again");
        let conn = cluster.connection_string("wazo-auth test");
        tokio_postgres::Config::from_str(&conn).expect("parsable connection string");
        assert_eq!(query_i32(&rt, &conn, "SELECT 1"), vec![1]);
        exec(
            &rt,
            &conn,
            "CREATE TABLE t (x int); INSERT INTO t VALUES (42);",
        );
        // Listens on no TCP port.
        let rows = rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(connection);
            let v: String = client
                .query_one("SHOW listen_addresses", &[])
                .await
                .unwrap()
                .get(0);
            drop(client);
            let _ = task.await;
            v
        });
        assert_eq!(rows, "");

        // start() on a running cluster reuses it.
        let again = Cluster::start(&opts).expect("start while running");
        assert_eq!(again.connection_string("x"), cluster.connection_string("x"));
        drop(again);

        cluster.stop().expect("stop");
        cluster.stop().expect("stop is idempotent");
        assert!(!cluster.data_dir().join("postmaster.pid").exists());

        // A stale postmaster.pid naming a live non-postgres process must not
        // block startup.
        let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
        fs::write(
            cluster.data_dir().join("postmaster.pid"),
            format!("{}\n{}\n", sleeper.id(), cluster.data_dir().display()),
        )
        .unwrap();
        let restarted = Cluster::start(&opts);
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let cluster = restarted.expect("restart with stale pid file");
        guard.0 = Some(cluster);
        let cluster = guard.0.as_ref().unwrap();
        assert_eq!(
            query_i32(
                &rt,
                &cluster.connection_string("wazo-auth test"),
                "SELECT x FROM t"
            ),
            vec![42]
        );
        cluster.stop().expect("stop");

        // A stale pid file naming a dead process.
        let mut dead = Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        fs::write(
            cluster.data_dir().join("postmaster.pid"),
            format!("{dead_pid}\n{}\n", cluster.data_dir().display()),
        )
        .unwrap();
        let cluster2 = Cluster::start(&opts).expect("restart with dead pid file");
        assert_eq!(
            query_i32(
                &rt,
                &cluster2.connection_string("wazo-auth test"),
                "SELECT x FROM t"
            ),
            vec![42]
        );

        // A crashed (SIGKILLed) postmaster: its pid may linger as a zombie
        // and its lock files remain; start() must recover.
        let pid = read_pid_file(cluster2.data_dir()).expect("pid file").pid;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the postmaster");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let cluster3 = Cluster::start(&opts).expect("restart after crash");
        assert_eq!(
            query_i32(
                &rt,
                &cluster3.connection_string("wazo-auth test"),
                "SELECT x FROM t"
            ),
            vec![42]
        );
        cluster3.stop().expect("stop");
    }

    #[test]
    fn long_path_uses_short_socket_dir() {
        let base = temp_base("long");
        let mut guard = Guard(None, base.clone());
        let data_dir = base.join("a".repeat(60)).join("b".repeat(40));
        let cluster = Cluster::start(&ClusterOptions::new(&data_dir)).expect("start");
        guard.0 = Some(cluster);
        let cluster = guard.0.as_ref().unwrap();
        assert!(cluster.socket_dir().starts_with("/tmp"));
        let meta = fs::symlink_metadata(cluster.socket_dir()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        cluster
            .ensure_database("postgres")
            .expect("ensure_database");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(
            query_i32(&rt, &cluster.connection_string("postgres"), "SELECT 1"),
            vec![1]
        );
        cluster.stop().expect("stop");
    }

    #[test]
    fn helpers() {
        assert_eq!(conn_value("abc"), "abc");
        assert_eq!(conn_value("a b"), "'a b'");
        assert_eq!(conn_value("it's"), "'it\\'s'");
        assert_eq!(conn_value(""), "''");
        assert_eq!(conf_string("/x/it's"), "'/x/it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("x"), None);
        let cfg = tokio_postgres::Config::from_str(&format!(
            "host={} dbname={}",
            conn_value("/tmp/a b"),
            conn_value("it's")
        ))
        .unwrap();
        assert_eq!(cfg.get_dbname(), Some("it's"));
    }

    #[test]
    fn missing_bin_dir_is_actionable() {
        let base = temp_base("nobin");
        let opts = ClusterOptions {
            data_dir: base.join("pg"),
            bin_dir: Some(base.join("nowhere")),
            os_user: None,
        };
        let e = Cluster::start(&opts).unwrap_err();
        assert!(e.to_string().contains("apt-get install postgresql"), "{e}");
        let _ = fs::remove_dir_all(&base);
    }

    use std::str::FromStr;
}
