//! The value guard in whole plans (DESIGN.md §11): near-identical memories that state different
//! values never share a cluster; `review` proposes them, `auto` supersedes the older, `off` merges.

use chrono::Duration;
use uuid::Uuid;

use crate::domain::Plan;
use crate::domain::{ArchiveReason, ChangeOperation, Memory, ProjectSnapshot};
use crate::domain::{Options, ValueGuard};
use crate::engine::merge::embed::CentroidEmbedder;
use crate::engine::plan::{EngineConfig, plan};
use crate::engine::synthesis::ExtractiveSynthesizer;
use crate::synthetic::anchor;

fn run(snapshot: &ProjectSnapshot, value_guard: ValueGuard) -> Plan {
    run_with(snapshot, &Options { value_guard, archive: false, ..Options::default() })
}

fn run_with(snapshot: &ProjectSnapshot, options: &Options) -> Plan {
    plan(
        snapshot,
        options,
        &EngineConfig::default(),
        Uuid::from_u128(7),
        anchor(),
        &ExtractiveSynthesizer,
        &CentroidEmbedder,
    )
}

fn memory(id: u128, days_ago: i64, embedding: [f32; 3], summary: &str) -> Memory {
    Memory {
        embedding: Some(embedding.to_vec().into()),
        learned_at: anchor() - Duration::days(days_ago),
        ..Memory::for_test(id, summary)
    }
}

/// Two paraphrases of the old router address (1, 2) and the new address (3), all at cosine > 0.99.
fn router_addresses() -> ProjectSnapshot {
    let memories = vec![
        memory(1, 30, [1.0, 0.02, 0.0], "The office router IP is 192.168.7.1; the VPN points at it."),
        memory(2, 20, [1.0, 0.0, 0.02], "The VPN points at the office router, whose IP is 192.168.7.1."),
        memory(3, 2, [1.0, 0.01, 0.01], "The office router IP is 192.168.9.1; the VPN points at it."),
    ];
    ProjectSnapshot::new(Uuid::from_u128(9), Some(3), memories)
}

#[test]
fn review_keeps_a_changed_address_out_of_the_cluster_and_proposes_the_update() {
    let p = run(&router_addresses(), ValueGuard::Review);
    assert_eq!(p.clusters.len(), 1);
    assert_eq!(p.clusters[0].members, vec![Uuid::from_u128(1), Uuid::from_u128(2)], "the paraphrases still merge");
    assert_eq!(p.guard.held_pairs, 2);
    // Both held pairs name the memory the paraphrases merge into: one review, newer supersedes older.
    let merged = p.merges[0].memory.id;
    let proposed: Vec<(Uuid, Uuid)> = p.guard.reviews.iter().map(|r| (r.older.id, r.newer.id)).collect();
    assert_eq!(proposed, vec![(merged, Uuid::from_u128(3))]);
    assert_eq!(p.guard.reviews[0].older.version, crate::domain::NEW_MEMORY_VERSION);
    assert_eq!(p.guard.reviews[0].difference.left, vec!["192.168.7.1".to_owned()]);
    assert_eq!(p.guard.reviews[0].difference.right, vec!["192.168.9.1".to_owned()]);
    assert!(p.archives.is_empty(), "review changes nothing by itself");
}

#[test]
fn without_a_merge_the_review_names_the_memories_themselves() {
    let mut snapshot = router_addresses();
    snapshot.memories.remove(1);
    let p = run(&snapshot, ValueGuard::Review);
    assert!(p.clusters.is_empty());
    let proposed: Vec<(u128, u128)> =
        p.guard.reviews.iter().map(|r| (r.older.id.as_u128(), r.newer.id.as_u128())).collect();
    assert_eq!(proposed, vec![(1, 3)]);
    assert_eq!(p.guard.reviews[0].older.version, 1);
}

#[test]
fn auto_supersedes_the_older_memories_by_the_newer_one_with_an_audit_row() {
    let p = run(&router_addresses(), ValueGuard::Auto);
    assert!(p.clusters.is_empty(), "superseded memories are archived, not merged");
    let superseded: Vec<u128> = p.guard.superseded.iter().map(|s| s.memory.id.as_u128()).collect();
    assert_eq!(superseded, vec![1, 2]);
    assert!(p.guard.superseded.iter().all(|s| s.superseded_by == Uuid::from_u128(3)));
    assert_eq!(p.archives.len(), 2);
    assert!(p.archives.iter().all(|a| a.reason == ArchiveReason::Superseded));
    let rows: Vec<_> = p.changes.iter().filter(|c| c.operation == ChangeOperation::Archive).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].new_state["archive_reason"], "superseded");
    assert_eq!(rows[0].new_state["superseded_by"], Uuid::from_u128(3).to_string());
    assert!(rows[0].reason.contains("192.168.7.1 vs 192.168.9.1"), "{}", rows[0].reason);
    assert_eq!(p.memories_after, 1);
}

