//! BuildKit's `type=gha` cache key names, as BuildKit v0.13 writes them
//! (captured from a real export: `tests/data/gha-cache/`):
//!
//! - `buildkit-blob-1-sha256:<hex>`: one layer blob, content-addressed, shared
//!   by every scope (and every tool using BuildKit's gha cache) in the repository;
//! - `index-<scope>-1-<8 hex>#<n>`: the cache config of one scope; every export
//!   saves a new `#n` and BuildKit only ever reads the newest one.
//!
//! Anything else belongs to another tool and is never touched.

use crate::platform::Platform;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Blob {
        /// `sha256:<hex>`
        digest: String,
    },
    Index {
        scope: String,
        /// The stem shared by every `#n` version of this index
        /// (`index-<scope>-1-<hash>`).
        stem: String,
        /// The `#n` version, when present.
        seq: Option<u64>,
    },
    /// Not a BuildKit key.
    Other,
}

pub fn parse(key: &str) -> Key {
    if let Some(rest) = key.strip_prefix("buildkit-blob-") {
        // `<version>-<algo>:<hex>`
        if let Some((ver, digest)) = rest.split_once('-') {
            if is_digits(ver) && is_digest(digest) {
                return Key::Blob {
                    digest: digest.to_string(),
                };
            }
        }
        return Key::Other;
    }
    let Some(rest) = key.strip_prefix("index-") else {
        return Key::Other;
    };
    let (stem_rest, seq) = match rest.rsplit_once('#') {
        Some((s, n)) if is_digits(n) => (s, n.parse().ok()),
        Some(_) => return Key::Other,
        None => (rest, None),
    };
    // `<scope>-<version>-<8 hex>` (BuildKit ≥ 0.12) or `<scope>-<version>`.
    let mut scope = stem_rest;
    if let Some((s, h)) = scope.rsplit_once('-') {
        if h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some((s2, v)) = s.rsplit_once('-') {
                if is_digits(v) {
                    scope = s2;
                }
            }
        }
    }
    if scope == stem_rest {
        match stem_rest.rsplit_once('-') {
            Some((s, v)) if is_digits(v) => scope = s,
            _ => return Key::Other,
        }
    }
    if scope.is_empty() {
        return Key::Other;
    }
    Key::Index {
        scope: scope.to_string(),
        stem: format!("index-{stem_rest}"),
        seq,
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_digest(s: &str) -> bool {
    match s.split_once(':') {
        Some((algo, hex)) => {
            !algo.is_empty()
                && algo.bytes().all(|b| b.is_ascii_alphanumeric())
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// An mbx scope, `<prefix>-<os>-<arch>[-<variant>]`: its prefix (the image)
/// and platform. `None` for scopes other tools or hand-written flags made.
pub fn mbx_scope(scope: &str) -> Option<(String, Platform)> {
    for os in ["linux", "windows", "darwin", "freebsd"] {
        let marker = format!("-{os}-");
        let Some(at) = scope.rfind(&marker) else {
            continue;
        };
        let prefix = &scope[..at];
        let tail = &scope[at + marker.len()..];
        if prefix.is_empty() || tail.is_empty() {
            continue;
        }
        let spec = format!("{os}/{}", tail.replacen('-', "/", 1));
        if let Ok(p) = spec.parse::<Platform>() {
            if p.slug() == format!("{os}-{tail}") && KNOWN_ARCHES.contains(&p.arch.as_str()) {
                return Some((prefix.to_string(), p));
            }
        }
    }
    None
}

const KNOWN_ARCHES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "mips64", "loong64",
];

/// A `--scope` glob (`*`, `?`, `[…]`, `{a,b}`) matched against whole scope names.
pub fn scope_glob(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(globset::Glob::new(pattern)?.compile_matcher())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys from a real export through act's cache server (tests/data/gha-cache).
    fn captured() -> Vec<String> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/gha-cache/act-cache-entries.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn parses_every_captured_key() {
        let keys = captured();
        let mut blobs = 0;
        let mut scopes = Vec::new();
        for k in &keys {
            match parse(k) {
                Key::Blob { digest } => {
                    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{k}");
                    blobs += 1;
                }
                Key::Index { scope, stem, seq } => {
                    assert!(k.starts_with(&stem), "{k}");
                    assert!(seq.is_some(), "{k}");
                    scopes.push(scope);
                }
                Key::Other => panic!("real BuildKit key not recognised: {k}"),
            }
        }
        assert_eq!(blobs, 15);
        scopes.sort();
        assert_eq!(
            scopes,
            [
                "hello-linux-amd64",
                "hello-linux-amd64",
                "hello-linux-arm64"
            ]
        );
    }

    #[test]
    fn index_versions_share_a_stem() {
        let a = parse("index-hello-linux-amd64-1-f921bd05#1");
        let b = parse("index-hello-linux-amd64-1-f921bd05#2");
        match (a, b) {
            (
                Key::Index {
                    stem: s1, seq: n1, ..
                },
                Key::Index {
                    stem: s2, seq: n2, ..
                },
            ) => {
                assert_eq!(s1, s2);
                assert_eq!((n1, n2), (Some(1), Some(2)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("index-buildkit-1"),
            Key::Index {
                scope: "buildkit".into(),
                stem: "index-buildkit-1".into(),
                seq: None
            }
        );
    }

    #[test]
    fn other_tools_keys_are_other() {
        for k in [
            "Linux-node-958aff96db2d75d67787d1e634ae70b659de937b",
            "index-",
            "index-foo",
            "index-foo#bar",
            "buildkit-blob-1-notadigest",
            "buildkit-blob-x-sha256:1c1bd2a9fdac61cc7704c4225a49b3d7c2eb4cb1eb22ee887ae65b24365ff511",
            "setup-rust-Linux-x64-index-abc",
        ] {
            assert_eq!(parse(k), Key::Other, "{k}");
        }
    }

    #[test]
    fn mbx_scopes() {
        let (img, p) = mbx_scope("hello-linux-arm64").unwrap();
        assert_eq!(
            (img.as_str(), p.to_string().as_str()),
            ("hello", "linux/arm64")
        );
        let (img, p) = mbx_scope("acme-app-linux-arm-v7").unwrap();
        assert_eq!(
            (img.as_str(), p.to_string().as_str()),
            ("acme-app", "linux/arm/v7")
        );
        assert!(mbx_scope("buildkit").is_none());
        assert!(mbx_scope("linux-amd64").is_none(), "no image prefix");
        assert!(mbx_scope("app-linux-banana").is_none());
    }

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| scope_glob(p).unwrap().is_match(s);
        assert!(m("hello-*", "hello-linux-arm64"));
        assert!(m("*-linux-arm??", "x-linux-arm64"));
        assert!(!m("hello-*-amd64", "hello-linux-arm64"));
        assert!(!m("hello", "hello-linux-arm64"), "the whole name");
        assert!(m("*", ""));
        assert!(m("app-linux-{amd64,arm64}", "app-linux-arm64"));
        assert!(scope_glob("app-[").is_err());
    }
}
