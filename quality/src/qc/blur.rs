//! vf_blurdetect (FFmpeg 5.1, libavfilter/vf_blurdetect.c + edge_common.c): the no-reference
//! perceptual blur metric of Marziliano et al. Per plane: 5×5 Gaussian (σ 1.4, integer /159),
//! Sobel gradients rounded to four directions, non-maximum suppression, in-place double
//! threshold, then for every remaining edge pixel the distance between the luminance extrema on
//! either side along the gradient; blocks average their edge widths and the sharpest
//! `block_pct` % of blocks give the frame's blur. Ported step for step, including FFmpeg's
//! integer arithmetic, its f32 accumulations and its buffers that persist across planes and
//! frames, so the per-frame values equal `lavfi.blur`.
//! Pure: frames in, numbers out.

use super::video::Frame;

/// The filter's options; [`Default`] is FFmpeg 5.1's defaults (`ffmpeg -h filter=blurdetect`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlurConfig {
    /// Low hysteresis threshold, 0..1 of the 8-bit range (`low`).
    pub low: f32,
    /// High hysteresis threshold, 0..1 (`high`).
    pub high: f32,
    /// Search radius for the extrema around an edge pixel, pixels (`radius`, 1..100).
    pub radius: u32,
    /// Percentage of the sharpest blocks pooled into the frame's value (`block_pct`, 1..100).
    pub block_pct: u32,
    /// Block size in luma pixels; -1 (either one < 1) means one block of the whole frame.
    pub block_width: i32,
    pub block_height: i32,
    /// Bit mask of the planes measured (`planes`; 1 = luma only).
    pub planes: u32,
}

impl Default for BlurConfig {
    fn default() -> Self {
        BlurConfig {
            low: (15.0 / 255.0) as f32,
            high: (30.0 / 255.0) as f32,
            radius: 50,
            block_pct: 80,
            block_width: -1,
            block_height: -1,
            planes: 1,
        }
    }
}

/// Rounded gradient directions (edge_common.h).
const DIR_45UP: i8 = 0;
const DIR_45DOWN: i8 = 1;
const DIR_HORIZONTAL: i8 = 2;
const DIR_VERTICAL: i8 = 3;

/// FFmpeg's per-link work buffers, sized for the luma plane and reused by every plane with the
/// plane's own width as line size. Cells a step does not write keep what an earlier plane or
/// frame left there, exactly as in FFmpeg (it matters at plane borders when several planes are
/// measured).
struct Buffers {
    width: usize,
    height: usize,
    filtered: Vec<u8>,
    edges: Vec<u8>,
    gradients: Vec<u16>,
    directions: Vec<i8>,
    blocks: Vec<f32>,
}

/// Per-frame blur with vf_blurdetect's definition, and the mean over the stream.
pub struct BlurDetector {
    cfg: BlurConfig,
    low_u8: u8,
    high_u8: u8,
    buffers: Option<Buffers>,
    /// `lavfi.blur` of every frame pushed, in order (NaN where FFmpeg prints nan: no block had
    /// edges, e.g. a flat frame).
    pub values: Vec<f32>,
}

/// The stream's blur figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Blur {
    pub frames: u64,
    /// Mean of the per-frame values over the frames that have one. FFmpeg's "blur mean" is the
    /// same figure when every frame has edges (it turns nan after a single flat frame).
    pub mean: f64,
    pub max: f64,
    /// Frames with no measurable edge (no value).
    pub frames_without_edges: u64,
}

