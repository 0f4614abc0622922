//! `consolidator bench lifecycle`: a project consolidated once, then day after day new memories
//! arrive (a share of them re-learned copies or paraphrases of facts already stored) and one job
//! runs per day, end to end through NATS and PostgreSQL. Reports per day the mode that ran, its
//! duration, the active memories and the re-learned memories left unmerged (the target is none).

use chrono::Utc;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

use super::e2e::{E2eError, Harness};
use crate::config::{NatsConfig, WorkerConfig};
use crate::domain::JobResult;
use crate::domain::NewMemory;
use crate::engine::similarity::UnitMatrix;
use crate::engine::similarity::ann::gaussian;
use crate::synthetic::synthetic_memories;

#[derive(Debug, Clone, clap::Args)]
pub struct LifecycleArgs {
    /// Days of arrivals after the first consolidation.
    #[arg(long, default_value_t = 5)]
    pub days: usize,
    /// New memories per day.
    #[arg(long, default_value_t = 1000)]
    pub arrivals: usize,
    /// Share of each day's arrivals that re-learn a stored fact (half exact copies, half paraphrases).
    #[arg(long, default_value_t = 0.33)]
    pub relearned_share: f64,
    /// Noise norm added to a paraphrase's unit embedding (0.1: cosine ~0.995 with its original).
    #[arg(long, default_value_t = 0.1)]
    pub paraphrase_noise: f32,
}

/// Shifts generated memories so their ages count back from now (the generator's anchor is fixed).
fn age_from_now(memories: &mut [NewMemory]) {
    let shift = Utc::now() - crate::synthetic::anchor();
    for m in memories {
        m.learned_at += shift;
        m.last_reused_at = m.last_reused_at.map(|t| t + shift);
    }
}

fn paraphrase(original: &NewMemory, noise: f32, rng: &mut ChaCha8Rng) -> Option<Vec<f32>> {
    let embedding = original.embedding.as_ref()?;
    let dim = embedding.len();
    let unit = UnitMatrix::normalize(embedding, dim)?;
    let raw: Vec<f32> = (0..dim).map(|_| gaussian(rng)).collect();
    let direction = UnitMatrix::normalize(&raw, dim)?;
    UnitMatrix::normalize(&unit.iter().zip(&direction).map(|(u, d)| u + noise * d).collect::<Vec<_>>(), dim)
}

/// Ids of the stored plain memories a day's arrivals may re-learn: active ones and the sources of
/// consolidated memories (archived memories are gone from the store's view).
async fn relearnable(harness: &Harness) -> Result<Vec<Uuid>, E2eError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM task_memories WHERE project_id = $1 AND NOT is_archived
            AND memory_type NOT IN ('consolidated', 'synthesis') ORDER BY id",
    )
    .bind(harness.project_id)
    .fetch_all(&harness.db)
    .await
    .map_err(crate::store::StoreError::from)?)
}

async fn still_active(harness: &Harness, ids: &[Uuid]) -> Result<i64, E2eError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM task_memories WHERE id = ANY($1) AND NOT is_duplicate AND NOT is_archived",
    )
    .bind(ids)
    .fetch_one(&harness.db)
    .await
    .map_err(crate::store::StoreError::from)?)
}

pub async fn run(
    database_url: &str,
    nats: &NatsConfig,
    worker_config: WorkerConfig,
    mut initial: Vec<NewMemory>,
    args: &LifecycleArgs,
    seed: u64,
) -> Result<Value, E2eError> {
    age_from_now(&mut initial);
    let dim = initial.iter().find_map(|m| m.embedding.as_ref().map(Vec::len)).unwrap_or(0);
    let relearned_per_day = (args.arrivals as f64 * args.relearned_share).round() as usize;
    let unrelated_per_day = args.arrivals.saturating_sub(relearned_per_day);
    let mut unrelated = synthetic_memories(unrelated_per_day * args.days, dim, seed.wrapping_add(1));
    let harness = Harness::start(database_url, nats, worker_config).await?;
    let seed_ms = harness.load(&initial).await?;
    let first = harness.run_job(None).await?;
    let mut days = vec![day_report(0, &first, 0, 0, 0)];
    let pool = relearnable(&harness).await?;
    let by_id: std::collections::HashMap<Uuid, &NewMemory> = initial.iter().map(|m| (m.id, m)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut all_copies, mut all_paraphrases) = (Vec::new(), Vec::new());
    for day in 1..=args.days {
        let mut arrivals: Vec<NewMemory> = Vec::with_capacity(args.arrivals);
        let (mut copies, mut paraphrases) = (Vec::new(), Vec::new());
        for k in 0..relearned_per_day {
            let Some(original) = pool.get(rng.random_range(0..pool.len().max(1))).and_then(|id| by_id.get(id)) else {
                break;
            };
            let mut memory =
                NewMemory { id: Uuid::new_v4(), learned_at: Utc::now(), reused_count: 0, ..(*original).clone() };
            if k % 2 == 1 {
                memory.embedding = paraphrase(original, args.paraphrase_noise, &mut rng);
                paraphrases.push(memory.id);
            } else {
                copies.push(memory.id);
            }
            arrivals.push(memory);
        }
        for mut memory in unrelated.drain(..unrelated_per_day.min(unrelated.len())) {
            memory.id = Uuid::new_v4();
            memory.learned_at = Utc::now();
            arrivals.push(memory);
        }
        harness.load(&arrivals).await?;
        let job = harness.run_job(None).await?;
        let (left_copies, left_paraphrases) =
            (still_active(&harness, &copies).await?, still_active(&harness, &paraphrases).await?);
        days.push(day_report(day, &job, arrivals.len(), left_copies, left_paraphrases));
        all_copies.extend(copies);
        all_paraphrases.extend(paraphrases);
    }
    let final_copies = still_active(&harness, &all_copies).await?;
    let final_paraphrases = still_active(&harness, &all_paraphrases).await?;
    harness.stop().await?;
    Ok(json!({
        "initial_memories": initial.len(),
        "dim": dim,
        "seed": seed,
        "seed_ms": seed_ms,
        "arrivals_per_day": args.arrivals,
        "relearned_per_day": relearned_per_day,
        "days": days,
        "relearned_copies_active_at_end": final_copies,
        "relearned_paraphrases_active_at_end": final_paraphrases,
        "relearned_total": all_copies.len() + all_paraphrases.len(),
        "peak_rss_mib": crate::telemetry::peak_rss_mib(),
    }))
}

fn day_report(day: usize, job: &super::e2e::JobRun, arrivals: usize, left_copies: i64, left_paraphrases: i64) -> Value {
    let (timings, scope) = job.result.as_ref().map(JobResult::timings_and_scope).unwrap_or_default();
    json!({
        "day": day,
        "arrivals": arrivals,
        "mode": scope.map(|scope| &scope.mode),
        "compared": scope.map(|scope| scope.compared),
        "candidates": scope.map(|scope| scope.candidates),
        "end_to_end_ms": job.end_to_end_ms,
        "events_ms_since_publish": job.phases,
        "engine_timings_ms": timings,
        "cost": job.result.as_ref().and_then(|result| result.cost),
        "merged": job.completed.counters.as_ref().map(|c| c.memories_merged),
        "active_memories": job.completed.memories_after,
        "relearned_copies_left_unmerged": left_copies,
        "relearned_paraphrases_left_unmerged": left_paraphrases,
    })
}
