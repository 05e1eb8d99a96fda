//! Multi-runner mode: each matrix job builds its platform on a native runner
//! and pushes it by digest (`mbx build --platform P --push --json part.json`,
//! or the action's `mode: part`, which hands the part on as a job output); a
//! final job joins the parts into one index (`mbx merge --parts DIR`, or the
//! action's `mode: merge` with `parts: ${{ toJSON(needs.build.outputs) }}`).
//!
//! A part is a run record, so its schema version is checked at the merge
//! however it travelled (a file or a job output). One that travels as a job
//! output is made small first ([`compact`]): GitHub keeps at most 1 MB of
//! outputs per job and 50 MB per run, and the merge step receives every part
//! in one environment variable, which Linux caps at 128 KiB
//! (`MAX_ARG_STRLEN`); so a part stays under [`PART_MAX_BYTES`].

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::run::{PlatformRecord, RecordError, RunRecord, RunnerRecord};

/// The largest part handed on as a job output: eight parts, JSON-escaped
/// again by `toJSON(needs.build.outputs)` (about +15 %), still fit in the
/// 128 KiB of one environment variable; far under GitHub's 1 MB per job.
pub const PART_MAX_BYTES: usize = 12 * 1024;

/// The parts of one image, checked to fit together.
#[derive(Debug)]
pub struct Parts {
    pub repository: String,
    /// Full references (`repo:tag`) the parts were built for.
    pub tags: Vec<String>,
    pub platforms: Vec<PlatformRecord>,
    /// Where each part came from: a file, or `job output NAME`.
    pub sources: Vec<String>,
    /// Files (or job outputs) that are not run records at all (other
    /// artifacts or outputs): left alone.
    pub skipped: Vec<String>,
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
const OUTPUTS_FIX: &str =
    "pass `parts: ${{ toJSON(needs.JOB.outputs) }}` where JOB ran the action with `mode: part` (each leg under its own output name)";

/// The records read, each with where it came from; and what was skipped.
type Read = (Vec<(String, RunRecord)>, Vec<String>);

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
        let name = f.display().to_string();
        let bytes = std::fs::read(&f)
            .map_err(|e| Error::input(format!("cannot read the part {name}: {e}"), FIX))?;
        match RunRecord::from_json(&bytes) {
            Ok(r) => records.push((name, r)),
            Err(RecordError::NotARecord) => {
                tracing::debug!("{name} is not an mbx run record; skipped");
                skipped.push(name);
            }
            Err(e) => return Err(unreadable(&name, &e)),
        }
    }
    Ok((records, skipped))
}

fn unreadable(source: &str, e: &RecordError) -> Error {
    let help = match e {
        e if e.is_version() => {
            "use the same mbx version in every job (the action's `mbx-version` input), then run them again; nothing was merged"
        }
        RecordError::NotJson(_) => {
            "the part is damaged (cut short on its way?): run the job that wrote it again; nothing was merged"
        }
        _ => "run the job that wrote it again with the mbx version of this merge; nothing was merged",
    };
    Error::input(format!("part {}", e.about(source)), help)
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
    join(records, skipped)
}

/// The parts handed on as job outputs: `toJSON(needs.JOB.outputs)` (an
/// object, output name → part), a JSON array of parts, or one part. An empty
/// output (a leg that set another name) and an output that is no JSON object
/// (another output of the job, a digest) are skipped; a part cut short, or of
/// a schema this mbx cannot read, stops the merge naming the output.
pub fn from_outputs(text: &str) -> Result<Parts> {
    let value: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        Error::input(
            format!("the parts are not JSON ({e}; {} bytes)", text.len()),
            OUTPUTS_FIX,
        )
    })?;
    let named: Vec<(String, serde_json::Value)> = match value {
        serde_json::Value::Object(o) if o.contains_key("mbx_version") => {
            vec![("parts".into(), serde_json::Value::Object(o))]
        }
        serde_json::Value::Object(o) => o.into_iter().collect(),
        serde_json::Value::Array(a) => a
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("parts[{i}]"), v))
            .collect(),
        _ => {
            return Err(Error::input(
                "the parts are neither an object of job outputs nor a list",
                OUTPUTS_FIX,
            ))
        }
    };
    let (mut records, mut skipped) = (Vec::new(), Vec::new());
    for (name, v) in named {
        let source = format!("job output `{name}`");
        let text = match v {
            serde_json::Value::String(s) => s,
            v @ serde_json::Value::Object(_) => v.to_string(),
            _ => String::new(),
        };
        if !text.trim_start().starts_with('{') {
            if !text.trim().is_empty() {
                skipped.push(source);
            }
            continue;
        }
        match RunRecord::from_json(text.as_bytes()) {
            Ok(r) => records.push((source, r)),
            Err(RecordError::NotARecord) => skipped.push(source),
            Err(e) => return Err(unreadable(&source, &e)),
        }
    }
    if records.is_empty() {
        return Err(Error::input(
            "no part among the job outputs (every one is empty or not an mbx part)",
            OUTPUTS_FIX,
        ));
    }
    join(records, skipped)
}

