//! GitHub Actions: workflow-command annotations (`::warning` / `::error`),
//! step outputs for `$GITHUB_OUTPUT`, and the summary file append.
//!
//! Titles and messages are escaped by the runner's rules (actions/toolkit
//! `command.ts`, see [`escape_data`] and [`escape_property`] in `fmt`).
//! Multi-line output values use the heredoc form
//! `name<<DELIM` … `DELIM` with a random delimiter found in no value.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::report::emulation::{self, Comparison};
use crate::report::fmt::{clip, escape_data, escape_property, secs};
use crate::report::ReportOptions;
use crate::run::RunRecord;

/// GitHub shows at most 10 annotations of a kind per step.
pub const MAX_ANNOTATIONS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub level: Level,
    pub title: String,
    pub message: String,
}

impl fmt::Display for Annotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = match self.level {
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(
            f,
            "::{cmd} title={}::{}",
            escape_property(&self.title),
            escape_data(&self.message)
        )
    }
}

/// Errors for failed builds and checks, a warning when emulation costs more
/// than the threshold; at most [`MAX_ANNOTATIONS`] in all (the last error
/// then says how many more there were).
pub fn annotations(record: &RunRecord, opts: &ReportOptions) -> Vec<Annotation> {
    let mut errors: Vec<Annotation> = Vec::new();
    for p in record.platforms.iter().filter(|p| p.error.is_some()) {
        errors.push(Annotation {
            level: Level::Error,
            title: format!("mbx: {} build failed", p.platform),
            message: p.error.clone().unwrap_or_default(),
        });
    }
    for c in record.checks.iter().filter(|c| !c.passed) {
        errors.push(Annotation {
            level: Level::Error,
            title: format!("mbx: check failed: {}", c.name),
            message: c.detail.clone(),
        });
    }
    let mut warnings = Vec::new();

    let m = emulation::model(record, opts.native.as_ref());
    if let (Some(cost), Some(share)) = (m.cost_seconds, m.share) {
        if share * 100.0 > opts.emulation_warn_percent {
            let mut msg = format!(
                "QEMU emulation cost {} of the {} of step time ({:.0}%, over the {}% threshold).",
                secs(cost),
                secs(m.executed_seconds),
                share * 100.0,
                opts.emulation_warn_percent
            );
            for p in &m.platforms {
                if let Some(Comparison::Measured {
                    slowdown: Some(s), ..
                }) = &p.comparison
                {
                    msg.push_str(&format!(" {} ran {}.", p.platform, emulation::pace(*s)));
                }
            }
            if let Some(s) = m.top_steps.first() {
                msg.push_str(&format!(
                    " Slowest under emulation: `{}` (+{}): {}.",
                    clip(&s.instruction, 120),
                    secs(s.extra_seconds),
                    emulation::advice(s)
                ));
            }
            warnings.push(Annotation {
                level: Level::Warning,
                title: "mbx: emulation cost".into(),
                message: msg,
            });
        }
    }
    if let Some(message) = crate::plan::cache::failure_note(&record.platforms) {
        warnings.push(Annotation {
            level: Level::Warning,
            title: "mbx: cache not used".into(),
            message,
        });
    }
    let mut out = bounded(errors, "failures", MAX_ANNOTATIONS - warnings.len());
    out.extend(warnings);
    out
}

fn bounded(mut v: Vec<Annotation>, what: &str, max: usize) -> Vec<Annotation> {
    if v.len() > max {
        let more = v.len() - (max - 1);
        v.truncate(max - 1);
        let level = v[0].level;
        v.push(Annotation {
            level,
            title: format!("mbx: {more} more {what}"),
            message: format!(
                "{more} more {what}: see the job summary or `mbx report --record FILE`"
            ),
        });
    }
    v
}

