//! `aiprodqc` implementation: an always-in-place BaseTransform in passthrough that feeds each
//! buffer to aiprod_quality's detectors. Settings (properties) live apart from State, which exists
//! only between caps negotiation and stop.
//!
//! Summary message `aiprodqc` fields: `media` ("video"/"audio"), `frames` (u64), and for video
//! `black-count`, `black-longest-s`, `frozen-count`, `frozen-longest-s`, `black` and `frozen`
//! ("start-end" seconds, comma separated), and with `blur=true` `blur-mean`, `blur-max` (FFmpeg
//! blurdetect's per-frame value, NaN when no frame had edges) and `blur-frames-without-edges`;
//! for audio `silence-count`, `silence-longest-s`, `silence`, `integrated-lufs`,
//! `true-peak-dbtp`.

use std::sync::{LazyLock, Mutex};

use aiprod_quality::qc::{
    BlackDetector, BlurDetector, Frame, FrameMeter, FreezeDetector, LoudnessMeter, QcEngine,
    Segment, SilenceDetector,
};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "aiprodqc",
        gst::DebugColorFlags::empty(),
        Some("aiprod quality control"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    black_min_duration_s: f64,
    freeze_min_duration_s: f64,
    freeze_noise_db: f64,
    silence_min_duration_s: f64,
    silence_noise_db: f64,
    /// blurdetect on every frame: off by default, it costs about as much as FFmpeg's filter
    /// (tens of ms per 1080p frame on one core).
    blur: bool,
}

impl Default for Settings {
    /// FFmpeg's filter defaults.
    fn default() -> Self {
        Settings {
            black_min_duration_s: 2.0,
            freeze_min_duration_s: 2.0,
            freeze_noise_db: -60.0,
            silence_min_duration_s: 2.0,
            silence_noise_db: -60.0,
            blur: false,
        }
    }
}

// One State per element, made once per caps negotiation: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum State {
    Video {
        info: gst_video::VideoInfo,
        black: BlackDetector,
        freeze: FreezeDetector,
        /// Black/freeze measurement on the engine `AIPROD_QC_ENGINE` picks (wgpu on a real GPU).
        meter: FrameMeter,
        blur: Option<BlurDetector>,
        frames: u64,
        posted: (usize, usize),
    },
    Audio {
        channels: usize,
        rate: u32,
        silence: SilenceDetector,
        loudness: LoudnessMeter,
        frames: u64,
        posted: usize,
    },
}

#[derive(Default)]
pub struct AiprodQc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for AiprodQc {
    const NAME: &'static str = "GstAiprodQc";
    type Type = super::AiprodQc;
    type ParentType = gst_base::BaseTransform;
}

fn seconds(name: &'static str, blurb: &'static str, default: f64) -> glib::ParamSpec {
    glib::ParamSpecDouble::builder(name)
        .blurb(blurb)
        .minimum(0.0)
        .maximum(86400.0)
        .default_value(default)
        .mutable_ready()
        .build()
}

fn decibels(name: &'static str, blurb: &'static str) -> glib::ParamSpec {
    glib::ParamSpecDouble::builder(name)
        .blurb(blurb)
        .minimum(-200.0)
        .maximum(0.0)
        .default_value(-60.0)
        .mutable_ready()
        .build()
}

