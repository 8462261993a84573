//! Functions added, replaced and removed while records flow: no record lost, the
//! checkpoint kept, and a copy in progress never loaded half-written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eddy_tests::*;

/// The numbers in the texts a function's handler logged: `inspect` logs
/// "... [<request id>] <text>", `hostile` logs "ok <text>".
fn numbers_seen(host: &Host, function: &str) -> Vec<u64> {
    host.handler_messages(function)
        .iter()
        .filter_map(|m| {
            let text = m.rsplit_once("] ").map(|(_, t)| t).or_else(|| m.strip_prefix("ok "))?;
            text.strip_prefix("n-")?.parse().ok()
        })
        .collect()
}

/// Puts `n-0`, `n-1`, ... in the background until stopped; returns how many.
fn produce(host: &Host, stream: &'static str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let admin = host.admin.clone();
    std::thread::spawn(move || {
        let mut next = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let records: Vec<serde_json::Value> = (next..next + 5)
                .map(|i| serde_json::json!({"PartitionKey": "p", "Text": format!("n-{i}")}))
                .collect();
            ureq::post(&format!("http://{admin}/streams/{stream}/records"))
                .send_json(serde_json::json!({ "Records": records }))
                .expect("ingest");
            next += 5;
            std::thread::sleep(Duration::from_millis(20));
        }
        next
    })
}

#[test]
fn add_replace_and_remove_while_records_flow() {
    let ws = Workspace::with_function("flow", 1, "first", "inspect", "BatchSize = 10");
    let host = Host::start(&ws);
    host.wait_state("first", "running");
    let stop = Arc::new(AtomicBool::new(false));
    let producer = produce(&host, "flow", Arc::clone(&stop));
    wait_for("records to flow", || (numbers_seen(&host, "first").len() > 50).then_some(()));

    // Add a second function mid-stream: it starts at the trim horizon.
    ws.deploy("second", "inspect", &manifest("flow", "BatchSize = 25"));
    host.wait_state("second", "running");

    // Replace the first function's component with another handler (hostile logs
    // "ok <text>" for ordinary records).
    let before_swap = host.function("first").expect("first")["digest"].clone();
    ws.write_component("first", "hostile");
    wait_for("the new version", || host.function("first").filter(|f| f["digest"] != before_swap));
    wait_for("the new version to handle records", || {
        host.handler_messages("first").iter().any(|m| m.starts_with("ok n-")).then_some(())
    });

    // Remove the second function, let records pass, then bring it back.
    ws.remove("second");
    wait_for("second to be gone", || host.function("second").is_none().then_some(()));
    let seen_when_removed = numbers_seen(&host, "second").len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(numbers_seen(&host, "second").len(), seen_when_removed, "a removed function handles nothing");
    ws.deploy("second", "inspect", &manifest("flow", "BatchSize = 25"));
    host.wait_state("second", "running");
    std::thread::sleep(Duration::from_millis(500));

    stop.store(true, Ordering::Relaxed);
    let produced = producer.join().expect("producer");
    for function in ["first", "second"] {
        let seen = wait_for(&format!("{function} to catch up"), || {
            let seen = numbers_seen(&host, function);
            let mut distinct = seen.clone();
            distinct.sort_unstable();
            distinct.dedup();
            (distinct.len() as u64 == produced).then_some(seen)
        });
        // Swaps and removals finish the batch in flight and checkpoint it, so the
        // next version resumes exactly there: no record twice, none missing.
        assert_eq!(seen.len() as u64, produced, "{function}: each of {produced} records exactly once");
        let mut in_order = seen.clone();
        in_order.sort_unstable();
        assert_eq!(seen, in_order, "{function}: in order across versions");
    }
}

#[test]
fn a_component_copied_slowly_is_loaded_only_when_complete() {
    let ws = Workspace::new();
    ws.create_stream("slow", 1);
    let host = Host::start(&ws);
    ws.write_manifest("slowcopy", &manifest("slow", ""));
    let bytes = std::fs::read(component("inspect")).expect("component");
    // Write in place, in chunks, as `cp` of a large file over a slow disk would.
    let target = ws.functions().join("slowcopy.wasm");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&target).expect("create");
        for chunk in bytes.chunks(bytes.len() / 10 + 1) {
            file.write_all(chunk).expect("write");
            file.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    host.wait_state("slowcopy", "running");
    let log = host.log_text();
    assert!(!log.contains("cannot load the function"), "a partial file was loaded: {log}");
    host.put("slow", "k", &["n-1".to_owned()]);
    wait_for("the record", || (numbers_seen(&host, "slowcopy") == [1]).then_some(()));
}

