//! aiprod quality: a native, ffprobe-compatible media probe (GStreamer Discoverer, no ffprobe
//! process). Names follow ffprobe's (`format_name`, `codec_name`, `pix_fmt`) so a probe can be
//! compared field by field with `ffprobe -show_format -show_streams`.

mod names;
pub mod probe;
pub mod qc;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gst_pbutils::prelude::*;
use gstreamer as gst;
use gstreamer_pbutils as gst_pbutils;

pub use names::{audio_codec_name, container_format_name, pixel_format, video_codec_name};
pub use probe::{FormatError, ProbeOptions};

/// How long a probe may take before it fails with [`ProbeError::Timeout`]: long enough for a
/// large file on a slow network mount, short enough to keep a stuck probe from holding a worker.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The facts of a media file that the daemon validates, with ffprobe's names and units.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeSummary {
    /// ffprobe `format.format_name`, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    pub container: String,
    /// ffprobe `codec_name` of the first video stream, e.g. "h264".
    pub video_codec: String,
    pub width: u32,
    pub height: u32,
    /// Container duration, like ffprobe `format.duration`.
    pub duration_s: f64,
    /// Like ffprobe `format.bit_rate`: size × 8 / duration, truncated.
    pub bitrate_bps: u64,
    /// Frame rate of the first video stream (ffprobe `r_frame_rate`).
    pub fps: f64,
    /// ffprobe `pix_fmt`, e.g. "yuv420p", "yuv422p10le".
    pub pixel_format: String,
    /// ffprobe `codec_name` of the first audio stream ("aac", "pcm_s24le"); "" when none.
    pub audio_codec: String,
    pub audio_sample_rate_hz: u32,
    pub audio_channels: u32,
    pub size_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("GStreamer is not usable: {0}")]
    Init(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a media file GStreamer can read: {reason}", path.display())]
    NotMedia { path: PathBuf, reason: String },
    #[error("{}: no video stream", path.display())]
    NoVideo { path: PathBuf },
    #[error("{}: probe timed out after {} s", path.display(), after.as_secs_f64())]
    Timeout { path: PathBuf, after: Duration },
    #[error("{}: {source}", path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
}

/// `ffprobe -v error -print_format json -show_format -show_streams PATH` without ffprobe: the
/// same fields, order and value formats, from our own container and codec-header parsers.
/// `filename` in the output is `path` as given, like ffprobe's.
pub fn probe_json(path: &Path, opts: &ProbeOptions) -> Result<serde_json::Value, ProbeError> {
    probe_json_named(path, &path.display().to_string(), opts)
}

/// [`probe_json`] printing `filename` as `format.filename` (the path as the user gave it, when
/// the file is opened by another name, e.g. made absolute for a daemon).
pub fn probe_json_named(
    path: &Path,
    filename: &str,
    opts: &ProbeOptions,
) -> Result<serde_json::Value, ProbeError> {
    let meta = std::fs::metadata(path).map_err(|source| ProbeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ProbeError::NotMedia {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    probe::probe_path(path, filename, opts).map_err(|source| match source {
        FormatError::Io { reason, .. } => ProbeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(reason),
        },
        source => ProbeError::Malformed {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Probes `path` with [`DEFAULT_PROBE_TIMEOUT`].
pub fn probe_summary(path: &Path) -> Result<ProbeSummary, ProbeError> {
    probe_summary_with_timeout(path, DEFAULT_PROBE_TIMEOUT)
}

pub fn probe_summary_with_timeout(
    path: &Path,
    timeout: Duration,
) -> Result<ProbeSummary, ProbeError> {
    gst::init().map_err(|e| ProbeError::Init(e.to_string()))?;
    let io = |source| ProbeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let absolute = path.canonicalize().map_err(io)?;
    let metadata = std::fs::metadata(&absolute).map_err(io)?;
    if !metadata.is_file() {
        return Err(ProbeError::NotMedia {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let not_media = |reason: String| ProbeError::NotMedia {
        path: path.to_path_buf(),
        reason,
    };
    let uri = gst::glib::filename_to_uri(&absolute, None).map_err(|e| not_media(e.to_string()))?;
    let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_nseconds(timeout_ns))
        .map_err(|e| ProbeError::Init(e.to_string()))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| not_media(e.to_string()))?;
    match info.result() {
        gst_pbutils::DiscovererResult::Ok => {}
        gst_pbutils::DiscovererResult::Timeout => {
            return Err(ProbeError::Timeout {
                path: path.to_path_buf(),
                after: timeout,
            })
        }
        gst_pbutils::DiscovererResult::MissingPlugins => {
            let missing: Vec<String> = info
                .missing_elements_installer_details()
                .iter()
                .map(|s| s.to_string())
                .collect();
            return Err(not_media(format!(
                "missing plugins: {}",
                missing.join(", ")
            )));
        }
        other => return Err(not_media(format!("discovery failed ({other:?})"))),
    }

    let video = info
        .video_streams()
        .into_iter()
        .next()
        .ok_or_else(|| ProbeError::NoVideo {
            path: path.to_path_buf(),
        })?;
    let video_caps = video.caps();
    let video_structure = video_caps.as_ref().and_then(|c| c.structure(0));
    let container = info
        .stream_info()
        .and_then(|s| s.caps())
        .and_then(|c| c.structure(0).map(container_format_name))
        .unwrap_or_default();
    let audio = info.audio_streams().into_iter().next();
    let audio_codec = audio
        .as_ref()
        .and_then(|a| a.caps())
        .and_then(|c| c.structure(0).map(audio_codec_name))
        .unwrap_or_default();

    let duration_s = info.duration().map_or(0.0, |d| d.nseconds() as f64 / 1e9);
    let size_bytes = metadata.len();
    let bitrate_bps = if duration_s > 0.0 {
        (size_bytes as f64 * 8.0 / duration_s) as u64
    } else {
        0
    };
    let framerate = video.framerate();
    let fps = if framerate.denom() > 0 {
        f64::from(framerate.numer()) / f64::from(framerate.denom())
    } else {
        0.0
    };
    Ok(ProbeSummary {
        container,
        video_codec: video_structure.map(video_codec_name).unwrap_or_default(),
        width: video.width(),
        height: video.height(),
        duration_s,
        bitrate_bps,
        fps,
        pixel_format: video_structure.map(pixel_format).unwrap_or_default(),
        audio_codec,
        audio_sample_rate_hz: audio.as_ref().map_or(0, |a| a.sample_rate()),
        audio_channels: audio.as_ref().map_or(0, |a| a.channels()),
        size_bytes,
    })
}
