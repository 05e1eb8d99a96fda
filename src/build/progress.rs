//! buildx `--progress=rawjson` → build steps.
//!
//! buildx writes one `SolveStatus` JSON object per update, pretty-printed and
//! concatenated (not one per line), keys `vertexes`, `statuses`, `logs`
//! (log data base64), `warnings`. Plain text may appear between objects (an
//! `ERROR: …` line at the end of a failed build). The same vertex is sent
//! several times as it progresses. The parser reads the stream incrementally
//! and holds a bounded amount whatever the stream: one object at most
//! [`MAX_OBJECT_BYTES`] (read vertex by vertex, never as a whole tree), at
//! most [`MAX_STEPS`] vertices in full (past that the fastest finished ones
//! are folded into [`Folded`] counts: the totals stay right), names and
//! errors cut at a few KiB, a fixed log tail per vertex.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};

use base64::Engine;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Largest single JSON object accepted; BuildKit chunks logs far below this.
pub const MAX_OBJECT_BYTES: usize = 16 * 1024 * 1024;
/// Vertices kept in full; past this (and a quarter more, so the sort that
/// chooses runs seldom) the fastest finished ones are folded into counts.
/// Vertices that failed, then running ones, then the slowest are kept.
pub const MAX_STEPS: usize = 1000;
/// A step name is cut here (with `…`); a RUN with a long script reads
/// the same in its first KiBs.
pub const NAME_MAX: usize = 4096;
/// A step's error is cut here (with `…`).
pub const ERROR_MAX: usize = 8192;
/// A vertex digest longer than any real one is cut to this (it is only a key).
const DIGEST_MAX: usize = 128;
/// Busy intervals kept apart per vertex (to ignore repeats); older ones are summed.
const MAX_INTERVALS: usize = 64;
/// Folded vertices remembered (by hash) so a late repeat is not counted twice.
const FORGET_MAX: usize = 1 << 18;
/// Log lines kept per vertex (for the failure report).
const LOG_TAIL_LINES: usize = 40;
const LOG_LINE_MAX: usize = 1024;
/// Warnings kept, each cut at this length.
const WARNINGS_MAX: usize = 20;
const WARNING_MAX: usize = 1024;
/// Plain-text lines kept from outside the JSON objects, each at most this long
/// (the rest of a longer line is dropped: the stream is not trusted to end lines).
const TEXT_TAIL_LINES: usize = 40;
const TEXT_LINE_MAX: usize = 4096;

#[derive(Debug, Deserialize)]
struct Vertex<'a> {
    #[serde(borrow)]
    digest: Cow<'a, str>,
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    started: Option<Cow<'a, str>>,
    completed: Option<Cow<'a, str>>,
    #[serde(default)]
    cached: bool,
    error: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct VertexLog<'a> {
    #[serde(borrow)]
    vertex: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct VertexWarning<'a> {
    #[serde(default, borrow)]
    short: Option<Cow<'a, str>>,
}

pub use crate::printer::Snapshot;
pub use crate::run::Step;

#[derive(Debug, Default)]
struct StepState {
    step: Option<Step>,
    intervals: Vec<(f64, f64)>,
    /// Busy time of intervals no longer kept apart.
    settled: f64,
    open_start: Option<f64>,
    log_partial: String,
    log_tail: VecDeque<String>,
}

