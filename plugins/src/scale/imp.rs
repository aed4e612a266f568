//! `aiprodscale` implementation: a BaseTransform that resizes 8-bit 4:2:0 video (I420 or NV12 in,
//! I420 out) to the size negotiated downstream, and converts its colour matrix and range to the
//! colorimetry negotiated downstream, on the wgpu device of `aiprod_kernels::Context::shared()`
//! (adapter from `AIPROD_WGPU_ADAPTER`). Two paths:
//!
//! - same matrix and range, I420 in: each plane resized on its own (luma at the frame size,
//!   chroma at ⌈w/2⌉×⌈h/2⌉) with the kernels' fixed-point 8-bit path; the result equals
//!   `aiprod_kernels::resize::cpu::resize_plane_u8` bit for bit (like videoscale);
//! - otherwise (another matrix — BT.601/709/2020, FCC, SMPTE 240M — or range, or NV12 in): YUV →
//!   planar f32 R'G'B' at the input size (chroma upsampled at the input's siting; clipped to the
//!   RGB cube when the matrix changes, as swscale does, kept unclipped for a range or layout
//!   change alone, which is then an exact per-sample mapping) → resized in
//!   f32 when the size changes → YUV at the output's matrix and range, all on the device with one
//!   upload and one download (matrix and range only, no primaries/transfer change, like
//!   videoconvert's defaults).
//!
//! Caps: format, width, height, pixel-aspect-ratio, colorimetry and chroma-site may change across
//! the element; every other field (framerate, interlace-mode) passes through unchanged. Left to
//! choose, it keeps the input's size, pixel aspect ratio and colorimetry (so same caps on both
//! sides give passthrough). It does not keep the display aspect ratio itself: it stretches to the
//! negotiated size (no borders). Interlaced input is resized as progressive frames.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use aiprod_kernels::colour::{
    planar_extended_to_yuv_device, planar_to_yuv_device, yuv_to_planar_device,
    yuv_to_planar_extended_device, ChromaSiting, ColourSpec, Matrix, Range, YuvFormat, YuvLayout,
};
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
        Some("4:2:0 resize and colour conversion on aiprod's wgpu kernels"),
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

/// What one negotiated caps pair needs on the device.
enum Work {
    /// I420 in, same matrix and range: Y, then U and V (same size) resized plane by plane.
    Planes {
        luma: DeviceResize,
        chroma: DeviceResize,
    },
    /// Through planar f32 R'G'B': another matrix or range, or NV12 in.
    Convert(Conversion),
}

/// One YUV → R'G'B' (→ resize) → YUV conversion on the device.
struct Conversion {
    in_layout: YuvLayout,
    in_spec: ColourSpec,
    out_layout: YuvLayout,
    out_spec: ColourSpec,
    /// None when the size stays.
    resize: Option<DeviceResize>,
    /// Clip R'G'B' to the unit cube: when the matrix changes (as swscale does; colours
    /// outside the cube cannot be shown anyway), not for a range or layout change alone
    /// (then every sample maps affinely, as in swscale).
    clip_rgb: bool,
}

struct Plans {
    work: Work,
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
                "Resizes 4:2:0 video (I420/NV12 to I420) with Lanczos-3 or bicubic and converts its \
                 colour matrix and range on aiprod's wgpu kernels",
                "aiprod",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = |formats: &[gst_video::VideoFormat]| {
                gst_video::VideoCapsBuilder::new()
                    .format_list(formats.iter().copied())
                    .width_range(1..=MAX_SIDE)
                    .height_range(1..=MAX_SIDE)
                    .build()
            };
            let pad = |name, dir, caps: &gst::Caps| {
                gst::PadTemplate::new(name, dir, gst::PadPresence::Always, caps)
                    .expect("static pad template")
            };
            vec![
                pad("src", gst::PadDirection::Src, &caps(&OUTPUT_FORMATS)),
                pad("sink", gst::PadDirection::Sink, &caps(&INPUT_FORMATS)),
            ]
        });
        TEMPLATES.as_ref()
    }
}

const INPUT_FORMATS: [gst_video::VideoFormat; 2] =
    [gst_video::VideoFormat::I420, gst_video::VideoFormat::Nv12];
const OUTPUT_FORMATS: [gst_video::VideoFormat; 1] = [gst_video::VideoFormat::I420];

