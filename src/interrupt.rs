//! Ctrl-C (SIGINT) and SIGTERM: stop the child processes (buildx builds)
//! cleanly, then let the pipeline report what was pushed.
//! With no child running, exit at once: 130 after SIGINT, 143 after SIGTERM
//! (128 + the signal, as a shell reports it).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static SIGNAL: AtomicI32 = AtomicI32::new(libc::SIGINT);

/// The exit status of a run a stop signal ended: 128 + the signal.
pub fn exit_code() -> i32 {
    128 + SIGNAL.load(Ordering::SeqCst)
}

/// True once a stop signal arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Paths removed when a stop signal ends mbx at once (no unwinding runs
/// their owners' Drop): e.g. a docker config holding a login.
static SCRATCH: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

pub fn remove_on_exit(path: &std::path::Path) {
    SCRATCH.lock().expect("scratch").push(path.to_path_buf());
}

pub fn keep_on_exit(path: &std::path::Path) {
    SCRATCH.lock().expect("scratch").retain(|p| p != path);
}

fn remove_scratch() {
    for p in SCRATCH.lock().expect("scratch").drain(..) {
        let _ = std::fs::remove_dir_all(&p);
    }
}

/// Track a running child so a stop signal reaches it.
pub fn register(pid: u32) {
    CHILDREN.lock().expect("children").push(pid);
    // A signal that came just before the child started still stops it.
    if interrupted() {
        signal(pid);
    }
}

pub fn unregister(pid: u32) {
    CHILDREN.lock().expect("children").retain(|p| *p != pid);
}

fn signal(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned; no memory is touched.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
}

/// Listen for SIGINT and SIGTERM for the rest of the process.
pub fn install() {
    tokio::spawn(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        loop {
            let sig = tokio::select! {
                _ = tokio::signal::ctrl_c() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
            };
            if !interrupted() {
                SIGNAL.store(sig, Ordering::SeqCst);
            }
            let first = !INTERRUPTED.swap(true, Ordering::SeqCst);
            let children: Vec<u32> = CHILDREN.lock().expect("children").clone();
            if children.is_empty() || !first {
                remove_scratch();
                crate::printer::err("mbx: interrupted");
                std::process::exit(exit_code());
            }
            crate::printer::err(&format!(
                "mbx: interrupted: stopping {} build process(es)…",
                children.len()
            ));
            for pid in children {
                signal(pid);
            }
        }
    });
}

/// A run's scratch directories in TMPDIR: `mbx-build-<pid>-<kind>…`.
const SCRATCH_PREFIX: &str = "mbx-build-";

/// A scratch directory of this run, named so that a later run can remove
/// it should this one be killed outright ([`remove_stale_scratch`]).
pub fn scratch_dir(kind: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-{kind}", std::process::id()))
        .tempdir()
}

/// Scratch directories of earlier runs that were killed outright (SIGKILL,
/// OOM) and could not clean up: their pid is gone.
pub fn remove_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && e.path().is_dir() {
            tracing::debug!(dir = %e.path().display(), "removing a killed run's scratch directory");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
