//! The seeded driver: picks an action per step, performs it through the gateway's router, waits
//! for what the worker does with it, and checks the invariants.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

use super::invariants::{self, Model};
use super::{SoakConfig, SoakError, SoakReport};
use crate::bus::Bus;
use crate::config::{GatewayConfig, RetentionConfig};
use crate::engine::similarity::ann::gaussian;
use crate::gateway::{self, AppState, auth};
use crate::store::memories::Marks;

const DIM: usize = 24;
const TOPICS: usize = 24;
const SECRET: &str = "soak-driver-secret-of-32-bytes-at-least";
const WAIT: Duration = Duration::from_secs(60);
const SUBJECTS: [&str; 8] = [
    "the upload step",
    "the checkout API",
    "the nightly backup",
    "the search index",
    "the login page",
    "the billing export",
    "the deploy pipeline",
    "the cache warmer",
];
const FIXES: [&str; 6] = [
    "retrying with exponential backoff",
    "raising the connection pool size",
    "pinning the client library",
    "clearing the stale lock file",
    "moving the job to off-peak hours",
    "adding an index on the lookup column",
];
const WORDINGS: [&str; 4] = [
    "{s} failed intermittently; {f} fixed it.",
    "Fix for {s}: {f}.",
    "When {s} breaks, the cure is {f}.",
    "{s} was flaky until {f}.",
];

/// A job the driver ran for real, and the store's marks just before it.
struct JobRecord {
    id: Uuid,
    before: HashMap<Uuid, Marks>,
    /// Nothing but reuses, dry runs and refusals happened since it ended.
    clean: bool,
}

struct Driver {
    router: axum::Router,
    token: String,
    db: PgPool,
    project_id: Uuid,
    rng: ChaCha8Rng,
    model: Model,
    topics: Vec<Vec<f32>>,
    /// An original's topic and text, for re-learning it.
    written: HashMap<Uuid, (usize, String)>,
    jobs: Vec<JobRecord>,
    /// Something changed since the last real job (so a job may change something).
    dirty: bool,
    /// The value guard of the last completed real job: under another guard the same store may
    /// plan differently (`auto` supersedes what `review` queued).
    last_guard: Option<Value>,
    report: SoakReport,
    step: usize,
    action: &'static str,
}

