//! Every store function against the real database.

use std::time::Duration;

use futures::TryStreamExt;

use chrono::{TimeZone, Utc};
use consolidator::{
    domain::MemoryType,
    store::{
        changes::{self, NewChange},
        jobs::{self, ClaimOutcome, CreateOutcome, HistoryFilter, JobCounters, JobStatus, NewJob, TriggerType},
        memories::{self, ListFilter},
        playbook::{self, NewEntry},
        projects::{self, ConsolidationSettings},
        rollbacks, sweeps,
    },
};
use uuid::Uuid;

use crate::harness::*;

fn new_job(project_id: Uuid) -> NewJob {
    NewJob {
        id: Uuid::new_v4(),
        project_id,
        trigger_type: TriggerType::Manual,
        options: serde_json::json!({"dry_run": true}),
        triggered_by: "tester".to_owned(),
        scheduled_for: None,
        plan_of: None,
    }
}

#[tokio::test]
async fn projects_are_created_read_and_configured() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 50).await;

    let read = projects::get(&env.db, project.id).await.unwrap().unwrap();
    assert_eq!(read.consolidation_threshold, 50);
    assert!(read.consolidation_enabled);
    assert_eq!(read.embedding_dim, None);

    let settings = ConsolidationSettings { enabled: false, threshold: 7, options: serde_json::json!({"merge": false}) };
    let updated = projects::update_settings(&env.db, project.id, &settings).await.unwrap().unwrap();
    assert!(!updated.consolidation_enabled);
    assert_eq!(updated.consolidation_options.0["merge"], false);
    assert!(projects::get(&env.db, Uuid::new_v4()).await.unwrap().is_none());

    assert_eq!(projects::fix_embedding_dim(&env.db, project.id, 8).await.unwrap(), Some(8));
    assert_eq!(projects::fix_embedding_dim(&env.db, project.id, 32).await.unwrap(), Some(8), "first dimension wins");
}

#[tokio::test]
async fn memories_round_trip_in_one_batch_with_tags_files_and_embeddings() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let mut first = fixtures::memory("Fixed the flaky test.", MemoryType::ErrorFix, direction(1, 0.25));
    first.tags = vec!["ci".into(), "flaky".into()];
    first.files = vec!["src/lib.rs".into(), "tests/it/main.rs".into()];
    let second = fixtures::memory("Chose sqlx.", MemoryType::Decision, direction(2, 0.0));

    fixtures::insert(&env.db, project.id, &[first.clone(), second.clone()]).await;

    let row = memories::get(&env.db, first.id).await.unwrap().unwrap();
    assert_eq!(row.tags, first.tags);
    assert_eq!(row.files, first.files);
    assert_eq!(row.embedding.clone().unwrap(), first.embedding.clone().unwrap());
    assert_eq!(row.memory_type, MemoryType::ErrorFix);
    assert_eq!(row.version, 1);
    assert_eq!(projects::active_memory_count(&env.db, project.id).await.unwrap(), 2);
}

#[tokio::test]
async fn listing_hides_archived_and_duplicates_unless_asked_and_pages_by_cursor() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let batch: Vec<_> =
        (0..5).map(|i| fixtures::memory(&format!("memory {i}"), MemoryType::Learning, direction(i, 0.0))).collect();
    fixtures::insert(&env.db, project.id, &batch).await;
    let mut conn = env.db.acquire().await.unwrap();
    memories::archive(&mut conn, &[batch[0].id], consolidator::domain::ArchiveReason::Manual).await.unwrap();
    memories::mark_duplicates(&mut conn, &[batch[1].id], &[batch[2].id]).await.unwrap();

    let visible = memories::list(&env.db, project.id, &ListFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(visible.len(), 3);
    let all = ListFilter { include_archived: true, include_duplicates: true, limit: 100, ..Default::default() };
    assert_eq!(memories::list(&env.db, project.id, &all).await.unwrap().len(), 5);

    let page_one = memories::list(&env.db, project.id, &ListFilter { limit: 2, ..all.clone() }).await.unwrap();
    let page_two =
        memories::list(&env.db, project.id, &ListFilter { limit: 10, after: Some(page_one[1].id), ..all.clone() })
            .await
            .unwrap();
    assert_eq!(page_one.len() + page_two.len(), 5);
    assert!(page_two.iter().all(|row| row.id > page_one[1].id));

    let typed = ListFilter { memory_type: Some(MemoryType::Decision), ..all };
    assert!(memories::list(&env.db, project.id, &typed).await.unwrap().is_empty());

    memories::unarchive(&mut conn, &[batch[0].id]).await.unwrap();
    memories::unmark_duplicates(&mut conn, &[batch[1].id]).await.unwrap();
    assert_eq!(projects::active_memory_count(&env.db, project.id).await.unwrap(), 5);
}

