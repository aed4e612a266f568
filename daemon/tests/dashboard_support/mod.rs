//! Helpers of the dashboard tests: a minimal HTTP/1.0 client (JSON, Range, SSE bodies) and a
//! WebSocket reader for /ws/metrics, both over a plain TcpStream so the tests exercise the
//! daemon's real HTTP port without another client library.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP response.
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn connect(base: &str) -> (TcpStream, String) {
    let host = base.trim_start_matches("http://").to_string();
    let s = TcpStream::connect(&host).expect("connect to the daemon's HTTP port");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    (s, host)
}

/// Sends one request (HTTP/1.0: the server closes after the body) and reads the response.
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let (mut s, host) = connect(base);
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

pub fn get(base: &str, path: &str) -> HttpResponse {
    request(base, "GET", path, &[], None)
}

pub fn post_json(base: &str, path: &str, body: &serde_json::Value) -> HttpResponse {
    request(base, "POST", path, &[], Some(&body.to_string()))
}

/// The messages a /ws/metrics connection receives first (text frames, JSON).
pub fn ws_messages(base: &str, path: &str, count: usize) -> Vec<serde_json::Value> {
    let (mut s, host) = connect(base);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("write handshake");
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    assert!(status.contains(" 101 "), "handshake refused: {status}");
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
    }
    let mut out = Vec::new();
    while out.len() < count {
        let mut h = [0u8; 2];
        r.read_exact(&mut h).expect("frame header");
        let opcode = h[0] & 0x0f;
        let mut len = (h[1] & 0x7f) as u64;
        if len == 126 {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).expect("len16");
            len = u16::from_be_bytes(b) as u64;
        } else if len == 127 {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).expect("len64");
            len = u64::from_be_bytes(b);
        }
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload).expect("payload");
        match opcode {
            0x1 => out.push(serde_json::from_slice(&payload).expect("JSON text frame")),
            0x8 => panic!("socket closed after {} messages", out.len()),
            _ => {} // ping/pong/continuation: not sent by the daemon for these sizes
        }
    }
    out
}

/// The `usd_micros` value of a proto3-JSON int64 field (a decimal string).
pub fn micros(v: &serde_json::Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an int64 string: {v}"))
}

/// Asserts two JSON documents are equal, numbers within 1e-12 relative: serde_json parses
/// floats to the nearest f64 only with its `float_roundtrip` feature, so a value that went
/// through text may differ in the last bit.
pub fn assert_same_json(a: &serde_json::Value, b: &serde_json::Value) {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
        use serde_json::Value::*;
        match (a, b) {
            (Number(x), Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                    "{at}: {x} != {y}"
                );
            }
            (Array(x), Array(y)) => {
                assert_eq!(x.len(), y.len(), "{at}: lengths");
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    walk(x, y, &format!("{at}[{i}]"));
                }
            }
            (Object(x), Object(y)) => {
                let kx: Vec<_> = x.keys().collect();
                let ky: Vec<_> = y.keys().collect();
                assert_eq!(kx, ky, "{at}: keys");
                for (k, v) in x {
                    walk(v, &y[k], &format!("{at}.{k}"));
                }
            }
            _ => assert_eq!(a, b, "{at}"),
        }
    }
    walk(a, b, "$");
}
