//! `Registry`: the one client through which mbx reads images back (oci-client).
//! Plain http only for loopback hosts or ones the user names as insecure;
//! no platform resolver, so an index is never narrowed to one platform.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::error::{Error, Result};

pub const ACCEPTED: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

pub struct Registry {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
}

pub fn is_loopback_host(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Registry {
    pub fn new(reference: &str, insecure: &[String]) -> Result<Registry> {
        let reference: Reference = reference.parse().map_err(|e| {
            Error::input(
                format!("`{reference}` is not an image reference: {e}"),
                "pass REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST], or the path of an OCI layout directory",
            )
        })?;
        let host = reference.resolve_registry().to_string();
        let mut http: Vec<String> = insecure.to_vec();
        if is_loopback_host(&host) {
            http.push(host.clone());
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(http),
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let auth = docker_config_auth(&host).unwrap_or(RegistryAuth::Anonymous);
        Ok(Registry {
            client: Client::new(config),
            reference,
            auth,
        })
    }

    pub fn host(&self) -> &str {
        self.reference.resolve_registry()
    }

    fn at(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            digest.to_string(),
        )
    }

    /// The manifest the reference names: raw bytes and digest.
    pub async fn top(&self) -> Result<(Vec<u8>, String)> {
        self.manifest_at(&self.reference).await
    }

    pub async fn manifest(&self, digest: &str) -> Result<(Vec<u8>, String)> {
        self.manifest_at(&self.at(digest)).await
    }

    async fn manifest_at(&self, r: &Reference) -> Result<(Vec<u8>, String)> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(r, &self.auth, ACCEPTED)
            .await
            .map_err(|e| self.fault(r, e))?;
        Ok((bytes.to_vec(), digest))
    }

    pub async fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::new();
        let r = self.at(digest);
        self.client
            .pull_blob(&r, digest, &mut out)
            .await
            .map_err(|e| self.fault(&r, e))?;
        Ok(out)
    }

    fn fault(&self, r: &Reference, e: oci_client::errors::OciDistributionError) -> Error {
        let text = e.to_string();
        let help = if text.contains("error sending request") || text.contains("onnect") {
            format!("check the registry at {} is up and reachable (for mbx's test chain: scripts/chain-up)", self.host())
        } else if text.contains("401")
            || text.contains("403")
            || text.contains("nauthorized")
            || text.contains("enied")
        {
            format!(
                "log in first (`docker login {}`) or grant the token read access to packages",
                self.host()
            )
        } else {
            String::new()
        };
        Error::verify(format!("reading {r} failed: {text}"), help)
    }
}

/// Basic credentials for `host` from `~/.docker/config.json` (`auths.<host>.auth`).
fn docker_config_auth(host: &str) -> Option<RegistryAuth> {
    use base64::Engine;
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker"))
        })?;
    let text = std::fs::read(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let entry = auths
        .iter()
        .find(|(k, _)| {
            k.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                == host
        })?
        .1;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some(RegistryAuth::Basic(u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.1.2.3"));
        assert!(!is_loopback_host("ghcr.io"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("127.example.com:5000"));
        assert!(!is_loopback_host("registry.local:5000"));
    }
}
