//! Plan tests. Expected numbers are worked out by hand from the embedded `pricing.toml`:
//! render 0.010, upscale (videoscale) 0.004, qc 0.002, encode yuv420p 0.012 / yuv422p10le 0.030
//! s per megapixel-frame; storage $0.023/GB-month × 1 month; egress $0.09/GB.

use super::*;
use crate::{Calibration, CalibrationEntry, PriceTable, ProfileCatalog};

const LOCAL_ONLY: &[&str] = &["local"];
const ALL_BACKENDS: &[&str] = &["local", "runway", "veo", "replicate"];

/// $0.36/h CPU = $0.0001/s, so compute micro-dollars = seconds × 100.
const NODE: NodeRates = NodeRates {
    cpu_usd_per_hour: 0.36,
    gpu_usd_per_hour: 3.6,
    has_gpu: false,
};

fn prices() -> PriceTable {
    PriceTable::embedded().unwrap_or_else(|e| panic!("embedded pricing: {e}"))
}

fn profile(name: &str) -> ResolutionProfile {
    let catalog = ProfileCatalog::embedded().unwrap_or_else(|e| panic!("embedded profiles: {e}"));
    catalog
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no profile {name}"))
}

fn request<'a>(
    profile: &'a ResolutionProfile,
    backends: &'a [&'a str],
    calibration: &'a Calibration,
) -> PlanRequest<'a> {
    PlanRequest {
        prompt: "a red fox running through snow at dawn",
        duration_s: 5.0,
        profile,
        constraints: Constraints::default(),
        preferences: Preferences::default(),
        available_backends: backends,
        node: NODE,
        calibration,
        max_duration_s: 60.0,
    }
}

