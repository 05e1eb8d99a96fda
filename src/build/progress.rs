//! buildx `--progress=rawjson` → build steps.
//!
//! buildx writes one `SolveStatus` JSON object per update, pretty-printed and
//! concatenated (not one per line), keys `vertexes`, `statuses`, `logs`
//! (log data base64), `warnings`. Plain text may appear between objects (an
//! `ERROR: …` line at the end of a failed build). The same vertex is sent
//! several times as it progresses. The parser reads the stream incrementally:
//! memory is bounded by the number of distinct vertices plus a fixed log tail
//! per vertex, not by the length of the stream.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};

use base64::Engine;
use serde::Deserialize;

/// Largest single JSON object accepted; BuildKit chunks logs far below this.
const MAX_OBJECT_BYTES: usize = 16 * 1024 * 1024;
/// Log lines kept per vertex (for the failure report).
const LOG_TAIL_LINES: usize = 40;
const LOG_LINE_MAX: usize = 1024;
/// Plain-text lines kept from outside the JSON objects.
const TEXT_TAIL_LINES: usize = 40;

#[derive(Debug, Deserialize, Default)]
struct SolveStatus {
    #[serde(default)]
    vertexes: Vec<Vertex>,
    #[serde(default)]
    logs: Vec<VertexLog>,
    #[serde(default)]
    warnings: Vec<VertexWarning>,
}

#[derive(Debug, Deserialize)]
struct Vertex {
    digest: String,
    #[serde(default)]
    name: String,
    started: Option<String>,
    completed: Option<String>,
    #[serde(default)]
    cached: bool,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VertexLog {
    vertex: String,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VertexWarning {
    #[serde(default)]
    short: Option<String>,
}

pub use crate::printer::Snapshot;
pub use crate::run::Step;

#[derive(Debug, Default)]
struct StepState {
    step: Option<Step>,
    intervals: Vec<(f64, f64)>,
    open_start: Option<f64>,
    log_partial: String,
    log_tail: VecDeque<String>,
}

/// Accumulates updates into steps. Feed it bytes with [`Progress::feed`] or a
/// whole reader with [`Progress::read_from`].
#[derive(Debug, Default)]
pub struct Progress {
    order: Vec<String>,
    states: HashMap<String, StepState>,
    framer: Framer,
    text_tail: VecDeque<String>,
    pub warnings: Vec<String>,
    /// Objects that were not valid SolveStatus JSON (counted, not fatal).
    pub malformed: usize,
    /// The build log as buildx's plain progress shows it.
    pub log: super::log::PlainLog,
}

impl Progress {
    pub fn new() -> Progress {
        Progress::default()
    }

    pub fn read_from<R: Read>(&mut self, mut r: R) -> io::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.feed(&buf[..n]);
        }
        self.finish();
        Ok(())
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        let mut items = Vec::new();
        self.framer.push(bytes, &mut items);
        for it in items {
            self.apply(it);
        }
    }

    pub fn finish(&mut self) {
        let mut items = Vec::new();
        self.framer.finish(&mut items);
        for it in items {
            self.apply(it);
        }
    }

    fn apply(&mut self, item: Item) {
        match item {
            Item::Text(line) => {
                self.log.text(&line);
                if self.text_tail.len() == TEXT_TAIL_LINES {
                    self.text_tail.pop_front();
                }
                self.text_tail.push_back(line);
            }
            Item::Object(bytes) => match serde_json::from_slice::<SolveStatus>(&bytes) {
                Ok(s) => self.apply_status(s),
                Err(e) => {
                    tracing::debug!("rawjson object not understood: {e}");
                    self.malformed += 1;
                }
            },
            Item::Oversized => self.malformed += 1,
        }
    }

