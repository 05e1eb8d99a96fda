//! Verify stage: read the result back (registry or OCI layout) and prove every
//! requested platform is there and is what it claims to be.

pub mod elf;
pub mod index;
pub mod layout;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::platform::Platform;

pub use crate::oci::registry::{self, Options};
pub use index::Verification;

/// Where an image is read back from.
pub enum Source {
    Layout(layout::Layout),
    Registry(Box<registry::Registry>),
}

pub use crate::plan::Checks;

impl Source {
    /// A directory path is a layout; anything else an image reference.
    pub fn open(reference: &str, opts: &Options) -> Result<Source> {
        let p = Path::new(reference);
        if p.is_dir() {
            return Ok(Source::Layout(layout::Layout::open(p)?));
        }
        Ok(Source::Registry(Box::new(registry::Registry::new(
            reference, opts,
        )?)))
    }

    pub async fn top(&self) -> Result<(Vec<u8>, Option<String>)> {
        match self {
            Source::Layout(l) => l.top(),
            Source::Registry(r) => r.top().await.map(|(b, d)| (b, Some(d))),
        }
    }

    pub async fn manifest(&self, digest: &str) -> Result<(Vec<u8>, String)> {
        valid(digest)?;
        match self {
            Source::Layout(l) => l.blob(digest).map(|b| (b, digest.to_string())),
            Source::Registry(r) => r.manifest(digest).await,
        }
    }

    pub async fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        valid(digest)?;
        match self {
            Source::Layout(l) => l.blob(digest),
            Source::Registry(r) => r.blob(digest).await,
        }
    }

    /// A layer as a local file: the blob itself in a layout, a download
    /// into `tmp` from a registry.
    pub async fn layer_file(
        &self,
        digest: &str,
        size: u64,
        tmp: &Path,
        cap: u64,
    ) -> Result<PathBuf> {
        valid(digest)?;
        if size > cap {
            return Err(Error::verify(
                format!("layer {digest} is {size} bytes, over the cap of {cap}"),
                "raise --max-layer-bytes to check it",
            ));
        }
        match self {
            Source::Layout(l) => l.blob_path(digest),
            Source::Registry(r) => {
                let dest = tmp.join(digest.replace(':', "-"));
                r.blob_to_file(digest, &dest, cap).await?;
                Ok(dest)
            }
        }
    }
}

/// Digests come from the index and manifests, i.e. from whoever wrote the
/// image: one outside the grammar never reaches a file name or a URL.
fn valid(digest: &str) -> Result<()> {
    if crate::digest::is_valid(digest) {
        return Ok(());
    }
    Err(Error::verify(
        format!("`{digest}` is not a digest (algorithm:hex)"),
        "the image's index or manifest is damaged or hostile; rebuild and push it again",
    ))
}

/// Read `reference` and check it holds every platform in `required`.
pub async fn run(
    reference: &str,
    required: &[Platform],
    checks: &Checks,
    opts: &Options,
) -> Result<Verification> {
    let source = Source::open(reference, opts)?;
    let (top, digest) = source.top().await?;
    index::check(&source, &top, digest, required, checks).await
}

/// What the verify stage of a run leaves: every check, and the verdict.
#[derive(Debug, Default)]
pub struct VerifyRecord {
    pub checks: Vec<crate::run::Check>,
    pub verified: bool,
}

/// The verify stage of a run: every check of [`run`], plus whether the
/// reference resolves to the index the build stage merged (`merged`). A
/// result that cannot be read at all is one failed check, not an error.
pub async fn read_back(
    reference: &str,
    required: &[Platform],
    checks: &Checks,
    opts: &Options,
    merged: Option<&str>,
) -> VerifyRecord {
    let v = match run(reference, required, checks, opts).await {
        Ok(v) => v,
        Err(e) => {
            return VerifyRecord {
                checks: vec![crate::run::Check {
                    name: "read back".into(),
                    passed: false,
                    detail: e.to_string(),
                }],
                verified: false,
            }
        }
    };
    let mut checks = v.checks;
    if let (Some(read), Some(merged)) = (&v.index_digest, merged) {
        checks.push(crate::run::Check {
            name: "index digest".into(),
            passed: read == merged,
            detail: if read == merged {
                format!("{reference} resolves to the merged index")
            } else {
                format!("{reference} resolves to {read}, not the merged {merged}")
            },
        });
    }
    let verified = !checks.is_empty() && checks.iter().all(|c| c.passed);
    VerifyRecord { checks, verified }
}
