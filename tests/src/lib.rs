//! Black-box test harness: one throw-away PostgreSQL cluster per test run, a fresh database per
//! test (cloned from a migrated template), and the real `wazo-auth` binary started with real
//! plugin `.so` files copied into a private plugin directory.
//!
//! Before running the tests, build the workspace (`cargo build --workspace`); the plugins that
//! live outside the workspace (built against other copies of the plugin API) are built here on
//! first use into `target/external`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod api_yml;

use base64::Engine;
use serde_json::{json, Value};
use wazo_auth_core::pg_cluster::{Cluster, ClusterOptions};

pub use serde_json;

pub mod haproxy;
pub mod oauth2;
pub mod pgbouncer;
pub mod rabbitmq;
pub mod replication;
pub mod slapd;
pub mod smtp;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number unique in this test process.
pub fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The directory holding the debug build of the workspace (binary and cdylibs).
pub fn build_dir() -> PathBuf {
    target_dir().join("debug")
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A free TCP port on 127.0.0.1 (the system's choice; free again once returned).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The program `name`: on PATH, or in /usr/sbin (where Debian puts daemons, and which a
/// non-root PATH may lack).
pub fn sbin_program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin").join(name))
}

/// Stops `child` by its PID: SIGTERM, then SIGKILL if it is still there after `grace`. Returns
/// its exit code when it exited by itself.
pub fn stop_child(child: &mut Child, grace: Duration) -> Option<i32> {
    // SAFETY: kill(2) on the PID of a child not yet waited for (so not reused).
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory under `target/test-scratch`, traversable by the PostgreSQL user.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = target_dir().join("test-scratch").join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    set_mode(&dir, 0o755);
    dir
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

struct TestCluster {
    cluster: Cluster,
    data_dir: PathBuf,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
const TEMPLATE_DB: &str = "wazo_auth_template";

extern "C" fn stop_cluster_at_exit() {
    if let Some(c) = CLUSTER.get() {
        let _ = c.cluster.stop();
        if let Some(parent) = c.data_dir.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

fn cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(|| {
        // Under the system temporary directory rather than target/: when the tests run as root,
        // PostgreSQL runs as an unprivileged user, who may not be able to traverse the checkout
        // (e.g. a clone under /root).
        let data_dir = std::env::temp_dir()
            .join(unique("wazo-auth-test-pg"))
            .join("data");
        let cluster = Cluster::start(&ClusterOptions::new(&data_dir))
            .unwrap_or_else(|e| panic!("cannot start the test PostgreSQL cluster: {e}"));
        unsafe {
            libc::atexit(stop_cluster_at_exit);
        }
        cluster
            .ensure_database(TEMPLATE_DB)
            .expect("create template database");
        let uri = cluster.connection_string(TEMPLATE_DB);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let storage = wazo_auth_core::Storage::new(&uri, 2).unwrap();
            storage.migrate().await.expect("migrate template database");
            storage.pool().close();
        });
        TestCluster { cluster, data_dir }
    })
}

impl TestCluster {
    /// Stops the server (`pg_ctl stop -m fast`: open connections are closed).
    fn stop_server(&self) -> Result<(), String> {
        self.cluster.stop().map_err(|e| e.to_string())
    }

    /// Starts the server again on the same data directory, socket and port (the connection
    /// strings handed out stay valid).
    fn start_server(&self) -> Result<(), String> {
        Cluster::start(&ClusterOptions::new(&self.data_dir))
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// This test binary's PostgreSQL cluster (started on first use).
pub fn test_cluster() -> &'static Cluster {
    &cluster().cluster
}

/// Stops this test binary's PostgreSQL cluster, to simulate a database outage. Every test of the
/// binary shares the cluster: only use it in a binary whose tests run one at a time.
pub fn stop_cluster() {
    cluster()
        .stop_server()
        .unwrap_or_else(|e| panic!("cannot stop the test PostgreSQL cluster: {e}"));
}

/// Starts this test binary's PostgreSQL cluster again after [`stop_cluster`]; returns once it
/// accepts connections.
pub fn start_cluster() {
    cluster()
        .start_server()
        .unwrap_or_else(|e| panic!("cannot restart the test PostgreSQL cluster: {e}"));
}

/// The test cluster's postmaster and its children (backends, background workers), postmaster
/// first.
pub fn cluster_processes() -> Vec<i32> {
    let data_dir = &cluster().data_dir;
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .unwrap_or_else(|e| panic!("the test PostgreSQL cluster is not running: {e}"));
    let postmaster: i32 = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("postmaster.pid starts with the pid");
    let mut pids = vec![postmaster];
    pids.extend(children_of(postmaster));
    pids
}

/// The processes whose parent is `parent` (read from /proc).
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
        if after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// Freezes this test binary's PostgreSQL cluster (SIGSTOP to the postmaster, then to its
/// children): connections stay open but nothing answers, as with a stalled server or host.
/// Call [`thaw_cluster`] before the test ends, also when it fails (or the cluster cannot be
/// stopped at exit). Same caveat as [`stop_cluster`] about tests sharing the cluster.
pub fn freeze_cluster() {
    for pid in cluster_processes() {
        unsafe {
            libc::kill(pid, libc::SIGSTOP);
        }
    }
}

/// Resumes the cluster frozen by [`freeze_cluster`] (children first, then the postmaster).
pub fn thaw_cluster() {
    for pid in cluster_processes().into_iter().rev() {
        unsafe {
            libc::kill(pid, libc::SIGCONT);
        }
    }
}

/// The log of this test binary's PostgreSQL cluster so far (shared by the binary's tests: compare
/// what a test adds, from a length taken before, with [`postgres_log_len`]).
pub fn postgres_log() -> String {
    let bytes = std::fs::read(cluster().cluster.log_file()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The length in bytes of [`postgres_log`] now.
pub fn postgres_log_len() -> usize {
    std::fs::metadata(cluster().cluster.log_file()).map_or(0, |m| m.len() as usize)
}

/// Runs SQL on a database of the test cluster (blocking).
pub fn sql(conn: &str, query: &str) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(connection);
        let msgs = client.simple_query(query).await.expect("run SQL");
        msgs.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect())
                }
                _ => None,
            })
            .collect()
    })
}

