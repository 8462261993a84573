//! KPL de-aggregation (`EventSource.DeaggregateRecords`) against real parts:
//! aggregates built by AWS's own aggregation library (aws-kinesis-agg, the
//! Kinesis Producer Library's format) and put by the AWS SDK for JavaScript, to
//! kinesis-mock and to Eddy's own Kinesis API for local streams. The handler
//! sees each user record with its own partition key, data and eventID, in
//! order; a malformed aggregate is delivered as one plain record; a failure
//! reported inside an aggregate is retried from that user record, and a host
//! killed with its checkpoint inside an aggregate resumes there.

use serde_json::{Value, json};

use eddy_tests::kinesis::{Handled, Kinesis, handled};
use eddy_tests::*;

/// Puts `puts` with the example producer (examples/kpl/produce.js) in order;
/// the sequence number of each record put.
fn produce(endpoint: &str, stream: &str, puts: &Value) -> Vec<String> {
    let modules = repo_root().join("tests/emulators/node_modules");
    assert!(modules.join("aws-kinesis-agg").is_dir(), "AWS's aggregation library is missing: run tests/emulators/install.sh");
    let script = repo_root().join("examples/kpl/produce.js");
    let out = std::process::Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(&script)
        .args([endpoint, stream, &puts.to_string()])
        .output()
        .expect("node runs");
    assert!(out.status.success(), "the producer failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the producer prints the sequence numbers")
}

/// (eventID, partition key, text) of each record handled, first sightings only,
/// in the order handled.
fn seen(handled: &[Handled]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for h in handled {
        let id = format!("{}:{}", h.shard, h.sequence);
        if !out.iter().any(|(seen, _, _)| *seen == id) {
            out.push((id, h.key.clone(), h.text.clone()));
        }
    }
    out
}

#[test]
fn aggregates_from_the_aws_library_are_split_into_their_user_records_in_order_on_kinesis() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("kpl", 1);
    let puts = json!([
        {"aggregate": [["a0", "first 0"], ["a1", "first 1"], ["a0", "first 2"], ["a3", "first 3"], ["a4", "first 4"]]},
        {"plain": ["p", "plain"]},
        {"aggregate": [["b0", "second 0", "1234567890"], ["b1", "second 1"], ["b2", "second 2"]]},
        {"malformed": "m"},
    ]);
    let sequences = produce(&kinesis.emulator.endpoint, "kpl", &puts);
    let [first, plain, second, malformed] = &sequences[..] else { panic!("four records put: {sequences:?}") };

    let ws = Workspace::new();
    // BatchSize 4: batches end inside aggregates, so checkpoints do too. The
    // malformed record's data is not text: `inspect` fails it, and with no
    // retries it goes to failures/, whole.
    let extra = "StartingPosition = \"TRIM_HORIZON\"\nBatchSize = 4\nDeaggregateRecords = true\n\
                 FunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumRetryAttempts = 0\n\
                 [EventSource.DestinationConfig.OnFailure]\nDestination = \"failures\"";
    ws.deploy("split", "inspect", &kinesis.manifest("kpl", extra));
    let host = Host::start(&ws);
    let shard = "shardId-000000000000";
    let user = |sequence: &str, sub: u32, key: &str, text: &str| (format!("{shard}:{sequence}:{sub}"), key.to_owned(), text.to_owned());
    let expected = vec![
        user(first, 0, "a0", "first 0"),
        user(first, 1, "a1", "first 1"),
        user(first, 2, "a0", "first 2"),
        user(first, 3, "a3", "first 3"),
        user(first, 4, "a4", "first 4"),
        (format!("{shard}:{plain}"), "p".to_owned(), "plain".to_owned()),
        user(second, 0, "b0", "second 0"),
        user(second, 1, "b1", "second 1"),
        user(second, 2, "b2", "second 2"),
    ];
    let got = wait_for("every user record handled", || {
        let got = seen(&handled(&host, "split"));
        (got.len() >= expected.len()).then_some(got)
    });
    assert_eq!(got, expected);

    // The malformed aggregate: one plain record, warned about, given up on by
    // the handler and sent on whole (one record, its own sequence number).
    let failures = ws.path().join("failures");
    let record: Value = wait_for("the malformed record's failure record", || {
        let file = std::fs::read_dir(&failures).ok()?.flatten().next()?;
        serde_json::from_str(&std::fs::read_to_string(file.path()).ok()?).ok()
    });
    let info = &record["KinesisBatchInfo"];
    assert_eq!((info["startSequenceNumber"].as_str(), info["batchSize"].as_u64()), (Some(malformed.as_str()), Some(1)), "{record}");
    let log = host.log_text();
    assert!(log.contains("starts as a KPL aggregate but its MD5 digest does not match its body"), "{log}");
    // Past everything: the checkpoint is the malformed record's.
    let f = wait_for("the checkpoint past the malformed record", || {
        host.function("split").filter(|f| f["shards"][0]["checkpoint"] == malformed.as_str())
    });
    assert_eq!(f["shards"][0]["records_discarded"], 1, "{f}");
}

