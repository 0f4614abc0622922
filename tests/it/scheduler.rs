//! The scheduler and the worker's sweep handling.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use consolidator::{
    bus::{
        CommandKind,
        messages::{SCHEMA_VERSION, SweepCommand, SweepSummary, TriggerCommand, tick_token},
    },
    scheduler,
    store::{
        changes::{self, NewChange},
        jobs::{self, NewJob, TriggerType},
        projects::{self, ConsolidationSettings},
        rollbacks, sweeps,
    },
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

async fn sweep_summary(env: &TestEnv, tick: DateTime<Utc>) -> Vec<SweepSummary> {
    events_until::<SweepSummary>(&env.bus, env.bus.prefix.sweep_completed(tick), Duration::from_secs(3), |_| false)
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
        (0..3).map(|_| tokio::spawn(scheduler::run(test_scheduler(&env, "0 2 * * *"), shutdown.clone()))).collect();
    let first_tick = test_scheduler(&env, "0 2 * * *").previous_tick(Utc::now()).unwrap();
    let first = wait_for_sweep(&env, first_tick).await;
    shutdown.cancel();
    for replica in replicas {
        replica.await.unwrap();
    }
    // The next tick, published by all three replicas at once.
    let next_tick = first_tick + chrono::Duration::days(1);
    let publishing: Vec<_> = (0..3)
        .map(|_| {
            let replica = test_scheduler(&env, "0 2 * * *");
            tokio::spawn(async move { replica.publish_sweep(next_tick).await.unwrap() })
        })
        .collect();
    for publish in publishing {
        publish.await.unwrap();
    }
    let second = wait_for_sweep(&env, next_tick).await;
    worker.stop().await;

    assert_eq!((first.job_ids.len(), second.job_ids.len()), (1, 1));
    let sweeps_stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM consolidation_sweeps").fetch_one(&env.db).await.unwrap();
    assert_eq!(sweeps_stored, 2, "one sweep per tick");
    let history = jobs::history(&env.db, over, &jobs::HistoryFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(history.len(), 2, "one scheduled job per tick");
    assert!(history.iter().all(|job| job.trigger_type == "scheduled" && job.status == "completed"));
    let events = sweep_summary(&env, first_tick).await;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].projects_triggered, events[0].jobs_completed, events[0].memories_merged), (1, 1, 5));
    assert_eq!(sweep_summary(&env, next_tick).await.len(), 1);
}

async fn wait_for_sweep(env: &TestEnv, tick: DateTime<Utc>) -> sweeps::Sweep {
    eventually(WAIT, || async { sweeps::get(&env.db, tick).await.ok()?.filter(|sweep| sweep.status == "completed") })
        .await
        .unwrap_or_else(|| panic!("the sweep of {tick} did not complete"))
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
        plan_of: None,
    };
    jobs::create(&env.db, &busy_job).await.unwrap();
    let tick = Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap();
    let command = SweepCommand { schema_version: SCHEMA_VERSION, tick, scheduled_at: Utc::now() };
    let worker = env.spawn_worker();

    env.bus.publish_command(CommandKind::Sweep, &command.idempotency_key(), &command).await.unwrap();
    let sweep = eventually(WAIT, || async {
        sweeps::get(&env.db, tick).await.ok()?.filter(|sweep| sweep.status == "completed")
    })
    .await
    .expect("sweep completed");
    // A repeat that slips past the duplicate window must create nothing new.
    env.bus.publish_command(CommandKind::Sweep, "a-different-key", &command).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.stop().await;

    assert_eq!(sweep.projects_considered, 3, "enabled projects");
    assert_eq!(sweep.job_ids, vec![scheduler_job(over, tick)]);
    let db = env.db.clone();
    let history = |project| {
        let db = db.clone();
        async move { jobs::history(&db, project, &jobs::HistoryFilter { limit: 10, ..Default::default() }).await.unwrap() }
    };
    let over_jobs = history(over).await;
    assert_eq!(over_jobs.len(), 1);
    assert_eq!((over_jobs[0].sweep_tick, over_jobs[0].scheduled_for), (Some(tick), Some(tick.date_naive())));
    assert!(history(under).await.is_empty());
    assert!(history(disabled).await.is_empty());
    assert_eq!(history(busy).await.len(), 1, "only the job it already had");
    assert_eq!(sweep_summary(&env, tick).await.len(), 1);
}

fn scheduler_job(project_id: Uuid, tick: DateTime<Utc>) -> Uuid {
    Uuid::new_v5(&project_id, format!("sweep:{}", tick_token(tick)).as_bytes())
}

