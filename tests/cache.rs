//! `mbx cache usage|prune` against a STAND-IN FOR GITHUB: github.com cannot be
//! reached from these machines, so an in-process HTTP server on 127.0.0.1
//! plays the GitHub REST endpoints of the Actions cache with the documented
//! shapes (docs.github.com/rest/actions/cache):
//! - `GET  /repos/{o}/{r}/actions/caches` (`total_count`, `actions_caches[]`),
//!   paged with `Link: <…>; rel="next"` at 5 entries a page, the next pages
//!   under `/repositories/{id}/…` as GitHub writes them;
//! - `GET  /repos/{o}/{r}/actions/cache/usage`;
//! - `DELETE /repos/{o}/{r}/actions/caches/{id}` (204) and
//!   `DELETE /repos/{o}/{r}/actions/caches?key=K&ref=R` (200 + the deleted list);
//! - 401 without a token, 403 "Resource not accessible by integration" when a
//!   read-only token deletes; an optional `/api/v3` prefix (GitHub Enterprise Server).
//!
//! The cache keys and sizes in its fixtures are real: BuildKit's entries from
//! a gha export through act's cache server (tests/data/gha-cache/README.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

mod support;
use support::{mbx, run, stderr, stdout};

const READ_TOKEN: &str = "ghs_readonly_0123456789abcdef";
const WRITE_TOKEN: &str = "ghs_write_fedcba9876543210";
const LIMITED_TOKEN: &str = "ghs_ratelimited_00000000";
const PAGE: usize = 5;

/// Status line, extra headers, body.
type Reply = (String, Vec<(String, String)>, String);

#[derive(Default)]
struct State {
    entries: Vec<Value>,
    /// What `/actions/cache/usage` reports instead of the entries' sum.
    usage_bytes: Option<u64>,
    /// act's cache store (`--cache-server-path`): its entries are listed too,
    /// as GitHub lists what its cache service holds.
    act_store: Option<std::path::PathBuf>,
    /// Seconds to date act's entries back by (as if the exports ran earlier).
    act_age_secs: i64,
    /// "METHOD path?query" of every request, in order.
    requests: Vec<String>,
}

struct StandIn {
    url: String,
    state: Arc<Mutex<State>>,
}

impl StandIn {
    fn start(entries: Vec<Value>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            entries,
            ..State::default()
        }));
        let st = state.clone();
        let base = url.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                let base = base.clone();
                std::thread::spawn(move || serve(conn, &st, &base));
            }
        });
        StandIn { url, state }
    }

    fn keys(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.entries
            .iter()
            .map(|e| {
                format!(
                    "{}@{}",
                    e["key"].as_str().unwrap(),
                    e["ref"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(conn: TcpStream, st: &Mutex<State>, base: &str) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut auth = None;
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "authorization" => auth = Some(v.trim().to_string()),
                "content-length" => len = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        let body = String::from_utf8_lossy(&body).to_string();
        let (status, headers, body) =
            match v2_cache_service(st, base, &method, &target, auth.as_deref(), &body) {
                Some(r) => r,
                None => respond(st, base, &method, &target, auth.as_deref()),
            };
        let mut out = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        if conn.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

const RUNTIME_TOKEN: &str = "runtime-jwt-for-the-v2-stand-in";

/// The STAND-IN FOR GITHUB'S v2 CACHE SERVICE (`ACTIONS_RESULTS_URL`, twirp),
/// which cannot exist here either: `GetCacheEntryDownloadURL` answers with a
/// "signed" URL on this server, which serves the real index contents captured
/// in tests/data/gha-cache.
fn v2_cache_service(
    st: &Mutex<State>,
    base: &str,
    method: &str,
    target: &str,
    auth: Option<&str>,
    body: &str,
) -> Option<Reply> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/gha-cache");
    if method == "POST"
        && target == "/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL"
    {
        st.lock()
            .unwrap()
            .requests
            .push(format!("{method} {target}"));
        if auth != Some(&format!("Bearer {RUNTIME_TOKEN}")) {
            return Some(error("401 Unauthorized", "invalid runtime token"));
        }
        let req: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let captured: Vec<Value> = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/act-cache-entries.json")).unwrap(),
        )
        .unwrap();
        let hit = captured
            .iter()
            .find(|e| e["key"] == req["key"] && e["version"] == req["version"]);
        let answer = match hit {
            Some(e) => json!({"ok": true, "matched_key": e["key"],
                "signed_download_url": format!("{base}/blob/{}?sv=2025-01-05&sig=standin", e["id"])}),
            None => json!({"ok": false}),
        };
        return Some(("200 OK".into(), vec![], answer.to_string()));
    }
    let id = target
        .strip_prefix("/blob/")?
        .split('?')
        .next()?
        .to_string();
    st.lock()
        .unwrap()
        .requests
        .push(format!("{method} {target}"));
    if auth.is_some() {
        return Some(error(
            "400 Bad Request",
            "credentials sent to the storage URL",
        ));
    }
    Some(
        match std::fs::read_to_string(format!("{dir}/index-content-{id}.json")) {
            Ok(c) => ("200 OK".into(), vec![], c),
            Err(_) => error("404 Not Found", "BlobNotFound"),
        },
    )
}

fn query(target: &str) -> (String, Vec<(String, String)>) {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let pairs = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), unpercent(v))
        })
        .collect();
    (path.to_string(), pairs)
}

