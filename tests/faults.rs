//! Faults an operator meets: a mapping stopped or swapped while its batch is
//! retrying, a host that cannot start a mapping, files that are symlinks or
//! copied slowly, a large put beside a busy host. Each keeps at-least-once and
//! tells the truth in its status.

use std::time::Duration;

use eddy_tests::*;

/// The texts the `inspect` handler logged ("... [<request id>] <text>").
fn inspect_texts(host: &Host, function: &str) -> Vec<String> {
    host.handler_messages(function)
        .iter()
        .filter_map(|m| m.rsplit_once("] ").map(|(_, t)| t.to_owned()))
        .collect()
}

/// One PutRecords call with a record per (partition key, text).
fn put_keyed(host: &Host, stream: &str, records: &[(&str, &str)]) {
    let records: Vec<serde_json::Value> =
        records.iter().map(|(key, text)| serde_json::json!({"PartitionKey": key, "Text": text})).collect();
    ureq::post(&format!("http://{}/streams/{stream}/records", host.admin))
        .send_json(serde_json::json!({ "Records": records }))
        .expect("ingest");
}

/// A filter that keeps partition key `keep`, on a handler that fails the record
/// `error` (hostile): the batch [keep: error] retries, and the record after it,
/// [drop: ...], is filtered out.
const KEEP_ONLY: &str = "[EventSource.FilterCriteria]\nFilters = [{ Pattern = '{\"partitionKey\":[\"keep\"]}' }]";

fn wait_retrying(host: &Host, function: &str) {
    wait_for("the batch to be retrying", || {
        let f = host.function(function)?;
        let shard = f["shards"].as_array()?.first()?.clone();
        (shard["state"] == "retrying" && shard["next_attempt"].as_u64()? >= 3).then_some(())
    });
}

/// A host whose function `f` (hostile) is retrying [keep: error], with the
/// filtered record [drop: filtered] behind it.
fn start_retrying() -> (Workspace, Host) {
    let ws = Workspace::with_function("s", 1, "f", "hostile", KEEP_ONLY);
    let host = Host::start(&ws);
    host.wait_state("f", "running");
    put_keyed(&host, "s", &[("keep", "error"), ("drop", "filtered")]);
    wait_retrying(&host, "f");
    (ws, host)
}

#[test]
fn a_failing_batch_stopped_by_shutdown_is_delivered_again_after_restart() {
    let (ws, host) = start_retrying();
    assert!(host.stop().success(), "the host stops cleanly");

    // The fixed version: it handles every record.
    ws.write_component("f", "inspect");
    let host = Host::start(&ws);
    host.wait_state("f", "running");
    wait_for("the fixed version to get the record that failed", || {
        inspect_texts(&host, "f").iter().any(|t| t == "error").then_some(())
    });
    assert!(!inspect_texts(&host, "f").iter().any(|t| t == "filtered"), "filtered records stay filtered");
}

#[test]
fn a_failing_batch_stopped_by_a_hot_swap_goes_to_the_new_version() {
    let (ws, host) = start_retrying();
    let old = host.function("f").expect("f")["digest"].clone();
    ws.write_component("f", "inspect");
    wait_for("the new version", || host.function("f").filter(|f| f["digest"] != old));
    wait_for("the new version to get the record that failed", || {
        inspect_texts(&host, "f").iter().any(|t| t == "error").then_some(())
    });
    // And the records after it, too.
    put_keyed(&host, "s", &[("keep", "after")]);
    wait_for("a later record", || inspect_texts(&host, "f").iter().any(|t| t == "after").then_some(()));
}

/// A component that exports the handler interface `export` (the typed world's
/// or the packed world's) with the wrong `handle`: one u32 in, nothing out.
fn mistyped_handler(export: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
  (core module $m (func (export "handle") (param i32)))
  (core instance $i (instantiate $m))
  (func $handle (param "batch" u32) (canon lift (core func $i "handle")))
  (instance $exports (export "handle" (func $handle)))
  (export "{export}" (instance $exports))
)"#
    ))
    .expect("wat")
}

