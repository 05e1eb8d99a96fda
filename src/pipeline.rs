//! The stage order, setup → build → verify → report, and the one place the
//! run record is assembled ([`assemble`]) and emitted ([`emit`]). Each stage
//! is a function from the plan (and what earlier stages returned) to its own
//! record; commands only choose which stages run.

use std::path::PathBuf;
use std::time::Duration;

use crate::build::{self, BuildRecord};
use crate::docker::Buildx;
use crate::error::{Error, Result};
use crate::gha_cache;
use crate::oci::Options;
use crate::plan::{BuildPlan, Cache, Checks, Output, Plan};
use crate::platform::Platform;
use crate::printer::{self, Printer};
use crate::report::{self, GithubTargets, ReportOptions};
use crate::run::{now, BuildInputs, CacheUsage, PlatformRecord, RunRecord, SetupRecord};
use crate::setup::{self, QemuPlan};
use crate::verify::{self, VerifyRecord};

/// How a command ends when it did not fail with an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked for was done (exit 0).
    Success,
    /// The command ran but what it checked does not hold (exit 1), e.g.
    /// `mbx verify` found a platform missing.
    Failure,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
        }
    }
}

/// The outside world the stages talk to.
pub struct Tools<'a> {
    pub buildx: &'a Buildx,
    pub printer: &'a Printer,
}

/// What to read back after the build.
pub struct VerifyPlan<'a> {
    pub checks: &'a Checks,
    pub options: &'a Options,
}

/// A run's record and the build stage's own outcome (a failed platform or an
/// interrupt), which the command turns into its exit status after emitting.
pub struct Run {
    pub record: RunRecord,
    pub built: Result<()>,
}

impl Run {
    /// The command's result once the record is emitted: a failed build
    /// outranks a failed verification, which outranks a report that could
    /// not be written (`emitted`).
    pub fn finish(self, emitted: Result<()>, verification: bool) -> Result<ExitStatus> {
        self.built?;
        if verification && !self.record.verified {
            return Err(Error::verify(
                "verification failed: the result does not hold what was asked (see the checks above)",
                "",
            ));
        }
        emitted.map(|_| ExitStatus::Success)
    }
}

/// The setup stage, with a status line for what it found and did.
pub async fn setup(plan: &Plan, qemu: &QemuPlan, tools: &Tools<'_>) -> Result<SetupRecord> {
    let printer = tools.printer;
    printer.status(&format!(
        "setup: checking {} on {}",
        join(&plan.platforms),
        plan.host
    ));
    let setup = setup::run(plan, tools.buildx, qemu).await?;
    if let Some(b) = &setup.builder {
        printer.status(&format!(
            "setup: builder `{}` {} ({}, BuildKit {}), platforms: {}",
            b.name,
            b.action,
            b.driver,
            b.buildkit_version.as_deref().unwrap_or("?"),
            b.platforms.join(", ")
        ));
    }
    for a in &setup.actions {
        printer.status(&format!("setup: did {a}"));
    }
    if let Some(n) = setup.builder.as_ref().and_then(|b| b.note.as_ref()) {
        printer.status(&format!("setup: note: {n}"));
    }
    Ok(setup)
}

