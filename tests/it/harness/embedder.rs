//! A fake OpenAI-compatible embeddings endpoint on 127.0.0.1:0 for the text-ingest tests: each
//! text's embedding is a bag of its words (hashed onto `DIM` axes), so equal texts get equal
//! vectors and texts sharing words are similar. It records the size of every batch it is sent,
//! and can be told to fail every request.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::post};
use consolidator::config::EmbeddingConfig;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::fixtures::DIM;

#[derive(Default)]
struct Seen {
    batches: Mutex<Vec<usize>>,
    failing: AtomicBool,
}

pub struct FakeEmbedder {
    pub base_url: String,
    seen: Arc<Seen>,
    stop: CancellationToken,
}

/// The fake's embedding of `text`: one count per word on its hashed axis, normalized.
pub fn text_embedding(text: &str) -> Vec<f32> {
    let mut vector = [0.0f32; DIM];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()) {
        let hash = word.to_lowercase().bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
        vector[hash as usize % DIM] += 1.0;
    }
    vector[0] += 0.01;
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    vector.iter().map(|v| v / norm).collect()
}

async fn embeddings(State(seen): State<Arc<Seen>>, Json(body): Json<Value>) -> axum::response::Response {
    let inputs: Vec<String> = match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(texts) => texts.iter().filter_map(|text| text.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    seen.batches.lock().expect("lock").push(inputs.len());
    if seen.failing.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "model overloaded").into_response();
    }
    // Answered in reverse order with their indexes, as the API allows.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": text_embedding(text)}))
        .collect();
    Json(json!({"object": "list", "data": data, "usage": {"prompt_tokens": 3, "total_tokens": 3}})).into_response()
}

impl FakeEmbedder {
    pub async fn start() -> FakeEmbedder {
        let seen = Arc::new(Seen::default());
        let app = Router::new().route("/v1/embeddings", post(embeddings)).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("free port");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("bound address"));
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await;
        });
        FakeEmbedder { base_url, seen, stop }
    }

    /// Settings that point at this endpoint, `batch` texts per request.
    pub fn config(&self, batch: usize) -> EmbeddingConfig {
        EmbeddingConfig {
            embedding_base_url: Some(self.base_url.clone()),
            embedding_model: "fake-embedding".to_owned(),
            embedding_batch: batch,
            embedding_deadline_secs: 10,
            ..EmbeddingConfig::default()
        }
    }

    /// The number of texts in each request received, in order.
    pub fn batches(&self) -> Vec<usize> {
        self.seen.batches.lock().expect("lock").clone()
    }

    pub fn fail(&self, failing: bool) {
        self.seen.failing.store(failing, Ordering::Relaxed);
    }
}

impl Drop for FakeEmbedder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
