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

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Superuser role created by `initdb`.
const SUPERUSER: &str = "postgres";
/// Port number: only used to name the unix socket (`.s.PGSQL.<port>`).
const PORT: u16 = 5432;
/// System user created when we are root and no better user exists.
const FALLBACK_OS_USER: &str = "wazo-auth-pg";
/// Largest unix socket path accepted by the kernel (sizeof(sun_path) - 1).
const MAX_SOCKET_PATH: usize = 107;
/// Our settings live in this file (inside the data directory), included from
/// `postgresql.conf`; it is rewritten at every start.
const CONF_FILE: &str = "wazo-auth.conf";
const CONF_INCLUDE_LINE: &str = "include_if_exists = 'wazo-auth.conf'";
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

fn err<T>(msg: impl Into<String>) -> Result<T, ClusterError> {
    Err(ClusterError(msg.into()))
}

/// An unprivileged OS user (only used when we are root).
#[derive(Debug, Clone)]
struct OsUser {
    name: String,
    uid: u32,
    gid: u32,
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
        let is_root = unsafe { libc::geteuid() } == 0;
        let run_as = if is_root {
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
            return Ok(());
        }
        // Someone else may have stopped it in the meantime.
        if let Ok(Status::Stopped) = self.status() {
            return Ok(());
        }
        err(format!(
            "cannot stop PostgreSQL cluster in {}: {}",
            self.data_dir.display(),
            describe_output(&out)
        ))
    }

    /// Whether [`Cluster::start`] started the server (rather than reusing a running one):
    /// only then should this process stop it.
    pub fn started_here(&self) -> bool {
        self.started_here
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

// ---- database creation (async, on a private runtime) ---------------------

async fn create_database_if_missing(admin_conn: &str, dbname: &str) -> Result<bool, String> {
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

fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Value for a libpq-style `key=value` connection string.
fn conn_value(v: &str) -> String {
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
fn conf_string(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

// ---- command helpers ------------------------------------------------------

fn run(cmd: &mut Command) -> Result<Output, ClusterError> {
    log::debug!("running {cmd:?}");
    cmd.stdin(Stdio::null());
    let out = cmd.output().map_err(|e| {
        ClusterError(format!(
            "cannot run {}: {e}",
            cmd.get_program().to_string_lossy()
        ))
    })?;
    log::debug!(
        "{} exited with {}",
        cmd.get_program().to_string_lossy(),
        out.status
    );
    Ok(out)
}

fn describe_output(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = [stderr.trim(), stdout.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty() {
        format!("exited with {}", out.status)
    } else {
        format!("exited with {}: {text}", out.status)
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            if all.is_empty() {
                String::new()
            } else {
                format!(
                    "\nlast lines of {}:\n{}",
                    path.display(),
                    all[start..].join("\n")
                )
            }
        }
        Err(_) => String::new(),
    }
}

// ---- binary discovery -----------------------------------------------------

const NOT_FOUND: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install \
     them (Debian: apt-get install postgresql, or run scripts/install-deps.sh as root) or set \
     db_uri in the configuration to use an existing server";

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| is_executable(&dir.join(b)))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn check_bin_dir(dir: &Path) -> Result<(), ClusterError> {
    if has_server_binaries(dir) {
        Ok(())
    } else {
        err(format!(
            "{} does not contain the PostgreSQL server binaries (initdb, pg_ctl, postgres): \
             fix bin_dir, install them (Debian: apt-get install postgresql) or set db_uri \
             in the configuration to use an existing server",
            dir.display()
        ))
    }
}

fn discover_bin_dir(data_dir: &Path) -> Result<PathBuf, ClusterError> {
    // An existing cluster needs the binaries of its own major version.
    if let Ok(v) = fs::read_to_string(data_dir.join("PG_VERSION")) {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", v.trim()));
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
    }
    if let Some(path) = find_in_path(OsStr::new("pg_config")) {
        match Command::new(&path)
            .arg("--bindir")
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if has_server_binaries(&dir) {
                    return Ok(dir);
                }
                log::debug!(
                    "pg_config --bindir = {} has no server binaries",
                    dir.display()
                );
            }
            Ok(out) => log::debug!("pg_config --bindir failed: {}", describe_output(&out)),
            Err(e) => log::debug!("cannot run {}: {e}", path.display()),
        }
    }
    if let Some(dir) = highest_debian_bin_dir(Path::new("/usr/lib/postgresql")) {
        return Ok(dir);
    }
    for prog in ["initdb", "pg_ctl"] {
        if let Some(path) = find_in_path(OsStr::new(prog)) {
            // Follow symlinks (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb).
            let real = path.canonicalize().unwrap_or(path);
            if let Some(dir) = real.parent() {
                if has_server_binaries(dir) {
                    return Ok(dir.to_path_buf());
                }
            }
        }
    }
    err(NOT_FOUND)
}

fn highest_debian_bin_dir(root: &Path) -> Option<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir(root).ok()?.flatten() {
        let name = entry.file_name();
        let Some(version) = parse_version(&name.to_string_lossy()) else {
            continue;
        };
        let bin = entry.path().join("bin");
        if !has_server_binaries(&bin) {
            continue;
        }
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, dir)| dir)
}

