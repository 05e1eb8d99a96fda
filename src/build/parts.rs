//! Multi-runner mode: each matrix job runs `mbx build --platform P --push
//! --json part.json` on a native runner; a final job runs `mbx merge --parts
//! DIR`, which reads every part and joins them into one index.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::run::{PlatformRecord, RunRecord};

/// The parts of one image, checked to fit together.
#[derive(Debug)]
pub struct Parts {
    pub repository: String,
    /// Full references (`repo:tag`) the parts were built for.
    pub tags: Vec<String>,
    pub platforms: Vec<PlatformRecord>,
    pub files: Vec<PathBuf>,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            json_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Read every run record under `dir` (artifacts download into subfolders).
pub fn load(dir: &Path) -> Result<Parts> {
    let fix = "pass --parts DIR holding the JSON records written by `mbx build --push --json FILE` in each job";
    if !dir.is_dir() {
        return Err(Error::input(
            format!("--parts `{}` is not a directory", dir.display()),
            fix,
        ));
    }
    let mut files = Vec::new();
    json_files(dir, &mut files)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", dir.display()), fix))?;
    files.sort();
    let mut records: Vec<(PathBuf, RunRecord)> = Vec::new();
    for f in files {
        let rec = std::fs::read(&f)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok())
            .filter(|r| !r.mbx_version.is_empty());
        match rec {
            Some(r) => records.push((f, r)),
            None => tracing::debug!("{} is not an mbx run record; skipped", f.display()),
        }
    }
    if records.is_empty() {
        return Err(Error::input(
            format!("no mbx run records under {}", dir.display()),
            fix,
        ));
    }
    let repository = records[0].1.output.clone();
    let mut parts = Parts {
        repository: repository.clone(),
        tags: Vec::new(),
        platforms: Vec::new(),
        files: Vec::new(),
    };
    for (f, r) in records {
        if r.output != repository {
            return Err(Error::input(
                format!(
                    "{} is a part of {}, not of {repository}",
                    f.display(),
                    r.output
                ),
                "download only the parts of one image into --parts DIR",
            ));
        }
        for t in r.tags {
            if !parts.tags.contains(&t) {
                parts.tags.push(t);
            }
        }
        for p in r.platforms {
            if let Some(e) = &p.error {
                return Err(Error::build(
                    format!("the part for {} in {} failed: {e}", p.platform, f.display()),
                    "fix that job first; nothing was merged",
                ));
            }
            if p.build_digest.is_none() {
                return Err(Error::input(
                    format!(
                        "the part for {} in {} has no pushed digest",
                        p.platform,
                        f.display()
                    ),
                    "build the parts with `mbx build --push` (a registry output)",
                ));
            }
            if parts.platforms.iter().any(|q| q.platform == p.platform) {
                return Err(Error::input(
                    format!(
                        "two parts build {} (the second in {})",
                        p.platform,
                        f.display()
                    ),
                    "each matrix job builds its own platform",
                ));
            }
            parts.platforms.push(p);
        }
        parts.files.push(f);
    }
    if crate::plan::ImageRef::parse(&repository).is_err() || repository.starts_with('/') {
        return Err(Error::input(
            format!("the parts were not pushed to a registry (their output is {repository})"),
            "build the parts with `mbx build --push --image REPO` or `--registry HOST`",
        ));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(dir: &Path, name: &str, repo: &str, platform: &str, digest: Option<&str>) {
        let r = serde_json::json!({
            "mbx_version": "0.1.0", "started_at": 0.0, "host_platform": platform,
            "output": repo, "tags": [format!("{repo}:latest")],
            "platforms": [{"platform": platform, "emulated": false, "digest": null,
                "build_digest": digest, "wall_seconds": 1.0, "executed_seconds": 1.0,
                "steps_total": 1, "steps_cached": 0, "steps": []}],
            "index_digest": null, "verified": false, "wall_seconds": 1.0
        });
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("part.json"), r.to_string()).unwrap();
    }

    #[test]
    fn loads_parts_from_artifact_folders() {
        let d = tempfile::tempdir().unwrap();
        part(
            d.path(),
            "amd64",
            "127.0.0.1:5000/app",
            "linux/amd64",
            Some("sha256:a"),
        );
        part(
            d.path(),
            "arm64",
            "127.0.0.1:5000/app",
            "linux/arm64",
            Some("sha256:b"),
        );
        std::fs::write(d.path().join("other.json"), "{\"not\": \"a record\"}").unwrap();
        let p = load(d.path()).unwrap();
        assert_eq!(p.repository, "127.0.0.1:5000/app");
        assert_eq!(p.platforms.len(), 2);
        assert_eq!(p.tags, vec!["127.0.0.1:5000/app:latest"]);
    }

    #[test]
    fn rejects_mixed_duplicate_and_empty() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap_err().exit_code(), 2);
        part(
            d.path(),
            "a",
            "127.0.0.1:5000/app",
            "linux/amd64",
            Some("sha256:a"),
        );
        part(
            d.path(),
            "b",
            "127.0.0.1:5000/other",
            "linux/arm64",
            Some("sha256:b"),
        );
        assert!(load(d.path())
            .unwrap_err()
            .to_string()
            .contains("not of 127.0.0.1:5000/app"));
        let d = tempfile::tempdir().unwrap();
        part(
            d.path(),
            "a",
            "127.0.0.1:5000/app",
            "linux/amd64",
            Some("sha256:a"),
        );
        part(
            d.path(),
            "b",
            "127.0.0.1:5000/app",
            "linux/amd64",
            Some("sha256:b"),
        );
        assert!(load(d.path())
            .unwrap_err()
            .to_string()
            .contains("two parts build linux/amd64"));
        let d = tempfile::tempdir().unwrap();
        part(d.path(), "a", "127.0.0.1:5000/app", "linux/amd64", None);
        assert!(load(d.path())
            .unwrap_err()
            .to_string()
            .contains("no pushed digest"));
    }
}
