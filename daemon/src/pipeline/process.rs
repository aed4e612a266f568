//! The processing stage: decode an input file and encode it to a resolution profile.
//!
//! ```text
//! filesrc ! decodebin ─video→ queue ! videorate ! fps ! videoconvertscale(method, add-borders)
//!                             ! W×H,format ! queue ! x264enc ! h264 profile ! queue ! mux ! filesink
//!                     ─audio→ queue ! audioconvert ! audioresample ! rate,channels ! [aacenc] ! queue ! mux
//! (no audio in the input: audiotestsrc wave=silence of the video's length instead)
//! ```
//!
//! The input is discovered first (Discoverer), so a file that is not media fails with a clear
//! error naming it before any pipeline exists, and whether to add silence is known up front.
//!
//! With an [`UpscaleSpec`] (plans whose upscale step is Real-ESRGAN), the frames go through
//! `videoconvert ! RGB ! aiprodupscale ! queue` (gst-plugin-aiprod) after the frame rate and
//! before the scale, which then only fits the upscaled frame to the profile; the queues let
//! decode, upscale and encode run at the same time.
//!
//! On a node with a real GPU adapter (or with `AIPROD_PIPELINE_SCALE=wgpu`), the scale and the
//! colour conversion run on aiprod's wgpu kernels (`videoconvert ! I420|NV12 ! aiprodscale`:
//! resize, and matrix/range conversion to the output's BT.709, on the device) instead of
//! `videoconvertscale`, where that gives the same picture: 8-bit 4:2:0 outputs (10-bit 4:2:2
//! BROADCAST outputs keep videoconvertscale), Lanczos or bicubic, and a source whose display
//! aspect ratio equals the output's (aiprodscale adds no borders). `AIPROD_PIPELINE_SCALE=cpu`
//! keeps videoconvertscale everywhere.
//!
//! The decoded caps get their colorimetry written in explicitly (see
//! [`with_explicit_colorimetry`]): left implicit, videorate relabelled untagged SD sources as
//! BT.709 and the 601 → 709 conversion was skipped.
//!
//! With a [`QcConfig`] ([`process_job`]), `aiprodqc` measures the frames and samples right
//! before the encoders on tee branches (see `qc.rs`), and the run returns its [`QcReport`]:
//! validation then needs no second decode.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiprod_quality::qc::{QcConfig, QcReport};
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_pbutils as gst_pbutils;
use gstreamer_video as gst_video;

use super::elements::{
    aac_encoder, add_chain, capsfilter, link_chain, make, queue_frames, queue_time, set_str,
};
use super::qc::{self, QcCollector};
use super::range;
use super::runner::{self, FrameCounter, PartialFile, Total};
use super::{
    validate, AudioFormat, Container, OutputSpec, PipelineError, Progress, RunLimits, ScaleMethod,
    StageStats, VideoFormat,
};

/// How long discovering the input may take before it counts as unreadable.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(15);
/// Raw frames held between decode, scale and encode: enough to overlap the stages, while a
/// 4K 4:2:2 10-bit frame is ~33 MB.
const RAW_QUEUE_FRAMES: u32 = 4;
/// Audio held ahead of the muxer; more than x264's lookahead (~1–2 s) so an interleaved demuxer
/// never blocks on the audio branch while the muxer waits for video.
const AUDIO_QUEUE: Duration = Duration::from_secs(5);
/// x264 preset for delivery encodes: the brief's "fast", good quality per bit at usable speed
/// on CPU nodes.
const X264_PRESET: &str = "fast";
/// Audio samples per buffer of generated silence.
const SILENCE_SAMPLES_PER_BUFFER: i32 = 1024;

