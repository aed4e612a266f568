//! Pre- and post-processing between 8-bit frames and the network's tensors, and the size limits
//! checked before anything is allocated. Input tensor: planar RGB, `value / 255`, no mean/std
//! (the Real-ESRGAN convention); output: `round(clamp(y, 0, 1) * 255)`.

use crate::error::{ModelError, Result};
use crate::tiling::Rect;

/// Largest input side accepted (pixels).
pub const MAX_INPUT_SIDE_PX: u64 = 16_384;
/// Largest output accepted: a 4K UHD frame upscaled x4 (15360×8640 = 133 Mpx, 400 MB as RGB8).
pub const MAX_OUTPUT_PIXELS: u64 = 15_360 * 8_640;

/// Refuses sizes before allocation: zero, a side above [`MAX_INPUT_SIDE_PX`], or an output above
/// [`MAX_OUTPUT_PIXELS`] (a 65535×65535 header never reaches an allocator).
pub fn check_size(width: u64, height: u64, scale: u32) -> Result<()> {
    let refuse = |reason: String| ModelError::ImageTooLarge {
        width,
        height,
        reason,
    };
    if width == 0 || height == 0 {
        return Err(ModelError::InvalidImage(format!(
            "empty image {width}x{height}"
        )));
    }
    if width > MAX_INPUT_SIDE_PX || height > MAX_INPUT_SIDE_PX {
        return Err(refuse(format!("a side exceeds {MAX_INPUT_SIDE_PX} px")));
    }
    let out = width * height * u64::from(scale) * u64::from(scale);
    if out > MAX_OUTPUT_PIXELS {
        return Err(refuse(format!(
            "x{scale} output of {out} pixels exceeds the limit of {MAX_OUTPUT_PIXELS} (4K upscaled x4)"
        )));
    }
    Ok(())
}

/// Byte layout of an 8-bit frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// R, G, B.
    Rgb,
    /// R, G, B, X (the 4th byte is ignored on input and written as 255).
    Rgbx,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb => 3,
            PixelFormat::Rgbx => 4,
        }
    }
}

/// A borrowed 8-bit frame; `stride` is bytes per row (≥ width × bytes per pixel).
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    pub data: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub format: PixelFormat,
}

/// A mutable 8-bit frame to write into.
#[derive(Debug)]
pub struct FrameMut<'a> {
    pub data: &'a mut [u8],
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub format: PixelFormat,
}

fn check_layout(
    data_len: usize,
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
) -> Result<()> {
    let row = width as usize * format.bytes_per_pixel();
    if stride < row {
        return Err(ModelError::InvalidImage(format!(
            "stride {stride} < row of {row} bytes"
        )));
    }
    let needed = if height == 0 {
        0
    } else {
        stride * (height as usize - 1) + row
    };
    if data_len < needed {
        return Err(ModelError::InvalidImage(format!(
            "{width}x{height} frame needs {needed} bytes, buffer has {data_len}"
        )));
    }
    Ok(())
}

impl FrameRef<'_> {
    pub fn validate(&self) -> Result<()> {
        check_layout(
            self.data.len(),
            self.width,
            self.height,
            self.stride,
            self.format,
        )
    }
}

impl FrameMut<'_> {
    pub fn validate(&self) -> Result<()> {
        check_layout(
            self.data.len(),
            self.width,
            self.height,
            self.stride,
            self.format,
        )
    }
}

/// Planar RGB float tensor (CHW, 3 channels) of a region of an 8-bit frame.
pub fn to_planar(frame: &FrameRef<'_>, region: Rect) -> Vec<f32> {
    let (w, h) = (region.width as usize, region.height as usize);
    let bpp = frame.format.bytes_per_pixel();
    let plane = w * h;
    let mut out = vec![0.0f32; 3 * plane];
    for y in 0..h {
        let row = (region.y as usize + y) * frame.stride + region.x as usize * bpp;
        let px = &frame.data[row..row + w * bpp];
        for (x, p) in px.chunks_exact(bpp).enumerate() {
            for c in 0..3 {
                out[c * plane + y * w + x] = f32::from(p[c]) / 255.0;
            }
        }
    }
    out
}

