//! Kinesis sources against kinesis-mock, started by the test: order per key and
//! per shard, batch sizes, starting positions, filters, resharding while records
//! flow, the on-failure record put to a Kinesis stream, and a host killed with
//! SIGKILL in the middle of 10,000 records.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_tests::kinesis::*;
use eddy_tests::{Host, Workspace, wait_for};
use serde_json::Value;

#[test]
fn records_arrive_in_order_per_key_and_per_shard_in_batches_of_batch_size_with_parallelization_and_filters() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("orders", 2);
    let ws = Workspace::new();
    ws.deploy("inspect", "inspect", &kinesis.manifest("orders", "BatchSize = 7"));
    ws.deploy("parallel", "inspect", &kinesis.manifest("orders", "BatchSize = 3\nParallelizationFactor = 4"));
    ws.deploy(
        "filtered",
        "inspect",
        &kinesis.manifest("orders", "[EventSource.FilterCriteria]\nFilters = [{ Pattern = '{\"data\":{\"key\":[\"key-1\"],\"i\":[{\"numeric\":[\">=\",10]}]}}' }]"),
    );
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    let put = records(6, 0..20);
    let shards_of_put = kinesis.put("orders", &put);
    assert_eq!(shards_of_put.iter().collect::<std::collections::BTreeSet<_>>().len(), 2, "the keys spread over both shards");

    let all = wait_for("120 records handled", || {
        let h = handled(&host, "inspect");
        (h.len() >= 120).then_some(h)
    });
    assert_eq!(all.len(), 120, "each record once");
    assert_in_order_and_complete(&first_seen_per_key(&all), 6, 20);
    // Per shard: sequence numbers only grow.
    let mut by_shard: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &all {
        by_shard.entry(&r.shard).or_default().push(&r.sequence);
    }
    assert_eq!(by_shard.len(), 2);
    for (shard, seqs) in &by_shard {
        assert!(seqs.windows(2).all(|w| sequence_order(w[0], w[1]).is_lt()), "{shard}: {seqs:?}");
    }
    // Batches: never more than BatchSize, and each from one shard.
    let mut batches: BTreeMap<&str, Vec<&Handled>> = BTreeMap::new();
    for r in &all {
        batches.entry(&r.request).or_default().push(r);
    }
    assert!(batches.values().all(|b| b.len() <= 7), "a batch over BatchSize");
    assert!(batches.values().any(|b| b.len() == 7), "full batches while records wait");
    assert!(batches.values().all(|b| b.iter().all(|r| r.shard == b[0].shard)));

    // Four batches per shard at once: still every record, in order per key.
    let parallel = wait_for("the parallel function's 120 records", || {
        let h = handled(&host, "parallel");
        (h.len() >= 120).then_some(h)
    });
    assert_in_order_and_complete(&first_seen_per_key(&parallel), 6, 20);
    let requests: std::collections::BTreeSet<&str> = parallel.iter().map(|r| r.request.as_str()).collect();
    assert!(requests.len() >= 120 / 3, "batches of at most 3");

    let filtered = wait_for("the filtered function's 10 records", || {
        let h = handled(&host, "filtered");
        (h.len() >= 10).then_some(h)
    });
    let texts: Vec<Value> = filtered.iter().map(|r| serde_json::from_str(&r.text).expect("json")).collect();
    assert!(texts.iter().all(|t| t["key"] == "key-1" && t["i"].as_u64() >= Some(10)), "{texts:?}");
    let f = wait_for("the filter counts", || {
        host.function("filtered").filter(|f| eddy_tests::shard_total(f, "filtered_out_events") == 110)
    });
    assert_eq!(eddy_tests::shard_total(&f, "polled_events"), 120);
    let metrics = host.metrics();
    assert!(metrics.contains("eddy_filtered_out_events_total{function=\"filtered\""), "{metrics}");
}

