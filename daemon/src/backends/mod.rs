//! Backends produce the footage for a job. The local backend (embedded default) renders it with
//! GStreamer sources; remote video-generation APIs (Runway, Google Veo through the Gemini API,
//! Replicate) plug in behind the same trait, check credits or budget before spending, and
//! download what they made to local disk, where it enters the pipeline like local footage.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use aiprod_planner::PriceTable;

use crate::config::Config;
use crate::jobs::store::Store;
use crate::pipeline;

pub mod http;
pub mod ledger;
pub mod local;
pub mod remote;
pub mod replicate;
pub mod runway;
pub mod settings;
pub mod veo;

/// What a backend is asked to generate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GenerationRequest {
    /// The job this generation belongs to: remote backends key their ledger rows by it, so a
    /// job resumed after a crash polls the task it already paid for instead of a new one.
    pub job_id: String,
    pub prompt: String,
    pub seed: u64,
    pub model: String,
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    pub duration_s: f64,
    /// The most the provider may charge for this generation (micro-USD): what the plan's
    /// `max_cost_usd` leaves after the node's own lines. None: no cap beyond funds.
    pub max_charge_usd_micros: Option<i64>,
}

/// What a backend delivered: a media file on local disk plus what the provider billed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Generated {
    pub path: PathBuf,
    /// Seconds of local compute spent (0 for remote backends, whose time is the provider's).
    pub compute_s: f64,
    /// The provider's charge in micro-USD (0 for the local backend).
    pub provider_charge_usd_micros: i64,
    /// The provider's own task id, when there is one.
    pub provider_task_id: String,
    /// What the provider billed, in its own unit (e.g. 60 "credits", 8 "s" of video, 31.2
    /// "predict_s"); 0 and "" for the local backend.
    pub billed_units: f64,
    pub billed_unit: String,
    /// SHA-256 (hex) of the file as downloaded; empty for local renders.
    pub sha256: String,
    pub frames: u64,
    pub frames_per_s: f64,
}

/// What a generation will cost, in the provider's unit and in micro-USD.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub usd_micros: i64,
    pub units: f64,
    pub unit: &'static str,
    /// How it was computed, in words (rate, duration, source).
    pub basis: String,
}

impl Quote {
    pub fn free() -> Quote {
        Quote {
            usd_micros: 0,
            units: 0.0,
            unit: "",
            basis: "no provider charge".into(),
        }
    }
}

/// Micro-USD as dollars with six decimals, for messages.
pub fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}${}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// Backend errors name the backend and what went wrong. None of them carries a secret: API
/// keys travel only in request headers, never in URLs or messages.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend {backend}: {source}")]
    Pipeline {
        backend: &'static str,
        source: pipeline::PipelineError,
    },
    #[error("backend {backend} is not configured on this node")]
    NotConfigured { backend: String },
    #[error("generation was cancelled")]
    Cancelled,
    /// Not enough credits (Runway) or budget left (a configured budget): nothing was spent.
    #[error("{backend}: insufficient {what}: needed {needed}, available {available}")]
    InsufficientFunds {
        backend: &'static str,
        /// "credits", "budget", "credit" (the provider's own refusal).
        what: &'static str,
        needed: String,
        available: String,
    },
    /// The charge would exceed the job's cap (its plan's max_cost_usd): nothing was spent.
    #[error("{backend}: the generation costs {quote}, more than the {cap} this job may spend (its plan's max_cost_usd)")]
    OverJobCap {
        backend: &'static str,
        quote: String,
        cap: String,
    },
    /// The provider cannot do what was asked (duration, ratio, prompt length); nothing spent.
    #[error("{backend}: {reason}")]
    Unsupported {
        backend: &'static str,
        reason: String,
    },
    /// The provider refused the content (input or output moderation).
    #[error("{backend}: content refused by the provider's moderation ({code}): {message}")]
    Moderation {
        backend: &'static str,
        code: String,
        message: String,
    },
    /// The provider's task ended FAILED.
    #[error("{backend}: task {task_id} failed ({code}): {message}")]
    TaskFailed {
        backend: &'static str,
        task_id: String,
        code: String,
        message: String,
    },
    /// The provider cancelled the task itself (not us).
    #[error("{backend}: task {task_id} was cancelled by the provider")]
    TaskCancelled {
        backend: &'static str,
        task_id: String,
    },
    #[error("{backend}: task {task_id} did not finish within {after_s} s; cancelled it")]
    Timeout {
        backend: &'static str,
        task_id: String,
        after_s: u64,
    },
    /// The provider answered with an error that retrying does not fix (4xx), or retries ran out.
    #[error("{backend}: {what}: HTTP {status}: {message}")]
    Provider {
        backend: &'static str,
        what: &'static str,
        status: u16,
        message: String,
    },
    /// The provider could not be reached (network), after retries.
    #[error("{backend}: {what}: {message}")]
    Unreachable {
        backend: &'static str,
        what: &'static str,
        message: String,
    },
    /// The provider's answer did not have the documented shape.
    #[error("{backend}: unexpected answer to {what}: {reason}")]
    Protocol {
        backend: &'static str,
        what: &'static str,
        reason: String,
    },
    #[error("{backend}: download of the output failed: {reason}")]
    Download {
        backend: &'static str,
        reason: String,
    },
    #[error("{backend}: ledger: {source}")]
    Ledger {
        backend: &'static str,
        source: crate::jobs::store::StoreError,
    },
}

