//! The three plan tiers a Plan request answers with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::PlannerError;

/// A quality/price tier. Order matters: plans are always listed PREMIUM, BALANCED, ECONOMY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Tier {
    /// Best model at full resolution.
    Premium,
    /// A cheaper model or half resolution, upscaled ×2.
    Balanced,
    /// The cheapest model or quarter resolution, upscaled ×4.
    Economy,
}

impl Tier {
    /// Every tier in presentation order.
    pub const ALL: [Tier; 3] = [Tier::Premium, Tier::Balanced, Tier::Economy];

    /// `"PREMIUM"`, `"BALANCED"` or `"ECONOMY"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Premium => "PREMIUM",
            Tier::Balanced => "BALANCED",
            Tier::Economy => "ECONOMY",
        }
    }

    /// Index into [`Tier::ALL`].
    pub fn index(self) -> usize {
        match self {
            Tier::Premium => 0,
            Tier::Balanced => 1,
            Tier::Economy => 2,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = PlannerError;

    /// Case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Tier, PlannerError> {
        let t = s.trim();
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                PlannerError::field(
                    "tier",
                    format!("unknown tier {s:?}; expected PREMIUM, BALANCED or ECONOMY"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively() {
        assert_eq!("premium".parse::<Tier>(), Ok(Tier::Premium));
        assert_eq!("PREMIUM".parse::<Tier>(), Ok(Tier::Premium));
        assert_eq!(" Balanced ".parse::<Tier>(), Ok(Tier::Balanced));
        assert_eq!("economy".parse::<Tier>(), Ok(Tier::Economy));
        assert!(matches!(
            "gold".parse::<Tier>(),
            Err(PlannerError::InvalidField { field: "tier", .. })
        ));
    }

    #[test]
    fn order_and_names() {
        assert_eq!(Tier::ALL, [Tier::Premium, Tier::Balanced, Tier::Economy]);
        let names: Vec<String> = Tier::ALL.iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["PREMIUM", "BALANCED", "ECONOMY"]);
        for (i, t) in Tier::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }
}
