//! PSNR/SSIM/black/freeze reductions on the device against the CPU reference (`metrics::cpu`):
//! integer sums exactly equal, SSIM within 1e-6, on odd sizes, strided and padded host planes.

use aiprod_kernels::metrics::{self, cpu, DeviceFrame, FrameStats, HostPlane, PlanarLayout};
use aiprod_kernels::{test_context, Context, KernelError};

/// A host I420 frame with row strides wider than the picture (and junk in the padding).
struct HostFrame {
    layout: PlanarLayout,
    planes: [Vec<u8>; 3],
    strides: [usize; 3],
}

impl HostFrame {
    fn planes(&self) -> [HostPlane<'_>; 3] {
        [0, 1, 2].map(|p| HostPlane {
            data: &self.planes[p],
            stride: self.strides[p],
        })
    }
}

/// Deterministic 32-bit LCG.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0 >> 8
    }
}

/// Gradients and texture; `extra_stride` bytes of junk at the end of every row.
fn textured(layout: PlanarLayout, seed: u32, extra_stride: usize) -> HostFrame {
    let mut rng = Lcg(seed);
    let mut planes: [Vec<u8>; 3] = Default::default();
    let mut strides = [0; 3];
    for (p, plane) in planes.iter_mut().enumerate() {
        let (w, h) = layout.plane_size(p);
        let stride = w + extra_stride;
        strides[p] = stride;
        for y in 0..h {
            for x in 0..stride {
                let v = if x < w {
                    ((x * 7 + y * 3 + p * 40) % 200) as u32 + rng.next() % 40 + 8
                } else {
                    rng.next() // junk in the padding
                };
                plane.push(v as u8);
            }
        }
    }
    HostFrame {
        layout,
        planes,
        strides,
    }
}

/// `base` with per-pixel noise of ±`amplitude` (clamped), same strides.
fn noisy(base: &HostFrame, seed: u32, amplitude: i32) -> HostFrame {
    let mut rng = Lcg(seed);
    let planes = [0, 1, 2].map(|p| {
        base.planes[p]
            .iter()
            .map(|v| {
                let n = (rng.next() % (2 * amplitude as u32 + 1)) as i32 - amplitude;
                (i32::from(*v) + n).clamp(0, 255) as u8
            })
            .collect()
    });
    HostFrame {
        layout: base.layout,
        planes,
        strides: base.strides,
    }
}

fn upload(ctx: &Context, f: &HostFrame) -> DeviceFrame {
    DeviceFrame::upload(ctx, f.layout, f.planes()).unwrap()
}

fn cpu_sse(a: &HostFrame, b: &HostFrame) -> [u64; 3] {
    [0, 1, 2].map(|p| {
        let (w, h) = a.layout.plane_size(p);
        cpu::plane_sse(a.planes()[p], b.planes()[p], w, h)
    })
}

fn cpu_sad(a: &HostFrame, b: &HostFrame) -> [u64; 3] {
    [0, 1, 2].map(|p| {
        let (w, h) = a.layout.plane_size(p);
        cpu::plane_sad(a.planes()[p], b.planes()[p], w, h)
    })
}

fn cpu_ssim(a: &HostFrame, b: &HostFrame) -> [f64; 3] {
    [0, 1, 2].map(|p| {
        let (w, h) = a.layout.plane_size(p);
        cpu::plane_ssim(a.planes()[p], b.planes()[p], w, h)
    })
}

const ODD_SIZES: [(usize, usize); 3] = [(37, 23), (64, 48), (13, 9)];

#[test]
fn sse_and_sad_equal_the_cpu_exactly() {
    let Some(ctx) = test_context() else { return };
    for (i, &(w, h)) in ODD_SIZES.iter().enumerate() {
        let layout = PlanarLayout::i420(w, h).unwrap();
        let a = textured(layout, 1 + i as u32, 5);
        let b = noisy(&a, 100 + i as u32, 20);
        let (da, db) = (upload(&ctx, &a), upload(&ctx, &b));
        let sse = metrics::sse(&ctx, &da, &db).unwrap();
        let sad = metrics::sad(&ctx, &da, &db).unwrap();
        assert_eq!(sse, cpu_sse(&a, &b), "SSE {w}x{h}");
        assert_eq!(sad, cpu_sad(&a, &b), "SAD {w}x{h}");
        assert!(sse[0] > 0 && sad[2] > 0, "the pair must differ");
        assert_eq!(metrics::sse(&ctx, &da, &da).unwrap(), [0; 3]);
    }
}

