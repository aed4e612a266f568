//! Webhooks *to* aiprod: Replicate calls `POST /webhooks/replicate` (on the HTTP port) when a
//! prediction completes, signed the Standard Webhooks way with the account's `whsec_` secret.
//! A verified call wakes the job polling that prediction, which then reads the prediction
//! through the API as usual — the callback's body is never trusted for results or money.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

use super::signing::SigningKey;
use crate::backends::remote::TaskWakeups;

/// Callbacks older or newer than this are refused (replay protection).
const TOLERANCE_S: i64 = 300;

#[derive(Clone)]
struct Inbound {
    key: SigningKey,
    wakeups: Arc<TaskWakeups>,
}

/// The route for Replicate's callbacks.
pub fn replicate_router(key: SigningKey, wakeups: Arc<TaskWakeups>) -> Router {
    Router::new()
        .route("/webhooks/replicate", post(replicate))
        .with_state(Inbound { key, wakeups })
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn replicate(State(s): State<Inbound>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now_s = crate::now_unix_ms() / 1000;
    if let Err(e) = s.key.verify(
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
        &body,
        now_s,
        Some(TOLERANCE_S),
    ) {
        tracing::info!("refused a Replicate callback: {e}");
        return StatusCode::UNAUTHORIZED;
    }
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string));
    match id {
        Some(id) => {
            let waiting = s.wakeups.wake(&id);
            tracing::debug!(prediction = %id, waiting, "Replicate callback");
            StatusCode::OK
        }
        None => StatusCode::BAD_REQUEST,
    }
}
