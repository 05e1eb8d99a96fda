//! The gha cache on GitHub's cache service v2, through the stand-in in
//! `support::gha_v2` (GitHub's service cannot be reached from here):
//! - the stand-in itself, as the real clients use it;
//! - `mbx ci --cache gha` on the current lane (buildx ≥ 0.21, BuildKit ≥ 0.20,
//!   a builder of the test's own): per-platform scopes exported, then imported
//!   by a pruned builder with every step cached on both platforms;
//! - a failing service (503 on every call, 429 on every call) never fails the
//!   build and is reported, and a throttled one costs minutes, not 20.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use support::gha_v2::{rpc, CacheV2, Fault, Rpc};
use support::*;

const TOKEN: &str = "stand-in-token";
const VERSION: &str = "f3a1c0ffee";

// ------------------------------------------------------------------ the stand-in

fn create(c: &CacheV2, key: &str) -> String {
    let (code, r) = rpc(
        &c.url,
        "CreateCacheEntry",
        Some(TOKEN),
        json!({"key": key, "version": VERSION}),
    );
    assert_eq!((code, &r["ok"]), (200, &json!(true)), "{r}");
    r["signed_upload_url"].as_str().unwrap().to_string()
}

fn put(url: &str, data: &[u8]) {
    let (code, h, _) = gha_v2::request(url, "PUT", &[("x-ms-blob-type", "BlockBlob")], data);
    assert_eq!(code, 201);
    assert!(h.iter().any(|(k, _)| k == "x-ms-request-id"), "{h:?}");
}

fn finalize(c: &CacheV2, key: &str, size: u64) -> serde_json::Value {
    let (code, r) = rpc(
        &c.url,
        "FinalizeCacheEntryUpload",
        Some(TOKEN),
        json!({"key": key, "size_bytes": size, "version": VERSION}),
    );
    assert_eq!(code, 200, "{r}");
    r
}

fn lookup(c: &CacheV2, key: &str, restore: &[&str]) -> serde_json::Value {
    let (code, r) = rpc(
        &c.url,
        "GetCacheEntryDownloadURL",
        Some(TOKEN),
        json!({"key": key, "restore_keys": restore, "version": VERSION}),
    );
    assert_eq!(code, 200, "{r}");
    r
}

use support::gha_v2;

#[test]
fn stand_in_round_trips_an_entry_and_matches_restore_keys_by_prefix() {
    let c = CacheV2::start(TOKEN);
    assert_eq!(
        lookup(&c, "index-app-1-abcd#", &["index-app-1-abcd#"])["ok"],
        false
    );
    for (n, data) in [(1, &b"first"[..]), (2, &b"second, newer"[..])] {
        let key = format!("index-app-1-abcd#{n}");
        let url = create(&c, &key);
        put(&url, data);
        let f = finalize(&c, &key, data.len() as u64);
        assert_eq!(f["ok"], true);
        assert!(f["entry_id"].is_string(), "entry_id is a JSON string: {f}");
    }
    // The exact key wins; a restore key matches by prefix, newest first.
    let exact = lookup(&c, "index-app-1-abcd#1", &["index-app-1-abcd#"]);
    assert_eq!(exact["matched_key"], "index-app-1-abcd#1");
    let newest = lookup(&c, "index-app-1-abcd#", &["index-app-1-abcd#"]);
    assert_eq!(newest["matched_key"], "index-app-1-abcd#2");
    let url = newest["signed_download_url"].as_str().unwrap();
    let (code, _, body) = gha_v2::request(url, "GET", &[], b"");
    assert_eq!((code, body.as_slice()), (200, &b"second, newer"[..]));
    let (code, h, body) = gha_v2::request(url, "GET", &[("x-ms-range", "bytes=8-")], b"");
    assert_eq!((code, body.as_slice()), (206, &b"newer"[..]));
    assert!(
        h.iter()
            .any(|(k, v)| k == "Content-Range" && v == "bytes 8-12/13"),
        "{h:?}"
    );
    // Another version is another entry.
    let (_, r) = rpc(
        &c.url,
        "GetCacheEntryDownloadURL",
        Some(TOKEN),
        json!({"key": "index-app-1-abcd#1", "restore_keys": [], "version": "other"}),
    );
    assert_eq!(r["ok"], false);
    // A second create of a key is the twirp error already_exists.
    let (code, r) = rpc(
        &c.url,
        "CreateCacheEntry",
        Some(TOKEN),
        json!({"key": "index-app-1-abcd#2", "version": VERSION}),
    );
    assert_eq!(
        (code, r["code"].as_str()),
        (409, Some("already_exists")),
        "{r}"
    );
    assert!(r["msg"].is_string());
}

