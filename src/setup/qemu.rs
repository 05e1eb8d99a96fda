//! QEMU user emulation through binfmt_misc: which handler runs a foreign
//! platform's binaries, is it enabled, does it carry the F flag (needed for
//! containers: the kernel opens the interpreter at registration, so it works
//! inside a container's root filesystem).
//!
//! Handlers are matched by their magic and mask against an ELF header of the
//! platform, not by name: installers name them differently.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::run::BinfmtRecord;

pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

#[derive(Debug, Clone, PartialEq)]
pub struct Handler {
    pub name: String,
    pub enabled: bool,
    pub interpreter: String,
    pub flags: String,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
}

impl Handler {
    /// Parse one `/proc/sys/fs/binfmt_misc/<name>` file. Extension-based
    /// entries (no magic) return None.
    pub fn parse(name: &str, text: &str) -> Option<Handler> {
        let mut h = Handler {
            name: name.to_string(),
            enabled: false,
            interpreter: String::new(),
            flags: String::new(),
            offset: 0,
            magic: Vec::new(),
            mask: Vec::new(),
        };
        for line in text.lines() {
            let line = line.trim();
            if line == "enabled" {
                h.enabled = true;
            } else if let Some(v) = line.strip_prefix("interpreter ") {
                h.interpreter = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("flags:") {
                h.flags = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("offset ") {
                h.offset = v.trim().parse().ok()?;
            } else if let Some(v) = line.strip_prefix("magic ") {
                h.magic = unhex(v.trim())?;
            } else if let Some(v) = line.strip_prefix("mask ") {
                h.mask = unhex(v.trim())?;
            }
        }
        if h.magic.is_empty() {
            return None;
        }
        Some(h)
    }

    /// Would the kernel hand a file starting with `header` to this handler?
    pub fn matches(&self, header: &[u8]) -> bool {
        self.magic.iter().enumerate().all(|(i, &m)| {
            let mask = self.mask.get(i).copied().unwrap_or(0xff);
            match header.get(self.offset + i) {
                Some(&b) => b & mask == m & mask,
                None => false,
            }
        })
    }

    pub fn has_fix_binary(&self) -> bool {
        self.flags.contains('F')
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The first 20 bytes of an executable ELF file for `platform`.
pub fn elf_header(platform: &Platform) -> Option<[u8; 20]> {
    // (class: 1 = 32-bit, 2 = 64-bit; data: 1 = little, 2 = big endian; e_machine)
    let (class, data, machine): (u8, u8, u16) = match platform.arch.as_str() {
        "amd64" => (2, 1, 62),
        "arm64" => (2, 1, 183),
        "arm" => (1, 1, 40),
        "386" => (1, 1, 3),
        "ppc64le" => (2, 1, 21),
        "s390x" => (2, 2, 22),
        "riscv64" => (2, 1, 243),
        "mips64le" => (2, 1, 8),
        "mips64" => (2, 2, 8),
        "loong64" => (2, 1, 258),
        _ => return None,
    };
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class;
    h[5] = data;
    h[6] = 1;
    let (e_type, e_machine) = if data == 1 {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    } else {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    };
    h[16..18].copy_from_slice(&e_type);
    h[18..20].copy_from_slice(&e_machine);
    Some(h)
}

/// Read every magic-based handler in `dir`.
pub fn read_handlers(dir: &Path) -> std::io::Result<Vec<Handler>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "register" || name == "status" {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            if let Some(h) = Handler::parse(&name, &text) {
                out.push(h);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// binfmt_misc must be mounted to be read; mount it when we may.
fn ensure_mounted(dir: &Path) -> Result<()> {
    if dir.join("status").exists() {
        return Ok(());
    }
    let mounted = std::process::Command::new("mount")
        .args(["-t", "binfmt_misc", "binfmt_misc"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if mounted && dir.join("status").exists() {
        return Ok(());
    }
    Err(Error::env(
        format!("binfmt_misc is not mounted at {}", dir.display()),
        format!(
            "run as root: mount -t binfmt_misc binfmt_misc {}",
            dir.display()
        ),
    ))
}

/// Check a handler exists, is enabled and has the F flag for every platform
/// that `host` cannot run natively. Returns what was found for the record.
pub fn check(
    platforms: &[Platform],
    host: &Platform,
    dir: Option<&Path>,
) -> Result<Vec<BinfmtRecord>> {
    let dir: PathBuf = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(BINFMT_DIR));
    let foreign: Vec<&Platform> = platforms.iter().filter(|p| !p.is_native_on(host)).collect();
    if foreign.is_empty() {
        return Ok(Vec::new());
    }
    ensure_mounted(&dir)?;
    let handlers = read_handlers(&dir).map_err(|e| {
        Error::env(
            format!("cannot read {}: {e}", dir.display()),
            "run mbx as root, or on a machine where binfmt_misc is readable",
        )
    })?;
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for p in foreign {
        let Some(header) = elf_header(p) else {
            problems.push(format!(
                "{p}: mbx does not know the ELF machine of this architecture"
            ));
            continue;
        };
        let found = handlers.iter().find(|h| h.matches(&header));
        records.push(BinfmtRecord {
            platform: p.clone(),
            handler: found.map(|h| h.name.clone()),
            interpreter: found.map(|h| h.interpreter.clone()),
            enabled: found.is_some_and(|h| h.enabled),
            flags: found.map(|h| h.flags.clone()).unwrap_or_default(),
        });
        match found {
            None => problems.push(format!("{p}: no binfmt_misc handler")),
            Some(h) if !h.enabled => {
                problems.push(format!("{p}: handler `{}` is disabled", h.name))
            }
            Some(h) if !h.has_fix_binary() => problems.push(format!(
                "{p}: handler `{}` lacks the F flag (flags: `{}`), so it fails inside containers",
                h.name, h.flags
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(Error::env(
            format!("QEMU emulation is not ready:\n  {}", problems.join("\n  ")),
            "register the handlers with the F flag: on Debian `apt-get install qemu-user-static binfmt-support` \
then `update-binfmts --enable qemu-aarch64` (one per architecture); with Docker, run a binfmt installer image \
(`docker run --privileged --rm tonistiigi/binfmt --install arm64`); or build on a native runner",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Debian's qemu-user-static registers it (read from a real machine).
    const DEBIAN_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn debian_handler_matches_arm64_only() {
        let h = Handler::parse("qemu-aarch64", DEBIAN_AARCH64).unwrap();
        assert!(h.enabled && h.has_fix_binary());
        assert!(h.matches(&elf_header(&p("linux/arm64")).unwrap()));
        assert!(!h.matches(&elf_header(&p("linux/amd64")).unwrap()));
        assert!(!h.matches(&elf_header(&p("linux/arm/v7")).unwrap()));
    }

    #[test]
    fn extension_entries_are_ignored() {
        assert!(Handler::parse(
            "jar",
            "enabled\ninterpreter /usr/bin/java\nflags: \nextension .jar\n"
        )
        .is_none());
    }

    fn fake_dir(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("status"), "enabled\n").unwrap();
        std::fs::write(d.path().join("register"), "").unwrap();
        for (n, t) in entries {
            std::fs::write(d.path().join(n), t).unwrap();
        }
        d
    }

    #[test]
    fn check_reports_each_problem() {
        let host = p("linux/amd64");
        let want = [p("linux/amd64"), p("linux/arm64")];
        let ok = fake_dir(&[("qemu-aarch64", DEBIAN_AARCH64)]);
        let recs = check(&want, &host, Some(ok.path())).unwrap();
        assert_eq!(recs.len(), 1, "native amd64 needs no handler");
        assert_eq!(recs[0].handler.as_deref(), Some("qemu-aarch64"));

        let none = fake_dir(&[]);
        let e = check(&want, &host, Some(none.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux/arm64: no binfmt_misc handler"), "{e}");

        let disabled = fake_dir(&[(
            "qemu-aarch64",
            &DEBIAN_AARCH64.replace("enabled", "disabled"),
        )]);
        let e = check(&want, &host, Some(disabled.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is disabled"), "{e}");

        let no_f = fake_dir(&[(
            "qemu-aarch64",
            &DEBIAN_AARCH64.replace("flags: PF", "flags: P"),
        )]);
        let e = check(&want, &host, Some(no_f.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks the F flag"), "{e}");
    }
}
