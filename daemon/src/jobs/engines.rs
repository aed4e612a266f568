//! Job slots per kind of engine, and the throughput each engine measured. A job whose plan runs
//! an engine on a GPU (an upscaler or a local model priced with `gpu = true`) holds a GPU slot,
//! any other job a CPU slot; each kind has its own limit (`max_gpu_jobs`, `max_cpu_jobs`), so a
//! GPU job never waits behind CPU work nor the other way round.
//!
//! A plan that needs a GPU engine this node lacks is refused (FAILED_PRECONDITION, naming the
//! engine) instead of being run on the CPU: its estimate assumed the GPU (about 16× faster for
//! Real-ESRGAN), so running it anyway would break the quoted time and let an orchestrator keep
//! sending GPU work to a node that cannot do it well. Plans that want the CPU say so
//! (`aiprod/realesrgan-cpu`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aiprod_planner::PriceTable;
use tokio::sync::Semaphore;

use crate::node::{self, Hardware};
use crate::proto;

/// Which slots a job holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlotKind {
    Cpu,
    Gpu,
}

impl SlotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::Cpu => "cpu",
            SlotKind::Gpu => "gpu",
        }
    }
}

/// A plan that needs a GPU engine this node cannot give it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the plan's {step} step runs {engine} on a GPU, which needs {} on a GPU; {why}; \
     place the job on a node whose GetNodeStatus lists that engine, or plan it with an engine \
     that runs on the CPU",
    wanted.join(" or ")
)]
pub struct MissingEngine {
    pub step: String,
    pub engine: String,
    pub wanted: Vec<&'static str>,
    pub why: String,
}

/// The node engines that can run a plan engine priced as a GPU engine: every GPU engine today.
/// Real-ESRGAN (realesr-animevideov3) runs through ONNX Runtime's GPU providers or, on any other
/// GPU, through the native wgpu kernels (`aiprodupscale engine=wgpu`). Kept per plan engine so
/// an engine that needs a particular runtime can narrow it.
pub fn gpu_engines_for(_plan_engine: &str) -> &'static [&'static str] {
    &[
        node::ENGINE_ORT_TENSORRT,
        node::ENGINE_ORT_CUDA,
        node::ENGINE_WGPU,
    ]
}

/// The step of `plan` that runs on a GPU, if any: an upscale by an upscaler priced `gpu = true`,
/// or local generation by a model priced `gpu = true`.
fn gpu_step<'p>(plan: &'p proto::PlanOption, prices: &PriceTable) -> Option<&'p proto::PlanStep> {
    plan.steps.iter().find(|s| match s.kind.as_str() {
        "upscale" => {
            s.scale > 1
                && prices
                    .upscalers
                    .iter()
                    .any(|u| u.engine == s.engine && u.gpu)
        }
        "generate" => {
            plan.backend.eq_ignore_ascii_case("local")
                && s.engine
                    .split_once('/')
                    .and_then(|(backend, model)| prices.model(backend, model))
                    .is_some_and(|m| m.gpu)
        }
        _ => false,
    })
}

/// The slot kind `plan` needs on this node, or why it cannot run here.
pub fn slot_for(
    plan: &proto::PlanOption,
    prices: &PriceTable,
    hardware: &Hardware,
    gpu_slots: usize,
) -> Result<SlotKind, MissingEngine> {
    let Some(step) = gpu_step(plan, prices) else {
        return Ok(SlotKind::Cpu);
    };
    let wanted = gpu_engines_for(&step.engine);
    let why = if !hardware.gpu_with_any(wanted) {
        format!(
            "this node has no such GPU (adapters: {})",
            hardware.describe()
        )
    } else if gpu_slots == 0 {
        "this node's max_gpu_jobs is 0".to_string()
    } else {
        return Ok(SlotKind::Gpu);
    };
    Err(MissingEngine {
        step: step.kind.clone(),
        engine: step.engine.clone(),
        wanted: wanted.to_vec(),
        why,
    })
}

/// The slots of one kind: a semaphore plus the counts GetNodeStatus reports.
pub struct Pool {
    pub semaphore: Arc<Semaphore>,
    pub total: usize,
    pub queued: AtomicUsize,
    pub running: AtomicUsize,
}

impl Pool {
    fn new(total: usize) -> Pool {
        Pool {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        }
    }

