//! Google Veo through the Gemini API (generativelanguage v1beta, PROVIDERS.md §2):
//! `POST /v1beta/models/{model}:predictLongRunning` → an operation `{"name"}`, then
//! `GET /v1beta/{name}` until `done`, then the video from
//! `response.generateVideoResponse.generatedSamples[0].video` (`uri`, downloaded with the key,
//! or `encodedVideo` inline). Auth: `x-goog-api-key` header (never `?key=`: URLs end up in
//! logs). A result filtered by RAI policies is `done` with no samples and
//! `raiMediaFilteredReasons` — a moderation refusal, not charged (third parties; unconfirmed).
//!
//! The Gemini API has no balance endpoint: spend is capped by the configured budget in the
//! ledger. It has no documented cancel either: a cancelled job stops polling, and the ledger
//! counts the task at its quote.

use std::sync::atomic::AtomicBool;

use aiprod_planner::pricing::ModelPrice;
use base64::Engine;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use serde_json::{json, Value};

use super::http::{self, HttpFailure, Idempotency};
use super::remote::{Billed, Output, ProviderApi, RemoteContext, TaskState};
use super::runway::whole_seconds;
use super::{BackendError, GenerationRequest, Quote};

/// The header the SDK sends the key in.
const API_KEY_HEADER: &str = "x-goog-api-key";

/// The Gemini API's Veo models.
pub struct Veo;

/// A Google error body's `error.status` and `error.message`.
fn google_error(body: &str) -> (String, String) {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let e = v.as_ref().and_then(|v| v.get("error"));
    let status = e
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let message = e
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    (status, message)
}

/// Operation names are `models/<model>/operations/<id>`; anything else is not put in a URL.
fn valid_operation_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn aspect_and_resolution(w: u32, h: u32) -> Option<(&'static str, &'static str)> {
    let aspect = if w > h { "16:9" } else { "9:16" };
    let short = w.min(h);
    let long = w.max(h);
    match (short, long) {
        (720, 1280) => Some((aspect, "720p")),
        (1080, 1920) => Some((aspect, "1080p")),
        _ => None,
    }
}

impl Veo {
    fn map_error(&self, ctx: &RemoteContext, what: &'static str, f: HttpFailure) -> BackendError {
        match f {
            HttpFailure::Status { status, body, .. } => {
                let (canonical, message) = google_error(&body);
                let message = if canonical.is_empty() {
                    message
                } else {
                    format!("{canonical}: {message}")
                };
                ctx.http_error(
                    what,
                    HttpFailure::Status {
                        status,
                        body: message,
                        retry_after: None,
                    },
                )
            }
            other => ctx.http_error(what, other),
        }
    }

    fn api_model(
        &self,
        ctx: &RemoteContext,
        req: &GenerationRequest,
    ) -> Result<String, BackendError> {
        let m = ctx.model(req)?;
        Ok(m.api_model.clone().unwrap_or_else(|| m.model.clone()))
    }
}

