//! The job summary: GitHub-flavoured Markdown for `$GITHUB_STEP_SUMMARY`.
//!
//! A table first, details in `<details>`. Every section is bounded (top-N
//! rows, a timeline only while it stays readable) and the whole is cut under
//! [`MAX_BYTES`] with a notice, since GitHub refuses a step summary over 1 MiB.

use std::fmt::Write as _;

use crate::digest::short;
use crate::report::emulation::{self, Comparison, EmulationReport, PlatformCost};
use crate::report::fmt::{
    bytes, clip, md_cell as cell, md_fenced, md_header, md_row, mermaid_label, secs, Align,
};
use crate::report::ReportOptions;
use crate::run::RunRecord;
use crate::run::Step;

/// GitHub's limit is 1 MiB per step summary; stay well under it.
pub const MAX_BYTES: usize = 1_000_000;
/// Bars in the mermaid timeline; beyond it the plain table alone.
const GANTT_MAX_BARS: usize = 60;
const TIMELINE_MAX_ROWS: usize = 200;
const SLOWEST_STEPS: usize = 10;
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
    out.push_str(&crate::report::runners::section(record));
    platform_table(&mut out, record, &m);
    if let Some(n) = crate::plan::cache::failure_note(&record.platforms) {
        let _ = write!(out, "\n> [!WARNING]\n> {n}\n");
    }
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

/// Code in a table cell, clipped.
fn code(s: &str) -> String {
    crate::report::fmt::md_code(s, STEP_TEXT_MAX)
}

/// A two-column table of names and values, headed by nothing.
const KEY_VALUE: &[(&str, Align)] = &[("", Align::Left), ("", Align::Left)];

fn kv(out: &mut String, key: &str, value: &str) {
    out.push_str(&md_row(&[key, value]));
}

fn headline(out: &mut String, r: &RunRecord) {
    let image = if r.output.is_empty() {
        "image"
    } else {
        &r.output
    };
    let _ = writeln!(out, "## mbx: {} — {}\n", cell(image), verdict(r));
    out.push_str(&md_header(KEY_VALUE));
    if let Some(d) = &r.index_digest {
        kv(out, "Index digest", &format!("`{d}`"));
    }
    if !r.tags.is_empty() {
        let tags: Vec<String> = r.tags.iter().take(20).map(|t| code(t)).collect();
        let more = r.tags.len().saturating_sub(20);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        kv(out, "Tags", &format!("{}{more}", tags.join(" ")));
    }
    kv(out, "Platforms", &r.platforms.len().to_string());
    kv(out, "Total time", &secs(r.wall_seconds));
    out.push('\n');
}

