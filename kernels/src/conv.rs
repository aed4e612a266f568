//! 3×3 convolution (stride 1, zero padding 1) on planar NCHW activations, fused with its bias and
//! a per-channel slope activation (PReLU; LeakyReLU, ReLU and none are special slopes). fp32
//! storage everywhere; fp16 storage of activations and weights (f32 arithmetic) on adapters with
//! `shader-f16`. Three kernels ([`ConvVariant`], env `AIPROD_WGPU_CONV=v1|v2|v3`, default v3):
//! `shaders/conv3x3_v3.wgsl` (32x16 tiles, 4x2 pixels x 16 output channels per invocation),
//! `shaders/conv3x3_v2.wgsl` (16x16 tiles, 2x2 pixels x 16 channels, vec4 weight broadcasts) and
//! the original `shaders/conv3x3.wgsl` (2x2 pixels x 8 channels), kept for A/B runs. H100
//! (Vulkan), 64->64 + PReLU at 512x512 fp32: v1 4.1, v2 7.8, v3 9.9 TFLOP/s.

use std::sync::Arc;

use crate::context::{Batch, Context, PooledBuffer};
use crate::error::{KernelError, Result};

const SOURCE: &str = include_str!("../shaders/conv3x3.wgsl");
const SOURCE_V2: &str = include_str!("../shaders/conv3x3_v2.wgsl");
const SOURCE_V3: &str = include_str!("../shaders/conv3x3_v3.wgsl");
/// Output tile height of one workgroup (pixels); must match `TILE`/`TILE_H` in the shaders.
const TILE_PX: u32 = 16;
/// Input channels the weights are padded to (a multiple of `CI_CHUNK` in every shader).
const CI_CHUNK: usize = 8;

/// Which conv3x3 kernel runs. Both compute the same thing (f32 accumulation in the same order per
/// output value is not guaranteed, so results may differ in the last bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvVariant {
    /// `conv3x3.wgsl`: 8 output channels per workgroup, weights `[group][ci][8][9]`.
    V1,
    /// `conv3x3_v2.wgsl`: 16 output channels per workgroup, weights `[group][ci][9][16]`.
    V2,
    /// `conv3x3_v3.wgsl` (the default): v2 with 32x16 tiles, 4x2 pixels per invocation, input
    /// channels staged 4 at a time.
    V3,
}

