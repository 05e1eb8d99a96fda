//! Build stage: each platform as its own `docker buildx build`, in parallel,
//! each with its own cache scope; then one multi-platform index.

pub mod merge;
pub mod parts;
pub mod progress;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::docker::{BuildOutcome, Buildx};
use crate::error::{Error, Result};
use crate::plan::cache;
use crate::plan::{BuildPlan, Output, Plan};
use crate::platform::Platform;
use crate::printer::Printer;
use crate::run::{PlatformRecord, RunRecord};
use progress::Progress;

/// Build every platform, then merge (unless `merge` is false and the output
/// is a registry: multi-runner parts, joined later by `mbx merge`). Fills `record.platforms`, `record.output`,
/// `record.tags` and `record.index_digest`; on a failed platform the record
/// still holds every platform's result and the error says what failed.
pub fn run(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    record: &mut RunRecord,
    merge: bool,
) -> Result<()> {
    let work = tempfile::Builder::new()
        .prefix("mbx-build-")
        .tempdir()
        .map_err(|e| {
            Error::env(
                format!("cannot create a temporary directory: {e}"),
                "check TMPDIR",
            )
        })?;
    let parts_root = match &build.output {
        Output::Layout { dir, .. } => {
            prepare_layout_dir(dir)?;
            Some(dir.join(".mbx-parts"))
        }
        Output::Registry { .. } => None,
    };
    match &build.output {
        Output::Layout { dir, ref_name } => {
            record.output = dir.display().to_string();
            record.tags = vec![ref_name.clone()];
        }
        Output::Registry { repository, tags } => {
            record.output = repository.clone();
            record.tags = tags.iter().map(|t| format!("{repository}:{t}")).collect();
        }
    }

    // The docker driver cannot push by digest: each platform goes to a staging tag.
    let driver = match record.setup.as_ref().and_then(|s| s.builder.as_ref()) {
        Some(b) => b.driver.clone(),
        None => buildx
            .inspect(&plan.builder.name, false)?
            .map(|i| i.driver)
            .unwrap_or_default(),
    };
    let staging = driver == "docker" && matches!(build.output, Output::Registry { .. });
    if let (true, Output::Registry { repository, .. }) = (staging, &build.output) {
        let note = format!(
            "the docker driver cannot push by digest: each platform was pushed to a staging tag \
             ({repository}:{}-<os>-<arch>); use the docker-container driver to avoid them",
            STAGING_PREFIX
        );
        printer.status(&note);
        record.notes.push(note);
    }
    let queue: Mutex<Vec<Platform>> = Mutex::new(plan.platforms.iter().rev().cloned().collect());
    let results: Mutex<Vec<PlatformRecord>> = Mutex::new(Vec::new());
    let workers = build.max_parallel.min(plan.platforms.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(platform) = queue.lock().expect("queue").pop() else {
                    break;
                };
                let emulated = !platform.is_native_on(&plan.host);
                printer.status(&format!(
                    "building {platform} ({})",
                    if emulated { "emulated" } else { "native" }
                ));
                let part = parts_root.as_ref().map(|r| r.join(platform.slug()));
                let target = Target {
                    platform: &platform,
                    emulated,
                    part: part.as_deref(),
                    staging,
                };
                let rec = build_one(plan, build, buildx, printer, &target, work.path());
                match &rec.error {
                    None => {
                        printer.status(&format!("built {platform} in {:.1}s", rec.wall_seconds))
                    }
                    Some(e) => printer.status(&format!(
                        "{platform} failed after {:.1}s: {}",
                        rec.wall_seconds,
                        first_line(e)
                    )),
                }
                results.lock().expect("results").push(rec);
            });
        }
    });
    printer.clear_progress();
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|r| plan.platforms.iter().position(|p| *p == r.platform));
    record.platforms = results;

    if crate::interrupt::interrupted() {
        if let Some(root) = &parts_root {
            let _ = std::fs::remove_dir_all(root);
        }
        let pushed: Vec<String> = record
            .platforms
            .iter()
            .filter(|r| r.error.is_none())
            .filter_map(|r| Some(format!("{} ({})", r.platform, r.build_digest.as_deref()?)))
            .collect();
        let stopped: Vec<String> = record
            .platforms
            .iter()
            .filter(|r| r.error.is_some())
            .map(|r| r.platform.to_string())
            .collect();
        let mut message = format!(
            "interrupted: stopped {}",
            if stopped.is_empty() {
                "nothing".into()
            } else {
                stopped.join(", ")
            }
        );
        let help = match &build.output {
            Output::Registry { .. } if !pushed.is_empty() => {
                message.push_str(&format!("; pushed by digest only: {}", pushed.join(", ")));
                "no index was pushed and no tag moved".to_string()
            }
            Output::Registry { .. } => "nothing was pushed".to_string(),
            Output::Layout { .. } => "no index was written".to_string(),
        };
        return Err(Error::Interrupted { message, help });
    }
    let failed: Vec<&PlatformRecord> = record
        .platforms
        .iter()
        .filter(|r| r.error.is_some())
        .collect();
    if !failed.is_empty() {
        let mut msg = String::from("build failed:");
        for r in &failed {
            msg.push_str(&format!(
                "\n  {}: {}",
                r.platform,
                r.error.as_deref().unwrap_or("")
            ));
        }
        let ok: Vec<String> = record
            .platforms
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| r.platform.to_string())
            .collect();
        let help = match (&build.output, ok.is_empty()) {
            (Output::Registry { .. }, false) => format!(
                "no index was pushed and no tag moved; {} were pushed by digest only. Fix the failing step and run again",
                ok.join(", ")
            ),
            _ => "no index was written; fix the failing step and run again".to_string(),
        };
        if let Some(root) = &parts_root {
            let _ = std::fs::remove_dir_all(root);
        }
        return Err(Error::build(msg, help));
    }

    if !merge && matches!(build.output, Output::Registry { .. }) {
        printer.status("pushed by digest only; join the parts with `mbx merge --parts DIR`");
        return Ok(());
    }
    printer.status("merging platforms into one index");
    let merged = match &build.output {
        Output::Layout { dir, ref_name } => {
            let root = parts_root.as_ref().expect("layout parts");
            let parts: Vec<(Platform, PathBuf)> = plan
                .platforms
                .iter()
                .map(|p| (p.clone(), root.join(p.slug())))
                .collect();
            let refs: Vec<(Platform, &Path)> = parts
                .iter()
                .map(|(p, d)| (p.clone(), d.as_path()))
                .collect();
            let m = merge::layouts(&refs, dir, ref_name, &build.index_annotations);
            let _ = std::fs::remove_dir_all(root);
            m?
        }
        Output::Registry { repository, tags } => {
            let digests: Vec<String> = record
                .platforms
                .iter()
                .filter_map(|r| r.build_digest.clone())
                .collect();
            merge::registry(
                buildx,
                &plan.builder.name,
                repository,
                tags,
                &digests,
                &build.index_annotations,
            )?
        }
    };
    for r in &mut record.platforms {
        r.digest = merged
            .platform_digests
            .get(&r.platform.to_string())
            .cloned();
    }
    record.index_digest = Some(merged.index_digest);
    Ok(())
}

