// 3x3 convolution, stride 1, zero padding 1, NCHW planar, + bias + per-channel slope activation
// (v >= 0 ? v : v * slope[oc]: PReLU, LeakyReLU, ReLU with slope 0, none with slope 1).
// Variant v1 (AIPROD_WGPU_CONV=v1), kept for A/B runs; the default is conv3x3_v3.wgsl.
//
// One workgroup computes a 16x16 output tile for OC_PER output channels; each of its 64
// invocations computes a 2x2 block of pixels for all OC_PER channels (32 accumulators), so every
// input value read from workgroup memory feeds OC_PER channels and every weight feeds 4 pixels.
// Input channels are staged CI_CHUNK at a time: the 18x18 tile (1-pixel halo, zeros outside the
// image) and the matching weights go through workgroup memory.
//
// Weights arrive pre-arranged by the host as [oc_group][ci (padded)][OC_PER][9], padded with
// zeros to whole groups and chunks, so one chunk's weights are contiguous.
//
// `Storage` is the element type of activations and weights in memory; the host swaps this alias
// for f16 (with `enable f16;`) on adapters with shader-f16. Arithmetic is always f32.
alias Storage = f32;

const TILE: u32 = 16u;
const HALO: u32 = 18u; // TILE + 2
const OC_PER: u32 = 8u;
const CI_CHUNK: u32 = 8u;
const THREADS: u32 = 64u;
const IN_TILE: u32 = 2592u; // CI_CHUNK * HALO * HALO
const W_TILE: u32 = 576u; // CI_CHUNK * OC_PER * 9

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
var<workgroup> tile_w: array<f32, W_TILE>;

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

    var acc: array<vec4<f32>, 8>;
    for (var o = 0u; o < OC_PER; o++) {
        acc[o] = vec4<f32>(0.0);
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
        let wbase = (group * params.in_channels_padded + ci0) * OC_PER * 9u;
        for (var i = lid; i < W_TILE; i += THREADS) {
            tile_w[i] = f32(weights[wbase + i]);
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
            // tap (ky, kx) for the pixels (0,0), (0,1), (1,0), (1,1) of the block
            let p0 = vec4<f32>(v00, v01, v10, v11);
            let p1 = vec4<f32>(v01, v02, v11, v12);
            let p2 = vec4<f32>(v02, v03, v12, v13);
            let p3 = vec4<f32>(v10, v11, v20, v21);
            let p4 = vec4<f32>(v11, v12, v21, v22);
            let p5 = vec4<f32>(v12, v13, v22, v23);
            let p6 = vec4<f32>(v20, v21, v30, v31);
            let p7 = vec4<f32>(v21, v22, v31, v32);
            let p8 = vec4<f32>(v22, v23, v32, v33);
            for (var o = 0u; o < OC_PER; o++) {
                let k = (ci * OC_PER + o) * 9u;
                var a = acc[o];
                a = fma(vec4<f32>(tile_w[k]), p0, a);
                a = fma(vec4<f32>(tile_w[k + 1u]), p1, a);
                a = fma(vec4<f32>(tile_w[k + 2u]), p2, a);
                a = fma(vec4<f32>(tile_w[k + 3u]), p3, a);
                a = fma(vec4<f32>(tile_w[k + 4u]), p4, a);
                a = fma(vec4<f32>(tile_w[k + 5u]), p5, a);
                a = fma(vec4<f32>(tile_w[k + 6u]), p6, a);
                a = fma(vec4<f32>(tile_w[k + 7u]), p7, a);
                a = fma(vec4<f32>(tile_w[k + 8u]), p8, a);
                acc[o] = a;
            }
        }
        workgroupBarrier();
    }

    let x = x0 + lx;
    let y = y0 + ly;
    for (var o = 0u; o < OC_PER; o++) {
        let oc = group * OC_PER + o;
        if (oc >= params.out_channels) {
            break;
        }
        let v = acc[o] + vec4<f32>(bias[oc]);
        let r = select(v * slopes[oc], v, v >= vec4<f32>(0.0));
        let base = oc * plane;
        if (y < h) {
            if (x < w) { dst[base + y * w + x] = Storage(r.x); }
            if (x + 1u < w) { dst[base + y * w + x + 1u] = Storage(r.y); }
        }
        if (y + 1u < h) {
            if (x < w) { dst[base + (y + 1u) * w + x] = Storage(r.z); }
            if (x + 1u < w) { dst[base + (y + 1u) * w + x + 1u] = Storage(r.w); }
        }
    }
}
