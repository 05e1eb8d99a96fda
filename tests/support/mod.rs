//! Shared helpers for the integration tests: they run the real `mbx` binary
//! against the real local chain that `scripts/chain-up` brings up (dockerd,
//! buildx, QEMU, the loopback registry). A test that finds the chain down
//! fails with a message naming `scripts/chain-up`; it never skips.

#![allow(dead_code)]

pub mod docker_proxy;
pub mod gha_v2;
pub mod proxy;
pub mod runner;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

pub const REGISTRY: &str = "127.0.0.1:5000";
pub const AUTH_REGISTRY: &str = "127.0.0.1:5001";

pub fn chain_dir() -> PathBuf {
    std::env::var_os("MBX_CHAIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/mbx-chain"))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `mbx` binary under test, with the chain's config file.
pub fn mbx() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mbx"));
    let config = chain_dir().join("mbx.toml");
    if std::env::var_os("MBX_CONFIG").is_none() && config.is_file() {
        c.env("MBX_CONFIG", config);
    }
    c.env("NO_COLOR", "1");
    // The chain's binfmt installer image (never tonistiigi/binfmt from Docker Hub).
    if std::env::var_os("MBX_QEMU_IMAGE").is_none() {
        c.env("MBX_QEMU_IMAGE", BINFMT_IMAGE);
    }
    c
}

/// The binfmt installer image `scripts/chain-up` builds (Debian's qemu-user-static).
pub const BINFMT_IMAGE: &str = "127.0.0.1:5000/mbx/binfmt:local";

pub fn run(mut c: Command) -> Output {
    let out = c.output().expect("run mbx");
    eprintln!(
        "--- {:?} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
        c,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Panics with the fix unless dockerd, buildx and the loopback registry answer
/// and the base image the examples use is in the registry.
pub fn require_chain() {
    let down = |what: &str| -> ! {
        panic!("the local chain is down ({what}): run `scripts/chain-up` (as root) first, or the whole suite with `scripts/test`")
    };
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        _ => down("dockerd does not answer"),
    }
    match Command::new("docker").args(["buildx", "version"]).output() {
        Ok(o) if o.status.success() => {}
        _ => down("docker buildx is missing"),
    }
    let base = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{REGISTRY}/mbx/busybox:latest"),
        ])
        .output();
    match base {
        Ok(o) if o.status.success() => {}
        _ => down("the loopback registry or its base image mbx/busybox is missing"),
    }
}

static SETUP: Once = Once::new();

