//! Planner-level tests: rules across modules, properties, and a realistic fixture.

mod blast;
mod guards;
mod steady_state;
mod topics;

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use crate::domain::Cluster;
use crate::domain::Plan;
use crate::domain::{ChangeOperation, Memory, MemoryType, PlaybookEntrySnapshot, ProjectSnapshot};
use crate::domain::{Options, ValueGuard};
use crate::engine::guards::value::{Claims, difference};
use crate::engine::merge::embed::{CentroidEmbedder, EmbedError, Embedder};
use crate::engine::plan::{EngineConfig, plan};
use crate::engine::similarity::{UnitMatrix, dot};
use crate::engine::synthesis::{ExtractiveSynthesizer, SynthesisDraft, SynthesisError, Synthesizer, TopicView};
use crate::synthetic::{anchor, generate};

const JOB: Uuid = Uuid::from_u128(42);

/// A number spelled in letters (`0` is `a`, `27` is `bb`): texts that differ without a value the
/// value guard would hold apart.
pub(crate) fn spelled(mut n: u128) -> String {
    let mut out = String::new();
    loop {
        out.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return out;
        }
    }
}

/// Some memories name a port, of two: pairs the value guard holds apart.
const PORTS: [&str; 3] = ["", " It listens on port 8080.", " It listens on port 9090."];

fn run(snapshot: &ProjectSnapshot, options: &Options) -> Plan {
    plan(snapshot, options, &EngineConfig::default(), JOB, anchor(), &ExtractiveSynthesizer, &CentroidEmbedder)
}

fn memory(id: u128, memory_type: MemoryType, embedding: Vec<f32>, summary: &str) -> Memory {
    Memory {
        version: 3,
        memory_type,
        tags: vec![format!("tag-{id}")],
        files: vec![format!("src/file_{id}.rs")],
        embedding: Some(embedding.into()),
        success: Some(true),
        reused_count: id as i32,
        learned_at: anchor() - Duration::days(10),
        ..Memory::for_test(id, summary)
    }
}

fn snapshot(memories: Vec<Memory>, dim: usize) -> ProjectSnapshot {
    ProjectSnapshot::new(Uuid::from_u128(9), Some(dim), memories)
}

/// Three error fixes about one pool problem with near-identical embeddings, and their cluster.
pub fn three_similar_memories() -> (Cluster, Vec<Memory>) {
    let members = vec![
        memory(
            1,
            MemoryType::ErrorFix,
            vec![1.0, 0.05, 0.0],
            "Fixed QueuePool limit reached in db.py. Fix: release the session before the HTTP call.",
        ),
        memory(
            2,
            MemoryType::ErrorFix,
            vec![1.0, 0.0, 0.05],
            "QueuePool limit reached again in db.py. Release the session before the HTTP call.",
        ),
        memory(
            3,
            MemoryType::ErrorFix,
            vec![1.0, 0.03, 0.03],
            "Resolved QueuePool limit reached in db.py. Sessions were held during HTTP calls.",
        ),
    ];
    let p = run(&snapshot(members.clone(), 3), &Options::default());
    (p.clusters[0].clone(), members)
}

/// Three memories on one topic (the pool), each pair at similarity 0.86: related, never merged at
/// the default threshold, one topic. Each states something the others do not.
pub fn three_related_memories() -> Vec<Memory> {
    let (a, b) = (0.86f32.sqrt(), 0.14f32.sqrt());
    let along = |i: usize| {
        let mut v = vec![a, 0.0, 0.0, 0.0];
        v[i] = b;
        v
    };
    vec![
        memory(
            11,
            MemoryType::ErrorFix,
            along(1),
            "QueuePool limit reached in db.py under load. Release the session before the HTTP call.",
        ),
        memory(
            12,
            MemoryType::Warning,
            along(2),
            "Retries of the checkout call are not idempotent: a retried request can charge twice.",
        ),
        memory(
            13,
            MemoryType::Decision,
            along(3),
            "We chose pool_recycle=60 for the checkout database pool, after stale connections dropped requests.",
        ),
    ]
}

/// The synthesizer's view of `members` as one topic.
pub fn topic_view(members: &[Memory]) -> crate::engine::synthesis::TopicView<'_> {
    crate::engine::synthesis::TopicView {
        topic_id: "topic",
        weakest_link: 0.86,
        related_at: 0.92 - EngineConfig::default().topic_band,
        members: members
            .iter()
            .map(|m| crate::engine::synthesis::TopicMember {
                id: m.id,
                memory_type: Some(m.memory_type),
                label: m.id.simple().to_string()[..8].to_owned(),
                texts: vec![m.execution_summary.as_str()],
                tags: m.tags.iter().map(String::as_str).collect(),
            })
            .collect(),
    }
}

