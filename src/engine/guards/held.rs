//! The value guard on the clustering graph: above-threshold pairs whose texts differ in a value or
//! in polarity (`guard::difference`) are taken out of the graph before the clique step, so the
//! clique rule itself is untouched: two memories without an edge never share a cluster. Each held
//! pair of active memories then becomes a review item (`value_guard=review`) or supersedes the
//! older memory by the newer (`auto`), unless a person already judged it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use uuid::Uuid;

use crate::domain::Memory;
use crate::domain::ValueGuard;
use crate::domain::{Difference, ReviewKind, ReviewSuggestion};
use crate::domain::{GuardReport, ReviewItem, SourceRef, Supersession};
use crate::engine::candidates::partition::Partition;
use crate::engine::guards::value::{Claims, difference};
use crate::engine::similarity::ScoredPair;

/// Texts of clustering nodes by id (a node is a plain memory or an original source of a
/// consolidated one). A node without a text is never held back.
pub type Texts<'t> = HashMap<Uuid, &'t str>;

/// One held pair of units (active memories), the older first.
#[derive(Debug, Clone)]
struct Held {
    older: usize,
    newer: usize,
    similarity: f32,
    /// Seen from the older memory: `left` are its values, `right` the newer one's.
    difference: Difference,
}

/// Node indices of a partition that take part in a pair across two units: the nodes whose texts
/// the guard reads.
pub fn guarded_nodes(part: &Partition<'_>, pairs: &[ScoredPair]) -> BTreeSet<u32> {
    pairs.iter().filter(|p| part.unit_of[p.a as usize] != part.unit_of[p.b as usize]).flat_map(|p| [p.a, p.b]).collect()
}

/// Newer means learned later; on a tie, the larger id (any fixed order keeps the plan deterministic).
fn is_newer(a: &Memory, b: &Memory) -> bool {
    (a.learned_at, a.id) > (b.learned_at, b.id)
}

/// One partition's screen: the pairs left for clustering and the guard's report on the rest.
pub struct Screened {
    pub pairs: Vec<ScoredPair>,
    pub report: GuardReport,
}

/// Takes the pairs the guard vetoes out of `pairs`. With `auto`, a memory superseded by a newer
/// one also loses every other pair: it is archived, not merged.
pub fn screen(
    part: &Partition<'_>,
    pairs: Vec<ScoredPair>,
    texts: &Texts<'_>,
    guard: ValueGuard,
    judged: &BTreeSet<(Uuid, Uuid)>,
) -> Screened {
    let mut report = GuardReport::new(guard);
    if guard == ValueGuard::Off {
        return Screened { pairs, report };
    }
    let nodes: Vec<u32> = guarded_nodes(part, &pairs).into_iter().collect();
    let claims: HashMap<u32, Claims> = nodes
        .par_iter()
        .filter_map(|&n| texts.get(&part.node_ids[n as usize]).map(|text| (n, Claims::of(text))))
        .collect();
    let verdicts: Vec<Option<Difference>> = pairs
        .par_iter()
        .map(|p| {
            if part.unit_of[p.a as usize] == part.unit_of[p.b as usize] {
                return None;
            }
            difference(claims.get(&p.a)?, claims.get(&p.b)?)
        })
        .collect();
    let mut kept = Vec::with_capacity(pairs.len());
    // Per pair of units, the most similar held node pair speaks for it.
    let mut held: BTreeMap<(usize, usize), Held> = BTreeMap::new();
    for (pair, verdict) in pairs.into_iter().zip(verdicts) {
        let Some(found) = verdict else {
            kept.push(pair);
            continue;
        };
        report.held_pairs += 1;
        let (ua, ub) = (part.unit_of[pair.a as usize] as usize, part.unit_of[pair.b as usize] as usize);
        let (older, newer, found) =
            if is_newer(part.units[ua], part.units[ub]) { (ub, ua, found.swapped()) } else { (ua, ub, found) };
        let entry = held.entry((older, newer)).or_insert(Held {
            older,
            newer,
            similarity: pair.similarity,
            difference: found.clone(),
        });
        if pair.similarity > entry.similarity {
            *entry = Held { older, newer, similarity: pair.similarity, difference: found };
        }
    }
    let unit_ref = |u: usize| SourceRef { id: part.units[u].id, version: part.units[u].version };
    let mut open = Vec::new();
    for h in held.into_values() {
        let (x, y) = (part.units[h.older].id, part.units[h.newer].id);
        if judged.contains(&(x.min(y), x.max(y))) {
            report.judged_pairs += 1;
        } else {
            open.push(h);
        }
    }
    match guard {
        ValueGuard::Review => {
            report.reviews = open
                .iter()
                .map(|h| ReviewItem {
                    kind: ReviewKind::PossibleUpdate,
                    older: unit_ref(h.older),
                    newer: unit_ref(h.newer),
                    similarity: h.similarity,
                    difference: h.difference.clone(),
                    suggestion: ReviewSuggestion::Supersede,
                })
                .collect();
        }
        ValueGuard::Auto => {
            // Each older memory goes to the newest memory it conflicts with.
            let mut by: BTreeMap<usize, &Held> = BTreeMap::new();
            for h in &open {
                let newest = by.entry(h.older).or_insert(h);
                if is_newer(part.units[h.newer], part.units[newest.newer]) {
                    *newest = h;
                }
            }
            report.superseded = by
                .values()
                .map(|h| Supersession {
                    memory: unit_ref(h.older),
                    superseded_by: part.units[h.newer].id,
                    similarity: h.similarity,
                    difference: h.difference.clone(),
                })
                .collect();
            let gone: BTreeSet<u32> = by.keys().map(|&u| u as u32).collect();
            kept.retain(|p| !gone.contains(&part.unit_of[p.a as usize]) && !gone.contains(&part.unit_of[p.b as usize]));
        }
        ValueGuard::Off => {}
    }
    Screened { pairs: kept, report }
}
