//! Authentication of the gRPC port: every Control call carries `authorization: Bearer <token>`,
//! where the token is a tenant's API key (configured as its SHA-256) or a JWT verified against a
//! JWKS file (HS256, RS256, ES256 — Firebase ID tokens verify this way). The tenant it names
//! owns the jobs, receipts and webhooks the call makes and is the only one that sees them.
//! Health and reflection need no token. With nothing configured auth is off and the daemon
//! serves loopback only (checked in config).

pub mod settings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use crate::control::error::ControlError;
use crate::proto;
use settings::{valid_tenant, AuthConfig};

/// Tokens longer than this are not ours (a JWT with a few claims is well under 4 KiB).
const MAX_TOKEN_LEN: usize = 16 << 10;
/// Generated API keys: prefix + 32 random bytes, base64url.
pub const API_KEY_PREFIX: &str = "aiprod_";

/// The authenticated caller, put in the request's extensions by [`AuthInterceptor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

/// Marks a caller whose tenant is in `auth.admin_tenants`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin;

/// Why a token was refused. Messages never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (send `authorization: Bearer <api key or JWT>`)")]
    Missing,
    #[error("malformed authorization header")]
    Malformed,
    #[error("unknown API key")]
    UnknownKey,
    #[error("invalid JWT: {0}")]
    Jwt(String),
    #[error("the JWT's {claim} claim does not name a valid tenant")]
    BadTenant { claim: String },
    #[error("cannot load the JWKS file {path}: {reason}")]
    Jwks { path: PathBuf, reason: String },
}

/// One usable JWT key: its id, the algorithm it verifies, the key.
struct JwtKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Checks tokens against the configured keys.
pub struct Authenticator {
    /// SHA-256 of the key → tenant.
    api_keys: HashMap<[u8; 32], String>,
    jwt_keys: Vec<JwtKey>,
    issuer: Option<String>,
    audience: Option<String>,
    tenant_claim: String,
    leeway_s: u64,
    admins: Vec<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("api_keys", &self.api_keys.len())
            .field("jwt_keys", &self.jwt_keys.len())
            .finish()
    }
}

/// The algorithm a JWK verifies, from its key type (and its `alg` when given, which must agree).
fn jwk_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
        _ => {
            return Err(
                "only RSA (RS256), EC P-256 (ES256) and oct (HS256) keys are supported".into(),
            )
        }
    };
    match jwk.common.key_algorithm {
        None => Ok(by_type),
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Ok(by_type),
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Ok(by_type),
        Some(KeyAlgorithm::HS256) if by_type == Algorithm::HS256 => Ok(by_type),
        Some(other) => Err(format!(
            "alg {other:?} does not match the key type or is not supported"
        )),
    }
}

