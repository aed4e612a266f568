//! The native wgpu engine (realesr-animevideov3 on aiprod's kernels) against the official ncnn
//! outputs in ../shared/testdata/esrgan, against the ONNX Runtime engine on the same input, and
//! tiled against whole-frame. Runs on lavapipe in CI, so the images stay small. Without an
//! adapter every test prints SKIPPED; without the models it skips (fails in CI, like the ORT tests).

mod common;

use aiprod_models::{Engine, Precision, Upscaler, UpscalerConfig};
use common::*;

/// fp32 vs the ncnn reference (testdata README).
const FP32_MAX_ABS: f32 = 1e-4;
/// fp16 storage vs the fp32 reference (testdata README).
const FP16_MAX_ABS: f32 = 3e-2;
/// Tiled vs whole frame with overlap = receptive radius: the same sums in the same order.
const TILED_MAX_ABS: f32 = 1e-6;

/// A wgpu upscaler, or None (with the reason printed) where there is no adapter or no model.
fn wgpu_upscaler(
    scale: u32,
    tile_px: u32,
    overlap_px: u32,
    precision: Option<Precision>,
) -> Option<Upscaler> {
    let ctx = aiprod_kernels::test_context()?;
    if precision == Some(Precision::Fp16) && !ctx.has_f16() {
        eprintln!(
            "SKIPPED: adapter {} has no shader-f16 (or AIPROD_WGPU_F16=0): fp16 path not run",
            ctx.adapter().name
        );
        return None;
    }
    let mut config = UpscalerConfig::new("realesr-animevideov3", scale);
    config.engine = Engine::Wgpu;
    config.models_dir = Some(models_dir());
    config.tile_px = Some(tile_px);
    config.overlap_px = Some(overlap_px);
    config.session.precision = precision;
    match Upscaler::new(&config) {
        Ok(u) => Some(u),
        Err(e @ aiprod_models::ModelError::Missing { .. }) => {
            if std::env::var_os("CI").is_some() || std::env::var_os("AIPROD_REQUIRE_ORT").is_some()
            {
                panic!("{e} (CI/AIPROD_REQUIRE_ORT is set, so this test must run)");
            }
            eprintln!("\n*** SKIPPED: {e} ***\n");
            None
        }
        Err(e) => panic!("wgpu upscaler: {e}"),
    }
}

struct Case {
    id: String,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    reference: Vec<f32>,
    reference_png: Vec<u8>,
}

/// The manifest's cases up to `max_pixels` input pixels (lavapipe is slow).
fn cases(max_pixels: u32) -> Option<Vec<Case>> {
    let dir = testdata()?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for c in manifest["cases"].as_array().unwrap() {
        let path = |k: &str| dir.join(c[k].as_str().unwrap());
        let (width, height, rgb) = read_png(&path("input_png"));
        if width * height > max_pixels {
            continue;
        }
        assert_eq!(c["scale"], 4);
        let reference: Vec<f32> = std::fs::read(path("output_f32"))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(reference.len(), 3 * 16 * (width * height) as usize);
        let (pw, ph, reference_png) = read_png(&path("output_png"));
        assert_eq!((pw, ph), (4 * width, 4 * height));
        out.push(Case {
            id: c["id"].as_str().unwrap().to_string(),
            width,
            height,
            rgb,
            reference,
            reference_png,
        });
    }
    Some(out)
}

/// Cases small enough for CI on lavapipe: 16x16 and 37x23; 64x48 too with AIPROD_TEST_LARGE=1.
fn ci_cases() -> Option<Vec<Case>> {
    let large = std::env::var_os("AIPROD_TEST_LARGE").is_some();
    let out = cases(if large { u32::MAX } else { 37 * 23 })?;
    assert!(out.len() >= 2, "the 16x16 and 37x23 cases are there");
    Some(out)
}

/// Packed RGB8 (`round(clamp(y, 0, 1) * 255)`) of a planar CHW output.
fn packed_u8(planar: &[f32]) -> Vec<u8> {
    let plane = planar.len() / 3;
    (0..plane)
        .flat_map(|i| (0..3).map(move |c| aiprod_models::frame::to_u8(planar[c * plane + i])))
        .collect()
}

