//! CLI flags + config file → one validated `Plan`. Everything the user can
//! get wrong is caught here, before a builder starts, with exit status 2.

use std::path::{Path, PathBuf};

pub mod cache;
pub mod output;

use crate::cli::{BuildArgs, BuilderArgs, CacheKind, PlatformArgs};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::platform::Platform;

#[derive(Debug, Clone)]
pub struct Plan {
    pub platforms: Vec<Platform>,
    /// The machine's own platform: builds for it run natively.
    pub host: Platform,
    pub builder: BuilderPlan,
    pub build: Option<BuildPlan>,
    /// `--local`: a run on a plain machine rather than in GitHub Actions.
    pub local: bool,
}

#[derive(Debug, Clone, Default)]
pub struct BuilderPlan {
    pub name: String,
    pub driver: String,
    pub driver_opts: Vec<String>,
    pub buildkit_image: Option<String>,
    pub buildkitd_config: Option<PathBuf>,
    /// Platforms given to `buildx create --platform` (empty: detected).
    pub platforms: Vec<String>,
    /// Recreate an existing builder whose settings differ.
    pub recreate: bool,
    /// Nodes of a multi-node builder (`--node`), in creation order.
    pub nodes: Vec<NodeSpec>,
    /// Endpoint of a one-node builder (`--endpoint`).
    pub endpoint: Option<String>,
    /// `--buildkitd-flags` of a new builder.
    pub buildkitd_flags: Option<String>,
    /// The settings the user asked for: only these make an existing builder
    /// "different" (else it is used as it is).
    pub asked: Asked,
    /// The native platform of each node of a multi-node builder, filled once
    /// setup has asked them (empty: the runner's platform is the native one).
    pub node_natives: Vec<Platform>,
}

impl Plan {
    /// Whether `p` builds under emulation: not native on the runner, or on a
    /// multi-node builder on none of its nodes.
    pub fn emulated(&self, p: &Platform) -> bool {
        if self.builder.node_natives.is_empty() {
            !p.is_native_on(&self.host)
        } else {
            !self.builder.node_natives.iter().any(|n| p.is_native_on(n))
        }
    }
}

/// One `--node ENDPOINT=PLATFORMS[,KEY=VALUE…]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSpec {
    /// `tcp://…`/`unix://…` (remote) or the node's name (kubernetes).
    pub endpoint: String,
    /// Normalised platforms, the first its native one.
    pub platforms: Vec<String>,
    /// This node's own driver options.
    pub opts: Vec<String>,
}

/// Which builder settings the user gave (flag, environment or config file);
/// mbx's own defaults (`network=host`) are not asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Asked {
    pub driver: bool,
    /// Keys of the driver options given (`image` for --buildkit-image).
    pub driver_opts: Vec<String>,
    pub config: bool,
    pub platforms: bool,
    pub nodes: bool,
}

impl Asked {
    /// Every setting (tests; a builder mbx must match exactly).
    pub fn everything(want_opts: &[String]) -> Asked {
        Asked {
            driver: true,
            driver_opts: want_opts.to_vec(),
            config: true,
            platforms: true,
            nodes: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub target: Option<String>,
    pub build_args: Vec<String>,
    pub labels: Vec<String>,
    pub output: Output,
    pub cache: Cache,
    pub provenance: Option<String>,
    pub sbom: Option<String>,
    /// Annotations for each platform's manifest.
    pub annotations: Vec<String>,
    /// Annotations for the merged index (given as `index:KEY=VALUE`).
    pub index_annotations: Vec<String>,
    /// Secrets in buildx syntax; they name files or variables, never values.
    pub secrets: Vec<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// buildx flags passed as given to every platform's build (`--ssh=…`,
    /// `--add-host=…`, `--attest=…`, …), each `--flag=value`.
    pub buildx_flags: Vec<String>,
    /// Repositories beyond the output's, each with its tags: every platform
    /// is pushed by digest to each, and the index made under every tag.
    pub more_repositories: Vec<(String, Vec<String>)>,
    /// What the plan changed of what was asked, for the record's notes.
    pub notes: Vec<String>,
    pub max_parallel: usize,
    pub json: Option<PathBuf>,
    /// What else is made of the result (`--load`, `--output type=…`).
    pub exports: output::Exports,
    /// A scratch directory holding the OCI layout when only exports were
    /// asked for; removed when the plan is dropped.
    pub scratch: Option<std::sync::Arc<tempfile::TempDir>>,
    /// Values never to be printed or recorded (secret build args, secrets
    /// read from the environment, the runner's tokens).
    pub redactions: Redactions,
}

/// Values mbx must never print or record. Its `Debug` shows a count only.
#[derive(Clone, Default, PartialEq)]
pub struct Redactions(Vec<String>);

impl std::fmt::Debug for Redactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactions({} values)", self.0.len())
    }
}

/// Build-arg keys whose values are treated as secrets (`NPM_TOKEN`, `api_key`, …).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "KEY",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|w| k.contains(w))
}

impl Redactions {
    /// The values of secret-looking build args, of the variables `--secret`
    /// and `--secret-env` read, and of the runner's tokens.
    pub fn for_build(build_args: &[String], secrets: &[String]) -> Redactions {
        let mut values: Vec<String> = build_args
            .iter()
            .filter_map(|a| a.split_once('='))
            .filter(|(k, _)| is_secret_key(k))
            .map(|(_, v)| v.to_string())
            .collect();
        let vars = secrets
            .iter()
            .flat_map(|s| s.split(','))
            .filter_map(|f| f.strip_prefix("env="))
            .map(str::to_string);
        let tokens = ["ACTIONS_RUNTIME_TOKEN", "GITHUB_TOKEN"].map(str::to_string);
        values.extend(
            vars.chain(tokens)
                .filter_map(|v| std::env::var(v).ok())
                .flat_map(|v| v.lines().map(str::to_string).collect::<Vec<_>>()),
        );
        // Very short values would blank out ordinary words.
        values.retain(|v| v.trim().len() >= 3);
        // Longest first, so a value containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactions(values)
    }

    pub fn values(&self) -> &[String] {
        &self.0
    }

