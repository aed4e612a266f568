//! The other official exports. x2/x3 are the x4 network followed by ncnn's bicubic downscale
//! (Interp type 3): checked against an independent implementation of that resize applied to our
//! x4 output (which itself matches ncnn, see reference.rs). RRDBNet (RealESRGAN_x4plus) has no
//! ncnn fixture: a flat grey field must come back flat and grey (wrong residual scaling or
//! channel order would not).

mod common;

use common::*;

/// ncnn `interpolate_cubic`: Keys kernel with A = -0.75 for fractional offset `t`.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let (x0, x1, x2) = (t + 1.0, t, 1.0 - t);
    let w0 = A * x0 * x0 * x0 - 5.0 * A * x0 * x0 + 8.0 * A * x0 - 4.0 * A;
    let w1 = (A + 2.0) * x1 * x1 * x1 - (A + 3.0) * x1 * x1 + 1.0;
    let w2 = (A + 2.0) * x2 * x2 * x2 - (A + 3.0) * x2 * x2 + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// Half-pixel bicubic resize of one plane with edge pixels replicated (what ncnn's coefficient
/// folding at the borders amounts to), rows first then columns.
fn bicubic(src: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    let taps = |n: usize, on: usize| -> Vec<([usize; 4], [f32; 4])> {
        let scale = n as f64 / on as f64;
        (0..on)
            .map(|d| {
                let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                let s = f.floor();
                let idx = [-1, 0, 1, 2].map(|k| (s as i64 + k).clamp(0, n as i64 - 1) as usize);
                (idx, cubic_weights(f - s))
            })
            .collect()
    };
    let (tx, ty) = (taps(w, ow), taps(h, oh));
    let mut rows = vec![0.0f32; ow * h];
    for y in 0..h {
        for (x, (idx, wt)) in tx.iter().enumerate() {
            rows[y * ow + x] = (0..4).map(|k| wt[k] * src[y * w + idx[k]]).sum();
        }
    }
    let mut out = vec![0.0f32; ow * oh];
    for (y, (idx, wt)) in ty.iter().enumerate() {
        for x in 0..ow {
            out[y * ow + x] = (0..4).map(|k| wt[k] * rows[idx[k] * ow + x]).sum();
        }
    }
    out
}

#[test]
fn x2_and_x3_are_the_x4_network_then_ncnn_bicubic() {
    if !runtime_ready() {
        return;
    }
    let (w, h) = (29, 21);
    let input = planar(w, h, &synthetic_rgb(w, h, 9));
    let x4 = upscaler("realesr-animevideov3", 4, 0, 0)
        .upscale_planar(&input, w, h)
        .unwrap();
    let (w4, h4) = (4 * w as usize, 4 * h as usize);
    for scale in [2u32, 3] {
        let ours = upscaler("realesr-animevideov3", scale, 0, 0)
            .upscale_planar(&input, w, h)
            .unwrap();
        let (ow, oh) = (scale as usize * w as usize, scale as usize * h as usize);
        let expected: Vec<f32> = (0..3)
            .flat_map(|c| bicubic(&x4[c * w4 * h4..(c + 1) * w4 * h4], w4, h4, ow, oh))
            .collect();
        let err = max_abs_diff(&ours, &expected);
        println!("x{scale}: max |model - bicubic(x4)| = {err:.2e}");
        assert!(err <= 1e-5, "x{scale}: {err}");
    }
}

#[test]
fn rrdbnet_keeps_a_flat_field_flat() {
    if !runtime_ready() {
        return;
    }
    let (w, h) = (12u32, 12u32);
    let grey = vec![128u8; (w * h * 3) as usize];
    let out = upscaler("RealESRGAN_x4plus", 4, 0, 0)
        .upscale_rgb8(&grey, w, h)
        .unwrap();
    assert_eq!(out.len(), (16 * w * h * 3) as usize);
    let worst = out
        .iter()
        .map(|&v| (i32::from(v) - 128).abs())
        .max()
        .unwrap();
    let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / out.len() as f64;
    println!("RealESRGAN_x4plus on flat 128: mean {mean:.2}, max deviation {worst}");
    assert!((mean - 128.0).abs() < 3.0, "mean {mean}");
    assert!(worst <= 8, "max deviation {worst}");
}
