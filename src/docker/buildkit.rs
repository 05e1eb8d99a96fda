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

/// How the control API was reached.
pub const VIA_DIAL_STDIO: &str = "docker buildx dial-stdio";
pub const VIA_EXEC: &str = "buildctl dial-stdio in the BuildKit container (Engine API exec)";

/// `ListWorkers` on builder `name` through `docker buildx dial-stdio`
/// (every driver; boots a stopped builder), within `timeout`.
pub async fn list_workers(
    docker: &str,
    name: &str,
    timeout: Duration,
) -> Result<Vec<Worker>, DialError> {
    let connector = DialStdio {
        docker: docker.to_string(),
        builder: name.to_string(),
        platform: None,
    };
    let what = format!("`docker buildx dial-stdio --builder {name}`");
    ask(connector, &what, timeout).await
}

/// `ListWorkers` on builder `name` through `docker buildx dial-stdio
/// --platform P`: the node buildx picks for that platform, as for a build.
pub async fn list_workers_for(
    docker: &str,
    name: &str,
    platform: &str,
    timeout: Duration,
) -> Result<Vec<Worker>, DialError> {
    let connector = DialStdio {
        docker: docker.to_string(),
        builder: name.to_string(),
        platform: Some(platform.to_string()),
    };
    let what = format!("`docker buildx dial-stdio --builder {name} --platform {platform}`");
    ask(connector, &what, timeout).await
}

/// How to reach one BuildKit daemon directly (a remote driver's node):
/// `tcp://HOST:PORT` (TLS when `cacert` is given, client certificate with
/// `cert`/`key`) or `unix:///PATH`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    pub address: String,
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub servername: Option<String>,
}

/// `ListWorkers` on one BuildKit daemon at `endpoint`, within `timeout`.
/// An endpoint that refuses or does not answer fails at once, naming it.
pub async fn list_workers_at(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<Vec<Worker>, DialError> {
    let what = endpoint.address.clone();
    ask(
        Direct(std::sync::Arc::new(endpoint.clone())),
        &what,
        timeout,
    )
    .await
}

/// A tower service that connects to a BuildKit daemon itself (TCP, TLS or
/// a unix socket), as buildx's remote driver does.
#[derive(Clone)]
struct Direct(std::sync::Arc<Endpoint>);

type BoxIo = Pin<Box<dyn AsyncReadWrite>>;
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> AsyncReadWrite for T {}

impl tower_service::Service<tonic::codegen::http::Uri> for Direct {
    type Response = TokioIo<BoxIo>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: tonic::codegen::http::Uri) -> Self::Future {
        let ep = self.0.clone();
        Box::pin(async move { connect(&ep).await.map(TokioIo::new) })
    }
}

async fn connect(ep: &Endpoint) -> std::io::Result<BoxIo> {
    if let Some(path) = ep.address.strip_prefix("unix://") {
        return Ok(Box::pin(tokio::net::UnixStream::connect(path).await?));
    }
    let Some(hostport) = ep.address.strip_prefix("tcp://") else {
        return Err(std::io::Error::other(format!(
            "`{}` is not a tcp:// or unix:// address",
            ep.address
        )));
    };
    let hostport = hostport.trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(hostport).await?;
    tcp.set_nodelay(true)?;
    let Some(ca) = &ep.cacert else {
        return Ok(Box::pin(tcp));
    };
    let config = tls_config(ca, ep.cert.as_deref(), ep.key.as_deref())?;
    let host = ep.servername.clone().unwrap_or_else(|| {
        hostport
            .rsplit_once(':')
            .map_or(hostport, |(h, _)| h)
            .trim_matches(['[', ']'])
            .to_string()
    });
    let name = rustls_pki_types::ServerName::try_from(host)
        .map_err(|e| std::io::Error::other(format!("TLS server name: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Box::pin(tls))
}

fn tls_config(
    ca: &str,
    cert: Option<&str>,
    key: Option<&str>,
) -> std::io::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &str, e: &dyn std::fmt::Display| {
        std::io::Error::other(format!("cannot read the {what} `{path}`: {e}"))
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| bad("CA certificate", ca, &e))? {
        roots
            .add(c.map_err(|e| bad("CA certificate", ca, &e))?)
            .map_err(|e| bad("CA certificate", ca, &e))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots);
    let mut config = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad("client certificate", cert, &e))?;
            let k = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("client key", key, &e))?;
            builder
                .with_client_auth_cert(chain, k)
                .map_err(std::io::Error::other)?
        }
        _ => builder.with_no_client_auth(),
    };
    // gRPC servers refuse TLS connections that do not offer HTTP/2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// `ListWorkers` on a docker-container builder's BuildKit through the Engine
/// API: `buildctl dial-stdio` exec'd in its running container. The same
/// connection buildx makes for this driver, without starting the docker CLI
/// and its buildx plugin (≈ 60 ms instead of ≈ 220 ms on the chain).
pub async fn list_workers_exec(
    engine: &bollard::Docker,
    container: &str,
    timeout: Duration,
) -> Result<Vec<Worker>, DialError> {
    let connector = ExecDial {
        engine: engine.clone(),
        container: container.to_string(),
    };
    let what = format!("`buildctl dial-stdio` in container {container}");
    ask(connector, &what, timeout).await
}

