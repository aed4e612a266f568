//! The durable webhook outbox in the daemon's SQLite store: subscriptions, one message per
//! (event, subscription) written in the same transaction as the job change that caused it, and
//! a log of every delivery attempt. A message stays `pending` until a 2xx answer, so a daemon
//! killed mid-delivery sends it again after restart (at-least-once; the webhook-id header is
//! the same on every attempt so receivers can de-duplicate).

use std::sync::Arc;

use rusqlite::{params, OptionalExtension, Transaction};

use crate::jobs::store::{Store, StoreError};
use crate::proto;

/// Tables of this module, created by the store's schema migration to version 2.
pub const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    -- comma-separated event types; '' = all
    events TEXT NOT NULL,
    -- 1: receives every tenant's events (subscriptions made while auth is off)
    all_tenants INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    deleted_ms INTEGER
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_tenant ON webhook_subscriptions (tenant);
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    event TEXT NOT NULL,
    job_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- pending | delivered | dead
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    last_status INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    delivered_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS webhook_outbox_sub ON webhook_outbox (subscription_id, id);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    error TEXT NOT NULL,
    success INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_outbox ON webhook_attempts (outbox_id, attempt);
";

/// The event types, as the payload's `type` spells them.
pub const JOB_CREATED: &str = "job.created";
pub const JOB_SUCCEEDED: &str = "job.succeeded";
pub const JOB_FAILED: &str = "job.failed";
pub const VIDEO_COST_RECEIPT: &str = "video.cost_receipt";
pub const EVENT_TYPES: [&str; 4] = [JOB_CREATED, JOB_SUCCEEDED, JOB_FAILED, VIDEO_COST_RECEIPT];

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { op, source }
}

/// A subscription as stored (the secret included: it is needed to sign).
#[derive(Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    pub all_tenants: bool,
    pub description: String,
    pub created_ms: i64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("url", &self.url)
            .field("secret", &"***")
            .field("events", &self.events)
            .finish()
    }
}

impl Subscription {
    /// The API view; the secret only when `with_secret` (the answer to CreateWebhook).
    pub fn to_proto(&self, with_secret: bool) -> proto::WebhookSubscription {
        proto::WebhookSubscription {
            subscription_id: self.id.clone(),
            tenant: self.tenant.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            secret: if with_secret {
                self.secret.clone()
            } else {
                String::new()
            },
            description: self.description.clone(),
            created_unix_ms: self.created_ms,
        }
    }
}

/// A message due for delivery.
#[derive(Clone, PartialEq)]
pub struct DueMessage {
    pub id: i64,
    pub msg_id: String,
    pub url: String,
    pub secret: String,
    pub event: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_ms: i64,
}

impl std::fmt::Debug for DueMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueMessage")
            .field("msg_id", &self.msg_id)
            .field("url", &self.url)
            .field("event", &self.event)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// What one attempt gave.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub started_ms: i64,
    pub duration_ms: i64,
    /// 0 when no HTTP answer came.
    pub status_code: u16,
    pub error: String,
    pub success: bool,
}

/// Subscriptions and the delivery log of one store.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<Store>,
}

fn row_subscription(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    let events: String = r.get(4)?;
    Ok(Subscription {
        id: r.get(0)?,
        tenant: r.get(1)?,
        url: r.get(2)?,
        secret: r.get(3)?,
        events: events
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect(),
        all_tenants: r.get::<_, i64>(5)? != 0,
        description: r.get(6)?,
        created_ms: r.get(7)?,
    })
}

const SUB_COLUMNS: &str = "id, tenant, url, secret, events, all_tenants, description, created_ms";

impl Outbox {
    pub fn new(store: Arc<Store>) -> Outbox {
        Outbox { store }
    }

