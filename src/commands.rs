//! The subcommands: each builds a Plan and runs the stages it needs.

use std::time::Duration;

use crate::cli::{
    BuildOnlyArgs, CacheCommand, CachePruneArgs, CacheUsageArgs, CiArgs, GitHubArgs, MergeArgs,
    ReportArgs, SetupArgs, VerifyArgs,
};
use crate::config::Config;
use crate::docker::buildx::Buildx;
use crate::error::{Error, Result};
use crate::gha_cache::{self, github::GitHub, prune};
use crate::oci::registry::is_loopback_host;
use crate::plan::{self, BuildPlan, Output, Plan};
use crate::platform::Platform;
use crate::report::{self, terminal::Printer};
use crate::run::{now, Check, RunRecord};
use crate::{build, setup, verify};

/// What a command leaves behind: the exit status.
pub type ExitStatus = i32;

pub async fn ci(args: CiArgs) -> Result<ExitStatus> {
    let config = Config::load()?;
    let plan = Plan {
        platforms: plan::platforms(&args.platforms)?,
        host: Platform::host(),
        builder: plan::builder(&args.builder, &config)?,
        build: Some(plan::build(&args.build, args.local)?),
        local: args.local,
    };
    let build_plan = plan.build.clone().expect("ci has a build");
    let (mut checks, opts) = plan::verify(&args.verify, false)?;
    checks.skip = args.no_verify;
    let printer = Printer::new(false);
    let buildx = Buildx::default();
    let mut record = RunRecord::new(plan.host.clone());

    preflight_registry(&build_plan).await?;
    printer.status(&format!(
        "setup: checking {} on {}",
        join(&plan.platforms),
        plan.host
    ));
    let qemu = setup::QemuPlan::from_args(&args.qemu, &config);
    let setup = setup::run(&plan, &buildx, &qemu).await?;
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
    record.setup = Some(setup);
    let report_opts = report::ReportOptions::from_flags(&args.report)?;
    finish(
        &checks,
        &opts,
        &plan,
        &build_plan,
        &buildx,
        &printer,
        &report_opts,
        record,
    )
    .await
}

pub async fn build_only(args: BuildOnlyArgs) -> Result<ExitStatus> {
    let plan = Plan {
        platforms: plan::platforms(&args.platforms)?,
        host: Platform::host(),
        builder: plan::BuilderPlan {
            name: args.builder.clone(),
            driver: String::new(),
            ..Default::default()
        },
        build: Some(plan::build(&args.build, args.local)?),
        local: args.local,
    };
    let build_plan = plan.build.clone().expect("build has a build");
    let buildx = Buildx::default();
    if buildx.inspect(&plan.builder.name, false)?.is_none() {
        return Err(Error::env(
            format!("builder `{}` does not exist", plan.builder.name),
            "run `mbx setup` first, or `mbx ci` which sets up and builds",
        ));
    }
    preflight_registry(&build_plan).await?;
    let printer = Printer::new(false);
    let mut record = RunRecord::new(plan.host.clone());
    let result = tokio::task::block_in_place(|| {
        build::run(&plan, &build_plan, &buildx, &printer, &mut record, false)
    });
    record.wall_seconds = now() - record.started_at;
    print!(
        "{}",
        report::terminal::render(
            &record,
            &report::ReportOptions::default(),
            report::terminal::stdout_color()
        )
    );
    if let Some(p) = &build_plan.json {
        report::write_json(&record, p)?;
    }
    result.map(|_| 0)
}

/// Build, verify, report; the common tail of `ci`.
#[allow(clippy::too_many_arguments)]
async fn finish(
    checks: &verify::Checks,
    opts: &verify::Options,
    plan: &Plan,
    build_plan: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    report_opts: &report::ReportOptions,
    mut record: RunRecord,
) -> Result<ExitStatus> {
    record.inputs = Some(report::inputs(plan, build_plan));
    let built = tokio::task::block_in_place(|| {
        build::run(plan, build_plan, buildx, printer, &mut record, true)
    });
    if built.is_ok() && checks.skip {
        record
            .notes
            .push("verification skipped (--no-verify): the result was not read back".into());
    } else if built.is_ok() {
        printer.status("verify: reading the result back");
        let reference = match &build_plan.output {
            Output::Layout { dir, .. } => dir.display().to_string(),
            Output::Registry { repository, tags } => format!("{repository}:{}", tags[0]),
        };
        read_back(&reference, &plan.platforms, checks, opts, &mut record).await;
    }
    if matches!(build_plan.cache, plan::Cache::Gha { .. }) {
        record.cache = cache_usage_for_run(&record, printer).await;
    }
    record.wall_seconds = now() - record.started_at;
    print!(
        "{}",
        report::terminal::render(&record, report_opts, report::terminal::stdout_color())
    );
    if let Some(a) = record.cache.as_ref().and_then(gha_cache::annotation) {
        println!("{a}");
    }
    if let Some(p) = &build_plan.json {
        report::write_json(&record, p)?;
    }
    // A build or verification failure outranks a summary that could not be written.
    let published = report::publish(&record, report_opts, &report::GithubTargets::from_env());
    built?;
    if record.verified || checks.skip {
        published.map(|_| 0)
    } else {
        Err(Error::verify(
            "verification failed: the result does not hold what was asked (see the checks above)",
            "",
        ))
    }
}