#[test]
fn trim_horizon_latest_and_at_timestamp_each_start_where_they_should() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("events", 1);
    kinesis.put("events", &[("k".into(), "before-1".into()), ("k".into(), "before-2".into())]);
    std::thread::sleep(Duration::from_millis(1500));
    let between = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs_f64();
    std::thread::sleep(Duration::from_millis(1500));
    kinesis.put("events", &[("k".into(), "after-1".into())]);

    let ws = Workspace::new();
    ws.deploy("horizon", "inspect", &kinesis.manifest("events", "StartingPosition = \"TRIM_HORIZON\""));
    ws.deploy("latest", "inspect", &kinesis.manifest("events", "StartingPosition = \"LATEST\""));
    ws.deploy(
        "timestamp",
        "inspect",
        &kinesis.manifest("events", &format!("StartingPosition = \"AT_TIMESTAMP\"\nStartingPositionTimestamp = {between}")),
    );
    let host = Host::start(&ws);
    let texts = |f: &str| handled(&host, f).into_iter().map(|r| r.text).collect::<Vec<_>>();
    wait_for("horizon to read the stream", || (texts("horizon").len() == 3).then_some(()));
    wait_for("timestamp to read the stream", || (!texts("timestamp").is_empty()).then_some(()));
    for f in ["horizon", "latest", "timestamp"] {
        wait_for(&format!("{f}'s shard to be polled"), || {
            host.function(f).filter(|f| f["shards"].as_array().is_some_and(|s| !s.is_empty()))
        });
    }
    std::thread::sleep(Duration::from_millis(1000));
    kinesis.put("events", &[("k".into(), "later".into())]);
    wait_for("every function to see the later record", || {
        ["horizon", "latest", "timestamp"].iter().all(|f| texts(f).last().map(String::as_str) == Some("later")).then_some(())
    });
    assert_eq!(texts("horizon"), ["before-1", "before-2", "after-1", "later"]);
    assert_eq!(texts("timestamp"), ["after-1", "later"]);
    assert_eq!(texts("latest"), ["later"]);
}

#[test]
fn a_split_and_a_merge_while_records_flow_keep_every_record_and_per_key_order() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("resharded", 1);
    let ws = Workspace::new();
    ws.deploy("inspect", "inspect", &kinesis.manifest("resharded", "BatchSize = 10"));
    // The same through enhanced fan-out: a shard's last pushed event names its children.
    ws.deploy("pushed", "inspect", &kinesis.manifest("resharded", "BatchSize = 10\nConsumerName = \"eddy-pushed\""));
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    host.wait_state("pushed", "running");
    kinesis.put("resharded", &records(8, 0..10));

    // Split the only shard in the middle of the hash key range.
    let parent = kinesis.shards("resharded")[0].shard_id().to_owned();
    kinesis
        .rt
        .block_on(
            kinesis
                .client
                .split_shard()
                .stream_name("resharded")
                .shard_to_split(&parent)
                .new_starting_hash_key("170141183460469231731687303715884105728")
                .send(),
        )
        .expect("SplitShard");
    let children = wait_for("two open children", || {
        let open: Vec<String> = kinesis
            .shards("resharded")
            .iter()
            .filter(|s| s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_none()))
            .map(|s| s.shard_id().to_owned())
            .collect();
        (open.len() == 2).then_some(open)
    });
    kinesis.put("resharded", &records(8, 10..20));

    kinesis
        .rt
        .block_on(
            kinesis.client.merge_shards().stream_name("resharded").shard_to_merge(&children[0]).adjacent_shard_to_merge(&children[1]).send(),
        )
        .expect("MergeShards");
    wait_for("one open shard after the merge", || {
        let shards = kinesis.shards("resharded");
        let open = shards.iter().filter(|s| s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_none())).count();
        (shards.len() == 4 && open == 1).then_some(())
    });
    kinesis.put("resharded", &records(8, 20..30));

    let all = wait_for("240 records", || {
        let h = handled(&host, "inspect");
        (first_seen_per_key(&h).values().map(Vec::len).sum::<usize>() >= 240).then_some(h)
    });
    assert_in_order_and_complete(&first_seen_per_key(&all), 8, 30);
    // Parent before child: on the log, the last record of the parent comes before
    // the first record of either child.
    let position = |pred: &dyn Fn(&Handled) -> bool, last: bool| {
        let it = all.iter().enumerate().filter(|(_, r)| pred(r)).map(|(i, _)| i);
        if last { it.max() } else { it.min() }
    };
    let parent_last = position(&|r| r.shard == parent, true).expect("parent records");
    for child in &children {
        let child_first = position(&|r| &r.shard == child, false).expect("child records");
        assert!(parent_last < child_first, "child {child} started before its parent {parent} finished");
    }
    let status = host.function("inspect").expect("status");
    let finished: Vec<&Value> = status["shards"].as_array().expect("shards").iter().filter(|s| s["state"] == "finished").collect();
    assert_eq!(finished.len(), 3, "the parent and both children are finished: {status}");

    let pushed = wait_for("240 records pushed", || {
        let h = handled(&host, "pushed");
        (first_seen_per_key(&h).values().map(Vec::len).sum::<usize>() >= 240).then_some(h)
    });
    assert_in_order_and_complete(&first_seen_per_key(&pushed), 8, 30);
    let pushed_status = host.function("pushed").expect("status");
    let finished = pushed_status["shards"].as_array().expect("shards").iter().filter(|s| s["state"] == "finished").count();
    assert_eq!(finished, 3, "{pushed_status}");
}