/// Real-ESRGAN in the processing pipeline (element `aiprodupscale`).
#[derive(Debug, Clone, PartialEq)]
pub struct UpscaleSpec {
    /// Registry name (models/registry.toml).
    pub model: String,
    pub scale: u32,
    /// "ort" (ONNX Runtime) or "wgpu" (aiprod's own kernels).
    pub engine: String,
    /// For ort: auto, cpu, cuda[:N], tensorrt[:N] (wgpu picks its adapter by AIPROD_WGPU_ADAPTER).
    pub device: String,
    /// None: `$AIPROD_MODELS_DIR` or `./data/models` (scripts/setup-models.sh fills it).
    pub models_dir: Option<std::path::PathBuf>,
}

/// What the upscaler measured during a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpscaleStats {
    pub frames: u64,
    /// Time the element spent upscaling (it overlaps decode and encode).
    pub busy_s: f64,
    pub on_gpu: bool,
}

/// What a processing run measured.
#[derive(Debug, Clone)]
pub struct Processed {
    pub stats: StageStats,
    /// With an upscale step.
    pub upscale: Option<UpscaleStats>,
    /// With a QC config: what `aiprodqc` measured on the encoders' input; None also when a
    /// summary did not arrive (validation then decodes the output instead).
    pub qc: Option<QcReport>,
}

/// Registers gst-plugin-aiprod's elements in this process once (no GST_PLUGIN_PATH needed).
fn register_aiprod_plugin() -> Result<(), PipelineError> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| gstaiprod::plugin_register_static().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| PipelineError::Init(format!("registering gst-plugin-aiprod: {e}")))
}

