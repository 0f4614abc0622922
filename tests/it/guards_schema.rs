//! The guards migration (20261202000006): new statuses and reasons are accepted, unknown ones
//! are not, and a pair of memories has one review, whichever way round.

use uuid::Uuid;

use crate::harness::*;

async fn insert_review(
    env: &TestEnv,
    project: Uuid,
    older: Uuid,
    newer: Uuid,
    status: &str,
) -> Result<u64, sqlx::Error> {
    let decided = if status == "open" { None } else { Some(chrono::Utc::now()) };
    sqlx::query(
        "INSERT INTO consolidation_reviews (id, project_id, kind, older_memory_id, newer_memory_id, older_version,
                                            newer_version, similarity, difference, suggestion, status, decided_at)
         VALUES ($1, $2, 'possible_update', $3, $4, 1, 1, 0.95, '{}', 'supersede', $5, $6)",
    )
    .bind(Uuid::new_v4())
    .bind(project)
    .bind(older)
    .bind(newer)
    .bind(status)
    .bind(decided)
    .execute(&env.db)
    .await
    .map(|done| done.rows_affected())
}

#[tokio::test]
async fn the_guards_schema_takes_cancelled_jobs_superseded_archives_and_one_review_per_pair() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());

    assert_eq!(insert_review(&env, project.id, a, b, "open").await.expect("a review"), 1);
    let twice = insert_review(&env, project.id, b, a, "rejected").await.expect_err("the same pair reversed");
    assert_eq!(consolidator::store::violated_constraint(&twice), Some("consolidation_reviews_pair_idx"));
    let status = insert_review(&env, project.id, a, Uuid::new_v4(), "maybe").await.expect_err("unknown status");
    assert_eq!(consolidator::store::violated_constraint(&status), Some("consolidation_reviews_status_check"));
    let undecided = insert_review(&env, project.id, a, Uuid::new_v4(), "approved").await;
    assert!(undecided.is_ok(), "a decided review carries its decision time");

    let memory = fixtures::memory("A note.", consolidator::domain::MemoryType::Learning, fixtures::direction(1, 0.0));
    fixtures::insert(&env.db, project.id, std::slice::from_ref(&memory)).await;
    let archive = |reason: &'static str| {
        sqlx::query("UPDATE task_memories SET is_archived = true, archive_reason = $2 WHERE id = $1")
            .bind(memory.id)
            .bind(reason)
            .execute(&env.db)
    };
    assert!(archive("superseded").await.is_ok());
    assert!(archive("replaced").await.is_err());
    let job = |status: &'static str| {
        sqlx::query(
            "INSERT INTO consolidation_jobs (id, project_id, status, trigger_type, triggered_by)
             VALUES ($1, $2, $3, 'manual', 'tester')",
        )
        .bind(Uuid::new_v4())
        .bind(project.id)
        .bind(status)
        .execute(&env.db)
    };
    assert!(job("cancelled").await.is_ok());
    assert!(job("aborted").await.is_err());
}

#[tokio::test]
async fn one_batch_that_proposes_a_pair_twice_either_way_round_opens_one_review() {
    use consolidator::{
        domain::{Difference, DifferenceKind},
        store::reviews::{self, NewReview},
    };
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let proposal = |older: Uuid, newer: Uuid| NewReview {
        id: Uuid::new_v4(),
        kind: consolidator::domain::ReviewKind::PossibleUpdate,
        older: (older, 1),
        newer: (newer, 1),
        similarity: 0.95,
        difference: Difference { kind: DifferenceKind::Value, left: vec!["1".into()], right: vec!["2".into()] },
        suggestion: consolidator::domain::ReviewSuggestion::Supersede,
    };
    let job = Uuid::new_v4();
    sqlx::query("INSERT INTO consolidation_jobs (id, project_id, trigger_type, triggered_by) VALUES ($1, $2, 'manual', 'tester')")
        .bind(job)
        .bind(project.id)
        .execute(&env.db)
        .await
        .expect("a job");
    let mut conn = env.db.acquire().await.expect("connection");
    let proposed = reviews::open_batch(&mut conn, project.id, job, &[proposal(a, b), proposal(b, a), proposal(a, a)])
        .await
        .expect("the batch is stored");
    assert_eq!((proposed.opened.len(), proposed.refreshed.len()), (1, 0));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM consolidation_reviews WHERE project_id = $1")
        .bind(project.id)
        .fetch_one(&env.db)
        .await
        .expect("count");
    assert_eq!(stored, 1);
}