#[test]
fn stand_in_commits_blocks_in_block_list_order_and_wants_a_bearer_token() {
    let c = CacheV2::start(TOKEN);
    let url = create(&c, "blob-big");
    for (id, data) in [("QUFB", &b"aaa"[..]), ("QkJC", &b"bb"[..])] {
        let (code, h, _) =
            gha_v2::request(&format!("{url}&comp=block&blockid={id}"), "PUT", &[], data);
        assert_eq!(code, 201);
        assert!(h.iter().any(|(k, _)| k == "x-ms-request-id"));
    }
    let list = r#"<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QkJC</Latest><Latest>QUFB</Latest></BlockList>"#;
    let (code, _, _) = gha_v2::request(
        &format!("{url}&comp=blocklist"),
        "PUT",
        &[],
        list.as_bytes(),
    );
    assert_eq!(code, 201);
    // Finalize with the wrong size fails; with the right one, the blob reads back.
    assert_eq!(finalize(&c, "blob-big", 4)["ok"], false);
    assert_eq!(finalize(&c, "blob-big", 5)["ok"], true);
    let r = lookup(&c, "blob-big", &[]);
    let (_, _, body) = gha_v2::request(r["signed_download_url"].as_str().unwrap(), "GET", &[], b"");
    assert_eq!(body, b"bbaaa");
    // No token, a wrong token, an unsigned blob URL.
    let (code, r) = rpc(
        &c.url,
        "GetCacheEntryDownloadURL",
        None,
        json!({"key": "k", "version": VERSION}),
    );
    assert_eq!((code, r["code"].as_str()), (401, Some("unauthenticated")));
    let (code, _) = rpc(
        &c.url,
        "GetCacheEntryDownloadURL",
        Some("x"),
        json!({"key": "k", "version": VERSION}),
    );
    assert_eq!(code, 401);
    let unsigned = url.split('?').next().unwrap();
    assert_eq!(gha_v2::request(unsigned, "GET", &[], b"").0, 403);
}

#[test]
fn stand_in_faults_per_rpc() {
    let c = CacheV2::start(TOKEN);
    c.fault(Rpc::Download, Some(Fault::Unavailable));
    let (code, r) = rpc(
        &c.url,
        "GetCacheEntryDownloadURL",
        Some(TOKEN),
        json!({"key": "k", "version": VERSION}),
    );
    assert_eq!((code, r["code"].as_str()), (503, Some("unavailable")));
    // Only that RPC: create still works.
    create(&c, "k");
    c.fault(Rpc::Create, Some(Fault::Full));
    let (code, r) = rpc(
        &c.url,
        "CreateCacheEntry",
        Some(TOKEN),
        json!({"key": "k2", "version": VERSION}),
    );
    assert_eq!(
        (code, &r["ok"]),
        (200, &json!(false)),
        "a full cache: ok false"
    );
    c.fault(Rpc::Create, Some(Fault::Throttled(7)));
    let endpoint = format!(
        "{}twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry",
        c.url
    );
    let (code, h, _) = gha_v2::request(
        &endpoint,
        "POST",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"{}",
    );
    assert_eq!(code, 429);
    assert!(
        h.iter().any(|(k, v)| k == "Retry-After" && v == "7"),
        "{h:?}"
    );
    c.fault(Rpc::Create, Some(Fault::Slow(Duration::from_millis(300))));
    let t = Instant::now();
    create(&c, "k3");
    assert!(t.elapsed() >= Duration::from_millis(300));
    c.fault(Rpc::Download, None);
    assert_eq!(
        lookup(&c, "k", &[])["ok"],
        false,
        "reserved, never finalized: a miss"
    );
    assert!(c
        .calls()
        .iter()
        .any(|call| call.status == 503 && call.what == "GetCacheEntryDownloadURL"));
}

// ------------------------------------------------------------------ mbx on the current lane

/// The chain tests share the machine's two cores: one at a time.
static CHAIN: Mutex<()> = Mutex::new(());

