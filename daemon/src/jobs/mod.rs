//! Jobs: the state machine QUEUED → GENERATING → PROCESSING → VALIDATING → SUCCEEDED | FAILED |
//! CANCELLED, run asynchronously with bounded concurrency, persisted in SQLite at every
//! transition, resumed after a crash, and closed with a receipt (estimated next to actual).

pub mod engines;
pub mod receipt;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiprod_planner::{Calibration, NodeRates, PriceTable, ProfileCatalog};
use tokio::sync::{broadcast, Notify};

use crate::backends::{BackendError, Backends, GenerationRequest};
use crate::config::Config;
use crate::node::Hardware;
use crate::now_unix_ms;
use crate::pipeline::{self, OutputSpec};
use crate::proto::{self, JobState};
use crate::telemetry::Metrics;
use engines::{MissingEngine, SlotKind, Slots, Throughput};
use receipt::{Measured, StageRun};
use store::{JobRecord, Store, StoreError};

/// How many job events a slow watcher may fall behind before it re-reads the job.
const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// Progress is split over the stages by their usual share of the work, so a watcher sees
/// one 0..1 figure for the whole job.
const PROGRESS_GENERATE: (f64, f64) = (0.0, 0.45);
const PROGRESS_PROCESS: (f64, f64) = (0.45, 0.95);

/// Longest pause between attempts to write a job's final state when the store refuses it (a
/// full disk): the job keeps its slot meanwhile, so the node starts no work it could not record.
const FINAL_WRITE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Job-layer errors.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {job_id} is already {state}")]
    AlreadyFinal { job_id: String, state: &'static str },
    #[error("this node is draining and takes no new jobs; retry on another node")]
    Draining,
    #[error("the job queue is full ({max} jobs waiting); retry later or on another node")]
    QueueFull { max: usize },
    #[error("user {user_id} already has {max} queued or running jobs (the per-user limit)")]
    UserQuota { user_id: String, max: usize },
    #[error("only {free_bytes} bytes free in {}; jobs need at least {min_bytes}", path.display())]
    DiskLow {
        path: PathBuf,
        free_bytes: u64,
        min_bytes: u64,
    },
    #[error(transparent)]
    MissingEngine(#[from] MissingEngine),
}

/// (free, total) bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte")
    })?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: c_path is a valid C string and st points to writable memory of the right type.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    // fsblkcnt_t/c_ulong are 32-bit on some targets; the casts are no-ops on x86_64.
    #[allow(clippy::unnecessary_cast)]
    let (frsize, bavail, blocks) = (st.f_frsize as u64, st.f_bavail as u64, st.f_blocks as u64);
    Ok((bavail * frsize, blocks * frsize))
}

/// Whether a state is final.
pub fn is_final(state: JobState) -> bool {
    matches!(
        state,
        JobState::Succeeded | JobState::Failed | JobState::Cancelled
    )
}

/// Runs jobs. Shared (Arc) by the gRPC service and the job tasks.
pub struct JobEngine {
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub catalog: Arc<ProfileCatalog>,
    pub metrics: Arc<Metrics>,
    pub calibration: Mutex<Calibration>,
    /// The node's compute rates: the config's, else pricing.toml's defaults.
    pub node: NodeRates,
    backends: Backends,
    events: broadcast::Sender<proto::JobEvent>,
    controls: Mutex<HashMap<String, Arc<JobControl>>>,
    /// What this node runs on, detected at start.
    pub hardware: Arc<Hardware>,
    /// Which plan engines run on a GPU (`gpu = true` in pricing.toml).
    prices: Arc<PriceTable>,
    /// CPU and GPU slots, with the jobs waiting for and holding each.
    slots: Slots,
    /// Frames/s per stage and engine over the runs since start.
    throughput: Mutex<Throughput>,
    /// Set by Drain/SIGTERM: no new jobs are admitted.
    draining: AtomicBool,
    /// Woken whenever a job task ends (drain waits on it).
    job_ended: Notify,
    started_at: Instant,
}

/// The in-process handle of a job that has a task: cancel flag and whether its run began.
/// Both are read and written under the `controls` lock, so a cancel either happens before the
/// run starts (and the run never starts) or is seen by the running job.
#[derive(Default)]
struct JobControl {
    cancel: AtomicBool,
    started: AtomicBool,
}

/// Why a run stopped early.
enum RunEnd {
    Cancelled,
    Failed(String),
}