/// Check the records fit together: one repository, each platform once,
/// built without error and pushed by digest.
fn join(records: Vec<(String, RunRecord)>, skipped: Vec<String>) -> Result<Parts> {
    let repository = records[0].1.output.clone();
    let mut parts = Parts {
        repository: repository.clone(),
        tags: Vec::new(),
        platforms: Vec::new(),
        sources: Vec::new(),
        skipped,
    };
    for (f, r) in records {
        if r.output != repository {
            return Err(Error::input(
                format!("{f} is a part of {}, not of {repository}", r.output),
                "merge only the parts of one image",
            ));
        }
        for t in r.tags {
            if !parts.tags.contains(&t) {
                parts.tags.push(t);
            }
        }
        for p in r.platforms {
            add_platform(&mut parts, &f, p)?;
        }
        parts.sources.push(f);
    }
    if crate::plan::ImageRef::parse(&repository).is_err() || repository.starts_with('/') {
        return Err(Error::input(
            format!("the parts were not pushed to a registry (their output is {repository})"),
            "build the parts with `mbx build --push --image REPO` or `--registry HOST`",
        ));
    }
    Ok(parts)
}

fn add_platform(parts: &mut Parts, f: &str, p: PlatformRecord) -> Result<()> {
    if let Some(e) = &p.error {
        return Err(Error::build(
            format!("the part for {} in {f} failed: {e}", p.platform),
            "fix that job first; nothing was merged",
        ));
    }
    if p.build_digest.is_none() {
        return Err(Error::input(
            format!("the part for {} in {f} has no pushed digest", p.platform),
            "build the parts with `mbx build --push` (a registry output)",
        ));
    }
    if parts.platforms.iter().any(|q| q.platform == p.platform) {
        return Err(Error::input(
            format!("two parts build {} (the second in {f})", p.platform),
            "each matrix job builds its own platform",
        ));
    }
    parts.platforms.push(p);
    Ok(())
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
            parts.sources.len(),
            held.join(", ")
        ),
        "build each platform in its own job (`mbx build --platform P --push --json FILE`, or the action's `mode: part`) and hand every part to the merge (a job output GitHub skipped as \"may contain secret\" is missing too: its job log says so), or drop it from --platforms; nothing was merged",
    ))
}

/// This part as it travels in a job output: the run record without what the
/// merge does not use (the setup record, the cache usage, build logs) and, if
/// still over [`PART_MAX_BYTES`], only each platform's slowest steps; the
/// platforms' totals (wall time, steps run and cached, digests) are kept
/// whole. Each platform names `runner`, and what was cut. Compact JSON.
pub fn compact(record: &RunRecord, runner: &str) -> Result<String> {
    let mut r = record.clone();
    r.schema_version = crate::run::SchemaVersion::CURRENT;
    let mut cut = Vec::new();
    if r.setup.take().is_some() {
        cut.push("the setup record".to_string());
    }
    if r.cache.take().is_some() {
        cut.push("the cache usage".to_string());
    }
    let logs = r
        .platforms
        .iter_mut()
        .flat_map(|p| p.steps.iter_mut())
        .fold(false, |any, s| {
            any | !std::mem::take(&mut s.log_tail).is_empty()
        });
    if logs {
        cut.push("build logs".to_string());
    }
    let full = r.clone();
    let encode = |r: &RunRecord, cut: &[String]| {
        let mut r = r.clone();
        let runner = RunnerRecord {
            label: runner.to_string(),
            wall_seconds: record.wall_seconds,
            cut: (!cut.is_empty()).then(|| cut.join(", ")),
        };
        for p in &mut r.platforms {
            p.runner = Some(runner.clone());
        }
        serde_json::to_string(&r).expect("a record serializes")
    };
    let text = encode(&r, &cut);
    if text.len() <= PART_MAX_BYTES {
        return Ok(text);
    }
    // Keep the k slowest steps of each platform, the largest k that fits.
    let most = full
        .platforms
        .iter()
        .map(|p| p.steps.len())
        .max()
        .unwrap_or(0);
    let (mut lo, mut hi) = (0usize, most);
    let mut best = None;
    while lo <= hi {
        let k = (lo + hi) / 2;
        let (r, c) = slowest(&full, k, &cut);
        let t = encode(&r, &c);
        if t.len() <= PART_MAX_BYTES {
            best = Some(t);
            lo = k + 1;
        } else if k == 0 {
            break;
        } else {
            hi = k - 1;
        }
    }
    best.ok_or_else(|| {
        Error::input(
            format!(
                "the part is over {PART_MAX_BYTES} bytes, the most a job output carries here, even without its steps ({} tags, {} notes)",
                r.tags.len(),
                r.notes.len()
            ),
            "give fewer tags to the part jobs (the merge job takes the tags), or hand the parts on as files (`mbx build --json FILE`, `mbx merge --parts DIR`)",
        )
    })
}

