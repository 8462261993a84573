//! The names Eddy accepts, each checked in one place: a function's name (it
//! becomes file names and an ARN), the names of AWS-style resources (streams,
//! consumers, tables), and a role named by name or by ARN.

/// Lambda's rule for a function name: 1 to 64 of a-z, A-Z, 0-9, `-` and `_`.
pub fn is_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Kinesis' rule for stream and consumer names (and Eddy's for local streams
/// and tables): 1 to `max` of a-z, A-Z, 0-9, `_`, `.` and `-`.
pub fn is_resource_name(name: &str, max: usize) -> bool {
    (1..=max).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The longest stream or consumer name Kinesis takes.
pub const STREAM_NAME_MAX: usize = 128;

/// A stream's or a consumer's name that keeps Kinesis' rule
/// ([`is_resource_name`], at most [`STREAM_NAME_MAX`]): it cannot hold another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    /// `None` when `name` breaks the rule.
    pub fn parse(name: &str) -> Option<StreamName> {
        is_resource_name(name, STREAM_NAME_MAX).then(|| StreamName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for StreamName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role name from the manifest's `Role`: `reader`, or
/// `arn:aws:iam::123456789012:role/service-role/reader`.
pub fn role_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

/// IAM's rule for a role name: 1 to 64 of letters, digits and `+=,.@_-`.
pub fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_services_rules() {
        assert!(is_function_name("orders-2_a"));
        assert!(!is_function_name("") && !is_function_name("a.b") && !is_function_name(&"a".repeat(65)));
        assert!(is_resource_name("orders.v2-x_y", STREAM_NAME_MAX));
        assert!(!is_resource_name("a b", STREAM_NAME_MAX) && !is_resource_name(&"a".repeat(129), STREAM_NAME_MAX));
        assert_eq!(role_name("arn:aws:iam::123456789012:role/service-role/reader"), "reader");
        assert_eq!(role_name("reader"), "reader");
        assert!(is_role_name("a+=,.@_-b") && !is_role_name("a/b"));
        assert_eq!(StreamName::parse("orders").map(|s| s.to_string()).as_deref(), Some("orders"));
        assert_eq!(StreamName::parse("arn:aws:kinesis:us-east-1:1:stream/s"), None);
    }
}
