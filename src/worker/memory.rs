//! The worker's memory budget (WORKER_MEMORY_BUDGET_MB): what a job's plan will hold, estimated
//! from its project's size before the job is claimed. A job that can never fit fails at once,
//! naming the budget and the project's size; one that cannot fit beside the jobs running waits
//! for them (another worker may take it meanwhile).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A full run holds each vector about three times: as read (shared with the cache), normalised
/// in its partition's contiguous matrix, and as its 256-d projection and similarity blocks.
const VECTOR_COPIES: u64 = 3;
/// Per memory besides its vector: ids, flags, the row's planning columns, clustering nodes.
const ROW_BYTES: u64 = 2048;
/// Texts read for the merges, the plan itself and the allocator's slack.
const BASE_MB: u64 = 32;
const MIB: u64 = 1 << 20;

/// MiB a job holds for a project of `rows` memories (active ones and the originals of merged
/// ones) of `dim` dimensions.
pub fn need_mb(rows: u64, dim: u64) -> u64 {
    (rows.saturating_mul(dim.saturating_mul(4 * VECTOR_COPIES).saturating_add(ROW_BYTES))).div_ceil(MIB) + BASE_MB
}

/// The default budget: three quarters of the machine's memory, less the embedding cache.
pub fn default_budget_mb(machine_mb: Option<u64>, cache_mb: u64) -> u64 {
    let machine = machine_mb.unwrap_or(4096);
    (machine * 3 / 4).saturating_sub(cache_mb).max(256)
}

/// Total memory of this machine in MiB, from /proc/meminfo where there is one.
pub fn machine_mb() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

pub struct MemoryGate {
    budget_mb: u64,
    free: Arc<Semaphore>,
}

pub enum Reservation {
    /// Held until the job ends.
    Granted(OwnedSemaphorePermit),
    /// More than the whole budget.
    NeverFits,
    /// Not beside the jobs running now.
    Busy,
}

impl MemoryGate {
    pub fn new(budget_mb: u64) -> Self {
        let permits = usize::try_from(budget_mb).unwrap_or(Semaphore::MAX_PERMITS).min(Semaphore::MAX_PERMITS);
        MemoryGate { budget_mb, free: Arc::new(Semaphore::new(permits)) }
    }

    pub fn budget_mb(&self) -> u64 {
        self.budget_mb
    }

    pub fn reserve(&self, need_mb: u64) -> Reservation {
        if need_mb > self.budget_mb {
            return Reservation::NeverFits;
        }
        let Ok(permits) = u32::try_from(need_mb) else { return Reservation::NeverFits };
        match self.free.clone().try_acquire_many_owned(permits) {
            Ok(permit) => Reservation::Granted(permit),
            Err(_) => Reservation::Busy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_needs_its_vectors_three_times_and_its_rows() {
        assert_eq!(need_mb(0, 1536), BASE_MB);
        // 130 000 rows of 1536 dimensions (a 100 000-memory project with its originals): the
        // full run measured 2.6 GiB peak with the cache in the same process.
        let big = need_mb(130_000, 1536);
        assert!((2_400..2_700).contains(&big), "{big}");
        assert!(need_mb(1_000_000, 384) > need_mb(100_000, 1536));
    }

    #[test]
    fn jobs_share_the_budget_and_one_larger_than_it_never_fits() {
        let gate = MemoryGate::new(100);
        let first = gate.reserve(60);
        assert!(matches!(first, Reservation::Granted(_)));
        assert!(matches!(gate.reserve(60), Reservation::Busy));
        assert!(matches!(gate.reserve(40), Reservation::Granted(_)));
        assert!(matches!(gate.reserve(101), Reservation::NeverFits));
        drop(first);
        assert!(matches!(gate.reserve(60), Reservation::Granted(_)));
    }

    #[test]
    fn the_default_leaves_a_quarter_of_the_machine_and_the_cache() {
        assert_eq!(default_budget_mb(Some(24 * 1024), 1024), 18 * 1024 - 1024);
        assert_eq!(default_budget_mb(None, 0), 3072);
        assert_eq!(default_budget_mb(Some(512), 1024), 256);
    }
}
