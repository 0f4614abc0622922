//! A job's own plan: embed the backlog, load the snapshot (incrementally when a base job allows),
//! and plan on a blocking thread, stopping at the phase boundaries.

use chrono::Utc;
use tracing::Span;

use super::{
    Worker, backlog,
    boundary::{self, End, Step},
    cost::CostMeter,
    events::job_event,
    failure::Failure,
    interrupt::JobStop,
    lease::LeaseKeeper,
    scope,
};
use crate::{
    bus::messages::JobEvent,
    domain::{JobEventKind, Options, Phase, Plan},
    engine,
    store::{
        jobs::{self, Job},
        memories,
    },
};

/// What planning produced: a plan to apply (or report), or the job's end when it stopped.
pub enum Planned {
    /// `complete`: the plan judged every memory it had to (the job can serve as an incremental base).
    Plan {
        plan: Box<Plan>,
        complete: bool,
    },
    Stop(Option<End>),
}

/// A progress event for `phase`, reported to the lease keeper too.
pub fn progress(keeper: &LeaseKeeper, job: &Job, phase: Phase, progress: f32) -> JobEvent {
    keeper.report(phase, progress);
    let mut event = job_event(JobEventKind::Progress, job.id, job.project_id);
    event.phase = Some(phase);
    event.progress = Some(progress);
    event
}

pub async fn plan(
    worker: &Worker,
    job: &Job,
    options: &Options,
    embedding_dim: Option<i32>,
    keeper: &LeaseKeeper,
    stop: &JobStop,
    meter: &mut CostMeter,
) -> Result<Planned, Failure> {
    // Memories stored without an embedding join this job's clustering once the endpoint is set
    // (a dry run changes nothing, so it plans over what is embedded).
    let backlog = match options.dry_run {
        false => backlog::embed(worker, job.project_id, embedding_dim).await?,
        true => backlog::Backlog::default(),
    };
    meter.embedded(backlog.embedded);
    let mut conn = worker.db.acquire().await?;
    let base = jobs::incremental_base(&mut *conn, job.project_id, job.id).await?;
    let decision = scope::decide(options, base.as_ref());
    let complete = decision.complete;
    jobs::record_snapshot(&mut *conn, job.id).await?;
    let loaded =
        memories::snapshot(&mut conn, job.project_id, decision.fresh, Some(worker.embeddings.as_ref())).await?;
    let mut snapshot = loaded.snapshot;
    snapshot.scope.reason = decision.reason;
    drop(conn);
    meter.loaded(&snapshot, loaded.embedding_bytes_read);
    let load_snapshot = meter.loading_ms();
    if let Step::Stop(end) = boundary::check(worker, job, Phase::Planning, stop).await? {
        return Ok(Planned::Stop(end.map(|end| *end)));
    }
    worker.bus.job_progress_event(JobEventKind::Progress, &progress(keeper, job, Phase::Planning, 0.2)).await;

    // The job's own model clients, so that its calls and tokens are counted apart and its budget
    // and stop bind them.
    let budget = worker.model_budget(stop.token().clone());
    let synthesizer = worker.synthesizer.for_job(&budget).unwrap_or_else(|| worker.synthesizer.clone());
    let embedder = worker.embedder.for_job(&budget).unwrap_or_else(|| worker.embedder.clone());
    let planned = {
        let (options, engine, synthesizer, embedder) =
            (options.clone(), worker.engine.clone(), synthesizer.clone(), embedder.clone());
        let (job_id, db, runtime, stop) =
            (job.id, worker.db.clone(), tokio::runtime::Handle::current(), stop.token().clone());
        let span = Span::current();
        tokio::task::spawn_blocking(move || -> Result<Option<(Plan, u64)>, Failure> {
            let _job = span.enter();
            let paired = engine::plan::pairs(&snapshot, &options, &engine);
            if stop.is_cancelled() {
                return Ok(None);
            }
            let loading = std::time::Instant::now();
            let summaries = runtime.block_on(memories::summaries(&db, &paired.guarded_ids(&options)))?;
            let mut text_bytes: u64 = summaries.iter().map(|(_, text)| text.len() as u64).sum();
            let mut load_rows = loading.elapsed().as_secs_f64() * 1e3;
            let texts: engine::plan::Texts<'_> = summaries.iter().map(|(id, text)| (*id, text.as_str())).collect();
            let clustering = engine::plan::group(&snapshot, paired, &texts, &options, &engine);
            if stop.is_cancelled() {
                return Ok(None);
            }
            let needed = engine::plan::rows_needed(&clustering, &options);
            let loading = std::time::Instant::now();
            let loaded = runtime.block_on(memories::full_rows(&db, &needed))?;
            text_bytes += loaded.iter().map(|m| m.text_bytes() as u64).sum::<u64>();
            load_rows += loading.elapsed().as_secs_f64() * 1e3;
            let rows: engine::plan::Rows<'_> = loaded.iter().map(|m| (m.id, m)).collect();
            let mut plan = engine::plan::build(
                &snapshot,
                clustering,
                &rows,
                &options,
                &engine,
                job_id,
                Utc::now(),
                synthesizer.as_ref(),
                embedder.as_ref(),
                &stop,
            );
            plan.timings_ms.load_snapshot = load_snapshot;
            plan.timings_ms.load_rows = load_rows;
            Ok(Some((plan, text_bytes)))
        })
        .await
        .map_err(|error| Failure::Transient(format!("planning task failed: {error}")))??
    };
    // A plan cut short by a stop is incomplete: never applied.
    let (mut plan, text_bytes) = match (stop.reason(), planned) {
        (Some(why), _) => return Ok(Planned::Stop(boundary::interrupted(worker, job, Phase::Applying, why).await?)),
        (None, Some(planned)) => planned,
        (None, None) => return Err(Failure::Transient("planning stopped without a reason".to_owned())),
    };
    let usage = synthesizer.usage() + embedder.usage() + budget.usage() + backlog.usage;
    if usage.budget_spent {
        plan.warnings.push(budget.spent_warning(usage.fallbacks));
    }
    plan.warnings.extend(backlog.warning);
    meter.planned(text_bytes, usage);
    Ok(Planned::Plan { plan: Box::new(plan), complete })
}
