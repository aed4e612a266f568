//! Colour conversion between 8-bit YUV 4:2:0 (I420, NV12) and RGB: packed RGBA8 (or RGB8 on the
//! host) and planar f32 RGB in [0, 1] (CHW, what the Real-ESRGAN kernels consume).
//!
//! - Matrices BT.601, BT.709 and BT.2020 (non-constant luminance); limited (16–235 luma, 16–240
//!   chroma) or full (0–255, chroma scaled by 255 as in JFIF) range.
//! - Any width and height (chroma planes are ⌈w/2⌉×⌈h/2⌉), planes at any byte offset with any
//!   stride ([`YuvLayout`]), so a decoder's frame memory uploads as it is.
//! - YUV→RGB upsamples chroma bilinearly. [`ChromaSiting::Left`] (the default) is MPEG-2/H.264's
//!   4:2:0 siting (chroma co-sited with even luma columns, between luma rows); `Center` is JPEG's.
//!   Sample coordinates are clamped at the edges.
//! - RGB→YUV takes the mean of each 2×2 block for chroma (edge pixels repeat at odd sizes).
//!
//! Rounding: the 8-bit↔8-bit paths are integer fixed point (16 fractional bits, chroma sums kept
//! exact), shared by the shader and [`cpu`], so GPU and CPU agree exactly. The f32 paths use the
//! same f32 coefficients in the same order; GPU and CPU agree within [`F32_TOLERANCE`] for f32
//! outputs and within ±1 for 8-bit outputs from f32 input (a fused multiply-add may move a value
//! across a rounding boundary).

use bytemuck::{Pod, Zeroable};

use crate::context::{Context, PooledBuffer};
use crate::error::{KernelError, Result};

const SHADER: &str = include_str!("../shaders/colour.wgsl");

/// Largest width or height accepted: beyond 8K UHD (7680) with room, and small enough that any
/// frame's byte addresses fit the shaders' u32 arithmetic (16384² × 4 bytes = 1 GiB).
pub const MAX_SIDE_PX: u32 = 16384;

/// Largest absolute difference between the GPU's and the CPU reference's f32 outputs.
pub const F32_TOLERANCE: f32 = 1e-6;

/// Fractional bits of the fixed-point coefficients.
const FIXED_BITS: u32 = 16;

/// The YUV↔RGB matrix (non-constant luminance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matrix {
    Bt601,
    #[default]
    Bt709,
    Bt2020,
    /// FCC (Kr 0.30, Kb 0.11): old NTSC, still signalled by some files.
    Fcc,
    /// SMPTE 240M (Kr 0.212, Kb 0.087): early HDTV.
    Smpte240m,
}

impl Matrix {
    /// (Kr, Kb).
    fn kr_kb(self) -> (f64, f64) {
        match self {
            Self::Bt601 => (0.299, 0.114),
            Self::Bt709 => (0.2126, 0.0722),
            Self::Bt2020 => (0.2627, 0.0593),
            Self::Fcc => (0.30, 0.11),
            Self::Smpte240m => (0.212, 0.087),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Range {
    /// Luma 16–235, chroma 16–240 ("tv", "mpeg").
    #[default]
    Limited,
    /// 0–255 ("pc", "jpeg").
    Full,
}

/// Where a 4:2:0 chroma sample sits relative to the luma grid (vertically always between rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChromaSiting {
    /// Co-sited with even luma columns: MPEG-2, H.264, HEVC default (FFmpeg's `AVCHROMA_LOC_LEFT`).
    #[default]
    Left,
    /// Between luma columns: JPEG, MPEG-1 (`AVCHROMA_LOC_CENTER`).
    Center,
}

/// How YUV values map to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ColourSpec {
    pub matrix: Matrix,
    pub range: Range,
    /// Used by YUV→RGB upsampling; RGB→YUV always averages 2×2 blocks.
    pub siting: ChromaSiting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YuvFormat {
    /// Planar Y, U, V.
    I420,
    /// Planar Y, then interleaved U, V.
    Nv12,
}

/// Where the planes of one 8-bit 4:2:0 frame lie in a byte buffer. Plane 0 is Y; for I420 planes
/// 1 and 2 are U and V; for NV12 plane 1 is UV and plane 2 is unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvLayout {
    pub format: YuvFormat,
    pub width: u32,
    pub height: u32,
    pub offsets_bytes: [u64; 3],
    pub strides_bytes: [u64; 3],
}

/// One plane's extent as validated.
#[derive(Debug, Clone, Copy)]
struct PlaneExtent {
    name: &'static str,
    offset: u64,
    stride: u64,
    row_bytes: u64,
    rows: u64,
}

impl PlaneExtent {
    fn end(&self) -> u64 {
        self.offset + self.stride * (self.rows - 1) + self.row_bytes
    }
}

fn check_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 || width > MAX_SIDE_PX || height > MAX_SIDE_PX {
        return Err(KernelError::InvalidInput(format!(
            "frame size {width}x{height}: each side must be 1..={MAX_SIDE_PX} pixels"
        )));
    }
    Ok(())
}

