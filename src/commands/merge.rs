//! `mbx merge`: join multi-runner parts into one index, verify, report. Also
//! `mbx ci --mode merge` (the action's `mode: merge`), whose parts arrive as
//! job outputs rather than files.

use std::path::PathBuf;

use crate::build::{self, parts::Parts};
use crate::cli::{CiArgs, MergeArgs, PlatformArgs, VerifyFlags};
use crate::docker::Buildx;
use crate::error::{Error, Result};
use crate::pipeline::{self, Emit, ExitStatus, MergePlan, Tools, VerifyPlan};
use crate::plan;
use crate::platform::Platform;
use crate::printer::Printer;
use crate::report::{GithubTargets, ReportOptions};

pub async fn merge(args: MergeArgs) -> Result<ExitStatus> {
    plan::builder_name(&args.builder)?;
    let parts = build::parts::load(&args.parts)?;
    let tags = tags(&args.tags, &parts)?;
    let required = match &args.platforms {
        Some(p) => plan::platforms(&PlatformArgs {
            platforms: p.clone(),
        })?,
        None => parts.platforms.iter().map(|p| p.platform.clone()).collect(),
    };
    join(Joining {
        parts,
        tags,
        required,
        annotations: &args.annotations,
        verify: &args.verify,
        json: args.json.clone(),
        report: ReportOptions::default(),
    })
    .await
}

/// `mbx ci --mode merge`: the parts from `--parts-json` (MBX_PARTS, the
/// action's `parts` input), every platform of `--platforms` required.
pub async fn from_outputs(args: CiArgs) -> Result<ExitStatus> {
    plan::builder_name(&args.builder.builder)?;
    let Some(text) = args.parts_json.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Err(Error::input(
            "mode: merge but no parts were given",
            "pass `parts: ${{ toJSON(needs.JOB.outputs) }}` (CLI: --parts-json JSON), JOB being the matrix job that ran `mode: part`",
        ));
    };
    let parts = build::parts::from_outputs(text)?;
    let printer = Printer::new(false);
    printer.status(&format!(
        "merge: {} part(s) from {} ({} bytes of job outputs)",
        parts.sources.len(),
        parts.sources.join(", "),
        text.len()
    ));
    for s in &parts.skipped {
        printer.status(&format!("merge: {s} is not an mbx part; left alone"));
    }
    if let Some(image) = &args.build.image {
        same_repository(image, &parts.repository)?;
    }
    let tags = tags(&short_tags(&args.build.tags, &parts.repository)?, &parts)?;
    let required = plan::platforms(&args.platforms)?;
    join(Joining {
        parts,
        tags,
        required,
        annotations: &args.build.annotations,
        verify: &args.verify,
        json: args.build.json.clone(),
        report: ReportOptions::from_flags(&args.report)?,
    })
    .await
}

/// `repository` names the parts' repository, however it is written
/// (`acme/app` ≡ `docker.io/acme/app`); else an error saying so.
fn same_repository(repository: &str, parts: &str) -> Result<()> {
    let norm = |s: &str| {
        crate::oci::parse_reference(s)
            .map(|r| format!("{}/{}", r.registry(), r.repository()))
            .unwrap_or_else(|_| s.to_string())
    };
    if repository == parts || norm(repository) == norm(parts) {
        return Ok(());
    }
    Err(Error::input(
        format!("tags name {repository}, but the parts were pushed to {parts}"),
        "give the merge job the tags of the part jobs' repository",
    ))
}

/// The tags of `--tag` values that may be full references (`REPO:TAG`, as
/// the action hands `tags` on): each reference must name the parts' repository.
fn short_tags(given: &[String], parts: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for t in given
        .iter()
        .flat_map(|t| t.split([',', '\n']))
        .map(str::trim)
    {
        if t.is_empty() {
            continue;
        }
        if !t.contains('/') {
            out.push(t.to_string());
            continue;
        }
        let r = plan::ImageRef::parse(t).map_err(|e| {
            Error::input(
                format!("tag `{t}` is not an image reference: {e}"),
                "give tags as TAG or REPO:TAG",
            )
        })?;
        same_repository(&r.repository, parts)?;
        out.push(r.tag.unwrap_or_else(|| "latest".into()));
    }
    Ok(out)
}

/// What both ways of merging share once the parts are read.
struct Joining<'a> {
    parts: Parts,
    tags: Vec<String>,
    required: Vec<Platform>,
    annotations: &'a [String],
    verify: &'a VerifyFlags,
    json: Option<PathBuf>,
    report: ReportOptions,
}

async fn join(j: Joining<'_>) -> Result<ExitStatus> {
    build::parts::check_required(&j.parts, &j.required)?;
    for a in j.annotations {
        if !a.starts_with("index:") || !a.contains('=') {
            return Err(Error::input(
                format!("annotation `{a}` is not index:KEY=VALUE"),
                "the merged index takes --annotation index:KEY=VALUE",
            ));
        }
    }
    let (checks, options) = plan::verify(j.verify, false)?;
    let (buildx, printer) = (Buildx::default(), Printer::new(false));
    let tools = Tools {
        buildx: &buildx,
        printer: &printer,
    };
    let m = MergePlan {
        repository: &j.parts.repository,
        tags: &j.tags,
        platforms: j.parts.platforms.clone(),
        annotations: j.annotations,
        required: &j.required,
    };
    let verify = VerifyPlan {
        checks: &checks,
        options: &options,
    };
    // The merged record is the job's report: summary and outputs as `mbx ci`
    // writes them, with a section for the runners when the parts name them.
    let emit = Emit {
        json: j.json,
        report: j.report,
        github: GithubTargets::from_env(),
    };
    emit.check()?;
    // The index is pushed with these credentials (held to the end).
    let _login = crate::setup::preflight::push_credentials(&j.parts.repository, &options).await?;
    let run = pipeline::merge(m, &verify, &tools).await;
    let emitted = pipeline::emit(&run.record, &emit);
    run.finish(emitted, true)
}

/// The tags to push: the given ones, else the parts' own, else `latest`.
fn tags(given: &[String], parts: &Parts) -> Result<Vec<String>> {
    let mut tags = plan::tags(given)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_tags_are_tags_or_references_to_the_parts_repository() {
        let repo = "127.0.0.1:5000/run/app";
        let given = vec![
            "v1,127.0.0.1:5000/run/app:v2".to_string(),
            format!("{repo}\n"),
        ];
        assert_eq!(short_tags(&given, repo).unwrap(), ["v1", "v2", "latest"]);
        same_repository("acme/app", "docker.io/acme/app").unwrap();
        let e = short_tags(&["127.0.0.1:5001/run/app:v1".into()], repo).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "tags name 127.0.0.1:5001/run/app, but the parts were pushed to 127.0.0.1:5000/run/app"
        );
    }
}