    pub fn create_subscription(&self, s: &Subscription) -> Result<(), StoreError> {
        self.store.with_conn(|c| {
            c.execute(
                "INSERT INTO webhook_subscriptions (id, tenant, url, secret, events, all_tenants, description, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.id,
                    s.tenant,
                    s.url,
                    s.secret,
                    s.events.join(","),
                    s.all_tenants as i64,
                    s.description,
                    s.created_ms
                ],
            )
            .map(|_| ())
            .map_err(sql("create webhook subscription"))
        })
    }

    /// Makes every subscription see only its own tenant's events; returns how many changed.
    pub fn restrict_to_own_tenant(&self) -> Result<usize, StoreError> {
        self.store.with_conn(|c| {
            c.execute(
                "UPDATE webhook_subscriptions SET all_tenants = 0 WHERE all_tenants = 1",
                [],
            )
            .map_err(sql("restrict subscriptions"))
        })
    }

    /// The tenant's live subscriptions, oldest first.
    pub fn list_subscriptions(&self, tenant: &str) -> Result<Vec<Subscription>, StoreError> {
        self.store.with_conn(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {SUB_COLUMNS} FROM webhook_subscriptions
                     WHERE tenant = ?1 AND deleted_ms IS NULL ORDER BY created_ms, id"
                ))
                .map_err(sql("prepare list subscriptions"))?;
            let rows = stmt
                .query_map(params![tenant], row_subscription)
                .map_err(sql("list subscriptions"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql("read subscription"))
        })
    }

    /// Removes a subscription of `tenant`; its pending messages are marked dead. None when the
    /// tenant has no such subscription.
    pub fn delete_subscription(
        &self,
        tenant: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        self.store.with_conn(|c| {
            let tx = c.transaction().map_err(sql("begin delete subscription"))?;
            let n = tx
                .execute(
                    "UPDATE webhook_subscriptions SET deleted_ms = ?3
                     WHERE id = ?1 AND tenant = ?2 AND deleted_ms IS NULL",
                    params![id, tenant, now_ms],
                )
                .map_err(sql("delete subscription"))?;
            if n == 0 {
                return Ok(None);
            }
            let dropped = tx
                .execute(
                    "UPDATE webhook_outbox SET state = 'dead', last_error = 'subscription removed'
                     WHERE subscription_id = ?1 AND state = 'pending'",
                    params![id],
                )
                .map_err(sql("drop pending messages"))?;
            tx.commit().map_err(sql("commit delete subscription"))?;
            Ok(Some(dropped as u32))
        })
    }

    /// Up to `limit` pending messages due at `now_ms`, oldest first, skipping `busy` ids
    /// (deliveries in flight).
    pub fn due(
        &self,
        now_ms: i64,
        limit: usize,
        busy: &[i64],
    ) -> Result<Vec<DueMessage>, StoreError> {
        self.store.with_conn(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT o.id, o.msg_id, s.url, s.secret, o.event, o.payload, o.attempts, o.created_ms
                     FROM webhook_outbox o JOIN webhook_subscriptions s ON s.id = o.subscription_id
                     WHERE o.state = 'pending' AND o.next_attempt_ms <= ?1
                     ORDER BY o.next_attempt_ms, o.id LIMIT ?2",
                )
                .map_err(sql("prepare due messages"))?;
            let rows = stmt
                .query_map(params![now_ms, (limit + busy.len()) as i64], |r| {
                    Ok(DueMessage {
                        id: r.get(0)?,
                        msg_id: r.get(1)?,
                        url: r.get(2)?,
                        secret: r.get(3)?,
                        event: r.get(4)?,
                        payload: r.get(5)?,
                        attempts: r.get::<_, i64>(6)?.max(0) as u32,
                        created_ms: r.get(7)?,
                    })
                })
                .map_err(sql("due messages"))?;
            let mut out = Vec::new();
            for row in rows {
                let m = row.map_err(sql("read due message"))?;
                if !busy.contains(&m.id) && out.len() < limit {
                    out.push(m);
                }
            }
            Ok(out)
        })
    }

    /// When the next pending message falls due, if any.
    pub fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.store.with_conn(|c| {
            c.query_row(
                "SELECT MIN(next_attempt_ms) FROM webhook_outbox WHERE state = 'pending'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(sql("next due message"))
        })
    }

    /// Logs an attempt and moves the message on: delivered, dead, or retried at `retry_at_ms`
    /// (None: no attempts left).
    pub fn record_attempt(
        &self,
        msg: &DueMessage,
        outcome: &AttemptOutcome,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let attempt = msg.attempts + 1;
        self.store.with_conn(|c| {
            let tx = c.transaction().map_err(sql("begin record attempt"))?;
            tx.execute(
                "INSERT INTO webhook_attempts (outbox_id, attempt, started_ms, duration_ms, status_code, error, success)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    msg.id,
                    attempt,
                    outcome.started_ms,
                    outcome.duration_ms,
                    outcome.status_code,
                    outcome.error,
                    outcome.success as i64
                ],
            )
            .map_err(sql("log attempt"))?;
            let (state, next, delivered) = match (outcome.success, retry_at_ms) {
                (true, _) => ("delivered", 0, outcome.started_ms + outcome.duration_ms),
                (false, Some(at)) => ("pending", at, 0),
                (false, None) => ("dead", 0, 0),
            };
            // Only a pending message moves: a subscription removed meanwhile stays dead.
            tx.execute(
                "UPDATE webhook_outbox SET state = CASE WHEN state = 'pending' THEN ?2 ELSE state END,
                        attempts = ?3, next_attempt_ms = ?4, last_status = ?5, last_error = ?6,
                        delivered_ms = ?7
                 WHERE id = ?1",
                params![
                    msg.id,
                    state,
                    attempt,
                    next,
                    outcome.status_code,
                    outcome.error,
                    delivered
                ],
            )
            .map_err(sql("update message"))?;
            tx.commit().map_err(sql("commit attempt"))
        })
    }

    /// The delivery log of `tenant`: messages newest first (optionally of one subscription or
    /// job), each with its attempts; keyset-paged by message row id.
    pub fn deliveries(
        &self,
        tenant: &str,
        subscription_id: Option<&str>,
        job_id: Option<&str>,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, proto::WebhookDelivery)>, StoreError> {
        self.store.with_conn(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, msg_id, subscription_id, event, job_id, state, attempts, created_ms,
                            next_attempt_ms, delivered_ms, last_status, last_error
                     FROM webhook_outbox
                     WHERE tenant = ?1 AND (?2 IS NULL OR subscription_id = ?2)
                       AND (?3 IS NULL OR job_id = ?3) AND (?4 IS NULL OR id < ?4)
                     ORDER BY id DESC LIMIT ?5",
                )
                .map_err(sql("prepare deliveries"))?;
            let rows = stmt
                .query_map(
                    params![tenant, subscription_id, job_id, before_id, limit as i64],
                    |r| {
                        let state: String = r.get(5)?;
                        Ok((
                            r.get::<_, i64>(0)?,
                            proto::WebhookDelivery {
                                message_id: r.get(1)?,
                                subscription_id: r.get(2)?,
                                event: r.get(3)?,
                                job_id: r.get(4)?,
                                next_attempt_unix_ms: if state == "pending" {
                                    r.get(8)?
                                } else {
                                    0
                                },
                                state,
                                attempts: r.get::<_, i64>(6)?.max(0) as u32,
                                created_unix_ms: r.get(7)?,
                                delivered_unix_ms: r.get(9)?,
                                last_status_code: r.get::<_, i64>(10)?.max(0) as u32,
                                last_error: r.get(11)?,
                                attempt_log: Vec::new(),
                            },
                        ))
                    },
                )
                .map_err(sql("deliveries"))?;
            let mut out: Vec<(i64, proto::WebhookDelivery)> = rows
                .collect::<Result<_, _>>()
                .map_err(sql("read delivery"))?;
            let mut attempts = c
                .prepare(
                    "SELECT attempt, started_ms, duration_ms, status_code, error, success
                     FROM webhook_attempts WHERE outbox_id = ?1 ORDER BY attempt",
                )
                .map_err(sql("prepare attempts"))?;
            for (id, d) in &mut out {
                let rows = attempts
                    .query_map(params![*id], |r| {
                        Ok(proto::WebhookAttempt {
                            attempt: r.get::<_, i64>(0)?.max(0) as u32,
                            started_unix_ms: r.get(1)?,
                            duration_ms: r.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
                            status_code: r.get::<_, i64>(3)?.max(0) as u32,
                            error: r.get(4)?,
                            success: r.get::<_, i64>(5)? != 0,
                        })
                    })
                    .map_err(sql("attempts"))?;
                d.attempt_log = rows
                    .collect::<Result<_, _>>()
                    .map_err(sql("read attempt"))?;
            }
            Ok(out)
        })
    }

    /// Whether `tenant` owns subscription `id` (deleted ones included: their log stays).
    pub fn owns(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.store.with_conn(|c| {
            c.query_row(
                "SELECT 1 FROM webhook_subscriptions WHERE id = ?1 AND tenant = ?2",
                params![id, tenant],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(sql("find subscription"))
        })
    }
}