/// A lane's docker config (its buildx) and mbx config (its BuildKit image):
/// its own under `lanes/NAME` when it is not the machine's default lane, the
/// default's otherwise. Panics unless its buildx is on the side of 0.21
/// asked for (`v2`: ≥ 0.21, else < 0.21).
fn lane(name: &str, v2: bool) -> Vec<(&'static str, PathBuf)> {
    let dir = chain_dir().join("lanes").join(name);
    let env = if dir.join("docker").is_dir() {
        vec![
            ("DOCKER_CONFIG", dir.join("docker")),
            ("MBX_CONFIG", dir.join("mbx.toml")),
        ]
    } else {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
        vec![
            ("DOCKER_CONFIG", home.join(".docker")),
            ("MBX_CONFIG", chain_dir().join("mbx.toml")),
        ]
    };
    let mut c = Command::new("docker");
    c.args(["buildx", "version"]).envs(env.iter().cloned());
    let v = c
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let minor = v
        .split_whitespace()
        .find_map(|w| {
            let w = w.strip_prefix('v').unwrap_or(w).strip_prefix("0.")?;
            w.split(['.', '+', '-']).next()?.parse::<u32>().ok()
        })
        .unwrap_or(0);
    assert!(
        (minor >= 21) == v2,
        "the {name} lane's buildx is `{}`, expected {} 0.21: run `MBX_CHAIN_LANE={name} scripts/chain-up`",
        v.trim(),
        if v2 { ">=" } else { "<" }
    );
    env
}

/// The BuildKit image of a lane, from its mbx config (`:local` for the
/// machine's default lane, `:vX.Y` for the other one).
fn lane_buildkit_image(name: &str) -> String {
    let config = lane(name, name == "current")
        .into_iter()
        .find(|(k, _)| *k == "MBX_CONFIG")
        .map(|(_, p)| p)
        .expect("a lane names its mbx config");
    let text = std::fs::read_to_string(&config).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("buildkit-image = "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no buildkit-image in {}", config.display()))
}

/// buildx ≥ 0.21 and a BuildKit ≥ 0.20 image.
fn current_lane() -> Vec<(&'static str, PathBuf)> {
    lane("current", true)
}

struct Builder {
    name: String,
    env: Vec<(&'static str, PathBuf)>,
}

impl Builder {
    fn new(tag: &str) -> Builder {
        require_chain();
        hold_binfmt_shared();
        let b = Builder {
            name: format!("mbx-ghav2-{tag}-{}", std::process::id()),
            env: current_lane(),
        };
        let o = run(b.mbx(&["setup", "--builder", &b.name]));
        assert!(o.status.success(), "mbx setup: {}", stderr(&o));
        b
    }

    fn mbx(&self, args: &[&str]) -> Command {
        let mut c = mbx();
        c.envs(self.env.iter().cloned()).args(args);
        c
    }

    fn prune(&self) {
        let o = Command::new("docker")
            .envs(self.env.iter().cloned())
            .args(["buildx", "prune", "-af", "--builder", &self.name])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .envs(self.env.iter().cloned())
            .args(["buildx", "rm", &self.name])
            .output();
    }
}

fn hello() -> String {
    repo_root().join("examples/hello").display().to_string()
}

/// `mbx ci --cache gha` of examples/hello for linux/amd64 + linux/arm64,
/// pushed to `repo`, against `cache` as GitHub's v2 service. Returns the
/// run record, the process output and the wall time.
fn ci_gha(
    b: &Builder,
    cache: &CacheV2,
    repo: &str,
    dir: &Path,
    name: &str,
) -> (serde_json::Value, std::process::Output, Duration) {
    let record = dir.join(format!("{name}.json"));
    let summary = dir.join(format!("{name}.md"));
    std::fs::write(&summary, "").unwrap();
    let mut c = b.mbx(&["ci", "--local", "--builder", &b.name]);
    c.args([
        "--platforms",
        "linux/amd64,linux/arm64",
        "--context",
        &hello(),
    ])
    .args(["--image", repo, "--push", "--tag", name, "--cache", "gha"])
    .args(["--cache-scope-prefix", "hello"])
    .arg("--json")
    .arg(&record)
    .env("ACTIONS_RESULTS_URL", &cache.url)
    .env("ACTIONS_CACHE_SERVICE_V2", "true")
    .env("ACTIONS_RUNTIME_TOKEN", unsigned_runtime_jwt())
    .env_remove("ACTIONS_CACHE_URL")
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_STEP_SUMMARY", &summary);
    let t = Instant::now();
    let o = run(c);
    let wall = t.elapsed();
    let rec = if record.is_file() {
        read_json(&record)
    } else {
        serde_json::Value::Null
    };
    (rec, o, wall)
}

fn platform<'a>(rec: &'a serde_json::Value, p: &str) -> &'a serde_json::Value {
    rec["platforms"]
        .as_array()
        .expect("platforms in the record")
        .iter()
        .find(|x| x["platform"] == p)
        .unwrap_or_else(|| panic!("{p} in the record: {rec}"))
}

