//! The live store (DESIGN.md §6, §11): usage, undo in any order and at the grain of one cluster,
//! while agents keep using the store.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use uuid::Uuid;

use crate::harness::*;

async fn memory(gateway: &TestGateway, id: &str) -> Value {
    ok(gateway.get(&format!("/api/v1/memories/{id}")).send().await.expect("sent"), StatusCode::OK).await
}

/// Reuses over the memories a reader sees as live (active or archived, not merged away, not retired).
async fn live_reuses(gateway: &TestGateway, project: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(reused_count), 0)::bigint FROM task_memories
          WHERE project_id = $1 AND NOT is_duplicate AND archive_reason IS DISTINCT FROM 'rolled_back'
            AND archive_reason IS DISTINCT FROM 'unmerged'",
    )
    .bind(project)
    .fetch_one(&gateway.env.db)
    .await
    .expect("sum")
}

/// Memories written and consolidated through the gateway: their ids, and the memory the first
/// three were merged into.
async fn consolidated(gateway: &TestGateway, project: Uuid) -> (Vec<Uuid>, String) {
    let stored = ingest(gateway, project, &clustered_memories()).await;
    let status = consolidate(gateway, project).await;
    assert_eq!(status["status"], "completed", "{status}");
    let source = memory(gateway, &stored[0].to_string()).await;
    (stored, source["provenance"]["consolidated_into"].as_str().expect("merged").to_owned())
}

async fn reuse(gateway: &TestGateway, id: &str) -> Value {
    ok(gateway.post(&format!("/api/v1/memories/{id}/reuse"), &json!({})).send().await.expect("sent"), StatusCode::OK)
        .await
}

/// Copies of the three-member cluster that an agent learns again.
fn relearned() -> Vec<Value> {
    vec![
        memory_json("Retry the flaky upload with backoff; it works.", "error_fix", direction(0, 0.02)),
        memory_json("A flaky upload is fixed by retrying with backoff.", "error_fix", direction(0, 0.04)),
    ]
}

