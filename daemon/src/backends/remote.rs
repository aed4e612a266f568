//! The driver every remote backend shares; the providers (runway, veo, replicate) only speak
//! their API. One generation:
//! 1. quote the request from the price table (the provider's rules checked: durations,
//!    ratios, prompt length) and refuse it if it costs more than the job may spend;
//! 2. check funds — the provider's balance where it has one (Runway), and the configured
//!    budget in the ledger (reserved in the same transaction) — refusing with "needed X,
//!    available Y" before anything is spent;
//! 3. create the task and write its id to the ledger at once (a resumed job polls it again
//!    instead of paying twice);
//! 4. poll until it ends or the timeout (then cancel it), honouring cancellation;
//! 5. settle what it cost in the ledger, and download the output (streamed, size-limited,
//!    hashed, resumed or retried; expired URLs refreshed from the task).
//!
//! The Backend trait is blocking; the driver runs its async HTTP on the daemon's runtime via
//! `Handle::block_on` from the job's blocking thread.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiprod_planner::PriceTable;
use rand::Rng;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use tokio::sync::Notify;

use super::http::{self, DownloadFailure, HttpFailure, RetryPolicy};
use super::ledger::{Budget, Ledger, Settlement};
use super::settings::RemoteBackendConfig;
use super::{usd, Backend, BackendError, Generated, GenerationRequest, Quote};
use crate::jobs::store::Store;
use crate::now_unix_ms;
use crate::pipeline;

/// Failures in a row (network, 5xx, 401) that open the circuit breaker: the planner stops
/// offering the backend (AUTO falls back to the next candidate) for [`BREAKER_OPEN`].
const BREAKER_THRESHOLD: u32 = 3;
const BREAKER_OPEN: Duration = Duration::from_secs(60);
/// Fresh output URLs asked for when a download URL has expired (Runway: "fetch the task
/// again to get fresh URLs").
const MAX_URL_REFRESHES: u32 = 2;
/// Provider balances are cached this long for Plan and Generate (Plan asks for every tier at
/// once). A job always reads the balance afresh right before it spends, and every task this
/// daemon creates drops the cached value.
const BALANCE_CACHE: Duration = Duration::from_secs(2);
/// Retries of a balance check made for Plan or Generate (answered while the caller waits).
const QUICK_RETRIES: u32 = 1;
/// Poll intervals get ±20% jitter so many jobs do not poll in lockstep.
const POLL_JITTER: f64 = 0.2;
/// Share of the generate stage's progress the provider's own progress fills; the download
/// gets the rest.
const REMOTE_PROGRESS_SHARE: f64 = 0.9;

/// What a provider says about money before a task: its balance in its unit and in USD, and
/// any other reason it would refuse (a daily quota reached).
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub available_usd_micros: i64,
    pub available_units: f64,
    pub unit: &'static str,
    pub refusal: Option<String>,
}

/// What a task cost, in the provider's unit and in micro-USD.
#[derive(Debug, Clone, PartialEq)]
pub struct Billed {
    pub usd_micros: i64,
    pub units: f64,
    pub unit: &'static str,
}

impl Billed {
    pub fn from_quote(q: &Quote) -> Billed {
        Billed {
            usd_micros: q.usd_micros,
            units: q.units,
            unit: q.unit,
        }
    }
}

/// Where a task's output is.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Url(String),
    /// Sent inline (Gemini `encodedVideo`, base64-decoded).
    Inline(Vec<u8>),
}

/// A task as the provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    Running {
        /// 0..1 when the provider reports it.
        progress: Option<f64>,
    },
    Succeeded {
        outputs: Vec<Output>,
        /// None: the quote (providers that bill a fixed price per output second).
        billed: Option<Billed>,
    },
    Failed {
        code: String,
        message: String,
        moderation: bool,
        /// None: not charged (refunded).
        billed: Option<Billed>,
    },
    Cancelled {
        billed: Option<Billed>,
    },
}

