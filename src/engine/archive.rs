//! Staleness archiving (DESIGN.md §5).
//!
//! A memory is archived with reason `staleness` when `reused_count < archive_min_reuse` and its
//! last reuse (or, if never reused, its `learned_at`) is more than `archive_stale_days` days
//! before `now`. Exempt: `consolidated` and `synthesis` memories (they are the distilled result
//! that playbook entries cite as support; archiving them would orphan those references) and any
//! memory that is a source of a merge or synthesis in the same plan.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::Options;
use crate::domain::{Memory, MemoryType};

pub fn is_stale(memory: &Memory, options: &Options, now: DateTime<Utc>) -> bool {
    if matches!(memory.memory_type, MemoryType::Consolidated | MemoryType::Synthesis) {
        return false;
    }
    let last_touch = memory.last_reused_at.unwrap_or(memory.learned_at);
    memory.reused_count < options.archive_min_reuse
        && last_touch < now - Duration::days(i64::from(options.archive_stale_days))
}

/// Memories to archive, sorted by id.
pub fn stale_memories<'a>(
    memories: &'a [Memory],
    in_plan: &HashSet<Uuid>,
    options: &Options,
    now: DateTime<Utc>,
) -> Vec<&'a Memory> {
    let mut out: Vec<&Memory> =
        memories.iter().filter(|m| !in_plan.contains(&m.id) && is_stale(m, options, now)).collect();
    out.sort_by_key(|m| m.id);
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn memory(days_old: i64, reused: i32, last_reuse_days: Option<i64>, now: DateTime<Utc>) -> Memory {
        Memory {
            id: Uuid::new_v4(),
            memory_type: MemoryType::Learning,
            reused_count: reused,
            last_reused_at: last_reuse_days.map(|d| now - Duration::days(d)),
            learned_at: now - Duration::days(days_old),
            ..Memory::for_test(0, "x")
        }
    }

    #[test]
    fn stale_needs_both_low_reuse_and_age() {
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        let o = Options::default();
        assert!(is_stale(&memory(120, 2, None, now), &o, now));
        assert!(!is_stale(&memory(120, 3, None, now), &o, now), "reuse at the minimum keeps it");
        assert!(!is_stale(&memory(60, 0, None, now), &o, now), "young memories stay");
        assert!(!is_stale(&memory(200, 1, Some(10), now), &o, now), "a recent reuse counts");
        assert!(is_stale(&memory(200, 1, Some(100), now), &o, now));
        assert!(!is_stale(&memory(90, 0, None, now), &o, now), "exactly the limit is not older");
    }

    #[test]
    fn consolidated_synthesis_and_planned_sources_are_exempt() {
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        let o = Options::default();
        let mut consolidated = memory(300, 0, None, now);
        consolidated.memory_type = MemoryType::Consolidated;
        let source = memory(300, 0, None, now);
        let plain = memory(300, 0, None, now);
        let all = vec![consolidated, source.clone(), plain.clone()];
        let in_plan: HashSet<Uuid> = [source.id].into();
        let stale = stale_memories(&all, &in_plan, &o, now);
        assert_eq!(stale.iter().map(|m| m.id).collect::<Vec<_>>(), vec![plain.id]);
    }

    #[test]
    fn min_reuse_zero_archives_nothing() {
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        let o = Options { archive_min_reuse: 0, ..Options::default() };
        assert!(!is_stale(&memory(999, 0, None, now), &o, now));
    }
}