/// Standard Webhooks payload: `{"type", "timestamp", "data"}`.
fn payload(event: &str, data: serde_json::Value, now_ms: i64) -> String {
    let ts = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms.max(0) as u64);
    serde_json::json!({
        "type": event,
        "timestamp": humantime::format_rfc3339_millis(ts).to_string(),
        "data": data,
    })
    .to_string()
}

/// Writes one message per matching subscription of the job's tenant (and of subscriptions that
/// see every tenant).
fn enqueue_tx(
    tx: &Transaction<'_>,
    event: &str,
    job: &proto::Job,
    data: serde_json::Value,
) -> Result<usize, StoreError> {
    let now_ms = crate::now_unix_ms();
    let subs: Vec<Subscription> = {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {SUB_COLUMNS} FROM webhook_subscriptions
                 WHERE deleted_ms IS NULL AND (tenant = ?1 OR all_tenants = 1)"
            ))
            .map_err(sql("prepare subscriptions for event"))?;
        let rows = stmt
            .query_map(params![job.user_id], row_subscription)
            .map_err(sql("subscriptions for event"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read subscription"))?
    };
    let wanted: Vec<&Subscription> = subs
        .iter()
        .filter(|s| s.events.is_empty() || s.events.iter().any(|e| e == event))
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let body = payload(event, data, now_ms);
    for s in &wanted {
        tx.execute(
            "INSERT INTO webhook_outbox (msg_id, subscription_id, tenant, event, job_id, payload, state, next_attempt_ms, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
            params![
                format!("msg_{}", uuid::Uuid::new_v4().simple()),
                s.id,
                s.tenant,
                event,
                job.job_id,
                body,
                now_ms
            ],
        )
        .map_err(sql("enqueue webhook"))?;
    }
    Ok(wanted.len())
}

