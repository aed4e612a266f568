//! GetNodeStatus's adapters, slots and throughput, and admission per engine kind, against a
//! real aiprodd: every wgpu adapter the kernels crate finds is reported (lavapipe as
//! "software", never as a GPU), CPU jobs wait for the one CPU slot in turn, and a plan whose
//! upscaler needs a GPU engine this node lacks is infeasible at Plan and refused at Generate
//! with FAILED_PRECONDITION naming the engine.

mod common;

use std::time::{Duration, Instant};

use aiprod_daemon::proto::{self, JobState, Tier};
use common::*;
use tonic::Code;

fn social(prompt: &str, tier: Tier, duration_s: f64) -> proto::GenerateRequest {
    proto::GenerateRequest {
        prompt: prompt.into(),
        tier: tier as i32,
        profile: "SOCIAL".into(),
        duration_s,
        ..Default::default()
    }
}

fn running(s: JobState) -> bool {
    matches!(
        s,
        JobState::Generating | JobState::Processing | JobState::Validating
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_jobs_take_turns_in_the_one_cpu_slot_and_status_reports_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--max-cpu-jobs", "1", "--max-gpu-jobs", "1"]);
    let mut client = daemon.client().await;

    let s = client
        .get_node_status(proto::GetNodeStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    // The CPU first, with GStreamer; then what wgpu enumerates, as the kernels crate sees it.
    assert_eq!(s.adapters[0].kind, "cpu");
    assert!(s.adapters[0].engines.contains(&"gstreamer".to_string()));
    assert!(s.adapters[0].memory_bytes > 0);
    for w in aiprod_kernels::adapters() {
        let a = s
            .adapters
            .iter()
            .find(|a| a.name == w.name)
            .unwrap_or_else(|| panic!("wgpu adapter {} missing from {:?}", w.name, s.adapters));
        assert!(a.engines.contains(&"wgpu".to_string()), "{a:?}");
        assert_eq!(a.gpu, w.kind.is_gpu(), "{a:?}");
        if !w.kind.is_gpu() {
            assert_eq!(a.kind, "software", "{a:?}");
        }
    }
    let gpus = s.adapters.iter().filter(|a| a.gpu).count();
    println!(
        "adapters: {:?}",
        s.adapters
            .iter()
            .map(|a| format!("{} ({}, gpu {}, {:?})", a.name, a.kind, a.gpu, a.engines))
            .collect::<Vec<_>>()
    );
    // Slots as configured, per kind; the total is what farm orchestrators read.
    let slots: Vec<(String, u32, u32, u32)> = s
        .slots
        .iter()
        .map(|k| (k.kind.clone(), k.running, k.total, k.queued))
        .collect();
    assert_eq!(
        slots,
        vec![("cpu".to_string(), 0, 1, 0), ("gpu".to_string(), 0, 1, 0)]
    );
    assert_eq!(s.max_concurrent_jobs, 2);

    // Two CPU jobs (videoscale upscale + x264): the second waits QUEUED until the first ends.
    let first = client
        .generate(social("first", Tier::Economy, 2.0))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .generate(social("second", Tier::Economy, 1.0))
        .await
        .unwrap()
        .into_inner();
    // Right after: one job holds the CPU slot (or is about to), the other waits for it.
    let s = client
        .get_node_status(proto::GetNodeStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let cpu = &s.slots[0];
    assert!(
        cpu.running <= 1 && cpu.running + cpu.queued == 2,
        "{:?}",
        s.slots
    );
    assert_eq!((s.slots[1].running, s.slots[1].queued), (0, 0));
    assert_eq!(s.running_jobs + s.queue_depth, 2);
    let started = Instant::now();
    let mut saw_second_waiting = false;
    loop {
        let get = |id: &str| proto::GetJobRequest {
            job_id: id.into(),
            user_id: String::new(),
        };
        // The second first: once it has left QUEUED, the first was already final.
        let b = client
            .get_job(get(&second.job_id))
            .await
            .unwrap()
            .into_inner();
        let a = client
            .get_job(get(&first.job_id))
            .await
            .unwrap()
            .into_inner();
        let (sa, sb) = (state(&a), state(&b));
        assert!(
            !(running(sa) && running(sb)),
            "both jobs run at once with one CPU slot: {sa:?} {sb:?}"
        );
        if running(sa) && sb == JobState::Queued {
            saw_second_waiting = true;
        }
        if sb != JobState::Queued {
            assert!(
                aiprod_daemon::jobs::is_final(sa),
                "the second job left QUEUED while the first was {sa:?}"
            );
        }
        if aiprod_daemon::jobs::is_final(sa) && aiprod_daemon::jobs::is_final(sb) {
            assert_eq!(sa, JobState::Succeeded, "{}", a.error);
            assert_eq!(sb, JobState::Succeeded, "{}", b.error);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "jobs did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        saw_second_waiting,
        "never saw the second job QUEUED behind the first"
    );

    // Throughput per stage and engine over both runs, on CPU slots.
    let s = client
        .get_node_status(proto::GetNodeStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let process = s
        .throughput
        .iter()
        .find(|t| t.stage == "process")
        .unwrap_or_else(|| panic!("no process throughput: {:?}", s.throughput));
    assert_eq!(
        (process.engine.as_str(), process.slot.as_str(), process.runs),
        ("x264", "cpu", 2)
    );
    assert!(process.frames_per_s > 0.0);
    let generate = s.throughput.iter().find(|t| t.stage == "generate").unwrap();
    assert_eq!(
        (generate.engine.as_str(), generate.runs),
        ("local/testsrc-v1", 2)
    );
    println!(
        "FIGURES node: {gpus} usable GPUs; throughput {:?}",
        s.throughput
            .iter()
            .map(|t| format!("{} {} {:.1} frames/s", t.stage, t.engine, t.frames_per_s))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_needing_a_missing_gpu_engine_is_infeasible_and_refused() {
    let hardware = aiprod_kernels::adapters();
    if hardware.iter().any(|a| a.kind.is_gpu()) {
        eprintln!("SKIPPED: this machine has a GPU; the refusal needs a node without one");
        return;
    }
    // The node's pricing makes Real-ESRGAN on a GPU (ONNX Runtime CUDA/TensorRT) the upscaler;
    // the profiles are the shipped ones.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    let profiles = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, profiles.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let pricing = std::fs::read_to_string(shipped.join("pricing.toml")).unwrap();
    let gpu_pricing = pricing.replace(
        "active_upscaler = \"gstreamer/videoscale\"",
        "active_upscaler = \"aiprod/realesrgan\"",
    );
    assert_ne!(gpu_pricing, pricing);
    std::fs::write(profiles.path().join("pricing.toml"), gpu_pricing).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &[
            "--max-gpu-jobs",
            "1",
            "--profiles-dir",
            profiles.path().to_str().unwrap(),
        ],
    );
    let mut client = daemon.client().await;

    // ECONOMY renders at a quarter and upscales x4, BALANCED x2: both need the GPU upscaler.
    // PREMIUM renders at full size (no upscale) and stays feasible, and recommended.
    let plans = client
        .plan(plan_request("a lighthouse", "SOCIAL", 1.0))
        .await
        .unwrap()
        .into_inner();
    for p in &plans.plans {
        let tier = Tier::try_from(p.tier).unwrap();
        let upscales = p.steps.iter().any(|s| s.kind == "upscale" && s.scale > 1);
        assert_eq!(p.feasible, !upscales, "{tier:?}: {p:?}");
        if upscales {
            let reason = p.infeasible_reasons.join("; ");
            assert!(
                reason.contains("runs aiprod/realesrgan on a GPU")
                    && reason.contains("ort-tensorrt or ort-cuda"),
                "{tier:?}: {reason}"
            );
        }
    }
    assert_eq!(plans.recommended, Tier::Premium as i32);

    // Generate by tier and by plan id: FAILED_PRECONDITION naming the engine; nothing stored.
    let err = client
        .generate(social("a lighthouse", Tier::Economy, 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("ort-tensorrt or ort-cuda")
            && err.message().contains("aiprod/realesrgan"),
        "{}",
        err.message()
    );
    let economy = plans
        .plans
        .iter()
        .find(|p| p.tier == Tier::Economy as i32)
        .unwrap();
    let err = client
        .generate(proto::GenerateRequest {
            plan_id: economy.plan_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("ort-cuda"), "{}", err.message());
    let jobs = client
        .list_jobs(proto::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(jobs.jobs.is_empty(), "{:?}", jobs.jobs);
    let s = client
        .get_node_status(proto::GetNodeStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.slots[1].running, s.slots[1].queued), (0, 0));
}
