//! ONNX Runtime (the `ort` crate, loading libonnxruntime at run time): finding the library,
//! choosing an execution provider (TensorRT, then CUDA, when a GPU build and a GPU are there; CPU
//! otherwise) and a session that owns one model and runs one tile at a time.

use std::path::{Path, PathBuf};

use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{ModelError, Result};
use crate::onnx::{INPUT_NAME, OUTPUT_NAME};
use crate::registry::Precision;

/// Where `ort` looks for libonnxruntime (the onnxruntime wheel's copy, see scripts/setup-models.sh).
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The ONNX Runtime library path from [`ORT_DYLIB_ENV`], checked to exist, so a missing library is
/// a clear error instead of a panic inside `ort`.
pub fn ort_dylib_path() -> Result<PathBuf> {
    let path = std::env::var_os(ORT_DYLIB_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| ModelError::RuntimeMissing {
            reason: format!("{ORT_DYLIB_ENV} is not set"),
        })?;
    if !path.is_file() {
        return Err(ModelError::RuntimeMissing {
            reason: format!("{ORT_DYLIB_ENV}={} is not a file", path.display()),
        });
    }
    Ok(path)
}

/// ONNX Runtime allows one environment per process, ever (`ort` refuses a second build even after
/// the first is dropped), so it is created once and shared by every session of the process.
static ENVIRONMENT: std::sync::Mutex<Option<ort::environment::Environment>> =
    std::sync::Mutex::new(None);

/// Loads ONNX Runtime on first use and returns the process's environment.
pub fn environment() -> Result<ort::environment::Environment> {
    // a panic while holding the lock leaves a usable value (an Option), so poisoning is ignored
    let mut guard = ENVIRONMENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = guard.as_ref() {
        return Ok(env.clone());
    }
    let path = ort_dylib_path()?;
    let env = ort::init_from(&path)
        .map_err(|e| ModelError::RuntimeMissing {
            reason: e.to_string(),
        })?
        .with_name("aiprod")
        .build()
        .map_err(|e| ModelError::ort("creating the environment", e))?;
    *guard = Some(env.clone());
    Ok(env)
}

/// The execution providers this process's ONNX Runtime can register, best first (TensorRT, CUDA,
/// then always CPU). Each GPU provider is compiled-in checked and then registered on an empty
/// session builder, which loads its library and what that needs (CUDA, cuDNN, TensorRT), so an
/// onnxruntime-gpu build on a machine without the CUDA libraries is not counted. Whether a GPU is
/// present is not checked here: the caller pairs this with the GPUs it found. Loads ONNX Runtime
/// (see [`environment`]); errors only when that fails.
pub fn registrable_providers() -> Result<Vec<Provider>> {
    let env = environment()?;
    let mut found = Vec::with_capacity(3);
    for provider in [Provider::TensorRt, Provider::Cuda] {
        let compiled_in = match provider {
            Provider::TensorRt => ep::TensorRT::is_available(),
            _ => ep::CUDA::is_available(),
        }
        .map_err(|e| ModelError::ort("querying execution providers", e))?;
        if !compiled_in {
            continue;
        }
        let builder = Session::builder(&env)
            .map_err(|e| ModelError::ort("session builder (provider check)", e))?;
        let dispatch = match provider {
            Provider::TensorRt => ep::TensorRT::default().build().error_on_failure(),
            _ => ep::CUDA::default().build().error_on_failure(),
        };
        match builder.with_execution_providers([dispatch]) {
            Ok(_) => found.push(provider),
            Err(e) => tracing::info!(
                provider = provider.as_str(),
                error = %e,
                "execution provider compiled in but not usable"
            ),
        }
    }
    found.push(Provider::Cpu);
    Ok(found)
}

/// Which hardware runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// TensorRT, then CUDA, then CPU: the first that works.
    Auto,
    Cpu,
    Cuda {
        device_id: i32,
    },
    TensorRt {
        device_id: i32,
    },
}

impl std::str::FromStr for Device {
    type Err = ModelError;

