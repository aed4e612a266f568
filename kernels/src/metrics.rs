//! Per-frame video metrics on the device, with FFmpeg's definitions over 8-bit planar frames:
//! the sum of squared differences per plane (vf_psnr's MSE numerator), SSIM per plane (vf_ssim,
//! x264's 8×8 windows on a 4-pixel grid), black luma pixels (vf_blackdetect) and the sum of
//! absolute differences per plane (vf_freezedetect's MAFD numerator).
//!
//! Integer sums are exact (u32 per workgroup, then a 64-bit counter kept in two u32 atomics), so
//! they equal the CPU's bit for bit. SSIM keeps the CPU's arithmetic and order (i32 window sums,
//! f32 per window, f32 per row of windows left to right, f64 over rows); it differs from the CPU
//! only where a device's f32 division is not correctly rounded (Vulkan allows 2.5 ulp), well
//! inside 1e-6 of the plane mean.
//!
//! Frames live on the device in one buffer ([`DeviceFrame`]): the three planes back to back, each
//! row padded to a whole u32 word ([`PlanarLayout`]). GStreamer's I420 strides are exactly that,
//! so its planes upload without repacking.

use crate::context::{Batch, Context, PooledBuffer};
use crate::error::{KernelError, Result};

const PSNR_WGSL: &str = include_str!("../shaders/psnr.wgsl");
const SSIM_WGSL: &str = include_str!("../shaders/ssim.wgsl");
const FRAME_STATS_WGSL: &str = include_str!("../shaders/frame_stats.wgsl");

/// Largest plane side accepted: keeps word indices, pixel counts and every per-workgroup sum
/// inside u32 (16384² pixels, 4 × 255² per word).
pub const MAX_PLANE_SIDE: usize = 16384;

/// Words across one reduction workgroup (`WORKGROUP` in psnr.wgsl and frame_stats.wgsl).
const REDUCE_THREADS: u32 = 256;
/// Rows down one reduction workgroup (`ROWS_PER_GROUP` there): 8 × 256 × 4 × 255² < 2³².
const ROWS_PER_GROUP: u32 = 8;
/// Threads per workgroup of the SSIM passes (`@workgroup_size(64)` in ssim.wgsl).
const TILE_THREADS: u32 = 64;

/// Word slots of the results buffer: 64-bit counters as (lo, hi) pairs, then SSIM row sums.
const SSE_WORD: u32 = 0;
const SAD_WORD: u32 = 6;
const BLACK_WORD: u32 = 12;
const ROWS_WORD: u32 = 16;

/// Sizes of the three planes of an 8-bit planar frame and where each sits in a device buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanarLayout {
    sizes: [(u32, u32); 3],
}

impl PlanarLayout {
    /// Three planes of (width, height) pixels; each side 1..=[`MAX_PLANE_SIDE`].
    pub fn new(plane_sizes: [(usize, usize); 3]) -> Result<Self> {
        let mut sizes = [(0u32, 0u32); 3];
        for (p, &(w, h)) in plane_sizes.iter().enumerate() {
            if w == 0 || h == 0 || w > MAX_PLANE_SIDE || h > MAX_PLANE_SIDE {
                return Err(KernelError::InvalidInput(format!(
                    "plane {p} is {w}x{h}; each side must be 1 to {MAX_PLANE_SIDE} pixels"
                )));
            }
            sizes[p] = (w as u32, h as u32);
        }
        Ok(Self { sizes })
    }

    /// 4:2:0 with chroma rounded up, as I420.
    pub fn i420(width: usize, height: usize) -> Result<Self> {
        let c = (width.div_ceil(2), height.div_ceil(2));
        Self::new([(width, height), c, c])
    }

    pub fn plane_size(&self, p: usize) -> (usize, usize) {
        let (w, h) = self.sizes[p];
        (w as usize, h as usize)
    }

    /// Bytes per device row of plane `p`: its width rounded up to a whole u32 word.
    pub fn stride_bytes(&self, p: usize) -> usize {
        self.plane_size(p).0.next_multiple_of(4)
    }

    pub fn offset_bytes(&self, p: usize) -> usize {
        (0..p)
            .map(|q| self.stride_bytes(q) * self.plane_size(q).1)
            .sum()
    }

