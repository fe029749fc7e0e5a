//! The data, socket and log directories: creation, ownership, modes and reachability.

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::os_user::{effective_uid, OsUser};
use crate::{err, ClusterError, PORT};

/// Largest unix socket path accepted by the kernel (sizeof(sun_path) - 1).
const MAX_SOCKET_PATH: usize = 107;

pub(crate) fn absolute(path: &Path) -> Result<PathBuf, ClusterError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| ClusterError(format!("cannot get the current directory: {e}")))?
            .join(path)
    };
    // Lexically drop "." components (".." kept: symlinks make it ambiguous).
    Ok(abs
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect())
}

fn dir_is_empty(dir: &Path) -> Result<bool, ClusterError> {
    let mut it = fs::read_dir(dir)
        .map_err(|e| ClusterError(format!("cannot read directory {}: {e}", dir.display())))?;
    Ok(it.next().is_none())
}

/// Creates the data directory if needed, makes it owned by the postgres user
/// and mode 0700 (0750 is accepted too). Refuses a non-empty directory that
/// holds no cluster.
pub(crate) fn prepare_data_dir(data_dir: &Path, user: Option<&OsUser>) -> Result<(), ClusterError> {
    let created = match fs::symlink_metadata(data_dir) {
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(data_dir).map_err(|e| {
                ClusterError(format!(
                    "cannot create PostgreSQL data directory {}: {e}",
                    data_dir.display()
                ))
            })?;
            log::info!("created PostgreSQL data directory {}", data_dir.display());
            true
        }
        Err(e) => return err(format!("cannot access {}: {e}", data_dir.display())),
    };
    let meta = fs::metadata(data_dir)
        .map_err(|e| ClusterError(format!("cannot access {}: {e}", data_dir.display())))?;
    if !meta.is_dir() {
        return err(format!(
            "PostgreSQL data directory {} exists but is not a directory",
            data_dir.display()
        ));
    }
    let initialized = data_dir.join("PG_VERSION").exists();
    if !initialized && !created && !dir_is_empty(data_dir)? {
        return err(format!(
            "{} is not empty but holds no PostgreSQL cluster (no PG_VERSION file): \
             remove it or choose another data directory",
            data_dir.display()
        ));
    }
    if let Some(user) = user {
        if meta.uid() != user.uid {
            if !initialized {
                chown_recursive(data_dir, user)?;
            } else {
                return err(format!(
                    "PostgreSQL data directory {} is owned by uid {} but PostgreSQL runs as \
                     {} (uid {}): run `chown -R {} {}`, or set os_user to the owner",
                    data_dir.display(),
                    meta.uid(),
                    user.name,
                    user.uid,
                    user.name,
                    data_dir.display()
                ));
            }
        }
    } else if meta.uid() != effective_uid() {
        return err(format!(
            "PostgreSQL data directory {} is owned by uid {}, not by the current user: \
             choose another data directory or run as its owner",
            data_dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o700 && mode != 0o750 {
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            ClusterError(format!(
                "cannot chmod 0700 PostgreSQL data directory {}: {e}",
                data_dir.display()
            ))
        })?;
    }
    Ok(())
}

fn chown_recursive(path: &Path, user: &OsUser) -> Result<(), ClusterError> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
        ClusterError(format!(
            "cannot chown {} to {}: {e}",
            path.display(),
            user.name
        ))
    })?;
    let meta = fs::symlink_metadata(path)
        .map_err(|e| ClusterError(format!("cannot access {}: {e}", path.display())))?;
    if meta.is_dir() {
        let entries = fs::read_dir(path)
            .map_err(|e| ClusterError(format!("cannot read {}: {e}", path.display())))?;
        for entry in entries.flatten() {
            chown_recursive(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// Creates (if needed) a directory private to the postgres user (0700).
/// Refuses symlinks and directories owned by other users (important under /tmp).
pub(crate) fn ensure_private_dir(dir: &Path, user: Option<&OsUser>) -> Result<(), ClusterError> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return err(format!("cannot create directory {}: {e}", dir.display())),
    }
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| ClusterError(format!("cannot access {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return err(format!(
            "{} must be a directory (it is a symlink or a file): remove it",
            dir.display()
        ));
    }
    let me = effective_uid();
    let want_uid = user.map(|u| u.uid).unwrap_or(me);
    if meta.uid() != want_uid {
        match user {
            Some(user) if meta.uid() == 0 || meta.uid() == me => {
                std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid)).map_err(|e| {
                    ClusterError(format!(
                        "cannot chown {} to {}: {e}",
                        dir.display(),
                        user.name
                    ))
                })?;
            }
            _ => {
                return err(format!(
                    "{} is owned by uid {} (expected uid {want_uid}): remove it",
                    dir.display(),
                    meta.uid()
                ))
            }
        }
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| ClusterError(format!("cannot chmod 0700 {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Writes a file readable by the postgres user.
pub(crate) fn write_owned(
    path: &Path,
    content: &str,
    user: Option<&OsUser>,
) -> Result<(), ClusterError> {
    fs::write(path, content)
        .map_err(|e| ClusterError(format!("cannot write {}: {e}", path.display())))?;
    if let Some(user) = user {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
            ClusterError(format!(
                "cannot chown {} to {}: {e}",
                path.display(),
                user.name
            ))
        })?;
    }
    Ok(())
}

/// Every existing ancestor of `path` must be searchable (x) by `user`.
/// Child processes run with the user's uid and primary gid only (std drops
/// supplementary groups), so that is what is checked.
pub(crate) fn check_traversable(path: &Path, user: &OsUser) -> Result<(), ClusterError> {
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let Ok(meta) = fs::metadata(dir) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let ok = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return err(format!(
                "directory {} (mode {:o}, owner uid {}) is not traversable by user {:?}, which \
                 runs PostgreSQL: allow it (chmod o+x {}) or choose a data directory outside it",
                dir.display(),
                mode & 0o7777,
                meta.uid(),
                user.name,
                dir.display()
            ));
        }
    }
    Ok(())
}

/// `<data_dir>/socket`, or `/tmp/wazo-auth-pg-<hash>` when the socket path
/// would be too long for a unix socket.
pub(crate) fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let dir = data_dir.join("socket");
    let socket = dir.join(format!(".s.PGSQL.{PORT}"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return dir;
    }
    let short = PathBuf::from(format!(
        "/tmp/wazo-auth-pg-{:016x}",
        fnv1a(data_dir.as_os_str())
    ));
    log::info!(
        "socket path {} is too long for a unix socket; using {} instead",
        socket.display(),
        short.display()
    );
    short
}

/// Stable hash (unlike std's DefaultHasher) so the same data dir always maps
/// to the same fallback socket directory.
fn fnv1a(s: &OsStr) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
