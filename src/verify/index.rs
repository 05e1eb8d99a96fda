//! The checks on an image index read back from a registry or a layout.

use serde::Deserialize;

use crate::error::Result;
pub use crate::oci::{
    is_index_type, DescPlatform, Descriptor, Manifest, ATTESTATION_REF, ATTESTATION_TYPE,
};
use crate::platform::Platform;
use crate::run::Check;
use crate::verify::elf;
use crate::verify::{Checks, Source};

#[derive(Debug, Deserialize)]
struct ImageConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
}

/// What verification found.
#[derive(Debug, Default)]
pub struct Verification {
    pub index_digest: Option<String>,
    /// Each platform in the index with its manifest digest.
    pub platforms: Vec<(Platform, String)>,
    pub checks: Vec<Check>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn push(&mut self, name: impl Into<String>, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            passed,
            detail: detail.into(),
        });
    }
}

/// Run every check on the index `top` (raw bytes) read from `source`.
pub async fn check(
    source: &Source,
    top: &[u8],
    top_digest: Option<String>,
    required: &[Platform],
    checks: &Checks,
) -> Result<Verification> {
    let exact = checks.exact;
    let mut v = Verification {
        index_digest: top_digest,
        ..Default::default()
    };
    let parsed: Manifest = match serde_json::from_slice(top) {
        Ok(m) => m,
        Err(e) => {
            v.push("index", false, format!("not a manifest or index: {e}"));
            return Ok(v);
        }
    };
    let Some(manifests) = parsed.manifests.filter(|_| parsed.config.is_none()) else {
        not_an_index(source, parsed.config.as_ref(), required, &mut v).await;
        return Ok(v);
    };

    let (attestations, images): (Vec<&Descriptor>, Vec<&Descriptor>) =
        manifests.iter().partition(|d| d.is_attestation());
    v.push(
        "index",
        true,
        format!(
            "{} with {} platform manifest(s) and {} attestation(s)",
            parsed.media_type.as_deref().unwrap_or("index"),
            images.len(),
            attestations.len()
        ),
    );

    let listed: Vec<(Platform, &Descriptor)> = images
        .iter()
        .filter_map(|d| Some((d.platform()?, *d)))
        .collect();
    let unplatformed = images.len() - listed.len();
    if unplatformed > 0 {
        v.push(
            "descriptors",
            false,
            format!("{unplatformed} manifest(s) in the index carry no platform"),
        );
    }
    check_presence(&mut v, required, &listed, exact);

    let tmp = tempfile::Builder::new()
        .prefix("mbx-verify-")
        .tempdir()
        .map_err(|e| {
            crate::error::Error::env(
                format!("cannot create a temporary directory: {e}"),
                "check TMPDIR",
            )
        })?;
    // Every platform's manifest, config (and layers) are read concurrently.
    let per_platform = futures::future::join_all(
        listed
            .iter()
            .map(|(p, d)| check_platform(source, p, d, checks, tmp.path())),
    )
    .await;
    for ((p, d), platform_checks) in listed.iter().zip(per_platform) {
        v.platforms.push((p.clone(), d.digest.clone()));
        v.checks.extend(platform_checks);
    }

    check_attestations(&mut v, &attestations, &images);
    Ok(v)
}

/// A single-platform image where an index was wanted: say which platform it holds.
async fn not_an_index(
    source: &Source,
    config: Option<&Descriptor>,
    required: &[Platform],
    v: &mut Verification,
) {
    // A single-platform image: say which platform it holds.
    let holds = match config {
        Some(c) => match source.blob(&c.digest).await {
            Ok(b) => serde_json::from_slice::<ImageConfig>(&b)
                .map(|c| Platform::new(&c.os, &c.architecture, c.variant.as_deref()).to_string())
                .unwrap_or_else(|_| "an unreadable config".into()),
            Err(_) => "an unreadable config".into(),
        },
        None => "no config".into(),
    };
    v.push(
        "index",
        false,
        format!("not multi-platform: holds only {holds}"),
    );
    for p in required {
        v.push(format!("platform {p}"), false, "no index to hold it");
    }
}

/// Every required platform in the index; extra ones fail only with `--exact`.
fn check_presence(
    v: &mut Verification,
    required: &[Platform],
    listed: &[(Platform, &Descriptor)],
    exact: bool,
) {
    for p in required {
        match listed.iter().find(|(lp, _)| lp == p) {
            Some((_, d)) => v.push(
                format!("platform {p}"),
                true,
                format!("present: {}", d.digest),
            ),
            None => {
                let holds: Vec<String> = listed.iter().map(|(p, _)| p.to_string()).collect();
                v.push(
                    format!("platform {p}"),
                    false,
                    format!(
                        "missing from the index (it holds: {})",
                        if holds.is_empty() {
                            "nothing".into()
                        } else {
                            holds.join(", ")
                        }
                    ),
                );
            }
        }
    }
    let extra: Vec<String> = listed
        .iter()
        .filter(|(p, _)| !required.contains(p))
        .map(|(p, _)| p.to_string())
        .collect();
    if !extra.is_empty() {
        v.push(
            "extra platforms",
            !exact,
            format!(
                "{} {}",
                extra.join(", "),
                if exact {
                    "not required (--exact)"
                } else {
                    "present, not required"
                }
            ),
        );
    }
}