fn parse_version(s: &str) -> Option<Vec<u32>> {
    s.split('.').map(|p| p.parse().ok()).collect()
}

/// Major version of the server binaries ("15", or "9.6" for old ones).
fn binary_major_version(bin_dir: &Path) -> Option<String> {
    let out = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    // "postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split(") ").nth(1)?.split_whitespace().next()?;
    let parts: Vec<&str> = version.split('.').collect();
    let major: u32 = parts
        .first()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    if major >= 10 {
        Some(major.to_string())
    } else {
        Some(format!("{major}.{}", parts.get(1)?))
    }
}

fn find_in_path(prog: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| is_executable(p))
}

// ---- users ----------------------------------------------------------------

fn lookup_user(name: &str) -> Result<Option<OsUser>, ClusterError> {
    let cname =
        CString::new(name).map_err(|_| ClusterError(format!("invalid user name {name:?}")))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return err(format!(
                "cannot look up user {name:?}: {}",
                io::Error::from_raw_os_error(rc)
            ));
        }
        if result.is_null() {
            return Ok(None);
        }
        return Ok(Some(OsUser {
            name: name.to_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

fn current_user_name() -> Option<String> {
    let uid = unsafe { libc::geteuid() };
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The unprivileged user to run PostgreSQL as (we are root).
fn resolve_os_user(requested: Option<&str>) -> Result<OsUser, ClusterError> {
    let user = if let Some(name) = requested {
        match lookup_user(name)? {
            Some(u) => u,
            None => {
                return err(format!(
                    "os_user {name:?} (user to run the private PostgreSQL as) does not exist: \
                     create it (useradd --system {name}) or choose another user"
                ))
            }
        }
    } else if let Some(u) = lookup_user("postgres")? {
        u
    } else if let Some(u) = lookup_user(FALLBACK_OS_USER)? {
        u
    } else {
        log::info!("creating system user {FALLBACK_OS_USER} to run PostgreSQL");
        let mut cmd = Command::new("useradd");
        cmd.args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_OS_USER,
        ]);
        let result = run(&mut cmd);
        match lookup_user(FALLBACK_OS_USER)? {
            Some(u) => u,
            None => {
                let why = match result {
                    Ok(out) => describe_output(&out),
                    Err(e) => e.0,
                };
                return err(format!(
                    "PostgreSQL cannot run as root and no 'postgres' user exists; creating \
                     system user {FALLBACK_OS_USER} failed ({why}): create an unprivileged \
                     user and set os_user, or set db_uri to use an existing server"
                ));
            }
        }
    };
    if user.uid == 0 {
        return err(format!(
            "user {:?} has uid 0 but PostgreSQL refuses to run as root: choose an unprivileged \
             os_user",
            user.name
        ));
    }
    Ok(user)
}

// ---- filesystem -----------------------------------------------------------

fn absolute(path: &Path) -> Result<PathBuf, ClusterError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| ClusterError(format!("cannot get the current directory: {e}")))?
            .join(path)
    };
    // Lexically drop "." components (".." kept: symlinks make it ambiguous).
    Ok(abs
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect())
}

fn dir_is_empty(dir: &Path) -> Result<bool, ClusterError> {
    let mut it = fs::read_dir(dir)
        .map_err(|e| ClusterError(format!("cannot read directory {}: {e}", dir.display())))?;
    Ok(it.next().is_none())
}

/// Creates the data directory if needed, makes it owned by the postgres user
/// and mode 0700 (0750 is accepted too). Refuses a non-empty directory that
/// holds no cluster.
fn prepare_data_dir(data_dir: &Path, user: Option<&OsUser>) -> Result<(), ClusterError> {
    let created = match fs::symlink_metadata(data_dir) {
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(data_dir).map_err(|e| {
                ClusterError(format!(
                    "cannot create PostgreSQL data directory {}: {e}",
                    data_dir.display()
                ))
            })?;
            log::info!("created PostgreSQL data directory {}", data_dir.display());
            true
        }
        Err(e) => return err(format!("cannot access {}: {e}", data_dir.display())),
    };
    let meta = fs::metadata(data_dir)
        .map_err(|e| ClusterError(format!("cannot access {}: {e}", data_dir.display())))?;
    if !meta.is_dir() {
        return err(format!(
            "PostgreSQL data directory {} exists but is not a directory",
            data_dir.display()
        ));
    }
    let initialized = data_dir.join("PG_VERSION").exists();
    if !initialized && !created && !dir_is_empty(data_dir)? {
        return err(format!(
            "{} is not empty but holds no PostgreSQL cluster (no PG_VERSION file): \
             remove it or choose another data directory",
            data_dir.display()
        ));
    }
    if let Some(user) = user {
        if meta.uid() != user.uid {
            if !initialized {
                chown_recursive(data_dir, user)?;
            } else {
                return err(format!(
                    "PostgreSQL data directory {} is owned by uid {} but PostgreSQL runs as \
                     {} (uid {}): run `chown -R {} {}`, or set os_user to the owner",
                    data_dir.display(),
                    meta.uid(),
                    user.name,
                    user.uid,
                    user.name,
                    data_dir.display()
                ));
            }
        }
    } else if meta.uid() != unsafe { libc::geteuid() } {
        return err(format!(
            "PostgreSQL data directory {} is owned by uid {}, not by the current user: \
             choose another data directory or run as its owner",
            data_dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o700 && mode != 0o750 {
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            ClusterError(format!(
                "cannot chmod 0700 PostgreSQL data directory {}: {e}",
                data_dir.display()
            ))
        })?;
    }
    Ok(())
}

