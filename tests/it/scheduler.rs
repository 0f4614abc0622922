//! The scheduler and the worker's sweep handling.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use consolidator::{
    bus::{
        CommandKind,
        messages::{SCHEMA_VERSION, SweepCommand, SweepSummary},
    },
    config::SchedulerConfig,
    scheduler::{self, Scheduler},
    store::{
        changes::{self, NewChange},
        jobs::{self, NewJob, TriggerType},
        projects::{self, ConsolidationSettings},
        sweeps,
    },
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    common::{TestEnv, eventually},
    fixtures,
    support::{Scenario, events_until},
};

const WAIT: Duration = Duration::from_secs(30);

fn scheduler(env: &TestEnv, schedule: &str) -> Scheduler {
    Scheduler {
        db: env.db.clone(),
        bus: env.bus.clone(),
        schedule: scheduler::parse_schedule(schedule).unwrap(),
        config: SchedulerConfig {
            schedule: schedule.to_owned(),
            audit_retention_days: 90,
            pending_grace_secs: 0,
            abandoned_job_secs: 3600,
        },
        rollback_window_days: 7,
    }
}

async fn sweep_summary(env: &TestEnv, date: NaiveDate) -> Vec<SweepSummary> {
    events_until::<SweepSummary>(&env.bus, env.bus.prefix.sweep_completed(date), Duration::from_secs(3), |_| false)
        .await
        .into_iter()
        .map(|(_, summary)| summary)
        .collect()
}

async fn project_with_memories(env: &TestEnv, threshold: i32) -> Uuid {
    let project = fixtures::project(&env.db, threshold).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    project.id
}

#[tokio::test]
async fn three_scheduler_replicas_yield_one_sweep_per_tick() {
    let env = TestEnv::new().await;
    let over = project_with_memories(&env, 3).await;
    let worker = env.spawn_worker();
    let shutdown = CancellationToken::new();
    // Started together, each replica catches up the latest tick: one sweep must come of it.
    let replicas: Vec<_> =
        (0..3).map(|_| tokio::spawn(scheduler::run(scheduler(&env, "0 2 * * *"), shutdown.clone()))).collect();
    let first_tick = scheduler(&env, "0 2 * * *").previous_tick(Utc::now()).unwrap();
    let first = wait_for_sweep(&env, first_tick.date_naive()).await;
    shutdown.cancel();
    for replica in replicas {
        replica.await.unwrap();
    }
    // The next tick, published by all three replicas at once.
    let next_tick = first_tick + chrono::Duration::days(1);
    let publishing: Vec<_> = (0..3)
        .map(|_| {
            let replica = scheduler(&env, "0 2 * * *");
            tokio::spawn(async move { replica.publish_sweep(next_tick).await.unwrap() })
        })
        .collect();
    for publish in publishing {
        publish.await.unwrap();
    }
    let second = wait_for_sweep(&env, next_tick.date_naive()).await;
    worker.stop().await;

    assert_eq!((first.job_ids.len(), second.job_ids.len()), (1, 1));
    let sweeps_stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM consolidation_sweeps").fetch_one(&env.db).await.unwrap();
    assert_eq!(sweeps_stored, 2, "one sweep per tick");
    let history = jobs::history(&env.db, over, &jobs::HistoryFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(history.len(), 2, "one scheduled job per tick");
    assert!(history.iter().all(|job| job.trigger_type == "scheduled" && job.status == "completed"));
    let events = sweep_summary(&env, first_tick.date_naive()).await;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].projects_triggered, events[0].jobs_completed, events[0].memories_merged), (1, 1, 5));
    assert_eq!(sweep_summary(&env, next_tick.date_naive()).await.len(), 1);
}

async fn wait_for_sweep(env: &TestEnv, date: NaiveDate) -> sweeps::Sweep {
    eventually(WAIT, || async { sweeps::get(&env.db, date).await.ok()?.filter(|sweep| sweep.status == "completed") })
        .await
        .unwrap_or_else(|| panic!("the sweep of {date} did not complete"))
}

#[tokio::test]
async fn a_sweep_selects_only_enabled_idle_projects_over_their_threshold_and_never_twice() {
    let env = TestEnv::new().await;
    let over = project_with_memories(&env, 3).await;
    let under = project_with_memories(&env, 100).await;
    let disabled = project_with_memories(&env, 3).await;
    let off = ConsolidationSettings { enabled: false, threshold: 3, options: serde_json::json!({}) };
    projects::update_settings(&env.db, disabled, &off).await.unwrap();
    let busy = project_with_memories(&env, 3).await;
    let busy_job = NewJob {
        id: Uuid::new_v4(),
        project_id: busy,
        trigger_type: TriggerType::Manual,
        options: serde_json::json!({}),
        triggered_by: "someone".into(),
        scheduled_for: None,
    };
    jobs::create(&env.db, &busy_job).await.unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let command = SweepCommand { schema_version: SCHEMA_VERSION, sweep_date: date, scheduled_at: Utc::now() };
    let worker = env.spawn_worker();

    env.bus.publish_command(CommandKind::Sweep, &command.idempotency_key(), &command).await.unwrap();
    let sweep = eventually(WAIT, || async {
        sweeps::get(&env.db, date).await.ok()?.filter(|sweep| sweep.status == "completed")
    })
    .await
    .expect("sweep completed");
    // A repeat that slips past the duplicate window must create nothing new.
    env.bus.publish_command(CommandKind::Sweep, "a-different-key", &command).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.stop().await;

    assert_eq!(sweep.projects_considered, 3, "enabled projects");
    assert_eq!(sweep.job_ids, vec![scheduler_job(over, date)]);
    let db = env.db.clone();
    let history = |project| {
        let db = db.clone();
        async move { jobs::history(&db, project, &jobs::HistoryFilter { limit: 10, ..Default::default() }).await.unwrap() }
    };
    let over_jobs = history(over).await;
    assert_eq!(over_jobs.len(), 1);
    assert_eq!(over_jobs[0].scheduled_for, Some(date));
    assert!(history(under).await.is_empty());
    assert!(history(disabled).await.is_empty());
    assert_eq!(history(busy).await.len(), 1, "only the job it already had");
    assert_eq!(sweep_summary(&env, date).await.len(), 1);
}

