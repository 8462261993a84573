//! Bad input gets a clear error and costs nothing else: broken modules, wrong
//! worlds, bad manifests and handlers that trap, loop or allocate without bound
//! each fail alone, while a healthy function beside them keeps processing.

use eddy_tests::*;

fn healthy_count(host: &Host) -> usize {
    host.handler_messages("healthy").iter().filter(|m| m.contains("] n-")).count()
}

#[test]
fn broken_modules_and_manifests_are_reported_and_fixing_them_brings_them_up() {
    let ws = Workspace::with_function("s", 1, "healthy", "inspect", "");
    let host = Host::start(&ws);
    host.wait_state("healthy", "running");

    let functions = ws.functions();
    // Not a component.
    atomic_write(&functions.join("core.toml"), manifest("s", "").as_bytes());
    atomic_write(&functions.join("core.wasm"), &wat::parse_str("(module)").expect("wat"));
    // A component of the wrong world.
    atomic_write(&functions.join("world.toml"), manifest("s", "").as_bytes());
    atomic_write(
        &functions.join("world.wasm"),
        &wat::parse_str("(component (import \"x\" (func)))").expect("wat"),
    );
    // Manifests with an unknown key and an out-of-range value.
    ws.deploy("unknown", "inspect", &manifest("s", "BatchSise = 10"));
    ws.deploy("range", "inspect", &manifest("s", "BatchSize = 0"));
    // Only one of the two files.
    atomic_write(&functions.join("lonely.toml"), manifest("s", "").as_bytes());

    for (name, state, words) in [
        ("core", "failed", "core WebAssembly module without a `component-type` section"),
        ("world", "failed", "a handler must export `eddy:handler/typed@0.1.0`"),
        ("unknown", "failed", "BatchSise"),
        ("range", "failed", "EventSource.BatchSize = 0 is out of range: 1 to 10000"),
        ("lonely", "waiting", "waiting for lonely.wasm"),
    ] {
        let f = host.wait_state(name, state);
        let error = f["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{name}: {error}");
    }

    // The healthy function never stopped.
    host.put("s", "k", &(0..10).map(|i| format!("n-{i}")).collect::<Vec<_>>());
    wait_for("the healthy function's records", || (healthy_count(&host) == 10).then_some(()));

    // Fixing a file brings the function up.
    ws.write_manifest("range", &manifest("s", "BatchSize = 5"));
    let fixed = host.wait_state("range", "running");
    assert!(fixed["error"].is_null(), "{fixed}");

    // A name whose files are all gone leaves the status.
    std::fs::remove_file(functions.join("lonely.toml")).expect("remove");
    wait_for("lonely to leave the status", || host.function("lonely").is_none().then_some(()));

    // Bad records at the ingest endpoint are refused with the reason.
    let response = ureq::post(&format!("http://{}/streams/s/records", host.admin))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(serde_json::json!({"Records": [{"PartitionKey": "k", "Data": "%%%"}]}))
        .expect("ingest answers");
    assert_eq!(response.status(), 400);
}

#[test]
fn a_bad_new_version_leaves_the_running_one_in_place() {
    let ws = Workspace::with_function("s", 1, "healthy", "inspect", "");
    let host = Host::start(&ws);
    let running = host.wait_state("healthy", "running");
    atomic_write(&ws.functions().join("healthy.wasm"), b"garbage");
    let f = wait_for("the error", || host.function("healthy").filter(|f| !f["error"].is_null()));
    assert_eq!(f["state"], "running", "{f}");
    assert_eq!(f["digest"], running["digest"], "the old version still runs");
    assert!(f["error"].as_str().unwrap_or_default().contains("not a WebAssembly file"), "{f}");
    host.put("s", "k", &["n-1".to_owned()]);
    wait_for("the record", || (healthy_count(&host) == 1).then_some(()));
}

