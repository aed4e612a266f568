//! `aiprodd`: parse the configuration, serve, stop cleanly on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use aiprod_daemon::config::{Config, ConfigLayer};
use clap::Parser;

/// aiprod media daemon: plans, generates, processes and validates video jobs over gRPC.
#[derive(Debug, Parser)]
#[command(name = "aiprodd", version)]
struct Args {
    /// TOML config file (keys as in the Config struct; flags and AIPROD_* env override it).
    #[arg(long, env = "AIPROD_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the database, job files and outputs.
    #[arg(long, env = "AIPROD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "AIPROD_GRPC_ADDR")]
    grpc_addr: Option<SocketAddr>,
    /// HTTP listen address (/metrics, /healthz).
    #[arg(long, env = "AIPROD_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Longest clip a request may ask for, in seconds.
    #[arg(long, env = "AIPROD_MAX_DURATION_S")]
    max_duration_s: Option<f64>,
    /// Jobs that run on the CPU at once (jobs whose plan needs no GPU engine).
    #[arg(long, env = "AIPROD_MAX_CPU_JOBS")]
    max_cpu_jobs: Option<usize>,
    /// Former name of --max-cpu-jobs (used when that is not given).
    #[arg(long, env = "AIPROD_MAX_CONCURRENT_JOBS", hide = true)]
    max_concurrent_jobs: Option<usize>,
    /// Jobs that run a GPU engine at once (default: one per usable GPU found at start).
    #[arg(long, env = "AIPROD_MAX_GPU_JOBS")]
    max_gpu_jobs: Option<usize>,
    /// This node's CPU cost, USD per hour.
    #[arg(long, env = "AIPROD_CPU_USD_PER_HOUR")]
    cpu_usd_per_hour: Option<f64>,
    /// This node's GPU cost, USD per hour.
    #[arg(long, env = "AIPROD_GPU_USD_PER_HOUR")]
    gpu_usd_per_hour: Option<f64>,
    /// Directory of profile TOML files (and pricing.toml) replacing the embedded ones.
    #[arg(long, env = "AIPROD_PROFILES_DIR")]
    profiles_dir: Option<PathBuf>,
    /// Log JSON lines.
    #[arg(long, env = "AIPROD_LOG_JSON")]
    log_json: Option<bool>,
    /// Accepted jobs that may wait for a slot.
    #[arg(long, env = "AIPROD_MAX_QUEUED_JOBS")]
    max_queued_jobs: Option<usize>,
    /// Queued + running jobs per user (0 = unlimited).
    #[arg(long, env = "AIPROD_MAX_JOBS_PER_USER")]
    max_jobs_per_user: Option<usize>,
    /// Free bytes the data directory must keep before a job starts.
    #[arg(long, env = "AIPROD_MIN_FREE_DISK_BYTES")]
    min_free_disk_bytes: Option<u64>,
    /// Seconds SIGTERM waits for accepted jobs before stopping.
    #[arg(long, env = "AIPROD_DRAIN_DEADLINE_S")]
    drain_deadline_s: Option<f64>,
    /// Node name reported by GetNodeStatus (default: host name).
    #[arg(long, env = "AIPROD_NODE_NAME")]
    node_name: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

fn build_config(args: &Args) -> Result<Config, aiprod_daemon::config::ConfigError> {
    let mut cfg = Config::default();
    if let Some(path) = &args.config {
        cfg = cfg.apply(&ConfigLayer::from_file(path)?);
    }
    // Provider keys, the webhook SSRF switch, JWKS and TLS files from the environment.
    cfg = cfg.apply(&ConfigLayer::integrations_from_env(&|k| {
        std::env::var(k).ok()
    }));
    let flags = ConfigLayer {
        data_dir: args.data_dir.clone(),
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        max_duration_s: args.max_duration_s,
        max_cpu_jobs: args.max_cpu_jobs.or(args.max_concurrent_jobs),
        max_gpu_jobs: args.max_gpu_jobs,
        cpu_usd_per_hour: args.cpu_usd_per_hour,
        gpu_usd_per_hour: args.gpu_usd_per_hour,
        profiles_dir: args.profiles_dir.clone(),
        log_json: args.log_json,
        max_queued_jobs: args.max_queued_jobs,
        max_jobs_per_user: args.max_jobs_per_user,
        min_free_disk_bytes: args.min_free_disk_bytes,
        drain_deadline_s: args.drain_deadline_s,
        node_name: args.node_name.clone(),
        ..Default::default()
    };
    cfg.apply(&flags).validate()
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aiprodd: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("AIPROD_LOG").unwrap_or_else(|_| "info".into());
    if config.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aiprodd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(aiprod_daemon::server::serve(
        config,
        shutdown_signal(),
        |grpc, http| {
            // One machine-readable line for scripts and tests that start aiprodd on port 0.
            println!("aiprodd listening grpc=http://{grpc} http=http://{http}");
        },
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("aiprodd: {e}");
            ExitCode::FAILURE
        }
    }
}
