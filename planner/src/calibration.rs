//! Calibration of estimates from past receipts: one factor per (backend, stage), an EWMA of
//! actual/estimated time, multiplied into later estimates.
//!
//! A new ratio r moves the factor f to `f + ALPHA × (r − f)` (f starts at 1.0). Ratios are clamped
//! to [RATIO_MIN, RATIO_MAX] so one pathological job (a stalled provider, a suspended VM) cannot
//! wreck every later estimate; non-finite or non-positive times are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// EWMA weight of the newest observation: ~3 jobs move the factor most of the way.
pub const ALPHA: f64 = 0.3;
/// Smallest accepted actual/estimated ratio.
pub const RATIO_MIN: f64 = 0.1;
/// Largest accepted actual/estimated ratio.
pub const RATIO_MAX: f64 = 10.0;

/// One persisted factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationEntry {
    /// `"local"`, `"runway"`, `"veo"`, `"replicate"`.
    pub backend: String,
    /// `"generate"`, `"upscale"`, `"qc"`, `"encode"` (see `StepKind::as_str`).
    pub stage: String,
    /// Multiplier applied to estimates (1.0 = estimates are right).
    pub factor: f64,
}

/// Correction factors keyed by (backend, stage), both lower case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibration {
    factors: BTreeMap<(String, String), f64>,
}

fn key(backend: &str, stage: &str) -> (String, String) {
    (
        backend.trim().to_ascii_lowercase(),
        stage.trim().to_ascii_lowercase(),
    )
}

impl Calibration {
    /// No observations: every factor is 1.0.
    pub fn new() -> Calibration {
        Calibration::default()
    }

    /// The factor for (backend, stage); 1.0 when never observed.
    pub fn factor(&self, backend: &str, stage: &str) -> f64 {
        self.factors
            .get(&key(backend, stage))
            .copied()
            .unwrap_or(1.0)
    }

    /// Folds one finished stage into the factor. Returns the new factor, or None when the
    /// observation was ignored (non-finite or non-positive times).
    pub fn observe(
        &mut self,
        backend: &str,
        stage: &str,
        estimated_s: f64,
        actual_s: f64,
    ) -> Option<f64> {
        if !(estimated_s.is_finite() && actual_s.is_finite() && estimated_s > 0.0 && actual_s > 0.0)
        {
            return None;
        }
        let ratio = (actual_s / estimated_s).clamp(RATIO_MIN, RATIO_MAX);
        let slot = self.factors.entry(key(backend, stage)).or_insert(1.0);
        *slot += ALPHA * (ratio - *slot);
        Some(*slot)
    }

    /// All factors, sorted by (backend, stage), for persistence.
    pub fn entries(&self) -> Vec<CalibrationEntry> {
        self.factors
            .iter()
            .map(|((backend, stage), factor)| CalibrationEntry {
                backend: backend.clone(),
                stage: stage.clone(),
                factor: *factor,
            })
            .collect()
    }

    /// Rebuilds from persisted entries. Non-finite or non-positive factors are dropped and the
    /// rest clamped to [RATIO_MIN, RATIO_MAX], so a corrupted row cannot poison estimates.
    pub fn from_entries<I: IntoIterator<Item = CalibrationEntry>>(entries: I) -> Calibration {
        let factors = entries
            .into_iter()
            .filter(|e| e.factor.is_finite() && e.factor > 0.0)
            .map(|e| {
                (
                    key(&e.backend, &e.stage),
                    e.factor.clamp(RATIO_MIN, RATIO_MAX),
                )
            })
            .collect();
        Calibration { factors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn ewma_numbers() {
        let mut c = Calibration::new();
        assert_eq!(c.factor("local", "encode"), 1.0);
        // ratio 2.0: 1.0 + 0.3 × (2.0 − 1.0) = 1.3
        assert!(close(
            c.observe("local", "encode", 10.0, 20.0).unwrap_or(0.0),
            1.3
        ));
        // ratio 0.5: 1.3 + 0.3 × (0.5 − 1.3) = 1.06
        assert!(close(
            c.observe("local", "encode", 10.0, 5.0).unwrap_or(0.0),
            1.06
        ));
        assert!(close(c.factor("LOCAL", "Encode"), 1.06));
        // ratio 50 clamps to 10: 1.06 + 0.3 × (10 − 1.06) = 3.742
        assert!(close(
            c.observe("local", "encode", 1.0, 50.0).unwrap_or(0.0),
            3.742
        ));
        // ratio 0.001 clamps to 0.1 on a fresh key: 1.0 + 0.3 × (0.1 − 1.0) = 0.73
        assert!(close(
            c.observe("veo", "generate", 100.0, 0.1).unwrap_or(0.0),
            0.73
        ));
        assert_eq!(c.factor("local", "qc"), 1.0);
    }

    #[test]
    fn ignores_bad_observations() {
        let mut c = Calibration::new();
        for (e, a) in [
            (0.0, 1.0),
            (1.0, 0.0),
            (-1.0, 1.0),
            (f64::NAN, 1.0),
            (1.0, f64::INFINITY),
        ] {
            assert_eq!(c.observe("local", "qc", e, a), None);
        }
        assert!(c.entries().is_empty());
    }

    #[test]
    fn entries_round_trip() {
        let mut c = Calibration::new();
        c.observe("runway", "generate", 60.0, 90.0);
        c.observe("local", "encode", 10.0, 12.0);
        let entries = c.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].backend, "local");
        assert_eq!(entries[1].backend, "runway");
        assert!(close(entries[1].factor, 1.15));
        assert_eq!(Calibration::from_entries(entries), c);

        let loaded = Calibration::from_entries([
            CalibrationEntry {
                backend: "a".into(),
                stage: "x".into(),
                factor: f64::NAN,
            },
            CalibrationEntry {
                backend: "b".into(),
                stage: "x".into(),
                factor: 99.0,
            },
        ]);
        assert_eq!(loaded.factor("a", "x"), 1.0);
        assert_eq!(loaded.factor("b", "x"), 10.0);
    }
}