fn plans(req: &PlanRequest) -> PlanSet {
    estimate_plans(req, &prices()).unwrap_or_else(|e| panic!("estimate_plans: {e}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(close(got, want), "{what}: got {got}, want {want}");
}

fn micros(p: &Plan, item: &str) -> i64 {
    p.cost_of(item)
        .unwrap_or_else(|| panic!("{} has no {item} line", p.tier))
        .0
}

fn field_of(r: Result<PlanSet, PlannerError>) -> &'static str {
    match r {
        Err(PlannerError::InvalidField { field, .. }) => field,
        other => panic!("expected InvalidField, got {other:?}"),
    }
}

#[test]
fn local_web_plans_exact_numbers() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let set = plans(&request(&web, LOCAL_ONLY, &cal));
    let tiers: Vec<Tier> = set.plans.iter().map(|p| p.tier).collect();
    assert_eq!(tiers, Tier::ALL);

    // Shared: 5 s × 30 fps = 150 frames; output 1920×1080 = 2.0736 Mpx.
    //   qc     150 × 2.0736 × 0.002 = 0.62208 s → × $0.0001/s = 62.208 µ$ → 62
    //   encode 150 × 2.0736 × 0.012 = 3.73248 s → 373.248 µ$ → 373
    //   bytes  (8_000_000 + 192_000) b/s × 5 s / 8 = 5_120_000 B = 0.00512 GB
    //   storage 0.00512 × 0.023 × 1 = 0.00011776 → 118 µ$; egress 0.00512 × 0.09 = 0.0004608 → 461 µ$
    for p in &set.plans {
        assert_eq!(p.backend, "local");
        assert_eq!(p.model, "testsrc-v1");
        assert_eq!(p.output, Resolution::new(1920, 1080));
        assert_eq!(p.profile, "WEB");
        assert_eq!(p.estimated_output_bytes, 5_120_000);
        assert_eq!(micros(p, "generation"), 0);
        assert_eq!(micros(p, "compute.qc"), 62);
        assert_eq!(micros(p, "compute.encode"), 373);
        assert_eq!(micros(p, "storage"), 118);
        assert_eq!(micros(p, "egress"), 461);
        assert_eq!(p.total_cost, p.cost.iter().map(|c| c.usd).sum());
        assert!(p.feasible);
    }

    // PREMIUM: render 1920×1080: 150 × 2.0736 × 0.010 = 3.1104 s → 311.04 µ$ → 311; no upscale.
    // total 311 + 0 + 62 + 373 + 118 + 461 = 1325; time 3.1104 + 0.62208 + 3.73248 = 7.46496 s.
    let p = &set.plans[0];
    assert_eq!(p.generated, Resolution::new(1920, 1080));
    let kinds: Vec<&str> = p.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["generate", "qc", "encode"]);
    assert_eq!(micros(p, "compute.generate"), 311);
    assert_eq!(micros(p, "compute.upscale"), 0);
    assert_eq!(p.total_cost, UsdMicros(1325));
    assert_close("premium time", p.estimated_time_s, 7.46496);
    assert_close("premium quality", p.expected_quality, 0.88);

    // BALANCED: render 960×540 = 0.5184 Mpx: 150 × 0.5184 × 0.010 = 0.7776 s → 77.76 → 78 µ$;
    // upscale ×2 to 1920×1080: 150 × 2.0736 × 0.004 = 1.24416 s → 124.416 → 124 µ$.
    // total 78 + 124 + 62 + 373 + 118 + 461 = 1216; time 0.7776 + 1.24416 + 0.62208 + 3.73248 = 6.37632.
    // quality 0.88 × 0.93 = 0.8184.
    let b = &set.plans[1];
    assert_eq!(b.generated, Resolution::new(960, 540));
    let kinds: Vec<&str> = b.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["generate", "upscale", "qc", "encode"]);
    assert_eq!(b.steps[1].scale, 2);
    assert_eq!(b.steps[1].engine, "gstreamer/videoscale");
    assert!(b.steps[1]
        .detail
        .starts_with("lanczos (Real-ESRGAN pending)"));
    assert_eq!(micros(b, "compute.generate"), 78);
    assert_eq!(micros(b, "compute.upscale"), 124);
    assert_eq!(b.total_cost, UsdMicros(1216));
    assert_close("balanced time", b.estimated_time_s, 6.37632);
    assert_close("balanced quality", b.expected_quality, 0.8184);

    // ECONOMY: render 480×270 = 0.1296 Mpx: 150 × 0.1296 × 0.010 = 0.1944 s → 19.44 → 19 µ$;
    // upscale ×4: 1.24416 s → 124 µ$. total 19 + 124 + 62 + 373 + 118 + 461 = 1157;
    // time 0.1944 + 1.24416 + 0.62208 + 3.73248 = 5.79312; quality 0.88 × 0.78 = 0.6864.
    let e = &set.plans[2];
    assert_eq!(e.generated, Resolution::new(480, 270));
    assert_eq!(e.upscale_factor(), 4);
    assert_eq!(micros(e, "compute.generate"), 19);
    assert_eq!(e.total_cost, UsdMicros(1157));
    assert_close("economy time", e.estimated_time_s, 5.79312);
    assert_close("economy quality", e.expected_quality, 0.6864);

    // Scores with weights 1/3 each, normalised across the three (all feasible):
    //   cost    P 0, B (1325 − 1216)/(1325 − 1157) = 109/168, E 1
    //   time    P 0, B (7.46496 − 6.37632)/(7.46496 − 5.79312) = 1.08864/1.67184, E 1
    //   quality P 1, B (0.8184 − 0.6864)/(0.88 − 0.6864) = 0.132/0.1936, E 0
    assert_close("premium score", p.score, 1.0 / 3.0);
    let b_score = (109.0 / 168.0 + 1.08864 / 1.67184 + 0.132 / 0.1936) / 3.0;
    assert_close("balanced score", b.score, b_score);
    assert_close("economy score", e.score, 2.0 / 3.0);
    assert_eq!(set.recommended, Some(Tier::Economy));
    assert!(set.relaxations.is_empty());
}

