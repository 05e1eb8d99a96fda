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

fn unreachable(host: &str, why: &str) -> Error {
    Error::env(
        format!("cannot reach the Docker daemon at {host}: {why}"),
        "start dockerd (for mbx's local test chain: scripts/chain-up) or point DOCKER_HOST at a running daemon",
    )
}
