//! Later jobs that built on what an earlier job left and still stand.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::Result;

/// A completed, not rolled-back job of the project.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LaterJob {
    pub id: Uuid,
    pub completed_at: DateTime<Utc>,
    /// The given memories it changed, or built a memory from.
    pub touched: Vec<Uuid>,
}

/// Standing jobs, completed after `after` and other than `excluded`, that changed one of
/// `memory_ids`, built a consolidated memory or a synthesis from one, or superseded a memory in
/// favour of one; newest first.
pub async fn standing_later_jobs(
    conn: &mut PgConnection,
    project_id: Uuid,
    excluded: &[Uuid],
    after: DateTime<Utc>,
    memory_ids: &[Uuid],
) -> Result<Vec<LaterJob>> {
    let ids_text: Vec<String> = memory_ids.iter().map(Uuid::to_string).collect();
    Ok(sqlx::query_as(
        "SELECT j.id, j.completed_at,
                array_agg(DISTINCT t.memory_id) AS touched
           FROM consolidation_jobs j
           JOIN consolidation_changes c ON c.job_id = j.id
           CROSS JOIN LATERAL (
                SELECT c.memory_id WHERE c.memory_id = ANY($4)
                UNION
                SELECT e::uuid FROM jsonb_array_elements_text(
                           COALESCE(c.new_state -> 'consolidated_from', '[]') ||
                           COALESCE(c.new_state -> 'synthesized_from', '[]')) AS e
                 WHERE c.previous_state IS NULL AND e = ANY($5)
                UNION
                SELECT (c.new_state ->> 'superseded_by')::uuid
                 WHERE c.operation = 'archive' AND c.new_state ->> 'superseded_by' = ANY($5)
           ) AS t(memory_id)
          WHERE j.project_id = $1 AND j.status = 'completed' AND j.rolled_back_at IS NULL
            AND j.id <> ALL($2) AND j.completed_at > $3
            AND c.operation IN ('merge', 'summarize', 'archive', 'promote')
          GROUP BY j.id, j.completed_at
          ORDER BY j.completed_at DESC, j.id DESC",
    )
    .bind(project_id)
    .bind(excluded)
    .bind(after)
    .bind(memory_ids)
    .bind(&ids_text)
    .fetch_all(&mut *conn)
    .await?)
}
