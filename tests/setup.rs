//! The setup stage against the real chain: builders created from the chain's
//! BuildKit image and asked for their platforms over the control API, reuse
//! vs recreate, cleanup, the docker driver's refusals reproduced for real,
//! and binfmt_misc handlers broken on the real kernel and repaired (from the
//! host's qemu-user-static and from the chain's installer image), followed by
//! an arm64 RUN step.
//!
//! Builders here have their own names (never `ci-builder`) and are removed at
//! the end. binfmt-changing tests hold the exclusive binfmt lock and restore
//! the handler as they found it, even when they fail (a guard's Drop).

mod support;

use std::path::PathBuf;
use std::process::Command;

use mbx::platform::Platform;
use mbx::setup::qemu;
use support::*;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

fn unique(stem: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 1_000_000;
    format!("mbx-test-{stem}-{}-{t}", std::process::id())
}

/// Removes a builder at the end of a test, whatever happens.
struct BuilderGuard(String);

impl Drop for BuilderGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["buildx", "rm", "--force", &self.0])
            .output();
        let _ = Command::new("docker")
            .args(["buildx", "rm", &self.0])
            .output();
    }
}

fn state_dir(t: &tempfile::TempDir) -> PathBuf {
    t.path().join("state")
}

/// `mbx setup` with its own builder name and state dir.
fn setup(builder: &str, state: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut c = mbx();
    c.env("MBX_STATE_DIR", state)
        .args(["setup", "--builder", builder])
        .args(extra);
    run(c)
}

fn setup_json(builder: &str, state: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let o = setup(builder, state, &args);
    assert!(o.status.success(), "mbx setup failed: {}", stderr(&o));
    json(&stdout(&o))
}

/// The worker platforms as `buildctl debug workers` (inside the BuildKit
/// container) prints them: the same control API, another client.
fn buildctl_platforms(builder: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "exec",
            &format!("buildx_buildkit_{builder}0"),
            "buildctl",
            "debug",
            "workers",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().nth(1).expect("one worker");
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}

#[test]
fn builder_created_reused_recreated_and_cleaned_up() {
    require_chain();
    let _shared = binfmt_shared();
    let name = unique("bldr");
    let _guard = BuilderGuard(name.clone());
    let tmp = tempfile::tempdir().unwrap();
    let state = state_dir(&tmp);

    // Created from the chain's BuildKit image; platforms from ListWorkers.
    let s = setup_json(&name, &state, &[]);
    let b = &s["builder"];
    assert_eq!(b["action"], "created", "{s}");
    assert_eq!(b["platforms_source"], "control-api", "{s}");
    assert_eq!(b["created_by_mbx"], true);
    // The version the control API gave is the one running in the builder's container.
    let running = Command::new("docker")
        .args([
            "exec",
            &format!("buildx_buildkit_{name}0"),
            "buildkitd",
            "--version",
        ])
        .output()
        .unwrap();
    let running = String::from_utf8_lossy(&running.stdout);
    let running = running.split_whitespace().nth(2).unwrap_or("?");
    assert!(running.starts_with("v0."), "{running}");
    assert_eq!(b["buildkit_version"], running, "{s}");
    let platforms: Vec<String> = b["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(
        platforms.contains(&"linux/arm64".to_string()),
        "{platforms:?}"
    );
    assert_eq!(
        platforms,
        buildctl_platforms(&name),
        "gRPC answer = buildctl's"
    );
    let names: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "probe",
            "preflight",
            "qemu",
            "builder (created)",
            "workers (boot + ListWorkers)"
        ]
    );

    // Same settings → reused.
    let o = setup(&name, &state, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("builder   {name} reused")), "{out}");
    assert!(
        out.contains("platforms (BuildKit control API, ListWorkers via buildctl dial-stdio in the BuildKit container (Engine API exec)): linux/amd64"),
        "{out}"
    );

    // Stopped: the exec path cannot reach it; `docker buildx dial-stdio` boots it.
    let stop = Command::new("docker")
        .args(["buildx", "stop", &name])
        .output()
        .unwrap();
    assert!(stop.status.success());
    let s = setup_json(&name, &state, &[]);
    assert_eq!(s["builder"]["action"], "reused", "{s}");
    assert_eq!(
        s["builder"]["control_api_via"], "docker buildx dial-stdio",
        "{s}"
    );
    assert_eq!(s["builder"]["platforms_source"], "control-api", "{s}");

    // Other settings → a clear error saying how it differs, exit 1.
    let cfg = tmp.path().join("buildkitd.toml");
    std::fs::write(
        &cfg,
        "[registry.\"127.0.0.1:5000\"]\n  http = true\n[registry.\"127.0.0.1:5002\"]\n  http = true\n",
    )
    .unwrap();
    let o = setup(
        &name,
        &state,
        &[
            "--buildkitd-config",
            cfg.to_str().unwrap(),
            "--driver-opt",
            "network=host",
            "--driver-opt",
            "env.MBX_TEST=1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "builder `{name}` exists (created by mbx earlier) with other settings"
        )),
        "{e}"
    );
    assert!(
        e.contains("driver option env.MBX_TEST is unset, wanted `1`"),
        "{e}"
    );
    assert!(e.contains("its buildkitd config differs"), "{e}");
    assert!(e.contains("help: pass --recreate"), "{e}");

    // … recreated with --recreate.
    let s = setup_json(
        &name,
        &state,
        &[
            "--buildkitd-config",
            cfg.to_str().unwrap(),
            "--driver-opt",
            "network=host",
            "--driver-opt",
            "env.MBX_TEST=1",
            "--recreate",
        ],
    );
    assert_eq!(s["builder"]["action"], "recreated", "{s}");
    assert!(
        s["builder"]["differences"].as_array().unwrap().len() >= 2,
        "{s}"
    );
    assert!(
        s["actions"][0]
            .as_str()
            .unwrap()
            .contains("recreated builder"),
        "{s}"
    );

    // Cleanup removes what mbx created …
    let mut c = mbx();
    c.env("MBX_STATE_DIR", &state)
        .args(["setup", "--cleanup", "--builder", &name]);
    let o = run(c);
    assert!(o.status.success());
    assert!(stdout(&o).contains("removed builder"), "{}", stdout(&o));
    let gone = Command::new("docker")
        .args(["buildx", "inspect", &name])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "builder still there after cleanup");
}

