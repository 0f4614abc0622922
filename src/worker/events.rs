//! Publishing job and rollback events; failures are logged, never fatal: the database holds
//! the truth and the status endpoint serves it.

use uuid::Uuid;

use crate::bus::{
    Bus, BusError,
    messages::{JobEvent, RollbackEvent},
};
use crate::domain::{JobEventKind, RollbackEventKind};

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
