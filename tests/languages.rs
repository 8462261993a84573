//! One scenario for a handler in every language, each built from `examples/`
//! by `examples/build.sh`: sales are totalled per user, and the records that
//! are not sales come back as batch item failures.
//!
//! - `eddy invoke` with a Kinesis event (and, for handlers that read DynamoDB
//!   records, a DynamoDB event): the response names exactly the bad records, and
//!   the log line gives the totals;
//! - `eddy run` with the handler in the watched folder and records on a local
//!   stream: the same totals, and the bad records reach the on-failure destination.

use std::path::Path;

use base64::Engine as _;
use eddy_tests::*;
use serde_json::{Value, json};

/// A handler of the scenario, as built into `examples/dist/`.
struct Handler {
    component: &'static str,
    /// It totals DynamoDB records too (NewImage `user` and `amount`).
    reads_dynamodb: bool,
}

const HANDLERS: &[Handler] = &[
    Handler { component: "totals", reads_dynamodb: false },
    // A core module with its component type, wrapped by the host on load.
    Handler { component: "c-totals", reads_dynamodb: false },
    Handler { component: "go-totals", reads_dynamodb: true },
    Handler { component: "js-totals", reads_dynamodb: true },
    Handler { component: "js-typed", reads_dynamodb: false },
    // Written for Lambda's Node.js runtime, built unchanged.
    Handler { component: "js-lambda", reads_dynamodb: true },
    Handler { component: "python-totals", reads_dynamodb: true },
    Handler { component: "python-typed", reads_dynamodb: false },
    // Written for Lambda's Python runtime, built unchanged.
    Handler { component: "python-lambda", reads_dynamodb: true },
];

/// The handlers written for Lambda's runtimes, built unchanged.
const LAMBDA_HANDLERS: &[&str] = &["js-lambda", "python-lambda"];

