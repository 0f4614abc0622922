//! A job's cost report as it runs: each phase's wall-clock time from the start of loading, what
//! it read and wrote, the vectors it held and the model calls it made.

use std::time::Instant;

use crate::domain::{JobCost, ModelUsage, NewMemory, ProjectSnapshot};
use crate::store::playbook::NewEntry;

const MIB: f64 = 1024.0 * 1024.0;

pub struct CostMeter {
    started: Instant,
    phase: Instant,
    cost: JobCost,
}

impl CostMeter {
    pub fn start() -> CostMeter {
        let now = Instant::now();
        CostMeter { started: now, phase: now, cost: JobCost::default() }
    }

    fn lap(&mut self) -> f64 {
        let ms = self.phase.elapsed().as_secs_f64() * 1e3;
        self.phase = Instant::now();
        ms
    }

    /// The snapshot is loaded: `embedding_bytes` were read for it.
    pub fn loaded(&mut self, snapshot: &ProjectSnapshot, embedding_bytes: u64) {
        self.cost.loading_ms = self.lap();
        self.cost.bytes_read += embedding_bytes;
        let floats: usize = snapshot
            .memories
            .iter()
            .chain(&snapshot.originals)
            .filter_map(|m| m.embedding.as_ref())
            .map(|e| e.len())
            .sum();
        self.cost.vectors_mib = (floats * std::mem::size_of::<f32>()) as f64 / MIB;
    }

    /// A stored plan was read instead of a snapshot: `bytes` of it.
    pub fn loaded_plan(&mut self, bytes: u64) {
        self.cost.loading_ms = self.lap();
        self.cost.bytes_read += bytes;
    }

    /// Memories of the backlog without an embedding that the job embedded before loading.
    pub fn embedded(&mut self, memories: u64) {
        self.cost.memories_embedded = memories;
    }

    pub fn loading_ms(&self) -> f64 {
        self.cost.loading_ms
    }

    /// The plan is built: `text_bytes` were read for it and the models spent `usage`.
    pub fn planned(&mut self, text_bytes: u64, usage: ModelUsage) {
        self.cost.planning_ms = self.lap();
        self.cost.bytes_read += text_bytes;
        self.cost.model = usage;
    }

    /// The apply wrote `bytes` (its commit follows at once).
    pub fn applied(&mut self, bytes: u64) {
        self.cost.applying_ms = self.lap();
        self.cost.bytes_written = bytes;
    }

    /// The report for a job that considered `memories` active memories.
    pub fn report(&self, memories: i64) -> JobCost {
        let total_ms = self.started.elapsed().as_secs_f64() * 1e3;
        JobCost {
            total_ms,
            memories_per_second: if total_ms > 0.0 { memories as f64 * 1e3 / total_ms } else { 0.0 },
            peak_rss_mib: crate::telemetry::peak_rss_mib(),
            ..self.cost
        }
        .rounded()
    }
}

fn vector_bytes(embedding: Option<&Vec<f32>>) -> usize {
    embedding.map_or(0, |e| e.len() * std::mem::size_of::<f32>())
}

/// Bytes of the rows a new memory writes: its texts and its embedding.
pub fn new_memory_bytes(memory: &NewMemory) -> u64 {
    (memory.text_bytes() + vector_bytes(memory.embedding.as_ref())) as u64
}

/// Bytes a new playbook entry writes: its content and its embedding.
pub fn entry_bytes(entry: &NewEntry) -> u64 {
    (entry.content.len() + vector_bytes(entry.embedding.as_ref())) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_and_the_rate_follows_the_total() {
        let mut meter = CostMeter::start();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (snapshot, _) = crate::synthetic::generate(100, 1536, 1);
        meter.loaded(&snapshot, 4096);
        meter.planned(100, ModelUsage { calls: 2, tokens: 50, ..ModelUsage::default() });
        meter.applied(7);
        let cost = meter.report(1000);
        assert!(cost.loading_ms >= 20.0, "{cost:?}");
        assert!(cost.total_ms >= cost.loading_ms + cost.planning_ms + cost.applying_ms - 0.2, "{cost:?}");
        assert_eq!(cost.bytes_read, 4196);
        let floats: usize = snapshot.memories.iter().filter_map(|m| m.embedding.as_ref()).map(|e| e.len()).sum();
        assert!(floats >= 90 * 1536, "fixture: {floats}");
        assert!((cost.vectors_mib - (floats * 4) as f64 / MIB).abs() <= 0.05, "{cost:?}");
        assert_eq!(cost.bytes_written, 7);
        assert_eq!(cost.model, ModelUsage { calls: 2, tokens: 50, ..ModelUsage::default() });
        let expected = 1000.0 * 1e3 / cost.total_ms;
        assert!((cost.memories_per_second - expected).abs() <= 0.05 * expected + 1.0, "{cost:?}");
    }
}
