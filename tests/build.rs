//! The build stage on the real chain: multi-runner parts joined by `mbx
//! merge`, and the build inputs (secrets, labels, annotations) reaching
//! buildx without leaking.

mod support;

use std::path::Path;

use support::*;

fn hello() -> String {
    repo_root().join("examples/hello").display().to_string()
}

fn build_part(repo: &str, platform: &str, out: &Path) -> std::process::Child {
    let mut c = mbx();
    c.args([
        "build",
        "--local",
        "--cache",
        "none",
        "--platform",
        platform,
        "--context",
        &hello(),
        "--image",
        repo,
        "--push",
        "--json",
    ])
    .arg(out)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    c.spawn().expect("spawn mbx build")
}

#[test]
fn parts_built_separately_are_merged_into_one_verified_index() {
    require_builder();
    let d = tempfile::tempdir().unwrap();
    let parts = d.path().join("parts");
    std::fs::create_dir_all(parts.join("amd64")).unwrap();
    std::fs::create_dir_all(parts.join("arm64")).unwrap();
    let repo = unique_repo("multi-runner");
    // Two "matrix jobs" at once, each writing its part into its own artifact folder.
    let a = build_part(&repo, "linux/amd64", &parts.join("amd64/part.json"));
    let b = build_part(&repo, "linux/arm64", &parts.join("arm64/part.json"));
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        eprintln!("{}\n{}", stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(0));
        assert!(
            stderr(&o).contains("join the parts with `mbx merge --parts DIR`"),
            "{}",
            stderr(&o)
        );
    }
    // Nothing is tagged before the merge.
    assert!(
        !tag_exists(&format!("{repo}:latest")),
        "a part must not move a tag"
    );

    let merged = d.path().join("merged.json");
    let mut c = mbx();
    c.args(["merge", "--parts"])
        .arg(&parts)
        .args(["--tag", "v2,latest", "--json"])
        .arg(&merged);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_json(&merged);
    assert_eq!(r["verified"], true);
    assert_eq!(r["platforms"].as_array().unwrap().len(), 2);
    let index = json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:v2"),
    ]));
    assert_eq!(index_platforms(&index), vec!["linux/amd64", "linux/arm64"]);
    let digest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{repo}:latest"),
    ]);
    assert_eq!(digest.trim(), r["index_digest"]);
    for p in r["platforms"].as_array().unwrap() {
        let arch = p["platform"].as_str().unwrap().rsplit('/').next().unwrap();
        let listed = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap();
        assert_eq!(listed["digest"], p["digest"]);
    }

    // Asking for a platform no part built is refused before anything is pushed.
    let mut c = mbx();
    c.args(["merge", "--parts"]).arg(&parts).args([
        "--tag",
        "v3",
        "--platforms",
        "linux/amd64,linux/arm64,linux/arm/v7",
    ]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--platforms asks for linux/arm/v7 but no part holds it"),
        "{}",
        stderr(&o)
    );
    assert!(!tag_exists(&format!("{repo}:v3")), "nothing tagged");
}

#[test]
fn merge_refuses_parts_that_do_not_fit() {
    let d = tempfile::tempdir().unwrap();
    let mut c = mbx();
    c.args(["merge", "--parts"]).arg(d.path());
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no mbx run records under"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn secrets_labels_and_annotations_reach_the_image_and_secrets_never_print() {
    require_builder();
    let d = tempfile::tempdir().unwrap();
    let secret_value = format!("s3cr3t-{}", std::process::id());
    std::fs::write(d.path().join("token.txt"), &secret_value).unwrap();
    std::fs::write(
        d.path().join("Dockerfile"),
        "FROM 127.0.0.1:5000/mbx/busybox:latest\n\
         RUN --mount=type=secret,id=filetok --mount=type=secret,id=envtok \\\n\
             test \"$(cat /run/secrets/filetok)\" = \"$(cat /run/secrets/envtok)\" && \\\n\
             cat /run/secrets/filetok | sha256sum | cut -d' ' -f1 > /secret.sha256\n",
    )
    .unwrap();
    let repo = unique_repo("inputs");
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--cache",
        "none",
        "--platforms",
        "linux/amd64",
        "--context",
    ])
    .arg(d.path())
    .args(["--image", &repo, "--push", "--provenance", "false"])
    .arg("--secret-file")
    .arg(format!("filetok={}", d.path().join("token.txt").display()))
    .args(["--secret-env", "envtok=MBX_TEST_SECRET"])
    .args(["--label", "org.opencontainers.image.title=hello-inputs"])
    .args(["--annotation", "org.example.kind=platform-manifest"])
    .args(["--annotation", "index:org.example.kind=the-index"])
    .arg("--json")
    .arg(d.path().join("run.json"))
    .env("MBX_TEST_SECRET", &secret_value);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let record = std::fs::read_to_string(d.path().join("run.json")).unwrap();
    for (what, text) in [
        ("stdout", stdout(&o)),
        ("stderr", stderr(&o)),
        ("record", record),
    ] {
        assert!(
            !text.contains(&secret_value),
            "the secret leaked into {what}"
        );
    }
    let reference = format!("docker://{repo}:latest");
    let index = json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reference,
    ]));
    assert_eq!(index["annotations"]["org.example.kind"], "the-index");
    let manifest = json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--override-arch",
        "amd64",
        &format!(
            "docker://{repo}@{}",
            index["manifests"][0]["digest"].as_str().unwrap()
        ),
    ]));
    assert_eq!(
        manifest["annotations"]["org.example.kind"],
        "platform-manifest"
    );
    let config = json(&skopeo(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        "--override-arch",
        "amd64",
        &reference,
    ]));
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"],
        "hello-inputs"
    );
}

