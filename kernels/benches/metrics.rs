//! QC metrics on a 1920×1080 I420 frame pair: per-frame GPU time with the frames already on the
//! device (the tiny result download and the wait included), GPU time with the frames' upload
//! included, and the plain CPU reference (`metrics::cpu`, one thread). GB/s counts the frame
//! bytes a kernel reads (both frames for PSNR, SSIM, SAD; the luma plane for black). Each GPU
//! result is checked against the CPU's before timing.
//!
//! `cargo bench -p aiprod-kernels --bench metrics`; `BENCH_ITERS` (default 3) sets the timed
//! iterations. `AIPROD_WGPU_ADAPTER` picks the adapter.

use std::time::{Duration, Instant};

use aiprod_kernels::metrics::{self, cpu, DeviceFrame, HostPlane, PlanarLayout};
use aiprod_kernels::{Context, KernelError, Result};

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

fn report(name: &str, bytes: u64, on_device: Duration, with_upload: Duration, cpu: Duration) {
    let gbs = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<30} GPU {:>8.2} ms {:>6.2} GB/s | +upload {:>8.2} ms {:>6.2} GB/s | CPU ref {:>8.2} ms {:>6.2} GB/s | GPU/CPU {:.1}x",
        ms(on_device),
        gbs(on_device),
        ms(with_upload),
        gbs(with_upload),
        ms(cpu),
        gbs(cpu),
        cpu.as_secs_f64() / on_device.as_secs_f64(),
    );
}

/// A 1080p-like picture: gradients plus deterministic noise; `seed` changes the noise.
fn frame(layout: PlanarLayout, seed: u32) -> [Vec<u8>; 3] {
    let mut state = seed;
    [0, 1, 2].map(|p| {
        let (w, h) = layout.plane_size(p);
        (0..w * h)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let (x, y) = (i % w, i / w);
                (((x + 2 * y + 50 * p) % 200) as u32 + (state >> 27) + 20) as u8
            })
            .collect()
    })
}

fn planes(layout: PlanarLayout, f: &[Vec<u8>; 3]) -> [HostPlane<'_>; 3] {
    [0, 1, 2].map(|p| HostPlane {
        data: &f[p],
        stride: layout.plane_size(p).0,
    })
}

fn check<T: PartialEq + std::fmt::Debug>(what: &str, gpu: T, cpu: T) -> Result<()> {
    if gpu != cpu {
        return Err(KernelError::Device(format!(
            "{what}: GPU {gpu:?} differs from the CPU reference {cpu:?}"
        )));
    }
    Ok(())
}

