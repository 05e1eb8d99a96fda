//! The emulation cost model: how much time QEMU added to a multi-platform
//! build, and which steps to blame. Pure: a run record in, figures out.
//!
//! - A platform is native on the node that built it when it is that node's
//!   worker's first platform (one-node builders: the runner's arch); the
//!   record's `emulated` flags say so, or an override replaces them. The
//!   baseline is a native build on the same node as the emulated one when
//!   there is one (a multi-node builder), else the runner's arch.
//! - Steps of a stage that runs on the build platform (`FROM
//!   --platform=$BUILDPLATFORM` and stages built on it) ran natively even in
//!   an emulated platform's build: they are not QEMU steps and count in no
//!   comparison.
//! - Steps are matched across platforms by their Dockerfile instruction
//!   (the vertex name without its `[platform n/m]` prefix; digests differ per
//!   platform). An instruction that names the platform (`RUN echo
//!   $TARGETPLATFORM` expands per platform) falls back to its position
//!   (`stage n/m` and the instruction keyword).
//! - Per matched step executed on both sides: slowdown = emulated / native,
//!   extra = emulated − native. Emulation cost = Σ extra over every emulated
//!   platform; its share = cost / Σ executed step time of all platforms.
//! - `FROM` steps (resolving and fetching the base image) run no emulated
//!   code: they count neither as executed step time nor in the cost.
//! - No native build, or no step executed on both sides: no figure, and the
//!   reason says why. A figure is never guessed.

use std::collections::HashMap;

use serde::Serialize;

use crate::platform::Platform;
use crate::run::Step;
use crate::run::{PlatformRecord, RunRecord};

