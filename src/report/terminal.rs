//! The final report as terminal tables (written through the printer).

pub use crate::printer::{stdout_color, Printer};

use std::fmt::Write as _;

use crate::digest::short;
use crate::printer::{paint, style};
use crate::report::emulation::{self, Comparison, EmulationReport};
use crate::report::fmt::{clip, one_line, secs, table};
use crate::report::ReportOptions;
use crate::run::RunRecord;

struct Paint(bool);

impl Paint {
    fn ok(&self, s: &str) -> String {
        paint(style::OK, s, self.0)
    }
    fn bad(&self, s: &str) -> String {
        paint(style::BAD, s, self.0)
    }
    fn warn(&self, s: &str) -> String {
        paint(style::WARN, s, self.0)
    }
    fn bold(&self, s: &str) -> String {
        paint(style::BOLD, s, self.0)
    }
}

/// Steps shown in the terminal's "slowest steps" table.
const SLOWEST_STEPS: usize = 5;
const STEP_TEXT: usize = 60;
/// Checks listed one per line.
const MAX_CHECKS: usize = 50;

/// The report of a run: per-platform table, emulation cost and the steps to
/// blame, slowest steps, index, checks. The same content as the job summary.
pub fn render(record: &RunRecord, opts: &ReportOptions, color: bool) -> String {
    let paint = Paint(color);
    let m = emulation::model(record, opts.native.as_ref());
    let mut out = platform_table(record, &m);
    out.push_str(&emulation_lines(&m, opts, &paint));
    if m.platforms.iter().all(|p| !p.emulated) && crate::report::several_nodes(record) {
        out.push_str("\nevery platform ran natively on its own builder node: no emulation cost.\n");
    }
    out.push_str(&emulated_steps(&m));
    out.push_str(&slowest_steps(record));
    out.push('\n');
    out.push_str(&result(record));
    out.push_str(&checks(record, &paint));
    if let Some(c) = &record.cache {
        out.push('\n');
        out.push_str(&crate::report::cache::render_usage(c));
    }
    for n in &record.notes {
        let _ = writeln!(out, "{}    {n}", paint.bold("note"));
    }
    let _ = writeln!(
        out,
        "{}   {}",
        paint.bold("total"),
        secs(record.wall_seconds)
    );
    out
}

/// A step's text on one line, clipped for a table cell.
fn step_text(s: &str) -> String {
    clip(&one_line(s), STEP_TEXT)
}

/// One row per platform: mode, wall time, steps run and cached, digest.
fn platform_table(record: &RunRecord, m: &EmulationReport) -> String {
    let several = crate::report::several_nodes(record);
    let rows: Vec<Vec<String>> = record
        .platforms
        .iter()
        .zip(&m.platforms)
        .map(|(p, c)| {
            let total = c.steps_executed + c.steps_cached;
            vec![
                p.platform.to_string(),
                match (c.emulated, p.node.as_ref().filter(|_| several)) {
                    (true, None) => "emulated".into(),
                    (false, None) => "native".into(),
                    (true, Some(n)) => format!("emulated on {n}"),
                    (false, Some(n)) => format!("native on {n}"),
                },
                secs(p.wall_seconds),
                format!("{}/{}", c.steps_executed, c.steps_cached),
                if total == 0 {
                    "-".into()
                } else {
                    format!("{:.0}%", 100.0 * c.steps_cached as f64 / total as f64)
                },
                match (&p.error, p.digest.as_ref().or(p.build_digest.as_ref())) {
                    (Some(_), _) => "FAILED".into(),
                    (None, Some(d)) => short(d),
                    (None, None) => "-".into(),
                },
            ]
        })
        .collect();
    table(
        &[
            "PLATFORM",
            "MODE",
            "WALL",
            "STEPS RUN/CACHED",
            "CACHE HITS",
            "DIGEST",
        ],
        &rows,
    )
}

