//! The plan as a dry run stores it: bounded whatever the project's size. Embeddings are left
//! out, and each list keeps its first entries with the total beside it, so a plan for a very
//! large project stays a small jsonb value.

use serde_json::{Value, json};

use super::output::Plan;

/// Entries kept per list (clusters, merges, syntheses, archives, promotions, changes).
pub const PLAN_REPORT_LIMIT: usize = 1000;

pub fn report(plan: &Plan, limit: usize) -> Value {
    let mut value = serde_json::to_value(plan).unwrap_or_else(|error| json!({ "error": error.to_string() }));
    let mut totals = serde_json::Map::new();
    let mut truncated = false;
    for list in ["clusters", "merges", "syntheses", "archives", "promotions", "changes"] {
        let Some(items) = value.get_mut(list).and_then(Value::as_array_mut) else { continue };
        totals.insert(list.to_owned(), json!(items.len()));
        truncated |= items.len() > limit;
        items.truncate(limit);
        for item in items.iter_mut() {
            strip_embeddings(item);
        }
    }
    if let Some(guard) = value.get_mut("guard") {
        for list in ["reviews", "superseded"] {
            let Some(items) = guard.get_mut(list).and_then(Value::as_array_mut) else { continue };
            totals.insert(format!("guard.{list}"), json!(items.len()));
            truncated |= items.len() > limit;
            items.truncate(limit);
        }
    }
    if let Some(object) = value.as_object_mut() {
        object.insert("totals".to_owned(), Value::Object(totals));
        object.insert("limit".to_owned(), json!(limit));
        object.insert("truncated".to_owned(), json!(truncated));
    }
    value
}

fn strip_embeddings(item: &mut Value) {
    if let Some(object) = item.as_object_mut() {
        object.remove("embedding");
        if let Some(memory) = object.get_mut("memory").and_then(Value::as_object_mut) {
            memory.remove("embedding");
        }
    }
}
