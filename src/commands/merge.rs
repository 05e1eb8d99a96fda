//! `mbx merge`: join multi-runner parts into one index, verify, report.

use crate::build;
use crate::cli::{MergeArgs, PlatformArgs};
use crate::docker::Buildx;
use crate::error::{Error, Result};
use crate::pipeline::{self, Emit, ExitStatus, MergePlan, Tools, VerifyPlan};
use crate::plan;
use crate::printer::Printer;
use crate::report::{GithubTargets, ReportOptions};

pub async fn merge(args: MergeArgs) -> Result<ExitStatus> {
    plan::builder_name(&args.builder)?;
    let parts = build::parts::load(&args.parts)?;
    let tags = tags(&args, &parts)?;
    let required = match &args.platforms {
        Some(p) => plan::platforms(&PlatformArgs {
            platforms: p.clone(),
        })?,
        None => parts.platforms.iter().map(|p| p.platform.clone()).collect(),
    };
    build::parts::check_required(&parts, &required)?;
    for a in &args.annotations {
        if !a.starts_with("index:") || !a.contains('=') {
            return Err(Error::input(
                format!("annotation `{a}` is not index:KEY=VALUE"),
                "the merged index takes --annotation index:KEY=VALUE",
            ));
        }
    }
    let (checks, options) = plan::verify(&args.verify, false)?;
    let (buildx, printer) = (Buildx::default(), Printer::new(false));
    let builder = match buildx.inspect(&args.builder, false) {
        Ok(Some(_)) => args.builder.clone(),
        _ => String::new(),
    };
    let tools = Tools {
        buildx: &buildx,
        printer: &printer,
    };
    let m = MergePlan {
        builder: &builder,
        repository: &parts.repository,
        tags: &tags,
        platforms: parts.platforms.clone(),
        annotations: &args.annotations,
        required: &required,
    };
    let verify = VerifyPlan {
        checks: &checks,
        options: &options,
    };
    // The merged record is the job's report: summary and outputs as `mbx ci` writes them.
    let emit = Emit {
        json: args.json.clone(),
        report: ReportOptions::default(),
        github: GithubTargets::from_env(),
    };
    emit.check()?;
    // The index is pushed with these credentials (held to the end).
    let _login = crate::setup::preflight::push_credentials(&parts.repository, &options).await?;
    let run = pipeline::merge(m, &verify, &tools).await;
    let emitted = pipeline::emit(&run.record, &emit);
    run.finish(emitted, true)
}

/// The tags to push: the flags', else the parts' own, else `latest`.
fn tags(args: &MergeArgs, parts: &build::parts::Parts) -> Result<Vec<String>> {
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
    Ok(tags)
}
