//! aiprod-models: Real-ESRGAN for aiprod. The registry of official models (registry.toml,
//! sha256-pinned), import of the official ncnn exports, ONNX export, inference through ONNX
//! Runtime, and tiling that keeps memory bounded without changing the result.
//!
//! ```no_run
//! use aiprod_models::{Upscaler, UpscalerConfig};
//! # fn main() -> aiprod_models::Result<()> {
//! let mut up = Upscaler::new(&UpscalerConfig::new("realesr-animevideov3", 4))?;
//! let rgb = vec![0u8; 64 * 48 * 3];
//! let out = up.upscale_rgb8(&rgb, 64, 48)?; // 256x192 RGB
//! # Ok(()) }
//! ```

pub mod error;
pub mod fetch;
pub mod frame;
pub mod ncnn;
pub mod network;
pub mod onnx;
pub mod registry;
pub mod runtime;
pub mod tiling;
pub mod upscaler;
pub mod wgpu_engine;

pub use error::{ModelError, Result};
pub use frame::{FrameMut, FrameRef, PixelFormat};
pub use registry::{ModelSpec, ModelStore, Precision, Registry};
pub use runtime::{Device, Provider, SessionOptions};
pub use tiling::Tiling;
pub use upscaler::{Accelerator, Engine, Upscaler, UpscalerConfig};
