// Colour conversion between 8-bit YUV 4:2:0 (I420, NV12) and RGB (packed RGBA8 words, or planar
// f32 CHW in [0, 1]; with `extended` set the planar values are not clamped to [0, 1], so a
// YUV -> R'G'B' -> YUV round trip keeps colours outside the RGB cube). The CPU reference is `colour::cpu` in ../src/colour.rs and does the same
// arithmetic in the same order: the integer paths match it exactly.
//
// Buffers are arrays of u32 words; YUV bytes are addressed one by one (little-endian within a
// word) so planes may sit at any offset with any stride. f32 planes travel as bitcast words.

struct Params {
    width: u32, height: u32, chroma_w: u32, chroma_h: u32,
    nv12: u32, left_siting: u32, len_bytes: u32, row_invocations: u32,
    off_y: u32, off_u: u32, off_v: u32, stride_y: u32,
    stride_u: u32, stride_v: u32, y_off: i32, extended: u32,
    // YUV -> RGB, 16 fractional bits
    cy: i32, crv: i32, cgu: i32, cgv: i32,
    cbu: i32,
    // RGB -> YUV, 16 fractional bits
    yr: i32, yg: i32, yb: i32,
    ur: i32, ug: i32, ub: i32, vr: i32,
    vg: i32, vb: i32, _pad1: u32, _pad2: u32,
    // YUV -> planar f32 (output scaled to [0, 1])
    fcy: f32, fcrv: f32, fcgu: f32, fcgv: f32,
    fcbu: f32,
    // planar f32 -> YUV (input in [0, 1])
    fyr: f32, fyg: f32, fyb: f32,
    fur: f32, fug: f32, fub: f32, fvr: f32,
    fvg: f32, fvb: f32, _pad3: u32, _pad4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn byte_at(a: u32) -> i32 {
    return i32((src[a >> 2u] >> ((a & 3u) * 8u)) & 0xffu);
}

fn luma(x: u32, y: u32) -> i32 {
    return byte_at(p.off_y + y * p.stride_y + x);
}

// (U, V) of chroma sample (cx, cy), coordinates clamped to the plane.
fn chroma_at(cx: i32, cy: i32) -> vec2<i32> {
    let x = u32(clamp(cx, 0, i32(p.chroma_w) - 1));
    let y = u32(clamp(cy, 0, i32(p.chroma_h) - 1));
    if p.nv12 != 0u {
        let a = p.off_u + y * p.stride_u + 2u * x;
        return vec2<i32>(byte_at(a), byte_at(a + 1u));
    }
    return vec2<i32>(byte_at(p.off_u + y * p.stride_u + x), byte_at(p.off_v + y * p.stride_v + x));
}

// Bilinear chroma at luma pixel (x, y), times 16 (weights are quarters per axis). Vertically the
// chroma sample sits between luma rows 2k and 2k+1; horizontally at luma column 2k (left, MPEG-2)
// or between 2k and 2k+1 (centre, JPEG).
fn chroma16(x: u32, y: u32) -> vec2<i32> {
    let kx = i32(x >> 1u);
    let ky = i32(y >> 1u);
    var x0 = kx;
    var x1 = kx + 1;
    var wx0 = 2;
    var wx1 = 2;
    if p.left_siting != 0u {
        if (x & 1u) == 0u { x1 = kx; wx0 = 4; wx1 = 0; }
    } else if (x & 1u) == 0u {
        x0 = kx - 1; x1 = kx; wx0 = 1; wx1 = 3;
    } else {
        wx0 = 3; wx1 = 1;
    }
    var y0 = ky;
    var y1 = ky + 1;
    var wy0 = 3;
    var wy1 = 1;
    if (y & 1u) == 0u { y0 = ky - 1; y1 = ky; wy0 = 1; wy1 = 3; }
    return wx0 * wy0 * chroma_at(x0, y0) + wx1 * wy0 * chroma_at(x1, y0)
         + wx0 * wy1 * chroma_at(x0, y1) + wx1 * wy1 * chroma_at(x1, y1);
}

@compute @workgroup_size(16, 16)
fn yuv_to_rgba(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.width || id.y >= p.height { return; }
    let yy = (luma(id.x, id.y) - p.y_off) * p.cy * 16;
    let c = chroma16(id.x, id.y) - vec2<i32>(2048);
    let half = 524288; // 2^19: rounds the >> 20
    let r = clamp((yy + p.crv * c.y + half) >> 20u, 0, 255);
    let g = clamp((yy - p.cgu * c.x - p.cgv * c.y + half) >> 20u, 0, 255);
    let b = clamp((yy + p.cbu * c.x + half) >> 20u, 0, 255);
    dst[id.y * p.width + id.x] = u32(r) | (u32(g) << 8u) | (u32(b) << 16u) | 0xff000000u;
}

@compute @workgroup_size(16, 16)
fn yuv_to_planar(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.width || id.y >= p.height { return; }
    let yy = f32(luma(id.x, id.y) - p.y_off);
    let c = vec2<f32>(chroma16(id.x, id.y)) * (1.0 / 16.0) - vec2<f32>(128.0);
    var rgb = vec3<f32>(
        p.fcy * yy + p.fcrv * c.y,
        p.fcy * yy - p.fcgu * c.x - p.fcgv * c.y,
        p.fcy * yy + p.fcbu * c.x);
    if p.extended == 0u {
        rgb = clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0));
    }
    let r = rgb.x;
    let g = rgb.y;
    let b = rgb.z;
    let plane = p.width * p.height;
    let i = id.y * p.width + id.x;
    dst[i] = bitcast<u32>(r);
    dst[plane + i] = bitcast<u32>(g);
    dst[2u * plane + i] = bitcast<u32>(b);
}