#[test]
fn a_discarded_batch_is_described_on_the_failure_stream() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("sales", 1);
    kinesis.create_stream("failures", 1);
    let failures_arn = kinesis.stream_arn("failures");
    let ws = Workspace::new();
    // totals fails records that are not JSON sales as batch item failures.
    ws.deploy(
        "totals",
        "totals",
        &kinesis.manifest(
            "sales",
            &format!(
                "FunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumRetryAttempts = 1\n\
                 [EventSource.DestinationConfig.OnFailure]\nDestination = \"{failures_arn}\""
            ),
        ),
    );
    let host = Host::start(&ws);
    host.wait_state("totals", "running");
    let shard_of = kinesis.put(
        "sales",
        &[("alice".into(), r#"{"amount": 2}"#.into()), ("alice".into(), "not a sale".into()), ("bob".into(), r#"{"amount": 3}"#.into())],
    );
    let f = wait_for("the bad record to be discarded", || {
        host.function("totals").filter(|f| eddy_tests::shard_total(f, "destination_delivered_events") == 2)
    });
    assert_eq!(eddy_tests::shard_total(&f, "records_processed"), 1, "the record before the failure");

    let shard = kinesis.shards("failures")[0].shard_id().to_owned();
    let iterator = kinesis
        .rt
        .block_on(kinesis.client.get_shard_iterator().stream_name("failures").shard_id(shard).shard_iterator_type("TRIM_HORIZON".into()).send())
        .expect("iterator")
        .shard_iterator()
        .expect("an iterator")
        .to_owned();
    let out = kinesis.rt.block_on(kinesis.client.get_records().shard_iterator(iterator).send()).expect("GetRecords");
    assert_eq!(out.records().len(), 1, "one failure record");
    let record: Value = serde_json::from_slice(out.records()[0].data().as_ref()).expect("JSON");
    assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2, "an attempt and one retry");
    assert_eq!(record["requestContext"]["functionArn"].as_str().map(|a| a.ends_with(":function:totals")), Some(true));
    assert_eq!(record["responseContext"]["statusCode"], 200);
    // The function returned; its batch item failures failed the batch: AWS writes null.
    assert!(record["responseContext"]["functionError"].is_null(), "{record}");
    assert!(record["responseContext"].as_object().is_some_and(|c| c.contains_key("functionError")), "{record}");
    assert_eq!(record["version"], "1.0");
    let info = &record["KinesisBatchInfo"];
    assert_eq!(info["shardId"], shard_of[0].as_str());
    assert_eq!(info["batchSize"], 2, "the failed record and the one after it");
    assert!(info["streamArn"].as_str().is_some_and(|a| a.ends_with(":stream/sales")), "{info}");
    assert!(info["approximateArrivalOfFirstRecord"].as_str().is_some_and(|t| t.ends_with('Z')), "{info}");
    let start = info["startSequenceNumber"].as_str().expect("start");
    let end = info["endSequenceNumber"].as_str().expect("end");
    assert!(sequence_order(start, end).is_lt());
}

