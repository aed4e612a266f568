//! Settings of the remote generation backends (`[backends.runway]`, `[backends.veo]`,
//! `[backends.replicate]` in the config file; keys and base URLs also from the environment).
//! A backend is enabled by its section; everything else has a documented default.

use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// Poll intervals below this would hammer the provider for no gain (Runway's own SDK polls
/// every 6 s; Replicate and Gemini tasks take tens of seconds).
const MIN_POLL_INTERVAL_MS: u64 = 10;
/// One generation may not wait longer than a day: providers expire tasks well before that.
const MAX_TIMEOUT_S: u64 = 24 * 3600;
/// A clip of a few minutes at high bitrate is well under this; a bigger answer is not a clip.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 2 << 30;

/// Which provider a section configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Runway,
    Veo,
    Replicate,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Runway => "runway",
            Provider::Veo => "veo",
            Provider::Replicate => "replicate",
        }
    }

    /// The provider's production API root (overridable with `base_url`).
    pub fn default_base_url(self) -> &'static str {
        match self {
            // PROVIDERS.md §1: api.dev.runwayml.com, not api.runwayml.com.
            Provider::Runway => "https://api.dev.runwayml.com",
            Provider::Veo => "https://generativelanguage.googleapis.com",
            Provider::Replicate => "https://api.replicate.com",
        }
    }

    /// Environment variables that may hold the API key, aiprod's own first, then the name the
    /// provider's SDK reads.
    pub fn key_env(self) -> &'static [&'static str] {
        match self {
            Provider::Runway => &["AIPROD_RUNWAY_API_KEY", "RUNWAYML_API_SECRET"],
            Provider::Veo => &["AIPROD_VEO_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"],
            Provider::Replicate => &["AIPROD_REPLICATE_API_TOKEN", "REPLICATE_API_TOKEN"],
        }
    }

    pub fn base_url_env(self) -> &'static str {
        match self {
            Provider::Runway => "AIPROD_RUNWAY_BASE_URL",
            Provider::Veo => "AIPROD_VEO_BASE_URL",
            Provider::Replicate => "AIPROD_REPLICATE_BASE_URL",
        }
    }

    /// How often a running task is polled by default.
    fn default_poll_interval_ms(self) -> u64 {
        match self {
            // The Runway SDK's poller: 6 s (+ jitter).
            Provider::Runway => 6_000,
            Provider::Veo => 10_000,
            Provider::Replicate => 2_000,
        }
    }

    /// Whether the provider reports a balance; the others need a configured budget.
    pub fn has_balance_endpoint(self) -> bool {
        matches!(self, Provider::Runway)
    }
}

/// One `[backends.<name>]` section as written; every key optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteBackendLayer {
    /// Set false to keep a section but not use it.
    pub enabled: Option<bool>,
    pub api_key: Option<Secret>,
    pub base_url: Option<String>,
    pub poll_interval_ms: Option<u64>,
    /// Longest wait for one generation before the task is cancelled and the job fails.
    pub timeout_s: Option<u64>,
    /// Per-request HTTP timeout.
    pub request_timeout_s: Option<u64>,
    /// Retries of one request on 429/5xx/network errors.
    pub max_retries: Option<u32>,
    /// First retry delay; doubles per attempt (with jitter) unless Retry-After says otherwise.
    pub retry_base_ms: Option<u64>,
    /// Spend allowed per `budget_window_days` (USD), tracked in the ledger. Required for
    /// providers without a balance endpoint (veo, replicate); optional extra cap for runway.
    pub budget_usd: Option<f64>,
    pub budget_window_days: Option<u32>,
    pub max_download_bytes: Option<u64>,
    /// Output durations the provider accepts for the configured models (seconds). Veo: the
    /// documented values are unconfirmed (4, 6, 8 by third parties), hence configurable.
    pub durations_s: Option<Vec<u32>>,
    /// Replicate: public URL of this daemon's `/webhooks/replicate` endpoint; when set,
    /// Replicate is asked to call it on completion (polling continues as a fallback).
    pub webhook_url: Option<String>,
    /// Replicate: the `whsec_...` secret of `GET /v1/webhooks/default/secret`, to verify it.
    pub webhook_secret: Option<Secret>,
    /// Set for sections that only the environment supplied: those stay disabled.
    #[serde(skip)]
    pub(crate) env_only: bool,
}

/// The `[backends]` table.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsLayer {
    pub runway: Option<RemoteBackendLayer>,
    pub veo: Option<RemoteBackendLayer>,
    pub replicate: Option<RemoteBackendLayer>,
}

impl BackendsLayer {
    /// `over` wins key by key; sections merge.
    pub fn merged(&self, over: &BackendsLayer) -> BackendsLayer {
        BackendsLayer {
            runway: merge_section(&self.runway, &over.runway),
            veo: merge_section(&self.veo, &over.veo),
            replicate: merge_section(&self.replicate, &over.replicate),
        }
    }

