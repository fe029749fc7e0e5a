//! PostgreSQL notifications between server processes: one typed [`Notification`], its wire
//! format encoded and decoded here only, and the one listener task that feeds a process's
//! caches ([`listen`]).
//!
//! The payloads are a wire format shared with other processes, possibly of other versions
//! during an upgrade, and with SQL triggers (migrations V5, V7 and V8) and one SQL statement
//! (`Storage::purge_throttle_batch`): it does not change (new payloads may be added: an older
//! process logs and ignores them).
//!
//! | channel              | payload                          | sent by                      |
//! |----------------------|----------------------------------|------------------------------|
//! | `wazo_auth_revoked`  | hex of a token hash              | trigger on `auth_token` (V5) |
//! | `wazo_auth_revoked`  | `policies`                       | trigger on `auth_policy` (V7)|
//! | `wazo_auth_revoked`  | `tenants`                        | trigger on `auth_tenant` (V8)|
//! | `wazo_auth_revoked`  | `sync:<uuid>`                    | a process, to itself         |
//! | `wazo_auth_throttle` | `fail|<key>|<until epoch or ''>` | a failed login               |
//! | `wazo_auth_throttle` | `clear|<key>`                    | a login, the throttle purge  |
//!
//! A payload that is not one of these is logged and ignored.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sql::Db;
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio_postgres::AsyncMessage;

use crate::error::Result;

/// The channel of token revocations, policy and tenant changes and sync markers.
pub const REVOKED_CHANNEL: &str = "wazo_auth_revoked";
/// The channel of the login throttle (see `crate::throttle`).
pub const THROTTLE_CHANNEL: &str = "wazo_auth_throttle";

/// The payload of the policy trigger (migration V7).
const POLICIES_CHANGED: &str = "policies";
/// The payload of the tenant trigger (migration V8).
const TENANTS_CHANGED: &str = "tenants";
const SYNC_PREFIX: &str = "sync:";
const THROTTLE_FAILED_PREFIX: &str = "fail|";
/// The start of a `clear` payload on the throttle channel: SQL that announces cleared keys
/// itself appends the key to it (`$n || key`).
pub const THROTTLE_CLEARED_PREFIX: &str = "clear|";

/// The SHA-256 of a token id, as stored in `auth_token.token_hash`.
pub type TokenHash = [u8; 32];

/// One notification, as received or to be sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// A token was deleted or changed (trigger on `auth_token`).
    TokenRevoked(TokenHash),
    /// Some policy was created, changed or deleted (trigger on `auth_policy`).
    PoliciesChanged,
    /// Some tenant was created, deleted or given another parent (trigger on `auth_tenant`).
    TenantsChanged,
    /// A process's marker: once it comes back, every notification committed before it was
    /// sent has been received.
    Sync(uuid::Uuid),
    /// A failed login on a throttle key; `blocked_until` (epoch seconds) when it now blocks.
    ThrottleFailed {
        key: String,
        blocked_until: Option<f64>,
    },
    /// A throttle key's record is gone (successful login, purge).
    ThrottleCleared { key: String },
}

/// A payload that is not one of the known notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub channel: String,
    pub payload: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads hold token hashes and keyed login hashes at most, never secrets; bound the
        // length all the same.
        let shown: String = self.payload.chars().take(120).collect();
        write!(
            f,
            "unrecognised notification on {:?}: {shown:?}",
            self.channel
        )
    }
}

impl std::error::Error for Malformed {}

impl Notification {
    /// Decodes a notification received on `channel`.
    pub fn parse(channel: &str, payload: &str) -> std::result::Result<Notification, Malformed> {
        let parsed = match channel {
            REVOKED_CHANNEL => parse_revoked(payload),
            THROTTLE_CHANNEL => parse_throttle(payload),
            _ => None,
        };
        parsed.ok_or_else(|| Malformed {
            channel: channel.to_string(),
            payload: payload.to_string(),
        })
    }

    /// The channel this notification is sent on.
    pub fn channel(&self) -> &'static str {
        match self {
            Notification::TokenRevoked(_)
            | Notification::PoliciesChanged
            | Notification::TenantsChanged
            | Notification::Sync(_) => REVOKED_CHANNEL,
            Notification::ThrottleFailed { .. } | Notification::ThrottleCleared { .. } => {
                THROTTLE_CHANNEL
            }
        }
    }

    /// The payload this notification is sent with.
    pub fn payload(&self) -> String {
        match self {
            Notification::TokenRevoked(hash) => hex::encode(hash),
            Notification::PoliciesChanged => POLICIES_CHANGED.to_string(),
            Notification::TenantsChanged => TENANTS_CHANGED.to_string(),
            Notification::Sync(id) => format!("{SYNC_PREFIX}{}", id.hyphenated()),
            Notification::ThrottleFailed { key, blocked_until } => format!(
                "{THROTTLE_FAILED_PREFIX}{key}|{}",
                blocked_until.map(|u| u.to_string()).unwrap_or_default()
            ),
            Notification::ThrottleCleared { key } => format!("{THROTTLE_CLEARED_PREFIX}{key}"),
        }
    }

    /// Sends it (delivered to every listener when `client`'s transaction commits, at once
    /// outside a transaction).
    pub async fn send<C: Db>(&self, client: &C) -> Result<()> {
        client
            .exec(
                "SELECT pg_notify($1, $2)",
                &[&self.channel(), &self.payload()],
            )
            .await?;
        Ok(())
    }
}

