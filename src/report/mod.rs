//! Report stage: the only place that writes the user-facing report.

pub mod emulation;
pub mod github;
pub mod markdown;
pub mod terminal;
pub mod verification;

use std::path::Path;

use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::run::RunRecord;

/// How to read a record: which platform counts as native, when emulation
/// deserves a warning.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Override of the native platform (default: the record's, i.e. the runner's arch).
    pub native: Option<Platform>,
    /// Warn when emulation cost exceeds this share (percent) of the step time.
    pub emulation_warn_percent: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            native: None,
            emulation_warn_percent: 50.0,
        }
    }
}

impl ReportOptions {
    pub fn from_flags(f: &crate::cli::ReportFlags) -> Result<ReportOptions> {
        let native = match &f.native_platform {
            Some(s) => Some(s.parse::<Platform>().map_err(|e| {
                Error::input(
                    e.to_string(),
                    "pass --native-platform os/arch, e.g. linux/arm64",
                )
            })?),
            None => None,
        };
        if !(0.0..=100.0).contains(&f.emulation_warn_percent) {
            return Err(Error::input(
                format!(
                    "--emulation-warn-percent {} is not a percentage",
                    f.emulation_warn_percent
                ),
                "pass a number from 0 to 100 (100 never warns)",
            ));
        }
        Ok(ReportOptions {
            native,
            emulation_warn_percent: f.emulation_warn_percent,
        })
    }
}

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
            println!("{a}");
        }
    }
    Ok(())
}

/// `5.8s`, `1m05.0s`, `1h02m03s`.
pub fn secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    if s >= 3600.0 {
        let t = s.round() as u64;
        format!("{}h{:02}m{:02}s", t / 3600, t % 3600 / 60, t % 60)
    } else if s >= 60.0 {
        format!("{}m{:04.1}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.1}s")
    }
}

/// `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The cut at most `max` bytes into `s`, on a char boundary.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max.saturating_sub(1);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
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
    let bytes = std::fs::read(path)
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
        },
        no_cache: build.no_cache,
        builder: plan.builder.name.clone(),
    }
}

/// `KEY=VALUE` with the value hidden when the key looks secret.
fn redact(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, _))
            if [
                "TOKEN",
                "SECRET",
                "PASSWORD",
                "PASSWD",
                "KEY",
                "CREDENTIAL",
                "AUTH",
            ]
            .iter()
            .any(|w| k.to_ascii_uppercase().contains(w)) =>
        {
            format!("{k}=***")
        }
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

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(secs(5.84), "5.8s");
        assert_eq!(secs(65.0), "1m05.0s");
        assert_eq!(secs(3723.0), "1h02m03s");
        assert_eq!(secs(f64::NAN), "-");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