    /// `text` with every value replaced by `***`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.0 {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An OCI image layout directory holding one multi-platform index.
    Layout { dir: PathBuf, ref_name: String },
    /// Push each platform by digest, then the index under every tag.
    Registry {
        repository: String,
        tags: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cache {
    None,
    Local {
        dir: PathBuf,
        prefix: String,
    },
    Gha {
        prefix: String,
    },
    Registry {
        repository: String,
    },
    /// The user's own `--cache-from`/`--cache-to` (buildx syntax), made
    /// per platform by [`cache::per_platform`].
    User {
        from: Vec<String>,
        to: Vec<String>,
    },
}

impl Cache {
    /// The cache scope of one platform: `<prefix>-<os>-<arch>[-<variant>]`.
    pub fn scope(prefix: &str, platform: &Platform) -> String {
        format!("{prefix}-{}", platform.slug())
    }
}

/// A parsed image reference: `[registry/]path[:tag][@digest]`, the
/// repository kept as written (`acme/app`, not `docker.io/acme/app`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(s: &str) -> std::result::Result<ImageRef, String> {
        let s = s.trim();
        let r = crate::oci::parse_reference(s)?;
        let digest = r.digest().map(str::to_string);
        let named = digest
            .as_deref()
            .and_then(|d| s.strip_suffix(d)?.strip_suffix('@'))
            .unwrap_or(s);
        // oci-client fills in `latest`; a tag counts only when written.
        let tag = r
            .tag()
            .and_then(|t| named.strip_suffix(t)?.strip_suffix(':').map(|_| t))
            .filter(|_| named.rsplit('/').next().is_some_and(|c| c.contains(':')))
            .map(str::to_string);
        let repository = match &tag {
            Some(t) => &named[..named.len() - t.len() - 1],
            None => named,
        };
        if let Some(t) = &tag {
            validate_tag(t)?;
        }
        Ok(ImageRef {
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The registry host, `docker.io` when the reference names none.
    pub fn registry(&self) -> String {
        crate::oci::parse_reference(&self.repository)
            .map(|r| r.registry().to_string())
            .unwrap_or_else(|_| "docker.io".into())
    }

    /// The last path component, used to name cache scopes.
    pub fn short_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }
}

/// `--tag` values: repeatable, comma- or newline-separated (as
/// docker/metadata-action emits them), validated, duplicates dropped.
pub fn tags(given: &[String]) -> Result<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    for t in given
        .iter()
        .flat_map(|t| t.split([',', '\n']))
        .map(str::trim)
    {
        if t.is_empty() {
            continue;
        }
        validate_tag(t).map_err(|e| Error::input(e, "pass --tag NAME, e.g. --tag v1.2.0"))?;
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    Ok(tags)
}

fn validate_tag(t: &str) -> std::result::Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        && !t.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!("`{t}` is not a valid tag (letters, digits, . _ -, at most 128, not starting with . or -)"))
    }
}

/// A `--tag`: a tag of the image (`v1`), or a full reference as buildx
/// takes it (`app:v1`, `127.0.0.1:5000/team/app:v1`; no tag = `latest`).
#[derive(Debug, Clone, PartialEq)]
pub enum TagArg {
    Tag(String),
    Ref { repository: String, tag: String },
}

/// `--tag` values: a value with `/` or `:` is a full reference.
pub fn tag_args(given: &[String]) -> Result<Vec<TagArg>> {
    let mut out: Vec<TagArg> = Vec::new();
    for t in given
        .iter()
        .flat_map(|t| t.split([',', '\n']))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let arg = if t.contains(['/', ':']) {
            let r = ImageRef::parse(t).map_err(|e| {
                Error::input(
                    format!("--tag `{t}` is not an image reference: {e}"),
                    "pass --tag TAG, or a full reference such as --tag ghcr.io/acme/app:v1",
                )
            })?;
            if r.digest.is_some() {
                return Err(Error::input(
                    format!("--tag `{t}` names a digest; a build makes a new one"),
                    "pass references with a tag, e.g. --tag ghcr.io/acme/app:1.0",
                ));
            }
            TagArg::Ref {
                tag: r.tag.clone().unwrap_or_else(|| "latest".into()),
                repository: r.repository,
            }
        } else {
            validate_tag(t).map_err(|e| Error::input(e, "pass --tag NAME, e.g. --tag v1.2.0"))?;
            TagArg::Tag(t.to_string())
        };
        if !out.contains(&arg) {
            out.push(arg);
        }
    }
    Ok(out)
}

/// The same repository however written (`acme/app` = `docker.io/acme/app`).
fn same_repository(a: &str, b: &str) -> bool {
    let norm = |r: &str| {
        crate::oci::parse_reference(r)
            .map(|p| format!("{}/{}", p.registry(), p.repository()))
            .unwrap_or_else(|_| r.to_string())
    };
    a == b || norm(a) == norm(b)
}

/// Bare tags and the references of `primary` as its tags; every other
/// repository (in the order given) with its own tags.
/// Repositories beyond the image's, each with its tags.
type MoreRepositories = Vec<(String, Vec<String>)>;
type Repositories = (Vec<String>, MoreRepositories);
fn group_tags(args: &[TagArg], primary: Option<&str>) -> Repositories {
    let mut own: Vec<String> = Vec::new();
    let mut more: Vec<(String, Vec<String>)> = Vec::new();
    for a in args {
        let (repo, tag) = match a {
            TagArg::Tag(t) => (None, t),
            TagArg::Ref { repository, tag } => (Some(repository.as_str()), tag),
        };
        let list = match repo {
            Some(r) if !primary.is_some_and(|p| same_repository(p, r)) => {
                match more.iter().position(|(m, _)| same_repository(m, r)) {
                    Some(i) => &mut more[i].1,
                    None => {
                        more.push((r.to_string(), Vec::new()));
                        &mut more.last_mut().expect("pushed").1
                    }
                }
            }
            _ => &mut own,
        };
        if !list.contains(tag) {
            list.push(tag.clone());
        }
    }
    (own, more)
}

/// A name safe for image paths and cache scopes, from a directory name.
fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if out.is_empty() {
        "image".into()
    } else {
        out
    }
}

pub fn platforms(args: &PlatformArgs) -> Result<Vec<Platform>> {
    let list = Platform::parse_list(&args.platforms).map_err(|e| {
        Error::input(
            e.to_string(),
            "pass --platforms as a comma-separated list, e.g. --platforms linux/amd64,linux/arm64",
        )
    })?;
    if let Some(p) = list.iter().find(|p| p.os != "linux") {
        return Err(Error::input(
            format!("{p} is not a Linux platform: mbx builds Linux images (QEMU emulates CPUs, not operating systems)"),
            "pass --platforms with linux/… platforms only",
        ));
    }
    Ok(list)
}

/// A name buildx accepts for a builder (its rule: a letter or digit, then
/// letters, digits, `_`, `.` or `-`).
pub fn builder_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::input(
            format!("`{name}` is not a builder name"),
            "pass --builder NAME (or MBX_BUILDER) of letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        ))
    }
}

