//! `wazo-auth`: the authentication server.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use wazo_auth::{config, server};

fn init_logging(cfg: &config::Config) {
    let level = cfg.log_level_filter();
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    // tokio-postgres logs the parameters of every statement at debug level: password hashes and
    // salts (enough to guess passwords offline), token hashes, sealed data. Keep that module at
    // info even with `debug: true` or RUST_LOG=debug; only naming it exactly turns it on
    // (RUST_LOG=tokio_postgres::query=debug), the more specific directive winning.
    builder.filter_module("tokio_postgres::query", level.min(log::LevelFilter::Info));
    // RUST_LOG, when set, refines the configured level (e.g. RUST_LOG=actix_web=warn).
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    let pid = std::process::id();
    builder.format(move |buf, record| {
        writeln!(
            buf,
            "{} [{}] ({}) ({}): {}",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f"),
            pid,
            record.level(),
            record.target(),
            record.args()
        )
    });
    if let Some(path) = &cfg.log_filename {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => {
                builder.target(env_logger::Target::Pipe(Box::new(file)));
            }
            Err(e) => eprintln!("wazo-auth: cannot open log file {path}: {e}; logging to stderr"),
        }
    }
    builder.init();
}

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
    init_logging(&cfg);
    let outcome = match cli.subcommand() {
        config::Command::Serve => server::run(cfg),
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
