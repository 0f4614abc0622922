//! The one HTTP error type: `{"error": "<code>", "message": "..."}` with the right status.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{bus::BusError, store::StoreError};

/// What a 429, or a 503 that a retry cures, asks the caller to wait before trying again.
const RETRY_AFTER_SECS: u32 = 2;
/// SQLSTATEs of text PostgreSQL cannot store (a NUL character in text or jsonb): the caller's
/// input, never a server fault. The gateway refuses NUL before it gets here; this is the backstop.
const UNSTORABLE_TEXT: [&str; 2] = ["22021", "22P05"];

/// SQLSTATEs after which the same request succeeds when tried again: a transaction that lost to a
/// concurrent one (deadlock, serialization failure), a server shutting down, crashed or starting
/// (admin shutdown, crash shutdown, cannot connect now), too many connections.
const RETRYABLE: [&str; 6] = ["40P01", "40001", "57P01", "57P02", "57P03", "53300"];

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
    /// A service this one calls (the embeddings endpoint) failed or answered nonsense.
    #[error("{0}")]
    BadGateway(String),
    /// Unavailable for a moment (the database or NATS): 503 with `Retry-After`.
    #[error("{0}")]
    TryAgain(String),
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
            Self::Unavailable(_) | Self::TryAgain(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
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
            Self::Unavailable(_) | Self::TryAgain(_) => "service_unavailable",
            Self::BadGateway(_) => "bad_gateway",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = ?cause, "request failed");
        }
        // A message may quote the input; a NUL in it is spelled out, as the document promises.
        let body = ErrorBody { error: self.code(), message: self.to_string().replace('\0', "\\u0000") };
        let mut response = (self.status_code(), Json(body)).into_response();
        if matches!(self, Self::TooManyRequests(_) | Self::TryAgain(_)) {
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
                    tracing::warn!(code = ?db.code(), message = db.message(), "database busy");
                    Self::TryAgain(
                        "the database is busy or restarting (a concurrent change, a shutdown or too many \
                                    connections); try again"
                            .to_owned(),
                    )
                }
                StoreError::Database(
                    sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::WorkerCrashed,
                ) => Self::TryAgain("the database is unavailable; try again".to_owned()),
                // The gateway's pool cancels a statement past the request timeout.
                StoreError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("57014") => {
                    Self::Unavailable("the request took too long and was cancelled".to_owned())
                }
                other => Self::Internal(other.into()),
            },
        }
    }
}

impl From<crate::llm::texts::TextEmbedError> for ApiError {
    fn from(error: crate::llm::texts::TextEmbedError) -> Self {
        tracing::warn!(%error, "embedding endpoint failed");
        Self::BadGateway(format!("{error}; nothing was stored"))
    }
}

impl From<BusError> for ApiError {
    fn from(error: BusError) -> Self {
        tracing::warn!(%error, "NATS unavailable");
        Self::TryAgain("the message bus is unavailable; try again".to_owned())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(error).into()
    }
}

#[cfg(test)]
mod tests {
    use std::{borrow::Cow, error::Error, fmt};

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A PostgreSQL error with only its SQLSTATE, as the server would send it.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl fmt::Display for Sqlstate {
        fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            write!(formatter, "SQLSTATE {}", self.0)
        }
    }

    impl Error for Sqlstate {}

    impl DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "server says no"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn answer(error: sqlx::Error) -> Response {
        ApiError::from(StoreError::Database(error)).into_response()
    }

    #[tokio::test]
    async fn a_busy_or_restarting_database_is_a_503_with_retry_after_and_a_json_body() {
        let sqlstates = ["40P01", "40001", "57P01", "57P02", "57P03", "53300"];
        let errors = sqlstates.into_iter().map(|code| sqlx::Error::Database(Box::new(Sqlstate(code)))).chain([
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
        ]);
        for error in errors {
            let label = error.to_string();
            let response = answer(error);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{label}");
            assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"2"[..]), "{label}");
            let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], "service_unavailable", "{label}");
            assert!(body["message"].as_str().is_some_and(|m| m.contains("try again")), "{label}: {body}");
        }
    }

    #[test]
    fn a_statement_cancelled_past_the_request_timeout_is_a_503() {
        let response = answer(sqlx::Error::Database(Box::new(Sqlstate("57014"))));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn other_database_errors_stay_internal() {
        let response = answer(sqlx::Error::Database(Box::new(Sqlstate("XX000"))));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
