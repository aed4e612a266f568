//! Prometheus metrics and the HTTP port: `/metrics` (text format) and `/healthz`. Labels are
//! bounded sets (state, stage, backend, tier); never a job id.

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::proto::JobState;

/// Stage durations run from a fraction of a second (QC of a short clip) to many minutes
/// (remote generation); buckets span that range.
const STAGE_BUCKETS_S: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Every metric the daemon exports, registered once.
pub struct Metrics {
    pub registry: Registry,
    /// Jobs currently in each state (final states count every job that ended there).
    pub jobs: IntGaugeVec,
    pub stage_duration_s: HistogramVec,
    pub cost_usd: CounterVec,
    pub estimated_cost_usd: CounterVec,
    pub frames_per_s: GaugeVec,
    pub plans: IntCounterVec,
    pub grpc_requests: IntCounterVec,
}

/// Metrics registration can only fail on a programming error (a duplicate name); that is
/// caught by the tests, so the error type stays a plain prometheus error.
impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let jobs = IntGaugeVec::new(Opts::new("aiprod_jobs", "Jobs by state"), &["state"])?;
        let stage_duration_s = HistogramVec::new(
            HistogramOpts::new(
                "aiprod_stage_duration_seconds",
                "Wall time of each job stage",
            )
            .buckets(STAGE_BUCKETS_S.to_vec()),
            &["stage", "backend"],
        )?;
        let cost_usd = CounterVec::new(
            Opts::new(
                "aiprod_cost_usd_total",
                "Actual cost in USD by backend, tier and stage (receipt line item)",
            ),
            &["backend", "tier", "stage"],
        )?;
        let estimated_cost_usd = CounterVec::new(
            Opts::new(
                "aiprod_estimated_cost_usd_total",
                "Estimated cost in USD by backend, tier and stage",
            ),
            &["backend", "tier", "stage"],
        )?;
        let frames_per_s = GaugeVec::new(
            Opts::new(
                "aiprod_frames_per_second",
                "Frames per second of the last run of each stage",
            ),
            &["stage"],
        )?;
        let plans = IntCounterVec::new(
            Opts::new("aiprod_plans_total", "Plans estimated, by recommended tier"),
            &["recommended"],
        )?;
        let grpc_requests = IntCounterVec::new(
            Opts::new(
                "aiprod_grpc_requests_total",
                "gRPC requests by method and status code",
            ),
            &["method", "code"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "aiprod_build_info",
                "Build information; the value is always 1",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for c in [
            Box::new(jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(stage_duration_s.clone()),
            Box::new(cost_usd.clone()),
            Box::new(estimated_cost_usd.clone()),
            Box::new(frames_per_s.clone()),
            Box::new(plans.clone()),
            Box::new(grpc_requests.clone()),
            Box::new(build_info),
        ] {
            registry.register(c)?;
        }
        for s in ALL_STATES {
            jobs.with_label_values(&[state_label(*s)]).set(0);
        }
        // process_cpu_seconds_total, memory, fds: how busy the node is (dashboard CPU chart).
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            jobs,
            stage_duration_s,
            cost_usd,
            estimated_cost_usd,
            frames_per_s,
            plans,
            grpc_requests,
        })
    }

    /// Moves one job from `from` (None for a new job) to `to` in the jobs-by-state gauge.
    pub fn job_transition(&self, from: Option<JobState>, to: JobState) {
        if let Some(f) = from {
            if f == to {
                return;
            }
            self.jobs.with_label_values(&[state_label(f)]).dec();
        }
        self.jobs.with_label_values(&[state_label(to)]).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

const ALL_STATES: &[JobState] = &[
    JobState::Queued,
    JobState::Generating,
    JobState::Processing,
    JobState::Validating,
    JobState::Succeeded,
    JobState::Failed,
    JobState::Cancelled,
];

/// The state's label: "queued", "generating", ...
pub fn state_label(s: JobState) -> &'static str {
    match s {
        JobState::Unspecified => "unspecified",
        JobState::Queued => "queued",
        JobState::Generating => "generating",
        JobState::Processing => "processing",
        JobState::Validating => "validating",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// The HTTP router: `/metrics` and `/healthz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(metrics)
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_build_info_and_job_states() {
        let m = Metrics::new().unwrap();
        m.job_transition(None, JobState::Queued);
        m.job_transition(Some(JobState::Queued), JobState::Generating);
        let text = m.render();
        assert!(
            text.contains("aiprod_build_info{version=\"0.1.0\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("aiprod_jobs{state=\"generating\"} 1"),
            "{text}"
        );
        assert!(text.contains("aiprod_jobs{state=\"queued\"} 0"), "{text}");
    }
}
