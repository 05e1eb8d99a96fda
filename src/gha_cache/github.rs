//! The GitHub REST endpoints of the Actions cache, through octocrab:
//! list (paged by `Link` headers), usage, delete by id and by key.
//! `GITHUB_API_URL` is honoured (GitHub Enterprise Server: `https://HOST/api/v3`).

use http::StatusCode;
use octocrab::secrecy::SecretString;
use octocrab::Octocrab;
use serde::Deserialize;

use super::{Entry, RepoUsage};
use crate::error::{Error, Result};

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The most read of one answer: a page of 100 entries is ~40 KB, the
/// usage a few hundred bytes. A longer body is refused, never held whole.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Of an error answer, only the start is read (its `message`).
const MAX_ERROR_BYTES: usize = 64 << 10;
/// One answer's whole body arrives within this (the read timeout bounds
/// each read, not a body that trickles).
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
/// Cache entries listed at most (10 GB of cache is thousands); past this
/// the list is refused rather than grown.
pub const MAX_ENTRIES: usize = 200_000;

/// One repository's cache through the REST API.
pub struct GitHub {
    crab: Octocrab,
    repository: String,
}

/// Which permission an operation needs, for the 403 message.
#[derive(Clone, Copy)]
enum Need {
    Read,
    Write,
}

impl GitHub {
    /// `api_url`: `GITHUB_API_URL` or [`DEFAULT_API_URL`]; `repository`:
    /// `owner/name`; `token`: never printed.
    pub fn new(api_url: &str, repository: &str, token: String) -> Result<GitHub> {
        let (owner, name) = repository.split_once('/').unwrap_or(("", ""));
        if owner.is_empty() || name.is_empty() || name.contains('/') {
            return Err(Error::input(
                format!("`{repository}` is not a repository: expected OWNER/NAME"),
                "pass --repo OWNER/NAME (in GitHub Actions GITHUB_REPOSITORY sets it)",
            ));
        }
        let crab = Octocrab::builder()
            .base_uri(api_url.trim_end_matches('/'))
            .map_err(|e| {
                Error::input(
                    format!("GITHUB_API_URL `{api_url}` is not a URL: {e}"),
                    "set GITHUB_API_URL to https://api.github.com or https://HOST/api/v3",
                )
            })?
            .personal_token(SecretString::from(token))
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .build()
            .map_err(|e| Error::env(format!("cannot make the GitHub client: {e}"), ""))?;
        Ok(GitHub {
            crab,
            repository: repository.to_string(),
        })
    }

