//! Every platform in one `docker buildx bake`: one target per platform, each
//! with the arguments its own `docker buildx build` would get (its platform,
//! cache scope, output), so each keeps its own cache, steps, timings and
//! digest. In one bake, buildx ≥ 0.17 gives the targets that share a local
//! context one session (`local-sessionid:context`), BuildKit then sees one
//! context source and transfers it once; separate `buildx build` processes
//! each send the whole context (BuildKit reuses an earlier transfer only once
//! the build holding it has ended).
//!
//! Bake stops every target when one fails: a target that did not fail itself
//! is handed back to be built on its own (its finished steps come from the
//! builder's cache), so a failure is still reported for its platform alone.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::progress::{Framer, Item, Progress};
use super::{build_args, finish_record, Target, Targets};
use crate::docker::process::StallWatch;
use crate::docker::{BuildOutcome, Buildx};
use crate::plan::cache::{self, CacheArgs};
use crate::plan::{BuildPlan, Plan};
use crate::platform::Platform;
use crate::printer::Printer;
use crate::run::PlatformRecord;

/// buildx gives the targets of one bake a shared session from this version on.
const SHARED_SESSION_BUILDX: (u64, u64) = (0, 17);

/// `MBX_BUILD_SCHEDULE=separate` keeps one `buildx build` per platform.
fn wanted() -> bool {
    std::env::var("MBX_BUILD_SCHEDULE").map_or(true, |v| v != "separate")
}