    fn status(&self, kind: SlotKind) -> proto::EngineSlots {
        proto::EngineSlots {
            kind: kind.as_str().into(),
            running: self.running.load(Ordering::SeqCst) as u32,
            total: self.total as u32,
            queued: self.queued.load(Ordering::SeqCst) as u32,
        }
    }
}

/// CPU and GPU slots.
pub struct Slots {
    cpu: Pool,
    gpu: Pool,
}

impl Slots {
    pub fn new(cpu_slots: usize, gpu_slots: usize) -> Slots {
        Slots {
            cpu: Pool::new(cpu_slots),
            gpu: Pool::new(gpu_slots),
        }
    }

    pub fn pool(&self, kind: SlotKind) -> &Pool {
        match kind {
            SlotKind::Cpu => &self.cpu,
            SlotKind::Gpu => &self.gpu,
        }
    }

    /// (queued, running) over both kinds.
    pub fn load(&self) -> (usize, usize) {
        [&self.cpu, &self.gpu].iter().fold((0, 0), |(q, r), p| {
            (
                q + p.queued.load(Ordering::SeqCst),
                r + p.running.load(Ordering::SeqCst),
            )
        })
    }

    pub fn total(&self) -> usize {
        self.cpu.total + self.gpu.total
    }

    pub fn status(&self) -> Vec<proto::EngineSlots> {
        vec![
            self.cpu.status(SlotKind::Cpu),
            self.gpu.status(SlotKind::Gpu),
        ]
    }
}

/// Frames and busy seconds of the completed runs of one stage on one engine.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Runs {
    runs: u32,
    frames: f64,
    busy_s: f64,
}

/// Measured throughput per (stage, engine, slot kind) since start.
#[derive(Debug, Default)]
pub struct Throughput {
    runs: BTreeMap<(String, String, SlotKind), Runs>,
}

impl Throughput {
    /// Adds one completed run; runs without frames or time (a remote provider's wait) are not
    /// this node's throughput and are ignored.
    pub fn record(&mut self, stage: &str, engine: &str, slot: SlotKind, frames: f64, busy_s: f64) {
        if !(frames > 0.0 && busy_s > 0.0 && frames.is_finite() && busy_s.is_finite()) {
            return;
        }
        let r = self
            .runs
            .entry((stage.to_string(), engine.to_string(), slot))
            .or_default();
        r.runs += 1;
        r.frames += frames;
        r.busy_s += busy_s;
    }

    /// Frames per second of busy time, per stage and engine.
    pub fn status(&self) -> Vec<proto::EngineThroughput> {
        self.runs
            .iter()
            .map(|((stage, engine, slot), r)| proto::EngineThroughput {
                stage: stage.clone(),
                frames_per_s: r.frames / r.busy_s,
                engine: engine.clone(),
                slot: slot.as_str().into(),
                runs: r.runs,
            })
            .collect()
    }
}

