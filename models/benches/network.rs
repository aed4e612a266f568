//! Native Real-ESRGAN bench (harness = false; lives in models/ because it needs both the kernels
//! and the model store / ONNX Runtime):
//!
//! 1. conv3x3 64->64 + PReLU: GPU time and GFLOP/s vs the plain CPU reference.
//! 2. realesr-animevideov3 end to end: frames/s of each engine (wgpu fp32, wgpu fp16 where the
//!    adapter has shader-f16, ONNX Runtime where ORT_DYLIB_PATH is set) at each scale.
//!
//! Environment (all optional):
//! - `AIPROD_BENCH_FULL=1`: real-GPU sizes (conv 512x512, network 1280x720 -> x2 and x4).
//! - `AIPROD_BENCH_CONV_PX=128`: conv image side.
//! - `AIPROD_BENCH_SIZE=32x24`: network input size.
//! - `AIPROD_BENCH_SCALES=2,4`; `AIPROD_BENCH_ENGINES=wgpu,wgpu-fp16,ort`.
//! - `AIPROD_BENCH_ITERS=2`: timed runs (after one warm-up; 10 with FULL).
//! - `AIPROD_MODELS_DIR`: the model store (default: the workspace's data/models).
//! - `AIPROD_BENCH_TILE=512`: tile side in input pixels (0 = whole frame; default: the model's).
//! - `AIPROD_BENCH_ORT_DEVICE=auto` (auto, cpu, cuda, tensorrt); `AIPROD_BENCH_CPU_REF=0` skips
//!   the CPU reference; `AIPROD_WGPU_ADAPTER=gpu` insists on a real GPU.
//! - `AIPROD_WGPU_CONV=v1|v2|v3`: the conv3x3 kernel the network uses (default v3; printed); the
//!   conv3x3 bench always runs all three.

use std::time::Instant;

