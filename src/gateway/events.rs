//! `GET /consolidation/status/{job_id}/events`: Server-Sent Events. Replays the job's events
//! from the event stream, follows live until a terminal one, then closes.

use std::{convert::Infallible, pin::Pin, time::Duration};

use async_nats::jetstream::{self, consumer::pull::Ordered};
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use chrono::Utc;
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ErrorBody, Result},
    extract::Path,
    status::authorized_job,
};
use crate::{
    bus::{JobEventKind, messages::JobEvent},
    store::jobs::{self, Job, JobCounters},
};

/// Silence after which the database is asked whether the job ended without its event reaching us.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// Replay errors in a row after which the stream gives up (the client may reconnect).
const MAX_CONSECUTIVE_ERRORS: u32 = 5;
const LAST_EVENT_ID: &str = "last-event-id";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// The job's events as Server-Sent Events.
///
/// Each SSE event is named after the job event's kind (`queued`, `started`, `progress`,
/// `completed`, `failed`), carries its JSON payload, and has the stream sequence as its id: a
/// client reconnecting with `Last-Event-ID` resumes after it. The stream ends after `completed`
/// or `failed`.
#[utoipa::path(get, path = "/consolidation/status/{job_id}/events", tag = "consolidation",
    params(("job_id" = Uuid, Path),
           ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this stream sequence")),
    responses(
        (status = 200, description = "An event stream of JobEvent payloads", content_type = "text/event-stream", body = JobEvent),
        (status = 204, description = "The job has ended and Last-Event-ID shows its end was seen"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 503, description = "NATS unavailable", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn events(
    admin: Admin,
    State(state): State<AppState>,
    Path(job_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let job = authorized_job(&state, &admin, job_id).await?;
    let last_seen = headers.get(LAST_EVENT_ID).and_then(|value| value.to_str().ok()).and_then(|id| id.parse().ok());
    if let Some(last_seen) = last_seen {
        if job.is_finished() && saw_the_end(&state, &job, last_seen).await {
            // An EventSource reconnects whenever a stream closes; 204 is what tells it to stop.
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    let replay = state.bus.replay_events(state.bus.prefix.job_events_of(job.project_id, job.id)).await?;
    let follow = Follow {
        replay: Box::pin(replay),
        db: state.db.clone(),
        job_id: job.id,
        shutdown: state.shutdown.clone(),
        last_seen,
        done: false,
        errors: 0,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        follow.next_event().await.map(|event| (Ok::<_, Infallible>(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Whether a client that saw event `last_seen` of a finished job has seen its end: the stored
/// terminal event is not after it, or none was stored (the client was sent one made from the
/// job row).
async fn saw_the_end(state: &AppState, job: &Job, last_seen: u64) -> bool {
    let Ok(stream) = state.bus.jetstream.get_stream(state.bus.prefix.events_stream()).await else { return false };
    let subject = state.bus.prefix.job_event(job.project_id, job.id, terminal_kind(job));
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(terminal) => terminal.sequence <= last_seen,
        Err(_) => true,
    }
}

struct Follow {
    replay: Pin<Box<Ordered>>,
    db: PgPool,
    job_id: Uuid,
    shutdown: CancellationToken,
    last_seen: Option<u64>,
    done: bool,
    errors: u32,
}

impl Follow {
    async fn next_event(&mut self) -> Option<Event> {
        while !self.done {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                next = tokio::time::timeout(IDLE_CHECK, self.replay.next()) => next,
            };
            match next {
                Ok(Some(Ok(message))) => {
                    self.errors = 0;
                    if let Some(event) = self.accept(&message) {
                        return Some(event);
                    }
                }
                Ok(Some(Err(error))) => {
                    self.errors += 1;
                    tracing::warn!(%error, "event replay error");
                    if self.errors >= MAX_CONSECUTIVE_ERRORS {
                        return None;
                    }
                }
                Ok(None) => return None,
                Err(_) => {
                    if let Some(event) = self.ended_without_event().await {
                        return Some(event);
                    }
                }
            }
        }
        None
    }

    fn accept(&mut self, message: &jetstream::Message) -> Option<Event> {
        let sequence = message.info().ok().map(|info| info.stream_sequence);
        if sequence.zip(self.last_seen).is_some_and(|(sequence, last)| sequence <= last) {
            return None;
        }
        let event: JobEvent = match serde_json::from_slice(&message.payload) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "skipping an event that is not a JobEvent");
                return None;
            }
        };
        if JobEventKind::parse(&event.event).is_some_and(JobEventKind::is_terminal) {
            self.done = true;
        }
        let named = Event::default().event(event.event.as_str());
        let named = match sequence {
            Some(sequence) => named.id(sequence.to_string()),
            None => named,
        };
        named.json_data(&event).ok()
    }

    /// The job finished a while ago but no terminal event came (it aged out of the stream, or
    /// its publication failed): the database has the end, so it is told from there.
    async fn ended_without_event(&mut self) -> Option<Event> {
        let job = match jobs::get(&self.db, self.job_id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(error) => {
                tracing::warn!(%error, "job status unavailable while following events");
                return None;
            }
        };
        let finished_at = job.completed_at.unwrap_or(job.created_at);
        let settled = (Utc::now() - finished_at).to_std().is_ok_and(|age| age >= IDLE_CHECK);
        if !job.is_finished() || !settled {
            return None;
        }
        self.done = true;
        Event::default().event(terminal_kind(&job).as_str()).json_data(terminal_event(&job)).ok()
    }
}

fn terminal_kind(job: &Job) -> JobEventKind {
    JobEventKind::of_finished_status(&job.status)
}

fn terminal_event(job: &Job) -> JobEvent {
    let mut event = JobEvent::new(terminal_kind(job).as_str(), job.id, job.project_id);
    event.at = job.completed_at.unwrap_or(event.at);
    event.phase = Some(job.phase.clone());
    event.progress = Some(job.progress);
    event.counters = Some(JobCounters {
        memories_merged: job.memories_merged,
        memories_archived: job.memories_archived,
        memories_promoted: job.memories_promoted,
        summaries_created: job.summaries_created,
    });
    event.memories_before = job.memories_before;
    event.memories_after = job.memories_after;
    event.error = job.error_message.clone();
    event.result = job.result.as_ref().map(|result| result.0.clone());
    event
}
