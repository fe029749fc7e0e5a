//! Delivery: a bounded queue drained by one task, which sends each message to the SMTP server
//! and retries the ones the server could not take (connection refused, timeout, a 4xx answer)
//! with exponential back-off, until `smtp.retry_max_age`. A message refused for good (a 5xx
//! answer, an address the SMTP library cannot write) is dropped at once. Every drop is logged
//! with the recipient's domain only.

use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;

use super::{domain_of, Party, Security, SmtpSettings};

/// First retry delay; doubled at each failure, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub from: Party,
    pub to: Party,
    pub subject: String,
    pub body: String,
}

/// Why a message was not sent.
#[derive(Debug)]
pub enum SendError {
    /// The message cannot be written (an address the SMTP library refuses).
    Invalid(String),
    /// The SMTP server refused it for good.
    Refused(String),
    /// The SMTP server could not be reached or could not take it now.
    Unavailable(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Invalid(e) => write!(f, "invalid message: {e}"),
            SendError::Refused(e) => write!(f, "refused by the SMTP server: {e}"),
            SendError::Unavailable(e) => write!(f, "SMTP server unavailable: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// The mail sender shared by the request handlers.
pub struct Mailer {
    queue: mpsc::Sender<Outgoing>,
    transport: Transport,
    timeout: Duration,
}

fn transport(smtp: &SmtpSettings) -> Result<Transport, String> {
    let tls = |host: &str| {
        TlsParameters::new(host.to_string())
            .map_err(|e| format!("\"smtp\": TLS set-up for {host}: {e}"))
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.hostname)
        .port(smtp.port)
        .timeout(Some(smtp.timeout));
    builder = match smtp.security {
        Security::None => builder.tls(Tls::None),
        Security::StartTls => builder.tls(Tls::Required(tls(&smtp.hostname)?)),
        Security::Tls => builder.tls(Tls::Wrapper(tls(&smtp.hostname)?)),
    };
    if let Some((user, password)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

fn mailbox(party: &Party) -> Result<Mailbox, SendError> {
    let address: Address = party.address.parse().map_err(|e| {
        SendError::Invalid(format!("address at {}: {e}", domain_of(&party.address)))
    })?;
    Ok(Mailbox::new(
        party.name.clone().filter(|n| !n.is_empty()),
        address,
    ))
}

fn message(mail: &Outgoing) -> Result<Message, SendError> {
    Message::builder()
        .from(mailbox(&mail.from)?)
        .to(mailbox(&mail.to)?)
        // One line: a template's stray newline must not start another header.
        .subject(mail.subject.replace(['\r', '\n'], " ").trim())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| SendError::Invalid(e.to_string()))
}

async fn deliver(transport: &Transport, mail: &Outgoing, bound: Duration) -> Result<(), SendError> {
    let message = message(mail)?;
    match tokio::time::timeout(bound, transport.send(message)).await {
        Err(_) => Err(SendError::Unavailable("timed out".into())),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_permanent() => Err(SendError::Refused(describe(&e))),
        Ok(Err(e)) => Err(SendError::Unavailable(describe(&e))),
    }
}

/// What went wrong, without the server's text (which may quote the recipient's address).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        return format!("SMTP answer {code}");
    }
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_tls() {
        "TLS failure".into()
    } else if e.is_client() {
        "SMTP client error".into()
    } else {
        "connection failed".into()
    }
}

/// A message between attempts.
struct Pending {
    mail: Outgoing,
    first_attempt: Instant,
    next_attempt: Instant,
    backoff: Duration,
}

impl Mailer {
    /// The sender, with its delivery task spawned on the current runtime.
    pub fn start(smtp: &SmtpSettings) -> Result<Mailer, String> {
        let transport = transport(smtp)?;
        let (queue, rx) = mpsc::channel(smtp.queue_size);
        // One exchange may take `timeout` per command: bound a whole delivery at a few of them.
        let bound = smtp.timeout.saturating_mul(4);
        tokio::spawn(run(
            rx,
            transport.clone(),
            bound,
            smtp.retry_max_age,
            smtp.queue_size,
        ));
        Ok(Mailer {
            queue,
            transport,
            timeout: bound,
        })
    }

    /// Queues a message; never waits. A full queue drops it (logged).
    pub fn queue(&self, mail: Outgoing) {
        let (mail, why) = match self.queue.try_send(mail) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(m)) => (m, "the mail queue is full"),
            Err(mpsc::error::TrySendError::Closed(m)) => (m, "the mail sender has stopped"),
        };
        log::error!(
            "mail to a recipient at {} dropped: {why}",
            domain_of(&mail.to.address)
        );
    }

    /// Sends a message now, waiting for the SMTP server's answer (bounded by `smtp.timeout`
    /// per exchange): for the registration, which must not keep a user whose confirmation mail
    /// was not accepted.
    pub async fn send_now(&self, mail: &Outgoing) -> Result<(), SendError> {
        deliver(&self.transport, mail, self.timeout).await
    }
}

async fn run(
    mut rx: mpsc::Receiver<Outgoing>,
    transport: Transport,
    bound: Duration,
    max_age: Duration,
    max_pending: usize,
) {
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let next = pending.iter().map(|p| p.next_attempt).min();
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = rx.recv() => {
                let Some(mail) = received else { break };
                let now = Instant::now();
                let first = Pending {
                    mail,
                    first_attempt: now,
                    next_attempt: now,
                    backoff: FIRST_BACKOFF,
                };
                if let Some(retry) = attempt(&transport, first, bound, max_age).await {
                    if pending.len() >= max_pending {
                        log::error!(
                            "mail to a recipient at {} dropped: too many mails wait for the SMTP server",
                            domain_of(&retry.mail.to.address)
                        );
                    } else {
                        pending.push(retry);
                    }
                }
            }
            () = due => {
                let now = Instant::now();
                let (ready, waiting): (Vec<_>, Vec<_>) =
                    pending.drain(..).partition(|p| p.next_attempt <= now);
                pending = waiting;
                for p in ready {
                    if let Some(retry) = attempt(&transport, p, bound, max_age).await {
                        pending.push(retry);
                    }
                }
            }
        }
    }
}

/// One delivery attempt; the message back when it is to be retried.
async fn attempt(
    transport: &Transport,
    mut p: Pending,
    bound: Duration,
    max_age: Duration,
) -> Option<Pending> {
    let domain = domain_of(&p.mail.to.address).to_string();
    match deliver(transport, &p.mail, bound).await {
        Ok(()) => {
            log::info!("mail sent to a recipient at {domain}");
            None
        }
        Err(e @ (SendError::Invalid(_) | SendError::Refused(_))) => {
            log::error!("mail to a recipient at {domain} dropped: {e}");
            None
        }
        Err(e) => {
            let next = Instant::now() + p.backoff;
            if next.duration_since(p.first_attempt) > max_age {
                log::error!(
                    "mail to a recipient at {domain} dropped after {:.0} s of retries: {e}",
                    p.first_attempt.elapsed().as_secs_f64()
                );
                return None;
            }
            log::warn!(
                "mail to a recipient at {domain} not sent, retried in {} s: {e}",
                p.backoff.as_secs()
            );
            p.next_attempt = next;
            p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
            Some(p)
        }
    }
}