/// What the other side may be: any size, pixel aspect ratio, colorimetry and chroma siting, in
/// `formats`; every other field unchanged.
fn any_size_and_colour(caps: &gst::Caps, formats: &[gst_video::VideoFormat]) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    let out_mut = out.make_mut();
    for (s, features) in caps.iter_with_features() {
        let mut s = s.to_owned();
        s.set("width", gst::IntRange::new(1, MAX_SIDE));
        s.set("height", gst::IntRange::new(1, MAX_SIDE));
        s.set(
            "format",
            gst::List::new(formats.iter().map(|f| f.to_str().to_string())),
        );
        for field in ["pixel-aspect-ratio", "colorimetry", "chroma-site"] {
            s.remove_field(field);
        }
        out_mut.append_structure_full(s, Some(features.to_owned()));
    }
    out
}

/// The kernels' colour spec for a negotiated video info (colorimetry made explicit by
/// `VideoInfo::from_caps`, which fills GStreamer's defaults in).
fn colour_spec(info: &gst_video::VideoInfo) -> Result<ColourSpec, String> {
    let c = info.colorimetry();
    let matrix = match c.matrix() {
        gst_video::VideoColorMatrix::Bt601 => Matrix::Bt601,
        gst_video::VideoColorMatrix::Bt709 => Matrix::Bt709,
        gst_video::VideoColorMatrix::Bt2020 => Matrix::Bt2020,
        gst_video::VideoColorMatrix::Fcc => Matrix::Fcc,
        gst_video::VideoColorMatrix::Smpte240m => Matrix::Smpte240m,
        other => {
            return Err(format!(
                "colour matrix {other:?} (colorimetry {c:?}) is not one of BT.601, BT.709, \
                 BT.2020, FCC, SMPTE 240M"
            ))
        }
    };
    let range = match c.range() {
        gst_video::VideoColorRange::Range0_255 => Range::Full,
        _ => Range::Limited,
    };
    // MPEG-2/H.264 "left" siting is horizontally co-sited; everything else is taken as centred.
    let siting = if info
        .chroma_site()
        .contains(gst_video::VideoChromaSite::H_COSITED)
    {
        ChromaSiting::Left
    } else {
        ChromaSiting::Center
    };
    Ok(ColourSpec {
        matrix,
        range,
        siting,
    })
}

fn yuv_format(info: &gst_video::VideoInfo) -> Result<YuvFormat, String> {
    match info.format() {
        gst_video::VideoFormat::I420 => Ok(YuvFormat::I420),
        gst_video::VideoFormat::Nv12 => Ok(YuvFormat::Nv12),
        other => Err(format!("format {other:?}: expected I420 or NV12")),
    }
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
        let in_format = yuv_format(in_info)?;
        if yuv_format(out_info)? != YuvFormat::I420 {
            return Err(format!(
                "output format {:?}: expected I420",
                out_info.format()
            ));
        }
        let in_spec = colour_spec(in_info).map_err(|e| format!("input {e}"))?;
        let out_spec = colour_spec(out_info).map_err(|e| format!("output {e}"))?;
        let same_colour = in_spec.matrix == out_spec.matrix && in_spec.range == out_spec.range;
        let work = if in_format == YuvFormat::I420 && same_colour {
            let (icw, ich) = chroma_size(iw, ih);
            let (ocw, och) = chroma_size(ow, oh);
            let luma = ResizePlan::new(iw, ih, ow, oh, filter)
                .and_then(|p| DeviceResize::new(ctx, &p))
                .map_err(|e| format!("luma {iw}x{ih} -> {ow}x{oh}: {e}"))?;
            let chroma = ResizePlan::new(icw, ich, ocw, och, filter)
                .and_then(|p| DeviceResize::new(ctx, &p))
                .map_err(|e| format!("chroma {icw}x{ich} -> {ocw}x{och}: {e}"))?;
            Work::Planes { luma, chroma }
        } else {
            let resize = if (iw, ih) == (ow, oh) {
                None
            } else {
                Some(
                    ResizePlan::new(iw, ih, ow, oh, filter)
                        .and_then(|p| DeviceResize::new(ctx, &p))
                        .map_err(|e| format!("{iw}x{ih} -> {ow}x{oh}: {e}"))?,
                )
            };
            Work::Convert(Conversion {
                in_layout: YuvLayout::packed(in_format, iw, ih).map_err(|e| e.to_string())?,
                in_spec,
                out_layout: YuvLayout::packed(YuvFormat::I420, ow, oh)
                    .map_err(|e| e.to_string())?,
                out_spec,
                resize,
                clip_rgb: in_spec.matrix != out_spec.matrix,
            })
        };
        Ok(Plans {
            work,
            in_info: in_info.clone(),
            out_info: out_info.clone(),
        })
    }
}