#[tokio::test]
async fn the_snapshot_holds_active_memories_with_files_and_the_active_playbook() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let mut kept = fixtures::memory("kept", MemoryType::Warning, direction(3, 0.0));
    kept.files = vec!["a.rs".into()];
    let archived = fixtures::memory("archived", MemoryType::Warning, direction(4, 0.0));
    fixtures::insert(&env.db, project.id, &[kept.clone(), archived.clone()]).await;
    let mut conn = env.db.acquire().await.unwrap();
    memories::archive(&mut conn, &[archived.id], consolidator::domain::ArchiveReason::Staleness).await.unwrap();
    let entry = NewEntry {
        id: Uuid::new_v4(),
        content: "Always pin versions.".into(),
        category: "best_practice".into(),
        tags: vec![],
        priority: 5,
        supporting_memory_ids: vec![kept.id],
        embedding: Some(direction(3, 0.0)),
        source_memory_id: Some(kept.id),
    };
    playbook::insert_batch(
        &mut conn,
        project.id,
        std::slice::from_ref(&entry),
        consolidator::domain::PlaybookOperation::Add,
        "test",
        None,
        "tester",
    )
    .await
    .unwrap();

    let snapshot = memories::snapshot(&mut conn, project.id, None, None).await.unwrap().snapshot;

    assert_eq!(snapshot.embedding_dim, Some(fixtures::DIM));
    assert_eq!(snapshot.memories.len(), 1);
    assert_eq!(snapshot.memories[0].id, kept.id);
    assert_eq!(snapshot.memories[0].embedding.as_deref(), kept.embedding.as_deref());
    assert!(snapshot.memories[0].execution_summary.is_empty(), "texts are read only for what merges");
    assert!(snapshot.scope.fresh.is_none(), "a full run");
    let full = memories::full_rows(&env.db, &[kept.id]).await.unwrap();
    assert_eq!(full[0].files, vec!["a.rs".to_owned()]);
    assert_eq!(full[0].execution_summary, kept.execution_summary);
    assert_eq!(snapshot.playbook.len(), 1);
    assert_eq!(snapshot.playbook[0].embedding.as_deref(), entry.embedding.as_deref());

    assert_eq!(playbook::deactivate(&mut conn, &[entry.id], "rollback", None, "tester").await.unwrap(), 1);
    assert_eq!(playbook::deactivate(&mut conn, &[entry.id], "rollback", None, "tester").await.unwrap(), 0);
    let log = playbook::changes_for_entry(&env.db, entry.id).await.unwrap();
    assert_eq!(log.iter().map(|c| c.operation.as_str()).collect::<Vec<_>>(), ["add", "delete"]);
    assert!(memories::snapshot(&mut conn, project.id, None, None).await.unwrap().snapshot.playbook.is_empty());
}

