//! "Where handlers cannot be installed" (issue 15.16), for real, without
//! touching the host's binfmt_misc: mbx sees no handler for linux/arm64,
//! tries to install one, and every way it tries fails: one error (exit 1)
//! naming what is missing and the ways out, nothing left behind.
//!
//! mbx's view of binfmt_misc is separated from the host's registrations,
//! which other tests use:
//! - inside the unprivileged runner container (tests/container.rs) it sees
//!   none and cannot mount one, so it asks the daemon for a privileged
//!   installer container; the daemon is reached through a loopback stand-in
//!   for a Docker socket proxy that refuses privileged containers with 403
//!   (tests/support/docker_proxy.rs: as tecnativa/docker-socket-proxy, an
//!   authorization plugin or a userns-remap daemon would), or starts it
//!   without the privileges (as a rootless daemon before Linux 6.7 does in
//!   effect: the installer runs and fails);
//! - on the host, in a new user and mount namespace whose binfmt_misc is a
//!   fresh, empty instance (per user namespace since Linux 6.7) mounted
//!   read-only: a write to `register` fails, and could only ever reach that
//!   private instance.
//!
//! The refusing proxy is what keeps the installer (which would write the
//! HOST's binfmt_misc) from running; every test also compares the host's
//! binfmt_misc before and after, holding the shared binfmt test lock so no
//! repair test changes it meanwhile.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::docker_proxy::{DockerProxy, Policy};
use support::runner::{in_runner, require_runner_image};
use support::{chain_dir, repo_root, stderr, stdout};

const HOST_BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// Every entry of the host's binfmt_misc with its contents.
fn host_binfmt() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(HOST_BINFMT)
        .unwrap_or_else(|e| panic!("read {HOST_BINFMT}: {e} (run scripts/chain-up)"))
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            // `register` is write-only.
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            (name, text)
        })
        .collect();
    v.sort();
    v
}

/// The host's binfmt_misc, held unchanged by other tests (shared lock) for
/// the guard's life; dropping it asserts mbx changed nothing either.
struct Untouched {
    before: Vec<(String, String)>,
    _lock: support::BinfmtLock,
}

impl Untouched {
    fn start() -> Untouched {
        let lock = support::binfmt_shared();
        let before = host_binfmt();
        assert!(
            before.iter().any(|(n, _)| n == "status"),
            "binfmt_misc is not mounted at {HOST_BINFMT}: run scripts/chain-up"
        );
        Untouched {
            before,
            _lock: lock,
        }
    }

    fn check(&self) {
        assert_eq!(host_binfmt(), self.before, "the host's binfmt_misc changed");
    }
}

/// What the installer container met at the daemon (through the proxy).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Installer {
    /// mbx did not ask for it.
    NotAsked,
    /// Asked for and refused (403).
    Refused,
    /// Run without privileges: it started and failed.
    Unprivileged,
    /// Run as `true`: it succeeded and changed nothing here.
    Elsewhere,
}

impl Installer {
    fn proxy(self) -> DockerProxy {
        DockerProxy::start_with(match self {
            Installer::Unprivileged => Policy::Unprivileged,
            Installer::Elsewhere => Policy::Elsewhere,
            _ => Policy::Refuse,
        })
    }

