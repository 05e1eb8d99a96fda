//! Preflight: what would make the build fail later, said now and plainly.
//! buildx too old; the docker driver asked for what it cannot do; the GitHub
//! cache service v2 with a buildx or BuildKit that only speaks v1.

use semver::Version;

use crate::error::{Error, Result};
use crate::plan::{Cache, Output, Plan};

/// The oldest buildx mbx drives (dial-stdio, rawjson progress, --buildkitd-config).
pub const MIN_BUILDX: Version = Version::new(0, 13, 0);
/// GitHub's cache service v2 needs these (buildx 0.21, BuildKit 0.20).
pub const GHA_V2_BUILDX: Version = Version::new(0, 21, 0);
pub const GHA_V2_BUILDKIT: Version = Version::new(0, 20, 0);

/// A tool's version, leniently: `v0.13.1`, `0.29.1`, `0.13.1+ds1`,
/// `v0.20.0-rc1`, `0.12.1-0ubuntu1~22.04.1`, `v0.13` → the release it names.
/// Pre-release and build tags are dropped: a release candidate or a
/// distribution's rebuild counts as its release.
pub fn parse_version(v: &str) -> Option<Version> {
    let v = v.trim();
    let v = v.strip_prefix('v').unwrap_or(v);
    let mut version = Version::parse(v).ok().or_else(|| {
        // Not semver as written (`0.13`, a distribution suffix with `~`):
        // its leading numbers, padded to three.
        let end = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(v.len());
        let mut parts: Vec<&str> = v[..end].trim_end_matches('.').split('.').collect();
        if parts.len() > 3 {
            parts.truncate(3);
        }
        parts.resize(3, "0");
        Version::parse(&parts.join(".")).ok()
    })?;
    version.pre = semver::Prerelease::EMPTY;
    version.build = semver::BuildMetadata::EMPTY;
    Some(version)
}

/// True when the run will talk to GitHub's cache service v2.
pub fn gha_v2(plan: &Plan, env: &dyn Fn(&str) -> Option<String>) -> bool {
    let gha = matches!(
        plan.build.as_ref().map(|b| &b.cache),
        Some(Cache::Gha { .. })
    );
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    gha && (set("ACTIONS_RESULTS_URL") || set("ACTIONS_CACHE_SERVICE_V2"))
}

pub fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// buildx present and recent enough; for gha cache v2, ≥ 0.21.
pub fn buildx(version: &str, plan: &Plan, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    let Some(v) = parse_version(version) else {
        return Err(Error::env(
            format!("cannot read the buildx version from `{version}`"),
            "install the buildx plugin ≥ 0.13 (Debian: docker-buildx; elsewhere docker/setup-buildx-action)",
        ));
    };
    if v < MIN_BUILDX {
        return Err(Error::env(
            format!(
                "buildx {} is too old: mbx needs ≥ {}",
                v, MIN_BUILDX
            ),
            "upgrade the buildx plugin (Debian trixie: docker-buildx; GitHub Actions: docker/setup-buildx-action)",
        ));
    }
    if gha_v2(plan, env) && v < GHA_V2_BUILDX {
        return Err(Error::env(
            format!(
                "the gha cache talks to GitHub's cache service v2 here (ACTIONS_RESULTS_URL is set), which needs buildx ≥ {}; this buildx is {}",
                GHA_V2_BUILDX, v
            ),
            "upgrade buildx (docker/setup-buildx-action with version: latest), or pass --cache registry / --cache local",
        ));
    }
    Ok(())
}

/// gha cache v2 needs BuildKit ≥ 0.20 in the builder.
pub fn buildkit(
    version: Option<&str>,
    plan: &Plan,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    if !gha_v2(plan, env) {
        return Ok(());
    }
    match version.and_then(parse_version) {
        Some(v) if v >= GHA_V2_BUILDKIT => Ok(()),
        other => Err(Error::env(
            format!(
                "the gha cache talks to GitHub's cache service v2 here (ACTIONS_RESULTS_URL is set), which needs BuildKit ≥ {}; builder `{}` runs {}",
                GHA_V2_BUILDKIT,
                plan.builder.name,
                other.map(|v| v.to_string()).unwrap_or_else(|| format!("an unknown version ({})", version.unwrap_or("?")))
            ),
            "recreate the builder with a newer BuildKit (--buildkit-image moby/buildkit:v0.20.0 or later, --recreate), or pass --cache registry / --cache local",
        )),
    }
}