pub fn builder(args: &BuilderArgs, config: &Config) -> Result<BuilderPlan> {
    builder_name(&args.builder)?;
    let drivers = ["docker-container", "docker", "kubernetes", "remote"];
    let driver = args
        .driver
        .clone()
        .unwrap_or_else(|| "docker-container".into());
    if !drivers.contains(&driver.as_str()) {
        return Err(Error::input(
            format!("unknown buildx driver `{driver}`"),
            format!("pass --driver as one of {}", drivers.join(", ")),
        ));
    }
    let (mut driver_opts, asked_opts) = driver_opts(args, config)?;
    // Asked for: what the command line (or the action's inputs) gives. The
    // config file's values shape a builder mbx creates, nothing more.
    let mut asked = Asked {
        driver: args.driver.is_some(),
        driver_opts: asked_opts,
        ..Asked::default()
    };
    if driver == "docker-container" && !driver_opts.iter().any(|o| o.starts_with("network=")) {
        driver_opts.push("network=host".into());
    }
    // As setup-buildx-action: the file first, then the inline text.
    let buildkitd_config = match (&args.buildkitd_config, &args.buildkitd_config_inline) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(text)) => Some(inline_config(text)?),
        (None, None) => config.builder.buildkitd_config.clone(),
    };
    if let Some(p) = &buildkitd_config {
        if !p.is_file() {
            return Err(Error::input(
                format!("buildkitd config `{}` does not exist", p.display()),
                "pass --buildkitd-config FILE (or MBX_BUILDKITD_CONFIG) naming an existing buildkitd.toml",
            ));
        }
    }
    let mut buildkit_image = args
        .buildkit_image
        .clone()
        .or_else(|| config.builder.buildkit_image.clone());
    let mut buildkitd_config = buildkitd_config;
    if driver == "remote" {
        // The daemons are the user's own: their image and config too.
        if args.buildkit_image.is_some()
            || args.buildkitd_config.is_some()
            || args.buildkitd_config_inline.is_some()
            || args.buildkitd_flags.is_some()
        {
            return Err(Error::input(
                "--buildkit-image, --buildkitd-config and --buildkitd-flags shape a BuildKit that buildx starts, not a remote one",
                "configure the remote buildkitd itself, and drop these flags with --driver remote",
            ));
        }
        buildkit_image = None;
        buildkitd_config = None;
    }
    if args.buildkit_image.is_some() {
        asked.driver_opts.push("image".into());
    }
    asked.config = args.buildkitd_config.is_some() || args.buildkitd_config_inline.is_some();
    let nodes = nodes(&args.nodes, &driver)?;
    asked.nodes = !nodes.is_empty();
    asked.driver |= asked.nodes;
    let platforms = builder_platforms(args)?;
    asked.platforms = !platforms.is_empty();
    Ok(BuilderPlan {
        name: args.builder.clone(),
        driver,
        driver_opts,
        buildkit_image,
        buildkitd_config,
        platforms,
        recreate: args.recreate,
        nodes,
        endpoint: args.endpoint.clone(),
        buildkitd_flags: args.buildkitd_flags.clone(),
        asked,
        node_natives: Vec::new(),
    })
}

/// The driver options (`--driver-opt a=1,b=2` is two options, as buildx reads
/// it), and the keys the user asked for on the command line.
fn driver_opts(args: &BuilderArgs, config: &Config) -> Result<(Vec<String>, Vec<String>)> {
    let split = |opts: &[String]| -> Vec<String> {
        opts.iter()
            .flat_map(|o| o.split(','))
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect()
    };
    let driver_opts = if args.driver_opts.is_empty() {
        split(&config.builder.driver_opts)
    } else {
        split(&args.driver_opts)
    };
    for o in &driver_opts {
        if !o.contains('=') {
            return Err(Error::input(
                format!("driver option `{o}` is not KEY=VALUE"),
                "pass --driver-opt KEY=VALUE, e.g. --driver-opt network=host",
            ));
        }
    }
    let asked = split(&args.driver_opts)
        .iter()
        .filter_map(|o| o.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    Ok((driver_opts, asked))
}

/// `--buildkitd-config-inline`: written once per content under the temp
/// directory (buildx reads a file).
fn inline_config(text: &str) -> Result<PathBuf> {
    use sha2::Digest as _;
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(Error::input(
            format!("--buildkitd-config-inline is not valid TOML: {e}"),
            "give the contents of a buildkitd.toml, e.g. `[registry.\"127.0.0.1:5000\"]` then `http = true`",
        ));
    }
    let hash = sha2::Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("mbx-buildkitd-{hex}.toml"));
    std::fs::write(&path, text).map_err(|e| {
        Error::env(
            format!("cannot write {}: {e}", path.display()),
            "check TMPDIR is writable",
        )
    })?;
    Ok(path)
}

/// `--node ENDPOINT=PLATFORM[;PLATFORM…][,KEY=VALUE…]`, each checked.
pub fn nodes(specs: &[String], driver: &str) -> Result<Vec<NodeSpec>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let help = "pass --node ENDPOINT=PLATFORM[;PLATFORM…][,KEY=VALUE…], e.g. --node tcp://10.0.0.2:1234=linux/arm64 (remote) or --node arm=linux/arm64,namespace=ci (kubernetes)";
    if driver != "remote" && driver != "kubernetes" {
        return Err(Error::input(
            format!("--node needs --driver remote or kubernetes, not `{driver}`"),
            "pass --driver remote (BuildKit daemons you run) or --driver kubernetes",
        ));
    }
    let mut out: Vec<NodeSpec> = Vec::new();
    for spec in specs {
        let bad = |why: String| Error::input(format!("--node `{spec}`: {why}"), help);
        // The platforms follow the last `=` before the first `,`.
        let head = spec.split(',').next().unwrap_or("");
        let Some((endpoint, plats)) = head.rsplit_once('=') else {
            return Err(bad("no `=PLATFORMS`".into()));
        };
        let endpoint = endpoint.trim().to_string();
        if endpoint.is_empty() {
            return Err(bad("no endpoint before `=`".into()));
        }
        if driver == "remote" && !endpoint.contains("://") {
            return Err(bad(format!(
                "`{endpoint}` is not an address (tcp://HOST:PORT or unix:///PATH)"
            )));
        }
        let platforms = Platform::parse_list(&plats.replace(';', ","))
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(ToString::to_string)
            .collect();
        let opts: Vec<String> = spec
            .split(',')
            .skip(1)
            .map(|o| o.trim().to_string())
            .collect();
        if let Some(o) = opts.iter().find(|o| !o.contains('=')) {
            return Err(bad(format!("node option `{o}` is not KEY=VALUE")));
        }
        if out.iter().any(|n| n.endpoint == endpoint) {
            return Err(bad(format!("`{endpoint}` is given twice")));
        }
        out.push(NodeSpec {
            endpoint,
            platforms,
            opts,
        });
    }
    Ok(out)
}