/// SHA-256 of an API key, hex — what the config stores.
pub fn hash_api_key(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

/// A fresh API key.
pub fn generate_api_key() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!(
        "{API_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

impl Authenticator {
    /// None when auth is off.
    pub fn from_config(cfg: &AuthConfig) -> Result<Option<Authenticator>, AuthError> {
        if !cfg.enabled() {
            return Ok(None);
        }
        let mut api_keys = HashMap::new();
        for k in &cfg.api_keys {
            // Validated in config: 64 hex digits.
            if let Some(h) = decode_hex32(&k.sha256.to_ascii_lowercase()) {
                api_keys.insert(h, k.tenant.clone());
            }
        }
        let mut jwt_keys = Vec::new();
        if let Some(path) = &cfg.jwks_file {
            let err = |reason: String| AuthError::Jwks {
                path: path.clone(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let set: JwkSet = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
            for (i, jwk) in set.keys.iter().enumerate() {
                let which = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
                let alg = jwk_algorithm(jwk).map_err(|r| err(format!("key {which}: {r}")))?;
                let key =
                    DecodingKey::from_jwk(jwk).map_err(|e| err(format!("key {which}: {e}")))?;
                jwt_keys.push(JwtKey {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                });
            }
            if jwt_keys.is_empty() {
                return Err(err("no keys".into()));
            }
        }
        Ok(Some(Authenticator {
            api_keys,
            jwt_keys,
            issuer: cfg.jwt_issuer.clone(),
            audience: cfg.jwt_audience.clone(),
            tenant_claim: cfg.tenant_claim.clone(),
            leeway_s: cfg.jwt_leeway_s,
            admins: cfg.admin_tenants.clone(),
        }))
    }

    /// The tenant a bearer token stands for.
    pub fn authenticate(&self, token: &str) -> Result<Tenant, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        // A JWT has exactly two dots; API keys have none.
        if token.bytes().filter(|b| *b == b'.').count() == 2 && !self.jwt_keys.is_empty() {
            return self.verify_jwt(token);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // The lookup compares digests of a 256-bit random key: timing reveals nothing useful.
        self.api_keys
            .get(&digest)
            .map(|t| Tenant(t.clone()))
            .ok_or(AuthError::UnknownKey)
    }

    fn verify_jwt(&self, token: &str) -> Result<Tenant, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Jwt(e.to_string()))?;
        let candidates: Vec<&JwtKey> = self
            .jwt_keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::Jwt(format!(
                "no key for alg {:?} kid {:?}",
                header.alg, header.kid
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway_s;
        validation.set_required_spec_claims(&["exp"]);
        match &self.audience {
            Some(a) => validation.set_audience(&[a]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        let mut last = String::new();
        for k in candidates {
            match jsonwebtoken::decode::<serde_json::Value>(token, &k.key, &validation) {
                Ok(data) => {
                    let tenant = data
                        .claims
                        .get(&self.tenant_claim)
                        .and_then(|v| v.as_str())
                        .filter(|t| valid_tenant(t))
                        .ok_or_else(|| AuthError::BadTenant {
                            claim: self.tenant_claim.clone(),
                        })?;
                    return Ok(Tenant(tenant.to_string()));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(AuthError::Jwt(last))
    }
}

/// The tonic interceptor in front of the Control service: with auth on, a call without a
/// valid bearer token is refused UNAUTHENTICATED; the tenant goes into the request's
/// extensions for the handlers.
#[derive(Clone, Debug)]
pub struct AuthInterceptor(pub Option<Arc<Authenticator>>);

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let Some(auth) = &self.0 else {
            return Ok(req);
        };
        let tenant = bearer(&req)
            .and_then(|token| auth.authenticate(token))
            .map_err(|e| {
                tracing::info!("refused call: {e}");
                Status::from(ControlError::from(e))
            })?;
        if auth.admins.contains(&tenant.0) {
            req.extensions_mut().insert(Admin);
        }
        req.extensions_mut().insert(tenant);
        Ok(req)
    }
}

fn bearer<T>(req: &Request<T>) -> Result<&str, AuthError> {
    let v = req
        .metadata()
        .get("authorization")
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = v.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}

/// The caller's tenant, when auth is on.
pub fn tenant_of<T>(req: &Request<T>) -> Option<&str> {
    req.extensions().get::<Tenant>().map(|t| t.0.as_str())
}

/// Request messages that name a user.
pub trait UserScoped {
    fn user_id_mut(&mut self) -> &mut String;
}

macro_rules! user_scoped {
    ($($t:ty),* $(,)?) => {
        $( impl UserScoped for $t {
            fn user_id_mut(&mut self) -> &mut String { &mut self.user_id }
        } )*
    };
}

user_scoped!(
    proto::PlanRequest,
    proto::GenerateRequest,
    proto::GetJobRequest,
    proto::ListJobsRequest,
    proto::WatchJobRequest,
    proto::CancelJobRequest,
    proto::GetReceiptRequest,
    proto::GetUsageRequest,
    proto::SetPreferencesRequest,
    proto::GetPreferencesRequest,
);

/// The request's message, acting as the caller's tenant: with auth on, the message's user is
/// set to the tenant (a message naming another user is refused: a tenant cannot act as, or
/// read, anyone else); with auth off it is left as sent.
pub fn scoped<T: UserScoped>(req: Request<T>) -> Result<T, ControlError> {
    let tenant = tenant_of(&req).map(str::to_string);
    let mut msg = req.into_inner();
    if let Some(tenant) = tenant {
        let user = msg.user_id_mut();
        if !user.is_empty() && *user != tenant {
            return Err(ControlError::PermissionDenied(format!(
                "the token is for tenant {tenant}; it cannot act as user {user}"
            )));
        }
        *user = tenant;
    }
    Ok(msg)
}

/// Node-wide operations (Drain): with auth on, only tenants in `auth.admin_tenants`.
pub fn require_admin<T>(req: &Request<T>) -> Result<(), ControlError> {
    match tenant_of(req) {
        Some(t) if req.extensions().get::<Admin>().is_none() => {
            Err(ControlError::PermissionDenied(format!(
                "tenant {t} may not do this: it is not in auth.admin_tenants"
            )))
        }
        _ => Ok(()),
    }
}

/// The tenant that owns webhook subscriptions made by this call: the caller's, or with auth
/// off the single default tenant.
pub fn webhook_tenant<T>(req: &Request<T>) -> String {
    tenant_of(req)
        .unwrap_or(crate::control::DEFAULT_USER)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use settings::ApiKeyEntry;

    fn config(jwks: Option<PathBuf>) -> AuthConfig {
        AuthConfig {
            api_keys: vec![ApiKeyEntry {
                tenant: "studio-a".into(),
                sha256: hash_api_key("aiprod_secret-a"),
            }],
            jwks_file: jwks,
            ..Default::default()
        }
    }

    #[test]
    fn api_keys_map_to_their_tenant() {
        let auth = Authenticator::from_config(&config(None)).unwrap().unwrap();
        assert_eq!(
            auth.authenticate("aiprod_secret-a"),
            Ok(Tenant("studio-a".into()))
        );
        assert_eq!(
            auth.authenticate("aiprod_secret-b"),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(auth.authenticate(""), Err(AuthError::Malformed));
        assert!(Authenticator::from_config(&AuthConfig::default())
            .unwrap()
            .is_none());
        let k = generate_api_key();
        assert!(k.starts_with(API_KEY_PREFIX) && k.len() > 40, "{k}");
        assert_eq!(hash_api_key("abc").len(), 64);
    }

    #[test]
    fn hs256_jwts_verify_against_an_oct_jwk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        // k = base64url("a-test-hmac-secret-of-32-bytes!!")
        let secret = b"a-test-hmac-secret-of-32-bytes!!";
        use base64::Engine;
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        std::fs::write(
            &path,
            format!(r#"{{"keys":[{{"kty":"oct","kid":"h1","alg":"HS256","k":"{k}"}}]}}"#),
        )
        .unwrap();
        let mut cfg = config(Some(path));
        cfg.jwt_issuer = Some("https://issuer.test".into());
        let auth = Authenticator::from_config(&cfg).unwrap().unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some("h1".into());
        let exp = crate::now_unix_ms() / 1000 + 600;
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret),
            )
            .unwrap()
        };
        let good =
            sign(serde_json::json!({"sub": "studio-b", "exp": exp, "iss": "https://issuer.test"}));
        assert_eq!(auth.authenticate(&good), Ok(Tenant("studio-b".into())));
        let wrong_iss =
            sign(serde_json::json!({"sub": "studio-b", "exp": exp, "iss": "https://evil"}));
        assert!(matches!(
            auth.authenticate(&wrong_iss),
            Err(AuthError::Jwt(_))
        ));
        let expired = sign(
            serde_json::json!({"sub": "studio-b", "exp": exp - 7200, "iss": "https://issuer.test"}),
        );
        assert!(matches!(
            auth.authenticate(&expired),
            Err(AuthError::Jwt(_))
        ));
        let bad_tenant =
            sign(serde_json::json!({"sub": "a b", "exp": exp, "iss": "https://issuer.test"}));
        assert!(matches!(
            auth.authenticate(&bad_tenant),
            Err(AuthError::BadTenant { .. })
        ));
        // The API key still works next to JWTs.
        assert_eq!(
            auth.authenticate("aiprod_secret-a"),
            Ok(Tenant("studio-a".into()))
        );
    }
}
