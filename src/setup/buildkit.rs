//! Ask BuildKit itself which platforms its workers can build: the control
//! API's `ListWorkers`, over gRPC (tonic, protos re-exported by bollard),
//! through a connection made by `docker buildx dial-stdio --builder NAME`.
//! dial-stdio works for every driver (docker, docker-container, kubernetes,
//! remote): buildx opens the connection to the builder's BuildKit and proxies
//! it over the child's stdin/stdout, which carry HTTP/2 for tonic.
//!
//! This is the truth about a builder: `docker buildx ls` prints the platforms
//! it was *asked* for (`linux/arm64*`) even when the worker lacks them.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::moby::buildkit::v1::control_client::ControlClient;
use bollard::moby::buildkit::v1::ListWorkersRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// One BuildKit worker as the control API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    pub id: String,
    /// `os/arch[/variant]`, in the worker's order.
    pub platforms: Vec<String>,
    /// e.g. `v0.13.2`, when the daemon reports it.
    pub buildkit_version: Option<String>,
}

/// Why the control API could not be asked.
#[derive(Debug)]
pub struct DialError(pub String);

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `ListWorkers` on builder `name`, within `timeout`.
pub async fn list_workers(
    docker: &str,
    name: &str,
    timeout: Duration,
) -> Result<Vec<Worker>, DialError> {
    let fut = async {
        let connector = DialStdio {
            docker: docker.to_string(),
            builder: name.to_string(),
        };
        // The URI is only a label: every byte goes through the child's pipes.
        let channel = tonic::transport::Endpoint::from_static("http://buildkitd.invalid")
            .connect_with_connector(connector)
            .await
            .map_err(|e| {
                DialError(format!(
                    "HTTP/2 over `docker buildx dial-stdio --builder {name}` failed: {}",
                    chain(&e)
                ))
            })?;
        tracing::debug!(builder = %name, "HTTP/2 connected");
        let mut client = ControlClient::new(channel);
        let resp = client
            .list_workers(ListWorkersRequest { filter: Vec::new() })
            .await
            .map_err(|s| {
                DialError(format!(
                    "ListWorkers on builder `{name}` failed: {} {}",
                    s.code(),
                    s.message()
                ))
            })?;
        tracing::debug!(builder = %name, "ListWorkers answered");
        Ok(resp
            .into_inner()
            .record
            .into_iter()
            .map(|w| Worker {
                id: w.id,
                platforms: w
                    .platforms
                    .iter()
                    .map(|p| {
                        if p.variant.is_empty() {
                            format!("{}/{}", p.os, p.architecture)
                        } else {
                            format!("{}/{}/{}", p.os, p.architecture, p.variant)
                        }
                    })
                    .collect(),
                buildkit_version: w
                    .buildkit_version
                    .map(|v| v.version)
                    .filter(|v| !v.is_empty()),
            })
            .collect())
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        DialError(format!(
            "no answer from builder `{name}` over `docker buildx dial-stdio` within {} s",
            timeout.as_secs()
        ))
    })?
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s = format!("{s}: {x}");
        src = x.source();
    }
    s
}

/// A tower service that, for each connection tonic asks for, starts
/// `docker buildx dial-stdio --builder NAME` and hands back its pipes.
#[derive(Clone)]
struct DialStdio {
    docker: String,
    builder: String,
}

impl tower_service::Service<tonic::codegen::http::Uri> for DialStdio {
    type Response = TokioIo<ChildIo>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: tonic::codegen::http::Uri) -> Self::Future {
        let docker = self.docker.clone();
        let builder = self.builder.clone();
        Box::pin(async move {
            tracing::debug!(%builder, "docker buildx dial-stdio");
            let mut child = Command::new(&docker)
                .args(["buildx", "dial-stdio", "--builder", &builder])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let stdin = child.stdin.take().expect("piped");
            let stdout = child.stdout.take().expect("piped");
            Ok(TokioIo::new(ChildIo {
                _child: child,
                stdin,
                stdout,
            }))
        })
    }
}

/// The child's stdout (read) and stdin (write) as one stream; the child is
/// killed when the connection is dropped.
pub struct ChildIo {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl AsyncRead for ChildIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChildIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}
