//! `bench gateway`: trigger latency under concurrent load, measured from a separate process.
//!
//! Creates one fresh project per request first (not timed), then fires one trigger at each from
//! `concurrency` keep-alive HTTP/1.1 connections, so every answer is a real 202 (job row written,
//! command published), not a cheap 409. With `--project` every trigger targets that one project
//! instead, which measures the conflict path. Prints one JSON object.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, StatusCode, Uri,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    header,
};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::{net::TcpStream, task::JoinSet};
use uuid::Uuid;

#[derive(clap::Args, Debug, Clone)]
pub struct GatewayBenchArgs {
    /// Base URL of a running gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Admin token for all projects (`consolidator token`).
    #[arg(long, env = "CONSOLIDATOR_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Trigger this one project every time (mostly 409s) instead of a fresh project per request.
    #[arg(long)]
    pub project: Option<Uuid>,
    /// Triggers to time.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Connections firing in parallel.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    pub requests: usize,
    pub concurrency: usize,
    pub accepted: usize,
    pub conflicts: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub throughput_per_sec: f64,
}

/// Per-request outcome: latency and status.
struct Sample {
    millis: f64,
    status: StatusCode,
}

pub async fn run(args: GatewayBenchArgs) -> anyhow::Result<Summary> {
    if args.requests == 0 || args.concurrency == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    let uri: Uri = args.url.parse().with_context(|| format!("--url {:?} is not a URL", args.url))?;
    let authority = uri.authority().context("--url needs a host and port")?.to_string();
    let client = Client { authority: authority.clone(), token: format!("Bearer {}", args.token) };

    let projects = match args.project {
        Some(project) => vec![project; args.requests],
        None => create_projects(&client, args.requests, args.concurrency).await?,
    };
    let projects = Arc::new(projects);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency.min(args.requests) {
        let (client, projects, next) = (client.clone(), projects.clone(), next.clone());
        workers.spawn(async move {
            let mut connection = client.connect().await?;
            let mut samples = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(project) = projects.get(index) else { break };
                let body = serde_json::json!({ "project_id": project }).to_string();
                let sent = Instant::now();
                let status = connection.send(&client, Method::POST, "/api/v1/consolidation/trigger", body).await?;
                samples.push(Sample { millis: sent.elapsed().as_secs_f64() * 1000.0, status });
            }
            connection.close().await;
            anyhow::Ok(samples)
        });
    }
    let mut samples = Vec::with_capacity(args.requests);
    while let Some(done) = workers.join_next().await {
        samples.extend(done.context("benchmark connection panicked")??);
    }
    Ok(summarize(&samples, args.concurrency, started.elapsed()))
}

async fn create_projects(client: &Client, count: usize, concurrency: usize) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    let chunk = count.div_ceil(concurrency.max(1));
    let mut creators = JoinSet::new();
    for part in ids.chunks(chunk).map(<[Uuid]>::to_vec) {
        let client = client.clone();
        creators.spawn(async move {
            let mut connection = client.connect().await?;
            for id in part {
                let body = serde_json::json!({ "id": id, "name": format!("bench {id}") }).to_string();
                let status = connection.send(&client, Method::POST, "/api/v1/projects", body).await?;
                if status != StatusCode::CREATED {
                    bail!("creating project {id} answered {status}");
                }
            }
            connection.close().await;
            anyhow::Ok(())
        });
    }
    while let Some(done) = creators.join_next().await {
        done.context("project creation panicked")??;
    }
    Ok(ids)
}

fn summarize(samples: &[Sample], concurrency: usize, elapsed: Duration) -> Summary {
    let mut millis: Vec<f64> = samples.iter().map(|sample| sample.millis).collect();
    millis.sort_by(f64::total_cmp);
    let count = |status: StatusCode| samples.iter().filter(|sample| sample.status == status).count();
    let accepted = count(StatusCode::ACCEPTED);
    let conflicts = count(StatusCode::CONFLICT);
    let round = |value: f64| (value * 1000.0).round() / 1000.0;
    Summary {
        requests: samples.len(),
        concurrency,
        accepted,
        conflicts,
        errors: samples.len() - accepted - conflicts,
        p50_ms: round(percentile(&millis, 0.50)),
        p90_ms: round(percentile(&millis, 0.90)),
        p99_ms: round(percentile(&millis, 0.99)),
        max_ms: round(millis.last().copied().unwrap_or(0.0)),
        mean_ms: round(if millis.is_empty() { 0.0 } else { millis.iter().sum::<f64>() / millis.len() as f64 }),
        throughput_per_sec: round(samples.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON)),
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Clone)]
struct Client {
    authority: String,
    token: String,
}

impl Client {
    async fn connect(&self) -> anyhow::Result<Connection> {
        let stream =
            TcpStream::connect(&self.authority).await.with_context(|| format!("connecting to {}", self.authority))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "benchmark connection ended");
            }
        });
        Ok(Connection { sender, driver })
    }
}

struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Connection {
    async fn send(&mut self, client: &Client, method: Method, path: &str, body: String) -> anyhow::Result<StatusCode> {
        self.sender.ready().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &client.authority)
            .header(header::AUTHORIZATION, &client.token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        // Read the whole answer, so the connection is free for the next request.
        response.into_body().collect().await?;
        Ok(status)
    }

    async fn close(self) {
        drop(self.sender);
        let _ = self.driver.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(millis: f64, status: StatusCode) -> Sample {
        Sample { millis, status }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.50), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&values, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_summary_counts_outcomes_by_status() {
        let samples = [
            sample(1.0, StatusCode::ACCEPTED),
            sample(3.0, StatusCode::CONFLICT),
            sample(2.0, StatusCode::SERVICE_UNAVAILABLE),
            sample(4.0, StatusCode::ACCEPTED),
        ];
        let summary = summarize(&samples, 2, Duration::from_secs(2));
        assert_eq!((summary.accepted, summary.conflicts, summary.errors), (2, 1, 1));
        assert_eq!(summary.p50_ms, 2.0);
        assert_eq!(summary.max_ms, 4.0);
        assert_eq!(summary.mean_ms, 2.5);
        assert_eq!(summary.throughput_per_sec, 2.0);
    }
}
