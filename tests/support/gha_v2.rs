//! A stand-in for GitHub's Actions cache service v2 on 127.0.0.1. GitHub's
//! real service (`ACTIONS_RESULTS_URL` on a hosted runner, blobs on Azure
//! Storage) cannot be reached from here, and act's cache server speaks only
//! the retired v1 protocol, so the tests point BuildKit at this instead.
//!
//! What it serves, as the real clients use it (tonistiigi/go-actions-cache
//! `cache_v2.go`, which BuildKit's gha backend uses, and actions/toolkit
//! `packages/cache`):
//! - the twirp service `github.actions.results.api.v1.CacheService`:
//!   `CreateCacheEntry {key, version}` → `{ok, signed_upload_url}`,
//!   `FinalizeCacheEntryUpload {key, size_bytes, version}` → `{ok, entry_id}`
//!   (`entry_id` a JSON string, as protobuf's JSON mapping writes an int64),
//!   `GetCacheEntryDownloadURL {key, restore_keys, version}` →
//!   `{ok, signed_download_url, matched_key}`, `ok: false` on a miss; the key
//!   matches exactly, each restore key as a prefix (the newest entry wins;
//!   BuildKit finds its index `index-<scope>-1-<hash>#N` by the prefix
//!   `…#`); a second create of a key is the twirp error `already_exists`;
//!   errors are twirp bodies `{"code","msg"}`; a missing or wrong bearer
//!   token is `unauthenticated`;
//! - Azure block-blob uploads to the signed URL: one `PUT` with
//!   `x-ms-blob-type: BlockBlob` (the SDK's way under 1 MiB), or blocks
//!   (`PUT ?comp=block&blockid=…`) and a block list (`PUT ?comp=blocklist`);
//!   each answers 201 with `x-ms-request-id` (the Go client dereferences it);
//! - downloads from the signed URL, ranged with `x-ms-range: bytes=N-` (the
//!   SDK sends it only past offset 0);
//! - faults per RPC: 503, 429 with `Retry-After`, "full" (`ok: false` on
//!   create, what GitHub answers when the repository's cache is full), slow.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SERVICE: &str = "/twirp/github.actions.results.api.v1.CacheService/";
/// The signature of the stand-in's signed blob URLs.
const SIG: &str = "mbx-stand-in";

/// The three twirp RPCs, and the blob storage behind the signed URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rpc {
    Create,
    Finalize,
    Download,
    Blob,
}

