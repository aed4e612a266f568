//! HTTP plumbing shared by the remote backends: retries (429 with Retry-After, 5xx and network
//! errors with exponential backoff and jitter), bounded answers, and downloads streamed to disk
//! with a size limit, a SHA-256, resumption (Range) after a broken transfer, and redirects
//! followed by hand so an API key never travels to another host.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{RequestBuilder, StatusCode, Url};
use sha2::{Digest, Sha256};

/// Longest Retry-After we sit out; a provider that asks for more means "much later" (e.g. a
/// daily quota), and the job should fail with that message instead of holding a slot.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Longest backoff between two retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// API answers (JSON) larger than this are refused. Gemini may inline a generated video as
/// base64 (`encodedVideo`), so this is sized for a clip, not for a small JSON document.
pub const MAX_API_BODY_BYTES: usize = 256 << 20;
/// Error bodies are kept only this long in messages and logs.
const MAX_ERROR_TEXT: usize = 1000;
/// Redirect hops followed on a download (Google's file downloads may redirect to storage).
const MAX_REDIRECTS: usize = 5;
/// How often a sleeping retry looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// How often and how long to retry one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (0-based): base × 2^attempt capped at
    /// [`MAX_BACKOFF`], with "equal jitter" (half fixed, half random) so clients that failed
    /// together do not retry together; Runway asks for jitter of up to 50%.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(MAX_BACKOFF);
        let half = exp / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

/// Whether repeating a request is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET/DELETE/cancel: retried on any 5xx, 408, 429 and any network error.
    Idempotent,
    /// A create that spends money: retried only when the provider certainly did not act on
    /// it — 429 (refused), 502/503/504 (shed before processing, per Runway's docs) and
    /// connection failures before the request went out.
    Create,
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request did not get a 2xx answer.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpFailure {
    /// A non-2xx answer that is not retried, or the last one when retries ran out.
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// No answer (connect, timeout, broken body), after retries.
    Network(String),
    Cancelled,
    TooLarge {
        limit: usize,
    },
}

/// Sleeps `d`, waking early (Err) when `cancel` is set.
pub async fn sleep_or_cancel(d: Duration, cancel: &AtomicBool) -> Result<(), HttpFailure> {
    let until = tokio::time::Instant::now() + d;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(HttpFailure::Cancelled);
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return Ok(());
        }
        tokio::time::sleep((until - now).min(CANCEL_POLL)).await;
    }
}

/// Parses a Retry-After value: delay-seconds (integer; a decimal is tolerated) or an HTTP-date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Replicate's 429 body says when to come back even without the header: "Request was
/// throttled. Expected available in 1 second." (and newer: "Your rate limit resets in ~30s.").
pub fn retry_after_from_text(body: &str) -> Option<Duration> {
    let lower = body.to_ascii_lowercase();
    let rest = ["available in ", "resets in "]
        .iter()
        .find_map(|k| lower.find(k).map(|i| &lower[i + k.len()..]))?;
    let rest = rest.trim_start_matches('~');
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let secs: f64 = num.parse().ok()?;
    (0.0..86_400.0)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

fn header_retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// Error text for messages: bounded, one line.
pub fn error_text(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut t: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
        t.push('…');
    }
    t
}

fn retryable(status: u16, idem: Idempotency) -> bool {
    match idem {
        Idempotency::Idempotent => status == 408 || status == 429 || status >= 500,
        Idempotency::Create => matches!(status, 429 | 502 | 503 | 504),
    }
}

/// Reads a body up to `limit` bytes.
async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, HttpFailure> {
    if let Some(len) = resp.content_length() {
        if len > limit as u64 {
            return Err(HttpFailure::TooLarge { limit });
        }
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > limit {
                    return Err(HttpFailure::TooLarge { limit });
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(HttpFailure::Network(describe(&e))),
        }
    }
}

