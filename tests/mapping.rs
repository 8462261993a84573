//! The mapping loop on the embedded local stream: order per shard, partial
//! failures, retries, and resuming from the checkpoint after a restart or a crash.

use std::collections::BTreeMap;

use eddy_tests::*;
use serde_json::Value;

/// `(shard, sequence number, text)` of every record the `inspect` handler logged
/// for `function`, in log order.
fn seen(host: &Host, function: &str) -> Vec<(String, u64, String)> {
    host.lines()
        .iter()
        .filter(|l| l["target"] == "handler" && l["fields"]["function"] == function)
        .filter_map(|l| {
            // inspect logs "<eventID> <partition key> [<request id>] <text>"
            let message = l["fields"]["message"].as_str()?;
            let (event_id, rest) = message.split_once(' ')?;
            let (shard, seq) = event_id.split_once(':')?;
            let text = rest.split_once("] ")?.1;
            Some((shard.to_owned(), seq.parse().ok()?, text.to_owned()))
        })
        .collect()
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn records_reach_the_handler_in_order_per_shard() {
    let ws = Workspace::with_function("orders", 4, "inspect", "inspect", "BatchSize = 7");
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    let keys = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    for round in 0..5 {
        for key in keys {
            host.put("orders", key, &texts(&format!("{key}-{round}"), 5));
        }
    }
    let total = keys.len() * 5 * 5;
    let records = wait_for("every record to be handled", || {
        let s = seen(&host, "inspect");
        (s.len() >= total).then_some(s)
    });
    assert_eq!(records.len(), total, "each record exactly once");
    // Per shard, sequence numbers only go up.
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (shard, seq, _) in &records {
        let previous = last.insert(shard.clone(), *seq).unwrap_or(0);
        assert!(*seq > previous, "shard {shard}: {seq} after {previous}");
    }
    // Per key, records arrive in the order they were put.
    for key in keys {
        let of_key: Vec<&String> = records.iter().map(|r| &r.2).filter(|t| t.starts_with(&format!("{key}-"))).collect();
        let expected: Vec<String> = (0..5).flat_map(|round| texts(&format!("{key}-{round}"), 5)).collect();
        assert_eq!(of_key, expected.iter().collect::<Vec<_>>(), "order of {key}");
    }
    assert!(last.len() > 1, "keys spread over several shards: {last:?}");
    // The status shows the checkpoints at each shard's last record.
    let f = host.function("inspect").expect("inspect");
    for shard in f["shards"].as_array().expect("shards") {
        let name = shard["shard"].as_str().expect("shard id");
        if let Some(seq) = last.get(name) {
            assert_eq!(shard["checkpoint"], Value::String(seq.to_string()), "{name}");
        }
    }
}

/// `(first, last, count, failed)` of each batch the `totals` handler summarised.
fn batches(host: &Host, function: &str) -> Vec<(u64, u64, u64, u64)> {
    host.handler_messages(function)
        .iter()
        .filter_map(|m| {
            // "<name>: <n> records (<first>..<last>) on <shard>, <failed> failed; ..."
            let (_, rest) = m.split_once(": ")?;
            let (count, rest) = rest.split_once(" records (")?;
            let (range, rest) = rest.split_once(") on ")?;
            let (first, last) = range.split_once("..")?;
            let failed = rest.split_once(", ")?.1.split_once(" failed")?.0;
            Some((first.parse().ok()?, last.parse().ok()?, count.parse().ok()?, failed.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_reported_failure_is_retried_with_everything_after_it_and_nothing_before() {
    let ws = Workspace::with_function("sales", 1, "totals", "totals", "FunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumBatchingWindowInSeconds = 1");
    let host = Host::start(&ws);
    host.wait_state("totals", "running");
    // Sequence numbers 1..=6; record 4 is not JSON, so totals fails it.
    let mut records: Vec<String> = (1..=6).map(|i| format!("{{\"amount\": {i}}}")).collect();
    records[3] = "not json".into();
    host.put("sales", "k", &records);
    let seen = wait_for("three attempts", || {
        let b = batches(&host, "totals");
        (b.len() >= 3).then_some(b)
    });
    assert_eq!(seen[0], (1, 6, 6, 1), "the first attempt has the whole batch: {seen:?}");
    for retry in &seen[1..] {
        assert_eq!(retry.0, 4, "retries start at the failed record, never before: {seen:?}");
        assert_eq!(retry.1, 6, "and include every record after it: {seen:?}");
    }
    let f = host.function("totals").expect("totals");
    assert_eq!(f["shards"][0]["checkpoint"], "3", "checkpointed before the failure: {f}");

    // A restart resumes at the checkpoint: the first batch starts at record 4.
    host.stop();
    let host = Host::start(&ws);
    let after = wait_for("a batch after the restart", || batches(&host, "totals").first().copied());
    assert_eq!(after.0, 4, "no record before the checkpoint is repeated: {after:?}");
}

#[test]
fn retries_run_out_after_maximum_retry_attempts_and_the_shard_moves_on() {
    let ws = Workspace::with_function("sales", 1, "totals", "totals", "FunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumRetryAttempts = 2");
    let host = Host::start(&ws);
    host.wait_state("totals", "running");
    host.put("sales", "k", &["oops".to_owned()]);
    wait_for("the record to be discarded", || {
        host.function("totals").filter(|f| shard_total(f, "records_discarded") == 1)
    });
    // Two retries: three attempts at the record in all.
    assert_eq!(batches(&host, "totals").iter().filter(|b| b.0 == 1).count(), 3);
    host.put("sales", "k", &["{\"amount\": 2}".to_owned()]);
    let f = wait_for("the next record", || host.function("totals").filter(|f| shard_total(f, "records_processed") == 1));
    assert_eq!(f["shards"][0]["checkpoint"], "2");
}

#[test]
fn a_crash_repeats_at_most_the_batch_in_flight_and_loses_nothing() {
    let ws = Workspace::with_function("events", 2, "inspect", "inspect", "BatchSize = 10");
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    let first: Vec<String> = texts("a", 40);
    host.put("events", "k1", &first[..20]);
    host.put("events", "k2", &first[20..]);
    wait_for("the first records", || (seen(&host, "inspect").len() >= 40).then_some(()));
    // The handler's lines are logged while it runs; its records count as
    // processed once their checkpoint is written. Kill only after that.
    wait_for("the first records' checkpoints", || {
        host.function("inspect").filter(|f| shard_total(f, "records_processed") == 40)
    });
    let before = seen(&host, "inspect");
    host.kill();

    // Records put while the host is down are delivered when it is back.
    let out = eddy(&["put", "events", "-k", "k1", "-d", "while-down-1", "-d", "while-down-2"], ws.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let host = Host::start(&ws);
    let after = wait_for("the records put while down", || {
        let s = seen(&host, "inspect");
        s.iter().any(|r| r.2 == "while-down-2").then_some(s)
    });
    let mut all: Vec<&String> = before.iter().chain(after.iter()).map(|r| &r.2).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 42, "nothing lost");
    // Everything before the crash was checkpointed (waited for above), so
    // nothing is repeated.
    assert!(after.iter().all(|r| r.2.starts_with("while-down")), "repeated: {after:?}");
    // The restarted host took the compiled component from the cache.
    let loaded: Vec<_> = host.lines().into_iter().filter(|l| l["fields"]["message"] == "loaded").collect();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0]["fields"]["compiled"], false, "{:?}", loaded[0]);
}

#[test]
fn latest_skips_what_was_there_before_and_is_pinned_across_restarts() {
    let ws = Workspace::new();
    ws.create_stream("feed", 1);
    let out = eddy(&["put", "feed", "-k", "k", "-d", "old"], ws.path());
    assert!(out.status.success());
    ws.deploy("inspect", "inspect", &manifest("feed", "StartingPosition = \"LATEST\""));
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    // The mapping pins LATEST to the moment it first starts, before its shards start.
    wait_for("the mapping to start its shard", || {
        host.function("inspect").filter(|f| f["shards"].as_array().is_some_and(|s| !s.is_empty()))
    });
    host.stop();
    // Put while stopped: LATEST was pinned when the mapping began, so this is read.
    let out = eddy(&["put", "feed", "-k", "k", "-d", "new"], ws.path());
    assert!(out.status.success());
    let host = Host::start(&ws);
    let s = wait_for("the new record", || {
        let s = seen(&host, "inspect");
        (!s.is_empty()).then_some(s)
    });
    assert_eq!(s.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(), ["new"]);
}

#[test]
fn megabyte_records_are_ingested_and_batched_under_the_payload_cap() {
    let ws = Workspace::with_function("big", 1, "totals", "totals", "FunctionResponseTypes = [\"ReportBatchItemFailures\"]");
    let host = Host::start(&ws);
    host.wait_state("totals", "running");
    // Records of almost 1 MiB (Kinesis's limit), three to a request: about 3 MiB
    // of request body each.
    let pad = "x".repeat(1_000_000);
    let record = format!("{{\"amount\": 1, \"pad\": \"{pad}\"}}");
    host.put("big", "k", &vec![record.clone(); 3]);
    host.put("big", "k", &vec![record; 3]);
    let seen = wait_for("all six records", || {
        let b = batches(&host, "totals");
        (b.iter().map(|b| b.2).sum::<u64>() >= 6).then_some(b)
    });
    // In Lambda's event JSON each record is about 1.33 MB of base64: at most four
    // fit in the 6 MB payload, whatever the batch size.
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.iter().all(|b| b.2 <= 4 && b.3 == 0), "{seen:?}");
    assert_eq!(seen.iter().map(|b| b.2).sum::<u64>(), 6, "{seen:?}");
}

#[test]
fn a_tumbling_window_carries_its_totals_across_invocations_and_a_restart_and_ends_with_a_final_invoke() {
    const WIDTH_S: u64 = 10;
    let ws = Workspace::with_function("sales", 1, "totals", "totals", &format!("BatchSize = 2\nTumblingWindowInSeconds = {WIDTH_S}"));
    let first = Host::start(&ws);
    first.wait_state("totals", "running");
    // Start near the beginning of a window, so that the test's records all fall in it.
    wait_for("the start of a window", || {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
        (ms % (WIDTH_S * 1000) < 1000).then_some(())
    });
    let sale = |amount: u32| vec![format!(r#"{{"amount": {amount}}}"#)];
    for amount in [1, 2, 4] {
        first.put("sales", "alice", &sale(amount));
    }
    first.put("sales", "bob", &sale(10));
    wait_for("the first records to be handled", || {
        first.function("totals").filter(|f| shard_total(f, "records_processed") == 4)
    });
    let first_invocations = first.handler_messages("totals").len();
    assert_eq!(first.stop().code(), Some(0));

    // The window's state was stored with the checkpoint: the next host goes on with it.
    let second = Host::start(&ws);
    second.wait_state("totals", "running");
    for amount in [8, 16] {
        second.put("sales", "alice", &sale(amount));
    }
    let finals = wait_for("the window's final invocation", || {
        let finals: Vec<String> = second.handler_messages("totals").into_iter().filter(|m| m.contains("final totals")).collect();
        (!finals.is_empty()).then_some(finals)
    });
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert!(finals[0].ends_with("final totals alice=31 bob=10"), "{}", finals[0]);
    let invocations = first_invocations + second.handler_messages("totals").len() - 1;
    assert!(invocations >= 3, "BatchSize = 2 takes several invocations per window: {invocations}");
}