impl BlurDetector {
    pub fn new(cfg: BlurConfig) -> Self {
        // blurdetect_init: the thresholds rounded to 8-bit.
        let to_u8 = |v: f32| (f64::from(v).clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
        BlurDetector {
            low_u8: to_u8(cfg.low),
            high_u8: to_u8(cfg.high),
            cfg,
            buffers: None,
            values: Vec::new(),
        }
    }

    pub fn with_defaults() -> Self {
        Self::new(BlurConfig::default())
    }

    /// Measures one frame and returns its `lavfi.blur`.
    pub fn push(&mut self, f: &Frame) -> f32 {
        let (inw, inh) = (f.width, f.height);
        if inw == 0 || inh == 0 {
            self.values.push(f32::NAN);
            return f32::NAN;
        }
        let reuse = self
            .buffers
            .as_ref()
            .is_some_and(|b| (b.width, b.height) == (inw, inh));
        if !reuse {
            // blurdetect_config_input (a size change reconfigures the filter graph in FFmpeg).
            self.buffers = Some(Buffers {
                width: inw,
                height: inh,
                filtered: vec![0; inw * inh],
                edges: vec![0; inw * inh],
                gradients: vec![0; inw * inh],
                directions: vec![0; inw * inh],
                blocks: Vec::new(),
            });
        }
        let (block_w, block_h) = if self.cfg.block_width < 1 || self.cfg.block_height < 1 {
            (inw, inh)
        } else {
            (
                self.cfg.block_width as usize,
                self.cfg.block_height as usize,
            )
        };
        let Some(buf) = self.buffers.as_mut() else {
            return f32::NAN;
        };
        let mut blur = 0.0f32;
        let mut nplanes = 0;
        for p in 0..3 {
            if self.cfg.planes & (1 << p) == 0 {
                continue;
            }
            nplanes += 1;
            let (w, h) = f.plane_size(p);
            let (hsub, vsub) = if p == 0 { (0, 0) } else { f.chroma_shift };
            gaussian_blur(w, h, &mut buf.filtered, f.planes[p], f.strides[p]);
            sobel(w, h, &mut buf.gradients, &mut buf.directions, &buf.filtered);
            buf.edges[..inw * inh].fill(0);
            non_maximum_suppression(w, h, &mut buf.edges, &buf.directions, &buf.gradients);
            double_threshold(self.low_u8, self.high_u8, w, h, &mut buf.edges);
            let plane = PlaneView {
                w,
                h,
                src: &buf.filtered,
                edges: &buf.edges,
                dirs: &buf.directions,
            };
            blur += calculate_blur(
                &plane,
                (block_w.div_ceil(1 << hsub), block_h.div_ceil(1 << vsub)),
                self.cfg.radius as usize,
                self.cfg.block_pct,
                &mut buf.blocks,
            );
        }
        if nplanes > 0 {
            blur /= nplanes as f32;
        }
        self.values.push(blur);
        blur
    }

    pub fn result(&self) -> Blur {
        let defined: Vec<f64> = self
            .values
            .iter()
            .filter(|v| !v.is_nan())
            .map(|v| f64::from(*v))
            .collect();
        let n = defined.len();
        Blur {
            frames: self.values.len() as u64,
            mean: if n > 0 {
                defined.iter().sum::<f64>() / n as f64
            } else {
                f64::NAN
            },
            max: defined.iter().copied().fold(f64::NAN, f64::max),
            frames_without_edges: (self.values.len() - n) as u64,
        }
    }
}

/// ff_gaussian_blur: 5×5 kernel (sum 159), the two outer rows and columns copied. `dst` has the
/// plane's width as line size.
fn gaussian_blur(w: usize, h: usize, dst: &mut [u8], src: &[u8], src_stride: usize) {
    let row = |y: usize| &src[y * src_stride..y * src_stride + w];
    for y in 0..h {
        let d = &mut dst[y * w..y * w + w];
        if y < 2 || y + 2 >= h || w < 5 {
            d.copy_from_slice(row(y));
            continue;
        }
        let (r0, r1, r2, r3, r4) = (row(y - 2), row(y - 1), row(y), row(y + 1), row(y + 2));
        d[..2].copy_from_slice(&r2[..2]);
        d[w - 2..].copy_from_slice(&r2[w - 2..]);
        let u = |r: &[u8], i: usize| u32::from(r[i]);
        for (k, out) in d[2..w - 2].iter_mut().enumerate() {
            let i = k + 2;
            let s = (u(r0, i - 2) + u(r4, i - 2)) * 2
                + (u(r0, i - 1) + u(r4, i - 1)) * 4
                + (u(r0, i) + u(r4, i)) * 5
                + (u(r0, i + 1) + u(r4, i + 1)) * 4
                + (u(r0, i + 2) + u(r4, i + 2)) * 2
                + (u(r1, i - 2) + u(r3, i - 2)) * 4
                + (u(r1, i - 1) + u(r3, i - 1)) * 9
                + (u(r1, i) + u(r3, i)) * 12
                + (u(r1, i + 1) + u(r3, i + 1)) * 9
                + (u(r1, i + 2) + u(r3, i + 2)) * 4
                + u(r2, i - 2) * 5
                + u(r2, i - 1) * 12
                + u(r2, i) * 15
                + u(r2, i + 1) * 12
                + u(r2, i + 2) * 5;
            *out = (s / 159) as u8;
        }
    }
}

/// edge_common.c get_rounded_direction: the gradient angle against tan(π/8) and tan(3π/8) in
/// 16-bit fixed point.
fn rounded_direction(mut gx: i32, mut gy: i32) -> i8 {
    if gx != 0 {
        if gx < 0 {
            gx = -gx;
            gy = -gy;
        }
        gy *= 1 << 16;
        let tanpi8gx = 27146 * gx;
        let tan3pi8gx = 158218 * gx;
        if gy > -tan3pi8gx && gy < -tanpi8gx {
            return DIR_45UP;
        }
        if gy > -tanpi8gx && gy < tanpi8gx {
            return DIR_HORIZONTAL;
        }
        if gy > tanpi8gx && gy < tan3pi8gx {
            return DIR_45DOWN;
        }
    }
    DIR_VERTICAL
}

/// ff_sobel: |Gx| + |Gy| and the rounded direction, interior pixels only.
fn sobel(w: usize, h: usize, grad: &mut [u16], dir: &mut [i8], src: &[u8]) {
    for j in 1..h.saturating_sub(1) {
        let (a, b, c) = (
            &src[(j - 1) * w..j * w],
            &src[j * w..(j + 1) * w],
            &src[(j + 1) * w..(j + 2) * w],
        );
        let g = &mut grad[j * w..(j + 1) * w];
        let d = &mut dir[j * w..(j + 1) * w];
        for i in 1..w - 1 {
            let v = |r: &[u8], x: usize| i32::from(r[x]);
            let gx = -v(a, i - 1) + v(a, i + 1) - 2 * v(b, i - 1) + 2 * v(b, i + 1) - v(c, i - 1)
                + v(c, i + 1);
            let gy =
                -v(a, i - 1) + v(c, i - 1) - 2 * v(a, i) + 2 * v(c, i) - v(a, i + 1) + v(c, i + 1);
            g[i] = (gx.abs() + gy.abs()) as u16;
            d[i] = rounded_direction(gx, gy);
        }
    }
}

/// ff_non_maximum_suppression: keeps a gradient (clipped to 8 bits) that exceeds both
/// neighbours along its direction. `dst` must be zeroed.
fn non_maximum_suppression(w: usize, h: usize, dst: &mut [u8], dir: &[i8], src: &[u16]) {
    for j in 1..h.saturating_sub(1) {
        for i in 1..w - 1 {
            let at = j * w + i;
            let g = src[at];
            let (a, b) = match dir[at] {
                DIR_45UP => (src[at + w - 1], src[at - w + 1]),
                DIR_45DOWN => (src[at - w - 1], src[at + w + 1]),
                DIR_HORIZONTAL => (src[at - 1], src[at + 1]),
                _ => (src[at - w], src[at + w]),
            };
            if g > a && g > b {
                dst[at] = g.min(255) as u8;
            }
        }
    }
}

/// ff_double_threshold, called in place by blurdetect: a pixel stays when above `high`, or
/// above `low` with a neighbour above `high`, where the neighbours before it in raster order
/// have already been thresholded (FFmpeg passes the same buffer as source and destination).
fn double_threshold(low: u8, high: u8, w: usize, h: usize, buf: &mut [u8]) {
    for j in 0..h {
        for i in 0..w {
            let at = j * w + i;
            let v = buf[at];
            if v > high {
                continue;
            }
            let interior = i != 0 && i != w - 1 && j != 0 && j != h - 1;
            let keep = interior
                && v > low
                && [
                    at - w - 1,
                    at - w,
                    at - w + 1,
                    at - 1,
                    at + 1,
                    at + w - 1,
                    at + w,
                    at + w + 1,
                ]
                .iter()
                .any(|&n| buf[n] > high);
            if !keep {
                buf[at] = 0;
            }
        }
    }
}

/// One plane's filtered pixels, surviving edges and directions, all with line size `w`.
struct PlaneView<'a> {
    w: usize,
    h: usize,
    src: &'a [u8],
    edges: &'a [u8],
    dirs: &'a [i8],
}