    /// `auto`, `cpu`, `cuda`, `cuda:1`, `tensorrt`, `tensorrt:0`.
    fn from_str(s: &str) -> Result<Self> {
        let (kind, id) = match s.split_once(':') {
            Some((k, id)) => (
                k,
                id.parse::<i32>()
                    .ok()
                    .filter(|&i| i >= 0)
                    .ok_or_else(|| ModelError::InvalidSetting(format!("device id in {s:?}")))?,
            ),
            None => (s, 0),
        };
        match kind.to_ascii_lowercase().as_str() {
            "auto" if id == 0 => Ok(Device::Auto),
            "cpu" if id == 0 => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda { device_id: id }),
            "tensorrt" | "trt" => Ok(Device::TensorRt { device_id: id }),
            _ => Err(ModelError::InvalidSetting(format!(
                "device {s:?} (expected auto, cpu, cuda[:N] or tensorrt[:N])"
            ))),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda { device_id } => write!(f, "cuda:{device_id}"),
            Device::TensorRt { device_id } => write!(f, "tensorrt:{device_id}"),
        }
    }
}

/// The execution provider a session ended up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
}

impl Provider {
    pub fn is_gpu(self) -> bool {
        !matches!(self, Provider::Cpu)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        }
    }
}

/// `AIPROD_ORT_CUDA_NHWC=1` makes the CUDA provider prefer NHWC kernels (tensor-core friendly
/// layouts); off by default until measured better on the cards we run.
fn cuda_prefer_nhwc() -> bool {
    std::env::var("AIPROD_ORT_CUDA_NHWC").is_ok_and(|v| v == "1")
}

/// How a session is built.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOptions {
    pub device: Device,
    /// Intra-op threads on CPU; 0 = ONNX Runtime's default (one per core).
    pub threads: usize,
    /// Where TensorRT caches built engines (rebuilding takes minutes); None = no cache.
    pub trt_cache_dir: Option<PathBuf>,
    /// None: fp16 on GPUs (the fp16 model on CUDA, an fp16 engine on TensorRT), fp32 on CPU.
    /// Some: that precision wherever it runs (fp32 on a GPU for exact results; fp16 on the CPU
    /// only to check the GPU model).
    pub precision: Option<Precision>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            device: Device::Auto,
            threads: 0,
            trt_cache_dir: None,
            precision: None,
        }
    }
}

/// The model files a session can be built from: fp32 for CPU and TensorRT (which makes its own
/// fp16 engine), fp16 for CUDA.
pub struct ModelFiles<'a> {
    pub fp32: &'a Path,
    pub fp16: &'a Path,
}

/// One ONNX model loaded on one execution provider; built once, run for every tile.
pub struct OrtSession {
    session: Session,
    provider: Provider,
    precision: Precision,
    output_channels: usize,
    scale: u32,
}