/// `v0.29.1`, `0.17.0+ds1` → (0, 29), (0, 17).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let v = version.trim().trim_start_matches('v');
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The platforms built by one bake, and those left to build one by one.
pub(super) fn bake_all(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    targets: &Targets,
) -> (Vec<PlatformRecord>, Vec<Platform>) {
    let all = plan.platforms.clone();
    if !wanted() || all.len() < 2 || build.max_parallel < all.len() {
        return (Vec::new(), all);
    }
    let version = buildx.version().ok();
    if version.as_deref().and_then(major_minor) < Some(SHARED_SESSION_BUILDX) {
        tracing::debug!(
            ?version,
            "buildx shares no session between bake targets: one build per platform"
        );
        return (Vec::new(), all);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut jobs = Vec::new();
    let mut definition = Map::new();
    for platform in &all {
        let part = targets.parts_root.map(|r| r.join(platform.slug()));
        let cache = cache::args(&build.cache, platform);
        let metadata = targets.work.join("unused.json");
        let mut args = build_args(
            plan,
            build,
            platform,
            &metadata,
            part.as_deref(),
            &cache.args,
            targets.staging,
        );
        super::output::extend_args(&mut args, plan, build, platform, targets.work);
        let Some(target) = bake_target(&args, &cwd) else {
            tracing::debug!("a build argument has no bake equivalent here: one build per platform");
            return (Vec::new(), all);
        };
        let name = target_name(platform);
        definition.insert(name.clone(), target);
        jobs.push(Job {
            platform: platform.clone(),
            emulated: plan.emulated(platform),
            part,
            cache,
            name,
        });
    }
    let def = serde_json::to_vec(&json!({ "target": definition })).expect("json");
    run(plan, build, buildx, printer, targets, &jobs, def)
}

/// One platform's target in the bake.
struct Job {
    platform: Platform,
    emulated: bool,
    part: Option<PathBuf>,
    cache: CacheArgs,
    name: String,
}

/// `mbx-linux-arm64-v8`: bake target names allow `[a-zA-Z0-9_-]`.
fn target_name(platform: &Platform) -> String {
    format!("mbx-{}", platform.slug())
}

fn run(
    plan: &Plan,
    build: &BuildPlan,
    buildx: &Buildx,
    printer: &Printer,
    targets: &Targets,
    jobs: &[Job],
    definition: Vec<u8>,
) -> (Vec<PlatformRecord>, Vec<Platform>) {
    for j in jobs {
        printer.status(&format!(
            "building {} ({})",
            j.platform,
            if j.emulated { "emulated" } else { "native" }
        ));
    }
    let metadata = targets.work.join("bake.metadata.json");
    let mut args: Vec<OsString> = vec![
        "--builder".into(),
        plan.builder.name.clone().into(),
        "--progress=rawjson".into(),
        "--metadata-file".into(),
        metadata.clone().into(),
        "--file".into(),
        "-".into(),
    ];
    args.extend(jobs.iter().map(|j| OsString::from(&j.name)));
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    let mut demux = Demux::new(names);
    let started = Instant::now();
    // A push that stands still stops the bake; its platforms are then built
    // one by one, each under its own watch (see `build_one`).
    let watch = matches!(build.output, crate::plan::Output::Registry { .. })
        .then(|| StallWatch::start(metadata.display().to_string(), super::push_stall()));
    let outcome = buildx.bake(
        args,
        definition,
        &metadata,
        build.redactions.values(),
        &mut |chunk| {
            let touched = demux.feed(chunk);
            // The push counts as begun once every target exports: before
            // that, one platform's long quiet step is no stall.
            if let Some(w) = &watch {
                w.saw(if demux.all_exporting() {
                    b"exporting to image"
                } else {
                    b""
                });
            }
            for i in touched {
                let j = &jobs[i];
                let d = &demux.targets[i];
                if d.exported && !d.announced {
                    printer.status(&format!("built {} in {:.1}s", j.platform, d.wall(started)));
                }
                printer.progress(&j.platform, &d.progress.snapshot());
            }
            demux.mark_announced();
        },
    );
    if watch.and_then(StallWatch::stop).is_some() && !crate::interrupt::interrupted() {
        printer.status("the push stalled: building each platform on its own");
        return (
            Vec::new(),
            jobs.iter().map(|j| j.platform.clone()).collect(),
        );
    }
    demux.finish();
    records(build, printer, targets, jobs, &demux, outcome, started)
}

/// Each platform's record from the bake's outcome, or the platform handed
/// back to be built on its own.
fn records(
    build: &BuildPlan,
    printer: &Printer,
    targets: &Targets,
    jobs: &[Job],
    demux: &Demux,
    outcome: crate::error::Result<BuildOutcome>,
    started: Instant,
) -> (Vec<PlatformRecord>, Vec<Platform>) {
    let mut records = Vec::new();
    let mut rest = Vec::new();
    let outcome = match outcome {
        Ok(o) => o,
        // bake could not even start: build each platform on its own (the
        // same error comes back there, per platform).
        Err(_) => {
            return (
                Vec::new(),
                jobs.iter().map(|j| j.platform.clone()).collect(),
            )
        }
    };
    let failed = demux.failed_targets();
    let interrupted = crate::interrupt::interrupted();
    if !outcome.success && !interrupted && failed.is_empty() {
        tracing::debug!("bake failed with no target to blame: one build per platform");
        return (
            Vec::new(),
            jobs.iter().map(|j| j.platform.clone()).collect(),
        );
    }
    for (i, j) in jobs.iter().enumerate() {
        let d = &demux.targets[i];
        let mine = BuildOutcome {
            success: outcome.success || (interrupted && d.digest.is_some() && d.exported),
            status: outcome.status,
            command: outcome.command.clone(),
            metadata: target_metadata(&outcome, &j.name, d),
            stdout_tail: outcome.stdout_tail.clone(),
        };
        let own_failure = failed.contains(&i);
        if outcome.success || interrupted || own_failure {
            let target = Target {
                platform: &j.platform,
                emulated: j.emulated,
                part: j.part.as_deref(),
                staging: targets.staging,
            };
            let mine = Ok(mine);
            super::log::print(printer, &j.platform, &d.progress, &build.redactions, &mine);
            let rec = finish_record(
                build,
                &target,
                &j.cache,
                mine,
                &d.progress,
                (d.wall(started), None),
            );
            match &rec.error {
                Some(e) => printer.status(&format!(
                    "{} failed after {:.1}s: {}",
                    j.platform,
                    rec.wall_seconds,
                    e.lines().next().unwrap_or(e)
                )),
                None if !d.announced => {
                    printer.status(&format!("built {} in {:.1}s", j.platform, rec.wall_seconds))
                }
                None => {}
            }
            records.push(rec);
        } else {
            printer.status(&format!(
                "{}: stopped by another platform's failure; building it on its own",
                j.platform
            ));
            rest.push(j.platform.clone());
        }
    }
    (records, rest)
}

/// A target's entry of bake's metadata file; after an interrupt (no file)
/// the digest its export announced.
fn target_metadata(outcome: &BuildOutcome, name: &str, d: &TargetState) -> Option<Value> {
    if let Some(m) = outcome.metadata.as_ref().and_then(|m| m.get(name)) {
        return Some(m.clone());
    }
    d.digest
        .as_ref()
        .filter(|_| d.exported)
        .map(|digest| json!({ "containerimage.digest": digest }))
}

/// HCL reads strings of a JSON definition as templates: `${` and `%{` are
/// written doubled to mean themselves.
fn literal(s: &str) -> Value {
    Value::String(s.replace("${", "$${").replace("%{", "%%{"))
}

fn absolute(p: &str, cwd: &Path) -> String {
    cwd.join(p).display().to_string()
}

/// The bake target for one platform's `docker buildx build` arguments; None
/// when an argument has no equivalent here (then the platforms are built
/// one by one, as before).
fn bake_target(args: &[OsString], cwd: &Path) -> Option<Value> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<_>>()?;
    let mut t = Map::new();
    let list = |t: &mut Map<String, Value>, k: &str, v: Value| {
        t.entry(k.to_string())
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("array")
            .push(v)
    };
    let map = |t: &mut Map<String, Value>, k: &str, kv: &str| {
        let (key, value) = match kv.split_once('=') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            // `--build-arg KEY`: the variable's value, as buildx takes it.
            None => (kv.to_string(), std::env::var(kv).ok()?),
        };
        t.entry(k.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("object")
            .insert(key, literal(&value));
        Some(())
    };
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let Some(flag) = a.strip_prefix("--") else {
            positional.push(a.clone());
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        match name {
            "no-cache" => {
                t.insert("no-cache".into(), json!(true));
                continue;
            }
            "pull" => {
                t.insert("pull".into(), json!(true));
                continue;
            }
            _ => {}
        }
        let value = match value {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i - 1)?.clone()
            }
        };
        match name {
            // Global to the bake, or this module's own.
            "builder" | "progress" | "metadata-file" => {}
            "platform" => list(&mut t, "platforms", literal(&value)),
            "file" => {
                t.insert("dockerfile".into(), literal(&absolute(&value, cwd)));
            }
            "target" => {
                t.insert("target".into(), literal(&value));
            }
            "build-arg" => map(&mut t, "args", &value)?,
            "label" => map(&mut t, "labels", &value)?,
            "provenance" => list(&mut t, "attest", literal(&attest("provenance", &value))),
            "sbom" => list(&mut t, "attest", literal(&attest("sbom", &value))),
            "annotation" => list(&mut t, "annotations", literal(&value)),
            "secret" => list(&mut t, "secret", literal(&value)),
            "output" => list(&mut t, "output", literal(&value)),
            "cache-from" => list(&mut t, "cache-from", literal(&value)),
            "cache-to" => list(&mut t, "cache-to", literal(&value)),
            "tag" => list(&mut t, "tags", literal(&value)),
            _ => return None,
        }
    }
    let [context] = positional.as_slice() else {
        return None;
    };
    t.insert("context".into(), literal(&absolute(context, cwd)));
    Some(Value::Object(t))
}

