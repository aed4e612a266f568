//! Store contention: how long cheap calls (`grpc.health.v1.Health/Check`,
//! `aiprod.v1.Control/GetNodeStatus`; neither touches SQLite) wait while C clients hammer the
//! RPCs that go to aiprodd's SQLite store (ListJobs, GetUsage, GetReceipt, Plan).
//!
//! aiprodd runs in this process on a tokio runtime of its own with as many workers as the
//! machine has cores (as `aiprodd` sizes its runtime), so the load clients (another runtime)
//! do not take its workers. Its data dir is a temp dir seeded, before it starts, with `--jobs`
//! finished jobs (receipt and ledger lines each) spread over `--users` users and 30 days.
//!
//! Phases, each `--warmup-s` unmeasured then `--duration-s` measured seconds, with two probe
//! clients (one Health/Check, one GetNodeStatus, own connection each) throughout, each calling
//! every `--probe-interval-ms` as a health checker does (0: back to back, which on a small
//! machine takes a good share of the CPU from the load):
//! `idle` (probes only), `store-mix` (C clients spread over ListJobs of 500 jobs, GetUsage of
//! every user and all time, GetReceipt of a random job, Plan) and `plan` (C clients of Plan
//! only). Latencies are nearest-rank percentiles of every call in the measured window.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/target-bench cargo run --release -p aiprod-benches --bin store_load -- \
//!     --jobs 20000 --clients 16 --duration-s 8
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aiprod_daemon::config::Config;
use aiprod_daemon::jobs::store::{JobRecord, Store};
use aiprod_daemon::proto::{self, control_client::ControlClient, JobState, Tier};
use clap::Parser;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// How far back the seeded jobs' creation times reach.
const SEED_SPAN_MS: i64 = 30 * 24 * 3600 * 1000;
/// ListJobs' largest page (the daemon's MAX_PAGE_SIZE): the heaviest ListJobs a client can ask.
const LIST_PAGE_SIZE: u32 = 500;

#[derive(Debug, Parser)]
#[command(about = "Cheap-call latency while C clients hammer aiprodd's store-backed RPCs")]
struct Args {
    /// Finished jobs seeded into the store before aiprodd starts.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Users the seeded jobs are spread over.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Concurrent load clients, each with one call in flight.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 8.0)]
    duration_s: f64,
    /// Unmeasured seconds at the start of each phase.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// Milliseconds between the starts of two probe calls (0: back to back). A probe call
    /// that takes longer delays the next one; missed ticks are skipped.
    #[arg(long, default_value_t = 5)]
    probe_interval_ms: u64,
    /// aiprodd's worker threads (default: the machine's cores, as aiprodd uses).
    #[arg(long)]
    server_workers: Option<usize>,
    /// Print the figures as JSON (one object) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Call {
    Health,
    NodeStatus,
    ListJobs,
    GetUsage,
    GetReceipt,
    Plan,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Health => "Health/Check",
            Call::NodeStatus => "GetNodeStatus",
            Call::ListJobs => "ListJobs(500)",
            Call::GetUsage => "GetUsage(all)",
            Call::GetReceipt => "GetReceipt",
            Call::Plan => "Plan",
        }
    }
}

/// The store-backed calls of the `store-mix` phase; client i makes `STORE_MIX[i % len]`.
const STORE_MIX: [Call; 4] = [Call::ListJobs, Call::GetUsage, Call::GetReceipt, Call::Plan];

