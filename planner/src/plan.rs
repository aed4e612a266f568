//! Estimating the three tiered plans for a job, checking constraints and recommending one.
//!
//! # Model
//!
//! Each tier takes the first candidate of its list in `pricing.toml` whose backend is available
//! (if none is, the first available candidate of any tier, cheapest tier first). The footage is
//! generated at the model's native size (or, for the local renderer, the profile's size divided by
//! 1, 2 or 4, rounded to even numbers), upscaled when smaller than the profile, quality-checked and
//! encoded. `frames = ceil(duration_s × fps)`; `mpx(r) = width × height / 1e6`.
//!
//! | step     | time (s)                                                                    |
//! |----------|-----------------------------------------------------------------------------|
//! | generate | local: frames × mpx(generated) × render rate × cal(backend, "generate")      |
//! |          | remote: (latency_base_s + latency_s_per_output_s × duration_s) × cal(...)    |
//! | upscale  | frames × mpx(generated × N, or generated for per-input rates) × upscaler rate |
//! |          |   × cal("local", "upscale")                                                 |
//! | qc       | frames × mpx(output) × qc rate × cal("local", "qc")                          |
//! | encode   | frames × mpx(output) × encode rate(pixel format) × cal("local", "encode")    |
//!
//! The plan's time is the sum of the step times (the stages run one after the other; remote
//! latency is wall-clock time but costs no local compute).
//!
//! Cost lines, each rounded to whole micro-dollars (half away from zero); the total is their sum:
//! - `generation`: provider charge (USD/s × duration, credits/s × duration × USD/credit, or hardware
//!   s/output s × duration × USD/s); 0 for local.
//! - `compute.<stage>`: step time × node rate / 3600 — the GPU rate only for a GPU engine on a node
//!   with a GPU, otherwise the CPU rate; remote generation costs no local compute.
//! - `storage`: output GB × USD/GB-month × retention months; `egress`: output GB × USD/GB, where
//!   output bytes = round((video + audio bits/s) × duration_s / 8) and 1 GB = 1e9 bytes.
//!
//! Expected quality = model base_quality × upscaler quality_factor[N] (1.0 without upscale).
//! N is the smallest factor the upscaler offers that covers the profile in both dimensions (the
//! largest one when none does); the encoder scales the rest.
//!
//! A plan is feasible when total cost ≤ max_cost_usd (compared in micro-dollars), expected
//! quality ≥ min_quality and time ≤ max_time_s. Scores: cost, time and quality are min-max
//! normalised across the feasible plans (1 = cheapest/fastest/best; all 1 when they are equal),
//! score = Σ normalised weight × value. Infeasible plans get a score relative to all three plans
//! and are never recommended. The highest score wins; ties go to BALANCED, then ECONOMY, PREMIUM.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pricing::{ModelSpec, PriceTable, TierCandidate, UpscaleRate};
use crate::{Calibration, PlannerError, ResolutionProfile, Tier, UsdMicros};

/// Longest prompt accepted, in characters (the providers' own limits are around 1000-2000).
pub const MAX_PROMPT_CHARS: usize = 2000;
/// Two scores closer than this are a tie.
const SCORE_EPSILON: f64 = 1e-12;
/// Bytes in a (decimal, as billed) gigabyte.
const BYTES_PER_GB: f64 = 1e9;
/// Backend name used for calibration of stages that always run on this node.
const LOCAL: &str = "local";

/// The calibration stage that corrects the expected output size of a profile
/// (actual bytes / nominal bytes), e.g. `"output_bytes.social"`.
pub fn output_bytes_stage(profile_name: &str) -> String {
    format!("output_bytes.{}", profile_name.to_ascii_lowercase())
}
/// Tie-break order for the recommendation: the middle ground first.
const TIE_ORDER: [Tier; 3] = [Tier::Balanced, Tier::Economy, Tier::Premium];

/// Hard limits a plan must meet; `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Constraints {
    pub max_cost_usd: Option<f64>,
    pub min_quality: Option<f64>,
    pub max_time_s: Option<f64>,
}

/// Relative importance of cost, quality and speed (any non-negative scale; normalised to sum 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preferences {
    pub cost_weight: f64,
    pub quality_weight: f64,
    pub speed_weight: f64,
}

impl Default for Preferences {
    fn default() -> Preferences {
        Preferences::balanced()
    }
}

impl Preferences {
    /// Cost dominates.
    pub fn cheapest() -> Preferences {
        Preferences {
            cost_weight: 0.7,
            quality_weight: 0.15,
            speed_weight: 0.15,
        }
    }