fn worst_u8(a: &[u8], b: &[u8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs())
        .max()
        .unwrap_or(0)
}

#[test]
fn fp32_matches_ncnn_raw_and_png() {
    let Some(mut up) = wgpu_upscaler(4, 0, 0, None) else {
        return;
    };
    let Some(cases) = ci_cases() else { return };
    assert_eq!(up.precision(), Precision::Fp32);
    println!("adapter: {}", up.provider());
    for case in &cases {
        let (w, h) = (case.width, case.height);
        let out = up.upscale_planar(&planar(w, h, &case.rgb), w, h).unwrap();
        let err = max_abs_diff(&out, &case.reference);
        let worst = worst_u8(&packed_u8(&out), &case.reference_png);
        println!(
            "{} wgpu fp32: max |ours - ncnn| = {err:.3e}, 8-bit max diff {worst}",
            case.id
        );
        assert!(err <= FP32_MAX_ABS, "{}: {err}", case.id);
        assert!(worst <= 1, "{}: 8-bit diff {worst}", case.id);
    }
}

#[test]
fn fp16_matches_ncnn_within_fp16_tolerance() {
    let Some(mut up) = wgpu_upscaler(4, 0, 0, Some(Precision::Fp16)) else {
        return;
    };
    let Some(cases) = ci_cases() else { return };
    assert_eq!(up.precision(), Precision::Fp16);
    for case in &cases {
        let (w, h) = (case.width, case.height);
        let out = up.upscale_planar(&planar(w, h, &case.rgb), w, h).unwrap();
        let err = max_abs_diff(&out, &case.reference);
        let worst = worst_u8(&packed_u8(&out), &case.reference_png);
        println!(
            "{} wgpu fp16: max |ours - ncnn fp32| = {err:.3e}, 8-bit max diff {worst}",
            case.id
        );
        assert!(err <= FP16_MAX_ABS, "{}: {err}", case.id);
        assert!(err > 1e-6, "the fp16 path really ran");
        assert!(worst <= 2, "{}: 8-bit diff {worst}", case.id);
    }
}

