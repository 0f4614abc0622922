use std::collections::BTreeSet;

use consolidator::store::{self, db};
use uuid::Uuid;

use crate::harness::*;

const OUR_TABLES: [&str; 11] = [
    "projects",
    "task_memories",
    "memory_files",
    "playbook_entries",
    "playbook_changes",
    "consolidation_jobs",
    "consolidation_changes",
    "consolidation_rollbacks",
    "consolidation_sweeps",
    "admin_actions",
    "workers",
];

async fn tables(env: &TestEnv) -> Vec<String> {
    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        .fetch_all(&env.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrations_apply_to_a_fresh_database_and_revert_to_nothing_and_apply_again() {
    let env = TestEnv::without_migrations().await;

    db::migrate_up(&env.db).await.expect("up");
    let created = tables(&env).await;
    for table in OUR_TABLES {
        assert!(created.iter().any(|t| t == table), "{table} missing after up: {created:?}");
    }
    assert!(db::migration_status(&env.db).await.unwrap().iter().all(|m| m.applied));

    db::migrate_down(&env.db, 0).await.expect("down to zero");
    let left = tables(&env).await;
    for table in OUR_TABLES {
        assert!(!left.iter().any(|t| t == table), "{table} left after down: {left:?}");
    }
    assert!(db::migration_status(&env.db).await.unwrap().iter().all(|m| !m.applied));

    db::migrate_up(&env.db).await.expect("up again");
    assert_eq!(tables(&env).await.iter().filter(|t| OUR_TABLES.contains(&t.as_str())).count(), OUR_TABLES.len());
}

#[tokio::test]
async fn migrate_down_to_a_version_keeps_the_older_migrations() {
    let env = TestEnv::new().await;
    let first = db::migration_status(&env.db).await.unwrap()[0].version;

    db::migrate_down(&env.db, first).await.expect("down to the first migration");

    let left = tables(&env).await;
    assert!(left.iter().any(|t| t == "task_memories"));
    assert!(!left.iter().any(|t| t == "consolidation_jobs"));
}

async fn rejects(env: &TestEnv, sql: &str, constraint: &str) {
    let error = sqlx::query(sql).execute(&env.db).await.expect_err("the database must refuse it");
    assert_eq!(store::violated_constraint(&error), Some(constraint), "{sql}: {error}");
}

#[tokio::test]
async fn the_database_rejects_unknown_statuses_types_reasons_and_operations() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let p = project.id;
    let job = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO consolidation_jobs (id, project_id, trigger_type, triggered_by) VALUES ($1, $2, 'manual', 't')",
    )
    .bind(job)
    .bind(p)
    .execute(&env.db)
    .await
    .unwrap();

    rejects(
        &env,
        &format!("UPDATE consolidation_jobs SET status = 'paused' WHERE id = '{job}'"),
        "consolidation_jobs_status_check",
    )
    .await;
    rejects(
        &env,
        &format!("INSERT INTO consolidation_jobs (id, project_id, trigger_type, triggered_by) VALUES ('{}', '{p}', 'cron', 't')", Uuid::new_v4()),
        "consolidation_jobs_trigger_type_check",
    )
    .await;
    rejects(
        &env,
        &format!("INSERT INTO task_memories (id, project_id, execution_summary, memory_type) VALUES ('{}', '{p}', 'x', 'rumour')", Uuid::new_v4()),
        "task_memories_memory_type_check",
    )
    .await;
    rejects(
        &env,
        &format!(
            "INSERT INTO task_memories (id, project_id, execution_summary, memory_type, is_archived, archive_reason)
             VALUES ('{}', '{p}', 'x', 'learning', true, 'boredom')",
            Uuid::new_v4()
        ),
        "task_memories_archive_reason_check",
    )
    .await;
    rejects(
        &env,
        &format!(
            "INSERT INTO consolidation_changes (job_id, project_id, operation, memory_id, changed_by)
             VALUES ('{job}', '{p}', 'teleport', '{}', 't')",
            Uuid::new_v4()
        ),
        "consolidation_changes_operation_check",
    )
    .await;
    rejects(
        &env,
        &format!("UPDATE projects SET consolidation_threshold = 0 WHERE id = '{p}'"),
        "projects_threshold_check",
    )
    .await;
}

