//! The final report as terminal tables (written through the printer).

pub use crate::printer::{stdout_color, Printer};

use crate::digest::short;
use crate::report::emulation::{self, Comparison};
use crate::report::{clip, secs, ReportOptions};
use crate::run::RunRecord;

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn ok(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn bad(&self, s: &str) -> String {
        self.wrap("1;31", s)
    }
    fn warn(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

/// Steps shown in the terminal's "slowest steps" table.
const SLOWEST_STEPS: usize = 5;
/// Steps shorter than this are not worth a row among the slowest.
const MIN_STEP_SECONDS: f64 = 0.05;
const STEP_TEXT: usize = 60;
/// Checks listed one per line.
const MAX_CHECKS: usize = 50;

/// The report of a run: per-platform table, emulation cost and the steps to
/// blame, slowest steps, index, checks. The same content as the job summary.
pub fn render(record: &RunRecord, opts: &ReportOptions, color: bool) -> String {
    let paint = Paint(color);
    let m = emulation::model(record, opts.native.as_ref());
    let mut out = String::new();
    let rows: Vec<Vec<String>> = record
        .platforms
        .iter()
        .zip(&m.platforms)
        .map(|(p, c)| {
            let total = c.steps_executed + c.steps_cached;
            vec![
                p.platform.to_string(),
                if c.emulated {
                    "emulated".into()
                } else {
                    "native".into()
                },
                secs(p.wall_seconds),
                format!("{}/{}", c.steps_executed, c.steps_cached),
                if total == 0 {
                    "-".into()
                } else {
                    format!("{:.0}%", 100.0 * c.steps_cached as f64 / total as f64)
                },
                match (&p.error, &p.digest) {
                    (Some(_), _) => "FAILED".into(),
                    (None, Some(d)) => short(d),
                    (None, None) => "-".into(),
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "PLATFORM",
            "MODE",
            "WALL",
            "STEPS RUN/CACHED",
            "CACHE HITS",
            "DIGEST",
        ],
        &rows,
    ));

    // Emulation: one line per emulated platform, then the total.
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
                    l.push_str(&format!(
                        " over {matched_steps} matched steps; {unmatched_steps} not comparable"
                    ));
                }
                l.push_str(").");
                lines.push(l);
            }
            Some(Comparison::Unknown { reason }) => {
                lines.push(format!(
                    "{}: {}.",
                    p.platform,
                    reason.explain(m.native.as_ref())
                ));
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
    if !lines.is_empty() {
        out.push('\n');
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    if !m.top_steps.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = m
            .top_steps
            .iter()
            .map(|s| {
                vec![
                    clip(s.instruction.replace(['\r', '\n'], " ").as_str(), STEP_TEXT),
                    s.platform.to_string(),
                    secs(s.native_seconds),
                    secs(s.emulated_seconds),
                    s.slowdown.map_or("-".into(), |x| format!("{x:.1}×")),
                    format!("+{}", secs(s.extra_seconds)),
                ]
            })
            .collect();
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
            out.push_str(&format!("hint: {}\n", emulation::advice(s)));
        }
    }

    // The slowest steps that ran, any platform.
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
    if !steps.is_empty() {
        let n = SLOWEST_STEPS.min(steps.len());
        steps.select_nth_unstable_by(n - 1, |a, b| b.1.busy_seconds.total_cmp(&a.1.busy_seconds));
        steps.truncate(n);
        steps.sort_by(|a, b| b.1.busy_seconds.total_cmp(&a.1.busy_seconds));
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|(i, s)| {
                vec![
                    clip(
                        s.instruction_text().replace(['\r', '\n'], " ").as_str(),
                        STEP_TEXT,
                    ),
                    record.platforms[*i].platform.to_string(),
                    secs(s.busy_seconds),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["SLOWEST STEPS", "PLATFORM", "TIME"], &rows));
    }

    out.push('\n');
    if let Some(d) = &record.index_digest {
        out.push_str(&format!("index   {d}\n"));
    }
    if !record.output.is_empty() {
        out.push_str(&format!("output  {}\n", record.output));
    }
    for t in &record.tags {
        out.push_str(&format!("tag     {t}\n"));
    }
    if !record.checks.is_empty() {
        out.push('\n');
        // Every check while few; beyond that the failed ones only.
        let many = record.checks.len() > MAX_CHECKS;
        let shown: Vec<_> = record
            .checks
            .iter()
            .filter(|c| !many || !c.passed)
            .take(MAX_CHECKS)
            .collect();
        let hidden = record.checks.len() - shown.len();
        for c in shown {
            out.push_str(&format!(
                "{} {}: {}\n",
                if c.passed {
                    paint.ok("✓")
                } else {
                    paint.bad("✗")
                },
                c.name,
                c.detail
            ));
        }
        if hidden > 0 {
            out.push_str(&format!(
                "… {hidden} more checks not shown ({} failed in all; `--json FILE` keeps them all)\n",
                record.checks.iter().filter(|c| !c.passed).count()
            ));
        }
        out.push_str(&if record.verified {
            paint.ok("verified: every check passed")
        } else {
            paint.bad("verification FAILED")
        });
        out.push('\n');
    }
    if let Some(c) = &record.cache {
        out.push('\n');
        out.push_str(&crate::gha_cache::render(c));
    }
    for n in &record.notes {
        out.push_str(&format!("{}    {n}\n", paint.bold("note")));
    }
    out.push_str(&format!(
        "{}   {}\n",
        paint.bold("total"),
        secs(record.wall_seconds)
    ));
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
