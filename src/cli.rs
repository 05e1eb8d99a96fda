//! Command-line definitions (clap derive) and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mbx",
    version,
    about = "Multi-architecture container builds: fast, verified, explained",
    long_about = "mbx builds a container image for several platforms (linux/amd64, linux/arm64, …), \
each platform as its own build with its own cache, joins them into one multi-platform index, \
reads the result back to prove every platform is there, and reports what each platform cost \
(QEMU emulation included).\n\nThe pipeline: setup → build → verify → report.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline: setup, build every platform, verify, report.
    #[command(
        long_about = "Run the whole pipeline: register/check QEMU binfmt handlers, create or \
reuse the buildx builder, build each platform separately (in parallel), merge them into one \
multi-platform index (an OCI layout on disk, or pushed to a registry), read it back and check \
every platform, then print the report.\n\nExamples:\n  mbx ci --local --context examples/hello\n  \
mbx ci --local --context examples/hello --registry 127.0.0.1:5000\n  \
mbx ci --image ghcr.io/acme/app --tag v1.2.0 --push"
    )]
    Ci(CiArgs),
    /// Check the machine can build every platform: binfmt handlers, Docker, the buildx builder.
    #[command(
        long_about = "Prepare and check the machine: the Docker daemon answers, a QEMU binfmt \
handler (enabled, F flag) exists for every platform that is not native, the buildx builder exists \
(created if absent: docker-container driver, network=host) and its BuildKit workers list every \
requested platform."
    )]
    Setup(SetupArgs),
    /// Build each platform on an existing builder and merge the results (no setup, no verify).
    Build(BuildOnlyArgs),
    /// Join the parts built by `mbx build --push` on several runners into one index.
    #[command(
        long_about = "Multi-runner mode: each matrix job builds its platform on a native runner \
with `mbx build --platform P --push --image REPO --json part.json` and uploads the part as an artifact; \
a final job downloads them all and runs `mbx merge --parts DIR`, which checks the parts fit together, \
pushes one index with the tags, reads it back and reports. From the GitHub Action, `mode: part` and \
`mode: merge` (`mbx ci --mode part|merge`) hand the parts on as job outputs instead \
(.github/workflows/build.yml).\n\nExample:\n  \
mbx build --platform linux/arm64 --image ghcr.io/acme/app --push --json part-arm64.json\n  \
mbx merge --parts parts/ --tag v1.2.0"
    )]
    Merge(MergeArgs),
    /// Read an image index back (registry or OCI layout) and check its platforms.
    #[command(
        long_about = "Read a pushed image (REF = registry reference, tag or digest) or an OCI \
image layout directory back and check: it is an index, every required platform is present, each \
platform's manifest can be fetched and its config names the same os/architecture.\n\nExit status: \
0 all checks pass, 1 a check failed, 2 bad input.\n\nExamples:\n  mbx verify 127.0.0.1:5000/hello:latest \
--platforms linux/amd64,linux/arm64\n  mbx verify mbx-out --platforms linux/amd64,linux/arm64"
    )]
    Verify(VerifyArgs),
    /// Render a saved run record (the JSON written by `--json`) as the terminal report.
    #[command(
        long_about = "Render a saved run record (the JSON that `mbx ci --json FILE` or `mbx build \
--json FILE` writes) as the terminal report: per-platform table (native or emulated, wall time, steps \
run and cached, digest), the emulation cost and the steps to blame, the index and the verification \
checks. --summary writes the GitHub job summary, --github-output the step outputs; under GitHub \
Actions (GITHUB_ACTIONS=true) failed checks and a high emulation cost become annotations.\n\nExample:\n  \
mbx ci --local --context examples/hello --json run.json\n  mbx report --record run.json --summary summary.md"
    )]
    Report(ReportArgs),
    /// GitHub Actions cache: usage per image × platform scope, pruning of stale BuildKit entries.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show the repository's GitHub Actions cache: total vs limit, per BuildKit scope, per ref.
    #[command(
        long_about = "Show the repository's GitHub Actions cache through the REST API: the total \
against the limit (GitHub evicts past it), each BuildKit gha scope (mbx's are \
<image>-<os>-<arch>[-<variant>]) with its index entries and superseded versions, the \
`buildkit-blob-…` entries (shared by every scope), other tools' entries, and each ref.\n\n\
Needs a token with `actions: read` (GITHUB_TOKEN, or --token-env NAME).\n\nExamples:\n  \
mbx cache usage --repo acme/app\n  mbx cache usage --json"
    )]
    Usage(CacheUsageArgs),
    /// Delete stale BuildKit cache entries (a dry run unless --apply).
    #[command(
        long_about = "Delete stale BuildKit gha cache entries: index entries of the matching scopes \
(--scope GLOB, else mbx's scopes) and refs (--ref) that a newer version supersedes or that were \
not used for --older-than, and the blobs only they used. Other tools' keys are never touched. \
Without --apply it only lists what it would delete.\n\nNeeds a token with `actions: write` to \
delete (`permissions: actions: write` in the workflow).\n\nExamples:\n  mbx cache prune \
--older-than 7d\n  mbx cache prune --ref refs/pull/42/merge --apply\n  mbx cache prune --scope \
'app-linux-*' --older-than 2d --apply"
    )]
    Prune(CachePruneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GitHubArgs {
    /// Repository OWNER/NAME.
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    pub repo: Option<String>,
    /// Name of the environment variable holding the token (its value is never printed).
    #[arg(long, value_name = "NAME", default_value = "GITHUB_TOKEN")]
    pub token_env: String,
    /// GitHub REST API base (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(
        long,
        env = "GITHUB_API_URL",
        value_name = "URL",
        default_value = "https://api.github.com"
    )]
    pub api_url: String,
}

