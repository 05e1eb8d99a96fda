//! Bottom layer: OCI references, media types and the registry client (auth,
//! retries, deadlines). Uses no stage.

pub mod registry;

pub use registry::{is_loopback_host, Options, Registry};

use std::collections::BTreeMap;

pub use oci_client::Reference;
use serde::Deserialize;

use crate::platform::Platform;

/// An image reference (`[registry/]repository[:tag][@digest]`, Docker's
/// grammar: no registry means docker.io), parsed by oci-client. A bare
/// `host:port` (`127.0.0.1:5000`, `localhost:5000`, `registry.local:5000`)
/// would read as a Docker Hub image `host` with tag `port`: it is refused
/// rather than sent to Docker Hub.
pub fn parse_reference(s: &str) -> Result<Reference, String> {
    let s = s.trim();
    if let Some(host) = bare_registry_address(s) {
        return Err(format!(
            "`{s}` is a registry address, not an image; name the repository too: `{host}/NAME[:TAG]`"
        ));
    }
    Reference::try_from(s).map_err(|e| e.to_string())
}

/// `Some(s)` when `s` has no `/` and reads as `host:port`: the host is
/// `localhost`, an IP address, or a dotted name, and the "tag" is a port.
fn bare_registry_address(s: &str) -> Option<&str> {
    if s.contains('/') || s.contains('@') {
        return None;
    }
    let (host, port) = s.rsplit_once(':')?;
    let port_like = !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit());
    let host_like = host == "localhost"
        || host.contains('.')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok();
    (port_like && host_like).then_some(s)
}

/// The most mbx reads into memory of one manifest, index or image config
/// (containerd refuses manifests over 4 MiB; configs are smaller still).
/// Layers are streamed to disk under their own cap (`--max-layer-bytes`).
pub const MAX_DOCUMENT_BYTES: u64 = 16 << 20;

/// An image manifest or index, as much of it as mbx reads.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    pub platform: Option<DescPlatform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DescPlatform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

pub const ATTESTATION_TYPE: &str = "vnd.docker.reference.type";
pub const ATTESTATION_REF: &str = "vnd.docker.reference.digest";

impl Descriptor {
    pub fn is_attestation(&self) -> bool {
        self.annotations.get(ATTESTATION_TYPE).map(String::as_str) == Some("attestation-manifest")
    }

    pub fn platform(&self) -> Option<Platform> {
        let p = self.platform.as_ref()?;
        Some(Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
    }
}

pub fn is_index_type(mt: &str) -> bool {
    mt == "application/vnd.oci.image.index.v1+json"
        || mt == "application/vnd.docker.distribution.manifest.list.v2+json"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = parse_reference("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "team/app", Some("v1"))
        );
        let r = parse_reference("acme/app").unwrap();
        assert_eq!((r.registry(), r.repository()), ("docker.io", "acme/app"));
        assert_eq!(r.resolve_registry(), "index.docker.io");
        assert!(parse_reference("ghcr.io/A/b").is_err());
        assert!(parse_reference("ghcr.io/a/b@sha256:12").is_err());
        assert!(parse_reference("ubuntu:22.04").is_ok(), "a Docker Hub tag");
    }

    #[test]
    fn a_bare_registry_address_is_not_a_docker_hub_image() {
        for s in [
            "127.0.0.1:5000",
            "localhost:5000",
            "registry.local:5000",
            "[::1]:5000",
        ] {
            let e = parse_reference(s).unwrap_err();
            assert!(
                e.contains("is a registry address") && e.contains("/NAME"),
                "{s}: {e}"
            );
        }
        assert!(parse_reference("127.0.0.1:5000/app").is_ok());
        assert!(
            parse_reference("app:5000").is_ok(),
            "a Docker Hub image with a numeric tag"
        );
    }
}
