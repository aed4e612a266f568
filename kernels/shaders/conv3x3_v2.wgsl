// 3x3 convolution, stride 1, zero padding 1, NCHW planar, + bias + per-channel slope activation
// (v >= 0 ? v : v * slope[oc]: PReLU, LeakyReLU, ReLU with slope 0, none with slope 1).
// Variant v2 (AIPROD_WGPU_CONV=v2; v1 is `conv3x3.wgsl`, the default v3 `conv3x3_v3.wgsl`).
//
// One workgroup computes a 16x16 output tile for OC_PER = 16 output channels; each of its 64
// invocations computes a 2x2 block of pixels for all 16 channels (64 accumulators). Per input
// channel an invocation reads 16 input values and 36 vec4 weights from workgroup memory for 576
// multiply-adds (v1: 16 + 72 scalar reads for 288), and every weight read is the same address
// for the whole workgroup (a broadcast).
// Input channels are staged CI_CHUNK at a time: the 18x18 tile (1-pixel halo, zeros outside the
// image) and the matching weights go through workgroup memory (14976 bytes: under the 16 KiB
// WebGPU default).
//
// Weights arrive pre-arranged by the host as [oc_group][ci (padded)][tap 9][OC_PER], padded with
// zeros to whole groups and chunks, so one chunk's weights are contiguous and the 4 output
// channels of a vec4 are adjacent.
//
// `Storage` is the element type of activations and weights in memory; the host swaps this alias
// for f16 (with `enable f16;`) on adapters with shader-f16. Arithmetic is always f32.
alias Storage = f32;

const TILE: u32 = 16u;
const HALO: u32 = 18u; // TILE + 2
const OC_PER: u32 = 16u;
const OC_VEC: u32 = 4u; // OC_PER / 4
const CI_CHUNK: u32 = 8u;
const THREADS: u32 = 64u;
const IN_TILE: u32 = 2592u; // CI_CHUNK * HALO * HALO
const W_TILE: u32 = 1152u; // CI_CHUNK * 9 * OC_PER
const W_VEC: u32 = 288u; // W_TILE / 4

