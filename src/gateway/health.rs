//! Liveness and readiness.

use std::time::Duration;

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, ErrorBody, Result},
};

/// A dependency slower than this to answer counts as down.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    pub status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub database: bool,
    pub nats: bool,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Liveness)))]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// The database answers and NATS serves the command and event streams.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, description = "Not ready (which part is named)", body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>> {
    let database = sqlx::query("SELECT 1").execute(&state.db);
    // The streams the gateway publishes to and replays from, not merely a TCP connection.
    let commands = state.bus.jetstream.get_stream(state.bus.prefix.commands_stream());
    let events = state.bus.jetstream.get_stream(state.bus.prefix.events_stream());
    let (database, commands, events) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, database),
        tokio::time::timeout(READY_TIMEOUT, commands),
        tokio::time::timeout(READY_TIMEOUT, events)
    );
    let database = matches!(database, Ok(Ok(_)));
    let nats = matches!(commands, Ok(Ok(_))) && matches!(events, Ok(Ok(_)));
    if database && nats {
        Ok(Json(Health { status: "ready", database, nats }))
    } else {
        Err(ApiError::Unavailable(format!("not ready: database={database}, nats={nats}")))
    }
}
