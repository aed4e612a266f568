//! The context itself: a dispatch round-trips through the pool, and errors come back as errors.

use aiprod_kernels::{test_context, KernelError};

const ADD_ONE: &str = r#"
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&src) { dst[id.x] = src[id.x] + 1.0; }
}
"#;

#[test]
fn dispatch_round_trips() {
    let Some(ctx) = test_context() else { return };
    let input: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    let src = ctx.upload("src", &input).unwrap();
    let dst = ctx.storage("dst", 4000).unwrap();
    let p = ctx.pipeline("test.add_one", ADD_ONE, "main").unwrap();
    let mut batch = ctx.batch();
    batch.dispatch(
        &p,
        &[src.binding(), dst.binding()],
        (1000u32.div_ceil(64), 1, 1),
    );
    batch.submit().unwrap();
    let out: Vec<f32> = ctx.download_as(&dst, 1000).unwrap();
    assert!(out.iter().enumerate().all(|(i, v)| *v == i as f32 + 1.0));
    // the pipeline is cached: a second request returns the same one
    let again = ctx.pipeline("test.add_one", ADD_ONE, "main").unwrap();
    assert!(std::sync::Arc::ptr_eq(&p, &again));
    eprintln!("adapter: {:?}", ctx.adapter());
}

#[test]
fn oversize_buffers_are_refused_before_allocating() {
    let Some(ctx) = test_context() else { return };
    let Err(e) = ctx.storage("frame", u64::MAX / 2) else {
        panic!("a buffer of 2^63 bytes must be refused")
    };
    assert!(matches!(e, KernelError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("frame needs"), "{e}");
}

#[test]
fn bad_shader_is_an_error_not_a_panic() {
    let Some(ctx) = test_context() else { return };
    let Err(e) = ctx.pipeline("test.bad", "fn main( {", "main") else {
        panic!("bad WGSL must fail")
    };
    assert!(e.to_string().contains("test.bad"), "{e}");
}
