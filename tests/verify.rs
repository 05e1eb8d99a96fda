//! `mbx verify` against the real loopback registries: images really built by
//! buildx and pushed, some then altered through the registry API (an index
//! lying about a platform, a deleted child), and mbx's verdict on each.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use support::proxy::{Fault, Proxy, TokenAuth};
use support::*;

const BOTH: &str = "linux/amd64,linux/arm64";

/// Build examples/hello for both platforms and push it to `repo:latest`.
fn push_hello(repo: &str, extra: &[&str]) {
    let hello = repo_root().join("examples/hello");
    let mut c = mbx();
    c.args(["ci", "--local", "--cache", "none", "--context"])
        .arg(&hello)
        .args(["--image", repo, "--push"])
        .args(extra);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// One good two-platform image with attestations, shared by the tests.
fn good() -> &'static str {
    static GOOD: OnceLock<String> = OnceLock::new();
    GOOD.get_or_init(|| {
        require_builder();
        let repo = unique_repo("verify-good");
        push_hello(&repo, &[]);
        format!("{repo}:latest")
    })
}

fn verify(args: &[&str]) -> Output {
    let mut c = mbx();
    c.arg("verify").args(args);
    run(c)
}

fn verify_json(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut a = args.to_vec();
    a.push("--json");
    let o = verify(&a);
    (o.status.code(), json(&stdout(&o)))
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {v}"))
}

fn curl(args: &[&str]) -> String {
    let o = Command::new("curl")
        .args(["-fsS"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        o.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// PUT a manifest or index into the real registry.
fn put_manifest(repo: &str, tag: &str, media_type: &str, body: &str) {
    let path = repo.strip_prefix(&format!("{REGISTRY}/")).unwrap();
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), body).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {media_type}"),
        "--data-binary",
        &format!("@{}", f.path().display()),
        &format!("http://{REGISTRY}/v2/{path}/manifests/{tag}"),
    ]);
}

fn raw(reference: &str) -> serde_json::Value {
    json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]))
}

/// Copy every manifest of `src` to `dest` (same registry), so a test may alter its own copy.
fn copy_all(src: &str, dest: &str) {
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{src}"),
        &format!("docker://{dest}"),
    ]);
}

#[test]
fn a_good_index_with_attestations_passes_every_check() {
    let (code, v) = verify_json(&[good(), "--platforms", BOTH, "--check-binaries"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["verified"], true);
    for name in [
        "platform linux/amd64",
        "platform linux/arm64",
        "manifest linux/amd64",
        "manifest linux/arm64",
        "attestations",
    ] {
        assert_eq!(check(&v, name)["passed"], true, "{name}: {v}");
    }
    assert_eq!(
        check(&v, "binaries linux/arm64")["detail"],
        "1 ELF file(s), all AArch64"
    );
    assert_eq!(
        check(&v, "binaries linux/amd64")["detail"],
        "1 ELF file(s), all x86-64"
    );
    // The index digest is the one the registry serves for the tag.
    let digest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{}", good()),
    ]);
    assert_eq!(v["index_digest"], digest.trim());
    // arm64 ≡ arm64/v8 when asking.
    let (code, _) = verify_json(&[good(), "--platforms", "linux/amd64,linux/arm64/v8"]);
    assert_eq!(code, Some(0));
    // An extra platform is listed, fatal only with --exact.
    let (code, v) = verify_json(&[good(), "--platforms", "linux/amd64"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        check(&v, "extra platforms")["detail"],
        "linux/arm64 present, not required"
    );
    let (code, _) = verify_json(&[good(), "--platforms", "linux/amd64", "--exact"]);
    assert_eq!(code, Some(1));
}

