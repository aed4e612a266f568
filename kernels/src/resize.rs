//! Separable resize (bicubic with a chosen `a`, Lanczos-3) of planar f32 images (CHW) and of
//! 8-bit planes, up or down: one pass along x, then one along y.
//!
//! - Half-pixel centres (output pixel i samples source position (i + ½)·src/dst − ½); sample
//!   indices are clamped at the edges (the edge pixel repeats, as swscale does).
//! - Downscaling widens the kernel by the scale factor (anti-aliasing, as swscale and the `image`
//!   crate do).
//! - Bicubic is the Keys kernel with parameter `a`: −0.5 is Catmull-Rom (the `image` crate's
//!   `CatmullRom`, Pillow); FFmpeg's swscale `bicubic` is B=0, C=0.6, i.e. a = −0.6; ncnn's
//!   `Interp` (Real-ESRGAN's runtime), OpenCV and PyTorch use a = −0.75.
//!
//! Weights are computed once on the host per (size, filter) in a [`ResizePlan`] and shared by the
//! shader and [`cpu`]. f32 sums run in the same order on both (GPU vs CPU within
//! [`F32_TOLERANCE`]); the 8-bit path is integer fixed point (14-bit weights, 7 fractional bits
//! between passes), so GPU and CPU agree exactly.

use bytemuck::{Pod, Zeroable};

use crate::colour::MAX_SIDE_PX;
use crate::context::{Context, PooledBuffer};
use crate::error::{KernelError, Result};

const SHADER: &str = include_str!("../shaders/resize.wgsl");

/// Largest absolute difference between the GPU's and the CPU reference's f32 outputs for inputs
/// in [0, 1].
pub const F32_TOLERANCE: f32 = 1e-5;

/// Most source samples one output sample may read: a Lanczos-3 downscale by up to ~40×. Beyond
/// that a resize should be done in steps (and a hostile size must not make tables explode).
pub const MAX_TAPS: u32 = 256;

/// Most planes in one planar f32 image (RGB is 3; feature maps stay well below).
pub const MAX_CHANNELS: u32 = 256;

/// Fractional bits of the 8-bit path's weights.
const WEIGHT_BITS: u32 = 14;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Filter {
    /// Keys cubic convolution with parameter `a` in [−1, 0].
    Bicubic { a: f32 },
    /// sinc(x)·sinc(x/3), |x| < 3.
    Lanczos3,
}

impl Filter {
    /// a = −0.5.
    pub const CATMULL_ROM: Self = Self::Bicubic { a: -0.5 };

    fn support(self) -> f64 {
        match self {
            Self::Bicubic { .. } => 2.0,
            Self::Lanczos3 => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bicubic { a } => {
                let a = f64::from(a);
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
                } else {
                    0.0
                }
            }
            Self::Lanczos3 => {
                if x < 1e-12 {
                    1.0
                } else if x < 3.0 {
                    let px = std::f64::consts::PI * x;
                    3.0 * px.sin() * (px / 3.0).sin() / (px * px)
                } else {
                    0.0
                }
            }
        }
    }
}

/// The weights along one axis: output `i` reads source `starts[i] + k` (clamped) for `k < taps`.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisWeights {
    pub taps: u32,
    pub starts: Vec<i32>,
    /// Normalised to sum 1; `taps` per output.
    pub weights: Vec<f32>,
    /// The same in 14-bit fixed point, summing exactly to 2^14.
    pub fixed: Vec<i32>,
}

