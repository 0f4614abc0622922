//! Repeated consolidation (DESIGN.md §11): re-learned facts fold into the consolidated memory
//! they repeat, the clique rule holds over original memories across jobs, and an incremental run
//! merges the new memories a full run would.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Duration;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use uuid::Uuid;

use crate::domain::Options;
use crate::domain::Plan;
use crate::domain::{Memory, MemoryType, ProjectSnapshot};
use crate::engine::merge::embed::CentroidEmbedder;
use crate::engine::plan::{EngineConfig, plan};
use crate::engine::similarity::ann::gaussian;
use crate::engine::similarity::{UnitMatrix, dot};
use crate::engine::synthesis::ExtractiveSynthesizer;
use crate::engine::tests::spelled;
use crate::synthetic::anchor;
use crate::synthetic::in_memory::{apply, incremental};

const DIM: usize = 24;
const JOB: Uuid = Uuid::from_u128(77);

fn run(snapshot: &ProjectSnapshot, options: &Options) -> Plan {
    plan(snapshot, options, &EngineConfig::default(), JOB, anchor(), &ExtractiveSynthesizer, &CentroidEmbedder)
}

fn unit(v: &[f32]) -> Vec<f32> {
    UnitMatrix::normalize(v, v.len()).unwrap_or_else(|| v.to_vec())
}

/// A random fact direction, and memories around it: `spread` is the noise per coordinate.
struct Facts {
    rng: ChaCha8Rng,
    directions: Vec<Vec<f32>>,
    next_id: u128,
}

impl Facts {
    fn new(seed: u64, count: usize) -> Facts {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let directions = (0..count).map(|_| unit(&(0..DIM).map(|_| gaussian(&mut rng)).collect::<Vec<_>>())).collect();
        Facts { rng, directions, next_id: 1 }
    }

    fn memory(&mut self, fact: usize, spread: f32, memory_type: MemoryType) -> Memory {
        let noisy: Vec<f32> = self.directions[fact].iter().map(|x| x + spread * gaussian(&mut self.rng)).collect();
        let id = self.next_id;
        self.next_id += 1;
        Memory {
            memory_type,
            embedding: Some(unit(&noisy).into()),
            task_id: Some(format!("task-{id}")),
            tags: vec![format!("fact-{fact}")],
            files: vec![format!("src/fact_{fact}.rs")],
            reused_count: 4,
            learned_at: anchor() - Duration::days(1),
            ..Memory::for_test(
                id,
                &format!("Fact {} was learned again. Detail {} about it.", spelled(fact as u128), spelled(id)),
            )
        }
    }

    /// A new memory with the text and embedding of `original`: the same fact re-learned.
    fn copy_of(&mut self, original: &Memory) -> Memory {
        let id = self.next_id;
        self.next_id += 1;
        Memory { id: Uuid::from_u128(id), task_id: Some(format!("task-{id}")), ..original.clone() }
    }
}

fn snapshot(memories: Vec<Memory>) -> ProjectSnapshot {
    ProjectSnapshot::new(Uuid::from_u128(5), Some(DIM), memories)
}

fn no_archive() -> Options {
    Options { archive: false, ..Options::default() }
}

fn active_consolidated(s: &ProjectSnapshot) -> Vec<&Memory> {
    s.memories.iter().filter(|m| m.memory_type == MemoryType::Consolidated).collect()
}

/// Consolidates three facts of three paraphrases each; returns the state and the originals.
fn consolidated_three_facts(facts: &mut Facts) -> (ProjectSnapshot, Vec<Memory>) {
    let originals: Vec<Memory> =
        (0..3).flat_map(|f| (0..3).map(move |_| f)).map(|f| facts.memory(f, 0.02, MemoryType::ErrorFix)).collect();
    let mut state = snapshot(originals.clone());
    let first = run(&state, &no_archive());
    assert_eq!(first.merges.len(), 3);
    apply(&mut state, &first);
    (state, originals)
}

#[test]
fn relearned_copies_fold_into_their_consolidated_memory_under_default_options() {
    let mut facts = Facts::new(1, 3);
    let (mut state, originals) = consolidated_three_facts(&mut facts);
    let copies: Vec<Memory> = originals.iter().step_by(3).map(|o| facts.copy_of(o)).collect();
    let copy_ids: HashSet<Uuid> = copies.iter().map(|c| c.id).collect();
    state.memories.extend(copies);
    state.scope = incremental(copy_ids.iter().copied());

    let second = run(&state, &no_archive());

    assert_eq!(second.merges.len(), 3, "every copy folds in");
    for merge in &second.merges {
        let sources: HashSet<Uuid> = merge.sources.iter().map(|s| s.id).collect();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources.intersection(&copy_ids).count(), 1, "one copy and one consolidated memory");
        assert_eq!(merge.memory.consolidated_from.len(), 4, "three originals plus the copy");
        assert_eq!(merge.memory.source_type, Some(MemoryType::ErrorFix));
        assert!(
            merge.memory.consolidated_from.iter().all(|id| !active_consolidated(&state).iter().any(|c| c.id == *id))
        );
    }
    assert_eq!(second.scope.mode, "incremental");
    assert_eq!(second.scope.compared, 3);
}