#[test]
fn trapping_looping_and_hoarding_handlers_fail_alone() {
    let ws = Workspace::new();
    for stream in ["s", "loop", "oom", "trap"] {
        ws.create_stream(stream, 1);
    }
    ws.deploy("healthy", "inspect", &manifest("s", ""));
    for name in ["loop", "oom", "trap"] {
        ws.deploy(name, "hostile", &manifest(name, "MaximumRetryAttempts = 1"));
    }
    // One second for the loop, the shortest timeout Lambda allows.
    ws.write_manifest("loop", &format!("Timeout = 1\n{}", manifest("loop", "MaximumRetryAttempts = 1")));
    let host = Host::start(&ws);
    for name in ["healthy", "loop", "oom", "trap"] {
        host.wait_state(name, "running");
    }
    for name in ["loop", "oom", "trap"] {
        host.put(name, "k", &[name.to_owned()]);
    }
    // While the hostile handlers misbehave, the healthy one keeps going.
    for i in 0..20 {
        host.put("s", "k", &[format!("n-{i}")]);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    wait_for("the healthy function's records", || (healthy_count(&host) == 20).then_some(()));

    for (name, kind) in [("loop", "timeout"), ("oom", "out_of_memory"), ("trap", "trap")] {
        let f = wait_for(&format!("{name} to give up"), || {
            host.function(name).filter(|f| shard_total(f, "records_discarded") == 1)
        });
        let shard = &f["shards"][0];
        assert_eq!(shard["errors_by_kind"][kind], 2, "{name}: two attempts failed with {kind}: {f}");
        assert_eq!(f["state"], "running", "{name} is still up for its next records");
    }
    let metrics = host.metrics();
    assert!(metrics.contains("eddy_function_errors_total{function=\"loop\",shard=\"shardId-000000000000\",kind=\"timeout\"} 2"), "{metrics}");
}

#[test]
fn throttles_are_retried_without_counting_as_attempts() {
    let ws = Workspace::new();
    ws.create_stream("busy", 1);
    ws.create_stream("s", 1);
    // One instance slot: while `busy` loops in it, `healthy` is throttled.
    ws.write_manifest("busy", &format!("Timeout = 2\n{}", manifest("busy", "")));
    ws.write_component("busy", "hostile");
    ws.deploy("healthy", "inspect", &manifest("s", "MaximumRetryAttempts = 0"));
    let host = Host::start_with(&ws, &["--max-instances", "1"]);
    host.wait_state("busy", "running");
    host.wait_state("healthy", "running");
    host.put("busy", "k", &["loop".to_owned()]);
    // After its first timeout the loop is retried 100 ms later, and holds the slot
    // for two more seconds: put the healthy record in that window.
    wait_for("the loop's first timeout", || {
        host.lines().iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("timed out"))).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    host.put("s", "k", &["n-1".to_owned()]);
    let f = wait_for("the healthy record despite throttling", || {
        host.function("healthy").filter(|f| shard_total(f, "records_processed") == 1)
    });
    let shard = &f["shards"][0];
    assert!(shard["errors_by_kind"]["throttled"].as_u64().unwrap_or(0) >= 1, "it was throttled: {f}");
    assert_eq!(shard["records_discarded"], 0, "with MaximumRetryAttempts = 0, only throttles can explain the retry: {f}");
    assert_eq!(healthy_count(&host), 1);
}

/// The bad-input catalogue, all at once, while a healthy function keeps going:
/// each bad input gets a clear error and costs the healthy function nothing.
#[test]
fn the_bad_input_catalogue_costs_the_healthy_function_nothing() {
    let ws = Workspace::with_function("s", 2, "healthy", "inspect", "");
    let functions = ws.functions();
    let good = std::fs::read(component("inspect")).expect("component");
    let mut rng = Random::new();
    let random: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
    let mut truncated_core = wat::parse_str("(module (func (export \"f\")))").expect("wat");
    truncated_core.extend_from_slice(b"garbage after the header");
    let cases: Vec<(&str, Vec<u8>, String, &str)> = vec![
        ("truncated", good[..good.len() / 3].to_vec(), manifest("s", ""), "the component is invalid"),
        ("random", random, manifest("s", ""), "not a WebAssembly file"),
        ("garbled-core", truncated_core, manifest("s", ""), "the core WebAssembly module is invalid"),
        ("typo", good.clone(), manifest("s", "BatchSise = 10"), "BatchSise"),
        ("wrong-type", good.clone(), manifest("s", "BatchSize = \"ten\""), "expected an integer"),
        ("too-big-batch", good.clone(), manifest("s", "BatchSize = 100000"), "BatchSize = 100000 is out of range"),
        ("no-role", good.clone(), format!("Role = \"missing-role\"\n{}", manifest("s", "")), "roles/missing-role.json"),
        ("bad-role", good.clone(), format!("Role = \"broken\"\n{}", manifest("s", "")), "roles/broken.json"),
    ];
    ws.write_role("broken", r#"{"Statement": [{"Effect": "Perhaps", "Action": "*", "Resource": "*"}]}"#);
    // Binary, empty and 1 MiB records go to a function that reads any bytes.
    ws.deploy("binary", "noop", &manifest("bin", ""));
    let host = Host::start(&ws);
    host.wait_state("healthy", "running");
    host.wait_state("binary", "running");
    for (name, wasm, manifest_text, _) in &cases {
        atomic_write(&functions.join(format!("{name}.toml")), manifest_text.as_bytes());
        atomic_write(&functions.join(format!("{name}.wasm")), wasm);
    }
    // Thousands of files that are not functions.
    let clutter = functions.join("clutter");
    std::fs::create_dir_all(&clutter).expect("clutter");
    for i in 0..2000 {
        std::fs::write(functions.join(format!("notes-{i}.txt")), "not a function").expect("file");
    }
    // Records of every size the stream takes, binary and empty ones too (data
    // and the partition key "bin" together up to its 1 MiB).
    let sizes: Vec<serde_json::Value> = [0usize, 1, 1000, (1 << 20) - 3]
        .iter()
        .map(|&n| {
            use base64::Engine as _;
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            serde_json::json!({"PartitionKey": "bin", "Data": base64::engine::general_purpose::STANDARD.encode(data)})
        })
        .collect();
    let ingest = |body: serde_json::Value| {
        ureq::post(&format!("http://{}/streams/bin/records", host.admin))
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(body)
            .expect("ingest answers")
    };
    assert_eq!(ingest(serde_json::json!({ "Records": sizes })).status(), 200);
    // Over the record limit, and over the body limit: refused, with the limit.
    let over = "x".repeat(1 << 20);
    let mut refused = ingest(serde_json::json!({"Records": [{"PartitionKey": "k", "Text": over}]}));
    assert_eq!(refused.status(), 400);
    assert!(refused.body_mut().read_to_string().expect("body").contains("maximum record size of 1024 KiB"));
    let huge = "x".repeat(17 << 20);
    let mut refused = ingest(serde_json::json!({"Records": [{"PartitionKey": "k", "Text": huge}]}));
    assert_eq!(refused.status(), 413);
    assert!(refused.body_mut().read_to_string().expect("body").contains("limit of 16 MiB"));

    for (name, _, _, words) in &cases {
        let f = host.wait_state(name, "failed");
        let error = f["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{name}: {error}");
    }
    host.put("s", "k", &(0..10).map(|i| format!("n-{i}")).collect::<Vec<_>>());
    wait_for("the healthy function's records", || (healthy_count(&host) == 10).then_some(()));
    let f = wait_for("the binary records", || host.function("binary").filter(|f| shard_total(f, "records_processed") == 4));
    assert_eq!(shard_total(&f, "failed_invocations"), 0, "binary, empty and 1 MiB records: {f}");

    // Deleting a role file keeps the function running with the role it had.
    ws.write_role("reader", r#"{"Statement": [{"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:Describe*", "kinesis:ListShards"], "Resource": "*"}]}"#);
    ws.deploy("with-role", "inspect", &format!("Role = \"reader\"\n{}", manifest("s", "")));
    host.wait_state("with-role", "running");
    std::fs::remove_file(functions.join("roles/reader.json")).expect("remove role");
    let f = wait_for("the missing role's error", || host.function("with-role").filter(|f| f["error"].is_string()));
    assert_eq!(f["state"], "running", "the version that was running keeps running: {f}");
    assert!(host.function("notes-1").is_none(), "other files are not functions");
}

/// A client that sends a body over the ingest limit gets the 413 that says why,
/// not a reset connection, even when it sends slowly: the host reads the rest of
/// the body before it answers and closes.
#[test]
fn a_slow_sender_of_an_oversized_ingest_body_reads_the_413() {
    use std::io::{Read as _, Write as _};
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    let host = Host::start_with(&ws, &[]);
    let body_len = 17usize << 20;
    let mut socket = std::net::TcpStream::connect(&host.admin).expect("connect");
    socket.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("timeout");
    write!(
        socket,
        "POST /streams/s/records HTTP/1.1\r\nHost: eddy\r\nContent-Type: application/json\r\n\
         Content-Length: {body_len}\r\nConnection: close\r\n\r\n"
    )
    .expect("headers");
    let chunk = vec![b' '; 64 << 10];
    for sent in (0..body_len).step_by(chunk.len()) {
        socket
            .write_all(&chunk[..chunk.len().min(body_len - sent)])
            .unwrap_or_else(|e| panic!("the host cut the body off after {sent} bytes: {e}"));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let mut answer = String::new();
    socket.read_to_string(&mut answer).expect("the answer");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limit of 16 MiB"), "{answer}");
}