#[tokio::test]
async fn an_incremental_snapshot_marks_what_moved_since_the_base_job_unless_the_base_job_wrote_it_last() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let old = fixtures::memory("old", MemoryType::Warning, direction(1, 0.0));
    fixtures::insert(&env.db, project.id, std::slice::from_ref(&old)).await;
    let base = Uuid::new_v4();
    let job = NewJob {
        id: base,
        project_id: project.id,
        trigger_type: TriggerType::Manual,
        options: serde_json::json!({}),
        triggered_by: "tester".into(),
        scheduled_for: None,
        plan_of: None,
    };
    jobs::create(&env.db, &job).await.unwrap();
    let snapshot = jobs::record_snapshot(&env.db, base).await.unwrap();
    let new = fixtures::memory("new", MemoryType::Warning, direction(2, 0.0));
    let written = fixtures::memory("written by the base job", MemoryType::Warning, direction(3, 0.0));
    let rewritten = fixtures::memory("written by the base job, unmerged since", MemoryType::Warning, direction(4, 0.0));
    fixtures::insert(&env.db, project.id, std::slice::from_ref(&new)).await;
    // The base job writes its memories and their audit rows in one transaction, as the apply does.
    let mut tx = env.db.begin().await.unwrap();
    memories::insert_batch(&mut tx, project.id, &[written.clone(), rewritten.clone()]).await.unwrap();
    let created = |id| NewChange {
        operation: consolidator::domain::ChangeOperation::Merge,
        memory_id: id,
        previous_state: None,
        new_state: Some(serde_json::json!({"created": true})),
        reason: "test".into(),
        confidence: None,
    };
    changes::insert_batch(&mut tx, Some(base), project.id, "tester", &[created(written.id), created(rewritten.id)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Something changes one of them later: it is fresh again.
    let mut conn = env.db.acquire().await.unwrap();
    memories::archive(&mut conn, &[rewritten.id], consolidator::domain::ArchiveReason::Manual).await.unwrap();
    memories::unarchive(&mut conn, &[rewritten.id]).await.unwrap();

    let fresh = memories::FreshSince { base_job: base, snapshot };
    let snapshot = memories::snapshot(&mut conn, project.id, Some(fresh), None).await.unwrap().snapshot;

    assert_eq!(snapshot.memories.len(), 4);
    assert_eq!(snapshot.scope.fresh, Some([new.id, rewritten.id].into_iter().collect()));
}

#[tokio::test]
async fn one_active_job_per_project_and_a_repeated_id_returns_the_existing_job() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);

    let CreateOutcome::Created(created) = jobs::create(&env.db, &job).await.unwrap() else { panic!("not created") };
    assert_eq!(created.status, "pending");
    assert!(matches!(jobs::create(&env.db, &job).await.unwrap(), CreateOutcome::Existing(j) if j.id == job.id));
    let other = new_job(project.id);
    match jobs::create(&env.db, &other).await.unwrap() {
        CreateOutcome::ProjectBusy { active_job_id } => assert_eq!(active_job_id, Some(job.id)),
        outcome => panic!("expected busy, got {outcome:?}"),
    }
}

#[tokio::test]
async fn a_job_is_claimed_once_until_its_lease_goes_stale_then_completes_once() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    let lease = Duration::from_millis(300);

    assert!(matches!(jobs::claim(&env.db, job.id, "w1", lease).await.unwrap(), ClaimOutcome::Claimed(_)));
    assert!(matches!(jobs::claim(&env.db, job.id, "w2", lease).await.unwrap(), ClaimOutcome::HeldElsewhere(_)));
    assert_eq!(
        jobs::heartbeat(&env.db, job.id, "w1", consolidator::domain::Phase::Planning, 0.3).await.unwrap(),
        jobs::Heartbeat::Renewed
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let ClaimOutcome::Claimed(taken) = jobs::claim(&env.db, job.id, "w2", lease).await.unwrap() else {
        panic!("not taken over")
    };
    assert_eq!(taken.attempts, 2);
    assert_eq!(
        jobs::heartbeat(&env.db, job.id, "w1", consolidator::domain::Phase::Applying, 0.5).await.unwrap(),
        jobs::Heartbeat::Lost,
        "w1 lost the lease"
    );

    let counters = JobCounters { memories_merged: 3, memories_archived: 1, memories_promoted: 0, summaries_created: 1 };
    let result = serde_json::json!({"ok": true});
    assert!(!jobs::complete(&env.db, job.id, "w1", &counters, 10, 7, &result).await.unwrap());
    assert!(jobs::complete(&env.db, job.id, "w2", &counters, 10, 7, &result).await.unwrap());
    let done = jobs::get(&env.db, job.id).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.memories_merged, done.memories_after), ("completed", 3, Some(7)));
    assert!(matches!(jobs::claim(&env.db, job.id, "w3", lease).await.unwrap(), ClaimOutcome::Finished(_)));
    assert!(!jobs::fail(&env.db, job.id, "late").await.unwrap(), "a finished job cannot fail");
    assert!(matches!(jobs::claim(&env.db, Uuid::new_v4(), "w3", lease).await.unwrap(), ClaimOutcome::NotFound));
}

