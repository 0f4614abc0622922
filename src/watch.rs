//! `consolidator watch JOB_ID`: follows one job's events from the event stream (replayed from
//! its first event, then live) until the job ends, as a progress bar or as JSON lines. A client
//! of the service like any other: it reads only the event stream (subjects.md).

use std::{io::Write, time::Duration};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::bus::{Bus, BusError, messages::JobEvent};

/// Steps of the progress bar: the events' progress (0 to 1) in percent.
const BAR_STEPS: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("reading the event stream: {0}")]
    Stream(String),
    #[error("no event of job {job_id} for {} s (is the id right, and a worker running?)", .waited.as_secs())]
    Silent { job_id: Uuid, waited: Duration },
    #[error("the event stream ended before job {0} did")]
    Ended(Uuid),
    #[error("writing the events: {0}")]
    Output(#[from] std::io::Error),
}

/// Whether the job has ended with this event (a later `rolled_back` is another story).
pub fn ends_the_job(event: &JobEvent) -> bool {
    event.event.is_terminal()
}

/// Calls `on_event` with each event of the job, from its first, until one that ends the job,
/// which is returned. Without any event for `patience` (when given) it gives up.
pub async fn follow(
    bus: &Bus,
    job_id: Uuid,
    patience: Option<Duration>,
    mut on_event: impl FnMut(&JobEvent) -> Result<(), WatchError>,
) -> Result<JobEvent, WatchError> {
    let mut replay = Box::pin(bus.replay_events(bus.prefix.job_events_of_any_project(job_id)).await?);
    loop {
        let next = match patience {
            Some(waited) => {
                tokio::time::timeout(waited, replay.next()).await.map_err(|_| WatchError::Silent { job_id, waited })?
            }
            None => replay.next().await,
        };
        let message = next.ok_or(WatchError::Ended(job_id))?.map_err(|error| WatchError::Stream(error.to_string()))?;
        let event: JobEvent = match serde_json::from_slice(&message.payload) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "skipping an event that is not a JobEvent");
                continue;
            }
        };
        on_event(&event)?;
        if ends_the_job(&event) {
            return Ok(event);
        }
    }
}

/// A terminal progress bar fed by job events (drawn on stderr, hidden when it is no terminal).
pub struct JobBar {
    bar: ProgressBar,
}

impl JobBar {
    pub fn new(job_id: Uuid) -> Self {
        let bar = ProgressBar::new(BAR_STEPS);
        let style = ProgressStyle::with_template("{prefix} [{bar:40.cyan/blue}] {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("job {}", &job_id.to_string()[..8]));
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar }
    }

    pub fn show(&self, event: &JobEvent) {
        if let Some(progress) = event.progress {
            self.bar.set_position(percent(progress));
        }
        let phase = event.phase.map(|phase| format!(" ({phase})")).unwrap_or_default();
        self.bar.set_message(format!("{}{phase}", event.event));
        if ends_the_job(event) {
            self.bar.finish();
        }
    }
}

fn percent(progress: f32) -> u64 {
    (f64::from(progress.clamp(0.0, 1.0)) * BAR_STEPS as f64).round() as u64
}

/// One line that says how the job ended.
pub fn summary(event: &JobEvent) -> String {
    let mut line = format!("job {} {}", event.job_id, event.event);
    if let Some(counters) = &event.counters {
        line.push_str(&format!(
            ": {} merged, {} archived, {} promoted, {} syntheses",
            counters.memories_merged,
            counters.memories_archived,
            counters.memories_promoted,
            counters.summaries_created
        ));
    }
    if let (Some(before), Some(after)) = (event.memories_before, event.memories_after) {
        line.push_str(&format!("; active memories {before} -> {after}"));
    }
    if let Some(error) = &event.error {
        line.push_str(&format!("; error: {error}"));
    }
    line
}

/// `watch`: a progress bar until the job ends, then its summary line; with `json`, every event
/// as one JSON line on `out` instead. Returns the event that ended the job.
pub async fn run(
    bus: &Bus,
    job_id: Uuid,
    json: bool,
    patience: Option<Duration>,
    out: &mut impl Write,
) -> Result<JobEvent, WatchError> {
    if json {
        return follow(bus, job_id, patience, |event| {
            serde_json::to_writer(&mut *out, event).map_err(std::io::Error::from)?;
            writeln!(out)?;
            out.flush()?;
            Ok(())
        })
        .await;
    }
    let bar = JobBar::new(job_id);
    let end = follow(bus, job_id, patience, |event| {
        bar.show(event);
        Ok(())
    })
    .await?;
    writeln!(out, "{}", summary(&end))?;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobEventKind;

    #[test]
    fn progress_becomes_whole_percent_and_stays_in_range() {
        assert_eq!((percent(0.0), percent(0.2), percent(1.0), percent(1.7), percent(-1.0)), (0, 20, 100, 100, 0));
    }

    #[test]
    fn only_an_ending_event_ends_the_watch() {
        let (job, project) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(!ends_the_job(&JobEvent::new(JobEventKind::Progress, job, project)));
        assert!(!ends_the_job(&JobEvent::new(JobEventKind::RolledBack, job, project)));
        assert!(ends_the_job(&JobEvent::new(JobEventKind::Completed, job, project)));
        let mut failed = JobEvent::new(JobEventKind::Failed, job, project);
        failed.error = Some("disabled".to_owned());
        assert!(ends_the_job(&failed) && summary(&failed).ends_with("failed; error: disabled"));
    }
}