    /// From the command line / the Actions environment: `repo` (else
    /// `GITHUB_REPOSITORY`), the token in the variable `token_env`, the API base.
    pub fn from_env(repo: Option<&str>, token_env: &str, api_url: &str) -> Result<GitHub> {
        let repo = repo.filter(|r| !r.is_empty()).ok_or_else(|| {
            Error::input(
                "which repository? no --repo and GITHUB_REPOSITORY is not set",
                "pass --repo OWNER/NAME",
            )
        })?;
        let token = std::env::var(token_env)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                Error::input(
                    format!("no GitHub token: ${token_env} is not set"),
                    "in a workflow add `env: GITHUB_TOKEN: ${{{{ github.token }}}}` (with `permissions: actions: read`, \
or `actions: write` to prune); elsewhere export a token and pass --token-env NAME",
                )
            })?;
        GitHub::new(api_url, repo, token.trim().to_string())
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Every cache entry of the repository, following `Link: <…>; rel="next"`.
    pub async fn list(&self) -> Result<Vec<Entry>> {
        #[derive(Deserialize)]
        struct Page {
            actions_caches: Vec<Entry>,
        }
        let mut url = format!("/repos/{}/actions/caches?per_page=100", self.repository);
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let resp = self
                .crab
                ._get(url.as_str())
                .await
                .map_err(|e| self.transport("list the caches", e))?;
            let next = next_link(resp.headers());
            let body = self.body(resp, "list the caches", Need::Read).await?;
            let page: Page = serde_json::from_str(&body).map_err(|e| {
                Error::env(
                    format!("GitHub's cache list is not what the API documents: {e}"),
                    "check GITHUB_API_URL points at the GitHub REST API",
                )
            })?;
            out.extend(page.actions_caches);
            if out.len() > MAX_ENTRIES {
                return Err(Error::env(
                    format!(
                        "GitHub's cache list of {} has more than {MAX_ENTRIES} entries, the most mbx reads",
                        self.repository
                    ),
                    "check GITHUB_API_URL points at the GitHub REST API; prune the cache by key prefix with `gh cache delete`",
                ));
            }
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
        Err(Error::env(
            "GitHub's cache list never ended (more than 10000 pages)",
            "",
        ))
    }

    /// The repository's total: `GET /repos/{owner}/{repo}/actions/cache/usage`.
    pub async fn usage(&self) -> Result<RepoUsage> {
        let url = format!("/repos/{}/actions/cache/usage", self.repository);
        let resp = self
            .crab
            ._get(url.as_str())
            .await
            .map_err(|e| self.transport("read the cache usage", e))?;
        let body = self.body(resp, "read the cache usage", Need::Read).await?;
        serde_json::from_str(&body).map_err(|e| {
            Error::env(
                format!("GitHub's cache usage is not what the API documents: {e}"),
                "check GITHUB_API_URL points at the GitHub REST API",
            )
        })
    }

    /// `DELETE /repos/{owner}/{repo}/actions/caches/{id}`.
    pub async fn delete_id(&self, id: i64) -> Result<()> {
        let url = format!("/repos/{}/actions/caches/{id}", self.repository);
        let resp = self
            .crab
            ._delete(url.as_str(), None::<&()>)
            .await
            .map_err(|e| self.transport("delete a cache", e))?;
        if resp.status() == StatusCode::NOT_FOUND {
            // Gone already (evicted or deleted meanwhile): the goal is met.
            return Ok(());
        }
        self.body(resp, "delete a cache", Need::Write)
            .await
            .map(drop)
    }

    /// `DELETE /repos/{owner}/{repo}/actions/caches?key=KEY&ref=REF`: every
    /// entry with exactly this key on this ref; returns what was deleted.
    pub async fn delete_key(&self, key: &str, git_ref: &str) -> Result<Vec<Entry>> {
        #[derive(Deserialize)]
        struct Deleted {
            actions_caches: Vec<Entry>,
        }
        let query = serde_urlencoded_pair(&[("key", key), ("ref", git_ref)]);
        let url = format!("/repos/{}/actions/caches?{query}", self.repository);
        let resp = self
            .crab
            ._delete(url.as_str(), None::<&()>)
            .await
            .map_err(|e| self.transport("delete a cache", e))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let body = self.body(resp, "delete a cache", Need::Write).await?;
        Ok(serde_json::from_str::<Deleted>(&body)
            .map(|d| d.actions_caches)
            .unwrap_or_default())
    }

    fn transport(&self, what: &str, e: octocrab::Error) -> Error {
        let mut why = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            why = format!("{why}: {s}");
            src = s.source();
        }
        Error::env(
            format!("cannot {what} of {} on GitHub: {why}", self.repository),
            "check the network and GITHUB_API_URL (GitHub Enterprise Server: https://HOST/api/v3)",
        )
    }

    /// The body of a successful response, or a typed error naming the fix.
    async fn body(
        &self,
        resp: http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, octocrab::Error>>,
        what: &str,
        need: Need,
    ) -> Result<String> {
        let status = resp.status();
        let body = self.bounded_body(resp, what).await?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect());
        let perm = match need {
            Need::Read => "actions: read",
            Need::Write => "actions: write",
        };
        Err(match status {
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
                if message.to_ascii_lowercase().contains("rate limit") =>
            {
                Error::env(
                    format!("GitHub's API rate limit stopped mbx from trying to {what}: {message}"),
                    "wait for the limit to reset (see GitHub's x-ratelimit-reset header) and run again",
                )
            }
            StatusCode::FORBIDDEN => Error::env(
                format!(
                    "GitHub refused to {what} of {} (403 Forbidden: {message})",
                    self.repository
                ),
                format!(
                    "the token lacks `{perm}`: add `permissions: {perm}` to the workflow job \
(for GITHUB_TOKEN), or pass --token-env NAME naming a token that has it"
                ),
            ),
            StatusCode::UNAUTHORIZED => Error::env(
                format!("GitHub did not accept the token (401: {message})"),
                "set GITHUB_TOKEN (or --token-env NAME) to a valid token",
            ),
            StatusCode::NOT_FOUND => Error::input(
                format!(
                    "GitHub knows no repository {} (404: {message})",
                    self.repository
                ),
                "check --repo OWNER/NAME and that the token can see the repository",
            ),
            s => Error::env(
                format!("GitHub answered {s} when asked to {what}: {message}"),
                "retry later; if it persists, check GITHUB_API_URL",
            ),
        })
    }
}

