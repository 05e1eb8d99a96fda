//! Build stage: each platform as its own `docker buildx build`, in parallel,
//! each with its own cache scope; then one multi-platform index.

pub mod cache_issue;
pub mod log;
pub mod merge;
pub mod output;
pub mod parts;
pub mod progress;
mod schedule;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use crate::docker::process::StallWatch;
use crate::docker::{BuildOutcome, Buildx};
use crate::error::{Error, Result};
use crate::plan::cache;
use crate::plan::{BuildPlan, Output, Plan};
use crate::platform::Platform;
use crate::printer::Printer;
use crate::run::PlatformRecord;
use progress::Progress;

/// What the build stage leaves: where the result went and each platform's build.
#[derive(Debug, Default)]
pub struct BuildRecord {
    /// A registry repository or an OCI layout directory.
    pub output: String,
    pub tags: Vec<String>,
    pub platforms: Vec<PlatformRecord>,
    pub index_digest: Option<String>,
    pub index_descriptor: Option<crate::run::IndexDescriptor>,
    /// Things the user should know about how the build went.
    pub notes: Vec<String>,
}

/// Build every platform, then merge: a registry output with the registry
/// options `merge` (none: multi-runner parts, joined later by `mbx merge`). `driver`
/// is the builder's driver (the docker driver pushes staging tags). On a
/// failed platform the record still holds every platform's result and the
/// error says what failed.
pub fn run(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    driver: &str,
    merge: Option<&crate::oci::Options>,
) -> (BuildRecord, Result<()>) {
    let mut record = BuildRecord::default();
    (record.output, record.tags) = destination(&build.output);
    if build.scratch.is_some() {
        // The layout is scratch: what the user asked for is the exports.
        record.output = output::describe(&build.exports);
    }
    record
        .tags
        .extend(merge::more_refs(&build.more_repositories));
    record.notes.extend(build.notes.iter().cloned());
    let result = run_into(plan, build, buildx, printer, driver, merge, &mut record);
    (record, result)
}

fn run_into(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    driver: &str,
    merge: Option<&crate::oci::Options>,
    record: &mut BuildRecord,
) -> Result<()> {
    crate::interrupt::remove_stale_scratch();
    let work = crate::interrupt::scratch_dir("").map_err(|e| {
        Error::env(
            format!("cannot create a temporary directory: {e}"),
            "check TMPDIR",
        )
    })?;
    let made_output = match &build.output {
        Output::Layout { dir, .. } if !dir.exists() => Some(dir.clone()),
        _ => None,
    };
    let parts_root = match &build.output {
        Output::Layout { dir, .. } => {
            prepare_layout_dir(dir)?;
            Some(dir.join(".mbx-parts"))
        }
        Output::Registry { .. } => None,
    };
    // The docker driver cannot push by digest: each platform goes to a staging tag.
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
    let targets = Targets {
        parts_root: parts_root.as_deref(),
        staging,
        work: work.path(),
    };
    record.platforms = build_all(plan, build, buildx, printer, &targets);
    record.notes.extend(cache::failure_note(&record.platforms));
    if let Some(e) = failure(&build.output, &record.platforms) {
        if let Some(root) = &parts_root {
            let _ = std::fs::remove_dir_all(root);
        }
        // An output directory this run made and left empty goes too
        // (remove_dir refuses a directory that holds anything).
        if let Some(dir) = &made_output {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(e);
    }
    if merge.is_none() && matches!(build.output, Output::Registry { .. }) {
        printer.status(&match &build.json {
            Some(p) => format!(
                "pushed by digest only, no tag moved; the part is {}: join the parts with `mbx merge --parts DIR`",
                p.display()
            ),
            None => "pushed by digest only, no tag moved; without --json no part was written, so `mbx merge` cannot join this build".into(),
        });
        record
            .notes
            .push("pushed by digest only: the tags are moved by `mbx merge`".into());
        record.notes.extend(output::unmerged_note(build));
        if !build.more_repositories.is_empty() {
            record.notes.push(format!(
                "the platforms were pushed by digest to {} other repositories too, but `mbx merge` makes the index in {} only",
                build.more_repositories.len(),
                record.output
            ));
        }
        return Ok(());
    }
    printer.status("merging platforms into one index");
    let merging = Instant::now();
    let merged = merge_all(plan, build, merge, &record.platforms, parts_root.as_deref())?;
    let seconds = merging.elapsed().as_secs_f64();
    tracing::debug!(phase = "merge", seconds, "timing");
    apply_merge(&mut record.platforms, &merged);
    record.index_descriptor = Some(merged.descriptor.clone());
    record.index_digest = Some(merged.index_digest);
    let notes = output::finish(plan, build, buildx, printer, work.path(), &merged.index)?;
    record.notes.extend(notes);
    Ok(())
}

/// Where the result goes, as the record names it: (output, tags).
fn destination(output: &Output) -> (String, Vec<String>) {
    match output {
        Output::Layout { dir, ref_name } => (dir.display().to_string(), vec![ref_name.clone()]),
        Output::Registry { repository, tags } => (
            repository.clone(),
            tags.iter().map(|t| format!("{repository}:{t}")).collect(),
        ),
    }
}

/// Where each platform's build writes.
struct Targets<'a> {
    parts_root: Option<&'a Path>,
    staging: bool,
    work: &'a Path,
}