/// A fresh database cloned from the migrated template; returns its connection string.
pub fn fresh_database() -> String {
    static LOCK: Mutex<()> = Mutex::new(());
    let c = cluster();
    let name = unique("t").replace('-', "_");
    {
        // CREATE DATABASE ... TEMPLATE fails if another session uses the template at that moment.
        let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        sql(
            &c.cluster.connection_string("postgres"),
            &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"),
        );
    }
    c.cluster.connection_string(&name)
}

/// An empty database of the test cluster (not migrated: a target for a dump); returns its
/// connection string.
pub fn empty_database() -> String {
    let c = cluster();
    let name = unique("e").replace('-', "_");
    sql(
        &c.cluster.connection_string("postgres"),
        &format!("CREATE DATABASE {name} TEMPLATE template0"),
    );
    c.cluster.connection_string(&name)
}

/// Runs the SQL script `file` (e.g. a plain `pg_dump`) with `psql` on a database of the test
/// cluster, stopping at the first error; panics with psql's output when it fails.
pub fn psql_file(conn: &str, file: &Path) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conn, "-f"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    assert!(
        out.status.success(),
        "psql -f {} failed ({}): {}{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Builds (once) a plugin crate that lives outside the workspace and returns its `.so`.
pub fn external_plugin(crate_dir: &str, lib_name: &str) -> PathBuf {
    static BUILD_LOCK: Mutex<()> = Mutex::new(());
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let ext_target = target_dir().join("external");
    let manifest = workspace_root().join(crate_dir).join("Cargo.toml");
    let status = Command::new(cargo())
        .args(["build", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&ext_target)
        .status()
        .expect("run cargo build for an external plugin");
    assert!(status.success(), "building {crate_dir} failed");
    let so = ext_target.join("debug").join(format!("lib{lib_name}.so"));
    assert!(so.exists(), "{} missing after build", so.display());
    so
}

/// A workspace plugin `.so` (built by `cargo build --workspace`); panics if it is missing or
/// older than its sources (see [`ensure_fresh`]).
pub fn workspace_plugin(lib_name: &str) -> PathBuf {
    let so = build_dir().join(format!("lib{lib_name}.so"));
    ensure_fresh(&so);
    so
}

/// The `wazo-auth` binary of the current build; panics if it is missing or older than its
/// sources (see [`ensure_fresh`]).
///
/// `WAZO_AUTH_SERVER_BINARY` names another binary instead (e.g. an older build, for a
/// before/after measurement), used as it is.
pub fn server_binary() -> PathBuf {
    if let Some(other) = std::env::var_os("WAZO_AUTH_SERVER_BINARY") {
        return PathBuf::from(other);
    }
    let binary = build_dir().join("wazo-auth");
    ensure_fresh(&binary);
    binary
}

/// Panics, with the command to run, unless `artifact` (the server binary or a workspace plugin)
/// exists and is at least as recent as every source it was built from. Checked once per
/// artifact and test process.
///
/// This crate does not define the `wazo-auth` binary, so `CARGO_BIN_EXE_wazo-auth` is not
/// available, and `cargo test -p wazo-auth-tests` does not rebuild the binary or the plugins.
/// The sources of an artifact are the ones cargo itself compares it with: the files listed in
/// the dependency file cargo writes next to it (`target/debug/wazo-auth.d`: every Rust file of
/// the crate and of its path dependencies, the files they include, the migrations directory of
/// the core's build script). Other files (documentation, scripts, files that `git checkout`
/// touches without being compiled) cannot make the check fail, so a `cargo build --workspace`
/// always clears it. Nor can `Cargo.toml` and `Cargo.lock`: cargo does not rebuild an artifact
/// when only their modification time changes (a checkout, a change that concerns other crates),
/// and a failure that `cargo build` cannot clear would be wrong; a change of them that matters
/// to the artifact (a dependency, a feature, the version) does make cargo rebuild it.
pub fn ensure_fresh(artifact: &Path) {
    static CHECKED: Mutex<BTreeMap<PathBuf, Result<(), String>>> = Mutex::new(BTreeMap::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    let verdict = checked
        .entry(artifact.to_path_buf())
        .or_insert_with(|| check_fresh(artifact, &workspace_root(), &target_dir()));
    if let Err(e) = verdict {
        panic!("{e}");
    }
}

/// The dependency file cargo writes next to an artifact (`wazo-auth.d`, `libx.d` for `libx.so`).
fn dep_info_file(artifact: &Path) -> PathBuf {
    artifact.with_extension("d")
}

/// The paths of a Makefile-style dependency file as cargo writes it (`target: dep dep ...`,
/// spaces in paths escaped with a backslash).
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => word.extend(chars.next()),
                c if c.is_whitespace() => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        // The first word is the target (`path:`); a line without one is not a rule.
        if words.first().is_some_and(|w| w.ends_with(':')) {
            sources.extend(words.into_iter().skip(1).map(PathBuf::from));
        }
    }
    sources
}

/// The newest modification time of `path`, or of anything under it when it is a directory (as
/// cargo does for a directory named by a build script's `rerun-if-changed`), with that file.
fn newest_mtime(path: &Path) -> std::io::Result<(std::time::SystemTime, PathBuf)> {
    let meta = std::fs::metadata(path)?;
    let mut newest = (meta.modified()?, path.to_path_buf());
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let candidate = newest_mtime(&entry?.path())?;
            // On a tie, the file inside (the more useful name).
            if candidate.0 >= newest.0 {
                newest = candidate;
            }
        }
    }
    Ok(newest)
}

