//! Colour conversion and resize at 1080p: GPU time with the frame already on the device (upload
//! and download excluded), GPU time with upload + download included, and the CPU reference
//! (single thread). GB/s counts the bytes a kernel must read plus the bytes it writes.
//!
//! `cargo bench -p aiprod-kernels --bench colour_resize`; `BENCH_ITERS` (default 3) sets the
//! timed GPU iterations. `AIPROD_WGPU_ADAPTER` picks the adapter.

use std::time::{Duration, Instant};

use aiprod_kernels::colour::{self, ColourSpec, YuvFormat, YuvLayout};
use aiprod_kernels::resize::{self, DeviceResize, Filter, ResizePlan};
use aiprod_kernels::{Context, PooledBuffer, Result};

fn iters() -> u32 {
    std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// Mean time of `n` runs after one warm-up run.
fn time<T>(n: u32, mut f: impl FnMut() -> Result<T>) -> Result<Duration> {
    f()?;
    let t = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(t.elapsed() / n)
}

fn report(name: &str, bytes: u64, on_device: Duration, round_trip: Duration, cpu: Duration) {
    let gbs = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    println!(
        "{name:<44} GPU {:>9.2} ms {:>7.2} GB/s | +upload/download {:>9.2} ms | CPU ref {:>9.2} ms {:>6.2} GB/s | GPU/CPU speed-up {:.1}x",
        on_device.as_secs_f64() * 1e3,
        gbs(on_device),
        round_trip.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3,
        gbs(cpu),
        cpu.as_secs_f64() / on_device.as_secs_f64(),
    );
}

fn test_rgba(w: u32, h: u32) -> Vec<u8> {
    (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8, 255]
        })
        .collect()
}

fn run(ctx: &Context) -> Result<()> {
    let n = iters();
    let (w, h) = (1920u32, 1080u32);
    let spec = ColourSpec::default();
    let i420 = YuvLayout::packed(YuvFormat::I420, w, h)?;
    let nv12 = YuvLayout::packed(YuvFormat::Nv12, w, h)?;
    let rgba = test_rgba(w, h);
    let yuv = colour::cpu::rgba_to_yuv(&rgba, &i420, &spec)?;

    // I420 -> RGBA
    let src = ctx.upload("bench yuv", &yuv)?;
    let on_device = time(n, || {
        let out = colour::yuv_to_rgba_device(ctx, &src, &i420, &spec)?;
        ctx.wait()?;
        Ok(out)
    })?;
    let round_trip = time(n, || colour::yuv_to_rgba(ctx, &yuv, &i420, &spec))?;
    let cpu = time(1, || colour::cpu::yuv_to_rgba(&yuv, &i420, &spec))?;
    let bytes = i420.len_bytes() + rgba.len() as u64;
    report(
        "I420 -> RGBA8 1920x1080 BT.709",
        bytes,
        on_device,
        round_trip,
        cpu,
    );

    // I420 -> planar f32
    let on_device = time(n, || {
        let out = colour::yuv_to_planar_device(ctx, &src, &i420, &spec)?;
        ctx.wait()?;
        Ok(out)
    })?;
    let round_trip = time(n, || colour::yuv_to_planar(ctx, &yuv, &i420, &spec))?;
    let cpu = time(1, || colour::cpu::yuv_to_planar(&yuv, &i420, &spec))?;
    let bytes = i420.len_bytes() + u64::from(w * h * 12);
    report(
        "I420 -> planar f32 1920x1080",
        bytes,
        on_device,
        round_trip,
        cpu,
    );

    // RGBA -> NV12
    let src = ctx.upload("bench rgba", &rgba)?;
    let on_device = time(n, || {
        let out = colour::rgba_to_yuv_device(ctx, &src, &nv12, &spec)?;
        ctx.wait()?;
        Ok(out)
    })?;
    let round_trip = time(n, || colour::rgba_to_yuv(ctx, &rgba, &nv12, &spec))?;
    let cpu = time(1, || colour::cpu::rgba_to_yuv(&rgba, &nv12, &spec))?;
    let bytes = nv12.len_bytes() + rgba.len() as u64;
    report(
        "RGBA8 -> NV12 1920x1080 BT.709",
        bytes,
        on_device,
        round_trip,
        cpu,
    );

    // Resize, planar f32 RGB (3 channels)
    let planar = colour::cpu::yuv_to_planar(&yuv, &i420, &spec)?;
    let src: PooledBuffer = ctx.upload("bench planar", &planar)?;
    for (dw, dh) in [(3840u32, 2160u32), (1280, 720)] {
        for (name, filter) in [
            ("bicubic a=-0.5", Filter::CATMULL_ROM),
            ("lanczos3", Filter::Lanczos3),
        ] {
            let plan = ResizePlan::new(w, h, dw, dh, filter)?;
            let dev = DeviceResize::new(ctx, &plan)?;
            let on_device = time(n, || {
                let out = dev.planar_f32(ctx, &src, 3)?;
                ctx.wait()?;
                Ok(out)
            })?;
            let round_trip = time(n, || resize::resize_planar_f32(ctx, &plan, &planar, 3))?;
            let cpu = time(1, || resize::cpu::resize_planar_f32(&plan, &planar, 3))?;
            let bytes = 4 * 3 * u64::from(w * h + dw * dh);
            report(
                &format!("resize {name} f32x3 1920x1080->{dw}x{dh}"),
                bytes,
                on_device,
                round_trip,
                cpu,
            );
        }
    }
    // Resize, one 8-bit plane (the luma of a frame)
    let luma = &yuv[..(w * h) as usize];
    let src = ctx.upload("bench luma", luma)?;
    for (dw, dh) in [(3840u32, 2160u32), (1280, 720)] {
        let plan = ResizePlan::new(w, h, dw, dh, Filter::Lanczos3)?;
        let dev = DeviceResize::new(ctx, &plan)?;
        let on_device = time(n, || {
            let out = dev.plane_u8(ctx, &src, 0, u64::from(w))?;
            ctx.wait()?;
            Ok(out)
        })?;
        let round_trip = time(n, || {
            resize::resize_plane_u8(ctx, &plan, luma, u64::from(w))
        })?;
        let cpu = time(1, || {
            resize::cpu::resize_plane_u8(&plan, luma, u64::from(w))
        })?;
        let bytes = u64::from(w * h + dw * dh);
        report(
            &format!("resize lanczos3 u8 plane 1920x1080->{dw}x{dh}"),
            bytes,
            on_device,
            round_trip,
            cpu,
        );
    }
    Ok(())
}

fn main() {
    let Some(ctx) = aiprod_kernels::bench_context() else {
        return;
    };
    let a = ctx.adapter();
    println!(
        "adapter: {} ({}, {}, {}); {} timed iterations after one warm-up; CPU reference: 1 thread",
        a.name,
        a.kind.as_str(),
        a.backend,
        a.driver,
        iters()
    );
    if let Err(e) = run(&ctx) {
        println!("bench failed: {e}");
        std::process::exit(1);
    }
}