    /// Equal weights.
    pub fn balanced() -> Preferences {
        Preferences {
            cost_weight: 1.0,
            quality_weight: 1.0,
            speed_weight: 1.0,
        }
    }

    /// Quality dominates.
    pub fn best_quality() -> Preferences {
        Preferences {
            cost_weight: 0.15,
            quality_weight: 0.7,
            speed_weight: 0.15,
        }
    }

    /// Speed dominates.
    pub fn fastest() -> Preferences {
        Preferences {
            cost_weight: 0.15,
            quality_weight: 0.15,
            speed_weight: 0.7,
        }
    }

    /// Weights scaled to sum 1: (cost, quality, speed). Call only on validated preferences.
    pub fn normalised(&self) -> (f64, f64, f64) {
        let sum = self.cost_weight + self.quality_weight + self.speed_weight;
        if sum > 0.0 && sum.is_finite() {
            (
                self.cost_weight / sum,
                self.quality_weight / sum,
                self.speed_weight / sum,
            )
        } else {
            (1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0)
        }
    }
}

/// What this node's compute costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodeRates {
    pub cpu_usd_per_hour: f64,
    pub gpu_usd_per_hour: f64,
    pub has_gpu: bool,
}

impl NodeRates {
    /// The defaults from `pricing.toml` for a node without a GPU.
    pub fn from_defaults(prices: &PriceTable) -> NodeRates {
        NodeRates {
            cpu_usd_per_hour: prices.node_defaults.cpu_usd_per_hour,
            gpu_usd_per_hour: prices.node_defaults.gpu_usd_per_hour,
            has_gpu: false,
        }
    }
}

/// Everything a Plan request needs.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub prompt: &'a str,
    pub duration_s: f64,
    pub profile: &'a ResolutionProfile,
    pub constraints: Constraints,
    pub preferences: Preferences,
    /// Backends this node can use, e.g. `["local"]` or `["local", "runway", "veo", "replicate"]`.
    pub available_backends: &'a [&'a str],
    pub node: NodeRates,
    pub calibration: &'a Calibration,
    /// The daemon's configured limit on clip length.
    pub max_duration_s: f64,
}

/// A frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

impl Resolution {
    pub fn new(width: u32, height: u32) -> Resolution {
        Resolution { width, height }
    }

    /// Megapixels.
    pub fn megapixels(self) -> f64 {
        f64::from(self.width) * f64::from(self.height) / 1e6
    }

    fn covers(self, other: Resolution) -> bool {
        self.width >= other.width && self.height >= other.height
    }

    fn scaled(self, n: u32) -> Resolution {
        Resolution::new(self.width.saturating_mul(n), self.height.saturating_mul(n))
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}", self.width, self.height)
    }
}

/// A stage of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Generate,
    Upscale,
    Qc,
    Encode,
}

impl StepKind {
    /// `"generate"`, `"upscale"`, `"qc"`, `"encode"` (also the calibration stage names).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Generate => "generate",
            StepKind::Upscale => "upscale",
            StepKind::Qc => "qc",
            StepKind::Encode => "encode",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    /// e.g. `"local/testsrc-v1"`, `"gstreamer/videoscale"`, `"aiprod/qc"`, `"x264"`.
    pub engine: String,
    pub detail: String,
    /// Upscale factor (1 for other steps).
    pub scale: u32,
    pub estimated_time_s: f64,
    /// Provider charge plus compute for this step.
    pub estimated_cost: UsdMicros,
}

/// One line of the cost breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    /// `"generation"`, `"compute.generate"`, `"compute.upscale"`, `"compute.qc"`,
    /// `"compute.encode"`, `"storage"`, `"egress"`.
    pub item: String,
    pub usd: UsdMicros,
    /// How the number was made, with the price's source.
    pub basis: String,
}

/// One priced plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub tier: Tier,
    pub backend: String,
    pub model: String,
    pub duration_s: f64,
    pub generated: Resolution,
    pub output: Resolution,
    pub profile: String,
    pub steps: Vec<Step>,
    pub cost: Vec<CostLine>,
    pub total_cost: UsdMicros,
    pub estimated_time_s: f64,
    pub expected_quality: f64,
    pub feasible: bool,
    pub infeasible_reasons: Vec<String>,
    pub score: f64,
    pub estimated_output_bytes: u64,
}

impl Plan {
    /// The upscale factor (1 when there is no upscale step).
    pub fn upscale_factor(&self) -> u32 {
        self.steps
            .iter()
            .find(|s| s.kind == StepKind::Upscale)
            .map_or(1, |s| s.scale)
    }

