//! Before a job plans, it embeds a bounded batch of the project's memories that were stored
//! without an embedding (sent without `context_embedding` while no endpoint was configured), so
//! that they join clustering once EMBEDDING_BASE_URL is set. A failure costs the job nothing but
//! a warning: the memories stay as they were and the next job tries again.

use uuid::Uuid;

use super::{Worker, failure::Failure};
use crate::{domain::ModelUsage, store::unembedded};

/// Memories embedded per job at most: the rest wait for the next one.
pub const BACKLOG_PER_JOB: i64 = 1_000;

/// What the backlog step did.
#[derive(Debug, Default)]
pub struct Backlog {
    pub embedded: u64,
    pub usage: ModelUsage,
    pub warning: Option<String>,
}

#[tracing::instrument(skip_all, fields(project_id = %project_id))]
pub async fn embed(worker: &Worker, project_id: Uuid, dim: Option<i32>) -> Result<Backlog, Failure> {
    let Some(embedder) = &worker.text_embedder else { return Ok(Backlog::default()) };
    let backlog = unembedded::backlog(&worker.db, project_id, BACKLOG_PER_JOB).await?;
    if backlog.is_empty() {
        return Ok(Backlog::default());
    }
    let (ids, texts): (Vec<Uuid>, Vec<String>) = backlog.into_iter().unzip();
    let dim = dim.and_then(|dim| usize::try_from(dim).ok());
    let (vectors, usage) = match embedder.embed(&texts, dim).await {
        Ok(embedded) => embedded,
        Err(error) => {
            tracing::warn!(%error, memories = ids.len(), "memories without an embedding were not embedded");
            let warning = format!(
                "{} memories without an embedding were not embedded ({error}); they are not clustered, and the next \
                 job tries again",
                ids.len()
            );
            return Ok(Backlog { warning: Some(warning), ..Backlog::default() });
        }
    };
    let pairs: Vec<(Uuid, Vec<f32>)> = ids.into_iter().zip(vectors).collect();
    let mut tx = worker.db.begin().await?;
    let (in_force, embedded) = unembedded::set_embeddings(&mut tx, project_id, &pairs).await?;
    tx.commit().await?;
    let warning = (embedded == 0 && !pairs.is_empty()).then(|| {
        format!(
            "{} memories without an embedding were not embedded: the endpoint's embeddings do not have the \
             project's {in_force:?} dimensions (EMBEDDING_MODEL)",
            pairs.len()
        )
    });
    tracing::info!(embedded, "memories without an embedding embedded");
    Ok(Backlog { embedded, usage, warning })
}
