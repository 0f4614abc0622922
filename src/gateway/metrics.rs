//! `/metrics` in the Prometheus (OpenMetrics) text format: request counts and latencies by
//! route, and, read from the database at each scrape, jobs by status and job durations.

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

/// Upper bounds, in seconds, of the job duration histogram.
pub const JOB_DURATION_BUCKETS: [f64; 10] = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
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
              (status = 503, body = super::error::ErrorBody)))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let by_status = jobs::count_by_status(&state.db).await?;
    let (buckets, duration_sum, duration_count) = jobs::duration_histogram(&state.db, &JOB_DURATION_BUCKETS).await?;
    let duration_buckets = JOB_DURATION_BUCKETS
        .iter()
        .copied()
        .chain([f64::MAX])
        .zip(buckets.iter().map(|count| u64::try_from(*count).unwrap_or(0)))
        .collect();
    let snapshot = JobSnapshot {
        by_status,
        duration_buckets,
        duration_sum,
        duration_count: u64::try_from(duration_count).unwrap_or(0),
    };
    if let Ok(mut guard) = state.metrics.jobs.lock() {
        *guard = snapshot;
    }
    let text = state.metrics.render().map_err(|error| super::error::ApiError::Internal(error.into()))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
