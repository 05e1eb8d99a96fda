//! Cache arguments: one scope per image × platform, `mode=max`, so platforms
//! never overwrite each other's cache.

use std::path::{Path, PathBuf};

use crate::plan::Cache;
use crate::platform::Platform;
use crate::run::{CacheCause, CacheDirection, CacheIssue, PlatformRecord};

/// The `--cache-from`/`--cache-to` arguments for one platform, and the scope
/// name for the record.
pub struct CacheArgs {
    pub args: Vec<String>,
    pub scope: Option<String>,
    /// Local cache: the fresh export directory to swap in after a good build.
    pub local_swap: Option<(PathBuf, PathBuf)>,
}

pub fn args(cache: &Cache, platform: &Platform) -> CacheArgs {
    match cache {
        Cache::None => CacheArgs {
            args: Vec::new(),
            scope: None,
            local_swap: None,
        },
        Cache::Local { dir, prefix } => {
            let scope = Cache::scope(prefix, platform);
            let current = dir.join(&scope);
            // BuildKit's local exporter only ever adds blobs; exporting to a
            // fresh directory and swapping it in keeps the cache from growing
            // without bound.
            let fresh = dir.join(format!("{scope}.new"));
            let mut args = Vec::new();
            if current.join("index.json").is_file() {
                args.push(format!("--cache-from=type=local,src={}", current.display()));
            }
            args.push(format!(
                "--cache-to=type=local,dest={},mode=max",
                fresh.display()
            ));
            CacheArgs {
                args,
                scope: Some(scope),
                local_swap: Some((fresh, current)),
            }
        }
        Cache::Gha { prefix } => {
            let scope = Cache::scope(prefix, platform);
            CacheArgs {
                args: with_github_api(gha_args(&scope, gha_v2_url().as_deref())),
                scope: Some(scope),
                local_swap: None,
            }
        }
        Cache::User { from, to } => {
            let from: Vec<String> = from.iter().map(|c| per_platform(c, platform)).collect();
            let to: Vec<String> = to.iter().map(|c| per_platform(c, platform)).collect();
            let scope = from.iter().chain(&to).find_map(|c| scope_of(c));
            let mut args: Vec<String> = from.iter().map(|c| format!("--cache-from={c}")).collect();
            args.extend(to.iter().map(|c| format!("--cache-to={c}")));
            CacheArgs {
                args: with_github_api(args),
                scope,
                local_swap: None,
            }
        }
        Cache::Registry { repository } => {
            let r = format!("{repository}:buildcache-{}", platform.slug());
            CacheArgs {
                args: vec![
                    format!("--cache-from=type=registry,ref={r}"),
                    format!("--cache-to=type=registry,ref={r},mode=max,ignore-error=true"),
                ],
                scope: Some(r),
                local_swap: None,
            }
        }
    }
}

/// The fields of a buildx cache spec (`type=gha,scope=app`); a spec without
/// `=` is buildx's shorthand for `type=registry,ref=SPEC`. A field in
/// double quotes (a value holding commas) is kept whole.
fn fields(spec: &str) -> Vec<(String, String)> {
    if !spec.contains('=') {
        return vec![
            ("type".into(), "registry".into()),
            ("ref".into(), spec.trim().into()),
        ];
    }
    let mut out = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    for c in spec.chars().chain(std::iter::once(',')) {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                let f = std::mem::take(&mut cur);
                let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
                if !k.trim().is_empty() {
                    out.push((k.trim().to_string(), v.to_string()));
                }
            }
            c => cur.push(c),
        }
    }
    out
}

