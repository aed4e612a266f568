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
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
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
            e @ (JobError::AlreadyFinal { .. } | JobError::MissingEngine(_)) => {
                Self::FailedPrecondition(e.to_string())
            }
            JobError::Store(s) => s.into(),
            e @ JobError::Draining => Self::Unavailable(e.to_string()),
            e @ (JobError::QueueFull { .. }
            | JobError::UserQuota { .. }
            | JobError::DiskLow { .. }) => Self::ResourceExhausted(e.to_string()),
        }
    }
}

impl From<crate::auth::AuthError> for ControlError {
    fn from(e: crate::auth::AuthError) -> Self {
        Self::Unauthenticated(e.to_string())
    }
}

impl From<crate::backends::BackendError> for ControlError {
    fn from(e: crate::backends::BackendError) -> Self {
        use crate::backends::BackendError as B;
        match e {
            // "needed X, available Y", the job cap, and requests the provider cannot serve:
            // refused before anything is spent.
            e @ (B::InsufficientFunds { .. }
            | B::OverJobCap { .. }
            | B::Unsupported { .. }
            | B::NotConfigured { .. }) => Self::FailedPrecondition(e.to_string()),
            e @ (B::Unreachable { .. } | B::Provider { .. }) => Self::Unavailable(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::webhooks::WebhookError> for ControlError {
    fn from(e: crate::webhooks::WebhookError) -> Self {
        use crate::webhooks::WebhookError as W;
        match e {
            W::Invalid { field, reason } => Self::invalid(field, reason),
            e @ W::NotFound(_) => Self::NotFound(e.to_string()),
            e @ W::TooMany { .. } => Self::ResourceExhausted(e.to_string()),
            W::Store(s) => s.into(),
            W::Task(reason) => Self::Internal(reason),
        }
    }
}

impl From<aiprod_quality::ProbeError> for ControlError {
    fn from(e: aiprod_quality::ProbeError) -> Self {
        use aiprod_quality::ProbeError as P;
        match e {
            P::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Self::NotFound(e.to_string())
            }
            P::Io { ref source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Self::FailedPrecondition(e.to_string())
            }
            // Not media, malformed, over a limit: the file is the problem, named with where.
            e @ (P::NotMedia { .. } | P::Malformed { .. } | P::NoVideo { .. }) => {
                Self::invalid("path", e.to_string())
            }
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<aiprod_quality::spec::ValidateError> for ControlError {
    fn from(e: aiprod_quality::spec::ValidateError) -> Self {
        use aiprod_quality::spec::ValidateError as V;
        match e {
            V::Probe(p) => p.into(),
            V::Spec(s) => Self::invalid("profile", s.to_string()),
            e @ V::Qc(_) => Self::invalid("path", e.to_string()),
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
            ControlError::ResourceExhausted(_) => Code::ResourceExhausted,
            ControlError::Unauthenticated(_) => Code::Unauthenticated,
            ControlError::PermissionDenied(_) => Code::PermissionDenied,
            ControlError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
