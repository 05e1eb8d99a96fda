//! The buildx builder: create it (docker-container driver, network=host by
//! default) or reuse it when its settings match, recreate it only when asked
//! (`--recreate`), bootstrap it, then ask its BuildKit workers (control API,
//! `ListWorkers`) which platforms they really build.
//!
//! What mbx created is recorded in a state file per builder
//! (`$MBX_STATE_DIR`, else `$XDG_STATE_HOME/mbx`, else `~/.local/state/mbx`,
//! under `builders/NAME.json`), so `mbx setup --cleanup` removes only those.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::docker::buildkit;
use crate::docker::buildx::{BuilderInfo, Buildx};
use crate::error::{Error, Result};
use crate::plan::BuilderPlan;
use crate::platform::Platform;
use crate::run::{BuilderAction, BuilderRecord, PhaseTiming, PlatformsSource};

/// How long the control API may take to answer once the builder runs.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);
/// The direct exec path is only worth it when it answers at once.
const EXEC_TIMEOUT: Duration = Duration::from_secs(5);

/// The settings that make two builders "the same" for mbx.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub driver: String,
    /// Driver options, `image=` included.
    pub driver_opts: BTreeMap<String, String>,
    /// Contents of the buildkitd.toml given at creation; None when none was.
    /// `Unknown` when the existing builder's cannot be read.
    pub config: ConfigState,
    /// Platforms given at creation (`--platform`), normalised, sorted.
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigState {
    #[default]
    None,
    Contents(String),
    Unknown,
}

impl Settings {
    /// What the plan asks for. Reads the buildkitd config file.
    pub fn wanted(plan: &BuilderPlan) -> Result<Settings> {
        let mut driver_opts = BTreeMap::new();
        if let Some(img) = &plan.buildkit_image {
            driver_opts.insert("image".to_string(), img.clone());
        }
        for o in &plan.driver_opts {
            if let Some((k, v)) = o.split_once('=') {
                driver_opts.insert(k.to_string(), v.to_string());
            }
        }
        let config = match &plan.buildkitd_config {
            Some(p) => ConfigState::Contents(std::fs::read_to_string(p).map_err(|e| {
                Error::input(
                    format!("cannot read buildkitd config `{}`: {e}", p.display()),
                    "pass --buildkitd-config FILE naming a readable buildkitd.toml",
                )
            })?),
            None => ConfigState::None,
        };
        Ok(Settings {
            driver: plan.driver.clone(),
            driver_opts,
            config,
            platforms: normalise_platforms(&plan.platforms),
        })
    }

    /// How `self` (existing) differs from `want`, one line each.
    pub fn differences(&self, want: &Settings) -> Vec<String> {
        let mut d = Vec::new();
        if self.driver != want.driver {
            d.push(format!(
                "driver is `{}`, wanted `{}`",
                self.driver, want.driver
            ));
        }
        let keys: std::collections::BTreeSet<&String> = self
            .driver_opts
            .keys()
            .chain(want.driver_opts.keys())
            .collect();
        for k in keys {
            match (self.driver_opts.get(k), want.driver_opts.get(k)) {
                (Some(a), Some(b)) if a != b => {
                    d.push(format!("driver option {k} is `{a}`, wanted `{b}`"))
                }
                (Some(a), None) => d.push(format!("driver option {k}=`{a}` is set, not wanted")),
                (None, Some(b)) => d.push(format!("driver option {k} is unset, wanted `{b}`")),
                _ => {}
            }
        }
        match (&self.config, &want.config) {
            (ConfigState::Unknown, _) => {}
            (a, b) if a == b => {}
            // buildx stores the file re-serialised: compare what it means.
            (ConfigState::Contents(a), ConfigState::Contents(b)) if same_toml(a, b) => {}
            (ConfigState::None, _) => d.push("it has no buildkitd config, one is wanted".into()),
            (_, ConfigState::None) => d.push("it has a buildkitd config, none is wanted".into()),
            _ => d.push("its buildkitd config differs from the wanted file".into()),
        }
        if self.platforms != want.platforms {
            let show = |p: &[String]| {
                if p.is_empty() {
                    "(detected)".to_string()
                } else {
                    p.join(",")
                }
            };
            d.push(format!(
                "its platforms are {}, wanted {}",
                show(&self.platforms),
                show(&want.platforms)
            ));
        }
        d
    }
}

