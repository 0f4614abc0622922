//! `GET /projects/{id}/timeline`: a project's store over its jobs (memories by state before and
//! after each, durations) and its failures grouped by cause; the console draws its charts from it.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ErrorBody, Result},
    extract::{Path, Query},
    page,
};
use crate::{
    domain::{JobState, MemoryCounts, TriggerType},
    store::{
        jobs::{self, FailedJob, TimelineRow},
        projects,
    },
};

const DEFAULT_POINTS: u32 = 200;
const MAX_POINTS: u32 = 500;
/// The failed jobs grouped: the newest this many.
const MAX_FAILURES_READ: i64 = 1000;
/// A cause is its message's first clause, cut to this many characters.
const MAX_CAUSE_CHARS: usize = 120;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// The last this many jobs, 1 to 500 (default 200).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelinePoint {
    pub job_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: JobState,
    pub trigger_type: TriggerType,
    pub dry_run: bool,
    /// From start to end; null until it has both.
    pub duration_ms: Option<i64>,
    /// The project's memories when the job started (null before it started, or for a job of a
    /// version that did not record them).
    pub before: Option<MemoryCounts>,
    /// When it completed (null unless completed).
    pub after: Option<MemoryCounts>,
}

impl From<TimelineRow> for TimelinePoint {
    fn from(row: TimelineRow) -> Self {
        let duration_ms = match (row.started_at, row.completed_at) {
            (Some(start), Some(end)) => Some((end - start).num_milliseconds()),
            _ => None,
        };
        Self {
            job_id: row.id,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.completed_at,
            status: JobState::of(row.status, row.rolled_back_at.is_some()),
            trigger_type: row.trigger_type,
            dry_run: row.dry_run,
            duration_ms,
            before: row.counts_before.map(|counts| counts.0),
            after: row.counts_after.map(|counts| counts.0),
        }
    }
}

/// Failed jobs of one cause.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FailureGroup {
    /// The failure's kind: the guard that stopped it, or its message's first clause with ids,
    /// numbers and times left out.
    pub cause: String,
    pub count: usize,
    pub last_job_id: Uuid,
    pub last_at: DateTime<Utc>,
    /// The newest job's whole message.
    pub example: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Timeline {
    pub project_id: Uuid,
    pub current: MemoryCounts,
    /// Oldest first.
    pub points: Vec<TimelinePoint>,
    /// The most frequent cause first.
    pub failures: Vec<FailureGroup>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(timeline))
}

/// A project's memories by state across its last jobs, their durations, and its failed jobs
/// grouped by cause.
#[utoipa::path(get, path = "/projects/{id}/timeline", tag = "operations",
    params(("id" = Uuid, Path), TimelineQuery),
    responses(
        (status = 200, body = Timeline),
        (status = 400, description = "Malformed id or limit", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn timeline(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Query(query): Query<TimelineQuery>,
) -> Result<axum::Json<Timeline>> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let limit = page::limit(query.limit, DEFAULT_POINTS, MAX_POINTS)?;
    super::projects::existing(&state, project_id).await?;
    let current = projects::memory_counts(&state.db, project_id).await?;
    let points = jobs::timeline(&state.db, project_id, limit).await?.into_iter().map(TimelinePoint::from).collect();
    let failures = group_failures(jobs::failed(&state.db, project_id, MAX_FAILURES_READ).await?);
    Ok(axum::Json(Timeline { project_id, current, points, failures }))
}

/// Groups failed jobs (oldest first) by cause, the most frequent first, then the most recent.
fn group_failures(failed: Vec<FailedJob>) -> Vec<FailureGroup> {
    let mut groups: BTreeMap<String, FailureGroup> = BTreeMap::new();
    for job in failed {
        let message = job.error_message.unwrap_or_default();
        let cause = job.blocked_by.unwrap_or_else(|| cause_of(&message));
        let group = groups.entry(cause.clone()).or_insert_with(|| FailureGroup {
            cause,
            count: 0,
            last_job_id: job.id,
            last_at: job.at,
            example: String::new(),
        });
        group.count += 1;
        (group.last_job_id, group.last_at, group.example) = (job.id, job.at, message);
    }
    let mut groups: Vec<FailureGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at.cmp(&a.last_at)));
    groups
}

/// A message's first clause (up to the first `: `), each word holding a digit replaced by `#`:
/// "claimed 3 times and no run finished: each ended..." and "claimed 5 times..." are one cause.
fn cause_of(message: &str) -> String {
    let clause = message.split(": ").next().unwrap_or_default();
    let words: Vec<&str> = clause
        .split_whitespace()
        .map(|word| if word.chars().any(|c| c.is_ascii_digit()) { "#" } else { word })
        .collect();
    let cause: String = words.join(" ").chars().take(MAX_CAUSE_CHARS).collect();
    if cause.is_empty() { "unknown".to_owned() } else { cause }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_the_first_clause_without_its_ids_and_numbers() {
        assert_eq!(
            cause_of("claimed 3 times and no run finished: each ended with its worker gone"),
            "claimed # times and no run finished"
        );
        assert_eq!(
            cause_of("consolidation is disabled for project 0b6c2d3e-1111-4222-8333-944455556666"),
            "consolidation is disabled for project #"
        );
        assert_eq!(cause_of(""), "unknown");
    }

    #[test]
    fn failures_group_by_cause_most_frequent_first_with_the_newest_example() {
        let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap_or_default();
        let job = |n: u128, s: i64, message: &str, blocked: Option<&str>| FailedJob {
            id: Uuid::from_u128(n),
            at: at(s),
            error_message: Some(message.to_owned()),
            blocked_by: blocked.map(str::to_owned),
        };
        let groups = group_failures(vec![
            job(1, 1, "claimed 2 times and no run finished: x", None),
            job(2, 2, "changes 40% of the store: over 10%", Some("max_changed_share")),
            job(3, 3, "claimed 4 times and no run finished: y", None),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].cause.as_str(), groups[0].count), ("claimed # times and no run finished", 2));
        assert_eq!(groups[0].last_job_id, Uuid::from_u128(3));
        assert_eq!(groups[0].example, "claimed 4 times and no run finished: y");
        assert_eq!((groups[1].cause.as_str(), groups[1].count), ("max_changed_share", 1));
    }
}
