//! The job summary: GitHub-flavoured Markdown for `$GITHUB_STEP_SUMMARY`.
//!
//! A table first, details in `<details>`. Every section is bounded (top-N
//! rows, a timeline only while it stays readable) and the whole is cut under
//! [`MAX_BYTES`] with a notice, since GitHub refuses a step summary over 1 MiB.

use std::fmt::Write as _;

use crate::digest::short;
use crate::report::emulation::{self, Comparison, EmulationReport};
use crate::report::{bytes, clip, secs, ReportOptions};
use crate::run::RunRecord;
use crate::run::Step;

/// GitHub's limit is 1 MiB per step summary; stay well under it.
pub const MAX_BYTES: usize = 1_000_000;
/// Bars in the mermaid timeline; beyond it the plain table alone.
const GANTT_MAX_BARS: usize = 60;
const TIMELINE_MAX_ROWS: usize = 200;
const SLOWEST_STEPS: usize = 10;
/// Steps shorter than this are not worth a row among the slowest.
const MIN_STEP_SECONDS: f64 = 0.05;
const STEP_TEXT_MAX: usize = 100;

/// The verdict of a run, in one line.
pub fn verdict(record: &RunRecord) -> &'static str {
    if record.platforms.iter().any(|p| p.error.is_some()) {
        "❌ build failed"
    } else if record.checks.is_empty() {
        "⚠️ not verified"
    } else if record.verified {
        "✅ verified"
    } else {
        "❌ verification failed"
    }
}

/// The whole summary, under [`MAX_BYTES`].
pub fn render(record: &RunRecord, opts: &ReportOptions) -> String {
    let m = emulation::model(record, opts.native.as_ref());
    let mut out = String::new();
    headline(&mut out, record);
    platform_table(&mut out, record, &m);
    emulation_section(&mut out, &m);
    slowest_steps(&mut out, record, &m);
    checks(&mut out, record);
    timeline(&mut out, record);
    cache_section(&mut out, record);
    inputs(&mut out, record);
    cap(out, MAX_BYTES)
}

/// Cut `s` to at most `max` bytes at a line end, close an open code fence
/// and `<details>`, and say what was cut.
pub fn cap(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let notice_room = 400;
    let mut cut = max.saturating_sub(notice_room);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = s[..cut].rfind('\n').map_or(0, |i| i + 1);
    let mut out = s[..cut].to_string();
    if out.lines().filter(|l| l.starts_with("```")).count() % 2 == 1 {
        out.push_str("```\n");
    }
    let opened = out.matches("<details>").count();
    let closed = out.matches("</details>").count();
    for _ in closed..opened {
        out.push_str("\n</details>\n");
    }
    let _ = write!(
        out,
        "\n> [!WARNING]\n> The summary was cut at {} to stay under GitHub's 1 MiB limit ({} omitted). \
`mbx report --record FILE` renders the whole run from the record written by `--json FILE`.\n",
        bytes(cut as u64),
        bytes((s.len() - cut) as u64)
    );
    out
}

