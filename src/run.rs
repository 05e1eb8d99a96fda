//! The run record: the one data model that flows through
//! setup → build → verify → report, and is saved with `--json FILE`. It is
//! the contract between runners (`mbx build --json` parts read by `mbx
//! merge`) and with other tools: versioned (`version.rs`), its JSON Schema
//! generated from these types (docs/run-record.schema.json, docs/run-record.md).

mod version;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::platform::Platform;

pub use version::{RecordError, SchemaVersion};

/// The record's JSON Schema, as committed in docs/run-record.schema.json.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunRecord)).expect("a schema is JSON")
}

/// What one mbx run did, saved with `--json FILE`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, JsonSchema)]
pub struct RunRecord {
    /// The record's shape, `MAJOR.MINOR` (absent in records from before 1.0: read as 1.0).
    #[serde(default = "SchemaVersion::unversioned")]
    pub schema_version: SchemaVersion,
    pub mbx_version: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_at: f64,
    pub host_platform: Option<Platform>,
    /// Where the result went: a registry repository or an OCI layout directory.
    pub output: String,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupRecord>,
    pub platforms: Vec<PlatformRecord>,
    /// Digest of the merged multi-platform index.
    pub index_digest: Option<String>,
    /// The merged index's media type and size (with `index_digest`, the
    /// `containerimage.descriptor` of the step's `metadata` output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_descriptor: Option<IndexDescriptor>,
    /// True when every verification check passed.
    pub verified: bool,
    #[serde(default)]
    pub checks: Vec<Check>,
    pub wall_seconds: f64,
    /// Things the user should know about how the run went (e.g. a fallback taken).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The repository's GitHub Actions cache after the run (`mbx ci` on
    /// GitHub with the gha cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheUsage>,
    /// What was built from what (for the report's "build inputs").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<BuildInputs>,
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, Default, PartialEq)]
pub struct BuildInputs {
    pub context: String,
    pub dockerfile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `KEY=VALUE`; values of secret-looking keys are stored as `***`.
    #[serde(default)]
    pub build_args: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Cache backend (`local DIR`, `gha`, `registry REPO`, `none`).
    pub cache: String,
    pub no_cache: bool,
    pub builder: String,
    /// Dockerfile stages that run on the build platform (`FROM
    /// --platform=$BUILDPLATFORM`, and stages built on them), as BuildKit
    /// names them in step names (`build`, `stage-0`): their steps run
    /// natively even in an emulated platform's build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_platform_stages: Vec<String>,
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, Default)]
pub struct SetupRecord {
    pub docker_version: Option<String>,
    pub buildx_version: Option<String>,
    pub binfmt: Vec<BinfmtRecord>,
    pub builder: Option<BuilderRecord>,
    /// What setup changed on the machine, in order (e.g. "registered qemu-aarch64 (host, flags PF)").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Wall time of each setup phase, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseTiming>,
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, PartialEq)]
pub struct PhaseTiming {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
pub struct BinfmtRecord {
    pub platform: Platform,
    /// The binfmt_misc entry's name (e.g. `qemu-aarch64`).
    pub handler: Option<String>,
    pub interpreter: Option<String>,
    pub enabled: bool,
    pub flags: String,
    /// Does the interpreter path exist on the host? (With the F flag the kernel
    /// holds it open, so a path only inside an installer image is fine.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter_present: Option<bool>,
    /// `qemu-aarch64 version 7.2.x …`, when the interpreter can be run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_version: Option<String>,
    /// What was wrong before setup repaired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired: Option<BinfmtRepair>,
}

/// What setup found wrong with a binfmt_misc handler and repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BinfmtRepair {
    /// No handler for the platform.
    #[serde(rename = "missing")]
    Missing,
    /// A handler, disabled.
    #[serde(rename = "disabled")]
    Disabled,
    /// A handler without the F (fix-binary) flag: builds in containers cannot exec it.
    #[serde(rename = "no F flag")]
    NoFixBinary,
    /// A handler without F whose interpreter is not on the host.
    #[serde(rename = "interpreter missing")]
    StaleInterpreter,
    /// Nothing was wrong; `--reset-qemu` registered it again.
    #[serde(rename = "reset")]
    Reset,
}

