//! `POST /memories/{id}/archive`, `/unarchive`, `/pin`, `/unpin`, `/reuse` and `/unmerge`: manual
//! changes, each one audited
//! (job_id NULL), so a later rollback of a job that touched the memory sees the conflict (a reuse
//! is usage, never a conflict).

use axum::extract::State;
use serde::Deserialize;
use tracing::Span;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::{OptionalJson, Path},
    views::MemoryView,
};
use crate::bus::messages::UnmergeEvent;
use crate::domain::{AdminAction, ArchiveReason, ChangeOperation, StoredMemory};
use crate::store::{
    admin_actions::{self, NewAdminAction},
    changes::{self, NewChange},
    memories,
    undo::unmerge::{Refusal, Request},
};
use crate::unmerge::UnmergeError;

const MAX_REASON_CHARS: usize = 2000;

/// An optional body for the three actions.
#[derive(Debug, Default, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// Kept in the audit row (at most 2000 characters).
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

/// What a hand does to one memory (the routes below, and the MCP tools forget, restore, reuse).
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Archive,
    Unarchive,
    Reuse,
    Pin,
    Unpin,
}

impl Action {
    fn operation(self) -> ChangeOperation {
        match self {
            Self::Archive => ChangeOperation::Archive,
            Self::Unarchive => ChangeOperation::Unarchive,
            Self::Reuse => ChangeOperation::Reuse,
            Self::Pin | Self::Unpin => ChangeOperation::Pin,
        }
    }

    fn default_reason(self) -> &'static str {
        match self {
            Self::Archive => "archived by an administrator",
            Self::Unarchive => "restored by an administrator",
            Self::Reuse => "reuse counted",
            Self::Pin => "pinned by an administrator",
            Self::Unpin => "unpinned by an administrator",
        }
    }

    /// The audited fields before and after, from the rows before and after the change.
    fn states(self, after: &StoredMemory, before: &StoredMemory) -> (serde_json::Value, serde_json::Value) {
        let version_before = before.version;
        match self {
            Self::Archive => (
                serde_json::json!({"version": version_before, "is_archived": false}),
                serde_json::json!({"version": after.version, "is_archived": true, "archive_reason": ArchiveReason::Manual,
                                   "archived_at": after.archived_at}),
            ),
            Self::Unarchive => (
                serde_json::json!({"version": version_before, "is_archived": true, "archive_reason": before.archive_reason,
                                   "archived_at": before.archived_at}),
                serde_json::json!({"version": after.version, "is_archived": false}),
            ),
            Self::Reuse => (
                serde_json::json!({"reused_count": before.reused_count, "last_reused_at": before.last_reused_at}),
                serde_json::json!({"reused_count": after.reused_count, "last_reused_at": after.last_reused_at}),
            ),
            Self::Pin | Self::Unpin => (
                serde_json::json!({"version": version_before, "pinned": before.pinned}),
                serde_json::json!({"version": after.version, "pinned": after.pinned}),
            ),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(archive))
        .routes(routes!(unarchive))
        .routes(routes!(reuse))
        .routes(routes!(pin))
        .routes(routes!(unpin))
        .routes(routes!(unmerge))
}

