//! The gRPC service `aiprod.v1.Control`: validates requests, calls the planner and the job
//! engine, and answers. Errors become statuses only in [`error`]; every call is logged once
//! with a request id, its method, its status code and its latency. Work that touches the
//! SQLite store or a provider runs on the blocking pool ([`ControlService::blocking`]), never
//! on the async workers that serve every other call.

pub mod convert;
pub mod error;
mod integrations;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use aiprod_planner::{estimate_plan, estimate_plans, PlanRequest, PriceTable, Tier};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::jobs::store::{JobFilter, JobRecord, StoredPlan};
use crate::jobs::{is_final, JobEngine};
use crate::now_unix_ms;
use crate::proto::{self, control_server::Control, JobState};
use convert::*;
use error::ControlError;

/// Default and largest page of ListJobs.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 500;
/// User ids are labels chosen by callers; bound them so they stay cheap to store and log.
const MAX_USER_ID_LEN: usize = 128;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// The user of requests that name none.
pub const DEFAULT_USER: &str = "default";
/// Store-only RPCs running on the blocking pool at once; the rest wait their turn, first come
/// first served, without holding a thread. The store is one connection behind a mutex, so
/// more of them would only queue on that mutex, which is not fair: with 16 clients on 2 cores
/// (benches/README.md, `store_load`), unbounded, the slowest calls took twice as long.
const STORE_TASKS: usize = 4;

/// The Control service.
pub struct ControlService {
    engine: Arc<JobEngine>,
    prices: Arc<PriceTable>,
    health: tonic_health::server::HealthReporter,
    /// Webhook subscriptions (set by the server; see `with_webhooks`).
    webhooks: Option<Arc<crate::webhooks::Webhooks>>,
    /// Turns for store-bound work on the blocking pool ([`STORE_TASKS`], first come first
    /// served).
    store_turns: Arc<tokio::sync::Semaphore>,
}

type RpcResult<T> = Result<Response<T>, Status>;

impl ControlService {
    pub fn new(
        engine: Arc<JobEngine>,
        prices: Arc<PriceTable>,
        health: tonic_health::server::HealthReporter,
    ) -> Self {
        Self {
            engine,
            prices,
            health,
            webhooks: None,
            store_turns: Arc::new(tokio::sync::Semaphore::new(STORE_TASKS)),
        }
    }

