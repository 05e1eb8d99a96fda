//! GitHub Actions cache usage and pruning for BuildKit's `type=gha` entries.
//!
//! Per-platform scopes mean more cache entries, and GitHub evicts past the
//! repository's limit (10 GB by default). This module lists the entries
//! through the REST API (`github.rs`, octocrab), names what each one is
//! (`keys.rs`), sums them per scope and per ref ([`summarize`]) and plans
//! what is stale (`prune.rs`).

pub mod contents;
pub mod github;
pub mod keys;
pub mod prune;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use keys::Key;

/// GitHub's default cache limit per repository: 10 GB.
pub const DEFAULT_LIMIT_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// Above this share of the limit, eviction is near: warn.
pub use crate::run::{Bucket, CacheUsage, RefUsage, Risk, ScopeUsage, WARN_FRACTION};

/// One cache entry, as `GET /repos/{owner}/{repo}/actions/caches` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub id: i64,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub key: String,
    #[serde(default)]
    pub version: String,
    pub last_accessed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub size_in_bytes: u64,
}

/// `GET /repos/{owner}/{repo}/actions/cache/usage`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepoUsage {
    pub full_name: String,
    pub active_caches_size_in_bytes: u64,
    pub active_caches_count: u64,
}

/// Blob digests each index entry references (by index key), when the index
/// contents could be read; attribution of blobs to scopes needs them.
pub type IndexContents = HashMap<String, Vec<String>>;

/// The blob digests (`layers[].blob`) of one BuildKit cache config (the
/// content of an `index-…` entry).
pub fn index_blobs(content: &[u8]) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Config {
        layers: Vec<Layer>,
    }
    #[derive(Deserialize)]
    struct Layer {
        blob: String,
    }
    let c: Config = serde_json::from_slice(content).ok()?;
    Some(c.layers.into_iter().map(|l| l.blob).collect())
}

/// Sum the listed entries per BuildKit scope and per ref. Blobs go to the one
/// scope whose indexes reference them (when `contents` holds the indexes'
/// blob lists), to `shared_blobs` when several scopes use them, else to
/// `unattributed_blobs`.
pub fn summarize(
    repository: &str,
    usage: Option<&RepoUsage>,
    entries: &[Entry],
    limit_bytes: u64,
    contents: &IndexContents,
) -> CacheUsage {
    let (mut scopes, other, refs) = count_indexes(entries);
    let newest = newest_seqs(entries);
    for e in entries {
        if let Key::Index {
            scope,
            stem,
            seq: Some(n),
        } = keys::parse(&e.key)
        {
            if newest
                .get(&(stem, e.git_ref.as_str()))
                .is_some_and(|&m| m > n)
            {
                scopes.get_mut(&scope).expect("counted").superseded += 1;
            }
        }
    }
    let (shared, unattributed) = attribute_blobs(entries, contents, &mut scopes);

    let mut scopes: Vec<ScopeUsage> = scopes.into_values().collect();
    scopes.sort_by(|a, b| b.bytes().cmp(&a.bytes()).then(a.scope.cmp(&b.scope)));
    let mut refs: Vec<RefUsage> = refs.into_values().collect();
    refs.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.git_ref.cmp(&b.git_ref)));
    let listed: u64 = entries.iter().map(|e| e.size_in_bytes).sum();
    CacheUsage {
        repository: repository.to_string(),
        total_bytes: usage.map_or(listed, |u| u.active_caches_size_in_bytes),
        total_count: usage.map_or(entries.len() as u64, |u| u.active_caches_count),
        limit_bytes,
        scopes,
        shared_blobs: shared,
        unattributed_blobs: unattributed,
        other,
        refs,
        attributed: !contents.is_empty(),
        run_scopes: Vec::new(),
    }
}

/// The newest `#n` of each index (stem) on each ref.
pub(crate) fn newest_seqs(entries: &[Entry]) -> HashMap<(String, &str), u64> {
    let mut newest: HashMap<(String, &str), u64> = HashMap::new();
    for e in entries {
        if let Key::Index {
            stem, seq: Some(n), ..
        } = keys::parse(&e.key)
        {
            let slot = newest.entry((stem, e.git_ref.as_str())).or_insert(n);
            *slot = (*slot).max(n);
        }
    }
    newest
}

