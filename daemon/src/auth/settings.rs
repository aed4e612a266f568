//! Settings of authentication (`[auth]`) and TLS (`[tls]`) of the gRPC port.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConfigError;

/// One API key: the tenant it stands for and the SHA-256 (hex) of the key. Keys are random
/// 256-bit strings (`aiprodctl auth new-key`), so a plain SHA-256 is enough to keep them out
/// of the config file; a slow password hash would add nothing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    pub tenant: String,
    pub sha256: String,
}

/// `[auth]` as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthLayer {
    pub api_keys: Option<Vec<ApiKeyEntry>>,
    /// JWKS file (RFC 7517) with the keys JWTs are verified against (HS256 `oct`, RS256 `RSA`,
    /// ES256 `EC` P-256). Env: `AIPROD_AUTH_JWKS_FILE`.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim, when set (Firebase: `https://securetoken.google.com/<project>`).
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set (Firebase: the project id).
    pub jwt_audience: Option<String>,
    /// The claim that names the tenant (default `sub`).
    pub tenant_claim: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`, seconds (default 60).
    pub jwt_leeway_s: Option<u64>,
    /// Tenants that may run node-wide operations (Drain). Others get PERMISSION_DENIED.
    pub admin_tenants: Option<Vec<String>>,
}

impl AuthLayer {
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> AuthLayer {
        AuthLayer {
            jwks_file: get("AIPROD_AUTH_JWKS_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            ..Default::default()
        }
    }
}

/// Validated auth settings. No keys and no JWKS: auth is off (loopback only).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub api_keys: Vec<ApiKeyEntry>,
    pub jwks_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub tenant_claim: String,
    pub jwt_leeway_s: u64,
    pub admin_tenants: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            tenant_claim: "sub".into(),
            jwt_leeway_s: 60,
            admin_tenants: Vec::new(),
        }
    }
}

/// Tenant names become job owners and appear in logs: same rule as user ids.
pub const MAX_TENANT_LEN: usize = 128;

/// Whether `t` is an acceptable tenant/user name.
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TENANT_LEN
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@:".contains(c))
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        !self.api_keys.is_empty() || self.jwks_file.is_some()
    }

    pub fn apply(mut self, l: &AuthLayer) -> Self {
        if let Some(k) = &l.api_keys {
            self.api_keys = k.clone();
        }
        if l.jwks_file.is_some() {
            self.jwks_file = l.jwks_file.clone();
        }
        if l.jwt_issuer.is_some() {
            self.jwt_issuer = l.jwt_issuer.clone();
        }
        if l.jwt_audience.is_some() {
            self.jwt_audience = l.jwt_audience.clone();
        }
        if let Some(c) = &l.tenant_claim {
            self.tenant_claim = c.clone();
        }
        if let Some(s) = l.jwt_leeway_s {
            self.jwt_leeway_s = s;
        }
        if let Some(a) = &l.admin_tenants {
            self.admin_tenants = a.clone();
        }
        self
    }

    pub fn validate(self) -> Result<Self, ConfigError> {
        for k in &self.api_keys {
            if !valid_tenant(&k.tenant) {
                return Err(ConfigError::Invalid {
                    key: "auth.api_keys.tenant",
                    reason: format!(
                        "{:?}: 1..={MAX_TENANT_LEN} of letters, digits and . _ - @ :",
                        k.tenant
                    ),
                });
            }
            if k.sha256.len() != 64 || !k.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid {
                    key: "auth.api_keys.sha256",
                    reason: format!(
                        "tenant {}: want 64 hex digits (aiprodctl auth new-key prints them)",
                        k.tenant
                    ),
                });
            }
        }
        if self.tenant_claim.is_empty() {
            return Err(ConfigError::Invalid {
                key: "auth.tenant_claim",
                reason: "must not be empty".into(),
            });
        }
        Ok(self)
    }
}

/// `[tls]` as written: PEM files for the gRPC port.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsLayer {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl TlsLayer {
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> TlsLayer {
        TlsLayer {
            cert_file: get("AIPROD_TLS_CERT_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            key_file: get("AIPROD_TLS_KEY_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// TLS of the gRPC port (rustls): certificate chain and private key, PEM.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The TLS config from the merged layer: both files or neither.
pub fn tls_from_layer(l: &TlsLayer) -> Result<Option<TlsConfig>, ConfigError> {
    match (&l.cert_file, &l.key_file) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some(TlsConfig {
            cert_file: c.clone(),
            key_file: k.clone(),
        })),
        _ => Err(ConfigError::Invalid {
            key: "tls",
            reason: "give both cert_file and key_file".into(),
        }),
    }
}
