//! `Docker`: the Engine API handle (bollard). Setup asks it whether the daemon
//! answers and which version it runs before anything is built.

use std::time::Duration;

use bollard::Docker as Engine;

use crate::error::{Error, Result};

pub struct Docker {
    engine: Engine,
    host: String,
}

#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
}

/// What a finished installer container said.
#[derive(Debug, Clone)]
pub struct InstallerRun {
    pub exit_code: i64,
    pub output: String,
    pub pulled: bool,
    /// The daemon would not run it privileged (why, as it said): a socket
    /// proxy or authorization plugin answering 403, a userns-remap daemon.
    /// Then nothing ran and `exit_code` is -1.
    pub refused: Option<String>,
}

fn installer_error(image: &str, what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::env(
        format!("binfmt installer image `{image}`: {what}: {e}"),
        "pass --qemu-image IMAGE naming an image the daemon can pull (it must accept `--install ARCHS` like tonistiigi/binfmt), or --qemu-from host",
    )
}

/// Did the daemon refuse a privileged container (rather than fail)?
fn refused_privileges(e: &bollard::errors::Error) -> Option<String> {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } if matches!(status_code, 401 | 403) || message.contains("privileged") => {
            Some(format!("{status_code} {}", message.trim()))
        }
        _ => None,
    }
}

impl Docker {
    /// Connect as the docker CLI would: `DOCKER_HOST`, else the local socket.
    pub fn connect() -> Result<Docker> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let engine =
            Engine::connect_with_defaults().map_err(|e| unreachable(&host, &e.to_string()))?;
        Ok(Docker { engine, host })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `unix:///var/run/docker.sock`, or what DOCKER_HOST says.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Ping and read the version, within a few seconds.
    pub async fn info(&self) -> Result<EngineInfo> {
        let v = tokio::time::timeout(Duration::from_secs(10), self.engine.version())
            .await
            .map_err(|_| unreachable(&self.host, "no answer within 10 s"))?
            .map_err(|e| unreachable(&self.host, &e.to_string()))?;
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
        })
    }
}

impl Docker {
    /// Does the daemon keep images in containerd (`driver-type
    /// io.containerd.snapshotter.v1`)? The docker driver can then export
    /// caches and multi-platform images; without it, it cannot.
    pub async fn containerd_store(&self) -> Result<bool> {
        let info = tokio::time::timeout(Duration::from_secs(10), self.engine.info())
            .await
            .map_err(|_| unreachable(&self.host, "no answer within 10 s"))?
            .map_err(|e| unreachable(&self.host, &e.to_string()))?;
        Ok(info
            .driver_status
            .unwrap_or_default()
            .iter()
            .any(|kv| kv.len() == 2 && kv[0] == "driver-type" && kv[1].contains("containerd")))
    }

    /// Pull `image` unless the daemon has it; true when pulled.
    async fn pull_if_absent(&self, image: &str) -> Result<bool> {
        use bollard::query_parameters::CreateImageOptionsBuilder;
        use futures_util::StreamExt;

        if self.engine.inspect_image(image).await.is_ok() {
            return Ok(false);
        }
        let opts = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut pull = self.engine.create_image(Some(opts), None, None);
        while let Some(step) = pull.next().await {
            step.map_err(|e| installer_error(image, "pull failed", &e))?;
        }
        Ok(true)
    }

    /// Run a binfmt installer image, privileged, with `args` (e.g.
    /// `--install arm64`), pulling it first when absent; wait for it, keep its
    /// output, remove it.
    pub async fn run_installer(&self, image: &str, args: &[String]) -> Result<InstallerRun> {
        use bollard::query_parameters::{
            CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
        };
        use futures_util::StreamExt;

        let fail = |what: &str, e: &dyn std::fmt::Display| installer_error(image, what, e);
        let pulled = self.pull_if_absent(image).await?;
        let name = format!(
            "mbx-binfmt-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(args.to_vec()),
            host_config: Some(bollard::models::HostConfig {
                privileged: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let refused = |why| InstallerRun {
            exit_code: -1,
            output: String::new(),
            pulled,
            refused: Some(why),
        };
        let created = match self
            .engine
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                return refused_privileges(&e)
                    .map(refused)
                    .ok_or_else(|| fail("create failed", &e))
            }
        };
        let id = created.id;
        let result = async {
            if let Err(e) = self.engine.start_container(&id, None).await {
                return refused_privileges(&e)
                    .map(refused)
                    .ok_or_else(|| fail("start failed", &e));
            }
            let mut exit_code = 0;
            let mut wait = self.engine.wait_container(&id, None);
            while let Some(w) = wait.next().await {
                match w {
                    Ok(r) => exit_code = r.status_code,
                    // bollard reports a non-zero exit as an error carrying the code
                    Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                        exit_code = code
                    }
                    Err(e) => return Err(fail("wait failed", &e)),
                }
            }
            let mut output = String::new();
            let mut logs = self.engine.logs(
                &id,
                Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
            );
            while let Some(Ok(chunk)) = logs.next().await {
                output.push_str(&chunk.to_string());
            }
            Ok(InstallerRun {
                exit_code,
                output,
                pulled,
                refused: None,
            })
        }
        .await;
        let _ = self
            .engine
            .remove_container(
                &id,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await;
        result
    }
}

/// Is this process in a container (a runner's: Docker, Podman,
/// actions-runner-controller's pods, whose containerd leaves no
/// `/.dockerenv`)? Root without CAP_SYS_ADMIN counts: it is one for every
/// purpose mbx has (it can neither mount nor register binfmt_misc).
pub fn in_container() -> bool {
    use std::path::Path;
    Path::new("/.dockerenv").exists()
        || Path::new("/run/.containerenv").exists()
        || root_without_sys_admin()
}

fn root_without_sys_admin() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 21) == 0) // CAP_SYS_ADMIN
}

fn unreachable(host: &str, why: &str) -> Error {
    // In a runner's container (self-hosted in Docker, DinD, actions-runner-
    // controller) the daemon is the host's or a sidecar's: say what the
    // container needs.
    let contained = in_container();
    let help = match (contained, std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty())) {
        (true, Some(h)) => format!(
            "this runs in a container and DOCKER_HOST={h} does not answer: start the Docker-in-Docker sidecar (it runs --privileged, with /sys/fs/cgroup) or wait for it, or mount the host's socket instead (-v /var/run/docker.sock:/var/run/docker.sock) and unset DOCKER_HOST"
        ),
        (true, None) => "this runs in a container without the Docker socket: mount the host's (-v /var/run/docker.sock:/var/run/docker.sock; the runner needs no --privileged, the daemon runs the privileged parts), or point DOCKER_HOST at a Docker-in-Docker sidecar (--privileged)"
            .to_string(),
        (false, _) => "start dockerd, or point DOCKER_HOST at a running daemon".to_string(),
    };
    Error::env(
        format!("cannot reach the Docker daemon at {host}: {why}"),
        help,
    )
}
