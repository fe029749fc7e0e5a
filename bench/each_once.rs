//! A load generator for bench/scale.sh (std only: built with `rustc -O`): sends one request per
//! line of a file (each path once), over several keep-alive connections, and prints the rate and
//! the latency percentiles. wrk cannot do this: it runs for a fixed time, so a list of token ids
//! would be either exhausted (the rest being cache hits) or not all sent.
//!
//!   each_once ADDRESS METHOD FILE CONNECTIONS
//!
//! ADDRESS is host:port; FILE holds one request path per line. Prints one line:
//! `requests <n> errors <e> rate <r>/s p50 <ms> p99 <ms> max <ms>` (errors: answers other than
//! 2xx or that cannot be framed, failed connections, or no answer within 30 s). Blank lines of
//! FILE are skipped.
//!
//! Like wrk and pgbench, two threads share the connections, each waiting on all of its own at
//! once (`poll`), and each connection sends its next request as soon as its answer is read. A
//! thread per connection, blocked on its own, costs a thread switch per answer: that client
//! could not send more than about 36 k requests/s on two cores, against wrk's 95 k for the same
//! cached checks, and so measured itself rather than the server.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

const POLLIN: i16 = 0x1;

extern "C" {
    fn poll(fds: *mut PollFd, nfds: std::ffi::c_ulong, timeout: i32) -> i32;
}

/// How long a request waits for its answer before it is counted as failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

const THREADS: usize = 2;

struct Shared<'a> {
    address: &'a str,
    method: &'a str,
    paths: &'a [String],
    next: AtomicUsize,
    errors: AtomicUsize,
}

struct Conn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// When the request in flight was sent.
    sent: Option<Instant>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: each_once ADDRESS METHOD FILE CONNECTIONS");
        std::process::exit(2);
    }
    let paths: Vec<String> = match std::fs::read_to_string(&args[2]) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        Err(e) => {
            eprintln!("each_once: cannot read {}: {e}", args[2]);
            std::process::exit(2);
        }
    };
    let connections: usize = args[3].parse().unwrap_or(8).max(1);
    let shared = Shared {
        address: &args[0],
        method: &args[1],
        paths: &paths,
        next: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
    };
    let threads = THREADS.min(connections);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                // The connections dealt out evenly.
                let mine = connections / threads + usize::from(t < connections % threads);
                let shared = &shared;
                scope.spawn(move || run(shared, mine))
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            match w.join() {
                Ok(mine) => all.extend(mine),
                // Its requests' latencies are lost: no figure rather than a wrong one.
                Err(_) => {
                    eprintln!("each_once: a worker thread panicked");
                    std::process::exit(1);
                }
            }
        }
        all
    });
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "requests {} errors {} rate {:.0}/s p50 {:.3} p99 {:.3} max {:.3}",
        latencies.len(),
        shared.errors.load(Ordering::Relaxed),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// One thread: `count` connections, each sending the next path as soon as its answer is read,
