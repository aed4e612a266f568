//! Conversions between the planner's types and the API's messages.

use aiprod_planner::{Constraints, Plan, Preferences, Tier};

use super::error::ControlError;
use crate::proto;

pub fn tier_to_proto(t: Tier) -> proto::Tier {
    match t {
        Tier::Premium => proto::Tier::Premium,
        Tier::Balanced => proto::Tier::Balanced,
        Tier::Economy => proto::Tier::Economy,
    }
}

/// The planner tier for an API tier; `field` names the request field for the error.
pub fn tier_from_proto(value: i32, field: &str) -> Result<Tier, ControlError> {
    match proto::Tier::try_from(value) {
        Ok(proto::Tier::Premium) => Ok(Tier::Premium),
        Ok(proto::Tier::Balanced) => Ok(Tier::Balanced),
        Ok(proto::Tier::Economy) => Ok(Tier::Economy),
        Ok(proto::Tier::Unspecified) => Err(ControlError::invalid(
            field,
            "required: PREMIUM, BALANCED or ECONOMY",
        )),
        Err(_) => Err(ControlError::invalid(
            field,
            format!("unknown tier {value}"),
        )),
    }
}

pub fn constraints_from_proto(c: &proto::Constraints) -> Constraints {
    Constraints {
        max_cost_usd: c.max_cost_usd,
        min_quality: c.min_quality,
        max_time_s: c.max_time_s,
    }
}

pub fn preferences_from_proto(p: &proto::Preferences) -> Preferences {
    Preferences {
        cost_weight: p.cost_weight,
        quality_weight: p.quality_weight,
        speed_weight: p.speed_weight,
    }
}

pub fn plan_to_proto(p: &Plan, plan_id: String, expires_unix_ms: i64) -> proto::PlanOption {
    proto::PlanOption {
        plan_id,
        tier: tier_to_proto(p.tier) as i32,
        backend: p.backend.clone(),
        model: p.model.clone(),
        duration_s: p.duration_s,
        generated_resolution: Some(proto::Resolution {
            width: p.generated.width,
            height: p.generated.height,
        }),
        output_resolution: Some(proto::Resolution {
            width: p.output.width,
            height: p.output.height,
        }),
        profile: p.profile.clone(),
        steps: p
            .steps
            .iter()
            .map(|s| proto::PlanStep {
                kind: s.kind.as_str().into(),
                engine: s.engine.clone(),
                detail: s.detail.clone(),
                scale: s.scale,
                estimated_time_s: s.estimated_time_s,
                estimated_cost_usd_micros: s.estimated_cost.micros(),
            })
            .collect(),
        cost_breakdown: p
            .cost
            .iter()
            .map(|c| proto::CostLine {
                item: c.item.clone(),
                usd_micros: c.usd.micros(),
                basis: c.basis.clone(),
            })
            .collect(),
        total_cost_usd_micros: p.total_cost.micros(),
        estimated_time_s: p.estimated_time_s,
        expected_quality: p.expected_quality,
        feasible: p.feasible,
        infeasible_reasons: p.infeasible_reasons.clone(),
        score: p.score,
        estimated_output_bytes: p.estimated_output_bytes,
        expires_unix_ms,
        // Set by the caller from the request's constraints.
        max_cost_usd_micros: 0,
    }
}
