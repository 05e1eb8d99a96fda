//! Setup stage: the machine can build every requested platform.
//! Docker answers → buildx is there → QEMU handlers for foreign platforms →
//! the builder exists and its workers list every platform.

pub mod builder;
pub mod docker;
pub mod qemu;

use crate::build::buildx::Buildx;
use crate::error::Result;
use crate::plan::Plan;
use crate::run::SetupRecord;

pub async fn run(plan: &Plan, buildx: &Buildx) -> Result<SetupRecord> {
    let engine = docker::Docker::connect()?.info().await?;
    let buildx_version = buildx.version()?;
    let binfmt = qemu::check(&plan.platforms, &plan.host, None)?;
    let builder =
        tokio::task::block_in_place(|| builder::ensure(buildx, &plan.builder, &plan.platforms))?;
    Ok(SetupRecord {
        docker_version: Some(engine.version),
        buildx_version: Some(buildx_version),
        binfmt,
        builder: Some(builder),
    })
}
