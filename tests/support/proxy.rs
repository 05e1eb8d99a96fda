//! A small HTTP/1.1 proxy on 127.0.0.1 in front of the real loopback registry,
//! for what the real registry cannot do on demand:
//! - stand in for a token-authenticated registry such as GHCR (a bearer
//!   challenge, a token endpoint checking basic credentials, bearer-only
//!   reads). GHCR's real token service cannot be reached from here;
//! - inject faults: 503, 429 with Retry-After, or a reset connection for the
//!   first N requests, then pass through.
//!
//! Everything else is forwarded byte for byte to the real registry.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer this status (e.g. 503) to the first N requests.
    Status(u16, usize),
    /// Answer 429 with `Retry-After: secs` to the first N requests.
    TooMany(usize, u64),
    /// Close the connection without an answer for the first N requests.
    Reset(usize),
}

#[derive(Clone, Debug)]
pub struct TokenAuth {
    pub user: String,
    pub password: String,
    pub token: String,
    /// Hand out the token without credentials too (a public image on GHCR).
    pub anonymous: bool,
}

pub struct Proxy {
    pub addr: String,
    pub requests: Arc<AtomicUsize>,
    pub token_requests: Arc<Mutex<Vec<String>>>,
}

const UPSTREAM: &str = "127.0.0.1:5000";

impl Proxy {
    pub fn start(fault: Option<Fault>, auth: Option<TokenAuth>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let token_requests = Arc::new(Mutex::new(Vec::new()));
        let (r, t, a) = (requests.clone(), token_requests.clone(), addr.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (r, t, a, auth) = (r.clone(), t.clone(), a.clone(), auth.clone());
                std::thread::spawn(move || handle(stream, fault, auth, &a, &r, &t));
            }
        });
        Proxy {
            addr,
            requests,
            token_requests,
        }
    }
}

fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        buf.push(b[0]);
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn respond(s: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &str) {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    let _ = s.write_all(out.as_bytes());
    let _ = s.flush();
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn handle(
    mut s: TcpStream,
    fault: Option<Fault>,
    auth: Option<TokenAuth>,
    addr: &str,
    count: &AtomicUsize,
    tokens: &Mutex<Vec<String>>,
) {
    let Some(head) = read_head(&mut s) else {
        return;
    };
    let n = count.fetch_add(1, Ordering::SeqCst);
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    match fault {
        Some(Fault::Status(code, k)) if n < k => {
            return respond(
                &mut s,
                code,
                &[],
                r#"{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}"#,
            )
        }
        Some(Fault::TooMany(k, secs)) if n < k => {
            return respond(
                &mut s,
                429,
                &[("Retry-After", secs.to_string())],
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected fault"}]}"#,
            )
        }
        Some(Fault::Reset(k)) if n < k => {
            let _ = s.shutdown(Shutdown::Both);
            return;
        }
        _ => {}
    }
    if let Some(a) = &auth {
        if target.starts_with("/token") {
            use base64::Engine;
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", a.user, a.password))
            );
            tokens.lock().unwrap().push(target.clone());
            let given = header(&head, "Authorization");
            if given == Some(want.as_str()) || (a.anonymous && given.is_none()) {
                return respond(
                    &mut s,
                    200,
                    &[("Content-Type", "application/json".into())],
                    &format!(r#"{{"token":"{}"}}"#, a.token),
                );
            }
            return respond(
                &mut s,
                401,
                &[],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
            );
        }
        let bearer = format!("Bearer {}", a.token);
        if header(&head, "Authorization") != Some(bearer.as_str()) {
            let challenge = format!(
                r#"Bearer realm="http://{addr}/token",service="ghcr-stand-in",scope="repository:x:pull""#
            );
            return respond(
                &mut s,
                401,
                &[
                    ("WWW-Authenticate", challenge),
                    ("Content-Type", "application/json".into()),
                ],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
        }
    }
    // Pass through to the real registry.
    let Ok(mut up) = TcpStream::connect(UPSTREAM) else {
        return respond(&mut s, 502, &[], "upstream down");
    };
    let method = head.split_whitespace().next().unwrap_or("GET");
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: {UPSTREAM}\r\nConnection: close\r\n");
    if let Some(acc) = header(&head, "Accept") {
        req.push_str(&format!("Accept: {acc}\r\n"));
    }
    req.push_str("\r\n");
    if up.write_all(req.as_bytes()).is_err() {
        return;
    }
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    let _ = s.write_all(&resp);
    let _ = s.flush();
}

// ------------------------------------------------------------ fault proxy
//
// A forwarding proxy for pushes: every request (head and body) goes to the
// upstream registry over a connection of its own (`Connection: close`, so
// each request is seen and counted), the answer comes back byte for byte.
// Rules pick requests by method and path and answer them with a fault
// instead, a given number of times. The Host header is kept, so the
// registry's upload locations point back at the proxy.

/// What a matching request gets instead of the registry's answer.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// This HTTP status, with a registry error body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooMany(u64),
    /// The connection closed without an answer.
    Reset,
    /// Half the request goes through, then nothing more, ever (a stall mid-blob).
    Stall,
}

type Matcher = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// `kind` for the first `times` requests for which `matches(method, path)`
/// (with `per_blob`: the first `times` of each blob's final PUT).
pub struct Rule {
    matches: Matcher,
    pub kind: Kind,
    pub times: usize,
    per_blob: bool,
}

impl Rule {
    pub fn new(
        matches: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
        kind: Kind,
        times: usize,
    ) -> Rule {
        Rule {
            matches: Box::new(matches),
            kind,
            times,
            per_blob: false,
        }
    }

    /// The first `times` final PUTs of every blob (`…/blobs/uploads/…?digest=`):
    /// more than BuildKit's own retries of one push see through, fewer
    /// than a second push meets.
    pub fn each_blob_put(kind: Kind, times: usize) -> Rule {
        Rule {
            per_blob: true,
            ..Rule::new(
                |m, p| m == "PUT" && p.contains("/blobs/uploads/") && p.contains("digest="),
                kind,
                times,
            )
        }
    }

    /// Every request.
    pub fn any(kind: Kind, times: usize) -> Rule {
        Rule::new(|_, _| true, kind, times)
    }

    /// The PUT of a manifest by tag: the merged index moving a tag.
    pub fn index_put(kind: Kind, times: usize) -> Rule {
        Rule::new(
            |m, p| m == "PUT" && p.contains("/manifests/") && !p.contains("sha256:"),
            kind,
            times,
        )
    }

    /// The upload of a blob (a layer or a config): POST, PATCH or PUT under /blobs/uploads/.
    pub fn blob_upload(kind: Kind, times: usize) -> Rule {
        Rule::new(
            |m, p| m != "GET" && m != "HEAD" && p.contains("/blobs/uploads/"),
            kind,
            times,
        )
    }
}

pub struct FaultProxy {
    pub addr: String,
    /// `METHOD path -> what happened`, one line a request.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Listen on 127.0.0.1:`port` (0: any) in front of `upstream`.
    pub fn start(port: u16, upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(Mutex::new(
            rules.into_iter().map(|r| (r, 0usize)).collect::<Vec<_>>(),
        ));
        let (l, up) = (log.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (l, s, up) = (l.clone(), state.clone(), up.clone());
                std::thread::spawn(move || forward(stream, &up, &s, &l));
            }
        });
        FaultProxy { addr, log }
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests got a fault.
    pub fn faults(&self) -> usize {
        self.lines()
            .iter()
            .filter(|l| !l.ends_with("-> pass"))
            .count()
    }
}