#[test]
fn docker_driver_builder_is_asked_over_dial_stdio() {
    // The docker driver's BuildKit lives inside dockerd: no container to
    // exec into, dial-stdio is the way (as for kubernetes and remote).
    require_chain();
    let tmp = tempfile::tempdir().unwrap();
    let s = setup_json(
        "default",
        &state_dir(&tmp),
        &["--driver", "docker", "--platforms", "linux/amd64"],
    );
    let b = &s["builder"];
    assert_eq!(b["action"], "reused", "{s}");
    assert_eq!(b["driver"], "docker", "{s}");
    assert_eq!(b["control_api_via"], "docker buildx dial-stdio", "{s}");
    assert!(
        b["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "linux/amd64"),
        "{s}"
    );
    assert_eq!(b["created_by_mbx"], false);
}

#[test]
fn cleanup_never_removes_a_builder_mbx_did_not_create() {
    require_chain();
    let name = unique("foreign");
    let _guard = BuilderGuard(name.clone());
    let made = Command::new("docker")
        .args([
            "buildx",
            "create",
            "--name",
            &name,
            "--driver",
            "docker-container",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut c = mbx();
    c.env("MBX_STATE_DIR", state_dir(&tmp))
        .args(["setup", "--cleanup", "--builder", &name]);
    let o = run(c);
    assert!(o.status.success());
    assert!(stdout(&o).contains("left builder"), "{}", stdout(&o));
    let still = Command::new("docker")
        .args(["buildx", "inspect", &name])
        .output()
        .unwrap();
    assert!(
        still.status.success(),
        "cleanup removed a builder mbx did not create"
    );
}

#[test]
fn docker_driver_really_refuses_push_by_digest() {
    // Why mbx's build stage pushes per-platform staging tags on the docker
    // driver (tests/build.rs checks that path): buildx refuses push-by-digest
    // there even with the containerd image store, as on this chain.
    require_chain();
    let ctx = repo_root().join("examples/hello");
    let repo = unique_repo("docker-driver");
    let raw = Command::new("docker")
        .args([
            "buildx",
            "build",
            "--builder",
            "default",
            "--platform",
            "linux/amd64",
        ])
        .arg(format!(
            "--output=type=image,name={repo},push-by-digest=true,name-canonical=true,push=true"
        ))
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!raw.status.success());
    let raw_err = String::from_utf8_lossy(&raw.stderr);
    assert!(
        raw_err.contains("push-by-digest is currently not implemented for docker driver"),
        "{raw_err}"
    );
}

// ---------------------------------------------------------------- binfmt

/// Puts the arm64 handler back as it was when the guard was made, whatever
/// the test did to it.
struct HandlerGuard {
    original: Vec<qemu::Handler>,
}

fn arm64() -> Platform {
    "linux/arm64".parse().unwrap()
}

fn arm64_handlers() -> Vec<qemu::Handler> {
    let h = qemu::elf_header(&arm64()).unwrap();
    qemu::read_handlers(std::path::Path::new(BINFMT))
        .unwrap()
        .into_iter()
        .filter(|x| x.matches(&h))
        .collect()
}

fn esc(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\x{x:02x}")).collect()
}

fn register(h: &qemu::Handler) {
    let line = format!(
        ":{}:M:{}:{}:{}:{}:{}",
        h.name,
        h.offset,
        esc(&h.magic),
        esc(&h.mask),
        h.interpreter,
        h.flags
    );
    std::fs::write(format!("{BINFMT}/register"), &line)
        .unwrap_or_else(|e| panic!("register {line}: {e}"));
    if !h.enabled {
        std::fs::write(format!("{BINFMT}/{}", h.name), "0").unwrap();
    }
}

fn unregister_all() {
    for h in arm64_handlers() {
        let _ = std::fs::write(format!("{BINFMT}/{}", h.name), "-1");
    }
}

impl HandlerGuard {
    fn new() -> HandlerGuard {
        let original = arm64_handlers();
        assert!(
            !original.is_empty() && original.iter().all(|h| h.enabled && h.has_fix_binary()),
            "the chain's qemu-aarch64 handler is not in order before the test: run scripts/chain-up"
        );
        HandlerGuard { original }
    }
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        unregister_all();
        for h in &self.original {
            register(h);
        }
        let now = arm64_handlers();
        if now.len() != self.original.len() {
            eprintln!("WARNING: arm64 handler not restored: {now:?}; run scripts/chain-up");
        }
    }
}

/// Break the arm64 handler on the kernel; `orig` is the chain's own (Debian's).
fn break_handler(how: &str, orig: &qemu::Handler) {
    match how {
        "disabled" => {
            for h in arm64_handlers() {
                std::fs::write(format!("{BINFMT}/{}", h.name), "0").unwrap();
            }
        }
        "missing" => unregister_all(),
        "no F flag" => {
            unregister_all();
            let mut h = orig.clone();
            h.flags = h.flags.replace('F', "");
            h.enabled = true;
            register(&h);
        }
        _ => unreachable!(),
    }
}

/// An arm64 RUN step on the test's builder.
fn arm64_run_step(builder: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {REGISTRY}/mbx/busybox:latest\nRUN echo \"arch=$(uname -m)\" && test \"$(uname -m)\" = aarch64\n"),
    )
    .unwrap();
    let out = Command::new("docker")
        .args([
            "buildx",
            "build",
            "--builder",
            builder,
            "--platform",
            "linux/arm64",
        ])
        .args(["--progress=plain", "--no-cache"])
        .arg(ctx.path())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "arm64 RUN failed: {e}");
    assert!(e.contains("arch=aarch64"), "{e}");
}