#[tokio::test]
async fn audit_rows_survive_the_deletion_of_the_memory_they_describe() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let memory = fixtures::memory("gone soon", consolidator::domain::MemoryType::Learning, fixtures::direction(0, 0.0));
    fixtures::insert(&env.db, project.id, std::slice::from_ref(&memory)).await;
    let mut conn = env.db.acquire().await.unwrap();
    store::changes::insert_batch(
        &mut conn,
        None,
        project.id,
        "test",
        &[store::changes::NewChange {
            operation: consolidator::domain::ChangeOperation::Archive,
            memory_id: memory.id,
            previous_state: None,
            new_state: Some(serde_json::json!({"is_archived": true})),
            reason: "manual".to_owned(),
            confidence: None,
        }],
    )
    .await
    .unwrap();

    sqlx::query("DELETE FROM task_memories WHERE id = $1").bind(memory.id).execute(&mut *conn).await.unwrap();

    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM consolidation_changes WHERE memory_id = $1")
        .bind(memory.id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(remaining, 1);
}

#[tokio::test]
async fn a_change_moves_a_memory_version_and_a_reuse_does_not() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let memory = fixtures::memory("versioned", consolidator::domain::MemoryType::Learning, fixtures::direction(0, 0.0));
    fixtures::insert(&env.db, project.id, std::slice::from_ref(&memory)).await;

    store::memories::record_reuse(&env.db, memory.id).await.unwrap();
    store::memories::record_reuse(&env.db, memory.id).await.unwrap();
    let reused = store::memories::get(&env.db, memory.id).await.unwrap().unwrap();
    assert_eq!((reused.version, reused.reused_count), (1, 7), "usage is not an edit");
    assert_eq!(reused.updated_at, reused.created_at, "a reuse leaves updated_at alone (incremental mode reads it)");

    let mut conn = env.db.acquire().await.unwrap();
    store::memories::archive(&mut conn, &[memory.id], consolidator::domain::ArchiveReason::Manual).await.unwrap();
    let archived = store::memories::get(&env.db, memory.id).await.unwrap().unwrap();
    assert_eq!(archived.version, 2);
}

/// A consolidated memory as the schema before the steady-state migration held it.
async fn insert_consolidated(env: &TestEnv, project_id: Uuid, id: Uuid, from: &[Uuid]) {
    sqlx::query(
        "INSERT INTO task_memories (id, project_id, execution_summary, memory_type, consolidated_from)
         VALUES ($1, $2, 'merged', 'consolidated', $3)",
    )
    .bind(id)
    .bind(project_id)
    .bind(from)
    .execute(&env.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_steady_state_migration_gives_existing_consolidated_memories_their_sources_type_and_task_ids() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 10).await;
    let steady_state = db::migration_status(&env.db).await.unwrap()[3].version;
    let before = db::migration_status(&env.db).await.unwrap()[2].version;
    db::migrate_down(&env.db, before).await.expect("down to before the steady-state migration");
    let (a, b, c, d, top) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for (id, task) in [(a, "t-1"), (b, "t-2"), (d, "t-3")] {
        sqlx::query(
            "INSERT INTO task_memories (id, project_id, task_id, execution_summary, memory_type, is_duplicate)
             VALUES ($1, $2, $3, 'a source', 'warning', true)",
        )
        .bind(id)
        .bind(project.id)
        .bind(task)
        .execute(&env.db)
        .await
        .unwrap();
    }
    insert_consolidated(&env, project.id, c, &[a, b]).await;
    // Before source types, consolidated memories could be merged into one another.
    insert_consolidated(&env, project.id, top, &[c, d]).await;

    db::migrate_up(&env.db).await.expect("up again");
    let (top_type, top_tasks): (Option<String>, Vec<String>) =
        sqlx::query_as("SELECT source_type, task_ids FROM task_memories WHERE id = $1")
            .bind(top)
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(top_type.as_deref(), Some("warning"), "resolved down to the plain memories");
    assert_eq!(top_tasks.len(), 3);

    assert_eq!(db::migration_status(&env.db).await.unwrap()[3].version, steady_state);
    let (source_type, mut task_ids, version): (Option<String>, Vec<String>, i64) =
        sqlx::query_as("SELECT source_type, task_ids, version FROM task_memories WHERE id = $1")
            .bind(c)
            .fetch_one(&env.db)
            .await
            .unwrap();
    task_ids.sort();
    assert_eq!(source_type.as_deref(), Some("warning"));
    assert_eq!(task_ids, vec!["t-1", "t-2"]);
    assert_eq!(version, 1, "filling the columns is not a change a rollback would see as a conflict");
}

