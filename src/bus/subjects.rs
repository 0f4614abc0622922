//! Every subject, stream and consumer name, in one place; `subjects.md` documents each.

use std::fmt;

use uuid::Uuid;

/// The validated prefix that namespaces one deployment (or one test) on a shared NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    pub fn new(raw: &str) -> Result<Self, String> {
        // Lower case only: stream names are the upper-cased prefix, which must stay one-to-one.
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} must be 1-64 characters of lower-case letters, digits or '_' (it names subjects and streams)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn stream_stem(&self) -> String {
        self.0.to_ascii_uppercase()
    }

    pub fn commands_stream(&self) -> String {
        format!("{}_COMMANDS", self.stream_stem())
    }

    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.stream_stem())
    }

    pub fn commands_wildcard(&self) -> String {
        format!("{}.cmd.>", self.0)
    }

    pub fn events_wildcard(&self) -> String {
        format!("{}.evt.>", self.0)
    }

    pub fn command(&self, kind: CommandKind) -> String {
        format!("{}.cmd.{}", self.0, kind.as_str())
    }

    /// Durable consumer of one command kind, shared by every worker replica.
    pub fn consumer(&self, kind: CommandKind) -> String {
        format!("{}_worker_{}", self.0, kind.as_str())
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
        format!("{}.evt.job.{project_id}.{job_id}.{}", self.0, kind.as_str())
    }

    /// Every event of one job, whatever its kind.
    pub fn job_events_of(&self, project_id: Uuid, job_id: Uuid) -> String {
        format!("{}.evt.job.{project_id}.{job_id}.*", self.0)
    }

    /// Every event of one job, for a follower that knows the job but not its project.
    pub fn job_events_of_any_project(&self, job_id: Uuid) -> String {
        format!("{}.evt.job.*.{job_id}.*", self.0)
    }

    pub fn rollback_event(&self, project_id: Uuid, rollback_id: Uuid, kind: RollbackEventKind) -> String {
        format!("{}.evt.rollback.{project_id}.{rollback_id}.{}", self.0, kind.as_str())
    }

    pub fn rollback_events_of(&self, project_id: Uuid, rollback_id: Uuid) -> String {
        format!("{}.evt.rollback.{project_id}.{rollback_id}.*", self.0)
    }

    pub fn sweep_completed(&self, tick: chrono::DateTime<chrono::Utc>) -> String {
        format!("{}.evt.sweep.{}.completed", self.0, super::messages::tick_token(tick))
    }

    pub fn dead_letter(&self, kind: &str) -> String {
        format!("{}.evt.dead_letter.{kind}", self.0)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    Trigger,
    Rollback,
    Sweep,
    Check,
    Cancel,
}

impl CommandKind {
    pub const ALL: [CommandKind; 5] = [Self::Trigger, Self::Rollback, Self::Sweep, Self::Check, Self::Cancel];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Rollback => "rollback",
            Self::Sweep => "sweep",
            Self::Check => "check",
            Self::Cancel => "cancel",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEventKind {
    Queued,
    Started,
    Progress,
    Completed,
    Failed,
    RolledBack,
    Cancelled,
}

impl JobEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Started => "started",
            Self::Progress => "progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Started, Self::Progress, Self::Completed, Self::Failed, Self::RolledBack, Self::Cancelled]
            .into_iter()
            .find(|kind| kind.as_str() == raw)
    }

    /// The terminal event of a finished job with this status.
    pub fn of_finished_status(status: &str) -> Self {
        match status {
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            _ => Self::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackEventKind {
    Started,
    Completed,
    Refused,
    Failed,
}

impl RollbackEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Completed => "completed",
            Self::Refused => "refused",
            Self::Failed => "failed",
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
        assert_eq!(JobEventKind::of_finished_status("cancelled"), JobEventKind::Cancelled);
    }
}