/// One provider's API. Implementations only build requests and read answers; retries,
/// ledger, polling and downloads are the driver's.
pub(crate) trait ProviderApi: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Checks `req` against the provider's rules and prices it. No I/O.
    fn quote(&self, ctx: &RemoteContext, req: &GenerationRequest) -> Result<Quote, BackendError>;

    /// The provider's balance, for providers that report one; `policy` says how hard to try
    /// (Plan and Generate answer quickly, a job about to spend retries fully).
    async fn balance(
        &self,
        _ctx: &RemoteContext,
        _req: &GenerationRequest,
        _policy: &RetryPolicy,
        _cancel: &AtomicBool,
    ) -> Result<Option<Balance>, BackendError> {
        Ok(None)
    }

    /// Creates the task; returns the provider's task id.
    async fn create(
        &self,
        ctx: &RemoteContext,
        req: &GenerationRequest,
        quote: &Quote,
        cancel: &AtomicBool,
    ) -> Result<String, BackendError>;

    async fn poll(
        &self,
        ctx: &RemoteContext,
        task_id: &str,
        quote: &Quote,
        cancel: &AtomicBool,
    ) -> Result<TaskState, BackendError>;

    /// Asks the provider to stop the task (best effort; false when it has no such call).
    async fn cancel(&self, ctx: &RemoteContext, task_id: &str) -> Result<bool, BackendError>;

    /// The header that authenticates output downloads, and whether `url` may receive it.
    fn download_auth(&self, ctx: &RemoteContext, url: &Url) -> Option<(HeaderName, HeaderValue)>;
}

/// The circuit breaker's state.
#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// Wakes poll loops when a provider calls back (Replicate webhooks), keyed by task id.
#[derive(Debug, Default)]
pub struct TaskWakeups {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl TaskWakeups {
    fn register(&self, task_id: &str) -> Arc<Notify> {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(w.entry(task_id.to_string()).or_default())
    }

    fn forget(&self, task_id: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task_id);
    }

