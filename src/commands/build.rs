//! `mbx build`: build on an existing builder; with a registry, one runner's
//! part of a multi-runner build (pushed by digest, joined by `mbx merge`).

use crate::cli::BuildOnlyArgs;
use crate::docker::Buildx;
use crate::error::{Error, Result};
use crate::pipeline::{self, Emit, ExitStatus, Tools};
use crate::plan::{self, Plan};
use crate::platform::Platform;
use crate::printer::Printer;

pub async fn build(args: BuildOnlyArgs) -> Result<ExitStatus> {
    plan::builder_name(&args.builder)?;
    let build = plan::build(&args.build, args.local)?;
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
