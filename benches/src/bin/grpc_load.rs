//! gRPC load generator: `aiprod.v1.Control/Plan` next to an empty unary call
//! (`grpc.health.v1.Health/Check`) on the same server, with C concurrent clients.
//!
//! Without `--addr` it starts a real aiprodd in this process (`aiprod_daemon::server::serve`, temp
//! data dir, ports chosen by the OS); with `--addr` it drives a daemon that is already running.
//! The two calls are run in alternating slices (Plan, Health, Plan, Health, ...) so that drift of
//! a shared machine, or of the daemon itself, affects both. Each client keeps one call in flight;
//! latencies are collected per client as microseconds, merged and sorted (no histogram crate).
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/target-bench cargo run --release -p aiprod-benches --bin grpc_load -- \
//!     --clients 64 --duration-s 10 --channel both
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use aiprod_daemon::config::Config;
use aiprod_daemon::proto::{self, control_client::ControlClient};
use clap::{Parser, ValueEnum};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ChannelMode {
    /// Each client opens its own tonic Channel (one HTTP/2 connection per client).
    PerClient,
    /// All clients share one Channel (one HTTP/2 connection, requests multiplexed).
    Shared,
    /// Both of the above, one after the other.
    Both,
}

#[derive(Debug, Parser)]
#[command(about = "Plan over gRPC vs an empty unary call (grpc.health.v1 Check), C clients")]
struct Args {
    /// Drive this aiprodd (e.g. http://127.0.0.1:50051) instead of starting one in-process.
    #[arg(long)]
    addr: Option<String>,
    /// Concurrent clients, each with one call in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds for EACH call (split into --rounds slices).
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Slices per call; the calls alternate Plan, Health, Plan, Health, ...
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Unmeasured seconds of each call before the first slice.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// How clients get their connection.
    #[arg(long, value_enum, default_value_t = ChannelMode::PerClient)]
    channel: ChannelMode,
    /// Print the figures as JSON (one object) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Plan,
    Health,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Plan => "Plan",
            Rpc::Health => "Health/Check (empty)",
        }
    }
}