#[test]
fn rationale_is_deterministic_text_from_the_numbers() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let req = request(&web, LOCAL_ONLY, &cal);
    let a = plans(&req);
    let b = plans(&req);
    assert_eq!(a.rationale, b.rationale);
    assert_eq!(a, b);
    assert_eq!(
        a.rationale,
        "ECONOMY (local/testsrc-v1, 480×270 → ×4 → 1920×1080): $0.001157, ~5.8 s, quality 0.69. \
         Against PREMIUM: 13% cheaper, 0.19 lower quality, 1.7 s faster; score 0.67 vs 0.33. \
         Against BALANCED: 5% cheaper, 0.13 lower quality, 0.6 s faster; score 0.67 vs 0.66. \
         Weights: cost 0.33, quality 0.33, speed 0.33."
    );
}

#[test]
fn preferences_change_the_recommendation() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let mut req = request(&web, LOCAL_ONLY, &cal);
    req.preferences = Preferences::best_quality();
    assert_eq!(plans(&req).recommended, Some(Tier::Premium));
    req.preferences = Preferences::cheapest();
    assert_eq!(plans(&req).recommended, Some(Tier::Economy));
    // Only speed counts: ECONOMY is the fastest.
    req.preferences = Preferences {
        cost_weight: 0.0,
        quality_weight: 0.0,
        speed_weight: 1.0,
    };
    assert_eq!(plans(&req).recommended, Some(Tier::Economy));
}

#[test]
fn ties_go_to_balanced_then_economy_then_premium() {
    // With a catalogue where every tier is the same plan, all scores are equal.
    let text = include_str!("../../../profiles/pricing.toml")
        .replace("resolution = \"half\"", "resolution = \"full\"")
        .replace("resolution = \"quarter\"", "resolution = \"full\"");
    let table = PriceTable::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let web = profile("WEB");
    let cal = Calibration::new();
    let req = request(&web, LOCAL_ONLY, &cal);
    let set = estimate_plans(&req, &table).unwrap_or_else(|e| panic!("{e}"));
    for p in &set.plans {
        assert_close("tied score", p.score, 1.0);
    }
    assert_eq!(set.recommended, Some(Tier::Balanced));
}

#[test]
fn broadcast_with_default_node_rates_exact_numbers() {
    let bc = profile("BROADCAST");
    let cal = Calibration::new();
    let table = prices();
    let mut req = request(&bc, LOCAL_ONLY, &cal);
    req.duration_s = 4.0;
    req.node = NodeRates::from_defaults(&table);
    let p = estimate_plan(&req, &table, Tier::Premium).unwrap_or_else(|e| panic!("{e}"));
    // 4 s × 25 fps = 100 frames at 1920×1080 (2.0736 Mpx); CPU $0.08925/h.
    //   generate 100 × 2.0736 × 0.010 = 2.0736 s × 0.08925/3600 = 0.000051408 → 51 µ$
    //   qc       100 × 2.0736 × 0.002 = 0.41472 s → 0.0000102816 → 10 µ$
    //   encode   100 × 2.0736 × 0.030 (yuv422p10le) = 6.2208 s → 0.000154224 → 154 µ$
    //   bytes    (50_000_000 + 48_000 × 2 × 24) × 4 / 8 = 26_152_000 B = 0.026152 GB
    //   storage  0.026152 × 0.023 = 0.000601496 → 601 µ$; egress 0.026152 × 0.09 = 0.00235368 → 2354 µ$
    //   total    51 + 10 + 154 + 601 + 2354 = 3170; time 2.0736 + 0.41472 + 6.2208 = 8.70912 s
    assert_eq!(p.tier, Tier::Premium);
    assert_eq!(p.estimated_output_bytes, 26_152_000);
    assert_eq!(micros(&p, "compute.generate"), 51);
    assert_eq!(micros(&p, "compute.qc"), 10);
    assert_eq!(micros(&p, "compute.encode"), 154);
    assert_eq!(micros(&p, "storage"), 601);
    assert_eq!(micros(&p, "egress"), 2354);
    assert_eq!(p.total_cost, UsdMicros(3170));
    assert_close("time", p.estimated_time_s, 8.70912);
    assert!(
        p.steps[2].detail.contains("yuv422p10le"),
        "{}",
        p.steps[2].detail
    );
    assert!(
        p.steps[2].detail.contains("pcm_s24le"),
        "{}",
        p.steps[2].detail
    );
}

