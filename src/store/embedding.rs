//! Embeddings travel as little-endian f32 in `bytea`: an order of magnitude cheaper to read
//! than `real[]`, whose every element carries its own header on the wire.

use super::{Result, StoreError};

pub fn encode(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|value| value.to_le_bytes()).collect()
}

pub fn decode(bytes: &[u8]) -> Result<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return Err(StoreError::Corrupt(format!("embedding of {} bytes is not a whole number of f32", bytes.len())));
    }
    Ok(bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let values = [0.0, -1.5, f32::MIN_POSITIVE, 3.25e7];
        assert_eq!(decode(&encode(&values)).unwrap(), values);
    }

    #[test]
    fn rejects_a_truncated_value() {
        assert!(decode(&[0, 0, 0]).is_err());
    }
}
