//! Joining per-platform results into one multi-platform index: in an OCI
//! layout on disk, or in the registry with `docker buildx imagetools create`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::digest::sha256;
use crate::docker::buildx::Buildx;
use crate::error::{Error, Result};
use crate::oci::{is_index_type, Descriptor};
use crate::platform::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The merged index: its digest and each platform's manifest digest.
#[derive(Debug, Clone)]
pub struct Merged {
    pub index_digest: String,
    /// The index's media type and size.
    pub descriptor: crate::run::IndexDescriptor,
    pub platform_digests: BTreeMap<String, String>,
    /// The index's exact bytes.
    pub index: Vec<u8>,
}

fn platform_digests(children: &[Value]) -> BTreeMap<String, String> {
    children
        .iter()
        .filter_map(|c| serde_json::from_value::<Descriptor>(c.clone()).ok())
        .filter(|d| !d.is_attestation())
        .filter_map(|d| Some((d.platform()?.to_string(), d.digest)))
        .collect()
}

/// Merge the per-platform OCI layouts under `root` (one folder each, named
/// by the platform's slug) into the layout at `out`, whose `index.json` then
/// names one image index tagged `ref_name`.
pub fn layouts(
    platforms: &[Platform],
    root: &Path,
    out: &Path,
    ref_name: &str,
    annotations: &[String],
) -> Result<Merged> {
    let io = |what: &str, e: std::io::Error| {
        Error::build(
            format!("merging the OCI layouts: {what}: {e}"),
            "check free disk space and permissions of --output",
        )
    };
    let blobs = out.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| io("create blobs", e))?;
    let mut children: Vec<Value> = Vec::new();
    for platform in platforms {
        let dir = root.join(platform.slug());
        // Copy blobs (hard links when possible).
        let src_blobs = dir.join("blobs").join("sha256");
        for entry in
            std::fs::read_dir(&src_blobs).map_err(|e| io(&src_blobs.display().to_string(), e))?
        {
            let entry = entry.map_err(|e| io("read blobs", e))?;
            let dest = blobs.join(entry.file_name());
            if !dest.exists() && std::fs::hard_link(entry.path(), &dest).is_err() {
                std::fs::copy(entry.path(), &dest).map_err(|e| io("copy blob", e))?;
            }
        }
        let index: Value = serde_json::from_slice(
            &crate::error::read_capped(&dir.join("index.json"), crate::oci::MAX_DOCUMENT_BYTES)
                .map_err(|e| io("read part index.json", e))?,
        )
        .map_err(|e| {
            Error::build(
                format!("{}: index.json is not JSON: {e}", dir.display()),
                "",
            )
        })?;
        for d in index["manifests"].as_array().cloned().unwrap_or_default() {
            let mt = d["mediaType"].as_str().unwrap_or_default();
            if is_index_type(mt) {
                // A per-platform index (image + attestation): take its children.
                let digest = d["digest"].as_str().unwrap_or_default();
                let blob = blobs.join(digest.trim_start_matches("sha256:"));
                let bytes = crate::error::read_capped(&blob, crate::oci::MAX_DOCUMENT_BYTES)
                    .map_err(|e| io("read part index blob", e))?;
                let inner: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::build(format!("index {digest} is not JSON: {e}"), ""))?;
                children.extend(inner["manifests"].as_array().cloned().unwrap_or_default());
            } else {
                children.push(child_descriptor(&d, platform));
            }
        }
    }
    let index_annotations = annotate(&mut children, annotations);
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children,
    });
    if !index_annotations.is_empty() {
        index["annotations"] = Value::Object(index_annotations);
    }
    let bytes = serde_json::to_vec_pretty(&index).expect("json");
    let digest = sha256(&bytes);
    std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), &bytes)
        .map_err(|e| io("write index", e))?;
    let top = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_INDEX,
            "digest": digest,
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": ref_name},
        }],
    });
    std::fs::write(
        out.join("index.json"),
        serde_json::to_vec_pretty(&top).expect("json"),
    )
    .map_err(|e| io("write index.json", e))?;
    std::fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| io("write oci-layout", e))?;
    Ok(Merged {
        index_digest: digest,
        descriptor: crate::run::IndexDescriptor {
            media_type: OCI_INDEX.into(),
            size: bytes.len() as u64,
        },
        platform_digests: platform_digests(&children),
        index: bytes,
    })
}

