//! `aiprodupscale` implementation: a BaseTransform that is never in place (the output is `scale`
//! times larger). Settings (properties) live apart from State, which exists only between start and
//! stop and owns the Upscaler (the ONNX Runtime session is built once, in start). Caps: packed RGB
//! or RGBx in, the same format `scale` times larger out.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use aiprod_models::{
    Device, Engine, FrameMut, FrameRef, PixelFormat, SessionOptions, Upscaler, UpscalerConfig,
};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "aiprodupscale",
        gst::DebugColorFlags::empty(),
        Some("Real-ESRGAN upscaler"),
    )
});

const DEFAULT_MODEL: &str = "realesr-animevideov3";
const DEFAULT_SCALE: u32 = 4;
const DEFAULT_ENGINE: &str = "ort";
const DEFAULT_DEVICE: &str = "auto";
/// -1 in tile-size / tile-overlap: the model's default from registry.toml.
const MODEL_DEFAULT: i32 = -1;
/// Largest input side on the sink pad: the models crate's limit (aiprod_models::frame).
const MAX_INPUT_SIDE: i32 = aiprod_models::frame::MAX_INPUT_SIDE_PX as i32;
/// Largest tile / overlap a property accepts (aiprod_models::tiling).
const MAX_TILE: i32 = aiprod_models::tiling::MAX_TILE_PX as i32;

#[derive(Debug, Clone)]
struct Settings {
    model: String,
    scale: u32,
    engine: String,
    tile_size: i32,
    tile_overlap: i32,
    device: String,
    threads: u32,
    models_dir: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
            scale: DEFAULT_SCALE,
            engine: DEFAULT_ENGINE.into(),
            tile_size: MODEL_DEFAULT,
            tile_overlap: MODEL_DEFAULT,
            device: DEFAULT_DEVICE.into(),
            threads: 0,
            models_dir: None,
        }
    }
}

impl Settings {
    fn upscaler_config(&self) -> Result<UpscalerConfig, aiprod_models::ModelError> {
        let optional = |v: i32| u32::try_from(v).ok();
        let mut config = UpscalerConfig::new(self.model.clone(), self.scale);
        config.engine = self.engine.parse::<Engine>()?;
        config.tile_px = optional(self.tile_size);
        config.overlap_px = optional(self.tile_overlap);
        config.session = SessionOptions {
            device: self.device.parse::<Device>()?,
            threads: self.threads as usize,
            trt_cache_dir: None,
            precision: None,
        };
        config.models_dir = self.models_dir.as_ref().map(Into::into);
        Ok(config)
    }
}

/// Exists from start to stop.
struct State {
    upscaler: Upscaler,
    scale: u32,
    in_info: Option<gst_video::VideoInfo>,
    out_info: Option<gst_video::VideoInfo>,
}

/// Read-only counters (properties), kept across restarts of the same element.
#[derive(Debug, Default)]
struct Stats {
    frames: u64,
    busy: Duration,
    provider: String,
}

#[derive(Default)]
pub struct AiprodUpscale {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<Stats>,
}

use crate::lock;