/// What one client saw in one slice.
#[derive(Default)]
struct ClientRun {
    micros: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Merged figures of one call over all its slices.
#[derive(Default)]
struct Totals {
    micros: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    slice_rps: Vec<f64>,
}

struct Summary {
    requests: u64,
    errors: u64,
    seconds: f64,
    rps: f64,
    p50_us: u32,
    p90_us: u32,
    p99_us: u32,
    max_us: u32,
    mean_us: f64,
    slice_rps: Vec<f64>,
    first_error: Option<String>,
}

impl Totals {
    fn summary(mut self) -> Summary {
        self.micros.sort_unstable();
        let n = self.micros.len();
        let q = |p: f64| aiprod_benches::nearest_rank(&self.micros, p);
        let mean_us = if n == 0 {
            0.0
        } else {
            self.micros.iter().map(|&m| f64::from(m)).sum::<f64>() / n as f64
        };
        Summary {
            requests: n as u64,
            errors: self.errors,
            seconds: self.seconds,
            rps: if self.seconds > 0.0 {
                n as f64 / self.seconds
            } else {
                0.0
            },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: self.micros.last().copied().unwrap_or(0),
            mean_us,
            slice_rps: self.slice_rps,
            first_error: self.first_error,
        }
    }
}

fn plan_request() -> proto::PlanRequest {
    proto::PlanRequest {
        prompt: "a red fox running through snow at dawn".into(),
        duration_s: 4.0,
        profile: "SOCIAL".into(),
        ..Default::default()
    }
}

fn health_request() -> HealthCheckRequest {
    HealthCheckRequest {
        service: "aiprod.v1.Control".into(),
    }
}

fn micros_since(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// One client: calls `rpc` back to back until `until`.
async fn client_loop(channel: Channel, rpc: Rpc, until: Instant, record: bool) -> ClientRun {
    let mut run = ClientRun::default();
    let mut control = ControlClient::new(channel.clone());
    let mut health = HealthClient::new(channel);
    let plan = plan_request();
    let check = health_request();
    while Instant::now() < until {
        let t = Instant::now();
        let result = match rpc {
            Rpc::Plan => control.plan(plan.clone()).await.map(|_| ()),
            Rpc::Health => health.check(check.clone()).await.map(|_| ()),
        };
        let us = micros_since(t);
        match result {
            Ok(()) if record => run.micros.push(us),
            Ok(()) => {}
            Err(status) => {
                run.errors += 1;
                if run.first_error.is_none() {
                    run.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
                }
            }
        }
    }
    run
}

/// All clients for `seconds`; returns the merged run and the wall time it took.
async fn slice(channels: &[Channel], rpc: Rpc, seconds: f64, record: bool) -> (ClientRun, f64) {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = channels
        .iter()
        .map(|ch| tokio::spawn(client_loop(ch.clone(), rpc, until, record)))
        .collect();
    let mut merged = ClientRun::default();
    for task in tasks {
        let run = task.await.expect("client task panicked");
        merged.micros.extend_from_slice(&run.micros);
        merged.errors += run.errors;
        if merged.first_error.is_none() {
            merged.first_error = run.first_error;
        }
    }
    // Wall time until the last in-flight call came back, not just the deadline.
    (merged, start.elapsed().as_secs_f64())
}

async fn connect(addr: &str) -> Result<Channel, Box<dyn std::error::Error>> {
    Ok(Endpoint::from_shared(addr.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await?)
}

async fn channels_for(
    addr: &str,
    mode: ChannelMode,
    clients: usize,
) -> Result<Vec<Channel>, Box<dyn std::error::Error>> {
    match mode {
        ChannelMode::Shared => {
            let ch = connect(addr).await?;
            Ok(vec![ch; clients])
        }
        _ => {
            let mut v = Vec::with_capacity(clients);
            for _ in 0..clients {
                v.push(connect(addr).await?);
            }
            Ok(v)
        }
    }
}

/// Runs warm-up and the alternating slices for one channel mode.
async fn measure(args: &Args, channels: &[Channel]) -> (Summary, Summary) {
    let slice_s = args.duration_s / args.rounds.max(1) as f64;
    for rpc in [Rpc::Plan, Rpc::Health] {
        if args.warmup_s > 0.0 {
            let _ = slice(channels, rpc, args.warmup_s, false).await;
        }
    }
    let mut plan = Totals::default();
    let mut health = Totals::default();
    for _ in 0..args.rounds.max(1) {
        for (rpc, totals) in [(Rpc::Plan, &mut plan), (Rpc::Health, &mut health)] {
            let (run, secs) = slice(channels, rpc, slice_s, true).await;
            totals.slice_rps.push(run.micros.len() as f64 / secs);
            totals.micros.extend_from_slice(&run.micros);
            totals.errors += run.errors;
            totals.seconds += secs;
            if totals.first_error.is_none() {
                totals.first_error = run.first_error;
            }
        }
    }
    (plan.summary(), health.summary())
}

fn mode_name(mode: ChannelMode) -> &'static str {
    match mode {
        ChannelMode::PerClient => "per-client",
        ChannelMode::Shared => "shared",
        ChannelMode::Both => "both",
    }
}

fn ms(us: u32) -> String {
    format!("{:.3}", f64::from(us) / 1000.0)
}

fn print_table(args: &Args, where_: &str, results: &[(ChannelMode, Summary, Summary)]) {
    println!(
        "aiprodd {where_}; {} clients, {} s per call in {} alternating slices, {} s warm-up",
        args.clients, args.duration_s, args.rounds, args.warmup_s
    );
    println!(
        "{:<11} {:<21} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "channel", "call", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (mode, plan, health) in results {
        for (rpc, s) in [(Rpc::Plan, plan), (Rpc::Health, health)] {
            println!(
                "{:<11} {:<21} {:>9} {:>7} {:>10.0} {:>9} {:>9} {:>9} {:>9}",
                mode_name(*mode),
                rpc.name(),
                s.requests,
                s.errors,
                s.rps,
                ms(s.p50_us),
                ms(s.p90_us),
                ms(s.p99_us),
                ms(s.max_us),
            );
        }
        println!(
            "{:<11} {:<21} {:>9} {:>7} {:>10.3} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            mode_name(*mode),
            "ratio Plan/Health",
            "",
            "",
            ratio(plan.rps, health.rps),
            ratio(f64::from(plan.p50_us), f64::from(health.p50_us)),
            ratio(f64::from(plan.p90_us), f64::from(health.p90_us)),
            ratio(f64::from(plan.p99_us), f64::from(health.p99_us)),
            ratio(f64::from(plan.max_us), f64::from(health.max_us)),
        );
    }
    for (mode, plan, health) in results {
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{} req/s per slice: Plan [{}]  Health [{}]",
            mode_name(*mode),
            fmt(&plan.slice_rps),
            fmt(&health.slice_rps)
        );
        println!(
            "{} Plan wrote {} plan rows to SQLite ({} per call, one transaction + expiry DELETE)",
            mode_name(*mode),
            plan.requests * 3,
            3
        );
        for (rpc, s) in [(Rpc::Plan, plan), (Rpc::Health, health)] {
            if let Some(e) = &s.first_error {
                println!("{} {} first error: {e}", mode_name(*mode), rpc.name());
            }
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn summary_json(s: &Summary) -> serde_json::Value {
    serde_json::json!({
        "requests": s.requests,
        "errors": s.errors,
        "seconds": s.seconds,
        "rps": s.rps,
        "p50_us": s.p50_us,
        "p90_us": s.p90_us,
        "p99_us": s.p99_us,
        "max_us": s.max_us,
        "mean_us": s.mean_us,
        "slice_rps": s.slice_rps,
        "first_error": s.first_error,
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.clients == 0 || args.duration_s <= 0.0 {
        return Err("--clients and --duration-s must be positive".into());
    }

    // The daemon: in-process on a temp data dir, or the one at --addr.
    let mut local = None;
    let addr = match &args.addr {
        Some(a) => a.clone(),
        None => {
            let dir = tempfile::tempdir()?;
            let config = Config {
                data_dir: dir.path().to_path_buf(),
                grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..Config::default()
            };
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
            let server = tokio::spawn(aiprod_daemon::server::serve(
                config,
                async move {
                    let _ = stop_rx.await;
                },
                move |grpc, _http| {
                    let _ = ready_tx.send(grpc);
                },
            ));
            let grpc = match ready_rx.await {
                Ok(a) => a,
                Err(_) => {
                    let res = server.await?;
                    return Err(format!("aiprodd did not start: {res:?}").into());
                }
            };
            local = Some((dir, stop_tx, server));
            format!("http://{grpc}")
        }
    };
    let where_ = if local.is_some() {
        format!("in-process at {addr} (clients and server share this process's runtime)")
    } else {
        format!("at {addr} (separate process)")
    };

    let modes: &[ChannelMode] = match args.channel {
        ChannelMode::Both => &[ChannelMode::PerClient, ChannelMode::Shared],
        ChannelMode::PerClient => &[ChannelMode::PerClient],
        ChannelMode::Shared => &[ChannelMode::Shared],
    };
    let mut results = Vec::new();
    for &mode in modes {
        let channels = channels_for(&addr, mode, args.clients).await?;
        let (plan, health) = measure(&args, &channels).await;
        results.push((mode, plan, health));
    }

    let db_bytes = local.as_ref().map(|(dir, _, _)| dir_bytes(dir.path()));
    if args.json {
        let runs: Vec<_> = results
            .iter()
            .map(|(mode, plan, health)| {
                serde_json::json!({
                    "channel": mode_name(*mode),
                    "plan": summary_json(plan),
                    "health_check": summary_json(health),
                    "plan_rows_written": plan.requests * 3,
                    "ratio_rps": ratio(plan.rps, health.rps),
                    "ratio_p50": ratio(f64::from(plan.p50_us), f64::from(health.p50_us)),
                    "ratio_p99": ratio(f64::from(plan.p99_us), f64::from(health.p99_us)),
                })
            })
            .collect();
        let out = serde_json::json!({
            "server": where_,
            "clients": args.clients,
            "duration_s": args.duration_s,
            "rounds": args.rounds,
            "warmup_s": args.warmup_s,
            "data_dir_bytes": db_bytes,
            "runs": runs,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&args, &where_, &results);
        if let Some(b) = db_bytes {
            println!(
                "data dir after the run: {:.1} MiB (SQLite + WAL)",
                b as f64 / 1048576.0
            );
        }
    }

    if let Some((dir, stop_tx, server)) = local {
        let _ = stop_tx.send(());
        server.await??;
        drop(dir);
    }
    Ok(())
}
