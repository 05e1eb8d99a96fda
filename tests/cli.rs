//! Bad input: each case gives one clear error naming the fix and a non-zero
//! exit (2 for bad input). These run the real binary; the daemon and registry
//! cases point it at a dead socket / a closed loopback port.

mod support;

use support::*;

fn ci(args: &[&str]) -> std::process::Output {
    let mut c = mbx();
    c.arg("ci").arg("--local").args(args);
    run(c)
}

fn error_lines(o: &std::process::Output) -> (Vec<String>, Vec<String>) {
    let e = stderr(o);
    let errors = e
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_string)
        .collect();
    let helps = e
        .lines()
        .filter(|l| l.starts_with("help:"))
        .map(str::to_string)
        .collect();
    (errors, helps)
}

#[test]
fn unknown_platform_is_bad_input() {
    let ctx = repo_root().join("examples/hello");
    let o = ci(&[
        "--context",
        ctx.to_str().unwrap(),
        "--platforms",
        "linux/amd64,linux/arm65",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let (errors, helps) = error_lines(&o);
    assert_eq!(errors.len(), 1, "one error: {errors:?}");
    assert!(
        errors[0].contains("unknown platform `linux/arm65`"),
        "{errors:?}"
    );
    assert!(
        helps[0].contains("--platforms linux/amd64,linux/arm64"),
        "{helps:?}"
    );
}

#[test]
fn missing_context_is_bad_input() {
    let o = ci(&["--context", "/nonexistent/ctx"]);
    assert_eq!(o.status.code(), Some(2));
    let (errors, helps) = error_lines(&o);
    assert_eq!(
        errors,
        vec!["error: build context `/nonexistent/ctx` is not a directory"]
    );
    assert!(helps[0].contains("--context DIR"), "{helps:?}");
}

#[test]
fn missing_dockerfile_is_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let o = ci(&["--context", d.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let (errors, helps) = error_lines(&o);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("Dockerfile") && errors[0].contains("not found"),
        "{errors:?}"
    );
    assert!(helps[0].contains("--file PATH"), "{helps:?}");
}

/// build-push-action's default is the repository's Git context (BuildKit
/// clones it; no checkout step): mbx builds a directory, and says so.
#[test]
fn git_contexts_and_a_workspace_without_checkout_name_the_checkout_step() {
    let o = ci(&["--context", "{{defaultContext}}:app"]);
    assert_eq!(o.status.code(), Some(2));
    let (errors, helps) = error_lines(&o);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("is a Git context"), "{errors:?}");
    assert!(helps[0].contains("actions/checkout"), "{helps:?}");
    // In Actions, an empty workspace: the checkout step is what is missing.
    let ws = tempfile::tempdir().unwrap();
    let mut c = mbx();
    c.args(["ci", "--local", "--context"])
        .arg(ws.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", ws.path());
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    let (errors, helps) = error_lines(&o);
    assert!(errors[0].contains("not found"), "{errors:?}");
    assert!(helps[0].contains("no checkout"), "{helps:?}");
}

#[test]
fn bad_tag_and_image_are_bad_input() {
    let ctx = repo_root().join("examples/hello");
    let o = ci(&["--context", ctx.to_str().unwrap(), "--tag=-bad"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a valid tag"), "{}", stderr(&o));
    let o = ci(&[
        "--context",
        ctx.to_str().unwrap(),
        "--image",
        "Registry/App",
        "--push",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid --image"), "{}", stderr(&o));
    // A registry address alone is never pushed to Docker Hub as image `127.0.0.1`.
    let o = ci(&[
        "--context",
        ctx.to_str().unwrap(),
        "--image",
        REGISTRY,
        "--push",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!(
            "invalid --image: `{REGISTRY}` is a registry address"
        )) && stderr(&o).contains(&format!("`{REGISTRY}/NAME[:TAG]`")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn gha_cache_outside_actions_is_bad_input() {
    let ctx = repo_root().join("examples/hello");
    let mut c = mbx();
    c.args(["ci", "--context", ctx.to_str().unwrap()])
        .env_remove("ACTIONS_RUNTIME_TOKEN")
        .env_remove("ACTIONS_CACHE_URL")
        .env_remove("ACTIONS_RESULTS_URL");
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("help: run inside GitHub Actions"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dead_docker_daemon_names_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("dead.sock");
    let ctx = repo_root().join("examples/hello");
    let mut c = mbx();
    c.args(["ci", "--local", "--cache", "none", "--output"])
        .arg(d.path().join("out"))
        .args(["--context", ctx.to_str().unwrap()])
        .env("DOCKER_HOST", format!("unix://{}", sock.display()));
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let (errors, helps) = error_lines(&o);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("cannot reach the Docker daemon at unix://"),
        "{errors:?}"
    );
    assert!(helps[0].contains("DOCKER_HOST"), "{helps:?}");
    assert!(
        !d.path().join("out").exists(),
        "nothing written before the daemon answered"
    );
}

#[test]
fn unreachable_registry_fails_before_building() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctx = repo_root().join("examples/hello");
    let start = std::time::Instant::now();
    let o = ci(&[
        "--context",
        ctx.to_str().unwrap(),
        "--cache",
        "none",
        "--registry",
        &format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let (errors, helps) = error_lines(&o);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&format!("cannot reach the registry 127.0.0.1:{port}")),
        "{errors:?}"
    );
    assert!(
        helps[0].contains("nothing was built or pushed"),
        "{helps:?}"
    );
    assert!(
        start.elapsed().as_secs() < 20,
        "fails fast, not after a build"
    );
}

#[test]
fn every_subcommand_has_real_help() {
    for sub in ["ci", "setup", "build", "verify", "report"] {
        let mut c = mbx();
        c.args([sub, "--help"]);
        let o = run(c);
        assert!(o.status.success(), "{sub} --help");
        let s = stdout(&o);
        assert!(s.lines().count() > 8, "{sub} --help is thin: {s}");
        assert!(s.contains("Usage: mbx"), "{s}");
    }
    let mut c = mbx();
    c.arg("cache");
    let o = run(c);
    assert_eq!(
        o.status.code(),
        Some(2),
        "no `cache` subcommand yet: it must not pretend"
    );
}

#[test]
fn report_rejects_a_file_that_is_not_a_record() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.json");
    std::fs::write(&p, "[1,2]").unwrap();
    let mut c = mbx();
    c.args(["report", "--record"]).arg(&p);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not an mbx run record"),
        "{}",
        stderr(&o)
    );
}

/// `--password-stdin` reads at most 64 KiB (a token is a few): a longer
/// stdin (a file piped by mistake, `yes`) is refused as input, unread past
/// the cap, before anything touches the registry.
#[test]
fn password_stdin_longer_than_any_token_is_bad_input() {
    use std::io::Write;
    let mut c = mbx();
    c.args([
        "verify",
        "127.0.0.1:5000/hcaps/none:1",
        "--username",
        "u",
        "--password-stdin",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Endless until mbx stops reading (it hangs up at the cap).
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..16_384 {
            if stdin.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--password-stdin read more than 65536 bytes"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("xxxx"),
        "the password is never printed"
    );
}