fn parse_revoked(payload: &str) -> Option<Notification> {
    if payload == POLICIES_CHANGED {
        return Some(Notification::PoliciesChanged);
    }
    if payload == TENANTS_CHANGED {
        return Some(Notification::TenantsChanged);
    }
    if let Some(id) = payload.strip_prefix(SYNC_PREFIX) {
        return uuid::Uuid::parse_str(id).ok().map(Notification::Sync);
    }
    let bytes = hex::decode(payload).ok()?;
    TokenHash::try_from(bytes.as_slice())
        .ok()
        .map(Notification::TokenRevoked)
}

fn parse_throttle(payload: &str) -> Option<Notification> {
    if let Some(rest) = payload.strip_prefix(THROTTLE_FAILED_PREFIX) {
        // The time is last and never holds '|': a key may.
        let (key, until) = rest.rsplit_once('|')?;
        let blocked_until = match until {
            "" => None,
            u => Some(u.parse::<f64>().ok().filter(|u| u.is_finite())?),
        };
        return (!key.is_empty()).then(|| Notification::ThrottleFailed {
            key: key.to_string(),
            blocked_until,
        });
    }
    let key = payload.strip_prefix(THROTTLE_CLEARED_PREFIX)?;
    (!key.is_empty()).then(|| Notification::ThrottleCleared {
        key: key.to_string(),
    })
}

/// Sync markers sent and not yet back.
#[derive(Default)]
pub struct SyncMarkers {
    pending: Mutex<HashMap<uuid::Uuid, oneshot::Sender<()>>>,
}

impl SyncMarkers {
    /// A new marker, and what completes when it comes back.
    pub fn register(&self) -> (uuid::Uuid, oneshot::Receiver<()>) {
        let id = uuid::Uuid::new_v4();
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        (id, rx)
    }

    /// The marker came back (one of another process is not found: nothing happens).
    pub fn arrived(&self, id: &uuid::Uuid) {
        if let Some(tx) = self.lock().remove(id) {
            let _ = tx.send(());
        }
    }

