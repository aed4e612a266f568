//! The cost receipt: every line item of the plan's estimate next to what the job actually
//! cost, stage times estimated vs measured, and a probe summary of the delivered file. Pure
//! functions over what the runner measured.

use crate::jobs::store::JobRecord;
use crate::now_unix_ms;
use crate::proto::{self, JobState};
use aiprod_planner::NodeRates;

/// One stage as it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageRun {
    pub wall_s: f64,
    /// Seconds of this node's compute billed for the stage.
    pub compute_s: f64,
    pub frames_per_s: f64,
}

/// What a run measured (stages that did not run are None).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    pub generate: Option<StageRun>,
    pub process: Option<StageRun>,
    pub validate: Option<StageRun>,
    /// The Real-ESRGAN element's own busy time inside `process` (None: GStreamer scaler).
    pub upscale: Option<StageRun>,
    pub upscale_on_gpu: bool,
    pub provider_charge_usd_micros: i64,
    pub provider_task_id: String,
    /// What the provider billed in its own unit ("credits", "s", "predict_s").
    pub provider_billed_units: f64,
    pub provider_billed_unit: String,
    /// SHA-256 of the footage as downloaded from the provider.
    pub generated_sha256: String,
    pub output_bytes: u64,
    pub probe: Option<proto::ProbeSummary>,
    /// The VALIDATING stage's QualitySpec report.
    pub validation: Option<proto::ValidationReport>,
}

impl Measured {
    /// Takes what the ledger says a provider charged (generation failed, or an earlier run
    /// generated the footage).
    pub fn record_provider_spend(&mut self, spend: Option<crate::backends::remote::Spend>) {
        if let Some(s) = spend {
            self.provider_charge_usd_micros = s.usd_micros;
            self.provider_task_id = s.task_id;
            self.provider_billed_units = s.units;
            self.provider_billed_unit = s.unit;
        }
    }
}

/// The most a job's provider may charge: the plan's `max_cost_usd` less the plan's estimate of
/// everything else (compute, storage, egress). None when the plan had no cost limit.
pub fn provider_charge_cap(plan: &proto::PlanOption) -> Option<i64> {
    (plan.max_cost_usd_micros > 0).then(|| {
        let others: i64 = plan
            .cost_breakdown
            .iter()
            .filter(|c| c.item != "generation")
            .map(|c| c.usd_micros)
            .sum();
        (plan.max_cost_usd_micros - others).max(0)
    })
}

/// USD per hour × seconds, in micro-USD, rounded to the nearest micro.
pub fn compute_cost_micros(seconds: f64, usd_per_hour: f64) -> i64 {
    (seconds.max(0.0) * usd_per_hour / 3600.0 * 1e6).round() as i64
}

fn step_time(plan: &proto::PlanOption, kind: &str) -> f64 {
    plan.steps
        .iter()
        .filter(|s| s.kind == kind)
        .map(|s| s.estimated_time_s)
        .sum()
}

/// Share of the processing pipeline's measured time that belongs to `kind` ("upscale" or
/// "encode"). Scale and encode run overlapped in one pipeline, so they are measured together
/// and split in the ratio of their estimates.
fn process_share(plan: &proto::PlanOption, kind: &str) -> f64 {
    let up = step_time(plan, "upscale");
    let enc = step_time(plan, "encode");
    let total = up + enc;
    if total <= 0.0 {
        return if kind == "encode" { 1.0 } else { 0.0 };
    }
    if kind == "upscale" {
        up / total
    } else {
        enc / total
    }
}

/// One calibration observation: the planner's estimate and what was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The calibration key's backend: the plan's backend for generation and output size,
    /// "local" for the stages this node always runs itself (as the planner keys them).
    pub backend: String,
    pub stage: String,
    pub estimated: f64,
    pub actual: f64,
}

/// Observations for calibration, for the stages that ran and the delivered size.
pub fn observations(plan: &proto::PlanOption, m: &Measured) -> Vec<Observation> {
    let obs = |backend: &str, stage: &str, estimated: f64, actual: f64| Observation {
        backend: backend.to_string(),
        stage: stage.to_string(),
        estimated,
        actual,
    };
    let mut out = Vec::new();
    if let Some(g) = m.generate {
        out.push(obs(
            &plan.backend,
            "generate",
            step_time(plan, "generate"),
            g.wall_s,
        ));
    }
    if let Some(p) = m.process {
        for kind in ["upscale", "encode"] {
            let est = step_time(plan, kind);
            if est > 0.0 {
                let actual = match (kind, m.upscale) {
                    ("upscale", Some(u)) => u.wall_s,
                    _ => p.wall_s * process_share(plan, kind),
                };
                out.push(obs("local", kind, est, actual));
            }
        }
    }
    if let Some(v) = m.validate {
        out.push(obs("local", "qc", step_time(plan, "qc"), v.wall_s));
    }
    if m.output_bytes > 0 && plan.estimated_output_bytes > 0 {
        out.push(obs(
            &plan.backend,
            &aiprod_planner::output_bytes_stage(&plan.profile),
            plan.estimated_output_bytes as f64,
            m.output_bytes as f64,
        ));
    }
    out
}