/// The verify stage into the record: every check, plus whether the reference
/// resolves to the index the build stage merged.
async fn read_back(
    reference: &str,
    platforms: &[Platform],
    checks: &verify::Checks,
    opts: &verify::Options,
    record: &mut RunRecord,
) {
    match verify::run(reference, platforms, checks, opts).await {
        Ok(v) => {
            let mut checks = v.checks;
            if let (Some(read), Some(merged)) = (&v.index_digest, &record.index_digest) {
                checks.push(Check {
                    name: "index digest".into(),
                    passed: read == merged,
                    detail: if read == merged {
                        format!("{reference} resolves to the merged index")
                    } else {
                        format!("{reference} resolves to {read}, not the merged {merged}")
                    },
                });
            }
            record.verified = !checks.is_empty() && checks.iter().all(|c| c.passed);
            record.checks = checks;
        }
        Err(e) => {
            record.checks.push(Check {
                name: "read back".into(),
                passed: false,
                detail: e.to_string(),
            });
        }
    }
}

/// Join multi-runner parts into one index, verify, report.
pub async fn merge(args: MergeArgs) -> Result<ExitStatus> {
    let parts = build::parts::load(&args.parts)?;
    let mut tags = plan::tags(&args.tags)?;
    if tags.is_empty() {
        let prefix = format!("{}:", parts.repository);
        tags = parts
            .tags
            .iter()
            .filter_map(|t| t.strip_prefix(&prefix))
            .map(str::to_string)
            .collect();
    }
    if tags.is_empty() {
        tags.push("latest".into());
    }
    let required = match &args.platforms {
        Some(p) => plan::platforms(&crate::cli::PlatformArgs {
            platforms: p.clone(),
        })?,
        None => parts.platforms.iter().map(|p| p.platform.clone()).collect(),
    };
    for a in &args.annotations {
        if !a.starts_with("index:") || !a.contains('=') {
            return Err(Error::input(
                format!("annotation `{a}` is not index:KEY=VALUE"),
                "the merged index takes --annotation index:KEY=VALUE",
            ));
        }
    }
    let (checks, opts) = plan::verify(&args.verify, false)?;
    let printer = Printer::new(false);
    let buildx = Buildx::default();
    let builder = match buildx.inspect(&args.builder, false) {
        Ok(Some(_)) => args.builder.clone(),
        _ => String::new(),
    };
    let mut record = RunRecord::new(Platform::host());
    record.output = parts.repository.clone();
    record.tags = tags
        .iter()
        .map(|t| format!("{}:{t}", parts.repository))
        .collect();
    record.platforms = parts.platforms;
    printer.status(&format!(
        "merging {} part(s) into {} ({})",
        parts.files.len(),
        parts.repository,
        record
            .platforms
            .iter()
            .map(|p| p.platform.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let digests: Vec<String> = record
        .platforms
        .iter()
        .filter_map(|p| p.build_digest.clone())
        .collect();
    let merged = tokio::task::block_in_place(|| {
        build::merge::registry(
            &buildx,
            &builder,
            &parts.repository,
            &tags,
            &digests,
            &args.annotations,
        )
    })?;
    for p in &mut record.platforms {
        p.digest = merged
            .platform_digests
            .get(&p.platform.to_string())
            .cloned();
    }
    record.index_digest = Some(merged.index_digest);
    printer.status("verify: reading the result back");
    let reference = format!("{}:{}", parts.repository, tags[0]);
    read_back(&reference, &required, &checks, &opts, &mut record).await;
    record.wall_seconds = now() - record.started_at;
    let report_opts = report::ReportOptions::default();
    print!(
        "{}",
        report::terminal::render(&record, &report_opts, report::terminal::stdout_color())
    );
    if let Some(p) = &args.json {
        report::write_json(&record, p)?;
    }
    // The merged record is the job's report: summary and outputs as `mbx ci` writes them.
    let published = report::publish(&record, &report_opts, &report::GithubTargets::from_env());
    if record.verified {
        published.map(|_| 0)
    } else {
        Err(Error::verify("verification failed: the merged index does not hold what was asked (see the checks above)", ""))
    }
}

pub async fn setup(args: SetupArgs) -> Result<ExitStatus> {
    let config = Config::load()?;
    let plan = Plan {
        platforms: plan::platforms(&args.platforms)?,
        host: Platform::host(),
        builder: plan::builder(&args.builder, &config)?,
        build: None,
        local: true,
    };
    let buildx = Buildx::default();
    if args.cleanup {
        let name = &plan.builder.name;
        let done = tokio::task::block_in_place(|| setup::builder::cleanup(&buildx, name))?;
        match done {
            setup::builder::Cleanup::Removed => {
                println!("cleanup   removed builder `{name}` (created by mbx)")
            }
            setup::builder::Cleanup::NotOurs => {
                println!("cleanup   left builder `{name}` alone: mbx did not create it")
            }
            setup::builder::Cleanup::Absent => {
                println!("cleanup   no builder `{name}`: nothing to remove")
            }
        }
        return Ok(0);
    }
    let qemu = setup::QemuPlan::from_args(&args.qemu, &config);
    let s = setup::run(&plan, &buildx, &qemu).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s).expect("json"));
        return Ok(0);
    }
    print!("{}", render_setup(&s, &plan));
    Ok(0)
}

