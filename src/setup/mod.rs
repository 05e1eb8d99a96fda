//! Setup stage: the machine can build every requested platform.
//! Docker answers → buildx is there and recent enough → preflight (driver
//! limits, gha cache v2) → QEMU handlers for foreign platforms, repaired when
//! broken → the builder exists with the wanted settings and its BuildKit
//! workers list every platform. Each phase is timed into the record.

pub mod builder;
pub mod lock;
pub mod preflight;
pub mod qemu;

use std::time::Instant;

use crate::docker::buildx::Buildx;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::run::{PhaseTiming, SetupRecord};
use qemu::cannot_install;

pub use crate::plan::{QemuPlan, QemuSource, DEFAULT_QEMU_IMAGE};

struct Phases {
    start: Instant,
    list: Vec<PhaseTiming>,
}

impl Phases {
    fn mark(&mut self, name: &str) {
        let now = Instant::now();
        self.list.push(PhaseTiming {
            name: name.into(),
            seconds: (now - self.start).as_secs_f64(),
        });
        self.start = now;
    }
}

pub async fn run(plan: &Plan, buildx: &Buildx, qemu_plan: &QemuPlan) -> Result<SetupRecord> {
    let mut phases = Phases {
        start: Instant::now(),
        list: Vec::new(),
    };
    let mut actions = Vec::new();
    let env = preflight::env_var;

    // Docker, buildx and (when the builder already exists as wanted) its
    // workers, asked at the same time: a warm run costs one round trip.
    let docker = crate::docker::Docker::connect()?;
    let bx = buildx.clone();
    let version = tokio::task::spawn_blocking(move || bx.version());
    let (engine, prefetched) = tokio::join!(
        docker.info(),
        builder::prefetch(buildx, Some(&docker), &plan.builder)
    );
    let engine = engine?;
    let buildx_version = version
        .await
        .map_err(|e| Error::env(format!("buildx version check panicked: {e}"), ""))??;
    phases.mark("probe");

    preflight::buildx(&buildx_version, plan, &env)?;
    if plan.builder.driver == "docker" {
        preflight::docker_driver(plan, docker.containerd_store().await?)?;
    }
    phases.mark("preflight");

    // Remote and kubernetes nodes emulate (or not) on their own machines:
    // this host's QEMU handlers play no part.
    let binfmt = if builder::builds_elsewhere(&plan.builder) {
        Vec::new()
    } else {
        ensure_qemu(plan, &docker, qemu_plan, &mut actions).await?
    };
    phases.mark("qemu");

    // Handlers changed since the workers were asked: ask again.
    let prefetched = prefetched.filter(|_| actions.is_empty());
    // One run at a time checks or makes the builder; then this run uses it
    // until it ends (a cleanup by another run leaves it alone).
    let name = plan.builder.name.clone();
    let setup_lock = tokio::task::spawn_blocking(move || lock::setup(&name))
        .await
        .map_err(|e| Error::env(format!("waiting for the builder lock panicked: {e}"), ""))??;
    let (builder, builder_phases) = builder::ensure(
        buildx,
        &plan.builder,
        &plan.platforms,
        Some(&docker),
        prefetched,
        &setup_lock,
    )
    .await?;
    lock::use_builder(&plan.builder.name, &setup_lock)?;
    drop(setup_lock);
    if builder.action != crate::run::BuilderAction::Reused {
        actions.push(format!("{} builder `{}`", builder.action, builder.name));
    }
    // The builder's own split (compare/create, then boot + ListWorkers).
    phases.start = Instant::now();
    phases.list.extend(builder_phases);

    preflight::buildkit(builder.buildkit_version.as_deref(), plan, &env)?;
    Ok(SetupRecord {
        docker_version: Some(engine.version),
        buildx_version: Some(buildx_version),
        binfmt,
        builder: Some(builder),
        actions,
        phases: phases.list,
    })
}

/// Where binfmt_misc is out of sight (not mounted, and mbx may not mount
/// it: no CAP_SYS_ADMIN), as the messages say it: "in this container" (a
/// runner's container: Docker, DinD, actions-runner-controller), else
/// "here" (a container mbx cannot tell, e.g. a non-root pod). None when
/// binfmt_misc is visible.
fn binfmt_hidden() -> Option<&'static str> {
    if std::path::Path::new("/proc/sys/fs/binfmt_misc/status").exists() {
        return None;
    }
    Some(if crate::docker::engine::in_container() {
        "in this container"
    } else {
        "here"
    })
}