impl AxisWeights {
    fn new(src_len: u32, dst_len: u32, filter: Filter, axis: &str) -> Result<Self> {
        let scale = f64::from(src_len) / f64::from(dst_len);
        let widen = scale.max(1.0);
        let support = filter.support() * widen;
        let bound = (2.0 * support).ceil() + 1.0;
        if bound > f64::from(MAX_TAPS) {
            return Err(KernelError::InvalidInput(format!(
                "{axis} resize {src_len} -> {dst_len} needs up to {bound} taps per sample, \
                 more than {MAX_TAPS}; downscale in steps"
            )));
        }
        let mut rows: Vec<(i32, Vec<f64>)> = Vec::with_capacity(dst_len as usize);
        for i in 0..dst_len {
            let centre = (f64::from(i) + 0.5) * scale - 0.5;
            let lo = (centre - support).ceil() as i64;
            let hi = (centre + support).floor() as i64;
            let mut w: Vec<(i64, f64)> = (lo..=hi)
                .map(|j| (j, filter.weight((j as f64 - centre) / widen)))
                // sin(kπ) is not exactly 0 in floating point: snap, so zero taps are trimmed
                .map(|(j, v)| (j, if v.abs() < 1e-12 { 0.0 } else { v }))
                .collect();
            while w.last().is_some_and(|(_, v)| *v == 0.0) {
                w.pop();
            }
            let first = w.iter().position(|(_, v)| *v != 0.0).unwrap_or(0);
            let w = &w[first..];
            let sum: f64 = w.iter().map(|(_, v)| v).sum();
            if w.is_empty() || sum.abs() < 1e-9 {
                return Err(KernelError::InvalidInput(format!(
                    "{axis} resize {src_len} -> {dst_len}: filter {filter:?} has no weight at \
                     output {i}"
                )));
            }
            rows.push((w[0].0 as i32, w.iter().map(|(_, v)| v / sum).collect()));
        }
        let taps = rows.iter().map(|(_, w)| w.len()).max().unwrap_or(1);
        let mut out = Self {
            taps: taps as u32,
            starts: Vec::with_capacity(rows.len()),
            weights: Vec::with_capacity(rows.len() * taps),
            fixed: Vec::with_capacity(rows.len() * taps),
        };
        let one = 1i32 << WEIGHT_BITS;
        for (start, w) in rows {
            let mut fixed: Vec<i32> = w
                .iter()
                .map(|v| (v * f64::from(one)).round() as i32)
                .collect();
            let residual = one - fixed.iter().sum::<i32>();
            let largest = (0..w.len())
                .max_by(|a, b| w[*a].total_cmp(&w[*b]))
                .unwrap_or(0);
            fixed[largest] += residual;
            // Keeps the two-pass 8-bit sums within i32 (see the shader's v_u8).
            if fixed.iter().map(|v| v.abs()).sum::<i32>() > 2 * one {
                return Err(KernelError::InvalidInput(format!(
                    "{axis} resize with {filter:?}: negative lobes too large for 8-bit sums"
                )));
            }
            out.starts.push(start);
            out.weights.extend(w.iter().map(|v| *v as f32));
            out.weights.resize(out.starts.len() * taps, 0.0);
            out.fixed.extend(fixed);
            out.fixed.resize(out.starts.len() * taps, 0);
        }
        Ok(out)
    }

    /// [starts | f32 weights | fixed weights] as words, for the shader's `table`.
    fn table(&self) -> Vec<u32> {
        let mut t: Vec<u32> = self.starts.iter().map(|v| *v as u32).collect();
        t.extend(self.weights.iter().map(|v| v.to_bits()));
        t.extend(self.fixed.iter().map(|v| *v as u32));
        t
    }
}

/// A resize from one size to another with one filter; build once, use for every frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizePlan {
    pub src_w: u32,
    pub src_h: u32,
    pub dst_w: u32,
    pub dst_h: u32,
    pub filter: Filter,
    pub horizontal: AxisWeights,
    pub vertical: AxisWeights,
}

fn check_side(what: &str, w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 || w > MAX_SIDE_PX || h > MAX_SIDE_PX {
        return Err(KernelError::InvalidInput(format!(
            "{what} size {w}x{h}: each side must be 1..={MAX_SIDE_PX} pixels"
        )));
    }
    Ok(())
}

