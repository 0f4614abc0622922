//! Clustering partitions and their nodes. A plain memory is one node. An active consolidated
//! memory is the group of its original sources, locked together, so that a newcomer folds into it
//! only when it is similar to every original (the clique rule holds across jobs). The *units* are
//! what a merge marks duplicate: the active memories themselves.

use std::collections::{BTreeMap, HashMap, HashSet};

use rayon::prelude::*;
use uuid::Uuid;

use crate::domain::{Embedding, Options};
use crate::domain::{Memory, MemoryType, ProjectSnapshot};
use crate::engine::similarity::prefilter::reduced;
use crate::engine::similarity::{UnitMatrix, dot};

/// Candidates sharing a clustering partition (one memory type, or all with cross_type).
pub struct Partition<'a> {
    /// The partition's memory type; `None` with cross_type.
    pub memory_type: Option<MemoryType>,
    /// Node ids, sorted: original sources of consolidated memories and plain memories.
    pub node_ids: Vec<Uuid>,
    /// Unit-norm embeddings, one row per node.
    pub matrix: UnitMatrix,
    /// The same unit vectors as embeddings, which keep their reduced form between jobs.
    pub embeddings: Vec<Embedding>,
    /// Node index -> unit index.
    pub unit_of: Vec<u32>,
    /// Active memories, sorted by id.
    pub units: Vec<&'a Memory>,
    /// Unit index -> its node indices, sorted.
    pub nodes_of: Vec<Vec<u32>>,
    /// Node index -> whether its unit is new or changed since the base job (all true in a full run).
    pub fresh: Vec<bool>,
}

impl Partition<'_> {
    pub fn len(&self) -> usize {
        self.node_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.node_ids.is_empty()
    }

    /// The node groups of consolidated memories (more than one node), which must stay together.
    pub fn locked_groups(&self) -> Vec<Vec<u32>> {
        self.nodes_of.iter().filter(|nodes| nodes.len() > 1).cloned().collect()
    }

    pub fn unit(&self, node: usize) -> &Memory {
        self.units[self.unit_of[node] as usize]
    }

    /// The nodes' vectors reduced for the similarity prefilter (each computed once per vector).
    pub fn reduced(&self) -> UnitMatrix {
        reduced(&self.embeddings, self.matrix.dim)
    }
}

/// One node before sorting: its id, its unit and its embedding (normalized on the way into the
/// partition's matrix unless it is a unit vector already, which is shared, not copied).
type PendingNode<'a> = (Uuid, &'a Memory, &'a Embedding);

/// Builds the partitions of a snapshot. Synthesis memories never cluster (they summarize
/// clusters whose sources are already duplicates). A consolidated memory whose sources differ in
/// type clusters only with cross_type.
pub fn partitions<'a>(
    snapshot: &'a ProjectSnapshot,
    options: &Options,
    warnings: &mut Vec<String>,
) -> Vec<Partition<'a>> {
    let Some(dim) = snapshot.embedding_dim else {
        if !snapshot.memories.is_empty() {
            warnings.push("project has no embedding dimension: nothing clustered".into());
        }
        return Vec::new();
    };
    let originals: HashMap<Uuid, &Memory> = snapshot.originals.iter().map(|o| (o.id, o)).collect();
    let mut groups: BTreeMap<Option<MemoryType>, Vec<PendingNode<'a>>> = BTreeMap::new();
    let mut skipped = 0usize;
    for memory in &snapshot.memories {
        if memory.memory_type == MemoryType::Synthesis {
            continue;
        }
        let key = if options.cross_type {
            None
        } else {
            match memory.clustering_type() {
                Some(t) => Some(t),
                None => continue,
            }
        };
        let nodes = nodes_of(memory, &originals, dim);
        if nodes.is_empty() {
            skipped += 1;
            continue;
        }
        groups.entry(key).or_default().extend(nodes.into_iter().map(|(id, embedding)| (id, memory, embedding)));
    }
    if skipped > 0 {
        warnings.push(format!("{skipped} memories have no usable embedding of dimension {dim} and were not clustered"));
    }
    groups.into_iter().map(|(key, rows)| build(key, rows, dim, snapshot)).collect()
}

