//! Dry runs' whole plans (`consolidation_plans`), kept for `POST /consolidation/jobs/{id}/apply`
//! for as long as a job can be rolled back.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::{Result, StoreError, embedding};
use crate::domain::Plan;

/// A plan (its JSON and vectors) larger than this is not kept: the dry run's result says so.
pub const MAX_PLAN_BYTES: usize = 256 << 20;

/// Why a plan was not kept.
pub const TOO_LARGE: &str = "the plan is larger than a stored plan may be (256 MiB); it cannot be applied as reviewed";

/// Stores a dry run's plan (its vectors apart, as f32 bytes) and drops the project's plans older
/// than the window; returns the bytes stored, or None when the plan is too large to keep.
pub async fn save(
    conn: &mut sqlx::PgConnection,
    job_id: Uuid,
    project_id: Uuid,
    mut plan: Plan,
    window_days: u32,
) -> Result<Option<u64>> {
    let vectors = take_vectors(&mut plan);
    let bytes =
        serde_json::to_vec(&plan).map_err(|error| StoreError::Corrupt(format!("plan of job {job_id}: {error}")))?;
    sqlx::query(
        "DELETE FROM consolidation_plans WHERE project_id = $1 AND created_at < now() - make_interval(days => $2)",
    )
    .bind(project_id)
    .bind(window_days as i32)
    .execute(&mut *conn)
    .await?;
    if bytes.len() + vectors.len() > MAX_PLAN_BYTES {
        return Ok(None);
    }
    sqlx::query("INSERT INTO consolidation_plans (job_id, project_id, plan, vectors) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(project_id)
        .bind(&bytes)
        .bind(&vectors)
        .execute(&mut *conn)
        .await?;
    Ok(Some((bytes.len() + vectors.len()) as u64))
}

/// A dry run's plan still inside the window, and the bytes it took.
pub async fn load(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    job_id: Uuid,
    window_days: u32,
) -> Result<Option<(Plan, u64)>> {
    let stored: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT plan, vectors FROM consolidation_plans
          WHERE job_id = $1 AND project_id = $2 AND created_at >= now() - make_interval(days => $3)",
    )
    .bind(job_id)
    .bind(project_id)
    .bind(window_days as i32)
    .fetch_optional(db)
    .await?;
    let Some((bytes, vectors)) = stored else { return Ok(None) };
    let corrupt = |why: String| StoreError::Corrupt(format!("stored plan of job {job_id}: {why}"));
    let mut plan: Plan = serde_json::from_slice(&bytes).map_err(|error| corrupt(error.to_string()))?;
    put_vectors(&mut plan, &vectors).map_err(corrupt)?;
    Ok(Some((plan, (bytes.len() + vectors.len()) as u64)))
}

/// Every vector the plan writes (merged and synthesis memories', promoted entries'), in one
/// order: a vector stays in the plan as an empty one, a missing one stays missing.
fn vectors_of(plan: &mut Plan) -> impl Iterator<Item = &mut Vec<f32>> {
    let memories = plan
        .merges
        .iter_mut()
        .map(|merge| &mut merge.memory)
        .chain(plan.syntheses.iter_mut().map(|synthesis| &mut synthesis.memory))
        .filter_map(|memory| memory.embedding.as_mut());
    memories.chain(plan.promotions.iter_mut().map(|promotion| &mut promotion.embedding))
}

/// Takes the vectors out of the plan: each as its length (u32) and its values (f32), little-endian.
fn take_vectors(plan: &mut Plan) -> Vec<u8> {
    let mut out = Vec::new();
    for vector in vectors_of(plan) {
        out.extend((vector.len() as u32).to_le_bytes());
        out.extend(embedding::encode(&std::mem::take(vector)));
    }
    out
}

fn put_vectors(plan: &mut Plan, mut bytes: &[u8]) -> std::result::Result<(), String> {
    for vector in vectors_of(plan) {
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or("fewer vectors than the plan writes")?;
        let size = u32::from_le_bytes(*len) as usize * 4;
        if rest.len() < size {
            return Err("a vector is cut short".to_owned());
        }
        *vector = embedding::decode(&rest[..size]).map_err(|error| error.to_string())?;
        bytes = &rest[size..];
    }
    match bytes.is_empty() {
        true => Ok(()),
        false => Err("more vectors than the plan writes".to_owned()),
    }
}

/// Whether the dry run's plan can still be applied (stored and inside the window).
pub async fn is_kept(db: impl PgExecutor<'_>, job_id: Uuid, window_days: u32) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM consolidation_plans
                         WHERE job_id = $1 AND created_at >= now() - make_interval(days => $2))",
    )
    .bind(job_id)
    .bind(window_days as i32)
    .fetch_one(db)
    .await?)
}

/// The job (other than `except`) that applies or applied the dry run's plan: pending, running or
/// completed.
pub async fn applied_by(db: impl PgExecutor<'_>, dry_run_id: Uuid, except: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM consolidation_jobs
          WHERE plan_of = $1 AND id <> $2 AND status IN ('pending', 'running', 'completed')
          ORDER BY created_at LIMIT 1",
    )
    .bind(dry_run_id)
    .bind(except)
    .fetch_optional(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Options;
    use crate::engine::merge::embed::CentroidEmbedder;
    use crate::engine::plan::{EngineConfig, plan};
    use crate::engine::synthesis::ExtractiveSynthesizer;
    use crate::synthetic::{anchor, generate};

    fn a_plan() -> Plan {
        let (snapshot, _) = generate(400, 48, 7);
        let options = Options::default();
        plan(
            &snapshot,
            &options,
            &EngineConfig::default(),
            Uuid::nil(),
            anchor(),
            &ExtractiveSynthesizer,
            &CentroidEmbedder,
        )
    }

    #[test]
    fn a_plan_comes_back_with_every_vector_in_its_place() {
        let original = a_plan();
        assert!(!original.merges.is_empty() && !original.promotions.is_empty(), "the data merges and promotes");
        let mut stored = original.clone();
        let vectors = take_vectors(&mut stored);
        assert!(stored.merges.iter().all(|m| m.memory.embedding.as_ref().is_none_or(Vec::is_empty)));
        let json = serde_json::to_vec(&stored).expect("encodes");
        let mut back: Plan = serde_json::from_slice(&json).expect("decodes");
        put_vectors(&mut back, &vectors).expect("vectors fit");
        let vectors_of = |plan: &Plan| -> Vec<Option<Vec<f32>>> {
            plan.merges
                .iter()
                .map(|m| m.memory.embedding.clone())
                .chain(plan.syntheses.iter().map(|s| s.memory.embedding.clone()))
                .chain(plan.promotions.iter().map(|p| Some(p.embedding.clone())))
                .collect()
        };
        assert_eq!(vectors_of(&back), vectors_of(&original));
        let ids = |plan: &Plan| {
            plan.merges.iter().map(|m| (m.memory.id, m.memory.execution_summary.clone())).collect::<Vec<_>>()
        };
        assert_eq!(ids(&back), ids(&original));
    }

    #[test]
    fn vectors_that_do_not_fit_the_plan_are_refused() {
        let mut stored = a_plan();
        let vectors = take_vectors(&mut stored);
        let mut short = stored.clone();
        assert!(put_vectors(&mut short, &vectors[..vectors.len() - 4]).is_err());
        let mut long = stored.clone();
        let extra = [vectors.as_slice(), &[0, 0, 0, 0]].concat();
        assert!(put_vectors(&mut long, &extra).is_err());
    }
}
