//! Embeds texts in batches (POST {base_url}/embeddings with an array `input`) for memories that
//! arrive without `context_embedding` and for searches by text: each request retried with
//! backoff on transport errors, 429 and 5xx; the whole call bounded by one deadline.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;

use backon::Retryable;
use serde_json::{Value, json};

use crate::config::EmbeddingConfig;
use crate::domain::{ModelUsage, NewMemory};
use crate::engine::merge::embed::validate_embedding;
use crate::llm::http::post_blocking;

/// Retries of one batch after its first attempt.
const MAX_RETRIES: usize = 3;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Error bodies are cut to this many characters in messages.
const BODY_EXCERPT: usize = 300;

/// The setting that makes the service embed texts; named in every answer that lacks it.
pub const SETTING: &str = "EMBEDDING_BASE_URL";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TextEmbedError {
    #[error("the embedding endpoint did not finish within {0} s (EMBEDDING_DEADLINE_SECS)")]
    Deadline(u64),
    #[error("the embedding endpoint is unreachable: {0}")]
    Transport(String),
    #[error("the embedding endpoint answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the embedding endpoint's answer is unusable: {0}")]
    InvalidAnswer(String),
    #[error(
        "the embedding endpoint (EMBEDDING_MODEL) returns {got}-dimension embeddings; the project stores {expected}"
    )]
    Dimension { expected: usize, got: usize },
}

impl TextEmbedError {
    fn retryable(&self) -> bool {
        match self {
            TextEmbedError::Transport(_) => true,
            TextEmbedError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// An OpenAI-compatible embeddings client for many texts at once.
#[derive(Clone)]
pub struct TextEmbedder {
    agent: ureq::Agent,
    url: String,
    model: String,
    api_key: Option<String>,
    batch: usize,
    deadline: Duration,
}

/// What embedding the missing vectors of a batch of memories did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filled {
    /// Memories that got their embedding from the endpoint.
    pub embedded: usize,
    /// Memories left without one (no endpoint configured).
    pub unembedded: usize,
    pub usage: ModelUsage,
}

impl Filled {
    /// The warning an answer carries when memories were stored without an embedding.
    pub fn warning(&self) -> Option<String> {
        (self.unembedded > 0).then(|| unembedded_warning(self.unembedded))
    }
}

/// Why memories without an embedding stay so, and the setting that would embed them.
pub fn unembedded_warning(count: usize) -> String {
    format!(
        "{count} memories were stored without an embedding (no context_embedding was sent and {SETTING} is not \
         set): they are never clustered until they have one; set {SETTING} and the service embeds new ones on \
         arrival, and the next consolidation job embeds these"
    )
}

impl TextEmbedder {
    /// A client when the configuration names an endpoint.
    pub fn from_config(config: &EmbeddingConfig) -> Option<TextEmbedder> {
        let base_url = config.base_url()?;
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Some(TextEmbedder {
            agent,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            model: config.embedding_model.clone(),
            api_key: config.embedding_api_key.clone(),
            batch: config.embedding_batch.max(1),
            deadline: Duration::from_secs(config.embedding_deadline_secs.max(1)),
        })
    }

    /// One embedding per text, in order, all of one dimension (`dim` when given), within the
    /// deadline; any failure fails the whole call.
    pub async fn embed(
        &self,
        texts: &[String],
        dim: Option<usize>,
    ) -> Result<(Vec<Vec<f32>>, ModelUsage), TextEmbedError> {
        let calls = Arc::new(AtomicU64::new(0));
        let tokens = Arc::new(AtomicU64::new(0));
        let work = async {
            let mut vectors = Vec::with_capacity(texts.len());
            let mut dim = dim;
            for chunk in texts.chunks(self.batch) {
                let attempt = || self.post(chunk.to_vec(), calls.clone(), tokens.clone());
                let answer = attempt
                    .retry(
                        backon::ExponentialBuilder::default()
                            .with_min_delay(MIN_BACKOFF)
                            .with_max_delay(MAX_BACKOFF)
                            .with_max_times(MAX_RETRIES)
                            .with_jitter(),
                    )
                    .when(TextEmbedError::retryable)
                    .notify(|error, delay| tracing::warn!(%error, ?delay, "retrying the embedding endpoint"))
                    .await?;
                for vector in vectors_of(&answer, chunk.len())? {
                    let expected = *dim.get_or_insert(vector.len());
                    if vector.len() != expected {
                        return Err(TextEmbedError::Dimension { expected, got: vector.len() });
                    }
                    validate_embedding(&vector, expected)
                        .map_err(|error| TextEmbedError::InvalidAnswer(error.to_string()))?;
                    vectors.push(vector);
                }
            }
            Ok(vectors)
        };
        let vectors = tokio::time::timeout(self.deadline, work)
            .await
            .map_err(|_| TextEmbedError::Deadline(self.deadline.as_secs()))??;
        let usage = ModelUsage {
            calls: calls.load(Ordering::Relaxed),
            tokens: tokens.load(Ordering::Relaxed),
            ..ModelUsage::default()
        };
        Ok((vectors, usage))
    }

    /// One request, on a blocking thread (the client is synchronous); bounded by the deadline's
    /// rest through the request's own timeout.
    async fn post(
        &self,
        input: Vec<String>,
        calls: Arc<AtomicU64>,
        tokens: Arc<AtomicU64>,
    ) -> Result<Value, TextEmbedError> {
        let (agent, url, api_key, timeout) =
            (self.agent.clone(), self.url.clone(), self.api_key.clone(), self.deadline);
        let body = json!({"model": self.model, "input": input}).to_string();
        let sent = tokio::task::spawn_blocking(move || {
            post_blocking(&agent, &url, api_key.as_deref(), timeout, body.as_bytes(), &calls)
                .map_err(TextEmbedError::Transport)
        })
        .await
        .map_err(|error| TextEmbedError::Transport(format!("the request's thread failed: {error}")))?;
        let (status, text) = sent?;
        let excerpt = |text: &str| text.chars().take(BODY_EXCERPT).collect::<String>();
        if !(200..300).contains(&status) {
            return Err(TextEmbedError::Status { status, body: excerpt(&text) });
        }
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| TextEmbedError::InvalidAnswer(format!("not JSON ({e}): {}", excerpt(&text))))?;
        if let Some(used) = answer.pointer("/usage/total_tokens").and_then(Value::as_u64) {
            tokens.fetch_add(used, Ordering::Relaxed);
        }
        Ok(answer)
    }
}

/// The answer's `data[].embedding` in input order (by each item's `index` when present).
fn vectors_of(answer: &Value, expected: usize) -> Result<Vec<Vec<f32>>, TextEmbedError> {
    let invalid = |message: String| TextEmbedError::InvalidAnswer(message);
    let data = answer.get("data").and_then(Value::as_array).ok_or_else(|| invalid("no data array".to_owned()))?;
    if data.len() != expected {
        return Err(invalid(format!("{} embeddings for {expected} texts", data.len())));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in data.iter().enumerate() {
        let index = match item.get("index") {
            Some(index) => index
                .as_u64()
                .and_then(|index| usize::try_from(index).ok())
                .filter(|index| *index < expected)
                .ok_or_else(|| invalid(format!("data[{position}].index is not an index of the input")))?,
            None => position,
        };
        let vector = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(format!("data[{position}] has no embedding array")))?
            .iter()
            .map(|value| value.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| invalid(format!("data[{position}].embedding holds a non-number")))?;
        if slots[index].replace(vector).is_some() {
            return Err(invalid(format!("index {index} appears twice")));
        }
    }
    slots.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| invalid("an input has no embedding".to_owned()))
}

