//! `/asyncapi.json`: the AsyncAPI 3.0 document of the bus under this gateway's prefix (built once,
//! by [`crate::bus::asyncapi`]); unauthenticated, like `/openapi.json`.

use std::sync::Arc;

use axum::{Extension, Json};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use crate::bus::{Bus, asyncapi};

/// The served document, built at start.
#[derive(Clone)]
pub struct AsyncApiDocument(pub Arc<Value>);

impl AsyncApiDocument {
    /// The bus's document under `bus`'s prefix and replicas (the event stream's age at its default).
    pub fn of(bus: &Bus) -> Self {
        let layout = asyncapi::Layout { replicas: bus.replicas, ..asyncapi::Layout::with_defaults(bus.prefix.clone()) };
        Self(Arc::new(asyncapi::document(&layout)))
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(asyncapi_json))
}

/// The AsyncAPI 3.0 document of the NATS subjects: every command and event, its payload schema
/// and headers, who publishes and who subscribes, the streams and consumers.
#[utoipa::path(get, path = "/asyncapi.json", tag = "health",
    responses((status = 200, description = "The AsyncAPI 3.0 document of the bus", body = Object)))]
pub async fn asyncapi_json(Extension(document): Extension<AsyncApiDocument>) -> Json<Value> {
    Json(document.0.as_ref().clone())
}