fn same_toml(a: &str, b: &str) -> bool {
    match (a.parse::<toml::Table>(), b.parse::<toml::Table>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn normalise_platforms(ps: &[String]) -> Vec<String> {
    let mut v: Vec<String> = ps
        .iter()
        .map(|p| {
            p.parse::<Platform>()
                .map(|p| p.to_string())
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// buildx's own record of a builder (`~/.docker/buildx/instances/NAME`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Instance {
    driver: String,
    #[serde(default)]
    nodes: Vec<InstanceNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceNode {
    #[serde(default)]
    name: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    platforms: Option<Vec<InstancePlatform>>,
    #[serde(default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    files: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct InstancePlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

fn docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// Parse buildx's instance file into Settings.
pub fn settings_from_instance(json: &str) -> Option<Settings> {
    let inst: Instance = serde_json::from_str(json).ok()?;
    let node = inst.nodes.first();
    let config = match node
        .and_then(|n| n.files.as_ref())
        .and_then(|f| f.get("buildkitd.toml"))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(ConfigState::Contents)
            .unwrap_or(ConfigState::Unknown),
        None => ConfigState::None,
    };
    let platforms = node
        .and_then(|n| n.platforms.as_ref())
        .map(|ps| {
            ps.iter()
                .map(|p| match p.variant.as_deref().filter(|v| !v.is_empty()) {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Some(Settings {
        driver: inst.driver,
        driver_opts: node.and_then(|n| n.driver_opts.clone()).unwrap_or_default(),
        config,
        platforms: normalise_platforms(&platforms),
    })
}

fn instance_text(name: &str) -> Option<String> {
    docker_config_dir()
        .map(|d| d.join("buildx").join("instances").join(name))
        .and_then(|p| std::fs::read_to_string(p).ok())
}

/// buildx's record of builder `name`, when it keeps one (not for the
/// docker context's own builders, e.g. `default`).
pub fn instance_settings(name: &str) -> Option<Settings> {
    instance_text(name).and_then(|t| settings_from_instance(&t))
}

/// The BuildKit container of a one-node docker-container builder on the
/// daemon at `host` (`buildx_buildkit_<node>`), from buildx's instance file.
pub fn local_container(json: &str, host: &str) -> Option<String> {
    let inst: Instance = serde_json::from_str(json).ok()?;
    if inst.driver != "docker-container" || inst.nodes.len() != 1 {
        return None;
    }
    let node = &inst.nodes[0];
    let local = node.endpoint == host
        || (node.endpoint == "default" && std::env::var_os("DOCKER_HOST").is_none());
    (local && !node.name.is_empty()).then(|| format!("buildx_buildkit_{}", node.name))
}

/// Ask the workers: straight through the Engine API when the builder is a
/// local docker-container one, else (or when that fails, e.g. the container
/// is stopped) through `docker buildx dial-stdio`, which also boots it.
async fn ask_workers(
    buildx: &Buildx,
    engine: Option<&crate::docker::engine::Docker>,
    name: &str,
) -> (
    Result<Vec<buildkit::Worker>, buildkit::DialError>,
    &'static str,
) {
    let container = engine.and_then(|e| {
        instance_text(name)
            .and_then(|t| local_container(&t, e.host()))
            .map(|c| (e, c))
    });
    if let Some((e, c)) = container {
        match buildkit::list_workers_exec(e.engine(), &c, EXEC_TIMEOUT).await {
            Ok(w) if !w.is_empty() => return (Ok(w), buildkit::VIA_EXEC),
            Ok(_) => tracing::debug!("no worker over exec; trying dial-stdio"),
            Err(err) => tracing::debug!(%err, "exec dial failed; trying dial-stdio"),
        }
    }
    (
        buildkit::list_workers(&buildx.docker, name, DIAL_TIMEOUT).await,
        buildkit::VIA_DIAL_STDIO,
    )
}

/// The existing builder's settings: buildx's instance file when readable,
/// else what `docker buildx inspect` shows (config then unknown).
fn existing_settings(info: &BuilderInfo) -> Settings {
    if let Some(s) = instance_settings(&info.name) {
        return s;
    }
    let driver_opts = info
        .driver_options
        .iter()
        .filter_map(|o| o.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    Settings {
        driver: info.driver.clone(),
        driver_opts,
        config: ConfigState::Unknown,
        platforms: Vec::new(),
    }
}

// ---------------------------------------------------------------- ownership

/// What mbx writes when it creates a builder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Owned {
    pub name: String,
    pub created_at: f64,
    pub settings: Settings,
}

pub fn state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MBX_STATE_DIR").filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(|d| PathBuf::from(d).join("mbx"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/mbx")))
}

fn owned_path(name: &str) -> Option<PathBuf> {
    state_dir().map(|d| d.join("builders").join(format!("{name}.json")))
}

pub fn owned(name: &str) -> Option<Owned> {
    let p = owned_path(name)?;
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn record_owned(name: &str, settings: &Settings) {
    let Some(p) = owned_path(name) else { return };
    let o = Owned {
        name: name.to_string(),
        created_at: crate::run::now(),
        settings: settings.clone(),
    };
    let ok = p
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| std::fs::write(&p, serde_json::to_vec_pretty(&o).expect("json")));
    if let Err(e) = ok {
        tracing::warn!("cannot record builder ownership in {}: {e}", p.display());
    }
}

fn forget_owned(name: &str) {
    if let Some(p) = owned_path(name) {
        let _ = std::fs::remove_file(p);
    }
}

// ---------------------------------------------------------------- ensure

/// Create the builder when absent, reuse it when its settings match,
/// recreate it when they differ and `plan.recreate`; bootstrap it; ask its
/// workers which platforms they build, and check every requested one is
/// there (restarting a builder that started before its QEMU handlers).
pub async fn ensure(
    buildx: &Buildx,
    plan: &BuilderPlan,
    platforms: &[Platform],
    engine: Option<&crate::docker::engine::Docker>,
    prefetched: Option<Prefetched>,
    setup_lock: &super::lock::SetupLock,
) -> Result<(BuilderRecord, Vec<PhaseTiming>)> {
    let t0 = std::time::Instant::now();
    let want = Settings::wanted(plan)?;
    // buildx's instance file says at once whether the builder exists; only
    // builders it keeps none for (docker driver) cost a `buildx inspect`.
    let existing = match instance_settings(&plan.name) {
        Some(s) => Some(BuilderInfo {
            name: plan.name.clone(),
            driver: s.driver,
            ..Default::default()
        }),
        None => blocking(|| buildx.inspect(&plan.name, false))?,
    };
    let (action, differences) =
        compare_or_create(buildx, plan, &want, existing.as_ref(), setup_lock)?;

    // The control API is asked through dial-stdio; a builder that is not
    // running yet is bootstrapped first (buildx inspect --bootstrap).
    let docker = buildx.docker.clone();
    let t1 = std::time::Instant::now();
    let (mut workers, mut via) = match prefetched {
        Some(Prefetched(Ok(w), via)) if action == BuilderAction::Reused && !w.is_empty() => {
            (Ok(w), via)
        }
        _ => ask_workers(buildx, engine, &plan.name).await,
    };
    let mut inspected: Option<BuilderInfo> = None;
    if workers.is_err() || workers.as_ref().is_ok_and(|w| w.is_empty()) {
        let info = blocking(|| buildx.inspect(&plan.name, true));
        let info = match info {
            Ok(Some(i)) => i,
            Ok(None) => {
                return Err(Error::env(
                    format!("builder `{}` vanished while starting", plan.name),
                    "run again",
                ))
            }
            Err(e) => {
                if action != BuilderAction::Reused {
                    // Don't leave behind a builder that cannot start.
                    let _ = blocking(|| buildx.remove(&plan.name));
                    forget_owned(&plan.name);
                }
                return Err(e);
            }
        };
        inspected = Some(info);
        workers = buildkit::list_workers(&docker, &plan.name, DIAL_TIMEOUT).await;
        via = buildkit::VIA_DIAL_STDIO;
    }

    let found = worker_platforms(buildx, plan, workers, via, inspected)?;
    let (worker_platforms, buildkit_version, source, via, note) =
        match check_platforms(&plan.name, &found.0, platforms) {
            Ok(()) => found,
            Err(e) => restart_for(buildx, plan, platforms, setup_lock, e).await?,
        };
    let t2 = std::time::Instant::now();
    let timings = vec![
        PhaseTiming {
            name: format!("builder ({action})"),
            seconds: (t1 - t0).as_secs_f64(),
        },
        PhaseTiming {
            name: "workers (boot + ListWorkers)".into(),
            seconds: (t2 - t1).as_secs_f64(),
        },
    ];
    let record = BuilderRecord {
        name: plan.name.clone(),
        driver: if plan.driver.is_empty() {
            existing.map(|i| i.driver).unwrap_or_default()
        } else {
            plan.driver.clone()
        },
        action,
        buildkit_version,
        platforms: worker_platforms,
        platforms_source: Some(source),
        note,
        control_api_via: via.map(str::to_string),
        differences,
        created_by_mbx: owned(&plan.name).is_some(),
    };
    Ok((record, timings))
}

/// Reuse the builder when its settings are the wanted ones, recreate it when
/// asked (`--recreate`), create it when absent: (what was done, how an
/// existing one differed).
fn compare_or_create(
    buildx: &Buildx,
    plan: &BuilderPlan,
    want: &Settings,
    existing: Option<&BuilderInfo>,
    setup_lock: &super::lock::SetupLock,
) -> Result<(BuilderAction, Vec<String>)> {
    let mut differences = Vec::new();
    let action = match existing {
        Some(info) if plan.driver == "docker" || info.driver == "docker" => {
            if info.driver != plan.driver {
                return Err(Error::env(
                    format!(
                        "builder `{}` uses the `{}` driver, not `{}`",
                        plan.name, info.driver, plan.driver
                    ),
                    "pass --builder NAME for another builder (docker-driver builders are the docker context's own, e.g. `default`)",
                ));
            }
            BuilderAction::Reused
        }
        Some(info) => {
            let have = existing_settings(info);
            differences = have.differences(want);
            if differences.is_empty() {
                BuilderAction::Reused
            } else if plan.recreate {
                if super::lock::in_use(&plan.name, setup_lock)? {
                    return Err(Error::env(
                        format!("builder `{}` differs from the wanted settings but another mbx run is using it", plan.name),
                        "let that run finish and run again, or pass --builder NAME (MBX_BUILDER) for a builder of this run's own",
                    ));
                }
                blocking(|| buildx.remove(&plan.name))?;
                forget_owned(&plan.name);
                create(buildx, plan, want)?;
                BuilderAction::Recreated
            } else {
                let mine = if owned(&plan.name).is_some() {
                    "created by mbx earlier"
                } else {
                    "not created by mbx"
                };
                return Err(Error::env(
                    format!(
                        "builder `{}` exists ({mine}) with other settings:\n  {}",
                        plan.name,
                        differences.join("\n  ")
                    ),
                    format!(
                        "pass --recreate to remove and recreate it with the wanted settings, or --builder NAME to use another builder (`docker buildx rm {}` removes it)",
                        plan.name
                    ),
                ));
            }
        }
        None if plan.driver == "docker" => {
            return Err(Error::env(
                format!("no builder `{}` with the docker driver", plan.name),
                "the docker driver cannot be created: it is the docker context's own builder (`--builder default`); for a builder mbx creates use --driver docker-container",
            ))
        }
        None => {
            create(buildx, plan, want)?;
            BuilderAction::Created
        }
    };
    Ok((action, differences))
}

/// What a builder's workers can build, its BuildKit version, where that was
/// read (the control API, else `buildx inspect` with a note saying why).
type WorkerPlatforms = (
    Vec<String>,
    Option<String>,
    PlatformsSource,
    Option<&'static str>,
    Option<String>,
);

fn worker_platforms(
    buildx: &Buildx,
    plan: &BuilderPlan,
    workers: Result<Vec<buildkit::Worker>, buildkit::DialError>,
    via: &'static str,
    inspected: Option<BuilderInfo>,
) -> Result<WorkerPlatforms> {
    Ok(match workers {
        Ok(ws) if !ws.is_empty() => {
            let mut ps: Vec<String> = Vec::new();
            for w in &ws {
                for p in &w.platforms {
                    if !ps.contains(p) {
                        ps.push(p.clone());
                    }
                }
            }
            let v = ws.iter().find_map(|w| w.buildkit_version.clone());
            (ps, v, PlatformsSource::ControlApi, Some(via), None)
        }
        other => {
            let why = match other {
                Ok(_) => "the control API lists no worker".to_string(),
                Err(e) => e.to_string(),
            };
            let info = match inspected {
                Some(i) => i,
                None => blocking(|| buildx.inspect(&plan.name, true))?.ok_or_else(|| {
                    Error::env(format!("builder `{}` vanished", plan.name), "run again")
                })?,
            };
            (
                info.platforms.clone(),
                info.buildkit_version.clone(),
                PlatformsSource::BuildxInspect,
                None,
                Some(format!(
                    "could not ask BuildKit's control API ({why}); platforms read from `docker buildx inspect`, which may list requested platforms the worker lacks"
                )),
            )
        }
    })
}

/// Workers asked for before setup knew it would reuse the builder (while
/// buildx's version was being read), to save a round trip on warm runs.
pub struct Prefetched(
    Result<Vec<buildkit::Worker>, buildkit::DialError>,
    &'static str,
);

/// When the builder exists with the wanted settings, ask its workers now.
pub async fn prefetch(
    buildx: &Buildx,
    engine: Option<&crate::docker::engine::Docker>,
    plan: &BuilderPlan,
) -> Option<Prefetched> {
    let want = Settings::wanted(plan).ok()?;
    let have = instance_settings(&plan.name)?;
    if !have.differences(&want).is_empty() {
        return None;
    }
    let (w, via) = ask_workers(buildx, engine, &plan.name).await;
    Some(Prefetched(w, via))
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn create(buildx: &Buildx, plan: &BuilderPlan, want: &Settings) -> Result<()> {
    blocking(|| buildx.create(create_args(plan))).map_err(|e| {
        Error::env(
            format!("could not create builder `{}`: {e}", plan.name),
            "check the BuildKit image (--buildkit-image) can be pulled and the buildkitd config is valid",
        )
    })?;
    record_owned(&plan.name, want);
    Ok(())
}

pub fn create_args(plan: &BuilderPlan) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--name".into(),
        plan.name.clone().into(),
        "--driver".into(),
        plan.driver.clone().into(),
    ];
    if let Some(img) = &plan.buildkit_image {
        a.push("--driver-opt".into());
        a.push(format!("image={img}").into());
    }
    for o in &plan.driver_opts {
        a.push("--driver-opt".into());
        a.push(o.into());
    }
    if let Some(c) = &plan.buildkitd_config {
        a.push("--buildkitd-config".into());
        a.push(c.into());
    }
    if !plan.platforms.is_empty() {
        a.push("--platform".into());
        a.push(plan.platforms.join(",").into());
    }
    a
}

/// A builder whose workers lack a requested platform although its QEMU
/// handler is there now (set up or repaired after the builder started):
/// BuildKit ≥ 0.2x detects emulators once, when it starts, so the builder is
/// restarted (stopped, booted) and asked again — unless another mbx run is
/// using it, which a restart would break.
async fn restart_for(
    buildx: &Buildx,
    plan: &BuilderPlan,
    platforms: &[Platform],
    setup_lock: &super::lock::SetupLock,
    lacking: Error,
) -> Result<WorkerPlatforms> {
    if super::lock::in_use(&plan.name, setup_lock)? {
        return Err(lacking);
    }
    tracing::debug!(builder = %plan.name, "workers lack a platform: restarting the builder");
    blocking(|| buildx.stop(&plan.name))?;
    let info = blocking(|| buildx.inspect(&plan.name, true))?;
    let workers = buildkit::list_workers(&buildx.docker, &plan.name, DIAL_TIMEOUT).await;
    let (ps, version, source, via, note) =
        worker_platforms(buildx, plan, workers, buildkit::VIA_DIAL_STDIO, info)?;
    check_platforms(&plan.name, &ps, platforms).map_err(|_| lacking)?;
    let restarted = "restarted: its BuildKit had started before the QEMU handlers it needs \
(BuildKit detects emulators when it starts)";
    let note = Some(match note {
        Some(n) => format!("{n}; {restarted}"),
        None => restarted.to_string(),
    });
    Ok((ps, version, source, via, note))
}

fn check_platforms(name: &str, have: &[String], platforms: &[Platform]) -> Result<()> {
    let parsed: Vec<Platform> = have.iter().filter_map(|p| p.parse().ok()).collect();
    let missing: Vec<String> = platforms
        .iter()
        .filter(|p| !parsed.contains(p))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::env(
        format!(
            "builder `{name}` cannot build {}: its BuildKit workers list {}",
            missing.join(", "),
            if have.is_empty() {
                "nothing".into()
            } else {
                have.join(", ")
            }
        ),
        format!(
            "register QEMU binfmt handlers for {} (`mbx setup --reset-qemu`), or add a native node for it \
to the builder",
            missing.join(", ")
        ),
    ))
}

// ---------------------------------------------------------------- cleanup

/// What `--cleanup` did to a builder.
#[derive(Debug, Clone, PartialEq)]
pub enum Cleanup {
    Removed,
    NotOurs,
    Absent,
    /// mbx created it, but another run is using it now.
    InUse,
}

/// Remove builder `name` if mbx created it and no other mbx run uses it;
/// leave it alone otherwise.
pub fn cleanup(buildx: &Buildx, name: &str) -> Result<Cleanup> {
    let setup_lock = super::lock::setup(name)?;
    if owned(name).is_some() && super::lock::in_use(name, &setup_lock)? {
        return Ok(Cleanup::InUse);
    }
    let exists = buildx.inspect(name, false)?.is_some();
    match (exists, owned(name).is_some()) {
        (true, true) => {
            buildx.remove(name)?;
            forget_owned(name);
            Ok(Cleanup::Removed)
        }
        (true, false) => Ok(Cleanup::NotOurs),
        (false, mine) => {
            if mine {
                forget_owned(name);
            }
            Ok(Cleanup::Absent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> BuilderPlan {
        BuilderPlan {
            name: "ci-builder".into(),
            driver: "docker-container".into(),
            driver_opts: vec!["network=host".into()],
            buildkit_image: Some("127.0.0.1:5000/moby/buildkit:local".into()),
            buildkitd_config: Some("/etc/bk.toml".into()),
            ..Default::default()
        }
    }

    #[test]
    fn create_args_carry_image_opts_and_config() {
        let mut p = plan();
        p.platforms = vec!["linux/amd64".into(), "linux/arm64".into()];
        let a: Vec<String> = create_args(&p)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            a.join(" "),
            "--name ci-builder --driver docker-container --driver-opt image=127.0.0.1:5000/moby/buildkit:local --driver-opt network=host --buildkitd-config /etc/bk.toml --platform linux/amd64,linux/arm64"
        );
    }

    #[test]
    fn missing_platform_is_named() {
        let have = vec!["linux/amd64".to_string(), "linux/386".to_string()];
        let want: Vec<Platform> = vec![
            "linux/amd64".parse().unwrap(),
            "linux/arm64".parse().unwrap(),
        ];
        let e = check_platforms("b", &have, &want).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("cannot build linux/arm64"), "{s}");
        assert!(e.help().unwrap().contains("--reset-qemu"));
        assert!(check_platforms("b", &have, &want[..1]).is_ok());
    }

    /// `~/.docker/buildx/instances/ci-builder` as buildx 0.13.1 wrote it for
    /// `docker buildx create --name ci-builder --driver docker-container
    /// --driver-opt image=127.0.0.1:5000/moby/buildkit:local,network=host
    /// --buildkitd-config /var/lib/mbx-chain/buildkitd.toml` on the local chain.
    const INSTANCE: &str = r#"{"Name":"ci-builder","Driver":"docker-container","Nodes":[{"Name":"ci-builder0","Endpoint":"unix:///var/run/docker.sock","Platforms":null,"DriverOpts":{"image":"127.0.0.1:5000/moby/buildkit:local","network":"host"},"Flags":["--allow-insecure-entitlement=network.host"],"Files":{"buildkitd.toml":"CltyZWdpc3RyeV0KCiAgW3JlZ2lzdHJ5LiIxMjcuMC4wLjE6NTAwMCJdCiAgICBodHRwID0gdHJ1ZQoKICBbcmVnaXN0cnkuIjEyNy4wLjAuMTo1MDAxIl0KICAgIGh0dHAgPSB0cnVlCg=="}}],"Dynamic":false}"#;

    #[test]
    fn instance_settings_and_differences() {
        let have = settings_from_instance(INSTANCE).unwrap();
        assert_eq!(have.driver, "docker-container");
        assert_eq!(have.driver_opts["network"], "host");
        let ConfigState::Contents(c) = &have.config else {
            panic!("config not read: {:?}", have.config)
        };
        assert!(c.contains(r#"[registry."127.0.0.1:5000"]"#), "{c}");

        let mut want = have.clone();
        assert!(have.differences(&want).is_empty());
        // The chain's file as written, before buildx re-serialised it.
        want.config = ConfigState::Contents(
            "# comment\n[registry.\"127.0.0.1:5000\"]\n  http = true\n\n[registry.\"127.0.0.1:5001\"]\n  http = true\n".into(),
        );
        assert!(
            have.differences(&want).is_empty(),
            "{:?}",
            have.differences(&want)
        );
        want.driver_opts
            .insert("image".into(), "127.0.0.1:5000/moby/buildkit:other".into());
        want.config = ConfigState::None;
        want.platforms = vec!["linux/arm64".into()];
        let d = have.differences(&want);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].contains("driver option image is `127.0.0.1:5000/moby/buildkit:local`, wanted `127.0.0.1:5000/moby/buildkit:other`"), "{d:?}");
        assert!(
            d[1].contains("has a buildkitd config, none is wanted"),
            "{d:?}"
        );
        assert!(
            d[2].contains("platforms are (detected), wanted linux/arm64"),
            "{d:?}"
        );
    }

    #[test]
    fn local_container_only_for_one_local_docker_container_node() {
        let sock = "unix:///var/run/docker.sock";
        assert_eq!(
            local_container(INSTANCE, sock).as_deref(),
            Some("buildx_buildkit_ci-builder0")
        );
        assert_eq!(local_container(INSTANCE, "tcp://10.0.0.1:2376"), None);
        let remote = INSTANCE.replace("docker-container", "remote");
        assert_eq!(local_container(&remote, sock), None);
    }
}
