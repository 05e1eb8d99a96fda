//! Reading the contents of BuildKit's `index-…` entries, to attribute blobs
//! to scopes. The REST API lists entries but cannot download them; inside a
//! workflow run the cache service can, through the same v1 protocol BuildKit
//! uses (`ACTIONS_CACHE_URL` + `ACTIONS_RUNTIME_TOKEN`: GitHub Enterprise
//! Server, act). The service only serves the run's own ref and the branches it
//! may read, so entries of other refs stay unread (their blobs then count as
//! unattributed, and pruning falls back to the by-ref rule).

use std::time::Duration;

use serde::Deserialize;

use super::keys::{self, Key};
use super::{index_blobs, Entry, IndexContents};

/// At most this many index entries are read (each is a few KB).
const MAX_INDEXES: usize = 500;

/// The v1 cache service of this run, if the environment names one.
pub struct CacheService {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl CacheService {
    pub fn from_env() -> Option<CacheService> {
        let url = std::env::var("ACTIONS_CACHE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let token = std::env::var("ACTIONS_RUNTIME_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())?;
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
            token,
            http,
        })
    }

    /// The blob list of every readable index entry; the rest are skipped
    /// (logged at debug level).
    pub async fn read_indexes(&self, entries: &[Entry]) -> IndexContents {
        let mut out = IndexContents::new();
        for e in entries
            .iter()
            .filter(|e| matches!(keys::parse(&e.key), Key::Index { .. }))
            .take(MAX_INDEXES)
        {
            match self.read(&e.key, &e.version).await {
                Ok(Some(blobs)) => {
                    out.insert(e.key.clone(), blobs);
                }
                Ok(None) => {
                    tracing::debug!(key = %e.key, r#ref = %e.git_ref, "index not readable from this run")
                }
                Err(err) => tracing::debug!(key = %e.key, "reading the index failed: {err}"),
            }
        }
        out
    }

    async fn read(&self, key: &str, version: &str) -> Result<Option<Vec<String>>, reqwest::Error> {
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
        let hit: Hit = resp.json().await?;
        // The lookup matches by prefix: only the exact key is this entry.
        if hit.cache_key.as_deref().is_some_and(|k| k != key) {
            return Ok(None);
        }
        let body = self
            .http
            .get(&hit.archive_location)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok(index_blobs(&body))
    }
}