impl ProviderApi for Veo {
    fn name(&self) -> &'static str {
        "veo"
    }

    fn quote(&self, ctx: &RemoteContext, req: &GenerationRequest) -> Result<Quote, BackendError> {
        let spec = ctx.model(req)?;
        if !matches!(spec.price, ModelPrice::UsdPerS { .. }) {
            return Err(ctx.unsupported(format!(
                "model {} is not priced per second in the price table",
                spec.model
            )));
        }
        if req.prompt.trim().is_empty() {
            return Err(ctx.unsupported("the prompt is empty"));
        }
        if aspect_and_resolution(req.width, req.height).is_none() {
            return Err(ctx.unsupported(format!(
                "{}×{} is not a Veo output size (16:9 or 9:16 at 720p or 1080p)",
                req.width, req.height
            )));
        }
        let seconds = whole_seconds(req.duration_s, &ctx.cfg.durations_s)
            .map_err(|r| ctx.unsupported(format!("{r} (backends.veo.durations_s)")))?;
        ctx.quote_from_table(req, f64::from(seconds), f64::from(seconds), "s")
    }

    async fn create(
        &self,
        ctx: &RemoteContext,
        req: &GenerationRequest,
        _quote: &Quote,
        cancel: &AtomicBool,
    ) -> Result<String, BackendError> {
        let (aspect, resolution) = aspect_and_resolution(req.width, req.height)
            .ok_or_else(|| ctx.unsupported("unsupported output size"))?;
        let seconds =
            whole_seconds(req.duration_s, &ctx.cfg.durations_s).map_err(|r| ctx.unsupported(r))?;
        let body = json!({
            "instances": [{ "prompt": req.prompt }],
            "parameters": {
                "sampleCount": 1,
                "durationSeconds": seconds,
                "aspectRatio": aspect,
                "resolution": resolution,
            },
        });
        let url = format!(
            "{}/v1beta/models/{}:predictLongRunning",
            ctx.cfg.base_url,
            super::runway::urlencode(&self.api_model(ctx, req)?)
        );
        let resp = http::call(
            &|| {
                ctx.api
                    .post(&url)
                    .header(API_KEY_HEADER, ctx.cfg.api_key.expose())
                    .json(&body)
            },
            Idempotency::Create,
            &ctx.policy,
            cancel,
        )
        .await
        .map_err(|f| self.map_error(ctx, "start generation", f))?;
        let v = ctx.json("start generation", &resp.body)?;
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !valid_operation_name(&name) {
            return Err(ctx.protocol("start generation", "no valid operation name"));
        }
        Ok(name)
    }

    async fn poll(
        &self,
        ctx: &RemoteContext,
        task_id: &str,
        quote: &Quote,
        cancel: &AtomicBool,
    ) -> Result<TaskState, BackendError> {
        if !valid_operation_name(task_id) {
            return Err(ctx.protocol("get operation", "invalid operation name"));
        }
        let url = format!("{}/v1beta/{task_id}", ctx.cfg.base_url);
        let resp = http::call(
            &|| {
                ctx.api
                    .get(&url)
                    .header(API_KEY_HEADER, ctx.cfg.api_key.expose())
            },
            Idempotency::Idempotent,
            &ctx.policy,
            cancel,
        )
        .await
        .map_err(|f| self.map_error(ctx, "get operation", f))?;
        let v = ctx.json("get operation", &resp.body)?;
        if !v.get("done").and_then(Value::as_bool).unwrap_or(false) {
            return Ok(TaskState::Running { progress: None });
        }
        if let Some(e) = v.get("error") {
            let code = e
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| e.get("code").map(|c| c.to_string()))
                .unwrap_or_else(|| "UNKNOWN".into());
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the operation failed")
                .to_string();
            return Ok(TaskState::Failed {
                code,
                message,
                moderation: false,
                billed: None,
            });
        }
        let gvr = v
            .pointer("/response/generateVideoResponse")
            .cloned()
            .unwrap_or(Value::Null);
        let mut outputs = Vec::new();
        for sample in gvr
            .get("generatedSamples")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let video = sample.get("video").unwrap_or(&Value::Null);
            if let Some(uri) = video
                .get("uri")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
            {
                outputs.push(Output::Url(uri.to_string()));
            } else if let Some(b64) = video.get("encodedVideo").and_then(Value::as_str) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| {
                        ctx.protocol("get operation", format!("encodedVideo is not base64: {e}"))
                    })?;
                outputs.push(Output::Inline(bytes));
            }
        }
        if !outputs.is_empty() {
            return Ok(TaskState::Succeeded {
                outputs,
                billed: Some(Billed::from_quote(quote)),
            });
        }
        let filtered = gvr
            .get("raiMediaFilteredCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let reasons: Vec<String> = gvr
            .get("raiMediaFilteredReasons")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect()
            })
            .unwrap_or_default();
        if filtered > 0 || !reasons.is_empty() {
            return Ok(TaskState::Failed {
                code: "RAI_FILTERED".into(),
                message: if reasons.is_empty() {
                    format!("{filtered} video(s) filtered by the provider's responsible-AI policy")
                } else {
                    reasons.join("; ")
                },
                moderation: true,
                billed: None,
            });
        }
        Err(ctx.protocol("get operation", "done without a video and without a reason"))
    }

    async fn cancel(&self, _ctx: &RemoteContext, _task_id: &str) -> Result<bool, BackendError> {
        Ok(false)
    }

    fn download_auth(&self, ctx: &RemoteContext, url: &Url) -> Option<(HeaderName, HeaderValue)> {
        // Only Google's API host (or the configured base URL's host) gets the key; a redirect
        // to a storage host does not.
        let base = Url::parse(&ctx.cfg.base_url).ok()?;
        let same = url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default();
        if !(same || url.host_str() == Some("generativelanguage.googleapis.com")) {
            return None;
        }
        let mut v = HeaderValue::from_str(ctx.cfg.api_key.expose()).ok()?;
        v.set_sensitive(true);
        Some((HeaderName::from_static(API_KEY_HEADER), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_map_to_aspect_and_resolution() {
        assert_eq!(aspect_and_resolution(1280, 720), Some(("16:9", "720p")));
        assert_eq!(aspect_and_resolution(1080, 1920), Some(("9:16", "1080p")));
        assert_eq!(aspect_and_resolution(832, 480), None);
    }

    #[test]
    fn operation_names_are_checked_before_use_in_a_url() {
        assert!(valid_operation_name(
            "models/veo-3.1-generate-preview/operations/vz341u0pmdlc"
        ));
        assert!(!valid_operation_name("models/../../x"));
        assert!(!valid_operation_name("http://evil/x"));
        assert!(!valid_operation_name(""));
    }

    #[test]
    fn google_errors_give_status_and_message() {
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(
            google_error(body),
            (
                "INVALID_ARGUMENT".to_string(),
                "API key not valid. Please pass a valid API key.".to_string()
            )
        );
    }
}