fn builder_platforms(args: &BuilderArgs) -> Result<Vec<String>> {
    match &args.builder_platforms {
        None => Ok(Vec::new()),
        Some(s) => Platform::parse_list(s)
            .map(|ps| ps.iter().map(ToString::to_string).collect())
            .map_err(|e| {
                Error::input(
                    e.to_string(),
                    "pass --builder-platforms as a comma-separated list, e.g. linux/amd64,linux/arm64",
                )
            }),
    }
}

/// A Git context (build-push-action's `{{defaultContext}}`, a Git URL) in
/// place of a directory: mbx builds a local directory, and says how to get one.
fn git_context(context: &Path) -> Option<Error> {
    let c = context.to_string_lossy();
    let git = c.contains("{{defaultContext}}")
        || ["https://", "http://", "git://", "ssh://", "git@"]
            .iter()
            .any(|p| c.starts_with(p))
        || c.contains(".git#")
        || (c.ends_with(".git") && !context.exists());
    git.then(|| {
        Error::input(
            format!("`{c}` is a Git context: mbx builds a local directory"),
            "check the repository out first (an `actions/checkout` step) and pass its directory, e.g. `context: .` or `context: ./subdir`",
        )
    })
}

/// In GitHub Actions, the default context `.` is the workspace with no
/// checkout in it (build-push-action would have built the Git context).
fn no_checkout(context: &Path, env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("GITHUB_ACTIONS").as_deref() == Some("true")
        && (context == Path::new(".")
            || env("GITHUB_WORKSPACE").is_some_and(|w| Path::new(&w) == context))
        && !context.join(".git").exists()
}

pub fn build(args: &BuildArgs, local: bool) -> Result<BuildPlan> {
    let buildx_flags = buildx_flags(args)?;
    let context = &args.context;
    if let Some(e) = git_context(context) {
        return Err(e);
    }
    if !context.is_dir() {
        return Err(Error::input(
            format!("build context `{}` is not a directory", context.display()),
            "pass --context DIR pointing at the folder that holds your Dockerfile",
        ));
    }
    let dockerfile = args
        .file
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    if !dockerfile.is_file() {
        let env = |k: &str| std::env::var(k).ok();
        return Err(Error::input(
            format!("Dockerfile `{}` not found", dockerfile.display()),
            match no_checkout(context, &env) {
                true => "the workspace holds no checkout: build-push-action builds the repository's Git context by default, mbx builds the workspace; add an `actions/checkout` step before this one (or pass --file PATH)",
                false => "add a Dockerfile to the context or pass --file PATH",
            },
        ));
    }
    let context_name = std::fs::canonicalize(context)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| sanitize_name(&n))
        .unwrap_or_else(|| "image".into());

    let mut outputs = output::parse(&args.output, args.load)?;
    outputs.settle(args.push || args.registry.is_some() || outputs.push);
    let (image, tags, more_repositories) = image_and_tags(args, &outputs, &context_name)?;

    check_attestation("--provenance", args.provenance.as_deref())?;
    check_attestation("--sbom", args.sbom.as_deref())?;
    let (output, scratch) = output(args, &outputs, image.as_ref(), &tags, &context_name)?;
    let mut exports = outputs.exports;
    let repository = image
        .as_ref()
        .map_or(context_name.as_str(), |i| &i.repository);
    exports.names = tags.iter().map(|t| format!("{repository}:{t}")).collect();
    output::check_destinations(&exports)?;
    let mut notes = Vec::new();
    let cache = if args.cache_from.is_empty() && args.cache_to.is_empty() {
        cache(args, image.as_ref(), context_name, &output, local)?
    } else {
        notes.extend(cache::user_note(&args.cache_from, &args.cache_to));
        Cache::User {
            from: args.cache_from.clone(),
            to: args.cache_to.clone(),
        }
    };
    let (annotations, index_annotations) = check_kv_args(args)?;
    let secrets = secrets(args)?;
    let redactions = Redactions::for_build(&args.build_args, &secrets);
    if !more_repositories.is_empty() && matches!(output, Output::Layout { .. }) {
        notes.push(format!(
            "tags in {} other repositories: nothing is pushed, so the OCI layout holds only {}",
            more_repositories.len(),
            match &output {
                Output::Layout { ref_name, .. } => ref_name.as_str(),
                Output::Registry { .. } => "",
            }
        ));
    }
    Ok(BuildPlan {
        context: context.clone(),
        dockerfile,
        target: args.target.clone(),
        build_args: args.build_args.clone(),
        labels: args.labels.clone(),
        output,
        cache,
        provenance: args.provenance.clone(),
        sbom: args.sbom.clone(),
        annotations,
        index_annotations,
        secrets,
        no_cache: args.no_cache,
        pull: args.pull,
        buildx_flags,
        more_repositories,
        notes,
        max_parallel: args.max_parallel.unwrap_or(usize::MAX),
        json: args.json.clone(),
        redactions,
        exports,
        scratch,
    })
}

/// The image (from --image, an `--output type=registry,name=…`, or the first
/// full reference in the tags), its tags, and the other repositories named.
fn image_and_tags(
    args: &BuildArgs,
    outputs: &output::Outputs,
    context_name: &str,
) -> Result<(Option<ImageRef>, Vec<String>, MoreRepositories)> {
    let tag_args = tag_args(&args.tags)?;
    let mut image = match image(args, context_name)? {
        None => output_image(outputs)?,
        some => some,
    };
    if image.is_none() {
        // No --image: the first full reference names the image (buildx's -t).
        image = tag_args.iter().find_map(|t| match t {
            TagArg::Ref { repository, .. } => Some(ImageRef {
                repository: repository.clone(),
                tag: None,
                digest: None,
            }),
            TagArg::Tag(_) => None,
        });
    }
    let (mut tags, more_repositories) =
        group_tags(&tag_args, image.as_ref().map(|i| i.repository.as_str()));
    for n in outputs.push_names.iter().skip(1) {
        if let Some(t) = ImageRef::parse(n).ok().and_then(|r| r.tag) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
    }
    if let Some(t) = image.as_ref().and_then(|i| i.tag.clone()) {
        if !tags.contains(&t) {
            tags.insert(0, t);
        }
    }
    if tags.is_empty() {
        tags.push("latest".into());
    }
    Ok((image, tags, more_repositories))
}