/// Tag prefix of the per-platform staging tags pushed with the docker driver.
pub const STAGING_PREFIX: &str = "mbx-staging";

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Clear an earlier mbx output (an OCI layout) so the new one stands alone.
fn prepare_layout_dir(dir: &Path) -> Result<()> {
    if dir.join("oci-layout").exists() {
        std::fs::remove_dir_all(dir).map_err(|e| {
            Error::env(
                format!("cannot clear the earlier output {}: {e}", dir.display()),
                "remove it by hand",
            )
        })?;
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::input(
            format!("cannot create output {}: {e}", dir.display()),
            "pass --output DIR in a writable place",
        )
    })
}

/// The `docker buildx build` arguments for one platform.
pub fn build_args(
    plan: &Plan,
    build: &BuildPlan,
    platform: &Platform,
    metadata: &Path,
    part: Option<&Path>,
    cache: &[String],
    staging: bool,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: String| a.push(s.into());
    push("--builder".into());
    push(plan.builder.name.clone());
    push(format!("--platform={platform}"));
    push("--progress=rawjson".into());
    push("--metadata-file".into());
    push(metadata.display().to_string());
    push("--file".into());
    push(build.dockerfile.display().to_string());
    if let Some(t) = &build.target {
        push(format!("--target={t}"));
    }
    for b in &build.build_args {
        push("--build-arg".into());
        push(b.clone());
    }
    for l in &build.labels {
        push("--label".into());
        push(l.clone());
    }
    if let Some(p) = &build.provenance {
        push(format!("--provenance={p}"));
    }
    if let Some(p) = &build.sbom {
        push(format!("--sbom={p}"));
    }
    for an in &build.annotations {
        push("--annotation".into());
        push(an.clone());
    }
    for sec in &build.secrets {
        push("--secret".into());
        push(sec.clone());
    }
    if build.no_cache {
        push("--no-cache".into());
    }
    if build.pull {
        push("--pull".into());
    }
    match (&build.output, part) {
        (Output::Layout { .. }, Some(dir)) => push(format!("--output=type=oci,dest={},tar=false", dir.display())),
        (Output::Registry { repository, .. }, _) if staging => push(format!(
            "--output=type=image,name={repository}:{STAGING_PREFIX}-{},push=true,oci-mediatypes=true",
            platform.slug()
        )),
        (Output::Registry { repository, .. }, _) => push(format!(
            "--output=type=image,name={repository},push-by-digest=true,name-canonical=true,push=true,oci-mediatypes=true"
        )),
        (Output::Layout { .. }, None) => unreachable!("layout output needs a part directory"),
    }
    for c in cache {
        push(c.clone());
    }
    for c in &build.extra_cache_from {
        push(format!("--cache-from={c}"));
    }
    for c in &build.extra_cache_to {
        push(format!("--cache-to={c}"));
    }
    a.push(build.context.clone().into_os_string());
    a
}

