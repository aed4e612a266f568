//! Resize: GPU against the CPU reference, device chaining, and two independent oracles (the
//! `image` crate in f32, ffmpeg's swscale on 8-bit planes).

use std::process::Command;

use aiprod_kernels::colour::{self, ColourSpec, YuvFormat, YuvLayout};
use aiprod_kernels::resize::{self, cpu, DeviceResize, Filter, ResizePlan, F32_TOLERANCE};
use aiprod_kernels::test_context;

/// Smooth shapes, a hard edge and fine stripes, in [0.15, 0.85] so no filter overshoots [0, 1]
/// (the `image` crate clamps f32 to [0, 1]).
fn test_plane(w: u32, h: u32, phase: f32) -> Vec<f32> {
    let mut v = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let mut s = 0.5 + 0.2 * (6.0 * fx + phase).sin() * (4.0 * fy).cos();
            if x * 3 > w * 2 {
                s += if (x + y) % 4 < 2 { 0.1 } else { -0.1 };
            }
            if y * 2 > h && x * 3 < w {
                s = 0.3;
            }
            v.push(s.clamp(0.15, 0.85));
        }
    }
    v
}

fn test_u8(w: u32, h: u32, stride: u32) -> Vec<u8> {
    let f = test_plane(w, h, 0.3);
    let mut out = vec![7u8; (stride * h) as usize];
    for y in 0..h {
        for x in 0..w {
            // stretch to the full 8-bit range so ringing is clamped on both sides
            let v = (f[(y * w + x) as usize] - 0.15) / 0.7 * 255.0;
            out[(y * stride + x) as usize] = v.round() as u8;
        }
    }
    out
}

const FILTERS: [Filter; 3] = [
    Filter::CATMULL_ROM,
    Filter::Bicubic { a: -0.75 },
    Filter::Lanczos3,
];
const SIZES: [(u32, u32, u32, u32); 3] = [(37, 23, 80, 50), (37, 23, 17, 11), (40, 30, 120, 10)];

#[test]
fn f32_matches_the_cpu_reference() {
    let Some(ctx) = test_context() else { return };
    for (sw, sh, dw, dh) in SIZES {
        let src: Vec<f32> = (0..3).flat_map(|c| test_plane(sw, sh, c as f32)).collect();
        for filter in FILTERS {
            let plan = ResizePlan::new(sw, sh, dw, dh, filter).unwrap();
            let want = cpu::resize_planar_f32(&plan, &src, 3).unwrap();
            let got = resize::resize_planar_f32(&ctx, &plan, &src, 3).unwrap();
            assert_eq!(got.len(), (3 * dw * dh) as usize);
            let d = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            eprintln!("f32 GPU vs CPU {sw}x{sh}->{dw}x{dh} {filter:?}: max |Δ| {d:e}");
            assert!(d <= F32_TOLERANCE, "{sw}x{sh}->{dw}x{dh} {filter:?}: {d}");
        }
    }
}

#[test]
fn u8_matches_the_cpu_reference_exactly() {
    let Some(ctx) = test_context() else { return };
    for (sw, sh, dw, dh) in SIZES {
        let stride = sw + 5;
        let src = test_u8(sw, sh, stride);
        for filter in FILTERS {
            let plan = ResizePlan::new(sw, sh, dw, dh, filter).unwrap();
            let want = cpu::resize_plane_u8(&plan, &src, u64::from(stride)).unwrap();
            let got = resize::resize_plane_u8(&ctx, &plan, &src, u64::from(stride)).unwrap();
            assert_eq!(got, want, "{sw}x{sh}->{dw}x{dh} {filter:?}");
        }
    }
}

#[test]
fn chains_with_colour_on_the_device() {
    let Some(ctx) = test_context() else { return };
    let (w, h) = (30, 20);
    let layout = YuvLayout::packed(YuvFormat::I420, w, h).unwrap();
    let yuv: Vec<u8> = (0..layout.len_bytes())
        .map(|i| (i * 37 % 200 + 20) as u8)
        .collect();
    let spec = ColourSpec::default();
    let plan = ResizePlan::new(w, h, 64, 44, Filter::Lanczos3).unwrap();
    let dev = DeviceResize::new(&ctx, &plan).unwrap();
    // I420 → planar RGB → resized, one upload, one download
    let src = ctx.upload("yuv", &yuv).unwrap();
    let planar = colour::yuv_to_planar_device(&ctx, &src, &layout, &spec).unwrap();
    let out = dev.planar_f32(&ctx, &planar, 3).unwrap();
    let got: Vec<f32> = ctx.download_as(&out, 3 * 64 * 44).unwrap();
    let want = colour::cpu::yuv_to_planar(&yuv, &layout, &spec).unwrap();
    let want = cpu::resize_planar_f32(&plan, &want, 3).unwrap();
    let d = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d <= 2.0 * F32_TOLERANCE, "chained resize differs by {d}");
}