    /// The cost line with this item name.
    pub fn cost_of(&self, item: &str) -> Option<UsdMicros> {
        self.cost.iter().find(|c| c.item == item).map(|c| c.usd)
    }

    /// "960×540 → ×2 → 1920×1080", "1920×1080", "1280×720 → ×2 → 1920×1080".
    pub fn resolution_path(&self) -> String {
        let n = self.upscale_factor();
        if n > 1 {
            format!("{} → ×{n} → {}", self.generated, self.output)
        } else if self.generated == self.output {
            self.output.to_string()
        } else {
            format!("{} → {}", self.generated, self.output)
        }
    }
}

/// The smallest change to the constraints that makes one plan feasible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relaxation {
    pub tier: Tier,
    /// New limits, only for the constraints that must change.
    pub max_cost_usd: Option<f64>,
    pub min_quality: Option<f64>,
    pub max_time_s: Option<f64>,
    /// Sum of the relative changes; smaller is cheaper to relax.
    pub relative_change: f64,
    /// e.g. "raise max_cost_usd to $0.052000 (ECONOMY)".
    pub text: String,
}

impl Relaxation {
    /// The constraints with this relaxation applied.
    pub fn apply(&self, c: &Constraints) -> Constraints {
        Constraints {
            max_cost_usd: self.max_cost_usd.or(c.max_cost_usd),
            min_quality: self.min_quality.or(c.min_quality),
            max_time_s: self.max_time_s.or(c.max_time_s),
        }
    }
}

/// The answer to a Plan request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSet {
    /// Exactly three: PREMIUM, BALANCED, ECONOMY.
    pub plans: Vec<Plan>,
    pub recommended: Option<Tier>,
    /// Deterministic plain-language reasoning built from the numbers.
    pub rationale: String,
    /// When no plan is feasible: the smallest change per plan, cheapest to relax first.
    pub relaxations: Vec<String>,
    /// The same relaxations, structured.
    pub suggestions: Vec<Relaxation>,
}

impl PlanSet {
    /// The plan of a tier.
    pub fn plan(&self, tier: Tier) -> Option<&Plan> {
        self.plans.iter().find(|p| p.tier == tier)
    }

    /// The recommended plan, if any plan is feasible.
    pub fn recommended_plan(&self) -> Option<&Plan> {
        self.recommended.and_then(|t| self.plan(t))
    }
}

/// Estimates all three tiers, checks constraints and recommends one.
pub fn estimate_plans(req: &PlanRequest, prices: &PriceTable) -> Result<PlanSet, PlannerError> {
    validate(req)?;
    let mut plans = Vec::with_capacity(Tier::ALL.len());
    for tier in Tier::ALL {
        plans.push(build_plan(req, prices, tier)?);
    }
    let weights = req.preferences.normalised();

    let all: Vec<usize> = (0..plans.len()).collect();
    let feasible: Vec<usize> = all.iter().copied().filter(|&i| plans[i].feasible).collect();
    let feasible_scores = scores(&plans, &feasible, weights);
    let all_scores = scores(&plans, &all, weights);
    for (i, plan) in plans.iter_mut().enumerate() {
        plan.score = match feasible.iter().position(|&f| f == i) {
            Some(k) => feasible_scores[k],
            None => all_scores[i],
        };
    }

    let mut recommended: Option<&Plan> = None;
    for tier in TIE_ORDER {
        let Some(p) = plans.iter().find(|p| p.tier == tier && p.feasible) else {
            continue;
        };
        if recommended.is_none_or(|r| p.score > r.score + SCORE_EPSILON) {
            recommended = Some(p);
        }
    }

    let (rationale, suggestions) = match recommended {
        Some(r) => (rationale(r, &plans, weights), Vec::new()),
        None => {
            let suggestions = relaxations(&plans, &req.constraints);
            (no_plan_rationale(&plans), suggestions)
        }
    };
    let recommended = recommended.map(|p| p.tier);
    Ok(PlanSet {
        plans,
        recommended,
        rationale,
        relaxations: suggestions.iter().map(|s| s.text.clone()).collect(),
        suggestions,
    })
}

/// Estimates one tier (for Generate with prompt + tier). The score is the one the tier gets in
/// [`estimate_plans`], so both calls agree.
pub fn estimate_plan(
    req: &PlanRequest,
    prices: &PriceTable,
    tier: Tier,
) -> Result<Plan, PlannerError> {
    let set = estimate_plans(req, prices)?;
    set.plans
        .into_iter()
        .find(|p| p.tier == tier)
        .ok_or_else(|| PlannerError::data("plan", format!("no {tier} plan was built")))
}

