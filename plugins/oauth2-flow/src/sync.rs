//! The synchronization websocket: the flow's client connects to `<sync service>/ws/<state>`
//! and waits for the service to send `{"code": ...}` once the user has authorized (the
//! provider redirected the user's browser to the service with that code and state).

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Connector, Message};
use wazo_auth_plugin_api::serde_json::{self, Value};

/// Why no code came.
#[derive(Debug)]
pub enum SyncError {
    Connect(String),
    TimedOut,
    Closed,
    BadMessage(String),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Connect(why) => {
                write!(f, "cannot connect the synchronization websocket: {why}")
            }
            SyncError::TimedOut => write!(f, "no authorization before authorization_timeout"),
            SyncError::Closed => write!(
                f,
                "the synchronization service closed the websocket before sending a code"
            ),
            SyncError::BadMessage(why) => {
                write!(f, "the synchronization message is unusable: {why}")
            }
        }
    }
}

/// The largest message accepted from the synchronization service.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How often a waiting flow checks its deadline.
const POLL: Duration = Duration::from_millis(500);

/// A client TLS configuration for `wss://`: rustls with the webpki roots.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS configuration: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// A connected synchronization websocket.
pub struct Waiter {
    ws: Socket,
    tcp: TcpStream,
}

/// Connects to `url` (`ws://` or `wss://`), the TCP connection and the handshake bounded by
/// `timeout`.
pub fn connect(
    url: &str,
    timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Waiter, SyncError> {
    let deadline = Instant::now() + timeout;
    let request = url
        .into_client_request()
        .map_err(|e| SyncError::Connect(format!("invalid URL: {e}")))?;
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| SyncError::Connect("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("wss") => 443,
        _ => 80,
    });
    let addrs = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| SyncError::Connect(format!("cannot resolve {host}: {e}")))?;
    let mut last = format!("{host} has no address");
    let mut tcp = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last = "connection timed out".into();
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    let tcp = tcp.ok_or(SyncError::Connect(last))?;
    let io = |e: std::io::Error| SyncError::Connect(e.to_string());
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    tcp.set_read_timeout(Some(left)).map_err(io)?;
    tcp.set_write_timeout(Some(left)).map_err(io)?;
    tcp.set_nodelay(true).map_err(io)?;
    let control = tcp.try_clone().map_err(io)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let (ws, _) = tungstenite::client_tls_with_config(
        request,
        tcp,
        Some(config),
        Some(Connector::Rustls(tls.clone())),
    )
    .map_err(|e| match e {
        tungstenite::HandshakeError::Interrupted(_) => {
            SyncError::Connect("the handshake timed out".into())
        }
        tungstenite::HandshakeError::Failure(e) => SyncError::Connect(e.to_string()),
    })?;
    Ok(Waiter { ws, tcp: control })
}

impl Waiter {
    /// Waits until `deadline` for the first message and returns its `code`.
    pub fn wait_code(mut self, deadline: Instant) -> Result<String, SyncError> {
        let _ = self.tcp.set_read_timeout(Some(POLL));
        let _ = self.tcp.set_write_timeout(Some(POLL));
        let outcome = loop {
            if Instant::now() >= deadline {
                break Err(SyncError::TimedOut);
            }
            match self.ws.read() {
                Ok(Message::Text(text)) => break code_of(text.as_bytes()),
                Ok(Message::Binary(bytes)) => break code_of(&bytes),
                Ok(Message::Close(_)) => break Err(SyncError::Closed),
                // Pings are answered by the next flush.
                Ok(_) => {
                    let _ = self.ws.flush();
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    let _ = self.ws.flush();
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    break Err(SyncError::Closed)
                }
                Err(e) => break Err(SyncError::Connect(e.to_string())),
            }
        };
        // As the original, the websocket is closed after the first message (best effort).
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
        outcome
    }
}

fn code_of(bytes: &[u8]) -> Result<String, SyncError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| SyncError::BadMessage("not JSON".into()))?;
    match v.get("code") {
        Some(Value::String(c)) if !c.is_empty() => Ok(c.clone()),
        _ => Err(SyncError::BadMessage("no string code".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_read_from_the_first_message() {
        assert_eq!(code_of(br#"{"code": "c", "state": "s"}"#).unwrap(), "c");
        assert!(code_of(b"{}").is_err());
        assert!(code_of(br#"{"code": 3}"#).is_err());
        assert!(code_of(b"nope").is_err());
    }

    #[test]
    fn the_tls_configuration_builds() {
        assert!(tls_config().is_ok());
    }

    #[test]
    fn connecting_to_nothing_fails_within_the_bound() {
        let tls = tls_config().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let started = Instant::now();
        let e = connect(
            &format!("ws://127.0.0.1:{port}/ws/x"),
            Duration::from_secs(2),
            &tls,
        )
        .err()
        .unwrap();
        assert!(matches!(e, SyncError::Connect(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A server that accepts but never answers the handshake.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/ws/x", silent.local_addr().unwrap());
        let started = Instant::now();
        let e = connect(&url, Duration::from_millis(300), &tls)
            .err()
            .unwrap();
        assert!(matches!(e, SyncError::Connect(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
