//! `eddy invoke`, `eddy generate-event`, and how the loader refuses what is not a
//! handler.

use eddy_tests::*;
use serde_json::Value;

#[test]
fn json_world_handler_gets_lambdas_seed_event_and_sees_the_decoded_text() {
    let Invoked { ok, response, log, .. } = invoke(&component("inspect"), &fixture("kinesis-event.json"), &[]);
    assert!(ok, "{log}");
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert!(log.contains("Hello, this is a test."), "{log}");
    assert!(log.contains("This is only a test."), "{log}");
    // The handler logs each record's eventID: the event reached it unchanged.
    assert!(log.contains("shardId-000000000006:49590338271490256608559692538361571095921575989136588898"), "{log}");
}

#[test]
fn typed_world_handler_gets_the_seed_event_decoded_into_records() {
    // Totals expects JSON data; the seed's records are plain text, so it reports
    // both as batch item failures, by their sequence numbers.
    let Invoked { code, response, log, .. } = invoke(&component("totals"), &fixture("kinesis-event.json"), &[]);
    assert_eq!(code, Some(2), "the batch fails at a sequence number: {log}");
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "49590338271490256608559692538361571095921575989136588898"},
            {"itemIdentifier": "49590338271490256608559692540925702759324208523137515618"}
        ]})
    );
    assert!(log.contains("2 records"), "{log}");
}

#[test]
fn generated_events_invoke_handlers() {
    let ws = Workspace::new();
    let out = eddy(&["generate-event", "kinesis", "--data", "{\"amount\": 4}", "--partition-key", "p"], ws.path());
    assert!(out.status.success());
    let event = ws.path().join("event.json");
    std::fs::write(&event, &out.stdout).expect("write event");
    let Invoked { ok, response, log, .. } = invoke(&component("totals"), &event, &[]);
    assert!(ok, "{log}");
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert!(log.contains("totals p=4"), "{log}");

    let out = eddy(&["generate-event", "dynamodb"], ws.path());
    let dynamodb: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = dynamodb["Records"].as_array().expect("records").iter()
        .filter_map(|r| r["eventName"].as_str()).collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    // SizeBytes as DynamoDB computes it for Lambda's sample items.
    let sizes: Vec<u64> = dynamodb["Records"].as_array().expect("records").iter()
        .filter_map(|r| r["dynamodb"]["SizeBytes"].as_u64()).collect();
    assert_eq!(sizes, [26, 59, 38]);
}