    pub fn len_bytes(&self) -> usize {
        self.offset_bytes(3)
    }

    /// Samples in all planes (padding excluded).
    pub fn samples(&self) -> u64 {
        (0..3)
            .map(|p| {
                let (w, h) = self.plane_size(p);
                (w * h) as u64
            })
            .sum()
    }

    /// The device layout of `planes` (padding zeroed) appended to `out`.
    pub fn pack(&self, planes: [HostPlane<'_>; 3], out: &mut Vec<u8>) -> Result<()> {
        for (p, plane) in planes.iter().enumerate() {
            self.check(p, plane)?;
            let (w, h) = self.plane_size(p);
            let pad = self.stride_bytes(p) - w;
            for y in 0..h {
                out.extend_from_slice(&plane.data[y * plane.stride..][..w]);
                out.resize(out.len() + pad, 0);
            }
        }
        Ok(())
    }

    fn check(&self, p: usize, plane: &HostPlane<'_>) -> Result<()> {
        let (w, h) = self.plane_size(p);
        let needed = (h - 1) * plane.stride + w;
        if plane.stride < w || plane.data.len() < needed {
            return Err(KernelError::InvalidInput(format!(
                "plane {p} of a {w}x{h} plane: stride {} and {} bytes, need a stride of at least \
                 {w} and {needed} bytes",
                plane.stride,
                plane.data.len()
            )));
        }
        Ok(())
    }

    fn words(&self) -> ([u32; 4], [u32; 4], [u32; 4], [u32; 4]) {
        let mut width = [0; 4];
        let mut height = [0; 4];
        let mut stride = [0; 4];
        let mut offset = [0; 4];
        for p in 0..3 {
            (width[p], height[p]) = self.sizes[p];
            stride[p] = (self.stride_bytes(p) / 4) as u32;
            offset[p] = (self.offset_bytes(p) / 4) as u32;
        }
        (width, height, stride, offset)
    }

    /// Blocks (4×4) across and down plane `p`, as SSIM counts them; (0, 0) when the plane has too
    /// few for one window (SSIM is then 1, as FFmpeg's).
    fn ssim_blocks(&self, p: usize) -> (usize, usize) {
        let (w, h) = self.plane_size(p);
        let (bw, bh) = (w / 4, h / 4);
        if bw < 2 || bh < 2 {
            (0, 0)
        } else {
            (bw, bh)
        }
    }
}

/// One plane in host memory: its bytes and the distance between rows.
#[derive(Debug, Clone, Copy)]
pub struct HostPlane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// A frame on the device in a [`PlanarLayout`].
pub struct DeviceFrame {
    layout: PlanarLayout,
    buffer: PooledBuffer,
}

impl DeviceFrame {
    /// A device buffer for frames of `layout` (contents undefined until [`DeviceFrame::write`]).
    pub fn new(ctx: &Context, layout: PlanarLayout) -> Result<Self> {
        let buffer = ctx.storage("metrics frame", layout.len_bytes() as u64)?;
        Ok(Self { layout, buffer })
    }