impl JobEngine {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        config: Arc<Config>,
        catalog: Arc<ProfileCatalog>,
        metrics: Arc<Metrics>,
        backends: Backends,
        node: NodeRates,
        hardware: Arc<Hardware>,
        prices: Arc<PriceTable>,
    ) -> Result<Self, JobError> {
        let calibration = Calibration::from_entries(store.load_calibration()?);
        for (state, n) in store.count_by_state()? {
            if let Ok(s) = JobState::try_from(state) {
                metrics
                    .jobs
                    .with_label_values(&[crate::telemetry::state_label(s)])
                    .add(n);
            }
        }
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        let gpu_slots = config
            .max_gpu_jobs
            .unwrap_or_else(|| hardware.usable_gpus());
        Ok(Self {
            slots: Slots::new(config.max_cpu_jobs, gpu_slots),
            hardware,
            prices,
            throughput: Mutex::new(Throughput::default()),
            draining: AtomicBool::new(false),
            job_ended: Notify::new(),
            started_at: Instant::now(),
            store,
            config,
            catalog,
            metrics,
            calibration: Mutex::new(calibration),
            node,
            backends,
            events,
            controls: Mutex::new(HashMap::new()),
        })
    }

    pub fn backend_names(&self) -> Vec<&'static str> {
        self.backends.names()
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Before a job exists: can the plan's backend generate it, within the plan's cost cap,
    /// with the credits or budget left? Blocking (may call the provider); nothing is spent.
    pub fn preflight(
        &self,
        plan: &proto::PlanOption,
        prompt: &str,
        seed: u64,
    ) -> Result<crate::backends::Quote, BackendError> {
        let backend = self.backends.get(&plan.backend)?;
        let Some(profile) = self.catalog.get(&plan.profile) else {
            // The job fails with a clear message when it runs; nothing to check here.
            return Ok(crate::backends::Quote::free());
        };
        backend.preflight(&generation_request("", prompt, seed, plan, profile))
    }

    /// A snapshot of the calibration for the planner.
    pub fn calibration_snapshot(&self) -> Calibration {
        self.calibration
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<proto::JobEvent> {
        self.events.subscribe()
    }

    /// Where a job's files live.
    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.config.data_dir.join("jobs").join(job_id)
    }

    /// The kind of slot `plan` runs in on this node, or why it cannot run here.
    pub fn slot_for(&self, plan: &proto::PlanOption) -> Result<SlotKind, MissingEngine> {
        engines::slot_for(
            plan,
            &self.prices,
            &self.hardware,
            self.slots.pool(SlotKind::Gpu).total,
        )
    }

    /// Slots per kind (used, total, queued), for GetNodeStatus.
    pub fn slot_status(&self) -> Vec<proto::EngineSlots> {
        self.slots.status()
    }

    /// CPU + GPU slots.
    pub fn total_slots(&self) -> usize {
        self.slots.total()
    }

    /// Measured frames/s per stage and engine, for GetNodeStatus.
    pub fn throughput_status(&self) -> Vec<proto::EngineThroughput> {
        self.throughput
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .status()
    }

    /// Stores a new job (or finds the idempotent twin) and starts it in a slot of the kind its
    /// plan needs. Returns the job and whether it was created now. Blocking (a store write):
    /// call it from the blocking pool, inside the runtime (the job's task is spawned on it).
    pub fn submit(self: &Arc<Self>, rec: JobRecord) -> Result<(proto::Job, bool), JobError> {
        let kind = self.slot_for(&rec.plan)?;
        let (stored, created) = self.store.insert_job(&rec)?;
        if created {
            self.metrics.job_transition(None, JobState::Queued);
            self.publish(&stored.job, "queued", 0.0);
            self.spawn(stored.job.job_id.clone(), kind);
        }
        Ok((stored.job, created))
    }

    /// Resumes every job the last run left unfinished: each is retried from its last complete
    /// stage, or failed with a receipt once it has been interrupted `max_job_attempts` times.
    /// Blocking (store reads and writes): run once at start, before anything is served.
    pub fn recover(self: &Arc<Self>) -> Result<usize, JobError> {
        let unfinished = self.store.unfinished_jobs()?;
        let n = unfinished.len();
        for rec in unfinished {
            let mut job = rec.job.clone();
            let from = JobState::try_from(job.state).unwrap_or(JobState::Queued);
            if from != JobState::Queued && job.attempts >= self.config.max_job_attempts {
                let msg = format!(
                    "interrupted {} times (daemon restarted while {}); giving up",
                    job.attempts,
                    crate::telemetry::state_label(from)
                );
                tracing::warn!(job_id = %job.job_id, "{msg}");
                self.finish(&rec, &mut job, JobState::Failed, msg, &Measured::default());
                continue;
            }
            // The node may have lost the GPU the job was accepted for.
            let kind = match self.slot_for(&rec.plan) {
                Ok(kind) => kind,
                Err(e) => {
                    let msg = format!("cannot resume on this node: {e}");
                    tracing::warn!(job_id = %job.job_id, "{msg}");
                    self.finish(&rec, &mut job, JobState::Failed, msg, &Measured::default());
                    continue;
                }
            };
            tracing::info!(job_id = %job.job_id, state = crate::telemetry::state_label(from), "resuming job after restart");
            self.spawn(job.job_id.clone(), kind);
        }
        Ok(n)
    }

    /// Cancels a job: one that has not started runs at once, a running one at its next
    /// cancellation point (the pipelines poll the flag about every 100 ms). Blocking (the
    /// store): call it from the blocking pool.
    pub fn cancel(&self, job_id: &str) -> Result<proto::Job, JobError> {
        let mut controls = self.controls.lock().unwrap_or_else(|p| p.into_inner());
        let rec = self
            .store
            .get_job(job_id)?
            .ok_or_else(|| JobError::NotFound(job_id.to_string()))?;
        let state = JobState::try_from(rec.job.state).unwrap_or(JobState::Unspecified);
        if is_final(state) {
            return Err(JobError::AlreadyFinal {
                job_id: job_id.into(),
                state: crate::telemetry::state_label(state),
            });
        }
        let control = controls.entry(job_id.to_string()).or_default().clone();
        control.cancel.store(true, Ordering::SeqCst);
        if !control.started.load(Ordering::SeqCst) {
            let mut job = rec.job.clone();
            self.finish(
                &rec,
                &mut job,
                JobState::Cancelled,
                "cancelled before it started".into(),
                &Measured::default(),
            );
            controls.remove(job_id);
            return Ok(job);
        }
        Ok(rec.job)
    }

    /// Marks the job's run as begun; None when it was cancelled before that.
    fn start_control(&self, job_id: &str) -> Option<Arc<JobControl>> {
        let mut controls = self.controls.lock().unwrap_or_else(|p| p.into_inner());
        let control = controls.entry(job_id.to_string()).or_default().clone();
        if control.cancel.load(Ordering::SeqCst) {
            return None;
        }
        control.started.store(true, Ordering::SeqCst);
        Some(control)
    }

    /// Queues the job for a slot of `kind` and runs it once it has one.
    fn spawn(self: &Arc<Self>, job_id: String, kind: SlotKind) {
        let engine = Arc::clone(self);
        self.slots.pool(kind).queued.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let pool = engine.slots.pool(kind);
            let permit = Arc::clone(&pool.semaphore).acquire_owned().await;
            // Counted running before no longer queued, so a watcher of load() never sees the
            // job in neither (drain would think the node idle).
            if permit.is_ok() {
                pool.running.fetch_add(1, Ordering::SeqCst);
            }
            pool.queued.fetch_sub(1, Ordering::SeqCst);
            let Ok(permit) = permit else {
                return; // the semaphore is closed only at shutdown
            };
            let worker = Arc::clone(&engine);
            let id = job_id.clone();
            let res = tokio::task::spawn_blocking(move || worker.run(&id, kind)).await;
            drop(permit);
            pool.running.fetch_sub(1, Ordering::SeqCst);
            engine.job_ended.notify_waiters();
            if let Err(e) = res {
                tracing::error!(job_id = %job_id, "job task panicked: {e}");
            }
            engine
                .controls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&job_id);
        });
    }

    /// (queued, running) jobs of this process, over both kinds of slot.
    pub fn load(&self) -> (usize, usize) {
        self.slots.load()
    }

    pub fn uptime_s(&self) -> f64 {
        self.started_at.elapsed().as_secs_f64()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Stops admitting jobs; accepted ones go on.
    pub fn start_drain(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            let (queued, running) = self.load();
            tracing::info!(
                queued,
                running,
                "draining: no new jobs; accepted jobs finish"
            );
        }
    }

    /// Waits until no accepted job is left or `deadline` passes; true when idle.
    pub async fn wait_idle(&self, deadline: std::time::Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let ended = self.job_ended.notified();
            if self.load() == (0, 0) {
                return true;
            }
            // Re-check at least every second: a count can change without a notification
            // racing past us between the load and the wait.
            let step = until.min(tokio::time::Instant::now() + std::time::Duration::from_secs(1));
            if tokio::time::timeout_at(step, ended).await.is_err()
                && tokio::time::Instant::now() >= until
            {
                return self.load() == (0, 0);
            }
        }
    }

    /// Admission control for a new job of `user_id`: draining, queue bound, per-user quota,
    /// free disk. Nothing is written when it refuses. Blocking (counts the user's jobs in the
    /// store): call it from the blocking pool.
    pub fn admit(&self, user_id: &str) -> Result<(), JobError> {
        if self.is_draining() {
            return Err(JobError::Draining);
        }
        let (queued, _) = self.load();
        if queued >= self.config.max_queued_jobs {
            return Err(JobError::QueueFull {
                max: self.config.max_queued_jobs,
            });
        }
        if self.config.max_jobs_per_user > 0 {
            let active = self.store.count_active_jobs(user_id)?;
            if active >= self.config.max_jobs_per_user {
                return Err(JobError::UserQuota {
                    user_id: user_id.into(),
                    max: self.config.max_jobs_per_user,
                });
            }
        }
        self.check_disk()
    }

    /// Refuses when the data directory has less than the configured free space.
    fn check_disk(&self) -> Result<(), JobError> {
        match disk_space(&self.config.data_dir) {
            Ok((free, _)) if free < self.config.min_free_disk_bytes => Err(JobError::DiskLow {
                path: self.config.data_dir.clone(),
                free_bytes: free,
                min_bytes: self.config.min_free_disk_bytes,
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(
                    "cannot read free space of {}: {e}",
                    self.config.data_dir.display()
                );
                Ok(())
            }
        }
    }

    /// Sends an event to watchers and writes nothing.
    fn publish(&self, job: &proto::Job, message: &str, frames_per_s: f64) {
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(proto::JobEvent {
            job: Some(job.clone()),
            message: message.into(),
            frames_per_s,
        });
    }

    fn set_state(&self, job: &mut proto::Job, to: JobState, stage: &str, progress: f64) {
        let from = JobState::try_from(job.state).ok();
        job.state = to as i32;
        job.stage = stage.into();
        job.progress = progress;
        job.updated_unix_ms = now_unix_ms();
        if let Err(e) = self.store.update_job(job) {
            tracing::error!(job_id = %job.job_id, "could not persist state: {e}");
        }
        self.metrics.job_transition(from, to);
        self.publish(job, stage, 0.0);
    }

    /// Runs one job to a final state, on a blocking thread, holding a slot of `kind`.
    fn run(self: &Arc<Self>, job_id: &str, kind: SlotKind) {
        let rec = match self.store.get_job(job_id) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(job_id, "cannot load job: {e}");
                return;
            }
        };
        let state = JobState::try_from(rec.job.state).unwrap_or(JobState::Unspecified);
        if is_final(state) {
            return;
        }
        let Some(control) = self.start_control(job_id) else {
            return;
        };
        let mut job = rec.job.clone();
        job.attempts += 1;
        let mut measured = Measured::default();
        let end = self.run_stages(&rec, &mut job, &control.cancel, &mut measured, kind);
        let (state, msg) = match end {
            Ok(()) => (JobState::Succeeded, String::new()),
            Err(RunEnd::Cancelled) => (JobState::Cancelled, "cancelled".to_string()),
            Err(RunEnd::Failed(msg)) => {
                tracing::warn!(job_id, "job failed: {msg}");
                (JobState::Failed, msg)
            }
        };
        if state != JobState::Succeeded {
            // Nothing of a failed or cancelled job is delivered: free its disk before writing
            // the final state, which may need that space (a disk that filled mid-job).
            self.discard_intermediates(job_id);
        }
        self.finish_with(&rec, &mut job, state, msg, &measured, true);
    }

    /// Removes a finished job's intermediate footage and any partial file (the pipelines remove
    /// their own; this also catches one left by a crash of an earlier attempt).
    fn discard_intermediates(&self, job_id: &str) {
        let dir = self.job_dir(job_id);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name == "generated.mp4" || name.ends_with(".partial") {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(job_id, "cannot remove {}: {e}", path.display());
                }
            }
        }
        // Only when empty: an output that failed validation stays for inspection.
        let _ = std::fs::remove_dir(&dir);
    }

    /// Adds a completed stage run to the node's throughput per engine.
    fn measure(&self, stage: &str, engine: &str, kind: SlotKind, frames: f64, busy_s: f64) {
        self.throughput
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(stage, engine, kind, frames, busy_s);
    }

    fn run_stages(
        &self,
        rec: &JobRecord,
        job: &mut proto::Job,
        cancel: &AtomicBool,
        measured: &mut Measured,
        kind: SlotKind,
    ) -> Result<(), RunEnd> {
        let plan = &rec.plan;
        let profile = self.catalog.get(&plan.profile).cloned().ok_or_else(|| {
            RunEnd::Failed(format!(
                "profile {} is not configured on this node",
                plan.profile
            ))
        })?;
        let dir = self.job_dir(&job.job_id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            RunEnd::Failed(format!(
                "cannot create job directory {}: {e}",
                dir.display()
            ))
        })?;
        let generated_path = dir.join("generated.mp4");
        let output_path = dir.join(format!("output.{}", profile.container));

        // GENERATING (skipped when a complete file survives from an interrupted run: files
        // appear under their final name only once complete).
        if cancel.load(Ordering::SeqCst) {
            return Err(RunEnd::Cancelled);
        }
        // A full disk fails the job here, before anything is written.
        self.check_disk()
            .map_err(|e| RunEnd::Failed(e.to_string()))?;
        self.set_state(job, JobState::Generating, "generate", PROGRESS_GENERATE.0);
        if generated_path.is_file() {
            tracing::info!(job_id = %job.job_id, "generated footage already on disk; skipping generation");
            // An earlier run paid for it: the receipt still shows the provider's charge.
            if let Ok(backend) = self.backends.get(&plan.backend) {
                measured.record_provider_spend(backend.spent(&job.job_id));
            }
        } else {
            let backend = self
                .backends
                .get(&plan.backend)
                .map_err(|e| RunEnd::Failed(e.to_string()))?;
            let req = generation_request(&job.job_id, &job.prompt, rec.seed, plan, &profile);
            let started = Instant::now();
            let mut on_progress =
                self.progress_reporter(job.clone(), "generate", PROGRESS_GENERATE);
            let result = backend.generate(&req, &generated_path, &mut on_progress, cancel);
            let wall_s = started.elapsed().as_secs_f64();
            match result {
                Ok(g) => {
                    measured.generate = Some(StageRun {
                        wall_s,
                        compute_s: g.compute_s,
                        frames_per_s: g.frames_per_s,
                    });
                    measured.provider_charge_usd_micros = g.provider_charge_usd_micros;
                    measured.provider_task_id = g.provider_task_id;
                    measured.provider_billed_units = g.billed_units;
                    measured.provider_billed_unit = g.billed_unit;
                    measured.generated_sha256 = g.sha256;
                    self.observe_stage("generate", &plan.backend, wall_s, g.frames_per_s);
                    self.measure(
                        "generate",
                        engines::step_engine(plan, "generate", &plan.backend),
                        kind,
                        g.frames_per_s * g.compute_s,
                        g.compute_s,
                    );
                }
                Err(e) => {
                    // A remote backend's wait is the provider's time, not this node's compute;
                    // what the provider charged before failing comes from its ledger.
                    measured.generate = Some(StageRun {
                        wall_s,
                        compute_s: if plan.backend == "local" { wall_s } else { 0.0 },
                        frames_per_s: 0.0,
                    });
                    measured.record_provider_spend(backend.spent(&job.job_id));
                    return Err(match e {
                        BackendError::Cancelled => RunEnd::Cancelled,
                        e => RunEnd::Failed(e.to_string()),
                    });
                }
            }
        }

        // PROCESSING: scale (the plan's upscale step) + encode to the profile.
        if cancel.load(Ordering::SeqCst) {
            return Err(RunEnd::Cancelled);
        }
        self.set_state(job, JobState::Processing, "process", PROGRESS_PROCESS.0);
        let spec = output_spec(&profile);
        // Known before processing, so that aiprodqc measures in the pipeline what validation
        // checks (no second decode of the output).
        let tier = proto::Tier::try_from(plan.tier).unwrap_or(proto::Tier::Unspecified);
        let quality_spec = self.quality_spec(tier, &plan.profile);
        let qc_config = quality_spec.as_ref().map(aiprod_quality::spec::qc_config);
        let pipeline_qc;
        let started = Instant::now();
        let mut on_progress = self.progress_reporter(job.clone(), "process", PROGRESS_PROCESS);
        let upscale = realesrgan_upscale(plan, &self.hardware);
        let result = pipeline::process_job(
            &generated_path,
            &output_path,
            &spec,
            upscale.as_ref(),
            qc_config.as_ref(),
            &mut on_progress,
            cancel,
        );
        let wall_s = started.elapsed().as_secs_f64();
        match result {
            Ok(pipeline::Processed {
                stats,
                upscale: upscaled,
                qc,
            }) => {
                pipeline_qc = qc;
                if let Some(u) = upscaled {
                    measured.upscale = Some(StageRun {
                        wall_s: u.busy_s,
                        compute_s: u.busy_s,
                        frames_per_s: u.frames as f64 / u.busy_s.max(f64::MIN_POSITIVE),
                    });
                    measured.upscale_on_gpu = u.on_gpu;
                    let engine = engines::step_engine(plan, "upscale", REALESRGAN_ENGINE);
                    self.measure("upscale", engine, kind, u.frames as f64, u.busy_s);
                }
                measured.process = Some(StageRun {
                    wall_s,
                    compute_s: wall_s,
                    frames_per_s: stats.frames_per_s,
                });
                self.observe_stage("process", &plan.backend, wall_s, stats.frames_per_s);
                let engine = engines::step_engine(plan, "encode", "x264");
                self.measure("process", engine, kind, stats.frames as f64, wall_s);
            }
            Err(pipeline::PipelineError::Cancelled) => {
                measured.process = Some(StageRun {
                    wall_s,
                    compute_s: wall_s,
                    frames_per_s: 0.0,
                });
                return Err(RunEnd::Cancelled);
            }
            Err(e) => {
                measured.process = Some(StageRun {
                    wall_s,
                    compute_s: wall_s,
                    frames_per_s: 0.0,
                });
                return Err(RunEnd::Failed(format!("processing: {e}")));
            }
        }

        // VALIDATING: probe the output natively and check it against the profile.
        if cancel.load(Ordering::SeqCst) {
            return Err(RunEnd::Cancelled);
        }
        self.set_state(job, JobState::Validating, "validate", PROGRESS_PROCESS.1);
        let started = Instant::now();
        let probe = aiprod_quality::probe_summary(&output_path);
        let wall_s = started.elapsed().as_secs_f64();
        measured.validate = Some(StageRun {
            wall_s,
            compute_s: wall_s,
            frames_per_s: 0.0,
        });
        self.observe_stage("validate", &plan.backend, wall_s, 0.0);
        let probe = probe.map_err(|e| RunEnd::Failed(format!("validation: {e}")))?;
        measured.output_bytes = probe.size_bytes;
        let summary = receipt::probe_to_proto(&probe);
        measured.probe = Some(summary.clone());
        job.output_path = absolute(&output_path).display().to_string();
        let problems = receipt::check_output(&summary, &profile, plan.duration_s);
        if !problems.is_empty() {
            return Err(RunEnd::Failed(format!(
                "validation: {}",
                problems.join("; ")
            )));
        }
        // The QualitySpec of the job's tier and profile: every check goes into the receipt, and
        // any failed check fails the job with the report. A profile without one (an operator's
        // own) is checked against the profile only, above.
        if let Some(spec) = &quality_spec {
            let started = Instant::now();
            let opts = aiprod_quality::spec::ValidateOptions {
                expected_duration_s: Some(plan.duration_s),
                reference: None,
            };
            // QC measured in the pipeline; decoding the output only when that did not report.
            let report = match &pipeline_qc {
                Some(qc) => aiprod_quality::spec::validate_measured(&output_path, spec, qc, &opts),
                None => aiprod_quality::spec::validate_with_spec(&output_path, spec, &opts),
            };
            let qc_s = started.elapsed().as_secs_f64();
            if let Some(v) = measured.validate.as_mut() {
                v.wall_s += qc_s;
                v.compute_s += qc_s;
            }
            let report = report.map_err(|e| RunEnd::Failed(format!("validation: {e}")))?;
            let report = receipt::validation_to_proto(&report, tier, &plan.profile);
            measured.validation = Some(report.clone());
            // The local backend renders synthetic footage (a still look and a test tone):
            // its content checks are reported, only its format checks fail the job.
            let enforced =
                |name: &str| plan.backend != "local" || aiprod_quality::spec::is_format_check(name);
            if report.checks.iter().any(|c| !c.pass && enforced(&c.name)) {
                let failed: Vec<String> = report
                    .checks
                    .iter()
                    .filter(|c| !c.pass && enforced(&c.name))
                    .map(|c| format!("{} {} (threshold {})", c.name, c.measured, c.threshold))
                    .collect();
                return Err(RunEnd::Failed(format!(
                    "validation failed: {}",
                    failed.join("; ")
                )));
            }
        }
        // The intermediate footage is not part of the deliverable; free the disk.
        let _ = std::fs::remove_file(&generated_path);
        Ok(())
    }

    /// The QualitySpec of a tier and profile (profiles_dir/quality, else compiled in); None for a
    /// tier without specs or a profile without one.
    fn quality_spec(
        &self,
        tier: proto::Tier,
        profile: &str,
    ) -> Option<aiprod_quality::spec::QualitySpec> {
        let tier_name = crate::control::tier_spec_name(tier)?;
        let spec_dir = self.config.profiles_dir.as_ref().map(|d| d.join("quality"));
        aiprod_quality::spec::QualitySpec::load_or_builtin(spec_dir.as_deref(), profile, tier_name)
            .map_err(|e| tracing::info!(profile, "no QualitySpec: {e}"))
            .ok()
    }

    fn observe_stage(&self, stage: &str, backend: &str, wall_s: f64, frames_per_s: f64) {
        self.metrics
            .stage_duration_s
            .with_label_values(&[stage, backend])
            .observe(wall_s);
        if frames_per_s > 0.0 {
            self.metrics
                .frames_per_s
                .with_label_values(&[stage])
                .set(frames_per_s);
        }
    }

    /// A progress callback that maps a stage's 0..1 onto the job's range, persists it at most
    /// a few times a second and tells watchers.
    fn progress_reporter(
        &self,
        mut job: proto::Job,
        stage: &'static str,
        range: (f64, f64),
    ) -> impl FnMut(&pipeline::Progress) + '_ {
        move |p: &pipeline::Progress| {
            let f = p.fraction.clamp(0.0, 1.0);
            job.progress = range.0 + (range.1 - range.0) * f;
            job.updated_unix_ms = now_unix_ms();
            job.stage = stage.into();
            if let Err(e) = self.store.update_job(&job) {
                tracing::warn!(job_id = %job.job_id, "could not persist progress: {e}");
            }
            self.publish(&job, stage, p.frames_per_s);
        }
    }

    /// Closes a job: final state, receipt, ledger, calibration, metrics, one transaction for
    /// the job row + receipt + ledger. One attempt at the write (see [`Self::finish_with`]).
    fn finish(
        &self,
        rec: &JobRecord,
        job: &mut proto::Job,
        state: JobState,
        error: String,
        measured: &Measured,
    ) {
        self.finish_with(rec, job, state, error, measured, false);
    }

    /// [`Self::finish`]; with `retry`, a write the store refuses (a full disk: SQLITE_FULL)
    /// is retried with backoff until it succeeds or the node drains, so a job never ends
    /// without its final state and receipt on record. Only the job's own thread retries; an
    /// unrecorded job resumes at the next start like any interrupted one.
    fn finish_with(
        &self,
        rec: &JobRecord,
        job: &mut proto::Job,
        state: JobState,
        error: String,
        measured: &Measured,
        retry: bool,
    ) {
        let from = JobState::try_from(job.state).ok();
        let receipt = receipt::build(rec, job, state, &error, measured, &self.node);
        job.state = state as i32;
        job.error = error;
        job.progress = if state == JobState::Succeeded {
            1.0
        } else {
            job.progress
        };
        job.stage = crate::telemetry::state_label(state).into();
        job.updated_unix_ms = now_unix_ms();
        job.actual_cost_usd_micros = receipt.actual_total_usd_micros;
        let written = retry_write(
            || self.store.finish_job(job, &receipt),
            |attempt, e| {
                let go_on = retry && !self.is_draining();
                // Loud once, then about every minute: a full disk is for an operator to fix.
                if go_on && (attempt == 1 || attempt % 12 == 0) {
                    tracing::error!(job_id = %job.job_id, attempt, "could not persist final state ({e}); retrying until the store takes it");
                }
                go_on
            },
            std::thread::sleep,
        );
        match written {
            Ok(1) => {}
            Ok(attempts) => {
                tracing::info!(job_id = %job.job_id, attempts, "final state persisted after retries")
            }
            Err((attempts, e)) => {
                tracing::error!(job_id = %job.job_id, attempts, "could not persist final state: {e}; the job resumes at the next start")
            }
        }
        self.metrics.job_transition(from, state);
        let tier = proto::Tier::try_from(receipt.tier)
            .map(|t| t.as_str_name())
            .unwrap_or("TIER_UNSPECIFIED");
        for line in &receipt.lines {
            let labels = [receipt.backend.as_str(), tier, line.item.as_str()];
            self.metrics
                .cost_usd
                .with_label_values(&labels)
                .inc_by(line.actual_usd_micros.max(0) as f64 / 1e6);
            self.metrics
                .estimated_cost_usd
                .with_label_values(&labels)
                .inc_by(line.estimated_usd_micros.max(0) as f64 / 1e6);
        }
        if state == JobState::Succeeded {
            self.calibrate(rec, measured);
        }
        self.publish(job, crate::telemetry::state_label(state), 0.0);
    }

    /// Feeds measured stage times back into the estimates (EWMA per backend and stage).
    fn calibrate(&self, rec: &JobRecord, measured: &Measured) {
        let mut cal = self.calibration.lock().unwrap_or_else(|p| p.into_inner());
        for o in receipt::observations(&rec.plan, measured) {
            // The plan's estimate already carries the factor of its time; fold in the
            // uncalibrated estimate so the factor converges on actual / model.
            let factor = cal.factor(&o.backend, &o.stage);
            cal.observe(&o.backend, &o.stage, o.estimated / factor, o.actual);
        }
        if let Err(e) = self.store.save_calibration(&cal.entries()) {
            tracing::warn!("could not save calibration: {e}");
        }
    }
}

