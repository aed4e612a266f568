//! Settings of webhook delivery (`[webhooks]` in the config file).

use serde::Deserialize;

use crate::config::ConfigError;

/// `[webhooks]` as written; every key optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksLayer {
    /// Allow targets that resolve to loopback/private/link-local addresses (SSRF guard off).
    /// Env: `AIPROD_WEBHOOKS_ALLOW_PRIVATE_TARGETS=1`.
    pub allow_private_targets: Option<bool>,
    /// Attempts per message before it is given up (marked dead in the delivery log).
    pub max_attempts: Option<u32>,
    /// Delay before the first retry; doubles per attempt, with jitter, up to `retry_max_ms`.
    pub retry_base_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    /// Per-attempt timeout (connect + response).
    pub timeout_ms: Option<u64>,
    /// Deliveries in flight at once.
    pub concurrency: Option<usize>,
    /// How often the outbox is scanned for due retries when nothing wakes the dispatcher.
    pub poll_interval_ms: Option<u64>,
}

impl WebhooksLayer {
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> WebhooksLayer {
        WebhooksLayer {
            allow_private_targets: get("AIPROD_WEBHOOKS_ALLOW_PRIVATE_TARGETS")
                .map(|v| matches!(v.trim(), "1" | "true" | "yes" | "on")),
            ..Default::default()
        }
    }
}

/// Validated webhook settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhooksConfig {
    pub allow_private_targets: bool,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub timeout_ms: u64,
    pub concurrency: usize,
    pub poll_interval_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            // 1 s doubling to a 1 h cap: 15 attempts span about 9 hours, which rides out a
            // receiver's deploy or an overnight outage.
            max_attempts: 15,
            retry_base_ms: 1_000,
            retry_max_ms: 3_600_000,
            timeout_ms: 10_000,
            concurrency: 8,
            poll_interval_ms: 1_000,
        }
    }
}

/// Upper bound on concurrent deliveries: each holds a connection and a task.
const MAX_CONCURRENCY: usize = 256;

impl WebhooksConfig {
    pub fn apply(mut self, l: &WebhooksLayer) -> Self {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = l.$f { self.$f = v; } )* };
        }
        set!(
            allow_private_targets,
            max_attempts,
            retry_base_ms,
            retry_max_ms,
            timeout_ms,
            concurrency,
            poll_interval_ms
        );
        self
    }

    pub fn validate(self) -> Result<Self, ConfigError> {
        let bad = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.max_attempts == 0 {
            return bad("webhooks.max_attempts", "must be >= 1".into());
        }
        if self.retry_base_ms == 0 || self.retry_max_ms < self.retry_base_ms {
            return bad(
                "webhooks.retry_base_ms",
                format!(
                    "must be >= 1 and <= webhooks.retry_max_ms ({})",
                    self.retry_max_ms
                ),
            );
        }
        if self.timeout_ms == 0 {
            return bad("webhooks.timeout_ms", "must be >= 1".into());
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return bad(
                "webhooks.concurrency",
                format!("must be 1..={MAX_CONCURRENCY}, got {}", self.concurrency),
            );
        }
        if self.poll_interval_ms == 0 {
            return bad("webhooks.poll_interval_ms", "must be >= 1".into());
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_switch_and_validation() {
        let on = WebhooksLayer::from_env(&|k| {
            (k == "AIPROD_WEBHOOKS_ALLOW_PRIVATE_TARGETS").then(|| "1".to_string())
        });
        assert_eq!(on.allow_private_targets, Some(true));
        let off = WebhooksLayer::from_env(&|_| Some("0".to_string()));
        assert_eq!(off.allow_private_targets, Some(false));
        assert_eq!(
            WebhooksLayer::from_env(&|_| None).allow_private_targets,
            None
        );
        let cfg = WebhooksConfig::default().apply(&on).validate().unwrap();
        assert!(cfg.allow_private_targets);
        let bad = WebhooksConfig {
            retry_base_ms: 10_000,
            retry_max_ms: 1_000,
            ..Default::default()
        };
        let err = bad.validate().unwrap_err();
        assert!(err.to_string().contains("webhooks.retry_base_ms"), "{err}");
    }
}