#[test]
fn a_mistyped_export_is_refused_at_load_and_the_old_version_keeps_running() {
    let ws = Workspace::with_function("s", 1, "f", "inspect", "MaximumRetryAttempts = 0");
    let host = Host::start(&ws);
    let good = host.wait_state("f", "running")["digest"].clone();
    host.put("s", "k", &["before".to_owned()]);
    wait_for("the first record", || inspect_texts(&host, "f").iter().any(|t| t == "before").then_some(()));

    atomic_write(&ws.functions().join("f.wasm"), &mistyped_handler("eddy:handler/typed@0.1.0"));
    let f = wait_for("the load error", || host.function("f").filter(|f| f["error"].is_string()));
    let error = f["error"].as_str().unwrap_or_default();
    assert!(error.contains("does not match the contract"), "{error}");
    assert!(
        error.contains("handle: func(batch: batch, context: context) -> result<batch-response, string>"),
        "the error names the expected signature: {error}"
    );
    assert!(error.contains("handle: func(batch: u32)"), "and what the component has: {error}");
    assert_eq!(f["state"], "running", "{f}");
    assert_eq!(f["digest"], good, "the good version still runs");

    // The packed world's export is checked as the typed world's is.
    atomic_write(&ws.functions().join("f.wasm"), &mistyped_handler("eddy:handler/packed@0.1.0"));
    let f = wait_for("the packed load error", || {
        host.function("f").filter(|f| f["error"].as_str().is_some_and(|e| e.contains("eddy:handler/packed@0.1.0")))
    });
    let error = f["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("handle: func(batch: packed-batch, context: context) -> result<batch-response, string>"),
        "the error names the packed signature: {error}"
    );
    assert_eq!(f["digest"], good, "the good version still runs");

    host.put("s", "k", &["after".to_owned()]);
    wait_for("the old version to handle the next record", || {
        inspect_texts(&host, "f").iter().any(|t| t == "after").then_some(())
    });
    let f = host.function("f").expect("f");
    assert_eq!(shard_total(&f, "records_discarded"), 0, "{f}");
}

#[test]
fn a_mapping_that_cannot_start_is_failed_and_not_ready() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    // The destination's parent is a file: the directory cannot be created.
    std::fs::write(ws.path().join("blocker"), "a file").expect("file");
    let destination = ws.path().join("blocker/failures/");
    ws.deploy(
        "f",
        "inspect",
        &manifest("s", &format!("[EventSource.DestinationConfig.OnFailure]\nDestination = \"{}/\"", destination.display())),
    );
    let host = Host::start(&ws);
    let f = host.wait_state("f", "failed");
    let error = f["error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot create the destination directory"), "{f}");
    let ready = ureq::get(&format!("http://{}/readyz", host.admin)).config().http_status_as_error(false).build().call().expect("readyz");
    assert_eq!(ready.status(), 503);
    let text = ready.into_body().read_to_string().expect("body");
    assert!(text.contains("f: failed: cannot start the mapping"), "{text}");
}

#[cfg(unix)]
#[test]
fn symlinked_files_load_and_a_directory_named_like_a_component_is_reported() {
    use std::os::unix::fs::symlink;
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    // As Kubernetes mounts a ConfigMap: each file a symlink through `..data`,
    // itself a symlink to the current timestamped directory.
    let mount = ws.path().join("mount");
    let current = mount.join("..2026_12_02_10_00_00.000000001");
    std::fs::create_dir_all(&current).expect("dir");
    std::fs::copy(component("inspect"), current.join("linked.wasm")).expect("copy");
    std::fs::write(current.join("linked.toml"), manifest("s", "")).expect("manifest");
    symlink(&current, mount.join("..data")).expect("..data");
    for file in ["linked.wasm", "linked.toml"] {
        symlink(mount.join("..data").join(file), ws.functions().join(file)).expect("symlink");
    }
    // A directory where a component should be, and a dangling symlink.
    std::fs::create_dir_all(ws.functions().join("dir.wasm")).expect("dir.wasm");
    ws.write_manifest("dir", &manifest("s", ""));
    symlink(ws.path().join("nowhere.wasm"), ws.functions().join("dangling.wasm")).expect("dangling");
    ws.write_manifest("dangling", &manifest("s", ""));

    let host = Host::start(&ws);
    host.wait_state("linked", "running");
    host.put("s", "k", &["through a symlink".to_owned()]);
    wait_for("the record", || inspect_texts(&host, "linked").iter().any(|t| t == "through a symlink").then_some(()));
    let dir = host.wait_state("dir", "failed");
    assert_eq!(dir["error"], "dir.wasm is a directory, not a file", "{dir}");
    let dangling = host.wait_state("dangling", "failed");
    assert_eq!(dangling["error"], "dangling.wasm is a symlink to a file that does not exist", "{dangling}");
    let logged = host.log_text();
    assert_eq!(logged.matches("dir.wasm is a directory").count(), 1, "logged once, not at every scan");
}