use aiprod_kernels::conv::{self, Conv3x3, Conv3x3Layer, ConvVariant, Storage};
use aiprod_kernels::{random_f32, Context};
use aiprod_models::{Engine, Precision, Upscaler, UpscalerConfig};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_u32(name: &str, default: u32) -> u32 {
    env(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; nothing else is understood
    let full = env("AIPROD_BENCH_FULL").is_some_and(|v| v != "0");
    let Some(ctx) = aiprod_kernels::bench_context() else {
        return;
    };
    let a = ctx.adapter();
    println!(
        "adapter: {} ({}, {}, driver {}), shader-f16 {}, f16 in use {}",
        a.name,
        a.kind.as_str(),
        a.backend,
        a.driver,
        a.shader_f16,
        ctx.has_f16()
    );
    println!(
        "conv variant (AIPROD_WGPU_CONV=v1|v2|v3): {} for the network; the conv bench runs all",
        ConvVariant::from_env().as_str()
    );
    let iters = env_u32("AIPROD_BENCH_ITERS", if full { 10 } else { 2 }).max(1);
    if let Err(e) = conv_bench(&ctx, full, iters) {
        println!("conv3x3: FAILED: {e}");
    }
    network_bench(&ctx, full, iters);
}

fn conv_bench(ctx: &Context, full: bool, iters: u32) -> aiprod_kernels::Result<()> {
    let side = env_u32("AIPROD_BENCH_CONV_PX", if full { 512 } else { 128 }).max(1);
    let (ci, co) = (64usize, 64usize);
    let layer = Conv3x3Layer {
        in_channels: ci,
        out_channels: co,
        weights: random_f32(co * ci * 9, 1)
            .iter()
            .map(|w| w / 24.0)
            .collect(),
        bias: random_f32(co, 2),
        slopes: vec![0.1; co],
    };
    let plane = (side * side) as usize;
    let input = random_f32(ci * plane, 3);
    let flops = layer.flops_per_pixel() as f64 * plane as f64;
    let mut storages = vec![Storage::F32];
    if ctx.has_f16() {
        storages.push(Storage::F16);
    }
    let runs = storages
        .iter()
        .flat_map(|s| ConvVariant::ALL.map(|v| (*s, v)));
    for (storage, variant) in runs {
        let op = Conv3x3::with_variant(ctx, &layer, storage, variant)?;
        let bytes = storage.encode(&input);
        let src = ctx.storage("bench conv input", bytes.len() as u64)?;
        ctx.write(&src, &bytes);
        let dst = ctx.storage(
            "bench conv output",
            (co * plane) as u64 * storage.bytes_per_value(),
        )?;
        let run = |n: u32| -> aiprod_kernels::Result<f64> {
            let t = Instant::now();
            let mut batch = ctx.batch();
            for _ in 0..n {
                op.record(ctx, &mut batch, &src, &dst, side, side)?;
            }
            batch.submit()?;
            ctx.wait()?;
            Ok(t.elapsed().as_secs_f64())
        };
        run(1)?; // warm-up: pipeline, first touch of the buffers
        let seconds = run(iters)? / f64::from(iters);
        println!(
            "conv3x3 {ci}->{co}+prelu {side}x{side} gpu {} {}: {:.3} ms, {:.1} GFLOP/s",
            storage.as_str(),
            variant.as_str(),
            seconds * 1e3,
            flops / seconds / 1e9
        );
    }
    if env("AIPROD_BENCH_CPU_REF").is_some_and(|v| v == "0") {
        return Ok(());
    }
    // the CPU reference is plain loops: time it on a smaller image when the GPU one is large
    let cpu_side = side.min(128) as usize;
    let cpu_input: Vec<f32> = (0..ci)
        .flat_map(|c| input[c * plane..][..cpu_side * cpu_side].iter().copied())
        .collect();
    let t = Instant::now();
    let out = conv::cpu::conv3x3(&layer, Storage::F32, &cpu_input, cpu_side, cpu_side);
    let seconds = t.elapsed().as_secs_f64();
    std::hint::black_box(out);
    let cpu_flops = layer.flops_per_pixel() as f64 * (cpu_side * cpu_side) as f64;
    println!(
        "conv3x3 {ci}->{co}+prelu {cpu_side}x{cpu_side} cpu reference (1 thread): {:.3} ms, {:.2} GFLOP/s",
        seconds * 1e3,
        cpu_flops / seconds / 1e9
    );
    Ok(())
}

fn network_bench(ctx: &Context, full: bool, iters: u32) {
    let (w, h) = env("AIPROD_BENCH_SIZE")
        .and_then(|s| {
            let (a, b) = s.split_once('x')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .unwrap_or(if full { (1280u32, 720u32) } else { (32, 24) });
    let scales: Vec<u32> = env("AIPROD_BENCH_SCALES")
        .unwrap_or_else(|| "2,4".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let engines: Vec<String> = match env("AIPROD_BENCH_ENGINES") {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => {
            let mut e = vec!["wgpu".to_string()];
            if ctx.has_f16() {
                e.push("wgpu-fp16".into());
            }
            if env("ORT_DYLIB_PATH").is_some() {
                e.push("ort".into());
            }
            e
        }
    };
    // `cargo bench` runs in models/: the workspace's data/models unless AIPROD_MODELS_DIR says
    let models_dir = env("AIPROD_MODELS_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"),
        std::path::PathBuf::from,
    );
    let tile = env("AIPROD_BENCH_TILE").and_then(|v| v.trim().parse::<u32>().ok());
    let rgb: Vec<u8> = random_f32((w * h * 3) as usize, 9)
        .iter()
        .map(|v| ((v + 1.0) * 127.5) as u8)
        .collect();
    let input: Vec<f32> = (0..3)
        .flat_map(|c| rgb.chunks_exact(3).map(move |p| f32::from(p[c]) / 255.0))
        .collect();
    // SRVGGNetCompact: 1.2384 MFLOP of convolution per input pixel (testdata manifest)
    let flops = 1_238_400.0 * f64::from(w) * f64::from(h);
    for scale in scales {
        for engine in &engines {
            let mut config = UpscalerConfig::new("realesr-animevideov3", scale);
            config.tile_px = tile;
            config.models_dir = Some(models_dir.clone());
            match engine.as_str() {
                "wgpu" => config.engine = Engine::Wgpu,
                "wgpu-fp16" => {
                    config.engine = Engine::Wgpu;
                    config.session.precision = Some(Precision::Fp16);
                }
                "ort" => {
                    config.engine = Engine::Ort;
                    if let Some(d) = env("AIPROD_BENCH_ORT_DEVICE") {
                        match d.parse() {
                            Ok(d) => config.session.device = d,
                            Err(e) => {
                                println!("ort: {e}");
                                continue;
                            }
                        }
                    }
                }
                other => {
                    println!(
                        "unknown engine {other:?} in AIPROD_BENCH_ENGINES (wgpu, wgpu-fp16, ort)"
                    );
                    continue;
                }
            }
            let t = Instant::now();
            let mut up = match Upscaler::new(&config) {
                Ok(u) => u,
                Err(e) => {
                    println!("realesr-animevideov3 x{scale} {engine}: SKIPPED: {e}");
                    continue;
                }
            };
            let load_s = t.elapsed().as_secs_f64();
            let mut times = Vec::with_capacity(iters as usize);
            let mut failed = None;
            for i in 0..=iters {
                let t = Instant::now();
                match up.upscale_planar(&input, w, h) {
                    Ok(out) => {
                        std::hint::black_box(out);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                if i > 0 {
                    times.push(t.elapsed().as_secs_f64()); // run 0 is the warm-up
                }
            }
            if let Some(e) = failed {
                println!("realesr-animevideov3 x{scale} {engine}: FAILED: {e}");
                continue;
            }
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            let best = times.iter().copied().fold(f64::INFINITY, f64::min);
            let tiling = up.tiling();
            println!(
                "realesr-animevideov3 x{scale} {w}x{h} -> {}x{} {engine} [{}, {:?}, tile {} overlap {}]: \
                 {:.2} frames/s (mean {:.1} ms, best {:.1} ms, {:.1} GFLOP/s conv), load {load_s:.2} s",
                w * scale,
                h * scale,
                up.provider(),
                up.precision(),
                tiling.tile_px,
                tiling.overlap_px,
                1.0 / mean,
                mean * 1e3,
                best * 1e3,
                flops / best / 1e9
            );
        }
    }
}