    /// A callback said `task_id` changed: poll it now. False when no job waits for it.
    pub fn wake(&self, task_id: &str) -> bool {
        let w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        match w.get(task_id) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Everything a provider call needs: settings, prices, ledger, HTTP clients.
pub struct RemoteContext {
    pub cfg: RemoteBackendConfig,
    pub prices: Arc<PriceTable>,
    pub ledger: Ledger,
    /// API calls: no redirects, whole-request timeout.
    pub api: reqwest::Client,
    /// Downloads: no automatic redirects (followed by hand), per-read timeout.
    pub download: reqwest::Client,
    pub policy: RetryPolicy,
    pub handle: tokio::runtime::Handle,
    pub wakeups: Arc<TaskWakeups>,
    /// Where jobs keep their files (for logs only; the job passes the output path).
    pub jobs_dir: PathBuf,
    health: Mutex<Health>,
    balance_cache: Mutex<Option<(Instant, Balance)>>,
}

impl std::fmt::Debug for RemoteContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteContext")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl RemoteContext {
    /// Must be called inside a tokio runtime.
    pub fn new(
        cfg: RemoteBackendConfig,
        prices: Arc<PriceTable>,
        store: Arc<Store>,
        jobs_dir: PathBuf,
    ) -> Result<RemoteContext, BackendError> {
        let backend = cfg.provider.name();
        let build_err = |e: reqwest::Error| BackendError::Unreachable {
            backend,
            what: "HTTP client",
            message: e.to_string(),
        };
        let ua = concat!("aiprod/", env!("CARGO_PKG_VERSION"));
        let api = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(cfg.request_timeout_s))
            .connect_timeout(Duration::from_secs(cfg.request_timeout_s.min(10)))
            .user_agent(ua)
            .build()
            .map_err(build_err)?;
        let download = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(cfg.request_timeout_s.min(10)))
            .read_timeout(Duration::from_secs(cfg.request_timeout_s))
            .user_agent(ua)
            .build()
            .map_err(build_err)?;
        let handle =
            tokio::runtime::Handle::try_current().map_err(|e| BackendError::Unreachable {
                backend,
                what: "runtime",
                message: e.to_string(),
            })?;
        Ok(RemoteContext {
            policy: RetryPolicy {
                max_retries: cfg.max_retries,
                base: Duration::from_millis(cfg.retry_base_ms),
            },
            ledger: Ledger::new(store, backend),
            cfg,
            prices,
            api,
            download,
            handle,
            wakeups: Arc::default(),
            jobs_dir,
            health: Mutex::default(),
            balance_cache: Mutex::default(),
        })
    }

    pub fn backend(&self) -> &'static str {
        self.cfg.provider.name()
    }

    /// Maps a failed call to the backend error (providers first look for their own cases).
    pub fn http_error(&self, what: &'static str, f: HttpFailure) -> BackendError {
        let backend = self.backend();
        match f {
            HttpFailure::Status { status, body, .. } => BackendError::Provider {
                backend,
                what,
                status,
                message: body,
            },
            HttpFailure::Network(message) => BackendError::Unreachable {
                backend,
                what,
                message,
            },
            HttpFailure::Cancelled => BackendError::Cancelled,
            HttpFailure::TooLarge { limit } => BackendError::Protocol {
                backend,
                what,
                reason: format!("answer larger than {limit} bytes"),
            },
        }
    }

    /// Parses a JSON answer.
    pub fn json(&self, what: &'static str, body: &[u8]) -> Result<serde_json::Value, BackendError> {
        serde_json::from_slice(body).map_err(|e| BackendError::Protocol {
            backend: self.backend(),
            what,
            reason: format!("not JSON: {e}"),
        })
    }

    pub fn protocol(&self, what: &'static str, reason: impl Into<String>) -> BackendError {
        BackendError::Protocol {
            backend: self.backend(),
            what,
            reason: reason.into(),
        }
    }

    pub fn unsupported(&self, reason: impl Into<String>) -> BackendError {
        BackendError::Unsupported {
            backend: self.backend(),
            reason: reason.into(),
        }
    }

    /// The model spec of `req.model` in the price table (quote and api name).
    pub fn model(
        &self,
        req: &GenerationRequest,
    ) -> Result<&aiprod_planner::pricing::ModelSpec, BackendError> {
        self.prices
            .model(self.backend(), &req.model)
            .ok_or_else(|| {
                self.unsupported(format!(
                    "model {} is not in the price table for {}",
                    req.model,
                    self.backend()
                ))
            })
    }

    /// A quote from the price table's charge for `billed_s` seconds of output.
    pub fn quote_from_table(
        &self,
        req: &GenerationRequest,
        billed_s: f64,
        units: f64,
        unit: &'static str,
    ) -> Result<Quote, BackendError> {
        let model = self.model(req)?;
        let (charge_usd, basis) = self
            .prices
            .generation_charge(model, billed_s)
            .map_err(|e| self.unsupported(e.to_string()))?;
        Ok(Quote {
            usd_micros: (charge_usd * 1e6).round() as i64,
            units,
            unit,
            basis,
        })
    }

    fn note(&self, err: Option<&BackendError>) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match err {
            Some(e) if e.is_infrastructure() => {
                h.consecutive_failures += 1;
                if h.consecutive_failures >= BREAKER_THRESHOLD {
                    if h.open_until.is_none_or(|t| t <= Instant::now()) {
                        tracing::warn!(
                            backend = self.backend(),
                            failures = h.consecutive_failures,
                            "backend unhealthy: not offered for {BREAKER_OPEN:?} ({e})"
                        );
                    }
                    h.open_until = Some(Instant::now() + BREAKER_OPEN);
                }
            }
            Some(_) => {}
            None => {
                h.consecutive_failures = 0;
                h.open_until = None;
            }
        }
    }

    fn healthy(&self) -> bool {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.open_until.is_none_or(|t| t <= Instant::now())
    }

    fn budget(&self) -> Option<Budget> {
        self.cfg.budget_usd_micros.map(|b| Budget {
            budget_micros: b,
            window_ms: i64::from(self.cfg.budget_window_days) * 86_400_000,
        })
    }

    fn poll_interval(&self) -> Duration {
        let base = self.cfg.poll_interval_ms as f64;
        let j = rand::rng().random_range(-POLL_JITTER..=POLL_JITTER);
        Duration::from_millis((base * (1.0 + j)).max(1.0) as u64)
    }
}

