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
        // Twelve characters, not bytes: a digest read from a record may hold anything.
        Some((a, h)) => format!("{a}:{}", h.chars().take(12).collect::<String>()),
        None => digest.to_string(),
    }
}

/// Does `d` follow the OCI digest grammar (`algorithm:encoded`; for sha256,
/// 64 lowercase hex digits)? Digests read from indexes, manifests and
/// layouts become file names and URLs: anything else is refused first.
pub fn is_valid(d: &str) -> bool {
    let Some((algo, enc)) = d.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let algo_ok = algo.split(['+', '.', '_', '-']).all(component);
    let enc_ok = !enc.is_empty()
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    let sha256_ok = algo != "sha256"
        || (enc.len() == 64 && enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    algo_ok && enc_ok && sha256_ok
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

    #[test]
    fn digest_grammar() {
        assert!(super::is_valid(&super::sha256(b"x")));
        assert!(super::is_valid(
            "sha512+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g"
        ));
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "..:evil",
            "../../x:y",
            "sha256:../../etc",
            "SHA256:e3b0",
        ] {
            assert!(!super::is_valid(bad), "{bad}");
        }
    }
}
