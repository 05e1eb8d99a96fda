//! The run record: the one data model that flows through
//! setup → build → verify → report, and is saved with `--json FILE`.

use serde::{Deserialize, Serialize};

use crate::build::progress::Step;
use crate::platform::Platform;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunRecord {
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
    pub cache: Option<crate::cache::CacheUsage>,
    /// What was built from what (for the report's "build inputs").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<BuildInputs>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseTiming {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// What was wrong before setup repaired it (`missing`, `disabled`, `no F flag`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuilderRecord {
    pub name: String,
    pub driver: String,
    /// `created` or `reused`.
    pub action: String,
    pub buildkit_version: Option<String>,
    /// Platforms the builder's workers report.
    pub platforms: Vec<String>,
    /// Where `platforms` came from: `control-api` (BuildKit's ListWorkers) or
    /// `buildx-inspect` (fallback, see `note`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub platforms_source: String,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlatformRecord {
    pub platform: Platform,
    pub emulated: bool,
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