#[tokio::test]
async fn a_reuse_does_not_block_a_rollback_and_the_reuses_survive_it() {
    let gateway = TestGateway::start_with(|config| config.rollback_wait_ms = 8000).await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let stored = ingest(&gateway, project, &clustered_memories()).await;
    reuse(&gateway, &stored[0].to_string()).await;
    let status = consolidate(&gateway, project).await;
    assert_eq!(status["status"], "completed", "{status}");
    let source = memory(&gateway, &stored[0].to_string()).await;
    let created = source["provenance"]["consolidated_into"].as_str().expect("merged").to_owned();
    let before = live_reuses(&gateway, project).await;
    let counted = reuse(&gateway, &created).await;
    assert_eq!(counted["version"], 1, "usage is not an edit");
    // A reuse of a merged source counts on the memory it was merged into.
    let holder = reuse(&gateway, &stored[1].to_string()).await;
    assert_eq!(holder["id"], json!(created));
    assert_eq!(live_reuses(&gateway, project).await, before + 2);

    let result = ok(post_rollback(&gateway, json!({"consolidation_id": status["job_id"]})).await, StatusCode::OK).await;
    assert_eq!(result["success"], true, "{result}");
    let retired = memory(&gateway, &created).await;
    assert_eq!(
        (retired["is_archived"].clone(), retired["archive_reason"].clone()),
        (json!(true), json!("rolled_back"))
    );
    assert!(retired["execution_summary"].as_str().is_some_and(|text| !text.is_empty()), "kept and readable");
    assert_eq!(live_reuses(&gateway, project).await, before + 2, "no reuse is lost with the retired memory");
    let unarchive = gateway.post(&format!("/api/v1/memories/{created}/unarchive"), &json!({})).send().await;
    error(unarchive.expect("sent"), StatusCode::CONFLICT, "conflict").await;
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn newest_first_undo_works_and_an_older_job_under_a_standing_one_is_refused_or_cascaded() {
    let gateway = TestGateway::start_with(|config| config.rollback_wait_ms = 8000).await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;
    let first = consolidate(&gateway, project).await;
    assert_eq!(first["status"], "completed", "{first}");
    let active_after_first = active_ids(&gateway, project).await;
    ingest(&gateway, project, &relearned()).await;
    let second = consolidate(&gateway, project).await;
    assert_eq!(second["status"], "completed", "{second}");
    assert!(second["counters"]["memories_merged"].as_i64().is_some_and(|n| n >= 2), "the copies fold in: {second}");

    // The older job under a standing later one: refused, naming the later job.
    let refused = post_rollback(&gateway, json!({"consolidation_id": first["job_id"]})).await;
    let message = error(refused, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains(second["job_id"].as_str().expect("id")), "{message}");

    // Newest first: both go back.
    ok(post_rollback(&gateway, json!({"consolidation_id": second["job_id"]})).await, StatusCode::OK).await;
    assert_eq!(active_ids(&gateway, project).await.len(), active_after_first.len() + relearned().len());
    let undone = ok(post_rollback(&gateway, json!({"consolidation_id": first["job_id"]})).await, StatusCode::OK).await;
    assert_eq!(undone["success"], true, "{undone}");
    assert_eq!(active_ids(&gateway, project).await.len(), clustered_memories().len() + relearned().len());

    // Cascade: the same two jobs again, undone in one request from the older one.
    let third = consolidate(&gateway, project).await;
    ingest(&gateway, project, &[memory_json("Upload flaky? Retry it, with backoff.", "error_fix", direction(0, 0.05))])
        .await;
    let fourth = consolidate(&gateway, project).await;
    assert!(fourth["counters"]["memories_merged"].as_i64().is_some_and(|n| n >= 1), "{fourth}");
    let cascade = json!({"consolidation_id": third["job_id"], "cascade": true});
    let both = ok(post_rollback(&gateway, cascade).await, StatusCode::OK).await;
    assert_eq!(both["later_jobs"], json!([fourth["job_id"]]), "{both}");
    assert_eq!(active_ids(&gateway, project).await.len(), clustered_memories().len() + relearned().len() + 1);
    let again = ok(post_rollback(&gateway, json!({"consolidation_id": fourth["job_id"]})).await, StatusCode::OK).await;
    assert_eq!(again["rollback_id"], both["rollback_id"], "the cascade that undid it answers: {again}");
    for job in [&third, &fourth] {
        let path = format!("/api/v1/consolidation/status/{}", job["job_id"].as_str().expect("id"));
        let status = ok(gateway.get(&path).send().await.expect("sent"), StatusCode::OK).await;
        assert!(status["rolled_back_at"].is_string(), "{status}");
    }
    worker.stop().await;
    gateway.stop().await;
}

async fn active_ids(gateway: &TestGateway, project: Uuid) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM task_memories WHERE project_id = $1 AND NOT is_archived AND NOT is_duplicate ORDER BY id",
    )
    .bind(project)
    .fetch_all(&gateway.env.db)
    .await
    .expect("ids")
}