#[tokio::test]
async fn history_filters_and_pages_newest_first() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let job = new_job(project.id);
        jobs::create(&env.db, &job).await.unwrap();
        jobs::fail(&env.db, job.id, "boom").await.unwrap();
        ids.push(job.id);
    }

    let first = jobs::history(&env.db, project.id, &HistoryFilter { limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[2], ids[1]]);
    let cursor = Some((first[1].created_at, first[1].id));
    let rest = jobs::history(&env.db, project.id, &HistoryFilter { limit: 2, before: cursor, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[0]]);
    let completed = HistoryFilter { status: Some(JobStatus::Completed), limit: 10, ..Default::default() };
    assert!(jobs::history(&env.db, project.id, &completed).await.unwrap().is_empty());
    let scheduled = HistoryFilter { trigger_type: Some(TriggerType::Scheduled), limit: 10, ..Default::default() };
    assert!(jobs::history(&env.db, project.id, &scheduled).await.unwrap().is_empty());
    let future = HistoryFilter { from: Some(Utc::now() + chrono::Duration::hours(1)), limit: 10, ..Default::default() };
    assert!(jobs::history(&env.db, project.id, &future).await.unwrap().is_empty());
}

#[tokio::test]
async fn stale_pending_and_abandoned_jobs_are_found() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    assert!(jobs::stale_pending(&env.db, Duration::from_secs(60)).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(jobs::stale_pending(&env.db, Duration::from_millis(100)).await.unwrap().len(), 1);

    jobs::claim(&env.db, job.id, "w1", Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(jobs::abandoned(&env.db, Duration::from_secs(60)).await.unwrap().is_empty());
    assert_eq!(jobs::abandoned(&env.db, Duration::from_millis(100)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn changes_are_written_in_bulk_paged_by_operation_and_pruned_by_age() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    let memory = Uuid::new_v4();
    let rows: Vec<NewChange> = ["merge", "merge", "archive"]
        .iter()
        .map(|operation| NewChange {
            operation: operation.parse().expect("an operation"),
            memory_id: memory,
            previous_state: Some(serde_json::json!({"version": 1})),
            new_state: None,
            reason: "test".into(),
            confidence: Some(0.9),
        })
        .collect();
    let mut conn = env.db.acquire().await.unwrap();

    assert_eq!(changes::insert_batch(&mut conn, Some(job.id), project.id, "tester", &rows).await.unwrap(), 3);

    let merges =
        changes::for_job(&env.db, job.id, Some(consolidator::domain::ChangeOperation::Merge), None, 1).await.unwrap();
    assert_eq!(merges.len(), 1);
    let next =
        changes::for_job(&env.db, job.id, Some(consolidator::domain::ChangeOperation::Merge), Some(merges[0].id), 10)
            .await
            .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(changes::for_job(&env.db, job.id, None, None, 10).await.unwrap().len(), 3);
    let since = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(changes::later_changes(&env.db, &[memory], Uuid::new_v4(), since).await.unwrap().len(), 3);
    assert!(changes::later_changes(&env.db, &[memory], job.id, since).await.unwrap().is_empty());
    assert_eq!(changes::delete_older_than(&env.db, Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(changes::delete_older_than(&env.db, Utc::now() + chrono::Duration::hours(1)).await.unwrap(), 3);
}

#[tokio::test]
async fn rollbacks_are_idempotent_by_id_and_record_their_end() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    let id = Uuid::new_v4();

    let created = rollbacks::create(&env.db, id, job.id, project.id, Some("oops"), "admin", false).await.unwrap();
    let again = rollbacks::create(&env.db, id, job.id, project.id, Some("other"), "admin", false).await.unwrap();
    assert_eq!((created.status.as_str(), again.reason.as_deref()), ("pending", Some("oops")));
    assert!(rollbacks::completed_for_job(&env.db, job.id).await.unwrap().is_none());

    rollbacks::complete(&env.db, id, 4, 1, &["note".to_owned()]).await.unwrap();
    let done = rollbacks::completed_for_job(&env.db, job.id).await.unwrap().unwrap();
    assert_eq!(
        (done.memories_restored, done.memories_deleted, done.warnings.0.clone()),
        (4, 1, vec!["note".to_owned()])
    );

    let refused = Uuid::new_v4();
    rollbacks::create(&env.db, refused, job.id, project.id, None, "admin", false).await.unwrap();
    let conflict = Uuid::new_v4();
    rollbacks::finish_unsuccessful(
        &env.db,
        refused,
        consolidator::domain::RollbackStatus::Refused,
        "changed later",
        &[conflict],
    )
    .await
    .unwrap();
    let row = rollbacks::get(&env.db, refused).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.conflicts.0.clone()), ("refused", vec![conflict]));
    assert!(row.is_finished());
}

#[tokio::test]
async fn a_sweep_tick_is_claimed_once_and_completed_once() {
    let env = TestEnv::new().await;
    let tick = Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap();
    let at = Utc::now();

    assert!(sweeps::start(&env.db, tick, at).await.unwrap().is_some());
    assert!(sweeps::start(&env.db, tick, at).await.unwrap().is_none());
    let job_ids = vec![Uuid::new_v4()];
    sweeps::record_fan_out(&env.db, tick, 5, &job_ids).await.unwrap();
    let sweep = sweeps::get(&env.db, tick).await.unwrap().unwrap();
    assert_eq!((sweep.projects_considered, sweep.projects_triggered, sweep.job_ids), (5, 1, job_ids));
    assert!(sweep.fanned_out_at.is_some());
    assert_eq!(sweeps::running(&env.db).await.unwrap().len(), 1);

    assert!(sweeps::complete(&env.db, tick, &serde_json::json!({"done": 1})).await.unwrap());
    assert!(!sweeps::complete(&env.db, tick, &serde_json::json!({"done": 2})).await.unwrap());
    assert_eq!(sweeps::latest_tick(&env.db).await.unwrap(), Some(tick));
}

#[tokio::test]
async fn sweep_candidates_are_enabled_idle_projects_with_their_active_counts() {
    let env = TestEnv::new().await;
    let busy = fixtures::project(&env.db, 1).await;
    let idle = fixtures::project(&env.db, 1).await;
    let disabled = fixtures::project(&env.db, 1).await;
    let off = ConsolidationSettings { enabled: false, threshold: 1, options: serde_json::json!({}) };
    projects::update_settings(&env.db, disabled.id, &off).await.unwrap();
    jobs::create(&env.db, &new_job(busy.id)).await.unwrap();
    let batch: Vec<_> = (0..3).map(|i| fixtures::memory("m", MemoryType::Learning, direction(i, 0.0))).collect();
    fixtures::insert(&env.db, idle.id, &batch).await;

    let candidates = projects::sweep_candidates(&env.db).await.unwrap();

    assert_eq!(candidates.len(), 1);
    assert_eq!((candidates[0].id, candidates[0].active_memories), (idle.id, 3));
    assert_eq!(projects::count_enabled(&env.db).await.unwrap(), 2);
}

#[tokio::test]
async fn a_released_job_can_be_claimed_again_at_once_and_is_counted_by_status() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    let lease = Duration::from_secs(60);
    jobs::claim(&env.db, job.id, "w1", lease).await.unwrap();

    assert!(!jobs::release(&env.db, job.id, "w2", "not mine").await.unwrap());
    assert!(jobs::release(&env.db, job.id, "w1", "database hiccup").await.unwrap());

    let released = jobs::get(&env.db, job.id).await.unwrap().unwrap();
    assert_eq!((released.status.as_str(), released.error_message.as_deref()), ("pending", Some("database hiccup")));
    assert!(matches!(jobs::claim(&env.db, job.id, "w2", lease).await.unwrap(), ClaimOutcome::Claimed(_)));
    assert_eq!(jobs::count_by_status(&env.db).await.unwrap(), vec![("running".to_owned(), 1)]);
    let counters = JobCounters::default();
    jobs::complete(&env.db, job.id, "w2", &counters, 5, 5, &serde_json::json!({})).await.unwrap();
}

#[tokio::test]
async fn memories_are_read_by_ids_locked_with_versions_and_listed_for_search() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let batch: Vec<_> = (0..3).map(|i| fixtures::memory("m", MemoryType::Learning, direction(i, 0.0))).collect();
    let mut no_embedding = fixtures::memory("no vector", MemoryType::Learning, direction(5, 0.0));
    no_embedding.embedding = None;
    fixtures::insert(&env.db, project.id, &batch).await;
    fixtures::insert(&env.db, project.id, std::slice::from_ref(&no_embedding)).await;
    let mut conn = env.db.acquire().await.unwrap();
    memories::archive(&mut conn, &[batch[0].id], consolidator::domain::ArchiveReason::Manual).await.unwrap();

    let ids = [batch[1].id, batch[2].id];
    assert_eq!(memories::get_many(&env.db, &ids).await.unwrap().len(), 2);
    let locked = memories::lock_versions(&mut conn, &[batch[0].id, batch[1].id]).await.unwrap();
    let archived = locked.iter().find(|row| row.0 == batch[0].id).unwrap();
    assert_eq!((archived.1, archived.2, archived.3), (2, true, false), "archiving moved the version");
    let candidates = |archived, memory_type| {
        memories::search_candidates(&env.db, project.id, archived, false, memory_type).try_collect::<Vec<_>>()
    };
    assert_eq!(candidates(false, None).await.unwrap().len(), 2, "no vector, or archived: not ranked");
    assert_eq!(candidates(true, None).await.unwrap().len(), 3);
    assert!(candidates(true, Some(MemoryType::Decision)).await.unwrap().is_empty());
}