impl ObjectImpl for AiprodQc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                seconds(
                    "black-min-duration",
                    "Shortest black segment reported, s (blackdetect d)",
                    2.0,
                ),
                seconds(
                    "freeze-min-duration",
                    "Shortest frozen segment reported, s (freezedetect d)",
                    2.0,
                ),
                decibels(
                    "freeze-noise",
                    "Freeze noise tolerance, dB (freezedetect n)",
                ),
                seconds(
                    "silence-min-duration",
                    "Shortest silence reported, s (silencedetect d)",
                    2.0,
                ),
                decibels(
                    "silence-noise",
                    "Silence noise floor, dBFS (silencedetect n)",
                ),
                glib::ParamSpecBoolean::builder("blur")
                    .blurb("Measure blur on every frame (blurdetect, FFmpeg's defaults)")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        if pspec.name() == "blur" {
            s.blur = value.get().unwrap_or(false);
            return;
        }
        let v: f64 = value.get().unwrap_or_default();
        match pspec.name() {
            "black-min-duration" => s.black_min_duration_s = v,
            "freeze-min-duration" => s.freeze_min_duration_s = v,
            "freeze-noise" => s.freeze_noise_db = v,
            "silence-min-duration" => s.silence_min_duration_s = v,
            "silence-noise" => s.silence_noise_db = v,
            _ => {}
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        match pspec.name() {
            "black-min-duration" => s.black_min_duration_s.to_value(),
            "freeze-min-duration" => s.freeze_min_duration_s.to_value(),
            "freeze-noise" => s.freeze_noise_db.to_value(),
            "silence-min-duration" => s.silence_min_duration_s.to_value(),
            "silence-noise" => s.silence_noise_db.to_value(),
            "blur" => s.blur.to_value(),
            _ => 0.0f64.to_value(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_passthrough(true);
    }
}

impl GstObjectImpl for AiprodQc {}

impl ElementImpl for AiprodQc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "aiprod quality control",
                "Filter/Analyzer/Video/Audio",
                "Passthrough black/freeze/silence/loudness detection with FFmpeg's definitions; posts element messages",
                "aiprod",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build();
            let mut caps = caps;
            caps.merge(
                gst::Caps::builder("audio/x-raw")
                    .field("format", "F32LE")
                    .field("layout", "interleaved")
                    .build(),
            );
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
            );
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            );
            vec![src.expect("static caps"), sink.expect("static caps")]
        });
        TEMPLATES.as_ref()
    }
}

fn segments_text(segs: &[Segment], end: f64) -> String {
    segs.iter()
        .map(|s| format!("{:.3}-{:.3}", s.start_s, s.end_s.unwrap_or(end)))
        .collect::<Vec<_>>()
        .join(",")
}

fn longest(segs: &[Segment], end: f64) -> f64 {
    segs.iter().map(|s| s.duration_s(end)).fold(0.0, f64::max)
}

impl AiprodQc {
    fn post(&self, s: gst::Structure) {
        let msg = gst::message::Element::builder(s).src(&*self.obj()).build();
        let _ = self.obj().post_message(msg);
    }

    fn post_segments(&self, kind: &str, segs: &[Segment], from: usize) {
        for s in segs.iter().skip(from).filter(|s| s.end_s.is_some()) {
            self.post(
                gst::Structure::builder(super::SEGMENT_MESSAGE)
                    .field("kind", kind)
                    .field("start-s", s.start_s)
                    .field("end-s", s.end_s.unwrap_or(s.start_s))
                    .build(),
            );
        }
    }

    fn post_summary(&self) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = guard.as_mut() else { return };
        let s = match state {
            State::Video {
                black,
                freeze,
                blur,
                frames,
                info,
                ..
            } => {
                let fps = info.fps();
                let end = if fps.numer() > 0 {
                    *frames as f64 * f64::from(fps.denom()) / f64::from(fps.numer())
                } else {
                    0.0
                };
                let b = black.finish();
                let f = freeze.finish();
                let s = gst::Structure::builder(super::SUMMARY_MESSAGE)
                    .field("media", "video")
                    .field("frames", *frames)
                    .field("black-count", b.len() as u32)
                    .field("black-longest-s", longest(&b, end))
                    .field("black", segments_text(&b, end))
                    .field("frozen-count", f.len() as u32)
                    .field("frozen-longest-s", longest(&f, end))
                    .field("frozen", segments_text(&f, end));
                match blur.as_ref().map(BlurDetector::result) {
                    Some(r) => s
                        .field("blur-mean", r.mean)
                        .field("blur-max", r.max)
                        .field("blur-frames-without-edges", r.frames_without_edges)
                        .build(),
                    None => s.build(),
                }
            }
            State::Audio {
                silence,
                loudness,
                frames,
                rate,
                ..
            } => {
                let end = *frames as f64 / f64::from((*rate).max(1));
                let sil = silence.finish();
                let l = loudness.result();
                gst::Structure::builder(super::SUMMARY_MESSAGE)
                    .field("media", "audio")
                    .field("frames", *frames)
                    .field("silence-count", sil.len() as u32)
                    .field("silence-longest-s", longest(&sil, end))
                    .field("silence", segments_text(&sil, end))
                    .field(
                        "integrated-lufs",
                        l.as_ref().map_or(-70.0, |l| l.integrated_lufs),
                    )
                    .field(
                        "true-peak-dbtp",
                        l.as_ref().map_or(f64::NEG_INFINITY, |l| l.true_peak_dbtp),
                    )
                    .build()
            }
        };
        drop(guard);
        self.post(s);
    }
}

