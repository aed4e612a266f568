//! Delivers the outbox: takes due messages, POSTs them signed (Standard Webhooks) with a
//! bounded number in flight, logs every attempt, and schedules retries with exponential
//! backoff and jitter until a 2xx answer or the attempts run out. Woken by job events, else it
//! scans for due retries on a timer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{watch, Notify, Semaphore};

use super::outbox::{AttemptOutcome, DueMessage, Outbox};
use super::settings::WebhooksConfig;
use super::signing::SigningKey;
use super::ssrf;
use crate::jobs::store::{Store, StoreError};
use crate::now_unix_ms;

/// Receivers' answers are read (to reuse the connection) up to this much and dropped.
const MAX_RESPONSE_BYTES: usize = 64 << 10;
/// When every due message is already in flight, look again after this long at the latest.
const BUSY_RESCAN: Duration = Duration::from_millis(20);

/// The delivery loop of one daemon.
pub struct Dispatcher {
    outbox: Outbox,
    cfg: WebhooksConfig,
    client: reqwest::Client,
    wake: Arc<Notify>,
}

/// The delay before retry number `attempt` (1 = the first retry): `base × 2^(attempt-1)`
/// capped at `max`, with equal jitter (half fixed, half random) so receivers that failed
/// together are not hit together again.
pub fn retry_delay(cfg: &WebhooksConfig, attempt: u32) -> Duration {
    let exp = cfg
        .retry_base_ms
        .saturating_mul(
            1u64.checked_shl(attempt.saturating_sub(1).min(40))
                .unwrap_or(u64::MAX),
        )
        .min(cfg.retry_max_ms);
    let half = exp / 2;
    Duration::from_millis(half + rand::rng().random_range(0..=half.max(1)))
}