/// Writes `bytes` in place in `parts` pieces, pausing between them as a copy
/// over a slow or stalling link would.
fn write_stalling(path: &std::path::Path, bytes: &[u8], parts: usize, pause: Duration) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create");
    for (i, chunk) in bytes.chunks(bytes.len().div_ceil(parts)).enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        file.write_all(chunk).expect("write");
        file.flush().expect("flush");
    }
}

#[test]
fn files_that_stall_midway_are_not_reported_broken_while_they_change() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    let host = Host::start(&ws);
    let stall = Duration::from_millis(900);
    let bytes = std::fs::read(component("inspect")).expect("component");
    // A manifest in two parts, the first not yet valid TOML, beside its component.
    ws.write_component("slowm", "inspect");
    let text = manifest("s", "BatchSize = 5");
    let (first, rest) = text.split_at(text.find("Stream").expect("Stream") + 10);
    {
        use std::io::Write;
        let mut file = std::fs::File::create(ws.functions().join("slowm.toml")).expect("create");
        file.write_all(first.as_bytes()).expect("write");
        file.flush().expect("flush");
        std::thread::sleep(stall);
        file.write_all(rest.as_bytes()).expect("write");
    }
    // A component in three parts, beside its manifest.
    ws.write_manifest("sloww", &manifest("s", ""));
    write_stalling(&ws.functions().join("sloww.wasm"), &bytes, 3, stall);
    for function in ["slowm", "sloww"] {
        host.wait_state(function, "running");
    }
    host.put("s", "k", &["whole".to_owned()]);
    for function in ["slowm", "sloww"] {
        wait_for("the record", || inspect_texts(&host, function).iter().any(|t| t == "whole").then_some(()));
    }
    let errors: Vec<String> = host
        .lines()
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str().filter(|m| m.contains("cannot load the function")).map(str::to_owned))
        .collect();
    assert!(errors.is_empty(), "a file still being written was reported broken: {errors:?}");

    // A file that stays broken is reported once it has been still a while.
    atomic_write(&ws.functions().join("broken.toml"), manifest("s", "").as_bytes());
    atomic_write(&ws.functions().join("broken.wasm"), &bytes[..bytes.len() / 2]);
    let broken = host.wait_state("broken", "failed");
    assert!(broken["error"].as_str().is_some_and(|e| e.contains("broken.wasm")), "{broken}");
}

const KILL_BATCH: usize = 1;

/// What a kill run found.
#[derive(Debug, Default)]
struct KillReport {
    kills: usize,
    records: usize,
    lost: usize,
    duplicates: usize,
    key_order_violations: usize,
    shard_order_violations: usize,
}

/// The record numbers (`r-N`) a run's `inspect` handler logged, in order.
fn delivered(log: &std::path::Path) -> Vec<usize> {
    handler_messages_in(log, "f")
        .iter()
        .filter_map(|m| m.rsplit_once("] ")?.1.strip_prefix("r-")?.parse().ok())
        .collect()
}