impl BaseTransformImpl for AiprodQc {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let s = incaps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "empty caps"))?;
        let state = if s.name() == "video/x-raw" {
            let info = gst_video::VideoInfo::from_caps(incaps)
                .map_err(|_| gst::loggable_error!(CAT, "bad video caps {incaps}"))?;
            State::Video {
                info,
                black: BlackDetector::with_defaults(settings.black_min_duration_s),
                freeze: FreezeDetector::new(
                    settings.freeze_noise_db,
                    settings.freeze_min_duration_s,
                ),
                meter: FrameMeter::new(
                    &QcEngine::from_env().map_err(|e| gst::loggable_error!(CAT, "{e}"))?,
                ),
                blur: settings.blur.then(BlurDetector::with_defaults),
                frames: 0,
                posted: (0, 0),
            }
        } else {
            let channels = s.get::<i32>("channels").unwrap_or(1).max(1) as usize;
            let rate = s.get::<i32>("rate").unwrap_or(48000).max(1) as u32;
            State::Audio {
                channels,
                rate,
                silence: SilenceDetector::new(
                    settings.silence_noise_db,
                    settings.silence_min_duration_s,
                    rate,
                    channels,
                ),
                loudness: LoudnessMeter::new(channels as u32, rate),
                frames: 0,
                posted: 0,
            }
        };
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            self.post_summary();
        }
        self.parent_sink_event(event)
    }

    fn transform_ip_passthrough(
        &self,
        buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        // Running time, so timestamps stay monotonic across segments (concat, seeks).
        let pts = buf
            .pts()
            .and_then(|t| {
                self.obj()
                    .segment()
                    .downcast_ref::<gst::ClockTime>()
                    .and_then(|seg| seg.to_running_time(t))
            })
            .or(buf.pts())
            .map_or(0.0, |t| t.nseconds() as f64 / 1e9);
        let mut ended = Vec::new();
        match state {
            State::Video {
                info,
                black,
                freeze,
                meter,
                blur,
                frames,
                posted,
            } => {
                let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), info)
                    .map_err(|_| gst::FlowError::Error)?;
                let stride = vf.plane_stride();
                let frame = Frame {
                    planes: [
                        vf.plane_data(0).map_err(|_| gst::FlowError::Error)?,
                        vf.plane_data(1).map_err(|_| gst::FlowError::Error)?,
                        vf.plane_data(2).map_err(|_| gst::FlowError::Error)?,
                    ],
                    strides: [stride[0] as usize, stride[1] as usize, stride[2] as usize],
                    width: info.width() as usize,
                    height: info.height() as usize,
                    chroma_shift: (1, 1),
                };
                meter.push(&frame, pts, black, freeze).map_err(|e| {
                    gst::element_imp_error!(self, gst::StreamError::Failed, ["QC metrics: {e}"]);
                    gst::FlowError::Error
                })?;
                if let Some(b) = blur.as_mut() {
                    b.push(&frame);
                }
                *frames += 1;
                let closed_f = freeze.segments.iter().filter(|s| s.end_s.is_some()).count();
                if black.segments.len() > posted.0 {
                    ended.push(("black", black.segments.clone(), posted.0));
                    posted.0 = black.segments.len();
                }
                if closed_f > posted.1 {
                    ended.push(("frozen", freeze.segments.clone(), posted.1));
                    posted.1 = closed_f;
                }
            }
            State::Audio {
                channels,
                silence,
                loudness,
                frames,
                posted,
                ..
            } => {
                let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
                let samples: Vec<f32> = map
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                silence.push(&samples);
                loudness.push(&samples);
                *frames += (samples.len() / *channels) as u64;
                if silence.segments.len() > *posted {
                    ended.push(("silence", silence.segments.clone(), *posted));
                    *posted = silence.segments.len();
                }
            }
        }
        drop(guard);
        for (kind, segs, from) in ended {
            self.post_segments(kind, &segs, from);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