impl Constraints {
    /// Refuses limits that are not numbers in range, naming the request field.
    pub fn validate(&self) -> Result<(), PlannerError> {
        let c = self;
        if let Some(v) = c.max_cost_usd {
            if !v.is_finite() || v < 0.0 || UsdMicros::from_usd(v).is_none() {
                return Err(PlannerError::field(
                    "constraints.max_cost_usd",
                    format!("{v} must be a finite amount ≥ 0"),
                ));
            }
        }
        if let Some(v) = c.min_quality {
            if !(0.0..=1.0).contains(&v) {
                return Err(PlannerError::field(
                    "constraints.min_quality",
                    format!("{v} must be in [0, 1]"),
                ));
            }
        }
        if let Some(v) = c.max_time_s {
            if !v.is_finite() || v <= 0.0 {
                return Err(PlannerError::field(
                    "constraints.max_time_s",
                    format!("{v} must be a finite number of seconds > 0"),
                ));
            }
        }
        Ok(())
    }
}

impl Preferences {
    /// Refuses negative or non-finite weights, or all weights 0 (field "preferences").
    pub fn validate(&self) -> Result<(), PlannerError> {
        let p = self;
        for (name, w) in [
            ("cost_weight", p.cost_weight),
            ("quality_weight", p.quality_weight),
            ("speed_weight", p.speed_weight),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(PlannerError::field(
                    "preferences",
                    format!("{name} {w} must be a finite number ≥ 0"),
                ));
            }
        }
        if p.cost_weight + p.quality_weight + p.speed_weight <= 0.0 {
            return Err(PlannerError::field(
                "preferences",
                "at least one weight must be > 0",
            ));
        }
        Ok(())
    }
}

fn validate(req: &PlanRequest) -> Result<(), PlannerError> {
    let prompt = req.prompt.trim();
    if prompt.is_empty() {
        return Err(PlannerError::field("prompt", "must not be empty"));
    }
    let chars = req.prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(PlannerError::field(
            "prompt",
            format!("is {chars} characters; the limit is {MAX_PROMPT_CHARS}"),
        ));
    }
    let d = req.duration_s;
    if !d.is_finite() || d <= 0.0 {
        return Err(PlannerError::field(
            "duration_s",
            format!("{d} must be a finite number of seconds > 0"),
        ));
    }
    // A NaN limit (misconfiguration) refuses rather than admitting everything.
    if req.max_duration_s.is_nan() || d > req.max_duration_s {
        return Err(PlannerError::field(
            "duration_s",
            format!("{d} s exceeds the limit of {} s", req.max_duration_s),
        ));
    }
    req.constraints.validate()?;
    req.preferences.validate()?;
    for (name, v) in [
        ("cpu_usd_per_hour", req.node.cpu_usd_per_hour),
        ("gpu_usd_per_hour", req.node.gpu_usd_per_hour),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(PlannerError::data(
                "node rates",
                format!("{name} {v} must be a finite number ≥ 0"),
            ));
        }
    }
    let prof = req.profile;
    if prof.width == 0 || prof.height == 0 || prof.fps_num == 0 || prof.fps_den == 0 {
        return Err(PlannerError::data(
            format!("profile {}", prof.name),
            "width, height and frame rate must be positive",
        ));
    }
    Ok(())
}

/// Picks the candidate for a tier: its own list first, then any tier's list (cheapest first).
fn choose_candidate<'p>(
    req: &PlanRequest,
    prices: &'p PriceTable,
    tier: Tier,
) -> Result<(&'p TierCandidate, &'p ModelSpec), PlannerError> {
    let available = |backend: &str| {
        req.available_backends
            .iter()
            .any(|b| b.trim().eq_ignore_ascii_case(backend))
    };
    let fallback = [Tier::Economy, Tier::Balanced, Tier::Premium];
    let lists = std::iter::once(tier).chain(fallback);
    for t in lists {
        for c in prices.tiers.for_tier(t) {
            if !available(&c.backend) {
                continue;
            }
            if let Some(m) = prices.model(&c.backend, &c.model) {
                return Ok((c, m));
            }
        }
    }
    Err(PlannerError::data(
        "pricing.toml tiers",
        format!(
            "no candidate for {tier} uses an available backend (available: [{}])",
            req.available_backends.join(", ")
        ),
    ))
}

/// Rounds to the nearest even number ≥ 2 (video encoders want even sizes for 4:2:0/4:2:2).
fn even(v: f64) -> u32 {
    let half = (v / 2.0).round().max(1.0);
    // Bounded by the profile's size, far below u32::MAX.
    (half as u32).saturating_mul(2)
}

