//! Colour conversion: GPU against the CPU reference (exact on the 8-bit paths), device chaining,
//! input checks, and ffmpeg's swscale as an independent oracle.

use std::path::Path;
use std::process::Command;

use aiprod_kernels::colour::{
    self, cpu, ChromaSiting, ColourSpec, Matrix, Range, YuvFormat, YuvLayout, F32_TOLERANCE,
};
use aiprod_kernels::{test_context, KernelError};

/// A test picture: gradients, a hard diagonal edge, saturated patches and a little noise.
fn test_rgb8(w: u32, h: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491u32;
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 28) as i32 - 8;
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let mut px = [
                (255.0 * fx) as i32 + noise,
                (255.0 * fy) as i32 - noise,
                (255.0 * (1.0 - fx * fy)) as i32,
            ];
            if x > y * 2 {
                px = [px[1], 230 - px[2] / 2, px[0]];
            }
            if (x / 6 + y / 5) % 7 == 0 {
                px = [250, 10, 20];
            }
            out.extend(px.iter().map(|v| (*v).clamp(0, 255) as u8));
        }
    }
    out
}

fn all_specs() -> Vec<ColourSpec> {
    let mut v = Vec::new();
    for matrix in [
        Matrix::Bt601,
        Matrix::Bt709,
        Matrix::Bt2020,
        Matrix::Fcc,
        Matrix::Smpte240m,
    ] {
        for range in [Range::Limited, Range::Full] {
            for siting in [ChromaSiting::Left, ChromaSiting::Center] {
                v.push(ColourSpec {
                    matrix,
                    range,
                    siting,
                });
            }
        }
    }
    v
}

/// Packed layouts and one with odd strides and planes out of order after a gap.
fn layouts(w: u32, h: u32) -> Vec<YuvLayout> {
    let (cw, ch) = (u64::from(w.div_ceil(2)), u64::from(h.div_ceil(2)));
    let y_stride = u64::from(w) + 7;
    let u_stride = cw + 3;
    let v_at = 5;
    let u_at = v_at + u_stride * ch + 1;
    let y_at = u_at + u_stride * ch + 2;
    let strided = YuvLayout {
        format: YuvFormat::I420,
        width: w,
        height: h,
        offsets_bytes: [y_at, u_at, v_at],
        strides_bytes: [y_stride, u_stride, u_stride],
    };
    let nv12_strided = YuvLayout {
        format: YuvFormat::Nv12,
        width: w,
        height: h,
        offsets_bytes: [3, 3 + y_stride * u64::from(h) + 1, 0],
        strides_bytes: [y_stride, 2 * cw + 5, 0],
    };
    vec![
        YuvLayout::packed(YuvFormat::I420, w, h).unwrap(),
        YuvLayout::packed(YuvFormat::Nv12, w, h).unwrap(),
        strided,
        nv12_strided,
    ]
}

fn max_abs_diff_u8(a: &[u8], b: &[u8]) -> i32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs())
        .max()
        .unwrap_or(0)
}

#[test]
fn eight_bit_paths_match_the_cpu_reference_exactly() {
    let Some(ctx) = test_context() else { return };
    for (w, h) in [(38, 22), (37, 23), (1, 1)] {
        let rgb = test_rgb8(w, h);
        let rgba = colour::rgb8_to_rgba(&rgb);
        for layout in layouts(w, h) {
            for spec in all_specs() {
                let want = cpu::rgba_to_yuv(&rgba, &layout, &spec).unwrap();
                let got = colour::rgba_to_yuv(&ctx, &rgba, &layout, &spec).unwrap();
                assert_eq!(got, want, "RGB→YUV {w}x{h} {layout:?} {spec:?}");
                let want = cpu::yuv_to_rgba(&got, &layout, &spec).unwrap();
                let back = colour::yuv_to_rgba(&ctx, &got, &layout, &spec).unwrap();
                assert_eq!(back, want, "YUV→RGB {w}x{h} {layout:?} {spec:?}");
                // and the round trip stays close to where it started (chroma is subsampled, so
                // only smooth areas come back nearly unchanged): mean error in 8-bit units
                let err: f64 = back
                    .chunks(4)
                    .zip(rgba.chunks(4))
                    .map(|(a, b)| {
                        (0..3)
                            .map(|k| (a[k] as f64 - b[k] as f64).abs())
                            .sum::<f64>()
                    })
                    .sum::<f64>()
                    / (3 * w * h) as f64;
                assert!(err < 12.0, "round trip mean error {err} {w}x{h} {spec:?}");
            }
        }
    }
}