/// The human summary of what setup found and did.
pub fn render_setup(s: &crate::run::SetupRecord, plan: &Plan) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "docker    {}",
        s.docker_version.as_deref().unwrap_or("?")
    );
    let _ = writeln!(
        o,
        "buildx    {}",
        s.buildx_version.as_deref().unwrap_or("?")
    );
    for p in plan.platforms.iter().filter(|p| p.is_native_on(&plan.host)) {
        let _ = writeln!(o, "native    {p}");
    }
    for b in &s.binfmt {
        let interp = match (b.interpreter.as_deref(), b.interpreter_present) {
            (Some(i), Some(false)) => format!("{i}, not on the host: held open by the kernel (F)"),
            (Some(i), _) => i.to_string(),
            (None, _) => "-".into(),
        };
        let _ = writeln!(
            o,
            "qemu      {}: handler {} ({}, flags {}{}){}{}",
            b.platform,
            b.handler.as_deref().unwrap_or("-"),
            interp,
            b.flags,
            if b.enabled { "" } else { ", disabled" },
            b.qemu_version
                .as_deref()
                .map(|v| format!(", {v}"))
                .unwrap_or_default(),
            b.repaired
                .map(|r| format!(" [repaired: was {r}]"))
                .unwrap_or_default(),
        );
    }
    if let Some(b) = &s.builder {
        let _ = writeln!(
            o,
            "builder   {} {} (driver {}, BuildKit {}{})",
            b.name,
            b.action,
            b.driver,
            b.buildkit_version.as_deref().unwrap_or("?"),
            if b.created_by_mbx {
                ", created by mbx"
            } else {
                ""
            }
        );
        for d in &b.differences {
            let _ = writeln!(o, "          was: {d}");
        }
        let via = b
            .control_api_via
            .as_deref()
            .map(|v| format!(" via {v}"))
            .unwrap_or_default();
        let source = match b.platforms_source {
            Some(crate::run::PlatformsSource::ControlApi) => {
                format!("BuildKit control API, ListWorkers{via}")
            }
            Some(crate::run::PlatformsSource::BuildxInspect) => {
                "docker buildx inspect (fallback)".to_string()
            }
            None => String::new(),
        };
        let _ = writeln!(
            o,
            "          platforms ({source}): {}",
            b.platforms.join(", ")
        );
        if let Some(n) = &b.note {
            let _ = writeln!(o, "          note: {n}");
        }
    }
    for a in &s.actions {
        let _ = writeln!(o, "did       {a}");
    }
    let phases: Vec<String> = s
        .phases
        .iter()
        .map(|p| format!("{} {:.2}s", p.name, p.seconds))
        .collect();
    if !phases.is_empty() {
        let _ = writeln!(o, "time      {}", phases.join(", "));
    }
    o
}

pub async fn verify(args: VerifyArgs) -> Result<ExitStatus> {
    let platforms = plan::platforms(&args.platforms)?;
    let (checks, opts) = plan::verify(&args.verify, args.exact)?;
    let v = verify::run(&args.reference, &platforms, &checks, &opts).await?;
    if args.json {
        let out = report::verification::json(&args.reference, &v);
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        print!(
            "{}",
            report::verification::render(&args.reference, &platforms, &v)
        );
    }
    Ok(if v.passed() { 0 } else { 1 })
}

pub async fn report(args: ReportArgs) -> Result<ExitStatus> {
    let record = report::read_json(&args.record)?;
    let opts = report::ReportOptions::from_flags(&args.report)?;
    print!(
        "{}",
        report::terminal::render(&record, &opts, report::terminal::stdout_color())
    );
    let env = report::GithubTargets::from_env();
    report::publish(
        &record,
        &opts,
        &report::GithubTargets {
            summary: args.summary.clone(),
            output: args.github_output.clone(),
            annotations: env.annotations,
        },
    )?;
    Ok(0)
}

