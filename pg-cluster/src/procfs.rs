//! What `/proc` and `postmaster.pid` tell about the server processes.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// Live (non-zombie) processes whose current directory is `dir` (PostgreSQL
/// server processes chdir to their data directory). Empty without /proc.
pub(crate) fn processes_in_dir(dir: &Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
                && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    let state = stat
                        .rfind(')')
                        .and_then(|i| stat[i + 1..].trim_start().chars().next());
                    matches!(state, Some('Z') | Some('X'))
                })
        })
        .collect()
}

pub(crate) struct PidFile {
    pub(crate) pid: i32,
    pub(crate) port: Option<u16>,
    pub(crate) socket_dir: Option<PathBuf>,
}

/// postmaster.pid: pid, data dir, start time, port, socket dir, listen addr, ...
pub(crate) fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let pid = lines.first()?.trim().parse().ok()?;
    let port = lines.get(3).and_then(|l| l.trim().parse().ok());
    let socket_dir = lines
        .get(4)
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| PathBuf::from(OsString::from(l)));
    Some(PidFile {
        pid,
        port,
        socket_dir,
    })
}