/// Index entries per scope, other tools' entries, and every entry per ref.
fn count_indexes(
    entries: &[Entry],
) -> (
    BTreeMap<String, ScopeUsage>,
    Bucket,
    BTreeMap<String, RefUsage>,
) {
    let mut scopes: BTreeMap<String, ScopeUsage> = BTreeMap::new();
    let mut other = Bucket::default();
    let mut refs: BTreeMap<String, RefUsage> = BTreeMap::new();
    for e in entries {
        let r = refs.entry(e.git_ref.clone()).or_insert_with(|| RefUsage {
            git_ref: e.git_ref.clone(),
            ..RefUsage::default()
        });
        r.count += 1;
        r.bytes += e.size_in_bytes;
        match keys::parse(&e.key) {
            Key::Index { scope, .. } => {
                let s = scopes.entry(scope.clone()).or_insert_with(|| {
                    let mbx = keys::mbx_scope(&scope);
                    ScopeUsage {
                        scope: scope.clone(),
                        image: mbx.as_ref().map(|(i, _)| i.clone()),
                        platform: mbx.map(|(_, p)| p.to_string()),
                        ..ScopeUsage::default()
                    }
                });
                s.indexes.add(e.size_in_bytes);
                if !s.refs.contains(&e.git_ref) {
                    s.refs.push(e.git_ref.clone());
                }
                s.last_accessed_at = s.last_accessed_at.max(Some(e.last_accessed_at));
            }
            Key::Blob { .. } => {}
            Key::Other => other.add(e.size_in_bytes),
        }
    }
    (scopes, other, refs)
}

/// Each blob to the one scope whose (readable) indexes name it; the rest
/// summed as (shared by several scopes, named by no index).
fn attribute_blobs(
    entries: &[Entry],
    contents: &IndexContents,
    scopes: &mut BTreeMap<String, ScopeUsage>,
) -> (Bucket, Bucket) {
    // digest → scopes whose (readable) indexes reference it
    let mut users: HashMap<String, BTreeSet<String>> = HashMap::new();
    for e in entries {
        if let (Key::Index { scope, .. }, Some(blobs)) = (keys::parse(&e.key), contents.get(&e.key))
        {
            for b in blobs {
                users.entry(b.clone()).or_default().insert(scope.clone());
            }
        }
    }
    let mut shared = Bucket::default();
    let mut unattributed = Bucket::default();
    for e in entries {
        let Key::Blob { digest } = keys::parse(&e.key) else {
            continue;
        };
        match users.get(&digest).map(|s| s.len()).unwrap_or(0) {
            0 => unattributed.add(e.size_in_bytes),
            1 => {
                let scope = users[&digest].iter().next().expect("one");
                let s = scopes.get_mut(scope).expect("counted");
                s.blobs.add(e.size_in_bytes);
                s.last_accessed_at = s.last_accessed_at.max(Some(e.last_accessed_at));
            }
            _ => shared.add(e.size_in_bytes),
        }
    }
    (shared, unattributed)
}

/// The indexes' blob lists, when this process runs inside a workflow whose
/// cache service can serve them (see `contents.rs`); empty otherwise.
pub async fn read_contents(entries: &[Entry]) -> IndexContents {
    match contents::CacheService::from_env() {
        Some(service) => service.read_indexes(entries).await,
        None => IndexContents::new(),
    }
}

/// What `mbx ci` asks for on GitHub: the repository's cache, summed, with
/// this run's scopes marked. Needs `GITHUB_REPOSITORY` and a token with
/// `actions: read`.
pub async fn usage_for_run(
    client: &github::GitHub,
    run_scopes: &[String],
    limit_bytes: u64,
) -> Result<CacheUsage> {
    let usage = client.usage().await?;
    let entries = client.list().await?;
    let contents = read_contents(&entries).await;
    let mut u = summarize(
        client.repository(),
        Some(&usage),
        &entries,
        limit_bytes,
        &contents,
    );
    u.run_scopes = run_scopes.to_vec();
    Ok(u)
}

