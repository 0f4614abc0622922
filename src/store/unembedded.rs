//! Memories stored without an embedding (sent without `context_embedding` while no embeddings
//! endpoint was configured), and the embeddings a job gives them later.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{Result, embedding, projects};

/// Up to `limit` active memories of the project without an embedding: id and the text to embed.
pub async fn backlog(db: impl PgExecutor<'_>, project_id: Uuid, limit: i64) -> Result<Vec<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, execution_summary FROM task_memories
          WHERE project_id = $1 AND context_embedding IS NULL AND NOT is_archived AND NOT is_duplicate
          ORDER BY id LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Stores the embeddings of memories that still have none (one a concurrent writer gave meanwhile
/// is kept), fixing the project's dimension on first use. Returns the dimension in force and the
/// memories updated; nothing is written when the dimension in force differs.
pub async fn set_embeddings(
    conn: &mut PgConnection,
    project_id: Uuid,
    embeddings: &[(Uuid, Vec<f32>)],
) -> Result<(Option<i32>, u64)> {
    let Some(dim) = embeddings.first().map(|(_, vector)| vector.len()) else { return Ok((None, 0)) };
    let wanted = i32::try_from(dim).unwrap_or(i32::MAX);
    let in_force = projects::fix_embedding_dim(&mut *conn, project_id, wanted).await?;
    if in_force != Some(wanted) {
        return Ok((in_force, 0));
    }
    let ids: Vec<Uuid> = embeddings.iter().map(|(id, _)| *id).collect();
    let bytes: Vec<Vec<u8>> = embeddings.iter().map(|(_, vector)| embedding::encode(vector)).collect();
    let updated = sqlx::query(
        "UPDATE task_memories m SET context_embedding = u.embedding
           FROM UNNEST($2::uuid[], $3::bytea[]) AS u(id, embedding)
          WHERE m.id = u.id AND m.project_id = $1 AND m.context_embedding IS NULL",
    )
    .bind(project_id)
    .bind(&ids)
    .bind(&bytes)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((in_force, updated))
}
