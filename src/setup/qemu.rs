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
use crate::run::{BinfmtRecord, BinfmtRepair};

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
            match self.offset.checked_add(i).and_then(|at| header.get(at)) {
                Some(&b) => b & mask == m & mask,
                None => false,
            }
        })
    }

    pub fn has_fix_binary(&self) -> bool {
        self.flags.contains('F')
    }
}

/// Hex digits to bytes, pairwise on bytes (not chars: the file may hold anything).
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
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
    // mount's own complaint goes into the error, not onto the terminal.
    let mount = std::process::Command::new("mount")
        .args(["-t", "binfmt_misc", "binfmt_misc"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output();
    if matches!(&mount, Ok(o) if o.status.success()) && dir.join("status").exists() {
        return Ok(());
    }
    let why = match &mount {
        Ok(o) => String::from_utf8_lossy(&o.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches('.')
            .to_string(),
        Err(e) => format!("mount: {e}"),
    };
    Err(Error::env(
        format!(
            "binfmt_misc is not mounted at {}{}",
            dir.display(),
            if why.is_empty() {
                String::new()
            } else {
                format!(" and cannot be mounted here ({why})")
            }
        ),
        format!(
            "run as root: mount -t binfmt_misc binfmt_misc {}",
            dir.display()
        ),
    ))
}

/// What is wrong with a platform's handler, if anything.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    Missing,
    Disabled,
    NoFixBinary,
    /// Registered without F and its interpreter is not on the host: exec fails.
    StaleInterpreter,
}

impl Problem {
    /// What the record says setup repaired.
    pub fn repair(&self) -> BinfmtRepair {
        match self {
            Problem::Missing => BinfmtRepair::Missing,
            Problem::Disabled => BinfmtRepair::Disabled,
            Problem::NoFixBinary => BinfmtRepair::NoFixBinary,
            Problem::StaleInterpreter => BinfmtRepair::StaleInterpreter,
        }
    }
}

/// One foreign platform's handler as found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub platform: Platform,
    /// Every handler matching the platform's ELF header; the kernel uses the
    /// newest (last registered), which binfmt_misc does not show: mbx reports
    /// the first by name and repairs them all.
    pub handlers: Vec<Handler>,
    pub problem: Option<Problem>,
    pub record: BinfmtRecord,
}

fn dir_or_default(dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(BINFMT_DIR))
}

/// Read the handlers of every platform `host` cannot run natively.
pub fn inspect(
    platforms: &[Platform],
    host: &Platform,
    dir: Option<&Path>,
) -> Result<Vec<Finding>> {
    let dir = dir_or_default(dir);
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
    let mut out = Vec::new();
    for p in foreign {
        let Some(header) = elf_header(p) else {
            return Err(Error::input(
                format!("{p}: mbx does not know the ELF machine of this architecture"),
                "build it on a native runner, or ask for linux/arm64, arm, 386, ppc64le, s390x, riscv64",
            ));
        };
        let matching: Vec<Handler> = handlers
            .iter()
            .filter(|h| h.matches(&header))
            .cloned()
            .collect();
        let found = matching.first();
        let present = found.map(|h| Path::new(&h.interpreter).exists());
        let problem = match found {
            None => Some(Problem::Missing),
            Some(h) if !h.has_fix_binary() && present == Some(false) => {
                Some(Problem::StaleInterpreter)
            }
            Some(h) if !h.has_fix_binary() => Some(Problem::NoFixBinary),
            Some(h) if !h.enabled => Some(Problem::Disabled),
            Some(_) => None,
        };
        let record = BinfmtRecord {
            platform: p.clone(),
            handler: found.map(|h| h.name.clone()),
            interpreter: found.map(|h| h.interpreter.clone()),
            enabled: found.is_some_and(|h| h.enabled),
            flags: found.map(|h| h.flags.clone()).unwrap_or_default(),
            interpreter_present: present,
            qemu_version: found
                .filter(|_| present == Some(true))
                .and_then(|h| qemu_version(&h.interpreter)),
            repaired: None,
        };
        out.push(Finding {
            platform: p.clone(),
            handlers: matching,
            problem,
            record,
        });
    }
    Ok(out)
}

