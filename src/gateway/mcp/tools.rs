//! The tools an agent calls. Each takes the caller's [`Admin`] (the middleware put it in the
//! request) and calls the function the matching HTTP route calls; an API error comes back as a
//! tool error whose text is the API's JSON error body.

use axum::http::request::Parts;
use rmcp::{
    ErrorData, ServerHandler,
    handler::server::{
        tool::{Extension, ToolRouter},
        wrapper::Parameters,
    },
    model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
};
use serde::Serialize;
use tracing::{Instrument, Span, field::Empty};

use super::params::{Decision, InProject, JobRef, MemoryAction, ReviewDecision};
use crate::{
    domain::ReviewStatus,
    gateway::{
        AppState,
        auth::Admin,
        error::ApiError,
        memories,
        memory_actions::{self, Action},
        reviews::{self, ReviewQuery},
        rollback::{self, RollbackRequest, RollbackView},
        search::{self, SearchRequest},
        status::authorized_job,
        trigger::{self, TriggerRequest},
        views::JobView,
    },
    interchange::MemoryInput,
};

const INSTRUCTIONS: &str = "Task memories of AI agents, per project: remember what you did and learned, recall \
what is relevant (by text or embedding), forget what is wrong (reversible with restore), count a reuse when a \
memory helped, and consolidate a project (a dry run unless dry_run is false), read the job's result, roll it \
back, and settle the reviews it opened. Every tool is limited to the projects your token covers.";

#[derive(Clone)]
pub struct Tools {
    state: AppState,
    tool_router: ToolRouter<Self>,
}

impl Tools {
    pub fn new(state: AppState) -> Tools {
        Tools { state, tool_router: Self::tool_router() }
    }
}

/// The caller, as the middleware authenticated it.
fn admin(parts: &Parts) -> Result<Admin, ErrorData> {
    parts
        .extensions
        .get::<Admin>()
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the request was not authenticated", None))
}

/// The tool's span: the shared functions record the project and job on it, as on a route's.
fn span(tool: &'static str) -> Span {
    tracing::info_span!("mcp_tool", tool, project_id = Empty, job_id = Empty)
}

/// An answer as structured content, an API error as a tool error carrying the API's error body.
fn answer<T: Serialize>(result: Result<T, ApiError>) -> Result<CallToolResult, ErrorData> {
    match result {
        Ok(value) => serde_json::to_value(value)
            .map(CallToolResult::structured)
            .map_err(|error| ErrorData::internal_error(format!("unserializable answer: {error}"), None)),
        Err(error) => {
            if let ApiError::Internal(cause) = &error {
                tracing::error!(error = ?cause, "tool failed");
            }
            let body = serde_json::json!({"error": error.code(), "message": error.to_string()});
            Ok(CallToolResult::structured_error(body))
        }
    }
}

#[tool_router]
impl Tools {
    #[tool(description = "Store one task memory in a project. context_embedding is optional: without it the \
                          service embeds execution_summary (when EMBEDDING_BASE_URL is set; otherwise the memory \
                          is stored unembedded and the answer warns).")]
    async fn remember(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(input): Parameters<InProject<MemoryInput>>,
    ) -> Result<CallToolResult, ErrorData> {
        let admin = admin(&parts)?;
        let span = span("remember");
        span.record("project_id", tracing::field::display(input.project_id));
        let stored = async {
            admin.ensure_project(input.project_id)?;
            memories::store(&self.state, input.project_id, vec![input.request]).await
        };
        answer(stored.instrument(span).await)
    }

