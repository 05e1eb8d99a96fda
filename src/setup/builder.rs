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
use crate::plan::{Asked, BuilderPlan};
use crate::platform::Platform;
use crate::run::{BuilderAction, BuilderRecord, NodeRecord, PhaseTiming, PlatformsSource};

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
    /// Every node's endpoint and pinned platforms (normalised, sorted), when
    /// the builder has several nodes or was made from `--node`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<(String, Vec<String>)>,
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
            Some(p) => ConfigState::Contents(read_text(p, 1 << 20).map_err(|e| {
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
            nodes: plan
                .nodes
                .iter()
                .map(|n| (n.endpoint.clone(), normalise_platforms(&n.platforms)))
                .collect(),
        })
    }

    /// How `self` (existing) differs from `want` in what the user `asked`
    /// for, one line each: a setting nobody asked for is never a difference.
    pub fn differences(&self, want: &Settings, asked: &Asked) -> Vec<String> {
        let mut d = Vec::new();
        if asked.driver && self.driver != want.driver {
            d.push(format!(
                "driver is `{}`, wanted `{}`",
                self.driver, want.driver
            ));
        }
        let keys: std::collections::BTreeSet<&String> = asked.driver_opts.iter().collect();
        for k in keys {
            match (self.driver_opts.get(k), want.driver_opts.get(k)) {
                (Some(a), Some(b)) if a != b => {
                    d.push(format!("driver option {k} is `{a}`, wanted `{b}`"))
                }
                (None, Some(b)) => d.push(format!("driver option {k} is unset, wanted `{b}`")),
                _ => {}
            }
        }
        match (&self.config, &want.config) {
            _ if !asked.config => {}
            (ConfigState::Unknown, _) => {}
            (a, b) if a == b => {}
            // buildx stores the file re-serialised: compare what it means.
            (ConfigState::Contents(a), ConfigState::Contents(b)) if same_toml(a, b) => {}
            (ConfigState::None, _) => d.push("it has no buildkitd config, one is wanted".into()),
            (_, ConfigState::None) => d.push("it has a buildkitd config, none is wanted".into()),
            _ => d.push("its buildkitd config differs from the wanted file".into()),
        }
        if asked.platforms && self.platforms != want.platforms {
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
        if asked.nodes {
            d.extend(node_differences(&self.nodes, &want.nodes));
        }
        d
    }
}

fn node_differences(have: &[(String, Vec<String>)], want: &[(String, Vec<String>)]) -> Vec<String> {
    let mut d = Vec::new();
    for (e, ps) in want {
        match have.iter().find(|(h, _)| h == e) {
            None => d.push(format!("it has no node {e}, one is wanted")),
            Some((_, hp)) if hp != ps => d.push(format!(
                "its node {e} builds {}, wanted {}",
                hp.join(","),
                ps.join(",")
            )),
            _ => {}
        }
    }
    for (e, _) in have {
        if !want.iter().any(|(w, _)| w == e) {
            d.push(format!("it has node {e}, not wanted"));
        }
    }
    d
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
    let nodes = if inst.nodes.len() > 1 || inst.driver == "remote" {
        inst.nodes
            .iter()
            .map(|n| (n.endpoint.clone(), normalise_platforms(&n.platform_names())))
            .collect()
    } else {
        Vec::new()
    };
    Some(Settings {
        driver: inst.driver,
        driver_opts: node.and_then(|n| n.driver_opts.clone()).unwrap_or_default(),
        config,
        platforms: normalise_platforms(&platforms),
        nodes,
    })
}

impl InstanceNode {
    fn platform_names(&self) -> Vec<String> {
        self.platforms
            .iter()
            .flatten()
            .map(|p| match p.variant.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            })
            .collect()
    }
}

/// The builder's BuildKit runs on other machines (remote or kubernetes
/// driver, asked for or as buildx keeps an existing builder).
pub fn builds_elsewhere(plan: &BuilderPlan) -> bool {
    let elsewhere = |d: &str| d == "remote" || d == "kubernetes";
    match instance_nodes(&plan.name) {
        Some((driver, _)) if !plan.recreate || !plan.asked.driver => elsewhere(&driver),
        _ => elsewhere(&plan.driver),
    }
}