#[test]
fn remote_backends_when_available_exact_numbers() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let set = plans(&request(&web, ALL_BACKENDS, &cal));
    // Shared local stages as in local_web_plans_exact_numbers: qc 62, encode 373, storage 118,
    // egress 461 µ$; qc + encode 4.35456 s.

    // PREMIUM veo/veo-3.1 at native 1920×1080, no upscale: $0.40/s × 5 s = $2.00;
    // latency 40 + 8 × 5 = 80 s. total 2_000_000 + 62 + 373 + 118 + 461 = 2_001_014.
    let p = &set.plans[0];
    assert_eq!((p.backend.as_str(), p.model.as_str()), ("veo", "veo-3.1"));
    assert_eq!(p.generated, Resolution::new(1920, 1080));
    assert_eq!(p.upscale_factor(), 1);
    assert_eq!(micros(p, "generation"), 2_000_000);
    assert_eq!(micros(p, "compute.generate"), 0);
    assert_eq!(p.total_cost, UsdMicros(2_001_014));
    assert_close("premium time", p.estimated_time_s, 84.35456);
    assert_close("premium quality", p.expected_quality, 0.95);

    // BALANCED veo/veo-3.1-fast at 720p (1280×720), ×2 → 2560×1440 = 3.6864 Mpx:
    // upscale 150 × 3.6864 × 0.004 = 2.21184 s → 221 µ$; $0.15 × 5 = $0.75; latency 20 + 4 × 5 = 40 s.
    // total 750_000 + 221 + 62 + 373 + 118 + 461 = 751_235; quality 0.90 × 0.93 = 0.837.
    let b = &set.plans[1];
    assert_eq!(
        (b.backend.as_str(), b.model.as_str()),
        ("veo", "veo-3.1-fast")
    );
    assert_eq!(b.generated, Resolution::new(1280, 720));
    assert_eq!(b.upscale_factor(), 2);
    assert_eq!(micros(b, "generation"), 750_000);
    assert_eq!(micros(b, "compute.upscale"), 221);
    assert_eq!(b.total_cost, UsdMicros(751_235));
    assert_close("balanced time", b.estimated_time_s, 46.5664);
    assert_close("balanced quality", b.expected_quality, 0.837);

    // ECONOMY replicate/wan-2.1-t2v-480p at 832×480; needs max(1920/832, 1080/480) = 2.31 → ×4
    // → 3328×1920 = 6.38976 Mpx: upscale 150 × 6.38976 × 0.004 = 3.833856 s → 383 µ$.
    // generation 30 A100-s/s × 5 s × $0.0014 = $0.21; latency 10 + 30 × 5 = 160 s.
    // total 210_000 + 383 + 62 + 373 + 118 + 461 = 211_397; quality 0.78 × 0.78 = 0.6084.
    let e = &set.plans[2];
    assert_eq!(
        (e.backend.as_str(), e.model.as_str()),
        ("replicate", "wan-2.1-t2v-480p")
    );
    assert_eq!(e.generated, Resolution::new(832, 480));
    assert_eq!(e.upscale_factor(), 4);
    assert_eq!(micros(e, "generation"), 210_000);
    assert_eq!(micros(e, "compute.upscale"), 383);
    assert_eq!(e.total_cost, UsdMicros(211_397));
    assert_close("economy time", e.estimated_time_s, 168.188416);
    assert_close("economy quality", e.expected_quality, 0.6084);
}

