//! The blast-radius limit (DESIGN.md §11): a plan that would hide more than `max_changed_share`
//! of the active memories (marked duplicate or archived) is not applied. One consolidation pass
//! elsewhere hid 745 of 931 memories in two days; this is the brake.

use serde::Serialize;

use super::output::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlastRadius {
    /// Active memories before the plan.
    pub active: i64,
    /// Active memories the plan marks duplicate (merge sources, replaced syntheses) or archives.
    pub changed: i64,
    pub share: f64,
    #[serde(serialize_with = "super::options::shortest_f32")]
    pub limit: f32,
    pub exceeded: bool,
}

impl BlastRadius {
    pub fn of(plan: &Plan, max_changed_share: f32) -> BlastRadius {
        let duplicates: usize = plan.merges.iter().map(|m| m.sources.len()).sum::<usize>()
            + plan.syntheses.iter().map(|s| s.supersedes.len()).sum::<usize>();
        let changed = (duplicates + plan.archives.len()) as i64;
        let active = plan.memories_before;
        let share = if active > 0 { changed as f64 / active as f64 } else { 0.0 };
        // Compared at the option's own precision, so a share equal to the limit passes.
        BlastRadius { active, changed, share, limit: max_changed_share, exceeded: (share as f32) > max_changed_share }
    }

    /// The job's error when the limit stops it.
    pub fn describe(&self) -> String {
        format!(
            "blast radius: the plan would mark {} of {} active memories duplicate or archived (share {:.3}), \
             above max_changed_share {}; nothing was applied, the plan is in the job result",
            self.changed, self.active, self.share, self.limit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::options::Options;
    use crate::engine::tests::three_similar_memories;

    fn planned(max_changed_share: f32) -> (Plan, BlastRadius) {
        let (_, members) = three_similar_memories();
        let mut memories = members;
        memories.push(crate::engine::model::MemorySnapshot {
            embedding: Some(vec![0.0, 0.0, 1.0]),
            ..crate::engine::model::MemorySnapshot::for_test(40, "An unrelated note about the release train.")
        });
        let snapshot = crate::engine::model::ProjectSnapshot::new(uuid::Uuid::from_u128(9), Some(3), memories);
        let options = Options { archive: false, max_changed_share, ..Options::default() };
        let plan = crate::engine::plan::plan(
            &snapshot,
            &options,
            &crate::engine::plan::EngineConfig::default(),
            uuid::Uuid::from_u128(1),
            crate::bench::synthetic::anchor(),
            &crate::engine::synthesis::ExtractiveSynthesizer,
            &crate::engine::embed::CentroidEmbedder,
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
}
