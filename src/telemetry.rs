//! Logging to stderr (stdout carries `token`, `export` and `bench` output): human-readable by
//! default, JSON lines with `LOG_FORMAT=json`; `RUST_LOG` filters.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn,tower_http=info,hnsw_rs=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests, benches) keeps the first subscriber.
    let _ = if format == "json" {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr).with_current_span(true).with_span_list(true))
            .try_init()
    } else {
        registry.with(fmt::layer().with_writer(std::io::stderr).with_target(false)).try_init()
    };
}
