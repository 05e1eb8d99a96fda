//! The outputs beyond the primary one (`--load`, `--output type=…`): what
//! each platform's build adds (`type=local` files; an OCI part when the
//! primary output is a registry), and what is made of the merged result
//! (OCI and docker tarballs, a copy of the layout, a `docker load`).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::docker::Buildx;
use crate::error::{Error, Result};
use crate::plan::output::Files;
use crate::plan::{BuildPlan, Output, Plan};
use crate::platform::Platform;
use crate::printer::Printer;

/// One platform's subdirectory, as buildx names it: `linux_amd64`, `linux_arm_v7`.
pub fn platform_dir(p: &Platform) -> String {
    p.to_string().replace('/', "_")
}

fn split(f: &Files, platforms: usize) -> bool {
    f.split.unwrap_or(platforms > 1)
}

/// `key=value` as one CSV field of a buildx spec (quoted when it holds a comma or quote).
fn field(k: &str, v: &Path) -> String {
    let f = format!("{k}={}", v.display());
    if f.contains([',', '"']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

/// Where the per-platform OCI parts go when the primary output is a registry.
fn parts_dir(work: &Path) -> PathBuf {
    work.join("oci-parts")
}

/// Add the exports' outputs to one platform's `docker buildx build`
/// arguments (before the context, the last argument), and the push
/// attributes (`compression=…`) to its image output.
pub fn extend_args(
    args: &mut Vec<OsString>,
    plan: &Plan,
    build: &BuildPlan,
    platform: &Platform,
    work: &Path,
) {
    let ex = &build.exports;
    if !ex.push_attrs.is_empty() {
        for a in args.iter_mut() {
            let s = a.to_string_lossy();
            if s.starts_with("--output=type=image,") {
                *a = format!("{s},{}", ex.push_attrs.join(",")).into();
            }
        }
    }
    let n = plan.platforms.len();
    let mut extra: Vec<OsString> = Vec::new();
    let mut local = |root: PathBuf, f: &Files| {
        let dest = if split(f, n) {
            root.join(platform_dir(platform))
        } else {
            root
        };
        extra.push(format!("--output=type=local,{}", field("dest", &dest)).into());
    };
    for f in &ex.local {
        local(f.dest.clone(), f);
    }
    for (i, f) in ex.tar.iter().enumerate() {
        local(work.join(format!("tar-{i}")), f);
    }
    if ex.need_layout() && matches!(build.output, Output::Registry { .. }) {
        let dest = parts_dir(work).join(platform.slug());
        extra.push(format!("--output=type=oci,{},tar=false", field("dest", &dest)).into());
    }
    let at = args.len().saturating_sub(1);
    args.splice(at..at, extra);
}

/// The exports as the record names them: `out (local), Docker (load)`.
pub fn describe(ex: &crate::plan::output::Exports) -> String {
    let mut d: Vec<String> = Vec::new();
    let mut add = |p: &Path, what: &str| d.push(format!("{} ({what})", p.display()));
    for f in &ex.local {
        add(&f.dest, "local");
    }
    for f in &ex.tar {
        add(&f.dest, "tar");
    }
    for o in &ex.oci {
        add(&o.dest, if o.tar { "oci" } else { "oci layout" });
    }
    for x in &ex.docker {
        match &x.dest {
            Some(p) => add(p, "docker"),
            None => add(Path::new("Docker"), "load"),
        }
    }
    if d.is_empty() {
        d.push("BuildKit's cache only".into());
    }
    d.join(", ")
}

/// A part pushed by digest (no merge on this runner) makes no load or
/// joined export: say so.
pub fn unmerged_note(build: &BuildPlan) -> Option<String> {
    let ex = &build.exports;
    (!ex.docker.is_empty() || !ex.oci.is_empty() || !ex.tar.is_empty()).then(|| {
        "no image was loaded and no docker, oci or tar output written: they need the merged \
         index, which `mbx merge` makes in the registry"
            .to_string()
    })
}

/// Make the exports from the merged result; notes go into the record.
/// `pushed` is the merged index's bytes (the one pushed, with a registry output).
pub fn finish(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    work: &Path,
    pushed: &[u8],
) -> Result<Vec<String>> {
    let ex = &build.exports;
    let mut notes = ex.notes.clone();
    for (i, f) in ex.tar.iter().enumerate() {
        write_dir_tar(&work.join(format!("tar-{i}")), &f.dest)?;
        printer.status(&format!("wrote {}", f.dest.display()));
    }
    if !ex.need_layout() {
        return Ok(notes);
    }
    let (src, top) = match &build.output {
        Output::Layout { dir, .. } => (dir.clone(), top_descriptor(dir)?),
        Output::Registry { .. } => {
            let src = merged_parts(plan, build, work)?;
            let top = pushed_index(&src, pushed).unwrap_or(top_descriptor(&src)?);
            (src, top)
        }
    };
    let names_or = |own: &[String]| {
        if own.is_empty() {
            ex.names.clone()
        } else {
            own.to_vec()
        }
    };
    for o in &ex.oci {
        let names = names_or(&o.names);
        if o.tar {
            write_layout_tar(&src, &index_json(&top, &names), None, &o.dest)?;
        } else {
            copy_layout(&src, &index_json(&top, &names), &o.dest)?;
        }
        printer.status(&format!("wrote the OCI layout {}", o.dest.display()));
    }
    for d in &ex.docker {
        let names = names_or(&d.names);
        match &d.dest {
            Some(dest) => {
                write_layout_tar(&src, &index_json(&top, &names), None, dest)?;
                printer.status(&format!("wrote {} (for `docker load`)", dest.display()));
            }
            None => {
                let note = load(plan, buildx, &src, &top, &names, work)?;
                printer.status(&note);
                notes.push(note);
            }
        }
    }
    Ok(notes)
}

/// The pushed index, written into the merged layout so what is loaded or
/// exported is the image the registry holds (same image ID as the digest);
/// None when the layout lacks a manifest it names.
fn pushed_index(layout: &Path, pushed: &[u8]) -> Option<Value> {
    let index: Value = serde_json::from_slice(pushed).ok()?;
    let blobs = layout.join("blobs").join("sha256");
    let all_there = index["manifests"].as_array()?.iter().all(|m| {
        m["digest"]
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .is_some_and(|hex| blobs.join(hex).is_file())
    });
    if !all_there {
        tracing::debug!(
            "the pushed index names a manifest the OCI parts lack; loading their own index"
        );
        return None;
    }
    let digest = crate::digest::sha256(pushed);
    std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), pushed).ok()?;
    Some(json!({
        "mediaType": index["mediaType"].as_str().unwrap_or(super::merge::OCI_INDEX),
        "digest": digest,
        "size": pushed.len(),
    }))
}

