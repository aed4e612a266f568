//! The upscaler: one model at one scale on one engine, built once and reused for every frame;
//! frames go through tile by tile (see [`crate::tiling`]).

use std::path::PathBuf;

use crate::error::{ModelError, Result};
use crate::fetch::verify_file;
use crate::frame::{check_size, to_planar, write_planar, FrameMut, FrameRef, PixelFormat};
use crate::registry::{ModelSpec, ModelStore, Precision, Registry};
use crate::runtime::{ModelFiles, OrtSession, Provider, SessionOptions};
use crate::tiling::{core_in_tile_output, stitch_planar, Rect, Tiling};
use crate::wgpu_engine::WgpuSession;

/// The inference engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// ONNX Runtime (CPU, CUDA, TensorRT) on the exported ONNX models; every model.
    Ort,
    /// aiprod's own wgpu kernels (Vulkan, Metal, DX12) on the official ncnn weights;
    /// SRVGGNetCompact models (realesr-animevideov3) only.
    Wgpu,
}

impl std::str::FromStr for Engine {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ort" | "onnxruntime" => Ok(Engine::Ort),
            "wgpu" | "native" => Ok(Engine::Wgpu),
            other => Err(ModelError::EngineUnavailable(other.to_string())),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Ort => "ort",
            Engine::Wgpu => "wgpu",
        })
    }
}

/// What runs the network: an ONNX Runtime execution provider, or the wgpu engine on an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accelerator {
    Ort(Provider),
    Wgpu(aiprod_kernels::AdapterSummary),
}

impl Accelerator {
    /// `cpu`, `cuda`, `tensorrt` (ONNX Runtime) or `wgpu`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Accelerator::Ort(p) => p.as_str(),
            Accelerator::Wgpu(_) => "wgpu",
        }
    }

    pub fn is_gpu(&self) -> bool {
        match self {
            Accelerator::Ort(p) => p.is_gpu(),
            Accelerator::Wgpu(a) => a.kind.is_gpu(),
        }
    }
}

impl std::fmt::Display for Accelerator {
    /// `cuda`, or `wgpu on NVIDIA H100 (discrete, vulkan)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Accelerator::Ort(p) => f.write_str(p.as_str()),
            Accelerator::Wgpu(a) => {
                write!(f, "wgpu on {} ({}, {})", a.name, a.kind.as_str(), a.backend)
            }
        }
    }
}

/// The engine's session for one model.
enum Session {
    Ort(OrtSession),
    Wgpu(WgpuSession),
}

impl Session {
    fn run(&mut self, input: &[f32], width: u32, height: u32) -> Result<Vec<f32>> {
        match self {
            Session::Ort(s) => s.run(input, width, height),
            Session::Wgpu(s) => s.run(input, width, height),
        }
    }
}

/// Everything that chooses an upscaler.
#[derive(Debug, Clone)]
pub struct UpscalerConfig {
    /// Registry name, e.g. `realesr-animevideov3`.
    pub model: String,
    pub scale: u32,
    pub engine: Engine,
    /// Tile size in input pixels (0 = whole frame); None = the model's default.
    pub tile_px: Option<u32>,
    /// Tile overlap in input pixels; None = the model's default.
    pub overlap_px: Option<u32>,
    pub session: SessionOptions,
    /// None = `$AIPROD_MODELS_DIR` or `./data/models`.
    pub models_dir: Option<PathBuf>,
}

impl UpscalerConfig {
    pub fn new(model: impl Into<String>, scale: u32) -> Self {
        Self {
            model: model.into(),
            scale,
            engine: Engine::Ort,
            tile_px: None,
            overlap_px: None,
            session: SessionOptions::default(),
            models_dir: None,
        }
    }
}

/// A Real-ESRGAN model ready to run.
pub struct Upscaler {
    spec: ModelSpec,
    tiling: Tiling,
    engine: Engine,
    session: Session,
}