/// `--provenance`/`--sbom` as a bake `attest` entry, as buildx converts them.
fn attest(kind: &str, value: &str) -> String {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => format!("type={kind},disabled=false"),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => format!("type={kind},disabled=true"),
        v => format!("type={kind},{v}"),
    }
}

/// Vertices whose targets the demux remembers (to route their logs); a
/// bake has hundreds. Past this, a new vertex's logs go nowhere (its steps
/// still count, by name); digests are cut to a real one's length.
const MAX_OWNED: usize = 20_000;

fn owned_key(digest: &str) -> String {
    let mut end = digest.len().min(128);
    while !digest.is_char_boundary(end) {
        end -= 1;
    }
    digest[..end].to_string()
}

/// One target's share of the bake's progress.
#[derive(Default)]
struct TargetState {
    progress: Progress,
    /// When its last update came (its end, once the bake has moved on).
    last: Option<Instant>,
    /// Its image export finished.
    exported: bool,
    announced: bool,
    /// The digest its export announced (`exporting manifest list sha256:…`,
    /// else `exporting manifest sha256:…`).
    digest: Option<String>,
    list_digest: bool,
    /// It failed with an error of its own (not a cancellation).
    own_error: bool,
}

impl TargetState {
    fn wall(&self, started: Instant) -> f64 {
        self.last.map_or(0.0, |l| (l - started).as_secs_f64())
    }
}

