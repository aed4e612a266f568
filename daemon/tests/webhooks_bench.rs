//! Webhook delivery figures (run by benches/webhooks.sh; ignored in normal test runs):
//! 1. deliveries/s: a backlog of N signed messages drained to a loopback receiver that always
//!    answers 200, at the default and a higher concurrency;
//! 2. delivery delay p50/p99 (enqueue → 2xx at the receiver) with a receiver that fails half of
//!    the attempts, messages arriving at a steady rate, the production backoff (base 1 s,
//!    doubling, equal jitter) with its base set by AIPROD_BENCH_RETRY_BASE_MS (default 100 ms
//!    for a quick run; the script also runs the production 1000 ms).
//!
//! The dispatcher, store and outbox are the daemon's own; only the job engine is left out
//! (jobs are inserted directly, which writes job.created into the outbox as the daemon does).

mod receiver;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aiprod_daemon::jobs::store::{JobRecord, Store};
use aiprod_daemon::proto;
use aiprod_daemon::webhooks::dispatcher::Dispatcher;
use aiprod_daemon::webhooks::settings::WebhooksConfig;
use aiprod_daemon::webhooks::Webhooks;
use receiver::Mode;

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn job(i: usize) -> JobRecord {
    let now = aiprod_daemon::now_unix_ms();
    JobRecord {
        job: proto::Job {
            job_id: format!("bench-{i:06}"),
            user_id: "default".into(),
            state: proto::JobState::Queued as i32,
            tier: proto::Tier::Economy as i32,
            backend: "local".into(),
            prompt: "bench".into(),
            created_unix_ms: now,
            updated_unix_ms: now,
            ..Default::default()
        },
        plan: proto::PlanOption::default(),
        seed: 0,
        idempotency_key: String::new(),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    rx: Arc<receiver::Receiver>,
}

async fn setup(mode: Mode, cfg: &WebhooksConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let rx = receiver::start(mode).await;
    let (secret, _) = receiver::secret();
    Webhooks::new(Arc::clone(&store), cfg.clone(), false)
        .create(
            "default",
            proto::CreateWebhookRequest {
                url: rx.url.clone(),
                secret,
                events: vec![],
                description: "bench".into(),
            },
        )
        .await
        .unwrap();
    Setup {
        _dir: dir,
        store,
        rx,
    }
}

fn start(
    store: &Arc<Store>,
    cfg: &WebhooksConfig,
) -> (
    tokio::sync::watch::Sender<bool>,
    Arc<tokio::sync::Notify>,
    tokio::task::JoinHandle<()>,
) {
    let d = Arc::new(Dispatcher::new(Arc::clone(store), cfg.clone()).unwrap());
    let waker = d.waker();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(d.run(rx));
    (tx, waker, h)
}

async fn throughput(n: usize, concurrency: usize) -> f64 {
    let cfg = WebhooksConfig {
        allow_private_targets: true,
        concurrency,
        ..Default::default()
    };
    let s = setup(Mode::Ok, &cfg).await;
    s.rx.record_bodies
        .store(false, std::sync::atomic::Ordering::Relaxed);
    for i in 0..n {
        s.store.insert_job(&job(i)).unwrap();
    }
    let t = Instant::now();
    let (stop, _waker, h) = start(&s.store, &cfg);
    s.rx.wait_for(Duration::from_secs(600), |r| r.successes().len() >= n)
        .await;
    let secs = t.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = h.await;
    assert!(s.rx.all().iter().all(|d| d.signature_ok));
    n as f64 / secs
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run benches/webhooks.sh"]
async fn webhook_delivery_figures() {
    let n: usize = env_or("AIPROD_BENCH_MESSAGES", 2000);
    let concurrencies: Vec<usize> = if env_or("AIPROD_BENCH_SKIP_THROUGHPUT", 0u8) == 1 {
        vec![]
    } else {
        vec![8, 32]
    };
    for concurrency in concurrencies {
        let rate = throughput(n, concurrency).await;
        println!(
            "webhooks throughput: {n} messages, concurrency {concurrency}: {rate:.0} deliveries/s"
        );
    }

    // Delay with a receiver failing half of the attempts.
    let m: usize = env_or("AIPROD_BENCH_DELAY_MESSAGES", 500);
    let per_s: f64 = env_or("AIPROD_BENCH_RATE", 50.0);
    let base_ms: u64 = env_or("AIPROD_BENCH_RETRY_BASE_MS", 100);
    let cfg = WebhooksConfig {
        allow_private_targets: true,
        retry_base_ms: base_ms,
        ..Default::default()
    };
    let s = setup(Mode::FailHalf, &cfg).await;
    let (stop, waker, h) = start(&s.store, &cfg);
    let mut created = std::collections::HashMap::new();
    let t0 = Instant::now();
    for i in 0..m {
        let due = Duration::from_secs_f64(i as f64 / per_s);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let rec = job(i);
        created.insert(rec.job.job_id.clone(), unix_ms());
        s.store.insert_job(&rec).unwrap();
        // The daemon wakes the dispatcher on every job event.
        waker.notify_one();
    }
    s.rx.wait_for(Duration::from_secs(1800), |r| r.successes().len() >= m)
        .await;
    let _ = stop.send(true);
    let _ = h.await;
    let all = s.rx.all();
    let attempts = all.len();
    let failed = all.iter().filter(|d| d.answered != 200).count();
    let end = Instant::now();
    let now_ms = unix_ms();
    let mut delays: Vec<f64> =
        s.rx.successes()
            .iter()
            .map(|d| {
                let job_id = d.body["data"]["job"]["job_id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let at_ms = now_ms - (end - d.at).as_secs_f64() * 1e3;
                at_ms - created[&job_id]
            })
            .collect();
    delays.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1],
    );
    println!(
        "webhooks delay with 50% failing receiver: {m} messages at {per_s}/s, retry base {base_ms} ms: \
         {attempts} attempts ({failed} failed, {:.1}% ), p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms",
        100.0 * failed as f64 / attempts as f64
    );
    // Every message got through, once per successful attempt.
    let mut ids: Vec<String> = s.rx.successes().into_iter().map(|d| d.msg_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), m);
}