fn join(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            if v.contains(',') {
                format!("\"{k}={v}\"")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A user's cache spec for one platform: the field naming where the cache
/// lives gets `-<os>-<arch>[-<variant>]`, so the platforms (separate builds)
/// never overwrite each other's cache — one shared scope is the most reported
/// multi-platform cache bug (docker/bake-action#329). gha `scope` (buildx's
/// default `buildkit`), registry `ref` (its tag, or a tag of its own), local
/// `src`/`dest`, s3/azblob `name` (default `buildkit`); a gha spec without a
/// service URL gets the one mbx's own cache uses. Other types unchanged.
pub fn per_platform(spec: &str, platform: &Platform) -> String {
    let slug = platform.slug();
    let mut f = fields(spec);
    let kind = f
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "registry".into());
    let suffix = |f: &mut Vec<(String, String)>, key: &str, default: Option<&str>| match f
        .iter_mut()
        .find(|(k, _)| k == key)
    {
        Some((_, v)) => *v = format!("{}-{slug}", v.trim_end_matches('/')),
        None => {
            if let Some(d) = default {
                f.push((key.into(), format!("{d}-{slug}")));
            }
        }
    };
    match kind.as_str() {
        "gha" => {
            suffix(&mut f, "scope", Some("buildkit"));
            let has = |k: &str| f.iter().any(|(n, _)| n == k);
            if let (false, false, Some(url)) = (has("url"), has("url_v2"), gha_v2_url()) {
                if !has("version") {
                    f.push(("version".into(), "2".into()));
                }
                f.push(("url_v2".into(), url.clone()));
                f.push(("url".into(), url));
            }
        }
        "registry" => {
            if let Some((_, r)) = f.iter_mut().find(|(k, _)| k == "ref") {
                if !r.contains('@') {
                    let last = r.rsplit('/').next().unwrap_or(r);
                    *r = if last.contains(':') {
                        format!("{r}-{slug}")
                    } else {
                        format!("{r}:{slug}")
                    };
                }
            }
        }
        "local" => {
            suffix(&mut f, "src", None);
            suffix(&mut f, "dest", None);
        }
        "s3" | "azblob" => suffix(&mut f, "name", Some("buildkit")),
        _ => return spec.to_string(),
    }
    join(&f)
}

/// Where a per-platform spec puts the cache, for the record (gha scope,
/// registry ref, local dir).
fn scope_of(spec: &str) -> Option<String> {
    fields(spec)
        .into_iter()
        .find(|(k, _)| ["scope", "ref", "dest", "src", "name"].contains(&k.as_str()))
        .map(|(_, v)| v)
}

/// The note saying the user's cache specs were made per platform.
pub fn user_note(from: &[String], to: &[String]) -> Option<String> {
    let example: Platform = "linux/arm64".parse().ok()?;
    let changed: Vec<String> = from
        .iter()
        .chain(to)
        .filter_map(|c| {
            let one = per_platform(c, &example);
            let (was, now) = (scope_of(c), scope_of(&one));
            (was != now).then(|| {
                format!(
                    "{} → {}",
                    was.unwrap_or_else(|| "(buildx's default)".into()),
                    now.unwrap_or_default()
                        .replace("linux-arm64", "<os>-<arch>")
                )
            })
        })
        .collect();
    if changed.is_empty() {
        return None;
    }
    let mut dedup = changed;
    dedup.dedup();
    Some(format!(
        "cache-from/cache-to made per platform, so the platforms' builds never overwrite each other's cache: {} (instead of mbx's own per-platform cache)",
        dedup.join(", ")
    ))
}

/// How long BuildKit's gha client keeps retrying a throttled (429) call
/// before the import or export gives up (BuildKit's `timeout`, default
/// 10 min per direction). It bounds only the wait on 429s, not a transfer:
/// its backoff (1 s doubling to 90 s, `Retry-After` ignored) retries about
/// six times in a minute. Measured with every call answered 429 (BuildKit
/// v0.25.2): one platform 124 s in all, two in parallel 136–196 s (the
/// export can wait twice), against 20 minutes with the default.
pub const GHA_TIMEOUT: &str = "60s";

/// `--cache-from`/`--cache-to` for one gha scope. `v2_url`: the cache
/// service v2 (`ACTIONS_RESULTS_URL`), named to BuildKit explicitly
/// (`version=2,url_v2=`): buildx < 0.21 reads no v2 variable, and buildx
/// ≥ 0.21 only with `ACTIONS_CACHE_SERVICE_V2`. `url=` too, because buildx
/// < 0.21 silently drops a gha cache without one when `ACTIONS_CACHE_URL`
/// is unset (BuildKit ≥ 0.20 uses `url_v2` with `version=2`). The token
/// stays out of the command line: every buildx reads
/// `ACTIONS_RUNTIME_TOKEN` itself.
pub fn gha_args(scope: &str, v2_url: Option<&str>) -> Vec<String> {
    let service = match v2_url {
        Some(url) => format!(",version=2,url_v2={url},url={url}"),
        None => String::new(),
    };
    vec![
        format!("--cache-from=type=gha,scope={scope},timeout={GHA_TIMEOUT}{service}"),
        format!(
            "--cache-to=type=gha,scope={scope},mode=max,ignore-error=true,timeout={GHA_TIMEOUT}{service}"
        ),
    ]
}

/// On github.com, the gha export also gets `ghtoken` and `repository`
/// (Docker's documented mitigation for the cache API's throttling, which
/// build-push-action applies from its `github-token`): BuildKit then checks
/// cache keys through GitHub's REST API instead of the cache service.
/// The token reaches buildx's command line, as with build-push-action; mbx
/// redacts it wherever it shows a command.
pub fn with_github_api(mut args: Vec<String>) -> Vec<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(attrs) = github_api_attrs(&var) {
        for a in args.iter_mut().filter(|a| a.starts_with("--cache-to=")) {
            a.push_str(&attrs);
        }
    }
    args
}

