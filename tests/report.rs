//! The report stage: the job summary, terminal report, outputs and
//! annotations rendered from run records captured on the real chain
//! (tests/data, see its README), snapshot-tested with timings and digests
//! filtered; the 1 MiB cap on a huge record; and `mbx ci --local` on the real
//! chain writing `$GITHUB_STEP_SUMMARY` and `$GITHUB_OUTPUT` files.

mod support;

use std::path::PathBuf;

use mbx::report::{self, markdown, terminal, ReportOptions};
use mbx::run::RunRecord;
use support::*;

fn data(name: &str) -> PathBuf {
    repo_root().join("tests/data").join(name)
}

fn record(name: &str) -> RunRecord {
    report::read_json(&data(name)).expect("a captured run record")
}

/// Timings, digests, ratios and delimiters change from run to run.
fn filtered(f: impl FnOnce()) {
    let mut s = insta::Settings::clone_current();
    for (re, to) in [
        (r"sha256:[0-9a-f]{6,64}", "sha256:[digest]"),
        (r"\b\d+h\d\dm\d\ds\b", "[t]"),
        (r"\b\d+m\d\d\.\ds\b", "[t]"),
        (r"\b\d+\.\ds\b", "[t]"),
        (r"\b\d+\.\d×", "[n]×"),
        (r"(?m)\b\d+%([ |).]|$)", "[n]%$1"),
        (r":s(\d+), \d+, \d+", ":s$1, [start], [end]"),
        (r"ghadelimiter_[0-9a-f]+", "[delimiter]"),
        (
            r#""(wall|executed|cost)_seconds":[0-9.]+"#,
            r#""${1}_seconds":[t]"#,
        ),
        (r#""share":[0-9.]+"#, r#""share":[n]"#),
        (r"(?m)^(emulation-cost-seconds<<\S+\n)[0-9.]+$", "${1}[t]"),
    ] {
        s.add_filter(re, to);
    }
    s.bind(f);
}

const RECORDS: [&str; 4] = [
    "report-hello-cold.json",
    "report-hello-warm.json",
    "report-hello-registry.json",
    "report-arm64-fails.json",
];

#[test]
fn summary_snapshots() {
    for name in RECORDS {
        let md = markdown::render(&record(name), &ReportOptions::default());
        assert!(md.len() < markdown::MAX_BYTES);
        filtered(|| insta::assert_snapshot!(format!("summary-{name}"), md));
    }
}

#[test]
fn terminal_snapshots() {
    for name in RECORDS {
        let t = terminal::render(&record(name), &ReportOptions::default(), false);
        filtered(|| insta::assert_snapshot!(format!("terminal-{name}"), t));
    }
}

#[test]
fn outputs_and_annotations_snapshots() {
    let o = ReportOptions {
        native: None,
        emulation_warn_percent: 50.0,
    };
    for name in ["report-hello-cold.json", "report-arm64-fails.json"] {
        let r = record(name);
        let mut s = report::github::format_outputs(&report::github::outputs(&r, &o));
        for a in report::github::annotations(&r, &o) {
            s.push_str(&format!("{a}\n"));
        }
        filtered(|| insta::assert_snapshot!(format!("github-{name}"), s));
    }
}

/// The cold run's figures, by hand from the record: the cost is the arm64
/// minus amd64 time of the three RUN steps that ran on both.
#[test]
fn cold_record_cost_matches_its_steps() {
    let r = record("report-hello-cold.json");
    let run_time = |i: usize| -> f64 {
        r.platforms[i]
            .steps
            .iter()
            .filter(|s| s.instruction && !s.cached && s.name.contains("RUN"))
            .map(|s| s.busy_seconds)
            .sum()
    };
    let m = report::emulation::model(&r, None);
    let want = run_time(1) - run_time(0);
    assert!(want > 1.0, "the arm64 steps ran under QEMU: {want}");
    let got = m
        .cost_seconds
        .expect("a figure: both platforms ran every step");
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // Warm: every step cached, so no figure at all.
    let warm = report::emulation::model(&record("report-hello-warm.json"), None);
    assert_eq!(warm.cost_seconds, None);
}

/// 200 platforms × 5000 steps: the summary stays under 1 MiB and says so
/// when it had to cut.
#[test]
fn huge_record_renders_under_one_mib() {
    let base = record("report-hello-cold.json");
    let template = base.platforms[1].steps[4].clone();
    let arches = ["amd64", "arm64", "386", "ppc64le", "s390x", "riscv64"];
    let mut r = base.clone();
    r.platforms = (0..200)
        .map(|i| {
            let mut p = base.platforms[1].clone();
            p.platform = mbx::platform::Platform::new("linux", arches[i % arches.len()], None);
            p.emulated = i % arches.len() != 0;
            p.steps = (0..5000)
                .map(|j| {
                    let mut s = template.clone();
                    s.name = format!("[{}/5000] RUN step {j} of a very long build", j + 1);
                    s.busy_seconds = 0.01 * ((i * 7 + j) % 100) as f64;
                    s.started = Some(1000.0 + j as f64);
                    s.completed = Some(1000.0 + j as f64 + s.busy_seconds);
                    s
                })
                .collect();
            p
        })
        .collect();
    r.checks = (0..2000)
        .map(|i| mbx::run::Check {
            name: format!("check {i}"),
            passed: i % 3 != 0,
            detail: "x".repeat(250),
        })
        .collect();
    let t = std::time::Instant::now();
    let md = markdown::render(&r, &ReportOptions::default());
    eprintln!(
        "rendered {} bytes in {:.2}s",
        md.len(),
        t.elapsed().as_secs_f64()
    );
    assert!(md.len() < 1024 * 1024, "{} bytes", md.len());
    assert!(md.contains("### Emulation cost"));
    // The terminal report and the outputs stay bounded too.
    let term = terminal::render(&r, &ReportOptions::default(), false);
    assert!(term.len() < 200_000, "{} bytes", term.len());
    let a = report::github::annotations(&r, &ReportOptions::default());
    assert!(
        a.len() <= 11,
        "10 errors at most and one warning: {}",
        a.len()
    );

    // Over the cap: cut at a line, fences closed, a notice at the end.
    let cut = markdown::cap(md.clone(), 20_000);
    assert!(cut.len() <= 20_000, "{}", cut.len());
    assert!(cut.contains("The summary was cut at"), "{cut}");
    assert_eq!(cut.lines().filter(|l| l.starts_with("```")).count() % 2, 0);
    assert_eq!(
        cut.matches("<details>").count(),
        cut.matches("</details>").count()
    );
}

/// `mbx report` on a saved record: terminal report, `--summary` and
/// `--github-output` files, annotations under GITHUB_ACTIONS.
#[test]
fn report_command_writes_summary_and_outputs() {
    let d = tempfile::tempdir().unwrap();
    let summary = d.path().join("summary.md");
    let output = d.path().join("output");
    std::fs::write(&summary, "earlier step content\n").unwrap();
    let mut c = mbx();
    c.args(["report", "--record"])
        .arg(data("report-arm64-fails.json"))
        .arg("--summary")
        .arg(&summary)
        .arg("--github-output")
        .arg(&output)
        .env("GITHUB_ACTIONS", "true");
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("linux/arm64  emulated"), "{out}");
    assert!(
        out.contains("::error title=mbx%3A linux/arm64 build failed::"),
        "{out}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier step content\n## mbx: "),
        "appended: {md}"
    );
    assert!(md.contains("❌ build failed"), "{md}");
    assert!(
        md.contains("linux/arm64: the build failed")
            || md.contains("the build failed, so no emulation figure"),
        "{md}"
    );
    let outs = std::fs::read_to_string(&output).unwrap();
    let parsed = parse_outputs(&outs);
    assert_eq!(parsed["digest"], "", "nothing merged");
    assert_eq!(
        parsed["emulation-cost-seconds"], "",
        "no figure is invented"
    );

    // Bad flags are input errors (exit 2).
    let mut c = mbx();
    c.args(["report", "--record"])
        .arg(data("report-hello-cold.json"))
        .args(["--emulation-warn-percent", "140"]);
    assert_eq!(run(c).status.code(), Some(2));
    let mut c = mbx();
    c.args(["report", "--record"])
        .arg(data("report-hello-cold.json"))
        .args(["--native-platform", "linux/sparc"]);
    assert_eq!(run(c).status.code(), Some(2));
}