#[test]
fn a_newcomer_close_to_only_some_originals_stays_out() {
    let axis = |x: f32, y: f32| -> Vec<f32> {
        unit(&(0..DIM).map(|k| [x, y][..].get(k).copied().unwrap_or(0.0)).collect::<Vec<_>>())
    };
    let mut facts = Facts::new(2, 1);
    let with = |m: Memory, e: Vec<f32>| Memory { embedding: Some(e.into()), ..m };
    let originals = vec![
        with(facts.memory(0, 0.0, MemoryType::ErrorFix), axis(1.0, 0.0)),
        with(facts.memory(0, 0.0, MemoryType::ErrorFix), axis(0.92, 0.39)),
    ];
    let mut state = snapshot(originals);
    let first = run(&state, &no_archive());
    assert_eq!(first.merges.len(), 1);
    apply(&mut state, &first);
    // Cosine 0.99 with the first original, 0.86 with the second, 0.94 with their centroid.
    let newcomer = with(facts.memory(0, 0.0, MemoryType::ErrorFix), axis(0.99, -0.14));
    state.scope = incremental([newcomer.id]);
    state.memories.push(newcomer.clone());

    assert!(run(&state, &no_archive()).merges.is_empty());
    // Judged by the consolidated memory's own (centroid) embedding, it would have joined.
    state.originals.clear();
    assert_eq!(run(&state, &no_archive()).merges.len(), 1, "fixture: close to the centroid");
}

#[test]
fn a_consolidated_memory_of_mixed_types_meets_nothing_without_cross_type() {
    let mut facts = Facts::new(3, 1);
    let members = vec![facts.memory(0, 0.01, MemoryType::Learning), facts.memory(0, 0.01, MemoryType::Warning)];
    let mut state = snapshot(members.clone());
    let cross = Options { cross_type: true, ..no_archive() };
    let first = run(&state, &cross);
    assert_eq!(first.merges[0].memory.source_type, None);
    apply(&mut state, &first);
    let copy = facts.copy_of(&members[0]);
    state.memories.push(copy);

    assert!(run(&state, &no_archive()).merges.is_empty());
    assert_eq!(run(&state, &cross).merges.len(), 1);
}

#[test]
fn a_grown_cluster_keeps_its_one_playbook_entry_which_follows_it() {
    let mut facts = Facts::new(4, 1);
    let texts = [
        "The pool times out when a session is held across the HTTP call. Always release the session first.",
        "Holding the session during the HTTP call exhausts the pool. Never keep it open across network calls.",
        "QueuePool limit reached: the session stayed open over an HTTP call. Release it before calling out.",
    ];
    let originals: Vec<Memory> = texts
        .iter()
        .map(|text| Memory { execution_summary: (*text).to_owned(), ..facts.memory(0, 0.01, MemoryType::Warning) })
        .collect();
    let mut state = snapshot(originals.clone());
    let first = run(&state, &no_archive());
    assert_eq!((first.merges.len(), first.promotions.len()), (1, 1), "{:?}", first.warnings);
    let entry = first.promotions[0].entry_id;
    apply(&mut state, &first);
    let copy = facts.copy_of(&originals[1]);
    let copy_id = copy.id;
    state.memories.push(copy);

    let second = run(&state, &no_archive());

    assert_eq!(second.merges.len(), 1);
    assert!(second.promotions.is_empty(), "the cluster already has its playbook entry");
    assert_eq!(second.follows.len(), 1);
    let follow = &second.follows[0];
    assert_eq!((follow.entry_id, follow.memory_id), (entry, second.merges[0].memory.id));
    assert_eq!(follow.previous.source_memory_id, Some(first.merges[0].memory.id));
    assert!(follow.next.supporting_memory_ids.contains(&copy_id), "the new supporter");
    assert_eq!(follow.next.supporting_memory_ids.len(), 4);
    let row = second.changes.iter().find(|c| c.new_state["followed"] == true).unwrap();
    assert_eq!(row.previous_state["source_memory_id"], serde_json::json!(first.merges[0].memory.id));
    apply(&mut state, &second);
    assert_eq!(state.playbook.len(), 1);
    assert_eq!(state.playbook[0].source_memory_id, Some(second.merges[0].memory.id));
}

