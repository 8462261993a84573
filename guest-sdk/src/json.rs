//! Helpers for handlers of the JSON world.

use serde::Serialize;

#[derive(Serialize)]
struct Response<'a> {
    #[serde(rename = "batchItemFailures")]
    batch_item_failures: Vec<ItemFailure<'a>>,
}

#[derive(Serialize)]
struct ItemFailure<'a> {
    #[serde(rename = "itemIdentifier")]
    item_identifier: &'a str,
}

/// Lambda's response JSON listing the failed records' sequence numbers
/// (`{"batchItemFailures":[{"itemIdentifier":"..."}]}`); an empty slice is success.
pub fn response<S: AsRef<str>>(failed_sequence_numbers: &[S]) -> String {
    let response = Response {
        batch_item_failures: failed_sequence_numbers
            .iter()
            .map(|s| ItemFailure { item_identifier: s.as_ref() })
            .collect(),
    };
    serde_json::to_string(&response).unwrap_or_else(|_| String::from("{\"batchItemFailures\":[]}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_lambda_response() {
        assert_eq!(super::response(&["1", "2"]),
            r#"{"batchItemFailures":[{"itemIdentifier":"1"},{"itemIdentifier":"2"}]}"#);
        assert_eq!(super::response::<&str>(&[]), r#"{"batchItemFailures":[]}"#);
    }
}