/// Row `(offset, row_bytes, rows)` of each plane of a packed `layout`, in plane order.
fn packed_planes(layout: &YuvLayout) -> Vec<(usize, usize, usize)> {
    let (w, h) = (layout.width as usize, layout.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let off = |p: usize| layout.offsets_bytes[p] as usize;
    match layout.format {
        YuvFormat::I420 => vec![(off(0), w, h), (off(1), cw, ch), (off(2), cw, ch)],
        YuvFormat::Nv12 => vec![(off(0), w, h), (off(1), 2 * cw, ch)],
    }
}

/// Copies the planes of a mapped frame into one packed buffer laid out as `layout`.
fn pack_frame(
    frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
    layout: &YuvLayout,
) -> Result<Vec<u8>, String> {
    let mut packed = vec![0u8; layout.len_bytes() as usize];
    for (plane, (offset, row_bytes, rows)) in packed_planes(layout).into_iter().enumerate() {
        let data = frame
            .plane_data(plane as u32)
            .map_err(|_| format!("input plane {plane} unreadable"))?;
        let stride = usize::try_from(frame.plane_stride()[plane])
            .map_err(|_| format!("input plane {plane} has a negative stride"))?;
        for y in 0..rows {
            let src = data
                .get(y * stride..y * stride + row_bytes)
                .ok_or_else(|| format!("input plane {plane} too small for row {y}"))?;
            packed[offset + y * row_bytes..offset + (y + 1) * row_bytes].copy_from_slice(src);
        }
    }
    Ok(packed)
}

/// Writes a packed plane (`w` bytes per row) into plane `plane` of the output frame.
fn write_plane(
    out_frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    plane: usize,
    packed: &[u8],
    w: usize,
    h: usize,
) -> Result<(), String> {
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
    Ok(())
}

/// Converts (and resizes) `inbuf` into `outbuf` through planar R'G'B' on the device.
fn convert_frame(
    ctx: &Context,
    plans: &Plans,
    c: &Conversion,
    inbuf: &gst::BufferRef,
    outbuf: &mut gst::BufferRef,
) -> Result<(), String> {
    let in_frame = gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf, &plans.in_info)
        .map_err(|_| "cannot map the input buffer".to_string())?;
    let packed = pack_frame(&in_frame, &c.in_layout)?;
    let yuv = ctx
        .upload("aiprodscale input frame", &packed)
        .map_err(|e| e.to_string())?;
    let rgb = if c.clip_rgb {
        yuv_to_planar_device(ctx, &yuv, &c.in_layout, &c.in_spec)
    } else {
        yuv_to_planar_extended_device(ctx, &yuv, &c.in_layout, &c.in_spec)
    }
    .map_err(|e| format!("to R'G'B': {e}"))?;
    let rgb = match &c.resize {
        Some(r) => r
            .planar_f32(ctx, &rgb, 3)
            .map_err(|e| format!("resize: {e}"))?,
        None => rgb,
    };
    let out = if c.clip_rgb {
        planar_to_yuv_device(ctx, &rgb, &c.out_layout, &c.out_spec)
    } else {
        planar_extended_to_yuv_device(ctx, &rgb, &c.out_layout, &c.out_spec)
    }
    .map_err(|e| format!("to YUV: {e}"))?;
    let bytes = ctx
        .download(&out, c.out_layout.len_bytes())
        .map_err(|e| e.to_string())?;
    let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &plans.out_info)
        .map_err(|_| "cannot map the output buffer".to_string())?;
    for (plane, (offset, row_bytes, rows)) in packed_planes(&c.out_layout).into_iter().enumerate() {
        let data = bytes
            .get(offset..offset + row_bytes * rows)
            .ok_or_else(|| format!("converted plane {plane} is short"))?;
        write_plane(&mut out_frame, plane, data, row_bytes, rows)?;
    }
    Ok(())
}

