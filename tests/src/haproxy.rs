//! A private HAProxy (Debian package `haproxy`, see scripts/install-deps.sh) in front of several
//! servers started by the harness: its own configuration, port and admin socket in a scratch
//! directory, a health check `HEAD /0.1/status` on each server, run in the foreground as a plain
//! process and stopped by its PID. Its log (one line per request, `option httplog`) is kept in
//! the scratch directory and printed by [`Haproxy::log`] for failures.
//!
//! The settings are the ones docs/scaling.md recommends ("Several nodes behind HAProxy"), with
//! a faster health check (the tests take a node out within a few hundred milliseconds).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, scratch_dir};

/// The HAProxy binary: on PATH, or in /usr/sbin (not on a non-root PATH).
pub fn binary() -> PathBuf {
    crate::sbin_program("haproxy")
}

/// The health check and retry settings of the balancer.
#[derive(Debug, Clone)]
pub struct Options {
    /// Milliseconds between two health checks of a server.
    pub check_inter_ms: u32,
    /// Failed checks before a server is taken out.
    pub fall: u32,
    /// Passed checks before a server is put back.
    pub rise: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            check_inter_ms: 100,
            fall: 2,
            rise: 2,
        }
    }
}

/// A running HAProxy; stopped (by PID) when dropped.
pub struct Haproxy {
    child: Option<Child>,
    dir: PathBuf,
    log_path: PathBuf,
    socket: PathBuf,
    /// The frontend's address, `http://127.0.0.1:PORT`.
    pub base: String,
    servers: usize,
}

/// The name of server `i` in the backend.
fn server_name(i: usize) -> String {
    format!("node{i}")
}

/// The backend's name.
pub const BACKEND: &str = "wazo_auth";

fn config(port: u16, socket: &Path, servers: &[SocketAddr], o: &Options) -> String {
    let mut text = format!(
        "\
global
    log stderr format raw local0 info
    stats socket {socket} mode 600 level admin
    maxconn 2000

defaults
    mode http
    log global
    option httplog
    option dontlognull
    # The client address, read by wazo-auth from a trusted proxy (rest_api.trusted_proxies).
    option forwardfor
    # A request whose connection to a server fails is sent again, to another server.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    # Idle server connections are reused, but a client's first request gets a connection that
    # is known to work.
    http-reuse safe
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    timeout check 2s
    timeout queue 10s

frontend api
    bind 127.0.0.1:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk
    http-check send meth HEAD uri /0.1/status
    http-check expect status 200
    default-server check inter {inter}ms fall {fall} rise {rise}
",
        socket = socket.display(),
        inter = o.check_inter_ms,
        fall = o.fall,
        rise = o.rise,
    );
    for (i, addr) in servers.iter().enumerate() {
        text.push_str(&format!("    server {} {addr}\n", server_name(i)));
    }
    text
}

/// The address a harness server listens on (from its base URL).
pub fn server_addr(server: &crate::Server) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("{} is not http://ADDR: {e}", server.base))
}