#[tokio::test]
async fn unmerge_restores_a_clusters_sources_and_the_next_job_keeps_them_apart() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let stored = ingest(&gateway, project, &clustered_memories()).await;
    let status = consolidate(&gateway, project).await;
    assert_eq!(status["status"], "completed", "{status}");
    let source = memory(&gateway, &stored[0].to_string()).await;
    let merged = source["provenance"]["consolidated_into"].as_str().expect("merged").to_owned();
    reuse(&gateway, &merged).await;
    let reuses = live_reuses(&gateway, project).await;

    let unmerged = gateway.post(&format!("/api/v1/memories/{merged}/unmerge"), &json!({"reason": "not the same"}));
    let unmerged = ok(unmerged.send().await.expect("sent"), StatusCode::OK).await;
    let mut restored: Vec<Uuid> = serde_json::from_value(unmerged["restored"].clone()).expect("restored");
    restored.sort();
    let mut cluster = stored[..3].to_vec();
    cluster.sort();
    assert_eq!(restored, cluster, "{unmerged}");
    assert_eq!(unmerged["kept_apart"], 3);
    let retired = memory(&gateway, &merged).await;
    assert_eq!(retired["archive_reason"], "unmerged");
    assert_eq!(live_reuses(&gateway, project).await, reuses, "the reuse went back to a source");
    let again = gateway.post(&format!("/api/v1/memories/{merged}/unmerge"), &json!({})).send().await;
    error(again.expect("sent"), StatusCode::CONFLICT, "conflict").await;

    let next =
        gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project, "options": {"mode": "full"}}));
    let job_id =
        ok(next.send().await.expect("sent"), StatusCode::ACCEPTED).await["job_id"].as_str().unwrap().to_owned();
    let next =
        wait_for_status(&gateway.env, job_id.parse().unwrap(), "completed", std::time::Duration::from_secs(60)).await;
    let active = active_ids(&gateway, project).await;
    assert!(stored[..3].iter().all(|id| active.contains(id)), "the unmerged sources stay apart: {:?}", next.result);

    // The job inside the window can still be rolled back as a whole: the unmerged cluster is
    // left as the unmerge left it.
    let whole = ok(post_rollback(&gateway, json!({"consolidation_id": status["job_id"]})).await, StatusCode::OK).await;
    assert_eq!(whole["success"], true, "{whole}");
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_rollback_of_a_job_whose_audit_rows_were_purged_is_gone() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;
    let status = consolidate(&gateway, project).await;
    worker.stop().await;
    let job_id: Uuid = status["job_id"].as_str().expect("id").parse().expect("uuid");
    let purged = consolidator::store::changes::delete_older_than(&gateway.env.db, chrono::Utc::now()).await.unwrap();
    assert!(purged > 0);
    let message =
        error(post_rollback(&gateway, json!({"consolidation_id": job_id})).await, StatusCode::GONE, "gone").await;
    assert!(message.contains("AUDIT_RETENTION_DAYS"), "{message}");
    gateway.stop().await;
}

#[tokio::test]
async fn export_then_import_into_a_fresh_database_keeps_the_whole_state_and_exports_the_same_file() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let (stored, _) = consolidated(&gateway, project).await;
    worker.stop().await;
    reuse(&gateway, &stored[5].to_string()).await;
    let archive = gateway.post(&format!("/api/v1/memories/{}/archive", stored[6]), &json!({})).send().await;
    ok(archive.expect("sent"), StatusCode::OK).await;

    let mut first = Vec::new();
    let written = consolidator::interchange::export(&gateway.env.db, project, &mut first).await.expect("export");
    let fresh = TestEnv::new().await;
    let copy = fixtures::project(&fresh.db, 10).await;
    let read = consolidator::interchange::import(&fresh.db, copy.id, first.as_slice()).await.expect("import");
    assert_eq!(read, written);
    let mut second = Vec::new();
    consolidator::interchange::export(&fresh.db, copy.id, &mut second).await.expect("export again");
    assert_eq!(String::from_utf8_lossy(&first), String::from_utf8_lossy(&second), "export, import, export is stable");

    let count = |db: sqlx::PgPool, project: Uuid| async move {
        consolidator::store::projects::active_memory_count(&db, project).await.expect("count")
    };
    assert_eq!(count(fresh.db.clone(), copy.id).await, count(gateway.env.db.clone(), project).await);
    let source = consolidator::store::memories::get(&fresh.db, stored[0]).await.unwrap().expect("imported");
    assert!(source.is_duplicate && source.duplicate_of.is_some(), "the duplicate mark and its target came along");
    let archived = consolidator::store::memories::get(&fresh.db, stored[6]).await.unwrap().expect("imported");
    assert_eq!(archived.archive_reason, Some(consolidator::domain::ArchiveReason::Manual));
    gateway.stop().await;
}