/// The 8-bit value of a network output sample.
#[inline]
pub fn to_u8(v: f32) -> u8 {
    // NaN clamps to 0 through the cast
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Writes `src` (planar CHW, `src_width` × `src_height`), region `from`, into `dst` at (`x`, `y`).
pub fn write_planar(
    src: &[f32],
    src_width: usize,
    src_height: usize,
    from: Rect,
    dst: &mut FrameMut<'_>,
    x: usize,
    y: usize,
) {
    let bpp = dst.format.bytes_per_pixel();
    let plane = src_width * src_height;
    let (w, h) = (from.width as usize, from.height as usize);
    for row in 0..h {
        let s = (from.y as usize + row) * src_width + from.x as usize;
        let d = (y + row) * dst.stride + x * bpp;
        let out = &mut dst.data[d..d + w * bpp];
        for (i, p) in out.chunks_exact_mut(bpp).enumerate() {
            for c in 0..3 {
                p[c] = to_u8(src[c * plane + s + i]);
            }
            if bpp == 4 {
                p[3] = 255;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits_come_before_allocation() {
        assert!(matches!(
            check_size(65535, 65535, 4),
            Err(ModelError::ImageTooLarge { .. })
        ));
        assert!(check_size(3840, 2160, 4).is_ok());
        assert!(check_size(3840, 2161, 4).is_err());
        assert!(check_size(0, 10, 2).is_err());
        assert!(check_size(16_385, 1, 1).is_err());
    }

    #[test]
    fn to_u8_rounds_and_clamps() {
        assert_eq!(to_u8(-0.3), 0);
        assert_eq!(to_u8(1.7), 255);
        assert_eq!(to_u8(0.5), 128); // 127.5 rounds away from zero
        assert_eq!(to_u8(100.0 / 255.0), 100);
        assert_eq!(to_u8(f32::NAN), 0);
    }

    #[test]
    fn planar_round_trip_with_stride_and_rgbx() {
        // 3x2 RGB with 2 bytes of row padding
        let stride = 11;
        let mut data = vec![0u8; stride * 2];
        for y in 0..2 {
            for x in 0..3 {
                for c in 0..3 {
                    data[y * stride + x * 3 + c] = (10 * y + 3 * x + c) as u8;
                }
            }
        }
        let f = FrameRef {
            data: &data,
            width: 3,
            height: 2,
            stride,
            format: PixelFormat::Rgb,
        };
        f.validate().unwrap();
        let region = Rect {
            x: 1,
            y: 0,
            width: 2,
            height: 2,
        };
        let t = to_planar(&f, region);
        // channel 1 (G) of pixel (x=1, y=1) = 10 + 3 + 1
        // plane 1 (G), row 1, column 0
        assert_eq!(t[4 + 2], 14.0 / 255.0);
        let mut out = vec![0u8; 2 * 2 * 4];
        let mut m = FrameMut {
            data: &mut out,
            width: 2,
            height: 2,
            stride: 8,
            format: PixelFormat::Rgbx,
        };
        write_planar(
            &t,
            2,
            2,
            Rect {
                x: 0,
                y: 0,
                width: 2,
                height: 2,
            },
            &mut m,
            0,
            0,
        );
        assert_eq!(&out[12..16], &[16, 17, 18, 255]);
    }

    #[test]
    fn layout_checks() {
        let d = [0u8; 10];
        let f = FrameRef {
            data: &d,
            width: 2,
            height: 2,
            stride: 6,
            format: PixelFormat::Rgb,
        };
        assert!(f.validate().is_err(), "needs 12 bytes");
        let f = FrameRef {
            data: &d,
            width: 3,
            height: 1,
            stride: 6,
            format: PixelFormat::Rgbx,
        };
        assert!(f.validate().is_err(), "stride shorter than a row");
    }
}