/// Run the installer image through the daemon; its refusal or failure as
/// one error (`hidden`: where binfmt_misc is not visible, so the daemon is
/// the only way to the host kernel's handlers).
async fn run_installer(
    docker: &crate::docker::Docker,
    image: &str,
    args: &[String],
    platforms: &[&crate::platform::Platform],
    hidden: Option<&str>,
) -> Result<crate::docker::engine::InstallerRun> {
    let run = docker.run_installer(image, args).await?;
    let command = format!("{image} {}", args.join(" "));
    let register_on_host = format!(
        "register the handlers on the host once (as root: `apt-get install qemu-user-static binfmt-support`{}",
        if hidden.is_some() {
            "), or run the runner's container --privileged"
        } else {
            ", or `mbx setup --qemu-from host`)"
        }
    );
    if let Some(why) = &run.refused {
        let help = if let Some(place) = hidden {
            format!(
                "binfmt_misc is not visible {place}, so mbx asks the Docker daemon at {} \
                 to run the installer privileged: let the runner's daemon run privileged containers \
                 (a socket proxy or authorization plugin that refuses them, a rootless or \
                 userns-remap daemon cannot), or {register_on_host}",
                docker.host()
            )
        } else {
            format!(
                "the installer needs a privileged container: let the Docker daemon at {} run one \
                 (a socket proxy or authorization plugin that refuses them, a rootless or \
                 userns-remap daemon cannot), or {register_on_host}",
                docker.host()
            )
        };
        let cause = format!(
            "the Docker daemon refused the privileged installer container `{command}`: {why}"
        );
        return Err(cannot_install(platforms, cause, &help));
    }
    if run.exit_code != 0 {
        let cause = format!(
            "the installer `{command}` exited with status {}{}:\n{}",
            run.exit_code,
            hidden
                .map(|place| format!(" (binfmt_misc is not visible {place}, so the daemon ran it)"))
                .unwrap_or_default(),
            crate::error::tail(&run.output, 20, 4096)
        );
        let help = format!(
            "the daemon must run the installer privileged over the host's binfmt_misc (a rootless \
             daemon cannot) and the image must take `--install ARCHS` like tonistiigi/binfmt; \
             or {register_on_host}"
        );
        return Err(cannot_install(platforms, cause, &help));
    }
    Ok(run)
}

/// Where binfmt_misc is hidden (`place`, see `binfmt_hidden`) the handlers
/// that count are the host kernel's, which the daemon reaches: the binfmt
/// installer (privileged by the daemon, not by this container) registers
/// what is missing and leaves what is there. With `--qemu-from host` there
/// is nothing mbx can do here.
async fn qemu_through_daemon(
    plan: &Plan,
    docker: &crate::docker::Docker,
    qp: &QemuPlan,
    actions: &mut Vec<String>,
    (place, why): (&str, Error),
) -> Result<Vec<crate::run::BinfmtRecord>> {
    let foreign: Vec<&crate::platform::Platform> = plan
        .platforms
        .iter()
        .filter(|p| !p.is_native_on(&plan.host))
        .collect();
    let QemuSource::Image(image) = &qp.source else {
        return Err(cannot_install(
            &foreign,
            format!("--qemu-from host needs binfmt_misc, which is out of reach {place}: {why}"),
            "use --qemu-from image (the default: the installer gets its privileges from the Docker daemon), \
             or run the runner's container --privileged, or register the handlers on the host once \
             (as root: `apt-get install qemu-user-static binfmt-support`)",
        ));
    };
    let archs: Vec<&str> = foreign.iter().map(|p| qemu::installer_arch(p)).collect();
    let args = vec!["--install".to_string(), archs.join(",")];
    run_installer(docker, image, &args, &foreign, Some(place)).await?;
    actions.push(format!(
        "ran {image} {} (privileged, through the daemon: binfmt_misc is not visible {place})",
        args.join(" ")
    ));
    Ok(Vec::new())
}