// --- RGB -> YUV: one invocation writes one word (4 bytes) of the YUV frame; padding is 0. ---

fn rgba_at(x: u32, y: u32) -> vec3<i32> {
    let w = src[y * p.width + x];
    return vec3<i32>(i32(w & 0xffu), i32((w >> 8u) & 0xffu), i32((w >> 16u) & 0xffu));
}

fn planar_at(x: u32, y: u32) -> vec3<f32> {
    let plane = p.width * p.height;
    let i = y * p.width + x;
    let c = vec3<f32>(bitcast<f32>(src[i]), bitcast<f32>(src[plane + i]), bitcast<f32>(src[2u * plane + i]));
    if p.extended != 0u {
        return c;
    }
    return clamp(c, vec3<f32>(0.0), vec3<f32>(1.0));
}

fn luma_out(x: u32, y: u32, planar: bool) -> u32 {
    if planar {
        let c = planar_at(x, y);
        return u32(clamp(floor(p.fyr * c.r + p.fyg * c.g + p.fyb * c.b + f32(p.y_off) + 0.5), 0.0, 255.0));
    }
    let c = rgba_at(x, y);
    return u32(clamp((p.yr * c.r + p.yg * c.g + p.yb * c.b + (p.y_off << 16u) + 32768) >> 16u, 0, 255));
}

// (U, V) of chroma sample (cx, cy): the mean of its 2x2 block (edge pixels repeat at odd sizes).
fn chroma_out(cx: u32, cy: u32, planar: bool) -> vec2<u32> {
    let x0 = 2u * cx;
    let y0 = 2u * cy;
    let x1 = min(x0 + 1u, p.width - 1u);
    let y1 = min(y0 + 1u, p.height - 1u);
    if planar {
        let s = (planar_at(x0, y0) + planar_at(x1, y0) + planar_at(x0, y1) + planar_at(x1, y1)) * 0.25;
        let u = floor(p.fur * s.r + p.fug * s.g + p.fub * s.b + 128.5);
        let v = floor(p.fvr * s.r + p.fvg * s.g + p.fvb * s.b + 128.5);
        return vec2<u32>(vec2<f32>(clamp(u, 0.0, 255.0), clamp(v, 0.0, 255.0)));
    }
    let s = rgba_at(x0, y0) + rgba_at(x1, y0) + rgba_at(x0, y1) + rgba_at(x1, y1);
    let bias = 33554432 + 131072; // (128 << 18) + 2^17: offset and rounding of the >> 18
    let u = clamp((p.ur * s.r + p.ug * s.g + p.ub * s.b + bias) >> 18u, 0, 255);
    let v = clamp((p.vr * s.r + p.vg * s.g + p.vb * s.b + bias) >> 18u, 0, 255);
    return vec2<u32>(u32(u), u32(v));
}

// The byte at address `a` of the output frame.
fn yuv_byte(a: u32, planar: bool) -> u32 {
    if a >= p.len_bytes { return 0u; }
    if a >= p.off_y {
        let rel = a - p.off_y;
        let row = rel / p.stride_y;
        let col = rel % p.stride_y;
        if row < p.height && col < p.width { return luma_out(col, row, planar); }
    }
    if a >= p.off_u {
        let rel = a - p.off_u;
        let row = rel / p.stride_u;
        let col = rel % p.stride_u;
        if p.nv12 != 0u {
            if row < p.chroma_h && col < 2u * p.chroma_w {
                let uv = chroma_out(col >> 1u, row, planar);
                return select(uv.x, uv.y, (col & 1u) == 1u);
            }
        } else if row < p.chroma_h && col < p.chroma_w {
            return chroma_out(col, row, planar).x;
        }
    }
    if p.nv12 == 0u && a >= p.off_v {
        let rel = a - p.off_v;
        let row = rel / p.stride_v;
        let col = rel % p.stride_v;
        if row < p.chroma_h && col < p.chroma_w { return chroma_out(col, row, planar).y; }
    }
    return 0u;
}

fn yuv_word(id: vec3<u32>, planar: bool) {
    let w = id.x + id.y * p.row_invocations;
    if w >= (p.len_bytes + 3u) / 4u { return; }
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
        word |= yuv_byte(4u * w + b, planar) << (8u * b);
    }
    dst[w] = word;
}

@compute @workgroup_size(64)
fn rgba_to_yuv(@builtin(global_invocation_id) id: vec3<u32>) {
    yuv_word(id, false);
}

@compute @workgroup_size(64)
fn planar_to_yuv(@builtin(global_invocation_id) id: vec3<u32>) {
    yuv_word(id, true);
}
