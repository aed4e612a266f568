// Per-frame statistics for vf_blackdetect and vf_freezedetect on 8-bit planar frames laid out as
// in metrics.rs (planes back to back, rows padded to a whole u32 word; padding ignored):
// `black` counts luma pixels at or below a threshold; `sad` sums absolute differences between two
// frames per plane (the numerator of freezedetect's MAFD). A workgroup covers 256 words across
// and ROWS_PER_GROUP rows of one plane (z), one column of words per thread; both are exact
// integer sums: u32 per workgroup, then a 64-bit (lo, hi) counter pair kept with two u32 atomics.

struct Params {
    width: vec4<u32>,        // per plane, pixels
    height: vec4<u32>,       // per plane, rows
    stride_words: vec4<u32>, // per plane, u32 words per row
    offset_words: vec4<u32>, // per plane, first word in the frame buffer
    out_word: u32,           // first counter in `out`: plane p at out_word + 2p (lo), + 1 (hi)
    threshold: u32,          // `black`: luma values <= threshold count as black
    pad0: u32,
    pad1: u32,
}

// `sad`
@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read_write> out: array<atomic<u32>>;

// `black` binds only the frame, the parameters and the counters.
@group(0) @binding(1) var<uniform> black_params: Params;
@group(0) @binding(2) var<storage, read_write> black_out: array<atomic<u32>>;

const WORKGROUP: u32 = 256u;
const ROWS_PER_GROUP: u32 = 8u;

var<workgroup> group_sum: atomic<u32>;

// Pixels of column `col` inside the picture (1 to 4; the rest of a row's last word is padding).
fn valid_bits(width: u32, col: u32) -> u32 {
    return min(4u, width - col * 4u) * 8u;
}

// The workgroup's sum of every thread's `v` (the same value in every thread).
fn group_total(v: u32) -> u32 {
    if v != 0u {
        atomicAdd(&group_sum, v);
    }
    workgroupBarrier();
    return atomicLoad(&group_sum);
}

@compute @workgroup_size(256)
fn sad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = wg.z;
    let col = wg.x * WORKGROUP + lid;
    let stride = params.stride_words[p];
    var sum = 0u;
    if col < stride {
        let bits = valid_bits(params.width[p], col);
        let y0 = wg.y * ROWS_PER_GROUP;
        let y1 = min(y0 + ROWS_PER_GROUP, params.height[p]);
        var i = params.offset_words[p] + y0 * stride + col;
        for (var y = y0; y < y1; y++) {
            let x = a[i];
            let z = b[i];
            for (var j = 0u; j < bits; j += 8u) {
                let u = (x >> j) & 0xffu;
                let v = (z >> j) & 0xffu;
                sum += max(u, v) - min(u, v);
            }
            i += stride;
        }
    }
    let total = group_total(sum);
    if lid == 0u && total != 0u {
        let slot = params.out_word + 2u * p;
        let old = atomicAdd(&out[slot], total);
        if old > 0xffffffffu - total {
            atomicAdd(&out[slot + 1u], 1u);
        }
    }
}

@compute @workgroup_size(256)
fn black(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = wg.x * WORKGROUP + lid;
    let stride = black_params.stride_words[0];
    let th = black_params.threshold;
    var count = 0u;
    if col < stride {
        let bits = valid_bits(black_params.width[0], col);
        let y0 = wg.y * ROWS_PER_GROUP;
        let y1 = min(y0 + ROWS_PER_GROUP, black_params.height[0]);
        var i = black_params.offset_words[0] + y0 * stride + col;
        for (var y = y0; y < y1; y++) {
            let x = a[i];
            for (var j = 0u; j < bits; j += 8u) {
                count += select(0u, 1u, ((x >> j) & 0xffu) <= th);
            }
            i += stride;
        }
    }
    let total = group_total(count);
    if lid == 0u && total != 0u {
        let slot = black_params.out_word;
        let old = atomicAdd(&black_out[slot], total);
        if old > 0xffffffffu - total {
            atomicAdd(&black_out[slot + 1u], 1u);
        }
    }
}
