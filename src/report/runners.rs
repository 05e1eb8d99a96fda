//! Multi-runner mode: the section of the merge job's summary that covers
//! every runner (platform, runner, the part job's wall time, the build's,
//! steps run and cached, digest), and what each part left out to travel as a
//! job output. One summary for the whole run: the part jobs write none.

use std::fmt::Write as _;

use crate::digest::short;
use crate::report::fmt::{md_cell as cell, md_header, md_row, secs, Align};
use crate::run::RunRecord;

/// The section, or nothing when no platform came from a runner's part.
pub fn section(r: &RunRecord) -> String {
    if r.platforms.iter().all(|p| p.runner.is_none()) {
        return String::new();
    }
    let mut out = String::new();
    let runners = r
        .platforms
        .iter()
        .filter_map(|p| p.runner.as_ref().map(|x| &x.label))
        .collect::<std::collections::BTreeSet<_>>();
    let slowest = r
        .platforms
        .iter()
        .filter_map(|p| p.runner.as_ref().map(|x| x.wall_seconds))
        .fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "### Runners\n\n{} platform(s) built on {} runner(s), each pushed by digest, merged here: \
the slowest part job took {}, the merge {}.\n",
        r.platforms.len(),
        runners.len(),
        secs(slowest),
        secs(r.wall_seconds)
    );
    out.push_str(&md_header(&[
        ("Platform", Align::Left),
        ("Runner", Align::Left),
        ("Part job", Align::Right),
        ("Build", Align::Right),
        ("Steps run / cached", Align::Right),
        ("Digest", Align::Left),
    ]));
    let mut cuts = Vec::new();
    for p in &r.platforms {
        let (label, wall) = match &p.runner {
            Some(x) => (cell(&x.label), secs(x.wall_seconds)),
            None => ("–".into(), "–".into()),
        };
        if let Some(c) = p.runner.as_ref().and_then(|x| x.cut.as_ref()) {
            cuts.push(format!("{}: {}", p.platform, cell(c)));
        }
        let digest = p
            .digest
            .as_ref()
            .or(p.build_digest.as_ref())
            .map_or("–".into(), |d| format!("`{}`", short(d)));
        let run = p.steps_total.saturating_sub(p.steps_cached);
        out.push_str(&md_row(&[
            p.platform.to_string(),
            label,
            wall,
            secs(p.wall_seconds),
            format!("{run} / {}", p.steps_cached),
            digest,
        ]));
    }
    if !cuts.is_empty() {
        let _ = write!(
            out,
            "\n<details><summary>Left out of the parts (a job output must stay small)</summary>\n\n{}\n\n</details>\n",
            cuts.join("<br>\n")
        );
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{PlatformRecord, RunnerRecord};

    fn platform(p: &str, runner: Option<(&str, Option<&str>)>) -> PlatformRecord {
        PlatformRecord {
            platform: p.parse().unwrap(),
            emulated: false,
            node: None,
            digest: Some(format!("sha256:{}", "b".repeat(64))),
            build_digest: None,
            wall_seconds: 61.5,
            executed_seconds: 50.0,
            steps_total: 7,
            steps_cached: 2,
            cache_scope: None,
            error: None,
            steps: vec![],
            cache_error: None,
            buildx: None,
            runner: runner.map(|(label, cut)| RunnerRecord {
                label: label.into(),
                wall_seconds: 90.0,
                cut: cut.map(String::from),
            }),
        }
    }

    #[test]
    fn one_row_per_runner_and_what_was_cut() {
        let mut r = RunRecord::new("linux/amd64".parse().unwrap());
        assert_eq!(section(&r), "");
        r.platforms = vec![
            platform("linux/amd64", Some(("ubuntu-24.04", None))),
            platform(
                "linux/arm64",
                Some(("ubuntu-24.04-arm", Some("build logs"))),
            ),
        ];
        let s = section(&r);
        assert!(
            s.starts_with("### Runners\n\n2 platform(s) built on 2 runner(s)"),
            "{s}"
        );
        assert!(
            s.contains(&format!(
                "the slowest part job took {}, the merge",
                secs(90.0)
            )),
            "{s}"
        );
        let row = format!(
            "| linux/arm64 | ubuntu-24.04-arm | {} | {} | 5 / 2 | `sha256:bbbbbbbbbbbb` |",
            secs(90.0),
            secs(61.5)
        );
        assert!(s.contains(&row), "{row}\n{s}");
        assert!(s.contains("linux/arm64: build logs"), "{s}");
        r.platforms = vec![platform("linux/amd64", None)];
        assert_eq!(section(&r), "");
    }

    /// Parts from native runners, merged on an amd64 runner: the arm64 part
    /// ran natively on its own runner, so no emulation cost is claimed.
    #[test]
    fn native_parts_claim_no_emulation_cost() {
        let mut r = RunRecord::new("linux/amd64".parse().unwrap());
        r.platforms = vec![
            platform("linux/amd64", Some(("ubuntu-24.04", None))),
            platform("linux/arm64", Some(("ubuntu-24.04-arm", None))),
        ];
        let m = crate::report::emulation::model(&r, None);
        assert!(m.platforms.iter().all(|p| !p.emulated));
        assert_eq!(m.cost_seconds, None);
    }
}