#[tokio::test]
async fn playbook_entries_are_read_by_ids() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let entry = NewEntry {
        id: Uuid::new_v4(),
        content: "Pin the toolchain.".into(),
        category: "best_practice".into(),
        tags: vec!["ci".into()],
        priority: 7,
        supporting_memory_ids: vec![],
        embedding: None,
        source_memory_id: None,
    };
    let mut conn = env.db.acquire().await.unwrap();
    playbook::insert_batch(
        &mut conn,
        project.id,
        std::slice::from_ref(&entry),
        consolidator::domain::PlaybookOperation::Add,
        "test",
        None,
        "t",
    )
    .await
    .unwrap();

    let read = playbook::get_many(&env.db, &[entry.id, Uuid::new_v4()]).await.unwrap();

    assert_eq!(read.len(), 1);
    assert_eq!((read[0].priority, read[0].tags.clone(), read[0].is_active), (7, vec!["ci".to_owned()], true));
}

#[tokio::test]
async fn giving_up_never_fails_a_job_another_worker_holds_alive() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    jobs::claim(&env.db, job.id, "alive", Duration::from_secs(60)).await.unwrap();

    assert!(!jobs::fail_unless_held(&env.db, job.id, project.id, "gave up", Duration::from_secs(60)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let foreign = Uuid::new_v4();
    assert!(!jobs::fail_unless_held(&env.db, job.id, foreign, "gave up", Duration::from_millis(100)).await.unwrap());
    assert!(jobs::fail_unless_held(&env.db, job.id, project.id, "gave up", Duration::from_millis(100)).await.unwrap());
    assert_eq!(jobs::get(&env.db, job.id).await.unwrap().unwrap().status, "failed");
    assert_eq!(
        jobs::of_sweep(&env.db, Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap()).await.unwrap(),
        Vec::<Uuid>::new()
    );
}

#[tokio::test]
async fn a_heartbeat_after_the_workers_own_commit_finds_the_job_finished_not_lost() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    jobs::claim(&env.db, job.id, "me", Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        jobs::heartbeat(&env.db, job.id, "me", consolidator::domain::Phase::Planning, 0.2).await.unwrap(),
        jobs::Heartbeat::Renewed
    );

    let counters = jobs::JobCounters::default();
    assert!(jobs::complete(&env.db, job.id, "me", &counters, 1, 1, &serde_json::json!({})).await.unwrap());
    assert_eq!(
        jobs::heartbeat(&env.db, job.id, "me", consolidator::domain::Phase::Applying, 0.7).await.unwrap(),
        jobs::Heartbeat::Finished
    );

    let other = new_job(project.id);
    jobs::create(&env.db, &other).await.unwrap();
    jobs::claim(&env.db, other.id, "someone else", Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        jobs::heartbeat(&env.db, other.id, "me", consolidator::domain::Phase::Planning, 0.2).await.unwrap(),
        jobs::Heartbeat::Lost
    );
}

