//! IAM policy documents: parsing and evaluation, as AWS evaluates an identity
//! policy.
//!
//! A policy is IAM's own JSON (`Version`, `Statement` with `Effect`, `Action` or
//! `NotAction`, `Resource` or `NotResource`), so the policy of a Lambda execution
//! role can be pasted as it is. Evaluation follows IAM's rules:
//! - every request starts denied (implicit deny);
//! - a matching `Allow` statement allows it;
//! - a matching `Deny` statement denies it, whatever any `Allow` says.
//!
//! Actions match without regard to case (`kinesis:putrecord` is
//! `kinesis:PutRecord`), resources with regard to it. In both, `*` matches any
//! run of characters (`/` and `:` included) and `?` exactly one.
//!
//! Eddy cannot evaluate `Condition` blocks (they test request context that a
//! local host does not have), so it errs on the safe side: an `Allow` with a
//! condition grants nothing, a `Deny` with a condition always applies.

use serde::Deserialize;
use serde_json::Value;

use super::wildcard::wildcard_match;

/// What a policy says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A `Deny` statement matches it.
    ExplicitDeny,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Why a document is not a policy Eddy can use. The message names the statement
/// (by `Sid`, or by its position) and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(String),
}

/// A parsed policy document. The default has no statements: it denies everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// One statement, with its lists of patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub actions: Patterns,
    pub resources: Patterns,
    /// The statement has a `Condition` block (see the module's notes).
    pub conditional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Action`/`Resource` (the statement covers what matches) or
/// `NotAction`/`NotResource` (it covers everything that does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    Matching(Vec<String>),
    NotMatching(Vec<String>),
}

impl Patterns {
    /// Whether the statement covers `value` (an action: `ignore_case`; a resource: not).
    pub fn covers(&self, value: &str, ignore_case: bool) -> bool {
        self.covers_by(|pattern| wildcard_match(pattern, value, ignore_case))
    }

    /// Whether the statement covers a value that `matches` tells patterns of.
    pub fn covers_by(&self, matches: impl Fn(&str) -> bool) -> bool {
        let any = |patterns: &[String]| patterns.iter().any(|p| matches(p));
        match self {
            Patterns::Matching(patterns) => any(patterns),
            Patterns::NotMatching(patterns) => !any(patterns),
        }
    }

    /// The patterns as written, of either kind.
    pub fn all(&self) -> &[String] {
        let (Patterns::Matching(patterns) | Patterns::NotMatching(patterns)) = self;
        patterns
    }

    /// The patterns of an `Action`/`Resource` list (empty for `Not...`).
    pub fn matching(&self) -> &[String] {
        match self {
            Patterns::Matching(patterns) => patterns,
            Patterns::NotMatching(_) => &[],
        }
    }
}

impl Statement {
    /// Whether the statement speaks of this request (whatever its effect).
    pub fn covers(&self, action: &str, resource: &str) -> bool {
        if !self.actions.covers(action, true) {
            return false;
        }
        // A URL is matched part by part (scheme, host, port, path): see `url`.
        if action.eq_ignore_ascii_case(super::actions::HTTP_REQUEST) {
            return self.resources.covers_by(|pattern| super::url::url_pattern_matches(pattern, resource));
        }
        self.resources.covers(resource, false)
    }
}

/// The versions IAM knows; a document without `Version` is read as the older.
const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// IAM's limit on a managed policy's size (without whitespace it is 6,144; Eddy
/// counts the file as written).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

impl Policy {
    /// Parses an IAM policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(invalid(format!("the policy is {} bytes; the limit is {MAX_POLICY_BYTES}", text.len())));
        }
        let document: RawDocument = serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        if let Some(version) = &document.version
            && !VERSIONS.contains(&version.as_str())
        {
            return Err(invalid(format!("Version is \"{version}\"; IAM knows \"2012-10-17\" and \"2008-10-17\"")));
        }
        let raw_statements = match document.statement {
            OneOrMany::One(statement) => vec![statement],
            OneOrMany::Many(statements) => statements,
        };
        let statements = raw_statements
            .into_iter()
            .enumerate()
            .map(|(index, raw)| statement(index, raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { statements })
    }

    /// IAM's evaluation of one request: an explicit deny beats any allow, and
    /// anything not allowed is denied.
    pub fn evaluate(&self, action: &str, resource: &str) -> Decision {
        let mut decision = Decision::ImplicitDeny;
        for statement in &self.statements {
            match statement.effect {
                // A Deny applies with or without a condition (see the module's notes).
                Effect::Deny if statement.covers(action, resource) => return Decision::ExplicitDeny,
                Effect::Allow if !statement.conditional && statement.covers(action, resource) => {
                    decision = Decision::Allow;
                }
                _ => {}
            }
        }
        decision
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

fn invalid(message: String) -> PolicyError {
    PolicyError::Invalid(message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    #[serde(rename = "Version")]
    version: Option<String>,
    #[serde(rename = "Id")]
    _id: Option<String>,
    #[serde(rename = "Statement")]
    statement: OneOrMany<RawStatement>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

#[derive(Deserialize)]
struct RawStatement {
    #[serde(rename = "Sid")]
    sid: Option<String>,
    #[serde(rename = "Effect")]
    effect: Option<String>,
    #[serde(rename = "Action")]
    action: Option<Value>,
    #[serde(rename = "NotAction")]
    not_action: Option<Value>,
    #[serde(rename = "Resource")]
    resource: Option<Value>,
    #[serde(rename = "NotResource")]
    not_resource: Option<Value>,
    #[serde(rename = "Condition")]
    condition: Option<Value>,
    #[serde(rename = "Principal")]
    principal: Option<Value>,
    #[serde(rename = "NotPrincipal")]
    not_principal: Option<Value>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

fn statement(index: usize, raw: RawStatement) -> Result<Statement, PolicyError> {
    let name = match &raw.sid {
        Some(sid) => format!("statement \"{sid}\""),
        None => format!("statement {}", index + 1),
    };
    if let Some(key) = raw.other.keys().next() {
        return Err(invalid(format!(
            "{name}: unknown key \"{key}\" (a statement has Sid, Effect, Action or NotAction, \
             Resource or NotResource, and Condition)"
        )));
    }
    if raw.principal.is_some() || raw.not_principal.is_some() {
        return Err(invalid(format!(
            "{name}: an execution role's policy is an identity policy and has no Principal \
             (that belongs in a trust or resource policy)"
        )));
    }
    let effect = match raw.effect.as_deref() {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => return Err(invalid(format!("{name}: Effect is \"{other}\"; it must be \"Allow\" or \"Deny\""))),
        None => return Err(invalid(format!("{name}: Effect is missing"))),
    };
    let actions = patterns(&name, ("Action", raw.action), ("NotAction", raw.not_action))?;
    for action in actions.all() {
        check_action(&name, action)?;
    }
    let resources = patterns(&name, ("Resource", raw.resource), ("NotResource", raw.not_resource))?;
    for resource in resources.all() {
        if resource.contains("${") {
            return Err(invalid(format!(
                "{name}: resource \"{resource}\" uses a policy variable; Eddy does not substitute them"
            )));
        }
    }
    Ok(Statement { sid: raw.sid, effect, actions, resources, conditional: raw.condition.is_some() })
}

/// `Action` or `NotAction` (`Resource` or `NotResource`): exactly one of the two.
fn patterns(statement: &str, matching: (&str, Option<Value>), not_matching: (&str, Option<Value>)) -> Result<Patterns, PolicyError> {
    match (matching, not_matching) {
        ((key, Some(list)), (_, None)) => Ok(Patterns::Matching(strings(statement, key, list)?)),
        ((_, None), (key, Some(list))) => Ok(Patterns::NotMatching(strings(statement, key, list)?)),
        ((key, Some(_)), (not_key, Some(_))) => Err(invalid(format!("{statement}: has both {key} and {not_key}"))),
        ((key, None), (not_key, None)) => Err(invalid(format!("{statement}: has neither {key} nor {not_key}"))),
    }
}

/// A string or a non-empty list of strings.
fn strings(statement: &str, key: &str, value: Value) -> Result<Vec<String>, PolicyError> {
    let list = match value {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(invalid(format!("{statement}: {key} holds {other}, not a string"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(invalid(format!("{statement}: {key} is {other}; it must be a string or a list of strings"))),
    };
    if list.is_empty() {
        return Err(invalid(format!("{statement}: {key} is an empty list")));
    }
    if list.iter().any(|s| s.is_empty()) {
        return Err(invalid(format!("{statement}: {key} holds an empty string")));
    }
    Ok(list)
}

/// An action is `*` or `service:Name`, where the name may hold wildcards.
fn check_action(statement: &str, action: &str) -> Result<(), PolicyError> {
    if action == "*" {
        return Ok(());
    }
    let valid = action.split_once(':').is_some_and(|(service, name)| {
        !service.is_empty()
            && service.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
    });
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "{statement}: action \"{action}\" is not of the form service:Action (for example kinesis:PutRecord, eddy:HttpRequest)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::wildcard::wildcard_match;

    fn policy(json: &str) -> Policy {
        match Policy::parse(json) {
            Ok(policy) => policy,
            Err(error) => panic!("{error}: {json}"),
        }
    }

    fn error(json: &str) -> String {
        match Policy::parse(json) {
            Ok(policy) => panic!("accepted {json}: {policy:?}"),
            Err(error) => error.to_string(),
        }
    }

    const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/orders";

    #[test]
    fn wildcards() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything:at/all", true),
            ("", "", true),
            ("", "a", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("abc", "ab", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a??", "abc", true),
            ("?", "", false),
            ("a*", "a", true),
            ("a*", "abc/def:ghi", true),
            ("*c", "abc", true),
            ("*c", "abd", false),
            ("a*c", "ac", true),
            ("a*c", "abbbbc", true),
            ("a*c", "abbbbcd", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("*a*a*a*", "banana", true),
            ("*a*a*a*a*", "banana", false),
            ("*a*a*a*a*", "bananana", true),
            ("**", "x", true),
            ("*?", "", false),
            ("*?", "x", true),
            ("arn:aws:kinesis:*:*:stream/orders-*", "arn:aws:kinesis:us-east-1:1:stream/orders-eu", true),
            ("arn:aws:kinesis:*:*:stream/orders-*", "arn:aws:kinesis:us-east-1:1:stream/order", false),
            ("héllo*", "héllo wörld", true),
            ("h?llo", "héllo", true),
        ];
        for &(pattern, value, expected) in cases {
            assert_eq!(wildcard_match(pattern, value, false), expected, "{pattern:?} against {value:?}");
        }
        assert!(wildcard_match("Kinesis:Put*", "kinesis:putrecord", true));
        assert!(!wildcard_match("Kinesis:Put*", "kinesis:putrecord", false));
    }

    #[test]
    fn wildcard_worst_case_is_fast() {
        let value = "a".repeat(5000);
        let pattern = format!("{}b", "*a".repeat(50));
        let started = std::time::Instant::now();
        assert!(!wildcard_match(&pattern, &value, false));
        // Generous: this is about not being exponential, not about speed.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn default_deny() {
        let p = policy(r#"{"Version":"2012-10-17","Statement":[]}"#);
        assert_eq!(p.evaluate("kinesis:GetRecords", STREAM), Decision::ImplicitDeny);
    }

    #[test]
    fn allow_matches_action_and_resource() {
        let p = policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"kinesis:PutRecord","Resource":"{STREAM}"}}}}"#
        ));
        assert_eq!(p.evaluate("kinesis:PutRecord", STREAM), Decision::Allow);
        assert_eq!(p.evaluate("KINESIS:putrecord", STREAM), Decision::Allow, "actions ignore case");
        assert_eq!(p.evaluate("kinesis:PutRecords", STREAM), Decision::ImplicitDeny);
        assert_eq!(p.evaluate("kinesis:PutRecord", &STREAM.to_uppercase()), Decision::ImplicitDeny, "resources keep case");
        assert_eq!(p.evaluate("kinesis:PutRecord", &format!("{STREAM}-2")), Decision::ImplicitDeny);
    }

    #[test]
    fn lists_and_wildcards_in_statements() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
                "Action":["kinesis:Get*","kinesis:DescribeStream?ummary","kinesis:ListShards"],
                "Resource":["arn:aws:kinesis:*:*:stream/in-*","arn:aws:kinesis:us-east-1:1:stream/x"]}]}"#,
        );
        assert!(p.evaluate("kinesis:GetRecords", "arn:aws:kinesis:eu-west-1:9:stream/in-a").is_allowed());
        assert!(p.evaluate("kinesis:GetShardIterator", "arn:aws:kinesis:us-east-1:1:stream/x").is_allowed());
        assert!(p.evaluate("kinesis:DescribeStreamSummary", "arn:aws:kinesis:us-east-1:1:stream/x").is_allowed());
        assert!(!p.evaluate("kinesis:DescribeStream", "arn:aws:kinesis:us-east-1:1:stream/x").is_allowed());
        assert!(!p.evaluate("kinesis:PutRecord", "arn:aws:kinesis:us-east-1:1:stream/x").is_allowed());
        assert!(!p.evaluate("kinesis:GetRecords", "arn:aws:kinesis:us-east-1:1:stream/y").is_allowed());
    }

    #[test]
    fn explicit_deny_beats_allow_in_any_order() {
        let allow = r#"{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}"#;
        let deny = r#"{"Effect":"Deny","Action":"kinesis:PutRecord*","Resource":"arn:aws:kinesis:*:*:stream/audit"}"#;
        for statements in [format!("[{allow},{deny}]"), format!("[{deny},{allow}]")] {
            let p = policy(&format!(r#"{{"Statement":{statements}}}"#));
            assert_eq!(p.evaluate("kinesis:PutRecords", "arn:aws:kinesis:r:1:stream/audit"), Decision::ExplicitDeny);
            assert_eq!(p.evaluate("kinesis:PutRecords", "arn:aws:kinesis:r:1:stream/other"), Decision::Allow);
            assert_eq!(p.evaluate("kinesis:GetRecords", "arn:aws:kinesis:r:1:stream/audit"), Decision::Allow);
        }
        // A deny alone is still a deny, not merely "not allowed".
        let p = policy(&format!(r#"{{"Statement":{deny}}}"#));
        assert_eq!(p.evaluate("kinesis:PutRecord", "arn:aws:kinesis:r:1:stream/audit"), Decision::ExplicitDeny);
        assert_eq!(p.evaluate("kinesis:PutRecord", "arn:aws:kinesis:r:1:stream/x"), Decision::ImplicitDeny);
    }

    #[test]
    fn not_action_and_not_resource() {
        let p = policy(
            r#"{"Statement":[
                {"Effect":"Allow","NotAction":"dynamodb:Delete*","Resource":"arn:aws:dynamodb:*:*:table/t"},
                {"Effect":"Allow","Action":"eddy:HttpRequest","NotResource":"http://169.254.169.254/*"}]}"#,
        );
        assert!(p.evaluate("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/t").is_allowed());
        assert!(p.evaluate("kinesis:PutRecord", "arn:aws:dynamodb:r:1:table/t").is_allowed(), "NotAction allows every other action");
        assert!(!p.evaluate("dynamodb:DeleteItem", "arn:aws:dynamodb:r:1:table/t").is_allowed());
        assert!(!p.evaluate("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/u").is_allowed());
        assert!(p.evaluate("eddy:HttpRequest", "https://api.example.com:443/x").is_allowed());
        assert!(!p.evaluate("eddy:HttpRequest", "http://169.254.169.254:80/latest/meta-data").is_allowed());

        // NotAction in a Deny: deny everything but reads.
        let p = policy(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},
                {"Effect":"Deny","NotAction":["dynamodb:Get*","dynamodb:Query"],"Resource":"*"}]}"#,
        );
        assert!(p.evaluate("dynamodb:GetItem", "x").is_allowed());
        assert_eq!(p.evaluate("dynamodb:PutItem", "x"), Decision::ExplicitDeny);
    }

    #[test]
    fn conditions_err_on_the_safe_side() {
        let p = policy(
            r#"{"Statement":[
                {"Effect":"Allow","Action":"kinesis:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
                {"Effect":"Allow","Action":"dynamodb:*","Resource":"*"},
                {"Effect":"Deny","Action":"dynamodb:DeleteItem","Resource":"*","Condition":{"StringEquals":{"aws:username":"x"}}}]}"#,
        );
        assert_eq!(p.evaluate("kinesis:PutRecord", STREAM), Decision::ImplicitDeny, "a conditional Allow grants nothing");
        assert_eq!(p.evaluate("dynamodb:GetItem", "t"), Decision::Allow);
        assert_eq!(p.evaluate("dynamodb:DeleteItem", "t"), Decision::ExplicitDeny, "a conditional Deny always applies");
    }

    #[test]
    fn star_action_and_resource() {
        let p = policy(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
        assert!(p.evaluate("eddy:Connect", "127.0.0.1:80").is_allowed());
        assert!(p.evaluate("kinesis:GetRecords", "").is_allowed());
    }

    #[test]
    fn a_lambda_execution_role_pastes_as_it_is() {
        // The shape of AWSLambdaKinesisExecutionRole plus an inline policy.
        let p = policy(
            r#"{
              "Version": "2012-10-17",
              "Statement": [
                {
                  "Effect": "Allow",
                  "Action": [
                    "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                    "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:ListStreams",
                    "kinesis:SubscribeToShard", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"
                  ],
                  "Resource": "*"
                },
                { "Sid": "Out", "Effect": "Allow", "Action": "kinesis:PutRecords",
                  "Resource": "arn:aws:kinesis:us-east-1:123456789012:stream/enriched" }
              ]
            }"#,
        );
        assert!(p.evaluate("kinesis:GetRecords", STREAM).is_allowed());
        assert!(p.evaluate("kinesis:PutRecords", "arn:aws:kinesis:us-east-1:123456789012:stream/enriched").is_allowed());
        assert!(!p.evaluate("kinesis:PutRecords", STREAM).is_allowed());
        assert_eq!(p.statements().len(), 2);
        assert_eq!(p.statements()[1].sid.as_deref(), Some("Out"));
    }

    #[test]
    fn refusals_name_the_statement_and_key() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
            (r#"{"Version":"2020-01-01","Statement":[]}"#, "Version is \"2020-01-01\""),
            (r#"{"Statement":[],"Extra":1}"#, "Extra"),
            (r#"{"Statement":[{"Action":"*","Resource":"*"}]}"#, "statement 1: Effect is missing"),
            (r#"{"Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#, "Effect is \"allow\""),
            (r#"{"Statement":[{"Sid":"S","Effect":"Allow","Resource":"*"}]}"#, "statement \"S\": has neither Action"),
            (r#"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}]}"#, "both Action and NotAction"),
            (r#"{"Statement":[{"Effect":"Allow","Action":"*"}]}"#, "neither Resource nor NotResource"),
            (r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}]}"#, "both Resource"),
            (r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#, "Action is an empty list"),
            (r#"{"Statement":[{"Effect":"Allow","Action":[""],"Resource":"*"}]}"#, "empty string"),
            (r#"{"Statement":[{"Effect":"Allow","Action":5,"Resource":"*"}]}"#, "Action is 5"),
            (r#"{"Statement":[{"Effect":"Allow","Action":[true],"Resource":"*"}]}"#, "Action holds true"),
            (r#"{"Statement":[{"Effect":"Allow","Action":"PutRecord","Resource":"*"}]}"#, "service:Action"),
            (r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:","Resource":"*"}]}"#, "service:Action"),
            (r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:Put Record","Resource":"*"}]}"#, "service:Action"),
            (r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#, "Principal"),
            (r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Bogus":1}]}"#, "unknown key \"Bogus\""),
            (r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:${aws:username}"}]}"#, "policy variable"),
        ];
        for (json, expected) in cases {
            let message = error(json);
            assert!(message.contains(expected), "{json}: {message} (expected it to mention {expected})");
        }
        let big = format!(r#"{{"Statement":[],"Id":"{}"}}"#, "x".repeat(MAX_POLICY_BYTES));
        assert!(error(&big).contains("limit"));
    }

    /// The parser on random and mutated documents: it returns, never panics.
    /// (The fuzz target in `host/fuzz` does the same, for as long as you let it.)
    #[test]
    fn parser_survives_mutations() {
        let seeds = [
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesis:Get*"],"Resource":"arn:aws:kinesis:*:*:stream/x"}]}"#,
            r#"{"Statement":{"Effect":"Deny","NotAction":"*","NotResource":["a","b?"],"Condition":{}}}"#,
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"{}[]\",:*?AaEeSsRr \\u0000\xc3\xa9";
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(0..=bytes.len());
                match rng.u8(0..3) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[rng.usize(0..alphabet.len())]),
                    _ if at < bytes.len() => bytes[at] = alphabet[rng.usize(0..alphabet.len())],
                    _ => {}
                }
            }
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Ok(p) = Policy::parse(text)
            {
                let _ = p.evaluate("kinesis:GetRecords", "arn:aws:kinesis:r:1:stream/x");
            }
        }
    }
}
