//! The one HTTP error type: `{"error": "<code>", "message": "..."}` with the right status.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{bus::BusError, store::StoreError};

/// What a 429 asks the caller to wait before trying again.
const RETRY_AFTER_SECS: u32 = 2;
/// SQLSTATEs of text PostgreSQL cannot store (a NUL character in text or jsonb): the caller's
/// input, never a server fault. The gateway refuses NUL before it gets here; this is the backstop.
const UNSTORABLE_TEXT: [&str; 2] = ["22021", "22P05"];

/// SQLSTATEs of a transaction that lost to a concurrent one (deadlock, serialization): the same
/// request succeeds when tried again.
const RETRYABLE: [&str; 2] = ["40P01", "40001"];

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// What was asked for existed once and is gone for good (a purged audit trail).
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A configured limit is reached (concurrent event streams, searches); retry later.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `not_found`.
    pub error: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::Gone(_) => "gone",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unprocessable(_) => "unprocessable_entity",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = ?cause, "request failed");
        }
        let body = ErrorBody { error: self.code(), message: self.to_string() };
        let mut response = (self.status_code(), Json(body)).into_response();
        if matches!(self, Self::TooManyRequests(_)) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match crate::store::violated_constraint_of(&error) {
            Some(crate::store::jobs::ONE_ACTIVE_PER_PROJECT) => {
                Self::Conflict("the project already has a pending or running job".to_owned())
            }
            // Constraint names are the schema's, not the API's: they stay in the log.
            Some(constraint) if constraint.ends_with("_pkey") => {
                tracing::info!(constraint, "unique id taken");
                Self::Conflict("a record with this id exists already".to_owned())
            }
            Some(constraint) if constraint.ends_with("_check") => {
                tracing::info!(constraint, "check constraint violated");
                Self::Unprocessable("a value is out of its allowed range".to_owned())
            }
            _ => match error {
                StoreError::Database(sqlx::Error::Database(db))
                    if db.code().is_some_and(|code| UNSTORABLE_TEXT.contains(&code.as_ref())) =>
                {
                    Self::Unprocessable(format!("a text cannot be stored: {}", db.message()))
                }
                StoreError::Database(sqlx::Error::Database(db))
                    if db.code().is_some_and(|code| RETRYABLE.contains(&code.as_ref())) =>
                {
                    Self::Unavailable("a concurrent change got in the way; try again".to_owned())
                }
                StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                    Self::Unavailable("the database is unavailable".to_owned())
                }
                other => Self::Internal(other.into()),
            },
        }
    }
}

impl From<BusError> for ApiError {
    fn from(error: BusError) -> Self {
        tracing::warn!(%error, "NATS unavailable");
        Self::Unavailable("the message bus is unavailable".to_owned())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(error).into()
    }
}
