//! Loopback fakes of the providers' HTTP APIs for the backend tests, following the documented
//! request and response shapes (PROVIDERS.md), with scripted failures: 429 + Retry-After, 5xx,
//! insufficient credits, task FAILED / moderation, downloads that break halfway or whose URL
//! has expired, tasks that never finish.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// How a task ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeed,
    /// Runway failureCode / Gemini error status / Replicate error text.
    Fail {
        code: String,
        message: String,
    },
    /// Gemini: done, no samples, RAI reasons.
    RaiFiltered(Vec<String>),
    /// Never leaves RUNNING.
    Hang,
}

/// A scripted answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Canned {
    pub fn new(status: u16, body: &str) -> Canned {
        Canned {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Canned {
        self.headers.push((k.into(), v.into()));
        self
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub polls: u32,
    pub cancelled: bool,
    pub billed_credits: i64,
    pub duration_s: u64,
}

/// The fake's state; tests script it and read it.
#[derive(Debug, Default)]
pub struct FakeState {
    pub seen: Vec<Seen>,
    /// Runway: credits left; every created task takes credits_per_s × duration.
    pub credit_balance: i64,
    pub credits_per_s: i64,
    pub daily_limit: Option<u64>,
    pub daily_used: u64,
    /// Answers for the next create calls, before the real one.
    pub create_script: VecDeque<Canned>,
    /// Answers for the next poll calls, before the real one.
    pub poll_script: VecDeque<Canned>,
    /// Polls answered "running" before the outcome.
    pub running_polls: u32,
    pub outcome: Option<Outcome>,
    pub tasks: HashMap<String, Task>,
    pub video: Vec<u8>,
    /// Download behaviour: the first GET of a file sends half and drops the connection.
    pub break_first_download: bool,
    /// The first GET of a file answers 403 (an expired signed URL).
    pub expire_first_download: bool,
    pub downloads: u32,
    /// Gemini: serve the video inline (encodedVideo) instead of a URI.
    pub inline_video: bool,
    /// Gemini: the download URI redirects to another host ("localhost").
    pub redirect_download: bool,
    /// Replicate: metrics.predict_time of a finished prediction.
    pub predict_time_s: f64,
    pub next_id: u64,
}

/// A running fake provider.
pub struct Fake {
    pub base: String,
    pub port: u16,
    pub state: Arc<Mutex<FakeState>>,
}

impl Fake {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Requests seen whose path starts with `prefix` and method is `method`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.method == method && s.path.starts_with(prefix))
            .count()
    }

    pub fn requests(&self, method: &str, prefix: &str) -> Vec<Seen> {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.method == method && s.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

#[derive(Clone)]
struct App {
    state: Arc<Mutex<FakeState>>,
    base: String,
    port: u16,
    provider: &'static str,
}

/// A `seconds`-long 320×180 H.264/AAC clip with a tone at -14 LUFS (ffmpeg, the test oracle,
/// renders it).
pub fn test_video(dir: &Path, seconds: u32) -> Vec<u8> {
    let out = dir.join(format!("fake-{seconds}s.mp4"));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=320x180:rate=24:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        // ffmpeg's sine is at -18.8 LUFS; +4.8 dB puts it on the profiles' -14 LUFS target.
        .args(["-af", "volume=4.8dB"])
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&out)
        .status()
        .expect("run ffmpeg (install ffmpeg)");
    assert!(status.success(), "ffmpeg failed");
    std::fs::read(out).unwrap()
}

pub fn sha256_hex(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

/// Starts a fake of `provider` ("runway", "veo", "replicate") on loopback.
pub async fn start(provider: &'static str, video: Vec<u8>) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let state = Arc::new(Mutex::new(FakeState {
        video,
        credits_per_s: 12,
        credit_balance: 1000,
        predict_time_s: 31.25,
        outcome: Some(Outcome::Succeed),
        running_polls: 1,
        ..Default::default()
    }));
    let app = App {
        state: Arc::clone(&state),
        base: format!("http://127.0.0.1:{}", addr.port()),
        port: addr.port(),
        provider,
    };
    let router = Router::new().fallback(any(handle)).with_state(app);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Fake {
        base: format!("http://127.0.0.1:{}", addr.port()),
        port: addr.port(),
        state,
    }
}

