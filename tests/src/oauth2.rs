//! A local OAuth2 provider and synchronization service for the `google` and `microsoft`
//! plugins (tests/tests/oauth2.rs), in place of Google, Microsoft and oauth.wazo.io, which
//! cannot be reached from here. Both speak real HTTP and websocket on private 127.0.0.1 ports,
//! in threads of the test process, and stop when dropped.
//!
//! - [`Provider`]: the token endpoint (`POST /token`), for the `authorization_code` and
//!   `refresh_token` grants. It checks the client's credentials (form body or HTTP Basic),
//!   records every request, and can be made to fail ([`Mode::Status`]) or hang
//!   ([`Mode::Hang`]).
//! - [`SyncService`]: the synchronization websocket `/ws/{state}`; the test sends
//!   `{"code": ...}` to the client waiting on a state with [`SyncService::authorize`], as the
//!   original's `oauth2_synchronization_service` does when the provider redirects the user.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// How the token endpoint answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Grants tokens.
    Normal,
    /// Answers this status and raw body to every request.
    Status(u16, String),
    /// Reads the request and never answers (until the provider stops).
    Hang,
}

/// One request the token endpoint received (its form fields, credentials resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    pub grant_type: String,
    pub code: Option<String>,
    pub refresh_token: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

struct ProviderState {
    client_id: String,
    client_secret: String,
    mode: Mode,
    expires_in: i64,
    scope: String,
    /// Whether refresh answers carry a new refresh token (Microsoft does, Google does not).
    rotate_refresh_tokens: bool,
    issued: u32,
    refresh_tokens: Vec<String>,
    requests: Vec<TokenRequest>,
}

/// Accepts connections on a non-blocking listener until `stop`, handing each to `handle` in
/// its own thread.
fn serve(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    handle: impl Fn(TcpStream) + Send + Sync + 'static,
) -> JoinHandle<()> {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let h = handle.clone();
                    std::thread::spawn(move || h(stream));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    })
}