fn platform_table(out: &mut String, r: &RunRecord, m: &EmulationReport) {
    let several = crate::report::several_nodes(r);
    let _ = writeln!(out, "### Platforms\n");
    out.push_str(&md_header(&[
        ("Platform", Align::Left),
        ("Mode", Align::Left),
        ("Wall", Align::Right),
        ("Steps run / cached", Align::Right),
        ("Cache hits", Align::Right),
        ("Digest", Align::Left),
    ]));
    for (p, c) in r.platforms.iter().zip(&m.platforms) {
        let total = c.steps_executed + c.steps_cached;
        let hits = if total == 0 {
            "–".to_string()
        } else {
            format!("{:.0}%", 100.0 * c.steps_cached as f64 / total as f64)
        };
        let digest = match (&p.error, p.digest.as_ref().or(p.build_digest.as_ref())) {
            (Some(_), _) => "❌ failed".to_string(),
            (None, Some(d)) => format!("`{}`", short(d)),
            (None, None) => "–".into(),
        };
        out.push_str(&md_row(&[
            p.platform.to_string(),
            match (c.emulated, p.node.as_ref().filter(|_| several)) {
                (true, None) => "emulated (QEMU)".into(),
                (false, None) => "native".into(),
                (true, Some(n)) => format!("emulated (QEMU) on `{n}`"),
                (false, Some(n)) => format!("native on `{n}`"),
            },
            secs(p.wall_seconds),
            format!("{} / {}", c.steps_executed, c.steps_cached),
            hits,
            digest,
        ]));
    }
    out.push('\n');
    let failed: Vec<_> = r.platforms.iter().filter(|p| p.error.is_some()).collect();
    for p in failed.iter().take(10) {
        let _ = writeln!(
            out,
            "<details><summary>❌ {} failed</summary>\n\n```text\n{}\n```\n\n</details>\n",
            p.platform,
            clip(&md_fenced(p.error.as_deref().unwrap_or("")), 4000)
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
        emulated_platform(out, m, p);
    }
    out.push('\n');
    if !m.top_steps.is_empty() {
        emulated_steps(out, m);
    }
}

/// One emulated platform against the native one, as a list item.
fn emulated_platform(out: &mut String, m: &EmulationReport, p: &PlatformCost) {
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

/// The steps that cost most under emulation, with what to do about each.
fn emulated_steps(out: &mut String, m: &EmulationReport) {
    out.push_str(&md_header(&[
        ("Step", Align::Left),
        ("Platform", Align::Left),
        ("Native", Align::Right),
        ("Emulated", Align::Right),
        ("Slowdown", Align::Right),
        ("Extra", Align::Right),
        ("What to do", Align::Left),
    ]));
    for s in &m.top_steps {
        out.push_str(&md_row(&[
            code(&s.instruction),
            s.platform.to_string(),
            secs(s.native_seconds),
            secs(s.emulated_seconds),
            s.slowdown.map_or("–".into(), |x| format!("{x:.1}×")),
            format!("+{}", secs(s.extra_seconds)),
            cell(&emulation::advice(s)),
        ]));
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

fn slowest_steps(out: &mut String, r: &RunRecord, m: &EmulationReport) {
    let steps = crate::report::slowest_steps(r, SLOWEST_STEPS);
    if steps.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Slowest steps\n");
    out.push_str(&md_header(&[
        ("Step", Align::Left),
        ("Platform", Align::Left),
        ("Mode", Align::Left),
        ("Time", Align::Right),
    ]));
    for (i, s) in steps {
        let emulated = m.platforms[i].emulated;
        out.push_str(&md_row(&[
            code(s.instruction_text()),
            r.platforms[i].platform.to_string(),
            if emulated { "emulated" } else { "native" }.into(),
            secs(s.busy_seconds),
        ]));
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
    let mut bars: Vec<Bar> = Vec::new();
    for (i, p) in r.platforms.iter().enumerate() {
        if bars.len() >= TIMELINE_MAX_ROWS {
            break;
        }
        let mut mine: Vec<Bar> = p
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
        gantt(out, r, &bars, t0);
    }
    let _ = writeln!(
        out,
        "<details><summary>Timeline as a table ({} step{})</summary>\n",
        total,
        if total == 1 { "" } else { "s" }
    );
    out.push_str(&md_header(&[
        ("Platform", Align::Left),
        ("Step", Align::Left),
        ("Start", Align::Right),
        ("End", Align::Right),
        ("Took", Align::Right),
    ]));
    for (p, s, a, b) in &bars {
        out.push_str(&md_row(&[
            r.platforms[*p].platform.to_string(),
            code(s.instruction_text()),
            format!("+{}", secs(a - t0)),
            format!("+{}", secs(b - t0)),
            secs(s.busy_seconds),
        ]));
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

/// Bars of the timeline, by platform: (platform index, step, start, end).
type Bar<'a> = (usize, &'a Step, f64, f64);

/// The timeline as a mermaid gantt chart, times in ms from `t0`.
fn gantt(out: &mut String, r: &RunRecord, bars: &[Bar], t0: f64) {
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
        let end = (((b - t0) * 1000.0).round() as u64).max(start.saturating_add(1));
        let _ = writeln!(
            out,
            "  {} :s{i}, {start}, {end}",
            mermaid_label(s.instruction_text(), 60)
        );
    }
    let _ = writeln!(out, "```\n");
}

fn cache_section(out: &mut String, r: &RunRecord) {
    if let Some(u) = &r.cache {
        out.push_str(&crate::report::cache::markdown(u));
        out.push('\n');
    }
}

fn inputs(out: &mut String, r: &RunRecord) {
    let _ = writeln!(out, "<details><summary>Build inputs</summary>\n");
    out.push_str(&md_header(KEY_VALUE));
    if let Some(i) = &r.inputs {
        kv(out, "Context", &code(&i.context));
        kv(out, "Dockerfile", &code(&i.dockerfile));
        if let Some(t) = &i.target {
            kv(out, "Target", &code(t));
        }
        for a in i.build_args.iter().take(50) {
            kv(out, "Build arg", &code(a));
        }
        for l in i.labels.iter().take(50) {
            kv(out, "Label", &code(l));
        }
        let no_cache = if i.no_cache { " (`--no-cache`)" } else { "" };
        kv(out, "Cache", &format!("{}{no_cache}", cell(&i.cache)));
        kv(out, "Builder", &code(&i.builder));
    }
    for p in r.platforms.iter().take(50) {
        if let Some(s) = &p.cache_scope {
            kv(out, &format!("Cache scope {}", p.platform), &code(s));
        }
    }
    if let Some(s) = &r.setup {
        setup_inputs(out, s);
    }
    if let Some(h) = &r.host_platform {
        kv(out, "Runner", &h.to_string());
    }
    kv(out, "mbx", &cell(&r.mbx_version));
    let _ = writeln!(out, "\n</details>");
}

/// The tools and the builder setup found, as rows of the inputs table.
fn setup_inputs(out: &mut String, s: &crate::run::SetupRecord) {
    if let Some(v) = &s.docker_version {
        kv(out, "Docker", &cell(v));
    }
    if let Some(v) = &s.buildx_version {
        kv(out, "Buildx", &cell(v));
    }
    if let Some(b) = &s.builder {
        let version = cell(b.buildkit_version.as_deref().unwrap_or("?"));
        let how = format!(
            "{version} ({} driver, builder {})",
            cell(&b.driver),
            b.action
        );
        kv(out, "BuildKit", &how);
    }
    for b in s.binfmt.iter().take(20) {
        let handler = cell(b.handler.as_deref().unwrap_or("-"));
        let flags = cell(&b.flags);
        kv(
            out,
            &format!("QEMU {}", b.platform),
            &format!("{handler} (flags {flags})"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Check;

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a | b\nc <x> & y"), "a &#124; b c &lt;x&gt; &amp; y");
        assert_eq!(
            code("RUN echo `a` | b"),
            "<code>RUN echo `a` &#124; b</code>"
        );
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
