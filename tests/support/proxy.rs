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