/// The fp16 numerics without trusting the device: the kernels' CPU reference with every stored
/// value rounded to fp16 (as the device stores them) stays within the fp16 tolerance of ncnn, and
/// the device's fp16 path (where the adapter has it) lands on that emulation.
#[test]
fn fp16_emulation_on_cpu_matches_ncnn() {
    let Some(dir) = testdata() else { return };
    let registry = aiprod_models::Registry::builtin().unwrap();
    let spec = registry.find("realesr-animevideov3", 4).unwrap();
    let store = aiprod_models::ModelStore::new(models_dir());
    let network = match aiprod_models::wgpu_engine::load_network(spec, &store) {
        Ok(n) => n,
        Err(e) => {
            if std::env::var_os("CI").is_some() || std::env::var_os("AIPROD_REQUIRE_ORT").is_some()
            {
                panic!("{e}");
            }
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let net = aiprod_models::wgpu_engine::srvgg_spec(&network, "x4").unwrap();
    let Some(cases) = cases(16 * 16) else { return };
    let case = &cases[0];
    assert!(dir.join("manifest.json").is_file());
    let (w, h) = (case.width, case.height);
    let input = planar(w, h, &case.rgb);
    let emulated = aiprod_kernels::srvgg::cpu::run(
        &net,
        aiprod_kernels::conv::Storage::F16,
        &input,
        w as usize,
        h as usize,
    );
    let err = max_abs_diff(&emulated, &case.reference);
    println!(
        "{} CPU fp16-storage emulation: max |emulation - ncnn| = {err:.3e}",
        case.id
    );
    assert!(err <= FP16_MAX_ABS && err > 1e-6, "{err}");
    let Some(mut up) = wgpu_upscaler(4, 0, 0, Some(Precision::Fp16)) else {
        return;
    };
    let gpu = up.upscale_planar(&input, w, h).unwrap();
    let vs_emulation = max_abs_diff(&gpu, &emulated);
    println!(
        "{} wgpu fp16 vs the CPU emulation: {vs_emulation:.3e}",
        case.id
    );
    // the same roundings; a value on an fp16 rounding boundary may flip one step, which the
    // following layers carry on: far below the fp16-vs-fp32 distance
    assert!(vs_emulation <= err / 4.0, "{vs_emulation} vs {err}");
}

/// Tiles cropped from the frame on one side or both (zero padding only at the true border) give
/// what the whole frame gives. Small frames, as tiles with an 18 px overlap are costly on lavapipe:
/// 40x8 in two columns (planar), 8x40 in two rows (through the 8-bit frame path).
#[test]
fn tiled_equals_whole_frame() {
    let Some(mut whole) = wgpu_upscaler(4, 0, 0, None) else {
        return;
    };
    let Some(mut tiled) = wgpu_upscaler(4, 20, 18, None) else {
        return;
    };
    let (w, h) = (40, 8);
    let input = planar(w, h, &synthetic_rgb(w, h, 7));
    let a = whole.upscale_planar(&input, w, h).unwrap();
    let b = tiled.upscale_planar(&input, w, h).unwrap();
    let err = max_abs_diff(&a, &b);
    println!("wgpu x4 {w}x{h} tile 20 overlap 18: max |tiled - whole| = {err:.2e}");
    assert!(err <= TILED_MAX_ABS, "{err}");
    // one pixel short of the radius is not exact: the overlap really matters
    let Some(mut short) = wgpu_upscaler(4, 20, 17, None) else {
        return;
    };
    let c = short.upscale_planar(&input, w, h).unwrap();
    let err = max_abs_diff(&a, &c);
    println!("wgpu x4 {w}x{h} tile 20 overlap 17: max |tiled - whole| = {err:.2e}");
    assert!(err > TILED_MAX_ABS, "overlap 17: {err}");

    let (w, h) = (8, 40);
    let rgb = synthetic_rgb(w, h, 9);
    let a = packed_u8(&whole.upscale_planar(&planar(w, h, &rgb), w, h).unwrap());
    let b = tiled.upscale_rgb8(&rgb, w, h).unwrap();
    assert_eq!(worst_u8(&a, &b), 0, "8-bit frame path, tiled in rows");
}

/// Same input through ONNX Runtime (CPU fp32) and wgpu fp32: x4, and the x2/x3 exports with their
/// bicubic tail. Needs ORT_DYLIB_PATH (skips loudly otherwise, fails in CI).
#[test]
fn matches_the_ort_engine() {
    if aiprod_kernels::test_context().is_none() || !runtime_ready() {
        return;
    }
    let (w, h) = (16, 10);
    let rgb = synthetic_rgb(w, h, 3);
    let input = planar(w, h, &rgb);
    for scale in [4, 2, 3] {
        let Some(mut native) = wgpu_upscaler(scale, 0, 0, None) else {
            return;
        };
        let mut ort = upscaler("realesr-animevideov3", scale, 0, 0);
        let a = native.upscale_planar(&input, w, h).unwrap();
        let b = ort.upscale_planar(&input, w, h).unwrap();
        assert_eq!(a.len(), 3 * (scale * scale * w * h) as usize);
        let err = max_abs_diff(&a, &b);
        let worst = worst_u8(&packed_u8(&a), &packed_u8(&b));
        println!("x{scale} {w}x{h}: max |wgpu - ort| = {err:.2e}, 8-bit max diff {worst}");
        assert!(err <= FP32_MAX_ABS, "x{scale}: {err}");
        assert!(worst <= 1, "x{scale}: {worst}");
    }
}

#[test]
fn rrdb_models_are_refused_by_name() {
    let mut config = UpscalerConfig::new("RealESRGAN_x4plus_anime_6B", 4);
    config.engine = "wgpu".parse().unwrap();
    config.models_dir = Some(models_dir());
    let e = Upscaler::new(&config)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("engine wgpu does not run RealESRGAN_x4plus_anime_6B x4 (RRDBNet)")
            && e.contains("use engine ort"),
        "{e}"
    );
}
