//! The engine behind per-frame video QC: the CPU detectors of [`super::video`] as they are, or the
//! same per-frame quantities (black luma pixels, per-plane sums of absolute and squared
//! differences, per-plane SSIM) computed on the device by aiprod-kernels
//! ([`aiprod_kernels::metrics`]) and fed to the same detectors, so segments and scores come out
//! the same: the integer sums are exact, SSIM agrees within 1e-6 per plane (bit for bit on
//! lavapipe).
//!
//! [`QcEngine::from_env`] picks wgpu when the adapter is a real GPU, otherwise the CPU (lavapipe
//! is slower than the CPU path); `AIPROD_QC_ENGINE=cpu|wgpu|auto` overrides, `wgpu` taking any
//! adapter (lavapipe included, for tests).

use std::sync::Arc;

use aiprod_kernels::metrics::{self, DeviceFrame, HostPlane, PlanarLayout};
use aiprod_kernels::Context;

use super::video::{BlackDetector, FidelityAccumulator, Frame, FreezeDetector};
use super::QcError;

/// Environment variable that overrides the engine choice.
pub const ENGINE_ENV: &str = "AIPROD_QC_ENGINE";

/// Which engine to use, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// wgpu on a real GPU adapter, otherwise the CPU.
    #[default]
    Auto,
    Cpu,
    /// wgpu on whatever adapter there is (an error when there is none).
    Wgpu,
}

impl std::str::FromStr for EngineChoice {
    type Err = QcError;

    fn from_str(s: &str) -> Result<Self, QcError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            _ => Err(QcError::Engine(format!(
                "{ENGINE_ENV}={s:?}: expected auto, cpu or wgpu"
            ))),
        }
    }
}

/// The engine that computes the per-frame video metrics.
#[derive(Clone)]
pub enum QcEngine {
    Cpu,
    Wgpu(Arc<Context>),
}

impl std::fmt::Debug for QcEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl QcEngine {
    /// The engine [`ENGINE_ENV`] asks for (auto when unset); the device is the process-wide
    /// [`Context::shared`] (its adapter chosen by `AIPROD_WGPU_ADAPTER`).
    pub fn from_env() -> Result<Self, QcError> {
        let choice = match std::env::var(ENGINE_ENV) {
            Ok(v) => v.parse()?,
            Err(_) => EngineChoice::Auto,
        };
        Self::choose(choice)
    }

    pub fn choose(choice: EngineChoice) -> Result<Self, QcError> {
        match choice {
            EngineChoice::Cpu => Ok(Self::Cpu),
            EngineChoice::Wgpu => Context::shared()
                .map(Self::Wgpu)
                .map_err(|e| QcError::Engine(format!("{ENGINE_ENV}=wgpu: {e}"))),
            // Only a real GPU beats the CPU path; enumerating adapters (cached per process) is
            // much cheaper than opening lavapipe just to find that out.
            EngineChoice::Auto if !aiprod_kernels::gpu_present() => Ok(Self::Cpu),
            EngineChoice::Auto => Ok(match Context::shared() {
                Ok(ctx) if ctx.adapter().kind.is_gpu() => Self::Wgpu(ctx),
                _ => Self::Cpu,
            }),
        }
    }

    /// "cpu", or "wgpu (<adapter>)".
    pub fn describe(&self) -> String {
        match self {
            Self::Cpu => "cpu".into(),
            Self::Wgpu(ctx) => format!("wgpu ({})", ctx.adapter().name),
        }
    }
}

fn layout_of(f: &Frame) -> Result<PlanarLayout, QcError> {
    Ok(PlanarLayout::new([
        f.plane_size(0),
        f.plane_size(1),
        f.plane_size(2),
    ])?)
}

fn host_planes<'a>(f: &Frame<'a>) -> [HostPlane<'a>; 3] {
    [0, 1, 2].map(|p| HostPlane {
        data: f.planes[p],
        stride: f.strides[p],
    })
}

/// `slot`'s buffer if it has `layout`, else a new one; then `f` written into it.
fn upload_into(
    ctx: &Context,
    slot: Option<DeviceFrame>,
    layout: PlanarLayout,
    f: &Frame,
) -> Result<DeviceFrame, QcError> {
    let mut frame = match slot {
        Some(d) if d.layout() == layout => d,
        _ => DeviceFrame::new(ctx, layout)?,
    };
    frame.write(ctx, host_planes(f))?;
    Ok(frame)
}

/// Measures each frame of one stream for its black and freeze detectors on the chosen engine.
pub struct FrameMeter {
    gpu: Option<DeviceFrames>,
}