/// The model's native size that best fits the output: closest aspect ratio, short side within
/// the cap, the smallest one covering the output, else the largest.
fn choose_native(native: &[[u32; 2]], out: Resolution, max_short_side: Option<u32>) -> Resolution {
    let target = (f64::from(out.width) / f64::from(out.height)).ln();
    let dist = |r: &Resolution| ((f64::from(r.width) / f64::from(r.height)).ln() - target).abs();
    let all: Vec<Resolution> = native
        .iter()
        .map(|[w, h]| Resolution::new(*w, *h))
        .collect();
    let best = all.iter().map(dist).fold(f64::INFINITY, f64::min);
    let shaped: Vec<Resolution> = all
        .iter()
        .copied()
        .filter(|r| dist(r) <= best + 1e-9)
        .collect();
    let capped: Vec<Resolution> = match max_short_side {
        Some(cap) => shaped
            .iter()
            .copied()
            .filter(|r| r.width.min(r.height) <= cap)
            .collect(),
        None => shaped.clone(),
    };
    let pool = if capped.is_empty() { shaped } else { capped };
    let area = |r: &Resolution| u64::from(r.width) * u64::from(r.height);
    pool.iter()
        .copied()
        .filter(|r| r.covers(out))
        .min_by_key(area)
        .or_else(|| pool.iter().copied().max_by_key(area))
        .unwrap_or(out)
}

struct Money<'a> {
    what: &'a str,
}

impl Money<'_> {
    fn micros(&self, usd: f64) -> Result<UsdMicros, PlannerError> {
        UsdMicros::from_usd(usd).ok_or_else(|| {
            PlannerError::data(self.what, format!("amount {usd} USD is not representable"))
        })
    }
}