impl ConvVariant {
    /// `AIPROD_WGPU_CONV` (`v1`, `v2` or `v3`); unset, empty or anything else:
    /// [`ConvVariant::V3`].
    pub fn from_env() -> Self {
        match std::env::var("AIPROD_WGPU_CONV").map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if v == "v1" => ConvVariant::V1,
            Ok(v) if v == "v2" => ConvVariant::V2,
            _ => ConvVariant::V3,
        }
    }

    pub const ALL: [ConvVariant; 3] = [ConvVariant::V1, ConvVariant::V2, ConvVariant::V3];

    pub fn as_str(self) -> &'static str {
        match self {
            ConvVariant::V1 => "v1",
            ConvVariant::V2 => "v2",
            ConvVariant::V3 => "v3",
        }
    }

    /// Output channels per workgroup; must match `OC_PER` in the shader.
    fn oc_per(self) -> usize {
        match self {
            ConvVariant::V1 => 8,
            ConvVariant::V2 | ConvVariant::V3 => 16,
        }
    }

    /// Output tile width of one workgroup; must match `TILE`/`TILE_W` in the shader.
    fn tile_width_px(self) -> u32 {
        match self {
            ConvVariant::V1 | ConvVariant::V2 => TILE_PX,
            ConvVariant::V3 => 2 * TILE_PX,
        }
    }

    fn source(self) -> &'static str {
        match self {
            ConvVariant::V1 => SOURCE,
            ConvVariant::V2 => SOURCE_V2,
            ConvVariant::V3 => SOURCE_V3,
        }
    }
}
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

    /// Weights rearranged for the shader, zero padded to whole groups and chunks: v1
    /// `[oc_group][ci_padded][OC_PER][9]`, v2 and v3 `[oc_group][ci_padded][9][OC_PER]`.
    fn device_weights(&self, variant: ConvVariant) -> Vec<f32> {
        let oc_per = variant.oc_per();
        let groups = self.out_channels.div_ceil(oc_per);
        let ci_padded = self.in_channels.div_ceil(CI_CHUNK) * CI_CHUNK;
        let mut out = vec![0.0; groups * ci_padded * oc_per * 9];
        for oc in 0..self.out_channels {
            let (g, o) = (oc / oc_per, oc % oc_per);
            for ci in 0..self.in_channels {
                let from = (oc * self.in_channels + ci) * 9;
                match variant {
                    ConvVariant::V1 => {
                        let to = ((g * ci_padded + ci) * oc_per + o) * 9;
                        out[to..to + 9].copy_from_slice(&self.weights[from..from + 9]);
                    }
                    ConvVariant::V2 | ConvVariant::V3 => {
                        for t in 0..9 {
                            out[((g * ci_padded + ci) * 9 + t) * oc_per + o] =
                                self.weights[from + t];
                        }
                    }
                }
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
    variant: ConvVariant,
    weights: PooledBuffer,
    bias: PooledBuffer,
    slopes: PooledBuffer,
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl Conv3x3 {
    /// Uploads the layer's weights (in `storage` precision) and gets the pipeline of the
    /// variant `AIPROD_WGPU_CONV` names ([`ConvVariant::from_env`]).
    pub fn new(ctx: &Context, layer: &Conv3x3Layer, storage: Storage) -> Result<Self> {
        Self::with_variant(ctx, layer, storage, ConvVariant::from_env())
    }

    /// [`Conv3x3::new`] with an explicit kernel variant.
    pub fn with_variant(
        ctx: &Context,
        layer: &Conv3x3Layer,
        storage: Storage,
        variant: ConvVariant,
    ) -> Result<Self> {
        layer.validate()?;
        storage.check(ctx)?;
        let weights = storage.encode(&layer.device_weights(variant));
        let weights_buf = ctx.storage("conv3x3 weights", weights.len() as u64)?;
        ctx.write(&weights_buf, &weights);
        Ok(Self {
            in_channels: layer.in_channels,
            out_channels: layer.out_channels,
            storage,
            variant,
            weights: weights_buf,
            bias: ctx.upload("conv3x3 bias", &layer.bias)?,
            slopes: ctx.upload("conv3x3 slopes", &layer.slopes)?,
            pipeline: pipeline(ctx, storage, variant)?,
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

    pub fn variant(&self) -> ConvVariant {
        self.variant
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
            width.div_ceil(self.variant.tile_width_px()),
            height.div_ceil(TILE_PX),
            self.out_channels.div_ceil(self.variant.oc_per()) as u32,
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

fn pipeline(
    ctx: &Context,
    storage: Storage,
    variant: ConvVariant,
) -> Result<Arc<wgpu::ComputePipeline>> {
    let key = format!("conv3x3.{}.{}", variant.as_str(), storage.as_str());
    let what = format!("conv3x3 {}", variant.as_str());
    ctx.pipeline(&key, &specialise(variant.source(), storage, &what)?, "main")
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
    conv3x3_variant(
        ctx,
        layer,
        storage,
        ConvVariant::from_env(),
        input,
        width,
        height,
    )
}

/// [`conv3x3`] with an explicit kernel variant.
pub fn conv3x3_variant(
    ctx: &Context,
    layer: &Conv3x3Layer,
    storage: Storage,
    variant: ConvVariant,
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
    let conv = Conv3x3::with_variant(ctx, layer, storage, variant)?;
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
        let d = layer.device_weights(ConvVariant::V1);
        // 2 groups x 8 padded input channels x 8 x 9
        assert_eq!(d.len(), 2 * 8 * 8 * 9);
        // oc 9 (group 1, o 1), ci 2, tap 4
        assert_eq!(d[((8 + 2) * 8 + 1) * 9 + 4], ((9 * 3 + 2) * 9 + 4) as f32);
        // padding is zero: ci 5 of group 0
        assert!(d[(5 * 8) * 9..(6 * 8) * 9].iter().all(|v| *v == 0.0));

        let d = layer.device_weights(ConvVariant::V2);
        // 1 group x 8 padded input channels x 9 x 16
        assert_eq!(d.len(), 8 * 9 * 16);
        // oc 9, ci 2, tap 4
        assert_eq!(d[(2 * 9 + 4) * 16 + 9], ((9 * 3 + 2) * 9 + 4) as f32);
        // padding is zero: oc 10..16 and ci 3..8
        assert!((0..8 * 9)
            .flat_map(|k| (10..16).map(move |o| k * 16 + o))
            .all(|i| d[i] == 0.0));
        assert!(d[3 * 9 * 16..].iter().all(|v| *v == 0.0));
    }

    /// Both kernels against the CPU reference on shapes that leave partial tiles, groups and
    /// chunks (the integration tests run only the default variant).
    #[test]
    fn both_variants_match_cpu() {
        let Some(ctx) = crate::test_context() else {
            return;
        };
        for (ci, co, w, h) in [(3usize, 20usize, 19u32, 17u32), (12, 12, 33, 9)] {
            let layer = Conv3x3Layer {
                in_channels: ci,
                out_channels: co,
                weights: crate::random_f32(co * ci * 9, 11),
                bias: crate::random_f32(co, 12),
                slopes: (0..co).map(|i| i as f32 / co as f32).collect(),
            };
            let input = crate::random_f32(ci * (w * h) as usize, 13);
            let cpu = cpu::conv3x3(&layer, Storage::F32, &input, w as usize, h as usize);
            for variant in ConvVariant::ALL {
                let gpu =
                    conv3x3_variant(&ctx, &layer, Storage::F32, variant, &input, w, h).unwrap();
                assert_eq!(gpu.len(), cpu.len());
                let err = gpu
                    .iter()
                    .zip(&cpu)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                println!(
                    "conv {} {ci}->{co} {w}x{h}: max |gpu - cpu| = {err:.2e}",
                    variant.as_str()
                );
                assert!(
                    err <= 1e-4,
                    "{} {ci}->{co} {w}x{h}: {err}",
                    variant.as_str()
                );
            }
        }
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