#[test]
fn the_fixture_clusters_the_three_similar_memories() {
    let (cluster, members) = three_similar_memories();
    assert_eq!(cluster.members, members.iter().map(|m| m.id).collect::<Vec<_>>());
    assert_eq!(cluster.representative, Uuid::from_u128(3), "highest reused_count");
    assert_eq!(cluster.memory_type, Some(MemoryType::ErrorFix));
}

fn cluster_sets(p: &Plan) -> BTreeSet<BTreeSet<Uuid>> {
    p.clusters.iter().map(|c| c.members.iter().copied().collect()).collect()
}

#[test]
fn realistic_fixture_finds_the_true_groups_and_merges_no_unrelated_pair() {
    let (snap, truth) = generate(320, 256, 11);
    let p = run(&snap, &Options::default());
    let found = cluster_sets(&p);
    for group in &truth.groups {
        let g: BTreeSet<Uuid> = group.iter().copied().collect();
        assert!(found.contains(&g), "group {g:?} not found whole");
    }
    let mut unit_of: HashMap<Uuid, usize> = HashMap::new();
    for (u, ids) in truth.groups.iter().chain(&truth.chains).enumerate() {
        for id in ids {
            unit_of.insert(*id, u);
        }
    }
    for c in &p.clusters {
        let units: HashSet<Option<&usize>> = c.members.iter().map(|m| unit_of.get(m)).collect();
        assert_eq!(units.len(), 1, "cluster {} mixes unrelated memories", c.id);
        assert!(!units.contains(&None), "a singleton was merged");
    }
    for chain in &truth.chains {
        let in_clusters: Vec<&Cluster> =
            p.clusters.iter().filter(|c| c.members.iter().any(|m| chain.contains(m))).collect();
        assert_eq!(in_clusters.len(), 1, "each chain yields exactly one pair");
        assert_eq!(in_clusters[0].members.len(), 2, "a chain must not merge whole");
    }
    assert_eq!(p.clusters.len(), truth.groups.len() + truth.chains.len());
    assert!(p.merges.iter().all(|m| m.coverage >= 0.95));
    let clustered: HashSet<Uuid> = p.clusters.iter().flat_map(|c| c.members.iter().copied()).collect();
    let expected_archive: BTreeSet<Uuid> = truth.stale.iter().filter(|id| !clustered.contains(id)).copied().collect();
    let archived: BTreeSet<Uuid> = p.archives.iter().map(|a| a.memory_id).collect();
    assert_eq!(archived, expected_archive);
}

#[test]
fn the_ann_path_finds_the_same_clusters_as_the_exact_scan_on_the_fixture() {
    let (snap, _) = generate(3_000, 192, 5);
    let exact = run(&snap, &Options::default());
    let config = EngineConfig { ann_min_candidates: 1, ..EngineConfig::default() };
    let ann = plan(&snap, &Options::default(), &config, JOB, anchor(), &ExtractiveSynthesizer, &CentroidEmbedder);
    let (e, a) = (cluster_sets(&exact), cluster_sets(&ann));
    let common = e.intersection(&a).count();
    assert!(common as f64 >= 0.99 * e.len() as f64, "{common} of {}", e.len());
}

#[test]
fn replanning_the_same_job_gives_the_same_ids_and_another_job_other_ids() {
    let (snap, _) = generate(200, 128, 3);
    let a = run(&snap, &Options::default());
    let b = run(&snap, &Options::default());
    let ids = |p: &Plan| {
        p.merges.iter().map(|m| m.memory.id).chain(p.promotions.iter().map(|x| x.entry_id)).collect::<Vec<_>>()
    };
    assert!(!a.merges.is_empty());
    assert_eq!(ids(&a), ids(&b));
    let c = plan(
        &snap,
        &Options::default(),
        &EngineConfig::default(),
        Uuid::from_u128(43),
        anchor(),
        &ExtractiveSynthesizer,
        &CentroidEmbedder,
    );
    assert!(ids(&a).iter().zip(ids(&c)).all(|(x, y)| *x != y));
    assert_eq!(a.merges[0].memory.id, Uuid::new_v5(&JOB, format!("merge:{}", a.merges[0].cluster_id).as_bytes()));
}