fn check_fresh(artifact: &Path, root: &Path, target: &Path) -> Result<(), String> {
    let shown = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let rebuild = "run `cargo build --workspace` before the tests (scripts/test.sh does)";
    let built = std::fs::metadata(artifact)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{} is missing ({e}): {rebuild}", shown(artifact)))?;
    let dep_info = dep_info_file(artifact);
    let text = std::fs::read_to_string(&dep_info).map_err(|e| {
        format!(
            "cannot tell whether {} is up to date: its dependency file {} cannot be read ({e}): \
             {rebuild}",
            shown(artifact),
            shown(&dep_info)
        )
    })?;
    let sources = dep_info_sources(&text);
    if sources.is_empty() {
        return Err(format!(
            "cannot tell whether {} is up to date: its dependency file {} names no source: \
             {rebuild}",
            shown(artifact),
            shown(&dep_info)
        ));
    }
    for source in sources {
        if source.starts_with(target) {
            // Generated by a build script: an output, not a source.
            continue;
        }
        if !source.starts_with(root) {
            return Err(format!(
                "{} was built from another checkout (it depends on {}, outside {}): \
                 {rebuild} (if cargo finds nothing to rebuild, `touch` one of the artifact's \
                 sources first)",
                shown(artifact),
                source.display(),
                root.display()
            ));
        }
        let (modified, file) = newest_mtime(&source).map_err(|e| {
            format!(
                "{} is older than its sources: {} is gone ({e}): {rebuild}",
                shown(artifact),
                shown(&source)
            )
        })?;
        if modified > built {
            let later = modified.duration_since(built).unwrap_or_default();
            return Err(format!(
                "{} is older than its source {} (modified {:.1} s after the build): {rebuild}",
                shown(artifact),
                shown(&file),
                later.as_secs_f64()
            ));
        }
    }
    Ok(())
}

