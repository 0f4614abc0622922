//! Liveness and readiness.

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;

use super::{AppState, error::{ApiError, Result}};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub database: bool,
    pub nats: bool,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", database: true, nats: true })
}

/// The database and NATS both answer.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = super::error::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>> {
    let database = sqlx::query("SELECT 1").execute(&state.db).await.is_ok();
    let nats = state.bus.is_connected();
    if database && nats {
        Ok(Json(Health { status: "ready", database, nats }))
    } else {
        Err(ApiError::Unavailable(format!("not ready: database={database}, nats={nats}")))
    }
}