/// Every platform built, `build.max_parallel` at a time, in the plan's order.
fn build_all(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    targets: &Targets,
) -> Vec<PlatformRecord> {
    // Every platform at once in one bake when it can (the context is sent
    // once); what it leaves (a platform cancelled by another's failure, or
    // everything when bake cannot be used) is built on its own below.
    let (baked, rest) = schedule::bake_all(plan, build, buildx, printer, targets);
    let queue: Mutex<Vec<Platform>> = Mutex::new(rest.into_iter().rev().collect());
    let results: Mutex<Vec<PlatformRecord>> = Mutex::new(baked);
    let workers = build.max_parallel.min(plan.platforms.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(platform) = queue.lock().expect("queue").pop() else {
                    break;
                };
                let emulated = plan.emulated(&platform);
                printer.status(&format!(
                    "building {platform} ({})",
                    if emulated { "emulated" } else { "native" }
                ));
                let part = targets.parts_root.map(|r| r.join(platform.slug()));
                let target = Target {
                    platform: &platform,
                    emulated,
                    part: part.as_deref(),
                    staging: targets.staging,
                };
                let rec = build_pushing(plan, build, buildx, printer, &target, targets.work);
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
    results
}

/// Attempts at a platform whose push fails on a registry fault.
const PUSH_ATTEMPTS: usize = 4;

/// [`build_one`], again when its push failed on a registry fault that may
/// pass and BuildKit's own retries (5xx and resets, three times in 7 s;
/// never 429) did not see it through: the build is cached, so only the
/// export and the push run again. Backoff from 2 s with jitter,
/// [`PUSH_ATTEMPTS`] in all: a lasting fault ends the platform in about a
/// minute.
fn build_pushing(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    target: &Target,
    work: &Path,
) -> PlatformRecord {
    let mut delays = crate::oci::registry::fault_delays(
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(10),
        PUSH_ATTEMPTS,
    );
    let mut attempt = 1;
    loop {
        let rec = build_one(plan, build, buildx, printer, target, work);
        let fault = match (&rec.error, &build.output) {
            (Some(e), Output::Registry { .. }) if push_fault(e) => e,
            _ => return rec,
        };
        let Some(delay) = delays.next() else {
            return rec;
        };
        attempt += 1;
        printer.status(&format!(
            "{}: the push failed on a registry fault; pushing again in {:.0}s (attempt {attempt} of {PUSH_ATTEMPTS}): {}",
            target.platform,
            delay.as_secs_f64(),
            first_line(fault).chars().take(240).collect::<String>()
        ));
        std::thread::sleep(delay);
    }
}

/// How long a push may stand still before it is stopped (and tried
/// again): `MBX_PUSH_STALL` seconds, default 120 (compressing a very large
/// layer reports nothing until it is done).
fn push_stall() -> std::time::Duration {
    let secs = std::env::var("MBX_PUSH_STALL")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(120);
    std::time::Duration::from_secs(secs)
}

/// A platform's error that is its push meeting a registry fault.
fn push_fault(error: &str) -> bool {
    let line = first_line(error);
    if line.starts_with("the push stalled") {
        return true;
    }
    (line.contains("exporting to image") || line.contains("failed to push"))
        && crate::oci::registry::transient_fault(line)
}

/// The error of an interrupted run or of failed platforms, saying what was
/// left pushed by digest; None when every platform built.
fn failure(output: &Output, platforms: &[PlatformRecord]) -> Option<Error> {
    let ok: Vec<&PlatformRecord> = platforms.iter().filter(|r| r.error.is_none()).collect();
    let failed: Vec<&PlatformRecord> = platforms.iter().filter(|r| r.error.is_some()).collect();
    if crate::interrupt::interrupted() {
        let pushed: Vec<String> = ok
            .iter()
            .filter_map(|r| Some(format!("{} ({})", r.platform, r.build_digest.as_deref()?)))
            .collect();
        let stopped: Vec<String> = failed.iter().map(|r| r.platform.to_string()).collect();
        let mut message = format!(
            "interrupted: stopped {}",
            if stopped.is_empty() {
                "nothing".into()
            } else {
                stopped.join(", ")
            }
        );
        let help = match output {
            Output::Registry { .. } if !pushed.is_empty() => {
                message.push_str(&format!("; pushed by digest only: {}", pushed.join(", ")));
                "no index was pushed and no tag moved".to_string()
            }
            Output::Registry { .. } => "nothing was pushed".to_string(),
            Output::Layout { .. } => "no index was written".to_string(),
        };
        return Some(Error::Interrupted { message, help });
    }
    if failed.is_empty() {
        return None;
    }
    let mut msg = String::from("build failed:");
    for r in &failed {
        msg.push_str(&format!(
            "\n  {}: {}",
            r.platform,
            r.error.as_deref().unwrap_or("")
        ));
    }
    let ok: Vec<String> = ok.iter().map(|r| r.platform.to_string()).collect();
    let help = match (output, ok.is_empty()) {
        (Output::Registry { .. }, false) => format!(
            "no index was pushed and no tag moved; {} were pushed by digest only. Fix the failing step and run again",
            ok.join(", ")
        ),
        (Output::Registry { .. }, true) => {
            "nothing was pushed by digest, no index was pushed and no tag moved; fix the failing step and run again".to_string()
        }
        _ => "no index was written; fix the failing step and run again".to_string(),
    };
    Some(Error::build(msg, help))
}

/// One index from the platforms' results: an OCI layout, or pushed with the tags.
fn merge_all(
    plan: &Plan,
    build: &BuildPlan,
    registry: Option<&crate::oci::Options>,
    platforms: &[PlatformRecord],
    parts_root: Option<&Path>,
) -> Result<merge::Merged> {
    match &build.output {
        Output::Layout { dir, ref_name } => {
            let root = parts_root.expect("layout parts");
            let m = merge::layouts(
                &plan.platforms,
                root,
                dir,
                ref_name,
                &build.index_annotations,
            );
            let _ = std::fs::remove_dir_all(root);
            m
        }
        Output::Registry { repository, tags } => {
            let registry = registry.expect("a registry output is merged with registry options");
            let sources = sources(platforms);
            block_on(merge::registries(
                registry,
                (repository, tags),
                &build.more_repositories,
                &sources,
                &build.index_annotations,
            ))
        }
    }
}

/// Each pushed platform and its digest: what the merge joins.
fn sources(platforms: &[PlatformRecord]) -> Vec<(Platform, String)> {
    platforms
        .iter()
        .filter_map(|r| Some((r.platform.clone(), r.build_digest.clone()?)))
        .collect()
}

/// `fut` to its end from the build stage (synchronous, run by the pipeline
/// inside `block_in_place` on the multi-thread runtime).
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(fut)
}

