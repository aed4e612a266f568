//! SRVGGNetCompact (Real-ESRGAN's compact network, realesr-animevideov3) on the device: a chain of
//! 3×3 convolutions with fused PReLU, then pixel shuffle plus the nearest-upsampled input, then
//! (x2/x3 exports) a bicubic resize. Weights are uploaded once; a run keeps every activation on
//! the device in two pooled ping-pong buffers and downloads once.

use std::sync::Arc;

use crate::context::Context;
use crate::conv::{Conv3x3, Conv3x3Layer, Storage};
use crate::error::{KernelError, Result};
use crate::interp::Bicubic;
use crate::shuffle::PixelShuffleAdd;

/// The network as the host describes it (built from the model's graph by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct SrvggSpec {
    /// Image channels in and out (3, RGB).
    pub channels: usize,
    /// In order: the first takes the image, the last gives `channels × shuffle_factor²`.
    pub convs: Vec<Conv3x3Layer>,
    pub shuffle_factor: u32,
    /// A final bicubic resize by this factor (0.5 and 0.75 in the official x2/x3 exports).
    pub resize: Option<f32>,
}

impl SrvggSpec {
    /// Checks the chain fits together; returns the overall (integer) scale.
    pub fn validate(&self) -> Result<u32> {
        let bad = |what: String| Err(KernelError::InvalidInput(format!("SRVGG network: {what}")));
        let Some(first) = self.convs.first() else {
            return bad("no convolution".into());
        };
        if self.channels == 0 || first.in_channels != self.channels {
            return bad(format!(
                "the first convolution takes {} channels, the image has {}",
                first.in_channels, self.channels
            ));
        }
        for (i, pair) in self.convs.windows(2).enumerate() {
            if pair[1].in_channels != pair[0].out_channels {
                return bad(format!(
                    "convolution {} takes {} channels, convolution {i} gives {}",
                    i + 1,
                    pair[1].in_channels,
                    pair[0].out_channels
                ));
            }
        }
        for c in &self.convs {
            c.validate()?;
        }
        let r = self.shuffle_factor as usize;
        let last = self.convs.last().map_or(0, |c| c.out_channels);
        if r == 0 || last != self.channels * r * r {
            return bad(format!(
                "the last convolution gives {last} channels, a x{r} shuffle of {} needs {}",
                self.channels,
                self.channels * r * r
            ));
        }
        let scale = self.shuffle_factor as f32 * self.resize.unwrap_or(1.0);
        let whole = scale.round();
        if !whole.is_finite() || whole < 1.0 || (scale - whole).abs() > 1e-6 {
            return bad(format!("overall scale {scale} is not a whole number"));
        }
        Ok(whole as u32)
    }

    /// Convolution FLOPs per input pixel (2 per multiply-add).
    pub fn flops_per_input_pixel(&self) -> u64 {
        self.convs.iter().map(Conv3x3Layer::flops_per_pixel).sum()
    }
}

/// SRVGGNetCompact ready to run on one context in one storage precision.
pub struct Srvgg {
    ctx: Arc<Context>,
    channels: usize,
    widest: usize,
    shuffle_factor: u32,
    resize: Option<f32>,
    scale: u32,
    storage: Storage,
    convs: Vec<Conv3x3>,
    shuffle: PixelShuffleAdd,
    bicubic: Option<Bicubic>,
}

