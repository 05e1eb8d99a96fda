//! Reading the contents of BuildKit's `index-…` entries, to attribute blobs
//! to scopes. The REST API lists entries but cannot download them; inside a
//! workflow run the cache service can, through the protocol BuildKit uses:
//! v2 (`ACTIONS_RESULTS_URL`, github.com since 2025: a twirp call for a signed
//! download URL) or v1 (`ACTIONS_CACHE_URL`: GitHub Enterprise Server, act),
//! both with `ACTIONS_RUNTIME_TOKEN`. The service only serves the run's own
//! ref and the branches it may read, so entries of other refs stay unread (their blobs then count as
//! unattributed, and pruning falls back to the by-ref rule).

use std::time::Duration;

use serde::Deserialize;

use super::keys::{self, Key};
use super::{index_blobs, Entry, IndexContents};

/// At most this many index entries are read (each is a few KB).
const MAX_INDEXES: usize = 500;
/// The most read of one cache index entry (BuildKit's are a few KiB).
const MAX_INDEX_BYTES: usize = 16 << 20;

/// The cache service of this run, if the environment names one.
#[derive(Clone)]
pub struct CacheService {
    url: String,
    v2: bool,
    token: String,
    http: reqwest::Client,
}

impl CacheService {
    pub fn from_env() -> Option<CacheService> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let token = var("ACTIONS_RUNTIME_TOKEN")?;
        let v2_wanted = var("ACTIONS_CACHE_SERVICE_V2")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"));
        let (url, v2) = match (var("ACTIONS_RESULTS_URL"), var("ACTIONS_CACHE_URL")) {
            (Some(r), None) => (r, true),
            (Some(r), Some(_)) if v2_wanted => (r, true),
            (_, Some(c)) => (c, false),
            (None, None) => return None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .ok()?;
        Some(CacheService {
            url: if url.ends_with('/') {
                url
            } else {
                format!("{url}/")
            },
            v2,
            token,
            http,
        })
    }

    /// The blob list of every readable index entry; the rest are skipped
    /// (logged at debug level). A pull request's entries are only read from
    /// that pull request's run (`GITHUB_REF`): no other run can read them.
    /// Eight requests at a time.
    pub async fn read_indexes(&self, entries: &[Entry]) -> IndexContents {
        let run_ref = std::env::var("GITHUB_REF").ok().filter(|r| !r.is_empty());
        let readable =
            |r: &str| !r.starts_with("refs/pull/") || run_ref.as_deref().is_none_or(|own| own == r);
        let mut wanted: Vec<(String, String)> = entries
            .iter()
            .filter(|e| matches!(keys::parse(&e.key), Key::Index { .. }) && readable(&e.git_ref))
            .map(|e| (e.key.clone(), e.version.clone()))
            .collect();
        wanted.sort();
        wanted.dedup();
        wanted.truncate(MAX_INDEXES);
        let mut out = IndexContents::new();
        let mut set = tokio::task::JoinSet::new();
        let mut pending = wanted.into_iter();
        loop {
            while set.len() < 8 {
                let Some((key, version)) = pending.next() else {
                    break;
                };
                let svc = self.clone();
                set.spawn(async move {
                    let r = svc.read(&key, &version).await;
                    (key, r)
                });
            }
            let Some(done) = set.join_next().await else {
                break;
            };
            match done {
                Ok((key, Ok(Some(blobs)))) => {
                    out.insert(key, blobs);
                }
                Ok((key, Ok(None))) => tracing::debug!(%key, "index not readable from this run"),
                Ok((key, Err(err))) => tracing::debug!(%key, "reading the index failed: {err}"),
                Err(err) => tracing::debug!("index reader task failed: {err}"),
            }
        }
        out
    }

    async fn read(&self, key: &str, version: &str) -> Result<Option<Vec<String>>, reqwest::Error> {
        let location = if self.v2 {
            self.locate_v2(key, version).await?
        } else {
            self.locate_v1(key, version).await?
        };
        let Some(location) = location else {
            return Ok(None);
        };
        // A signed storage URL (or act's artifact route): no credentials sent.
        let mut resp = self.http.get(&location).send().await?.error_for_status()?;
        // A cache index is kilobytes; a larger body is not one (never held whole).
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > MAX_INDEX_BYTES {
                tracing::debug!(%key, "the cache entry is larger than any index; not read");
                return Ok(None);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(index_blobs(&body))
    }

    /// v1: `GET {ACTIONS_CACHE_URL}_apis/artifactcache/cache?keys=&version=`.
    async fn locate_v1(&self, key: &str, version: &str) -> Result<Option<String>, reqwest::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Hit {
            archive_location: String,
            #[serde(default)]
            cache_key: Option<String>,
        }
        let resp = self
            .http
            .get(format!("{}_apis/artifactcache/cache", self.url))
            .query(&[("keys", key), ("version", version)])
            .bearer_auth(&self.token)
            .header("Accept", "application/json;api-version=6.0-preview.1")
            .send()
            .await?;
        if resp.status() != reqwest::StatusCode::OK {
            return Ok(None);
        }
        let Some(hit) = small_json::<Hit>(resp).await? else {
            return Ok(None);
        };
        // The lookup matches by prefix: only the exact key is this entry.
        if hit.cache_key.as_deref().is_some_and(|k| k != key) {
            return Ok(None);
        }
        Ok(Some(hit.archive_location))
    }

    /// v2: twirp `CacheService/GetCacheEntryDownloadURL` → a signed URL.
    async fn locate_v2(&self, key: &str, version: &str) -> Result<Option<String>, reqwest::Error> {
        #[derive(Deserialize)]
        struct Hit {
            #[serde(default)]
            ok: bool,
            #[serde(default, alias = "signedDownloadUrl")]
            signed_download_url: String,
            #[serde(default, alias = "matchedKey")]
            matched_key: String,
        }
        let resp = self
            .http
            .post(format!(
                "{}twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL",
                self.url
            ))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({"key": key, "restore_keys": [], "version": version}))
            .send()
            .await?;
        if resp.status() != reqwest::StatusCode::OK {
            return Ok(None);
        }
        let Some(hit) = small_json::<Hit>(resp).await? else {
            return Ok(None);
        };
        if !hit.ok
            || hit.signed_download_url.is_empty()
            || (!hit.matched_key.is_empty() && hit.matched_key != key)
        {
            return Ok(None);
        }
        Ok(Some(hit.signed_download_url))
    }
}

/// The most read of a lookup's answer (a URL and a key: under 1 KiB).
const MAX_LOOKUP_BYTES: usize = 64 << 10;

/// A lookup's JSON answer, read to at most [`MAX_LOOKUP_BYTES`]; a longer or
/// unreadable one is no hit (the entry stays unread).
async fn small_json<T: serde::de::DeserializeOwned>(
    mut resp: reqwest::Response,
) -> Result<Option<T>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_LOOKUP_BYTES {
            tracing::debug!(
                "the cache service's answer is over {MAX_LOOKUP_BYTES} bytes; not read"
            );
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(serde_json::from_slice(&body).ok())
}
