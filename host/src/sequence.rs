//! Sequence numbers.
//!
//! Kinesis and DynamoDB Streams write sequence numbers as decimal strings of up to
//! 128 digits, too long for any integer type. Without leading zeros, the longer one
//! is the larger, and equal lengths compare as text.

use std::cmp::Ordering;

/// Compares two decimal sequence numbers.
pub fn compare(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longer_is_larger_and_equal_lengths_compare_as_text() {
        assert_eq!(compare("9", "10"), Ordering::Less);
        assert_eq!(compare("49590338271490256608559692538361571095921575989136588898",
                           "49590338271490256608559692540925702759324208523137515618"), Ordering::Less);
        assert_eq!(compare("42", "42"), Ordering::Equal);
        assert_eq!(compare("100", "99"), Ordering::Greater);
    }
}
