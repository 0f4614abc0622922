//! `/metrics` in the Prometheus (OpenMetrics) text format: request counts and latencies by
//! route, and jobs by status and job durations, read from counters the database keeps (a scrape
//! reads a few rows, whatever the number of jobs).

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet},
    metrics::{
        MetricType,
        counter::Counter,
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, error::Result};
use crate::store::jobs::{self, JobStatus};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    jobs: Arc<Mutex<JobSnapshot>>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("consolidator");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        registry.register("http_request_duration_seconds", "Time to the response head, by route", latency.clone());
        let jobs = Arc::new(Mutex::new(JobSnapshot::default()));
        registry.register_collector(Box::new(JobCollector(jobs.clone())));
        Self { registry, requests, latency, jobs }
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let route_labels = RouteLabels { method: method.to_owned(), route: route.to_owned() };
        self.latency.get_or_create(&route_labels).observe(seconds);
        let labels = RequestLabels { method: route_labels.method, route: route_labels.route, status };
        self.requests.get_or_create(&labels).inc();
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Job figures as of the last scrape.
#[derive(Debug, Default, Clone)]
struct JobSnapshot {
    by_status: Vec<(String, i64)>,
    /// Per-bucket (not cumulative) counts; the last bucket is +Inf.
    duration_buckets: Vec<(f64, u64)>,
    duration_sum: f64,
    duration_count: u64,
}

#[derive(Debug)]
struct JobCollector(Arc<Mutex<JobSnapshot>>);

impl Collector for JobCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.lock().map(|guard| guard.clone()).unwrap_or_default();
        let mut gauges = encoder.encode_descriptor("jobs", "Consolidation jobs by status", None, MetricType::Gauge)?;
        for status in JobStatus::ALL {
            let count = snapshot.by_status.iter().find(|(name, _)| name == status.as_str()).map_or(0, |(_, n)| *n);
            let labels = [("status", status.as_str())];
            ConstGauge::new(count).encode(gauges.encode_family(&labels)?)?;
        }
        let mut histogram = encoder.encode_descriptor(
            "job_duration_seconds",
            "Run time of completed jobs, from start to completion",
            None,
            MetricType::Histogram,
        )?;
        histogram.encode_histogram::<NoLabelSet>(
            snapshot.duration_sum,
            snapshot.duration_count,
            &snapshot.duration_buckets,
            None,
        )
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell how much
/// of a guess was right.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len() && presented.iter().zip(expected).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Counts and times every request, labelled by its route template (never the raw path, whose
/// ids would make the label set unbounded).
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
              (status = 401, description = "METRICS_TOKEN is set and the request does not carry it", body = super::error::ErrorBody),
              (status = 503, body = super::error::ErrorBody)))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<Response> {
    if let Some(token) = state.config.metrics_token.as_deref().filter(|token| !token.is_empty()) {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same_secret(presented.trim().as_bytes(), token.as_bytes()) {
            return Err(super::error::ApiError::Unauthorized(
                "/metrics needs `Authorization: Bearer <METRICS_TOKEN>`".to_owned(),
            ));
        }
    }
    let mut conn = state.db.acquire().await?;
    let by_status = jobs::count_by_status(&mut *conn).await?;
    let histogram = jobs::duration_histogram(&mut conn).await?;
    drop(conn);
    let duration_buckets = histogram.bounds.iter().copied().chain([f64::MAX]).zip(histogram.buckets).collect();
    let snapshot =
        JobSnapshot { by_status, duration_buckets, duration_sum: histogram.sum, duration_count: histogram.count };
    if let Ok(mut guard) = state.metrics.jobs.lock() {
        *guard = snapshot;
    }
    let text = state.metrics.render().map_err(|error| super::error::ApiError::Internal(error.into()))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
