//! The dashboard API's error type and THE one place where its errors become HTTP statuses.
//! Errors from the Control service arrive as `tonic::Status` (already mapped once from the
//! control layer's own errors) and are translated code by code; the body is always
//! `{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tonic::Code;

/// Everything a dashboard API call can answer with besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The Control service refused or failed the call.
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
    /// The HTTP request could not be decoded into an API request (bad JSON, query, header).
    #[error("invalid {field}: {reason}")]
    BadRequest { field: String, reason: String },
    /// The API is switched off on this address (see `Dashboard::new`).
    #[error("{0}")]
    Forbidden(String),
    /// The job exists but has nothing of the kind asked for (yet).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::BadRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC code this error corresponds to (also the `code` in the JSON body).
    fn code(&self) -> Code {
        match self {
            Self::Status(s) => s.code(),
            Self::BadRequest { .. } => Code::InvalidArgument,
            Self::Forbidden(_) => Code::PermissionDenied,
            Self::Conflict(_) => Code::FailedPrecondition,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

/// The HTTP status of a gRPC code. As the usual gRPC↔HTTP mapping (google.rpc.Code), except
/// that FAILED_PRECONDITION is 409 Conflict: the request was well-formed but the job's or plan's
/// state does not allow it (infeasible plan, no receipt yet), which a page handles differently
/// from a typo in a field.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON name of a code: "INVALID_ARGUMENT", "NOT_FOUND", ...
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = http_status(code);
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), "dashboard API: {self}");
        }
        let body = serde_json::json!({
            "error": { "code": code_name(code), "message": self.to_string() }
        });
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_http() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::FailedPrecondition, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
        ];
        for (code, http) in cases {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[tokio::test]
    async fn body_names_the_code_and_keeps_the_message() {
        let err = ApiError::from(tonic::Status::invalid_argument(
            "invalid duration_s: must be > 0",
        ));
        let resp = err.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(v["error"]["message"], "invalid duration_s: must be > 0");
    }
}
