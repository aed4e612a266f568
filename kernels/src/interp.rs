//! Bicubic resize of planar f32 channels, as ncnn's Interp (resize_type 3) and ONNX Resize
//! (cubic, a = -0.75, half_pixel, edge replicated) define it: the last step of the official x2/x3
//! realesr-animevideov3 exports (x4, then 0.5 or 0.75). Shader: `shaders/interp_bicubic.wgsl`.

use std::sync::Arc;

use crate::context::{Batch, Context, PooledBuffer};
use crate::error::{KernelError, Result};

const SOURCE: &str = include_str!("../shaders/interp_bicubic.wgsl");
const WORKGROUP: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    in_width: u32,
    in_height: u32,
    out_width: u32,
    out_height: u32,
    channels: u32,
    grid_width: u32,
    inv_scale_x: f32,
    inv_scale_y: f32,
}

pub struct Bicubic {
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl Bicubic {
    pub fn new(ctx: &Context) -> Result<Self> {
        Ok(Self {
            pipeline: ctx.pipeline("interp_bicubic", SOURCE, "main")?,
        })
    }

    /// Records the resize of `channels` f32 planes from `in_size` to `out_size` (w, h); `scale` is
    /// the op's scale factor (source coordinate = (x + 0.5) / scale - 0.5).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        ctx: &Context,
        batch: &mut Batch<'_>,
        input: &PooledBuffer,
        output: &PooledBuffer,
        channels: u32,
        in_size: (u32, u32),
        out_size: (u32, u32),
        scale: f32,
    ) -> Result<()> {
        let (iw, ih) = in_size;
        let (ow, oh) = out_size;
        if iw == 0
            || ih == 0
            || ow == 0
            || oh == 0
            || channels == 0
            || !scale.is_finite()
            || scale <= 0.0
        {
            return Err(KernelError::InvalidInput(format!(
                "bicubic resize of {channels} channels {iw}x{ih} -> {ow}x{oh} (scale {scale})"
            )));
        }
        let c = u64::from(channels);
        for (buf, pixels, what) in [
            (input, u64::from(iw) * u64::from(ih), "input"),
            (output, u64::from(ow) * u64::from(oh), "output"),
        ] {
            if buf.len_bytes() < pixels * c * 4 {
                return Err(KernelError::InvalidInput(format!(
                    "bicubic resize {what}: needs {} bytes, the buffer has {}",
                    pixels * c * 4,
                    buf.len_bytes()
                )));
            }
        }
        let count = ow
            .checked_mul(oh)
            .ok_or_else(|| KernelError::InvalidInput(format!("bicubic output {ow}x{oh}")))?;
        let (gx, gy) = ctx.grid(count.div_ceil(WORKGROUP));
        let params = ctx.uniform(&Params {
            in_width: iw,
            in_height: ih,
            out_width: ow,
            out_height: oh,
            channels,
            grid_width: gx * WORKGROUP,
            inv_scale_x: 1.0 / scale,
            inv_scale_y: 1.0 / scale,
        });
        batch.dispatch(
            &self.pipeline,
            &[
                params.as_entire_binding(),
                input.binding(),
                output.binding(),
            ],
            (gx, gy, 1),
        );
        Ok(())
    }
}

/// One-shot convenience for tests.
pub fn bicubic(
    ctx: &Context,
    input: &[f32],
    channels: u32,
    in_size: (u32, u32),
    out_size: (u32, u32),
    scale: f32,
) -> Result<Vec<f32>> {
    let plane = in_size.0 as usize * in_size.1 as usize;
    if input.len() != plane * channels as usize {
        return Err(KernelError::InvalidInput(format!(
            "bicubic input has {} values, {}x{}x{channels} needs {}",
            input.len(),
            in_size.0,
            in_size.1,
            plane * channels as usize
        )));
    }
    let op = Bicubic::new(ctx)?;
    let src = ctx.upload("bicubic input", input)?;
    let out_len = out_size.0 as usize * out_size.1 as usize * channels as usize;
    let dst = ctx.storage("bicubic output", out_len as u64 * 4)?;
    let mut batch = ctx.batch();
    op.record(
        ctx, &mut batch, &src, &dst, channels, in_size, out_size, scale,
    )?;
    batch.submit()?;
    ctx.download_as(&dst, out_len)
}

/// Plain-loop CPU reference (the same f32 formulas as the shader).
pub mod cpu {
    const A: f32 = -0.75;

    fn cubic(d: f32) -> f32 {
        let x = d.abs();
        if x <= 1.0 {
            ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
        } else {
            0.0
        }
    }

    /// Taps (clamped source indices) and weights for each output coordinate.
    fn taps(out_len: usize, in_len: usize, inv_scale: f32) -> Vec<([usize; 4], [f32; 4])> {
        (0..out_len)
            .map(|o| {
                let f = (o as f32 + 0.5) * inv_scale - 0.5;
                let s = f.floor();
                let t = f - s;
                let idx =
                    [0, 1, 2, 3].map(|k| (s as i64 + k - 1).clamp(0, in_len as i64 - 1) as usize);
                (
                    idx,
                    [cubic(t + 1.0), cubic(t), cubic(1.0 - t), cubic(2.0 - t)],
                )
            })
            .collect()
    }

    pub fn bicubic(
        input: &[f32],
        channels: usize,
        in_size: (usize, usize),
        out_size: (usize, usize),
        scale: f32,
    ) -> Vec<f32> {
        let (iw, ih) = in_size;
        let (ow, oh) = out_size;
        let xs = taps(ow, iw, 1.0 / scale);
        let ys = taps(oh, ih, 1.0 / scale);
        let mut out = vec![0.0; channels * ow * oh];
        for c in 0..channels {
            for (oy, (yi, yw)) in ys.iter().enumerate() {
                for (ox, (xi, xw)) in xs.iter().enumerate() {
                    let mut v = 0.0f32;
                    for k in 0..4 {
                        let row = &input[c * iw * ih + yi[k] * iw..];
                        let r: f32 = (0..4).map(|j| xw[j] * row[xi[j]]).sum();
                        v += yw[k] * r;
                    }
                    out[c * ow * oh + oy * ow + ox] = v;
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn weights_sum_to_one_and_constants_stay() {
            for t in [0.0f32, 0.25, 0.5, 0.9] {
                let s = super::cubic(t + 1.0)
                    + super::cubic(t)
                    + super::cubic(1.0 - t)
                    + super::cubic(2.0 - t);
                assert!((s - 1.0).abs() < 1e-6, "{t}: {s}");
            }
            let out = super::bicubic(&[0.5; 2 * 8 * 6], 2, (8, 6), (4, 3), 0.5);
            assert!(out.iter().all(|v| (v - 0.5).abs() < 1e-6));
        }
    }
}
