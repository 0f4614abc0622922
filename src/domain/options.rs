//! Consolidation options of DESIGN.md §5: built-in defaults, project defaults and per-request
//! overrides, validated field by field so a caller learns exactly which value is wrong.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::{
    ObjectBuilder, RefOr, Schema,
    schema::{SchemaType, Type},
};

pub use super::vocabulary::{Mode, ValueGuard};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub merge: bool,
    pub summarize: bool,
    pub archive: bool,
    pub promote: bool,
    #[serde(serialize_with = "super::figures::shortest_f32")]
    pub similarity_threshold: f32,
    pub min_cluster_size: usize,
    pub cross_type: bool,
    pub archive_stale_days: u32,
    pub archive_min_reuse: i32,
    #[serde(serialize_with = "super::figures::shortest_f32")]
    pub promote_confidence_threshold: f32,
    pub dry_run: bool,
    pub mode: Mode,
    /// The largest share of active memories one job may mark duplicate or archive (§11).
    #[serde(serialize_with = "super::figures::shortest_f32")]
    pub max_changed_share: f32,
    /// What happens to near-identical memories that differ in a value (§11).
    pub value_guard: ValueGuard,
}

/// The options a clustering result depends on: an incremental run needs its base job to have
/// clustered with the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusteringOptions {
    #[serde(serialize_with = "super::figures::shortest_f32")]
    pub similarity_threshold: f32,
    pub min_cluster_size: usize,
    pub cross_type: bool,
}

impl Options {
    /// The clustering options a later job compares with to run incrementally from this one;
    /// None when this job cannot serve as that base: it did not merge, or it did not judge every
    /// pair under its options (`complete` false).
    pub fn incremental_base(&self, complete: bool) -> Option<ClusteringOptions> {
        (self.merge && complete).then(|| self.clustering())
    }

    pub fn clustering(&self) -> ClusteringOptions {
        ClusteringOptions {
            similarity_threshold: self.similarity_threshold,
            min_cluster_size: self.min_cluster_size,
            cross_type: self.cross_type,
        }
    }
}

impl Default for Options {
    /// The defaults of the field table (`FIELDS`); the unit tests resolve them.
    fn default() -> Self {
        serde_json::from_value(Value::Object(defaults())).expect("the field table's defaults form valid options")
    }
}

/// Options as a request or a project's defaults give them: any subset, each field validated by
/// `Options::resolve` against the one field table (its schema is built from that table too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsolidationOptions(pub Map<String, Value>);

impl ConsolidationOptions {
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// The fields given, each checked, null ones left out and integers written as integers
    /// (`8.0` is the integer 8): the form a project's defaults are stored in.
    pub fn normalized(&self) -> Result<Value, OptionsError> {
        let mut given = Map::new();
        overlay(&mut given, &self.to_value(), "options")?;
        Ok(Value::Object(given))
    }
}

impl utoipa::PartialSchema for ConsolidationOptions {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new().description(Some(
            "Consolidation options; every field optional: an absent or null one falls back to the \
             project's default, then to the built-in default.",
        ));
        for field in &FIELDS {
            // Null means "not given", as leaving the field out does.
            let typed = |kind: Type| ObjectBuilder::new().schema_type(SchemaType::from_iter([kind, Type::Null]));
            let property = match field.kind {
                Kind::Bool => typed(Type::Boolean),
                Kind::Float { min, max } => typed(Type::Number).minimum(Some(min)).maximum(Some(max)),
                Kind::Integer { min, max } => typed(Type::Integer).minimum(Some(min as f64)).maximum(Some(max as f64)),
                Kind::Choice(values) => typed(Type::String)
                    .enum_values(Some(values.iter().map(|value| Value::from(*value)).chain([Value::Null]))),
            };
            let property = property.description(Some(field.doc)).default(Some(field.default.value()));
            object = object.property(field.name, property);
        }
        RefOr::T(Schema::Object(
            object.additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false))).build(),
        ))
    }
}

impl utoipa::ToSchema for ConsolidationOptions {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ConsolidationOptions")
    }
}

/// The same schema for the MCP tools (schemars), from the same field table.
impl schemars::JsonSchema for ConsolidationOptions {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ConsolidationOptions")
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut properties = Map::new();
        for field in &FIELDS {
            let mut property = match field.kind {
                Kind::Bool => serde_json::json!({"type": ["boolean", "null"]}),
                Kind::Float { min, max } => {
                    serde_json::json!({"type": ["number", "null"], "minimum": min, "maximum": max})
                }
                Kind::Integer { min, max } => {
                    serde_json::json!({"type": ["integer", "null"], "minimum": min, "maximum": max})
                }
                Kind::Choice(values) => {
                    let mut allowed: Vec<Value> = values.iter().map(|value| Value::from(*value)).collect();
                    allowed.push(Value::Null);
                    serde_json::json!({"type": ["string", "null"], "enum": allowed})
                }
            };
            property["description"] = Value::from(field.doc);
            property["default"] = field.default.value();
            properties.insert(field.name.to_owned(), property);
        }
        let schema = serde_json::json!({
            "type": "object",
            "description": "Consolidation options; every field optional: an absent or null one falls back to the \
                            project's default, then to the built-in default.",
            "properties": properties,
            "additionalProperties": false,
        });
        schemars::Schema::try_from(schema).unwrap_or_default()
    }
}

