//! Unmerging one consolidated memory (DESIGN.md §6), shared by the gateway
//! (`POST /memories/{id}/unmerge`) and the worker (`cmd.unmerge`): the store's transaction, then
//! the `unmerged` event.

use chrono::Utc;
use sqlx::PgPool;

use crate::{
    bus::{
        Bus, BusError,
        messages::{SCHEMA_VERSION, UnmergeEvent},
    },
    domain::AdminAction,
    store::{
        StoreError,
        admin_actions::{self, NewAdminAction},
        undo::unmerge::{self, Refusal, Request},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum UnmergeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<sqlx::Error> for UnmergeError {
    fn from(error: sqlx::Error) -> Self {
        UnmergeError::Store(StoreError::Database(error))
    }
}

/// Unmerges in one transaction, then announces it. A refusal changes nothing.
pub async fn run(db: &PgPool, bus: &Bus, request: &Request<'_>) -> Result<Result<UnmergeEvent, Refusal>, UnmergeError> {
    let mut tx = db.begin().await?;
    let unmerged = match unmerge::unmerge(&mut tx, request).await? {
        Ok(unmerged) => unmerged,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let action = NewAdminAction {
        actor: request.requested_by,
        action: AdminAction::Unmerge,
        project_id: Some(request.project_id),
        target_id: Some(unmerged.memory_id),
        details: serde_json::json!({
            "job_id": unmerged.job_id,
            "reason": request.reason,
            "restored": unmerged.restored,
            "retired": unmerged.retired,
        }),
    };
    admin_actions::record(&mut *tx, &action).await?;
    tx.commit().await?;
    tracing::info!(memory_id = %unmerged.memory_id, restored = unmerged.restored.len(), "memory unmerged");
    let event = UnmergeEvent {
        schema_version: SCHEMA_VERSION,
        project_id: request.project_id,
        memory_id: unmerged.memory_id,
        job_id: unmerged.job_id,
        restored: unmerged.restored,
        retired: unmerged.retired,
        kept_apart: unmerged.kept_apart,
        requested_by: request.requested_by.to_owned(),
        at: Utc::now(),
    };
    bus.unmerged_event(&event).await?;
    Ok(Ok(event))
}
