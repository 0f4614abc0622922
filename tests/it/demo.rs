//! `consolidator demo`: the bundled data set loaded, one job through NATS, the report.

use std::time::Duration;

use consolidator::{
    demo::{self, DemoOptions},
    domain::Prefix,
};

use crate::harness::*;

fn options(dry_run: bool) -> DemoOptions {
    DemoOptions { dry_run, progress_bar: false, patience: Duration::from_secs(60) }
}

#[tokio::test]
async fn the_demo_loads_its_data_set_and_reports_merges_syntheses_archives_and_promotions() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();

    let run = demo::run(&env.db, &env.bus, &options(false)).await.expect("the demo ran");

    assert_eq!(run.loaded, demo::DATA.lines().count());
    assert_eq!(run.end.event, "completed");
    let report = &run.report;
    assert_eq!(report.memories_before, Some(run.loaded as i32));
    assert!(report.merges.len() >= 40, "{} clusters merged", report.merges.len());
    assert!(report.merges.iter().all(|merge| merge.members.len() >= 2 && !merge.merged_text.is_empty()));
    assert!(report.merges.iter().all(|merge| merge.coverage.is_some_and(|coverage| coverage >= 0.95)));
    assert_eq!(report.archived.len(), 16, "the stale memories: {:?}", report.archived);
    assert!(!report.syntheses.is_empty() && !report.promoted.is_empty());
    // The data set's value changes are held apart by the value guard and queued for review.
    assert!(!report.updates.is_empty(), "no possible updates");
    assert!(report.updates.iter().all(|update| !update.older.is_empty() && !update.newer.is_empty()));
    let after = report.memories_after.expect("counted after");
    assert!(after < run.loaded as i32, "{after} active after");
    let text = report.to_string();
    assert!(text.contains("Clusters (") && text.contains("=> ") && text.contains("Archived (16)"), "{text}");
    let steps = run.next_steps("http://127.0.0.1:8080", "consolidator");
    assert!(steps.contains(&format!("/console#/jobs/{}", run.job_id)) && steps.contains("/consolidation/rollback"));
    assert!(steps.contains("export TOKEN=$(consolidator token)"), "{steps}");
    worker.stop().await;
}

#[tokio::test]
async fn a_dry_run_demo_reports_the_plan_and_changes_nothing() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();

    let run = demo::run(&env.db, &env.bus, &options(true)).await.expect("the demo ran");

    let report = &run.report;
    assert!(report.dry_run && report.merges.len() >= 40);
    assert!(report.merges.iter().all(|merge| merge.members.len() >= 2 && !merge.merged_text.is_empty()));
    let active = consolidator::store::projects::active_memory_count(&env.db, run.project_id).await.expect("count");
    assert_eq!(active, run.loaded as i64, "a dry run changes nothing");
    assert!(report.to_string().starts_with("Dry run (nothing changed)."));
    assert!(!run.next_steps("http://x", "consolidator").contains("rollback"), "nothing to roll back");
    worker.stop().await;
}

#[tokio::test]
async fn the_demo_runs_twice_on_one_database() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();

    let first = demo::run(&env.db, &env.bus, &options(true)).await.expect("the first demo ran");
    let second = demo::run(&env.db, &env.bus, &options(true)).await.expect("the second demo ran");

    assert_ne!(first.project_id, second.project_id);
    assert_eq!(first.loaded, second.loaded);
    worker.stop().await;
}

#[tokio::test]
async fn the_demo_binary_waits_for_a_workers_streams_creates_none_and_logs_without_colour() {
    let env = TestEnv::new().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_consolidator"))
        .arg("demo")
        .env("DATABASE_URL", env.database_url())
        .env("NATS_URL", &env.nats.nats_url)
        .env("CONSOLIDATION_PREFIX", format!("{}x", env.nats.prefix))
        .env_remove("NO_COLOR")
        .output()
        .await
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("waiting for stream"), "{stderr}");
    assert!(stderr.contains("run `consolidator setup`"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {stderr}");
    let stream = Prefix::new(&format!("{}x", env.nats.prefix)).unwrap().events_stream();
    assert!(env.bus.jetstream.get_stream(stream).await.is_err(), "the demo created no stream");
}