/// A reqwest error without its URL (URLs may carry query parameters worth keeping private).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    let mut src = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// Sends the request `build` makes, retrying per `policy` and `idem`; returns the first 2xx
/// answer (body read up to [`MAX_API_BODY_BYTES`]).
pub async fn call(
    build: &dyn Fn() -> RequestBuilder,
    idem: Idempotency,
    policy: &RetryPolicy,
    cancel: &AtomicBool,
) -> Result<ApiResponse, HttpFailure> {
    let mut attempt = 0u32;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(HttpFailure::Cancelled);
        }
        let failure = match build().send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = header_retry_after(resp.headers());
                if resp.status().is_success() {
                    let body = read_body(resp, MAX_API_BODY_BYTES).await;
                    match body {
                        Ok(body) => return Ok(ApiResponse { status, body }),
                        Err(HttpFailure::Network(m)) if idem == Idempotency::Idempotent => {
                            HttpFailure::Network(m)
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    let body = read_body(resp, MAX_ERROR_TEXT * 64)
                        .await
                        .unwrap_or_default();
                    let text = error_text(&body);
                    let retry_after = retry_after.or_else(|| {
                        (status == 429)
                            .then(|| retry_after_from_text(&text))
                            .flatten()
                    });
                    let f = HttpFailure::Status {
                        status,
                        body: text,
                        retry_after,
                    };
                    if !retryable(status, idem) {
                        return Err(f);
                    }
                    f
                }
            }
            Err(e) => {
                // A create is retried only when the request certainly never reached the
                // provider (connection refused/failed); a timeout may have created the task.
                if idem == Idempotency::Create && !e.is_connect() {
                    return Err(HttpFailure::Network(describe(&e)));
                }
                HttpFailure::Network(describe(&e))
            }
        };
        if attempt >= policy.max_retries {
            return Err(failure);
        }
        let delay = match &failure {
            HttpFailure::Status {
                retry_after: Some(d),
                ..
            } => {
                if *d > MAX_RETRY_AFTER {
                    return Err(failure);
                }
                // The provider's word, plus a little jitter so a crowd does not return at once.
                *d + Duration::from_millis(rand::rng().random_range(0..=250))
            }
            _ => policy.backoff(attempt),
        };
        tracing::debug!(attempt, ?delay, ?failure, "retrying provider request");
        sleep_or_cancel(delay, cancel).await?;
        attempt += 1;
    }
}

/// What to download, and where.
pub struct DownloadSpec<'a> {
    pub url: &'a str,
    /// Header that authenticates the download, sent only to hosts `send_auth_to` accepts
    /// (decided again after each redirect).
    pub auth: Option<(HeaderName, HeaderValue)>,
    pub send_auth_to: &'a dyn Fn(&Url) -> bool,
    pub dest: &'a Path,
    pub max_bytes: u64,
}

/// A completed download.
#[derive(Debug, Clone, PartialEq)]
pub struct Downloaded {
    pub bytes: u64,
    pub sha256: String,
}

/// Why a download did not complete.
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadFailure {
    /// 401/403/404/410: the (signed, short-lived) URL no longer works; ask for a fresh one.
    Expired(u16),
    TooLarge {
        limit: u64,
    },
    Failed(String),
    Cancelled,
}

/// Where a download is written until it is complete.
pub fn partial_path(dest: &Path) -> PathBuf {
    dest.with_extension("partial")
}

/// The file being written, with the hash of exactly the bytes in it.
struct Partial {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
    hasher: Sha256,
}

impl Partial {
    /// Opens the partial file, keeping (and hashing) what an earlier attempt — or an earlier
    /// run of the daemon — left in it.
    fn open(path: PathBuf) -> std::io::Result<Partial> {
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        if let Ok(mut f) = std::fs::File::open(&path) {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                len += n as u64;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Partial {
            path,
            file,
            len,
            hasher,
        })
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.hasher = Sha256::new();
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk)?;
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }
}