#[glib::object_subclass]
impl ObjectSubclass for AiprodUpscale {
    const NAME: &'static str = "GstAiprodUpscale";
    type Type = super::AiprodUpscale;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for AiprodUpscale {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Registry name: realesr-animevideov3, RealESRGAN_x4plus, RealESRGAN_x4plus_anime_6B")
                    .default_value(Some(DEFAULT_MODEL))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("scale")
                    .nick("Scale")
                    .blurb("Output size / input size (2, 3 or 4 for realesr-animevideov3; 4 for the others)")
                    .minimum(1)
                    .maximum(8)
                    .default_value(DEFAULT_SCALE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("engine")
                    .nick("Engine")
                    .blurb("Inference engine: ort (ONNX Runtime, every model) or wgpu (aiprod's own GPU kernels, realesr-animevideov3 only; adapter from AIPROD_WGPU_ADAPTER)")
                    .default_value(Some(DEFAULT_ENGINE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("tile-size")
                    .nick("Tile size")
                    .blurb("Tile side in input pixels; 0 = whole frame, -1 = the model's default")
                    .minimum(MODEL_DEFAULT)
                    .maximum(MAX_TILE)
                    .default_value(MODEL_DEFAULT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("tile-overlap")
                    .nick("Tile overlap")
                    .blurb("Context around each tile in input pixels; -1 = the model's default (its receptive radius where practical)")
                    .minimum(MODEL_DEFAULT)
                    .maximum(MAX_TILE)
                    .default_value(MODEL_DEFAULT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb("auto (TensorRT, CUDA, else CPU), cpu, cuda[:N], tensorrt[:N]")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("CPU inference threads; 0 = one per core")
                    .maximum(1024)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("models-dir")
                    .nick("Models directory")
                    .blurb("Where the imported models are; unset = $AIPROD_MODELS_DIR or ./data/models")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("execution-provider")
                    .nick("Execution provider")
                    .blurb("What runs the network once started: cpu, cuda or tensorrt")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-processed")
                    .nick("Frames processed")
                    .blurb("Frames upscaled so far")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("processing-time")
                    .nick("Processing time")
                    .blurb("Nanoseconds spent upscaling so far (inference, pre- and post-processing)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        // the types are guaranteed by the ParamSpecs above
        match pspec.name() {
            "model" => {
                s.model = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_MODEL.into())
            }
            "scale" => s.scale = value.get().unwrap_or(DEFAULT_SCALE),
            "engine" => {
                s.engine = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_ENGINE.into())
            }
            "tile-size" => s.tile_size = value.get().unwrap_or(MODEL_DEFAULT),
            "tile-overlap" => s.tile_overlap = value.get().unwrap_or(MODEL_DEFAULT),
            "device" => {
                s.device = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_DEVICE.into())
            }
            "threads" => s.threads = value.get().unwrap_or(0),
            "models-dir" => s.models_dir = value.get::<Option<String>>().ok().flatten(),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "settings now {s:?}");
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "model" => s.model.to_value(),
            "scale" => s.scale.to_value(),
            "engine" => s.engine.to_value(),
            "tile-size" => s.tile_size.to_value(),
            "tile-overlap" => s.tile_overlap.to_value(),
            "device" => s.device.to_value(),
            "threads" => s.threads.to_value(),
            "models-dir" => s.models_dir.to_value(),
            "execution-provider" => lock(&self.stats).provider.to_value(),
            "frames-processed" => lock(&self.stats).frames.to_value(),
            "processing-time" => (lock(&self.stats).busy.as_nanos() as u64).to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for AiprodUpscale {}

impl ElementImpl for AiprodUpscale {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Real-ESRGAN upscaler",
                "Filter/Effect/Converter/Video/Scaler",
                "Upscales RGB video x2/x3/x4 with Real-ESRGAN (ONNX Runtime, tiled)",
                "aiprod",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let formats = [gst_video::VideoFormat::Rgb, gst_video::VideoFormat::Rgbx];
            let sink_caps = gst_video::VideoCapsBuilder::new()
                .format_list(formats)
                .width_range(1..=MAX_INPUT_SIDE)
                .height_range(1..=MAX_INPUT_SIDE)
                .build();
            let src_caps = gst_video::VideoCapsBuilder::new()
                .format_list(formats)
                .build();
            let pad = |name, dir, caps: &gst::Caps| {
                gst::PadTemplate::new(name, dir, gst::PadPresence::Always, caps)
                    .expect("static pad template")
            };
            vec![
                pad("src", gst::PadDirection::Src, &src_caps),
                pad("sink", gst::PadDirection::Sink, &sink_caps),
            ]
        });
        TEMPLATES.as_ref()
    }
}

/// Maps the width/height of caps across the element: ×scale downstream, ÷scale upstream
/// (sizes that are not multiples of the scale have no upstream counterpart and are dropped).
fn scale_caps(caps: &gst::Caps, direction: gst::PadDirection, scale: i32) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    let out_mut = out.make_mut();
    'structures: for (s, features) in caps.iter_with_features() {
        let mut s = s.to_owned();
        for field in ["width", "height"] {
            if let Ok(v) = s.get::<i32>(field) {
                let mapped = match direction {
                    gst::PadDirection::Sink => v.checked_mul(scale),
                    _ => (v % scale == 0).then_some(v / scale),
                };
                match mapped {
                    Some(m) => s.set(field, m),
                    None => continue 'structures,
                }
            } else if let Ok(r) = s.get::<gst::IntRange<i32>>(field) {
                let (lo, hi) = match direction {
                    gst::PadDirection::Sink => {
                        (r.min().saturating_mul(scale), r.max().saturating_mul(scale))
                    }
                    _ => ((r.min() + scale - 1) / scale, r.max() / scale),
                };
                if lo > hi || hi < 1 {
                    continue 'structures;
                }
                s.set(field, gst::IntRange::new(lo.max(1), hi));
            } else {
                // lists and other forms: leave unconstrained, set_caps checks the final pair
                s.remove_field(field);
            }
        }
        out_mut.append_structure_full(s, Some(features.to_owned()));
    }
    out
}

fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    match format {
        gst_video::VideoFormat::Rgb => Some(PixelFormat::Rgb),
        gst_video::VideoFormat::Rgbx => Some(PixelFormat::Rgbx),
        _ => None,
    }
}

