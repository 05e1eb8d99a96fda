//! Running child processes (`docker buildx …`) with their failure kept whole:
//! command line, exit status and the tail of each stream.

use std::ffi::OsString;
use std::process::{Command, Output, Stdio};

use crate::error::{tail, CommandError};

/// How much of a failed child's output an error keeps.
const TAIL_LINES: usize = 30;
const TAIL_BYTES: usize = 8 * 1024;

/// The command line as a user could paste it, with every value named in
/// `secrets` replaced by `***`.
pub fn display_command(program: &str, args: &[OsString], secrets: &[String]) -> String {
    let mut out = program.to_string();
    for a in args {
        let mut s = a.to_string_lossy().into_owned();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            s = s.replace(secret.as_str(), "***");
        }
        out.push(' ');
        // shlex refuses only NUL bytes, which no argument can hold.
        out.push_str(&shlex::try_quote(&s).unwrap_or_else(|_| s.as_str().into()));
    }
    out
}

/// Make `cmd`'s child die with mbx: when mbx is killed outright (SIGKILL,
/// no chance to clean up), the kernel sends the child SIGTERM instead of
/// leaving it running (a `docker buildx build` would go on pushing).
pub fn die_with_parent(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// Run to completion, capturing both streams; a non-zero exit is a `CommandError`.
pub fn run_captured(program: &str, args: &[OsString]) -> Result<Output, CommandError> {
    tracing::debug!(command = %display_command(program, args, &[]), "run");
    let child = die_with_parent(&mut Command::new(program))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CommandError {
            command: display_command(program, args, &[]),
            status: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            not_started: Some(e.to_string()),
        })?;
    let pid = child.id();
    crate::interrupt::register(pid);
    let out = child.wait_with_output();
    crate::interrupt::unregister(pid);
    let out = out.map_err(|e| CommandError {
        command: display_command(program, args, &[]),
        status: None,
        stdout_tail: String::new(),
        stderr_tail: format!("waiting for `{program}` failed: {e}"),
        not_started: None,
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failure(program, args, &out, &[]))
    }
}

pub fn failure(program: &str, args: &[OsString], out: &Output, secrets: &[String]) -> CommandError {
    CommandError {
        command: display_command(program, args, secrets),
        status: out.status.code(),
        stdout_tail: tail(
            &String::from_utf8_lossy(&out.stdout),
            TAIL_LINES,
            TAIL_BYTES,
        ),
        stderr_tail: tail(
            &String::from_utf8_lossy(&out.stderr),
            TAIL_LINES,
            TAIL_BYTES,
        ),
        not_started: None,
    }
}

pub fn os_args<I, S>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    args.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_and_redacts() {
        let args = os_args(["build", "--build-arg", "TOKEN=s3cret", "a b"]);
        let s = display_command("docker", &args, &["s3cret".to_string()]);
        assert_eq!(s, "docker build --build-arg 'TOKEN=***' 'a b'");
        let s = display_command("sh", &os_args(["-c", "echo it's; ls", ""]), &[]);
        assert_eq!(s, r#"sh -c "echo it's; ls" ''"#);
    }

    #[test]
    fn failure_keeps_status_and_stderr() {
        let err =
            run_captured("sh", &os_args(["-c", "echo out; echo bad >&2; exit 3"])).unwrap_err();
        assert_eq!(err.status, Some(3));
        assert_eq!(err.stderr_tail, "bad");
        assert_eq!(err.stdout_tail, "out");
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        let err = run_captured("/nonexistent/mbx-test", &[]).unwrap_err();
        assert!(err.not_started.is_some(), "{err}");
        assert!(err.to_string().contains("could not be started"), "{err}");
        assert!(!err.to_string().contains("signal"), "{err}");
    }
}