impl YuvLayout {
    /// Planes one after another with no padding (stride = row width).
    pub fn packed(format: YuvFormat, width: u32, height: u32) -> Result<Self> {
        check_size(width, height)?;
        let (w, h) = (u64::from(width), u64::from(height));
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let layout = match format {
            YuvFormat::I420 => Self {
                format,
                width,
                height,
                offsets_bytes: [0, w * h, w * h + cw * ch],
                strides_bytes: [w, cw, cw],
            },
            YuvFormat::Nv12 => Self {
                format,
                width,
                height,
                offsets_bytes: [0, w * h, 0],
                strides_bytes: [w, 2 * cw, 0],
            },
        };
        layout.validate()?;
        Ok(layout)
    }

    pub fn chroma_size(&self) -> (u32, u32) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    fn planes(&self) -> Vec<PlaneExtent> {
        let (cw, ch) = self.chroma_size();
        let (cw, ch) = (u64::from(cw), u64::from(ch));
        let plane = |i: usize, name, row_bytes, rows| PlaneExtent {
            name,
            offset: self.offsets_bytes[i],
            stride: self.strides_bytes[i],
            row_bytes,
            rows,
        };
        let luma = plane(0, "Y", u64::from(self.width), u64::from(self.height));
        match self.format {
            YuvFormat::I420 => vec![luma, plane(1, "U", cw, ch), plane(2, "V", cw, ch)],
            YuvFormat::Nv12 => vec![luma, plane(1, "UV", 2 * cw, ch)],
        }
    }

