//! `Registry`: the one client through which mbx reads images back.
//!
//! oci-client does the authentication handshake (the `/v2/` challenge, the
//! bearer token flow, basic auth); mbx then makes its reads itself so that it
//! can retry registry faults with backoff (honouring `Retry-After`), check
//! every digest, and stream layers with a size cap. Plain http only for
//! loopback hosts or hosts named with `--insecure-registry`. No platform
//! resolver: an index is never narrowed to one platform.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::oci::MAX_DOCUMENT_BYTES;

pub const ACCEPTED: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A tag that was just pushed may not be readable at once on eventually
/// consistent registries; a missing top-level manifest is retried this long.
const UNKNOWN_MANIFEST_WINDOW: Duration = Duration::from_secs(10);

/// Retries back off exponentially from 150 ms, with jitter (each delay
/// between 1× and 2× the step), steps capped at 4 s; the deadline
/// (`--timeout`) ends them.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(150))
        .with_max_delay(Duration::from_secs(4))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// One failed attempt at a registry read: retried or not.
enum Fault {
    /// 403, most 4xx, digest mismatches: no retry.
    Fatal(Error),
    /// A connection fault, 429 or 5xx: retried until the deadline.
    Transient {
        fault: String,
        retry_after: Option<Duration>,
    },
    /// A top-level manifest not (yet) there: retried for a few seconds.
    NotYet(Error),
}

/// How to reach and log in to a registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts to reach over plain http (loopback hosts always are).
    pub insecure: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The one registry `username`/`password` are for (a push's): another
    /// registry of the same run takes its own login from the docker
    /// config, and never sees them. None: whichever registry is asked.
    pub login_host: Option<String>,
    /// The whole read, retries included, must finish within this.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            insecure: Vec::new(),
            username: None,
            password: None,
            login_host: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Credentials and where they came from (for messages; never the secret).
#[derive(Clone)]
pub struct Credentials {
    auth: RegistryAuth,
    source: String,
}

#[derive(Clone)]
enum Authz {
    Unknown,
    Header(Option<String>),
}

pub struct Registry {
    oci: Client,
    http: reqwest::Client,
    reference: Reference,
    creds: Credentials,
    scheme: &'static str,
    authz: tokio::sync::Mutex<Authz>,
    /// The same for writes (a token with push scope).
    push_authz: tokio::sync::Mutex<Authz>,
    started: Instant,
    timeout: Duration,
}

fn client_config(http_hosts: Vec<String>) -> ClientConfig {
    ClientConfig {
        protocol: ClientProtocol::HttpsExcept(http_hosts),
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..ClientConfig::default()
    }
}

/// The client `make` configures; on a machine without CA certificates (a
/// minimal runner container) an error naming them.
pub fn http_client(make: impl Fn() -> reqwest::ClientBuilder) -> Result<reqwest::Client> {
    make().build().map_err(|e| no_tls(&crate::error::chain(&e)))
}

fn no_tls(why: &str) -> Error {
    Error::env(
        format!("cannot make an HTTP client: {why}"),
        "install the CA certificates (Debian/Ubuntu: apt-get install ca-certificates; \
         a runner's container image needs them too)",
    )
}

/// oci-client's client. Without any CA certificate on the machine it
/// panics (its `Default` builds a reqwest client unconditionally): that is
/// caught, quietly, and said as an error.
fn oci_client(config: ClientConfig) -> Result<Client> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Client::try_from(config)));
    std::panic::set_hook(hook);
    match made {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(no_tls(&e.to_string())),
        Err(panic) => Err(no_tls(
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("the TLS setup failed"),
        )),
    }
}

