// vf_ssim (x264's SSIM) of two 8-bit planar frames laid out as in metrics.rs, per plane, in three
// passes that keep the CPU's arithmetic and order:
//   `blocks`:  Σa, Σb, Σa²+Σb², Σab over each 4×4 block (exact u32);
//   `windows`: each 8×8 window on the 4-pixel grid (2×2 blocks) → ssim_end1 in i32, then f32
//              exactly as FFmpeg writes it (C1, C2 scaled by 64 and 64·63);
//   `rows`:    each row of windows summed left to right in f32 (FFmpeg's ssim_endn).
// The host adds the row sums in f64 and divides by the window count. Integer parts are exact;
// the f32 parts differ from the CPU only where the device's division is not correctly rounded.

struct Params {
    width: vec4<u32>,         // per plane, pixels
    height: vec4<u32>,        // per plane, rows
    stride_words: vec4<u32>,  // per plane, u32 words per row
    offset_words: vec4<u32>,  // per plane, first word in the frame buffer
    block_offset: vec4<u32>,  // per plane, first block in `sums`
    window_offset: vec4<u32>, // per plane, first window in `windows`
    row_offset: vec4<u32>,    // per plane, first row sum in `rows` (a word index)
}

// `blocks`
@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read_write> sums_out: array<vec4<u32>>;

// `windows`
@group(0) @binding(0) var<uniform> window_params: Params;
@group(0) @binding(1) var<storage, read> sums: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> windows_out: array<f32>;

// `rows`
@group(0) @binding(0) var<uniform> row_params: Params;
@group(0) @binding(1) var<storage, read> windows: array<f32>;
@group(0) @binding(2) var<storage, read_write> rows_out: array<f32>;

// (int)(.01*.01*255*255*64 + .5) and (int)(.03*.03*255*255*64*63 + .5), as vf_ssim.
const C1: i32 = 416;
const C2: i32 = 235963;

fn blocks_across(p: u32, w: vec4<u32>, h: vec4<u32>) -> vec2<u32> {
    return vec2<u32>(w[p] / 4u, h[p] / 4u);
}

@compute @workgroup_size(64)
fn blocks(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = id.z;
    let n = blocks_across(p, params.width, params.height);
    if n.x < 2u || n.y < 2u || id.x >= n.x || id.y >= n.y {
        return;
    }
    let stride = params.stride_words[p];
    var word = params.offset_words[p] + 4u * id.y * stride + id.x;
    var s = vec4<u32>(0u);
    for (var dy = 0u; dy < 4u; dy++) {
        let x = a[word];
        let y = b[word];
        for (var j = 0u; j < 32u; j += 8u) {
            let u = (x >> j) & 0xffu;
            let v = (y >> j) & 0xffu;
            s += vec4<u32>(u, v, u * u + v * v, u * v);
        }
        word += stride;
    }
    sums_out[params.block_offset[p] + id.y * n.x + id.x] = s;
}

fn ssim_end1(s1: i32, s2: i32, ss: i32, s12: i32) -> f32 {
    let vars = ss * 64 - s1 * s1 - s2 * s2;
    let covar = s12 * 64 - s1 * s2;
    let num = f32(2 * s1 * s2 + C1) * f32(2 * covar + C2);
    let den = f32(s1 * s1 + s2 * s2 + C1) * f32(vars + C2);
    return num / den;
}

@compute @workgroup_size(64)
fn windows_of(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = id.z;
    let n = blocks_across(p, window_params.width, window_params.height);
    if n.x < 2u || n.y < 2u || id.x >= n.x - 1u || id.y >= n.y - 1u {
        return;
    }
    let top = window_params.block_offset[p] + id.y * n.x + id.x;
    let s = vec4<i32>(sums[top] + sums[top + 1u] + sums[top + n.x] + sums[top + n.x + 1u]);
    windows_out[window_params.window_offset[p] + id.y * (n.x - 1u) + id.x] =
        ssim_end1(s.x, s.y, s.z, s.w);
}

@compute @workgroup_size(64)
fn rows_of(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = id.z;
    let n = blocks_across(p, row_params.width, row_params.height);
    if n.x < 2u || n.y < 2u || id.x >= n.y - 1u {
        return;
    }
    let across = n.x - 1u;
    let first = row_params.window_offset[p] + id.x * across;
    var line = 0.0f;
    for (var x = 0u; x < across; x++) {
        line += windows[first + x];
    }
    rows_out[row_params.row_offset[p] + id.x] = line;
}