/// One platform's build: where it goes and how.
struct Target<'a> {
    platform: &'a Platform,
    emulated: bool,
    /// The OCI layout directory of this platform (layout output).
    part: Option<&'a Path>,
    /// Push to a staging tag (docker driver) instead of by digest.
    staging: bool,
}

fn build_one(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    target: &Target,
    work: &Path,
) -> PlatformRecord {
    let Target {
        platform,
        emulated,
        part,
        staging,
    } = *target;
    let metadata = work.join(format!("{}.metadata.json", platform.slug()));
    let cache = cache::args(&build.cache, platform);
    let args = build_args(plan, build, platform, &metadata, part, &cache.args, staging);
    let started = Instant::now();
    let mut progress = Progress::new();
    let outcome = buildx.build(args, &metadata, &secret_values(build), &mut |chunk| {
        progress.feed(chunk);
        printer.progress(platform, &progress.snapshot())
    });
    progress.finish();
    let wall = started.elapsed().as_secs_f64();
    let mut rec = PlatformRecord {
        platform: platform.clone(),
        emulated,
        digest: None,
        build_digest: None,
        wall_seconds: wall,
        executed_seconds: 0.0,
        steps_total: 0,
        steps_cached: 0,
        cache_scope: cache.scope.clone(),
        error: None,
        steps: Vec::new(),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            rec.error = Some(e.to_string());
            return rec;
        }
    };
    fill_from_outcome(&mut rec, &outcome, &progress);
    if rec.error.is_none() {
        if let Some((fresh, current)) = &cache.local_swap {
            if let Err(e) = cache::swap_in(fresh, current) {
                tracing::warn!("local cache for {platform} not updated: {e}");
            }
        }
    }
    rec
}

/// Values that must never appear in a printed command line.
fn secret_values(_build: &BuildPlan) -> Vec<String> {
    ["ACTIONS_RUNTIME_TOKEN", "GITHUB_TOKEN"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Steps, counts, digest and error of one finished build.
pub fn fill_from_outcome(rec: &mut PlatformRecord, outcome: &BuildOutcome, progress: &Progress) {
    let steps = progress.steps();
    let counted: Vec<_> = steps
        .iter()
        .filter(|s| s.instruction && !s.instruction_text().starts_with("FROM "))
        .collect();
    rec.steps_total = counted.len();
    rec.steps_cached = counted.iter().filter(|s| s.cached).count();
    rec.executed_seconds = steps
        .iter()
        .filter(|s| s.instruction && !s.cached)
        .map(|s| s.busy_seconds)
        .sum();
    rec.build_digest = outcome
        .metadata
        .as_ref()
        .and_then(|m| m.get("containerimage.digest"))
        .and_then(|d| d.as_str())
        .map(str::to_string);
    if !outcome.success {
        let failing = steps
            .iter()
            .find(|s| s.error.is_some() && s.instruction)
            .or_else(|| steps.iter().find(|s| s.error.is_some()));
        let mut msg = match failing {
            Some(s) => format!(
                "step `{}` failed: {}",
                s.name,
                s.error.as_deref().unwrap_or("")
            ),
            None => format!(
                "`docker buildx build` exited with status {}",
                outcome.status.map_or("signal".into(), |c| c.to_string())
            ),
        };
        let log: Vec<String> = match failing {
            Some(s) if !s.log_tail.is_empty() => {
                s.log_tail.iter().rev().take(15).rev().cloned().collect()
            }
            _ => {
                let mut text = progress.text_tail();
                text.extend(outcome.stdout_tail.iter().cloned());
                text.iter().rev().take(15).rev().cloned().collect()
            }
        };
        if !log.is_empty() {
            msg.push_str("\n    ");
            msg.push_str(&log.join("\n    "));
        }
        rec.error = Some(msg);
    } else if rec.build_digest.is_none() {
        rec.error = Some(format!(
            "buildx reported no image digest (command: {})",
            outcome.command
        ));
    }
    rec.steps = steps;
}