#[test]
fn f32_paths_match_the_cpu_reference() {
    let Some(ctx) = test_context() else { return };
    let (w, h) = (37, 23);
    let rgb = test_rgb8(w, h);
    let mut worst_f32 = 0.0f32;
    let mut worst_u8 = 0;
    for layout in layouts(w, h) {
        for spec in all_specs() {
            let yuv = cpu::rgb8_to_yuv(&rgb, &layout, &spec).unwrap();
            let want_planar = cpu::yuv_to_planar(&yuv, &layout, &spec).unwrap();
            let got = colour::yuv_to_planar(&ctx, &yuv, &layout, &spec).unwrap();
            assert_eq!(got.len(), (3 * w * h) as usize);
            let d = got
                .iter()
                .zip(&want_planar)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(d <= F32_TOLERANCE, "YUV→planar differs by {d} ({spec:?})");
            worst_f32 = worst_f32.max(d);
            // out-of-range input is clamped the same way on both sides
            let mut planar = got.clone();
            planar[0] = -0.5;
            planar[1] = 1.7;
            let want = cpu::planar_to_yuv(&planar, &layout, &spec).unwrap();
            let got = colour::planar_to_yuv(&ctx, &planar, &layout, &spec).unwrap();
            let d = max_abs_diff_u8(&got, &want);
            assert!(d <= 1, "planar→YUV differs by {d} ({spec:?})");
            worst_u8 = worst_u8.max(d);
            // the planar path agrees with the integer path within rounding
            let via_int = cpu::yuv_to_rgba(&yuv, &layout, &spec).unwrap();
            for (i, px) in via_int.chunks(4).enumerate() {
                let plane = (w * h) as usize;
                for k in 0..3 {
                    let f = want_planar[k * plane + i];
                    assert!(
                        (f * 255.0 - px[k] as f32).abs() <= 0.5 + 1e-3,
                        "pixel {i} channel {k}: {f} vs {}",
                        px[k]
                    );
                }
            }
        }
    }
    eprintln!("GPU vs CPU: YUV→planar max |Δ| {worst_f32:e}, planar→YUV max |Δ| {worst_u8}");
}

#[test]
fn kernels_chain_on_the_device() {
    let Some(ctx) = test_context() else { return };
    let (w, h) = (40, 18);
    let rgba = colour::rgb8_to_rgba(&test_rgb8(w, h));
    let spec = ColourSpec::default();
    let i420 = YuvLayout::packed(YuvFormat::I420, w, h).unwrap();
    let nv12 = YuvLayout::packed(YuvFormat::Nv12, w, h).unwrap();
    // RGBA → I420 → planar → NV12 → RGBA, one upload, one download.
    let src = ctx.upload("rgba", &rgba).unwrap();
    let a = colour::rgba_to_yuv_device(&ctx, &src, &i420, &spec).unwrap();
    let b = colour::yuv_to_planar_device(&ctx, &a, &i420, &spec).unwrap();
    let c = colour::planar_to_yuv_device(&ctx, &b, &nv12, &spec).unwrap();
    let d = colour::yuv_to_rgba_device(&ctx, &c, &nv12, &spec).unwrap();
    let got = ctx.download(&d, u64::from(w * h * 4)).unwrap();
    let a = cpu::rgba_to_yuv(&rgba, &i420, &spec).unwrap();
    let b = cpu::yuv_to_planar(&a, &i420, &spec).unwrap();
    let c = cpu::planar_to_yuv(&b, &nv12, &spec).unwrap();
    let want = cpu::yuv_to_rgba(&c, &nv12, &spec).unwrap();
    // ±1 in NV12 (f32 rounding) can move RGB by up to ~2.1 (the largest coefficient, 1.84,
    // plus rounding).
    let d = max_abs_diff_u8(&got, &want);
    assert!(d <= 3, "chained result differs from the CPU chain by {d}");
}

