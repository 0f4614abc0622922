//! `/mcp`: the Model Context Protocol endpoint for agents (streamable HTTP, stateless, JSON
//! answers), under the same bearer JWT and project scope as the API. Its tools call the same
//! functions as the HTTP routes, and their input schemas derive from the same request types.

mod params;
mod tools;

use axum::{
    Router,
    extract::{FromRequestParts, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

use super::{AppState, auth::Admin};
pub use params::{Decision, InProject, JobRef, MemoryAction, ReviewDecision};
pub use tools::Tools;

/// Where the endpoint is served.
pub const PATH: &str = "/mcp";

/// The endpoint, each request authenticated before the MCP service sees it.
pub fn router(state: &AppState) -> Router<AppState> {
    let tools_state = state.clone();
    let config = StreamableHttpServerConfig::default()
        // Stateless: any gateway replica answers any request, and no session outlives a request.
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // Every request carries a bearer token, which a DNS-rebinding page cannot; the gateway is
        // reached under whatever name its deployment gives it.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(state.config.body_limit_bytes)
        .with_cancellation_token(state.shutdown.child_token());
    let service = StreamableHttpService::new(
        move || Ok(Tools::new(tools_state.clone())),
        LocalSessionManager::default().into(),
        config,
    );
    Router::new().nest_service(PATH, service).layer(middleware::from_fn_with_state(state.clone(), authenticate))
}

/// 401 or 403 with the API's JSON body, as any route; else the caller's [`Admin`] travels in the
/// request's extensions to the tools.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match Admin::from_request_parts(&mut parts, &state).await {
        Ok(admin) => {
            parts.extensions.insert(admin);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}