/// The scenario's records: (user, data). The third and fifth are not sales.
const SALES: [(&str, &str); 5] = [
    ("alice", r#"{"amount": 5}"#),
    ("bob", r#"{"amount": 3}"#),
    ("bob", "this is not a sale"),
    ("alice", r#"{"amount": 2}"#),
    ("carol", r#"{"amount": "lots"}"#),
];
const TOTALS: &str = "2 failed; totals alice=7 bob=3";

fn sequence(i: usize) -> String {
    format!("4959033827149025660855969253836157109592157598913658{:04}", i + 1)
}

fn kinesis_event() -> Value {
    let records: Vec<Value> = SALES
        .iter()
        .enumerate()
        .map(|(i, (user, data))| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": user,
                    "sequenceNumber": sequence(i),
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": 1545084650.987
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{}", sequence(i)),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
                "awsRegion": "us-east-2",
                "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/sales"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The same sales as DynamoDB INSERTs; a bad one has an amount that is no number.
fn dynamodb_event() -> Value {
    let records: Vec<Value> = SALES
        .iter()
        .enumerate()
        .map(|(i, (user, data))| {
            let amount = serde_json::from_str::<Value>(data).ok().and_then(|d| d["amount"].as_f64());
            let amount = amount.map_or_else(|| "not a number".to_owned(), |a| a.to_string());
            json!({
                "eventID": format!("{i}"),
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1700000000,
                    "Keys": { "id": { "S": format!("sale-{i}") } },
                    "NewImage": { "id": { "S": format!("sale-{i}") }, "user": { "S": user }, "amount": { "N": amount } },
                    "SequenceNumber": sequence(i),
                    "SizeBytes": 60,
                    "StreamViewType": "NEW_IMAGE"
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/sales/stream/2023-11-14T00:00:00.000"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// `eddy invoke` with a data directory, whose compile cache spares the second
/// event a compile.
fn invoke_with(handler: &Handler, event: &Value, dir: &Path) -> Invoked {
    let path = dir.join("event.json");
    std::fs::write(&path, event.to_string()).expect("event");
    let data = dir.join("data");
    let data = data.to_str().expect("utf-8");
    invoke(&component(handler.component), &path, &["--function-name", handler.component, "--data-dir", data])
}

#[test]
fn every_language_reports_the_bad_records_of_a_kinesis_and_a_dynamodb_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut events = vec![("kinesis", kinesis_event())];
    events.push(("dynamodb", dynamodb_event()));
    for handler in HANDLERS {
        for (kind, event) in &events {
            if *kind == "dynamodb" && !handler.reads_dynamodb {
                continue;
            }
            let out = invoke_with(handler, event, dir.path());
            let what = format!("{} on the {kind} event", handler.component);
            // Exit code 2: the batch fails at a sequence number (the first bad record).
            assert_eq!(out.code, Some(2), "{what}: {}{}", out.stdout, out.log);
            assert_eq!(failures(&out.response), [sequence(2), sequence(4)], "{what}: {}", out.stdout);
            assert!(out.log.contains(&format!("fails at sequence number {}", sequence(2))), "{what}: {}", out.log);
            assert!(out.log.contains(TOTALS), "{what} logs its totals: {}", out.log);
        }
    }
}

#[test]
fn every_language_totals_records_from_a_stream_and_sends_bad_ones_to_the_destination() {
    for handler in HANDLERS {
        let ws = Workspace::new();
        ws.create_stream("sales", 1);
        let failed = ws.path().join("failed.jsonl");
        let manifest = manifest(
            "sales",
            &format!(
                "BatchSize = 10\nMaximumBatchingWindowInSeconds = 1\nFunctionResponseTypes = [\"ReportBatchItemFailures\"]\n\
                 MaximumRetryAttempts = 0\n[EventSource.DestinationConfig.OnFailure]\nDestination = \"{}\"\n",
                failed.display()
            ),
        );
        ws.deploy(handler.component, handler.component, &manifest);
        let host = Host::start(&ws);
        host.wait_state(handler.component, "running");
        let records: Vec<Value> = SALES.iter().map(|(user, data)| json!({"PartitionKey": user, "Text": data})).collect();
        let put: Value = ureq::post(&format!("http://{}/streams/sales/records", host.admin))
            .send_json(json!({ "Records": records }))
            .expect("ingest")
            .body_mut()
            .read_json()
            .expect("ingest response");
        let logged = wait_for(&format!("{} to log its totals", handler.component), || {
            host.log_text().lines().find(|l| l.contains(TOTALS)).map(str::to_owned)
        });
        assert!(logged.contains(r#""target":"handler""#), "{logged}");
        let line = wait_for("the on-failure record", || {
            std::fs::read_to_string(&failed).ok().and_then(|t| t.lines().next().map(str::to_owned))
        });
        let record: Value = serde_json::from_str(&line).expect("JSON line");
        let third = put["Records"][2]["SequenceNumber"].as_str().expect("the third record's sequence number");
        assert_eq!(record["KinesisBatchInfo"]["startSequenceNumber"], third, "{}: {record}", handler.component);
    }
}

/// The handlers written for Lambda see Lambda's context object: name, memory,
/// request id and the time left.
#[test]
fn lambda_handlers_see_lambdas_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("event.json");
    std::fs::write(&path, kinesis_event().to_string()).expect("event");
    for component in LAMBDA_HANDLERS {
        let out = invoke(&eddy_tests::component(component), &path, &["--function-name", "sales-report", "--memory", "256", "--timeout", "5"]);
        assert_eq!(out.code, Some(2), "{component}: {}", out.log);
        assert!(out.log.contains("sales-report: 5 records, 2 failed"), "{component}: {}", out.log);
        let line = out.log.lines().find(|l| l.contains(" ms left of ")).unwrap_or_else(|| panic!("{component}: {}", out.log));
        let left: u64 = line.split("handler: ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(left > 0 && left <= 5000, "{component}: {line}");
        assert!(line.contains("of 256 MB, request "), "{component}: {line}");
    }
}

/// `eddy new` then `eddy build` for every language, into the folder `eddy run`
/// watches: each scaffolded handler totals its orders and reports the bad one,
/// which its manifest retries twice and then sends to `failures/` in the project.
/// The builds go where the host looks whether they run beside the project, with
/// `--out`, or inside it.
#[test]
fn eddy_new_and_eddy_build_make_a_working_function_in_every_language() {
    let ws = Workspace::new();
    let languages = ["rust", "js", "python", "c", "go"];
    for (i, lang) in languages.into_iter().enumerate() {
        let name = format!("orders-{lang}");
        let out = eddy(&["new", &name, "--lang", lang], ws.path());
        assert!(out.status.success(), "eddy new {lang}: {}", String::from_utf8_lossy(&out.stderr));
        let out = match i % 3 {
            0 => eddy(&["build", &name, "--out", "functions"], ws.path()),
            1 => eddy(&["build", &name], ws.path()),
            _ => eddy(&["build"], &ws.path().join(&name)),
        };
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "eddy build {lang}: {printed}{}", String::from_utf8_lossy(&out.stderr));
        assert!(printed.contains(&format!("functions/{name}.wasm ({lang})")), "{printed}");
        assert!(ws.functions().join(format!("{name}.wasm")).is_file(), "{lang}: built into the watched folder: {printed}");
        assert!(ws.functions().join("roles").join(format!("{name}.json")).is_file(), "the role is installed");
    }
    // No `eddy stream create`: the scaffolded manifests say CreateStream = true.
    let host = Host::start(&ws);
    for lang in languages {
        let name = format!("orders-{lang}");
        host.wait_state(&name, "running");
        let records = json!({ "Records": [
            {"PartitionKey": "a", "Text": r#"{"amount": 2.5}"#},
            {"PartitionKey": "a", "Text": "not an order"},
            {"PartitionKey": "a", "Text": r#"{"amount": 4}"#},
        ]});
        ureq::post(&format!("http://{}/streams/{name}-input/records", host.admin)).send_json(records).expect("ingest");
    }
    for lang in languages {
        let name = format!("orders-{lang}");
        let expected = format!("{name}: 3 records, 1 failed; total 6.5");
        wait_for(&expected, || host.log_text().contains(&expected).then_some(()));
        // Three attempts in all, then the failure record in the project's folder.
        let failures = ws.path().join(&name).join("failures");
        let record: Value = wait_for(&format!("{name}'s failure record"), || {
            let file = std::fs::read_dir(&failures).ok()?.filter_map(|e| e.ok()).next()?;
            serde_json::from_str(&std::fs::read_to_string(file.path()).ok()?).ok()
        });
        assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted", "{name}: {record}");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3, "{name}: {record}");
        assert!(record["responseContext"]["functionError"].is_null(), "{name}: batch item failures are not a function error: {record}");
        // The record is written before the checkpoint and the counters move: wait for them.
        let function = wait_for(&format!("{name} to count the discarded records"), || {
            host.function(&name).filter(|f| shard_total(f, "records_discarded") >= 2)
        });
        assert_eq!(shard_total(&function, "records_discarded"), 2, "{name}: the bad record and the one after it: {function}");
    }
}

/// `eddy invoke` compiles a component once: the next call takes it from the
/// per-user compile cache, and only the first says it is compiling.
#[test]
fn eddy_invoke_compiles_a_large_component_once() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let event = dir.path().join("event.json");
    std::fs::write(&event, kinesis_event().to_string()).expect("event");
    let run = || {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(eddy_bin())
            .args(["invoke", eddy_tests::component("js-totals").to_str().expect("utf-8"), "--event"])
            .arg(&event)
            .env("EDDY_CACHE_DIR", cache.path())
            .output()
            .expect("eddy runs");
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        // 2: the event's bad records fail the batch at a sequence number.
        assert_eq!(out.status.code(), Some(2), "{log}");
        assert!(log.contains(TOTALS), "{log}");
        (log, started.elapsed())
    };
    let (first, _) = run();
    assert!(first.contains("compiling ") && first.contains("compiled in "), "the first call says it compiles: {first}");
    let cached = std::fs::read_dir(cache.path()).expect("cache dir").filter_map(|e| e.ok()).count();
    assert_eq!(cached, 1, "one compiled component in the cache");
    let (second, took) = run();
    assert!(!second.contains("compiling"), "the second call compiles nothing: {second}");
    assert!(took <= std::time::Duration::from_secs(1), "the second call took {took:?}");
}

/// A missing toolchain is named, with how to install it.
#[test]
fn eddy_build_says_what_is_missing_and_how_to_install_it() {
    let ws = Workspace::new();
    assert!(eddy(&["new", "orders", "--lang", "c"], ws.path()).status.success());
    let out = std::process::Command::new(eddy_bin())
        .args(["build", "orders", "--out", "functions"])
        .current_dir(ws.path())
        .env("PATH", "/nonexistent")
        .env("HOME", ws.path())
        .output()
        .expect("eddy runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("c handlers need clang with the wasm32 target") && stderr.contains("apt-get install clang-19"), "{stderr}");
    assert!(!ws.functions().join("orders.wasm").exists());
}

/// What Lambda's runtimes send for a handler's falsy returns: Python's runtime
/// passes the return value through `json.dumps` (None is `null`), Node.js's
/// through `JSON.stringify` (undefined is sent as `null`). Each is judged a
/// success, as AWS judges them with ReportBatchItemFailures. The handlers are
/// `tests/fixtures/returns/`, built here with the SDKs' build scripts.
#[test]
fn falsy_returns_are_sent_as_lambdas_python_and_nodejs_runtimes_send_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = eddy_tests::repo_root();
    let builds = [
        ("python", "guest-sdk/python/build.sh", "lambda_function.py"),
        ("js", "guest-sdk/js/build.sh", "index.mjs"),
    ];
    // The record's text, and what each runtime sends for it.
    let cases = [("absent", "null"), ("null", "null"), ("0", "0"), ("\"\"", "\"\""), ("false", "false"), ("[]", "[]"), ("{}", "{}")];
    for (lang, script, handler) in builds {
        let wasm = dir.path().join(format!("returns-{lang}.wasm"));
        let out = std::process::Command::new(root.join(script))
            .arg(root.join("tests/fixtures/returns").join(handler))
            .arg(&wasm)
            .arg("json-handler")
            .output()
            .expect("the build script runs");
        assert!(out.status.success(), "{lang}: {}", String::from_utf8_lossy(&out.stderr));
        for (i, (record, sent)) in cases.iter().enumerate() {
            let event = json!({"Records": [{
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "k", "sequenceNumber": "1",
                            "data": base64::engine::general_purpose::STANDARD.encode(record),
                            "approximateArrivalTimestamp": 1_700_000_000.0},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": "shardId-000000000000:1",
                "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/r",
                "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}]});
            let path = dir.path().join(format!("{lang}-{i}.json"));
            std::fs::write(&path, event.to_string()).expect("event");
            let out = invoke(&wasm, &path, &[]);
            assert_eq!(out.stdout.trim_end(), *sent, "{lang} returning {record}: {}", out.log);
            assert_eq!(out.code, Some(0), "{lang} returning {record} succeeds: {}", out.log);
        }
    }
}

/// guest-sdk/js's `Buffer` gives what Node's does, for the inputs Lambda
/// handlers give it: the same handler (`tests/fixtures/buffer/index.mjs`) runs
/// in Eddy and in Node itself, and their answers are compared whole. Base64
/// with and without padding, URL-safe, both alphabets mixed, with whitespace,
/// empty; bytes past ASCII; hex; UTF-8 text; and the event's records array
/// walked, spread and serialized.
#[test]
fn the_javascript_buffer_reads_records_as_nodes_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = eddy_tests::repo_root();
    let handler = root.join("tests/fixtures/buffer/index.mjs");
    let wasm = dir.path().join("buffer.wasm");
    let out = std::process::Command::new(root.join("guest-sdk/js/build.sh"))
        .arg(&handler)
        .arg(&wasm)
        .arg("json-handler")
        .output()
        .expect("the build script runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cases = json!([
        ["SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==", "base64"],
        ["SGVsbG8", "base64"],
        ["SGVs bG8=\n", "base64"],
        ["-_-_", "base64"],
        ["-_-_", "base64url"],
        ["-+_/", "base64"],
        ["Zm9v-_8", "base64url"],
        ["/+8=", "base64"],
        ["w6l0w6k=", "base64"],
        ["", "base64"],
        ["eyJhbW91bnQiOiAxMi41LCAiaXRlbSI6ICJ3aWRnZXQtMDA0MiJ9", "base64"],
        ["00ff10Ab", "hex"],
        ["été ✓", "utf8"],
    ]);
    let data = base64::engine::general_purpose::STANDARD.encode(cases.to_string());
    let event = json!({"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "k", "sequenceNumber": "1", "data": data,
                    "approximateArrivalTimestamp": 1_700_000_000.0},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": "shardId-000000000000:1",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/r",
        "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}]});
    let path = dir.path().join("event.json");
    std::fs::write(&path, event.to_string()).expect("event");
    let eddy = invoke(&wasm, &path, &[]);
    assert_eq!(eddy.code, Some(0), "{}", eddy.log);
    // Node, with its own Buffer.
    let script = format!(
        "import {{ handler }} from {handler:?}; import {{ readFileSync }} from 'node:fs'; \
         console.log(JSON.stringify(await handler(JSON.parse(readFileSync({path:?}, 'utf8')))));",
        handler = format!("file://{}", handler.display()),
        path = path.display().to_string(),
    );
    let node = std::process::Command::new("node").args(["--input-type=module", "-e", &script]).output().expect("node runs");
    assert!(node.status.success(), "{}", String::from_utf8_lossy(&node.stderr));
    let expected: Value = serde_json::from_slice(&node.stdout).expect("node's answer");
    assert_eq!(expected["results"].as_array().map(Vec::len), Some(13), "{expected}");
    assert_eq!(eddy.response, expected, "Eddy's Buffer (left) differs from Node's (right)");
}
