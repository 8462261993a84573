//! DynamoDB attribute values to plain JSON.

use serde_json::{Map, Value};

/// Turns an item in DynamoDB's attribute-value JSON (`{"id":{"S":"1"},"n":{"N":"5"}}`)
/// into plain JSON (`{"id":"1","n":5}`), as the AWS SDKs' `unmarshall` does.
/// Numbers that do not fit JSON's number stay strings; sets become arrays; binary
/// values stay base64 text.
pub fn unmarshall(item: &Value) -> Value {
    match item {
        Value::Object(attributes) => Value::Object(
            attributes
                .iter()
                .map(|(name, value)| (name.clone(), attribute(value)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn attribute(value: &Value) -> Value {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return value.clone();
    };
    match (kind.as_str(), inner) {
        ("S" | "B", v) => v.clone(),
        ("N", Value::String(n)) => number(n),
        ("BOOL", v) => v.clone(),
        ("NULL", _) => Value::Null,
        ("M", v) => unmarshall(v),
        ("L", Value::Array(items)) => Value::Array(items.iter().map(attribute).collect()),
        ("SS" | "BS", v) => v.clone(),
        ("NS", Value::Array(items)) => Value::Array(
            items
                .iter()
                .map(|n| n.as_str().map_or(Value::Null, number))
                .collect(),
        ),
        _ => value.clone(),
    }
}

fn number(text: &str) -> Value {
    serde_json::from_str::<serde_json::Number>(text)
        .map(Value::Number)
        .unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unmarshalls_nested_items() {
        let item = json!({
            "id": {"S": "a"}, "n": {"N": "5"}, "ok": {"BOOL": true}, "none": {"NULL": true},
            "m": {"M": {"x": {"N": "1.5"}}}, "l": {"L": [{"S": "q"}, {"N": "2"}]},
            "ns": {"NS": ["1", "2"]}
        });
        assert_eq!(
            unmarshall(&item),
            json!({"id": "a", "n": 5, "ok": true, "none": null, "m": {"x": 1.5},
                   "l": ["q", 2], "ns": [1, 2]})
        );
    }
}