/// A remote backend: the driver around one provider's API.
pub(crate) struct RemoteBackend<P: ProviderApi> {
    api: P,
    ctx: RemoteContext,
}

/// A job's spend with one provider, from the ledger (for receipts of failed or resumed jobs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spend {
    pub usd_micros: i64,
    pub task_id: String,
    pub units: f64,
    pub unit: String,
}

impl<P: ProviderApi> RemoteBackend<P> {
    pub(crate) fn new(api: P, ctx: RemoteContext) -> Self {
        Self { api, ctx }
    }

    /// The wakeups of this backend's poll loops (for provider callbacks).
    pub fn wakeups(&self) -> Arc<TaskWakeups> {
        Arc::clone(&self.ctx.wakeups)
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.ctx.handle.block_on(f)
    }

    fn cap_check(&self, req: &GenerationRequest, quote: &Quote) -> Result<(), BackendError> {
        match req.max_charge_usd_micros {
            Some(cap) if quote.usd_micros > cap => Err(BackendError::OverJobCap {
                backend: self.ctx.backend(),
                quote: format!("{} {} ({})", quote.units, quote.unit, usd(quote.usd_micros)),
                cap: usd(cap.max(0)),
            }),
            _ => Ok(()),
        }
    }

    /// The provider's balance against the quote (cached briefly for Plan).
    async fn check_balance(
        &self,
        req: &GenerationRequest,
        quote: &Quote,
        cancel: &AtomicBool,
        cached_ok: bool,
    ) -> Result<(), BackendError> {
        let cached = cached_ok
            .then(|| {
                self.ctx
                    .balance_cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .filter(|(t, _)| t.elapsed() < BALANCE_CACHE)
                    .map(|(_, b)| b.clone())
            })
            .flatten();
        let balance = match cached {
            Some(b) => Some(b),
            None => {
                // Before a job spends: the full retry policy. For Plan/Generate: one retry, so
                // an unreachable provider does not hold the call for a minute.
                let policy = if cached_ok {
                    RetryPolicy {
                        max_retries: self.ctx.policy.max_retries.min(QUICK_RETRIES),
                        ..self.ctx.policy
                    }
                } else {
                    self.ctx.policy
                };
                let b = self.api.balance(&self.ctx, req, &policy, cancel).await;
                self.ctx.note(b.as_ref().err());
                let b = b?;
                if let Some(b) = &b {
                    *self
                        .ctx
                        .balance_cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), b.clone()));
                }
                b
            }
        };
        let Some(b) = balance else { return Ok(()) };
        if let Some(reason) = &b.refusal {
            return Err(self.ctx.unsupported(reason.clone()));
        }
        if quote.usd_micros > b.available_usd_micros {
            return Err(BackendError::InsufficientFunds {
                backend: self.ctx.backend(),
                what: "credits",
                needed: format!("{} {} ({})", quote.units, quote.unit, usd(quote.usd_micros)),
                available: format!(
                    "{} {} ({})",
                    b.available_units,
                    b.unit,
                    usd(b.available_usd_micros)
                ),
            });
        }
        Ok(())
    }

    fn over_budget(&self, needed: i64, available: i64) -> BackendError {
        BackendError::InsufficientFunds {
            backend: self.ctx.backend(),
            what: "budget",
            needed: usd(needed),
            available: format!(
                "{} of the {} budget over {} days",
                usd(available.max(0)),
                usd(self.ctx.cfg.budget_usd_micros.unwrap_or(0)),
                self.ctx.cfg.budget_window_days
            ),
        }
    }

    fn ledger_err(&self, e: crate::jobs::store::StoreError) -> BackendError {
        BackendError::Ledger {
            backend: self.ctx.backend(),
            source: e,
        }
    }

    fn settle(&self, row: i64, how: Settlement, billed: &Billed) {
        let (micros, units) = match how {
            Settlement::Charged => (billed.usd_micros, billed.units),
            Settlement::Refunded => (0, 0.0),
        };
        if let Err(e) = self
            .ctx
            .ledger
            .settle(row, how, micros, units, billed.unit, now_unix_ms())
        {
            tracing::error!(
                backend = self.ctx.backend(),
                "cannot settle provider task in the ledger: {e}"
            );
        }
    }

    /// After we cancelled (or gave up on) a task: one look at how it ended, for the ledger.
    /// A task still running is counted at its quote — the providers do not document whether
    /// a cancelled task is charged, so the ledger errs on the side of the budget.
    async fn settle_abandoned(&self, row: i64, task_id: &str, quote: &Quote) -> Billed {
        let never = AtomicBool::new(false);
        let state = self.api.poll(&self.ctx, task_id, quote, &never).await;
        let (how, billed) = match state {
            Ok(TaskState::Cancelled { billed }) | Ok(TaskState::Failed { billed, .. }) => {
                match billed {
                    Some(b) => (Settlement::Charged, b),
                    None => (Settlement::Refunded, Billed::from_quote(quote)),
                }
            }
            Ok(TaskState::Succeeded { billed, .. }) => (
                Settlement::Charged,
                billed.unwrap_or_else(|| Billed::from_quote(quote)),
            ),
            _ => (Settlement::Charged, Billed::from_quote(quote)),
        };
        self.settle(row, how, &billed);
        match how {
            Settlement::Charged => billed,
            Settlement::Refunded => Billed {
                usd_micros: 0,
                units: 0.0,
                unit: billed.unit,
            },
        }
    }

    async fn run(
        &self,
        req: &GenerationRequest,
        out: &Path,
        on_progress: &mut dyn FnMut(&pipeline::Progress),
        cancel: &AtomicBool,
    ) -> Result<Generated, BackendError> {
        let backend = self.ctx.backend();
        let quote = self.api.quote(&self.ctx, req)?;
        self.cap_check(req, &quote)?;
        let open = self
            .ctx
            .ledger
            .open_task(&req.job_id)
            .map_err(|e| self.ledger_err(e))?;
        let (row, task_id) = match open {
            Some(t) => {
                tracing::info!(job_id = %req.job_id, backend, task_id = %t.task_id, "resuming the provider task this job already started");
                (t.row, t.task_id)
            }
            None => {
                self.check_balance(req, &quote, cancel, false).await?;
                let row = self
                    .ctx
                    .ledger
                    .reserve(
                        &req.job_id,
                        quote.usd_micros,
                        self.ctx.budget(),
                        now_unix_ms(),
                    )
                    .map_err(|e| self.ledger_err(e))?
                    .map_err(|ob| self.over_budget(ob.needed_micros, ob.available_micros))?;
                let created = self.api.create(&self.ctx, req, &quote, cancel).await;
                self.ctx.note(created.as_ref().err());
                // Whatever the outcome, the balance we knew is stale now.
                *self
                    .ctx
                    .balance_cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                match created {
                    Ok(id) => {
                        self.ctx
                            .ledger
                            .started(row, &id, now_unix_ms())
                            .map_err(|e| self.ledger_err(e))?;
                        tracing::info!(job_id = %req.job_id, backend, task_id = %id, quote = %usd(quote.usd_micros), units = quote.units, unit = quote.unit, "provider task created");
                        (row, id)
                    }
                    Err(e) => {
                        if let Err(le) = self.ctx.ledger.release(row, now_unix_ms()) {
                            tracing::error!(backend, "cannot release reservation: {le}");
                        }
                        return Err(e);
                    }
                }
            }
        };
        let wake = self.ctx.wakeups.register(&task_id);
        let result = self
            .follow(req, out, on_progress, cancel, row, &task_id, &quote, &wake)
            .await;
        self.ctx.wakeups.forget(&task_id);
        result
    }

    /// Polls the task to its end and fetches the output.
    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &self,
        req: &GenerationRequest,
        out: &Path,
        on_progress: &mut dyn FnMut(&pipeline::Progress),
        cancel: &AtomicBool,
        row: i64,
        task_id: &str,
        quote: &Quote,
        wake: &Notify,
    ) -> Result<Generated, BackendError> {
        let backend = self.ctx.backend();
        let deadline = Instant::now() + Duration::from_secs(self.ctx.cfg.timeout_s);
        let report = |f: f64, on_progress: &mut dyn FnMut(&pipeline::Progress)| {
            on_progress(&pipeline::Progress {
                fraction: f.clamp(0.0, 1.0),
                frames_done: 0,
                frames_per_s: 0.0,
            })
        };
        report(0.01, on_progress);
        loop {
            if cancel.load(Ordering::SeqCst) {
                let _ = self.api.cancel(&self.ctx, task_id).await;
                self.settle_abandoned(row, task_id, quote).await;
                return Err(BackendError::Cancelled);
            }
            if Instant::now() >= deadline {
                match self.api.cancel(&self.ctx, task_id).await {
                    Ok(_) => {}
                    Err(e) => tracing::warn!(backend, task_id, "cancel after timeout failed: {e}"),
                }
                self.settle_abandoned(row, task_id, quote).await;
                return Err(BackendError::Timeout {
                    backend,
                    task_id: task_id.to_string(),
                    after_s: self.ctx.cfg.timeout_s,
                });
            }
            let state = self.api.poll(&self.ctx, task_id, quote, cancel).await;
            self.ctx.note(state.as_ref().err());
            match state {
                Ok(TaskState::Running { progress }) => {
                    if let Some(p) = progress {
                        report(p * REMOTE_PROGRESS_SHARE, on_progress);
                    }
                }
                Ok(TaskState::Succeeded { outputs, billed }) => {
                    let billed = billed.unwrap_or_else(|| Billed::from_quote(quote));
                    self.settle(row, Settlement::Charged, &billed);
                    report(REMOTE_PROGRESS_SHARE, on_progress);
                    let got = self
                        .fetch(req, out, task_id, quote, outputs, cancel)
                        .await?;
                    report(1.0, on_progress);
                    tracing::info!(job_id = %req.job_id, backend, task_id, bytes = got.bytes, sha256 = %got.sha256, charged = %usd(billed.usd_micros), "provider output downloaded");
                    return Ok(Generated {
                        path: out.to_path_buf(),
                        compute_s: 0.0,
                        provider_charge_usd_micros: billed.usd_micros,
                        provider_task_id: task_id.to_string(),
                        billed_units: billed.units,
                        billed_unit: billed.unit.to_string(),
                        sha256: got.sha256,
                        frames: 0,
                        frames_per_s: 0.0,
                    });
                }
                Ok(TaskState::Failed {
                    code,
                    message,
                    moderation,
                    billed,
                }) => {
                    match &billed {
                        Some(b) => self.settle(row, Settlement::Charged, b),
                        None => self.settle(row, Settlement::Refunded, &Billed::from_quote(quote)),
                    }
                    return Err(if moderation {
                        BackendError::Moderation {
                            backend,
                            code,
                            message,
                        }
                    } else {
                        BackendError::TaskFailed {
                            backend,
                            task_id: task_id.to_string(),
                            code,
                            message,
                        }
                    });
                }
                Ok(TaskState::Cancelled { billed }) => {
                    match &billed {
                        Some(b) => self.settle(row, Settlement::Charged, b),
                        None => self.settle(row, Settlement::Refunded, &Billed::from_quote(quote)),
                    }
                    return Err(BackendError::TaskCancelled {
                        backend,
                        task_id: task_id.to_string(),
                    });
                }
                Err(BackendError::Cancelled) => continue,
                // The task is gone or our key is refused: polling again will not help. The
                // ledger keeps counting it at its quote.
                Err(e @ BackendError::Provider { status, .. })
                    if (400..500).contains(&status) && status != 408 && status != 429 =>
                {
                    return Err(e)
                }
                Err(e @ BackendError::Protocol { .. }) => return Err(e),
                // Network trouble or 5xx after retries: the task is paid for, so keep trying
                // until the deadline rather than lose it.
                Err(e) => {
                    tracing::warn!(job_id = %req.job_id, backend, task_id, "poll failed, will retry: {e}")
                }
            }
            let interval = self.ctx.poll_interval();
            tokio::select! {
                _ = http::sleep_or_cancel(interval, cancel) => {}
                _ = wake.notified() => {}
            }
        }
    }

    /// Downloads the first output, asking the task for fresh URLs when one has expired.
    async fn fetch(
        &self,
        req: &GenerationRequest,
        out: &Path,
        task_id: &str,
        quote: &Quote,
        mut outputs: Vec<Output>,
        cancel: &AtomicBool,
    ) -> Result<http::Downloaded, BackendError> {
        let backend = self.ctx.backend();
        let fail = |reason: String| BackendError::Download { backend, reason };
        let mut refreshes = 0;
        loop {
            let first = outputs
                .first()
                .cloned()
                .ok_or_else(|| fail("the task succeeded without an output".into()))?;
            let res = match first {
                Output::Inline(bytes) => {
                    http::write_inline(out, &bytes, self.ctx.cfg.max_download_bytes)
                }
                Output::Url(u) => {
                    let parsed = Url::parse(&u).map_err(|e| fail(format!("output URL: {e}")))?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(fail("output URL is not http(s)".into()));
                    }
                    let auth = self.api.download_auth(&self.ctx, &parsed);
                    // Decided again for every redirect hop: the key never leaves the provider.
                    let send_auth_to =
                        |target: &Url| self.api.download_auth(&self.ctx, target).is_some();
                    let spec = http::DownloadSpec {
                        url: &u,
                        auth: auth.clone(),
                        send_auth_to: &send_auth_to,
                        dest: out,
                        max_bytes: self.ctx.cfg.max_download_bytes,
                    };
                    http::download(&self.ctx.download, &spec, &self.ctx.policy, cancel).await
                }
            };
            match res {
                Ok(d) => return Ok(d),
                Err(DownloadFailure::Cancelled) => return Err(BackendError::Cancelled),
                Err(DownloadFailure::TooLarge { limit }) => {
                    return Err(fail(format!(
                        "larger than the {limit}-byte limit (backends.{backend}.max_download_bytes)"
                    )))
                }
                Err(DownloadFailure::Expired(status)) if refreshes < MAX_URL_REFRESHES => {
                    refreshes += 1;
                    tracing::info!(job_id = %req.job_id, backend, task_id, status, "output URL expired; asking the task for a fresh one");
                    match self.api.poll(&self.ctx, task_id, quote, cancel).await? {
                        TaskState::Succeeded { outputs: fresh, .. } => outputs = fresh,
                        other => {
                            return Err(fail(format!("task no longer has its output: {other:?}")))
                        }
                    }
                }
                Err(DownloadFailure::Expired(status)) => {
                    return Err(fail(format!(
                        "the output URL answers HTTP {status} (expired)"
                    )))
                }
                Err(DownloadFailure::Failed(reason)) => return Err(fail(reason)),
            }
        }
    }
}

