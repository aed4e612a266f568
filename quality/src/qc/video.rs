//! Video QC metrics with FFmpeg's definitions, over 8-bit planar YUV frames (I420, the format the
//! pipeline's QC runs on): PSNR and SSIM against a reference (vf_psnr, vf_ssim: x264's SSIM on 8×8
//! windows stepped by 4), black segments (vf_blackdetect) and frozen segments (vf_freezedetect).
//! Pure: frames in, numbers and intervals out.

/// One 8-bit planar YUV frame; chroma planes subsampled by (`cw`, `ch`) shifts.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
    pub width: usize,
    pub height: usize,
    /// Chroma subsampling shifts (1, 1) for 4:2:0.
    pub chroma_shift: (u32, u32),
}

impl Frame<'_> {
    pub fn plane_size(&self, p: usize) -> (usize, usize) {
        if p == 0 {
            (self.width, self.height)
        } else {
            (
                self.width.div_ceil(1 << self.chroma_shift.0),
                self.height.div_ceil(1 << self.chroma_shift.1),
            )
        }
    }
}

/// PSNR and SSIM of a pair of streams, accumulated frame by frame like vf_psnr / vf_ssim.
#[derive(Debug, Default, Clone)]
pub struct FidelityAccumulator {
    frames: u64,
    mse_weighted: f64,
    mse_plane: [f64; 3],
    ssim_weighted: f64,
    ssim_plane: [f64; 3],
    /// Per-plane buffers of the fused CPU pass, kept from frame to frame.
    scratch: [super::fidelity::FidelityScratch; 3],
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fidelity {
    pub frames: u64,
    /// vf_psnr's "average": from the mean (plane-area-weighted) MSE over all frames, in dB.
    pub psnr_avg_db: f64,
    pub psnr_y_db: f64,
    /// vf_ssim's "All": the mean over frames of the plane-area-weighted SSIM.
    pub ssim_all: f64,
    pub ssim_y: f64,
}

fn psnr_db(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

impl FidelityAccumulator {
    /// One frame pair, measured on the CPU: PSNR and SSIM in one pass per plane
    /// ([`super::fidelity`]; equal bit for bit to [`plane_mse`] and [`plane_ssim`]).
    pub fn push(&mut self, main: &Frame, reference: &Frame) {
        let mut pixels = [0usize; 3];
        let mut mse = [0.0; 3];
        let mut ssim = [0.0; 3];
        for (p, scratch) in self.scratch.iter_mut().enumerate() {
            let (w, h) = main.plane_size(p);
            pixels[p] = w * h;
            (mse[p], ssim[p]) = super::fidelity::plane_fidelity(
                (main.planes[p], main.strides[p]),
                (reference.planes[p], reference.strides[p]),
                (w, h),
                scratch,
            );
        }
        self.push_planes(pixels, mse, ssim);
    }

    /// One frame pair from its per-plane MSE and SSIM, however they were measured (the GPU engine
    /// in [`super::gpu`] computes them on the device); planes are weighted by `plane_pixels`.
    pub fn push_planes(&mut self, plane_pixels: [usize; 3], mse: [f64; 3], ssim: [f64; 3]) {
        let total: f64 = plane_pixels.iter().map(|n| *n as f64).sum();
        let mut frame_mse = 0.0;
        let mut frame_ssim = 0.0;
        for p in 0..3 {
            let weight = plane_pixels[p] as f64 / total;
            self.mse_plane[p] += mse[p];
            self.ssim_plane[p] += ssim[p];
            frame_mse += mse[p] * weight;
            frame_ssim += ssim[p] * weight;
        }
        self.mse_weighted += frame_mse;
        self.ssim_weighted += frame_ssim;
        self.frames += 1;
    }

    pub fn result(&self) -> Fidelity {
        let n = self.frames.max(1) as f64;
        Fidelity {
            frames: self.frames,
            psnr_avg_db: psnr_db(self.mse_weighted / n),
            psnr_y_db: psnr_db(self.mse_plane[0] / n),
            ssim_all: self.ssim_weighted / n,
            ssim_y: self.ssim_plane[0] / n,
        }
    }
}

pub fn plane_mse(a: &[u8], sa: usize, b: &[u8], sb: usize, w: usize, h: usize) -> f64 {
    let mut sum: u64 = 0;
    for y in 0..h {
        let ra = &a[y * sa..y * sa + w];
        let rb = &b[y * sb..y * sb + w];
        // A row of 8-bit differences fits u32 for any width below 66,000 pixels.
        let row: u32 = ra
            .iter()
            .zip(rb)
            .map(|(x, z)| {
                let d = u32::from(x.abs_diff(*z));
                d * d
            })
            .sum();
        sum += u64::from(row);
    }
    sum as f64 / (w * h) as f64
}

/// Sums over each 4×4 block of one block row: (Σa, Σb, Σa²+Σb², Σab). Column sums over the four
/// pixel rows first (contiguous, so the compiler vectorises them), then groups of four columns;
/// sums of a 2×2 group of blocks fit u32.
fn block_row(
    (a, sa): (&[u8], usize),
    (b, sb): (&[u8], usize),
    by: usize,
    bw: usize,
    cols: &mut [Vec<u32>; 4],
    out: &mut Vec<[u32; 4]>,
) {
    let w = 4 * bw;
    for c in cols.iter_mut() {
        c.clear();
        c.resize(w, 0);
    }
    let [c1, c2, css, c12] = cols;
    for dy in 0..4 {
        let ra = &a[(4 * by + dy) * sa..][..w];
        let rb = &b[(4 * by + dy) * sb..][..w];
        for ((((p, q), x1), x2), (xs, x12)) in ra
            .iter()
            .zip(rb)
            .zip(c1.iter_mut())
            .zip(c2.iter_mut())
            .zip(css.iter_mut().zip(c12.iter_mut()))
        {
            let (p, q) = (u32::from(*p), u32::from(*q));
            *x1 += p;
            *x2 += q;
            *xs += p * p + q * q;
            *x12 += p * q;
        }
    }
    out.clear();
    out.extend((0..bw).map(|k| {
        let r = 4 * k..4 * k + 4;
        [
            c1[r.clone()].iter().sum(),
            c2[r.clone()].iter().sum(),
            css[r.clone()].iter().sum(),
            c12[r].iter().sum(),
        ]
    }));
}

fn ssim_end1(s1: i64, s2: i64, ss: i64, s12: i64) -> f32 {
    const C1: i64 = (0.01 * 0.01 * 255.0 * 255.0 * 64.0 + 0.5) as i64;
    const C2: i64 = (0.03 * 0.03 * 255.0 * 255.0 * 64.0 * 63.0 + 0.5) as i64;
    let vars = ss * 64 - s1 * s1 - s2 * s2;
    let covar = s12 * 64 - s1 * s2;
    let num = ((2 * s1 * s2 + C1) as f32) * ((2 * covar + C2) as f32);
    let den = ((s1 * s1 + s2 * s2 + C1) as f32) * ((vars + C2) as f32);
    num / den
}

/// x264/FFmpeg SSIM of one plane: 8×8 windows on a 4-pixel grid, averaged (per-row sums in
/// f32 like FFmpeg's ssim_endn, the total in f64).
pub fn plane_ssim(a: &[u8], sa: usize, b: &[u8], sb: usize, w: usize, h: usize) -> f64 {
    let (bw, bh) = (w / 4, h / 4);
    if bw < 2 || bh < 2 {
        return 1.0;
    }
    let mut prev = Vec::with_capacity(bw);
    let mut cur = Vec::with_capacity(bw);
    let mut cols: [Vec<u32>; 4] = Default::default();
    block_row((a, sa), (b, sb), 0, bw, &mut cols, &mut prev);
    let mut total = 0.0f64;
    for by in 1..bh {
        block_row((a, sa), (b, sb), by, bw, &mut cols, &mut cur);
        let mut line = 0.0f32;
        for x in 0..bw - 1 {
            let s = |k: usize| i64::from(prev[x][k] + prev[x + 1][k] + cur[x][k] + cur[x + 1][k]);
            line += ssim_end1(s(0), s(1), s(2), s(3));
        }
        total += f64::from(line);
        std::mem::swap(&mut prev, &mut cur);
    }
    total / ((bh - 1) * (bw - 1)) as f64
}

/// A time interval in seconds; `end_s` is None while it lasts to the end of the stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    pub start_s: f64,
    pub end_s: Option<f64>,
}

impl Segment {
    pub fn duration_s(&self, stream_end_s: f64) -> f64 {
        self.end_s.unwrap_or(stream_end_s) - self.start_s
    }
}

/// vf_blackdetect with its defaults: pixel threshold 0.10, picture ratio 0.98, limited range.
#[derive(Debug, Clone)]
pub struct BlackDetector {
    pub min_duration_s: f64,
    pub picture_black_ratio: f64,
    pixel_threshold: u8,
    start: Option<f64>,
    last_pts: f64,
    pub segments: Vec<Segment>,
}

impl BlackDetector {
    pub fn new(
        min_duration_s: f64,
        picture_black_ratio: f64,
        pixel_black_th: f64,
        full_range: bool,
    ) -> Self {
        let th = if full_range {
            pixel_black_th * 255.0
        } else {
            16.0 + pixel_black_th * (235.0 - 16.0)
        };
        BlackDetector {
            min_duration_s,
            picture_black_ratio,
            pixel_threshold: th as u8,
            start: None,
            last_pts: 0.0,
            segments: Vec::new(),
        }
    }
    pub fn with_defaults(min_duration_s: f64) -> Self {
        Self::new(min_duration_s, 0.98, 0.10, false)
    }
    pub fn push(&mut self, f: &Frame, pts_s: f64) {
        let mut black = 0usize;
        for y in 0..f.height {
            let row = &f.planes[0][y * f.strides[0]..y * f.strides[0] + f.width];
            black += row.iter().filter(|p| **p <= self.pixel_threshold).count();
        }
        self.push_count(black as u64, (f.width * f.height) as u64, pts_s);
    }
    /// Luma values at or below this count as black.
    pub fn pixel_threshold(&self) -> u8 {
        self.pixel_threshold
    }
    /// One frame from its count of black luma pixels, however it was measured (the GPU engine in
    /// [`super::gpu`] counts them on the device).
    pub fn push_count(&mut self, black_pixels: u64, pixels: u64, pts_s: f64) {
        let ratio = black_pixels as f64 / pixels as f64;
        if ratio >= self.picture_black_ratio {
            if self.start.is_none() {
                self.start = Some(pts_s);
            }
        } else if let Some(s) = self.start.take() {
            self.close(s, Some(pts_s));
        }
        self.last_pts = pts_s;
    }
    fn close(&mut self, start: f64, end: Option<f64>) {
        let e = end.unwrap_or(self.last_pts);
        if e - start >= self.min_duration_s {
            self.segments.push(Segment {
                start_s: start,
                end_s: Some(e),
            });
        }
    }
    /// At end of stream FFmpeg closes an open segment at the last frame's timestamp.
    pub fn finish(&mut self) -> Vec<Segment> {
        if let Some(s) = self.start.take() {
            self.close(s, None);
        }
        self.segments.clone()
    }
}

/// vf_freezedetect: a frame is frozen when its mean absolute difference from the segment's first
/// frame (all planes, normalised by 2^bitdepth) is at most `noise` (linear; -60 dB = 0.001).
#[derive(Debug, Clone)]
pub struct FreezeDetector {
    pub noise: f64,
    pub min_duration_s: f64,
    /// The segment's first frame: its timestamp, and its planes when the CPU compares (empty when
    /// the GPU engine keeps the frame on the device).
    reference_pts: Option<f64>,
    reference_planes: Vec<Vec<u8>>,
    frozen: bool,
    pub segments: Vec<Segment>,
}

impl FreezeDetector {
    pub fn new(noise_db: f64, min_duration_s: f64) -> Self {
        FreezeDetector {
            noise: 10f64.powf(noise_db / 20.0),
            min_duration_s,
            reference_pts: None,
            reference_planes: Vec::new(),
            frozen: false,
            segments: Vec::new(),
        }
    }
    fn copy(f: &Frame) -> Vec<Vec<u8>> {
        (0..3)
            .map(|p| {
                let (w, h) = f.plane_size(p);
                let mut v = Vec::with_capacity(w * h);
                for y in 0..h {
                    v.extend_from_slice(&f.planes[p][y * f.strides[p]..y * f.strides[p] + w]);
                }
                v
            })
            .collect()
    }
    /// Sum of absolute differences from the reference planes, and the number of samples.
    fn difference(&self, f: &Frame) -> Option<(u64, u64)> {
        self.reference_pts?;
        let r = &self.reference_planes;
        let (mut sad, mut count) = (0u64, 0u64);
        for (p, plane) in r.iter().enumerate() {
            let (w, h) = f.plane_size(p);
            for y in 0..h {
                let a = &plane[y * w..y * w + w];
                let b = &f.planes[p][y * f.strides[p]..y * f.strides[p] + w];
                sad += a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| u64::from(x.abs_diff(*y)))
                    .sum::<u64>();
            }
            count += (w * h) as u64;
        }
        Some((sad, count))
    }
    pub fn push(&mut self, f: &Frame, pts_s: f64) {
        let difference = self.difference(f);
        if self.push_difference(difference, pts_s) {
            self.reference_planes = Self::copy(f);
        }
    }
    /// One frame from its (sum of absolute differences, samples) against the reference frame,
    /// however it was measured (the GPU engine in [`super::gpu`] keeps the reference on the
    /// device); `None` when there is no comparable reference. Returns true when this frame becomes
    /// the new reference, which the caller then keeps.
    pub fn push_difference(&mut self, difference: Option<(u64, u64)>, pts_s: f64) -> bool {
        let frozen =
            difference.is_some_and(|(sad, count)| sad as f64 / count as f64 / 256.0 <= self.noise);
        match (self.reference_pts, frozen) {
            (Some(ref_pts), true) => {
                if !self.frozen && pts_s - ref_pts >= self.min_duration_s {
                    self.frozen = true;
                    self.segments.push(Segment {
                        start_s: ref_pts,
                        end_s: None,
                    });
                }
                false
            }
            _ => {
                if self.frozen {
                    if let Some(s) = self.segments.last_mut() {
                        s.end_s = Some(pts_s);
                    }
                    self.frozen = false;
                }
                self.reference_pts = Some(pts_s);
                true
            }
        }
    }
    pub fn finish(&mut self) -> Vec<Segment> {
        self.segments.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(v: u8, w: usize, h: usize) -> (Vec<u8>, Vec<u8>) {
        (vec![v; w * h], vec![128; (w / 2) * (h / 2)])
    }

    #[test]
    fn identical_frames_have_ssim_one_and_infinite_psnr() {
        let (y, c) = gray(100, 64, 64);
        let f = Frame {
            planes: [&y, &c, &c],
            strides: [64, 32, 32],
            width: 64,
            height: 64,
            chroma_shift: (1, 1),
        };
        let mut acc = FidelityAccumulator::default();
        acc.push(&f, &f);
        let r = acc.result();
        assert!((r.ssim_all - 1.0).abs() < 1e-12);
        assert!(r.psnr_avg_db.is_infinite());
    }

    #[test]
    fn psnr_of_a_constant_offset() {
        let (a, c) = gray(100, 64, 64);
        let (b, _) = gray(110, 64, 64);
        let fa = Frame {
            planes: [&a, &c, &c],
            strides: [64, 32, 32],
            width: 64,
            height: 64,
            chroma_shift: (1, 1),
        };
        let fb = Frame {
            planes: [&b, &c, &c],
            strides: [64, 32, 32],
            width: 64,
            height: 64,
            chroma_shift: (1, 1),
        };
        let mut acc = FidelityAccumulator::default();
        acc.push(&fa, &fb);
        // Y MSE 100 → 28.13 dB; weighted (Y is 2/3 of samples) MSE 66.7 → 29.89 dB.
        assert!((acc.result().psnr_y_db - 28.1308).abs() < 1e-3);
        assert!((acc.result().psnr_avg_db - 29.8917).abs() < 1e-3);
    }

    #[test]
    fn black_segment_needs_min_duration() {
        let (b, c) = gray(16, 16, 16);
        let (w, _) = gray(200, 16, 16);
        let fb = Frame {
            planes: [&b, &c, &c],
            strides: [16, 8, 8],
            width: 16,
            height: 16,
            chroma_shift: (1, 1),
        };
        let fw = Frame {
            planes: [&w, &c, &c],
            strides: [16, 8, 8],
            width: 16,
            height: 16,
            chroma_shift: (1, 1),
        };
        let mut d = BlackDetector::with_defaults(0.5);
        for i in 0..10 {
            d.push(if i < 5 { &fb } else { &fw }, i as f64 * 0.2);
        }
        assert_eq!(
            d.finish(),
            vec![Segment {
                start_s: 0.0,
                end_s: Some(1.0)
            }]
        );
    }
}
