//! Push credentials on the real chain (issue 15, case 7 and its leftovers):
//! `--username/--password-stdin` override the login of the one registry mbx
//! pushes to and leave every other registry's credentials (a `credsStore`,
//! other `credHelpers`) to the user's docker config; `mbx build --push`
//! checks them before building, as `mbx ci` does.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::*;

fn user() -> String {
    std::env::var("MBX_TEST_REGISTRY_USER").unwrap_or_else(|_| "mbx".into())
}

fn password() -> String {
    std::env::var("MBX_TEST_REGISTRY_PASSWORD").unwrap_or_else(|_| "mbx-secret".into())
}

/// The user's docker config directory (where buildx keeps the chain's builders).
fn user_docker_dir() -> PathBuf {
    std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".docker"))
}

/// Run `c` with `stdin` written to it; (output, how long it took).
fn run_with_stdin(mut c: Command, stdin: &str) -> (Output, std::time::Duration) {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = std::time::Instant::now();
    let mut child = c.spawn().expect("spawn mbx");
    {
        let mut input = child.stdin.take().unwrap();
        let _ = writeln!(input, "{stdin}");
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "--- {c:?} exited {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        started.elapsed(),
        stdout(&out),
        stderr(&out)
    );
    (out, started.elapsed())
}

/// The htpasswd registry under another name: to docker a registry of its
/// own, whose login is kept apart from 127.0.0.1:5001's (BuildKit talks
/// plain http to `localhost` as to the configured loopback registries).
/// The reference is there, read with the registry's login (skopeo fails the test otherwise).
fn pushed(reference: &str) {
    let creds = format!("{}:{}", user(), password());
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        reference,
    ]);
}

const OTHER_AUTH_REGISTRY: &str = "localhost:5001";

/// A docker config whose `credsStore` is a credential store holding the
/// localhost:5001 login (and none for 127.0.0.1:5001) (the user's store: a stand-in script, as a keychain or
/// `pass` cannot run here), with the chain's builders linked in. Returns
/// the config dir, the dir holding the store's program (for PATH) and the
/// file the store logs each `get` to.
fn config_with_store(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let config = root.join("docker");
    let bin = root.join("bin");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(user_docker_dir().join("buildx"), config.join("buildx")).unwrap();
    std::fs::write(
        config.join("config.json"),
        r#"{"auths": {"localhost:5001": {}}, "credsStore": "teststore"}"#,
    )
    .unwrap();
    let log = root.join("store.log");
    let script = format!(
        r#"#!/bin/sh
# The user's credential store (docker-credential-helpers protocol), holding one login.
case "$1" in
get)
  read -r server
  echo "get $server" >> '{log}'
  if [ "$server" = "{host}" ]; then
    printf '{{"ServerURL":"%s","Username":"%s","Secret":"%s"}}\n' "$server" '{user}' '{password}'
  else
    echo "credentials not found in native keychain"; exit 1
  fi ;;
list) echo '{{"{host}":"{user}"}}' ;;
*) echo "not in this test"; exit 1 ;;
esac
"#,
        log = log.display(),
        host = OTHER_AUTH_REGISTRY,
        user = user(),
        password = password(),
    );
    let helper = bin.join("docker-credential-teststore");
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (config, bin, log)
}

/// The chain's busybox, copied into the htpasswd registry under hcreds/,
/// named through localhost:5001.
fn private_base_image() -> String {
    let image = format!("{OTHER_AUTH_REGISTRY}/hcreds/busybox:latest");
    let creds = format!("{}:{}", user(), password());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &format!("docker://{REGISTRY}/mbx/busybox:latest"),
        &format!("docker://{image}"),
    ]);
    image
}

