//! Repeated consolidation on the real services (DESIGN.md §11): the second job folds re-learned
//! memories into the consolidated ones, runs incrementally, and rolls back exactly.

use consolidator::store::{jobs, memories};
use uuid::Uuid;

use crate::harness::*;

const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn run_job(env: &TestEnv, project_id: Uuid, options: serde_json::Value) -> jobs::Job {
    let command = trigger(project_id, options);
    publish_trigger(&env.bus, &command).await;
    wait_for_status(env, command.job_id, "completed", WAIT).await
}

/// New memories with the texts and embeddings of `originals`: the same facts learned again.
fn relearned(originals: &[consolidator::domain::NewMemory]) -> Vec<consolidator::domain::NewMemory> {
    originals
        .iter()
        .map(|m| consolidator::domain::NewMemory {
            id: Uuid::new_v4(),
            task_id: Some(format!("again-{}", m.id)),
            ..m.clone()
        })
        .collect()
}

/// A project with the standard scenario, a worker, and its first job run.
async fn consolidated_once(env: &TestEnv) -> (Uuid, Scenario, jobs::Job, crate::harness::RunningWorker) {
    let project = fixtures::project(&env.db, 1).await;
    let scenario = Scenario::new();
    fixtures::insert(&env.db, project.id, &scenario.all()).await;
    let worker = env.spawn_worker();
    let first = run_job(env, project.id, serde_json::json!({})).await;
    (project.id, scenario, first, worker)
}

async fn active_ids(env: &TestEnv, project_id: Uuid) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM task_memories WHERE project_id = $1 AND NOT is_duplicate AND NOT is_archived ORDER BY id",
    )
    .bind(project_id)
    .fetch_all(&env.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_second_job_folds_relearned_memories_into_the_consolidated_ones_incrementally() {
    let env = TestEnv::new().await;
    let (project_id, scenario, first, _worker) = consolidated_once(&env).await;
    let triple_c = memories::get(&env.db, scenario.triple[0].id).await.unwrap().unwrap().duplicate_of.unwrap();
    let pair_c = memories::get(&env.db, scenario.pair[0].id).await.unwrap().unwrap().duplicate_of.unwrap();
    let c = memories::get(&env.db, triple_c).await.unwrap().unwrap();
    assert_eq!(c.source_type.map(|t| t.as_str()), Some("error_fix"), "a consolidated memory keeps its sources' type");
    assert_eq!(c.task_ids.len(), 3, "and every source's task id");
    let copies: Vec<_> = relearned(&scenario.triple).into_iter().chain(relearned(&scenario.pair)).collect();
    fixtures::insert(&env.db, project_id, &copies).await;
    let before_second = active_ids(&env, project_id).await;

    let second = run_job(&env, project_id, serde_json::json!({})).await;

    assert_eq!(second.memories_merged, 5 + 2, "five copies and the two consolidated memories they repeat");
    let result = &second.result.as_ref().unwrap().0;
    assert_eq!(result["scope"]["mode"], "incremental", "{}", result["scope"]);
    assert!(result["scope"]["reason"].as_str().unwrap().contains(&first.id.to_string()));
    assert_eq!(result["scope"]["compared"], 5, "only the copies are new: {}", result["scope"]);
    let old = memories::get(&env.db, triple_c).await.unwrap().unwrap();
    assert!(old.is_duplicate, "the earlier consolidated memory is superseded, not deleted");
    let grown = memories::get(&env.db, old.duplicate_of.unwrap()).await.unwrap().unwrap();
    let mut from = grown.consolidated_from.clone().unwrap();
    from.sort();
    let mut expected: Vec<Uuid> = scenario.triple.iter().chain(&copies[..3]).map(|m| m.id).collect();
    expected.sort();
    assert_eq!(from, expected, "the original sources plus the copies, never a consolidated memory");
    assert_eq!(grown.source_type.map(|t| t.as_str()), Some("error_fix"));
    assert_eq!(grown.task_ids.len(), 6);
    assert!(memories::get(&env.db, pair_c).await.unwrap().unwrap().is_duplicate);
    for copy in &copies {
        assert!(memories::get(&env.db, copy.id).await.unwrap().unwrap().is_duplicate, "copy {} folded in", copy.id);
    }
    let syntheses: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_memories WHERE project_id = $1 AND memory_type = 'synthesis' AND NOT is_duplicate",
    )
    .bind(project_id)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(syntheses, 1, "the topic's synthesis is rebuilt around the grown consolidated memory");
    let old_synthesis: Uuid =
        serde_json::from_value(first.result.as_ref().unwrap().0["syntheses"][0]["memory_id"].clone()).unwrap();
    assert!(memories::get(&env.db, old_synthesis).await.unwrap().unwrap().is_duplicate, "the old one is replaced");

    let refused = rollback(&env, project_id, first.id, Uuid::new_v4()).await;
    assert_eq!(refused.event, "refused");
    assert!(refused.conflicts.contains(&triple_c), "the conflict is named: {:?}", refused.conflicts);

    let undone = rollback(&env, project_id, second.id, Uuid::new_v4()).await;
    assert_eq!(undone.event, "completed", "{:?}", undone.error);
    assert_eq!(active_ids(&env, project_id).await, before_second, "the earlier state, exactly");
    assert!(!memories::get(&env.db, triple_c).await.unwrap().unwrap().is_duplicate);

    // The next job builds on the first one again and finds what the rollback put back.
    let third = run_job(&env, project_id, serde_json::json!({})).await;
    let scope = &third.result.as_ref().unwrap().0["scope"];
    assert_eq!(scope["mode"], "incremental");
    assert!(scope["reason"].as_str().unwrap().contains(&first.id.to_string()), "{scope}");
    assert_eq!(third.memories_merged, 7, "the restored copies fold in again");
}