/// Takes one consolidated memory apart (DESIGN.md §6).
///
/// Its sources are active again, it is retired (kept, reason `unmerged`, audited), the
/// syntheses and playbook entries that came from it are undone, and its member set is kept apart:
/// the next job does not merge it again while the texts stay as they are. Works on a memory
/// written by any job inside the rollback window; a reuse since is no obstacle.
#[utoipa::path(post, path = "/memories/{id}/unmerge", tag = "memories",
    params(("id" = Uuid, Path)), request_body(content = Option<ActionRequest>, description = "Optional"),
    responses(
        (status = 200, description = "What the unmerge restored and retired", body = UnmergeEvent),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such memory", body = ErrorBody),
        (status = 409, description = "Not an active consolidated memory, or written outside the rollback window",
            body = ErrorBody),
        (status = 410, description = "Its job's audit rows are gone (purged, or imported)", body = ErrorBody),
        (status = 422, description = "An invalid reason (too long, or holding a NUL character)", body = ErrorBody),
        (status = 503, description = "Database or NATS unavailable", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn unmerge(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<axum::Json<UnmergeEvent>> {
    let reason = body.and_then(|body| body.reason);
    if reason.as_ref().is_some_and(|reason| reason.chars().count() > MAX_REASON_CHARS) {
        return Err(ApiError::Unprocessable(format!("reason: at most {MAX_REASON_CHARS} characters")));
    }
    let not_found = || ApiError::NotFound(format!("memory {id} does not exist"));
    let project_id = memories::project_of(&state.db, id).await?.filter(|project| admin.may_see(*project));
    let project_id = project_id.ok_or_else(not_found)?;
    Span::current().record("project_id", tracing::field::display(project_id));
    let request = Request {
        project_id,
        memory_id: id,
        requested_by: admin.subject(),
        reason: reason.as_deref(),
        window_days: state.retention.rollback_window_days,
    };
    match crate::unmerge::run(&state.db, &state.bus, &request).await {
        Ok(Ok(event)) => Ok(axum::Json(event)),
        Ok(Err(Refusal::NotFound(message))) => Err(ApiError::NotFound(message)),
        Ok(Err(Refusal::Conflict(message))) => Err(ApiError::Conflict(message)),
        Ok(Err(Refusal::Gone(message))) => Err(ApiError::Gone(message)),
        Err(UnmergeError::Store(error)) => Err(error.into()),
        // Committed; only the event is missing. The store holds the result.
        Err(UnmergeError::Bus(error)) => {
            Err(ApiError::Unavailable(format!("memory {id} was unmerged, but its event was not published: {error}")))
        }
    }
}

/// Archives a memory (reason `manual`).
#[utoipa::path(post, path = "/memories/{id}/archive", tag = "memories",
    params(("id" = Uuid, Path)), request_body(content = Option<ActionRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The memory after the change", body = MemoryView),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such memory", body = ErrorBody),
        (status = 409, description = "Archived already", body = ErrorBody),
        (status = 422, description = "An invalid reason (too long, or holding a NUL character)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn archive(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<axum::Json<MemoryView>> {
    act(&state, &admin, id, Action::Archive, body).await.map(axum::Json)
}

/// Restores an archived memory.
#[utoipa::path(post, path = "/memories/{id}/unarchive", tag = "memories",
    params(("id" = Uuid, Path)), request_body(content = Option<ActionRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The memory after the change", body = MemoryView),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such memory", body = ErrorBody),
        (status = 409, description = "Not archived, or retired by a rollback or an unmerge", body = ErrorBody),
        (status = 422, description = "An invalid reason (too long, or holding a NUL character)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn unarchive(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<axum::Json<MemoryView>> {
    act(&state, &admin, id, Action::Unarchive, body).await.map(axum::Json)
}

/// Counts one reuse of a memory.
///
/// Usage is not an edit: the version stays, so a reuse never blocks a rollback, an unmerge or a
/// review. A memory merged into a consolidated memory counts its reuse there (the answer is that
/// memory), so no reuse is lost to a merge.
#[utoipa::path(post, path = "/memories/{id}/reuse", tag = "memories",
    params(("id" = Uuid, Path)), request_body(content = Option<ActionRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The memory that counted the reuse, after the change", body = MemoryView),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such memory", body = ErrorBody),
        (status = 409, description = "Retired by a rollback or an unmerge", body = ErrorBody),
        (status = 422, description = "An invalid reason (too long, or holding a NUL character)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn reuse(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<axum::Json<MemoryView>> {
    act(&state, &admin, id, Action::Reuse, body).await.map(axum::Json)
}

/// Pins a memory: no job merges, archives or supersedes it until it is unpinned.
#[utoipa::path(post, path = "/memories/{id}/pin", tag = "memories",
    params(("id" = Uuid, Path)), request_body(content = Option<ActionRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The memory after the change", body = MemoryView),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such memory", body = ErrorBody),
        (status = 409, description = "Pinned already, archived, or merged into another memory", body = ErrorBody),
        (status = 422, description = "An invalid reason (too long, or holding a NUL character)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn pin(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<axum::Json<MemoryView>> {
    act(&state, &admin, id, Action::Pin, body).await.map(axum::Json)
}

/// Unpins a memory: jobs treat it like any other again.
#[utoipa::path(post, path = "/memories/{id}/unpin", tag = "memories",
    params(("id" = Uuid, Path)), request_body(content = Option<ActionRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The memory after the change", body = MemoryView),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such memory", body = ErrorBody),
        (status = 409, description = "Not pinned", body = ErrorBody),
        (status = 422, description = "An invalid reason (too long, or holding a NUL character)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn unpin(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<axum::Json<MemoryView>> {
    act(&state, &admin, id, Action::Unpin, body).await.map(axum::Json)
}

/// Applies `action` to memory `id` for a token that covers its project (another project's memory
/// is answered as unknown), with its audit row.
pub async fn act(
    state: &AppState,
    admin: &Admin,
    id: Uuid,
    action: Action,
    body: Option<ActionRequest>,
) -> Result<MemoryView> {
    let reason = body.and_then(|body| body.reason).unwrap_or_else(|| action.default_reason().to_owned());
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::Unprocessable(format!("reason: at most {MAX_REASON_CHARS} characters")));
    }
    let not_found = || ApiError::NotFound(format!("memory {id} does not exist"));
    // Scope first, without a lock: a token must not be able to lock (or learn of) another
    // project's memory. A memory never changes project, so the check holds under the lock.
    let project_id = memories::project_of(&state.db, id).await?.filter(|project| admin.may_see(*project));
    let project_id = project_id.ok_or_else(not_found)?;
    Span::current().record("project_id", tracing::field::display(project_id));
    let mut tx = state.db.begin().await?;
    // Locked before it is read, so the audit row's previous state is the one this change replaced.
    let id = match action {
        Action::Reuse => memories::reuse_holder(&mut tx, id).await?.ok_or_else(not_found)?,
        Action::Archive | Action::Unarchive | Action::Pin | Action::Unpin => id,
    };
    memories::lock_versions(&mut tx, &[id]).await?;
    let before = memories::get(&mut *tx, id).await?.ok_or_else(not_found)?;
    if let (Action::Unarchive | Action::Reuse, Some(reason)) =
        (action, before.archive_reason.filter(|r| r.is_retirement()))
    {
        return Err(ApiError::Conflict(format!(
            "memory {id} was retired ({reason}): its sources are the live memories now; a retirement is not \
             undone by hand"
        )));
    }

    if matches!(action, Action::Pin) && (before.is_archived || before.is_duplicate) {
        let state = if before.is_archived { "archived" } else { "merged into another memory" };
        return Err(ApiError::Conflict(format!("memory {id} is {state}: only an active memory can be pinned")));
    }
    let changed = match action {
        Action::Archive => memories::archive(&mut tx, &[id], ArchiveReason::Manual).await?,
        Action::Unarchive => memories::unarchive(&mut tx, &[id]).await?,
        Action::Reuse => u64::from(memories::record_reuse(&mut *tx, id).await?),
        Action::Pin => memories::set_pinned(&mut tx, &[id], true).await?,
        Action::Unpin => memories::set_pinned(&mut tx, &[id], false).await?,
    };
    if changed == 0 {
        return Err(match action {
            Action::Archive => ApiError::Conflict(format!("memory {id} is archived already")),
            Action::Unarchive => ApiError::Conflict(format!("memory {id} is not archived")),
            Action::Reuse => not_found(),
            Action::Pin => ApiError::Conflict(format!("memory {id} is pinned already")),
            Action::Unpin => ApiError::Conflict(format!("memory {id} is not pinned")),
        });
    }
    let after = memories::get(&mut *tx, id).await?.ok_or_else(not_found)?;
    let (previous_state, new_state) = action.states(&after, &before);
    let change = NewChange {
        operation: action.operation(),
        memory_id: id,
        previous_state: Some(previous_state),
        new_state: Some(new_state),
        reason,
        confidence: None,
    };
    changes::insert_batch(&mut tx, None, after.project_id, admin.subject(), std::slice::from_ref(&change)).await?;
    let by_hand = match action {
        Action::Archive => Some(AdminAction::MemoryArchived),
        Action::Unarchive => Some(AdminAction::MemoryUnarchived),
        Action::Pin => Some(AdminAction::MemoryPinned),
        Action::Unpin => Some(AdminAction::MemoryUnpinned),
        // An agent's use of the memory, not an administrator's decision.
        Action::Reuse => None,
    };
    if let Some(by_hand) = by_hand {
        let record = NewAdminAction {
            actor: admin.subject(),
            action: by_hand,
            project_id: Some(after.project_id),
            target_id: Some(id),
            details: serde_json::json!({"reason": change.reason}),
        };
        admin_actions::record(&mut *tx, &record).await?;
    }
    tx.commit().await?;
    tracing::info!(operation = action.operation().as_str(), "memory changed by hand");
    Ok(MemoryView::new(after, false))
}
