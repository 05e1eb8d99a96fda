//! Multi-runner mode end to end: the reusable workflow
//! .github/workflows/build.yml under nektos/act (self-hosted mode, the real
//! chain), called from tests/fixtures/runners/workflow.yml as a user calls
//! it: the plan job, one matrix leg per platform (`mode: part`), the merge
//! job (`mode: merge`), the parts travelling as job outputs.
//!
//! What is real: dockerd, buildx, BuildKit, QEMU, the loopback registry, act
//! and its handling of reusable workflows, matrices and job outputs. Stand-ins:
//! - Both runner labels (`ubuntu-24.04`, `ubuntu-24.04-arm`) map to this amd64
//!   host (`-P LABEL=-self-hosted`): the "arm64 runner" builds under QEMU, so
//!   the test checks the plumbing (routing, parts, merge, summary), not speed.
//! - `org/mbx-action@v1` (and its runtime step at the pinned commit) is this
//!   tree, mapped with `act --local-repository` as in tests/action.rs.
//! - The gha cache: GitHub's cache service v2 stand-in (tests/support/gha_v2.rs)
//!   on the current lane, act's own v1 cache server on the compat lane.
//! - act does not merge a matrix job's outputs (nektos/act#981); the workflow
//!   works around it under act only (see its `hand-on` step).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

/// A git repository holding examples/hello as hello/, the reusable workflow
/// and the caller.
fn fixture_repo(dir: &Path) -> PathBuf {
    let r = dir.join("repo");
    let wf = r.join(".github/workflows");
    std::fs::create_dir_all(r.join("hello")).unwrap();
    std::fs::create_dir_all(&wf).unwrap();
    let root = repo_root();
    std::fs::copy(
        root.join("examples/hello/Dockerfile"),
        r.join("hello/Dockerfile"),
    )
    .unwrap();
    std::fs::copy(
        root.join(".github/workflows/build.yml"),
        wf.join("build.yml"),
    )
    .unwrap();
    std::fs::copy(
        root.join("tests/fixtures/runners/workflow.yml"),
        wf.join("caller.yml"),
    )
    .unwrap();
    git_commit_all(&r);
    r
}

/// Removes the test's buildx builder when dropped (never ci-builder).
struct BuilderGuard(String);

impl Drop for BuilderGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["buildx", "rm", "--force", &self.0])
            .output();
    }
}

fn act(
    repo: &Path,
    action: &Path,
    cache: &Path,
    vars: &[(&str, String)],
    env: &[(&str, String)],
) -> (Output, String) {
    let pin = runtime_pin();
    let mut c = Command::new("timeout");
    c.args(["900", "act", "push"])
        .args(["-W", ".github/workflows/caller.yml"])
        .args(["-P", "ubuntu-24.04=-self-hosted"])
        .args(["-P", "ubuntu-24.04-arm=-self-hosted"])
        .args(["--cache-server-addr", "127.0.0.1", "--cache-server-path"])
        .arg(cache)
        .arg("--local-repository")
        .arg(format!("{ACTION}@v1={}", action.display()))
        .arg("--local-repository")
        .arg(format!("{ACTION}@{pin}={}", action.display()))
        .current_dir(repo)
        .env("ACT_DISABLE_VERSION_CHECK", "1");
    let config = chain_dir().join("mbx.toml");
    c.args(["--env", &format!("MBX_CONFIG={}", config.display())]);
    c.args(["--env", "NO_COLOR=1"]);
    for (k, v) in vars {
        c.arg("--var").arg(format!("{k}={v}"));
    }
    for (k, v) in env {
        c.arg("--env").arg(format!("{k}={v}"));
    }
    let (o, log) = act_output(&mut c);
    (o, log)
}

