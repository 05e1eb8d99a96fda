//! Bottom layer: every byte of human output goes through here. Status lines
//! and progress bars on stderr (bars only on a terminal), the report on
//! stdout; no colour off a terminal or with `NO_COLOR`; quiet mode; a closed
//! stdout (`mbx … | head`) is a normal end, never a panic.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::platform::Platform;

/// Where one platform's build stands (see `build::progress::Progress::snapshot`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub done: usize,
    pub cached: usize,
    pub total: usize,
    pub seen: usize,
    pub running: Option<String>,
}

/// The few styles mbx uses, in one place.
pub mod style {
    use anstyle::{AnsiColor, Color, Style};

    const fn fg(c: AnsiColor) -> Style {
        Style::new().fg_color(Some(Color::Ansi(c)))
    }
    pub const BRAND: Style = fg(AnsiColor::Blue).bold();
    pub const OK: Style = fg(AnsiColor::Green);
    pub const BAD: Style = fg(AnsiColor::Red).bold();
    pub const WARN: Style = fg(AnsiColor::Yellow);
    pub const BOLD: Style = Style::new().bold();
}

/// `s` in `style` when `color`, else as it is.
pub fn paint(style: anstyle::Style, s: &str, color: bool) -> String {
    if color {
        format!("{style}{s}{style:#}")
    } else {
        s.to_string()
    }
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `text` to stdout. A closed pipe is remembered and everything after
/// it dropped: the reader went away, which is not an error of mbx's.
pub fn out(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        } else {
            tracing::warn!("cannot write to stdout: {e}");
        }
    }
}

/// [`out`] with a newline.
pub fn outln(text: &str) {
    out(&format!("{text}\n"));
}

/// Did the reader of stdout go away?
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// One line on stderr (errors at the binary's edge).
pub fn err(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// The one printer for status lines; safe to share between build threads.
/// On a terminal it also draws one progress bar per building platform.
pub struct Printer {
    lock: Mutex<()>,
    quiet: bool,
    color: bool,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    by_platform: Mutex<HashMap<String, ProgressBar>>,
}

impl Printer {
    pub fn new(quiet: bool) -> Printer {
        let tty = std::io::stderr().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Printer {
            lock: Mutex::new(()),
            quiet,
            color,
            bars: (tty && !quiet).then(|| Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                by_platform: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn status(&self, msg: &str) {
        if self.quiet {
            return;
        }
        let _g = self.lock.lock();
        let line = if self.color {
            format!("{} {msg}", paint(style::BRAND, "mbx", true))
        } else {
            format!("mbx: {msg}")
        };
        if let Some(b) = &self.bars {
            if !b.by_platform.lock().expect("bars").is_empty() {
                let _ = b.multi.println(line);
                return;
            }
        }
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// One platform's whole build log (`title`: `linux/arm64 build`).
    /// On a terminal: nothing (the bars showed it). In GitHub Actions
    /// (`GITHUB_ACTIONS=true`): a collapsed `::group::`, as build-push-action
    /// shows its build. Elsewhere off a terminal (a script, a pipe, another
    /// CI): only a failed build's log, so a good run stays a few lines and a
    /// failure shows everything (the run record holds every step either way).
    /// `text` must already be redacted and hold no workflow command.
    pub fn build_log(&self, title: &str, text: &str, failed: bool) {
        if self.quiet || self.bars.is_some() {
            return;
        }
        let actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let block = if actions {
            // Commands are also stopped inside the group (a token the log cannot guess).
            let token = format!(
                "mbx-{:016x}",
                std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    title
                )
            );
            format!("::group::{title}\n::stop-commands::{token}\n{text}\n::{token}::\n::endgroup::")
        } else if failed {
            format!("mbx: {title} log:\n{text}\nmbx: end of the {title} log")
        } else {
            return;
        };
        let _g = self.lock.lock();
        let _ = writeln!(std::io::stderr().lock(), "{block}");
    }

    /// Where one platform's build stands (a bar on a terminal, nothing otherwise).
    pub fn progress(&self, platform: &Platform, snap: &Snapshot) {
        let Some(b) = &self.bars else { return };
        let mut map = b.by_platform.lock().expect("bars");
        if snap.total == 0 && !map.contains_key(&platform.to_string()) {
            return; // nothing to measure yet
        }
        let bar = map.entry(platform.to_string()).or_insert_with(|| {
            let template = if self.color {
                "{prefix:<14.bold} [{bar:24.cyan/blue}] {pos}/{len} {elapsed:>4} {wide_msg}"
            } else {
                "{prefix:<14} [{bar:24}] {pos}/{len} {elapsed:>4} {wide_msg}"
            };
            let bar = b.multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(platform.to_string());
            bar
        });
        bar.set_length(snap.total as u64);
        bar.set_position(snap.done as u64);
        match &snap.running {
            Some(step) => bar.set_message(step.replace(['\r', '\n'], " ")),
            None if snap.total > 0 && snap.done == snap.total => {
                bar.set_message(format!("done, {} cached", snap.cached))
            }
            None => {}
        }
    }

    /// Remove the bars before the report is printed.
    pub fn clear_progress(&self) {
        if let Some(b) = &self.bars {
            for (_, bar) in b.by_platform.lock().expect("bars").drain() {
                bar.finish_and_clear();
            }
            let _ = b.multi.clear();
        }
    }
}

/// Colours for the final report on stdout: only on a terminal, never with `NO_COLOR`.
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