#[test]
fn runway_credits_math_and_fallback_order() {
    let social = profile("SOCIAL");
    let cal = Calibration::new();
    let set = plans(&request(&social, &["local", "runway"], &cal));
    // No veo: PREMIUM and BALANCED fall to runway/gen4.5, ECONOMY to local.
    // gen4.5: 12 credits/s × 5 s = 60 credits × $0.01 = $0.60 exactly.
    for tier in [Tier::Premium, Tier::Balanced] {
        let p = set.plan(tier).unwrap_or_else(|| panic!("{tier}"));
        assert_eq!((p.backend.as_str(), p.model.as_str()), ("runway", "gen4.5"));
        assert_eq!(p.generated, Resolution::new(720, 1280), "portrait native");
        assert_eq!(p.upscale_factor(), 2);
        assert_eq!(p.cost_of("generation"), Some(UsdMicros(600_000)));
        let basis = &p.cost[0].basis;
        assert!(basis.contains("60 credits"), "{basis}");
        // latency 30 + 9 × 5 = 75 s
        assert_close("generate time", p.steps[0].estimated_time_s, 75.0);
    }
    let e = set.plan(Tier::Economy).unwrap_or_else(|| panic!("economy"));
    assert_eq!(e.backend, "local");
    assert_eq!(e.generated, Resolution::new(270, 480));

    // Backends are matched case-insensitively; a tier without an available candidate of its own
    // borrows one from another tier's list instead of failing.
    let set = plans(&request(&social, &["Runway"], &cal));
    let e = set.plan(Tier::Economy).unwrap_or_else(|| panic!("economy"));
    assert_eq!((e.backend.as_str(), e.model.as_str()), ("runway", "gen4.5"));

    let none = estimate_plans(&request(&social, &["sora"], &cal), &prices());
    assert!(matches!(none, Err(PlannerError::Data { .. })), "{none:?}");
}

#[test]
fn uhd_from_1080p_native_upscales() {
    let uhd = profile("BROADCAST_UHD");
    let cal = Calibration::new();
    let p = estimate_plan(&request(&uhd, &["veo"], &cal), &prices(), Tier::Premium)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.generated, Resolution::new(1920, 1080));
    assert_eq!(p.output, Resolution::new(3840, 2160));
    assert_eq!(p.upscale_factor(), 2);
    assert_close("quality", p.expected_quality, 0.95 * 0.93);
    assert_eq!(p.resolution_path(), "1920×1080 → ×2 → 3840×2160");
}

#[test]
fn calibration_scales_the_matching_stage() {
    let web = profile("WEB");
    let cal = Calibration::from_entries([
        CalibrationEntry {
            backend: "local".into(),
            stage: "encode".into(),
            factor: 2.0,
        },
        CalibrationEntry {
            backend: "veo".into(),
            stage: "generate".into(),
            factor: 1.5,
        },
    ]);
    let set = plans(&request(&web, ALL_BACKENDS, &cal));
    let p = &set.plans[0];
    // veo generate 80 s × 1.5 = 120 s; encode 3.73248 × 2 = 7.46496 s → 746.496 → 746 µ$.
    assert_close("generate", p.steps[0].estimated_time_s, 120.0);
    let encode = p.steps.iter().find(|s| s.kind == StepKind::Encode);
    assert_close(
        "encode",
        encode.map_or(0.0, |s| s.estimated_time_s),
        7.46496,
    );
    assert_eq!(micros(p, "compute.encode"), 746);
    // qc is not calibrated: unchanged.
    assert_eq!(micros(p, "compute.qc"), 62);
}