/// The receipt for a job that ends in `state`.
pub fn build(
    rec: &JobRecord,
    job: &proto::Job,
    state: JobState,
    error: &str,
    m: &Measured,
    node: &NodeRates,
) -> proto::Receipt {
    let plan = &rec.plan;
    let rate = node.cpu_usd_per_hour;
    let cpu = |run: Option<StageRun>, share: f64| {
        run.map(|r| {
            (
                compute_cost_micros(r.compute_s * share, rate),
                r.compute_s * share,
            )
        })
    };
    let est_bytes = plan.estimated_output_bytes;
    let mut lines = Vec::new();
    for est in &plan.cost_breakdown {
        let (actual, basis) = match est.item.as_str() {
            "generation" => (
                m.provider_charge_usd_micros,
                if m.provider_task_id.is_empty() {
                    "provider charge (none for the local backend)".to_string()
                } else if m.provider_billed_unit.is_empty() {
                    format!("provider charge, task {}", m.provider_task_id)
                } else {
                    format!(
                        "provider charge: {} {} billed for task {}",
                        m.provider_billed_units, m.provider_billed_unit, m.provider_task_id
                    )
                },
            ),
            "compute.generate" => measured_line(cpu(m.generate, 1.0), rate, "generation"),
            "compute.upscale" if m.upscale.is_some() => {
                let up_rate = if m.upscale_on_gpu {
                    node.gpu_usd_per_hour
                } else {
                    rate
                };
                let run = m
                    .upscale
                    .map(|r| (compute_cost_micros(r.compute_s, up_rate), r.compute_s));
                measured_line(run, up_rate, "Real-ESRGAN (aiprodupscale busy time)")
            }
            "compute.encode" if m.upscale.is_some() => {
                let up_s = m.upscale.map_or(0.0, |u| u.compute_s);
                let rest = m.process.map(|p| StageRun {
                    compute_s: (p.compute_s - up_s).max(0.0),
                    ..p
                });
                measured_line(
                    cpu(rest, 1.0),
                    rate,
                    "processing pipeline less the upscaler",
                )
            }
            "compute.upscale" => measured_line(
                cpu(m.process, process_share(plan, "upscale")),
                rate,
                "scale share of the processing pipeline",
            ),
            "compute.encode" => measured_line(
                cpu(m.process, process_share(plan, "encode")),
                rate,
                "encode share of the processing pipeline",
            ),
            "compute.qc" => measured_line(cpu(m.validate, 1.0), rate, "validation"),
            "storage" | "egress" if m.output_bytes > 0 && est_bytes > 0 => (
                (est.usd_micros as f64 * m.output_bytes as f64 / est_bytes as f64).round() as i64,
                format!(
                    "{} bytes delivered (estimate assumed {est_bytes}); {}",
                    m.output_bytes, est.basis
                ),
            ),
            "storage" | "egress" => (0, "nothing delivered".to_string()),
            _ => (0, "not measured by this node".to_string()),
        };
        lines.push(proto::ReceiptLine {
            item: est.item.clone(),
            estimated_usd_micros: est.usd_micros,
            actual_usd_micros: actual,
            basis,
        });
    }
    let estimated_total: i64 = lines.iter().map(|l| l.estimated_usd_micros).sum();
    let actual_total: i64 = lines.iter().map(|l| l.actual_usd_micros).sum();
    let mut stages = Vec::new();
    let stage_defs: [(&str, f64, Option<StageRun>); 3] = [
        ("generate", step_time(plan, "generate"), m.generate),
        (
            "process",
            step_time(plan, "upscale") + step_time(plan, "encode"),
            m.process,
        ),
        ("validate", step_time(plan, "qc"), m.validate),
    ];
    let upscale_stage = m
        .upscale
        .map(|u| ("upscale", step_time(plan, "upscale"), Some(u)));
    for (stage, est, run) in stage_defs.into_iter().chain(upscale_stage) {
        stages.push(proto::StageTime {
            stage: stage.into(),
            estimated_s: est,
            actual_s: run.map_or(0.0, |r| r.wall_s),
        });
    }
    // "upscale" runs inside "process" (overlapped), so it is not added again
    let actual_time_s = stages
        .iter()
        .filter(|s| s.stage != "upscale")
        .map(|s| s.actual_s)
        .sum();
    proto::Receipt {
        job_id: job.job_id.clone(),
        user_id: job.user_id.clone(),
        tier: plan.tier,
        backend: plan.backend.clone(),
        model: plan.model.clone(),
        profile: plan.profile.clone(),
        final_state: state as i32,
        lines,
        estimated_total_usd_micros: estimated_total,
        actual_total_usd_micros: actual_total,
        stages,
        estimated_time_s: plan.estimated_time_s,
        actual_time_s,
        expected_quality: plan.expected_quality,
        probe: m.probe.clone(),
        output_path: if state == JobState::Succeeded {
            job.output_path.clone()
        } else {
            String::new()
        },
        error: error.to_string(),
        created_unix_ms: now_unix_ms(),
        cost_estimate_error: if estimated_total > 0 {
            (actual_total - estimated_total) as f64 / estimated_total as f64
        } else {
            0.0
        },
        provider_task_id: m.provider_task_id.clone(),
        provider_billed_units: m.provider_billed_units,
        provider_billed_unit: m.provider_billed_unit.clone(),
        generated_sha256: m.generated_sha256.clone(),
        validation: m.validation.clone(),
    }
}

