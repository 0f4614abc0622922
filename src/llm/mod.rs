//! OpenAI-compatible clients for the engine's `Synthesizer` and `Embedder` traits (blocking
//! HTTP, each attempt on a thread of its own, bounded by the job's `engine::budget`).

mod http;
pub mod openai;
pub mod texts;

#[cfg(test)]
mod fake_server;

pub use openai::{OpenAiConfig, OpenAiEmbedder, OpenAiSynthesizer};
pub use texts::TextEmbedder;