/// The local token endpoint.
pub struct Provider {
    addr: SocketAddr,
    state: Arc<Mutex<ProviderState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Provider {
    /// A provider for the client `client_id` / `client_secret`, granting tokens of one hour.
    pub fn start(client_id: &str, client_secret: &str) -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the provider");
        let addr = listener.local_addr().expect("provider address");
        let state = Arc::new(Mutex::new(ProviderState {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            mode: Mode::Normal,
            expires_in: 3600,
            scope: "scope-a scope-b".into(),
            rotate_refresh_tokens: false,
            issued: 0,
            refresh_tokens: Vec::new(),
            requests: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = serve(listener, stop.clone(), move |stream| {
            handle_http(stream, &s, &st)
        });
        Provider {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// `expires_in` of the next grants.
    pub fn set_expires_in(&self, seconds: i64) {
        self.lock().expires_in = seconds;
    }

    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.lock().rotate_refresh_tokens = rotate;
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.lock().requests.clone()
    }

    /// How many requests of `grant_type` were received.
    pub fn count(&self, grant_type: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.grant_type == grant_type)
            .count()
    }

    /// Stops listening (later connections are refused) and ends hanging answers.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProviderState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP request: method, path, headers (lower-case names) and body.
type HttpRequest = (String, String, BTreeMap<String, String>, Vec<u8>);

/// Reads one HTTP/1.1 request.
fn read_request(stream: &mut TcpStream) -> Option<HttpRequest> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, headers, body))
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let text = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}

fn handle_http(mut stream: TcpStream, state: &Mutex<ProviderState>, stop: &AtomicBool) {
    let Some((method, path, headers, body)) = read_request(&mut stream) else {
        return;
    };
    if method != "POST" || path != "/token" {
        return respond(&mut stream, 404, r#"{"error": "not_found"}"#);
    }
    let form: BTreeMap<String, String> = form_pairs(&body);
    let mut request = TokenRequest {
        grant_type: form.get("grant_type").cloned().unwrap_or_default(),
        code: form.get("code").cloned(),
        refresh_token: form.get("refresh_token").cloned(),
        redirect_uri: form.get("redirect_uri").cloned(),
        client_id: form.get("client_id").cloned(),
        client_secret: form.get("client_secret").cloned(),
    };
    if let Some((id, secret)) = headers.get("authorization").and_then(|a| basic_pair(a)) {
        request.client_id = Some(id);
        request.client_secret = Some(secret);
    }
    let mode = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests.push(request.clone());
        s.mode.clone()
    };
    match mode {
        Mode::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        Mode::Status(status, body) => return respond(&mut stream, status, &body),
        Mode::Normal => {}
    }
    let (status, answer) = grant(
        &mut state.lock().unwrap_or_else(|p| p.into_inner()),
        &request,
    );
    respond(&mut stream, status, &answer.to_string());
}

fn grant(s: &mut ProviderState, r: &TokenRequest) -> (u16, Value) {
    if r.client_id.as_deref() != Some(s.client_id.as_str())
        || r.client_secret.as_deref() != Some(s.client_secret.as_str())
    {
        return (401, json!({"error": "invalid_client"}));
    }
    let new_refresh = match r.grant_type.as_str() {
        "authorization_code" if r.code.as_deref().is_some_and(|c| !c.is_empty()) => true,
        "refresh_token"
            if r.refresh_token
                .as_ref()
                .is_some_and(|t| s.refresh_tokens.contains(t)) =>
        {
            s.rotate_refresh_tokens
        }
        "authorization_code" | "refresh_token" => return (400, json!({"error": "invalid_grant"})),
        _ => return (400, json!({"error": "unsupported_grant_type"})),
    };
    s.issued += 1;
    let n = s.issued;
    let mut answer = json!({
        "access_token": format!("access-token-{n}"),
        "token_type": "Bearer",
        "expires_in": s.expires_in,
        "scope": s.scope,
    });
    if new_refresh {
        let token = format!("refresh-token-{n}");
        s.refresh_tokens.push(token.clone());
        answer["refresh_token"] = json!(token);
    }
    (200, answer)
}

fn form_pairs(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// `application/x-www-form-urlencoded` decoding.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn basic_pair(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((decode(id), decode(secret)))
}

/// The local synchronization service.
pub struct SyncService {
    addr: SocketAddr,
    waiting: Arc<Mutex<BTreeMap<String, Sender<String>>>>,
    connections: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SyncService {
    pub fn start() -> SyncService {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sync service");
        let addr = listener.local_addr().expect("sync service address");
        let waiting: Arc<Mutex<BTreeMap<String, Sender<String>>>> = Arc::default();
        let connections: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (w, c, st) = (waiting.clone(), connections.clone(), stop.clone());
        let thread = serve(listener, stop.clone(), move |stream| {
            handle_ws(stream, &w, &c, &st)
        });
        SyncService {
            addr,
            waiting,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// The plugins' `websocket_host`.
    pub fn websocket_host(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The states of every websocket opened so far, in order.
    pub fn connections(&self) -> Vec<String> {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a client is waiting on `state` now.
    pub fn is_waiting(&self, state: &str) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(state)
    }

    /// Waits up to `timeout` for a client on `state`.
    pub fn wait_client(&self, state: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.is_waiting(state) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends `{"code": code, "state": state}` to the client waiting on `state`, as when the
    /// user has authorized; false when none is waiting.
    pub fn authorize(&self, state: &str, code: &str) -> bool {
        let message = json!({"code": code, "state": state}).to_string();
        let sender = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(state);
        sender.is_some_and(|s| s.send(message).is_ok())
    }
}

impl Drop for SyncService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle_ws(
    stream: TcpStream,
    waiting: &Mutex<BTreeMap<String, Sender<String>>>,
    connections: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut path = String::new();
    let callback = |req: &tungstenite::handshake::server::Request,
                    resp: tungstenite::handshake::server::Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    let Some(state) = path.strip_prefix("/ws/").map(str::to_string) else {
        let _ = ws.close(None);
        return;
    };
    let (tx, rx): (Sender<String>, Receiver<String>) = channel();
    connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(state.clone());
    waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(state.clone(), tx);
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)));
    while !stop.load(Ordering::SeqCst) {
        if let Ok(message) = rx.try_recv() {
            let _ = ws.send(tungstenite::Message::text(message));
        }
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    // The client left (or the service stops): it no longer waits.
    let mut w = waiting.lock().unwrap_or_else(|p| p.into_inner());
    if w.get(&state).is_some() {
        w.remove(&state);
    }
}