/// The buildx flags mbx passes as given to every platform's build.
fn buildx_flags(args: &BuildArgs) -> Result<Vec<String>> {
    if let Some(c) = args.call.as_deref().filter(|c| *c != "build") {
        return Err(Error::input(
            format!("--call {c} (input `call`) evaluates the build instead of building an image, which mbx cannot join and verify"),
            "drop `call` (mbx always builds), or run `docker buildx build --call check` in a step of its own",
        ));
    }
    let mut out = Vec::new();
    let mut each = |flag: &str, values: &[String]| {
        for v in values {
            out.push(format!("--{flag}={v}"));
        }
    };
    each("build-context", &args.build_contexts);
    each("ssh", &args.ssh);
    each("add-host", &args.add_hosts);
    each("allow", &args.allow);
    each("ulimit", &args.ulimits);
    let stages: Vec<String> = args
        .no_cache_filters
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    each("no-cache-filter", &stages);
    // As build-push-action: --provenance / --sbom outrank an --attest of their type.
    let attests: Vec<String> = args
        .attests
        .iter()
        .filter(|a| {
            let kind = |t: &str| a.split(',').any(|f| f.trim() == format!("type={t}"));
            !(kind("provenance") && args.provenance.is_some()
                || kind("sbom") && args.sbom.is_some())
        })
        .cloned()
        .collect();
    each("attest", &attests);
    for (flag, v) in [
        ("network", &args.network),
        ("shm-size", &args.shm_size),
        ("cgroup-parent", &args.cgroup_parent),
    ] {
        if let Some(v) = v {
            out.push(format!("--{flag}={v}"));
        }
    }
    for f in &out {
        if f.ends_with('=') {
            return Err(Error::input(
                format!("`{}` has no value", f.trim_end_matches('=')),
                "give each option a value, or leave it out",
            ));
        }
    }
    Ok(out)
}

/// What an OCI layout written by mbx holds; a later run replaces exactly these.
pub const LAYOUT_ENTRIES: [&str; 4] = ["oci-layout", "index.json", "blobs", ".mbx-parts"];

/// Entries of `dir` that an mbx layout does not hold (sorted; empty when
/// `dir` is absent).
fn foreign_entries(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !LAYOUT_ENTRIES.contains(&n.as_str()))
        .collect();
    out.sort();
    out
}

/// The image to push, from `--image` and/or `--registry` (with the context
/// directory's name as the repository).
fn image(args: &BuildArgs, context_name: &str) -> Result<Option<ImageRef>> {
    let bad_image = |e: String| {
        Error::input(
            format!("invalid --image: {e}"),
            "pass --image like registry.example/team/app[:tag]",
        )
    };
    if let Some(reg) = &args.registry {
        if reg.contains("://") {
            return Err(Error::input(
                format!("--registry `{reg}` is a URL, not a registry host"),
                "pass --registry HOST[:PORT] without a scheme, e.g. --registry 127.0.0.1:5000 (loopback hosts use http by themselves; others: --insecure-registry HOST)",
            ));
        }
    }
    let image = match (&args.image, &args.registry) {
        (Some(i), registry) => {
            let mut r = ImageRef::parse(i).map_err(bad_image)?;
            if r.digest.is_some() {
                return Err(Error::input(
                    format!("--image `{i}` names a digest; a build makes a new one"),
                    "pass --image without @sha256:…",
                ));
            }
            if let Some(reg) = registry {
                if r.registry() == "docker.io" && !i.starts_with("docker.io/") {
                    r.repository = format!("{}/{}", reg.trim_end_matches('/'), r.repository);
                }
            }
            Some(r)
        }
        (None, Some(reg)) => {
            let reg = reg.trim_end_matches('/');
            if reg.is_empty() || reg.contains('/') && !reg.contains('.') && !reg.contains(':') {
                return Err(Error::input(
                    format!("--registry `{reg}` is not a registry host"),
                    "pass --registry HOST[:PORT], e.g. --registry 127.0.0.1:5000",
                ));
            }
            Some(ImageRef::parse(&format!("{reg}/{context_name}")).map_err(bad_image)?)
        }
        (None, None) => None,
    };
    if let Some(i) = &image {
        // The distribution spec's limit on a repository name.
        if i.repository.len() > 255 {
            return Err(Error::input(
                format!(
                    "the repository name is {} characters long; registries take at most 255",
                    i.repository.len()
                ),
                "pass a shorter --image (or context directory name with --registry)",
            ));
        }
    }
    Ok(image)
}

/// `--provenance` / `--sbom` as buildx takes them: a boolean, or
/// comma-separated `KEY=VALUE` fields (`mode=max`, `generator=IMAGE`, …).
fn check_attestation(flag: &str, value: Option<&str>) -> Result<()> {
    let Some(v) = value else { return Ok(()) };
    let boolean = ["true", "false", "1", "0"].contains(&v.to_ascii_lowercase().as_str());
    let fields = !v.is_empty()
        && v.split(',').all(|f| {
            f.split_once('=')
                .is_some_and(|(k, val)| !k.is_empty() && !val.is_empty() && !k.contains(' '))
        });
    let mode_ok = v
        .split(',')
        .filter_map(|f| f.strip_prefix("mode="))
        .all(|m| m == "min" || m == "max");
    if (boolean || fields) && mode_ok {
        return Ok(());
    }
    Err(Error::input(
        format!("{flag} `{v}` is not an attestation setting"),
        format!("pass {flag} true, false, or KEY=VALUE fields such as mode=max (provenance) or generator=IMAGE (sbom)"),
    ))
}

/// Where the result goes: pushed to the image's repository, or an OCI layout
/// directory (new, empty, or an earlier mbx output).
fn output(
    args: &BuildArgs,
    outputs: &output::Outputs,
    image: Option<&ImageRef>,
    tags: &[String],
    context_name: &str,
) -> Result<(Output, Scratch)> {
    let push = args.push || args.registry.is_some() || outputs.push;
    let mut scratch = None;
    let dir = match (&outputs.layout_dir, push) {
        (Some(d), _) => Some(d.clone()),
        // Only exports asked for: the layout they are made from is scratch.
        (None, false) if !outputs.exports.is_empty() || !outputs.exports.notes.is_empty() => {
            let t = crate::interrupt::scratch_dir("out-").map_err(|e| {
                Error::env(
                    format!("cannot create a temporary directory: {e}"),
                    "check TMPDIR",
                )
            })?;
            let d = t.path().join("layout");
            scratch = Some(std::sync::Arc::new(t));
            Some(d)
        }
        (None, _) => None,
    };
    let out = output_at(push, dir.as_ref(), image, tags, context_name)?;
    Ok((out, scratch))
}

type Scratch = Option<std::sync::Arc<tempfile::TempDir>>;

/// The image named by an `--output type=registry,name=…` (when neither
/// --image nor --registry names one).
fn output_image(outputs: &output::Outputs) -> Result<Option<ImageRef>> {
    let Some(first) = outputs.push_names.first() else {
        return Ok(None);
    };
    let bad = |e: String| {
        Error::input(
            format!("--output name=`{first}`: {e}"),
            "pass name=registry.example/team/app[:tag]",
        )
    };
    let img = ImageRef::parse(first).map_err(bad)?;
    for n in &outputs.push_names[1..] {
        let other = ImageRef::parse(n).map_err(bad)?;
        if other.repository != img.repository {
            return Err(Error::input(
                format!(
                    "--output name= names two repositories ({} and {})",
                    img.repository, other.repository
                ),
                "name one repository in name= and give the other tags with --tag",
            ));
        }
    }
    Ok(Some(img))
}