/// `mbx ci`: setup, every platform built and merged, the result read back,
/// the gha cache's usage (on GitHub).
pub async fn ci(
    plan: &Plan,
    build: &BuildPlan,
    qemu: &QemuPlan,
    verify: &VerifyPlan<'_>,
    tools: &Tools<'_>,
) -> Result<Run> {
    let started = now();
    let mut clock = PhaseClock::start();
    unused_login(build, verify.options)?;
    preflight_registry(build).await?;
    clock.mark("registry preflight");
    // The push credentials checked while setup runs (neither waits for the
    // other; a refusal still comes before anything is built). Held to the
    // end of the run: the push and the merge use them.
    let login = async {
        let t = std::time::Instant::now();
        let login = push_credentials(build, verify.options).await;
        timing("push credentials", t.elapsed().as_secs_f64());
        login
    };
    let (login, setup) = tokio::join!(login, setup(plan, qemu, tools));
    let _login = login?;
    let setup = setup?;
    for p in &setup.phases {
        timing(&format!("setup: {}", p.name), p.seconds);
    }
    clock.mark("setup");
    // A multi-node builder: each node's first platform is native there.
    let mut plan = plan.clone();
    if let Some(b) = &setup.builder {
        plan.builder.node_natives = b
            .nodes
            .iter()
            .filter_map(|n| n.platforms.first()?.parse().ok())
            .collect();
    }
    let plan = &plan;
    let driver = setup
        .builder
        .as_ref()
        .map(|b| b.driver.clone())
        .unwrap_or_default();
    let (mut built, result) = tokio::task::block_in_place(|| {
        build::run(
            plan,
            build,
            tools.buildx,
            tools.printer,
            &driver,
            Some(verify.options),
        )
    });
    clock.mark("build + merge");
    // Emulated or not is the building node's business (multi-node builders).
    if let Some(b) = &setup.builder {
        for p in &mut built.platforms {
            if let Some(e) = p
                .node
                .as_deref()
                .and_then(|n| b.emulated_on(n, &p.platform))
            {
                p.emulated = e;
            }
        }
    }
    let (verified, notes) = read_back_run(plan, build, verify, tools, &built, result.is_ok()).await;
    clock.mark("read-back");
    let user_gha = |specs: &[String]| specs.iter().any(|c| c.contains("type=gha"));
    let cache = match &build.cache {
        Cache::Gha { .. } => cache_usage(&built.platforms, tools.printer).await,
        Cache::User { from, to } if user_gha(from) || user_gha(to) => {
            cache_usage(&built.platforms, tools.printer).await
        }
        _ => None,
    };
    clock.mark("cache usage");
    let mut record = assemble(
        Parts {
            started,
            host: plan.host.clone(),
            setup: Some(setup),
            inputs: Some(report::inputs(plan, build)),
            cache,
        },
        built,
        verified,
    );
    record.notes.extend(notes);
    Ok(Run {
        record,
        built: result,
    })
}

/// The verify stage after a build: the result read back (every tag of every
/// repository), or why it was not.
async fn read_back_run(
    plan: &Plan,
    build: &BuildPlan,
    verify: &VerifyPlan<'_>,
    tools: &Tools<'_>,
    built: &BuildRecord,
    built_ok: bool,
) -> (Option<VerifyRecord>, Vec<String>) {
    let mut notes = Vec::new();
    let verified = match (built_ok, verify.checks.skip) {
        (true, true) => {
            notes.push("verification skipped (--no-verify): the result was not read back".into());
            None
        }
        (true, false) => {
            tools.printer.status("verify: reading the result back");
            let reference = match &build.output {
                Output::Layout { dir, .. } => dir.display().to_string(),
                Output::Registry { repository, tags } => format!("{repository}:{}", tags[0]),
            };
            let mut v = verify::read_back(
                &reference,
                &plan.platforms,
                verify.checks,
                verify.options,
                built.index_digest.as_deref(),
            )
            .await;
            if !build.more_repositories.is_empty() {
                let others: Vec<&String> = built.tags.iter().filter(|t| **t != reference).collect();
                read_back_tags(
                    &others,
                    &plan.platforms,
                    verify,
                    built.index_digest.as_deref(),
                    &mut v,
                )
                .await;
            }
            Some(v)
        }
        (false, _) => None,
    };
    (verified, notes)
}

/// Every other tag (several repositories): read back too, one check each,
/// passed when it resolves to the merged index and holds every platform.
async fn read_back_tags(
    refs: &[&String],
    platforms: &[Platform],
    verify: &VerifyPlan<'_>,
    merged: Option<&str>,
    into: &mut VerifyRecord,
) {
    for r in refs {
        let v = verify::read_back(r, platforms, verify.checks, verify.options, merged).await;
        let failed: Vec<String> = v
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        into.verified &= v.verified;
        into.checks.push(crate::run::Check {
            name: format!("tag {r}"),
            passed: v.verified,
            detail: if v.verified {
                "resolves to the merged index, every platform present".to_string()
            } else {
                failed.join("; ")
            },
        });
    }
}

/// `mbx build`: every platform built on an existing builder (driver
/// `driver`); merged unless the output is a registry (multi-runner parts).
pub fn build_only(plan: &Plan, build: &BuildPlan, driver: &str, tools: &Tools<'_>) -> Run {
    let started = now();
    let (built, result) = tokio::task::block_in_place(|| {
        build::run(plan, build, tools.buildx, tools.printer, driver, None)
    });
    let record = assemble(
        Parts {
            started,
            host: plan.host.clone(),
            setup: None,
            inputs: None,
            cache: None,
        },
        built,
        None,
    );
    Run {
        record,
        built: result,
    }
}

