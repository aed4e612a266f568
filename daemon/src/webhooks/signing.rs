//! Standard Webhooks signatures (https://www.standardwebhooks.com): the signed content is
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, the signature HMAC-SHA256 keyed with the
//! base64-decoded part of a `whsec_<base64>` secret, sent as `webhook-signature: v1,<base64>`
//! (several space-separated signatures are allowed while a secret rotates). Replicate signs its
//! webhooks the same way, so this module also verifies those.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of Standard Webhooks secrets.
pub const SECRET_PREFIX: &str = "whsec_";
/// Key length bounds: the spec asks for 24..=64 random bytes.
pub const MIN_KEY_BYTES: usize = 24;
pub const MAX_KEY_BYTES: usize = 64;
/// Bytes of a generated key.
const GENERATED_KEY_BYTES: usize = 32;

/// Why a secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("secret must look like whsec_<base64 of {MIN_KEY_BYTES}..={MAX_KEY_BYTES} bytes>")]
    BadSecret,
    #[error("missing or malformed {0} header")]
    BadHeader(&'static str),
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// A decoded signing key. Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>`. `strict` enforces the spec's key length (our subscriptions);
    /// providers' secrets (Replicate) are taken as they come.
    pub fn parse(secret: &str, strict: bool) -> Result<SigningKey, SigningError> {
        let b64 = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SigningError::BadSecret)?;
        let key = B64.decode(b64).map_err(|_| SigningError::BadSecret)?;
        if key.is_empty() || (strict && !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len())) {
            return Err(SigningError::BadSecret);
        }
        Ok(SigningKey(key))
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, msg_id: &str, timestamp_s: i64, body: &[u8]) -> String {
        format!("v1,{}", B64.encode(self.mac(msg_id, timestamp_s, body)))
    }

    fn mac(&self, msg_id: &str, timestamp_s: i64, body: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_s.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Checks the three headers against `body`; `now_s` and `tolerance_s` bound the timestamp
    /// (replay protection; None skips the check). Comparison is constant-time.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now_s: i64,
        tolerance_s: Option<i64>,
    ) -> Result<(), SigningError> {
        if msg_id.is_empty() {
            return Err(SigningError::BadHeader("webhook-id"));
        }
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SigningError::BadHeader("webhook-timestamp"))?;
        if let Some(tol) = tolerance_s {
            if (now_s - ts).abs() > tol {
                return Err(SigningError::Stale);
            }
        }
        for sig in signatures.split_whitespace() {
            let Some(b64) = sig.strip_prefix("v1,") else {
                continue;
            };
            let Ok(given) = B64.decode(b64) else { continue };
            let Ok(mut mac) = HmacSha256::new_from_slice(&self.0) else {
                continue;
            };
            mac.update(msg_id.as_bytes());
            mac.update(b".");
            mac.update(ts.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(&given).is_ok() {
                return Ok(());
            }
        }
        Err(SigningError::Mismatch)
    }
}

/// A fresh `whsec_` secret of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replicate's published vector (replicate-python tests/test_webhooks.py), which is the
    /// Standard Webhooks scheme.
    #[test]
    fn matches_the_published_test_vector() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        key.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            &format!("v1,bogus {sig}"),
            body,
            1614265330 + 10,
            Some(300),
        )
        .unwrap();
        assert_eq!(
            key.verify(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                &sig,
                b"{}",
                0,
                None
            ),
            Err(SigningError::Mismatch)
        );
        assert_eq!(
            key.verify(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                &sig,
                body,
                1614265330 + 301,
                Some(300)
            ),
            Err(SigningError::Stale)
        );
    }

    #[test]
    fn secrets_are_checked_and_generated_ones_are_valid() {
        assert!(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false).is_err());
        assert!(SigningKey::parse("whsec_!!!", false).is_err());
        // 24 bytes minimum for our own subscriptions.
        assert!(SigningKey::parse("whsec_MfKQ9r8GKYqrTwjU", true).is_err());
        let s = generate_secret();
        assert!(SigningKey::parse(&s, true).is_ok(), "{s}");
        assert_ne!(s, generate_secret());
        assert_eq!(
            format!("{:?}", SigningKey::parse(&s, true).unwrap()),
            "SigningKey(***)"
        );
    }
}
