//! Pixel shuffle (PyTorch `pixel_shuffle`, ONNX DepthToSpace mode CRD) fused with the residual of
//! SRVGGNetCompact: `out = pixel_shuffle(features) + nearest_upsample(skip)`. Reads the network's
//! storage type, writes f32 (the network output). Shader: `shaders/pixel_shuffle.wgsl`.

use std::sync::Arc;

use crate::context::{Batch, Context, PooledBuffer};
use crate::conv::{specialise, Storage};
use crate::error::{KernelError, Result};

const SOURCE: &str = include_str!("../shaders/pixel_shuffle.wgsl");
const WORKGROUP: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    height: u32,
    channels: u32,
    factor: u32,
    grid_width: u32,
    _pad: [u32; 3],
}

/// The fused shuffle + residual add for one storage type.
pub struct PixelShuffleAdd {
    storage: Storage,
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl PixelShuffleAdd {
    pub fn new(ctx: &Context, storage: Storage) -> Result<Self> {
        storage.check(ctx)?;
        let key = format!("pixel_shuffle_add.{}", storage.as_str());
        let source = specialise(SOURCE, storage, "pixel_shuffle")?;
        Ok(Self {
            storage,
            pipeline: ctx.pipeline(&key, &source, "main")?,
        })
    }

    /// Records the op: `features` has `channels × factor²` planes of `width × height`, `skip`
    /// `channels` planes of the same size; `output` gets `channels` f32 planes, `factor` times
    /// larger each way.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        ctx: &Context,
        batch: &mut Batch<'_>,
        features: &PooledBuffer,
        skip: &PooledBuffer,
        output: &PooledBuffer,
        width: u32,
        height: u32,
        channels: u32,
        factor: u32,
    ) -> Result<()> {
        if factor == 0 || channels == 0 || width == 0 || height == 0 {
            return Err(KernelError::InvalidInput(format!(
                "pixel shuffle x{factor} of {channels} channels of {width}x{height}"
            )));
        }
        let plane = u64::from(width) * u64::from(height);
        let r2 = u64::from(factor) * u64::from(factor);
        let value = self.storage.bytes_per_value();
        let c = u64::from(channels);
        for (buf, needed, what) in [
            (features, plane * c * r2 * value, "features"),
            (skip, plane * c * value, "skip"),
            (output, plane * c * r2 * 4, "output"),
        ] {
            if buf.len_bytes() < needed {
                return Err(KernelError::InvalidInput(format!(
                    "pixel shuffle {what}: needs {needed} bytes, the buffer has {}",
                    buf.len_bytes()
                )));
            }
        }
        let count = u32::try_from(plane * r2).map_err(|_| {
            KernelError::InvalidInput(format!("pixel shuffle output of {} px", plane * r2))
        })?;
        let (gx, gy) = ctx.grid(count.div_ceil(WORKGROUP));
        let params = ctx.uniform(&Params {
            width,
            height,
            channels,
            factor,
            grid_width: gx * WORKGROUP,
            _pad: [0; 3],
        });
        batch.dispatch(
            &self.pipeline,
            &[
                params.as_entire_binding(),
                features.binding(),
                skip.binding(),
                output.binding(),
            ],
            (gx, gy, 1),
        );
        Ok(())
    }
}

/// One-shot convenience for tests: f32 values in (rounded to `storage`), f32 out.
pub fn pixel_shuffle_add(
    ctx: &Context,
    storage: Storage,
    features: &[f32],
    skip: &[f32],
    width: u32,
    height: u32,
    factor: u32,
) -> Result<Vec<f32>> {
    let plane = width as usize * height as usize;
    let r2 = (factor * factor) as usize;
    if plane == 0
        || r2 == 0
        || !skip.len().is_multiple_of(plane)
        || features.len() != skip.len() * r2
    {
        return Err(KernelError::InvalidInput(format!(
            "pixel shuffle x{factor}: {} feature and {} skip values for {width}x{height}",
            features.len(),
            skip.len()
        )));
    }
    let channels = (skip.len() / plane) as u32;
    let op = PixelShuffleAdd::new(ctx, storage)?;
    let f = storage.encode(features);
    let s = storage.encode(skip);
    let fb = ctx.storage("shuffle features", f.len() as u64)?;
    let sb = ctx.storage("shuffle skip", s.len() as u64)?;
    ctx.write(&fb, &f);
    ctx.write(&sb, &s);
    let out_len = skip.len() * r2;
    let ob = ctx.storage("shuffle output", out_len as u64 * 4)?;
    let mut batch = ctx.batch();
    op.record(
        ctx, &mut batch, &fb, &sb, &ob, width, height, channels, factor,
    )?;
    batch.submit()?;
    ctx.download_as(&ob, out_len)
}

/// Plain-loop CPU reference.
pub mod cpu {
    /// `out[c][y][x] = features[c·r² + (y%r)·r + x%r][y/r][x/r] + skip[c][y/r][x/r]`.
    pub fn pixel_shuffle_add(
        features: &[f32],
        skip: &[f32],
        width: usize,
        height: usize,
        factor: usize,
    ) -> Vec<f32> {
        let plane = width * height;
        let channels = skip.len() / plane;
        let r = factor;
        let (ow, oh) = (width * r, height * r);
        let mut out = vec![0.0; channels * ow * oh];
        for c in 0..channels {
            for y in 0..oh {
                for x in 0..ow {
                    let at = (y / r) * width + x / r;
                    let sub = (y % r) * r + x % r;
                    out[c * ow * oh + y * ow + x] =
                        features[(c * r * r + sub) * plane + at] + skip[c * plane + at];
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crd_order() {
        // 1 channel, 2x2 blocks of a 1x1 image: the 4 planes become the 4 pixels in row order
        let out = super::cpu::pixel_shuffle_add(&[1.0, 2.0, 3.0, 4.0], &[10.0], 1, 1, 2);
        assert_eq!(out, [11.0, 12.0, 13.0, 14.0]);
    }
}
