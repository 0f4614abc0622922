//! The audit rows a plan writes to `consolidation_changes` (shapes documented on `PlannedChange`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::domain::ArchiveReason;
use crate::domain::Options;
use crate::domain::{Archive, Merge, PlannedChange, PlaybookFollow, Promotion, SourceRef, Supersession, Synthesis};
use crate::domain::{ChangeOperation, Memory, MemoryType};
use crate::engine::clustering::Found;

/// The audit row of a memory marked duplicate of `target`: rollback restores it from this.
fn marked_duplicate(
    operation: ChangeOperation,
    source: &SourceRef,
    target: Uuid,
    reason: String,
    confidence: f32,
) -> PlannedChange {
    PlannedChange {
        operation,
        memory_id: source.id,
        previous_state: json!({"is_duplicate": false, "duplicate_of": null, "version": source.version}),
        new_state: json!({"is_duplicate": true, "duplicate_of": target}),
        reason,
        confidence: Some(confidence),
    }
}

/// The audit row of an archived memory (for staleness, or an outdated synthesis).
fn archived(a: &Archive, reason: String, now: DateTime<Utc>) -> PlannedChange {
    PlannedChange {
        operation: ChangeOperation::Archive,
        memory_id: a.memory_id,
        previous_state: json!({"is_archived": false, "archived_at": null, "archive_reason": null, "version": a.version}),
        new_state: json!({"is_archived": true, "archived_at": now, "archive_reason": a.reason}),
        reason,
        confidence: None,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn audit_rows(
    found: &[Found],
    merges: &[Merge],
    syntheses: &[Synthesis],
    archives: &[(Archive, &Memory)],
    outdated: &[(Archive, String)],
    superseded: &[Supersession],
    promotions: &[Promotion],
    options: &Options,
    now: DateTime<Utc>,
) -> Vec<PlannedChange> {
    let representative: BTreeMap<&str, Uuid> =
        found.iter().map(|f| (f.cluster.id.as_str(), f.cluster.representative)).collect();
    let mut rows = Vec::new();
    for m in merges {
        for s in &m.sources {
            let reason =
                format!("near-duplicate merged into consolidated memory {} (cluster {})", m.memory.id, m.cluster_id);
            rows.push(marked_duplicate(ChangeOperation::Merge, s, m.memory.id, reason, m.confidence));
        }
        rows.push(PlannedChange {
            operation: ChangeOperation::Merge,
            memory_id: m.memory.id,
            previous_state: serde_json::Value::Null,
            new_state: json!({
                "created": true,
                "memory_type": MemoryType::Consolidated,
                "cluster_id": m.cluster_id,
                "representative": representative.get(m.cluster_id.as_str()),
                "source_type": m.memory.source_type,
                "consolidated_from": m.memory.consolidated_from,
                "coverage": m.coverage,
                "compression": m.compression,
                "length_vs_longest": m.length_vs_longest,
                "units": m.units,
            }),
            reason: format!("consolidated {} near-duplicate memories", m.sources.len()),
            confidence: Some(m.confidence),
        });
    }
    for s in syntheses {
        for old in &s.supersedes {
            let reason =
                format!("synthesis replaced by {} after its topic changed (topic {})", s.memory.id, s.topic_id);
            rows.push(marked_duplicate(ChangeOperation::Summarize, old, s.memory.id, reason, s.confidence));
        }
        rows.push(PlannedChange {
            operation: ChangeOperation::Summarize,
            memory_id: s.memory.id,
            previous_state: serde_json::Value::Null,
            new_state: json!({
                "created": true,
                "memory_type": MemoryType::Synthesis,
                "topic_id": s.topic_id,
                "synthesized_from": s.memory.synthesized_from,
                "facts": s.facts.len(),
                "synthesis_confidence": s.confidence,
                "needs_review": s.needs_review,
                "synthesizer": s.synthesizer,
            }),
            reason: format!(
                "synthesized {} facts from a topic of {} memories",
                s.facts.len(),
                s.memory.synthesized_from.len()
            ),
            confidence: Some(s.confidence),
        });
    }
    for (a, m) in archives {
        let reason = format!(
            "not reused for more than {} days and reused {} times (< {})",
            options.archive_stale_days, m.reused_count, options.archive_min_reuse
        );
        rows.push(archived(a, reason, now));
    }
    for (a, reason) in outdated {
        rows.push(archived(a, reason.clone(), now));
    }
    for s in superseded {
        rows.push(PlannedChange {
            operation: ChangeOperation::Archive,
            memory_id: s.memory.id,
            previous_state: json!({"is_archived": false, "archived_at": null, "archive_reason": null, "version": s.memory.version}),
            new_state: json!({
                "is_archived": true,
                "archived_at": now,
                "archive_reason": ArchiveReason::Superseded,
                "superseded_by": s.superseded_by,
                "difference": s.difference,
            }),
            reason: format!("superseded by {}: values differ ({})", s.superseded_by, s.difference.describe()),
            confidence: Some(s.similarity),
        });
    }
    for p in promotions {
        rows.push(PlannedChange {
            operation: ChangeOperation::Promote,
            memory_id: p.memory_id,
            previous_state: serde_json::Value::Null,
            new_state: json!({
                "entry_id": p.entry_id,
                "category": p.category,
                "priority": p.priority,
                "content": p.content,
                "supporting_memory_ids": p.supporting_memory_ids,
            }),
            reason: format!("confidence {:.3} >= {}", p.confidence, options.promote_confidence_threshold),
            confidence: Some(p.confidence),
        });
    }
    rows
}

/// One `promote` row per entry that follows its cluster: rollback and unmerge restore the entry
/// from its previous state.
pub fn follow_rows(follows: &[PlaybookFollow]) -> Vec<PlannedChange> {
    follows
        .iter()
        .map(|f| PlannedChange {
            operation: ChangeOperation::Promote,
            memory_id: f.memory_id,
            previous_state: json!({
                "entry_id": f.entry_id,
                "source_memory_id": f.previous.source_memory_id,
                "supporting_memory_ids": f.previous.supporting_memory_ids,
                "content": f.previous.content,
            }),
            new_state: json!({
                "entry_id": f.entry_id,
                "followed": true,
                "source_memory_id": f.next.source_memory_id,
                "supporting_memory_ids": f.next.supporting_memory_ids,
                "content": f.next.content,
            }),
            reason: format!(
                "playbook entry {} follows its cluster from {} to {}",
                f.entry_id,
                f.previous.source_memory_id.map_or_else(|| "nothing".to_owned(), |id| id.to_string()),
                f.memory_id
            ),
            confidence: None,
        })
        .collect()
}
