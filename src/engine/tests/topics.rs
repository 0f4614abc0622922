//! Topics (DESIGN.md §5 summarize): a synthesis spans related memories that are not duplicates,
//! never chains, lists distinct facts, and is rebuilt or archived when its topic changes.

use uuid::Uuid;

use super::{memory, run, snapshot, three_related_memories};
use crate::domain::{ArchiveReason, ChangeOperation, Memory, MemoryType, Options, ProjectSnapshot};
use crate::synthetic::in_memory::apply;

fn no_archive() -> Options {
    Options { archive: false, ..Options::default() }
}

/// A unit vector at similarity `cos` to the first axis, leaning towards axis `axis`.
fn leaning(cos: f32, axis: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[0] = cos;
    v[axis] = (1.0 - cos * cos).sqrt();
    v
}

#[test]
fn related_memories_make_one_topic_whose_synthesis_names_its_members() {
    let members = three_related_memories();
    let p = run(&snapshot(members.clone(), 4), &no_archive());
    assert!(p.merges.is_empty(), "related, not duplicates");
    assert_eq!(p.syntheses.len(), 1, "{:?}", p.warnings);
    let s = &p.syntheses[0];
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    assert_eq!(s.memory.synthesized_from, ids);
    assert_eq!(s.sources.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(s.facts.len() >= 3, "{:?}", s.facts);
    let text = &s.memory.execution_summary;
    assert!(text.contains("Fixes:\n- ") && text.contains("Gotchas:\n- ") && text.contains("Decisions:\n- "), "{text}");
    let row = p.changes.iter().find(|c| c.operation == ChangeOperation::Summarize).unwrap();
    assert_eq!(row.new_state["topic_id"], serde_json::json!(s.topic_id));
    assert_eq!(row.new_state["synthesized_from"], serde_json::json!(ids));
}

#[test]
fn a_topic_holds_a_merged_memory_and_the_single_memory_related_to_it() {
    let (_, mut members) = super::three_similar_memories();
    for m in &mut members {
        m.embedding = Some(leaning(0.999, 1, 4).into());
    }
    members.push(memory(
        8,
        MemoryType::Warning,
        leaning(0.86, 2, 4),
        "Beware: the checkout retry is not idempotent and can charge twice.",
    ));
    let p = run(&snapshot(members, 4), &no_archive());
    assert_eq!(p.merges.len(), 1);
    assert_eq!(p.syntheses.len(), 1, "{:?}", p.warnings);
    let from = &p.syntheses[0].memory.synthesized_from;
    assert!(from.contains(&p.merges[0].memory.id) && from.contains(&Uuid::from_u128(8)), "{from:?}");
    assert_eq!(from.len(), 2, "the merged memory is one member");
    assert!(p.promotions.iter().any(|x| x.memory_id == p.merges[0].memory.id));
    assert!(
        p.promotions.iter().all(|x| x.memory_id != p.syntheses[0].memory.id),
        "the merged member's entry says it first"
    );
}

#[test]
fn a_topic_does_not_chain_and_a_shared_file_widens_the_band() {
    let texts = [
        "The upload worker stalls on large files. Split uploads into 8 MB parts.",
        "The upload worker retries forever on 403. Refresh the signed URL before retrying.",
        "Signed URLs expire after 15 minutes. Request them just before the upload starts.",
    ];
    // a~b and b~c at 0.86, a~c at 0.50: a topic of all three would chain; a pair is below the
    // three memories a synthesis stands for.
    let chain = [vec![1.0, 0.0, 0.0, 0.0], leaning(0.86, 1, 4), vec![0.5, 0.8426, 0.2, 0.0]];
    let ms: Vec<Memory> = chain
        .into_iter()
        .zip(texts)
        .enumerate()
        .map(|(i, (v, t))| memory(20 + i as u128, MemoryType::Learning, v, t))
        .collect();
    assert!(run(&snapshot(ms, 4), &no_archive()).syntheses.is_empty(), "no chain");

    // 31~32 at 0.66, below the band (0.70 at 0.92) unless they share a file; 33 is at 0.85 to both.
    let three = |file: &str| -> Vec<Memory> {
        let first = memory(31, MemoryType::Learning, vec![1.0, 0.0, 0.0, 0.0], texts[0]);
        let second = memory(32, MemoryType::Learning, vec![0.66, 0.7513, 0.0, 0.0], texts[1]);
        vec![
            Memory { files: vec![file.into()], ..first },
            Memory { files: vec!["src/upload.rs".into()], ..second },
            memory(33, MemoryType::Learning, vec![0.85, 0.3847, 0.3599, 0.0], texts[2]),
        ]
    };
    let apart = run(&snapshot(three("src/download.rs"), 4), &no_archive());
    let shared = run(&snapshot(three("src/upload.rs"), 4), &no_archive());
    assert!(apart.syntheses.is_empty(), "{:?}", apart.syntheses);
    assert_eq!(shared.syntheses.len(), 1, "{:?}", shared.warnings);
    assert_eq!(shared.syntheses[0].memory.synthesized_from.len(), 3);
    assert!(shared.syntheses[0].confidence < 1.0, "held by a shared file, not closeness");
}

fn applied(members: Vec<Memory>) -> (ProjectSnapshot, Uuid) {
    let mut state = snapshot(members, 4);
    let first = run(&state, &no_archive());
    assert_eq!(first.syntheses.len(), 1);
    apply(&mut state, &first);
    (state, first.syntheses[0].memory.id)
}

#[test]
fn an_unchanged_topic_is_not_synthesized_again_and_an_edited_member_rebuilds_it() {
    let (mut state, old) = applied(three_related_memories());
    assert!(run(&state, &no_archive()).syntheses.is_empty(), "nothing changed");

    state.outdated_syntheses.insert(old);
    let p = run(&state, &no_archive());
    assert_eq!(p.syntheses.len(), 1);
    assert_eq!(p.syntheses[0].supersedes.iter().map(|r| r.id).collect::<Vec<_>>(), vec![old]);
    assert!(p.archives.is_empty());
}

#[test]
fn a_synthesis_whose_topic_is_gone_is_archived_as_outdated_unless_pinned() {
    let (mut state, old) = applied(three_related_memories());
    // A member without an embedding is outside every partition, not gone.
    let mut unembedded = state.clone();
    unembedded.memories.iter_mut().filter(|m| m.id == Uuid::from_u128(13)).for_each(|m| m.embedding = None);
    assert!(run(&unembedded, &no_archive()).archives.is_empty());
    // Two members leave (archived elsewhere): what remains is no topic.
    state.memories.retain(|m| m.id != Uuid::from_u128(12) && m.id != Uuid::from_u128(13));
    let p = run(&state, &no_archive());
    assert!(p.syntheses.is_empty());
    assert_eq!(p.archives.len(), 1);
    assert_eq!((p.archives[0].memory_id, p.archives[0].reason), (old, ArchiveReason::Outdated));
    let row = p.changes.iter().find(|c| c.memory_id == old).unwrap();
    assert!(row.reason.contains("outdated"), "{}", row.reason);

    state.pinned.insert(old);
    assert!(run(&state, &no_archive()).archives.is_empty(), "a pinned synthesis stays");
}

#[test]
fn a_member_merged_away_rebuilds_the_topic_around_the_merged_memory() {
    let mut members = three_related_memories();
    let (mut state, old) = applied(members.clone());
    // A re-learned copy of the decision folds into it: the topic now names the merged memory.
    let copy = Memory { id: Uuid::from_u128(14), task_id: Some("t-14".into()), ..members.remove(2) };
    state.memories.push(copy);
    let p = run(&state, &no_archive());
    assert_eq!(p.merges.len(), 1);
    assert_eq!(p.syntheses.len(), 1, "{:?}", p.warnings);
    assert_eq!(p.syntheses[0].supersedes.iter().map(|r| r.id).collect::<Vec<_>>(), vec![old]);
    assert!(p.syntheses[0].memory.synthesized_from.contains(&p.merges[0].memory.id));
}