    /// API keys and base URLs from the environment, for sections that exist (the environment
    /// never enables a backend by itself: a stray `GEMINI_API_KEY` must not start spending).
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> BackendsLayer {
        let section = |p: Provider| {
            let api_key = p
                .key_env()
                .iter()
                .find_map(|k| get(k).filter(|v| !v.is_empty()))
                .map(Secret::new);
            let base_url = get(p.base_url_env()).filter(|v| !v.is_empty());
            (api_key.is_some() || base_url.is_some()).then_some(RemoteBackendLayer {
                api_key,
                base_url,
                env_only: true,
                ..Default::default()
            })
        };
        BackendsLayer {
            runway: section(Provider::Runway),
            veo: section(Provider::Veo),
            replicate: section(Provider::Replicate),
        }
    }
}

fn merge_section(
    base: &Option<RemoteBackendLayer>,
    over: &Option<RemoteBackendLayer>,
) -> Option<RemoteBackendLayer> {
    match (base, over) {
        (None, None) => None,
        (Some(b), None) => Some(b.clone()),
        (None, Some(o)) => Some(o.clone()),
        (Some(b), Some(o)) => {
            let mut m = b.clone();
            macro_rules! take {
                ($($f:ident),*) => { $( if o.$f.is_some() { m.$f = o.$f.clone(); } )* };
            }
            take!(
                enabled,
                api_key,
                base_url,
                poll_interval_ms,
                timeout_s,
                request_timeout_s,
                max_retries,
                retry_base_ms,
                budget_usd,
                budget_window_days,
                max_download_bytes,
                durations_s,
                webhook_url,
                webhook_secret
            );
            m.env_only = b.env_only && o.env_only;
            Some(m)
        }
    }
}

/// A validated remote backend.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteBackendConfig {
    pub provider: Provider,
    pub api_key: Secret,
    /// Without a trailing slash.
    pub base_url: String,
    pub poll_interval_ms: u64,
    pub timeout_s: u64,
    pub request_timeout_s: u64,
    pub max_retries: u32,
    pub retry_base_ms: u64,
    pub budget_usd_micros: Option<i64>,
    pub budget_window_days: u32,
    pub max_download_bytes: u64,
    pub durations_s: Vec<u32>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret>,
}

/// The enabled remote backends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendsConfig {
    pub runway: Option<RemoteBackendConfig>,
    pub veo: Option<RemoteBackendConfig>,
    pub replicate: Option<RemoteBackendConfig>,
    /// What the layers said, kept so later layers can merge into it.
    pub(crate) layer: BackendsLayer,
}

impl BackendsConfig {
    /// Applies a layer over what earlier layers set.
    pub fn apply(&self, layer: &BackendsLayer) -> BackendsConfig {
        BackendsConfig {
            layer: self.layer.merged(layer),
            ..Default::default()
        }
    }

    /// Validates the merged layers into enabled backends.
    pub fn validate(&self) -> Result<BackendsConfig, ConfigError> {
        let layer = &self.layer;
        Ok(BackendsConfig {
            runway: validate_section(Provider::Runway, layer.runway.as_ref())?,
            veo: validate_section(Provider::Veo, layer.veo.as_ref())?,
            replicate: validate_section(Provider::Replicate, layer.replicate.as_ref())?,
            layer: self.layer.clone(),
        })
    }

    /// The enabled backends in a fixed order.
    pub fn enabled(&self) -> Vec<&RemoteBackendConfig> {
        [&self.runway, &self.veo, &self.replicate]
            .into_iter()
            .flatten()
            .collect()
    }
}

fn invalid(key: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { key, reason }
}

fn keys(p: Provider) -> [&'static str; 6] {
    match p {
        Provider::Runway => [
            "backends.runway.api_key",
            "backends.runway.base_url",
            "backends.runway.poll_interval_ms",
            "backends.runway.timeout_s",
            "backends.runway.budget_usd",
            "backends.runway.webhook_url",
        ],
        Provider::Veo => [
            "backends.veo.api_key",
            "backends.veo.base_url",
            "backends.veo.poll_interval_ms",
            "backends.veo.timeout_s",
            "backends.veo.budget_usd",
            "backends.veo.webhook_url",
        ],
        Provider::Replicate => [
            "backends.replicate.api_key",
            "backends.replicate.base_url",
            "backends.replicate.poll_interval_ms",
            "backends.replicate.timeout_s",
            "backends.replicate.budget_usd",
            "backends.replicate.webhook_url",
        ],
    }
}