fn repair_cycle(source: &[&str], expect_interpreter: Option<&str>) {
    require_chain();
    let _lock = binfmt_exclusive();
    let restore = HandlerGuard::new();
    let name = unique("binfmt");
    let _builder = BuilderGuard(name.clone());
    let tmp = tempfile::tempdir().unwrap();
    let state = state_dir(&tmp);

    let orig = restore.original[0].clone();
    for how in ["disabled", "no F flag", "missing"] {
        break_handler(how, &orig);
        // mbx finds it …
        let mut args = vec!["--platforms", "linux/amd64,linux/arm64"];
        args.extend_from_slice(source);
        let o = setup(&name, &state, &args);
        assert!(o.status.success(), "[{how}] {}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains(&format!("[repaired: was {how}]")),
            "[{how}] repair not reported: {out}"
        );
        // … and the kernel agrees it is repaired.
        let hs = arm64_handlers();
        assert!(!hs.is_empty(), "[{how}] no handler after repair");
        assert!(
            hs.iter().all(|h| h.enabled && h.has_fix_binary()),
            "[{how}] {hs:?}"
        );
        if let Some(i) = expect_interpreter {
            assert!(hs.iter().any(|h| h.interpreter == i), "[{how}] {hs:?}");
        }
        assert!(out.contains("linux/arm64"), "{out}");
    }
    arm64_run_step(&name);

    // --reset-qemu re-registers a handler that is in order.
    let mut args = vec!["--platforms", "linux/arm64", "--reset-qemu"];
    args.extend_from_slice(source);
    let o = setup(&name, &state, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("[repaired: was reset]"),
        "{}",
        stdout(&o)
    );
    arm64_run_step(&name);
}

#[test]
fn binfmt_repaired_from_host_qemu() {
    repair_cycle(
        &["--qemu-from", "host"],
        Some("/usr/libexec/qemu-binfmt/aarch64-binfmt-P"),
    );
}

#[test]
fn binfmt_repaired_by_installer_image() {
    // The chain's installer image registers /usr/bin/qemu-aarch64 (a path
    // inside the image only) with F: proof that the container did it.
    repair_cycle(
        &["--qemu-image", BINFMT_IMAGE],
        Some("/usr/bin/qemu-aarch64"),
    );
}