/// Calls `write` until it succeeds, sleeping between attempts (from 100 ms, doubling up to
/// [`FINAL_WRITE_BACKOFF_MAX`]) for as long as `keep_trying(attempt, &error)` says so. Returns
/// the attempts it took, or the attempts made and the last error.
fn retry_write<E>(
    mut write: impl FnMut() -> Result<(), E>,
    mut keep_trying: impl FnMut(u32, &E) -> bool,
    sleep: impl Fn(Duration),
) -> Result<u32, (u32, E)> {
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match write() {
            Ok(()) => return Ok(attempt),
            Err(e) if keep_trying(attempt, &e) => {
                sleep(backoff);
                backoff = (backoff * 2).min(FINAL_WRITE_BACKOFF_MAX);
                attempt += 1;
            }
            Err(e) => return Err((attempt, e)),
        }
    }
}

/// What a plan asks its backend to generate.
pub fn generation_request(
    job_id: &str,
    prompt: &str,
    seed: u64,
    plan: &proto::PlanOption,
    profile: &aiprod_planner::ResolutionProfile,
) -> GenerationRequest {
    let gen_res = plan.generated_resolution.unwrap_or_default();
    GenerationRequest {
        job_id: job_id.to_string(),
        prompt: prompt.to_string(),
        seed,
        model: plan.model.clone(),
        width: gen_res.width,
        height: gen_res.height,
        fps_num: profile.fps_num,
        fps_den: profile.fps_den,
        duration_s: plan.duration_s,
        max_charge_usd_micros: receipt::provider_charge_cap(plan),
    }
}