/// Parses `Content-Range: bytes START-END/TOTAL` into (start, total).
fn content_range(h: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = h.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Downloads `spec.url` to `spec.dest`: streamed through a `.partial` file (renamed into place
/// when complete), at most `spec.max_bytes`, hashed with SHA-256 on the way. A transfer that
/// breaks halfway (connection drop, short body) resumes with a Range request where the server
/// supports it, else restarts; 429/5xx back off like API calls. `client` must not follow
/// redirects by itself (so credentials are dropped on a cross-host redirect).
pub async fn download(
    client: &reqwest::Client,
    spec: &DownloadSpec<'_>,
    policy: &RetryPolicy,
    cancel: &AtomicBool,
) -> Result<Downloaded, DownloadFailure> {
    let io = |what: &str, e: std::io::Error| DownloadFailure::Failed(format!("{what}: {e}"));
    let mut part =
        Partial::open(partial_path(spec.dest)).map_err(|e| io("open partial file", e))?;
    if part.len > spec.max_bytes {
        part.restart().map_err(|e| io("truncate partial file", e))?;
    }
    let mut etag: Option<HeaderValue> = None;
    let mut attempt = 0u32;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(DownloadFailure::Cancelled);
        }
        let outcome = download_attempt(client, spec, &mut part, &mut etag, cancel).await;
        let retry_after = match outcome {
            Ok(()) => break,
            Err(AttemptEnd::Fatal(f)) => {
                if matches!(f, DownloadFailure::TooLarge { .. }) {
                    let _ = std::fs::remove_file(&part.path);
                }
                return Err(f);
            }
            Err(AttemptEnd::Retry { reason, after }) => {
                if attempt >= policy.max_retries {
                    return Err(DownloadFailure::Failed(format!(
                        "{reason} (after {} attempts)",
                        attempt + 1
                    )));
                }
                tracing::info!(
                    attempt,
                    received = part.len,
                    "download interrupted ({reason}); resuming"
                );
                after
            }
        };
        let delay = retry_after
            .filter(|d| *d <= MAX_RETRY_AFTER)
            .unwrap_or_else(|| policy.backoff(attempt));
        sleep_or_cancel(delay, cancel)
            .await
            .map_err(|_| DownloadFailure::Cancelled)?;
        attempt += 1;
    }
    part.file
        .sync_all()
        .map_err(|e| io("flush downloaded file", e))?;
    let sha256 = format!("{:x}", part.hasher.clone().finalize());
    let bytes = part.len;
    std::fs::rename(&part.path, spec.dest).map_err(|e| io("move downloaded file into place", e))?;
    Ok(Downloaded { bytes, sha256 })
}

enum AttemptEnd {
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fatal(DownloadFailure),
}

async fn download_attempt(
    client: &reqwest::Client,
    spec: &DownloadSpec<'_>,
    part: &mut Partial,
    etag: &mut Option<HeaderValue>,
    cancel: &AtomicBool,
) -> Result<(), AttemptEnd> {
    let fatal_io = |e: std::io::Error| {
        AttemptEnd::Fatal(DownloadFailure::Failed(format!("write partial file: {e}")))
    };
    let mut url = Url::parse(spec.url).map_err(|e| {
        AttemptEnd::Fatal(DownloadFailure::Failed(format!(
            "output URL is not a URL: {e}"
        )))
    })?;
    let mut hops = 0;
    let resp = loop {
        let mut req = client.get(url.clone());
        if let Some((name, value)) = &spec.auth {
            if (spec.send_auth_to)(&url) {
                req = req.header(name.clone(), value.clone());
            }
        }
        if part.len > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={}-", part.len));
            if let Some(tag) = etag.as_ref() {
                req = req.header(reqwest::header::IF_RANGE, tag.clone());
            }
        }
        let resp = req.send().await.map_err(|e| AttemptEnd::Retry {
            reason: describe(&e),
            after: None,
        })?;
        if resp.status().is_redirection() {
            hops += 1;
            let next = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok());
            match next {
                Some(n) if hops <= MAX_REDIRECTS && matches!(n.scheme(), "http" | "https") => {
                    url = n;
                    continue;
                }
                _ => {
                    return Err(AttemptEnd::Fatal(DownloadFailure::Failed(format!(
                        "bad or too many redirects (HTTP {})",
                        resp.status().as_u16()
                    ))))
                }
            }
        }
        break resp;
    };
    let status = resp.status();
    match status {
        StatusCode::OK => {
            // A full body: whatever the partial file held is replaced.
            if part.len > 0 {
                part.restart().map_err(fatal_io)?;
            }
        }
        StatusCode::PARTIAL_CONTENT => match content_range(resp.headers()) {
            Some((start, _)) if start == part.len => {}
            _ => {
                part.restart().map_err(fatal_io)?;
                return Err(AttemptEnd::Retry {
                    reason: "server resumed at the wrong offset".into(),
                    after: None,
                });
            }
        },
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // Our partial file is as long as (or longer than) the object: start over.
            part.restart().map_err(fatal_io)?;
            return Err(AttemptEnd::Retry {
                reason: "range not satisfiable".into(),
                after: None,
            });
        }
        s if matches!(s.as_u16(), 401 | 403 | 404 | 410) => {
            return Err(AttemptEnd::Fatal(DownloadFailure::Expired(s.as_u16())));
        }
        s if s.as_u16() == 408 || s.as_u16() == 429 || s.is_server_error() => {
            return Err(AttemptEnd::Retry {
                reason: format!("HTTP {}", s.as_u16()),
                after: header_retry_after(resp.headers()),
            });
        }
        s => {
            return Err(AttemptEnd::Fatal(DownloadFailure::Failed(format!(
                "HTTP {}",
                s.as_u16()
            ))))
        }
    }
    if let Some(tag) = resp.headers().get(reqwest::header::ETAG) {
        *etag = Some(tag.clone());
    }
    let expected_total = match status {
        StatusCode::PARTIAL_CONTENT => content_range(resp.headers())
            .and_then(|(_, t)| t)
            .or_else(|| resp.content_length().map(|l| l + part.len)),
        _ => resp.content_length(),
    };
    if let Some(total) = expected_total {
        if total > spec.max_bytes {
            return Err(AttemptEnd::Fatal(DownloadFailure::TooLarge {
                limit: spec.max_bytes,
            }));
        }
    }
    let mut resp = resp;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(AttemptEnd::Fatal(DownloadFailure::Cancelled));
        }
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if part.len + chunk.len() as u64 > spec.max_bytes {
                    return Err(AttemptEnd::Fatal(DownloadFailure::TooLarge {
                        limit: spec.max_bytes,
                    }));
                }
                part.write(&chunk).map_err(fatal_io)?;
            }
            Ok(None) => break,
            Err(e) => {
                return Err(AttemptEnd::Retry {
                    reason: describe(&e),
                    after: None,
                })
            }
        }
    }
    match expected_total {
        Some(total) if part.len < total => Err(AttemptEnd::Retry {
            reason: format!("body ended after {} of {total} bytes", part.len),
            after: None,
        }),
        _ if part.len == 0 => Err(AttemptEnd::Fatal(DownloadFailure::Failed(
            "the output is empty".into(),
        ))),
        _ => Ok(()),
    }
}

