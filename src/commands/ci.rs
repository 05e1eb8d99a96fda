//! `mbx ci`: setup, build, verify and report in one run.

use crate::cli::{CiArgs, Mode};
use crate::config::Config;
use crate::docker::Buildx;
use crate::error::Result;
use crate::pipeline::{self, Emit, ExitStatus, Tools, VerifyPlan};
use crate::plan::{self, Plan};
use crate::platform::Platform;
use crate::printer::Printer;
use crate::report::{GithubTargets, ReportOptions};
use crate::setup::QemuPlan;

pub async fn ci(args: CiArgs) -> Result<ExitStatus> {
    match args.mode {
        Mode::Part => return super::build::part(args).await,
        Mode::Merge => return super::merge::from_outputs(args).await,
        Mode::All => {}
    }
    let config = Config::load()?;
    let build = plan::build(&args.build, args.local)?;
    let plan = Plan {
        platforms: plan::platforms(&args.platforms)?,
        host: Platform::host(),
        builder: plan::builder(&args.builder, &config)?,
        build: Some(build.clone()),
        local: args.local,
    };
    let (mut checks, mut options) = plan::verify(&args.verify, false)?;
    if let crate::plan::Output::Registry { repository, .. } = &build.output {
        // The login flags are the push's: the other repositories' registries
        // (and their read-back) use the docker config.
        options.login_host = crate::oci::parse_reference(repository)
            .ok()
            .map(|r| r.resolve_registry().to_string());
    }
    checks.skip = args.no_verify;
    let report = ReportOptions::from_flags(&args.report)?;
    let qemu = QemuPlan::from_args(&args.qemu, &config);
    let (buildx, printer) = (Buildx::default(), Printer::new(false));
    let tools = Tools {
        buildx: &buildx,
        printer: &printer,
    };
    let verify = VerifyPlan {
        checks: &checks,
        options: &options,
    };
    let emit = Emit {
        json: build.json.clone(),
        report,
        github: GithubTargets::from_env(),
    };
    emit.check()?;
    let run = pipeline::ci(&plan, &build, &qemu, &verify, &tools).await?;
    let emitted = pipeline::emit(&run.record, &emit);
    if args.remove_builder {
        remove_builder(&run.record, &buildx, &printer);
    }
    let verification = !checks.skip;
    run.finish(emitted, verification)
}

/// `--remove-builder`: the builder goes when this run created it.
fn remove_builder(record: &crate::run::RunRecord, buildx: &Buildx, printer: &Printer) {
    use crate::run::BuilderAction;
    let Some(b) = record.setup.as_ref().and_then(|s| s.builder.as_ref()) else {
        return;
    };
    if b.action == BuilderAction::Reused {
        return;
    }
    crate::setup::lock::release_all();
    match tokio::task::block_in_place(|| crate::setup::builder::cleanup(buildx, &b.name)) {
        Ok(done) => printer.status(&format!("builder `{}`: {done:?}", b.name).to_lowercase()),
        Err(e) => printer.status(&format!("builder `{}` not removed: {e}", b.name)),
    }
}