#[tokio::test]
async fn a_snapshot_is_recorded_whatever_sessions_the_workers_role_cannot_see() {
    use sqlx::{Connection, postgres::PgConnectOptions};
    use std::str::FromStr;

    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    // A worker connecting as a role without pg_read_all_stats, while another role's session is open.
    let role = format!("consolidator_t_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE ROLE {role} LOGIN")).execute(&env.db).await.unwrap();
    sqlx::query(&format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")).execute(&env.db).await.unwrap();
    let mut other = env.db.acquire().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *other).await.unwrap();
    let options = PgConnectOptions::from_str(&env.database_url()).unwrap().username(&role);
    let mut worker = sqlx::PgConnection::connect_with(&options).await.unwrap();

    let hidden: bool =
        sqlx::query_scalar("SELECT bool_or(state IS NULL) FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
            .fetch_one(&mut worker)
            .await
            .unwrap();
    let recorded = jobs::record_snapshot(&mut worker, job.id).await;
    worker.close().await.unwrap();
    drop(other);
    sqlx::query(&format!("DROP OWNED BY {role}")).execute(&env.db).await.unwrap();
    sqlx::query(&format!("DROP ROLE {role}")).execute(&env.db).await.unwrap();

    assert!(hidden, "this role cannot see the other session's state");
    let snapshot = recorded.expect("recorded without seeing other sessions");
    let row: Option<String> = sqlx::query_scalar("SELECT snapshot::text FROM consolidation_jobs WHERE id = $1")
        .bind(job.id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(row.as_deref(), Some(snapshot.as_str()));
    let committed: bool =
        sqlx::query_scalar("SELECT pg_visible_in_snapshot(pg_current_xact_id(), $1::text::pg_snapshot)")
            .bind(&snapshot)
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert!(!committed, "a transaction after the snapshot is not visible in it");
    let base = jobs::incremental_base(&env.db, project.id, Uuid::new_v4()).await.unwrap();
    assert!(base.is_none(), "a dry run is no base");
}

#[tokio::test]
async fn the_counts_triggers_keep_follow_every_write_and_the_job_histogram_every_completion() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let batch: Vec<_> = (0..4).map(|i| fixtures::memory("m", MemoryType::Learning, direction(i, 0.0))).collect();
    fixtures::insert(&env.db, project.id, &batch).await;
    let mut conn = env.db.acquire().await.unwrap();
    memories::archive(&mut conn, &[batch[0].id], consolidator::domain::ArchiveReason::Manual).await.unwrap();
    sqlx::query("UPDATE task_memories SET is_duplicate = true, duplicate_of = $2 WHERE id = $1")
        .bind(batch[1].id)
        .bind(batch[2].id)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE task_memories SET reused_count = reused_count + 1 WHERE project_id = $1")
        .bind(project.id)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM task_memories WHERE id = $1").bind(batch[3].id).execute(&mut *conn).await.unwrap();
    let page = projects::list_summaries(&env.db, Some(&[project.id]), None, 10).await.unwrap();
    let kept = (page[0].active_memories, page[0].duplicate_memories, page[0].archived_memories);
    assert_eq!(kept, (1, 1, 1));

    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    jobs::claim(&env.db, job.id, "w1", Duration::from_secs(60)).await.unwrap();
    sqlx::query("UPDATE consolidation_jobs SET started_at = now() - interval '3 seconds' WHERE id = $1")
        .bind(job.id)
        .execute(&env.db)
        .await
        .unwrap();
    assert_eq!(jobs::count_by_status(&env.db).await.unwrap(), vec![("running".to_owned(), 1)]);
    jobs::complete(&env.db, job.id, "w1", &JobCounters::default(), 4, 4, &serde_json::json!({})).await.unwrap();
    assert_eq!(jobs::count_by_status(&env.db).await.unwrap(), vec![("completed".to_owned(), 1)]);
    let histogram = jobs::duration_histogram(&mut conn).await.unwrap();
    assert_eq!(histogram.count, 1);
    assert!((3.0..4.0).contains(&histogram.sum), "{}", histogram.sum);
    let under_5s = histogram.bounds.iter().position(|bound| *bound == 5.0).unwrap();
    assert_eq!(histogram.buckets[under_5s], 1, "{histogram:?}");
}

#[tokio::test]
async fn a_history_row_reads_only_the_ids_of_what_its_job_created() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let job = new_job(project.id);
    jobs::create(&env.db, &job).await.unwrap();
    jobs::claim(&env.db, job.id, "w1", Duration::from_secs(60)).await.unwrap();
    let created = Uuid::new_v4();
    let result = serde_json::json!({"created_memory_ids": [created], "plan": {"merges": ["a large plan"]}});
    jobs::complete(&env.db, job.id, "w1", &JobCounters::default(), 2, 1, &result).await.unwrap();

    let page = jobs::history(&env.db, project.id, &HistoryFilter { limit: 5, ..Default::default() }).await.unwrap();

    assert_eq!(page.len(), 1);
    assert_eq!(page[0].created_memory_ids(), vec![created]);
    assert_eq!(
        page[0].result.as_ref().map(|r| r.0.clone()),
        Some(serde_json::json!({"created_memory_ids": [created]}))
    );
    let whole = jobs::get(&env.db, job.id).await.unwrap().unwrap();
    assert_eq!(whole.result.map(|r| r.0), Some(result), "the job's own read keeps it whole");
}