impl Rpc {
    fn from_method(m: &str) -> Option<Rpc> {
        Some(match m {
            "CreateCacheEntry" => Rpc::Create,
            "FinalizeCacheEntryUpload" => Rpc::Finalize,
            "GetCacheEntryDownloadURL" => Rpc::Download,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// 503 `unavailable`.
    Unavailable,
    /// 429 `resource_exhausted` with `Retry-After: secs`.
    Throttled(u64),
    /// `ok: false` on create: the repository's cache is full.
    Full,
    /// Answer normally after this delay.
    Slow(Duration),
}

/// One request the stand-in answered: RPC name (or `PUT`/`GET` on a blob) and status.
#[derive(Clone, Debug)]
pub struct Call {
    pub what: String,
    pub key: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Entry {
    key: String,
    version: String,
    id: u64,
    /// Staged blocks (base64 block id → bytes) until the block list commits them.
    blocks: HashMap<String, Vec<u8>>,
    data: Option<Vec<u8>>,
    /// Set by FinalizeCacheEntryUpload.
    finalized: bool,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    faults: HashMap<Rpc, Fault>,
    calls: Vec<Call>,
}

pub struct CacheV2 {
    /// `http://127.0.0.1:PORT/`, what `ACTIONS_RESULTS_URL` holds on a runner.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl CacheV2 {
    /// Serve on an ephemeral loopback port; only `Bearer <token>` is let in.
    pub fn start(token: &str) -> CacheV2 {
        CacheV2::listen(Some(token.to_string()))
    }

    /// Any bearer token is let in (BuildKit's is the test's unsigned runtime
    /// JWT); a request without one is still refused.
    pub fn start_any_bearer() -> CacheV2 {
        CacheV2::listen(None)
    }

    fn listen(token: Option<String>) -> CacheV2 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let (st, a) = (state.clone(), addr.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (st, a, t) = (st.clone(), a.clone(), token.clone());
                std::thread::spawn(move || serve(stream, &st, &a, t.as_deref()));
            }
        });
        CacheV2 {
            url: format!("http://{addr}/"),
            state,
        }
    }

    /// From now on `rpc` answers with `fault` (None: normally).
    pub fn fault(&self, rpc: Rpc, fault: Option<Fault>) {
        let mut s = self.state.lock().unwrap();
        match fault {
            Some(f) => s.faults.insert(rpc, f),
            None => s.faults.remove(&rpc),
        };
    }

    /// Every RPC (and blob request) answers with `fault`.
    pub fn fault_all(&self, fault: Fault) {
        for r in [Rpc::Create, Rpc::Finalize, Rpc::Download, Rpc::Blob] {
            self.fault(r, Some(fault));
        }
    }

    /// Keys of finalized entries, oldest first.
    pub fn keys(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.entries
            .iter()
            .filter(|e| e.finalized)
            .map(|e| e.key.clone())
            .collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Bytes stored under finalized entries.
    pub fn stored_bytes(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.entries
            .iter()
            .filter(|e| e.finalized)
            .filter_map(|e| e.data.as_ref().map(Vec::len))
            .sum()
    }
}

// ------------------------------------------------------------------ HTTP/1.1

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn json(status: u16, v: serde_json::Value) -> Response {
    Response {
        status,
        headers: vec![("Content-Type", "application/json".into())],
        body: v.to_string().into_bytes(),
    }
}

/// A twirp error: the status its code maps to and `{"code","msg"}`.
fn twirp_error(status: u16, code: &str, msg: &str) -> Response {
    json(status, serde_json::json!({ "code": code, "msg": msg }))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let mut req = Request {
        method,
        path: path.to_string(),
        query,
        headers,
        body: Vec::new(),
    };
    if req
        .header("Expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        let _ = r.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    if req
        .header("Transfer-Encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        req.body = read_chunked(r)?;
    } else if let Some(n) = req.header("Content-Length") {
        let n: usize = n.parse().ok()?;
        let mut body = vec![0; n];
        r.read_exact(&mut body).ok()?;
        req.body = body;
    }
    Some(req)
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk).ok()?;
        if n == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

fn write_response(s: &mut TcpStream, resp: &Response, head_only: bool) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    s.write_all(out.as_bytes())?;
    if !head_only {
        s.write_all(&resp.body)?;
    }
    s.flush()
}

/// One connection, kept alive as Go's and Node's clients expect.
fn serve(stream: TcpStream, state: &Mutex<State>, addr: &str, token: Option<&str>) {
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let resp = handle(&req, state, addr, token);
        if write_response(&mut out, &resp, req.method == "HEAD").is_err() {
            return;
        }
    }
}

// ------------------------------------------------------------------ the service

fn handle(req: &Request, state: &Mutex<State>, addr: &str, token: Option<&str>) -> Response {
    let rpc = match req.path.strip_prefix(SERVICE) {
        Some(m) => Rpc::from_method(m),
        None if req.path.starts_with("/blobs/") => Some(Rpc::Blob),
        None => None,
    };
    let what = match rpc {
        Some(Rpc::Blob) => format!("{} blob", req.method),
        _ => req.path.rsplit('/').next().unwrap_or("").to_string(),
    };
    let fault = rpc.and_then(|r| state.lock().unwrap().faults.get(&r).copied());
    if let Some(Fault::Slow(d)) = fault {
        std::thread::sleep(d);
    }
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let key = body["key"].as_str().map(str::to_string);
    let resp = match (rpc, fault) {
        (None, _) => twirp_error(404, "bad_route", &format!("no handler for {}", req.path)),
        (Some(_), Some(Fault::Unavailable)) => {
            twirp_error(503, "unavailable", "injected fault: service unavailable")
        }
        (Some(_), Some(Fault::Throttled(secs))) => {
            let mut r = twirp_error(429, "resource_exhausted", "injected fault: rate limited");
            r.headers.push(("Retry-After", secs.to_string()));
            r
        }
        (Some(Rpc::Blob), _) => blob(req, state),
        (Some(rpc), fault) => {
            let given = req
                .header("Authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .filter(|t| !t.is_empty());
            if given.is_none() || (token.is_some() && given != token) {
                twirp_error(401, "unauthenticated", "missing or invalid bearer token")
            } else if req.method != "POST" {
                twirp_error(404, "bad_route", "twirp takes POST")
            } else {
                let full = matches!(fault, Some(Fault::Full));
                twirp(rpc, &body, state, addr, full)
            }
        }
    };
    state.lock().unwrap().calls.push(Call {
        what,
        key,
        status: resp.status,
    });
    resp
}

fn size_of(v: &serde_json::Value) -> Option<u64> {
    // Go sends a number; protobuf's JSON (the toolkit) writes int64 as a string.
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

fn twirp(
    rpc: Rpc,
    body: &serde_json::Value,
    state: &Mutex<State>,
    addr: &str,
    full: bool,
) -> Response {
    use serde_json::json;
    let (Some(key), Some(version)) = (body["key"].as_str(), body["version"].as_str()) else {
        return twirp_error(400, "invalid_argument", "key and version are required");
    };
    let mut s = state.lock().unwrap();
    match rpc {
        Rpc::Create => {
            if full {
                return json(200, json!({ "ok": false, "signed_upload_url": "" }));
            }
            if s.entries
                .iter()
                .any(|e| e.key == key && e.version == version)
            {
                return twirp_error(
                    409,
                    "already_exists",
                    &format!("cache entry {key} already exists"),
                );
            }
            let id = s.entries.len() as u64 + 1;
            s.entries.push(Entry {
                key: key.to_string(),
                version: version.to_string(),
                id,
                ..Entry::default()
            });
            let url = format!("http://{addr}/blobs/{id}?sv=2025-01-05&sig={SIG}");
            json(200, json!({ "ok": true, "signed_upload_url": url }))
        }
        Rpc::Finalize => {
            let Some(e) = s
                .entries
                .iter_mut()
                .find(|e| e.key == key && e.version == version && !e.finalized)
            else {
                return twirp_error(404, "not_found", &format!("no reserved entry {key}"));
            };
            let stored = e.data.as_ref().map_or(0, |d| d.len() as u64);
            if size_of(&body["size_bytes"]) != Some(stored) {
                return json(200, json!({ "ok": false, "entry_id": "0" }));
            }
            e.finalized = true;
            json(200, json!({ "ok": true, "entry_id": e.id.to_string() }))
        }
        Rpc::Download => {
            let mut keys = vec![key.to_string()];
            if let Some(r) = body["restore_keys"].as_array() {
                keys.extend(r.iter().filter_map(|k| k.as_str().map(str::to_string)));
            }
            match lookup(&s.entries, key, &keys[1..], version) {
                Some(e) => json(
                    200,
                    json!({
                        "ok": true,
                        "signed_download_url": format!("http://{addr}/blobs/{}?sv=2025-01-05&sig={SIG}", e.id),
                        "matched_key": e.key,
                    }),
                ),
                None => json(
                    200,
                    json!({ "ok": false, "signed_download_url": "", "matched_key": "" }),
                ),
            }
        }
        Rpc::Blob => unreachable!(),
    }
}

/// The exact key first; then each restore key as a prefix, the newest entry.
fn lookup<'a>(
    entries: &'a [Entry],
    key: &str,
    restore: &[String],
    version: &str,
) -> Option<&'a Entry> {
    let live = || {
        entries
            .iter()
            .filter(move |e| e.finalized && e.version == version)
    };
    if let Some(e) = live().rev().find(|e| e.key == key) {
        return Some(e);
    }
    restore
        .iter()
        .find_map(|p| live().rev().find(|e| e.key.starts_with(p.as_str())))
}

/// Azure block-blob storage behind the signed URLs.
fn blob(req: &Request, state: &Mutex<State>) -> Response {
    if req.query("sig") != Some(SIG) {
        return azure_error(403, "AuthenticationFailed");
    }
    let id: Option<u64> = req
        .path
        .strip_prefix("/blobs/")
        .and_then(|i| i.parse().ok());
    let mut s = state.lock().unwrap();
    let Some(e) = s.entries.iter_mut().find(|e| Some(e.id) == id) else {
        return azure_error(404, "BlobNotFound");
    };
    match (req.method.as_str(), req.query("comp")) {
        ("PUT", Some("block")) => {
            let Some(bid) = req.query("blockid") else {
                return azure_error(400, "InvalidQueryParameterValue");
            };
            e.blocks.insert(bid.to_string(), req.body.clone());
            created()
        }
        ("PUT", Some("blocklist")) => {
            let list = String::from_utf8_lossy(&req.body).into_owned();
            let mut data = Vec::new();
            for id in block_ids(&list) {
                let Some(b) = e.blocks.get(&id) else {
                    return azure_error(400, "InvalidBlockList");
                };
                data.extend_from_slice(b);
            }
            e.data = Some(data);
            e.blocks.clear();
            created()
        }
        ("PUT", None) => {
            if req.header("x-ms-blob-type") != Some("BlockBlob") {
                return azure_error(400, "MissingRequiredHeader");
            }
            e.data = Some(req.body.clone());
            created()
        }
        ("GET", None) | ("HEAD", None) if e.finalized => {
            download(req, e.data.as_deref().unwrap_or(&[]))
        }
        ("GET", None) | ("HEAD", None) => azure_error(404, "BlobNotFound"),
        _ => azure_error(400, "UnsupportedHttpVerb"),
    }
}

fn block_ids(xml: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if matches!(tag, "Latest" | "Committed" | "Uncommitted") {
            if let Some(close) = rest.find('<') {
                ids.push(rest[..close].trim().to_string());
            }
        }
    }
    ids
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-0000-0000-{:012x}",
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn created() -> Response {
    Response {
        status: 201,
        headers: vec![
            ("x-ms-request-id", request_id()),
            ("x-ms-version", "2025-01-05".into()),
            ("ETag", "\"0x8D0000000000000\"".into()),
            ("Last-Modified", "Mon, 30 Nov 2026 00:00:00 GMT".into()),
        ],
        body: Vec::new(),
    }
}

fn azure_error(status: u16, code: &str) -> Response {
    Response {
        status,
        headers: vec![
            ("x-ms-request-id", request_id()),
            ("x-ms-error-code", code.to_string()),
            ("Content-Type", "application/xml".into()),
        ],
        body: format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>stand-in</Message></Error>"
        )
        .into_bytes(),
    }
}

