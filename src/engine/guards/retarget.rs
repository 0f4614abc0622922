//! Reviews and supersessions after the merges: a held memory that the plan merges is represented
//! by the consolidated memory.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::domain::{GuardReport, Merge, NEW_MEMORY_VERSION, SourceRef};

/// A held memory that this plan merges is represented afterwards by the consolidated memory:
/// reviews and supersessions name that one, and two reviews that become the same pair are one.
pub fn retarget(guard: &mut GuardReport, merges: &[Merge]) {
    let into: HashMap<Uuid, SourceRef> = merges
        .iter()
        .flat_map(|m| m.sources.iter().map(|s| (s.id, SourceRef { id: m.memory.id, version: NEW_MEMORY_VERSION })))
        .collect();
    let moved = |r: SourceRef| into.get(&r.id).copied().unwrap_or(r);
    let mut seen = HashSet::new();
    let mut reviews = Vec::with_capacity(guard.reviews.len());
    for mut review in std::mem::take(&mut guard.reviews) {
        (review.older, review.newer) = (moved(review.older), moved(review.newer));
        if seen.insert((review.older.id, review.newer.id)) {
            reviews.push(review);
        }
    }
    guard.reviews = reviews;
    for s in &mut guard.superseded {
        s.superseded_by = moved(SourceRef { id: s.superseded_by, version: 0 }).id;
    }
}
