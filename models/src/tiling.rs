//! Tiling: the frame is cut into cores that partition it; each tile feeds the network its core plus
//! `overlap_px` of real neighbouring pixels on every side (clipped at the frame, so zero padding
//! happens only at the true image border). With an overlap of at least the network's receptive
//! radius, every core output pixel sees exactly what it would see in whole-frame inference, so the
//! stitched frame equals the whole-frame result; peak memory follows the tile, not the frame.

use crate::error::{ModelError, Result};

/// Largest tile side accepted (input pixels). A 2048² tile of a 64-channel fp32 network already
/// needs ~1 GiB per activation; beyond this, tiling has lost its point.
pub const MAX_TILE_PX: u32 = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// One tile of a frame (input-pixel coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// What the network sees: the core and its context.
    pub input: Rect,
    /// What this tile contributes to the output (the cores partition the frame).
    pub core: Rect,
}

/// How a frame is tiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Largest core side in input pixels; 0 = the whole frame in one pass.
    pub tile_px: u32,
    /// Context around each core, in input pixels.
    pub overlap_px: u32,
}

impl Tiling {
    pub fn whole_frame() -> Self {
        Self {
            tile_px: 0,
            overlap_px: 0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.tile_px > MAX_TILE_PX {
            return Err(ModelError::InvalidSetting(format!(
                "tile size {} px exceeds the limit of {MAX_TILE_PX} px",
                self.tile_px
            )));
        }
        if self.tile_px != 0 && self.overlap_px > MAX_TILE_PX {
            return Err(ModelError::InvalidSetting(format!(
                "tile overlap {} px exceeds the limit of {MAX_TILE_PX} px",
                self.overlap_px
            )));
        }
        Ok(())
    }

    /// Tiles for a `width`×`height` frame, row by row. Cores are as equal as possible (a 640 px
    /// row with 512 px tiles gives 320 + 320, not 512 + 128) so tiles share shapes.
    pub fn plan(&self, width: u32, height: u32) -> Vec<Tile> {
        if width == 0 || height == 0 {
            return Vec::new();
        }
        let (tile, overlap) = if self.tile_px == 0 {
            (width.max(height), 0)
        } else {
            (self.tile_px, self.overlap_px)
        };
        let cols = split(width, tile);
        let rows = split(height, tile);
        let mut tiles = Vec::with_capacity(cols.len() * rows.len());
        for &(y, h) in &rows {
            for &(x, w) in &cols {
                let x0 = x.saturating_sub(overlap);
                let y0 = y.saturating_sub(overlap);
                let x1 = (x + w).saturating_add(overlap).min(width);
                let y1 = (y + h).saturating_add(overlap).min(height);
                tiles.push(Tile {
                    input: Rect {
                        x: x0,
                        y: y0,
                        width: x1 - x0,
                        height: y1 - y0,
                    },
                    core: Rect {
                        x,
                        y,
                        width: w,
                        height: h,
                    },
                });
            }
        }
        tiles
    }
}

/// `len` split into the fewest near-equal parts of at most `max` each: (start, length).
fn split(len: u32, max: u32) -> Vec<(u32, u32)> {
    let max = max.max(1);
    let n = len.div_ceil(max);
    let n64 = u64::from(n);
    (0..n64)
        .map(|i| {
            let a = (i * u64::from(len) / n64) as u32;
            let b = ((i + 1) * u64::from(len) / n64) as u32;
            (a, b - a)
        })
        .collect()
}

/// Where a tile's core lands in the tile's network output (output pixels, scale `s`).
pub fn core_in_tile_output(tile: &Tile, scale: u32) -> Rect {
    Rect {
        x: (tile.core.x - tile.input.x) * scale,
        y: (tile.core.y - tile.input.y) * scale,
        width: tile.core.width * scale,
        height: tile.core.height * scale,
    }
}

/// Copies a tile's core from the network output (planar CHW, `channels` × tile output size) into
/// the planar CHW frame `dst` of `dst_width` × `dst_height`.
pub fn stitch_planar(
    tile_out: &[f32],
    tile: &Tile,
    scale: u32,
    channels: usize,
    dst: &mut [f32],
    dst_width: usize,
    dst_height: usize,
) {
    let src_w = (tile.input.width * scale) as usize;
    let src_h = (tile.input.height * scale) as usize;
    let from = core_in_tile_output(tile, scale);
    let (dx, dy) = (
        (tile.core.x * scale) as usize,
        (tile.core.y * scale) as usize,
    );
    let (w, h) = (from.width as usize, from.height as usize);
    for c in 0..channels {
        for row in 0..h {
            let s = c * src_w * src_h + (from.y as usize + row) * src_w + from.x as usize;
            let d = c * dst_width * dst_height + (dy + row) * dst_width + dx;
            dst[d..d + w].copy_from_slice(&tile_out[s..s + w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cover_count(tiles: &[Tile], w: u32, h: u32) -> Vec<u32> {
        let mut n = vec![0; (w * h) as usize];
        for t in tiles {
            for y in t.core.y..t.core.y + t.core.height {
                for x in t.core.x..t.core.x + t.core.width {
                    n[(y * w + x) as usize] += 1;
                }
            }
        }
        n
    }

    #[test]
    fn cores_partition_the_frame_and_inputs_add_context() {
        for (w, h, tile, overlap) in [
            (640, 360, 512, 18),
            (37, 23, 8, 3),
            (100, 1, 7, 50),
            (5, 5, 1, 0),
        ] {
            let tiles = Tiling {
                tile_px: tile,
                overlap_px: overlap,
            }
            .plan(w, h);
            assert!(
                cover_count(&tiles, w, h).iter().all(|&c| c == 1),
                "{w}x{h} tile {tile}"
            );
            for t in &tiles {
                assert!(t.core.width <= tile && t.core.height <= tile);
                // context is exactly `overlap`, except where the frame ends
                assert_eq!(t.core.x - t.input.x, t.core.x.min(overlap));
                assert_eq!(t.core.y - t.input.y, t.core.y.min(overlap));
                let right = w - (t.core.x + t.core.width);
                assert_eq!(
                    t.input.x + t.input.width - (t.core.x + t.core.width),
                    right.min(overlap)
                );
            }
        }
    }

    #[test]
    fn balanced_cores() {
        let tiles = Tiling {
            tile_px: 512,
            overlap_px: 18,
        }
        .plan(640, 360);
        let widths: Vec<u32> = tiles.iter().map(|t| t.core.width).collect();
        assert_eq!(widths, [320, 320]);
        assert_eq!(
            tiles[1].input,
            Rect {
                x: 302,
                y: 0,
                width: 338,
                height: 360
            }
        );
        assert_eq!(split(10, 3), [(0, 2), (2, 3), (5, 2), (7, 3)]);
    }

    #[test]
    fn whole_frame_is_one_tile() {
        let tiles = Tiling::whole_frame().plan(37, 23);
        let full = Rect {
            x: 0,
            y: 0,
            width: 37,
            height: 23,
        };
        assert_eq!(
            tiles,
            [Tile {
                input: full,
                core: full
            }]
        );
        assert!(Tiling::whole_frame().plan(0, 10).is_empty());
    }

    #[test]
    fn stitching_places_cores() {
        // a 4x2 frame, scale 2, two 2x2 tiles with 1 px overlap; the "network" output of a tile
        // encodes the absolute output coordinate, so the stitched frame must be x + 100*y
        let (w, h, s) = (4u32, 2u32, 2u32);
        let tiles = Tiling {
            tile_px: 2,
            overlap_px: 1,
        }
        .plan(w, h);
        let (ow, oh) = ((w * s) as usize, (h * s) as usize);
        let mut dst = vec![-1.0; 2 * ow * oh];
        for t in &tiles {
            let (tw, th) = ((t.input.width * s) as usize, (t.input.height * s) as usize);
            let mut out = vec![0.0; 2 * tw * th];
            for c in 0..2 {
                for y in 0..th {
                    for x in 0..tw {
                        let ax = x + (t.input.x * s) as usize;
                        let ay = y + (t.input.y * s) as usize;
                        out[c * tw * th + y * tw + x] = (c * 1000 + ay * 100 + ax) as f32;
                    }
                }
            }
            stitch_planar(&out, t, s, 2, &mut dst, ow, oh);
        }
        for c in 0..2 {
            for y in 0..oh {
                for x in 0..ow {
                    assert_eq!(
                        dst[c * ow * oh + y * ow + x],
                        (c * 1000 + y * 100 + x) as f32
                    );
                }
            }
        }
    }

    #[test]
    fn limits() {
        assert!(Tiling {
            tile_px: 4096,
            overlap_px: 0
        }
        .validate()
        .is_err());
        assert!(Tiling {
            tile_px: 256,
            overlap_px: 10_000
        }
        .validate()
        .is_err());
        assert!(Tiling {
            tile_px: 256,
            overlap_px: 18
        }
        .validate()
        .is_ok());
    }
}