fn run(ctx: &Context) -> Result<()> {
    let n = iters();
    let (w, h) = (1920, 1080);
    let layout = PlanarLayout::i420(w, h)?;
    let (ha, hb) = (frame(layout, 1), frame(layout, 2));
    let (pa, pb) = (planes(layout, &ha), planes(layout, &hb));
    let mut da = DeviceFrame::upload(ctx, layout, pa)?;
    let mut db = DeviceFrame::upload(ctx, layout, pb)?;
    let size = |p: usize| layout.plane_size(p);
    let pair_bytes = 2 * layout.samples();
    let luma_bytes = (w * h) as u64;
    let black_threshold = 37; // blackdetect's default in limited range

    // Correctness first: integer sums equal, SSIM as close as the device's division allows.
    let cpu_sse = [0, 1, 2].map(|p| cpu::plane_sse(pa[p], pb[p], size(p).0, size(p).1));
    let cpu_sad = [0, 1, 2].map(|p| cpu::plane_sad(pa[p], pb[p], size(p).0, size(p).1));
    let cpu_ssim = [0, 1, 2].map(|p| cpu::plane_ssim(pa[p], pb[p], size(p).0, size(p).1));
    let cpu_black = cpu::black_pixels(pa[0], w, h, black_threshold);
    check("SSE", metrics::sse(ctx, &da, &db)?, cpu_sse)?;
    check("SAD", metrics::sad(ctx, &da, &db)?, cpu_sad)?;
    check(
        "black pixels",
        metrics::black_pixels(ctx, &da, black_threshold)?,
        cpu_black,
    )?;
    let gpu_ssim = metrics::ssim(ctx, &da, &db)?;
    let ssim_diff = (0..3)
        .map(|p| (gpu_ssim[p] - cpu_ssim[p]).abs())
        .fold(0.0, f64::max);
    println!(
        "{w}x{h} I420 pair: SSE {cpu_sse:?}, SAD {cpu_sad:?}, black {cpu_black} equal on GPU and CPU; \
         SSIM {gpu_ssim:.6?}, largest |GPU - CPU| {ssim_diff:e}"
    );

    let upload_pair = |da: &mut DeviceFrame, db: &mut DeviceFrame| -> Result<()> {
        da.write(ctx, pa)?;
        db.write(ctx, pb)
    };

    let gpu = time(n, || metrics::sse(ctx, &da, &db))?;
    let up = time(n, || {
        upload_pair(&mut da, &mut db)?;
        metrics::sse(ctx, &da, &db)
    })?;
    let c = time(n, || {
        Ok([0, 1, 2].map(|p| cpu::plane_sse(pa[p], pb[p], size(p).0, size(p).1)))
    })?;
    report("PSNR (SSE per plane)", pair_bytes, gpu, up, c);

    let gpu = time(n, || metrics::ssim(ctx, &da, &db))?;
    let up = time(n, || {
        upload_pair(&mut da, &mut db)?;
        metrics::ssim(ctx, &da, &db)
    })?;
    let c = time(n, || {
        Ok([0, 1, 2].map(|p| cpu::plane_ssim(pa[p], pb[p], size(p).0, size(p).1)))
    })?;
    report("SSIM (per plane)", pair_bytes, gpu, up, c);

    let gpu = time(n, || metrics::pair_metrics(ctx, &da, &db))?;
    let up = time(n, || {
        upload_pair(&mut da, &mut db)?;
        metrics::pair_metrics(ctx, &da, &db)
    })?;
    let c = time(n, || {
        Ok([0, 1, 2].map(|p| {
            (
                cpu::plane_sse(pa[p], pb[p], size(p).0, size(p).1),
                cpu::plane_ssim(pa[p], pb[p], size(p).0, size(p).1),
            )
        }))
    })?;
    report("PSNR+SSIM (one submission)", pair_bytes, gpu, up, c);

    let gpu = time(n, || metrics::black_pixels(ctx, &da, black_threshold))?;
    let up = time(n, || {
        da.write(ctx, pa)?;
        metrics::black_pixels(ctx, &da, black_threshold)
    })?;
    let c = time(n, || Ok(cpu::black_pixels(pa[0], w, h, black_threshold)))?;
    report("black (luma count)", luma_bytes, gpu, up, c);

    let gpu = time(n, || metrics::sad(ctx, &da, &db))?;
    let up = time(n, || {
        upload_pair(&mut da, &mut db)?;
        metrics::sad(ctx, &da, &db)
    })?;
    let c = time(n, || {
        Ok([0, 1, 2].map(|p| cpu::plane_sad(pa[p], pb[p], size(p).0, size(p).1)))
    })?;
    report("freeze (SAD per plane)", pair_bytes, gpu, up, c);

    // What QC does per frame: upload one frame, black + SAD against the reference on the device.
    let gpu = time(n, || {
        metrics::frame_stats(ctx, &da, Some(&db), black_threshold)
    })?;
    let up = time(n, || {
        da.write(ctx, pa)?;
        metrics::frame_stats(ctx, &da, Some(&db), black_threshold)
    })?;
    let c = time(n, || {
        Ok((
            cpu::black_pixels(pa[0], w, h, black_threshold),
            [0, 1, 2].map(|p| cpu::plane_sad(pa[p], pb[p], size(p).0, size(p).1)),
        ))
    })?;
    report("black+freeze (QC per frame)", pair_bytes, gpu, up, c);
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