#[derive(Debug, Args)]
pub struct CacheUsageArgs {
    #[command(flatten)]
    pub github: GitHubArgs,
    /// The repository's cache limit in GB (GitHub's default is 10).
    #[arg(
        long,
        value_name = "GB",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub limit_gb: f64,
    /// Print the usage as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CachePruneArgs {
    #[command(flatten)]
    pub github: GitHubArgs,
    /// Index entries not used for this long are stale (m, h, d, w: 30m, 12h, 7d, 2w).
    #[arg(long, value_name = "AGE", default_value = "7d")]
    pub older_than: String,
    /// Only this ref (refs/heads/BRANCH, a branch name, or refs/pull/N/merge).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Only scopes matching this glob (default: every mbx scope, <image>-<os>-<arch>[-<variant>]).
    #[arg(long, value_name = "GLOB", value_parser = glob)]
    pub scope: Option<String>,
    /// Delete; without it, only list what would be deleted.
    #[arg(long)]
    pub apply: bool,
    /// Print the plan (and what was deleted) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What one `mbx ci` run does (the action's `mode` input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Setup, build every platform, merge, verify, report: one step.
    All,
    /// One runner's share of a multi-runner build: pushed by digest, handed on as a job output.
    Part,
    /// Join the parts of every runner into one index, verify, write one report.
    Merge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheKind {
    /// GitHub Actions cache (needs ACTIONS_RUNTIME_TOKEN and ACTIONS_CACHE_URL or ACTIONS_RESULTS_URL).
    Gha,
    /// A directory per platform under --cache-dir.
    Local,
    /// IMAGE:buildcache-<os>-<arch> in the registry (needs a pushed image).
    Registry,
    /// No cache import or export.
    None,
}

#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// Platforms to build, comma- or newline-separated.
    #[arg(
        long,
        visible_alias = "platform",
        env = "MBX_PLATFORMS",
        default_value = "linux/amd64,linux/arm64"
    )]
    pub platforms: String,
}

