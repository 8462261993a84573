//! A standalone fuzzer for the parsers that read what users write: manifests,
//! FilterCriteria patterns, IAM policies and the URL grants' matching. It
//! mutates seed inputs at random (byte edits, splices of the inputs' own
//! tokens) and runs each parser on them, checking that it returns a value or an
//! error and never panics. It needs no nightly toolchain; the cargo-fuzz targets
//! in `host/fuzz` do the same under libFuzzer's coverage guidance.
//!
//!     cargo run --release -p eddy-host --example fuzz_parsers -- [SECONDS] [SEED]
//!
//! It prints the executions per parser and the crashes (each with the input).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use eddy::manifest::Manifest;
use eddy::filter::RecordFilter;
use eddy::record::{KinesisRecord, Records};
use eddy::role::policy::Policy;
use eddy::role::url::url_pattern_matches;

const MANIFESTS: &[&str] = &[
    "[EventSource]\nType = \"Local\"\nStream = \"orders\"\nBatchSize = 10\n",
    "Timeout = 30\nMemorySize = 256\nRole = \"reader\"\n[Environment.Variables]\nMODE = \"x\"\n[EventSource]\nType = \"Kinesis\"\nStream = \"arn:aws:kinesis:us-east-1:123456789012:stream/s\"\nStartingPosition = \"AT_TIMESTAMP\"\nStartingPositionTimestamp = 1700000000.5\nFunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumRetryAttempts = 2\nBisectBatchOnFunctionError = true\nTumblingWindowInSeconds = 60\n[EventSource.FilterCriteria]\nFilters = [{ Pattern = '{\"data\":{\"k\":[\"v\"]}}' }]\n[EventSource.DestinationConfig.OnFailure]\nDestination = \"/tmp/failures/\"\n",
    "[EventSource]\nType = \"DynamoDB\"\nTable = \"t\"\nParallelizationFactor = 4\nMaximumRecordAgeInSeconds = 60\nEndpointUrl = \"http://127.0.0.1:8000\"\n",
];

const FILTERS: &[&str] = &[
    r#"{"data":{"type":["sale"],"amount":[{"numeric":[">",10,"<=",100]}]}}"#,
    r#"{"$or":[{"partitionKey":[{"prefix":"pk-"}]},{"data":{"x":[{"anything-but":["a","b"]}]}}]}"#,
    r#"{"dynamodb":{"NewImage":{"n":{"N":[{"numeric":["=",1]}]}}},"eventName":["INSERT"]}"#,
    r#"{"data":{"s":[{"suffix":".png"},{"equals-ignore-case":"X"},{"exists":false},{"wildcard":"a*b"}]}}"#,
];

const POLICIES: &[&str] = &[
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesis:Get*"],"Resource":"arn:aws:kinesis:*:*:stream/x"}]}"#,
    r#"{"Statement":{"Effect":"Deny","NotAction":"*","NotResource":["a","b?"],"Condition":{}}}"#,
    r#"{"Statement":[{"Sid":"w","Effect":"Allow","Action":"eddy:HttpRequest","Resource":"http://*.example.com:*/v1/*"}]}"#,
];

const URL_PATTERNS: &[&str] =
    &["http://*.example.com/*", "https://[::1]:8443/a/*", "*", "ht?p://x.*:*/*?q=*", "https://api.example.com"];
const URLS: &[&str] = &["http://a.example.com:80/x", "https://[::1]:8443/a/b?c", "http://127.0.0.1:80/.example.com/"];

/// Random edits of one of `seeds`, using bytes of the inputs' own alphabet.
fn mutate(rng: &mut fastrand::Rng, seeds: &[&str], alphabet: &[u8]) -> Vec<u8> {
    let mut bytes = seeds[rng.usize(0..seeds.len())].as_bytes().to_vec();
    for _ in 0..rng.usize(1..8) {
        let at = rng.usize(0..=bytes.len());
        match rng.u8(0..5) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, alphabet[rng.usize(0..alphabet.len())]),
            2 if at < bytes.len() => bytes[at] = alphabet[rng.usize(0..alphabet.len())],
            3 if !bytes.is_empty() => {
                // Repeat a slice: deep nesting, long lists.
                let from = rng.usize(0..bytes.len());
                let to = (from + rng.usize(1..16)).min(bytes.len());
                let piece = bytes[from..to].to_vec();
                for _ in 0..rng.usize(1..64) {
                    bytes.splice(at.min(bytes.len())..at.min(bytes.len()), piece.iter().copied());
                }
            }
            _ if at < bytes.len() => bytes.truncate(at),
            _ => {}
        }
    }
    bytes
}

