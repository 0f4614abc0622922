//! The tools' inputs: the HTTP API's own request types, with the id the route's path carries.

use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use crate::gateway::memory_actions::ActionRequest;

/// A request about one project: `project_id` beside the fields of the HTTP request body.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InProject<T> {
    /// The project (the token must cover it).
    pub project_id: Uuid,
    #[serde(flatten)]
    pub request: T,
}

/// An action on one memory, with the optional reason kept in its audit row.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MemoryAction {
    pub memory_id: Uuid,
    #[serde(flatten)]
    pub action: ActionRequest,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    /// The id a consolidate call answered.
    pub job_id: Uuid,
}

/// How a review is settled: `POST /reviews/{id}/approve` or `/reject`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The older memory is superseded by the newer one (archived, reversible with restore).
    Approve,
    /// The memories stay apart, and the pair is not proposed again.
    Reject,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    pub review_id: Uuid,
    pub decision: Decision,
}