pub const EXAMPLE: &str = "wazo_auth_example_backend";
pub const PANIC_VERIFY: &str = "wazo_auth_test_panic_verify";
pub const PANIC_LOAD: &str = "wazo_auth_test_panic_load";
pub const SLOW: &str = "wazo_auth_test_slow_backend";
pub const MULTI: &str = "wazo_auth_test_multi_backend";
pub const WAZO_USER: &str = "wazo_auth_wazo_user";
pub const BAR: &str = "wazo_auth_external_bar";
/// examples/metadata: the metadata plugin `example_department`.
pub const EXAMPLE_METADATA: &str = "wazo_auth_example_metadata";
/// examples/idp: the IdP plugin `example_code`.
pub const EXAMPLE_IDP: &str = "wazo_auth_example_idp";
/// The built-in `ldap_user` backend and `ldap` IdP.
pub const LDAP_USER: &str = "wazo_auth_ldap_user";
pub const EXTERNAL_FAULTS: &str = "wazo_auth_test_external_faults";
/// Metadata and IdP plugins, well and badly behaved (tests/plugins/login-plugins).
pub const LOGIN_PLUGINS: &str = "wazo_auth_test_login_plugins";
/// An external auth `subroutes` with sub-routes (tests/plugins/sub-routes).
pub const SUB_ROUTES: &str = "wazo_auth_test_sub_routes";
/// The built-in external auth `mobile` (plugins/mobile).
pub const MOBILE: &str = "wazo_auth_mobile";
/// The built-in external auths `google` and `microsoft` (plugins/google, plugins/microsoft).
pub const GOOGLE: &str = "wazo_auth_google";
pub const MICROSOFT: &str = "wazo_auth_microsoft";

/// Credentials of the bootstrap administrator of [`ServerBuilder::with_wazo_user`].
pub const ADMIN: (&str, &str) = ("admin", "s3cre7");

/// Deep-merges `patch` into `base` (objects merged, everything else replaced).
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Describes a server to start.
pub struct ServerBuilder {
    config: Value,
    plugins: Vec<PathBuf>,
    plugin_dir_mode: u32,
    plugin_file_mode: u32,
    db: Option<String>,
    /// `db_uri` through a pooler, the database itself (`db`) as `db_listen_uri`.
    pooled_db: Option<String>,
    managed_db: Option<PathBuf>,
    env: Vec<(String, String)>,
    tls_client: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    /// A server with the example backend enabled (users alice / bob).
    pub fn new() -> Self {
        ServerBuilder {
            config: json!({
                "enabled_backend_plugins": {"example_static": true, "wazo_user": false, "ldap_user": false},
                "enabled_external_auth_plugins": {"google": false, "microsoft": false, "mobile": false},
                // Every `wazo_user` login hashes its password inside the plugin call: about 0.3 s
                // on an idle 2-core machine, and a lone login outlasted 2 s with the machine a
                // few times slower (401). The tests of a hung plugin (10 s bounds) wait this long.
                "plugin_call_timeout": 5.0,
                // Tests try many wrong passwords on purpose; tests/tests/throttle.rs turns the
                // throttle on.
                "login_throttle": {"enabled": false},
                "token_cleanup_interval": 1.0,
                // A server gives up when its first connection fails this long. CI once saw two
                // 5 s connection attempts time out on a loaded machine (the test cluster shared by
                // ten servers starting at once); the start itself waits 60 s below.
                "db_connect_retry_timeout_seconds": 45,
                "plugin_config": {"example_static": {"users": [
                    {"login": "alice", "password": "alice-secret", "acl": ["confd.#", "auth.users.me.#", "!confd.secret.#"]},
                    {"login": "bob", "password": "bob pass:with colon", "acl": []},
                    {"login": "éric", "password": "pépé€", "acl": ["unicode.#"]},
                    {"login": "latin", "password": "pépé", "acl": []},
                ]}},
            }),
            plugins: vec![workspace_plugin(EXAMPLE)],
            plugin_dir_mode: 0o755,
            plugin_file_mode: 0o755,
            db: None,
            pooled_db: None,
            managed_db: None,
            env: Vec::new(),
            tls_client: None,
        }
    }

