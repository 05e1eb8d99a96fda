//! Joining per-platform results into one multi-platform index: in an OCI
//! layout on disk, or in the registry (written as `docker buildx imagetools
//! create` writes it, pushed in process).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::digest::sha256;
use crate::error::{Error, Result};
use crate::oci::{is_index_type, Descriptor, Options, Registry};
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
    let (bytes, media_type) = index(&mut children, annotations);
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
            media_type: media_type.into(),
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

/// Merge pushed per-platform digests into one index under every tag, in
/// process: each platform's manifest read (a per-platform index gives its
/// children: the image and its attestation), the index written as
/// `docker buildx imagetools create` writes it, then PUT under every tag
/// at once. Registry faults are retried until `opts.timeout`.
pub async fn registry(
    opts: &Options,
    repository: &str,
    tags: &[String],
    sources: &[(Platform, String)],
    annotations: &[String],
) -> Result<Merged> {
    let pushed_by_digest = || {
        sources
            .iter()
            .map(|(_, d)| format!("{repository}@{d}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fail = |e: Error, moved: &[&String]| {
        let moved = match moved {
            [] => "no tag moved".to_string(),
            m => format!(
                "only {} moved (to an index holding every platform)",
                m.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ),
        };
        Error::build(
            format!("merging the platforms into {repository} failed: {e}"),
            format!(
                "{moved}; pushed by digest only: {}. Check the registry and run again (or join them with `mbx merge`)",
                pushed_by_digest()
            ),
        )
    };
    let first = tags.first().map_or("latest", String::as_str);
    let reg = Registry::new(&format!("{repository}:{first}"), opts).map_err(|e| fail(e, &[]))?;
    let reg = &reg;
    let read = sources.iter().map(|(platform, digest)| async move {
        let (bytes, _) = reg.manifest(digest).await?;
        Ok::<_, Error>((platform, digest, bytes))
    });
    let mut children: Vec<Value> = Vec::new();
    for (platform, digest, bytes) in futures::future::try_join_all(read)
        .await
        .map_err(|e| fail(e, &[]))?
    {
        children.extend(children_of(platform, digest, &bytes));
    }
    let (bytes, media_type) = index(&mut children, annotations);
    let merged = Merged {
        index_digest: sha256(&bytes),
        descriptor: crate::run::IndexDescriptor {
            media_type: media_type.to_string(),
            size: bytes.len() as u64,
        },
        platform_digests: platform_digests(&children),
        index: bytes,
    };
    put_everywhere(reg, tags, &merged)
        .await
        .map_err(|(e, moved)| fail(e, &moved.iter().collect::<Vec<_>>()))?;
    Ok(merged)
}

/// The index under every tag, all at once; on a failure the error and the
/// tags that did move.
async fn put_everywhere(
    reg: &Registry,
    tags: &[String],
    merged: &Merged,
) -> std::result::Result<(), (Error, Vec<String>)> {
    let puts = tags.iter().map(|t| async move {
        let answered = reg
            .put_manifest(t, &merged.descriptor.media_type, &merged.index)
            .await?;
        match answered {
            Some(d) if d != merged.index_digest => Err(Error::build(
                format!(
                    "the registry stored the index under {t} as {d}, not {}",
                    merged.index_digest
                ),
                "",
            )),
            _ => Ok(()),
        }
    });
    let results = futures::future::join_all(puts).await;
    let moved: Vec<String> = tags
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(t, _)| t.clone())
        .collect();
    match results.into_iter().find_map(|r| r.err()) {
        Some(e) => Err((e, moved)),
        None => Ok(()),
    }
}

/// What one pushed platform puts in the merged index: a per-platform index
/// (image + attestation) gives its children as they are; an image manifest
/// is one descriptor with the platform it was built for.
fn children_of(platform: &Platform, digest: &str, bytes: &[u8]) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(bytes).unwrap_or_default();
    let media_type = match doc["mediaType"].as_str() {
        Some(mt) => mt.to_string(),
        None if doc.get("manifests").is_some() => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    };
    if is_index_type(&media_type) {
        return doc["manifests"].as_array().cloned().unwrap_or_default();
    }
    let d = json!({"mediaType": media_type, "digest": digest, "size": bytes.len()});
    vec![child_descriptor(&d, platform)]
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The merged index's bytes and media type, as imagetools create writes
/// them: an OCI index (a Docker manifest list only when every child is a
/// Docker manifest and no annotation asks for an OCI one), indented by two.
fn index(children: &mut [Value], annotations: &[String]) -> (Vec<u8>, &'static str) {
    let index_annotations = annotate(children, annotations);
    let docker = annotations.is_empty()
        && !children.is_empty()
        && children.iter().all(|c| {
            c["mediaType"]
                .as_str()
                .is_some_and(|m| m.starts_with("application/vnd.docker."))
        });
    let media_type = if docker { DOCKER_LIST } else { OCI_INDEX };
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": children,
    });
    if !index_annotations.is_empty() {
        index["annotations"] = Value::Object(index_annotations);
    }
    (serde_json::to_vec_pretty(&index).expect("json"), media_type)
}

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

/// [`registry`] for the output's repository, then for every other one
/// (each holds its own copy of the platforms): the same index (same bytes,
/// same digest) under every tag in every repository.
pub async fn registries(
    opts: &Options,
    (repository, tags): (&str, &[String]),
    more: &[(String, Vec<String>)],
    sources: &[(Platform, String)],
    annotations: &[String],
) -> Result<Merged> {
    let merged = registry(opts, repository, tags, sources, annotations).await?;
    for (repo, tags) in more {
        let other = registry(opts, repo, tags, sources, annotations)
            .await
            .map_err(|e| {
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
                "the registries store the platforms differently; check both with `mbx verify`",
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

    #[test]
    fn the_index_is_oci_unless_every_child_is_a_docker_manifest_and_nothing_is_annotated() {
        let amd64: Platform = "linux/amd64".parse().unwrap();
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#;
        let mut children = children_of(&amd64, "sha256:1", docker);
        assert_eq!(
            children[0]["platform"],
            json!({"os": "linux", "architecture": "amd64"})
        );
        assert_eq!(children[0]["size"], docker.len());
        assert_eq!(index(&mut children.clone(), &[]).1, DOCKER_LIST);
        assert_eq!(index(&mut children, &["index:a=b".into()]).1, OCI_INDEX);
        // A per-platform index (image + attestation) gives its children as they are.
        let per_platform = serde_json::to_vec(&json!({
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": "sha256:2", "size": 3,
                 "platform": {"os": "linux", "architecture": "arm64"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:4", "size": 5,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            ],
        }))
        .unwrap();
        let mut children = children_of(&amd64, "sha256:9", &per_platform);
        assert_eq!(children.len(), 2);
        let (bytes, mt) = index(&mut children, &[]);
        assert_eq!(mt, OCI_INDEX);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["manifests"][1]["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        assert_eq!(
            platform_digests(v["manifests"].as_array().unwrap()).len(),
            1
        );
    }
}