    fn node_status(&self) -> proto::NodeStatus {
        let cfg = &self.engine.config;
        let (queued, running) = self.engine.load();
        let (disk_free_bytes, disk_total_bytes) =
            crate::jobs::disk_space(&cfg.data_dir).unwrap_or((0, 0));
        let mut throughput = self.engine.throughput_status();
        if throughput.is_empty() {
            // Nothing completed since start: the last run's rate per stage, from the metrics.
            throughput = ["generate", "process"]
                .iter()
                .map(|stage| proto::EngineThroughput {
                    stage: stage.to_string(),
                    frames_per_s: self
                        .engine
                        .metrics
                        .frames_per_s
                        .with_label_values(&[stage])
                        .get(),
                    ..Default::default()
                })
                .filter(|t| t.frames_per_s > 0.0)
                .collect();
        }
        proto::NodeStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            node_name: if cfg.node_name.is_empty() {
                crate::node::host_name()
            } else {
                cfg.node_name.clone()
            },
            cpu_count: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            adapters: self.engine.hardware.to_proto(),
            queue_depth: queued as u32,
            running_jobs: running as u32,
            max_concurrent_jobs: self.engine.total_slots() as u32,
            max_queued_jobs: cfg.max_queued_jobs as u32,
            disk_free_bytes,
            disk_total_bytes,
            draining: self.engine.is_draining(),
            throughput,
            uptime_s: self.engine.uptime_s(),
            backends: self
                .engine
                .backend_names()
                .iter()
                .map(|b| b.to_string())
                .collect(),
            slots: self.engine.slot_status(),
        }
    }

    /// Marks plans this node cannot run for lack of a GPU engine infeasible, with the reason.
    fn check_engines(&self, plans: &mut [proto::PlanOption]) {
        for p in plans.iter_mut().filter(|p| p.feasible) {
            if let Err(e) = self.engine.slot_for(p) {
                p.feasible = false;
                p.infeasible_reasons.push(e.to_string());
            }
        }
    }

    /// Logs and counts one finished call and maps its error to a status.
    fn answer<T>(
        &self,
        method: &'static str,
        started: Instant,
        result: Result<T, ControlError>,
    ) -> RpcResult<T> {
        let request_id = uuid::Uuid::new_v4();
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        let result = result.map_err(Status::from);
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.engine
            .metrics
            .grpc_requests
            .with_label_values(&[method, &format!("{code:?}")])
            .inc();
        match &result {
            Ok(_) => tracing::info!(%request_id, method, latency_ms, "ok"),
            Err(s) if s.code() == tonic::Code::Internal => {
                tracing::error!(%request_id, method, latency_ms, code = ?s.code(), message = s.message(), "failed")
            }
            Err(s) => {
                tracing::info!(%request_id, method, latency_ms, code = ?s.code(), message = s.message(), "refused")
            }
        }
        result.map(Response::new)
    }

    /// Runs `f` on tokio's blocking pool with a handle on this service. Every RPC whose work
    /// reaches the store (one connection behind a mutex; a commit can wait on the disk, a
    /// `usage` scan on every job), a provider or a media file goes through here, so that
    /// waiting for it holds a pool thread and not one of the few async workers that serve
    /// health checks, WatchJob streams and every other call. `op` names the work if its task
    /// dies.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&ControlService) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let me = self.clone_handle();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| ControlError::Internal(format!("{op} task: {e}")))?
    }

    /// [`Self::blocking`] for work that only reads or writes the store: it waits for one of
    /// [`STORE_TASKS`] turns first. Plan and Generate do not take one, as they may wait on a
    /// provider's balance with the store idle.
    async fn on_store<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&ControlService) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let turn = Arc::clone(&self.store_turns)
            .acquire_owned()
            .await
            .map_err(|e| ControlError::Internal(format!("{op}: {e}")))?;
        self.blocking(op, move |me| {
            // Held until the work ends, even when the caller has gone.
            let _turn = turn;
            f(me)
        })
        .await
    }

    /// Constraints and preferences for a request: the request's own, else the user's stored
    /// defaults, else the planner's defaults.
    fn effective_choices(
        &self,
        user_id: &str,
        constraints: Option<&proto::Constraints>,
        preferences: Option<&proto::Preferences>,
    ) -> Result<(aiprod_planner::Constraints, aiprod_planner::Preferences), ControlError> {
        let stored = if constraints.is_none() || preferences.is_none() {
            self.engine.store.get_preferences(user_id)?
        } else {
            None
        };
        let c = constraints
            .or(stored.as_ref().and_then(|s| s.constraints.as_ref()))
            .map(constraints_from_proto)
            .unwrap_or_default();
        let p = preferences
            .or(stored.as_ref().and_then(|s| s.preferences.as_ref()))
            .map(preferences_from_proto)
            .unwrap_or_default();
        Ok((c, p))
    }

    /// Runs `f` (a planner call) on the request built from these inputs and the node's state.
    fn with_plan_request<T>(
        &self,
        prompt: &str,
        duration_s: f64,
        profile: &aiprod_planner::ResolutionProfile,
        (constraints, preferences): (aiprod_planner::Constraints, aiprod_planner::Preferences),
        f: impl FnOnce(&PlanRequest<'_>) -> Result<T, aiprod_planner::PlannerError>,
    ) -> Result<T, ControlError> {
        let backends = self.engine.backend_names();
        let calibration = self.engine.calibration_snapshot();
        let req = PlanRequest {
            prompt,
            duration_s,
            profile,
            constraints,
            preferences,
            available_backends: &backends,
            node: self.engine.node,
            calibration: &calibration,
            max_duration_s: self.engine.config.max_duration_s,
        };
        Ok(f(&req)?)
    }

    fn do_plan(&self, r: proto::PlanRequest) -> Result<proto::PlanResponse, ControlError> {
        let user_id = user_id(&r.user_id)?;
        let selection = self.engine.catalog.resolve(&r.profile, &r.use_case)?;
        let choices =
            self.effective_choices(&user_id, r.constraints.as_ref(), r.preferences.as_ref())?;
        let max_cost = integrations::max_cost_micros(&choices.0);
        let set = self.with_plan_request(
            &r.prompt,
            r.duration_s,
            &selection.profile,
            choices,
            |req| estimate_plans(req, &self.prices),
        )?;
        let now = now_unix_ms();
        let expires = now + (self.engine.config.plan_ttl_s as i64) * 1000;
        let plans: Vec<proto::PlanOption> = set
            .plans
            .iter()
            .map(|p| plan_to_proto(p, uuid::Uuid::new_v4().to_string(), expires))
            .map(|p| proto::PlanOption {
                max_cost_usd_micros: max_cost,
                ..p
            })
            .collect();
        // Remote plans: can the provider do it, and is there money for it (may mark a plan
        // infeasible: "needed X, available Y")?
        let mut plans = plans;
        self.check_engines(&mut plans);
        self.check_funds_blocking(&mut plans, &r.prompt);
        let stored: Vec<StoredPlan> = plans
            .iter()
            .map(|p| StoredPlan {
                plan: p.clone(),
                prompt: r.prompt.clone(),
                user_id: user_id.clone(),
                expires_unix_ms: expires,
            })
            .collect();
        self.engine.store.insert_plans(&stored, now)?;
        let recommended = set
            .recommended
            .map(tier_to_proto)
            .unwrap_or(proto::Tier::Unspecified);
        let recommended_plan_id = plans
            .iter()
            .find(|p| p.tier == recommended as i32 && recommended != proto::Tier::Unspecified)
            .map(|p| p.plan_id.clone())
            .unwrap_or_default();
        self.engine
            .metrics
            .plans
            .with_label_values(&[set.recommended.map(|t| t.as_str()).unwrap_or("NONE")])
            .inc();
        let mut resp = proto::PlanResponse {
            plans,
            recommended: recommended as i32,
            recommended_plan_id,
            rationale: set.rationale,
            relaxations: set.relaxations,
            profile: selection.profile.name.clone(),
            profile_reason: selection.reason,
            expires_unix_ms: expires,
        };
        integrations::fix_recommendation(&mut resp);
        Ok(resp)
    }

    /// Validates a Generate request and builds its job (not yet stored or funded).
    fn prepare_generate(&self, r: proto::GenerateRequest) -> Result<JobRecord, ControlError> {
        let user_id = user_id(&r.user_id)?;
        if r.idempotency_key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(ControlError::invalid(
                "idempotency_key",
                format!("longer than {MAX_IDEMPOTENCY_KEY_LEN} bytes"),
            ));
        }
        let (plan, prompt) = if !r.plan_id.is_empty() {
            let stored = self
                .engine
                .store
                .get_plan(&r.plan_id)?
                .filter(|p| p.user_id == user_id)
                .ok_or_else(|| {
                    ControlError::NotFound(format!(
                        "plan {} not found for user {user_id}",
                        r.plan_id
                    ))
                })?;
            if stored.expires_unix_ms < now_unix_ms() {
                return Err(ControlError::FailedPrecondition(format!(
                    "plan {} expired; call Plan again",
                    r.plan_id
                )));
            }
            (stored.plan, stored.prompt)
        } else {
            let tier: Tier = tier_from_proto(r.tier, "tier")?;
            let selection = self.engine.catalog.resolve(&r.profile, &r.use_case)?;
            let choices = self.effective_choices(&user_id, r.constraints.as_ref(), None)?;
            let max_cost = integrations::max_cost_micros(&choices.0);
            let plan = self.with_plan_request(
                &r.prompt,
                r.duration_s,
                &selection.profile,
                choices,
                |req| estimate_plan(req, &self.prices, tier),
            )?;
            let plan = proto::PlanOption {
                max_cost_usd_micros: max_cost,
                ..plan_to_proto(&plan, String::new(), 0)
            };
            (plan, r.prompt.clone())
        };
        let mut plan = plan;
        self.check_engines(std::slice::from_mut(&mut plan));
        if !plan.feasible {
            return Err(ControlError::FailedPrecondition(format!(
                "the {} plan is infeasible: {}",
                proto::Tier::try_from(plan.tier)
                    .map(|t| t.as_str_name())
                    .unwrap_or("?"),
                plan.infeasible_reasons.join("; ")
            )));
        }
        let now = now_unix_ms();
        let job = proto::Job {
            job_id: uuid::Uuid::new_v4().to_string(),
            user_id,
            state: JobState::Queued as i32,
            tier: plan.tier,
            profile: plan.profile.clone(),
            backend: plan.backend.clone(),
            prompt,
            duration_s: plan.duration_s,
            progress: 0.0,
            stage: "queued".into(),
            created_unix_ms: now,
            updated_unix_ms: now,
            estimated_cost_usd_micros: plan.total_cost_usd_micros,
            plan_id: plan.plan_id.clone(),
            ..Default::default()
        };
        Ok(JobRecord {
            job,
            plan,
            seed: r.seed,
            idempotency_key: r.idempotency_key,
        })
    }

    /// The job, if it exists and (when the request names a user) belongs to that user.
    fn visible_job(&self, job_id: &str, user: &str) -> Result<proto::Job, ControlError> {
        if job_id.is_empty() {
            return Err(ControlError::invalid("job_id", "required"));
        }
        let rec = self.engine.store.get_job(job_id)?;
        match rec {
            Some(r) if user.is_empty() || r.job.user_id == user => Ok(r.job),
            _ => Err(ControlError::NotFound(format!("job {job_id} not found"))),
        }
    }

    fn do_receipt(&self, r: proto::GetReceiptRequest) -> Result<proto::Receipt, ControlError> {
        let j = self.visible_job(&r.job_id, &r.user_id)?;
        self.engine.store.get_receipt(&j.job_id)?.ok_or_else(|| {
            ControlError::FailedPrecondition(format!(
                "job {} has no receipt yet: it is {}",
                j.job_id,
                crate::telemetry::state_label(
                    JobState::try_from(j.state).unwrap_or(JobState::Unspecified)
                )
            ))
        })
    }

    fn do_list(&self, r: proto::ListJobsRequest) -> Result<proto::ListJobsResponse, ControlError> {
        let limit = match r.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(ControlError::invalid(
                    "page_size",
                    format!("at most {MAX_PAGE_SIZE}, got {n}"),
                ))
            }
            n => n,
        };
        let mut states = Vec::new();
        for s in &r.states {
            match JobState::try_from(*s) {
                Ok(JobState::Unspecified) | Err(_) => {
                    return Err(ControlError::invalid(
                        "states",
                        format!("unknown job state {s}"),
                    ))
                }
                Ok(st) => states.push(st),
            }
        }
        let before = if r.page_token.is_empty() {
            None
        } else {
            Some(parse_page_token(&r.page_token)?)
        };
        let filter = JobFilter {
            user_id: if r.user_id.is_empty() {
                None
            } else {
                Some(user_id(&r.user_id)?)
            },
            states,
            created_after_unix_ms: (r.created_after_unix_ms > 0).then_some(r.created_after_unix_ms),
            created_before_unix_ms: (r.created_before_unix_ms > 0)
                .then_some(r.created_before_unix_ms),
            before,
            limit: limit + 1,
        };
        let mut jobs = self.engine.store.list_jobs(&filter)?;
        let next_page_token = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last()
                .map(|j| format!("{}.{}", j.created_unix_ms, j.job_id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(proto::ListJobsResponse {
            jobs,
            next_page_token,
        })
    }

    fn do_usage(&self, r: proto::GetUsageRequest) -> Result<proto::GetUsageResponse, ControlError> {
        let user = if r.user_id.is_empty() {
            None
        } else {
            Some(user_id(&r.user_id)?)
        };
        let to = if r.to_unix_ms > 0 {
            r.to_unix_ms
        } else {
            now_unix_ms() + 1
        };
        if r.from_unix_ms < 0 || r.from_unix_ms > to {
            return Err(ControlError::invalid(
                "from_unix_ms",
                "must be >= 0 and not after to_unix_ms",
            ));
        }
        let rows = self
            .engine
            .store
            .usage(user.as_deref(), r.from_unix_ms, to)?;
        let rows: Vec<proto::UsageRow> = rows
            .into_iter()
            .map(|u| proto::UsageRow {
                user_id: u.user_id,
                tier: u
                    .tier
                    .parse::<Tier>()
                    .map(|t| tier_to_proto(t) as i32)
                    .unwrap_or_else(|_| {
                        proto::Tier::from_str_name(&u.tier)
                            .map(|t| t as i32)
                            .unwrap_or(0)
                    }),
                backend: u.backend,
                jobs_total: u.jobs_total,
                jobs_succeeded: u.jobs_succeeded,
                jobs_failed: u.jobs_failed,
                jobs_cancelled: u.jobs_cancelled,
                spent_usd_micros: u.spent_usd_micros,
                estimated_usd_micros: u.estimated_usd_micros,
                mean_abs_estimate_error: u.mean_abs_estimate_error,
            })
            .collect();
        Ok(proto::GetUsageResponse {
            spent_usd_micros: rows.iter().map(|r| r.spent_usd_micros).sum(),
            jobs_total: rows.iter().map(|r| r.jobs_total).sum(),
            rows,
        })
    }

    fn do_set_preferences(
        &self,
        r: proto::SetPreferencesRequest,
    ) -> Result<proto::UserPreferences, ControlError> {
        let user_id = user_id(&r.user_id)?;
        // The planner's own checks, so stored defaults pass exactly what Plan would accept.
        if let Some(c) = &r.constraints {
            constraints_from_proto(c).validate()?;
        }
        if let Some(p) = &r.preferences {
            preferences_from_proto(p).validate()?;
        }
        let prefs = proto::UserPreferences {
            user_id,
            constraints: r.constraints,
            preferences: r.preferences,
            updated_unix_ms: now_unix_ms(),
        };
        self.engine.store.set_preferences(&prefs)?;
        Ok(prefs)
    }
}