fn chown_recursive(path: &Path, user: &OsUser) -> Result<(), ClusterError> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
        ClusterError(format!(
            "cannot chown {} to {}: {e}",
            path.display(),
            user.name
        ))
    })?;
    let meta = fs::symlink_metadata(path)
        .map_err(|e| ClusterError(format!("cannot access {}: {e}", path.display())))?;
    if meta.is_dir() {
        let entries = fs::read_dir(path)
            .map_err(|e| ClusterError(format!("cannot read {}: {e}", path.display())))?;
        for entry in entries.flatten() {
            chown_recursive(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// Creates (if needed) a directory private to the postgres user (0700).
/// Refuses symlinks and directories owned by other users (important under /tmp).
fn ensure_private_dir(dir: &Path, user: Option<&OsUser>) -> Result<(), ClusterError> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return err(format!("cannot create directory {}: {e}", dir.display())),
    }
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| ClusterError(format!("cannot access {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return err(format!(
            "{} must be a directory (it is a symlink or a file): remove it",
            dir.display()
        ));
    }
    let me = unsafe { libc::geteuid() };
    let want_uid = user.map(|u| u.uid).unwrap_or(me);
    if meta.uid() != want_uid {
        match user {
            Some(user) if meta.uid() == 0 || meta.uid() == me => {
                std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid)).map_err(|e| {
                    ClusterError(format!(
                        "cannot chown {} to {}: {e}",
                        dir.display(),
                        user.name
                    ))
                })?;
            }
            _ => {
                return err(format!(
                    "{} is owned by uid {} (expected uid {want_uid}): remove it",
                    dir.display(),
                    meta.uid()
                ))
            }
        }
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| ClusterError(format!("cannot chmod 0700 {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Writes a file readable by the postgres user.
fn write_owned(path: &Path, content: &str, user: Option<&OsUser>) -> Result<(), ClusterError> {
    fs::write(path, content)
        .map_err(|e| ClusterError(format!("cannot write {}: {e}", path.display())))?;
    if let Some(user) = user {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
            ClusterError(format!(
                "cannot chown {} to {}: {e}",
                path.display(),
                user.name
            ))
        })?;
    }
    Ok(())
}

/// Every existing ancestor of `path` must be searchable (x) by `user`.
/// Child processes run with the user's uid and primary gid only (std drops
/// supplementary groups), so that is what is checked.
fn check_traversable(path: &Path, user: &OsUser) -> Result<(), ClusterError> {
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let Ok(meta) = fs::metadata(dir) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let ok = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return err(format!(
                "directory {} (mode {:o}, owner uid {}) is not traversable by user {:?}, which \
                 runs PostgreSQL: allow it (chmod o+x {}) or choose a data directory outside it",
                dir.display(),
                mode & 0o7777,
                meta.uid(),
                user.name,
                dir.display()
            ));
        }
    }
    Ok(())
}

/// `<data_dir>/socket`, or `/tmp/wazo-auth-pg-<hash>` when the socket path
/// would be too long for a unix socket.
fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let dir = data_dir.join("socket");
    let socket = dir.join(format!(".s.PGSQL.{PORT}"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return dir;
    }
    let short = PathBuf::from(format!(
        "/tmp/wazo-auth-pg-{:016x}",
        fnv1a(data_dir.as_os_str())
    ));
    log::info!(
        "socket path {} is too long for a unix socket; using {} instead",
        socket.display(),
        short.display()
    );
    short
}

/// Stable hash (unlike std's DefaultHasher) so the same data dir always maps
/// to the same fallback socket directory.
fn fnv1a(s: &OsStr) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Live (non-zombie) processes whose current directory is `dir` (PostgreSQL
/// server processes chdir to their data directory). Empty without /proc.
fn processes_in_dir(dir: &Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
                && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    let state = stat
                        .rfind(')')
                        .and_then(|i| stat[i + 1..].trim_start().chars().next());
                    matches!(state, Some('Z') | Some('X'))
                })
        })
        .collect()
}

struct PidFile {
    pid: i32,
    port: Option<u16>,
    socket_dir: Option<PathBuf>,
}

/// postmaster.pid: pid, data dir, start time, port, socket dir, listen addr, ...
fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let pid = lines.first()?.trim().parse().ok()?;
    let port = lines.get(3).and_then(|l| l.trim().parse().ok());
    let socket_dir = lines
        .get(4)
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| PathBuf::from(OsString::from(l)));
    Some(PidFile {
        pid,
        port,
        socket_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        unsafe { libc::kill(pid, libc::SIGKILL) };
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
