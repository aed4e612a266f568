//! Jobs: the state machine QUEUED → GENERATING → PROCESSING → VALIDATING → SUCCEEDED | FAILED |
//! CANCELLED, run asynchronously with bounded concurrency, persisted in SQLite at every
//! transition, resumed after a crash, and closed with a receipt (estimated next to actual).

pub mod receipt;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aiprod_planner::{Calibration, NodeRates, ProfileCatalog};
use tokio::sync::{broadcast, Semaphore};

use crate::backends::{BackendError, Backends, GenerationRequest};
use crate::config::Config;
use crate::now_unix_ms;
use crate::pipeline::{self, OutputSpec};
use crate::proto::{self, JobState};
use crate::telemetry::Metrics;
use receipt::{Measured, StageRun};
use store::{JobRecord, Store, StoreError};

/// How many job events a slow watcher may fall behind before it re-reads the job.
const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// Progress is split over the stages by their usual share of the work, so a watcher sees
/// one 0..1 figure for the whole job.
const PROGRESS_GENERATE: (f64, f64) = (0.0, 0.45);
const PROGRESS_PROCESS: (f64, f64) = (0.45, 0.95);

/// Job-layer errors.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {job_id} is already {state}")]
    AlreadyFinal { job_id: String, state: &'static str },
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
    slots: Arc<Semaphore>,
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
    pub fn new(
        store: Arc<Store>,
        config: Arc<Config>,
        catalog: Arc<ProfileCatalog>,
        metrics: Arc<Metrics>,
        backends: Backends,
        node: NodeRates,
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
        Ok(Self {
            slots: Arc::new(Semaphore::new(config.max_concurrent_jobs)),
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

    /// Stores a new job (or finds the idempotent twin) and starts it. Returns the job and
    /// whether it was created now.
    pub fn submit(self: &Arc<Self>, rec: JobRecord) -> Result<(proto::Job, bool), JobError> {
        let (stored, created) = self.store.insert_job(&rec)?;
        if created {
            self.metrics.job_transition(None, JobState::Queued);
            self.publish(&stored.job, "queued", 0.0);
            self.spawn(stored.job.job_id.clone());
        }
        Ok((stored.job, created))
    }

    /// Resumes every job the last run left unfinished: each is retried from its last complete
    /// stage, or failed with a receipt once it has been interrupted `max_job_attempts` times.
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
            tracing::info!(job_id = %job.job_id, state = crate::telemetry::state_label(from), "resuming job after restart");
            self.spawn(job.job_id.clone());
        }
        Ok(n)
    }

    /// Cancels a job: one that has not started runs at once, a running one at its next
    /// cancellation point (the pipelines poll the flag about every 100 ms).
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

    fn spawn(self: &Arc<Self>, job_id: String) {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let permit = match Arc::clone(&engine.slots).acquire_owned().await {
                Ok(p) => p,
                Err(_) => return, // the semaphore is closed only at shutdown
            };
            let worker = Arc::clone(&engine);
            let id = job_id.clone();
            let res = tokio::task::spawn_blocking(move || worker.run(&id)).await;
            drop(permit);
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

    /// Runs one job to a final state, on a blocking thread.
    fn run(self: &Arc<Self>, job_id: &str) {
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
        let end = self.run_stages(&rec, &mut job, &control.cancel, &mut measured);
        match end {
            Ok(()) => self.finish(
                &rec,
                &mut job,
                JobState::Succeeded,
                String::new(),
                &measured,
            ),
            Err(RunEnd::Cancelled) => self.finish(
                &rec,
                &mut job,
                JobState::Cancelled,
                "cancelled".into(),
                &measured,
            ),
            Err(RunEnd::Failed(msg)) => {
                tracing::warn!(job_id, "job failed: {msg}");
                self.finish(&rec, &mut job, JobState::Failed, msg, &measured)
            }
        }
    }

    fn run_stages(
        &self,
        rec: &JobRecord,
        job: &mut proto::Job,
        cancel: &AtomicBool,
        measured: &mut Measured,
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
        let gen_res = plan.generated_resolution.unwrap_or_default();

        // GENERATING (skipped when a complete file survives from an interrupted run: files
        // appear under their final name only once complete).
        if cancel.load(Ordering::SeqCst) {
            return Err(RunEnd::Cancelled);
        }
        self.set_state(job, JobState::Generating, "generate", PROGRESS_GENERATE.0);
        if generated_path.is_file() {
            tracing::info!(job_id = %job.job_id, "generated footage already on disk; skipping generation");
        } else {
            let backend = self
                .backends
                .get(&plan.backend)
                .map_err(|e| RunEnd::Failed(e.to_string()))?;
            let req = GenerationRequest {
                prompt: job.prompt.clone(),
                seed: rec.seed,
                model: plan.model.clone(),
                width: gen_res.width,
                height: gen_res.height,
                fps_num: profile.fps_num,
                fps_den: profile.fps_den,
                duration_s: plan.duration_s,
            };
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
                    self.observe_stage("generate", &plan.backend, wall_s, g.frames_per_s);
                }
                Err(BackendError::Cancelled) => {
                    measured.generate = Some(StageRun {
                        wall_s,
                        compute_s: wall_s,
                        frames_per_s: 0.0,
                    });
                    return Err(RunEnd::Cancelled);
                }
                Err(e) => {
                    measured.generate = Some(StageRun {
                        wall_s,
                        compute_s: wall_s,
                        frames_per_s: 0.0,
                    });
                    return Err(RunEnd::Failed(e.to_string()));
                }
            }
        }

        // PROCESSING: scale (the plan's upscale step) + encode to the profile.
        if cancel.load(Ordering::SeqCst) {
            return Err(RunEnd::Cancelled);
        }
        self.set_state(job, JobState::Processing, "process", PROGRESS_PROCESS.0);
        let spec = output_spec(&profile);
        let started = Instant::now();
        let mut on_progress = self.progress_reporter(job.clone(), "process", PROGRESS_PROCESS);
        let result = pipeline::process(
            &generated_path,
            &output_path,
            &spec,
            &mut on_progress,
            cancel,
        );
        let wall_s = started.elapsed().as_secs_f64();
        match result {
            Ok(stats) => {
                measured.process = Some(StageRun {
                    wall_s,
                    compute_s: wall_s,
                    frames_per_s: stats.frames_per_s,
                });
                self.observe_stage("process", &plan.backend, wall_s, stats.frames_per_s);
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
        // The intermediate footage is not part of the deliverable; free the disk.
        let _ = std::fs::remove_file(&generated_path);
        Ok(())
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
    /// the job row + receipt + ledger.
    fn finish(
        &self,
        rec: &JobRecord,
        job: &mut proto::Job,
        state: JobState,
        error: String,
        measured: &Measured,
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
        if let Err(e) = self.store.finish_job(job, &receipt) {
            tracing::error!(job_id = %job.job_id, "could not persist final state: {e}");
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

/// The encoder settings for a resolution profile.
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
