//! Consolidation options of DESIGN.md §5: built-in defaults, project defaults and per-request
//! overrides, validated field by field so a caller learns exactly which value is wrong.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub merge: bool,
    pub summarize: bool,
    pub archive: bool,
    pub promote: bool,
    #[serde(serialize_with = "shortest_f32")]
    pub similarity_threshold: f32,
    pub min_cluster_size: usize,
    pub cross_type: bool,
    pub archive_stale_days: u32,
    pub archive_min_reuse: i32,
    #[serde(serialize_with = "shortest_f32")]
    pub promote_confidence_threshold: f32,
    pub dry_run: bool,
    pub mode: Mode,
    /// The largest share of active memories one job may mark duplicate or archive (§11).
    #[serde(serialize_with = "shortest_f32")]
    pub max_changed_share: f32,
    /// What happens to near-identical memories that differ in a value (§11).
    pub value_guard: ValueGuard,
}

/// The value guard's action on two near-identical memories that differ in a value (DESIGN.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueGuard {
    /// Never merged; the pair goes to the review queue as a possible update.
    Review,
    /// Never merged; the older memory is superseded by the newer one (archived, reversible).
    Auto,
    /// No guard: the pair merges like any other.
    Off,
}

impl ValueGuard {
    pub const ALL: [ValueGuard; 3] = [ValueGuard::Review, ValueGuard::Auto, ValueGuard::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            ValueGuard::Review => "review",
            ValueGuard::Auto => "auto",
            ValueGuard::Off => "off",
        }
    }
}

/// Which memories a job compares (DESIGN.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Incremental when the last completed job used the same clustering options, else full.
    Auto,
    /// Incremental when a base job exists at all (full otherwise, with the reason recorded).
    Incremental,
    /// Every pair, every time.
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Incremental => "incremental",
            Mode::Full => "full",
        }
    }
}

/// The options a clustering result depends on: an incremental run needs its base job to have
/// clustered with the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusteringOptions {
    #[serde(serialize_with = "shortest_f32")]
    pub similarity_threshold: f32,
    pub min_cluster_size: usize,
    pub cross_type: bool,
}

/// Writes an f32 as the shortest decimal that reads back as it (0.85, not the widened
/// 0.8500000238418579), so options come back as they were given.
pub fn shortest_f32<S: serde::Serializer>(value: &f32, serializer: S) -> Result<S::Ok, S::Error> {
    let shortest = value.to_string().parse::<f64>().unwrap_or(f64::from(*value));
    serializer.serialize_f64(shortest)
}

impl Options {
    pub fn clustering(&self) -> ClusteringOptions {
        ClusteringOptions {
            similarity_threshold: self.similarity_threshold,
            min_cluster_size: self.min_cluster_size,
            cross_type: self.cross_type,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            merge: true,
            summarize: true,
            archive: true,
            promote: true,
            similarity_threshold: 0.90,
            min_cluster_size: 2,
            cross_type: false,
            archive_stale_days: 90,
            archive_min_reuse: 3,
            promote_confidence_threshold: 0.85,
            dry_run: false,
            mode: Mode::Auto,
            max_changed_share: 0.6,
            value_guard: ValueGuard::Review,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OptionsError {
    pub field: String,
    pub message: String,
}

impl OptionsError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        OptionsError { field: field.to_owned(), message: message.into() }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Float { min: f64, max: f64 },
    Integer { min: i64, max: i64 },
    Choice(&'static [&'static str]),
}

/// Every option with its JSON kind and allowed range (DESIGN.md §5).
const FIELDS: [(&str, Kind); 14] = [
    ("merge", Kind::Bool),
    ("summarize", Kind::Bool),
    ("archive", Kind::Bool),
    ("promote", Kind::Bool),
    ("similarity_threshold", Kind::Float { min: 0.50, max: 0.99 }),
    ("min_cluster_size", Kind::Integer { min: 2, max: 50 }),
    ("cross_type", Kind::Bool),
    ("archive_stale_days", Kind::Integer { min: 1, max: 3650 }),
    ("archive_min_reuse", Kind::Integer { min: 0, max: 1000 }),
    ("promote_confidence_threshold", Kind::Float { min: 0.50, max: 1.0 }),
    ("dry_run", Kind::Bool),
    ("mode", Kind::Choice(&["auto", "incremental", "full"])),
    ("max_changed_share", Kind::Float { min: 0.0, max: 1.0 }),
    ("value_guard", Kind::Choice(&["review", "auto", "off"])),
];

fn check_value(field: &str, kind: Kind, value: &Value) -> Result<(), OptionsError> {
    match kind {
        Kind::Bool => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| OptionsError::new(field, format!("must be a boolean, got {value}"))),
        Kind::Float { min, max } => {
            let x = value.as_f64().ok_or_else(|| OptionsError::new(field, format!("must be a number, got {value}")))?;
            check_range(field, x, min, max)
        }
        Kind::Integer { min, max } => {
            let x =
                value.as_i64().ok_or_else(|| OptionsError::new(field, format!("must be an integer, got {value}")))?;
            if x < min || x > max {
                return Err(OptionsError::new(field, format!("must be between {min} and {max}, got {x}")));
            }
            Ok(())
        }
        Kind::Choice(allowed) => match value.as_str() {
            Some(text) if allowed.contains(&text) => Ok(()),
            _ => Err(OptionsError::new(field, format!("must be one of {}, got {value}", allowed.join(", ")))),
        },
    }
}