/// The device context and two frame buffers: the one being measured and the freeze reference
/// (the first frame of the current still segment), swapped rather than copied.
struct DeviceFrames {
    ctx: Arc<Context>,
    current: Option<DeviceFrame>,
    reference: Option<DeviceFrame>,
}

impl FrameMeter {
    pub fn new(engine: &QcEngine) -> Self {
        let gpu = match engine {
            QcEngine::Cpu => None,
            QcEngine::Wgpu(ctx) => Some(DeviceFrames {
                ctx: ctx.clone(),
                current: None,
                reference: None,
            }),
        };
        Self { gpu }
    }

    /// Pushes frame `f` at `pts_s` to both detectors.
    pub fn push(
        &mut self,
        f: &Frame,
        pts_s: f64,
        black: &mut BlackDetector,
        freeze: &mut FreezeDetector,
    ) -> Result<(), QcError> {
        let Some(g) = self.gpu.as_mut() else {
            black.push(f, pts_s);
            freeze.push(f, pts_s);
            return Ok(());
        };
        let layout = layout_of(f)?;
        let current = upload_into(&g.ctx, g.current.take(), layout, f)?;
        // A reference of another size is no reference: the frame starts a new segment.
        let reference = g.reference.as_ref().filter(|r| r.layout() == layout);
        let stats = metrics::frame_stats(&g.ctx, &current, reference, black.pixel_threshold())?;
        black.push_count(stats.black_pixels, (f.width * f.height) as u64, pts_s);
        let difference = stats.sad.map(|sad| (sad.iter().sum(), layout.samples()));
        if freeze.push_difference(difference, pts_s) {
            g.current = g.reference.replace(current);
        } else {
            g.current = Some(current);
        }
        Ok(())
    }
}

/// Measures each frame pair for a [`FidelityAccumulator`] (PSNR, SSIM) on the chosen engine.
pub struct PairMeter {
    gpu: Option<DevicePairs>,
}

struct DevicePairs {
    ctx: Arc<Context>,
    main: Option<DeviceFrame>,
    reference: Option<DeviceFrame>,
}

impl PairMeter {
    pub fn new(engine: &QcEngine) -> Self {
        let gpu = match engine {
            QcEngine::Cpu => None,
            QcEngine::Wgpu(ctx) => Some(DevicePairs {
                ctx: ctx.clone(),
                main: None,
                reference: None,
            }),
        };
        Self { gpu }
    }

    /// Pushes the pair (`main`, `reference`), which must have the same plane sizes.
    pub fn push(
        &mut self,
        main: &Frame,
        reference: &Frame,
        acc: &mut FidelityAccumulator,
    ) -> Result<(), QcError> {
        let layout = layout_of(main)?;
        if layout_of(reference)? != layout {
            return Err(QcError::SizeMismatch {
                main: format!("{}x{}", main.width, main.height),
                reference: format!("{}x{}", reference.width, reference.height),
            });
        }
        let Some(g) = self.gpu.as_mut() else {
            acc.push(main, reference);
            return Ok(());
        };
        let a = upload_into(&g.ctx, g.main.take(), layout, main)?;
        let b = upload_into(&g.ctx, g.reference.take(), layout, reference)?;
        let m = metrics::pair_metrics(&g.ctx, &a, &b)?;
        (g.main, g.reference) = (Some(a), Some(b));
        let pixels = [0, 1, 2].map(|p| {
            let (w, h) = layout.plane_size(p);
            w * h
        });
        let mse = [0, 1, 2].map(|p| m.sse[p] as f64 / pixels[p] as f64);
        acc.push_planes(pixels, mse, m.ssim);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_choice_parses() {
        assert_eq!("".parse::<EngineChoice>().unwrap(), EngineChoice::Auto);
        assert_eq!("CPU".parse::<EngineChoice>().unwrap(), EngineChoice::Cpu);
        assert_eq!("wgpu".parse::<EngineChoice>().unwrap(), EngineChoice::Wgpu);
        let e = "cuda".parse::<EngineChoice>().unwrap_err().to_string();
        assert!(e.contains("AIPROD_QC_ENGINE=\"cuda\""), "{e}");
    }

    #[test]
    fn auto_takes_wgpu_only_on_a_real_gpu() {
        let engine = QcEngine::choose(EngineChoice::Auto).unwrap();
        match (&engine, aiprod_kernels::test_context()) {
            (QcEngine::Wgpu(ctx), _) => assert!(ctx.adapter().kind.is_gpu(), "{engine:?}"),
            (QcEngine::Cpu, Some(ctx)) => assert!(!ctx.adapter().kind.is_gpu(), "{engine:?}"),
            (QcEngine::Cpu, None) => {}
        }
        assert!(matches!(
            QcEngine::choose(EngineChoice::Cpu).unwrap(),
            QcEngine::Cpu
        ));
    }
}
