//! How figures are written: options exactly as given, results to the precision they mean.

/// An f32 as the shortest decimal that reads back as it (0.85, not the widened
/// 0.8500000238418579), so options come back as they were given.
pub fn shortest_f32<S: serde::Serializer>(value: &f32, serializer: S) -> Result<S::Ok, S::Error> {
    let shortest = value.to_string().parse::<f64>().unwrap_or(f64::from(*value));
    serializer.serialize_f64(shortest)
}

/// A similarity, share or score to four decimals (0.4841, not 0.48407644033432007).
pub fn ratio<S: serde::Serializer, T: Copy + Into<f64>>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(to_decimals((*value).into(), 4))
}

pub fn ratio_opt<S: serde::Serializer>(value: &Option<f32>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => ratio(value, serializer),
        None => serializer.serialize_none(),
    }
}

/// Milliseconds to a tenth.
pub fn millis<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(to_decimals(*value, 1))
}

pub fn to_decimals(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let rounded = (value * scale).round() / scale;
    if rounded.is_finite() { rounded } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Figures {
        #[serde(serialize_with = "ratio")]
        share: f64,
        #[serde(serialize_with = "ratio")]
        similarity: f32,
        #[serde(serialize_with = "ratio_opt")]
        confidence: Option<f32>,
        #[serde(serialize_with = "millis")]
        total: f64,
    }

    #[test]
    fn results_carry_figures_to_the_precision_they_mean() {
        let figures = Figures { share: 152.0 / 314.0, similarity: 0.484_076_44, confidence: None, total: 133.456_78 };
        let text = serde_json::to_string(&figures).unwrap();
        assert_eq!(text, r#"{"share":0.4841,"similarity":0.4841,"confidence":null,"total":133.5}"#);
        let value = serde_json::to_value(&figures).unwrap();
        assert_eq!(value["similarity"].to_string(), "0.4841", "the same through a JSON value");
    }
}
