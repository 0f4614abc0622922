//! The plan as a dry run stores it: bounded whatever the project's size. Embeddings are left
//! out, each list keeps its first entries with the total beside it, and so does every list
//! inside an entry (a cluster's members, a merge's sources), so a plan for a very large project
//! stays a small jsonb value. Only the kept entries are ever serialized.

use serde::Serialize;
use serde_json::{Map, Value, json};

use std::collections::BTreeMap;

use crate::domain::{GuardReportView, Plan, PlanReport};

/// Entries kept per list (clusters, merges, syntheses, archives, promotions, changes, warnings).
pub const PLAN_REPORT_LIMIT: usize = 1000;
/// Entries kept per list inside one entry.
pub const NESTED_LIMIT: usize = 100;

pub fn report(plan: &Plan, limit: usize) -> PlanReport {
    let guard = &plan.guard;
    let totals: BTreeMap<String, usize> = [
        ("clusters", plan.clusters.len()),
        ("merges", plan.merges.len()),
        ("syntheses", plan.syntheses.len()),
        ("archives", plan.archives.len()),
        ("promotions", plan.promotions.len()),
        ("changes", plan.changes.len()),
        ("warnings", plan.warnings.len()),
        ("guard.reviews", guard.reviews.len()),
        ("guard.superseded", guard.superseded.len()),
    ]
    .into_iter()
    .map(|(name, total)| (name.to_owned(), total))
    .collect();
    PlanReport {
        memories_before: plan.memories_before,
        memories_after: plan.memories_after,
        clusters: kept(&plan.clusters, limit),
        merges: kept(&plan.merges, limit),
        syntheses: kept(&plan.syntheses, limit),
        archives: kept(&plan.archives, limit),
        promotions: kept(&plan.promotions, limit),
        changes: kept(&plan.changes, limit),
        warnings: kept(&plan.warnings, limit),
        counters: plan.counters,
        timings_ms: plan.timings_ms,
        scope: plan.scope.clone(),
        guard: GuardReportView {
            value_guard: guard.value_guard,
            held_pairs: guard.held_pairs,
            judged_pairs: guard.judged_pairs,
            boundaries: guard.boundaries,
            reviews: kept(&guard.reviews, limit),
            superseded: kept(&guard.superseded, limit),
        },
        truncated: totals.values().any(|total| *total > limit),
        totals,
        limit,
    }
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|error| json!({ "error": error.to_string() }))
}

fn kept<T: Serialize>(items: &[T], limit: usize) -> Vec<Value> {
    items
        .iter()
        .take(limit)
        .map(|item| {
            let mut value = to_value(item);
            bound_entry(&mut value);
            value
        })
        .collect()
}

/// Drops embeddings and cuts the lists inside one entry (and inside its `memory`).
pub(crate) fn bound_entry(value: &mut Value) {
    let Some(object) = value.as_object_mut() else { return };
    object.remove("embedding");
    cut_lists(object);
    if let Some(memory) = object.get_mut("memory").and_then(Value::as_object_mut) {
        memory.remove("embedding");
        cut_lists(memory);
    }
}

fn cut_lists(object: &mut Map<String, Value>) {
    let long: Vec<(String, usize)> = object
        .iter()
        .filter_map(|(key, value)| {
            value.as_array().filter(|items| items.len() > NESTED_LIMIT).map(|i| (key.clone(), i.len()))
        })
        .collect();
    for (key, total) in long {
        if let Some(items) = object.get_mut(&key).and_then(Value::as_array_mut) {
            items.truncate(NESTED_LIMIT);
        }
        object.insert(format!("{key}_total"), json!(total));
    }
}