/// The docker driver (BuildKit inside dockerd) cannot do what mbx's build
/// stage asks of it when the daemon keeps images in its classic store
/// (`containerd_store` false): no cache export, no OCI layout output. (It
/// never pushes by digest either, whatever the store: the build stage pushes
/// per-platform staging tags instead and says so. Each platform is built on
/// its own, so the docker driver's refusal of multi-platform builds does not
/// arise.)
pub fn docker_driver(plan: &Plan, containerd_store: bool) -> Result<()> {
    if plan.builder.driver != "docker" || containerd_store {
        return Ok(());
    }
    let Some(build) = &plan.build else {
        return Ok(());
    };
    let mut why = Vec::new();
    if !matches!(build.cache, Cache::None) {
        why.push("cache export: without the containerd image store the docker driver cannot export a build cache (buildx: \"Cache export is not supported for the docker driver\"); or pass --cache none".to_string());
    }
    if let Output::Layout { .. } = &build.output {
        why.push("OCI layout output: without the containerd image store the docker driver has no OCI exporter (buildx: \"OCI exporter is not supported for the docker driver\"); or push with --registry".into());
    }
    if why.is_empty() {
        return Ok(());
    }
    Err(Error::env(
        format!(
            "the docker driver (builder `{}`, daemon without the containerd image store) cannot do what this build needs:\n  {}",
            plan.builder.name,
            why.join("\n  ")
        ),
        "use --driver docker-container (mbx's default): a BuildKit container that exports caches, writes OCI layouts and pushes by digest; \
or enable the containerd image store in dockerd (\"features\": {\"containerd-snapshotter\": true})",
    ))
}