impl BackendError {
    /// Whether the error says the backend itself is in trouble (network, 5xx, auth), as
    /// opposed to this one request: such errors count against its health.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            BackendError::Unreachable { .. } => true,
            BackendError::Provider { status, .. } => *status >= 500 || *status == 401,
            _ => false,
        }
    }

    /// Whether nothing was spent and the request can be refused before a job starts
    /// (FAILED_PRECONDITION at Generate; the plan is shown infeasible).
    pub fn is_precondition(&self) -> bool {
        matches!(
            self,
            BackendError::InsufficientFunds { .. }
                | BackendError::OverJobCap { .. }
                | BackendError::Unsupported { .. }
                | BackendError::NotConfigured { .. }
        )
    }
}

/// A source of footage. Calls block (they run on a blocking thread); `cancel` is polled.
pub trait Backend: Send + Sync {
    /// The backend's name as plans and receipts spell it ("local", "runway", ...).
    fn name(&self) -> &'static str;

    /// Generates the footage for `req` into `out` (a file path the backend may create).
    fn generate(
        &self,
        req: &GenerationRequest,
        out: &Path,
        on_progress: &mut dyn FnMut(&pipeline::Progress),
        cancel: &AtomicBool,
    ) -> Result<Generated, BackendError>;

    /// Checks, before anything is spent, that `req` can be generated and paid for: request
    /// fields the provider accepts, the charge against the job's cap, and the provider's
    /// balance or the configured budget. Blocking (may call the provider).
    fn preflight(&self, _req: &GenerationRequest) -> Result<Quote, BackendError> {
        Ok(Quote::free())
    }

    /// Whether the planner should offer this backend now: false while its circuit breaker is
    /// open after repeated network/5xx/auth failures.
    fn healthy(&self) -> bool {
        true
    }

    /// What the provider charged `job_id` so far (from the ledger), for receipts of jobs whose
    /// generation failed or was done by an earlier run of the daemon. None: nothing.
    fn spent(&self, _job_id: &str) -> Option<remote::Spend> {
        None
    }

    /// Where provider callbacks (Replicate webhooks) wake this backend's poll loops.
    fn task_wakeups(&self) -> Option<Arc<remote::TaskWakeups>> {
        None
    }
}

/// The backends this node has, by name.
pub struct Backends {
    backends: Vec<Box<dyn Backend>>,
}

impl Backends {
    /// The embedded default: the local renderer only.
    pub fn local_only() -> Self {
        Self {
            backends: vec![Box::new(local::LocalBackend)],
        }
    }

    /// The local renderer plus every remote backend enabled in `config`. Must be called inside
    /// a tokio runtime (remote backends run their HTTP on it).
    pub fn from_config(
        config: &Config,
        prices: Arc<PriceTable>,
        store: Arc<Store>,
    ) -> Result<Self, BackendError> {
        let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(local::LocalBackend)];
        let jobs_dir = config.data_dir.join("jobs");
        for rc in config.backends.enabled() {
            let ctx = remote::RemoteContext::new(
                rc.clone(),
                Arc::clone(&prices),
                Arc::clone(&store),
                jobs_dir.clone(),
            )?;
            let b: Box<dyn Backend> = match rc.provider {
                settings::Provider::Runway => {
                    Box::new(remote::RemoteBackend::new(runway::Runway, ctx))
                }
                settings::Provider::Veo => Box::new(remote::RemoteBackend::new(veo::Veo, ctx)),
                settings::Provider::Replicate => {
                    Box::new(remote::RemoteBackend::new(replicate::Replicate, ctx))
                }
            };
            tracing::info!(
                backend = b.name(),
                base_url = %rc.base_url,
                budget = ?rc.budget_usd_micros.map(usd),
                "remote backend enabled"
            );
            backends.push(b);
        }
        Ok(Self { backends })
    }

    /// A set made of the given backends (tests, custom builds).
    pub fn from_backends(backends: Vec<Box<dyn Backend>>) -> Self {
        Self { backends }
    }

    pub fn get(&self, name: &str) -> Result<&dyn Backend, BackendError> {
        self.backends
            .iter()
            .find(|b| b.name() == name)
            .map(|b| b.as_ref())
            .ok_or_else(|| BackendError::NotConfigured {
                backend: name.to_string(),
            })
    }

    /// Names of the configured backends that are healthy now, as the planner takes them: the
    /// tiers' candidate lists in pricing.toml pick the first of these (AUTO).
    pub fn names(&self) -> Vec<&'static str> {
        self.backends
            .iter()
            .filter(|b| b.healthy())
            .map(|b| b.name())
            .collect()
    }

    /// Every configured backend, healthy or not.
    pub fn all_names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_prints_six_decimals() {
        assert_eq!(usd(600_000), "$0.600000");
        assert_eq!(usd(12_345_678), "$12.345678");
        assert_eq!(usd(-5), "-$0.000005");
    }
}