    /// Gives up waiting for a marker.
    pub fn cancel(&self, id: &uuid::Uuid) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, oneshot::Sender<()>>> {
        // Only map operations run under this lock: a poisoned lock holds a consistent map.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What is read on the listening connection once LISTEN has taken effect: a notification sent
/// after it is delivered, so nothing falls between this state and the notifications that
/// follow.
pub struct Snapshot {
    /// The login throttle records: `(key, blocked until, epoch seconds)`, newest first.
    pub throttle: Vec<(String, Option<f64>)>,
}

/// The most throttle records read at (re)connection.
const SNAPSHOT_THROTTLE_MAX: i64 = 100_000;

/// What the listener feeds.
pub trait Receiver: Send + Sync + 'static {
    /// Notifications are being received from now on; `snapshot` is the state they follow.
    fn listening(&self, snapshot: Snapshot);
    /// One notification (in the order of the database's commits).
    fn notified(&self, notification: Notification);
    /// The connection is lost: notifications may be missed until the next `listening`.
    fn stopped(&self);
}

/// How often the listener checks that its connection still answers. A connection that went
/// silent (a network cut or a stalled server, with no reset) delivers no notification and no
/// error: without a check, its node would serve revoked tokens from its cache until the kernel
/// gave up on the connection, hours later.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Listens on every channel until the process ends, reconnecting as needed. Run it as a
/// background task, once per process.
///
/// Connecting and each liveness check ([`PROBE_EVERY`]) are bounded by `timeout` (the
/// `db_timeout` setting). When either fails, the connection is dropped and the receiver told
/// ([`Receiver::stopped`]: its caches stop serving) before it connects again, so a node misses
/// revocations for at most `PROBE_EVERY + timeout`, never for as long as a dead connection goes
/// unnoticed.
pub async fn listen<R: Receiver>(receiver: Arc<R>, db_uri: String, timeout: Duration) {
    loop {
        match listen_once(&*receiver, &db_uri, timeout).await {
            Ok(()) => log::warn!("revocation listener connection closed; reconnecting"),
            Err(e) => log::warn!("revocation listener failed ({e}); reconnecting"),
        }
        receiver.stopped();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A task aborted when this is dropped: the listener's tasks end with it, whichever way.
struct Aborting<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A listening connection: the client, the task reading its notifications, and what it read.
struct Subscription {
    client: tokio_postgres::Client,
    _driver: Aborting<()>,
    received: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
}

/// Connects to `db_uri`, listens on every channel and reads the throttle snapshot (those two
/// within `timeout`).
async fn subscribe(
    db_uri: &str,
    timeout: Duration,
) -> std::result::Result<(Subscription, Snapshot), String> {
    // Named, so that operators (and tests) can tell it from the pooled connections. Each host of
    // a multi-host URI is tried in turn, and the connection is bounded as a whole: a server that
    // accepts it and then says nothing must not hold the listener, and so the caches, off for
    // good (`crate::storage::connect_direct`).
    let (client, mut connection) =
        crate::storage::connect_direct(db_uri, "wazo-auth-listener", timeout)
            .await
            .map_err(|e| e.to_string())?;
    let (tx, received) = tokio::sync::mpsc::unbounded_channel();
    let driver = Aborting(tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx
                        .send((n.channel().to_string(), n.payload().to_string()))
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }));
    let ready = async {
        client
            .batch_execute(&format!(
                "LISTEN {REVOKED_CHANNEL}; LISTEN {THROTTLE_CHANNEL}"
            ))
            .await
            .map_err(|e| e.to_string())?;
        // The throttle records made before listening started.
        client
            .fetch(
                "SELECT key, extract(epoch FROM blocked_until)::float8 FROM auth_login_throttle
                 ORDER BY updated_at DESC LIMIT $1",
                &[&SNAPSHOT_THROTTLE_MAX],
            )
            .await
            .map_err(|e| e.to_string())
    };
    let rows = tokio::time::timeout(timeout, ready)
        .await
        .map_err(|_| format!("no answer to LISTEN within {timeout:?}"))??;
    let snapshot = Snapshot {
        throttle: rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<f64>>(1)))
            .collect(),
    };
    let subscription = Subscription {
        client,
        _driver: driver,
        received,
    };
    Ok((subscription, snapshot))
}