impl BinfmtRepair {
    pub fn as_str(&self) -> &'static str {
        match self {
            BinfmtRepair::Missing => "missing",
            BinfmtRepair::Disabled => "disabled",
            BinfmtRepair::NoFixBinary => "no F flag",
            BinfmtRepair::StaleInterpreter => "interpreter missing",
            BinfmtRepair::Reset => "reset",
        }
    }
}

impl std::fmt::Display for BinfmtRepair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
pub struct BuilderRecord {
    pub name: String,
    pub driver: String,
    pub action: BuilderAction,
    pub buildkit_version: Option<String>,
    /// Platforms the builder's workers report.
    pub platforms: Vec<String>,
    /// Where `platforms` came from (absent in records from before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms_source: Option<PlatformsSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How the control API was reached (`docker buildx dial-stdio`, or
    /// `buildctl dial-stdio` exec'd in a local docker-container builder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_api_via: Option<String>,
    /// How an existing builder differed from the wanted settings (when recreated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
    /// mbx created it (so `mbx setup --cleanup` may remove it).
    #[serde(default)]
    pub created_by_mbx: bool,
    /// The builder's nodes (one BuildKit each), when it has more than one or
    /// a node is remote: where each platform can be built natively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeRecord>,
}

/// The node in buildx's `buildx.build.ref` (`builder/node/ref`).
pub fn node_of_build_ref(r: &str) -> Option<String> {
    let mut it = r.split('/');
    let (_builder, node, _ref) = (it.next()?, it.next()?, it.next()?);
    (it.next().is_none() && !node.is_empty()).then(|| node.to_string())
}

/// One node of a builder and what its BuildKit worker builds.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
pub struct NodeRecord {
    /// buildx's node name (`NAME0`, `NAME1`, …), as in `buildx.build.ref`.
    pub name: String,
    /// Where buildx reaches it (`tcp://…`, `unix://…`, a kubernetes name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// Its worker's platforms in the worker's order: the first is the one
    /// it runs natively (on real hardware, the node's own architecture).
    #[serde(default)]
    pub platforms: Vec<String>,
}

impl BuilderRecord {
    /// Whether `platform`, built on node `node`, ran under emulation: it is
    /// not native on that node's worker's first platform. None when the
    /// node or its platforms are unknown.
    pub fn emulated_on(&self, node: &str, platform: &Platform) -> Option<bool> {
        let n = self.nodes.iter().find(|n| n.name == node)?;
        let first: Platform = n.platforms.first()?.parse().ok()?;
        Some(!platform.is_native_on(&first))
    }
}

/// What setup did with the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuilderAction {
    /// It did not exist: mbx created it.
    Created,
    /// It existed with the wanted settings.
    Reused,
    /// It existed with other settings and `--recreate` replaced it.
    Recreated,
}

impl BuilderAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            BuilderAction::Created => "created",
            BuilderAction::Reused => "reused",
            BuilderAction::Recreated => "recreated",
        }
    }
}

impl std::fmt::Display for BuilderAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a builder's platforms were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PlatformsSource {
    /// BuildKit's control API (ListWorkers): what the workers can run.
    ControlApi,
    /// `docker buildx inspect`, the fallback (see the builder's `note`): may
    /// list requested platforms the worker lacks.
    BuildxInspect,
}

