//! Verify stage: read the result back (registry or OCI layout) and prove every
//! requested platform is there and is what it claims to be.

pub mod index;
pub mod layout;
pub mod registry;

use std::path::Path;

use crate::error::Result;
use crate::platform::Platform;

pub use index::Verification;

/// Where an image is read back from.
pub enum Source {
    Layout(layout::Layout),
    Registry(registry::Registry),
}

impl Source {
    /// A directory path is a layout; anything else an image reference.
    pub fn open(reference: &str, insecure: &[String]) -> Result<Source> {
        let p = Path::new(reference);
        if p.is_dir() {
            return Ok(Source::Layout(layout::Layout::open(p)?));
        }
        Ok(Source::Registry(registry::Registry::new(
            reference, insecure,
        )?))
    }

    pub async fn top(&self) -> Result<(Vec<u8>, Option<String>)> {
        match self {
            Source::Layout(l) => l.top(),
            Source::Registry(r) => r.top().await.map(|(b, d)| (b, Some(d))),
        }
    }

    pub async fn manifest(&self, digest: &str) -> Result<(Vec<u8>, String)> {
        match self {
            Source::Layout(l) => l.blob(digest).map(|b| (b, digest.to_string())),
            Source::Registry(r) => r.manifest(digest).await,
        }
    }

    pub async fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        match self {
            Source::Layout(l) => l.blob(digest),
            Source::Registry(r) => r.blob(digest).await,
        }
    }
}

/// Read `reference` and check it holds every platform in `required`.
pub async fn run(
    reference: &str,
    required: &[Platform],
    exact: bool,
    insecure: &[String],
) -> Result<Verification> {
    let source = Source::open(reference, insecure)?;
    let (top, digest) = source.top().await?;
    index::check(&source, &top, digest, required, exact).await
}
