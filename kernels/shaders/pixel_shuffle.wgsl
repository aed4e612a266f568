// PyTorch pixel_shuffle (ONNX DepthToSpace, mode CRD) of `src` (C*r*r planes of width x height)
// fused with the residual of SRVGGNetCompact: the nearest-neighbour upsampled `skip` (C planes of
// width x height) is added. Output: C planes of (r*width) x (r*height), always f32.
//
//   dst[c][y][x] = src[c*r*r + (y % r)*r + x % r][y / r][x / r] + skip[c][y / r][x / r]
//
// `Storage` is the element type of `src` and `skip`; the host swaps it for f16 (with
// `enable f16;`) when the network runs with fp16 storage.
alias Storage = f32;

struct Params {
    width: u32,
    height: u32,
    channels: u32,
    factor: u32,
    // invocations per row of the dispatch grid (see Context::grid)
    grid_width: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<Storage>;
@group(0) @binding(2) var<storage, read> skip: array<Storage>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = params.factor;
    let ow = params.width * r;
    let oh = params.height * r;
    let i = id.x + id.y * params.grid_width;
    if (i >= ow * oh) {
        return;
    }
    let x = i % ow;
    let y = i / ow;
    let plane = params.width * params.height;
    let at = (y / r) * params.width + x / r;
    let sub = (y % r) * r + x % r;
    for (var c = 0u; c < params.channels; c++) {
        let v = f32(src[(c * r * r + sub) * plane + at]) + f32(skip[c * plane + at]);
        dst[c * ow * oh + i] = v;
    }
}