/// Before anything is built for a push: the registry takes the push
/// credentials (`--username/--password-stdin`, else the docker config's),
/// so a wrong password fails in a second, not after the build. With the
/// flags, the returned login hands them to buildx for the push until it is
/// dropped (the merge, in process, takes them from the registry options).
pub async fn push_credentials(
    repository: &str,
    opts: &crate::oci::Options,
) -> Result<Option<crate::docker::login::PushLogin>> {
    let flags = opts.username.is_some();
    let registry = crate::oci::Registry::new(&format!("{repository}:latest"), opts)?;
    let host = registry.host().to_string();
    match registry.check_push().await {
        Ok(()) => {}
        Err(Error::Verify { message, help })
            if message.starts_with("401") || message.starts_with("403") =>
        {
            let message = match registry.credentials_source() {
                s if s.starts_with("none") => {
                    format!("{host} refuses an anonymous push: {message}; nothing was built")
                }
                s => format!(
                    "{host} refuses the push credentials from {s}: {message}; nothing was built"
                ),
            };
            return Err(if flags {
                Error::input(message, help)
            } else {
                Error::env(message, help)
            });
        }
        Err(Error::Verify { message, help }) => return Err(Error::env(message, help)),
        Err(e) => return Err(e),
    }
    let (Some(user), Some(password)) = (&opts.username, &opts.password) else {
        return Ok(None);
    };
    crate::docker::login::PushLogin::new(&host, user, password)
        .map(Some)
        .map_err(|why| {
            Error::env(
                format!("cannot hand the push credentials to buildx: {why}"),
                "check TMPDIR is writable, or log in with `docker login` instead of --username/--password-stdin",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{BuildPlan, BuilderPlan};

    fn plan(driver: &str, output: Output, cache: Cache) -> Plan {
        Plan {
            platforms: vec![
                "linux/amd64".parse().unwrap(),
                "linux/arm64".parse().unwrap(),
            ],
            host: "linux/amd64".parse().unwrap(),
            builder: BuilderPlan {
                name: "b".into(),
                driver: driver.into(),
                ..Default::default()
            },
            build: Some(BuildPlan {
                context: ".".into(),
                dockerfile: "Dockerfile".into(),
                target: None,
                build_args: vec![],
                labels: vec![],
                output,
                cache,
                provenance: None,
                sbom: None,
                annotations: vec![],
                index_annotations: vec![],
                secrets: vec![],
                no_cache: false,
                pull: false,
                buildx_flags: vec![],
                more_repositories: vec![],
                notes: vec![],
                max_parallel: 2,
                json: None,
                redactions: Default::default(),
                exports: Default::default(),
                scratch: None,
            }),
            local: true,
        }
    }

    fn reg() -> Output {
        Output::Registry {
            repository: "127.0.0.1:5000/a".into(),
            tags: vec!["latest".into()],
        }
    }

    #[test]
    fn versions_parse() {
        let v = |s: &str| parse_version(s).map(|v| v.to_string());
        assert_eq!(v("v0.13.1").as_deref(), Some("0.13.1"));
        assert_eq!(v("0.13.1+ds1").as_deref(), Some("0.13.1"));
        assert_eq!(v("v0.13.1+ds1").as_deref(), Some("0.13.1"));
        assert_eq!(v("0.29.1").as_deref(), Some("0.29.1"));
        assert_eq!(v("v0.25.2").as_deref(), Some("0.25.2"));
        assert_eq!(v("v0.20.0-rc1").as_deref(), Some("0.20.0"));
        assert_eq!(v("v0.0.0+unknown").as_deref(), Some("0.0.0"));
        assert_eq!(v("0.12.1-0ubuntu1~22.04.1").as_deref(), Some("0.12.1"));
        assert_eq!(v("v0.13").as_deref(), Some("0.13.0"));
        assert_eq!(v(" v0.13.1 \n").as_deref(), Some("0.13.1"));
        assert_eq!(v("garbage"), None);
        assert_eq!(v(""), None);
        // Compared as releases: 0.9 < 0.13 (not as strings), an rc meets its release.
        assert!(parse_version("v0.9.1").unwrap() < MIN_BUILDX);
        assert!(parse_version("v0.20.0-rc1").unwrap() >= GHA_V2_BUILDKIT);
        assert!(parse_version("v0.21.0").unwrap() >= GHA_V2_BUILDX);
    }

    #[test]
    fn old_buildx_and_gha_v2() {
        let p = plan("docker-container", reg(), Cache::Gha { prefix: "a".into() });
        let none = |_: &str| None;
        assert!(buildx("v0.12.1", &p, &none)
            .unwrap_err()
            .to_string()
            .contains("too old"));
        assert!(buildx("v0.13.1", &p, &none).is_ok());
        let v2 = |k: &str| (k == "ACTIONS_RESULTS_URL").then(|| "https://results".to_string());
        let e = buildx("v0.13.1", &p, &v2).unwrap_err().to_string();
        assert!(e.contains("buildx ≥ 0.21.0") && e.contains("0.13.1"), "{e}");
        assert!(buildx("v0.21.0", &p, &v2).is_ok());
        let e = buildkit(Some("v0.13.2"), &p, &v2).unwrap_err().to_string();
        assert!(
            e.contains("BuildKit ≥ 0.20.0") && e.contains("0.13.2"),
            "{e}"
        );
        assert!(buildkit(Some("v0.20.1"), &p, &v2).is_ok());
        assert!(
            buildkit(Some("v0.13.2"), &p, &none).is_ok(),
            "v1 service: no requirement"
        );
        let local = plan("docker-container", reg(), Cache::None);
        assert!(
            buildkit(Some("v0.13.2"), &local, &v2).is_ok(),
            "no gha cache"
        );
    }

    #[test]
    fn docker_driver_limits() {
        let layout = Output::Layout {
            dir: "out".into(),
            ref_name: "latest".into(),
        };
        let cache = Cache::Local {
            dir: "c".into(),
            prefix: "a".into(),
        };
        // containerd store: nothing to refuse (push-by-digest is worked around).
        assert!(docker_driver(&plan("docker", reg(), cache.clone()), true).is_ok());
        assert!(docker_driver(&plan("docker", layout.clone(), cache.clone()), true).is_ok());
        // classic store: cache export and OCI layouts are refused.
        let e = docker_driver(&plan("docker", layout, cache.clone()), false).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("Cache export is not supported") && s.contains("OCI exporter"),
            "{s}"
        );
        assert!(e.help().unwrap().contains("--driver docker-container"));
        assert!(docker_driver(&plan("docker", reg(), Cache::None), false).is_ok());
        assert!(docker_driver(&plan("docker-container", reg(), cache), false).is_ok());
    }
}