/// The values a CHECK constraint allows in `table.column`, read from the live schema.
async fn allowed_values(env: &TestEnv, table: &str, column: &str) -> BTreeSet<String> {
    let definitions: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'",
    )
    .bind(table)
    .fetch_all(&env.db)
    .await
    .expect("constraints read");
    // PostgreSQL writes `IN (...)` as `= ANY (ARRAY[...])`, and a one-value list as `= '...'`.
    let (several, one) = (format!("({column} = ANY"), format!("CHECK (({column} = '"));
    let definition = definitions
        .iter()
        .find(|definition| definition.contains(&several))
        .or_else(|| definitions.iter().find(|definition| definition.starts_with(&one)))
        .unwrap_or_else(|| panic!("no CHECK lists the values of {table}.{column}: {definitions:?}"));
    definition.split('\'').skip(1).step_by(2).map(str::to_owned).collect()
}

fn texts<T: std::fmt::Display>(values: impl IntoIterator<Item = T>) -> BTreeSet<String> {
    values.into_iter().map(|value| value.to_string()).collect()
}

#[tokio::test]
async fn every_closed_vocabulary_is_exactly_what_its_check_constraint_allows() {
    use consolidator::domain::{
        AdminAction, ArchiveReason, ChangeOperation, JobStatus, MemoryType, Phase, PlaybookOperation, ReviewKind,
        ReviewStatus, ReviewSuggestion, RollbackStatus, SweepStatus, TriggerType,
    };
    let env = TestEnv::new().await;
    let cases = [
        ("task_memories", "memory_type", texts(MemoryType::ALL)),
        ("task_memories", "archive_reason", texts(ArchiveReason::ALL)),
        ("consolidation_changes", "operation", texts(ChangeOperation::ALL)),
        ("consolidation_jobs", "status", texts(JobStatus::ALL)),
        ("consolidation_jobs", "trigger_type", texts(TriggerType::ALL)),
        ("consolidation_jobs", "phase", texts(Phase::ALL)),
        ("consolidation_rollbacks", "status", texts(RollbackStatus::ALL)),
        ("consolidation_reviews", "status", texts(ReviewStatus::ALL)),
        ("consolidation_sweeps", "status", texts(SweepStatus::ALL)),
        ("consolidation_reviews", "kind", texts(ReviewKind::ALL)),
        ("consolidation_reviews", "suggestion", texts(ReviewSuggestion::ALL)),
        ("playbook_changes", "operation", texts(PlaybookOperation::ALL)),
        ("admin_actions", "action", texts(AdminAction::ALL)),
    ];
    for (table, column, rust) in cases {
        assert_eq!(allowed_values(&env, table, column).await, rust, "{table}.{column}: SQL and Rust differ");
    }
}