async fn listen_once<R: Receiver>(
    receiver: &R,
    db_uri: &str,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let (subscription, snapshot) = subscribe(db_uri, timeout).await?;
    let Subscription {
        client,
        _driver,
        mut received,
    } = subscription;
    receiver.listening(snapshot);
    log::info!("listening for token revocations");
    // The liveness check runs beside the reading, so that a slow answer to it never holds
    // back the notifications that arrive meanwhile.
    let mut probe = Aborting(tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            match tokio::time::timeout(timeout, client.simple_query("SELECT 1")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("liveness check failed: {e}"),
                Err(_) => return format!("no answer to the liveness check within {timeout:?}"),
            }
        }
    }));
    loop {
        tokio::select! {
            // Notifications already received are applied before a failed check ends it all.
            biased;
            message = received.recv() => match message {
                Some((channel, payload)) => match Notification::parse(&channel, &payload) {
                    Ok(notification) => receiver.notified(notification),
                    Err(e) => log::warn!("{e}; ignored"),
                },
                None => return Ok(()),
            },
            failed = &mut probe.0 => {
                return Err(failed.unwrap_or_else(|e| format!("liveness check stopped: {e}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(n: Notification) {
        let payload = n.payload();
        assert_eq!(
            Notification::parse(n.channel(), &payload),
            Ok(n.clone()),
            "{payload:?}"
        );
    }

    #[test]
    fn every_notification_round_trips() {
        round_trip(Notification::TokenRevoked([0xab; 32]));
        round_trip(Notification::TokenRevoked(std::array::from_fn(|i| i as u8)));
        round_trip(Notification::PoliciesChanged);
        round_trip(Notification::TenantsChanged);
        round_trip(Notification::Sync(uuid::Uuid::new_v4()));
        for until in [None, Some(1_764_400_000.25), Some(0.1 + 0.2), Some(1e-7)] {
            round_trip(Notification::ThrottleFailed {
                key: format!("login:{}", "0f".repeat(32)),
                blocked_until: until,
            });
        }
        round_trip(Notification::ThrottleFailed {
            key: "addr:2001:db8::1".into(),
            blocked_until: Some(12.5),
        });
        // A key holding the separator (a forwarded address is the client's text).
        round_trip(Notification::ThrottleFailed {
            key: "addr:a|b".into(),
            blocked_until: Some(3.0),
        });
        round_trip(Notification::ThrottleFailed {
            key: "addr:a|b|".into(),
            blocked_until: None,
        });
        round_trip(Notification::ThrottleCleared {
            key: "login:abc".into(),
        });
        round_trip(Notification::ThrottleCleared {
            key: "addr:x|y".into(),
        });
    }

    #[test]
    fn the_wire_format_is_unchanged() {
        // As the triggers of migrations V5, V7 and V8 and earlier versions send them.
        let hash = "00ff".repeat(16);
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = if i % 2 == 0 { 0x00 } else { 0xff };
        }
        assert_eq!(
            Notification::parse("wazo_auth_revoked", &hash),
            Ok(Notification::TokenRevoked(bytes))
        );
        assert_eq!(Notification::TokenRevoked(bytes).payload(), hash);
        assert_eq!(
            Notification::parse("wazo_auth_revoked", "policies"),
            Ok(Notification::PoliciesChanged)
        );
        assert_eq!(
            Notification::parse("wazo_auth_revoked", "tenants"),
            Ok(Notification::TenantsChanged)
        );
        assert_eq!(Notification::TenantsChanged.payload(), "tenants");
        assert_eq!(Notification::TenantsChanged.channel(), "wazo_auth_revoked");
        let id = uuid::Uuid::new_v4();
        assert_eq!(
            Notification::Sync(id).payload(),
            format!("sync:{}", id.hyphenated())
        );
        assert_eq!(
            Notification::ThrottleFailed {
                key: "login:k".into(),
                blocked_until: Some(1700000000.5)
            }
            .payload(),
            "fail|login:k|1700000000.5"
        );
        assert_eq!(
            Notification::ThrottleFailed {
                key: "addr:1.2.3.4".into(),
                blocked_until: None
            }
            .payload(),
            "fail|addr:1.2.3.4|"
        );
        assert_eq!(
            Notification::ThrottleCleared {
                key: "login:k".into()
            }
            .payload(),
            "clear|login:k"
        );
        // What `purge_throttle_batch` builds in SQL.
        assert_eq!(
            Notification::parse("wazo_auth_throttle", &format!("{THROTTLE_CLEARED_PREFIX}k")),
            Ok(Notification::ThrottleCleared { key: "k".into() })
        );
        assert_eq!(
            Notification::TokenRevoked(bytes).channel(),
            "wazo_auth_revoked"
        );
        assert_eq!(
            Notification::ThrottleCleared { key: "k".into() }.channel(),
            "wazo_auth_throttle"
        );
        // Hex in capitals is still a hash.
        assert!(matches!(
            Notification::parse("wazo_auth_revoked", &"AB".repeat(32)),
            Ok(Notification::TokenRevoked(_))
        ));
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let revoked = [
            "",
            "polices",
            "Policies",
            "tenant",
            "Tenants",
            "tenants ",
            "sync:",
            "sync:not-a-uuid",
            "abc",
            "zz",
            &"ab".repeat(31),
            &"ab".repeat(33),
            &format!("{}g", "a".repeat(63)),
            "fail|login:k|1",
            "é",
            &"é".repeat(32),
        ];
        for p in revoked {
            let e = Notification::parse("wazo_auth_revoked", p).unwrap_err();
            assert_eq!(e.payload, p);
            assert!(e.to_string().contains("wazo_auth_revoked"));
        }
        let throttle = [
            "",
            "fail",
            "fail|",
            "fail|key",
            "fail||",
            "fail||12",
            "fail|key|soon",
            "fail|key|1.5x",
            "fail|key|inf",
            "fail|key|NaN",
            "clear",
            "clear|",
            "block|key|1",
            "policies",
            "tenants",
            &"ab".repeat(32),
        ];
        for p in throttle {
            assert!(
                Notification::parse("wazo_auth_throttle", p).is_err(),
                "{p:?}"
            );
        }
        // A known payload on another channel is not that notification.
        assert!(Notification::parse("other", "policies").is_err());
        assert!(Notification::parse("wazo_auth_throttle", "policies").is_err());
        assert!(Notification::parse("wazo_auth_throttle", "tenants").is_err());
        // Long payloads are shown shortened.
        let long = Notification::parse("wazo_auth_revoked", &"x".repeat(8000)).unwrap_err();
        assert!(long.to_string().len() < 200);
    }

    #[test]
    fn sync_markers_complete_once() {
        let markers = SyncMarkers::default();
        let (a, mut rx_a) = markers.register();
        let (b, mut rx_b) = markers.register();
        assert_ne!(a, b);
        markers.arrived(&uuid::Uuid::new_v4());
        assert!(rx_a.try_recv().is_err());
        markers.arrived(&a);
        assert_eq!(rx_a.try_recv(), Ok(()));
        markers.cancel(&b);
        assert!(
            rx_b.try_recv().is_err(),
            "a cancelled marker never completes"
        );
        markers.arrived(&b);
        assert!(markers.lock().is_empty());
    }
}
