//! aiprod-planner: pure planning logic for aiprod — tiers, prices, cost/time/quality estimates,
//! constraint checks, recommendation, resolution profiles and calibration from past receipts.
//!
//! No I/O: the embedded data (`profiles/*.toml`) is compiled in; everything else is passed in.

pub mod calibration;
mod error;
pub mod money;
pub mod plan;
pub mod pricing;
pub mod profile;
pub mod tier;

pub use calibration::{Calibration, CalibrationEntry};
pub use error::PlannerError;
pub use money::UsdMicros;
pub use plan::{
    estimate_plan, estimate_plans, output_bytes_stage, Constraints, CostLine, NodeRates, Plan,
    PlanRequest, PlanSet, Preferences, Relaxation, Resolution, Step, StepKind,
};
pub use pricing::PriceTable;
pub use profile::{AudioSpec, ProfileCatalog, ProfileSelection, ResolutionProfile};
pub use tier::Tier;
