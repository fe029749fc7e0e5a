//! Finding the PostgreSQL server binaries and their major version.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::command::describe_output;
use crate::{err, ClusterError};

const NOT_FOUND: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install \
     them (Debian: apt-get install postgresql, or run scripts/install-deps.sh as root) or set \
     db_uri in the configuration to use an existing server";

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| is_executable(&dir.join(b)))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub(crate) fn check_bin_dir(dir: &Path) -> Result<(), ClusterError> {
    if has_server_binaries(dir) {
        Ok(())
    } else {
        err(format!(
            "{} does not contain the PostgreSQL server binaries (initdb, pg_ctl, postgres): \
             fix bin_dir, install them (Debian: apt-get install postgresql) or set db_uri \
             in the configuration to use an existing server",
            dir.display()
        ))
    }
}

pub(crate) fn discover_bin_dir(data_dir: &Path) -> Result<PathBuf, ClusterError> {
    // An existing cluster needs the binaries of its own major version.
    if let Ok(v) = fs::read_to_string(data_dir.join("PG_VERSION")) {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", v.trim()));
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
    }
    if let Some(path) = find_in_path(OsStr::new("pg_config")) {
        match Command::new(&path)
            .arg("--bindir")
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if has_server_binaries(&dir) {
                    return Ok(dir);
                }
                log::debug!(
                    "pg_config --bindir = {} has no server binaries",
                    dir.display()
                );
            }
            Ok(out) => log::debug!("pg_config --bindir failed: {}", describe_output(&out)),
            Err(e) => log::debug!("cannot run {}: {e}", path.display()),
        }
    }
    if let Some(dir) = highest_debian_bin_dir(Path::new("/usr/lib/postgresql")) {
        return Ok(dir);
    }
    for prog in ["initdb", "pg_ctl"] {
        if let Some(path) = find_in_path(OsStr::new(prog)) {
            // Follow symlinks (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb).
            let real = path.canonicalize().unwrap_or(path);
            if let Some(dir) = real.parent() {
                if has_server_binaries(dir) {
                    return Ok(dir.to_path_buf());
                }
            }
        }
    }
    err(NOT_FOUND)
}

fn highest_debian_bin_dir(root: &Path) -> Option<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir(root).ok()?.flatten() {
        let name = entry.file_name();
        let Some(version) = parse_version(&name.to_string_lossy()) else {
            continue;
        };
        let bin = entry.path().join("bin");
        if !has_server_binaries(&bin) {
            continue;
        }
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, dir)| dir)
}

pub(crate) fn parse_version(s: &str) -> Option<Vec<u32>> {
    s.split('.').map(|p| p.parse().ok()).collect()
}

/// Major version of the server binaries ("15", or "9.6" for old ones).
pub(crate) fn binary_major_version(bin_dir: &Path) -> Option<String> {
    let out = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    // "postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split(") ").nth(1)?.split_whitespace().next()?;
    let parts: Vec<&str> = version.split('.').collect();
    let major: u32 = parts
        .first()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    if major >= 10 {
        Some(major.to_string())
    } else {
        Some(format!("{major}.{}", parts.get(1)?))
    }
}

fn find_in_path(prog: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| is_executable(p))
}
