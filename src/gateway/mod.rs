//! The thin HTTP API: validates, authorizes, writes the job row, publishes a command, answers.
//! It never runs consolidation itself.
//!
//! One file per resource, each exporting `router()`; [`api`] merges them into one router whose
//! OpenAPI document is built from the same handler annotations, so the two cannot drift apart.

pub mod apply_plan;
pub mod asyncapi;
pub mod attention;
pub mod audit;
pub mod auth;
pub mod cancel;
pub mod changes;
pub mod configure;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod history;
pub mod job_timeline;
pub mod local_secret;
pub mod mcp;
pub mod memories;
pub mod memory_actions;
pub mod memory_detail;
pub mod metrics;
pub mod nul;
pub mod openapi;
pub mod page;
pub mod playbook;
pub mod projects;
pub mod publish;
pub mod reviews;
pub mod rollback;
pub mod search;
pub mod slots;
pub mod status;
pub mod timeline;
pub mod trigger;
pub mod views;
pub mod workers;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, Method, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    serve::ListenerExt,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    bus::Bus,
    config::{ConfigError, EmbeddingConfig, GatewayConfig, RetentionConfig},
    llm::TextEmbedder,
};
use error::ApiError;

/// Every admin route lives under this prefix.
pub const API_PREFIX: &str = "/api/v1";
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub bus: Bus,
    pub config: Arc<GatewayConfig>,
    pub retention: RetentionConfig,
    pub auth: Arc<auth::Auth>,
    pub metrics: Arc<metrics::Metrics>,
    /// One slot per open event stream (SSE_MAX_STREAMS).
    pub sse_streams: Arc<slots::Slots>,
    /// One slot per running vector search (SEARCH_MAX_CONCURRENT).
    pub searches: Arc<slots::Slots>,
    /// Cancelled when the server stops: long-lived responses (SSE) end with it.
    pub shutdown: CancellationToken,
    /// Embeds memories sent without `context_embedding` and searches by text (EMBEDDING_BASE_URL).
    pub embedder: Option<TextEmbedder>,
}

impl AppState {
    pub fn new(db: PgPool, bus: Bus, config: GatewayConfig, retention: RetentionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        retention.validate()?;
        let auth = Arc::new(auth::Auth::from_config(&config)?);
        Ok(Self {
            db,
            bus,
            sse_streams: Arc::new(slots::Slots::new(config.sse_max_streams)),
            searches: Arc::new(slots::Slots::new(config.search_max_concurrent)),
            config: Arc::new(config),
            retention,
            auth,
            metrics: Arc::new(metrics::Metrics::new()),
            shutdown: CancellationToken::new(),
            embedder: None,
        })
    }

    /// The gateway embeds texts with this endpoint (none when EMBEDDING_BASE_URL is unset).
    pub fn with_embedding(mut self, config: &EmbeddingConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        self.embedder = TextEmbedder::from_config(config);
        Ok(self)
    }
}

/// Every route with its OpenAPI description, before state and middleware.
pub fn api() -> OpenApiRouter<AppState> {
    let admin = OpenApiRouter::new()
        .merge(trigger::router())
        .merge(apply_plan::router())
        .merge(job_timeline::router())
        .merge(status::router())
        .merge(events::router())
        .merge(history::router())
        .merge(changes::router())
        .merge(rollback::router())
        .merge(configure::router())
        .merge(projects::router())
        .merge(memories::router())
        .merge(search::router())
        .merge(memory_actions::router())
        .merge(memory_detail::router())
        .merge(playbook::router())
        .merge(cancel::router())
        .merge(reviews::router())
        .merge(audit::router())
        .merge(timeline::router())
        .merge(attention::router())
        .merge(workers::router());
    OpenApiRouter::with_openapi(openapi::base())
        .nest(API_PREFIX, admin)
        .merge(console::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(asyncapi::router())
}

pub fn router(state: AppState) -> Router {
    let (routes, spec) = api().split_for_parts();
    let spec = Arc::new(openapi::finish(spec, &state.config));
    let asyncapi = asyncapi::AsyncApiDocument::of(&state.bus);
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let request_id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok());
        tracing::info_span!("request", request_id = request_id.unwrap_or("-"), method = %request.method(), uri = %request.uri())
    });
    routes
        .merge(mcp::router(&state))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::Extension(spec))
        .layer(axum::Extension(asyncapi))
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(axum::Extension(extract::BodyLimit(state.config.body_limit_bytes)))
        .layer(middleware::from_fn_with_state(timeout, enforce_timeout))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::record))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// Bounds the time to the response head; a streaming body (SSE) is not cut by it.
async fn enforce_timeout(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            ApiError::Unavailable(format!("the request took longer than {} s", timeout.as_secs())).into_response()
        }
    }
}

/// Serves until `shutdown`, then finishes in-flight requests.
pub async fn serve(state: AppState, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(state.config.http_addr).await?;
    serve_on(listener, state, shutdown).await
}

pub async fn serve_on(
    listener: tokio::net::TcpListener,
    mut state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    state.shutdown = shutdown.clone();
    tracing::info!(%addr, "gateway listening");
    // Small JSON answers: Nagle's delay would dominate their latency.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(addr)
}
