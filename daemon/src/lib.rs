//! aiprod daemon library: everything `aiprodd` and `aiprodctl` are built from. The binaries are
//! thin; the layers here follow DESIGN.md: control → jobs → (planner) → backends → pipeline →
//! jobs (receipt) → telemetry.

pub mod auth;
pub mod backends;
pub mod config;
pub mod control;
pub mod dashboard;
pub mod jobs;
pub mod node;
pub mod pipeline;
pub mod server;
pub mod telemetry;
pub mod webhooks;

/// Generated gRPC types and service for `aiprod.v1` (proto/aiprod/v1/control.proto).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("aiprod.v1");
    include!(concat!(env!("OUT_DIR"), "/aiprod.v1.serde.rs"));

    /// Encoded descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("aiprod_descriptor");
}

/// Milliseconds since the Unix epoch, the time unit of the API and the store.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
