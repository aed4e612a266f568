//! Runway (REST API v1, PROVIDERS.md §1): `POST /v1/text_to_video` → `{"id"}`, then
//! `GET /v1/tasks/{id}` until SUCCEEDED (output URLs, valid 24–48 h) or FAILED (`failureCode`);
//! `DELETE /v1/tasks/{id}` cancels; `GET /v1/organization` gives `creditBalance` (1 credit =
//! $0.01) and the tier's daily generation limits. Every request carries
//! `Authorization: Bearer <key>` and `X-Runway-Version: 2024-11-06`.
//!
//! Billing: the API reports no per-task charge; a task costs the documented credits per
//! second × its whole-second duration. Failures: `SAFETY.INPUT.*` is not refunded (Runway's
//! skills page), other failures are ("credits for generation errors will be returned").

use std::sync::atomic::AtomicBool;

use aiprod_planner::pricing::ModelPrice;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use serde_json::{json, Value};

use super::http::{self, HttpFailure, Idempotency};
use super::remote::{Balance, Billed, Output, ProviderApi, RemoteContext, TaskState};
use super::{BackendError, GenerationRequest, Quote};

/// The API version the SDK pins (`runway_version="2024-11-06"`).
pub const API_VERSION: &str = "2024-11-06";
/// promptText limit: 1000 UTF-16 code units.
const MAX_PROMPT_UTF16: usize = 1000;
/// gen4.5 and most models: whole seconds 2..=10.
const DEFAULT_DURATIONS: std::ops::RangeInclusive<u32> = 2..=10;
/// Runway's seed range.
const MAX_SEED: u64 = 4_294_967_295;

/// The Runway API.
pub struct Runway;

/// Durations a model accepts (PROVIDERS.md: veo3 must be 8; veo3.1(_fast) 4, 6 or 8; gen4.5
/// and others 2..=10); the config's `durations_s` overrides.
fn allowed_durations(ctx: &RemoteContext, api_model: &str) -> Vec<u32> {
    if !ctx.cfg.durations_s.is_empty() {
        return ctx.cfg.durations_s.clone();
    }
    match api_model {
        "veo3" => vec![8],
        "veo3.1" | "veo3.1_fast" => vec![4, 6, 8],
        _ => DEFAULT_DURATIONS.collect(),
    }
}

fn api_model(ctx: &RemoteContext, req: &GenerationRequest) -> Result<String, BackendError> {
    let m = ctx.model(req)?;
    Ok(m.api_model.clone().unwrap_or_else(|| m.model.clone()))
}

/// The whole-second duration of a request, if it is one the model accepts.
pub fn whole_seconds(duration_s: f64, allowed: &[u32]) -> Result<u32, String> {
    let rounded = duration_s.round();
    let list = allowed
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if (duration_s - rounded).abs() > 1e-6 || rounded < 1.0 || !allowed.contains(&(rounded as u32))
    {
        return Err(format!(
            "duration {duration_s} s is not one the model generates ({list} s)"
        ));
    }
    Ok(rounded as u32)
}

fn headers(ctx: &RemoteContext, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    b.bearer_auth(ctx.cfg.api_key.expose())
        .header("X-Runway-Version", API_VERSION)
}

/// The `error` member of a Runway error body (or the body itself).
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

/// Runway's refusal for lack of credits (status code unconfirmed: matched on the message of
/// any 4xx, [rw-issue28] "You do not have enough credits to run this task.").
fn is_credit_refusal(status: u16, message: &str) -> bool {
    (400..500).contains(&status) && message.to_ascii_lowercase().contains("enough credits")
}