    fn apply_status(&mut self, s: SolveStatus) {
        for v in s.vertexes {
            let state = match self.states.get_mut(&v.digest) {
                Some(st) => st,
                None => {
                    self.order.push(v.digest.clone());
                    self.states.entry(v.digest.clone()).or_default()
                }
            };
            let started = v.started.as_deref().and_then(parse_rfc3339);
            let completed = v.completed.as_deref().and_then(parse_rfc3339);
            let known = state.step.as_ref().map(|s| s.name.as_str()).unwrap_or("");
            self.log.vertex(&super::log::VertexUpdate {
                digest: &v.digest,
                name: if v.name.is_empty() { known } else { &v.name },
                started,
                completed,
                cached: v.cached,
                error: v.error.as_deref(),
            });
            if let (Some(s), Some(c)) = (started, completed) {
                if !state.intervals.iter().any(|(a, _)| *a == s) {
                    state.intervals.push((s, c.max(s)));
                }
                state.open_start = None;
            } else if let Some(s) = started {
                state.open_start = Some(s);
            }
            let step = state.step.get_or_insert_with(|| Step {
                digest: v.digest.clone(),
                name: v.name.clone(),
                started: None,
                completed: None,
                busy_seconds: 0.0,
                cached: false,
                error: None,
                instruction: is_instruction(&v.name),
                log_tail: Vec::new(),
            });
            if !v.name.is_empty() {
                step.name = v.name;
                step.instruction = is_instruction(&step.name);
            }
            step.cached |= v.cached;
            if let Some(s) = started {
                step.started = Some(step.started.map_or(s, |x: f64| x.min(s)));
            }
            if let Some(c) = completed {
                step.completed = Some(step.completed.map_or(c, |x: f64| x.max(c)));
            }
            if let Some(e) = v.error.filter(|e| !e.is_empty()) {
                step.error = Some(e);
            }
            step.busy_seconds = state.intervals.iter().map(|(a, b)| b - a).sum();
        }
        for l in s.logs {
            let Some(data) = l.data else { continue };
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data.as_bytes())
            else {
                continue;
            };
            let state = match self.states.get_mut(&l.vertex) {
                Some(st) => st,
                None => {
                    self.order.push(l.vertex.clone());
                    self.states.entry(l.vertex.clone()).or_default()
                }
            };
            let name = state.step.as_ref().map(|s| s.name.as_str()).unwrap_or("");
            self.log.output(&l.vertex, name, &bytes);
            state.log_partial.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(i) = state.log_partial.find('\n') {
                let line: String = state.log_partial[..i].trim_end_matches('\r').to_string();
                state.log_partial.drain(..=i);
                push_bounded(&mut state.log_tail, line);
            }
            if state.log_partial.len() > LOG_LINE_MAX {
                let line = std::mem::take(&mut state.log_partial);
                push_bounded(&mut state.log_tail, line);
            }
        }
        for w in s.warnings {
            if let Some(short) = w.short {
                if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(short.as_bytes()) {
                    if self.warnings.len() < 20 {
                        self.warnings.push(String::from_utf8_lossy(&b).into_owned());
                    }
                }
            }
        }
    }

    /// The steps in the order BuildKit first announced them.
    pub fn steps(&self) -> Vec<Step> {
        self.order
            .iter()
            .filter_map(|d| {
                let st = self.states.get(d)?;
                let mut step = st.step.clone()?;
                let mut tail: Vec<String> = st.log_tail.iter().cloned().collect();
                if !st.log_partial.is_empty() {
                    tail.push(st.log_partial.clone());
                }
                step.log_tail = tail;
                Some(step)
            })
            .collect()
    }

    /// Where the build stands: Dockerfile steps finished of the total the
    /// `[n/m]` prefixes announce, and the step running last.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        for st in self.states.values() {
            let Some(step) = &st.step else { continue };
            if !step.instruction {
                continue;
            }
            snap.seen += 1;
            if let Some(m) = step
                .name
                .split_once(']')
                .and_then(|(head, _)| head.rsplit(' ').next()?.split_once('/'))
                .and_then(|(_, m)| m.parse::<usize>().ok())
            {
                snap.total = snap.total.max(m);
            }
            if step.completed.is_some() && st.open_start.is_none() {
                snap.done += 1;
                snap.cached += usize::from(step.cached);
            } else if step.started.is_some() {
                snap.running = Some(step.instruction_text().to_string());
            }
        }
        snap.total = snap.total.max(snap.seen);
        snap
    }

    /// Plain-text lines seen between the JSON objects (e.g. buildx's final `ERROR:`).
    pub fn text_tail(&self) -> Vec<String> {
        self.text_tail.iter().cloned().collect()
    }
}