/// until the paths run out. Returns the latencies of the requests it sent.
fn run(shared: &Shared, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut conns: Vec<Conn> = (0..count)
        .map(|_| Conn {
            stream: None,
            buf: Vec::with_capacity(4096),
            sent: None,
        })
        .collect();
    for conn in &mut conns {
        send_next(shared, conn, &mut latencies);
    }
    let mut fds: Vec<PollFd> = Vec::with_capacity(count);
    let mut which: Vec<usize> = Vec::with_capacity(count);
    let mut chunk = [0u8; 16384];
    loop {
        fds.clear();
        which.clear();
        for (i, conn) in conns.iter().enumerate() {
            if let (Some(stream), Some(_)) = (&conn.stream, conn.sent) {
                fds.push(PollFd {
                    fd: stream.as_raw_fd(),
                    events: POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if fds.is_empty() {
            return latencies;
        }
        // Until the oldest request in flight is due.
        let wait = which
            .iter()
            .filter_map(|&i| conns[i].sent)
            .map(|sent| ANSWER_TIMEOUT.saturating_sub(sent.elapsed()))
            .min()
            .unwrap_or(ANSWER_TIMEOUT);
        let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures for the whole call.
        let ready = unsafe { poll(fds.as_mut_ptr(), fds.len() as std::ffi::c_ulong, wait_ms) };
        if ready < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            // poll itself failed: what is in flight failed.
            for &i in &which {
                fail(shared, &mut conns[i], &mut latencies);
            }
            continue;
        }
        // Requests without an answer in time failed (their connections are dropped).
        for &i in &which {
            if conns[i].sent.is_some_and(|sent| sent.elapsed() >= ANSWER_TIMEOUT) {
                fail(shared, &mut conns[i], &mut latencies);
            }
        }
        if ready <= 0 {
            continue;
        }
        for (fd, &i) in fds.iter().zip(&which) {
            // Not ready, or failed above (its request is no longer in flight).
            if fd.revents == 0 || conns[i].sent.is_none() {
                continue;
            }
            let conn = &mut conns[i];
            let mut closed = false;
            if let Some(stream) = conn.stream.as_mut() {
                loop {
                    match stream.read(&mut chunk) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            match parse_answer(&conn.buf, shared.method == "HEAD") {
                Answer::Bad => fail(shared, conn, &mut latencies),
                Answer::Complete(status, used) => {
                    conn.buf.drain(..used);
                    if let Some(sent) = conn.sent.take() {
                        latencies.push(sent.elapsed());
                    }
                    if !(200..300).contains(&status) {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if closed {
                        conn.stream = None;
                        conn.buf.clear();
                    }
                    send_next(shared, conn, &mut latencies);
                }
                Answer::Incomplete if closed => fail(shared, conn, &mut latencies),
                Answer::Incomplete => {}
            }
        }
    }
}

/// The request in flight on `conn` failed: counted, the connection dropped, and the next sent
/// on a new one.
fn fail(shared: &Shared, conn: &mut Conn, latencies: &mut Vec<Duration>) {
    if let Some(sent) = conn.sent.take() {
        latencies.push(sent.elapsed());
        shared.errors.fetch_add(1, Ordering::Relaxed);
    }
    conn.stream = None;
    conn.buf.clear();
    send_next(shared, conn, latencies);
}

/// Sends the next path on `conn` (connecting first if needed), unless none is left.
fn send_next(shared: &Shared, conn: &mut Conn, latencies: &mut Vec<Duration>) {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = shared.paths.get(i) else {
            return;
        };
        let sent = Instant::now();
        match send(shared, conn, path) {
            Ok(()) => {
                conn.sent = Some(sent);
                return;
            }
            Err(_) => {
                // Counted as a failed request; the next path goes on a new connection.
                latencies.push(sent.elapsed());
                shared.errors.fetch_add(1, Ordering::Relaxed);
                conn.stream = None;
                conn.buf.clear();
            }
        }
    }
}

fn send(shared: &Shared, conn: &mut Conn, path: &str) -> std::io::Result<()> {
    if conn.stream.is_none() {
        let stream = TcpStream::connect(shared.address)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        conn.stream = Some(stream);
    }
    let Some(stream) = conn.stream.as_mut() else {
        return Err(std::io::Error::other("no connection"));
    };
    // One write (one segment): `write!` on the stream itself sends each piece apart.
    let head = format!(
        "{} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
        shared.method, shared.address
    );
    let mut rest = head.as_bytes();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rest.is_empty() {
        match stream.write(rest) {
            Ok(0) => return Err(std::io::Error::other("connection closed")),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::yield_now()
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

enum Answer {
    /// Its status and its length (head and body).
    Complete(u16, usize),
    /// Not all there yet.
    Incomplete,
    /// An answer this client cannot frame (no status, or a body without a Content-Length).
    Bad,
}

/// The answer at the start of `buf`. A HEAD answer has no body; another's is its
/// Content-Length (the server's answers have one: a chunked answer is not framed here).
fn parse_answer(buf: &[u8], head_only: bool) -> Answer {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
        return Answer::Incomplete;
    };
    let Ok(text) = std::str::from_utf8(&buf[..end]) else {
        return Answer::Bad;
    };
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status else {
        return Answer::Bad;
    };
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let total = match (head_only, length) {
        (true, _) => end,
        (false, Some(length)) => end + length,
        (false, None) => return Answer::Bad,
    };
    if buf.len() >= total {
        Answer::Complete(status, total)
    } else {
        Answer::Incomplete
    }
}
