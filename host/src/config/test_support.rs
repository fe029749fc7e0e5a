//! Helpers of the configuration tests: temporary directories of configuration files, loading
//! them.

use std::sync::atomic::{AtomicUsize, Ordering};

// What the tests of every module use.
pub(super) use clap::Parser;
pub(super) use serde_json::json;
pub(super) use std::path::PathBuf;

pub(super) use super::schema::bool_map;
pub(super) use super::{load_with_env_uuid, Cli, Config, ConfigError, DEFAULT_CONFIG_FILE};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh temporary directory, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "wazo-auth-config-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn cli(args: &[&str]) -> Cli {
    let mut argv = vec!["wazo-auth"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap()
}

/// Loads with `config.yml` of `dir` as main file (its conf.d relative).
pub(super) fn load_dir(dir: &TempDir, extra_args: &[&str]) -> Result<Config, ConfigError> {
    let main = dir.path("config.yml");
    let main = main.to_str().unwrap();
    let mut args = vec!["-c", main];
    args.extend_from_slice(extra_args);
    load_with_env_uuid(&cli(&args), None)
}

/// A directory with a main file using `conf.d` next to it.
pub(super) fn dir_with_main(main: &str) -> TempDir {
    let dir = TempDir::new();
    dir.write("config.yml", &format!("extra_config_files: conf.d\n{main}"));
    dir
}

pub(super) fn error_of(result: Result<Config, ConfigError>) -> String {
    result
        .expect_err("expected a configuration error")
        .to_string()
}
