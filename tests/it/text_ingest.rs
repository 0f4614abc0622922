//! Text-only ingest: memories sent without `context_embedding` are embedded by the service when
//! EMBEDDING_BASE_URL is set (in batches), stored unembedded with a warning otherwise, and
//! embedded by the next job once the endpoint is configured; search by text likewise.

use consolidator::{store::memories, worker::Worker};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

fn text_memory(summary: &str) -> Value {
    json!({"execution_summary": summary, "memory_type": "error_fix", "tags": ["text-only"]})
}

async fn post_memories(gateway: &TestGateway, project: Uuid, memories: &[Value]) -> reqwest::Response {
    gateway
        .post(&format!("/api/v1/projects/{project}/memories"), &json!({"memories": memories}))
        .send()
        .await
        .expect("sent")
}

async fn stored_embedding(gateway: &TestGateway, id: Uuid) -> Option<Vec<f32>> {
    memories::get(&gateway.env.db, id).await.expect("read").expect("stored").embedding
}

#[tokio::test]
async fn a_memory_sent_without_an_embedding_is_embedded_by_the_service_in_batches() {
    let fake = FakeEmbedder::start().await;
    let gateway = TestGateway::embedding(&fake.config(2)).await;
    let project = gateway.project().await;
    let texts = ["Retry the upload with backoff.", "Settings live in settings.toml.", "Use the staging database."];

    let mut batch: Vec<Value> = texts.iter().map(|text| text_memory(text)).collect();
    batch.push(memory_json("One with its own embedding.", "learning", direction(3, 0.0)));
    let body = ok(post_memories(&gateway, project, &batch).await, StatusCode::CREATED).await;

    assert_eq!((body["inserted"].clone(), body["embedded"].clone()), (json!(4), json!(3)));
    assert_eq!(body["embedding_dim"], DIM);
    assert!(body.get("warnings").is_none(), "nothing to warn about: {body}");
    assert_eq!(fake.batches(), vec![2, 1], "three texts in batches of EMBEDDING_BATCH=2");
    let ids: Vec<Uuid> = serde_json::from_value(body["ids"].clone()).expect("ids");
    for (id, text) in ids.iter().zip(texts) {
        assert_eq!(stored_embedding(&gateway, *id).await, Some(text_embedding(text)), "{text}");
    }
    assert_eq!(stored_embedding(&gateway, ids[3]).await, Some(direction(3, 0.0)), "a sent embedding is kept");
    gateway.stop().await;
}

#[tokio::test]
async fn without_an_endpoint_a_text_only_memory_is_stored_unembedded_and_the_answer_names_the_setting() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;

    let body =
        ok(post_memories(&gateway, project, &[text_memory("No embedding here.")]).await, StatusCode::CREATED).await;

    assert_eq!((body["inserted"].clone(), body["embedded"].clone()), (json!(1), json!(0)));
    assert!(body["embedding_dim"].is_null(), "no embedding fixed the dimension: {body}");
    let warning = body["warnings"][0].as_str().expect("a warning");
    assert!(warning.contains("EMBEDDING_BASE_URL") && warning.contains("never clustered"), "{warning}");
    let id: Uuid = body["ids"][0].as_str().and_then(|id| id.parse().ok()).expect("id");
    assert_eq!(stored_embedding(&gateway, id).await, None);
    gateway.stop().await;
}

#[tokio::test]
async fn a_failing_endpoint_is_a_clear_502_and_nothing_of_the_batch_is_stored() {
    let fake = FakeEmbedder::start().await;
    fake.fail(true);
    let gateway = TestGateway::embedding(&fake.config(8)).await;
    let project = gateway.project().await;
    let batch = [memory_json("Has one.", "learning", direction(1, 0.0)), text_memory("Needs one.")];

    let message = error(post_memories(&gateway, project, &batch).await, StatusCode::BAD_GATEWAY, "bad_gateway").await;

    assert!(message.contains("embedding endpoint answered 503") && message.contains("nothing was stored"), "{message}");
    assert!(fake.batches().len() > 1, "a 503 is retried: {:?}", fake.batches());
    let page = gateway.get(&format!("/api/v1/projects/{project}/memories")).send().await.expect("sent");
    assert_eq!(ok(page, StatusCode::OK).await["memories"], json!([]));
    let view =
        ok(gateway.get(&format!("/api/v1/projects/{project}")).send().await.expect("sent"), StatusCode::OK).await;
    assert!(view["embedding_dim"].is_null(), "the dimension was not fixed either: {view}");
    gateway.stop().await;
}