/// Text for a table cell: no line breaks, no `|`, HTML escaped.
fn cell(s: &str) -> String {
    let one_line = s.replace(['\r', '\n'], " ");
    html(&one_line).replace('|', "&#124;")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn code(s: &str) -> String {
    format!("<code>{}</code>", cell(&clip(s, STEP_TEXT_MAX)))
}

fn headline(out: &mut String, r: &RunRecord) {
    let image = if r.output.is_empty() {
        "image"
    } else {
        &r.output
    };
    let _ = writeln!(out, "## mbx: {} — {}\n", cell(image), verdict(r));
    let _ = writeln!(out, "| | |\n|---|---|");
    if let Some(d) = &r.index_digest {
        let _ = writeln!(out, "| Index digest | `{d}` |");
    }
    if !r.tags.is_empty() {
        let tags: Vec<String> = r.tags.iter().take(20).map(|t| code(t)).collect();
        let more = r.tags.len().saturating_sub(20);
        let _ = writeln!(
            out,
            "| Tags | {}{} |",
            tags.join(" "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(out, "| Platforms | {} |", r.platforms.len());
    let _ = writeln!(out, "| Total time | {} |\n", secs(r.wall_seconds));
}

fn platform_table(out: &mut String, r: &RunRecord, m: &EmulationReport) {
    let _ = writeln!(out, "### Platforms\n");
    let _ = writeln!(
        out,
        "| Platform | Mode | Wall | Steps run / cached | Cache hits | Digest |\n|---|---|--:|--:|--:|---|"
    );
    for (p, c) in r.platforms.iter().zip(&m.platforms) {
        let total = c.steps_executed + c.steps_cached;
        let hits = if total == 0 {
            "–".to_string()
        } else {
            format!("{:.0}%", 100.0 * c.steps_cached as f64 / total as f64)
        };
        let digest = match (&p.error, &p.digest) {
            (Some(_), _) => "❌ failed".to_string(),
            (None, Some(d)) => format!("`{}`", short(d)),
            (None, None) => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} / {} | {} | {} |",
            p.platform,
            if c.emulated {
                "emulated (QEMU)"
            } else {
                "native"
            },
            secs(p.wall_seconds),
            c.steps_executed,
            c.steps_cached,
            hits,
            digest
        );
    }
    out.push('\n');
    let failed: Vec<_> = r.platforms.iter().filter(|p| p.error.is_some()).collect();
    for p in failed.iter().take(10) {
        let _ = writeln!(
            out,
            "<details><summary>❌ {} failed</summary>\n\n```text\n{}\n```\n\n</details>\n",
            p.platform,
            clip(
                p.error
                    .as_deref()
                    .unwrap_or("")
                    .replace("```", "ˋˋˋ")
                    .as_str(),
                4000
            )
        );
    }
}

fn emulation_section(out: &mut String, m: &EmulationReport) {
    let _ = writeln!(out, "### Emulation cost\n");
    let emulated: Vec<_> = m.platforms.iter().filter(|p| p.emulated).collect();
    if emulated.is_empty() {
        let _ = writeln!(
            out,
            "No platform ran under emulation: every build was native.\n"
        );
        return;
    }
    match (m.cost_seconds, m.share) {
        (Some(c), Some(s)) => {
            let _ = writeln!(
                out,
                "**QEMU emulation cost {} of step time** ({:.0}% of the {} all platforms spent in executed steps).\n",
                emulation::signed_secs(c),
                100.0 * s,
                secs(m.executed_seconds)
            );
        }
        (Some(c), None) => {
            let _ = writeln!(
                out,
                "**QEMU emulation cost {} of step time.**\n",
                emulation::signed_secs(c)
            );
        }
        _ => {}
    }
    for (shown, p) in emulated.iter().enumerate() {
        if shown == 20 {
            let _ = writeln!(
                out,
                "- … and {} more emulated platforms",
                emulated.len() - 20
            );
            break;
        }
        let native = m
            .native
            .as_ref()
            .map_or_else(|| "native".to_string(), ToString::to_string);
        match &p.comparison {
            Some(Comparison::Measured {
                matched_steps,
                native_seconds,
                emulated_seconds,
                cost_seconds,
                slowdown,
                unmatched_steps,
                unmatched_seconds,
            }) => {
                let ratio = slowdown.map_or_else(
                    || "slower".to_string(),
                    |s| format!("**{}**", emulation::pace(s)),
                );
                let _ = write!(
                    out,
                    "- `{}`: steps ran {ratio} than on `{native}` ({} vs {} over {matched_steps} matched step{}): **{}**",
                    p.platform,
                    secs(*emulated_seconds),
                    secs(*native_seconds),
                    if *matched_steps == 1 { "" } else { "s" },
                    emulation::signed_secs(*cost_seconds)
                );
                if *unmatched_steps > 0 {
                    let _ = write!(
                        out,
                        "; {unmatched_steps} more step{} ({}) ran only here or were cached on `{native}`, not counted",
                        if *unmatched_steps == 1 { "" } else { "s" },
                        secs(*unmatched_seconds)
                    );
                }
                out.push('\n');
            }
            Some(Comparison::Unknown { reason }) => {
                let _ = writeln!(
                    out,
                    "- `{}`: {}",
                    p.platform,
                    reason.explain(m.native.as_ref())
                );
            }
            None => {}
        }
    }
    out.push('\n');
    if !m.top_steps.is_empty() {
        let _ = writeln!(
            out,
            "| Step | Platform | Native | Emulated | Slowdown | Extra | What to do |\n|---|---|--:|--:|--:|--:|---|"
        );
        for s in &m.top_steps {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | +{} | {} |",
                code(&s.instruction),
                s.platform,
                secs(s.native_seconds),
                secs(s.emulated_seconds),
                s.slowdown.map_or("–".into(), |x| format!("{x:.1}×")),
                secs(s.extra_seconds),
                cell(&emulation::advice(s))
            );
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "<details><summary>How to cut the emulation cost</summary>\n"
        );
        for a in emulation::ADVICE {
            let _ = writeln!(out, "- {a}");
        }
        let _ = writeln!(out, "\n</details>\n");
    }
}

fn slowest_steps(out: &mut String, r: &RunRecord, m: &EmulationReport) {
    let mut steps: Vec<(usize, &Step)> = r
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
    if steps.is_empty() {
        return;
    }
    // Partial selection keeps this linear for huge records.
    let n = SLOWEST_STEPS.min(steps.len());
    steps.select_nth_unstable_by(n - 1, |a, b| b.1.busy_seconds.total_cmp(&a.1.busy_seconds));
    steps.truncate(n);
    steps.sort_by(|a, b| b.1.busy_seconds.total_cmp(&a.1.busy_seconds));
    let _ = writeln!(
        out,
        "### Slowest steps\n\n| Step | Platform | Mode | Time |\n|---|---|---|--:|"
    );
    for (i, s) in steps {
        let emulated = m.platforms[i].emulated;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            code(s.instruction_text()),
            r.platforms[i].platform,
            if emulated { "emulated" } else { "native" },
            secs(s.busy_seconds)
        );
    }
    out.push('\n');
}

fn checks(out: &mut String, r: &RunRecord) {
    let _ = writeln!(out, "### Verification\n");
    if r.checks.is_empty() {
        let _ = writeln!(
            out,
            "Nothing was verified{}.\n",
            if r.platforms.iter().any(|p| p.error.is_some()) {
                ": the build failed"
            } else {
                ""
            }
        );
        return;
    }
    let failed = r.checks.iter().filter(|c| !c.passed).count();
    let _ = writeln!(
        out,
        "{} of {} checks passed.\n",
        r.checks.len() - failed,
        r.checks.len()
    );
    for c in r.checks.iter().take(500) {
        let _ = writeln!(
            out,
            "- [{}] **{}**: {}",
            if c.passed { "x" } else { " " },
            cell(&c.name),
            cell(&clip(&c.detail, 300))
        );
    }
    if r.checks.len() > 500 {
        let _ = writeln!(out, "- … and {} more checks", r.checks.len() - 500);
    }
    out.push('\n');
}

/// Gantt task names: mermaid reads `:` `;` `#` as syntax; keep plain words.
fn gantt_label(s: &str) -> String {
    let plain: String = clip(s, 60)
        .chars()
        .map(|c| match c {
            ':' | ';' | '#' | '`' | '"' | '\'' | '<' | '>' | '&' | '%' | '{' | '}' | '[' | ']' => {
                ' '
            }
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn timeline(out: &mut String, r: &RunRecord) {
    // Bars: instruction steps that ran, with both ends known.
    let bar = |s: &Step| -> Option<(f64, f64)> {
        let (a, b) = (s.started?, s.completed?);
        (s.instruction && !s.cached).then_some((a, b))
    };
    let mut total = 0usize;
    let mut t0 = if r.started_at > 0.0 {
        r.started_at
    } else {
        f64::INFINITY
    };
    for s in r.platforms.iter().flat_map(|p| &p.steps) {
        if let Some((a, _)) = bar(s) {
            total += 1;
            t0 = t0.min(a);
        }
    }
    if total == 0 {
        return;
    }
    // Only the rows shown are collected and sorted (by platform, then start).
    let mut bars: Vec<(usize, &Step, f64, f64)> = Vec::new();
    for (i, p) in r.platforms.iter().enumerate() {
        if bars.len() >= TIMELINE_MAX_ROWS {
            break;
        }
        let mut mine: Vec<(usize, &Step, f64, f64)> = p
            .steps
            .iter()
            .filter_map(|s| bar(s).map(|(a, b)| (i, s, a, b)))
            .collect();
        mine.sort_by(|a, b| a.2.total_cmp(&b.2));
        mine.truncate(TIMELINE_MAX_ROWS - bars.len());
        bars.extend(mine);
    }
    let _ = writeln!(out, "### Timeline\n");
    if total <= GANTT_MAX_BARS {
        let _ = writeln!(
            out,
            "```mermaid\ngantt\n  dateFormat x\n  axisFormat %M:%S\n  todayMarker off"
        );
        let mut section = usize::MAX;
        for (i, (p, s, a, b)) in bars.iter().enumerate() {
            if *p != section {
                let _ = writeln!(out, "  section {}", r.platforms[*p].platform);
                section = *p;
            }
            let start = ((a - t0) * 1000.0).round().max(0.0) as u64;
            let end = (((b - t0) * 1000.0).round() as u64).max(start + 1);
            let _ = writeln!(
                out,
                "  {} :s{i}, {start}, {end}",
                gantt_label(s.instruction_text())
            );
        }
        let _ = writeln!(out, "```\n");
    }
    let _ = writeln!(
        out,
        "<details><summary>Timeline as a table ({} step{})</summary>\n\n| Platform | Step | Start | End | Took |\n|---|---|--:|--:|--:|",
        total,
        if total == 1 { "" } else { "s" }
    );
    for (p, s, a, b) in &bars {
        let _ = writeln!(
            out,
            "| {} | {} | +{} | +{} | {} |",
            r.platforms[*p].platform,
            code(s.instruction_text()),
            secs(a - t0),
            secs(b - t0),
            secs(s.busy_seconds)
        );
    }
    if total > bars.len() {
        let _ = writeln!(
            out,
            "\n… and {} more steps (see `mbx report --record FILE`).",
            total - bars.len()
        );
    }
    let _ = writeln!(out, "\n</details>\n");
}

fn cache_section(out: &mut String, r: &RunRecord) {
    if let Some(u) = &r.cache {
        out.push_str(&crate::gha_cache::markdown(u));
        out.push('\n');
    }
}

fn inputs(out: &mut String, r: &RunRecord) {
    let _ = writeln!(out, "<details><summary>Build inputs</summary>\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    if let Some(i) = &r.inputs {
        let _ = writeln!(out, "| Context | {} |", code(&i.context));
        let _ = writeln!(out, "| Dockerfile | {} |", code(&i.dockerfile));
        if let Some(t) = &i.target {
            let _ = writeln!(out, "| Target | {} |", code(t));
        }
        for a in i.build_args.iter().take(50) {
            let _ = writeln!(out, "| Build arg | {} |", code(a));
        }
        for l in i.labels.iter().take(50) {
            let _ = writeln!(out, "| Label | {} |", code(l));
        }
        let _ = writeln!(
            out,
            "| Cache | {}{} |",
            cell(&i.cache),
            if i.no_cache { " (`--no-cache`)" } else { "" }
        );
        let _ = writeln!(out, "| Builder | {} |", code(&i.builder));
    }
    for p in r.platforms.iter().take(50) {
        if let Some(s) = &p.cache_scope {
            let _ = writeln!(out, "| Cache scope {} | {} |", p.platform, code(s));
        }
    }
    if let Some(s) = &r.setup {
        if let Some(v) = &s.docker_version {
            let _ = writeln!(out, "| Docker | {} |", cell(v));
        }
        if let Some(v) = &s.buildx_version {
            let _ = writeln!(out, "| Buildx | {} |", cell(v));
        }
        if let Some(b) = &s.builder {
            let _ = writeln!(
                out,
                "| BuildKit | {} ({} driver, builder {}) |",
                cell(b.buildkit_version.as_deref().unwrap_or("?")),
                cell(&b.driver),
                b.action
            );
        }
        for b in s.binfmt.iter().take(20) {
            let _ = writeln!(
                out,
                "| QEMU {} | {} (flags {}) |",
                b.platform,
                cell(b.handler.as_deref().unwrap_or("-")),
                cell(&b.flags)
            );
        }
    }
    if let Some(h) = &r.host_platform {
        let _ = writeln!(out, "| Runner | {h} |");
    }
    let _ = writeln!(out, "| mbx | {} |", cell(&r.mbx_version));
    let _ = writeln!(out, "\n</details>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Check;

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a | b\nc <x> & y"), "a &#124; b c &lt;x&gt; &amp; y");
        assert_eq!(gantt_label("RUN a: b; c # d"), "RUN a b c d");
    }

    #[test]
    fn verdicts() {
        let mut r = RunRecord::default();
        assert_eq!(verdict(&r), "⚠️ not verified");
        r.checks = vec![Check {
            name: "x".into(),
            passed: false,
            detail: String::new(),
        }];
        assert_eq!(verdict(&r), "❌ verification failed");
        r.verified = true;
        assert_eq!(verdict(&r), "✅ verified");
    }

    #[test]
    fn cap_cuts_at_a_line_and_closes_what_it_opened() {
        let mut s = String::from("## head\n<details><summary>x</summary>\n\n```text\n");
        for i in 0..1000 {
            s.push_str(&format!("line {i}\n"));
        }
        s.push_str("```\n</details>\n");
        let c = cap(s.clone(), 2000);
        assert!(c.len() <= 2000, "{}", c.len());
        assert!(c.contains("line 10\n"));
        assert_eq!(c.matches("```").count(), 2, "{c}");
        assert!(c.contains("</details>"));
        assert!(c.contains("The summary was cut at"));
        assert_eq!(cap(s.clone(), s.len()), s, "under the cap: untouched");
    }
}