/// `,ghtoken=…,repository=…` from `GITHUB_TOKEN` and `GITHUB_REPOSITORY`,
/// only against github.com's API (BuildKit knows no other) and never under
/// act, which is not GitHub (a test must not reach api.github.com).
fn github_api_attrs(var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let token = var("GITHUB_TOKEN")?;
    let repository = var("GITHUB_REPOSITORY")?;
    let github_com =
        var("GITHUB_API_URL").is_none_or(|u| u.trim_end_matches('/') == "https://api.github.com");
    let clean = |v: &str| !v.contains([',', '"', '\n', '\r']);
    (github_com && var("ACT").is_none() && clean(&token) && clean(&repository))
        .then(|| format!(",ghtoken={token},repository={repository}"))
}

/// `ACTIONS_RESULTS_URL` when the run talks to the cache service v2: the
/// only cache URL there is, or beside `ACTIONS_CACHE_URL` with
/// `ACTIONS_CACHE_SERVICE_V2` true (the rule `gha_cache::contents` reads
/// index contents by).
pub fn gha_v2_url() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    v2_url_from(&var)
}

fn v2_url_from(var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let url = var("ACTIONS_RESULTS_URL")?;
    let wanted = var("ACTIONS_CACHE_SERVICE_V2").is_some_and(|v| go_true(&v));
    (wanted || var("ACTIONS_CACHE_URL").is_none()).then_some(url)
}

