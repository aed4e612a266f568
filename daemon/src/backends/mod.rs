//! Backends produce the footage for a job. The local backend (embedded default) renders it with
//! GStreamer sources; remote video-generation APIs plug in behind the same trait.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::pipeline;

pub mod local;

/// What a backend is asked to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub prompt: String,
    pub seed: u64,
    pub model: String,
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    pub duration_s: f64,
}

/// What a backend delivered: a media file on local disk plus what the provider billed.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub path: PathBuf,
    /// Seconds of local compute spent (0 for remote backends, whose time is the provider's).
    pub compute_s: f64,
    /// The provider's charge in micro-USD (0 for the local backend).
    pub provider_charge_usd_micros: i64,
    /// The provider's own task id, when there is one.
    pub provider_task_id: String,
    pub frames: u64,
    pub frames_per_s: f64,
}

/// Backend errors name the backend and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend {backend}: {source}")]
    Pipeline {
        backend: &'static str,
        source: pipeline::PipelineError,
    },
    #[error("backend {backend} is not configured on this node")]
    NotConfigured { backend: String },
    #[error("generation was cancelled")]
    Cancelled,
}

/// A source of footage. Calls block (they run on a blocking thread); `cancel` is polled.
pub trait Backend: Send + Sync {
    /// The backend's name as plans and receipts spell it ("local", "runway", ...).
    fn name(&self) -> &'static str;

    /// Generates the footage for `req` into `out` (a file path the backend may create).
    fn generate(
        &self,
        req: &GenerationRequest,
        out: &Path,
        on_progress: &mut dyn FnMut(&pipeline::Progress),
        cancel: &AtomicBool,
    ) -> Result<Generated, BackendError>;
}

/// The backends this node has, by name.
pub struct Backends {
    backends: Vec<Box<dyn Backend>>,
}

impl Backends {
    /// The embedded default: the local renderer only.
    pub fn local_only() -> Self {
        Self {
            backends: vec![Box::new(local::LocalBackend)],
        }
    }

    pub fn get(&self, name: &str) -> Result<&dyn Backend, BackendError> {
        self.backends
            .iter()
            .find(|b| b.name() == name)
            .map(|b| b.as_ref())
            .ok_or_else(|| BackendError::NotConfigured {
                backend: name.to_string(),
            })
    }

    /// Names of the configured backends, as the planner takes them.
    pub fn names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name()).collect()
    }
}