/// What `mbx merge` joins: the parts' platforms, into one repository.
pub struct MergePlan<'a> {
    pub repository: &'a str,
    pub tags: &'a [String],
    pub platforms: Vec<PlatformRecord>,
    pub annotations: &'a [String],
    /// The platforms the merged index must hold.
    pub required: &'a [Platform],
}

/// `mbx merge`: the parts joined into one index, read back.
pub async fn merge(m: MergePlan<'_>, verify: &VerifyPlan<'_>, tools: &Tools<'_>) -> Run {
    let started = now();
    tools.printer.status(&format!(
        "merging {} platform(s) into {} ({})",
        m.platforms.len(),
        m.repository,
        m.platforms
            .iter()
            .map(|p| p.platform.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (built, result) = tokio::task::block_in_place(|| {
        build::merge_parts(
            verify.options,
            m.repository,
            m.tags,
            m.platforms,
            m.annotations,
        )
    });
    let verified = match &result {
        Ok(()) => {
            tools.printer.status("verify: reading the result back");
            let reference = format!("{}:{}", m.repository, m.tags[0]);
            Some(
                verify::read_back(
                    &reference,
                    m.required,
                    verify.checks,
                    verify.options,
                    built.index_digest.as_deref(),
                )
                .await,
            )
        }
        Err(_) => None,
    };
    let record = assemble(
        Parts {
            started,
            host: Platform::host(),
            setup: None,
            inputs: None,
            cache: None,
        },
        built,
        verified,
    );
    Run {
        record,
        built: result,
    }
}

/// What a run record holds besides the stages' own records.
pub struct Parts {
    pub started: f64,
    pub host: Platform,
    pub setup: Option<SetupRecord>,
    pub inputs: Option<BuildInputs>,
    pub cache: Option<CacheUsage>,
}

/// The one place a run record is made from the stages' records.
pub fn assemble(parts: Parts, built: BuildRecord, verified: Option<VerifyRecord>) -> RunRecord {
    let verified = verified.unwrap_or_default();
    let mut record = RunRecord::new(parts.host);
    record.started_at = parts.started;
    record.setup = parts.setup;
    record.inputs = parts.inputs;
    record.cache = parts.cache;
    record.output = built.output;
    record.tags = built.tags;
    record.platforms = built.platforms;
    record.index_digest = built.index_digest;
    record.index_descriptor = built.index_descriptor;
    record.notes = built.notes;
    record.checks = verified.checks;
    record.verified = verified.verified;
    record.wall_seconds = now() - parts.started;
    record
}

/// Where a record goes at the end of a command.
#[derive(Debug, Clone, Default)]
pub struct Emit {
    /// `--json FILE`: the record itself.
    pub json: Option<PathBuf>,
    pub report: ReportOptions,
    /// The job summary, step outputs and annotations (GitHub Actions).
    pub github: GithubTargets,
}

impl Emit {
    /// Every file the record will go to can be written: checked before the
    /// run, so a bad path fails in a second (exit 2), not after a push.
    pub fn check(&self) -> Result<()> {
        if let Some(p) = &self.json {
            check_writable(p, "--json")?;
        }
        for (p, what) in [
            (
                &self.github.summary,
                "the job summary (GITHUB_STEP_SUMMARY / --summary)",
            ),
            (
                &self.github.output,
                "the step outputs (GITHUB_OUTPUT / --github-output)",
            ),
        ] {
            if let Some(p) = p {
                check_writable(p, what)?;
            }
        }
        Ok(())
    }
}

/// `path` can be created or appended to; nothing is left behind by the check.
fn check_writable(path: &std::path::Path, what: &str) -> Result<()> {
    let bad = |why: String| {
        Error::input(
            format!("cannot write {what} to `{}`: {why}", path.display()),
            "pass a file path in an existing, writable directory; nothing was built",
        )
    };
    if path.is_dir() {
        return Err(bad("it is a directory".into()));
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Render the record everywhere it goes. The record file and GitHub's files
/// are written before anything is printed, so a closed stdout loses nothing;
/// the first failure to write is returned after everything was tried.
pub fn emit(record: &RunRecord, to: &Emit) -> Result<()> {
    let mut clock = PhaseClock::start();
    let emitted = emit_all(record, to);
    clock.mark("report");
    emitted
}

fn emit_all(record: &RunRecord, to: &Emit) -> Result<()> {
    let json = match &to.json {
        Some(p) => report::write_json(record, p),
        None => Ok(()),
    };
    let published = report::publish(record, &to.report, &to.github);
    printer::out(&report::terminal::render(
        record,
        &to.report,
        printer::stdout_color(),
    ));
    if let Some(a) = record.cache.as_ref().and_then(report::cache::annotation) {
        if to.github.annotations {
            printer::outln(&a.to_string());
        }
    }
    json.and(published)
}

/// A phase's duration as a debug event (`RUST_LOG=mbx=debug`), which
/// scripts/bench-context reads: `phase="setup" seconds=0.41`.
pub fn timing(phase: &str, seconds: f64) {
    tracing::debug!(phase, seconds, "timing");
}

/// Times consecutive phases.
pub struct PhaseClock(std::time::Instant);

impl PhaseClock {
    pub fn start() -> PhaseClock {
        PhaseClock(std::time::Instant::now())
    }

    /// Log the phase that just ended; the next starts now.
    pub fn mark(&mut self, phase: &str) {
        timing(phase, self.0.elapsed().as_secs_f64());
        self.0 = std::time::Instant::now();
    }
}

fn join(ps: &[Platform]) -> String {
    ps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Before anything is built for a push: the registry takes the push
/// credentials; with `--username/--password-stdin`, the login that hands
/// them to buildx until it is dropped.
pub async fn push_credentials(
    build: &BuildPlan,
    options: &crate::oci::Options,
) -> Result<Option<crate::docker::login::PushLogin>> {
    match &build.output {
        Output::Registry { repository, .. } => {
            setup::preflight::push_credentials(repository, options).await
        }
        Output::Layout { .. } => unused_login(build, options).map(|()| None),
    }
}

/// A login that nothing would use (the output is an OCI layout) is a
/// mistake worth a second look: input, said before setup.
fn unused_login(build: &BuildPlan, options: &crate::oci::Options) -> Result<()> {
    match (&build.output, &options.username) {
        (Output::Layout { .. }, Some(_)) => Err(Error::input(
            "--username/--password-stdin log in for a push, but this run pushes nothing (its output is an OCI layout)",
            "add --push (with --image or --registry) to push, or drop --username and --password-stdin",
        )),
        _ => Ok(()),
    }
}

/// Fail in a second, not after a long build, when the registry is not there.
pub async fn preflight_registry(build: &BuildPlan) -> Result<()> {
    let Output::Registry { repository, .. } = &build.output else {
        return Ok(());
    };
    let mut hosts: Vec<String> = Vec::new();
    for r in std::iter::once(repository).chain(build.more_repositories.iter().map(|(r, _)| r)) {
        let host = crate::plan::ImageRef::parse(r)
            .map(|r| r.registry().to_string())
            .unwrap_or_default();
        if !hosts.contains(&host) {
            preflight_host(&host).await?;
            hosts.push(host);
        }
    }
    Ok(())
}

/// One registry host answers on `/v2/` (any status: it is there).
async fn preflight_host(host: &str) -> Result<()> {
    let host = host.to_string();
    let api = if host == "docker.io" {
        "registry-1.docker.io".to_string()
    } else {
        host.clone()
    };
    let scheme = if crate::oci::is_loopback_host(&host) {
        "http"
    } else {
        "https"
    };
    let client = crate::oci::registry::http_client(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
    })?;
    // Three tries a second apart: one reset connection is not a registry that is down.
    let mut tries = 0;
    loop {
        tries += 1;
        match client.get(format!("{scheme}://{api}/v2/")).send().await {
            Ok(_) => return Ok(()),
            Err(_) if tries < 3 => tokio::time::sleep(Duration::from_secs(1)).await,
            Err(e) => {
                let why = crate::error::chain(&e);
                return Err(Error::env(
                    format!("cannot reach the registry {host}: {why}"),
                    "start the registry or fix --registry/--image; nothing was built or pushed",
                ));
            }
        }
    }
}

/// The gha cache's usage after a run on GitHub Actions; a failure to read it
/// is reported and does not fail the run.
async fn cache_usage(platforms: &[PlatformRecord], printer: &Printer) -> Option<CacheUsage> {
    let scopes: Vec<String> = platforms
        .iter()
        .filter_map(|p| p.cache_scope.clone())
        .collect();
    match gha_cache::usage_in_ci(&scopes).await {
        Ok(u) => u,
        Err(e) => {
            printer.status(&format!(
                "cache: cannot read the GitHub Actions cache usage: {e}{}",
                e.help().map(|h| format!(" ({h})")).unwrap_or_default()
            ));
            None
        }
    }
}
