//! Reviews and supersessions after the merges: a held memory that the plan merges is represented
//! by the consolidated memory.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::domain::{GuardReport, Merge, NEW_MEMORY_VERSION, SourceRef};

/// A held memory that this plan merges is represented afterwards by the consolidated memory:
/// reviews and supersessions name that one, and two reviews that become the same pair (either
/// way round: A older than B in one, B older than the merge of A in another) are one.
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
        let pair = (review.older.id.min(review.newer.id), review.older.id.max(review.newer.id));
        if review.older.id != review.newer.id && seen.insert(pair) {
            reviews.push(review);
        }
    }
    guard.reviews = reviews;
    for s in &mut guard.superseded {
        s.superseded_by = moved(SourceRef { id: s.superseded_by, version: 0 }).id;
    }
}

/// A supersession stands only in favour of a memory that exists after the plan: one superseded in
/// turn hands it on to the memory that superseded it (A by B, B by C: A by C), and one the plan
/// archives (or a loop) drops it. The apply checks the same under its locks, so a dry run reports
/// what the real run does.
pub fn settle(guard: &mut GuardReport, archived: &HashSet<Uuid>) {
    let by: HashMap<Uuid, Uuid> = guard.superseded.iter().map(|s| (s.memory.id, s.superseded_by)).collect();
    guard.superseded.retain_mut(|s| {
        let mut target = s.superseded_by;
        for _ in 0..=by.len() {
            match by.get(&target) {
                Some(next) => target = *next,
                None => break,
            }
        }
        s.superseded_by = target;
        !by.contains_key(&target) && target != s.memory.id && !archived.contains(&target)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Difference, DifferenceKind, NewMemory, ReviewItem, ValueGuard};

    fn review(older: u128, newer: u128) -> ReviewItem {
        ReviewItem {
            kind: crate::domain::ReviewKind::PossibleUpdate,
            older: SourceRef { id: Uuid::from_u128(older), version: 1 },
            newer: SourceRef { id: Uuid::from_u128(newer), version: 1 },
            similarity: 0.95,
            difference: Difference { kind: DifferenceKind::Value, left: vec!["1".into()], right: vec!["2".into()] },
            suggestion: crate::domain::ReviewSuggestion::Supersede,
        }
    }

    fn merge_of(created: u128, sources: &[u128]) -> Merge {
        let memory: NewMemory = crate::domain::Memory::for_test(created, "merged").into();
        Merge {
            cluster_id: format!("c{created}"),
            memory,
            sources: sources.iter().map(|&id| SourceRef { id: Uuid::from_u128(id), version: 1 }).collect(),
            coverage: 1.0,
            compression: 1.0,
            length_vs_longest: 1.0,
            confidence: 1.0,
            embedder: "centroid".to_owned(),
            units: Vec::new(),
        }
    }

    fn supersession(older: u128, newer: u128) -> crate::domain::Supersession {
        crate::domain::Supersession {
            memory: SourceRef { id: Uuid::from_u128(older), version: 1 },
            superseded_by: Uuid::from_u128(newer),
            similarity: 0.95,
            difference: review(older, newer).difference,
        }
    }

    #[test]
    fn a_supersession_goes_to_a_memory_that_exists_after_the_plan() {
        let mut guard = GuardReport::new(ValueGuard::Auto);
        // 1 by 2, 2 by 3: 1 by 3. 4 by 5, 5 archived as stale: dropped. 6 by 7, 7 by 6: a loop.
        guard.superseded =
            vec![supersession(1, 2), supersession(2, 3), supersession(4, 5), supersession(6, 7), supersession(7, 6)];
        settle(&mut guard, &[Uuid::from_u128(5)].into_iter().collect());
        let kept: Vec<(Uuid, Uuid)> = guard.superseded.iter().map(|s| (s.memory.id, s.superseded_by)).collect();
        assert_eq!(kept, vec![(Uuid::from_u128(1), Uuid::from_u128(3)), (Uuid::from_u128(2), Uuid::from_u128(3))]);
    }

    #[test]
    fn two_reviews_that_become_one_pair_either_way_round_are_one() {
        // A (1) is older than B (2); B is older than C (3); A and C merge into M (9).
        let mut guard = GuardReport::new(ValueGuard::Review);
        guard.reviews = vec![review(1, 2), review(2, 3)];
        retarget(&mut guard, &[merge_of(9, &[1, 3])]);
        assert_eq!(guard.reviews.len(), 1, "{:?}", guard.reviews);
        let only = &guard.reviews[0];
        assert_eq!((only.older.id, only.newer.id), (Uuid::from_u128(9), Uuid::from_u128(2)));
    }
}