    /// The proxy saw what was expected; no container of the builder was
    /// made, and the installer's (if one ran) is gone. Only the proxy's own
    /// log counts: other tests may run installers meanwhile.
    fn check(self, proxy: &DockerProxy, builder: &str) {
        let log = proxy.log();
        eprintln!("proxy: {log:#?}");
        let refused = proxy.refused();
        let created = log
            .iter()
            .any(|l| l == "POST /containers/create -> forwarded");
        match self {
            Installer::NotAsked => assert!(refused.is_empty() && !created, "{log:?}"),
            Installer::Refused => assert_eq!(
                (refused, created),
                (
                    vec![
                        "POST /containers/create -> 403 (privileged containers are not allowed)"
                            .to_string()
                    ],
                    false
                )
            ),
            Installer::Unprivileged | Installer::Elsewhere => {
                assert!(
                    refused.is_empty() && log.iter().any(|l| l.ends_with("-> without privileges")),
                    "{log:?}"
                );
                let ids: Vec<&str> = log
                    .iter()
                    .filter_map(|l| {
                        l.strip_prefix("POST /containers/")?
                            .strip_suffix("/start -> forwarded")
                    })
                    .collect();
                assert_eq!(ids.len(), 1, "{log:?}");
                let inspect = Command::new("docker")
                    .args(["container", "inspect", ids[0]])
                    .output()
                    .unwrap();
                assert!(
                    !inspect.status.success(),
                    "installer container {} left",
                    ids[0]
                );
            }
        }
        let out = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .expect("docker ps");
        let names = String::from_utf8_lossy(&out.stdout).into_owned();
        for n in names.lines() {
            assert!(!n.contains(builder), "left behind: container {n}");
        }
    }
}

/// The one error line and its help, checked for the fragments.
fn assert_one_error(out: &Output, fragments: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "one error: {err}"
    );
    for f in fragments {
        assert!(err.contains(f), "`{f}` missing: {err}");
    }
    // Nothing else on stderr (e.g. mount(8)'s own complaint) but the
    // error's own lines (an installer's output tail) before its help.
    let mut in_error = false;
    for l in err.lines() {
        in_error = (in_error || l.starts_with("error: ")) && !l.starts_with("help: ");
        assert!(
            in_error
                || ["mbx: ", "error: ", "help: "]
                    .iter()
                    .any(|p| l.starts_with(p)),
            "stray line `{l}`: {err}"
        );
    }
    assert!(!err.contains("building"), "refused before building: {err}");
}

/// The unprivileged runner container (no socket of its own: the daemon
/// through the refusing proxy), running `mbx ci` for amd64 and arm64, then
/// listing what it left in /tmp; `prelude` runs first.
fn ci_in_runner(proxy: &DockerProxy, builder: &str, prelude: &str, qemu_from: &str) -> Output {
    require_runner_image();
    let script = format!(
        "{prelude} mbx ci --context /src --platforms linux/amd64,linux/arm64 --cache none \
         --qemu-from {qemu_from} --builder {builder} --image 127.0.0.1:5000/hbinfmt/refused --push; \
         rc=$?; echo \"left in /tmp: [$(ls -A /tmp)]\"; exit $rc"
    );
    in_runner(false, &[("DOCKER_HOST", &proxy.url)], &[], &script)
}