/// `manifest-descriptor:` annotations onto every descriptor of the index
/// (as imagetools create puts them); returns the `index:` ones.
fn annotate(children: &mut [Value], annotations: &[String]) -> serde_json::Map<String, Value> {
    let of = |prefix: &str| -> serde_json::Map<String, Value> {
        annotations
            .iter()
            .filter_map(|a| a.strip_prefix(prefix)?.split_once('='))
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    };
    let descriptors = of("manifest-descriptor:");
    if !descriptors.is_empty() {
        for c in children.iter_mut() {
            let a = c
                .as_object_mut()
                .expect("a descriptor")
                .entry("annotations")
                .or_insert_with(|| json!({}));
            if let Some(a) = a.as_object_mut() {
                a.extend(descriptors.clone());
            }
        }
    }
    of("index:")
}

/// A part's image descriptor as a child of the merged index: without the
/// part's own ref-name annotations, with the platform it was built for.
fn child_descriptor(d: &Value, platform: &Platform) -> Value {
    let mut d = d.clone();
    if let Some(a) = d.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove("org.opencontainers.image.ref.name");
        a.remove("io.containerd.image.name");
        if a.is_empty() {
            d.as_object_mut().map(|o| o.remove("annotations"));
        }
    }
    if d.get("platform").is_none() {
        let mut p = json!({"os": platform.os, "architecture": platform.arch});
        if let Some(v) = &platform.variant {
            p["variant"] = json!(v);
        }
        d["platform"] = p;
    }
    d
}

/// Merge pushed per-platform digests into one index under every tag.
/// The dry run prints the exact bytes that are pushed, so the index digest
/// is known without a second read; it runs beside the push.
pub fn registry(
    buildx: &Buildx,
    builder: &str,
    repository: &str,
    tags: &[String],
    digests: &[String],
    annotations: &[String],
) -> Result<Merged> {
    let tags: Vec<String> = tags.iter().map(|t| format!("{repository}:{t}")).collect();
    let sources: Vec<String> = digests
        .iter()
        .map(|d| format!("{repository}@{d}"))
        .collect();
    let fail = |e: Error| {
        Error::build(
        format!("merging the platforms into {repository} failed: {e}"),
        "the per-platform images were pushed by digest but no tag points at them; check registry access and run again",
    )
    };
    let create = |dry_run: bool| {
        with_retries(&format!("merging into {repository}"), || {
            buildx.imagetools_create(builder, &tags, &sources, annotations, dry_run)
        })
    };
    let fail = |e: Error| {
        let mut e = fail(e);
        if let Error::Build { help, .. } = &mut e {
            *help = format!(
                "no tag moved; pushed by digest only: {}. Check the registry and run again (or join them with `mbx merge`)",
                sources.join(", ")
            );
        }
        e
    };
    // The dry run (the exact bytes) beside the push: one imagetools round
    // trip of wall time instead of two. The push decides whether tags moved.
    let (printed, pushed) = std::thread::scope(|s| {
        let dry = s.spawn(|| create(true));
        let pushed = create(false);
        (dry.join(), pushed)
    });
    pushed.map_err(fail)?;
    let printed = match printed {
        Ok(Ok(p)) => p,
        _ => create(true).map_err(|e| {
            Error::build(
                format!("the index is pushed under every tag of {repository}, but printing it failed: {e}"),
                "read it back with `mbx verify IMAGE`",
            )
        })?,
    };
    let bytes = printed.strip_suffix('\n').unwrap_or(&printed).as_bytes();
    let index: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::build(format!("imagetools printed no index: {e}"), ""))?;
    Ok(Merged {
        index: bytes.to_vec(),
        index_digest: sha256(bytes),
        descriptor: crate::run::IndexDescriptor {
            media_type: index["mediaType"].as_str().unwrap_or(OCI_INDEX).to_string(),
            size: bytes.len() as u64,
        },
        platform_digests: platform_digests(
            index["manifests"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        ),
    })
}