#[test]
fn ssim_is_within_1e6_of_the_cpu() {
    let Some(ctx) = test_context() else { return };
    let mut worst = 0.0f64;
    for (i, &(w, h)) in ODD_SIZES.iter().enumerate() {
        let layout = PlanarLayout::i420(w, h).unwrap();
        let a = textured(layout, 7 + i as u32, 3);
        for amplitude in [2, 30] {
            let b = noisy(&a, 200 + i as u32, amplitude);
            let gpu = metrics::ssim(&ctx, &upload(&ctx, &a), &upload(&ctx, &b)).unwrap();
            let want = cpu_ssim(&a, &b);
            for p in 0..3 {
                let d = (gpu[p] - want[p]).abs();
                worst = worst.max(d);
                assert!(
                    d <= 1e-6,
                    "SSIM plane {p} of {w}x{h} ±{amplitude}: GPU {} CPU {}",
                    gpu[p],
                    want[p]
                );
            }
            assert!(want[0] < 0.999, "the pair must differ: {want:?}");
        }
    }
    eprintln!("largest |GPU - CPU| SSIM difference: {worst:e}");
}

#[test]
fn planes_too_small_for_a_window_have_ssim_one() {
    let Some(ctx) = test_context() else { return };
    // 13x9: luma has 3x2 blocks (one row of windows), chroma 7x5 has 1x1 (none).
    let layout = PlanarLayout::i420(13, 9).unwrap();
    let a = textured(layout, 3, 0);
    let b = noisy(&a, 4, 40);
    let gpu = metrics::ssim(&ctx, &upload(&ctx, &a), &upload(&ctx, &b)).unwrap();
    assert_eq!(gpu[1], 1.0);
    assert_eq!(gpu[2], 1.0);
    assert!(gpu[0] < 1.0, "{gpu:?}");
}

#[test]
fn black_pixels_equal_the_cpu_exactly() {
    let Some(ctx) = test_context() else { return };
    for &(w, h) in &ODD_SIZES {
        let layout = PlanarLayout::i420(w, h).unwrap();
        let f = textured(layout, 11, 3);
        let d = upload(&ctx, &f);
        for threshold in [0u8, 16, 37, 120, 255] {
            let want = cpu::black_pixels(f.planes()[0], w, h, threshold);
            let got = metrics::black_pixels(&ctx, &d, threshold).unwrap();
            assert_eq!(got, want, "{w}x{h} threshold {threshold}");
        }
        // Every luma pixel is black at 255, and no padding byte is counted.
        assert_eq!(
            metrics::black_pixels(&ctx, &d, 255).unwrap(),
            (w * h) as u64
        );
    }
}

#[test]
fn frame_stats_and_pair_metrics_equal_the_single_kernels() {
    let Some(ctx) = test_context() else { return };
    let layout = PlanarLayout::i420(37, 23).unwrap();
    let a = textured(layout, 21, 7);
    let b = noisy(&a, 22, 9);
    let (da, db) = (upload(&ctx, &a), upload(&ctx, &b));
    let stats = metrics::frame_stats(&ctx, &da, Some(&db), 37).unwrap();
    assert_eq!(
        stats,
        FrameStats {
            black_pixels: cpu::black_pixels(a.planes()[0], 37, 23, 37),
            sad: Some(cpu_sad(&a, &b)),
        }
    );
    assert_eq!(metrics::frame_stats(&ctx, &da, None, 37).unwrap().sad, None);
    let pair = metrics::pair_metrics(&ctx, &da, &db).unwrap();
    assert_eq!(pair.sse, cpu_sse(&a, &b));
    assert_eq!(pair.ssim, metrics::ssim(&ctx, &da, &db).unwrap());
}

