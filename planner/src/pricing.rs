//! The price table: provider prices, node rates, storage/egress, engine throughput, model priors
//! and tier candidates, parsed from `profiles/pricing.toml` (compiled in).
//!
//! Every money figure in the file carries a `source` and a `date`; the planner turns them into
//! cost lines, and the daemon shows the sources next to estimates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{PlannerError, Tier};

const EMBEDDED_PRICING: &str = include_str!("../../profiles/pricing.toml");
const PRICING_WHAT: &str = "pricing.toml";

/// USD per credit for a credit-based provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditPrice {
    pub usd_per_credit: f64,
    pub source: String,
    pub date: String,
}

/// USD per second of a provider's hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwarePrice {
    pub usd_per_s: f64,
    pub source: String,
    pub date: String,
}

/// Default node rates (the daemon config overrides them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDefaults {
    pub cpu_usd_per_hour: f64,
    pub gpu_usd_per_hour: f64,
    pub source: String,
    pub date: String,
}

/// Object storage for the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePrice {
    pub usd_per_gb_month: f64,
    /// How long an output is kept, for the storage line.
    pub retention_months: f64,
    pub source: String,
    pub date: String,
}

/// Transfer of the output to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressPrice {
    pub usd_per_gb: f64,
    pub source: String,
    pub date: String,
}

/// Local engine speeds in seconds per megapixel-frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    /// Where the numbers come from.
    pub note: String,
    pub local_render_s_per_mpx_frame: f64,
    pub qc_s_per_mpx_frame: f64,
    /// Encode rate for pixel formats not listed in `encode_s_per_mpx_frame`.
    pub encode_default_s_per_mpx_frame: f64,
    /// Encode rate per output pixel format.
    #[serde(default)]
    pub encode_s_per_mpx_frame: BTreeMap<String, f64>,
    pub date: String,
}

impl Throughput {
    /// Encode seconds per megapixel-frame for this pixel format.
    pub fn encode_rate(&self, pixel_format: &str) -> f64 {
        self.encode_s_per_mpx_frame
            .get(pixel_format)
            .copied()
            .unwrap_or(self.encode_default_s_per_mpx_frame)
    }
}

/// An upscaling engine the pipeline can run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpscalerSpec {
    /// Engine name shown in plan steps, e.g. `"gstreamer/videoscale"`.
    pub engine: String,
    /// Step detail, e.g. `"lanczos (Real-ESRGAN pending)"`.
    pub detail: String,
    /// Runs on the GPU (billed at the GPU rate when the node has one).
    pub gpu: bool,
    /// Seconds per megapixel of *output* frame: for resamplers, whose work grows with the output.
    #[serde(default)]
    pub s_per_output_mpx_frame: Option<f64>,
    /// Seconds per megapixel of *input* frame: for networks that run at the input size and only
    /// widen the last layer (Real-ESRGAN SRVGGNetCompact), so ×2 costs what ×4 costs per input
    /// pixel. Exactly one of the two rates is given.
    #[serde(default)]
    pub s_per_input_mpx_frame: Option<f64>,
    pub note: String,
    /// Quality multiplier per scale factor (keys "2", "4", ...).
    pub quality_factor: BTreeMap<String, f64>,
}

/// Which frame an upscaler's rate is per megapixel of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UpscaleRate {
    PerOutputMpx(f64),
    PerInputMpx(f64),
}

impl UpscalerSpec {
    /// The rate that prices this upscaler (validation guarantees exactly one is set).
    pub fn rate(&self) -> UpscaleRate {
        match (self.s_per_input_mpx_frame, self.s_per_output_mpx_frame) {
            (Some(r), _) => UpscaleRate::PerInputMpx(r),
            (None, Some(r)) => UpscaleRate::PerOutputMpx(r),
            (None, None) => UpscaleRate::PerOutputMpx(0.0),
        }
    }

    /// Scale factors with a quality factor, ascending.
    pub fn factors(&self) -> Vec<(u32, f64)> {
        let mut v: Vec<(u32, f64)> = self
            .quality_factor
            .iter()
            .filter_map(|(k, q)| k.trim().parse::<u32>().ok().map(|s| (s, *q)))
            .collect();
        v.sort_by_key(|(s, _)| *s);
        v
    }

