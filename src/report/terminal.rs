//! Human output in the terminal: status lines while the pipeline runs (on
//! stderr) and the final report tables (on stdout).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::digest::short;
use crate::run::RunRecord;

/// The one printer for status lines; safe to share between build threads.
pub struct Printer {
    lock: Mutex<()>,
    quiet: bool,
    color: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Printer {
        let color = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Printer {
            lock: Mutex::new(()),
            quiet,
            color,
        }
    }

    pub fn status(&self, msg: &str) {
        if self.quiet {
            return;
        }
        let _g = self.lock.lock();
        let mut e = std::io::stderr().lock();
        if self.color {
            let _ = writeln!(e, "\x1b[1;34mmbx\x1b[0m {msg}");
        } else {
            let _ = writeln!(e, "mbx: {msg}");
        }
    }
}

fn secs(s: f64) -> String {
    if s >= 60.0 {
        format!("{}m{:04.1}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.1}s")
    }
}

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

/// The report of a run: per-platform table, index, checks.
pub fn render(record: &RunRecord) -> String {
    let mut out = String::new();
    let rows: Vec<Vec<String>> = record
        .platforms
        .iter()
        .map(|p| {
            vec![
                p.platform.to_string(),
                if p.emulated {
                    "emulated".into()
                } else {
                    "native".into()
                },
                secs(p.wall_seconds),
                format!(
                    "{}/{}",
                    p.steps_total - p.steps_cached.min(p.steps_total),
                    p.steps_cached
                ),
                match (&p.error, &p.digest) {
                    (Some(_), _) => "FAILED".into(),
                    (None, Some(d)) => short(d),
                    (None, None) => "-".into(),
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &["PLATFORM", "MODE", "WALL", "STEPS RUN/CACHED", "DIGEST"],
        &rows,
    ));

    let native = record
        .platforms
        .iter()
        .find(|p| !p.emulated && p.error.is_none());
    let mut ratios = String::new();
    for p in record
        .platforms
        .iter()
        .filter(|p| p.emulated && p.error.is_none())
    {
        match native {
            Some(n)
                if n.executed_seconds > 0.5
                    && p.executed_seconds > 0.0
                    && p.steps_cached < p.steps_total =>
            {
                ratios.push_str(&format!(
                    "\n{} under QEMU: steps ran {:.1}× slower than native {} ({} vs {}).",
                    p.platform,
                    p.executed_seconds / n.executed_seconds,
                    n.platform,
                    secs(p.executed_seconds),
                    secs(n.executed_seconds)
                ));
            }
            _ => {}
        }
    }
    if !ratios.is_empty() {
        out.push_str(&ratios);
        out.push('\n');
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
        for c in &record.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                if c.passed { "✓" } else { "✗" },
                c.name,
                c.detail
            ));
        }
        out.push_str(if record.verified {
            "verified: every check passed\n"
        } else {
            "verification FAILED\n"
        });
    }
    for n in &record.notes {
        out.push_str(&format!("note    {n}\n"));
    }
    out.push_str(&format!("total   {}\n", secs(record.wall_seconds)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Check, PlatformRecord};

    fn rec(
        p: &str,
        emulated: bool,
        wall: f64,
        exec: f64,
        total: usize,
        cached: usize,
    ) -> PlatformRecord {
        PlatformRecord {
            platform: p.parse().unwrap(),
            emulated,
            digest: Some(format!("sha256:{}", "a1".repeat(32))),
            build_digest: None,
            wall_seconds: wall,
            executed_seconds: exec,
            steps_total: total,
            steps_cached: cached,
            cache_scope: None,
            error: None,
            steps: vec![],
        }
    }

    #[test]
    fn renders_table_ratio_and_checks() {
        let r = RunRecord {
            platforms: vec![
                rec("linux/amd64", false, 5.8, 5.0, 3, 0),
                rec("linux/arm64", true, 39.1, 40.0, 3, 0),
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
        let s = render(&r);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "PLATFORM     MODE      WALL   STEPS RUN/CACHED  DIGEST"
        );
        assert_eq!(
            lines[1],
            "linux/amd64  native    5.8s   3/0               sha256:a1a1a1a1a1a1"
        );
        assert_eq!(
            lines[2],
            "linux/arm64  emulated  39.1s  3/0               sha256:a1a1a1a1a1a1"
        );
        assert!(
            s.contains("linux/arm64 under QEMU: steps ran 8.0× slower than native linux/amd64"),
            "{s}"
        );
        assert!(s.contains("✓ platform linux/arm64: present"));
        assert!(s.contains("total   1m05.0s"));
    }

    #[test]
    fn no_ratio_when_cached() {
        let r = RunRecord {
            platforms: vec![
                rec("linux/amd64", false, 1.0, 0.0, 3, 3),
                rec("linux/arm64", true, 1.2, 0.0, 3, 3),
            ],
            ..Default::default()
        };
        assert!(!render(&r).contains("slower"));
    }
}
