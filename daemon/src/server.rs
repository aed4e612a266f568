//! Builds the daemon from a [`Config`] and serves it: gRPC (Control, health, reflection) on one
//! port, HTTP (metrics, health) on another, until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use aiprod_planner::{NodeRates, PriceTable, ProfileCatalog};
use tokio::net::TcpListener;

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
    #[error("backends: {0}")]
    Backends(#[from] crate::backends::BackendError),
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("TLS: {path}: {reason}")]
    Tls {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("webhooks: {0}")]
    Webhooks(String),
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
    // Once, off the async threads: it loads the Vulkan drivers and ONNX Runtime.
    let hardware = Arc::new(
        tokio::task::spawn_blocking(crate::node::Hardware::detect)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("hardware detection failed ({e}); reporting the CPU only");
                crate::node::Hardware::cpu_only()
            }),
    );
    let defaults = NodeRates::from_defaults(&prices);
    let node = NodeRates {
        cpu_usd_per_hour: config.cpu_usd_per_hour.unwrap_or(defaults.cpu_usd_per_hour),
        gpu_usd_per_hour: config.gpu_usd_per_hour.unwrap_or(defaults.gpu_usd_per_hour),
        // GPU work is billed at the GPU rate only where a GPU engine can run it.
        has_gpu: hardware.usable_gpus() > 0,
    };
    if let Ok(up) = prices.upscaler() {
        let wanted = crate::jobs::engines::gpu_engines_for(&up.engine);
        if up.gpu && !hardware.gpu_with_any(wanted) {
            tracing::warn!(
                upscaler = %up.engine,
                "the active upscaler runs on a GPU with {} and this node has none: plans that \
                 upscale are infeasible here",
                wanted.join(" or ")
            );
        }
    }
    let backends = Backends::from_config(&config, Arc::clone(&prices), Arc::clone(&store))?;
    let engine = Arc::new(JobEngine::new(
        store,
        Arc::clone(&config),
        catalog,
        Arc::clone(&metrics),
        backends,
        node,
        Arc::clone(&hardware),
        Arc::clone(&prices),
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
    let webhooks = Arc::new(crate::webhooks::Webhooks::new(
        Arc::clone(&engine.store),
        config.webhooks.clone(),
        config.auth.enabled(),
    ));
    let control_service = Arc::new(
        ControlService::new(Arc::clone(&engine), prices, health_reporter.clone())
            .with_webhooks(webhooks),
    );
    let control = ControlServer::from_arc(Arc::clone(&control_service));
    let authenticator = crate::auth::Authenticator::from_config(&config.auth)?.map(Arc::new);
    if authenticator.is_none() {
        tracing::warn!(%grpc_addr, "no [auth] configured: every call acts as tenant \"default\"; serving gRPC on loopback only");
    }
    let control = tonic::service::interceptor::InterceptedService::new(
        control,
        crate::auth::AuthInterceptor(authenticator.clone()),
    );

    // Shutdown (SIGTERM/SIGINT) drains first: no new jobs, health NOT_SERVING, accepted jobs
    // finish within the drain deadline; what still runs then resumes at the next start.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let drain_engine = Arc::clone(&engine);
    let drain_deadline = std::time::Duration::from_secs_f64(config.drain_deadline_s);
    tokio::spawn(async move {
        shutdown.await;
        systemd::notify(&[sd_notify::NotifyState::Stopping]);
        let drained =
            crate::control::drain_node(&drain_engine, &health_reporter, drain_deadline).await;
        let (queued, running) = drain_engine.load();
        tracing::info!(drained, queued, running, "drain finished; stopping");
        let _ = stop_tx.send(true);
    });
    let mut grpc_stop = stop_rx.clone();
    let dispatcher_stop = stop_rx.clone();
    let mut http_stop = stop_rx;

    // Webhook delivery from the outbox, woken by every job event.
    let dispatcher = Arc::new(
        crate::webhooks::dispatcher::Dispatcher::new(
            Arc::clone(&engine.store),
            config.webhooks.clone(),
        )
        .map_err(|e| ServeError::Webhooks(e.to_string()))?,
    );
    let waker = dispatcher.waker();
    let mut job_events = engine.subscribe();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        while let Ok(_) | Err(RecvError::Lagged(_)) = job_events.recv().await {
            waker.notify_one();
        }
    });
    let dispatcher_task = tokio::spawn(Arc::clone(&dispatcher).run(dispatcher_stop));

    // The dashboard (page, JSON API through the same service and auth, /ws/metrics).
    let dashboard = crate::dashboard::router(crate::dashboard::Dashboard::new(
        control_service,
        crate::auth::AuthInterceptor(authenticator),
        Arc::clone(&engine),
        Arc::clone(&metrics),
        http_stop.clone(),
    ));
    // Replicate's completion callbacks, when configured.
    let mut http_router = telemetry::router(metrics).merge(dashboard);
    if let Some(rc) = &config.backends.replicate {
        let wakeups = engine
            .backends()
            .get("replicate")
            .ok()
            .and_then(|b| b.task_wakeups());
        if let (Some(secret), Some(wakeups)) = (&rc.webhook_secret, wakeups) {
            let key = crate::webhooks::signing::SigningKey::parse(secret.expose(), false).map_err(
                |e| ServeError::Webhooks(format!("backends.replicate.webhook_secret: {e}")),
            )?;
            http_router =
                http_router.merge(crate::webhooks::inbound::replicate_router(key, wakeups));
        }
    }

    tracing::info!(%grpc_addr, %http_addr, data_dir = %config.data_dir.display(), "aiprodd ready");
    on_ready(grpc_addr, http_addr);
    systemd::notify(&[sd_notify::NotifyState::Ready]);
    systemd::spawn_watchdog();

    let http = axum::serve(http_listener, http_router).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|s| *s).await;
    });
    let mut grpc_builder = tonic::transport::Server::builder();
    if let Some(tls) =
        crate::auth::settings::tls_from_layer(&config.tls).map_err(|e| ServeError::Tls {
            path: std::path::PathBuf::new(),
            reason: e.to_string(),
        })?
    {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| ServeError::Tls {
                path: p.to_path_buf(),
                reason: e.to_string(),
            })
        };
        let identity =
            tonic::transport::Identity::from_pem(read(&tls.cert_file)?, read(&tls.key_file)?);
        grpc_builder = grpc_builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| ServeError::Tls {
                path: tls.cert_file.clone(),
                reason: e.to_string(),
            })?;
        tracing::info!(cert = %tls.cert_file.display(), "gRPC over TLS");
    }
    let grpc = grpc_builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(control)
        // TCP_NODELAY: a unary answer is several HTTP/2 frames written apart; with Nagle on,
        // the last waited for the client's delayed ACK and every call took ~40 ms more.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            async move {
                let _ = grpc_stop.wait_for(|s| *s).await;
            },
        );
    let (grpc_res, http_res) = tokio::join!(grpc, http);
    // In-flight deliveries finish (bounded by one attempt's timeout); the rest stay pending.
    let _ = dispatcher_task.await;
    grpc_res?;
    http_res.map_err(ServeError::Http)?;
    tracing::info!("aiprodd stopped; unfinished jobs resume at the next start");
    Ok(())
}

/// systemd integration (Type=notify): READY, WATCHDOG pings, STOPPING. Every call is a no-op
/// when not started by systemd (no NOTIFY_SOCKET).
mod systemd {
    pub fn notify(states: &[sd_notify::NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::warn!("sd_notify failed: {e}");
        }
    }

    /// Pings the watchdog at half the interval systemd asked for (WatchdogSec).
    pub fn spawn_watchdog() {
        let mut usec = 0u64;
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return;
        }
        let period = std::time::Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}