/// The record with only the `k` slowest steps of each platform (in their
/// order), and the cut list saying so.
fn slowest(full: &RunRecord, k: usize, cut: &[String]) -> (RunRecord, Vec<String>) {
    let mut r = full.clone();
    let (mut kept, mut all) = (0, 0);
    for p in &mut r.platforms {
        all += p.steps.len();
        if p.steps.len() > k {
            let mut by_time: Vec<usize> = (0..p.steps.len()).collect();
            by_time.sort_by(|&a, &b| p.steps[b].busy_seconds.total_cmp(&p.steps[a].busy_seconds));
            let mut keep = vec![false; p.steps.len()];
            for &i in &by_time[..k] {
                keep[i] = true;
            }
            let mut i = 0;
            p.steps.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        kept += p.steps.len();
    }
    let mut cut = cut.to_vec();
    if kept < all {
        cut.push(format!(
            "the timings of {} of {all} steps (kept the {k} slowest per platform; the step counts are whole)",
            all - kept
        ));
    }
    (r, cut)
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
        assert_eq!(
            p.skipped,
            vec![d.path().join("other.json").display().to_string()]
        );
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
        assert!(e.help().unwrap().contains("same mbx version in every job"));
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

    fn record(repo: &str, platform: &str, steps: usize) -> RunRecord {
        let mut r = RunRecord::new(platform.parse().unwrap());
        r.output = repo.into();
        r.tags = vec![format!("{repo}:latest")];
        r.wall_seconds = 42.0;
        r.platforms = vec![PlatformRecord {
            platform: platform.parse().unwrap(),
            emulated: false,
            node: None,
            digest: None,
            build_digest: Some(format!("sha256:{}", "a".repeat(64))),
            wall_seconds: 30.0,
            executed_seconds: 20.0,
            steps_total: steps,
            steps_cached: steps / 2,
            cache_scope: Some("app-linux-amd64".into()),
            error: None,
            steps: (0..steps)
                .map(|i| crate::run::Step {
                    digest: format!("sha256:{i:064x}"),
                    name: format!(
                        "[{platform} {i}/{steps}] RUN ./step-{i}.sh --with --some --arguments"
                    ),
                    started: Some(1.0e9 + i as f64),
                    completed: Some(1.0e9 + i as f64 + 1.0),
                    busy_seconds: (i % 97) as f64 / 10.0,
                    cached: i % 2 == 0,
                    error: None,
                    instruction: true,
                    log_tail: vec!["a log line that the part drops".into(); 5],
                })
                .collect(),
            cache_error: None,
            buildx: None,
            runner: None,
        }];
        r
    }

    #[test]
    fn a_small_part_keeps_every_step_and_names_its_runner() {
        let r = record("127.0.0.1:5000/app", "linux/amd64", 3);
        let text = compact(&r, "ubuntu-24.04").unwrap();
        let back = RunRecord::from_json(text.as_bytes()).unwrap();
        let p = &back.platforms[0];
        assert_eq!(p.steps.len(), 3);
        assert!(p.steps.iter().all(|s| s.log_tail.is_empty()));
        let runner = p.runner.as_ref().unwrap();
        assert_eq!(runner.label, "ubuntu-24.04");
        assert_eq!(runner.wall_seconds, 42.0);
        assert_eq!(runner.cut.as_deref(), Some("build logs"));
        assert!(!text.contains('\n'), "one line: a job output");
    }

    #[test]
    fn a_part_with_many_steps_is_cut_below_the_limit_and_says_so() {
        let r = record("127.0.0.1:5000/app", "linux/arm64", 2000);
        assert!(serde_json::to_string(&r).unwrap().len() > 20 * PART_MAX_BYTES);
        let text = compact(&r, "ubuntu-24.04-arm").unwrap();
        assert!(text.len() <= PART_MAX_BYTES, "{} bytes", text.len());
        let back = RunRecord::from_json(text.as_bytes()).unwrap();
        let p = &back.platforms[0];
        let kept = p.steps.len();
        assert!(kept > 5 && kept < 2000, "kept {kept}");
        // The totals stay whole; the kept steps are the slowest, in order.
        assert_eq!((p.steps_total, p.steps_cached), (2000, 1000));
        assert_eq!(p.build_digest, r.platforms[0].build_digest);
        let slowest_dropped = r.platforms[0]
            .steps
            .iter()
            .filter(|s| !p.steps.iter().any(|k| k.digest == s.digest))
            .map(|s| s.busy_seconds)
            .fold(0.0, f64::max);
        assert!(p.steps.iter().all(|s| s.busy_seconds >= slowest_dropped));
        assert!(p.steps.windows(2).all(|w| w[0].started < w[1].started));
        let cut = p.runner.as_ref().unwrap().cut.clone().unwrap();
        assert!(
            cut.starts_with("build logs, the timings of ")
                && cut.contains(&format!(
                    "of 2000 steps (kept the {kept} slowest per platform"
                )),
            "{cut}"
        );
        // Eight such parts, escaped again by toJSON, fit one environment variable.
        let outputs: serde_json::Map<String, serde_json::Value> = (0..8)
            .map(|i| (format!("part-{i}"), serde_json::Value::String(text.clone())))
            .collect();
        assert!(serde_json::to_string_pretty(&outputs).unwrap().len() < 128 * 1024);
    }

    #[test]
    fn a_part_too_big_without_steps_is_refused() {
        let mut r = record("127.0.0.1:5000/app", "linux/amd64", 1);
        r.tags = (0..2000)
            .map(|i| format!("127.0.0.1:5000/app:v{i}"))
            .collect();
        let e = compact(&r, "x").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("even without its steps (2000 tags"),
            "{e}"
        );
    }

    /// `toJSON(needs.build.outputs)` as GitHub hands it to the merge job: one
    /// name per leg, the others empty, and an unrelated output.
    #[test]
    fn parts_from_job_outputs() {
        let amd = compact(
            &record("127.0.0.1:5000/app", "linux/amd64", 3),
            "ubuntu-24.04",
        )
        .unwrap();
        let arm = compact(
            &record("127.0.0.1:5000/app", "linux/arm64", 3),
            "ubuntu-24.04-arm",
        )
        .unwrap();
        let outputs = serde_json::json!({
            "part-0": amd, "part-1": arm, "part-2": "", "part-3": "",
            "digest": "sha256:abc",
        });
        let p = from_outputs(&serde_json::to_string_pretty(&outputs).unwrap()).unwrap();
        assert_eq!(p.platforms.len(), 2);
        assert_eq!(p.sources, ["job output `part-0`", "job output `part-1`"]);
        assert_eq!(p.skipped, ["job output `digest`"]);
        assert_eq!(
            p.platforms[1].runner.as_ref().unwrap().label,
            "ubuntu-24.04-arm"
        );
        // A list, and a single part, read the same.
        let list = serde_json::json!([amd, arm]).to_string();
        assert_eq!(from_outputs(&list).unwrap().platforms.len(), 2);
        assert_eq!(from_outputs(&amd).unwrap().platforms.len(), 1);
        // Nothing there, or not JSON at all: exit 2, naming the fix.
        let e = from_outputs(r#"{"part-0": "", "part-1": ""}"#).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.help().unwrap().contains("toJSON(needs."), "{e}");
        assert_eq!(from_outputs("part-0").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn a_job_output_part_of_another_schema_or_cut_short_stops_the_merge() {
        let amd = compact(&record("127.0.0.1:5000/app", "linux/amd64", 3), "a").unwrap();
        let newer = r#"{"schema_version": "2.0", "mbx_version": "9.0.0"}"#;
        let outputs = serde_json::json!({"part-0": amd, "part-1": newer});
        let e = from_outputs(&outputs.to_string()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().starts_with(
                "part job output `part-1`: record schema 2.0 (written by mbx 9.0.0) is newer than this mbx"
            ),
            "{e}"
        );
        assert!(e.help().unwrap().contains("`mbx-version`"));
        let outputs = serde_json::json!({"part-0": &amd[..amd.len() / 2]});
        let e = from_outputs(&outputs.to_string()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("part job output `part-0` is not valid JSON"),
            "{e}"
        );
    }
}