/// [`process_with`] plus an optional Real-ESRGAN upscale; returns what the upscaler measured.
pub fn process_upscaled(
    input: &Path,
    out: &Path,
    spec: &OutputSpec,
    upscale: Option<&UpscaleSpec>,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<(StageStats, Option<UpscaleStats>), PipelineError> {
    let p = run_process(
        input,
        out,
        spec,
        upscale,
        None,
        on_progress,
        cancel,
        &RunLimits::default(),
    )?;
    Ok((p.stats, p.upscale))
}

/// A job's processing: [`process_upscaled`] plus, with `qc`, in-pipeline QC of the frames and
/// samples the encoders take (detector settings from the job's QualitySpec).
pub fn process_job(
    input: &Path,
    out: &Path,
    spec: &OutputSpec,
    upscale: Option<&UpscaleSpec>,
    qc: Option<&QcConfig>,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<Processed, PipelineError> {
    run_process(
        input,
        out,
        spec,
        upscale,
        qc,
        on_progress,
        cancel,
        &RunLimits::default(),
    )
}

/// Processes `input` to `out` per `spec`; see the module docs. Uses [`RunLimits::default`].
pub fn process(
    input: &Path,
    out: &Path,
    spec: &OutputSpec,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<StageStats, PipelineError> {
    process_with(input, out, spec, on_progress, cancel, &RunLimits::default())
}

pub fn process_with(
    input: &Path,
    out: &Path,
    spec: &OutputSpec,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
    limits: &RunLimits,
) -> Result<StageStats, PipelineError> {
    run_process(input, out, spec, None, None, on_progress, cancel, limits).map(|p| p.stats)
}

#[allow(clippy::too_many_arguments)]
fn run_process(
    input: &Path,
    out: &Path,
    spec: &OutputSpec,
    upscale: Option<&UpscaleSpec>,
    qc: Option<&QcConfig>,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
    limits: &RunLimits,
) -> Result<Processed, PipelineError> {
    validate::output(spec)?;
    super::init()?;
    if upscale.is_some() || qc.is_some() {
        register_aiprod_plugin()?;
    }
    let input = input.canonicalize().map_err(|source| PipelineError::Io {
        path: input.to_path_buf(),
        source,
    })?;
    let source = discover(&input)?;
    let partial = PartialFile::for_output(out)?;
    // Declared before the run, so dropped after it: the QC sinks go to NULL after the pipeline.
    let (pipeline, counter, upscaler, _qc_sinks) =
        build(&input, &source, spec, upscale, qc, partial.path())?;
    let collector = match qc {
        Some(_) => Some(QcCollector::attach(&pipeline)?),
        None => None,
    };
    let total = source
        .duration
        .map(Total::Duration)
        .unwrap_or(Total::Frames(0));
    tracing::debug!(
        input = %input.display(), out = %out.display(), has_audio = source.has_audio,
        duration = ?source.duration, "processing"
    );
    let stats = runner::run(&pipeline, &counter, total, on_progress, cancel, limits)?;
    partial.commit(out)?;
    let upscaled = upscaler.map(|e| UpscaleStats {
        frames: e.property::<u64>("frames-processed"),
        busy_s: e.property::<u64>("processing-time") as f64 / 1e9,
        on_gpu: e
            .property::<Option<String>>("execution-provider")
            .is_some_and(|p| p != "cpu"),
    });
    let fps = f64::from(spec.fps_num) / f64::from(spec.fps_den);
    let wanted = collector.is_some();
    let qc = collector.and_then(|c| c.report(fps, spec.audio_rate_hz));
    if wanted && qc.is_none() {
        tracing::warn!(out = %out.display(), "no complete aiprodqc summary; validation decodes the output");
    }
    Ok(Processed {
        stats,
        upscale: upscaled,
        qc,
    })
}

/// What processing needs to know about the input before building.
#[derive(Debug)]
pub(super) struct Source {
    pub(super) has_audio: bool,
    pub(super) duration: Option<gst::ClockTime>,
    /// Display aspect ratio of the first video stream (width·par_n, height·par_d).
    pub(super) display_aspect: Option<(u64, u64)>,
}

fn discover(path: &Path) -> Result<Source, PipelineError> {
    let not_media = |reason: String| PipelineError::NotMedia {
        path: path.to_path_buf(),
        reason,
    };
    let uri = gst::glib::filename_to_uri(path, None).map_err(|e| not_media(e.to_string()))?;
    let timeout = gst::ClockTime::from_nseconds(DISCOVER_TIMEOUT.as_nanos() as u64);
    let discoverer = gst_pbutils::Discoverer::new(timeout).map_err(|e| not_media(e.to_string()))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| not_media(e.to_string()))?;
    match info.result() {
        gst_pbutils::DiscovererResult::Ok => {}
        gst_pbutils::DiscovererResult::Timeout => {
            return Err(not_media(format!(
                "discovery timed out after {} s",
                DISCOVER_TIMEOUT.as_secs()
            )))
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
    if info.video_streams().is_empty() {
        return Err(not_media("no video stream".to_string()));
    }
    let display_aspect = info.video_streams().first().and_then(|v| {
        let par = v.par();
        let (n, d) = (
            u64::try_from(par.numer()).ok()?,
            u64::try_from(par.denom()).ok()?,
        );
        let (w, h) = (u64::from(v.width()) * n, u64::from(v.height()) * d);
        (w > 0 && h > 0).then_some((w, h))
    });
    Ok(Source {
        has_audio: !info.audio_streams().is_empty(),
        duration: info.duration().filter(|d| d.nseconds() > 0),
        display_aspect,
    })
}

fn scale_method(m: ScaleMethod) -> &'static str {
    match m {
        ScaleMethod::Lanczos => "lanczos",
        ScaleMethod::Bicubic => "catrom",
        ScaleMethod::Bilinear => "bilinear",
        ScaleMethod::Nearest => "nearest-neighbour",
    }
}

/// Where the scale to the output size runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScaleEngine {
    /// videoconvertscale.
    Cpu,
    /// aiprodscale (aiprod-kernels on the shared wgpu context).
    Wgpu,
}

/// What `AIPROD_PIPELINE_SCALE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScaleChoice {
    /// aiprodscale where a real GPU adapter is there, else videoconvertscale (lavapipe would be
    /// slower than the CPU path).
    Auto,
    Wgpu,
    Cpu,
}

/// `AIPROD_PIPELINE_SCALE`: `auto` (default), `wgpu` or `cpu`.
const SCALE_ENV: &str = "AIPROD_PIPELINE_SCALE";

#[cfg(test)]
thread_local! {
    /// Tests force an engine for the runs on their own thread (no process-wide env changes).
    pub(super) static FORCED_SCALE: std::cell::Cell<Option<ScaleEngine>> = const { std::cell::Cell::new(None) };
}

/// The choice the setting asks for; an unknown value is refused rather than guessed.
pub(super) fn requested_scale(setting: Option<&str>) -> Result<ScaleChoice, PipelineError> {
    match setting.map(str::trim) {
        None | Some("") | Some("auto") => Ok(ScaleChoice::Auto),
        Some("wgpu") => Ok(ScaleChoice::Wgpu),
        Some("cpu") => Ok(ScaleChoice::Cpu),
        Some(other) => Err(PipelineError::Init(format!(
            "{SCALE_ENV}={other:?}: expected auto, wgpu or cpu"
        ))),
    }
}

/// The engine `choice` means on a node where `gpu_adapter` says whether the shared wgpu context
/// is on a real GPU.
pub(super) fn resolve_scale(
    choice: ScaleChoice,
    gpu_adapter: impl FnOnce() -> bool,
) -> ScaleEngine {
    match choice {
        ScaleChoice::Wgpu => ScaleEngine::Wgpu,
        ScaleChoice::Cpu => ScaleEngine::Cpu,
        ScaleChoice::Auto if gpu_adapter() => ScaleEngine::Wgpu,
        ScaleChoice::Auto => ScaleEngine::Cpu,
    }
}

/// Whether aiprodscale would run on a real GPU: adapters enumerated once per process (cheap),
/// and only then the shared context opened (as the QC engine's `auto` does).
fn gpu_adapter() -> bool {
    aiprod_kernels::gpu_present()
        && aiprod_kernels::Context::shared().is_ok_and(|ctx| ctx.adapter().kind.is_gpu())
}

/// The engine for this output: the requested one where aiprodscale gives the same picture as
/// videoconvertscale (8-bit 4:2:0, Lanczos/bicubic, no borders needed), else the CPU.
pub(super) fn scale_engine(
    spec: &OutputSpec,
    source: &Source,
) -> Result<ScaleEngine, PipelineError> {
    #[cfg(test)]
    let forced = FORCED_SCALE.with(|f| f.get());
    #[cfg(not(test))]
    let forced: Option<ScaleEngine> = None;
    let requested = match forced {
        Some(e) => e,
        None => resolve_scale(
            requested_scale(std::env::var(SCALE_ENV).ok().as_deref())?,
            gpu_adapter,
        ),
    };
    let same_aspect = source
        .display_aspect
        .is_some_and(|(w, h)| w * u64::from(spec.height) == h * u64::from(spec.width));
    let eligible = spec.video == VideoFormat::H264Yuv420p8
        && matches!(spec.scale, ScaleMethod::Lanczos | ScaleMethod::Bicubic)
        && same_aspect;
    if requested == ScaleEngine::Wgpu && !eligible {
        tracing::debug!(
            video = ?spec.video, method = ?spec.scale, aspect = ?source.display_aspect,
            "scaling with videoconvertscale: aiprodscale covers 8-bit 4:2:0 Lanczos/bicubic without borders"
        );
        return Ok(ScaleEngine::Cpu);
    }
    Ok(requested)
}

type Built = (
    gst::Pipeline,
    Arc<FrameCounter>,
    Option<gst::Element>,
    qc::QcSinks,
);

fn build(
    input: &Path,
    source: &Source,
    spec: &OutputSpec,
    upscale: Option<&UpscaleSpec>,
    qc: Option<&QcConfig>,
    location: &Path,
) -> Result<Built, PipelineError> {
    let pipeline = gst::Pipeline::with_name("process");
    let mut qc_sinks = qc::QcSinks::default();
    let filesrc = make("filesrc", "input")?;
    filesrc.set_property("location", input.to_string_lossy().as_ref());
    let decode = make("decodebin", "decode")?;
    add_chain(&pipeline, &[&filesrc, &decode])?;

    // Video branch.
    let vqueue = queue_frames("decoded-queue", RAW_QUEUE_FRAMES)?;
    let rate = make("videorate", "rate")?;
    let rate_caps = capsfilter(
        "rate-caps",
        gst::Caps::builder("video/x-raw")
            .field(
                "framerate",
                gst::Fraction::new(spec.fps_num as i32, spec.fps_den as i32),
            )
            .build(),
    )?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = u32::try_from(threads).unwrap_or(1);
    let engine = scale_engine(spec, source)?;
    // Full-range YUV that cannot be mapped in place after the decoder (see `fix_decoded_colour`)
    // goes through RGB before videoconvertscale (no upscaler's RGB in between): GStreamer 1.22
    // skips a range-only conversion.
    let range_detour = (engine == ScaleEngine::Cpu && upscale.is_none())
        .then(|| -> Result<_, PipelineError> {
            let convert = make("videoconvert", "range-convert")?;
            convert.set_property("n-threads", threads);
            let caps = capsfilter("range-caps", gst::Caps::new_empty_simple("video/x-raw"))?;
            Ok([convert, caps])
        })
        .transpose()?;
    fix_decoded_colour(&vqueue, range_detour.as_ref().map(|[_, caps]| caps))?;
    let scale_chain = match engine {
        ScaleEngine::Cpu => {
            let scale = make("videoconvertscale", "scale")?;
            set_str(&scale, "method", scale_method(spec.scale))?;
            scale.set_property("add-borders", true);
            scale.set_property("n-threads", threads);
            let mut chain: Vec<gst::Element> = range_detour.into_iter().flatten().collect();
            chain.push(scale);
            chain
        }
        ScaleEngine::Wgpu => {
            register_aiprod_plugin()?;
            let convert = make("videoconvert", "scale-convert")?;
            convert.set_property("n-threads", threads);
            let scale = make("aiprodscale", "scale")?;
            let method = if spec.scale == ScaleMethod::Lanczos {
                "lanczos"
            } else {
                "bicubic"
            };
            set_str(&scale, "method", method)?;
            // videoconvert only changes the layout of other formats (passthrough for the
            // decoders' usual I420/NV12); the matrix and range conversion to the output's
            // BT.709 happens in aiprodscale on the device.
            vec![
                convert,
                capsfilter(
                    "scale-input-caps",
                    gst::Caps::builder("video/x-raw")
                        .field("format", gst::List::new(["I420", "NV12"]))
                        .build(),
                )?,
                scale,
            ]
        }
    };
    let (format, profile) = match spec.video {
        VideoFormat::H264Yuv420p8 => ("I420", "high"),
        VideoFormat::H264Yuv422p10 => ("I422_10LE", "high-4:2:2"),
    };
    let scale_caps = capsfilter(
        "scale-caps",
        gst::Caps::builder("video/x-raw")
            .field("format", format)
            .field("width", spec.width as i32)
            .field("height", spec.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            // BT.709 with limited (16–235 / 64–940) range: broadcast-safe levels, and what
            // players assume for HD.
            .field("colorimetry", "bt709")
            .build(),
    )?;
    let scaled_queue = queue_frames("scaled-queue", RAW_QUEUE_FRAMES)?;
    let venc = make("x264enc", "video-encoder")?;
    set_str(&venc, "speed-preset", X264_PRESET)?;
    set_str(&venc, "pass", "cbr")?;
    // Validated to fit x264enc's kbit/s range.
    venc.set_property(
        "bitrate",
        u32::try_from(spec.video_bitrate_bps / 1000).unwrap_or(2_048_000),
    );
    let h264_caps = capsfilter(
        "h264-caps",
        gst::Caps::builder("video/x-h264")
            .field("profile", profile)
            .build(),
    )?;
    let encoded_queue = queue_frames("encoded-queue", 30)?;
    let mux = match spec.container {
        Container::Mp4 => {
            let m = make("mp4mux", "mux")?;
            m.set_property("faststart", true);
            let scratch = PartialFile::scratch_for(location);
            m.set_property("faststart-file", scratch.to_string_lossy().as_ref());
            m
        }
        Container::Mov => make("qtmux", "mux")?,
    };
    let sink = make("filesink", "sink")?;
    sink.set_property("location", location.to_string_lossy().as_ref());
    // Real-ESRGAN works on packed RGB; the scale after it converts back for the encoder.
    let upscaler = match upscale {
        Some(u) => {
            let element = make("aiprodupscale", "upscale")?;
            set_str(&element, "model", &u.model)?;
            element.set_property("scale", u.scale);
            set_str(&element, "engine", &u.engine)?;
            set_str(&element, "device", &u.device)?;
            if let Some(dir) = &u.models_dir {
                element.set_property("models-dir", dir.to_string_lossy().as_ref());
            }
            Some(vec![
                make("videoconvert", "upscale-convert")?,
                capsfilter(
                    "upscale-caps",
                    gst::Caps::builder("video/x-raw")
                        .field("format", "RGB")
                        .build(),
                )?,
                element,
                queue_frames("upscaled-queue", RAW_QUEUE_FRAMES)?,
            ])
        }
        None => None,
    };
    let mut video_chain: Vec<&gst::Element> = vec![&vqueue, &rate, &rate_caps];
    video_chain.extend(upscaler.iter().flatten());
    let video_tee = qc.map(|_| qc::tee(qc::Media::Video)).transpose()?;
    video_chain.extend(scale_chain.iter());
    video_chain.push(&scale_caps);
    video_chain.extend(video_tee.iter());
    video_chain.extend([
        &scaled_queue,
        &venc,
        &h264_caps,
        &encoded_queue,
        &mux,
        &sink,
    ]);
    add_chain(&pipeline, &video_chain)?;
    if let (Some(cfg), Some(tee)) = (qc, &video_tee) {
        qc::attach(&pipeline, tee, qc::Media::Video, cfg, &mut qc_sinks)?;
    }

    // Audio branch.
    let aqueue = queue_time("decoded-audio-queue", AUDIO_QUEUE)?;
    let aconv = make("audioconvert", "audio-convert")?;
    let aresample = make("audioresample", "audio-resample")?;
    let mut acaps = gst::Caps::builder("audio/x-raw")
        .field("rate", spec.audio_rate_hz as i32)
        .field("channels", spec.audio_channels as i32);
    if spec.audio == AudioFormat::PcmS24le {
        acaps = acaps
            .field("format", "S24LE")
            .field("layout", "interleaved");
    }
    let acaps = capsfilter("audio-caps", acaps.build())?;
    let mut audio_chain = vec![aqueue.clone(), aconv, aresample, acaps];
    let audio_tee = qc.map(|_| qc::tee(qc::Media::Audio)).transpose()?;
    audio_chain.extend(audio_tee.clone());
    if let AudioFormat::Aac { bitrate_bps } = spec.audio {
        let aenc = aac_encoder("audio-encoder")?;
        set_str(&aenc, "bitrate", &bitrate_bps.to_string())?;
        audio_chain.push(aenc);
    }
    audio_chain.push(queue_time("encoded-audio-queue", AUDIO_QUEUE)?);
    audio_chain.push(mux.clone());
    let refs: Vec<&gst::Element> = audio_chain.iter().collect();
    pipeline
        .add_many(&refs[..refs.len() - 1])
        .map_err(|e| PipelineError::Build {
            element: "audio branch".into(),
            reason: e.to_string(),
        })?;
    link_chain(&refs)?;
    if let (Some(cfg), Some(tee)) = (qc, &audio_tee) {
        qc::attach(&pipeline, tee, qc::Media::Audio, cfg, &mut qc_sinks)?;
    }

    if !source.has_audio {
        let silence = make("audiotestsrc", "silence")?;
        set_str(&silence, "wave", "silence")?;
        silence.set_property("samplesperbuffer", SILENCE_SAMPLES_PER_BUFFER);
        let samples = source.duration.map_or(0, |d| {
            d.nseconds().saturating_mul(u64::from(spec.audio_rate_hz)) / 1_000_000_000
        });
        let buffers = samples.div_ceil(SILENCE_SAMPLES_PER_BUFFER as u64).max(1);
        silence.set_property("num-buffers", i32::try_from(buffers).unwrap_or(i32::MAX));
        let silence_caps = capsfilter(
            "silence-caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", spec.audio_rate_hz as i32)
                .build(),
        )?;
        add_chain(&pipeline, &[&silence, &silence_caps])?;
        link_chain(&[&silence_caps, &aqueue])?;
    }

    link_decoded_pads(
        &pipeline,
        &decode,
        &vqueue,
        source.has_audio.then_some(&aqueue),
    );

    let enc_sink = venc
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Build {
            element: "video-encoder".into(),
            reason: "x264enc has no sink pad".into(),
        })?;
    let upscaler = upscaler.and_then(|chain| chain.into_iter().nth(2));
    Ok((
        pipeline,
        FrameCounter::attach(&enc_sink),
        upscaler,
        qc_sinks,
    ))
}

