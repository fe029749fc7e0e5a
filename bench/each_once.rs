//! A load generator for bench/scale.sh (std only: built with `rustc -O`): sends one request per line of a file (each path once),
//! over several keep-alive connections, and prints the rate and the latency percentiles. wrk
//! cannot do this: it runs for a fixed time, so a list of token ids would be either exhausted
//! (the rest being cache hits) or not all sent.
//!
//!   each_once ADDRESS METHOD FILE CONNECTIONS
//!
//! ADDRESS is host:port; FILE holds one request path per line. Prints one line:
//! `requests <n> errors <e> rate <r>/s p50 <ms> p99 <ms> max <ms>` (errors: answers other than
//! 2xx, or failed connections).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: each_once ADDRESS METHOD FILE CONNECTIONS");
        std::process::exit(2);
    }
    let (address, method) = (args[0].as_str(), args[1].as_str());
    let paths: Vec<String> = match std::fs::read_to_string(&args[2]) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) => {
            eprintln!("each_once: cannot read {}: {e}", args[2]);
            std::process::exit(2);
        }
    };
    let connections: usize = args[3].parse().unwrap_or(8).max(1);
    let next = AtomicUsize::new(0);
    let errors = AtomicUsize::new(0);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        let sent = Instant::now();
                        match request(&mut conn, address, method, path) {
                            Ok(status) if (200..300).contains(&status) => {}
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                        }
                        mine.push(sent.elapsed());
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
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
        errors.load(Ordering::Relaxed),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// One request on the connection (opened if needed); its status. A HEAD answer has no body;
/// another's body is read by its Content-Length.
fn request(
    conn: &mut Option<(TcpStream, BufReader<TcpStream>)>,
    address: &str,
    method: &str,
    path: &str,
) -> std::io::Result<u16> {
    if conn.is_none() {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        let reader = BufReader::new(stream.try_clone()?);
        *conn = Some((stream, reader));
    }
    let Some((stream, reader)) = conn.as_mut() else {
        return Err(std::io::Error::other("no connection"));
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    if method != "HEAD" && length > 0 {
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
    }
    Ok(status)
}
