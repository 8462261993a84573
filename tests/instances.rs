//! Warm instances (`[ExecutionEnvironment]`): a shard's instance serves batch
//! after batch, as Lambda's execution environment does, so module state is
//! seen by the next invocation; any error retires it, and so do the bounds
//! the manifest sets. `examples/hostile`'s `count` probe logs how many
//! invocations its instance has served (module state), and `grow MB` keeps
//! memory for the life of the instance.

use std::path::Path;

use eddy_tests::*;

/// Puts one record and waits until the function has finished with it (its
/// shard processed or discarded it), so that every put is a batch of its own.
fn one_batch(host: &Host, function: &str, stream: &str, text: &str) {
    let done = |f: &serde_json::Value| shard_total(f, "records_processed") + shard_total(f, "records_discarded");
    let before = host.function(function).map(|f| done(&f)).unwrap_or(0);
    host.put(stream, "k", &[text.to_owned()]);
    wait_for(&format!("{function} to finish with {text:?}"), || {
        host.function(function).filter(|f| done(f) > before)
    });
}

/// The counts the `count` probes logged, in order.
fn counts(host: &Host, function: &str) -> Vec<u32> {
    host.handler_messages(function)
        .iter()
        .filter_map(|m| m.strip_prefix("probe count: ")?.trim().parse().ok())
        .collect()
}

fn instances_started(host: &Host, function: &str) -> u64 {
    host.function(function).map(|f| shard_total(&f, "instances_started")).unwrap_or(0)
}

#[test]
fn a_shards_instance_serves_batch_after_batch_and_any_error_retires_it() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    ws.deploy("warm", "hostile", &format!("Timeout = 1\n{}", manifest("s", "MaximumRetryAttempts = 0")));
    let host = Host::start(&ws);
    host.wait_state("warm", "running");
    // Module state survives from one batch to the next.
    for _ in 0..3 {
        one_batch(&host, "warm", "s", "count");
    }
    assert_eq!(counts(&host, "warm"), [1, 2, 3], "{}", host.log_text());
    assert_eq!(instances_started(&host, "warm"), 1);
    // After each kind of failure the next batch finds a fresh instance.
    let failures = ["error", "trap", "loop", "oom"];
    for failure in failures {
        one_batch(&host, "warm", "s", failure);
        one_batch(&host, "warm", "s", "count");
    }
    assert_eq!(counts(&host, "warm"), [1, 2, 3, 1, 1, 1, 1], "after error, trap, timeout, out-of-memory: {}", host.log_text());
    let f = host.function("warm").expect("status");
    let kinds = &f["shards"][0]["errors_by_kind"];
    for kind in ["handler_error", "trap", "timeout", "out_of_memory"] {
        assert_eq!(kinds[kind], 1, "{kind}: {f}");
    }
    // The first instance, and one after each failure.
    assert_eq!(instances_started(&host, "warm"), 1 + failures.len() as u64, "{f}");
    assert!(
        host.metrics().contains(r#"eddy_instances_started_total{function="warm",shard="shardId-000000000000"} 5"#),
        "the metric counts them"
    );
}

#[test]
fn the_manifest_bounds_an_instances_life_or_turns_reuse_off() {
    let ws = Workspace::new();
    for stream in ["a", "b", "c", "d"] {
        ws.create_stream(stream, 1);
    }
    ws.deploy("idle", "hostile", &format!("[ExecutionEnvironment]\nMaxIdleSeconds = 1\n\n{}", manifest("d", "")));
    ws.deploy("two", "hostile", &format!("[ExecutionEnvironment]\nMaxInvocations = 2\n\n{}", manifest("a", "")));
    ws.deploy("small", "hostile", &format!("[ExecutionEnvironment]\nMaxMemoryGrowthMB = 1\n\n{}", manifest("b", "")));
    ws.deploy("fresh", "hostile", &format!("[ExecutionEnvironment]\nReuse = false\n\n{}", manifest("c", "")));
    let host = Host::start(&ws);
    for name in ["two", "small", "fresh", "idle"] {
        host.wait_state(name, "running");
    }
    for _ in 0..5 {
        one_batch(&host, "two", "a", "count");
        one_batch(&host, "fresh", "c", "count");
    }
    assert_eq!(counts(&host, "two"), [1, 2, 1, 2, 1], "MaxInvocations = 2");
    assert_eq!(counts(&host, "fresh"), [1, 1, 1, 1, 1], "Reuse = false");
    assert_eq!(instances_started(&host, "fresh"), 5);

    // A little growth is kept; past the bound the instance is replaced.
    one_batch(&host, "small", "b", "count");
    one_batch(&host, "small", "b", "count");
    one_batch(&host, "small", "b", "grow 4");
    one_batch(&host, "small", "b", "count");
    assert_eq!(counts(&host, "small"), [1, 2, 1], "MaxMemoryGrowthMB = 1, then 4 MB kept: {}", host.log_text());

    // An instance that waits longer than MaxIdleSeconds for a batch is dropped.
    one_batch(&host, "idle", "d", "count");
    one_batch(&host, "idle", "d", "count");
    std::thread::sleep(std::time::Duration::from_secs(3));
    one_batch(&host, "idle", "d", "count");
    assert_eq!(counts(&host, "idle"), [1, 2, 1], "MaxIdleSeconds = 1");
}

