//! Small builders for projects and memories.

use chrono::{DateTime, Duration, Utc};
use consolidator::{
    domain::{MemoryType, NewMemory},
    store::{
        memories,
        projects::{self, NewProject, Project},
    },
};
use sqlx::PgPool;
use uuid::Uuid;

pub const DIM: usize = 16;

pub async fn project(db: &PgPool, threshold: i32) -> Project {
    projects::create(
        db,
        &NewProject {
            id: Uuid::new_v4(),
            name: "test project".to_owned(),
            consolidation_enabled: true,
            consolidation_threshold: threshold,
            // Small fixtures made mostly of duplicates: without the blast-radius limit (its tests set it).
            consolidation_options: serde_json::json!({"max_changed_share": 1.0}),
        },
    )
    .await
    .expect("project created")
}

/// A unit vector along `axis`, tilted by `tilt` towards the next axis (cosine falls as tilt grows).
pub fn direction(axis: usize, tilt: f32) -> Vec<f32> {
    let mut vector = [0.0; DIM];
    vector[axis % DIM] = 1.0;
    vector[(axis + 1) % DIM] = tilt;
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    vector.iter().map(|v| v / norm).collect()
}

/// A unit vector at similarity `cos` to `axis`, the rest along `other`.
pub fn leaning(axis: usize, cos: f32, other: usize) -> Vec<f32> {
    let mut vector = vec![0.0; DIM];
    vector[axis % DIM] = cos;
    vector[other % DIM] = (1.0 - cos * cos).sqrt();
    vector
}

pub fn memory(summary: &str, memory_type: MemoryType, embedding: Vec<f32>) -> NewMemory {
    NewMemory {
        id: Uuid::new_v4(),
        task_id: Some(format!("task-{}", Uuid::new_v4().simple())),
        execution_summary: summary.to_owned(),
        memory_type,
        goal: None,
        result: None,
        feedback: None,
        tags: vec!["test".to_owned()],
        files: vec![],
        embedding: Some(embedding),
        success: Some(true),
        reused_count: 5,
        last_reused_at: Some(Utc::now()),
        learned_at: Utc::now() - Duration::days(1),
        source_type: None,
        task_ids: vec![],
        consolidated_from: vec![],
        synthesized_from: vec![],
        synthesis_confidence: None,
        needs_review: false,
    }
}

pub fn stale(mut memory: NewMemory, learned: DateTime<Utc>) -> NewMemory {
    memory.reused_count = 0;
    memory.last_reused_at = None;
    memory.learned_at = learned;
    memory
}

pub async fn insert(db: &PgPool, project_id: Uuid, batch: &[NewMemory]) {
    let mut conn = db.acquire().await.expect("connection");
    consolidator::store::projects::fix_embedding_dim(&mut *conn, project_id, DIM as i32).await.expect("dim fixed");
    memories::insert_batch(&mut conn, project_id, batch).await.expect("memories inserted");
}

/// Two paraphrases of the old router address and, learned later, the new address.
pub fn router_addresses() -> (Vec<NewMemory>, NewMemory) {
    let old = |summary: &str, tilt: f32, days: i64| NewMemory {
        learned_at: chrono::Utc::now() - chrono::Duration::days(days),
        ..memory(summary, MemoryType::CodebaseKnowledge, direction(2, tilt))
    };
    let paraphrases = vec![
        old("The office router IP is 192.168.7.1; the VPN config points at it.", 0.0, 30),
        old("The VPN config points at the office router, whose IP is 192.168.7.1.", 0.04, 20),
    ];
    let newer = old("The office router IP is 192.168.9.1; the VPN config points at it.", 0.02, 2);
    (paraphrases, newer)
}
