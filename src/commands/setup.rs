//! `mbx setup`: QEMU handlers and the builder, checked or made; `--cleanup`.

use crate::cli::SetupArgs;
use crate::config::Config;
use crate::docker::Buildx;
use crate::error::Result;
use crate::pipeline::ExitStatus;
use crate::plan::{self, Plan};
use crate::platform::Platform;
use crate::printer;
use crate::setup;

pub async fn setup(args: SetupArgs) -> Result<ExitStatus> {
    let config = Config::load()?;
    let plan = Plan {
        platforms: plan::platforms(&args.platforms)?,
        host: Platform::host(),
        builder: plan::builder(&args.builder, &config)?,
        build: None,
        local: true,
    };
    let buildx = Buildx::default();
    if args.cleanup {
        let name = &plan.builder.name;
        let done = tokio::task::block_in_place(|| setup::builder::cleanup(&buildx, name))?;
        match done {
            setup::builder::Cleanup::Removed => printer::outln(&format!(
                "cleanup   removed builder `{name}` (created by mbx)"
            )),
            setup::builder::Cleanup::NotOurs => printer::outln(&format!(
                "cleanup   left builder `{name}` alone: mbx did not create it"
            )),
            setup::builder::Cleanup::Absent => {
                printer::outln(&format!("cleanup   no builder `{name}`: nothing to remove"))
            }
        }
        return Ok(ExitStatus::Success);
    }
    let qemu = setup::QemuPlan::from_args(&args.qemu, &config);
    let s = setup::run(&plan, &buildx, &qemu).await?;
    if args.json {
        printer::outln(&serde_json::to_string_pretty(&s).expect("json"));
        return Ok(ExitStatus::Success);
    }
    printer::out(&render_setup(&s, &plan));
    Ok(ExitStatus::Success)
}

/// The human summary of what setup found and did.
pub fn render_setup(s: &crate::run::SetupRecord, plan: &Plan) -> String {
    use std::fmt::Write;
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
    for p in plan.platforms.iter().filter(|p| p.is_native_on(&plan.host)) {
        let _ = writeln!(o, "native    {p}");
    }
    for b in &s.binfmt {
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
                .as_deref()
                .map(|r| format!(" [repaired: was {r}]"))
                .unwrap_or_default(),
        );
    }
    if let Some(b) = &s.builder {
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
        let source = match b.platforms_source.as_str() {
            "control-api" => format!("BuildKit control API, ListWorkers{via}"),
            "buildx-inspect" => "docker buildx inspect (fallback)".to_string(),
            other => other.to_string(),
        };
        let _ = writeln!(
            o,
            "          platforms ({source}): {}",
            b.platforms.join(", ")
        );
        if let Some(n) = &b.note {
            let _ = writeln!(o, "          note: {n}");
        }
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