/// An embedding `UnitMatrix::normalize` accepts (right length, finite, not zero).
fn usable(embedding: Option<&Embedding>, dim: usize) -> Option<&Embedding> {
    let e = embedding.filter(|e| e.len() == dim)?;
    (e.is_unit() || (e.iter().all(|x| x.is_finite()) && dot(e, e).sqrt() > f32::EPSILON)).then_some(e)
}

/// The plain memories at the bottom of a consolidated memory's provenance, each once, in order.
/// (Before source types existed, consolidated memories could be merged into one another.)
pub fn leaf_originals(memory: &Memory, originals: &HashMap<Uuid, &Memory>) -> Vec<Uuid> {
    let mut leaves = Vec::new();
    let mut seen = HashSet::new();
    let mut pending: Vec<Uuid> = memory.consolidated_from.iter().rev().copied().collect();
    while let Some(id) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        match originals.get(&id) {
            Some(o) if o.memory_type == MemoryType::Consolidated => pending.extend(o.consolidated_from.iter().rev()),
            _ => leaves.push(id),
        }
    }
    leaves
}

/// A plain memory is its own node; a consolidated memory's nodes are its originals with a
/// usable embedding, or itself when none has one.
fn nodes_of<'a>(memory: &'a Memory, originals: &HashMap<Uuid, &'a Memory>, dim: usize) -> Vec<(Uuid, &'a Embedding)> {
    let own = || usable(memory.embedding.as_ref(), dim).map(|e| (memory.id, e));
    if memory.memory_type != MemoryType::Consolidated {
        return own().into_iter().collect();
    }
    let from_originals: Vec<(Uuid, &Embedding)> = leaf_originals(memory, originals)
        .iter()
        .filter_map(|id| originals.get(id))
        .filter_map(|o| usable(o.embedding.as_ref(), dim).map(|e| (o.id, e)))
        .collect();
    if from_originals.is_empty() { own().into_iter().collect() } else { from_originals }
}

fn build<'a>(
    key: Option<MemoryType>,
    mut rows: Vec<PendingNode<'a>>,
    dim: usize,
    snapshot: &ProjectSnapshot,
) -> Partition<'a> {
    rows.sort_by_key(|(id, unit, _)| (*id, unit.id));
    // An original listed by two consolidated memories (only after manual repairs) counts once.
    rows.dedup_by_key(|(id, _, _)| *id);
    let mut units: Vec<&Memory> = rows.iter().map(|(_, unit, _)| *unit).collect();
    units.sort_by_key(|m| m.id);
    units.dedup_by_key(|m| m.id);
    let unit_index: HashMap<Uuid, u32> = units.iter().enumerate().map(|(i, m)| (m.id, i as u32)).collect();
    let unit_of: Vec<u32> = rows.iter().map(|(_, unit, _)| unit_index[&unit.id]).collect();
    let mut nodes_of = vec![Vec::new(); units.len()];
    for (node, &unit) in unit_of.iter().enumerate() {
        nodes_of[unit as usize].push(node as u32);
    }
    let fresh = unit_of
        .iter()
        .map(|&u| snapshot.scope.fresh.as_ref().is_none_or(|fresh| fresh.contains(&units[u as usize].id)))
        .collect();
    // Each embedding was checked usable when its node was listed.
    let embeddings: Vec<Embedding> = rows
        .par_iter()
        .map(|&(_, _, e)| if e.is_unit() { e.clone() } else { Embedding::normalized(e).unwrap_or_else(|| e.clone()) })
        .collect();
    // An incremental run scans the rows block by block against a few new ones: shared rows save
    // copying the store. A full run multiplies every block with every other: one copy first.
    let matrix = if snapshot.scope.fresh.is_some() {
        UnitMatrix::from_shared(embeddings.iter().map(Embedding::shared).collect(), dim)
    } else {
        UnitMatrix::from_rows(embeddings.iter().map(|e| &**e), dim)
    };
    Partition {
        memory_type: key,
        node_ids: rows.into_iter().map(|(id, _, _)| id).collect(),
        matrix,
        embeddings,
        unit_of,
        units,
        nodes_of,
        fresh,
    }
}