/// A login for the registry pushed to (`--username/--password-stdin`, for
/// 127.0.0.1:5001) and a base image on another registry (localhost:5001)
/// whose login is only in the user's `credsStore`: the build pulls the base
/// with the store's credentials and pushes with the flags' (both registries
/// refuse anonymous access). Until issue 15's fix the store was dropped for
/// the whole run and the pull failed with 401.
#[test]
fn a_login_for_the_push_keeps_the_users_store_for_other_registries() {
    require_builder();
    let base = private_base_image();
    let root = tempfile::tempdir().unwrap();
    let (config, bin, log) = config_with_store(root.path());
    let tmp = root.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let ctx = context(format!("FROM {base}\nLABEL hcreds=store\n"));
    let repo = format!("{AUTH_REGISTRY}/hcreds/store-{}", std::process::id());
    let mut c = mbx();
    c.args(["ci", "--platforms", "linux/amd64", "--cache", "none"])
        .arg("--context")
        .arg(ctx.path())
        .args(["--image", &repo, "--push", "--username", &user()])
        .arg("--password-stdin")
        .env("DOCKER_CONFIG", &config)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("TMPDIR", &tmp)
        .env_remove("GITHUB_ACTIONS");
    let (out, _) = run_with_stdin(c, &password());
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains(&password()), "the secret is printed");
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        asked.contains(&format!("get {OTHER_AUTH_REGISTRY}")),
        "the store was asked for the base image's registry: {asked:?}"
    );
    assert!(
        !asked.contains(&format!("get {AUTH_REGISTRY}")),
        "the store was asked for the pushed registry: {asked:?}"
    );
    pushed(&format!("docker://{repo}:latest"));
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let user_config = std::fs::read_to_string(config.join("config.json")).unwrap();
    assert!(user_config.contains("teststore"), "the user's config kept");
}

/// `mbx build --push` (one runner's part) checks the push credentials
/// before building: a wrong password is exit 2 in seconds, nothing built
/// and no part written; none at all is exit 1 naming `docker login`; the
/// right one pushes the part by digest to the htpasswd registry, and `mbx
/// merge` with the same flags tags the index there. The password is never
/// printed. `mbx ci --mode part` checks them the same way.
#[test]
fn build_push_checks_and_uses_the_flags_credentials() {
    require_builder();
    let repo = format!("{AUTH_REGISTRY}/hcreds/part-{}", std::process::id());
    let root = tempfile::tempdir().unwrap();
    let hello = repo_root().join("examples/hello");
    let part = root.path().join("parts/part.json");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    let build = |login: bool| {
        let mut c = mbx();
        c.args(["build", "--platforms", "linux/amd64", "--cache", "none"])
            .arg("--context")
            .arg(&hello)
            .args(["--image", &repo, "--push", "--json"])
            .arg(&part)
            .env("TMPDIR", root.path())
            .env_remove("GITHUB_ACTIONS");
        if login {
            c.args(["--username", &user(), "--password-stdin"]);
        }
        c
    };
    let part_mode = {
        let mut c = mbx();
        c.args(["ci", "--mode", "part", "--platforms", "linux/amd64"])
            .args(["--cache", "none", "--context"])
            .arg(&hello)
            .args(["--image", &repo, "--push", "--username", &user()])
            .arg("--password-stdin")
            .env("TMPDIR", root.path())
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_OUTPUT");
        c
    };
    // (command, password on stdin, exit code, a fragment of the message)
    let refused = [
        (
            build(true),
            "not-the-password",
            2,
            "refuses the push credentials from --username/--password-stdin",
        ),
        (build(false), "", 1, "refuses an anonymous push"),
        (
            part_mode,
            "not-the-password",
            2,
            "refuses the push credentials from --username/--password-stdin",
        ),
    ];
    for (c, given, code, fragment) in refused {
        let (out, took) = run_with_stdin(c, given);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(fragment), "{err}");
        assert!(err.contains("nothing was built"), "{err}");
        assert!(
            err.contains(&format!("docker login {AUTH_REGISTRY}")),
            "{err}"
        );
        assert!(err.contains("--password-stdin"), "{err}");
        assert!(!err.contains("not-the-password"), "the secret is printed");
        assert!(!part.exists(), "a part was written");
        assert!(took.as_secs() < 15, "refused late: {took:?}");
    }
    let (out, _) = run_with_stdin(build(true), &password());
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains(&password()), "the secret is printed");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&part).unwrap()).unwrap();
    // The part's digest (the index's is the merge's business).
    let digest = record["platforms"][0]["build_digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no digest in the part: {record}"))
        .to_string();
    pushed(&format!("docker://{repo}@{digest}"));
    // `mbx merge` pushes the index with the flags' login too.
    let mut merge = mbx();
    merge
        .args(["merge", "--parts"])
        .arg(part.parent().unwrap())
        .args(["--tag", "v1", "--username", &user(), "--password-stdin"])
        .env("TMPDIR", root.path())
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY");
    let (out, _) = run_with_stdin(merge, &password());
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains(&password()), "the secret is printed");
    pushed(&format!("docker://{repo}:v1"));
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .filter(|e| !e.path().ends_with("parts"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