/// Each attestation manifest points at an image in the index.
fn check_attestations(v: &mut Verification, attestations: &[&Descriptor], images: &[&Descriptor]) {
    if !attestations.is_empty() {
        let dangling: Vec<&str> = attestations
            .iter()
            .filter(|a| {
                let target = a.annotations.get(ATTESTATION_REF);
                !target.is_some_and(|t| images.iter().any(|d| &d.digest == t))
            })
            .map(|a| a.digest.as_str())
            .collect();
        if dangling.is_empty() {
            v.push(
                "attestations",
                true,
                format!(
                    "{} attestation manifest(s), each for an image in the index",
                    attestations.len()
                ),
            );
        } else {
            v.push(
                "attestations",
                false,
                format!(
                    "attestation(s) {} point at no image in the index",
                    dangling.join(", ")
                ),
            );
        }
    }
}

/// The checks of one platform's manifest: fetchable, media type, config
/// platform, and (with `--check-binaries`) the ELF machine of its binaries.
async fn check_platform(
    source: &Source,
    p: &Platform,
    d: &Descriptor,
    checks: &Checks,
    tmp: &std::path::Path,
) -> Vec<Check> {
    let name = format!("manifest {p}");
    let fail = |detail: String| {
        vec![Check {
            name: name.clone(),
            passed: false,
            detail,
        }]
    };
    let (bytes, _) = match source.manifest(&d.digest).await {
        Ok(x) => x,
        Err(e) => return fail(format!("cannot fetch {}: {e}", d.digest)),
    };
    let m: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => return fail(format!("{} is not a manifest: {e}", d.digest)),
    };
    if let Some(mt) = m.media_type.as_deref() {
        if mt != d.media_type {
            return fail(format!(
                "the index says {} but the manifest is {mt}",
                d.media_type
            ));
        }
    }
    let Some(cfg) = m.config else {
        return fail(format!("{} has no config", d.digest));
    };
    let config: ImageConfig = match source.blob(&cfg.digest).await.and_then(|b| {
        serde_json::from_slice(&b)
            .map_err(|e| crate::error::Error::verify(format!("config is not JSON: {e}"), ""))
    }) {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot read config {}: {e}", cfg.digest)),
    };
    let says = Platform::new(&config.os, &config.architecture, config.variant.as_deref());
    let mut out = vec![if &says == p {
        Check {
            name: name.clone(),
            passed: true,
            detail: format!("config says {says}"),
        }
    } else {
        Check {
            name: name.clone(),
            passed: false,
            detail: format!("the index lists it as {p} but its config says {says}"),
        }
    }];
    if checks.binaries {
        out.push(check_binaries(source, p, &m.layers, checks.max_layer_bytes, tmp).await);
    }
    out
}

async fn check_binaries(
    source: &Source,
    p: &Platform,
    layers: &[Descriptor],
    cap: u64,
    tmp: &std::path::Path,
) -> Check {
    let name = format!("binaries {p}");
    let Some(expected) = elf::expected_machine(p) else {
        return Check {
            name,
            passed: false,
            detail: format!("mbx does not know the ELF machine of {p}"),
        };
    };
    let mut scan = elf::ElfScan::default();
    // Platforms may share a layer digest: each downloads into its own directory.
    let tmp = tmp.join(p.slug());
    if let Err(e) = std::fs::create_dir_all(&tmp) {
        return Check {
            name,
            passed: false,
            detail: format!("cannot create {}: {e}", tmp.display()),
        };
    }
    for layer in layers {
        let file = match source
            .layer_file(&layer.digest, layer.size, &tmp, cap)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                return Check {
                    name,
                    passed: false,
                    detail: e.to_string(),
                }
            }
        };
        let result = tokio::task::spawn_blocking({
            let file = file.clone();
            move || elf::scan_layer(&file, expected)
        })
        .await;
        if matches!(source, Source::Registry(_)) {
            let _ = std::fs::remove_file(&file);
        }
        match result {
            Ok(Ok(s)) => scan.merge(s),
            Ok(Err(e)) => {
                return Check {
                    name,
                    passed: false,
                    detail: format!("layer {} is not a readable tar: {e}", layer.digest),
                }
            }
            Err(e) => {
                return Check {
                    name,
                    passed: false,
                    detail: format!("scanning layer {} failed: {e}", layer.digest),
                }
            }
        }
    }
    match scan.mismatches.first() {
        None if scan.checked == 0 => Check {
            name,
            passed: true,
            detail: "no ELF executables or libraries in the layers".into(),
        },
        None => Check {
            name,
            passed: true,
            detail: format!(
                "{} ELF file(s), all {}",
                scan.checked,
                elf::machine_name(expected)
            ),
        },
        Some((path, machine)) => Check {
            name,
            passed: false,
            detail: format!(
                "{path} is {} but {p} needs {} ({} of {} ELF file(s) wrong)",
                elf::machine_name(*machine),
                elf::machine_name(expected),
                scan.mismatch_count,
                scan.checked
            ),
        },
    }
}