/// What one client saw.
#[derive(Default)]
struct Run {
    micros: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

struct Summary {
    call: Call,
    clients: usize,
    requests: usize,
    errors: u64,
    rps: f64,
    p50_us: u32,
    p90_us: u32,
    p99_us: u32,
    max_us: u32,
    first_error: Option<String>,
}

impl Summary {
    fn of(call: Call, clients: usize, mut run: Run, seconds: f64) -> Summary {
        run.micros.sort_unstable();
        let n = run.micros.len();
        let q = |p: f64| aiprod_benches::nearest_rank(&run.micros, p);
        Summary {
            call,
            clients,
            requests: n,
            errors: run.errors,
            rps: n as f64 / seconds,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: run.micros.last().copied().unwrap_or(0),
            first_error: run.first_error,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "call": self.call.name(),
            "clients": self.clients,
            "requests": self.requests,
            "errors": self.errors,
            "rps": self.rps,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "max_us": self.max_us,
            "first_error": self.first_error,
        })
    }
}

fn job_id(i: usize) -> String {
    format!("bench-job-{i:07}")
}

/// Writes `jobs` finished jobs (job row, receipt, two ledger lines) through the daemon's own
/// store API, as finished jobs leave them.
fn seed(store: &Store, jobs: usize, users: usize) -> Result<(), Box<dyn std::error::Error>> {
    let now = aiprod_daemon::now_unix_ms();
    let tiers = [Tier::Premium, Tier::Balanced, Tier::Economy];
    for i in 0..jobs {
        let created = now - SEED_SPAN_MS + (i as i64 * SEED_SPAN_MS) / jobs.max(1) as i64;
        let tier = tiers[i % tiers.len()];
        let estimated = 20_000 + (i as i64 % 7) * 1_000;
        let job = proto::Job {
            job_id: job_id(i),
            user_id: format!("user-{}", i % users.max(1)),
            state: JobState::Queued as i32,
            tier: tier as i32,
            profile: "SOCIAL".into(),
            backend: "local".into(),
            prompt: format!("seeded clip {i}: a red fox running through snow at dawn"),
            duration_s: 4.0,
            stage: "queued".into(),
            created_unix_ms: created,
            updated_unix_ms: created,
            estimated_cost_usd_micros: estimated,
            ..Default::default()
        };
        let plan = proto::PlanOption {
            tier: tier as i32,
            backend: "local".into(),
            profile: "SOCIAL".into(),
            duration_s: 4.0,
            total_cost_usd_micros: estimated,
            feasible: true,
            ..Default::default()
        };
        let rec = JobRecord {
            job: job.clone(),
            plan,
            seed: i as u64,
            idempotency_key: String::new(),
        };
        store.insert_job(&rec)?;
        let actual = estimated + (i as i64 % 5) * 500 - 1_000;
        let done = proto::Job {
            state: JobState::Succeeded as i32,
            stage: "succeeded".into(),
            progress: 1.0,
            updated_unix_ms: created + 30_000,
            actual_cost_usd_micros: actual,
            ..job
        };
        let receipt = proto::Receipt {
            job_id: done.job_id.clone(),
            user_id: done.user_id.clone(),
            tier: tier as i32,
            backend: "local".into(),
            profile: "SOCIAL".into(),
            final_state: JobState::Succeeded as i32,
            lines: vec![
                proto::ReceiptLine {
                    item: "generate".into(),
                    estimated_usd_micros: estimated / 2,
                    actual_usd_micros: actual / 2,
                    basis: "cpu time".into(),
                },
                proto::ReceiptLine {
                    item: "process".into(),
                    estimated_usd_micros: estimated - estimated / 2,
                    actual_usd_micros: actual - actual / 2,
                    basis: "cpu time".into(),
                },
            ],
            estimated_total_usd_micros: estimated,
            actual_total_usd_micros: actual,
            created_unix_ms: created + 30_000,
            ..Default::default()
        };
        store.finish_job(&done, &receipt)?;
    }
    Ok(())
}

struct Clients {
    control: ControlClient<Channel>,
    health: HealthClient<Channel>,
}

