//! Quality control: FFmpeg-equivalent metrics (blackdetect, freezedetect, blurdetect,
//! silencedetect, ebur128, psnr, ssim) as pure detectors ([`video`], [`blur`], [`audio`]), and file-level analysis that decodes once
//! with GStreamer ([`decode`]) and runs every detector on the same frames.

pub mod audio;
pub mod blur;
pub mod decode;
pub mod fidelity;
pub mod gpu;
pub mod video;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

pub use audio::{Loudness, LoudnessMeter, SilenceDetector};
pub use blur::{Blur, BlurConfig, BlurDetector};
pub use gpu::{EngineChoice, FrameMeter, PairMeter, QcEngine};
pub use video::{BlackDetector, Fidelity, FidelityAccumulator, Frame, FreezeDetector, Segment};

#[derive(Debug, thiserror::Error)]
pub enum QcError {
    #[error("decoding failed: {0}")]
    Decode(String),
    #[error("{}: no video frames decoded", .0.display())]
    NoFrames(PathBuf),
    #[error("frame sizes differ: {main} vs reference {reference}")]
    SizeMismatch { main: String, reference: String },
    /// The engine setting ([`gpu::ENGINE_ENV`]) is unknown, or asks for wgpu where none is.
    #[error("QC engine: {0}")]
    Engine(String),
    #[error("GPU metrics (AIPROD_QC_ENGINE=cpu avoids the GPU): {0}")]
    Gpu(#[from] aiprod_kernels::KernelError),
}

/// Detector settings; the defaults are FFmpeg's filter defaults.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QcConfig {
    pub black_min_duration_s: f64,
    pub freeze_noise_db: f64,
    pub freeze_min_duration_s: f64,
    pub silence_noise_db: f64,
    pub silence_min_duration_s: f64,
    /// blurdetect settings; None skips the blur measure (it costs more than the other video
    /// detectors together).
    #[serde(default)]
    pub blur: Option<BlurConfig>,
}