pub fn is_loopback_host(host: &str) -> bool {
    let h = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Which credentials to use for `host`: explicit flags, then the docker
/// config (`auths`, `credHelpers`, `credsStore`), then on ghcr.io the
/// Actions actor and `GITHUB_TOKEN`, else anonymous.
fn credentials(
    host: &str,
    opts: &Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials> {
    let flags_here = opts.login_host.as_deref().is_none_or(|h| h == host);
    match (&opts.username, &opts.password) {
        (Some(u), Some(p)) if flags_here => {
            return Ok(Credentials {
                auth: RegistryAuth::Basic(u.clone(), p.clone()),
                source: "--username/--password-stdin".into(),
            })
        }
        (Some(_), None) | (None, Some(_)) => return Err(Error::input(
            "--username and --password-stdin go together",
            "pass both, e.g. `echo \"$TOKEN\" | mbx verify REF --username USER --password-stdin`",
        )),
        _ => {}
    }
    let why_not = match docker_config(host, env) {
        Ok(Some(c)) => return Ok(c),
        Ok(None) => None,
        Err(why) => {
            tracing::warn!("{why}");
            Some(why)
        }
    };
    if host == "ghcr.io" {
        if let (Some(actor), Some(token)) = (env("GITHUB_ACTOR"), env("GITHUB_TOKEN")) {
            return Ok(Credentials {
                auth: RegistryAuth::Basic(actor, token),
                source: "GITHUB_ACTOR and GITHUB_TOKEN".into(),
            });
        }
    }
    Ok(Credentials {
        auth: RegistryAuth::Anonymous,
        source: match why_not {
            Some(why) => format!("none (anonymous): {why}"),
            None => "none (anonymous)".into(),
        },
    })
}

/// Credentials for `host` from `$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`, through docker_credential: `credHelpers.<host>`,
/// `auths.<host>`, else `credsStore`. `Ok(None)`: none configured (or the
/// helper has none for this host); `Err`: a helper failed, said why.
pub fn docker_config(
    host: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Option<Credentials>, String> {
    let Some(dir) = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".docker")))
    else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let text = match crate::error::read_capped(&path, crate::error::MAX_CONFIG_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(e.to_string()),
        Err(_) => return Ok(None),
    };
    // Docker keeps Docker Hub's credentials under its v1 address.
    let server = match host {
        "index.docker.io" | "docker.io" => "https://index.docker.io/v1/",
        h => h,
    };
    let helper = serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["credHelpers"][server].as_str().map(str::to_string));
    let source = match &helper {
        Some(h) => format!("docker-credential-{h} (credHelpers in {})", path.display()),
        None => path.display().to_string(),
    };
    match docker_credential::get_credential_from_reader(text.as_slice(), server) {
        Ok(DockerCredential::UsernamePassword(u, p)) => Ok(Some(Credentials {
            auth: RegistryAuth::Basic(u, p),
            source,
        })),
        Ok(DockerCredential::IdentityToken(_)) => Err(format!(
            "{source} holds an identity token for {host}, which mbx cannot use; pass --username USER --password-stdin"
        )),
        Err(CredentialRetrievalError::NoCredentialConfigured)
        | Err(CredentialRetrievalError::ConfigNotFound)
        | Err(CredentialRetrievalError::ConfigReadError) => Ok(None),
        Err(CredentialRetrievalError::HelperFailure { helper, stdout, stderr })
            if format!("{stdout}{stderr}").contains("credentials not found") =>
        {
            tracing::debug!(%helper, host, "the credential helper has nothing for this host");
            Ok(None)
        }
        Err(CredentialRetrievalError::HelperFailure { helper, stderr, .. }) => Err(format!(
            "the credential helper `{helper}` failed for {host}: {}",
            crate::error::tail(&stderr, 3, 300)
        )),
        Err(e) => Err(format!(
            "the docker config's credential helper for {host} failed ({}): {e}",
            helper.map_or("credsStore".to_string(), |h| format!("docker-credential-{h}"))
        )),
    }
}