    #[tool(description = "The project's memories nearest to a query text (embedded by the service; needs \
                          EMBEDDING_BASE_URL) or to an embedding, most similar first. Forgotten (archived) \
                          memories are hidden unless include_archived is true.")]
    async fn recall(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(input): Parameters<InProject<SearchRequest>>,
    ) -> Result<CallToolResult, ErrorData> {
        let admin = admin(&parts)?;
        let span = span("recall");
        span.record("project_id", tracing::field::display(input.project_id));
        let found = async {
            admin.ensure_project(input.project_id)?;
            search::run(&self.state, admin.subject(), input.project_id, input.request).await
        };
        answer(found.instrument(span).await)
    }

    #[tool(description = "Forget a memory: archive it (audited; undo with restore).")]
    async fn forget(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(input): Parameters<MemoryAction>,
    ) -> Result<CallToolResult, ErrorData> {
        self.act(&parts, "forget", input, Action::Archive).await
    }

    #[tool(description = "Restore a forgotten (archived) memory.")]
    async fn restore(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(input): Parameters<MemoryAction>,
    ) -> Result<CallToolResult, ErrorData> {
        self.act(&parts, "restore", input, Action::Unarchive).await
    }

    #[tool(description = "Count one reuse of a memory that helped (usage, not an edit; a merged memory counts \
                          it on what it was merged into).")]
    async fn reuse(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(input): Parameters<MemoryAction>,
    ) -> Result<CallToolResult, ErrorData> {
        self.act(&parts, "reuse", input, Action::Reuse).await
    }

    #[tool(description = "Start a consolidation job for a project: merge near-duplicates, write syntheses, \
                          archive and promote. A dry run (plan only, nothing changes) unless options.dry_run is \
                          false. Answers the job id; read its result with job_result.")]
    async fn consolidate(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(mut request): Parameters<TriggerRequest>,
    ) -> Result<CallToolResult, ErrorData> {
        let admin = admin(&parts)?;
        let options = request.options.get_or_insert_with(Default::default);
        if options.0.get("dry_run").is_none_or(serde_json::Value::is_null) {
            options.0.insert("dry_run".to_owned(), serde_json::Value::Bool(true));
        }
        let started = trigger::start(&self.state, &admin, request);
        answer(started.instrument(span("consolidate")).await)
    }

    #[tool(description = "A consolidation job's status, counters and result (its plan for a dry run).")]
    async fn job_result(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(input): Parameters<JobRef>,
    ) -> Result<CallToolResult, ErrorData> {
        let admin = admin(&parts)?;
        let job = async { authorized_job(&self.state, &admin, input.job_id).await.map(|job| JobView::new(job, true)) };
        answer(job.instrument(span("job_result")).await)
    }

    #[tool(description = "Roll a completed consolidation job back: what it merged, archived or created is undone \
                          (cascade: true rolls back the later jobs built on it first).")]
    async fn rollback(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(request): Parameters<RollbackRequest>,
    ) -> Result<CallToolResult, ErrorData> {
        let admin = admin(&parts)?;
        let undone = async {
            let (rollback, _earlier) = rollback::start(&self.state, &admin, request).await?;
            rollback::settled(rollback).map(RollbackView::from)
        };
        answer(undone.instrument(span("rollback")).await)
    }

    #[tool(description = "A project's review queue (pairs a job held for a decision), oldest first.")]
    async fn list_reviews(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(input): Parameters<InProject<ReviewQuery>>,
    ) -> Result<CallToolResult, ErrorData> {
        let admin = admin(&parts)?;
        let listed = reviews::list(&self.state, &admin, input.project_id, input.request);
        answer(listed.instrument(span("list_reviews")).await)
    }

    #[tool(description = "Settle an open review: approve (the older memory is superseded) or reject.")]
    async fn settle_review(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(input): Parameters<ReviewDecision>,
    ) -> Result<CallToolResult, ErrorData> {
        let admin = admin(&parts)?;
        let decision = match input.decision {
            Decision::Approve => ReviewStatus::Approved,
            Decision::Reject => ReviewStatus::Rejected,
        };
        let decided = reviews::decide(&self.state, &admin, input.review_id, decision);
        answer(decided.instrument(span("settle_review")).await)
    }
}

impl Tools {
    async fn act(
        &self,
        parts: &Parts,
        tool: &'static str,
        input: MemoryAction,
        action: Action,
    ) -> Result<CallToolResult, ErrorData> {
        let admin = admin(parts)?;
        let acted = memory_actions::act(&self.state, &admin, input.memory_id, action, Some(input.action));
        answer(acted.instrument(span(tool)).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("consolidator", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}
