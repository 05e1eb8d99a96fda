//! A stand-in for a Docker socket proxy on 127.0.0.1 in front of the real
//! daemon's socket, refusing what would give a container privileges, as
//! tecnativa/docker-socket-proxy (endpoint filters), an authorization plugin
//! (e.g. opa-docker-authz) or a userns-remap/rootless daemon do for a
//! runner's container: `POST /containers/create` asking for `Privileged`,
//! added capabilities, devices or a bind of `/proc` or `/sys` gets 403, as
//! does every exec (a process in an existing, maybe privileged, container)
//! and every other write the list below does not name. Reads are forwarded
//! byte for byte.
//!
//! `Policy::Unprivileged` instead starts such a container without the
//! privileges (the rest still refused): as a rootless daemon on a kernel
//! before 6.7 does in effect, the container runs but cannot mount or write
//! the host's binfmt_misc (an unprivileged container cannot).
//!
//! The refusal is also what keeps tests safe: a privileged binfmt installer
//! run through the real daemon would register handlers in the HOST's
//! binfmt_misc (global for the initial user namespace), which other tests
//! use. A body that cannot be read or parsed is refused too (fail closed).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// 403 for a privileged container.
    Refuse,
    /// Create it without `Privileged` (other privileges still get 403).
    Unprivileged,
    /// Create it without `Privileged`, its command replaced by `true`: as a
    /// daemon whose containers reach another binfmt_misc than the caller's
    /// (on another machine; rootless since Linux 6.7, registering in its
    /// own instance), the installer succeeds and changes nothing here.
    Elsewhere,
}

pub struct DockerProxy {
    /// `tcp://127.0.0.1:PORT`, for DOCKER_HOST.
    pub url: String,
    /// One line per request: `METHOD PATH -> forwarded` or `-> 403 (why)`.
    pub log: Arc<Mutex<Vec<String>>>,
}

const UPSTREAM: &str = "/var/run/docker.sock";

impl DockerProxy {
    pub fn start() -> DockerProxy {
        DockerProxy::start_with(Policy::Refuse)
    }

    pub fn start_with(policy: Policy) -> DockerProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let l = l.clone();
                std::thread::spawn(move || handle(stream, policy, &l));
            }
        });
        DockerProxy { url, log }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Requests answered 403.
    pub fn refused(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.contains("-> 403"))
            .collect()
    }
}

struct Request {
    method: String,
    /// Without the `/v1.NN` prefix and the query.
    path: String,
    head: String,
    body: Vec<u8>,
}

fn read_request(s: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.push(b[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut words = head.split_whitespace();
    let method = words.next()?.to_string();
    let target = words.next()?.to_string();
    let path = target.split('?').next().unwrap_or("");
    let path = match path.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
        None => path.to_string(),
    };
    let body = if header(&head, "Transfer-Encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(s)?
    } else {
        let n: usize = header(&head, "Content-Length").map_or(Some(0), |v| v.parse().ok())?;
        if n > 16 << 20 {
            return None;
        }
        let mut body = vec![0u8; n];
        s.read_exact(&mut body).ok()?;
        body
    };
    Some(Request {
        method,
        path,
        head,
        body,
    })
}

fn read_line(s: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if s.read(&mut b).ok()? == 0 || line.len() > 1024 {
            return None;
        }
        line.push(b[0]);
    }
    Some(String::from_utf8_lossy(&line).trim().to_string())
}

fn read_chunked(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size = read_line(s)?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if body.len() + n > 16 << 20 {
            return None;
        }
        let mut chunk = vec![0u8; n + 2];
        s.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..n]);
        if n == 0 {
            return Some(body);
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Why a request is refused, or None to forward it.
fn refusal(r: &Request) -> Option<String> {
    if r.method == "GET" || r.method == "HEAD" {
        return None;
    }
    let p = r.path.as_str();
    if r.method == "POST" && p == "/containers/create" {
        return privileges(&r.body);
    }
    let container_op = |op: &str| p.starts_with("/containers/") && p.ends_with(op);
    let allowed = (r.method == "POST"
        && (p == "/images/create"
            || ["/start", "/wait", "/stop", "/kill"]
                .iter()
                .any(|op| container_op(op))))
        || (r.method == "DELETE" && p.starts_with("/containers/"));
    (!allowed).then(|| format!("{} {p} is not allowed", r.method))
}

/// What a container create asks for beyond an ordinary container.
fn privileges(body: &[u8]) -> Option<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Some("unreadable container create body".into());
    };
    let hc = &v["HostConfig"];
    let non_empty = |k: &str| hc[k].as_array().is_some_and(|a| !a.is_empty());
    if hc["Privileged"].as_bool() == Some(true) {
        return Some("privileged containers are not allowed".into());
    }
    for k in ["CapAdd", "Devices", "SecurityOpt"] {
        if non_empty(k) {
            return Some(format!("HostConfig.{k} is not allowed"));
        }
    }
    let system = |src: &str| {
        ["/proc", "/sys", "/var/run/docker.sock"]
            .iter()
            .any(|p| src.starts_with(p))
    };
    let binds = hc["Binds"].as_array().into_iter().flatten();
    let mounts = hc["Mounts"].as_array().into_iter().flatten();
    let sources = binds
        .filter_map(|b| b.as_str().and_then(|b| b.split(':').next()))
        .chain(mounts.filter_map(|m| m["Source"].as_str()));
    for src in sources {
        if system(src) {
            return Some(format!("a bind of {src} is not allowed"));
        }
    }
    None
}

fn handle(mut s: TcpStream, policy: Policy, log: &Mutex<Vec<String>>) {
    let Some(mut req) = read_request(&mut s) else {
        let _ = s.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    };
    let what = format!("{} {}", req.method, req.path);
    if policy != Policy::Refuse && req.method == "POST" && req.path == "/containers/create" {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&req.body) {
            if v["HostConfig"]["Privileged"].as_bool() == Some(true) {
                v["HostConfig"]["Privileged"] = serde_json::Value::Bool(false);
                if policy == Policy::Elsewhere {
                    v["Entrypoint"] = serde_json::json!(["true"]);
                    v["Cmd"] = serde_json::json!([]);
                }
                req.body = serde_json::to_vec(&v).unwrap();
                log.lock()
                    .unwrap()
                    .push(format!("{what} -> without privileges"));
            }
        }
    }
    if let Some(why) = refusal(&req) {
        log.lock().unwrap().push(format!("{what} -> 403 ({why})"));
        // The body authorization plugins answer with.
        let body = format!(
            r#"{{"message":"authorization denied by plugin docker-proxy-stand-in: {why}"}}"#
        );
        let _ = s.write_all(
            format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        return;
    }
    log.lock().unwrap().push(format!("{what} -> forwarded"));
    forward(s, &req);
}

/// One request per upstream connection (`Connection: close`), the answer
/// copied back until the daemon closes it.
fn forward(mut s: TcpStream, req: &Request) {
    let Ok(mut up) = UnixStream::connect(UPSTREAM) else {
        let _ = s.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    };
    let mut lines = req.head.lines();
    let mut head = format!("{}\r\n", lines.next().unwrap_or_default());
    for l in lines.filter(|l| !l.is_empty()) {
        let k = l.split(':').next().unwrap_or("").trim();
        if ["connection", "transfer-encoding", "content-length"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        head.push_str(l);
        head.push_str("\r\n");
    }
    if !req.body.is_empty() || req.method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    if up.write_all(head.as_bytes()).is_err() || up.write_all(&req.body).is_err() {
        return;
    }
    let _ = std::io::copy(&mut up, &mut s);
    let _ = s.flush();
}