#[test]
fn a_host_killed_mid_stream_resumes_from_its_checkpoints_without_skipping() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("big", 2);
    kinesis.put("big", &records(20, 0..500));
    let ws = Workspace::new();
    ws.deploy("inspect", "inspect", &kinesis.manifest("big", "BatchSize = 100"));
    let first = Host::start(&ws);
    wait_for("some records handled", || (handled(&first, "inspect").len() >= 1500).then_some(()));
    // Read what the first host did only once it is dead: it goes on handling
    // (and checkpointing) records until then.
    let first_log = first.log_path();
    first.kill();
    let before = handled_in(&first_log, "inspect");

    let second = Host::start(&ws);
    let deadline = std::time::Instant::now() + eddy_tests::PATIENCE;
    let after = loop {
        let mut all = before.clone();
        all.extend(handled(&second, "inspect"));
        let seen = first_seen_per_key(&all);
        if seen.values().map(Vec::len).sum::<usize>() >= 10_000 {
            break all;
        }
        if std::time::Instant::now() > deadline {
            let counts: Vec<(String, usize)> = seen.iter().map(|(k, v)| (k.clone(), v.len())).collect();
            panic!("not every record was handled: {} before the kill, {} after; per key {counts:?}", before.len(), all.len() - before.len());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_in_order_and_complete(&first_seen_per_key(&after), 20, 500);
    // Redone after the crash: at most the batches in flight, one per shard.
    let duplicates = after.len() - 10_000;
    eprintln!("killed after {} records; {duplicates} handled twice", before.len());
    assert!(duplicates <= 2 * 100, "{duplicates} records handled twice");
}

#[test]
fn enhanced_fan_out_registers_a_consumer_and_gets_every_record_pushed_in_order() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("pushed", 2);
    let ws = Workspace::new();
    ws.deploy("inspect", "inspect", &kinesis.manifest("pushed", "ConsumerName = \"eddy-inspect\"\nBatchSize = 25"));
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    kinesis.put("pushed", &records(6, 0..30));
    let all = wait_for("180 records pushed", || {
        let h = handled(&host, "inspect");
        (h.len() >= 180).then_some(h)
    });
    assert_eq!(all.len(), 180, "each record once");
    assert_in_order_and_complete(&first_seen_per_key(&all), 6, 30);
    let stream_arn = kinesis.stream_arn("pushed");
    let consumers = kinesis.rt.block_on(kinesis.client.list_stream_consumers().stream_arn(stream_arn).send()).expect("consumers");
    let names: Vec<&str> = consumers.consumers().iter().map(|c| c.consumer_name()).collect();
    assert_eq!(names, ["eddy-inspect"]);
    assert!(!host.log_text().contains("GetRecords"), "fan-out reads without GetRecords");

    // A restart resumes the subscription after the checkpoint.
    let log = host.log_path();
    assert_eq!(host.stop().code(), Some(0));
    let before = handled_in(&log, "inspect").len();
    kinesis.put("pushed", &records(6, 30..40));
    let host = Host::start(&ws);
    let after = wait_for("the next 60 records", || {
        let h = handled(&host, "inspect");
        (h.len() >= 60).then_some(h)
    });
    assert_eq!(before, 180);
    assert_eq!(after.len(), 60, "only the new records: {:?}", after.first());
}