/// The text the service embeds for a memory: its execution summary, what agents search by.
pub fn memory_text(memory: &NewMemory) -> &str {
    &memory.execution_summary
}

/// Gives every memory of the batch that has no embedding one from the endpoint (all or none);
/// without an endpoint they stay without, and the result counts them. `dim` is the dimension in
/// force (the project's, or the batch's own).
pub async fn fill_missing(
    embedder: Option<&TextEmbedder>,
    memories: &mut [NewMemory],
    dim: Option<usize>,
) -> Result<Filled, TextEmbedError> {
    let missing: Vec<usize> = (0..memories.len()).filter(|&i| memories[i].embedding.is_none()).collect();
    if missing.is_empty() {
        return Ok(Filled::default());
    }
    let Some(embedder) = embedder else {
        return Ok(Filled { unembedded: missing.len(), ..Filled::default() });
    };
    let dim = dim.or_else(|| memories.iter().find_map(|memory| memory.embedding.as_ref().map(Vec::len)));
    let texts: Vec<String> = missing.iter().map(|&i| memory_text(&memories[i]).to_owned()).collect();
    let (vectors, usage) = embedder.embed(&texts, dim).await?;
    for (&i, vector) in missing.iter().zip(vectors) {
        memories[i].embedding = Some(vector);
    }
    Ok(Filled { embedded: missing.len(), unembedded: 0, usage })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_read_in_input_order_and_a_short_one_is_refused() {
        let answer = json!({"data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]});
        assert_eq!(vectors_of(&answer, 2).unwrap(), vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(
            matches!(vectors_of(&answer, 3), Err(TextEmbedError::InvalidAnswer(m)) if m.contains("2 embeddings for 3"))
        );
        let twice = json!({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]});
        assert!(vectors_of(&twice, 2).is_err());
    }

    #[test]
    fn only_transport_errors_throttling_and_server_errors_are_retried() {
        assert!(TextEmbedError::Transport("reset".into()).retryable());
        assert!(TextEmbedError::Status { status: 429, body: String::new() }.retryable());
        assert!(TextEmbedError::Status { status: 503, body: String::new() }.retryable());
        assert!(!TextEmbedError::Status { status: 401, body: String::new() }.retryable());
        assert!(!TextEmbedError::Dimension { expected: 2, got: 3 }.retryable());
    }
}
