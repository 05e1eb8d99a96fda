//! `mbx verify`: read any pushed index (or OCI layout) back and check it.

use crate::cli::VerifyArgs;
use crate::error::Result;
use crate::pipeline::ExitStatus;
use crate::plan;
use crate::printer;
use crate::report;
use crate::verify;

pub async fn verify(args: VerifyArgs) -> Result<ExitStatus> {
    let platforms = plan::platforms(&args.platforms)?;
    let (checks, opts) = plan::verify(&args.verify, args.exact)?;
    let v = verify::run(&args.reference, &platforms, &checks, &opts).await?;
    if args.json {
        let out = report::verification::json(&args.reference, &v);
        printer::outln(&serde_json::to_string_pretty(&out).expect("json"));
    } else {
        printer::out(&report::verification::render(
            &args.reference,
            &platforms,
            &v,
        ));
    }
    Ok(if v.passed() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
