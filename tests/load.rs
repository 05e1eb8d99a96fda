//! `--load` and `--output` exporter specs on the real chain (dockerd with the
//! containerd image store, buildx, BuildKit, QEMU, the loopback registry),
//! and the build logs printed off a terminal.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn hello() -> String {
    repo_root().join("examples/hello").display().to_string()
}

/// `docker run --rm [--platform P] IMAGE`: its stdout, or a panic with stderr.
fn docker_run(image: &str, platform: Option<&str>) -> String {
    let mut c = Command::new("docker");
    c.args(["run", "--rm"]);
    if let Some(p) = platform {
        c.args(["--platform", p]);
    }
    let o = c.arg(image).output().expect("docker");
    assert!(o.status.success(), "docker run {image}: {}", stderr(&o));
    stdout(&o)
}

/// Removes the images a test loaded into dockerd.
struct Loaded(Vec<String>);

impl Drop for Loaded {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

fn ci(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = mbx();
    c.current_dir(dir)
        .args(["ci", "--local", "--cache", "none", "--context", &hello()])
        .args(args);
    run(c)
}

/// build-push-action's `load: true`, then `docker run`, then the same with
/// `push: true`: the image a later step runs is the one just built, for the
/// runner's platform and (containerd image store) for the emulated one.
#[test]
fn load_then_docker_run_then_push() {
    require_builder();
    let repo = unique_repo("load");
    let image = format!("{repo}:t1");
    let _cleanup = Loaded(vec![image.clone()]);
    let d = tempfile::tempdir().unwrap();
    let o = ci(d.path(), &["--image", &repo, "--tag", "t1", "--load"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "loaded into Docker as {image} (linux/amd64, linux/arm64)"
        )),
        "{}",
        stdout(&o)
    );
    assert!(!tag_exists(&image), "load without push pushes nothing");
    let amd = docker_run(&image, None);
    assert!(
        amd.contains("built for linux/amd64") && amd.contains("x86_64"),
        "{amd}"
    );
    let arm = docker_run(&image, Some("linux/arm64"));
    assert!(
        arm.contains("built for linux/arm64") && arm.contains("aarch64"),
        "{arm}"
    );

    let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    let o = ci(
        d.path(),
        &["--image", &repo, "--tag", "t1", "--load", "--push"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(tag_exists(&image), "load with push pushes too");
    let arm = docker_run(&image, Some("linux/arm64"));
    assert!(arm.contains("aarch64"), "{arm}");
    // The image loaded is the index pushed: its ID is the pushed digest.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    let pushed = mbx::digest::sha256(raw.as_bytes());
    let id = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &image])
        .output()
        .unwrap();
    assert_eq!(stdout(&id).trim(), pushed);
}

