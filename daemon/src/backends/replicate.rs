//! Replicate (HTTP API v1, PROVIDERS.md §3): official models are run with
//! `POST /v1/models/{owner}/{name}/predictions`, pinned versions with `POST /v1/predictions`
//! (`version`); then `GET /v1/predictions/{id}` until `succeeded` / `failed` / `canceled`;
//! `POST /v1/predictions/{id}/cancel` cancels. Output files are URLs (a string or a list) that
//! want the `Authorization` header. Billing is by hardware time: `metrics.predict_time` × the
//! hardware's per-second price. The job's cap is sent as `Cancel-After` (Replicate stops the
//! prediction — and the meter — then), and enforced again while polling.
//!
//! Replicate has no balance endpoint (`GET /v1/account` has no credit): spend is capped by the
//! configured budget in the ledger, and Replicate's own 402 "Insufficient credit" is reported
//! as insufficient funds. When `webhook_url` is set, Replicate is asked to call it on
//! completion; the call (verified with the `whsec_` secret) wakes the poll loop at once.

use std::sync::atomic::AtomicBool;

use aiprod_planner::pricing::ModelPrice;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use serde_json::{json, Value};

use super::http::{self, HttpFailure, Idempotency};
use super::remote::{Billed, Output, ProviderApi, RemoteContext, TaskState};
use super::runway::{urlencode, whole_seconds};
use super::{usd, BackendError, GenerationRequest, Quote};

/// Replicate's seed range (the models take a 32-bit seed).
const MAX_SEED: u64 = 4_294_967_295;
/// The shortest Cancel-After we send: the model needs time to boot at all.
const MIN_CANCEL_AFTER_S: u64 = 10;

/// The Replicate predictions API.
pub struct Replicate;

/// RFC 7807 problem body: `detail`, else `title`, else the body.
fn problem_detail(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let get = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut text = get("detail")
        .or_else(|| get("title"))
        .unwrap_or_else(|| body.to_string());
    // 422 input validation may list the fields (shape unconfirmed: kept as text).
    if let Some(fields) = v.as_ref().and_then(|v| v.get("invalid_fields")) {
        text.push_str(&format!(" (invalid fields: {fields})"));
    }
    text
}

/// Replicate's moderation failure: "The input or output was flagged as sensitive. ... (E005)".
pub fn is_moderation(error: &str) -> bool {
    error.contains("E005") || error.to_ascii_lowercase().contains("flagged as sensitive")
}

/// `(hardware name, USD per hardware second, hardware seconds per output second)` of a model.
fn hardware(
    ctx: &RemoteContext,
    req: &GenerationRequest,
) -> Result<(String, f64, f64), BackendError> {
    let spec = ctx.model(req)?;
    match &spec.price {
        ModelPrice::HardwareS {
            hardware,
            hardware_s_per_output_s,
        } => {
            let rate = ctx
                .prices
                .hardware
                .get(hardware)
                .map(|h| h.usd_per_s)
                .ok_or_else(|| ctx.unsupported(format!("no price for hardware {hardware}")))?;
            Ok((hardware.clone(), rate, *hardware_s_per_output_s))
        }
        _ => Err(ctx.unsupported(format!(
            "model {} is not priced by hardware time in the price table",
            spec.model
        ))),
    }
}

/// The cost of `predict_s` seconds at `usd_per_s`.
fn billed_for(predict_s: f64, usd_per_s: f64) -> Billed {
    Billed {
        usd_micros: (predict_s.max(0.0) * usd_per_s * 1e6).round() as i64,
        units: predict_s.max(0.0),
        unit: "predict_s",
    }
}

impl Replicate {
    fn map_error(
        &self,
        ctx: &RemoteContext,
        what: &'static str,
        f: HttpFailure,
        quote: Option<&Quote>,
    ) -> BackendError {
        match f {
            HttpFailure::Status {
                status: 402, body, ..
            } => BackendError::InsufficientFunds {
                backend: "replicate",
                what: "credit",
                needed: quote
                    .map(|q| format!("about {} (estimate)", usd(q.usd_micros)))
                    .unwrap_or_else(|| "?".into()),
                available: format!("less (Replicate: {})", problem_detail(&body)),
            },
            HttpFailure::Status {
                status: 422, body, ..
            } => ctx.unsupported(format!("input refused: {}", problem_detail(&body))),
            HttpFailure::Status {
                status,
                body,
                retry_after,
            } => ctx.http_error(
                what,
                HttpFailure::Status {
                    status,
                    body: problem_detail(&body),
                    retry_after,
                },
            ),
            other => ctx.http_error(what, other),
        }
    }

