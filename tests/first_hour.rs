//! What a new user runs into in the first hour, each found by one: two hosts on
//! one data directory, a typo in a local stream's name, a shard stuck retrying
//! a bad record while everything looks green.

use std::process::Command;

use eddy_tests::browser::rendered_page;
use eddy_tests::*;
use serde_json::Value;

/// A second `eddy run` on the same data directory, or the same functions folder,
/// refuses to start and names the first; `eddy status` finds the first on its
/// port (not the default) through the data directory.
#[test]
fn a_second_host_is_refused_and_status_finds_the_first() {
    let ws = Workspace::with_function("s", 1, "inspect", "inspect", "");
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");

    let second = eddy(&["run", "--admin", "127.0.0.1:0"], ws.path());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second host must not run: {stderr}");
    assert!(stderr.contains("the data directory .eddy is in use by another eddy run (pid "), "{stderr}");
    assert!(stderr.contains(&format!("admin http://{}", host.admin)), "names the first host's admin port: {stderr}");

    let other_data = ws.path().join("other-data");
    let second = eddy(&["run", "--admin", "127.0.0.1:0", "--data-dir", other_data.to_str().expect("utf-8")], ws.path());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second host must not run: {stderr}");
    assert!(stderr.contains("is watched by another eddy run (pid "), "{stderr}");

    // No --admin and no EDDY_ADMIN_ADDR: the data directory says where the host is.
    let out = Command::new(eddy_bin())
        .args(["status", "--json"])
        .current_dir(ws.path())
        .env_remove("EDDY_ADMIN_ADDR")
        .output()
        .expect("eddy status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(report["functions"][0]["name"], "inspect", "{report}");

    // Once the first host is gone, a new one may start on the same data.
    assert!(host.stop().success());
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
}

/// A local stream that does not exist is not created by a typo: the function
/// fails, naming the streams there are and the nearest name, and starts once
/// the stream exists. `CreateStream = true` creates it.
#[test]
fn a_missing_local_stream_is_an_error_that_names_the_nearest() {
    let ws = Workspace::new();
    ws.create_stream("sales", 1);
    ws.create_stream("orders", 1);
    ws.deploy("typo", "inspect", "[EventSource]\nType = \"Local\"\nStream = \"salse\"\n");
    ws.deploy("made", "inspect", "[EventSource]\nType = \"Local\"\nStream = \"fresh\"\nCreateStream = true\n");
    let host = Host::start(&ws);
    let failed = host.wait_state("typo", "failed");
    let error = failed["error"].as_str().unwrap_or_default();
    // ("fresh" joins the list once `made` has created it.)
    assert!(error.contains("no local stream named \"salse\" (did you mean \"sales\"?); the local streams are "), "{failed}");
    assert!(error.contains("orders, sales; create it with `eddy stream create salse`"), "{failed}");
    host.wait_state("made", "running");
    let out = eddy(&["stream", "list"], ws.path());
    let streams = String::from_utf8_lossy(&out.stdout);
    assert!(streams.contains("fresh") && !streams.contains("salse"), "{streams}");

    // The function waits for its stream: created now, it starts and reads it.
    ws.create_stream("salse", 1);
    host.wait_state("typo", "running");
    host.put("salse", "k", &["found it".to_owned()]);
    wait_for("the record", || host.handler_messages("typo").iter().any(|m| m.contains("found it")).then_some(()));
}

/// A batch that keeps failing (Lambda's default MaximumRetryAttempts = -1)
/// holds its shard: `/status`, `eddy status`, `/metrics` and the status page
/// say so, with the attempt, since when, and the last error.
#[test]
fn a_shard_stuck_on_a_failing_batch_shows_as_retrying() {
    let ws = Workspace::with_function("s", 1, "stuck", "responder", "FunctionResponseTypes = [\"ReportBatchItemFailures\"]");
    let host = Host::start(&ws);
    host.wait_state("stuck", "running");
    let before = store_now_ms();
    // The responder answers with its record's text: not JSON fails the batch.
    host.put("s", "k", &["this is not a response".to_owned()]);
    let shard = wait_for("the shard to retry twice", || {
        let function = host.function("stuck")?;
        let shard = function["shards"].as_array()?.first()?.clone();
        (shard["state"] == "retrying" && shard["next_attempt"].as_u64()? >= 3).then_some(shard)
    });
    assert_eq!(shard["max_attempts"], Value::Null, "no retry limit: {shard}");
    let since = shard["retrying_since_ms"].as_u64().expect("since");
    assert!(since >= before && since <= store_now_ms(), "{shard}");
    assert!(shard["last_error"].as_str().is_some_and(|e| e.contains("not valid JSON")), "{shard}");
    assert_eq!(host.function("stuck").expect("listed")["state"], "running", "the mapping itself runs");

    let out = eddy(&["status", "--admin", &host.admin], ws.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stuck  running, 1 shard RETRYING"), "{text}");
    assert!(text.contains("RETRYING attempt ") && text.contains("(no retry limit: MaximumRetryAttempts = -1), since "), "{text}");

    let metrics = host.metrics();
    let attempt = metrics
        .lines()
        .find_map(|l| l.strip_prefix("eddy_retrying_attempt{function=\"stuck\",shard=\"shardId-000000000000\"} "))
        .and_then(|n| n.parse::<f64>().ok())
        .expect("eddy_retrying_attempt");
    assert!(attempt >= 2.0, "{metrics}");

    let page = rendered_page(&host, 3000);
    assert!(page.contains("running · retrying"), "the page marks the function: {page}");
    assert!(page.contains("retrying: attempt ") && page.contains("(no retry limit)"), "{page}");
}

fn store_now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
