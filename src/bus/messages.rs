//! Command and event payloads. Every one carries `schema_version`; `subjects.md` shows examples.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{EventResult, JobCounters, JobEventKind, Phase, RollbackEventKind, TriggerType};

pub const SCHEMA_VERSION: u32 = 1;

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriggerCommand {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    pub job_id: Uuid,
    pub project_id: Uuid,
    /// Options for this job over the project's (the gateway sends them resolved); invalid ones
    /// fail the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::domain::ConsolidationOptions>)]
    pub options: Option<serde_json::Value>,
    pub trigger_type: TriggerType,
    pub triggered_by: String,
    /// A completed dry run of the project whose stored plan the job applies instead of planning
    /// (`POST /consolidation/jobs/{dry_run_id}/apply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_of: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollbackCommand {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    pub rollback_id: Uuid,
    /// The project of the job to roll back: a job of any other project is refused.
    pub project_id: Uuid,
    pub consolidation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub requested_by: String,
    /// Roll back the standing later jobs that built on this one first, newest first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cascade: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SweepCommand {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// The schedule's instant this sweep belongs to (UTC): its identity.
    pub tick: DateTime<Utc>,
    /// When it was published (a catch-up or retry publishes an older tick later).
    pub scheduled_at: DateTime<Utc>,
}

impl SweepCommand {
    /// Every replica publishing the same tick yields one command.
    pub fn idempotency_key(&self) -> String {
        format!("sweep:{}", tick_token(self.tick))
    }
}

/// A tick as a subject- and id-safe token: `20261202T020000Z`.
pub fn tick_token(tick: DateTime<Utc>) -> String {
    tick.format("%Y%m%dT%H%M%SZ").to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckCommand {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    pub project_id: Uuid,
    pub requested_by: String,
}

/// `cmd.cancel`: stop a pending or running job at its next phase boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelCommand {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// The job's project: a job of any other project is left alone.
    pub project_id: Uuid,
    pub job_id: Uuid,
    pub requested_by: String,
}

/// `cmd.unmerge`: take one consolidated memory of the named project apart (DESIGN.md §6).
/// Idempotency key: `unmerge:<memory_id>` (a memory is unmerged once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnmergeCommand {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    pub project_id: Uuid,
    pub memory_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub requested_by: String,
}

/// The event on `<prefix>.evt.memory.<project_id>.<memory_id>.unmerged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnmergeEvent {
    pub schema_version: u32,
    pub project_id: Uuid,
    /// The consolidated memory taken apart (now retired, reason `unmerged`).
    pub memory_id: Uuid,
    /// The job that wrote it.
    pub job_id: Uuid,
    /// Memories active again: its sources, and syntheses an undone one had replaced.
    pub restored: Vec<Uuid>,
    /// It and the syntheses that came from it.
    pub retired: Vec<Uuid>,
    /// Pairs of original memories the clustering keeps apart from now on.
    pub kept_apart: usize,
    pub requested_by: String,
    pub at: DateTime<Utc>,
}

/// An event on `<prefix>.evt.job.<project_id>.<job_id>.<kind>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobEvent {
    pub schema_version: u32,
    pub event: JobEventKind,
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<JobCounters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memories_before: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memories_after: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Result summary on `completed` (the whole plan when the job was a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<EventResult>,
}

impl JobEvent {
    pub fn new(event: JobEventKind, job_id: Uuid, project_id: Uuid) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            event,
            job_id,
            project_id,
            at: Utc::now(),
            phase: None,
            progress: None,
            counters: None,
            memories_before: None,
            memories_after: None,
            error: None,
            result: None,
        }
    }
}

/// An event on `<prefix>.evt.rollback.<project_id>.<rollback_id>.<kind>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollbackEvent {
    pub schema_version: u32,
    pub event: RollbackEventKind,
    pub rollback_id: Uuid,
    pub consolidation_id: Uuid,
    pub project_id: Uuid,
    pub at: DateTime<Utc>,
    pub success: bool,
    pub memories_restored: i32,
    pub memories_deleted: i32,
    pub warnings: Vec<String>,
    /// Memories changed after the job, when that is why the rollback was refused.
    pub conflicts: Vec<Uuid>,
    /// Later jobs rolled back first (cascade), or the standing ones the rollback was refused for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later_jobs: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The sweep's closing notification on `<prefix>.evt.sweep.<tick token>.completed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SweepSummary {
    pub schema_version: u32,
    pub tick: Option<DateTime<Utc>>,
    pub sweep_date: Option<NaiveDate>,
    pub projects_considered: i32,
    pub projects_triggered: i32,
    pub jobs_completed: i32,
    pub jobs_failed: i32,
    #[serde(default)]
    pub jobs_cancelled: i32,
    pub memories_merged: i64,
    pub memories_archived: i64,
    pub memories_promoted: i64,
    pub summaries_created: i64,
    pub job_ids: Vec<Uuid>,
}

