//! Cache arguments: one scope per image × platform, `mode=max`, so platforms
//! never overwrite each other's cache.

use std::path::{Path, PathBuf};

use crate::plan::Cache;
use crate::platform::Platform;

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
                args: vec![
                    format!("--cache-from=type=gha,scope={scope}"),
                    format!("--cache-to=type=gha,scope={scope},mode=max,ignore-error=true"),
                ],
                scope: Some(scope),
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

#[cfg(test)]
mod tests {
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
        assert_eq!(a.args[0], "--cache-from=type=gha,scope=app-linux-arm64");
        assert_eq!(
            a.args[1],
            "--cache-to=type=gha,scope=app-linux-arm64,mode=max,ignore-error=true"
        );
        let b = args(&c, &p("linux/arm/v7"));
        assert_eq!(b.scope.as_deref(), Some("app-linux-arm-v7"));
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