    /// Enables the built-in `wazo_user` backend and bootstraps the administrator [`ADMIN`]
    /// (ACL `#` through `wazo_default_master_user_policy`) at startup.
    pub fn with_wazo_user(self) -> Self {
        self.plugin(workspace_plugin(WAZO_USER)).config(json!({
            "enabled_backend_plugins": {"wazo_user": true},
            "bootstrap_user_on_startup": true,
            "bootstrap_user_username": ADMIN.0,
            "bootstrap_user_password": ADMIN.1,
        }))
    }

    /// Loads the built-in `mobile` external-auth plugin (`libwazo_auth_mobile.so`) and enables
    /// it, as the default configuration does.
    pub fn with_mobile(self) -> Self {
        self.plugin(workspace_plugin(MOBILE))
            .config(json!({"enabled_external_auth_plugins": {"mobile": true}}))
    }

    /// Merges `patch` into the configuration.
    pub fn config(mut self, patch: Value) -> Self {
        merge(&mut self.config, &patch);
        self
    }

    /// Removes the key at `path` (object keys from the top) from the configuration, so that the
    /// server's default applies.
    pub fn unset(mut self, path: &[&str]) -> Self {
        if let Some((last, parents)) = path.split_last() {
            let mut at = &mut self.config;
            for key in parents {
                at = &mut at[*key];
            }
            if let Some(obj) = at.as_object_mut() {
                obj.remove(*last);
            }
        }
        self
    }

    pub fn plugin(mut self, so: PathBuf) -> Self {
        self.plugins.push(so);
        self
    }

    pub fn plugin_dir_mode(mut self, mode: u32) -> Self {
        self.plugin_dir_mode = mode;
        self
    }

    /// Mode of the copied plugin files (default 0755).
    pub fn plugin_file_mode(mut self, mode: u32) -> Self {
        self.plugin_file_mode = mode;
        self
    }

    /// Uses an existing database (e.g. shared by two servers).
    pub fn database(mut self, conn: &str) -> Self {
        self.db = Some(conn.to_string());
        self
    }

    /// Uses the existing database `direct` through `bouncer` (`db_uri`), and directly for
    /// LISTEN and the advisory locks (`db_listen_uri`).
    pub fn through(mut self, bouncer: &pgbouncer::PgBouncer, direct: &str) -> Self {
        self.pooled_db = Some(bouncer.uri(direct));
        self.db = Some(direct.to_string());
        self
    }

