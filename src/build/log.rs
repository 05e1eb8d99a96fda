//! One platform's build log as `docker buildx build --progress=plain` writes
//! it (`#3 [2/4] RUN …`, `#3 output`, `#3 DONE 1.2s`), rebuilt from the
//! rawjson stream mbx already reads; bounded in size.

use std::collections::HashMap;

/// Bytes of log kept per platform; the rest is cut with a note.
const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Vertices followed at once; past this the finished ones are forgotten
/// (a later update of one starts a new `#n`), and if all are unfinished the
/// log is cut.
const MAX_VERTICES: usize = 2000;
/// A line without its end is written out at this length, or sooner when the
/// unfinished lines of all vertices together hold [`MAX_PENDING`].
const LINE_MAX: usize = 64 * 1024;
const MAX_PENDING: usize = 1024 * 1024;

#[derive(Debug, Default)]
struct VertexState {
    number: usize,
    header: bool,
    finished: bool,
    started: Option<f64>,
    partial: String,
}

#[derive(Debug, Default)]
pub struct PlainLog {
    text: String,
    truncated: bool,
    vertices: HashMap<String, VertexState>,
    last: Option<String>,
    shown: usize,
    /// Bytes held in the vertices' unfinished lines.
    pending: usize,
}

/// What one rawjson update says of a vertex.
pub struct VertexUpdate<'a> {
    pub digest: &'a str,
    pub name: &'a str,
    pub started: Option<f64>,
    pub completed: Option<f64>,
    pub cached: bool,
    pub error: Option<&'a str>,
}

