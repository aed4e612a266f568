//! The control layer's error type and THE one place where errors become gRPC statuses.

use tonic::{Code, Status};

use crate::jobs::store::StoreError;
use crate::jobs::JobError;

/// Everything a control RPC can answer with besides success.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A request field is wrong; `field` is spelled as in the proto.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ControlError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<aiprod_planner::PlannerError> for ControlError {
    fn from(e: aiprod_planner::PlannerError) -> Self {
        match e {
            aiprod_planner::PlannerError::InvalidField { field, reason } => {
                Self::invalid(field, reason)
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<JobError> for ControlError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound(id) => Self::NotFound(format!("job {id} not found")),
            e @ JobError::AlreadyFinal { .. } => Self::FailedPrecondition(e.to_string()),
            JobError::Store(s) => s.into(),
        }
    }
}

impl From<ControlError> for Status {
    fn from(e: ControlError) -> Self {
        let code = match &e {
            ControlError::InvalidArgument { .. } => Code::InvalidArgument,
            ControlError::NotFound(_) => Code::NotFound,
            ControlError::FailedPrecondition(_) => Code::FailedPrecondition,
            ControlError::Unavailable(_) => Code::Unavailable,
            ControlError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
