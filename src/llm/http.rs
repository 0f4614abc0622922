//! One JSON POST with retries: transport errors, 429 and 5xx are retried with exponential
//! backoff; any other status is final.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::sleep;
use std::time::Duration;

use serde_json::Value;

use crate::domain::ModelUsage;

/// First retry delay; doubled per attempt up to `MAX_BACKOFF`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Error bodies are cut to this many characters in messages.
const BODY_EXCERPT: usize = 300;

#[derive(Debug, Clone, PartialEq)]
pub enum HttpFailure {
    Transport(String),
    Status { status: u16, body: String },
    InvalidJson(String),
}

pub struct JsonClient {
    agent: ureq::Agent,
    api_key: Option<String>,
    max_retries: u32,
    calls: AtomicU64,
    tokens: AtomicU64,
}

impl JsonClient {
    pub fn new(timeout: Duration, api_key: Option<String>, max_retries: u32) -> JsonClient {
        let agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
        JsonClient { agent, api_key, max_retries, calls: AtomicU64::new(0), tokens: AtomicU64::new(0) }
    }

    /// Requests this client sent (retries included) and the tokens their answers reported.
    pub fn usage(&self) -> ModelUsage {
        ModelUsage { calls: self.calls.load(Ordering::Relaxed), tokens: self.tokens.load(Ordering::Relaxed) }
    }

    pub fn post(&self, url: &str, body: &Value) -> Result<Value, HttpFailure> {
        let payload = body.to_string();
        let mut attempt = 0u32;
        loop {
            match self.post_once(url, &payload) {
                Err(failure) if attempt < self.max_retries && retryable(&failure) => {
                    let delay = INITIAL_BACKOFF.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF);
                    tracing::warn!(url, attempt, ?failure, "retrying LLM endpoint call");
                    sleep(delay);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn post_once(&self, url: &str, payload: &str) -> Result<Value, HttpFailure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut request = self.agent.post(url).header("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request.send(payload).map_err(|e| HttpFailure::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|e| HttpFailure::Transport(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(HttpFailure::Status { status, body: excerpt(&text) });
        }
        let answer: Value =
            serde_json::from_str(&text).map_err(|e| HttpFailure::InvalidJson(format!("{e}: {}", excerpt(&text))))?;
        if let Some(tokens) = answer.pointer("/usage/total_tokens").and_then(Value::as_u64) {
            self.tokens.fetch_add(tokens, Ordering::Relaxed);
        }
        Ok(answer)
    }
}

fn retryable(failure: &HttpFailure) -> bool {
    match failure {
        HttpFailure::Transport(_) => true,
        HttpFailure::Status { status, .. } => *status == 429 || *status >= 500,
        HttpFailure::InvalidJson(_) => false,
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(BODY_EXCERPT).collect()
}