fn build_plan(req: &PlanRequest, prices: &PriceTable, tier: Tier) -> Result<Plan, PlannerError> {
    let (candidate, model) = choose_candidate(req, prices, tier)?;
    let profile = req.profile;
    let output = Resolution::new(profile.width, profile.height);
    let generated = match candidate.resolution.divisor() {
        Some(d) if model.native.is_empty() => Resolution::new(
            even(f64::from(profile.width) / f64::from(d)),
            even(f64::from(profile.height) / f64::from(d)),
        ),
        _ if model.native.is_empty() => output,
        _ => choose_native(&model.native, output, candidate.max_short_side),
    };
    let upscaler = prices.upscaler()?;
    let scale = if generated.covers(output) {
        1
    } else {
        let need = (f64::from(output.width) / f64::from(generated.width))
            .max(f64::from(output.height) / f64::from(generated.height));
        let factors = upscaler.factors();
        factors
            .iter()
            .find(|(s, _)| f64::from(*s) >= need - 1e-9)
            .or(factors.last())
            .map_or(1, |(s, _)| *s)
    };
    let quality_factor = upscaler.quality_factor_for(scale).unwrap_or(1.0);
    let expected_quality = model.base_quality * quality_factor;

    let duration_s = req.duration_s;
    // Subtract a hair before ceil so 0.1 s × 30 fps = 3.0000000000000004 is 3 frames, not 4.
    let frames = (duration_s * profile.fps() - 1e-9).ceil().max(1.0);
    let cal = req.calibration;
    let node = req.node;
    let rate_per_s = |gpu: bool| {
        if gpu && node.has_gpu {
            node.gpu_usd_per_hour / 3600.0
        } else {
            node.cpu_usd_per_hour / 3600.0
        }
    };
    let rate_name = |gpu: bool| {
        if gpu && node.has_gpu {
            format!("GPU ${}/h", node.gpu_usd_per_hour)
        } else {
            format!("CPU ${}/h", node.cpu_usd_per_hour)
        }
    };
    let money = Money { what: "plan costs" };
    let mut steps = Vec::with_capacity(4);
    let mut cost = Vec::with_capacity(7);
    let t = &prices.throughput;
    let is_local = matches!(model.price, crate::pricing::ModelPrice::Local);
    let backend = model.backend.to_ascii_lowercase();

    // generate
    let (charge_usd, charge_basis) = prices.generation_charge(model, duration_s)?;
    let generation = money.micros(charge_usd)?;
    let gen_factor = cal.factor(&backend, StepKind::Generate.as_str());
    let (gen_time, gen_compute, gen_compute_basis) = if is_local {
        let time = frames * generated.megapixels() * t.local_render_s_per_mpx_frame * gen_factor;
        (
            time,
            money.micros(time * rate_per_s(model.gpu))?,
            format!(
                "{time:.3} s × {} ({} frames × {:.6} Mpx × {} s/Mpx-frame × calibration {gen_factor})",
                rate_name(model.gpu),
                frames,
                generated.megapixels(),
                t.local_render_s_per_mpx_frame
            ),
        )
    } else {
        let time = (model.latency_base_s + model.latency_s_per_output_s * duration_s) * gen_factor;
        (
            time,
            UsdMicros::ZERO,
            format!("remote generation on {backend}: no local compute"),
        )
    };
    let engine = format!("{}/{}", model.backend, model.model);
    steps.push(Step {
        kind: StepKind::Generate,
        engine: engine.clone(),
        detail: format!(
            "text to video, {duration_s} s at {generated}, {} fps ({frames} frames)",
            fps_text(profile)
        ),
        scale: 1,
        estimated_time_s: gen_time,
        estimated_cost: generation + gen_compute,
    });
    cost.push(CostLine {
        item: "generation".into(),
        usd: generation,
        basis: charge_basis,
    });
    cost.push(CostLine {
        item: "compute.generate".into(),
        usd: gen_compute,
        basis: gen_compute_basis,
    });

    // upscale
    if scale > 1 {
        let upscaled = generated.scaled(scale);
        let f = cal.factor(LOCAL, StepKind::Upscale.as_str());
        let (priced_mpx, rate_s, per) = match upscaler.rate() {
            UpscaleRate::PerOutputMpx(r) => (upscaled.megapixels(), r, "output"),
            UpscaleRate::PerInputMpx(r) => (generated.megapixels(), r, "input"),
        };
        let time = frames * priced_mpx * rate_s * f;
        let usd = money.micros(time * rate_per_s(upscaler.gpu))?;
        let fit = if upscaled == output {
            String::new()
        } else {
            format!(", fitted to {output} at encode")
        };
        steps.push(Step {
            kind: StepKind::Upscale,
            engine: upscaler.engine.clone(),
            detail: format!("{}: {generated} → {upscaled}{fit}", upscaler.detail),
            scale,
            estimated_time_s: time,
            estimated_cost: usd,
        });
        cost.push(CostLine {
            item: "compute.upscale".into(),
            usd,
            basis: format!(
                "{time:.3} s × {} ({frames} frames × {priced_mpx:.6} {per} Mpx × {rate_s} s/Mpx-frame × calibration {f})",
                rate_name(upscaler.gpu),
            ),
        });
    } else {
        cost.push(CostLine {
            item: "compute.upscale".into(),
            usd: UsdMicros::ZERO,
            basis: "no upscale: generated at or above the output size".into(),
        });
    }

    // qc and encode, both at the output size on the CPU
    let out_mpx = output.megapixels();
    let encode_rate = t.encode_rate(&profile.pixel_format);
    let local_stages = [
        (
            StepKind::Qc,
            "aiprod/qc",
            format!(
                "black, freeze, blur, silence, loudness ({} LUFS) at {output}",
                profile.audio.loudness_lufs
            ),
            t.qc_s_per_mpx_frame,
        ),
        (
            StepKind::Encode,
            "x264",
            format!(
                "{} {} {} b/s + {} → {} {output}",
                profile.video_codec,
                profile.pixel_format,
                profile.video_bitrate_bps,
                audio_text(profile),
                profile.container
            ),
            encode_rate,
        ),
    ];
    for (kind, engine, detail, rate) in local_stages {
        let f = cal.factor(LOCAL, kind.as_str());
        let time = frames * out_mpx * rate * f;
        let usd = money.micros(time * rate_per_s(false))?;
        steps.push(Step {
            kind,
            engine: engine.into(),
            detail,
            scale: 1,
            estimated_time_s: time,
            estimated_cost: usd,
        });
        cost.push(CostLine {
            item: format!("compute.{}", kind.as_str()),
            usd,
            basis: format!(
                "{time:.3} s × {} ({frames} frames × {out_mpx:.6} Mpx × {rate} s/Mpx-frame × calibration {f})",
                rate_name(false)
            ),
        });
    }

    // storage and egress of the delivered file: the profile's nominal bitrate × duration,
    // corrected by what this backend's files for this profile really weighed (encoders
    // undershoot a nominal bitrate on easy content).
    let size_factor = cal.factor(&backend, &output_bytes_stage(&profile.name));
    let bytes_f = (profile.total_bitrate_bps() as f64 * duration_s / 8.0 * size_factor).round();
    let estimated_output_bytes = if bytes_f.is_finite() && bytes_f >= 0.0 {
        bytes_f as u64
    } else {
        0
    };
    let gb = estimated_output_bytes as f64 / BYTES_PER_GB;
    let s = &prices.storage;
    cost.push(CostLine {
        item: "storage".into(),
        usd: money.micros(gb * s.usd_per_gb_month * s.retention_months)?,
        basis: format!(
            "{gb:.6} GB (bitrate × duration × calibration {size_factor}) × ${}/GB-month × {} months ({}, {})",
            s.usd_per_gb_month, s.retention_months, s.source, s.date
        ),
    });
    let e = &prices.egress;
    cost.push(CostLine {
        item: "egress".into(),
        usd: money.micros(gb * e.usd_per_gb)?,
        basis: format!(
            "{gb:.6} GB × ${}/GB ({}, {})",
            e.usd_per_gb, e.source, e.date
        ),
    });

    let total_cost: UsdMicros = cost.iter().map(|c| c.usd).sum();
    let estimated_time_s: f64 = steps.iter().map(|s| s.estimated_time_s).sum();

    let mut plan = Plan {
        tier,
        backend,
        model: model.model.clone(),
        duration_s,
        generated,
        output,
        profile: profile.name.clone(),
        steps,
        cost,
        total_cost,
        estimated_time_s,
        expected_quality,
        feasible: true,
        infeasible_reasons: Vec::new(),
        score: 0.0,
        estimated_output_bytes,
    };
    plan.infeasible_reasons = violations(&plan, &req.constraints);
    plan.feasible = plan.infeasible_reasons.is_empty();
    Ok(plan)
}

