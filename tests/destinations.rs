//! On-failure destinations on moto's server (SQS, SNS, S3), started by the tests:
//! for each way a batch is given up on (retries exhausted after an exception,
//! after batch item failures, after an invalid response; records too old), the
//! record read back with the SDK is checked key by key against the shape Lambda
//! writes, from the local stream and from kinesis-mock. (DynamoDB Local's are in
//! `dynamodb.rs`.) Also: the role's destination grants, checked when the mapping
//! starts; a destination that refuses holds the shard, in status, until it takes
//! the record; and the mapping's LastProcessingResult.
//!
//! The handler is `responder`: each record's text says what it answers (`raise`
//! throws).

use std::time::Duration;

use eddy_tests::destinations::{Expected, Moto, check_failure_record, queue_arn};
use eddy_tests::kinesis::Kinesis;
use eddy_tests::{Host, Workspace, manifest, wait_for};
use serde_json::{Value, json};

const LOCAL_SHARD: &str = "shardId-000000000000";

fn local_arn(stream: &str) -> String {
    format!("arn:aws:kinesis:local:000000000000:stream/{stream}")
}

fn texts(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

/// The sequence numbers of the records a put returned, in order.
fn sequences(put: &Value) -> Vec<String> {
    put["Records"].as_array().expect("records").iter().map(|r| r["SequenceNumber"].as_str().expect("sequence").to_owned()).collect()
}

#[test]
fn failure_records_reach_sqs_sns_and_s3_as_lambda_writes_them() {
    let moto = Moto::start();
    let ws = Workspace::new();
    let raise_queue = moto.create_queue("raised");
    let item_topic = moto.create_topic("item-failures");
    let invalid_bucket = moto.create_bucket("invalid-responses");
    let batch_items = "FunctionResponseTypes = [\"ReportBatchItemFailures\"]\n";
    for stream in ["raises", "items", "invalid", "idle"] {
        ws.create_stream(stream, 1);
    }
    ws.deploy("raises", "responder", &manifest("raises", &format!("MaximumRetryAttempts = 1\n{}", moto.on_failure(&raise_queue))));
    // AWS's own case: 6 records in batches of 3, the last fails as a batch item
    // failure each time; 3 retries. AWS recorded approximateInvokeCount 4: the
    // attempt that checkpointed records 3 and 4 is the first of the 4.
    ws.deploy(
        "items",
        "responder",
        &manifest("items", &format!("BatchSize = 3\nMaximumRetryAttempts = 3\n{batch_items}{}", moto.on_failure(&item_topic))),
    );
    ws.deploy(
        "invalid",
        "responder",
        &manifest("invalid", &format!("MaximumRetryAttempts = 0\n{batch_items}{}", moto.on_failure(&invalid_bucket))),
    );
    ws.deploy("idle", "responder", &manifest("idle", ""));
    let host = Host::start(&ws);
    for name in ["raises", "items", "invalid", "idle"] {
        host.wait_state(name, "running");
    }

    let raised = sequences(&host.put("raises", "k", &texts(&["raise"])));
    let items = sequences(&host.put(
        "items",
        "k",
        &texts(&["{}", "{}", "{}", r#"{"batchItemFailures":[{"itemIdentifier":"$SEQ2"}]}"#, "{}", r#"{"batchItemFailures":[{"itemIdentifier":"$SEQ0"}]}"#]),
    ));
    let invalid = sequences(&host.put("invalid", "k", &texts(&[r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, "{}"])));

    let record = moto.messages("raised", 1).remove(0);
    check_failure_record(
        &record,
        &Expected {
            condition: "RetryAttemptsExhausted",
            function_error: Some(json!("Unhandled")),
            invoke_count: 2,
            batch_size: 1,
            start_sequence: Some(&raised[0]),
            stream_arn: &local_arn("raises"),
            shard: LOCAL_SHARD,
        },
    );
    assert!(record.get("payload").is_none(), "an SQS record has no payload unless asked: {record}");

    let record = moto.published("item-failures", 1).remove(0);
    check_failure_record(
        &record,
        &Expected {
            condition: "RetryAttemptsExhausted",
            function_error: Some(Value::Null),
            invoke_count: 4,
            batch_size: 1,
            start_sequence: Some(&items[5]),
            stream_arn: &local_arn("items"),
            shard: LOCAL_SHARD,
        },
    );

    let (key, record) = moto.objects("invalid-responses", 1).remove(0);
    check_failure_record(
        &record,
        &Expected {
            condition: "RetryAttemptsExhausted",
            function_error: Some(Value::Null),
            invoke_count: 1,
            batch_size: 2,
            start_sequence: Some(&invalid[0]),
            stream_arn: &local_arn("invalid"),
            shard: LOCAL_SHARD,
        },
    );
    // S3's record carries the batch's event, and its key Lambda's layout.
    let payload = &record["payload"]["Records"];
    assert_eq!(payload.as_array().map(Vec::len), Some(2), "{record}");
    assert_eq!(payload[1]["kinesis"]["sequenceNumber"], invalid[1].as_str());
    let uuid = host.function("invalid").expect("status")["uuid"].as_str().expect("the mapping's UUID").to_owned();
    let timestamp = record["timestamp"].as_str().unwrap_or_default();
    let prefix = format!(
        "aws/lambda/{uuid}/{LOCAL_SHARD}/{}/{}T{}-",
        timestamp[..10].replace('-', "/"),
        &timestamp[..10],
        timestamp[11..19].replace(':', ".")
    );
    assert!(key.starts_with(&prefix), "{key} does not start with {prefix}");

    // The shards moved on past what they gave up on, and say so.
    for (name, discarded) in [("raises", 1), ("items", 1), ("invalid", 2)] {
        let f = wait_for(&format!("{name}'s checkpoint"), || {
            host.function(name).filter(|f| eddy_tests::shard_total(f, "destination_delivered_events") == discarded)
        });
        assert_eq!(eddy_tests::shard_total(&f, "records_discarded"), discarded, "{f}");
        assert_eq!(f["shards"][0]["state"], "ok", "{f}");
    }
    // Lambda's LastProcessingResult: the last invocation threw, returned, or none ran.
    let result = |name: &str| host.function(name).expect("status")["last_processing_result"].clone();
    assert_eq!(result("raises"), "PROBLEM: Function call failed");
    assert_eq!(result("items"), "OK", "the function returned; its response failed a record");
    assert_eq!(result("idle"), "No records processed");
    let out = eddy_tests::eddy(&["status", "--admin", &host.admin], ws.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("last processing result: PROBLEM: Function call failed"), "{text}");
}

#[test]
fn records_too_old_go_to_the_destination_with_one_invocation_counted() {
    let moto = Moto::start();
    let ws = Workspace::new();
    let queue = moto.create_queue("aged");
    ws.create_stream("old", 1);
    // The records are put first and the function comes later, once they are
    // past MaximumRecordAgeInSeconds' minimum of 60 s: none is ever invoked.
    let host = Host::start(&ws);
    let put = sequences(&host.put("old", "k", &texts(&["{}", "{}", "{}"])));
    std::thread::sleep(Duration::from_secs(62));
    ws.deploy(
        "aged",
        "responder",
        &manifest("old", &format!("StartingPosition = \"TRIM_HORIZON\"\nMaximumRecordAgeInSeconds = 60\n{}", moto.on_failure(&queue))),
    );
    let record = moto.messages("aged", 1).remove(0);
    check_failure_record(
        &record,
        &Expected {
            condition: "RecordAgeExceeded",
            function_error: None,
            invoke_count: 1,
            batch_size: 3,
            start_sequence: Some(&put[0]),
            stream_arn: &local_arn("old"),
            shard: LOCAL_SHARD,
        },
    );
    let f = host.function("aged").expect("status");
    assert_eq!(eddy_tests::shard_total(&f, "invocations"), 0, "never invoked: {f}");
}

#[test]
fn kinesis_records_from_kinesis_mock_reach_sqs_after_an_exception_and_after_item_failures() {
    let kinesis = Kinesis::start();
    let moto = Moto::start();
    let ws = Workspace::new();
    kinesis.create_stream("thrown", 1);
    kinesis.create_stream("failing", 1);
    let thrown_queue = moto.create_queue("thrown");
    let failing_queue = moto.create_queue("failing");
    ws.deploy("thrown", "responder", &kinesis.manifest("thrown", &format!("MaximumRetryAttempts = 2\n{}", moto.on_failure(&thrown_queue))));
    ws.deploy(
        "failing",
        "responder",
        &kinesis.manifest(
            "failing",
            &format!("FunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumRetryAttempts = 1\n{}", moto.on_failure(&failing_queue)),
        ),
    );
    let host = Host::start(&ws);
    host.wait_state("thrown", "running");
    host.wait_state("failing", "running");
    let shard = kinesis.put("thrown", &[("k".into(), "raise".into())]).remove(0);
    // A batch of two whose second record fails each time: the first attempt
    // checkpoints the first record; the second is retried once, then given up on.
    kinesis.put(
        "failing",
        &[("k".into(), r#"{"batchItemFailures":[{"itemIdentifier":"$SEQ1"}]}"#.into()), ("k".into(), r#"{"batchItemFailures":[{"itemIdentifier":"$SEQ0"}]}"#.into())],
    );

    let record = moto.messages("thrown", 1).remove(0);
    check_failure_record(
        &record,
        &Expected {
            condition: "RetryAttemptsExhausted",
            function_error: Some(json!("Unhandled")),
            invoke_count: 3,
            batch_size: 1,
            start_sequence: None,
            stream_arn: &kinesis.stream_arn("thrown"),
            shard: &shard,
        },
    );
    let record = moto.messages("failing", 1).remove(0);
    check_failure_record(
        &record,
        &Expected {
            condition: "RetryAttemptsExhausted",
            function_error: Some(Value::Null),
            invoke_count: 2,
            batch_size: 1,
            start_sequence: None,
            stream_arn: &kinesis.stream_arn("failing"),
            shard: &shard,
        },
    );
    assert!(moto.no_more_messages("failing", Duration::from_secs(2)), "one record per discarded batch");
}

#[test]
fn a_role_must_grant_the_destination_and_the_mapping_does_not_start_without() {
    let moto = Moto::start();
    let ws = Workspace::new();
    let queue = moto.create_queue("guarded");
    let bucket = moto.create_bucket("guarded-bucket");
    ws.create_stream("allowed", 1);
    let source = "{\"Effect\":\"Allow\",\"Action\":\"kinesis:*\",\"Resource\":\"*\"}";
    ws.write_role("no-send", &format!("{{\"Statement\":[{source}]}}"));
    ws.write_role(
        "sends",
        &format!("{{\"Statement\":[{source},{{\"Effect\":\"Allow\",\"Action\":\"sqs:SendMessage\",\"Resource\":\"{queue}\"}}]}}"),
    );
    // PutObject alone is not enough: Lambda also needs s3:ListBucket.
    ws.write_role(
        "puts-only",
        &format!("{{\"Statement\":[{source},{{\"Effect\":\"Allow\",\"Action\":\"s3:PutObject\",\"Resource\":\"{bucket}/*\"}}]}}"),
    );
    ws.deploy("denied", "responder", &format!("Role = \"no-send\"\n{}", manifest("denied", &moto.on_failure(&queue))));
    ws.deploy("allowed", "responder", &format!("Role = \"sends\"\n{}", manifest("allowed", &format!("MaximumRetryAttempts = 0\n{}", moto.on_failure(&queue)))));
    ws.deploy("s3-denied", "responder", &format!("Role = \"puts-only\"\n{}", manifest("s3denied", &moto.on_failure(&bucket))));
    let host = Host::start(&ws);
    let denied = host.wait_state("denied", "failed");
    let error = denied["error"].as_str().unwrap_or_default();
    assert!(error.contains("on-failure destination") && error.contains("sqs:SendMessage") && error.contains(&queue), "{error}");
    let denied = host.wait_state("s3-denied", "failed");
    let error = denied["error"].as_str().unwrap_or_default();
    assert!(error.contains("s3:ListBucket"), "{error}");
    let audit = wait_for("the audit line", || {
        host.lines().into_iter().find(|l| l["target"] == "audit" && l["fields"]["action"] == "sqs:SendMessage")
    });
    assert_eq!(audit["fields"]["resource"], queue.as_str());

    // `eddy run --check` finds the same before anything runs.
    let out = eddy_tests::eddy(&["run", "--check", "--functions", "functions", "--data-dir", ".eddy-check"], ws.path());
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("cannot write to the on-failure destination") && report.contains("sqs:SendMessage"), "{report}");

    host.wait_state("allowed", "running");
    host.put("allowed", "k", &texts(&["raise"]));
    let record = moto.messages("guarded", 1).remove(0);
    assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
}

#[test]
fn a_destination_that_refuses_holds_the_shard_in_status_until_it_takes_the_record() {
    let moto = Moto::start();
    let ws = Workspace::new();
    // The queue does not exist yet: every send is refused.
    let queue = queue_arn("late");
    ws.create_stream("held", 1);
    ws.deploy("held", "responder", &manifest("held", &format!("MaximumRetryAttempts = 0\n{}", moto.on_failure(&queue))));
    let host = Host::start(&ws);
    host.wait_state("held", "running");
    host.put("held", "k", &texts(&["raise", "{}"]));
    let f = wait_for("the shard to show the refusal", || {
        host.function("held").filter(|f| f["shards"][0]["state"] == "destination_refused" && f["shards"][0]["attempts"].as_u64() >= Some(2))
    });
    assert!(f["shards"][0]["last_error"].as_str().is_some_and(|e| e.contains("on-failure destination")), "{f}");
    assert!(f["shards"][0]["checkpoint"].is_null(), "nothing is checkpointed past a record not yet sent: {f}");
    assert_eq!(eddy_tests::shard_total(&f, "records_discarded"), 0);
    let out = eddy_tests::eddy(&["status", "--admin", &host.admin], ws.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DESTINATION REFUSED"), "{text}");

    moto.create_queue("late");
    let record = moto.messages("late", 1).remove(0);
    assert_eq!(record["KinesisBatchInfo"]["batchSize"], 2);
    let f = wait_for("the shard to move on", || {
        host.function("held").filter(|f| f["shards"][0]["state"] == "ok" && eddy_tests::shard_total(f, "records_discarded") == 2)
    });
    assert!(f["shards"][0]["checkpoint"].is_string(), "{f}");
}