/// In `mbx ci` on GitHub Actions (`GITHUB_ACTIONS=true`): the repository's
/// cache usage with this run's scopes marked, from `GITHUB_REPOSITORY`,
/// `GITHUB_TOKEN` (`actions: read`) and `GITHUB_API_URL`. `Ok(None)` off
/// GitHub Actions.
pub async fn usage_in_ci(run_scopes: &[String]) -> Result<Option<CacheUsage>> {
    if std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true") {
        return Ok(None);
    }
    let api = std::env::var("GITHUB_API_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| github::DEFAULT_API_URL.to_string());
    // Under act (ACT=true) the cache is act's own server: github.com's API
    // knows nothing of it, so only an explicitly pointed API is asked.
    if std::env::var("ACT").as_deref() == Ok("true")
        && api.trim_end_matches('/') == github::DEFAULT_API_URL
    {
        return Ok(None);
    }
    let repo = std::env::var("GITHUB_REPOSITORY").ok();
    let client = github::GitHub::from_env(repo.as_deref(), "GITHUB_TOKEN", &api)?;
    usage_for_run(&client, run_scopes, DEFAULT_LIMIT_BYTES)
        .await
        .map(Some)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `entries` plus one entry of another tool (an npm cache, 5000 bytes, on a PR ref).
    pub(crate) fn with_another_tools_entry(mut entries: Vec<Entry>) -> Vec<Entry> {
        let mut npm = entries[0].clone();
        npm.key = "Linux-node-958aff96db2d75d67787d1e634ae70b659de937b".into();
        npm.size_in_bytes = 5000;
        npm.git_ref = "refs/pull/7/merge".into();
        entries.push(npm);
        entries
    }

    /// The entries of a real export through act's cache server
    /// (tests/data/gha-cache), as GitHub's REST API would list them.
    pub(crate) fn captured_entries() -> (Vec<Entry>, IndexContents) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/gha-cache");
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/act-cache-entries.json")).unwrap(),
        )
        .unwrap();
        let mut entries = Vec::new();
        let mut contents = IndexContents::new();
        for e in v.as_array().unwrap() {
            let at = |k: &str| DateTime::from_timestamp(e[k].as_i64().unwrap(), 0).unwrap();
            let key = e["key"].as_str().unwrap().to_string();
            let id = e["id"].as_i64().unwrap();
            if key.starts_with("index-") {
                let c = std::fs::read(format!("{dir}/index-content-{id}.json")).unwrap();
                contents.insert(key.clone(), index_blobs(&c).unwrap());
            }
            entries.push(Entry {
                id,
                git_ref: "refs/heads/main".into(),
                key,
                version: e["version"].as_str().unwrap().into(),
                last_accessed_at: at("usedAt"),
                created_at: at("createdAt"),
                size_in_bytes: e["cacheSize"].as_u64().unwrap(),
            });
        }
        (entries, contents)
    }

    #[test]
    fn attributes_blobs_by_index_contents() {
        let (entries, contents) = captured_entries();
        let u = summarize("o/r", None, &entries, DEFAULT_LIMIT_BYTES, &contents);
        assert!(u.attributed);
        let amd = u.scope("hello-linux-amd64").unwrap();
        let arm = u.scope("hello-linux-arm64").unwrap();
        assert_eq!(amd.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(amd.image.as_deref(), Some("hello"));
        assert_eq!((amd.indexes.count, amd.superseded), (2, 1));
        assert_eq!((arm.indexes.count, arm.superseded), (1, 0));
        // index #1 and #2 of amd64 name 10 distinct blobs, arm64's names 6, one
        // (sha256:1e8b57ea…) appears in both scopes.
        assert_eq!(amd.blobs.count, 9);
        assert_eq!(arm.blobs.count, 5);
        assert_eq!(u.shared_blobs.count, 1);
        assert_eq!(u.shared_blobs.bytes, 3498);
        assert_eq!(u.unattributed_blobs.count, 0);
        let listed: u64 = entries.iter().map(|e| e.size_in_bytes).sum();
        assert_eq!(
            amd.bytes() + arm.bytes() + u.shared_blobs.bytes,
            listed,
            "every byte lands somewhere once"
        );
        assert_eq!(u.total_bytes, listed);
        assert_eq!(u.refs.len(), 1);
        assert_eq!(u.refs[0].count, 18);
    }

    #[test]
    fn without_contents_blobs_are_shared_and_other_tools_counted() {
        let entries = with_another_tools_entry(captured_entries().0);
        let u = summarize(
            "o/r",
            None,
            &entries,
            DEFAULT_LIMIT_BYTES,
            &IndexContents::new(),
        );
        assert!(!u.attributed);
        assert_eq!(u.unattributed_blobs.count, 15);
        assert_eq!(
            u.other,
            Bucket {
                count: 1,
                bytes: 5000
            }
        );
        assert_eq!(u.scope("hello-linux-amd64").unwrap().blobs.count, 0);
        assert_eq!(u.refs.len(), 2);
    }
}