impl Upscaler {
    /// Resolves the model, checks its files against the registry pins and builds the session:
    /// the ONNX exports for ONNX Runtime, the official ncnn files for the wgpu engine (which
    /// refuses models other than SRVGGNetCompact by name before reading anything).
    pub fn new(config: &UpscalerConfig) -> Result<Self> {
        let registry = Registry::builtin()?;
        let spec = registry.find(&config.model, config.scale)?.clone();
        let tiling = Tiling {
            tile_px: config.tile_px.unwrap_or(spec.default_tile_px),
            overlap_px: config.overlap_px.unwrap_or(spec.default_overlap_px),
        };
        tiling.validate()?;
        let store = ModelStore::locate(config.models_dir.as_deref());
        let session = match config.engine {
            Engine::Ort => {
                let fp32 = store.onnx_path(&spec, Precision::Fp32);
                let fp16 = store.onnx_path(&spec, Precision::Fp16);
                verify_file("ONNX model", &fp32, spec.onnx_sha256(Precision::Fp32))?;
                verify_file("ONNX model", &fp16, spec.onnx_sha256(Precision::Fp16))?;
                Session::Ort(OrtSession::open(
                    &ModelFiles {
                        fp32: &fp32,
                        fp16: &fp16,
                    },
                    &config.session,
                    spec.scale,
                )?)
            }
            Engine::Wgpu => {
                let s = WgpuSession::open(&spec, &store, &config.session)?;
                if s.scale() != spec.scale {
                    return Err(ModelError::Registry(format!(
                        "{}: the ncnn graph scales x{}",
                        spec.label(),
                        s.scale()
                    )));
                }
                Session::Wgpu(s)
            }
        };
        Ok(Self {
            spec,
            tiling,
            engine: config.engine,
            session,
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn scale(&self) -> u32 {
        self.spec.scale
    }

    pub fn tiling(&self) -> Tiling {
        self.tiling
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The ONNX Runtime provider, or the wgpu adapter, the network runs on.
    pub fn provider(&self) -> Accelerator {
        match &self.session {
            Session::Ort(s) => Accelerator::Ort(s.provider()),
            Session::Wgpu(s) => Accelerator::Wgpu(s.adapter().clone()),
        }
    }

    pub fn precision(&self) -> Precision {
        match &self.session {
            Session::Ort(s) => s.precision(),
            Session::Wgpu(s) => s.precision(),
        }
    }

    /// Raw network output (planar CHW, unclamped) for a planar RGB input in [0, 1].
    pub fn upscale_planar(&mut self, input: &[f32], width: u32, height: u32) -> Result<Vec<f32>> {
        let s = self.spec.scale;
        check_size(width.into(), height.into(), s)?;
        let (w, h) = (width as usize, height as usize);
        if input.len() != 3 * w * h {
            return Err(ModelError::InvalidImage(format!(
                "planar input has {} values, {width}x{height} RGB needs {}",
                input.len(),
                3 * w * h
            )));
        }
        let (ow, oh) = (w * s as usize, h * s as usize);
        let mut out = vec![0.0f32; 3 * ow * oh];
        for tile in self.tiling.plan(width, height) {
            let tile_in = crop_planar(input, w, h, tile.input);
            let tile_out = self
                .session
                .run(&tile_in, tile.input.width, tile.input.height)?;
            stitch_planar(&tile_out, &tile, s, 3, &mut out, ow, oh);
        }
        Ok(out)
    }

    /// Upscales an 8-bit frame into `dst`, which must be exactly `scale` times its size.
    pub fn upscale_frame(&mut self, src: &FrameRef<'_>, dst: &mut FrameMut<'_>) -> Result<()> {
        let s = self.spec.scale;
        check_size(src.width.into(), src.height.into(), s)?;
        src.validate()?;
        dst.validate()?;
        if u64::from(dst.width) != u64::from(src.width) * u64::from(s)
            || u64::from(dst.height) != u64::from(src.height) * u64::from(s)
        {
            return Err(ModelError::InvalidImage(format!(
                "output {}x{} is not x{s} of input {}x{}",
                dst.width, dst.height, src.width, src.height
            )));
        }
        for tile in self.tiling.plan(src.width, src.height) {
            let tile_in = to_planar(src, tile.input);
            let tile_out = self
                .session
                .run(&tile_in, tile.input.width, tile.input.height)?;
            let from = core_in_tile_output(&tile, s);
            write_planar(
                &tile_out,
                (tile.input.width * s) as usize,
                (tile.input.height * s) as usize,
                from,
                dst,
                (tile.core.x * s) as usize,
                (tile.core.y * s) as usize,
            );
        }
        Ok(())
    }

    /// Packed RGB8 in, packed RGB8 out (`scale` times larger).
    pub fn upscale_rgb8(&mut self, rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
        let s = self.spec.scale;
        check_size(width.into(), height.into(), s)?;
        let (ow, oh) = (width * s, height * s);
        let mut out = vec![0u8; ow as usize * oh as usize * 3];
        let src = FrameRef {
            data: rgb,
            width,
            height,
            stride: width as usize * 3,
            format: PixelFormat::Rgb,
        };
        let mut dst = FrameMut {
            data: &mut out,
            width: ow,
            height: oh,
            stride: ow as usize * 3,
            format: PixelFormat::Rgb,
        };
        self.upscale_frame(&src, &mut dst)?;
        Ok(out)
    }
}

/// The planar CHW sub-tensor of `region`.
pub fn crop_planar(input: &[f32], width: usize, height: usize, region: Rect) -> Vec<f32> {
    let (rw, rh) = (region.width as usize, region.height as usize);
    let mut out = Vec::with_capacity(3 * rw * rh);
    for c in 0..3 {
        for y in 0..rh {
            let s = c * width * height + (region.y as usize + y) * width + region.x as usize;
            out.extend_from_slice(&input[s..s + rw]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_takes_each_channel() {
        let (w, h) = (3, 2);
        let input: Vec<f32> = (0..3 * w * h).map(|i| i as f32).collect();
        let c = crop_planar(
            &input,
            w,
            h,
            Rect {
                x: 1,
                y: 1,
                width: 2,
                height: 1,
            },
        );
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0, 16.0, 17.0]);
    }

    #[test]
    fn engines() {
        assert_eq!("ort".parse::<Engine>().unwrap(), Engine::Ort);
        assert_eq!("WGPU".parse::<Engine>().unwrap(), Engine::Wgpu);
        assert_eq!(Engine::Wgpu.to_string(), "wgpu");
        let e = "tensorflow".parse::<Engine>().unwrap_err().to_string();
        assert!(
            e.contains("\"tensorflow\" is not available") && e.contains("ort, wgpu"),
            "{e}"
        );
    }

    #[test]
    fn wgpu_refuses_rrdb_models_by_name() {
        let mut config = UpscalerConfig::new("RealESRGAN_x4plus", 4);
        config.engine = Engine::Wgpu;
        config.models_dir = Some("/nonexistent".into());
        let e = Upscaler::new(&config).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(
            e.contains("engine wgpu does not run RealESRGAN_x4plus x4 (RRDBNet)"),
            "{e}"
        );
    }
}