/// Writes bytes the provider sent inline (Gemini `encodedVideo`) the same way a download is
/// written: `.partial`, size limit, SHA-256, rename.
pub fn write_inline(
    dest: &Path,
    bytes: &[u8],
    max_bytes: u64,
) -> Result<Downloaded, DownloadFailure> {
    if bytes.len() as u64 > max_bytes {
        return Err(DownloadFailure::TooLarge { limit: max_bytes });
    }
    if bytes.is_empty() {
        return Err(DownloadFailure::Failed("the inline output is empty".into()));
    }
    let tmp = partial_path(dest);
    let io = |e: std::io::Error| DownloadFailure::Failed(format!("write output: {e}"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, dest).map_err(io)?;
    Ok(Downloaded {
        bytes: bytes.len() as u64,
        sha256: format!("{:x}", Sha256::digest(bytes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1"), None);
        let future = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(future)).unwrap();
        assert!(
            d > Duration::from_secs(110) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn replicate_throttle_text_gives_the_wait() {
        assert_eq!(
            retry_after_from_text("Request was throttled. Expected available in 1 second."),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after_from_text("Your rate limit resets in ~30s."),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after_from_text("slow down"), None);
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let p = RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(100),
        };
        for attempt in 0..12 {
            let full = Duration::from_millis(100)
                .saturating_mul(1 << attempt)
                .min(MAX_BACKOFF);
            let d = p.backoff(attempt);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn content_range_parses() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 100-199/1000"),
        );
        assert_eq!(content_range(&h), Some((100, Some(1000))));
        h.insert(
            reqwest::header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 5-9/*"),
        );
        assert_eq!(content_range(&h), Some((5, None)));
    }

    #[test]
    fn error_text_is_one_bounded_line() {
        let t = error_text("a\n  b\tc".as_bytes());
        assert_eq!(t, "a b c");
        let long = "é".repeat(2000);
        assert!(error_text(long.as_bytes()).len() <= MAX_ERROR_TEXT + 3);
    }
}
