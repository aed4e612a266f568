//! Shared by the integration tests: where the models, ONNX Runtime and the ncnn reference
//! fixtures are, and the rule for when they are missing: a loud skip on a developer machine,
//! a failure in CI (`CI` or `AIPROD_REQUIRE_ORT` set; scripts/test.sh sets the latter).
#![allow(dead_code)]

use std::path::PathBuf;

use aiprod_models::{fetch, runtime, ModelStore, Registry, Upscaler, UpscalerConfig};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn models_dir() -> PathBuf {
    match std::env::var_os("AIPROD_MODELS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("data/models"),
    }
}

/// ../shared/testdata/esrgan next to the checkout (or inside it), or $AIPROD_ESRGAN_TESTDATA.
pub fn testdata_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("AIPROD_ESRGAN_TESTDATA") {
        return Some(PathBuf::from(d));
    }
    let root = workspace_root();
    [
        root.join("../shared/testdata/esrgan"),
        root.join("shared/testdata/esrgan"),
    ]
    .into_iter()
    .find(|p| p.join("manifest.json").is_file())
}

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("AIPROD_REQUIRE_ORT").is_some()
}

fn unavailable(what: &str) -> bool {
    if required() {
        panic!("{what} (CI/AIPROD_REQUIRE_ORT is set, so this test must run: use scripts/test.sh)");
    }
    eprintln!("\n*** SKIPPED: {what} ***\n*** run scripts/setup-models.sh and export ORT_DYLIB_PATH (scripts/test.sh does both) ***\n");
    false
}

/// True when ONNX Runtime and the imported models are there; otherwise skips loudly or fails in CI.
pub fn runtime_ready() -> bool {
    if let Err(e) = runtime::ort_dylib_path() {
        return unavailable(&e.to_string());
    }
    let registry = Registry::builtin().expect("builtin registry");
    if let Err(e) = fetch::verify_store(&ModelStore::new(models_dir()), &registry) {
        return unavailable(&e.to_string());
    }
    true
}

pub fn testdata() -> Option<PathBuf> {
    match testdata_dir() {
        Some(d) => Some(d),
        None => {
            unavailable("the ncnn reference fixtures (../shared/testdata/esrgan) are not there");
            None
        }
    }
}

/// A CPU upscaler with 2 threads (CI has 2 cores) and the given tiling.
pub fn upscaler(model: &str, scale: u32, tile_px: u32, overlap_px: u32) -> Upscaler {
    upscaler_with(model, scale, tile_px, overlap_px, None)
}

pub fn upscaler_with(
    model: &str,
    scale: u32,
    tile_px: u32,
    overlap_px: u32,
    precision: Option<aiprod_models::Precision>,
) -> Upscaler {
    let mut config = UpscalerConfig::new(model, scale);
    config.models_dir = Some(models_dir());
    config.tile_px = Some(tile_px);
    config.overlap_px = Some(overlap_px);
    config.session.device = aiprod_models::Device::Cpu;
    config.session.threads = 2;
    config.session.precision = precision;
    Upscaler::new(&config).expect("upscaler")
}

/// An 8-bit RGB PNG as (width, height, packed RGB).
pub fn read_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let img = image::open(path).expect("png").to_rgb8();
    (img.width(), img.height(), img.into_raw())
}

/// Planar CHW floats in [0, 1] from packed RGB8.
pub fn planar(width: u32, height: u32, rgb: &[u8]) -> Vec<f32> {
    let plane = (width * height) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(px[c]) / 255.0;
        }
    }
    out
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A deterministic test picture: gradients, a hard edge and noise (xorshift).
pub fn synthetic_rgb(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut state = seed.max(1);
    let mut out = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state % 48) as i32 - 24;
            let edge = if x * height > y * width { 200 } else { 40 };
            let r = (x * 255 / width.max(1)) as i32 + noise;
            let g = edge + noise / 2;
            let b = (y * 255 / height.max(1)) as i32 - noise;
            out.extend([r, g, b].map(|v| v.clamp(0, 255) as u8));
        }
    }
    out
}