fn output_at(
    push: bool,
    layout_dir: Option<&PathBuf>,
    image: Option<&ImageRef>,
    tags: &[String],
    context_name: &str,
) -> Result<Output> {
    if let (true, Some(dir)) = (push, layout_dir) {
        return Err(Error::input(
            format!(
                "--output {} writes an OCI layout, but this build pushes to a registry",
                dir.display()
            ),
            "drop --output to push, or drop --push/--registry to write the layout",
        ));
    }
    Ok(match (image, push) {
        (Some(img), true) => Output::Registry {
            repository: img.repository.clone(),
            tags: tags.to_vec(),
        },
        (None, true) => {
            return Err(Error::input(
                "--push needs an image name",
                "pass --image registry.example/team/app or --registry HOST",
            ))
        }
        (img, false) => {
            let dir = layout_dir
                .cloned()
                .unwrap_or_else(|| PathBuf::from("mbx-out"));
            if dir.exists() && !dir.is_dir() {
                return Err(Error::input(
                    format!("output `{}` exists and is not a directory", dir.display()),
                    "pass --output DIR naming a new or empty directory (or an earlier mbx output)",
                ));
            }
            let foreign = foreign_entries(&dir);
            if !foreign.is_empty() {
                let what = if dir.join("oci-layout").exists() {
                    "an OCI layout that also holds"
                } else {
                    "a non-empty directory that is not an OCI layout; it holds"
                };
                return Err(Error::input(
                    format!(
                        "output `{}` is {what} {}",
                        dir.display(),
                        foreign.join(", ")
                    ),
                    "pass --output DIR naming a new or empty directory; mbx replaces only its own output (oci-layout, index.json, blobs/)",
                ));
            }
            let name = img
                .as_ref()
                .map(|i| i.repository.clone())
                .unwrap_or_else(|| context_name.to_string());
            Output::Layout {
                dir,
                ref_name: format!("{name}:{}", tags[0]),
            }
        }
    })
}

/// The cache backend and its per-platform scope prefix.
fn cache(
    args: &BuildArgs,
    image: Option<&ImageRef>,
    context_name: String,
    output: &Output,
    local: bool,
) -> Result<Cache> {
    let prefix = match &args.cache_scope_prefix {
        Some(p) => sanitize_name(p),
        None => image
            .as_ref()
            .map(|i| sanitize_name(i.short_name()))
            .unwrap_or(context_name),
    };
    let kind = args.cache.unwrap_or(if local {
        CacheKind::Local
    } else {
        CacheKind::Gha
    });
    Ok(match kind {
        CacheKind::None => Cache::None,
        CacheKind::Local => Cache::Local {
            dir: local_cache_dir(args.cache_dir.clone().unwrap_or_else(default_cache_dir))?,
            prefix,
        },
        CacheKind::Gha => {
            let has = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
            if !has("ACTIONS_RUNTIME_TOKEN")
                || !(has("ACTIONS_CACHE_URL") || has("ACTIONS_RESULTS_URL"))
            {
                return Err(Error::input(
                    "the gha cache needs ACTIONS_RUNTIME_TOKEN and ACTIONS_CACHE_URL or ACTIONS_RESULTS_URL, which only GitHub Actions sets",
                    "run inside GitHub Actions (the mbx action hands these over), or pass --local or --cache local|registry|none",
                ));
            }
            Cache::Gha { prefix }
        }
        CacheKind::Registry => match output {
            Output::Registry { repository, .. } => Cache::Registry {
                repository: repository.clone(),
            },
            Output::Layout { .. } => {
                return Err(Error::input(
                    "--cache registry needs a registry to push to",
                    "pass --registry HOST or --image REF --push, or use --cache local",
                ))
            }
        },
    })
}

/// `--max-parallel`, `KEY=VALUE` build args and labels, and the annotations
/// split into the platforms' and the merged index's.
fn check_kv_args(args: &BuildArgs) -> Result<(Vec<String>, Vec<String>)> {
    if args.max_parallel == Some(0) {
        return Err(Error::input(
            "--max-parallel must be at least 1",
            "pass --max-parallel N with N ≥ 1",
        ));
    }
    for a in args.build_args.iter().chain(&args.labels) {
        if !a.contains('=') || a.starts_with('=') {
            return Err(Error::input(
                format!("`{a}` is not KEY=VALUE"),
                "pass --build-arg / --label as KEY=VALUE",
            ));
        }
    }
    let mut annotations = Vec::new();
    let mut index_annotations = Vec::new();
    for a in &args.annotations {
        // The merged index's own and its descriptors' (imagetools create's
        // two types); the rest go on each platform's build.
        let (kv, index) = match a.strip_prefix("index:") {
            Some(kv) => (kv, true),
            None => match a.strip_prefix("manifest-descriptor:") {
                Some(kv) => (kv, true),
                None => (a.as_str(), false),
            },
        };
        if !kv.contains('=') || kv.starts_with('=') {
            return Err(Error::input(
                format!("annotation `{a}` is not KEY=VALUE"),
                "pass --annotation KEY=VALUE (or index:KEY=VALUE for the merged index)",
            ));
        }
        if index {
            index_annotations.push(a.clone());
        } else {
            annotations.push(a.clone());
        }
    }
    Ok((annotations, index_annotations))
}