/// Puts `records` records on 4 shards with 50 keys, then SIGKILLs the host
/// `kills` times at random points of the processing, and checks what the
/// function was given across all the runs.
fn kill_run(parallelization: u32, records: usize, kills: usize, random: &mut Random) -> KillReport {
    const KEYS: usize = 50;
    let ws = Workspace::new();
    ws.create_stream("k", 4);
    // One record a batch: the kills land between and inside invocations, not
    // only between large batches.
    ws.deploy("f", "inspect", &manifest("k", &format!("BatchSize = {KILL_BATCH}\nParallelizationFactor = {parallelization}")));
    let lines: String =
        (0..records).map(|i| format!("{{\"PartitionKey\":\"key-{}\",\"Text\":\"r-{i}\"}}\n", i % KEYS)).collect();
    std::fs::write(ws.path().join("records.jsonl"), lines).expect("records");
    let put = eddy(&["put", "k", "--file", "records.jsonl"], ws.path());
    assert!(put.status.success(), "put: {}", String::from_utf8_lossy(&put.stderr));
    // Each record's shard and sequence number, in the order they were put.
    let landed: Vec<(String, u64)> = String::from_utf8_lossy(&put.stdout)
        .lines()
        .filter_map(|l| {
            let (shard, seq) = l.split_once(' ')?;
            Some((shard.to_owned(), seq.parse().ok()?))
        })
        .collect();
    assert_eq!(landed.len(), records);

    let mut logs = Vec::new();
    let seen_so_far = |logs: &[std::path::PathBuf], current: &std::path::Path| {
        let mut seen = std::collections::HashSet::new();
        for log in logs.iter().map(|p| p.as_path()).chain([current]) {
            seen.extend(delivered(log));
        }
        seen.len()
    };
    for kill in 0..kills {
        let host = Host::start(&ws);
        // Somewhere in this run's share of the records, at random.
        let share = records / (kills + 1);
        let target = share * kill + random.below(share as u64 * 2) as usize;
        let log = host.log_path();
        wait_for("the kill point", || (seen_so_far(&logs, &log) >= target.min(records)).then_some(()));
        std::thread::sleep(Duration::from_millis(random.below(30)));
        host.kill();
        logs.push(log);
    }
    let host = Host::start(&ws);
    let log = host.log_path();
    wait_for("every record", || (seen_so_far(&logs, &log) == records).then_some(()));
    host.stop();
    logs.push(log);

    let deliveries: Vec<usize> = logs.iter().flat_map(|log| delivered(log)).collect();
    let mut first_seen = vec![false; records];
    let mut firsts = Vec::new();
    for &r in &deliveries {
        if r < records && !first_seen[r] {
            first_seen[r] = true;
            firsts.push(r);
        }
    }
    let mut report = KillReport { kills, records, ..KillReport::default() };
    report.lost = first_seen.iter().filter(|s| !**s).count();
    report.duplicates = deliveries.len() - firsts.len();
    // First deliveries in put order, per key and (one lane a shard) per shard.
    let mut last_of_key = vec![None::<usize>; KEYS];
    let mut last_of_shard: std::collections::HashMap<&str, u64> = Default::default();
    for &r in &firsts {
        if last_of_key[r % KEYS].is_some_and(|last| last > r) {
            report.key_order_violations += 1;
        }
        last_of_key[r % KEYS] = Some(r);
        let (shard, seq) = &landed[r];
        if parallelization == 1 {
            if last_of_shard.get(shard.as_str()).is_some_and(|last| last > seq) {
                report.shard_order_violations += 1;
            }
            last_of_shard.insert(shard, *seq);
        }
    }
    report
}

/// SIGKILL at random points: nothing lost, order kept, duplicates bounded by
/// the batches in flight. `EDDY_FAULTS=long` runs the long form (10,000
/// records, 20 kills for each ParallelizationFactor) and prints its figures.
#[test]
fn sigkill_at_random_points_loses_nothing_and_keeps_order() {
    let long = std::env::var("EDDY_FAULTS").is_ok_and(|v| v == "long");
    let (records, kills) = if long { (10_000, 20) } else { (2_000, 3) };
    let mut random = Random::new();
    for parallelization in [1, 4] {
        let report = kill_run(parallelization, records, kills, &mut random);
        eprintln!(
            "ParallelizationFactor {parallelization}: {} kills over {} records: {} lost, {} duplicates, {} order violations",
            report.kills,
            report.records,
            report.lost,
            report.duplicates,
            report.key_order_violations + report.shard_order_violations
        );
        assert_eq!(report.lost, 0, "{report:?}");
        assert_eq!(report.key_order_violations, 0, "{report:?}");
        assert_eq!(report.shard_order_violations, 0, "{report:?}");
        // A kill repeats at most what was in flight: per shard, a batch in each
        // lane and the batches queued for the lanes (4 each).
        let bound = kills * 4 * parallelization as usize * 5 * KILL_BATCH;
        assert!(report.duplicates <= bound, "{} duplicates, more than {bound}: {report:?}", report.duplicates);
    }
}

