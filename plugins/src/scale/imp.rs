//! `aiprodscale` implementation: a BaseTransform that resizes 8-bit I420 to the size negotiated
//! downstream (like videoscale), each plane separately (luma at the frame size, chroma at
//! ⌈w/2⌉×⌈h/2⌉) with the kernels' fixed-point 8-bit path on the wgpu device of
//! `aiprod_kernels::Context::shared()` (adapter from `AIPROD_WGPU_ADAPTER`). The result equals
//! `aiprod_kernels::resize::cpu::resize_plane_u8` bit for bit.
//!
//! Caps: width, height and pixel-aspect-ratio may change across the element; every other field
//! (framerate, colorimetry, chroma-site, interlace-mode) passes through unchanged. The element
//! does not keep the display aspect ratio itself: it stretches to the negotiated size (no
//! borders). Left to choose, it keeps the input's size and pixel aspect ratio (so same caps on
//! both sides give passthrough). Interlaced input is resized as progressive frames.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use aiprod_kernels::resize::{DeviceResize, Filter, ResizePlan};
use aiprod_kernels::Context;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "aiprodscale",
        gst::DebugColorFlags::empty(),
        Some("I420 resize on aiprod's wgpu kernels"),
    )
});

const DEFAULT_METHOD: &str = "lanczos";
/// Largest side either pad accepts: the kernels' limit.
const MAX_SIDE: i32 = aiprod_kernels::colour::MAX_SIDE_PX as i32;

/// The `method` property.
fn filter_of(method: &str) -> Option<Filter> {
    match method {
        "lanczos" => Some(Filter::Lanczos3),
        // videoscale's "catrom" (what the daemon's ScaleMethod::Bicubic selects)
        "bicubic" => Some(Filter::CATMULL_ROM),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct Settings {
    method: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            method: DEFAULT_METHOD.into(),
        }
    }
}

/// Weight tables for one negotiated size pair: Y, then U and V (same size).
struct Plans {
    luma: DeviceResize,
    chroma: DeviceResize,
    in_info: gst_video::VideoInfo,
    out_info: gst_video::VideoInfo,
}

/// Exists from start to stop.
struct State {
    ctx: Arc<Context>,
    filter: Filter,
    plans: Option<Plans>,
}

#[derive(Debug, Default)]
struct Stats {
    frames: u64,
    busy: Duration,
    adapter: String,
}

#[derive(Default)]
pub struct AiprodScale {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<Stats>,
}

use crate::lock;

#[glib::object_subclass]
impl ObjectSubclass for AiprodScale {
    const NAME: &'static str = "GstAiprodScale";
    type Type = super::AiprodScale;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for AiprodScale {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("method")
                    .nick("Method")
                    .blurb("lanczos (Lanczos-3) or bicubic (Catmull-Rom, videoscale's catrom)")
                    .default_value(Some(DEFAULT_METHOD))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("engine")
                    .nick("Engine")
                    .blurb(
                        "Always wgpu (aiprod-kernels); the adapter comes from AIPROD_WGPU_ADAPTER",
                    )
                    .default_value(Some("wgpu"))
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("adapter")
                    .nick("Adapter")
                    .blurb("The wgpu adapter in use once started: name (kind, backend)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-processed")
                    .nick("Frames processed")
                    .blurb("Frames resized so far (passthrough frames not counted)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("processing-time")
                    .nick("Processing time")
                    .blurb("Nanoseconds spent resizing so far (upload, kernels, download)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "method" => {
                let method = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_METHOD.into());
                if filter_of(&method).is_some() {
                    lock(&self.settings).method = method;
                } else {
                    gst::element_imp_warning!(
                        self,
                        gst::LibraryError::Settings,
                        [
                            "method {method:?}: expected lanczos or bicubic; keeping {}",
                            lock(&self.settings).method
                        ]
                    );
                }
            }
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "method" => lock(&self.settings).method.to_value(),
            "engine" => "wgpu".to_value(),
            "adapter" => lock(&self.stats).adapter.to_value(),
            "frames-processed" => lock(&self.stats).frames.to_value(),
            "processing-time" => (lock(&self.stats).busy.as_nanos() as u64).to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for AiprodScale {}

impl ElementImpl for AiprodScale {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "aiprod GPU video scaler",
                "Filter/Converter/Video/Scaler",
                "Resizes I420 video with Lanczos-3 or bicubic on aiprod's wgpu kernels",
                "aiprod",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .width_range(1..=MAX_SIDE)
                .height_range(1..=MAX_SIDE)
                .build();
            let pad = |name, dir| {
                gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps)
                    .expect("static pad template")
            };
            vec![
                pad("src", gst::PadDirection::Src),
                pad("sink", gst::PadDirection::Sink),
            ]
        });
        TEMPLATES.as_ref()
    }
}

