//! Full → limited range for 8-bit planar YUV, in place, by table, right after the decoder.
//!
//! GStreamer 1.22's videoconvert converts the range only when the matrix changes too, so
//! full-range sources (phones, MJPEG) kept 0–255 levels labelled 16–235. Mapping each sample
//! (luma `16 + v·219/255`, chroma `128 + (v − 128)·224/255`, rounded) is exactly what a
//! range-only conversion is — swscale gives the same bytes — and costs one table lookup per
//! sample; the frames then go on as ordinary limited-range video. Formats this cannot do in
//! place (more than 8 bits, packed 4:2:2, alpha) go through RGB before videoconvertscale instead
//! ([`rgb_detour_format`], applied in `process.rs`).

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

/// Lookup tables for one 8-bit full → limited mapping.
pub(super) struct RangeTables {
    luma: [u8; 256],
    chroma: [u8; 256],
}

impl RangeTables {
    pub(super) fn full_to_limited() -> Self {
        let map = |f: fn(f64) -> f64| -> [u8; 256] {
            std::array::from_fn(|v| f(v as f64).round().clamp(0.0, 255.0) as u8)
        };
        Self {
            luma: map(|v| 16.0 + v * 219.0 / 255.0),
            chroma: map(|v| 128.0 + (v - 128.0) * 224.0 / 255.0),
        }
    }

    #[cfg(test)]
    pub(super) fn luma(&self, v: u8) -> u8 {
        self.luma[usize::from(v)]
    }

    #[cfg(test)]
    pub(super) fn chroma(&self, v: u8) -> u8 {
        self.chroma[usize::from(v)]
    }
}

/// Whether frames of `info` are full-range YUV this module converts in place: 8 bits per
/// component, three components, luma in a plane of its own (I420, YV12, NV12, NV21, Y41B, Y42B,
/// Y444, …).
pub(super) fn convertible_in_place(info: &gst_video::VideoInfo) -> bool {
    let f = info.format_info();
    info.is_yuv()
        && info.colorimetry().range() == gst_video::VideoColorRange::Range0_255
        && f.n_components() == 3
        && f.depth().iter().take(3).all(|d| *d == 8)
        && f.plane()[0] != f.plane()[1]
        && f.plane()[0] != f.plane()[2]
}

/// `caps` (of a [`convertible_in_place`] format) labelled limited range.
pub(super) fn limited_caps(caps: &gst::CapsRef, info: &gst_video::VideoInfo) -> gst::Caps {
    let c = info.colorimetry();
    let limited = gst_video::VideoColorimetry::new(
        gst_video::VideoColorRange::Range16_235,
        c.matrix(),
        c.transfer(),
        c.primaries(),
    );
    let mut caps = caps.to_owned();
    caps.make_mut().set("colorimetry", limited.to_string());
    caps
}

/// Maps every luma and chroma sample of one frame in place.
pub(super) fn convert_frame(
    buffer: &mut gst::BufferRef,
    info: &gst_video::VideoInfo,
    tables: &RangeTables,
) -> Result<(), String> {
    let f = info.format_info();
    let luma_plane = f.plane()[0];
    let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, info)
        .map_err(|_| "cannot map the decoded frame for writing".to_string())?;
    for plane in 0..f.n_planes() {
        // the first component stored in this plane gives its row length
        let comp = (0..3usize)
            .find(|c| f.plane()[*c] == plane)
            .ok_or_else(|| format!("plane {plane} holds no colour component"))?;
        let row_bytes = f.scale_width(comp as u8, info.width()) as usize
            * usize::try_from(f.pixel_stride()[comp]).map_err(|_| "negative pixel stride")?;
        let rows = f.scale_height(comp as u8, info.height()) as usize;
        let stride = usize::try_from(frame.plane_stride()[plane as usize])
            .map_err(|_| format!("plane {plane} has a negative stride"))?;
        let table = if plane == luma_plane {
            &tables.luma
        } else {
            &tables.chroma
        };
        let data = frame
            .plane_data_mut(plane)
            .map_err(|_| format!("plane {plane} is not writable"))?;
        for y in 0..rows {
            let row = data
                .get_mut(y * stride..y * stride + row_bytes)
                .ok_or_else(|| format!("plane {plane} is too small for row {y}"))?;
            for v in row {
                *v = table[usize::from(*v)];
            }
        }
    }
    Ok(())
}

/// The RGB format to route full-range YUV through before videoconvertscale when
/// [`convertible_in_place`] cannot map it in place (more than 8 bits, packed 4:2:2,
/// alpha), or `None` for anything else. GStreamer 1.22's videoconvert converts the range only
/// when the matrix changes too; through RGB the range is applied. 16-bit RGB for deeper sources
/// keeps their precision.
pub(super) fn rgb_detour_format(caps: &gst::CapsRef) -> Option<&'static str> {
    let info = gst_video::VideoInfo::from_caps(caps).ok()?;
    if !info.is_yuv()
        || info.colorimetry().range() != gst_video::VideoColorRange::Range0_255
        || convertible_in_place(&info)
    {
        return None;
    }
    Some(if info.format_info().depth()[0] > 8 {
        "ARGB64"
    } else {
        "RGB"
    })
}
