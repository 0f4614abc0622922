//! OpenAI-compatible clients for the engine's `Synthesizer` and `Embedder` traits (blocking
//! HTTP; the worker calls the planner on a blocking thread).

mod http;
pub mod openai;

#[cfg(test)]
mod fake_server;

pub use openai::{OpenAiConfig, OpenAiEmbedder, OpenAiSynthesizer};
