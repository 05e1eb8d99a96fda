//! Multi-runner mode: each matrix job runs `mbx build --platform P --push
//! --json part.json` on a native runner; a final job runs `mbx merge --parts
//! DIR`, which reads every part and joins them into one index.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::run::{PlatformRecord, RecordError, RunRecord};

/// The parts of one image, checked to fit together.
#[derive(Debug)]
pub struct Parts {
    pub repository: String,
    /// Full references (`repo:tag`) the parts were built for.
    pub tags: Vec<String>,
    pub platforms: Vec<PlatformRecord>,
    pub files: Vec<PathBuf>,
    /// JSON files under the directory that are not run records at all
    /// (other artifacts): left alone.
    pub skipped: Vec<PathBuf>,
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

const FIX: &str =
    "pass --parts DIR holding the JSON records written by `mbx build --push --json FILE` in each job";

/// The records read, each with its file; and the files skipped.
type Read = (Vec<(PathBuf, RunRecord)>, Vec<PathBuf>);

/// Every run record under `dir` (artifacts download into subfolders), and
/// the JSON files that are not records. A file that is damaged, or a record
/// of a schema this mbx cannot read, stops the merge: merging without it
/// would publish an index that lacks its platform.
fn read_records(dir: &Path) -> Result<Read> {
    let mut files = Vec::new();
    json_files(dir, &mut files)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", dir.display()), FIX))?;
    files.sort();
    let (mut records, mut skipped) = (Vec::new(), Vec::new());
    for f in files {
        let bytes = RunRecord::read_file(&f)
            .map_err(|e| Error::input(format!("cannot read the part {}: {e}", f.display()), FIX))?;
        match RunRecord::from_json(&bytes) {
            Ok(r) => records.push((f, r)),
            Err(RecordError::NotARecord) => {
                tracing::debug!("{} is not an mbx run record; skipped", f.display());
                skipped.push(f);
            }
            Err(e) => return Err(unreadable(&f, &e)),
        }
    }
    Ok((records, skipped))
}

fn unreadable(f: &Path, e: &RecordError) -> Error {
    let help = match e {
        e if e.is_version() => {
            "use the same mbx version on every runner (the action's `version` input), then run the jobs again; nothing was merged"
        }
        RecordError::NotJson(_) => {
            "the part is damaged (an upload cut short?): run the job that wrote it again; nothing was merged"
        }
        _ => "run the job that wrote it again with the mbx version of this merge; nothing was merged",
    };
    Error::input(format!("part {}", e.about(&f.display().to_string())), help)
}

/// Read every part under `dir` and check that they fit together.
pub fn load(dir: &Path) -> Result<Parts> {
    if !dir.is_dir() {
        return Err(Error::input(
            format!("--parts `{}` is not a directory", dir.display()),
            FIX,
        ));
    }
    let (records, skipped) = read_records(dir)?;
    if records.is_empty() {
        return Err(Error::input(
            format!("no mbx run records under {}", dir.display()),
            FIX,
        ));
    }
    let repository = records[0].1.output.clone();
    let mut parts = Parts {
        repository: repository.clone(),
        tags: Vec::new(),
        platforms: Vec::new(),
        files: Vec::new(),
        skipped,
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

/// Refuse `--platforms` the parts do not hold: checked before anything is
/// pushed, so a merge never tags an index that fails its own verification.
pub fn check_required(parts: &Parts, required: &[Platform]) -> Result<()> {
    let missing: Vec<String> = required
        .iter()
        .filter(|p| !parts.platforms.iter().any(|q| &q.platform == *p))
        .map(|p| p.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let held: Vec<String> = parts
        .platforms
        .iter()
        .map(|p| p.platform.to_string())
        .collect();
    Err(Error::input(
        format!(
            "--platforms asks for {} but no part holds it (the {} part(s) hold {})",
            missing.join(", "),
            parts.files.len(),
            held.join(", ")
        ),
        "build each platform in its own job (`mbx build --platform P --push --json FILE`) and download every part into --parts DIR, or drop it from --platforms; nothing was merged",
    ))
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

    /// An amd64 and an arm64 part of 127.0.0.1:5000/app, each in its folder.
    fn two_parts(dir: &Path) {
        part(
            dir,
            "amd64",
            "127.0.0.1:5000/app",
            "linux/amd64",
            Some("sha256:a"),
        );
        part(
            dir,
            "arm64",
            "127.0.0.1:5000/app",
            "linux/arm64",
            Some("sha256:b"),
        );
    }

    #[test]
    fn loads_parts_from_artifact_folders() {
        let d = tempfile::tempdir().unwrap();
        two_parts(d.path());
        std::fs::write(d.path().join("other.json"), "{\"not\": \"a record\"}").unwrap();
        let p = load(d.path()).unwrap();
        assert_eq!(p.skipped, vec![d.path().join("other.json")]);
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

    #[test]
    fn a_damaged_part_stops_the_merge_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        two_parts(d.path());
        let arm = d.path().join("arm64/part.json");
        let bytes = std::fs::read(&arm).unwrap();
        std::fs::write(&arm, &bytes[..bytes.len() / 2]).unwrap();
        let e = load(d.path()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("part {} is not valid JSON", arm.display())),
            "{msg}"
        );
        assert!(e
            .help()
            .unwrap()
            .contains("run the job that wrote it again"));
    }

    #[test]
    fn a_part_of_another_schema_stops_the_merge_naming_the_version() {
        let d = tempfile::tempdir().unwrap();
        part(
            d.path(),
            "amd64",
            "127.0.0.1:5000/app",
            "linux/amd64",
            Some("sha256:a"),
        );
        let arm = d.path().join("arm64.json");
        std::fs::write(&arm, r#"{"schema_version": "7.2", "mbx_version": "3.0.0"}"#).unwrap();
        let e = load(d.path()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().starts_with(&format!(
                "part {}: record schema 7.2 (written by mbx 3.0.0) is newer than this mbx",
                arm.display()
            )),
            "{e}"
        );
        assert!(e
            .help()
            .unwrap()
            .contains("same mbx version on every runner"));
    }

    #[test]
    fn platforms_beyond_the_parts_are_refused() {
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
            "linux/arm64/v8",
            Some("sha256:b"),
        );
        let p = load(d.path()).unwrap();
        let want = |s: &[&str]| -> Vec<Platform> { s.iter().map(|p| p.parse().unwrap()).collect() };
        check_required(&p, &want(&["linux/amd64", "linux/arm64"])).unwrap();
        check_required(&p, &want(&["linux/arm64"])).unwrap();
        let e =
            check_required(&p, &want(&["linux/amd64", "linux/arm/v7", "linux/s390x"])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "--platforms asks for linux/arm/v7, linux/s390x but no part holds it (the 2 part(s) hold linux/amd64, linux/arm64)"
        );
    }
}