#[test]
fn output_size_calibration_scales_storage_and_egress() {
    let bc = profile("BROADCAST");
    let table = prices();
    let cal = Calibration::from_entries([CalibrationEntry {
        backend: "local".into(),
        stage: output_bytes_stage("BROADCAST"),
        factor: 0.25,
    }]);
    let mut req = request(&bc, LOCAL_ONLY, &cal);
    req.duration_s = 4.0;
    req.node = NodeRates::from_defaults(&table);
    let p = estimate_plan(&req, &table, Tier::Premium).unwrap_or_else(|e| panic!("{e}"));
    // Nominal 26_152_000 B (see the BROADCAST test) × 0.25 = 6_538_000 B = 0.006538 GB:
    //   storage 0.006538 × 0.023 = 0.000150374 → 150 µ$; egress 0.006538 × 0.09 = 0.00058842 → 588 µ$.
    assert_eq!(output_bytes_stage("BROADCAST"), "output_bytes.broadcast");
    assert_eq!(p.estimated_output_bytes, 6_538_000);
    assert_eq!(micros(&p, "storage"), 150);
    assert_eq!(micros(&p, "egress"), 588);
    // Time stages are untouched: 51 + 10 + 154 as before.
    assert_eq!(p.total_cost, UsdMicros(51 + 10 + 154 + 150 + 588));
}

#[test]
fn gpu_upscaler_bills_the_gpu_rate_only_on_a_gpu_node() {
    let text = include_str!("../../../profiles/pricing.toml").replace(
        "active_upscaler = \"gstreamer/videoscale\"",
        "active_upscaler = \"aiprod/realesrgan\"",
    );
    let table = PriceTable::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let web = profile("WEB");
    let cal = Calibration::new();
    let mut req = request(&web, LOCAL_ONLY, &cal);
    // upscale 960×540 → 1920×1080, priced per *input* Mpx: 150 × 0.5184 × 0.32 = 24.8832 s
    let b = estimate_plan(&req, &table, Tier::Balanced).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.steps[1].engine, "aiprod/realesrgan");
    // no GPU: CPU $0.0001/s → 2488.32 → 2488 µ$
    assert_eq!(micros(&b, "compute.upscale"), 2488);
    assert!(
        b.cost[2]
            .basis
            .contains("0.518400 input Mpx × 0.32 s/Mpx-frame"),
        "{}",
        b.cost[2].basis
    );
    req.node.has_gpu = true;
    let b = estimate_plan(&req, &table, Tier::Balanced).unwrap_or_else(|e| panic!("{e}"));
    // GPU $3.6/h = $0.001/s → 24883.2 → 24883 µ$; quality 0.88 × 0.97
    assert_eq!(micros(&b, "compute.upscale"), 24883);
    assert_close("quality", b.expected_quality, 0.88 * 0.97);
    // Non-GPU stages stay on the CPU rate.
    assert_eq!(micros(&b, "compute.encode"), 373);
}

#[test]
fn constraints_rule_plans_out_with_numbers() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let mut req = request(&web, LOCAL_ONLY, &cal);
    req.constraints = Constraints {
        max_cost_usd: Some(0.0012),
        min_quality: Some(0.8),
        max_time_s: None,
    };
    let set = plans(&req);
    // PREMIUM 1325 µ$ > 1200; ECONOMY quality 0.6864 < 0.8; BALANCED (1216 µ$) > 1200 too.
    assert_eq!(
        set.plans[0].infeasible_reasons,
        ["cost $0.001325 exceeds max_cost_usd $0.001200"]
    );
    assert_eq!(
        set.plans[2].infeasible_reasons,
        ["quality 0.6864 is below min_quality 0.8000"]
    );
    assert!(!set.plans[1].feasible);
    assert_eq!(set.recommended, None);

    req.constraints.max_cost_usd = Some(0.00122);
    let set = plans(&req);
    assert_eq!(set.recommended, Some(Tier::Balanced));
    assert!(set.relaxations.is_empty());
    // Infeasible plans still get a score (relative to all three); only BALANCED is feasible,
    // so its score is the full 1.0.
    assert_close("balanced score", set.plans[1].score, 1.0);
    assert_close("premium score", set.plans[0].score, 1.0 / 3.0);
    assert!(
        set.rationale
            .contains("PREMIUM is ruled out: cost $0.001325 exceeds max_cost_usd $0.001220."),
        "{}",
        set.rationale
    );

    req.constraints = Constraints {
        max_time_s: Some(6.0),
        ..Constraints::default()
    };
    let set = plans(&req);
    assert_eq!(
        set.plans[0].infeasible_reasons,
        ["time 7.46 s exceeds max_time_s 6.00 s"]
    );
    assert_eq!(set.recommended, Some(Tier::Economy));
}

