//! The closed vocabularies: every value a status, kind or operation column may hold. Each is an
//! enum here, a CHECK constraint in SQL (a test in tests/it/migrations.rs compares the two), and parsed once at
//! the store's edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that is not one of a closed vocabulary's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident, $kind:literal, [$($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)?]) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
            schemars::JsonSchema,
        )]
        #[serde(rename_all = "snake_case")]
        $(#[$doc])*
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];
            /// Every value as its text, in the order of `ALL`.
            pub const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        /// Compares with the stored text, so `status == "completed"` reads as it says.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownVariant;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

vocabulary!(MemoryType, "memory type", [
    ErrorFix => "error_fix",
    Discovery => "discovery",
    Decision => "decision",
    Learning => "learning",
    Warning => "warning",
    CodebaseKnowledge => "codebase_knowledge",
    Consolidated => "consolidated",
    Synthesis => "synthesis",
]);

vocabulary!(ArchiveReason, "archive reason", [
    Staleness => "staleness",
    LowValue => "low_value",
    Manual => "manual",
    Superseded => "superseded",
    /// Created by a job that was rolled back: hidden, kept, never restored by hand.
    RolledBack => "rolled_back",
    /// A consolidated memory (or its synthesis) taken apart by an unmerge: hidden, kept.
    Unmerged => "unmerged",
    /// A synthesis whose topic changed (a member merged, edited, archived or undone) and that
    /// no new synthesis replaced.
    Outdated => "outdated",
]);

vocabulary!(
    /// What a synthesis line states, from its members' memory type first, then cue words.
    FactKind, "fact kind", [
    Fix => "fix",
    Gotcha => "gotcha",
    Decision => "decision",
    Practice => "practice",
    Fact => "fact",
]);

impl ArchiveReason {
    /// Retired by an undo (rollback or unmerge) rather than archived: not for `unarchive`.
    pub const fn is_retirement(self) -> bool {
        matches!(self, Self::RolledBack | Self::Unmerged)
    }
}

vocabulary!(
    /// The operation of an audit row in `consolidation_changes` (`Operation` in the API).
    #[schema(as = Operation)]
    ChangeOperation, "change operation", [
    Merge => "merge",
    Archive => "archive",
    Promote => "promote",
    Summarize => "summarize",
    Rollback => "rollback",
    Unarchive => "unarchive",
    Reuse => "reuse",
    Review => "review",
    Unmerge => "unmerge",
    Pin => "pin",
]);

vocabulary!(
    /// A job's stored status.
    JobStatus, "job status", [
    Pending => "pending",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
    /// Stopped at a phase boundary on request, before its commit: it changed nothing.
    Cancelled => "cancelled",
]);

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

vocabulary!(
    /// A job's state as the API shows it: its status, or `rolled_back` once rolled back.
    JobState, "job state", [
    Pending => "pending",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
    Cancelled => "cancelled",
    RolledBack => "rolled_back",
]);

impl JobState {
    pub fn of(status: JobStatus, rolled_back: bool) -> Self {
        match (status, rolled_back) {
            (_, true) => JobState::RolledBack,
            (JobStatus::Pending, _) => JobState::Pending,
            (JobStatus::Running, _) => JobState::Running,
            (JobStatus::Completed, _) => JobState::Completed,
            (JobStatus::Failed, _) => JobState::Failed,
            (JobStatus::Cancelled, _) => JobState::Cancelled,
        }
    }
}

vocabulary!(TriggerType, "trigger type", [
    Scheduled => "scheduled",
    Manual => "manual",
    Threshold => "threshold",
]);

vocabulary!(
    /// Where a job is in its run.
    Phase, "phase", [
    Queued => "queued",
    Loading => "loading",
    Planning => "planning",
    Applying => "applying",
    Done => "done",
    Failed => "failed",
    Cancelled => "cancelled",
]);

vocabulary!(
    /// What a review proposes to judge.
    ReviewKind, "review kind", [
    /// Near-identical memories that state different values: perhaps the newer updates the older.
    PossibleUpdate => "possible_update",
]);

vocabulary!(
    /// What approving a review does.
    ReviewSuggestion, "review suggestion", [
    /// The older memory is archived as superseded by the newer.
    Supersede => "supersede",
]);

vocabulary!(
    /// The operation of a playbook change (`playbook_changes`).
    PlaybookOperation, "playbook operation", [
    Add => "add",
    Update => "update",
    Delete => "delete",
    Promote => "promote",
]);

