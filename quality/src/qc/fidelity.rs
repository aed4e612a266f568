//! PSNR and SSIM of one 8-bit plane pair in a single pass over the pixels (the CPU engine behind
//! [`super::video::FidelityAccumulator`]). Every 4-row strip is read once: per column it sums
//! a, b, a²+b² and a·b over the strip; those column sums give both the 4×4 block sums of
//! x264/FFmpeg's SSIM and the squared error of PSNR (Σ(a−b)² = Σ(a²+b²) − 2Σab). All sums are
//! exact integers and the SSIM window formula and its f32/f64 accumulation order are FFmpeg's
//! (`ssim_end1`, `ssim_endn`), so the results equal [`super::video::plane_mse`] and
//! [`super::video::plane_ssim`] bit for bit; the loops are written over equal-length slices so
//! the compiler vectorises them, and an AVX2 build of the same code is picked at run time where
//! the CPU has it.

/// Buffers reused from frame to frame (a few 1080p rows' worth).
#[derive(Debug, Default, Clone)]
pub struct FidelityScratch {
    /// Per column over one 4-row strip: Σa, Σb, Σ(a²+b²), Σab.
    cols: [Vec<u32>; 4],
    /// Per 4×4 block of the previous and the current strip: the same four sums.
    prev: [Vec<u32>; 4],
    cur: [Vec<u32>; 4],
    /// SSIM of each 8×8 window of one window row, summed afterwards in FFmpeg's order.
    windows: Vec<f32>,
}