fn check_range(field: &str, x: f64, min: f64, max: f64) -> Result<(), OptionsError> {
    // Compared in f32 because that is the precision the option is stored and used in.
    let (x32, min32, max32) = (x as f32, min as f32, max as f32);
    if !x32.is_finite() || x32 < min32 || x32 > max32 {
        return Err(OptionsError::new(field, format!("must be between {min} and {max}, got {x}")));
    }
    Ok(())
}

fn overlay(target: &mut Map<String, Value>, layer: &Value, layer_name: &str) -> Result<(), OptionsError> {
    let object = match layer {
        Value::Null => return Ok(()),
        Value::Object(object) => object,
        other => {
            return Err(OptionsError::new(layer_name, format!("must be a JSON object, got {other}")));
        }
    };
    for (field, value) in object {
        let Some((_, kind)) = FIELDS.iter().find(|(name, _)| name == field) else {
            return Err(OptionsError::new(field, "unknown option"));
        };
        if value.is_null() {
            continue;
        }
        check_value(field, *kind, value)?;
        target.insert(field.clone(), value.clone());
    }
    Ok(())
}

impl Options {
    /// Request fields override project defaults, which override the built-in defaults. Both
    /// inputs are JSON objects or null; a null field means "not given". An unknown field, a wrong
    /// JSON type or an out-of-range value yields an `OptionsError` naming the field.
    pub fn resolve(project_defaults: &Value, request: &Value) -> Result<Options, OptionsError> {
        let mut merged = match serde_json::to_value(Options::default()) {
            Ok(Value::Object(map)) => map,
            _ => return Err(OptionsError::new("options", "defaults are not an object")),
        };
        overlay(&mut merged, project_defaults, "project_defaults")?;
        overlay(&mut merged, request, "options")?;
        let options: Options =
            serde_json::from_value(Value::Object(merged)).map_err(|e| OptionsError::new("options", e.to_string()))?;
        options.validate()?;
        Ok(options)
    }

