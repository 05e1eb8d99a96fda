//! Hostile input and hostile surroundings (issue 15), one case a test: the
//! command, the exit code, a fragment of the message, and what must not be
//! left behind. Cases that build run against the real chain.

mod support;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use support::{mbx, repo_root, run, stderr};

/// A pipe whose reading end is already closed: whatever the child writes
/// to it fails with EPIPE, as under `mbx … | true`.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two fresh descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe(2)");
    // SAFETY: fds[0] and fds[1] were just returned by pipe(2).
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

#[test]
fn a_closed_stdout_is_a_normal_end() {
    let record = repo_root().join("tests/data/report-hello-cold.json");
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let mut c = mbx();
    c.args(["report", "--record"])
        .arg(&record)
        .arg("--summary")
        .arg(&summary)
        .env_remove("GITHUB_ACTIONS")
        .stdout(closed_pipe());
    let out = c.output().expect("run mbx");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    // What goes to files is written before anything is printed.
    let md = std::fs::read_to_string(&summary).expect("the summary was written");
    assert!(md.contains("linux/arm64"), "{md}");
}

#[test]
fn output_holding_user_files_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("D");
    std::fs::create_dir_all(out_dir.join("src")).unwrap();
    std::fs::write(out_dir.join("oci-layout"), "{}").unwrap();
    std::fs::write(out_dir.join("index.json"), "{}").unwrap();
    std::fs::write(out_dir.join("src/main.c"), "int main(){}").unwrap();
    let mut c = mbx();
    c.args(["ci", "--local", "--context"])
        .arg(repo_root().join("examples/hello"))
        .arg("--output")
        .arg(&out_dir);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("src"), "{err}");
    assert!(err.contains("--output"), "{err}");
    assert!(
        out_dir.join("src/main.c").is_file(),
        "the user's file is still there"
    );
}