#[test]
fn cross_type_off_never_mixes_types_and_on_may() {
    let v = vec![1.0, 0.0];
    let memories =
        vec![memory(1, MemoryType::ErrorFix, v.clone(), "A."), memory(2, MemoryType::Warning, v.clone(), "B.")];
    assert!(run(&snapshot(memories.clone(), 2), &Options::default()).clusters.is_empty());
    let p = run(&snapshot(memories, 2), &Options { cross_type: true, ..Options::default() });
    assert_eq!(p.clusters.len(), 1);
    assert_eq!(p.clusters[0].memory_type, None);
}

#[test]
fn memories_without_a_matching_embedding_are_not_clustered_and_are_reported() {
    let mut memories = vec![
        memory(1, MemoryType::Learning, vec![1.0, 0.0], "A."),
        memory(2, MemoryType::Learning, vec![1.0, 0.0, 0.0], "B."),
    ];
    memories.push(Memory { embedding: None, ..memory(3, MemoryType::Learning, vec![], "C.") });
    let p = run(&snapshot(memories, 2), &Options::default());
    assert!(p.clusters.is_empty());
    assert!(p.warnings.iter().any(|w| w.starts_with("2 memories have no usable embedding")), "{:?}", p.warnings);
}

#[test]
fn with_merge_off_topics_are_still_synthesized_and_their_sources_not_archived() {
    let mut members = three_related_memories();
    for m in &mut members {
        m.reused_count = 0;
        m.learned_at = anchor() - Duration::days(400);
    }
    let p = run(&snapshot(members, 4), &Options { merge: false, ..Options::default() });
    assert!(p.merges.is_empty());
    assert_eq!(p.syntheses.len(), 1);
    assert!(p.archives.is_empty(), "synthesis sources are not archived");
    assert_eq!(p.counters.memories_merged, 0);
    assert_eq!(p.memories_after, 4);
}

#[test]
fn audit_rows_have_the_documented_shapes() {
    let (_, mut members) = three_similar_memories();
    members.push(Memory {
        reused_count: 0,
        learned_at: anchor() - Duration::days(100),
        ..memory(9, MemoryType::Decision, vec![0.0, 1.0, 0.0], "Old.")
    });
    let p = run(&snapshot(members, 3), &Options::default());
    let merge = &p.merges[0];
    let source_row = p.changes.iter().find(|c| c.memory_id == Uuid::from_u128(1)).unwrap();
    assert_eq!(source_row.operation, ChangeOperation::Merge);
    assert_eq!(
        source_row.previous_state,
        serde_json::json!({"is_duplicate": false, "duplicate_of": null, "version": 3})
    );
    assert_eq!(source_row.new_state, serde_json::json!({"is_duplicate": true, "duplicate_of": merge.memory.id}));
    let created =
        p.changes.iter().find(|c| c.memory_id == merge.memory.id && c.operation == ChangeOperation::Merge).unwrap();
    assert!(created.previous_state.is_null());
    assert_eq!(created.new_state["consolidated_from"].as_array().unwrap().len(), 3);
    let archive = p.changes.iter().find(|c| c.operation == ChangeOperation::Archive).unwrap();
    assert_eq!(archive.memory_id, Uuid::from_u128(9));
    assert_eq!(archive.previous_state["version"], 3);
    assert_eq!(archive.new_state["archive_reason"], "staleness");
    assert!(p.syntheses.is_empty(), "a near-duplicate cluster alone is no topic");
    for promo in &p.promotions {
        let row = p
            .changes
            .iter()
            .find(|c| c.operation == ChangeOperation::Promote && c.memory_id == promo.memory_id)
            .unwrap();
        assert_eq!(row.new_state["entry_id"], serde_json::json!(promo.entry_id));
    }
}

#[test]
fn a_near_identical_playbook_entry_blocks_a_promotion() {
    let (_, members) = three_similar_memories();
    let mut snap = snapshot(members, 3);
    let first = run(&snap, &Options::default());
    assert!(!first.promotions.is_empty());
    snap.playbook = first
        .promotions
        .iter()
        .map(|p| PlaybookEntrySnapshot {
            id: Uuid::new_v4(),
            content: p.content.clone(),
            category: p.category.clone(),
            embedding: Some(p.embedding.clone().into()),
            supporting_memory_ids: vec![],
            source_memory_id: None,
        })
        .collect();
    assert!(run(&snap, &Options::default()).promotions.is_empty());
}

