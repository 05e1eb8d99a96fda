//! Content digests.

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `sha256:0123456789ab` for tables.
pub fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((a, h)) => format!("{a}:{}", &h[..h.len().min(12)]),
        None => digest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        assert_eq!(
            super::sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            super::short("sha256:e3b0c44298fc1c149afbf4c8996fb924"),
            "sha256:e3b0c44298fc"
        );
    }
}
