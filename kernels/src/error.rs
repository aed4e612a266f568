//! The kernel layer's one error type.

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No adapter, or none matching the requested choice; says what was found.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("could not open the device on adapter {adapter}: {reason}")]
    DeviceRequest { adapter: String, reason: String },
    /// A validation or out-of-memory error reported by the device, or a lost device.
    #[error("GPU device error: {0}")]
    Device(String),
    /// A request the kernels cannot take (sizes, lengths, limits); names what was wrong.
    #[error("invalid kernel input: {0}")]
    InvalidInput(String),
    /// A buffer larger than the adapter allows, refused before allocating.
    #[error("{what} needs {needed_bytes} bytes, the adapter allows {limit_bytes} per buffer")]
    TooLarge {
        what: String,
        needed_bytes: u64,
        limit_bytes: u64,
    },
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;
