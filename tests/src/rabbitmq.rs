//! A private RabbitMQ broker for the bus tests, run as a plain process (the Debian package's
//! `rabbitmq-server`, installed by scripts/install-deps.sh; no service is started), and a
//! consumer reading what the server publishes.
//!
//! Each broker has its own ports (AMQP, Erlang distribution, epmd), node name, data and log
//! directories and `HOME` (the Erlang cookie) under a temporary directory, so that brokers of
//! parallel tests never meet. It is stopped by PID: the `rabbitmq-server` wrapper and its
//! descendants (the Erlang VM), and the epmd this broker started (found by its private
//! `ERL_EPMD_PORT`), when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::free_port;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Map, Value};

/// How long a broker may take to accept AMQP connections (RabbitMQ boots in seconds; the test
/// machines are shared).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// The `rabbitmq-server` start script (the Debian package's own, which runs the broker as the
/// calling user; `/usr/sbin/rabbitmq-server` would switch to the `rabbitmq` user).
fn server_script() -> PathBuf {
    for candidate in [
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
        "/usr/sbin/rabbitmq-server",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("rabbitmq-server is not installed: run scripts/install-deps.sh");
}

/// `pid` and its descendants, parents first.
fn process_tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let kids = crate::children_of(all[i]);
        all.extend(kids);
        i += 1;
    }
    all
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The epmd processes whose environment holds `ERL_EPMD_PORT=<port>` (the one this broker
/// started: epmd daemonizes, so it is no descendant of the broker).
fn epmd_of(port: u16) -> Vec<i32> {
    let needle = format!("ERL_EPMD_PORT={port}");
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
        if !comm(pid).starts_with("epmd") {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// `uri` as lapin's parser wants it: a trailing `/` is the default virtual host `/` (lapin
/// would read an empty one), as for kombu and the server.
fn lapin_uri(uri: &str) -> String {
    match uri.strip_suffix('/') {
        Some(base) if !base.ends_with('/') && base.matches('/').count() == 2 => {
            format!("{base}/%2f")
        }
        _ => uri.to_string(),
    }
}

/// One broker for the whole test binary, started on first use and killed when the binary exits.
pub fn shared_broker() -> &'static Broker {
    static SHARED: OnceLock<Broker> = OnceLock::new();
    extern "C" fn kill_shared_at_exit() {
        if let Some(broker) = SHARED.get() {
            broker.terminate();
        }
    }
    SHARED.get_or_init(|| {
        let broker = Broker::start();
        unsafe {
            libc::atexit(kill_shared_at_exit);
        }
        broker
    })
}

/// A private RabbitMQ broker.
pub struct Broker {
    dir: PathBuf,
    pub amqp_port: u16,
    dist_port: u16,
    epmd_port: u16,
    nodename: String,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker and waits until it accepts AMQP connections.
    pub fn start() -> Broker {
        let dir = std::env::temp_dir().join(format!(
            "wazo-auth-test-rabbitmq-{}-{}",
            std::process::id(),
            crate::next_id()
        ));
        for sub in ["home", "mnesia", "log", "plugins-expand"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create the broker's directories");
        }
        // Our own configuration files, so that nothing of /etc/rabbitmq applies. A low disk
        // limit: the test machines' disks are shared, and an alarm would block publishers.
        std::fs::write(
            dir.join("rabbitmq.conf"),
            "disk_free_limit.absolute = 1MB\nlog.console = false\nlog.file.level = info\n",
        )
        .expect("write rabbitmq.conf");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("write enabled_plugins");
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("write rabbitmq-env.conf");
        let nodename = format!(
            "wazo-auth-test-{}-{}@localhost",
            std::process::id(),
            crate::next_id()
        );
        let mut broker = Broker {
            dir,
            amqp_port: free_port(),
            dist_port: free_port(),
            epmd_port: free_port(),
            nodename,
            child: None,
        };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let d = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("startup.log"))
            .expect("open the broker's startup log");
        let child = Command::new(server_script())
            .current_dir(d)
            .env("HOME", d.join("home"))
            .env("RABBITMQ_NODENAME", &self.nodename)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d.join("plugins-expand"))
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start rabbitmq-server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until an AMQP connection succeeds.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let rt = runtime();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "rabbitmq-server exited ({status}) while starting; log:\n{}",
                        self.log()
                    );
                }
            }
            let uri = lapin_uri(&self.uri());
            let connected = rt.block_on(async {
                let attempt = Connection::connect(&uri, ConnectionProperties::default());
                match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                    Ok(Ok(c)) => {
                        let _ = c.close(200, "ready".into()).await;
                        true
                    }
                    _ => false,
                }
            });
            if connected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server did not accept AMQP within {BOOT_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/`.
    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/", self.amqp_port)
    }

    /// The broker's logs (start script output and the node's log file).
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.join("startup.log")).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("log")) {
            for entry in entries.flatten() {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    fn tree(&self) -> Vec<i32> {
        self.child
            .as_ref()
            .map(|c| process_tree(c.id() as i32))
            .unwrap_or_default()
    }

    fn reap(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            if Instant::now() > deadline {
                self.child = Some(child);
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker gracefully (SIGTERM to the start script, which stops the node) and
    /// waits for it; killed if it takes more than 30 s.
    pub fn stop(&mut self) {
        let tree = self.tree();
        if let Some(&script) = tree.first() {
            unsafe {
                libc::kill(script, libc::SIGTERM);
            }
        }
        if !self.reap(Duration::from_secs(30)) {
            self.kill();
        }
        // Whatever is left of the VM (erl_child_setup, inet_gethost...).
        for pid in tree {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Kills the broker at once (SIGKILL to the Erlang VM and the start script), as a crash.
    pub fn kill(&mut self) {
        let tree = self.tree();
        // The VM first: it is what holds the connections.
        for &pid in tree.iter().rev() {
            if comm(pid).starts_with("beam") {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        for pid in tree {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        self.reap(Duration::from_secs(10));
    }

    /// Starts the broker again on the same ports, node name and data (after `stop` or `kill`).
    pub fn restart(&mut self) {
        self.launch();
    }
}

impl Broker {
    /// Kills every process of the broker (its VM, start script and epmd) and removes its
    /// directory, without waiting (at exit).
    fn terminate(&self) {
        for pid in self.tree() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        for pid in epmd_of(self.epmd_port) {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if std::env::var_os("WAZO_AUTH_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        for pid in epmd_of(self.epmd_port) {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if std::env::var_os("WAZO_AUTH_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A message read by a [`Consumer`].
#[derive(Debug, Clone)]
pub struct Received {
    pub exchange: String,
    pub routing_key: String,
    /// The AMQP headers, as JSON.
    pub headers: Map<String, Value>,
    /// The AMQP headers as sent.
    pub raw_headers: FieldTable,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub delivery_mode: Option<u8>,
    /// The body, parsed as JSON.
    pub body: Value,
    pub redelivered: bool,
}

/// An AMQP header value as JSON.
pub fn json_of(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Float(f) => Value::from(*f),
        AMQPValue::Double(f) => Value::from(*f),
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_string()),
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(json_of).collect()),
        AMQPValue::FieldTable(t) => Value::Object(table_json(t)),
        AMQPValue::Void => Value::Null,
        other => Value::String(format!("{other:?}")),
    }
}

fn table_json(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json_of(v)))
        .collect()
}

/// A queue bound to an exchange, read with `basic.get` (each message acknowledged when read).
pub struct Consumer {
    rt: tokio::runtime::Runtime,
    uri: String,
    exchange: String,
    exchange_type: String,
    queue: String,
    binding: String,
    channel: Option<(Connection, lapin::Channel)>,
}

impl Consumer {
    /// Declares the exchange as the server does (durable, of `exchange_type`) and a durable
    /// queue of its own bound to it with `binding` (e.g. `#`), so that messages survive a
    /// broker restart.
    pub fn bind(uri: &str, exchange: &str, exchange_type: &str, binding: &str) -> Consumer {
        let mut consumer = Consumer {
            rt: runtime(),
            uri: lapin_uri(uri),
            exchange: exchange.to_string(),
            exchange_type: exchange_type.to_string(),
            queue: format!("wazo-auth-test-{}-{}", std::process::id(), crate::next_id()),
            binding: binding.to_string(),
            channel: None,
        };
        consumer.connect().expect("connect the test consumer");
        consumer
    }

    /// (Re)connects, declaring and binding again (after a broker restart).
    pub fn connect(&mut self) -> Result<(), String> {
        let (uri, exchange, kind, queue, binding) = (
            self.uri.clone(),
            self.exchange.clone(),
            self.exchange_type.clone(),
            self.queue.clone(),
            self.binding.clone(),
        );
        let opened = self.rt.block_on(async move {
            let conn = Connection::connect(&uri, ConnectionProperties::default())
                .await
                .map_err(|e| e.to_string())?;
            let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Custom(kind),
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    binding.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, channel))
        })?;
        self.channel = Some(opened);
        Ok(())
    }

    /// Reconnects until it succeeds (for at most `timeout`).
    pub fn reconnect(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.connect() {
                Ok(()) => return,
                Err(e) => assert!(Instant::now() < deadline, "consumer reconnect: {e}"),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Drops the messages waiting in the queue.
    pub fn purge(&self) {
        if let Some((_, channel)) = &self.channel {
            let queue = self.queue.clone();
            let _ = self
                .rt
                .block_on(channel.queue_purge(queue.as_str().into(), QueuePurgeOptions::default()));
        }
    }

    /// The next message, if one comes within `timeout`. Panics if the connection fails.
    pub fn next(&self, timeout: Duration) -> Option<Received> {
        let (_, channel) = self.channel.as_ref().expect("connected");
        let deadline = Instant::now() + timeout;
        loop {
            let got = self
                .rt
                .block_on(channel.basic_get(self.queue.as_str().into(), BasicGetOptions::default()))
                .expect("basic.get");
            if let Some(message) = got {
                let delivery = message.delivery;
                self.rt
                    .block_on(delivery.acker.ack(BasicAckOptions::default()))
                    .expect("ack");
                let props = &delivery.properties;
                let raw_headers = props.headers().clone().unwrap_or_default();
                return Some(Received {
                    exchange: delivery.exchange.as_str().to_string(),
                    routing_key: delivery.routing_key.as_str().to_string(),
                    headers: table_json(&raw_headers),
                    raw_headers,
                    content_type: props
                        .content_type()
                        .as_ref()
                        .map(|s| s.as_str().to_string()),
                    content_encoding: props
                        .content_encoding()
                        .as_ref()
                        .map(|s| s.as_str().to_string()),
                    delivery_mode: *props.delivery_mode(),
                    body: serde_json::from_slice(&delivery.data).unwrap_or(Value::Null),
                    redelivered: delivery.redelivered,
                });
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads messages until `done(&read)` holds, or nothing came for `quiet`, or `timeout` has
    /// passed.
    pub fn read_until(
        &self,
        timeout: Duration,
        quiet: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut read = Vec::new();
        while !done(&read) && Instant::now() < deadline {
            match self.next(quiet.min(deadline.saturating_duration_since(Instant::now()))) {
                Some(m) => read.push(m),
                None => break,
            }
        }
        read
    }
}