#[test]
fn a_manifest_change_swaps_in_after_the_batch_in_flight_and_keeps_the_checkpoint() {
    let ws = Workspace::with_function("s", 1, "f", "inspect", "BatchSize = 1");
    let host = Host::start(&ws);
    host.wait_state("f", "running");
    host.put("s", "k", &(0..5).map(|i| format!("n-{i}")).collect::<Vec<_>>());
    wait_for("five records", || (numbers_seen(&host, "f").len() == 5).then_some(()));
    // A new manifest (the same component) is a new version.
    ws.write_manifest("f", &manifest("s", "BatchSize = 2"));
    wait_for("the new version", || {
        host.lines().iter().filter(|l| l["fields"]["message"] == "loaded").count().ge(&2).then_some(())
    });
    host.put("s", "k", &(5..8).map(|i| format!("n-{i}")).collect::<Vec<_>>());
    let seen = wait_for("all eight", || {
        let s = numbers_seen(&host, "f");
        (s.len() >= 8).then_some(s)
    });
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
}

#[test]
fn a_disabled_mapping_reads_nothing_until_enabled_and_then_resumes() {
    let ws = Workspace::with_function("s", 1, "f", "inspect", "Enabled = false");
    let host = Host::start(&ws);
    host.wait_state("f", "disabled");
    host.put("s", "k", &(0..3).map(|i| format!("n-{i}")).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(500));
    assert!(numbers_seen(&host, "f").is_empty(), "a disabled function handles nothing");
    ws.write_manifest("f", &manifest("s", "Enabled = true"));
    host.wait_state("f", "running");
    wait_for("the records put while disabled", || (numbers_seen(&host, "f") == [0, 1, 2]).then_some(()));
}

/// A component renamed into place, or written and closed by its writer (`cp`),
/// is complete: the kernel says so (inotify), and the host loads it at once
/// instead of waiting for two scans to agree. With scans 20 s apart, both
/// functions run and handle their waiting record long before a second scan
/// could have seen them.
#[test]
fn a_finished_file_is_loaded_at_once_without_waiting_for_scans() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    let host = Host::start_with(&ws, &["--scan-ms", "20000"]);
    host.put("s", "k", &["n-1".to_owned()]);
    // The first scan (at start) has run.
    wait_for("the first scan", || host.status()["functions"].as_array().map(|_| ()));
    std::thread::sleep(Duration::from_millis(500));
    let bytes = std::fs::read(component("inspect")).expect("component");
    let started = std::time::Instant::now();
    ws.deploy("renamed", "inspect", &manifest("s", ""));
    ws.write_manifest("copied", &manifest("s", ""));
    std::fs::write(ws.functions().join("copied.wasm"), &bytes).expect("write in place");
    for name in ["renamed", "copied"] {
        wait_for(&format!("{name} to handle the waiting record"), || (numbers_seen(&host, name) == [1]).then_some(()));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "loaded after {took:?}: that was the scans, not the file events");
}

/// The same component dropped under several names at once is compiled once:
/// the others wait for that compile and load it from the compile cache.
#[test]
fn one_component_dropped_under_several_names_is_compiled_once() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    let host = Host::start(&ws);
    let names = ["one", "two", "three", "four"];
    for name in names {
        ws.write_manifest(name, &manifest("s", ""));
    }
    for name in names {
        ws.write_component(name, "inspect");
    }
    for name in names {
        host.wait_state(name, "running");
    }
    let loads: Vec<bool> = host
        .lines()
        .iter()
        .filter(|l| l["fields"]["message"] == "loaded")
        .filter_map(|l| l["fields"]["compiled"].as_bool())
        .collect();
    assert_eq!(loads.len(), 4, "{}", host.log_text());
    assert_eq!(loads.iter().filter(|c| **c).count(), 1, "compiled once, loaded from the cache three times: {loads:?}");
}