/// Resizes the three planes of `inbuf` into `outbuf` on the device.
fn resize_planes(
    ctx: &Context,
    plans: &Plans,
    luma: &DeviceResize,
    chroma: &DeviceResize,
    inbuf: &gst::BufferRef,
    outbuf: &mut gst::BufferRef,
) -> Result<(), String> {
    let in_frame = gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf, &plans.in_info)
        .map_err(|_| "cannot map the input buffer".to_string())?;
    let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &plans.out_info)
        .map_err(|_| "cannot map the output buffer".to_string())?;
    let device_of = |plane: usize| if plane == 0 { luma } else { chroma };
    // Queue all three planes before reading any back.
    let mut resized = Vec::with_capacity(3);
    for plane in 0..3usize {
        let data = in_frame
            .plane_data(plane as u32)
            .map_err(|_| format!("input plane {plane} unreadable"))?;
        let stride = u64::try_from(in_frame.plane_stride()[plane])
            .map_err(|_| format!("input plane {plane} has a negative stride"))?;
        let buf = ctx
            .upload("aiprodscale input plane", data)
            .map_err(|e| e.to_string())?;
        let out = device_of(plane)
            .plane_u8(ctx, &buf, 0, stride)
            .map_err(|e| format!("plane {plane}: {e}"))?;
        resized.push(out);
    }
    for (plane, buf) in resized.iter().enumerate() {
        let plan = device_of(plane).plan();
        let (w, h) = (plan.dst_w as usize, plan.dst_h as usize);
        let packed = ctx
            .download(buf, (w * h) as u64)
            .map_err(|e| format!("plane {plane}: {e}"))?;
        write_plane(&mut out_frame, plane, &packed, w, h)?;
    }
    Ok(())
}

fn process_frame(
    ctx: &Context,
    plans: &Plans,
    inbuf: &gst::BufferRef,
    outbuf: &mut gst::BufferRef,
) -> Result<(), String> {
    match &plans.work {
        Work::Planes { luma, chroma } => resize_planes(ctx, plans, luma, chroma, inbuf, outbuf),
        Work::Convert(c) => convert_frame(ctx, plans, c, inbuf, outbuf),
    }
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
        let formats: &[gst_video::VideoFormat] = match direction {
            gst::PadDirection::Sink => &OUTPUT_FORMATS,
            _ => &INPUT_FORMATS,
        };
        let mut out = caps.clone();
        out.merge(any_size_and_colour(caps, formats));
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
            // Keep the colour description where the other side leaves it open (explicit, so an
            // untagged SD input stays BT.601 even when the output's size would default to 709).
            let colorimetry = gst_video::VideoInfo::from_caps(caps)
                .ok()
                .map(|i| i.colorimetry())
                .filter(|c| c.matrix() != gst_video::VideoColorMatrix::Unknown)
                .map(|c| c.to_string());
            // (chroma sites without a name have no string form: copied only when present)
            let site = from.get::<String>("chroma-site").ok();
            for (field, value) in [("colorimetry", colorimetry), ("chroma-site", site)] {
                let Some(value) = value else { continue };
                if !s.has_field(field) {
                    s.set(field, value);
                } else {
                    s.fixate_field_str(field, &value);
                }
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
        process_frame(&state.ctx, plans, inbuf.as_ref(), outbuf).map_err(|e| {
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
        let any = any_size_and_colour(&caps, &INPUT_FORMATS);
        let s = any.structure(0).expect("structure");
        assert_eq!(
            s.get::<gst::IntRange<i32>>("width").expect("width"),
            gst::IntRange::new(1, MAX_SIDE)
        );
        assert!(!s.has_field("pixel-aspect-ratio"));
        assert!(!s.has_field("colorimetry"));
        assert_eq!(
            s.get::<gst::List>("format")
                .expect("format list")
                .iter()
                .map(|v| v.get::<String>().expect("format name"))
                .collect::<Vec<_>>(),
            ["I420", "NV12"]
        );
        assert_eq!(
            s.get::<gst::Fraction>("framerate").expect("framerate"),
            gst::Fraction::new(25, 1)
        );
        assert_eq!(chroma_size(161, 91), (81, 46));
        assert_eq!(filter_of("lanczos"), Some(Filter::Lanczos3));
        assert_eq!(filter_of("nearest"), None);
    }
}
