//! End to end on the real chain: `mbx ci --local` builds examples/hello for
//! linux/amd64 + linux/arm64 (arm64 under QEMU) with the docker-container
//! builder, once into an OCI layout and once pushed to the loopback
//! registry. The results are read back with an independent tool (skopeo).

mod support;

use support::*;

fn hello() -> String {
    repo_root().join("examples/hello").display().to_string()
}

/// skopeo's view of one platform's config in `transport_ref`.
fn config_arch(extra: &[&str], transport_ref: &str, arch: &str) -> serde_json::Value {
    let mut args = vec![
        "inspect",
        "--config",
        "--raw",
        "--override-os",
        "linux",
        "--override-arch",
        arch,
    ];
    args.extend_from_slice(extra);
    args.push(transport_ref);
    json(&skopeo(&args))
}

/// A test's own builder, removed when the test ends.
struct OwnBuilder(String);

impl Drop for OwnBuilder {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["buildx", "rm", &self.0])
            .output();
    }
}

#[test]
fn ci_local_writes_a_two_platform_oci_layout_then_pushes_from_cache() {
    require_builder();
    // A builder of its own: this test prunes it, which must not race the
    // other tests' builds on the shared ci-builder.
    let builder = OwnBuilder(format!("mbx-test-e2e-{}", std::process::id()));
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let cache = d.path().join("cache");
    let record_path = d.path().join("run.json");

    // 1. Cold: no cache anywhere, into an OCI layout.
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--no-cache",
        "--builder",
        &builder.0,
        "--context",
        &hello(),
        "--output",
    ])
    .arg(&out)
    .arg("--cache-dir")
    .arg(&cache)
    .arg("--json")
    .arg(&record_path);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let record = read_json(&record_path);
    assert_eq!(record["verified"], true);
    let index_digest = record["index_digest"].as_str().unwrap().to_string();
    let platforms = record["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    for (p, want_platform, emulated) in [
        (&platforms[0], "linux/amd64", false),
        (&platforms[1], "linux/arm64", true),
    ] {
        assert_eq!(p["platform"], want_platform);
        assert_eq!(p["emulated"], emulated);
        assert!(p["digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(p["wall_seconds"].as_f64().unwrap() > 0.0);
        assert_eq!(p["steps_total"], 3, "three RUN steps (FROM is not counted)");
        assert_eq!(p["steps_cached"], 0, "--no-cache ran every step");
    }
    // The table names both platforms and their mode.
    let table = stdout(&o);
    assert!(table.contains("linux/amd64  native"), "{table}");
    assert!(table.contains("linux/arm64  emulated"), "{table}");

    // Independent read-back of the layout.
    let layout = format!("oci:{}", out.display());
    let index = json(&skopeo(&["inspect", "--raw", &layout]));
    assert_eq!(index_platforms(&index), vec!["linux/amd64", "linux/arm64"]);
    assert_eq!(config_arch(&[], &layout, "amd64")["architecture"], "amd64");
    assert_eq!(config_arch(&[], &layout, "arm64")["architecture"], "arm64");
    let index_json = read_json(&out.join("index.json"));
    assert_eq!(index_json["manifests"][0]["digest"], index_digest.as_str());

    // `mbx verify` on the layout agrees, and fails for a platform not built.
    let mut c = mbx();
    c.arg("verify")
        .arg(&out)
        .args(["--platforms", "linux/amd64,linux/arm64"]);
    assert_eq!(run(c).status.code(), Some(0));
    let mut c = mbx();
    c.arg("verify")
        .arg(&out)
        .args(["--platforms", "linux/amd64,linux/arm/v7"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(
            "✗ platform linux/arm/v7: missing from the index (it holds: linux/amd64, linux/arm64)"
        ),
        "{}",
        stdout(&o)
    );

    // 2. Warm: the same build pushed to the loopback registry, from the local
    // cache only: the builder's own state is pruned first, so a CACHED step
    // can only come from the exported cache directory.
    let prune = std::process::Command::new("docker")
        .args([
            "buildx",
            "prune",
            "--builder",
            &builder.0,
            "--all",
            "--force",
        ])
        .output()
        .unwrap();
    assert!(
        prune.status.success(),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    let repo = unique_repo("hello");
    let record2 = d.path().join("run2.json");
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--builder",
        &builder.0,
        "--context",
        &hello(),
        "--image",
        &repo,
        "--push",
        "--tag",
        "v1,latest",
        "--cache-scope-prefix",
        "hello",
    ])
    .arg("--cache-dir")
    .arg(&cache)
    .arg("--json")
    .arg(&record2);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r2 = read_json(&record2);
    assert_eq!(r2["verified"], true);
    for p in r2["platforms"].as_array().unwrap() {
        assert_eq!(
            p["steps_cached"], p["steps_total"],
            "warm rebuild from --cache local: every step cached: {p}"
        );
        assert_eq!(
            p["cache_scope"],
            format!(
                "hello-{}",
                p["platform"].as_str().unwrap().replace('/', "-")
            )
        );
    }
    // Both tags name the same index, holding both platforms with the right configs.
    let by_tag = |t: &str| format!("docker://{repo}:{t}");
    let raw_v1 = skopeo(&["inspect", "--raw", "--tls-verify=false", &by_tag("v1")]);
    let raw_latest = skopeo(&["inspect", "--raw", "--tls-verify=false", &by_tag("latest")]);
    assert_eq!(raw_v1, raw_latest);
    let index = json(&raw_v1);
    assert_eq!(index_platforms(&index), vec!["linux/amd64", "linux/arm64"]);
    let digest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &by_tag("v1"),
    ]);
    assert_eq!(
        digest.trim(),
        r2["index_digest"],
        "the record's index digest is what the registry serves"
    );
    for arch in ["amd64", "arm64"] {
        assert_eq!(
            config_arch(&["--tls-verify=false"], &by_tag("v1"), arch)["architecture"],
            arch
        );
    }
    // Each platform's digest in the record is the manifest the index lists for it.
    for p in r2["platforms"].as_array().unwrap() {
        let arch = p["platform"].as_str().unwrap().rsplit('/').next().unwrap();
        let listed = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap();
        assert_eq!(listed["digest"], p["digest"]);
    }
    // mbx writes the index itself: the same document (children, platforms,
    // attestations, media types) as buildx's own `imagetools create` makes
    // from the same pushed digests (key order aside: the digests differ).
    let sources: Vec<String> = r2["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{repo}@{}", p["build_digest"].as_str().unwrap()))
        .collect();
    let dry = std::process::Command::new("docker")
        .args(["buildx", "imagetools", "create", "--dry-run"])
        .args(&sources)
        .output()
        .unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert_eq!(
        json(&String::from_utf8_lossy(&dry.stdout)),
        index,
        "the index mbx pushed is the one imagetools create would write"
    );
}

