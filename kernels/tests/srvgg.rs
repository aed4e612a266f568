//! The whole SRVGGNetCompact sequence on the device (convolutions ping-ponging between pooled
//! buffers, shuffle + residual, optional bicubic tail) against the plain CPU reference, on a
//! small random network of the same shape as realesr-animevideov3 (fewer, narrower layers).

use aiprod_kernels::conv::{Conv3x3Layer, Storage};
use aiprod_kernels::srvgg::{cpu, Srvgg, SrvggSpec};
use aiprod_kernels::{random_f32, test_context};

/// conv 3->16 + PReLU, 2 x (conv 16->16 + PReLU), conv 16->3·r², shuffle xr (+ resize).
fn network(r: usize, resize: Option<f32>) -> SrvggSpec {
    let dims = [(3, 16), (16, 16), (16, 16), (16, 3 * r * r)];
    let convs = dims
        .iter()
        .enumerate()
        .map(|(i, &(ci, co))| {
            let k = 1.0 / ((ci * 9) as f32).sqrt();
            let last = i + 1 == dims.len();
            Conv3x3Layer {
                in_channels: ci,
                out_channels: co,
                weights: random_f32(co * ci * 9, i as u32 + 1)
                    .iter()
                    .map(|w| w * k)
                    .collect(),
                bias: random_f32(co, i as u32 + 50)
                    .iter()
                    .map(|b| b * 0.05)
                    .collect(),
                slopes: if last {
                    vec![1.0; co]
                } else {
                    random_f32(co, 7).iter().map(|s| s.abs() * 0.3).collect()
                },
            }
        })
        .collect();
    SrvggSpec {
        channels: 3,
        convs,
        shuffle_factor: r as u32,
        resize,
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
fn network_matches_cpu_reference() {
    let Some(ctx) = test_context() else { return };
    let mut storages = vec![Storage::F32];
    if ctx.has_f16() {
        storages.push(Storage::F16);
    } else {
        eprintln!(
            "SKIPPED (fp16 part): adapter {} has no shader-f16",
            ctx.adapter().name
        );
    }
    for (r, resize, scale) in [
        (4, None, 4),
        (4, Some(0.5), 2),
        (4, Some(0.75), 3),
        (2, None, 2),
    ] {
        let spec = network(r, resize);
        for &storage in &storages {
            let net = Srvgg::new(ctx.clone(), &spec, storage).unwrap();
            assert_eq!(net.scale(), scale);
            for (w, h) in [(13u32, 9u32), (1, 1)] {
                let input: Vec<f32> = random_f32(3 * (w * h) as usize, w + h)
                    .iter()
                    .map(|v| v * 0.5 + 0.5)
                    .collect();
                let gpu = net.run(&input, w, h).unwrap();
                let reference = cpu::run(&spec, storage, &input, w as usize, h as usize);
                assert_eq!(gpu.len(), 3 * (w * h * scale * scale) as usize);
                let err = max_abs(&gpu, &reference);
                println!(
                    "x{scale} ({r} {resize:?}) {} {w}x{h}: max |gpu - cpu| = {err:.2e}",
                    storage.as_str()
                );
                // fp32: summation order only; fp16: the same roundings, a boundary case may flip
                // one fp16 step (1/1024 relative) and carry on
                let bound = match storage {
                    Storage::F32 => 1e-5,
                    Storage::F16 => 4e-3,
                };
                assert!(err <= bound, "{} {w}x{h} x{scale}: {err}", storage.as_str());
            }
        }
    }
}

#[test]
fn inconsistent_networks_are_refused() {
    let mut spec = network(4, None);
    spec.convs[2].in_channels = 8;
    let e = spec.validate().unwrap_err().to_string();
    assert!(e.contains("convolution 2 takes 8 channels"), "{e}");
    let mut spec = network(4, None);
    spec.shuffle_factor = 2;
    let e = spec.validate().unwrap_err().to_string();
    assert!(e.contains("x2 shuffle of 3 needs 12"), "{e}");
    let spec = network(4, Some(0.6));
    let e = spec.validate().unwrap_err().to_string();
    assert!(e.contains("not a whole number"), "{e}");
    let Some(ctx) = test_context() else { return };
    let net = Srvgg::new(ctx, &network(2, None), Storage::F32).unwrap();
    let e = net.run(&[0.0; 5], 2, 1).unwrap_err().to_string();
    assert!(e.contains("needs 6"), "{e}");
}
