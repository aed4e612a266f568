// Separable resize: one pass along x, one along y, each a weighted sum of `taps` source samples
// (indices clamped to the edge). Weights come precomputed from the host (resize.rs), so the
// shader and the CPU reference (`resize::cpu`) use the same ones; f32 sums run in the same order.
//
// table = [start index per output (i32) | f32 weights (out × taps) | 14-bit fixed weights (i32)].

struct Params {
    in_w: u32, in_h: u32, out_w: u32, out_h: u32,
    taps: u32, in_offset: u32, in_stride: u32, row_invocations: u32,
    weights_at: u32, fixed_at: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

fn source_index(start: i32, k: u32, len: u32) -> u32 {
    return u32(clamp(start + i32(k), 0, i32(len) - 1));
}

// f32 CHW, along x: (c, in_h, in_w) -> (c, in_h, out_w); z = channel.
@compute @workgroup_size(16, 16)
fn h_f32(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.out_w || id.y >= p.out_h { return; }
    let start = bitcast<i32>(table[id.x]);
    let row = (id.z * p.in_h + id.y) * p.in_w;
    let w = p.weights_at + id.x * p.taps;
    var acc = 0.0;
    for (var k = 0u; k < p.taps; k++) {
        acc += bitcast<f32>(table[w + k]) * bitcast<f32>(src[row + source_index(start, k, p.in_w)]);
    }
    dst[(id.z * p.out_h + id.y) * p.out_w + id.x] = bitcast<u32>(acc);
}

// f32 CHW, along y: (c, in_h, w) -> (c, out_h, w).
@compute @workgroup_size(16, 16)
fn v_f32(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.out_w || id.y >= p.out_h { return; }
    let start = bitcast<i32>(table[id.y]);
    let plane = id.z * p.in_h;
    let w = p.weights_at + id.y * p.taps;
    var acc = 0.0;
    for (var k = 0u; k < p.taps; k++) {
        let sy = source_index(start, k, p.in_h);
        acc += bitcast<f32>(table[w + k]) * bitcast<f32>(src[(plane + sy) * p.in_w + id.x]);
    }
    dst[(id.z * p.out_h + id.y) * p.out_w + id.x] = bitcast<u32>(acc);
}

fn byte_at(a: u32) -> i32 {
    return i32((src[a >> 2u] >> ((a & 3u) * 8u)) & 0xffu);
}

// 8-bit plane (any offset and stride), along x, into i32 with 7 fractional bits.
@compute @workgroup_size(16, 16)
fn h_u8(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.out_w || id.y >= p.out_h { return; }
    let start = bitcast<i32>(table[id.x]);
    let row = p.in_offset + id.y * p.in_stride;
    let w = p.fixed_at + id.x * p.taps;
    var acc = 0;
    for (var k = 0u; k < p.taps; k++) {
        acc += bitcast<i32>(table[w + k]) * byte_at(row + source_index(start, k, p.in_w));
    }
    dst[id.y * p.out_w + id.x] = bitcast<u32>((acc + 64) >> 7u);
}

// i32 (7 fractional bits) along y into a packed 8-bit plane; one invocation writes one word.
@compute @workgroup_size(64)
fn v_u8(@builtin(global_invocation_id) id: vec3<u32>) {
    let word = id.x + id.y * p.row_invocations;
    let len = p.out_w * p.out_h;
    if word >= (len + 3u) / 4u { return; }
    var packed = 0u;
    for (var b = 0u; b < 4u; b++) {
        let i = 4u * word + b;
        if i < len {
            let x = i % p.out_w;
            let y = i / p.out_w;
            let start = bitcast<i32>(table[y]);
            let w = p.fixed_at + y * p.taps;
            var acc = 0;
            for (var k = 0u; k < p.taps; k++) {
                acc += bitcast<i32>(table[w + k]) * bitcast<i32>(src[source_index(start, k, p.in_h) * p.in_w + x]);
            }
            // 14 + 7 fractional bits; 2^20 rounds.
            packed |= u32(clamp((acc + 1048576) >> 21u, 0, 255)) << (8u * b);
        }
    }
    dst[word] = packed;
}