struct Target {
    name: &'static str,
    executions: u64,
    crashes: Vec<String>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut rng = fastrand::Rng::with_seed(seed);
    // Every panic counts, also one the code under test catches itself (the
    // filter delivers a record when its matcher panics).
    static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    std::panic::set_hook(Box::new(|_| PANICKED.store(true, std::sync::atomic::Ordering::Relaxed)));
    let record = Records::Kinesis(vec![KinesisRecord {
        event_id: "shardId-000000000000:1".into(),
        partition_key: "pk-1".into(),
        sequence_number: "1".into(),
        data: br#"{"type":"sale","amount":50,"s":"a.png","x":"c"}"#.to_vec(),
        approximate_arrival_timestamp_ms: 1_700_000_000_000,
        encryption_type: None,
    }]);
    let mut targets: Vec<Target> = ["manifest", "filter", "policy", "url"]
        .into_iter()
        .map(|name| Target { name, executions: 0, crashes: Vec::new() })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let manifest_alphabet = b"[]{}=\"'.,\n -_0123456789AaEeTtSsxX#\\";
    let json_alphabet = b"{}[]\",:*?$-. 0123456789aAeEnNxX\\\xc3\xa9";
    let url_alphabet = b":/*?[]@%.#0123456789abcdefx";
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let which = rng.usize(0..targets.len());
            let (input, run): (Vec<u8>, Box<dyn Fn(&str)>) = match which {
                0 => (mutate(&mut rng, MANIFESTS, manifest_alphabet), Box::new(|text: &str| {
                    let _ = Manifest::parse(text);
                    let _ = Manifest::role_reference(text);
                })),
                1 => (mutate(&mut rng, FILTERS, json_alphabet), Box::new(|text: &str| {
                    if let Ok(filter) = RecordFilter::new(&[text.to_owned()]) {
                        let _ = filter.matches(&record, 0, "us-east-1", "arn:aws:kinesis:us-east-1:1:stream/s");
                    }
                })),
                2 => (mutate(&mut rng, POLICIES, json_alphabet), Box::new(|text: &str| {
                    if let Ok(policy) = Policy::parse(text) {
                        let _ = policy.evaluate("eddy:HttpRequest", "http://a.example.com:80/v1/x");
                        let _ = policy.evaluate("kinesis:GetRecords", "arn:aws:kinesis:r:1:stream/x");
                    }
                })),
                _ => {
                    let pattern = mutate(&mut rng, URL_PATTERNS, url_alphabet);
                    let url = mutate(&mut rng, URLS, url_alphabet);
                    let mut both = pattern;
                    both.push(b'\n');
                    both.extend(url);
                    (both, Box::new(|text: &str| {
                        let (pattern, url) = text.split_once('\n').unwrap_or((text, ""));
                        let _ = url_pattern_matches(pattern, url);
                        if let Ok(uri) = url.parse::<http::Uri>() {
                            let _ = eddy::role::url::RequestUrl::from_uri(&uri).map(|u| u.resource());
                        }
                    }))
                }
            };
            let Ok(text) = std::str::from_utf8(&input) else { continue };
            let target = &mut targets[which];
            target.executions += 1;
            let unwound = catch_unwind(AssertUnwindSafe(|| run(text))).is_err();
            if (unwound || PANICKED.swap(false, std::sync::atomic::Ordering::Relaxed)) && target.crashes.len() < 10 {
                target.crashes.push(text.to_owned());
            }
        }
    }
    let _ = std::panic::take_hook();
    let mut crashed = false;
    for t in &targets {
        println!("{:<9} {:>10} executions, {} crashes", t.name, t.executions, t.crashes.len());
        for input in &t.crashes {
            crashed = true;
            println!("  crash on {input:?}");
        }
    }
    if crashed {
        std::process::exit(1);
    }
}