/// The installer exited 0, yet this machine's binfmt_misc still has no
/// handler for some platforms: the daemon's containers do not reach it (a DOCKER_HOST on
/// another machine, a rootless daemon registering in its own instance).
fn unchanged_after_installer(
    image: &str,
    docker: &crate::docker::Docker,
    after: &[qemu::Finding],
    problems: Error,
) -> Error {
    // A handler there but wrong (no F flag, disabled): the installer did
    // reach this binfmt_misc; the problems say what it left.
    if after.iter().any(|f| {
        f.problem
            .as_ref()
            .is_some_and(|p| *p != qemu::Problem::Missing)
    }) {
        return problems;
    }
    let platforms: Vec<&crate::platform::Platform> = after
        .iter()
        .filter(|f| f.problem.is_some())
        .map(|f| &f.platform)
        .collect();
    let what = problems.to_string();
    let what = what
        .strip_prefix("QEMU emulation is not ready:")
        .unwrap_or(&what)
        .trim()
        .replace("\n  ", "; ");
    cannot_install(
        &platforms,
        format!("the installer `{image}` exited 0, yet this machine's binfmt_misc is unchanged ({what})"),
        &format!(
            "the Docker daemon at {} runs its containers over another binfmt_misc than this machine's \
             (a daemon on another machine, a rootless daemon): point DOCKER_HOST at this machine's daemon, \
             or register the handlers here (as root: `apt-get install qemu-user-static binfmt-support`, \
             or `mbx setup --qemu-from host`)",
            docker.host()
        ),
    )
}

/// Inspect the handlers; repair what is broken (or everything with
/// `reset`) from the chosen source; inspect again and fail with what is
/// still wrong.
async fn ensure_qemu(
    plan: &Plan,
    docker: &crate::docker::Docker,
    qp: &QemuPlan,
    actions: &mut Vec<String>,
) -> Result<Vec<crate::run::BinfmtRecord>> {
    let findings = match qemu::inspect(&plan.platforms, &plan.host, None) {
        // An unknown architecture stays an input error.
        Err(e @ Error::Environment { .. }) => match binfmt_hidden() {
            Some(place) => return qemu_through_daemon(plan, docker, qp, actions, (place, e)).await,
            None => return Err(e),
        },
        r => r?,
    };
    let to_fix: Vec<&qemu::Finding> = findings
        .iter()
        .filter(|f| qp.reset || f.problem.is_some())
        .collect();
    if to_fix.is_empty() {
        return Ok(findings.into_iter().map(|f| f.record).collect());
    }
    match &qp.source {
        QemuSource::Host => {
            for f in &to_fix {
                actions.extend(qemu::repair_from_host(None, f, qp.reset)?);
            }
        }
        QemuSource::Image(image) => {
            let uninstall: Vec<String> = to_fix
                .iter()
                .flat_map(|f| f.handlers.iter().map(|h| h.name.clone()))
                .collect();
            let install: Vec<String> = to_fix
                .iter()
                .map(|f| qemu::installer_arch(&f.platform).to_string())
                .collect();
            let mut args = Vec::new();
            if !uninstall.is_empty() {
                args.push("--uninstall".to_string());
                args.push(uninstall.join(","));
            }
            args.push("--install".to_string());
            args.push(install.join(","));
            let platforms: Vec<&crate::platform::Platform> =
                to_fix.iter().map(|f| &f.platform).collect();
            let run = run_installer(docker, image, &args, &platforms, None).await?;
            actions.push(format!(
                "ran {}{image} {} (privileged)",
                if run.pulled { "(pulled) " } else { "" },
                args.join(" ")
            ));
        }
    }
    let after = qemu::inspect(&plan.platforms, &plan.host, None)?;
    if let Some(e) = qemu::problems_error(&after) {
        return Err(match &qp.source {
            QemuSource::Image(image) => unchanged_after_installer(image, docker, &after, e),
            QemuSource::Host => e,
        });
    }
    Ok(after
        .into_iter()
        .map(|f| {
            let mut r = f.record;
            if let Some(before) = findings.iter().find(|b| b.platform == r.platform) {
                r.repaired = match &before.problem {
                    Some(p) => Some(p.repair()),
                    None if qp.reset => Some(crate::run::BinfmtRepair::Reset),
                    None => None,
                };
            }
            r
        })
        .collect())
}
