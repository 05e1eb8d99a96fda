//! `Platform`: parse, normalise, display, and decide native or emulated.
//!
//! Normalisation follows containerd's `platforms.Normalize`: `arm64` and
//! `arm64/v8` are the same platform, `arm` means `arm/v7`, `x86_64` means
//! `amd64`, `aarch64` means `arm64`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

/// Architectures BuildKit can target; anything else is a typo until proven otherwise.
const KNOWN_ARCHES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "mips64", "loong64",
];
const KNOWN_OSES: &[&str] = &["linux", "windows", "freebsd"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform `{input}`: {reason}; write it as os/arch[/variant], e.g. linux/amd64, linux/arm64, linux/arm/v7")]
pub struct ParsePlatformError {
    pub input: String,
    pub reason: String,
}

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let (arch, variant) = normalise_arch(arch, variant);
        Platform {
            os: os.to_ascii_lowercase(),
            arch,
            variant,
        }
    }

    /// The platform of the machine mbx runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// True when a `host` machine runs this platform's binaries without emulation.
    pub fn is_native_on(&self, host: &Platform) -> bool {
        if self.os != host.os {
            return false;
        }
        if self.arch == host.arch {
            return true;
        }
        // x86-64 CPUs run 32-bit x86 code natively.
        host.arch == "amd64" && self.arch == "386"
    }

    /// `os-arch[-variant]`, safe for file names and cache scopes: one file
    /// name whatever an index or image config called the platform (a
    /// character other than `[A-Za-z0-9._+-]` becomes `_`).
    pub fn slug(&self) -> String {
        let s = match &self.variant {
            Some(v) => format!("{}-{}-{}", self.os, self.arch, v),
            None => format!("{}-{}", self.os, self.arch),
        };
        s.chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '+' | '-' => c,
                _ => '_',
            })
            .collect()
    }

    /// Parse a comma- or newline-separated list, dropping duplicates, keeping order.
    pub fn parse_list(s: &str) -> Result<Vec<Platform>, ParsePlatformError> {
        let mut out: Vec<Platform> = Vec::new();
        for item in s
            .split([',', '\n'])
            .map(str::trim)
            .filter(|x| !x.is_empty())
        {
            let p: Platform = item.parse()?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            return Err(ParsePlatformError {
                input: s.to_string(),
                reason: "no platform given".into(),
            });
        }
        Ok(out)
    }
}

fn normalise_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(str::to_ascii_lowercase);
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => {
            // amd64/v1 is plain amd64.
            let v = variant.filter(|v| v != "v1");
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = variant.filter(|v| v != "v8");
            ("arm64".into(), v)
        }
        "armhf" | "armel" | "arm" => {
            let v = match (arch.as_str(), variant) {
                ("armel", None) => Some("v6".to_string()),
                (_, None) => Some("v7".to_string()),
                (_, Some(v)) if v == "7" || v == "8" || v == "6" || v == "5" => {
                    Some(format!("v{v}"))
                }
                (_, v) => v,
            };
            ("arm".into(), v)
        }
        "i386" | "i686" | "386" => ("386".into(), variant),
        _ => (arch, variant),
    }
}

impl FromStr for Platform {
    type Err = ParsePlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ParsePlatformError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] if !arch.is_empty() => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return Err(err("expected os/arch or os/arch/variant")),
        };
        if os.is_empty() || arch.is_empty() || variant.is_some_and(str::is_empty) {
            return Err(err("empty part"));
        }
        let p = Platform::new(os, arch, variant);
        if !KNOWN_OSES.contains(&p.os.as_str()) {
            return Err(err(&format!("`{}` is not an OS BuildKit builds for", p.os)));
        }
        if !KNOWN_ARCHES.contains(&p.arch.as_str()) {
            return Err(err(&format!(
                "`{}` is not a known architecture (known: {})",
                p.arch,
                KNOWN_ARCHES.join(", ")
            )));
        }
        if let Some(v) = &p.variant {
            let ok = match p.arch.as_str() {
                "arm" => ["v5", "v6", "v7", "v8"].contains(&v.as_str()),
                "arm64" => v.starts_with('v') && v.len() >= 2,
                "amd64" => ["v2", "v3", "v4"].contains(&v.as_str()),
                _ => false,
            };
            if !ok {
                return Err(err(&format!("`{v}` is not a variant of {}", p.arch)));
            }
        }
        Ok(p)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variant {
            Some(v) => write!(f, "{}/{}/{}", self.os, self.arch, v),
            None => write!(f, "{}/{}", self.os, self.arch),
        }
    }
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// In the record a platform is its `os/arch[/variant]` string.
impl schemars::JsonSchema for Platform {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Platform".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "os/arch[/variant], normalised as containerd does (linux/arm64, not linux/arm64/v8)",
            "pattern": "^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$",
            "examples": ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn normalises_aliases() {
        assert_eq!(p("linux/arm64/v8"), p("linux/arm64"));
        assert_eq!(p("linux/aarch64"), p("linux/arm64"));
        assert_eq!(p("linux/x86_64"), p("linux/amd64"));
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm/7").to_string(), "linux/arm/v7");
        assert_eq!(p("arm64").to_string(), "linux/arm64");
        assert_eq!(p("linux/amd64/v2").to_string(), "linux/amd64/v2");
        assert_eq!(p("LINUX/AMD64"), p("linux/amd64"));
    }

    #[test]
    fn rejects_unknown() {
        let e = "linux/arm65".parse::<Platform>().unwrap_err();
        assert!(e.to_string().contains("arm65"), "{e}");
        assert!(
            e.to_string().contains("linux/arm64"),
            "names an example: {e}"
        );
        assert!("linux/".parse::<Platform>().is_err());
        assert!("linux/arm64/v8/x".parse::<Platform>().is_err());
        assert!("plan9/amd64".parse::<Platform>().is_err());
        assert!("linux/amd64/v9".parse::<Platform>().is_err());
        assert!("linux/386/v2".parse::<Platform>().is_err());
    }

    #[test]
    fn list_keeps_order_and_drops_duplicates() {
        let l = Platform::parse_list("linux/amd64, linux/arm64\nlinux/arm64/v8,").unwrap();
        assert_eq!(l, vec![p("linux/amd64"), p("linux/arm64")]);
        assert!(Platform::parse_list(" , ").is_err());
    }

    #[test]
    fn native_or_emulated() {
        let x86 = p("linux/amd64");
        assert!(p("linux/amd64").is_native_on(&x86));
        assert!(p("linux/386").is_native_on(&x86));
        assert!(!p("linux/arm64").is_native_on(&x86));
        let arm = p("linux/arm64");
        assert!(p("linux/arm64").is_native_on(&arm));
        assert!(!p("linux/amd64").is_native_on(&arm));
    }

    #[test]
    fn slug_is_scope_safe() {
        assert_eq!(p("linux/arm/v7").slug(), "linux-arm-v7");
        assert_eq!(p("linux/amd64").slug(), "linux-amd64");
    }
}