/// Every response shape of `host/docs/semantics.md` ("The response"), each on its own stream: three records
/// whose first one says what the responder answers; the rest answer `{}` (success)
/// when they lead a retried batch.
#[test]
fn report_batch_item_failures_follows_lambdas_rules_for_every_response_shape() {
    struct Case {
        name: &'static str,
        response: &'static str,
        processed: u64,
        discarded: u64,
        invoked: u64,
        retries: u32,
    }
    let success = |name, response| Case { name, response, processed: 3, discarded: 0, invoked: 3, retries: 0 };
    let whole_batch = |name, response| Case { name, response, processed: 0, discarded: 3, invoked: 3, retries: 0 };
    let cases = [
        success("empty", ""),
        success("null", "null"),
        success("emptylist", "[]"),
        success("emptyobject", "{}"),
        success("nofailures", r#"{"batchItemFailures":[]}"#),
        success("nullfailures", r#"{"batchItemFailures":null}"#),
        whole_batch("emptyid", r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#),
        whole_batch("nullid", r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#),
        whole_batch("missingid", r#"{"batchItemFailures":[{}]}"#),
        whole_batch("misspelled", r#"{"batchItemFailures":[{"itemIdentifer":"$SEQ1"}]}"#),
        whole_batch("numberid", r#"{"batchItemFailures":[{"itemIdentifier":1}]}"#),
        whole_batch("unknownid", r#"{"batchItemFailures":[{"itemIdentifier":"12345"}]}"#),
        whole_batch("notjson", "ok then"),
        // The lowest failed sequence number wins: the retry starts at record 1 (two
        // records invoked again), not at record 2. Going on from it is a retry.
        Case {
            name: "lowestwins",
            response: r#"{"batchItemFailures":[{"itemIdentifier":"$SEQ2"},{"itemIdentifier":"$SEQ1"}]}"#,
            processed: 3,
            discarded: 0,
            invoked: 5,
            retries: 1,
        },
        Case {
            name: "partialnoretry",
            response: r#"{"batchItemFailures":[{"itemIdentifier":"$SEQ1"}]}"#,
            processed: 1,
            discarded: 2,
            invoked: 3,
            retries: 0,
        },
    ];
    let kinesis = Kinesis::start();
    let ws = Workspace::new();
    for case in &cases {
        kinesis.create_stream(case.name, 1);
        ws.deploy(
            case.name,
            "responder",
            &kinesis.manifest(
                case.name,
                &format!("FunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumRetryAttempts = {}", case.retries),
            ),
        );
    }
    let host = Host::start(&ws);
    for case in &cases {
        host.wait_state(case.name, "running");
    }
    for case in &cases {
        kinesis.put(case.name, &[("k".into(), case.response.into()), ("k".into(), "{}".into()), ("k".into(), "{}".into())]);
    }
    for case in &cases {
        let f = wait_for(&format!("case {} to finish", case.name), || {
            host.function(case.name).filter(|f| {
                eddy_tests::shard_total(f, "records_processed") + eddy_tests::shard_total(f, "records_discarded") == 3
            })
        });
        let counts = (
            eddy_tests::shard_total(&f, "records_processed"),
            eddy_tests::shard_total(&f, "records_discarded"),
            eddy_tests::shard_total(&f, "invoked_events"),
        );
        assert_eq!(counts, (case.processed, case.discarded, case.invoked), "case {} ({}): {f}", case.name, case.response);
    }
}

#[test]
fn the_hosts_aws_endpoint_url_serves_sources_that_name_none() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("plain", 1);
    let ws = Workspace::new();
    ws.deploy("inspect", "inspect", "[EventSource]\nType = \"Kinesis\"\nStream = \"plain\"\nPollingIntervalInMilliseconds = 100\n");
    let host = Host::start_with_env(&ws, &[], &[("AWS_ENDPOINT_URL", &kinesis.emulator.endpoint)]);
    host.wait_state("inspect", "running");
    kinesis.put("plain", &[("k".into(), "through the host's endpoint".into())]);
    let seen = wait_for("the record", || {
        let h = handled(&host, "inspect");
        (!h.is_empty()).then_some(h)
    });
    assert_eq!(seen[0].text, "through the host's endpoint");
}

#[test]
fn a_role_lets_a_handler_put_records_on_the_kinesis_streams_it_names_and_no_other() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("enriched", 1);
    kinesis.create_stream("audit", 1);
    let enriched = kinesis.stream_arn("enriched");
    let audit = kinesis.stream_arn("audit");
    let ws = Workspace::new();
    ws.create_stream("probes", 1);
    ws.write_role(
        "producer",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"kinesis:*","Resource":"arn:aws:kinesis:local:000000000000:stream/probes"}},
                {{"Effect":"Allow","Action":"kinesis:PutRecord","Resource":"{enriched}"}}]}}"#
        ),
    );
    ws.deploy("prober", "hostile", &format!("Role = \"producer\"\n{}", eddy_tests::manifest("probes", "")));
    let host = Host::start_with_env(&ws, &[], &[("AWS_ENDPOINT_URL_KINESIS", &kinesis.emulator.endpoint)]);
    host.wait_state("prober", "running");
    host.put("probes", "k", &[format!("put {enriched}"), format!("put {audit}")]);
    let outcomes = wait_for("both puts", || {
        let m: Vec<String> = host.handler_messages("prober").into_iter().filter(|m| m.starts_with("probe put: ")).collect();
        (m.len() == 2).then_some(m)
    });
    assert!(outcomes[0].starts_with("probe put: put on shardId-"), "{outcomes:?}");
    assert!(
        outcomes[1].contains(&format!("is not authorized to perform: kinesis:PutRecord on resource: {audit}")),
        "{outcomes:?}"
    );

    let read = |stream: &str| {
        let shard = kinesis.shards(stream)[0].shard_id().to_owned();
        let iterator = kinesis
            .rt
            .block_on(kinesis.client.get_shard_iterator().stream_name(stream).shard_id(shard).shard_iterator_type("TRIM_HORIZON".into()).send())
            .expect("iterator")
            .shard_iterator()
            .expect("an iterator")
            .to_owned();
        kinesis.rt.block_on(kinesis.client.get_records().shard_iterator(iterator).send()).expect("GetRecords").records().to_vec()
    };
    let records = read("enriched");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data().as_ref(), b"from hostile");
    assert_eq!(records[0].partition_key(), Some("hostile"));
    assert!(read("audit").is_empty(), "the denied put never reached the stream");
}