impl Srvgg {
    /// Uploads every layer's weights and compiles the pipelines.
    pub fn new(ctx: Arc<Context>, spec: &SrvggSpec, storage: Storage) -> Result<Self> {
        let scale = spec.validate()?;
        storage.check(&ctx)?;
        let convs = spec
            .convs
            .iter()
            .map(|c| Conv3x3::new(&ctx, c, storage))
            .collect::<Result<Vec<_>>>()?;
        let shuffle = PixelShuffleAdd::new(&ctx, storage)?;
        let bicubic = spec.resize.map(|_| Bicubic::new(&ctx)).transpose()?;
        Ok(Self {
            widest: spec.convs.iter().map(|c| c.out_channels).max().unwrap_or(0),
            channels: spec.channels,
            shuffle_factor: spec.shuffle_factor,
            resize: spec.resize,
            scale,
            storage,
            convs,
            shuffle,
            bicubic,
            ctx,
        })
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn storage(&self) -> Storage {
        self.storage
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Device memory one run of a `width × height` image needs (bytes), for tile-size choices.
    pub fn working_set_bytes(&self, width: u32, height: u32) -> u64 {
        let plane = u64::from(width) * u64::from(height);
        let v = self.storage.bytes_per_value();
        let r2 = u64::from(self.shuffle_factor).pow(2);
        let c = self.channels as u64;
        let s2 = u64::from(self.scale).pow(2);
        plane * (c * v + 2 * self.widest as u64 * v + c * r2 * 4 + c * s2 * 4)
    }

    /// Runs the network on a planar image (`channels × height × width`, f32); returns
    /// `channels × (scale·height) × (scale·width)`, unclamped.
    pub fn run(&self, input: &[f32], width: u32, height: u32) -> Result<Vec<f32>> {
        let ctx = &*self.ctx;
        let plane = u64::from(width) * u64::from(height);
        let c = self.channels as u64;
        if plane == 0 || input.len() as u64 != c * plane {
            return Err(KernelError::InvalidInput(format!(
                "SRVGG input has {} values, {width}x{height}x{c} needs {}",
                input.len(),
                c * plane
            )));
        }
        let v = self.storage.bytes_per_value();
        let bytes = self.storage.encode(input);
        let image = ctx.storage("srvgg input", bytes.len() as u64)?;
        ctx.write(&image, &bytes);
        let ping = ctx.storage("srvgg activations", plane * self.widest as u64 * v)?;
        let pong = ctx.storage("srvgg activations", plane * self.widest as u64 * v)?;
        let r = self.shuffle_factor;
        let (sw, sh) = (width * r, height * r);
        let shuffled_len = u64::from(sw) * u64::from(sh) * c;
        let shuffled = ctx.storage("srvgg shuffled", shuffled_len * 4)?;

        let mut batch = ctx.batch();
        let mut src = &image;
        for (i, conv) in self.convs.iter().enumerate() {
            let dst = if i % 2 == 0 { &ping } else { &pong };
            conv.record(ctx, &mut batch, src, dst, width, height)?;
            src = dst;
        }
        self.shuffle.record(
            ctx, &mut batch, src, &image, &shuffled, width, height, c as u32, r,
        )?;
        let (out, out_len) = match (&self.bicubic, self.resize) {
            (Some(bicubic), Some(scale)) => {
                let (ow, oh) = (width * self.scale, height * self.scale);
                let len = u64::from(ow) * u64::from(oh) * c;
                let resized = ctx.storage("srvgg output", len * 4)?;
                bicubic.record(
                    ctx,
                    &mut batch,
                    &shuffled,
                    &resized,
                    c as u32,
                    (sw, sh),
                    (ow, oh),
                    scale,
                )?;
                (resized, len)
            }
            _ => (shuffled, shuffled_len),
        };
        batch.submit()?;
        ctx.download_as(&out, out_len as usize)
    }
}

/// Plain-loop CPU reference of the whole network; with [`Storage::F16`] it rounds the weights,
/// the input and every stored activation to fp16 exactly where the device stores them.
pub mod cpu {
    use super::SrvggSpec;
    use crate::conv::Storage;

    pub fn run(
        spec: &SrvggSpec,
        storage: Storage,
        input: &[f32],
        width: usize,
        height: usize,
    ) -> Vec<f32> {
        let image: Vec<f32> = input.iter().map(|v| storage.round(*v)).collect();
        let mut x = image.clone();
        for conv in &spec.convs {
            x = crate::conv::cpu::conv3x3(conv, storage, &x, width, height);
        }
        let r = spec.shuffle_factor as usize;
        let out = crate::shuffle::cpu::pixel_shuffle_add(&x, &image, width, height, r);
        match spec.resize {
            Some(scale) => {
                let s = (r as f32 * scale).round() as usize;
                crate::interp::cpu::bicubic(
                    &out,
                    spec.channels,
                    (width * r, height * r),
                    (width * s, height * s),
                    scale,
                )
            }
            None => out,
        }
    }
}
