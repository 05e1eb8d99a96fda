//! A cache import or export that failed, read from the build's progress.
//! BuildKit ignores both (mbx's exports carry `ignore-error=true`; an import
//! never fails a build): the build succeeds, and only the errored vertex —
//! `importing cache manifest from gha:…`, `exporting to GitHub Actions
//! Cache` — says the cache was lost (tests/data/rawjson/gha-v2-*.json).

use crate::plan::Cache;
use crate::run::{CacheCause, CacheDirection, CacheIssue, Step};

/// The cache's failure in one build's steps, if any.
pub fn find(cache: &Cache, steps: &[Step]) -> Option<CacheIssue> {
    let backend = match cache {
        Cache::Gha { .. } => "gha",
        Cache::Registry { .. } => "registry",
        Cache::Local { .. } => "local",
        Cache::User { .. } => "cache-from/cache-to",
        Cache::None => return None,
    };
    let mut failed = Vec::new();
    let mut detail = None;
    for s in steps {
        let Some(error) = s.error.as_deref() else {
            continue;
        };
        let direction = if s.name.starts_with("importing cache manifest from") {
            // A registry cache that is not there yet is a cold start, not a failure.
            if error.contains("not found") {
                continue;
            }
            CacheDirection::Import
        } else if is_export(&s.name) {
            CacheDirection::Export
        } else {
            continue;
        };
        if !failed.contains(&direction) {
            failed.push(direction);
        }
        detail.get_or_insert_with(|| error.lines().next().unwrap_or(error).to_string());
    }
    let detail = detail?;
    failed.sort_by_key(|d| *d != CacheDirection::Import);
    Some(CacheIssue {
        backend: backend.to_string(),
        failed,
        cause: cause(&detail),
        detail,
    })
}

fn is_export(name: &str) -> bool {
    name.starts_with("exporting to GitHub Actions Cache")
        || name.starts_with("exporting cache")
        || name.starts_with("exporting content cache")
        || name == "preparing build cache for export"
}

/// What BuildKit's error says happened, from go-actions-cache's messages:
/// a 429 retried until the gha `timeout` ("maximum timeout reached:
/// resource_exhausted"), a 5xx ("unavailable", "503 Service Unavailable"),
/// an entry the service would not reserve ("failed to reserve cache").
pub fn cause(error: &str) -> CacheCause {
    let e = error.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| e.contains(w));
    if any(&[
        "resource_exhausted",
        "too many requests",
        "429",
        "rate limit",
        "maximum timeout reached",
    ]) {
        CacheCause::Throttled
    } else if any(&[
        "failed to reserve cache",
        "cache is full",
        "quota",
        "storage limit",
    ]) {
        CacheCause::Full
    } else if any(&[
        "unavailable",
        "internal",
        "bad gateway",
        "gateway timeout",
        " 500 ",
        " 502 ",
        " 503 ",
        " 504 ",
    ]) {
        CacheCause::Unavailable
    } else {
        CacheCause::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, error: Option<&str>) -> Step {
        Step {
            digest: "sha256:x".into(),
            name: name.into(),
            started: None,
            completed: None,
            busy_seconds: 0.0,
            cached: false,
            error: error.map(str::to_string),
            instruction: false,
            log_tail: Vec::new(),
        }
    }

    /// The steps of a build captured from BuildKit v0.25.2 against the stand-in.
    fn captured(name: &str) -> Vec<Step> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/data/rawjson/{name}.json"));
        let mut p = crate::build::progress::Progress::new();
        p.feed(&std::fs::read(path).unwrap());
        p.finish();
        p.steps()
    }

    #[test]
    fn real_ignored_cache_errors_are_found_with_their_cause() {
        let gha = Cache::Gha {
            prefix: "hello".into(),
        };
        let both = [CacheDirection::Import, CacheDirection::Export];
        for (file, failed, want) in [
            ("gha-v2-503", &both[..], CacheCause::Unavailable),
            ("gha-v2-429", &both[..], CacheCause::Throttled),
            ("gha-v2-full", &both[1..], CacheCause::Full),
        ] {
            let i = find(&gha, &captured(file)).unwrap_or_else(|| panic!("{file}: no issue"));
            assert_eq!(
                (i.failed.as_slice(), i.cause),
                (failed, want),
                "{file}: {i:?}"
            );
        }
        assert!(find(&gha, &captured("hello-amd64-nocache")).is_none());
    }

    #[test]
    fn causes_from_go_actions_cache_messages() {
        assert_eq!(
            cause("maximum timeout reached: resource_exhausted"),
            CacheCause::Throttled
        );
        assert_eq!(cause("unavailable"), CacheCause::Unavailable);
        assert_eq!(cause("failed to reserve cache"), CacheCause::Full);
        assert_eq!(cause("something else"), CacheCause::Other);
    }

    #[test]
    fn finds_the_failed_direction_and_ignores_a_missing_registry_cache() {
        let gha = Cache::Gha { prefix: "p".into() };
        let steps = [
            step("[1/2] RUN x", None),
            step("importing cache manifest from gha:123", Some("unavailable")),
            step("exporting to GitHub Actions Cache", Some("unavailable")),
        ];
        let i = find(&gha, &steps).unwrap();
        assert_eq!(i.failed, [CacheDirection::Import, CacheDirection::Export]);
        assert_eq!(
            (i.cause, i.backend.as_str()),
            (CacheCause::Unavailable, "gha")
        );
        assert!(find(&gha, &steps[..1]).is_none());
        let reg = Cache::Registry {
            repository: "r".into(),
        };
        let cold = [step(
            "importing cache manifest from r:buildcache-linux-amd64",
            Some("r:buildcache-linux-amd64: not found"),
        )];
        assert!(find(&reg, &cold).is_none());
    }
}
