//! Report stage: the only place that writes the user-facing report.

pub mod cache;
pub mod emulation;
pub mod fmt;
pub mod github;
pub mod markdown;
pub mod runners;
pub mod setup;
pub mod terminal;
pub mod verification;

pub use fmt::{bytes, secs};

use std::path::Path;

use crate::error::{Error, Result};
use crate::run::RunRecord;

pub use crate::plan::ReportOptions;

/// Where the GitHub side of the report goes.
#[derive(Debug, Clone, Default)]
pub struct GithubTargets {
    /// Append the job summary here (`$GITHUB_STEP_SUMMARY`).
    pub summary: Option<std::path::PathBuf>,
    /// Append the step outputs here (`$GITHUB_OUTPUT`).
    pub output: Option<std::path::PathBuf>,
    /// Print annotations on stdout (under GitHub Actions).
    pub annotations: bool,
}

impl GithubTargets {
    /// What the GitHub Actions runner asks for through its environment.
    pub fn from_env() -> GithubTargets {
        let path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from)
        };
        GithubTargets {
            summary: path("GITHUB_STEP_SUMMARY"),
            output: path("GITHUB_OUTPUT"),
            annotations: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
        }
    }
}

/// Write the job summary, the outputs and the annotations where asked.
pub fn publish(record: &RunRecord, opts: &ReportOptions, to: &GithubTargets) -> Result<()> {
    if let Some(p) = &to.summary {
        // The cap is per step: leave room for what the step already wrote.
        let already = std::fs::metadata(p).map_or(0, |m| m.len() as usize);
        let room = markdown::MAX_BYTES.saturating_sub(already).max(4096);
        let text = markdown::cap(markdown::render(record, opts), room);
        github::append(p, &text, "the job summary file (GITHUB_STEP_SUMMARY)")?;
    }
    if let Some(p) = &to.output {
        let text = github::format_outputs(&github::outputs(record, opts));
        github::append(p, &text, "the step output file (GITHUB_OUTPUT)")?;
    }
    if to.annotations {
        for a in github::annotations(record, opts) {
            crate::printer::outln(&a.to_string());
        }
    }
    Ok(())
}

/// Steps shorter than this are not worth a row among the slowest.
const MIN_STEP_SECONDS: f64 = 0.05;

/// The `n` slowest instruction steps that ran, any platform, slowest first:
/// (index of the platform in the record, step).
pub(crate) fn slowest_steps(record: &RunRecord, n: usize) -> Vec<(usize, &crate::run::Step)> {
    let mut steps: Vec<(usize, &crate::run::Step)> = record
        .platforms
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.steps
                .iter()
                .filter(|s| s.instruction && !s.cached && s.busy_seconds >= MIN_STEP_SECONDS)
                .map(move |s| (i, s))
        })
        .collect();
    if steps.is_empty() || n == 0 {
        return Vec::new();
    }
    // Partial selection keeps this linear for huge records.
    let n = n.min(steps.len());
    steps.select_nth_unstable_by(n - 1, |a, b| b.1.busy_seconds.total_cmp(&a.1.busy_seconds));
    steps.truncate(n);
    steps.sort_by(|a, b| b.1.busy_seconds.total_cmp(&a.1.busy_seconds));
    steps
}

/// Save the run record as JSON, in this mbx's schema version: a record read
/// from a newer minor holds only the fields this mbx knows.
pub fn write_json(record: &RunRecord, path: &Path) -> Result<()> {
    let record = RunRecord {
        schema_version: crate::run::SchemaVersion::CURRENT,
        ..record.clone()
    };
    let bytes = serde_json::to_vec_pretty(&record).expect("record serializes");
    std::fs::write(path, bytes).map_err(|e| {
        Error::input(
            format!("cannot write the run record to {}: {e}", path.display()),
            "pass --json FILE in a writable place",
        )
    })
}

/// Read a run record (`mbx report --record FILE`); refuse one this mbx cannot
/// read, naming the file and the version found.
pub fn read_json(path: &Path) -> Result<RunRecord> {
    let fix = "pass --record FILE written by `mbx ci --json FILE`";
    let bytes = RunRecord::read_file(path)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display()), fix))?;
    RunRecord::from_json(&bytes).map_err(|e| {
        let fix = match &e {
            e if e.is_version() => {
                "read it with the mbx version that wrote it (see its mbx_version)"
            }
            crate::run::RecordError::NotJson(_) => {
                "the file is damaged or cut short: write it again with `mbx ci --json FILE`"
            }
            _ => fix,
        };
        Error::input(e.about(&path.display().to_string()), fix)
    })
}

/// The nodes that built the platforms, when more than one node did (a
/// multi-node builder): only then does the report name them.
pub fn several_nodes(record: &crate::run::RunRecord) -> bool {
    let mut nodes: Vec<&str> = record
        .platforms
        .iter()
        .filter_map(|p| p.node.as_deref())
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes.len() > 1
}

/// What the report shows of the build's inputs. Values of build args whose
/// name looks secret (TOKEN, SECRET, PASSWORD, KEY, …) are stored as `***`.
pub fn inputs(plan: &crate::plan::Plan, build: &crate::plan::BuildPlan) -> crate::run::BuildInputs {
    use crate::plan::Cache;
    crate::run::BuildInputs {
        context: build.context.display().to_string(),
        dockerfile: build.dockerfile.display().to_string(),
        target: build.target.clone(),
        build_args: build.build_args.iter().map(|a| redact(a)).collect(),
        labels: build.labels.clone(),
        cache: match &build.cache {
            Cache::None => "none".into(),
            Cache::Local { dir, .. } => format!("local {}", dir.display()),
            Cache::Gha { .. } => "gha".into(),
            Cache::Registry { repository } => format!("registry {repository}"),
            Cache::User { from, to } => format!("from {} to {}", from.join(" "), to.join(" ")),
        },
        no_cache: build.no_cache,
        builder: plan.builder.name.clone(),
        build_platform_stages: crate::error::read_capped(&build.dockerfile, 16 << 20)
            .map(|t| crate::report::emulation::build_platform_stages(&String::from_utf8_lossy(&t)))
            .unwrap_or_default(),
    }
}

/// `KEY=VALUE` with the value hidden when the key looks secret.
fn redact(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, _)) if crate::plan::is_secret_key(k) => format!("{k}=***"),
        _ => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_build_args_are_hidden() {
        assert_eq!(redact("NPM_TOKEN=abc"), "NPM_TOKEN=***");
        assert_eq!(redact("api_key=abc"), "api_key=***");
        assert_eq!(redact("VERSION=1.2"), "VERSION=1.2");
        assert_eq!(redact("FROM_ENV"), "FROM_ENV");
    }
}