/// Drains the node: no new jobs, health NOT_SERVING for the Control service, then waits up to
/// `deadline` for accepted jobs. True when none is left.
pub async fn drain_node(
    engine: &JobEngine,
    health: &tonic_health::server::HealthReporter,
    deadline: std::time::Duration,
) -> bool {
    engine.start_drain();
    health
        .set_not_serving::<proto::control_server::ControlServer<ControlService>>()
        .await;
    engine.wait_idle(deadline).await
}

/// The request's user id, or the default user; refuses ids that are too long or odd.
fn user_id(raw: &str) -> Result<String, ControlError> {
    if raw.is_empty() {
        return Ok(DEFAULT_USER.to_string());
    }
    if raw.len() > MAX_USER_ID_LEN {
        return Err(ControlError::invalid(
            "user_id",
            format!("longer than {MAX_USER_ID_LEN} bytes"),
        ));
    }
    if !raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-@:".contains(c))
    {
        return Err(ControlError::invalid(
            "user_id",
            "only letters, digits and . _ - @ : are allowed",
        ));
    }
    Ok(raw.to_string())
}

fn parse_page_token(token: &str) -> Result<(i64, String), ControlError> {
    let bad = || ControlError::invalid("page_token", "not a token returned by ListJobs");
    let (ms, id) = token.split_once('.').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok((ms, id.to_string()))
}