/// Every job summary act printed, with the job that wrote it (act prints a
/// composite action's summary after its inner step and again after the
/// action's step: the same text twice, deduplicated here).
fn summaries(log: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line_start in log.match_indices("Summary - ").map(|(i, _)| i) {
        let job_start = log[..line_start].rfind('[').unwrap_or(0);
        let job = log[job_start..line_start]
            .split(']')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let rest = &log[line_start + "Summary - ".len()..];
        let end = rest.find("\n[mbx-runners-test/").unwrap_or(rest.len());
        let end = rest[..end].find("\n[image/").unwrap_or(end);
        let item = (job, rest[..end].to_string());
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The bytes each leg's hand-on step reported (`part-N: B bytes`).
fn part_sizes(log: &str) -> Vec<(String, usize)> {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find("| part-")? + 2..];
            let (slot, bytes) = rest.split_once(": ")?;
            Some((
                slot.to_string(),
                bytes.strip_suffix(" bytes")?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn reusable_workflow_builds_each_platform_on_its_runner_merges_and_writes_one_summary() {
    require_chain();
    hold_binfmt_shared();
    let d = tempfile::tempdir().unwrap();
    let repo = fixture_repo(d.path());
    let action = action_copy(d.path());
    let image = unique_repo("run/runners-hello");
    let builder = BuilderGuard(format!("run-wf-{}", std::process::id()));
    let token = unsigned_runtime_jwt();
    let v2 = (std::env::var("MBX_CHAIN_LANE").as_deref() != Ok("compat"))
        .then(|| support::gha_v2::CacheV2::start(&token));
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let vars = [
        ("MBX_TEST_TAGS", format!("{image}:v1")),
        ("MBX_TEST_BUILDER", builder.0.clone()),
        ("MBX_TEST_BINARY", env!("CARGO_BIN_EXE_mbx").to_string()),
    ];
    let mut env = vec![
        ("MBX_TEST_OUT", out.display().to_string()),
        ("ACTIONS_RUNTIME_TOKEN", token.clone()),
    ];
    if let Some(service) = &v2 {
        env.push(("ACTIONS_RESULTS_URL", service.url.clone()));
        env.push(("ACTIONS_CACHE_SERVICE_V2", "true".to_string()));
    }
    let (o, log) = act(&repo, &action, &d.path().join("act-cache"), &vars, &env);
    assert!(o.status.success(), "act failed:\n{log}");

    // The plan: one leg per platform, each on its runner label.
    assert!(
        log.contains("plan: linux/amd64 on ubuntu-24.04, linux/arm64 on ubuntu-24.04-arm"),
        "{log}"
    );
    // The parts left as job outputs, one name per leg, under the limit.
    let mut sizes = part_sizes(&log);
    sizes.sort();
    assert_eq!(
        sizes.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["part-0", "part-1"],
        "{log}"
    );
    for (slot, bytes) in &sizes {
        assert!(
            *bytes > 200 && *bytes <= mbx::build::parts::PART_MAX_BYTES,
            "{slot}: {bytes} bytes"
        );
    }
    assert!(
        log.contains("merge: 2 part(s) from job output `part-0`, job output `part-1` ("),
        "the merge read both parts from the build job's outputs:\n{log}"
    );
    assert!(log.contains("merging 2 platform(s)"), "{log}");

    // ONE summary, from the merge job, covering both runners.
    let all = summaries(&log);
    let mbx: Vec<&(String, String)> = all.iter().filter(|s| s.1.contains("## mbx:")).collect();
    assert_eq!(mbx.len(), 1, "one mbx summary in the run: {all:#?}");
    assert!(
        mbx[0].0.ends_with("/merge"),
        "written by the merge job: {}",
        mbx[0].0
    );
    let s = &mbx[0].1;
    assert!(s.contains("✅ verified"), "{s}");
    assert!(
        s.contains("### Runners\n\n2 platform(s) built on 2 runner(s)"),
        "{s}"
    );
    for (p, r) in [
        ("linux/amd64", "ubuntu-24.04"),
        ("linux/arm64", "ubuntu-24.04-arm"),
    ] {
        assert!(s.contains(&format!("| {p} | {r} |")), "{p} on {r}:\n{s}");
    }

    // The tag's index holds both platforms; the outputs name it.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}:v1"),
    ]);
    let index = json(&raw);
    let mut platforms = index_platforms(&index);
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let digest = std::fs::read_to_string(out.join("digest")).unwrap();
    let pd = read_json(&out.join("platform-digests.json"));
    for m in index["manifests"].as_array().unwrap() {
        let p = format!(
            "{}/{}",
            m["platform"]["os"].as_str().unwrap(),
            m["platform"]["architecture"].as_str().unwrap()
        );
        if p != "unknown/unknown" {
            assert_eq!(pd[&p], m["digest"], "platform-digests[{p}]: {pd}");
        }
    }
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(raw.as_bytes())
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    assert_eq!(
        digest,
        format!("sha256:{sha}"),
        "output digest = the index under :v1"
    );

    // Each leg used the gha cache, its own scope.
    if let Some(service) = &v2 {
        let keys = service.keys();
        for arch in ["amd64", "arm64"] {
            assert!(
                keys.iter()
                    .any(|k| k.starts_with("index-") && k.contains(&format!("-linux-{arch}-1-"))),
                "the {arch} leg exported its scope to the v2 service: {keys:?}"
            );
        }
    }
}

/// The modes refuse what cannot work, in a second, before any build or push
/// (exit 2): a part that would not be pushed; parts of another schema version
/// handed on as job outputs (the check the files path has too).
#[test]
fn part_without_a_registry_and_a_part_of_another_schema_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut c = mbx();
    c.args([
        "ci",
        "--mode",
        "part",
        "--platforms",
        "linux/amd64",
        "--cache",
        "none",
    ])
    .arg("--context")
    .arg(repo_root().join("examples/hello"))
    .arg("--output")
    .arg(d.path().join("out"));
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("mode: part pushes each platform by digest"),
        "{}",
        stderr(&o)
    );

    let newer = serde_json::json!({
        "part-0": r#"{"schema_version": "2.0", "mbx_version": "9.0.0", "platforms": []}"#,
        "part-1": "",
    });
    let mut c = mbx();
    c.args(["ci", "--mode", "merge", "--builder", "run-none"])
        .env("MBX_PARTS", newer.to_string());
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("part job output `part-0`: record schema 2.0 (written by mbx 9.0.0) is newer than this mbx"),
        "{err}"
    );
    assert!(err.contains("nothing was merged"), "{err}");
}
