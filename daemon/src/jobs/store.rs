//! The SQLite store (embedded, WAL) under the data directory: plans, jobs, receipts, the cost
//! ledger, user preferences and estimate calibration. Every write is one transaction, so a
//! SIGKILL leaves either the old row or the new one, never half of it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use aiprod_planner::CalibrationEntry;
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};

use crate::proto;

/// How often expired plans are deleted (at most), in ms.
const PLAN_EXPIRY_INTERVAL_MS: i64 = 60_000;

/// Schema version written to `PRAGMA user_version`; bump with a migration step below.
const SCHEMA_VERSION: i32 = 2;

/// Store errors carry which operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {op}: {source}")]
    Sql {
        op: &'static str,
        source: rusqlite::Error,
    },
    #[error("database row {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("database was written by a newer aiprodd (schema {found}, this build knows {SCHEMA_VERSION})")]
    NewerSchema { found: i32 },
}

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { op, source }
}

/// A stored plan, so that Generate can take the plan id that Plan returned.
#[derive(Debug, Clone)]
pub struct StoredPlan {
    pub plan: proto::PlanOption,
    pub prompt: String,
    pub user_id: String,
    pub expires_unix_ms: i64,
}

/// Columns a job row carries besides its proto view; the proto view is what the API returns.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub job: proto::Job,
    pub plan: proto::PlanOption,
    pub seed: u64,
    pub idempotency_key: String,
}

/// Filter for [`Store::list_jobs`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub user_id: Option<String>,
    pub states: Vec<proto::JobState>,
    pub created_after_unix_ms: Option<i64>,
    pub created_before_unix_ms: Option<i64>,
    /// Keyset cursor: jobs strictly before (created_ms, id) in (created desc, id desc) order.
    pub before: Option<(i64, String)>,
    pub limit: usize,
}

/// One (user, tier, backend) row of usage.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub user_id: String,
    pub tier: String,
    pub backend: String,
    pub jobs_total: u32,
    pub jobs_succeeded: u32,
    pub jobs_failed: u32,
    pub jobs_cancelled: u32,
    pub spent_usd_micros: i64,
    pub estimated_usd_micros: i64,
    pub mean_abs_estimate_error: f64,
}

/// The daemon's database. One connection behind a mutex: every statement is short (no I/O
/// besides SQLite's own), and WAL keeps readers off the writer's back.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// When expired plans were last deleted (Unix ms).
    last_plan_expiry_ms: AtomicI64,
}

