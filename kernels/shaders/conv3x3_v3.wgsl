// 3x3 convolution, stride 1, zero padding 1, NCHW planar, + bias + per-channel slope activation
// (v >= 0 ? v : v * slope[oc]). Variant v3, the default (see conv3x3_v2.wgsl for the scheme):
// a 32x16 output tile for 16 output channels per workgroup, each of the 64 invocations a 4x2
// pixel block x 16 channels (128 accumulators); input channels staged 4 at a time. Per input
// channel an invocation reads 24 input values and 36 vec4 weights for 1152 multiply-adds.
// Weights: [oc_group][ci (padded to 8)][tap 9][16], like v2. Workgroup memory: 12096 bytes.
// H100 (Vulkan), 64->64 + PReLU 512x512 fp32: 9.9 TFLOP/s (v2 7.8, v1 4.1).
alias Storage = f32;

const TILE_W: u32 = 32u;
const TILE_H: u32 = 16u;
const HALO_W: u32 = 34u; // TILE_W + 2
const HALO_H: u32 = 18u; // TILE_H + 2
const OC_PER: u32 = 16u;
const OC_VEC: u32 = 4u; // OC_PER / 4
const CI_CHUNK: u32 = 4u;
const THREADS: u32 = 64u;
const IN_TILE: u32 = 2448u; // CI_CHUNK * HALO_W * HALO_H
const W_VEC: u32 = 144u; // CI_CHUNK * 9 * OC_PER / 4

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
    let x0 = wg.x * TILE_W;
    let y0 = wg.y * TILE_H;
    let group = wg.z;
    let lx = lid3.x * 4u;
    let ly = lid3.y * 2u;

    // acc[p * OC_VEC + q]: pixel p = 4 * row + column of the 4x2 block, output channels
    // 4q..4q+3 of the group
    var acc: array<vec4<f32>, 32>;
    for (var i = 0u; i < 32u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var ci0 = 0u; ci0 < params.in_channels_padded; ci0 += CI_CHUNK) {
        // stage the input tile (with halo) of CI_CHUNK channels
        for (var i = lid; i < IN_TILE; i += THREADS) {
            let ci = i / (HALO_W * HALO_H);
            let r = i % (HALO_W * HALO_H);
            let gx = i32(x0 + r % HALO_W) - 1;
            let gy = i32(y0 + r / HALO_W) - 1;
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
            // the 6x4 neighbourhood of this invocation's 4x2 block
            let b = ci * HALO_W * HALO_H + ly * HALO_W + lx;
            let v00 = tile_in[b + 0u];
            let v01 = tile_in[b + 1u];
            let v02 = tile_in[b + 2u];
            let v03 = tile_in[b + 3u];
            let v04 = tile_in[b + 4u];
            let v05 = tile_in[b + 5u];
            let v10 = tile_in[b + 34u];
            let v11 = tile_in[b + 35u];
            let v12 = tile_in[b + 36u];
            let v13 = tile_in[b + 37u];
            let v14 = tile_in[b + 38u];
            let v15 = tile_in[b + 39u];
            let v20 = tile_in[b + 68u];
            let v21 = tile_in[b + 69u];
            let v22 = tile_in[b + 70u];
            let v23 = tile_in[b + 71u];
            let v24 = tile_in[b + 72u];
            let v25 = tile_in[b + 73u];
            let v30 = tile_in[b + 102u];
            let v31 = tile_in[b + 103u];
            let v32 = tile_in[b + 104u];
            let v33 = tile_in[b + 105u];
            let v34 = tile_in[b + 106u];
            let v35 = tile_in[b + 107u];
            for (var q = 0u; q < OC_VEC; q++) {
                let wk = ci * 9u * OC_VEC + q;
                var a0 = acc[0u * OC_VEC + q];
                var a1 = acc[1u * OC_VEC + q];
                var a2 = acc[2u * OC_VEC + q];
                var a3 = acc[3u * OC_VEC + q];
                var a4 = acc[4u * OC_VEC + q];
                var a5 = acc[5u * OC_VEC + q];
                var a6 = acc[6u * OC_VEC + q];
                var a7 = acc[7u * OC_VEC + q];
                var w: vec4<f32>;
                w = tile_w[wk + 0u];
                a0 = fma(vec4<f32>(v00), w, a0);
                a1 = fma(vec4<f32>(v01), w, a1);
                a2 = fma(vec4<f32>(v02), w, a2);
                a3 = fma(vec4<f32>(v03), w, a3);
                a4 = fma(vec4<f32>(v10), w, a4);
                a5 = fma(vec4<f32>(v11), w, a5);
                a6 = fma(vec4<f32>(v12), w, a6);
                a7 = fma(vec4<f32>(v13), w, a7);
                w = tile_w[wk + 4u];
                a0 = fma(vec4<f32>(v01), w, a0);
                a1 = fma(vec4<f32>(v02), w, a1);
                a2 = fma(vec4<f32>(v03), w, a2);
                a3 = fma(vec4<f32>(v04), w, a3);
                a4 = fma(vec4<f32>(v11), w, a4);
                a5 = fma(vec4<f32>(v12), w, a5);
                a6 = fma(vec4<f32>(v13), w, a6);
                a7 = fma(vec4<f32>(v14), w, a7);
                w = tile_w[wk + 8u];
                a0 = fma(vec4<f32>(v02), w, a0);
                a1 = fma(vec4<f32>(v03), w, a1);
                a2 = fma(vec4<f32>(v04), w, a2);
                a3 = fma(vec4<f32>(v05), w, a3);
                a4 = fma(vec4<f32>(v12), w, a4);
                a5 = fma(vec4<f32>(v13), w, a5);
                a6 = fma(vec4<f32>(v14), w, a6);
                a7 = fma(vec4<f32>(v15), w, a7);
                w = tile_w[wk + 12u];
                a0 = fma(vec4<f32>(v10), w, a0);
                a1 = fma(vec4<f32>(v11), w, a1);
                a2 = fma(vec4<f32>(v12), w, a2);
                a3 = fma(vec4<f32>(v13), w, a3);
                a4 = fma(vec4<f32>(v20), w, a4);
                a5 = fma(vec4<f32>(v21), w, a5);
                a6 = fma(vec4<f32>(v22), w, a6);
                a7 = fma(vec4<f32>(v23), w, a7);
                w = tile_w[wk + 16u];
                a0 = fma(vec4<f32>(v11), w, a0);
                a1 = fma(vec4<f32>(v12), w, a1);
                a2 = fma(vec4<f32>(v13), w, a2);
                a3 = fma(vec4<f32>(v14), w, a3);
                a4 = fma(vec4<f32>(v21), w, a4);
                a5 = fma(vec4<f32>(v22), w, a5);
                a6 = fma(vec4<f32>(v23), w, a6);
                a7 = fma(vec4<f32>(v24), w, a7);
                w = tile_w[wk + 20u];
                a0 = fma(vec4<f32>(v12), w, a0);
                a1 = fma(vec4<f32>(v13), w, a1);
                a2 = fma(vec4<f32>(v14), w, a2);
                a3 = fma(vec4<f32>(v15), w, a3);
                a4 = fma(vec4<f32>(v22), w, a4);
                a5 = fma(vec4<f32>(v23), w, a5);
                a6 = fma(vec4<f32>(v24), w, a6);
                a7 = fma(vec4<f32>(v25), w, a7);
                w = tile_w[wk + 24u];
                a0 = fma(vec4<f32>(v20), w, a0);
                a1 = fma(vec4<f32>(v21), w, a1);
                a2 = fma(vec4<f32>(v22), w, a2);
                a3 = fma(vec4<f32>(v23), w, a3);
                a4 = fma(vec4<f32>(v30), w, a4);
                a5 = fma(vec4<f32>(v31), w, a5);
                a6 = fma(vec4<f32>(v32), w, a6);
                a7 = fma(vec4<f32>(v33), w, a7);
                w = tile_w[wk + 28u];
                a0 = fma(vec4<f32>(v21), w, a0);
                a1 = fma(vec4<f32>(v22), w, a1);
                a2 = fma(vec4<f32>(v23), w, a2);
                a3 = fma(vec4<f32>(v24), w, a3);
                a4 = fma(vec4<f32>(v31), w, a4);
                a5 = fma(vec4<f32>(v32), w, a5);
                a6 = fma(vec4<f32>(v33), w, a6);
                a7 = fma(vec4<f32>(v34), w, a7);
                w = tile_w[wk + 32u];
                a0 = fma(vec4<f32>(v22), w, a0);
                a1 = fma(vec4<f32>(v23), w, a1);
                a2 = fma(vec4<f32>(v24), w, a2);
                a3 = fma(vec4<f32>(v25), w, a3);
                a4 = fma(vec4<f32>(v32), w, a4);
                a5 = fma(vec4<f32>(v33), w, a5);
                a6 = fma(vec4<f32>(v34), w, a6);
                a7 = fma(vec4<f32>(v35), w, a7);
                acc[0u * OC_VEC + q] = a0;
                acc[1u * OC_VEC + q] = a1;
                acc[2u * OC_VEC + q] = a2;
                acc[3u * OC_VEC + q] = a3;
                acc[4u * OC_VEC + q] = a4;
                acc[5u * OC_VEC + q] = a5;
                acc[6u * OC_VEC + q] = a6;
                acc[7u * OC_VEC + q] = a7;
            }
        }
        workgroupBarrier();
    }

    for (var q = 0u; q < OC_VEC; q++) {
        for (var j = 0u; j < 4u; j++) {
            let oc = group * OC_PER + q * 4u + j;
            if (oc >= params.out_channels) {
                break;
            }
            let base = oc * plane;
            for (var p = 0u; p < 8u; p++) {
                let x = x0 + lx + p % 4u;
                let y = y0 + ly + p / 4u;
                var v = acc[p * OC_VEC + q][j] + bias[oc];
                v = select(v * slopes[oc], v, v >= 0.0);
                if (x < w && y < h) {
                    dst[base + y * w + x] = Storage(v);
                }
            }
        }
    }
}