async fn ask<C, IO>(connector: C, what: &str, timeout: Duration) -> Result<Vec<Worker>, DialError>
where
    C: tower_service::Service<
            tonic::codegen::http::Uri,
            Response = TokioIo<IO>,
            Error = std::io::Error,
        > + Send
        + 'static,
    C::Future: Send,
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let fut = async {
        // The URI is only a label: every byte goes through the child's pipes.
        let channel = tonic::transport::Endpoint::from_static("http://buildkitd.invalid")
            .connect_with_connector(connector)
            .await
            .map_err(|e| DialError(format!("HTTP/2 over {what} failed: {}", chain(&e))))?;
        let mut client = ControlClient::new(channel);
        let resp = client
            .list_workers(ListWorkersRequest { filter: Vec::new() })
            .await
            .map_err(|s| {
                DialError(format!(
                    "ListWorkers over {what} failed: {} {}",
                    s.code(),
                    s.message()
                ))
            })?;
        tracing::debug!(%what, "ListWorkers answered");
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
            "no answer over {what} within {} s",
            timeout.as_secs()
        ))
    })?
}

/// A tower service that execs `buildctl dial-stdio` in a container.
#[derive(Clone)]
struct ExecDial {
    engine: bollard::Docker,
    container: String,
}

impl tower_service::Service<tonic::codegen::http::Uri> for ExecDial {
    type Response = TokioIo<ChildIo>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: tonic::codegen::http::Uri) -> Self::Future {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        use futures_util::StreamExt;
        let engine = self.engine.clone();
        let container = self.container.clone();
        Box::pin(async move {
            let err = |e: bollard::errors::Error| std::io::Error::other(e.to_string());
            let exec = engine
                .create_exec(
                    &container,
                    CreateExecOptions {
                        attach_stdin: Some(true),
                        attach_stdout: Some(true),
                        attach_stderr: Some(false),
                        tty: Some(false),
                        cmd: Some(vec!["buildctl", "dial-stdio"]),
                        ..Default::default()
                    },
                )
                .await
                .map_err(err)?;
            let started = engine
                .start_exec(
                    &exec.id,
                    Some(StartExecOptions {
                        detach: false,
                        tty: false,
                        output_capacity: None,
                    }),
                )
                .await
                .map_err(err)?;
            let StartExecResults::Attached { output, input } = started else {
                return Err(std::io::Error::other("exec started detached"));
            };
            let bytes = output.filter_map(|item| async move {
                match item {
                    Ok(bollard::container::LogOutput::StdOut { message }) => Some(Ok(message)),
                    Ok(_) => None,
                    Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
                }
            });
            Ok(TokioIo::new(ChildIo {
                inner: Pipes::Exec {
                    reader: tokio_util::io::StreamReader::new(Box::pin(bytes)),
                    writer: input,
                },
            }))
        })
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
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
    platform: Option<String>,
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
        let platform = self.platform.clone();
        Box::pin(async move {
            tracing::debug!(%builder, ?platform, "docker buildx dial-stdio");
            let mut child = Command::new(&docker)
                .args(["buildx", "dial-stdio", "--builder", &builder])
                .args(platform.iter().flat_map(|p| ["--platform", p.as_str()]))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let stdin = child.stdin.take().expect("piped");
            let stdout = child.stdout.take().expect("piped");
            Ok(TokioIo::new(ChildIo {
                inner: Pipes::Child {
                    _child: child,
                    stdin,
                    stdout,
                },
            }))
        })
    }
}

type ByteStream = Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

enum Pipes {
    /// `docker buildx dial-stdio`: the child is killed when dropped.
    Child {
        _child: Child,
        stdin: ChildStdin,
        stdout: ChildStdout,
    },
    /// An attached exec: its output stream and its input.
    Exec {
        reader: tokio_util::io::StreamReader<ByteStream, bytes::Bytes>,
        writer: Pin<Box<dyn AsyncWrite + Send>>,
    },
}

/// One duplex stream over a child's pipes or an exec's attach.
pub struct ChildIo {
    inner: Pipes,
}

impl AsyncRead for ChildIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.inner {
            Pipes::Child { stdout, .. } => Pin::new(stdout).poll_read(cx, buf),
            Pipes::Exec { reader, .. } => Pin::new(reader).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ChildIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.inner {
            Pipes::Child { stdin, .. } => Pin::new(stdin).poll_write(cx, buf),
            Pipes::Exec { writer, .. } => writer.as_mut().poll_write(cx, buf),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.inner {
            Pipes::Child { stdin, .. } => Pin::new(stdin).poll_flush(cx),
            Pipes::Exec { writer, .. } => writer.as_mut().poll_flush(cx),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.inner {
            Pipes::Child { stdin, .. } => Pin::new(stdin).poll_shutdown(cx),
            Pipes::Exec { writer, .. } => writer.as_mut().poll_shutdown(cx),
        }
    }
}