/// What the vertices folded away (past [`MAX_STEPS`]) add to the totals.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Folded {
    /// Vertices folded.
    pub steps: usize,
    /// Of them, Dockerfile instructions (`[n/m] …`), and those cached.
    pub instructions: usize,
    pub cached: usize,
    /// Of the instructions, `FROM`s, and those cached.
    pub from: usize,
    pub from_cached: usize,
    /// Busy time of the instructions that ran (not cached), `FROM` included.
    pub executed_seconds: f64,
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
    folded: Folded,
    /// Hashes of the folded vertices (at most [`FORGET_MAX`]).
    forgotten: HashSet<u64>,
    hasher: RandomState,
    /// The largest `m` of the `[n/m]` prefixes seen.
    announced_total: usize,
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

    /// What the vertices no longer kept in full add to the totals.
    pub fn folded(&self) -> Folded {
        self.folded
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
            Item::Object(bytes) => {
                // Vertex by vertex: a frame of many small vertices is never
                // held as a tree of them.
                let mut de = serde_json::Deserializer::from_slice(&bytes);
                let read = StatusSeed(self)
                    .deserialize(&mut de)
                    .and_then(|()| de.end());
                if let Err(e) = read {
                    tracing::debug!("rawjson object not understood: {e}");
                    self.malformed += 1;
                }
            }
            Item::Oversized => self.malformed += 1,
        }
        self.fold_excess();
    }

    fn key(&self, digest: &str) -> String {
        cut(digest, DIGEST_MAX, "")
    }

    fn is_forgotten(&self, key: &str) -> bool {
        !self.forgotten.is_empty() && !self.states.contains_key(key) && self.was_folded(key)
    }

    /// The vertex was folded (its hash is remembered); `key` is not kept.
    fn was_folded(&self, key: &str) -> bool {
        !self.forgotten.is_empty() && self.forgotten.contains(&self.hasher.hash_one(key))
    }

    fn state(&mut self, key: &str) -> &mut StepState {
        if !self.states.contains_key(key) {
            self.order.push(key.to_string());
        }
        self.states.entry(key.to_string()).or_default()
    }

    fn apply_vertex(&mut self, v: Vertex) {
        let key = self.key(&v.digest);
        let name = cut(&v.name, NAME_MAX, "…");
        let started = v.started.as_deref().and_then(parse_rfc3339);
        let completed = v.completed.as_deref().and_then(parse_rfc3339);
        let error = v
            .error
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| cut(e, ERROR_MAX, "…"));
        if !self.states.contains_key(&key) {
            if self.was_folded(&key) {
                return;
            }
            self.order.push(key.clone());
            self.states.insert(key.clone(), StepState::default());
        }
        let state = self.states.get_mut(&key).expect("just made");
        let known = state.step.as_ref().map_or("", |s| s.name.as_str());
        self.log.vertex(&super::log::VertexUpdate {
            digest: &key,
            name: if name.is_empty() { known } else { &name },
            started,
            completed,
            cached: v.cached,
            error: error.as_deref(),
        });
        state.record_interval(started, completed);
        let step = state.step.get_or_insert_with(|| Step {
            digest: key.clone(),
            name: name.clone(),
            started: None,
            completed: None,
            busy_seconds: 0.0,
            cached: false,
            error: None,
            instruction: is_instruction(&name),
            log_tail: Vec::new(),
        });
        if !name.is_empty() {
            step.name = name;
            step.instruction = is_instruction(&step.name);
        }
        step.cached |= v.cached;
        if let Some(s) = started {
            step.started = Some(step.started.map_or(s, |x: f64| x.min(s)));
        }
        if let Some(c) = completed {
            step.completed = Some(step.completed.map_or(c, |x: f64| x.max(c)));
        }
        if error.is_some() {
            step.error = error;
        }
        step.busy_seconds = state.settled + state.intervals.iter().map(|(a, b)| b - a).sum::<f64>();
        if step.instruction {
            if let Some(m) = announced_total(&step.name) {
                self.announced_total = self.announced_total.max(m);
            }
        }
    }

    fn apply_log(&mut self, l: VertexLog) {
        let Some(data) = l.data else { return };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data.as_bytes()) else {
            return;
        };
        drop(data);
        let key = self.key(&l.vertex);
        let forgotten = self.is_forgotten(&key);
        let name = self
            .states
            .get(&key)
            .and_then(|s| s.step.as_ref())
            .map(|s| s.name.as_str())
            .unwrap_or("");
        self.log.output(&key, name, &bytes);
        if forgotten {
            return;
        }
        let state = self.state(&key);
        state.log_partial.push_str(&String::from_utf8_lossy(&bytes));
        // Split once per entry (linear in its size, however many lines).
        if let Some(last) = state.log_partial.rfind('\n') {
            let rest = state.log_partial.split_off(last + 1);
            let done = std::mem::replace(&mut state.log_partial, rest);
            let lines: Vec<&str> = done[..last].split('\n').collect();
            let keep = lines.len().saturating_sub(LOG_TAIL_LINES);
            for line in &lines[keep..] {
                push_bounded(&mut state.log_tail, line.trim_end_matches('\r').to_string());
            }
        }
        if state.log_partial.len() > LOG_LINE_MAX {
            let line = std::mem::take(&mut state.log_partial);
            push_bounded(&mut state.log_tail, line);
        }
    }

    fn apply_warning(&mut self, w: VertexWarning) {
        if self.warnings.len() >= WARNINGS_MAX {
            return;
        }
        if let Some(short) = w.short {
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(short.as_bytes()) {
                let text = String::from_utf8_lossy(&b);
                self.warnings.push(cut(&text, WARNING_MAX, "…"));
            }
        }
    }

    /// Past [`MAX_STEPS`] vertices (and a quarter more), keep the ones that
    /// failed, then the running ones, then the slowest finished; fold the
    /// finished others into the counts, drop the ones merely announced
    /// (they come back when they start).
    fn fold_excess(&mut self) {
        if self.states.len() <= MAX_STEPS + MAX_STEPS / 4 {
            return;
        }
        let mut ranked: Vec<(u8, f64, usize)> = self
            .order
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let st = &self.states[d];
                let (class, busy) = match &st.step {
                    Some(s) if s.error.is_some() => (0, s.busy_seconds),
                    Some(s) if s.completed.is_some() && st.open_start.is_none() => {
                        (2, s.busy_seconds)
                    }
                    Some(s) if s.started.is_some() || st.open_start.is_some() => (1, 0.0),
                    _ => (3, 0.0),
                };
                (class, busy, i)
            })
            .collect();
        ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut gone = vec![false; self.order.len()];
        for &(class, _, i) in &ranked[MAX_STEPS..] {
            gone[i] = true;
            let st = self
                .states
                .remove(&self.order[i])
                .expect("ranked from states");
            if class == 0 || class == 2 {
                self.fold(&self.order[i].clone(), st);
            }
        }
        let mut i = 0;
        self.order.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
    }

    fn fold(&mut self, key: &str, st: StepState) {
        let Some(s) = st.step else { return };
        let f = &mut self.folded;
        f.steps += 1;
        if s.instruction {
            let from = s.instruction_text().starts_with("FROM ");
            f.instructions += 1;
            f.cached += usize::from(s.cached);
            f.from += usize::from(from);
            f.from_cached += usize::from(from && s.cached);
            if !s.cached {
                f.executed_seconds += s.busy_seconds;
            }
        }
        if self.forgotten.len() < FORGET_MAX {
            self.forgotten.insert(self.hasher.hash_one(key));
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
        let mut snap = Snapshot {
            seen: self.folded.instructions,
            done: self.folded.instructions,
            cached: self.folded.cached,
            ..Snapshot::default()
        };
        for st in self.states.values() {
            let Some(step) = &st.step else { continue };
            if !step.instruction {
                continue;
            }
            snap.seen += 1;
            if step.completed.is_some() && st.open_start.is_none() {
                snap.done += 1;
                snap.cached += usize::from(step.cached);
            } else if step.started.is_some() {
                snap.running = Some(step.instruction_text().to_string());
            }
        }
        snap.total = self.announced_total.max(snap.seen);
        snap
    }

    /// Plain-text lines seen between the JSON objects (e.g. buildx's final `ERROR:`).
    pub fn text_tail(&self) -> Vec<String> {
        self.text_tail.iter().cloned().collect()
    }
}