impl Dispatcher {
    pub fn new(store: Arc<Store>, cfg: WebhooksConfig) -> Result<Dispatcher, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            // A receiver answers a webhook itself; following a redirect would let it point
            // the daemon anywhere (and Standard Webhooks senders do not follow them).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms.min(5_000)))
            .user_agent(concat!("aiprod/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(cfg.concurrency);
        if !cfg.allow_private_targets {
            builder = builder.dns_resolver(Arc::new(ssrf::PublicOnlyResolver));
        }
        Ok(Dispatcher {
            outbox: Outbox::new(store),
            cfg,
            client: builder.build()?,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Notify this to make the dispatcher look at the outbox now (a job event happened).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Delivers until `stop` turns true; then waits (up to one attempt's timeout) for the
    /// deliveries in flight. Anything not delivered stays pending for the next start.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.cfg.concurrency));
        let busy: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let poll = Duration::from_millis(self.cfg.poll_interval_ms);
        loop {
            if *stop.borrow() {
                break;
            }
            let free = slots.available_permits();
            let mut dispatched = 0;
            if free > 0 {
                let in_flight: Vec<i64> = busy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .copied()
                    .collect();
                let due = self
                    .on_outbox(move |o| o.due(now_unix_ms(), free, &in_flight))
                    .await;
                match due {
                    Ok(msgs) => {
                        for m in msgs {
                            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                                break;
                            };
                            busy.lock().unwrap_or_else(|p| p.into_inner()).insert(m.id);
                            dispatched += 1;
                            let me = Arc::clone(&self);
                            let busy = Arc::clone(&busy);
                            tokio::spawn(async move {
                                let id = m.id;
                                me.deliver(m).await;
                                busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                                drop(permit);
                                me.wake.notify_one();
                            });
                        }
                    }
                    Err(e) => tracing::warn!("webhook outbox: {e}"),
                }
            }
            let wait = match self.on_outbox(|o| o.next_due_ms()).await {
                Ok(Some(t)) => {
                    let ms = (t - now_unix_ms()).max(0) as u64;
                    Duration::from_millis(ms).min(poll)
                }
                Ok(None) => poll,
                Err(e) => {
                    tracing::warn!("webhook outbox: {e}");
                    poll
                }
            };
            // Everything due is in flight (or no slot is free): wait for a delivery to end.
            let wait = if dispatched == 0 && wait.is_zero() {
                BUSY_RESCAN
            } else {
                wait
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        let grace = Duration::from_millis(self.cfg.timeout_ms);
        let all = u32::try_from(self.cfg.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    }

    /// One attempt at one message, logged; the message is then delivered, rescheduled or dead.
    async fn deliver(&self, m: DueMessage) {
        let started_ms = now_unix_ms();
        let t0 = Instant::now();
        let (status_code, error, retry_after) = self.attempt(&m).await;
        let success = (200..300).contains(&status_code) && error.is_empty();
        let outcome = AttemptOutcome {
            started_ms,
            duration_ms: t0.elapsed().as_millis() as i64,
            status_code,
            error,
            success,
        };
        let attempt = m.attempts + 1;
        let retry_at = if success || attempt >= self.cfg.max_attempts {
            None
        } else {
            let backoff = retry_delay(&self.cfg, attempt);
            let delay = retry_after
                .map(|d| {
                    d.min(Duration::from_millis(self.cfg.retry_max_ms))
                        .max(backoff)
                })
                .unwrap_or(backoff);
            Some(now_unix_ms() + delay.as_millis() as i64)
        };
        if success {
            tracing::debug!(msg_id = %m.msg_id, event = %m.event, attempt, "webhook delivered");
        } else if retry_at.is_none() {
            tracing::warn!(msg_id = %m.msg_id, event = %m.event, attempt, status_code, error = %outcome.error, "webhook given up");
        } else {
            tracing::debug!(msg_id = %m.msg_id, event = %m.event, attempt, status_code, error = %outcome.error, "webhook attempt failed; will retry");
        }
        let msg_id = m.msg_id.clone();
        let recorded = self
            .on_outbox(move |o| o.record_attempt(&m, &outcome, retry_at))
            .await;
        if let Err(e) = recorded {
            // The message stays pending and is sent again: at-least-once.
            tracing::error!(%msg_id, "cannot log webhook attempt: {e}");
        }
    }

    /// Runs `f` on the blocking pool: the outbox is the SQLite store, and this loop and the
    /// deliveries share the async workers with every gRPC call.
    async fn on_outbox<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Outbox) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let outbox = self.outbox.clone();
        match tokio::task::spawn_blocking(move || f(&outbox)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("outbox task: {e}")),
        }
    }

    /// (status code or 0, error text, Retry-After) of one POST.
    async fn attempt(&self, m: &DueMessage) -> (u16, String, Option<Duration>) {
        let url = match ssrf::parse_target(&m.url) {
            Ok(u) => u,
            Err(e) => return (0, e.to_string(), None),
        };
        if !self.cfg.allow_private_targets {
            if let Some(ip) = ssrf::literal_ip(&url) {
                if !ssrf::is_public(ip) {
                    return (0, ssrf::TargetError::Private(ip).to_string(), None);
                }
            }
        }
        let key = match SigningKey::parse(&m.secret, false) {
            Ok(k) => k,
            Err(e) => return (0, format!("subscription secret: {e}"), None),
        };
        let ts = now_unix_ms() / 1000;
        let signature = key.sign(&m.msg_id, ts, m.payload.as_bytes());
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &m.msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(m.payload.clone())
            .send()
            .await;
        match sent {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::backends::http::parse_retry_after);
                let mut read = 0usize;
                while let Ok(Some(c)) = resp.chunk().await {
                    read += c.len();
                    if read > MAX_RESPONSE_BYTES {
                        break;
                    }
                }
                let error = if resp.status().is_success() {
                    String::new()
                } else {
                    format!("HTTP {status}")
                };
                (status, error, retry_after)
            }
            Err(e) => (0, crate::backends::http::describe(&e), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_with_jitter_up_to_the_cap() {
        let cfg = WebhooksConfig {
            retry_base_ms: 1000,
            retry_max_ms: 10_000,
            ..Default::default()
        };
        for (attempt, full) in [
            (1, 1000),
            (2, 2000),
            (3, 4000),
            (4, 8000),
            (5, 10_000),
            (30, 10_000),
        ] {
            let d = retry_delay(&cfg, attempt).as_millis() as u64;
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d} vs {full}"
            );
        }
    }
}