impl Haproxy {
    /// Starts HAProxy in front of `servers` (`server_addr`) and waits until every one is up.
    pub fn start(servers: &[SocketAddr], options: &Options) -> Haproxy {
        let dir = scratch_dir("haproxy");
        let socket = dir.join("admin.sock");
        let log_path = dir.join("haproxy.log");
        let config_path = dir.join("haproxy.cfg");
        let mut last_error = String::new();
        // The port is picked, then bound by HAProxy: another process may take it in between.
        for _attempt in 0..5 {
            let port = free_port();
            std::fs::write(&config_path, config(port, &socket, servers, options)).unwrap();
            let check = Command::new(binary())
                .arg("-c")
                .arg("-f")
                .arg(&config_path)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary().display()));
            assert!(
                check.status.success(),
                "haproxy -c refuses the configuration:\n{}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
            let log = std::fs::File::create(&log_path).unwrap();
            // -db: foreground, no daemon; the PID is the child's.
            let child = Command::new(binary())
                .arg("-db")
                .arg("-f")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start haproxy: {e}"));
            let mut lb = Haproxy {
                child: Some(child),
                dir: dir.clone(),
                log_path: log_path.clone(),
                socket: socket.clone(),
                base: format!("http://127.0.0.1:{port}"),
                servers: servers.len(),
            };
            match lb.wait_started(Duration::from_secs(20)) {
                Ok(()) => {
                    lb.wait_up(servers.len(), Duration::from_secs(30));
                    return lb;
                }
                Err(e) => {
                    last_error = e;
                    lb.stop();
                }
            }
        }
        panic!("haproxy did not start: {last_error}");
    }

    /// Waits until the admin socket answers and the frontend accepts connections.
    fn wait_started(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                return Err(format!("haproxy exited ({status}); log:\n{}", self.log()));
            }
            let port_open =
                std::net::TcpStream::connect(self.base.trim_start_matches("http://")).is_ok();
            if port_open && self.admin("show info").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("haproxy never listened; log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a command to the admin socket; its answer.
    pub fn admin(&self, command: &str) -> Result<String, String> {
        let mut s = UnixStream::connect(&self.socket).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(format!("{command}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// The backend's servers' rows of `show stat`, as (column name, value) maps, in order.
    pub fn stats(&self) -> Vec<std::collections::BTreeMap<String, String>> {
        let text = self
            .admin("show stat")
            .unwrap_or_else(|e| panic!("haproxy admin socket: {e}; log:\n{}", self.log()));
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .map(String::from)
            .collect();
        let mut rows: Vec<_> = lines
            .map(|l| {
                header
                    .iter()
                    .cloned()
                    .zip(l.split(',').map(String::from))
                    .collect::<std::collections::BTreeMap<_, _>>()
            })
            .filter(|r| {
                r.get("pxname").map(String::as_str) == Some(BACKEND)
                    && r.get("svname").is_some_and(|n| n.starts_with("node"))
            })
            .collect();
        rows.sort_by_key(|r| r.get("svname").cloned());
        rows
    }

    /// The state of each server (`UP`, `DOWN`, `UP 1/2`...), in order.
    pub fn states(&self) -> Vec<String> {
        self.stats()
            .iter()
            .map(|r| r.get("status").cloned().unwrap_or_default())
            .collect()
    }

    /// The sum of a counter of `show stat` over the backend's servers (e.g. `wretr`, the
    /// retries; `wredis`, the redispatches; `eresp`, the response errors).
    pub fn counter(&self, column: &str) -> u64 {
        self.stats()
            .iter()
            .filter_map(|r| r.get(column)?.parse::<u64>().ok())
            .sum()
    }

    /// Waits until `count` servers are `UP`, or panics after `timeout`.
    pub fn wait_up(&self, count: usize, timeout: Duration) {
        self.wait_states(timeout, |states| {
            states.iter().filter(|s| *s == "UP").count() == count
        });
    }

    /// Waits until server `i` is in state `state` (`UP`, `DOWN`, `MAINT`), or panics after
    /// `timeout`.
    pub fn wait_server(&self, i: usize, state: &str, timeout: Duration) {
        self.wait_states(timeout, |states| {
            states.get(i).map(String::as_str) == Some(state)
        });
    }

    fn wait_states(&self, timeout: Duration, ok: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let states = self.states();
            if ok(&states) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy servers: {states:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Points server `i` at another address (a node restarted on another port).
    pub fn set_server(&self, i: usize, addr: SocketAddr) {
        assert!(i < self.servers, "no server {i}");
        let out = self
            .admin(&format!(
                "set server {BACKEND}/{} addr {} port {}",
                server_name(i),
                addr.ip(),
                addr.port()
            ))
            .unwrap_or_else(|e| panic!("haproxy admin socket: {e}"));
        assert!(
            out.trim().is_empty() || out.contains("changed"),
            "set server: {out}"
        );
    }

    /// HAProxy's log so far (one line per request, and the servers' state changes).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Stops HAProxy (SIGTERM to its PID, SIGKILL if it is still there after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::stop_child(&mut child, Duration::from_secs(10));
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.stop();
        // Kept for a failing test (its log is there), as the servers' directories are.
        if !std::thread::panicking() && std::env::var_os("WAZO_AUTH_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub use crate::try_request;

/// A client with keep-alive connections of its own (one per load thread).
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}