#[test]
fn counters_carry_past_32_bits() {
    let Some(ctx) = test_context() else { return };
    // 640x480 of 0 against 255: luma SSE 307200 × 255² ≈ 2.0e10 > 2³².
    let layout = PlanarLayout::i420(640, 480).unwrap();
    let zeros = [0, 1, 2].map(|p| {
        let (w, h) = layout.plane_size(p);
        vec![0u8; w * h]
    });
    let full = [0, 1, 2].map(|p| {
        let (w, h) = layout.plane_size(p);
        vec![255u8; w * h]
    });
    fn host(v: &[Vec<u8>; 3], layout: PlanarLayout) -> [HostPlane<'_>; 3] {
        [0, 1, 2].map(|p| HostPlane {
            data: &v[p],
            stride: layout.plane_size(p).0,
        })
    }
    let a = DeviceFrame::upload(&ctx, layout, host(&zeros, layout)).unwrap();
    let b = DeviceFrame::upload(&ctx, layout, host(&full, layout)).unwrap();
    let n = [0, 1, 2].map(|p| {
        let (w, h) = layout.plane_size(p);
        (w * h) as u64
    });
    assert_eq!(
        metrics::sse(&ctx, &a, &b).unwrap(),
        n.map(|n| n * 255 * 255)
    );
    assert_eq!(metrics::sad(&ctx, &a, &b).unwrap(), n.map(|n| n * 255));
}

#[test]
fn device_strided_planes_upload_directly_and_padding_is_ignored() {
    let Some(ctx) = test_context() else { return };
    // Host strides equal to the device's (37 → 40, 19 → 20): written without repacking, junk
    // padding and all; a packed copy (zero padding) must give the same results.
    let layout = PlanarLayout::i420(37, 23).unwrap();
    let mut a = textured(layout, 31, 0);
    let b = noisy(&a, 32, 15);
    let mut rng = Lcg(5);
    let strides = [0, 1, 2].map(|p| layout.stride_bytes(p));
    let planes = [0, 1, 2].map(|p| {
        let (w, h) = layout.plane_size(p);
        let mut plane = Vec::new();
        for y in 0..h {
            plane.extend_from_slice(&a.planes[p][y * w..][..w]);
            plane.extend((w..strides[p]).map(|_| rng.next() as u8 | 0x80));
        }
        plane
    });
    let direct_frame = HostFrame {
        layout,
        planes,
        strides,
    };
    let (dd, db) = (upload(&ctx, &direct_frame), upload(&ctx, &b));
    a.strides = [0, 1, 2].map(|p| layout.plane_size(p).0);
    let da = upload(&ctx, &a);
    assert_eq!(
        metrics::pair_metrics(&ctx, &dd, &db).unwrap(),
        metrics::pair_metrics(&ctx, &da, &db).unwrap()
    );
    assert_eq!(
        metrics::black_pixels(&ctx, &dd, 255).unwrap(),
        37 * 23,
        "padding bytes must not count as black"
    );
    let mut reused = DeviceFrame::new(&ctx, layout).unwrap();
    reused.write(&ctx, b.planes()).unwrap();
    assert_eq!(metrics::sse(&ctx, &reused, &db).unwrap(), [0; 3]);
}

#[test]
fn bad_inputs_are_errors() {
    assert!(matches!(
        PlanarLayout::i420(0, 10),
        Err(KernelError::InvalidInput(_))
    ));
    let e = PlanarLayout::i420(20_000, 10).unwrap_err().to_string();
    assert!(e.contains("20000x10"), "{e}");
    let layout = PlanarLayout::i420(8, 8).unwrap();
    let y = vec![0u8; 63];
    let c = vec![0u8; 16];
    let planes = [
        HostPlane {
            data: &y,
            stride: 8,
        },
        HostPlane {
            data: &c,
            stride: 4,
        },
        HostPlane {
            data: &c,
            stride: 4,
        },
    ];
    let e = layout
        .pack(planes, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("plane 0") && e.contains("64 bytes"), "{e}");
    let Some(ctx) = test_context() else { return };
    let a = DeviceFrame::new(&ctx, layout).unwrap();
    let b = DeviceFrame::new(&ctx, PlanarLayout::i420(8, 10).unwrap()).unwrap();
    let e = metrics::sse(&ctx, &a, &b).unwrap_err().to_string();
    assert!(e.contains("differ in layout"), "{e}");
}
