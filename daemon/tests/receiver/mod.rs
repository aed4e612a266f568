//! A webhook receiver on loopback for the tests and the bench: records every delivery with
//! its Standard Webhooks headers, verifies signatures independently (its own HMAC), and can be
//! told to fail or hang.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One delivery attempt as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg_id: String,
    pub timestamp: i64,
    pub signature_ok: bool,
    pub body: serde_json::Value,
    /// What the receiver answered (0: it hung up / hung).
    pub answered: u16,
    pub at: Instant,
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Ok,
    /// 500 for the first attempt of each message, 200 after.
    FailFirst,
    /// 503 with probability one half (deterministic per attempt counter).
    FailHalf,
    /// Never answers (until the mode changes).
    Hang,
}

pub struct Receiver {
    pub url: String,
    pub key: Vec<u8>,
    pub seen: Mutex<Vec<Delivery>>,
    pub mode: Mutex<Mode>,
    pub in_flight: AtomicU64,
    counter: AtomicU64,
    pub record_bodies: AtomicBool,
}

impl Receiver {
    pub fn successes(&self) -> Vec<Delivery> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.answered == 200)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    /// Waits until `pred` holds for the receiver.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Receiver) -> bool) {
        let t = Instant::now();
        while !pred(self) {
            assert!(
                t.elapsed() < timeout,
                "receiver condition not reached in {timeout:?}; seen: {:#?}",
                self.all()
                    .iter()
                    .map(|d| (&d.msg_id, d.answered))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Successful deliveries per msg id.
    pub fn per_message(&self) -> HashMap<String, Vec<Delivery>> {
        let mut m: HashMap<String, Vec<Delivery>> = HashMap::new();
        for d in self.all() {
            m.entry(d.msg_id.clone()).or_default().push(d);
        }
        m
    }
}

/// Verifies a Standard Webhooks signature: HMAC-SHA256 over "id.timestamp.body".
pub fn signature_ok(key: &[u8], id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header
        .split_whitespace()
        .any(|s| s.strip_prefix("v1,") == Some(want.as_str()))
}

/// A fixed 32-byte test secret.
pub fn secret() -> (String, Vec<u8>) {
    let key: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    (
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(&key)
        ),
        key,
    )
}

pub async fn start(mode: Mode) -> Arc<Receiver> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_, key) = secret();
    let r = Arc::new(Receiver {
        url: format!("http://{}/hook", listener.local_addr().unwrap()),
        key,
        seen: Mutex::new(Vec::new()),
        mode: Mutex::new(mode),
        in_flight: AtomicU64::new(0),
        counter: AtomicU64::new(0),
        record_bodies: AtomicBool::new(true),
    });
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(Arc::clone(&r));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    r
}

fn header(h: &HeaderMap, k: &str) -> String {
    h.get(k)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn hook(State(r): State<Arc<Receiver>>, h: HeaderMap, body: Bytes) -> StatusCode {
    let id = header(&h, "webhook-id");
    let ts = header(&h, "webhook-timestamp");
    let sig = header(&h, "webhook-signature");
    let ok = signature_ok(&r.key, &id, &ts, &body, &sig);
    let mode = *r.mode.lock().unwrap();
    let first = !r.seen.lock().unwrap().iter().any(|d| d.msg_id == id);
    let status = match mode {
        Mode::Ok => 200,
        Mode::FailFirst if first => 500,
        Mode::FailFirst => 200,
        Mode::FailHalf => {
            // A fixed pseudo-random sequence: half of the attempts fail.
            let n = r.counter.fetch_add(1, Ordering::SeqCst);
            let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
            if x & 1 == 0 {
                503
            } else {
                200
            }
        }
        Mode::Hang => 0,
    };
    let body_json = if r.record_bodies.load(Ordering::Relaxed) {
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::Value::Null
    };
    let d = Delivery {
        msg_id: id,
        timestamp: ts.parse().unwrap_or(0),
        signature_ok: ok,
        body: body_json,
        answered: status,
        at: Instant::now(),
    };
    r.seen.lock().unwrap().push(d);
    if status == 0 {
        r.in_flight.fetch_add(1, Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if *r.mode.lock().unwrap() != Mode::Hang {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
    }
    StatusCode::from_u16(status).unwrap()
}