impl GitHub {
    /// The body as text: at most [`MAX_BODY_BYTES`] of a success (more is an
    /// error naming the cap, refused from `Content-Length` when it says so
    /// up front), the first [`MAX_ERROR_BYTES`] of an error; all of it
    /// within [`BODY_DEADLINE`].
    async fn bounded_body(
        &self,
        resp: http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, octocrab::Error>>,
        what: &str,
    ) -> Result<String> {
        use http_body_util::BodyExt;
        let success = resp.status().is_success();
        let cap = if success {
            MAX_BODY_BYTES
        } else {
            MAX_ERROR_BYTES
        };
        let too_large = || {
            Error::env(
                format!(
                    "GitHub's answer when asked to {what} of {} is larger than {MAX_BODY_BYTES} bytes, the most mbx reads of one answer",
                    self.repository
                ),
                "check GITHUB_API_URL points at the GitHub REST API (https://api.github.com or https://HOST/api/v3)",
            )
        };
        let declared = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if success && declared.is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        let read = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| self.transport(what, e))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if bytes.len() + data.len() > cap {
                    if !success {
                        bytes.extend_from_slice(&data[..cap - bytes.len()]);
                        return Ok(());
                    }
                    return Err(too_large());
                }
                if bytes.capacity() < bytes.len() + data.len() {
                    // Doubling, but never past the cap.
                    let want = (bytes.len() + data.len())
                        .max(bytes.capacity() * 2)
                        .min(cap);
                    bytes.reserve_exact(want - bytes.len());
                }
                bytes.extend_from_slice(&data);
            }
            Ok(())
        };
        match tokio::time::timeout(BODY_DEADLINE, read).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::env(
                    format!(
                        "GitHub's answer when asked to {what} of {} did not end within {}s ({} bytes came)",
                        self.repository,
                        BODY_DEADLINE.as_secs(),
                        bytes.len()
                    ),
                    "retry later; if it persists, check the network and GITHUB_API_URL",
                ))
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The `rel="next"` URL of a `Link` header, if any.
pub fn next_link(headers: &http::HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

fn serde_urlencoded_pair(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_next_link_only() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::LINK,
            "<https://api.github.com/repositories/1/actions/caches?per_page=100&page=2>; rel=\"next\", \
<https://api.github.com/repositories/1/actions/caches?per_page=100&page=5>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/repositories/1/actions/caches?per_page=100&page=2")
        );
        h.insert(
            http::header::LINK,
            "<https://x/y?page=1>; rel=\"prev\", <https://x/y?page=1>; rel=\"first\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn keys_are_percent_encoded() {
        assert_eq!(
            serde_urlencoded_pair(&[
                ("key", "index-hello-linux-amd64-1-f921bd05#1"),
                ("ref", "refs/heads/main")
            ]),
            "key=index-hello-linux-amd64-1-f921bd05%231&ref=refs%2Fheads%2Fmain"
        );
    }

    #[test]
    fn bad_repository_is_input() {
        let e = GitHub::new(DEFAULT_API_URL, "just-a-name", "t".into())
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 2);
    }
}
