//! Running child processes (`docker buildx …`) with their failure kept whole:
//! command line, exit status and the tail of each stream.

use std::ffi::OsString;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::RwLock;

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
/// leaving it running (a `docker buildx build` would go on pushing). While a
/// [`PushLogin`] is alive the child also sees its docker config.
pub fn die_with_parent(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    if let Some(dir) = RUN_CONFIG.read().expect("run config").as_ref() {
        cmd.env("DOCKER_CONFIG", dir);
    }
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// The docker config of this run (a [`PushLogin`]'s), if any.
static RUN_CONFIG: RwLock<Option<PathBuf>> = RwLock::new(None);

/// The credentials of `--username/--password-stdin` for the docker CLI and
/// buildx (which hands them to BuildKit for the push) for as long as this
/// lives: a docker config of this run's own, in a private temporary
/// directory, holding the user's config plus these credentials, every
/// other entry of the user's config directory (buildx's builders,
/// contexts, plugins) linked in. Nothing of the user's is changed; the
/// directory is removed on drop (and, named like a build's scratch
/// directory, by the next run if this one is killed outright).
pub struct PushLogin {
    dir: tempfile::TempDir,
}

impl PushLogin {
    pub fn new(host: &str, username: &str, password: &str) -> Result<PushLogin, String> {
        let user_dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .ok_or("neither DOCKER_CONFIG nor HOME is set")?;
        // buildx keeps its builders there: it must exist before it is linked.
        let _ = std::fs::create_dir_all(user_dir.join("buildx"));
        let dir = tempfile::Builder::new()
            .prefix(&format!("mbx-build-{}-login-", std::process::id()))
            .tempdir()
            .map_err(|e| format!("cannot create a temporary docker config: {e}"))?;
        for entry in std::fs::read_dir(&user_dir).into_iter().flatten().flatten() {
            if entry.file_name() != "config.json" {
                let _ =
                    std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name()));
            }
        }
        let config = crate::error::read_capped(
            &user_dir.join("config.json"),
            crate::error::MAX_CONFIG_BYTES,
        )
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
        let text = with_login(config, host, username, password).to_string();
        let path = dir.path().join("config.json");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        *RUN_CONFIG.write().expect("run config") = Some(dir.path().to_path_buf());
        crate::interrupt::remove_on_exit(dir.path());
        Ok(PushLogin { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PushLogin {
    fn drop(&mut self) {
        *RUN_CONFIG.write().expect("run config") = None;
        crate::interrupt::keep_on_exit(self.dir.path());
    }
}

/// `config` (a docker config.json) with basic credentials for `host` that
/// the docker CLI takes before any other: in `auths`, with no credential
/// helper for the host and no `credsStore` (which would be asked instead).
fn with_login(
    mut config: serde_json::Value,
    host: &str,
    user: &str,
    password: &str,
) -> serde_json::Value {
    use base64::Engine;
    // Docker keeps Docker Hub's credentials under its v1 address.
    let key = match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        h => h,
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let obj = config.as_object_mut().expect("an object");
    if let Some(helpers) = obj.get_mut("credHelpers").and_then(|h| h.as_object_mut()) {
        helpers.remove(key);
    }
    if obj.remove("credsStore").is_some() {
        tracing::debug!(
            "--username/--password-stdin: the docker config's credsStore is not used for this run"
        );
    }
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths[key] = serde_json::json!({ "auth": auth });
    config
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
    fn login_config_takes_the_flags_first() {
        let user = serde_json::json!({
            "auths": {"127.0.0.1:5001": {"auth": "b2xkOm9sZA=="}, "ghcr.io": {"auth": "eDp5"}},
            "credHelpers": {"127.0.0.1:5001": "gcloud", "gcr.io": "gcloud"},
            "credsStore": "desktop",
            "cliPluginsExtraDirs": ["/x"],
        });
        let c = with_login(user, "127.0.0.1:5001", "mbx", "pw");
        assert_eq!(c["auths"]["127.0.0.1:5001"]["auth"], "bWJ4OnB3"); // mbx:pw
        assert_eq!(c["auths"]["ghcr.io"]["auth"], "eDp5", "other hosts kept");
        assert_eq!(c["credHelpers"], serde_json::json!({"gcr.io": "gcloud"}));
        assert!(c.get("credsStore").is_none());
        assert_eq!(c["cliPluginsExtraDirs"][0], "/x");
        let hub = with_login(serde_json::json!({}), "docker.io", "u", "p");
        assert!(hub["auths"]["https://index.docker.io/v1/"].is_object());
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        let err = run_captured("/nonexistent/mbx-test", &[]).unwrap_err();
        assert!(err.not_started.is_some(), "{err}");
        assert!(err.to_string().contains("could not be started"), "{err}");
        assert!(!err.to_string().contains("signal"), "{err}");
    }
}
