//! Live metrics for the dashboard: a sampler reads the same Prometheus registry that `/metrics`
//! exposes once a second, turns it into a [`Sample`] (cost per minute by backend and tier, jobs
//! by state, frames/s, CPU busy, estimate accuracy), keeps the last few minutes, and
//! `/ws/metrics` sends that history and then every new sample as JSON text messages.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use prometheus::proto::MetricFamily;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::error::ApiError;
use super::Dashboard;
use crate::telemetry::Metrics;

/// One sample a second: smooth enough for a chart, negligible work (one registry gather).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Five minutes of samples, sent to a page when it connects so its charts start filled.
pub const HISTORY_LEN: usize = 300;
/// "Cost per minute" is what was spent in this trailing window.
const COST_WINDOW_MS: i64 = 60_000;
/// CPU busy is averaged over this trailing window: process_cpu_seconds_total counts whole
/// seconds, so over one second it would read only 0 or 1 core.
const CPU_WINDOW_MS: i64 = 10_000;
/// Sockets open at once; each costs a task and a channel slot per sample.
const MAX_SOCKETS: usize = 64;

/// What the registry says at one instant (cumulative counters, current gauges).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub t_unix_ms: i64,
    /// Jobs by state label ("queued", "succeeded", ...).
    pub jobs: BTreeMap<String, i64>,
    /// (backend, tier) → (actual USD, estimated USD), summed over stages.
    pub cost_usd: BTreeMap<(String, String), (f64, f64)>,
    /// Stage → frames/s of its last run.
    pub frames_per_s: BTreeMap<String, f64>,
    /// Process CPU seconds, when the platform reports them.
    pub cpu_s: Option<f64>,
}

impl Reading {
    /// Reads the families of the daemon's registry (`Metrics::registry.gather()`).
    pub fn from_families(families: &[MetricFamily], t_unix_ms: i64) -> Reading {
        let mut r = Reading {
            t_unix_ms,
            ..Default::default()
        };
        for family in families {
            for m in family.get_metric() {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                match family.name() {
                    "aiprod_jobs" => {
                        r.jobs
                            .insert(label("state"), m.get_gauge().get_value() as i64);
                    }
                    "aiprod_cost_usd_total" => {
                        let e = r
                            .cost_usd
                            .entry((label("backend"), label("tier")))
                            .or_default();
                        e.0 += m.get_counter().get_value();
                    }
                    "aiprod_estimated_cost_usd_total" => {
                        let e = r
                            .cost_usd
                            .entry((label("backend"), label("tier")))
                            .or_default();
                        e.1 += m.get_counter().get_value();
                    }
                    "aiprod_frames_per_second" => {
                        r.frames_per_s
                            .insert(label("stage"), m.get_gauge().get_value());
                    }
                    "process_cpu_seconds_total" => {
                        r.cpu_s = Some(m.get_counter().get_value());
                    }
                    _ => {}
                }
            }
        }
        r
    }
}

/// Spend of one backend and tier.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostSeries {
    pub backend: String,
    /// "TIER_ECONOMY", ...
    pub tier: String,
    /// Spent in the trailing minute.
    pub usd_per_min: f64,
    pub actual_usd_total: f64,
    pub estimated_usd_total: f64,
    /// actual / estimated since the daemon started (1 = the estimates were right); None until
    /// something was estimated.
    pub actual_over_estimate: Option<f64>,
}

/// What the page draws at one instant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    pub t_unix_ms: i64,
    pub jobs_by_state: BTreeMap<String, i64>,
    pub cost: Vec<CostSeries>,
    pub frames_per_s: BTreeMap<String, f64>,
    /// Share of the node's cores the daemon kept busy over the last 10 s (0..1).
    pub cpu_busy: Option<f64>,
    /// Share of the GPU in use; None: this daemon measures no GPU (none, or not yet wired).
    pub gpu_busy: Option<f64>,
}

/// Turns readings into samples; keeps what the trailing windows need.
#[derive(Debug)]
pub struct Sampler {
    readings: VecDeque<Reading>,
    cpus: f64,
}

impl Sampler {
    pub fn new(cpus: usize) -> Self {
        Self {
            readings: VecDeque::new(),
            cpus: cpus.max(1) as f64,
        }
    }

    /// The newest reading at least `window_ms` older than `now_ms`, else the oldest: what a
    /// trailing window's deltas are taken from.
    fn window_start(&self, now_ms: i64, window_ms: i64) -> Option<&Reading> {
        self.readings
            .iter()
            .rev()
            .find(|r| r.t_unix_ms <= now_ms - window_ms)
            .or_else(|| self.readings.front())
    }

