//! conv3x3 + bias + activation, pixel shuffle + residual and the bicubic resize against their
//! plain CPU references, on random data, odd sizes and the network's channel counts.

use aiprod_kernels::conv::{self, Conv3x3Layer, Storage};
use aiprod_kernels::{interp, random_f32, shuffle, test_context};

/// fp32: only the summation order differs.
const FP32_MAX_ABS: f32 = 1e-4;

fn layer(cin: usize, cout: usize, seed: u32, slopes: Vec<f32>) -> Conv3x3Layer {
    // weights scaled like a trained layer (keeps the sums near 1 so 1e-4 is a real bound)
    let k = 1.0 / ((cin * 9) as f32).sqrt();
    Conv3x3Layer {
        in_channels: cin,
        out_channels: cout,
        weights: random_f32(cout * cin * 9, seed)
            .iter()
            .map(|w| w * k)
            .collect(),
        bias: random_f32(cout, seed + 1).iter().map(|b| b * 0.1).collect(),
        slopes,
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn conv3x3_prelu_matches_cpu_fp32() {
    let Some(ctx) = test_context() else { return };
    let sizes = [(1u32, 1u32), (7, 5), (37, 23), (16, 16), (17, 33)];
    let channels = [(3usize, 64usize), (64, 64), (64, 48), (5, 3)];
    for (ci, co) in channels {
        let prelu = random_f32(co, 99).iter().map(|s| s * 0.5).collect();
        let l = layer(ci, co, (ci * 100 + co) as u32, prelu);
        for &(w, h) in &sizes {
            // 64->64 at the larger sizes is slow on lavapipe: the odd and the tile-sized one suffice
            if ci == 64 && co == 64 && w * h > 37 * 23 {
                continue;
            }
            let input = random_f32(ci * (w * h) as usize, w * 31 + h);
            let gpu = conv::conv3x3(&ctx, &l, Storage::F32, &input, w, h).unwrap();
            let cpu = conv::cpu::conv3x3(&l, Storage::F32, &input, w as usize, h as usize);
            let err = max_abs(&gpu, &cpu);
            println!("conv {ci}->{co} {w}x{h}: max |gpu - cpu| = {err:.2e}");
            assert!(err <= FP32_MAX_ABS, "conv {ci}->{co} {w}x{h}: {err}");
            if cpu.len() >= 64 {
                assert!(
                    cpu.iter().any(|v| *v < 0.0),
                    "negative values exercise the slope"
                );
            }
        }
    }
}

#[test]
fn conv3x3_activations() {
    let Some(ctx) = test_context() else { return };
    let (w, h) = (9u32, 6u32);
    let input = random_f32(4 * 54, 5);
    for (name, slope) in [("none", 1.0f32), ("relu", 0.0), ("leaky 0.2", 0.2)] {
        let l = layer(4, 10, 17, vec![slope; 10]);
        let gpu = conv::conv3x3(&ctx, &l, Storage::F32, &input, w, h).unwrap();
        let cpu = conv::cpu::conv3x3(&l, Storage::F32, &input, w as usize, h as usize);
        let err = max_abs(&gpu, &cpu);
        assert!(err <= FP32_MAX_ABS, "{name}: {err}");
        match name {
            "relu" => assert!(gpu.iter().all(|v| *v >= 0.0)),
            "none" => assert!(gpu.iter().any(|v| *v < -0.1)),
            _ => {}
        }
    }
    // one known value: a centre tap of 1 on channel 0 copies the input (+ bias)
    let mut l = layer(1, 1, 3, vec![1.0]);
    l.weights = vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    l.bias = vec![0.5];
    let gpu = conv::conv3x3(&ctx, &l, Storage::F32, &[1.0, 2.0, 3.0], 3, 1).unwrap();
    assert_eq!(gpu, [1.5, 2.5, 3.5]);
}

#[test]
fn conv3x3_fp16_storage_matches_cpu_emulation() {
    let Some(ctx) = test_context() else { return };
    if !ctx.has_f16() {
        eprintln!(
            "SKIPPED: adapter {} has no shader-f16 (or AIPROD_WGPU_F16=0)",
            ctx.adapter().name
        );
        return;
    }
    for (ci, co, w, h) in [(3usize, 64usize, 37u32, 23u32), (64, 48, 7, 5)] {
        let l = layer(ci, co, 7, random_f32(co, 8));
        let input: Vec<f32> = random_f32(ci * (w * h) as usize, 9)
            .iter()
            .map(|v| Storage::F16.round(*v))
            .collect();
        let gpu = conv::conv3x3(&ctx, &l, Storage::F16, &input, w, h).unwrap();
        let emulated = conv::cpu::conv3x3(&l, Storage::F16, &input, w as usize, h as usize);
        let exact = conv::cpu::conv3x3(&l, Storage::F32, &input, w as usize, h as usize);
        // the same fp16 roundings: at most one fp16 step apart (a sum on a rounding boundary)
        let step = emulated.iter().map(|v| v.abs()).fold(0.0, f32::max) / 1024.0;
        let err = max_abs(&gpu, &emulated);
        let vs_fp32 = max_abs(&gpu, &exact);
        println!("conv fp16 {ci}->{co} {w}x{h}: vs emulation {err:.2e}, vs fp32 {vs_fp32:.2e}");
        assert!(err <= step, "{err} > {step}");
        assert!(vs_fp32 > 0.0 && vs_fp32 <= 1e-2, "{vs_fp32}");
    }
}

#[test]
fn pixel_shuffle_add_matches_cpu() {
    let Some(ctx) = test_context() else { return };
    for (w, h, r) in [(1u32, 1u32, 4u32), (7, 5, 4), (37, 23, 2), (5, 3, 3)] {
        let plane = (w * h) as usize;
        let features = random_f32(3 * (r * r) as usize * plane, w + h);
        let skip = random_f32(3 * plane, r);
        let gpu =
            shuffle::pixel_shuffle_add(&ctx, Storage::F32, &features, &skip, w, h, r).unwrap();
        let cpu =
            shuffle::cpu::pixel_shuffle_add(&features, &skip, w as usize, h as usize, r as usize);
        // one addition per value, the same on both sides
        assert_eq!(gpu, cpu, "x{r} {w}x{h}");
        if ctx.has_f16() {
            let f16 = |v: &[f32]| v.iter().map(|x| Storage::F16.round(*x)).collect::<Vec<_>>();
            let gpu =
                shuffle::pixel_shuffle_add(&ctx, Storage::F16, &features, &skip, w, h, r).unwrap();
            let cpu = shuffle::cpu::pixel_shuffle_add(
                &f16(&features),
                &f16(&skip),
                w as usize,
                h as usize,
                r as usize,
            );
            assert_eq!(gpu, cpu, "fp16 x{r} {w}x{h}");
        }
    }
}

#[test]
fn bicubic_matches_cpu() {
    let Some(ctx) = test_context() else { return };
    for ((iw, ih), scale) in [((148u32, 92u32), 0.5f32), ((148, 92), 0.75), ((8, 4), 0.5)] {
        let (ow, oh) = (
            (iw as f32 * scale).round() as u32,
            (ih as f32 * scale).round() as u32,
        );
        let input = random_f32(3 * (iw * ih) as usize, iw);
        let gpu = interp::bicubic(&ctx, &input, 3, (iw, ih), (ow, oh), scale).unwrap();
        let cpu = interp::cpu::bicubic(
            &input,
            3,
            (iw as usize, ih as usize),
            (ow as usize, oh as usize),
            scale,
        );
        let err = max_abs(&gpu, &cpu);
        println!("bicubic {iw}x{ih} x{scale}: max |gpu - cpu| = {err:.2e}");
        assert!(err <= 1e-5, "{err}");
    }
}

#[test]
fn bad_sizes_are_errors() {
    let Some(ctx) = test_context() else { return };
    let l = layer(3, 8, 1, vec![1.0; 8]);
    let e = conv::conv3x3(&ctx, &l, Storage::F32, &[0.0; 10], 2, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs 12"), "{e}");
    let mut bad = l.clone();
    bad.bias.pop();
    let e = conv::conv3x3(&ctx, &bad, Storage::F32, &[0.0; 12], 2, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("7 biases"), "{e}");
}