    pub fn upload(ctx: &Context, layout: PlanarLayout, planes: [HostPlane<'_>; 3]) -> Result<Self> {
        let mut frame = Self::new(ctx, layout)?;
        frame.write(ctx, planes)?;
        Ok(frame)
    }

    /// Replaces the contents with `planes` (queued: ordered before the next submitted work).
    /// Planes whose stride already is the device stride go up as they are, without repacking.
    pub fn write(&mut self, ctx: &Context, planes: [HostPlane<'_>; 3]) -> Result<()> {
        let l = &self.layout;
        let direct = (0..3).all(|p| {
            let (_, h) = l.plane_size(p);
            planes[p].stride == l.stride_bytes(p) && planes[p].data.len() >= l.stride_bytes(p) * h
        });
        if direct {
            for (p, plane) in planes.iter().enumerate() {
                let len = l.stride_bytes(p) * l.plane_size(p).1;
                ctx.queue().write_buffer(
                    self.buffer.buffer(),
                    l.offset_bytes(p) as u64,
                    &plane.data[..len],
                );
            }
        } else {
            let mut packed = Vec::with_capacity(l.len_bytes());
            l.pack(planes, &mut packed)?;
            ctx.queue().write_buffer(self.buffer.buffer(), 0, &packed);
        }
        Ok(())
    }

    pub fn layout(&self) -> PlanarLayout {
        self.layout
    }
}

/// Per-plane PSNR and SSIM inputs of one frame pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairMetrics {
    /// Sum of squared differences per plane (MSE = sse / plane pixels).
    pub sse: [u64; 3],
    /// Mean SSIM per plane.
    pub ssim: [f64; 3],
}

/// Black and freeze inputs of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    /// Luma pixels at or below the threshold.
    pub black_pixels: u64,
    /// Sum of absolute differences per plane from the reference frame, when one was given.
    pub sad: Option<[u64; 3]>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    width: [u32; 4],
    height: [u32; 4],
    stride_words: [u32; 4],
    offset_words: [u32; 4],
    out_word: u32,
    threshold: u32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SsimParams {
    width: [u32; 4],
    height: [u32; 4],
    stride_words: [u32; 4],
    offset_words: [u32; 4],
    block_offset: [u32; 4],
    window_offset: [u32; 4],
    row_offset: [u32; 4],
}

fn same_layout(a: &DeviceFrame, b: &DeviceFrame) -> Result<PlanarLayout> {
    if a.layout != b.layout {
        return Err(KernelError::InvalidInput(format!(
            "frames differ in layout: {:?} vs {:?}",
            a.layout.sizes, b.layout.sizes
        )));
    }
    Ok(a.layout)
}

/// Buffers that must outlive the batch that uses them (dropped after the download).
type InFlight = Vec<PooledBuffer>;

/// Records a reduction (`sse`, `sad` or `black`) over `planes` planes into `results`.
#[allow(clippy::too_many_arguments)]
fn record_reduce(
    ctx: &Context,
    batch: &mut Batch<'_>,
    (key, source, entry): (&str, &str, &str),
    a: &DeviceFrame,
    b: Option<&DeviceFrame>,
    results: &PooledBuffer,
    out_word: u32,
    threshold: u8,
    planes: u32,
) -> Result<()> {
    let l = a.layout;
    let (width, height, stride_words, offset_words) = l.words();
    // Planes are at most MAX_PLANE_SIDE: 16 × 2048 workgroups, inside every adapter's limits.
    let (across, down) = (0..planes as usize).fold((1, 1), |(x, y), p| {
        (x.max(stride_words[p]), y.max(height[p]))
    });
    let (gx, gy) = (
        across.div_ceil(REDUCE_THREADS),
        down.div_ceil(ROWS_PER_GROUP),
    );
    let params = ctx.uniform(&ReduceParams {
        width,
        height,
        stride_words,
        offset_words,
        out_word,
        threshold: u32::from(threshold),
        pad: [0; 2],
    });
    let pipeline = ctx.pipeline(key, source, entry)?;
    match b {
        Some(b) => batch.dispatch(
            &pipeline,
            &[
                a.buffer.binding(),
                b.buffer.binding(),
                params.as_entire_binding(),
                results.binding(),
            ],
            (gx, gy, planes),
        ),
        None => batch.dispatch(
            &pipeline,
            &[
                a.buffer.binding(),
                params.as_entire_binding(),
                results.binding(),
            ],
            (gx, gy, planes),
        ),
    }
    Ok(())
}

/// Where each plane's SSIM blocks, windows and row sums go, and their totals.
struct SsimPlan {
    params: SsimParams,
    blocks: usize,
    windows: usize,
    rows: usize,
    /// Largest (blocks across, blocks down) over the planes.
    max_blocks: (usize, usize),
}

fn ssim_plan(l: &PlanarLayout) -> SsimPlan {
    let (width, height, stride_words, offset_words) = l.words();
    let mut params = SsimParams {
        width,
        height,
        stride_words,
        offset_words,
        block_offset: [0; 4],
        window_offset: [0; 4],
        row_offset: [0; 4],
    };
    let (mut blocks, mut windows, mut rows) = (0usize, 0usize, 0usize);
    let mut max_blocks = (0, 0);
    for p in 0..3 {
        let (bw, bh) = l.ssim_blocks(p);
        params.block_offset[p] = blocks as u32;
        params.window_offset[p] = windows as u32;
        params.row_offset[p] = ROWS_WORD + rows as u32;
        blocks += bw * bh;
        windows += bw.saturating_sub(1) * bh.saturating_sub(1);
        rows += bh.saturating_sub(1);
        max_blocks = (max_blocks.0.max(bw), max_blocks.1.max(bh));
    }
    SsimPlan {
        params,
        blocks,
        windows,
        rows,
        max_blocks,
    }
}

/// Records the three SSIM passes; row sums land in `results` from word [`ROWS_WORD`].
fn record_ssim(
    ctx: &Context,
    batch: &mut Batch<'_>,
    a: &DeviceFrame,
    b: &DeviceFrame,
    results: &PooledBuffer,
    plan: &SsimPlan,
    keep: &mut InFlight,
) -> Result<()> {
    if plan.rows == 0 {
        return Ok(());
    }
    let sums = ctx.storage("ssim block sums", (plan.blocks * 16) as u64)?;
    let windows = ctx.storage("ssim windows", (plan.windows * 4) as u64)?;
    let params = ctx.uniform(&plan.params);
    let (bw, bh) = (plan.max_blocks.0 as u32, plan.max_blocks.1 as u32);
    let p_blocks = ctx.pipeline("metrics.ssim.blocks", SSIM_WGSL, "blocks")?;
    let p_windows = ctx.pipeline("metrics.ssim.windows", SSIM_WGSL, "windows_of")?;
    let p_rows = ctx.pipeline("metrics.ssim.rows", SSIM_WGSL, "rows_of")?;
    batch.dispatch(
        &p_blocks,
        &[
            a.buffer.binding(),
            b.buffer.binding(),
            params.as_entire_binding(),
            sums.binding(),
        ],
        (bw.div_ceil(TILE_THREADS), bh, 3),
    );
    batch.dispatch(
        &p_windows,
        &[
            params.as_entire_binding(),
            sums.binding(),
            windows.binding(),
        ],
        ((bw - 1).div_ceil(TILE_THREADS), bh - 1, 3),
    );
    batch.dispatch(
        &p_rows,
        &[
            params.as_entire_binding(),
            windows.binding(),
            results.binding(),
        ],
        ((bh - 1).div_ceil(TILE_THREADS), 1, 3),
    );
    keep.push(sums);
    keep.push(windows);
    Ok(())
}

/// A results buffer of `words` u32 with the counters zeroed.
fn results_buffer(ctx: &Context, words: u32) -> Result<PooledBuffer> {
    let results = ctx.storage("metric results", u64::from(words) * 4)?;
    ctx.write(&results, &[0u8; ROWS_WORD as usize * 4]);
    Ok(results)
}

fn counter(words: &[u32], slot: u32) -> u64 {
    let s = slot as usize;
    u64::from(words[s]) | (u64::from(words[s + 1]) << 32)
}

fn plane_counters(words: &[u32], first: u32) -> [u64; 3] {
    [0, 1, 2].map(|p| counter(words, first + 2 * p))
}

fn ssim_means(words: &[u32], l: &PlanarLayout, plan: &SsimPlan) -> [f64; 3] {
    [0, 1, 2].map(|p| {
        let (bw, bh) = l.ssim_blocks(p);
        if bw == 0 {
            return 1.0;
        }
        let first = plan.params.row_offset[p] as usize;
        let total: f64 = words[first..first + bh - 1]
            .iter()
            .map(|w| f64::from(f32::from_bits(*w)))
            .sum();
        total / ((bh - 1) * (bw - 1)) as f64
    })
}

/// Sum of squared differences per plane.
pub fn sse(ctx: &Context, a: &DeviceFrame, b: &DeviceFrame) -> Result<[u64; 3]> {
    same_layout(a, b)?;
    let results = results_buffer(ctx, ROWS_WORD)?;
    let mut batch = ctx.batch();
    record_reduce(
        ctx,
        &mut batch,
        ("metrics.psnr.sse", PSNR_WGSL, "sse"),
        a,
        Some(b),
        &results,
        SSE_WORD,
        0,
        3,
    )?;
    batch.submit()?;
    let words: Vec<u32> = ctx.download_as(&results, ROWS_WORD as usize)?;
    Ok(plane_counters(&words, SSE_WORD))
}

/// Sum of absolute differences per plane.
pub fn sad(ctx: &Context, a: &DeviceFrame, b: &DeviceFrame) -> Result<[u64; 3]> {
    same_layout(a, b)?;
    let results = results_buffer(ctx, ROWS_WORD)?;
    let mut batch = ctx.batch();
    record_reduce(
        ctx,
        &mut batch,
        ("metrics.frame_stats.sad", FRAME_STATS_WGSL, "sad"),
        a,
        Some(b),
        &results,
        SAD_WORD,
        0,
        3,
    )?;
    batch.submit()?;
    let words: Vec<u32> = ctx.download_as(&results, ROWS_WORD as usize)?;
    Ok(plane_counters(&words, SAD_WORD))
}

/// Luma (plane 0) pixels at or below `threshold`.
pub fn black_pixels(ctx: &Context, frame: &DeviceFrame, threshold: u8) -> Result<u64> {
    Ok(frame_stats(ctx, frame, None, threshold)?.black_pixels)
}

/// Mean SSIM per plane (1 for a plane too small for one 8×8 window, as FFmpeg).
pub fn ssim(ctx: &Context, a: &DeviceFrame, b: &DeviceFrame) -> Result<[f64; 3]> {
    let l = same_layout(a, b)?;
    let plan = ssim_plan(&l);
    let words = ROWS_WORD + plan.rows as u32;
    let results = results_buffer(ctx, words)?;
    let mut keep = InFlight::new();
    let mut batch = ctx.batch();
    record_ssim(ctx, &mut batch, a, b, &results, &plan, &mut keep)?;
    batch.submit()?;
    let words: Vec<u32> = ctx.download_as(&results, words as usize)?;
    Ok(ssim_means(&words, &l, &plan))
}

/// PSNR and SSIM inputs of a frame pair in one submission and one download.
pub fn pair_metrics(ctx: &Context, a: &DeviceFrame, b: &DeviceFrame) -> Result<PairMetrics> {
    let l = same_layout(a, b)?;
    let plan = ssim_plan(&l);
    let words = ROWS_WORD + plan.rows as u32;
    let results = results_buffer(ctx, words)?;
    let mut keep = InFlight::new();
    let mut batch = ctx.batch();
    record_reduce(
        ctx,
        &mut batch,
        ("metrics.psnr.sse", PSNR_WGSL, "sse"),
        a,
        Some(b),
        &results,
        SSE_WORD,
        0,
        3,
    )?;
    record_ssim(ctx, &mut batch, a, b, &results, &plan, &mut keep)?;
    batch.submit()?;
    let words: Vec<u32> = ctx.download_as(&results, words as usize)?;
    Ok(PairMetrics {
        sse: plane_counters(&words, SSE_WORD),
        ssim: ssim_means(&words, &l, &plan),
    })
}

/// Black pixels of `frame` and, given a reference, its per-plane SAD from it: one submission and
/// one download.
pub fn frame_stats(
    ctx: &Context,
    frame: &DeviceFrame,
    reference: Option<&DeviceFrame>,
    threshold: u8,
) -> Result<FrameStats> {
    if let Some(r) = reference {
        same_layout(frame, r)?;
    }
    let results = results_buffer(ctx, ROWS_WORD)?;
    let mut batch = ctx.batch();
    record_reduce(
        ctx,
        &mut batch,
        ("metrics.frame_stats.black", FRAME_STATS_WGSL, "black"),
        frame,
        None,
        &results,
        BLACK_WORD,
        threshold,
        1,
    )?;
    if let Some(r) = reference {
        record_reduce(
            ctx,
            &mut batch,
            ("metrics.frame_stats.sad", FRAME_STATS_WGSL, "sad"),
            frame,
            Some(r),
            &results,
            SAD_WORD,
            0,
            3,
        )?;
    }
    batch.submit()?;
    let words: Vec<u32> = ctx.download_as(&results, ROWS_WORD as usize)?;
    Ok(FrameStats {
        black_pixels: counter(&words, BLACK_WORD),
        sad: reference.map(|_| plane_counters(&words, SAD_WORD)),
    })
}

/// The plain-Rust reference: the same quantities, one plane at a time, in the CPU's order.
pub mod cpu {
    use super::HostPlane;