/// One line per emulated platform, then the total cost (in the warning
/// colour over the threshold); a blank line first when there is any.
fn emulation_lines(m: &EmulationReport, opts: &ReportOptions, paint: &Paint) -> String {
    let native_name = m
        .native
        .as_ref()
        .map_or_else(|| "native".to_string(), ToString::to_string);
    let mut lines = Vec::new();
    for p in m.platforms.iter().filter(|p| p.emulated) {
        match &p.comparison {
            Some(Comparison::Measured {
                matched_steps,
                native_seconds,
                emulated_seconds,
                slowdown,
                unmatched_steps,
                ..
            }) => {
                let how = match slowdown {
                    Some(s) => format!("steps ran {} than", emulation::pace(*s)),
                    None => "steps ran slower than".into(),
                };
                let mut l = format!(
                    "{} under QEMU: {how} native {native_name} ({} vs {}",
                    p.platform,
                    secs(*emulated_seconds),
                    secs(*native_seconds),
                );
                if *unmatched_steps > 0 {
                    let _ = write!(
                        l,
                        " over {matched_steps} matched steps; {unmatched_steps} not comparable"
                    );
                }
                l.push_str(").");
                lines.push(l);
            }
            Some(Comparison::Unknown { reason }) => {
                let why = reason.explain(m.native.as_ref());
                lines.push(format!("{}: {why}.", p.platform));
            }
            None => {}
        }
    }
    if let (Some(c), Some(share)) = (m.cost_seconds, m.share) {
        let l = format!(
            "emulation cost: {} of the {} of step time ({:.0}%).",
            emulation::signed_secs(c),
            secs(m.executed_seconds),
            100.0 * share
        );
        lines.push(if 100.0 * share > opts.emulation_warn_percent {
            paint.warn(&l)
        } else {
            l
        });
    }
    if lines.is_empty() {
        return String::new();
    }
    format!("\n{}\n", lines.join("\n"))
}

/// The steps that cost most under emulation, and what to do about the first.
fn emulated_steps(m: &EmulationReport) -> String {
    if m.top_steps.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = m
        .top_steps
        .iter()
        .map(|s| {
            vec![
                step_text(&s.instruction),
                s.platform.to_string(),
                secs(s.native_seconds),
                secs(s.emulated_seconds),
                s.slowdown.map_or("-".into(), |x| format!("{x:.1}×")),
                format!("+{}", secs(s.extra_seconds)),
            ]
        })
        .collect();
    let mut out = String::from("\n");
    out.push_str(&table(
        &[
            "SLOWEST UNDER EMULATION",
            "PLATFORM",
            "NATIVE",
            "EMULATED",
            "SLOWDOWN",
            "EXTRA",
        ],
        &rows,
    ));
    if let Some(s) = m.top_steps.first() {
        let _ = writeln!(out, "hint: {}", emulation::advice(s));
    }
    out
}

/// The slowest steps that ran, any platform.
fn slowest_steps(record: &RunRecord) -> String {
    let steps = crate::report::slowest_steps(record, SLOWEST_STEPS);
    if steps.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|(i, s)| {
            vec![
                step_text(s.instruction_text()),
                record.platforms[*i].platform.to_string(),
                secs(s.busy_seconds),
            ]
        })
        .collect();
    format!("\n{}", table(&["SLOWEST STEPS", "PLATFORM", "TIME"], &rows))
}

/// What was made: the index, where it went, its tags.
fn result(record: &RunRecord) -> String {
    let mut out = String::new();
    if let Some(d) = &record.index_digest {
        let _ = writeln!(out, "index   {d}");
    }
    if !record.output.is_empty() {
        let _ = writeln!(out, "output  {}", record.output);
    }
    for t in &record.tags {
        let _ = writeln!(out, "tag     {t}");
    }
    out
}