fn json_of<T: serde::Serialize>(what: &str, v: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// `job.created`, inside the transaction that inserts the job.
pub fn enqueue_job_created_tx(tx: &Transaction<'_>, job: &proto::Job) -> Result<usize, StoreError> {
    let data = serde_json::json!({ "job": json_of("job", job)? });
    enqueue_tx(tx, JOB_CREATED, job, data)
}

/// `job.succeeded` or `job.failed` (none for a cancelled job), then `video.cost_receipt`,
/// inside the transaction that finishes the job.
pub fn enqueue_job_finished_tx(
    tx: &Transaction<'_>,
    job: &proto::Job,
    receipt: &proto::Receipt,
) -> Result<usize, StoreError> {
    let mut n = 0;
    let event = match proto::JobState::try_from(job.state) {
        Ok(proto::JobState::Succeeded) => Some(JOB_SUCCEEDED),
        Ok(proto::JobState::Failed) => Some(JOB_FAILED),
        _ => None,
    };
    if let Some(event) = event {
        let data = serde_json::json!({ "job": json_of("job", job)? });
        n += enqueue_tx(tx, event, job, data)?;
    }
    let data = serde_json::json!({
        "job_id": job.job_id,
        "receipt": json_of("receipt", receipt)?,
    });
    n += enqueue_tx(tx, VIDEO_COST_RECEIPT, job, data)?;
    Ok(n)
}