/// The options as a Markdown table (name, default, allowed, meaning): docs/configuration.md
/// holds this table, and a test keeps the two the same.
pub fn markdown_table() -> String {
    let mut table = String::from("| option | default | allowed | meaning |\n|---|---|---|---|\n");
    for field in &FIELDS {
        let allowed = match field.kind {
            Kind::Bool => "bool".to_owned(),
            Kind::Float { min, max } => format!("{min:.2}..={max:.2}"),
            Kind::Integer { min, max } => format!("{min}..={max}"),
            Kind::Choice(values) => values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", "),
        };
        let default = match field.default.value() {
            Value::String(text) => format!("`{text}`"),
            value => format!("`{value}`"),
        };
        table.push_str(&format!("| `{}` | {default} | {allowed} | {} |\n", field.name, field.doc));
    }
    table
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

/// An option's built-in default.
#[derive(Clone, Copy)]
enum Preset {
    Bool(bool),
    Number(f64),
    Integer(i64),
    Text(&'static str),
}

impl Preset {
    fn value(self) -> Value {
        match self {
            Preset::Bool(flag) => Value::Bool(flag),
            Preset::Number(x) => serde_json::json!(x),
            Preset::Integer(n) => Value::from(n),
            Preset::Text(text) => Value::from(text),
        }
    }
}

/// One option: its name, JSON kind and allowed range, built-in default, and what it does.
struct Field {
    name: &'static str,
    kind: Kind,
    default: Preset,
    doc: &'static str,
}

const fn field(name: &'static str, kind: Kind, default: Preset, doc: &'static str) -> Field {
    Field { name, kind, default, doc }
}

/// The built-in defaults, as a JSON object.
fn defaults() -> Map<String, Value> {
    FIELDS.iter().map(|field| (field.name.to_owned(), field.default.value())).collect()
}

/// Every option (DESIGN.md §5): the one table that validation, the defaults, the API's schema
/// and the docs' table read.
const FIELDS: [Field; 14] = [
    field("merge", Kind::Bool, Preset::Bool(true), "merge clusters of near-duplicates into consolidated memories"),
    field(
        "summarize",
        Kind::Bool,
        Preset::Bool(true),
        "write a synthesis for each topic of related memories with two facts or more",
    ),
    field("archive", Kind::Bool, Preset::Bool(true), "archive stale, little-reused memories"),
    field(
        "promote",
        Kind::Bool,
        Preset::Bool(true),
        "copy high-confidence consolidated and synthesis memories into the playbook",
    ),
    field(
        "similarity_threshold",
        Kind::Float { min: 0.50, max: 0.99 },
        Preset::Number(0.90),
        "cosine at or above which two memories are near-duplicates; every pair of a cluster must reach it",
    ),
    field("min_cluster_size", Kind::Integer { min: 2, max: 50 }, Preset::Integer(2), "smallest cluster that merges"),
    field("cross_type", Kind::Bool, Preset::Bool(false), "false: cluster within one memory type"),
    field(
        "archive_stale_days",
        Kind::Integer { min: 1, max: 3650 },
        Preset::Integer(90),
        "a memory not reused (or, never reused, not learned) for this many days may be archived ...",
    ),
    field(
        "archive_min_reuse",
        Kind::Integer { min: 0, max: 1000 },
        Preset::Integer(3),
        "... when it was reused fewer times than this",
    ),
    field(
        "promote_confidence_threshold",
        Kind::Float { min: 0.50, max: 1.0 },
        Preset::Number(0.85),
        "confidence a consolidated or synthesis memory needs to be promoted",
    ),
    field("dry_run", Kind::Bool, Preset::Bool(false), "plan and report without changing anything"),
    field(
        "mode",
        Kind::Choice(&Mode::NAMES),
        Preset::Text(Mode::Auto.as_str()),
        "`auto`: incremental when the last completed job clustered with the same options, else full",
    ),
    field(
        "max_changed_share",
        Kind::Float { min: 0.0, max: 1.0 },
        Preset::Number(0.6),
        "the blast radius: the largest share of the active memories a job may mark duplicate or archived",
    ),
    field(
        "value_guard",
        Kind::Choice(&ValueGuard::NAMES),
        Preset::Text(ValueGuard::Review.as_str()),
        "near-duplicates that state different values: `review` queues them, `auto` supersedes the older, `off` merges them",
    ),
];

/// The value if it is of the field's kind and range, integers as integers (JSON Schema counts
/// `8.0` as the integer 8, and so does this).
fn check_value(field: &str, kind: Kind, value: &Value) -> Result<Value, OptionsError> {
    match kind {
        Kind::Bool => value
            .as_bool()
            .map(Value::from)
            .ok_or_else(|| OptionsError::new(field, format!("must be a boolean, got {value}"))),
        Kind::Float { min, max } => {
            let x = value.as_f64().ok_or_else(|| OptionsError::new(field, format!("must be a number, got {value}")))?;
            check_range(field, x, min, max)?;
            Ok(value.clone())
        }
        Kind::Integer { min, max } => {
            let not_integer = || OptionsError::new(field, format!("must be an integer, got {value}"));
            let x = match value.as_i64() {
                Some(x) => x,
                None => value.as_f64().filter(|x| x.fract() == 0.0).ok_or_else(not_integer)? as i64,
            };
            if x < min || x > max {
                return Err(OptionsError::new(field, format!("must be between {min} and {max}, got {value}")));
            }
            Ok(Value::from(x))
        }
        Kind::Choice(allowed) => match value.as_str() {
            Some(text) if allowed.contains(&text) => Ok(value.clone()),
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
        let Some(known) = FIELDS.iter().find(|known| known.name == field) else {
            return Err(OptionsError::new(field, "unknown option"));
        };
        if value.is_null() {
            continue;
        }
        target.insert(field.clone(), check_value(field, known.kind, value)?);
    }
    Ok(())
}

impl Options {
    /// Request fields override project defaults, which override the built-in defaults. Both
    /// inputs are JSON objects or null; a null field means "not given". An unknown field, a wrong
    /// JSON type or an out-of-range value yields an `OptionsError` naming the field.
    pub fn resolve(project_defaults: &Value, request: &Value) -> Result<Options, OptionsError> {
        let mut merged = defaults();
        overlay(&mut merged, project_defaults, "project_defaults")?;
        overlay(&mut merged, request, "options")?;
        let options: Options =
            serde_json::from_value(Value::Object(merged)).map_err(|e| OptionsError::new("options", e.to_string()))?;
        options.validate()?;
        Ok(options)
    }

    pub fn validate(&self) -> Result<(), OptionsError> {
        let value = serde_json::to_value(self).map_err(|e| OptionsError::new("options", e.to_string()))?;
        for Field { name: field, kind, .. } in FIELDS {
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
                _ => {
                    check_value(field, kind, field_value)?;
                }
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
        let blast = super::super::plan::BlastRadius { active: 10, changed: 1, share: 0.1, limit: 0.6, exceeded: false };
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
    fn an_integral_float_is_an_integer_and_null_is_not_given() {
        let given = json!({"min_cluster_size": 8.0, "archive_stale_days": 177.0, "value_guard": null});
        let options = Options::resolve(&Value::Null, &given).unwrap();
        assert_eq!((options.min_cluster_size, options.archive_stale_days), (8, 177));
        assert_eq!(options.value_guard, ValueGuard::Review);
        let stored = ConsolidationOptions(given.as_object().unwrap().clone()).normalized().unwrap();
        assert_eq!(stored, json!({"min_cluster_size": 8, "archive_stale_days": 177}));
        let err = Options::resolve(&Value::Null, &json!({"min_cluster_size": 1e300})).unwrap_err();
        assert!(err.message.starts_with("must be between 2 and 50"), "{err}");
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
    fn the_docs_options_table_is_the_field_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let docs = std::fs::read_to_string(path).unwrap();
        let table = markdown_table();
        assert!(
            docs.contains(&table),
            "docs/configuration.md must hold the options table as the code makes it:\n{table}"
        );
    }

    #[test]
    fn the_schema_lists_every_option_with_its_default_and_range() {
        let schema = serde_json::to_value(<ConsolidationOptions as utoipa::PartialSchema>::schema()).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), FIELDS.len());
        assert_eq!(schema["properties"]["similarity_threshold"]["minimum"], json!(0.5));
        assert_eq!(schema["properties"]["value_guard"]["enum"], json!(["review", "auto", "off", null]));
        assert_eq!(schema["properties"]["merge"]["type"], json!(["boolean", "null"]), "null: not given");
        assert_eq!(schema["properties"]["min_cluster_size"]["default"], json!(2));
        assert_eq!(schema["additionalProperties"], json!(false));
    }

    #[test]
    fn options_deserialize_rejects_unknown_fields() {
        let mut value = serde_json::to_value(Options::default()).unwrap();
        value["surprise"] = json!(1);
        assert!(serde_json::from_value::<Options>(value).is_err());
    }
}