#[test]
fn a_failure_inside_an_aggregate_is_retried_from_its_user_record_and_a_killed_host_resumes_there() {
    let ws = Workspace::new();
    ws.create_stream("kpl", 1);
    let example = std::fs::read_to_string(repo_root().join("examples/kpl/kpl.toml")).expect("examples/kpl/kpl.toml");
    let kpl_manifest = example.replace("Stream = \"orders\"", "Stream = \"kpl\"");
    assert!(kpl_manifest.contains("DeaggregateRecords = true"), "{kpl_manifest}");
    // `responder` answers its batch's first record's text: the first user record
    // fails the third ($ITEM2 is its `<sequence>:2`); the retry starts at the
    // third, which raises, and goes on raising.
    ws.deploy("agg", "responder", &kpl_manifest);
    let host = Host::start(&ws);
    host.wait_state("agg", "running");
    let endpoint = format!("http://{}", host.admin);
    let puts = json!([
        {"aggregate": [
            ["k", r#"{"batchItemFailures":[{"itemIdentifier":"$ITEM2"}]}"#],
            ["k", "raise? not yet: one"],
            ["k", "raise"],
            ["k", "three"],
            ["k", "four"],
        ]},
    ]);
    let sequences = produce(&endpoint, "kpl", &puts);
    let aggregate = &sequences[0];

    // Checkpointed after user record 1, and stuck on user record 2.
    let expected_checkpoint = format!("{aggregate}:1");
    wait_for("the checkpoint inside the aggregate, and the retry raising", || {
        let f = host.function("agg")?;
        let raised = host.log_text().contains("raised, as the record asked");
        (f["shards"][0]["checkpoint"] == expected_checkpoint.as_str() && raised).then_some(())
    });
    let answers = host.handler_messages("agg");
    assert!(
        answers.iter().any(|m| m.contains(&format!(r#""itemIdentifier":"{aggregate}:2""#))),
        "the first invocation named user record 2: {answers:?}"
    );
    host.kill();

    // A handler that takes anything, in its place; the host started again.
    ws.write_component("agg", "inspect");
    let host = Host::start(&ws);
    let got = wait_for("the rest of the aggregate handled", || {
        let got = seen(&handled(&host, "agg"));
        got.iter().any(|(_, _, text)| text == "four").then_some(got)
    });
    let shard = "shardId-000000000000";
    assert_eq!(
        got,
        [2, 3, 4].map(|sub| (format!("{shard}:{aggregate}:{sub}"), "k".to_owned(), ["raise", "three", "four"][sub - 2].to_owned())),
        "resumed at user record 2: none before it again, none skipped"
    );
    wait_for("the checkpoint at the aggregate's last user record", || {
        host.function("agg").filter(|f| f["shards"][0]["checkpoint"] == format!("{aggregate}:4").as_str())
    });
}