/// Below this native time a ratio is noise (the step took a few ms).
const MIN_NATIVE_FOR_RATIO: f64 = 0.05;
/// Steps listed as the ones to blame.
pub const TOP_STEPS: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmulationReport {
    /// The platform emulated ones are compared with.
    pub native: Option<Platform>,
    pub platforms: Vec<PlatformCost>,
    /// Σ over emulated platforms of the measured extra time; None when no
    /// emulated platform had a step to compare.
    pub cost_seconds: Option<f64>,
    /// Σ of executed step time over every platform (the denominator of `share`).
    pub executed_seconds: f64,
    /// cost / executed_seconds, 0..=1.
    pub share: Option<f64>,
    /// The matched steps that cost the most, largest extra first.
    pub top_steps: Vec<SlowStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlatformCost {
    pub platform: Platform,
    pub emulated: bool,
    pub failed: bool,
    pub wall_seconds: f64,
    /// Time in Dockerfile steps that ran (not cached).
    pub executed_seconds: f64,
    pub steps_executed: usize,
    pub steps_cached: usize,
    /// Only for emulated platforms.
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Comparison {
    /// Steps executed on both this platform and the native one.
    Measured {
        matched_steps: usize,
        native_seconds: f64,
        emulated_seconds: f64,
        /// emulated − native over the matched steps.
        cost_seconds: f64,
        /// emulated / native; None when the native time is too small to divide by.
        slowdown: Option<f64>,
        /// Executed here but not comparable (cached or absent on the native side).
        unmatched_steps: usize,
        unmatched_seconds: f64,
    },
    /// No figure, and why.
    Unknown { reason: Unknown },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// No platform built natively (or the native build failed).
    NoNative,
    /// This platform's build failed.
    Failed,
    /// Every step of this platform came from the cache.
    AllCached,
    /// Steps ran here, but none of them ran on the native side too.
    NothingToCompare,
    /// Every step that ran here was in a build-platform stage (`FROM
    /// --platform=$BUILDPLATFORM`): native, nothing ran under emulation.
    OnlyBuildPlatform,
}

impl Unknown {
    pub fn explain(self, native: Option<&Platform>) -> String {
        match self {
            Unknown::NoNative => {
                "no native build in this run to compare with, so no emulation figure".into()
            }
            Unknown::Failed => "the build failed, so no emulation figure".into(),
            Unknown::AllCached => {
                "every step came from the cache: nothing ran under emulation in this run".into()
            }
            Unknown::NothingToCompare => format!(
                "the steps that ran here were cached or absent on {}, so no emulation figure",
                native.map_or_else(|| "the native platform".into(), ToString::to_string)
            ),
            Unknown::OnlyBuildPlatform => "every step that ran here was in a `FROM --platform=$BUILDPLATFORM` stage, which runs natively: nothing ran under emulation".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowStep {
    pub platform: Platform,
    /// The instruction as this platform ran it.
    pub instruction: String,
    pub native_seconds: f64,
    pub emulated_seconds: f64,
    pub extra_seconds: f64,
    pub slowdown: Option<f64>,
}

/// The model over a record. `native_override` replaces the record's
/// native/emulated split: a platform is native when it runs on that machine
/// without emulation.
pub fn model(record: &RunRecord, native_override: Option<&Platform>) -> EmulationReport {
    let emulated = |p: &PlatformRecord| match native_override {
        Some(host) => !p.platform.is_native_on(host),
        None => p.emulated,
    };
    // The baseline: the runner's own arch first, then any native platform.
    let candidates: Vec<&PlatformRecord> = record
        .platforms
        .iter()
        .filter(|p| !emulated(p) && p.error.is_none())
        .collect();
    let host = native_override.or(record.host_platform.as_ref());
    // A multi-node builder: the native build on the emulated one's node.
    let same_node = record
        .platforms
        .iter()
        .find(|p| emulated(p) && p.node.is_some())
        .and_then(|e| candidates.iter().find(|c| c.node == e.node));
    let baseline = same_node
        .or_else(|| {
            candidates
                .iter()
                .find(|p| host.is_some_and(|h| p.platform.arch == h.arch))
        })
        .or(candidates.first())
        .copied();
    let native_stages: &[String] = record
        .inputs
        .as_ref()
        .map_or(&[], |i| i.build_platform_stages.as_slice());

    let mut platforms = Vec::new();
    let mut top = Vec::new();
    let mut cost_total: Option<f64> = None;
    for p in &record.platforms {
        let is_emulated = emulated(p);
        let executed: Vec<&Step> = p
            .steps
            .iter()
            .filter(|s| s.instruction && !s.cached && !is_from(s))
            .collect();
        let counted = p
            .steps
            .iter()
            .filter(|s| s.instruction && !is_from(s))
            .collect::<Vec<_>>();
        let comparison = if !is_emulated {
            None
        } else if p.error.is_some() {
            Some(Comparison::Unknown {
                reason: Unknown::Failed,
            })
        } else if let Some(native) = baseline {
            Some(compare(p, native, native_stages, &mut top))
        } else {
            Some(Comparison::Unknown {
                reason: Unknown::NoNative,
            })
        };
        if let Some(Comparison::Measured { cost_seconds, .. }) = &comparison {
            cost_total = Some(cost_total.unwrap_or(0.0) + cost_seconds);
        }
        let (mut ran, mut cached) = (
            counted.iter().filter(|s| !s.cached).count(),
            counted.iter().filter(|s| s.cached).count(),
        );
        let mut executed_seconds = executed.iter().map(|s| s.busy_seconds).sum();
        // Steps left out of the record (too many to keep, or cut to fit a
        // part) still count: the record's totals are whole.
        if p.steps_total > counted.len() {
            cached = p.steps_cached;
            ran = p.steps_total.saturating_sub(cached);
            executed_seconds = p.executed_seconds;
        }
        platforms.push(PlatformCost {
            platform: p.platform.clone(),
            emulated: is_emulated,
            failed: p.error.is_some(),
            wall_seconds: p.wall_seconds,
            executed_seconds,
            steps_executed: ran,
            steps_cached: cached,
            comparison,
        });
    }
    let executed_seconds: f64 = platforms.iter().map(|p| p.executed_seconds).sum();
    top.sort_by(|a: &SlowStep, b| b.extra_seconds.total_cmp(&a.extra_seconds));
    top.retain(|s| s.extra_seconds > 0.0);
    top.truncate(TOP_STEPS);
    EmulationReport {
        native: baseline.map(|b| b.platform.clone()),
        platforms,
        share: cost_total
            .filter(|_| executed_seconds > 0.0)
            .map(|c| (c / executed_seconds).clamp(0.0, 1.0)),
        cost_seconds: cost_total,
        executed_seconds,
        top_steps: top,
    }
}

fn is_from(s: &Step) -> bool {
    s.instruction_text().starts_with("FROM ")
}

/// `[linux/arm64 builder 3/5] RUN x` → (`builder`, 3, 5, `RUN`). The platform
/// word is dropped; any other words before `n/m` name the stage.
fn position(s: &Step) -> Option<(String, u32, u32, String)> {
    let inner = s.name.strip_prefix('[')?.split_once(']')?.0;
    let mut words: Vec<&str> = inner.split(' ').collect();
    let (n, m) = words.pop()?.split_once('/')?;
    let stage: Vec<&str> = words
        .into_iter()
        .filter(|w| w.parse::<Platform>().is_err())
        .collect();
    let keyword = s
        .instruction_text()
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    Some((stage.join(" "), n.parse().ok()?, m.parse().ok()?, keyword))
}

/// Pair each instruction of `emulated` with one of `native`: the same text
/// (the k-th occurrence with the k-th), else the same position.
fn pair<'a>(emulated: &'a [Step], native: &'a [Step]) -> Vec<(&'a Step, Option<&'a Step>)> {
    let ins = |v: &'a [Step]| {
        v.iter()
            .filter(|s| s.instruction)
            .collect::<Vec<&'a Step>>()
    };
    let (e, n) = (ins(emulated), ins(native));
    let mut used = vec![false; n.len()];
    let mut by_text: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in n.iter().enumerate() {
        by_text.entry(s.instruction_text()).or_default().push(i);
    }
    let mut by_text_next: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<(&Step, Option<usize>)> = Vec::with_capacity(e.len());
    for s in &e {
        let t = s.instruction_text();
        let k = by_text_next.entry(t).or_insert(0);
        let hit = by_text.get(t).and_then(|v| v.get(*k)).copied();
        if let Some(i) = hit {
            *k += 1;
            used[i] = true;
        }
        out.push((s, hit));
    }
    // Fallback by position for the rest (instructions that name the platform).
    let mut by_pos: HashMap<(String, u32, u32, String), usize> = HashMap::new();
    for (i, s) in n.iter().enumerate() {
        if !used[i] {
            if let Some(p) = position(s) {
                by_pos.entry(p).or_insert(i);
            }
        }
    }
    out.into_iter()
        .map(|(s, hit)| {
            let hit = hit.or_else(|| {
                let i = by_pos.remove(&position(s)?)?;
                Some(i)
            });
            (s, hit.map(|i| n[i]))
        })
        .collect()
}

/// A step of a stage that runs on the build platform (natively).
fn in_build_platform_stage(s: &Step, native_stages: &[String]) -> bool {
    !native_stages.is_empty()
        && position(s).is_some_and(|(stage, ..)| native_stages.contains(&stage))
}

fn compare(
    p: &PlatformRecord,
    native: &PlatformRecord,
    native_stages: &[String],
    top: &mut Vec<SlowStep>,
) -> Comparison {
    let mut matched = 0;
    let (mut nat, mut emu, mut unmatched, mut unmatched_s) = (0.0, 0.0, 0, 0.0);
    let (mut any_executed, mut any_build_platform) = (false, false);
    for (s, n) in pair(&p.steps, &native.steps) {
        if s.cached || is_from(s) {
            continue;
        }
        if in_build_platform_stage(s, native_stages) {
            any_build_platform = true;
            continue;
        }
        any_executed = true;
        match n {
            Some(n) if !n.cached => {
                matched += 1;
                nat += n.busy_seconds;
                emu += s.busy_seconds;
                top.push(SlowStep {
                    platform: p.platform.clone(),
                    instruction: s.instruction_text().to_string(),
                    native_seconds: n.busy_seconds,
                    emulated_seconds: s.busy_seconds,
                    extra_seconds: s.busy_seconds - n.busy_seconds,
                    slowdown: ratio(s.busy_seconds, n.busy_seconds),
                });
            }
            _ => {
                unmatched += 1;
                unmatched_s += s.busy_seconds;
            }
        }
    }
    if !any_executed {
        return Comparison::Unknown {
            reason: if any_build_platform {
                Unknown::OnlyBuildPlatform
            } else {
                Unknown::AllCached
            },
        };
    }
    if matched == 0 {
        return Comparison::Unknown {
            reason: Unknown::NothingToCompare,
        };
    }
    Comparison::Measured {
        matched_steps: matched,
        native_seconds: nat,
        emulated_seconds: emu,
        cost_seconds: emu - nat,
        slowdown: ratio(emu, nat),
        unmatched_steps: unmatched,
        unmatched_seconds: unmatched_s,
    }
}

/// The stages of a Dockerfile that run on the build platform, named as
/// BuildKit names them in step names: `AS name` (lowercase), else `stage-N`
/// (and `` for the only stage of a one-stage file). A stage is one when its
/// `FROM --platform=` names `$BUILDPLATFORM` (or `$BUILDOS`/`$BUILDARCH`),
/// or when it is built `FROM` such a stage without a `--platform` of its own.
pub fn build_platform_stages(dockerfile: &str) -> Vec<String> {
    // Logical lines: `\` continuations joined, comments dropped.
    let mut lines = Vec::new();
    let mut cur = String::new();
    for raw in dockerfile.lines() {
        let t = raw.trim();
        if cur.is_empty() && t.starts_with('#') {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                lines.push(std::mem::take(&mut cur));
            }
        }
    }
    let mut stages: Vec<(String, bool)> = Vec::new();
    for l in &lines {
        let words: Vec<&str> = l.split_whitespace().collect();
        if !words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
        {
            continue;
        }
        let flag = words[1..]
            .iter()
            .find_map(|w| w.strip_prefix("--platform="));
        let base = words[1..].iter().find(|w| !w.starts_with("--"));
        let name = match words.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
            Some(i) => words.get(i + 1).map(|n| n.to_ascii_lowercase()),
            None => None,
        }
        .unwrap_or_else(|| format!("stage-{}", stages.len()));
        let native = match flag {
            Some(f) => ["BUILDPLATFORM", "BUILDOS", "BUILDARCH"]
                .iter()
                .any(|v| f.contains(v)),
            None => base.is_some_and(|b| {
                let b = b.to_ascii_lowercase();
                stages.iter().any(|(n, native)| *native && *n == b)
            }),
        };
        stages.push((name, native));
    }
    let only = stages.len() == 1;
    let mut out = Vec::new();
    for (i, (name, native)) in stages.iter().enumerate() {
        if *native {
            out.push(name.clone());
            if only && *name == format!("stage-{i}") {
                out.push(String::new());
            }
        }
    }
    out
}

/// `8.0× slower`, or `2.0× faster` when the "emulated" side won (a
/// `--native-platform` that is not the runner's).
pub fn pace(slowdown: f64) -> String {
    if slowdown >= 1.0 || slowdown <= 0.0 {
        format!("{slowdown:.1}× slower")
    } else {
        format!("{:.1}× faster", 1.0 / slowdown)
    }
}

/// `+12.2s` / `−3.0s`.
pub fn signed_secs(s: f64) -> String {
    if s < 0.0 {
        format!("−{}", crate::report::secs(-s))
    } else {
        format!("+{}", crate::report::secs(s))
    }
}

fn ratio(emulated: f64, native: f64) -> Option<f64> {
    (native >= MIN_NATIVE_FOR_RATIO).then(|| emulated / native)
}

/// What to do about a step that ran slowly under emulation.
pub fn advice(step: &SlowStep) -> String {
    let t = step.instruction.to_ascii_lowercase();
    let compiles = [
        "go build", "cargo", "gcc", "g++", "clang", "make", "cmake", "npm", "yarn", "pnpm", "mvn",
        "gradle", "dotnet", "pip", "rustc",
    ]
    .iter()
    .any(|w| t.contains(w));
    let runner = match step.platform.arch.as_str() {
        "arm64" | "arm" => {
            "run it on a native arm64 runner (`ubuntu-24.04-arm`) with mbx's multi-runner mode"
        }
        _ => "run it on a native runner for that platform with mbx's multi-runner mode",
    };
    if compiles {
        format!("cross-compile it in a stage `FROM --platform=$BUILDPLATFORM` and copy the result, or {runner}")
    } else {
        format!("cache it (it ran uncached here), move it to a `FROM --platform=$BUILDPLATFORM` stage if its output does not depend on the CPU, or {runner}")
    }
}

/// The general advice under the emulation figure.
pub const ADVICE: &[&str] = &[
    "Cross-compile: run compilers in a stage `FROM --platform=$BUILDPLATFORM` (native speed) and copy the binaries into the target stage (`ARG TARGETARCH`).",
    "Use a native arm64 runner (`runs-on: ubuntu-24.04-arm`) through mbx's multi-runner mode: each platform builds on its own arch, no QEMU.",
    "Keep the cache warm: a cached step costs no emulation (mbx gives every platform its own cache scope).",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn step(platform: &str, pos: &str, text: &str, secs: f64, cached: bool) -> Step {
        Step {
            digest: format!("sha256:{platform}{pos}"),
            name: if platform.is_empty() {
                format!("[{pos}] {text}")
            } else {
                format!("[{platform} {pos}] {text}")
            },
            started: None,
            completed: None,
            busy_seconds: secs,
            cached,
            error: None,
            instruction: true,
            log_tail: vec![],
        }
    }

    fn internal(secs: f64) -> Step {
        Step {
            digest: "sha256:internal".into(),
            name: "[internal] load build definition from Dockerfile".into(),
            started: None,
            completed: None,
            busy_seconds: secs,
            cached: false,
            error: None,
            instruction: false,
            log_tail: vec![],
        }
    }

    fn plat(p: &str, emulated: bool, wall: f64, steps: Vec<Step>) -> PlatformRecord {
        PlatformRecord {
            platform: p.parse().unwrap(),
            emulated,
            node: None,
            digest: None,
            build_digest: None,
            wall_seconds: wall,
            executed_seconds: 0.0,
            steps_total: 0,
            steps_cached: 0,
            cache_scope: None,
            error: None,
            steps,
            cache_error: None,
            buildx: None,
            runner: None,
        }
    }

    fn record(platforms: Vec<PlatformRecord>) -> RunRecord {
        RunRecord {
            host_platform: Some("linux/amd64".parse().unwrap()),
            platforms,
            ..RunRecord::default()
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    fn measured(c: &Option<Comparison>) -> (usize, f64, f64, f64, Option<f64>, usize, f64) {
        match c {
            Some(Comparison::Measured {
                matched_steps,
                native_seconds,
                emulated_seconds,
                cost_seconds,
                slowdown,
                unmatched_steps,
                unmatched_seconds,
            }) => (
                *matched_steps,
                *native_seconds,
                *emulated_seconds,
                *cost_seconds,
                *slowdown,
                *unmatched_steps,
                *unmatched_seconds,
            ),
            other => panic!("not measured: {other:?}"),
        }
    }

    #[test]
    fn two_platforms_every_step_run() {
        // amd64: 1 + 2 + 3 = 6 s; arm64: 8 + 16 + 24 = 48 s → cost 42, 8×.
        let r = record(vec![
            plat(
                "linux/amd64",
                false,
                7.0,
                vec![
                    internal(0.5),
                    step("linux/amd64", "1/4", "FROM base", 0.0, true),
                    step("linux/amd64", "2/4", "RUN a", 1.0, false),
                    step("linux/amd64", "3/4", "RUN b", 2.0, false),
                    step("linux/amd64", "4/4", "RUN c", 3.0, false),
                ],
            ),
            plat(
                "linux/arm64",
                true,
                50.0,
                vec![
                    internal(0.5),
                    step("linux/arm64", "1/4", "FROM base", 0.0, true),
                    step("linux/arm64", "2/4", "RUN a", 8.0, false),
                    step("linux/arm64", "3/4", "RUN b", 16.0, false),
                    step("linux/arm64", "4/4", "RUN c", 24.0, false),
                ],
            ),
        ]);
        let m = model(&r, None);
        assert_eq!(m.native, Some("linux/amd64".parse().unwrap()));
        let (n, nat, emu, cost, slow, un, _) = measured(&m.platforms[1].comparison);
        assert_eq!((n, un), (3, 0));
        close(nat, 6.0);
        close(emu, 48.0);
        close(cost, 42.0);
        close(slow.unwrap(), 8.0);
        close(m.cost_seconds.unwrap(), 42.0);
        close(m.executed_seconds, 54.0);
        close(m.share.unwrap(), 42.0 / 54.0);
        assert_eq!(m.platforms[0].comparison, None, "native has no comparison");
        assert_eq!(
            (m.platforms[1].steps_executed, m.platforms[1].steps_cached),
            (3, 0)
        );
        // Largest extra first: RUN c (21), RUN b (14), RUN a (7).
        let top: Vec<(&str, f64)> = m
            .top_steps
            .iter()
            .map(|s| (s.instruction.as_str(), s.extra_seconds))
            .collect();
        assert_eq!(top, vec![("RUN c", 21.0), ("RUN b", 14.0), ("RUN a", 7.0)]);
        close(m.top_steps[0].slowdown.unwrap(), 8.0);
    }

    #[test]
    fn cached_steps_are_left_out_on_either_side() {
        // RUN a cached on arm64 → not counted. RUN b cached on amd64 → ran on
        // arm64 but has no native time: unmatched. Only RUN c compares: 2 vs 10.
        let r = record(vec![
            plat(
                "linux/amd64",
                false,
                3.0,
                vec![
                    step("", "1/3", "RUN a", 1.0, false),
                    step("", "2/3", "RUN b", 0.0, true),
                    step("", "3/3", "RUN c", 2.0, false),
                ],
            ),
            plat(
                "linux/arm64",
                true,
                20.0,
                vec![
                    step("", "1/3", "RUN a", 0.0, true),
                    step("", "2/3", "RUN b", 7.0, false),
                    step("", "3/3", "RUN c", 10.0, false),
                ],
            ),
        ]);
        let m = model(&r, None);
        let (n, nat, emu, cost, slow, un, un_s) = measured(&m.platforms[1].comparison);
        assert_eq!((n, un), (1, 1));
        close(nat, 2.0);
        close(emu, 10.0);
        close(cost, 8.0);
        close(slow.unwrap(), 5.0);
        close(un_s, 7.0);
        // executed: amd64 1 + 2 = 3, arm64 7 + 10 = 17.
        close(m.executed_seconds, 20.0);
        close(m.share.unwrap(), 8.0 / 20.0);
        assert_eq!(
            (m.platforms[1].steps_executed, m.platforms[1].steps_cached),
            (2, 1)
        );
    }

    #[test]
    fn all_cached_gives_no_figure() {
        let r = record(vec![
            plat(
                "linux/amd64",
                false,
                1.0,
                vec![step("", "1/1", "RUN a", 0.0, true)],
            ),
            plat(
                "linux/arm64",
                true,
                1.0,
                vec![step("", "1/1", "RUN a", 0.0, true)],
            ),
        ]);
        let m = model(&r, None);
        assert_eq!(
            m.platforms[1].comparison,
            Some(Comparison::Unknown {
                reason: Unknown::AllCached
            })
        );
        assert_eq!(m.cost_seconds, None);
        assert_eq!(m.share, None);
        assert!(m.top_steps.is_empty());
    }

    #[test]
    fn no_native_build_gives_no_figure() {
        let r = record(vec![plat(
            "linux/arm64",
            true,
            10.0,
            vec![step("", "1/1", "RUN a", 9.0, false)],
        )]);
        let m = model(&r, None);
        assert_eq!(m.native, None);
        assert_eq!(
            m.platforms[0].comparison,
            Some(Comparison::Unknown {
                reason: Unknown::NoNative
            })
        );
        assert_eq!(m.cost_seconds, None);
        assert!(Unknown::NoNative.explain(None).contains("no native build"));
    }

    #[test]
    fn a_step_missing_on_the_native_platform_is_unmatched() {
        // arm64 has an extra `RUN fix-arm` (e.g. an arch-specific stage).
        let r = record(vec![
            plat(
                "linux/amd64",
                false,
                3.0,
                vec![
                    step("", "1/2", "RUN a", 1.0, false),
                    step("", "2/2", "RUN b", 2.0, false),
                ],
            ),
            plat(
                "linux/arm64",
                true,
                20.0,
                vec![
                    step("", "1/3", "RUN a", 4.0, false),
                    step("", "2/3", "RUN fix-arm", 5.0, false),
                    step("", "3/3", "RUN b", 6.0, false),
                ],
            ),
        ]);
        let m = model(&r, None);
        let (n, nat, emu, cost, slow, un, un_s) = measured(&m.platforms[1].comparison);
        assert_eq!((n, un), (2, 1));
        close(nat, 3.0);
        close(emu, 10.0);
        close(cost, 7.0);
        close(slow.unwrap(), 10.0 / 3.0);
        close(un_s, 5.0);
    }

    #[test]
    fn three_platforms_sum_their_costs() {
        // amd64 native 2 s; arm64 12 s (cost 10); arm/v7 22 s (cost 20).
        let mk = |p: &str, emu: bool, a: f64, b: f64| {
            plat(
                p,
                emu,
                a + b,
                vec![
                    step(p, "1/2", "RUN a", a, false),
                    step(p, "2/2", "RUN b", b, false),
                ],
            )
        };
        let r = record(vec![
            mk("linux/amd64", false, 0.5, 1.5),
            mk("linux/arm64", true, 4.0, 8.0),
            mk("linux/arm/v7", true, 2.0, 20.0),
        ]);
        let m = model(&r, None);
        close(measured(&m.platforms[1].comparison).3, 10.0);
        close(measured(&m.platforms[2].comparison).3, 20.0);
        close(m.cost_seconds.unwrap(), 30.0);
        close(m.executed_seconds, 2.0 + 12.0 + 22.0);
        close(m.share.unwrap(), 30.0 / 36.0);
        // Top: arm/v7 RUN b (18.5), arm64 RUN b (6.5), arm64 RUN a (3.5), arm/v7 RUN a (1.5).
        let top: Vec<(String, f64)> = m
            .top_steps
            .iter()
            .map(|s| (format!("{} {}", s.platform, s.instruction), s.extra_seconds))
            .collect();
        assert_eq!(
            top,
            vec![
                ("linux/arm/v7 RUN b".to_string(), 18.5),
                ("linux/arm64 RUN b".to_string(), 6.5),
                ("linux/arm64 RUN a".to_string(), 3.5),
                ("linux/arm/v7 RUN a".to_string(), 1.5),
            ]
        );
    }

    #[test]
    fn instructions_that_name_the_platform_match_by_position() {
        // BuildKit expands $TARGETPLATFORM in the vertex name.
        let r = record(vec![
            plat(
                "linux/amd64",
                false,
                1.0,
                vec![step("", "2/3", "RUN echo linux/amd64", 0.5, false)],
            ),
            plat(
                "linux/arm64",
                true,
                3.0,
                vec![step("", "2/3", "RUN echo linux/arm64", 2.0, false)],
            ),
        ]);
        let m = model(&r, None);
        let (n, _, _, cost, _, un, _) = measured(&m.platforms[1].comparison);
        assert_eq!((n, un), (1, 0));
        close(cost, 1.5);
    }

    #[test]
    fn repeated_instructions_pair_in_order() {
        let r = record(vec![
            plat(
                "linux/amd64",
                false,
                1.0,
                vec![
                    step("", "builder 2/3", "RUN make", 1.0, false),
                    step("", "stage-1 2/3", "RUN make", 2.0, false),
                ],
            ),
            plat(
                "linux/arm64",
                true,
                3.0,
                vec![
                    step("", "builder 2/3", "RUN make", 5.0, false),
                    step("", "stage-1 2/3", "RUN make", 7.0, false),
                ],
            ),
        ]);
        let m = model(&r, None);
        let top: Vec<(f64, f64)> = m
            .top_steps
            .iter()
            .map(|s| (s.native_seconds, s.emulated_seconds))
            .collect();
        assert_eq!(top, vec![(2.0, 7.0), (1.0, 5.0)]);
    }

    #[test]
    fn override_makes_arm64_the_native_platform() {
        let r = record(vec![
            plat(
                "linux/amd64",
                false,
                1.0,
                vec![step("", "1/1", "RUN a", 10.0, false)],
            ),
            plat(
                "linux/arm64",
                true,
                3.0,
                vec![step("", "1/1", "RUN a", 1.0, false)],
            ),
        ]);
        let arm: Platform = "linux/arm64".parse().unwrap();
        let m = model(&r, Some(&arm));
        assert_eq!(m.native, Some(arm));
        assert!(m.platforms[0].emulated && !m.platforms[1].emulated);
        close(m.cost_seconds.unwrap(), 9.0);
    }

    #[test]
    fn failed_emulated_build_gives_no_figure() {
        let mut arm = plat(
            "linux/arm64",
            true,
            3.0,
            vec![step("", "1/1", "RUN a", 1.0, false)],
        );
        arm.error = Some("step failed".into());
        let r = record(vec![
            plat(
                "linux/amd64",
                false,
                1.0,
                vec![step("", "1/1", "RUN a", 0.5, false)],
            ),
            arm,
        ]);
        let m = model(&r, None);
        assert_eq!(m.cost_seconds, None);
        assert_eq!(
            m.platforms[1].comparison,
            Some(Comparison::Unknown {
                reason: Unknown::Failed
            })
        );
    }

    #[test]
    fn pace_and_sign_read_both_ways() {
        assert_eq!(pace(8.0), "8.0× slower");
        assert_eq!(pace(0.5), "2.0× faster");
        assert_eq!(signed_secs(12.25), "+12.2s");
        assert_eq!(signed_secs(-3.0), "−3.0s");
    }

    #[test]
    fn advice_names_cross_compilation_for_compilers() {
        let s = SlowStep {
            platform: "linux/arm64".parse().unwrap(),
            instruction: "RUN cargo build --release".into(),
            native_seconds: 10.0,
            emulated_seconds: 100.0,
            extra_seconds: 90.0,
            slowdown: Some(10.0),
        };
        let a = advice(&s);
        assert!(a.contains("FROM --platform=$BUILDPLATFORM"), "{a}");
        assert!(a.contains("ubuntu-24.04-arm"), "{a}");
    }

    #[test]
    fn build_platform_stages_are_found() {
        let df = "# syntax\nFROM --platform=$BUILDPLATFORM golang:1 AS Build\nRUN go build\n\
FROM build AS test\nFROM --platform=${BUILDOS}/${BUILDARCH} alpine\nFROM alpine\n\
COPY --from=build /x /x\nFROM \\\n  --platform=$TARGETPLATFORM alpine AS last\n";
        assert_eq!(
            build_platform_stages(df),
            vec!["build".to_string(), "test".into(), "stage-2".into()]
        );
        // One stage: BuildKit names its steps `[1/2]`, without a stage word.
        assert_eq!(
            build_platform_stages("FROM --platform=$BUILDPLATFORM alpine\nRUN x\n"),
            vec!["stage-0".to_string(), String::new()]
        );
        assert!(build_platform_stages("FROM alpine\nRUN x\n").is_empty());
    }

    /// The build `mbx ci` records for a Dockerfile whose compiler stage is
    /// `FROM --platform=$BUILDPLATFORM` (single-platform builds: no platform
    /// word in the step names). Its `build` steps ran natively in the arm64
    /// build too: no QEMU figure may come out of them.
    #[test]
    fn build_platform_steps_are_not_qemu_steps() {
        let steps = |run: f64, copy: f64| {
            vec![
                step("", "build 1/2", "FROM golang", 0.0, true),
                step("", "build 2/2", "RUN go build -o /app", run, false),
                step(
                    "",
                    "stage-1 2/2",
                    "COPY --from=build /app /app",
                    copy,
                    false,
                ),
            ]
        };
        let mut r = record(vec![
            plat("linux/amd64", false, 10.0, steps(9.0, 0.2)),
            plat("linux/arm64", true, 10.0, steps(9.1, 0.2)),
        ]);
        r.inputs = Some(crate::run::BuildInputs {
            build_platform_stages: vec!["build".into()],
            ..Default::default()
        });
        let m = model(&r, None);
        // Only the COPY ran in the arm64 stage; the compile is left out.
        let (n, nat, emu, ..) = measured(&m.platforms[1].comparison);
        assert_eq!(n, 1);
        close(nat, 0.2);
        close(emu, 0.2);
        assert!(m
            .top_steps
            .iter()
            .all(|s| !s.instruction.contains("go build")));
        // Everything that ran was in the build stage: no figure at all.
        let mut r2 = r.clone();
        for p in &mut r2.platforms {
            p.steps[2].cached = true;
        }
        let m2 = model(&r2, None);
        assert_eq!(
            m2.platforms[1].comparison,
            Some(Comparison::Unknown {
                reason: Unknown::OnlyBuildPlatform
            })
        );
        assert_eq!(m2.cost_seconds, None);
    }

    /// A two-node builder: each platform on the node that runs it natively.
    #[test]
    fn every_platform_native_on_its_node_claims_no_cost() {
        let mut a = plat(
            "linux/amd64",
            false,
            5.0,
            vec![step("", "1/2", "RUN a", 1.0, false)],
        );
        let mut b = plat(
            "linux/arm64",
            false,
            5.0,
            vec![step("", "1/2", "RUN a", 3.0, false)],
        );
        a.node = Some("b0".into());
        b.node = Some("b1".into());
        let m = model(&record(vec![a, b]), None);
        assert_eq!(m.cost_seconds, None);
        assert!(m
            .platforms
            .iter()
            .all(|p| !p.emulated && p.comparison.is_none()));
    }

    /// An emulated platform on a node is compared with that node's native build.
    #[test]
    fn baseline_is_the_native_build_on_the_same_node() {
        let run = |_: &str, secs: f64| vec![step("", "1/2", "RUN a", secs, false)];
        let mut a = plat("linux/amd64", false, 5.0, run("", 1.0));
        let mut b = plat("linux/arm64", false, 5.0, run("", 2.0));
        let mut c = plat("linux/arm/v7", true, 5.0, run("", 6.0));
        a.node = Some("b0".into());
        b.node = Some("b1".into());
        c.node = Some("b1".into());
        let m = model(&record(vec![a, b, c]), None);
        assert_eq!(m.native, Some("linux/arm64".parse().unwrap()));
        close(m.cost_seconds.unwrap(), 4.0);
    }
}
