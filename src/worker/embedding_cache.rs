//! The embeddings a worker has read, kept between jobs: a project consolidated again reads only
//! the embeddings of memories new or edited since (each is kept with the version it was read
//! at). Bounded in bytes; when full, the least recently used project goes first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use uuid::Uuid;

use crate::store::memories::EmbeddingCache;

struct ProjectVectors {
    vectors: HashMap<Uuid, (i64, Arc<[f32]>)>,
    bytes: usize,
    used: Instant,
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
        projects.values().map(|p| p.bytes).sum()
    }
}

impl EmbeddingCache for WorkerEmbeddingCache {
    fn get(&self, project_id: Uuid, id: Uuid, version: i64) -> Option<Vec<f32>> {
        let mut projects = self.projects.lock().ok()?;
        let project = projects.get_mut(&project_id)?;
        project.used = Instant::now();
        project.vectors.get(&id).filter(|(at, _)| *at == version).map(|(_, v)| v.to_vec())
    }

    fn put(&self, project_id: Uuid, id: Uuid, version: i64, embedding: &[f32]) {
        let size = std::mem::size_of_val(embedding);
        if size > self.budget_bytes {
            return;
        }
        let Ok(mut projects) = self.projects.lock() else { return };
        while Self::total(&projects) + size > self.budget_bytes {
            let oldest =
                projects.iter().filter(|(p, _)| **p != project_id).min_by_key(|(_, v)| v.used).map(|(p, _)| *p);
            match oldest {
                Some(p) => {
                    projects.remove(&p);
                }
                // Only this project is cached and it is full: keep what it has.
                None => return,
            }
        }
        let project = projects.entry(project_id).or_insert_with(|| ProjectVectors {
            vectors: HashMap::new(),
            bytes: 0,
            used: Instant::now(),
        });
        project.used = Instant::now();
        match project.vectors.insert(id, (version, Arc::from(embedding))) {
            Some((_, old)) => project.bytes = project.bytes + size - std::mem::size_of_val(old.as_ref()),
            None => project.bytes += size,
        }
    }

    fn retain(&self, project_id: Uuid, live: &HashSet<Uuid>) {
        let Ok(mut projects) = self.projects.lock() else { return };
        if let Some(project) = projects.get_mut(&project_id) {
            project.vectors.retain(|id, _| live.contains(id));
            project.bytes = project.vectors.values().map(|(_, v)| std::mem::size_of_val(v.as_ref())).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_put_is_got_back_for_its_project_only() {
        let cache = WorkerEmbeddingCache::new(1024);
        let (p, q, id) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        cache.put(p, id, 1, &[1.0, 2.0]);
        assert_eq!(cache.get(p, id, 1), Some(vec![1.0, 2.0]));
        assert_eq!(cache.get(q, id, 1), None);
    }

    #[test]
    fn an_edited_memory_is_never_served_its_older_embedding() {
        let cache = WorkerEmbeddingCache::new(1024);
        let (p, id) = (Uuid::from_u128(1), Uuid::from_u128(3));
        cache.put(p, id, 1, &[1.0, 2.0]);
        assert_eq!(cache.get(p, id, 2), None, "re-embedded at version 2: read again");
        cache.put(p, id, 2, &[3.0, 4.0]);
        assert_eq!(cache.get(p, id, 2), Some(vec![3.0, 4.0]));
        assert_eq!(cache.get(p, id, 1), None);
        cache.put(p, Uuid::from_u128(4), 1, &[0.0; 253]);
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
        cache.put(p, kept, 1, &[1.0, 1.0]);
        cache.put(p, gone, 1, &[2.0, 2.0]);
        cache.retain(p, &[kept].into_iter().collect());
        assert_eq!(cache.get(p, gone, 1), None);
        cache.put(p, Uuid::from_u128(4), 1, &[3.0, 3.0]);
        assert_eq!(cache.get(p, Uuid::from_u128(4), 1), Some(vec![3.0, 3.0]), "room again");
        assert_eq!(cache.get(p, kept, 1), Some(vec![1.0, 1.0]));
    }

    #[test]
    fn the_least_recently_used_project_leaves_when_the_budget_is_reached() {
        let cache = WorkerEmbeddingCache::new(4 * 4);
        let (old, new) = (Uuid::from_u128(1), Uuid::from_u128(2));
        cache.put(old, Uuid::from_u128(10), 1, &[1.0, 1.0]);
        cache.put(new, Uuid::from_u128(20), 1, &[2.0, 2.0]);
        cache.put(new, Uuid::from_u128(21), 1, &[3.0, 3.0]);
        assert_eq!(cache.get(old, Uuid::from_u128(10), 1), None);
        assert_eq!(cache.get(new, Uuid::from_u128(20), 1), Some(vec![2.0, 2.0]));
        cache.put(new, Uuid::from_u128(22), 1, &[4.0, 4.0]);
        assert_eq!(cache.get(new, Uuid::from_u128(22), 1), None, "a full single project keeps what it has");
    }
}
