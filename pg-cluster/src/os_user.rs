//! The unprivileged OS user that runs PostgreSQL when this process is root.

use std::process::Command;

use nix::unistd::{geteuid, User};

use crate::command::{describe_output, run};
use crate::{err, ClusterError};

/// System user created when we are root and no better user exists.
const FALLBACK_OS_USER: &str = "wazo-auth-pg";

/// An unprivileged OS user (only used when we are root).
#[derive(Debug, Clone)]
pub(crate) struct OsUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Whether this process runs as root (its effective user).
pub(crate) fn is_root() -> bool {
    geteuid().is_root()
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    geteuid().as_raw()
}

fn lookup_user(name: &str) -> Result<Option<OsUser>, ClusterError> {
    if name.contains('\0') {
        return err(format!("invalid user name {name:?}"));
    }
    match User::from_name(name) {
        Ok(found) => Ok(found.map(|u| OsUser {
            name: name.to_owned(),
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        Err(e) => err(format!(
            "cannot look up user {name:?}: {}",
            std::io::Error::from(e)
        )),
    }
}

/// The name of this process's effective user, if it has one.
pub(crate) fn current_user_name() -> Option<String> {
    User::from_uid(geteuid()).ok().flatten().map(|u| u.name)
}

/// The unprivileged user to run PostgreSQL as (we are root).
pub(crate) fn resolve_os_user(requested: Option<&str>) -> Result<OsUser, ClusterError> {
    let user = if let Some(name) = requested {
        match lookup_user(name)? {
            Some(u) => u,
            None => {
                return err(format!(
                    "os_user {name:?} (user to run the private PostgreSQL as) does not exist: \
                     create it (useradd --system {name}) or choose another user"
                ))
            }
        }
    } else if let Some(u) = lookup_user("postgres")? {
        u
    } else if let Some(u) = lookup_user(FALLBACK_OS_USER)? {
        u
    } else {
        log::info!("creating system user {FALLBACK_OS_USER} to run PostgreSQL");
        let mut cmd = Command::new("useradd");
        cmd.args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_OS_USER,
        ]);
        let result = run(&mut cmd);
        match lookup_user(FALLBACK_OS_USER)? {
            Some(u) => u,
            None => {
                let why = match result {
                    Ok(out) => describe_output(&out),
                    Err(e) => e.0,
                };
                return err(format!(
                    "PostgreSQL cannot run as root and no 'postgres' user exists; creating \
                     system user {FALLBACK_OS_USER} failed ({why}): create an unprivileged \
                     user and set os_user, or set db_uri to use an existing server"
                ));
            }
        }
    };
    if user.uid == 0 {
        return err(format!(
            "user {:?} has uid 0 but PostgreSQL refuses to run as root: choose an unprivileged \
             os_user",
            user.name
        ));
    }
    Ok(user)
}
