//! One JSON POST with retries: transport errors, 429 and 5xx are retried with exponential
//! backoff; any other status is final. Every attempt and backoff is bounded by the job's
//! [`JobBudget`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::domain::ModelUsage;
use crate::engine::budget::{JobBudget, Refusal};

/// First retry delay; doubled per attempt up to `MAX_BACKOFF`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Error bodies are cut to this many characters in messages.
const BODY_EXCERPT: usize = 300;

#[derive(Debug, Clone, PartialEq)]
pub enum HttpFailure {
    Transport(String),
    Status {
        status: u16,
        body: String,
    },
    InvalidJson(String),
    /// Not sent, or not waited for: the job's budget or stop decided.
    Refused(Refusal),
}

pub struct JsonClient {
    agent: ureq::Agent,
    api_key: Option<String>,
    timeout: Duration,
    max_retries: u32,
    budget: Arc<JobBudget>,
    /// Counted by the attempt's thread as it sends.
    calls: Arc<AtomicU64>,
    tokens: AtomicU64,
}

impl JsonClient {
    pub fn new(timeout: Duration, api_key: Option<String>, max_retries: u32, budget: Arc<JobBudget>) -> JsonClient {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        JsonClient {
            agent,
            api_key,
            timeout,
            max_retries,
            budget,
            calls: Arc::new(AtomicU64::new(0)),
            tokens: AtomicU64::new(0),
        }
    }

    /// A client of its own usage and budget (one job's) over the same agent, so jobs share the
    /// agent's kept-alive connections.
    pub fn for_budget(&self, budget: Arc<JobBudget>) -> JsonClient {
        JsonClient {
            agent: self.agent.clone(),
            api_key: self.api_key.clone(),
            timeout: self.timeout,
            max_retries: self.max_retries,
            budget,
            calls: Arc::new(AtomicU64::new(0)),
            tokens: AtomicU64::new(0),
        }
    }

    pub fn budget(&self) -> &Arc<JobBudget> {
        &self.budget
    }

    /// Requests this client sent (retries included) and the tokens their answers reported.
    pub fn usage(&self) -> ModelUsage {
        ModelUsage {
            calls: self.calls.load(Ordering::Relaxed),
            tokens: self.tokens.load(Ordering::Relaxed),
            ..ModelUsage::default()
        }
    }

    pub fn post(&self, url: &str, body: &Value) -> Result<Value, HttpFailure> {
        let payload: Arc<str> = body.to_string().into();
        let mut attempt = 0u32;
        loop {
            match self.post_once(url, &payload) {
                Err(failure) if attempt < self.max_retries && retryable(&failure) => {
                    let delay = INITIAL_BACKOFF.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF);
                    tracing::warn!(url, attempt, ?failure, "retrying LLM endpoint call");
                    self.budget.pause(delay).map_err(HttpFailure::Refused)?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn post_once(&self, url: &str, payload: &Arc<str>) -> Result<Value, HttpFailure> {
        let (agent, api_key, url, payload, calls) =
            (self.agent.clone(), self.api_key.clone(), url.to_owned(), Arc::clone(payload), Arc::clone(&self.calls));
        let sent = self.budget.call(self.timeout, move |timeout| {
            post_blocking(&agent, &url, api_key.as_deref(), timeout, payload.as_bytes(), &calls)
                .map_err(HttpFailure::Transport)
        });
        let (status, text) = sent.map_err(|refusal| match refusal {
            Refusal::TimedOut(_) | Refusal::Thread(_) => HttpFailure::Transport(refusal.to_string()),
            refusal => HttpFailure::Refused(refusal),
        })??;
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

/// One JSON POST on the calling (blocking) thread, with a bearer key when given, counted in
/// `calls` as it is sent: the status and the body, or what stopped the exchange.
pub fn post_blocking(
    agent: &ureq::Agent,
    url: &str,
    api_key: Option<&str>,
    timeout: Duration,
    body: &[u8],
    calls: &AtomicU64,
) -> Result<(u16, String), String> {
    let mut request =
        agent.post(url).config().timeout_global(Some(timeout)).build().header("Content-Type", "application/json");
    if let Some(key) = api_key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    calls.fetch_add(1, Ordering::Relaxed);
    let mut response = request.send(body).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, text))
}

fn retryable(failure: &HttpFailure) -> bool {
    match failure {
        HttpFailure::Transport(_) => true,
        HttpFailure::Status { status, .. } => *status == 429 || *status >= 500,
        HttpFailure::InvalidJson(_) | HttpFailure::Refused(_) => false,
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(BODY_EXCERPT).collect()
}
