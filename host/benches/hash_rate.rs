//! The raw password-hash ceiling of this machine: PBKDF2-HMAC-SHA512 with the original's
//! parameters (250 000 rounds, 64-byte salt), on every core at once, for a few seconds.
//! Prints `hash_rate <hashes per second>`. Used by bench/run.sh as the login ceiling.
//!
//! Run: `cargo bench -p wazo-auth --bench hash_rate -- [seconds]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5.0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let salt = [7u8; wazo_auth_core::password::PBKDF2_SALT_LEN];
                while Instant::now() < deadline {
                    std::hint::black_box(wazo_auth_core::password::pbkdf2_hex("benchmark", &salt));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!("hash_rate {rate:.2} threads {threads}");
}
