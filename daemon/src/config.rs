//! Daemon configuration: defaults < TOML file < `AIPROD_*` environment < command-line flags,
//! parsed and validated once at start into [`Config`]. Errors name the key that is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::auth::settings::{AuthConfig, AuthLayer, TlsConfig, TlsLayer};
pub use crate::backends::settings::{BackendsConfig, BackendsLayer};
pub use crate::webhooks::settings::{WebhooksConfig, WebhooksLayer};

/// Longest clip a request may ask for unless the operator raises it: generation time and disk
/// use grow linearly with duration, and a typo (3600 instead of 36) should not tie up a node.
pub const DEFAULT_MAX_DURATION_S: f64 = 120.0;

/// Most job slots of one kind: each running job holds a blocking thread and its pipeline's
/// buffers, so thousands would exhaust a node long before its cores or GPUs are busy.
pub const MAX_SLOTS: usize = 256;

/// The effective configuration of one `aiprodd`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Requests with a longer duration are refused with INVALID_ARGUMENT.
    pub max_duration_s: f64,
    /// Jobs that run on the CPU at the same time (every job whose plan needs no GPU engine);
    /// the rest wait in QUEUED. Also read as `max_concurrent_jobs`, its name before GPU slots.
    pub max_cpu_jobs: usize,
    /// Jobs that run a GPU engine (ONNX Runtime CUDA/TensorRT, wgpu on a real GPU) at the same
    /// time, apart from the CPU jobs. None: one per usable GPU found at start (0 without one).
    pub max_gpu_jobs: Option<usize>,
    /// What this node costs per hour of CPU work and of GPU work (USD), for compute line items.
    /// None: the defaults of pricing.toml (`[node_defaults]`, with their source).
    pub cpu_usd_per_hour: Option<f64>,
    pub gpu_usd_per_hour: Option<f64>,
    /// How long a plan id from Plan stays usable by Generate.
    pub plan_ttl_s: u64,
    /// How many times a job interrupted by a crash is resumed before it fails.
    pub max_job_attempts: u32,
    /// Directory of profile TOML files that replace/extend the embedded ones (optional).
    pub profiles_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    pub log_json: bool,
    /// Accepted jobs waiting for a slot; Generate answers RESOURCE_EXHAUSTED beyond it.
    pub max_queued_jobs: usize,
    /// Queued + running jobs one user may have at once (0 = no per-user limit).
    pub max_jobs_per_user: usize,
    /// Free space the data directory must keep: a job is refused (Generate) or failed
    /// (before it writes) below it, so a full disk never leaves half-written outputs behind.
    pub min_free_disk_bytes: u64,
    /// How long SIGTERM (and Drain without a deadline) waits for accepted jobs to finish;
    /// jobs still running then stay checkpointed and resume at the next start.
    pub drain_deadline_s: f64,
    /// This node's name in GetNodeStatus (default: the host name).
    pub node_name: String,
    /// Remote generation backends (`[backends.*]`); none by default.
    pub backends: BackendsConfig,
    /// Webhook delivery (`[webhooks]`).
    pub webhooks: WebhooksConfig,
    /// Bearer-token auth of the gRPC port (`[auth]`); off by default (then loopback only).
    pub auth: AuthConfig,
    /// TLS of the gRPC port (`[tls]`); both files or neither.
    pub tls: TlsLayer,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            max_duration_s: DEFAULT_MAX_DURATION_S,
            max_cpu_jobs: 1,
            max_gpu_jobs: None,
            cpu_usd_per_hour: None,
            gpu_usd_per_hour: None,
            plan_ttl_s: 3600,
            max_job_attempts: 3,
            profiles_dir: None,
            log_json: false,
            max_queued_jobs: 100,
            max_jobs_per_user: 0,
            // 1 GiB: room for a few minutes of 4K intermediate footage.
            min_free_disk_bytes: 1 << 30,
            drain_deadline_s: 300.0,
            node_name: String::new(),
            backends: BackendsConfig::default(),
            webhooks: WebhooksConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsLayer::default(),
        }
    }
}

