//! Bottom layer: OCI references, media types and the registry client (auth,
//! retries, deadlines). Uses no stage.

pub mod registry;

pub use registry::{is_loopback_host, Options, Registry};

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::platform::Platform;

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
