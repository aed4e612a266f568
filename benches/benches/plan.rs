//! Plan in-process: `aiprod_planner::estimate_plans` and profile selection, no I/O.
//!
//! Run: `cargo bench -p aiprod-benches --bench plan` (see benches/README.md).

use std::hint::black_box;

use aiprod_planner::{
    estimate_plans, Calibration, Constraints, NodeRates, PlanRequest, Preferences, PriceTable,
    ProfileCatalog, ResolutionProfile,
};
use criterion::{criterion_group, criterion_main, Criterion};

const LOCAL_ONLY: &[&str] = &["local"];
const ALL_BACKENDS: &[&str] = &["local", "runway", "veo", "replicate"];

fn profile(catalog: &ProfileCatalog, name: &str) -> ResolutionProfile {
    catalog
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no embedded profile {name}"))
}

fn request<'a>(
    profile: &'a ResolutionProfile,
    backends: &'a [&'a str],
    calibration: &'a Calibration,
    node: NodeRates,
) -> PlanRequest<'a> {
    PlanRequest {
        prompt: "a red fox running through snow at dawn",
        duration_s: 5.0,
        profile,
        constraints: Constraints::default(),
        preferences: Preferences::default(),
        available_backends: backends,
        node,
        calibration,
        max_duration_s: 120.0,
    }
}

fn bench_plan(c: &mut Criterion) {
    let prices = PriceTable::embedded().expect("embedded pricing");
    let catalog = ProfileCatalog::embedded().expect("embedded profiles");
    let node = NodeRates::from_defaults(&prices);
    let cal = Calibration::new();
    let social = profile(&catalog, "SOCIAL");
    let web = profile(&catalog, "WEB");

    let local = request(&social, LOCAL_ONLY, &cal, node);
    let remote = request(&social, ALL_BACKENDS, &cal, node);
    let mut infeasible = request(&web, LOCAL_ONLY, &cal, node);
    infeasible.constraints = Constraints {
        max_cost_usd: Some(0.001),
        min_quality: Some(0.9),
        max_time_s: Some(5.0),
    };

    // Sanity: the three requests take the paths their names say.
    let set = estimate_plans(&local, &prices).expect("local plans");
    assert!(set.recommended.is_some() && set.relaxations.is_empty());
    let set = estimate_plans(&remote, &prices).expect("remote plans");
    assert!(set.plans.iter().any(|p| p.backend != "local"));
    let set = estimate_plans(&infeasible, &prices).expect("infeasible plans");
    assert!(set.recommended.is_none() && !set.relaxations.is_empty());

    let mut g = c.benchmark_group("estimate_plans");
    g.bench_function("social_5s_local_only", |b| {
        b.iter(|| estimate_plans(black_box(&local), black_box(&prices)))
    });
    g.bench_function("social_5s_remote_backends", |b| {
        b.iter(|| estimate_plans(black_box(&remote), black_box(&prices)))
    });
    g.bench_function("web_5s_infeasible_relaxations", |b| {
        b.iter(|| estimate_plans(black_box(&infeasible), black_box(&prices)))
    });
    g.finish();

    c.bench_function("profile_select/instagram_reel", |b| {
        b.iter(|| catalog.select(black_box("instagram reel")))
    });
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
