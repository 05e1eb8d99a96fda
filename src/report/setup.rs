//! What `mbx setup` found and did, as terminal lines: the tools, the
//! platforms the host runs natively, each QEMU handler, the builder, what
//! setup changed and how long each phase took.

use std::fmt::Write as _;

use crate::platform::Platform;
use crate::run::{BinfmtRecord, BuilderRecord, PlatformsSource, SetupRecord};
use crate::setup::builder::Cleanup;

/// The human summary of a setup (`mbx setup`): `platforms` are the ones asked
/// for, `host` the machine's own.
pub fn render(s: &SetupRecord, platforms: &[Platform], host: &Platform) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "docker    {}",
        s.docker_version.as_deref().unwrap_or("?")
    );
    let _ = writeln!(
        o,
        "buildx    {}",
        s.buildx_version.as_deref().unwrap_or("?")
    );
    for p in platforms.iter().filter(|p| p.is_native_on(host)) {
        let _ = writeln!(o, "native    {p}");
    }
    for b in &s.binfmt {
        o.push_str(&binfmt(b));
    }
    if let Some(b) = &s.builder {
        o.push_str(&builder(b));
    }
    for a in &s.actions {
        let _ = writeln!(o, "did       {a}");
    }
    let phases: Vec<String> = s
        .phases
        .iter()
        .map(|p| format!("{} {:.2}s", p.name, p.seconds))
        .collect();
    if !phases.is_empty() {
        let _ = writeln!(o, "time      {}", phases.join(", "));
    }
    o
}

/// One QEMU handler: its interpreter, flags, version and any repair.
fn binfmt(b: &BinfmtRecord) -> String {
    let mut o = String::new();
    let interp = match (b.interpreter.as_deref(), b.interpreter_present) {
        (Some(i), Some(false)) => format!("{i}, not on the host: held open by the kernel (F)"),
        (Some(i), _) => i.to_string(),
        (None, _) => "-".into(),
    };
    let _ = writeln!(
        o,
        "qemu      {}: handler {} ({}, flags {}{}){}{}",
        b.platform,
        b.handler.as_deref().unwrap_or("-"),
        interp,
        b.flags,
        if b.enabled { "" } else { ", disabled" },
        b.qemu_version
            .as_deref()
            .map(|v| format!(", {v}"))
            .unwrap_or_default(),
        b.repaired
            .map(|r| format!(" [repaired: was {r}]"))
            .unwrap_or_default(),
    );
    o
}

/// The builder: what setup did with it, how it differed, its platforms.
fn builder(b: &BuilderRecord) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "builder   {} {} (driver {}, BuildKit {}{})",
        b.name,
        b.action,
        b.driver,
        b.buildkit_version.as_deref().unwrap_or("?"),
        if b.created_by_mbx {
            ", created by mbx"
        } else {
            ""
        }
    );
    for d in &b.differences {
        let _ = writeln!(o, "          was: {d}");
    }
    let via = b
        .control_api_via
        .as_deref()
        .map(|v| format!(" via {v}"))
        .unwrap_or_default();
    let source = match b.platforms_source {
        Some(PlatformsSource::ControlApi) => format!("BuildKit control API, ListWorkers{via}"),
        Some(PlatformsSource::BuildxInspect) => "docker buildx inspect (fallback)".to_string(),
        None => String::new(),
    };
    let _ = writeln!(
        o,
        "          platforms ({source}): {}",
        b.platforms.join(", ")
    );
    if let Some(n) = &b.note {
        let _ = writeln!(o, "          note: {n}");
    }
    o
}

/// What `mbx setup --cleanup` did to builder `name`, in one line.
pub fn cleanup(name: &str, done: &Cleanup) -> String {
    match done {
        Cleanup::Removed => format!("cleanup   removed builder `{name}` (created by mbx)\n"),
        Cleanup::NotOurs => {
            format!("cleanup   left builder `{name}` alone: mbx did not create it\n")
        }
        Cleanup::Absent => format!("cleanup   no builder `{name}`: nothing to remove\n"),
        Cleanup::InUse => format!(
            "cleanup   left builder `{name}` alone: another mbx run is using it (the last one to finish removes it)\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::PhaseTiming;

    fn record() -> SetupRecord {
        let binfmt = serde_json::json!([
            {"platform": "linux/arm64", "handler": "qemu-aarch64",
             "interpreter": "/usr/bin/qemu-aarch64-static", "enabled": true, "flags": "POCF",
             "interpreter_present": false, "qemu_version": "qemu-aarch64 version 7.2.13"},
            {"platform": "linux/riscv64", "handler": null, "interpreter": null,
             "enabled": false, "flags": "", "repaired": "missing"}
        ]);
        let builder = serde_json::json!({
            "name": "ci-builder", "driver": "docker-container", "action": "reused",
            "buildkit_version": "v0.13.2", "platforms": ["linux/amd64", "linux/arm64"],
            "platforms_source": "control-api", "control_api_via": "docker buildx dial-stdio",
            "differences": ["driver docker"], "note": "a note", "created_by_mbx": true
        });
        SetupRecord {
            docker_version: Some("27.5.1".into()),
            buildx_version: None,
            binfmt: serde_json::from_value(binfmt).unwrap(),
            builder: Some(serde_json::from_value(builder).unwrap()),
            actions: vec!["registered qemu-riscv64".into()],
            phases: vec![
                PhaseTiming {
                    name: "qemu".into(),
                    seconds: 0.123,
                },
                PhaseTiming {
                    name: "builder".into(),
                    seconds: 1.5,
                },
            ],
        }
    }

    #[test]
    fn setup_lines() {
        let platforms: Vec<Platform> = ["linux/amd64", "linux/386", "linux/arm64"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let host: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(
            render(&record(), &platforms, &host),
            "docker    27.5.1
buildx    ?
native    linux/amd64
native    linux/386
qemu      linux/arm64: handler qemu-aarch64 (/usr/bin/qemu-aarch64-static, not on the host: \
held open by the kernel (F), flags POCF), qemu-aarch64 version 7.2.13
qemu      linux/riscv64: handler - (-, flags , disabled) [repaired: was missing]
builder   ci-builder reused (driver docker-container, BuildKit v0.13.2, created by mbx)
          was: driver docker
          platforms (BuildKit control API, ListWorkers via docker buildx dial-stdio): \
linux/amd64, linux/arm64
          note: a note
did       registered qemu-riscv64
time      qemu 0.12s, builder 1.50s
"
        );
        let empty = render(&SetupRecord::default(), &[], &host);
        assert_eq!(empty, "docker    ?\nbuildx    ?\n");
    }

    #[test]
    fn cleanup_lines() {
        assert_eq!(
            cleanup("b", &Cleanup::Removed),
            "cleanup   removed builder `b` (created by mbx)\n"
        );
        assert!(cleanup("b", &Cleanup::NotOurs).contains("mbx did not create it"));
        assert!(cleanup("b", &Cleanup::Absent).contains("nothing to remove"));
    }
}