/// The per-platform OCI parts (registry output) merged into one layout.
fn merged_parts(plan: &Plan, build: &BuildPlan, work: &Path) -> Result<PathBuf> {
    let out = work.join("merged");
    let name = build.exports.names.first().cloned().unwrap_or_default();
    super::merge::layouts(
        &plan.platforms,
        &parts_dir(work),
        &out,
        &name,
        &build.index_annotations,
    )?;
    Ok(out)
}

fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> Error {
    Error::env(
        format!("{what}: {e}"),
        "check free disk space and permissions of the output",
    )
}

/// The descriptor `index.json` of an mbx layout names: the merged index.
fn top_descriptor(layout: &Path) -> Result<Value> {
    let bytes =
        crate::error::read_capped(&layout.join("index.json"), crate::oci::MAX_DOCUMENT_BYTES)
            .map_err(|e| io_err(format!("cannot read {}/index.json", layout.display()), e))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::build(format!("the merged index.json is not JSON: {e}"), ""))?;
    v["manifests"]
        .get(0)
        .cloned()
        .ok_or_else(|| Error::build("the merged layout names no index", "run again"))
}

/// `index.json` naming `top` once per name, as buildx's OCI and docker
/// exporters annotate it (full name for containerd, the tag as ref name).
fn index_json(top: &Value, names: &[String]) -> Vec<u8> {
    let mut entries: Vec<Value> = names
        .iter()
        .map(|n| {
            let mut d = top.clone();
            let tag = n
                .rsplit_once(':')
                .filter(|(_, t)| !t.contains('/'))
                .map_or("latest", |(_, t)| t);
            d["annotations"] = json!({
                "io.containerd.image.name": n,
                "org.opencontainers.image.ref.name": tag,
            });
            d
        })
        .collect();
    if entries.is_empty() {
        entries.push(top.clone());
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": super::merge::OCI_INDEX,
        "manifests": entries,
    });
    serde_json::to_vec(&index).expect("json")
}