/// Seconds BuildKit spent in the vertices whose name starts with `name`.
fn vertex_seconds(platform: &serde_json::Value, name: &str) -> f64 {
    platform["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .filter_map(|s| s["busy_seconds"].as_f64())
        .sum()
}

fn the_stand_in() -> CacheV2 {
    // The runtime token BuildKit sends is the unsigned JWT the test hands it.
    CacheV2::start_any_bearer()
}

#[test]
fn v2_round_trip_per_platform_scopes_from_a_pruned_builder() {
    let _one = CHAIN.lock().unwrap_or_else(|e| e.into_inner());
    let b = Builder::new("rt");
    let cache = the_stand_in();
    let repo = unique_repo("ghav2");
    let dir = tempfile::tempdir().unwrap();

    let (cold, o, t_cold) = ci_gha(&b, &cache, &repo, dir.path(), "cold");
    assert!(o.status.success(), "the cold run: {}", stderr(&o));
    let keys = cache.keys();
    for p in ["linux-amd64", "linux-arm64"] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("index-hello-{p}-1-")) && k.contains('#')),
            "an index for hello-{p} in the v2 service: {keys:?}"
        );
        let r = platform(&cold, &p.replace('-', "/"));
        assert!(
            r.get("cache_error").is_none(),
            "no cache error on a healthy service: {r}"
        );
    }
    eprintln!(
        "cold run {:.1}s, {} bytes in the stand-in",
        t_cold.as_secs_f64(),
        cache.stored_bytes()
    );

    b.prune();
    let (warm, o, t_warm) = ci_gha(&b, &cache, &repo, dir.path(), "warm");
    assert!(o.status.success(), "the warm run: {}", stderr(&o));
    for p in ["linux/amd64", "linux/arm64"] {
        let r = platform(&warm, p);
        let (cached, total) = (
            r["steps_cached"].as_u64().unwrap(),
            r["steps_total"].as_u64().unwrap(),
        );
        assert!(total >= 3, "{p}: {r}");
        assert_eq!(
            cached, total,
            "{p}: every step from the v2 cache after a prune"
        );
        eprintln!(
            "{p}: cold build {:.1}s (gha export {:.1}s), warm build {:.1}s (gha import {:.1}s)",
            platform(&cold, p)["wall_seconds"].as_f64().unwrap(),
            vertex_seconds(platform(&cold, p), "exporting to GitHub Actions Cache"),
            r["wall_seconds"].as_f64().unwrap(),
            vertex_seconds(r, "importing cache manifest from gha:")
        );
    }
    eprintln!("warm run {:.1}s", t_warm.as_secs_f64());
    assert!(
        cache
            .calls()
            .iter()
            .any(|c| c.what == "GetCacheEntryDownloadURL" && c.status == 200),
        "BuildKit looked its cache up through the v2 RPC"
    );
}