/// `name<<DELIM` … `DELIM` as the runner reads `$GITHUB_OUTPUT`.
fn parse_outputs(s: &str) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    let mut lines = s.lines();
    while let Some(l) = lines.next() {
        let (k, d) = l
            .split_once("<<")
            .unwrap_or_else(|| panic!("not heredoc: {l}"));
        let mut v = Vec::new();
        for l in lines.by_ref() {
            if l == d {
                break;
            }
            v.push(l);
        }
        m.insert(k.to_string(), v.join("\n"));
    }
    m
}

/// The real chain: `mbx ci --local` under a GitHub-like environment writes
/// the summary and the outputs, and the figures agree with the record.
#[test]
fn ci_local_writes_github_summary_and_outputs() {
    require_builder();
    let d = tempfile::tempdir().unwrap();
    let summary = d.path().join("step_summary.md");
    let output = d.path().join("github_output");
    let record_path = d.path().join("run.json");
    let mut c = mbx();
    c.args([
        "ci",
        "--local",
        "--no-cache",
        "--context",
        &repo_root().join("examples/hello").display().to_string(),
        "--emulation-warn-percent",
        "1",
    ])
    .arg("--output")
    .arg(d.path().join("out"))
    .arg("--cache-dir")
    .arg(d.path().join("cache"))
    .arg("--json")
    .arg(&record_path)
    .env("GITHUB_STEP_SUMMARY", &summary)
    .env("GITHUB_OUTPUT", &output)
    .env("GITHUB_ACTIONS", "true");
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report::read_json(&record_path).unwrap();

    let md = std::fs::read_to_string(&summary).expect("the summary was written");
    assert!(md.contains("✅ verified"), "{md}");
    assert!(md.contains("| linux/arm64 | emulated (QEMU) |"), "{md}");
    assert!(md.contains("**QEMU emulation cost "), "{md}");
    assert!(md.contains("```mermaid\ngantt"), "{md}");
    assert!(md.contains(r.index_digest.as_deref().unwrap()), "{md}");

    let outs = parse_outputs(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(outs["digest"], r.index_digest.clone().unwrap());
    let pd: serde_json::Value = serde_json::from_str(&outs["platform-digests"]).unwrap();
    assert_eq!(pd["linux/arm64"], r.platforms[1].digest.clone().unwrap());
    let meta: serde_json::Value = serde_json::from_str(&outs["metadata"]).unwrap();
    assert_eq!(meta["containerimage.digest"], outs["digest"]);
    let cost: f64 = outs["emulation-cost-seconds"]
        .parse()
        .expect("a figure: --no-cache ran every step on both platforms");
    let model = report::emulation::model(&r, None).cost_seconds.unwrap();
    assert!((cost - model).abs() < 0.006, "{cost} vs {model}");
    assert!(cost > 0.0, "arm64 under QEMU is slower than native amd64");

    // Not a terminal: plain status lines, no bars, no colour.
    let err = stderr(&o);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err}");

    // Over the 1% threshold: one warning annotation on stdout.
    let out = stdout(&o);
    assert_eq!(
        out.matches("::warning title=mbx%3A emulation cost::")
            .count(),
        1,
        "{out}"
    );
}

/// On a terminal (a pty from util-linux `script`) the build draws one bar per
/// platform; with NO_COLOR the bars and status lines carry no colour codes.
#[test]
fn progress_bars_on_a_terminal_without_colour_under_no_color() {
    require_builder();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("tty.log");
    let cmd = format!(
        "{} ci --local --no-cache --platforms linux/amd64 --context {} --output {} --cache-dir {}",
        env!("CARGO_BIN_EXE_mbx"),
        repo_root().join("examples/hello").display(),
        d.path().join("out").display(),
        d.path().join("cache").display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &cmd])
        .arg(&log)
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS");
    if let Some(cfg) = mbx().get_envs().find(|(k, _)| *k == "MBX_CONFIG") {
        c.env("MBX_CONFIG", cfg.1.unwrap());
    }
    let o = run(c);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(
        text.contains("linux/amd64    [========================] 4/4"),
        "a finished bar for linux/amd64: {text}"
    );
    assert!(
        !text.contains("\x1b[1;34m") && !text.contains("\x1b[36m"),
        "{text}"
    );
    assert!(
        text.contains("mbx: building linux/amd64 (native)"),
        "{text}"
    );
}