/// The step outputs, by name: build-push-action's (`imageid`, `digest`,
/// `metadata` in buildx's `--metadata-file` shape, mbx's own figures under
/// its `mbx` key) and mbx's (`tags`, `platform-digests`,
/// `emulation-cost-seconds`).
pub fn outputs(record: &RunRecord, opts: &ReportOptions) -> BTreeMap<&'static str, String> {
    let m = emulation::model(record, opts.native.as_ref());
    let platform_digests: BTreeMap<String, Option<&String>> = record
        .platforms
        .iter()
        .map(|p| (p.platform.to_string(), p.digest.as_ref()))
        .collect();
    let mut metadata = serde_json::json!({
        "image.name": record.tags.join(","),
        "containerimage.digest": record.index_digest,
        "mbx": {
            "output": record.output,
            "verified": record.verified,
            "platforms": record.platforms.iter().map(|p| serde_json::json!({
                "platform": p.platform.to_string(),
                "emulated": p.emulated,
                "digest": p.digest,
                "config_digest": p.buildx.as_ref().and_then(|b| b.config_digest.as_ref()),
                "build_ref": p.buildx.as_ref().and_then(|b| b.build_ref.as_ref()),
                "wall_seconds": round2(p.wall_seconds),
                "executed_seconds": round2(p.executed_seconds),
                "steps_total": p.steps_total,
                "steps_cached": p.steps_cached,
                "cache_scope": p.cache_scope,
                "error": p.error,
            })).collect::<Vec<_>>(),
            "emulation": {
                "native": m.native.as_ref().map(ToString::to_string),
                "cost_seconds": m.cost_seconds.map(round2),
                "share": m.share.map(|s| (s * 1000.0).round() / 1000.0),
            },
            "wall_seconds": round2(record.wall_seconds),
        },
    });
    if let (Some(d), Some(desc)) = (&record.index_digest, &record.index_descriptor) {
        metadata["containerimage.descriptor"] = serde_json::json!({
            "mediaType": desc.media_type,
            "digest": d,
            "size": desc.size,
        });
    }
    // buildx names one build; mbx made one per platform: the first's.
    let builds = record.platforms.iter().filter_map(|p| p.buildx.as_ref());
    if let Some(r) = builds.clone().find_map(|b| b.build_ref.clone()) {
        metadata["buildx.build.ref"] = serde_json::json!(r);
    }
    // As buildx: a config digest only where the result is one image.
    if let [p] = record.platforms.as_slice() {
        if let Some(c) = p.buildx.as_ref().and_then(|b| b.config_digest.as_ref()) {
            metadata["containerimage.config.digest"] = serde_json::json!(c);
        }
    }
    let digest = record.index_digest.clone().unwrap_or_default();
    let mut o = BTreeMap::new();
    // An index's ID is its digest, as in buildx's --iidfile for a
    // multi-platform (or attested) build; README: "imageid".
    o.insert("imageid", digest.clone());
    o.insert("digest", digest);
    o.insert("tags", record.tags.join("\n"));
    o.insert("metadata", metadata.to_string());
    o.insert(
        "platform-digests",
        serde_json::to_string(&platform_digests).expect("json"),
    );
    // Empty when there was nothing to compare: never a made-up 0.
    o.insert(
        "emulation-cost-seconds",
        m.cost_seconds.map_or(String::new(), |c| format!("{c:.2}")),
    );
    o
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A delimiter for the heredoc form that appears in no value.
fn delimiter(values: &[&str]) -> String {
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let d = format!("ghadelimiter_{:016x}", h.finish());
        if values.iter().all(|v| !v.contains(&d)) {
            return d;
        }
    }
}

/// `name<<DELIM\nvalue\nDELIM\n` for every output (safe for any value).
pub fn format_outputs(outputs: &BTreeMap<&'static str, String>) -> String {
    let values: Vec<&str> = outputs.values().map(String::as_str).collect();
    let d = delimiter(&values);
    let mut s = String::new();
    for (k, v) in outputs {
        s.push_str(&format!("{k}<<{d}\n{v}\n{d}\n"));
    }
    s
}