/// Any size and pixel aspect ratio on the other side; everything else unchanged.
fn any_size(caps: &gst::Caps) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    let out_mut = out.make_mut();
    for (s, features) in caps.iter_with_features() {
        let mut s = s.to_owned();
        s.set("width", gst::IntRange::new(1, MAX_SIDE));
        s.set("height", gst::IntRange::new(1, MAX_SIDE));
        s.remove_field("pixel-aspect-ratio");
        out_mut.append_structure_full(s, Some(features.to_owned()));
    }
    out
}

/// Chroma plane size of I420 at `w`×`h`.
fn chroma_size(w: u32, h: u32) -> (u32, u32) {
    (w.div_ceil(2), h.div_ceil(2))
}

impl AiprodScale {
    fn plans(
        &self,
        ctx: &Context,
        filter: Filter,
        in_info: &gst_video::VideoInfo,
        out_info: &gst_video::VideoInfo,
    ) -> Result<Plans, String> {
        let (iw, ih, ow, oh) = (
            in_info.width(),
            in_info.height(),
            out_info.width(),
            out_info.height(),
        );
        let (icw, ich) = chroma_size(iw, ih);
        let (ocw, och) = chroma_size(ow, oh);
        let luma = ResizePlan::new(iw, ih, ow, oh, filter)
            .and_then(|p| DeviceResize::new(ctx, &p))
            .map_err(|e| format!("luma {iw}x{ih} -> {ow}x{oh}: {e}"))?;
        let chroma = ResizePlan::new(icw, ich, ocw, och, filter)
            .and_then(|p| DeviceResize::new(ctx, &p))
            .map_err(|e| format!("chroma {icw}x{ich} -> {ocw}x{och}: {e}"))?;
        Ok(Plans {
            luma,
            chroma,
            in_info: in_info.clone(),
            out_info: out_info.clone(),
        })
    }
}

/// Resizes the three planes of `inbuf` into `outbuf` on the device.
fn resize_frame(
    ctx: &Context,
    plans: &Plans,
    inbuf: &gst::BufferRef,
    outbuf: &mut gst::BufferRef,
) -> Result<(), String> {
    let in_frame = gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf, &plans.in_info)
        .map_err(|_| "cannot map the input buffer".to_string())?;
    let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &plans.out_info)
        .map_err(|_| "cannot map the output buffer".to_string())?;
    // Queue all three planes before reading any back.
    let mut resized = Vec::with_capacity(3);
    for plane in 0..3u32 {
        let dev = if plane == 0 {
            &plans.luma
        } else {
            &plans.chroma
        };
        let data = in_frame
            .plane_data(plane)
            .map_err(|_| format!("input plane {plane} unreadable"))?;
        let stride = u64::try_from(in_frame.plane_stride()[plane as usize])
            .map_err(|_| format!("input plane {plane} has a negative stride"))?;
        let buf = ctx
            .upload("aiprodscale input plane", data)
            .map_err(|e| e.to_string())?;
        let out = dev
            .plane_u8(ctx, &buf, 0, stride)
            .map_err(|e| format!("plane {plane}: {e}"))?;
        resized.push(out);
    }
    for (plane, buf) in resized.iter().enumerate() {
        let dev = if plane == 0 {
            &plans.luma
        } else {
            &plans.chroma
        };
        let (w, h) = (dev.plan().dst_w as usize, dev.plan().dst_h as usize);
        let packed = ctx
            .download(buf, (w * h) as u64)
            .map_err(|e| format!("plane {plane}: {e}"))?;
        let stride = usize::try_from(out_frame.plane_stride()[plane])
            .map_err(|_| format!("output plane {plane} has a negative stride"))?;
        let dst = out_frame
            .plane_data_mut(plane as u32)
            .map_err(|_| format!("output plane {plane} unwritable"))?;
        for (y, row) in packed.chunks_exact(w).enumerate().take(h) {
            let at = y * stride;
            let target = dst
                .get_mut(at..at + w)
                .ok_or_else(|| format!("output plane {plane} too small for row {y}"))?;
            target.copy_from_slice(row);
        }
    }
    Ok(())
}