#[tokio::test]
async fn the_next_job_embeds_the_memories_stored_without_an_embedding_and_clusters_them() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let same = "The upload is flaky: retry it with exponential backoff.";
    let batch = [text_memory(same), text_memory(same), text_memory("Settings are read from settings.toml.")];
    let body = ok(post_memories(&gateway, project, &batch).await, StatusCode::CREATED).await;
    assert!(body["warnings"][0].as_str().is_some_and(|w| w.contains("EMBEDDING_BASE_URL")));
    let fake = FakeEmbedder::start().await;
    let mut config = gateway.env.worker_config();
    config.embedding = fake.config(64);
    let worker = gateway.env.spawn_worker_with(Worker::new(
        gateway.env.db.clone(),
        gateway.env.bus.clone(),
        config,
        consolidator::config::RetentionConfig::default(),
    ));

    let status = consolidate(&gateway, project).await;

    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"]["cost"]["memories_embedded"], 3, "{}", status["result"]["cost"]);
    assert!(status["result"]["cost"]["model"]["calls"].as_u64().is_some_and(|calls| calls >= 1));
    assert_eq!(status["counters"]["memories_merged"], 2, "the two equal texts merged: {status}");
    let ids: Vec<Uuid> = serde_json::from_value(body["ids"].clone()).expect("ids");
    assert_eq!(stored_embedding(&gateway, ids[2]).await, Some(text_embedding("Settings are read from settings.toml.")));
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn search_by_text_ranks_by_the_endpoints_embedding_of_the_query() {
    let fake = FakeEmbedder::start().await;
    let gateway = TestGateway::embedding(&fake.config(16)).await;
    let project = gateway.project().await;
    let batch = [text_memory("retry the flaky upload"), text_memory("settings live in toml files")];
    ok(post_memories(&gateway, project, &batch).await, StatusCode::CREATED).await;

    let search = json!({"query": "Upload: retry the FLAKY", "limit": 1});
    let found = gateway.post(&format!("/api/v1/projects/{project}/memories/search"), &search).send().await;
    let found = ok(found.expect("sent"), StatusCode::OK).await;

    assert_eq!(found["results"][0]["memory"]["execution_summary"], "retry the flaky upload", "{found}");
    assert!(found["results"][0]["similarity"].as_f64().is_some_and(|s| s > 0.99), "{found}");
    let both = json!({"query": "x", "embedding": direction(0, 0.0)});
    let both = gateway.post(&format!("/api/v1/projects/{project}/memories/search"), &both).send().await;
    error(both.expect("sent"), StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
    gateway.stop().await;
}

#[tokio::test]
async fn search_by_text_without_an_endpoint_is_a_400_naming_the_setting() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    ingest(&gateway, project, &[memory_json("Has one.", "learning", direction(1, 0.0))]).await;

    let search = json!({"query": "anything"});
    let answer = gateway.post(&format!("/api/v1/projects/{project}/memories/search"), &search).send().await;
    let message = error(answer.expect("sent"), StatusCode::BAD_REQUEST, "bad_request").await;

    assert!(message.contains("EMBEDDING_BASE_URL") && message.contains("`embedding`"), "{message}");
    gateway.stop().await;
}

#[tokio::test]
async fn an_endpoint_of_another_dimension_than_the_projects_stores_nothing_and_says_so() {
    let fake = FakeEmbedder::start().await;
    let gateway = TestGateway::embedding(&fake.config(8)).await;
    let project = gateway.project().await;
    ok(
        post_memories(&gateway, project, &[memory_json("Three.", "learning", vec![1.0, 0.0, 0.0])]).await,
        StatusCode::CREATED,
    )
    .await;

    let answer = post_memories(&gateway, project, &[text_memory("Needs one.")]).await;
    let message = error(answer, StatusCode::BAD_GATEWAY, "bad_gateway").await;

    assert!(message.contains(&format!("returns {DIM}-dimension embeddings; the project stores 3")), "{message}");
    let page = gateway.get(&format!("/api/v1/projects/{project}/memories")).send().await.expect("sent");
    assert_eq!(ok(page, StatusCode::OK).await["memories"].as_array().map(Vec::len), Some(1));
    gateway.stop().await;
}

#[tokio::test]
async fn an_import_embeds_the_lines_without_an_embedding() {
    let fake = FakeEmbedder::start().await;
    let env = TestEnv::new().await;
    let project = project(&env.db, 3).await;
    let embedder = consolidator::llm::TextEmbedder::from_config(&fake.config(2));
    let lines = "{\"execution_summary\":\"first text\",\"memory_type\":\"learning\"}\n\
                 {\"execution_summary\":\"second text\",\"memory_type\":\"decision\"}\n";

    let imported =
        consolidator::interchange::import_embedding(&env.db, project.id, lines.as_bytes(), embedder.as_ref()).await;

    let imported = imported.expect("imported");
    assert_eq!((imported.count, imported.embedded, imported.warning), (2, 2, None));
    let stored = memories::list(&env.db, project.id, &memories::ListFilter { limit: 10, ..Default::default() })
        .await
        .expect("listed");
    assert!(stored.len() == 2 && stored.iter().all(|m| m.embedding.as_ref().is_some_and(|e| e.len() == DIM)));
    let unembedded = consolidator::interchange::import_embedding(&env.db, project.id, lines.as_bytes(), None)
        .await
        .expect("imported without the endpoint");
    assert_eq!((unembedded.count, unembedded.embedded), (2, 0));
    assert!(unembedded.warning.is_some_and(|w| w.contains("EMBEDDING_BASE_URL")));
}