/// Every exporter type, for both platforms, joined where that means something.
#[test]
fn every_output_type_for_every_platform() {
    require_builder();
    let ctx = context(
        "FROM 127.0.0.1:5000/mbx/busybox:latest\nRUN uname -m > /arch.txt\nCMD [\"cat\", \"/arch.txt\"]\n",
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    std::fs::create_dir_all(out.join("files")).unwrap();
    std::fs::write(out.join("files/mine.txt"), "the user's").unwrap();
    let spec = |s: &str| s.replace("OUT", &out.display().to_string());
    let image = format!("{}:v1", unique_repo("every"));
    let mut c = mbx();
    c.current_dir(d.path())
        .args(["ci", "--local", "--cache", "none", "--context"])
        .arg(ctx.path())
        .args(["--image", &image]);
    for s in [
        "type=local,dest=OUT/files",
        "type=tar,dest=OUT/files.tar",
        "type=oci,dest=OUT/image.tar",
        "type=oci,dest=OUT/layout,tar=false",
        "type=docker,dest=OUT/docker.tar",
    ] {
        c.arg("-o").arg(spec(s));
    }
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "no mbx-out beside the outputs asked for"
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("files/linux_amd64/arch.txt").trim(), "x86_64");
    assert_eq!(read("files/linux_arm64/arch.txt").trim(), "aarch64");
    assert_eq!(read("files/mine.txt"), "the user's", "user files stay");

    let names = |p: &str| -> Vec<String> {
        let mut a = tar::Archive::new(std::fs::File::open(out.join(p)).unwrap());
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    };
    let files = names("files.tar");
    assert!(
        files.contains(&"linux_amd64/arch.txt".to_string()),
        "{files:?}"
    );
    assert!(
        files.contains(&"linux_arm64/arch.txt".to_string()),
        "{files:?}"
    );
    assert!(names("image.tar").contains(&"index.json".to_string()));

    // The layout directory holds one index of both platforms.
    let top = read_json(&out.join("layout/index.json"));
    let digest = top["manifests"][0]["digest"].as_str().unwrap();
    let index = read_json(&out.join("layout/blobs/sha256").join(&digest[7..]));
    let mut platforms = index_platforms(&index);
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    // The docker tarball loads as a two-platform image.
    let _cleanup = Loaded(vec![image.clone()]);
    let o = Command::new("docker")
        .args(["load", "--input"])
        .arg(out.join("docker.tar"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let arm = docker_run(&image, Some("linux/arm64"));
    assert_eq!(arm.trim(), "aarch64");
}

/// A spec mbx cannot make, or a destination holding the user's files, is
/// refused before anything is built: exit 2, the fix named, nothing deleted.
#[test]
fn bad_output_specs_are_refused_naming_the_fix() {
    let ctx = context("FROM 127.0.0.1:5000/mbx/busybox:latest\n");
    let d = tempfile::tempdir().unwrap();
    let user = d.path().join("user");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("notes.txt"), "keep").unwrap();
    let lay = format!("type=oci,dest={},tar=false", user.display());
    let file = format!("type=tar,dest={}", user.display());
    for (spec, want) in [
        ("type=oci", "add dest=PATH"),
        ("type=s3,dest=x", "use one of type=registry"),
        ("dest=x", "start it with type="),
        ("type=local,dest=-", "mbx does not write to stdout"),
        (
            "type=tar,dest=x,compression=zstd",
            "type=tar takes dest=, platform-split=",
        ),
        (lay.as_str(), "new or empty directory"),
        (file.as_str(), "pass dest=FILE naming a file"),
    ] {
        let mut c = mbx();
        c.current_dir(d.path())
            .args(["build", "--cache", "none", "--context"])
            .arg(ctx.path())
            .args(["-o", spec]);
        let o = run(c);
        assert_eq!(o.status.code(), Some(2), "{spec}");
        assert!(stderr(&o).contains(want), "{spec}: {}", stderr(&o));
    }
    assert_eq!(
        std::fs::read_to_string(user.join("notes.txt")).unwrap(),
        "keep"
    );
}

/// In GitHub Actions each platform's whole build log is in its own
/// collapsed group; a line of the build that looks like a workflow command
/// is defused and a secret build arg's value never shows. Off a terminal
/// elsewhere a good build prints no log.
#[test]
fn build_logs_in_actions_groups_defused_and_redacted() {
    require_builder();
    let ctx = context(concat!(
        "FROM 127.0.0.1:5000/mbx/busybox:latest\n",
        "ARG API_TOKEN\n",
        "RUN printf '::error::forged\\n##[warning]legacy\\n::add-mask::%s\\nsaw %s\\n' \"$API_TOKEN\" \"$API_TOKEN\" && uname -m\n",
    ));
    let d = tempfile::tempdir().unwrap();
    let build = |actions: bool| {
        let mut c = mbx();
        c.current_dir(d.path())
            .args(["build", "--cache", "none", "--no-cache", "--context"])
            .arg(ctx.path())
            .args(["--build-arg", "API_TOKEN=s3cr3t-value-42"]);
        if actions {
            c.env("GITHUB_ACTIONS", "true");
        } else {
            c.env_remove("GITHUB_ACTIONS");
        }
        run(c)
    };
    let o = build(true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(err.contains(&format!("::group::{p} build\n")), "{err}");
    }
    assert_eq!(err.matches("::endgroup::").count(), 2, "{err}");
    assert!(
        err.contains("x86_64") && err.contains("aarch64"),
        "the RUN output: {err}"
    );
    assert!(err.contains("saw ***"), "{err}");
    // The build's lines are there, each after its step number (`#5 ::error::…`),
    // which no runner reads as a command; the check below covers every line.
    assert!(
        err.contains("::error::forged") && err.contains("##[warning]legacy"),
        "the build's lines are there: {err}"
    );
    assert!(!err.contains("s3cr3t-value-42"), "{err}");
    let commands: Vec<&str> = err
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("::") || l.starts_with("##["))
        .filter(|l| !l.starts_with("::group::") && !l.starts_with("::endgroup::"))
        .filter(|l| !l.starts_with("::stop-commands::mbx-") && !l.starts_with("::mbx-"))
        .collect();
    assert!(commands.is_empty(), "workflow commands left: {commands:?}");

    let o = build(false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("::group::"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("uname"),
        "no log of a good build: {}",
        stderr(&o)
    );
}

/// `type=registry,name=…` is the push (as `push: true` with those tags);
/// `type=image` without push=true pushes nothing and says so.
#[test]
fn registry_output_pushes_under_its_names() {
    require_builder();
    let ctx = context("FROM 127.0.0.1:5000/mbx/busybox:latest\nRUN uname -m > /arch.txt\n");
    let repo = unique_repo("registry-output");
    let d = tempfile::tempdir().unwrap();
    let mut c = mbx();
    c.current_dir(d.path())
        .args(["ci", "--local", "--cache", "none", "--context"])
        .arg(ctx.path())
        .arg("-o")
        .arg(format!("\"type=registry\",\"name={repo}:r1,{repo}:r2\""));
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(tag_exists(&format!("{repo}:r1")) && tag_exists(&format!("{repo}:r2")));
    let index = json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:r2"),
    ]));
    let mut platforms = index_platforms(&index);
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    let mut c = mbx();
    c.current_dir(d.path())
        .args(["ci", "--local", "--cache", "none", "--context"])
        .arg(ctx.path())
        .arg("-o")
        .arg(format!("type=image,name={repo}:r3"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!tag_exists(&format!("{repo}:r3")));
    assert!(
        stdout(&o).contains("stays in BuildKit's cache only"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("output  BuildKit's cache only"),
        "the report names no scratch directory: {}",
        stdout(&o)
    );
}