impl Default for QcConfig {
    fn default() -> Self {
        QcConfig {
            black_min_duration_s: 2.0,
            freeze_noise_db: -60.0,
            freeze_min_duration_s: 2.0,
            silence_noise_db: -60.0,
            silence_min_duration_s: 2.0,
            blur: Some(BlurConfig::default()),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QcReport {
    pub video_frames: u64,
    /// Timestamp of the last frame, seconds.
    pub last_pts_s: f64,
    pub black: Vec<Segment>,
    pub frozen: Vec<Segment>,
    pub silence: Vec<Segment>,
    pub loudness: Option<Loudness>,
    pub audio_seconds: f64,
    /// blurdetect over the video frames (None when not measured).
    pub blur: Option<Blur>,
}

struct Detectors {
    cfg: QcConfig,
    black: BlackDetector,
    freeze: FreezeDetector,
    blur: Option<BlurDetector>,
    silence: Option<SilenceDetector>,
    loudness: Option<LoudnessMeter>,
    report: QcReport,
    audio_frames: u64,
    audio_rate: u32,
    /// Black/freeze measurement on the chosen engine, and its first failure.
    frame_meter: FrameMeter,
    meter_error: Option<QcError>,
}

/// Decodes `path` once and runs every detector on it.
pub fn analyze_file(path: &Path, cfg: &QcConfig) -> Result<QcReport, QcError> {
    analyze_file_with(path, cfg, &QcEngine::from_env()?)
}

/// [`analyze_file`] with the per-frame video metrics on `engine`.
pub fn analyze_file_with(
    path: &Path,
    cfg: &QcConfig,
    engine: &QcEngine,
) -> Result<QcReport, QcError> {
    let state = Arc::new(Mutex::new(Detectors {
        cfg: cfg.clone(),
        black: BlackDetector::with_defaults(cfg.black_min_duration_s),
        freeze: FreezeDetector::new(cfg.freeze_noise_db, cfg.freeze_min_duration_s),
        blur: cfg.blur.clone().map(BlurDetector::new),
        silence: None,
        loudness: None,
        report: QcReport::default(),
        audio_frames: 0,
        audio_rate: 0,
        frame_meter: FrameMeter::new(engine),
        meter_error: None,
    }));
    let (sv, sa) = (state.clone(), state.clone());
    decode::decode(
        path,
        Some(Box::new(move |decoded: decode::DecodedFrame| {
            let (Ok(mut d), Some(f)) = (sv.lock(), decoded.view()) else {
                return;
            };
            let pts = decoded.pts_s;
            let d = &mut *d;
            if d.meter_error.is_none() {
                let measured = d.frame_meter.push(&f, pts, &mut d.black, &mut d.freeze);
                d.meter_error = measured.err();
            }
            if let Some(b) = d.blur.as_mut() {
                b.push(&f);
            }
            d.report.video_frames += 1;
            d.report.last_pts_s = pts;
        })),
        Some(Box::new(move |a: &decode::AudioChunk| {
            if let Ok(mut d) = sa.lock() {
                if d.silence.is_none() {
                    let (noise, min) = (d.cfg.silence_noise_db, d.cfg.silence_min_duration_s);
                    d.silence = Some(SilenceDetector::new(noise, min, a.rate, a.channels));
                    d.loudness = Some(LoudnessMeter::new(a.channels as u32, a.rate));
                    d.audio_rate = a.rate;
                }
                if let Some(s) = d.silence.as_mut() {
                    s.push(a.samples);
                }
                if let Some(l) = d.loudness.as_mut() {
                    l.push(a.samples);
                }
                d.audio_frames += (a.samples.len() / a.channels) as u64;
            }
        })),
    )?;
    let mut d = state
        .lock()
        .map_err(|_| QcError::Decode("detector state poisoned".into()))?;
    if let Some(e) = d.meter_error.take() {
        return Err(e);
    }
    let mut report = d.report.clone();
    report.black = d.black.finish();
    report.frozen = d.freeze.finish();
    report.blur = d.blur.as_ref().map(BlurDetector::result);
    report.silence = d.silence.as_mut().map(|s| s.finish()).unwrap_or_default();
    report.loudness = d.loudness.as_ref().and_then(|l| l.result());
    if d.audio_rate > 0 {
        report.audio_seconds = d.audio_frames as f64 / f64::from(d.audio_rate);
    }
    Ok(report)
}

/// Frames buffered per decoder while the metrics catch up: bounds memory to a few frames.
const FRAME_QUEUE: usize = 4;

/// PSNR and SSIM of `main` against `reference`, frame by frame, both decoded concurrently (like
/// `ffmpeg -i main -i reference -lavfi "ssim;[0:v][1:v]psnr"`).
pub fn compare_files(main: &Path, reference: &Path) -> Result<Fidelity, QcError> {
    compare_files_with(main, reference, &QcEngine::from_env()?)
}

/// [`compare_files`] with the per-frame metrics on `engine`.
pub fn compare_files_with(
    main: &Path,
    reference: &Path,
    engine: &QcEngine,
) -> Result<Fidelity, QcError> {
    let spawn = |p: PathBuf| {
        let (tx, rx) = mpsc::sync_channel::<decode::DecodedFrame>(FRAME_QUEUE);
        let handle = std::thread::spawn(move || {
            decode::decode(
                &p,
                Some(Box::new(move |f: decode::DecodedFrame| {
                    let _ = tx.send(f);
                })),
                None,
            )
        });
        (rx, handle)
    };
    let (rx_main, h_main) = spawn(main.to_path_buf());
    let (rx_ref, h_ref) = spawn(reference.to_path_buf());
    let mut acc = FidelityAccumulator::default();
    let mut meter = PairMeter::new(engine);
    let mut mismatch = None;
    for (a, b) in rx_main.iter().zip(rx_ref.iter()) {
        let (Some(a), Some(b)) = (a.view(), b.view()) else {
            continue;
        };
        if (a.width, a.height) != (b.width, b.height) {
            mismatch = Some(QcError::SizeMismatch {
                main: format!("{}x{}", a.width, a.height),
                reference: format!("{}x{}", b.width, b.height),
            });
            break;
        }
        if let Err(e) = meter.push(&a, &b, &mut acc) {
            mismatch = Some(e);
            break;
        }
    }
    // Drain so both decoders can finish.
    drop(rx_main);
    drop(rx_ref);
    let r1 = h_main
        .join()
        .map_err(|_| QcError::Decode("decoder thread panicked".into()))?;
    let r2 = h_ref
        .join()
        .map_err(|_| QcError::Decode("decoder thread panicked".into()))?;
    if let Some(e) = mismatch {
        return Err(e);
    }
    // A receiver dropped early makes the decoder see a send error only; real errors surface here.
    r1?;
    r2?;
    if acc.result().frames == 0 {
        return Err(QcError::NoFrames(main.to_path_buf()));
    }
    Ok(acc.result())
}