impl Store {
    /// Opens (creating if needed) `aiprod.db` in `data_dir` and migrates it.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("aiprod.db");
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Self::init(conn, PathBuf::from(":memory:"))
    }

    fn init(conn: Connection, path: PathBuf) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql("set WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql("set foreign_keys"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql("set busy timeout"))?;
        let version: i32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found: version });
        }
        if version < 1 {
            conn.execute_batch(SCHEMA_V1)
                .map_err(sql("create schema"))?;
        }
        if version < 2 {
            // v2: the provider ledger (remote backends) and the webhook outbox.
            conn.execute_batch(crate::backends::ledger::SCHEMA_V2)
                .map_err(sql("migrate schema to v2 (provider ledger)"))?;
            conn.execute_batch(crate::webhooks::outbox::SCHEMA_V2)
                .map_err(sql("migrate schema to v2 (webhook outbox)"))?;
        }
        if version < SCHEMA_VERSION {
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(sql("write schema version"))?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            last_plan_expiry_ms: AtomicI64::new(0),
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (it has its own
        // transactions), so a poisoned lock is safe to take over.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection: for the modules that own tables of their own
    /// (backends::ledger, webhooks::outbox) and keep their SQL next to their logic.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut self.conn())
    }

    // ---- plans ---------------------------------------------------------------------------

    pub fn insert_plans(
        &self,
        plans: &[StoredPlan],
        created_unix_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin insert plans"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO plans (plan_id, user_id, prompt, plan, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql("prepare insert plan"))?;
            for p in plans {
                insert
                    .execute(params![
                        p.plan.plan_id,
                        p.user_id,
                        p.prompt,
                        p.plan.encode_to_vec(),
                        created_unix_ms,
                        p.expires_unix_ms
                    ])
                    .map_err(sql("insert plan"))?;
            }
        }
        // Expired plans are of no use to anyone; drop them now and then (not on every call:
        // under load that delete would dominate Plan's cost).
        let last = self.last_plan_expiry_ms.load(Ordering::Relaxed);
        if created_unix_ms - last >= PLAN_EXPIRY_INTERVAL_MS {
            self.last_plan_expiry_ms
                .store(created_unix_ms, Ordering::Relaxed);
            tx.execute(
                "DELETE FROM plans WHERE expires_ms < ?1",
                params![created_unix_ms],
            )
            .map_err(sql("expire plans"))?;
        }
        tx.commit().map_err(sql("commit plans"))
    }

    pub fn get_plan(&self, plan_id: &str) -> Result<Option<StoredPlan>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT plan, prompt, user_id, expires_ms FROM plans WHERE plan_id = ?1",
                params![plan_id],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(sql("get plan"))?;
        row.map(|(bytes, prompt, user_id, expires_unix_ms)| {
            let plan = decode::<proto::PlanOption>(&bytes, || format!("plan {plan_id}"))?;
            Ok(StoredPlan {
                plan,
                prompt,
                user_id,
                expires_unix_ms,
            })
        })
        .transpose()
    }

    // ---- jobs ----------------------------------------------------------------------------

    /// Inserts a new job; if `(user_id, idempotency_key)` already names a job, returns that
    /// job instead and inserts nothing. The bool says whether a job was created.
    pub fn insert_job(&self, rec: &JobRecord) -> Result<(JobRecord, bool), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin insert job"))?;
        if !rec.idempotency_key.is_empty() {
            let existing: Option<String> = tx
                .query_row(
                    "SELECT job_id FROM jobs WHERE user_id = ?1 AND idempotency_key = ?2",
                    params![rec.job.user_id, rec.idempotency_key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql("find idempotent job"))?;
            if let Some(id) = existing {
                let found = get_job_tx(&tx, &id)?;
                return match found {
                    Some(j) => Ok((j, false)),
                    None => Err(StoreError::Corrupt {
                        what: format!("job {id}"),
                        reason: "vanished".into(),
                    }),
                };
            }
        }
        let j = &rec.job;
        tx.execute(
            "INSERT INTO jobs (job_id, user_id, idempotency_key, state, created_ms, updated_ms, job, plan, seed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                j.job_id,
                j.user_id,
                rec.idempotency_key,
                j.state,
                j.created_unix_ms,
                j.updated_unix_ms,
                j.encode_to_vec(),
                rec.plan.encode_to_vec(),
                rec.seed as i64
            ],
        )
        .map_err(sql("insert job"))?;
        // The webhook event is written with the job (transactional outbox): neither exists
        // without the other, whatever kills the process.
        crate::webhooks::outbox::enqueue_job_created_tx(&tx, &rec.job)?;
        tx.commit().map_err(sql("commit job"))?;
        Ok((rec.clone(), true))
    }

    /// The job `(user_id, idempotency_key)` already names, if any.
    pub fn find_idempotent_job(
        &self,
        user_id: &str,
        idempotency_key: &str,
    ) -> Result<Option<String>, StoreError> {
        if idempotency_key.is_empty() {
            return Ok(None);
        }
        let conn = self.conn();
        conn.query_row(
            "SELECT job_id FROM jobs WHERE user_id = ?1 AND idempotency_key = ?2",
            params![user_id, idempotency_key],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql("find idempotent job"))
    }

    /// Writes the job's proto view (state, progress, ...) as it is now.
    pub fn update_job(&self, job: &proto::Job) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE jobs SET state = ?2, updated_ms = ?3, job = ?4 WHERE job_id = ?1",
            params![
                job.job_id,
                job.state,
                job.updated_unix_ms,
                job.encode_to_vec()
            ],
        )
        .map_err(sql("update job"))?;
        Ok(())
    }

    pub fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin get job"))?;
        get_job_tx(&tx, job_id)
    }

    /// Jobs newest first, filtered; at most `filter.limit`.
    pub fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<proto::Job>, StoreError> {
        let mut where_sql = vec!["1=1".to_string()];
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(u) = &filter.user_id {
            args.push(u.clone().into());
            where_sql.push(format!("user_id = ?{}", args.len()));
        }
        if !filter.states.is_empty() {
            let mut marks = Vec::new();
            for s in &filter.states {
                args.push((*s as i32 as i64).into());
                marks.push(format!("?{}", args.len()));
            }
            where_sql.push(format!("state IN ({})", marks.join(",")));
        }
        if let Some(t) = filter.created_after_unix_ms {
            args.push(t.into());
            where_sql.push(format!("created_ms >= ?{}", args.len()));
        }
        if let Some(t) = filter.created_before_unix_ms {
            args.push(t.into());
            where_sql.push(format!("created_ms < ?{}", args.len()));
        }
        if let Some((t, id)) = &filter.before {
            args.push((*t).into());
            let a = args.len();
            args.push(id.clone().into());
            let b = args.len();
            where_sql.push(format!(
                "(created_ms < ?{a} OR (created_ms = ?{a} AND job_id < ?{b}))"
            ));
        }
        args.push((filter.limit as i64).into());
        let q = format!(
            "SELECT job_id, job FROM jobs WHERE {} ORDER BY created_ms DESC, job_id DESC LIMIT ?{}",
            where_sql.join(" AND "),
            args.len()
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&q).map_err(sql("prepare list jobs"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sql("list jobs"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, bytes) = row.map_err(sql("read job row"))?;
            out.push(decode::<proto::Job>(&bytes, || format!("job {id}"))?);
        }
        Ok(out)
    }

    /// Jobs that were not finished when the daemon stopped (any non-final state).
    pub fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let ids: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT job_id FROM jobs WHERE state IN (?1, ?2, ?3, ?4) ORDER BY created_ms, job_id")
                .map_err(sql("prepare unfinished"))?;
            let rows = stmt
                .query_map(
                    params![
                        proto::JobState::Queued as i32,
                        proto::JobState::Generating as i32,
                        proto::JobState::Processing as i32,
                        proto::JobState::Validating as i32
                    ],
                    |r| r.get(0),
                )
                .map_err(sql("list unfinished"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql("read unfinished"))?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(j) = self.get_job(&id)? {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// Jobs of `user_id` that are not finished (queued or running).
    pub fn count_active_jobs(&self, user_id: &str) -> Result<usize, StoreError> {
        let conn = self.conn();
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM jobs WHERE user_id = ?1 AND state IN (?2, ?3, ?4, ?5)",
                params![
                    user_id,
                    proto::JobState::Queued as i32,
                    proto::JobState::Generating as i32,
                    proto::JobState::Processing as i32,
                    proto::JobState::Validating as i32
                ],
                |r| r.get(0),
            )
            .map_err(sql("count active jobs"))?;
        Ok(n.max(0) as usize)
    }

    /// Counts of jobs per state, for the jobs-by-state gauge at start.
    pub fn count_by_state(&self) -> Result<Vec<(i32, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .map_err(sql("prepare count"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql("count by state"))?;
        rows.collect::<Result<_, _>>().map_err(sql("read counts"))
    }

    // ---- receipts and ledger -------------------------------------------------------------

    /// Writes the job's final view, its receipt and its ledger lines in one transaction.
    pub fn finish_job(&self, job: &proto::Job, receipt: &proto::Receipt) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin finish job"))?;
        tx.execute(
            "UPDATE jobs SET state = ?2, updated_ms = ?3, job = ?4 WHERE job_id = ?1",
            params![
                job.job_id,
                job.state,
                job.updated_unix_ms,
                job.encode_to_vec()
            ],
        )
        .map_err(sql("finish job"))?;
        let tier = proto::Tier::try_from(receipt.tier)
            .map(|t| t.as_str_name())
            .unwrap_or("TIER_UNSPECIFIED");
        tx.execute(
            "INSERT OR REPLACE INTO receipts (job_id, user_id, tier, backend, final_state, estimated_micros, actual_micros, created_ms, receipt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                receipt.job_id,
                receipt.user_id,
                tier,
                receipt.backend,
                receipt.final_state,
                receipt.estimated_total_usd_micros,
                receipt.actual_total_usd_micros,
                receipt.created_unix_ms,
                receipt.encode_to_vec()
            ],
        )
        .map_err(sql("insert receipt"))?;
        tx.execute(
            "DELETE FROM ledger WHERE job_id = ?1",
            params![receipt.job_id],
        )
        .map_err(sql("clear ledger"))?;
        for line in &receipt.lines {
            tx.execute(
                "INSERT INTO ledger (job_id, user_id, tier, backend, item, estimated_micros, actual_micros, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    receipt.job_id,
                    receipt.user_id,
                    tier,
                    receipt.backend,
                    line.item,
                    line.estimated_usd_micros,
                    line.actual_usd_micros,
                    receipt.created_unix_ms
                ],
            )
            .map_err(sql("insert ledger line"))?;
        }
        crate::webhooks::outbox::enqueue_job_finished_tx(&tx, job, receipt)?;
        tx.commit().map_err(sql("commit finish job"))
    }

    pub fn get_receipt(&self, job_id: &str) -> Result<Option<proto::Receipt>, StoreError> {
        let conn = self.conn();
        let bytes: Option<Vec<u8>> = conn
            .query_row(
                "SELECT receipt FROM receipts WHERE job_id = ?1",
                params![job_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("get receipt"))?;
        bytes
            .map(|b| decode::<proto::Receipt>(&b, || format!("receipt {job_id}")))
            .transpose()
    }

    /// Spend, job counts and estimate error per (user, tier, backend) for jobs created in
    /// `[from, to)`.
    pub fn usage(
        &self,
        user_id: Option<&str>,
        from_unix_ms: i64,
        to_unix_ms: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT j.user_id, COALESCE(r.tier, ''), COALESCE(r.backend, ''), j.state,
                        COALESCE(r.estimated_micros, 0), COALESCE(r.actual_micros, 0), r.job_id IS NOT NULL, j.job
                 FROM jobs j LEFT JOIN receipts r ON r.job_id = j.job_id
                 WHERE j.created_ms >= ?1 AND j.created_ms < ?2 AND (?3 IS NULL OR j.user_id = ?3)
                 ORDER BY j.user_id",
            )
            .map_err(sql("prepare usage"))?;
        let rows = stmt
            .query_map(params![from_unix_ms, to_unix_ms, user_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i32>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, Vec<u8>>(7)?,
                ))
            })
            .map_err(sql("usage"))?;
        let mut acc: std::collections::BTreeMap<(String, String, String), (UsageRow, f64, u32)> =
            Default::default();
        for row in rows {
            let (user, mut tier, mut backend, state, est, act, has_receipt, job_bytes) =
                row.map_err(sql("read usage row"))?;
            if !has_receipt {
                // Unfinished job: group it by what the job itself says.
                let job = decode::<proto::Job>(&job_bytes, || format!("job of user {user}"))?;
                tier = proto::Tier::try_from(job.tier)
                    .map(|t| t.as_str_name().to_string())
                    .unwrap_or_default();
                backend = job.backend;
            }
            let key = (user.clone(), tier.clone(), backend.clone());
            let entry = acc.entry(key).or_insert_with(|| {
                (
                    UsageRow {
                        user_id: user,
                        tier,
                        backend,
                        jobs_total: 0,
                        jobs_succeeded: 0,
                        jobs_failed: 0,
                        jobs_cancelled: 0,
                        spent_usd_micros: 0,
                        estimated_usd_micros: 0,
                        mean_abs_estimate_error: 0.0,
                    },
                    0.0,
                    0,
                )
            });
            let (u, err_sum, err_n) = entry;
            u.jobs_total += 1;
            match proto::JobState::try_from(state) {
                Ok(proto::JobState::Succeeded) => u.jobs_succeeded += 1,
                Ok(proto::JobState::Failed) => u.jobs_failed += 1,
                Ok(proto::JobState::Cancelled) => u.jobs_cancelled += 1,
                _ => {}
            }
            u.spent_usd_micros += act;
            u.estimated_usd_micros += est;
            if has_receipt && est > 0 && state == proto::JobState::Succeeded as i32 {
                *err_sum += ((act - est) as f64 / est as f64).abs();
                *err_n += 1;
            }
        }
        Ok(acc
            .into_values()
            .map(|(mut u, s, n)| {
                u.mean_abs_estimate_error = if n > 0 { s / n as f64 } else { 0.0 };
                u
            })
            .collect())
    }

    // ---- preferences and calibration -----------------------------------------------------

    pub fn set_preferences(&self, prefs: &proto::UserPreferences) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR REPLACE INTO preferences (user_id, prefs, updated_ms) VALUES (?1, ?2, ?3)",
            params![prefs.user_id, prefs.encode_to_vec(), prefs.updated_unix_ms],
        )
        .map_err(sql("set preferences"))?;
        Ok(())
    }

    pub fn get_preferences(
        &self,
        user_id: &str,
    ) -> Result<Option<proto::UserPreferences>, StoreError> {
        let conn = self.conn();
        let bytes: Option<Vec<u8>> = conn
            .query_row(
                "SELECT prefs FROM preferences WHERE user_id = ?1",
                params![user_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("get preferences"))?;
        bytes
            .map(|b| decode::<proto::UserPreferences>(&b, || format!("preferences of {user_id}")))
            .transpose()
    }

    pub fn load_calibration(&self) -> Result<Vec<CalibrationEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT backend, stage, factor FROM calibration")
            .map_err(sql("prepare calibration"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CalibrationEntry {
                    backend: r.get(0)?,
                    stage: r.get(1)?,
                    factor: r.get(2)?,
                })
            })
            .map_err(sql("load calibration"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read calibration"))
    }

    pub fn save_calibration(&self, entries: &[CalibrationEntry]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin calibration"))?;
        for e in entries {
            tx.execute(
                "INSERT OR REPLACE INTO calibration (backend, stage, factor) VALUES (?1, ?2, ?3)",
                params![e.backend, e.stage, e.factor],
            )
            .map_err(sql("save calibration"))?;
        }
        tx.commit().map_err(sql("commit calibration"))
    }
}

