//! NUL characters (U+0000) in request text. PostgreSQL cannot store them in `text` or `jsonb`,
//! so a body carrying one is refused with 422 naming the field, before any handler runs.

use serde_json::Value;

/// Whether raw JSON may hold a NUL: JSON can only spell one as the escape `\u0000` (a raw NUL
/// byte inside a string is not JSON). A cheap test on the bytes; [`find`] decides exactly.
pub fn may_contain(json: &[u8]) -> bool {
    json.windows(6).any(|window| window == br"\u0000")
}

/// The path of the first string (or object key) holding a NUL, as `memories[0].tags[1]`.
pub fn find(value: &Value) -> Option<String> {
    find_under(value, String::new())
}

fn find_under(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(if path.is_empty() { "body".to_owned() } else { path }),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(index, item)| find_under(item, format!("{path}[{index}]")))
        }
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let field = if path.is_empty() {
                key.replace('\0', "\\u0000")
            } else {
                format!("{path}.{}", key.replace('\0', "\\u0000"))
            };
            if key.contains('\0') { Some(field) } else { find_under(item, field) }
        }),
        _ => None,
    }
}

/// The 422 message for a NUL found at `path`.
pub fn message(path: &str) -> String {
    format!("{path}: contains a NUL character (U+0000), which cannot be stored")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_path_names_the_field_holding_the_nul() {
        let body = json!({"memories": [{"execution_summary": "fine", "tags": ["a", "b\u{0}c"]}]});
        assert_eq!(find(&body).as_deref(), Some("memories[0].tags[1]"));
        assert_eq!(find(&json!({"name": "x\u{0}"})).as_deref(), Some("name"));
        assert_eq!(find(&json!("\u{0}")).as_deref(), Some("body"));
        assert_eq!(find(&json!({"a\u{0}b": 1})).as_deref(), Some("a\\u0000b"));
        assert_eq!(find(&json!({"reason": "clean", "n": [1, 2, null, true]})), None);
    }

    #[test]
    fn the_byte_test_finds_every_escaped_nul_and_find_rules_out_an_escaped_backslash() {
        assert!(may_contain(br#"{"a":"x\u0000"}"#));
        assert!(!may_contain(br#"{"a":"x\u0001"}"#));
        let escaped_backslash = br#"{"a":"\\u0000"}"#;
        assert!(may_contain(escaped_backslash), "a cheap test may say yes");
        let value: Value = serde_json::from_slice(escaped_backslash).unwrap();
        assert_eq!(find(&value), None, "the text is a backslash and `u0000`, no NUL");
    }
}
