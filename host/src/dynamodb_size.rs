//! The size DynamoDB gives a stream record (`SizeBytes`): the sizes of its
//! keys and images in DynamoDB's item-size arithmetic, for the events Eddy
//! makes up (`eddy generate-event dynamodb`). DynamoDB's own records carry the
//! figure DynamoDB computed.
//!
//! An attribute is its name's UTF-8 length plus its value's size:
//! - `S`: UTF-8 length; `B`: bytes (the base64 decoded);
//! - `N`: 1 byte per two significant digits, plus 1 (leading and trailing zeros
//!   are not significant);
//! - `BOOL`, `NULL`: 1;
//! - `SS`, `NS`, `BS`: the sum of their elements;
//! - `L`, `M`: 3, plus 1 per element, plus the elements (a map's with their names).

use base64::Engine as _;
use serde_json::Value;

/// The size of an attribute map in DynamoDB JSON (`{"Id":{"N":"101"}}`); 0 for
/// what is not one.
pub fn attribute_map_size(map_json: &str) -> u64 {
    match serde_json::from_str::<Value>(map_json) {
        Ok(Value::Object(map)) => map.iter().map(|(name, value)| name.len() as u64 + value_size(value)).sum(),
        _ => 0,
    }
}

/// `SizeBytes` of a stream record with these keys and images.
pub fn record_size(keys: &str, new_image: Option<&str>, old_image: Option<&str>) -> u64 {
    attribute_map_size(keys) + new_image.map_or(0, attribute_map_size) + old_image.map_or(0, attribute_map_size)
}

fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else { return 0 };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len() as u64,
        ("N", Value::String(n)) => number_size(n),
        ("B", Value::String(b)) => binary_size(b),
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(items)) => items.iter().filter_map(Value::as_str).map(|s| s.len() as u64).sum(),
        ("NS", Value::Array(items)) => items.iter().filter_map(Value::as_str).map(number_size).sum(),
        ("BS", Value::Array(items)) => items.iter().filter_map(Value::as_str).map(binary_size).sum(),
        ("L", Value::Array(items)) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        ("M", Value::Object(map)) => 3 + map.iter().map(|(name, v)| 1 + name.len() as u64 + value_size(v)).sum::<u64>(),
        _ => 0,
    }
}

fn number_size(number: &str) -> u64 {
    let mantissa = number.trim_start_matches(['-', '+']).split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1) as u64;
    significant.div_ceil(2) + 1
}

fn binary_size(base64: &str) -> u64 {
    base64::engine::general_purpose::STANDARD.decode(base64).map_or(base64.len() as u64, |b| b.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lambda's sample DynamoDB event, whose SizeBytes DynamoDB computed: 26 for
    /// the INSERT, 59 for the MODIFY, 38 for the REMOVE.
    #[test]
    fn lambdas_sample_event_sizes() {
        let keys = r#"{"Id":{"N":"101"}}"#;
        let new = r#"{"Message":{"S":"New item!"},"Id":{"N":"101"}}"#;
        let changed = r#"{"Message":{"S":"This item has changed"},"Id":{"N":"101"}}"#;
        assert_eq!(record_size(keys, Some(new), None), 26);
        assert_eq!(record_size(keys, Some(changed), Some(new)), 59);
        assert_eq!(record_size(keys, None, Some(changed)), 38);
    }

    #[test]
    fn other_types_by_dynamodbs_rules() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("-12345.600"), 4, "five significant digits: 3 + 1");
        assert_eq!(attribute_map_size(r#"{"b":{"BOOL":true},"n":{"NULL":true}}"#), 4);
        assert_eq!(attribute_map_size(r#"{"bin":{"B":"AAEC"}}"#), 3 + 3);
        assert_eq!(attribute_map_size(r#"{"l":{"L":[{"S":"ab"},{"N":"1"}]}}"#), 1 + 3 + (1 + 2) + (1 + 2));
        assert_eq!(attribute_map_size(r#"{"m":{"M":{"k":{"S":"v"}}}}"#), 1 + 3 + (1 + 1 + 1));
        assert_eq!(attribute_map_size("not json"), 0);
    }
}