#[tokio::test]
async fn a_missed_tick_is_caught_up_once_whatever_the_number_of_replicas() {
    let env = TestEnv::new().await;
    let replicas: Vec<_> = (0..3).map(|_| test_scheduler(&env, "0 2 * * *")).collect();
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 30, 0).unwrap();

    for replica in &replicas {
        assert!(replica.catch_up(now).await.unwrap(), "no sweep yet: every replica publishes the missed tick");
    }
    let worker = env.spawn_worker();
    let tick = Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap();
    let sweep = eventually(WAIT, || async { sweeps::get(&env.db, tick).await.ok()? }).await.expect("caught up");
    assert_eq!(sweep.sweep_date, tick.date_naive());
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
    assert_eq!(sweeps::latest_tick(&env.db).await.unwrap(), Some(tick));
}

#[tokio::test]
async fn retention_deletes_exactly_the_audit_rows_older_than_the_retention_period() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let row = |reason: &str| NewChange {
        operation: consolidator::domain::ChangeOperation::Archive,
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
    sqlx::query(
        "INSERT INTO admin_actions (at, actor, action, project_id)
         VALUES (now() - interval '91 days', 'old', 'job_triggered', $1), (now() - interval '89 days', 'recent', 'job_triggered', $1)",
    )
    .bind(project.id)
    .execute(&env.db)
    .await
    .unwrap();

    let report = test_scheduler(&env, "0 2 * * *").maintain(Utc::now()).await.unwrap();

    assert_eq!(report.deleted_changes, 2);
    assert_eq!(report.deleted_admin_actions, 1);
    let actors: Vec<String> = sqlx::query_scalar("SELECT actor FROM admin_actions").fetch_all(&env.db).await.unwrap();
    assert_eq!(actors, ["recent"], "admin actions are kept as long as audit rows");
    let left: Vec<String> = sqlx::query_scalar("SELECT reason FROM consolidation_changes ORDER BY reason")
        .fetch_all(&env.db)
        .await
        .unwrap();
    assert_eq!(left, ["in window", "recent"]);
}

fn stranded_job(project_id: Uuid) -> NewJob {
    NewJob {
        id: Uuid::new_v4(),
        project_id,
        trigger_type: TriggerType::Manual,
        options: serde_json::json!({}),
        triggered_by: "gateway that died".into(),
        scheduled_for: None,
        plan_of: None,
    }
}

#[tokio::test]
async fn a_pending_job_whose_command_was_lost_is_published_again_under_a_fresh_id_and_completes() {
    let env = TestEnv::new().await;
    let job = stranded_job(project_with_memories(&env, 3).await);
    jobs::create(&env.db, &job).await.unwrap();
    // Its first command reached the stream under the job id and was lost there (JetStream gave
    // up on it): a re-publication under that id would be dropped by the duplicate window.
    let command = TriggerCommand {
        schema_version: SCHEMA_VERSION,
        job_id: job.id,
        project_id: job.project_id,
        options: None,
        trigger_type: TriggerType::Manual,
        triggered_by: job.triggered_by.clone(),
        plan_of: None,
    };
    env.bus.publish_command(CommandKind::Trigger, &job.id.to_string(), &command).await.unwrap();
    let stream = env.bus.jetstream.get_stream(env.bus.prefix.commands_stream()).await.unwrap();
    assert!(stream.delete_message(1).await.unwrap());
    let worker = env.spawn_worker();

    let report = test_scheduler(&env, "0 2 * * *").maintain(Utc::now()).await.unwrap();

    assert_eq!((report.ran, report.republished_jobs, report.failed_jobs), (true, 1, 0));
    let done =
        eventually(WAIT, || async { jobs::get(&env.db, job.id).await.ok()?.filter(|job| job.status == "completed") })
            .await;
    worker.stop().await;
    assert_eq!(done.expect("the stranded job completed").memories_merged, 5);
}

