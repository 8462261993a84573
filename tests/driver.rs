//! `eddy test`: real components run through the real mapping over scenarios of
//! records on a simulated clock. Each scenario's report (`--json`) must show
//! what the mapping rules make of it: partial failures retried from the failed
//! record, a failing record bisected, retried and discarded with its failure
//! record, tumbling windows handing their state on and closing with a final
//! invocation, all at their simulated times.

use serde_json::Value;

use eddy_tests::*;

/// An example scenario of examples/scenarios/: its manifest and its records.
fn scenario(name: &str) -> (String, String) {
    let dir = repo_root().join("examples/scenarios");
    let read = |file: String| std::fs::read_to_string(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    (read(format!("{name}.toml")), read(format!("{name}.jsonl")))
}

/// Runs `eddy test FUNCTION` in `ws` with `records` as the scenario; the exit
/// status, the JSON report (Null when none was printed) and stderr.
fn eddy_test(ws: &Workspace, function: &str, records: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let scenario = ws.path().join("scenario.jsonl");
    std::fs::write(&scenario, records).expect("scenario");
    let mut args = vec!["test", function, "--records", "scenario.jsonl", "--json"];
    args.extend_from_slice(extra);
    let out = eddy(&args, ws.path());
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// (simulated ms, records, outcome) of each invocation.
fn invocations(report: &Value) -> Vec<(u64, Vec<String>, String)> {
    report["invocations"]
        .as_array()
        .expect("invocations")
        .iter()
        .map(|i| {
            let records = i["records"].as_array().expect("records").iter().map(|r| r.as_str().unwrap_or_default().to_owned()).collect();
            (i["at_ms"].as_u64().unwrap_or(u64::MAX), records, i["outcome"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn retries_bisection_and_discards_play_out_on_the_simulated_clock() {
    let ws = Workspace::new();
    // examples/scenarios/retries: `responder` answers its batch's first
    // record's text: the first batch fails its second record; 30 s later a
    // record that raises comes, with one that succeeds after it.
    let (manifest, records) = scenario("retries");
    ws.deploy("orders", "responder", &manifest);
    let (code, report, stderr) = eddy_test(&ws, "orders", &records, &[]);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report["ended"], "done");
    let raised = "failure: the handler returned an error: raised, as the record asked";
    let seen: Vec<(Vec<String>, String)> = invocations(&report).into_iter().map(|(_, r, o)| (r, o)).collect();
    assert_eq!(
        seen,
        [
            (strings(&["1", "2", "3"]), "partial failure at 2".to_owned()),
            (strings(&["2", "3"]), "success".to_owned()),
            // The failing batch is halved; the half that fails is retried twice
            // more, then given up on; the other half succeeds.
            (strings(&["4", "5"]), raised.to_owned()),
            (strings(&["4"]), raised.to_owned()),
            (strings(&["4"]), raised.to_owned()),
            (strings(&["4"]), raised.to_owned()),
            (strings(&["5"]), "success".to_owned()),
        ]
    );
    let times: Vec<u64> = invocations(&report).iter().map(|(at, _, _)| *at).collect();
    assert!(times[..2].iter().all(|&t| t < 30_000) && times[2..].iter().all(|&t| t >= 30_000), "{times:?}");
    let checkpoints: Vec<&str> = report["checkpoints"].as_array().expect("checkpoints").iter().filter_map(|c| c["checkpoint"].as_str()).collect();
    assert_eq!(checkpoints, ["1", "3", "4", "5"]);
    let failure = &report["failure_records"][0];
    assert_eq!(report["failure_records"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(failure["KinesisBatchInfo"]["startSequenceNumber"], "4");
    assert_eq!(failure["KinesisBatchInfo"]["endSequenceNumber"], "4");
    assert_eq!(failure["requestContext"]["condition"], "RetryAttemptsExhausted");
    // The simulated clock: the failure record carries the simulated time, on
    // the default start (2030-01-01T00:00:00Z).
    assert!(failure["timestamp"].as_str().is_some_and(|t| t.starts_with("2030-01-01T00:00:30")), "{failure}");
    assert!(!ws.path().join("failures").exists(), "the real destination is left alone");
}

#[test]
fn tumbling_windows_hand_their_state_on_and_close_in_simulated_time() {
    let ws = Workspace::new();
    let (manifest, records) = scenario("windows");
    ws.deploy("sales", "totals", &manifest);
    let (code, report, stderr) = eddy_test(&ws, "sales", &records, &[]);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    let windows: Vec<(i64, String, bool)> = report["invocations"]
        .as_array()
        .expect("invocations")
        .iter()
        .map(|i| {
            let w = &i["window"];
            (w["start_ms"].as_i64().unwrap_or(-1), w["state"].as_str().unwrap_or_default().to_owned(), w["is_final"] == true)
        })
        .collect();
    assert_eq!(
        windows,
        [
            (0, "{}".to_owned(), false),
            (0, r#"{"alice":1.0}"#.to_owned(), false),
            (0, r#"{"alice":1.0,"bob":2.0}"#.to_owned(), false),
            (0, r#"{"alice":5.0,"bob":2.0}"#.to_owned(), true),
            (60_000, "{}".to_owned(), false),
            (60_000, r#"{"alice":8.0}"#.to_owned(), true),
        ]
    );
    // The final invocations come once each window's time is over.
    let finals: Vec<u64> = invocations(&report).iter().filter(|(_, r, _)| r.is_empty()).map(|(at, _, _)| *at).collect();
    assert!(finals.len() == 2 && finals[0] >= 60_000 && finals[1] >= 120_000, "{finals:?}");
    // Two minutes of windows, simulated: far less real time than that.
    let (simulated, wall) = (report["simulated_ms"].as_u64().unwrap_or(0), report["wall_ms"].as_u64().unwrap_or(u64::MAX));
    assert!(simulated >= 120_000 && wall < simulated / 4, "simulated {simulated} ms, real {wall} ms");
}

#[test]
fn a_run_that_cannot_finish_stops_at_its_limit_and_bad_scenarios_are_refused() {
    let ws = Workspace::new();
    ws.deploy("stuck", "responder", "[EventSource]\nType = \"Local\"\nStream = \"s\"\n");
    // It raises for ever, and the mapping retries for ever.
    let (code, report, stderr) = eddy_test(&ws, "stuck", "{\"PartitionKey\":\"k\",\"Text\":\"raise\"}\n", &["--max-invocations", "5"]);
    assert_eq!(code, Some(1), "{report}\n{stderr}");
    assert_eq!(report["ended"], "invocation_limit");
    assert!(report["invocations"].as_array().is_some_and(|i| i.len() >= 5), "{report}");
    assert_eq!(report["shards"][0]["checkpoint"], Value::Null, "nothing is done: {report}");

    let (code, report, stderr) = eddy_test(&ws, "stuck", "{\"PartitionKey\":\"k\",\"Text\":\"x\"}\n{\"PartitionKey\":\"k\",\"Text\":\"y\",\"At\":-2}\n", &[]);
    assert_eq!((code, report), (Some(1), Value::Null));
    assert!(stderr.contains("scenario.jsonl") && stderr.contains("line 2: At must be a number of seconds"), "{stderr}");
    ws.write_manifest("stuck", "[EventSource]\nType = \"DynamoDB\"\nTable = \"orders\"\n");
    let (code, _, stderr) = eddy_test(&ws, "stuck", "{\"PartitionKey\":\"k\",\"Text\":\"x\"}\n", &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("reads a DynamoDB stream: eddy test puts Kinesis records"), "{stderr}");
    let (code, _, stderr) = eddy_test(&ws, "missing", "{\"PartitionKey\":\"k\",\"Text\":\"x\"}\n", &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("missing.wasm"), "{stderr}");
}
