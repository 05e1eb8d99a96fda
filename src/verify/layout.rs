//! Reading an OCI image layout directory (what `mbx ci --local` writes).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::oci::MAX_DOCUMENT_BYTES;

pub struct Layout {
    pub dir: PathBuf,
}

pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl Layout {
    pub fn open(dir: &Path) -> Result<Layout> {
        if !dir.join("oci-layout").is_file() || !dir.join("index.json").is_file() {
            return Err(Error::input(
                format!("`{}` is not an OCI image layout (no oci-layout and index.json)", dir.display()),
                "pass the directory written by `mbx ci --local` (default mbx-out) or an image reference",
            ));
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// A manifest, index or config blob, read whole (at most
    /// [`MAX_DOCUMENT_BYTES`]) and checked against its digest.
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.path_of(digest)?;
        let bytes = read_capped(&path).map_err(|e| {
            Error::verify(
                format!("blob {digest} missing from {}: {e}", self.dir.display()),
                "",
            )
        })?;
        let actual = crate::digest::sha256(&bytes);
        if actual != digest {
            return Err(Error::verify(
                format!(
                    "blob {} is corrupt: its content hashes to {actual}",
                    path.display()
                ),
                "rebuild the layout",
            ));
        }
        Ok(bytes)
    }

    /// The path of a blob in the layout (layers are read in place).
    pub fn blob_path(&self, digest: &str) -> Result<std::path::PathBuf> {
        let path = self.path_of(digest)?;
        if !path.is_file() {
            return Err(Error::verify(
                format!("blob {digest} missing from {}", self.dir.display()),
                "",
            ));
        }
        Ok(path)
    }

    /// `blobs/ALGO/HEX` of a digest that follows the grammar (never a path
    /// out of the layout).
    fn path_of(&self, digest: &str) -> Result<PathBuf> {
        match digest.split_once(':') {
            Some((algo, hex)) if crate::digest::is_valid(digest) => {
                Ok(self.dir.join("blobs").join(algo).join(hex))
            }
            _ => Err(Error::verify(format!("`{digest}` is not a digest"), "")),
        }
    }

    /// The image index the layout holds: `index.json` names one index blob
    /// (as buildx and mbx write it), or is itself the list of manifests.
    pub fn top(&self) -> Result<(Vec<u8>, Option<String>)> {
        let text = read_capped(&self.dir.join("index.json"))
            .map_err(|e| Error::verify(format!("cannot read index.json: {e}"), ""))?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::verify(format!("index.json is not JSON: {e}"), ""))?;
        let manifests = v
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        if let [only] = manifests.as_slice() {
            let mt = only.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
            let digest = only.get("digest").and_then(|d| d.as_str()).unwrap_or("");
            if mt == INDEX
                || mt.ends_with("manifest.list.v2+json")
                || mt.ends_with("manifest.v1+json")
                || mt.ends_with("manifest.v2+json")
            {
                return Ok((self.blob(digest)?, Some(digest.to_string())));
            }
        }
        Ok((text, None))
    }
}

/// A file of at most [`MAX_DOCUMENT_BYTES`] (a layout may come from anyone).
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let too_big = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_DOCUMENT_BYTES} bytes, more than any manifest or config"),
        )
    };
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() > MAX_DOCUMENT_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}
