//! An embedding as the planner holds it: shared, never copied between the worker's cache, the
//! snapshot and the partitions, and marked when it is already a finite unit vector so nothing
//! normalises it again. It carries a slot for the reduced form the engine's similarity prefilter
//! computes from it, shared by its clones: computed once per vector, kept while the worker's cache
//! keeps the vector.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone)]
pub struct Embedding {
    values: Arc<[f32]>,
    unit: bool,
    reduced: Arc<OnceLock<Arc<[f32]>>>,
}

impl Embedding {
    /// The vector scaled to norm 1, or `None` when it has a non-finite value or zero norm.
    pub fn normalized(values: &[f32]) -> Option<Embedding> {
        if values.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm <= f32::EPSILON || !norm.is_finite() {
            return None;
        }
        Some(Embedding { values: values.iter().map(|x| x / norm).collect(), unit: true, reduced: Arc::default() })
    }

    /// The unit vector of `values` when it has one, else `values` as they are (the planner then
    /// leaves the memory out and says so).
    pub fn normalized_or_raw(values: Vec<f32>) -> Embedding {
        Embedding::normalized(&values).unwrap_or_else(|| Embedding::from(values))
    }

    /// Finite with norm 1 (within rounding): usable as a row of a similarity matrix as it is.
    pub fn is_unit(&self) -> bool {
        self.unit
    }

    /// The values, shared.
    pub fn shared(&self) -> Arc<[f32]> {
        Arc::clone(&self.values)
    }

    /// The reduced form, once some clone of this embedding was given one.
    pub fn reduced(&self) -> Option<Arc<[f32]>> {
        self.reduced.get().cloned()
    }

    /// Keeps `reduced` for every clone of this embedding; the first one given stays.
    pub fn set_reduced(&self, reduced: Arc<[f32]>) {
        let _first_stays = self.reduced.set(reduced);
    }
}

impl From<Vec<f32>> for Embedding {
    fn from(values: Vec<f32>) -> Self {
        Embedding { values: values.into(), unit: false, reduced: Arc::default() }
    }
}

impl Deref for Embedding {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.values
    }
}

/// Equal values are equal embeddings, whether or not one is known to be a unit vector.
impl PartialEq for Embedding {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Serialize for Embedding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.values.as_ref().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Embedding {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<f32>::deserialize(deserializer).map(Embedding::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing_gives_a_unit_vector_and_refuses_what_has_none() {
        let unit = Embedding::normalized(&[3.0, 4.0]).unwrap();
        assert!(unit.is_unit());
        assert_eq!(&*unit, &[0.6, 0.8]);
        assert!(Embedding::normalized(&[0.0, 0.0]).is_none());
        assert!(Embedding::normalized(&[f32::NAN, 1.0]).is_none());
        let raw = Embedding::normalized_or_raw(vec![0.0, 0.0]);
        assert!(!raw.is_unit());
        assert_eq!(&*raw, &[0.0, 0.0]);
    }

    #[test]
    fn clones_share_their_values_and_serialize_as_a_plain_list() {
        let a = Embedding::from(vec![1.0, 2.0]);
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.shared(), &b.shared()));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "[1.0,2.0]");
        assert_eq!(serde_json::from_str::<Embedding>(&json).unwrap(), a);
    }

    #[test]
    fn a_reduced_form_given_to_one_clone_is_seen_by_all() {
        let a = Embedding::normalized(&[1.0, 1.0]).unwrap();
        let b = a.clone();
        assert!(b.reduced().is_none());
        a.set_reduced(vec![1.0].into());
        b.set_reduced(vec![2.0].into());
        assert_eq!(b.reduced().as_deref(), Some([1.0f32].as_slice()), "the first one stays");
        assert!(Embedding::normalized(&[1.0, 1.0]).unwrap().reduced().is_none(), "not shared by equal values");
    }
}