#[test]
fn promotion_respects_the_confidence_threshold() {
    let (_, members) = three_similar_memories();
    let p = run(&snapshot(members.clone(), 3), &Options { promote_confidence_threshold: 1.0, ..Options::default() });
    assert!(p.promotions.iter().all(|x| x.confidence >= 1.0));
    let p = run(&snapshot(members, 3), &Options { promote: false, ..Options::default() });
    assert!(p.promotions.is_empty());
}

struct Failing;

impl Synthesizer for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    fn synthesize(&self, _: &TopicView<'_>) -> Result<SynthesisDraft, SynthesisError> {
        Err(SynthesisError::Transport("connection refused".into()))
    }
}

impl Embedder for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    fn embed(&self, _: &str, _: &[&[f32]]) -> Result<Vec<f32>, EmbedError> {
        Ok(vec![1.0])
    }
}

#[test]
fn a_failing_synthesizer_or_invalid_embedder_falls_back_with_a_warning() {
    let (_, members) = three_similar_memories();
    let snap = snapshot(members, 3);
    let p = plan(&snap, &Options::default(), &EngineConfig::default(), JOB, anchor(), &Failing, &Failing);
    assert_eq!(p.merges[0].embedder, "centroid");
    assert_eq!(p.merges[0].memory.embedding.as_ref().map_or(0, Vec::len), 3);
    assert!(p.warnings.iter().any(|w| w.contains("embedder failing failed")));
    let snap = snapshot(three_related_memories(), 4);
    let p = plan(&snap, &Options::default(), &EngineConfig::default(), JOB, anchor(), &Failing, &Failing);
    assert_eq!(p.syntheses[0].synthesizer, "extractive");
    assert_eq!(p.syntheses[0].memory.embedding.as_ref().map_or(0, Vec::len), 4, "the centroid");
    assert!(p.warnings.iter().any(|w| w.contains("synthesizer failing failed")));
}