    fn usd_per_s(&self, ctx: &RemoteContext, quote: &Quote) -> f64 {
        // The quote's own rate: USD per predict-second.
        if quote.units > 0.0 {
            quote.usd_micros as f64 / 1e6 / quote.units
        } else {
            let _ = ctx;
            0.0
        }
    }
}

impl ProviderApi for Replicate {
    fn name(&self) -> &'static str {
        "replicate"
    }

    fn quote(&self, ctx: &RemoteContext, req: &GenerationRequest) -> Result<Quote, BackendError> {
        let (hw, rate, hw_s_per_s) = hardware(ctx, req)?;
        if req.prompt.trim().is_empty() {
            return Err(ctx.unsupported("the prompt is empty"));
        }
        if !ctx.cfg.durations_s.is_empty() {
            whole_seconds(req.duration_s, &ctx.cfg.durations_s)
                .map_err(|r| ctx.unsupported(format!("{r} (backends.replicate.durations_s)")))?;
        }
        let predict_s = hw_s_per_s * req.duration_s;
        let mut q = ctx.quote_from_table(req, req.duration_s, predict_s, "predict_s")?;
        // The table's charge and ours agree; say which hardware in the basis.
        q.usd_micros = (predict_s * rate * 1e6).round() as i64;
        q.basis = format!("{} (estimated {predict_s} s of {hw} at ${rate}/s)", q.basis);
        Ok(q)
    }

    async fn create(
        &self,
        ctx: &RemoteContext,
        req: &GenerationRequest,
        quote: &Quote,
        cancel: &AtomicBool,
    ) -> Result<String, BackendError> {
        let spec = ctx.model(req)?;
        let model = spec.api_model.clone().unwrap_or_else(|| spec.model.clone());
        let mut input = json!({
            "prompt": req.prompt,
            "seed": req.seed % (MAX_SEED + 1),
            "aspect_ratio": if req.width >= req.height { "16:9" } else { "9:16" },
        });
        if !ctx.cfg.durations_s.is_empty() {
            input["duration"] = json!(req.duration_s.round() as u64);
        }
        let (url, mut body) = match model.split_once(':') {
            // owner/name:version or a bare version id → the predictions endpoint.
            Some(_) => (
                format!("{}/v1/predictions", ctx.cfg.base_url),
                json!({ "version": model, "input": input }),
            ),
            None if model.len() == 64 && model.chars().all(|c| c.is_ascii_hexdigit()) => (
                format!("{}/v1/predictions", ctx.cfg.base_url),
                json!({ "version": model, "input": input }),
            ),
            None => {
                let (owner, name) = model
                    .split_once('/')
                    .ok_or_else(|| ctx.unsupported(format!("model {model:?} is not owner/name")))?;
                (
                    format!(
                        "{}/v1/models/{}/{}/predictions",
                        ctx.cfg.base_url,
                        urlencode(owner),
                        urlencode(name)
                    ),
                    json!({ "input": input }),
                )
            }
        };
        if let Some(hook) = &ctx.cfg.webhook_url {
            body["webhook"] = json!(hook);
            body["webhook_events_filter"] = json!(["completed"]);
        }
        // The job's cap, as time: Replicate cancels the prediction when it is reached.
        let cancel_after = req.max_charge_usd_micros.and_then(|cap| {
            let rate = self.usd_per_s(ctx, quote);
            (rate > 0.0).then(|| ((cap as f64 / 1e6 / rate).floor() as u64).max(MIN_CANCEL_AFTER_S))
        });
        let resp = http::call(
            &|| {
                let mut b = ctx
                    .api
                    .post(&url)
                    .bearer_auth(ctx.cfg.api_key.expose())
                    .json(&body);
                if let Some(s) = cancel_after {
                    b = b.header("Cancel-After", format!("{s}s"));
                }
                b
            },
            Idempotency::Create,
            &ctx.policy,
            cancel,
        )
        .await
        .map_err(|f| self.map_error(ctx, "create prediction", f, Some(quote)))?;
        let v = ctx.json("create prediction", &resp.body)?;
        v.get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ctx.protocol("create prediction", "no prediction id"))
    }

    async fn poll(
        &self,
        ctx: &RemoteContext,
        task_id: &str,
        quote: &Quote,
        cancel: &AtomicBool,
    ) -> Result<TaskState, BackendError> {
        let url = format!("{}/v1/predictions/{}", ctx.cfg.base_url, urlencode(task_id));
        let resp = http::call(
            &|| ctx.api.get(&url).bearer_auth(ctx.cfg.api_key.expose()),
            Idempotency::Idempotent,
            &ctx.policy,
            cancel,
        )
        .await
        .map_err(|f| self.map_error(ctx, "get prediction", f, None))?;
        let v = ctx.json("get prediction", &resp.body)?;
        let rate = self.usd_per_s(ctx, quote);
        let billed = v
            .pointer("/metrics/predict_time")
            .and_then(Value::as_f64)
            .map(|s| billed_for(s, rate));
        let status = v.get("status").and_then(Value::as_str).unwrap_or_default();
        Ok(match status {
            "starting" | "processing" => TaskState::Running { progress: None },
            "succeeded" => {
                let outputs: Vec<Output> = match v.get("output") {
                    Some(Value::String(u)) => vec![Output::Url(u.clone())],
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|u| Output::Url(u.to_string()))
                        .collect(),
                    _ => Vec::new(),
                };
                if outputs.is_empty() {
                    let removed = v
                        .get("data_removed")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    return Err(ctx.protocol(
                        "get prediction",
                        if removed {
                            "succeeded, but its output was already removed (Replicate keeps API outputs for an hour)"
                        } else {
                            "succeeded without an output URL"
                        },
                    ));
                }
                TaskState::Succeeded {
                    outputs,
                    billed: Some(billed.unwrap_or_else(|| Billed::from_quote(quote))),
                }
            }
            "failed" => {
                let message = v
                    .get("error")
                    .map(|e| match e {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| "the prediction failed".into());
                let moderation = is_moderation(&message);
                TaskState::Failed {
                    code: if moderation {
                        "E005".into()
                    } else {
                        "failed".into()
                    },
                    message,
                    moderation,
                    billed,
                }
            }
            "canceled" | "cancelled" => TaskState::Cancelled { billed },
            other => {
                tracing::warn!(
                    task_id,
                    status = other,
                    "unknown Replicate status; treating as running"
                );
                TaskState::Running { progress: None }
            }
        })
    }

    async fn cancel(&self, ctx: &RemoteContext, task_id: &str) -> Result<bool, BackendError> {
        let url = format!(
            "{}/v1/predictions/{}/cancel",
            ctx.cfg.base_url,
            urlencode(task_id)
        );
        let never = AtomicBool::new(false);
        http::call(
            &|| ctx.api.post(&url).bearer_auth(ctx.cfg.api_key.expose()),
            Idempotency::Idempotent,
            &ctx.policy,
            &never,
        )
        .await
        .map(|_| true)
        .map_err(|f| self.map_error(ctx, "cancel prediction", f, None))
    }

    fn download_auth(&self, ctx: &RemoteContext, url: &Url) -> Option<(HeaderName, HeaderValue)> {
        // "You'll need to pass the Authorization header to request them": files on
        // replicate.delivery (and the API host itself); never another host.
        let host = url.host_str()?;
        let base = Url::parse(&ctx.cfg.base_url).ok()?;
        let ours = (Some(host) == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default())
            || host == "replicate.delivery"
            || host.ends_with(".replicate.delivery");
        if !ours {
            return None;
        }
        let mut v = HeaderValue::from_str(&format!("Bearer {}", ctx.cfg.api_key.expose())).ok()?;
        v.set_sensitive(true);
        Some((reqwest::header::AUTHORIZATION, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_and_moderation_are_read_from_the_documented_texts() {
        let body = r#"{"title":"Insufficient credit","detail":"You have insufficient credit to run this model.","status":402}"#;
        assert_eq!(
            problem_detail(body),
            "You have insufficient credit to run this model."
        );
        assert!(is_moderation(
            "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
        ));
        assert!(!is_moderation("CUDA out of memory"));
    }

    #[test]
    fn predict_time_is_billed_at_the_hardware_rate() {
        // 31.25 s on an A100 80GB at $0.0014/s = $0.04375.
        let b = billed_for(31.25, 0.0014);
        assert_eq!(
            (b.usd_micros, b.units, b.unit),
            (43_750, 31.25, "predict_s")
        );
    }
}
