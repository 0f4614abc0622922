//! Publishing job and rollback events; failures are logged, never fatal: the database holds
//! the truth and the status endpoint serves it.

use uuid::Uuid;

use crate::bus::{
    Bus, BusError,
    messages::{JobEvent, RollbackEvent},
};
use crate::domain::{EventResult, JobEventKind, JobResult, Phase, ResultSummary, RollbackEventKind};
use crate::store::jobs::Job;

impl Bus {
    /// Progress-type events: a lost one is logged, the database still has the state.
    pub async fn job_progress_event(&self, kind: JobEventKind, event: &JobEvent) {
        let subject = self.prefix.job_event(event.project_id, event.job_id, kind);
        if let Err(error) = self.publish_event(subject, event).await {
            tracing::warn!(%error, event = kind.as_str(), "job event not published");
        }
    }

    /// Terminal events carry a message id, so re-publishing one after a redelivery is dropped
    /// by the stream's duplicate window instead of reaching subscribers twice. The caller retries
    /// the command when this fails, so no subscriber waits forever for an end.
    pub async fn job_terminal_event(&self, kind: JobEventKind, event: &JobEvent) -> Result<(), BusError> {
        let subject = self.prefix.job_event(event.project_id, event.job_id, kind);
        self.publish_event_once(subject, &format!("{}.{}", event.job_id, kind.as_str()), event).await
    }

    pub async fn rollback_event(&self, kind: RollbackEventKind, event: &RollbackEvent) -> Result<(), BusError> {
        let subject = self.prefix.rollback_event(event.project_id, event.rollback_id, kind);
        let id = format!("{}.{}", event.rollback_id, kind.as_str());
        self.publish_event_once(subject, &id, event).await
    }
}

pub fn job_event(kind: JobEventKind, job_id: Uuid, project_id: Uuid) -> JobEvent {
    JobEvent::new(kind, job_id, project_id)
}

/// A job's `completed` event, before its counters and result are filled in.
pub fn completed_event(job: &Job) -> JobEvent {
    let mut event = job_event(JobEventKind::Completed, job.id, job.project_id);
    event.phase = Some(Phase::Done);
    event.progress = Some(1.0);
    event
}

/// Events must stay under NATS's message size limit (1 MiB by default), so the completed event
/// carries the job's result only while it is small; otherwise a summary pointing at the job row.
const MAX_EVENT_RESULT_BYTES: usize = 256 * 1024;

pub fn event_result(result: &JobResult) -> EventResult {
    let size = serde_json::to_vec(result).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size <= MAX_EVENT_RESULT_BYTES {
        return EventResult::Whole(Box::new(result.clone()));
    }
    EventResult::Summary(Box::new(ResultSummary::of(
        result,
        format!(
            "the full result ({size} bytes) is too large for an event; read it from the job \
             (GET /api/v1/consolidation/status/{{job_id}})"
        ),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::{
        Applied, AppliedMerge, BlastRadius, GuardsSummary, PhaseTimings, ScopeReport, ValueGuard, ValueGuardSummary,
    };

    fn result_with(created: usize, merges: usize) -> JobResult {
        let merge = AppliedMerge {
            cluster_id: "c".to_owned(),
            memory_id: Uuid::nil(),
            sources: Vec::new(),
            source_type: None,
            coverage: 1.0,
            compression: 1.0,
            length_vs_longest: 1.0,
            confidence: 1.0,
        };
        let applied = Applied {
            created_memory_ids: (0..created).map(|i| Uuid::from_u128(i as u128)).collect(),
            merges: vec![merge; merges],
            syntheses: Vec::new(),
            playbook_entry_ids: Vec::new(),
            skipped_changed_memories: Vec::new(),
            reviews: Vec::new(),
            superseded: Vec::new(),
            warnings: Vec::new(),
            timings_ms: PhaseTimings::default(),
            scope: ScopeReport {
                mode: crate::domain::ScopeMode::Full,
                reason: String::new(),
                candidates: 0,
                compared: 0,
            },
        };
        let value_guard = ValueGuardSummary {
            mode: ValueGuard::Review,
            held_pairs: 0,
            judged_pairs: 0,
            reviews_proposed: 0,
            reviews_opened: Some(0),
            reviews_refreshed: Some(0),
            superseded: 0,
        };
        let blast_radius = BlastRadius { active: 0, changed: 0, share: 0.0, limit: 0.6, exceeded: false };
        JobResult {
            dry_run: false,
            blocked_by: None,
            plan: None,
            applied: Some(applied),
            guards: GuardsSummary { value_guard, blast_radius, merge_policy: Default::default() },
            clustering: None,
            cost: None,
            applied_plan: None,
        }
    }

    #[test]
    fn a_small_result_travels_whole_and_a_large_one_as_a_summary() {
        let small = result_with(1, 1);
        assert_eq!(event_result(&small), EventResult::Whole(Box::new(small.clone())));

        let large = result_with(20_000, 2);
        let summary = serde_json::to_value(event_result(&large)).unwrap();
        assert!(serde_json::to_vec(&summary).unwrap().len() < 4096);
        assert_eq!((summary["created_memories"].as_u64(), summary["merges"].as_u64()), (Some(20_000), Some(2)));
        assert!(summary["truncated"].as_str().unwrap().contains("/consolidation/status/"));
    }
}
