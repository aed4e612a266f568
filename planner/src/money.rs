//! Money as integer micro-dollars (1 USD = 1_000_000), so sums are exact and never f32.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub};

use serde::{Deserialize, Serialize};

/// Micro-dollars per dollar.
pub const MICROS_PER_USD: i64 = 1_000_000;

/// An amount of US dollars in millionths of a dollar.
///
/// Arithmetic saturates instead of overflowing: an amount near ±9.2e12 USD is already nonsense,
/// and a panic in the daemon on a silly input is worse than a clamped number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UsdMicros(pub i64);

impl UsdMicros {
    /// Zero dollars.
    pub const ZERO: UsdMicros = UsdMicros(0);

    /// Converts dollars to micro-dollars, rounding half away from zero.
    ///
    /// Returns `None` for NaN, infinities and amounts that do not fit in an `i64`.
    pub fn from_usd(usd: f64) -> Option<UsdMicros> {
        if !usd.is_finite() {
            return None;
        }
        let micros = (usd * MICROS_PER_USD as f64).round();
        // i64::MAX as f64 rounds up to 2^63, which itself does not fit: compare strictly.
        if micros >= i64::MAX as f64 || micros < i64::MIN as f64 {
            return None;
        }
        Some(UsdMicros(micros as i64))
    }

    /// The amount in dollars (for display and ratios only; sums stay in micros).
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / MICROS_PER_USD as f64
    }

    /// The raw micro-dollar count.
    pub fn micros(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UsdMicros {
    /// `$0.012345`, `-$1.500000`: always six decimals, exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = MICROS_PER_USD as u64;
        write!(f, "{sign}${}.{:06}", abs / per, abs % per)
    }
}

impl Add for UsdMicros {
    type Output = UsdMicros;
    fn add(self, rhs: UsdMicros) -> UsdMicros {
        UsdMicros(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for UsdMicros {
    fn add_assign(&mut self, rhs: UsdMicros) {
        *self = *self + rhs;
    }
}

impl Sub for UsdMicros {
    type Output = UsdMicros;
    fn sub(self, rhs: UsdMicros) -> UsdMicros {
        UsdMicros(self.0.saturating_sub(rhs.0))
    }
}

impl Sum for UsdMicros {
    fn sum<I: Iterator<Item = UsdMicros>>(iter: I) -> UsdMicros {
        iter.fold(UsdMicros::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a UsdMicros> for UsdMicros {
    fn sum<I: Iterator<Item = &'a UsdMicros>>(iter: I) -> UsdMicros {
        iter.copied().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_usd_rounds_half_away_from_zero() {
        assert_eq!(UsdMicros::from_usd(0.0000005), Some(UsdMicros(1)));
        assert_eq!(UsdMicros::from_usd(-0.0000005), Some(UsdMicros(-1)));
        assert_eq!(UsdMicros::from_usd(0.0000004), Some(UsdMicros(0)));
        assert_eq!(UsdMicros::from_usd(0.412), Some(UsdMicros(412_000)));
        assert_eq!(UsdMicros::from_usd(1.5), Some(UsdMicros(1_500_000)));
    }

    #[test]
    fn from_usd_rejects_non_finite_and_huge() {
        assert_eq!(UsdMicros::from_usd(f64::NAN), None);
        assert_eq!(UsdMicros::from_usd(f64::INFINITY), None);
        assert_eq!(UsdMicros::from_usd(f64::NEG_INFINITY), None);
        assert_eq!(UsdMicros::from_usd(1e20), None);
    }

    #[test]
    fn display_has_six_decimals() {
        assert_eq!(UsdMicros(12_345).to_string(), "$0.012345");
        assert_eq!(UsdMicros(0).to_string(), "$0.000000");
        assert_eq!(UsdMicros(1_500_000).to_string(), "$1.500000");
        assert_eq!(UsdMicros(-1).to_string(), "-$0.000001");
        assert_eq!(UsdMicros(i64::MIN).to_string(), "-$9223372036854.775808");
    }

    #[test]
    fn arithmetic_and_sum() {
        let a = UsdMicros(700);
        let b = UsdMicros(300);
        assert_eq!(a + b, UsdMicros(1_000));
        assert_eq!(a - b, UsdMicros(400));
        assert_eq!([a, b, b].iter().sum::<UsdMicros>(), UsdMicros(1_300));
        assert_eq!(UsdMicros(i64::MAX) + UsdMicros(1), UsdMicros(i64::MAX));
        assert_eq!((a + b).as_usd(), 0.001);
    }

    #[test]
    fn serde_is_a_plain_integer() {
        #[derive(Serialize, Deserialize)]
        struct W {
            v: UsdMicros,
        }
        let s = toml::to_string(&W { v: UsdMicros(42) }).unwrap_or_default();
        assert_eq!(s.trim(), "v = 42");
    }
}