async fn connect(addr: &str) -> Result<Clients, Box<dyn std::error::Error + Send + Sync>> {
    let ch = Endpoint::from_shared(addr.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(Clients {
        control: ControlClient::new(ch.clone()),
        health: HealthClient::new(ch),
    })
}

/// A small xorshift, so that GetReceipt spreads over the seeded jobs without a rand crate.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn call_once(
    c: &mut Clients,
    call: Call,
    jobs: usize,
    rng: &mut u64,
) -> Result<(), tonic::Status> {
    match call {
        Call::Health => c
            .health
            .check(HealthCheckRequest {
                service: "aiprod.v1.Control".into(),
            })
            .await
            .map(drop),
        Call::NodeStatus => c
            .control
            .get_node_status(proto::GetNodeStatusRequest {})
            .await
            .map(drop),
        Call::ListJobs => c
            .control
            .list_jobs(proto::ListJobsRequest {
                page_size: LIST_PAGE_SIZE,
                ..Default::default()
            })
            .await
            .map(drop),
        Call::GetUsage => c
            .control
            .get_usage(proto::GetUsageRequest::default())
            .await
            .map(drop),
        Call::GetReceipt => {
            let i = (next_random(rng) % jobs.max(1) as u64) as usize;
            c.control
                .get_receipt(proto::GetReceiptRequest {
                    job_id: job_id(i),
                    user_id: String::new(),
                })
                .await
                .map(drop)
        }
        Call::Plan => c
            .control
            .plan(proto::PlanRequest {
                prompt: "a red fox running through snow at dawn".into(),
                duration_s: 4.0,
                profile: "SOCIAL".into(),
                ..Default::default()
            })
            .await
            .map(drop),
    }
}

/// One client: `call` until `until`, back to back or one every `interval`, recording calls
/// that start at or after `measure_from`.
async fn client_loop(
    mut c: Clients,
    call: Call,
    jobs: usize,
    seed: u64,
    interval: Option<Duration>,
    (measure_from, until): (Instant, Instant),
) -> Run {
    let mut run = Run::default();
    let mut rng = seed | 1;
    let mut ticks = interval.map(|i| {
        let mut t = tokio::time::interval(i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    });
    loop {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        let t = Instant::now();
        if t >= until {
            return run;
        }
        let result = call_once(&mut c, call, jobs, &mut rng).await;
        if t < measure_from {
            continue;
        }
        match result {
            Ok(()) => run
                .micros
                .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(s) => {
                run.errors += 1;
                if run.first_error.is_none() {
                    run.first_error = Some(format!("{:?}: {}", s.code(), s.message()));
                }
            }
        }
    }
}

/// One phase: the two probes plus `load` (one call per client); summaries per call.
async fn phase(
    addr: &str,
    args: &Args,
    load: &[Call],
) -> Result<Vec<Summary>, Box<dyn std::error::Error + Send + Sync>> {
    let mut calls = vec![Call::Health, Call::NodeStatus];
    calls.extend_from_slice(load);
    let mut clients = Vec::with_capacity(calls.len());
    for _ in &calls {
        clients.push(connect(addr).await?);
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup_s);
    let until = measure_from + Duration::from_secs_f64(args.duration_s);
    let tasks: Vec<_> = calls
        .iter()
        .zip(clients)
        .enumerate()
        .map(|(i, (&call, c))| {
            let seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1);
            let probe = matches!(call, Call::Health | Call::NodeStatus);
            let interval = (probe && args.probe_interval_ms > 0)
                .then(|| Duration::from_millis(args.probe_interval_ms));
            let window = (measure_from, until);
            (
                call,
                tokio::spawn(client_loop(c, call, args.jobs, seed, interval, window)),
            )
        })
        .collect();
    let mut merged: Vec<(Call, usize, Run)> = Vec::new();
    for (call, task) in tasks {
        let run = task.await?;
        match merged.iter_mut().find(|(c, _, _)| *c == call) {
            Some((_, n, m)) => {
                *n += 1;
                m.micros.extend_from_slice(&run.micros);
                m.errors += run.errors;
                if m.first_error.is_none() {
                    m.first_error = run.first_error;
                }
            }
            None => merged.push((call, 1, run)),
        }
    }
    // Calls in flight at `until` finish after it; their time counts.
    let seconds = (start.elapsed().as_secs_f64() - args.warmup_s).max(args.duration_s);
    merged.sort_by_key(|(c, _, _)| *c);
    Ok(merged
        .into_iter()
        .map(|(call, n, run)| Summary::of(call, n, run, seconds))
        .collect())
}