impl PlatformsSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            PlatformsSource::ControlApi => "control-api",
            PlatformsSource::BuildxInspect => "buildx-inspect",
        }
    }
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
pub struct PlatformRecord {
    pub platform: Platform,
    /// Built under emulation: not the native (first) platform of the node
    /// that built it (one-node builders: not the runner's architecture).
    pub emulated: bool,
    /// The builder node that built it (from buildx's `buildx.build.ref`,
    /// `builder/node/ref`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The platform's image manifest digest, as it stands in the index.
    pub digest: Option<String>,
    /// What buildx reported for this build (`containerimage.digest`): the
    /// manifest, or a per-platform index when attestations are attached.
    pub build_digest: Option<String>,
    pub wall_seconds: f64,
    /// Time spent in steps that ran (not cached).
    pub executed_seconds: f64,
    /// Dockerfile instructions (`[n/m] …`) in the build.
    pub steps_total: usize,
    pub steps_cached: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
    /// The remote cache's import or export failed; the build went on without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_error: Option<CacheIssue>,
    /// What buildx's metadata file said of this platform's build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildx: Option<BuildxResult>,
    /// Multi-runner mode: the runner whose part built this platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerRecord>,
}

/// The merged index as a descriptor's other fields.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, PartialEq, Default)]
pub struct IndexDescriptor {
    pub media_type: String,
    pub size: u64,
}

/// A platform build's `--metadata-file` entries mbx keeps.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, PartialEq, Default)]
pub struct BuildxResult {
    /// `buildx.build.ref`: BUILDER/NODE/REF, for `docker buildx history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_ref: Option<String>,
    /// `containerimage.config.digest` (absent when the build made an index:
    /// attestations attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
}

/// The runner of one multi-runner part (`mbx ci --mode part`, the action's
/// `mode: part`), as the merge reports it.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, PartialEq, Default)]
pub struct RunnerRecord {
    /// The job's `runs-on` label (`MBX_RUNNER_LABEL`, which the reusable
    /// workflow sets), else `RUNNER_NAME`, else `RUNNER_OS`/`RUNNER_ARCH`.
    pub label: String,
    /// The part job's whole mbx run on that runner: setup, build, push (seconds).
    pub wall_seconds: f64,
    /// What the part left out to fit in a job output (e.g. the faster steps'
    /// timings, build logs); absent when nothing was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
}

/// A cache import or export that failed (BuildKit ignores it: the build
/// goes on, slower or leaving no cache for the next run).
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, PartialEq)]
pub struct CacheIssue {
    /// The cache backend (`gha`, `registry`, `local`).
    pub backend: String,
    /// What failed: `import`, `export`, or both.
    pub failed: Vec<CacheDirection>,
    pub cause: CacheCause,
    /// BuildKit's error, first line.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheDirection {
    Import,
    Export,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheCause {
    /// 429 / rate limited until BuildKit's gha timeout.
    Throttled,
    /// 5xx from the cache service.
    Unavailable,
    /// The repository's cache is full (the service refused to reserve an entry).
    Full,
    /// Anything else (see `detail`).
    Other,
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl RunRecord {
    pub fn new(host: Platform) -> RunRecord {
        RunRecord {
            mbx_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: now(),
            host_platform: Some(host),
            ..RunRecord::default()
        }
    }
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One vertex of the build graph as it finally stood.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub digest: String,
    /// The vertex name as BuildKit gave it, e.g. `[linux/arm64 3/4] RUN make`.
    pub name: String,
    /// Seconds since the Unix epoch.
    pub started: Option<f64>,
    pub completed: Option<f64>,
    /// Time the vertex was running, summed over its intervals.
    pub busy_seconds: f64,
    pub cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True for Dockerfile instructions (`[2/4] RUN …`), false for BuildKit's
    /// own work (`[internal] …`, `exporting to image`, pushes).
    pub instruction: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub log_tail: Vec<String>,
}

impl Step {
    /// The instruction without its `[platform n/m]` prefix: the key that
    /// matches the same step across platforms.
    pub fn instruction_text(&self) -> &str {
        match (self.name.starts_with('['), self.name.find("] ")) {
            (true, Some(i)) => &self.name[i + 2..],
            _ => &self.name,
        }
    }
}

/// Above this share of the repository's limit the cache is at risk of eviction.
pub const WARN_FRACTION: f64 = 0.8;

/// The cache of one repository, summed per scope and per ref: what `mbx cache
/// usage` prints and what `mbx ci` keeps in the run record.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, Default, PartialEq)]
pub struct CacheUsage {
    /// `owner/name`.
    pub repository: String,
    /// The repository's total as GitHub reports it (all tools).
    pub total_bytes: u64,
    pub total_count: u64,
    pub limit_bytes: u64,
    /// One row per BuildKit scope (mbx's and others').
    pub scopes: Vec<ScopeUsage>,
    /// Blobs used by indexes of several scopes.
    pub shared_blobs: Bucket,
    /// Blobs no readable index names (index contents unknown, or orphans).
    pub unattributed_blobs: Bucket,
    /// Entries that are not BuildKit's (other tools' caches).
    pub other: Bucket,
    pub refs: Vec<RefUsage>,
    /// True when blobs were attributed from the indexes' contents.
    pub attributed: bool,
    /// The scopes the current run used (set by `mbx ci`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_scopes: Vec<String>,
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, Default, PartialEq)]
pub struct Bucket {
    pub count: u64,
    pub bytes: u64,
}

impl Bucket {
    pub fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, Default, PartialEq)]