#[tokio::test]
async fn an_abandoned_job_is_published_again_first_and_failed_only_if_still_abandoned_after() {
    let env = TestEnv::new().await;
    let job = stranded_job(fixtures::project(&env.db, 3).await.id);
    jobs::create(&env.db, &job).await.unwrap();
    jobs::claim(&env.db, job.id, "ghost", Duration::from_secs(1)).await.unwrap();
    let backdate = |column: &'static str, age: &'static str| {
        let db = env.db.clone();
        async move {
            sqlx::query(&format!("UPDATE consolidation_jobs SET {column} = now() - interval '{age}' WHERE id = $1"))
                .bind(job.id)
                .execute(&db)
                .await
                .unwrap();
        }
    };
    backdate("heartbeat_at", "3 hours").await;
    let scheduler = test_scheduler(&env, "0 2 * * *");

    let first = scheduler.maintain(Utc::now()).await.unwrap();
    assert_eq!((first.republished_jobs, first.failed_jobs), (1, 0), "published again, not failed");
    let second = scheduler.maintain(Utc::now()).await.unwrap();
    assert_eq!((second.republished_jobs, second.failed_jobs), (0, 0), "within the grace after re-publication");
    // Long after, but its command still waits in the queue (every worker busy, or none up).
    backdate("published_at", "2 hours").await;
    let waiting = scheduler.maintain(Utc::now()).await.unwrap();
    assert_eq!((waiting.republished_jobs, waiting.failed_jobs), (0, 0), "a queued command is not given up on");
    // Then the message goes (JetStream gave up on it) and the job is still abandoned.
    let sequence = jobs::get(&env.db, job.id).await.unwrap().unwrap().published_seq.unwrap();
    let stream = env.bus.jetstream.get_stream(env.bus.prefix.commands_stream()).await.unwrap();
    assert!(stream.delete_message(u64::try_from(sequence).unwrap()).await.unwrap());

    // A worker that claims it between maintenance's read and its update keeps it.
    backdate("published_at", "2 hours").await;
    jobs::claim(&env.db, job.id, "alive", Duration::from_secs(1)).await.unwrap();
    backdate("heartbeat_at", "0 seconds").await;
    assert!(!jobs::fail_abandoned(&env.db, job.id, "late", Duration::from_secs(3600)).await.unwrap());

    backdate("heartbeat_at", "3 hours").await;
    let third = scheduler.maintain(Utc::now()).await.unwrap();
    assert_eq!(third.failed_jobs, 1);
    let failed = jobs::get(&env.db, job.id).await.unwrap().unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed.error_message.unwrap().contains("published again"));
}

#[tokio::test]
async fn a_pending_job_whose_command_still_waits_in_the_queue_is_not_published_again() {
    let env = TestEnv::new().await;
    let job = stranded_job(fixtures::project(&env.db, 3).await.id);
    jobs::create(&env.db, &job).await.unwrap();
    let scheduler = test_scheduler(&env, "0 2 * * *");

    assert_eq!(scheduler.maintain(Utc::now()).await.unwrap().republished_jobs, 1, "its first command is unknown");
    let published = jobs::get(&env.db, job.id).await.unwrap().unwrap().published_seq;
    for _ in 0..3 {
        assert_eq!(scheduler.maintain(Utc::now()).await.unwrap().republished_jobs, 0, "no copies pile up");
    }
    assert!(published.is_some());
    assert_eq!(jobs::get(&env.db, job.id).await.unwrap().unwrap().published_seq, published);
}

#[tokio::test]
async fn one_replica_at_a_time_maintains() {
    let env = TestEnv::new().await;
    let mut held = env.db.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("consolidator:maintenance:{}", env.bus.prefix))
        .execute(&mut *held)
        .await
        .unwrap();
    let scheduler = test_scheduler(&env, "0 2 * * *");
    assert!(!scheduler.maintain(Utc::now()).await.unwrap().ran, "the other replica holds the lock");
    held.commit().await.unwrap();
    assert!(scheduler.maintain(Utc::now()).await.unwrap().ran);
}

#[tokio::test]
async fn maintenance_publishes_the_latest_tick_that_has_no_sweep_once() {
    let env = TestEnv::new().await;
    project_with_memories(&env, 3).await;
    let scheduler = test_scheduler(&env, "0 2 * * *");
    let tick = scheduler.previous_tick(Utc::now()).unwrap();
    let worker = env.spawn_worker();

    let report = scheduler.maintain(Utc::now()).await.unwrap();

    assert_eq!(report.republished_sweeps, 1);
    let sweep = wait_for_sweep(&env, tick).await;
    assert_eq!(sweep.job_ids.len(), 1);
    assert_eq!(scheduler.maintain(Utc::now()).await.unwrap().republished_sweeps, 0, "the tick has its sweep");
    worker.stop().await;
}