#[test]
fn no_feasible_plan_lists_relaxations_that_work() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let mut req = request(&web, LOCAL_ONLY, &cal);
    req.constraints = Constraints {
        max_cost_usd: Some(0.001),
        min_quality: Some(0.9),
        max_time_s: Some(5.0),
    };
    let set = plans(&req);
    assert_eq!(set.recommended, None);
    assert!(
        set.rationale.starts_with("No plan meets the constraints:"),
        "{}",
        set.rationale
    );
    // Relative changes (cost + quality + time):
    //   PREMIUM  (1325−1000)/1000 + (0.9−0.88)/0.9 + (7.5−5)/5 = 0.325 + 0.0222 + 0.5 = 0.8472
    //   BALANCED (1216−1000)/1000 + (0.9−0.81)/0.9 + (6.4−5)/5 = 0.216 + 0.1 + 0.28 = 0.596
    //   ECONOMY  (1157−1000)/1000 + (0.9−0.68)/0.9 + (5.8−5)/5 = 0.157 + 0.2444 + 0.16 = 0.5614
    assert_eq!(
        set.relaxations,
        [
            "raise max_cost_usd to $0.001157 and lower min_quality to 0.68 and raise max_time_s to 5.8 s (ECONOMY)",
            "raise max_cost_usd to $0.001216 and lower min_quality to 0.81 and raise max_time_s to 6.4 s (BALANCED)",
            "raise max_cost_usd to $0.001325 and lower min_quality to 0.88 and raise max_time_s to 7.5 s (PREMIUM)",
        ]
    );
    assert_close(
        "economy change",
        set.suggestions[0].relative_change,
        0.157 + 0.22 / 0.9 + 0.16,
    );

    for s in &set.suggestions {
        let mut relaxed = req.clone();
        relaxed.constraints = s.apply(&req.constraints);
        let after = plans(&relaxed);
        let p = after.plan(s.tier).unwrap_or_else(|| panic!("{}", s.tier));
        assert!(p.feasible, "{}: {:?}", s.text, p.infeasible_reasons);
        assert!(after.recommended.is_some());
    }
}

#[test]
fn single_constraint_relaxation_text() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let mut req = request(&web, LOCAL_ONLY, &cal);
    req.constraints.max_cost_usd = Some(0.0);
    let set = plans(&req);
    assert_eq!(
        set.relaxations,
        [
            "raise max_cost_usd to $0.001157 (ECONOMY)",
            "raise max_cost_usd to $0.001216 (BALANCED)",
            "raise max_cost_usd to $0.001325 (PREMIUM)",
        ]
    );
}

#[test]
fn estimate_plan_matches_the_set() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let req = request(&web, LOCAL_ONLY, &cal);
    let set = plans(&req);
    for tier in Tier::ALL {
        let one = estimate_plan(&req, &prices(), tier).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Some(&one), set.plan(tier));
    }
}

fn field_after<'a>(
    base: &PlanRequest<'a>,
    table: &PriceTable,
    f: &dyn Fn(&mut PlanRequest<'a>),
) -> &'static str {
    let mut r = base.clone();
    f(&mut r);
    field_of(estimate_plans(&r, table))
}