fn validate_section(
    p: Provider,
    s: Option<&RemoteBackendLayer>,
) -> Result<Option<RemoteBackendConfig>, ConfigError> {
    let Some(s) = s else { return Ok(None) };
    // A section that only the environment names stays disabled (see from_env).
    if s.enabled == Some(false) || s.env_only {
        return Ok(None);
    }
    let [k_key, k_url, k_poll, k_timeout, k_budget, k_webhook] = keys(p);
    let api_key = s
        .api_key
        .clone()
        .filter(|k| !k.expose().is_empty())
        .ok_or_else(|| {
            invalid(
                k_key,
                format!("required (or set {})", p.key_env().join(" / ")),
            )
        })?;
    let base_url = s
        .base_url
        .clone()
        .unwrap_or_else(|| p.default_base_url().to_string());
    let parsed = reqwest::Url::parse(&base_url)
        .map_err(|e| invalid(k_url, format!("{base_url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(k_url, format!("{base_url:?}: only http(s)")));
    }
    let poll_interval_ms = s
        .poll_interval_ms
        .unwrap_or_else(|| p.default_poll_interval_ms());
    if poll_interval_ms < MIN_POLL_INTERVAL_MS {
        return Err(invalid(
            k_poll,
            format!("at least {MIN_POLL_INTERVAL_MS} ms, got {poll_interval_ms}"),
        ));
    }
    let timeout_s = s.timeout_s.unwrap_or(1800);
    if timeout_s == 0 || timeout_s > MAX_TIMEOUT_S {
        return Err(invalid(
            k_timeout,
            format!("must be 1..={MAX_TIMEOUT_S}, got {timeout_s}"),
        ));
    }
    let budget_usd_micros = match s.budget_usd {
        Some(v) if (0.0..1e9).contains(&v) => Some((v * 1e6).round() as i64),
        Some(v) => return Err(invalid(k_budget, format!("must be >= 0, got {v}"))),
        None if !p.has_balance_endpoint() => {
            return Err(invalid(
                k_budget,
                format!(
                    "required: {} has no balance endpoint, so aiprod refuses jobs once this much \
                     was spent in `budget_window_days` (default 30)",
                    p.name()
                ),
            ))
        }
        None => None,
    };
    let webhook_url = s.webhook_url.clone().filter(|u| !u.is_empty());
    if let Some(u) = &webhook_url {
        if p != Provider::Replicate {
            return Err(invalid(k_webhook, "only replicate takes a webhook".into()));
        }
        if reqwest::Url::parse(u).is_err() {
            return Err(invalid(k_webhook, format!("{u:?} is not a URL")));
        }
        if s.webhook_secret.is_none() {
            return Err(invalid(
                k_webhook,
                "needs backends.replicate.webhook_secret (whsec_..., from GET /v1/webhooks/default/secret) to verify the calls".into(),
            ));
        }
    }
    let durations_s = s.durations_s.clone().unwrap_or_else(|| match p {
        // Third-party docs list 4, 6 and 8 s for Veo 3.1 (UNCONFIRMED in a primary source).
        Provider::Veo => vec![4, 6, 8],
        // Runway gen4.5: any whole number 2..=10 (checked per model); Replicate: model-specific.
        _ => Vec::new(),
    });
    Ok(Some(RemoteBackendConfig {
        provider: p,
        api_key,
        base_url: base_url.trim_end_matches('/').to_string(),
        poll_interval_ms,
        timeout_s,
        request_timeout_s: s.request_timeout_s.unwrap_or(60).max(1),
        max_retries: s.max_retries.unwrap_or(5),
        retry_base_ms: s.retry_base_ms.unwrap_or(1000),
        budget_usd_micros,
        budget_window_days: s.budget_window_days.unwrap_or(30).max(1),
        max_download_bytes: s.max_download_bytes.unwrap_or(DEFAULT_MAX_DOWNLOAD_BYTES),
        durations_s,
        webhook_url,
        webhook_secret: s.webhook_secret.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(toml_text: &str) -> BackendsLayer {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn sections_enable_backends_and_env_supplies_keys() {
        let file = layer("[runway]\npoll_interval_ms = 50\n[veo]\nbudget_usd = 20.0\n");
        let env = BackendsLayer::from_env(&|k| match k {
            "RUNWAYML_API_SECRET" => Some("key_abc".into()),
            "GEMINI_API_KEY" => Some("g".into()),
            "REPLICATE_API_TOKEN" => Some("r".into()),
            _ => None,
        });
        let cfg = BackendsConfig::default()
            .apply(&file)
            .apply(&env)
            .validate()
            .unwrap();
        let runway = cfg.runway.as_ref().unwrap();
        assert_eq!(runway.api_key.expose(), "key_abc");
        assert_eq!(runway.base_url, "https://api.dev.runwayml.com");
        assert_eq!(runway.poll_interval_ms, 50);
        assert_eq!(
            cfg.veo.as_ref().unwrap().budget_usd_micros,
            Some(20_000_000)
        );
        assert_eq!(cfg.veo.as_ref().unwrap().durations_s, vec![4, 6, 8]);
        // The environment alone does not enable replicate.
        assert!(cfg.replicate.is_none());
        // And the key never shows in Debug output.
        assert!(!format!("{cfg:?}").contains("key_abc"));
    }

    #[test]
    fn missing_key_or_budget_names_the_key() {
        let err = BackendsConfig::default()
            .apply(&layer("[runway]\n"))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("backends.runway.api_key"), "{err}");
        let err = BackendsConfig::default()
            .apply(&layer("[replicate]\napi_key = \"r\"\n"))
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("backends.replicate.budget_usd"),
            "{err}"
        );
        let err = BackendsConfig::default()
            .apply(&layer(
                "[replicate]\napi_key = \"r\"\nbudget_usd = 1.0\nwebhook_url = \"https://x/y\"\n",
            ))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("webhook_secret"), "{err}");
    }
}