    fn rows<'a>(p: HostPlane<'a>, w: usize, h: usize) -> impl Iterator<Item = &'a [u8]> {
        (0..h).map(move |y| &p.data[y * p.stride..][..w])
    }

    /// Sum of squared differences of a `w`×`h` plane.
    pub fn plane_sse(a: HostPlane<'_>, b: HostPlane<'_>, w: usize, h: usize) -> u64 {
        rows(a, w, h)
            .zip(rows(b, w, h))
            .flat_map(|(x, y)| x.iter().zip(y))
            .map(|(x, y)| {
                let d = u64::from(x.abs_diff(*y));
                d * d
            })
            .sum()
    }

    /// Sum of absolute differences of a `w`×`h` plane.
    pub fn plane_sad(a: HostPlane<'_>, b: HostPlane<'_>, w: usize, h: usize) -> u64 {
        rows(a, w, h)
            .zip(rows(b, w, h))
            .flat_map(|(x, y)| x.iter().zip(y))
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum()
    }

    /// Pixels at or below `threshold` in a `w`×`h` plane.
    pub fn black_pixels(a: HostPlane<'_>, w: usize, h: usize, threshold: u8) -> u64 {
        rows(a, w, h).flatten().filter(|v| **v <= threshold).count() as u64
    }

    /// vf_ssim's ssim_end1 for 8-bit samples (C1, C2 scaled to sums over 64 pixels).
    pub fn ssim_end1(s1: i32, s2: i32, ss: i32, s12: i32) -> f32 {
        const C1: i32 = (0.01 * 0.01 * 255.0 * 255.0 * 64.0 + 0.5) as i32;
        const C2: i32 = (0.03 * 0.03 * 255.0 * 255.0 * 64.0 * 63.0 + 0.5) as i32;
        let vars = ss * 64 - s1 * s1 - s2 * s2;
        let covar = s12 * 64 - s1 * s2;
        let num = ((2 * s1 * s2 + C1) as f32) * ((2 * covar + C2) as f32);
        let den = ((s1 * s1 + s2 * s2 + C1) as f32) * ((vars + C2) as f32);
        num / den
    }