#[test]
fn verify_catches_a_missing_platform_in_the_registry() {
    require_builder();
    let repo = unique_repo("amd64-only");
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--cache",
        "none",
        "--platforms",
        "linux/amd64",
        "--context",
        &hello(),
        "--image",
        &repo,
        "--push",
    ]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let mut c = mbx();
    c.args([
        "verify",
        &format!("{repo}:latest"),
        "--platforms",
        "linux/amd64,linux/arm64",
        "--json",
    ]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&stdout(&o));
    assert_eq!(v["verified"], false);
    let checks = v["checks"].as_array().unwrap();
    let arm = checks
        .iter()
        .find(|c| c["name"] == "platform linux/arm64")
        .unwrap();
    assert_eq!(arm["passed"], false);
    assert_eq!(
        arm["detail"],
        "missing from the index (it holds: linux/amd64)"
    );
    let amd = checks
        .iter()
        .find(|c| c["name"] == "manifest linux/amd64")
        .unwrap();
    assert_eq!(amd["passed"], true, "{amd}");
}

#[test]
fn a_failing_step_names_platform_step_and_log_and_pushes_no_index() {
    require_builder();
    let d = context("FROM 127.0.0.1:5000/mbx/busybox:latest\nARG TARGETARCH\nRUN echo \"arch is $TARGETARCH\"; if [ \"$TARGETARCH\" = arm64 ]; then echo 'boom on arm64' >&2; exit 3; fi\n");
    let repo = unique_repo("fails");
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--cache",
        "none",
        "--no-cache",
        "--context",
    ])
    .arg(d.path())
    .args(["--image", &repo, "--push"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("linux/arm64: step `[2/2] RUN echo"), "{e}");
    assert!(e.contains("exit code: 3"), "{e}");
    assert!(
        e.contains("boom on arm64"),
        "the step's log tail is shown: {e}"
    );
    assert!(
        e.contains("no index was pushed") && e.contains("linux/amd64 were pushed by digest only"),
        "{e}"
    );
    // No tag exists.
    assert!(
        !tag_exists(&format!("{repo}:latest")),
        "no index may be pushed when a platform failed"
    );
}