/// Splits bake's one rawjson stream into one stream per target. Vertex
/// names carry the target (`[mbx-linux-arm64 2/3] RUN …`, `[mbx-linux-arm64]
/// exporting to image`), which is stripped; statuses and logs carry only
/// the vertex digest, and go to every target whose vertex that is (a vertex
/// two targets share, like the context transfer, counts for both, as when
/// BuildKit shares it between separate builds).
struct Demux {
    names: Vec<String>,
    targets: Vec<TargetState>,
    owners: HashMap<String, Vec<usize>>,
    /// Export vertices: digest → target.
    exports: HashMap<String, usize>,
    framer: Framer,
    /// Targets named by bake's final `ERROR: target NAME: …`.
    blamed: Vec<usize>,
}

impl Demux {
    fn new(names: Vec<String>) -> Demux {
        let targets = names.iter().map(|_| TargetState::default()).collect();
        Demux {
            names,
            targets,
            owners: HashMap::new(),
            exports: HashMap::new(),
            framer: Framer::default(),
            blamed: Vec::new(),
        }
    }

    /// Feed bytes; returns the targets that got something.
    fn feed(&mut self, bytes: &[u8]) -> Vec<usize> {
        let mut items = Vec::new();
        self.framer.push(bytes, &mut items);
        self.apply(items)
    }

    fn finish(&mut self) {
        let mut items = Vec::new();
        self.framer.finish(&mut items);
        self.apply(items);
        for t in &mut self.targets {
            t.progress.finish();
        }
    }

    /// Every target's export to its output has begun.
    fn all_exporting(&self) -> bool {
        (0..self.targets.len()).all(|i| self.exports.values().any(|&t| t == i))
    }

    fn mark_announced(&mut self) {
        for t in &mut self.targets {
            t.announced |= t.exported;
        }
    }