/// vf_blurdetect edge_width: steps from the edge pixel against and along the gradient
/// direction until the luminance stops rising (falling); 0 when a search leaves the plane.
/// Diagonal widths are scaled by 0.7 (≈ √2/2).
fn edge_width(p: &PlaneView, i: usize, j: usize, dir: i8, radius: usize) -> f32 {
    let (dx, dy): (isize, isize) = match dir {
        DIR_HORIZONTAL => (1, 0),
        DIR_VERTICAL => (0, 1),
        DIR_45UP => (1, -1),
        _ => (1, 1),
    };
    let (w, h) = (p.w as isize, p.h as isize);
    let (i, j) = (i as isize, j as isize);
    let at = |x: isize, y: isize| i32::from(p.src[(y * w + x) as usize]);
    let sign = if at(i, j) > at(i - dx, j - dy) { 1 } else { -1 };
    let mut width = 0.0f32;
    for forward in [false, true] {
        let s = if forward { 1 } else { -1 };
        let mut k = 0;
        while k < radius {
            let ki = k as isize;
            let (x1, y1) = (i + s * ki * dx, j + s * ki * dy);
            let (x2, y2) = (x1 + s * dx, y1 + s * dy);
            if x2 < 0 || x2 >= w || y2 < 0 || y2 >= h {
                return 0.0;
            }
            let tmp = (at(x1, y1) - at(x2, y2)) * sign;
            // Against the direction a maximum is where the step stops rising; along it, where
            // it stops falling.
            if (!forward && tmp <= 0) || (forward && tmp >= 0) {
                break;
            }
            k += 1;
        }
        width += k as f32;
    }
    if dir == DIR_45UP || dir == DIR_45DOWN {
        width = (f64::from(width) * 0.7) as f32;
    }
    width
}