#[test]
fn missing_secret_sources_are_bad_input() {
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--context",
        &hello(),
        "--secret-file",
        "tok=/nonexistent/file",
    ]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("secret file for `tok` does not exist"),
        "{}",
        stderr(&o)
    );
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--context",
        &hello(),
        "--secret-env",
        "tok=MBX_SURELY_UNSET_VAR",
    ])
    .env_remove("MBX_SURELY_UNSET_VAR");
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("MBX_SURELY_UNSET_VAR, which is not set"),
        "{}",
        stderr(&o)
    );
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--context",
        &hello(),
        "--secret",
        "tok=plainvalue",
    ]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !stderr(&o).contains("plainvalue"),
        "a malformed secret is not echoed: {}",
        stderr(&o)
    );
}

#[test]
fn ctrl_c_stops_the_builds_and_says_what_was_pushed() {
    use std::io::{BufRead, BufReader};
    require_builder();
    let d = tempfile::tempdir().unwrap();
    // amd64 finishes at once; arm64 sleeps (under QEMU) until interrupted.
    std::fs::write(
        d.path().join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:5000/mbx/busybox:latest\nARG TARGETARCH\nRUN echo {}; if [ \"$TARGETARCH\" = arm64 ]; then sleep 120; fi\n",
            std::process::id()
        ),
    )
    .unwrap();
    let repo = unique_repo("interrupted");
    let mut c = mbx();
    c.args(["ci", "--local", "--cache", "none", "--context"])
        .arg(d.path())
        .args(["--image", &repo, "--push"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr_pipe).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("built linux/amd64") {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("built linux/amd64")),
        "{seen:?}"
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let started = std::time::Instant::now();
    // SIGINT to mbx alone (not its process group): mbx must stop buildx itself.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let text = rest.join("\n");
    eprintln!("{}\n{text}", seen.join("\n"));
    assert_eq!(status.code(), Some(130));
    assert!(
        started.elapsed().as_secs() < 30,
        "stopped promptly, not after the 120 s sleep"
    );
    assert!(
        text.contains(
            "error: interrupted: stopped linux/arm64; pushed by digest only: linux/amd64 (sha256:"
        ),
        "{text}"
    );
    assert!(
        text.contains("help: no index was pushed and no tag moved"),
        "{text}"
    );
    assert!(
        !tag_exists(&format!("{repo}:latest")),
        "no tag after an interrupted run"
    );
}

#[test]
fn the_docker_driver_pushes_staging_tags_and_says_so() {
    require_chain();
    // dockerd's own builder `default` (docker driver, containerd image store).
    let d = context("FROM 127.0.0.1:5000/mbx/busybox:latest\nCOPY note.txt /\n");
    std::fs::write(
        d.path().join("note.txt"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let repo = unique_repo("docker-driver");
    let record = d.path().join("run.json");
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--cache",
        "none",
        "--builder",
        "default",
        "--driver",
        "docker",
        "--context",
    ])
    .arg(d.path())
    .args(["--image", &repo, "--push", "--json"])
    .arg(&record);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the docker driver cannot push by digest"),
        "{}",
        stderr(&o)
    );
    let r = read_json(&record);
    assert_eq!(r["verified"], true);
    assert!(
        r["notes"][0].as_str().unwrap().contains("staging tag"),
        "{r}"
    );
    for slug in ["linux-amd64", "linux-arm64"] {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{repo}:mbx-staging-{slug}"),
        ]);
    }
    let index = json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:latest"),
    ]));
    assert_eq!(index_platforms(&index), vec!["linux/amd64", "linux/arm64"]);
}

#[test]
fn no_verify_skips_the_read_back_and_says_so() {
    require_builder();
    let d = context("FROM scratch\nCOPY note.txt /\n");
    std::fs::write(d.path().join("note.txt"), "no verify\n").unwrap();
    let record = d.path().join("run.json");
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--cache",
        "none",
        "--no-verify",
        "--context",
    ])
    .arg(d.path())
    .arg("--output")
    .arg(d.path().join("out"))
    .arg("--json")
    .arg(&record);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("verify: reading the result back"));
    let r = read_json(&record);
    assert_eq!(r["verified"], false);
    assert!(r["checks"].as_array().is_none_or(|c| c.is_empty()), "{r}");
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("verification skipped"),
        "{r}"
    );
}
