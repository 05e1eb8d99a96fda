//! One error type for the whole pipeline. Every variant says what failed and
//! carries a `help` line telling the user the fix; `exit_code` maps it to the
//! documented exit status (1 build/verify/environment failure, 2 bad input).

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's flags, paths or files are wrong. Exit 2.
    #[error("{message}")]
    Input { message: String, help: String },
    /// Something mbx needs on this machine is missing or down (Docker,
    /// binfmt handlers, the builder, the registry). Exit 1.
    #[error("{message}")]
    Environment { message: String, help: String },
    /// A build failed. Exit 1.
    #[error("{message}")]
    Build { message: String, help: String },
    /// A child process failed where mbx has nothing more specific to say.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The result could not be read back or is not what was asked. Exit 1.
    #[error("{message}")]
    Verify { message: String, help: String },
    /// Stopped by Ctrl-C (exit 130) or SIGTERM (exit 143).
    #[error("{message}")]
    Interrupted { message: String, help: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(message: impl Into<String>, help: impl Into<String>) -> Error {
        Error::Input {
            message: message.into(),
            help: help.into(),
        }
    }
    pub fn env(message: impl Into<String>, help: impl Into<String>) -> Error {
        Error::Environment {
            message: message.into(),
            help: help.into(),
        }
    }
    pub fn build(message: impl Into<String>, help: impl Into<String>) -> Error {
        Error::Build {
            message: message.into(),
            help: help.into(),
        }
    }
    pub fn verify(message: impl Into<String>, help: impl Into<String>) -> Error {
        Error::Verify {
            message: message.into(),
            help: help.into(),
        }
    }

    pub fn help(&self) -> Option<&str> {
        match self {
            Error::Input { help, .. }
            | Error::Environment { help, .. }
            | Error::Build { help, .. }
            | Error::Verify { help, .. }
            | Error::Interrupted { help, .. } => Some(help.as_str()).filter(|h| !h.is_empty()),
            Error::Command(_) => None,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input { .. } => 2,
            Error::Interrupted { .. } => crate::interrupt::exit_code(),
            _ => 1,
        }
    }
}

/// A child process that failed: its command line (secrets redacted), exit
/// status and the tail of its output, printed as sections.
#[derive(Debug)]
pub struct CommandError {
    pub command: String,
    pub status: Option<i32>,
    pub stdout_tail: String,
    pub stderr_tail: String,
    /// Why the program could not be started at all (not on PATH, not
    /// executable); then `status` is None and no stream was read.
    pub not_started: Option<String>,
}

impl std::error::Error for CommandError {}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.not_started, self.status) {
            (Some(why), _) => return write!(f, "`{}` could not be started: {why}", self.command),
            (None, Some(code)) => write!(f, "`{}` exited with status {code}", self.command)?,
            (None, None) => write!(f, "`{}` was killed by a signal", self.command)?,
        }
        for (name, text) in [("stderr", &self.stderr_tail), ("stdout", &self.stdout_tail)] {
            let text = text.trim_end();
            if !text.is_empty() {
                write!(f, "\n--- {name} (tail) ---\n{text}")?;
            }
        }
        Ok(())
    }
}

/// An error and its sources, joined with `: ` (reqwest hides the cause otherwise).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out = format!("{out}: {s}");
        src = s.source();
    }
    out
}

/// The last `max_lines` lines of `text`, at most `max_bytes` long.
pub fn tail(text: &str, max_lines: usize, max_bytes: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    let mut out = lines[start..].join("\n");
    if out.len() > max_bytes {
        let mut cut = out.len() - max_bytes;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("…{}", &out[cut..]);
    }
    out
}

/// A file from outside (a Docker config, a buildx state file) read whole,
/// but only up to `max` bytes: a larger one is an `InvalidData` error saying
/// so, read no further than the cap.
pub fn read_capped(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    // Room for what the file says it holds (up to the cap): read_to_end
    // then never doubles past it.
    let size = file.metadata().map_or(0, |m| m.len()).min(max + 1);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {max} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// The most read of a Docker config file (`config.json`: logins, helpers).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines_and_bytes() {
        let t = (1..=50)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(tail(&t, 3, 1000), "48\n49\n50");
        assert_eq!(
            tail("héllo wörld", 5, 4),
            "…rld",
            "never splits a character"
        );
    }

    #[test]
    fn command_error_shows_sections() {
        let e = CommandError {
            command: "docker buildx build .".into(),
            status: Some(1),
            stdout_tail: String::new(),
            stderr_tail: "ERROR: boom\n".into(),
            not_started: None,
        };
        let s = e.to_string();
        assert!(s.starts_with("`docker buildx build .` exited with status 1"));
        assert!(s.contains("--- stderr (tail) ---\nERROR: boom"));
        assert!(!s.contains("stdout"));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Error::input("x", "y").exit_code(), 2);
        assert_eq!(Error::env("x", "y").exit_code(), 1);
        assert_eq!(Error::verify("x", "").help(), None);
    }
}
