//! Running child processes (`docker buildx …`) with their failure kept whole:
//! command line, exit status and the tail of each stream.

use std::ffi::OsString;
use std::process::{Command, Output, Stdio};

use crate::error::{tail, CommandError};

pub use crate::docker::login::PushLogin;

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
/// leaving it running (a `docker buildx build` would go on pushing). While a
/// [`PushLogin`] is alive the child also sees its docker config and
/// credential helper.
pub fn die_with_parent(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    crate::docker::login::apply(cmd);
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// A push that stops moving: a registry that accepts an upload and then
/// neither reads nor answers holds BuildKit's push for ever (it has no
/// timeout of its own). Fed every chunk of a build's output, this stops the
/// child whose arguments hold `needle` once the export to the registry has
/// begun and nothing came for `limit`.
pub struct StallWatch {
    state: std::sync::Arc<(std::sync::Mutex<Watch>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    limit: std::time::Duration,
}

struct Watch {
    last: std::time::Instant,
    pushing: bool,
    done: bool,
    fired: bool,
}

impl StallWatch {
    pub fn start(needle: String, limit: std::time::Duration) -> StallWatch {
        let state = std::sync::Arc::new((
            std::sync::Mutex::new(Watch {
                last: std::time::Instant::now(),
                pushing: false,
                done: false,
                fired: false,
            }),
            std::sync::Condvar::new(),
        ));
        let s = state.clone();
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*s;
            let mut w = lock.lock().expect("watch");
            while !w.done {
                if w.pushing && !w.fired && w.last.elapsed() > limit {
                    w.fired = true;
                    tracing::debug!(%needle, ?limit, "push stalled: stopping the build");
                    signal_children_with(&needle, libc::SIGTERM);
                }
                w = cv
                    .wait_timeout(w, std::time::Duration::from_millis(250))
                    .expect("watch")
                    .0;
            }
        });
        StallWatch {
            state,
            thread: Some(thread),
            limit,
        }
    }

    /// Output arrived: the build moves. The export to a registry has begun
    /// once BuildKit names it.
    pub fn saw(&self, chunk: &[u8]) {
        let mut w = self.state.0.lock().expect("watch");
        w.last = std::time::Instant::now();
        if !w.pushing && chunk.windows(18).any(|x| x == b"exporting to image") {
            w.pushing = true;
        }
    }

    /// The watch ends; how long the push had stalled when it stopped it.
    pub fn stop(mut self) -> Option<std::time::Duration> {
        let fired = {
            let mut w = self.state.0.lock().expect("watch");
            w.done = true;
            w.fired
        };
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        fired.then_some(self.limit)
    }
}

/// Send `sig` to this process's children whose command line holds `needle`.
fn signal_children_with(needle: &str, sig: libc::c_int) {
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1));
        if ppid != Some(me.as_str()) {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            // SAFETY: kill(2) on a child of ours; no memory is touched.
            unsafe {
                libc::kill(pid, sig);
            }
        }
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
    let out = wait_capped(child);
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

/// The most kept of a captured command's stdout (every command mbx captures
/// prints kilobytes: versions, inspections); past it the command is killed.
pub const MAX_CAPTURE_BYTES: usize = 16 << 20;
/// Of its stderr, the last this many bytes are kept (for the error's tail).
const STDERR_KEEP: usize = 1 << 20;

/// `wait_with_output`, holding at most [`MAX_CAPTURE_BYTES`] of stdout (a
/// command that writes more is killed: an error saying so) and the last
/// [`STDERR_KEEP`] bytes of stderr.
fn wait_capped(mut child: std::process::Child) -> std::io::Result<Output> {
    use std::io::Read;
    let pid = child.id();
    let mut out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || {
        let mut err = err;
        let (mut kept, mut buf) = (Vec::new(), [0u8; 8192]);
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * STDERR_KEEP {
                kept.drain(..kept.len() - STDERR_KEEP);
            }
        }
        kept
    });
    let mut stdout = Vec::new();
    (&mut out)
        .take(MAX_CAPTURE_BYTES as u64 + 1)
        .read_to_end(&mut stdout)?;
    let over = stdout.len() > MAX_CAPTURE_BYTES;
    if over {
        // SAFETY: kill(2) on our own child, not yet reaped; no memory is touched.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    drop(out);
    let status = child.wait()?;
    let stderr = errs.join().unwrap_or_default();
    if over {
        return Err(std::io::Error::other(format!(
            "it wrote more than {MAX_CAPTURE_BYTES} bytes on stdout, more than any answer mbx reads; it was stopped"
        )));
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
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

    /// A captured command that never stops writing (`yes`) is stopped at the
    /// cap; one that floods stderr keeps only its tail.
    #[test]
    fn captured_output_is_capped() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let started = std::time::Instant::now();
        let e = run_captured("sh", &args(&["-c", "yes"])).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("more than {MAX_CAPTURE_BYTES} bytes")),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        let e = run_captured(
            "sh",
            &args(&[
                "-c",
                "head -c 30000000 /dev/zero | tr '\\0' x >&2; echo last >&2; exit 3",
            ]),
        )
        .unwrap_err();
        assert_eq!(e.status, Some(3));
        assert!(
            e.stderr_tail.ends_with("last") || e.stderr_tail.contains("last"),
            "{}",
            e.stderr_tail.len()
        );
    }

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
