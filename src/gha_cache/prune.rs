//! What `mbx cache prune` deletes, planned from the listing alone (pure), then
//! applied through the REST API.
//!
//! An index entry goes when its scope matches (`--scope GLOB`, else any mbx
//! scope `<image>-<os>-<arch>[-<variant>]`), its ref matches (`--ref`), and it
//! is stale: a newer `#n` of the same index on the same ref supersedes it
//! (BuildKit only reads the newest), or it was last used before `--older-than`.
//!
//! A blob (`buildkit-blob-…`, shared by every BuildKit user of the repository)
//! goes only when the deleted indexes used it and no index that stays can:
//! - when every index's contents are known: no remaining index names it (for
//!   a pull request's copy: no remaining index on that pull request);
//! - otherwise, by ref: a pull request's blobs when no index stays on that
//!   pull request ref (nothing else reads a PR's caches); a branch's blobs
//!   only when no BuildKit index stays in the repository at all (other refs
//!   may read a branch's caches).
//!
//! Blobs used within the last hour are kept (an export may be in flight), and
//! other tools' keys are never touched.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::github::GitHub;
use super::keys::{self, Key};
use super::{Entry, IndexContents};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Filters {
    pub older_than: Duration,
    /// Full ref (`refs/heads/main`, `refs/pull/7/merge`); see [`normalize_ref`].
    pub git_ref: Option<String>,
    pub scope: Option<String>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Deletion {
    pub id: i64,
    pub key: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub size_in_bytes: u64,
    pub scope: Option<String>,
    pub reason: String,
    /// Delete by key and ref (one call for exactly this entry); by id when
    /// another entry shares the key on this ref.
    #[serde(skip)]
    pub by_key: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PrunePlan {
    pub delete: Vec<Deletion>,
    /// Blobs on the pruned refs kept because a remaining index may use them.
    pub kept_blobs: u64,
    pub kept_blob_bytes: u64,
}

impl PrunePlan {
    pub fn bytes(&self) -> u64 {
        self.delete.iter().map(|d| d.size_in_bytes).sum()
    }
}

/// `main` → `refs/heads/main`; `refs/…` unchanged.
pub fn normalize_ref(r: &str) -> String {
    if r.starts_with("refs/") {
        r.to_string()
    } else {
        format!("refs/heads/{r}")
    }
}

/// `7d`, `12h`, `30m`, `2w` → a duration.
pub fn parse_age(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    match unit {
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    }
}

pub fn plan(entries: &[Entry], f: &Filters, contents: &IndexContents) -> PrunePlan {
    let (delete, staying) = stale_indexes(entries, f);
    let mut out = PrunePlan {
        delete,
        ..PrunePlan::default()
    };
    let blobs = BlobUse::new(entries, &out.delete, &staying, contents);
    let recent = f.now - Duration::hours(1);
    let pruned_refs: HashSet<String> = out.delete.iter().map(|d| d.git_ref.clone()).collect();
    for e in entries {
        let Key::Blob { digest } = keys::parse(&e.key) else {
            continue;
        };
        if !f.wants_ref(&e.git_ref) || !pruned_refs.contains(&e.git_ref) {
            continue;
        }
        if blobs.unused(e, &digest) && e.last_accessed_at < recent {
            out.delete.push(Deletion {
                id: e.id,
                key: e.key.clone(),
                git_ref: e.git_ref.clone(),
                size_in_bytes: e.size_in_bytes,
                scope: None,
                reason: if blobs.all_known {
                    "only pruned indexes use it".into()
                } else {
                    "no remaining index can use it".into()
                },
                by_key: false,
            });
        } else {
            out.kept_blobs += 1;
            out.kept_blob_bytes += e.size_in_bytes;
        }
    }
    out
}

impl Filters {
    fn wants_ref(&self, r: &str) -> bool {
        self.git_ref.as_deref().is_none_or(|w| w == r)
    }

    fn wants_scope(&self, s: &str) -> bool {
        match &self.scope {
            Some(g) => keys::glob_match(g, s),
            None => keys::mbx_scope(s).is_some(),
        }
    }
}

/// The index entries to delete (superseded, or unused since the cutoff, in
/// a wanted scope and ref), and the indexes that stay, of any scope and tool.
fn stale_indexes<'a>(entries: &'a [Entry], f: &Filters) -> (Vec<Deletion>, Vec<&'a Entry>) {
    let cutoff = f.now - f.older_than;
    let newest = super::newest_seqs(entries);
    let mut same_key: HashMap<(&str, &str), usize> = HashMap::new();
    for e in entries {
        *same_key.entry((&e.key, &e.git_ref)).or_default() += 1;
    }
    let mut delete = Vec::new();
    let mut staying: Vec<&Entry> = Vec::new();
    for e in entries {
        let Key::Index { scope, stem, seq } = keys::parse(&e.key) else {
            continue;
        };
        let superseded = seq.and_then(|n| {
            newest
                .get(&(stem, e.git_ref.as_str()))
                .copied()
                .filter(|&m| m > n)
        });
        let reason = if !f.wants_scope(&scope) || !f.wants_ref(&e.git_ref) {
            None
        } else if let Some(m) = superseded {
            Some(format!("superseded by #{m}"))
        } else if e.last_accessed_at < cutoff {
            Some(format!(
                "unused since {}",
                e.last_accessed_at.format("%Y-%m-%d %H:%M")
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => delete.push(Deletion {
                id: e.id,
                key: e.key.clone(),
                git_ref: e.git_ref.clone(),
                size_in_bytes: e.size_in_bytes,
                scope: Some(scope),
                reason,
                by_key: same_key[&(e.key.as_str(), e.git_ref.as_str())] == 1,
            }),
            None => staying.push(e),
        }
    }
    (delete, staying)
}

/// Which indexes may still read a blob once the planned indexes are gone.
struct BlobUse<'a> {
    /// Every index's contents are known: blobs are judged by digest.
    all_known: bool,
    contents: &'a IndexContents,
    staying: &'a [&'a Entry],
    used_by_deleted: HashSet<&'a str>,
    used_by_staying: HashSet<&'a str>,
}

impl<'a> BlobUse<'a> {
    fn new(
        entries: &'a [Entry],
        delete: &[Deletion],
        staying: &'a [&'a Entry],
        contents: &'a IndexContents,
    ) -> BlobUse<'a> {
        let index_entries: Vec<&Entry> = entries
            .iter()
            .filter(|e| matches!(keys::parse(&e.key), Key::Index { .. }))
            .collect();
        let all_known = index_entries.iter().all(|e| contents.contains_key(&e.key));
        let mut used = BlobUse {
            all_known,
            contents,
            staying,
            used_by_deleted: HashSet::new(),
            used_by_staying: HashSet::new(),
        };
        if all_known {
            let deleted_ids: HashSet<i64> = delete.iter().map(|d| d.id).collect();
            let names = |es: &mut dyn Iterator<Item = &'a Entry>| -> HashSet<&'a str> {
                es.flat_map(|e| contents[&e.key].iter().map(String::as_str))
                    .collect()
            };
            used.used_by_deleted = names(
                &mut index_entries
                    .iter()
                    .copied()
                    .filter(|e| deleted_ids.contains(&e.id)),
            );
            used.used_by_staying = names(&mut staying.iter().copied());
        }
        used
    }

    /// No index that stays can use blob entry `e` (of `digest`).
    fn unused(&self, e: &Entry, digest: &str) -> bool {
        if self.all_known {
            // A pull request's copy serves only indexes on that pull request;
            // a branch's copy may serve indexes on any ref.
            let staying_user = if e.git_ref.starts_with("refs/pull/") {
                self.staying.iter().any(|s| {
                    s.git_ref == e.git_ref && self.contents[&s.key].iter().any(|b| b == digest)
                })
            } else {
                self.used_by_staying.contains(digest)
            };
            self.used_by_deleted.contains(digest) && !staying_user
        } else if e.git_ref.starts_with("refs/pull/") {
            !self.staying.iter().any(|s| s.git_ref == e.git_ref)
        } else {
            self.staying.is_empty()
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Applied {
    pub deleted: u64,
    pub bytes: u64,
}

/// Delete what the plan lists: index entries by key and ref (when that names
/// exactly one entry), the rest by id.
pub async fn apply(client: &GitHub, plan: &PrunePlan) -> Result<Applied> {
    let mut done = Applied::default();
    for d in &plan.delete {
        if d.by_key {
            let gone = client.delete_key(&d.key, &d.git_ref).await?;
            if gone.iter().any(|g| g.key != d.key) {
                return Err(Error::env(
                    format!("GitHub deleted more than `{}` on {}", d.key, d.git_ref),
                    "stop and check the repository's caches",
                ));
            }
        } else {
            client.delete_id(d.id).await?;
        }
        done.deleted += 1;
        done.bytes += d.size_in_bytes;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gha_cache::tests::captured_entries;

    fn filters(now: DateTime<Utc>) -> Filters {
        Filters {
            older_than: Duration::days(7),
            git_ref: None,
            scope: None,
            now,
        }
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("7d"), Some(Duration::days(7)));
        assert_eq!(parse_age("12h"), Some(Duration::hours(12)));
        assert_eq!(parse_age("7"), None);
        assert_eq!(parse_age("d"), None);
        assert_eq!(parse_age("3y"), None);
        assert_eq!(normalize_ref("main"), "refs/heads/main");
        assert_eq!(normalize_ref("refs/pull/7/merge"), "refs/pull/7/merge");
    }

    #[test]
    fn superseded_index_and_its_own_blobs_go() {
        let (entries, contents) = captured_entries();
        // Two hours after the export: nothing is older than 7 days, but
        // amd64's #1 is superseded by #2.
        let now = entries.iter().map(|e| e.created_at).max().unwrap() + Duration::hours(2);
        let p = plan(&entries, &filters(now), &contents);
        let keys: Vec<&str> = p.delete.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys[0], "index-hello-linux-amd64-1-f921bd05#1", "{keys:?}");
        assert_eq!(p.delete[0].reason, "superseded by #2");
        // #1 named 6 blobs; #2 still uses 1c1bd2a9 and 1e8b57ea (arm64 also
        // uses 1e8b57ea): the other 4 only #1 used.
        let blobs: Vec<&str> = keys[1..].iter().map(|k| &k[23..31]).collect();
        assert_eq!(blobs, ["4e9c416a", "7e71f56d", "888d5a77", "9206aa7f"]);
        assert_eq!(p.kept_blobs, 11);
    }

    #[test]
    fn a_key_shared_on_one_ref_is_deleted_by_id() {
        let (mut entries, contents) = captured_entries();
        let now = entries.iter().map(|e| e.created_at).max().unwrap() + Duration::hours(2);
        let p = plan(&entries, &filters(now), &contents);
        assert!(
            p.delete[0].by_key && !p.delete[1].by_key,
            "indexes by key, blobs by id"
        );
        // Another entry with amd64 #1's key on main (another version).
        let mut twin = entries[6].clone();
        assert!(twin.key.ends_with("#1") && twin.key.contains("amd64"));
        twin.id = 99;
        twin.version = "0".repeat(64);
        entries.push(twin);
        let p = plan(&entries, &filters(now), &contents);
        let ids: Vec<(i64, bool)> = p.delete.iter().take(2).map(|d| (d.id, d.by_key)).collect();
        assert_eq!(ids, [(7, false), (99, false)]);
    }

    #[test]
    fn stale_scope_by_glob_and_age() {
        let (entries, contents) = captured_entries();
        let now = entries.iter().map(|e| e.created_at).max().unwrap() + Duration::days(8);
        let mut f = filters(now);
        f.scope = Some("*-arm64".into());
        let p = plan(&entries, &f, &contents);
        assert!(p.delete[0].key.starts_with("index-hello-linux-arm64-"));
        assert!(p.delete[0].reason.starts_with("unused since"));
        // arm64's index names 6 blobs; 1e8b57ea is also amd64's: 5 go.
        assert_eq!(p.delete.len(), 1 + 5, "{:#?}", p.delete);
        assert!(p.delete.iter().all(|d| !d.key.contains("1e8b57ea")));
    }

    #[test]
    fn without_contents_branch_blobs_stay_while_any_index_stays() {
        let (entries, _) = captured_entries();
        let now = entries.iter().map(|e| e.created_at).max().unwrap() + Duration::hours(2);
        let p = plan(&entries, &filters(now), &IndexContents::new());
        assert_eq!(
            p.delete.len(),
            1,
            "only the superseded index: {:#?}",
            p.delete
        );
        assert_eq!(p.kept_blobs, 15);

        // Everything stale: every index goes, so the branch's blobs can go.
        let later = now + Duration::days(30);
        let p = plan(&entries, &filters(later), &IndexContents::new());
        assert_eq!(p.delete.len(), entries.len());
    }

    #[test]
    fn with_contents_a_pull_requests_copy_goes_with_its_index() {
        let (mut entries, contents) = captured_entries();
        let now = entries.iter().map(|e| e.created_at).max().unwrap() + Duration::hours(2);
        // The PR re-used arm64's index and stored its own copy of one blob.
        let mut idx = entries[12].clone();
        assert!(idx.key.starts_with("index-hello-linux-arm64-"));
        let mut blob = entries[8].clone();
        assert!(blob.key.contains("6ea3f969"));
        for (e, id) in [(&mut idx, 201), (&mut blob, 202)] {
            e.id = id;
            e.git_ref = "refs/pull/42/merge".into();
            e.last_accessed_at = now - Duration::days(9);
        }
        entries.push(idx);
        entries.push(blob);
        let p = plan(&entries, &filters(now), &contents);
        let ids: Vec<i64> = p.delete.iter().map(|d| d.id).collect();
        // amd64 #1 (id 7) and its 4 own blobs; the PR's index and its copy,
        // though main's arm64 index names the same digest.
        assert_eq!(ids, [7, 201, 3, 4, 5, 6, 202], "{:#?}", p.delete);
    }

    #[test]
    fn pull_request_blobs_go_with_its_indexes_and_other_tools_never() {
        let (mut entries, _) = captured_entries();
        let now = entries.iter().map(|e| e.created_at).max().unwrap() + Duration::days(8);
        for e in entries.iter_mut() {
            e.git_ref = "refs/pull/7/merge".into();
        }
        // main keeps a fresh index of another tool's scope (build-push-action's default).
        let mut fresh = entries[6].clone();
        fresh.id = 100;
        fresh.key = "index-buildkit-1-f921bd05#1".into();
        fresh.git_ref = "refs/heads/main".into();
        fresh.last_accessed_at = now;
        let mut npm = entries[0].clone();
        npm.id = 101;
        npm.key = "Linux-node-958aff96db2d75d67787d1e634ae70b659de937b".into();
        entries.push(fresh);
        entries.push(npm);
        let mut f = filters(now);
        f.git_ref = Some("refs/pull/7/merge".into());
        let p = plan(&entries, &f, &IndexContents::new());
        assert_eq!(p.delete.len(), 18, "3 indexes + 15 blobs of the PR");
        assert!(p.delete.iter().all(|d| d.git_ref == "refs/pull/7/merge"));
        assert!(p.delete.iter().all(|d| d.id < 100));
    }
}