/// The `image` crate (CatmullRom = a −0.5, Lanczos3, half-pixel centres, widened kernels). It
/// renormalises a truncated window at the borders where we repeat the edge pixel, so borders
/// (the filter's reach) are left out.
#[test]
fn f32_agrees_with_the_image_crate_inside_the_borders() {
    use image::imageops::FilterType;
    for (sw, sh, dw, dh) in SIZES {
        let src = test_plane(sw, sh, 0.7);
        let img = image::ImageBuffer::<image::Luma<f32>, _>::from_raw(sw, sh, src.clone()).unwrap();
        for (filter, theirs) in [
            (Filter::CATMULL_ROM, FilterType::CatmullRom),
            (Filter::Lanczos3, FilterType::Lanczos3),
        ] {
            let oracle = image::imageops::resize(&img, dw, dh, theirs).into_raw();
            let plan = ResizePlan::new(sw, sh, dw, dh, filter).unwrap();
            let ours = cpu::resize_planar_f32(&plan, &src, 1).unwrap();
            let support = if filter == Filter::Lanczos3 { 3.0 } else { 2.0 };
            let margin = |s: u32, d: u32| {
                ((support * (s as f32 / d as f32).max(1.0) + 1.0) * d as f32 / s as f32).ceil()
                    as u32
            };
            let (mx, my) = (margin(sw, dw), margin(sh, dh));
            let mut d_in = 0.0f32;
            let mut d_all = 0.0f32;
            for y in 0..dh {
                for x in 0..dw {
                    let i = (y * dw + x) as usize;
                    let d = (ours[i] - oracle[i]).abs();
                    d_all = d_all.max(d);
                    if x >= mx && x + mx < dw && y >= my && y + my < dh {
                        d_in = d_in.max(d);
                    }
                }
            }
            eprintln!("vs image {sw}x{sh}->{dw}x{dh} {filter:?}: max |Δ| inside {d_in:e}, with borders {d_all:e}");
            assert!(d_in <= 2e-6, "{sw}x{sh}->{dw}x{dh} {filter:?}: {d_in}");
        }
    }
}

/// ffmpeg's swscale on gray8 planes: `lanczos` (3 lobes) and its default `bicubic` (B=0, C=0.6,
/// i.e. a = −0.6; setting `param0/param1` through the scale filter did not reproduce Keys curves
/// in ffmpeg 5.1, so the default is used).
#[test]
fn u8_agrees_with_ffmpeg() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temp dir")
    };
    for (sw, sh, dw, dh) in [(64, 36, 150, 90), (96, 54, 40, 22)] {
        let src = test_u8(sw, sh, sw);
        std::fs::write(dir.path().join("in.gray"), &src).unwrap();
        for (filter, flag) in [
            (Filter::Lanczos3, "lanczos"),
            (Filter::Bicubic { a: -0.6 }, "bicubic"),
        ] {
            let vf = format!("scale={dw}:{dh}:flags={flag}+accurate_rnd+full_chroma_int");
            let size = format!("{sw}x{sh}");
            let out = Command::new("ffmpeg")
                .args([
                    "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s", &size,
                ])
                .args([
                    "-i", "in.gray", "-vf", &vf, "-f", "rawvideo", "-pix_fmt", "gray", "out.gray",
                ])
                .current_dir(dir.path())
                .output();
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("SKIPPED: ffmpeg not runnable ({e})");
                    return;
                }
            };
            assert!(
                out.status.success(),
                "ffmpeg {vf}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let oracle = std::fs::read(dir.path().join("out.gray")).unwrap();
            let plan = ResizePlan::new(sw, sh, dw, dh, filter).unwrap();
            let ours = cpu::resize_plane_u8(&plan, &src, u64::from(sw)).unwrap();
            let d = ours
                .iter()
                .zip(&oracle)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .max()
                .unwrap_or(0);
            let mean = ours
                .iter()
                .zip(&oracle)
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum::<f64>()
                / ours.len() as f64;
            eprintln!(
                "vs swscale {sw}x{sh}->{dw}x{dh} {filter:?} ({vf}): max |Δ| {d}, mean {mean:.3}"
            );
            assert!(d <= 2, "{sw}x{sh}->{dw}x{dh} {filter:?}: {d}");
        }
    }
}