#[test]
fn an_index_without_attestations_passes() {
    require_builder();
    let repo = unique_repo("verify-noprov");
    push_hello(&repo, &["--provenance", "false"]);
    let (code, v) = verify_json(&[&format!("{repo}:latest"), "--platforms", BOTH]);
    assert_eq!(code, Some(0), "{v}");
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != "attestations"));
    assert_eq!(
        raw(&format!("{repo}:latest"))["manifests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_single_platform_manifest_is_not_multi_platform() {
    let repo = unique_repo("verify-single");
    skopeo(&[
        "copy",
        "--override-arch",
        "amd64",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", good()),
        &format!("docker://{repo}:latest"),
    ]);
    let (code, v) = verify_json(&[&format!("{repo}:latest"), "--platforms", BOTH]);
    assert_eq!(code, Some(1));
    assert_eq!(
        check(&v, "index")["detail"],
        "not multi-platform: holds only linux/amd64"
    );
}

#[test]
fn an_arm64_entry_whose_config_says_amd64_fails() {
    let repo = unique_repo("verify-liar");
    copy_all(good(), &format!("{repo}:orig"));
    let mut index = raw(&format!("{repo}:orig"));
    let manifests = index["manifests"].as_array_mut().unwrap();
    let amd = manifests
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()
        .clone();
    // Point the arm64 entry at the amd64 manifest (same size and media type).
    for m in manifests.iter_mut() {
        if m["platform"]["architecture"] == "arm64" {
            m["digest"] = amd["digest"].clone();
            m["size"] = amd["size"].clone();
        }
    }
    manifests.retain(|m| m["platform"]["architecture"] != "unknown");
    put_manifest(
        &repo,
        "liar",
        "application/vnd.oci.image.index.v1+json",
        &index.to_string(),
    );
    let (code, v) = verify_json(&[&format!("{repo}:liar"), "--platforms", BOTH]);
    assert_eq!(code, Some(1));
    let c = check(&v, "manifest linux/arm64");
    assert_eq!(c["passed"], false);
    assert_eq!(
        c["detail"],
        "the index lists it as linux/arm64 but its config says linux/amd64"
    );
    assert_eq!(check(&v, "manifest linux/amd64")["passed"], true);
}

#[test]
fn a_dangling_child_digest_fails() {
    let repo = unique_repo("verify-dangling");
    copy_all(good(), &format!("{repo}:latest"));
    let index = raw(&format!("{repo}:latest"));
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The registry refuses an index whose children it lacks, so delete the child afterwards.
    let path = repo.strip_prefix(&format!("{REGISTRY}/")).unwrap();
    curl(&[
        "-X",
        "DELETE",
        &format!("http://{REGISTRY}/v2/{path}/manifests/{arm}"),
    ]);
    let (code, v) = verify_json(&[
        &format!("{repo}:latest"),
        "--platforms",
        BOTH,
        "--timeout",
        "20",
    ]);
    assert_eq!(code, Some(1));
    let c = check(&v, "manifest linux/arm64");
    assert_eq!(c["passed"], false);
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cannot fetch {arm}")),
        "{c}"
    );
    assert!(c["detail"].as_str().unwrap().contains("not found"), "{c}");
    // The attestation for it now points at an image that is still listed: only
    // the fetch fails, and the amd64 side is fine.
    assert_eq!(check(&v, "manifest linux/amd64")["passed"], true);
}

