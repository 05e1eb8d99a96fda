//! Builders shared by several mbx runs on one host (parallel jobs on a
//! self-hosted runner, a matrix on one machine). Two lock files per builder,
//! under the state directory:
//!
//! - `NAME.setup.lock`, held exclusively while a run checks, creates,
//!   recreates or removes the builder (seconds): three runs started together
//!   with the builder absent create it once, the other two reuse it;
//! - `NAME.users.lock`, held shared by every run that uses the builder, until
//!   it ends: `mbx setup --cleanup` removes a builder only when it can take
//!   this lock exclusively, i.e. when no other run is using it.
//!
//! `flock(2)` locks go with the process: a run that dies frees them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Locks this process holds until it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// How long a run waits for another one to finish setting the builder up.
const SETUP_WAIT: Duration = Duration::from_secs(300);

fn dir() -> PathBuf {
    match super::builder::state_dir() {
        Some(d) => d.join("locks"),
        None => std::env::temp_dir().join(format!("mbx-locks-{}", unsafe { libc::getuid() })),
    }
}

fn open(name: &str, kind: &str) -> Result<File> {
    open_in(&dir(), name, kind)
}

fn open_in(dir: &std::path::Path, name: &str, kind: &str) -> Result<File> {
    let path = dir.join(format!("{name}.{kind}.lock"));
    std::fs::create_dir_all(dir)
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        })
        .map_err(|e| {
            Error::env(
                format!("cannot open the lock file {}: {e}", path.display()),
                "set MBX_STATE_DIR to a writable directory",
            )
        })
}

/// flock(2) without blocking: Ok(true) when taken, Ok(false) when another
/// process holds a conflicting lock.
fn try_flock(f: &File, op: libc::c_int) -> std::io::Result<bool> {
    // SAFETY: flock(2) on a descriptor this File owns.
    let rc = unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(e),
    }
}

/// The setup lock of builder `name`, held while the returned guard lives
/// (the file is kept only for its lock).
pub struct SetupLock(#[allow(dead_code)] File);

/// Wait (up to five minutes) for any other run setting `name` up.
pub fn setup(name: &str) -> Result<SetupLock> {
    let f = open(name, "setup")?;
    let started = Instant::now();
    loop {
        match try_flock(&f, libc::LOCK_EX) {
            Ok(true) => return Ok(SetupLock(f)),
            Ok(false) if started.elapsed() < SETUP_WAIT => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(false) => {
                return Err(Error::env(
                    format!("another mbx run has been setting up builder `{name}` for {} s", SETUP_WAIT.as_secs()),
                    "wait for it to finish, or pass --builder NAME (MBX_BUILDER) for a builder of this run's own",
                ))
            }
            Err(e) => return Err(Error::env(format!("cannot lock builder `{name}`: {e}"), "")),
        }
    }
}

/// Is any other run using builder `name`? (Only asked under its setup lock.)
pub fn in_use(name: &str, _setup: &SetupLock) -> Result<bool> {
    let f = open(name, "users")?;
    match try_flock(&f, libc::LOCK_EX) {
        // Taken, so nobody holds it; dropping `f` releases it again.
        Ok(taken) => Ok(!taken),
        Err(e) => Err(Error::env(format!("cannot lock builder `{name}`: {e}"), "")),
    }
}

/// Mark builder `name` as used by this process until it exits. Taken under
/// the setup lock, so no cleanup can slip in between.
/// Stop using every builder this process uses (before removing one it made).
pub fn release_all() {
    HELD.lock().expect("held locks").clear();
}

pub fn use_builder(name: &str, _setup: &SetupLock) -> Result<()> {
    let f = open(name, "users")?;
    match try_flock(&f, libc::LOCK_SH) {
        Ok(true) => {
            HELD.lock().expect("held locks").push(f);
            Ok(())
        }
        // Only a cleanup holds it exclusively, and only under the setup lock we hold.
        Ok(false) => Err(Error::env(
            format!("builder `{name}` is being removed by another mbx run"),
            "run again",
        )),
        Err(e) => Err(Error::env(format!("cannot lock builder `{name}`: {e}"), "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_user_blocks_an_exclusive_remover() {
        // Two open file descriptions stand in for two processes.
        let d = tempfile::tempdir().unwrap();
        let user = open_in(d.path(), "b", "users").unwrap();
        let remover = open_in(d.path(), "b", "users").unwrap();
        assert!(try_flock(&user, libc::LOCK_SH).unwrap());
        assert!(!try_flock(&remover, libc::LOCK_EX).unwrap(), "in use");
        drop(user);
        assert!(try_flock(&remover, libc::LOCK_EX).unwrap(), "free again");
        let setup_a = open_in(d.path(), "b", "setup").unwrap();
        let setup_b = open_in(d.path(), "b", "setup").unwrap();
        assert!(try_flock(&setup_a, libc::LOCK_EX).unwrap());
        assert!(
            !try_flock(&setup_b, libc::LOCK_EX).unwrap(),
            "one setup at a time"
        );
    }
}
