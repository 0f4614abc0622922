//! Axum's extractors with their rejections turned into the JSON error body: a malformed body or
//! query is 400, a body that is not declared JSON 415, a well-formed body with a wrong field (or
//! a NUL character in any text) 422 naming the field, an oversized body 413.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::{error::ApiError, nul};

pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !declares_json(request.headers()) {
            return Err(not_json());
        }
        let bytes = body(request, state).await?;
        refuse_nul(&bytes)?;
        parse(&bytes).map(Json)
    }
}

fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType("expected a request body with `Content-Type: application/json`".to_owned())
}

/// `application/json` or any `application/*+json`, parameters aside.
fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The largest body the gateway reads (HTTP_BODY_LIMIT_BYTES), for the 413's message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

async fn body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = request.extensions().get::<BodyLimit>().copied();
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(match limit {
                Some(BodyLimit(bytes)) => format!("the request body exceeds {bytes} bytes (HTTP_BODY_LIMIT_BYTES)"),
                None => rejection.body_text(),
            })
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })
}

/// 422 naming the field when any text of the body holds a NUL character.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if !nul::may_contain(bytes) {
        return Ok(());
    }
    // Only bodies that spell `\u0000` somewhere pay for the second parse.
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => match nul::find(&value) {
            Some(path) => Err(ApiError::Unprocessable(nul::message(&path))),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// Axum's own parse, whose message names the path to a wrong field (`memories[1].memory_type`);
/// the parser's position (`at line 1 column 52`) says nothing to a client and is left out.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    axum::Json::<T>::from_bytes(bytes).map(|axum::Json(value)| value).map_err(|rejection| {
        let message = without_position(&rejection.body_text()).to_owned();
        match rejection.status() {
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(message),
            _ => ApiError::BadRequest(message),
        }
    })
}

fn without_position(message: &str) -> &str {
    let Some((head, tail)) = message.rsplit_once(" at line ") else { return message };
    let mut numbers = tail.split(" column ");
    let numeric = |part: Option<&str>| part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric(numbers.next()) && numeric(numbers.next()) && numbers.next().is_none() { head } else { message }
}

pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// A JSON body that may be left out entirely (an empty body is None, whatever its type) or be
/// `null`, which the document allows in its place.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared = declares_json(request.headers());
        let bytes = body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !declared {
            return Err(not_json());
        }
        refuse_nul(&bytes)?;
        parse::<Option<T>>(&bytes).map(OptionalJson)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_media_types_are_recognized_with_parameters_and_suffixes() {
        let declared = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            declares_json(&headers)
        };
        assert!(declared("application/json"));
        assert!(declared("Application/JSON; charset=utf-8"));
        assert!(declared("application/merge-patch+json"));
        assert!(!declared("text/plain"));
        assert!(!declared("application/jsonx"));
        assert!(!declares_json(&HeaderMap::new()));
    }

    #[test]
    fn a_nul_anywhere_is_a_422_naming_the_field() {
        let error = refuse_nul(br#"{"name": "a\u0000b"}"#).unwrap_err();
        assert!(matches!(&error, ApiError::Unprocessable(message) if message.starts_with("name:")), "{error}");
        assert!(refuse_nul(br#"{"name": "a\\u0000b"}"#).is_ok());
    }

    #[tokio::test]
    async fn a_null_optional_body_is_no_body() {
        let request = Request::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from("null"))
            .unwrap();
        let OptionalJson(body) = OptionalJson::<serde_json::Value>::from_request(request, &()).await.unwrap();
        assert_eq!(body, None);
    }
}
