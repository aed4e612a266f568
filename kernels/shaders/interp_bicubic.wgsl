// Bicubic resize of planar f32 channels (ncnn Interp resize_type 3 = ONNX Resize cubic):
// Keys cubic with a = -0.75, half-pixel centres, source indices clamped to the image (edge pixels
// replicated). `inv_scale` = 1 / the op's scale: source x = (x + 0.5) * inv_scale - 0.5.
// The final x2/x3 step of realesr-animevideov3 (its x4 network, then 0.5 or 0.75).

struct Params {
    in_width: u32,
    in_height: u32,
    out_width: u32,
    out_height: u32,
    channels: u32,
    grid_width: u32,
    inv_scale_x: f32,
    inv_scale_y: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

const A: f32 = -0.75;

fn cubic(d: f32) -> f32 {
    let x = abs(d);
    if (x <= 1.0) {
        return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    }
    if (x < 2.0) {
        return ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    }
    return 0.0;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let ow = params.out_width;
    let oh = params.out_height;
    let i = id.x + id.y * params.grid_width;
    if (i >= ow * oh) {
        return;
    }
    let ox = i % ow;
    let oy = i / ow;
    let fx = (f32(ox) + 0.5) * params.inv_scale_x - 0.5;
    let fy = (f32(oy) + 0.5) * params.inv_scale_y - 0.5;
    let sx = floor(fx);
    let sy = floor(fy);
    let tx = fx - sx;
    let ty = fy - sy;
    let wx = vec4<f32>(cubic(tx + 1.0), cubic(tx), cubic(1.0 - tx), cubic(2.0 - tx));
    let wy = vec4<f32>(cubic(ty + 1.0), cubic(ty), cubic(1.0 - ty), cubic(2.0 - ty));
    let max_x = i32(params.in_width) - 1;
    let max_y = i32(params.in_height) - 1;
    var xs: vec4<u32>;
    var ys: vec4<u32>;
    for (var k = 0; k < 4; k++) {
        xs[k] = u32(clamp(i32(sx) + k - 1, 0, max_x));
        ys[k] = u32(clamp(i32(sy) + k - 1, 0, max_y));
    }
    let plane = params.in_width * params.in_height;
    for (var c = 0u; c < params.channels; c++) {
        var v = 0.0;
        for (var ky = 0; ky < 4; ky++) {
            let row = c * plane + ys[ky] * params.in_width;
            let r = vec4<f32>(src[row + xs[0]], src[row + xs[1]], src[row + xs[2]], src[row + xs[3]]);
            v += wy[ky] * dot(wx, r);
        }
        dst[c * ow * oh + i] = v;
    }
}
