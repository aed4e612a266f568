// vf_psnr's numerator: the sum of squared differences of two 8-bit planar frames, per plane.
// Frames are laid out as in metrics.rs: planes back to back, each row padded to a whole u32 word
// (padding masked off here, so it may hold anything). A workgroup covers 256 words across and
// ROWS_PER_GROUP rows of one plane (z): each thread one column of words, so the padding mask is
// fixed per thread and no index needs a division. Its u32 sum (at most 8 × 256 × 4 × 255² < 2³²)
// is added to a 64-bit (lo, hi) counter pair with two u32 atomics: exact, so the GPU equals the
// CPU bit for bit.

struct Params {
    width: vec4<u32>,        // per plane, pixels
    height: vec4<u32>,       // per plane, rows
    stride_words: vec4<u32>, // per plane, u32 words per row
    offset_words: vec4<u32>, // per plane, first word in the frame buffer
    out_word: u32,           // first counter in `out`: plane p at out_word + 2p (lo), + 1 (hi)
    threshold: u32,          // unused here (shared layout with frame_stats.wgsl)
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read_write> out: array<atomic<u32>>;

const WORKGROUP: u32 = 256u;
const ROWS_PER_GROUP: u32 = 8u;

var<workgroup> group_sum: atomic<u32>;

// Bytes of column `col` inside the picture (the rest of a row's last word is padding).
fn valid_mask(width: u32, col: u32) -> u32 {
    let left = width - col * 4u;
    if left >= 4u {
        return 0xffffffffu;
    }
    return (1u << (left * 8u)) - 1u;
}

fn squared_differences(x: u32, y: u32) -> u32 {
    var sum = 0u;
    for (var j = 0u; j < 32u; j += 8u) {
        let p = (x >> j) & 0xffu;
        let q = (y >> j) & 0xffu;
        let d = max(p, q) - min(p, q);
        sum += d * d;
    }
    return sum;
}

@compute @workgroup_size(256)
fn sse(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = wg.z;
    let col = wg.x * WORKGROUP + lid;
    let stride = params.stride_words[p];
    var sum = 0u;
    if col < stride {
        let m = valid_mask(params.width[p], col);
        let y0 = wg.y * ROWS_PER_GROUP;
        let y1 = min(y0 + ROWS_PER_GROUP, params.height[p]);
        var i = params.offset_words[p] + y0 * stride + col;
        for (var y = y0; y < y1; y++) {
            sum += squared_differences(a[i] & m, b[i] & m);
            i += stride;
        }
    }
    if sum != 0u {
        atomicAdd(&group_sum, sum);
    }
    workgroupBarrier();
    if lid == 0u {
        let total = atomicLoad(&group_sum);
        let slot = params.out_word + 2u * p;
        if total != 0u {
            let old = atomicAdd(&out[slot], total);
            if old > 0xffffffffu - total {
                atomicAdd(&out[slot + 1u], 1u);
            }
        }
    }
}