/// vf_blurdetect calculate_blur: mean edge width per block (blocks with a total width under 2
/// count as smooth and are skipped), ascending sort, mean of the first ceil(n × pct) blocks.
fn calculate_blur(
    p: &PlaneView,
    (block_w, block_h): (usize, usize),
    radius: usize,
    block_pct: u32,
    blocks: &mut Vec<f32>,
) -> f32 {
    let threshold = (f64::from(block_pct) / 100.0) as f32;
    let (brows, bcols) = (p.h / block_h.max(1), p.w / block_w.max(1));
    blocks.clear();
    for bj in 0..brows {
        for bi in 0..bcols {
            let mut total = 0.0f64;
            let mut count = 0u32;
            for j in bj * block_h..(bj + 1) * block_h {
                for i in bi * block_w..(bi + 1) * block_w {
                    let at = j * p.w + i;
                    if p.edges[at] > 0 {
                        let width = edge_width(p, i, j, p.dirs[at], radius);
                        if f64::from(width) > 0.001 {
                            count += 1;
                            total += f64::from(width);
                        }
                    }
                }
            }
            if total >= 2.0 {
                blocks.push((total / f64::from(count)) as f32);
            }
        }
    }
    blocks.sort_by(f32::total_cmp);
    let keep = (f64::from(blocks.len() as f32 * threshold)).ceil() as usize;
    let sum: f32 = blocks.iter().take(keep).sum();
    // 0/0 = NaN when no block has edges, as in FFmpeg.
    sum / keep as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame<'a>(y: &'a [u8], c: &'a [u8], w: usize, h: usize) -> Frame<'a> {
        Frame {
            planes: [y, c, c],
            strides: [w, w / 2, w / 2],
            width: w,
            height: h,
            chroma_shift: (1, 1),
        }
    }

    #[test]
    fn directions_follow_the_gradient_angle() {
        assert_eq!(rounded_direction(10, 0), DIR_HORIZONTAL);
        assert_eq!(rounded_direction(0, 10), DIR_VERTICAL);
        assert_eq!(rounded_direction(10, 10), DIR_45DOWN);
        assert_eq!(rounded_direction(10, -10), DIR_45UP);
        assert_eq!(rounded_direction(-10, 10), DIR_45UP);
    }

    #[test]
    fn a_flat_frame_has_no_blur_value() {
        let (y, c) = (vec![90u8; 64 * 48], vec![128u8; 32 * 24]);
        let mut d = BlurDetector::with_defaults();
        assert!(d.push(&frame(&y, &c, 64, 48)).is_nan());
        let r = d.result();
        assert_eq!((r.frames, r.frames_without_edges), (1, 1));
    }

    /// A vertical ramp edge from 40 to 200 over `ramp` pixels: after the Gaussian the edge is a
    /// few pixels wider, and a wider ramp must measure wider.
    #[test]
    fn a_wider_ramp_measures_blurrier() {
        let (w, h) = (64, 48);
        let measure = |ramp: usize| {
            let mut y = vec![0u8; w * h];
            for (k, px) in y.iter_mut().enumerate() {
                let x = k % w;
                let t = (x as f32 - 32.0 + ramp as f32 / 2.0) / ramp as f32;
                *px = (40.0 + 160.0 * t.clamp(0.0, 1.0)) as u8;
            }
            let c = vec![128u8; (w / 2) * (h / 2)];
            BlurDetector::with_defaults().push(&frame(&y, &c, w, h))
        };
        let (sharp, soft) = (measure(1), measure(12));
        assert!(sharp > 1.0 && sharp < 8.0, "sharp edge width {sharp}");
        assert!(soft > sharp + 5.0, "soft {soft} vs sharp {sharp}");
    }
}