#[tokio::test]
async fn every_tick_of_a_seconds_field_schedule_is_one_sweep_whatever_the_number_of_replicas() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();
    let shutdown = CancellationToken::new();
    let every_second = "* * * * * *";
    let started = Utc::now();
    let replicas: Vec<_> =
        (0..3).map(|_| tokio::spawn(scheduler::run(test_scheduler(&env, every_second), shutdown.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(5500)).await;
    // Ticks a whole second before the stop: a replica slowed by a loaded machine still sweeps them.
    let until = Utc::now() - chrono::Duration::milliseconds(1000);
    shutdown.cancel();
    for replica in replicas {
        replica.await.unwrap();
    }
    let expected: Vec<DateTime<Utc>> =
        test_scheduler(&env, every_second).schedule.iter_after(started).take_while(|tick| *tick <= until).collect();
    let stored = eventually(WAIT, || async {
        let ticks: Vec<DateTime<Utc>> =
            sqlx::query_scalar("SELECT tick FROM consolidation_sweeps WHERE tick > $1 AND tick <= $2 ORDER BY tick")
                .bind(started)
                .bind(until)
                .fetch_all(&env.db)
                .await
                .ok()?;
        (ticks.len() >= expected.len()).then_some(ticks)
    })
    .await;
    worker.stop().await;
    assert!(expected.len() >= 4, "{expected:?}");
    assert_eq!(stored.expect("every tick swept"), expected, "one sweep per tick, none skipped");
}

#[test]
fn any_cron_schedule_is_accepted_and_an_invalid_one_is_refused_naming_the_setting() {
    let error = scheduler::parse_schedule("every day at two").unwrap_err();
    assert_eq!(error.name, "SCHEDULE");
    for schedule in ["0 2,14 * * *", "*/10 * * * *", "*/15 * * * * *", "30 3 * * 1"] {
        assert!(scheduler::parse_schedule(schedule).is_ok(), "{schedule}");
    }
}

#[tokio::test]
async fn a_rollback_left_pending_without_its_command_is_published_again_and_completes() {
    let env = TestEnv::new().await;
    let project = project_with_memories(&env, 3).await;
    let worker = env.spawn_worker();
    let job = stranded_job(project);
    jobs::create(&env.db, &job).await.unwrap();
    let command = TriggerCommand {
        schema_version: SCHEMA_VERSION,
        job_id: job.id,
        project_id: project,
        options: None,
        trigger_type: TriggerType::Manual,
        triggered_by: "t".into(),
        plan_of: None,
    };
    env.bus.publish_command(CommandKind::Trigger, &job.id.to_string(), &command).await.unwrap();
    eventually(WAIT, || async { jobs::get(&env.db, job.id).await.ok()?.filter(|job| job.status == "completed") })
        .await
        .expect("job completed");
    // The gateway wrote the row, then could not publish (and could not record that either).
    let rollback_id = Uuid::new_v4();
    rollbacks::create(&env.db, rollback_id, job.id, project, Some("undo"), "admin", false).await.unwrap();

    let report = test_scheduler(&env, "0 2 * * *").maintain(Utc::now()).await.unwrap();

    assert_eq!(report.republished_rollbacks, 1);
    let done = eventually(WAIT, || async {
        rollbacks::get(&env.db, rollback_id).await.ok()?.filter(|rollback| rollback.is_finished())
    })
    .await;
    worker.stop().await;
    assert_eq!(done.expect("the rollback ran").status, "completed");
    assert!(jobs::get(&env.db, job.id).await.unwrap().unwrap().rolled_back_at.is_some());
}

#[tokio::test]
async fn a_sweep_whose_fan_out_stopped_half_way_is_finished_by_maintenance() {
    let env = TestEnv::new().await;
    let over = project_with_memories(&env, 3).await;
    let scheduler = test_scheduler(&env, "0 2 * * *");
    let tick = scheduler.previous_tick(Utc::now()).unwrap();
    // The worker that claimed the tick died before it recorded the fan-out.
    sweeps::start(&env.db, tick, tick).await.unwrap();
    sqlx::query("UPDATE consolidation_sweeps SET created_at = now() - interval '2 hours' WHERE tick = $1")
        .bind(tick)
        .execute(&env.db)
        .await
        .unwrap();
    let worker = env.spawn_worker();

    let report = scheduler.maintain(Utc::now()).await.unwrap();

    assert_eq!(report.republished_sweeps, 1, "only the interrupted fan-out, the tick has its row");
    let sweep = wait_for_sweep(&env, tick).await;
    worker.stop().await;
    assert_eq!(sweep.job_ids, vec![scheduler_job(over, tick)]);
}