    /// Checks sizes, strides and that planes do not overlap; all byte addresses fit in u32.
    pub fn validate(&self) -> Result<()> {
        check_size(self.width, self.height)?;
        let planes = self.planes();
        for p in &planes {
            if p.stride < p.row_bytes {
                return Err(KernelError::InvalidInput(format!(
                    "{} plane stride {} bytes is less than its row of {} bytes ({}x{} {:?})",
                    p.name, p.stride, p.row_bytes, self.width, self.height, self.format
                )));
            }
            let end = p
                .stride
                .checked_mul(p.rows - 1)
                .and_then(|v| v.checked_add(p.offset))
                .and_then(|v| v.checked_add(p.row_bytes));
            match end {
                Some(e) if e <= MAX_FRAME_BYTES => {}
                _ => {
                    return Err(KernelError::TooLarge {
                        what: format!(
                            "{} plane (offset {}, stride {})",
                            p.name, p.offset, p.stride
                        ),
                        needed_bytes: end.unwrap_or(u64::MAX),
                        limit_bytes: MAX_FRAME_BYTES,
                    })
                }
            }
        }
        for (i, a) in planes.iter().enumerate() {
            for b in &planes[i + 1..] {
                if a.offset < b.end() && b.offset < a.end() {
                    return Err(KernelError::InvalidInput(format!(
                        "{} plane (bytes {}..{}) overlaps {} plane (bytes {}..{})",
                        a.name,
                        a.offset,
                        a.end(),
                        b.name,
                        b.offset,
                        b.end()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Bytes from the start of the buffer to the end of the last plane.
    pub fn len_bytes(&self) -> u64 {
        self.planes()
            .iter()
            .map(PlaneExtent::end)
            .max()
            .unwrap_or(0)
    }

    fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Largest YUV frame in bytes: the shaders address bytes with u32 and round up to whole words.
const MAX_FRAME_BYTES: u64 = u32::MAX as u64 - 3;

/// Everything a shader invocation needs; laid out as `Params` in colour.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Params {
    width: u32,
    height: u32,
    chroma_w: u32,
    chroma_h: u32,
    nv12: u32,
    left_siting: u32,
    len_bytes: u32,
    row_invocations: u32,
    off_y: u32,
    off_u: u32,
    off_v: u32,
    stride_y: u32,
    stride_u: u32,
    stride_v: u32,
    y_off: i32,
    /// 1: planar f32 R'G'B' is not clamped to [0, 1] (either direction).
    extended: u32,
    cy: i32,
    crv: i32,
    cgu: i32,
    cgv: i32,
    cbu: i32,
    yr: i32,
    yg: i32,
    yb: i32,
    ur: i32,
    ug: i32,
    ub: i32,
    vr: i32,
    vg: i32,
    vb: i32,
    _pad1: u32,
    _pad2: u32,
    fcy: f32,
    fcrv: f32,
    fcgu: f32,
    fcgv: f32,
    fcbu: f32,
    fyr: f32,
    fyg: f32,
    fyb: f32,
    fur: f32,
    fug: f32,
    fub: f32,
    fvr: f32,
    fvg: f32,
    fvb: f32,
    _pad3: u32,
    _pad4: u32,
}

fn fixed(v: f64) -> i32 {
    (v * f64::from(1u32 << FIXED_BITS)).round() as i32
}

/// Whether planar f32 R'G'B' is clamped to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gamut {
    Clamped,
    /// Values outside the RGB cube kept: a YUV → YUV conversion that only changes the range
    /// (or the layout) is then exact per sample, as swscale does it.
    Extended,
}

impl Params {
    fn with_gamut(mut self, gamut: Gamut) -> Self {
        self.extended = u32::from(gamut == Gamut::Extended);
        self
    }

    fn new(layout: &YuvLayout, spec: &ColourSpec) -> Result<Self> {
        layout.validate()?;
        let (kr, kb) = spec.matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        // Output 8-bit units per unit of Y' and of Pb/Pr.
        let (luma_scale, chroma_scale, y_off) = match spec.range {
            Range::Limited => (219.0, 224.0, 16),
            Range::Full => (255.0, 255.0, 0),
        };
        // YUV -> RGB (8-bit RGB per 8-bit code value).
        let cy = 255.0 / luma_scale;
        let crv = 255.0 / chroma_scale * 2.0 * (1.0 - kr);
        let cgu = 255.0 / chroma_scale * 2.0 * (1.0 - kb) * kb / kg;
        let cgv = 255.0 / chroma_scale * 2.0 * (1.0 - kr) * kr / kg;
        let cbu = 255.0 / chroma_scale * 2.0 * (1.0 - kb);
        // RGB -> YUV (8-bit code values per 8-bit RGB).
        let sy = luma_scale / 255.0;
        let sc = chroma_scale / 255.0;
        let (yr, yb) = (sy * kr, sy * kb);
        let (ur, ug, ub) = (
            -sc * kr / (2.0 * (1.0 - kb)),
            -sc * kg / (2.0 * (1.0 - kb)),
            sc * 0.5,
        );
        let (vr, vg, vb) = (
            sc * 0.5,
            -sc * kg / (2.0 * (1.0 - kr)),
            -sc * kb / (2.0 * (1.0 - kr)),
        );
        // Fixed-point rows sum exactly to white (luma) and to zero (chroma), so greys stay grey.
        let (fyr, fyb) = (fixed(yr), fixed(yb));
        let fyg = fixed(sy) - fyr - fyb;
        let (fur, fub) = (fixed(ur), fixed(ub));
        let fvg = fixed(vg);
        let (cw, ch) = layout.chroma_size();
        let o = layout.offsets_bytes;
        let s = layout.strides_bytes;
        // validate() bounded every plane end (hence offset and stride) by MAX_FRAME_BYTES < 2^32.
        let narrow = |v: u64| v as u32;
        Ok(Self {
            width: layout.width,
            height: layout.height,
            chroma_w: cw,
            chroma_h: ch,
            nv12: u32::from(layout.format == YuvFormat::Nv12),
            left_siting: u32::from(spec.siting == ChromaSiting::Left),
            len_bytes: narrow(layout.len_bytes()),
            row_invocations: 0,
            off_y: narrow(o[0]),
            off_u: narrow(o[1]),
            off_v: if layout.format == YuvFormat::I420 {
                narrow(o[2])
            } else {
                0
            },
            stride_y: narrow(s[0]),
            stride_u: narrow(s[1]).max(1),
            stride_v: if layout.format == YuvFormat::I420 {
                narrow(s[2]).max(1)
            } else {
                1
            },
            y_off,
            extended: 0,
            cy: fixed(cy),
            crv: fixed(crv),
            cgu: fixed(cgu),
            cgv: fixed(cgv),
            cbu: fixed(cbu),
            yr: fyr,
            yg: fyg,
            yb: fyb,
            ur: fur,
            ug: -fur - fub,
            ub: fub,
            vr: fub,
            vg: fvg,
            vb: -fub - fvg,
            _pad1: 0,
            _pad2: 0,
            fcy: (cy / 255.0) as f32,
            fcrv: (crv / 255.0) as f32,
            fcgu: (cgu / 255.0) as f32,
            fcgv: (cgv / 255.0) as f32,
            fcbu: (cbu / 255.0) as f32,
            fyr: (yr * 255.0) as f32,
            fyg: (sy * kg * 255.0) as f32,
            fyb: (yb * 255.0) as f32,
            fur: (ur * 255.0) as f32,
            fug: (ug * 255.0) as f32,
            fub: (ub * 255.0) as f32,
            fvr: (vr * 255.0) as f32,
            fvg: (vg * 255.0) as f32,
            fvb: (vb * 255.0) as f32,
            _pad3: 0,
            _pad4: 0,
        })
    }
}

fn need(what: &str, have: u64, needed: u64) -> Result<()> {
    if have < needed {
        return Err(KernelError::InvalidInput(format!(
            "{what} holds {have} bytes, the frame needs {needed}"
        )));
    }
    Ok(())
}

fn rgba_bytes(layout: &YuvLayout) -> u64 {
    layout.pixels() * 4
}

fn planar_bytes(layout: &YuvLayout) -> u64 {
    layout.pixels() * 3 * 4
}

// ---------------------------------------------------------------------------------------------
// Device-resident: buffers in, buffers out; nothing returns to the host.

fn to_rgb_device(
    ctx: &Context,
    yuv: &PooledBuffer,
    layout: &YuvLayout,
    spec: &ColourSpec,
    entry: &str,
    out_bytes: u64,
    gamut: Gamut,
) -> Result<PooledBuffer> {
    let params = Params::new(layout, spec)?.with_gamut(gamut);
    need("YUV buffer", yuv.len_bytes(), layout.len_bytes())?;
    let out = ctx.storage(entry, out_bytes)?;
    let pipeline = ctx.pipeline(&format!("colour.{entry}"), SHADER, entry)?;
    let uniform = ctx.uniform(&params);
    let mut batch = ctx.batch();
    batch.dispatch(
        &pipeline,
        &[uniform.as_entire_binding(), yuv.binding(), out.binding()],
        (layout.width.div_ceil(16), layout.height.div_ceil(16), 1),
    );
    batch.submit()?;
    Ok(out)
}

/// YUV frame → packed RGBA8 words (R in the low byte, alpha 255), `width × height × 4` bytes.
pub fn yuv_to_rgba_device(
    ctx: &Context,
    yuv: &PooledBuffer,
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<PooledBuffer> {
    to_rgb_device(
        ctx,
        yuv,
        layout,
        spec,
        "yuv_to_rgba",
        rgba_bytes(layout),
        Gamut::Clamped,
    )
}

/// YUV frame → planar f32 R, G, B planes (CHW) in [0, 1].
pub fn yuv_to_planar_device(
    ctx: &Context,
    yuv: &PooledBuffer,
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<PooledBuffer> {
    to_rgb_device(
        ctx,
        yuv,
        layout,
        spec,
        "yuv_to_planar",
        planar_bytes(layout),
        Gamut::Clamped,
    )
}

/// [`yuv_to_planar_device`] without clamping to [0, 1]: colours outside the RGB cube keep their
/// values, for a conversion to another YUV matrix or range ([`planar_extended_to_yuv_device`]).
pub fn yuv_to_planar_extended_device(
    ctx: &Context,
    yuv: &PooledBuffer,
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<PooledBuffer> {
    to_rgb_device(
        ctx,
        yuv,
        layout,
        spec,
        "yuv_to_planar",
        planar_bytes(layout),
        Gamut::Extended,
    )
}

fn to_yuv_device(
    ctx: &Context,
    rgb: &PooledBuffer,
    layout: &YuvLayout,
    spec: &ColourSpec,
    entry: &str,
    in_bytes: u64,
    gamut: Gamut,
) -> Result<PooledBuffer> {
    let mut params = Params::new(layout, spec)?.with_gamut(gamut);
    need("RGB buffer", rgb.len_bytes(), in_bytes)?;
    let len = layout.len_bytes();
    let out = ctx.storage("YUV frame", len)?;
    let pipeline = ctx.pipeline(&format!("colour.{entry}"), SHADER, entry)?;
    let words = u32::try_from(len.div_ceil(4)).map_err(|_| KernelError::TooLarge {
        what: "YUV frame".into(),
        needed_bytes: len,
        limit_bytes: MAX_FRAME_BYTES,
    })?;
    let (gx, gy) = ctx.grid(words.div_ceil(64));
    params.row_invocations = gx * 64;
    let uniform = ctx.uniform(&params);
    let mut batch = ctx.batch();
    batch.dispatch(
        &pipeline,
        &[uniform.as_entire_binding(), rgb.binding(), out.binding()],
        (gx, gy, 1),
    );
    batch.submit()?;
    Ok(out)
}

/// Packed RGBA8 words (`width × height`) → YUV frame in `layout` (bytes outside planes are 0).
pub fn rgba_to_yuv_device(
    ctx: &Context,
    rgba: &PooledBuffer,
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<PooledBuffer> {
    to_yuv_device(
        ctx,
        rgba,
        layout,
        spec,
        "rgba_to_yuv",
        rgba_bytes(layout),
        Gamut::Clamped,
    )
}

/// Planar f32 R, G, B (CHW; values clamped to [0, 1]) → YUV frame in `layout`.
pub fn planar_to_yuv_device(
    ctx: &Context,
    planar: &PooledBuffer,
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<PooledBuffer> {
    to_yuv_device(
        ctx,
        planar,
        layout,
        spec,
        "planar_to_yuv",
        planar_bytes(layout),
        Gamut::Clamped,
    )
}

/// [`planar_to_yuv_device`] without clamping the input to [0, 1] (only the 8-bit results are
/// clamped): the other half of a YUV → YUV conversion.
pub fn planar_extended_to_yuv_device(
    ctx: &Context,
    planar: &PooledBuffer,
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<PooledBuffer> {
    to_yuv_device(
        ctx,
        planar,
        layout,
        spec,
        "planar_to_yuv",
        planar_bytes(layout),
        Gamut::Extended,
    )
}

// ---------------------------------------------------------------------------------------------
// Host conveniences: upload, convert on the device, download.

fn upload_yuv(ctx: &Context, yuv: &[u8], layout: &YuvLayout) -> Result<PooledBuffer> {
    layout.validate()?;
    let len = layout.len_bytes();
    need("YUV input", yuv.len() as u64, len)?;
    ctx.upload("YUV frame", &yuv[..len as usize])
}

/// YUV bytes → RGBA8 bytes (`width × height × 4`).
pub fn yuv_to_rgba(
    ctx: &Context,
    yuv: &[u8],
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<Vec<u8>> {
    let src = upload_yuv(ctx, yuv, layout)?;
    let out = yuv_to_rgba_device(ctx, &src, layout, spec)?;
    ctx.download(&out, rgba_bytes(layout))
}

/// YUV bytes → RGB8 bytes (`width × height × 3`).
pub fn yuv_to_rgb8(
    ctx: &Context,
    yuv: &[u8],
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<Vec<u8>> {
    Ok(rgba_to_rgb8(&yuv_to_rgba(ctx, yuv, layout, spec)?))
}

/// YUV bytes → planar f32 RGB (CHW, `3 × width × height`) in [0, 1].
pub fn yuv_to_planar(
    ctx: &Context,
    yuv: &[u8],
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<Vec<f32>> {
    let src = upload_yuv(ctx, yuv, layout)?;
    let out = yuv_to_planar_device(ctx, &src, layout, spec)?;
    ctx.download_as(&out, (layout.pixels() * 3) as usize)
}

/// RGBA8 bytes (`width × height × 4`) → YUV bytes in `layout` (`layout.len_bytes()` long).
pub fn rgba_to_yuv(
    ctx: &Context,
    rgba: &[u8],
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<Vec<u8>> {
    layout.validate()?;
    need("RGBA input", rgba.len() as u64, rgba_bytes(layout))?;
    let src = ctx.upload("RGBA frame", &rgba[..rgba_bytes(layout) as usize])?;
    let out = rgba_to_yuv_device(ctx, &src, layout, spec)?;
    ctx.download(&out, layout.len_bytes())
}

/// RGB8 bytes (`width × height × 3`) → YUV bytes in `layout`.
pub fn rgb8_to_yuv(
    ctx: &Context,
    rgb: &[u8],
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<Vec<u8>> {
    layout.validate()?;
    need("RGB input", rgb.len() as u64, layout.pixels() * 3)?;
    rgba_to_yuv(ctx, &rgb8_to_rgba(rgb), layout, spec)
}

/// Planar f32 RGB (CHW, `3 × width × height`) → YUV bytes in `layout`.
pub fn planar_to_yuv(
    ctx: &Context,
    planar: &[f32],
    layout: &YuvLayout,
    spec: &ColourSpec,
) -> Result<Vec<u8>> {
    layout.validate()?;
    let count = (layout.pixels() * 3) as usize;
    need(
        "planar RGB input",
        planar.len() as u64 * 4,
        count as u64 * 4,
    )?;
    let src = ctx.upload("planar RGB frame", &planar[..count])?;
    let out = planar_to_yuv_device(ctx, &src, layout, spec)?;
    ctx.download(&out, layout.len_bytes())
}

/// Drops the alpha byte of each RGBA8 pixel.
pub fn rgba_to_rgb8(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// Adds an opaque alpha byte to each RGB8 pixel.
pub fn rgb8_to_rgba(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect()
}

/// The CPU reference: the shader's arithmetic, in the same order, in plain Rust.
pub mod cpu {
    use super::*;

    struct Frame<'a> {
        p: Params,
        yuv: &'a [u8],
    }

    impl Frame<'_> {
        fn luma(&self, x: u32, y: u32) -> i32 {
            i32::from(self.yuv[(self.p.off_y + y * self.p.stride_y + x) as usize])
        }

        fn chroma_at(&self, cx: i32, cy: i32) -> [i32; 2] {
            let p = &self.p;
            let x = cx.clamp(0, p.chroma_w as i32 - 1) as u32;
            let y = cy.clamp(0, p.chroma_h as i32 - 1) as u32;
            let b = |a: u32| i32::from(self.yuv[a as usize]);
            if p.nv12 != 0 {
                let a = p.off_u + y * p.stride_u + 2 * x;
                return [b(a), b(a + 1)];
            }
            [
                b(p.off_u + y * p.stride_u + x),
                b(p.off_v + y * p.stride_v + x),
            ]
        }

        fn chroma16(&self, x: u32, y: u32) -> [i32; 2] {
            let (kx, ky) = ((x >> 1) as i32, (y >> 1) as i32);
            let odd_x = x & 1 == 1;
            let (x0, x1, wx0, wx1) = match (self.p.left_siting != 0, odd_x) {
                (true, false) => (kx, kx, 4, 0),
                (true, true) => (kx, kx + 1, 2, 2),
                (false, false) => (kx - 1, kx, 1, 3),
                (false, true) => (kx, kx + 1, 3, 1),
            };
            let (y0, y1, wy0, wy1) = if y & 1 == 0 {
                (ky - 1, ky, 1, 3)
            } else {
                (ky, ky + 1, 3, 1)
            };
            let taps = [
                (wx0 * wy0, self.chroma_at(x0, y0)),
                (wx1 * wy0, self.chroma_at(x1, y0)),
                (wx0 * wy1, self.chroma_at(x0, y1)),
                (wx1 * wy1, self.chroma_at(x1, y1)),
            ];
            taps.iter()
                .fold([0, 0], |acc, (w, c)| [acc[0] + w * c[0], acc[1] + w * c[1]])
        }
    }

    fn frame<'a>(yuv: &'a [u8], layout: &YuvLayout, spec: &ColourSpec) -> Result<Frame<'a>> {
        frame_in(yuv, layout, spec, Gamut::Clamped)
    }

    fn frame_in<'a>(
        yuv: &'a [u8],
        layout: &YuvLayout,
        spec: &ColourSpec,
        gamut: Gamut,
    ) -> Result<Frame<'a>> {
        let p = Params::new(layout, spec)?.with_gamut(gamut);
        need("YUV input", yuv.len() as u64, layout.len_bytes())?;
        Ok(Frame { p, yuv })
    }

    /// YUV bytes → RGBA8 bytes.
    pub fn yuv_to_rgba(yuv: &[u8], layout: &YuvLayout, spec: &ColourSpec) -> Result<Vec<u8>> {
        let f = frame(yuv, layout, spec)?;
        let p = &f.p;
        let mut out = Vec::with_capacity(rgba_bytes(layout) as usize);
        for y in 0..p.height {
            for x in 0..p.width {
                let yy = (f.luma(x, y) - p.y_off) * p.cy * 16;
                let c = f.chroma16(x, y);
                let (cu, cv) = (c[0] - 2048, c[1] - 2048);
                let half = 1 << 19;
                let r = ((yy + p.crv * cv + half) >> 20).clamp(0, 255);
                let g = ((yy - p.cgu * cu - p.cgv * cv + half) >> 20).clamp(0, 255);
                let b = ((yy + p.cbu * cu + half) >> 20).clamp(0, 255);
                out.extend_from_slice(&[r as u8, g as u8, b as u8, 255]);
            }
        }
        Ok(out)
    }

    /// YUV bytes → planar f32 RGB (CHW) in [0, 1].
    pub fn yuv_to_planar(yuv: &[u8], layout: &YuvLayout, spec: &ColourSpec) -> Result<Vec<f32>> {
        to_planar(yuv, layout, spec, Gamut::Clamped)
    }

    /// YUV bytes → planar f32 RGB (CHW), not clamped to [0, 1].
    pub fn yuv_to_planar_extended(
        yuv: &[u8],
        layout: &YuvLayout,
        spec: &ColourSpec,
    ) -> Result<Vec<f32>> {
        to_planar(yuv, layout, spec, Gamut::Extended)
    }

    fn to_planar(
        yuv: &[u8],
        layout: &YuvLayout,
        spec: &ColourSpec,
        gamut: Gamut,
    ) -> Result<Vec<f32>> {
        let f = frame_in(yuv, layout, spec, gamut)?;
        let p = &f.p;
        let plane = layout.pixels() as usize;
        let mut out = vec![0.0f32; plane * 3];
        for y in 0..p.height {
            for x in 0..p.width {
                let yy = (f.luma(x, y) - p.y_off) as f32;
                let c = f.chroma16(x, y);
                let cu = c[0] as f32 * (1.0 / 16.0) - 128.0;
                let cv = c[1] as f32 * (1.0 / 16.0) - 128.0;
                let i = (y * p.width + x) as usize;
                let clamp = |v: f32| {
                    if p.extended != 0 {
                        v
                    } else {
                        v.clamp(0.0, 1.0)
                    }
                };
                out[i] = clamp(p.fcy * yy + p.fcrv * cv);
                out[plane + i] = clamp(p.fcy * yy - p.fcgu * cu - p.fcgv * cv);
                out[2 * plane + i] = clamp(p.fcy * yy + p.fcbu * cu);
            }
        }
        Ok(out)
    }

    /// Where RGB→YUV reads its pixels.
    enum Source<'a> {
        Rgba(&'a [u8]),
        Planar(&'a [f32]),
    }

    fn to_yuv(
        source: &Source<'_>,
        layout: &YuvLayout,
        spec: &ColourSpec,
        gamut: Gamut,
    ) -> Result<Vec<u8>> {
        let p = Params::new(layout, spec)?.with_gamut(gamut);
        let (w, h) = (p.width as usize, p.height as usize);
        let plane = w * h;
        let rgba = |x: usize, y: usize, px: &[u8]| -> [i32; 3] {
            let i = (y * w + x) * 4;
            [px[i].into(), px[i + 1].into(), px[i + 2].into()]
        };
        let planar = |x: usize, y: usize, px: &[f32]| -> [f32; 3] {
            let i = y * w + x;
            let c = [px[i], px[plane + i], px[2 * plane + i]];
            if p.extended != 0 {
                c
            } else {
                c.map(|v| v.clamp(0.0, 1.0))
            }
        };
        let luma_out = |x: usize, y: usize| -> u8 {
            match source {
                Source::Planar(px) => {
                    let c = planar(x, y, px);
                    (p.fyr * c[0] + p.fyg * c[1] + p.fyb * c[2] + p.y_off as f32 + 0.5)
                        .floor()
                        .clamp(0.0, 255.0) as u8
                }
                Source::Rgba(px) => {
                    let c = rgba(x, y, px);
                    ((p.yr * c[0] + p.yg * c[1] + p.yb * c[2] + (p.y_off << 16) + 32768) >> 16)
                        .clamp(0, 255) as u8
                }
            }
        };
        let chroma_out = |cx: usize, cy: usize| -> [u8; 2] {
            let (x0, y0) = (2 * cx, 2 * cy);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            match source {
                Source::Planar(px) => {
                    let q = [
                        planar(x0, y0, px),
                        planar(x1, y0, px),
                        planar(x0, y1, px),
                        planar(x1, y1, px),
                    ];
                    let s: [f32; 3] =
                        std::array::from_fn(|k| (q[0][k] + q[1][k] + q[2][k] + q[3][k]) * 0.25);
                    let u = (p.fur * s[0] + p.fug * s[1] + p.fub * s[2] + 128.5).floor();
                    let v = (p.fvr * s[0] + p.fvg * s[1] + p.fvb * s[2] + 128.5).floor();
                    [u.clamp(0.0, 255.0) as u8, v.clamp(0.0, 255.0) as u8]
                }
                Source::Rgba(px) => {
                    let q = [
                        rgba(x0, y0, px),
                        rgba(x1, y0, px),
                        rgba(x0, y1, px),
                        rgba(x1, y1, px),
                    ];
                    let s: [i32; 3] =
                        std::array::from_fn(|k| q[0][k] + q[1][k] + q[2][k] + q[3][k]);
                    let bias = (128 << 18) + (1 << 17);
                    let u = (p.ur * s[0] + p.ug * s[1] + p.ub * s[2] + bias) >> 18;
                    let v = (p.vr * s[0] + p.vg * s[1] + p.vb * s[2] + bias) >> 18;
                    [u.clamp(0, 255) as u8, v.clamp(0, 255) as u8]
                }
            }
        };
        let mut out = vec![0u8; layout.len_bytes() as usize];
        let (cw, ch) = (p.chroma_w as usize, p.chroma_h as usize);
        for y in 0..h {
            let row = p.off_y as usize + y * p.stride_y as usize;
            for x in 0..w {
                out[row + x] = luma_out(x, y);
            }
        }
        for cy in 0..ch {
            for cx in 0..cw {
                let [u, v] = chroma_out(cx, cy);
                let urow = p.off_u as usize + cy * p.stride_u as usize;
                if p.nv12 != 0 {
                    out[urow + 2 * cx] = u;
                    out[urow + 2 * cx + 1] = v;
                } else {
                    out[urow + cx] = u;
                    out[p.off_v as usize + cy * p.stride_v as usize + cx] = v;
                }
            }
        }
        Ok(out)
    }

    /// RGBA8 bytes → YUV bytes in `layout` (bytes outside planes are 0).
    pub fn rgba_to_yuv(rgba: &[u8], layout: &YuvLayout, spec: &ColourSpec) -> Result<Vec<u8>> {
        layout.validate()?;
        need("RGBA input", rgba.len() as u64, rgba_bytes(layout))?;
        to_yuv(&Source::Rgba(rgba), layout, spec, Gamut::Clamped)
    }

    /// RGB8 bytes → YUV bytes in `layout`.
    pub fn rgb8_to_yuv(rgb: &[u8], layout: &YuvLayout, spec: &ColourSpec) -> Result<Vec<u8>> {
        layout.validate()?;
        need("RGB input", rgb.len() as u64, layout.pixels() * 3)?;
        to_yuv(
            &Source::Rgba(&rgb8_to_rgba(rgb)),
            layout,
            spec,
            Gamut::Clamped,
        )
    }

    /// Planar f32 RGB (CHW; clamped to [0, 1]) → YUV bytes in `layout`.
    pub fn planar_to_yuv(planar: &[f32], layout: &YuvLayout, spec: &ColourSpec) -> Result<Vec<u8>> {
        layout.validate()?;
        need(
            "planar RGB input",
            planar.len() as u64 * 4,
            planar_bytes(layout),
        )?;
        to_yuv(&Source::Planar(planar), layout, spec, Gamut::Clamped)
    }

    /// Planar f32 RGB (CHW; not clamped, only the 8-bit results are) → YUV bytes in `layout`.
    pub fn planar_extended_to_yuv(
        planar: &[f32],
        layout: &YuvLayout,
        spec: &ColourSpec,
    ) -> Result<Vec<u8>> {
        layout.validate()?;
        need(
            "planar RGB input",
            planar.len() as u64 * 4,
            planar_bytes(layout),
        )?;
        to_yuv(&Source::Planar(planar), layout, spec, Gamut::Extended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greys_stay_grey_and_white_is_nominal() {
        for matrix in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for (range, lo, hi) in [(Range::Limited, 16u8, 235u8), (Range::Full, 0, 255)] {
                let spec = ColourSpec {
                    matrix,
                    range,
                    ..Default::default()
                };
                let layout = YuvLayout::packed(YuvFormat::I420, 2, 2).unwrap();
                for (rgb, y) in [(0u8, lo), (255u8, hi)] {
                    let yuv = cpu::rgb8_to_yuv(&[rgb; 12], &layout, &spec).unwrap();
                    assert_eq!(yuv, vec![y, y, y, y, 128, 128], "{matrix:?} {range:?}");
                    let back = cpu::yuv_to_rgba(&yuv, &layout, &spec).unwrap();
                    assert!(back.chunks(4).all(|p| p == [rgb, rgb, rgb, 255]));
                }
            }
        }
    }

    #[test]
    fn bt709_limited_primaries_match_the_standard() {
        // BT.709 limited: pure red is Y 63, Cb 102, Cr 240 (ITU-R BT.709-6, 8-bit, rounded).
        let spec = ColourSpec::default();
        let layout = YuvLayout::packed(YuvFormat::Nv12, 1, 1).unwrap();
        let yuv = cpu::rgb8_to_yuv(&[255, 0, 0], &layout, &spec).unwrap();
        assert_eq!(yuv, vec![63, 102, 240]);
    }

    #[test]
    fn layouts_are_checked_before_use() {
        let e = YuvLayout::packed(YuvFormat::I420, 0, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("0x10"), "{e}");
        let e = YuvLayout::packed(YuvFormat::I420, 65535, 65535)
            .unwrap_err()
            .to_string();
        assert!(e.contains("65535x65535"), "{e}");
        let mut l = YuvLayout::packed(YuvFormat::I420, 64, 32).unwrap();
        l.strides_bytes[1] = 16;
        let e = l.validate().unwrap_err().to_string();
        assert!(e.contains("U plane stride 16"), "{e}");
        let mut l = YuvLayout::packed(YuvFormat::I420, 64, 32).unwrap();
        l.offsets_bytes[2] = l.offsets_bytes[1] + 8;
        let e = l.validate().unwrap_err().to_string();
        assert!(e.contains("overlaps"), "{e}");
        let mut l = YuvLayout::packed(YuvFormat::Nv12, 64, 32).unwrap();
        l.strides_bytes[0] = u64::MAX / 2;
        assert!(matches!(l.validate(), Err(KernelError::TooLarge { .. })));
        let l = YuvLayout::packed(YuvFormat::I420, 5, 3).unwrap();
        assert_eq!(l.len_bytes(), 15 + 2 * 3 * 2);
        let e = cpu::yuv_to_rgba(&[0; 20], &l, &ColourSpec::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds 20 bytes, the frame needs 27"), "{e}");
    }
}