/// The encoder settings for a resolution profile.
/// Engines of pricing.toml's `[[upscalers]]` that the pipeline runs as Real-ESRGAN
/// (`aiprodupscale`); any other engine keeps the GStreamer scaler. `-cpu` pins the CPU.
const REALESRGAN_ENGINE: &str = "aiprod/realesrgan";
/// The model those entries price (their `detail`), from models/registry.toml.
const REALESRGAN_MODEL: &str = "realesr-animevideov3";

/// The Real-ESRGAN upscale of a plan, when its upscale step is one.
pub fn realesrgan_upscale(
    plan: &proto::PlanOption,
    hardware: &crate::node::Hardware,
) -> Option<pipeline::UpscaleSpec> {
    use crate::node::{ENGINE_ORT_CUDA, ENGINE_ORT_TENSORRT, ENGINE_WGPU};
    let step = plan
        .steps
        .iter()
        .find(|s| s.kind == "upscale" && s.scale > 1)?;
    let (engine, device) = match step.engine.strip_prefix(REALESRGAN_ENGINE)? {
        // The GPU entry: ONNX Runtime where its CUDA/TensorRT providers run, else the wgpu
        // kernels on a GPU ONNX Runtime cannot use (AMD, Intel, any Vulkan card).
        "" if !hardware.gpu_with_any(&[ENGINE_ORT_TENSORRT, ENGINE_ORT_CUDA])
            && hardware.gpu_with_any(&[ENGINE_WGPU]) =>
        {
            ("wgpu", "auto")
        }
        "" => ("ort", "auto"),
        "-cpu" => ("ort", "cpu"),
        _ => return None,
    };
    Some(pipeline::UpscaleSpec {
        model: REALESRGAN_MODEL.to_string(),
        scale: step.scale,
        engine: engine.to_string(),
        device: device.to_string(),
        models_dir: None,
    })
}

