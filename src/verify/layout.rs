//! Reading an OCI image layout directory (what `mbx ci --local` writes).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

    pub fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let (algo, hex) = digest
            .split_once(':')
            .ok_or_else(|| Error::verify(format!("`{digest}` is not a digest"), ""))?;
        if hex.contains(['/', '.']) {
            return Err(Error::verify(format!("`{digest}` is not a digest"), ""));
        }
        let path = self.dir.join("blobs").join(algo).join(hex);
        let bytes = std::fs::read(&path).map_err(|e| {
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
        let (algo, hex) = digest
            .split_once(':')
            .filter(|(_, h)| !h.contains(['/', '.']))
            .ok_or_else(|| Error::verify(format!("`{digest}` is not a digest"), ""))?;
        let path = self.dir.join("blobs").join(algo).join(hex);
        if !path.is_file() {
            return Err(Error::verify(
                format!("blob {digest} missing from {}", self.dir.display()),
                "",
            ));
        }
        Ok(path)
    }

    /// The image index the layout holds: `index.json` names one index blob
    /// (as buildx and mbx write it), or is itself the list of manifests.
    pub fn top(&self) -> Result<(Vec<u8>, Option<String>)> {
        let text = std::fs::read(self.dir.join("index.json"))
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
