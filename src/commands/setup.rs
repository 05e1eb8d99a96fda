//! `mbx setup`: QEMU handlers and the builder, checked or made; `--cleanup`.

use crate::cli::SetupArgs;
use crate::config::Config;
use crate::docker::Buildx;
use crate::error::Result;
use crate::pipeline::ExitStatus;
use crate::plan::{self, Plan};
use crate::platform::Platform;
use crate::printer;
use crate::report;
use crate::setup;

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
        printer::out(&report::setup::cleanup(name, &done));
        return Ok(ExitStatus::Success);
    }
    let qemu = setup::QemuPlan::from_args(&args.qemu, &config);
    let s = setup::run(&plan, &buildx, &qemu).await?;
    if args.json {
        printer::outln(&serde_json::to_string_pretty(&s).expect("json"));
        return Ok(ExitStatus::Success);
    }
    printer::out(&report::setup::render(&s, &plan.platforms, &plan.host));
    Ok(ExitStatus::Success)
}