/// A Kinesis endpoint that takes a call and never answers (kinesalite does so
/// for a GetShardIterator AT_TIMESTAMP past its newest record) must neither hold
/// the shard for ever while its status looks healthy, nor hold the host's stop.
#[test]
fn a_kinesis_call_that_never_answers_shows_in_status_and_does_not_hold_the_stop() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("hung", 1);
    let stall = eddy_tests::stall::Stall::start(&kinesis.emulator.endpoint, "GetShardIterator");
    let ws = Workspace::new();
    let manifest = kinesis.manifest("hung", "StartingPosition = \"TRIM_HORIZON\"").replace(&kinesis.emulator.endpoint, &stall.endpoint);
    ws.deploy("inspect", "inspect", &manifest);
    let host = Host::start(&ws);
    // The SDK gives up on each attempt after the read timeout (10 s), retries,
    // and the shard shows the failure: it is not "ok" with no word of why.
    let error = wait_for("the hung call to show in the shard's status", || {
        let function = host.function("inspect")?;
        function["shards"].as_array()?.first()?["last_error"].as_str().map(str::to_owned)
    });
    assert!(error.contains("GetShardIterator"), "the error names the call: {error}");
    // Stopping while the next attempt hangs: the host exits at once.
    let held = stall.held();
    wait_for("another call to hang", || (stall.held() > held).then_some(()));
    let status = host.stop_within(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "eddy exits promptly and cleanly on SIGTERM: {status:?}");
}