impl<P: ProviderApi> Backend for RemoteBackend<P> {
    fn name(&self) -> &'static str {
        self.api.name()
    }

    fn generate(
        &self,
        req: &GenerationRequest,
        out: &Path,
        on_progress: &mut dyn FnMut(&pipeline::Progress),
        cancel: &AtomicBool,
    ) -> Result<Generated, BackendError> {
        self.block_on(self.run(req, out, on_progress, cancel))
    }

    fn preflight(&self, req: &GenerationRequest) -> Result<Quote, BackendError> {
        let quote = self.api.quote(&self.ctx, req)?;
        self.cap_check(req, &quote)?;
        let never = AtomicBool::new(false);
        self.block_on(self.check_balance(req, &quote, &never, true))?;
        if let Some(b) = self.ctx.budget() {
            let available = self
                .ctx
                .ledger
                .available(b, now_unix_ms())
                .map_err(|e| self.ledger_err(e))?;
            if quote.usd_micros > available {
                return Err(self.over_budget(quote.usd_micros, available));
            }
        }
        Ok(quote)
    }

    fn healthy(&self) -> bool {
        self.ctx.healthy()
    }

    fn spent(&self, job_id: &str) -> Option<Spend> {
        match self.ctx.ledger.job_spend(job_id) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(backend = self.ctx.backend(), "cannot read the ledger: {e}");
                None
            }
        }
    }

    fn task_wakeups(&self) -> Option<Arc<TaskWakeups>> {
        Some(self.wakeups())
    }
}