impl BaseTransformImpl for AiprodUpscale {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let config = settings
            .upscaler_config()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ["aiprodupscale: {e}"]))?;
        let upscaler = Upscaler::new(&config)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ["aiprodupscale: {e}"]))?;
        gst::info!(
            CAT,
            imp = self,
            "{} on {} ({:?}), tiles {:?}",
            upscaler.spec().label(),
            upscaler.provider(),
            upscaler.precision(),
            upscaler.tiling()
        );
        lock(&self.stats).provider = upscaler.provider().as_str().to_string();
        *lock(&self.state) = Some(State {
            scale: upscaler.scale(),
            upscaler,
            in_info: None,
            out_info: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        let stats = lock(&self.stats);
        gst::info!(
            CAT,
            imp = self,
            "upscaled {} frames in {:.3} s of upscaling ({:.3} frames/s)",
            stats.frames,
            stats.busy.as_secs_f64(),
            stats.frames as f64 / stats.busy.as_secs_f64().max(f64::MIN_POSITIVE)
        );
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let scale = lock(&self.settings).scale as i32;
        let out = scale_caps(caps, direction, scale);
        gst::trace!(CAT, imp = self, "{direction:?} {caps} -> {out}");
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let in_info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "invalid input caps {incaps}"))?;
        let out_info = gst_video::VideoInfo::from_caps(outcaps)
            .map_err(|_| gst::loggable_error!(CAT, "invalid output caps {outcaps}"))?;
        let mut state = lock(&self.state);
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        let s = state.scale;
        if out_info.width() != in_info.width() * s || out_info.height() != in_info.height() * s {
            return Err(gst::loggable_error!(
                CAT,
                "output {}x{} is not x{s} of input {}x{}",
                out_info.width(),
                out_info.height(),
                in_info.width(),
                in_info.height()
            ));
        }
        if in_info.format() != out_info.format() || pixel_format(in_info.format()).is_none() {
            return Err(gst::loggable_error!(
                CAT,
                "unsupported formats {incaps} -> {outcaps}"
            ));
        }
        aiprod_models::frame::check_size(in_info.width().into(), in_info.height().into(), s)
            .map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        gst::debug!(CAT, imp = self, "negotiated {incaps} -> {outcaps}");
        state.in_info = Some(in_info);
        state.out_info = Some(out_info);
        Ok(())
    }

    fn unit_size(&self, caps: &gst::Caps) -> Option<usize> {
        gst_video::VideoInfo::from_caps(caps).ok().map(|i| i.size())
    }

    fn transform(
        &self,
        inbuf: &gst::Buffer,
        outbuf: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let state = state.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let (Some(in_info), Some(out_info)) = (state.in_info.as_ref(), state.out_info.as_ref())
        else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let format = pixel_format(in_info.format()).ok_or(gst::FlowError::NotNegotiated)?;
        let map_err = |what: &str| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["cannot map {what} buffer"]);
            gst::FlowError::Error
        };
        let in_frame = gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf.as_ref(), in_info)
            .map_err(|_| map_err("input"))?;
        let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, out_info)
            .map_err(|_| map_err("output"))?;
        let src = FrameRef {
            data: in_frame.plane_data(0).map_err(|_| map_err("input"))?,
            width: in_frame.width(),
            height: in_frame.height(),
            stride: in_frame.plane_stride()[0] as usize,
            format,
        };
        let (out_w, out_h, out_stride) = (
            out_frame.width(),
            out_frame.height(),
            out_frame.plane_stride()[0] as usize,
        );
        let mut dst = FrameMut {
            data: out_frame.plane_data_mut(0).map_err(|_| map_err("output"))?,
            width: out_w,
            height: out_h,
            stride: out_stride,
            format,
        };
        let started = Instant::now();
        state.upscaler.upscale_frame(&src, &mut dst).map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ["upscaling failed: {e}"]);
            gst::FlowError::Error
        })?;
        let elapsed = started.elapsed();
        let mut stats = lock(&self.stats);
        stats.frames += 1;
        stats.busy += elapsed;
        gst::trace!(CAT, imp = self, "frame {} in {elapsed:?}", stats.frames);
        Ok(gst::FlowSuccess::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(s: &str) -> gst::Caps {
        s.parse().expect("caps")
    }

    #[test]
    fn caps_scale_both_ways() {
        gst::init().expect("gst init");
        let down = scale_caps(
            &caps("video/x-raw,format=RGB,width=37,height=[1,100]"),
            gst::PadDirection::Sink,
            4,
        );
        assert_eq!(
            down,
            caps("video/x-raw,format=RGB,width=148,height=[4,400]")
        );
        let up = scale_caps(
            &caps("video/x-raw,format=RGB,width=148,height=[3,401]"),
            gst::PadDirection::Src,
            4,
        );
        assert_eq!(up, caps("video/x-raw,format=RGB,width=37,height=[1,100]"));
        // 150 is not a multiple of 4: nothing upstream produces it
        let none = scale_caps(
            &caps("video/x-raw,format=RGB,width=150,height=8"),
            gst::PadDirection::Src,
            4,
        );
        assert!(none.is_empty());
    }
}