/// Append `text` to a file GitHub gave us (`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`).
pub fn append(path: &Path, text: &str, what: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            Error::env(
                format!("cannot open {what} {}: {e}", path.display()),
                format!("{what} must name a writable file"),
            )
        })?;
    f.write_all(text.as_bytes()).map_err(|e| {
        Error::env(
            format!("cannot write {what} {}: {e}", path.display()),
            "check the disk",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Check, PlatformRecord};

    #[test]
    fn annotations_escape_title_and_message() {
        let a = Annotation {
            level: Level::Error,
            title: "mbx: check failed: platform linux/arm64, x".into(),
            message: "missing\nsecond line: ok".into(),
        };
        assert_eq!(
            a.to_string(),
            "::error title=mbx%3A check failed%3A platform linux/arm64%2C x::missing%0Asecond line: ok"
        );
    }

    #[test]
    fn at_most_ten_errors_the_last_counts_the_rest() {
        let r = RunRecord {
            checks: (0..25)
                .map(|i| Check {
                    name: format!("c{i}"),
                    passed: false,
                    detail: "bad".into(),
                })
                .collect(),
            ..RunRecord::default()
        };
        let a = annotations(&r, &ReportOptions::default());
        assert_eq!(a.len(), 10);
        assert_eq!(a[8].title, "mbx: check failed: c8");
        assert_eq!(a[9].title, "mbx: 16 more failures");
    }

    fn plat(p: &str, emulated: bool, secs: f64) -> PlatformRecord {
        let mut s: crate::run::Step = serde_json::from_value(serde_json::json!({
            "digest": "sha256:x", "name": "[1/1] RUN make", "busy_seconds": secs,
            "cached": false, "instruction": true, "started": null, "completed": null
        }))
        .unwrap();
        s.busy_seconds = secs;
        PlatformRecord {
            platform: p.parse().unwrap(),
            emulated,
            node: None,
            digest: Some(format!("sha256:{p}")),
            build_digest: None,
            wall_seconds: secs,
            executed_seconds: secs,
            steps_total: 1,
            steps_cached: 0,
            cache_scope: None,
            error: None,
            steps: vec![s],
            cache_error: None,
            buildx: None,
            runner: None,
        }
    }

    #[test]
    fn warns_over_the_threshold_only() {
        // cost 9 of 11 s = 82%.
        let r = RunRecord {
            platforms: vec![
                plat("linux/amd64", false, 1.0),
                plat("linux/arm64", true, 10.0),
            ],
            ..RunRecord::default()
        };
        let mut o = ReportOptions {
            native: None,
            emulation_warn_percent: 80.0,
        };
        let a = annotations(&r, &o);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].level, Level::Warning);
        assert!(a[0].message.contains("82%"), "{}", a[0].message);
        assert!(a[0].message.contains("10.0× slower"), "{}", a[0].message);
        o.emulation_warn_percent = 85.0;
        assert!(annotations(&r, &o).is_empty());
    }

    #[test]
    fn outputs_in_heredoc_form() {
        let r = RunRecord {
            platforms: vec![
                plat("linux/amd64", false, 1.0),
                plat("linux/arm64", true, 10.0),
            ],
            tags: vec!["r/app:1".into(), "r/app:latest".into()],
            index_digest: Some("sha256:ii".into()),
            ..RunRecord::default()
        };
        let o = outputs(&r, &ReportOptions::default());
        assert_eq!(o["emulation-cost-seconds"], "9.00");
        assert_eq!(o["tags"], "r/app:1\nr/app:latest");
        let pd: serde_json::Value = serde_json::from_str(&o["platform-digests"]).unwrap();
        assert_eq!(pd["linux/arm64"], "sha256:linux/arm64");
        let text = format_outputs(&o);
        let first = text.lines().next().unwrap();
        let (name, delim) = first.split_once("<<").unwrap();
        assert_eq!(name, "digest");
        assert!(delim.starts_with("ghadelimiter_"));
        assert!(text.contains(&format!("tags<<{delim}\nr/app:1\nr/app:latest\n{delim}\n")));
        assert_eq!(
            text.matches(delim).count(),
            12,
            "six outputs, two lines each"
        );
        assert_eq!(o["imageid"], "sha256:ii");
        let meta: serde_json::Value = serde_json::from_str(&o["metadata"]).unwrap();
        assert_eq!(meta["containerimage.digest"], "sha256:ii");
        assert_eq!(meta["image.name"], "r/app:1,r/app:latest");
        assert_eq!(meta["mbx"]["platforms"][1]["platform"], "linux/arm64");
    }

    #[test]
    fn no_cost_figure_is_an_empty_output() {
        let r = RunRecord {
            platforms: vec![plat("linux/arm64", true, 10.0)],
            ..RunRecord::default()
        };
        assert_eq!(
            outputs(&r, &ReportOptions::default())["emulation-cost-seconds"],
            ""
        );
    }
}
