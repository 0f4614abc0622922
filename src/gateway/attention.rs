//! `GET /attention`: the projects an operator should look at, and why (the console's landing page).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, Result},
};
use crate::{
    domain::{JobState, JobStatus},
    store::projects::{self, AttentionRow},
};

/// Why a project needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Reviews wait for a decision.
    OpenReviews,
    /// A job failed in the last seven days.
    FailedJobs,
    /// More active memories than the threshold (the sweep consolidates it when enabled).
    OverThreshold,
    /// Consolidation is disabled (paused).
    Disabled,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttentionItem {
    pub project_id: Uuid,
    pub name: String,
    pub enabled: bool,
    /// Active memories.
    pub active: i64,
    pub threshold: i32,
    pub open_reviews: i64,
    pub failed_jobs_7d: i64,
    /// Null when the project has had no job.
    pub last_job_status: Option<JobState>,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Attention {
    /// Projects with at least one reason, most reasons first.
    pub projects: Vec<AttentionItem>,
}

impl AttentionItem {
    fn of(row: AttentionRow) -> Result<Self> {
        let last_job_status = row
            .last_job_status
            .as_deref()
            .map(|status| status.parse::<JobStatus>())
            .transpose()
            .map_err(|error| ApiError::Internal(error.into()))?
            .map(|status| JobState::of(status, row.last_job_rolled_back_at.is_some()));
        let reasons = [
            (row.open_reviews > 0, Reason::OpenReviews),
            (row.failed_jobs_7d > 0, Reason::FailedJobs),
            (row.active > i64::from(row.consolidation_threshold), Reason::OverThreshold),
            (!row.consolidation_enabled, Reason::Disabled),
        ];
        Ok(Self {
            project_id: row.id,
            name: row.name,
            enabled: row.consolidation_enabled,
            active: row.active,
            threshold: row.consolidation_threshold,
            open_reviews: row.open_reviews,
            failed_jobs_7d: row.failed_jobs_7d,
            last_job_status,
            reasons: reasons.into_iter().filter(|(holds, _)| *holds).map(|(_, reason)| reason).collect(),
        })
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(attention))
}

/// The projects the token covers that need attention: open reviews, jobs failed in the last
/// seven days, more active memories than the threshold, consolidation disabled.
#[utoipa::path(get, path = "/attention", tag = "operations",
    responses((status = 200, body = Attention)))]
#[tracing::instrument(skip_all)]
pub async fn attention(admin: Admin, State(state): State<AppState>) -> Result<axum::Json<Attention>> {
    let scope = admin.project_scope();
    let rows = projects::attention(&state.db, scope.as_deref()).await?;
    let mut items = rows.into_iter().map(AttentionItem::of).collect::<Result<Vec<_>>>()?;
    items.retain(|item| !item.reasons.is_empty());
    // Stable: among equals, project id order.
    items.sort_by_key(|item| std::cmp::Reverse(item.reasons.len()));
    Ok(axum::Json(Attention { projects: items }))
}