/// A configuration error that names the key and why it is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The layer a TOML file or the environment/flags may set; every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub data_dir: Option<PathBuf>,
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub max_duration_s: Option<f64>,
    #[serde(alias = "max_concurrent_jobs")]
    pub max_cpu_jobs: Option<usize>,
    pub max_gpu_jobs: Option<usize>,
    pub cpu_usd_per_hour: Option<f64>,
    pub gpu_usd_per_hour: Option<f64>,
    pub plan_ttl_s: Option<u64>,
    pub max_job_attempts: Option<u32>,
    pub profiles_dir: Option<PathBuf>,
    pub log_json: Option<bool>,
    pub max_queued_jobs: Option<usize>,
    pub max_jobs_per_user: Option<usize>,
    pub min_free_disk_bytes: Option<u64>,
    pub drain_deadline_s: Option<f64>,
    pub node_name: Option<String>,
    pub backends: Option<BackendsLayer>,
    pub webhooks: Option<WebhooksLayer>,
    pub auth: Option<AuthLayer>,
    pub tls: Option<TlsLayer>,
}

impl ConfigLayer {
    /// Parses a TOML config file's text; `path` is only used in the error.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The environment's part of the integrations: provider API keys and base URLs, the
    /// webhook SSRF switch, the JWKS file and TLS files (see each settings module).
    pub fn integrations_from_env(get: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            backends: Some(BackendsLayer::from_env(get)),
            webhooks: Some(WebhooksLayer::from_env(get)),
            auth: Some(AuthLayer::from_env(get)),
            tls: Some(TlsLayer::from_env(get)),
            ..Default::default()
        }
    }

    /// Reads and parses a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text, path)
    }
}

impl Config {
    /// Applies `layer` over `self` (set fields win).
    pub fn apply(mut self, layer: &ConfigLayer) -> Self {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &layer.$f { self.$f = v.clone(); } )* };
        }
        set!(
            data_dir,
            grpc_addr,
            http_addr,
            max_duration_s,
            max_cpu_jobs,
            plan_ttl_s,
            max_job_attempts,
            log_json,
            max_queued_jobs,
            max_jobs_per_user,
            min_free_disk_bytes,
            drain_deadline_s,
            node_name
        );
        if layer.cpu_usd_per_hour.is_some() {
            self.cpu_usd_per_hour = layer.cpu_usd_per_hour;
        }
        if layer.gpu_usd_per_hour.is_some() {
            self.gpu_usd_per_hour = layer.gpu_usd_per_hour;
        }
        if layer.max_gpu_jobs.is_some() {
            self.max_gpu_jobs = layer.max_gpu_jobs;
        }
        if layer.profiles_dir.is_some() {
            self.profiles_dir = layer.profiles_dir.clone();
        }
        if let Some(b) = &layer.backends {
            self.backends = self.backends.apply(b);
        }
        if let Some(w) = &layer.webhooks {
            self.webhooks = self.webhooks.clone().apply(w);
        }
        if let Some(a) = &layer.auth {
            self.auth = self.auth.clone().apply(a);
        }
        if let Some(t) = &layer.tls {
            if t.cert_file.is_some() {
                self.tls.cert_file = t.cert_file.clone();
            }
            if t.key_file.is_some() {
                self.tls.key_file = t.key_file.clone();
            }
        }
        self
    }

    /// Checks every value once, so the rest of the daemon can trust them.
    pub fn validate(self) -> Result<Self, ConfigError> {
        let finite_positive = |key, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key,
                    reason: format!("must be a positive number, got {v}"),
                })
            }
        };
        finite_positive("max_duration_s", self.max_duration_s)?;
        finite_positive("drain_deadline_s", self.drain_deadline_s)?;
        if self.max_queued_jobs == 0 {
            return Err(ConfigError::Invalid {
                key: "max_queued_jobs",
                reason: "must be >= 1".into(),
            });
        }
        for (key, rate) in [
            ("cpu_usd_per_hour", self.cpu_usd_per_hour),
            ("gpu_usd_per_hour", self.gpu_usd_per_hour),
        ] {
            if let Some(v) = rate {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(ConfigError::Invalid {
                        key,
                        reason: format!("must be >= 0, got {v}"),
                    });
                }
            }
        }
        if self.max_cpu_jobs == 0 || self.max_cpu_jobs > MAX_SLOTS {
            return Err(ConfigError::Invalid {
                key: "max_cpu_jobs",
                reason: format!("must be 1..={MAX_SLOTS}, got {}", self.max_cpu_jobs),
            });
        }
        if let Some(n) = self.max_gpu_jobs.filter(|&n| n > MAX_SLOTS) {
            return Err(ConfigError::Invalid {
                key: "max_gpu_jobs",
                reason: format!("must be 0..={MAX_SLOTS}, got {n}"),
            });
        }
        if self.max_job_attempts == 0 {
            return Err(ConfigError::Invalid {
                key: "max_job_attempts",
                reason: "must be >= 1".into(),
            });
        }
        if self.plan_ttl_s == 0 {
            return Err(ConfigError::Invalid {
                key: "plan_ttl_s",
                reason: "must be >= 1".into(),
            });
        }
        if self.grpc_addr == self.http_addr && self.grpc_addr.port() != 0 {
            return Err(ConfigError::Invalid {
                key: "http_addr",
                reason: format!("must differ from grpc_addr ({})", self.grpc_addr),
            });
        }
        self.validate_integrations()
    }

    /// Backends, webhooks, auth and TLS; without auth the gRPC port must be loopback, since
    /// every caller would otherwise act as the one default tenant.
    fn validate_integrations(mut self) -> Result<Self, ConfigError> {
        self.backends = self.backends.validate()?;
        self.webhooks = self.webhooks.validate()?;
        self.auth = self.auth.validate()?;
        crate::auth::settings::tls_from_layer(&self.tls)?;
        if !self.auth.enabled() && !self.grpc_addr.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "grpc_addr",
                reason: format!(
                    "{} is not a loopback address and no [auth] is configured: without auth \
                     aiprodd serves loopback only (add auth.api_keys or auth.jwks_file)",
                    self.grpc_addr
                ),
            });
        }
        Ok(self)
    }
}

