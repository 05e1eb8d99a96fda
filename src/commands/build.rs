//! `mbx build`: build on an existing builder; with a registry, one runner's
//! part of a multi-runner build (pushed by digest, joined by `mbx merge`).

use crate::cli::{BuildOnlyArgs, CiArgs};
use crate::config::Config;
use crate::docker::Buildx;
use crate::error::{Error, Result};
use crate::pipeline::{self, Emit, ExitStatus, Tools};
use crate::plan::{self, Output, Plan};
use crate::platform::Platform;
use crate::printer::Printer;
use crate::report::{github, GithubTargets, ReportOptions};
use crate::run::{now, RunRecord};
use crate::setup::QemuPlan;

pub async fn build(args: BuildOnlyArgs) -> Result<ExitStatus> {
    plan::builder_name(&args.builder)?;
    let build = plan::build(&args.build, args.local)?;
    let login = plan::push_login(args.username.as_deref(), args.password_stdin)?;
    let plan = Plan {
        platforms: plan::platforms(&args.platforms)?,
        host: Platform::host(),
        builder: plan::BuilderPlan {
            name: args.builder.clone(),
            driver: String::new(),
            ..Default::default()
        },
        build: Some(build.clone()),
        local: args.local,
    };
    let buildx = Buildx::default();
    let Some(builder) = buildx.inspect(&plan.builder.name, false)? else {
        return Err(Error::env(
            format!("builder `{}` does not exist", plan.builder.name),
            "run `mbx setup` first, or `mbx ci` which sets up and builds",
        ));
    };
    // The part is the record: no job summary or outputs of its own.
    let emit = Emit {
        json: build.json.clone(),
        ..Emit::default()
    };
    emit.check()?;
    pipeline::preflight_registry(&build).await?;
    // Held to the end: the push uses these credentials.
    let _login = pipeline::push_credentials(&build, &login).await?;
    // In use until this run ends: another run's cleanup leaves it alone.
    let setup_lock = crate::setup::lock::setup(&plan.builder.name)?;
    crate::setup::lock::use_builder(&plan.builder.name, &setup_lock)?;
    drop(setup_lock);
    let printer = Printer::new(false);
    let tools = Tools {
        buildx: &buildx,
        printer: &printer,
    };
    let run = pipeline::build_only(&plan, &build, &builder.driver, &tools);
    let emitted = pipeline::emit(&run.record, &emit);
    run.built?;
    emitted.map(|_| ExitStatus::Success)
}

/// `mbx ci --mode part` (the action's `mode: part`): setup, then this
/// runner's platform(s) built and pushed by digest, nothing tagged. The part
/// (the run record made small: `build::parts::compact`) becomes the step
/// output `part`; no job summary (the merge writes the one for every runner).
pub async fn part(args: CiArgs) -> Result<ExitStatus> {
    let config = Config::load()?;
    let build = plan::build(&args.build, args.local)?;
    if !matches!(build.output, Output::Registry { .. }) {
        return Err(Error::input(
            "mode: part pushes each platform by digest for the merge job, but nothing is pushed",
            "set `push: true` and `tags: REPO:TAG` (CLI: --push --image REPO); nothing was built",
        ));
    }
    let plan = Plan {
        platforms: plan::platforms(&args.platforms)?,
        host: Platform::host(),
        builder: plan::builder(&args.builder, &config)?,
        build: Some(build.clone()),
        local: args.local,
    };
    let (_, options) = plan::verify(&args.verify, false)?;
    let qemu = QemuPlan::from_args(&args.qemu, &config);
    let github = GithubTargets::from_env();
    let emit = Emit {
        json: build.json.clone(),
        report: ReportOptions::from_flags(&args.report)?,
        github: GithubTargets {
            summary: None,
            ..github.clone()
        },
    };
    emit.check()?;
    let (buildx, printer) = (Buildx::default(), Printer::new(false));
    let tools = Tools {
        buildx: &buildx,
        printer: &printer,
    };
    pipeline::preflight_registry(&build).await?;
    let _login = pipeline::push_credentials(&build, &options).await?;
    let started = now();
    let setup = pipeline::setup(&plan, &qemu, &tools).await?;
    let driver = setup.builder.as_ref().map(|b| b.driver.clone());
    let mut run = pipeline::build_only(&plan, &build, &driver.unwrap_or_default(), &tools);
    run.record.setup = Some(setup);
    run.record.started_at = started;
    run.record.wall_seconds = now() - started;
    let emitted = pipeline::emit(&run.record, &emit);
    let handed = match &github.output {
        Some(out) => hand_on(&run.record, out, &printer),
        None => Ok(()),
    };
    run.built?;
    emitted.and(handed).map(|_| ExitStatus::Success)
}

/// The part as the step output `part`, one line of JSON.
fn hand_on(record: &RunRecord, out: &std::path::Path, printer: &Printer) -> Result<()> {
    let label = runner_label();
    let text = crate::build::parts::compact(record, &label)?;
    let cut = RunRecord::from_json(text.as_bytes())
        .ok()
        .and_then(|r| r.platforms.into_iter().find_map(|p| p.runner?.cut));
    printer.status(&format!(
        "part: {} byte(s) handed on as the step output `part` (runner {label}{})",
        text.len(),
        cut.map(|c| format!("; cut: {c}")).unwrap_or_default()
    ));
    let outputs = std::collections::BTreeMap::from([("part", text)]);
    github::append(
        out,
        &github::format_outputs(&outputs),
        "the step output file (GITHUB_OUTPUT)",
    )
}

/// The runner as the merge's report names it: the reusable workflow's
/// `runs-on` label (MBX_RUNNER_LABEL), else the runner's name, else its OS and arch.
fn runner_label() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    var("MBX_RUNNER_LABEL")
        .or_else(|| var("RUNNER_NAME"))
        .or_else(|| Some(format!("{}-{}", var("RUNNER_OS")?, var("RUNNER_ARCH")?)))
        .unwrap_or_else(|| format!("a {} runner", Platform::host()))
}