impl BaseTransformImpl for AiprodScale {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let method = lock(&self.settings).method.clone();
        let filter = filter_of(&method).ok_or_else(|| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ["aiprodscale: method {method:?}: expected lanczos or bicubic"]
            )
        })?;
        let ctx = Context::shared().map_err(|e| {
            gst::error_msg!(
                gst::LibraryError::Init,
                [
                    "aiprodscale: no usable wgpu adapter (AIPROD_WGPU_ADAPTER={}): {e}",
                    std::env::var("AIPROD_WGPU_ADAPTER").unwrap_or_else(|_| "auto".into())
                ]
            )
        })?;
        gst::info!(CAT, imp = self, "{method} on {}", ctx.adapter());
        lock(&self.stats).adapter = ctx.adapter().to_string();
        *lock(&self.state) = Some(State {
            ctx,
            filter,
            plans: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        let stats = lock(&self.stats);
        gst::info!(
            CAT,
            imp = self,
            "resized {} frames in {:.3} s",
            stats.frames,
            stats.busy.as_secs_f64()
        );
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        // The unchanged caps first: passthrough is preferred when the other side allows it.
        let mut out = caps.clone();
        out.merge(any_size(caps));
        gst::trace!(CAT, imp = self, "{direction:?} {caps} -> {out}");
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn fixate_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        othercaps: gst::Caps,
    ) -> gst::Caps {
        let mut othercaps = othercaps;
        othercaps.truncate();
        let Some(from) = caps.structure(0) else {
            othercaps.fixate();
            return othercaps;
        };
        let par = from
            .get::<gst::Fraction>("pixel-aspect-ratio")
            .unwrap_or(gst::Fraction::new(1, 1));
        if let Some(s) = othercaps.make_mut().structure_mut(0) {
            for field in ["width", "height"] {
                if let Ok(v) = from.get::<i32>(field) {
                    s.fixate_field_nearest_int(field, v);
                }
            }
            if s.has_field("pixel-aspect-ratio") {
                s.fixate_field_nearest_fraction("pixel-aspect-ratio", par);
            } else {
                s.set("pixel-aspect-ratio", par);
            }
        }
        othercaps.fixate();
        gst::debug!(CAT, imp = self, "{direction:?} fixated to {othercaps}");
        othercaps
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let in_info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "invalid input caps {incaps}"))?;
        let out_info = gst_video::VideoInfo::from_caps(outcaps)
            .map_err(|_| gst::loggable_error!(CAT, "invalid output caps {outcaps}"))?;
        if in_info.format() != gst_video::VideoFormat::I420
            || out_info.format() != gst_video::VideoFormat::I420
        {
            return Err(gst::loggable_error!(
                CAT,
                "unsupported formats {incaps} -> {outcaps}"
            ));
        }
        let mut state = lock(&self.state);
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        let plans = self
            .plans(&state.ctx, state.filter, &in_info, &out_info)
            .map_err(|e| {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ["aiprodscale: {e}"]);
                gst::loggable_error!(CAT, "{e}")
            })?;
        gst::debug!(CAT, imp = self, "negotiated {incaps} -> {outcaps}");
        state.plans = Some(plans);
        Ok(())
    }

    /// Output buffers laid out exactly as the caps say (no downstream pool with its own strides).
    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        while query.allocation_pools().len() > 0 {
            query.remove_nth_allocation_pool(0);
        }
        self.parent_decide_allocation(query)
    }

    fn unit_size(&self, caps: &gst::Caps) -> Option<usize> {
        gst_video::VideoInfo::from_caps(caps).ok().map(|i| i.size())
    }

    fn transform(
        &self,
        inbuf: &gst::Buffer,
        outbuf: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let state = lock(&self.state);
        let state = state.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let plans = state.plans.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let started = Instant::now();
        resize_frame(&state.ctx, plans, inbuf.as_ref(), outbuf).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ["aiprodscale on {}: {e}", state.ctx.adapter()]
            );
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

    #[test]
    fn caps_free_size_and_par_only() {
        gst::init().expect("gst init");
        let caps: gst::Caps =
            "video/x-raw,format=I420,width=320,height=180,framerate=25/1,pixel-aspect-ratio=1/1"
                .parse()
                .expect("caps");
        let any = any_size(&caps);
        let s = any.structure(0).expect("structure");
        assert_eq!(
            s.get::<gst::IntRange<i32>>("width").expect("width"),
            gst::IntRange::new(1, MAX_SIDE)
        );
        assert!(!s.has_field("pixel-aspect-ratio"));
        assert_eq!(
            s.get::<gst::Fraction>("framerate").expect("framerate"),
            gst::Fraction::new(25, 1)
        );
        assert_eq!(chroma_size(161, 91), (81, 46));
        assert_eq!(filter_of("lanczos"), Some(Filter::Lanczos3));
        assert_eq!(filter_of("nearest"), None);
    }
}