#[test]
fn a_cluster_that_only_describes_gets_no_synthesis_and_no_warning() {
    let members = vec![
        memory(1, MemoryType::Learning, vec![1.0, 0.02, 0.0], "Tokio is a runtime for asynchronous Rust applications."),
        memory(
            2,
            MemoryType::Learning,
            vec![1.0, 0.0, 0.02],
            "Tokio is an asynchronous runtime for Rust applications.",
        ),
        memory(3, MemoryType::Learning, vec![1.0, 0.01, 0.01], "A runtime for asynchronous applications in Rust."),
    ];
    let p = run(&snapshot(members, 3), &Options::default());
    assert_eq!(p.merges.len(), 1);
    assert!(p.syntheses.is_empty());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn low_confidence_syntheses_need_review() {
    // With no band, the members are related only through a shared tag: closeness 0.86 / 0.92.
    let config =
        EngineConfig { topic_band: 0.0, topic_shared_band: 0.1, review_confidence: 0.99, ..EngineConfig::default() };
    let members: Vec<Memory> =
        three_related_memories().into_iter().map(|m| Memory { tags: vec!["pool".into()], ..m }).collect();
    let p = plan(
        &snapshot(members, 4),
        &Options::default(),
        &config,
        JOB,
        anchor(),
        &ExtractiveSynthesizer,
        &CentroidEmbedder,
    );
    assert!(p.syntheses[0].confidence < config.review_confidence, "{}", p.syntheses[0].confidence);
    assert!(p.syntheses[0].needs_review && p.syntheses[0].memory.needs_review);
    assert_eq!(p.counters.needs_review, 1);
}

fn guard() -> impl Strategy<Value = ValueGuard> {
    prop::sample::select(ValueGuard::ALL.to_vec())
}

fn arbitrary_snapshot() -> impl Strategy<Value = (ProjectSnapshot, Vec<usize>)> {
    let dim = 4;
    // Vectors from a few base directions plus small noise make many above-threshold pairs.
    let row = (0usize..4, prop::collection::vec(-0.3f32..0.3, dim), 0usize..3, 0i32..6, 0i64..200, 0usize..3);
    prop::collection::vec(row, 2..28).prop_flat_map(move |rows| {
        let n = rows.len();
        let memories: Vec<Memory> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (base, noise, t, reuse, age, port))| {
                let mut v: Vec<f32> = noise;
                v[base] += 2.0;
                Memory {
                    tags: vec![format!("t{}", i % 3), format!("u{i}")],
                    files: vec![format!("f{}.rs", i % 4)],
                    task_id: Some(format!("task-{}", i % 5)),
                    reused_count: reuse,
                    learned_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() - Duration::days(age),
                    ..memory(
                        i as u128 + 1,
                        [MemoryType::ErrorFix, MemoryType::Warning, MemoryType::Decision][t],
                        v,
                        &format!(
                            "Memory {} says {}. Extra {}.{}",
                            spelled(i as u128),
                            spelled(base as u128),
                            spelled(i as u128 % 2),
                            PORTS[port]
                        ),
                    )
                }
            })
            .collect();
        (
            Just(snapshot(memories, dim)),
            Just(()).prop_perturb(move |_, mut rng| {
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    order.swap(i, (rng.next_u32() as usize) % (i + 1));
                }
                order
            }),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn clusters_are_disjoint_cliques_of_allowed_size_and_type(
        (snap, _) in arbitrary_snapshot(), threshold in 0.5f32..0.99, min in 2usize..4, cross in any::<bool>(), guard in guard()
    ) {
        let options = Options { similarity_threshold: threshold, min_cluster_size: min, cross_type: cross, value_guard: guard, ..Options::default() };
        let p = run(&snap, &options);
        let by_id: HashMap<Uuid, &Memory> = snap.memories.iter().map(|m| (m.id, m)).collect();
        let unit = |id: &Uuid| UnitMatrix::normalize(by_id[id].embedding.as_ref().unwrap(), 4).unwrap();
        let mut seen = HashSet::new();
        for c in &p.clusters {
            prop_assert!(c.members.len() >= min);
            for (i, a) in c.members.iter().enumerate() {
                prop_assert!(seen.insert(*a), "memory in two clusters");
                for b in &c.members[i + 1..] {
                    prop_assert!(dot(&unit(a), &unit(b)) >= threshold - 1e-5);
                }
            }
            if !cross {
                let types: HashSet<MemoryType> = c.members.iter().map(|m| by_id[m].memory_type).collect();
                prop_assert_eq!(types.len(), 1);
            }
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_input_order((snap, order) in arbitrary_snapshot()) {
        let mut shuffled = snap.clone();
        shuffled.memories = order.iter().map(|&i| snap.memories[i].clone()).collect();
        let a = run(&snap, &Options::default());
        let b = run(&shuffled, &Options::default());
        prop_assert_eq!(&a.clusters, &b.clusters);
        prop_assert_eq!(&a.merges, &b.merges);
        prop_assert_eq!(&a.archives, &b.archives);
        prop_assert_eq!(&a.changes, &b.changes);
    }

    #[test]
    fn merges_keep_every_tag_file_and_task_id_and_cover_their_sources((snap, _) in arbitrary_snapshot()) {
        let p = run(&snap, &Options::default());
        let by_id: HashMap<Uuid, &Memory> = snap.memories.iter().map(|m| (m.id, m)).collect();
        for m in &p.merges {
            for s in &m.sources {
                for t in &by_id[&s.id].tags { prop_assert!(m.memory.tags.contains(t)); }
                for f in &by_id[&s.id].files { prop_assert!(m.memory.files.contains(f)); }
                if let Some(t) = &by_id[&s.id].task_id { prop_assert!(m.memory.task_ids.contains(t)); }
            }
            prop_assert!(m.coverage >= 0.95);
        }
    }

    #[test]
    fn with_the_value_guard_on_no_cluster_holds_two_texts_that_differ_in_a_value(
        (snap, _) in arbitrary_snapshot(), threshold in 0.5f32..0.99, guard in guard()
    ) {
        let options = Options { similarity_threshold: threshold, value_guard: guard, ..Options::default() };
        let p = run(&snap, &options);
        let claims: HashMap<Uuid, Claims> = snap.memories.iter().map(|m| (m.id, Claims::of(&m.execution_summary))).collect();
        let superseded: HashSet<Uuid> = p.guard.superseded.iter().map(|s| s.memory.id).collect();
        let mut held_apart = 0;
        for c in &p.clusters {
            for (i, a) in c.members.iter().enumerate() {
                prop_assert!(!superseded.contains(a), "a superseded memory is archived, not merged");
                for b in &c.members[i + 1..] {
                    held_apart += usize::from(difference(&claims[a], &claims[b]).is_some());
                }
            }
        }
        if guard == ValueGuard::Off {
            prop_assert!(p.guard.held_pairs == 0 && p.guard.reviews.is_empty() && superseded.is_empty());
        } else {
            prop_assert_eq!(held_apart, 0);
        }
        if guard != ValueGuard::Review {
            prop_assert!(p.guard.reviews.is_empty());
        }
        let created: HashSet<Uuid> = p.merges.iter().map(|m| m.memory.id).collect();
        for r in &p.guard.reviews {
            let find = |id: Uuid| snap.memories.iter().find(|m| m.id == id);
            match (find(r.older.id), find(r.newer.id)) {
                (Some(older), Some(newer)) => prop_assert!((older.learned_at, older.id) < (newer.learned_at, newer.id), "the older memory is named first"),
                // A held memory this plan merges is named by its consolidated memory.
                _ => prop_assert!(created.contains(&r.older.id) || created.contains(&r.newer.id)),
            }
        }
    }

    #[test]
    fn counters_and_audit_rows_match_the_plan((snap, _) in arbitrary_snapshot(), merge in any::<bool>(), archive in any::<bool>(), guard in guard()) {
        let p = run(&snap, &Options { merge, archive, value_guard: guard, ..Options::default() });
        let sources: usize = p.merges.iter().map(|m| m.sources.len()).sum();
        prop_assert_eq!(p.counters.clusters_found as usize, p.clusters.len());
        prop_assert_eq!(p.counters.memories_merged as usize, sources);
        prop_assert_eq!(p.counters.memories_archived as usize, p.archives.len());
        prop_assert_eq!(p.counters.memories_promoted as usize, p.promotions.len());
        prop_assert_eq!(p.counters.summaries_created as usize, p.syntheses.len());
        prop_assert_eq!(p.changes.len(), sources + p.merges.len() + p.syntheses.len() + p.archives.len() + p.promotions.len());
        prop_assert_eq!(p.memories_after, p.memories_before - sources as i64 + p.merges.len() as i64 + p.syntheses.len() as i64 - p.archives.len() as i64);
        let planned: HashSet<Uuid> = p.merges.iter().flat_map(|m| m.sources.iter()).chain(p.syntheses.iter().flat_map(|s| s.sources.iter())).map(|s| s.id).collect();
        prop_assert!(p.archives.iter().all(|a| !planned.contains(&a.memory_id)));
        let created: HashSet<Uuid> = p.merges.iter().map(|m| m.memory.id).chain(p.syntheses.iter().map(|s| s.memory.id)).collect();
        prop_assert!(p.promotions.iter().all(|x| created.contains(&x.memory_id)));
    }
}

#[test]
fn a_dry_run_report_is_bounded_and_carries_no_embeddings() {
    let (_, members) = three_similar_memories();
    let plan = run(&snapshot(members, 3), &Options::default());
    assert!(!plan.merges.is_empty() && plan.changes.len() > 1);
    let whole = serde_json::to_value(crate::engine::plan::report::report(&plan, 100)).unwrap();
    assert_eq!(whole["truncated"], false);
    assert_eq!(whole["totals"]["changes"], plan.changes.len());
    assert!(!serde_json::to_string(&whole).unwrap().contains("\"embedding\""), "no embeddings: {whole}");
    assert!(serde_json::to_string(&plan).unwrap().contains("\"embedding\""), "the plan itself has them");

    let bounded = serde_json::to_value(crate::engine::plan::report::report(&plan, 1)).unwrap();
    assert_eq!(bounded["truncated"], true);
    assert_eq!(bounded["changes"].as_array().unwrap().len(), 1);
    assert_eq!(bounded["totals"]["changes"], plan.changes.len(), "the total is kept beside the kept entries");
}

#[test]
fn a_dry_run_report_cuts_the_lists_inside_an_entry_too() {
    let mut entry = serde_json::json!({
        "members": (0..250).collect::<Vec<_>>(),
        "memory": {"embedding": [1.0], "consolidated_from": (0..101).collect::<Vec<_>>()},
    });
    crate::engine::plan::report::bound_entry(&mut entry);
    assert_eq!(entry["members"].as_array().unwrap().len(), crate::engine::plan::report::NESTED_LIMIT);
    assert_eq!(
        (entry["members_total"].as_u64(), entry["memory"]["consolidated_from_total"].as_u64()),
        (Some(250), Some(101))
    );
    assert!(entry["memory"].get("embedding").is_none());

    let (_, members) = three_similar_memories();
    let mut plan = run(&snapshot(members, 3), &Options::default());
    plan.warnings = (0..5).map(|i| format!("warning {i}")).collect();
    let report = serde_json::to_value(crate::engine::plan::report::report(&plan, 2)).unwrap();
    assert_eq!(report["warnings"].as_array().unwrap().len(), 2);
    assert_eq!((report["totals"]["warnings"].as_u64(), report["truncated"].as_bool()), (Some(5), Some(true)));
}