/// Write `dest` whole or not at all: into a temporary file beside it, then renamed.
fn write_atomically(
    dest: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let name = dest
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy().into_owned());
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| io_err(format!("cannot create {}", parent.display()), e))?;
    let tmp = parent.join(format!(".{name}.mbx-{}.tmp", std::process::id()));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| fill(&mut f).and_then(|_| f.flush()))
        .and_then(|_| std::fs::rename(&tmp, dest));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(format!("cannot write {}", dest.display()), e));
    }
    Ok(())
}

fn tar_header(size: usize) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h
}

/// An OCI layout as a tar: its blobs, `oci-layout`, this `index.json`, and
/// (for Docker's classic image store) a `manifest.json`.
fn write_layout_tar(
    src: &Path,
    index: &[u8],
    manifest_json: Option<&[u8]>,
    dest: &Path,
) -> Result<()> {
    let blobs = src.join("blobs").join("sha256");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&blobs)
        .map_err(|e| io_err(format!("cannot read {}", blobs.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    write_atomically(dest, |f| {
        let mut t = tar::Builder::new(f);
        let mut data =
            |name: &str, bytes: &[u8]| t.append_data(&mut tar_header(bytes.len()), name, bytes);
        data("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        data("index.json", index)?;
        if let Some(m) = manifest_json {
            data("manifest.json", m)?;
        }
        for p in &files {
            let name = format!(
                "blobs/sha256/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            );
            t.append_path_with_name(p, name)?;
        }
        t.finish()
    })
}

/// `type=tar`: the platforms' files (`linux_amd64/…` each) as one tar.
fn write_dir_tar(root: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(root)
        .map_err(|e| io_err(format!("cannot create {}", root.display()), e))?;
    write_atomically(dest, |f| {
        let mut t = tar::Builder::new(f);
        t.follow_symlinks(false);
        t.append_dir_all("", root)?;
        t.finish()
    })
}

/// `type=oci,tar=false` beside the primary output: a copy of the layout
/// (blobs hard-linked where possible) in `dest`, which the plan checked is
/// new, empty or an earlier mbx layout; only mbx's entries are replaced.
fn copy_layout(src: &Path, index: &[u8], dest: &Path) -> Result<()> {
    super::prepare_layout_dir(dest)?;
    let to = dest.join("blobs").join("sha256");
    std::fs::create_dir_all(&to)
        .map_err(|e| io_err(format!("cannot create {}", to.display()), e))?;
    let from = src.join("blobs").join("sha256");
    for e in std::fs::read_dir(&from)
        .map_err(|e| io_err(format!("cannot read {}", from.display()), e))?
    {
        let e = e.map_err(|e| io_err("cannot read blobs", e))?;
        let target = to.join(e.file_name());
        if std::fs::hard_link(e.path(), &target).is_err() {
            std::fs::copy(e.path(), &target)
                .map_err(|err| io_err(format!("cannot copy {}", e.path().display()), err))?;
        }
    }
    std::fs::write(
        dest.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .and_then(|_| std::fs::write(dest.join("index.json"), index))
    .map_err(|e| io_err(format!("cannot write {}", dest.display()), e))
}

/// `docker load` of the merged image under `names`: every platform when the
/// image store holds multi-platform images, else the runner's platform.
fn load(
    plan: &Plan,
    buildx: &Buildx,
    src: &Path,
    top: &Value,
    names: &[String],
    work: &Path,
) -> Result<String> {
    let tar = work.join("load.tar");
    let what = if buildx.multi_platform_store()? {
        write_layout_tar(src, &index_json(top, names), None, &tar)?;
        plan.platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        let (manifest, manifest_json) = classic_image(src, top, names, &plan.host)?;
        write_layout_tar(
            src,
            &index_json(&manifest, names),
            Some(&manifest_json),
            &tar,
        )?;
        format!(
            "{} only: Docker's classic image store holds one platform per name (the containerd image store holds all)",
            plan.host
        )
    };
    let said = buildx.load(&tar)?;
    let _ = std::fs::remove_file(&tar);
    tracing::debug!("docker load: {said}");
    Ok(format!(
        "loaded into Docker as {} ({what})",
        names.join(", ")
    ))
}

/// The runner's platform in the merged index: its manifest descriptor, and
/// the `manifest.json` of a `docker save` archive naming it.
fn classic_image(
    src: &Path,
    top: &Value,
    names: &[String],
    host: &Platform,
) -> Result<(Value, Vec<u8>)> {
    let blob = |d: &str| -> Result<Value> {
        let p = src
            .join("blobs")
            .join("sha256")
            .join(d.trim_start_matches("sha256:"));
        let bytes = crate::error::read_capped(&p, crate::oci::MAX_DOCUMENT_BYTES)
            .map_err(|e| io_err(format!("cannot read {}", p.display()), e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::build(format!("blob {d} is not JSON: {e}"), ""))
    };
    let index = blob(top["digest"].as_str().unwrap_or_default())?;
    let manifest = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| {
            m["platform"]["os"] == host.os.as_str() && m["platform"]["architecture"] == host.arch.as_str()
        })
        .cloned()
        .ok_or_else(|| {
            Error::input(
                format!("--load: the image has no {host} platform, and Docker's classic image store loads only the runner's"),
                format!("add {host} to --platforms, or enable the containerd image store in Docker"),
            )
        })?;
    let m = blob(manifest["digest"].as_str().unwrap_or_default())?;
    let path = |d: &Value| {
        format!(
            "blobs/sha256/{}",
            d["digest"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("sha256:")
        )
    };
    let layers: Vec<String> = m["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(path)
        .collect();
    let archive = json!([{ "Config": path(&m["config"]), "RepoTags": names, "Layers": layers }]);
    Ok((manifest, serde_json::to_vec(&archive).expect("json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(dir: &Path, v: &Value) -> Value {
        let bytes = serde_json::to_vec(v).unwrap();
        let d = crate::digest::sha256(&bytes);
        std::fs::write(dir.join(&d[7..]), &bytes).unwrap();
        json!({"digest": d, "size": bytes.len()})
    }

    /// Docker's classic store gets the runner's platform as a `docker save`
    /// archive would name it; the containerd store the whole index.
    #[test]
    fn classic_store_gets_the_runners_platform_and_a_manifest_json() {
        let d = tempfile::tempdir().unwrap();
        let blobs = d.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let config = blob(&blobs, &json!({"architecture": arch}));
            let layer = blob(&blobs, &json!({"layer": arch}));
            let m = blob(&blobs, &json!({"config": config, "layers": [layer]}));
            let mut c = m.clone();
            c["platform"] = json!({"os": "linux", "architecture": arch});
            children.push((c, config, layer));
        }
        let index = blob(
            &blobs,
            &json!({"manifests": children.iter().map(|c| c.0.clone()).collect::<Vec<_>>()}),
        );
        let host: Platform = "linux/arm64".parse().unwrap();
        let names = vec!["r.io/a:1".to_string(), "r.io/a:2".to_string()];
        let (manifest, archive) = classic_image(d.path(), &index, &names, &host).unwrap();
        assert_eq!(manifest["digest"], children[1].0["digest"]);
        let archive: Value = serde_json::from_slice(&archive).unwrap();
        let hex = |v: &Value| format!("blobs/sha256/{}", &v["digest"].as_str().unwrap()[7..]);
        assert_eq!(archive[0]["Config"], hex(&children[1].1).as_str());
        assert_eq!(archive[0]["Layers"][0], hex(&children[1].2).as_str());
        assert_eq!(archive[0]["RepoTags"], json!(names));
        let top = index_json(&manifest, &names);
        let top: Value = serde_json::from_slice(&top).unwrap();
        assert_eq!(
            top["manifests"][1]["annotations"]["io.containerd.image.name"],
            "r.io/a:2"
        );
        assert_eq!(
            top["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"],
            "2"
        );
        let other: Platform = "linux/s390x".parse().unwrap();
        let e = classic_image(d.path(), &index, &names, &other).unwrap_err();
        assert!(e.to_string().contains("no linux/s390x platform"), "{e}");
    }

    #[test]
    fn buildx_platform_directories_and_csv_fields() {
        assert_eq!(
            platform_dir(&"linux/arm/v7".parse().unwrap()),
            "linux_arm_v7"
        );
        assert_eq!(field("dest", Path::new("a,b")), "\"dest=a,b\"");
        assert_eq!(field("dest", Path::new("ab")), "dest=ab");
    }
}
