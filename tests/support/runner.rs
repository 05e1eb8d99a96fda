//! The runner image `scripts/chain/runner_image.sh` builds once from
//! Debian's packages (bookworm minbase, the host's docker CLI and buildx
//! plugin), run unprivileged with the mbx binary mounted: a self-hosted
//! runner's container (tests/container.rs, tests/binfmt.rs).

use std::process::{Command, Output};

use super::{chain_dir, repo_root};

pub const RUNNER_IMAGE: &str = "127.0.0.1:5000/mbx/runner:bookworm";

pub fn require_runner_image() {
    super::require_chain();
    assert!(
        super::tag_exists(RUNNER_IMAGE),
        "the runner image {RUNNER_IMAGE} is missing: run `scripts/chain-up` (phase runner_image)"
    );
}

/// `docker run` of the runner image, unprivileged, with mbx mounted, the
/// chain's config and the example context; `socket`: the host's Docker
/// socket; `extra`: more `docker run` arguments.
pub fn in_runner(socket: bool, env: &[(&str, &str)], extra: &[&str], script: &str) -> Output {
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
    .args(["-e", &format!("MBX_QEMU_IMAGE={}", super::BINFMT_IMAGE)])
    .args(["-e", "NO_COLOR=1"]);
    if socket {
        c.args(["-v", "/var/run/docker.sock:/var/run/docker.sock"]);
    }
    for (k, v) in env {
        c.args(["-e", &format!("{k}={v}")]);
    }
    c.args([RUNNER_IMAGE, "bash", "-c", script]);
    super::run(c)
}