    /// Lets the server manage its own PostgreSQL in `data_dir` (no `db_uri`).
    pub fn managed_database(mut self, data_dir: &Path) -> Self {
        self.managed_db = Some(data_dir.to_path_buf());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The server speaks HTTPS (configure `rest_api.certificate` and `private_key` too): its
    /// requests go to `https://127.0.0.1:PORT` with this client configuration.
    pub fn https(mut self, client: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls_client = Some(client);
        self
    }

    /// Starts the server and waits until it answers.
    pub fn start(self) -> Server {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the server; `Err` carries its log when it exits or never answers.
    pub fn try_start(self) -> Result<Server, String> {
        let dir = scratch_dir("server");
        let plugin_dir = dir.join("plugins");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        for so in &self.plugins {
            let dest = plugin_dir.join(so.file_name().unwrap());
            // A symbolic link when the default mode will do (debug plugins weigh tens of MB;
            // copying them for every test server filled the disk), a copy otherwise.
            use std::os::unix::fs::PermissionsExt;
            let source_mode = std::fs::metadata(so).map(|m| m.permissions().mode() & 0o7777);
            if self.plugin_file_mode == 0o755 && source_mode.is_ok_and(|m| m == 0o755) {
                std::os::unix::fs::symlink(so, &dest).unwrap();
            } else {
                std::fs::copy(so, &dest).unwrap();
                set_mode(&dest, self.plugin_file_mode);
            }
        }
        set_mode(&plugin_dir, self.plugin_dir_mode);
        let mut config = self.config.clone();
        let db = match &self.managed_db {
            Some(data_dir) => {
                merge(&mut config, &json!({"managed_db": {"data_dir": data_dir}}));
                String::new()
            }
            None => {
                let db = self.db.clone().unwrap_or_else(fresh_database);
                if let Some(pooled) = &self.pooled_db {
                    merge(
                        &mut config,
                        &json!({
                            "db_uri": pooled,
                            "db_listen_uri": db,
                            "db_pooler": "transaction",
                        }),
                    );
                } else if pgbouncer::enabled() {
                    // Statements through PgBouncer in transaction mode, LISTEN and the session
                    // advisory locks directly (`WAZO_AUTH_TEST_PGBOUNCER=1`).
                    merge(
                        &mut config,
                        &json!({
                            "db_uri": pgbouncer::shared().uri(&db),
                            "db_listen_uri": db,
                            "db_pooler": "transaction",
                        }),
                    );
                } else {
                    merge(&mut config, &json!({ "db_uri": db }));
                }
                db
            }
        };
        merge(
            &mut config,
            &json!({
                "plugin_dir": plugin_dir,
                // The system picks the port; the server writes it to `bound_address_file`
                // once it listens (no window in which another process could take it).
                "rest_api": {"listen": "127.0.0.1", "port": 0},
                "extra_config_files": dir.join("conf.d"),
            }),
        );
        if config.pointer("/rest_api/bound_address_file").is_none() {
            merge(
                &mut config,
                &json!({"rest_api": {"bound_address_file": dir.join("bound-address")}}),
            );
        }
        let bound_file = PathBuf::from(
            config["rest_api"]["bound_address_file"]
                .as_str()
                .expect("rest_api.bound_address_file is a path"),
        );
        if config.get("secret_key_file").is_none() {
            merge(
                &mut config,
                &json!({"secret_key_file": dir.join("secret.keys")}),
            );
        }
        let config_path = dir.join("config.yml");
        // JSON is valid YAML.
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(server_binary());
        cmd.arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env("RUST_LOG", "info,actix_server=warn")
            .env("TZ", "UTC");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start wazo-auth: {e}"))?;
        let scheme = if self.tls_client.is_some() {
            "https"
        } else {
            "http"
        };
        let agent = self.tls_client.map(|client| {
            ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .tls_config(client)
                .build()
        });
        let mut server = Server {
            child: Some(child),
            base: String::new(),
            agent,
            log_path,
            dir: dir.clone(),
            bound_file: bound_file.clone(),
            db,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                return Err(format!(
                    "wazo-auth exited ({status}) before answering; log:\n{}",
                    server.log()
                ));
            }
            // Listening (HTTP or HTTPS alike) once the file names the bound address: the
            // server renames it into place complete, after binding.
            if let Ok(text) = std::fs::read_to_string(&bound_file) {
                let addr: std::net::SocketAddr = text
                    .lines()
                    .next()
                    .and_then(|l| l.parse().ok())
                    .ok_or_else(|| {
                    format!(
                        "{} does not start with an address: {text:?}; log:\n{}",
                        bound_file.display(),
                        server.log()
                    )
                })?;
                server.base = format!("{scheme}://{addr}");
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!("wazo-auth never answered; log:\n{}", server.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running server; stopped (SIGTERM) when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// The HTTPS client of a server started with [`ServerBuilder::https`].
    agent: Option<ureq::Agent>,
    log_path: PathBuf,
    /// The server's scratch directory (configuration, plugins, log), removed on drop.
    dir: PathBuf,
    /// Its `rest_api.bound_address_file`.
    bound_file: PathBuf,
    /// Connection string of its database.
    pub db: String,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn basic(login: &str, password: &str) -> String {
    basic_bytes(format!("{login}:{password}").as_bytes())
}

pub fn basic_bytes(raw: &[u8]) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build()
    })
}

/// Sends a request with `agent` (keep-alive connections of its own); `Err` on a transport error
/// or a body cut short (the answer otherwise, whatever its status).
pub fn try_request(
    agent: &ureq::Agent,
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Resp, String> {
    exchange(agent, url, method, headers, body, true)
}

/// One request and its answer; with `strict`, a body that cannot be read to its end is an error
/// (else what was read is kept).
fn exchange(
    agent: &ureq::Agent,
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    strict: bool,
) -> Result<Resp, String> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{method} {url}: transport error: {e}")),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|k| {
            let v = resp.header(&k).unwrap_or("").to_string();
            (k, v)
        })
        .collect();
    let mut body = String::new();
    let read = resp.into_reader().read_to_string(&mut body);
    if strict {
        read.map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; `body` is sent as-is. Panics on a transport error; a body cut short
    /// is kept as far as it was read.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let agent = self.agent.as_ref().unwrap_or_else(|| agent());
        exchange(agent, &self.url(path), method, headers, body, false)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `POST /0.1/token` with Basic credentials and a JSON body.
    pub fn login(&self, login: &str, password: &str, body: Value) -> Resp {
        let auth = basic(login, password);
        self.request(
            "POST",
            "/0.1/token",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
    }

    /// Logs alice in with the example backend and returns the token id.
    /// An offline login (`access_type: offline`, with `client_id`) of `user` with password
    /// `pw`, as a mobile session when `mobile`.
    pub fn offline_login(&self, user: &str, client_id: &str, mobile: bool) -> Resp {
        let auth = basic(user, "pw");
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        if mobile {
            headers.push(("Wazo-Session-Type", "mobile"));
        }
        let body = json!({"access_type": "offline", "client_id": client_id}).to_string();
        self.request("POST", "/0.1/token", &headers, Some(body.as_bytes()))
    }

    /// A login with a refresh token (`POST /0.1/token` with `refresh_token` and `client_id`).
    pub fn refresh_login(&self, refresh_token: &str, client_id: &str) -> Resp {
        let body = json!({"refresh_token": refresh_token, "client_id": client_id}).to_string();
        self.request(
            "POST",
            "/0.1/token",
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
    }

    pub fn alice_token(&self, extra: Value) -> String {
        let mut body = json!({"backend": "example_static"});
        merge(&mut body, &extra);
        let r = self.login("alice", "alice-secret", body);
        assert_eq!(r.status, 200, "login failed: {}", r.body);
        r.json()["data"]["token"].as_str().unwrap().to_string()
    }

    /// Logs a user in through the default backend (`wazo_user`) and returns the token id.
    pub fn user_token(&self, login: &str, password: &str) -> String {
        let r = self.login(login, password, json!({}));
        assert_eq!(r.status, 200, "login of {login:?} failed: {}", r.body);
        r.json()["data"]["token"].as_str().unwrap().to_string()
    }

    /// A token of the bootstrap administrator (needs [`ServerBuilder::with_wazo_user`]).
    pub fn admin_token(&self) -> String {
        self.user_token(ADMIN.0, ADMIN.1)
    }

    /// A request carrying `X-Auth-Token: token` (and an optional `Wazo-Tenant`) with a JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        tenant: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut headers: Vec<(&str, &str)> = vec![
            ("X-Auth-Token", token),
            ("Content-Type", "application/json"),
        ];
        if let Some(t) = tenant {
            headers.push(("Wazo-Tenant", t));
        }
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.request(method, path, &headers, bytes.as_deref())
    }

    /// Creates a `wazo_user` user (`POST /0.1/users`, in `tenant` when given) with `admin`'s
    /// token and returns its uuid; panics unless the answer is 200.
    pub fn create_user(
        &self,
        admin: &str,
        username: &str,
        password: &str,
        tenant: Option<&str>,
    ) -> String {
        let r = self.call(
            "POST",
            "/0.1/users",
            admin,
            tenant,
            Some(&json!({"username": username, "password": password})),
        );
        assert_eq!(r.status, 200, "creating user {username}: {}", r.body);
        r.json()["uuid"].as_str().unwrap().to_string()
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    /// The file where the server wrote the address it listens on (`rest_api.bound_address_file`:
    /// the harness starts every server on port 0).
    pub fn bound_address_file(&self) -> &Path {
        &self.bound_file
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until `pred(log)` holds, or panics after `timeout`.
    pub fn wait_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.log()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("log condition not met; log:\n{}", self.log());
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the process; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        stop_child(&mut child, Duration::from_secs(20))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("WAZO_AUTH_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// Sets the modification time of a file or directory (its owner may, without writing).
    fn set_mtime(path: &Path, t: SystemTime) {
        std::fs::File::open(path).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn dep_info_paths_with_escaped_spaces() {
        let text = "/t/debug/x: /w/a.rs /w/my\\ dir/b.rs\n\n/w/a.rs:\n";
        assert_eq!(
            dep_info_sources(text),
            vec![PathBuf::from("/w/a.rs"), PathBuf::from("/w/my dir/b.rs")]
        );
    }

    /// A workspace `root` with a target directory, an artifact built at `built` from
    /// `src/lib.rs` and the directory `migrations`, whose files were modified at `modified`.
    fn fixture(built: SystemTime, modified: SystemTime) -> (PathBuf, PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(unique("fresh-check"));
        let target = root.join("target");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("migrations")).unwrap();
        std::fs::create_dir_all(target.join("debug")).unwrap();
        let lib = root.join("src/lib.rs");
        let migration = root.join("migrations/V1.sql");
        std::fs::write(&lib, "").unwrap();
        std::fs::write(&migration, "").unwrap();
        std::fs::write(root.join("README.md"), "").unwrap();
        let artifact = target.join("debug/libx.so");
        std::fs::write(&artifact, "").unwrap();
        std::fs::write(
            target.join("debug/libx.d"),
            format!(
                "{}: {} {} {}\n",
                artifact.display(),
                lib.display(),
                root.join("migrations").display(),
                target.join("debug/build/out.rs").display()
            ),
        )
        .unwrap();
        set_mtime(&artifact, built);
        // Files first: creating them updated their directories.
        for source in [
            &lib,
            &migration,
            &root.join("src"),
            &root.join("migrations"),
        ] {
            set_mtime(source, modified);
        }
        (root, target, artifact)
    }

    #[test]
    fn an_artifact_newer_than_its_sources_passes_whatever_else_changed() {
        let now = SystemTime::now();
        let (root, target, artifact) = fixture(now, now - Duration::from_secs(60));
        // Not a source of the artifact (a checkout may touch it).
        set_mtime(&root.join("README.md"), now + Duration::from_secs(60));
        assert_eq!(check_fresh(&artifact, &root, &target), Ok(()));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_artifact_older_than_a_source_is_refused() {
        let now = SystemTime::now();
        let (root, target, artifact) = fixture(now - Duration::from_secs(60), now);
        let e = check_fresh(&artifact, &root, &target).unwrap_err();
        assert!(
            e.starts_with("target/debug/libx.so is older than its source src/lib.rs (modified 60"),
            "{e}"
        );
        assert!(e.contains("run `cargo build --workspace`"), "{e}");

        // A file inside a directory listed as a source (a build script's rerun-if-changed).
        set_mtime(&root.join("src/lib.rs"), now - Duration::from_secs(120));
        let e = check_fresh(&artifact, &root, &target).unwrap_err();
        assert!(e.contains("its source migrations/V1.sql"), "{e}");

        // A removed source.
        std::fs::remove_dir_all(root.join("migrations")).unwrap();
        let e = check_fresh(&artifact, &root, &target).unwrap_err();
        assert!(e.contains("migrations is gone"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_artifacts_foreign_and_unreadable_dependency_files_are_refused() {
        let now = SystemTime::now();
        let (root, target, artifact) = fixture(now, now - Duration::from_secs(60));
        let other = target.join("debug/liby.so");
        let e = check_fresh(&other, &root, &target).unwrap_err();
        assert!(e.starts_with("target/debug/liby.so is missing"), "{e}");

        std::fs::write(&other, "").unwrap();
        let e = check_fresh(&other, &root, &target).unwrap_err();
        assert!(
            e.contains("dependency file target/debug/liby.d cannot be read"),
            "{e}"
        );

        std::fs::write(
            target.join("debug/liby.d"),
            "/elsewhere/liby.so: /elsewhere/a.rs\n",
        )
        .unwrap();
        let e = check_fresh(&other, &root, &target).unwrap_err();
        assert!(e.contains("built from another checkout"), "{e}");
        assert!(e.contains("/elsewhere/a.rs"), "{e}");

        assert_eq!(check_fresh(&artifact, &root, &target), Ok(()));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