impl OrtSession {
    /// Builds the session on the requested device. `Auto` falls back silently (logging why);
    /// an explicit GPU device that does not work is an error.
    pub fn open(files: &ModelFiles<'_>, options: &SessionOptions, scale: u32) -> Result<Self> {
        let env = environment()?;
        let candidates: Vec<Provider> = match options.device {
            Device::Auto => vec![Provider::TensorRt, Provider::Cuda, Provider::Cpu],
            Device::Cpu => vec![Provider::Cpu],
            Device::Cuda { .. } => vec![Provider::Cuda],
            Device::TensorRt { .. } => vec![Provider::TensorRt],
        };
        let device_id = match options.device {
            Device::Cuda { device_id } | Device::TensorRt { device_id } => device_id,
            _ => 0,
        };
        let mut last_error = None;
        for provider in candidates {
            let compiled_in = match provider {
                Provider::Cpu => Ok(true),
                Provider::Cuda => ep::CUDA::is_available(),
                Provider::TensorRt => ep::TensorRT::is_available(),
            }
            .map_err(|e| ModelError::ort("querying execution providers", e))?;
            if !compiled_in {
                let reason = format!(
                    "the loaded ONNX Runtime has no {} execution provider (install onnxruntime-gpu)",
                    provider.as_str()
                );
                tracing::debug!(provider = provider.as_str(), "{reason}");
                last_error = Some(ModelError::InvalidSetting(reason));
                continue;
            }
            match Self::build(&env, files, options, provider, device_id, scale) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tracing::warn!(provider = provider.as_str(), error = %e, "execution provider unusable");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| ModelError::InvalidSetting("no execution provider".into())))
    }

    fn build(
        env: &ort::environment::Environment,
        files: &ModelFiles<'_>,
        options: &SessionOptions,
        provider: Provider,
        device_id: i32,
        scale: u32,
    ) -> Result<Self> {
        let ctx = |what: &str| format!("{what} ({} provider)", provider.as_str());
        let mut builder =
            Session::builder(env).map_err(|e| ModelError::ort(ctx("session builder"), e))?;
        if options.threads > 0 {
            builder = builder
                .with_intra_threads(options.threads)
                .map_err(|e| ModelError::ort(ctx("threads"), e.into()))?;
        }
        let wanted = options.precision;
        let (precision, dispatch) = match provider {
            Provider::Cpu => (wanted.unwrap_or(Precision::Fp32), None),
            Provider::Cuda => (
                wanted.unwrap_or(Precision::Fp16),
                Some(
                    ep::CUDA::default()
                        .with_device_id(device_id)
                        // TF32 convolutions differ from fp32 by ~1e-3 (measured on an H100):
                        // an fp32 session computes in fp32
                        .with_tf32(wanted != Some(Precision::Fp32))
                        .with_prefer_nhwc(cuda_prefer_nhwc())
                        .build()
                        .error_on_failure(),
                ),
            ),
            Provider::TensorRt => {
                // TensorRT builds its own fp16 engine from the fp32 model
                let fp16 = wanted != Some(Precision::Fp32);
                let mut trt = ep::TensorRT::default()
                    .with_device_id(device_id)
                    .with_fp16(fp16);
                if let Some(dir) = &options.trt_cache_dir {
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display())
                        .with_timing_cache(true)
                        .with_timing_cache_path(dir.display());
                }
                let precision = if fp16 {
                    Precision::Fp16
                } else {
                    Precision::Fp32
                };
                (precision, Some(trt.build().error_on_failure()))
            }
        };
        if let Some(d) = dispatch {
            builder = builder.with_execution_providers([d]).map_err(|e| {
                ModelError::ort(ctx("registering the execution provider"), e.into())
            })?;
        }
        let path = match (provider, precision) {
            (Provider::TensorRt, _) | (_, Precision::Fp32) => files.fp32,
            (_, Precision::Fp16) => files.fp16,
        };
        let session = builder
            .commit_from_file(path)
            .map_err(|e| ModelError::ort(format!("loading {}", path.display()), e))?;
        if session.inputs().first().map(|o| o.name()) != Some(INPUT_NAME)
            || session.outputs().first().map(|o| o.name()) != Some(OUTPUT_NAME)
        {
            return Err(ModelError::InvalidSetting(format!(
                "{} is not an aiprod Real-ESRGAN export (expects input {INPUT_NAME:?} and output {OUTPUT_NAME:?})",
                path.display()
            )));
        }
        tracing::info!(model = %path.display(), provider = provider.as_str(), "ONNX Runtime session ready");
        Ok(Self {
            session,
            provider,
            precision,
            output_channels: 3,
            scale,
        })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Runs the network on one planar RGB tile (`3 × height × width`); returns `3 × sH × sW`.
    pub fn run(&mut self, input: &[f32], width: u32, height: u32) -> Result<Vec<f32>> {
        let (w, h) = (width as usize, height as usize);
        if input.len() != 3 * w * h {
            return Err(ModelError::InvalidImage(format!(
                "tile tensor has {} values, {width}x{height} needs {}",
                input.len(),
                3 * w * h
            )));
        }
        let tensor = TensorRef::from_array_view(([1usize, 3, h, w], input))
            .map_err(|e| ModelError::ort("input tensor", e))?;
        let outputs = self
            .session
            .run(ort::inputs![INPUT_NAME => tensor])
            .map_err(|e| ModelError::ort(format!("running a {width}x{height} tile"), e))?;
        let (shape, data) = outputs[OUTPUT_NAME]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::ort("output tensor", e))?;
        let s = self.scale as i64;
        let expected = [1, self.output_channels as i64, s * h as i64, s * w as i64];
        if shape[..] != expected[..] {
            return Err(ModelError::InvalidImage(format!(
                "network output shape {shape:?}, expected {expected:?}"
            )));
        }
        Ok(data.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!(
            "cuda:1".parse::<Device>().unwrap(),
            Device::Cuda { device_id: 1 }
        );
        assert_eq!(
            "tensorrt".parse::<Device>().unwrap(),
            Device::TensorRt { device_id: 0 }
        );
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("cpu:2".parse::<Device>().is_err());
        assert!("metal".parse::<Device>().is_err());
        assert_eq!(Device::Cuda { device_id: 2 }.to_string(), "cuda:2");
    }
}