/// Each platform's digest as it stands in the merged index.
fn apply_merge(platforms: &mut [PlatformRecord], merged: &merge::Merged) {
    for r in platforms {
        r.digest = merged
            .platform_digests
            .get(&r.platform.to_string())
            .cloned();
    }
}

/// `mbx merge`: the parts' platforms (pushed by digest on other runners)
/// joined into one index under `tags` in `repository`.
pub fn merge_parts(
    registry: &crate::oci::Options,
    repository: &str,
    tags: &[String],
    platforms: Vec<PlatformRecord>,
    annotations: &[String],
) -> (BuildRecord, Result<()>) {
    let mut record = BuildRecord {
        output: repository.to_string(),
        tags: tags.iter().map(|t| format!("{repository}:{t}")).collect(),
        platforms,
        ..BuildRecord::default()
    };
    let sources = sources(&record.platforms);
    let result = block_on(merge::registry(
        registry,
        repository,
        tags,
        &sources,
        annotations,
    ))
    .map(|merged| {
        apply_merge(&mut record.platforms, &merged);
        record.index_descriptor = Some(merged.descriptor.clone());
        record.index_digest = Some(merged.index_digest);
    });
    (record, result)
}

/// Tag prefix of the per-platform staging tags pushed with the docker driver.
pub const STAGING_PREFIX: &str = "mbx-staging";

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Clear an earlier mbx output (an OCI layout) so the new one stands alone:
/// only the entries an mbx layout holds are removed (the plan refused a
/// directory holding anything else).
fn prepare_layout_dir(dir: &Path) -> Result<()> {
    for name in crate::plan::LAYOUT_ENTRIES {
        let p = dir.join(name);
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else if p.exists() {
            std::fs::remove_file(&p)
        } else {
            Ok(())
        };
        removed.map_err(|e| {
            Error::env(
                format!("cannot clear the earlier output {}: {e}", p.display()),
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
            "--output=type=image,{},push=true,oci-mediatypes=true",
            merge::names(&format!("{repository}:{STAGING_PREFIX}-{}", platform.slug()), &merge::staging(&build.more_repositories, &platform.slug()))
        )),
        (Output::Registry { repository, .. }, _) => push(format!(
            "--output=type=image,{},push-by-digest=true,name-canonical=true,push=true,oci-mediatypes=true",
            merge::names(repository, &build.more_repositories)
        )),
        (Output::Layout { .. }, None) => unreachable!("layout output needs a part directory"),
    }
    for c in cache.iter().chain(&build.buildx_flags) {
        push(c.clone());
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
        part,
        staging,
        ..
    } = *target;
    let metadata = work.join(format!("{}.metadata.json", platform.slug()));
    let cache = cache::args(&build.cache, platform);
    let mut args = build_args(plan, build, platform, &metadata, part, &cache.args, staging);
    output::extend_args(&mut args, plan, build, platform, work);
    let started = Instant::now();
    let mut progress = Progress::new();
    let watch = matches!(build.output, Output::Registry { .. })
        .then(|| StallWatch::start(metadata.display().to_string(), push_stall()));
    let outcome = buildx.build(args, &metadata, build.redactions.values(), &mut |chunk| {
        if let Some(w) = &watch {
            w.saw(chunk);
        }
        progress.feed(chunk);
        printer.progress(platform, &progress.snapshot())
    });
    let stalled = watch.and_then(StallWatch::stop);
    progress.finish();
    log::print(printer, platform, &progress, &build.redactions, &outcome);
    let wall = started.elapsed().as_secs_f64();
    finish_record(build, target, &cache, outcome, &progress, (wall, stalled))
}

/// One platform's record from its build's outcome and progress (shared by
/// the per-platform builds and the one bake of every platform).
fn finish_record(
    build: &BuildPlan,
    target: &Target,
    cache: &cache::CacheArgs,
    outcome: Result<BuildOutcome>,
    progress: &Progress,
    (wall, stalled): (f64, Option<std::time::Duration>),
) -> PlatformRecord {
    let Target {
        platform, emulated, ..
    } = *target;
    let mut rec = PlatformRecord {
        platform: platform.clone(),
        emulated,
        node: None,
        digest: None,
        build_digest: None,
        wall_seconds: wall,
        executed_seconds: 0.0,
        steps_total: 0,
        steps_cached: 0,
        cache_scope: cache.scope.clone(),
        error: None,
        steps: Vec::new(),
        cache_error: None,
        buildx: None,
        runner: None,
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            rec.error = Some(e.to_string());
            return rec;
        }
    };
    fill_from_outcome(&mut rec, &outcome, progress);
    if let Some(limit) = stalled {
        rec.error = Some(format!(
            "the push stalled: nothing moved for {}s while exporting to the registry (it stopped answering mid-upload); the build was stopped",
            limit.as_secs()
        ));
    }
    sanitise(&mut rec, &build.redactions);
    rec.cache_error = cache_issue::find(&build.cache, &rec.steps);
    if rec.error.is_none() {
        if let Some((fresh, current)) = &cache.local_swap {
            if let Err(e) = cache::swap_in(fresh, current) {
                tracing::warn!("local cache for {platform} not updated: {e}");
            }
        }
    }
    rec
}