fn get_job_tx(
    tx: &rusqlite::Transaction<'_>,
    job_id: &str,
) -> Result<Option<JobRecord>, StoreError> {
    let row = tx
        .query_row(
            "SELECT job, plan, seed, idempotency_key FROM jobs WHERE job_id = ?1",
            params![job_id],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()
        .map_err(sql("get job"))?;
    row.map(|(job, plan, seed, idempotency_key)| {
        Ok(JobRecord {
            job: decode(&job, || format!("job {job_id}"))?,
            plan: decode(&plan, || format!("plan of job {job_id}"))?,
            seed: seed as u64,
            idempotency_key,
        })
    })
    .transpose()
}

fn decode<M: Message + Default>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        what: what(),
        reason: e.to_string(),
    })
}

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS plans (
    plan_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    plan BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plans_expires ON plans (expires_ms);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    job BLOB NOT NULL,
    plan BLOB NOT NULL,
    seed INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (user_id, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX IF NOT EXISTS jobs_user_created ON jobs (user_id, created_ms DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_ms DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS receipts (
    job_id TEXT PRIMARY KEY REFERENCES jobs (job_id),
    user_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    backend TEXT NOT NULL,
    final_state INTEGER NOT NULL,
    estimated_micros INTEGER NOT NULL,
    actual_micros INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    receipt BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (job_id),
    user_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    backend TEXT NOT NULL,
    item TEXT NOT NULL,
    estimated_micros INTEGER NOT NULL,
    actual_micros INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_job ON ledger (job_id);
CREATE TABLE IF NOT EXISTS preferences (
    user_id TEXT PRIMARY KEY,
    prefs BLOB NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS calibration (
    backend TEXT NOT NULL,
    stage TEXT NOT NULL,
    factor REAL NOT NULL,
    PRIMARY KEY (backend, stage)
);
";

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, user: &str, created: i64, state: proto::JobState, key: &str) -> JobRecord {
        JobRecord {
            job: proto::Job {
                job_id: id.into(),
                user_id: user.into(),
                state: state as i32,
                tier: proto::Tier::Economy as i32,
                backend: "local".into(),
                created_unix_ms: created,
                updated_unix_ms: created,
                ..Default::default()
            },
            plan: proto::PlanOption {
                backend: "local".into(),
                ..Default::default()
            },
            seed: 1,
            idempotency_key: key.into(),
        }
    }

    fn ids(jobs: &[proto::Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.job_id.as_str()).collect()
    }

    #[test]
    fn list_jobs_filters_and_pages_newest_first() {
        let store = Store::open_in_memory().unwrap();
        use proto::JobState::*;
        for (id, user, t, st) in [
            ("a", "u1", 100, Succeeded),
            ("b", "u2", 200, Failed),
            ("c", "u1", 300, Queued),
            ("d", "u1", 300, Succeeded),
            ("e", "u1", 400, Succeeded),
        ] {
            store.insert_job(&job(id, user, t, st, "")).unwrap();
        }
        let all = store
            .list_jobs(&JobFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids(&all), ["e", "d", "c", "b", "a"]);
        let u1_ok = store
            .list_jobs(&JobFilter {
                user_id: Some("u1".into()),
                states: vec![Succeeded],
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids(&u1_ok), ["e", "d", "a"]);
        let window = store
            .list_jobs(&JobFilter {
                created_after_unix_ms: Some(200),
                created_before_unix_ms: Some(400),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids(&window), ["d", "c", "b"]);
        // Keyset pages of 2: ties on created_ms are ordered by id, nothing skipped or repeated.
        let p1 = store
            .list_jobs(&JobFilter {
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids(&p1), ["e", "d"]);
        let p2 = store
            .list_jobs(&JobFilter {
                limit: 2,
                before: Some((300, "d".into())),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids(&p2), ["c", "b"]);
    }

    #[test]
    fn idempotency_key_returns_the_first_job() {
        let store = Store::open_in_memory().unwrap();
        let (first, created) = store
            .insert_job(&job("a", "u1", 1, proto::JobState::Queued, "k"))
            .unwrap();
        assert!(created);
        let (again, created) = store
            .insert_job(&job("b", "u1", 2, proto::JobState::Queued, "k"))
            .unwrap();
        assert!(!created);
        assert_eq!(again.job.job_id, first.job.job_id);
        // Same key, other user: a different job.
        let (other, created) = store
            .insert_job(&job("c", "u2", 3, proto::JobState::Queued, "k"))
            .unwrap();
        assert!(created);
        assert_eq!(other.job.job_id, "c");
    }

    #[test]
    fn usage_sums_receipts_per_user_tier_backend() {
        let store = Store::open_in_memory().unwrap();
        for (id, user, est, act) in [
            ("a", "u1", 100, 110),
            ("b", "u1", 200, 150),
            ("c", "u2", 50, 50),
        ] {
            let rec = job(id, user, 10, proto::JobState::Queued, "");
            store.insert_job(&rec).unwrap();
            let mut done = rec.job.clone();
            done.state = proto::JobState::Succeeded as i32;
            let receipt = proto::Receipt {
                job_id: id.into(),
                user_id: user.into(),
                tier: proto::Tier::Economy as i32,
                backend: "local".into(),
                final_state: proto::JobState::Succeeded as i32,
                lines: vec![proto::ReceiptLine {
                    item: "compute.generate".into(),
                    estimated_usd_micros: est,
                    actual_usd_micros: act,
                    basis: String::new(),
                }],
                estimated_total_usd_micros: est,
                actual_total_usd_micros: act,
                ..Default::default()
            };
            store.finish_job(&done, &receipt).unwrap();
        }
        let rows = store.usage(None, 0, 1000).unwrap();
        assert_eq!(rows.len(), 2);
        let u1 = &rows[0];
        assert_eq!(
            (u1.user_id.as_str(), u1.tier.as_str(), u1.backend.as_str()),
            ("u1", "TIER_ECONOMY", "local")
        );
        assert_eq!(
            (
                u1.jobs_total,
                u1.jobs_succeeded,
                u1.spent_usd_micros,
                u1.estimated_usd_micros
            ),
            (2, 2, 260, 300)
        );
        // |110-100|/100 = 0.10 and |150-200|/200 = 0.25 → mean 0.175.
        assert!((u1.mean_abs_estimate_error - 0.175).abs() < 1e-12);
        assert_eq!(store.usage(Some("u2"), 0, 1000).unwrap().len(), 1);
        assert!(store.usage(None, 11, 1000).unwrap().is_empty());
        // The receipt survives a round trip byte for byte.
        assert_eq!(
            store
                .get_receipt("a")
                .unwrap()
                .unwrap()
                .actual_total_usd_micros,
            110
        );
    }
}