/// `qemu-aarch64 version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)` → that line.
fn qemu_version(interpreter: &str) -> Option<String> {
    // Debian's `<arch>-binfmt-P` is a symlink that refuses to run unless
    // started by the kernel; the binary it names answers --version.
    let real = std::fs::canonicalize(interpreter).ok()?;
    let mut child = std::process::Command::new(real)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    // Its first line is all that is read (an interpreter that prints on is stopped).
    let mut out = Vec::new();
    let read = std::io::Read::read_to_end(
        &mut std::io::Read::take(child.stdout.take()?, 4096),
        &mut out,
    );
    if read.is_ok() && out.len() == 4096 {
        let _ = child.kill();
    }
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out);
    let line = text.lines().next()?.trim();
    line.contains("version").then(|| line.to_string())
}

/// The error for findings that still have problems.
pub fn problems_error(findings: &[Finding]) -> Option<Error> {
    let problems: Vec<String> = findings
        .iter()
        .filter_map(|f| {
            let h = f.handlers.first();
            let name = h.map(|h| h.name.as_str()).unwrap_or("");
            f.problem.as_ref().map(|p| match p {
                Problem::Missing => format!("{}: no binfmt_misc handler", f.platform),
                Problem::Disabled => format!("{}: handler `{name}` is disabled", f.platform),
                Problem::NoFixBinary => format!(
                    "{}: handler `{name}` lacks the F flag (flags: `{}`), so it fails inside containers",
                    f.platform,
                    h.map(|h| h.flags.as_str()).unwrap_or("")
                ),
                Problem::StaleInterpreter => format!(
                    "{}: handler `{name}` names interpreter {} which does not exist (and has no F flag)",
                    f.platform,
                    h.map(|h| h.interpreter.as_str()).unwrap_or("")
                ),
            })
        })
        .collect();
    if problems.is_empty() {
        return None;
    }
    Some(Error::env(
        format!("QEMU emulation is not ready:\n  {}", problems.join("\n  ")),
        "run `mbx setup --reset-qemu` (installer image, or `--qemu-from host` with Debian's qemu-user-static), \
or register the handlers yourself with the F flag (`docker run --privileged --rm tonistiigi/binfmt --install arm64`); \
or build on a native runner",
    ))
}

/// Check a handler exists, is enabled and has the F flag for every platform
/// that `host` cannot run natively. Returns what was found for the record.
pub fn check(
    platforms: &[Platform],
    host: &Platform,
    dir: Option<&Path>,
) -> Result<Vec<BinfmtRecord>> {
    let findings = inspect(platforms, host, dir)?;
    match problems_error(&findings) {
        Some(e) => Err(e),
        None => Ok(findings.into_iter().map(|f| f.record).collect()),
    }
}

// ---------------------------------------------------------------- repair