    /// Mean SSIM of a `w`×`h` plane: 8×8 windows on a 4-pixel grid, f32 per row of windows,
    /// f64 over rows; 1 when the plane is too small for one window.
    pub fn plane_ssim(a: HostPlane<'_>, b: HostPlane<'_>, w: usize, h: usize) -> f64 {
        let (bw, bh) = (w / 4, h / 4);
        if bw < 2 || bh < 2 {
            return 1.0;
        }
        let block = |bx: usize, by: usize| {
            let mut s = [0i32; 4];
            for dy in 0..4 {
                let ra = &a.data[(4 * by + dy) * a.stride + 4 * bx..][..4];
                let rb = &b.data[(4 * by + dy) * b.stride + 4 * bx..][..4];
                for (p, q) in ra.iter().zip(rb) {
                    let (p, q) = (i32::from(*p), i32::from(*q));
                    s[0] += p;
                    s[1] += q;
                    s[2] += p * p + q * q;
                    s[3] += p * q;
                }
            }
            s
        };
        let sums: Vec<Vec<[i32; 4]>> = (0..bh)
            .map(|by| (0..bw).map(|bx| block(bx, by)).collect())
            .collect();
        let mut total = 0.0f64;
        for y in 0..bh - 1 {
            let mut line = 0.0f32;
            for x in 0..bw - 1 {
                let s = |k: usize| {
                    sums[y][x][k] + sums[y][x + 1][k] + sums[y + 1][x][k] + sums[y + 1][x + 1][k]
                };
                line += ssim_end1(s(0), s(1), s(2), s(3));
            }
            total += f64::from(line);
        }
        total / ((bh - 1) * (bw - 1)) as f64
    }
}