fn fps_text(p: &ResolutionProfile) -> String {
    if p.fps_den == 1 {
        p.fps_num.to_string()
    } else {
        format!("{}/{}", p.fps_num, p.fps_den)
    }
}

fn audio_text(p: &ResolutionProfile) -> String {
    match p.audio.bitrate_bps {
        Some(b) if !p.audio.codec.starts_with("pcm_") => format!("{} {b} b/s", p.audio.codec),
        _ => format!(
            "{} {} Hz {} ch",
            p.audio.codec, p.audio.sample_rate_hz, p.audio.channels
        ),
    }
}

/// The limit as micro-dollars (validated before, so the conversion succeeds).
fn cost_limit(c: &Constraints) -> Option<UsdMicros> {
    c.max_cost_usd.and_then(UsdMicros::from_usd)
}

fn violations(plan: &Plan, c: &Constraints) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(limit) = cost_limit(c) {
        if plan.total_cost > limit {
            reasons.push(format!(
                "cost {} exceeds max_cost_usd {}",
                plan.total_cost, limit
            ));
        }
    }
    if let Some(min) = c.min_quality {
        if plan.expected_quality < min {
            reasons.push(format!(
                "quality {:.4} is below min_quality {:.4}",
                plan.expected_quality, min
            ));
        }
    }
    if let Some(max) = c.max_time_s {
        if plan.estimated_time_s > max {
            reasons.push(format!(
                "time {:.2} s exceeds max_time_s {:.2} s",
                plan.estimated_time_s, max
            ));
        }
    }
    reasons
}

/// Min-max normalised weighted scores for `plans[idx]` (one per index, same order).
fn scores(plans: &[Plan], idx: &[usize], (wc, wq, ws): (f64, f64, f64)) -> Vec<f64> {
    let norm = |values: Vec<f64>, higher_is_better: bool| -> Vec<f64> {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        values
            .iter()
            .map(|v| {
                if hi - lo <= 0.0 || !(hi - lo).is_finite() {
                    1.0
                } else if higher_is_better {
                    (v - lo) / (hi - lo)
                } else {
                    (hi - v) / (hi - lo)
                }
            })
            .collect()
    };
    let cost = norm(
        idx.iter().map(|&i| plans[i].total_cost.as_usd()).collect(),
        false,
    );
    let time = norm(
        idx.iter().map(|&i| plans[i].estimated_time_s).collect(),
        false,
    );
    let quality = norm(
        idx.iter().map(|&i| plans[i].expected_quality).collect(),
        true,
    );
    (0..idx.len())
        .map(|k| wc * cost[k] + wq * quality[k] + ws * time[k])
        .collect()
}