/// In the runner's container, binfmt_misc is out of sight and the daemon
/// will not run the installer privileged: the error names the daemon's
/// refusal and the ways out (privileges, the host's packages, a native
/// node). With `--qemu-from host` mbx has no way at all and says so,
/// without asking the daemon.
#[test]
fn in_a_runner_container_without_privileges_the_error_names_them() {
    let guard = Untouched::start();
    let builder = format!("hbinfmt-rc-{}", std::process::id());
    let refused = |place: &'static str| -> Vec<&'static str> {
        vec![
            "QEMU handlers for linux/arm64 cannot be installed",
            "the Docker daemon refused the privileged installer container",
            "403",
            "privileged containers are not allowed",
            place,
            "--privileged",
            "apt-get install qemu-user-static binfmt-support",
            "--driver remote --node tcp://HOST:PORT=linux/arm64",
        ]
    };
    // (prelude, --qemu-from, fragments of the message, the installer)
    let rows: [(&str, &str, Vec<&str>, Installer); 5] = [
        (
            "",
            "image",
            refused("binfmt_misc is not visible in this container"),
            Installer::Refused,
        ),
        // A daemon that runs it, but without power over the host's
        // binfmt_misc (rootless on a kernel before 6.7): it fails, and its
        // output is in the error.
        (
            "",
            "image",
            vec![
                "QEMU handlers for linux/arm64 cannot be installed",
                "the installer `127.0.0.1:5000/mbx/binfmt:local --install arm64` exited with status",
                "(binfmt_misc is not visible in this container, so the daemon ran it)",
                "permission denied",
                "rootless",
                "--privileged",
                "apt-get install qemu-user-static binfmt-support",
                "--driver remote --node tcp://HOST:PORT=linux/arm64",
            ],
            Installer::Unprivileged,
        ),
        // As actions-runner-controller's pods on containerd: no /.dockerenv;
        // root without CAP_SYS_ADMIN is in a container all the same.
        (
            "rm /.dockerenv &&",
            "image",
            refused("binfmt_misc is not visible in this container"),
            Installer::Refused,
        ),
        // ... and its runner user (not root): mbx cannot tell it is in a
        // container, but binfmt_misc is out of its sight all the same.
        (
            "rm /.dockerenv && install -d -o 1001 -g 1001 /home/u1001 && \
             HOME=/home/u1001 setpriv --reuid 1001 --regid 1001 --clear-groups",
            "image",
            refused("binfmt_misc is not visible here"),
            Installer::Refused,
        ),
        (
            "",
            "host",
            vec![
                "QEMU handlers for linux/arm64 cannot be installed",
                "--qemu-from host needs binfmt_misc, which is out of reach in this container",
                "cannot be mounted here (mount: ",
                "--privileged",
                "apt-get install qemu-user-static binfmt-support",
                "--driver remote --node tcp://HOST:PORT=linux/arm64",
            ],
            Installer::NotAsked,
        ),
    ];
    for (prelude, from, fragments, installer) in rows {
        let proxy = installer.proxy();
        let out = ci_in_runner(&proxy, &builder, prelude, from);
        assert_one_error(&out, &fragments);
        assert!(
            stdout(&out).contains("left in /tmp: []"),
            "{}",
            stdout(&out)
        );
        installer.check(&proxy, &builder);
        guard.check();
    }
}

/// The script that gives a new user and mount namespace an empty,
/// read-only binfmt_misc of its own, then runs its arguments. Since Linux
/// 6.7 a user namespace mounts a binfmt_misc instance of its own (the real
/// thing, empty); before (Debian 12's 6.1), a read-only tmpfs holding what
/// mbx looks for (`status`, `register`) stands in for it, a fake that
/// fails a write the same way (EROFS). MBX_TEST_BINFMT_TMPFS=1 picks the
/// stand-in on any kernel.
fn private_binfmt_misc() -> &'static str {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    let instance = (major, minor) >= (6, 7) && std::env::var_os("MBX_TEST_BINFMT_TMPFS").is_none();
    if instance {
        "mount -t binfmt_misc -o ro binfmt_misc /proc/sys/fs/binfmt_misc || exit 99; exec \"$@\""
    } else {
        "d=/proc/sys/fs/binfmt_misc; mount -t tmpfs -o size=64k hbinfmt $d && echo enabled >$d/status && \
         : >$d/register && mount -o remount,ro $d || exit 99; exec \"$@\""
    }
}

/// `mbx ci` on the host, in a new user and mount namespace where
/// binfmt_misc is empty, read-only and its own (`private_binfmt_misc`),
/// with the daemon behind the proxy; TMPDIR and the state directory are
/// fresh.
fn ci_in_namespace(proxy: &DockerProxy, tmp: &Path, builder: &str, qemu_from: &str) -> Output {
    let (tmpdir, state) = (tmp.join("tmp"), tmp.join("state"));
    std::fs::create_dir_all(&tmpdir).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let mut c = Command::new("unshare");
    c.args([
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
    ])
    .args(["sh", "-c", private_binfmt_misc(), "sh"])
    .arg(env!("CARGO_BIN_EXE_mbx"))
    .args(["ci", "--context"])
    .arg(repo_root().join("examples/hello"))
    .args([
        "--platforms",
        "linux/amd64,linux/arm64",
        "--cache",
        "none",
        "--qemu-from",
        qemu_from,
        "--builder",
        builder,
        "--image",
        "127.0.0.1:5000/hbinfmt/refused",
        "--push",
    ])
    .env("MBX_CONFIG", chain_dir().join("mbx.toml"))
    .env("MBX_QEMU_IMAGE", support::BINFMT_IMAGE)
    .env("NO_COLOR", "1")
    .env("DOCKER_HOST", &proxy.url)
    .env("TMPDIR", &tmpdir)
    .env("MBX_STATE_DIR", &state);
    support::run(c)
}

