//! Running the PostgreSQL programs and describing how they ended.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::ClusterError;

pub(crate) fn run(cmd: &mut Command) -> Result<Output, ClusterError> {
    log::debug!("running {cmd:?}");
    cmd.stdin(Stdio::null());
    let out = cmd.output().map_err(|e| {
        ClusterError(format!(
            "cannot run {}: {e}",
            cmd.get_program().to_string_lossy()
        ))
    })?;
    log::debug!(
        "{} exited with {}",
        cmd.get_program().to_string_lossy(),
        out.status
    );
    Ok(out)
}

pub(crate) fn describe_output(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = [stderr.trim(), stdout.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty() {
        format!("exited with {}", out.status)
    } else {
        format!("exited with {}: {text}", out.status)
    }
}

pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            if all.is_empty() {
                String::new()
            } else {
                format!(
                    "\nlast lines of {}:\n{}",
                    path.display(),
                    all[start..].join("\n")
                )
            }
        }
        Err(_) => String::new(),
    }
}