#[test]
fn handler_in_order_is_reported_with_its_qemu_version() {
    // Read-only check: with the handler in order, setup reports it and its
    // interpreter's version, and changes nothing.
    require_chain();
    let _shared = binfmt_shared();
    let before = arm64_handlers();
    let r = qemu::inspect(&[arm64()], &"linux/amd64".parse().unwrap(), None).unwrap();
    assert_eq!(r.len(), 1);
    assert!(r[0].problem.is_none(), "{:?}", r[0]);
    if r[0].record.interpreter_present == Some(true) {
        let v = r[0].record.qemu_version.as_deref().unwrap_or("");
        assert!(v.starts_with("qemu-aarch64 version"), "{v}");
    }
    assert_eq!(before, arm64_handlers());
}

fn grpc_platforms(builder: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let workers = rt
        .block_on(mbx::docker::buildkit::list_workers(
            "docker",
            builder,
            std::time::Duration::from_secs(20),
        ))
        .unwrap_or_else(|e| panic!("ListWorkers on {builder}: {e}"));
    workers.into_iter().flat_map(|w| w.platforms).collect()
}

#[test]
fn grpc_answer_is_the_truth_not_buildx_ls() {
    // REAL-CHAIN's pitfall: with the arm64 handler gone, `buildx ls` still
    // marks the requested `linux/arm64*`; BuildKit's ListWorkers (which
    // re-detects emulators on each call) does not list it. mbx asks BuildKit.
    require_chain();
    let name = unique("truth");
    let _builder = BuilderGuard(name.clone());
    let tmp = tempfile::tempdir().unwrap();
    {
        let _lock = binfmt_exclusive();
        let _restore = HandlerGuard::new();
        unregister_all();
        let made = Command::new("docker")
            .args(["buildx", "create", "--bootstrap", "--name", &name])
            .args([
                "--driver",
                "docker-container",
                "--platform",
                "linux/amd64,linux/arm64",
            ])
            .args([
                "--driver-opt",
                "image=127.0.0.1:5000/moby/buildkit:local,network=host",
            ])
            .args(["--buildkitd-config"])
            .arg(chain_dir().join("buildkitd.toml"))
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let ls = Command::new("docker")
            .args(["buildx", "ls"])
            .output()
            .unwrap();
        let ls = String::from_utf8_lossy(&ls.stdout).into_owned();
        let line = ls
            .lines()
            .find(|l| l.contains(&format!("{name}0")))
            .unwrap_or("");
        assert!(line.contains("linux/arm64*"), "buildx ls: {ls}");
        let grpc = grpc_platforms(&name);
        assert!(
            !grpc.contains(&"linux/arm64".to_string()),
            "ListWorkers lists arm64 without a handler: {grpc:?}"
        );
        assert_eq!(grpc, buildctl_platforms(&name));
        // the guard puts the handler back here
    }
    let _shared = binfmt_shared();
    // The handler is back. BuildKit 0.13 re-detects emulators on every
    // ListWorkers; BuildKit ≥ 0.2x only when it starts, so mbx restarts a
    // builder whose workers lack a platform that now has a handler.
    let o = setup(
        &name,
        &state_dir(&tmp),
        &[
            "--builder-platforms",
            "linux/amd64,linux/arm64",
            "--platforms",
            "linux/amd64,linux/arm64",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("builder   {name} reused")), "{out}");
    assert!(grpc_platforms(&name).contains(&"linux/arm64".to_string()));
    arm64_run_step(&name);
}

#[test]
fn too_old_buildx_is_refused_before_anything_changes() {
    // No old buildx can be installed here: a shim in front of the real docker
    // CLI answers `buildx version` as buildx 0.10.4 would, and passes every
    // other command through (the daemon, QEMU and builders stay real).
    require_chain();
    let tmp = tempfile::tempdir().unwrap();
    let shim = tmp.path().join("docker");
    std::fs::write(
        &shim,
        "#!/bin/sh\nif [ \"$1 $2\" = \"buildx version\" ]; then echo 'github.com/docker/buildx v0.10.4 c513d34'; exit 0; fi\nexec docker \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let name = unique("oldbx");
    let mut c = mbx();
    c.env("MBX_DOCKER", &shim)
        .env("MBX_STATE_DIR", state_dir(&tmp))
        .args(["setup", "--builder", &name]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("buildx 0.10.4 is too old: mbx needs ≥ 0.13.0"),
        "{e}"
    );
    assert!(e.contains("help: upgrade the buildx plugin"), "{e}");
    let absent = Command::new("docker")
        .args(["buildx", "inspect", &name])
        .output()
        .unwrap();
    assert!(!absent.status.success(), "no builder may be created");
}