#[test]
fn an_arm64_image_carrying_an_x86_64_binary_fails_check_binaries() {
    require_builder();
    let d = context(
        "FROM --platform=linux/amd64 127.0.0.1:5000/mbx/busybox:latest AS x86\n\
         FROM 127.0.0.1:5000/mbx/busybox:latest\n\
         COPY --from=x86 /bin/busybox /usr/local/bin/x86tool\n",
    );
    let repo = unique_repo("verify-x86-in-arm");
    let mut c = mbx();
    c.args(["ci", "--local", "--cache", "none", "--context"])
        .arg(d.path())
        .args(["--image", &repo, "--push"]);
    assert_eq!(run(c).status.code(), Some(0));
    let reference = format!("{repo}:latest");
    // Without --check-binaries the image looks fine…
    let (code, _) = verify_json(&[&reference, "--platforms", BOTH]);
    assert_eq!(code, Some(0));
    // …with it, the foreign binary is named.
    let (code, v) = verify_json(&[&reference, "--platforms", BOTH, "--check-binaries"]);
    assert_eq!(code, Some(1));
    let c = check(&v, "binaries linux/arm64");
    assert_eq!(c["passed"], false);
    assert_eq!(
        c["detail"],
        "/usr/local/bin/x86tool is x86-64 but linux/arm64 needs AArch64 (1 of 2 ELF file(s) wrong)"
    );
    assert_eq!(check(&v, "binaries linux/amd64")["passed"], true);
    // A layer cap below the layer size is reported, not ignored.
    let (code, v) = verify_json(&[
        &reference,
        "--platforms",
        BOTH,
        "--check-binaries",
        "--max-layer-bytes",
        "1000",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        check(&v, "binaries linux/amd64")["detail"]
            .as_str()
            .unwrap()
            .contains("over the cap of 1000"),
        "{v}"
    );
}

fn verify_with_password(reference: &str, user: &str, password: &str) -> Output {
    let mut c = mbx();
    c.args([
        "verify",
        reference,
        "--platforms",
        BOTH,
        "--username",
        user,
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    eprintln!("stdout:\n{}\nstderr:\n{}", stdout(&o), stderr(&o));
    o
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

#[test]
fn htpasswd_registry_right_wrong_and_missing_credentials() {
    let (user, password) = auth_registry_credentials();
    let dest = format!("{AUTH_REGISTRY}/mbx-test/auth-{}", std::process::id());
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{user}:{password}"),
        &format!("docker://{}", good()),
        &format!("docker://{dest}:latest"),
    ]);
    let reference = format!("{dest}:latest");

    let o = verify_with_password(&reference, &user, &password);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        !stdout(&o).contains(&password) && !stderr(&o).contains(&password),
        "never print the secret"
    );

    let o = verify_with_password(&reference, &user, "wrong-password");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("error: 401"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "help: the registry refused the credentials from --username/--password-stdin"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("wrong-password"));

    let empty_config = tempfile::tempdir().unwrap();
    let mut c = mbx();
    c.args(["verify", &reference, "--platforms", BOTH])
        .env("DOCKER_CONFIG", empty_config.path());
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("help: log in first: `docker login 127.0.0.1:5001`"),
        "{}",
        stderr(&o)
    );

    // The same credentials from a docker config file.
    let cfg = tempfile::tempdir().unwrap();
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    std::fs::write(
        cfg.path().join("config.json"),
        format!(r#"{{"auths":{{"{AUTH_REGISTRY}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let mut c = mbx();
    c.args(["verify", &reference, "--platforms", BOTH])
        .env("DOCKER_CONFIG", cfg.path());
    assert_eq!(run(c).status.code(), Some(0));
}

/// A docker config whose credentials come from a credential helper, as
/// `gcloud auth configure-docker` (credHelpers) or Docker Desktop
/// (credsStore) write it: the stand-in helper answers `get` for the
/// htpasswd registry.
#[test]
fn credentials_from_cred_helpers_and_creds_store() {
    let (user, password) = auth_registry_credentials();
    let dest = format!("{AUTH_REGISTRY}/mbx-test/helper-{}", std::process::id());
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{user}:{password}"),
        &format!("docker://{}", good()),
        &format!("docker://{dest}:latest"),
    ]);
    let reference = format!("{dest}:latest");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("helper.log");
    let helper = |name: &str, secret: &str| {
        let script = bin.join(format!("docker-credential-{name}"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nread -r server\necho \"$1 $server\" >> '{}'\n\
                 [ \"$server\" = {AUTH_REGISTRY} ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
                 printf '{{\"ServerURL\":\"%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}}' \"$server\" '{user}' '{secret}'\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    helper("mbxtest", &password);
    helper("mbxwrong", "not-the-password");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let verify_with_config = |config: &str| {
        let cfg = tempfile::tempdir().unwrap();
        std::fs::write(cfg.path().join("config.json"), config).unwrap();
        let mut c = mbx();
        c.args(["verify", &reference, "--platforms", BOTH])
            .env("DOCKER_CONFIG", cfg.path())
            .env("PATH", &path);
        run(c)
    };

    let o = verify_with_config(&format!(
        r#"{{"credHelpers":{{"{AUTH_REGISTRY}":"mbxtest"}}}}"#
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = verify_with_config(r#"{"credsStore":"mbxtest"}"#);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let asked = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [
            format!("get {AUTH_REGISTRY}"),
            format!("get {AUTH_REGISTRY}")
        ],
        "the helper was asked, once per run, for this host"
    );

    // A helper with the wrong secret: the registry refuses it, and the help names the helper.
    let o = verify_with_config(&format!(
        r#"{{"credHelpers":{{"{AUTH_REGISTRY}":"mbxwrong"}}}}"#
    ));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("error: 401"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refused the credentials from docker-credential-mbxwrong"),
        "{}",
        stderr(&o)
    );
    // A helper that is not installed: anonymous, and the help says why.
    let o = verify_with_config(&format!(
        r#"{{"credHelpers":{{"{AUTH_REGISTRY}":"mbxmissing"}}}}"#
    ));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("log in first") && stderr(&o).contains("docker-credential-mbxmissing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bearer_token_flow_like_ghcr() {
    // The proxy stands in for GHCR's token service (unreachable from here):
    // a Bearer challenge, a token endpoint that checks user and token, then
    // bearer-only reads forwarded to the real registry.
    let auth = TokenAuth {
        user: "octocat".into(),
        password: "ghs_stand_in_token".into(),
        token: "bearer-for-test".into(),
        anonymous: false,
    };
    let proxy = Proxy::start(None, Some(auth.clone()));
    let path = good().strip_prefix(&format!("{REGISTRY}/")).unwrap();
    let reference = format!("{}/{path}", proxy.addr);
    let o = verify_with_password(&reference, &auth.user, &auth.password);
    assert_eq!(o.status.code(), Some(0));
    let tokens = proxy.token_requests.lock().unwrap().clone();
    assert!(!tokens.is_empty(), "the token endpoint was used");
    let repo = path.split(':').next().unwrap();
    assert!(
        tokens[0].contains(&format!(
            "scope=repository%3A{}%3Apull",
            repo.replace('/', "%2F")
        )),
        "{tokens:?}"
    );

    let o = verify_with_password(&reference, &auth.user, "not-the-token");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("error: 401"), "{}", stderr(&o));
}

#[test]
fn transient_faults_are_retried_and_permanent_ones_time_out() {
    let path = good()
        .strip_prefix(&format!("{REGISTRY}/"))
        .unwrap()
        .to_string();
    for fault in [Fault::Status(503, 3), Fault::TooMany(2, 1), Fault::Reset(3)] {
        let proxy = Proxy::start(Some(fault), None);
        let (code, v) = verify_json(&[&format!("{}/{path}", proxy.addr), "--platforms", BOTH]);
        assert_eq!(code, Some(0), "{fault:?}: {v}");
        assert!(
            proxy.requests.load(std::sync::atomic::Ordering::SeqCst) > 3,
            "{fault:?}: the faults were met"
        );
    }
    // Retry-After is honoured. The first 429 answers the `/v2/` ping of the
    // login handshake (no challenge there, so nothing to wait for); the next
    // two answer reads, each waited out for 1 s.
    let proxy = Proxy::start(Some(Fault::TooMany(3, 1)), None);
    let t = std::time::Instant::now();
    let (code, _) = verify_json(&[&format!("{}/{path}", proxy.addr), "--platforms", BOTH]);
    assert_eq!(code, Some(0));
    assert!(
        t.elapsed().as_secs_f64() >= 2.0,
        "waited as Retry-After said: {:?}",
        t.elapsed()
    );

    let proxy = Proxy::start(Some(Fault::Status(503, usize::MAX)), None);
    let t = std::time::Instant::now();
    let o = verify(&[
        &format!("{}/{path}", proxy.addr),
        "--platforms",
        BOTH,
        "--timeout",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        t.elapsed().as_secs() < 8,
        "gave up within the timeout: {:?}",
        t.elapsed()
    );
    assert!(
        stderr(&o).contains("gave up reading from"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("HTTP 503"), "{}", stderr(&o));
}

#[test]
fn a_missing_tag_and_a_bad_reference() {
    let repo = unique_repo("never-pushed");
    let o = verify(&[
        &format!("{repo}:nope"),
        "--platforms",
        BOTH,
        "--timeout",
        "2s",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = verify(&["Not A Ref!", "--platforms", BOTH]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not an image reference"),
        "{}",
        stderr(&o)
    );
    // A registry address alone is not read as Docker Hub's image `127.0.0.1`.
    let o = verify(&[REGISTRY, "--platforms", BOTH]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("`{REGISTRY}` is a registry address, not an image"))
            && stderr(&o).contains(&format!("{REGISTRY}/NAME")),
        "{}",
        stderr(&o)
    );
    let o = verify(&[&format!("{repo}:nope"), "--timeout", "soon"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn anonymous_bearer_flow_like_a_public_ghcr_image() {
    // Stands in for GHCR's token service: anonymous token for a public image.
    let proxy = Proxy::start(
        None,
        Some(TokenAuth {
            user: "nobody".into(),
            password: "unused".into(),
            token: "anonymous-token".into(),
            anonymous: true,
        }),
    );
    let path = good().strip_prefix(&format!("{REGISTRY}/")).unwrap();
    let empty_config = tempfile::tempdir().unwrap();
    let mut c = mbx();
    c.args([
        "verify",
        &format!("{}/{path}", proxy.addr),
        "--platforms",
        BOTH,
    ])
    .env("DOCKER_CONFIG", empty_config.path());
    assert_eq!(run(c).status.code(), Some(0));
    assert_eq!(
        proxy.token_requests.lock().unwrap().len(),
        1,
        "one token, reused for every read"
    );
}

#[test]
fn forbidden_is_not_retried_and_names_the_permission() {
    let path = good()
        .strip_prefix(&format!("{REGISTRY}/"))
        .unwrap()
        .to_string();
    let proxy = Proxy::start(Some(Fault::Status(403, usize::MAX)), None);
    let t = std::time::Instant::now();
    let o = verify(&[&format!("{}/{path}", proxy.addr), "--platforms", BOTH]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        t.elapsed().as_secs() < 5,
        "403 is final, not retried: {:?}",
        t.elapsed()
    );
    assert!(stderr(&o).contains("error: 403"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("permissions: packages: read"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        proxy.requests.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the /v2/ ping and one read"
    );
}

#[test]
fn platforms_sharing_a_layer_are_each_checked() {
    // FROM scratch + COPY: every platform's layer is the same blob, read
    // concurrently by the binary check. No RUN, so no emulation is needed.
    require_builder();
    let d = context("FROM scratch\nCOPY note.txt /\n");
    std::fs::write(d.path().join("note.txt"), "same bytes on every platform\n").unwrap();
    let repo = unique_repo("verify-shared-layer");
    let four = "linux/amd64,linux/arm64,linux/386,linux/arm/v7";
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--cache",
        "none",
        "--platforms",
        four,
        "--context",
    ])
    .arg(d.path())
    .args(["--image", &repo, "--push"]);
    assert_eq!(run(c).status.code(), Some(0));
    let index = raw(&format!("{repo}:latest"));
    assert_eq!(
        index_platforms(&index),
        vec!["linux/386", "linux/amd64", "linux/arm/v7", "linux/arm64"]
    );
    for _ in 0..3 {
        let (code, v) = verify_json(&[
            &format!("{repo}:latest"),
            "--platforms",
            four,
            "--check-binaries",
        ]);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(
            check(&v, "binaries linux/arm/v7")["detail"],
            "no ELF executables or libraries in the layers"
        );
    }
}