    /// The quality multiplier for a scale factor (1.0 for no upscale).
    pub fn quality_factor_for(&self, scale: u32) -> Option<f64> {
        if scale <= 1 {
            return Some(1.0);
        }
        self.factors()
            .into_iter()
            .find(|(s, _)| *s == scale)
            .map(|(_, q)| q)
    }
}

/// How a model is charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "unit", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelPrice {
    /// Runs on this node: only compute, at the node's rates.
    Local,
    /// USD per second of output.
    UsdPerS { usd_per_s: f64 },
    /// Provider credits per second of output (credit price in `[credits.<backend>]`).
    CreditsPerS { credits_per_s: f64 },
    /// Provider hardware seconds per output second (price in `[hardware.<hardware>]`).
    HardwareS {
        hardware: String,
        hardware_s_per_output_s: f64,
    },
}

/// A generating model: price, native sizes, latency and quality prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// `"local"`, `"runway"`, `"veo"`, `"replicate"`.
    pub backend: String,
    /// aiprod's model name, e.g. `"gen4.5"`.
    pub model: String,
    /// The name the provider's API expects, when it differs.
    #[serde(default)]
    pub api_model: Option<String>,
    #[serde(default)]
    pub description: String,
    /// False for models that need an input image (not usable from a prompt alone).
    #[serde(default = "default_true")]
    pub text_to_video: bool,
    /// Prior quality 0..1 at native resolution.
    pub base_quality: f64,
    /// Native `[width, height]` pairs; empty means any size.
    #[serde(default)]
    pub native: Vec<[u32; 2]>,
    /// Local models only: runs on the GPU.
    #[serde(default)]
    pub gpu: bool,
    pub latency_base_s: f64,
    pub latency_s_per_output_s: f64,
    pub price: ModelPrice,
    pub source: String,
    pub date: String,
}

fn default_true() -> bool {
    true
}

/// How a tier candidate picks its generated resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateResolution {
    /// The model's native size closest to the profile (capped by `max_short_side`).
    Native,
    /// The profile's size.
    Full,
    /// Half the profile's linear size.
    Half,
    /// A quarter of the profile's linear size.
    Quarter,
}

impl CandidateResolution {
    /// Linear divisor for Full/Half/Quarter; None for Native.
    pub fn divisor(self) -> Option<u32> {
        match self {
            CandidateResolution::Native => None,
            CandidateResolution::Full => Some(1),
            CandidateResolution::Half => Some(2),
            CandidateResolution::Quarter => Some(4),
        }
    }
}

/// One entry of a tier's candidate list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierCandidate {
    pub backend: String,
    pub model: String,
    pub resolution: CandidateResolution,
    /// Native resolution only: largest allowed short side (e.g. 720 for "generate at 720p").
    #[serde(default)]
    pub max_short_side: Option<u32>,
}

/// Candidate lists per tier, in preference order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierCandidates {
    pub premium: Vec<TierCandidate>,
    pub balanced: Vec<TierCandidate>,
    pub economy: Vec<TierCandidate>,
}

impl TierCandidates {
    pub fn for_tier(&self, tier: Tier) -> &[TierCandidate] {
        match tier {
            Tier::Premium => &self.premium,
            Tier::Balanced => &self.balanced,
            Tier::Economy => &self.economy,
        }
    }
}

/// Everything in `pricing.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub currency: String,
    #[serde(default)]
    pub credits: BTreeMap<String, CreditPrice>,
    #[serde(default)]
    pub hardware: BTreeMap<String, HardwarePrice>,
    pub node_defaults: NodeDefaults,
    pub storage: StoragePrice,
    pub egress: EgressPrice,
    pub throughput: Throughput,
    /// Engine name of the upscaler the pipeline uses now.
    pub active_upscaler: String,
    pub upscalers: Vec<UpscalerSpec>,
    pub models: Vec<ModelSpec>,
    pub tiers: TierCandidates,
}