    fn apply(&mut self, items: Vec<Item>) -> Vec<usize> {
        let mut touched = Vec::new();
        for it in items {
            match it {
                Item::Object(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => touched.extend(self.object(v)),
                    Err(e) => tracing::debug!("bake rawjson object not understood: {e}"),
                },
                Item::Text(line) => touched.extend(self.text(&line)),
                Item::Oversized => {}
            }
        }
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    fn text(&mut self, line: &str) -> Vec<usize> {
        let named = line
            .strip_prefix("ERROR: target ")
            .and_then(|r| r.split_once(':'))
            .and_then(|(n, _)| self.names.iter().position(|x| x == n));
        let to: Vec<usize> = match named {
            Some(i) => {
                self.blamed.push(i);
                vec![i]
            }
            None => (0..self.targets.len()).collect(),
        };
        for &i in &to {
            self.targets[i]
                .progress
                .feed(format!("{line}\n").as_bytes());
        }
        to
    }

    /// The target a vertex name starts with, and the name without it.
    fn split_name(&self, name: &str) -> Option<(usize, String)> {
        let rest = name.strip_prefix('[')?;
        self.names.iter().enumerate().find_map(|(i, n)| {
            let r = rest.strip_prefix(n.as_str())?;
            if let Some(r) = r.strip_prefix("] ") {
                Some((i, r.to_string()))
            } else {
                r.strip_prefix(' ').map(|r| (i, format!("[{r}")))
            }
        })
    }

    fn object(&mut self, v: Value) -> Vec<usize> {
        let mut per: Vec<Map<String, Value>> = vec![Map::new(); self.targets.len()];
        let push = |per: &mut Vec<Map<String, Value>>, i: usize, k: &str, v: Value| {
            per[i]
                .entry(k.to_string())
                .or_insert_with(|| Value::Array(Vec::new()))
                .as_array_mut()
                .expect("array")
                .push(v)
        };
        for mut vx in array(&v, "vertexes") {
            let name = vx["name"].as_str().unwrap_or_default().to_string();
            let digest = vx["digest"].as_str().unwrap_or_default().to_string();
            let Some((i, plain)) = self.split_name(&name) else {
                continue;
            };
            let digest = owned_key(&digest);
            if self.owners.len() < MAX_OWNED || self.owners.contains_key(&digest) {
                let owners = self.owners.entry(digest.clone()).or_default();
                if !owners.contains(&i) {
                    owners.push(i);
                }
            }
            if plain.starts_with("exporting to ") && self.exports.len() < MAX_OWNED {
                self.exports.insert(digest.clone(), i);
                if vx["completed"].is_string() && vx["error"].is_null() {
                    self.targets[i].exported = true;
                }
            }
            if let Some(e) = vx["error"].as_str().filter(|e| !e.is_empty()) {
                if !e.contains("context canceled") && !e.ends_with("canceled") {
                    self.targets[i].own_error = true;
                }
            }
            vx["name"] = Value::String(plain);
            push(&mut per, i, "vertexes", vx);
        }
        for key in ["statuses", "logs", "warnings"] {
            for item in array(&v, key) {
                let vertex = owned_key(item["vertex"].as_str().unwrap_or_default());
                let vertex = vertex.as_str();
                if key == "statuses" {
                    self.export_digest(vertex, item["id"].as_str().unwrap_or_default());
                }
                for &i in self.owners.get(vertex).map(Vec::as_slice).unwrap_or(&[]) {
                    push(&mut per, i, key, item.clone());
                }
            }
        }
        let now = Instant::now();
        let mut touched = Vec::new();
        for (i, m) in per.into_iter().enumerate() {
            if m.is_empty() {
                continue;
            }
            let bytes = serde_json::to_vec(&Value::Object(m)).expect("json");
            let t = &mut self.targets[i];
            t.progress.feed(&bytes);
            t.last = Some(now);
            touched.push(i);
        }
        touched
    }

    fn export_digest(&mut self, vertex: &str, id: &str) {
        let Some(&i) = self.exports.get(vertex) else {
            return;
        };
        let t = &mut self.targets[i];
        if let Some(d) = id.strip_prefix("exporting manifest list ") {
            t.digest = Some(d.trim().to_string());
            t.list_digest = true;
        } else if let Some(d) = id.strip_prefix("exporting manifest ") {
            if !t.list_digest {
                t.digest = Some(d.trim().to_string());
            }
        }
    }

    /// Targets that failed of themselves: named by bake's error, or with a
    /// step error that is not a cancellation.
    fn failed_targets(&self) -> Vec<usize> {
        (0..self.targets.len())
            .filter(|&i| self.targets[i].own_error || self.blamed.contains(&i))
            .collect()
    }
}

fn array(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arguments_become_a_bake_target() {
        let cwd = Path::new("/work");
        let args: Vec<OsString> = [
            "--builder",
            "b",
            "--platform=linux/arm64",
            "--progress=rawjson",
            "--metadata-file",
            "/tmp/m.json",
            "--file",
            "ctx/Dockerfile",
            "--build-arg",
            "A=${HOME}",
            "--label",
            "l=1",
            "--provenance=false",
            "--no-cache",
            "--output=type=image,name=r,push=true",
            "--cache-to=type=local,dest=/c",
            "ctx",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let t = bake_target(&args, cwd).unwrap();
        assert_eq!(t["platforms"], json!(["linux/arm64"]));
        assert_eq!(t["dockerfile"], "/work/ctx/Dockerfile");
        assert_eq!(t["context"], "/work/ctx");
        assert_eq!(t["args"]["A"], "$${HOME}", "a literal, not an HCL template");
        assert_eq!(t["labels"]["l"], "1");
        assert_eq!(t["attest"], json!(["type=provenance,disabled=true"]));
        assert_eq!(t["no-cache"], true);
        assert_eq!(t["output"], json!(["type=image,name=r,push=true"]));
        assert_eq!(t["cache-to"], json!(["type=local,dest=/c"]));
        let unknown: Vec<OsString> = ["--ssh", "default", "ctx"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(
            bake_target(&unknown, cwd).is_none(),
            "unknown flags fall back"
        );
    }

    #[test]
    fn versions_with_a_shared_session() {
        assert!(major_minor("v0.29.1") >= Some(SHARED_SESSION_BUILDX));
        assert!(major_minor("0.17.0+ds1") >= Some(SHARED_SESSION_BUILDX));
        assert!(major_minor("v0.13.1") < Some(SHARED_SESSION_BUILDX));
        assert!(major_minor("garbage") < Some(SHARED_SESSION_BUILDX));
    }

    #[test]
    fn the_stream_is_split_by_target() {
        // Shaped as `docker buildx bake --progress=rawjson` 0.29 writes it
        // (two targets sharing the context vertex `c`).
        let stream = concat!(
            r#"{"vertexes":[{"digest":"c","name":"[mbx-linux-amd64 internal] load build context","started":"2026-11-30T06:35:12.821Z","completed":"2026-11-30T06:35:18.409Z"},{"digest":"c","name":"[mbx-linux-arm64 internal] load build context","started":"2026-11-30T06:35:12.821Z","completed":"2026-11-30T06:35:18.409Z"}]}"#,
            "\n",
            r#"{"vertexes":[{"digest":"a","name":"[mbx-linux-arm64 2/2] RUN false","started":"2026-11-30T06:35:19Z","completed":"2026-11-30T06:35:20Z","error":"process \"/bin/sh -c false\" did not complete successfully: exit code: 1"}]}"#,
            "\n",
            r#"{"vertexes":[{"digest":"b","name":"[mbx-linux-amd64 2/2] RUN false","started":"2026-11-30T06:35:19Z","completed":"2026-11-30T06:35:20Z","error":"process \"/bin/sh -c false\" did not complete successfully: exit code: 137: context canceled"}]}"#,
            "\n",
            r#"{"vertexes":[{"digest":"e","name":"[mbx-linux-amd64] exporting to image","started":"2026-11-30T06:35:19Z"}]}"#,
            "\n",
            r#"{"statuses":[{"id":"exporting manifest sha256:m1","vertex":"e"},{"id":"exporting manifest list sha256:l1","vertex":"e"}],"logs":[{"vertex":"c","data":"aGkK"}]}"#,
            "\n",
            "ERROR: target mbx-linux-arm64: failed to solve\n"
        );
        let mut d = Demux::new(vec!["mbx-linux-amd64".into(), "mbx-linux-arm64".into()]);
        d.feed(stream.as_bytes());
        d.finish();
        let amd = d.targets[0].progress.steps();
        let arm = d.targets[1].progress.steps();
        assert_eq!(amd[0].name, "[internal] load build context");
        assert_eq!(
            amd[0].log_tail,
            vec!["hi"],
            "a shared vertex's log goes to both"
        );
        assert_eq!(arm[0].log_tail, vec!["hi"]);
        assert_eq!(arm[1].name, "[2/2] RUN false");
        assert_eq!(amd.len(), 3);
        assert_eq!(arm.len(), 2);
        assert_eq!(
            d.failed_targets(),
            vec![1],
            "the cancelled target did not fail itself"
        );
        assert_eq!(d.targets[0].digest.as_deref(), Some("sha256:l1"));
        assert!(!d.targets[0].exported, "the export has not completed");
    }
}
