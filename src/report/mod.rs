//! Report stage: the only place that writes the user-facing report.

pub mod terminal;
pub mod verification;

use std::path::Path;

use crate::error::{Error, Result};
use crate::run::RunRecord;

/// Save the run record as JSON.
pub fn write_json(record: &RunRecord, path: &Path) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(record).expect("record serializes");
    std::fs::write(path, bytes).map_err(|e| {
        Error::input(
            format!("cannot write the run record to {}: {e}", path.display()),
            "pass --json FILE in a writable place",
        )
    })
}

pub fn read_json(path: &Path) -> Result<RunRecord> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::input(
            format!("cannot read {}: {e}", path.display()),
            "pass --record FILE written by `mbx ci --json FILE`",
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(
            format!("{} is not an mbx run record: {e}", path.display()),
            "pass --record FILE written by `mbx ci --json FILE`",
        )
    })
}