#[test]
fn off_merges_the_changed_address_as_before() {
    let p = run(&router_addresses(), ValueGuard::Off);
    assert_eq!(p.clusters.len(), 1);
    assert_eq!(p.clusters[0].members.len(), 3);
    assert_eq!(p.guard.held_pairs, 0);
}

#[test]
fn a_pair_someone_judged_is_still_kept_apart_but_not_proposed_again() {
    let mut snapshot = router_addresses();
    snapshot.judged.insert((Uuid::from_u128(1), Uuid::from_u128(3)));
    let p = run(&snapshot, ValueGuard::Review);
    assert_eq!(p.clusters[0].members, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
    assert_eq!(p.guard.judged_pairs, 1);
    let proposed: Vec<(Uuid, Uuid)> = p.guard.reviews.iter().map(|r| (r.older.id, r.newer.id)).collect();
    assert_eq!(proposed, vec![(p.merges[0].memory.id, Uuid::from_u128(3))], "only the unjudged pair (2, 3)");
    let auto = run(&snapshot, ValueGuard::Auto);
    assert_eq!(auto.guard.superseded.iter().map(|s| s.memory.id.as_u128()).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn negated_and_affirmed_versions_of_one_statement_do_not_merge() {
    let memories = vec![
        memory(1, 9, [1.0, 0.0, 0.01], "Retrying the upload works after a token refresh."),
        memory(2, 1, [1.0, 0.01, 0.0], "Retrying the upload does not work after a token refresh."),
    ];
    let p = run(&ProjectSnapshot::new(Uuid::from_u128(9), Some(3), memories), ValueGuard::Review);
    assert!(p.clusters.is_empty());
    assert_eq!(p.guard.reviews.len(), 1);
    assert_eq!(p.guard.reviews[0].difference.kind, crate::domain::DifferenceKind::Polarity);
}

#[test]
fn a_pinned_memory_is_never_merged_superseded_or_archived() {
    let mut snapshot = router_addresses();
    snapshot.pinned.insert(Uuid::from_u128(1));
    let auto = run(&snapshot, ValueGuard::Auto);
    assert!(auto.guard.superseded.iter().all(|s| s.memory.id != Uuid::from_u128(1)), "{:?}", auto.guard.superseded);
    assert!(auto.clusters.iter().all(|c| !c.members.contains(&Uuid::from_u128(1))));
    assert_eq!(auto.guard.boundaries.pinned, 1);
    let off = run(&snapshot, ValueGuard::Off);
    assert_eq!(off.clusters.len(), 1);
    assert_eq!(off.clusters[0].members, vec![Uuid::from_u128(2), Uuid::from_u128(3)]);

    let mut stale = ProjectSnapshot::new(
        Uuid::from_u128(9),
        Some(3),
        vec![memory(7, 400, [0.0, 1.0, 0.0], "An old note."), memory(8, 400, [0.0, 0.0, 1.0], "Another old note.")],
    );
    stale.pinned.insert(Uuid::from_u128(7));
    let p = run_with(&stale, &Options { archive: true, ..Options::default() });
    let archived: Vec<Uuid> = p.archives.iter().map(|a| a.memory_id).collect();
    assert_eq!(archived, vec![Uuid::from_u128(8)], "only the unpinned stale memory is archived");
}

#[test]
fn texts_in_different_languages_are_never_merged() {
    let memories = vec![
        memory(1, 3, [1.0, 0.0, 0.0], "The connection pool runs out when a session is held across the HTTP call."),
        memory(
            2,
            2,
            [1.0, 0.01, 0.0],
            "Der Verbindungspool läuft leer, wenn eine Sitzung über den HTTP-Aufruf gehalten wird.",
        ),
    ];
    let p = run(&ProjectSnapshot::new(Uuid::from_u128(9), Some(3), memories), ValueGuard::Off);
    assert!(p.clusters.is_empty());
    assert_eq!(p.guard.boundaries.language_pairs, 1);
}
