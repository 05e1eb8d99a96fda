//! The gha cache for real: builds run inside a workflow job under nektos/act
//! (self-hosted mode), whose cache server on 127.0.0.1 speaks the GitHub
//! Actions cache protocol (v1) that BuildKit's gha exporter uses.
//!
//! act sets ACTIONS_CACHE_URL but no ACTIONS_RUNTIME_TOKEN; BuildKit only
//! decodes the token (a JWT with `ac`, `exp`, `nbf` claims) without checking
//! its signature, so the test mints an unsigned one, as GitHub's would look.
//!
//! amd64, then arm64, then amd64 again, each from a pruned builder so only
//! the gha cache can supply CACHED steps: with mbx's per-platform scopes the
//! third build is fully cached; with one scope shared by both platforms (the
//! common recipe, run with buildx itself) the arm64 export replaced amd64's
//! and the third build runs; the same recipe given to mbx as
//! `--cache-from/--cache-to type=gha,scope=…` is made per platform and survives.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

struct Builder(String);

impl Drop for Builder {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["buildx", "rm", &self.0])
            .output();
    }
}

fn steps(record: &Path) -> (u64, u64) {
    let r = read_json(record);
    let p = &r["platforms"][0];
    (
        p["steps_cached"].as_u64().unwrap(),
        p["steps_total"].as_u64().unwrap(),
    )
}

#[test]
fn per_platform_gha_scopes_survive_where_one_shared_scope_loses() {
    require_chain();
    let id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    // A builder of its own: the test prunes it between builds.
    let builder = Builder(format!("mbx-test-gha-{}", std::process::id()));
    let mut c = mbx();
    c.args(["setup", "--builder", &builder.0]);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));

    let repo = tempfile::tempdir().unwrap();
    let ctx = repo.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:5000/mbx/busybox:latest\nARG TARGETARCH\nRUN echo \"{id} $TARGETARCH\" > /id\nRUN sha256sum /bin/busybox /id > /sums\n"
        ),
    )
    .unwrap();
    let out = repo.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let build = |name: &str, platform: &str, cache: &str| {
        format!(
            "      - name: {name}\n        run: |\n          \"$MBX\" ci --builder \"$BUILDER\" --platforms {platform} --context \"$CTX\" --output \"$OUT/{name}-layout\" --json \"$OUT/{name}.json\" {cache}\n          docker buildx prune --builder \"$BUILDER\" --all --force >/dev/null\n"
        )
    };
    let raw = |name: &str, platform: &str| {
        format!(
            "      - name: {name}\n        run: |\n          docker buildx build --builder \"$BUILDER\" --platform {platform} --progress=plain --cache-from type=gha,scope=raw-$ID --cache-to type=gha,scope=raw-$ID,mode=max \"$CTX\" >\"$OUT/{name}.log\" 2>&1\n          docker buildx prune --builder \"$BUILDER\" --all --force >/dev/null\n"
        )
    };
    let own = "--cache gha --cache-scope-prefix own-$ID";
    let shared = "--cache none --cache-from type=gha,scope=shared-$ID --cache-to type=gha,scope=shared-$ID,mode=max";
    let mut workflow =
        String::from("on: push\njobs:\n  gha:\n    runs-on: ubuntu-latest\n    steps:\n");
    workflow.push_str("      - run: echo \"cache server at $ACTIONS_CACHE_URL\"\n");
    workflow.push_str(&build("own-amd64-1", "linux/amd64", own));
    workflow.push_str(&build("own-arm64", "linux/arm64", own));
    workflow.push_str(&build("own-amd64-2", "linux/amd64", own));
    workflow.push_str(&build("shared-amd64-1", "linux/amd64", shared));
    workflow.push_str(&build("shared-arm64", "linux/arm64", shared));
    workflow.push_str(&build("shared-amd64-2", "linux/amd64", shared));
    workflow.push_str(&raw("raw-amd64-1", "linux/amd64"));
    workflow.push_str(&raw("raw-arm64", "linux/arm64"));
    workflow.push_str(&raw("raw-amd64-2", "linux/amd64"));
    std::fs::create_dir_all(repo.path().join(".github/workflows")).unwrap();
    std::fs::write(repo.path().join(".github/workflows/gha.yml"), workflow).unwrap();
    assert!(Command::new("git")
        .args(["init", "-q"])
        .current_dir(repo.path())
        .status()
        .unwrap()
        .success());

    let config = chain_dir().join("mbx.toml");
    let env = |k: &str, v: &str| format!("{k}={v}");
    let o = Command::new("act")
        .current_dir(repo.path())
        .env("ACT_DISABLE_VERSION_CHECK", "1")
        .args([
            "-P",
            "ubuntu-latest=-self-hosted",
            "--cache-server-addr",
            "127.0.0.1",
            "--cache-server-path",
        ])
        .arg(repo.path().join("actcache"))
        .args(["-W", ".github/workflows/gha.yml"])
        .args(["--env", &env("MBX", env!("CARGO_BIN_EXE_mbx"))])
        .args(["--env", &env("BUILDER", &builder.0)])
        .args(["--env", &env("CTX", &ctx.display().to_string())])
        .args(["--env", &env("OUT", &out.display().to_string())])
        .args(["--env", &env("ID", &id)])
        .args(["--env", &env("MBX_CONFIG", &config.display().to_string())])
        .args([
            "--env",
            &env("ACTIONS_RUNTIME_TOKEN", &unsigned_runtime_jwt()),
        ])
        .output()
        .expect("act is installed by scripts/chain-up");
    let log = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    eprintln!("{log}");
    assert!(o.status.success(), "the act job failed");
    assert!(
        log.contains("cache server at http://127.0.0.1:"),
        "act's cache server is on loopback"
    );

    // Per-platform scopes: the second amd64 build comes whole from the gha cache.
    let (first_cached, total) = steps(&out.join("own-amd64-1.json"));
    assert_eq!(
        (first_cached, total),
        (0, 2),
        "the first build ran its two RUN steps"
    );
    let (cached, total) = steps(&out.join("own-amd64-2.json"));
    assert_eq!(
        cached, total,
        "per-platform scope: every step cached after the arm64 build"
    );
    let r = read_json(&out.join("own-arm64.json"));
    assert_eq!(
        r["platforms"][0]["cache_scope"],
        format!("own-{id}-linux-arm64")
    );

    // The shared recipe given to mbx: made per platform, so it survives too.
    let (cached, total) = steps(&out.join("shared-amd64-2.json"));
    assert_eq!(
        (cached, total),
        (2, 2),
        "scope=shared is per platform under mbx"
    );
    let r = read_json(&out.join("shared-arm64.json"));
    assert_eq!(
        r["platforms"][0]["cache_scope"],
        format!("shared-{id}-linux-arm64")
    );

    // One scope shared with buildx itself: arm64's export replaced amd64's,
    // so amd64 rebuilds.
    let runs_cached = |name: &str| {
        let log = std::fs::read_to_string(out.join(format!("{name}.log"))).unwrap();
        let runs: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("] RUN "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let cached = runs
            .iter()
            .filter(|id| log.lines().any(|l| l == format!("{id} CACHED")))
            .count();
        (cached, runs.len())
    };
    assert_eq!(
        runs_cached("raw-amd64-1"),
        (0, 2),
        "the first raw build ran"
    );
    let (cached, total) = runs_cached("raw-amd64-2");
    assert_eq!(total, 2);
    assert!(
        cached < total,
        "a shared scope loses amd64's cache to arm64 ({cached}/{total} cached)"
    );
}