impl Registry {
    pub fn new(reference: &str, opts: &Options) -> Result<Registry> {
        let reference: Reference = super::parse_reference(reference).map_err(|e| {
            Error::input(
                format!("`{reference}` is not an image reference: {e}"),
                "pass REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST], or the path of an OCI layout directory",
            )
        })?;
        let host = reference.resolve_registry().to_string();
        let insecure = is_loopback_host(&host) || opts.insecure.iter().any(|h| h == &host);
        let mut http_hosts = opts.insecure.clone();
        if insecure {
            http_hosts.push(host.clone());
        }
        let config = client_config(http_hosts);
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let creds = credentials(&host, opts, &env)?;
        let http = http_client(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(60))
                .user_agent(concat!("mbx/", env!("CARGO_PKG_VERSION")))
        })?;
        let oci = oci_client(config)?;
        Ok(Registry {
            oci,
            http,
            reference,
            creds,
            scheme: if insecure { "http" } else { "https" },
            authz: tokio::sync::Mutex::new(Authz::Unknown),
            push_authz: tokio::sync::Mutex::new(Authz::Unknown),
            started: Instant::now(),
            timeout: opts.timeout,
        })
    }

    pub fn host(&self) -> &str {
        self.reference.resolve_registry()
    }

    /// `fut`, given what is left of `--timeout`: a registry that accepts a
    /// connection and never answers (or trickles) ends the read at the
    /// deadline, not after the client's own minute-long read timeout.
    async fn within<T>(&self, what: &str, fut: impl std::future::Future<Output = T>) -> Result<T> {
        let left = (self.started + self.timeout).saturating_duration_since(Instant::now());
        tokio::time::timeout(left, fut).await.map_err(|_| {
            Error::verify(
                format!(
                    "{what}: no answer from {} within --timeout ({:.0}s)",
                    self.host(),
                    self.timeout.as_secs_f64()
                ),
                format!(
                    "check the registry at {} answers, or raise --timeout",
                    self.host()
                ),
            )
        })
    }

    fn url(&self, kind: &str, what: &str) -> String {
        format!(
            "{}://{}/v2/{}/{kind}/{what}",
            self.scheme,
            self.host(),
            self.reference.repository()
        )
    }

    /// The Authorization header, from the handshake (done once; again after a 401).
    async fn authorization(&self, renew: bool) -> Result<Option<String>> {
        self.authorization_for(RegistryOperation::Pull, renew).await
    }

    async fn authorization_for(
        &self,
        op: RegistryOperation,
        renew: bool,
    ) -> Result<Option<String>> {
        let mut slot = match op {
            RegistryOperation::Pull => self.authz.lock().await,
            RegistryOperation::Push => self.push_authz.lock().await,
        };
        if let (Authz::Header(h), false) = (&*slot, renew) {
            return Ok(h.clone());
        }
        let header = self.login(op).await?;
        *slot = Authz::Header(header.clone());
        Ok(header)
    }

    /// The handshake for `op`: the `/v2/` challenge, then a bearer token
    /// (for the repository, with push scope for `Push`) or basic credentials.
    async fn login(&self, op: RegistryOperation) -> Result<Option<String>> {
        let deadline = self.started + self.timeout;
        let login = || async {
            self.oci
                .auth(&self.reference, &self.creds.auth, op)
                .await
                .map_err(|e| e.to_string())
        };
        let token = login
            .retry(backoff())
            // A connection fault during the handshake: retry like any read.
            .when(|text: &String| text.contains("error sending request"))
            .adjust(|_, delay| delay.filter(|d| Instant::now() + *d <= deadline))
            .await
            .map_err(|text| {
                if text.contains("error sending request") {
                    self.unreachable(&text)
                } else {
                    self.denied(401, &format!("the login to {} failed: {text}", self.host()))
                }
            })?;
        Ok(match token {
            Some(token) => Some(format!("Bearer {token}")),
            None => match &self.creds.auth {
                RegistryAuth::Basic(u, p) => {
                    use base64::Engine;
                    Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                    ))
                }
                _ => None,
            },
        })
    }

    /// Where the credentials for this registry come from (never the secret).
    pub fn credentials_source(&self) -> &str {
        &self.creds.source
    }

    /// The credentials are good for a push, checked before anything is
    /// built: the handshake with push scope (a token service refuses bad
    /// credentials there), then `GET /v2/` with what it gave (a registry
    /// with basic auth refuses them there). Retried like a read; a refusal
    /// is an error naming `docker login` and `--username/--password-stdin`.
    pub async fn check_push(&self) -> Result<()> {
        let what = "the API root /v2/ with the push credentials".to_string();
        let header = self
            .within(&what, self.login(RegistryOperation::Push))
            .await??;
        let url = format!("{}://{}/v2/", self.scheme, self.host());
        let attempt = || async {
            let mut req = self.http.get(&url);
            if let Some(h) = &header {
                req = req.header(reqwest::header::AUTHORIZATION, h);
            }
            match self.within(&what, req.send()).await.map_err(Fault::Fatal)? {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(self.fault(resp, &what, false).await),
                Err(e) => Err(Fault::Transient {
                    fault: crate::error::chain(&e),
                    retry_after: None,
                }),
            }
        };
        self.until_deadline(attempt, |fault| self.unreachable(&fault))
            .await
    }

    /// PUT `body` (a manifest or an index of `media_type`) under
    /// `reference` (a tag or a digest) with push rights. Connection faults,
    /// 429 and 5xx are retried with backoff (or the server's `Retry-After`)
    /// until the timeout; a 401 gets one fresh login; any other refusal
    /// fails at once with the registry's own message. Returns the digest
    /// the registry names in `Docker-Content-Digest`, when it does.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<Option<String>> {
        let what = self.reference_for(reference);
        let url = self.url("manifests", reference);
        let renewed = AtomicBool::new(false);
        let attempt = || async {
            loop {
                let auth = self
                    .within(
                        &what,
                        self.authorization_for(RegistryOperation::Push, false),
                    )
                    .await
                    .and_then(|a| a)
                    .map_err(Fault::Fatal)?;
                let mut req = self
                    .http
                    .put(&url)
                    .header(reqwest::header::CONTENT_TYPE, media_type)
                    .body(body.to_vec());
                if let Some(h) = auth {
                    req = req.header(reqwest::header::AUTHORIZATION, h);
                }
                let resp = match self.within(&what, req.send()).await.map_err(Fault::Fatal)? {
                    Ok(resp) if resp.status().is_success() => {
                        return Ok(resp
                            .headers()
                            .get("docker-content-digest")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string))
                    }
                    Ok(resp) => resp,
                    Err(e) => {
                        return Err(Fault::Transient {
                            fault: format!("{what}: {}", crate::error::chain(&e)),
                            retry_after: None,
                        })
                    }
                };
                if resp.status().as_u16() == 401 && !renewed.swap(true, Ordering::SeqCst) {
                    self.authorization_for(RegistryOperation::Push, true)
                        .await
                        .map_err(Fault::Fatal)?;
                    continue;
                }
                return Err(self.write_fault(resp, &what).await);
            }
        };
        self.until_deadline(attempt, |fault| {
            Error::verify(
                format!(
                    "gave up pushing to {} after {:.0}s: {fault}",
                    self.host(),
                    self.started.elapsed().as_secs_f64()
                ),
                "the registry kept failing; check it and run again, or raise --timeout",
            )
        })
        .await
    }

    /// `attempt` again while it fails on a transient fault (a connection
    /// fault, 429, 5xx), with backoff or the server's `Retry-After`, as long
    /// as the deadline allows; `gave_up` words the last fault after that.
    async fn until_deadline<T, Fut>(
        &self,
        attempt: impl FnMut() -> Fut,
        gave_up: impl FnOnce(String) -> Error,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, Fault>>,
    {
        let deadline = self.started + self.timeout;
        attempt
            .retry(backoff())
            .when(|f: &Fault| matches!(f, Fault::Transient { .. }))
            .adjust(|f, delay| match f {
                Fault::Transient { retry_after, .. } => retry_after
                    .or(delay)
                    .filter(|d| Instant::now() + *d <= deadline),
                _ => None,
            })
            .notify(|f, delay| {
                if let Fault::Transient { fault, .. } = f {
                    tracing::warn!(%fault, ?delay, "registry fault, trying again");
                }
            })
            .await
            .map_err(|f| match f {
                Fault::Fatal(e) | Fault::NotYet(e) => e,
                Fault::Transient { fault, .. } => gave_up(fault),
            })
    }

    /// What a refused write means.
    async fn write_fault(&self, resp: reqwest::Response, what: &str) -> Fault {
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let body = match self.at_most(what, resp, 64 * 1024).await {
            Ok((b, _)) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => String::new(),
        };
        let message = format!("pushing {what} failed: HTTP {status} {}", brief(&body));
        match status {
            401 | 403 => Fault::Fatal(self.denied(status, &message)),
            429 | 500..=599 => Fault::Transient {
                fault: message,
                retry_after,
            },
            _ => Fault::Fatal(Error::verify(message, "")),
        }
    }

    fn unreachable(&self, why: &str) -> Error {
        Error::verify(
            format!("cannot reach the registry {}: {why}", self.host()),
            format!("check the registry at {} is up and reachable", self.host()),
        )
    }

    fn denied(&self, status: u16, what: &str) -> Error {
        let help = match (status, &self.creds.auth) {
            (403, _) => "the credentials lack read access: in GitHub Actions give the job `permissions: packages: read` \
                         (`packages: write` to push), or use a token with read:packages"
                .to_string(),
            (_, RegistryAuth::Anonymous) => format!(
                "log in first: `docker login {}`, or pass --username USER --password-stdin; on ghcr.io in Actions set GITHUB_TOKEN{}",
                self.host(),
                self.creds
                    .source
                    .strip_prefix("none (anonymous)")
                    .unwrap_or_default()
            ),
            _ => format!(
                "the registry refused the credentials from {}; check the user and password or token \
                 (`docker login {}`, or --username USER --password-stdin)",
                self.creds.source,
                self.host()
            ),
        };
        Error::verify(format!("{status} {what}"), help)
    }

    /// GET with retries: connection faults, 429 and 5xx are retried with
    /// exponential backoff and jitter (or the server's `Retry-After`) until
    /// the timeout; a missing top-level manifest is retried for a few seconds
    /// (just pushed); 401 gets one fresh login; 403 and other 4xx fail at once.
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        what: &str,
        top: bool,
    ) -> Result<reqwest::Response> {
        let deadline = self.started + self.timeout;
        let window = self.started + UNKNOWN_MANIFEST_WINDOW.min(self.timeout);
        let renewed = AtomicBool::new(false);
        let attempt = || self.attempt(url, accept, what, top, &renewed);
        let result = attempt
            .retry(backoff())
            .when(|f: &Fault| !matches!(f, Fault::Fatal(_)))
            .adjust(|f, delay| {
                let (delay, until) = match f {
                    Fault::Transient { retry_after, .. } => (retry_after.or(delay)?, deadline),
                    _ => (delay?, window),
                };
                (Instant::now() + delay <= until).then_some(delay)
            })
            .notify(|f, delay| {
                if let Fault::Transient { fault, .. } = f {
                    tracing::debug!(%fault, ?delay, "registry fault, retrying");
                }
            })
            .await;
        result.map_err(|f| match f {
            Fault::Fatal(e) | Fault::NotYet(e) => e,
            Fault::Transient { fault, .. } => Error::verify(
                format!(
                    "gave up reading from {} after {:.0}s: {fault}",
                    self.host(),
                    self.started.elapsed().as_secs_f64()
                ),
                "the registry kept failing; check it and run again, or raise --timeout",
            ),
        })
    }

    /// One GET (two after a 401: a fresh login, once per read).
    async fn attempt(
        &self,
        url: &str,
        accept: Option<&str>,
        what: &str,
        top: bool,
        renewed: &AtomicBool,
    ) -> std::result::Result<reqwest::Response, Fault> {
        loop {
            let auth = self
                .within(what, self.authorization(false))
                .await
                .and_then(|a| a)
                .map_err(Fault::Fatal)?;
            let mut req = self.http.get(url);
            if let Some(a) = accept {
                req = req.header(reqwest::header::ACCEPT, a);
            }
            if let Some(h) = auth {
                req = req.header(reqwest::header::AUTHORIZATION, h);
            }
            let sent = self.within(what, req.send()).await.map_err(Fault::Fatal)?;
            let resp = match sent {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => resp,
                Err(e) => {
                    let why = crate::error::chain(&e);
                    return Err(Fault::Transient {
                        fault: format!("{what}: {why}"),
                        retry_after: None,
                    });
                }
            };
            let status = resp.status().as_u16();
            if status == 401 && !renewed.swap(true, Ordering::SeqCst) {
                self.authorization(true).await.map_err(Fault::Fatal)?;
                continue;
            }
            return Err(self.fault(resp, what, top).await);
        }
    }

    /// What a non-success answer means.
    async fn fault(&self, resp: reqwest::Response, what: &str, top: bool) -> Fault {
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        // Enough of an error body for its message; a registry may send gigabytes.
        let body = match self.at_most(what, resp, 64 * 1024).await {
            Ok((b, _)) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => String::new(),
        };
        match status {
            401 | 403 => Fault::Fatal(self.denied(
                status,
                &format!("reading {what} from {}: {}", self.host(), brief(&body)),
            )),
            404 => {
                let e = Error::verify(
                    format!("{what} not found in {}: {}", self.host(), brief(&body)),
                    if top {
                        "check the image name and tag; was it pushed?"
                    } else {
                        ""
                    },
                );
                // Just pushed? Eventually consistent registries catch up in seconds.
                if top && registry_error_code(&body).as_deref() == Some("MANIFEST_UNKNOWN") {
                    Fault::NotYet(e)
                } else {
                    Fault::Fatal(e)
                }
            }
            429 | 500..=599 => Fault::Transient {
                fault: format!("{what}: HTTP {status} {}", brief(&body)),
                retry_after,
            },
            _ => Fault::Fatal(Error::verify(
                format!(
                    "reading {what} from {} failed: HTTP {status} {}",
                    self.host(),
                    brief(&body)
                ),
                "",
            )),
        }
    }

    /// The manifest the reference names: raw bytes and digest.
    pub async fn top(&self) -> Result<(Vec<u8>, String)> {
        let what = self
            .reference
            .digest()
            .or(self.reference.tag())
            .unwrap_or("latest")
            .to_string();
        self.manifest_inner(&what, true).await
    }

    pub async fn manifest(&self, digest: &str) -> Result<(Vec<u8>, String)> {
        self.manifest_inner(digest, false).await
    }

    async fn manifest_inner(&self, what: &str, top: bool) -> Result<(Vec<u8>, String)> {
        let label = format!("manifest {}", self.reference_for(what));
        let resp = self
            .get(
                &self.url("manifests", what),
                Some(&ACCEPTED.join(", ")),
                &label,
                top,
            )
            .await?;
        let header = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = self.document(&label, resp).await?;
        let digest = crate::digest::sha256(&bytes);
        if what.starts_with("sha256:") && digest != what {
            return Err(Error::verify(
                format!("{label}: content hashes to {digest}"),
                "the registry served other bytes than the digest names",
            ));
        }
        if let Some(h) = header.filter(|h| h.starts_with("sha256:")) {
            if h != digest {
                return Err(Error::verify(format!("{label}: Docker-Content-Digest says {h} but the content hashes to {digest}"), ""));
            }
        }
        Ok((bytes, digest))
    }

    fn reference_for(&self, what: &str) -> String {
        let sep = if what.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        format!("{}/{}{sep}{what}", self.host(), self.reference.repository())
    }

    /// A small blob (a config) in memory, digest checked.
    pub async fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let label = format!("blob {}", self.reference_for(digest));
        let resp = self
            .get(&self.url("blobs", digest), None, &label, false)
            .await?;
        let bytes = self.document(&label, resp).await?;
        let actual = crate::digest::sha256(&bytes);
        if actual != digest {
            return Err(Error::verify(
                format!("{label}: content hashes to {actual}"),
                "",
            ));
        }
        Ok(bytes)
    }

    /// A manifest, index or config: read whole, but never more than
    /// [`MAX_DOCUMENT_BYTES`] (whatever `Content-Length` says or the body holds).
    async fn document(&self, label: &str, resp: reqwest::Response) -> Result<Vec<u8>> {
        let too_big = || {
            Error::verify(
                format!("{label} is larger than {MAX_DOCUMENT_BYTES} bytes, more than any manifest or config"),
                "the registry served something else than a manifest; check the image reference",
            )
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES)
        {
            return Err(too_big());
        }
        match self.at_most(label, resp, MAX_DOCUMENT_BYTES).await? {
            (bytes, true) => Ok(bytes),
            (_, false) => Err(too_big()),
        }
    }

    /// At most `cap` bytes of a body, and whether that was all of it.
    async fn at_most(
        &self,
        label: &str,
        mut resp: reqwest::Response,
        cap: u64,
    ) -> Result<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        while let Some(chunk) = self
            .within(label, resp.chunk())
            .await?
            .map_err(|e| Error::verify(format!("reading {label} failed: {e}"), ""))?
        {
            let room = (cap as usize).saturating_sub(out.len());
            let take = chunk.len().min(room);
            // Grow as a Vec would (doubling), but never past the cap.
            let want = (out.len() + take).max(out.capacity() * 2).min(cap as usize);
            out.reserve_exact(want.saturating_sub(out.len()));
            out.extend_from_slice(&chunk[..take]);
            if take < chunk.len() {
                return Ok((out, false));
            }
        }
        Ok((out, true))
    }

    /// Stream a blob (a layer) into `dest`, refusing more than `cap` bytes;
    /// the digest is checked as it streams.
    pub async fn blob_to_file(&self, digest: &str, dest: &Path, cap: u64) -> Result<u64> {
        let label = format!("blob {}", self.reference_for(digest));
        let mut resp = self
            .get(&self.url("blobs", digest), None, &label, false)
            .await?;
        let io = |e: std::io::Error| {
            Error::env(
                format!("writing {} failed: {e}", dest.display()),
                "check TMPDIR has space",
            )
        };
        let mut f = std::io::BufWriter::new(std::fs::File::create(dest).map_err(io)?);
        let mut hasher = Sha256::new();
        let mut n: u64 = 0;
        while let Some(chunk) = self
            .within(&label, resp.chunk())
            .await?
            .map_err(|e| Error::verify(format!("reading {label} failed: {e}"), ""))?
        {
            n += chunk.len() as u64;
            if n > cap {
                return Err(Error::verify(
                    format!("{label} is larger than the cap of {cap} bytes"),
                    "raise --max-layer-bytes",
                ));
            }
            hasher.update(&chunk);
            f.write_all(&chunk).map_err(io)?;
        }
        f.flush().map_err(io)?;
        let actual = format!("sha256:{}", hex(&hasher.finalize()));
        if actual != digest {
            return Err(Error::verify(
                format!("{label}: content hashes to {actual}"),
                "",
            ));
        }
        Ok(n)
    }
}

