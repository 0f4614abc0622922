//! Logging to stderr (stdout carries `token`, `export` and `bench` output): human-readable by
//! default (coloured only on a terminal, and never with `NO_COLOR` set), JSON lines with
//! `LOG_FORMAT=json`; `RUST_LOG` filters.

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
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
        registry.with(fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(colour)).try_init()
    };
}

/// Resets the peak resident set size (Linux: `clear_refs` 5), so that a later `peak_rss_mib`
/// measures from now on; false where the kernel does not offer it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident set size in MiB (VmHWM), or `None` off Linux.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
