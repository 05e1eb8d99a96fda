//! The one-line swap for docker/build-push-action@v6, end to end: act runs
//! tests/fixtures/swap/workflow.yml — shaped like public workflows that use
//! build-push-action (metadata-action tags, labels and annotations for two
//! registries, a login per registry, file/target/build-args in a
//! subdirectory, gha cache with a scope, secrets, an ssh agent) with only the
//! `uses:` line changed — on the real chain, and the test reads back what it
//! left in both registries (127.0.0.1:5000 open, 127.0.0.1:5001 htpasswd).
//!
//! Stand-ins, and why (as in tests/action.rs):
//! - `org/mbx-action@v1` and its pinned runtime step are this tree, mapped by
//!   `act --local-repository`; the binary is `mbx-binary` (no release here).
//! - docker/metadata-action, docker/login-action and webfactory/ssh-agent
//!   cannot be fetched: steps in the workflow do what they do.
//! - The gha cache service: tests/support/gha_v2.rs on the current lane (as
//!   GitHub serves it), act's own v1 server on the compat lane.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;
use support::*;

fn fixture() -> PathBuf {
    repo_root().join("tests/fixtures/swap")
}

/// The `with:` keys of the steps that use the action.
fn with_keys(workflow: &str) -> Vec<String> {
    let wf: serde_yaml::Value = serde_yaml::from_str(workflow).unwrap();
    let mut keys = Vec::new();
    for job in wf["jobs"].as_mapping().unwrap().values() {
        for step in job["steps"].as_sequence().unwrap() {
            let uses = step["uses"].as_str().unwrap_or_default();
            if uses.starts_with(&format!("{ACTION}@")) {
                for k in step["with"].as_mapping().unwrap().keys() {
                    keys.push(k.as_str().unwrap().to_string());
                }
            }
        }
    }
    keys
}

/// The inputs action.yml declares.
fn declared_inputs() -> Vec<String> {
    let yml = std::fs::read_to_string(repo_root().join("action.yml")).unwrap();
    let y: serde_yaml::Value = serde_yaml::from_str(&yml).unwrap();
    y["inputs"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// The runner only warns about an input an action does not declare and the
/// step goes green without it: every `with:` key of the swap workflow is an
/// input of action.yml, and each but `mbx-binary` one of build-push-action's.
#[test]
fn the_workflow_uses_no_input_the_action_does_not_declare() {
    let wf = std::fs::read_to_string(fixture().join("workflow.yml")).unwrap();
    let keys = with_keys(&wf);
    assert!(keys.len() > 20, "{keys:?}");
    let declared = declared_inputs();
    for k in &keys {
        assert!(declared.contains(k), "`{k}` is an input of action.yml");
        assert!(
            k == "mbx-binary" || BUILD_PUSH_ACTION_V6.contains(&k.as_str()),
            "`{k}` is an input of docker/build-push-action@v6: the workflow is theirs"
        );
    }
    // And the check bites: an input action.yml lacks is caught.
    let odd = wf.replace(
        "          pull: true\n",
        "          pull: true\n          sbom-mode: max\n",
    );
    assert!(with_keys(&odd).iter().any(|k| !declared.contains(k)));
    // Only the `uses:` line differs from the build-push-action workflow.
    let uses: Vec<&str> = wf
        .lines()
        .filter(|l| l.contains(&format!("uses: {ACTION}@")))
        .collect();
    assert_eq!(uses.len(), 1);
    assert!(
        uses[0].contains("# was: docker/build-push-action@v6"),
        "{}",
        uses[0]
    );
}

/// A git repository holding the app and the workflow.
fn fixture_repo(dir: &Path) -> PathBuf {
    let r = dir.join("repo");
    copy_dir(&fixture().join("app"), &r.join("app"));
    std::fs::create_dir_all(r.join(".github/workflows")).unwrap();
    std::fs::copy(
        fixture().join("workflow.yml"),
        r.join(".github/workflows/docker.yml"),
    )
    .unwrap();
    git_commit_all(&r);
    r
}

/// The htpasswd registry's user and password (scripts/chain-up writes them).
fn auth_registry_credentials() -> (String, String) {
    let env = std::fs::read_to_string(chain_dir().join("registry-auth.env"))
        .expect("scripts/chain-up writes registry-auth.env");
    let var = |k: &str| {
        env.lines()
            .find_map(|l| {
                l.trim_start_matches("export ")
                    .strip_prefix(&format!("{k}="))
            })
            .unwrap_or_else(|| panic!("{k} in registry-auth.env"))
            .trim_matches('"')
            .to_string()
    };
    (
        var("MBX_TEST_REGISTRY_USER"),
        var("MBX_TEST_REGISTRY_PASSWORD"),
    )
}

/// Removes the test's builder (made under its own DOCKER_CONFIG) when dropped.
struct BuilderGuard {
    name: String,
    docker_config: PathBuf,
}

impl Drop for BuilderGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["buildx", "rm", "--force", &self.name])
            .env("DOCKER_CONFIG", &self.docker_config)
            .output();
    }
}

fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn a_build_push_action_workflow_runs_unchanged_but_for_the_uses_line() {
    require_chain();
    let d = tempfile::tempdir().unwrap();
    let repo = fixture_repo(d.path());
    let action = action_copy(d.path());
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The job's own docker config, as a runner's: docker login writes it.
    let docker_config = d.path().join("docker");
    std::fs::create_dir_all(&docker_config).unwrap();
    // The lane's buildx plugin (the compat lane names it in its config.json).
    if let Some(lane) = std::env::var_os("DOCKER_CONFIG") {
        let lane = PathBuf::from(lane).join("config.json");
        if lane.is_file() {
            std::fs::copy(&lane, docker_config.join("config.json")).unwrap();
        }
    }
    let (user, password) = auth_registry_credentials();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let path = format!("inp/swap-{}-{t}", std::process::id());
    let (image_a, image_b) = (
        format!("{REGISTRY}/{path}"),
        format!("{AUTH_REGISTRY}/{path}"),
    );
    let builder = BuilderGuard {
        name: format!("inp-swap-{}", std::process::id()),
        docker_config: docker_config.clone(),
    };
    let token = unsigned_runtime_jwt();
    let v2 = (std::env::var("MBX_CHAIN_LANE").as_deref() != Ok("compat"))
        .then(|| support::gha_v2::CacheV2::start(&token));
    let mut env = vec![
        ("MBX_TEST_OUT", out.display().to_string()),
        ("MBX_TEST_IMAGE_A", image_a.clone()),
        ("MBX_TEST_IMAGE_B", image_b.clone()),
        ("MBX_TEST_REPO_A", path.clone()),
        ("MBX_TEST_BUILDER", builder.name.clone()),
        ("MBX_TEST_BINARY", env!("CARGO_BIN_EXE_mbx").to_string()),
        ("MBX_TEST_REGISTRY_USER", user.clone()),
        ("DOCKER_CONFIG", docker_config.display().to_string()),
        ("ACTIONS_RUNTIME_TOKEN", token.clone()),
        (
            "MBX_CONFIG",
            std::env::var("MBX_CONFIG")
                .unwrap_or_else(|_| chain_dir().join("mbx.toml").display().to_string()),
        ),
        ("NO_COLOR", "1".into()),
    ];
    if let Some(service) = &v2 {
        env.push(("ACTIONS_RESULTS_URL", service.url.clone()));
        env.push(("ACTIONS_CACHE_SERVICE_V2", "true".to_string()));
    }
    let (git_token, npm_token) = ("ghp_swaptestgittoken", "npm_swaptestnpmtoken");
    let pin = runtime_pin();
    let mut c = Command::new("timeout");
    c.args(["900", "act", "push", "-P", "ubuntu-latest=-self-hosted"])
        .args(["--cache-server-addr", "127.0.0.1", "--cache-server-path"])
        .arg(d.path().join("act-cache"))
        .arg("--local-repository")
        .arg(format!("{ACTION}@v1={}", action.display()))
        .arg("--local-repository")
        .arg(format!("{ACTION}@{pin}={}", action.display()))
        .args(["-s", &format!("REGISTRY_PASSWORD={password}")])
        .args(["-s", &format!("GIT_AUTH_TOKEN={git_token}")])
        .args(["-s", &format!("NPM_TOKEN={npm_token}")])
        .current_dir(&repo)
        .env("ACT_DISABLE_VERSION_CHECK", "1");
    for (k, v) in &env {
        c.arg("--env").arg(format!("{k}={v}"));
    }
    let (o, log) = act_output(&mut c);
    assert!(o.status.success(), "act failed:\n{log}");
    for secret in [git_token, npm_token, password.as_str()] {
        assert!(!log.contains(secret), "a secret is in the log");
    }
    // The Dockerfile's RUN steps checked target, build-contexts, add-hosts,
    // shm-size, ulimit, network, secrets, secret-files, secret-envs and ssh
    // inside the build (each fails the build when its input is not honoured).
    assert!(
        log.contains("cache-from/cache-to made per platform")
            && log.contains("swap → swap-<os>-<arch>"),
        "mbx says it made the gha scope per platform:\n{log}"
    );

    // Every tag in every repository: the same index.
    let skopeo_raw = |r: &str| {
        let creds = format!("{user}:{password}");
        let mut a = vec!["inspect", "--raw", "--tls-verify=false"];
        if r.starts_with(AUTH_REGISTRY) {
            a.extend(["--creds", &creds]);
        }
        let r = format!("docker://{r}");
        a.push(&r);
        skopeo(&a)
    };
    let raw = skopeo_raw(&format!("{image_a}:1.2.3"));
    for r in [
        format!("{image_a}:latest"),
        format!("{image_b}:1.2.3"),
        format!("{image_b}:latest"),
    ] {
        assert_eq!(skopeo_raw(&r), raw, "{r} is the same index");
    }
    let digest = format!("sha256:{}", sha256_hex(raw.as_bytes()));

    // The outputs, as later steps use them.
    assert_eq!(read(&out.join("digest")), digest, "digest output");
    assert_eq!(
        read(&out.join("imageid")),
        digest,
        "imageid: the index's ID"
    );
    assert_eq!(
        read(&out.join("metadata-digest")),
        digest,
        "fromJSON(metadata)"
    );
    assert_eq!(
        read(&out.join("by-digest.json")),
        raw,
        "pulled by the digest output"
    );
    let metadata = read_json(&out.join("metadata.json"));
    assert_eq!(
        metadata["containerimage.descriptor"]["digest"],
        digest.as_str()
    );
    assert_eq!(metadata["containerimage.descriptor"]["size"], raw.len());
    assert_eq!(
        metadata["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let names = metadata["image.name"].as_str().unwrap();
    for t in ["1.2.3", "latest"] {
        assert!(
            names.contains(&format!("{image_a}:{t}")) && names.contains(&format!("{image_b}:{t}")),
            "{names}"
        );
    }
    assert!(
        metadata["buildx.build.ref"]
            .as_str()
            .is_some_and(|r| r.starts_with(&builder.name)),
        "{metadata}"
    );
    assert_eq!(
        metadata["mbx"]["platforms"].as_array().unwrap().len(),
        2,
        "{metadata}"
    );

    // Annotations on the index, on each manifest; attests (provenance) attached.
    let index = json(&raw);
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"], "1.2.3",
        "{index}"
    );
    assert_eq!(
        index["annotations"]["org.opencontainers.image.description"],
        "a one-line swap"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let images: Vec<&serde_json::Value> = manifests
        .iter()
        .filter(|m| m["platform"]["os"] == "linux")
        .collect();
    assert_eq!(images.len(), 2, "{index}");
    assert!(
        manifests
            .iter()
            .any(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"),
        "attests: the provenance attestation is in the index: {index}"
    );
    for m in images {
        let d = m["digest"].as_str().unwrap();
        for repo in [&image_a, &image_b] {
            let manifest = json(&skopeo_raw(&format!("{repo}@{d}")));
            assert_eq!(
                manifest["annotations"]["org.opencontainers.image.version"], "1.2.3",
                "manifest annotation in {repo}: {manifest}"
            );
        }
        // Labels and build args in the image config.
        let config = json(&skopeo(&[
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image_a}@{d}"),
        ]));
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["org.opencontainers.image.title"], "swap", "{config}");
        assert_eq!(labels["org.opencontainers.image.licenses"], "MIT");
        assert_eq!(
            labels["org.example.built-with-version"], "1.2.3",
            "build-args"
        );
        let env: Vec<&str> = config["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(env.contains(&"APP_VERSION=1.2.3"), "{env:?}");
    }

    // The gha cache: one scope per platform, from the user's `scope=swap`.
    if let Some(service) = &v2 {
        let keys = service.keys();
        for arch in ["amd64", "arm64"] {
            assert!(
                keys.iter()
                    .any(|k| k.contains(&format!("swap-linux-{arch}"))),
                "the {arch} scope was exported: {keys:?}"
            );
        }
        assert!(
            !keys
                .iter()
                .any(|k| k.contains("-swap-1-") || k.ends_with("-swap")),
            "no shared scope: {keys:?}"
        );
    }
}