/// Every active consolidated memory's originals are pairwise above the threshold, and no
/// original belongs to two of them.
fn check_invariants(state: &ProjectSnapshot, threshold: f32) -> Result<(), TestCaseError> {
    let originals: HashMap<Uuid, &Memory> = state.originals.iter().map(|o| (o.id, o)).collect();
    let mut owner: HashMap<Uuid, Uuid> = HashMap::new();
    for c in active_consolidated(state) {
        for (i, a) in c.consolidated_from.iter().enumerate() {
            if let Some(previous) = owner.insert(*a, c.id) {
                prop_assert!(false, "original {a} is in {previous} and {}", c.id);
            }
            for b in &c.consolidated_from[i + 1..] {
                let (ea, eb) = (originals[a].embedding.as_ref().unwrap(), originals[b].embedding.as_ref().unwrap());
                prop_assert!(dot(ea, eb) >= threshold - 1e-5, "{a} ~ {b} below the threshold in {}", c.id);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn day_by_day_incremental_runs_keep_the_clique_rule_and_fold_every_relearned_copy(
        seed in 0u64..10_000,
        facts_count in 3usize..10,
        days in 2usize..6,
        per_day in 2usize..12,
    ) {
        let mut facts = Facts::new(seed, facts_count);
        let options = no_archive();
        let mut state = snapshot(Vec::new());
        for day in 0..days {
            let mut arrivals = Vec::new();
            for k in 0..per_day {
                let pick = (seed as usize + day * 31 + k * 7) % facts_count;
                let originals_of_fact: Vec<Memory> = state
                    .originals
                    .iter()
                    .filter(|o| o.tags.contains(&format!("fact-{pick}")))
                    .cloned()
                    .collect();
                let memory = match (k % 3, originals_of_fact.first()) {
                    (0, Some(original)) => facts.copy_of(original),
                    (1, _) => facts.memory(pick, 0.02, MemoryType::Learning),
                    _ => facts.memory(pick, 0.25, MemoryType::Learning),
                };
                arrivals.push(memory);
            }
            let copies: Vec<Uuid> = arrivals
                .iter()
                .filter(|m| state.originals.iter().any(|o| o.embedding == m.embedding))
                .map(|m| m.id)
                .collect();
            state.scope = incremental(arrivals.iter().map(|m| m.id));
            state.memories.extend(arrivals);
            let day_plan = run(&state, &options);
            apply(&mut state, &day_plan);
            check_invariants(&state, options.similarity_threshold)?;
            let active: HashSet<Uuid> = state.memories.iter().map(|m| m.id).collect();
            for id in copies {
                prop_assert!(!active.contains(&id), "re-learned copy {id} stayed active on day {day}");
            }
        }
    }
}

#[test]
fn incremental_and_full_runs_merge_the_same_new_memories() {
    let mut facts = Facts::new(9, 6);
    let mut day_one: Vec<Memory> =
        (0..6).flat_map(|f| (0..2).map(move |_| f)).map(|f| facts.memory(f, 0.02, MemoryType::Decision)).collect();
    for f in 0..6 {
        day_one.push(facts.memory(f, 0.3, MemoryType::Decision));
    }
    let mut state = snapshot(day_one.clone());
    let first = run(&state, &no_archive());
    apply(&mut state, &first);
    let mut arrivals: Vec<Memory> = (0..6).map(|f| facts.memory(f, 0.02, MemoryType::Decision)).collect();
    arrivals.push(facts.copy_of(&day_one[0]));
    arrivals.push(facts.copy_of(&day_one[4]));
    arrivals.push(facts.memory(2, 0.3, MemoryType::Decision));
    let new_ids: HashSet<Uuid> = arrivals.iter().map(|m| m.id).collect();
    state.memories.extend(arrivals);

    let full = run(&state, &no_archive());
    state.scope = incremental(new_ids.iter().copied());
    let incremental = run(&state, &no_archive());

    let merged_new = |p: &Plan| -> BTreeMap<Uuid, Vec<Uuid>> {
        p.merges
            .iter()
            .flat_map(|m| {
                let mut members = m.memory.consolidated_from.clone();
                members.sort();
                m.sources.iter().filter(|s| new_ids.contains(&s.id)).map(move |s| (s.id, members.clone()))
            })
            .collect()
    };
    assert!(merged_new(&full).len() >= 8, "fixture: most new memories merge");
    assert_eq!(merged_new(&incremental), merged_new(&full));
    assert!(incremental.scope.compared < full.scope.compared);
}