/// Killing a producer loses nothing it was told was written: a killed host's
/// ingest answers only what it committed, and a killed `eddy put` leaves a prefix
/// of its records (whole steps), which the function gets in order.
#[test]
fn killed_producers_lose_no_acknowledged_record() {
    let ws = Workspace::with_function("p", 2, "f", "inspect", "BatchSize = 50");
    let mut random = Random::new();
    let host = Host::start(&ws);
    host.wait_state("f", "running");
    // Ingest in batches of 50 until the host is killed.
    let admin = host.admin.clone();
    let producer = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for batch in 0.. {
            let records: Vec<serde_json::Value> =
                (0..50).map(|i| serde_json::json!({"PartitionKey": format!("k{i}"), "Text": format!("r-{}", batch * 50 + i)})).collect();
            match ureq::post(&format!("http://{admin}/streams/p/records")).send_json(serde_json::json!({ "Records": records })) {
                Ok(_) => acknowledged.extend(batch * 50..batch * 50 + 50),
                Err(_) => break,
            }
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(300 + random.below(700)));
    let first_log = host.log_path();
    host.kill();
    let acknowledged = producer.join().expect("producer");
    assert!(!acknowledged.is_empty());

    // `eddy put` of 300,000 records, killed once the function has its first.
    let host = Host::start(&ws);
    let log = host.log_path();
    let base = 1_000_000usize;
    let lines: String = (0..300_000).map(|i| format!("{{\"PartitionKey\":\"k{}\",\"Text\":\"r-{}\"}}\n", i % 50, base + i)).collect();
    std::fs::write(ws.path().join("big.jsonl"), lines).expect("file");
    let mut put = std::process::Command::new(eddy_bin())
        .args(["put", "p", "--file", "big.jsonl"])
        .current_dir(ws.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("put starts");
    wait_for("the put's first records", || delivered(&log).iter().any(|r| *r >= base).then_some(()));
    std::thread::sleep(Duration::from_millis(random.below(100)));
    let _ = put.kill();
    let _ = put.wait();

    let seen = || -> std::collections::BTreeSet<usize> { delivered(&first_log).into_iter().chain(delivered(&log)).collect() };
    wait_for("every acknowledged record", || {
        let seen = seen();
        acknowledged.iter().all(|r| seen.contains(r)).then_some(())
    });
    // The function is done with what the killed put wrote once the count holds
    // still for a second.
    let mut last = (usize::MAX, std::time::Instant::now());
    let put_records = wait_for("the killed put's records", || {
        let records: Vec<usize> = seen().into_iter().filter(|r| *r >= base).map(|r| r - base).collect();
        if records.len() != last.0 {
            last = (records.len(), std::time::Instant::now());
            return None;
        }
        (last.1.elapsed() >= Duration::from_secs(1)).then_some(records)
    });
    let written = put_records.len();
    assert_eq!(put_records, (0..written).collect::<Vec<_>>(), "the killed put left a prefix of its records");
    assert_eq!(written % 1000, 0, "whole steps of 1,000 records: {written}");
    assert!(written < 300_000, "the put was killed midway");
    eprintln!("acknowledged ingest records: {}, all delivered; the killed put had written {written} records", acknowledged.len());
}

#[test]
fn a_memory_size_over_the_hosts_budget_is_refused_at_load() {
    let ws = Workspace::with_function("s", 1, "small", "inspect", "");
    ws.deploy("big", "inspect", &format!("MemorySize = 512\n{}", manifest("s", "")));
    let host = Host::start_with(&ws, &["--memory-budget-mb", "256"]);
    host.wait_state("small", "running");
    let big = host.wait_state("big", "failed");
    assert!(
        big["error"].as_str().is_some_and(|e| e.contains("MemorySize = 512 MB is more than the host's memory budget of 256 MB")),
        "{big}"
    );
    host.put("s", "k", &["fits".to_owned()]);
    wait_for("the small function's record", || inspect_texts(&host, "small").iter().any(|t| t == "fits").then_some(()));
}