impl PlainLog {
    fn push(&mut self, line: &str) {
        if self.truncated {
            return;
        }
        if self.text.len() + line.len() > MAX_BYTES {
            self.cut("… (log cut at 4 MiB)");
            return;
        }
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// No more text: the note says why; nothing more is followed.
    fn cut(&mut self, note: &str) {
        self.truncated = true;
        self.text.push_str(note);
        self.text.push('\n');
        self.vertices = HashMap::new();
        self.pending = 0;
    }

    fn state(&mut self, digest: &str) -> &mut VertexState {
        if self.vertices.len() >= MAX_VERTICES && !self.vertices.contains_key(digest) {
            let mut freed = 0;
            self.vertices.retain(|_, v| {
                freed += if v.finished { v.partial.len() } else { 0 };
                !v.finished
            });
            self.pending = self.pending.saturating_sub(freed);
            if self.vertices.len() >= MAX_VERTICES {
                self.cut(&format!(
                    "… (log cut: more than {MAX_VERTICES} steps running at once)"
                ));
            }
        }
        self.vertices.entry(digest.to_string()).or_default()
    }

    /// Print the vertex's header once; a blank line between vertices.
    fn header(&mut self, digest: &str, name: &str) -> usize {
        let next = self.shown + 1;
        let st = self.state(digest);
        if !st.header {
            st.number = next;
        }
        let (n, had) = (st.number, st.header);
        st.header = true;
        if !had {
            self.shown += 1;
        }
        if !had {
            if self.last.is_some() {
                self.push("");
            }
            self.push(&format!("#{n} {name}"));
        }
        self.last = Some(digest.to_string());
        n
    }

    pub fn vertex(&mut self, v: &VertexUpdate) {
        if self.truncated || (v.started.is_none() && !v.cached) {
            return;
        }
        let n = self.header(v.digest, v.name);
        let st = self.state(v.digest);
        if st.started.is_none() {
            st.started = v.started;
        }
        if st.finished {
            return;
        }
        let line = match (v.error.filter(|e| !e.is_empty()), v.cached, v.completed) {
            (Some(e), _, _) => format!("#{n} ERROR: {e}"),
            (None, true, _) => format!("#{n} CACHED"),
            (None, false, Some(c)) => {
                format!("#{n} DONE {:.1}s", (c - st.started.unwrap_or(c)).max(0.0))
            }
            (None, false, None) => return,
        };
        st.finished = true;
        let partial = std::mem::take(&mut st.partial);
        self.pending = self.pending.saturating_sub(partial.len());
        if !partial.is_empty() {
            self.push(&format!("#{n} {partial}"));
        }
        self.push(&line);
    }

    /// Output of a step (log data), split into lines.
    pub fn output(&mut self, digest: &str, name: &str, bytes: &[u8]) {
        if self.truncated {
            return;
        }
        let n = self.header(digest, name);
        self.state(digest);
        if self.truncated {
            return;
        }
        let pending = self.pending;
        let st = self.vertices.get_mut(digest).expect("just made");
        let before = st.partial.len();
        st.partial.push_str(&String::from_utf8_lossy(bytes));
        let mut lines = Vec::new();
        // A carriage return (a progress meter redrawing its line) ends a line too.
        // Split once per entry: linear in its size, however many lines it holds.
        if let Some(last) = st.partial.rfind(['\n', '\r']) {
            let rest = st.partial.split_off(last + 1);
            let done = std::mem::replace(&mut st.partial, rest);
            let mut s = done.as_str();
            while let Some(i) = s.find(['\n', '\r']) {
                let crlf = s[i..].starts_with("\r\n");
                if !(i == 0 && crlf) {
                    lines.push(s[..i].to_string());
                }
                s = &s[i + if crlf { 2 } else { 1 }..];
            }
        }
        if st.partial.len() > LINE_MAX || pending - before + st.partial.len() > MAX_PENDING {
            lines.push(std::mem::take(&mut st.partial));
        }
        self.pending = pending - before + st.partial.len();
        for l in lines {
            self.push(&format!("#{n} {l}"));
        }
    }

    /// A line buildx printed outside the JSON (its final `ERROR: …`).
    pub fn text(&mut self, line: &str) {
        if self.truncated {
            return;
        }
        self.push(line);
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Print one platform's finished build log: in a collapsed group in GitHub
/// Actions, on its own off a terminal when the build failed (see
/// [`Printer::build_log`]). Secrets are redacted and lines a runner would
/// take for a workflow command defused.
pub fn print(
    printer: &crate::printer::Printer,
    platform: &crate::platform::Platform,
    progress: &super::progress::Progress,
    redactions: &crate::plan::Redactions,
    outcome: &crate::error::Result<crate::docker::BuildOutcome>,
) {
    let failed = !matches!(outcome, Ok(o) if o.success);
    let text = defuse(&redactions.apply(progress.log.as_str()));
    printer.build_log(&format!("{platform} build"), text.trim_end(), failed);
}

/// No line of `text` a GitHub runner would act on: `::cmd::` lines get a
/// space between the colons, the legacy `##[cmd]` form a space after `#`.
pub fn defuse(text: &str) -> String {
    super::neutralise_commands(text)
        .split('\n')
        .map(|l| {
            let t = l.trim_start();
            match t.strip_prefix("##[") {
                Some(rest) => format!("{}# #[{rest}", &l[..l.len() - t.len()]),
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v<'a>(d: &'a str, name: &'a str, s: Option<f64>, c: Option<f64>) -> VertexUpdate<'a> {
        VertexUpdate {
            digest: d,
            name,
            started: s,
            completed: c,
            cached: false,
            error: None,
        }
    }

    #[test]
    fn reads_like_buildx_plain_progress() {
        let mut l = PlainLog::default();
        l.vertex(&v("a", "[1/2] FROM base", None, None));
        l.vertex(&VertexUpdate {
            cached: true,
            ..v("a", "[1/2] FROM base", Some(1.0), Some(1.0))
        });
        l.vertex(&v("b", "[2/2] RUN make", Some(2.0), None));
        l.output("b", "[2/2] RUN make", b"compiling\npart");
        l.output("b", "[2/2] RUN make", b"ial\r\n 10%\r 99%\r\n");
        l.vertex(&v("b", "[2/2] RUN make", Some(2.0), Some(3.25)));
        l.vertex(&v("b", "[2/2] RUN make", Some(2.0), Some(3.25)));
        l.text("ERROR: failed to solve");
        assert_eq!(
            l.as_str(),
            "#1 [1/2] FROM base\n#1 CACHED\n\n#2 [2/2] RUN make\n#2 compiling\n#2 partial\n#2  10%\n#2  99%\n#2 DONE 1.2s\nERROR: failed to solve\n"
        );
    }

    #[test]
    fn workflow_commands_are_defused() {
        let t = defuse("ok\n  ::add-mask::x\n##[error]boom\n::endgroup::");
        assert_eq!(t, "ok\n  : :add-mask::x\n# #[error]boom\n: :endgroup::");
    }

    #[test]
    fn errors_and_size_bound() {
        let mut l = PlainLog::default();
        l.vertex(&VertexUpdate {
            error: Some("exit code: 1"),
            ..v("a", "[1/1] RUN false", Some(1.0), Some(2.0))
        });
        assert!(l.as_str().ends_with("#1 ERROR: exit code: 1\n"));
        let big = vec![b'x'; 1024 * 1024];
        for _ in 0..6 {
            l.output("a", "x", &big);
            l.output("a", "x", b"\n");
        }
        assert!(l.as_str().len() <= MAX_BYTES + 64);
        assert!(l.as_str().ends_with("(log cut at 4 MiB)\n"));
    }
}
