//! aiprod's own GPU compute kernels on wgpu (Vulkan, Metal, DX12; lavapipe in CI).
//!
//! One [`Context`] per process: the adapter is chosen once (discrete > integrated > software,
//! overridable with `AIPROD_WGPU_ADAPTER`), compute pipelines are compiled once and cached by
//! name, and storage buffers come from a pool so that frames stay on the device between kernels.
//! Every kernel lives in one `.wgsl` file under `shaders/` and has a plain CPU reference in Rust
//! (`cpu` submodule of its module) that the tests compare it with.

pub mod colour;
pub mod context;
pub mod conv;
pub mod error;
pub mod interp;
pub mod metrics;
pub mod resize;
pub mod shuffle;
pub mod srvgg;

pub use context::{
    adapters, bench_context, gpu_present, random_f32, test_context, AdapterChoice, AdapterKind,
    AdapterSummary, Batch, Context, ContextOptions, PooledBuffer,
};
pub use error::{KernelError, Result};