/// The extended (unclipped) planar paths: GPU = CPU, values outside [0, 1] survive, and a
/// YUV → R'G'B' → YUV round trip through them is exact — also for a colour outside the RGB cube
/// (Y at black with strong chroma), which the clipped paths change.
#[test]
fn extended_planar_paths_keep_colours_outside_the_rgb_cube() {
    let Some(ctx) = test_context() else { return };
    let (w, h) = (6, 4);
    let layout = YuvLayout::packed(YuvFormat::I420, w, h).unwrap();
    let mut yuv = vec![0u8; layout.len_bytes() as usize];
    let (n, c) = ((w * h) as usize, ((w / 2) * (h / 2)) as usize);
    for (i, v) in yuv[..n].iter_mut().enumerate() {
        *v = [16, 40, 128, 235, 16, 60][i % 6];
    }
    for (i, v) in yuv[n..].iter_mut().enumerate() {
        *v = if i < c {
            [240, 16, 128][i % 3]
        } else {
            [16, 240, 100][i % 3]
        };
    }
    for spec in [
        ColourSpec::default(),
        ColourSpec {
            matrix: Matrix::Bt601,
            range: Range::Full,
            siting: ChromaSiting::Center,
        },
    ] {
        let want = cpu::yuv_to_planar_extended(&yuv, &layout, &spec).unwrap();
        let buf = ctx.upload("yuv", &yuv).unwrap();
        let planar = colour::yuv_to_planar_extended_device(&ctx, &buf, &layout, &spec).unwrap();
        let got: Vec<f32> = ctx.download_as(&planar, 3 * n).unwrap();
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d <= F32_TOLERANCE, "YUV→planar (extended) differs by {d}");
        assert!(
            want.iter().any(|v| *v < -0.05) && want.iter().any(|v| *v > 1.05),
            "the test colours should fall outside the RGB cube"
        );
        let clipped = cpu::yuv_to_planar(&yuv, &layout, &spec).unwrap();
        assert!(clipped.iter().all(|v| (0.0..=1.0).contains(v)));
        // round trip: luma exact through the extended paths, not through the clipped ones
        let back = colour::planar_extended_to_yuv_device(&ctx, &planar, &layout, &spec).unwrap();
        let back = ctx.download(&back, layout.len_bytes()).unwrap();
        assert_eq!(
            back,
            cpu::planar_extended_to_yuv(&want, &layout, &spec).unwrap(),
            "planar→YUV (extended): GPU differs from the CPU reference"
        );
        assert_eq!(&back[..n], &yuv[..n], "extended round trip changed luma");
        let clipped_back = cpu::planar_to_yuv(&clipped, &layout, &spec).unwrap();
        assert_ne!(&clipped_back[..n], &yuv[..n]);
    }
}

#[test]
fn bad_sizes_are_refused_with_the_reason() {
    let Some(ctx) = test_context() else { return };
    let layout = YuvLayout::packed(YuvFormat::I420, 64, 32).unwrap();
    let spec = ColourSpec::default();
    let e = colour::yuv_to_rgba(&ctx, &[0u8; 100], &layout, &spec).unwrap_err();
    assert!(matches!(e, KernelError::InvalidInput(_)), "{e}");
    assert!(
        e.to_string()
            .contains("YUV input holds 100 bytes, the frame needs 3072"),
        "{e}"
    );
    let small = ctx.upload("small", &[0u8; 64]).unwrap();
    let Err(e) = colour::rgba_to_yuv_device(&ctx, &small, &layout, &spec) else {
        panic!("a 64-byte RGBA buffer for a 64x32 frame must be refused")
    };
    assert!(e.to_string().contains("RGB buffer holds 64 bytes"), "{e}");
    let huge = YuvLayout {
        width: 20000,
        ..layout
    };
    let Err(e) = colour::yuv_to_planar_device(&ctx, &small, &huge, &spec) else {
        panic!("a 20000-pixel-wide frame must be refused")
    };
    assert!(e.to_string().contains("20000x32"), "{e}");
}

// ------------------------------------------------------------------------------------------
// ffmpeg (swscale) as the oracle.

fn ffmpeg(dir: &Path, args: &[&str]) -> Option<()> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .current_dir(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => panic!(
            "ffmpeg {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            eprintln!("SKIPPED: ffmpeg not runnable ({e})");
            None
        }
    }
}

fn names(spec: &ColourSpec) -> (&'static str, &'static str) {
    let m = match spec.matrix {
        Matrix::Bt601 => "bt601",
        Matrix::Bt709 => "bt709",
        Matrix::Bt2020 => "bt2020",
        Matrix::Fcc => "fcc",
        Matrix::Smpte240m => "smpte240m",
    };
    let r = match spec.range {
        Range::Limited => "tv",
        Range::Full => "pc",
    };
    (m, r)
}