    /// Adds a reading and returns its sample.
    pub fn push(&mut self, now: Reading) -> Sample {
        let window_start = self.window_start(now.t_unix_ms, COST_WINDOW_MS);
        let cost = now
            .cost_usd
            .iter()
            .map(|((backend, tier), (actual, estimated))| {
                let before = window_start
                    .and_then(|r| r.cost_usd.get(&(backend.clone(), tier.clone())))
                    .map(|c| c.0)
                    .unwrap_or(0.0);
                CostSeries {
                    backend: backend.clone(),
                    tier: tier.clone(),
                    usd_per_min: (actual - before).max(0.0),
                    actual_usd_total: *actual,
                    estimated_usd_total: *estimated,
                    actual_over_estimate: (*estimated > 0.0).then(|| actual / estimated),
                }
            })
            .collect();
        let cpu_busy = match (self.window_start(now.t_unix_ms, CPU_WINDOW_MS), now.cpu_s) {
            (Some(then), Some(cpu_now)) => then.cpu_s.and_then(|cpu_then| {
                let wall_s = (now.t_unix_ms - then.t_unix_ms) as f64 / 1e3;
                (wall_s > 0.0).then(|| ((cpu_now - cpu_then) / wall_s / self.cpus).clamp(0.0, 1.0))
            }),
            _ => None,
        };
        let sample = Sample {
            t_unix_ms: now.t_unix_ms,
            jobs_by_state: now.jobs.clone(),
            cost,
            frames_per_s: now.frames_per_s.clone(),
            cpu_busy,
            gpu_busy: None,
        };
        self.readings.push_back(now);
        // Keep one reading older than the window, so the window is always covered.
        while self.readings.len() > 2
            && self.readings[1].t_unix_ms
                <= self.readings.back().map_or(0, |r| r.t_unix_ms) - COST_WINDOW_MS
        {
            self.readings.pop_front();
        }
        sample
    }
}

/// The running sampler's output: recent samples as JSON, and a channel of new ones.
pub struct LiveMetrics {
    /// Serialized samples, oldest first. Pushed to and subscribed under this lock, so a new
    /// socket's history and its live samples neither overlap nor leave a gap.
    history: Mutex<VecDeque<Arc<str>>>,
    updates: broadcast::Sender<Arc<str>>,
    sockets: AtomicUsize,
}

impl LiveMetrics {
    /// Starts sampling `metrics` every `interval`; sampling stops when the returned handle
    /// (every clone of it) is dropped.
    pub fn start(metrics: Arc<Metrics>, interval: Duration) -> Arc<LiveMetrics> {
        let (updates, _) = broadcast::channel(16);
        let live = Arc::new(LiveMetrics {
            history: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
            updates,
            sockets: AtomicUsize::new(0),
        });
        let weak: Weak<LiveMetrics> = Arc::downgrade(&live);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::spawn(async move {
            let mut sampler = Sampler::new(cpus);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(live) = weak.upgrade() else { return };
                let reading =
                    Reading::from_families(&metrics.registry.gather(), crate::now_unix_ms());
                let sample = sampler.push(reading);
                match serde_json::to_string(&sample) {
                    Ok(json) => live.publish(json.into()),
                    Err(e) => tracing::warn!("cannot serialize a metrics sample: {e}"),
                }
            }
        });
        live
    }

    fn publish(&self, sample: Arc<str>) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(Arc::clone(&sample));
        // No subscriber is fine: no page is open.
        let _ = self.updates.send(sample);
    }

    /// The history message and a receiver of the samples after it.
    fn subscribe(&self) -> (String, broadcast::Receiver<Arc<str>>) {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.updates.subscribe();
        let samples: Vec<&str> = history.iter().map(|s| &**s).collect();
        let msg = format!(
            r#"{{"type":"history","interval_ms":{},"samples":[{}]}}"#,
            SAMPLE_INTERVAL.as_millis(),
            samples.join(",")
        );
        (msg, rx)
    }
}

/// `GET /ws/metrics`: like `/metrics`, readable without a token (DESIGN: health and metrics
/// need none); the samples carry no tenant data, only aggregates.
pub async fn socket(
    State(d): State<Arc<Dashboard>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let live = Arc::clone(&d.live);
    if live.sockets.fetch_add(1, Ordering::SeqCst) >= MAX_SOCKETS {
        live.sockets.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::Unavailable(format!(
            "at most {MAX_SOCKETS} metrics sockets at once"
        )));
    }
    let stop = d.stop.clone();
    Ok(upgrade
        .on_upgrade(move |ws| async move {
            stream_samples(ws, &live, stop).await;
            live.sockets.fetch_sub(1, Ordering::SeqCst);
        })
        .into_response())
}