fn join(ps: &[Platform]) -> String {
    ps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fail in a second, not after a long build, when the registry is not there.
async fn preflight_registry(build: &BuildPlan) -> Result<()> {
    let Output::Registry { repository, .. } = &build.output else {
        return Ok(());
    };
    let host = plan::ImageRef::parse(repository)
        .map(|r| r.registry().to_string())
        .unwrap_or_default();
    let api = if host == "docker.io" {
        "registry-1.docker.io".to_string()
    } else {
        host.clone()
    };
    let scheme = if is_loopback_host(&host) {
        "http"
    } else {
        "https"
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::env(format!("cannot make an HTTP client: {e}"), ""))?;
    match client.get(format!("{scheme}://{api}/v2/")).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let why = crate::error::chain(&e);
            Err(Error::env(
                format!("cannot reach the registry {host}: {why}"),
                "start the registry or fix --registry/--image (for mbx's test chain: scripts/chain-up serves 127.0.0.1:5000); nothing was built or pushed",
            ))
        }
    }
}

/// The gha cache's usage after a run on GitHub Actions; a failure to read it
/// is reported and does not fail the run.
async fn cache_usage_for_run(
    record: &RunRecord,
    printer: &Printer,
) -> Option<gha_cache::CacheUsage> {
    let scopes: Vec<String> = record
        .platforms
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

pub async fn cache(command: CacheCommand) -> Result<ExitStatus> {
    match command {
        CacheCommand::Usage(a) => cache_usage(a).await,
        CacheCommand::Prune(a) => cache_prune(a).await,
    }
}

fn github(a: &GitHubArgs) -> Result<GitHub> {
    GitHub::from_env(a.repo.as_deref(), &a.token_env, &a.api_url)
}

async fn cache_usage(args: CacheUsageArgs) -> Result<ExitStatus> {
    if !(args.limit_gb > 0.0 && args.limit_gb.is_finite()) {
        return Err(Error::input(
            format!("--limit-gb {} is not a size", args.limit_gb),
            "pass a positive number of GB (GitHub's default limit is 10)",
        ));
    }
    let limit = (args.limit_gb * 1024.0 * 1024.0 * 1024.0) as u64;
    let client = github(&args.github)?;
    let usage = gha_cache::usage_for_run(&client, &[], limit).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&usage).expect("json"));
    } else {
        print!("{}", gha_cache::render(&usage));
    }
    Ok(0)
}

async fn cache_prune(args: CachePruneArgs) -> Result<ExitStatus> {
    let older_than = prune::parse_age(&args.older_than).ok_or_else(|| {
        Error::input(
            format!("--older-than `{}` is not an age", args.older_than),
            "pass a number and a unit: 30m, 12h, 7d, 2w",
        )
    })?;
    let client = github(&args.github)?;
    let entries = client.list().await?;
    let filters = prune::Filters {
        older_than,
        git_ref: args.git_ref.as_deref().map(prune::normalize_ref),
        scope: args.scope.clone(),
        now: chrono::Utc::now(),
    };
    let contents = gha_cache::read_contents(&entries).await;
    let plan = prune::plan(&entries, &filters, &contents);
    let applied = if args.apply && !plan.delete.is_empty() {
        Some(prune::apply(&client, &plan).await?)
    } else {
        None
    };
    if args.json {
        let out = serde_json::json!({
            "repository": client.repository(),
            "dry_run": !args.apply,
            "delete": plan.delete,
            "bytes": plan.bytes(),
            "kept_blobs": plan.kept_blobs,
            "kept_blob_bytes": plan.kept_blob_bytes,
            "deleted": applied.as_ref().map_or(0, |a| a.deleted),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(0);
    }
    for d in &plan.delete {
        println!(
            "{} {}  {}  {}  ({})",
            if args.apply {
                "deleted"
            } else {
                "would delete"
            },
            d.key,
            d.git_ref,
            gha_cache::human_bytes(d.size_in_bytes),
            d.reason
        );
    }
    if plan.kept_blobs > 0 {
        println!(
            "kept {} blob(s), {}: an index that stays may use them",
            plan.kept_blobs,
            gha_cache::human_bytes(plan.kept_blob_bytes)
        );
    }
    match applied {
        Some(a) => println!(
            "deleted {} entries, {} freed in {}",
            a.deleted,
            gha_cache::human_bytes(a.bytes),
            client.repository()
        ),
        None if plan.delete.is_empty() => {
            println!("nothing to prune in {}", client.repository())
        }
        None => println!(
            "dry run: {} entries, {} would be freed in {}; pass --apply to delete",
            plan.delete.len(),
            gha_cache::human_bytes(plan.bytes()),
            client.repository()
        ),
    }
    Ok(0)
}