/// zimg (ffmpeg's `zscale`) with bilinear chroma upsampling at our siting; both sides take the
/// same YUV input. Even sizes only (zimg refuses odd 4:2:0 sizes; the GPU/CPU tests cover them).
/// (swscale 5.1 is no oracle here: with `in_v_chr_pos` it places 4:2:0 chroma
/// whole luma rows apart instead of interpolating quarter phases.)
#[test]
fn yuv_to_rgb_agrees_with_zimg() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temp dir")
    };
    for (w, h) in [(64, 36), (66, 38)] {
        for (spec, format) in [
            (ColourSpec::default(), YuvFormat::I420),
            (
                ColourSpec {
                    matrix: Matrix::Bt601,
                    range: Range::Full,
                    siting: ChromaSiting::Center,
                },
                YuvFormat::Nv12,
            ),
            (
                ColourSpec {
                    matrix: Matrix::Bt2020,
                    ..Default::default()
                },
                YuvFormat::I420,
            ),
        ] {
            let layout = YuvLayout::packed(format, w, h).unwrap();
            let yuv = cpu::rgb8_to_yuv(&test_rgb8(w, h), &layout, &spec).unwrap();
            std::fs::write(dir.path().join("in.yuv"), &yuv).unwrap();
            let m = match spec.matrix {
                Matrix::Bt601 => "470bg",
                Matrix::Bt709 => "709",
                Matrix::Bt2020 => "2020_ncl",
                Matrix::Fcc => "fcc",
                Matrix::Smpte240m => "240m",
            };
            let r = match spec.range {
                Range::Limited => "limited",
                Range::Full => "full",
            };
            let cl = match spec.siting {
                ChromaSiting::Left => "left",
                ChromaSiting::Center => "center",
            };
            // Same transfer and primaries in and out: only the matrix and range act.
            let vf = format!(
                "zscale=matrixin={m}:rangein={r}:chromalin={cl}:transferin=709:primariesin=709:\
                 matrix=gbr:range=full:transfer=709:primaries=709:filter=bilinear,format=gbrp"
            );
            let pix_fmt = if format == YuvFormat::I420 {
                "yuv420p"
            } else {
                "nv12"
            };
            let size = format!("{w}x{h}");
            let args = [
                "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", &size, "-i", "in.yuv", "-vf", &vf,
                "-f", "rawvideo", "-pix_fmt", "rgb24", "out.rgb",
            ];
            if ffmpeg(dir.path(), &args).is_none() {
                return;
            }
            let oracle = std::fs::read(dir.path().join("out.rgb")).unwrap();
            let ours = colour::rgba_to_rgb8(&cpu::yuv_to_rgba(&yuv, &layout, &spec).unwrap());
            let d = max_abs_diff_u8(&ours, &oracle);
            eprintln!("YUV→RGB vs zimg {w}x{h} {spec:?} {format:?}: max |Δ| {d}");
            assert!(
                d <= 1,
                "YUV→RGB differs from zimg by {d} ({spec:?}, {w}x{h})"
            );
        }
    }
}

/// swscale with `area` (a 2×2 mean for 2:1 chroma) and accurate rounding. Even sizes only: at an
/// odd width swscale resamples 67 columns to 34 rather than repeating the edge pixel.
#[test]
fn rgb_to_yuv_agrees_with_ffmpeg() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temp dir")
    };
    for (w, h) in [(64, 36), (66, 38)] {
        let rgb = test_rgb8(w, h);
        std::fs::write(dir.path().join("in.rgb"), &rgb).unwrap();
        for spec in [
            ColourSpec::default(),
            ColourSpec {
                matrix: Matrix::Bt601,
                range: Range::Full,
                ..Default::default()
            },
            ColourSpec {
                matrix: Matrix::Bt2020,
                ..Default::default()
            },
        ] {
            let layout = YuvLayout::packed(YuvFormat::I420, w, h).unwrap();
            let (m, r) = names(&spec);
            let vf = format!("scale=out_color_matrix={m}:out_range={r}:flags=area+accurate_rnd");
            let size = format!("{w}x{h}");
            let args = [
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &size, "-i", "in.rgb", "-vf", &vf,
                "-f", "rawvideo", "-pix_fmt", "yuv420p", "out.yuv",
            ];
            if ffmpeg(dir.path(), &args).is_none() {
                return;
            }
            let oracle = std::fs::read(dir.path().join("out.yuv")).unwrap();
            let ours = cpu::rgb8_to_yuv(&rgb, &layout, &spec).unwrap();
            let luma = (w * h) as usize;
            let dy = max_abs_diff_u8(&ours[..luma], &oracle[..luma]);
            let dc = max_abs_diff_u8(&ours[luma..], &oracle[luma..]);
            eprintln!("RGB→YUV vs ffmpeg {w}x{h} {spec:?}: max |Δ| Y {dy}, chroma {dc}");
            assert!(dy <= 1, "Y differs from ffmpeg by {dy} ({spec:?}, {w}x{h})");
            assert!(
                dc <= 2,
                "chroma differs from ffmpeg by {dc} ({spec:?}, {w}x{h})"
            );
        }
    }
}