/// The receipt's (and Validate RPC's) form of a validation report.
pub fn validation_to_proto(
    r: &aiprod_quality::spec::ValidationReport,
    tier: proto::Tier,
    profile: &str,
) -> proto::ValidationReport {
    proto::ValidationReport {
        path: r.file.clone(),
        tier: tier as i32,
        profile: profile.to_string(),
        passed: r.passed,
        checks: r
            .checks
            .iter()
            .map(|c| proto::QualityCheck {
                name: c.name.clone(),
                measured: c.measured.clone(),
                threshold: c.threshold.clone(),
                pass: c.pass,
            })
            .collect(),
    }
}

fn measured_line(run: Option<(i64, f64)>, rate: f64, what: &str) -> (i64, String) {
    match run {
        Some((micros, s)) => (micros, format!("{s:.3} s of {what} × ${rate}/h")),
        None => (0, format!("{what} did not run")),
    }
}

/// The receipt's probe summary from the native prober.
pub fn probe_to_proto(p: &aiprod_quality::ProbeSummary) -> proto::ProbeSummary {
    proto::ProbeSummary {
        container: p.container.clone(),
        video_codec: p.video_codec.clone(),
        width: p.width,
        height: p.height,
        duration_s: p.duration_s,
        bitrate_bps: p.bitrate_bps,
        fps: p.fps,
        pixel_format: p.pixel_format.clone(),
        audio_codec: p.audio_codec.clone(),
        audio_sample_rate_hz: p.audio_sample_rate_hz,
        audio_channels: p.audio_channels,
        size_bytes: p.size_bytes,
    }
}

