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

/// Merge per-platform OCI layouts (`parts`, each built for one platform) into
/// the layout at `out`, whose `index.json` then names one image index tagged
/// `ref_name`.
pub fn layouts(
    parts: &[(Platform, &Path)],
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
    for (platform, dir) in parts {
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
            &std::fs::read(dir.join("index.json")).map_err(|e| io("read part index.json", e))?,
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
                let bytes = std::fs::read(blobs.join(digest.trim_start_matches("sha256:")))
                    .map_err(|e| io("read part index blob", e))?;
                let inner: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::build(format!("index {digest} is not JSON: {e}"), ""))?;
                children.extend(inner["manifests"].as_array().cloned().unwrap_or_default());
            } else {
                children.push(child_descriptor(&d, platform));
            }
        }
    }
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children,
    });
    let index_annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .filter_map(|a| a.strip_prefix("index:").unwrap_or(a).split_once('='))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
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
        platform_digests: platform_digests(&children),
        index: bytes,
    })
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
/// The dry run prints the exact bytes that are then pushed, so the index
/// digest is known without a second read.
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
    // The dry run and the push at the same time: the same sources give the
    // same bytes (the read-back checks the tag resolves to this digest).
    let (printed, pushed) = std::thread::scope(|s| {
        let dry = s.spawn(|| buildx.imagetools_create(builder, &tags, &sources, annotations, true));
        let pushed = buildx.imagetools_create(builder, &tags, &sources, annotations, false);
        (dry.join().expect("imagetools dry run"), pushed)
    });
    pushed.map_err(fail)?;
    let printed = printed.map_err(fail)?;
    let bytes = printed.strip_suffix('\n').unwrap_or(&printed).as_bytes();
    let index: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::build(format!("imagetools printed no index: {e}"), ""))?;
    Ok(Merged {
        index: bytes.to_vec(),
        index_digest: sha256(bytes),
        platform_digests: platform_digests(
            index["manifests"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        ),
    })
}
