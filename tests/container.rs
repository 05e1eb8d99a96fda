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

use std::process::Command;

use support::runner::{in_runner, require_runner_image};
use support::stderr;

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
