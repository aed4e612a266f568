//! The web dashboard, served by aiprodd on its HTTP port: the embedded single-page app (`/`,
//! `/assets/…`), the JSON API it calls (`/api/…`: the Control service's own logic, spoken as
//! proto3 JSON) and the live metrics WebSocket (`/ws/metrics`).

pub mod api;
pub mod assets;
pub mod error;
pub mod live;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;
use tonic::service::Interceptor;

use crate::auth::AuthInterceptor;
use crate::control::ControlService;
use crate::jobs::JobEngine;
use crate::telemetry::Metrics;
use error::ApiError;
pub use live::LiveMetrics;

/// API request bodies are a prompt and a few numbers; anything this large is a mistake.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the handlers share.
pub struct Dashboard {
    control: Arc<ControlService>,
    /// The gRPC port's auth, applied to every API call (see [`Dashboard::grpc_request`]).
    auth: AuthInterceptor,
    /// Set when the API must refuse every call: no auth and a non-loopback HTTP address.
    api_refusal: Option<String>,
    engine: Arc<JobEngine>,
    live: Arc<LiveMetrics>,
    /// Turns true when the daemon shuts down: streams (job events, metrics) end then.
    stop: watch::Receiver<bool>,
}

impl Dashboard {
    /// Starts the metrics sampler (it stops when the dashboard is dropped).
    pub fn new(
        control: Arc<ControlService>,
        auth: AuthInterceptor,
        engine: Arc<JobEngine>,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let api_refusal = api_refusal(auth.0.is_some(), engine.config.http_addr);
        if let Some(why) = &api_refusal {
            tracing::warn!("{why}");
        }
        Self {
            control,
            auth,
            api_refusal,
            engine,
            live: LiveMetrics::start(metrics, live::SAMPLE_INTERVAL),
            stop,
        }
    }

    /// The auth hook. Every API call reaches the Control service as a `tonic::Request` that
    /// carries the caller's `Authorization` header as `authorization` metadata and has been
    /// through the gRPC port's own [`AuthInterceptor`], so the service sees the same tenant (or
    /// refusal) as for a gRPC client sending that token.
    fn grpc_request<T>(
        &self,
        headers: &HeaderMap,
        message: T,
    ) -> Result<tonic::Request<T>, ApiError> {
        if let Some(why) = &self.api_refusal {
            return Err(ApiError::Forbidden(why.clone()));
        }
        let mut req = tonic::Request::new(());
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("Authorization", "not ASCII text"))?;
            let meta = text
                .parse()
                .map_err(|_| ApiError::bad_request("Authorization", "not a valid header value"))?;
            req.metadata_mut().insert("authorization", meta);
        }
        let (metadata, extensions, ()) = self.auth.clone().call(req)?.into_parts();
        Ok(tonic::Request::from_parts(metadata, extensions, message))
    }
}

/// Why the API must refuse every call, if it must. Without auth every caller is the default
/// tenant, so the gRPC port is loopback-only (config); the same API on a wider HTTP address
/// must not open a way around that. The page, /metrics and /ws/metrics (aggregates, no tenant
/// data) stay up.
fn api_refusal(auth_enabled: bool, http_addr: SocketAddr) -> Option<String> {
    (!auth_enabled && !http_addr.ip().is_loopback()).then(|| {
        format!(
            "the dashboard API is off: http_addr {http_addr} is not loopback and no [auth] is \
             configured (add auth.api_keys or auth.jwks_file, or bind http_addr to loopback)"
        )
    })
}

/// The dashboard's routes, to be merged into the HTTP router.
pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*path}", get(assets::asset))
        .route("/api/options", get(api::options))
        .route("/api/plan", post(api::plan))
        .route("/api/generate", post(api::generate))
        .route("/api/jobs", get(api::list_jobs))
        .route("/api/jobs/{id}", get(api::get_job))
        .route("/api/jobs/{id}/cancel", post(api::cancel_job))
        .route("/api/jobs/{id}/events", get(api::job_events))
        .route("/api/jobs/{id}/receipt", get(api::receipt))
        .route("/api/jobs/{id}/video", get(api::video))
        .route("/api/usage", get(api::usage))
        .route("/ws/metrics", get(live::socket))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(dashboard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_without_auth_is_loopback_only() {
        let lo: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let lo6: SocketAddr = "[::1]:9464".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert_eq!(api_refusal(false, lo), None);
        assert_eq!(api_refusal(false, lo6), None);
        assert_eq!(api_refusal(true, any), None);
        assert!(api_refusal(false, any).unwrap().contains("0.0.0.0:9464"));
    }
}