/// What is wrong with a delivered file against its profile; empty when it conforms.
pub fn check_output(
    p: &proto::ProbeSummary,
    profile: &aiprod_planner::ResolutionProfile,
    duration_s: f64,
) -> Vec<String> {
    let mut problems = Vec::new();
    if (p.width, p.height) != (profile.width, profile.height) {
        problems.push(format!(
            "resolution {}×{}, profile {} wants {}×{}",
            p.width, p.height, profile.name, profile.width, profile.height
        ));
    }
    if p.video_codec != profile.video_codec {
        problems.push(format!(
            "video codec {}, profile wants {}",
            p.video_codec, profile.video_codec
        ));
    }
    if p.pixel_format != profile.pixel_format {
        problems.push(format!(
            "pixel format {}, profile wants {}",
            p.pixel_format, profile.pixel_format
        ));
    }
    if p.audio_codec != profile.audio.codec {
        problems.push(format!(
            "audio codec {:?}, profile wants {}",
            p.audio_codec, profile.audio.codec
        ));
    }
    // One frame plus the audio codec's priming/padding (AAC frames are 1024 samples).
    let fps = profile.fps_num as f64 / profile.fps_den.max(1) as f64;
    let tolerance_s = 1.0 / fps + 0.05;
    if (p.duration_s - duration_s).abs() > tolerance_s {
        problems.push(format!(
            "duration {:.3} s, plan wants {duration_s:.3} s ± {tolerance_s:.3}",
            p.duration_s
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_cost_is_rate_times_seconds_in_micros() {
        // 36 s at $0.10/h = $0.001 = 1000 micro-USD.
        assert_eq!(compute_cost_micros(36.0, 0.10), 1000);
        assert_eq!(compute_cost_micros(-1.0, 0.10), 0);
    }

    fn plan() -> proto::PlanOption {
        let step = |kind: &str, t: f64| proto::PlanStep {
            kind: kind.into(),
            estimated_time_s: t,
            ..Default::default()
        };
        proto::PlanOption {
            steps: vec![
                step("generate", 4.0),
                step("upscale", 1.0),
                step("qc", 0.5),
                step("encode", 3.0),
            ],
            cost_breakdown: vec![
                proto::CostLine {
                    item: "generation".into(),
                    usd_micros: 0,
                    basis: String::new(),
                },
                proto::CostLine {
                    item: "compute.generate".into(),
                    usd_micros: 100,
                    basis: String::new(),
                },
                proto::CostLine {
                    item: "compute.upscale".into(),
                    usd_micros: 25,
                    basis: String::new(),
                },
                proto::CostLine {
                    item: "compute.qc".into(),
                    usd_micros: 12,
                    basis: String::new(),
                },
                proto::CostLine {
                    item: "compute.encode".into(),
                    usd_micros: 75,
                    basis: String::new(),
                },
                proto::CostLine {
                    item: "storage".into(),
                    usd_micros: 40,
                    basis: "s".into(),
                },
            ],
            estimated_output_bytes: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn receipt_lines_pair_estimate_with_measurement() {
        let rec = JobRecord {
            job: proto::Job::default(),
            plan: plan(),
            seed: 0,
            idempotency_key: String::new(),
        };
        let run = |s: f64| {
            Some(StageRun {
                wall_s: s,
                compute_s: s,
                frames_per_s: 0.0,
            })
        };
        let m = Measured {
            generate: run(36.0),
            process: run(72.0),
            validate: run(3.6),
            output_bytes: 1500,
            ..Default::default()
        };
        let node = NodeRates {
            cpu_usd_per_hour: 0.10,
            gpu_usd_per_hour: 1.0,
            has_gpu: false,
        };
        let r = build(
            &rec,
            &proto::Job::default(),
            JobState::Succeeded,
            "",
            &m,
            &node,
        );
        let actual: Vec<(String, i64, i64)> = r
            .lines
            .iter()
            .map(|l| (l.item.clone(), l.estimated_usd_micros, l.actual_usd_micros))
            .collect();
        // process 72 s split 1:3 between upscale and encode → 18 s and 54 s.
        assert_eq!(
            actual,
            vec![
                ("generation".into(), 0, 0),
                ("compute.generate".into(), 100, 1000),
                ("compute.upscale".into(), 25, 500),
                ("compute.qc".into(), 12, 100),
                ("compute.encode".into(), 75, 1500),
                ("storage".into(), 40, 60),
            ]
        );
        assert_eq!(r.estimated_total_usd_micros, 252);
        assert_eq!(r.actual_total_usd_micros, 3160);
        assert_eq!(
            r.stages.iter().map(|s| s.estimated_s).collect::<Vec<_>>(),
            vec![4.0, 4.0, 0.5]
        );
        assert_eq!(r.actual_time_s, 36.0 + 72.0 + 3.6);
    }

    #[test]
    fn observations_key_node_stages_as_local_and_include_output_size() {
        let mut p = plan();
        p.backend = "veo".into();
        p.profile = "WEB".into();
        let run = |s: f64| {
            Some(StageRun {
                wall_s: s,
                compute_s: s,
                frames_per_s: 0.0,
            })
        };
        let m = Measured {
            generate: run(30.0),
            process: run(8.0),
            validate: run(1.0),
            output_bytes: 500,
            ..Default::default()
        };
        let got: Vec<(String, String, f64, f64)> = observations(&p, &m)
            .into_iter()
            .map(|o| (o.backend, o.stage, o.estimated, o.actual))
            .collect();
        assert_eq!(
            got,
            vec![
                ("veo".into(), "generate".into(), 4.0, 30.0),
                ("local".into(), "upscale".into(), 1.0, 2.0),
                ("local".into(), "encode".into(), 3.0, 6.0),
                ("local".into(), "qc".into(), 0.5, 1.0),
                ("veo".into(), "output_bytes.web".into(), 1000.0, 500.0),
            ]
        );
    }
}