#[test]
fn an_idle_function_lets_go_of_its_code_and_its_next_batch_loads_it_again() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    ws.deploy("idle", "hostile", &format!("[ExecutionEnvironment]\nMaxIdleSeconds = 1\n\n{}", manifest("s", "MaximumRetryAttempts = 0")));
    let host = Host::start(&ws);
    host.wait_state("idle", "running");
    let released = || host.log_text().matches("its compiled code is let go of").count();
    let reloaded = || host.log_text().matches("its code loaded again after idling").count();
    wait_for("the idle function to let go of its code", || (released() >= 1).then_some(()));

    // The next batch loads it again from the compile cache, and runs.
    one_batch(&host, "idle", "s", "count");
    assert_eq!((counts(&host, "idle"), reloaded()), (vec![1], 1), "{}", host.log_text());

    // Idle again, and the compile cache has lost the entry: the function's file
    // (the same version) serves.
    wait_for("the code to be let go of again", || (released() >= 2).then_some(()));
    let cache = ws.path().join(".eddy/compiled");
    for entry in std::fs::read_dir(&cache).expect("the compile cache").flatten() {
        std::fs::remove_file(entry.path()).expect("remove a cache entry");
    }
    one_batch(&host, "idle", "s", "count");
    assert_eq!((counts(&host, "idle"), reloaded()), (vec![1, 1], 2), "{}", host.log_text());

    // Nothing was lost or counted against the function on the way.
    let f = host.function("idle").expect("status");
    assert_eq!(shard_total(&f, "records_processed"), 2, "{f}");
    assert_eq!(shard_total(&f, "records_discarded"), 0, "{f}");
    assert_eq!(f["state"], "running", "{f}");
}

#[test]
fn a_bad_execution_environment_is_refused_with_its_key() {
    let ws = Workspace::new();
    ws.deploy("bad", "hostile", &format!("[ExecutionEnvironment]\nMaxInvocations = 0\n\n{}", manifest("s", "")));
    ws.deploy("typo", "hostile", &format!("[ExecutionEnvironment]\nReuses = false\n\n{}", manifest("s", "")));
    let host = Host::start(&ws);
    let bad = host.wait_state("bad", "failed");
    let typo = host.wait_state("typo", "failed");
    let error = |f: &serde_json::Value| f["error"].as_str().or(f["last_error"].as_str()).unwrap_or_default().to_owned();
    assert!(error(&bad).contains("ExecutionEnvironment.MaxInvocations") && error(&bad).contains("1 to 1000000"), "{bad}");
    assert!(error(&typo).contains("Reuses"), "{typo}");
}

/// Lambda handlers in JavaScript and Python keep state at module scope; the
/// same instance serves the shard's next batch, so they see it.
#[test]
fn javascript_and_python_handlers_keep_module_state_between_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = repo_root();
    let ws = Workspace::new();
    for (lang, script, handler) in [("js", "guest-sdk/js/build.sh", "index.mjs"), ("python", "guest-sdk/python/build.sh", "lambda_function.py")] {
        let wasm = dir.path().join(format!("{lang}.wasm"));
        build(&root.join(script), &root.join("tests/fixtures/warm").join(handler), &wasm);
        ws.create_stream(lang, 1);
        ws.write_manifest(lang, &manifest(lang, ""));
        atomic_write(&ws.functions().join(format!("{lang}.wasm")), &std::fs::read(&wasm).expect("built"));
    }
    let host = Host::start(&ws);
    for lang in ["js", "python"] {
        host.wait_state(lang, "running");
        for _ in 0..3 {
            one_batch(&host, lang, lang, "a record");
        }
        let seen: Vec<String> = host.handler_messages(lang).into_iter().filter(|m| m.starts_with("invocation ")).collect();
        assert_eq!(
            seen,
            ["invocation 1 of this instance, 1 records", "invocation 2 of this instance, 1 records", "invocation 3 of this instance, 1 records"],
            "{lang}: {}",
            host.log_text()
        );
        assert_eq!(instances_started(&host, lang), 1, "{lang}");
    }
}

fn build(script: &Path, handler: &Path, wasm: &Path) {
    let out = std::process::Command::new(script).arg(handler).arg(wasm).arg("json-handler").output().expect("the build script runs");
    assert!(out.status.success(), "{}: {}", handler.display(), String::from_utf8_lossy(&out.stderr));
}

/// A host with one instance slot keeps nothing warm: an idle warm instance
/// would hold the slot, and every other function would be throttled.
#[test]
fn warm_instances_never_hold_the_last_instance_slot() {
    let ws = Workspace::new();
    for stream in ["a", "b"] {
        ws.create_stream(stream, 1);
    }
    ws.deploy("first", "hostile", &manifest("a", ""));
    ws.deploy("second", "hostile", &manifest("b", ""));
    let host = Host::start_with(&ws, &["--max-instances", "1"]);
    host.wait_state("first", "running");
    host.wait_state("second", "running");
    one_batch(&host, "first", "a", "count");
    // With the slot held by first's idle instance, this would be throttled
    // until that instance idled out (MaxIdleSeconds, 300 s).
    one_batch(&host, "second", "b", "count");
    one_batch(&host, "first", "a", "count");
    assert_eq!(counts(&host, "first"), [1, 1], "nothing is kept warm with one slot");
    assert_eq!(counts(&host, "second"), [1]);
}
