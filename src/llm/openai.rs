//! `OpenAiSynthesizer` (POST {base_url}/chat/completions, JSON-object answer) and
//! `OpenAiEmbedder` (POST {base_url}/embeddings). Answers are validated; the planner falls back
//! to the extractive synthesizer or the centroid when these return an error.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{HttpFailure, JsonClient};
use crate::domain::ModelUsage;
use crate::engine::budget::JobBudget;
use crate::engine::merge::embed::{EmbedError, Embedder};
use crate::engine::synthesis::{
    ExtractiveSynthesizer, SynthesisDraft, SynthesisError, Synthesizer, TopicView, validate_draft,
};

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com/v1` or a local compatible server; no trailing path.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// Per request, whole exchange (MODEL_CALL_TIMEOUT_SECS); a job's budget may cut it shorter.
    pub timeout: Duration,
    /// Retries after the first attempt, on transport errors, 429 and 5xx.
    pub max_retries: u32,
}

impl OpenAiConfig {
    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url.trim_end_matches('/'))
    }
}

/// Calls in flight at once for a client made outside a job (tests, tools).
const UNBUDGETED_CONCURRENCY: usize = 4;

/// Fact texts are cut to this many characters in the prompt to bound its size.
const MAX_FACT_CHARS: usize = 600;

const SYSTEM_PROMPT: &str = "You write the synthesis of a topic from an AI coding agent's task memories. \
You are given the topic's facts, numbered, each with its kind. Answer with one JSON object with exactly \
these keys: \"text\" (string: a short prose synthesis that states every listed fact once and nothing \
else, grouped by kind, citing each fact's number in brackets), \"confidence\" (number from 0 to 1: how \
consistent the facts are with each other).";

/// Writes a synthesis's prose from the facts the extractive synthesizer gathered: the facts (and
/// their members) are the same either way; the model only words them.
pub struct OpenAiSynthesizer {
    config: OpenAiConfig,
    client: JsonClient,
    name: String,
}

impl OpenAiSynthesizer {
    /// An instance outside any job: no budget, at most `UNBUDGETED_CONCURRENCY` calls at once.
    pub fn new(config: OpenAiConfig) -> OpenAiSynthesizer {
        OpenAiSynthesizer::with_budget(config, JobBudget::unlimited(UNBUDGETED_CONCURRENCY))
    }

    pub fn with_budget(config: OpenAiConfig, budget: Arc<JobBudget>) -> OpenAiSynthesizer {
        let client = JsonClient::new(config.timeout, config.api_key.clone(), config.max_retries, budget);
        let name = format!("openai:{}", config.model);
        OpenAiSynthesizer { config, client, name }
    }

    fn request_body(&self, draft: &SynthesisDraft) -> Value {
        let mut prompt = format!("{}\n", draft.summary);
        for (i, fact) in draft.facts.iter().enumerate() {
            let text: String = fact.text.chars().take(MAX_FACT_CHARS).collect();
            prompt.push_str(&format!("{}. [{}] {text}\n", i + 1, fact.kind));
        }
        json!({
            "model": self.config.model,
            "response_format": {"type": "json_object"},
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt},
            ],
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProseAnswer {
    text: String,
    confidence: f32,
}

fn synthesis_error(failure: HttpFailure) -> SynthesisError {
    match failure {
        HttpFailure::Transport(e) => SynthesisError::Transport(e),
        HttpFailure::Status { status, body } => SynthesisError::Status { status, body },
        HttpFailure::InvalidJson(e) => SynthesisError::InvalidAnswer(format!("response is not JSON: {e}")),
        HttpFailure::Refused(refusal) => SynthesisError::Skipped(refusal.to_string()),
    }
}

/// The extractive draft with the model's prose: its confidence is the lower of the two.
pub fn with_chat_answer(draft: SynthesisDraft, response: &Value) -> Result<SynthesisDraft, SynthesisError> {
    let content = response
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| SynthesisError::InvalidAnswer("no choices[0].message.content".into()))?;
    let answer: ProseAnswer = serde_json::from_str(content)
        .map_err(|e| SynthesisError::InvalidAnswer(format!("content is not the expected JSON object: {e}")))?;
    if !(0.0..=1.0).contains(&answer.confidence) {
        return Err(SynthesisError::InvalidAnswer(format!("confidence {} is outside 0..=1", answer.confidence)));
    }
    let draft =
        SynthesisDraft { confidence: draft.confidence.min(answer.confidence), prose: Some(answer.text), ..draft };
    validate_draft(&draft)?;
    Ok(draft)
}

impl Synthesizer for OpenAiSynthesizer {
    fn name(&self) -> &str {
        &self.name
    }

    fn synthesize(&self, view: &TopicView<'_>) -> Result<SynthesisDraft, SynthesisError> {
        let draft = ExtractiveSynthesizer.synthesize(view)?;
        let worded = self
            .client
            .post(&self.config.endpoint("chat/completions"), &self.request_body(&draft))
            .map_err(synthesis_error)
            .and_then(|response| with_chat_answer(draft, &response));
        if worded.is_err() {
            self.client.budget().fell_back();
        }
        worded
    }

    fn usage(&self) -> ModelUsage {
        self.client.usage()
    }

    fn for_job(&self, budget: &Arc<JobBudget>) -> Option<Arc<dyn Synthesizer>> {
        let client = self.client.for_budget(budget.clone());
        Some(Arc::new(OpenAiSynthesizer { config: self.config.clone(), client, name: self.name.clone() }))
    }

    fn outside_calls(&self) -> Option<usize> {
        Some(self.client.budget().concurrency())
    }
}

pub struct OpenAiEmbedder {
    config: OpenAiConfig,
    client: JsonClient,
    name: String,
}

impl OpenAiEmbedder {
    /// An instance outside any job (see [`OpenAiSynthesizer::new`]).
    pub fn new(config: OpenAiConfig) -> OpenAiEmbedder {
        OpenAiEmbedder::with_budget(config, JobBudget::unlimited(UNBUDGETED_CONCURRENCY))
    }

    pub fn with_budget(config: OpenAiConfig, budget: Arc<JobBudget>) -> OpenAiEmbedder {
        let client = JsonClient::new(config.timeout, config.api_key.clone(), config.max_retries, budget);
        let name = format!("openai:{}", config.model);
        OpenAiEmbedder { config, client, name }
    }
}

fn embed_error(failure: HttpFailure) -> EmbedError {
    match failure {
        HttpFailure::Transport(e) => EmbedError::Transport(e),
        HttpFailure::Status { status, body } => EmbedError::Status { status, body },
        HttpFailure::InvalidJson(e) => EmbedError::InvalidAnswer(format!("response is not JSON: {e}")),
        HttpFailure::Refused(refusal) => EmbedError::Skipped(refusal.to_string()),
    }
}

impl Embedder for OpenAiEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn embed(&self, text: &str, member_embeddings: &[&[f32]]) -> Result<Vec<f32>, EmbedError> {
        let embedded = self.embed_once(text, member_embeddings);
        if embedded.is_err() {
            self.client.budget().fell_back();
        }
        embedded
    }

    fn usage(&self) -> ModelUsage {
        self.client.usage()
    }

    fn for_job(&self, budget: &Arc<JobBudget>) -> Option<Arc<dyn Embedder>> {
        let client = self.client.for_budget(budget.clone());
        Some(Arc::new(OpenAiEmbedder { config: self.config.clone(), client, name: self.name.clone() }))
    }

    fn outside_calls(&self) -> Option<usize> {
        Some(self.client.budget().concurrency())
    }
}

impl OpenAiEmbedder {
    fn embed_once(&self, text: &str, member_embeddings: &[&[f32]]) -> Result<Vec<f32>, EmbedError> {
        let body = json!({"model": self.config.model, "input": text});
        let response = self.client.post(&self.config.endpoint("embeddings"), &body).map_err(embed_error)?;
        let values = response
            .pointer("/data/0/embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| EmbedError::InvalidAnswer("no data[0].embedding array".into()))?;
        let vector = values
            .iter()
            .map(|v| v.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| EmbedError::InvalidAnswer("embedding holds a non-number".into()))?;
        if let Some(expected) = member_embeddings.first().map(|e| e.len()) {
            if vector.len() != expected {
                return Err(EmbedError::DimensionMismatch { expected, got: vector.len() });
            }
        }
        crate::engine::merge::embed::validate_embedding(&vector, vector.len())?;
        Ok(vector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::fake_server::{FakeServer, Reply};

    fn config(base_url: String) -> OpenAiConfig {
        OpenAiConfig {
            base_url,
            model: "test-model".into(),
            api_key: Some("sk-test".into()),
            timeout: Duration::from_secs(5),
            max_retries: 2,
        }
    }

    pub fn chat_reply(content: &str) -> Reply {
        Reply::ok(json!({"choices": [{"message": {"role": "assistant", "content": content}}]}).to_string())
    }

    pub const GOOD_ANSWER: &str = r#"{"text":"Pool exhaustion: release the session before the call [1]; retries are not idempotent [2].","confidence":0.91}"#;

    fn members() -> Vec<crate::domain::Memory> {
        crate::engine::tests::three_related_memories()
    }

    fn view(members: &[crate::domain::Memory]) -> TopicView<'_> {
        crate::engine::tests::topic_view(members)
    }

    #[test]
    fn a_valid_chat_answer_becomes_a_draft_and_the_request_is_well_formed() {
        let server = FakeServer::start(vec![chat_reply(GOOD_ANSWER)]);
        let synthesizer = OpenAiSynthesizer::new(config(server.base_url()));
        let members = members();
        let extractive = ExtractiveSynthesizer.synthesize(&view(&members)).unwrap();
        let draft = synthesizer.synthesize(&view(&members)).unwrap();
        assert_eq!(draft.confidence, extractive.confidence.min(0.91));
        assert!(draft.prose.as_deref().unwrap().starts_with("Pool exhaustion"));
        assert_eq!(draft.facts, extractive.facts, "the model words the same facts");
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert!(requests[0].head.starts_with("POST /v1/chat/completions"));
        assert!(requests[0].head.to_lowercase().contains("authorization: bearer sk-test"));
        let body: Value = serde_json::from_str(&requests[0].body).unwrap();
        assert_eq!(body["response_format"]["type"], "json_object");
        let prompt = body["messages"][1]["content"].as_str().unwrap();
        for fact in &extractive.facts {
            assert!(prompt.contains(&fact.text), "{prompt}");
        }
        assert_eq!(body["model"], "test-model");
    }

    #[test]
    fn each_request_and_the_reported_tokens_are_counted_per_instance() {
        let answer = json!({"choices": [{"message": {"role": "assistant", "content": GOOD_ANSWER}}],
                            "usage": {"prompt_tokens": 90, "completion_tokens": 30, "total_tokens": 120}});
        let server = FakeServer::start(vec![Reply::status(503, "busy"), Reply::ok(answer.to_string())]);
        let shared = OpenAiSynthesizer::new(config(server.base_url()));
        let job = shared.for_job(&JobBudget::unlimited(1)).unwrap();
        let members = members();
        job.synthesize(&view(&members)).unwrap();
        assert_eq!(
            job.usage(),
            ModelUsage { calls: 2, tokens: 120, ..ModelUsage::default() },
            "a retry is a call; the tokens come from the answer"
        );
        assert_eq!(shared.usage(), ModelUsage::default(), "another job's instance counts nothing of it");
    }

    #[test]
    fn an_answer_that_is_not_the_expected_json_is_rejected_clearly() {
        let server = FakeServer::start(vec![chat_reply("Sure! Here are the patterns: ...")]);
        let synthesizer = OpenAiSynthesizer::new(config(server.base_url()));
        let members = members();
        let err = synthesizer.synthesize(&view(&members)).unwrap_err();
        assert!(
            matches!(&err, SynthesisError::InvalidAnswer(m) if m.contains("not the expected JSON object")),
            "{err}"
        );
        assert_eq!(server.requests().len(), 1, "an invalid answer is not retried");
    }

    #[test]
    fn an_out_of_range_confidence_is_rejected() {
        let answer = GOOD_ANSWER.replace("0.91", "1.7");
        let server = FakeServer::start(vec![chat_reply(&answer)]);
        let synthesizer = OpenAiSynthesizer::new(config(server.base_url()));
        let members = members();
        let err = synthesizer.synthesize(&view(&members)).unwrap_err();
        assert!(err.to_string().contains("confidence 1.7"), "{err}");
    }

    #[test]
    fn a_server_error_is_retried_then_succeeds() {
        let server = FakeServer::start(vec![Reply::status(500, "overloaded"), chat_reply(GOOD_ANSWER)]);
        let synthesizer = OpenAiSynthesizer::new(config(server.base_url()));
        let members = members();
        assert!(synthesizer.synthesize(&view(&members)).is_ok());
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn a_client_error_is_not_retried() {
        let server = FakeServer::start(vec![Reply::status(401, "bad key"), chat_reply(GOOD_ANSWER)]);
        let synthesizer = OpenAiSynthesizer::new(config(server.base_url()));
        let members = members();
        let err = synthesizer.synthesize(&view(&members)).unwrap_err();
        assert_eq!(err, SynthesisError::Status { status: 401, body: "bad key".into() });
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn the_embedder_returns_the_vector_and_checks_its_dimension() {
        let reply = Reply::ok(json!({"data": [{"embedding": [0.6, 0.8]}]}).to_string());
        let server = FakeServer::start(vec![reply.clone(), reply]);
        let embedder = OpenAiEmbedder::new(config(server.base_url()));
        assert_eq!(embedder.embed("text", &[&[1.0, 0.0]]).unwrap(), vec![0.6, 0.8]);
        let err = embedder.embed("text", &[&[1.0, 0.0, 0.0]]).unwrap_err();
        assert_eq!(err, EmbedError::DimensionMismatch { expected: 3, got: 2 });
        let requests = server.requests();
        assert!(requests[0].head.starts_with("POST /v1/embeddings"));
        assert_eq!(serde_json::from_str::<Value>(&requests[0].body).unwrap()["input"], "text");
    }

    #[test]
    fn the_planner_falls_back_to_extractive_when_the_endpoint_keeps_failing() {
        use crate::domain::Options;
        use crate::engine::{
            merge::embed::CentroidEmbedder,
            plan::{EngineConfig, plan},
        };
        let server = FakeServer::start(vec![Reply::status(503, "down")]);
        let synthesizer = OpenAiSynthesizer::new(OpenAiConfig { max_retries: 1, ..config(server.base_url()) });
        let snapshot = crate::domain::ProjectSnapshot::new(uuid::Uuid::nil(), Some(4), members());
        let now = chrono::Utc::now();
        let p = plan(
            &snapshot,
            &Options::default(),
            &EngineConfig::default(),
            uuid::Uuid::nil(),
            now,
            &synthesizer,
            &CentroidEmbedder,
        );
        assert_eq!(p.syntheses.len(), 1);
        assert_eq!(p.syntheses[0].synthesizer, "extractive");
        assert!(
            p.warnings.iter().any(|w| w.contains("openai:test-model failed") && w.contains("503")),
            "{:?}",
            p.warnings
        );
        assert_eq!(server.requests().len(), 2, "one retry after the first 503");
    }

    #[test]
    fn an_endpoint_that_never_answers_falls_back_to_extractive_within_its_deadline() {
        use crate::domain::Options;
        use crate::engine::{
            merge::embed::CentroidEmbedder,
            plan::{EngineConfig, plan},
        };
        // Connections are accepted by the kernel into the backlog and never answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", silent.local_addr().unwrap());
        let synthesizer =
            OpenAiSynthesizer::new(OpenAiConfig { timeout: Duration::from_secs(1), max_retries: 0, ..config(url) });
        let snapshot = crate::domain::ProjectSnapshot::new(uuid::Uuid::nil(), Some(4), members());
        let started = std::time::Instant::now();
        let p = plan(
            &snapshot,
            &Options::default(),
            &EngineConfig::default(),
            uuid::Uuid::nil(),
            chrono::Utc::now(),
            &synthesizer,
            &CentroidEmbedder,
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(p.syntheses.len(), 1);
        assert_eq!(p.syntheses[0].synthesizer, "extractive");
        assert!(p.warnings.iter().any(|w| w.contains("openai:test-model failed")), "{:?}", p.warnings);
        drop(silent);
    }

    #[test]
    fn a_slow_endpoint_spends_the_jobs_budget_and_later_calls_are_refused_at_once() {
        use crate::engine::budget::Gate;
        use std::time::Instant;
        let server = FakeServer::start(vec![chat_reply(GOOD_ANSWER).after(Duration::from_secs(4))]);
        let stop = tokio_util::sync::CancellationToken::new();
        let budget = JobBudget::new(Duration::from_millis(500), Gate::new(2), stop);
        let synthesizer = OpenAiSynthesizer::with_budget(config(server.base_url()), budget.clone());
        let embedder = OpenAiEmbedder::with_budget(config(server.base_url()), budget.clone());
        let members = members();
        let started = Instant::now();
        let first = synthesizer.synthesize(&view(&members));
        assert!(matches!(first, Err(SynthesisError::Skipped(_))), "{first:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "cut at the budget: {:?}", started.elapsed());
        let refused = Instant::now();
        assert!(matches!(embedder.embed("x", &[]), Err(EmbedError::Skipped(_))));
        assert!(refused.elapsed() < Duration::from_millis(500), "{:?}", refused.elapsed());
        let usage = synthesizer.usage() + embedder.usage() + budget.usage();
        assert_eq!((usage.calls, usage.fallbacks, usage.budget_spent), (1, 2, true), "{usage:?}");
    }

    #[test]
    fn an_unreachable_endpoint_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        drop(listener);
        let embedder = OpenAiEmbedder::new(OpenAiConfig { max_retries: 0, ..config(url) });
        assert!(matches!(embedder.embed("x", &[]), Err(EmbedError::Transport(_))));
    }
}
