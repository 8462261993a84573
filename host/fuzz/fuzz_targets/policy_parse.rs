//! The IAM policy parser on arbitrary bytes: it returns a policy or an error,
//! never panics, and a policy it accepts evaluates any request without panicking,
//! with an explicit deny never turning into an allow.
#![no_main]

use eddy::role::policy::{Decision, Effect, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = Policy::parse(text) else { return };
    for (action, resource) in [
        ("kinesis:GetRecords", "arn:aws:kinesis:us-east-1:123456789012:stream/s"),
        ("eddy:HttpRequest", "https://example.com/"),
        ("", ""),
    ] {
        let decision = policy.evaluate(action, resource);
        // A Deny statement that covers the request must win.
        let denied = policy.statements().iter().any(|s| s.effect == Effect::Deny && s.covers(action, resource));
        assert!(!denied || decision == Decision::ExplicitDeny);
    }
});