fn scheduler_job(project_id: Uuid, date: NaiveDate) -> Uuid {
    Uuid::new_v5(&project_id, format!("sweep:{date}").as_bytes())
}

#[tokio::test]
async fn a_missed_tick_is_caught_up_once_whatever_the_number_of_replicas() {
    let env = TestEnv::new().await;
    let replicas: Vec<_> = (0..3).map(|_| scheduler(&env, "0 2 * * *")).collect();
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 30, 0).unwrap();

    for replica in &replicas {
        assert!(replica.catch_up(now).await.unwrap(), "no sweep yet: every replica publishes the missed tick");
    }
    let worker = env.spawn_worker();
    let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let sweep = eventually(WAIT, || async { sweeps::get(&env.db, date).await.ok()? }).await.expect("caught up");
    assert_eq!(sweep.scheduled_at, Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap());
    for replica in &replicas {
        assert!(!replica.catch_up(now).await.unwrap(), "the tick has its sweep");
    }
    let drained = eventually(WAIT, || async {
        let stream = env.bus.jetstream.get_stream(env.bus.prefix.commands_stream()).await.ok()?;
        let state = &stream.cached_info().state;
        (state.messages == 0).then_some(state.last_sequence)
    })
    .await;
    worker.stop().await;
    assert_eq!(drained, Some(1), "the three publications were stored as one command, and consumed");
    assert_eq!(sweeps::latest_date(&env.db).await.unwrap(), Some(date));
}

#[tokio::test]
async fn retention_deletes_exactly_the_audit_rows_older_than_the_retention_period() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let row = |reason: &str| NewChange {
        operation: "archive".into(),
        memory_id: Uuid::new_v4(),
        previous_state: None,
        new_state: None,
        reason: reason.into(),
        confidence: None,
    };
    let mut conn = env.db.acquire().await.unwrap();
    changes::insert_batch(&mut conn, None, project.id, "t", &[row("old"), row("old"), row("recent"), row("in window")])
        .await
        .unwrap();
    sqlx::query("UPDATE consolidation_changes SET changed_at = now() - interval '91 days' WHERE reason = 'old'")
        .execute(&env.db)
        .await
        .unwrap();
    sqlx::query("UPDATE consolidation_changes SET changed_at = now() - interval '89 days' WHERE reason = 'recent'")
        .execute(&env.db)
        .await
        .unwrap();

    let report = scheduler(&env, "0 2 * * *").maintain(Utc::now()).await.unwrap();

    assert_eq!(report.deleted_changes, 2);
    let left: Vec<String> = sqlx::query_scalar("SELECT reason FROM consolidation_changes ORDER BY reason")
        .fetch_all(&env.db)
        .await
        .unwrap();
    assert_eq!(left, ["in window", "recent"]);
}

#[tokio::test]
async fn a_job_left_pending_is_republished_and_completes_and_an_abandoned_one_fails() {
    let env = TestEnv::new().await;
    let stranded = project_with_memories(&env, 3).await;
    let job = NewJob {
        id: Uuid::new_v4(),
        project_id: stranded,
        trigger_type: TriggerType::Manual,
        options: serde_json::json!({}),
        triggered_by: "gateway that died".into(),
        scheduled_for: None,
    };
    jobs::create(&env.db, &job).await.unwrap();
    let abandoned_project = fixtures::project(&env.db, 3).await;
    let abandoned = NewJob { id: Uuid::new_v4(), project_id: abandoned_project.id, ..job.clone() };
    jobs::create(&env.db, &abandoned).await.unwrap();
    jobs::claim(&env.db, abandoned.id, "ghost", Duration::from_secs(1)).await.unwrap();
    sqlx::query("UPDATE consolidation_jobs SET heartbeat_at = now() - interval '2 hours' WHERE id = $1")
        .bind(abandoned.id)
        .execute(&env.db)
        .await
        .unwrap();
    let worker = env.spawn_worker();

    let report = scheduler(&env, "0 2 * * *").maintain(Utc::now()).await.unwrap();

    assert_eq!((report.republished, report.failed), (1, 1));
    let done =
        eventually(WAIT, || async { jobs::get(&env.db, job.id).await.ok()?.filter(|job| job.status == "completed") })
            .await;
    worker.stop().await;
    assert_eq!(done.expect("the stranded job completed").memories_merged, 5);
    let failed = jobs::get(&env.db, abandoned.id).await.unwrap().unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed.error_message.unwrap().contains("ghost"));
}

#[test]
fn an_invalid_schedule_is_refused_naming_the_setting() {
    let error = scheduler::parse_schedule("every day at two").unwrap_err();
    assert_eq!(error.name, "SCHEDULE");
    let twice_a_day = scheduler::parse_schedule("0 2,14 * * *").unwrap_err();
    assert!(twice_a_day.message.contains("more than once a day"), "{}", twice_a_day.message);
    assert!(scheduler::parse_schedule("30 3 * * 1").is_ok(), "weekly is fine");
}
