//! What a worker has read of a project, kept between jobs: its rows' planning columns (a job reads
//! only the rows written since) and its embeddings as unit vectors (a job reads only those of
//! memories new or re-embedded since: each is kept with the embedding version it was read at).
//! Bounded in bytes; when full, the least recently used project goes first.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

use crate::domain::Embedding;
use crate::engine::similarity::prefilter::PREFILTER_DIM;
use crate::store::memories::EmbeddingCache;
use crate::store::resident::ResidentRows;

/// What one kept row costs beside its embedding, about (ids, times, provenance).
const ROW_BYTES: usize = 256;

/// What a kept embedding costs: its values, and the prefilter's projection it keeps once one
/// was computed (only vectors wide enough for the prefilter get one).
fn held_bytes(embedding: &Embedding) -> usize {
    let values = std::mem::size_of_val(&**embedding);
    let reduced = if embedding.len() >= 2 * PREFILTER_DIM { PREFILTER_DIM * std::mem::size_of::<f32>() } else { 0 };
    values + reduced
}

struct ProjectVectors {
    vectors: HashMap<Uuid, (i64, Embedding)>,
    bytes: usize,
    rows: Option<ResidentRows>,
    used: Instant,
}

impl ProjectVectors {
    fn new() -> Self {
        ProjectVectors { vectors: HashMap::new(), bytes: 0, rows: None, used: Instant::now() }
    }

    fn size(&self) -> usize {
        self.bytes + self.rows.as_ref().map_or(0, |rows| rows.len() * ROW_BYTES)
    }
}

pub struct WorkerEmbeddingCache {
    budget_bytes: usize,
    projects: Mutex<HashMap<Uuid, ProjectVectors>>,
}

impl WorkerEmbeddingCache {
    pub fn new(budget_bytes: usize) -> Self {
        WorkerEmbeddingCache { budget_bytes, projects: Mutex::new(HashMap::new()) }
    }

    fn total(projects: &HashMap<Uuid, ProjectVectors>) -> usize {
        projects.values().map(ProjectVectors::size).sum()
    }

    /// Evicts other projects, least recently used first, until `size` more bytes fit; false when
    /// only `project_id` is left and they still do not (it keeps what it has).
    fn make_room(&self, projects: &mut HashMap<Uuid, ProjectVectors>, project_id: Uuid, size: usize) -> bool {
        while Self::total(projects) + size > self.budget_bytes {
            let oldest =
                projects.iter().filter(|(p, _)| **p != project_id).min_by_key(|(_, v)| v.used).map(|(p, _)| *p);
            match oldest {
                Some(p) => projects.remove(&p),
                None => return false,
            };
        }
        true
    }
}

impl EmbeddingCache for WorkerEmbeddingCache {
    fn get(&self, project_id: Uuid, id: Uuid, version: i64) -> Option<Embedding> {
        let mut projects = self.projects.lock().ok()?;
        let project = projects.get_mut(&project_id)?;
        project.used = Instant::now();
        project.vectors.get(&id).filter(|(at, _)| *at == version).map(|(_, v)| v.clone())
    }

    fn put(&self, project_id: Uuid, id: Uuid, version: i64, embedding: &Embedding) {
        let size = held_bytes(embedding);
        if size > self.budget_bytes {
            return;
        }
        let Ok(mut projects) = self.projects.lock() else { return };
        if !self.make_room(&mut projects, project_id, size) {
            return;
        }
        let project = projects.entry(project_id).or_insert_with(ProjectVectors::new);
        project.used = Instant::now();
        match project.vectors.insert(id, (version, embedding.clone())) {
            Some((_, old)) => project.bytes = project.bytes + size - held_bytes(&old),
            None => project.bytes += size,
        }
    }