fn ms(us: u32) -> String {
    format!("{:.3}", f64::from(us) / 1000.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.clients == 0 || args.duration_s <= 0.0 || args.users == 0 {
        return Err("--clients, --users and --duration-s must be positive".into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server_workers = args.server_workers.unwrap_or(cores);

    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    seed(&Store::open(dir.path())?, args.jobs, args.users)?;
    let seed_s = t.elapsed().as_secs_f64();

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_workers)
        .thread_name("aiprodd")
        .enable_all()
        .build()?;
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let server = server_rt.spawn(aiprod_daemon::server::serve(
        config,
        async move {
            let _ = stop_rx.await;
        },
        move |grpc, _http| {
            let _ = ready_tx.send(grpc);
        },
    ));
    let grpc = match ready_rx.recv_timeout(Duration::from_secs(120)) {
        Ok(a) => a,
        Err(_) => {
            let res = server_rt.block_on(server)?;
            return Err(format!("aiprodd did not start: {res:?}").into());
        }
    };
    let addr = format!("http://{grpc}");

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("load")
        .enable_all()
        .build()?;
    let load_mix: Vec<Call> = (0..args.clients)
        .map(|i| STORE_MIX[i % STORE_MIX.len()])
        .collect();
    let load_plan = vec![Call::Plan; args.clients];
    let phases: [(&str, &[Call]); 3] = [
        ("idle", &[]),
        ("store-mix", &load_mix),
        ("plan", &load_plan),
    ];
    let mut results = Vec::new();
    for (name, load) in phases {
        let summaries = client_rt
            .block_on(phase(&addr, &args, load))
            .map_err(|e| format!("phase {name}: {e}"))?;
        results.push((name, summaries));
    }

    let _ = stop_tx.send(());
    server_rt.block_on(server)??;

    if args.json {
        let phases: Vec<_> = results
            .iter()
            .map(|(name, s)| {
                serde_json::json!({
                    "phase": name,
                    "calls": s.iter().map(Summary::json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "jobs": args.jobs,
            "users": args.users,
            "clients": args.clients,
            "duration_s": args.duration_s,
            "warmup_s": args.warmup_s,
            "probe_interval_ms": args.probe_interval_ms,
            "server_workers": server_workers,
            "cores": cores,
            "seed_s": seed_s,
            "phases": phases,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "aiprodd in-process on its own runtime ({server_workers} workers, {cores} cores); \
         {} finished jobs of {} users seeded in {seed_s:.1} s; {} load clients; \
         {} s measured per phase after {} s warm-up; probes every {} ms (0: back to back)",
        args.jobs, args.users, args.clients, args.duration_s, args.warmup_s, args.probe_interval_ms
    );
    println!(
        "{:<10} {:<14} {:>7} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "phase",
        "call",
        "clients",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms"
    );
    for (name, summaries) in &results {
        for s in summaries {
            println!(
                "{:<10} {:<14} {:>7} {:>9} {:>7} {:>9.0} {:>9} {:>9} {:>9} {:>9}",
                name,
                s.call.name(),
                s.clients,
                s.requests,
                s.errors,
                s.rps,
                ms(s.p50_us),
                ms(s.p90_us),
                ms(s.p99_us),
                ms(s.max_us),
            );
            if let Some(e) = &s.first_error {
                println!("{name} {} first error: {e}", s.call.name());
            }
        }
    }
    Ok(())
}