pub struct ScopeUsage {
    pub scope: String,
    /// For mbx scopes (`<image>-<os>-<arch>[-<variant>]`): the image prefix…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// …and the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Index entries (every `#n` version, every ref).
    pub indexes: Bucket,
    /// Index versions a newer `#n` on the same ref supersedes (BuildKit never
    /// reads them again).
    pub superseded: u64,
    /// Blobs only this scope's indexes use.
    pub blobs: Bucket,
    pub refs: Vec<String>,
    pub last_accessed_at: Option<DateTime<Utc>>,
}

impl ScopeUsage {
    pub fn bytes(&self) -> u64 {
        self.indexes.bytes + self.blobs.bytes
    }
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize, Default, PartialEq)]
pub struct RefUsage {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Below 80 % of the limit.
    Low,
    /// Above 80 %: the next exports may push old entries out.
    High,
    /// At or above the limit: GitHub is evicting now.
    Evicting,
}

impl CacheUsage {
    pub fn fraction(&self) -> f64 {
        if self.limit_bytes == 0 {
            return 0.0;
        }
        self.total_bytes as f64 / self.limit_bytes as f64
    }

    pub fn risk(&self) -> Risk {
        let f = self.fraction();
        if f >= 1.0 {
            Risk::Evicting
        } else if f > WARN_FRACTION {
            Risk::High
        } else {
            Risk::Low
        }
    }

    pub fn scope(&self, name: &str) -> Option<&ScopeUsage> {
        self.scopes.iter().find(|s| s.scope == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The enums keep the spellings the record had as strings.
    #[test]
    fn closed_sets_keep_their_json_spelling() {
        fn same<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
            v: T,
            s: &str,
        ) {
            assert_eq!(serde_json::to_value(&v).unwrap(), s);
            assert_eq!(serde_json::from_value::<T>(s.into()).unwrap(), v);
        }
        for a in [
            BuilderAction::Created,
            BuilderAction::Reused,
            BuilderAction::Recreated,
        ] {
            same(a, a.as_str());
            assert_eq!(a.to_string(), a.as_str());
        }
        same(PlatformsSource::ControlApi, "control-api");
        same(PlatformsSource::BuildxInspect, "buildx-inspect");
        for (r, s) in [
            (BinfmtRepair::Missing, "missing"),
            (BinfmtRepair::Disabled, "disabled"),
            (BinfmtRepair::NoFixBinary, "no F flag"),
            (BinfmtRepair::StaleInterpreter, "interpreter missing"),
            (BinfmtRepair::Reset, "reset"),
        ] {
            same(r, s);
            assert_eq!(r.to_string(), s);
        }
        assert!(serde_json::from_value::<BuilderAction>("adopted".into()).is_err());
    }
}