/// A secret (API key, token, signing secret): compared and cloned like a string, never
/// printed — its Debug output is a mask, so `--print-config` and logs cannot leak it.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends or checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_validate() {
        let file = ConfigLayer::from_toml(
            "max_duration_s = 30.0\ncpu_usd_per_hour = 0.5\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let flags = ConfigLayer {
            cpu_usd_per_hour: Some(0.25),
            ..Default::default()
        };
        let cfg = Config::default()
            .apply(&file)
            .apply(&flags)
            .validate()
            .unwrap();
        assert_eq!(cfg.max_duration_s, 30.0);
        assert_eq!(cfg.cpu_usd_per_hour, Some(0.25));
    }

    #[test]
    fn unknown_key_and_bad_value_name_the_key() {
        let err = ConfigLayer::from_toml("max_duraton_s = 1", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("max_duraton_s"), "{err}");
        let bad = ConfigLayer {
            max_cpu_jobs: Some(0),
            ..Default::default()
        };
        let err = Config::default().apply(&bad).validate().unwrap_err();
        assert!(err.to_string().contains("max_cpu_jobs"), "{err}");
        let bad = ConfigLayer {
            max_gpu_jobs: Some(1000),
            ..Default::default()
        };
        let err = Config::default().apply(&bad).validate().unwrap_err();
        assert!(err.to_string().contains("max_gpu_jobs"), "{err}");
    }

    #[test]
    fn slots_per_engine_kind_and_the_old_key() {
        let file =
            ConfigLayer::from_toml("max_cpu_jobs = 3\nmax_gpu_jobs = 0\n", Path::new("x.toml"))
                .unwrap();
        let cfg = Config::default().apply(&file).validate().unwrap();
        assert_eq!((cfg.max_cpu_jobs, cfg.max_gpu_jobs), (3, Some(0)));
        // Unset: GPU slots follow the GPUs found at start.
        assert_eq!(Config::default().max_gpu_jobs, None);
        // Config files written before GPU slots keep working.
        let old = ConfigLayer::from_toml("max_concurrent_jobs = 2\n", Path::new("x.toml")).unwrap();
        assert_eq!(Config::default().apply(&old).max_cpu_jobs, 2);
    }
}
