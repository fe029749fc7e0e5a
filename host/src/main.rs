//! `wazo-auth`: the authentication server.

use std::process::ExitCode;

use clap::Parser;
use wazo_auth::{config, import, server, telemetry};

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
    if let config::Command::ImportOriginal(args) = cli.subcommand() {
        return import_original(&cfg, &args);
    }
    let outcome = match cli.subcommand() {
        config::Command::Serve => server::run(cfg, log),
        config::Command::Bootstrap(args) => server::bootstrap(cfg, args),
        config::Command::ImportOriginal(_) => Ok(()),
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

/// `wazo-auth import-original`. Exit status: 0 imported with nothing skipped, 3 imported with
/// rows skipped (all listed), 1 refused or failed (nothing written).
fn import_original(cfg: &config::Config, args: &config::ImportArgs) -> ExitCode {
    match import::run(cfg, args) {
        Ok(import::Outcome::Done(report)) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("wazo-auth: cannot print the summary: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", import::render(&report));
            }
            if report.skipped.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Ok(import::Outcome::Refused(why)) => {
            log::error!("import refused: {why}");
            eprintln!("wazo-auth: import refused, nothing was written: {why}");
            ExitCode::FAILURE
        }
        Err(e) => {
            log::error!("{e}");
            eprintln!("wazo-auth: {e}");
            ExitCode::FAILURE
        }
    }
}
