//! Builds the daemon from a [`Config`] and serves it: gRPC (Control, health, reflection) on one
//! port, HTTP (metrics, health) on another, until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use aiprod_planner::{NodeRates, PriceTable, ProfileCatalog};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::backends::Backends;
use crate::config::Config;
use crate::control::ControlService;
use crate::jobs::store::Store;
use crate::jobs::JobEngine;
use crate::proto::control_server::ControlServer;
use crate::telemetry::{self, Metrics};

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::jobs::store::StoreError),
    #[error("profiles/pricing data: {0}")]
    Data(#[from] aiprod_planner::PlannerError),
    #[error("profiles directory {path}: {reason}")]
    ProfilesDir {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("GStreamer: {0}")]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("jobs: {0}")]
    Jobs(#[from] crate::jobs::JobError),
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
}

/// The profile catalog: the embedded profiles, plus/overridden by `*.toml` in `profiles_dir`.
pub fn load_catalog(config: &Config) -> Result<ProfileCatalog, ServeError> {
    let Some(dir) = &config.profiles_dir else {
        return Ok(ProfileCatalog::embedded()?);
    };
    let err = |reason: String| ServeError::ProfilesDir {
        path: dir.clone(),
        reason,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| err(e.to_string()))? {
        let path = entry.map_err(|e| err(e.to_string()))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".toml") && name != "pricing.toml" {
            let text = std::fs::read_to_string(&path).map_err(|e| err(format!("{name}: {e}")))?;
            files.push((name, text));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Ok(ProfileCatalog::from_toml_strs(&refs)?)
}

/// Prices: `pricing.toml` in `profiles_dir` when there is one, else the embedded table.
pub fn load_prices(config: &Config) -> Result<PriceTable, ServeError> {
    if let Some(dir) = &config.profiles_dir {
        let path = dir.join("pricing.toml");
        if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| ServeError::ProfilesDir {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            return Ok(PriceTable::from_toml_str(&text)?);
        }
    }
    Ok(PriceTable::embedded()?)
}

/// Starts everything and serves until `shutdown` resolves. `on_ready` gets the bound addresses
/// (useful with port 0).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr, SocketAddr),
) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    crate::pipeline::init()?;
    let catalog = Arc::new(load_catalog(&config)?);
    let prices = Arc::new(load_prices(&config)?);
    let store = Arc::new(Store::open(&config.data_dir)?);
    let metrics = Arc::new(Metrics::new()?);
    let config = Arc::new(config);
    let defaults = NodeRates::from_defaults(&prices);
    let node = NodeRates {
        cpu_usd_per_hour: config.cpu_usd_per_hour.unwrap_or(defaults.cpu_usd_per_hour),
        gpu_usd_per_hour: config.gpu_usd_per_hour.unwrap_or(defaults.gpu_usd_per_hour),
        has_gpu: false,
    };
    let engine = Arc::new(JobEngine::new(
        store,
        Arc::clone(&config),
        catalog,
        Arc::clone(&metrics),
        Backends::local_only(),
        node,
    )?);
    let resumed = engine.recover()?;
    if resumed > 0 {
        tracing::info!(resumed, "picked up unfinished jobs from the last run");
    }

    let grpc_listener = TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.grpc_addr,
            what: "gRPC",
            source,
        })?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.http_addr,
            what: "HTTP",
            source,
        })?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: config.grpc_addr,
            what: "gRPC",
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: config.http_addr,
            what: "HTTP",
            source,
        })?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ControlServer<ControlService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // grpcurl 1.8 speaks only v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let control = ControlServer::new(ControlService::new(Arc::clone(&engine), prices));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut grpc_stop = stop_rx.clone();
    let mut http_stop = stop_rx;

    tracing::info!(%grpc_addr, %http_addr, data_dir = %config.data_dir.display(), "aiprodd ready");
    on_ready(grpc_addr, http_addr);

    let http =
        axum::serve(http_listener, telemetry::router(metrics)).with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        });
    let grpc = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(control)
        .serve_with_incoming_shutdown(TcpListenerStream::new(grpc_listener), async move {
            let _ = grpc_stop.wait_for(|s| *s).await;
        });
    let (grpc_res, http_res) = tokio::join!(grpc, http);
    grpc_res?;
    http_res.map_err(ServeError::Http)?;
    tracing::info!("aiprodd stopped; unfinished jobs resume at the next start");
    Ok(())
}