/// A node of builder `name` as buildx keeps it: its name, endpoint, pinned
/// platforms and driver options (TLS files of a remote node).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub endpoint: String,
    pub platforms: Vec<String>,
    pub driver_opts: BTreeMap<String, String>,
}

/// The driver and nodes of builder `name` from buildx's instance file.
pub fn instance_nodes(name: &str) -> Option<(String, Vec<NodeInfo>)> {
    nodes_from_instance(&instance_text(name)?)
}

pub fn nodes_from_instance(json: &str) -> Option<(String, Vec<NodeInfo>)> {
    let inst: Instance = serde_json::from_str(json).ok()?;
    let nodes = inst
        .nodes
        .iter()
        .map(|n| NodeInfo {
            name: n.name.clone(),
            endpoint: n.endpoint.clone(),
            platforms: n.platform_names(),
            driver_opts: n.driver_opts.clone().unwrap_or_default(),
        })
        .collect();
    Some((inst.driver, nodes))
}

/// A text file of at most `max` bytes (a larger one is an error saying so).
fn read_text(p: &std::path::Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(crate::error::read_capped(p, max)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn instance_text(name: &str) -> Option<String> {
    docker_config_dir()
        .map(|d| d.join("buildx").join("instances").join(name))
        .and_then(|p| crate::error::read_capped(&p, 1 << 20).ok())
        .and_then(|b| String::from_utf8(b).ok())
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
        nodes: Vec::new(),
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
    serde_json::from_slice(&crate::error::read_capped(&p, 1 << 20).ok()?).ok()
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
    let driver = match (&existing, action) {
        (Some(i), BuilderAction::Reused) if !i.driver.is_empty() => i.driver.clone(),
        _ => plan.driver.clone(),
    };

    let t1 = std::time::Instant::now();
    let nodes =
        instance_nodes(&plan.name).filter(|(d, n)| (d == "remote" && !n.is_empty()) || n.len() > 1);
    let (found, nodes) = match nodes {
        // Several nodes buildx reaches itself (docker-container on other
        // hosts, kubernetes): each platform's node, as buildx routes it.
        Some((driver, nodes)) if driver != "remote" => {
            routed_workers(buildx, &plan.name, &nodes, platforms).await?
        }
        // Each node at its own endpoint: a node down is named at once.
        Some((_, nodes)) => {
            let (found, records) = remote_workers(&plan.name, &nodes).await?;
            check_platforms(&plan.name, &found.0, platforms).map_err(|e| {
                Error::env(
                    e.to_string(),
                    "add a node whose BuildKit builds it (--node ENDPOINT=PLATFORM, or `docker buildx create --append`), or leave it out of --platforms",
                )
            })?;
            (found, records)
        }
        None => {
            let found = local_workers(
                buildx, plan, engine, prefetched, action, setup_lock, platforms,
            )
            .await?;
            (found, Vec::new())
        }
    };
    let (worker_platforms, buildkit_version, source, via, note) = found;
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
        driver,
        action,
        buildkit_version,
        platforms: worker_platforms,
        platforms_source: Some(source),
        note,
        control_api_via: via.map(str::to_string),
        differences,
        created_by_mbx: owned(&plan.name).is_some(),
        nodes,
    };
    Ok((record, timings))
}

/// How long a remote node may take to answer `ListWorkers`.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// Ask every node of a remote builder at its endpoint (at the same time):
/// what the builder builds, and each node's worker platforms. A node that
/// does not answer is an error naming it and its endpoint.
async fn remote_workers(
    builder: &str,
    nodes: &[NodeInfo],
) -> Result<(WorkerPlatforms, Vec<NodeRecord>)> {
    let asks = nodes.iter().map(|n| {
        let ep = buildkit::Endpoint {
            address: n.endpoint.clone(),
            cacert: n.driver_opts.get("cacert").cloned(),
            cert: n.driver_opts.get("cert").cloned(),
            key: n.driver_opts.get("key").cloned(),
            servername: n.driver_opts.get("servername").cloned(),
        };
        async move { buildkit::list_workers_at(&ep, NODE_TIMEOUT).await }
    });
    let answers = futures::future::join_all(asks).await;
    let mut all: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let mut version = None;
    for (n, answer) in nodes.iter().zip(answers) {
        let workers = answer.map_err(|e| node_down(builder, n, &e.to_string()))?;
        let Some(w) = workers.first() else {
            return Err(node_down(builder, n, "its BuildKit lists no worker"));
        };
        for p in &w.platforms {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        version = version.or(w.buildkit_version.clone());
        records.push(NodeRecord {
            name: n.name.clone(),
            endpoint: n.endpoint.clone(),
            platforms: w.platforms.clone(),
        });
    }
    Ok((
        (
            all,
            version,
            PlatformsSource::ControlApi,
            Some(VIA_NODE),
            None,
        ),
        records,
    ))
}

/// The workers of a multi-node builder buildx reaches itself: for each
/// requested platform, `ListWorkers` on the node buildx picks for it
/// (`docker buildx dial-stdio --platform P`). A node is named in the record
/// when it is the one node pinned to that platform.
async fn routed_workers(
    buildx: &Buildx,
    name: &str,
    nodes: &[NodeInfo],
    platforms: &[Platform],
) -> Result<(WorkerPlatforms, Vec<NodeRecord>)> {
    let mut all: Vec<String> = Vec::new();
    let (mut records, mut version) = (Vec::<NodeRecord>::new(), None);
    for p in platforms {
        let pinned: Vec<&NodeInfo> = nodes
            .iter()
            .filter(|n| {
                n.platforms
                    .iter()
                    .any(|x| x.parse::<Platform>().ok().as_ref() == Some(p))
            })
            .collect();
        let asked =
            buildkit::list_workers_for(&buildx.docker, name, &p.to_string(), DIAL_TIMEOUT).await;
        let workers = match (asked, pinned.as_slice()) {
            (Ok(w), _) => w,
            (Err(e), [n]) => return Err(node_down(name, n, &e.to_string())),
            (Err(e), _) => {
                return Err(Error::env(
                    format!("builder `{name}`: the node for {p} did not answer: {e}"),
                    "check the builder's nodes (`docker buildx inspect --bootstrap`)",
                ))
            }
        };
        let Some(w) = workers.first() else { continue };
        for x in &w.platforms {
            if !all.contains(x) {
                all.push(x.clone());
            }
        }
        version = version.or(w.buildkit_version.clone());
        if let [n] = pinned.as_slice() {
            if !records.iter().any(|r| r.name == n.name) {
                records.push(NodeRecord {
                    name: n.name.clone(),
                    endpoint: n.endpoint.clone(),
                    platforms: w.platforms.clone(),
                });
            }
        }
    }
    check_platforms(name, &all, platforms)?;
    let via = Some(buildkit::VIA_DIAL_STDIO);
    Ok((
        (all, version, PlatformsSource::ControlApi, via, None),
        records,
    ))
}

/// How the control API of remote nodes is reached.
const VIA_NODE: &str = "each node's endpoint (gRPC, mTLS when the node has cacert)";

fn node_down(builder: &str, n: &NodeInfo, why: &str) -> Error {
    Error::env(
        format!(
            "builder node `{}` at {} cannot be reached: {why}; nothing was built",
            n.name, n.endpoint
        ),
        format!(
            "start its BuildKit daemon, or fix its address and TLS files (--driver-opt cacert=…,cert=…,key=…), or take the node out of the builder (`docker buildx create --name {builder} --node {} --leave`)",
            n.name
        ),
    )
}

/// The workers of a local builder (docker, docker-container, kubernetes),
/// through the control API (exec or dial-stdio), bootstrapping it when
/// needed and restarting one that started before its QEMU handlers.
async fn local_workers(
    buildx: &Buildx,
    plan: &BuilderPlan,
    engine: Option<&crate::docker::engine::Docker>,
    prefetched: Option<Prefetched>,
    action: BuilderAction,
    setup_lock: &super::lock::SetupLock,
    platforms: &[Platform],
) -> Result<WorkerPlatforms> {
    // The control API is asked through dial-stdio; a builder that is not
    // running yet is bootstrapped first (buildx inspect --bootstrap).
    let docker = buildx.docker.clone();
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
    match check_platforms(&plan.name, &found.0, platforms) {
        Ok(()) => Ok(found),
        Err(e) => restart_for(buildx, plan, platforms, setup_lock, e).await,
    }
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
            if info.driver != plan.driver && plan.asked.driver {
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
            differences = have.differences(want, &plan.asked);
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
    // Remote nodes are asked one by one, each at its own endpoint.
    if !have.differences(&want, &plan.asked).is_empty() || !have.nodes.is_empty() {
        return None;
    }
    let (w, via) = ask_workers(buildx, engine, &plan.name).await;
    Some(Prefetched(w, via))
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn create(buildx: &Buildx, plan: &BuilderPlan, want: &Settings) -> Result<()> {
    for (i, args) in create_commands(plan).into_iter().enumerate() {
        if let Err(e) = blocking(|| buildx.create(args)) {
            if i > 0 {
                // Don't leave a builder with some of its nodes.
                let _ = blocking(|| buildx.remove(&plan.name));
            }
            return Err(Error::env(
                format!("could not create builder `{}`: {e}", plan.name),
                if plan.nodes.is_empty() {
                    "check the BuildKit image (--buildkit-image) can be pulled and the buildkitd config is valid"
                } else {
                    "check each --node (ENDPOINT=PLATFORMS) and the driver options (--driver-opt)"
                },
            ));
        }
    }
    record_owned(&plan.name, want);
    Ok(())
}

/// `buildx create` arguments of a one-node builder.
pub fn create_args(plan: &BuilderPlan) -> Vec<OsString> {
    let mut a = common_args(plan);
    if !plan.platforms.is_empty() {
        a.push("--platform".into());
        a.push(plan.platforms.join(",").into());
    }
    if let Some(e) = &plan.endpoint {
        a.push(e.into());
    }
    a
}

/// The arguments every `buildx create` of this builder takes.
fn common_args(plan: &BuilderPlan) -> Vec<OsString> {
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
    if let Some(f) = &plan.buildkitd_flags {
        a.push("--buildkitd-flags".into());
        a.push(f.into());
    }
    a
}

/// The `buildx create` commands that make the builder: one, or one per
/// `--node` (the first creates, the others `--append`), each node pinned to
/// its platforms so buildx routes a platform's build to it. A kubernetes
/// node gets `nodeselector=kubernetes.io/arch=ARCH` of its first platform
/// unless it has a nodeselector already.
pub fn create_commands(plan: &BuilderPlan) -> Vec<Vec<OsString>> {
    if plan.nodes.is_empty() {
        return vec![create_args(plan)];
    }
    plan.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut a = common_args(plan);
            if i > 0 {
                a.push("--append".into());
            }
            let mut opts = n.opts.clone();
            let has_selector = plan
                .driver_opts
                .iter()
                .chain(&n.opts)
                .any(|o| o.starts_with("nodeselector="));
            if plan.driver == "kubernetes" && !has_selector {
                if let Some(p) = n.platforms.first().and_then(|p| p.parse::<Platform>().ok()) {
                    opts.push(format!("nodeselector=kubernetes.io/arch={}", p.arch));
                }
            }
            for o in opts {
                a.push("--driver-opt".into());
                a.push(o.into());
            }
            a.push("--platform".into());
            a.push(n.platforms.join(",").into());
            if plan.driver == "kubernetes" {
                a.push("--node".into());
                a.push(n.endpoint.clone().into());
                if let Some(e) = &plan.endpoint {
                    a.push(e.into());
                }
            } else {
                a.push(n.endpoint.clone().into());
            }
            a
        })
        .collect()
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
        let all = Asked::everything(&["image".to_string(), "network".to_string()]);
        assert!(have.differences(&want, &all).is_empty());
        // The chain's file as written, before buildx re-serialised it.
        want.config = ConfigState::Contents(
            "# comment\n[registry.\"127.0.0.1:5000\"]\n  http = true\n\n[registry.\"127.0.0.1:5001\"]\n  http = true\n".into(),
        );
        assert!(
            have.differences(&want, &all).is_empty(),
            "{:?}",
            have.differences(&want, &all)
        );
        want.driver_opts
            .insert("image".into(), "127.0.0.1:5000/moby/buildkit:other".into());
        want.config = ConfigState::None;
        want.platforms = vec!["linux/arm64".into()];
        // Nothing asked for: the builder is used as it is.
        assert!(have.differences(&want, &Asked::default()).is_empty());
        let d = have.differences(&want, &all);
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

    fn strings(a: Vec<OsString>) -> String {
        a.into_iter()
            .map(|s| s.into_string().unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn nodes(specs: &[&str], driver: &str) -> Vec<crate::plan::NodeSpec> {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        crate::plan::nodes(&specs, driver).unwrap()
    }

    #[test]
    fn remote_nodes_create_then_append_each_pinned() {
        let p = BuilderPlan {
            name: "two".into(),
            driver: "remote".into(),
            driver_opts: vec!["cacert=/c/ca.pem".into(), "cert=/c/cert.pem".into()],
            nodes: nodes(
                &[
                    "tcp://10.0.0.1:1234=linux/amd64;linux/386",
                    "tcp://10.0.0.2:1234=linux/arm64,servername=arm.internal",
                ],
                "remote",
            ),
            ..Default::default()
        };
        let c: Vec<String> = create_commands(&p).into_iter().map(strings).collect();
        assert_eq!(
            c,
            vec![
                "--name two --driver remote --driver-opt cacert=/c/ca.pem --driver-opt cert=/c/cert.pem --platform linux/amd64,linux/386 tcp://10.0.0.1:1234",
                "--name two --driver remote --driver-opt cacert=/c/ca.pem --driver-opt cert=/c/cert.pem --append --driver-opt servername=arm.internal --platform linux/arm64 tcp://10.0.0.2:1234",
            ]
        );
    }

    /// No Kubernetes cluster can run here: these are the arguments buildx
    /// gets, checked against its kubernetes driver's documented options.
    #[test]
    fn kubernetes_nodes_get_their_namespace_selector_and_replicas() {
        let p = BuilderPlan {
            name: "k".into(),
            driver: "kubernetes".into(),
            driver_opts: vec!["rootless=true".into(), "loadbalance=sticky".into()],
            nodes: nodes(
                &[
                    "amd=linux/amd64,namespace=ci-amd,replicas=2",
                    "arm=linux/arm64,namespace=ci-arm,nodeselector=kubernetes.io/arch=arm64,node.kubernetes.io/pool=graviton",
                ],
                "kubernetes",
            ),
            endpoint: Some("kind-ci".into()),
            ..Default::default()
        };
        let c: Vec<String> = create_commands(&p).into_iter().map(strings).collect();
        assert_eq!(
            c,
            vec![
                "--name k --driver kubernetes --driver-opt rootless=true --driver-opt loadbalance=sticky --driver-opt namespace=ci-amd --driver-opt replicas=2 --driver-opt nodeselector=kubernetes.io/arch=amd64 --platform linux/amd64 --node amd kind-ci",
                "--name k --driver kubernetes --driver-opt rootless=true --driver-opt loadbalance=sticky --append --driver-opt namespace=ci-arm --driver-opt nodeselector=kubernetes.io/arch=arm64 --driver-opt node.kubernetes.io/pool=graviton --platform linux/arm64 --node arm kind-ci",
            ]
        );
    }

    #[test]
    fn one_remote_node_takes_its_endpoint_and_comma_joined_tls_options() {
        let args = crate::cli::BuilderArgs {
            builder: "r".into(),
            driver: Some("remote".into()),
            driver_opts: vec!["cacert=/c/ca.pem,cert=/c/c.pem,key=/c/c.key".into()],
            nodes: vec![],
            endpoint: Some("tcp://10.0.0.9:1234".into()),
            buildkitd_flags: None,
            buildkitd_config_inline: None,
            buildkit_image: None,
            buildkitd_config: None,
            builder_platforms: None,
            recreate: false,
        };
        let p = crate::plan::builder(&args, &crate::config::Config::default()).unwrap();
        assert_eq!(
            p.asked.driver_opts,
            vec!["cacert".to_string(), "cert".into(), "key".into()]
        );
        assert_eq!(
            strings(create_args(&p)),
            "--name r --driver remote --driver-opt cacert=/c/ca.pem --driver-opt cert=/c/c.pem --driver-opt key=/c/c.key tcp://10.0.0.9:1234"
        );
    }

    #[test]
    fn bad_node_specs_are_refused() {
        let bad = |specs: &[&str], driver: &str| {
            let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
            crate::plan::nodes(&specs, driver).unwrap_err().to_string()
        };
        assert!(bad(&["tcp://a:1=linux/arm64"], "docker-container").contains("--driver remote"));
        assert!(bad(&["tcp://a:1"], "remote").contains("no `=PLATFORMS`"));
        assert!(bad(&["10.0.0.1:1234=linux/arm64"], "remote").contains("not an address"));
        assert!(bad(&["tcp://a:1=linux/arm65"], "remote").contains("unknown platform"));
        assert!(bad(
            &["tcp://a:1=linux/arm64", "tcp://a:1=linux/amd64"],
            "remote"
        )
        .contains("twice"));
        assert!(bad(&["tcp://a:1=linux/arm64,oops"], "remote").contains("not KEY=VALUE"));
        assert_eq!(
            nodes(&["tcp://a:1=linux/aarch64;linux/arm/v7"], "remote")[0].platforms,
            vec!["linux/arm64", "linux/arm/v7"]
        );
    }

    /// `~/.docker/buildx/instances/nod-x` as buildx 0.29.1 wrote it for two
    /// `docker buildx create --driver remote --platform … tcp://…` (the
    /// second with `--append`) on the local chain (tests/nodes.rs).
    const TWO_NODES: &str = r#"{"Name":"nod-x","Driver":"remote","Nodes":[{"Name":"nod-x0","Endpoint":"tcp://127.0.0.1:12340","Platforms":[{"architecture":"amd64","os":"linux"}],"DriverOpts":{"cacert":"/tmp/nodx/ca.pem","cert":"/tmp/nodx/client.pem","key":"/tmp/nodx/client.key","servername":"127.0.0.1"},"Flags":null,"Files":null},{"Name":"nod-x1","Endpoint":"tcp://127.0.0.1:12341","Platforms":[{"architecture":"arm64","os":"linux"}],"DriverOpts":{"cacert":"/tmp/nodx/ca.pem","cert":"/tmp/nodx/client.pem","key":"/tmp/nodx/client.key","servername":"127.0.0.1"},"Flags":null,"Files":null}],"Dynamic":false}"#;

    #[test]
    fn a_two_node_builder_is_used_as_it_is_unless_nodes_are_asked_for() {
        let have = settings_from_instance(TWO_NODES).unwrap();
        assert_eq!(
            have.nodes,
            vec![
                (
                    "tcp://127.0.0.1:12340".to_string(),
                    vec!["linux/amd64".to_string()]
                ),
                (
                    "tcp://127.0.0.1:12341".to_string(),
                    vec!["linux/arm64".to_string()]
                ),
            ]
        );
        // mbx's defaults (docker-container, network=host) were not asked for.
        let p = BuilderPlan {
            name: "nod-x".into(),
            driver: "docker-container".into(),
            driver_opts: vec!["network=host".into()],
            ..Default::default()
        };
        let want = Settings::wanted(&p).unwrap();
        assert!(have.differences(&want, &p.asked).is_empty());
        // Asked for other nodes: each difference named.
        let p = BuilderPlan {
            driver: "remote".into(),
            nodes: nodes(
                &[
                    "tcp://127.0.0.1:12340=linux/amd64",
                    "tcp://127.0.0.1:12342=linux/arm64",
                ],
                "remote",
            ),
            asked: Asked {
                driver: true,
                nodes: true,
                ..Default::default()
            },
            ..p
        };
        let d = have.differences(&Settings::wanted(&p).unwrap(), &p.asked);
        assert_eq!(
            d,
            vec![
                "it has no node tcp://127.0.0.1:12342, one is wanted",
                "it has node tcp://127.0.0.1:12341, not wanted"
            ]
        );
        let (driver, n) = nodes_from_instance(TWO_NODES).unwrap();
        assert_eq!((driver.as_str(), n[1].name.as_str()), ("remote", "nod-x1"));
        assert_eq!(n[1].driver_opts["servername"], "127.0.0.1");
    }
}
