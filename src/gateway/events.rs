//! `GET /consolidation/status/{job_id}/events`: Server-Sent Events. Replays the job's events
//! from the event stream, follows live until a terminal one, then closes.

use std::{convert::Infallible, pin::Pin, time::Duration};

use super::slots::{Refusal, Slot};
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
    error::{ApiError, ErrorBody, Result},
    extract::Path,
    status::authorized_job,
};
use crate::domain::JobEventKind;
use crate::{
    bus::messages::JobEvent,
    store::{
        jobs::{self, Job},
        rollbacks,
    },
};

/// Silence after which the database is first asked whether the job ended without its event
/// reaching us; each further silent check waits twice as long, up to [`MAX_IDLE_CHECK`], so an
/// idle stream costs the database little.
const IDLE_CHECK: Duration = Duration::from_secs(2);
const MAX_IDLE_CHECK: Duration = Duration::from_secs(30);
/// Replay errors in a row after which the stream gives up (the client may reconnect).
const MAX_CONSECUTIVE_ERRORS: u32 = 5;
const LAST_EVENT_ID: &str = "last-event-id";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// The job's events as Server-Sent Events.
///
/// Each SSE event is named after the job event's kind (`queued`, `started`, `progress`,
/// `completed`, `failed`, `rolled_back`), its `data` is the JobEvent as JSON, and its id is the
/// stream sequence: a client reconnecting with `Last-Event-ID` resumes after it. The stream ends
/// after `failed`, after `rolled_back`, or after `completed` unless the job is being (or has
/// been) rolled back, in which case it stays open for `rolled_back`. At most SSE_MAX_STREAMS
/// streams are open at once; beyond that the answer is 429.
#[utoipa::path(get, path = "/consolidation/status/{job_id}/events", tag = "consolidation",
    params(("job_id" = Uuid, Path),
           ("Last-Event-ID" = Option<i64>, Header, nullable = false, minimum = 0,
            description = "Resume after this stream sequence (the `id` of the last event seen)")),
    responses(
        (status = 200, description = "A `text/event-stream` of Server-Sent Events; each event's `data` is a JobEvent \
                                       (components/schemas/JobEvent) as JSON, its `event` the JobEvent's kind, its `id` the stream sequence",
            content_type = "text/event-stream", body = String),
        (status = 204, description = "The job has ended and Last-Event-ID shows its end was seen"),
        (status = 400, description = "Malformed id or Last-Event-ID", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 429, description = "SSE_MAX_STREAMS event streams are open already", body = ErrorBody,
            headers(("retry-after" = u32, description = "Seconds to wait"))),
        (status = 503, description = "NATS unavailable", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn events(
    admin: Admin,
    State(state): State<AppState>,
    Path(job_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let last_seen = last_event_id(&headers)?;
    let job = authorized_job(&state, &admin, job_id).await?;
    let permit = state.sse_streams.take(admin.subject()).map_err(|refusal| match refusal {
        Refusal::Full => ApiError::TooManyRequests(format!(
            "{} event streams are open, the most SSE_MAX_STREAMS allows; retry later",
            state.config.sse_max_streams
        )),
        Refusal::HolderFull { per_holder } => ApiError::TooManyRequests(format!(
            "this token has {per_holder} event streams open, half of SSE_MAX_STREAMS; close one or retry later"
        )),
    })?;
    if let Some(last_seen) = last_seen {
        let rollback_pending = rollbacks::active_for_job(&state.db, job.id).await?;
        if job.is_finished() && !rollback_pending && saw_the_end(&state, &job, last_seen).await {
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
        completed_sent: false,
        errors: 0,
        idle: IDLE_CHECK,
        _permit: permit,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        follow.next_event().await.map(|event| (Ok::<_, Infallible>(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// The stream sequence a reconnecting client saw last; 400 for anything else than the ids this
/// stream hands out (0 to i64::MAX, as the document says).
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(value) = headers.get(LAST_EVENT_ID) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|id| id.parse::<i64>().ok())
        .and_then(|id| u64::try_from(id).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Last-Event-ID must be the id of an event of this stream: an integer from 0 to {}",
                i64::MAX
            ))
        })
}

/// Whether a client that saw event `last_seen` of a finished job has seen its end (for a job
/// rolled back, `rolled_back`): the stored terminal event is not after it, or none was stored
/// (the client was sent one made from the job row).
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
    /// `completed` went out; the stream stays open only while a rollback may follow.
    completed_sent: bool,
    errors: u32,
    /// The current wait before asking the database (doubles while nothing arrives).
    idle: Duration,
    /// Held while the stream lives: SSE_MAX_STREAMS counts it.
    _permit: Slot,
}

impl Follow {
    async fn next_event(&mut self) -> Option<Event> {
        while !self.done {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                next = tokio::time::timeout(self.idle, self.replay.next()) => next,
            };
            match next {
                Ok(Some(Ok(message))) => {
                    self.errors = 0;
                    self.idle = IDLE_CHECK;
                    let Some((sequence, event)) = self.decode(&message) else { continue };
                    drop(message);
                    if let Some(event) = self.accept(sequence, event).await {
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
                    self.idle = (self.idle * 2).min(MAX_IDLE_CHECK);
                }
            }
        }
        None
    }

    /// The message's stream sequence and event, unless it was seen already or is no JobEvent.
    fn decode(&mut self, message: &jetstream::Message) -> Option<(Option<u64>, JobEvent)> {
        let event: JobEvent = match serde_json::from_slice(&message.payload) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "skipping an event that is not a JobEvent");
                return None;
            }
        };
        let sequence = message.info().ok().map(|info| info.stream_sequence);
        if sequence.zip(self.last_seen).is_some_and(|(sequence, last)| sequence <= last) {
            // A reconnecting client saw it; it still counts, so `completed` is not told twice.
            self.completed_sent |= event.event == JobEventKind::Completed;
            return None;
        }
        Some((sequence, event))
    }

    async fn accept(&mut self, sequence: Option<u64>, event: JobEvent) -> Option<Event> {
        match event.event {
            JobEventKind::Completed => {
                self.completed_sent = true;
                self.done = !rollback_may_follow(&self.db, self.job_id).await;
            }
            JobEventKind::Failed | JobEventKind::Cancelled | JobEventKind::RolledBack => self.done = true,
            _ => {}
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
        let settled = |at: chrono::DateTime<Utc>| (Utc::now() - at).to_std().is_ok_and(|age| age >= IDLE_CHECK);
        if !job.is_finished() || !settled(job.completed_at.unwrap_or(job.created_at)) {
            return None;
        }
        if !self.completed_sent {
            let kind = JobEventKind::of_finished(job.status);
            self.completed_sent = true;
            // Only a completed job can be rolled back later.
            self.done = kind != JobEventKind::Completed || !rollback_may_follow(&self.db, self.job_id).await;
            return Event::default().event(kind.as_str()).json_data(terminal_event(&job, kind)).ok();
        }
        match job.rolled_back_at {
            Some(at) if settled(at) => {
                self.done = true;
                let kind = JobEventKind::RolledBack;
                Event::default().event(kind.as_str()).json_data(terminal_event(&job, kind)).ok()
            }
            Some(_) => None,
            None => {
                // The rollback ended without undoing the job (refused or failed): nothing follows.
                self.done = !rollbacks::active_for_job(&self.db, self.job_id).await.unwrap_or(false);
                None
            }
        }
    }
}

/// Whether the completed job has been rolled back (its event may still be on its way) or a
/// rollback of it is under way. A database error says no: the stream then simply ends.
async fn rollback_may_follow(db: &PgPool, job_id: Uuid) -> bool {
    match jobs::get(db, job_id).await {
        Ok(Some(job)) if job.rolled_back_at.is_some() => true,
        Ok(Some(_)) => rollbacks::active_for_job(db, job_id).await.unwrap_or(false),
        _ => false,
    }
}

/// The job's last event: `rolled_back` for a job rolled back, else `completed`, `failed` or
/// `cancelled`.
fn terminal_kind(job: &Job) -> JobEventKind {
    if job.rolled_back_at.is_some() { JobEventKind::RolledBack } else { JobEventKind::of_finished(job.status) }
}

/// A terminal event of `kind` told from the job row.
fn terminal_event(job: &Job, kind: JobEventKind) -> JobEvent {
    let mut event = JobEvent::new(kind, job.id, job.project_id);
    let at = if kind == JobEventKind::RolledBack { job.rolled_back_at } else { job.completed_at };
    event.at = at.unwrap_or(event.at);
    event.phase = Some(job.phase);
    event.progress = Some(job.progress);
    event.counters = Some(job.counters());
    event.memories_before = job.memories_before;
    event.memories_after = job.memories_after;
    event.error = job.error_message.clone();
    event.result = job.event_result();
    event
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn last_event_id_is_a_stream_sequence_or_a_bad_request() {
        let read = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(LAST_EVENT_ID, HeaderValue::from_str(value).unwrap());
            last_event_id(&headers)
        };
        assert_eq!(last_event_id(&HeaderMap::new()).unwrap(), None);
        assert_eq!(read("57").unwrap(), Some(57));
        assert_eq!(read("9223372036854775807").unwrap(), Some(i64::MAX as u64));
        for refused in ["", "+5", "-1", "5.0", "x", "9223372036854775808"] {
            assert!(matches!(read(refused), Err(ApiError::BadRequest(_))), "{refused:?}");
        }
    }
}