/// The waits between attempts at a registry write that met a fault
/// ([`transient_fault`]): exponential from `min` to `max` with jitter,
/// `attempts - 1` of them, and none once the run is interrupted. (The
/// reads above retry by their own deadline instead.)
pub fn fault_delays(
    min: Duration,
    max: Duration,
    attempts: usize,
) -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    ExponentialBuilder::new()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .with_max_times(attempts.saturating_sub(1))
        .build()
        .take_while(|_| !crate::interrupt::interrupted())
}

/// True when `text` (an error of BuildKit's push or of `imagetools
/// create`) names a registry fault that may pass: 429, a 5xx, a connection
/// reset, refused or cut short, a timeout. A 4xx other than 429 (denied,
/// unknown, invalid) is not one.
pub fn transient_fault(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "connection reset",
        "connection refused",
        "broken pipe",
        "unexpected EOF",
        ": EOF",
        "i/o timeout",
        "TLS handshake timeout",
        "context deadline exceeded",
        "server closed idle connection",
    ];
    // The registry's error codes as containerd words them ("unavailable:
    // …" for a 503 with an OCI error body) and the reason phrases.
    const CODES: &[&str] = &[
        "unavailable: ",
        "toomanyrequests: ",
        "too many requests",
        "service unavailable",
        "bad gateway",
        "gateway timeout",
    ];
    let lower = text.to_ascii_lowercase();
    if WORDS.iter().any(|w| text.contains(w)) || CODES.iter().any(|c| lower.contains(c)) {
        return true;
    }
    // "…: 503 Service Unavailable", "…: 429 Too Many Requests", "…: 502" at the end.
    text.match_indices(": ").any(|(i, _)| {
        let rest = &text[i + 2..];
        let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = rest[code.len()..].chars().next();
        code.len() == 3
            && matches!(after, None | Some(' ') | Some('\n') | Some('"'))
            && (code == "429" || code.starts_with('5'))
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first error code of an OCI error envelope (`{"errors":[{"code":…}]}`).
/// The `Retry-After` of a 429 or 503, in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn registry_error_code(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["errors"][0]["code"].as_str().map(str::to_string)
}

fn brief(body: &str) -> String {
    let b = body.trim();
    if let Some(code) = registry_error_code(b) {
        let v: serde_json::Value = serde_json::from_str(b).unwrap_or_default();
        let msg = v["errors"][0]["message"].as_str().unwrap_or("");
        return format!("{code} {msg}").trim().to_string();
    }
    crate::error::tail(b, 3, 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.1.2.3"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("ghcr.io"));
        assert!(!is_loopback_host("127.example.com:5000"));
        assert!(!is_loopback_host("registry.local:5000"));
    }

    fn env_of(m: HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
        move |k: &str| m.get(k).cloned()
    }

    fn user(c: &Credentials) -> Option<String> {
        match &c.auth {
            RegistryAuth::Basic(u, _) => Some(u.clone()),
            _ => None,
        }
    }

    #[test]
    fn credential_order() {
        let d = tempfile::tempdir().unwrap();
        let cfg = r#"{"auths":{"https://127.0.0.1:5001":{"auth":"bWJ4Om1ieC1zZWNyZXQ="}}}"#; // mbx:mbx-secret
        std::fs::write(d.path().join("config.json"), cfg).unwrap();
        let env = env_of(HashMap::from([
            ("DOCKER_CONFIG", d.path().display().to_string()),
            ("GITHUB_ACTOR", "octocat".to_string()),
            ("GITHUB_TOKEN", "ghs_x".to_string()),
        ]));
        let none = Options::default();
        assert_eq!(
            user(&credentials("127.0.0.1:5001", &none, &env).unwrap()).as_deref(),
            Some("mbx")
        );
        let c = credentials("ghcr.io", &none, &env).unwrap();
        assert_eq!(user(&c).as_deref(), Some("octocat"));
        assert_eq!(c.source, "GITHUB_ACTOR and GITHUB_TOKEN");
        assert!(
            user(&credentials("127.0.0.1:5000", &none, &env).unwrap()).is_none(),
            "anonymous elsewhere"
        );
        let flags = Options {
            username: Some("me".into()),
            password: Some("pw".into()),
            ..Options::default()
        };
        assert_eq!(
            user(&credentials("127.0.0.1:5001", &flags, &env).unwrap()).as_deref(),
            Some("me")
        );
        // The flags are for the push's registry only: another one never sees them.
        let pushing = Options {
            login_host: Some("127.0.0.1:5001".into()),
            ..flags.clone()
        };
        assert_eq!(
            user(&credentials("127.0.0.1:5001", &pushing, &env).unwrap()).as_deref(),
            Some("me")
        );
        let other = credentials("127.0.0.1:5000", &pushing, &env).unwrap();
        assert!(user(&other).is_none(), "{}", other.source);
        let half = Options {
            username: Some("me".into()),
            ..Options::default()
        };
        assert_eq!(
            credentials("x", &half, &env).err().map(|e| e.exit_code()),
            Some(2)
        );
    }

    #[test]
    fn backoff_has_jitter_and_a_cap() {
        use backon::BackoffBuilder;
        let delays: Vec<Duration> = backoff().build().take(12).collect();
        assert!(delays[0] >= Duration::from_millis(150) && delays[0] <= Duration::from_millis(300));
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(8)),
            "{delays:?}"
        );
        let again: Vec<Duration> = backoff().build().take(12).collect();
        assert_ne!(delays, again, "jittered");
    }

    #[test]
    fn transient_faults() {
        for t in [
            "failed commit on ref \"index-sha256:ab\": unexpected status from PUT request to http://127.0.0.1:12360/v2/a/manifests/latest: 503 Service Unavailable",
            "unexpected status from PUT request to http://h/v2/a/blobs/uploads/x: 429 Too Many Requests",
            "failed to do request: Put \"http://h/v2/a/manifests/sha256:1\": EOF",
            "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer",
            "unexpected status: 502",
            "failed to push 127.0.0.1:12368/a: unavailable: injected fault",
            "failed to push h/a: toomanyrequests: slow down",
        ] {
            assert!(transient_fault(t), "{t}");
        }
        for t in [
            "unexpected status from HEAD request to http://h/v2/a/blobs/sha256:1: 401 Unauthorized",
            "step `RUN exit 3` failed: exit code: 3",
            "denied: requested access to the resource is denied",
            "failed to push: 404 Not Found",
            "port 5000: 5001 is taken",
        ] {
            assert!(!transient_fault(t), "{t}");
        }
    }

    #[test]
    fn error_envelope() {
        let b =
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_error_code(b).as_deref(), Some("MANIFEST_UNKNOWN"));
        assert_eq!(brief(b), "MANIFEST_UNKNOWN manifest unknown");
        assert_eq!(registry_error_code("<html>"), None);
    }
}
