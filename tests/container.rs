//! mbx inside a runner's container (issue 15.16: self-hosted runners in
//! containers, Docker-in-Docker, actions-runner-controller), for real: the
//! runner image `scripts/chain/runner_image.sh` builds once from Debian's
//! packages (bookworm minbase, the host's docker CLI and buildx plugin), run
//! unprivileged with the mbx binary mounted. With the Docker socket mounted
//! the whole pipeline works (the daemon runs the privileged parts: the
//! BuildKit container, the binfmt installer); without it, or with a
//! DOCKER_HOST sidecar that is down, one error says what the container needs.
//! The container uses the host's network only because the chain's registry
//! listens on loopback.

mod support;

use std::process::{Command, Output};

use support::{chain_dir, repo_root, stderr};

const RUNNER_IMAGE: &str = "127.0.0.1:5000/mbx/runner:bookworm";

fn require_runner_image() {
    support::require_chain();
    assert!(
        support::tag_exists(RUNNER_IMAGE),
        "the runner image {RUNNER_IMAGE} is missing: run `scripts/chain-up` (phase runner_image)"
    );
}

/// `docker run` of the runner image, unprivileged, with mbx mounted, the
/// chain's config and the example context; `socket`: the host's Docker
/// socket; `extra`: more `docker run` arguments.
fn in_runner(socket: bool, env: &[(&str, &str)], extra: &[&str], script: &str) -> Output {
    let mut c = Command::new("docker");
    c.args(["run", "--rm", "--network", "host", "--pull", "missing"])
        .args(extra)
        .arg("-v")
        .arg(format!(
            "{}:/usr/local/bin/mbx:ro",
            env!("CARGO_BIN_EXE_mbx")
        ))
        .arg("-v")
        .arg(format!(
            "{}:/src:ro",
            repo_root().join("examples/hello").display()
        ));
    for f in ["mbx.toml", "buildkitd.toml"] {
        let p = chain_dir().join(f);
        c.arg("-v")
            .arg(format!("{}:{}:ro", p.display(), p.display()));
    }
    c.args([
        "-e",
        &format!("MBX_CONFIG={}", chain_dir().join("mbx.toml").display()),
    ])
    .args(["-e", &format!("MBX_QEMU_IMAGE={}", support::BINFMT_IMAGE)])
    .args(["-e", "NO_COLOR=1"]);
    if socket {
        c.args(["-v", "/var/run/docker.sock:/var/run/docker.sock"]);
    }
    for (k, v) in env {
        c.args(["-e", &format!("{k}={v}")]);
    }
    c.args([RUNNER_IMAGE, "bash", "-c", script]);
    support::run(c)
}

/// With the socket: `mbx ci` builds both platforms on a builder it creates
/// through the host's daemon, pushes, reads back; its cleanup removes it.
#[test]
fn with_the_socket_the_whole_pipeline_works_unprivileged() {
    require_runner_image();
    support::require_builder();
    let builder = format!("hrd-runner-{}", std::process::id());
    let image = support::unique_repo("hrd-in-runner");
    let script = format!(
        "mbx ci --context /src --platforms linux/amd64,linux/arm64 --cache none \
         --builder {builder} --image {image} --push; rc=$?; \
         mbx setup --cleanup --builder {builder}; exit $rc"
    );
    let out = in_runner(true, &[], &[], &script);
    // Whatever happened, the builder's container goes.
    let _ = Command::new("docker")
        .args(["rm", "-f", "-v", &format!("buildx_buildkit_{builder}0")])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The container sees no binfmt_misc: the daemon ran the installer.
    assert!(
        stderr(&out).contains("through the daemon: binfmt_misc is not visible in this container"),
        "{}",
        stderr(&out)
    );
    let index = support::json(&support::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}:latest"),
    ]));
    assert_eq!(
        support::index_platforms(&index),
        ["linux/amd64", "linux/arm64"]
    );
}

/// Without the socket, with a DOCKER_HOST sidecar that is down, or without
/// CA certificates: one error, exit 1, naming what the runner's container
/// needs, before anything is built.
#[test]
fn without_a_daemon_the_error_names_what_the_container_needs() {
    require_runner_image();
    // (socket, environment, more `docker run` arguments, fragments of the message)
    type Row<'a> = (bool, &'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
    let rows: [Row; 3] = [
        (
            false,
            &[],
            &[],
            &["without the Docker socket", "/var/run/docker.sock"],
        ),
        (
            false,
            &[("DOCKER_HOST", "tcp://127.0.0.1:12379")],
            &[],
            &[
                "DOCKER_HOST=tcp://127.0.0.1:12379 does not answer",
                "--privileged",
                "/sys/fs/cgroup",
            ],
        ),
        // An image without CA certificates: said, not a panic.
        (
            true,
            &[],
            &["-v", "/dev/null:/etc/ssl/certs/ca-certificates.crt:ro"],
            &["ca-certificates"],
        ),
    ];
    for (socket, env, extra, fragments) in rows {
        let started = std::time::Instant::now();
        let out = in_runner(
            socket,
            env,
            extra,
            "mbx ci --context /src --platforms linux/amd64 --cache none \
             --image 127.0.0.1:5000/hrd/no-daemon --push",
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{env:?} {extra:?}: {err}");
        for f in fragments {
            assert!(err.contains(f), "{env:?} {extra:?}: `{f}` missing: {err}");
        }
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "one error: {err}"
        );
        assert!(!err.contains("building"), "refused before building: {err}");
        assert!(started.elapsed().as_secs() < 30, "{env:?} took long");
    }
}