pub fn output_spec(p: &aiprod_planner::ResolutionProfile) -> OutputSpec {
    use pipeline::{AudioFormat, Container, ScaleMethod, VideoFormat};
    OutputSpec {
        width: p.width,
        height: p.height,
        fps_num: p.fps_num,
        fps_den: p.fps_den,
        container: if p.container.eq_ignore_ascii_case("mov") {
            Container::Mov
        } else {
            Container::Mp4
        },
        video: if p.bit_depth > 8 {
            VideoFormat::H264Yuv422p10
        } else {
            VideoFormat::H264Yuv420p8
        },
        video_bitrate_bps: p.video_bitrate_bps,
        audio: if p.audio.codec.starts_with("pcm") {
            AudioFormat::PcmS24le
        } else {
            AudioFormat::Aac {
                bitrate_bps: p.audio.bitrate_bps.unwrap_or(192_000) as u32,
            }
        },
        audio_rate_hz: p.audio.sample_rate_hz,
        audio_channels: p.audio.channels,
        scale: ScaleMethod::Lanczos,
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_final_write_is_retried_with_capped_backoff_until_it_lands() {
        let mut refusals = 7;
        let slept = std::cell::RefCell::new(Vec::new());
        let result = retry_write(
            || {
                if refusals > 0 {
                    refusals -= 1;
                    Err("database or disk is full")
                } else {
                    Ok(())
                }
            },
            |_, _| true,
            |d| slept.borrow_mut().push(d.as_millis()),
        );
        assert_eq!(result, Ok(8));
        assert_eq!(
            slept.into_inner(),
            vec![100, 200, 400, 800, 1600, 3200, 5000]
        );
        // Told to stop (the node drains): the last error and the attempts made.
        let result = retry_write(
            || Err::<(), _>("database or disk is full"),
            |attempt, _| attempt < 3,
            |_| {},
        );
        assert_eq!(result, Err((3, "database or disk is full")));
    }
}
