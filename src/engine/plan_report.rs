//! The plan as a dry run stores it: bounded whatever the project's size. Embeddings are left
//! out, each list keeps its first entries with the total beside it, and so does every list
//! inside an entry (a cluster's members, a merge's sources), so a plan for a very large project
//! stays a small jsonb value. Only the kept entries are ever serialized.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::output::Plan;

/// Entries kept per list (clusters, merges, syntheses, archives, promotions, changes, warnings).
pub const PLAN_REPORT_LIMIT: usize = 1000;
/// Entries kept per list inside one entry.
pub const NESTED_LIMIT: usize = 100;

pub fn report(plan: &Plan, limit: usize) -> Value {
    let mut object = Map::new();
    let mut totals = Map::new();
    let mut truncated = false;
    let mut list = |name: &str, items: Vec<Value>, total: usize| {
        totals.insert(name.to_owned(), json!(total));
        truncated |= total > items.len();
        object.insert(name.to_owned(), Value::Array(items));
    };
    list("clusters", kept(&plan.clusters, limit), plan.clusters.len());
    list("merges", kept(&plan.merges, limit), plan.merges.len());
    list("syntheses", kept(&plan.syntheses, limit), plan.syntheses.len());
    list("archives", kept(&plan.archives, limit), plan.archives.len());
    list("promotions", kept(&plan.promotions, limit), plan.promotions.len());
    list("changes", kept(&plan.changes, limit), plan.changes.len());
    list("warnings", kept(&plan.warnings, limit), plan.warnings.len());
    object.insert("memories_before".to_owned(), json!(plan.memories_before));
    object.insert("memories_after".to_owned(), json!(plan.memories_after));
    object.insert("counters".to_owned(), to_value(&plan.counters));
    object.insert("timings_ms".to_owned(), to_value(&plan.timings_ms));
    object.insert("scope".to_owned(), to_value(&plan.scope));
    let guard = &plan.guard;
    totals.insert("guard.reviews".to_owned(), json!(guard.reviews.len()));
    totals.insert("guard.superseded".to_owned(), json!(guard.superseded.len()));
    truncated |= guard.reviews.len() > limit || guard.superseded.len() > limit;
    object.insert(
        "guard".to_owned(),
        json!({
            "value_guard": guard.value_guard,
            "held_pairs": guard.held_pairs,
            "judged_pairs": guard.judged_pairs,
            "reviews": kept(&guard.reviews, limit),
            "superseded": kept(&guard.superseded, limit),
        }),
    );
    object.insert("totals".to_owned(), Value::Object(totals));
    object.insert("limit".to_owned(), json!(limit));
    object.insert("truncated".to_owned(), json!(truncated));
    Value::Object(object)
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
