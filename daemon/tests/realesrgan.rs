//! Real-ESRGAN in the daemon: the processing pipeline with `aiprodupscale` (gst-plugin-aiprod,
//! registered in-process), which plans map to it, and `aiprodctl upscale` against the official
//! ncnn reference. Needs ONNX Runtime and the imported models: a loud skip on a developer
//! machine without them, a failure in CI (scripts/test.sh provides both).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use aiprod_daemon::jobs::realesrgan_upscale;
use aiprod_daemon::node::{self, Adapter, Hardware};
use aiprod_daemon::pipeline::{self, AudioFormat, Container, OutputSpec, ScaleMethod, VideoFormat};
use aiprod_daemon::proto;
use gst::prelude::*;
use gstreamer as gst;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    match std::env::var_os("AIPROD_MODELS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace().join("data/models"),
    }
}

fn ready() -> bool {
    let registry = aiprod_models::Registry::builtin().expect("registry");
    let store = aiprod_models::ModelStore::new(models_dir());
    let problem = aiprod_models::runtime::ort_dylib_path()
        .and_then(|_| aiprod_models::fetch::verify_store(&store, &registry))
        .err();
    match problem {
        None => true,
        Some(p)
            if std::env::var_os("CI").is_some()
                || std::env::var_os("AIPROD_REQUIRE_ORT").is_some() =>
        {
            panic!("{p} (CI/AIPROD_REQUIRE_ORT is set: use scripts/test.sh)")
        }
        Some(p) => {
            eprintln!("\n*** SKIPPED: {p} ***\n*** run scripts/setup-models.sh and export ORT_DYLIB_PATH ***\n");
            false
        }
    }
}

fn step(kind: &str, engine: &str, scale: u32) -> proto::PlanStep {
    proto::PlanStep {
        kind: kind.into(),
        engine: engine.into(),
        scale,
        ..Default::default()
    }
}

#[test]
fn plans_map_to_realesrgan_only_for_its_engines() {
    let plan = |engine: &str, scale: u32| proto::PlanOption {
        steps: vec![
            step("generate", "local/testsrc-v1", 1),
            step("upscale", engine, scale),
            step("encode", "x264", 1),
        ],
        ..Default::default()
    };
    let gpu = |kind: &'static str, engines: Vec<&'static str>| Adapter {
        name: format!("{kind} adapter"),
        kind,
        memory_bytes: 0,
        backend: String::new(),
        driver: String::new(),
        engines,
    };
    let cpu = gpu("cpu", vec![node::ENGINE_GSTREAMER, node::ENGINE_ORT_CPU]);
    let nvidia = Hardware {
        adapters: vec![
            cpu.clone(),
            gpu(
                "discrete-gpu",
                vec![node::ENGINE_ORT_CUDA, node::ENGINE_WGPU],
            ),
        ],
    };
    let amd = Hardware {
        adapters: vec![cpu.clone(), gpu("discrete-gpu", vec![node::ENGINE_WGPU])],
    };
    let up = realesrgan_upscale(&plan("aiprod/realesrgan", 4), &nvidia).expect("gpu entry");
    assert_eq!(
        (
            up.model.as_str(),
            up.scale,
            up.engine.as_str(),
            up.device.as_str()
        ),
        ("realesr-animevideov3", 4, "ort", "auto")
    );
    // a GPU that ONNX Runtime cannot use runs the network on the wgpu kernels
    let up = realesrgan_upscale(&plan("aiprod/realesrgan", 4), &amd).expect("gpu entry");
    assert_eq!((up.engine.as_str(), up.device.as_str()), ("wgpu", "auto"));
    let up = realesrgan_upscale(&plan("aiprod/realesrgan-cpu", 2), &amd).expect("cpu entry");
    assert_eq!(
        (up.scale, up.engine.as_str(), up.device.as_str()),
        (2, "ort", "cpu")
    );
    assert_eq!(
        realesrgan_upscale(&plan("gstreamer/videoscale", 2), &nvidia),
        None
    );
    assert_eq!(
        realesrgan_upscale(&plan("aiprod/realesrgan-xyz", 2), &nvidia),
        None
    );
    assert_eq!(
        realesrgan_upscale(&plan("aiprod/realesrgan", 1), &nvidia),
        None,
        "no upscale"
    );
}

#[test]
fn processing_pipeline_upscales_with_aiprodupscale() {
    if !ready() {
        return;
    }
    gst::init().expect("gst");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("small.mp4");
    let make = gst::parse::launch(&format!(
        "videotestsrc num-buffers=4 pattern=smpte ! video/x-raw,width=64,height=36,framerate=8/1 \
         ! x264enc ! mp4mux ! filesink location={}",
        src.display()
    ))
    .expect("source pipeline");
    make.set_state(gst::State::Playing).expect("play");
    let bus = make.bus().expect("bus");
    bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    make.set_state(gst::State::Null).expect("null");

    let spec = OutputSpec {
        width: 128,
        height: 72,
        fps_num: 8,
        fps_den: 1,
        container: Container::Mp4,
        video: VideoFormat::H264Yuv420p8,
        video_bitrate_bps: 500_000,
        audio: AudioFormat::Aac {
            bitrate_bps: 128_000,
        },
        audio_rate_hz: 48_000,
        audio_channels: 2,
        scale: ScaleMethod::Lanczos,
    };
    let upscale = pipeline::UpscaleSpec {
        model: "realesr-animevideov3".into(),
        scale: 2,
        engine: "ort".into(),
        device: "cpu".into(),
        models_dir: Some(models_dir()),
    };
    let out = dir.path().join("out.mp4");
    let (stats, up) = pipeline::process_upscaled(
        &src,
        &out,
        &spec,
        Some(&upscale),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .expect("processing");
    let up = up.expect("the upscaler's measurements");
    println!(
        "{} frames encoded; upscaler: {} frames in {:.3} s",
        stats.frames, up.frames, up.busy_s
    );
    assert_eq!(stats.frames, 4);
    assert_eq!(up.frames, 4);
    assert!(up.busy_s > 0.0 && !up.on_gpu);
    let probe = aiprod_quality::probe_summary(&out).expect("probe");
    println!("{probe:?}");
    assert_eq!((probe.width, probe.height), (128, 72));
}

#[test]
fn aiprodctl_upscale_matches_the_ncnn_reference() {
    if !ready() {
        return;
    }
    let Some(fixtures) = [
        workspace().join("../shared/testdata/esrgan"),
        workspace().join("shared/testdata/esrgan"),
    ]
    .into_iter()
    .find(|p| p.join("manifest.json").is_file()) else {
        panic!("../shared/testdata/esrgan is missing");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("up.png");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_aiprodctl"))
        .arg("upscale")
        .arg(fixtures.join("inputs/synth37x23.png"))
        .arg(&out)
        .args([
            "--model",
            "realesr-animevideov3",
            "--scale",
            "4",
            "--engine",
            "ort",
            "--tile",
            "16",
            "--device",
            "cpu",
        ])
        .arg("--models-dir")
        .arg(models_dir())
        .status()
        .expect("aiprodctl runs");
    assert!(status.success());
    let ours = image::open(&out).expect("output png").to_rgb8();
    let reference = image::open(fixtures.join("animevideov3_x4/synth37x23.out.png"))
        .expect("reference")
        .to_rgb8();
    assert_eq!(ours.dimensions(), (148, 92));
    let worst = ours
        .as_raw()
        .iter()
        .zip(reference.as_raw())
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max()
        .expect("pixels");
    assert!(worst <= 1, "max 8-bit difference {worst}");
}
