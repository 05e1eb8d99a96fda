//! `mbx report`: render a saved run record again (terminal, job summary, outputs).

use crate::cli::ReportArgs;
use crate::error::Result;
use crate::pipeline::{self, Emit, ExitStatus};
use crate::report::{self, GithubTargets, ReportOptions};

pub async fn report(args: ReportArgs) -> Result<ExitStatus> {
    let options = ReportOptions::from_flags(&args.report)?;
    let record = report::read_json(&args.record)?;
    let env = GithubTargets::from_env();
    pipeline::emit(
        &record,
        &Emit {
            json: None,
            report: options,
            github: GithubTargets {
                summary: args.summary.clone(),
                output: args.github_output.clone(),
                annotations: env.annotations,
            },
        },
    )?;
    Ok(ExitStatus::Success)
}