/// The whole blob, or from `x-ms-range`/`Range: bytes=N-[M]` on.
fn download(req: &Request, data: &[u8]) -> Response {
    let range = req
        .header("x-ms-range")
        .or_else(|| req.header("Range"))
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| {
            let (a, b) = r.split_once('-')?;
            let start: usize = a.parse().ok()?;
            let end: usize = if b.is_empty() {
                data.len().checked_sub(1)?
            } else {
                b.parse::<usize>().ok()?.min(data.len().checked_sub(1)?)
            };
            Some((start, end))
        });
    let mut headers = vec![
        ("x-ms-request-id", request_id()),
        ("x-ms-blob-type", "BlockBlob".into()),
        ("Content-Type", "application/octet-stream".into()),
        ("Accept-Ranges", "bytes".into()),
        ("ETag", "\"0x8D0000000000000\"".into()),
    ];
    match range {
        Some((start, end)) if start <= end && end < data.len() => {
            headers.push((
                "Content-Range",
                format!("bytes {start}-{end}/{}", data.len()),
            ));
            Response {
                status: 206,
                headers,
                body: data[start..=end].to_vec(),
            }
        }
        Some(_)
            if req.header("x-ms-range").or(req.header("Range")).is_some() && !data.is_empty() =>
        {
            azure_error(416, "InvalidRange")
        }
        _ => Response {
            status: 200,
            headers,
            body: data.to_vec(),
        },
    }
}

// ------------------------------------------------------------------ a client for the unit tests

/// A tiny blocking HTTP/1.1 client (one request per connection).
pub fn request(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = TcpStream::connect(host).expect("connect to the stand-in");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut hs = Vec::new();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().unwrap();
        }
        hs.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut b = vec![0; len];
    if method != "HEAD" {
        r.read_exact(&mut b).unwrap();
    }
    (code, hs, b)
}

/// POST one twirp RPC as JSON with a bearer token; (status, JSON body).
pub fn rpc(
    url: &str,
    method: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let endpoint = format!("{}{}{method}", url.trim_end_matches('/'), SERVICE);
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a));
    }
    let (code, _, b) = request(&endpoint, "POST", &h, body.to_string().as_bytes());
    (code, serde_json::from_slice(&b).unwrap_or_default())
}
