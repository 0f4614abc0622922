//! Embedding of created memories: the normalized centroid of the members by default, or an
//! external model behind the `Embedder` trait.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding endpoint unreachable: {0}")]
    Transport(String),
    #[error("embedding endpoint answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("invalid embedding answer: {0}")]
    InvalidAnswer(String),
    #[error("embedding has {got} dimensions, the project uses {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    /// Not sent or not waited for: the job's model budget is spent or the job was stopped.
    #[error("embedding call skipped: {0}")]
    Skipped(String),
    #[error("nothing to embed: no member embeddings")]
    NoMembers,
}

pub trait Embedder: Send + Sync {
    fn name(&self) -> &str;
    /// `member_embeddings` are the members' unit vectors; an embedder may ignore them.
    fn embed(&self, text: &str, member_embeddings: &[&[f32]]) -> Result<Vec<f32>, EmbedError>;
    /// Requests and tokens this instance spent; an offline embedder spends none.
    fn usage(&self) -> crate::domain::ModelUsage {
        crate::domain::ModelUsage::default()
    }
    /// An instance of its own for one job (see [`crate::engine::synthesis::Synthesizer::for_job`]).
    fn for_job(
        &self,
        _budget: &std::sync::Arc<crate::engine::budget::JobBudget>,
    ) -> Option<std::sync::Arc<dyn Embedder>> {
        None
    }
    /// See [`crate::engine::synthesis::Synthesizer::outside_calls`].
    fn outside_calls(&self) -> Option<usize> {
        None
    }
}

/// The normalized centroid of the members' (unit) embeddings. Deterministic and offline.
#[derive(Debug, Clone, Copy, Default)]
pub struct CentroidEmbedder;

impl Embedder for CentroidEmbedder {
    fn name(&self) -> &str {
        "centroid"
    }

    fn embed(&self, _text: &str, member_embeddings: &[&[f32]]) -> Result<Vec<f32>, EmbedError> {
        let first = member_embeddings.first().ok_or(EmbedError::NoMembers)?;
        let mut sum = vec![0.0f32; first.len()];
        for vector in member_embeddings {
            if vector.len() != sum.len() {
                return Err(EmbedError::DimensionMismatch { expected: sum.len(), got: vector.len() });
            }
            for (s, x) in sum.iter_mut().zip(vector.iter()) {
                *s += x;
            }
        }
        let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm <= f32::EPSILON {
            return Err(EmbedError::InvalidAnswer("members cancel out: zero centroid".into()));
        }
        Ok(sum.into_iter().map(|x| x / norm).collect())
    }
}

/// Checks an embedder's answer against the project's dimension.
pub fn validate_embedding(vector: &[f32], dim: usize) -> Result<(), EmbedError> {
    if vector.len() != dim {
        return Err(EmbedError::DimensionMismatch { expected: dim, got: vector.len() });
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(EmbedError::InvalidAnswer("non-finite value".into()));
    }
    if vector.iter().all(|x| *x == 0.0) {
        return Err(EmbedError::InvalidAnswer("all-zero vector".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centroid_is_the_normalized_mean() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        let c = CentroidEmbedder.embed("", &[&a, &b]).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((c[0] - h).abs() < 1e-6 && (c[1] - h).abs() < 1e-6);
    }

    #[test]
    fn centroid_refuses_no_members_and_mixed_dimensions() {
        assert_eq!(CentroidEmbedder.embed("", &[]), Err(EmbedError::NoMembers));
        let err = CentroidEmbedder.embed("", &[&[1.0, 0.0], &[1.0]]).unwrap_err();
        assert_eq!(err, EmbedError::DimensionMismatch { expected: 2, got: 1 });
    }

    #[test]
    fn validation_rejects_wrong_dimension_nan_and_zero() {
        assert!(validate_embedding(&[0.6, 0.8], 2).is_ok());
        assert!(matches!(validate_embedding(&[1.0], 2), Err(EmbedError::DimensionMismatch { .. })));
        assert!(validate_embedding(&[f32::NAN, 1.0], 2).is_err());
        assert!(validate_embedding(&[0.0, 0.0], 2).is_err());
    }
}