vocabulary!(
    /// Which memories a job actually compared (its `Mode` decided; §11).
    ScopeMode, "scope mode", [
    Full => "full",
    Incremental => "incremental",
]);

vocabulary!(ReviewStatus, "review status", [
    Open => "open",
    Approved => "approved",
    Rejected => "rejected",
]);

vocabulary!(RollbackStatus, "rollback status", [
    Pending => "pending",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
    Refused => "refused",
]);

vocabulary!(
    /// A sweep's state: open while its jobs run, completed once its summary is published.
    SweepStatus, "sweep status", [
    Running => "running",
    Completed => "completed",
]);

vocabulary!(
    /// The kind of a job event (the last token of its subject).
    JobEventKind, "job event", [
    Queued => "queued",
    Started => "started",
    Progress => "progress",
    Completed => "completed",
    Failed => "failed",
    RolledBack => "rolled_back",
    Cancelled => "cancelled",
]);

impl JobEventKind {
    /// Whether no event of the job follows this one (a rollback comes later, on its own).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobEventKind::Completed | JobEventKind::Failed | JobEventKind::Cancelled)
    }

    /// The terminal event of a finished job with this status.
    pub fn of_finished(status: JobStatus) -> Self {
        match status {
            JobStatus::Completed => JobEventKind::Completed,
            JobStatus::Cancelled => JobEventKind::Cancelled,
            _ => JobEventKind::Failed,
        }
    }
}

vocabulary!(
    /// The kind of a rollback event.
    RollbackEventKind, "rollback event", [
    Completed => "completed",
    Refused => "refused",
    Failed => "failed",
]);

vocabulary!(
    /// The value guard's action on two near-identical memories that differ in a value (§11).
    ValueGuard, "value guard", [
    /// Never merged; the pair goes to the review queue as a possible update.
    Review => "review",
    /// Never merged; the older memory is superseded by the newer one (archived, reversible).
    Auto => "auto",
    /// No guard: the pair merges like any other.
    Off => "off",
]);

vocabulary!(
    /// Which memories a job compares (§11).
    Mode, "mode", [
    /// Incremental when the last completed job used the same clustering options, else full.
    Auto => "auto",
    /// Incremental when a base job exists at all (full otherwise, with the reason recorded).
    Incremental => "incremental",
    /// Every pair, every time.
    Full => "full",
]);

vocabulary!(
    /// What an administrator did (`admin_actions`, `GET /audit`).
    AdminAction, "admin action", [
    RollbackRequested => "rollback_requested",
    Unmerge => "unmerge",
    ReviewApproved => "review_approved",
    ReviewRejected => "review_rejected",
    /// Details `{before, after}`: the project's configuration either side of the change.
    ConfigurationChanged => "configuration_changed",
    JobCancelled => "job_cancelled",
    JobTriggered => "job_triggered",
    PlanApplied => "plan_applied",
    MemoryArchived => "memory_archived",
    MemoryUnarchived => "memory_unarchived",
    MemoryPinned => "memory_pinned",
    MemoryUnpinned => "memory_unpinned",
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vocabulary_value_round_trips_through_text_and_serde() {
        for t in MemoryType::ALL {
            assert_eq!(t.as_str().parse::<MemoryType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::json!(t.as_str()));
        }
        for r in ArchiveReason::ALL {
            assert_eq!(r.as_str().parse::<ArchiveReason>(), Ok(r));
        }
        for op in ChangeOperation::ALL {
            assert_eq!(op.as_str().parse::<ChangeOperation>(), Ok(op));
        }
        for s in JobState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for p in Phase::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.as_str()));
        }
        for k in JobEventKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
        }
        assert_eq!(MemoryType::ALL.len(), 8);
        assert_eq!(ArchiveReason::LowValue.as_str(), "low_value");
    }

    #[test]
    fn parsing_an_unknown_value_names_the_value() {
        let err = "bugfix".parse::<MemoryType>().unwrap_err();
        assert_eq!(err.to_string(), "unknown memory type \"bugfix\"");
    }

    #[test]
    fn a_rolled_back_job_shows_as_rolled_back_whatever_its_status() {
        assert_eq!(JobState::of(JobStatus::Completed, true), JobState::RolledBack);
        assert_eq!(JobState::of(JobStatus::Failed, false), JobState::Failed);
    }
}