struct Params {
    width: u32,
    height: u32,
    in_channels: u32,
    in_channels_padded: u32,
    out_channels: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<Storage>;
@group(0) @binding(2) var<storage, read> weights: array<Storage>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> slopes: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<Storage>;

var<workgroup> tile_in: array<f32, IN_TILE>;
var<workgroup> tile_w: array<vec4<f32>, W_VEC>;

@compute @workgroup_size(8, 8, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = params.width;
    let h = params.height;
    let plane = w * h;
    let x0 = wg.x * TILE;
    let y0 = wg.y * TILE;
    let group = wg.z;
    let lx = lid3.x * 2u;
    let ly = lid3.y * 2u;

    // acc[p * OC_VEC + q]: pixel p of the 2x2 block ((0,0), (0,1), (1,0), (1,1)), output
    // channels 4q..4q+3 of the group
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var ci0 = 0u; ci0 < params.in_channels_padded; ci0 += CI_CHUNK) {
        // stage the input tile (with halo) of CI_CHUNK channels
        for (var i = lid; i < IN_TILE; i += THREADS) {
            let ci = i / (HALO * HALO);
            let r = i % (HALO * HALO);
            let gx = i32(x0 + r % HALO) - 1;
            let gy = i32(y0 + r / HALO) - 1;
            var v = 0.0;
            if (ci0 + ci < params.in_channels && gx >= 0 && gy >= 0 && gx < i32(w) && gy < i32(h)) {
                v = f32(src[(ci0 + ci) * plane + u32(gy) * w + u32(gx)]);
            }
            tile_in[i] = v;
        }
        // and the weights of this output-channel group for those channels
        let wbase = (group * params.in_channels_padded + ci0) * 9u * OC_PER;
        for (var i = lid; i < W_VEC; i += THREADS) {
            let k = wbase + i * 4u;
            tile_w[i] = vec4<f32>(f32(weights[k]), f32(weights[k + 1u]), f32(weights[k + 2u]),
                                  f32(weights[k + 3u]));
        }
        workgroupBarrier();

        for (var ci = 0u; ci < CI_CHUNK; ci++) {
            // the 4x4 neighbourhood of this invocation's 2x2 block
            let b = ci * HALO * HALO + ly * HALO + lx;
            let r0 = b;
            let r1 = b + HALO;
            let r2 = b + 2u * HALO;
            let r3 = b + 3u * HALO;
            let v00 = tile_in[r0];
            let v01 = tile_in[r0 + 1u];
            let v02 = tile_in[r0 + 2u];
            let v03 = tile_in[r0 + 3u];
            let v10 = tile_in[r1];
            let v11 = tile_in[r1 + 1u];
            let v12 = tile_in[r1 + 2u];
            let v13 = tile_in[r1 + 3u];
            let v20 = tile_in[r2];
            let v21 = tile_in[r2 + 1u];
            let v22 = tile_in[r2 + 2u];
            let v23 = tile_in[r2 + 3u];
            let v30 = tile_in[r3];
            let v31 = tile_in[r3 + 1u];
            let v32 = tile_in[r3 + 2u];
            let v33 = tile_in[r3 + 3u];
            for (var q = 0u; q < OC_VEC; q++) {
                // weights of tap t for channels 4q..4q+3: tile_w[(ci * 9 + t) * OC_VEC + q]
                let wk = ci * 9u * OC_VEC + q;
                var a0 = acc[q];
                var a1 = acc[OC_VEC + q];
                var a2 = acc[2u * OC_VEC + q];
                var a3 = acc[3u * OC_VEC + q];
                var w: vec4<f32>;
                w = tile_w[wk + 0u];
                a0 = fma(vec4<f32>(v00), w, a0);
                a1 = fma(vec4<f32>(v01), w, a1);
                a2 = fma(vec4<f32>(v10), w, a2);
                a3 = fma(vec4<f32>(v11), w, a3);
                w = tile_w[wk + 4u];
                a0 = fma(vec4<f32>(v01), w, a0);
                a1 = fma(vec4<f32>(v02), w, a1);
                a2 = fma(vec4<f32>(v11), w, a2);
                a3 = fma(vec4<f32>(v12), w, a3);
                w = tile_w[wk + 8u];
                a0 = fma(vec4<f32>(v02), w, a0);
                a1 = fma(vec4<f32>(v03), w, a1);
                a2 = fma(vec4<f32>(v12), w, a2);
                a3 = fma(vec4<f32>(v13), w, a3);
                w = tile_w[wk + 12u];
                a0 = fma(vec4<f32>(v10), w, a0);
                a1 = fma(vec4<f32>(v11), w, a1);
                a2 = fma(vec4<f32>(v20), w, a2);
                a3 = fma(vec4<f32>(v21), w, a3);
                w = tile_w[wk + 16u];
                a0 = fma(vec4<f32>(v11), w, a0);
                a1 = fma(vec4<f32>(v12), w, a1);
                a2 = fma(vec4<f32>(v21), w, a2);
                a3 = fma(vec4<f32>(v22), w, a3);
                w = tile_w[wk + 20u];
                a0 = fma(vec4<f32>(v12), w, a0);
                a1 = fma(vec4<f32>(v13), w, a1);
                a2 = fma(vec4<f32>(v22), w, a2);
                a3 = fma(vec4<f32>(v23), w, a3);
                w = tile_w[wk + 24u];
                a0 = fma(vec4<f32>(v20), w, a0);
                a1 = fma(vec4<f32>(v21), w, a1);
                a2 = fma(vec4<f32>(v30), w, a2);
                a3 = fma(vec4<f32>(v31), w, a3);
                w = tile_w[wk + 28u];
                a0 = fma(vec4<f32>(v21), w, a0);
                a1 = fma(vec4<f32>(v22), w, a1);
                a2 = fma(vec4<f32>(v31), w, a2);
                a3 = fma(vec4<f32>(v32), w, a3);
                w = tile_w[wk + 32u];
                a0 = fma(vec4<f32>(v22), w, a0);
                a1 = fma(vec4<f32>(v23), w, a1);
                a2 = fma(vec4<f32>(v32), w, a2);
                a3 = fma(vec4<f32>(v33), w, a3);
                acc[q] = a0;
                acc[OC_VEC + q] = a1;
                acc[2u * OC_VEC + q] = a2;
                acc[3u * OC_VEC + q] = a3;
            }
        }
        workgroupBarrier();
    }

    let x = x0 + lx;
    let y = y0 + ly;
    let in_x0 = x < w;
    let in_x1 = x + 1u < w;
    for (var q = 0u; q < OC_VEC; q++) {
        for (var j = 0u; j < 4u; j++) {
            let oc = group * OC_PER + q * 4u + j;
            if (oc >= params.out_channels) {
                break;
            }
            let v = vec4<f32>(acc[q][j], acc[OC_VEC + q][j], acc[2u * OC_VEC + q][j],
                              acc[3u * OC_VEC + q][j]) + vec4<f32>(bias[oc]);
            let r = select(v * slopes[oc], v, v >= vec4<f32>(0.0));
            let base = oc * plane;
            if (y < h) {
                if (in_x0) { dst[base + y * w + x] = Storage(r.x); }
                if (in_x1) { dst[base + y * w + x + 1u] = Storage(r.y); }
            }
            if (y + 1u < h) {
                if (in_x0) { dst[base + (y + 1u) * w + x] = Storage(r.z); }
                if (in_x1) { dst[base + (y + 1u) * w + x + 1u] = Storage(r.w); }
            }
        }
    }
}