/// Secrets as buildx `--secret` specs. Only file paths and variable names
/// travel on the command line; a value never does.
fn secrets(args: &BuildArgs) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in &args.secrets {
        let fields: Vec<(&str, &str)> = s.split(',').filter_map(|f| f.split_once('=')).collect();
        let has = |k: &str| fields.iter().any(|(a, _)| *a == k);
        if !has("id") || !(has("src") || has("source") || has("env")) {
            return Err(Error::input(
                format!(
                    "secret `{}` is not in buildx syntax (its value is not shown)",
                    s.split([',', '=']).next().unwrap_or("")
                ),
                "pass --secret id=KEY,src=FILE or id=KEY,env=VAR; or --secret-file KEY=PATH / --secret-env KEY=VAR",
            ));
        }
        for (k, path) in &fields {
            if (*k == "src" || *k == "source") && !Path::new(path).is_file() {
                return Err(Error::input(
                    format!("secret file `{path}` does not exist"),
                    "pass --secret id=KEY,src=FILE naming an existing file",
                ));
            }
        }
        out.push(s.clone());
    }
    for f in &args.secret_files {
        let (k, path) = f
            .split_once('=')
            .filter(|(k, p)| !k.is_empty() && !p.is_empty())
            .ok_or_else(|| {
                Error::input(
                    "a --secret-file is not KEY=PATH",
                    "pass --secret-file KEY=PATH, e.g. --secret-file npmrc=./.npmrc",
                )
            })?;
        if !Path::new(path).is_file() {
            return Err(Error::input(
                format!("secret file for `{k}` does not exist: {path}"),
                "pass --secret-file KEY=PATH naming an existing file",
            ));
        }
        out.push(format!("id={k},src={path}"));
    }
    for e in &args.secret_envs {
        let (k, var) = e
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| {
                Error::input(
                    "a --secret-env is not KEY=VAR",
                    "pass --secret-env KEY=VAR, e.g. --secret-env token=GIT_AUTH_TOKEN",
                )
            })?;
        if std::env::var_os(var).is_none() {
            return Err(Error::input(
                format!("secret `{k}` reads the environment variable {var}, which is not set"),
                format!("set {var} in the step's environment or drop --secret-env {k}={var}"),
            ));
        }
        out.push(format!("id={k},env={var}"));
    }
    Ok(out)
}

/// The local cache's directory, made now: a file in its place or a place
/// mbx cannot write fails here (exit 2), not in buildx after the build.
fn local_cache_dir(dir: PathBuf) -> Result<PathBuf> {
    let bad = |why: String| {
        Error::input(
            format!("--cache-dir {}: {why}", dir.display()),
            "pass --cache-dir DIR naming a directory mbx can create and write",
        )
    };
    if dir.exists() && !dir.is_dir() {
        return Err(bad("exists and is not a directory".into()));
    }
    std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
    let probe = dir.join(format!(".mbx-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| bad(format!("not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir)
}

fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| Path::new(".mbx-cache").to_path_buf())
        .join("mbx")
}

/// `--check-binaries`, `--timeout`, credentials… → what verify checks and how
/// it reaches the registry. Reads the password from stdin with --password-stdin.
pub fn verify(
    flags: &crate::cli::VerifyFlags,
    exact: bool,
) -> Result<(Checks, crate::oci::Options)> {
    if flags.timeout < std::time::Duration::from_secs(1) {
        return Err(Error::input(
            "--timeout must be at least 1 second",
            "pass --timeout SECONDS or a duration, e.g. --timeout 60 or --timeout 90s",
        ));
    }
    let password = password(flags.username.as_deref(), flags.password_stdin)?;
    if flags.max_layer_bytes == 0 {
        return Err(Error::input(
            "--max-layer-bytes 0 would refuse every layer",
            "pass --max-layer-bytes with a positive number of bytes (default 2 GiB)",
        ));
    }
    Ok((
        Checks {
            exact,
            binaries: flags.check_binaries,
            max_layer_bytes: flags.max_layer_bytes,
            skip: false,
        },
        crate::oci::Options {
            insecure: flags.insecure_registries.clone(),
            username: flags.username.clone(),
            password,
            login_host: None,
            timeout: flags.timeout,
        },
    ))
}

/// `mbx build`'s `--username/--password-stdin` → how the push reaches the
/// registry (the password read from stdin).
pub fn push_login(username: Option<&str>, password_stdin: bool) -> Result<crate::oci::Options> {
    Ok(crate::oci::Options {
        password: password(username, password_stdin)?,
        username: username.map(str::to_string),
        ..Default::default()
    })
}

/// The password of `--password-stdin` (read from stdin), which goes with `--username`.
fn password(username: Option<&str>, password_stdin: bool) -> Result<Option<String>> {
    if password_stdin != username.is_some() {
        return Err(Error::input(
            "--username and --password-stdin go together",
            "pass both, e.g. `echo \"$TOKEN\" | mbx verify REF --username USER --password-stdin`",
        ));
    }
    if !password_stdin {
        return Ok(None);
    }
    // A token is at most a few KiB: a longer stdin is not one (never read whole).
    const MAX_PASSWORD_BYTES: u64 = 64 << 10;
    let mut s = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::io::stdin(), MAX_PASSWORD_BYTES + 1),
        &mut s,
    )
    .map_err(|e| {
        Error::input(
            format!("cannot read the password from stdin: {e}"),
            "pipe the password or token into mbx",
        )
    })?;
    if s.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(Error::input(
            format!("--password-stdin read more than {MAX_PASSWORD_BYTES} bytes: not a password"),
            "pipe only the password or token into mbx (e.g. `echo \"$TOKEN\" | mbx … --password-stdin`)",
        ));
    }
    let s = s.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err(Error::input(
            "--password-stdin read an empty password",
            "pipe the password or token into mbx, e.g. `echo \"$TOKEN\" | mbx …`",
        ));
    }
    Ok(Some(s))
}

/// What to check beyond the index and the configs.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Fail when the index holds platforms that were not required.
    pub exact: bool,
    /// Read the layers and check the ELF machine of every binary.
    pub binaries: bool,
    /// Largest layer (compressed) read for the binary check.
    pub max_layer_bytes: u64,
    /// `mbx ci --no-verify`: do not read the result back at all.
    pub skip: bool,
}

/// The default binfmt installer: tonistiigi/binfmt (QEMU 10.2.3), pinned by digest.
pub const DEFAULT_QEMU_IMAGE: &str = "docker.io/tonistiigi/binfmt:qemu-v10.2.3@sha256:400a4873b838d1b89194d982c45e5fb3cda4593fbfd7e08a02e76b03b21166f0";

/// How missing QEMU handlers are installed.
#[derive(Debug, Clone, PartialEq)]
pub enum QemuSource {
    /// A privileged installer container run through the Engine API.
    Image(String),
    /// The host's qemu-user-static, registered by writing binfmt_misc.
    Host,
}

#[derive(Debug, Clone)]
pub struct QemuPlan {
    pub source: QemuSource,
    pub reset: bool,
}

impl QemuPlan {
    pub fn from_args(args: &crate::cli::QemuArgs, config: &Config) -> QemuPlan {
        let source = match args.qemu_from {
            crate::cli::QemuFrom::Host => QemuSource::Host,
            crate::cli::QemuFrom::Image => QemuSource::Image(
                args.qemu_image
                    .clone()
                    .or_else(|| config.qemu.image.clone())
                    .unwrap_or_else(|| DEFAULT_QEMU_IMAGE.to_string()),
            ),
        };
        QemuPlan {
            source,
            reset: args.reset_qemu,
        }
    }
}

impl Default for QemuPlan {
    fn default() -> Self {
        QemuPlan {
            source: QemuSource::Image(DEFAULT_QEMU_IMAGE.into()),
            reset: false,
        }
    }
}