impl ResizePlan {
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, filter: Filter) -> Result<Self> {
        check_side("source", src_w, src_h)?;
        check_side("destination", dst_w, dst_h)?;
        if let Filter::Bicubic { a } = filter {
            if !(-1.0..=0.0).contains(&a) {
                return Err(KernelError::InvalidInput(format!(
                    "bicubic parameter a = {a}: expected -1..=0 (-0.5 Catmull-Rom, -0.75 ncnn)"
                )));
            }
        }
        Ok(Self {
            src_w,
            src_h,
            dst_w,
            dst_h,
            filter,
            horizontal: AxisWeights::new(src_w, dst_w, filter, "horizontal")?,
            vertical: AxisWeights::new(src_h, dst_h, filter, "vertical")?,
        })
    }

    fn check_channels(&self, channels: u32) -> Result<()> {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(KernelError::InvalidInput(format!(
                "{channels} channels: expected 1..={MAX_CHANNELS}"
            )));
        }
        Ok(())
    }

    fn src_f32_len(&self, channels: u32) -> u64 {
        u64::from(channels) * u64::from(self.src_w) * u64::from(self.src_h)
    }

    fn dst_f32_len(&self, channels: u32) -> u64 {
        u64::from(channels) * u64::from(self.dst_w) * u64::from(self.dst_h)
    }

    /// Bytes an 8-bit source plane with this stride spans (from `offset`).
    fn plane_bytes(&self, offset_bytes: u64, stride_bytes: u64) -> Result<u64> {
        if stride_bytes < u64::from(self.src_w) {
            return Err(KernelError::InvalidInput(format!(
                "source plane stride {stride_bytes} bytes is less than its width {}",
                self.src_w
            )));
        }
        let end = stride_bytes
            .checked_mul(u64::from(self.src_h) - 1)
            .and_then(|v| v.checked_add(offset_bytes))
            .and_then(|v| v.checked_add(u64::from(self.src_w)));
        match end {
            Some(e) if e <= u64::from(u32::MAX - 3) => Ok(e),
            _ => Err(KernelError::TooLarge {
                what: format!("source plane (offset {offset_bytes}, stride {stride_bytes})"),
                needed_bytes: end.unwrap_or(u64::MAX),
                limit_bytes: u64::from(u32::MAX - 3),
            }),
        }
    }
}

/// Laid out as `Params` in resize.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Params {
    in_w: u32,
    in_h: u32,
    out_w: u32,
    out_h: u32,
    taps: u32,
    in_offset: u32,
    in_stride: u32,
    row_invocations: u32,
    weights_at: u32,
    fixed_at: u32,
    _pad0: u32,
    _pad1: u32,
}