impl StepState {
    fn record_interval(&mut self, started: Option<f64>, completed: Option<f64>) {
        if let (Some(s), Some(c)) = (started, completed) {
            if !self.intervals.iter().any(|(a, _)| *a == s) {
                if self.intervals.len() == MAX_INTERVALS {
                    self.settled += self.intervals.iter().map(|(a, b)| b - a).sum::<f64>();
                    self.intervals.clear();
                }
                self.intervals.push((s, c.max(s)));
            }
            self.open_start = None;
        } else if let Some(s) = started {
            self.open_start = Some(s);
        }
    }
}

/// The `m` of a name's `[… n/m]` prefix.
fn announced_total(name: &str) -> Option<usize> {
    name.split_once(']')
        .and_then(|(head, _)| head.rsplit(' ').next()?.split_once('/'))
        .and_then(|(_, m)| m.parse::<usize>().ok())
}

/// `s` cut to at most `max` bytes on a character boundary, `mark` appended if cut.
fn cut(s: &str, max: usize, mark: &str) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{mark}", &s[..end])
}

/// One `SolveStatus` object, applied as it is read.
struct StatusSeed<'p>(&'p mut Progress);

/// One of its arrays, applied element by element.
struct Each<'p>(&'p mut Progress, Field);

#[derive(Clone, Copy)]
enum Field {
    Vertexes,
    Logs,
    Warnings,
}

