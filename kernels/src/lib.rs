//! aiprod's own GPU compute kernels on wgpu (Vulkan, Metal, DX12; lavapipe in CI).
//!
//! One [`Context`] per process: the adapter is chosen once (discrete > integrated > software,
//! overridable with `AIPROD_WGPU_ADAPTER`), compute pipelines are compiled once and cached by
//! name, and storage buffers come from a pool so that frames stay on the device between kernels.
//! Every kernel lives in one `.wgsl` file under `shaders/` and has a plain CPU reference in Rust
//! (`cpu` submodule of its module) that the tests compare it with.

pub mod context;
pub mod error;

pub use context::{
    adapters, test_context, AdapterChoice, AdapterKind, AdapterSummary, Batch, Context,
    ContextOptions, PooledBuffer,
};
pub use error::{KernelError, Result};
