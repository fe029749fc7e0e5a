//! A private SMTP server for the mail tests: Debian's `aiosmtpd` (package `python3-aiosmtpd`,
//! installed by scripts/install-deps.sh) run as a plain process on a free port of 127.0.0.1,
//! writing every message it accepts into a Maildir. Tests read the delivered messages from there.
//! The server is stopped by PID when dropped.

use crate::free_port;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the SMTP server may take to accept connections.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The raw message (headers and body).
    pub raw: String,
}

impl Mail {
    /// The value of a header (first occurrence; folded lines joined).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\n\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_string());
                }
            }
        }
        value
    }

    /// The body (after the first blank line), with quoted-printable soft line breaks and
    /// `=XX` escapes decoded when the message says it is quoted-printable.
    pub fn body(&self) -> String {
        let raw = self.raw.replace("\r\n", "\n");
        let body = raw.split_once("\n\n").map(|(_, b)| b).unwrap_or_default();
        let qp = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("quoted-printable"));
        if !qp {
            return body.to_string();
        }
        let joined = body.replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The value of query parameter `name` in the first URL of the body that has it.
    pub fn url_param(&self, name: &str) -> Option<String> {
        let body = self.body();
        let needle = format!("{name}=");
        for word in body.split_whitespace() {
            let Some(query) = word.split_once('?').map(|(_, q)| q) else {
                continue;
            };
            for pair in query.split('&') {
                if let Some(v) = pair.strip_prefix(&needle) {
                    return Some(v.to_string());
                }
            }
        }
        None
    }

    /// The first `http(s)://` URL of the body.
    pub fn first_url(&self) -> Option<String> {
        self.body()
            .split_whitespace()
            .find(|w| w.starts_with("https://") || w.starts_with("http://"))
            .map(str::to_string)
    }
}

/// A running SMTP server.
pub struct SmtpServer {
    pub port: u16,
    maildir: PathBuf,
    child: Option<Child>,
}

/// The system's Python (Debian's `python3-aiosmtpd` is installed for it; a `python3` found
/// first in `PATH`, e.g. pyenv's, would not have it).
fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

impl SmtpServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> SmtpServer {
        let dir = crate::scratch_dir("smtp");
        let maildir = dir.join("Maildir");
        let port = free_port();
        let log = std::fs::File::create(dir.join("aiosmtpd.log")).expect("create the SMTP log");
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start aiosmtpd: run scripts/install-deps.sh (python3-aiosmtpd)");
        let mut server = SmtpServer {
            port,
            maildir,
            child: Some(child),
        };
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = server.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "aiosmtpd exited ({status}): {}",
                    std::fs::read_to_string(dir.join("aiosmtpd.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The `smtp` configuration section that points the server at this SMTP server.
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({"hostname": "127.0.0.1", "port": self.port})
    }

    /// Every message delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, String, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                let name = e.file_name().to_string_lossy().into_owned();
                files.push((modified, name, e.path()));
            }
        }
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, _, p)| std::fs::read_to_string(p).ok())
            .map(|raw| Mail { raw })
            .collect()
    }

    /// The messages delivered to `address` (its `To` header names it).
    pub fn messages_to(&self, address: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m.header("To")
                    .is_some_and(|to| to.to_lowercase().contains(&address.to_lowercase()))
            })
            .collect()
    }

    /// Waits until `count` messages have been delivered to `address`; returns them.
    pub fn wait_for(&self, address: &str, count: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.messages_to(address);
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{count} mail(s) to {address} not delivered in {timeout:?} (found {})",
                found.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (by PID).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