/// A node path for Probe/Validate: absolute, so it does not depend on aiprodd's working directory.
fn node_path(field: &str, path: &str) -> Result<std::path::PathBuf, ControlError> {
    let p = std::path::PathBuf::from(path);
    if path.is_empty() || !p.is_absolute() {
        return Err(ControlError::invalid(
            field,
            format!("'{path}' is not an absolute path"),
        ));
    }
    Ok(p)
}

fn probe_file(r: &proto::ProbeRequest) -> Result<proto::ProbeResponse, ControlError> {
    let path = node_path("path", &r.path)?;
    let name = if r.filename.is_empty() {
        r.path.as_str()
    } else {
        r.filename.as_str()
    };
    let opts = aiprod_quality::ProbeOptions {
        count_frames: r.count_frames,
        count_packets: r.count_packets,
    };
    let v = aiprod_quality::probe_json_named(&path, name, &opts)?;
    Ok(proto::ProbeResponse {
        ffprobe_json: aiprod_quality::probe::to_ffprobe_string(&v),
    })
}

pub fn tier_spec_name(t: proto::Tier) -> Option<&'static str> {
    match t {
        proto::Tier::Premium => Some("PREMIUM"),
        proto::Tier::Balanced => Some("BALANCED"),
        proto::Tier::Economy => Some("ECONOMY"),
        proto::Tier::Unspecified => None,
    }
}

