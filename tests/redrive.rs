//! `eddy redrive`: the batches a function gave up on, read back from its
//! on-failure destination (a local directory; an SQS queue on moto), fetched
//! again from the source (a local stream; kinesis-mock) and invoked with the
//! function's new version; what succeeded is removed from the destination, and
//! records the source no longer holds are reported, not skipped.

use std::time::Duration;

use eddy_tests::destinations::Moto;
use eddy_tests::kinesis::Kinesis;
use eddy_tests::*;

/// `eddy redrive` in the workspace: (exit success, stdout, stderr).
fn redrive(ws: &Workspace, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["redrive"];
    all.extend_from_slice(args);
    let out = std::process::Command::new(eddy_bin())
        .args(&all)
        .current_dir(ws.path())
        .envs(emulators::AWS_ENV)
        .output()
        .expect("eddy redrive runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn discarded(host: &Host, function: &str) -> u64 {
    host.function(function).and_then(|f| f["shards"][0]["records_discarded"].as_u64()).unwrap_or(0)
}

#[test]
fn a_discarded_batch_is_fetched_again_from_a_local_stream_and_invoked_with_the_mended_function() {
    let ws = Workspace::with_function(
        "orders",
        1,
        "orders",
        "responder",
        "MaximumRetryAttempts = 0\n[EventSource.DestinationConfig.OnFailure]\nDestination = \"failures\"",
    );
    let host = Host::start(&ws);
    host.wait_state("orders", "running");
    // `responder` answers its batch's first text; `raise` raises: the batch of
    // both is given up on at once, and its failure record written to failures/.
    host.put("orders", "k", &["raise".to_owned(), "{}".to_owned()]);
    wait_for("the batch discarded", || (discarded(&host, "orders") == 2).then_some(()));
    let failures = ws.path().join("failures");
    let written: Vec<std::path::PathBuf> = std::fs::read_dir(&failures).expect("failures/").flatten().map(|e| e.path()).collect();
    assert_eq!(written.len(), 1, "{written:?}");
    // A failure record of records the stream does not hold (as after retention).
    let text = std::fs::read_to_string(&written[0]).expect("the failure record");
    let mut gone: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    gone["KinesisBatchInfo"]["startSequenceNumber"] = "1000".into();
    gone["KinesisBatchInfo"]["endSequenceNumber"] = "1001".into();
    std::fs::write(failures.join("9999999999999-gone.json"), gone.to_string()).expect("write");

    let (ok, out, _) = redrive(&ws, &["orders", "--dry-run"]);
    assert!(!ok, "a record no longer held fails the command: {out}");
    assert!(out.contains("shardId-000000000000 1..2 (2 records, RetryAttemptsExhausted): would be redriven (2 records fetched)"), "{out}");

    // The function mended (here: another handler that takes anything), then redriven.
    ws.write_component("orders", "inspect");
    let (ok, out, log) = redrive(&ws, &["orders"]);
    assert!(!ok, "{out}");
    assert!(out.contains("1..2 (2 records, RetryAttemptsExhausted): succeeded; the failure record is moved into redriven/"), "{out}");
    assert!(out.contains("1000..1001 (2 records, RetryAttemptsExhausted): not redriven: the stream no longer holds them"), "{out}");
    assert!(out.contains("redriven: 1 succeeded, 0 failed, 1 no longer held by the source"), "{out}");
    assert!(log.contains("shardId-000000000000:1 k") && log.contains("] raise"), "the mended handler saw the first record: {log}");
    assert!(log.contains("shardId-000000000000:2 k") && log.contains("] {}"), "and the second: {log}");
    assert!(failures.join("redriven").join(written[0].file_name().expect("name")).is_file(), "moved aside");
    assert!(!written[0].exists());
    // Run again: only the record no longer held is left.
    let (_, out, _) = redrive(&ws, &["orders"]);
    assert!(out.contains("redriven: 0 succeeded, 0 failed, 1 no longer held by the source"), "{out}");
}

#[test]
fn a_batch_given_up_on_a_kinesis_stream_is_redriven_from_its_sqs_queue_and_the_message_deleted() {
    let kinesis = Kinesis::start();
    let moto = Moto::start();
    let ws = Workspace::new();
    kinesis.create_stream("thrown", 1);
    let queue = moto.create_queue("thrown-dlq");
    let bucket = moto.create_bucket("thrown-failures");
    ws.deploy("thrown", "responder", &kinesis.manifest("thrown", &format!("MaximumRetryAttempts = 0\n{}", moto.on_failure(&queue))));
    // The same stream, given up on into S3, whose failure records carry the batch.
    ws.deploy("bucketed", "responder", &kinesis.manifest("thrown", &format!("MaximumRetryAttempts = 0\n{}", moto.on_failure(&bucket))));
    let host = Host::start(&ws);
    host.wait_state("thrown", "running");
    host.wait_state("bucketed", "running");
    kinesis.put("thrown", &[("k".into(), "raise".into())]);
    wait_for("the batch discarded", || (discarded(&host, "thrown") == 1 && discarded(&host, "bucketed") == 1).then_some(()));

    // Redriven while the function still raises: it fails again, and the
    // message is put back in the queue.
    let (ok, out, _) = redrive(&ws, &["thrown"]);
    assert!(!ok);
    assert!(out.contains("failed again: the batch fails whole, as a function error"), "{out}");

    ws.write_component("thrown", "inspect");
    let (ok, out, log) = redrive(&ws, &["thrown", "--from", &queue]);
    assert!(ok, "{out}\n{log}");
    assert!(out.contains("succeeded; the failure record is deleted from the queue"), "{out}");
    assert!(log.contains(" k [") && log.contains("] raise"), "the mended handler saw the record: {log}");
    assert!(moto.no_more_messages("thrown-dlq", Duration::from_secs(2)), "the message was deleted");

    // From S3: the batch is the failure record's payload; the object stays.
    ws.write_component("bucketed", "inspect");
    let (ok, out, log) = redrive(&ws, &["bucketed"]);
    assert!(ok, "{out}\n{log}");
    assert!(out.contains("succeeded; the failure record is left where it is"), "{out}");
    assert!(log.contains("] raise"), "the mended handler saw the record: {log}");
}