/// How to read a record: which platform counts as native, when emulation
/// deserves a warning.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Override of the native platform (default: the record's, i.e. the runner's arch).
    pub native: Option<Platform>,
    /// Warn when emulation cost exceeds this share (percent) of the step time.
    pub emulation_warn_percent: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            native: None,
            emulation_warn_percent: 50.0,
        }
    }
}

impl ReportOptions {
    pub fn from_flags(f: &crate::cli::ReportFlags) -> Result<ReportOptions> {
        let native = match &f.native_platform {
            Some(s) => Some(s.parse::<Platform>().map_err(|e| {
                Error::input(
                    e.to_string(),
                    "pass --native-platform os/arch, e.g. linux/arm64",
                )
            })?),
            None => None,
        };
        if !(0.0..=100.0).contains(&f.emulation_warn_percent) {
            return Err(Error::input(
                format!(
                    "--emulation-warn-percent {} is not a percentage",
                    f.emulation_warn_percent
                ),
                "pass a number from 0 to 100 (100 never warns)",
            ));
        }
        Ok(ReportOptions {
            native,
            emulation_warn_percent: f.emulation_warn_percent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs() {
        let r = ImageRef::parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.repository, "127.0.0.1:5000/team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.short_name(), "app");
        let r = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!(
            (r.registry().as_str(), r.tag.as_deref()),
            ("localhost:5000", None)
        );
        assert_eq!(ImageRef::parse("acme/app").unwrap().registry(), "docker.io");
        let d = format!("ghcr.io/a/b@sha256:{}", "ab".repeat(32));
        assert!(ImageRef::parse(&d).unwrap().digest.is_some());
        assert!(ImageRef::parse("ghcr.io/A/b").is_err());
        assert!(ImageRef::parse("ghcr.io/a/b:").is_err());
        assert!(ImageRef::parse("ghcr.io/a/b@sha256:12").is_err());
        let r = ImageRef::parse(&format!("app:v1@sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("app", Some("v1"))
        );
        let e = ImageRef::parse("127.0.0.1:5000").unwrap_err();
        assert!(
            e.contains("registry address"),
            "never Docker Hub's `127.0.0.1`: {e}"
        );
    }

    #[test]
    fn tags_are_tags_or_full_references_grouped_by_repository() {
        let given = vec![
            "v1".to_string(),
            "127.0.0.1:5000/a/app:1.2.3,127.0.0.1:5001/a/app:1.2.3".into(),
            "127.0.0.1:5000/a/app\n127.0.0.1:5001/a/app:latest".into(),
            "acme/app:x".into(),
            "docker.io/acme/app:y".into(),
        ];
        let t = tag_args(&given).unwrap();
        assert_eq!(t[0], TagArg::Tag("v1".into()));
        assert_eq!(
            t[3],
            TagArg::Ref {
                repository: "127.0.0.1:5000/a/app".into(),
                tag: "latest".into()
            }
        );
        let (own, more) = group_tags(&t, Some("127.0.0.1:5000/a/app"));
        assert_eq!(own, ["v1", "1.2.3", "latest"]);
        assert_eq!(
            more,
            [
                (
                    "127.0.0.1:5001/a/app".to_string(),
                    vec!["1.2.3".to_string(), "latest".into()]
                ),
                ("acme/app".to_string(), vec!["x".to_string(), "y".into()]),
            ]
        );
        assert!(tag_args(&[format!("a/b@sha256:{}", "ab".repeat(32))]).is_err());
        assert!(tag_args(&["ghcr.io/A/b:1".into()]).is_err());
    }

    fn build_args_of(argv: &[&str]) -> BuildArgs {
        use clap::Parser;
        let mut all = vec!["mbx", "ci"];
        all.extend(argv);
        match crate::cli::Cli::try_parse_from(all).unwrap().command {
            crate::cli::Command::Ci(a) => a.build,
            _ => unreachable!(),
        }
    }

    #[test]
    fn buildx_flags_pass_through_with_build_push_action_precedence() {
        let a = build_args_of(&[
            "--ssh",
            "default",
            "--add-host",
            "h:10.0.0.1",
            "--allow",
            "network.host",
            "--build-context",
            "x=./x",
            "--ulimit",
            "nofile=1024:1024",
            "--no-cache-filter",
            "a,b",
            "--network",
            "none",
            "--shm-size",
            "2g",
            "--cgroup-parent",
            "p",
            "--attest",
            "type=sbom",
            "--attest",
            "type=provenance,mode=max",
            "--provenance",
            "false",
            "--call",
            "build",
        ]);
        let f = buildx_flags(&a).unwrap();
        assert_eq!(
            f,
            [
                "--build-context=x=./x",
                "--ssh=default",
                "--add-host=h:10.0.0.1",
                "--allow=network.host",
                "--ulimit=nofile=1024:1024",
                "--no-cache-filter=a",
                "--no-cache-filter=b",
                "--attest=type=sbom",
                "--network=none",
                "--shm-size=2g",
                "--cgroup-parent=p",
            ],
            "--provenance outranks the provenance --attest"
        );
        let e = buildx_flags(&build_args_of(&["--call", "check"])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--call check"), "{e}");
        assert!(buildx_flags(&build_args_of(&["--network="])).is_err());
    }

    #[test]
    fn scope_names() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(Cache::scope("app", &p), "app-linux-arm-v7");
    }

    #[test]
    fn sanitize() {
        assert_eq!(sanitize_name("Hello World!"), "hello-world");
        assert_eq!(sanitize_name("..."), "image");
    }

    #[test]
    fn git_contexts_are_named_and_the_missing_checkout_is_said() {
        for c in [
            "{{defaultContext}}",
            "{{defaultContext}}:app",
            "https://127.0.0.1:9/acme/app.git#main",
            "git@127.0.0.1:acme/app.git",
            "http://127.0.0.1:9/acme/app.git",
        ] {
            let e = git_context(Path::new(c)).expect(c);
            assert_eq!(e.exit_code(), 2);
            assert!(e.help().unwrap().contains("actions/checkout"), "{c}");
        }
        assert!(git_context(Path::new(".")).is_none());
        assert!(git_context(Path::new("./app")).is_none());
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().to_str().unwrap().to_string();
        let env = move |k: &str| match k {
            "GITHUB_ACTIONS" => Some("true".to_string()),
            "GITHUB_WORKSPACE" => Some(ws.clone()),
            _ => None,
        };
        assert!(no_checkout(d.path(), &env));
        std::fs::create_dir(d.path().join(".git")).unwrap();
        assert!(!no_checkout(d.path(), &env));
        // Outside Actions: no checkout to speak of.
        std::fs::remove_dir(d.path().join(".git")).unwrap();
        assert!(!no_checkout(d.path(), &|_: &str| None));
    }
}
