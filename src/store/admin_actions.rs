//! The administrators' actions (`admin_actions`): who did what, to which project and target,
//! when. Written in the transaction of the action itself where the action is a database write.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use super::Result;
use crate::domain::AdminAction;

/// One action about to be recorded.
#[derive(Debug, Clone)]
pub struct NewAdminAction<'a> {
    /// The token's subject.
    pub actor: &'a str,
    pub action: AdminAction,
    pub project_id: Option<Uuid>,
    /// The job, review, memory or rollback acted on.
    pub target_id: Option<Uuid>,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AdminActionRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    #[sqlx(try_from = "String")]
    pub action: AdminAction,
    pub project_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub details: Json<serde_json::Value>,
}

/// Records an action; returns its id.
pub async fn record(db: impl PgExecutor<'_>, action: &NewAdminAction<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO admin_actions (actor, action, project_id, target_id, details)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(action.actor)
    .bind(action.action.as_str())
    .bind(action.project_id)
    .bind(action.target_id)
    .bind(Json(&action.details))
    .fetch_one(db)
    .await?)
}

/// Deletes the actions older than `cutoff` (the audit retention); returns how many went.
pub async fn delete_older_than(db: impl PgExecutor<'_>, cutoff: DateTime<Utc>) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM admin_actions WHERE at < $1").bind(cutoff).execute(db).await?.rows_affected())
}

#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    /// The projects the reader may see: None for all.
    pub scope: Option<Vec<Uuid>>,
    pub project_id: Option<Uuid>,
    pub action: Option<AdminAction>,
    /// Cursor: the id of the previous page's last row.
    pub before: Option<i64>,
    pub limit: i64,
}

/// A page of actions, newest first. A scoped reader sees only actions on its projects.
pub async fn list(db: impl PgExecutor<'_>, filter: &ActionFilter) -> Result<Vec<AdminActionRow>> {
    Ok(sqlx::query_as(
        "SELECT id, at, actor, action, project_id, target_id, details FROM admin_actions
          WHERE ($1::uuid[] IS NULL OR project_id = ANY($1)) AND ($2::uuid IS NULL OR project_id = $2)
            AND ($3::text IS NULL OR action = $3) AND ($4::bigint IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5",
    )
    .bind(filter.scope.as_deref())
    .bind(filter.project_id)
    .bind(filter.action.map(AdminAction::as_str))
    .bind(filter.before)
    .bind(filter.limit)
    .fetch_all(db)
    .await?)
}