fn rationale(r: &Plan, plans: &[Plan], (wc, wq, ws): (f64, f64, f64)) -> String {
    let mut out = format!(
        "{} ({}/{}, {}): {}, ~{:.1} s, quality {:.2}.",
        r.tier,
        r.backend,
        r.model,
        r.resolution_path(),
        r.total_cost,
        r.estimated_time_s,
        r.expected_quality
    );
    for other in plans.iter().filter(|p| p.tier != r.tier) {
        if !other.feasible {
            out.push_str(&format!(
                " {} is ruled out: {}.",
                other.tier,
                other.infeasible_reasons.join("; ")
            ));
            continue;
        }
        out.push_str(&format!(
            " Against {}: {}, {}, {}; score {:.2} vs {:.2}.",
            other.tier,
            compare_cost(r.total_cost, other.total_cost),
            compare_quality(r.expected_quality, other.expected_quality),
            compare_time(r.estimated_time_s, other.estimated_time_s),
            r.score,
            other.score
        ));
    }
    out.push_str(&format!(
        " Weights: cost {wc:.2}, quality {wq:.2}, speed {ws:.2}."
    ));
    out
}

fn compare_cost(mine: UsdMicros, theirs: UsdMicros) -> String {
    if mine == theirs {
        return "same cost".into();
    }
    if theirs.0 <= 0 {
        return format!("{} more expensive", mine - theirs);
    }
    let pct = (mine.as_usd() - theirs.as_usd()).abs() / theirs.as_usd() * 100.0;
    if mine < theirs {
        format!("{pct:.0}% cheaper")
    } else {
        format!("{pct:.0}% more expensive")
    }
}

fn compare_quality(mine: f64, theirs: f64) -> String {
    let d = mine - theirs;
    if d.abs() < 0.005 {
        "same quality".into()
    } else if d > 0.0 {
        format!("{d:.2} higher quality")
    } else {
        format!("{:.2} lower quality", -d)
    }
}

fn compare_time(mine: f64, theirs: f64) -> String {
    let d = mine - theirs;
    if d.abs() < 0.05 {
        "same time".into()
    } else if d < 0.0 {
        format!("{:.1} s faster", -d)
    } else {
        format!("{d:.1} s slower")
    }
}

fn no_plan_rationale(plans: &[Plan]) -> String {
    let mut out = String::from("No plan meets the constraints:");
    for p in plans {
        out.push_str(&format!(
            " {} ({}/{}) {}.",
            p.tier,
            p.backend,
            p.model,
            p.infeasible_reasons.join("; ")
        ));
    }
    out.push_str(" See the relaxations for the smallest change that makes each plan feasible.");
    out
}

/// For each infeasible plan, the smallest change of the violated limits that admits it, sorted by
/// the relative size of the change (ties in tier order).
fn relaxations(plans: &[Plan], c: &Constraints) -> Vec<Relaxation> {
    let mut out: Vec<Relaxation> = plans
        .iter()
        .filter(|p| !p.feasible)
        .map(|p| {
            let mut parts = Vec::new();
            let mut relative_change = 0.0;
            let mut relax = Relaxation {
                tier: p.tier,
                max_cost_usd: None,
                min_quality: None,
                max_time_s: None,
                relative_change: 0.0,
                text: String::new(),
            };
            if let Some(limit) = cost_limit(c) {
                if p.total_cost > limit {
                    relax.max_cost_usd = Some(p.total_cost.as_usd());
                    relative_change +=
                        (p.total_cost.as_usd() - limit.as_usd()) / limit.as_usd().max(1e-6);
                    parts.push(format!("raise max_cost_usd to {}", p.total_cost));
                }
            }
            if let Some(min) = c.min_quality {
                if p.expected_quality < min {
                    // Two decimals, rounded down so the suggested limit admits the plan.
                    let mut q = (p.expected_quality * 100.0).floor() / 100.0;
                    if q > p.expected_quality {
                        q -= 0.01;
                    }
                    let q = q.max(0.0);
                    relax.min_quality = Some(q);
                    relative_change += (min - q) / min;
                    parts.push(format!("lower min_quality to {q:.2}"));
                }
            }
            if let Some(max) = c.max_time_s {
                if p.estimated_time_s > max {
                    // One decimal, rounded up so the suggested limit admits the plan.
                    let mut t = (p.estimated_time_s * 10.0).ceil() / 10.0;
                    if t < p.estimated_time_s {
                        t += 0.1;
                    }
                    relax.max_time_s = Some(t);
                    relative_change += (t - max) / max;
                    parts.push(format!("raise max_time_s to {t:.1} s"));
                }
            }
            relax.relative_change = relative_change;
            relax.text = format!("{} ({})", parts.join(" and "), p.tier);
            relax
        })
        .collect();
    out.sort_by(|a, b| {
        a.relative_change
            .total_cmp(&b.relative_change)
            .then(a.tier.cmp(&b.tier))
    });
    out
}

#[cfg(test)]
mod tests;
