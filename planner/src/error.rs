//! The planner's error type: bad request fields and bad embedded or configured data.

/// Everything the planner can refuse.
///
/// `InvalidField::field` names the gRPC request field (e.g. `"constraints.max_cost_usd"`) so the
/// daemon can map it to `INVALID_ARGUMENT` with a field violation without parsing text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlannerError {
    /// A request field is missing, out of range or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The request field, spelled as in the gRPC request.
        field: &'static str,
        /// Why it was refused, with the limit that applies.
        reason: String,
    },
    /// Pricing, profile or calibration data is malformed or incomplete.
    #[error("bad data in {what}: {reason}")]
    Data {
        /// Which file or table (e.g. `"pricing.toml"`, `"profiles/web.toml"`).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PlannerError {
    pub(crate) fn field(field: &'static str, reason: impl Into<String>) -> Self {
        PlannerError::InvalidField {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn data(what: impl Into<String>, reason: impl Into<String>) -> Self {
        PlannerError::Data {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
