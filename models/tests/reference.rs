//! Accuracy against the official ncnn runtime (CPU, fp32): ../shared/testdata/esrgan holds its
//! outputs for realesr-animevideov3 x4 (README and manifest.json there). Raw float output within
//! the manifest's fp32 tolerance (1e-4 max abs), 8-bit PNG within ±1 per channel value.

mod common;

use common::*;

struct Case {
    id: String,
    input_png: std::path::PathBuf,
    output_f32: std::path::PathBuf,
    output_png: std::path::PathBuf,
    out_shape: [usize; 3],
    fp32_max_abs: f32,
    png8_max_abs: i32,
}

fn cases() -> Option<Vec<Case>> {
    let dir = testdata()?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    let cases = manifest["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3, "the manifest has the three public cases");
    Some(
        cases
            .iter()
            .map(|c| {
                let shape: Vec<usize> = c["output_shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect();
                assert_eq!(c["scale"], 4);
                assert_eq!(c["layout"], "CHW");
                Case {
                    id: c["id"].as_str().unwrap().to_string(),
                    input_png: dir.join(c["input_png"].as_str().unwrap()),
                    output_f32: dir.join(c["output_f32"].as_str().unwrap()),
                    output_png: dir.join(c["output_png"].as_str().unwrap()),
                    out_shape: [shape[0], shape[1], shape[2]],
                    fp32_max_abs: c["tolerances"]["fp32_max_abs"].as_f64().unwrap() as f32,
                    png8_max_abs: c["tolerances"]["png8_max_abs"].as_i64().unwrap() as i32,
                }
            })
            .collect(),
    )
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn raw_output_matches_ncnn_within_fp32_tolerance() {
    if !runtime_ready() {
        return;
    }
    let Some(cases) = cases() else { return };
    let mut up = upscaler("realesr-animevideov3", 4, 0, 0);
    for case in &cases {
        let (w, h, rgb) = read_png(&case.input_png);
        let out = up.upscale_planar(&planar(w, h, &rgb), w, h).unwrap();
        let reference = read_f32(&case.output_f32);
        assert_eq!(case.out_shape, [3, 4 * h as usize, 4 * w as usize]);
        assert_eq!(reference.len(), out.len());
        let err = max_abs_diff(&out, &reference);
        println!("{}: max |ours - ncnn| = {err:.3e}", case.id);
        assert!(
            err <= case.fp32_max_abs,
            "{}: max abs diff {err} > {}",
            case.id,
            case.fp32_max_abs
        );
    }
}

#[test]
fn png_output_matches_ncnn_within_one_level() {
    if !runtime_ready() {
        return;
    }
    let Some(cases) = cases() else { return };
    // the 8-bit path goes through tiles (16 px, overlap = radius) to cover the frame code too
    let mut up = upscaler("realesr-animevideov3", 4, 16, 18);
    for case in &cases {
        let (w, h, rgb) = read_png(&case.input_png);
        let out = up.upscale_rgb8(&rgb, w, h).unwrap();
        let (rw, rh, reference) = read_png(&case.output_png);
        assert_eq!((rw, rh), (4 * w, 4 * h));
        let worst = out
            .iter()
            .zip(&reference)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max()
            .unwrap();
        let differing = out.iter().zip(&reference).filter(|(a, b)| a != b).count();
        println!(
            "{}: max 8-bit diff {worst}, {differing} of {} values differ",
            case.id,
            out.len()
        );
        assert!(
            worst <= case.png8_max_abs,
            "{}: 8-bit diff {worst}",
            case.id
        );
    }
}

#[test]
fn fp16_model_matches_ncnn_within_fp16_tolerance() {
    // the model CUDA runs, checked on the CPU (ONNX Runtime's CPU has fp16 kernels)
    if !runtime_ready() {
        return;
    }
    let Some(cases) = cases() else { return };
    let fp16 = Some(aiprod_models::Precision::Fp16);
    let mut up = upscaler_with("realesr-animevideov3", 4, 0, 0, fp16);
    assert_eq!(up.precision(), aiprod_models::Precision::Fp16);
    for case in &cases {
        let (w, h, rgb) = read_png(&case.input_png);
        let out = up.upscale_planar(&planar(w, h, &rgb), w, h).unwrap();
        let err = max_abs_diff(&out, &read_f32(&case.output_f32));
        println!("{} fp16: max |ours - ncnn fp32| = {err:.3e}", case.id);
        // README: fp16 implementations within 3e-2
        assert!(err <= 3e-2, "{}: {err}", case.id);
        assert!(err > 1e-6, "the fp16 model really ran");
    }
}

#[test]
fn huge_frames_are_refused_before_allocating() {
    if !runtime_ready() {
        return;
    }
    let mut up = upscaler("realesr-animevideov3", 4, 0, 0);
    // 65535x65535 would need 51 GB of input floats alone; it must fail on the header numbers
    let err = up.upscale_planar(&[], 65535, 65535).unwrap_err();
    assert!(
        matches!(err, aiprod_models::ModelError::ImageTooLarge { .. }),
        "{err}"
    );
    let err = up.upscale_rgb8(&[], 65535, 65535).unwrap_err();
    assert!(
        matches!(err, aiprod_models::ModelError::ImageTooLarge { .. }),
        "{err}"
    );
    // a too-short buffer is an error, not a panic
    let err = up.upscale_rgb8(&[0; 10], 4, 4).unwrap_err();
    assert!(err.to_string().contains("needs 48 bytes"), "{err}");
}