fn unpercent(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn error(status: &str, message: &str) -> Reply {
    (
        status.to_string(),
        vec![],
        json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest/actions/cache",
            "status": status.split(' ').next().unwrap(),
        })
        .to_string(),
    )
}

fn respond(st: &Mutex<State>, base: &str, method: &str, target: &str, auth: Option<&str>) -> Reply {
    let mut s = st.lock().unwrap();
    s.requests.push(format!("{method} {target}"));
    let token = auth
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
        })
        .unwrap_or("");
    if token == LIMITED_TOKEN {
        return error(
            "403 Forbidden",
            "API rate limit exceeded for installation ID 1. If you reach out to GitHub Support for help, please include the request ID",
        );
    }
    if token != READ_TOKEN && token != WRITE_TOKEN {
        return error("401 Unauthorized", "Bad credentials");
    }
    let (path, q) = query(target);
    let path = path.strip_prefix("/api/v3").unwrap_or(&path).to_string();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let list_path = path == "/repos/o/r/actions/caches" || path == "/repositories/1/actions/caches";
    let mut all = s.entries.clone();
    if let Some(store) = &s.act_store {
        all.extend(act_entries(store, s.act_age_secs));
    }
    match (method, list_path) {
        ("GET", true) => {
            let page: usize = get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let per: usize = get("per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(30)
                .min(PAGE);
            let total = all.len();
            let chunk: Vec<Value> = all
                .iter()
                .skip((page - 1) * per)
                .take(per)
                .cloned()
                .collect();
            let last = total.div_ceil(per).max(1);
            let mut links = Vec::new();
            let prefix = if target.starts_with("/api/v3") {
                "/api/v3"
            } else {
                ""
            };
            let at = |n: usize| {
                format!("<{base}{prefix}/repositories/1/actions/caches?per_page={per}&page={n}>")
            };
            if page < last {
                links.push(format!("{}; rel=\"next\"", at(page + 1)));
                links.push(format!("{}; rel=\"last\"", at(last)));
            }
            if page > 1 {
                links.push(format!("{}; rel=\"prev\"", at(page - 1)));
                links.push(format!("{}; rel=\"first\"", at(1)));
            }
            let headers = if links.is_empty() {
                vec![]
            } else {
                vec![("link".to_string(), links.join(", "))]
            };
            (
                "200 OK".into(),
                headers,
                json!({"total_count": total, "actions_caches": chunk}).to_string(),
            )
        }
        ("DELETE", true) => {
            if token != WRITE_TOKEN {
                return error("403 Forbidden", "Resource not accessible by integration");
            }
            let key = get("key").unwrap_or_default();
            let r = get("ref");
            let (gone, keep): (Vec<Value>, Vec<Value>) = s.entries.drain(..).partition(|e| {
                e["key"] == key.as_str() && r.as_deref().is_none_or(|r| e["ref"] == r)
            });
            s.entries = keep;
            if gone.is_empty() {
                return error("404 Not Found", "Not Found");
            }
            (
                "200 OK".into(),
                vec![],
                json!({"total_count": gone.len(), "actions_caches": gone}).to_string(),
            )
        }
        _ => {
            if method == "GET" && path == "/repos/o/r/actions/cache/usage" {
                let bytes: u64 = s.usage_bytes.unwrap_or_else(|| {
                    all.iter()
                        .map(|e| e["size_in_bytes"].as_u64().unwrap())
                        .sum()
                });
                return (
                    "200 OK".into(),
                    vec![],
                    json!({"full_name": "o/r", "active_caches_size_in_bytes": bytes,
                           "active_caches_count": all.len()})
                    .to_string(),
                );
            }
            if let (Some(id), "DELETE") = (path.strip_prefix("/repos/o/r/actions/caches/"), method)
            {
                if token != WRITE_TOKEN {
                    return error("403 Forbidden", "Resource not accessible by integration");
                }
                let id: i64 = id.parse().unwrap_or(-1);
                let before = s.entries.len();
                s.entries.retain(|e| e["id"] != id);
                if s.entries.len() == before {
                    return error("404 Not Found", "Not Found");
                }
                return ("204 No Content".into(), vec![], String::new());
            }
            error("404 Not Found", "Not Found")
        }
    }
}