#[test]
fn validation_names_the_field() {
    let long = "x".repeat(MAX_PROMPT_CHARS + 1);
    let web = profile("WEB");
    let cal = Calibration::new();
    let base = request(&web, LOCAL_ONLY, &cal);
    let table = prices();
    assert_eq!(field_after(&base, &table, &|r| r.prompt = ""), "prompt");
    assert_eq!(
        field_after(&base, &table, &|r| r.prompt = "  \n\t "),
        "prompt"
    );
    assert_eq!(field_after(&base, &table, &|r| r.prompt = &long), "prompt");
    assert_eq!(
        field_after(&base, &table, &|r| r.duration_s = 0.0),
        "duration_s"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.duration_s = -1.0),
        "duration_s"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.duration_s = f64::NAN),
        "duration_s"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.duration_s = f64::INFINITY),
        "duration_s"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.duration_s = 61.0),
        "duration_s"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.constraints.max_cost_usd = Some(-0.01)),
        "constraints.max_cost_usd"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.constraints.max_cost_usd =
            Some(f64::NAN)),
        "constraints.max_cost_usd"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.constraints.max_cost_usd =
            Some(f64::INFINITY)),
        "constraints.max_cost_usd"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.constraints.min_quality = Some(1.01)),
        "constraints.min_quality"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.constraints.min_quality = Some(-0.1)),
        "constraints.min_quality"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.constraints.min_quality =
            Some(f64::NAN)),
        "constraints.min_quality"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.constraints.max_time_s = Some(0.0)),
        "constraints.max_time_s"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.constraints.max_time_s =
            Some(f64::NAN)),
        "constraints.max_time_s"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.preferences.cost_weight = -1.0),
        "preferences"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.preferences.speed_weight = f64::NAN),
        "preferences"
    );
    assert_eq!(
        field_after(&base, &table, &|r| r.preferences = Preferences {
            cost_weight: 0.0,
            quality_weight: 0.0,
            speed_weight: 0.0
        }),
        "preferences"
    );

    // Boundaries that are allowed.
    let mut ok = base.clone();
    ok.prompt = &long[..MAX_PROMPT_CHARS];
    ok.duration_s = 60.0;
    ok.constraints = Constraints {
        max_cost_usd: Some(0.0),
        min_quality: Some(1.0),
        max_time_s: Some(0.001),
    };
    assert!(estimate_plans(&ok, &table).is_ok());

    let mut bad_node = base.clone();
    bad_node.node.cpu_usd_per_hour = f64::NAN;
    assert!(matches!(
        estimate_plans(&bad_node, &table),
        Err(PlannerError::Data { .. })
    ));
}

#[test]
fn frame_count_is_not_inflated_by_float_error() {
    let web = profile("WEB");
    let cal = Calibration::new();
    let mut req = request(&web, LOCAL_ONLY, &cal);
    req.duration_s = 0.1; // 0.1 × 30 = 3.0000000000000004 in f64: 3 frames
    let p = estimate_plan(&req, &prices(), Tier::Premium).unwrap_or_else(|e| panic!("{e}"));
    // generate 3 × 2.0736 × 0.010 = 0.062208 s
    assert_close("generate", p.steps[0].estimated_time_s, 0.062208);
}

#[test]
fn an_upscaler_gives_exactly_one_rate() {
    let base = include_str!("../../../profiles/pricing.toml");
    let both = base.replace(
        "s_per_input_mpx_frame = 5.3",
        "s_per_input_mpx_frame = 5.3\ns_per_output_mpx_frame = 0.33",
    );
    let e = PriceTable::from_toml_str(&both).unwrap_err().to_string();
    assert!(
        e.contains("aiprod/realesrgan-cpu: give exactly one of"),
        "{e}"
    );
    let neither = base.replace("s_per_input_mpx_frame = 5.3\n", "");
    let e = PriceTable::from_toml_str(&neither).unwrap_err().to_string();
    assert!(
        e.contains("aiprod/realesrgan-cpu: give exactly one of"),
        "{e}"
    );
}