async fn stream_samples(mut ws: WebSocket, live: &LiveMetrics, mut stop: watch::Receiver<bool>) {
    let (history, mut rx) = live.subscribe();
    if ws.send(Message::Text(history.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            sample = rx.recv() => match sample {
                Ok(s) => {
                    let msg = format!(r#"{{"type":"sample","sample":{s}}}"#);
                    if ws.send(Message::Text(msg.into())).await.is_err() {
                        return;
                    }
                }
                // A slow page skips samples; the next one is complete on its own.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // pings are answered by axum; the page sends nothing else
            },
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                let _ = ws.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(t_s: i64, actual: f64, estimated: f64, cpu_s: f64) -> Reading {
        let mut r = Reading {
            t_unix_ms: t_s * 1000,
            cpu_s: Some(cpu_s),
            ..Default::default()
        };
        r.cost_usd
            .insert(("local".into(), "TIER_ECONOMY".into()), (actual, estimated));
        r
    }

    #[test]
    fn reads_the_daemon_registry() {
        let m = Metrics::new().unwrap();
        m.job_transition(None, crate::proto::JobState::Queued);
        m.job_transition(
            Some(crate::proto::JobState::Queued),
            crate::proto::JobState::Succeeded,
        );
        for (stage, actual, est) in [("generation", 0.25, 0.2), ("storage", 0.05, 0.05)] {
            m.cost_usd
                .with_label_values(&["local", "TIER_BALANCED", stage])
                .inc_by(actual);
            m.estimated_cost_usd
                .with_label_values(&["local", "TIER_BALANCED", stage])
                .inc_by(est);
        }
        m.frames_per_s.with_label_values(&["process"]).set(42.5);
        let r = Reading::from_families(&m.registry.gather(), 5);
        assert_eq!(r.t_unix_ms, 5);
        assert_eq!(r.jobs["succeeded"], 1);
        assert_eq!(r.jobs["queued"], 0);
        let (actual, est) = r.cost_usd[&("local".into(), "TIER_BALANCED".into())];
        assert!((actual - 0.30).abs() < 1e-12 && (est - 0.25).abs() < 1e-12);
        assert_eq!(r.frames_per_s["process"], 42.5);
    }

    #[test]
    fn cost_per_minute_is_the_trailing_minute_and_cpu_is_a_share_of_cores() {
        let mut s = Sampler::new(2);
        let first = s.push(reading(0, 0.0, 0.0, 10.0));
        assert_eq!(first.cost[0].usd_per_min, 0.0);
        assert_eq!(first.cpu_busy, None, "needs two readings");
        assert_eq!(first.cost[0].actual_over_estimate, None);

        // 1 USD spent at t=10 s, estimated 0.8; 2 of 2 cores busy for the 10 s.
        let at10 = s.push(reading(10, 1.0, 0.8, 30.0));
        assert!((at10.cost[0].usd_per_min - 1.0).abs() < 1e-12);
        assert_eq!(at10.cpu_busy, Some(1.0));
        assert!((at10.cost[0].actual_over_estimate.unwrap() - 1.25).abs() < 1e-12);

        for t in (20..=60).step_by(10) {
            s.push(reading(t, 1.0, 0.8, 30.0));
        }
        // At t=70 the minute starts after the spend at t=10: nothing spent in it.
        let at70 = s.push(reading(70, 1.0, 0.8, 31.0));
        assert_eq!(at70.cost[0].usd_per_min, 0.0);
        assert!((at70.cpu_busy.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(at70.cost[0].actual_usd_total, 1.0);
        // Old readings are dropped, one older than the window kept.
        assert!(s.readings.len() <= 8, "{}", s.readings.len());
        assert!(s.readings[0].t_unix_ms <= 10_000);
    }

    #[tokio::test]
    async fn sockets_get_history_then_live_samples() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let live = LiveMetrics::start(Arc::clone(&metrics), Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(120)).await;
        let (history, mut rx) = live.subscribe();
        let v: serde_json::Value = serde_json::from_str(&history).unwrap();
        assert_eq!(v["type"], "history");
        let n = v["samples"].as_array().unwrap().len();
        assert!(n >= 2, "{history}");
        assert_eq!(v["samples"][0]["jobs_by_state"]["queued"], 0);
        let next = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let s: serde_json::Value = serde_json::from_str(&next).unwrap();
        assert!(
            s["t_unix_ms"].as_i64().unwrap() >= v["samples"][n - 1]["t_unix_ms"].as_i64().unwrap()
        );
    }
}
