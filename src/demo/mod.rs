//! `consolidator demo`: a project with the bundled data set (several hundred agent memories on
//! real software topics, with all-MiniLM-L6-v2 embeddings; `scripts/demo/build.py` makes it),
//! loaded the way `consolidator import` loads a file, one job triggered through NATS and
//! followed on the event stream, then a before/after report of what the job did.
//!
//! A client of the service: it needs a worker running (`consolidator all`), and talks to it
//! only through the command and event streams; the report reads the stored results.

pub mod report;

use std::time::Duration;

use uuid::Uuid;

use crate::domain::JobEventKind;
use crate::{
    bus::{
        Bus, BusError, CommandKind,
        messages::{JobEvent, SCHEMA_VERSION, TriggerCommand},
    },
    gateway::API_PREFIX,
    interchange::{self, InterchangeError},
    store::{
        StoreError,
        jobs::TriggerType,
        projects::{self, NewProject},
    },
    watch::{self, JobBar, WatchError},
};
pub use report::Report;

/// The data set, in the memory interchange format (testdata/demo/memories.jsonl).
pub const DATA: &str = include_str!("../../testdata/demo/memories.jsonl");

/// The project's sweep threshold: the API's default for a new project.
const SWEEP_THRESHOLD: i32 = 1000;

/// How long the demo waits for the first event of its job before saying no worker took it.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("loading the demo data: {0}")]
    Data(#[from] InterchangeError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("job {0} is not in the database")]
    NoJob(Uuid),
    #[error("reading the job's result: {0}")]
    Result(String),
    #[error("the demo job {job_id} ended {event}: {error}")]
    JobEnded { job_id: Uuid, event: String, error: String },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Plan only: report what the job would do and change nothing.
    pub dry_run: bool,
    /// Draw a progress bar from the job's events (on stderr).
    pub progress_bar: bool,
    pub patience: Duration,
}

/// A finished demo: the project, the job and the report.
pub struct DemoRun {
    pub project_id: Uuid,
    pub job_id: Uuid,
    pub loaded: usize,
    pub end: JobEvent,
    pub report: Report,
}

/// The demo's data set is mostly paraphrases on purpose, so its first job changes far more than
/// the default blast-radius limit (0.6 of the active memories) lets a job change; the demo's
/// project allows this much.
pub const DEMO_MAX_CHANGED_SHARE: f64 = 0.95;

/// Creates the project, loads the data set, triggers one job and waits for its end.
pub async fn run(db: &sqlx::PgPool, bus: &Bus, options: &DemoOptions) -> Result<DemoRun, DemoError> {
    let project_id = Uuid::new_v4();
    let name = format!("demo {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"));
    projects::create(
        db,
        &NewProject {
            id: project_id,
            name,
            consolidation_enabled: true,
            consolidation_threshold: SWEEP_THRESHOLD,
            consolidation_options: serde_json::json!({ "max_changed_share": DEMO_MAX_CHANGED_SHARE }),
        },
    )
    .await?;
    let loaded = interchange::load(db, project_id, &memories_for(project_id)?).await?;

    let job_id = Uuid::new_v4();
    let command = TriggerCommand {
        schema_version: SCHEMA_VERSION,
        job_id,
        project_id,
        options: Some(serde_json::json!({ "dry_run": options.dry_run })),
        trigger_type: TriggerType::Manual,
        triggered_by: "demo".to_owned(),
        plan_of: None,
    };
    bus.publish_command(CommandKind::Trigger, &job_id.to_string(), &command).await?;
    let bar = options.progress_bar.then(|| JobBar::new(job_id));
    let end = watch::follow(bus, job_id, Some(options.patience), |event| {
        if let Some(bar) = &bar {
            bar.show(event);
        }
        Ok(())
    })
    .await?;
    if end.event != JobEventKind::Completed {
        let error = end.error.clone().unwrap_or_else(|| "no reason given".to_owned());
        return Err(DemoError::JobEnded { job_id, event: end.event.to_string(), error });
    }
    let report = Report::gather(db, job_id).await?;
    Ok(DemoRun { project_id, job_id, loaded, end, report })
}

/// The data set parsed as `consolidator import` parses a file, each id made the project's own
/// (uuid v5 of the project and the file's id), so the demo runs again and again on one database.
pub fn memories_for(project_id: Uuid) -> Result<Vec<crate::domain::NewMemory>, InterchangeError> {
    let mut memories = interchange::parse(DATA.as_bytes(), None)?;
    for memory in &mut memories {
        memory.id = Uuid::new_v5(&project_id, memory.id.as_bytes());
    }
    Ok(memories)
}

impl DemoRun {
    /// Where to look next: the console, and how to undo the job (`program` is how the
    /// consolidator binary was started, so the printed commands work as pasted).
    pub fn next_steps(&self, base_url: &str, program: &str) -> String {
        let job = self.job_id;
        let mut text = format!(
            "Project {project}: {loaded} memories loaded; job {job}.\n\n\
             See it in the console: {base_url}/console#/jobs/{job}\n\
             (paste the admin token that `{program} all` printed, or the output of `{program} token`)\n",
            project = self.project_id,
            loaded = self.loaded,
        );
        if !self.report.dry_run {
            text.push_str(&format!(
                "\nRoll the job back (restores every memory it changed):\n  \
                 export TOKEN=$({program} token)\n  \
                 curl -s -X POST {base_url}{API_PREFIX}/consolidation/rollback -H \"Authorization: Bearer $TOKEN\" \
                 -H 'Content-Type: application/json' -d '{{\"consolidation_id\": \"{job}\", \"reason\": \"demo\"}}'\n"
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_bundled_data_set_parses_with_384_dimension_embeddings_of_every_kind() {
        let memories = interchange::parse(DATA.as_bytes(), None).expect("the bundled file is valid interchange");
        assert!(memories.len() >= 300, "{} memories", memories.len());
        assert!(memories.iter().all(|m| m.embedding.as_ref().is_some_and(|e| e.len() == 384)));
        let kinds: BTreeSet<&str> = memories.iter().map(|m| m.memory_type.as_str()).collect();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        let stale = memories.iter().filter(|m| m.reused_count == 0).count();
        assert!(stale >= 10, "{stale} memories nobody reused");
        let ids: BTreeSet<Uuid> = memories.iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), memories.len(), "ids are unique");
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let (a, b) = (memories_for(first).expect("parsed"), memories_for(second).expect("parsed"));
        assert!(a.iter().zip(&b).all(|(a, b)| a.id != b.id), "each project gets ids of its own");
        assert_eq!(a[0].id, memories_for(first).expect("parsed")[0].id, "the same ids for the same project");
    }
}