impl Runway {
    fn map_error(
        &self,
        ctx: &RemoteContext,
        what: &'static str,
        f: HttpFailure,
        quote: Option<&Quote>,
    ) -> BackendError {
        match f {
            HttpFailure::Status { status, body, .. } => {
                let message = error_message(&body);
                if is_credit_refusal(status, &message) {
                    return BackendError::InsufficientFunds {
                        backend: "runway",
                        what: "credits",
                        needed: quote
                            .map(|q| {
                                format!("{} {} ({})", q.units, q.unit, super::usd(q.usd_micros))
                            })
                            .unwrap_or_else(|| "?".into()),
                        available: format!("less (Runway refused the task: {message})"),
                    };
                }
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
}

impl ProviderApi for Runway {
    fn name(&self) -> &'static str {
        "runway"
    }

    fn quote(&self, ctx: &RemoteContext, req: &GenerationRequest) -> Result<Quote, BackendError> {
        let spec = ctx.model(req)?;
        if !spec.text_to_video {
            return Err(ctx.unsupported(format!(
                "model {} needs an input image (image_to_video); aiprod generates from a prompt",
                spec.model
            )));
        }
        let credits_per_s = match spec.price {
            ModelPrice::CreditsPerS { credits_per_s } => credits_per_s,
            _ => {
                return Err(ctx.unsupported(format!(
                    "model {} is not priced in credits in the price table",
                    spec.model
                )))
            }
        };
        let api_model = api_model(ctx, req)?;
        let prompt_units = req.prompt.encode_utf16().count();
        if req.prompt.trim().is_empty() || prompt_units > MAX_PROMPT_UTF16 {
            return Err(ctx.unsupported(format!(
                "the prompt must be 1..={MAX_PROMPT_UTF16} UTF-16 units (got {prompt_units})"
            )));
        }
        if !spec.native.is_empty() && !spec.native.contains(&[req.width, req.height]) {
            return Err(ctx.unsupported(format!(
                "{}×{} is not a ratio {} generates",
                req.width, req.height, spec.model
            )));
        }
        let seconds = whole_seconds(req.duration_s, &allowed_durations(ctx, &api_model))
            .map_err(|r| ctx.unsupported(r))?;
        let credits = credits_per_s * f64::from(seconds);
        ctx.quote_from_table(req, f64::from(seconds), credits, "credits")
    }

    async fn balance(
        &self,
        ctx: &RemoteContext,
        req: &GenerationRequest,
        policy: &http::RetryPolicy,
        cancel: &AtomicBool,
    ) -> Result<Option<Balance>, BackendError> {
        let url = format!("{}/v1/organization", ctx.cfg.base_url);
        let resp = http::call(
            &|| headers(ctx, ctx.api.get(&url)),
            Idempotency::Idempotent,
            policy,
            cancel,
        )
        .await
        .map_err(|f| self.map_error(ctx, "read organization", f, None))?;
        let v = ctx.json("organization", &resp.body)?;
        let credits = v
            .get("creditBalance")
            .and_then(Value::as_f64)
            .ok_or_else(|| ctx.protocol("organization", "no numeric creditBalance"))?;
        let usd_per_credit = ctx
            .prices
            .credits
            .get("runway")
            .map(|c| c.usd_per_credit)
            .ok_or_else(|| ctx.unsupported("no [credits.runway] in the price table"))?;
        // The tier's daily generation limit for the model (rolling 24 h), when reported.
        let api_model = api_model(ctx, req)?;
        let max_daily = v
            .pointer(&format!(
                "/tier/models/{}/maxDailyGenerations",
                json_pointer_escape(&api_model)
            ))
            .and_then(Value::as_u64);
        let used = v
            .pointer(&format!(
                "/usage/models/{}/dailyGenerations",
                json_pointer_escape(&api_model)
            ))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let refusal = max_daily.filter(|m| used >= *m).map(|m| {
            format!("the daily generation limit of {m} for model {api_model} is used up (Runway counts a rolling 24 h)")
        });
        Ok(Some(Balance {
            available_usd_micros: (credits * usd_per_credit * 1e6).round() as i64,
            available_units: credits,
            unit: "credits",
            refusal,
        }))
    }

    async fn create(
        &self,
        ctx: &RemoteContext,
        req: &GenerationRequest,
        quote: &Quote,
        cancel: &AtomicBool,
    ) -> Result<String, BackendError> {
        let api_model = api_model(ctx, req)?;
        let seconds = whole_seconds(req.duration_s, &allowed_durations(ctx, &api_model))
            .map_err(|r| ctx.unsupported(r))?;
        let body = json!({
            "model": api_model,
            "promptText": req.prompt,
            "ratio": format!("{}:{}", req.width, req.height),
            "duration": seconds,
            "seed": req.seed % (MAX_SEED + 1),
        });
        let url = format!("{}/v1/text_to_video", ctx.cfg.base_url);
        let resp = http::call(
            &|| headers(ctx, ctx.api.post(&url)).json(&body),
            Idempotency::Create,
            &ctx.policy,
            cancel,
        )
        .await
        .map_err(|f| self.map_error(ctx, "create task", f, Some(quote)))?;
        let v = ctx.json("create task", &resp.body)?;
        v.get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ctx.protocol("create task", "no task id"))
    }

    async fn poll(
        &self,
        ctx: &RemoteContext,
        task_id: &str,
        quote: &Quote,
        cancel: &AtomicBool,
    ) -> Result<TaskState, BackendError> {
        let url = format!("{}/v1/tasks/{}", ctx.cfg.base_url, urlencode(task_id));
        let resp = http::call(
            &|| headers(ctx, ctx.api.get(&url)),
            Idempotency::Idempotent,
            &ctx.policy,
            cancel,
        )
        .await
        .map_err(|f| self.map_error(ctx, "get task", f, None))?;
        let v = ctx.json("get task", &resp.body)?;
        let status = v.get("status").and_then(Value::as_str).unwrap_or_default();
        Ok(match status {
            "PENDING" | "THROTTLED" => TaskState::Running { progress: None },
            "RUNNING" => TaskState::Running {
                progress: v.get("progress").and_then(Value::as_f64),
            },
            "SUCCEEDED" => {
                let outputs: Vec<Output> = v
                    .get("output")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|u| Output::Url(u.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                if outputs.is_empty() {
                    return Err(ctx.protocol("get task", "SUCCEEDED without output URLs"));
                }
                TaskState::Succeeded {
                    outputs,
                    billed: Some(Billed::from_quote(quote)),
                }
            }
            "FAILED" => {
                let code = v
                    .get("failureCode")
                    .and_then(Value::as_str)
                    .unwrap_or("UNKNOWN")
                    .to_string();
                let message = v
                    .get("failure")
                    .and_then(Value::as_str)
                    .unwrap_or("the task failed")
                    .to_string();
                let moderation =
                    code.starts_with("SAFETY.") || code.starts_with("INPUT_PREPROCESSING.SAFETY");
                // Input moderation is not refundable; other failures are refunded.
                let billed = code
                    .starts_with("SAFETY.INPUT")
                    .then(|| Billed::from_quote(quote));
                TaskState::Failed {
                    code,
                    message,
                    moderation,
                    billed,
                }
            }
            // The SDK spells it CANCELLED; the skills page's CANCELED is tolerated.
            "CANCELLED" | "CANCELED" => TaskState::Cancelled { billed: None },
            other => {
                tracing::warn!(
                    task_id,
                    status = other,
                    "unknown Runway task status; treating as running"
                );
                TaskState::Running { progress: None }
            }
        })
    }

    async fn cancel(&self, ctx: &RemoteContext, task_id: &str) -> Result<bool, BackendError> {
        let url = format!("{}/v1/tasks/{}", ctx.cfg.base_url, urlencode(task_id));
        let never = AtomicBool::new(false);
        match http::call(
            &|| headers(ctx, ctx.api.delete(&url)).header(reqwest::header::ACCEPT, "*/*"),
            Idempotency::Idempotent,
            &ctx.policy,
            &never,
        )
        .await
        {
            Ok(_) | Err(HttpFailure::Status { status: 404, .. }) => Ok(true),
            Err(f) => Err(self.map_error(ctx, "cancel task", f, None)),
        }
    }

    fn download_auth(&self, _ctx: &RemoteContext, _url: &Url) -> Option<(HeaderName, HeaderValue)> {
        // Output URLs are pre-signed; the API key is never sent to them.
        None
    }
}

/// Escapes a JSON-pointer segment (`~` and `/`), e.g. for model names.
fn json_pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Percent-encodes a path segment (task ids are UUIDs, but never trust an answer).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_whole_allowed_seconds() {
        let gen45: Vec<u32> = DEFAULT_DURATIONS.collect();
        assert_eq!(whole_seconds(5.0, &gen45), Ok(5));
        assert!(whole_seconds(5.5, &gen45).is_err());
        assert!(whole_seconds(1.0, &gen45).is_err());
        assert!(whole_seconds(11.0, &gen45).is_err());
        assert_eq!(whole_seconds(8.0, &[8]), Ok(8));
        assert!(whole_seconds(4.0, &[8]).unwrap_err().contains("8 s"));
    }

    #[test]
    fn credit_refusals_are_recognised_by_message() {
        let body = r#"{"error":"You do not have enough credits to run this task."}"#;
        let m = error_message(body);
        assert_eq!(m, "You do not have enough credits to run this task.");
        assert!(is_credit_refusal(400, &m));
        assert!(is_credit_refusal(402, &m));
        assert!(!is_credit_refusal(500, &m));
        assert!(!is_credit_refusal(400, "promptText: too long"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(urlencode("abc-123"), "abc-123");
        assert_eq!(urlencode("../x y"), "..%2Fx%20y");
    }
}