/// A command that can never succeed, on `<prefix>.evt.dead_letter.<command>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub schema_version: u32,
    pub command: String,
    pub subject: String,
    pub reason: String,
    /// The original payload, as UTF-8 (lossy for binary payloads), cut short when the letter
    /// would not fit in a NATS message (`payload_truncated`).
    pub payload: String,
    /// The original payload's size in bytes and its SHA-256 (hex), whole even when it is cut.
    #[serde(default)]
    pub payload_bytes: usize,
    #[serde(default)]
    pub payload_sha256: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub payload_truncated: bool,
    pub stream_sequence: Option<u64>,
    pub deliveries: Option<i64>,
    pub at: DateTime<Utc>,
}

impl DeadLetter {
    pub fn new(command: &str, subject: String, reason: &str, payload: &[u8]) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(payload);
        Self {
            schema_version: SCHEMA_VERSION,
            command: command.to_owned(),
            subject,
            reason: reason.to_owned(),
            payload: String::from_utf8_lossy(payload).into_owned(),
            payload_bytes: payload.len(),
            payload_sha256: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
            payload_truncated: false,
            stream_sequence: None,
            deliveries: None,
            at: Utc::now(),
        }
    }

    /// Cuts the payload text so that the letter's JSON takes at most `max_bytes`.
    pub fn fit(&mut self, max_bytes: usize) -> Result<Vec<u8>, serde_json::Error> {
        let encoded = serde_json::to_vec(self)?;
        if encoded.len() <= max_bytes {
            return Ok(encoded);
        }
        let payload = std::mem::take(&mut self.payload);
        self.payload_truncated = true;
        let mut room = max_bytes.saturating_sub(serde_json::to_vec(self)?.len());
        let mut keep = 0;
        for (at, character) in payload.char_indices() {
            let escaped = match character {
                '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
                character if character < ' ' => 6,
                character => character.len_utf8(),
            };
            if escaped > room {
                break;
            }
            room -= escaped;
            keep = at + character.len_utf8();
        }
        self.payload = payload;
        self.payload.truncate(keep);
        serde_json::to_vec(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is not valid JSON for this command: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported schema_version {0} (this worker reads {SCHEMA_VERSION})")]
    SchemaVersion(u32),
    #[error("{0}")]
    Invalid(String),
}

/// The id a payload names under `field`, even when the rest of it is invalid: the job or
/// rollback of a command that fails to decode can still be failed with the reason.
pub fn named_id(payload: &[u8], field: &str) -> Option<Uuid> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value.get(field)?.as_str()?.parse().ok()
}

/// Longest `triggered_by`, `requested_by` or `reason` a command may carry, in characters.
pub const MAX_ACTOR_CHARS: usize = 256;

/// Parses a command, checks its schema version and bounds its text fields.
pub fn decode<T: serde::de::DeserializeOwned + Versioned>(payload: &[u8]) -> Result<T, DecodeError> {
    let command: T = serde_json::from_slice(payload)?;
    if command.schema_version() != SCHEMA_VERSION {
        return Err(DecodeError::SchemaVersion(command.schema_version()));
    }
    for (field, text) in command.texts() {
        check_text(field, text)?;
    }
    if let Some(options) = command.options() {
        check_json_text("options", options)?;
    }
    Ok(command)
}

fn check_text(field: &str, text: &str) -> Result<(), DecodeError> {
    if text.contains('\0') {
        return Err(DecodeError::Invalid(format!("{field}: must not contain a NUL character (U+0000)")));
    }
    let chars = text.chars().count();
    if chars > MAX_ACTOR_CHARS {
        return Err(DecodeError::Invalid(format!("{field}: at most {MAX_ACTOR_CHARS} characters, got {chars}")));
    }
    Ok(())
}

/// PostgreSQL's jsonb cannot hold U+0000 in a string or a key.
fn check_json_text(field: &str, value: &serde_json::Value) -> Result<(), DecodeError> {
    let nul = |text: &str| text.contains('\0');
    let found = match value {
        serde_json::Value::String(text) => nul(text),
        serde_json::Value::Array(items) => return items.iter().try_for_each(|item| check_json_text(field, item)),
        serde_json::Value::Object(entries) => {
            for (key, item) in entries {
                if nul(key) {
                    return Err(DecodeError::Invalid(format!("{field}: must not contain a NUL character (U+0000)")));
                }
                check_json_text(field, item)?;
            }
            false
        }
        _ => false,
    };
    if found {
        return Err(DecodeError::Invalid(format!("{field}: must not contain a NUL character (U+0000)")));
    }
    Ok(())
}

