//! Builds and runs the GStreamer pipelines of a job: the local backend's footage render and the
//! processing stage (decode → scale → frame rate → encode to a resolution profile).
//!
//! Everything here is blocking; the daemon calls it from `tokio::task::spawn_blocking`. Each call
//! builds its own pipeline, so calls may run concurrently. Outputs are written to
//! `out.with_extension("partial")` and renamed into place only after a clean EOS, so a crash or a
//! cancellation never leaves a half-written file under the final name.

mod elements;
mod look;
mod process;
mod qc;
mod range;
mod render;
mod runner;
mod validate;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use look::Look;
pub use process::{
    process, process_job, process_upscaled, process_with, Processed, UpscaleSpec, UpscaleStats,
};
pub use render::{render_local, render_local_with};

/// What the local backend renders: footage for `prompt`, deterministic per `prompt` + `seed`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RenderSpec {
    pub prompt: String,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    pub duration_s: f64,
}

/// A progress report, sent about every [`RunLimits::progress_interval`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// 0..=1; 0 while the total is not yet known.
    pub fraction: f64,
    /// Video frames that reached the encoder.
    pub frames_done: u64,
    /// Average encoder throughput since the start of the stage.
    pub frames_per_s: f64,
}

/// What a finished stage measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageStats {
    /// Video frames encoded.
    pub frames: u64,
    pub wall_s: f64,
    pub frames_per_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Container {
    /// ISO MP4 (mp4mux), written with faststart (moov first).
    Mp4,
    /// QuickTime (qtmux).
    Mov,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VideoFormat {
    /// H.264 High, 8-bit 4:2:0 (SOCIAL, WEB).
    H264Yuv420p8,
    /// H.264 High 4:2:2, 10-bit, limited ("broadcast-safe") range (BROADCAST).
    H264Yuv422p10,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AudioFormat {
    Aac {
        bitrate_bps: u32,
    },
    /// Signed 24-bit little-endian PCM; MOV only.
    PcmS24le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ScaleMethod {
    Lanczos,
    /// Catmull-Rom cubic.
    Bicubic,
    Bilinear,
    Nearest,
}

/// The encoded output of the processing stage (one resolution profile).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputSpec {
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    pub container: Container,
    pub video: VideoFormat,
    pub video_bitrate_bps: u64,
    pub audio: AudioFormat,
    pub audio_rate_hz: u32,
    pub audio_channels: u32,
    pub scale: ScaleMethod,
}

/// How long a run may wait and how often it reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunLimits {
    /// Fail when no frame reaches the encoder for this long (a wedged decoder or a stuck sink).
    pub stall_timeout: Duration,
    /// Bus poll period: the upper bound on how late a cancellation is noticed.
    pub poll_interval: Duration,
    /// How often `on_progress` is called.
    pub progress_interval: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            stall_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(100),
            progress_interval: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GStreamer is not usable: {0}")]
    Init(String),
    #[error("cannot build the pipeline at {element}: {reason}")]
    Build { element: String, reason: String },
    #[error("{source_element}: {message}{}", debug.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Stream {
        source_element: String,
        message: String,
        debug: Option<String>,
    },
    /// A sink could not write for lack of space (ENOSPC): the run fails and its partial file is
    /// removed; `path` is the file being written.
    #[error("no space left on device while writing {}", path.display())]
    NoSpace { path: PathBuf },
    #[error("{}: not a media file GStreamer can read: {reason}", path.display())]
    NotMedia { path: PathBuf, reason: String },
    #[error(
        "no frame was produced for {stalled_s:.0} s (stall timeout); last at {frames_done} frames"
    )]
    Stalled { stalled_s: f64, frames_done: u64 },
    #[error("cancelled")]
    Cancelled,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {field}: {reason}")]
    InvalidSpec { field: &'static str, reason: String },
}

/// Initialises GStreamer (idempotent) and checks that every element the pipelines use is installed;
/// the error names each missing element with the plugin and the Debian package that ships it.
pub fn init() -> Result<(), PipelineError> {
    gstreamer::init().map_err(|e| PipelineError::Init(e.to_string()))?;
    let missing = elements::missing();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PipelineError::Init(format!(
            "missing elements: {}",
            missing.join("; ")
        )))
    }
}