/// `f` again while it fails on a registry fault that may pass (a 5xx, 429,
/// a reset connection: [`crate::oci::registry::transient_fault`]), with
/// exponential backoff and jitter from 1 s, at most [`MERGE_ATTEMPTS`]
/// times in all (under a minute); any other failure at once. Pushing the
/// same index again is harmless: its digest is its content.
fn with_retries<T>(what: &str, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut delays = crate::oci::registry::fault_delays(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(8),
        MERGE_ATTEMPTS,
    );
    loop {
        let e = match f() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let text = e.to_string();
        let delay = match delays.next() {
            Some(d) if crate::oci::registry::transient_fault(&text) => d,
            _ => return Err(e),
        };
        tracing::warn!(
            "{what}: registry fault, trying again in {:.1}s: {}",
            delay.as_secs_f64(),
            text.lines().last().unwrap_or("")
        );
        std::thread::sleep(delay);
    }
}

/// Attempts at each `imagetools create` (the dry run and the push).
pub const MERGE_ATTEMPTS: usize = 5;

/// The `name=` field of a per-platform push: the output's repository and
/// every other one, quoted when several (buildx reads the field as CSV).
pub fn names(repository: &str, more: &[(String, Vec<String>)]) -> String {
    if more.is_empty() {
        return format!("name={repository}");
    }
    let all: Vec<&str> = std::iter::once(repository)
        .chain(more.iter().map(|(r, _)| r.as_str()))
        .collect();
    format!("\"name={}\"", all.join(","))
}

/// The other repositories' staging tags of one platform (docker driver).
pub fn staging(more: &[(String, Vec<String>)], slug: &str) -> Vec<(String, Vec<String>)> {
    more.iter()
        .map(|(r, _)| (format!("{r}:{}-{slug}", super::STAGING_PREFIX), Vec::new()))
        .collect()
}

/// The references of the other repositories, `REPO:TAG` each.
pub fn more_refs(more: &[(String, Vec<String>)]) -> Vec<String> {
    more.iter()
        .flat_map(|(r, tags)| tags.iter().map(move |t| format!("{r}:{t}")))
        .collect()
}

/// [`registry`] for the output's repository, then for every other one from
/// its own copy of the platforms: the same index (same bytes, same digest)
/// under every tag in every repository.
pub fn registries(
    buildx: &Buildx,
    builder: &str,
    (repository, tags): (&str, &[String]),
    more: &[(String, Vec<String>)],
    digests: &[String],
    annotations: &[String],
) -> Result<Merged> {
    let merged = registry(buildx, builder, repository, tags, digests, annotations)?;
    for (repo, tags) in more {
        let other = registry(buildx, builder, repo, tags, digests, annotations).map_err(|e| {
            Error::build(
                format!("{e} (the index is in {repository} already)"),
                e.help().unwrap_or_default().to_string(),
            )
        })?;
        if other.index_digest != merged.index_digest {
            return Err(Error::build(
                format!(
                    "the index in {repo} is {}, not {} as in {repository}",
                    other.index_digest, merged.index_digest
                ),
                "the registries store the index differently; check both with `mbx verify`",
            ));
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_annotations_go_on_every_descriptor_index_ones_on_the_index() {
        let mut children = vec![
            json!({"digest": "a"}),
            json!({"digest": "b", "annotations": {"x": "1"}}),
        ];
        let index = annotate(
            &mut children,
            &[
                "manifest-descriptor:d=2".into(),
                "index:i=3".into(),
                "m=4".into(),
            ],
        );
        assert_eq!(Value::Object(index), json!({"i": "3"}));
        assert_eq!(children[0]["annotations"], json!({"d": "2"}));
        assert_eq!(children[1]["annotations"], json!({"x": "1", "d": "2"}));
    }

    #[test]
    fn several_repositories_in_one_push_and_every_tag() {
        assert_eq!(names("r/a", &[]), "name=r/a");
        let more = vec![
            (
                "h:5001/a".to_string(),
                vec!["1".to_string(), "latest".into()],
            ),
            ("acme/a".to_string(), vec!["1".to_string()]),
        ];
        assert_eq!(
            names("h:5000/a", &more),
            "\"name=h:5000/a,h:5001/a,acme/a\""
        );
        assert_eq!(
            more_refs(&more),
            ["h:5001/a:1", "h:5001/a:latest", "acme/a:1"]
        );
        assert_eq!(
            staging(&more, "linux-arm64")[0].0,
            "h:5001/a:mbx-staging-linux-arm64"
        );
    }
}
