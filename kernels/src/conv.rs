//! 3×3 convolution (stride 1, zero padding 1) on planar NCHW activations, fused with its bias and
//! a per-channel slope activation (PReLU; LeakyReLU, ReLU and none are special slopes). fp32
//! storage everywhere; fp16 storage of activations and weights (f32 arithmetic) on adapters with
//! `shader-f16`. Shader: `shaders/conv3x3.wgsl`.

use std::sync::Arc;

use crate::context::{Batch, Context, PooledBuffer};
use crate::error::{KernelError, Result};

const SOURCE: &str = include_str!("../shaders/conv3x3.wgsl");
/// Output tile side of one workgroup (pixels); must match `TILE` in the shader.
const TILE_PX: u32 = 16;
/// Output channels per workgroup; must match `OC_PER` in the shader.
const OC_PER: usize = 8;
/// Input channels staged per step; must match `CI_CHUNK` in the shader.
const CI_CHUNK: usize = 8;
/// The line of every shader that names the storage type; swapped for the fp16 variant.
const STORAGE_ALIAS: &str = "alias Storage = f32;";

/// How activations and weights are stored on the device (arithmetic is always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    F32,
    /// Needs `shader-f16` ([`Context::has_f16`]).
    F16,
}

impl Storage {
    pub fn bytes_per_value(self) -> u64 {
        match self {
            Storage::F32 => 4,
            Storage::F16 => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Storage::F32 => "f32",
            Storage::F16 => "f16",
        }
    }

    /// Checks the context can store this type.
    pub fn check(self, ctx: &Context) -> Result<()> {
        if self == Storage::F16 && !ctx.has_f16() {
            return Err(KernelError::InvalidInput(format!(
                "fp16 storage needs shader-f16, which adapter {} lacks (or AIPROD_WGPU_F16=0)",
                ctx.adapter().name
            )));
        }
        Ok(())
    }

    /// `values` as this type's bytes (f16: round to nearest even).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Storage::F32 => bytemuck::cast_slice(values).to_vec(),
            Storage::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
                .collect(),
        }
    }

    /// Inverse of [`Storage::encode`].
    pub fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Storage::F32 => bytemuck::pod_collect_to_vec(bytes),
            Storage::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }

    /// What storing `v` and reading it back gives.
    pub fn round(self, v: f32) -> f32 {
        match self {
            Storage::F32 => v,
            Storage::F16 => half::f16::from_f32(v).to_f32(),
        }
    }
}

/// The shader `source` specialised for `storage` (the `Storage` alias swapped, `enable f16;`).
pub(crate) fn specialise(source: &str, storage: Storage, what: &str) -> Result<String> {
    if !source.contains(STORAGE_ALIAS) {
        return Err(KernelError::InvalidInput(format!(
            "shader {what} lacks the line {STORAGE_ALIAS:?}"
        )));
    }
    Ok(match storage {
        Storage::F32 => source.to_string(),
        Storage::F16 => format!(
            "enable f16;\n{}",
            source.replace(STORAGE_ALIAS, "alias Storage = f16;")
        ),
    })
}

/// One convolution layer as the host describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv3x3Layer {
    pub in_channels: usize,
    pub out_channels: usize,
    /// OIHW: `out_channels × in_channels × 3 × 3`.
    pub weights: Vec<f32>,
    /// One per output channel.
    pub bias: Vec<f32>,
    /// One per output channel: `v < 0 → v × slope`. PReLU: its slopes; LeakyReLU: its slope;
    /// ReLU: 0; no activation: 1.
    pub slopes: Vec<f32>,
}

impl Conv3x3Layer {
    pub fn validate(&self) -> Result<()> {
        let (ci, co) = (self.in_channels, self.out_channels);
        let bad = |what: String| {
            Err(KernelError::InvalidInput(format!(
                "conv3x3 {ci}->{co}: {what}"
            )))
        };
        if ci == 0 || co == 0 {
            return bad("zero channels".into());
        }
        if self.weights.len() != co * ci * 9 {
            return bad(format!(
                "{} weights, expected {}",
                self.weights.len(),
                co * ci * 9
            ));
        }
        if self.bias.len() != co {
            return bad(format!("{} biases", self.bias.len()));
        }
        if self.slopes.len() != co {
            return bad(format!("{} slopes", self.slopes.len()));
        }
        Ok(())
    }

    /// Multiply-adds ×2 per output pixel.
    pub fn flops_per_pixel(&self) -> u64 {
        (2 * 9 * self.in_channels * self.out_channels) as u64
    }