    fn retain(&self, project_id: Uuid, live: &HashSet<Uuid>) {
        let Ok(mut projects) = self.projects.lock() else { return };
        if let Some(project) = projects.get_mut(&project_id) {
            project.vectors.retain(|id, _| live.contains(id));
            project.bytes = project.vectors.values().map(|(_, v)| held_bytes(v)).sum();
        }
    }

    fn take_rows(&self, project_id: Uuid) -> Option<ResidentRows> {
        self.projects.lock().ok()?.get_mut(&project_id)?.rows.take()
    }

    fn keep_rows(&self, project_id: Uuid, rows: ResidentRows) {
        let Ok(mut projects) = self.projects.lock() else { return };
        if !self.make_room(&mut projects, project_id, rows.len() * ROW_BYTES) {
            return;
        }
        let project = projects.entry(project_id).or_insert_with(ProjectVectors::new);
        project.used = Instant::now();
        project.rows = Some(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(values: &[f32]) -> Embedding {
        Embedding::from(values.to_vec())
    }

    #[test]
    fn a_vector_put_is_got_back_for_its_project_only() {
        let cache = WorkerEmbeddingCache::new(1024);
        let (p, q, id) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        cache.put(p, id, 1, &e(&[1.0, 2.0]));
        assert_eq!(cache.get(p, id, 1), Some(e(&[1.0, 2.0])));
        assert_eq!(cache.get(q, id, 1), None);
    }

    #[test]
    fn an_edited_memory_is_never_served_its_older_embedding() {
        let cache = WorkerEmbeddingCache::new(1024);
        let (p, id) = (Uuid::from_u128(1), Uuid::from_u128(3));
        cache.put(p, id, 1, &e(&[1.0, 2.0]));
        assert_eq!(cache.get(p, id, 2), None, "re-embedded at version 2: read again");
        cache.put(p, id, 2, &e(&[3.0, 4.0]));
        assert_eq!(cache.get(p, id, 2), Some(e(&[3.0, 4.0])));
        assert_eq!(cache.get(p, id, 1), None);
        cache.put(p, Uuid::from_u128(4), 1, &e(&[0.0; 253]));
        assert_eq!(
            cache.get(p, Uuid::from_u128(4), 1).map(|v| v.len()),
            Some(253),
            "the replaced vector's bytes were freed"
        );
    }

    #[test]
    fn retain_forgets_what_left_the_project_and_frees_its_budget() {
        let cache = WorkerEmbeddingCache::new(4 * 4);
        let (p, kept, gone) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        cache.put(p, kept, 1, &e(&[1.0, 1.0]));
        cache.put(p, gone, 1, &e(&[2.0, 2.0]));
        cache.retain(p, &[kept].into_iter().collect());
        assert_eq!(cache.get(p, gone, 1), None);
        cache.put(p, Uuid::from_u128(4), 1, &e(&[3.0, 3.0]));
        assert_eq!(cache.get(p, Uuid::from_u128(4), 1), Some(e(&[3.0, 3.0])), "room again");
        assert_eq!(cache.get(p, kept, 1), Some(e(&[1.0, 1.0])));
    }

    #[test]
    fn the_least_recently_used_project_leaves_when_the_budget_is_reached() {
        let cache = WorkerEmbeddingCache::new(4 * 4);
        let (old, new) = (Uuid::from_u128(1), Uuid::from_u128(2));
        cache.put(old, Uuid::from_u128(10), 1, &e(&[1.0, 1.0]));
        cache.put(new, Uuid::from_u128(20), 1, &e(&[2.0, 2.0]));
        cache.put(new, Uuid::from_u128(21), 1, &e(&[3.0, 3.0]));
        assert_eq!(cache.get(old, Uuid::from_u128(10), 1), None);
        assert_eq!(cache.get(new, Uuid::from_u128(20), 1), Some(e(&[2.0, 2.0])));
        cache.put(new, Uuid::from_u128(22), 1, &e(&[4.0, 4.0]));
        assert_eq!(cache.get(new, Uuid::from_u128(22), 1), None, "a full single project keeps what it has");
    }
}