impl<'de> DeserializeSeed<'de> for StatusSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StatusSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SolveStatus object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(key) = m.next_key::<Cow<'de, str>>()? {
            let field = match key.as_ref() {
                "vertexes" => Field::Vertexes,
                "logs" => Field::Logs,
                "warnings" => Field::Warnings,
                _ => {
                    m.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            m.next_value_seed(Each(&mut *self.0, field))?;
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Each<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Each<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array or null")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let p = self.0;
        match self.1 {
            Field::Vertexes => {
                while let Some(v) = seq.next_element::<Vertex>()? {
                    p.apply_vertex(v);
                    p.fold_excess();
                }
            }
            Field::Logs => {
                while let Some(l) = seq.next_element::<VertexLog>()? {
                    p.apply_log(l);
                    p.fold_excess();
                }
            }
            Field::Warnings => {
                while let Some(w) = seq.next_element::<VertexWarning>()? {
                    p.apply_warning(w);
                }
            }
        }
        Ok(())
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

pub(crate) enum Item {
    Object(Vec<u8>),
    Text(String),
    Oversized,
}

/// Splits a byte stream into top-level JSON objects and the text lines between them.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    oversized: bool,
    text: Vec<u8>,
}

impl Framer {
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<Item>) {
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
                } else if self.text.len() < TEXT_LINE_MAX {
                    self.text.push(b);
                }
                continue;
            }
            if !self.oversized {
                if self.buf.len() == self.buf.capacity() {
                    // Grow by doubling, but never past the cap: an object
                    // of the cap's size holds the cap, not twice it.
                    let len = self.buf.len();
                    let want = (len * 2).clamp(4096, MAX_OBJECT_BYTES + 1);
                    self.buf.reserve_exact(want.saturating_sub(len).max(1));
                }
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
        let line = clip(String::from_utf8_lossy(&self.text).trim());
        self.text.clear();
        if !line.is_empty() {
            out.push(Item::Text(line));
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        self.flush_text(out);
        if self.depth > 0 && !self.buf.is_empty() {
            let cut = self.buf.len().min(TEXT_LINE_MAX);
            let text = clip(String::from_utf8_lossy(&self.buf[..cut]).trim());
            out.push(Item::Text(text));
            self.buf.clear();
            self.depth = 0;
        }
    }
}