fn push_bounded(q: &mut VecDeque<String>, mut line: String) {
    if line.len() > LOG_LINE_MAX {
        let mut cut = LOG_LINE_MAX;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    if q.len() == LOG_TAIL_LINES {
        q.pop_front();
    }
    q.push_back(line);
}

/// `[2/4] RUN …`, `[linux/arm64 2/4] RUN …`, `[builder 3/5] COPY …`.
fn is_instruction(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('[') else {
        return false;
    };
    let Some(end) = rest.find(']') else {
        return false;
    };
    let inner = &rest[..end];
    let last = inner.rsplit(' ').next().unwrap_or("");
    match last.split_once('/') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

enum Item {
    Object(Vec<u8>),
    Text(String),
    Oversized,
}

/// Splits a byte stream into top-level JSON objects and the text lines between them.
#[derive(Debug, Default)]
struct Framer {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    oversized: bool,
    text: Vec<u8>,
}

impl Framer {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Item>) {
        for &b in bytes {
            if self.depth == 0 {
                if b == b'{' {
                    self.flush_text(out);
                    self.depth = 1;
                    self.buf.clear();
                    self.buf.push(b);
                    self.oversized = false;
                } else if b == b'\n' {
                    self.flush_text(out);
                } else {
                    self.text.push(b);
                }
                continue;
            }
            if !self.oversized {
                self.buf.push(b);
                if self.buf.len() > MAX_OBJECT_BYTES {
                    self.oversized = true;
                    self.buf = Vec::new();
                }
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        if self.oversized {
                            out.push(Item::Oversized);
                        } else {
                            out.push(Item::Object(std::mem::take(&mut self.buf)));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn flush_text(&mut self, out: &mut Vec<Item>) {
        let line = String::from_utf8_lossy(&self.text).trim().to_string();
        self.text.clear();
        if !line.is_empty() {
            out.push(Item::Text(line));
        }
    }

    fn finish(&mut self, out: &mut Vec<Item>) {
        self.flush_text(out);
        if self.depth > 0 && !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf).trim().to_string();
            out.push(Item::Text(text));
            self.buf.clear();
            self.depth = 0;
        }
    }
}

/// RFC 3339 timestamp (as Go marshals `time.Time`) → seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac = 0.0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac = format!("0.{}", &s[start..i]).parse().ok()?;
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' => 0,
        b'+' | b'-' => {
            let sign = if b[i] == b'-' { -1 } else { 1 };
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86400 + hour * 3600 + min * 60 + sec - offset;
    Some(secs as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_finished_steps_and_the_running_one() {
        let mut p = Progress::new();
        p.feed(br#"{"vertexes": [
            {"digest": "sha256:a", "name": "[linux/arm64 1/3] FROM x", "started": "2026-01-01T00:00:00Z", "completed": "2026-01-01T00:00:01Z", "cached": true},
            {"digest": "sha256:b", "name": "[linux/arm64 2/3] RUN make", "started": "2026-01-01T00:00:01Z", "completed": "2026-01-01T00:00:05Z"},
            {"digest": "sha256:c", "name": "[linux/arm64 3/3] RUN test", "started": "2026-01-01T00:00:05Z"},
            {"digest": "sha256:d", "name": "[internal] load .dockerignore", "started": "2026-01-01T00:00:00Z", "completed": "2026-01-01T00:00:00.1Z"}
        ]}"#);
        let s = p.snapshot();
        assert_eq!((s.done, s.cached, s.total, s.seen), (2, 1, 3, 3));
        assert_eq!(s.running.as_deref(), Some("RUN test"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        let t = parse_rfc3339("2026-11-23T18:28:12.116632076Z").unwrap();
        assert!((t - 1_795_458_492.116_632).abs() < 1e-5, "{t}");
        assert_eq!(
            parse_rfc3339("2026-11-23T19:28:12+01:00"),
            parse_rfc3339("2026-11-23T18:28:12Z")
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn instruction_names() {
        assert!(is_instruction("[3/4] RUN make"));
        assert!(is_instruction("[linux/arm64 3/4] RUN make"));
        assert!(is_instruction("[builder 2/5] COPY . ."));
        assert!(!is_instruction(
            "[internal] load build definition from Dockerfile"
        ));
        assert!(!is_instruction(
            "[linux/amd64 internal] load metadata for x"
        ));
        assert!(!is_instruction("exporting to image"));
    }

    #[test]
    fn concatenated_objects_across_chunk_boundaries_with_text() {
        let stream = concat!(
            "{\n \"vertexes\": [{\"digest\": \"sha256:a\", \"name\": \"[1/2] FROM x\"}]\n}\n",
            "{\"vertexes\": [{\"digest\": \"sha256:a\", \"name\": \"[1/2] FROM x\", \"started\": \"2026-01-01T00:00:00Z\", \"completed\": \"2026-01-01T00:00:01.5Z\", \"cached\": true}]}",
            "{\"vertexes\": [{\"digest\": \"sha256:b\", \"name\": \"[2/2] RUN echo \\\"}{\\\"\", \"started\": \"2026-01-01T00:00:02Z\"}]}\n",
            "{\"logs\": [{\"vertex\": \"sha256:b\", \"stream\": 1, \"data\": \"aGVsbG8KcGFydA==\"}]}",
            "{\"vertexes\": [{\"digest\": \"sha256:b\", \"name\": \"[2/2] RUN echo \\\"}{\\\"\", \"started\": \"2026-01-01T00:00:02Z\", \"completed\": \"2026-01-01T00:00:05Z\", \"error\": \"exit code: 1\"}]}\n",
            "ERROR: failed to solve: process did not complete successfully\n"
        );
        // Feed one byte at a time: framing must not depend on chunking.
        let mut p = Progress::new();
        for b in stream.as_bytes() {
            p.feed(std::slice::from_ref(b));
        }
        p.finish();
        let steps = p.steps();
        assert_eq!(steps.len(), 2);
        assert!(steps[0].cached);
        assert!((steps[0].busy_seconds - 1.5).abs() < 1e-9);
        assert_eq!(steps[1].name, "[2/2] RUN echo \"}{\"");
        assert_eq!(steps[1].error.as_deref(), Some("exit code: 1"));
        assert!((steps[1].busy_seconds - 3.0).abs() < 1e-9);
        assert_eq!(steps[1].log_tail, vec!["hello", "part"]);
        assert_eq!(steps[1].instruction_text(), "RUN echo \"}{\"");
        assert_eq!(
            p.text_tail(),
            vec!["ERROR: failed to solve: process did not complete successfully"]
        );
        assert_eq!(p.malformed, 0);
    }

    #[test]
    fn repeated_intervals_are_summed_once() {
        let v = |s: &str, c: &str| {
            format!("{{\"vertexes\":[{{\"digest\":\"d\",\"name\":\"n\",\"started\":\"{s}\",\"completed\":\"{c}\"}}]}}")
        };
        let mut p = Progress::new();
        p.feed(v("2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z").as_bytes());
        p.feed(v("2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z").as_bytes());
        p.feed(v("2026-01-01T00:00:02Z", "2026-01-01T00:00:04Z").as_bytes());
        p.finish();
        let s = &p.steps()[0];
        assert!((s.busy_seconds - 3.0).abs() < 1e-9);
        assert_eq!(s.started, parse_rfc3339("2026-01-01T00:00:00Z"));
        assert_eq!(s.completed, parse_rfc3339("2026-01-01T00:00:04Z"));
    }

    #[test]
    fn garbage_object_is_counted_not_fatal() {
        let mut p = Progress::new();
        p.feed(b"{\"vertexes\": 5}{\"vertexes\":[{\"digest\":\"x\",\"name\":\"[1/1] RUN a\"}]}");
        p.finish();
        assert_eq!(p.malformed, 1);
        assert_eq!(p.steps().len(), 1);
    }
}

/// The parser on streams captured from real buildx runs (tests/data/README.md).
#[cfg(test)]
mod fixtures {
    use super::*;

    fn parse(name: &str) -> Progress {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/rawjson")
            .join(name);
        let mut p = Progress::new();
        p.read_from(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(p.malformed, 0, "{name}");
        p
    }

    /// Instruction steps in Dockerfile order (BuildKit may announce them out of order).
    fn instructions(p: &Progress) -> Vec<Step> {
        let mut v: Vec<Step> = p.steps().into_iter().filter(|s| s.instruction).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    #[test]
    fn uncached_builds_run_every_step() {
        for f in ["hello-amd64-nocache.json", "hello-arm64-nocache.json"] {
            let p = parse(f);
            let steps = instructions(&p);
            let names: Vec<&str> = steps.iter().map(|s| s.instruction_text()).collect();
            assert_eq!(names.len(), 4, "{f}: {names:?}");
            assert!(
                names[0].starts_with("FROM 127.0.0.1:5000/mbx/busybox:latest@sha256:"),
                "{f}"
            );
            assert!(
                names[1].starts_with("RUN echo \"built for linux/"),
                "{f}: {}",
                names[1]
            );
            // FROM may show as cached (the base is already in BuildKit's store); the RUN steps ran.
            assert!(
                steps[1..].iter().all(|s| !s.cached && s.error.is_none()),
                "{f}"
            );
            assert!(
                steps
                    .iter()
                    .all(|s| s.started.is_some() && s.completed >= s.started),
                "{f}"
            );
            // The CPU-bound steps took real time; their logs were kept.
            assert!(
                steps[2].busy_seconds > 0.1,
                "{f}: {}",
                steps[2].busy_seconds
            );
            assert!(
                steps[1]
                    .log_tail
                    .iter()
                    .any(|l| l.contains("built for linux/")),
                "{f}: {:?}",
                steps[1].log_tail
            );
        }
        let arm = parse("hello-arm64-nocache.json");
        assert!(
            instructions(&arm)[1]
                .log_tail
                .iter()
                .any(|l| l.ends_with("aarch64")),
            "uname -m under QEMU"
        );
    }

    #[test]
    fn a_cached_build_marks_the_run_steps_cached() {
        let p = parse("hello-arm64-cached.json");
        let steps = instructions(&p);
        let run: Vec<&Step> = steps
            .iter()
            .filter(|s| s.instruction_text().starts_with("RUN"))
            .collect();
        assert_eq!(run.len(), 3);
        assert!(run.iter().all(|s| s.cached), "{run:?}");
    }

    #[test]
    fn a_failing_build_keeps_the_error_log_and_final_text() {
        let p = parse("fail-arm64.json");
        let failed: Vec<Step> = p
            .steps()
            .into_iter()
            .filter(|s| s.error.is_some())
            .collect();
        assert_eq!(failed.len(), 1);
        let s = &failed[0];
        assert!(
            s.instruction && s.instruction_text().starts_with("RUN echo start"),
            "{}",
            s.name
        );
        assert!(
            s.error.as_deref().unwrap().contains("exit code: 7"),
            "{:?}",
            s.error
        );
        assert!(
            s.log_tail.iter().any(|l| l == "about to fail"),
            "{:?}",
            s.log_tail
        );
        assert!(
            p.text_tail()
                .iter()
                .any(|l| l.starts_with("ERROR: failed to solve")),
            "{:?}",
            p.text_tail()
        );
    }

    #[test]
    fn a_truncated_stream_keeps_what_was_complete() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/rawjson/hello-amd64-nocache.json");
        let bytes = std::fs::read(path).unwrap();
        let mut p = Progress::new();
        p.feed(&bytes[..bytes.len() / 2]);
        p.finish();
        assert!(!p.steps().is_empty());
        assert_eq!(p.malformed, 0, "a cut object becomes text, not an error");
        assert!(!p.text_tail().is_empty());
    }

    #[test]
    fn garbage_input_is_text_not_a_panic() {
        let mut p = Progress::new();
        let mut junk: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        junk.extend_from_slice(b"{\"vertexes\": [1, 2, }\n]]]}}}{{{\"");
        p.feed(&junk);
        p.finish();
        assert!(p.steps().is_empty());
    }
}