fn validate_file(
    r: &proto::ValidateRequest,
    spec_dir: Option<&std::path::Path>,
) -> Result<proto::ValidationReport, ControlError> {
    let path = node_path("path", &r.path)?;
    let tier = proto::Tier::try_from(r.tier).unwrap_or(proto::Tier::Unspecified);
    let tier_name =
        tier_spec_name(tier).ok_or_else(|| ControlError::invalid("tier", "required"))?;
    if r.profile.is_empty() {
        return Err(ControlError::invalid("profile", "required"));
    }
    let spec = aiprod_quality::spec::QualitySpec::load_or_builtin(spec_dir, &r.profile, tier_name)
        .map_err(|e| ControlError::invalid("profile", e.to_string()))?;
    let opts = aiprod_quality::spec::ValidateOptions {
        expected_duration_s: (r.expected_duration_s > 0.0).then_some(r.expected_duration_s),
        reference: if r.reference_path.is_empty() {
            None
        } else {
            Some(node_path("reference_path", &r.reference_path)?)
        },
    };
    let report = aiprod_quality::spec::validate_with_spec(&path, &spec, &opts)?;
    Ok(crate::jobs::receipt::validation_to_proto(
        &report,
        tier,
        &r.profile.to_ascii_uppercase(),
    ))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::JobEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Control for ControlService {
    async fn plan(&self, req: Request<proto::PlanRequest>) -> RpcResult<proto::PlanResponse> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req) {
            // Reads preferences, writes the plans, may ask providers for their balance.
            Ok(r) => self.blocking("Plan", move |me| me.do_plan(r)).await,
            Err(e) => Err(e),
        };
        self.answer("Plan", t, result)
    }

    async fn generate(&self, req: Request<proto::GenerateRequest>) -> RpcResult<proto::Job> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req) {
            Ok(r) => self.blocking("Generate", move |me| me.do_generate(r)).await,
            Err(e) => Err(e),
        };
        self.answer("Generate", t, result)
    }

    async fn get_job(&self, req: Request<proto::GetJobRequest>) -> RpcResult<proto::Job> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req) {
            Ok(r) => {
                self.on_store("GetJob", move |me| me.visible_job(&r.job_id, &r.user_id))
                    .await
            }
            Err(e) => Err(e),
        };
        self.answer("GetJob", t, result)
    }

    async fn list_jobs(
        &self,
        req: Request<proto::ListJobsRequest>,
    ) -> RpcResult<proto::ListJobsResponse> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req) {
            Ok(r) => self.on_store("ListJobs", move |me| me.do_list(r)).await,
            Err(e) => Err(e),
        };
        self.answer("ListJobs", t, result)
    }

    type WatchJobStream = EventStream;

    async fn watch_job(
        &self,
        req: Request<proto::WatchJobRequest>,
    ) -> RpcResult<Self::WatchJobStream> {
        let t = Instant::now();
        let r = match crate::auth::scoped(req) {
            Ok(r) => r,
            Err(e) => return self.answer("WatchJob", t, Err(e)),
        };
        // Subscribe before reading the job so no transition falls in between.
        let mut events = self.engine.subscribe();
        let first = match self
            .on_store("WatchJob", move |me| me.visible_job(&r.job_id, &r.user_id))
            .await
        {
            Ok(j) => j,
            Err(e) => return self.answer("WatchJob", t, Err(e)),
        };
        let engine = Arc::clone(&self.engine);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<proto::JobEvent, Status>>(64);
        tokio::spawn(async move {
            let job_id = first.job_id.clone();
            let done = is_final(JobState::try_from(first.state).unwrap_or(JobState::Unspecified));
            if tx
                .send(Ok(proto::JobEvent {
                    job: Some(first),
                    message: "current".into(),
                    frames_per_s: 0.0,
                }))
                .await
                .is_err()
                || done
            {
                return;
            }
            loop {
                let event = match events.recv().await {
                    Ok(ev) if ev.job.as_ref().is_some_and(|j| j.job_id == job_id) => ev,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind: the store has the truth.
                        let (engine, id) = (Arc::clone(&engine), job_id.clone());
                        match tokio::task::spawn_blocking(move || engine.store.get_job(&id)).await {
                            Ok(Ok(Some(r))) => proto::JobEvent {
                                job: Some(r.job),
                                message: "resync".into(),
                                frames_per_s: 0.0,
                            },
                            _ => return,
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let done = event.job.as_ref().is_some_and(|j| {
                    is_final(JobState::try_from(j.state).unwrap_or(JobState::Unspecified))
                });
                if tx.send(Ok(event)).await.is_err() || done {
                    return;
                }
            }
        });
        let stream: EventStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        self.answer("WatchJob", t, Ok(stream))
    }

    async fn cancel_job(&self, req: Request<proto::CancelJobRequest>) -> RpcResult<proto::Job> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req) {
            Ok(r) => {
                self.on_store("CancelJob", move |me| {
                    let j = me.visible_job(&r.job_id, &r.user_id)?;
                    Ok(me.engine.cancel(&j.job_id)?)
                })
                .await
            }
            Err(e) => Err(e),
        };
        self.answer("CancelJob", t, result)
    }

    async fn get_receipt(
        &self,
        req: Request<proto::GetReceiptRequest>,
    ) -> RpcResult<proto::Receipt> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req) {
            Ok(r) => {
                self.on_store("GetReceipt", move |me| me.do_receipt(r))
                    .await
            }
            Err(e) => Err(e),
        };
        self.answer("GetReceipt", t, result)
    }

    async fn get_usage(
        &self,
        req: Request<proto::GetUsageRequest>,
    ) -> RpcResult<proto::GetUsageResponse> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req) {
            Ok(r) => self.on_store("GetUsage", move |me| me.do_usage(r)).await,
            Err(e) => Err(e),
        };
        self.answer("GetUsage", t, result)
    }

    async fn set_preferences(
        &self,
        req: Request<proto::SetPreferencesRequest>,
    ) -> RpcResult<proto::UserPreferences> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req) {
            Ok(r) => {
                self.on_store("SetPreferences", move |me| me.do_set_preferences(r))
                    .await
            }
            Err(e) => Err(e),
        };
        self.answer("SetPreferences", t, result)
    }

    async fn get_node_status(
        &self,
        _req: Request<proto::GetNodeStatusRequest>,
    ) -> RpcResult<proto::NodeStatus> {
        let t = Instant::now();
        self.answer("GetNodeStatus", t, Ok(self.node_status()))
    }

    async fn drain(&self, req: Request<proto::DrainRequest>) -> RpcResult<proto::DrainResponse> {
        let t = Instant::now();
        if let Err(e) = crate::auth::require_admin(&req) {
            return self.answer("Drain", t, Err(e));
        }
        let r = req.into_inner();
        if !r.deadline_s.is_finite() || r.deadline_s < 0.0 {
            return self.answer(
                "Drain",
                t,
                Err(ControlError::invalid("deadline_s", "must be >= 0")),
            );
        }
        let deadline_s = if r.deadline_s > 0.0 {
            r.deadline_s
        } else {
            self.engine.config.drain_deadline_s
        };
        let drained = if r.wait {
            drain_node(
                &self.engine,
                &self.health,
                std::time::Duration::from_secs_f64(deadline_s),
            )
            .await
        } else {
            drain_node(&self.engine, &self.health, std::time::Duration::ZERO).await
        };
        let (queued, running) = self.engine.load();
        self.answer(
            "Drain",
            t,
            Ok(proto::DrainResponse {
                drained,
                running_jobs: running as u32,
                queue_depth: queued as u32,
            }),
        )
    }

    async fn create_webhook(
        &self,
        req: Request<proto::CreateWebhookRequest>,
    ) -> RpcResult<proto::WebhookSubscription> {
        let t = Instant::now();
        let result = self.create_webhook_for(req).await;
        self.answer("CreateWebhook", t, result)
    }

    async fn list_webhooks(
        &self,
        req: Request<proto::ListWebhooksRequest>,
    ) -> RpcResult<proto::ListWebhooksResponse> {
        let t = Instant::now();
        let result = self
            .on_store("ListWebhooks", move |me| me.list_webhooks_for(req))
            .await;
        self.answer("ListWebhooks", t, result)
    }

    async fn delete_webhook(
        &self,
        req: Request<proto::DeleteWebhookRequest>,
    ) -> RpcResult<proto::DeleteWebhookResponse> {
        let t = Instant::now();
        let result = self
            .on_store("DeleteWebhook", move |me| me.delete_webhook_for(req))
            .await;
        self.answer("DeleteWebhook", t, result)
    }

    async fn list_webhook_deliveries(
        &self,
        req: Request<proto::ListWebhookDeliveriesRequest>,
    ) -> RpcResult<proto::ListWebhookDeliveriesResponse> {
        let t = Instant::now();
        let result = self
            .on_store("ListWebhookDeliveries", move |me| {
                me.webhook_deliveries_for(req)
            })
            .await;
        self.answer("ListWebhookDeliveries", t, result)
    }

    async fn probe(&self, req: Request<proto::ProbeRequest>) -> RpcResult<proto::ProbeResponse> {
        let t = Instant::now();
        // Reads any file aiprodd can read: with auth on, admin tenants only.
        let result = match crate::auth::require_admin(&req) {
            Ok(()) => {
                let r = req.into_inner();
                self.blocking("Probe", move |_| probe_file(&r)).await
            }
            Err(e) => Err(e),
        };
        self.answer("Probe", t, result)
    }

    async fn validate(
        &self,
        req: Request<proto::ValidateRequest>,
    ) -> RpcResult<proto::ValidationReport> {
        let t = Instant::now();
        let result = match crate::auth::require_admin(&req) {
            Ok(()) => {
                let r = req.into_inner();
                let spec_dir = self
                    .engine
                    .config
                    .profiles_dir
                    .as_ref()
                    .map(|d| d.join("quality"));
                self.blocking("Validate", move |_| validate_file(&r, spec_dir.as_deref()))
                    .await
            }
            Err(e) => Err(e),
        };
        self.answer("Validate", t, result)
    }

    async fn get_preferences(
        &self,
        req: Request<proto::GetPreferencesRequest>,
    ) -> RpcResult<proto::UserPreferences> {
        let t = Instant::now();
        let result = match crate::auth::scoped(req).and_then(|r| user_id(&r.user_id)) {
            Ok(u) => {
                self.on_store("GetPreferences", move |me| {
                    Ok(me
                        .engine
                        .store
                        .get_preferences(&u)?
                        .unwrap_or(proto::UserPreferences {
                            user_id: u,
                            ..Default::default()
                        }))
                })
                .await
            }
            Err(e) => Err(e),
        };
        self.answer("GetPreferences", t, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_checked() {
        assert_eq!(user_id("").unwrap(), DEFAULT_USER);
        assert_eq!(user_id("alice@studio").unwrap(), "alice@studio");
        assert!(
            matches!(user_id("a b"), Err(ControlError::InvalidArgument { field, .. }) if field == "user_id")
        );
        assert!(user_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(
            parse_page_token("1700.abc").unwrap(),
            (1700, "abc".to_string())
        );
        for bad in ["", "abc", "x.y", "12."] {
            assert!(parse_page_token(bad).is_err(), "{bad}");
        }
    }
}
