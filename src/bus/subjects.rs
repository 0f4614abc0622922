//! Every subject, stream and consumer name, in one place; `subjects.md` documents each.

use uuid::Uuid;

use crate::domain::{JobEventKind, Prefix, RollbackEventKind};

/// Subject, stream and consumer names under one deployment's prefix.
impl Prefix {
    fn stream_stem(&self) -> String {
        self.as_str().to_ascii_uppercase()
    }

    pub fn commands_stream(&self) -> String {
        format!("{}_COMMANDS", self.stream_stem())
    }

    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.stream_stem())
    }

    pub fn commands_wildcard(&self) -> String {
        format!("{}.cmd.>", self.as_str())
    }

    pub fn events_wildcard(&self) -> String {
        format!("{}.evt.>", self.as_str())
    }

    pub fn command(&self, kind: CommandKind) -> String {
        format!("{}.cmd.{}", self.as_str(), kind.as_str())
    }

    /// Durable consumer of one command kind, shared by every worker replica.
    pub fn consumer(&self, kind: CommandKind) -> String {
        format!("{}_worker_{}", self.as_str(), kind.as_str())
    }

    /// JetStream's advisories that a command consumer stopped redelivering a message.
    pub fn max_deliveries_advisories(&self) -> String {
        format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.*", self.commands_stream())
    }

    /// The command kind whose durable consumer is named `consumer`.
    pub fn kind_of_consumer(&self, consumer: &str) -> Option<CommandKind> {
        CommandKind::ALL.into_iter().find(|kind| self.consumer(*kind) == consumer)
    }

    pub fn job_event(&self, project_id: Uuid, job_id: Uuid, kind: JobEventKind) -> String {
        format!("{}.evt.job.{project_id}.{job_id}.{}", self.as_str(), kind.as_str())
    }

    /// Every event of one job, whatever its kind.
    pub fn job_events_of(&self, project_id: Uuid, job_id: Uuid) -> String {
        format!("{}.evt.job.{project_id}.{job_id}.*", self.as_str())
    }

    /// Every event of one job, for a follower that knows the job but not its project.
    pub fn job_events_of_any_project(&self, job_id: Uuid) -> String {
        format!("{}.evt.job.*.{job_id}.*", self.as_str())
    }

    pub fn rollback_event(&self, project_id: Uuid, rollback_id: Uuid, kind: RollbackEventKind) -> String {
        format!("{}.evt.rollback.{project_id}.{rollback_id}.{}", self.as_str(), kind.as_str())
    }

    pub fn rollback_events_of(&self, project_id: Uuid, rollback_id: Uuid) -> String {
        format!("{}.evt.rollback.{project_id}.{rollback_id}.*", self.as_str())
    }

    /// A consolidated memory taken apart by an unmerge.
    pub fn memory_unmerged(&self, project_id: Uuid, memory_id: Uuid) -> String {
        format!("{}.evt.memory.{project_id}.{memory_id}.unmerged", self.as_str())
    }

    pub fn sweep_completed(&self, tick: chrono::DateTime<chrono::Utc>) -> String {
        format!("{}.evt.sweep.{}.completed", self.as_str(), super::messages::tick_token(tick))
    }

    pub fn dead_letter(&self, kind: &str) -> String {
        format!("{}.evt.dead_letter.{kind}", self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    Trigger,
    Rollback,
    Sweep,
    Check,
    Cancel,
    Unmerge,
}

impl CommandKind {
    pub const ALL: [CommandKind; 6] =
        [Self::Trigger, Self::Rollback, Self::Sweep, Self::Check, Self::Cancel, Self::Unmerge];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Rollback => "rollback",
            Self::Sweep => "sweep",
            Self::Check => "check",
            Self::Cancel => "cancel",
            Self::Unmerge => "unmerge",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rejects_characters_that_would_break_subjects() {
        for bad in ["", "a.b", "a b", "a*", "a>", "a-b", "Abc"] {
            assert!(Prefix::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Prefix::new("test_1a").is_ok());
    }

    #[test]
    fn names_follow_the_documented_layout() {
        let prefix = Prefix::new("cons_t1").unwrap();
        let id = Uuid::nil();
        assert_eq!(prefix.commands_stream(), "CONS_T1_COMMANDS");
        assert_eq!(prefix.command(CommandKind::Trigger), "cons_t1.cmd.trigger");
        assert_eq!(prefix.job_event(id, id, JobEventKind::Completed), format!("cons_t1.evt.job.{id}.{id}.completed"));
        assert_eq!(prefix.dead_letter("trigger"), "cons_t1.evt.dead_letter.trigger");
        assert_eq!(prefix.command(CommandKind::Cancel), "cons_t1.cmd.cancel");
        assert_eq!(prefix.job_event(id, id, JobEventKind::Cancelled), format!("cons_t1.evt.job.{id}.{id}.cancelled"));
        assert!(JobEventKind::Cancelled.is_terminal());
        assert_eq!(JobEventKind::of_finished(crate::domain::JobStatus::Cancelled), JobEventKind::Cancelled);
    }
}