impl PriceTable {
    /// The table compiled into the binary. A unit test proves it parses and validates.
    pub fn embedded() -> Result<PriceTable, PlannerError> {
        PriceTable::from_toml_str(EMBEDDED_PRICING)
    }

    /// Parses and validates a pricing table.
    pub fn from_toml_str(text: &str) -> Result<PriceTable, PlannerError> {
        let table: PriceTable =
            toml::from_str(text).map_err(|e| PlannerError::data(PRICING_WHAT, e.to_string()))?;
        table.validate()?;
        Ok(table)
    }

    /// The model spec for `backend`/`model` (case-insensitive).
    pub fn model(&self, backend: &str, model: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| {
            m.backend.eq_ignore_ascii_case(backend) && m.model.eq_ignore_ascii_case(model)
        })
    }

    /// The upscaler the pipeline uses now.
    pub fn upscaler(&self) -> Result<&UpscalerSpec, PlannerError> {
        self.upscalers
            .iter()
            .find(|u| u.engine == self.active_upscaler)
            .ok_or_else(|| {
                PlannerError::data(
                    PRICING_WHAT,
                    format!("active_upscaler {:?} is not listed", self.active_upscaler),
                )
            })
    }

    /// Provider charge in USD for `duration_s` seconds of output from `model`, and its basis.
    pub fn generation_charge(
        &self,
        model: &ModelSpec,
        duration_s: f64,
    ) -> Result<(f64, String), PlannerError> {
        match &model.price {
            ModelPrice::Local => Ok((0.0, "local backend: no provider charge".to_string())),
            ModelPrice::UsdPerS { usd_per_s } => Ok((
                usd_per_s * duration_s,
                format!(
                    "{}/{}: ${usd_per_s}/s × {duration_s} s ({}, {})",
                    model.backend, model.model, model.source, model.date
                ),
            )),
            ModelPrice::CreditsPerS { credits_per_s } => {
                let credit = self.credits.get(&model.backend).ok_or_else(|| {
                    PlannerError::data(
                        PRICING_WHAT,
                        format!("no [credits.{}] for model {}", model.backend, model.model),
                    )
                })?;
                let credits = credits_per_s * duration_s;
                Ok((
                    credits * credit.usd_per_credit,
                    format!(
                        "{}/{}: {credits_per_s} credits/s × {duration_s} s = {credits} credits × ${}/credit ({}, {})",
                        model.backend, model.model, credit.usd_per_credit, model.source, model.date
                    ),
                ))
            }
            ModelPrice::HardwareS {
                hardware,
                hardware_s_per_output_s,
            } => {
                let hw = self.hardware.get(hardware).ok_or_else(|| {
                    PlannerError::data(
                        PRICING_WHAT,
                        format!("no [hardware.\"{hardware}\"] for model {}", model.model),
                    )
                })?;
                let hw_s = hardware_s_per_output_s * duration_s;
                Ok((
                    hw_s * hw.usd_per_s,
                    format!(
                        "{}/{}: ~{hw_s} s of {hardware} × ${}/s ({}, {}; {})",
                        model.backend, model.model, hw.usd_per_s, hw.source, hw.date, model.source
                    ),
                ))
            }
        }
    }

    fn validate(&self) -> Result<(), PlannerError> {
        let bad = |reason: String| Err(PlannerError::data(PRICING_WHAT, reason));
        let non_negative = |name: &str, v: f64| -> Result<(), PlannerError> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(PlannerError::data(
                    PRICING_WHAT,
                    format!("{name} = {v} must be a finite number ≥ 0"),
                ))
            }
        };
        for (k, c) in &self.credits {
            non_negative(&format!("credits.{k}.usd_per_credit"), c.usd_per_credit)?;
        }
        for (k, h) in &self.hardware {
            non_negative(&format!("hardware.{k}.usd_per_s"), h.usd_per_s)?;
        }
        non_negative(
            "node_defaults.cpu_usd_per_hour",
            self.node_defaults.cpu_usd_per_hour,
        )?;
        non_negative(
            "node_defaults.gpu_usd_per_hour",
            self.node_defaults.gpu_usd_per_hour,
        )?;
        non_negative("storage.usd_per_gb_month", self.storage.usd_per_gb_month)?;
        non_negative("storage.retention_months", self.storage.retention_months)?;
        non_negative("egress.usd_per_gb", self.egress.usd_per_gb)?;
        let t = &self.throughput;
        non_negative(
            "throughput.local_render_s_per_mpx_frame",
            t.local_render_s_per_mpx_frame,
        )?;
        non_negative("throughput.qc_s_per_mpx_frame", t.qc_s_per_mpx_frame)?;
        non_negative(
            "throughput.encode_default_s_per_mpx_frame",
            t.encode_default_s_per_mpx_frame,
        )?;
        for (k, v) in &t.encode_s_per_mpx_frame {
            non_negative(&format!("throughput.encode_s_per_mpx_frame.{k}"), *v)?;
        }
        for u in &self.upscalers {
            match (u.s_per_output_mpx_frame, u.s_per_input_mpx_frame) {
                (Some(r), None) => {
                    non_negative(&format!("upscaler {} s_per_output_mpx_frame", u.engine), r)?
                }
                (None, Some(r)) => {
                    non_negative(&format!("upscaler {} s_per_input_mpx_frame", u.engine), r)?
                }
                _ => {
                    return bad(format!(
                        "upscaler {}: give exactly one of s_per_output_mpx_frame and s_per_input_mpx_frame",
                        u.engine
                    ))
                }
            }
            if u.factors().len() != u.quality_factor.len() || u.factors().is_empty() {
                return bad(format!(
                    "upscaler {}: quality_factor keys must be integers ≥ 2 and at least one given",
                    u.engine
                ));
            }
            for (s, q) in u.factors() {
                if s < 2 || !(0.0..=1.0).contains(&q) {
                    return bad(format!(
                        "upscaler {}: quality_factor {s} = {q} must have scale ≥ 2 and factor in [0, 1]",
                        u.engine
                    ));
                }
            }
        }
        self.upscaler()?;
        for m in &self.models {
            let name = format!("{}/{}", m.backend, m.model);
            if !(0.0..=1.0).contains(&m.base_quality) {
                return bad(format!(
                    "{name}: base_quality {} not in [0, 1]",
                    m.base_quality
                ));
            }
            non_negative(&format!("{name} latency_base_s"), m.latency_base_s)?;
            non_negative(
                &format!("{name} latency_s_per_output_s"),
                m.latency_s_per_output_s,
            )?;
            if m.native.iter().any(|[w, h]| *w == 0 || *h == 0) {
                return bad(format!("{name}: native sizes must be positive"));
            }
            match &m.price {
                ModelPrice::Local => {}
                ModelPrice::UsdPerS { usd_per_s } => {
                    non_negative(&format!("{name} usd_per_s"), *usd_per_s)?
                }
                ModelPrice::CreditsPerS { credits_per_s } => {
                    non_negative(&format!("{name} credits_per_s"), *credits_per_s)?;
                    if !self.credits.contains_key(&m.backend) {
                        return bad(format!("{name}: no [credits.{}] table", m.backend));
                    }
                }
                ModelPrice::HardwareS {
                    hardware,
                    hardware_s_per_output_s,
                } => {
                    non_negative(
                        &format!("{name} hardware_s_per_output_s"),
                        *hardware_s_per_output_s,
                    )?;
                    if !self.hardware.contains_key(hardware) {
                        return bad(format!("{name}: no [hardware.\"{hardware}\"] table"));
                    }
                }
            }
        }
        for tier in Tier::ALL {
            let list = self.tiers.for_tier(tier);
            if list.is_empty() {
                return bad(format!(
                    "tiers.{}: no candidates",
                    tier.as_str().to_lowercase()
                ));
            }
            for c in list {
                let Some(m) = self.model(&c.backend, &c.model) else {
                    return bad(format!(
                        "tiers.{}: unknown model {}/{}",
                        tier.as_str().to_lowercase(),
                        c.backend,
                        c.model
                    ));
                };
                if !m.text_to_video {
                    return bad(format!(
                        "tiers: {}/{} cannot generate from a prompt",
                        c.backend, c.model
                    ));
                }
                if m.native.is_empty() == (c.resolution == CandidateResolution::Native) {
                    return bad(format!(
                        "tiers.{}: {}/{} resolution {:?} does not fit the model (native sizes: {})",
                        tier.as_str().to_lowercase(),
                        c.backend,
                        c.model,
                        c.resolution,
                        if m.native.is_empty() { "any" } else { "fixed" }
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::embedded().unwrap_or_else(|e| panic!("embedded pricing must parse: {e}"))
    }

    #[test]
    fn embedded_pricing_parses_with_published_prices() {
        let t = table();
        assert_eq!(t.credits["runway"].usd_per_credit, 0.01);
        assert_eq!(t.hardware["replicate/nvidia-a100-80gb"].usd_per_s, 0.0014);
        assert_eq!(t.storage.usd_per_gb_month, 0.023);
        assert_eq!(t.egress.usd_per_gb, 0.09);
        let credits = |m: &str| match t.model("runway", m).map(|m| &m.price) {
            Some(ModelPrice::CreditsPerS { credits_per_s }) => *credits_per_s,
            other => panic!("runway/{m}: {other:?}"),
        };
        assert_eq!(credits("gen4.5"), 12.0);
        assert_eq!(credits("gen4_turbo"), 5.0);
        assert_eq!(credits("veo3"), 40.0);
        let usd = |m: &str| match t.model("veo", m).map(|m| &m.price) {
            Some(ModelPrice::UsdPerS { usd_per_s }) => *usd_per_s,
            other => panic!("veo/{m}: {other:?}"),
        };
        assert_eq!(usd("veo-3.1"), 0.40);
        assert_eq!(usd("veo-3.1-fast"), 0.15);
        let up = t.upscaler().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(up.engine, "gstreamer/videoscale");
        assert_eq!(up.detail, "lanczos (Real-ESRGAN pending)");
        assert_eq!(up.quality_factor_for(2), Some(0.93));
        assert_eq!(up.quality_factor_for(1), Some(1.0));
        assert_eq!(up.quality_factor_for(3), None);
        for m in &t.models {
            assert!(!m.source.is_empty() && !m.date.is_empty(), "{}", m.model);
        }
    }

    #[test]
    fn runway_credit_math_is_exact() {
        let t = table();
        let m = t
            .model("runway", "gen4.5")
            .cloned()
            .unwrap_or_else(|| panic!("gen4.5"));
        let (usd, basis) = t
            .generation_charge(&m, 5.0)
            .unwrap_or_else(|e| panic!("{e}"));
        // 12 credits/s × 5 s = 60 credits × $0.01 = $0.60
        assert_eq!(
            crate::UsdMicros::from_usd(usd),
            Some(crate::UsdMicros(600_000))
        );
        assert!(basis.contains("60 credits"), "{basis}");
    }

    #[test]
    fn switching_the_upscaler_is_a_data_change() {
        let text = EMBEDDED_PRICING.replace(
            "active_upscaler = \"gstreamer/videoscale\"",
            "active_upscaler = \"aiprod/realesrgan\"",
        );
        let t = PriceTable::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let up = t.upscaler().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(up.engine, "aiprod/realesrgan");
        assert!(up.gpu);
    }

    #[test]
    fn bad_tables_are_refused() {
        let cases = [
            EMBEDDED_PRICING.replace("usd_per_gb = 0.09", "usd_per_gb = -0.09"),
            EMBEDDED_PRICING.replace(
                "active_upscaler = \"gstreamer/videoscale\"",
                "active_upscaler = \"nope\"",
            ),
            EMBEDDED_PRICING.replace("base_quality = 0.95", "base_quality = 1.5"),
            EMBEDDED_PRICING.replace(
                "model = \"testsrc-v1\"\nresolution = \"quarter\"",
                "model = \"ghost\"\nresolution = \"quarter\"",
            ),
            EMBEDDED_PRICING.replace("[credits.runway]", "[credits.elsewhere]"),
            "currency = ".to_string(),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_ne!(text, EMBEDDED_PRICING, "case {i} did not change the table");
            assert!(
                matches!(
                    PriceTable::from_toml_str(text),
                    Err(PlannerError::Data { .. })
                ),
                "case {i} accepted"
            );
        }
    }
}