fn json_response(status: u16, v: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn canned(c: Canned) -> Response {
    let mut r = Response::builder().status(c.status);
    for (k, v) in &c.headers {
        r = r.header(k, v);
    }
    r.header("content-type", "application/json")
        .body(Body::from(c.body))
        .unwrap()
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let hmap: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    app.state.lock().unwrap().seen.push(Seen {
        method: method.to_string(),
        path: uri.to_string(),
        headers: hmap.clone(),
        body: body_json.clone(),
    });
    if path.starts_with("/files/")
        || path.starts_with("/storage/")
        || path.starts_with("/v1beta/files/")
    {
        return download(&app, &path, &hmap);
    }
    match app.provider {
        "runway" => runway(&app, &method, &path, &hmap, &body_json),
        "veo" => veo(&app, &method, &path, &hmap, &body_json),
        "replicate" => replicate(&app, &method, &path, &hmap, &body_json),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn new_id(s: &mut FakeState, prefix: &str) -> String {
    s.next_id += 1;
    format!("{prefix}{:04}", s.next_id)
}

/// Advances a task by one poll: None while running, else the outcome.
fn step(s: &mut FakeState, id: &str) -> Option<Option<Outcome>> {
    let running_polls = s.running_polls;
    let outcome = s.outcome.clone();
    let t = s.tasks.get_mut(id)?;
    t.polls += 1;
    if t.cancelled {
        return Some(None);
    }
    if t.polls <= running_polls || outcome == Some(Outcome::Hang) {
        return Some(Some(Outcome::Hang));
    }
    Some(outcome)
}

// ---- Runway -----------------------------------------------------------------------------

fn runway(
    app: &App,
    method: &Method,
    path: &str,
    h: &HashMap<String, String>,
    body: &Value,
) -> Response {
    if h.get("authorization").map(String::as_str) != Some("Bearer key_test") {
        return json_response(401, json!({"error": "Invalid API key"}));
    }
    if h.get("x-runway-version").map(String::as_str) != Some("2024-11-06") {
        return json_response(400, json!({"error": "Missing or invalid X-Runway-Version"}));
    }
    let mut s = app.state.lock().unwrap();
    match (method.as_str(), path) {
        ("GET", "/v1/organization") => {
            let mut tier_models = json!({});
            if let Some(limit) = s.daily_limit {
                tier_models["gen4.5"] =
                    json!({"maxConcurrentGenerations": 2, "maxDailyGenerations": limit});
            }
            json_response(
                200,
                json!({
                    "creditBalance": s.credit_balance,
                    "tier": {"maxMonthlyCreditSpend": 100000, "models": tier_models},
                    "usage": {"models": {"gen4.5": {"dailyGenerations": s.daily_used}}},
                }),
            )
        }
        ("POST", "/v1/text_to_video") => {
            if let Some(c) = s.create_script.pop_front() {
                return canned(c);
            }
            let duration = body["duration"].as_u64().unwrap_or(0);
            let ok = body["model"].is_string()
                && body["promptText"].as_str().is_some_and(|p| !p.is_empty())
                && ["1280:720", "720:1280"].contains(&body["ratio"].as_str().unwrap_or(""))
                && (2..=10).contains(&duration);
            if !ok {
                return json_response(400, json!({"error": format!("Invalid request: {body}")}));
            }
            let cost = s.credits_per_s * duration as i64;
            if cost > s.credit_balance {
                return json_response(
                    400,
                    json!({"error": "You do not have enough credits to run this task."}),
                );
            }
            s.credit_balance -= cost;
            s.daily_used += 1;
            let id = new_id(&mut s, "rw-task-");
            s.tasks.insert(
                id.clone(),
                Task {
                    id: id.clone(),
                    polls: 0,
                    cancelled: false,
                    billed_credits: cost,
                    duration_s: duration,
                },
            );
            json_response(200, json!({"id": id}))
        }
        ("GET", p) if p.starts_with("/v1/tasks/") => {
            if let Some(c) = s.poll_script.pop_front() {
                return canned(c);
            }
            let id = p.trim_start_matches("/v1/tasks/").to_string();
            let Some(state) = step(&mut s, &id) else {
                return json_response(404, json!({"error": "Task not found"}));
            };
            let created = "2026-11-25T12:00:00.000Z";
            let v = match state {
                None => json!({"id": id, "createdAt": created, "status": "CANCELLED"}),
                Some(Outcome::Hang) => {
                    json!({"id": id, "createdAt": created, "status": "RUNNING", "progress": 0.5})
                }
                Some(Outcome::Succeed) => {
                    let n = s.downloads;
                    json!({"id": id, "createdAt": created, "status": "SUCCEEDED",
                           "output": [format!("{}/files/{id}-{n}.mp4", app.base)]})
                }
                Some(Outcome::Fail { code, message }) => {
                    // Failed generations are refunded, input moderation is not.
                    if !code.starts_with("SAFETY.INPUT") {
                        let refund = s.tasks.get(&id).map(|t| t.billed_credits).unwrap_or(0);
                        if let Some(t) = s.tasks.get_mut(&id) {
                            if t.billed_credits > 0 {
                                t.billed_credits = 0;
                                s.credit_balance += refund;
                            }
                        }
                    }
                    json!({"id": id, "createdAt": created, "status": "FAILED", "failure": message, "failureCode": code})
                }
                Some(Outcome::RaiFiltered(_)) => unreachable!("not a Runway outcome"),
            };
            json_response(200, v)
        }
        ("DELETE", p) if p.starts_with("/v1/tasks/") => {
            let id = p.trim_start_matches("/v1/tasks/");
            match s.tasks.get_mut(id) {
                Some(t) => {
                    t.cancelled = true;
                    StatusCode::NO_CONTENT.into_response()
                }
                None => json_response(404, json!({"error": "Task not found"})),
            }
        }
        _ => json_response(404, json!({"error": "Not found"})),
    }
}

// ---- Gemini (Veo) -----------------------------------------------------------------------

fn google_error(code: u16, status: &str, message: &str) -> Response {
    json_response(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

fn veo(
    app: &App,
    method: &Method,
    path: &str,
    h: &HashMap<String, String>,
    body: &Value,
) -> Response {
    if h.get("x-goog-api-key").map(String::as_str) != Some("gemini_test") {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        );
    }
    let mut s = app.state.lock().unwrap();
    match method.as_str() {
        "POST" if path.starts_with("/v1beta/models/") && path.ends_with(":predictLongRunning") => {
            if let Some(c) = s.create_script.pop_front() {
                return canned(c);
            }
            let model = path
                .trim_start_matches("/v1beta/models/")
                .trim_end_matches(":predictLongRunning")
                .to_string();
            let ok = body["instances"][0]["prompt"]
                .as_str()
                .is_some_and(|p| !p.is_empty())
                && ["16:9", "9:16"]
                    .contains(&body["parameters"]["aspectRatio"].as_str().unwrap_or(""))
                && ["720p", "1080p"]
                    .contains(&body["parameters"]["resolution"].as_str().unwrap_or(""))
                && body["parameters"]["durationSeconds"].is_u64();
            if !ok {
                return google_error(400, "INVALID_ARGUMENT", &format!("bad request {body}"));
            }
            let id = new_id(&mut s, "op");
            let name = format!("models/{model}/operations/{id}");
            s.tasks.insert(
                name.clone(),
                Task {
                    id: name.clone(),
                    polls: 0,
                    cancelled: false,
                    billed_credits: 0,
                    duration_s: body["parameters"]["durationSeconds"].as_u64().unwrap_or(0),
                },
            );
            json_response(200, json!({"name": name}))
        }
        "GET" if path.starts_with("/v1beta/models/") && path.contains("/operations/") => {
            if let Some(c) = s.poll_script.pop_front() {
                return canned(c);
            }
            let name = path.trim_start_matches("/v1beta/").to_string();
            let Some(state) = step(&mut s, &name) else {
                return google_error(404, "NOT_FOUND", "operation not found");
            };
            let v = match state {
                None | Some(Outcome::Hang) => json!({"name": name, "metadata": {}}),
                Some(Outcome::Succeed) if s.inline_video => {
                    use base64::Engine;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(&s.video);
                    json!({"name": name, "done": true, "response": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                        "generateVideoResponse": {"generatedSamples": [{"video": {"encodedVideo": b64, "encoding": "video/mp4"}}]}}})
                }
                Some(Outcome::Succeed) => {
                    let file = name.rsplit('/').next().unwrap_or("x").to_string();
                    json!({"name": name, "done": true, "response": {
                        "generateVideoResponse": {"generatedSamples": [{"video": {"uri": format!("{}/v1beta/files/{file}:download?alt=media", app.base)}}]}}})
                }
                Some(Outcome::RaiFiltered(reasons)) => {
                    json!({"name": name, "done": true, "response": {
                    "generateVideoResponse": {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": reasons}}})
                }
                Some(Outcome::Fail { code, message }) => {
                    json!({"name": name, "done": true, "error": {"code": 13, "status": code, "message": message}})
                }
            };
            json_response(200, v)
        }
        _ => google_error(404, "NOT_FOUND", "no such method"),
    }
}

// ---- Replicate --------------------------------------------------------------------------

fn problem(status: u16, title: &str, detail: &str) -> Response {
    json_response(
        status,
        json!({"title": title, "detail": detail, "status": status}),
    )
}

fn prediction(app: &App, s: &mut FakeState, id: &str) -> Option<Value> {
    let state = step(s, id)?;
    let urls = json!({"get": format!("{}/v1/predictions/{id}", app.base), "cancel": format!("{}/v1/predictions/{id}/cancel", app.base)});
    let base = json!({"id": id, "model": "wavespeedai/wan-2.1-t2v-480p", "version": "hidden", "input": {}, "logs": "",
        "created_at": "2026-11-25T12:00:00.000Z", "urls": urls, "data_removed": false});
    let mut v = base;
    match state {
        None => {
            v["status"] = json!("canceled");
            v["metrics"] = json!({"predict_time": 3.0});
        }
        Some(Outcome::Hang) => v["status"] = json!("processing"),
        Some(Outcome::Succeed) => {
            v["status"] = json!("succeeded");
            v["output"] = json!(format!("{}/files/{id}.mp4", app.base));
            v["metrics"] =
                json!({"predict_time": s.predict_time_s, "total_time": s.predict_time_s + 2.0});
        }
        Some(Outcome::Fail { message, .. }) => {
            v["status"] = json!("failed");
            v["error"] = json!(message);
            v["metrics"] = json!({"predict_time": 1.5});
        }
        Some(o) => panic!("{o:?}"),
    }
    Some(v)
}

fn replicate(
    app: &App,
    method: &Method,
    path: &str,
    h: &HashMap<String, String>,
    body: &Value,
) -> Response {
    if h.get("authorization").map(String::as_str) != Some("Bearer r8_test") {
        return problem(
            401,
            "Unauthenticated",
            "You did not pass a valid authentication token",
        );
    }
    let mut s = app.state.lock().unwrap();
    {
        match method.as_str() {
            "POST"
                if path.starts_with("/v1/models/") && path.ends_with("/predictions")
                    || path == "/v1/predictions" =>
            {
                if let Some(c) = s.create_script.pop_front() {
                    return canned(c);
                }
                if body["input"]["prompt"]
                    .as_str()
                    .is_none_or(|p| p.is_empty())
                {
                    return json_response(
                        422,
                        json!({"title": "Input validation failed", "detail": "prompt is required", "status": 422}),
                    );
                }
                let id = new_id(&mut s, "rp");
                s.tasks.insert(
                    id.clone(),
                    Task {
                        id: id.clone(),
                        polls: 0,
                        cancelled: false,
                        billed_credits: 0,
                        duration_s: 0,
                    },
                );
                let mut v = json!({"id": id, "status": "starting", "input": body["input"].clone(), "urls": {}});
                v["model"] = json!("wavespeedai/wan-2.1-t2v-480p");
                json_response(201, v)
            }
            "GET" if path.starts_with("/v1/predictions/") => {
                if let Some(c) = s.poll_script.pop_front() {
                    return canned(c);
                }
                let id = path.trim_start_matches("/v1/predictions/").to_string();
                match prediction(app, &mut s, &id) {
                    Some(v) => json_response(200, v),
                    None => problem(
                        404,
                        "Not found",
                        "The requested resource could not be found.",
                    ),
                }
            }
            "POST" if path.starts_with("/v1/predictions/") && path.ends_with("/cancel") => {
                let id = path
                    .trim_start_matches("/v1/predictions/")
                    .trim_end_matches("/cancel")
                    .to_string();
                if let Some(t) = s.tasks.get_mut(&id) {
                    t.cancelled = true;
                }
                json_response(200, json!({"id": id, "status": "canceled"}))
            }
            _ => problem(
                404,
                "Not found",
                "The requested resource could not be found.",
            ),
        }
    }
}

/// Sends Replicate's signed completion webhook for `id` to `url` (Standard Webhooks).
pub async fn send_replicate_callback(url: &str, secret: &str, id: &str) -> u16 {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let body = json!({"id": id, "status": "succeeded"}).to_string();
    let msg_id = format!("msg_{id}");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{msg_id}.{ts}.{body}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    reqwest::Client::new()
        .post(url)
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", format!("v1,{sig}"))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

// ---- downloads --------------------------------------------------------------------------

fn download(app: &App, path: &str, h: &HashMap<String, String>) -> Response {
    let mut s = app.state.lock().unwrap();
    // Gemini: the API host wants the key; its redirect target must not get it.
    if path.starts_with("/v1beta/files/") {
        if h.get("x-goog-api-key").map(String::as_str) != Some("gemini_test") {
            return google_error(403, "PERMISSION_DENIED", "missing key");
        }
        if s.redirect_download {
            let name = path
                .trim_start_matches("/v1beta/files/")
                .replace(":download", "");
            return Response::builder()
                .status(302)
                .header(
                    "location",
                    format!("http://localhost:{}/storage/{name}.mp4", app.port),
                )
                .body(Body::empty())
                .unwrap();
        }
    }
    if path.starts_with("/storage/")
        && (h.contains_key("x-goog-api-key") || h.contains_key("authorization"))
    {
        return (
            StatusCode::BAD_REQUEST,
            "credentials leaked to the storage host",
        )
            .into_response();
    }
    if app.provider == "replicate"
        && h.get("authorization").map(String::as_str) != Some("Bearer r8_test")
    {
        return (StatusCode::UNAUTHORIZED, "auth required").into_response();
    }
    s.downloads += 1;
    if s.expire_first_download {
        s.expire_first_download = false;
        return (
            StatusCode::FORBIDDEN,
            "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        )
            .into_response();
    }
    let video = s.video.clone();
    let total = video.len();
    let start = h
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
        .unwrap_or(0);
    if s.break_first_download {
        s.break_first_download = false;
        // Headers promise the whole file; the body stops halfway and the connection drops.
        let half = Bytes::copy_from_slice(&video[..total / 2]);
        let stream = futures_stream(half);
        return Response::builder()
            .status(200)
            .header("content-length", total.to_string())
            .header("accept-ranges", "bytes")
            .header("etag", "\"v1\"")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    if start > 0 && start < total {
        return Response::builder()
            .status(206)
            .header(
                "content-range",
                format!("bytes {start}-{}/{total}", total - 1),
            )
            .header("content-length", (total - start).to_string())
            .header("etag", "\"v1\"")
            .body(Body::from(video[start..].to_vec()))
            .unwrap();
    }
    Response::builder()
        .status(200)
        .header("content-length", total.to_string())
        .header("accept-ranges", "bytes")
        .header("etag", "\"v1\"")
        .body(Body::from(video))
        .unwrap()
}

/// A body stream that yields `first`, lets it reach the client, then fails (the connection is
/// cut mid-body).
fn futures_stream(first: Bytes) -> impl tokio_stream::Stream<Item = Result<Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let _ = tx.send(Ok(first)).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let _ = tx
            .send(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "cut",
            )))
            .await;
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