/// Per-blob fault counts: (repository, rule, digest) → faults so far.
type BlobCounts = std::collections::HashMap<(String, usize, String), usize>;
static BLOB_COUNTS: Mutex<Option<BlobCounts>> = Mutex::new(None);

/// The repository part of a registry path (`/v2/<repo>/blobs/…`).
fn upstream_key(path: &str) -> String {
    path.split("/blobs/").next().unwrap_or("").to_string()
}

fn forward(
    mut s: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<(Rule, usize)>>,
    log: &Mutex<Vec<String>>,
) {
    let Some(head) = read_head(&mut s) else {
        return;
    };
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or("").to_string(),
        words.next().unwrap_or("").to_string(),
    );
    let fault = {
        let mut rules = rules.lock().unwrap();
        let blob = path.split("digest=").nth(1).unwrap_or("").to_string();
        let mut blobs = BLOB_COUNTS.lock().unwrap();
        rules.iter_mut().enumerate().find_map(|(i, (r, n))| {
            if !(r.matches)(&method, &path) {
                return None;
            }
            let seen = if r.per_blob {
                blobs
                    .get_or_insert_with(Default::default)
                    .entry((upstream_key(&path), i, blob.clone()))
                    .or_insert(0)
            } else {
                n
            };
            (*seen < r.times).then(|| {
                *seen += 1;
                r.kind
            })
        })
    };
    log.lock().unwrap().push(format!(
        "{method} {path} -> {}",
        fault.map_or("pass".to_string(), |k| format!("{k:?}"))
    ));
    match fault {
        Some(Kind::Status(code)) => {
            return respond(
                &mut s,
                code,
                &[("Content-Type", "application/json".into())],
                r#"{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}"#,
            )
        }
        Some(Kind::TooMany(secs)) => {
            return respond(
                &mut s,
                429,
                &[("Retry-After", secs.to_string())],
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected fault"}]}"#,
            )
        }
        Some(Kind::Reset) => {
            let _ = s.shutdown(Shutdown::Both);
            return;
        }
        _ => {}
    }
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return respond(&mut s, 502, &[], "upstream down");
    };
    // One request a connection: the next one comes through the proxy again.
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        let name = line.split(':').next().unwrap_or("").trim();
        if i > 0 && (name.eq_ignore_ascii_case("connection") || line.is_empty()) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    if up.write_all(out.as_bytes()).is_err() {
        return;
    }
    let (mut from_client, mut to_up) = (s.try_clone().unwrap(), up.try_clone().unwrap());
    let stall = matches!(fault, Some(Kind::Stall));
    let length: u64 = header(&head, "Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = std::thread::spawn(move || {
        if stall {
            // Half the body (at least a byte), then silence on both sides.
            let _ = std::io::copy(&mut (&mut from_client).take(length / 2), &mut to_up);
            std::thread::sleep(std::time::Duration::from_secs(600));
            return;
        }
        let _ = std::io::copy(&mut from_client, &mut to_up);
    });
    if stall {
        let _ = body.join();
        return;
    }
    let _ = std::io::copy(&mut up, &mut s);
    let _ = s.flush();
    let _ = s.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    let _ = body.join();
}
