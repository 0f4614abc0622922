//! The blast-radius limit in whole plans.

use crate::domain::Options;
use crate::domain::{BlastRadius, Plan};
use crate::engine::tests::three_similar_memories;

fn planned(max_changed_share: f32) -> (Plan, BlastRadius) {
    let (_, members) = three_similar_memories();
    let mut memories = members;
    memories.push(crate::domain::Memory {
        embedding: Some(vec![0.0, 0.0, 1.0].into()),
        ..crate::domain::Memory::for_test(40, "An unrelated note about the release train.")
    });
    let snapshot = crate::domain::ProjectSnapshot::new(uuid::Uuid::from_u128(9), Some(3), memories);
    let options = Options { archive: false, max_changed_share, ..Options::default() };
    let plan = crate::engine::plan::plan(
        &snapshot,
        &options,
        &crate::engine::plan::EngineConfig::default(),
        uuid::Uuid::from_u128(1),
        crate::synthetic::anchor(),
        &crate::engine::synthesis::ExtractiveSynthesizer,
        &crate::engine::merge::embed::CentroidEmbedder,
    );
    let blast = BlastRadius::of(&plan, max_changed_share);
    (plan, blast)
}

#[test]
fn a_plan_hiding_three_of_four_memories_exceeds_the_default_limit() {
    let (plan, blast) = planned(0.6);
    assert_eq!(plan.merges.len(), 1);
    assert_eq!((blast.changed, blast.active), (3, 4));
    assert_eq!(blast.share, 0.75);
    assert!(blast.exceeded);
    assert!(blast.describe().contains("3 of 4 active memories"), "{}", blast.describe());
    assert!(blast.describe().contains("max_changed_share 0.6"), "{}", blast.describe());
}

#[test]
fn a_share_at_or_below_the_limit_passes() {
    assert!(!planned(0.75).1.exceeded, "equal to the limit");
    assert!(!planned(1.0).1.exceeded);
    assert!(planned(0.0).1.exceeded);
}