impl Params {
    fn pass(axis: &AxisWeights, in_w: u32, in_h: u32, out_w: u32, out_h: u32) -> Self {
        let n = axis.starts.len() as u32;
        Self {
            in_w,
            in_h,
            out_w,
            out_h,
            taps: axis.taps,
            in_offset: 0,
            in_stride: in_w,
            row_invocations: 0,
            weights_at: n,
            fixed_at: n + n * axis.taps,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

fn need(what: &str, have: u64, needed: u64) -> Result<()> {
    if have < needed {
        return Err(KernelError::InvalidInput(format!(
            "{what} holds {have} bytes, the resize needs {needed}"
        )));
    }
    Ok(())
}

/// A [`ResizePlan`] with its weight tables uploaded: frames go in and out as device buffers.
pub struct DeviceResize {
    plan: ResizePlan,
    horizontal: PooledBuffer,
    vertical: PooledBuffer,
}

impl DeviceResize {
    pub fn new(ctx: &Context, plan: &ResizePlan) -> Result<Self> {
        Ok(Self {
            plan: plan.clone(),
            horizontal: ctx.upload("horizontal resize weights", &plan.horizontal.table())?,
            vertical: ctx.upload("vertical resize weights", &plan.vertical.table())?,
        })
    }

    pub fn plan(&self) -> &ResizePlan {
        &self.plan
    }

    /// Planar f32 (`channels × src_h × src_w`, packed) → `channels × dst_h × dst_w`.
    pub fn planar_f32(
        &self,
        ctx: &Context,
        src: &PooledBuffer,
        channels: u32,
    ) -> Result<PooledBuffer> {
        let p = &self.plan;
        p.check_channels(channels)?;
        need(
            "source buffer",
            src.len_bytes(),
            p.src_f32_len(channels) * 4,
        )?;
        let mid = ctx.storage(
            "resize intermediate",
            u64::from(channels) * u64::from(p.dst_w) * u64::from(p.src_h) * 4,
        )?;
        let out = ctx.storage("resized frame", p.dst_f32_len(channels) * 4)?;
        let h = ctx.pipeline("resize.h_f32", SHADER, "h_f32")?;
        let v = ctx.pipeline("resize.v_f32", SHADER, "v_f32")?;
        let hp = ctx.uniform(&Params::pass(
            &p.horizontal,
            p.src_w,
            p.src_h,
            p.dst_w,
            p.src_h,
        ));
        let vp = ctx.uniform(&Params::pass(
            &p.vertical,
            p.dst_w,
            p.src_h,
            p.dst_w,
            p.dst_h,
        ));
        let mut batch = ctx.batch();
        batch.dispatch(
            &h,
            &[
                hp.as_entire_binding(),
                src.binding(),
                self.horizontal.binding(),
                mid.binding(),
            ],
            (p.dst_w.div_ceil(16), p.src_h.div_ceil(16), channels),
        );
        batch.dispatch(
            &v,
            &[
                vp.as_entire_binding(),
                mid.binding(),
                self.vertical.binding(),
                out.binding(),
            ],
            (p.dst_w.div_ceil(16), p.dst_h.div_ceil(16), channels),
        );
        batch.submit()?;
        Ok(out)
    }

    /// One 8-bit plane at `offset_bytes` with `stride_bytes` → a packed `dst_w × dst_h` plane.
    pub fn plane_u8(
        &self,
        ctx: &Context,
        src: &PooledBuffer,
        offset_bytes: u64,
        stride_bytes: u64,
    ) -> Result<PooledBuffer> {
        let p = &self.plan;
        let end = p.plane_bytes(offset_bytes, stride_bytes)?;
        need("source buffer", src.len_bytes(), end)?;
        let mid = ctx.storage(
            "resize intermediate",
            u64::from(p.dst_w) * u64::from(p.src_h) * 4,
        )?;
        let len = u64::from(p.dst_w) * u64::from(p.dst_h);
        let out = ctx.storage("resized plane", len)?;
        let h = ctx.pipeline("resize.h_u8", SHADER, "h_u8")?;
        let v = ctx.pipeline("resize.v_u8", SHADER, "v_u8")?;
        let mut hp = Params::pass(&p.horizontal, p.src_w, p.src_h, p.dst_w, p.src_h);
        // plane_bytes() bounded both below 2^32.
        hp.in_offset = offset_bytes as u32;
        hp.in_stride = stride_bytes as u32;
        let mut vp = Params::pass(&p.vertical, p.dst_w, p.src_h, p.dst_w, p.dst_h);
        let (gx, gy) = ctx.grid((len.div_ceil(4) as u32).div_ceil(64));
        vp.row_invocations = gx * 64;
        let (hp, vp) = (ctx.uniform(&hp), ctx.uniform(&vp));
        let mut batch = ctx.batch();
        batch.dispatch(
            &h,
            &[
                hp.as_entire_binding(),
                src.binding(),
                self.horizontal.binding(),
                mid.binding(),
            ],
            (p.dst_w.div_ceil(16), p.src_h.div_ceil(16), 1),
        );
        batch.dispatch(
            &v,
            &[
                vp.as_entire_binding(),
                mid.binding(),
                self.vertical.binding(),
                out.binding(),
            ],
            (gx, gy, 1),
        );
        batch.submit()?;
        Ok(out)
    }
}

/// Host convenience: uploads, resizes on the device, downloads.
pub fn resize_planar_f32(
    ctx: &Context,
    plan: &ResizePlan,
    src: &[f32],
    channels: u32,
) -> Result<Vec<f32>> {
    plan.check_channels(channels)?;
    let n = plan.src_f32_len(channels);
    need("source image", src.len() as u64 * 4, n * 4)?;
    let dev = DeviceResize::new(ctx, plan)?;
    let buf = ctx.upload("frame to resize", &src[..n as usize])?;
    let out = dev.planar_f32(ctx, &buf, channels)?;
    ctx.download_as(&out, plan.dst_f32_len(channels) as usize)
}

/// Host convenience for one 8-bit plane with `stride_bytes` per row; returns a packed plane.
pub fn resize_plane_u8(
    ctx: &Context,
    plan: &ResizePlan,
    src: &[u8],
    stride_bytes: u64,
) -> Result<Vec<u8>> {
    let end = plan.plane_bytes(0, stride_bytes)?;
    need("source plane", src.len() as u64, end)?;
    let dev = DeviceResize::new(ctx, plan)?;
    let buf = ctx.upload("plane to resize", &src[..end as usize])?;
    let out = dev.plane_u8(ctx, &buf, 0, stride_bytes)?;
    ctx.download(&out, u64::from(plan.dst_w) * u64::from(plan.dst_h))
}

/// The CPU reference: the shader's sums in the same order.
pub mod cpu {
    use super::*;

    fn clamped(start: i32, k: u32, len: u32) -> usize {
        (start + k as i32).clamp(0, len as i32 - 1) as usize
    }

    /// Planar f32 (`channels × src_h × src_w`) → `channels × dst_h × dst_w`.
    pub fn resize_planar_f32(plan: &ResizePlan, src: &[f32], channels: u32) -> Result<Vec<f32>> {
        plan.check_channels(channels)?;
        need(
            "source image",
            src.len() as u64 * 4,
            plan.src_f32_len(channels) * 4,
        )?;
        let (sw, sh, dw, dh) = (plan.src_w, plan.src_h, plan.dst_w, plan.dst_h);
        let (hx, vy) = (&plan.horizontal, &plan.vertical);
        let mut mid = vec![0.0f32; (channels * sh * dw) as usize];
        for c in 0..channels {
            for y in 0..sh {
                let row = ((c * sh + y) * sw) as usize;
                for x in 0..dw {
                    let w = &hx.weights[(x * hx.taps) as usize..];
                    let mut acc = 0.0f32;
                    for k in 0..hx.taps {
                        acc += w[k as usize] * src[row + clamped(hx.starts[x as usize], k, sw)];
                    }
                    mid[((c * sh + y) * dw + x) as usize] = acc;
                }
            }
        }
        let mut out = vec![0.0f32; (channels * dh * dw) as usize];
        for c in 0..channels {
            for y in 0..dh {
                let w = &vy.weights[(y * vy.taps) as usize..];
                for x in 0..dw {
                    let mut acc = 0.0f32;
                    for k in 0..vy.taps {
                        let sy = clamped(vy.starts[y as usize], k, sh) as u32;
                        acc += w[k as usize] * mid[((c * sh + sy) * dw + x) as usize];
                    }
                    out[((c * dh + y) * dw + x) as usize] = acc;
                }
            }
        }
        Ok(out)
    }

    /// One 8-bit plane with `stride_bytes` per row → a packed `dst_w × dst_h` plane.
    pub fn resize_plane_u8(plan: &ResizePlan, src: &[u8], stride_bytes: u64) -> Result<Vec<u8>> {
        let end = plan.plane_bytes(0, stride_bytes)?;
        need("source plane", src.len() as u64, end)?;
        let (sw, sh, dw, dh) = (plan.src_w, plan.src_h, plan.dst_w, plan.dst_h);
        let (hx, vy) = (&plan.horizontal, &plan.vertical);
        let stride = stride_bytes as usize;
        let mut mid = vec![0i32; (sh * dw) as usize];
        for y in 0..sh {
            let row = y as usize * stride;
            for x in 0..dw {
                let w = &hx.fixed[(x * hx.taps) as usize..];
                let mut acc = 0i32;
                for k in 0..hx.taps {
                    acc +=
                        w[k as usize] * i32::from(src[row + clamped(hx.starts[x as usize], k, sw)]);
                }
                mid[(y * dw + x) as usize] = (acc + 64) >> 7;
            }
        }
        let mut out = vec![0u8; (dh * dw) as usize];
        for y in 0..dh {
            let w = &vy.fixed[(y * vy.taps) as usize..];
            for x in 0..dw {
                let mut acc = 0i32;
                for k in 0..vy.taps {
                    let sy = clamped(vy.starts[y as usize], k, sh);
                    acc += w[k as usize] * mid[sy * dw as usize + x as usize];
                }
                out[(y * dw + x) as usize] = ((acc + (1 << 20)) >> 21).clamp(0, 255) as u8;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_identity_is_exact() {
        for filter in [
            Filter::CATMULL_ROM,
            Filter::Bicubic { a: -0.75 },
            Filter::Lanczos3,
        ] {
            for (src, dst) in [(10, 10), (10, 23), (1920, 1280), (7, 1), (3, 40)] {
                let a = AxisWeights::new(src, dst, filter, "test").unwrap();
                for i in 0..dst as usize {
                    let t = a.taps as usize;
                    let s: f32 = a.weights[i * t..(i + 1) * t].iter().sum();
                    assert!((s - 1.0).abs() < 1e-5, "{filter:?} {src}->{dst} @{i}: {s}");
                    let f: i32 = a.fixed[i * t..(i + 1) * t].iter().sum();
                    assert_eq!(f, 1 << WEIGHT_BITS);
                }
            }
            // same size: one tap of weight 1 at the pixel itself
            let a = AxisWeights::new(9, 9, filter, "test").unwrap();
            assert_eq!(a.taps, 1);
            assert_eq!(a.starts, (0..9).collect::<Vec<i32>>());
        }
        // widened when downscaling: 3:1 Lanczos-3 reads 18 source pixels
        assert_eq!(
            AxisWeights::new(3840, 1280, Filter::Lanczos3, "t")
                .unwrap()
                .taps,
            17
        );
    }

    #[test]
    fn hostile_sizes_are_refused_before_allocating() {
        let e = ResizePlan::new(65535, 65535, 10, 10, Filter::Lanczos3).unwrap_err();
        assert!(e.to_string().contains("source size 65535x65535"), "{e}");
        let e = ResizePlan::new(16384, 10, 10, 10, Filter::Lanczos3).unwrap_err();
        assert!(
            e.to_string().contains("horizontal resize 16384 -> 10"),
            "{e}"
        );
        let e = ResizePlan::new(10, 10, 10, 10, Filter::Bicubic { a: 2.0 }).unwrap_err();
        assert!(e.to_string().contains("a = 2"), "{e}");
        let plan = ResizePlan::new(10, 4, 20, 8, Filter::CATMULL_ROM).unwrap();
        let e = cpu::resize_plane_u8(&plan, &[0; 39], 10).unwrap_err();
        assert!(
            e.to_string()
                .contains("holds 39 bytes, the resize needs 40"),
            "{e}"
        );
        let e = cpu::resize_plane_u8(&plan, &[0; 40], 9).unwrap_err();
        assert!(e.to_string().contains("stride 9"), "{e}");
        let e = cpu::resize_planar_f32(&plan, &[0.0; 40], 0).unwrap_err();
        assert!(e.to_string().contains("0 channels"), "{e}");
    }
}