/// What a build's record may hold of its output: no secret value (a build
/// arg's value shows in step names like `RUN test -n "$TOKEN"` once expanded,
/// and in logs), and no line a GitHub runner would take for a workflow
/// command (`::error::…`, `::add-mask::…`; the runner trims leading
/// whitespace first) when mbx relays it.
fn sanitise(rec: &mut PlatformRecord, redactions: &crate::plan::Redactions) {
    let clean = |s: &str| neutralise_commands(&redactions.apply(s));
    for step in &mut rec.steps {
        step.name = redactions.apply(&step.name);
        step.error = step.error.as_deref().map(clean);
        for line in &mut step.log_tail {
            *line = clean(line);
        }
    }
    rec.error = rec.error.as_deref().map(clean);
}

/// Every line whose text starts with `::` gets a space between the colons.
pub fn neutralise_commands(text: &str) -> String {
    text.split('\n')
        .map(|l| {
            let t = l.trim_start();
            match t.strip_prefix("::") {
                Some(rest) => format!("{}: :{rest}", &l[..l.len() - t.len()]),
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Steps, counts, digest and error of one finished build.
pub fn fill_from_outcome(rec: &mut PlatformRecord, outcome: &BuildOutcome, progress: &Progress) {
    let steps = progress.steps();
    let counted: Vec<_> = steps
        .iter()
        .filter(|s| s.instruction && !s.instruction_text().starts_with("FROM "))
        .collect();
    // Vertices past the parser's cap are not kept, but they are counted.
    let folded = progress.folded();
    rec.steps_total = counted.len() + folded.instructions - folded.from;
    rec.steps_cached =
        counted.iter().filter(|s| s.cached).count() + folded.cached - folded.from_cached;
    rec.executed_seconds = steps
        .iter()
        .filter(|s| s.instruction && !s.cached)
        .map(|s| s.busy_seconds)
        .sum::<f64>()
        + folded.executed_seconds;
    let field = |k: &str| {
        outcome
            .metadata
            .as_ref()
            .and_then(|m| m.get(k))
            .and_then(|d| d.as_str())
            .map(str::to_string)
    };
    rec.build_digest = field("containerimage.digest");
    rec.node = field("buildx.build.ref")
        .as_deref()
        .and_then(crate::run::node_of_build_ref);
    rec.buildx = Some(crate::run::BuildxResult {
        build_ref: field("buildx.build.ref"),
        config_digest: field("containerimage.config.digest"),
    })
    .filter(|b| b.build_ref.is_some() || b.config_digest.is_some());
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