    pub fn validate(&self) -> Result<(), OptionsError> {
        let value = serde_json::to_value(self).map_err(|e| OptionsError::new("options", e.to_string()))?;
        for (field, kind) in FIELDS {
            let field_value = value.get(field).unwrap_or(&Value::Null);
            match (kind, field_value.as_f64()) {
                // Floats are checked on the struct's own f32, the precision they are used in.
                (Kind::Float { min, max }, _) => {
                    let x = match field {
                        "similarity_threshold" => self.similarity_threshold,
                        "max_changed_share" => self.max_changed_share,
                        _ => self.promote_confidence_threshold,
                    };
                    check_range(field, f64::from(x), min, max)?;
                }
                _ => check_value(field, kind, field_value)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn floats_serialize_as_given_and_read_back_to_the_same_f32() {
        let options =
            Options::resolve(&json!({"similarity_threshold": 0.87}), &json!({"max_changed_share": 0.7})).unwrap();
        let value = serde_json::to_value(&options).unwrap();
        assert_eq!(value["similarity_threshold"], json!(0.87));
        assert_eq!(value["promote_confidence_threshold"], json!(0.85));
        assert_eq!(value["max_changed_share"], json!(0.7));
        let blast =
            crate::engine::blast::BlastRadius { active: 10, changed: 1, share: 0.1, limit: 0.6, exceeded: false };
        assert_eq!(serde_json::to_value(blast).unwrap()["limit"], json!(0.6));
        assert_eq!(serde_json::to_value(options.clustering()).unwrap()["similarity_threshold"], json!(0.87));
        let back: Options = serde_json::from_value(value).unwrap();
        assert_eq!(back, options);
    }

    #[test]
    fn resolve_without_inputs_gives_the_documented_defaults() {
        let options = Options::resolve(&Value::Null, &json!({})).unwrap();
        assert_eq!(options, Options::default());
        assert_eq!(options.similarity_threshold, 0.90);
        assert_eq!(options.min_cluster_size, 2);
        assert_eq!(options.archive_stale_days, 90);
        assert_eq!(options.archive_min_reuse, 3);
        assert_eq!(options.promote_confidence_threshold, 0.85);
        assert!(options.merge && options.summarize && options.archive && options.promote);
        assert!(!options.cross_type && !options.dry_run);
    }

    #[test]
    fn request_overrides_project_defaults_which_override_built_ins() {
        let project = json!({"similarity_threshold": 0.8, "min_cluster_size": 4, "dry_run": true});
        let request = json!({"similarity_threshold": 0.95, "archive": false});
        let options = Options::resolve(&project, &request).unwrap();
        assert_eq!(options.similarity_threshold, 0.95);
        assert_eq!(options.min_cluster_size, 4);
        assert!(options.dry_run);
        assert!(!options.archive);
        assert!(options.merge);
    }

    #[test]
    fn the_range_bounds_themselves_are_accepted() {
        let low = json!({"similarity_threshold": 0.5, "min_cluster_size": 2, "archive_stale_days": 1,
            "archive_min_reuse": 0, "promote_confidence_threshold": 0.5});
        let high = json!({"similarity_threshold": 0.99, "min_cluster_size": 50, "archive_stale_days": 3650,
            "archive_min_reuse": 1000, "promote_confidence_threshold": 1.0});
        assert!(Options::resolve(&Value::Null, &low).is_ok());
        assert!(Options::resolve(&Value::Null, &high).is_ok());
    }

    #[test]
    fn each_out_of_range_value_is_rejected_with_its_field_name() {
        let cases = [
            ("similarity_threshold", json!(0.995)),
            ("similarity_threshold", json!(0.49)),
            ("min_cluster_size", json!(1)),
            ("min_cluster_size", json!(51)),
            ("archive_stale_days", json!(0)),
            ("archive_stale_days", json!(3651)),
            ("archive_min_reuse", json!(-1)),
            ("archive_min_reuse", json!(1001)),
            ("promote_confidence_threshold", json!(1.01)),
            ("promote_confidence_threshold", json!(0.4)),
        ];
        for (field, value) in cases {
            let err = Options::resolve(&Value::Null, &json!({ field: value })).unwrap_err();
            assert_eq!(err.field, field, "{value}");
            assert!(err.message.contains("must be between"), "{err}");
        }
    }

    #[test]
    fn wrong_json_types_are_rejected_with_their_field_name() {
        let cases = [
            ("merge", json!("yes")),
            ("similarity_threshold", json!("0.9")),
            ("min_cluster_size", json!(2.5)),
            ("archive_stale_days", json!(true)),
        ];
        for (field, value) in cases {
            let err = Options::resolve(&Value::Null, &json!({ field: value })).unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.message.starts_with("must be a"), "{err}");
        }
    }

    #[test]
    fn unknown_fields_and_non_objects_are_rejected() {
        let err = Options::resolve(&Value::Null, &json!({"threshold": 0.9})).unwrap_err();
        assert_eq!(err.to_string(), "threshold: unknown option");
        let err = Options::resolve(&json!([1]), &Value::Null).unwrap_err();
        assert_eq!(err.field, "project_defaults");
        let err = Options::resolve(&json!({"cross_typ": true}), &Value::Null).unwrap_err();
        assert_eq!(err.field, "cross_typ");
    }

    #[test]
    fn a_bad_project_default_is_reported_even_when_the_request_overrides_it() {
        let err = Options::resolve(&json!({"min_cluster_size": 0}), &json!({"min_cluster_size": 3})).unwrap_err();
        assert_eq!(err.field, "min_cluster_size");
    }

    #[test]
    fn validate_catches_values_set_in_code() {
        let options = Options { similarity_threshold: 1.0, ..Options::default() };
        assert_eq!(options.validate().unwrap_err().field, "similarity_threshold");
        let options = Options { min_cluster_size: 1, ..Options::default() };
        assert_eq!(options.validate().unwrap_err().field, "min_cluster_size");
        assert!(Options::default().validate().is_ok());
    }

    #[test]
    fn mode_accepts_its_three_values_and_names_them_when_wrong() {
        for (text, mode) in [("auto", Mode::Auto), ("incremental", Mode::Incremental), ("full", Mode::Full)] {
            assert_eq!(Options::resolve(&Value::Null, &json!({"mode": text})).unwrap().mode, mode);
        }
        let err = Options::resolve(&Value::Null, &json!({"mode": "fast"})).unwrap_err();
        assert_eq!(err.to_string(), "mode: must be one of auto, incremental, full, got \"fast\"");
        assert_eq!(Options::default().mode, Mode::Auto);
    }

    #[test]
    fn guard_options_default_to_review_and_sixty_percent_and_are_range_checked() {
        let options = Options::default();
        assert_eq!((options.value_guard, options.max_changed_share), (ValueGuard::Review, 0.6));
        for guard in ValueGuard::ALL {
            let resolved = Options::resolve(&Value::Null, &json!({"value_guard": guard.as_str()})).unwrap();
            assert_eq!(resolved.value_guard, guard);
        }
        let err = Options::resolve(&Value::Null, &json!({"value_guard": "strict"})).unwrap_err();
        assert_eq!(err.to_string(), "value_guard: must be one of review, auto, off, got \"strict\"");
        assert_eq!(Options::resolve(&Value::Null, &json!({"max_changed_share": 1.0})).unwrap().max_changed_share, 1.0);
        for share in [json!(-0.1), json!(1.5)] {
            assert_eq!(
                Options::resolve(&Value::Null, &json!({"max_changed_share": share})).unwrap_err().field,
                "max_changed_share"
            );
        }
    }

    #[test]
    fn options_deserialize_rejects_unknown_fields() {
        let mut value = serde_json::to_value(Options::default()).unwrap();
        value["surprise"] = json!(1);
        assert!(serde_json::from_value::<Options>(value).is_err());
    }
}
