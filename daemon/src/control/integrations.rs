//! The control layer's side of remote backends, webhooks and tenants: funds checks before a
//! plan is offered or a job is accepted (nothing is spent; a short plan is shown infeasible
//! with "needed X, available Y"), and the webhook subscription RPCs.

use std::sync::Arc;

use tonic::Request;

use super::error::ControlError;
use super::ControlService;
use crate::proto;
use crate::webhooks::Webhooks;

/// The `max_cost_usd` constraint in micro-USD (0 = none).
pub(super) fn max_cost_micros(c: &aiprod_planner::Constraints) -> i64 {
    c.max_cost_usd
        .and_then(aiprod_planner::UsdMicros::from_usd)
        .map(|m| m.micros())
        .unwrap_or(0)
}

/// When the recommended plan was set aside (funds, provider limits), recommend the best
/// remaining feasible plan by the planner's score, and say why in the rationale.
pub(super) fn fix_recommendation(resp: &mut proto::PlanResponse) {
    let current = resp
        .plans
        .iter()
        .find(|p| p.plan_id == resp.recommended_plan_id);
    let Some(dropped) = current.filter(|p| !p.feasible) else {
        return;
    };
    let why = format!(
        "The {} plan on {} was set aside: {}.",
        tier_name(dropped.tier),
        dropped.backend,
        dropped.infeasible_reasons.join("; ")
    );
    let best = resp
        .plans
        .iter()
        .filter(|p| p.feasible)
        .max_by(|a, b| a.score.total_cmp(&b.score));
    match best {
        Some(b) => {
            resp.recommended = b.tier;
            resp.recommended_plan_id = b.plan_id.clone();
            resp.rationale = format!("{why} {} is recommended instead.", tier_name(b.tier));
        }
        None => {
            resp.recommended = proto::Tier::Unspecified as i32;
            resp.recommended_plan_id = String::new();
            resp.rationale = format!("{why} No plan is feasible.");
        }
    }
}

fn tier_name(t: i32) -> &'static str {
    proto::Tier::try_from(t)
        .map(|t| t.as_str_name())
        .unwrap_or("TIER_UNSPECIFIED")
}

impl ControlService {
    /// Adds the webhook subscription API.
    pub fn with_webhooks(mut self, webhooks: Arc<Webhooks>) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// Another handle on the same service state, for work moved to a blocking thread.
    pub(super) fn clone_handle(&self) -> ControlService {
        ControlService {
            engine: Arc::clone(&self.engine),
            prices: Arc::clone(&self.prices),
            health: self.health.clone(),
            webhooks: self.webhooks.clone(),
            store_turns: Arc::clone(&self.store_turns),
        }
    }

    /// Checks every feasible remote plan with its backend (blocking: may ask the provider for
    /// its balance); a plan that cannot be generated or paid for becomes infeasible, with the
    /// backend's reason.
    pub(super) fn check_funds_blocking(&self, plans: &mut [proto::PlanOption], prompt: &str) {
        for p in plans
            .iter_mut()
            .filter(|p| p.feasible && p.backend != "local")
        {
            if let Err(e) = self.engine.preflight(p, prompt, 0) {
                p.feasible = false;
                p.infeasible_reasons.push(e.to_string());
            }
        }
    }

    /// Generate: plan (or take the stored plan), check funds with the backend, admit, submit.
    /// Blocking (the store, the provider's balance): runs on the blocking pool.
    pub(super) fn do_generate(
        &self,
        r: proto::GenerateRequest,
    ) -> Result<proto::Job, ControlError> {
        let rec = self.prepare_generate(r)?;
        // A retried Generate (same idempotency key) returns the job it made; its spend must
        // not be checked twice.
        let repeat = self
            .engine
            .store
            .find_idempotent_job(&rec.job.user_id, &rec.idempotency_key)?
            .is_some();
        if !repeat && rec.plan.backend != "local" {
            self.engine
                .preflight(&rec.plan, &rec.job.prompt, rec.seed)?;
        }
        self.engine.admit(&rec.job.user_id)?;
        let (job, _created) = self.engine.submit(rec)?;
        Ok(job)
    }

    fn webhooks(&self) -> Result<&Webhooks, ControlError> {
        self.webhooks.as_deref().ok_or_else(|| {
            ControlError::Unavailable("webhooks are not enabled on this node".into())
        })
    }

    pub(super) async fn create_webhook_for(
        &self,
        req: Request<proto::CreateWebhookRequest>,
    ) -> Result<proto::WebhookSubscription, ControlError> {
        let tenant = crate::auth::webhook_tenant(&req);
        Ok(self.webhooks()?.create(&tenant, req.into_inner()).await?)
    }

    pub(super) fn list_webhooks_for(
        &self,
        req: Request<proto::ListWebhooksRequest>,
    ) -> Result<proto::ListWebhooksResponse, ControlError> {
        let tenant = crate::auth::webhook_tenant(&req);
        Ok(self.webhooks()?.list(&tenant)?)
    }

    pub(super) fn delete_webhook_for(
        &self,
        req: Request<proto::DeleteWebhookRequest>,
    ) -> Result<proto::DeleteWebhookResponse, ControlError> {
        let tenant = crate::auth::webhook_tenant(&req);
        Ok(self
            .webhooks()?
            .delete(&tenant, &req.into_inner().subscription_id)?)
    }

    pub(super) fn webhook_deliveries_for(
        &self,
        req: Request<proto::ListWebhookDeliveriesRequest>,
    ) -> Result<proto::ListWebhookDeliveriesResponse, ControlError> {
        let tenant = crate::auth::webhook_tenant(&req);
        Ok(self.webhooks()?.deliveries(&tenant, &req.into_inner())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str, tier: proto::Tier, feasible: bool, score: f64) -> proto::PlanOption {
        proto::PlanOption {
            plan_id: id.into(),
            tier: tier as i32,
            backend: "runway".into(),
            feasible,
            infeasible_reasons: if feasible {
                vec![]
            } else {
                vec!["runway: insufficient credits: needed 60 credits ($0.600000), available 10 credits ($0.100000)".into()]
            },
            score,
            ..Default::default()
        }
    }

    #[test]
    fn a_dropped_recommendation_moves_to_the_best_feasible_plan() {
        let mut r = proto::PlanResponse {
            plans: vec![
                plan("p", proto::Tier::Premium, true, 0.4),
                plan("b", proto::Tier::Balanced, false, 0.9),
                plan("e", proto::Tier::Economy, true, 0.6),
            ],
            recommended: proto::Tier::Balanced as i32,
            recommended_plan_id: "b".into(),
            rationale: "old".into(),
            ..Default::default()
        };
        fix_recommendation(&mut r);
        assert_eq!(r.recommended_plan_id, "e");
        assert_eq!(r.recommended, proto::Tier::Economy as i32);
        assert!(r.rationale.contains("needed 60 credits"), "{}", r.rationale);
        // Nothing feasible: no recommendation.
        for p in &mut r.plans {
            p.feasible = false;
        }
        fix_recommendation(&mut r);
        assert_eq!(r.recommended_plan_id, "");
        assert_eq!(r.recommended, proto::Tier::Unspecified as i32);
    }
}