/// Every check while few, else the failed ones; then the verdict.
fn checks(record: &RunRecord, paint: &Paint) -> String {
    if record.checks.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    let many = record.checks.len() > MAX_CHECKS;
    let shown: Vec<_> = record
        .checks
        .iter()
        .filter(|c| !many || !c.passed)
        .take(MAX_CHECKS)
        .collect();
    let hidden = record.checks.len() - shown.len();
    for c in shown {
        let mark = if c.passed {
            paint.ok("✓")
        } else {
            paint.bad("✗")
        };
        let _ = writeln!(out, "{mark} {}: {}", c.name, c.detail);
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "… {hidden} more checks not shown ({} failed in all; `--json FILE` keeps them all)",
            record.checks.iter().filter(|c| !c.passed).count()
        );
    }
    out.push_str(&if record.verified {
        paint.ok("verified: every check passed")
    } else {
        paint.bad("verification FAILED")
    });
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Step;
    use crate::run::{Check, PlatformRecord};

    fn rec(p: &str, emulated: bool, wall: f64, steps: &[(f64, bool)]) -> PlatformRecord {
        let n = steps.len();
        PlatformRecord {
            platform: p.parse().unwrap(),
            emulated,
            node: None,
            digest: Some(format!("sha256:{}", "a1".repeat(32))),
            build_digest: None,
            wall_seconds: wall,
            executed_seconds: steps.iter().filter(|s| !s.1).map(|s| s.0).sum(),
            steps_total: n,
            steps_cached: steps.iter().filter(|s| s.1).count(),
            cache_scope: None,
            error: None,
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, (secs, cached))| Step {
                    digest: format!("sha256:{p}{i}"),
                    name: format!("[{}/{n}] RUN step{i}", i + 1),
                    started: None,
                    completed: None,
                    busy_seconds: *secs,
                    cached: *cached,
                    error: None,
                    instruction: true,
                    log_tail: vec![],
                })
                .collect(),
            cache_error: None,
            buildx: None,
            runner: None,
        }
    }

    #[test]
    fn renders_table_ratio_and_checks() {
        let r = RunRecord {
            platforms: vec![
                rec(
                    "linux/amd64",
                    false,
                    5.8,
                    &[(1.0, false), (4.0, false), (0.0, true)],
                ),
                rec(
                    "linux/arm64",
                    true,
                    39.1,
                    &[(8.0, false), (32.0, false), (0.0, true)],
                ),
            ],
            index_digest: Some("sha256:ff".into()),
            checks: vec![Check {
                name: "platform linux/arm64".into(),
                passed: true,
                detail: "present".into(),
            }],
            verified: true,
            wall_seconds: 65.0,
            ..Default::default()
        };
        let s = render(&r, &ReportOptions::default(), false);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "PLATFORM     MODE      WALL   STEPS RUN/CACHED  CACHE HITS  DIGEST"
        );
        assert_eq!(
            lines[1],
            "linux/amd64  native    5.8s   2/1               33%         sha256:a1a1a1a1a1a1"
        );
        assert_eq!(
            lines[2],
            "linux/arm64  emulated  39.1s  2/1               33%         sha256:a1a1a1a1a1a1"
        );
        assert!(
            s.contains("linux/arm64 under QEMU: steps ran 8.0× slower than native linux/amd64 (40.0s vs 5.0s)."),
            "{s}"
        );
        // cost 35 of 45 s.
        assert!(
            s.contains("emulation cost: +35.0s of the 45.0s of step time (78%)."),
            "{s}"
        );
        assert!(
            s.contains("RUN step1                SLOWEST") || s.contains("RUN step1"),
            "{s}"
        );
        assert!(s.contains("hint: cache it"), "{s}");
        assert!(s.contains("✓ platform linux/arm64: present"));
        assert!(s.contains("total   1m05.0s"));
        assert!(!s.contains('\x1b'), "no colour when asked for none");
        assert!(render(&r, &ReportOptions::default(), true).contains("\x1b[32m✓"));
    }

    #[test]
    fn no_ratio_when_cached() {
        let r = RunRecord {
            platforms: vec![
                rec("linux/amd64", false, 1.0, &[(0.0, true), (0.0, true)]),
                rec("linux/arm64", true, 1.2, &[(0.0, true), (0.0, true)]),
            ],
            ..Default::default()
        };
        let s = render(&r, &ReportOptions::default(), false);
        assert!(!s.contains("slower"), "{s}");
        assert!(!s.contains("emulation cost"), "{s}");
        assert!(
            s.contains("linux/arm64: every step came from the cache: nothing ran under emulation in this run."),
            "{s}"
        );
    }
}