/// The engine a plan names for a step kind ("generate", "upscale", "encode"), else `fallback`.
pub fn step_engine<'p>(plan: &'p proto::PlanOption, kind: &str, fallback: &'p str) -> &'p str {
    plan.steps
        .iter()
        .find(|s| s.kind == kind)
        .map_or(fallback, |s| s.engine.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Adapter, ENGINE_GSTREAMER, ENGINE_ORT_CUDA, ENGINE_WGPU};

    fn prices_with(active: &str) -> PriceTable {
        let text = include_str!("../../../profiles/pricing.toml").replace(
            "active_upscaler = \"gstreamer/videoscale\"",
            &format!("active_upscaler = \"{active}\""),
        );
        PriceTable::from_toml_str(&text).unwrap()
    }

    fn plan(upscaler: &str, scale: u32) -> proto::PlanOption {
        let step = |kind: &str, engine: &str, scale| proto::PlanStep {
            kind: kind.into(),
            engine: engine.into(),
            scale,
            ..Default::default()
        };
        proto::PlanOption {
            backend: "local".into(),
            steps: vec![
                step("generate", "local/testsrc-v1", 1),
                step("upscale", upscaler, scale),
                step("encode", "x264", 1),
            ],
            ..Default::default()
        }
    }

    fn adapter(kind: &'static str, engines: Vec<&'static str>) -> Adapter {
        Adapter {
            name: format!("{kind} adapter"),
            kind,
            memory_bytes: 0,
            backend: String::new(),
            driver: String::new(),
            engines,
        }
    }

    fn cpu_node() -> Hardware {
        Hardware {
            adapters: vec![
                adapter("cpu", vec![ENGINE_GSTREAMER]),
                adapter("software", vec![ENGINE_WGPU]),
            ],
        }
    }

    fn cuda_node() -> Hardware {
        Hardware {
            adapters: vec![
                adapter("cpu", vec![ENGINE_GSTREAMER]),
                adapter("discrete-gpu", vec![ENGINE_ORT_CUDA, ENGINE_WGPU]),
            ],
        }
    }

    #[test]
    fn cpu_engines_take_cpu_slots_everywhere() {
        let prices = prices_with("gstreamer/videoscale");
        for hw in [cpu_node(), cuda_node()] {
            assert_eq!(
                slot_for(&plan("gstreamer/videoscale", 4), &prices, &hw, 1),
                Ok(SlotKind::Cpu)
            );
            assert_eq!(
                slot_for(&plan("aiprod/realesrgan-cpu", 4), &prices, &hw, 1),
                Ok(SlotKind::Cpu)
            );
            // No upscale: the GPU upscaler is not used.
            assert_eq!(
                slot_for(&plan("aiprod/realesrgan", 1), &prices, &hw, 1),
                Ok(SlotKind::Cpu)
            );
        }
    }

    #[test]
    fn a_gpu_upscale_takes_a_gpu_slot_or_is_refused_naming_the_engine() {
        let prices = prices_with("aiprod/realesrgan");
        let p = plan("aiprod/realesrgan", 4);
        assert_eq!(slot_for(&p, &prices, &cuda_node(), 1), Ok(SlotKind::Gpu));
        // lavapipe is no GPU, and Real-ESRGAN needs ONNX Runtime on one anyway.
        let err = slot_for(&p, &prices, &cpu_node(), 1).unwrap_err();
        assert_eq!(err.wanted, vec!["ort-tensorrt", "ort-cuda", "wgpu"]);
        let msg = err.to_string();
        assert!(
            msg.contains("upscale step runs aiprod/realesrgan on a GPU")
                && msg.contains("ort-tensorrt or ort-cuda or wgpu")
                && msg.contains("no such GPU")
                && msg.contains("software adapter (software: wgpu)"),
            "{msg}"
        );
        let err = slot_for(&p, &prices, &cuda_node(), 0).unwrap_err();
        assert!(err.to_string().contains("max_gpu_jobs is 0"), "{err}");
    }

    #[test]
    fn slots_count_per_kind() {
        let slots = Slots::new(2, 1);
        slots
            .pool(SlotKind::Cpu)
            .queued
            .fetch_add(3, Ordering::SeqCst);
        slots
            .pool(SlotKind::Gpu)
            .running
            .fetch_add(1, Ordering::SeqCst);
        assert_eq!(slots.load(), (3, 1));
        assert_eq!(slots.total(), 3);
        let s = slots.status();
        assert_eq!(
            (s[0].kind.as_str(), s[0].total, s[0].queued, s[0].running),
            ("cpu", 2, 3, 0)
        );
        assert_eq!(
            (s[1].kind.as_str(), s[1].total, s[1].queued, s[1].running),
            ("gpu", 1, 0, 1)
        );
    }

    #[test]
    fn throughput_is_frames_over_busy_time_per_engine() {
        let mut t = Throughput::default();
        t.record("process", "x264", SlotKind::Cpu, 30.0, 1.0);
        t.record("process", "x264", SlotKind::Cpu, 90.0, 2.0);
        t.record("upscale", "aiprod/realesrgan", SlotKind::Gpu, 48.0, 0.5);
        // A remote generation measures nothing on this node.
        t.record("generate", "veo/veo-3.1", SlotKind::Cpu, 0.0, 40.0);
        let s = t.status();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].stage.as_str(), s[0].engine.as_str(), s[0].runs),
            ("process", "x264", 2)
        );
        assert!((s[0].frames_per_s - 40.0).abs() < 1e-9);
        assert_eq!((s[1].slot.as_str(), s[1].frames_per_s), ("gpu", 96.0));
    }
}