#[tokio::test]
async fn a_forced_incremental_run_over_other_options_is_never_the_base_of_the_next() {
    let env = TestEnv::new().await;
    let (project_id, scenario, _first, _worker) = consolidated_once(&env).await;
    fixtures::insert(&env.db, project_id, &relearned(&scenario.pair)).await;

    let forced =
        run_job(&env, project_id, serde_json::json!({"mode": "incremental", "similarity_threshold": 0.85})).await;
    let next = run_job(&env, project_id, serde_json::json!({"similarity_threshold": 0.85})).await;

    let forced_result = &forced.result.as_ref().unwrap().0;
    assert_eq!(forced_result["scope"]["mode"], "incremental");
    assert!(forced_result["clustering"].is_null(), "it did not judge the older pairs at 0.85");
    let scope = &next.result.as_ref().unwrap().0["scope"];
    assert_eq!(scope["mode"], "full", "{scope}");
    assert!(scope["reason"].as_str().unwrap().contains("recorded no clustering snapshot"), "{scope}");
}

#[tokio::test]
async fn mode_full_compares_every_pair_and_says_so() {
    let env = TestEnv::new().await;
    let (project_id, scenario, first, _worker) = consolidated_once(&env).await;
    assert_eq!(first.result.as_ref().unwrap().0["scope"]["mode"], "full");
    fixtures::insert(&env.db, project_id, &relearned(&scenario.pair)).await;

    let second = run_job(&env, project_id, serde_json::json!({"mode": "full"})).await;

    let scope = &second.result.as_ref().unwrap().0["scope"];
    assert_eq!(scope["mode"], "full");
    assert_eq!(scope["reason"], "mode full: every pair compared");
    assert_eq!(second.memories_merged, 3, "the pair's copies and its consolidated memory");
}

/// The active playbook entry whose source is `memory_id`: its id and supporters.
async fn entry_from(env: &TestEnv, memory_id: Uuid) -> Option<(Uuid, Vec<Uuid>)> {
    sqlx::query_as("SELECT id, supporting_memory_ids FROM playbook_entries WHERE source_memory_id = $1 AND is_active")
        .bind(memory_id)
        .fetch_optional(&env.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_playbook_entry_follows_its_cluster_as_it_grows_is_rolled_back_and_unmerged() {
    let env = TestEnv::new().await;
    let (project_id, scenario, _first, _worker) = consolidated_once(&env).await;
    let triple_c = memories::get(&env.db, scenario.triple[0].id).await.unwrap().unwrap().duplicate_of.unwrap();
    let (entry, supporters) = entry_from(&env, triple_c).await.expect("the triple is promoted");
    assert_eq!(supporters.len(), 3);
    let entries = |env: &TestEnv| {
        let db = env.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM playbook_entries WHERE project_id = $1 AND is_active")
                .bind(project_id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let count = entries(&env).await;
    let copies = relearned(&scenario.triple[..1]);
    fixtures::insert(&env.db, project_id, &copies).await;

    let second = run_job(&env, project_id, serde_json::json!({})).await;
    let grown = memories::get(&env.db, triple_c).await.unwrap().unwrap().duplicate_of.expect("grown");
    let (followed, supporters) = entry_from(&env, grown).await.expect("the entry follows the grown cluster");
    assert_eq!(followed, entry, "the same entry, not a second one");
    assert!(supporters.contains(&copies[0].id), "the re-learned memory supports it: {supporters:?}");
    assert_eq!(supporters.len(), 4);
    assert_eq!(entries(&env).await, count);
    let content: String = sqlx::query_scalar("SELECT content FROM playbook_entries WHERE id = $1")
        .bind(entry)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(content, memories::get(&env.db, grown).await.unwrap().unwrap().execution_summary);

    let undone = rollback(&env, project_id, second.id, Uuid::new_v4()).await;
    assert_eq!(undone.event, "completed", "{:?}", undone.error);
    assert_eq!(entry_from(&env, triple_c).await.map(|e| e.0), Some(entry), "back with its cluster");

    run_job(&env, project_id, serde_json::json!({})).await;
    let grown = memories::get(&env.db, triple_c).await.unwrap().unwrap().duplicate_of.expect("grown again");
    assert_eq!(entry_from(&env, grown).await.map(|e| e.0), Some(entry));
    let mut conn = env.db.acquire().await.unwrap();
    let request = consolidator::store::undo::unmerge::Request {
        project_id,
        memory_id: grown,
        requested_by: "test",
        reason: None,
        window_days: 7,
    };
    let unmerged = consolidator::store::undo::unmerge::unmerge(&mut conn, &request).await.unwrap();
    assert!(unmerged.is_ok(), "{:?}", unmerged.err());
    let (back, supporters) = entry_from(&env, triple_c).await.expect("the unmerge moves it back");
    assert_eq!((back, supporters.len()), (entry, 3));
    assert_eq!(entries(&env).await, count);
}