/// Files under `dir`, recursively (directories mbx creates count too).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path().display().to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        }
    }
    out
}

/// On a machine whose binfmt_misc is read-only: `--qemu-from host` cannot
/// write `register`; `--qemu-from image` meets a daemon that refuses the
/// privileged installer, runs it without privileges, or runs it where this
/// machine's binfmt_misc is out of its reach; each says what is missing.
#[test]
fn read_only_binfmt_misc_and_a_refusing_daemon_name_the_ways_out() {
    support::require_chain();
    let guard = Untouched::start();
    let builder = format!("hbinfmt-ns-{}", std::process::id());
    // (--qemu-from, fragments of the message, the installer)
    let rows: [(&str, &[&str], Installer); 4] = [
        (
            "host",
            &[
                "QEMU handlers for linux/arm64 cannot be installed",
                "cannot write to /proc/sys/fs/binfmt_misc/register: Read-only file system",
                "binfmt_misc is read-only here",
                "--privileged",
                "--qemu-from image",
                "apt-get install qemu-user-static binfmt-support",
                "--driver remote --node tcp://HOST:PORT=linux/arm64",
            ],
            Installer::NotAsked,
        ),
        (
            "image",
            &[
                "QEMU handlers for linux/arm64 cannot be installed",
                "the Docker daemon refused the privileged installer container",
                "403",
                "the installer needs a privileged container",
                "apt-get install qemu-user-static binfmt-support",
                "--qemu-from host",
                "--driver remote --node tcp://HOST:PORT=linux/arm64",
            ],
            Installer::Refused,
        ),
        (
            "image",
            &[
                "QEMU handlers for linux/arm64 cannot be installed",
                "the installer `127.0.0.1:5000/mbx/binfmt:local --install arm64` exited with status",
                "permission denied",
                "rootless",
                "--qemu-from host",
                "--driver remote --node tcp://HOST:PORT=linux/arm64",
            ],
            Installer::Unprivileged,
        ),
        // A daemon on another kernel (or rootless since 6.7, with a
        // binfmt_misc of its own): the installer succeeds, nothing changes
        // here, and mbx, inspecting again, says so.
        (
            "image",
            &[
                "QEMU handlers for linux/arm64 cannot be installed",
                "the installer `127.0.0.1:5000/mbx/binfmt:local` exited 0, yet this machine's binfmt_misc \
                 is unchanged (linux/arm64: no binfmt_misc handler)",
                "point DOCKER_HOST at this machine's daemon",
                "--qemu-from host",
                "--driver remote --node tcp://HOST:PORT=linux/arm64",
            ],
            Installer::Elsewhere,
        ),
    ];
    for (from, fragments, installer) in rows {
        let proxy = installer.proxy();
        let tmp = tempfile::tempdir().unwrap();
        let out = ci_in_namespace(&proxy, tmp.path(), &builder, from);
        assert_ne!(
            out.status.code(),
            Some(99),
            "cannot give a user namespace a binfmt_misc of its own: {}",
            stderr(&out)
        );
        assert_one_error(&out, fragments);
        installer.check(&proxy, &builder);
        let left = files_under(&tmp.path().join("tmp"));
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
        let inspect = Command::new("docker")
            .args(["buildx", "inspect", &builder])
            .output()
            .unwrap();
        assert!(!inspect.status.success(), "builder {builder} was created");
        guard.check();
    }
}