pub trait Versioned {
    fn schema_version(&self) -> u32;
    /// The free-text fields a sender chooses, by name.
    fn texts(&self) -> Vec<(&'static str, &str)>;
    fn options(&self) -> Option<&serde_json::Value> {
        None
    }
}

impl Versioned for TriggerCommand {
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn texts(&self) -> Vec<(&'static str, &str)> {
        vec![("triggered_by", &self.triggered_by)]
    }
    fn options(&self) -> Option<&serde_json::Value> {
        self.options.as_ref()
    }
}

impl Versioned for RollbackCommand {
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn texts(&self) -> Vec<(&'static str, &str)> {
        let mut texts = vec![("requested_by", self.requested_by.as_str())];
        texts.extend(self.reason.as_deref().map(|reason| ("reason", reason)));
        texts
    }
}

impl Versioned for SweepCommand {
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn texts(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }
}

impl Versioned for CheckCommand {
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn texts(&self) -> Vec<(&'static str, &str)> {
        vec![("requested_by", &self.requested_by)]
    }
}

impl Versioned for UnmergeCommand {
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn texts(&self) -> Vec<(&'static str, &str)> {
        let mut texts = vec![("requested_by", self.requested_by.as_str())];
        texts.extend(self.reason.as_deref().map(|reason| ("reason", reason)));
        texts
    }
}

impl Versioned for CancelCommand {
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn texts(&self) -> Vec<(&'static str, &str)> {
        vec![("requested_by", &self.requested_by)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_too_big_for_a_message_keeps_the_payloads_start_size_and_digest() {
        let payload = "é\u{0}".repeat(300_000).into_bytes();
        let mut letter = DeadLetter::new("trigger", "p.cmd.trigger".into(), "too long", &payload);
        let encoded = letter.fit(64 * 1024).unwrap();
        assert!(encoded.len() <= 64 * 1024, "{}", encoded.len());
        assert!(letter.payload_truncated && letter.payload.starts_with("é\u{0}é"));
        assert_eq!(letter.payload_bytes, 900_000);
        let read: DeadLetter = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(read.payload_sha256.len(), 64);
        assert_eq!(read.payload_sha256, DeadLetter::new("t", String::new(), "", &payload).payload_sha256);

        let mut small = DeadLetter::new("trigger", "p.cmd.trigger".into(), "bad", b"{}");
        small.fit(64 * 1024).unwrap();
        assert!(!small.payload_truncated);
        assert_eq!(small.payload, "{}");
        assert_eq!(small.payload_sha256, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    }

    fn trigger_with(triggered_by: &str, options: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schema_version": 1,
            "job_id": Uuid::nil(),
            "project_id": Uuid::nil(),
            "trigger_type": "manual",
            "triggered_by": triggered_by,
            "options": options,
        }))
        .unwrap()
    }

    #[test]
    fn text_fields_are_bounded_and_free_of_nul() {
        let ok = "a".repeat(MAX_ACTOR_CHARS);
        assert!(decode::<TriggerCommand>(&trigger_with(&ok, serde_json::json!({}))).is_ok());
        let long = decode::<TriggerCommand>(&trigger_with(&format!("{ok}é"), serde_json::json!({}))).unwrap_err();
        assert_eq!(long.to_string(), "triggered_by: at most 256 characters, got 257");
        let nul = decode::<TriggerCommand>(&trigger_with("a\u{0}b", serde_json::json!({}))).unwrap_err();
        assert!(nul.to_string().starts_with("triggered_by: must not contain a NUL"), "{nul}");
        let in_options = trigger_with("agent", serde_json::json!({"mode": ["x\u{0}"]}));
        assert!(decode::<TriggerCommand>(&in_options).unwrap_err().to_string().starts_with("options:"));
        let in_key = trigger_with("agent", serde_json::json!({"mo\u{0}de": 1}));
        assert!(decode::<TriggerCommand>(&in_key).is_err());

        let rollback = serde_json::json!({
            "rollback_id": Uuid::nil(), "project_id": Uuid::nil(), "consolidation_id": Uuid::nil(),
            "requested_by": "admin", "reason": "r".repeat(300),
        });
        let error = decode::<RollbackCommand>(&serde_json::to_vec(&rollback).unwrap()).unwrap_err();
        assert!(error.to_string().starts_with("reason: at most 256"), "{error}");
    }
}