/// `caps` with the colorimetry GStreamer assumes for them written in, when they leave it out
/// (decoders do for streams that do not signal it); `None` when there is nothing to add.
///
/// The assumption (gst_video_info_from_caps: BT.601 up to 576 lines, BT.709 above, in GStreamer
/// 1.22; sRGB for RGB) is what a converter right after the decoder would use. Left implicit,
/// a passthrough element such as videorate fills the missing field from what is *downstream* —
/// our BT.709 output caps — and so relabels an untagged SD stream as BT.709: the converter then
/// skips the 601 → 709 matrix conversion (seen as 17–20 levels of luma on saturated colours).
pub(super) fn with_explicit_colorimetry(caps: &gst::CapsRef) -> Option<gst::Caps> {
    let s = caps.structure(0)?;
    if s.name() != "video/x-raw" || s.has_field("colorimetry") {
        return None;
    }
    let info = gst_video::VideoInfo::from_caps(caps).ok()?;
    let colorimetry = info.colorimetry().to_string();
    let mut labelled = caps.to_owned();
    labelled.make_mut().set("colorimetry", colorimetry);
    Some(labelled)
}

/// The probe on `head`'s sink pad (the first element after the decoder):
/// - caps events get [`with_explicit_colorimetry`];
/// - full-range 8-bit planar YUV is mapped to limited range in place ([`range`]) and its caps
///   relabelled, so every chain after it sees ordinary limited-range video;
/// - other full-range YUV points `detour` (a capsfilter before videoconvertscale) at
///   [`range::rgb_detour_format`] — before the caps reach it, so negotiation sees it.
fn fix_decoded_colour(
    head: &gst::Element,
    detour: Option<&gst::Element>,
) -> Result<(), PipelineError> {
    let pad = head
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Build {
            element: head.name().to_string(),
            reason: "no sink pad".into(),
        })?;
    let detour = detour.map(|d| d.downgrade());
    let tables = range::RangeTables::full_to_limited();
    // Set while the caps are full-range 8-bit planar YUV: frames are mapped to limited range.
    let to_limited: Mutex<Option<gst_video::VideoInfo>> = Mutex::new(None);
    let kinds = gst::PadProbeType::EVENT_DOWNSTREAM
        | gst::PadProbeType::BUFFER
        | gst::PadProbeType::BUFFER_LIST;
    pad.add_probe(kinds, move |_, info| {
        let mut to_limited = to_limited.lock().unwrap_or_else(|p| p.into_inner());
        match &mut info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                if let Some(video) = to_limited.as_ref() {
                    if let Err(e) = range::convert_frame(buffer.make_mut(), video, &tables) {
                        tracing::warn!(error = %e, "full-range frame left as decoded");
                    }
                }
                return gst::PadProbeReturn::Ok;
            }
            Some(gst::PadProbeData::BufferList(list)) => {
                if let Some(video) = to_limited.as_ref() {
                    list.make_mut().foreach_mut(|mut buffer, _| {
                        if let Err(e) = range::convert_frame(buffer.make_mut(), video, &tables) {
                            tracing::warn!(error = %e, "full-range frame left as decoded");
                        }
                        std::ops::ControlFlow::Continue(Some(buffer))
                    });
                }
                return gst::PadProbeReturn::Ok;
            }
            _ => {}
        }
        let Some(gst::PadProbeData::Event(event)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let gst::EventView::Caps(c) = event.view() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut caps = with_explicit_colorimetry(c.caps());
        let current = caps.as_deref().unwrap_or(c.caps());
        *to_limited = gst_video::VideoInfo::from_caps(current)
            .ok()
            .filter(range::convertible_in_place);
        if let Some(video) = to_limited.as_ref() {
            tracing::debug!(format = ?video.format(), "full-range input: mapped to limited range in place");
            caps = Some(range::limited_caps(current, video));
        }
        let current = caps.as_deref().unwrap_or(c.caps());
        if let Some(filter) = detour.as_ref().and_then(|d| d.upgrade()) {
            let mut wanted = gst::Caps::builder("video/x-raw");
            if let Some(format) = range::rgb_detour_format(current) {
                tracing::debug!(%format, "full-range input: converting through RGB");
                wanted = wanted.field("format", format);
            }
            filter.set_property("caps", wanted.build());
        }
        if let Some(caps) = caps {
            let event = gst::event::Caps::builder(&caps)
                .seqnum(event.seqnum())
                .build();
            info.data = Some(gst::PadProbeData::Event(event));
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Links decodebin's first video and (when wanted) first audio pad to the branches; every other
/// stream goes to a fakesink so it cannot stall the demuxer with not-linked.
fn link_decoded_pads(
    pipeline: &gst::Pipeline,
    decode: &gst::Element,
    video_head: &gst::Element,
    audio_head: Option<&gst::Element>,
) {
    let pipeline_weak = pipeline.downgrade();
    let video_sink = video_head.static_pad("sink");
    let audio_sink = audio_head.and_then(|a| a.static_pad("sink"));
    let lock = Mutex::new(());
    decode.connect_pad_added(move |decode, pad| {
        // pad-added can fire from several streaming threads at once.
        let _guard = lock.lock();
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let media = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let target = match media.as_str() {
            "video/x-raw" => video_sink.as_ref(),
            "audio/x-raw" => audio_sink.as_ref(),
            _ => None,
        }
        .filter(|sink| !sink.is_linked());
        let result = match target {
            Some(sink) => pad.link(sink).map(|_| ()).map_err(|e| format!("{e:?}")),
            None => discard(&pipeline_weak, pad),
        };
        if let Err(reason) = result {
            gst::element_error!(
                decode,
                gst::CoreError::Negotiation,
                ("cannot link decoded {} stream: {}", media, reason)
            );
        }
    });
}

fn discard(pipeline: &gst::glib::WeakRef<gst::Pipeline>, pad: &gst::Pad) -> Result<(), String> {
    let pipeline = pipeline.upgrade().ok_or("pipeline is gone")?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| e.to_string())?;
    pipeline.add(&sink).map_err(|e| e.to_string())?;
    sink.sync_state_with_parent().map_err(|e| e.to_string())?;
    let sink_pad = sink.static_pad("sink").ok_or("fakesink has no sink pad")?;
    pad.link(&sink_pad)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}