/// A text line of at most [`TEXT_LINE_MAX`] bytes (invalid UTF-8 grows
/// threefold when replaced, so the cut is made on the text).
fn clip(s: &str) -> String {
    let mut cut = s.len().min(TEXT_LINE_MAX);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
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

    /// `n` finished vertices `[i/n] RUN i` (every third cached), each in its
    /// own frame, busy `i` milliseconds; the vertex `fail` errors.
    fn many(n: usize, fail: usize) -> Progress {
        let mut p = Progress::new();
        for i in 1..=n {
            let error = if i == fail {
                ",\"error\":\"exit code: 1\""
            } else {
                ""
            };
            let frame = format!(
                "{{\"vertexes\":[{{\"digest\":\"sha256:{i}\",\"name\":\"[{i}/{n}] RUN {i}\",\"started\":\"2026-01-01T00:00:00Z\",\"completed\":\"2026-01-01T00:00:{:02}.{:03}Z\",\"cached\":{}{error}}}]}}",
                i / 1000 % 60,
                i % 1000,
                i % 3 == 0
            );
            p.feed(frame.as_bytes());
        }
        p.finish();
        p
    }

    #[test]
    fn past_the_cap_the_fastest_are_folded_and_still_counted() {
        let n = 5 * MAX_STEPS;
        let p = many(n, 7);
        let steps = p.steps();
        assert!(steps.len() <= MAX_STEPS + MAX_STEPS / 4, "{}", steps.len());
        let f = p.folded();
        assert_eq!(steps.len() + f.steps, n);
        assert_eq!(f.steps, f.instructions);
        let cached = steps.iter().filter(|s| s.cached).count() + f.cached;
        assert_eq!(cached, n / 3);
        // The failing step is kept, and the slowest of those that ran.
        assert!(steps
            .iter()
            .any(|s| s.error.is_some() && s.name == format!("[7/{n}] RUN 7")));
        let slowest = format!("[{}/{n}] RUN {}", n - 1, n - 1);
        assert!(steps.iter().any(|s| s.name == slowest));
        // Busy time is whole: kept + folded = the sum of every uncached step.
        let want: f64 = (1..=n)
            .filter(|i| i % 3 != 0)
            .map(|i| i as f64 / 1000.0)
            .sum();
        let kept: f64 = steps
            .iter()
            .filter(|s| !s.cached)
            .map(|s| s.busy_seconds)
            .sum();
        assert!(
            (kept + f.executed_seconds - want).abs() < 1e-6,
            "{} vs {want}",
            kept + f.executed_seconds
        );
        let snap = p.snapshot();
        assert_eq!((snap.seen, snap.done, snap.total), (n, n, n));
    }

    #[test]
    fn a_folded_vertex_sent_again_is_not_counted_twice() {
        let n = 3 * MAX_STEPS;
        let mut p = many(n, 0);
        let before = (p.steps().len(), p.folded());
        // Vertex 1 (the fastest) was folded; BuildKit repeats finished vertices.
        p.feed(br#"{"vertexes":[{"digest":"sha256:1","name":"[1/3000] RUN 1","started":"2026-01-01T00:00:00Z","completed":"2026-01-01T00:00:00.001Z"}]}"#);
        p.finish();
        assert_eq!((p.steps().len(), p.folded()), before);
    }

    #[test]
    fn long_names_and_errors_are_cut() {
        let name = format!("[1/1] RUN {}", "é".repeat(NAME_MAX));
        let error = "x".repeat(ERROR_MAX * 2);
        let frame = format!(
            "{{\"vertexes\":[{{\"digest\":\"{}\",\"name\":\"{name}\",\"error\":\"{error}\"}}]}}",
            "d".repeat(10_000)
        );
        let mut p = Progress::new();
        p.feed(frame.as_bytes());
        p.finish();
        let s = &p.steps()[0];
        assert!(
            s.name.len() <= NAME_MAX + 3 && s.name.ends_with('…'),
            "{}",
            s.name.len()
        );
        assert!(s.name.starts_with("[1/1] RUN é"));
        assert!(s.instruction);
        assert!(s.error.as_ref().unwrap().len() <= ERROR_MAX + 3);
        assert!(s.digest.len() <= DIGEST_MAX);
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