/// QEMU's name for an architecture (`qemu-<name>`, `<name>-binfmt-P`).
pub fn qemu_arch(platform: &Platform) -> Option<&'static str> {
    Some(match platform.arch.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "arm",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "mips64" => "mips64",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// The installer-image argument of an architecture (tonistiigi/binfmt's names).
pub fn installer_arch(platform: &Platform) -> &str {
    platform.arch.as_str()
}

/// Magic and mask as binfmt_misc's register syntax wants them (`\xNN`):
/// the ELF header of the platform, ignoring the ABI version byte and the
/// low bit of e_type (executables and PIE both match), as QEMU's own
/// qemu-binfmt-conf.sh does.
pub fn magic_and_mask(platform: &Platform) -> Option<(String, String)> {
    let h = elf_header(platform)?;
    let mut mask = [0xffu8; 20];
    mask[7] = 0x00;
    if h[5] == 1 {
        mask[16] = 0xfe;
    } else {
        mask[17] = 0xfe;
    }
    let esc = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
    Some((esc(&h), esc(&mask)))
}

/// The line written to `binfmt_misc/register`.
pub fn register_line(
    name: &str,
    platform: &Platform,
    interpreter: &str,
    flags: &str,
) -> Option<String> {
    let (magic, mask) = magic_and_mask(platform)?;
    Some(format!(":{name}:M:0:{magic}:{mask}:{interpreter}:{flags}"))
}

/// The host's qemu-user-static interpreter for `platform` and the flags it
/// needs: Debian's `<arch>-binfmt-P` wrapper wants P (preserve argv0).
pub fn host_interpreter(platform: &Platform) -> Option<(String, &'static str)> {
    let q = qemu_arch(platform)?;
    let wrapper = format!("/usr/libexec/qemu-binfmt/{q}-binfmt-P");
    if Path::new(&wrapper).exists() {
        return Some((wrapper, "PF"));
    }
    let plain = format!("/usr/bin/qemu-{q}-static");
    if Path::new(&plain).exists() {
        return Some((plain, "F"));
    }
    None
}

/// Why handlers could not be installed, as one error: what failed
/// (`cause`), what the user can change (`help`), and last the way around
/// emulation altogether, native nodes (remote nodes skip this host's
/// handlers: `builder::builds_elsewhere`).
pub fn cannot_install(platforms: &[&Platform], cause: String, help: &str) -> Error {
    let list: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
    let nodes: Vec<String> = list
        .iter()
        .enumerate()
        .map(|(i, p)| match list.len() {
            1 => format!("--node tcp://HOST:PORT={p}"),
            _ => format!("--node tcp://HOST{}:PORT={p}", i + 1),
        })
        .collect();
    Error::env(
        format!(
            "QEMU handlers for {} cannot be installed: {cause}",
            list.join(", ")
        ),
        format!(
            "{help}; or build on native BuildKit nodes instead of emulating (--driver remote {})",
            nodes.join(" ")
        ),
    )
}

fn write_entry(path: &Path, text: &str, platform: &Platform) -> Result<()> {
    std::fs::write(path, text).map_err(|e| {
        let help = if e.raw_os_error() == Some(libc::EROFS) {
            "binfmt_misc is read-only here (a container without --privileged, or a read-only mount): \
             register the handlers where it is writable (on the host, as root: \
             `apt-get install qemu-user-static binfmt-support`), or run the runner's container --privileged, \
             or use --qemu-from image (a privileged installer container through the Docker daemon)"
        } else {
            "registering needs root (CAP_SYS_ADMIN over the host's binfmt_misc): run mbx as root, \
             or use --qemu-from image (a privileged installer container through the Docker daemon), \
             or register the handlers on the host (as root: `apt-get install qemu-user-static binfmt-support`)"
        };
        cannot_install(
            &[platform],
            format!("cannot write to {}: {e}", path.display()),
            help,
        )
    })
}

/// Unregister every handler of a finding (they all match its platform).
pub fn unregister(dir: Option<&Path>, f: &Finding) -> Result<Vec<String>> {
    let dir = dir_or_default(dir);
    let mut done = Vec::new();
    for h in &f.handlers {
        let p = dir.join(&h.name);
        if p.exists() {
            write_entry(&p, "-1", &f.platform)?;
            done.push(format!("unregistered {} ({})", h.name, f.platform));
        }
    }
    Ok(done)
}

/// Repair one finding from the host's qemu-user-static: enable a disabled
/// handler that is otherwise fine; else unregister and register again with F.
pub fn repair_from_host(dir: Option<&Path>, f: &Finding, reset: bool) -> Result<Vec<String>> {
    let d = dir_or_default(dir);
    if f.problem == Some(Problem::Disabled) && !reset {
        let h = &f.handlers[0];
        write_entry(&d.join(&h.name), "1", &f.platform)?;
        return Ok(vec![format!("enabled {} ({})", h.name, f.platform)]);
    }
    let Some((interp, flags)) = host_interpreter(&f.platform) else {
        return Err(cannot_install(
            &[&f.platform],
            "the host has no qemu-user-static interpreter for it".into(),
            "install it (as root: `apt-get install qemu-user-static binfmt-support`), \
             or use --qemu-from image (a privileged installer container through the Docker daemon)",
        ));
    };
    let mut done = unregister(dir, f)?;
    let name = format!("qemu-{}", qemu_arch(&f.platform).expect("known arch"));
    let line = register_line(&name, &f.platform, &interp, flags).expect("known arch");
    write_entry(&d.join("register"), &line, &f.platform)?;
    done.push(format!(
        "registered {name} ({}) → {interp}, flags {flags}",
        f.platform
    ));
    Ok(done)
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

    #[test]
    fn cannot_install_names_one_native_node_per_platform() {
        let (arm, s390x) = (p("linux/arm64"), p("linux/s390x"));
        let e = cannot_install(&[&arm], "why".into(), "help");
        assert_eq!(
            e.to_string(),
            "QEMU handlers for linux/arm64 cannot be installed: why"
        );
        assert!(e
            .help()
            .unwrap()
            .ends_with("(--driver remote --node tcp://HOST:PORT=linux/arm64)"));
        let e = cannot_install(&[&arm, &s390x], "why".into(), "help");
        assert!(e.help().unwrap().ends_with(
            "(--driver remote --node tcp://HOST1:PORT=linux/arm64 --node tcp://HOST2:PORT=linux/s390x)"
        ), "{:?}", e.help());
        // Each suggested node parses as mbx's own --node.
        let nodes = crate::plan::nodes(
            &[
                "tcp://HOST1:PORT=linux/arm64".into(),
                "tcp://HOST2:PORT=linux/s390x".into(),
            ],
            "remote",
        )
        .unwrap();
        assert_eq!(nodes.len(), 2);
    }

    #[test]
    fn register_line_matches_debians_handler() {
        // The entry mbx registers from the host must match what Debian's
        // qemu-user-static registers (magic and mask from /usr/share/binfmts).
        let line = register_line(
            "qemu-aarch64",
            &p("linux/arm64"),
            "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
            "PF",
        )
        .unwrap();
        assert_eq!(
            line,
            ":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PF"
        );
        let debian = Handler::parse("qemu-aarch64", DEBIAN_AARCH64).unwrap();
        let (magic, mask) = magic_and_mask(&p("linux/arm64")).unwrap();
        let unesc = |s: &str| unhex(&s.replace("\\x", "")).unwrap();
        assert_eq!(unesc(&magic), debian.magic);
        assert_eq!(unesc(&mask), debian.mask);
        // Big-endian: the mask's e_type byte moves.
        let (_, mask) = magic_and_mask(&p("linux/s390x")).unwrap();
        assert!(mask.ends_with("\\xff\\xfe\\xff\\xff"), "{mask}");
    }

    #[test]
    fn problems_are_ordered_f_flag_first() {
        let host = p("linux/amd64");
        let want = [p("linux/arm64")];
        // disabled AND without F: re-registration is needed, not just enabling
        let both = fake_dir(&[(
            "qemu-aarch64",
            &DEBIAN_AARCH64
                .replace("enabled", "disabled")
                .replace("flags: PF", "flags: P"),
        )]);
        let f = inspect(&want, &host, Some(both.path())).unwrap();
        // The interpreter exists only on machines with qemu-user-static.
        let want_problem = if Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists() {
            Problem::NoFixBinary
        } else {
            Problem::StaleInterpreter
        };
        assert_eq!(f[0].problem, Some(want_problem));
        let stale = fake_dir(&[(
            "qemu-aarch64",
            &DEBIAN_AARCH64.replace("flags: PF", "flags: P").replace(
                "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
                "/nonexistent/qemu",
            ),
        )]);
        let f = inspect(&want, &host, Some(stale.path())).unwrap();
        assert_eq!(f[0].problem, Some(Problem::StaleInterpreter));
        assert_eq!(f[0].record.interpreter_present, Some(false));
        let e = problems_error(&f).unwrap().to_string();
        assert!(e.contains("/nonexistent/qemu which does not exist"), "{e}");
        // With F, a path absent from the host is fine (the kernel holds it open).
        let held = fake_dir(&[(
            "qemu-aarch64",
            &DEBIAN_AARCH64.replace(
                "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
                "/usr/bin/qemu-aarch64-in-image",
            ),
        )]);
        let f = inspect(&want, &host, Some(held.path())).unwrap();
        assert_eq!(f[0].problem, None);
    }
}