#[derive(Debug, Clone, Args)]
pub struct BuilderArgs {
    /// Name of the buildx builder to create or reuse.
    #[arg(long, env = "MBX_BUILDER", default_value = "ci-builder")]
    pub builder: String,
    /// buildx driver for a new builder (docker-container, docker, kubernetes, remote)
    /// [default: docker-container; an existing builder keeps its own].
    #[arg(long)]
    pub driver: Option<String>,
    /// Driver options for a new builder, repeatable (default network=host); remote TLS:
    /// cacert=FILE,cert=FILE,key=FILE,servername=NAME.
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opts: Vec<String>,
    /// A node of a multi-node builder (remote, kubernetes), repeatable:
    /// ENDPOINT=PLATFORM[;PLATFORM…][,KEY=VALUE…] (the first creates it, the others are
    /// appended; KEY=VALUE are this node's driver options), e.g.
    /// --node tcp://arm.example:1234=linux/arm64.
    #[arg(long = "node", value_name = "ENDPOINT=PLATFORMS")]
    pub nodes: Vec<String>,
    /// Endpoint of a new one-node builder (setup-buildx-action's `endpoint`): a docker
    /// context or host for docker-container, tcp://… or unix://… for remote.
    #[arg(long, value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
    /// buildkitd flags of a new builder (setup-buildx-action's `buildkitd-flags`).
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    pub buildkitd_flags: Option<String>,
    /// buildkitd.toml of a new builder given inline (setup-buildx-action's
    /// `buildkitd-config-inline`; --buildkitd-config wins when both are given).
    #[arg(long, value_name = "TOML")]
    pub buildkitd_config_inline: Option<String>,
    /// BuildKit image for the docker-container driver [env: MBX_BUILDKIT_IMAGE, or
    /// `[builder] buildkit-image` in the config file].
    #[arg(long, env = "MBX_BUILDKIT_IMAGE", value_name = "IMAGE")]
    pub buildkit_image: Option<String>,
    /// buildkitd.toml for a new builder (e.g. http registries) [env: MBX_BUILDKITD_CONFIG, or
    /// `[builder] buildkitd-config` in the config file].
    #[arg(long, env = "MBX_BUILDKITD_CONFIG", value_name = "FILE")]
    pub buildkitd_config: Option<PathBuf>,
    /// Platforms a new builder declares (`buildx create --platform`); default: what BuildKit detects.
    #[arg(long, value_name = "PLATFORMS")]
    pub builder_platforms: Option<String>,
    /// Remove and recreate an existing builder whose settings differ (else that is an error).
    #[arg(long)]
    pub recreate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QemuFrom {
    /// Run a privileged binfmt installer image through the Docker Engine API (--qemu-image).
    Image,
    /// Register the host's qemu-user-static interpreters (needs root).
    Host,
}

#[derive(Debug, Clone, Args)]
pub struct QemuArgs {
    /// Where missing QEMU handlers come from.
    #[arg(long, value_enum, default_value = "image")]
    pub qemu_from: QemuFrom,
    /// binfmt installer image for --qemu-from image (takes `--install ARCHS`, `--uninstall NAMES`
    /// like tonistiigi/binfmt) [env: MBX_QEMU_IMAGE, or `[qemu] image` in the config file;
    /// default: tonistiigi/binfmt pinned by digest].
    #[arg(long, env = "MBX_QEMU_IMAGE", value_name = "IMAGE")]
    pub qemu_image: Option<String>,
    /// Unregister and register again the handlers of the requested foreign platforms
    /// (fixes a handler without the F flag or with a stale interpreter).
    #[arg(long)]
    pub reset_qemu: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Build context directory.
    #[arg(long, default_value = ".")]
    pub context: PathBuf,
    /// Dockerfile (default: <context>/Dockerfile).
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Target stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Build-time variables KEY=VALUE, repeatable.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Image labels KEY=VALUE, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Image name, e.g. 127.0.0.1:5000/team/app or ghcr.io/acme/app:1.0 (default: the context
    /// directory's name under --registry).
    #[arg(long)]
    pub image: Option<String>,
    /// Registry to push to (e.g. 127.0.0.1:5000); implies --push.
    #[arg(long)]
    pub registry: Option<String>,
    /// Tags, repeatable or comma/newline-separated: a tag of --image (`v1`) or, as with
    /// buildx, a full reference (`app:v1`, `127.0.0.1:5000/team/app:v1`, `ghcr.io/acme/app`);
    /// references in several repositories each get every platform and the index (default: latest).
    #[arg(long = "tag", short = 't')]
    pub tags: Vec<String>,
    /// Push each platform by digest and the merged index with its tags.
    #[arg(long)]
    pub push: bool,
    /// Where the result goes, repeatable: DIR (an OCI image layout, when nothing is pushed)
    /// [default: mbx-out], or a buildx exporter spec, each made for every platform:
    /// type=registry, type=image,name=REF,push=true, type=oci,dest=PATH[,tar=false],
    /// type=docker[,dest=FILE], type=local,dest=DIR, type=tar,dest=FILE.
    #[arg(long, short = 'o', value_name = "DIR|SPEC")]
    pub output: Vec<String>,
    /// Load the image into Docker (every platform when its image store holds
    /// multi-platform images, else the runner's); same as --output type=docker.
    #[arg(long)]
    pub load: bool,
    /// Cache backend, one scope per image × platform (default: local with --local, gha otherwise).
    #[arg(long, value_enum)]
    pub cache: Option<CacheKind>,
    /// Directory of the local cache (one subdirectory per scope).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Prefix of the cache scopes: <prefix>-<os>-<arch>[-<variant>] (default: the image name).
    #[arg(long)]
    pub cache_scope_prefix: Option<String>,
    /// Provenance attestation, passed to buildx (e.g. false, mode=max).
    #[arg(long)]
    pub provenance: Option<String>,
    /// SBOM attestation, passed to buildx (e.g. true, generator=IMAGE).
    #[arg(long)]
    pub sbom: Option<String>,
    /// Annotations KEY=VALUE, repeatable; `index:KEY=VALUE` goes on the merged index.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// A build secret in buildx syntax (id=KEY,src=FILE or id=KEY,env=VAR), repeatable.
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// A build secret from a file, KEY=PATH (as build-push-action's secret-files), repeatable.
    #[arg(long = "secret-file", value_name = "KEY=PATH")]
    pub secret_files: Vec<String>,
    /// A build secret from an environment variable, KEY=VAR, repeatable.
    #[arg(long = "secret-env", value_name = "KEY=VAR")]
    pub secret_envs: Vec<String>,
    /// Cache source in buildx syntax, repeatable; replaces mbx's own cache. A gha `scope`,
    /// registry `ref` (or `NAME:TAG` shorthand), local `src` or s3/azblob `name` gets the
    /// platform appended (`scope=app` → `app-linux-arm64`), so platforms never share one.
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Cache destination in buildx syntax, repeatable; per platform as --cache-from.
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Extra build context NAME=PATH|URL|docker-image://…, repeatable (buildx --build-context).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// SSH agent socket or keys for RUN --mount=type=ssh (default|ID[=SOCKET|KEY]), repeatable.
    #[arg(long = "ssh", value_name = "SPEC")]
    pub ssh: Vec<String>,
    /// Networking mode of RUN instructions (default, none, host).
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Custom host-to-IP mapping HOST:IP (or HOST=IP), repeatable.
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Extra privileged entitlement (network.host, security.insecure), repeatable.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
    /// Size of /dev/shm in RUN instructions (e.g. 2g).
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Ulimit of RUN instructions (e.g. nofile=1024:1024), repeatable.
    #[arg(long = "ulimit", value_name = "TYPE=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Parent cgroup of RUN instructions.
    #[arg(long, value_name = "CGROUP")]
    pub cgroup_parent: Option<String>,
    /// Do not cache these stages, repeatable or comma-separated.
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filters: Vec<String>,
    /// Method the build evaluates; mbx builds images, so only `build` (buildx's default).
    #[arg(long, value_name = "METHOD")]
    pub call: Option<String>,
    /// Attestation in buildx syntax (type=sbom,generator=IMAGE; type=provenance,mode=max),
    /// repeatable; --provenance and --sbom take precedence over an --attest of their type.
    #[arg(long = "attest", value_name = "SPEC")]
    pub attests: Vec<String>,
    /// Do not use cache when building.
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the base images.
    #[arg(long)]
    pub pull: bool,
    /// Builds running at once (default: all platforms).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_parallel: Option<usize>,
    /// Write the run record as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CiArgs {
    /// Take the GitHub Action's inputs (the INPUT_* variables action.yml sets) as arguments:
    /// lists split as docker/build-push-action splits them, secrets into mbx's environment only.
    #[arg(long)]
    pub inputs_from_env: bool,
    /// Multi-runner mode (the action's `mode`): `all` builds every platform here; `part`
    /// builds this runner's platform(s), pushes them by digest and hands the part on as the
    /// step output `part`; `merge` joins the parts (--parts-json) into one index, verifies
    /// and reports.
    #[arg(long, value_enum, default_value = "all")]
    pub mode: Mode,
    /// `--mode merge`: the parts as JSON, e.g. `${{ toJSON(needs.build.outputs) }}`
    /// (an object of job outputs, a list of parts, or one part).
    #[arg(long, env = "MBX_PARTS", hide_env_values = true, value_name = "JSON")]
    pub parts_json: Option<String>,
    /// Run on a laptop or a plain machine: local cache directory, report in the terminal.
    #[arg(long)]
    pub local: bool,
    /// Skip the verify stage (the result is not read back; the report says so).
    #[arg(long)]
    pub no_verify: bool,
    /// Remove the builder when the run ends if this run created it
    /// (setup-buildx-action's `cleanup`); a builder it reused stays.
    #[arg(long)]
    pub remove_builder: bool,
    #[command(flatten)]
    pub platforms: PlatformArgs,
    #[command(flatten)]
    pub builder: BuilderArgs,
    #[command(flatten)]
    pub qemu: QemuArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub verify: VerifyFlags,
    #[command(flatten)]
    pub report: ReportFlags,
}

/// How the report reads the run (shared by `ci` and `report`).
#[derive(Debug, Clone, Args)]
pub struct ReportFlags {
    /// The platform that counts as native when costing emulation (default: the
    /// runner's arch, as recorded at build time).
    #[arg(long, value_name = "PLATFORM")]
    pub native_platform: Option<String>,
    /// Emit a GitHub warning annotation when QEMU emulation takes more than this
    /// percent of the executed step time.
    #[arg(
        long,
        env = "MBX_EMULATION_WARN_PERCENT",
        default_value_t = 50.0,
        value_name = "PERCENT",
        allow_negative_numbers = true
    )]
    pub emulation_warn_percent: f64,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub platforms: PlatformArgs,
    #[command(flatten)]
    pub builder: BuilderArgs,
    #[command(flatten)]
    pub qemu: QemuArgs,
    /// Remove what mbx created (the builder named by --builder, if mbx created it) and stop.
    #[arg(long)]
    pub cleanup: bool,
    /// Print what setup found as JSON (the run record's `setup` part) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BuildOnlyArgs {
    /// Run with local defaults (local cache directory).
    #[arg(long)]
    pub local: bool,
    #[command(flatten)]
    pub platforms: PlatformArgs,
    /// Name of an existing buildx builder (see `mbx setup`).
    #[arg(long, env = "MBX_BUILDER", default_value = "ci-builder")]
    pub builder: String,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Registry user (with --password-stdin) for the push; else the docker config's
    /// credentials (`docker login REGISTRY`). Checked before anything is built.
    #[arg(long, env = "MBX_REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// Read the registry password or token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// How the result is read back and what is checked (shared by `ci` and `verify`).
#[derive(Debug, Clone, Args)]
pub struct VerifyFlags {
    /// Read every layer and check each ELF binary's machine matches its platform.
    #[arg(long)]
    pub check_binaries: bool,
    /// Largest (compressed) layer read by --check-binaries.
    #[arg(long, value_name = "BYTES", default_value_t = 2 * 1024 * 1024 * 1024, allow_negative_numbers = true)]
    pub max_layer_bytes: u64,
    /// Give up reading the registry after this long, retries included (seconds, or 90s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = seconds_or_duration)]
    pub timeout: std::time::Duration,
    /// Use plain http for this registry host (loopback hosts always use http).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Registry user (with --password-stdin), for the push, the merge and the read-back;
    /// else the docker config's credentials (`docker login REGISTRY`), else on ghcr.io
    /// GITHUB_ACTOR and GITHUB_TOKEN. Checked before anything is built.
    #[arg(long, env = "MBX_REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// Read the registry password or token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image reference (tag or digest) or an OCI image layout directory.
    pub reference: String,
    #[command(flatten)]
    pub platforms: PlatformArgs,
    /// Fail when the index holds platforms that were not required.
    #[arg(long)]
    pub exact: bool,
    #[command(flatten)]
    pub verify: VerifyFlags,
    /// Print the verification as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Directory holding the parts' run records (searched recursively).
    #[arg(long, value_name = "DIR")]
    pub parts: PathBuf,
    /// Tags, repeatable or comma/newline-separated (default: the tags the parts were built with).
    #[arg(long = "tag", short = 't')]
    pub tags: Vec<String>,
    /// Platforms the index must hold (default: those of the parts).
    #[arg(long, visible_alias = "platform")]
    pub platforms: Option<String>,
    /// Annotation for the merged index, index:KEY=VALUE, repeatable.
    #[arg(long = "annotation", value_name = "index:KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Accepted for scripts written for mbx < 1.1 (whose merge ran imagetools
    /// on this builder); the merge now writes the index to the registry itself.
    #[arg(long, env = "MBX_BUILDER", default_value = "ci-builder", hide = true)]
    pub builder: String,
    /// Write the merged run record as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub verify: VerifyFlags,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run record written by `mbx ci --json FILE`.
    #[arg(long, value_name = "FILE")]
    pub record: PathBuf,
    /// Append the job summary (GitHub-flavoured Markdown) to FILE, e.g. "$GITHUB_STEP_SUMMARY".
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Append the step outputs (digest, tags, metadata, platform-digests,
    /// emulation-cost-seconds) to FILE, e.g. "$GITHUB_OUTPUT".
    #[arg(long, value_name = "FILE")]
    pub github_output: Option<PathBuf>,
    #[command(flatten)]
    pub report: ReportFlags,
}

/// `--timeout`: a bare number of seconds (`60`) or a humantime duration (`90s`, `2m`).
fn seconds_or_duration(s: &str) -> Result<std::time::Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(n) => Ok(std::time::Duration::from_secs(n)),
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{e}; pass seconds (60) or a duration (90s, 2m)")),
    }
}

/// `--scope`: a glob globset can compile.
fn glob(s: &str) -> Result<String, String> {
    globset::Glob::new(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}