/// The seeded live-store simulation, short form (DESIGN.md §11); `consolidator bench soak` runs
/// it long. A seed that ever fails is added here.
async fn soak(seed: u64, steps: usize) -> consolidator::soak::SoakReport {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();
    let project = fixtures::project(&env.db, 10).await;
    let config = consolidator::soak::SoakConfig { steps, seed };
    let retention = consolidator::config::RetentionConfig::default();
    let report = consolidator::soak::run(env.db.clone(), env.bus.clone(), project.id, retention, config).await;
    worker.stop().await;
    let report = report.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(report.invariant_checks, steps);
    let did = |prefix: &str| report.actions.iter().any(|(action, n)| action.starts_with(prefix) && *n > 0);
    for action in ["ingest", "reuse:counted", "job:changed", "rollback:", "dry_then_real"] {
        assert!(did(action), "seed {seed}: no {action} step in {:?}", report.actions);
    }
    eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
    report
}

#[tokio::test]
async fn the_live_store_simulation_holds_on_seed_1() {
    soak(1, 400).await;
}

#[tokio::test]
async fn the_live_store_simulation_holds_on_seed_2() {
    soak(2, 400).await;
}

#[tokio::test]
async fn the_live_store_simulation_holds_on_seed_3() {
    soak(3, 400).await;
}

/// The merges a job reports, as sorted sets of source ids (a dry run's plan or a real run's result).
fn merged_sets(result: &Value) -> Vec<Vec<String>> {
    let merges = result["plan"]["merges"].as_array().or_else(|| result["merges"].as_array()).cloned();
    let id = |source: &Value| source["id"].as_str().or_else(|| source.as_str()).unwrap_or_default().to_owned();
    let mut sets: Vec<Vec<String>> = merges
        .unwrap_or_default()
        .iter()
        .map(|merge| {
            let mut ids: Vec<String> =
                merge["sources"].as_array().map(|s| s.iter().map(id).collect()).unwrap_or_default();
            ids.sort();
            ids
        })
        .collect();
    sets.sort();
    sets
}

#[tokio::test]
async fn on_the_real_text_set_a_real_job_with_the_default_guard_completes_as_its_dry_run_predicted() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();
    let project = fixtures::project(&env.db, 10).await;
    let file = std::fs::File::open("testdata/realtext/memories.jsonl").expect("the real-text set");
    consolidator::interchange::import(&env.db, project.id, std::io::BufReader::new(file)).await.expect("imported");
    let options = json!({"similarity_threshold": 0.90, "cross_type": true, "archive": false, "mode": "full"});
    let run = |dry_run: bool| {
        let mut options = options.clone();
        options["dry_run"] = json!(dry_run);
        trigger(project.id, options)
    };
    let dry = run(true);
    publish_trigger(&env.bus, &dry).await;
    let dry = wait_for_status(&env, dry.job_id, "completed", std::time::Duration::from_secs(120)).await;
    let real = run(false);
    publish_trigger(&env.bus, &real).await;
    let real = wait_for_status(&env, real.job_id, "completed", std::time::Duration::from_secs(120)).await;
    worker.stop().await;

    assert_eq!(dry.counters(), real.counters());
    assert_eq!(dry.memories_after, real.memories_after);
    assert!(real.counters().memories_merged > 100, "{:?}", real.counters());
    let (dry_result, real_result) = (dry.result.expect("plan").0, real.result.expect("result").0);
    assert!(!merged_sets(&real_result).is_empty(), "{real_result}");
    assert_eq!(dry_result["plan"]["truncated"], false, "the whole plan is reported");
    assert_eq!(merged_sets(&dry_result), merged_sets(&real_result), "the same clusters merge");
    let reviews = real_result["guards"]["value_guard"]["reviews_opened"].as_u64().unwrap_or_default();
    let proposed = dry_result["guards"]["value_guard"]["reviews_proposed"].as_u64().unwrap_or_default();
    assert_eq!(reviews, proposed, "the reviews the dry run proposed were opened: {real_result}");
}