    /// Weights rearranged for the shader: `[oc_group][ci_padded][OC_PER][9]`, zero padded.
    fn device_weights(&self) -> Vec<f32> {
        let groups = self.out_channels.div_ceil(OC_PER);
        let ci_padded = self.in_channels.div_ceil(CI_CHUNK) * CI_CHUNK;
        let mut out = vec![0.0; groups * ci_padded * OC_PER * 9];
        for oc in 0..self.out_channels {
            let (g, o) = (oc / OC_PER, oc % OC_PER);
            for ci in 0..self.in_channels {
                let from = (oc * self.in_channels + ci) * 9;
                let to = ((g * ci_padded + ci) * OC_PER + o) * 9;
                out[to..to + 9].copy_from_slice(&self.weights[from..from + 9]);
            }
        }
        out
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    height: u32,
    in_channels: u32,
    in_channels_padded: u32,
    out_channels: u32,
    _pad: [u32; 3],
}

/// A convolution layer with its weights on the device; built once, recorded for every tile.
pub struct Conv3x3 {
    in_channels: usize,
    out_channels: usize,
    storage: Storage,
    weights: PooledBuffer,
    bias: PooledBuffer,
    slopes: PooledBuffer,
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl Conv3x3 {
    /// Uploads the layer's weights (in `storage` precision) and gets the pipeline.
    pub fn new(ctx: &Context, layer: &Conv3x3Layer, storage: Storage) -> Result<Self> {
        layer.validate()?;
        storage.check(ctx)?;
        let weights = storage.encode(&layer.device_weights());
        let weights_buf = ctx.storage("conv3x3 weights", weights.len() as u64)?;
        ctx.write(&weights_buf, &weights);
        Ok(Self {
            in_channels: layer.in_channels,
            out_channels: layer.out_channels,
            storage,
            weights: weights_buf,
            bias: ctx.upload("conv3x3 bias", &layer.bias)?,
            slopes: ctx.upload("conv3x3 slopes", &layer.slopes)?,
            pipeline: pipeline(ctx, storage)?,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// Records `output = act(conv(input) + bias)` for a `width × height` image into `batch`.
    pub fn record(
        &self,
        ctx: &Context,
        batch: &mut Batch<'_>,
        input: &PooledBuffer,
        output: &PooledBuffer,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let plane = u64::from(width) * u64::from(height);
        if plane == 0 {
            return Err(KernelError::InvalidInput(format!(
                "conv3x3 on an empty {width}x{height} image"
            )));
        }
        let value = self.storage.bytes_per_value();
        for (buf, channels, what) in [
            (input, self.in_channels, "input"),
            (output, self.out_channels, "output"),
        ] {
            let needed = plane * channels as u64 * value;
            if buf.len_bytes() < needed {
                return Err(KernelError::InvalidInput(format!(
                    "conv3x3 {what}: {width}x{height}x{channels} needs {needed} bytes, the buffer has {}",
                    buf.len_bytes()
                )));
            }
        }
        let ci_padded = self.in_channels.div_ceil(CI_CHUNK) * CI_CHUNK;
        let params = ctx.uniform(&Params {
            width,
            height,
            in_channels: self.in_channels as u32,
            in_channels_padded: ci_padded as u32,
            out_channels: self.out_channels as u32,
            _pad: [0; 3],
        });
        let groups = (
            width.div_ceil(TILE_PX),
            height.div_ceil(TILE_PX),
            self.out_channels.div_ceil(OC_PER) as u32,
        );
        let max = ctx.limits().max_compute_workgroups_per_dimension;
        if groups.0 > max || groups.1 > max || groups.2 > max {
            return Err(KernelError::InvalidInput(format!(
                "conv3x3 on {width}x{height}x{}: {groups:?} workgroups exceed the adapter's {max} per dimension",
                self.out_channels
            )));
        }
        batch.dispatch(
            &self.pipeline,
            &[
                params.as_entire_binding(),
                input.binding(),
                self.weights.binding(),
                self.bias.binding(),
                self.slopes.binding(),
                output.binding(),
            ],
            groups,
        );
        Ok(())
    }
}

fn pipeline(ctx: &Context, storage: Storage) -> Result<Arc<wgpu::ComputePipeline>> {
    let key = format!("conv3x3.{}", storage.as_str());
    ctx.pipeline(&key, &specialise(SOURCE, storage, "conv3x3")?, "main")
}

/// One-shot convenience: uploads `input`, runs the layer, downloads the result (f32 values,
/// after the storage type's rounding). For tests and benches; a network keeps data on the device.
pub fn conv3x3(
    ctx: &Context,
    layer: &Conv3x3Layer,
    storage: Storage,
    input: &[f32],
    width: u32,
    height: u32,
) -> Result<Vec<f32>> {
    let plane = width as usize * height as usize;
    if input.len() != layer.in_channels * plane {
        return Err(KernelError::InvalidInput(format!(
            "conv3x3 input has {} values, {width}x{height}x{} needs {}",
            input.len(),
            layer.in_channels,
            layer.in_channels * plane
        )));
    }
    let conv = Conv3x3::new(ctx, layer, storage)?;
    let bytes = storage.encode(input);
    let src = ctx.storage("conv3x3 input", bytes.len() as u64)?;
    ctx.write(&src, &bytes);
    let out_bytes = (layer.out_channels * plane) as u64 * storage.bytes_per_value();
    let dst = ctx.storage("conv3x3 output", out_bytes)?;
    let mut batch = ctx.batch();
    conv.record(ctx, &mut batch, &src, &dst, width, height)?;
    batch.submit()?;
    Ok(storage.decode(&ctx.download(&dst, out_bytes)?))
}

/// Plain-loop CPU reference.
pub mod cpu {
    use super::{Conv3x3Layer, Storage};

    /// `act(conv3x3(input) + bias)`, f32 accumulation; the weights and the output go through
    /// `storage`'s rounding (the input is taken as given), like the device does.
    pub fn conv3x3(
        layer: &Conv3x3Layer,
        storage: Storage,
        input: &[f32],
        width: usize,
        height: usize,
    ) -> Vec<f32> {
        let plane = width * height;
        let weights: Vec<f32> = layer.weights.iter().map(|w| storage.round(*w)).collect();
        let mut out = vec![0.0f32; layer.out_channels * plane];
        for oc in 0..layer.out_channels {
            for y in 0..height {
                for x in 0..width {
                    let mut acc = 0.0f32;
                    for ci in 0..layer.in_channels {
                        let k = &weights[(oc * layer.in_channels + ci) * 9..][..9];
                        let src = &input[ci * plane..][..plane];
                        for ky in 0..3 {
                            let sy = y as isize + ky as isize - 1;
                            if sy < 0 || sy >= height as isize {
                                continue;
                            }
                            for kx in 0..3 {
                                let sx = x as isize + kx as isize - 1;
                                if sx < 0 || sx >= width as isize {
                                    continue;
                                }
                                acc += k[ky * 3 + kx] * src[sy as usize * width + sx as usize];
                            }
                        }
                    }
                    let v = acc + layer.bias[oc];
                    let v = if v >= 0.0 { v } else { v * layer.slopes[oc] };
                    out[oc * plane + y * width + x] = storage.round(v);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_weights_are_grouped_and_padded() {
        let layer = Conv3x3Layer {
            in_channels: 3,
            out_channels: 10,
            weights: (0..10 * 3 * 9).map(|i| i as f32).collect(),
            bias: vec![0.0; 10],
            slopes: vec![1.0; 10],
        };
        let d = layer.device_weights();
        // 2 groups x 8 padded input channels x 8 x 9
        assert_eq!(d.len(), 2 * 8 * 8 * 9);
        // oc 9 (group 1, o 1), ci 2, tap 4
        assert_eq!(d[((8 + 2) * 8 + 1) * 9 + 4], ((9 * 3 + 2) * 9 + 4) as f32);
        // padding is zero: ci 5 of group 0
        assert!(d[(5 * 8) * 9..(6 * 8) * 9].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn specialise_swaps_the_alias() {
        let s = specialise(SOURCE, Storage::F16, "conv3x3").unwrap();
        assert!(s.starts_with("enable f16;"));
        assert!(s.contains("alias Storage = f16;"));
        assert!(specialise("fn main() {}", Storage::F32, "x").is_err());
    }

    #[test]
    fn f16_round_trip() {
        let v = [0.1f32, -2.5, 65504.0, 1e-8];
        let back = Storage::F16.decode(&Storage::F16.encode(&v));
        for (a, b) in v.iter().zip(&back) {
            assert_eq!(*b, Storage::F16.round(*a));
        }
        assert_eq!(Storage::F32.decode(&Storage::F32.encode(&v)), v);
    }
}
