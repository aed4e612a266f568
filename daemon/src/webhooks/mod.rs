//! Webhooks: per-tenant subscriptions (URL + Standard Webhooks secret + event filter), a durable
//! SQLite outbox written in the same transaction as the job change (events `job.created`,
//! `job.succeeded`, `job.failed`, `video.cost_receipt`), signed at-least-once delivery with
//! exponential backoff and jitter, a delivery log, and an SSRF guard on targets.

pub mod dispatcher;
pub mod inbound;
pub mod outbox;
pub mod settings;
pub mod signing;
pub mod ssrf;

use std::sync::Arc;

use crate::jobs::store::{Store, StoreError};
use crate::now_unix_ms;
use crate::proto;
use outbox::{Outbox, Subscription, EVENT_TYPES};
use settings::WebhooksConfig;

/// Every event fans out to every subscription of its tenant; bound the fan-out.
pub const MAX_SUBSCRIPTIONS_PER_TENANT: usize = 32;
/// URLs longer than this are not webhook endpoints.
const MAX_URL_LEN: usize = 2048;
const MAX_DESCRIPTION_LEN: usize = 256;
/// Delivery-log page sizes.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 500;

/// Webhook-layer errors.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A request field is wrong; `field` is spelled as in the proto.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("webhook subscription {0} not found")]
    NotFound(String),
    #[error("tenant {tenant} already has {max} webhook subscriptions")]
    TooMany { tenant: String, max: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking task doing the store work died (a panic): an internal error.
    #[error("{0}")]
    Task(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> WebhookError {
    WebhookError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The subscription API of one daemon.
pub struct Webhooks {
    outbox: Outbox,
    cfg: WebhooksConfig,
    /// Without auth the one default tenant owns every subscription, and they see every job.
    auth_enabled: bool,
}

impl Webhooks {
    pub fn new(store: Arc<Store>, cfg: WebhooksConfig, auth_enabled: bool) -> Webhooks {
        let outbox = Outbox::new(store);
        if auth_enabled {
            // Subscriptions made while auth was off saw every job; with tenants they must not.
            match outbox.restrict_to_own_tenant() {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    n,
                    "auth is on: webhook subscriptions made without auth now get only tenant \"default\"'s events"
                ),
                Err(e) => tracing::error!("webhook subscriptions: {e}"),
            }
        }
        Webhooks {
            outbox,
            cfg,
            auth_enabled,
        }
    }

    pub async fn create(
        &self,
        tenant: &str,
        r: proto::CreateWebhookRequest,
    ) -> Result<proto::WebhookSubscription, WebhookError> {
        if r.url.len() > MAX_URL_LEN {
            return Err(invalid("url", format!("longer than {MAX_URL_LEN} bytes")));
        }
        ssrf::check_target(&r.url, self.cfg.allow_private_targets)
            .await
            .map_err(|e| invalid("url", e.to_string()))?;
        let secret = if r.secret.is_empty() {
            signing::generate_secret()
        } else {
            signing::SigningKey::parse(&r.secret, true)
                .map_err(|e| invalid("secret", e.to_string()))?;
            r.secret.clone()
        };
        let mut events = Vec::new();
        for e in &r.events {
            if !EVENT_TYPES.contains(&e.as_str()) {
                return Err(invalid(
                    "events",
                    format!("unknown event {e:?}; known: {}", EVENT_TYPES.join(", ")),
                ));
            }
            if !events.contains(e) {
                events.push(e.clone());
            }
        }
        if r.description.len() > MAX_DESCRIPTION_LEN {
            return Err(invalid(
                "description",
                format!("longer than {MAX_DESCRIPTION_LEN} bytes"),
            ));
        }
        let sub = Subscription {
            id: format!("wh_{}", uuid::Uuid::new_v4().simple()),
            tenant: tenant.into(),
            url: r.url,
            secret,
            events,
            all_tenants: !self.auth_enabled,
            description: r.description,
            created_ms: now_unix_ms(),
        };
        // The count and the insert touch the store: on the blocking pool, not an async worker.
        let outbox = self.outbox.clone();
        let sub = tokio::task::spawn_blocking(move || {
            if outbox.list_subscriptions(&sub.tenant)?.len() >= MAX_SUBSCRIPTIONS_PER_TENANT {
                return Err(WebhookError::TooMany {
                    tenant: sub.tenant.clone(),
                    max: MAX_SUBSCRIPTIONS_PER_TENANT,
                });
            }
            outbox.create_subscription(&sub)?;
            Ok(sub)
        })
        .await
        .map_err(|e| WebhookError::Task(format!("create webhook task: {e}")))??;
        tracing::info!(tenant, subscription_id = %sub.id, url = %sub.url, events = ?sub.events, "webhook subscription created");
        Ok(sub.to_proto(true))
    }

    pub fn list(&self, tenant: &str) -> Result<proto::ListWebhooksResponse, WebhookError> {
        Ok(proto::ListWebhooksResponse {
            subscriptions: self
                .outbox
                .list_subscriptions(tenant)?
                .iter()
                .map(|s| s.to_proto(false))
                .collect(),
        })
    }

    pub fn delete(
        &self,
        tenant: &str,
        subscription_id: &str,
    ) -> Result<proto::DeleteWebhookResponse, WebhookError> {
        if subscription_id.is_empty() {
            return Err(invalid("subscription_id", "required"));
        }
        let dropped = self
            .outbox
            .delete_subscription(tenant, subscription_id, now_unix_ms())?
            .ok_or_else(|| WebhookError::NotFound(subscription_id.into()))?;
        tracing::info!(
            tenant,
            subscription_id,
            dropped,
            "webhook subscription removed"
        );
        Ok(proto::DeleteWebhookResponse {
            dropped_pending: dropped,
        })
    }

    pub fn deliveries(
        &self,
        tenant: &str,
        r: &proto::ListWebhookDeliveriesRequest,
    ) -> Result<proto::ListWebhookDeliveriesResponse, WebhookError> {
        let limit = match r.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(invalid(
                    "page_size",
                    format!("at most {MAX_PAGE_SIZE}, got {n}"),
                ))
            }
            n => n,
        };
        let before = if r.page_token.is_empty() {
            None
        } else {
            Some(r.page_token.parse::<i64>().map_err(|_| {
                invalid(
                    "page_token",
                    "not a token returned by ListWebhookDeliveries",
                )
            })?)
        };
        let sub = (!r.subscription_id.is_empty()).then_some(r.subscription_id.as_str());
        if let Some(id) = sub {
            if !self.outbox.owns(tenant, id)? {
                return Err(WebhookError::NotFound(id.into()));
            }
        }
        let job = (!r.job_id.is_empty()).then_some(r.job_id.as_str());
        let mut rows = self
            .outbox
            .deliveries(tenant, sub, job, before, limit + 1)?;
        let next_page_token = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|(id, _)| id.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(proto::ListWebhookDeliveriesResponse {
            deliveries: rows.into_iter().map(|(_, d)| d).collect(),
            next_page_token,
        })
    }
}