#[tokio::test]
async fn on_the_bench_data_a_dry_run_predicts_the_real_run() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();
    let project = fixtures::project(&env.db, 10).await;
    let memories = consolidator::synthetic::synthetic_memories(800, 64, 42);
    consolidator::interchange::load(&env.db, project.id, &memories).await.expect("loaded");
    let mut jobs = Vec::new();
    for dry_run in [true, false] {
        let command = trigger(project.id, json!({"dry_run": dry_run}));
        publish_trigger(&env.bus, &command).await;
        jobs.push(wait_for_status(&env, command.job_id, "completed", std::time::Duration::from_secs(120)).await);
    }
    worker.stop().await;
    let (dry, real) = (&jobs[0], &jobs[1]);
    assert_eq!(dry.counters(), real.counters());
    assert!(real.counters().memories_merged > 0 && real.counters().memories_archived > 0, "{:?}", real.counters());
    assert_eq!(dry.memories_after, real.memories_after);
    let (dry_result, real_result) = (&dry.result.as_ref().expect("plan").0, &real.result.as_ref().expect("result").0);
    assert_eq!(dry_result["plan"]["truncated"], false, "the whole plan is reported");
    assert_eq!(merged_sets(dry_result), merged_sets(real_result), "the same clusters merge");
}

#[tokio::test]
async fn cmd_unmerge_acts_only_on_its_project_and_announces_what_it_did() {
    use consolidator::bus::{
        CommandKind,
        messages::{DeadLetter, SCHEMA_VERSION, UnmergeCommand, UnmergeEvent},
    };
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let other = gateway.project().await;
    let (_, merged) = consolidated(&gateway, project).await;
    let merged: Uuid = merged.parse().expect("uuid");
    let bus = &gateway.env.bus;
    let command = |project_id: Uuid| UnmergeCommand {
        schema_version: SCHEMA_VERSION,
        project_id,
        memory_id: merged,
        reason: Some("two facts".to_owned()),
        requested_by: "another-service".to_owned(),
    };

    bus.publish_command(CommandKind::Unmerge, "wrong-project", &command(other)).await.expect("published");
    let letters =
        events_until::<DeadLetter>(bus, bus.prefix.dead_letter("unmerge"), Duration::from_secs(15), |_| true).await;
    assert!(letters.iter().any(|(_, letter)| letter.reason.contains("does not exist")), "{letters:?}");
    assert_eq!(memory(&gateway, &merged.to_string()).await["is_archived"], false, "nothing changed");

    bus.publish_command(CommandKind::Unmerge, &format!("unmerge:{merged}"), &command(project))
        .await
        .expect("published");
    let subject = bus.prefix.memory_unmerged(project, merged);
    let events = events_until::<UnmergeEvent>(bus, subject, Duration::from_secs(15), |_| true).await;
    let event = &events.last().expect("the unmerged event").1;
    assert_eq!((event.memory_id, event.restored.len()), (merged, 3), "{event:?}");
    assert_eq!(memory(&gateway, &merged.to_string()).await["archive_reason"], "unmerged");
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_reuse_between_the_snapshot_and_the_apply_is_carried_and_skips_nothing() {
    use consolidator::domain::MemoryType;
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let cluster: Vec<_> = [0.0, 0.03, 0.06]
        .iter()
        .map(|tilt| fixtures::memory("Retry the flaky upload with backoff.", MemoryType::ErrorFix, direction(0, *tilt)))
        .collect();
    fixtures::insert(&env.db, project.id, &cluster).await;
    // An agent holds the first source while the job plans; the apply waits for it.
    let mut agent = env.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM task_memories WHERE id = $1 FOR UPDATE")
        .bind(cluster[0].id)
        .execute(&mut *agent)
        .await
        .unwrap();
    let worker = env.spawn_worker();
    let command = trigger(project.id, json!({"max_changed_share": 1.0, "summarize": false, "promote": false}));
    publish_trigger(&env.bus, &command).await;
    eventually(Duration::from_secs(30), || async {
        let job = consolidator::store::jobs::get(&env.db, command.job_id).await.ok()??;
        (job.phase == consolidator::domain::Phase::Applying).then_some(())
    })
    .await
    .expect("the job reached its apply");
    consolidator::store::memories::record_reuse(&mut *agent, cluster[0].id).await.unwrap();
    agent.commit().await.unwrap();

    let job = wait_for_status(&env, command.job_id, "completed", Duration::from_secs(30)).await;
    worker.stop().await;
    let result = job.typed_result().expect("result");
    let applied = result.applied.expect("applied");
    assert!(applied.skipped_changed_memories.is_empty(), "a reuse is not a change: {applied:?}");
    let merged = consolidator::store::memories::get(&env.db, applied.merges[0].memory_id).await.unwrap().unwrap();
    assert_eq!(merged.reused_count, 3 * 5 + 1, "the late reuse is carried to the consolidated memory");
}

#[tokio::test]
async fn a_job_whose_only_cluster_was_unmerged_still_rolls_back() {
    let gateway = TestGateway::start_with(|config| config.rollback_wait_ms = 8000).await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let stored = ingest(&gateway, project, &clustered_memories()[..3]).await;
    let status = consolidate(&gateway, project).await;
    assert_eq!(status["counters"]["memories_merged"], 3, "{status}");
    let merged = memory(&gateway, &stored[0].to_string()).await["provenance"]["consolidated_into"]
        .as_str()
        .expect("merged")
        .to_owned();
    let unmerge = gateway.post(&format!("/api/v1/memories/{merged}/unmerge"), &json!({})).send().await;
    ok(unmerge.expect("sent"), StatusCode::OK).await;

    let undone = ok(post_rollback(&gateway, json!({"consolidation_id": status["job_id"]})).await, StatusCode::OK).await;
    assert_eq!(undone["success"], true, "{undone}");
    assert_eq!(active_ids(&gateway, project).await.len(), 3, "the sources stay active, nothing else changes");
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_pinned_memory_stays_out_of_every_merge_until_it_is_unpinned() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let stored = ingest(&gateway, project, &clustered_memories()).await;
    let pin = |id: Uuid, action: &'static str| gateway.post(&format!("/api/v1/memories/{id}/{action}"), &json!({}));
    let pinned = ok(pin(stored[0], "pin").send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!((pinned["pinned"].clone(), pinned["version"].clone()), (json!(true), json!(2)), "a pin is an edit");
    error(pin(stored[0], "pin").send().await.expect("sent"), StatusCode::CONFLICT, "conflict").await;

    let status = consolidate(&gateway, project).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"]["guards"]["merge_policy"]["pinned"], 1, "{status}");
    let kept = memory(&gateway, &stored[0].to_string()).await;
    assert_eq!(kept["provenance"]["consolidated_into"], Value::Null, "{kept}");
    let other = memory(&gateway, &stored[1].to_string()).await;
    assert!(other["provenance"]["consolidated_into"].is_string(), "the rest of the cluster still merges: {other}");

    let unpinned = ok(pin(stored[0], "unpin").send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(unpinned["pinned"], false);
    error(pin(stored[0], "unpin").send().await.expect("sent"), StatusCode::CONFLICT, "conflict").await;
    let pins: Vec<(Value, Value)> = sqlx::query_as::<_, (sqlx::types::Json<Value>, sqlx::types::Json<Value>)>(
        "SELECT previous_state, new_state FROM consolidation_changes WHERE memory_id = $1 AND operation = 'pin'
          ORDER BY id",
    )
    .bind(stored[0])
    .fetch_all(&gateway.env.db)
    .await
    .expect("audit rows")
    .into_iter()
    .map(|(previous, new)| (previous.0, new.0))
    .collect();
    assert_eq!(pins.len(), 2, "{pins:?}");
    assert_eq!((pins[0].0["pinned"].clone(), pins[0].1["pinned"].clone()), (json!(false), json!(true)));
    let again = consolidate(&gateway, project).await;
    assert_eq!(again["status"], "completed", "{again}");
    let folded = memory(&gateway, &stored[0].to_string()).await;
    assert!(folded["provenance"]["consolidated_into"].is_string(), "unpinned, it folds in: {folded}");
    error(pin(stored[1], "pin").send().await.expect("sent"), StatusCode::CONFLICT, "conflict").await;
    worker.stop().await;
    gateway.stop().await;
}
