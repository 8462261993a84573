//! `eddy mapping pause | resume | rewind` on a running host: each takes effect
//! without a restart, the pause outlives one, and a rewind moves the shards'
//! checkpoints (all of them, or one shard's to one record) and reading goes on
//! from there, even from a shard stuck retrying a poison record; on local
//! streams and on Kinesis (kinesis-mock: AT_TIMESTAMP and AT_SEQUENCE_NUMBER).

use std::time::Duration;

use eddy_tests::kinesis::{Handled, handled};
use eddy_tests::*;

/// `eddy mapping ...` against the host's admin port.
fn mapping(host: &Host, ws: &Workspace, args: &[&str]) -> (bool, String) {
    let mut all = vec!["mapping"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--admin", &host.admin]);
    let out = eddy(&all, ws.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The texts handled, in order.
fn texts(handled: &[Handled]) -> Vec<String> {
    handled.iter().map(|h| h.text.clone()).collect()
}

fn numbered(from: u32, to: u32) -> Vec<String> {
    (from..to).map(|i| format!("r{i}")).collect()
}

/// Waits until exactly `count` records have been handled, and a moment more
/// to see that no more come.
fn wait_handled(host: &Host, function: &str, count: usize) -> Vec<Handled> {
    wait_for(&format!("{count} records handled"), || {
        (handled(host, function).len() >= count).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let seen = handled(host, function);
    assert_eq!(
        seen.len(),
        count,
        "no more than {count} records handled: {:?}",
        texts(&seen)
    );
    seen
}

#[test]
fn pause_outlives_a_restart_and_resume_and_rewinds_take_effect_without_one() {
    let ws = Workspace::with_function("orders", 2, "inspect", "inspect", "BatchSize = 4");
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    host.put("orders", "a", &numbered(0, 5));
    wait_handled(&host, "inspect", 5);

    // Paused: nothing more is invoked, and status says so.
    let (ok, out) = mapping(&host, &ws, &["pause", "inspect"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("inspect (local:orders): paused; now paused"),
        "{out}"
    );
    assert_eq!(host.function("inspect").expect("status")["state"], "paused");
    host.put("orders", "a", &numbered(5, 8));
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        handled(&host, "inspect").len(),
        5,
        "nothing is invoked while paused"
    );
    let readyz = ureq::get(&format!("http://{}/readyz", host.admin))
        .call()
        .expect("readyz")
        .status()
        .as_u16();
    assert_eq!(
        readyz, 200,
        "a paused mapping is the operator's choice, not a fault"
    );

    // The pause is kept in the store: a new host starts paused.
    assert!(host.stop().success());
    let host = Host::start(&ws);
    host.wait_state("inspect", "paused");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        handled(&host, "inspect").len(),
        0,
        "the restarted host invokes nothing while paused"
    );
    let status = eddy(&["status", "--admin", &host.admin], ws.path());
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("inspect  paused"),
        "{status:?}"
    );

    // Resumed: the records put meanwhile come, from the checkpoint.
    let (ok, out) = mapping(&host, &ws, &["resume", "inspect"]);
    assert!(ok, "{out}");
    assert!(out.contains("resumed; now running"), "{out}");
    assert_eq!(texts(&wait_handled(&host, "inspect", 3)), numbered(5, 8));

    // Rewound to the trim horizon: every record again, in order, on the same host.
    let (ok, out) = mapping(&host, &ws, &["rewind", "inspect", "--to", "TRIM_HORIZON"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("rewound to TRIM_HORIZON; now running"),
        "{out}"
    );
    let again = wait_handled(&host, "inspect", 3 + 8);
    assert_eq!(
        texts(&again[3..]),
        numbered(0, 8),
        "every record again, in order"
    );
    let status =
        String::from_utf8_lossy(&eddy(&["status", "--admin", &host.admin], ws.path()).stdout)
            .into_owned();
    assert!(status.contains("last rewind: to TRIM_HORIZON"), "{status}");

    // Rewound to one record of one shard: from it on, that shard only.
    let r5 = again.iter().find(|h| h.text == "r5").expect("r5");
    let target = format!("{}:{}", r5.shard, r5.sequence);
    let (ok, out) = mapping(&host, &ws, &["rewind", "inspect", "--to", &target]);
    assert!(ok, "{out}");
    let seen = wait_handled(&host, "inspect", 11 + 3);
    assert_eq!(texts(&seen[11..]), numbered(5, 8), "from r5 on, again");

    // Rewound to the latest: what is there is skipped, what comes next is handled.
    let (ok, out) = mapping(&host, &ws, &["rewind", "inspect", "--to", "LATEST"]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        handled(&host, "inspect").len(),
        14,
        "nothing old is handled after a rewind to LATEST"
    );
    host.put("orders", "a", &numbered(8, 9));
    let seen = wait_handled(&host, "inspect", 15);
    assert_eq!(seen[14].text, "r8");

    // A pause, a rewind while paused, and a resume: reading starts at the new place.
    assert!(mapping(&host, &ws, &["pause", "inspect"]).0);
    let (ok, out) = mapping(&host, &ws, &["rewind", "inspect", "--to", "TRIM_HORIZON"]);
    assert!(ok && out.contains("now paused"), "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        handled(&host, "inspect").len(),
        15,
        "a rewind leaves a paused mapping paused"
    );
    assert!(mapping(&host, &ws, &["resume", "inspect"]).0);
    let seen = wait_handled(&host, "inspect", 15 + 9);
    assert_eq!(texts(&seen[15..]), numbered(0, 9));
}

#[test]
fn bad_commands_are_refused_with_what_to_do_and_change_nothing() {
    let ws = Workspace::with_function("orders", 1, "inspect", "inspect", "");
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    let (ok, out) = mapping(&host, &ws, &["rewind", "inspect", "--to", "yesterday"]);
    assert!(!ok);
    assert!(
        out.contains(
            "cannot read \"yesterday\" as a place to rewind to: give TRIM_HORIZON, LATEST"
        ),
        "{out}"
    );
    let (ok, out) = mapping(
        &host,
        &ws,
        &["rewind", "inspect", "--to", "2999-01-01T00:00:00Z"],
    );
    assert!(!ok && out.contains("is in the future"), "{out}");
    let (ok, out) = mapping(&host, &ws, &["pause", "nosuch"]);
    assert!(
        !ok && out.contains("no function named nosuch on this host"),
        "{out}"
    );
    // Nothing changed: the mapping runs and handles what comes.
    assert_eq!(
        host.function("inspect").expect("status")["state"],
        "running"
    );
    host.put("orders", "a", &numbered(0, 2));
    wait_handled(&host, "inspect", 2);
    let stopped = Workspace::new();
    let out = eddy(
        &["mapping", "pause", "inspect", "--admin", "127.0.0.1:9"],
        stopped.path(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no host answers at 127.0.0.1:9"),
        "{out:?}"
    );
}

/// A shard stuck retrying a record its handler always fails (retried for ever)
/// goes on after a rewind past it: the stop ends the retries, the checkpoint
/// moves, and the next good record is handled.
#[test]
fn a_rewind_to_latest_frees_a_shard_stuck_on_a_poison_record() {
    let ws = Workspace::with_function(
        "sales",
        1,
        "totals",
        "totals",
        "FunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumRetryAttempts = -1",
    );
    let host = Host::start(&ws);
    host.wait_state("totals", "running");
    host.put("sales", "alice", &["not json".to_owned()]);
    wait_for("the shard to be stuck retrying", || {
        let f = host.function("totals")?;
        (f["shards"][0]["state"] == "retrying").then_some(())
    });
    let (ok, out) = mapping(&host, &ws, &["rewind", "totals", "--to", "LATEST"]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("has not acted"),
        "the stuck shard stopped at once: {out}"
    );
    host.put("sales", "bob", &[r#"{"amount": 4}"#.to_owned()]);
    wait_for("the next good record handled", || {
        host.handler_messages("totals")
            .iter()
            .any(|m| m.contains("totals bob=4"))
            .then_some(())
    });
    let f = host.function("totals").expect("status");
    assert_eq!(f["shards"][0]["state"], "ok", "{f}");
}

/// The same commands on a Kinesis source (kinesis-mock): a rewind to a time
/// starts each shard at the first record that arrived then (AT_TIMESTAMP), and
/// one to a record starts its shard with it (AT_SEQUENCE_NUMBER).
#[test]
fn a_kinesis_mapping_rewinds_to_a_time_and_to_a_record() {
    let kinesis = eddy_tests::kinesis::Kinesis::start();
    kinesis.create_stream("clicks", 2);
    let ws = Workspace::new();
    ws.deploy("inspect", "inspect", &kinesis.manifest("clicks", "BatchSize = 5"));
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    let batch = |from: u32, to: u32| -> Vec<(String, String)> {
        (from..to).map(|i| (format!("k{}", i % 4), format!("r{i}"))).collect()
    };
    kinesis.put("clicks", &batch(0, 8));
    wait_handled(&host, "inspect", 8);
    // kinesis-mock stamps arrival times in whole milliseconds; leave a clear gap.
    std::thread::sleep(Duration::from_millis(1500));
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    std::thread::sleep(Duration::from_millis(1500));
    kinesis.put("clicks", &batch(8, 12));
    let first = wait_handled(&host, "inspect", 12);

    let (ok, out) = mapping(&host, &ws, &["rewind", "inspect", "--to", &format!("{between:.3}")]);
    assert!(ok, "{out}");
    let seen = wait_handled(&host, "inspect", 16);
    let mut again = texts(&seen[12..]);
    again.sort();
    assert_eq!(again, ["r10", "r11", "r8", "r9"], "only what arrived after the time");

    let r9 = first.iter().find(|h| h.text == "r9").expect("r9");
    // r9 and what came after it on its shard, in the order first handled.
    let same_shard: Vec<String> =
        first.iter().filter(|h| h.shard == r9.shard).map(|h| h.text.clone()).skip_while(|t| t != "r9").collect();
    let (ok, out) = mapping(&host, &ws, &["rewind", "inspect", "--to", &format!("{}:{}", r9.shard, r9.sequence)]);
    assert!(ok, "{out}");
    let seen = wait_handled(&host, "inspect", 16 + same_shard.len());
    assert_eq!(texts(&seen[16..]), same_shard, "the shard starts with the record named");
    assert!(seen[16..].iter().all(|h| h.shard == r9.shard), "the other shard stays where it was");
}