/// The record, the terminal report and one warning annotation name a failed
/// cache and its cause.
fn assert_reported(rec: &serde_json::Value, o: &std::process::Output, cause: &str) {
    for p in ["linux/amd64", "linux/arm64"] {
        let r = platform(rec, p);
        assert!(r["error"].is_null(), "{p} built: {r}");
        let issue = &r["cache_error"];
        assert_eq!(issue["cause"], cause, "{p}: {r}");
        assert!(
            issue["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{p}: {r}"
        );
    }
    let out = stdout(o) + &stderr(o);
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("::warning title=mbx%3A cache"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning annotation for the cache: {warnings:?}"
    );
    assert!(
        out.contains("gha cache"),
        "the report names the failed cache:\n{out}"
    );
}

/// The job summary says it too, right under the platform table.
fn assert_in_summary(dir: &Path, name: &str, cause: &str) {
    let md = std::fs::read_to_string(dir.join(format!("{name}.md"))).unwrap();
    let warning = md
        .split("> [!WARNING]\n> ")
        .nth(1)
        .unwrap_or_else(|| panic!("a warning in the job summary:\n{md}"));
    assert!(
        warning.starts_with("gha cache ") && warning.contains(cause),
        "{md}"
    );
}

#[test]
fn a_failing_v2_service_never_fails_the_build_and_is_reported() {
    let _one = CHAIN.lock().unwrap_or_else(|e| e.into_inner());
    let b = Builder::new("fault");
    let dir = tempfile::tempdir().unwrap();

    // 503 on every call: pushed and verified, and said.
    let cache = the_stand_in();
    cache.fault_all(Fault::Unavailable);
    let repo = unique_repo("ghav2-503");
    let (rec, o, t) = ci_gha(&b, &cache, &repo, dir.path(), "unavailable");
    assert!(
        o.status.success(),
        "a 503 cache service must not fail the build: {}",
        stderr(&o)
    );
    assert!(tag_exists(&format!("{repo}:unavailable")));
    assert_eq!(rec["verified"], true);
    assert_reported(&rec, &o, "unavailable");
    assert_in_summary(dir.path(), "unavailable", "(5xx)");
    eprintln!("503 on every call: {:.1}s", t.as_secs_f64());

    // A full repository cache: CreateCacheEntry answers ok: false.
    b.prune();
    let cache = the_stand_in();
    cache.fault(Rpc::Create, Some(Fault::Full));
    let repo = unique_repo("ghav2-full");
    let (rec, o, _) = ci_gha(&b, &cache, &repo, dir.path(), "full");
    assert!(
        o.status.success(),
        "a full cache must not fail the build: {}",
        stderr(&o)
    );
    for p in ["linux/amd64", "linux/arm64"] {
        let issue = &platform(&rec, p)["cache_error"];
        assert_eq!(issue["cause"], "full", "{p}: {issue}");
        assert_eq!(
            issue["failed"],
            json!(["export"]),
            "{p}: the import found nothing, no failure"
        );
    }
    assert!(
        (stdout(&o) + &stderr(&o)).contains("mbx cache prune"),
        "the fix is named"
    );

    // 429 on every call: bounded by mbx's gha timeout, minutes at most.
    b.prune();
    let cache = the_stand_in();
    cache.fault_all(Fault::Throttled(60));
    let repo = unique_repo("ghav2-429");
    let (rec, o, t) = ci_gha(&b, &cache, &repo, dir.path(), "throttled");
    assert!(
        o.status.success(),
        "a throttled cache service must not fail the build: {}",
        stderr(&o)
    );
    assert_reported(&rec, &o, "throttled");
    assert_in_summary(dir.path(), "throttled", "(429)");
    eprintln!("429 on every call: {:.1}s", t.as_secs_f64());
    assert!(
        t < Duration::from_secs(5 * 60),
        "a throttled cache costs minutes at most, not BuildKit's 2 x 10: {t:?}"
    );
}

// ------------------------------------------------------------------ preflight, for real

/// `mbx ci --cache gha` in a v2 environment whose cache service is never
/// reached (preflight stops the run first).
fn ci_v2_env(c: &mut Command, builder: &str, out: &Path) {
    c.args(["ci", "--local", "--builder", builder])
        .args(["--platforms", "linux/amd64", "--context", &hello()])
        .arg("--output")
        .arg(out)
        .args(["--cache", "gha"])
        .env("ACTIONS_RESULTS_URL", "http://127.0.0.1:9/")
        .env("ACTIONS_CACHE_SERVICE_V2", "true")
        .env("ACTIONS_RUNTIME_TOKEN", unsigned_runtime_jwt())
        .env_remove("ACTIONS_CACHE_URL");
}

#[test]
fn v2_preflight_names_an_old_buildx_or_buildkit_and_the_fix() {
    require_chain();
    let out = tempfile::tempdir().unwrap();

    // The compatibility lane's buildx 0.13 with ci-builder: refused before
    // the builder is touched or anything is built.
    let mut c = mbx();
    c.envs(lane("compat", false));
    ci_v2_env(&mut c, "ci-builder", &out.path().join("a"));
    let o = run(c);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("buildx ≥ 0.21.0") && e.contains("0.13."), "{e}");
    assert!(e.contains("upgrade buildx"), "the fix: {e}");
    assert!(!e.contains("building linux/amd64"), "nothing built: {e}");

    // A current buildx driving BuildKit 0.13 (the compatibility lane's
    // image) in a builder of the test's own: refused after setup, unbuilt.
    let _one = CHAIN.lock().unwrap_or_else(|e| e.into_inner());
    hold_binfmt_shared();
    let b = Builder {
        name: format!("mbx-ghav2-oldbk-{}", std::process::id()),
        env: current_lane(),
    };
    let mut c = b.mbx(&[]);
    ci_v2_env(&mut c, &b.name, &out.path().join("b"));
    c.args(["--buildkit-image", &lane_buildkit_image("compat")]);
    let o = run(c);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("BuildKit ≥ 0.20.0") && e.contains("0.13."),
        "{e}"
    );
    assert!(e.contains("--buildkit-image"), "the fix: {e}");
    assert!(!e.contains("building linux/amd64"), "nothing built: {e}");
}