/// The completed entries in act's cache store (a bolt file whose records are
/// JSON: `{"id":…,"key":…,"version":…,"cacheSize":…,"complete":…,"usedAt":…,"createdAt":…}`),
/// in the REST API's shape, ids offset by 1000.
fn act_entries(store: &std::path::Path, age_secs: i64) -> Vec<Value> {
    let Ok(bytes) = std::fs::read(store.join("bolt.db")) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut by_id = std::collections::BTreeMap::new();
    for (at, _) in text.match_indices("{\"id\":") {
        let Some(Ok(v)) = serde_json::Deserializer::from_str(&text[at..])
            .into_iter::<Value>()
            .next()
        else {
            continue;
        };
        if v["complete"] == true && v["key"].is_string() {
            by_id.insert(v["id"].as_i64().unwrap(), v);
        }
    }
    by_id
        .into_values()
        .map(|e| {
            let t = |k: &str| {
                iso(chrono::DateTime::from_timestamp(e[k].as_i64().unwrap() - age_secs, 0).unwrap())
            };
            json!({"id": 1000 + e["id"].as_i64().unwrap(), "ref": "refs/heads/main", "key": e["key"],
                   "version": e["version"], "last_accessed_at": t("usedAt"), "created_at": t("createdAt"),
                   "size_in_bytes": e["cacheSize"]})
        })
        .collect()
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The real entries of tests/data/gha-cache on refs/heads/main, used two hours
/// ago; plus a pull request's arm64 index and two of its blobs unused for 9
/// days, and another tool's (npm) entry unused for 30 days.
fn fixtures() -> Vec<Value> {
    let now = chrono::Utc::now();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/gha-cache/act-cache-entries.json"
    ))
    .unwrap();
    let captured: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for (i, e) in captured.iter().enumerate() {
        let t = now - chrono::Duration::minutes(130 - i as i64);
        out.push(json!({
            "id": e["id"], "ref": "refs/heads/main", "key": e["key"], "version": e["version"],
            "last_accessed_at": iso(t), "created_at": iso(t), "size_in_bytes": e["cacheSize"],
        }));
    }
    let old = iso(now - chrono::Duration::days(9));
    let pr = |id: i64, key: &str, size: u64| {
        json!({"id": id, "ref": "refs/pull/42/merge", "key": key, "version": captured[0]["version"],
               "last_accessed_at": old, "created_at": old, "size_in_bytes": size})
    };
    out.push(pr(201, "index-hello-linux-arm64-1-f921bd05#1", 3176));
    out.push(pr(
        202,
        "buildkit-blob-1-sha256:6ea3f9699a3c0280bbc4ca2d2a4b336f53bd90a2753123c35fc31f2e1d516c9b",
        1_029_834,
    ));
    out.push(pr(
        203,
        "buildkit-blob-1-sha256:3735643e4460436e8b2f7845ab268feebbd3f6da2eadd5349f24db0444067779",
        76_665,
    ));
    let ancient = iso(now - chrono::Duration::days(30));
    out.push(json!({"id": 300, "ref": "refs/heads/main",
        "key": "Linux-node-958aff96db2d75d67787d1e634ae70b659de937b",
        "version": "73885106f58cc52a7df9ec4d4a5622a5614813162cb516c759a30af6bf56e6f0",
        "last_accessed_at": ancient, "created_at": ancient, "size_in_bytes": 5000}));
    out
}

