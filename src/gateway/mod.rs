//! The thin HTTP API: validates, authorizes, writes the job row, publishes a command, answers.
//! It never runs consolidation itself.

pub mod auth;
pub mod error;
pub mod health;

use std::{net::SocketAddr, sync::Arc};

use axum::Router;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{bus::Bus, config::GatewayConfig};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub bus: Bus,
    pub config: Arc<GatewayConfig>,
    pub auth: Arc<auth::Auth>,
}

impl AppState {
    pub fn new(db: PgPool, bus: Bus, config: GatewayConfig) -> Result<Self, crate::config::ConfigError> {
        let auth = Arc::new(auth::Auth::from_config(&config)?);
        Ok(Self { db, bus, config: Arc::new(config), auth })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new().merge(health::router()).with_state(state)
}

/// Serves until `shutdown`, then finishes in-flight requests.
pub async fn serve(state: AppState, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(state.config.http_addr).await?;
    serve_on(listener, state, shutdown).await
}

pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(addr)
}