#[test]
fn function_errors_are_reported_with_their_kind() {
    let ws = Workspace::new();
    for (data, kind, words) in [
        ("loop", "timeout", "timed out after 1s"),
        ("oom", "out_of_memory", "memory limit of 128 MB"),
        ("trap", "trap", "unreachable"),
        ("error", "handler_error", "asked to fail"),
    ] {
        let out = eddy(&["generate-event", "kinesis", "--data", data], ws.path());
        let event = ws.path().join(format!("{data}.json"));
        std::fs::write(&event, &out.stdout).expect("write");
        let Invoked { ok, response, .. } = invoke(&component("hostile"), &event, &["--timeout", "1"]);
        assert!(!ok, "{data} must fail");
        assert_eq!(response["errorType"], kind, "{data}: {response}");
        let message = response["errorMessage"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{data}: {message}");
    }
}

#[test]
fn what_is_not_a_handler_component_is_refused_with_what_was_expected() {
    let ws = Workspace::new();
    let write = |name: &str, bytes: &[u8]| {
        let path = ws.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let cases = [
        (write("text.wasm", b"hello, not wasm"), "not a WebAssembly file"),
        (write("core.wasm", &wat::parse_str("(module (func (export \"f\")))").expect("wat")), "core WebAssembly module without a `component-type` section"),
        (
            write(
                "other.wasm",
                &wat::parse_str(
                    r#"(component
                        (core module $m (func (export "f")))
                        (core instance $i (instantiate $m))
                        (func $f (canon lift (core func $i "f")))
                        (export "something-else" (func $f)))"#,
                )
                .expect("wat"),
            ),
            "exports `something-else`; a handler must export `eddy:handler/typed@0.1.0`",
        ),
    ];
    for (path, expected) in cases {
        let Invoked { ok, log, .. } = invoke(&path, &fixture("kinesis-event.json"), &[]);
        assert!(!ok);
        assert!(log.contains(expected), "{}: {log}", path.display());
    }
}

#[test]
fn a_core_module_built_with_wit_bindgen_is_made_a_component_on_load() {
    // examples/build.sh keeps the core module as the compiler wrote it, before
    // `wasm-tools component new`: the host wraps it itself.
    let Invoked { ok, response, log, .. } = invoke(&component("inspect.core"), &fixture("kinesis-event.json"), &[]);
    assert!(ok, "{log}");
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert!(log.contains("Hello, this is a test."), "{log}");
}

#[test]
fn invoke_runs_a_handler_under_the_role_it_is_given_and_none_by_default() {
    let ws = Workspace::new();
    ws.create_stream("out", 1);
    let out = eddy(&["generate-event", "kinesis", "--data", "put out", "--data", "env"], ws.path());
    let event = ws.path().join("event.json");
    std::fs::write(&event, &out.stdout).expect("write");
    let data_dir = ws.path().join(".eddy");
    let data_dir = data_dir.to_str().expect("utf-8");

    // No role: the put is denied in IAM's words, and the handler goes on.
    let denied = invoke(&component("hostile"), &event, &["--data-dir", data_dir, "--env", "MODE=test"]);
    assert!(denied.ok, "{}", denied.log);
    assert!(
        denied.log.contains("is not authorized to perform: kinesis:PutRecord on resource: arn:aws:kinesis:local:000000000000:stream/out"),
        "{}",
        denied.log
    );
    assert!(denied.log.contains("probe env: MODE=test"), "{}", denied.log);

    // A role that grants it: the record lands on the local stream.
    let role = ws.path().join("writer.json");
    std::fs::write(&role, r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:PutRecord","Resource":"arn:aws:kinesis:local:*:stream/out"}]}"#)
        .expect("role");
    let granted = invoke(&component("hostile"), &event, &["--data-dir", data_dir, "--role", role.to_str().expect("utf-8")]);
    assert!(granted.ok, "{}", granted.log);
    assert!(granted.log.contains("probe put: put on shardId-000000000000 at 1"), "{}", granted.log);

    // A broken policy file is refused before anything runs.
    std::fs::write(&role, r#"{"Statement":[{"Effect":"Allow","Action":"*"}]}"#).expect("role");
    let refused = invoke(&component("hostile"), &event, &["--role", role.to_str().expect("utf-8")]);
    assert!(!refused.ok);
    assert!(refused.log.contains("neither Resource nor NotResource"), "{}", refused.log);
}

/// `eddy invoke` judges the response as the host does, with an exit code for
/// each end: 0 success, 1 a function error, 2 a failure at a sequence number,
/// 3 a response that fails the whole batch. An error prints as Lambda's
/// runtimes print it.
#[test]
fn invoke_judges_the_response_by_the_hosts_rules_with_an_exit_code_for_each() {
    let ws = Workspace::new();
    let cases: [(&str, i32, &str); 7] = [
        ("{}", 0, "the batch succeeds: all 2 records are done"),
        ("null", 0, "the batch succeeds"),
        (r#"{"batchItemFailures":[{"itemIdentifier":"$SEQ1"}]}"#, 2, "fails at sequence number $SEQ1 (record 2 of 2)"),
        (r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, 3, "fails whole, for its response"),
        (r#"{"batchItemFailures":[{"itemIdentifier":"12345"}]}"#, 3, "is not the sequence number of a record in the batch"),
        ("not json", 3, "not valid JSON"),
        ("raise", 1, "fails whole, as a function error"),
    ];
    for (i, (respond, code, words)) in cases.iter().enumerate() {
        let out = eddy(&["generate-event", "kinesis", "--data", respond, "--data", "{}"], ws.path());
        let event_text = String::from_utf8_lossy(&out.stdout).into_owned();
        let event: Value = serde_json::from_str(&event_text).expect("event JSON");
        let second = event["Records"][1]["kinesis"]["sequenceNumber"].as_str().expect("sequence").to_owned();
        let path = ws.path().join(format!("event-{i}.json"));
        std::fs::write(&path, &event_text).expect("write");
        let out = invoke(&component("responder"), &path, &[]);
        assert_eq!(out.code, Some(*code), "{respond}: {}{}", out.stdout, out.log);
        let words = words.replace("$SEQ1", &second);
        assert!(out.log.contains(&words), "{respond}: {}", out.log);
        if *code == 1 {
            assert_eq!(out.response["errorMessage"], "raised, as the record asked", "{}", out.stdout);
            assert_eq!(out.response["errorType"], "handler_error");
            assert_eq!(out.response["stackTrace"], serde_json::json!([]), "Lambda's three keys: {}", out.stdout);
        }
    }
}

/// `EDDY_PERF_MAP=1` names a handler's functions for Linux `perf` (README,
/// "Profiling a handler"), for a component compiled now and for one read from
/// the compile cache alike; without it, no map is written.
#[test]
fn eddy_perf_map_names_the_handlers_functions_for_perf() {
    let ws = Workspace::new();
    let run = |perf_map: bool| {
        let mut command = std::process::Command::new(eddy_bin());
        command
            .args(["invoke", component("totals").to_str().expect("utf-8"), "--event"])
            .arg(fixture("kinesis-event.json"))
            .env("EDDY_CACHE_DIR", ws.path().join("compiled"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if perf_map {
            command.env("EDDY_PERF_MAP", "1");
        } else {
            command.env_remove("EDDY_PERF_MAP");
        }
        let mut child = command.spawn().expect("eddy runs");
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let status = child.wait().expect("eddy ends");
        let text = std::fs::read_to_string(&map).ok();
        let _ = std::fs::remove_file(&map);
        (status, text)
    };
    for load in ["compiled", "read from the compile cache"] {
        let (status, map) = run(true);
        assert_eq!(status.code(), Some(2), "{load}: totals fails the seed's two text records");
        let map = map.unwrap_or_else(|| panic!("{load}: no /tmp/perf-PID.map was written"));
        // perf's format: start, size, name, one function a line.
        let functions = map.lines().filter(|line| line.split(' ').nth(2).is_some_and(|name| name.starts_with("wasm[0]::function["))).count();
        assert!(functions > 10, "{load}: {functions} of the handler's functions named:\n{map}");
        // The component's own adapter code, by the import it calls.
        assert!(map.contains("eddy:handler/log@0.1.0-log"), "{load}: the log import's shim is not named:\n{map}");
    }
    assert_eq!(ws.path().join("compiled").read_dir().map(|d| d.count()).unwrap_or(0), 1, "the second run came from the cache");
    let (_, map) = run(false);
    assert!(map.is_none(), "a map was written without EDDY_PERF_MAP");
}