/// (MSE, SSIM) of one plane: `w`×`h` pixels of `a` (line size `sa`) against `b` (line size `sb`).
pub fn plane_fidelity(
    (a, sa): (&[u8], usize),
    (b, sb): (&[u8], usize),
    (w, h): (usize, usize),
    scratch: &mut FidelityScratch,
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code
            // compiled with AVX2 enabled.
            return unsafe { plane_fidelity_avx2((a, sa), (b, sb), (w, h), scratch) };
        }
    }
    plane_fidelity_generic((a, sa), (b, sb), (w, h), scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn plane_fidelity_avx2(
    a: (&[u8], usize),
    b: (&[u8], usize),
    size: (usize, usize),
    scratch: &mut FidelityScratch,
) -> (f64, f64) {
    plane_fidelity_generic(a, b, size, scratch)
}

#[inline(always)]
fn plane_fidelity_generic(
    (a, sa): (&[u8], usize),
    (b, sb): (&[u8], usize),
    (w, h): (usize, usize),
    scratch: &mut FidelityScratch,
) -> (f64, f64) {
    if w == 0 || h == 0 {
        return (0.0, 1.0);
    }
    let (bw, bh) = (w / 4, h / 4);
    let with_ssim = bw >= 2 && bh >= 2;
    let FidelityScratch {
        cols,
        prev,
        cur,
        windows,
    } = scratch;
    for v in cols.iter_mut() {
        v.resize(w, 0);
    }
    for v in prev.iter_mut().chain(cur.iter_mut()) {
        v.resize(bw, 0);
    }
    windows.resize(bw.saturating_sub(1), 0.0);
    let mut sq_err: u64 = 0;
    let mut ssim_total = 0.0f64;
    for by in 0..bh {
        let ra: [&[u8]; 4] = std::array::from_fn(|dy| &a[(4 * by + dy) * sa..][..w]);
        let rb: [&[u8]; 4] = std::array::from_fn(|dy| &b[(4 * by + dy) * sb..][..w]);
        column_sums(ra, rb, cols);
        sq_err += strip_squared_error(&cols[2], &cols[3]);
        if !with_ssim {
            continue;
        }
        for (blocks, c) in cur.iter_mut().zip(cols.iter()) {
            for (k, out) in blocks.iter_mut().enumerate() {
                let q = &c[4 * k..4 * k + 4];
                *out = q[0] + q[1] + q[2] + q[3];
            }
        }
        if by > 0 {
            window_ssim(prev, cur, windows);
            // FFmpeg: a window row summed in f32 in order, the rows in f64.
            let line: f32 = windows.iter().fold(0.0f32, |s, v| s + v);
            ssim_total += f64::from(line);
        }
        std::mem::swap(prev, cur);
    }
    // Rows below the last whole strip count for PSNR only.
    for y in 4 * bh..h {
        let (ra, rb) = (&a[y * sa..][..w], &b[y * sb..][..w]);
        sq_err += ra
            .iter()
            .zip(rb)
            .map(|(x, z)| {
                let d = u32::from(x.abs_diff(*z));
                u64::from(d * d)
            })
            .sum::<u64>();
    }
    let mse = sq_err as f64 / (w * h) as f64;
    let ssim = if with_ssim {
        ssim_total / ((bh - 1) * (bw - 1)) as f64
    } else {
        1.0
    };
    (mse, ssim)
}

/// Σa, Σb, Σ(a²+b²), Σab over four rows, per column. Each output is written once per column from
/// the eight input bytes, so the loop vectorises; the sums fit u32 (at most 4·2·255²).
#[inline(always)]
fn column_sums(ra: [&[u8]; 4], rb: [&[u8]; 4], cols: &mut [Vec<u32>; 4]) {
    let w = cols[0].len();
    let [c1, c2, css, c12] = cols;
    let (c1, c2, css, c12) = (&mut c1[..w], &mut c2[..w], &mut css[..w], &mut c12[..w]);
    let (a0, a1, a2, a3) = (&ra[0][..w], &ra[1][..w], &ra[2][..w], &ra[3][..w]);
    let (b0, b1, b2, b3) = (&rb[0][..w], &rb[1][..w], &rb[2][..w], &rb[3][..w]);
    for i in 0..w {
        let (p0, p1, p2, p3) = (
            u32::from(a0[i]),
            u32::from(a1[i]),
            u32::from(a2[i]),
            u32::from(a3[i]),
        );
        let (q0, q1, q2, q3) = (
            u32::from(b0[i]),
            u32::from(b1[i]),
            u32::from(b2[i]),
            u32::from(b3[i]),
        );
        c1[i] = p0 + p1 + p2 + p3;
        c2[i] = q0 + q1 + q2 + q3;
        css[i] = p0 * p0 + p1 * p1 + p2 * p2 + p3 * p3 + q0 * q0 + q1 * q1 + q2 * q2 + q3 * q3;
        c12[i] = p0 * q0 + p1 * q1 + p2 * q2 + p3 * q3;
    }
}

/// Σ(a−b)² over a strip from its column sums: Σ(a²+b²) − 2Σab, exact per column.
#[inline(always)]
fn strip_squared_error(css: &[u32], c12: &[u32]) -> u64 {
    // Per column at most 4·255² = 260,100: chunks of 8192 columns fit u32 (2.1e9 < 2^32).
    css.chunks(8192)
        .zip(c12.chunks(8192))
        .map(|(s, p)| {
            let n = s.len().min(p.len());
            let (s, p) = (&s[..n], &p[..n]);
            let mut acc = 0u32;
            for i in 0..n {
                acc += s[i] - 2 * p[i];
            }
            u64::from(acc)
        })
        .sum()
}

/// FFmpeg's `ssim_end1` for every 8×8 window (2×2 blocks) of a window row, into `out`.
/// i32 holds every intermediate exactly (at most 2·64²·255² < 2^31), as in FFmpeg's C.
#[inline(always)]
fn window_ssim(prev: &[Vec<u32>; 4], cur: &[Vec<u32>; 4], out: &mut [f32]) {
    const C1: i32 = (0.01 * 0.01 * 255.0 * 255.0 * 64.0 + 0.5) as i32;
    const C2: i32 = (0.03 * 0.03 * 255.0 * 255.0 * 64.0 * 63.0 + 0.5) as i32;
    let n = out.len();
    let [p1, p2, pss, p12] = prev.each_ref().map(|v| &v[..n + 1]);
    let [q1, q2, qss, q12] = cur.each_ref().map(|v| &v[..n + 1]);
    let out = &mut out[..n];
    for x in 0..n {
        let s1 = (p1[x] + p1[x + 1] + q1[x] + q1[x + 1]) as i32;
        let s2 = (p2[x] + p2[x + 1] + q2[x] + q2[x + 1]) as i32;
        let ss = (pss[x] + pss[x + 1] + qss[x] + qss[x + 1]) as i32;
        let s12 = (p12[x] + p12[x + 1] + q12[x] + q12[x + 1]) as i32;
        let vars = ss * 64 - s1 * s1 - s2 * s2;
        let covar = s12 * 64 - s1 * s2;
        let num = ((2 * s1 * s2 + C1) as f32) * ((2 * covar + C2) as f32);
        let den = ((s1 * s1 + s2 * s2 + C1) as f32) * ((vars + C2) as f32);
        out[x] = num / den;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qc::video::{plane_mse, plane_ssim};

    /// Deterministic pseudo-random plane with some structure.
    fn plane(stride: usize, h: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..stride * h)
            .map(|k| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let (x, y) = (k % stride, k / stride);
                (((x * 3 + y * 5) % 200) as u32 + (s >> 27)) as u8
            })
            .collect()
    }

    #[test]
    fn equals_the_separate_psnr_and_ssim_bit_for_bit() {
        let mut scratch = FidelityScratch::default();
        for (w, h, stride) in [
            (64, 48, 64),
            (67, 53, 80),
            (7, 9, 7),
            (3, 2, 3),
            (1920, 8, 1920),
            (333, 201, 352),
        ] {
            let a = plane(stride, h, 1);
            let mut b = plane(stride, h, 2);
            b.iter_mut().step_by(7).for_each(|v| *v = 255);
            let (mse, ssim) = plane_fidelity((&a, stride), (&b, stride), (w, h), &mut scratch);
            assert_eq!(
                mse.to_bits(),
                plane_mse(&a, stride, &b, stride, w, h).to_bits(),
                "{w}x{h} MSE"
            );
            assert_eq!(
                ssim.to_bits(),
                plane_ssim(&a, stride, &b, stride, w, h).to_bits(),
                "{w}x{h} SSIM {ssim}"
            );
        }
    }

    #[test]
    fn extreme_values_stay_exact() {
        let (w, h) = (96, 64);
        let a = vec![255u8; w * h];
        let b: Vec<u8> = (0..w * h)
            .map(|k| if k % 3 == 0 { 0 } else { 255 })
            .collect();
        let mut scratch = FidelityScratch::default();
        let (mse, ssim) = plane_fidelity((&a, w), (&b, w), (w, h), &mut scratch);
        assert_eq!(mse, plane_mse(&a, w, &b, w, w, h));
        assert_eq!(ssim, plane_ssim(&a, w, &b, w, w, h));
        let (mse, ssim) = plane_fidelity((&a, w), (&a, w), (w, h), &mut scratch);
        assert_eq!((mse, ssim), (0.0, 1.0));
    }
}