fn cache_cmd(server: &StandIn, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = mbx();
    c.arg("cache").args(args);
    c.env("GITHUB_API_URL", &server.url)
        .env("GITHUB_REPOSITORY", "o/r")
        .env_remove("GITHUB_TOKEN")
        .env_remove("MBX_TEST_TOKEN");
    // Outside a workflow: no cache service to read index contents from.
    for v in [
        "ACTIONS_CACHE_URL",
        "ACTIONS_RESULTS_URL",
        "ACTIONS_RUNTIME_TOKEN",
        "GITHUB_REF",
    ] {
        c.env_remove(v);
    }
    if let Some(t) = token {
        c.env("GITHUB_TOKEN", t);
    }
    run(c)
}

#[test]
fn usage_pages_through_every_entry_and_sums_per_scope_and_ref() {
    let gh = StandIn::start(fixtures());
    let o = cache_cmd(&gh, Some(READ_TOKEN), &["usage", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let u: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let total: u64 = fixtures()
        .iter()
        .map(|e| e["size_in_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(u["total_bytes"], total);
    assert_eq!(u["total_count"], 22);
    assert_eq!(u["repository"], "o/r");
    let scope = |name: &str| -> Value {
        u["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["scope"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no scope {name} in {u:#}"))
    };
    let amd = scope("hello-linux-amd64");
    assert_eq!(amd["platform"], "linux/amd64");
    assert_eq!(amd["indexes"]["count"], 2);
    assert_eq!(amd["superseded"], 1);
    let arm = scope("hello-linux-arm64");
    assert_eq!(arm["indexes"]["count"], 2, "main and the pull request");
    assert_eq!(u["unattributed_blobs"]["count"], 17);
    assert_eq!(u["other"]["count"], 1);
    let refs: Vec<&str> = u["refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["refs/heads/main", "refs/pull/42/merge"]);

    // 22 entries at 5 a page: 5 list pages, the later ones by GitHub's Link URLs.
    let reqs = gh.requests();
    let lists: Vec<&String> = reqs
        .iter()
        .filter(|r| r.contains("/actions/caches"))
        .collect();
    assert_eq!(lists.len(), 5, "{reqs:#?}");
    assert_eq!(lists[0], "GET /repos/o/r/actions/caches?per_page=100");
    assert!(
        lists[4].ends_with("/repositories/1/actions/caches?per_page=5&page=5"),
        "{reqs:#?}"
    );

    // The human form.
    let o = cache_cmd(&gh, Some(READ_TOKEN), &["usage"]);
    let text = stdout(&o);
    assert!(
        text.starts_with("cache   o/r: 3.3 MiB of 10.0 GiB (0%), 22 entries\n"),
        "{text}"
    );
    assert!(text.contains("hello-linux-amd64"), "{text}");
    assert!(text.contains("2 (1 superseded)"), "{text}");
    assert!(!text.contains(READ_TOKEN) && !stderr(&o).contains(READ_TOKEN));

    // A repository with a larger or smaller limit.
    let o = cache_cmd(
        &gh,
        Some(READ_TOKEN),
        &["usage", "--limit-gb", "0.0035", "--json"],
    );
    let u: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(u["limit_bytes"], 3_758_096);
    let o = cache_cmd(&gh, Some(READ_TOKEN), &["usage", "--limit-gb", "0.0035"]);
    assert!(
        stdout(&o).contains("of 3.6 MiB (92%), 22 entries — above 80%, eviction near"),
        "{}",
        stdout(&o)
    );
    let o = cache_cmd(&gh, Some(READ_TOKEN), &["usage", "--limit-gb", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn prune_is_a_dry_run_until_apply_and_deletes_only_stale_buildkit_entries() {
    let gh = StandIn::start(fixtures());
    let before = gh.keys();

    let o = cache_cmd(&gh, Some(WRITE_TOKEN), &["prune", "--older-than", "7d"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("would delete index-hello-linux-amd64-1-f921bd05#1  refs/heads/main"),
        "{text}"
    );
    assert!(text.contains("(superseded by #2)"), "{text}");
    assert!(text.contains("dry run: 4 entries"), "{text}");
    assert!(
        !text.contains("Linux-node"),
        "never another tool's keys: {text}"
    );
    assert_eq!(gh.keys(), before, "a dry run deletes nothing");
    assert!(gh.requests().iter().all(|r| !r.starts_with("DELETE")));

    let o = cache_cmd(
        &gh,
        Some(WRITE_TOKEN),
        &["prune", "--older-than", "7d", "--apply"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("deleted 4 entries"), "{}", stdout(&o));
    let after = gh.keys();
    let gone: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
    assert_eq!(
        gone,
        [
            "index-hello-linux-amd64-1-f921bd05#1@refs/heads/main",
            "index-hello-linux-arm64-1-f921bd05#1@refs/pull/42/merge",
            "buildkit-blob-1-sha256:6ea3f9699a3c0280bbc4ca2d2a4b336f53bd90a2753123c35fc31f2e1d516c9b@refs/pull/42/merge",
            "buildkit-blob-1-sha256:3735643e4460436e8b2f7845ab268feebbd3f6da2eadd5349f24db0444067779@refs/pull/42/merge",
        ]
    );
    assert!(after.iter().any(|k| k.starts_with("Linux-node")));
    let deletes: Vec<String> = gh
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("DELETE"))
        .collect();
    assert_eq!(
        deletes,
        [
            "DELETE /repos/o/r/actions/caches?key=index-hello-linux-amd64-1-f921bd05%231&ref=refs%2Fheads%2Fmain",
            "DELETE /repos/o/r/actions/caches?key=index-hello-linux-arm64-1-f921bd05%231&ref=refs%2Fpull%2F42%2Fmerge",
            "DELETE /repos/o/r/actions/caches/202",
            "DELETE /repos/o/r/actions/caches/203",
        ]
    );

    // Nothing stale is left.
    let o = cache_cmd(&gh, Some(WRITE_TOKEN), &["prune", "--apply"]);
    assert!(
        stdout(&o).contains("nothing to prune in o/r"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn prune_filters_by_ref_and_scope() {
    let gh = StandIn::start(fixtures());
    let o = cache_cmd(&gh, Some(READ_TOKEN), &["prune", "--ref", "main", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let keys: Vec<&str> = p["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["index-hello-linux-amd64-1-f921bd05#1"]);
    assert_eq!(p["dry_run"], true);

    let o = cache_cmd(
        &gh,
        Some(READ_TOKEN),
        &["prune", "--scope", "*-amd64", "--json"],
    );
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["delete"].as_array().unwrap().len(), 1);

    let o = cache_cmd(
        &gh,
        Some(READ_TOKEN),
        &["prune", "--scope", "nothing-*", "--json"],
    );
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["delete"].as_array().unwrap().len(), 0);

    // globset's alternatives; a glob that does not compile is bad input.
    let o = cache_cmd(
        &gh,
        Some(READ_TOKEN),
        &["prune", "--scope", "hello-linux-{s390x,amd64}", "--json"],
    );
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["delete"].as_array().unwrap().len(), 1);
    let o = cache_cmd(
        &gh,
        Some(READ_TOKEN),
        &["prune", "--scope", "hello-[", "--json"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn forbidden_names_the_permission_and_never_prints_the_token() {
    let gh = StandIn::start(fixtures());
    let before = gh.keys();
    let o = cache_cmd(&gh, Some(READ_TOKEN), &["prune", "--apply"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("403 Forbidden: Resource not accessible by integration"),
        "{e}"
    );
    assert!(
        e.contains("help: the token lacks `actions: write`: add `permissions: actions: write`"),
        "{e}"
    );
    assert!(!e.contains(READ_TOKEN) && !stdout(&o).contains(READ_TOKEN));
    assert_eq!(gh.keys(), before);
}

#[test]
fn missing_or_bad_token_and_bad_input() {
    let gh = StandIn::start(fixtures());
    let o = cache_cmd(&gh, None, &["usage"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no GitHub token: $GITHUB_TOKEN is not set"),
        "{}",
        stderr(&o)
    );

    let o = cache_cmd(&gh, Some(LIMITED_TOKEN), &["usage"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("rate limit"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("actions: read"),
        "a rate limit is not a permission"
    );

    let o = cache_cmd(&gh, Some("wrong"), &["usage"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("401: Bad credentials"),
        "{}",
        stderr(&o)
    );

    // --token-env names another variable.
    let mut c = mbx();
    c.args([
        "cache",
        "usage",
        "--token-env",
        "MBX_TEST_TOKEN",
        "--repo",
        "o/r",
    ])
    .env("GITHUB_API_URL", &gh.url)
    .env_remove("GITHUB_TOKEN")
    .env("MBX_TEST_TOKEN", READ_TOKEN);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = cache_cmd(&gh, Some(READ_TOKEN), &["prune", "--older-than", "7 days"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--older-than `7 days` is not an age"));

    let o = cache_cmd(&gh, Some(READ_TOKEN), &["usage", "--repo", "o/r/x"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn enterprise_server_api_prefix_is_honoured() {
    let gh = StandIn::start(fixtures());
    let mut c = mbx();
    c.args(["cache", "usage", "--json"])
        .env("GITHUB_API_URL", format!("{}/api/v3", gh.url))
        .env("GITHUB_REPOSITORY", "o/r")
        .env("GITHUB_TOKEN", READ_TOKEN);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let u: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(u["total_count"], 22);
    let reqs = gh.requests();
    assert!(
        reqs.iter()
            .all(|r| r.split(' ').nth(1).unwrap().starts_with("/api/v3/")),
        "{reqs:#?}"
    );
    assert!(
        !reqs.iter().any(|r| r.contains("/api/v3/api/v3")),
        "{reqs:#?}"
    );
}

/// `mbx ci` in a GitHub Actions job, for real: act runs the job on this host
/// (`-P ubuntu-latest=-self-hosted`) with its own cache server on loopback, so
/// the build's `type=gha` cache export really goes through the v1 cache
/// protocol (unsigned runtime JWT, as BuildKit does not check the signature);
/// only the REST API is the stand-in for GitHub, reporting 9 GB used so the
/// run must warn. The job builds twice (a file of the context changes), so the
/// scope has a superseded index, then runs `mbx cache prune` (dry run), which
/// reads both indexes back from act's cache service.
#[test]
fn ci_on_github_reports_cache_usage_and_warns_above_80_percent() {
    support::require_builder();
    let d = tempfile::tempdir().unwrap();
    let npm = fixtures().pop().unwrap();
    assert_eq!(
        npm["key"],
        "Linux-node-958aff96db2d75d67787d1e634ae70b659de937b"
    );
    let gh = StandIn::start(vec![npm]);
    {
        let mut st = gh.state.lock().unwrap();
        st.usage_bytes = Some(9 * 1024 * 1024 * 1024);
        st.act_store = Some(d.path().join("actcache"));
        // Two hours earlier: older than the hour prune leaves to in-flight exports.
        st.act_age_secs = 7200;
    }
    let repo = d.path().join("repo");
    let wf = repo.join(".github/workflows");
    std::fs::create_dir_all(&wf).unwrap();
    let record = d.path().join("run.json");
    let out = d.path().join("out");
    let ctx = d.path().join("hello");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}/mbx/busybox:latest\nCOPY stamp /stamp\nRUN cat /stamp > /copy\n",
            support::REGISTRY
        ),
    )
    .unwrap();
    let pruned = d.path().join("prune.json");
    std::fs::write(
        wf.join("ci.yml"),
        format!(
            r#"name: mbx-ci-cache
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: mbx ci with the gha cache
        shell: bash
        env:
          GITHUB_TOKEN: {READ_TOKEN}
          GITHUB_API_URL: {api}
          GITHUB_REPOSITORY: o/r
          MBX_CONFIG: {config}
        run: |
          set -euo pipefail
          b64() {{ printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }}
          now=$(date +%s)
          export ACTIONS_RUNTIME_TOKEN="$(b64 '{{"alg":"none","typ":"JWT"}}').$(b64 "{{\"ac\":\"[{{\\\"Scope\\\":\\\"refs/heads/main\\\",\\\"Permission\\\":3}}]\",\"nbf\":$((now-60)),\"exp\":$((now+3600))}}")."
          echo one > {ctx}/stamp
          {mbx} ci --cache gha --platforms linux/amd64 --context {ctx} --output {out}
          echo two > {ctx}/stamp
          {mbx} ci --cache gha --platforms linux/amd64 --context {ctx} --output {out} --json {record}
          {mbx} cache prune --json > {pruned}
"#,
            api = gh.url,
            config = support::chain_dir().join("mbx.toml").display(),
            mbx = env!("CARGO_BIN_EXE_mbx"),
            ctx = ctx.display(),
            out = out.display(),
            record = record.display(),
            pruned = pruned.display(),
        ),
    )
    .unwrap();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "t",
    ]);
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-q",
        "-m",
        "wf",
    ]);
    let o = std::process::Command::new("act")
        .args([
            "push",
            "-P",
            "ubuntu-latest=-self-hosted",
            "--cache-server-addr",
            "127.0.0.1",
        ])
        .arg("--cache-server-path")
        .arg(d.path().join("actcache"))
        .env("ACT_DISABLE_VERSION_CHECK", "1")
        .current_dir(&repo)
        .output()
        .expect("act on PATH (scripts/chain-up installs it)");
    let log = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    eprintln!("{log}");
    assert!(o.status.success(), "the act job failed");
    // The gha export really went through act's cache server: its store holds
    // the scope's index entry.
    let store = std::fs::read(d.path().join("actcache/bolt.db")).unwrap();
    let store = String::from_utf8_lossy(&store);
    assert!(
        store.contains("\"key\":\"index-hello-linux-amd64-1-"),
        "act's cache server holds no index of scope hello-linux-amd64"
    );
    assert!(!log.contains(READ_TOKEN), "the token is never printed");

    // The terminal report's cache section, this run's scope marked.
    assert!(
        log.contains("cache   o/r: 9.0 GiB of 10.0 GiB (90%), "),
        "cache section"
    );
    assert!(log.contains(" entries — above 80%, eviction near"));
    assert!(
        log.contains("hello-linux-amd64 *"),
        "this run's scope is marked"
    );
    // The annotation, as a workflow command (act prints it as a warning).
    assert!(
        log.contains(
            "::warning title=mbx cache::GitHub Actions cache of o/r at 90%25 of its 10.0 GiB limit"
        ),
        "warning annotation (a workflow command, % escaped as %25)"
    );

    let r: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(r["cache"]["repository"], "o/r");
    assert_eq!(r["cache"]["total_bytes"], 9u64 * 1024 * 1024 * 1024);
    assert_eq!(r["cache"]["run_scopes"], json!(["hello-linux-amd64"]));
    // The index was read back through act's v1 cache service, so its blobs
    // are the scope's own, and every blob is accounted for.
    assert_eq!(r["cache"]["attributed"], true, "{:#}", r["cache"]);
    let amd = r["cache"]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == "hello-linux-amd64")
        .unwrap();
    assert!(amd["blobs"]["count"].as_u64().unwrap() >= 1, "{amd:#}");
    assert!(amd["blobs"]["bytes"].as_u64().unwrap() > 1000, "{amd:#}");
    assert_eq!(
        r["cache"]["unattributed_blobs"]["count"], 0,
        "{:#}",
        r["cache"]
    );
    assert_eq!(r["cache"]["other"]["count"], 1);
    assert!(r["verified"].as_bool().unwrap());
    assert!(gh
        .requests()
        .iter()
        .any(|q| q.starts_with("GET /repos/o/r/actions/cache/usage")));

    // The dry run: the first export's index is superseded; the blobs it alone
    // named go with it, and none the second index names.
    let p: Value = serde_json::from_slice(&std::fs::read(&pruned).unwrap()).unwrap();
    assert_eq!(p["dry_run"], true);
    let del = p["delete"].as_array().unwrap();
    let first = &del[0];
    let key = first["key"].as_str().unwrap();
    assert!(
        key.starts_with("index-hello-linux-amd64-1-") && key.ends_with("#1"),
        "{p:#}"
    );
    assert_eq!(first["reason"], "superseded by #2");
    let act_blobs = |seq: &str| -> Vec<String> {
        let e = act_entries(&d.path().join("actcache"), 0)
            .into_iter()
            .find(|e| {
                e["key"]
                    .as_str()
                    .unwrap()
                    .starts_with("index-hello-linux-amd64-")
                    && e["key"].as_str().unwrap().ends_with(seq)
            })
            .unwrap();
        let id = e["id"].as_i64().unwrap() - 1000;
        let c: Value = serde_json::from_slice(
            &std::fs::read(d.path().join(format!("actcache/cache/{id:02x}/{id}"))).unwrap(),
        )
        .unwrap();
        c["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| format!("buildkit-blob-1-{}", l["blob"].as_str().unwrap()))
            .collect()
    };
    let (one, two) = (act_blobs("#1"), act_blobs("#2"));
    let blobs: Vec<&str> = del[1..]
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert!(!blobs.is_empty(), "{p:#}");
    for b in &blobs {
        assert!(one.iter().any(|k| k == b), "{b} not named by #1");
        assert!(!two.iter().any(|k| k == b), "{b} is still used by #2");
    }
    assert_eq!(
        blobs.len(),
        one.iter().filter(|b| !two.contains(b)).count(),
        "every blob only #1 used"
    );
}

/// Inside a workflow on github.com, usage and prune read the indexes through
/// the v2 cache service (here its stand-in): blobs are attributed to scopes,
/// and prune deletes exactly the blobs only the pruned indexes used.
#[test]
fn in_a_workflow_index_contents_attribute_blobs_and_make_prune_exact() {
    let gh = StandIn::start(fixtures());
    let with_v2 = |args: &[&str]| {
        let mut c = mbx();
        c.arg("cache").args(args);
        c.env("GITHUB_API_URL", &gh.url)
            .env("GITHUB_REPOSITORY", "o/r")
            .env("GITHUB_TOKEN", WRITE_TOKEN)
            .env("ACTIONS_RESULTS_URL", format!("{}/", gh.url))
            .env("ACTIONS_CACHE_SERVICE_V2", "True")
            .env("ACTIONS_CACHE_URL", "http://127.0.0.1:9/")
            .env("ACTIONS_RUNTIME_TOKEN", RUNTIME_TOKEN)
            .env("GITHUB_REF", "refs/pull/42/merge");
        run(c)
    };
    let o = with_v2(&["usage", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let u: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(u["attributed"], true);
    let blobs = |scope: &str| {
        u["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["scope"] == scope)
            .unwrap()["blobs"]["count"]
            .as_u64()
            .unwrap()
    };
    // amd64's two index versions name 9 blobs of their own; arm64's index
    // (on main and on the pull request) names 5 on main and 2 PR copies; one
    // blob both platforms use is shared.
    assert_eq!(blobs("hello-linux-amd64"), 9);
    assert_eq!(blobs("hello-linux-arm64"), 7);
    assert_eq!(u["shared_blobs"]["count"], 1);
    assert_eq!(u["unattributed_blobs"]["count"], 0);
    assert!(
        gh.requests().iter().any(|r| r.starts_with("GET /blob/7?")),
        "the index content came from the signed URL"
    );

    let o = with_v2(&["prune", "--older-than", "7d", "--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<i64> = p["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    // amd64 #1 and the PR's stale index; the 4 blobs only amd64 #1 used; the
    // PR's 2 blob copies.
    assert_eq!(ids, [7, 201, 3, 4, 5, 6, 202, 203]);
    assert_eq!(p["deleted"], 8);
    let left = gh.keys();
    assert_eq!(left.len(), 22 - 8);
    assert!(left.iter().any(|k| k.starts_with("Linux-node")));
}

/// A STAND-IN FOR A BROKEN GITHUB on loopback (github.com cannot be reached
/// here): every request gets a 200 whose JSON body never ends. `mbx cache
/// usage` stops at the cap with one error naming it, exit 1, in bounded time.
#[test]
fn an_endless_answer_is_refused_at_the_cap() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut w = conn;
                let _ = w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"actions_caches\": [",
                );
                let chunk = vec![b' '; 64 * 1024];
                // 1 GiB at most, should mbx never hang up.
                for _ in 0..16_384 {
                    if w.write_all(&chunk).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut c = mbx();
    c.args(["cache", "usage", "--repo", "o/r"])
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_TOKEN", READ_TOKEN);
    for v in [
        "ACTIONS_CACHE_URL",
        "ACTIONS_RESULTS_URL",
        "ACTIONS_RUNTIME_TOKEN",
    ] {
        c.env_remove(v);
    }
    let started = std::time::Instant::now();
    let o = run(c);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "larger than {} bytes",
            mbx::gha_cache::github::MAX_BODY_BYTES
        )),
        "{err}"
    );
    assert!(err.contains("GITHUB_API_URL"), "{err}");
    assert!(!err.contains(READ_TOKEN));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