/// Go's `strconv.ParseBool` true values, which buildx applies to
/// `ACTIONS_CACHE_SERVICE_V2`.
fn go_true(s: &str) -> bool {
    matches!(s, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// After a good build: the fresh local export replaces the old one.
pub fn swap_in(fresh: &Path, current: &Path) -> std::io::Result<()> {
    if !fresh.join("index.json").is_file() {
        return Ok(());
    }
    let old = current.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    if current.exists() {
        std::fs::rename(current, &old)?;
    }
    std::fs::rename(fresh, current)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// One line for the report: which platforms lost which cache, why, and the fix.
pub fn failure_note(platforms: &[PlatformRecord]) -> Option<String> {
    let hit: Vec<(&PlatformRecord, &CacheIssue)> = platforms
        .iter()
        .filter_map(|p| Some((p, p.cache_error.as_ref()?)))
        .collect();
    let (_, first) = hit.first()?;
    let names: Vec<String> = hit.iter().map(|(p, _)| p.platform.to_string()).collect();
    let what: Vec<&str> = first
        .failed
        .iter()
        .map(|d| match d {
            CacheDirection::Import => "import",
            CacheDirection::Export => "export",
        })
        .collect();
    let (why, fix) = match first.cause {
        CacheCause::Throttled => (
            "the cache service throttled the requests (429)",
            "GitHub rate-limits the cache per repository: run again later, or let fewer jobs write the cache at once.",
        ),
        CacheCause::Unavailable => (
            "the cache service failed (5xx)",
            "Nothing to fix on your side when GitHub's service is down: run again later.",
        ),
        CacheCause::Full => (
            "the repository's cache is full",
            "Free space with `mbx cache prune --apply` (or delete caches in the repository's Actions settings).",
        ),
        CacheCause::Other => ("", "The build neither used nor left a cache."),
    };
    let why = if why.is_empty() {
        first.detail.clone()
    } else {
        format!("{why}: {}", first.detail)
    };
    Some(format!(
        "{} cache {} failed for {} ({why}); the build went on without it. {fix}",
        first.backend,
        what.join(" and "),
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn github_api_attrs_only_on_github_com_and_never_under_act() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let on_github = env(&[("GITHUB_TOKEN", "ghs_x"), ("GITHUB_REPOSITORY", "o/r")]);
        assert_eq!(
            github_api_attrs(&on_github).as_deref(),
            Some(",ghtoken=ghs_x,repository=o/r")
        );
        let api = env(&[
            ("GITHUB_TOKEN", "ghs_x"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_API_URL", "https://api.github.com/"),
        ]);
        assert!(github_api_attrs(&api).is_some());
        for pairs in [
            &[("GITHUB_REPOSITORY", "o/r")][..],
            &[("GITHUB_TOKEN", "ghs_x")][..],
            &[
                ("GITHUB_TOKEN", "ghs_x"),
                ("GITHUB_REPOSITORY", "o/r"),
                ("ACT", "true"),
            ][..],
            &[
                ("GITHUB_TOKEN", "ghs_x"),
                ("GITHUB_REPOSITORY", "o/r"),
                ("GITHUB_API_URL", "https://ghes.example/api/v3"),
            ][..],
            &[("GITHUB_TOKEN", "a,b"), ("GITHUB_REPOSITORY", "o/r")][..],
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(pairs.to_vec().into_boxed_slice());
            assert_eq!(github_api_attrs(&env(pairs)), None, "{pairs:?}");
        }
    }

    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn gha_scopes_are_per_platform() {
        let c = Cache::Gha {
            prefix: "app".into(),
        };
        let a = args(&c, &p("linux/arm64"));
        assert_eq!(a.scope.as_deref(), Some("app-linux-arm64"));
        let b = args(&c, &p("linux/arm/v7"));
        assert_eq!(b.scope.as_deref(), Some("app-linux-arm-v7"));
        let g = gha_args("app-linux-arm64", None);
        assert_eq!(
            g,
            [
                "--cache-from=type=gha,scope=app-linux-arm64,timeout=60s",
                "--cache-to=type=gha,scope=app-linux-arm64,mode=max,ignore-error=true,timeout=60s"
            ]
        );
    }

    #[test]
    fn gha_v2_names_the_service_but_never_the_token() {
        let g = gha_args("app-linux-amd64", Some("https://results.example/"));
        for a in &g {
            assert!(
                a.ends_with(",timeout=60s,version=2,url_v2=https://results.example/,url=https://results.example/"),
                "{a}"
            );
            assert!(!a.contains("token="), "{a}");
        }
        assert!(go_true("True") && go_true("1") && !go_true("yes") && !go_true("false"));
        let env = |vars: &[(&str, &str)]| {
            v2_url_from(&|k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        let r = "ACTIONS_RESULTS_URL";
        let (c, f) = ("ACTIONS_CACHE_URL", "ACTIONS_CACHE_SERVICE_V2");
        assert_eq!(env(&[(r, "u2")]).as_deref(), Some("u2"));
        assert_eq!(env(&[(r, "u2"), (c, "u1")]), None, "v1 unless asked");
        assert_eq!(
            env(&[(r, "u2"), (c, "u1"), (f, "true")]).as_deref(),
            Some("u2")
        );
        assert_eq!(env(&[(c, "u1"), (f, "true")]), None);
    }

    #[test]
    fn local_imports_only_an_existing_cache_and_swaps() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::Local {
            dir: d.path().to_path_buf(),
            prefix: "app".into(),
        };
        let a = args(&c, &p("linux/amd64"));
        assert_eq!(
            a.args.len(),
            1,
            "no cache-from before the first export: {:?}",
            a.args
        );
        let (fresh, current) = a.local_swap.unwrap();
        std::fs::create_dir_all(&fresh).unwrap();
        std::fs::write(fresh.join("index.json"), "{}").unwrap();
        swap_in(&fresh, &current).unwrap();
        assert!(current.join("index.json").is_file() && !fresh.exists());
        let again = args(&c, &p("linux/amd64"));
        assert!(
            again.args[0].starts_with("--cache-from=type=local,src="),
            "{:?}",
            again.args
        );
    }

    #[test]
    fn one_note_names_the_platforms_the_cause_and_the_fix() {
        let mut a: PlatformRecord = serde_json::from_value(serde_json::json!({
            "platform": "linux/amd64", "emulated": false, "digest": null, "build_digest": null,
            "wall_seconds": 1.0, "executed_seconds": 1.0, "steps_total": 1, "steps_cached": 0
        }))
        .unwrap();
        assert!(failure_note(std::slice::from_ref(&a)).is_none());
        a.cache_error = Some(CacheIssue {
            backend: "gha".into(),
            failed: vec![CacheDirection::Import, CacheDirection::Export],
            cause: CacheCause::Full,
            detail: "error writing layer blob: failed to reserve cache".into(),
        });
        let mut b = a.clone();
        b.platform = p("linux/arm64");
        let n = failure_note(&[a, b]).unwrap();
        assert!(
            n.starts_with("gha cache import and export failed for linux/amd64, linux/arm64 (the repository's cache is full: error writing layer blob: failed to reserve cache)"),
            "{n}"
        );
        assert!(n.contains("mbx cache prune"), "{n}");
    }

    #[test]
    fn user_caches_are_suffixed_per_platform() {
        let arm = p("linux/arm64");
        let cases = [
            ("type=gha,scope=app", "type=gha,scope=app-linux-arm64"),
            (
                "type=gha,scope=app,mode=max",
                "type=gha,scope=app-linux-arm64,mode=max",
            ),
            ("type=gha", "type=gha,scope=buildkit-linux-arm64"),
            (
                "user/app:cache",
                "type=registry,ref=user/app:cache-linux-arm64",
            ),
            (
                "type=registry,ref=127.0.0.1:5000/app:buildcache,mode=max",
                "type=registry,ref=127.0.0.1:5000/app:buildcache-linux-arm64,mode=max",
            ),
            (
                "type=registry,ref=127.0.0.1:5000/app",
                "type=registry,ref=127.0.0.1:5000/app:linux-arm64",
            ),
            (
                "type=local,dest=/tmp/c/",
                "type=local,dest=/tmp/c-linux-arm64",
            ),
            (
                "type=s3,region=x,bucket=b",
                "type=s3,region=x,bucket=b,name=buildkit-linux-arm64",
            ),
            ("type=inline", "type=inline"),
            (
                "type=registry,\"ref=a:b\",x=1",
                "type=registry,ref=a:b-linux-arm64,x=1",
            ),
        ];
        for (given, want) in cases {
            if given.contains("gha") && gha_v2_url().is_some() {
                continue;
            }
            assert_eq!(per_platform(given, &arm), want, "{given}");
        }
        let c = Cache::User {
            from: vec!["type=gha,scope=app".into()],
            to: vec!["type=gha,scope=app,mode=max".into()],
        };
        let a = args(&c, &p("linux/amd64"));
        assert_eq!(a.scope.as_deref(), Some("app-linux-amd64"));
        assert!(a.args[0].starts_with("--cache-from=type=gha,scope=app-linux-amd64"));
        let n = user_note(&["type=gha,scope=app".into()], &[]).unwrap();
        assert!(n.contains("app → app-<os>-<arch>"), "{n}");
        assert!(user_note(&["type=inline".into()], &[]).is_none());
    }

    #[test]
    fn registry_cache_ref() {
        let c = Cache::Registry {
            repository: "127.0.0.1:5000/app".into(),
        };
        let a = args(&c, &p("linux/arm64"));
        assert_eq!(
            a.scope.as_deref(),
            Some("127.0.0.1:5000/app:buildcache-linux-arm64")
        );
    }
}