/// Create the shared `ci-builder` once per test binary, so parallel tests
/// don't race to create it.
pub fn require_builder() {
    require_chain();
    hold_binfmt_shared();
    SETUP.call_once(|| {
        let out = run({
            let mut c = mbx();
            c.arg("setup");
            c
        });
        assert!(out.status.success(), "mbx setup failed: {}", stderr(&out));
    });
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A repository name no other test (or earlier run) uses.
pub fn unique_repo(stem: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{REGISTRY}/mbx-test/{stem}-{}-{t}-{n}", std::process::id())
}

/// Run skopeo; panics with its stderr on failure.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed by scripts/chain-up");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

pub fn read_json(p: &Path) -> serde_json::Value {
    json(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
}

/// Platforms (os/arch[/variant]) of the non-attestation entries of an index.
pub fn index_platforms(index: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] != "attestation-manifest")
        .map(|m| {
            let p = &m["platform"];
            match p["variant"].as_str() {
                Some(v) => format!(
                    "{}/{}/{v}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                ),
                None => format!(
                    "{}/{}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                ),
            }
        })
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- binfmt lock
//
// Tests that change the kernel's binfmt_misc handlers (global state) take
// `/var/lib/mbx-chain/test-binfmt.lock` exclusively; tests that build for a
// foreign platform hold it shared (require_builder() takes it for the rest of
// the test process), so a repair test never pulls the handler from under an
// arm64 build of another test binary.

pub struct BinfmtLock(std::fs::File);

fn lock_file() -> std::fs::File {
    let p = chain_dir().join("test-binfmt.lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .unwrap_or_else(|e| panic!("open {}: {e} (run scripts/chain-up)", p.display()))
}

fn flock(f: &std::fs::File, op: libc::c_int, what: &str) {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    loop {
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited 15 min for the {what} binfmt test lock ({})",
            chain_dir().join("test-binfmt.lock").display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Exclusive: the holder may change binfmt_misc. Released on drop.
pub fn binfmt_exclusive() -> BinfmtLock {
    let f = lock_file();
    flock(&f, libc::LOCK_EX, "exclusive");
    BinfmtLock(f)
}

/// Shared: the holder builds for emulated platforms. Released on drop.
pub fn binfmt_shared() -> BinfmtLock {
    let f = lock_file();
    flock(&f, libc::LOCK_SH, "shared");
    BinfmtLock(f)
}

static SHARED: std::sync::OnceLock<BinfmtLock> = std::sync::OnceLock::new();

/// Hold the shared lock until this test process exits.
pub fn hold_binfmt_shared() {
    SHARED.get_or_init(binfmt_shared);
}

/// An unsigned GitHub Actions runtime token. act provides the cache server
/// (ACTIONS_CACHE_URL) but no token; BuildKit only decodes the JWT for its
/// `ac` scopes and validity window and never checks the signature.
pub fn unsigned_runtime_jwt() -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "ac": r#"[{"Scope":"refs/heads/main","Permission":3}]"#,
        "nbf": now - 60,
        "exp": now + 3600,
    });
    format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims.to_string())
    )
}

/// True when the registry serves `reference` (`repo:tag` or `repo@digest`).
pub fn tag_exists(reference: &str) -> bool {
    Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .expect("skopeo is installed by scripts/chain-up")
        .status
        .success()
}

/// A build context in a fresh temporary directory holding `dockerfile`.
pub fn context(dockerfile: impl AsRef<[u8]>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    d
}

/// docker/build-push-action v6's inputs (its action.yml at cb941d0).
pub const BUILD_PUSH_ACTION_V6: [&str; 33] = [
    "add-hosts",
    "allow",
    "annotations",
    "attests",
    "build-args",
    "build-contexts",
    "builder",
    "cache-from",
    "cache-to",
    "call",
    "cgroup-parent",
    "context",
    "file",
    "labels",
    "load",
    "network",
    "no-cache",
    "no-cache-filters",
    "outputs",
    "platforms",
    "provenance",
    "pull",
    "push",
    "sbom",
    "secrets",
    "secret-envs",
    "secret-files",
    "shm-size",
    "ssh",
    "tags",
    "target",
    "ulimit",
    "github-token",
];

/// `git init` and one commit of everything in `dir` (act wants a repository).
pub fn git_commit_all(dir: &Path) {
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=mbx test",
            "-c",
            "user.email=mbx@test.invalid",
            "commit",
            "-q",
            "-m",
            "fixture",
        ],
    ] {
        let o = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {o:?}");
    }
}

/// The action's `uses:` name in the tests' workflows (act maps it to a copy).
pub const ACTION: &str = "org/mbx-action";

/// The commit action.yml pins its runtime step to.
pub fn runtime_pin() -> String {
    let yml = std::fs::read_to_string(repo_root().join("action.yml")).unwrap();
    let needle = format!("uses: {ACTION}/runtime@");
    let line = yml
        .lines()
        .find(|l| l.contains(&needle))
        .expect("action.yml uses the runtime step");
    let sha = line.split('@').nth(1).unwrap().trim().to_string();
    assert!(
        sha.len() == 40 && sha.bytes().all(|c| c.is_ascii_hexdigit()),
        "the runtime step is pinned by a full commit sha, not `{sha}`"
    );
    sha
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A copy of the action as a release tag holds it: action.yml,
/// scripts/action/, runtime/ and dist/ (without a local dist/out).
pub fn action_copy(dir: &Path) -> PathBuf {
    let root = repo_root();
    let a = dir.join("action");
    std::fs::create_dir_all(a.join("scripts")).unwrap();
    std::fs::copy(root.join("action.yml"), a.join("action.yml")).unwrap();
    copy_dir(&root.join("scripts/action"), &a.join("scripts/action"));
    copy_dir(&root.join("runtime"), &a.join("runtime"));
    copy_dir(&root.join("dist"), &a.join("dist"));
    let _ = std::fs::remove_dir_all(a.join("dist/out"));
    a
}

/// Runs act and prints its whole log with the exit code and wall time (the
/// test's own output, shown when it fails); returns the output and the log.
pub fn act_output(c: &mut Command) -> (Output, String) {
    let t = std::time::Instant::now();
    let o = c.output().expect("act is installed by scripts/chain-up");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "--- act exited {:?} in {:.1}s\n{log}",
        o.status.code(),
        t.elapsed().as_secs_f64()
    );
    (o, log)
}