/// Runs the simulation on a project that exists, with a worker running on `db` and `bus`.
pub async fn run(
    db: PgPool,
    bus: Bus,
    project_id: Uuid,
    retention: RetentionConfig,
    config: SoakConfig,
) -> Result<SoakReport, SoakError> {
    let gateway_config = GatewayConfig {
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        jwt_secret: Some(SECRET.to_owned()),
        jwt_public_key: None,
        jwt_issuer: None,
        jwt_audience: None,
        request_timeout_secs: 60,
        body_limit_bytes: 1024 * 1024,
        rollback_wait_ms: 10_000,
        ingest_max_batch: 100,
        sse_max_streams: 4,
        search_max_concurrent: 4,
        search_max_candidates: 10_000,
        metrics_token: None,
    };
    let fail = |message: String| SoakError::Driver { seed: config.seed, step: 0, message };
    let state = AppState::new(db.clone(), bus, gateway_config, retention).map_err(|e| fail(e.to_string()))?;
    let claims = auth::Claims::admin("soak@consolidator", vec!["*".to_owned()], 24 * 3600);
    let token = auth::mint(SECRET, &claims).map_err(|e| fail(e.to_string()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let topics = (0..TOPICS).map(|_| unit((0..DIM).map(|_| gaussian(&mut rng)).collect())).collect();
    let mut driver = Driver {
        router: gateway::router(state),
        token,
        db,
        project_id,
        rng,
        model: Model::default(),
        topics,
        written: HashMap::new(),
        jobs: Vec::new(),
        dirty: false,
        last_guard: None,
        report: SoakReport { seed: config.seed, steps: config.steps, ..SoakReport::default() },
        step: 0,
        action: "start",
    };
    for step in 0..config.steps {
        driver.step = step;
        driver.act().await?;
        driver.check().await?;
    }
    driver.report.memories_ingested = driver.model.originals.len();
    driver.report.active_at_end = sqlx::query_scalar(
        "SELECT count(*) FROM task_memories WHERE project_id = $1 AND NOT is_archived AND NOT is_duplicate",
    )
    .bind(project_id)
    .fetch_one(&driver.db)
    .await
    .map_err(|e| driver.driver_error(e.to_string()))?;
    Ok(driver.report)
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

impl Driver {
    fn broken(&self, message: String) -> SoakError {
        SoakError::Invariant { seed: self.report.seed, step: self.step, action: self.action.to_owned(), message }
    }

    fn driver_error(&self, message: String) -> SoakError {
        SoakError::Driver { seed: self.report.seed, step: self.step, message: format!("{}: {message}", self.action) }
    }

    fn tally(&mut self, outcome: &str) {
        *self.report.actions.entry(format!("{}:{outcome}", self.action)).or_default() += 1;
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value), SoakError> {
        let request = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .map_err(|e| self.driver_error(e.to_string()))?;
        let response = self.router.clone().oneshot(request).await.map_err(|e| self.driver_error(e.to_string()))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .map_err(|e| self.driver_error(e.to_string()))?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_server_error() {
            return Err(self.broken(format!("{path} answered {status}: {value}")));
        }
        Ok((status, value))
    }

    async fn check(&mut self) -> Result<(), SoakError> {
        invariants::check(&self.db, self.project_id, &self.model).await.map_err(|message| self.broken(message))?;
        self.report.invariant_checks += 1;
        Ok(())
    }

    async fn marks(&self) -> Result<HashMap<Uuid, Marks>, SoakError> {
        invariants::marks(&self.db, self.project_id).await.map_err(|message| self.driver_error(message))
    }

    /// Something other than usage changed: no earlier job's state is intact any more.
    fn changed(&mut self) {
        self.dirty = true;
        self.jobs.iter_mut().for_each(|job| job.clean = false);
    }

    async fn act(&mut self) -> Result<(), SoakError> {
        let roll = self.rng.random_range(0..100u32);
        match roll {
            0..15 => self.ingest().await,
            15..25 => self.relearn().await,
            25..45 => self.reuse().await,
            45..60 => self.job().await,
            60..67 => self.dry_then_real().await,
            67..79 => self.rollback().await,
            79..85 => self.unmerge().await,
            85..90 => self.review().await,
            _ => self.archive_or_unarchive().await,
        }
    }

    fn embedding_near(&mut self, topic: usize) -> Vec<f32> {
        let noise: Vec<f32> = (0..DIM).map(|_| gaussian(&mut self.rng) * 0.03).collect();
        unit(self.topics[topic].iter().zip(noise).map(|(t, n)| t + n).collect())
    }

    fn text(&mut self, topic: usize) -> String {
        let wording = WORDINGS[self.rng.random_range(0..WORDINGS.len())];
        let mut text = wording
            .replace("{s}", SUBJECTS[topic % SUBJECTS.len()])
            .replace("{f}", FIXES[(topic / SUBJECTS.len()) % FIXES.len()]);
        if topic % 5 == 0 {
            text.push_str(&format!(" It needs client 2.{}.", self.rng.random_range(0..3u32)));
        }
        let mut chars = text.chars();
        chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or(text)
    }

    async fn write(&mut self, memories: Vec<(usize, String)>) -> Result<(), SoakError> {
        let mut body: Vec<Value> = Vec::with_capacity(memories.len());
        for (topic, text) in &memories {
            let id = Uuid::from_u128(self.rng.random::<u128>());
            let embedding = self.embedding_near(*topic);
            body.push(json!({"id": id, "execution_summary": text, "memory_type": "error_fix",
                             "context_embedding": embedding}));
        }
        let path = format!("/projects/{}/memories", self.project_id);
        let (status, answer) = self.call(Method::POST, &path, Some(json!({"memories": body}))).await?;
        if status != StatusCode::CREATED {
            return Err(self.driver_error(format!("ingest answered {status}: {answer}")));
        }
        let ids: Vec<Uuid> =
            serde_json::from_value(answer["ids"].clone()).map_err(|e| self.driver_error(e.to_string()))?;
        for (id, memory) in ids.into_iter().zip(memories) {
            self.model.originals.insert(id);
            self.written.insert(id, memory);
        }
        self.tally("ok");
        self.changed();
        Ok(())
    }

    async fn ingest(&mut self) -> Result<(), SoakError> {
        self.action = "ingest";
        let n = self.rng.random_range(1..5usize);
        let memories = (0..n)
            .map(|_| {
                let topic = self.rng.random_range(0..TOPICS);
                (topic, self.text(topic))
            })
            .collect();
        self.write(memories).await
    }

    async fn relearn(&mut self) -> Result<(), SoakError> {
        self.action = "relearn";
        let mut known: Vec<(usize, String)> = self.written.values().cloned().collect();
        if known.is_empty() {
            return self.ingest().await;
        }
        known.sort();
        let (topic, text) = known[self.rng.random_range(0..known.len())].clone();
        self.write(vec![(topic, text)]).await
    }

    async fn random_memory(&mut self, filter: &str) -> Result<Option<Uuid>, SoakError> {
        // In an order a seed reproduces: written memories by their (seeded) ids, the ones jobs
        // wrote (under fresh ids) by what they are made of.
        let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
            "SELECT id FROM task_memories WHERE project_id = $1 AND {filter}
              ORDER BY memory_type IN ('consolidated', 'synthesis'),
                       CASE WHEN memory_type IN ('consolidated', 'synthesis')
                            THEN memory_type || execution_summary || COALESCE(array_to_string(consolidated_from, ','), '')
                                 || learned_at::text
                            ELSE id::text END, id"
        ))
                .bind(self.project_id)
                .fetch_all(&self.db)
                .await
                .map_err(|e| self.driver_error(e.to_string()))?;
        Ok((!ids.is_empty()).then(|| ids[self.rng.random_range(0..ids.len())]))
    }

    async fn reuse(&mut self) -> Result<(), SoakError> {
        self.action = "reuse";
        let Some(id) = self.random_memory("true").await? else { return Ok(()) };
        let (status, answer) = self.call(Method::POST, &format!("/memories/{id}/reuse"), None).await?;
        match status {
            StatusCode::OK => {
                self.model.reuses += 1;
                if answer["is_duplicate"] == true {
                    return Err(self.broken(format!("a reuse counted on the duplicate {}", answer["id"])));
                }
                self.tally("counted");
            }
            StatusCode::CONFLICT => self.tally("retired"),
            other => return Err(self.broken(format!("reuse of {id} answered {other}: {answer}"))),
        }
        Ok(())
    }

    async fn trigger(&mut self, options: Value) -> Result<Uuid, SoakError> {
        let body = json!({"project_id": self.project_id, "options": options});
        let (status, answer) = self.call(Method::POST, "/consolidation/trigger", Some(body)).await?;
        if status != StatusCode::ACCEPTED {
            return Err(self.driver_error(format!("trigger answered {status}: {answer}")));
        }
        answer["job_id"].as_str().and_then(|id| id.parse().ok()).ok_or_else(|| self.driver_error(answer.to_string()))
    }

    async fn finished(&self, job_id: Uuid) -> Result<crate::store::jobs::Job, SoakError> {
        let started = Instant::now();
        loop {
            let job = crate::store::jobs::get(&self.db, job_id).await.map_err(|e| self.driver_error(e.to_string()))?;
            if let Some(job) = job.filter(|job| {
                !matches!(job.status, crate::domain::JobStatus::Pending | crate::domain::JobStatus::Running)
            }) {
                return Ok(job);
            }
            if started.elapsed() > WAIT {
                return Err(self.broken(format!("job {job_id} did not end within {} s", WAIT.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Mostly without the blast-radius limit (a store made mostly of copies would trip it every
    /// time); one job in ten keeps the default limit, and may fail on it, changing nothing. One
    /// in five supersedes by itself (`value_guard=auto`) instead of queueing reviews.
    fn options(&mut self) -> Value {
        let mut options = if self.rng.random_bool(0.3) { json!({"mode": "full"}) } else { json!({}) };
        if self.rng.random_bool(0.9) {
            options["max_changed_share"] = json!(1.0);
        }
        if self.rng.random_bool(0.2) {
            options["value_guard"] = json!("auto");
        }
        options
    }

    async fn job(&mut self) -> Result<(), SoakError> {
        self.action = "job";
        let options = self.options();
        let cancel = self.rng.random_bool(0.1);
        let before = self.marks().await?;
        let job_id = self.trigger(options).await?;
        if cancel {
            let path = format!("/consolidation/jobs/{job_id}/cancel");
            self.call(Method::POST, &path, None).await?;
        }
        let job = self.finished(job_id).await?;
        self.settle(job, before).await
    }

    /// Checks and records a real job that ended.
    async fn settle(&mut self, job: crate::store::jobs::Job, before: HashMap<Uuid, Marks>) -> Result<(), SoakError> {
        use crate::domain::JobStatus;
        match job.status {
            JobStatus::Completed => {
                let counters = job.counters();
                let changed = counters.memories_merged
                    + counters.memories_archived
                    + counters.memories_promoted
                    + counters.summaries_created
                    > 0;
                // `auto` supersedes what earlier `review` jobs queued, whenever a full run meets it:
                // the rule is held for the default guard, after a job under the same.
                let guard = job.options.0.get("value_guard").cloned();
                let same_guard = self.last_guard.is_none() || self.last_guard == guard;
                let default_guard = guard.as_ref().is_none_or(|g| g == "review");
                self.last_guard = guard;
                if changed && !self.dirty && same_guard && default_guard {
                    let scope = job.result.as_ref().map(|r| r.0["scope"].clone()).unwrap_or_default();
                    let merges = job.result.as_ref().map(|r| r.0["merges"].clone()).unwrap_or_default();
                    return Err(self.broken(format!(
                        "job {} changed the store although nothing was new since the last job: {counters:?}, \
                         options {}, scope {scope}, merges {merges}",
                        job.id, job.options.0
                    )));
                }
                if changed {
                    self.jobs.iter_mut().for_each(|j| j.clean = false);
                }
                self.dirty = false;
                self.jobs.push(JobRecord { id: job.id, before, clean: true });
                self.tally(if changed { "changed" } else { "unchanged" });
            }
            JobStatus::Cancelled | JobStatus::Failed => {
                if self.marks().await? != before {
                    return Err(self.broken(format!("job {} ended {} but changed the store", job.id, job.status)));
                }
                self.tally(job.status.as_str());
            }
            other => return Err(self.broken(format!("job {} ended {other}", job.id))),
        }
        Ok(())
    }

    async fn dry_then_real(&mut self) -> Result<(), SoakError> {
        self.action = "dry_then_real";
        let mut options = self.options();
        options["dry_run"] = json!(true);
        let dry_id = self.trigger(options.clone()).await?;
        let dry = self.finished(dry_id).await?;
        options["dry_run"] = json!(false);
        let before = self.marks().await?;
        let real_id = self.trigger(options).await?;
        let real = self.finished(real_id).await?;
        if dry.status == crate::domain::JobStatus::Completed && real.status == crate::domain::JobStatus::Completed {
            let predicted = (dry.counters(), dry.memories_after);
            let made = (real.counters(), real.memories_after);
            if predicted != made {
                return Err(self.broken(format!("the dry run predicted {predicted:?}, the real run made {made:?}")));
            }
        }
        self.settle(real, before).await
    }

    async fn rollback(&mut self) -> Result<(), SoakError> {
        self.action = "rollback";
        if self.jobs.is_empty() {
            return self.job().await;
        }
        let index = self.rng.random_range(0..self.jobs.len());
        let cascade = self.rng.random_bool(0.5);
        let job_id = self.jobs[index].id;
        let before = self.marks().await?;
        let body = json!({"consolidation_id": job_id, "cascade": cascade});
        let (mut status, mut answer) = self.call(Method::POST, "/consolidation/rollback", Some(body)).await?;
        while status == StatusCode::ACCEPTED {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let path = format!("/consolidation/rollback/{}", answer["rollback_id"].as_str().unwrap_or_default());
            (status, answer) = self.call(Method::GET, &path, None).await?;
            if answer["status"] == "completed" {
                status = StatusCode::OK;
            } else if answer["status"] == "refused" {
                status = StatusCode::CONFLICT;
            }
        }
        if std::env::var("SOAK_TRACE").is_ok() {
            eprintln!("step {} rollback {job_id} cascade {cascade}: {status} {answer}", self.step);
        }
        match status {
            StatusCode::OK => {
                let first_time = !answer["warnings"].to_string().contains("already rolled back");
                let record = &self.jobs[index];
                if first_time && record.clean && !cascade {
                    let now = self.marks().await?;
                    for (id, marks) in &record.before {
                        if now.get(id) != Some(marks) {
                            return Err(self.broken(format!(
                                "rollback of job {job_id}: memory {id} is {:?}, was {marks:?} before the job",
                                now.get(id)
                            )));
                        }
                    }
                }
                if first_time {
                    self.changed();
                }
                self.tally(if cascade { "cascaded" } else { "done" });
            }
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST | StatusCode::GONE => {
                if self.marks().await? != before {
                    return Err(self.broken(format!("a refused rollback of {job_id} changed the store: {answer}")));
                }
                self.tally("refused");
            }
            other => return Err(self.broken(format!("rollback of {job_id} answered {other}: {answer}"))),
        }
        Ok(())
    }

    async fn unmerge(&mut self) -> Result<(), SoakError> {
        self.action = "unmerge";
        let filter = "memory_type = 'consolidated' AND NOT is_archived AND NOT is_duplicate";
        let Some(id) = self.random_memory(filter).await? else { return Ok(()) };
        let before = self.marks().await?;
        let (status, answer) = self.call(Method::POST, &format!("/memories/{id}/unmerge"), None).await?;
        match status {
            StatusCode::OK => {
                self.changed();
                self.tally("done");
            }
            StatusCode::CONFLICT | StatusCode::GONE => {
                if self.marks().await? != before {
                    return Err(self.broken(format!("a refused unmerge of {id} changed the store: {answer}")));
                }
                self.tally("refused");
            }
            other => return Err(self.broken(format!("unmerge of {id} answered {other}: {answer}"))),
        }
        Ok(())
    }

    async fn review(&mut self) -> Result<(), SoakError> {
        self.action = "review";
        let open: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM consolidation_reviews WHERE project_id = $1 AND status = 'open' ORDER BY id",
        )
        .bind(self.project_id)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.driver_error(e.to_string()))?;
        if open.is_empty() {
            return self.reuse().await;
        }
        let id = open[self.rng.random_range(0..open.len())];
        let decision = if self.rng.random_bool(0.5) { "approve" } else { "reject" };
        let (status, answer) = self.call(Method::POST, &format!("/reviews/{id}/{decision}"), None).await?;
        match status {
            StatusCode::OK => {
                self.changed();
                self.tally(decision);
            }
            StatusCode::CONFLICT => self.tally("stale"),
            other => return Err(self.broken(format!("{decision} of review {id} answered {other}: {answer}"))),
        }
        Ok(())
    }

    async fn archive_or_unarchive(&mut self) -> Result<(), SoakError> {
        let (action, filter) = if self.rng.random_bool(0.6) {
            ("archive", "NOT is_archived AND NOT is_duplicate")
        } else {
            ("unarchive", "is_archived AND archive_reason = 'manual'")
        };
        self.action = action;
        let Some(id) = self.random_memory(filter).await? else { return Ok(()) };
        let (status, answer) = self.call(Method::POST, &format!("/memories/{id}/{action}"), None).await?;
        if status != StatusCode::OK {
            return Err(self.broken(format!("{action} of {id} answered {status}: {answer}")));
        }
        self.changed();
        self.tally("ok");
        Ok(())
    }
}
