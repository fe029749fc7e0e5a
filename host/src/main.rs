//! `wazo-auth`: the authentication server.

use std::process::ExitCode;

use clap::Parser;
use wazo_auth::{config, server, telemetry};

/// Keeps glibc's allocator from holding on to freed memory: large blocks (argon2id's 19 MiB
/// working memory, bodies) always come from and go back to the kernel (a fixed mmap threshold
/// turns off glibc's dynamic threshold, which otherwise let every hashing thread keep a 19 MiB
/// arena), and the number of arenas is bounded.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        libc::mallopt(libc::M_ARENA_MAX, (2 * cores) as libc::c_int);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = config::Cli::parse();
    let cfg = match config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wazo-auth: {e}");
            return ExitCode::from(2);
        }
    };
    let log = telemetry::logging::init(&cfg);
    let outcome = match cli.subcommand() {
        config::Command::Serve => server::run(cfg, log),
        config::Command::Bootstrap(args) => server::bootstrap(cfg, args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("wazo-auth: {e}");
            ExitCode::FAILURE
        }
    }
}
